"""The incremental refresh leaves the rollups exactly as a full rebuild would."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.kpis import kpis_with_comparisons
from analytics.models import CohortRevenue, CustomerHistory, DailyRollup, MonthlyRollup
from analytics.rollups import (
    mark_dirty,
    mismatched_days,
    rebuild_rollups,
    refresh_rollups,
    verify_rollups,
)
from customers.models import Customer, Purchase, PurchaseStatus
from tests.analytics import oracle
from tests.analytics.conftest import Shop, jst
from tests.analytics.test_kpis import assert_same


def rollup_state() -> dict:
    """Everything the rollups hold, in comparable form."""
    return {
        "daily": sorted(
            DailyRollup.objects.values_list(
                "day",
                "purchases",
                "revenue",
                "customer_checksum",
                "active",
                "amounts",
                "counts",
                "first_buyers",
                "second_buyers",
            )
        ),
        "monthly": sorted(
            MonthlyRollup.objects.values_list(
                "month", "purchases", "revenue", "active", "first_buyers", "second_buyers"
            )
        ),
        "history": sorted(
            CustomerHistory.objects.values_list("customer", "first_day", "second_day")
        ),
        "cohorts": sorted(
            CohortRevenue.objects.values_list(
                "cohort", "month", "channel", "customers", "purchases", "revenue"
            )
        ),
    }


def normalised(state: dict) -> dict:
    return {
        key: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows]
        for key, rows in state.items()
    }


def assert_refresh_equals_rebuild() -> None:
    incremental = normalised(rollup_state())
    rebuild_rollups()
    assert incremental == normalised(rollup_state())


def test_new_purchases_are_added_by_the_refresh(store, shop):
    rebuild_rollups()
    shop.buy(store["c5"], jst(2026, 7, 2, 9), "300")
    shop.buy(store["c1"], jst(2026, 7, 2, 10), "200")
    result = refresh_rollups()
    assert result.new_purchases == 2
    assert result.days == [date(2026, 7, 2)]
    figures = kpis_with_comparisons(start=date(2026, 7, 1), end=date(2026, 7, 31))
    assert (figures["purchases"], figures["new_customers"], figures["revenue"]) == (
        2,
        1,
        Decimal("500.00"),
    )
    assert_refresh_equals_rebuild()


def test_a_cancellation_is_caught_by_mark_dirty_and_by_the_nightly_check(store):
    rebuild_rollups()
    purchase = Purchase.objects.get(customer=store["c2"], total=Decimal("999.99"))
    purchase.status = PurchaseStatus.CANCELLED
    purchase.save(update_fields=["status"])
    assert mismatched_days() == [date(2026, 4, 1)]
    mark_dirty(dates=[date(2026, 4, 1)])
    refresh_rollups()
    assert mismatched_days() == []
    assert_refresh_equals_rebuild()

    Purchase.objects.filter(customer=store["c2"], total=Decimal("200")).delete()
    assert verify_rollups() == [date(2025, 5, 2)]
    start, end = date(2025, 5, 1), date(2025, 5, 31)
    assert_same(
        kpis_with_comparisons(start=start, end=end),
        oracle.with_comparisons(oracle.snapshot(), start, end),
    )
    assert_refresh_equals_rebuild()


def test_refresh_since_a_day_recomputes_from_there(store):
    rebuild_rollups()
    # A change behind the refresh's back (a bulk fix in SQL, say): ``since`` repairs it.
    Purchase.objects.filter(customer=store["c4"]).update(total=Decimal("1"))
    refresh_rollups(since=date(2026, 5, 1))
    assert_refresh_equals_rebuild()


def test_the_first_refresh_builds_everything(store):
    result = refresh_rollups()
    assert result.rebuilt
    assert DailyRollup.objects.exists()


# Random small histories: purchases arrive in batches (some back-dated before a customer's
# first purchase, some on the same day), some get cancelled or deleted and marked dirty; the
# rollups after each incremental refresh must equal a rebuild from scratch.
purchase = st.tuples(
    st.integers(0, 5),  # customer
    st.integers(0, 80),  # day offset
    st.integers(0, 23),  # hour (JST): late hours cross the UTC date line
    st.integers(0, 50_000),  # total in cents
    st.sampled_from(["completed", "completed", "completed", "cancelled", "refunded"]),
)
batch = st.tuples(
    st.lists(purchase, max_size=6),
    st.lists(st.integers(0, 40), max_size=2),  # purchases (by index) to cancel
    st.lists(st.integers(0, 40), max_size=1),  # purchases (by index) to delete
)


@pytest.mark.django_db
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(batch, min_size=1, max_size=4))
def test_incremental_refresh_equals_full_recompute(batches):
    Purchase.objects.all().delete()
    Customer.objects.all().delete()
    shop = Shop()
    customers = [shop.customer(f"h{n}", channel=["store", "line", ""][n % 3]) for n in range(6)]
    base = date(2026, 1, 20)
    rebuild_rollups()
    for new, cancel, delete in batches:
        for cid, offset, hour, cents, status in new:
            day = base + timedelta(days=offset)
            shop.buy(
                customers[cid],
                jst(day.year, day.month, day.day, hour),
                Decimal(cents) / 100,
                status,
            )
        existing = list(Purchase.objects.order_by("id"))
        changed = set()
        for index in cancel:
            if index < len(existing):
                p = existing[index]
                p.status = PurchaseStatus.CANCELLED
                p.save(update_fields=["status"])
                changed.add(oracle.P(p.customer_id, p.purchased_at, p.total, True).day)
        for index in delete:
            if index < len(existing) and Purchase.objects.filter(pk=existing[index].pk).exists():
                p = existing[index]
                changed.add(oracle.P(p.customer_id, p.purchased_at, p.total, True).day)
                p.delete()
        mark_dirty(dates=changed)
        refresh_rollups()
        assert mismatched_days() == []
    incremental = normalised(rollup_state())
    rebuild_rollups()
    assert incremental == normalised(rollup_state())


def test_the_beat_task_refreshes_in_a_celery_worker(celery_worker, shop):
    from analytics.tasks import refresh_analytics
    from tests.conftest import wait_for

    customer = shop.customer("w1")
    shop.buy(customer, jst(2026, 3, 3, 0, 30), "120")
    refresh_analytics.delay()
    wait_for(lambda: DailyRollup.objects.filter(day=date(2026, 3, 3), purchases=1).exists(), 60)
    shop.buy(customer, jst(2026, 3, 4, 9), "80")
    refresh_analytics.delay()
    wait_for(lambda: DailyRollup.objects.filter(day=date(2026, 3, 4)).exists(), 60)
    figures = kpis_with_comparisons(start=date(2026, 3, 1), end=date(2026, 3, 31))
    assert (figures["purchases"], figures["revenue"], figures["repeat_rate"]) == (
        2,
        Decimal("200.00"),
        1.0,
    )


@pytest.mark.django_db
def test_a_day_marked_again_during_a_refresh_keeps_its_mark():
    from analytics.models import DirtyDay
    from analytics.rollups import clear_marks

    mark_dirty(dates=[date(2026, 4, 1), date(2026, 4, 2)])
    marked = list(DirtyDay.objects.values_list("day", "marked_at"))  # what a refresh read
    mark_dirty(dates=[date(2026, 4, 2)])  # a purchase of 2 April changed meanwhile

    clear_marks(marked)

    assert list(DirtyDay.objects.values_list("day", flat=True)) == [date(2026, 4, 2)]
