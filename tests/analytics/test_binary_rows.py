"""The dashboard's readers get through binary COPY (analytics.binary_rows) exactly the rows a
SELECT gives: blobs, dates, flags, text with non-ASCII, empty and no rows."""

from __future__ import annotations

from analytics.binary_rows import binary_rows, integer_column
from analytics.models import BreakdownCell, DailyRollup
from analytics.rollups import rebuild_rollups
from customers.models import Customer

CELL_FIELDS = ("id", "day", "is_month", "dimension", "key", "purchases", "customers", "amounts")


def test_rows_equal_the_select(store):
    rebuild_rollups()
    # A category as typed in Japanese, no customers (empty blobs).
    BreakdownCell.objects.create(
        day="2025-06-01", dimension="category", key="和菓子・お茶", purchases=1, revenue=5
    )
    cells = BreakdownCell.objects.order_by("id")
    expected = [
        tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
        for row in cells.values_list(*CELL_FIELDS)
    ]
    got = [
        tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
        for row in binary_rows(cells, *CELL_FIELDS)
    ]
    assert got == expected
    assert any(row[4] == "和菓子・お茶" for row in got)
    assert DailyRollup.objects.exists()
    assert list(binary_rows(DailyRollup.objects.filter(day__in=[]), "day")) == []
    assert list(binary_rows(DailyRollup.objects.filter(purchases__lt=0), "day")) == []


def test_integer_column_equals_the_select(store):
    customers = Customer.objects.order_by("id")
    assert integer_column(customers, "id").tolist() == list(customers.values_list("id", flat=True))
    assert integer_column(customers.filter(id__in=[]), "id").tolist() == []
    assert integer_column(customers.filter(id__lt=0), "id").tolist() == []
