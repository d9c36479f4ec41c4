"""Building and refreshing the rollups (analytics.models) from the purchases.

- ``rebuild_rollups()`` computes everything from scratch, a month of purchases at a time.
- ``refresh_rollups()`` (Celery beat, every few minutes) is incremental: purchases with an id
  above the watermark of the last refresh are new; their days are recomputed, and their
  customers' first/second purchase days are merged in. Days listed with ``mark_dirty()`` (or
  passed as ``dates``/``since``) are recomputed too, and because a change there (an edit, a
  cancellation, a deletion) can move a customer's first or second purchase anywhere in time,
  their customers' first/second days are recomputed exactly from all of their purchases.
- ``verify_rollups()`` (nightly) catches what the watermark cannot see: it compares every
  day's purchase count, revenue and a checksum of customer ids against the purchases table
  (one aggregate over it) and recomputes the days that differ. An edit that keeps all three
  equal (two customers' purchases swapped on one day, with equal totals) goes unseen; so does
  a purchase committed after a refresh under an id below its watermark, until that night.
- Breakdown cells (``BreakdownCell``, read by ``analytics.breakdowns``) are recomputed with
  the days and months the refresh touches (a product moved to another category is only caught
  by a refresh of its days or a rebuild). There are none per customer prefecture: a customer
  moves, and revenue by prefecture is summed from the per-customer arrays by the customers'
  prefectures now (``analytics.breakdowns``).

A day is a calendar date in settings.TIME_ZONE whatever the user's own time zone; amounts are
handled in minor units (cents, sen) as integers so sums are exact.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, F, Max, Min, Q, Sum
from django.db.models.functions import Cast, ExtractHour, Round, TruncDate, TruncMonth
from django.utils import timezone

from analytics import bitmaps, packed_months
from analytics.models import (
    BreakdownCell,
    BreakdownDimension,
    CohortRevenue,
    CustomerHistory,
    DailyRollup,
    DirtyDay,
    MonthlyRollup,
    PackedMonth,
    RollupState,
)
from customers.models import Customer, Purchase, PurchaseItem, PurchaseStatus

ONE_DAY = timedelta(days=1)
# Ids per IN (...) list: below SQLite's limit on query parameters.
CHUNK = 2000


# --- Calendar ---------------------------------------------------------------------------------


def analytics_timezone() -> ZoneInfo:
    """Days are counted in the organisation's zone, never in the signed-in user's."""
    return ZoneInfo(settings.TIME_ZONE)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=analytics_timezone())


def local_day(moment: datetime) -> date:
    return moment.astimezone(analytics_timezone()).date()


def month_of(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def month_end(month: date) -> date:
    return next_month(month) - ONE_DAY


def months_between(first: date, last: date) -> list[date]:
    months, month = [], month_of(first)
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def _runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days grouped into (first, last) ranges: one query per range."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] + ONE_DAY == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


# --- Reading purchases ------------------------------------------------------------------------


def completed_between(start: date, end: date):
    """Completed purchases made on the days start..end (inclusive, local calendar)."""
    return Purchase.objects.completed().filter(
        purchased_at__gte=day_start(start), purchased_at__lt=day_start(end + ONE_DAY)
    )


def _minor_units():
    # Rounded before the cast: SQLite may hold 12.34 as 12.3399999...
    return Cast(Sum(Round(F("total") * 100)), BigIntegerField())


@dataclass
class DayFigures:
    """One day's completed purchases per customer: sorted ids, counts and spend."""

    ids: np.ndarray
    counts: np.ndarray
    cents: np.ndarray

    @property
    def purchases(self) -> int:
        return int(self.counts.sum())

    @property
    def revenue_cents(self) -> int:
        return int(self.cents.sum())

    @property
    def checksum(self) -> int:
        return int((self.ids.astype(np.int64) * self.counts).sum())


def day_figures(start: date, end: date, *, max_id: int | None = None) -> dict[date, DayFigures]:
    """Per day start..end, each customer's number of completed purchases and spend."""
    purchases = completed_between(start, end)
    if max_id is not None:
        purchases = purchases.filter(id__lte=max_id)
    rows = (
        purchases.annotate(day=TruncDate("purchased_at", tzinfo=analytics_timezone()))
        .values("day", "customer_id")
        .annotate(n=Count("id"), cents=_minor_units())
        .order_by("day", "customer_id")
        .values_list("day", "customer_id", "n", "cents")
    )
    figures = {}
    for day, group in itertools.groupby(rows, key=lambda row: row[0]):
        group = list(group)
        figures[day] = DayFigures(
            ids=np.fromiter((r[1] for r in group), dtype=np.int64, count=len(group)),
            counts=np.fromiter((r[2] for r in group), dtype=np.int32, count=len(group)),
            cents=np.fromiter((r[3] for r in group), dtype=np.int64, count=len(group)),
        )
    return figures


def cents_to_decimal(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


# --- Writing rollup rows -------------------------------------------------------------------


def _daily_row(day: date, figures: DayFigures | None, first, second) -> DailyRollup:
    row = DailyRollup(day=day, first_buyers=bitmaps.dump(first), second_buyers=bitmaps.dump(second))
    if figures is not None:
        row.purchases = figures.purchases
        row.revenue = cents_to_decimal(figures.revenue_cents)
        row.customer_checksum = figures.checksum
        row.active = bitmaps.dump(bitmaps.from_ids(figures.ids))
        row.amounts = bitmaps.pack_ints(figures.cents)
        row.counts = bitmaps.pack_ints(figures.counts)
    return row


# The DailyRollup columns a month is summed from, in _monthly_row's order.
MONTH_SOURCE = (
    "purchases",
    "revenue",
    "active",
    "first_buyers",
    "second_buyers",
    "amounts",
    "counts",
)


def _monthly_row(month: date, days: list[tuple]) -> MonthlyRollup | None:
    """``days``: the month's daily rows as tuples of MONTH_SOURCE."""
    if not days:
        return None
    ids, counts, cents = bitmaps.merge_figures(bitmaps.figures_of(d[2], d[5], d[6]) for d in days)
    return MonthlyRollup(
        month=month,
        purchases=sum(d[0] for d in days),
        revenue=sum((d[1] for d in days), Decimal(0)),
        active=bitmaps.dump(bitmaps.from_ids(ids)),
        amounts=bitmaps.pack_ints(cents),
        counts=bitmaps.pack_ints(counts),
        first_buyers=bitmaps.dump(bitmaps.union(bitmaps.load(d[3]) for d in days)),
        second_buyers=bitmaps.dump(bitmaps.union(bitmaps.load(d[4]) for d in days)),
    )


def _write_months(months: Iterable[date]) -> None:
    for month in sorted(set(months)):
        days = list(
            DailyRollup.objects.filter(day__gte=month, day__lte=month_end(month)).values_list(
                *MONTH_SOURCE
            )
        )
        MonthlyRollup.objects.filter(month=month).delete()
        row = _monthly_row(month, days)
        if row is not None:
            row.save(force_insert=True)


def _rebuild_cohort_months(months: Iterable[date]) -> None:
    """Recompute the LTV cells of the purchases made in ``months``."""
    for month in sorted(set(months)):
        CohortRevenue.objects.filter(month=month).delete()
        cells = (
            completed_between(month, month_end(month))
            .filter(customer__purchase_history__isnull=False)
            .values(
                cohort=TruncMonth("customer__purchase_history__first_day"),
                source_channel=F("customer__channel"),
            )
            .annotate(
                n_customers=Count("customer_id", distinct=True),
                n_purchases=Count("id"),
                cents=_minor_units(),
            )
            .order_by()
        )
        CohortRevenue.objects.bulk_create(
            CohortRevenue(
                cohort=cell["cohort"],
                month=month,
                channel=cell["source_channel"] or "",
                customers=cell["n_customers"],
                purchases=cell["n_purchases"],
                revenue=cents_to_decimal(cell["cents"]),
            )
            for cell in cells
        )


def _write_histories(first: np.ndarray, second: np.ndarray) -> None:
    ids = np.nonzero(first)[0]
    rows = list(zip(ids.tolist(), first[ids].tolist(), second[ids].tolist(), strict=True))
    if connection.vendor == "postgresql":
        # PostgreSQL fast path: COPY writes a million rows in seconds, INSERTs in minutes.
        buffer = io.StringIO()
        for customer_id, f, s in rows:
            second_day = date.fromordinal(s).isoformat() if s else "\\N"
            buffer.write(f"{customer_id}\t{date.fromordinal(f).isoformat()}\t{second_day}\n")
        buffer.seek(0)
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(
                f"COPY {CustomerHistory._meta.db_table} (customer_id, first_day, second_day) "
                "FROM STDIN",
                buffer,
            )
        return
    CustomerHistory.objects.bulk_create(
        (
            CustomerHistory(
                customer_id=customer_id,
                first_day=date.fromordinal(f),
                second_day=date.fromordinal(s) if s else None,
            )
            for customer_id, f, s in rows
        ),
        batch_size=CHUNK,
    )


def _locked_state() -> RollupState:
    RollupState.objects.get_or_create(id=1)
    return RollupState.objects.select_for_update().get(id=1)


# --- Breakdown cells (analytics.breakdowns) ----------------------------------------------------

# Dimensions whose day cells are also summed into month cells. An hour's month cells are per
# weekday and hour (key "weekday:hour", Monday 0): the timing heatmap needs each purchase's
# weekday, and a month filtered by customers then reads 168 cells instead of 720.
MONTH_DIMENSIONS = (
    BreakdownDimension.HOUR,
    BreakdownDimension.CHANNEL,
    BreakdownDimension.CATEGORY,
)


def month_key(dimension: str, day: date, key: str) -> str:
    """The key of the month cell a day cell is summed into."""
    if dimension == BreakdownDimension.HOUR:
        return f"{day.weekday()}:{key}"
    return key


def _cents_of(expression):
    # Rounded before the cast, as in _minor_units: SQLite may hold 12.34 as 12.3399999...
    return Cast(Round(expression * 100), BigIntegerField())


def _breakdown_frame(start: date, end: date, *, max_id: int | None = None) -> pd.DataFrame:
    """Per (day, dimension, key, customer) the number of purchases and the spend in cents of
    the completed purchases of start..end, every dimension in one frame.

    Category rule: each item's quantity x unit price counts under its product's category; what
    the purchase's total does not owe to its items (no items at all, shipping, a discount: the
    total minus the items' sum, negative for a discount) counts under "" (no category), so
    the categories' revenues add up to the revenue. A purchase counts once in each category it
    has money in."""
    purchases = completed_between(start, end)
    items = PurchaseItem.objects.filter(
        purchase__status=PurchaseStatus.COMPLETED,
        purchase__purchased_at__gte=day_start(start),
        purchase__purchased_at__lt=day_start(end + ONE_DAY),
    )
    if max_id is not None:
        purchases = purchases.filter(id__lte=max_id)
        items = items.filter(purchase_id__lte=max_id)
    zone = analytics_timezone()
    columns = ["id", "day", "hour", "customer", "channel", "cents"]
    rows = list(
        purchases.annotate(
            day=TruncDate("purchased_at", tzinfo=zone),
            hour=ExtractHour("purchased_at", tzinfo=zone),
            cents=_cents_of(F("total")),
        )
        .values_list("id", "day", "hour", "customer_id", "channel", "cents")
        .order_by()
    )
    if not rows:
        return pd.DataFrame(columns=["day", "dimension", "key", "customer", "n", "cents"])
    frame = pd.DataFrame(rows, columns=columns)
    frame["hour"] = frame["hour"].astype(str)
    lines = pd.DataFrame(
        list(
            items.values("purchase_id", "product__category")
            .annotate(cents=Sum(_cents_of(F("quantity") * F("unit_price"))))
            .values_list("purchase_id", "product__category", "cents")
            .order_by()
        ),
        columns=["id", "category", "cents"],
    )
    itemised = lines.groupby("id")["cents"].sum()
    rest = frame[["id", "cents"]].copy()
    rest["cents"] -= rest["id"].map(itemised).fillna(0).astype(np.int64)
    rest = rest[(rest["cents"] != 0) | ~rest["id"].isin(itemised.index)]
    rest["category"] = ""
    by_category = (
        pd.concat([lines, rest[["id", "category", "cents"]]])
        .groupby(["id", "category"], as_index=False)["cents"]
        .sum()
        .merge(frame[["id", "day", "customer"]], on="id")
    )
    parts = []
    for dimension, data, key in (
        (BreakdownDimension.HOUR, frame, "hour"),
        (BreakdownDimension.CHANNEL, frame, "channel"),
        (BreakdownDimension.CATEGORY, by_category, "category"),
    ):
        part = (
            data.assign(key=data[key].fillna("").astype(str))
            .groupby(["day", "key", "customer"], as_index=False)
            .agg(n=("id", "size"), cents=("cents", "sum"))
        )
        part.insert(1, "dimension", str(dimension))
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _cell(*, day: date, is_month: bool, dimension: str, key: str, ids, counts, cents):
    return BreakdownCell(
        day=day,
        is_month=is_month,
        dimension=dimension,
        key=key,
        purchases=int(counts.sum()),
        revenue=cents_to_decimal(int(cents.sum())),
        customers=bitmaps.dump(bitmaps.from_ids(ids)),
        amounts=bitmaps.pack_ints(cents),
        counts=bitmaps.pack_ints(counts),
    )


def breakdown_day_cells(start: date, end: date, *, max_id: int | None = None) -> list:
    """The day cells of start..end, computed from the purchases (unsaved)."""
    frame = _breakdown_frame(start, end, max_id=max_id)
    frame = frame.sort_values(["day", "dimension", "key", "customer"], kind="stable")
    cells = []
    for (day, dimension, key), group in frame.groupby(["day", "dimension", "key"], sort=False):
        cells.append(
            _cell(
                day=day,
                is_month=False,
                dimension=dimension,
                key=key,
                ids=group["customer"].to_numpy(np.int64),
                counts=group["n"].to_numpy(np.int64),
                cents=group["cents"].to_numpy(np.int64),
            )
        )
    return cells


def _month_cells(month: date, day_cells: Iterable[tuple]) -> list:
    """``day_cells``: (dimension, day, key, customers, amounts, counts) of the month's day
    cells; per dimension and month key, each customer's counts and spend summed."""
    grouped: dict[tuple[str, str], list] = {}
    for dimension, day, key, customers, amounts, counts in day_cells:
        grouped.setdefault((dimension, month_key(dimension, day, key)), []).append(
            bitmaps.figures_of(customers, amounts, counts)
        )
    cells = []
    for (dimension, key), parts in grouped.items():
        ids, counts, cents = bitmaps.merge_figures(parts)
        cells.append(
            _cell(
                day=month,
                is_month=True,
                dimension=dimension,
                key=key,
                ids=ids,
                counts=counts,
                cents=cents,
            )
        )
    return cells


def _write_breakdown_months(months: Iterable[date]) -> None:
    for month in sorted(set(months)):
        day_cells = (
            BreakdownCell.objects.filter(
                is_month=False,
                dimension__in=MONTH_DIMENSIONS,
                day__gte=month,
                day__lte=month_end(month),
            )
            .values_list("dimension", "day", "key", "customers", "amounts", "counts")
            .order_by()
        )
        BreakdownCell.objects.filter(is_month=True, day=month).delete()
        _save_month_cells(month, _month_cells(month, day_cells))


def _save_month_cells(month: date, cells: list) -> None:
    """Save a month's new month cells, and its packed rows (analytics.packed_months)."""
    BreakdownCell.objects.bulk_create(cells, batch_size=500)
    packed_months.write(month, cells)


def _write_breakdown_days(days: set[date]) -> None:
    """Recompute the day cells of ``days`` and the month cells of their months."""
    for first, last in _runs(days):
        # One month at a time: a long run (``since``) never holds a year of purchases at once.
        for month in months_between(first, last):
            lo, hi = max(first, month), min(last, month_end(month))
            BreakdownCell.objects.filter(is_month=False, day__gte=lo, day__lte=hi).delete()
            BreakdownCell.objects.bulk_create(breakdown_day_cells(lo, hi), batch_size=500)
    _write_breakdown_months(month_of(d) for d in days)


def rebuild_breakdowns(*, max_id: int | None = None) -> int:
    """Recompute every breakdown cell from the purchases (up to ``max_id``), a month at a time;
    return the number of cells. The refresh calls it when rollups exist without any cell
    (rollups built before the cells were added)."""
    BreakdownCell.objects.all().delete()
    PackedMonth.objects.all().delete()
    bounds = DailyRollup.objects.filter(purchases__gt=0).aggregate(lo=Min("day"), hi=Max("day"))
    written = 0
    if bounds["lo"] is None:
        return written
    for month in months_between(bounds["lo"], bounds["hi"]):
        written += _write_breakdown_month(month, max_id=max_id)
    return written


def add_hour_month_cells() -> int:
    """Sum the hour day cells into month cells where a month has none (cells built before
    hours had month cells); return the number of months written."""
    have = set(
        BreakdownCell.objects.filter(is_month=True, dimension=BreakdownDimension.HOUR)
        .values_list("day", flat=True)
        .distinct()
    )
    months = {
        month_of(day)
        for day in BreakdownCell.objects.filter(is_month=False, dimension=BreakdownDimension.HOUR)
        .values_list("day", flat=True)
        .distinct()
    } - have
    for month in sorted(months):
        with transaction.atomic():
            day_cells = (
                BreakdownCell.objects.filter(
                    is_month=False,
                    dimension=BreakdownDimension.HOUR,
                    day__gte=month,
                    day__lte=month_end(month),
                )
                .values_list("dimension", "day", "key", "customers", "amounts", "counts")
                .order_by()
            )
            _save_month_cells(month, _month_cells(month, day_cells))
    return len(months)


def _write_breakdown_month(month: date, *, max_id: int | None) -> int:
    """Day and month cells of a month that has none yet (a build)."""
    cells = breakdown_day_cells(month, month_end(month), max_id=max_id)
    month_cells = _month_cells(
        month,
        (
            (c.dimension, c.day, c.key, c.customers, c.amounts, c.counts)
            for c in cells
            if c.dimension in MONTH_DIMENSIONS
        ),
    )
    BreakdownCell.objects.bulk_create(cells, batch_size=500)
    _save_month_cells(month, month_cells)
    return len(cells) + len(month_cells)


def mismatched_breakdown_days() -> list[date]:
    """Days whose breakdown cells disagree with their daily rollup: every dimension but the
    categories counts each purchase once, and the categories' revenue adds up to the day's."""
    daily = {
        day: (n, int(revenue * 100))
        for day, n, revenue in DailyRollup.objects.filter(purchases__gt=0).values_list(
            "day", "purchases", "revenue"
        )
    }
    wrong = set()
    sums = (
        BreakdownCell.objects.filter(is_month=False)
        .values("day", "dimension")
        .annotate(n=Sum("purchases"), revenue=Sum("revenue"))
        .values_list("day", "dimension", "n", "revenue")
        .order_by()
    )
    seen: dict[date, set[str]] = {}
    for day, dimension, n, revenue in sums:
        seen.setdefault(day, set()).add(dimension)
        expected_n, expected_cents = daily.get(day, (0, 0))
        if int(revenue * 100) != expected_cents or (
            dimension != BreakdownDimension.CATEGORY and n != expected_n
        ):
            wrong.add(day)
    wrong.update(day for day in daily if len(seen.get(day, ())) < len(BreakdownDimension))
    return sorted(wrong)


# --- Full build -------------------------------------------------------------------------------


@transaction.atomic
def rebuild_rollups() -> RollupState:
    """Recompute every rollup from the purchases (the first build, or a repair)."""
    state = _locked_state()
    high = Purchase.objects.aggregate(m=Max("id"))["m"] or 0
    # Read after ``high``: every purchase up to it belongs to a customer that exists now.
    max_customer = Customer.objects.aggregate(m=Max("id"))["m"] or 0
    for model in (
        DailyRollup,
        MonthlyRollup,
        CohortRevenue,
        CustomerHistory,
        DirtyDay,
        BreakdownCell,
        PackedMonth,
    ):
        model.objects.all().delete()
    bounds = (
        Purchase.objects.completed()
        .filter(id__lte=high)
        .aggregate(lo=Min("purchased_at"), hi=Max("purchased_at"))
    )
    months: list[date] = []
    if bounds["lo"] is not None:
        months = months_between(local_day(bounds["lo"]), local_day(bounds["hi"]))
        # Day ordinals of each customer's first and second purchase, indexed by customer id:
        # walking the days in order, a customer seen for the first time has their first
        # purchase that day (and their second too if they bought twice).
        first = np.zeros(max_customer + 1, dtype=np.int32)
        second = np.zeros(max_customer + 1, dtype=np.int32)
        for month in months:
            figures = day_figures(month, month_end(month), max_id=high)
            rows = []
            for day in sorted(figures):
                f = figures[day]
                ordinal = day.toordinal()
                seen_first, seen_second = first[f.ids], second[f.ids]
                is_first = seen_first == 0
                is_second = (is_first & (f.counts >= 2)) | (~is_first & (seen_second == 0))
                first[f.ids[is_first]] = ordinal
                second[f.ids[is_second]] = ordinal
                rows.append(
                    _daily_row(
                        day,
                        f,
                        bitmaps.from_ids(f.ids[is_first]),
                        bitmaps.from_ids(f.ids[is_second]),
                    )
                )
            DailyRollup.objects.bulk_create(rows)
            _write_breakdown_month(month, max_id=high)
            monthly = _monthly_row(month, [[getattr(r, c) for c in MONTH_SOURCE] for r in rows])
            if monthly is not None:
                monthly.save(force_insert=True)
        _write_histories(first, second)
        _rebuild_cohort_months(months)
    now = timezone.now()
    state.last_purchase_id = high
    state.built_at = state.refreshed_at = state.verified_at = now
    state.version += 1
    state.save()
    return state


# --- Incremental refresh ----------------------------------------------------------------------


@dataclass
class RefreshResult:
    rebuilt: bool = False
    new_purchases: int = 0
    days: list[date] = field(default_factory=list)
    moved_customers: int = 0


def clear_marks(marked: list[tuple[date, datetime]]) -> None:
    """Delete the marks as they were read, (day, marked_at): one made again meanwhile stays."""
    for start in range(0, len(marked), CHUNK):
        seen = Q()
        for day, marked_at in marked[start : start + CHUNK]:
            seen |= Q(day=day, marked_at=marked_at)
        DirtyDay.objects.filter(seen).delete()


def mark_dirty(*, dates: Iterable[date]) -> None:
    """Have the next refresh recompute these days (call after editing, cancelling or deleting
    purchases, or after a bulk write the id watermark cannot see)."""
    DirtyDay.objects.bulk_create(
        [DirtyDay(day=day) for day in set(dates)],
        update_conflicts=True,
        unique_fields=["day"],
        update_fields=["marked_at"],
    )


def _cohort(first_day: date | None) -> date | None:
    return first_day and month_of(first_day)


def _first_two(days: list[date]) -> tuple[date | None, date | None]:
    days = sorted(days)[:2]
    return (days[0] if days else None, days[1] if len(days) > 1 else None)


def _update_histories(
    *, exact: set[int], new_days: dict[int, list[date]], high: int
) -> list[tuple[int, tuple, tuple]]:
    """Bring the customers' first/second purchase days up to date; return the changes as
    (customer id, (old first, old second), (new first, new second))."""
    ids = sorted(exact | set(new_days))
    old: dict[int, tuple] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        for cid, first, second in CustomerHistory.objects.filter(customer_id__in=chunk).values_list(
            "customer_id", "first_day", "second_day"
        ):
            old[cid] = (first, second)
    new: dict[int, tuple] = {}
    exact_ids = sorted(exact)
    for start in range(0, len(exact_ids), CHUNK):
        chunk = exact_ids[start : start + CHUNK]
        days: dict[int, list[date]] = {cid: [] for cid in chunk}
        rows = (
            Purchase.objects.completed()
            .filter(customer_id__in=chunk, id__lte=high)
            .annotate(day=TruncDate("purchased_at", tzinfo=analytics_timezone()))
            .values_list("customer_id", "day")
            .order_by()
        )
        for cid, day in rows:
            days[cid].append(day)
        new.update((cid, _first_two(d)) for cid, d in days.items())
    for cid, days in new_days.items():
        if cid not in exact:
            known = [d for d in old.get(cid, (None, None)) if d is not None]
            new[cid] = _first_two(known + days)
    changes = [
        (cid, old.get(cid, (None, None)), now)
        for cid, now in new.items()
        if old.get(cid, (None, None)) != now
    ]
    CustomerHistory.objects.filter(
        customer_id__in=[cid for cid, _old, now in changes if now[0] is None]
    ).delete()
    CustomerHistory.objects.bulk_create(
        [
            CustomerHistory(customer_id=cid, first_day=now[0], second_day=now[1])
            for cid, _old, now in changes
            if now[0] is not None
        ],
        update_conflicts=True,
        unique_fields=["customer"],
        update_fields=["first_day", "second_day"],
        batch_size=CHUNK,
    )
    return changes


def _moved_days(changes: list[tuple[int, tuple, tuple]]) -> set[date]:
    """The days whose first- or second-time buyers changed: where a customer's first (or
    second) purchase day was and is now, when it moved. A second purchase added after an
    unchanged first one touches only the second's day: at 50,000 new purchases, re-reading
    the first days of every customer buying again would rewrite years of daily rollups."""
    days = set()
    for _cid, old, new in changes:
        for before, after in zip(old, new, strict=True):
            if before != after:
                days.update((before, after))
    days.discard(None)
    return days


def _buyers_by_day(field_name: str, days: set[date]) -> dict[date, list[int]]:
    found: dict[date, list[int]] = {day: [] for day in days}
    for first, last in _runs(days):
        rows = CustomerHistory.objects.filter(
            **{f"{field_name}__gte": first, f"{field_name}__lte": last}
        ).values_list(field_name, "customer_id")
        for day, cid in rows:
            found[day].append(cid)
    return found


def _write_days(*, figures_days: set[date], bitmap_days: set[date]) -> None:
    """Recompute the purchases of ``figures_days`` and the first/second buyers of all."""
    days = figures_days | bitmap_days
    firsts = _buyers_by_day("first_day", days)
    seconds = _buyers_by_day("second_day", days)
    figures: dict[date, DayFigures] = {}
    for first, last in _runs(figures_days):
        figures.update(day_figures(first, last))
    kept = {
        row.day: row
        for row in DailyRollup.objects.filter(day__in=bitmap_days - figures_days).only(
            "day", "purchases", "revenue", "customer_checksum", "active", "amounts", "counts"
        )
    }
    rows = []
    for day in sorted(days):
        first = bitmaps.from_ids(firsts[day])
        second = bitmaps.from_ids(seconds[day])
        if day in figures_days:
            row = _daily_row(day, figures.get(day), first, second)
        else:
            row = kept.get(day) or DailyRollup(day=day)
            row.first_buyers, row.second_buyers = bitmaps.dump(first), bitmaps.dump(second)
        if row.purchases or row.first_buyers or row.second_buyers:
            rows.append(row)
    DailyRollup.objects.filter(day__in=days).delete()
    DailyRollup.objects.bulk_create(rows)


@transaction.atomic
def refresh_rollups(
    *, since: date | None = None, dates: Iterable[date] | None = None
) -> RefreshResult:
    """Bring the rollups up to date with the purchases (see the module's docstring).

    ``dates``: days to recompute besides the new purchases' and the marked ones; ``since``:
    recompute every day from that one to the newest purchase. Safe to run twice at once: the
    second waits for the first's lock and then finds little left to do.
    """
    state = _locked_state()
    if state.built_at is None:
        rebuild_rollups()
        return RefreshResult(rebuilt=True)
    high = Purchase.objects.aggregate(m=Max("id"))["m"] or 0
    if not BreakdownCell.objects.exists() and DailyRollup.objects.filter(purchases__gt=0).exists():
        rebuild_breakdowns(max_id=state.last_purchase_id)
    elif not BreakdownCell.objects.filter(
        dimension=BreakdownDimension.HOUR, is_month=True
    ).exists():
        add_hour_month_cells()
    packed_months.add_missing()
    # (day, marked_at) as read: a day marked again while this refresh runs gets a new
    # marked_at and survives the delete below, for the next refresh to pick up.
    marked = list(DirtyDay.objects.values_list("day", "marked_at"))
    dirty = {day for day, _at in marked} | set(dates or ())
    if since is not None:
        newest = Purchase.objects.aggregate(m=Max("purchased_at"))["m"]
        last_rollup = DailyRollup.objects.aggregate(m=Max("day"))["m"]
        last = max(d for d in (since, newest and local_day(newest), last_rollup) if d)
        dirty.update(since + timedelta(days=n) for n in range((last - since).days + 1))
    new_days: dict[int, list[date]] = {}
    new_count = 0
    for cid, day in (
        Purchase.objects.completed()
        .filter(id__gt=state.last_purchase_id, id__lte=high)
        .annotate(day=TruncDate("purchased_at", tzinfo=analytics_timezone()))
        .values_list("customer_id", "day")
        .order_by()
    ):
        new_days.setdefault(cid, []).append(day)
        new_count += 1
    figures_days = dirty | {day for days in new_days.values() for day in days}

    # Who bought on a dirty day, before (the stored bitmaps) and now, may have had their
    # first or second purchase there: recompute theirs from all of their purchases.
    exact = bitmaps.union(
        bitmaps.load(blob)
        for blob in DailyRollup.objects.filter(day__in=dirty).values_list("active", flat=True)
    )
    for first, last in _runs(dirty):
        exact |= bitmaps.from_ids(
            completed_between(first, last).values_list("customer_id", flat=True).distinct()
        )
    changes = _update_histories(exact=set(exact), new_days=new_days, high=high)

    bitmap_days = _moved_days(changes)
    _write_days(figures_days=figures_days, bitmap_days=bitmap_days)
    _write_months(month_of(d) for d in figures_days | bitmap_days)
    _write_breakdown_days(figures_days)
    # A customer whose first purchase moved to another month takes all of their purchases
    # to another cohort: every month they bought in needs its LTV cells recomputed.
    moved = [
        cid
        for cid, old, new in changes
        if (old[0] and month_of(old[0])) != (new[0] and month_of(new[0]))
    ]
    cohort_months = {month_of(d) for d in figures_days}
    for start in range(0, len(moved), CHUNK):
        cohort_months.update(
            d.date() if isinstance(d, datetime) else d
            for d in Purchase.objects.completed()
            .filter(customer_id__in=moved[start : start + CHUNK])
            .annotate(m=TruncMonth("purchased_at", tzinfo=analytics_timezone()))
            .values_list("m", flat=True)
            .distinct()
        )
    _rebuild_cohort_months(cohort_months)

    clear_marks(marked)
    state.last_purchase_id = max(high, state.last_purchase_id)
    state.refreshed_at = timezone.now()
    if new_count or figures_days or bitmap_days or changes:
        # Only a refresh that changed something outdates what was computed from the rollups
        # (cached filters, the customer lifetime arrays): an idle shop's refresh every few
        # minutes leaves them valid.
        state.version += 1
    state.save()
    return RefreshResult(
        new_purchases=new_count, days=sorted(figures_days), moved_customers=len(moved)
    )


# --- Nightly verification ---------------------------------------------------------------------


def mismatched_days() -> list[date]:
    """Days whose stored count, revenue or customer checksum differ from the purchases."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One hash aggregate over every purchase: fast with enough work_mem and no JIT.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '256MB'")
                cursor.execute("SET LOCAL jit = off")
        actual = {
            day: (n, cents, checksum)
            for day, n, cents, checksum in Purchase.objects.completed()
            .annotate(day=TruncDate("purchased_at", tzinfo=analytics_timezone()))
            .values("day")
            .annotate(n=Count("id"), cents=_minor_units(), checksum=Sum("customer_id"))
            .order_by()
            .values_list("day", "n", "cents", "checksum")
        }
    stored = {
        day: (n, int(revenue * 100), checksum)
        for day, n, revenue, checksum in DailyRollup.objects.filter(purchases__gt=0).values_list(
            "day", "purchases", "revenue", "customer_checksum"
        )
    }
    return sorted(
        day
        for day in actual.keys() | stored.keys()
        if tuple(map(int, actual.get(day, (0, 0, 0)))) != stored.get(day, (0, 0, 0))
    )


def verify_rollups() -> list[date]:
    """Recompute the days whose rollups no longer match the purchases; return them."""
    days = sorted(set(mismatched_days()) | set(mismatched_breakdown_days()))
    if days:
        refresh_rollups(dates=days)
    RollupState.objects.filter(id=1).update(verified_at=timezone.now())
    return days
