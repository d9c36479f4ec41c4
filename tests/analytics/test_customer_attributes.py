"""Filters answered from the customer snapshot (analytics.customer_attributes) and per-customer
figures read from whole months (analytics.period_spend) equal the oracle over raw purchases."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from analytics.breakdowns import purchase_timing, revenue_by, top_customers
from analytics.customer_attributes import current_attributes, snapshot_customers
from analytics.deciles import customer_revenue
from analytics.kpis import Filters, kpis_with_comparisons
from analytics.models import CustomerSnapshot
from analytics.rollups import rebuild_rollups, refresh_rollups
from customers.models import Customer
from segments.models import Segment, SegmentMember
from tests.analytics import oracle
from tests.analytics.conftest import jst
from tests.analytics.test_kpis import PERIODS, assert_same, customers_at


def members_of(filters: Filters) -> set[int]:
    return set(filters.customers().values_list("id", flat=True))


def on_record(end: date, members: set[int]) -> int:
    return customers_at(end) - customers_at_outside(end, members)


def customers_at_outside(end: date, members: set[int]) -> int:
    cut = timezone.make_aware(
        timezone.datetime.combine(end + timedelta(days=1), timezone.datetime.min.time()),
        oracle.TOKYO,
    )
    return sum(
        1
        for c in Customer.objects.exclude(pk__in=members)
        if c.created_at < cut and (c.erased_at is None or c.erased_at >= cut)
    )


@pytest.mark.parametrize(
    "filters",
    [
        Filters(prefecture="13"),
        Filters(channel="ecommerce"),
        Filters(prefecture="27", channel="ecommerce"),
        Filters(prefecture="99"),  # nobody
        "segment",
    ],
)
def test_filtered_kpis_from_the_snapshot_equal_the_oracle(store, filters):
    if filters == "segment":
        segment = Segment.objects.create(name="picked")
        for name in ("c1", "c4", "c6"):
            SegmentMember.objects.create(segment=segment, customer=store[name])
        filters = Filters(segment=segment.pk, channel="ecommerce")
    rebuild_rollups()
    snapshot_customers()
    assert current_attributes() is not None
    members = members_of(filters)
    for start, end in PERIODS:
        expected = oracle.with_comparisons(oracle.snapshot(), start, end, members)
        actual = kpis_with_comparisons(start=start, end=end, filters=filters)
        assert_same(actual, expected)
        for block in (actual, actual["previous"], actual["last_year"]):
            assert block["customers"] == on_record(block["end"], members)


def test_a_customer_created_after_the_snapshot_is_in_the_filter(store, shop):
    rebuild_rollups()
    snapshot_customers()
    late = shop.customer("late", prefecture="13", channel="store")
    shop.buy(late, jst(2026, 5, 20, 9), "700")
    refresh_rollups()
    filters = Filters(prefecture="13")
    members = members_of(filters)
    assert late.pk in members
    start, end = date(2026, 5, 1), date(2026, 5, 31)
    actual = kpis_with_comparisons(start=start, end=end, filters=filters)
    assert_same(actual, oracle.with_comparisons(oracle.snapshot(), start, end, members))
    assert actual["customers"] == on_record(end, members)
    top = top_customers(start=start, end=end, filters=filters)
    assert late.pk in {row["customer_id"] for row in top}
    # Without a filter too: the snapshot's customers and the one created since.
    everyone = kpis_with_comparisons(start=start, end=end)
    assert everyone["customers"] == customers_at(end)
    assert everyone["last_year"]["customers"] == customers_at(everyone["last_year"]["end"])


def test_an_erasure_counts_from_its_day_in_the_snapshot(store):
    Customer.objects.filter(pk=store["c1"].pk).update(erased_at=jst(2026, 5, 10, 12))
    rebuild_rollups()
    snapshot_customers()
    filters = Filters(prefecture="13")
    members = members_of(filters)
    for end in (date(2026, 5, 9), date(2026, 5, 10)):
        figures = kpis_with_comparisons(start=end, end=end, filters=filters)
        assert figures["customers"] == on_record(end, members)
        assert kpis_with_comparisons(start=end, end=end)["customers"] == customers_at(end)
    assert (
        kpis_with_comparisons(start=date(2026, 5, 9), end=date(2026, 5, 9), filters=filters)[
            "customers"
        ]
        == kpis_with_comparisons(start=date(2026, 5, 10), end=date(2026, 5, 10), filters=filters)[
            "customers"
        ]
        + 1
    )


def test_a_stale_snapshot_is_not_used(store):
    rebuild_rollups()
    snapshot_customers()
    # The customer moves after the snapshot, and the refresh task has stopped since.
    Customer.objects.filter(pk=store["c2"].pk).update(prefecture="13")
    CustomerSnapshot.objects.update(built_at=timezone.now() - timedelta(hours=1))
    assert current_attributes() is None
    filters = Filters(prefecture="13")
    members = members_of(filters)
    assert store["c2"].pk in members
    start, end = date(2025, 5, 1), date(2025, 5, 31)
    actual = kpis_with_comparisons(start=start, end=end, filters=filters)
    assert_same(actual, oracle.with_comparisons(oracle.snapshot(), start, end, members))


@pytest.mark.parametrize("filters", [None, Filters(prefecture="13"), Filters(channel="store")])
def test_year_figures_from_whole_months_and_days_equal_the_oracle(store, filters):
    """A period of whole months plus days on both sides: the months' per-customer arrays and
    the days' give each customer's spend, the breakdowns and the top customers."""
    rebuild_rollups()
    snapshot_customers()
    members = members_of(filters) if filters else None
    start, end = date(2025, 4, 15), date(2026, 6, 10)
    ranked = oracle.ranked_spend(oracle.snapshot(), start, end, members)
    ids, cents = customer_revenue(start=start, end=end, filters=filters)
    assert list(ids) == [c for c, _s in ranked]
    assert [int(c) for c in cents] == [int(s * 100) for _c, s in ranked]
    top = top_customers(start=start, end=end, filters=filters)
    assert [row["customer_id"] for row in top] == [c for c, _s in ranked][: len(top)]
    timing = purchase_timing(start=start, end=end, filters=filters)
    assert sum(cell["purchases"] for cell in timing) == sum(
        1
        for p in oracle.snapshot()
        if p.completed and start <= p.day <= end and (members is None or p.customer in members)
    )
    rows = revenue_by("prefecture", start=start, end=end, filters=filters)
    assert sum(row["revenue"] for row in rows) == sum(s for _c, s in ranked)
