"""Unsubscribe: the page asks first (GET changes nothing), its button and RFC 8058 one-click
POSTs unsubscribe with a 200, the effect is immediate (suppression, consent withdrawn, queued
mail skipped) and repeating it changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import MessageStatus, Suppression, SuppressionReason
from campaigns.suppression import email_hash, is_suppressed
from campaigns.tokens import message_token, unsubscribe_url
from customers.models import ConsentRecord, ConsentSource
from tests.campaigns.tracking_factories import make_campaign, make_message


@pytest.fixture
def sent_message(db):
    return make_message(*make_campaign())


def _path(message) -> str:
    return unsubscribe_url(message.pk).removeprefix("http://localhost:8000")


def _withdrawals(customer):
    return ConsentRecord.objects.filter(customer=customer, opted_in=False)


def test_get_shows_a_confirmation_and_changes_nothing(csrf_client, sent_message):
    response = csrf_client.get(_path(sent_message), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Unsubscribe from our e-mails?" in html
    assert sent_message.email in html
    assert '<form method="post">' in html
    assert not response.cookies
    assert response["Cache-Control"].startswith("no-store")
    assert not Suppression.objects.exists()
    assert not _withdrawals(sent_message.customer).exists()
    sent_message.customer.refresh_from_db()
    assert sent_message.customer.email_opt_in is True


def test_get_in_japanese_by_default(csrf_client, sent_message):
    response = csrf_client.get(_path(sent_message), HTTP_ACCEPT_LANGUAGE="ja")
    assert response.status_code == 200
    assert 'lang="ja"' in response.content.decode()


def test_page_button_unsubscribes_without_a_csrf_token(csrf_client, sent_message):
    campaign, variant = make_campaign(links=[])
    queued_elsewhere = make_message(
        campaign, variant, customer=sent_message.customer, status=MessageStatus.QUEUED
    )
    someone_else = make_message(campaign, variant, status=MessageStatus.QUEUED)

    response = csrf_client.post(_path(sent_message), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert "You have been unsubscribed" in response.content.decode()
    suppression = Suppression.objects.get(email_hash=email_hash(sent_message.email))
    assert suppression.reason == SuppressionReason.UNSUBSCRIBED
    assert suppression.source_message == sent_message
    customer = sent_message.customer
    customer.refresh_from_db()
    assert customer.email_opt_in is False
    record = _withdrawals(customer).get()
    assert record.source == ConsentSource.UNSUBSCRIBE
    assert sent_message.campaign.name in record.form
    queued_elsewhere.refresh_from_db()
    assert queued_elsewhere.status == MessageStatus.SKIPPED
    someone_else.refresh_from_db()
    assert someone_else.status == MessageStatus.QUEUED
    sent_message.refresh_from_db()
    assert sent_message.status == MessageStatus.SENT


def test_rfc8058_one_click_post(csrf_client, sent_message):
    response = csrf_client.post(
        _path(sent_message),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert "Location" not in response
    assert is_suppressed(sent_message.email)


def test_unsubscribing_twice_changes_nothing_more(csrf_client, sent_message):
    first = csrf_client.post(
        _path(sent_message),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    second = csrf_client.post(_path(sent_message), HTTP_ACCEPT_LANGUAGE="en")
    assert first.status_code == second.status_code == 200
    assert Suppression.objects.count() == 1
    assert _withdrawals(sent_message.customer).count() == 1
    page = csrf_client.get(_path(sent_message), HTTP_ACCEPT_LANGUAGE="en")
    assert "You are already unsubscribed" in page.content.decode()


def test_link_of_an_old_message_still_works(csrf_client, sent_message):
    # Tokens carry no date: a message sent long ago (here 90 days) unsubscribes as well.
    sent_message.sent_at = timezone.now() - timedelta(days=90)
    sent_message.save(update_fields=["sent_at"])
    assert csrf_client.post(_path(sent_message)).status_code == 200
    assert is_suppressed(sent_message.email)


@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_or_unknown_token_changes_nothing(csrf_client, sent_message, method):
    token = message_token(sent_message.pk)
    for path in [
        f"/u/{token[:-1]}{'B' if token[-1] != 'B' else 'C'}/",
        "/u/nonsense/",
        f"/u/{message_token(sent_message.pk + 999)}/",
    ]:
        response = getattr(csrf_client, method)(path, HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 404
        assert "This link is not valid" in response.content.decode()
    assert not Suppression.objects.exists()
    assert not _withdrawals(sent_message.customer).exists()
