"""Acquisition cohorts: retention by month since the first purchase, and lifetime value.

Cohort = the calendar month (settings.TIME_ZONE) of a customer's first completed purchase.
Retention at month k = share of the cohort with a purchase in month first+k (k = 0 is always
1). Historical LTV = the cohort's cumulative revenue (all of its completed purchases so far, or
up to month first+k for the k-th cumulative value) / the cohort's size.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

from django.db.models import Max

from analytics import bitmaps
from analytics.kpis import CENT, Filters, customer_set, money_ratio, ratio
from analytics.models import CohortRevenue, MonthlyRollup
from analytics.rollups import month_of, months_between


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
    for month, active_blob, first_blob in rows.values_list("month", "active", "first_buyers"):
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


def _cells(start_month, end_month, channel):
    cells = CohortRevenue.objects.all()
    if start_month:
        cells = cells.filter(cohort__gte=month_of(start_month))
    if end_month:
        cells = cells.filter(cohort__lte=month_of(end_month))
    if channel is not None:
        cells = cells.filter(channel=channel)
    return cells.values_list("cohort", "month", "channel", "customers", "revenue")


def ltv_by_cohort(
    *,
    start_month: date | None = None,
    end_month: date | None = None,
    channel: str | None = None,
) -> list[dict]:
    """Per cohort (optionally only customers of one source channel): size, revenue so far,
    LTV, and the cumulative LTV at month first+k for k = 0 up to the newest month."""
    size: dict[date, int] = defaultdict(int)
    by_month: dict[date, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for cohort, month, _channel, customers, revenue in _cells(start_month, end_month, channel):
        if month == cohort:  # every member buys in the cohort's own month
            size[cohort] += customers
        by_month[cohort][month] += revenue
    newest = CohortRevenue.objects.aggregate(m=Max("month"))["m"]
    table = []
    for cohort in sorted(by_month):
        running, cumulative = Decimal(0), []
        for month in months_between(cohort, newest):
            running += by_month[cohort].get(month, Decimal(0))
            cumulative.append(money_ratio(int(running * 100), size[cohort]))
        table.append(
            {
                "cohort": cohort,
                "customers": size[cohort],
                "revenue": running.quantize(CENT),
                "ltv": money_ratio(int(running * 100), size[cohort]),
                "cumulative_ltv": cumulative,
            }
        )
    return table


def ltv_by_channel(*, start_month: date | None = None, end_month: date | None = None) -> list[dict]:
    """Per source channel of the customers acquired in start_month..end_month: customers,
    their revenue so far and LTV. The channel "" is customers without one."""
    customers: dict[str, int] = defaultdict(int)
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for cohort, month, channel, n, amount in _cells(start_month, end_month, None):
        if month == cohort:
            customers[channel] += n
        revenue[channel] += amount
    return [
        {
            "channel": channel,
            "customers": customers[channel],
            "revenue": revenue[channel].quantize(CENT),
            "ltv": money_ratio(int(revenue[channel] * 100), customers[channel]),
        }
        for channel in sorted(revenue)
    ]


def average_ltv(
    *,
    start_month: date | None = None,
    end_month: date | None = None,
    channel: str | None = None,
) -> dict:
    """The customers acquired in start_month..end_month (of one source channel if given)
    together: how many, their revenue so far, and the average LTV."""
    rows = ltv_by_channel(start_month=start_month, end_month=end_month)
    if channel is not None:
        rows = [row for row in rows if row["channel"] == channel]
    customers = sum(r["customers"] for r in rows)
    revenue = sum((r["revenue"] for r in rows), Decimal(0))
    return {
        "customers": customers,
        "revenue": revenue.quantize(CENT),
        "ltv": money_ratio(int(revenue * 100), customers),
    }
