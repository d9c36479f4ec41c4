"""Each customer's purchase count and spend over a period, from the rollups' per-customer
arrays: the whole months' (MonthlyRollup) and the days' outside them (DailyRollup). A year is
12 arrays, not 365. The deciles, the Pareto picture and the top customers rank these.

The dashboard's parts run in parallel threads and two of them (the ranking and the top
customers) need the same period's figures: ``period_figures`` computes them once per
(period, filter, rollup state) and a second caller waits for the first. The memo lives a few
seconds (a page's time), and its key holds the rollup state's version and refresh time, so a
refresh is never answered from figures read before it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from analytics import bitmaps, rollup_state
from analytics.binary_rows import binary_rows
from analytics.kpis import Filters, Period, customer_set, split_period
from analytics.models import DailyRollup, MonthlyRollup

MEMO_SECONDS = 10
COLUMNS = ("active", "amounts", "counts")


@dataclass(frozen=True)
class Figures:
    """The period's active customers (ascending ids) with their purchases and spend (cents)."""

    ids: np.ndarray
    counts: np.ndarray
    cents: np.ndarray


def _parts(period: Period) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(ids, counts, cents) of each whole month's and other day's rollup of the period."""
    months, days = split_period(period)
    rows = list(binary_rows(MonthlyRollup.objects.filter(month__in=months), *COLUMNS))
    if days:
        rows += binary_rows(
            DailyRollup.objects.filter(
                day__gte=min(days), day__lte=max(days), day__in=days, purchases__gt=0
            ),
            *COLUMNS,
        )
    parts = [bitmaps.figures_of(*row) for row in rows]
    return [part for part in parts if part[0].size]


def _read(period: Period, filters: Filters | None) -> Figures:
    parts = _parts(period)
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return Figures(empty, empty, empty)
    size = max(int(ids[-1]) for ids, _n, _c in parts) + 1
    counts = np.zeros(size, dtype=np.int64)
    cents = np.zeros(size, dtype=np.int64)
    customers = customer_set(filters)
    lookup = None if customers is None else bitmaps.lookup_of(customers)
    for ids, n, c in parts:
        if lookup is not None:
            # Only the wanted customers' entries are added up: their positions first, then
            # each array taken at them (faster than selecting with the flags).
            kept = np.flatnonzero(lookup.take(ids, mode="clip"))
            ids, n, c = ids.take(kept), n.take(kept), c.take(kept)
        # Each id appears once per month or day: plain fancy indexing adds exactly (with
        # native index integers: a third faster than indexing with the stored uint32).
        index = ids.astype(np.intp)
        counts[index] += n
        cents[index] += c
    ids = np.flatnonzero(counts)  # every purchase counts 1, a free one too
    return Figures(ids, counts[ids], cents[ids])


_lock = threading.Lock()
_memo: dict[tuple, tuple[float, threading.Event, list]] = {}


def period_figures(*, period: Period, filters: Filters | None = None) -> Figures:
    """Every customer active in ``period`` (matching ``filters``) with their purchases and
    spend in it."""
    key = (period, filters or None, rollup_state.current())
    now = time.monotonic()
    with _lock:
        for stale in [k for k, (at, _e, _r) in _memo.items() if now - at > MEMO_SECONDS]:
            del _memo[stale]
        entry = _memo.get(key)
        owner = entry is None
        if owner:
            entry = _memo[key] = (now, threading.Event(), [])
    _at, done, result = entry
    if not owner:
        done.wait()
        if result:
            return result[0]
        # The first caller failed: compute it here (and let the error, if any, surface).
        return _read(period, filters)
    try:
        result.append(_read(period, filters))
    finally:
        if not result:
            with _lock:
                _memo.pop(key, None)
        done.set()
    return result[0]


def period_totals(*, period: Period, filters: Filters | None = None) -> tuple[int, int]:
    """The purchases and spend (cents) of the customers matching ``filters`` in ``period``:
    the sums of ``period_figures``, taken from them when they are read or being read, else
    summed month by month without adding up each customer's (all the comparison periods'
    KPIs need)."""
    with _lock:
        entry = _memo.get((period, filters or None, rollup_state.current()))
    if entry is not None:
        # Being read by another part (the top customers): wait rather than read twice.
        _at, done, result = entry
        done.wait()
        if result:
            return int(result[0].counts.sum()), int(result[0].cents.sum())
    parts = _parts(period)  # read before the filter's customers, which may be being primed
    customers = customer_set(filters)
    lookup = None if customers is None else bitmaps.lookup_of(customers)
    purchases = cents = 0
    for ids, n, c in parts:
        if lookup is None:
            purchases += int(n.sum(dtype=np.int64))
            cents += int(c.sum(dtype=np.int64))
        else:
            keep = lookup.take(ids, mode="clip")
            purchases += bitmaps.masked_sum(n, keep)
            cents += bitmaps.masked_sum(c, keep)
    return purchases, cents


def spend_ranked(*, period: Period, filters: Filters | None = None) -> np.ndarray:
    """The period's spends (cents), highest first: all the deciles and the Pareto picture
    need, since customers with equal spend are interchangeable in them."""
    return np.sort(period_figures(period=period, filters=filters).cents)[::-1]
