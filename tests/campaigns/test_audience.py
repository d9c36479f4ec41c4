"""Freezing the audience: who gets a campaign (each exclusion rule), one message per
address, a stable and recorded holdout / variant draw, and a freeze that happens once."""

from __future__ import annotations

from collections import Counter

import pytest

from campaigns.audience import draw, freeze_audience
from campaigns.models import CampaignStatus, Message, MessageStatus, SuppressionReason
from campaigns.suppression import blocked_hashes, email_hash, suppress
from customers.models import Customer
from customers.privacy import erase_customer
from tests.campaigns.factories import CampaignFactory, VariantFactory, subscriber
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def recipients(campaign) -> set[int]:
    return set(Message.objects.filter(campaign=campaign).values_list("customer_id", flat=True))


def test_only_consenting_reachable_unsuppressed_members_are_frozen(admin_member):
    kept = subscriber()
    never_asked = CustomerFactory()  # no consent at all
    unrecorded = CustomerFactory()
    # Consent flag set without the legal record (e.g. a bad import): not enough.
    Customer.objects.filter(pk=unrecorded.pk).update(
        email_opt_in=True, email_opt_in_at=kept.email_opt_in_at
    )
    invalid = subscriber(email="not-an-address@")
    no_address = subscriber(email="")
    suppressed = subscriber(email="Unsub@Example.jp")
    suppress(email="ｕｎｓｕｂ@example.jp ", reason=SuppressionReason.UNSUBSCRIBED)
    bounced = subscriber(email="gone@example.jp")
    suppress(email="gone@example.jp", reason=SuppressionReason.HARD_BOUNCE)
    erased = subscriber(email="erased@example.jp")
    erase_customer(customer=erased, by=admin_member)
    # The erased person signs up again as a new record: the address stays refused.
    came_back = subscriber(email="Erased@example.jp")
    outside = subscriber(prefecture="27")

    campaign = VariantFactory().campaign
    size = freeze_audience(campaign=campaign)

    assert recipients(campaign) == {kept.pk}
    assert size == 1
    campaign.refresh_from_db()
    assert campaign.audience_size == 1 and campaign.status == CampaignStatus.SENDING
    excluded = {never_asked, unrecorded, invalid, no_address, suppressed, bounced, erased}
    assert not recipients(campaign) & {c.pk for c in [*excluded, came_back, outside]}


def test_a_shared_address_gets_one_message_for_the_oldest_customer():
    first = subscriber(email="family@example.jp")
    subscriber(email="Family@Example.jp")
    campaign = VariantFactory().campaign
    freeze_audience(campaign=campaign)
    assert list(Message.objects.filter(campaign=campaign).values_list("customer_id", "email")) == [
        (first.pk, "family@example.jp")
    ]


def test_freezing_twice_writes_the_audience_once():
    subscriber()
    subscriber()
    campaign = VariantFactory().campaign
    assert freeze_audience(campaign=campaign) == 2
    subscriber()  # joins the segment after the freeze
    assert freeze_audience(campaign=campaign) == 2
    assert Message.objects.filter(campaign=campaign).count() == 2


def test_a_cancelled_campaign_is_not_frozen():
    subscriber()
    campaign = VariantFactory(campaign=CampaignFactory(status=CampaignStatus.CANCELLED)).campaign
    assert freeze_audience(campaign=campaign) == 0
    assert not Message.objects.filter(campaign=campaign).exists()


def test_holdout_and_variants_are_drawn_stably_and_recorded():
    for _ in range(40):
        subscriber()
    campaign = CampaignFactory(holdout_percent=20)
    a = VariantFactory(campaign=campaign, label="A", weight=50)
    b = VariantFactory(campaign=campaign, label="B", weight=50)
    freeze_audience(campaign=campaign)

    messages = list(Message.objects.filter(campaign=campaign))
    assert len(messages) == 40
    for message in messages:
        expected = draw(
            campaign_id=campaign.pk,
            customer_id=message.customer_id,
            holdout_percent=20,
            variants=[a, b],
        )
        assert message.is_holdout == expected.is_holdout
        assert message.variant_id == expected.variant_id
        if message.is_holdout:
            assert message.status == MessageStatus.SKIPPED and message.variant_id is None
        else:
            assert message.status == MessageStatus.QUEUED
    assert {m.variant_id for m in messages if not m.is_holdout} == {a.pk, b.pk}


def test_draw_shares_follow_the_holdout_and_the_weights():
    class Weighted:
        def __init__(self, pk, weight):
            self.pk, self.weight = pk, weight

    variants = [Weighted(1, 70), Weighted(2, 30)]
    draws = [
        draw(campaign_id=7, customer_id=i, holdout_percent=10, variants=variants)
        for i in range(1, 20_001)
    ]
    shares = Counter("holdout" if d.is_holdout else d.variant_id for d in draws)
    assert 1_800 <= shares["holdout"] <= 2_200  # 10% of 20,000
    sent = shares[1] + shares[2]
    assert 0.67 <= shares[1] / sent <= 0.73
    # Stable for a customer, different across campaigns.
    again = draw(campaign_id=7, customer_id=123, holdout_percent=10, variants=variants)
    assert again == draws[122]
    other = [
        draw(campaign_id=8, customer_id=i, holdout_percent=10, variants=variants)
        for i in range(1, 201)
    ]
    assert other != draws[:200]


@pytest.mark.parametrize("listed", [1, 50])
def test_blocked_addresses_are_found_whether_the_list_is_small_or_large(listed, admin_member):
    erased = subscriber(email="erased@example.jp")
    erase_customer(customer=erased, by=admin_member)
    for n in range(listed):
        suppress(email=f"listed{n}@example.jp", reason=SuppressionReason.MANUAL)
    hashes = [email_hash(a) for a in ("listed0@example.jp", "ERASED@example.jp", "ok@example.jp")]
    assert blocked_hashes(hashes) == set(hashes[:2])
