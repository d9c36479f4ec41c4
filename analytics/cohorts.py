"""Acquisition cohorts: retention by month since the first purchase, and lifetime value.

Cohort = the calendar month (settings.TIME_ZONE) of a customer's first completed purchase.
Retention at month k = share of the cohort with a purchase in month first+k (k = 0 is always
1). Historical LTV = the cohort's cumulative revenue (all of its completed purchases so far, or
up to month first+k for the k-th cumulative value) / the cohort's size.

LTV follows any set of customers (a filter's ``customer_set``) and groups by the customers'
source channel as it is now: it is computed from every customer's cohort and lifetime spend
(``customer_attributes.Lifetimes``, arrays indexed by customer id), masked by the set. Without
a set, the same figures come from their sums per cohort and channel stored with the arrays
(``customer_attributes.LifetimeTotals``, a few hundred numbers where the arrays are megabytes);
by channel only while those sums' customer snapshot is the current one. Without lifetime
figures built from the current rollups, an unrestricted table is read from the cohort cells
(``CohortRevenue``, exact and small) and a restricted one from arrays computed from the
monthly rollups (slower, as exact). The cumulative values restricted to a set read the
per-customer arrays of every month since the first cohort (the API's, not the page's).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import numpy as np
from django.db.models import Max
from pyroaring import BitMap

from analytics import bitmaps
from analytics.binary_rows import binary_rows
from analytics.customer_attributes import (
    CohortNumbers,
    Lifetimes,
    LifetimeTotals,
    channel_totals,
    channels_now,
    computed_lifetimes,
    exact_sums,
    fresh_lifetimes,
    fresh_totals,
)
from analytics.kpis import Filters, customer_set, money_ratio, ratio
from analytics.models import CohortRevenue, MonthlyRollup
from analytics.rollups import cents_to_decimal, month_of, months_between


def _month_range(months: list[date], start_month: date | None, end_month: date | None):
    first = month_of(start_month) if start_month else (months[0] if months else None)
    last = month_of(end_month) if end_month else (months[-1] if months else None)
    return first, last


def cohort_table(
    *,
    start_month: date | None = None,
    end_month: date | None = None,
    filters: Filters | None = None,
    through_month: date | None = None,
) -> list[dict]:
    """One row per non-empty cohort in start_month..end_month (default: all of them): its
    size and, for k = 0, 1, ... up to the newest month with purchases (or ``through_month``
    if earlier), how many of its customers bought in month first+k (``retained``) and their
    share (``retention``)."""
    months = list(MonthlyRollup.objects.order_by("month").values_list("month", flat=True))
    if not months:
        return []
    first, last = _month_range(months, start_month, end_month)
    newest = months[-1] if through_month is None else min(months[-1], month_of(through_month))
    if not (first and last and first <= last):
        return []
    # Only the months the table reads: each month's bitmaps are hundreds of kilobytes at a
    # million customers, and a triangle of two years needs two years of them, not all.
    rows = MonthlyRollup.objects.filter(month__gte=first, month__lte=max(last, newest))
    active, firsts = {}, {}
    # By binary COPY: a SELECT would send the megabytes of bitmaps as hex text.
    for month, active_blob, first_blob in binary_rows(rows, "month", "active", "first_buyers"):
        active[month] = active_blob
        if month <= last:
            firsts[month] = first_blob
    customers = customer_set(filters)
    loaded: dict[date, object] = {}

    def active_in(month: date):
        if month not in loaded:
            loaded[month] = bitmaps.load(active.get(month))
        return loaded[month]

    table = []
    for cohort in months_between(first, last):
        members = bitmaps.load(firsts.get(cohort))
        if customers is not None:
            members &= customers
        size = len(members)
        if not size:
            continue
        retained = [
            members.intersection_cardinality(active_in(month))
            for month in months_between(cohort, newest)
        ]
        table.append(
            {
                "cohort": cohort,
                "size": size,
                "retained": retained,
                "retention": [ratio(n, size) for n in retained],
            }
        )
    return table


# --- Lifetime value -----------------------------------------------------------------------------


def _restricted(customers: BitMap | None, channel: str | None) -> BitMap | None:
    """``customers`` narrowed to a source channel's current customers (the shorthand)."""
    if channel is None:
        return customers
    of_channel = customer_set(Filters(channel=channel))
    return of_channel if customers is None else customers & of_channel


def _lifetimes(customers: BitMap | None) -> Lifetimes | None:
    """The arrays to compute from; None: read the cohort cells instead (no fresh lifetime
    figures and no set of customers: the cells are exact and cheap)."""
    fresh = fresh_lifetimes()
    if fresh is None and customers is not None:
        return computed_lifetimes()
    return fresh


@dataclass(frozen=True)
class Acquired:
    """The customers acquired in a range of cohorts (within a set if given): ``pick`` selects
    them from any array indexed by customer id (ids, or a mask of every id), and their cohort
    numbers and lifetime spend, aligned."""

    pick: np.ndarray
    numbers: np.ndarray
    spend: np.ndarray

    @property
    def count(self) -> int:
        return int(self.numbers.size)

    @property
    def cents(self) -> int:
        return int(self.spend.sum(dtype=np.int64))


def _number_range(
    numbers: CohortNumbers, start_month: date | None, end_month: date | None
) -> tuple[int, int | None]:
    """The cohort numbers of start_month..end_month: first (at least 1: 0 is no cohort) and
    last (None: no end)."""
    low = numbers.number_of(month_of(start_month)) if start_month else 1
    high = numbers.number_of(month_of(end_month)) if end_month else None
    return max(low, 1), high


def _acquired(
    lifetimes: Lifetimes,
    customers: BitMap | None,
    start_month: date | None,
    end_month: date | None,
) -> Acquired:
    cohorts = lifetimes.cohorts
    low, high = _number_range(lifetimes, start_month, end_month)
    if customers is None:
        # Everyone: a mask over the whole arrays, cheaper than the ids of a million buyers.
        pick = cohorts >= low
        if high is not None:
            pick &= cohorts <= high
        return Acquired(pick, cohorts[pick], lifetimes.spend[pick])
    ids = bitmaps.to_numpy(customers)
    ids = ids[ids < cohorts.size]
    numbers = cohorts[ids]
    keep = numbers >= low
    if high is not None:
        keep &= numbers <= high
    pick = ids[keep]
    return Acquired(pick, numbers[keep], lifetimes.spend[pick])


def _in_range(totals: LifetimeTotals, rows: list[tuple], start_month, end_month) -> list[tuple]:
    """The ``rows`` (cohort number first) of the cohorts of start_month..end_month."""
    low, high = _number_range(totals, start_month, end_month)
    return [row for row in rows if row[0] >= low and (high is None or row[0] <= high)]


def _totals_by_cohort(totals: LifetimeTotals, start_month, end_month) -> tuple[dict, dict]:
    """From the stored totals: each cohort's size and revenue so far."""
    size: dict[date, int] = defaultdict(int)
    cents: dict[date, int] = defaultdict(int)
    for number, customers, spend in _in_range(totals, totals.per_cohort(), start_month, end_month):
        size[totals.month_of(number)] += customers
        cents[totals.month_of(number)] += spend
    return size, cents


def _arrays_by_cohort(lifetimes: Lifetimes, acquired: Acquired) -> tuple[dict, dict]:
    """From the arrays: each cohort's size and revenue so far, of the ``acquired``."""
    width = int(acquired.numbers.max()) + 1 if acquired.count else 0
    counts = np.bincount(acquired.numbers, minlength=width)
    sums = exact_sums(acquired.numbers, acquired.spend, width)
    numbers = np.flatnonzero(counts)
    size = {lifetimes.month_of(int(n)): int(counts[n]) for n in numbers}
    cents = {lifetimes.month_of(int(n)): int(sums[n]) for n in numbers}
    return size, cents


def _row(customers: int, cents: int) -> dict:
    return {
        "customers": customers,
        "revenue": cents_to_decimal(cents),
        "ltv": money_ratio(cents, customers),
    }


def _cells(start_month, end_month):
    cells = CohortRevenue.objects.all()
    if start_month:
        cells = cells.filter(cohort__gte=month_of(start_month))
    if end_month:
        cells = cells.filter(cohort__lte=month_of(end_month))
    return cells.values_list("cohort", "month", "customers", "revenue")


def _cell_cohorts(start_month, end_month) -> tuple[dict, dict, date | None]:
    """From the cohort cells: each cohort's size and revenue per month, and the newest month."""
    size: dict[date, int] = defaultdict(int)
    by_month: dict[date, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for cohort, month, customers, revenue in _cells(start_month, end_month):
        if month == cohort:  # every member buys in the cohort's own month
            size[cohort] += customers
        by_month[cohort][month] += int(revenue * 100)
    return size, by_month, CohortRevenue.objects.aggregate(m=Max("month"))["m"]


def _cumulative(size: dict[date, int], by_month: dict, newest: date) -> dict[date, list]:
    table = {}
    for cohort, months in by_month.items():
        running, cumulative = 0, []
        for month in months_between(cohort, newest):
            running += months.get(month, 0)
            cumulative.append(money_ratio(running, size[cohort]))
        table[cohort] = cumulative
    return table


def _monthly_revenue(lifetimes: Lifetimes, acquired: Acquired) -> tuple[dict, date | None]:
    """Per cohort of ``acquired``, their revenue per month (from the monthly rollups' per-
    customer arrays of every month since the first of those cohorts), and the newest month."""
    if not acquired.count:
        return {}, None
    member = np.zeros(lifetimes.cohorts.size, dtype=bool)
    member[acquired.pick] = True
    first = lifetimes.month_of(int(acquired.numbers.min()))
    size = int(acquired.numbers.max()) + 1
    by_month: dict[date, dict[date, int]] = defaultdict(dict)
    newest = None
    rows = MonthlyRollup.objects.filter(month__gte=first).order_by("month")
    for month, active, amounts in binary_rows(rows, "month", "active", "amounts"):
        newest = month
        ids = bitmaps.to_numpy(bitmaps.load(active)).astype(np.int64)
        cents = bitmaps.unpack_ints(amounts, ids.size)
        keep = ids < member.size
        ids, cents = ids[keep], cents[keep]
        keep = member[ids]
        sums = exact_sums(lifetimes.cohorts[ids[keep]], cents[keep], size)
        for number in np.flatnonzero(sums):
            by_month[lifetimes.month_of(int(number))][month] = int(sums[number])
    return by_month, newest


def ltv_by_cohort(
    *,
    start_month: date | None = None,
    end_month: date | None = None,
    customers: BitMap | None = None,
    channel: str | None = None,
    cumulative: bool = True,
) -> list[dict]:
    """Per cohort of start_month..end_month (of the ``customers`` given, and of one current
    source channel if given): size, revenue so far, LTV and, with ``cumulative``, the
    cumulative LTV at month first+k for k = 0 up to the newest month."""
    customers = _restricted(customers, channel)
    # Everyone: the stored totals, when fresh, hold all the table needs but the cumulative.
    totals = fresh_totals() if customers is None else None
    lifetimes = _lifetimes(customers) if totals is None else None
    cells = None
    if (totals is None and lifetimes is None) or (cumulative and customers is None):
        cells = _cell_cohorts(start_month, end_month)
    if totals is not None:
        size, cents = _totals_by_cohort(totals, start_month, end_month)
    elif lifetimes is None:
        size, by_month, _newest = cells
        cents = {cohort: sum(months.values()) for cohort, months in by_month.items()}
    else:
        acquired = _acquired(lifetimes, customers, start_month, end_month)
        size, cents = _arrays_by_cohort(lifetimes, acquired)
    table = [{"cohort": cohort, **_row(size[cohort], cents[cohort])} for cohort in sorted(cents)]
    if cumulative:
        if cells is not None:  # always so without a set of customers
            by_month, newest = cells[1], cells[2]
        else:
            by_month, newest = _monthly_revenue(lifetimes, acquired)
        values = _cumulative(size, by_month, newest) if newest else {}
        for row in table:
            row["cumulative_ltv"] = values.get(row["cohort"], [])
    return table


def ltv_by_channel(
    *,
    start_month: date | None = None,
    end_month: date | None = None,
    customers: BitMap | None = None,
) -> list[dict]:
    """Per current source channel of the customers acquired in start_month..end_month (of
    the ``customers`` given): customers, their revenue so far and LTV. The channel "" is
    customers without one."""
    if customers is None:
        rows = _channels_from_totals(start_month, end_month)
        if rows is not None:
            return rows
    lifetimes = computed_lifetimes()
    acquired = _acquired(lifetimes, customers, start_month, end_month)
    codes, values = channels_now()
    size = lifetimes.cohorts.size
    if codes.size < size:
        # Buyers beyond the channel arrays (none, short of a race with a new customer)
        # count as "" (code 0).
        codes = np.concatenate([codes, np.zeros(size - codes.size, dtype=codes.dtype)])
    of = codes[:size][acquired.pick]
    counts = np.bincount(of, minlength=len(values))
    sums = exact_sums(of, acquired.spend, len(values))
    rows = [
        {"channel": values[code], **_row(int(counts[code]), int(sums[code]))}
        for code in np.flatnonzero(counts)
    ]
    return sorted(rows, key=lambda row: row["channel"])


def _channels_from_totals(start_month, end_month) -> list[dict] | None:
    """ltv_by_channel of everyone from the stored totals (None when they are not fresh or
    not grouped by the current customer snapshot's channels)."""
    totals = fresh_totals()
    rows = channel_totals(totals) if totals is not None else None
    if rows is None:
        return None
    size: dict[str, int] = defaultdict(int)
    cents: dict[str, int] = defaultdict(int)
    for _number, channel, customers, spend in _in_range(totals, rows, start_month, end_month):
        size[channel] += customers
        cents[channel] += spend
    return [{"channel": channel, **_row(size[channel], cents[channel])} for channel in sorted(size)]


def average_ltv(
    *,
    start_month: date | None = None,
    end_month: date | None = None,
    customers: BitMap | None = None,
    channel: str | None = None,
) -> dict:
    """The customers acquired in start_month..end_month (of the ``customers`` given, and of
    one current source channel if given) together: how many, their revenue so far, and the
    average LTV."""
    customers = _restricted(customers, channel)
    totals = fresh_totals() if customers is None else None
    if totals is not None:
        size, cents = _totals_by_cohort(totals, start_month, end_month)
        return _row(sum(size.values()), sum(cents.values()))
    lifetimes = _lifetimes(customers)
    if lifetimes is None:
        size, by_month, _newest = _cell_cohorts(start_month, end_month)
        cents = sum(sum(months.values()) for months in by_month.values())
        return _row(sum(size.values()), cents)
    acquired = _acquired(lifetimes, customers, start_month, end_month)
    return _row(acquired.count, acquired.cents)
