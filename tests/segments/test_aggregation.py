"""Per-customer aggregates in the database: local calendar days, completed purchases only,
the window, the default as-of date; the PostgreSQL fast path agrees with the portable one."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection

from customers.models import PurchaseStatus
from segments import aggregation
from segments.aggregation import customer_aggregates
from tests.customers.factories import CustomerFactory, PurchaseFactory

pytestmark = pytest.mark.django_db
JST = timezone(timedelta(hours=9))
PST = timezone(timedelta(hours=-8))


def rows(frame) -> dict[int, tuple]:
    return {
        row.customer_id: (
            row.recency_days,
            row.frequency,
            round(row.monetary, 2),
            row.first_purchase_on.date(),
            row.last_purchase_on.date(),
        )
        for row in frame.itertuples()
    }


@pytest.fixture
def shop():
    early, late, mixed, cancelled_only = CustomerFactory.create_batch(4)
    # 00:30 JST on 3 May is 15:30 UTC on 2 May: it counts on 3 May.
    PurchaseFactory(
        customer=early, purchased_at=datetime(2026, 5, 2, 15, 30, tzinfo=UTC), total=1000
    )
    # 23:59 JST on 2 May, sent with a Pacific offset (06:59 on 2 May in California).
    PurchaseFactory(
        customer=early, purchased_at=datetime(2026, 5, 2, 6, 59, tzinfo=PST), total=Decimal("0.50")
    )
    PurchaseFactory(customer=late, purchased_at=datetime(2026, 6, 30, 23, 59, tzinfo=JST), total=0)
    PurchaseFactory(customer=mixed, purchased_at=datetime(2026, 6, 1, 10, 0, tzinfo=JST), total=300)
    for status in (PurchaseStatus.CANCELLED, PurchaseStatus.REFUNDED):
        # Newer than every completed purchase: neither counted nor the as-of date's base.
        PurchaseFactory(
            customer=mixed, purchased_at=datetime(2026, 7, 5, tzinfo=JST), total=900, status=status
        )
        PurchaseFactory(
            customer=cancelled_only,
            purchased_at=datetime(2026, 6, 5, tzinfo=JST),
            total=50,
            status=status,
        )
    return early, late, mixed, cancelled_only


def test_local_days_completed_purchases_and_default_as_of(shop):
    early, late, mixed, cancelled_only = shop
    frame, as_of = customer_aggregates()
    # The newest completed purchase is on 30 June (JST): as of 1 July.
    assert as_of == date(2026, 7, 1)
    assert rows(frame) == {
        early.pk: (59, 2, 1000.5, date(2026, 5, 2), date(2026, 5, 3)),
        late.pk: (1, 1, 0.0, date(2026, 6, 30), date(2026, 6, 30)),
        mixed.pk: (30, 1, 300.0, date(2026, 6, 1), date(2026, 6, 1)),
    }
    assert cancelled_only.pk not in rows(frame)


def test_window_and_as_of(shop):
    early, late, mixed, _ = shop
    # Window of 29 days before 1 July: dates 2 June .. 30 June. 1 June is out.
    frame, as_of = customer_aggregates(as_of=date(2026, 7, 1), window_days=29)
    assert as_of == date(2026, 7, 1)
    assert set(rows(frame)) == {late.pk}
    # 30 days: 1 June is the first day in.
    frame, _ = customer_aggregates(as_of=date(2026, 7, 1), window_days=30)
    assert set(rows(frame)) == {late.pk, mixed.pk}
    # Purchases on or after as_of never count: as of 3 May only the 23:59 one on 2 May.
    frame, _ = customer_aggregates(as_of=date(2026, 5, 3))
    assert rows(frame) == {early.pk: (1, 1, 0.5, date(2026, 5, 2), date(2026, 5, 2))}
    frame, _ = customer_aggregates(as_of=date(2026, 5, 3), window_days=1)
    assert set(rows(frame)) == {early.pk}


def test_no_purchases_at_all():
    frame, as_of = customer_aggregates()
    assert frame.empty
    assert list(frame.columns) == aggregation.COLUMNS
    assert isinstance(as_of, date)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the fast path is PostgreSQL's")
def test_postgresql_fast_path_agrees_with_the_portable_path(shop):
    end = aggregation.local_midnight(date(2026, 7, 1))
    for start in (None, aggregation.local_midnight(date(2026, 6, 1))):
        fast = aggregation._aggregate_postgresql(start=start, end=end)
        portable = aggregation._aggregate_orm(start=start, end=end)
        key = "customer_id"
        assert fast.sort_values(key).reset_index(drop=True).to_dict(
            "records"
        ) == portable.sort_values(key).reset_index(drop=True).to_dict("records")
