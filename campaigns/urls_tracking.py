"""Public URLs reached from e-mails: open pixel and click redirect (their shapes are
campaigns.tokens' *_PATH)."""

from django.urls import path

from campaigns import tracking_views

urlpatterns = [
    path("t/o/<str:token>.gif", tracking_views.open_pixel, name="tracking-open"),
    path("t/c/<str:token>/<int:link_id>/", tracking_views.click, name="tracking-click"),
]
