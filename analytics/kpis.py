"""KPIs of a period, read from the rollups (never from the purchases table).

Definitions (DESIGN.md, "Definitions"), for a period P of calendar dates start..end inclusive
in settings.TIME_ZONE, counting completed purchases only:

- customers: customer records created on or before the end of P and not erased by then (an
  erased record no longer stands for a person; one erased later still counted back then);
- active_customers: customers with a purchase in P; new_customers: those whose first purchase
  ever is in P; revenue and purchases: those in P; aov = revenue / purchases;
  purchases_per_customer and spend_per_customer: per active customer;
- repeat_rate: share of P's active customers with 2+ purchases up to the end of P;
- retention_rate: share of the previous equal-length period's active customers active in P;
  churn_rate = 1 - retention_rate.

Rates are fractions 0-1 and None when their denominator is zero; money is a Decimal rounded
half up to the cent. Filters (prefecture, source channel, segment) restrict every figure to
the customers who match now: a set of ids intersected with the rollups' bitmaps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

import numpy as np
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q
from pyroaring import BitMap

from analytics import bitmaps, rollup_state
from analytics.binary_rows import binary_rows, integer_column
from analytics.customer_attributes import Attributes, current_attributes, customers_on_record
from analytics.models import DailyRollup, MonthlyRollup
from analytics.rollups import day_start, month_end, month_of, months_between
from customers.models import Customer
from segments.models import SegmentMember

ONE_DAY = timedelta(days=1)
CENT = Decimal("0.01")
# Cached customer sets of a filter live this long: attribute edits show within minutes.
FILTER_CACHE_SECONDS = 300


# --- Periods ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The equal-length period just before this one."""
        return Period(self.start - timedelta(days=self.days), self.start - ONE_DAY)

    def last_year(self) -> Period:
        """The same dates a year earlier (29 February becomes the 28th)."""
        return Period(shift_years(self.start, -1), shift_years(self.end, -1))


def shift_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year + years, day=28)


def previous_period(*, start: date, end: date) -> tuple[date, date]:
    p = Period(start, end).previous()
    return p.start, p.end


def same_period_last_year(*, start: date, end: date) -> tuple[date, date]:
    p = Period(start, end).last_year()
    return p.start, p.end


# --- Filters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Customer attributes every figure can be restricted to (None: no restriction)."""

    prefecture: str | None = None
    channel: str | None = None  # the customer's source channel
    segment: int | None = None  # a segment's current members

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.prefecture, self.channel, self.segment))

    def customers(self):
        queryset = Customer.objects.all()
        if self.prefecture is not None:
            queryset = queryset.filter(prefecture=self.prefecture)
        if self.channel is not None:
            queryset = queryset.filter(channel=self.channel)
        if self.segment is not None:
            queryset = queryset.filter(segment_memberships__segment_id=self.segment)
        return queryset


def rollup_version() -> int:
    return rollup_state.current()[0]


def _filter_key(filters: Filters) -> str:
    parts = (rollup_version(), filters.prefecture, filters.channel, filters.segment)
    return "analytics:customers:" + ":".join(map(str, parts))


# Filters being primed in this process (filter_primer): their readers wait for the prime
# instead of computing the same customer set again.
_priming: dict[str, threading.Event] = {}
_priming_lock = threading.Lock()
# A prime that never runs (its thread failed to start) delays its readers this long at most.
PRIME_WAIT_SECONDS = 60


def _await_prime(key: str) -> None:
    with _priming_lock:
        pending = _priming.get(key)
    if pending is not None:
        pending.wait(PRIME_WAIT_SECONDS)


def customer_set(filters: Filters | None) -> BitMap | None:
    """The ids of the customers matching ``filters`` (None without filters), cached until the
    next rollup refresh or for a few minutes."""
    if not filters:
        return None
    key = _filter_key(filters)
    _await_prime(key)
    blob = cache.get(key)
    if blob is None:
        attributes = current_attributes()
        if attributes is not None:
            ids = _matching(attributes, filters)
        else:
            ids = filters.customers().values_list("id", flat=True).order_by()
        blob = bitmaps.dump(bitmaps.from_ids(ids))
        cache.set(key, blob, FILTER_CACHE_SECONDS)
    return bitmaps.load(blob)


def _members(segment: int) -> np.ndarray:
    """A segment's member ids: hundreds of thousands, read as one array, not row by row."""
    return integer_column(
        SegmentMember.objects.filter(segment_id=segment).order_by(), "customer_id"
    )


def _members_in_thread(segment: int) -> np.ndarray:
    try:
        return _members(segment)
    finally:
        connection.close()  # the thread's own connection


def _matching(
    attributes: Attributes, filters: Filters, members: np.ndarray | None = None
) -> np.ndarray:
    """Ids of the customers matching ``filters`` now (ascending), the segment's ``members``
    given if already read."""
    ids = attributes.matching(prefecture=filters.prefecture, channel=filters.channel)
    if filters.segment is not None:
        if members is None:
            members = _members(filters.segment)
        # Kept with flags: ascending ids, whatever order the members came in.
        size = int(max(ids[-1] if ids.size else 0, members.max(initial=0))) + 1
        matching, member = np.zeros(size, dtype=bool), np.zeros(size, dtype=bool)
        matching[ids] = True
        member[members] = True
        ids = np.flatnonzero(matching & member)
    return ids


def prime_filter(*, filters: Filters | None, ends: list[date]) -> None:
    """Cache the filter's customer set and its customer counts at ``ends`` (what
    customer_set and customer_counts answer): from the customer snapshot's arrays, or
    without a recent snapshot from the matching customers' ids and one aggregate of their
    counts (at a million customers each costs a couple of hundred milliseconds)."""
    if not filters:
        return
    key = _filter_key(filters)
    if filters.segment is not None and not connection.in_atomic_block:
        # The members are read while the snapshot loads: both wait mostly on the database.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(_members_in_thread, filters.segment)
            attributes = current_attributes()
            members = pending.result()
    else:
        attributes, members = current_attributes(), None
    if attributes is not None:
        ids = _matching(attributes, filters, members)
        cache.set(key, bitmaps.dump(bitmaps.from_ids(ids)), FILTER_CACHE_SECONDS)
        counts = {end: attributes.on_record(ids, end) for end in ends}
        cache.set(_counts_key(key, ends), counts, FILTER_CACHE_SECONDS)
        return
    matching = filters.customers().order_by()
    # The ids by binary COPY (a plain SELECT on SQLite), the counts in one aggregate.
    ids = integer_column(matching, "id")
    row = matching.aggregate(**_count_aggregates(ends))
    cache.set(key, bitmaps.dump(bitmaps.from_ids(ids)), FILTER_CACHE_SECONDS)
    counts = {end: row[f"c{n}"] for n, end in enumerate(ends)}
    cache.set(_counts_key(key, ends), counts, FILTER_CACHE_SECONDS)


def filter_primer(*, filters: Filters | None, ends: list[date]) -> Callable[[], None]:
    """``prime_filter`` to run later, in another thread: from now until it has run, this
    process's customer_set and customer_counts of ``filters`` wait for it rather than
    compute the same. The dashboard's parts start reading the rollups meanwhile."""
    if not filters:
        return lambda: None
    key = _filter_key(filters)
    done = threading.Event()
    with _priming_lock:
        _priming[key] = done

    def prime() -> None:
        try:
            prime_filter(filters=filters, ends=ends)
        finally:
            with _priming_lock:
                if _priming.get(key) is done:
                    del _priming[key]
            done.set()

    return prime


def _counts_key(filter_key: str, ends: list[date]) -> str:
    return filter_key + ":counts:" + ",".join(end.isoformat() for end in ends)


# --- Reading the rollups ----------------------------------------------------------------------


def split_period(period: Period) -> tuple[list[date], list[date]]:
    """The whole calendar months inside ``period`` and the days outside them."""
    months, days = [], []
    for month in months_between(period.start, period.end):
        first, last = max(month, period.start), min(month_end(month), period.end)
        if first == month and last == month_end(month):
            months.append(month)
        else:
            days.extend(first + timedelta(days=n) for n in range((last - first).days + 1))
    return months, days


class _Lazy:
    """A stored bitmap, deserialized on first use."""

    __slots__ = ("blob", "value")

    def __init__(self, blob):
        self.blob, self.value = blob, None

    def get(self) -> BitMap:
        if self.value is None:
            self.value = bitmaps.load(self.blob)
        return self.value


class RollupReader:
    """Loads the rollup rows a set of periods needs in two or three queries, then answers
    figures for those periods from memory: customer sets from whole months' bitmaps plus the
    days outside whole months. With a customer filter, revenue and purchases come from the
    filtered customers' own figures (analytics.period_spend, which the ranking and the top
    customers share), otherwise from the months' and days' totals."""

    def __init__(self, *, filters: Filters | None = None):
        self.filters = filters or None
        self.months: dict[date, tuple] = {}
        self.days: dict[date, tuple] = {}
        self.seconds_by_month: dict[date, _Lazy] = {}
        self._active: dict[Period, BitMap] = {}
        # A year's previous period is also its last year's: read once.
        self._totals: dict[Period, tuple[int, int]] = {}

    def load(
        self,
        periods: list[Period],
        *,
        repeat_ends: list[date] = (),
    ) -> None:
        months, days = set(), set()
        for period in periods:
            m, d = split_period(period)
            months.update(m)
            days.update(d)
        for end in repeat_ends:
            if end != month_end(month_of(end)):
                days.update(month_of(end) + timedelta(days=n) for n in range(end.day))
        months -= self.months.keys()
        days -= self.days.keys()
        if months:
            # Binary COPY (analytics.binary_rows): the bitmaps as they are, not as hex text.
            for month, purchases, revenue, active, first in binary_rows(
                MonthlyRollup.objects.filter(month__in=months),
                "month",
                "purchases",
                "revenue",
                "active",
                "first_buyers",
            ):
                self.months[month] = (purchases, revenue, _Lazy(active), _Lazy(first))
        if days:
            columns = ["day", "purchases", "revenue", "active", "first_buyers", "second_buyers"]
            for row in binary_rows(DailyRollup.objects.filter(day__in=days), *columns):
                self.days[row[0]] = (row[1], row[2], _Lazy(row[3]), _Lazy(row[4]), _Lazy(row[5]))
        if repeat_ends and not self.seconds_by_month:
            for month, second in binary_rows(MonthlyRollup.objects.all(), "month", "second_buyers"):
                self.seconds_by_month[month] = _Lazy(second)

    @cached_property
    def customers(self) -> BitMap | None:
        """The filter's customers, read when first needed: after load(), so that the rollups
        are read while the filter may still be being primed."""
        return customer_set(self.filters)

    def _restrict(self, bitmap: BitMap) -> BitMap:
        return bitmap if self.customers is None else bitmap & self.customers

    def active(self, period: Period) -> BitMap:
        if period not in self._active:
            months, days = split_period(period)
            self._active[period] = self._restrict(
                bitmaps.union(
                    [self.months[m][2].get() for m in months if m in self.months]
                    + [self.days[d][2].get() for d in days if d in self.days]
                )
            )
        return self._active[period]

    def new(self, period: Period) -> BitMap:
        months, days = split_period(period)
        return self._restrict(
            bitmaps.union(
                [self.months[m][3].get() for m in months if m in self.months]
                + [self.days[d][3].get() for d in days if d in self.days]
            )
        )

    def repeat_buyers(self, end: date) -> BitMap:
        """Customers whose second purchase was on or before ``end``."""
        month = month_of(end)
        whole = month if end == month_end(month) else None
        parts = [s.get() for m, s in self.seconds_by_month.items() if m < month or m == whole]
        if whole is None:
            parts += [self.days[d][4].get() for d in self.days if month <= d <= end]
        return bitmaps.union(parts)

    def purchases_and_cents(self, period: Period) -> tuple[int, int]:
        if self.customers is None:
            months, days = split_period(period)
            rows = [self.months[m] for m in months if m in self.months]
            rows += [self.days[d] for d in days if d in self.days]
            return sum(r[0] for r in rows), int(sum(r[1] for r in rows) * 100)
        # analytics.period_spend reads through this module: imported here, not at the top.
        from analytics.period_spend import period_totals

        if period not in self._totals:
            self._totals[period] = period_totals(period=period, filters=self.filters)
        return self._totals[period]


# --- Figures ----------------------------------------------------------------------------------


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def money_ratio(cents: int, denominator: int) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(cents) / Decimal(denominator) / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def _count_aggregates(ends: list[date]) -> dict:
    aggregates = {}
    for n, end in enumerate(ends):
        cut = day_start(end + ONE_DAY)
        aggregates[f"c{n}"] = Count(
            "id",
            filter=Q(created_at__lt=cut) & (Q(erased_at__isnull=True) | Q(erased_at__gte=cut)),
        )
    return aggregates


def customer_counts(ends: list[date], filters: Filters | None) -> dict[date, int]:
    """Customers on record at the end of each day in ``ends``: from the customer snapshot
    (analytics.customer_attributes) when there is a recent one, else one query over the
    customers (none with a filter after prime_filter)."""
    if filters:
        key = _filter_key(filters)
        _await_prime(key)
        counts = cache.get(_counts_key(key, ends))
        if counts is not None:
            return counts
        attributes = current_attributes()
        if attributes is not None:
            ids = bitmaps.to_numpy(customer_set(filters)).astype(np.int64)
            return {end: attributes.on_record(ids, end) for end in ends}
    else:
        counts = customers_on_record(ends)
        if counts is not None:
            return counts
    queryset = filters.customers() if filters else Customer.objects.all()
    counts = queryset.order_by().aggregate(**_count_aggregates(ends))
    return {end: counts[f"c{n}"] for n, end in enumerate(ends)}


def _figures(reader: RollupReader, period: Period, customers: int) -> dict:
    active = reader.active(period)
    previous_active = reader.active(period.previous())
    purchases, cents = reader.purchases_and_cents(period)
    retention = ratio(previous_active.intersection_cardinality(active), len(previous_active))
    return {
        "start": period.start,
        "end": period.end,
        "customers": customers,
        "active_customers": len(active),
        "new_customers": len(reader.new(period)),
        "revenue": (Decimal(cents) / 100).quantize(CENT),
        "purchases": purchases,
        "aov": money_ratio(cents, purchases),
        "purchases_per_customer": ratio(purchases, len(active)),
        "spend_per_customer": money_ratio(cents, len(active)),
        "repeat_rate": ratio(
            active.intersection_cardinality(reader.repeat_buyers(period.end)), len(active)
        ),
        "retention_rate": retention,
        "churn_rate": None if retention is None else 1 - retention,
    }


def _reader(periods: list[Period], filters: Filters | None) -> RollupReader:
    reader = RollupReader(filters=filters)
    with_previous = {q for p in periods for q in (p, p.previous())}
    reader.load(sorted(with_previous, key=lambda p: p.start), repeat_ends=[p.end for p in periods])
    return reader


def kpis(*, start: date, end: date, filters: Filters | None = None) -> dict:
    """The KPIs of start..end (see the module's docstring for the definitions)."""
    return kpis_for_periods([Period(start, end)], filters=filters)[0]


def kpis_for_periods(periods: list[Period], *, filters: Filters | None = None) -> list[dict]:
    """The KPIs of each period, from one read of the rollups: months the periods share are
    read once (a page of goals, whose periods overlap)."""
    reader = _reader(periods, filters)
    counts = customer_counts(sorted({p.end for p in periods}), filters)
    return [_figures(reader, p, counts[p.end]) for p in periods]


def _counts_in_thread(ends: list[date], filters: Filters | None, state: tuple) -> dict[date, int]:
    # The caller's rollup state: with a primed filter the counts are then cached ones, and
    # this thread opens no database connection at all.
    try:
        with rollup_state.pinned(state):
            return customer_counts(ends, filters)
    finally:
        connection.close()  # the thread's own connection, if it opened one


def kpis_with_comparisons(*, start: date, end: date, filters: Filters | None = None) -> dict:
    """The KPIs of start..end with ``previous`` (the equal-length period before) and
    ``last_year`` (the same dates a year earlier) blocks of the same figures."""
    period = Period(start, end)
    periods = [period, period.previous(), period.last_year()]
    ends = [p.end for p in periods]
    if connection.in_atomic_block:  # a thread's connection would not see this transaction
        reader = _reader(periods, filters)
        counts = customer_counts(ends, filters)
    else:
        # The count loads the customer snapshot (or, without a recent one, scans the
        # customers table: ~150 ms at a million) while this thread reads the rollups' bitmaps.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(_counts_in_thread, ends, filters, rollup_state.current())
            reader = _reader(periods, filters)
            counts = pending.result()
    figures = [_figures(reader, p, counts[p.end]) for p in periods]
    return {**figures[0], "previous": figures[1], "last_year": figures[2]}


def refreshed_at():
    """When the rollups were last brought up to date (None: never built)."""
    return rollup_state.current()[1]
