"""Changes to purchases that the analytics' id watermark cannot see (an import or API update
of an existing order, a merge, an admin edit or deletion) mark their days: after the change
and a refresh, the KPIs equal the plain-Python oracle's and the rollups equal a rebuild.
Without the marks each of these tests fails (the refresh leaves the old figures)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from django.contrib import admin
from django.test import RequestFactory

from analytics.kpis import kpis_with_comparisons
from analytics.models import DirtyDay
from analytics.rollups import mismatched_days, rebuild_rollups, refresh_rollups
from customers.freshness import long_insert_committed
from customers.merging import merge_customers
from customers.models import Customer, Purchase
from tests.analytics import oracle
from tests.analytics.test_kpis import assert_same
from tests.analytics.test_refresh import assert_refresh_equals_rebuild
from tests.customers.factories import CustomerFactory, ProductFactory
from tests.customers.test_api import API
from tests.customers.test_importing import purchases_csv

HEADER = "order_id,customer_external_id,purchased_at,total,status,sku,quantity,unit_price"
MONTHS = [(date(2026, 4, 1), date(2026, 4, 30)), (date(2026, 5, 1), date(2026, 5, 31))]


def csv_text(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def jst(*args) -> datetime:
    return datetime(*args, tzinfo=oracle.TOKYO)


@pytest.fixture
def shop(db):
    """Two customers with purchases in April and May 2026, the rollups built."""
    first = CustomerFactory(external_id="A-1", channel="store")
    second = CustomerFactory(external_id="A-2", channel="line")
    ProductFactory(sku="TEA", category="飲料")
    purchases_csv(
        csv_text(
            "O-1,A-1,2026-04-03T10:00:00+09:00,1000,completed,TEA,1,1000",
            "O-2,A-1,2026-05-10T10:00:00+09:00,2000,completed,TEA,2,1000",
            "O-3,A-2,2026-04-20T23:30:00+09:00,500,completed,,,",
            "O-4,A-2,2026-05-01T00:10:00+09:00,700,completed,,,",
        )
    )
    rebuild_rollups()
    return {"first": first, "second": second}


def assert_fresh() -> None:
    """A refresh brings the analytics to the oracle's figures and to a rebuild's rollups."""
    refresh_rollups()
    assert mismatched_days() == []
    purchases = oracle.snapshot()
    for start, end in MONTHS:
        assert_same(
            kpis_with_comparisons(start=start, end=end),
            oracle.with_comparisons(purchases, start, end),
        )
    assert_refresh_equals_rebuild()


def test_an_import_that_moves_and_changes_existing_orders_marks_their_days(
    shop, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = purchases_csv(
            csv_text(
                # Moved from April to May, and a new total.
                "O-1,A-1,2026-05-20T10:00:00+09:00,1500,completed,TEA,1,1500",
                # Cancelled: no longer counted on its day.
                "O-4,A-2,2026-05-01T00:10:00+09:00,700,cancelled,,,",
                # Given to the other customer.
                "O-3,A-1,2026-04-20T23:30:00+09:00,500,completed,,,",
            )
        )
    assert (result.committed, result.updated) == (True, 3)
    assert set(DirtyDay.objects.values_list("day", flat=True)) == {
        date(2026, 4, 3),
        date(2026, 5, 20),
        date(2026, 5, 1),
        date(2026, 4, 20),
    }
    assert_fresh()


def test_an_import_that_changes_nothing_marks_nothing(shop, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        purchases_csv(csv_text("O-2,A-1,2026-05-10T10:00:00+09:00,2000,completed,TEA,2,1000"))
    assert not DirtyDay.objects.exists()


def test_an_import_rolled_back_marks_nothing(shop, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = purchases_csv(
            csv_text(
                "O-1,A-1,2026-05-20T10:00:00+09:00,1500,completed,,,",
                "O-9,NOBODY,2026-05-20T10:00:00+09:00,1500,completed,,,",
            )
        )
    assert not result.committed
    assert not DirtyDay.objects.exists()


def test_api_updates_and_bulk_upserts_mark_the_old_and_new_days(
    shop, sales, django_capture_on_commit_callbacks
):
    api = API(sales)
    api.client.force_login(sales)
    o2 = Purchase.objects.get(order_id="O-2")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(
            f"/api/v1/purchases/{o2.pk}/",
            {"purchased_at": "2026-04-28T09:00:00+09:00", "status": "refunded"},
        )
    assert response.status_code == 200, response.content
    assert_fresh()

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/purchases/bulk/",
            {
                "purchases": [
                    {
                        "order_id": "O-3",
                        "customer_external_id": "A-2",
                        "purchased_at": "2026-05-30",
                        "total": "900",
                    }
                ]
            },
        )
    assert response.status_code == 200, response.content
    assert response.json()["updated"] == 1
    assert_fresh()


def test_a_merge_marks_the_days_of_the_moved_purchases(
    shop, admin_member, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        merge_customers(keep=shop["first"], duplicates=[shop["second"]], by=admin_member)
    assert Purchase.objects.filter(customer=shop["first"]).count() == 4
    assert_fresh()


def test_admin_edits_and_deletions_mark_their_days(
    shop, admin_member, django_capture_on_commit_callbacks
):
    request = RequestFactory().post("/admin/")
    request.user = admin_member
    purchases = admin.site._registry[Purchase]
    o1 = Purchase.objects.get(order_id="O-1")
    with django_capture_on_commit_callbacks(execute=True):
        o1.purchased_at = jst(2026, 5, 2, 8)
        o1.total = Decimal("1234")
        purchases.save_model(request, o1, form=None, change=True)
    assert_fresh()

    with django_capture_on_commit_callbacks(execute=True):
        purchases.delete_model(request, Purchase.objects.get(order_id="O-2"))
    assert_fresh()

    with django_capture_on_commit_callbacks(execute=True):
        purchases.delete_queryset(request, Purchase.objects.filter(order_id="O-3"))
    assert_fresh()

    with django_capture_on_commit_callbacks(execute=True):
        admin.site._registry[Customer].delete_queryset(
            request, Customer.objects.filter(pk=shop["second"].pk)
        )
    assert_fresh()


def test_purchases_committed_below_the_watermark_are_marked(
    shop, django_capture_on_commit_callbacks
):
    # A long import took its ids early; meanwhile another purchase got a higher id and a
    # refresh moved the watermark past the import's ids before the import committed.
    high = Purchase.objects.order_by("-id").values_list("id", flat=True).first()

    def buy(pk: int, order_id: str, customer, at: datetime) -> Purchase:
        return Purchase.objects.create(
            id=pk, order_id=order_id, customer=customer, purchased_at=at, total=Decimal("4321")
        )

    buy(high + 2, "OTHER", shop["first"], jst(2026, 5, 12, 9))
    refresh_rollups()
    buy(high + 1, "IMPORTED", shop["second"], jst(2026, 4, 12, 9))  # the import commits
    refresh_rollups()
    assert mismatched_days() == [date(2026, 4, 12)]  # the watermark alone misses it
    with django_capture_on_commit_callbacks(execute=True):
        long_insert_committed(first_id=high + 1, count=1)
    assert_fresh()
