"""The dashboard's readers get through binary COPY (analytics.binary_rows) exactly the rows a
SELECT gives: blobs, dates, flags, text with non-ASCII, decimals, empty and no rows."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest

from analytics.binary_rows import binary_rows, integer_column
from analytics.models import BreakdownCell, DailyRollup, PackedMonth
from analytics.rollups import rebuild_rollups
from customers.models import Customer

CELL_FIELDS = (
    "id",
    "day",
    "is_month",
    "dimension",
    "key",
    "purchases",
    "revenue",
    "customers",
    "amounts",
)


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


def test_json_equals_the_select(store):
    rebuild_rollups()
    PackedMonth.objects.create(
        month="2020-01-01", dimension="category", keys=["和菓子・お茶", "", 'a "quoted" key']
    )
    rows = PackedMonth.objects.order_by("dimension", "month")
    assert len(rows) > 1
    assert list(binary_rows(rows, "month", "keys")) == list(rows.values_list("month", "keys"))


def test_integer_column_equals_the_select(store):
    customers = Customer.objects.order_by("id")
    assert sorted(integer_column(customers, "id").tolist()) == list(
        customers.values_list("id", flat=True)
    )
    # A 32-bit column (the ids are 64-bit) and repeated values.
    rebuild_rollups()
    days = DailyRollup.objects.order_by("day")
    assert sorted(integer_column(days, "purchases").tolist()) == sorted(
        days.values_list("purchases", flat=True)
    )
    assert len(set(days.values_list("purchases", flat=True))) < days.count()
    assert integer_column(customers.filter(id__in=[]), "id").tolist() == []
    assert integer_column(customers.filter(id__lt=0), "id").tolist() == []


@pytest.mark.parametrize(
    "revenue",
    [
        "0",
        "0.01",
        "-0.50",
        "12.34",
        "-12.34",
        "10000",
        "99999999.99",
        "1432992428.00",
        "9999999999999999.99",
        "-1000000000000000.01",
    ],
)
def test_decimals_are_exact(store, revenue):
    """PostgreSQL's binary numeric (base-10000 digits, weight, sign, scale) decoded exactly,
    with the column's two decimals."""
    cell = BreakdownCell.objects.create(
        day="2025-06-02", dimension="category", key="x", purchases=1, revenue=Decimal(revenue)
    )
    [(got,)] = binary_rows(BreakdownCell.objects.filter(pk=cell.pk), "revenue")
    assert got == Decimal(revenue) and str(got) == str(Decimal(revenue).quantize(Decimal("0.01")))


def test_stream_reads_across_messages():
    """PostgreSQL sends a message per row, so a field lies inside one; the stream still
    reads one split anywhere (another server could), as views where it can."""
    from analytics.binary_rows import _Stream

    data = bytes(range(256)) * 3
    for cuts in ([], [1], [5, 6, 300], [255, 256, 257], list(range(0, len(data), 7))):
        bounds = [0, *cuts, len(data)]
        stream = _Stream([data[a:b] for a, b in pairwise(bounds)])
        assert bytes(stream.read(3)) == data[:3]
        assert stream.integer(2) == int.from_bytes(data[3:5], "big", signed=True)
        assert bytes(stream.read(600)) == data[5:605]
        assert bytes(stream.read(len(data) - 605)) == data[605:]
        with pytest.raises(ValueError):
            stream.read(1)
