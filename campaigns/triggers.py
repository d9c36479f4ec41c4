"""Whom an automation's trigger matches on a day, and under which period key.

``matches`` answers with the consenting customers (campaigns.audience.consenting: consent
given and recorded, an address, not erased) the trigger selects on ``today`` (a local date in
settings.TIME_ZONE) that have no message of the automation for that period yet, oldest
customer first. Address checks, suppression and one per address come after
(campaigns.audience.screened).

- Birthday: the birthday falls ``days`` days after today; period = the year of that birthday
  ("2027": a birthday coupon sent on 31 December for 2 January is the 2027 one). Someone born
  on 29 February celebrates on 28 February in years without one. No birthday: no match.
- Win-back: the last completed purchase was ``days`` or more days ago and, with a
  ``gap_multiplier``, the days since it exceed that many times the customer's median gap
  between consecutive purchase days (customers with a single purchase day: ``days`` only).
  Period = the date of that last purchase: a customer who comes back and lapses again is won
  back again, once per lapse.
- Thank-you: a completed purchase ``days`` days ago; period = that purchase date (one message
  per purchase day). Purchases up to THANK_YOU_LOOK_BACK days older still get theirs if it
  does not exist yet, so a day beat missed loses no thank-you; older ones never do.

Speed, at 1M customers / 10M purchases: birthdays and thank-yous are an indexed or small scan.
Win-back needs every consenting customer's last purchase (one probe of the purchases'
(customer, purchased_at) index each) and, for those lapsed without a message yet, the median
of their purchase-day gaps: on PostgreSQL one statement (a LATERAL probe, then
``percentile_cont`` over ``lag()`` of their distinct purchase days), elsewhere the portable
path below, which does the median in Python.
"""

from __future__ import annotations

import calendar
import statistics
from collections import defaultdict
from datetime import date, timedelta
from itertools import pairwise
from typing import NamedTuple

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from campaigns.audience import consenting
from campaigns.models import Message, Trigger, TriggerKind
from customers.models import Customer, Purchase, PurchaseStatus
from segments.aggregation import local_midnight
from segments.evaluation import evaluation_settings, matching_customers
from segments.models import Segment, SegmentKind, SegmentMember

# How many days before ``days`` a thank-you still goes out for a purchase missed so far.
THANK_YOU_LOOK_BACK = 2
# Customers per query when the portable path reads purchase days for the median gap.
_CHUNK = 5_000


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
    if trigger.kind == TriggerKind.BIRTHDAY:
        return _birthdays(
            customers, day=today + timedelta(days=trigger.days), campaign_id=campaign_id
        )
    if trigger.kind == TriggerKind.THANK_YOU:
        return _thank_yous(
            customers, day=today - timedelta(days=trigger.days), campaign_id=campaign_id
        )
    multiplier = float(trigger.gap_multiplier) if trigger.gap_multiplier else None
    win_back = _win_backs_postgresql if connection.vendor == "postgresql" else _win_backs
    return win_back(
        customers, today=today, days=trigger.days, multiplier=multiplier, campaign_id=campaign_id
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


def _birthdays(customers: QuerySet[Customer], *, day: date, campaign_id: int | None) -> list[Match]:
    on_day = Q(birthday__month=day.month, birthday__day=day.day)
    if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
        on_day |= Q(birthday__month=2, birthday__day=29)
    period = str(day.year)
    rows = (
        customers.filter(on_day)
        .exclude(_has_message(campaign_id, period))
        .order_by("id")
        .values_list("id", "email")
    )
    return [Match(customer_id, email, period) for customer_id, email in rows]


def _thank_yous(
    customers: QuerySet[Customer], *, day: date, campaign_id: int | None
) -> list[Match]:
    first = day - timedelta(days=THANK_YOU_LOOK_BACK)
    rows = (
        Purchase.objects.completed()
        .filter(
            purchased_at__gte=local_midnight(first),
            purchased_at__lt=local_midnight(day + timedelta(days=1)),
            customer__in=customers,
        )
        .annotate(day=TruncDate("purchased_at", tzinfo=timezone.get_default_timezone()))
        .values_list("customer_id", "customer__email", "day")
        .order_by("customer_id", "day")
        .distinct()
    )
    periods = [(first + timedelta(days=n)).isoformat() for n in range(THANK_YOU_LOOK_BACK + 1)]
    # A few days' messages at most: read whole rather than probed per purchase.
    sent = set(
        Message.objects.filter(campaign_id=campaign_id, period__in=periods).values_list(
            "customer_id", "period"
        )
    )
    found = (Match(customer_id, email, bought.isoformat()) for customer_id, email, bought in rows)
    return [match for match in found if (match.customer_id, match.period) not in sent]


def _win_backs(
    customers: QuerySet[Customer],
    *,
    today: date,
    days: int,
    multiplier: float | None,
    campaign_id: int | None,
) -> list[Match]:
    """Portable path: last purchases by a correlated subquery, median gaps in Python."""
    zone = timezone.get_default_timezone()
    last = (
        Purchase.objects.completed()
        .filter(customer=OuterRef("pk"))
        .order_by("-purchased_at")
        .values("purchased_at")[:1]
    )
    rows = (
        customers.annotate(last_at=Subquery(last))
        .filter(last_at__lt=local_midnight(today - timedelta(days=days - 1)))
        .order_by("id")
        .values_list("id", "email", "last_at")
    )
    lapsed = [
        Match(customer_id, email, timezone.localdate(last_at, zone).isoformat())
        for customer_id, email, last_at in rows
    ]
    # The portable path serves small databases: the automation's messages are read whole
    # (an IN list of every lapsed customer could outgrow SQLite's limit on parameters).
    sent = set(Message.objects.filter(campaign_id=campaign_id).values_list("customer_id", "period"))
    lapsed = [m for m in lapsed if (m.customer_id, m.period) not in sent]
    if multiplier is None:
        return lapsed
    medians = _median_gaps([m.customer_id for m in lapsed])
    return [
        m
        for m in lapsed
        if m.customer_id not in medians
        or (today - date.fromisoformat(m.period)).days > multiplier * medians[m.customer_id]
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
    SELECT c.id AS customer_id, c.email, (l.purchased_at AT TIME ZONE %s)::date AS last_day
    FROM ({customers}) c
    CROSS JOIN LATERAL (
        SELECT p.purchased_at FROM {purchase} p
        WHERE p.customer_id = c.id AND p.status = %s
        ORDER BY p.purchased_at DESC LIMIT 1
    ) l
    WHERE l.purchased_at < %s
), fresh AS MATERIALIZED (
    SELECT * FROM lapsed
    WHERE NOT EXISTS (
        SELECT 1 FROM {message} m
        WHERE m.campaign_id = %s AND m.customer_id = lapsed.customer_id
          AND m.period = to_char(lapsed.last_day, 'YYYY-MM-DD')
    )
)
SELECT fresh.customer_id, fresh.email, to_char(fresh.last_day, 'YYYY-MM-DD') FROM fresh
{gap}
ORDER BY fresh.customer_id
"""

# The customer's median gap between consecutive distinct purchase days (NULL with a single
# day), read through the (customer, purchased_at) index for the few lapsed customers only.
_GAP_SQL = """
CROSS JOIN LATERAL (
    SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS median FROM (
        SELECT day - lag(day) OVER (ORDER BY day) AS gap FROM (
            SELECT DISTINCT (p.purchased_at AT TIME ZONE %s)::date AS day FROM {purchase} p
            WHERE p.customer_id = fresh.customer_id AND p.status = %s
        ) days
    ) gaps
    WHERE gap IS NOT NULL
) usual
WHERE usual.median IS NULL OR (%s::date - fresh.last_day) > %s * usual.median
"""


def _win_backs_postgresql(
    customers: QuerySet[Customer],
    *,
    today: date,
    days: int,
    multiplier: float | None,
    campaign_id: int | None,
) -> list[Match]:
    """PostgreSQL fast path: the same matches in one statement."""
    zone = str(timezone.get_default_timezone())
    customers_sql, customers_params = customers.values("id", "email").query.sql_with_params()
    quote = connection.ops.quote_name
    tables = {
        "purchase": quote(Purchase._meta.db_table),
        "message": quote(Message._meta.db_table),
    }
    gap = _GAP_SQL.format(**tables) if multiplier is not None else ""
    sql = _WIN_BACK_SQL.format(customers=customers_sql, gap=gap, **tables)
    params = [
        zone,
        *customers_params,
        PurchaseStatus.COMPLETED,
        local_midnight(today - timedelta(days=days - 1)),
        campaign_id,
    ]
    if multiplier is not None:
        params += [zone, PurchaseStatus.COMPLETED, today, multiplier]
    with evaluation_settings(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [Match(*row) for row in cursor.fetchall()]
