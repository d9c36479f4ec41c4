"""Whom an automation's trigger matches on a day, and under which period key.

``matches`` answers with the consenting customers (campaigns.audience.consenting: consent
given and recorded, an address, not erased) the trigger selects on ``today`` (a local date in
settings.TIME_ZONE) that have no message of the automation for that period yet, oldest
customer first. Address checks, suppression and one per address come after
(campaigns.audience.screened).

Each trigger fires on the day its occasion comes, and still fires for an occasion of the
last ``settings.AUTOMATION_LOOKBACK_DAYS`` days (env ``AUTOMATION_LOOKBACK_DAYS``, default 3)
that has no message yet, so a day beat missed loses nothing; older occasions never fire.

- Birthday: the birthday falls ``days`` days after today (or after one of the look-back's
  days); period = the year of that birthday ("2027": a birthday coupon sent on 31 December
  for 2 January is the 2027 one). Someone born on 29 February celebrates on 28 February in
  years without one. No birthday: no match.
- Win-back: the customer crosses their lapse threshold today (or within the look-back): the
  day of their last completed purchase plus ``days``, or with a ``gap_multiplier`` plus
  max(``days``, ceil(multiplier x their median gap between consecutive purchase days))
  (a single purchase day: ``days``). Period = the date of that last purchase: a customer who
  comes back and lapses again is won back again, once per lapse. Customers who crossed their
  threshold before the look-back are not matched, not even on the automation's first day:
  a campaign to a segment "last purchase >= N days ago" is the tool for them.
- Thank-you: a completed purchase ``days`` days ago (or within the look-back before that);
  period = that purchase date (one message per purchase day).

Speed, at 1M customers / 10M purchases: birthdays and thank-yous are an indexed or small scan,
and so is the plain win-back (the purchases of the look-back's days ``days`` ago, without a
later one). A win-back by the usual gap needs every consenting customer's first and last
purchase (index probes) and, for those whose threshold can reach the look-back at all (with
k gaps the median is at most the span between them over floor(k / 2) + 1), the median: on
PostgreSQL one statement (LATERAL probes, then ``percentile_cont`` over ``lag()`` of their
distinct purchase days), elsewhere the portable path below, which does the median in Python.
"""

from __future__ import annotations

import calendar
import math
import statistics
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import Exists, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from campaigns.audience import consenting
from campaigns.models import Message, Trigger, TriggerKind
from customers.models import Customer, Purchase, PurchaseStatus
from segments.aggregation import local_midnight
from segments.evaluation import evaluation_settings, matching_customers
from segments.models import Segment, SegmentKind, SegmentMember

# Customers per query when reading purchase days or earlier messages (IN lists stay short).
_CHUNK = 5_000


def look_back_days() -> int:
    """How many days before its day an occasion still fires (settings.AUTOMATION_LOOKBACK_DAYS)."""
    return max(0, getattr(settings, "AUTOMATION_LOOKBACK_DAYS", 3))


class Match(NamedTuple):
    customer_id: int
    email: str
    period: str


def matches(
    *, trigger: Trigger, today: date, campaign_id: int | None, segment: Segment | None
) -> list[Match]:
    """The trigger's matches on ``today`` without a message of ``campaign_id`` for their
    period (``campaign_id`` None: an automation not saved yet, nobody has one)."""
    customers = consenting(_audience(segment, today))
    back = look_back_days()
    if trigger.kind == TriggerKind.BIRTHDAY:
        day = today + timedelta(days=trigger.days)
        return _birthdays(
            customers, first=day - timedelta(days=back), last=day, campaign_id=campaign_id
        )
    if trigger.kind == TriggerKind.THANK_YOU:
        day = today - timedelta(days=trigger.days)
        return _thank_yous(
            customers, first=day - timedelta(days=back), last=day, campaign_id=campaign_id
        )
    window = (today - timedelta(days=back), today)
    if not trigger.gap_multiplier:
        return _plain_win_backs(
            customers, window=window, days=trigger.days, campaign_id=campaign_id
        )
    win_back = _win_backs_postgresql if connection.vendor == "postgresql" else _win_backs
    return win_back(
        customers,
        window=window,
        days=trigger.days,
        multiplier=Decimal(trigger.gap_multiplier),
        campaign_id=campaign_id,
    )


def _audience(segment: Segment | None, today: date) -> QuerySet[Customer]:
    """Everyone, or the segment's members: a static segment's frozen list, a dynamic one's
    rules as they select today (read live, so a preview writes nothing)."""
    if segment is None:
        return Customer.objects.all()
    if segment.kind == SegmentKind.STATIC and segment.refreshed_at is not None:
        members = SegmentMember.objects.filter(segment=segment).values("customer_id")
        return Customer.objects.filter(pk__in=members)
    return Customer.objects.filter(
        pk__in=matching_customers(segment.rules, today=today).values("id")
    )


def _has_message(campaign_id: int | None, period) -> Exists:
    return Exists(
        Message.objects.filter(campaign_id=campaign_id, customer=OuterRef("pk"), period=period)
    )


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _birthdays(
    customers: QuerySet[Customer], *, first: date, last: date, campaign_id: int | None
) -> list[Match]:
    """Birthdays from ``first`` to ``last``, each without its year's message."""
    # (month, day) of a birthday -> the window's day it is celebrated on.
    celebrated = {}
    for day in _days(first, last):
        celebrated[(day.month, day.day)] = day
        if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
            celebrated[(2, 29)] = day
    by_year: dict[int, Q] = defaultdict(Q)
    for (month, day_of_month), day in celebrated.items():
        by_year[day.year] |= Q(birthday__month=month, birthday__day=day_of_month)
    wanted = Q(pk__in=[])
    for year, on_days in by_year.items():
        wanted |= on_days & ~_has_message(campaign_id, str(year))
    rows = customers.filter(wanted).order_by("id").values_list("id", "email", "birthday")
    return [
        Match(customer_id, email, str(celebrated[(born.month, born.day)].year))
        for customer_id, email, born in rows
    ]


def _sent(campaign_id: int | None, customer_ids: list[int]) -> set[tuple[int, str]]:
    """(customer, period) of the automation's messages to these customers."""
    sent = set()
    if campaign_id is None:
        return sent
    for start in range(0, len(customer_ids), _CHUNK):
        sent |= set(
            Message.objects.filter(
                campaign_id=campaign_id, customer_id__in=customer_ids[start : start + _CHUNK]
            ).values_list("customer_id", "period")
        )
    return sent


def _unsent(found: list[Match], campaign_id: int | None) -> list[Match]:
    sent = _sent(campaign_id, sorted({m.customer_id for m in found}))
    return [m for m in found if (m.customer_id, m.period) not in sent]


def _thank_yous(
    customers: QuerySet[Customer], *, first: date, last: date, campaign_id: int | None
) -> list[Match]:
    rows = (
        Purchase.objects.completed()
        .filter(
            purchased_at__gte=local_midnight(first),
            purchased_at__lt=local_midnight(last + timedelta(days=1)),
            customer__in=customers,
        )
        .annotate(day=TruncDate("purchased_at", tzinfo=timezone.get_default_timezone()))
        .values_list("customer_id", "customer__email", "day")
        .order_by("customer_id", "day")
        .distinct()
    )
    found = [Match(customer_id, email, bought.isoformat()) for customer_id, email, bought in rows]
    return _unsent(found, campaign_id)


def _plain_win_backs(
    customers: QuerySet[Customer], *, window: tuple[date, date], days: int, campaign_id: int | None
) -> list[Match]:
    """Customers whose last completed purchase was on one of the window's days minus
    ``days``: the purchases of those few days (purchase_date_idx) without a later one."""
    start = local_midnight(window[0] - timedelta(days=days))
    end = local_midnight(window[1] - timedelta(days=days - 1))
    later = Purchase.objects.completed().filter(
        customer=OuterRef("customer_id"), purchased_at__gte=end
    )
    zone = timezone.get_default_timezone()
    rows = (
        Purchase.objects.completed()
        .filter(purchased_at__gte=start, purchased_at__lt=end, customer__in=customers)
        .exclude(Exists(later))
        .values("customer_id", "customer__email")
        .annotate(last_at=Max("purchased_at"))
        .order_by("customer_id")
        .values_list("customer_id", "customer__email", "last_at")
    )
    found = [
        Match(customer_id, email, timezone.localdate(last_at, zone).isoformat())
        for customer_id, email, last_at in rows
    ]
    return _unsent(found, campaign_id)


def _threshold(last: date, days: int, multiplier: Decimal, median) -> date:
    """The day a customer whose last purchase day is ``last`` counts as lapsed."""
    usual = 0 if median is None else math.ceil(multiplier * Decimal(str(median)))
    return last + timedelta(days=max(days, usual))


def _win_backs(
    customers: QuerySet[Customer],
    *,
    window: tuple[date, date],
    days: int,
    multiplier: Decimal,
    campaign_id: int | None,
) -> list[Match]:
    """Portable path of the usual-gap win-back: first and last purchases by correlated
    subqueries, median gaps in Python."""
    zone = timezone.get_default_timezone()
    purchases = Purchase.objects.completed().filter(customer=OuterRef("pk"))
    rows = (
        customers.annotate(
            last_at=Subquery(purchases.order_by("-purchased_at").values("purchased_at")[:1]),
            first_at=Subquery(purchases.order_by("purchased_at").values("purchased_at")[:1]),
        )
        .filter(last_at__lt=local_midnight(window[1] - timedelta(days=days - 1)))
        .order_by("id")
        .values_list("id", "email", "first_at", "last_at")
    )
    lapsed = {}
    for customer_id, email, first_at, last_at in rows:
        last = timezone.localdate(last_at, zone)
        span = (last - timezone.localdate(first_at, zone)).days
        # The median gap is at most the span: past the window even so, it never fires.
        if _threshold(last, days, multiplier, span or None) >= window[0]:
            lapsed[customer_id] = Match(customer_id, email, last.isoformat())
    found = _unsent(list(lapsed.values()), campaign_id)
    medians = _median_gaps([m.customer_id for m in found])
    return [
        m
        for m in found
        if window[0]
        <= _threshold(date.fromisoformat(m.period), days, multiplier, medians.get(m.customer_id))
        <= window[1]
    ]


def _median_gaps(customer_ids: list[int]) -> dict[int, float]:
    """Median days between consecutive purchase days, of the customers with two or more."""
    zone = timezone.get_default_timezone()
    days: dict[int, set[date]] = defaultdict(set)
    for start in range(0, len(customer_ids), _CHUNK):
        purchases = Purchase.objects.completed().filter(
            customer_id__in=customer_ids[start : start + _CHUNK]
        )
        for customer_id, bought in purchases.values_list("customer_id", "purchased_at"):
            days[customer_id].add(timezone.localdate(bought, zone))
    medians = {}
    for customer_id, bought in days.items():
        ordered = sorted(bought)
        if len(ordered) > 1:
            medians[customer_id] = statistics.median(
                (later - earlier).days for earlier, later in pairwise(ordered)
            )
    return medians


_WIN_BACK_SQL = """
WITH lapsed AS MATERIALIZED (
    SELECT c.id AS customer_id, c.email,
        (l.purchased_at AT TIME ZONE %s)::date AS last_day,
        (f.purchased_at AT TIME ZONE %s)::date AS first_day
    FROM ({customers}) c
    CROSS JOIN LATERAL (
        SELECT p.purchased_at FROM {purchase} p
        WHERE p.customer_id = c.id AND p.status = %s
        ORDER BY p.purchased_at DESC LIMIT 1
    ) l
    CROSS JOIN LATERAL (
        SELECT p.purchased_at FROM {purchase} p
        WHERE p.customer_id = c.id AND p.status = %s
        ORDER BY p.purchased_at ASC LIMIT 1
    ) f
    WHERE l.purchased_at < %s
), fresh AS MATERIALIZED (
    SELECT customer_id, email, last_day, first_day FROM lapsed
    -- The median gap is at most the span from the first purchase day to the last: a
    -- threshold that does not reach the window even so never does.
    WHERE last_day + greatest(%s::int, ceil(%s::numeric * (last_day - first_day))::int)
        >= %s::date
    AND NOT EXISTS (
        SELECT 1 FROM {message} m
        WHERE m.campaign_id = %s AND m.customer_id = lapsed.customer_id
          AND m.period = to_char(lapsed.last_day, 'YYYY-MM-DD')
    )
), likely AS MATERIALIZED (
    SELECT fresh.customer_id, fresh.email, fresh.last_day FROM fresh
    -- Tighter: with k gaps the median is at most span / (floor(k / 2) + 1) (the upper half
    -- of the gaps are each at least the median), and the distinct days among the last
    -- twenty purchases are at most k + 1, read from a few index entries.
    CROSS JOIN LATERAL (
        SELECT count(DISTINCT recent.day) - 1 AS gaps FROM (
            SELECT (p.purchased_at AT TIME ZONE %s)::date AS day FROM {purchase} p
            WHERE p.customer_id = fresh.customer_id AND p.status = %s
            ORDER BY p.purchased_at DESC LIMIT 20
        ) recent
    ) seen
    WHERE fresh.last_day + greatest(
        %s::int,
        ceil(%s::numeric * (fresh.last_day - fresh.first_day) / (seen.gaps / 2 + 1))::int
    ) >= %s::date
)
SELECT likely.customer_id, likely.email, to_char(likely.last_day, 'YYYY-MM-DD') FROM likely
-- The customer's median gap between consecutive distinct purchase days (NULL with a single
-- day), read through the (customer, purchased_at) index for the few candidates only.
CROSS JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS median FROM (
        SELECT day - lag(day) OVER (ORDER BY day) AS gap FROM (
            SELECT DISTINCT (p.purchased_at AT TIME ZONE %s)::date AS day FROM {purchase} p
            WHERE p.customer_id = likely.customer_id AND p.status = %s
        ) days
    ) gaps
    WHERE gap IS NOT NULL
) usual
WHERE likely.last_day
    + greatest(%s::int, coalesce(ceil(%s::numeric * usual.median::numeric)::int, 0))
    BETWEEN %s::date AND %s::date
ORDER BY likely.customer_id
"""


def _win_backs_postgresql(
    customers: QuerySet[Customer],
    *,
    window: tuple[date, date],
    days: int,
    multiplier: Decimal,
    campaign_id: int | None,
) -> list[Match]:
    """PostgreSQL fast path of the usual-gap win-back: the same matches in one statement."""
    customers_sql, customers_params = customers.values("id", "email").query.sql_with_params()
    quote = connection.ops.quote_name
    sql = _WIN_BACK_SQL.format(
        customers=customers_sql,
        purchase=quote(Purchase._meta.db_table),
        message=quote(Message._meta.db_table),
    )
    zone = str(timezone.get_default_timezone())
    completed = PurchaseStatus.COMPLETED
    lapsed_before = local_midnight(window[1] - timedelta(days=days - 1))
    # In the order of the statement's placeholders.
    params = [
        *(zone, zone),
        *customers_params,
        *(completed, completed, lapsed_before),
        *(days, multiplier, window[0], campaign_id),
        *(zone, completed, days, multiplier, window[0]),
        *(zone, completed),
        *(days, multiplier, *window),
    ]
    with evaluation_settings(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [Match(*row) for row in cursor.fetchall()]
