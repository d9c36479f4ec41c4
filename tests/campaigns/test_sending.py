"""The sender, in process against a real SMTP server (aiosmtpd): every message once, 5xx
fails one message only, 4xx retried with backoff, a dropped connection loses nothing, pause,
resume, cancel, and an unsubscribe during a send stopping further mail at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from django.core.exceptions import ValidationError
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from campaigns.audience import freeze_audience
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus, SuppressionReason
from campaigns.rendering import store_links
from campaigns.sending import (
    campaign_progress,
    cancel_campaign,
    launch_campaign,
    pause_campaign,
    resume_campaign,
    schedule_campaign,
    send_pending,
    start_campaign,
    start_due_campaigns,
)
from campaigns.suppression import suppress
from customers.consent import record_consent
from customers.models import ConsentSource, Customer
from tests.campaigns.factories import VariantFactory, subscriber
from tests.conftest import free_port


class Server:
    """An SMTP server whose answer per recipient the test decides (``answer``), optionally
    running ``on_message(count)`` after each accepted message."""

    def __init__(self):
        self.messages: list = []
        self.answers: dict[str, str] = {}
        self.on_message = None
        self.drop_every = 0
        self.seen = 0
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.answers.get(address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.seen += 1
        if self.drop_every and self.seen % self.drop_every == 0:
            # Hang up before accepting: the client never hears a reply.
            server.transport.close()
            await asyncio.sleep(0)
            return "421 closing"
        self.messages.append(message_from_bytes(envelope.content))
        if self.on_message:
            await asyncio.to_thread(self._run_hook, len(self.messages))
        return "250 Message accepted for delivery"

    def _run_hook(self, count: int) -> None:
        try:
            self.on_message(count)
        finally:
            connections.close_all()  # this thread's own connection, or the test DB stays busy

    def received_ids(self) -> list[str]:
        return [m["Message-ID"] for m in self.messages]

    def received_to(self) -> list[str]:
        return [m["To"] for m in self.messages]


@pytest.fixture
def server():
    server = Server()
    server.controller.start()
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=server.controller.port,
        EMAIL_USE_TLS=False,
        EMAIL_HOST_USER="",
        EMAIL_HOST_PASSWORD="",
        CAMPAIGN_BATCH_SIZE=20,
        CAMPAIGN_FLUSH_EVERY=5,
        CAMPAIGN_SENDER_NAME="株式会社サンプル商店",
        SITE_URL="https://crm.example.jp",
    ):
        yield server
    server.controller.stop()


def frozen_campaign(count: int, **variant) -> Campaign:
    customers = [subscriber() for _ in range(count)]
    campaign = VariantFactory(**variant).campaign
    store_links(campaign=campaign)
    freeze_audience(campaign=campaign)
    campaign.refresh_from_db()
    assert campaign.audience_size == len(customers)
    return campaign


def let_backoff_pass(campaign: Campaign) -> None:
    Message.objects.filter(campaign=campaign, status=MessageStatus.QUEUED).update(
        claimed_at=timezone.now() - timedelta(seconds=1)
    )


def statuses(campaign: Campaign) -> dict[str, int]:
    progress = campaign_progress(campaign)
    return {
        "sent": progress.sent,
        "failed": progress.failed,
        "queued": progress.queued,
        "sending": progress.sending,
        "skipped": progress.skipped,
    }


@pytest.mark.django_db(transaction=True)
def test_every_message_goes_once_and_is_marked_sent_after_acceptance(server):
    campaign = frozen_campaign(23)
    assert send_pending(campaign_id=campaign.pk) == 23
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT and campaign.finished_at is not None
    assert campaign.sent_count == 23
    rows = list(Message.objects.filter(campaign=campaign))
    assert all(m.status == MessageStatus.SENT and m.attempts == 1 for m in rows)
    assert sorted(server.received_ids()) == sorted(m.smtp_message_id for m in rows)
    first = server.messages[0]
    assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["List-Unsubscribe"].startswith("<https://crm.example.jp/u/")
    assert "株式会社サンプル商店" in first.get_payload()[0].get_payload(decode=True).decode()


@pytest.mark.django_db(transaction=True)
def test_a_permanent_rejection_fails_that_message_only_and_transient_ones_retry(server):
    campaign = frozen_campaign(12)
    rejected, later = list(Message.objects.filter(campaign=campaign).order_by("id"))[3:5]
    server.answers[rejected.email] = "550 5.1.1 No such user"
    server.answers[later.email] = "451 4.3.0 Try again later"

    send_pending(campaign_id=campaign.pk)
    assert statuses(campaign) == {"sent": 10, "failed": 1, "queued": 1, "sending": 0, "skipped": 0}
    rejected.refresh_from_db()
    later.refresh_from_db()
    assert rejected.status == MessageStatus.FAILED and rejected.error.startswith("550")
    assert later.status == MessageStatus.QUEUED and later.error.startswith("451")
    # Backoff: not before a few seconds (5 s +- jitter), not claimable at once.
    assert later.claimed_at > timezone.now() + timedelta(seconds=1)
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENDING

    del server.answers[later.email]
    let_backoff_pass(campaign)
    send_pending(campaign_id=campaign.pk)
    later.refresh_from_db()
    assert later.status == MessageStatus.SENT and later.attempts == 2
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT
    assert server.received_to().count(later.email) == 1
    assert rejected.email not in server.received_to()


@pytest.mark.django_db(transaction=True)
@override_settings(CAMPAIGN_MAX_ATTEMPTS=3)
def test_a_message_failing_transiently_too_often_fails(server):
    campaign = frozen_campaign(2)
    stuck = Message.objects.filter(campaign=campaign).first()
    server.answers[stuck.email] = "421 4.7.0 Try again later"
    for _ in range(3):
        send_pending(campaign_id=campaign.pk)
        let_backoff_pass(campaign)
    stuck.refresh_from_db()
    assert stuck.status == MessageStatus.FAILED and stuck.attempts == 3
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT


@pytest.mark.django_db(transaction=True)
def test_the_server_dropping_connections_mid_batch_loses_nothing(server):
    campaign = frozen_campaign(30)
    server.drop_every = 7
    for _ in range(20):
        send_pending(campaign_id=campaign.pk)
        let_backoff_pass(campaign)
        if Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT:
            break
    received = server.received_ids()
    assert len(received) == len(set(received)) == 30
    assert statuses(campaign)["sent"] == 30


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_server_sends_nothing_and_keeps_everything_queued(server):
    campaign = frozen_campaign(5)
    with override_settings(EMAIL_PORT=free_port()):
        assert send_pending(campaign_id=campaign.pk) == 0
    assert statuses(campaign)["queued"] == 5
    assert set(Message.objects.filter(campaign=campaign).values_list("attempts", flat=True)) == {0}
    assert send_pending(campaign_id=campaign.pk) == 5


@pytest.mark.django_db(transaction=True)
def test_pause_stops_after_the_group_in_flight_and_resume_finishes(server):
    campaign = frozen_campaign(30)
    server.on_message = lambda n: (
        n == 7 and pause_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    )
    send_pending(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    # The group of five being sent when the pause came finishes; nothing after it.
    assert len(server.messages) == 10
    assert statuses(campaign) == {"sent": 10, "failed": 0, "queued": 20, "sending": 0, "skipped": 0}
    assert send_pending(campaign_id=campaign.pk) == 0  # paused: nothing is claimed

    server.on_message = None
    assert resume_campaign(campaign=campaign)
    send_pending(campaign_id=campaign.pk)
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT
    assert len(set(server.received_ids())) == len(server.messages) == 30


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_the_send_and_skips_the_rest(server):
    campaign = frozen_campaign(30)
    server.on_message = lambda n: (
        n == 3 and cancel_campaign(campaign=Campaign.objects.get(pk=campaign.pk))
    )
    send_pending(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED
    assert len(server.messages) == 5
    assert statuses(campaign) == {"sent": 5, "failed": 0, "queued": 0, "sending": 0, "skipped": 25}
    assert not resume_campaign(campaign=campaign)


@pytest.mark.django_db(transaction=True)
def test_an_unsubscribe_during_the_send_stops_further_mail_to_that_customer(server):
    campaign = frozen_campaign(30)
    rows = list(Message.objects.filter(campaign=campaign).order_by("id"))
    leaving, suppressed = rows[12], rows[20]

    def unsubscribe_two(count):
        if count == 2:
            customer = Customer.objects.get(pk=leaving.customer_id)
            record_consent(customer=customer, opted_in=False, source=ConsentSource.UNSUBSCRIBE)
            suppress(email=suppressed.email, reason=SuppressionReason.COMPLAINT)

    server.on_message = unsubscribe_two
    send_pending(campaign_id=campaign.pk)
    assert leaving.email not in server.received_to()
    assert suppressed.email not in server.received_to()
    assert len(server.messages) == 28
    for message in (leaving, suppressed):
        message.refresh_from_db()
        assert message.status == MessageStatus.SKIPPED
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT


@pytest.mark.django_db(transaction=True)
def test_a_campaign_is_scheduled_in_the_users_time_zone_and_started_when_due(server, marketer):
    subscriber()
    campaign = VariantFactory().campaign
    schedule_campaign(
        campaign=campaign, at=datetime(2099, 5, 3, 9, 0), by=marketer, time_zone="Asia/Tokyo"
    )
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED
    assert campaign.scheduled_at == datetime(2099, 5, 3, 0, 0, tzinfo=UTC)
    assert campaign.pk not in start_due_campaigns()
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=timezone.now())
    assert start_due_campaigns() == [campaign.pk]


@pytest.mark.django_db(transaction=True)
def test_a_campaign_whose_lease_expired_is_taken_over(server):
    campaign = frozen_campaign(8)
    # A worker claimed four messages, handed two to the server and died.
    ids = list(
        Message.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True)
    )
    long_ago = timezone.now() - timedelta(hours=1)
    Message.objects.filter(id__in=ids[:4]).update(
        status=MessageStatus.SENDING, lease=uuid.uuid4(), claimed_at=long_ago, attempts=1
    )
    Message.objects.filter(id__in=ids[:2]).update(sent_at=long_ago)
    send_pending(campaign_id=campaign.pk)
    rows = {m.id: m for m in Message.objects.filter(campaign=campaign)}
    assert all(m.status == MessageStatus.SENT for m in rows.values())
    assert [rows[i].attempts for i in ids[:4]] == [2, 2, 2, 2]
    assert rows[ids[0]].error and rows[ids[1]].error  # mid-send: possibly delivered twice
    assert not rows[ids[2]].error and not rows[ids[3]].error  # never tried: not a duplicate
    assert campaign_progress(campaign).possibly_duplicated == 2


@pytest.mark.django_db
def test_a_campaign_that_cannot_be_sent_is_refused_and_stays_a_draft(marketer):
    campaign = VariantFactory(weight=60).campaign
    with pytest.raises(ValidationError):
        start_campaign(campaign=campaign, by=marketer)
    broken = VariantFactory(html_body="{% include 'base.html' %}").campaign
    with pytest.raises(ValidationError):
        start_campaign(campaign=broken, by=marketer)
    assert set(Campaign.objects.values_list("status", flat=True)) == {CampaignStatus.DRAFT}


@pytest.mark.django_db
def test_a_cancelled_scheduled_campaign_is_never_started(marketer):
    campaign = VariantFactory().campaign
    schedule_campaign(campaign=campaign, at=timezone.now() + timedelta(hours=1), by=marketer)
    assert cancel_campaign(campaign=campaign, by=marketer)
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=timezone.now())
    assert start_due_campaigns() == []
    assert launch_campaign(campaign_id=campaign.pk) == 0
    assert not Message.objects.filter(campaign=campaign).exists()
