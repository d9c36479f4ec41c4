"""Breakdowns of a period's completed purchases: purchase timing (weekday x hour), revenue by
the customer's prefecture, by the purchase's sales channel and by product category, and the
top customers. Read from the rollups (the breakdown cells, ``analytics.models.BreakdownCell``,
and the per-customer arrays of analytics.period_spend), never from the purchases table.

Definitions, for a period start..end of calendar dates in settings.TIME_ZONE (inclusive),
completed purchases only (DESIGN.md):

- timing: each purchase counts at the local weekday (0 = Monday) and hour it was made;
- prefecture: the customer's prefecture now ("" = none recorded: a customer who moves counts
  under the new one for all their purchases); channel: the *purchase's* sales
  channel (``Purchase.channel``: e-commerce, store, phone...), not the customer's source
  channel; purchases, customers (distinct) and revenue per value, share = revenue / the
  period's revenue;
- category: each item's quantity x unit price counts under its product's category; what a
  purchase's total does not owe to its items (a purchase without items, shipping, a
  discount) counts under "no category", so the categories add up to the revenue. A purchase
  counts once in every category it has money in, so their purchases add up to more than the
  period's;
- top customers: by revenue in the period (ties: lower customer id first), with their
  purchases, share of the period's revenue and last purchase in the period.

Filters (prefecture, source channel, segment) restrict every figure to the customers who match
now, as the KPIs do (``analytics.kpis.customer_set``).

How it stays fast: the cells are the purchases pre-grouped per day and value, each holding the
bitmap of its customers and, aligned with it, each customer's purchase count and spend (the
layout of ``DailyRollup``). Without a filter, purchases and revenue are summed by the database
over the cells' totals, and distinct customers are unions of whole months' cells plus the
days outside whole months. With a filter, whole months are read from their packed rows
(analytics.packed_months: a month's cells of a dimension in one row, less than half their
bytes) and the other days from their cells, masked by the filter's customer set (one flag
lookup and two masked sums per row or cell; a value's distinct customers are its wanted ids
of every month and day counted once): exact for any set of customers (a segment too), at
the cost of reading the arrays. The top customers rank
the per-customer figures of analytics.period_spend (whole months' arrays), which the deciles
and the filtered KPIs share; revenue by prefecture sums the same figures by the customer
snapshot's prefecture of each customer (no cells to read). Cubes
per prefecture x source channel would read less for those two filters, but not for segments,
and would go stale whenever a customer's attributes change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from django.db.models import OuterRef, Q, Subquery
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from pyroaring import BitMap

from analytics import bitmaps, packed_months
from analytics.binary_rows import binary_rows
from analytics.customer_attributes import current_attributes
from analytics.kpis import Filters, Period, customer_set, split_period
from analytics.models import BreakdownCell, BreakdownDimension
from analytics.period_spend import period_figures
from analytics.rollups import analytics_timezone, cents_to_decimal, day_start
from customers.models import Customer, Purchase, PurchaseChannel
from customers.prefectures import Prefecture

ONE_DAY = timedelta(days=1)
HOURS = 24
WEEKDAYS = 7
TOP_CUSTOMERS = 20
DIMENSIONS = ("prefecture", "channel", "category")
DIMENSION_TITLES = {
    "prefecture": _("Revenue by customer's prefecture"),
    "channel": _("Revenue by sales channel of the purchase"),
    "category": _("Revenue by product category"),
}
NO_VALUE_LABELS = {
    "prefecture": _("No prefecture recorded"),
    "channel": _("No sales channel recorded"),
    "category": _("No category"),
}
WEEKDAY_NAMES = (
    _("Monday"),
    _("Tuesday"),
    _("Wednesday"),
    _("Thursday"),
    _("Friday"),
    _("Saturday"),
    _("Sunday"),
)


def label_of(dimension: str, key: str) -> str:
    """The translated name of a value of a dimension (a category is shown as recorded)."""
    if not key:
        return str(NO_VALUE_LABELS[dimension])
    if dimension == "prefecture" and key in Prefecture.values:
        return str(Prefecture(key).label)
    if dimension == "channel" and key in PurchaseChannel.values:
        return str(PurchaseChannel(key).label)
    return key


# --- Reading the cells ------------------------------------------------------------------------


@dataclass
class _Sums:
    purchases: int = 0
    cents: int = 0
    customers: int = 0  # distinct


def _cells(dimension: str, period: Period):
    """The cells covering ``period``: whole months' cells where a month lies inside it, day
    cells for the other days."""
    return _cells_of(dimension, *split_period(period))


def _cells_of(dimension: str, whole: list[date], days: list[date]):
    """The month cells of the months ``whole`` and the day cells of ``days``."""
    inside = Q()
    if whole:
        inside |= Q(is_month=True, day__in=whole)
    if days:
        inside |= Q(is_month=False, day__gte=min(days), day__lte=max(days), day__in=days)
    return BreakdownCell.objects.filter(inside, dimension=dimension).order_by()


def _masked_cell_sums(
    lookup: np.ndarray, rows, size: int, *, with_customers: bool = False
) -> tuple[np.ndarray, np.ndarray, list[list[np.ndarray]]]:
    """``rows``: (group, customers, amounts, counts) of cells, group in 0..size-1. The
    purchases and cents per group of the entries flagged in ``lookup`` (bitmaps.lookup_of),
    and, ``with_customers``, each group's wanted ids cell by cell (their distinct count is
    packed_months.distinct's). Cell by cell: a cell's group is its own, so each needs one
    flag lookup and two masked sums, nothing concatenated or sorted."""
    purchases = np.zeros(size, dtype=np.int64)
    cents = np.zeros(size, dtype=np.int64)
    wanted: list[list[np.ndarray]] = [[] for _ in range(size)]
    for group, blob, amounts, counts in rows:
        ids = bitmaps.to_numpy(bitmaps.load(blob))
        keep = lookup.take(ids, mode="clip")
        purchases[group] += bitmaps.masked_sum(bitmaps.unpack_ints(counts, ids.size), keep)
        cents[group] += bitmaps.masked_sum(bitmaps.unpack_ints(amounts, ids.size), keep)
        if with_customers:
            wanted[group].append(ids[keep])
    return purchases, cents, wanted


def _sums_by_key(dimension: str, period: Period, filters: Filters | None) -> dict[str, _Sums]:
    if not filters:
        return _all_sums_by_key(dimension, period)
    # Whole months from their packed rows, the other months (rows not written yet) and the
    # days outside whole months from their cells.
    whole, days = split_period(period)
    packed = packed_months.rows(dimension, whole)
    rest = sorted(set(whole) - {row[0] for row in packed})
    # The cells' groups are numbered as they come: the keys are not known before.
    keys: dict[str, int] = {}
    cells = []
    if rest or days:
        cells = [
            (keys.setdefault(key, len(keys)), bitmap, amounts, counts)
            for key, bitmap, amounts, counts in binary_rows(
                _cells_of(dimension, rest, days), "key", "customers", "amounts", "counts"
            )
        ]
    # The rows are read first: the filter's customers may still be being primed.
    customers = customer_set(filters)
    if not customers:
        return {}
    lookup = bitmaps.lookup_of(customers)
    # Per key: purchases, cents and the wanted customers' ids of each row or cell.
    totals: dict[str, tuple[list[int], list[np.ndarray]]] = {}

    def add(key: str, purchases: int, cents: int, ids: list[np.ndarray]) -> None:
        figures, parts = totals.setdefault(key, ([0, 0], []))
        figures[0] += purchases
        figures[1] += cents
        parts.extend(ids)

    for row in packed:
        month = packed_months.masked(row, lookup, with_customers=True)
        for index, key in enumerate(month.keys):
            add(key, int(month.purchases[index]), int(month.cents[index]), [month.customers[index]])
    if cells:
        purchases, cents, wanted = _masked_cell_sums(lookup, cells, len(keys), with_customers=True)
        for key, group in keys.items():
            add(key, int(purchases[group]), int(cents[group]), wanted[group])
    # Distinct customers of a key: its wanted ids of every month and day, counted once.
    flags = np.zeros(lookup.size, dtype=bool)
    return {
        key: _Sums(purchases, cents, packed_months.distinct(parts, flags))
        for key, ((purchases, cents), parts) in totals.items()
        if purchases
    }


def _all_sums_by_key(dimension: str, period: Period) -> dict[str, _Sums]:
    """Without a filter: the cells' totals, and distinct customers by union of bitmaps."""
    sums: dict[str, _Sums] = {}
    blobs: dict[str, list[BitMap]] = {}
    for key, n, revenue, bitmap in binary_rows(
        _cells(dimension, period), "key", "purchases", "revenue", "customers"
    ):
        entry = sums.setdefault(key, _Sums())
        entry.purchases += n
        entry.cents += int(revenue * 100)
        blobs.setdefault(key, []).append(bitmaps.load(bitmap))
    for key, parts in blobs.items():
        sums[key].customers = len(bitmaps.union(parts))
    return sums


def _prefectures_of(ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each customer's prefecture NOW, as codes into the returned list of values: from the
    customer snapshot's array (a few milliseconds), or without a recent snapshot from the
    customers table."""
    attributes = current_attributes()
    if attributes is not None:
        known = attributes.prefectures
        codes = np.zeros(ids.size, dtype=np.int64)
        inside = ids < known.size
        codes[inside] = known[ids[inside]]
        return codes, attributes.values["prefecture"]
    values: dict[str, int] = {"": 0}
    found = {
        cid: values.setdefault(prefecture or "", len(values))
        # ids ascend: one index range, not a list of hundreds of thousands of ids.
        for cid, prefecture in Customer.objects.filter(id__gte=ids[0], id__lte=ids[-1])
        .order_by()
        .values_list("id", "prefecture")
        .iterator(chunk_size=50_000)
    }
    codes = np.array([found.get(int(cid), 0) for cid in ids], dtype=np.int64)
    return codes, list(values)


def _sums_by_prefecture(period: Period, filters: Filters | None) -> dict[str, _Sums]:
    """The period's figures per customer (analytics.period_spend, shared with the ranking and
    the top customers) summed by the customer's current prefecture: a customer who moves is
    counted under the new prefecture for all their purchases, as the prefecture filter does."""
    figures = period_figures(period=period, filters=filters)
    if not figures.ids.size:
        return {}
    codes, values = _prefectures_of(figures.ids)
    size = len(values)
    # Float sums of integers are exact below 2**53 minor units.
    purchases = np.rint(np.bincount(codes, weights=figures.counts, minlength=size)).astype(np.int64)
    cents = np.rint(np.bincount(codes, weights=figures.cents, minlength=size)).astype(np.int64)
    customers = np.bincount(codes, minlength=size)
    return {
        values[code]: _Sums(int(purchases[code]), int(cents[code]), int(customers[code]))
        for code in np.flatnonzero(customers)
    }


# --- Figures ----------------------------------------------------------------------------------


def _hour_group(day: date, is_month: bool, key: str) -> int:
    """weekday x 24 + hour of a day cell (key "hour") or a month cell (key "weekday:hour")."""
    if is_month:
        weekday, hour = key.split(":")
        return int(weekday) * HOURS + int(hour)
    return day.weekday() * HOURS + int(key)


def purchase_timing(*, start: date, end: date, filters: Filters | None = None) -> list[dict]:
    """The 7 x 24 cells of the period (Monday 0h first): purchases and revenue made on that
    local weekday at that hour."""
    purchases = np.zeros(WEEKDAYS * HOURS, dtype=np.int64)
    cents = np.zeros(WEEKDAYS * HOURS, dtype=np.int64)
    if not filters:
        cells = _cells(BreakdownDimension.HOUR, Period(start, end))
        for day, is_month, key, n, revenue in cells.values_list(
            "day", "is_month", "key", "purchases", "revenue"
        ):
            group = _hour_group(day, is_month, key)
            purchases[group] += n
            cents[group] += int(revenue * 100)
    else:
        purchases, cents = _filtered_timing(Period(start, end), filters)
    return [
        {
            "weekday": w,
            "hour": h,
            "purchases": int(purchases[w * HOURS + h]),
            "revenue": cents_to_decimal(int(cents[w * HOURS + h])),
        }
        for w in range(WEEKDAYS)
        for h in range(HOURS)
    ]


def _filtered_timing(period: Period, filters: Filters) -> tuple[np.ndarray, np.ndarray]:
    """Purchases and cents per weekday x hour of the customers matching ``filters``: whole
    months from their packed rows (analytics.packed_months), the other days and any month
    without its row from the cells."""
    whole, days = split_period(period)
    size = WEEKDAYS * HOURS
    purchases = np.zeros(size, dtype=np.int64)
    cents = np.zeros(size, dtype=np.int64)
    # The rows are read first: the filter's customers may still be being primed.
    packed = packed_months.rows(BreakdownDimension.HOUR, whole)
    customers = customer_set(filters)
    if not customers:
        return purchases, cents
    lookup = bitmaps.lookup_of(customers)
    for row in packed:
        month = packed_months.masked(row, lookup)
        # A month's keys are distinct: plain fancy indexing adds each once.
        groups = np.array([_hour_group(row[0], True, key) for key in month.keys], dtype=np.intp)
        purchases[groups] += month.purchases
        cents[groups] += month.cents
    rest = sorted(set(whole) - {row[0] for row in packed})
    if rest or days:
        cells = _cells_of(BreakdownDimension.HOUR, rest, days)
        more_purchases, more_cents, _wanted = _masked_cell_sums(
            lookup,
            (
                (_hour_group(day, is_month, key), blob, amounts, counts)
                for day, is_month, key, blob, amounts, counts in binary_rows(
                    cells, "day", "is_month", "key", "customers", "amounts", "counts"
                )
            ),
            size,
        )
        purchases += more_purchases
        cents += more_cents
    return purchases, cents


def _share(cents: int, total: int) -> float | None:
    return cents / total if total else None


def revenue_by(
    dimension: str, *, start: date, end: date, filters: Filters | None = None
) -> list[dict]:
    """Rows {key, label, purchases, customers, revenue, share} of the period for one of
    ``DIMENSIONS``, by revenue (highest first; ties by key)."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown breakdown dimension {dimension!r}")
    period = Period(start, end)
    if dimension == "prefecture":
        sums = _sums_by_prefecture(period, filters)
    else:
        sums = _sums_by_key(dimension, period, filters)
    total = sum(s.cents for s in sums.values())
    ordered = sorted(sums.items(), key=lambda item: (-item[1].cents, item[0]))
    return [
        {
            "key": key,
            "label": label_of(dimension, key),
            "purchases": s.purchases,
            "customers": s.customers,
            "revenue": cents_to_decimal(s.cents),
            "share": _share(s.cents, total),
        }
        for key, s in ordered
    ]


def top_customers(
    *, start: date, end: date, filters: Filters | None = None, limit: int = TOP_CUSTOMERS
) -> list[dict]:
    """The period's ``limit`` customers with the highest revenue (ties: lower id first)."""
    figures = period_figures(period=Period(start, end), filters=filters)
    ids, purchases, spend = figures.ids, figures.counts, figures.cents
    if not ids.size:
        return []
    total = int(spend.sum())
    if ids.size > limit:
        # Everyone tied with the limit-th spend stays a candidate: the tie-break is by id.
        threshold = np.partition(spend, ids.size - limit)[ids.size - limit]
        candidates = np.flatnonzero(spend >= threshold)
    else:
        candidates = np.arange(ids.size)
    order = candidates[np.lexsort((ids[candidates], -spend[candidates]))][:limit]
    chosen = [int(i) for i in ids[order]]
    # The last completed purchase up to the period's end is in the period (every one of them
    # bought in it): one index lookup per customer on (customer, -purchased_at), where a
    # GROUP BY over the period's purchases would read all of them.
    last_purchase = (
        Purchase.objects.completed()
        .filter(customer=OuterRef("pk"), purchased_at__lt=day_start(end + ONE_DAY))
        .order_by("-purchased_at")
        .values("purchased_at")[:1]
    )
    records = Customer.objects.annotate(last_purchase=Subquery(last_purchase)).in_bulk(chosen)
    zone = analytics_timezone()
    rows = []
    for index in order:
        cid = int(ids[index])
        customer = records.get(cid)
        rows.append(
            {
                "customer_id": cid,
                "name": customer.display_name if customer else str(cid),
                "kana": customer.kana_name if customer else "",
                "prefecture": customer.prefecture if customer else "",
                "prefecture_label": label_of("prefecture", customer.prefecture if customer else ""),
                "purchases": int(purchases[index]),
                "revenue": cents_to_decimal(int(spend[index])),
                "share": _share(int(spend[index]), total),
                "last_purchase": customer.last_purchase.astimezone(zone)
                if customer and customer.last_purchase
                else None,
                "url": reverse("customers:detail", args=[cid]),
            }
        )
    return rows
