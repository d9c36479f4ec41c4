"""Per-customer purchase aggregates, the input of ``segments.scoring``: one pass over the
completed purchases in the database, never the raw rows in Python.

Days are calendar dates in ``settings.TIME_ZONE`` (not the time zone of whoever asks): a
purchase at 00:30 JST on 3 May counts on 3 May. ``as_of`` defaults to the day after the newest
completed purchase; with ``window_days`` N only purchases on dates d with
as_of - N <= d < as_of count, and purchases on or after ``as_of`` never do.

PostgreSQL fast path (``_aggregate_postgresql``): the session settings below and a COPY of the
result into pandas; the portable path is the ORM's GROUP BY.
"""

from __future__ import annotations

import io
from datetime import date, datetime, time, timedelta

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from customers.models import Purchase, PurchaseStatus

COLUMNS = [
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "first_purchase_on",
    "last_purchase_on",
]

# A hash aggregate of a million customers needs ~150 MB; with the default 4 MB the planner
# walks the customer index instead (22.9 s vs 5.0 s on 10M purchases, DESIGN.md). JIT
# compilation costs seconds and buys nothing on this query.
PG_SESSION_SETTINGS = {
    "work_mem": "512MB",
    "jit": "off",
}


def local_midnight(day: date) -> datetime:
    """The instant a local calendar day (settings.TIME_ZONE) starts."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_default_timezone())


def default_as_of() -> date:
    """The day after the newest completed purchase (today if there is none)."""
    newest = Purchase.objects.completed().aggregate(newest=Max("purchased_at"))["newest"]
    if newest is None:
        return timezone.localdate(timezone=timezone.get_default_timezone())
    return timezone.localdate(newest, timezone.get_default_timezone()) + timedelta(days=1)


def window_bounds(*, as_of: date, window_days: int | None) -> tuple[datetime | None, datetime]:
    """[start, end) instants of the purchases that count (start None: all history)."""
    start = local_midnight(as_of - timedelta(days=window_days)) if window_days else None
    return start, local_midnight(as_of)


def customer_aggregates(
    *, as_of: date | None = None, window_days: int | None = None
) -> tuple[pd.DataFrame, date]:
    """One row per customer with a completed purchase in the window: ``COLUMNS``, dates as
    ``datetime64`` days, monetary as float (cents exact). Returns the frame and the as_of
    used."""
    if as_of is None:
        as_of = default_as_of()
    start, end = window_bounds(as_of=as_of, window_days=window_days)
    if connection.vendor == "postgresql":
        frame = _aggregate_postgresql(start=start, end=end)
    else:
        frame = _aggregate_orm(start=start, end=end)
    frame["recency_days"] = (
        np.datetime64(as_of, "D") - frame["last_purchase_on"].to_numpy().astype("datetime64[D]")
    ).astype(np.int64)
    return frame[COLUMNS], as_of


def _aggregate_postgresql(*, start: datetime | None, end: datetime) -> pd.DataFrame:
    table = Purchase._meta.db_table
    # max/min of the instants, converted to local dates once per customer rather than once per
    # purchase (the local date is monotonic in the instant). Dates leave as day numbers since
    # 1970-01-01: integers parse far faster than date text.
    where = "status = %s AND purchased_at < %s" + (" AND purchased_at >= %s" if start else "")
    params = [PurchaseStatus.COMPLETED.value, end] + ([start] if start else [])
    tz = str(timezone.get_default_timezone())
    buffer = io.BytesIO()
    with transaction.atomic(), connection.cursor() as cursor:
        for name, value in PG_SESSION_SETTINGS.items():
            cursor.execute(f"SET LOCAL {name} = '{value}'")
        query = cursor.mogrify(
            f"""
            SELECT customer_id,
                   count(*),
                   sum(total),
                   (min(purchased_at) AT TIME ZONE %s)::date - DATE '1970-01-01',
                   (max(purchased_at) AT TIME ZONE %s)::date - DATE '1970-01-01'
            FROM {table}
            WHERE {where}
            GROUP BY customer_id
            """,  # noqa: S608 (our table name; the values are parameters)
            [tz, tz, *params],
        ).decode()
        cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", buffer)
    buffer.seek(0)
    raw = pd.read_csv(
        buffer,
        header=None,
        names=["customer_id", "frequency", "monetary", "first_day", "last_day"],
        dtype={
            "customer_id": np.int64,
            "frequency": np.int64,
            "monetary": np.float64,
            "first_day": np.int64,
            "last_day": np.int64,
        },
        engine="c",
    )
    return pd.DataFrame(
        {
            "customer_id": raw["customer_id"],
            "frequency": raw["frequency"],
            "monetary": raw["monetary"],
            "first_purchase_on": raw["first_day"].to_numpy().astype("datetime64[D]"),
            "last_purchase_on": raw["last_day"].to_numpy().astype("datetime64[D]"),
        }
    )


def _aggregate_orm(*, start: datetime | None, end: datetime) -> pd.DataFrame:
    purchases = Purchase.objects.completed().filter(purchased_at__lt=end)
    if start is not None:
        purchases = purchases.filter(purchased_at__gte=start)
    rows = (
        purchases.order_by()
        .values("customer_id")
        .annotate(
            frequency=Count("id"),
            monetary=Sum("total"),
            first=Min("purchased_at"),
            last=Max("purchased_at"),
        )
        .values_list("customer_id", "frequency", "monetary", "first", "last")
    )
    tz = timezone.get_default_timezone()
    ids, frequency, monetary, first, last = [], [], [], [], []
    for customer_id, count, total, first_at, last_at in rows:
        ids.append(customer_id)
        frequency.append(count)
        monetary.append(float(total))
        first.append(timezone.localdate(first_at, tz))
        last.append(timezone.localdate(last_at, tz))
    return pd.DataFrame(
        {
            "customer_id": np.asarray(ids, dtype=np.int64),
            "frequency": np.asarray(frequency, dtype=np.int64),
            "monetary": np.asarray(monetary, dtype=np.float64),
            "first_purchase_on": np.asarray(first, dtype="datetime64[D]"),
            "last_purchase_on": np.asarray(last, dtype="datetime64[D]"),
        }
    )
