"""Bounces and complaints: the intake that feeds the suppression list.

``record_bounce`` is the one entry point: the ESP webhook receiver below (django-anymail's
normalised tracking events, from whichever ESP sends the mail) and any other source (a DSN
reader, the admin) call it.

* a hard bounce (the address does not exist) or a complaint (the recipient marked the mail as
  spam) suppresses the address at once;
* a soft bounce (mailbox full, greylisting, a server down) is only counted: the address is
  suppressed once it has ``CAMPAIGN_SOFT_BOUNCE_LIMIT`` soft bounces within
  ``CAMPAIGN_SOFT_BOUNCE_DAYS`` days, since a temporary failure seen once says little.

The webhook (``/webhooks/esp/<esp>/tracking/``) accepts an ESP's events only with the HTTP
basic-auth credentials in ``ANYMAIL_WEBHOOK_SECRET`` ("user:password"; configure the same in
the ESP's webhook URL). Without that setting it accepts nothing: a forged bounce would
silence a customer.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.http import Http404
from django.utils import timezone
from django.utils.module_loading import import_string

from campaigns.models import BounceKind, BounceRecord, Message, MessageStatus, SuppressionReason
from campaigns.suppression import email_hash, suppress

logger = logging.getLogger(__name__)

HARD = "hard"
SOFT = "soft"
COMPLAINT = "complaint"
KINDS = (HARD, SOFT, COMPLAINT)


@transaction.atomic
def record_bounce(*, email: str, kind: str, message: Message | None = None, detail: str = ""):
    """Record a bounce or complaint of ``email``; returns the Suppression it caused, or None."""
    if kind not in KINDS:
        raise ValueError(f"Unknown bounce kind {kind!r}")
    now = timezone.now()
    address_hash = email_hash(email)
    if message is not None and kind != COMPLAINT:
        Message.objects.filter(pk=message.pk).exclude(status=MessageStatus.BOUNCED).update(
            status=MessageStatus.BOUNCED, error=detail[:1000]
        )
    if kind == COMPLAINT:
        return suppress(
            email=email,
            reason=SuppressionReason.COMPLAINT,
            source_message=message,
            note=detail[:255],
        )
    BounceRecord.objects.create(
        email_hash=address_hash, kind=kind, message=message, occurred_at=now, detail=detail
    )
    if kind == HARD:
        return suppress(
            email=email,
            reason=SuppressionReason.HARD_BOUNCE,
            source_message=message,
            note=detail[:255],
        )
    recent_soft = BounceRecord.objects.filter(
        email_hash=address_hash,
        kind=BounceKind.SOFT,
        occurred_at__gte=now - timedelta(days=settings.CAMPAIGN_SOFT_BOUNCE_DAYS),
    ).count()
    if recent_soft >= settings.CAMPAIGN_SOFT_BOUNCE_LIMIT:
        return suppress(
            email=email,
            reason=SuppressionReason.HARD_BOUNCE,
            source_message=message,
            note=f"{recent_soft} soft bounces in {settings.CAMPAIGN_SOFT_BOUNCE_DAYS} days",
        )
    return None


# --- ESP webhooks (django-anymail) ----------------------------------------------------------

# The ESPs whose tracking webhooks are offered; anymail normalises their payloads.
ESP_TRACKING_VIEWS = {
    "amazon_ses": "anymail.webhooks.amazon_ses.AmazonSESTrackingWebhookView",
    "brevo": "anymail.webhooks.brevo.BrevoTrackingWebhookView",
    "mailersend": "anymail.webhooks.mailersend.MailerSendTrackingWebhookView",
    "mailgun": "anymail.webhooks.mailgun.MailgunTrackingWebhookView",
    "mailjet": "anymail.webhooks.mailjet.MailjetTrackingWebhookView",
    "postmark": "anymail.webhooks.postmark.PostmarkTrackingWebhookView",
    "resend": "anymail.webhooks.resend.ResendTrackingWebhookView",
    "sendgrid": "anymail.webhooks.sendgrid.SendGridTrackingWebhookView",
    "sparkpost": "anymail.webhooks.sparkpost.SparkPostTrackingWebhookView",
}
# Raw bounce types that anymail reports as "bounced" although they are temporary.
_SOFT_RAW_TYPES = {"SoftBounce", "Transient", "DnsError", "soft", "Soft", "temporary"}


def esp_tracking_view(esp: str):
    """The anymail tracking webhook view of ``esp`` (404 for an ESP not offered)."""
    try:
        return import_string(ESP_TRACKING_VIEWS[esp]).as_view()
    except KeyError:
        raise Http404 from None


def bounce_kind_of(event) -> str | None:
    """Our bounce kind for an anymail tracking event, or None for events that are not one."""
    if event.event_type == "complained":
        return COMPLAINT
    if event.event_type == "deferred":
        return SOFT
    if event.event_type == "bounced":
        raw = event.esp_event if isinstance(event.esp_event, dict) else {}
        raw_type = str(raw.get("Type") or raw.get("bounceType") or raw.get("severity") or "")
        return SOFT if raw_type in _SOFT_RAW_TYPES else HARD
    return None


# The sender's Message-ID: <campaign-<campaign id>.message-<message id>@<domain>>.
_OUR_MESSAGE_ID = re.compile(r"campaign-\d+\.message-(\d+)@")


def _message_of(event) -> Message | None:
    """The message an event is about: from the ``crm_message_id`` metadata a sender going
    through anymail attaches, or from the Message-ID header our SMTP sender writes (ESPs that
    relay SMTP report it as the message id)."""
    metadata = getattr(event, "metadata", None) or {}
    if str(metadata.get("crm_message_id", "")).isdigit():
        return Message.objects.filter(pk=int(metadata["crm_message_id"])).first()
    header = (event.message_id or "").strip()
    match = _OUR_MESSAGE_ID.search(header)
    if not match:
        return None
    stored = f"<{header.strip('<>')}>"
    return Message.objects.filter(pk=int(match[1]), smtp_message_id=stored).first()


try:
    from anymail.signals import tracking as _anymail_tracking
except ImportError:  # pragma: no cover - django-anymail is in requirements.txt
    _anymail_tracking = None

if _anymail_tracking is not None:

    @receiver(_anymail_tracking, dispatch_uid="campaigns.bounces")
    def _on_esp_event(sender, event, esp_name, **kwargs):
        kind = bounce_kind_of(event)
        if kind is None or not event.recipient:
            return
        detail = (
            f"{esp_name}: {event.event_type} {event.reject_reason or ''} {event.description or ''}"
        )
        record_bounce(
            email=event.recipient,
            kind=kind,
            message=_message_of(event),
            detail=detail.strip()[:1000],
        )
