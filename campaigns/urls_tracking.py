"""Public URLs reached from e-mails and ESPs: open pixel, click redirect, unsubscribe, bounce
webhooks (the first three's shapes are campaigns.tokens' *_PATH)."""

from django.urls import path

from campaigns import bounces_views, tracking_views, unsubscribe_views

urlpatterns = [
    path("t/o/<str:token>.gif", tracking_views.open_pixel, name="tracking-open"),
    path("t/c/<str:token>/<int:link_id>/", tracking_views.click, name="tracking-click"),
    path("u/<str:token>/", unsubscribe_views.unsubscribe, name="unsubscribe"),
    path(
        "webhooks/esp/<slug:esp>/tracking/",
        bounces_views.esp_tracking_webhook,
        name="esp-tracking-webhook",
    ),
]
