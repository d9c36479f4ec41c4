"""ESP tracking webhooks (bounces, complaints) through django-anymail: see campaigns.bounces."""

from __future__ import annotations

from django.views.decorators.csrf import csrf_exempt

from campaigns.bounces import esp_tracking_view


@csrf_exempt  # a server-to-server POST authenticated by ANYMAIL_WEBHOOK_SECRET, no session
def esp_tracking_webhook(request, esp: str):
    return esp_tracking_view(esp)(request)
