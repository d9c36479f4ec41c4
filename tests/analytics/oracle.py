"""The analytics figures computed independently, in plain Python over the raw purchases, from
DESIGN.md's definitions: what the rollup-based code in analytics/ must agree with."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")


@dataclass
class P:  # one purchase as the oracle sees it
    customer: int
    at: datetime
    total: Decimal
    completed: bool

    @property
    def day(self) -> date:
        return self.at.astimezone(TOKYO).date()


def snapshot() -> list[P]:
    from customers.models import Purchase

    return [
        P(p.customer_id, p.purchased_at, p.total, p.status == "completed")
        for p in Purchase.objects.all()
    ]


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _div(a, b):
    return None if b == 0 else a / b


def _month(d: date) -> date:
    return d.replace(day=1)


def _shift_year(d: date) -> date:
    try:
        return d.replace(year=d.year - 1)
    except ValueError:
        return d.replace(year=d.year - 1, day=28)


def period_kpis(purchases, start: date, end: date, members=None, customers=None) -> dict:
    done = [p for p in purchases if p.completed and (members is None or p.customer in members)]
    in_p = [p for p in done if start <= p.day <= end]
    length = (end - start).days + 1
    prev_start, prev_end = start - timedelta(days=length), start - timedelta(days=1)
    active = {p.customer for p in in_p}
    prev_active = {p.customer for p in done if prev_start <= p.day <= prev_end}
    first = {}
    for p in done:
        first[p.customer] = min(first.get(p.customer, p.day), p.day)
    up_to_end = defaultdict(int)
    for p in done:
        if p.day <= end:
            up_to_end[p.customer] += 1
    revenue = sum((p.total for p in in_p), Decimal(0))
    retention = _div(len(prev_active & active), len(prev_active))
    result = {
        "active_customers": len(active),
        "new_customers": sum(1 for c, d in first.items() if start <= d <= end),
        "revenue": cents(revenue),
        "purchases": len(in_p),
        "aov": None if not in_p else cents(revenue / len(in_p)),
        "purchases_per_customer": _div(len(in_p), len(active)),
        "spend_per_customer": None if not active else cents(revenue / len(active)),
        "repeat_rate": _div(sum(1 for c in active if up_to_end[c] >= 2), len(active)),
        "retention_rate": retention,
        "churn_rate": None if retention is None else 1 - retention,
    }
    if customers is not None:
        result["customers"] = customers
    return result


def with_comparisons(purchases, start, end, members=None) -> dict:
    length = (end - start).days + 1
    prev = (start - timedelta(days=length), start - timedelta(days=1))
    last = (_shift_year(start), _shift_year(end))
    return {
        **period_kpis(purchases, start, end, members),
        "previous": period_kpis(purchases, *prev, members),
        "last_year": period_kpis(purchases, *last, members),
    }


def cohorts(purchases, members=None) -> dict[date, tuple[int, list[int]]]:
    done = [p for p in purchases if p.completed and (members is None or p.customer in members)]
    if not done:
        return {}
    first = {}
    for p in done:
        first[p.customer] = min(first.get(p.customer, p.day), p.day)
    months_active = defaultdict(set)
    for p in done:
        months_active[_month(p.day)].add(p.customer)
    newest = max(_month(p.day) for p in done)
    table = {}
    for cohort in sorted({_month(d) for d in first.values()}):
        group = {c for c, d in first.items() if _month(d) == cohort}
        retained, month = [], cohort
        while month <= newest:
            retained.append(len(group & months_active[month]))
            month = (month + timedelta(days=32)).replace(day=1)
        table[cohort] = (len(group), retained)
    return table


def ltv(purchases, channel_of: dict[int, str]) -> tuple[dict, dict]:
    done = [p for p in purchases if p.completed]
    first = {}
    for p in done:
        first[p.customer] = min(first.get(p.customer, p.day), p.day)
    by_cohort, by_channel = (
        defaultdict(lambda: [set(), Decimal(0)]),
        defaultdict(lambda: [set(), Decimal(0)]),
    )
    for p in done:
        for key, table in (
            (_month(first[p.customer]), by_cohort),
            (channel_of[p.customer], by_channel),
        ):
            table[key][0].add(p.customer)
            table[key][1] += p.total
    return (
        {k: (len(v[0]), cents(v[1]), cents(v[1] / len(v[0]))) for k, v in by_cohort.items()},
        {k: (len(v[0]), cents(v[1]), cents(v[1] / len(v[0]))) for k, v in by_channel.items()},
    )


def ranked_spend(purchases, start, end, members=None) -> list[tuple[int, Decimal]]:
    spend = defaultdict(Decimal)
    for p in purchases:
        if p.completed and start <= p.day <= end and (members is None or p.customer in members):
            spend[p.customer] += p.total
    return sorted(spend.items(), key=lambda item: (-item[1], item[0]))


# --- Breakdowns (analytics.breakdowns), from SQL over the raw tables and pandas -------------


def purchase_frame(start: date, end: date, members=None):
    """Completed purchases made on local days start..end: one row each, with the local
    weekday and hour converted by PostgreSQL, the purchase's channel and the customer's
    current prefecture."""
    import pandas as pd
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.id, p.customer_id, (p.purchased_at AT TIME ZONE 'Asia/Tokyo') AS local,
                   p.channel, c.prefecture, p.total
            FROM customers_purchase p JOIN customers_customer c ON c.id = p.customer_id
            WHERE p.status = 'completed'
            """
        )
        frame = pd.DataFrame(
            cursor.fetchall(),
            columns=["id", "customer", "local", "channel", "prefecture", "total"],
        )
    if frame.empty:
        return frame.assign(day=[], weekday=[], hour=[])
    frame["day"] = frame["local"].map(lambda t: t.date())
    frame["weekday"] = frame["local"].map(lambda t: t.weekday())
    frame["hour"] = frame["local"].map(lambda t: t.hour)
    frame = frame[(frame["day"] >= start) & (frame["day"] <= end)]
    if members is not None:
        frame = frame[frame["customer"].isin(set(members))]
    return frame


def timing(start: date, end: date, members=None) -> dict[tuple[int, int], tuple[int, Decimal]]:
    frame = purchase_frame(start, end, members)
    return {
        (int(w), int(h)): (len(group), cents(sum(group["total"], Decimal(0))))
        for (w, h), group in frame.groupby(["weekday", "hour"])
    }


def category_lines(frame) -> list[tuple[int, int, str, Decimal]]:
    """(purchase, customer, category, amount): items at quantity x unit price, and what each
    total does not owe to its items under "" (no category)."""
    from django.db import connection

    ids = [int(i) for i in frame["id"]]
    if not ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.purchase_id, pr.category, i.quantity * i.unit_price
            FROM customers_purchaseitem i JOIN customers_product pr ON pr.id = i.product_id
            WHERE i.purchase_id = ANY(%s)
            """,
            [ids],
        )
        items = cursor.fetchall()
    by_purchase = defaultdict(list)
    for purchase, category, amount in items:
        by_purchase[purchase].append((category, amount))
    lines = []
    for purchase, customer, total in zip(
        frame["id"], frame["customer"], frame["total"], strict=True
    ):
        own = by_purchase.get(purchase, [])
        amounts = defaultdict(Decimal)
        for category, amount in own:
            amounts[category] += amount
        rest = total - sum((a for _c, a in own), Decimal(0))
        if rest or not own:
            amounts[""] += rest
        lines.extend((purchase, customer, category, a) for category, a in amounts.items())
    return lines


def revenue_by(dimension: str, start: date, end: date, members=None) -> list[tuple]:
    """(key, purchases, customers, revenue) by revenue descending, ties by key."""
    frame = purchase_frame(start, end, members)
    if dimension == "category":
        rows = category_lines(frame)
    else:
        rows = [
            (p, c, k or "", t)
            for p, c, k, t in zip(
                frame["id"], frame["customer"], frame[dimension], frame["total"], strict=True
            )
        ]
    groups = defaultdict(lambda: [set(), set(), Decimal(0)])
    for purchase, customer, key, amount in rows:
        groups[key][0].add(purchase)
        groups[key][1].add(customer)
        groups[key][2] += amount
    table = [(k, len(v[0]), len(v[1]), cents(v[2])) for k, v in groups.items()]
    return sorted(table, key=lambda row: (-row[3], row[0]))


def top_customers(start: date, end: date, members=None, limit: int = 20) -> list[tuple]:
    """(customer, purchases, revenue, last purchase) by revenue descending, ties by id."""
    frame = purchase_frame(start, end, members)
    rows = []
    for customer, group in frame.groupby("customer"):
        last = max(group["local"]).to_pydatetime().replace(tzinfo=TOKYO)
        rows.append((int(customer), len(group), cents(sum(group["total"], Decimal(0))), last))
    rows.sort(key=lambda row: (-row[2], row[0]))
    return rows[:limit]


def ltv_of(purchases, channel_of: dict[int, str], members=None, first_month=None, last_month=None):
    """``ltv`` of the customers in ``members`` (None: everyone) acquired in the months
    first_month..last_month (None: unbounded), and all of them together as (customers,
    revenue, average LTV)."""
    done = [p for p in purchases if p.completed and (members is None or p.customer in members)]
    first = {}
    for p in done:
        first[p.customer] = min(first.get(p.customer, p.day), p.day)
    acquired = {
        c
        for c, d in first.items()
        if (first_month is None or _month(d) >= first_month)
        and (last_month is None or _month(d) <= last_month)
    }
    chosen = [p for p in done if p.customer in acquired]
    by_cohort, by_channel = ltv(chosen, channel_of)
    revenue = sum((p.total for p in chosen), Decimal(0))
    average = (len(acquired), cents(revenue), cents(revenue / len(acquired)) if acquired else None)
    return by_cohort, by_channel, average


def cumulative_ltv(purchases, members=None) -> dict[date, list[Decimal]]:
    """Per cohort of ``members`` (None: everyone): the LTV counting the purchases up to month
    first+k, for k = 0 up to the newest month with a completed purchase (anyone's)."""
    done = [p for p in purchases if p.completed]
    newest = max(_month(p.day) for p in done)
    first = {}
    for p in done:
        first[p.customer] = min(first.get(p.customer, p.day), p.day)
    table = {}
    for cohort in sorted({_month(d) for c, d in first.items() if members is None or c in members}):
        group = {c for c, d in first.items() if _month(d) == cohort}
        if members is not None:
            group &= set(members)
        values, month = [], cohort
        while month <= newest:
            spent = sum(
                (p.total for p in done if p.customer in group and _month(p.day) <= month),
                Decimal(0),
            )
            values.append(cents(spent / len(group)))
            month = (month + timedelta(days=32)).replace(day=1)
        table[cohort] = values
    return table
