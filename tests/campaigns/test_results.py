"""Campaign results against counts made independently from the messages, events, suppressions
and purchases (plain ORM and Python here, never campaigns.results), and the significance
test against known values."""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns import machine_events
from campaigns.models import (
    Campaign,
    CampaignStatus,
    Link,
    Message,
    MessageStatus,
    Suppression,
    SuppressionReason,
    TrackingEvent,
)
from campaigns.results import (
    Figures,
    GoalState,
    campaign_results,
    compute_results,
    goal_attainment_for,
)
from campaigns.significance import (
    Proportion,
    bonferroni,
    compare,
    sample_size_per_group,
    two_proportion_p_value,
)
from campaigns.suppression import suppress
from campaigns.tracking import Hit, ingest
from customers.models import Purchase, PurchaseStatus
from segments.models import RfmLabel
from tests.campaigns.factories import CampaignFactory, VariantFactory
from tests.customers.factories import CustomerFactory, PurchaseFactory
from tests.segments.factories import CustomerScoreFactory, ScoringRunFactory

pytestmark = pytest.mark.django_db


def _hit(message, kind, at, *, link=None, reason=""):
    return Hit(kind, message.pk, link.pk if link else None, at.timestamp(), "Mozilla", "", reason)


def build_campaign(*, sent_days_ago: float, seed: int = 5, size: int = 60):
    """A sent campaign with two variants, a holdout, bounced/failed/waiting messages, human
    and machine opens and clicks, unsubscribes, and purchases in and out of the window."""
    rng = random.Random(seed)
    sent_at = timezone.now() - timedelta(days=sent_days_ago)
    queued_at = sent_at - timedelta(minutes=10)
    campaign = CampaignFactory(
        status=CampaignStatus.SENT,
        started_at=queued_at,
        attribution_days=7,
        goal_open_rate=Decimal("0.3"),
        goal_click_rate=Decimal("0.05"),
        goal_conversion_rate=Decimal("0.9"),
        goal_revenue=Decimal("1000"),
        holdout_percent=10,
    )
    a = VariantFactory(campaign=campaign, label="A", weight=50)
    b = VariantFactory(campaign=campaign, label="B", weight=50, subject="件名B")
    link = Link.objects.create(campaign=campaign, url="https://shop.example.jp/sale")
    run = ScoringRunFactory()
    run.finished_at = queued_at - timedelta(days=1)
    run.save()
    labels = [RfmLabel.CHAMPIONS, RfmLabel.LOYAL, RfmLabel.AT_RISK]
    hits = []
    for i in range(size):
        customer = CustomerFactory()
        if i % 7:
            CustomerScoreFactory(
                run=run, customer=customer, rfm_label=labels[i % 3], decile=1 + i % 10
            )
        roll = rng.random()
        status, variant, holdout = MessageStatus.SENT, (a if i % 2 else b), False
        if roll < 0.15:
            status, variant, holdout = MessageStatus.SKIPPED, None, True
        elif roll < 0.2:
            status = MessageStatus.BOUNCED
        elif roll < 0.23:
            status = MessageStatus.FAILED
        elif roll < 0.26:
            status, variant = MessageStatus.WAITING, None
        message = Message.objects.create(
            campaign=campaign,
            customer=customer,
            variant=variant,
            email=customer.email,
            is_holdout=holdout,
            status=status,
            queued_at=queued_at,
            sent_at=sent_at + timedelta(seconds=i) if status == MessageStatus.SENT else None,
        )
        later = sent_at + timedelta(hours=rng.randint(1, 60))
        if status == MessageStatus.SENT:
            if rng.random() < 0.4:
                hits.append(_hit(message, "open", later))
            if rng.random() < 0.3:
                hits.append(_hit(message, "open", later, reason=machine_events.APPLE_MPP))
            if rng.random() < 0.2:
                hits.append(_hit(message, "click", later + timedelta(minutes=1), link=link))
            if rng.random() < 0.15:
                hits.append(_hit(message, "click", later, link=link, reason=machine_events.SCANNER))
            if rng.random() < 0.1:
                suppress(
                    email=customer.email,
                    reason=SuppressionReason.UNSUBSCRIBED,
                    source_message=message,
                )
            elif rng.random() < 0.05:
                suppress(
                    email=customer.email,
                    reason=SuppressionReason.COMPLAINT,
                    source_message=message,
                )
        start = queued_at if holdout else (message.sent_at or sent_at)
        for offset, purchase_status in (
            (timedelta(days=rng.choice([-2, 1, 3, 6, 8, 12])), PurchaseStatus.COMPLETED),
            (timedelta(days=rng.choice([1, 2])), PurchaseStatus.CANCELLED),
            (timedelta(days=7), PurchaseStatus.COMPLETED),  # the window's last instant
            (timedelta(0), PurchaseStatus.COMPLETED),  # the send itself: not after it
        ):
            if rng.random() < 0.35:
                PurchaseFactory(
                    customer=customer,
                    purchased_at=start + offset,
                    status=purchase_status,
                    total=Decimal(rng.randint(1, 30) * 500),
                )
    ingest(hits)
    return campaign, [a, b]


def oracle(campaign, messages):
    """The figures, counted message by message from the raw tables."""
    ids = [m.pk for m in messages]
    events = list(TrackingEvent.objects.filter(message_id__in=ids))
    human_open = {e.message_id for e in events if e.kind == "open" and not e.is_machine}
    human_click = {e.message_id for e in events if e.kind == "click" and not e.is_machine}
    machine_open = {e.message_id for e in events if e.kind == "open" and e.is_machine}
    machine_click = {e.message_id for e in events if e.kind == "click" and e.is_machine}
    unsubscribed = set(
        Suppression.objects.filter(
            reason=SuppressionReason.UNSUBSCRIBED, source_message_id__in=ids
        ).values_list("source_message_id", flat=True)
    )
    window = timedelta(days=campaign.attribution_days)
    converted, revenue = 0, Decimal(0)
    for message in messages:
        start = message.queued_at if message.is_holdout else message.sent_at
        bought = [
            p.total
            for p in Purchase.objects.filter(customer_id=message.customer_id)
            if p.status == PurchaseStatus.COMPLETED and start < p.purchased_at <= start + window
        ]
        converted += bool(bought)
        revenue += sum(bought, Decimal(0))
    return {
        "delivered": len(messages),
        "opened": len(human_open & set(ids)),
        "clicked": len(human_click & set(ids)),
        "machine_opened": len((machine_open - human_open) & set(ids)),
        "machine_clicked": len((machine_click - human_click) & set(ids)),
        "unsubscribed": len(unsubscribed),
        "converted": converted,
        "revenue": revenue,
    }


FIELDS = [f.name for f in dataclasses.fields(Figures)]


def _figures(figures) -> dict:
    return {name: getattr(figures, name) for name in FIELDS}


# fast_path: PostgreSQL's set-based query; False: the portable ORM query. Both are checked.
@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("seed", [5, 11])
def test_every_figure_equals_an_independent_count(seed, fast_path):
    campaign, variants = build_campaign(sent_days_ago=2, seed=seed)
    results = compute_results(campaign, fast_path=fast_path)
    delivered = list(Message.objects.filter(campaign=campaign, status=MessageStatus.SENT))

    expected = oracle(campaign, delivered)
    assert _figures(results.total) == expected
    assert expected["opened"] and expected["clicked"] and expected["converted"]
    assert expected["machine_opened"] and expected["unsubscribed"]
    assert results.total.open_rate == expected["opened"] / expected["delivered"]
    assert results.total.click_rate == expected["clicked"] / expected["delivered"]
    assert results.total.click_to_open == expected["clicked"] / expected["opened"]
    assert results.total.conversion_rate == expected["converted"] / expected["delivered"]

    for variant, result in zip(variants, results.variants, strict=True):
        assert result.label == variant.label
        mine = [m for m in delivered if m.variant_id == variant.pk]
        assert _figures(result.figures) == oracle(campaign, mine)

    holdout = list(Message.objects.filter(campaign=campaign, is_holdout=True))
    expected_holdout = oracle(campaign, holdout)
    assert results.holdout.members == len(holdout)
    assert results.holdout.converted == expected_holdout["converted"]
    assert results.holdout.revenue == expected_holdout["revenue"]

    rate_t = expected["converted"] / expected["delivered"]
    rate_h = expected_holdout["converted"] / len(holdout)
    assert results.lift.absolute == pytest.approx(rate_t - rate_h)
    assert results.lift.incremental_conversions == pytest.approx(
        (rate_t - rate_h) * expected["delivered"]
    )
    incremental_revenue = (
        expected["revenue"] / expected["delivered"] - expected_holdout["revenue"] / len(holdout)
    ) * expected["delivered"]
    assert results.lift.incremental_revenue == pytest.approx(incremental_revenue)


@pytest.mark.parametrize("fast_path", [True, False])
def test_breakdowns_and_heat_map_equal_independent_counts(fast_path):
    campaign, _variants = build_campaign(sent_days_ago=2)
    results = compute_results(campaign, fast_path=fast_path)
    delivered = list(
        Message.objects.filter(campaign=campaign, status=MessageStatus.SENT).select_related(
            "customer"
        )
    )
    scores = {
        s.customer_id: s
        for s in results_scores(results.scoring_run_id, [m.customer_id for m in delivered])
    }
    for group in results.by_rfm:
        mine = [
            m
            for m in delivered
            if (scores[m.customer_id].rfm_label if m.customer_id in scores else "") == group.key
        ]
        assert _figures(group.figures) == oracle(campaign, mine), group.key
    for group in results.by_decile:
        mine = [
            m
            for m in delivered
            if (str(scores[m.customer_id].decile) if m.customer_id in scores else "") == group.key
        ]
        assert _figures(group.figures) == oracle(campaign, mine), group.key
    assert sum(g.figures.delivered for g in results.by_rfm) == len(delivered)

    tokyo = timezone.get_default_timezone()
    expected = [[0] * 24 for _ in range(7)]
    for message in delivered:
        first = (
            TrackingEvent.objects.filter(message=message, kind="open", is_machine=False)
            .order_by("occurred_at")
            .first()
        )
        if first:
            local = first.occurred_at.astimezone(tokyo)
            expected[local.weekday()][local.hour] += 1
    assert results.heat_map == expected


def results_scores(run_id, customer_ids):
    from segments.models import CustomerScore

    return CustomerScore.objects.filter(run_id=run_id, customer_id__in=customer_ids)


def test_goals_are_provisional_while_the_window_is_open_then_met_or_not():
    campaign, _variants = build_campaign(sent_days_ago=2)
    results = compute_results(campaign)
    assert results.provisional
    assert {g.state for g in results.goals} == {GoalState.PROVISIONAL}

    closed, _variants = build_campaign(sent_days_ago=30, seed=7)
    results = compute_results(closed)
    assert not results.provisional
    states = {g.metric.value: g for g in results.goals}
    open_rate = results.total.open_rate
    assert states["open_rate"].state == (GoalState.MET if open_rate >= 0.3 else GoalState.NOT_MET)
    assert states["open_rate"].attainment == pytest.approx(open_rate / 0.3)
    assert states["conversion_rate"].state == GoalState.NOT_MET  # the goal is 90%
    assert states["revenue"].state == (
        GoalState.MET if results.total.revenue >= 1000 else GoalState.NOT_MET
    )


def test_the_list_shows_live_counts_and_the_last_reviews_conversions():
    campaign, _variants = build_campaign(sent_days_ago=30)
    campaign.goal_revenue = None
    campaign.save()
    entry = goal_attainment_for(Campaign.objects.filter(pk=campaign.pk))[campaign.pk]
    conversion = next(g for g in entry.goals if g.metric.value == "conversion_rate")
    assert conversion.state == GoalState.UNKNOWN

    results = campaign_results(campaign)
    campaign.refresh_from_db()
    entry = goal_attainment_for([campaign])[campaign.pk]
    assert entry.figures.delivered == results.total.delivered
    assert entry.figures.opened == results.total.opened
    assert entry.figures.converted == results.total.converted
    assert entry.figures.revenue == results.total.revenue
    assert [g.state for g in entry.goals] == [g.state for g in results.goals]


def test_cached_results_follow_new_events():
    campaign, _variants = build_campaign(sent_days_ago=2)
    before = campaign_results(campaign)
    unopened = Message.objects.filter(
        campaign=campaign, status=MessageStatus.SENT, first_opened_at__isnull=True
    ).first()
    ingest([_hit(unopened, "open", timezone.now())])
    after = campaign_results(campaign)
    assert after.total.opened == before.total.opened + 1


def test_results_of_an_automation_count_every_period():
    campaign, (a, _b) = build_campaign(sent_days_ago=30)
    message = Message.objects.filter(campaign=campaign, status=MessageStatus.SENT).first()
    Message.objects.create(
        campaign=campaign,
        customer=message.customer,
        variant=a,
        email=message.email,
        period="2026",
        status=MessageStatus.SENT,
        sent_at=timezone.now() - timedelta(days=1),
    )
    Campaign.objects.filter(pk=campaign.pk).update(kind="automation", status="sending")
    campaign.refresh_from_db()
    results = compute_results(campaign)
    assert (
        results.total.delivered == Message.objects.filter(campaign=campaign, status="sent").count()
    )
    assert results.provisional


# --- Significance ----------------------------------------------------------------------------


def test_two_proportion_z_test_known_value():
    # 200/1000 vs 150/1000: pooled 0.175, SE = sqrt(0.175 x 0.825 x 2/1000) = 0.016993,
    # z = 0.05 / 0.016993 = 2.9424, two-sided p = 0.003256.
    p = two_proportion_p_value(Proportion("A", 200, 1000), Proportion("B", 150, 1000))
    assert p == pytest.approx(0.003256, abs=1e-6)
    assert two_proportion_p_value(Proportion("A", 0, 10), Proportion("B", 0, 10)) == 1.0
    assert two_proportion_p_value(Proportion("A", 1, 0), Proportion("B", 0, 10)) == 1.0


def test_sample_size_known_value():
    # The textbook case: 10% vs 15%, alpha 0.05 two-sided, power 0.8 -> 686 per group.
    assert sample_size_per_group(0.10, 0.15) == 686
    assert sample_size_per_group(0.2, 0.2) is None


def test_bonferroni_and_the_best_of_three():
    assert bonferroni(0.02, 2) == pytest.approx(0.04)
    assert bonferroni(0.6, 2) == 1.0
    comparison = compare(
        [Proportion("A", 29, 1000), Proportion("B", 41, 1000), Proportion("C", 30, 1000)],
        metric="click_rate",
    )
    assert [t.other.label for t in comparison.tests] == ["A", "C"]
    assert all(t.best.label == "B" for t in comparison.tests)
    raw = two_proportion_p_value(Proportion("B", 41, 1000), Proportion("A", 29, 1000))
    assert comparison.tests[0].p_value == pytest.approx(min(1, raw * 2))
    assert comparison.winner is None  # 4.1% vs 2.9% on 1,000 each is not enough


def test_verdicts_in_plain_words(settings):
    from django.utils import translation

    strong = compare([Proportion("A", 290, 10000), Proportion("B", 410, 10000)], metric="click")
    weak = compare([Proportion("A", 29, 1000), Proportion("B", 34, 1000)], metric="click")
    with translation.override("en"):
        (sentence,) = strong.verdicts("click rate")
        assert sentence.startswith("B's click rate (4.1%) is higher than A's (2.9%)")
        assert "statistically significant (p < 0.001)" in sentence
        (sentence,) = weak.verdicts("click rate")
        assert sentence.startswith("No clear winner yet")
        more = weak.tests[0].more_needed
        needed = sample_size_per_group(0.034, 0.029)
        assert more == needed - 1000
        assert f"About {more:,} more recipients per variant" in sentence
    assert strong.winner.label == "B"
    assert math.isclose(strong.tests[0].best.rate, 0.041)
