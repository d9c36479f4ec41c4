"""Bounces and complaints feed the suppression list: hard bounces and complaints at once,
soft bounces only when they repeat within the window; ESPs report them through anymail's
tracking webhooks, which accept only the configured credentials."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from campaigns.bounces import record_bounce
from campaigns.models import BounceRecord, MessageStatus, Suppression, SuppressionReason
from campaigns.suppression import email_hash, is_suppressed
from tests.campaigns.tracking_factories import make_campaign, make_message

pytestmark = pytest.mark.django_db

SECRET = "esp:s3cret-webhook-password"


@pytest.fixture
def sent_message(db):
    message = make_message(*make_campaign())
    message.smtp_message_id = f"<campaign-{message.campaign_id}.message-{message.pk}@crm.test>"
    message.save(update_fields=["smtp_message_id"])
    return message


def test_hard_bounce_suppresses_at_once_and_marks_the_message(sent_message):
    suppression = record_bounce(
        email=sent_message.email, kind="hard", message=sent_message, detail="550 no such user"
    )
    assert suppression.reason == SuppressionReason.HARD_BOUNCE
    assert is_suppressed(sent_message.email.upper())  # normalised address
    sent_message.refresh_from_db()
    assert sent_message.status == MessageStatus.BOUNCED
    assert "550" in sent_message.error
    assert BounceRecord.objects.get().kind == "hard"


def test_complaint_suppresses_at_once(sent_message):
    record_bounce(email=sent_message.email, kind="complaint", message=sent_message, detail="spam")
    assert Suppression.objects.get().reason == SuppressionReason.COMPLAINT
    sent_message.refresh_from_db()
    assert sent_message.status == MessageStatus.SENT  # it was delivered, then reported


@override_settings(CAMPAIGN_SOFT_BOUNCE_LIMIT=3, CAMPAIGN_SOFT_BOUNCE_DAYS=30)
def test_soft_bounces_suppress_only_when_they_repeat_within_the_window():
    email = "full.mailbox@example.jp"
    BounceRecord.objects.create(
        email_hash=email_hash(email), kind="soft", occurred_at=timezone.now() - timedelta(days=45)
    )
    assert record_bounce(email=email, kind="soft", detail="452 mailbox full") is None
    assert record_bounce(email=email, kind="soft", detail="452 mailbox full") is None
    assert not is_suppressed(email)  # the third is older than the window
    suppression = record_bounce(email=email, kind="soft", detail="452 mailbox full")
    assert suppression is not None and is_suppressed(email)
    assert "3 soft bounces" in suppression.note


def test_a_second_hard_bounce_keeps_one_suppression(sent_message):
    record_bounce(email=sent_message.email, kind="hard", detail="550")
    record_bounce(email=sent_message.email, kind="hard", detail="550")
    assert Suppression.objects.count() == 1


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        record_bounce(email="a@example.jp", kind="bounced", detail="")


# --- ESP webhook (Postmark's payloads, normalised by django-anymail) --------------------------


def _postmark(client, payload, auth=SECRET):
    headers = {}
    if auth:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
    return client.post(
        "/webhooks/esp/postmark/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        **headers,
    )


def _bounce_payload(message, bounce_type="HardBounce"):
    return {
        "RecordType": "Bounce",
        "Type": bounce_type,
        "TypeCode": 1,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Email": message.email,
        "BouncedAt": "2026-11-29T10:00:00Z",
        "Description": "The server was unable to deliver your message",
        "Details": "smtp;550 5.1.1 The email account does not exist",
        "Metadata": {"crm_message_id": str(message.pk)},
    }


@override_settings(ANYMAIL_WEBHOOK_SECRET=SECRET)
def test_webhook_hard_bounce_and_complaint(csrf_client, sent_message):
    assert _postmark(csrf_client, _bounce_payload(sent_message)).status_code == 200
    assert Suppression.objects.get().reason == SuppressionReason.HARD_BOUNCE
    sent_message.refresh_from_db()
    assert sent_message.status == MessageStatus.BOUNCED

    other = make_message(sent_message.campaign, sent_message.variant)
    complaint = {
        "RecordType": "SpamComplaint",
        "Type": "SpamComplaint",
        "Email": other.email,
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "BouncedAt": "2026-11-29T10:00:00Z",
    }
    assert _postmark(csrf_client, complaint).status_code == 200
    assert Suppression.objects.get(email_hash=email_hash(other.email)).reason == "complaint"


@override_settings(ANYMAIL_WEBHOOK_SECRET=SECRET)
def test_webhook_soft_bounce_is_only_counted(csrf_client, sent_message):
    response = _postmark(csrf_client, _bounce_payload(sent_message, "SoftBounce"))
    assert response.status_code == 200
    assert BounceRecord.objects.get().kind == "soft"
    assert not Suppression.objects.exists()


@override_settings(ANYMAIL_WEBHOOK_SECRET=SECRET)
def test_webhook_matches_our_message_id_header(csrf_client, sent_message):
    payload = _bounce_payload(sent_message)
    del payload["Metadata"]
    payload["MessageID"] = sent_message.smtp_message_id.strip("<>")
    assert _postmark(csrf_client, payload).status_code == 200
    assert BounceRecord.objects.get().message == sent_message


@override_settings(ANYMAIL_WEBHOOK_SECRET=SECRET)
@pytest.mark.parametrize("auth", [None, "esp:wrong"])
def test_webhook_refuses_missing_or_wrong_credentials(csrf_client, sent_message, auth):
    response = _postmark(csrf_client, _bounce_payload(sent_message), auth=auth)
    assert response.status_code in (400, 403)
    assert not Suppression.objects.exists()
    assert not BounceRecord.objects.exists()


def test_webhook_accepts_nothing_until_configured(csrf_client, sent_message):
    # Without ANYMAIL_WEBHOOK_SECRET the settings pick a random secret: no request matches.
    assert _postmark(csrf_client, _bounce_payload(sent_message)).status_code in (400, 403)
    assert not Suppression.objects.exists()


def test_unknown_esp_is_not_found(csrf_client):
    assert csrf_client.post("/webhooks/esp/nonesuch/tracking/").status_code == 404
