"""Act: the winning variant really goes to the rest of the audience (real SMTP server), a
resend reaches only the non-openers still eligible, a duplicate is a draft copy."""

from __future__ import annotations

from decimal import Decimal
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from campaigns import machine_events
from campaigns.acting import (
    duplicate_campaign,
    resend_to_non_openers,
    save_notes,
    send_winner_to_rest,
)
from campaigns.audience import freeze_audience
from campaigns.models import (
    AudienceRule,
    Campaign,
    CampaignStatus,
    Message,
    MessageStatus,
    SuppressionReason,
)
from campaigns.rendering import store_links
from campaigns.sending import send_pending
from campaigns.suppression import suppress
from campaigns.tracking import Hit, ingest
from tests.campaigns.factories import CampaignFactory, VariantFactory, subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def smtp(smtp_settings):
    with override_settings(SITE_URL="https://crm.example.jp"):
        yield smtp_settings


def subjects(server) -> dict[str, str]:
    """Recipient address -> subject of what the SMTP server received."""
    received = {}
    for envelope in server.messages:
        message = message_from_bytes(envelope.content, policy=default_policy)
        for address in envelope.rcpt_tos:
            received[address] = str(message["Subject"])
    return received


def ab_campaign(count: int, **fields) -> tuple[Campaign, list]:
    customers = [subscriber() for _ in range(count)]
    campaign = CampaignFactory(**fields)
    a = VariantFactory(campaign=campaign, label="A", weight=50, subject="件名A")
    b = VariantFactory(campaign=campaign, label="B", weight=50, subject="件名B")
    store_links(campaign=campaign)
    freeze_audience(campaign=campaign)
    campaign.refresh_from_db()
    return campaign, [customers, a, b]


def test_the_winning_variant_goes_to_everyone_who_waited(smtp):
    campaign, (customers, _a, b) = ab_campaign(30, test_percent=40)
    waiting = set(
        Message.objects.filter(campaign=campaign, status=MessageStatus.WAITING).values_list(
            "email", flat=True
        )
    )
    assert 0 < len(waiting) < 30
    send_pending(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.TESTING
    assert len(smtp.messages) == 30 - len(waiting)

    assert send_winner_to_rest(campaign=campaign, variant=b) == len(waiting)
    assert campaign.status == CampaignStatus.SENDING and campaign.winner == b
    send_pending(campaign_id=campaign.pk)

    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT
    received = subjects(smtp)
    assert set(received) == {c.email for c in customers}
    assert {received[address] for address in waiting} == {"件名B"}
    assert not Message.objects.filter(campaign=campaign, status=MessageStatus.WAITING).exists()


def test_the_winner_is_sent_only_while_waiting_and_only_a_variant_of_its_own():
    campaign, (_customers, a, _b) = ab_campaign(6, test_percent=50)
    waiting = Message.objects.filter(campaign=campaign, status=MessageStatus.WAITING)
    before = waiting.count()
    other = VariantFactory()
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.TESTING)
    campaign.refresh_from_db()
    with pytest.raises(ValidationError):
        send_winner_to_rest(campaign=campaign, variant=other)
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENT)
    with pytest.raises(ValidationError):
        send_winner_to_rest(campaign=campaign, variant=a)
    assert before and waiting.count() == before


def _open(message, *, machine=False):
    reason = machine_events.APPLE_MPP if machine else ""
    # A minute after sending: an open within seconds of it would be taken for a scanner.
    at = timezone.now().timestamp() + 60
    ingest([Hit("open", message.pk, None, at, "Mozilla", "", reason)])


def test_resend_reaches_only_delivered_non_openers_still_eligible(smtp):
    campaign, (customers, _a, _b) = ab_campaign(8, holdout_percent=0)
    send_pending(campaign_id=campaign.pk)
    messages = {m.customer_id: m for m in Message.objects.filter(campaign=campaign)}
    opened, machine_only, unsubscribed, bounced = (
        customers[:2],
        customers[2],
        customers[3],
        customers[4],
    )
    for customer in opened:
        _open(messages[customer.pk])
    _open(messages[machine_only.pk], machine=True)
    suppress(
        email=unsubscribed.email,
        reason=SuppressionReason.UNSUBSCRIBED,
        source_message=messages[unsubscribed.pk],
    )
    Message.objects.filter(pk=messages[bounced.pk].pk).update(status=MessageStatus.BOUNCED)
    smtp.messages.clear()

    child = resend_to_non_openers(campaign=campaign, subject="まだご覧になっていませんか？")
    assert child.status == CampaignStatus.DRAFT and child.parent == campaign
    assert child.audience_rule == AudienceRule.NON_OPENERS_OF_PARENT
    assert child.segment_id == campaign.segment_id
    assert {v.subject for v in child.variants.all()} == {"まだご覧になっていませんか？"}

    store_links(campaign=child)
    freeze_audience(campaign=child)
    send_pending(campaign_id=child.pk)
    expected = {c.email for c in customers[5:]} | {machine_only.email}
    assert set(subjects(smtp)) == expected
    assert set(subjects(smtp).values()) == {"まだご覧になっていませんか？"}


def test_resend_needs_a_subject_and_something_delivered():
    campaign, _rest = ab_campaign(2)
    with pytest.raises(ValidationError):
        resend_to_non_openers(campaign=campaign, subject="件名")  # nothing sent yet
    with pytest.raises(ValidationError):
        resend_to_non_openers(campaign=campaign, subject="  ")


def test_duplicate_is_a_draft_with_the_plan_and_variants():
    original = CampaignFactory(
        status=CampaignStatus.SENT,
        hypothesis="夕方の配信は開封率が高い",
        goal_click_rate=Decimal("0.04"),
        goal_revenue=Decimal("500000"),
        holdout_percent=10,
        test_percent=20,
        act_notes="件名を短く",
    )
    VariantFactory(campaign=original, label="A", weight=60)
    VariantFactory(campaign=original, label="B", weight=40, subject="B案")
    copy = duplicate_campaign(campaign=original)
    assert copy.pk != original.pk and copy.parent == original
    assert copy.status == CampaignStatus.DRAFT and copy.audience_rule == AudienceRule.SEGMENT
    assert (copy.hypothesis, copy.goal_click_rate, copy.goal_revenue) == (
        original.hypothesis,
        Decimal("0.04"),
        Decimal("500000"),
    )
    assert (copy.holdout_percent, copy.test_percent, copy.segment_id) == (
        10,
        20,
        original.segment_id,
    )
    assert [(v.label, v.subject, v.weight) for v in copy.variants.order_by("label")] == [
        (v.label, v.subject, v.weight) for v in original.variants.order_by("label")
    ]
    assert copy.act_notes == "" and not copy.messages.exists()


def test_notes_are_saved():
    campaign = CampaignFactory()
    save_notes(campaign=campaign, notes="  次回は件名に名前を入れる \n")
    campaign.refresh_from_db()
    assert campaign.act_notes == "次回は件名に名前を入れる"
