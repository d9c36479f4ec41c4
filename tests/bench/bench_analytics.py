"""Benchmark of the analytics figures at scale (1M customers / 10M purchases).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        flock /tmp/bench.lock python -m tests.bench.bench_analytics [--rebuild] [--requests 20]

Builds the rollups if they are not built (``--rebuild``: always, timed), then requests the
analytics API in-process with Django's test client as a signed-in marketer (so the time is
server time: routing, permissions, rollup reads, serialisation):

- cold: each request in a new process with an empty cache (Django's cache and the rollup
  rows it reads; PostgreSQL's buffers and the OS page cache stay as they are), p50/p95/max;
- warm: ``--requests`` requests in one process, p50/p95/max.

KPIs for a month, a quarter and a year (each with the previous period and last year), a year
filtered by prefecture, the deciles, Pareto, cohorts and LTV. Then it checks the month's KPIs
against a direct SQL computation over the purchases, times the nightly verification query,
and times the incremental refresh after 50,000 new purchases on one new day (2026-11-01, with
1,000 new customers among the buyers) and after 50,000 more on the dataset's last day (whose
month's LTV cells are recomputed over ~330,000 purchases). Those purchases are written inside
a transaction that is rolled back after the timing, with everything the refresh wrote: the
database's purchases and rollups are left as they were (only sequence values are used up).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

TARGET_MS = 500
REFRESH_TARGET_S = 10
NEW_PURCHASES = 50_000
NEW_CUSTOMERS = 1_000
MONTH = ("2026-09-01", "2026-09-30")
QUARTER = ("2026-07-01", "2026-09-30")
YEAR = ("2025-10-01", "2026-09-30")
URLS = {
    "kpis month": f"/api/v1/analytics/kpis/?start={MONTH[0]}&end={MONTH[1]}",
    "kpis quarter": f"/api/v1/analytics/kpis/?start={QUARTER[0]}&end={QUARTER[1]}",
    "kpis year": f"/api/v1/analytics/kpis/?start={YEAR[0]}&end={YEAR[1]}",
    "kpis year, Tokyo": f"/api/v1/analytics/kpis/?start={YEAR[0]}&end={YEAR[1]}&prefecture=13",
    "kpis month, Tokyo": f"/api/v1/analytics/kpis/?start={MONTH[0]}&end={MONTH[1]}&prefecture=13",
    "deciles year": f"/api/v1/analytics/deciles/?start={YEAR[0]}&end={YEAR[1]}",
    "pareto year": f"/api/v1/analytics/pareto/?start={YEAR[0]}&end={YEAR[1]}",
    "cohorts": "/api/v1/analytics/cohorts/",
    "ltv": "/api/v1/analytics/ltv/",
}
COLD_RUNS = {"kpis month": 5, "kpis quarter": 5, "kpis year": 5}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def line(name: str, timings: list[float], target: float | None = TARGET_MS) -> str:
    text = (
        f"{name:<22} n={len(timings):<3} p50 {statistics.median(timings):7.1f} ms"
        f"  p95 {percentile(timings, 0.95):7.1f} ms  max {max(timings):7.1f} ms"
    )
    if target is not None:
        text += "  OK" if percentile(timings, 0.95) < target else f"  OVER {target} ms"
    return text


def client():
    from django.contrib.auth import get_user_model
    from django.test import Client

    from crm.roles import Role
    from tests.factories import UserFactory

    user = get_user_model().objects.filter(username="bench-marketer").first()
    if user is None:
        user = UserFactory(role=Role.MARKETER, username="bench-marketer")
    c = Client()
    c.force_login(user)
    return c


def timed_get(c, url: str) -> float:
    start = time.perf_counter()
    response = c.get(url, HTTP_ACCEPT_LANGUAGE="en")
    elapsed = (time.perf_counter() - start) * 1000
    assert response.status_code == 200, (url, response.status_code, response.content[:300])
    return elapsed


def cold_one(name: str) -> None:
    """In a fresh process: one request after warming up Django itself (URLconf, imports)."""
    from tests.bench.dataset import setup_django

    setup_django()
    from django.core.cache import cache

    c = client()
    c.get("/api/v1/me/")
    cache.clear()
    print(json.dumps({"ms": timed_get(c, URLS[name])}))


def cold(name: str, runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_analytics", "--cold-one", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        timings.append(json.loads(out.strip().splitlines()[-1])["ms"])
    return timings


def sql_kpis(start: date, end: date) -> dict:
    """The period's KPIs straight from the purchases, in SQL (the independent check)."""
    from django.db import connection

    from analytics.rollups import day_start

    length = (end - start).days + 1
    prev_start = start - timedelta(days=length)
    bounds = [day_start(d) for d in (prev_start, start, end + timedelta(days=1))]
    with connection.cursor() as cursor:
        cursor.execute("SET work_mem = '256MB'")
        cursor.execute(
            """
            WITH done AS (
                SELECT customer_id, purchased_at, total FROM customers_purchase
                WHERE status = 'completed'
            ), p AS (SELECT * FROM done WHERE purchased_at >= %(s)s AND purchased_at < %(e)s),
            active AS (SELECT DISTINCT customer_id FROM p),
            prev AS (
                SELECT DISTINCT customer_id FROM done
                WHERE purchased_at >= %(ps)s AND purchased_at < %(s)s
            ),
            firsts AS (SELECT customer_id, min(purchased_at) AS f FROM done GROUP BY 1),
            upto AS (
                SELECT customer_id FROM done WHERE purchased_at < %(e)s
                AND customer_id IN (SELECT customer_id FROM active)
                GROUP BY 1 HAVING count(*) >= 2
            )
            SELECT
                (SELECT count(*) FROM active),
                (SELECT count(*) FROM firsts WHERE f >= %(s)s AND f < %(e)s),
                (SELECT coalesce(sum(total), 0) FROM p),
                (SELECT count(*) FROM p),
                (SELECT count(*) FROM upto),
                (SELECT count(*) FROM prev),
                (SELECT count(*) FROM prev WHERE customer_id IN (SELECT customer_id FROM active))
            """,
            {"ps": bounds[0], "s": bounds[1], "e": bounds[2]},
        )
        active, new, revenue, purchases, repeaters, prev, retained = cursor.fetchone()
        cursor.execute("RESET work_mem")
    return {
        "active_customers": active,
        "new_customers": new,
        "revenue": Decimal(revenue).quantize(Decimal("0.01")),
        "purchases": purchases,
        "repeat_rate": repeaters / active if active else None,
        "retention_rate": retained / prev if prev else None,
    }


class Rollback(Exception):
    pass


def timed_refresh(day: date, label: str) -> None:
    """Insert NEW_PURCHASES purchases on ``day``, refresh, check, and roll it all back."""
    from django.db import transaction
    from django.db.models import Max, Min

    from analytics.kpis import kpis
    from analytics.rollups import day_start, refresh_rollups
    from customers.models import Customer, Purchase

    rng = random.Random(7)
    before = kpis(start=day, end=day)
    try:
        with transaction.atomic():
            start = time.perf_counter()
            ids = Customer.objects.aggregate(lo=Min("id"), hi=Max("id"))
            customers = Customer.objects.bulk_create(
                Customer(external_id=f"bench-analytics-{label}-{n}", prefecture="13")
                for n in range(NEW_CUSTOMERS)
            )
            # The seeded customers' ids are contiguous (checked by the caller).
            buyers = [c.pk for c in customers] + [
                rng.randint(ids["lo"], ids["hi"]) for _ in range(NEW_PURCHASES - NEW_CUSTOMERS)
            ]
            opening = day_start(day)
            Purchase.objects.bulk_create(
                (
                    Purchase(
                        order_id=f"bench-analytics-{label}-{n}",
                        customer_id=cid,
                        purchased_at=opening + timedelta(seconds=rng.randint(0, 86_399)),
                        total=Decimal(rng.randint(500, 30_000)),
                        channel="ecommerce",
                    )
                    for n, cid in enumerate(buyers)
                ),
                batch_size=5000,
            )
            print(f"  inserted {NEW_PURCHASES:,} purchases in {time.perf_counter() - start:.1f} s")
            start = time.perf_counter()
            result = refresh_rollups()
            seconds = time.perf_counter() - start
            after = kpis(start=day, end=day)
            ok = "OK" if seconds <= REFRESH_TARGET_S else f"OVER {REFRESH_TARGET_S} s"
            print(
                f"  refresh: {seconds:.2f} s ({result.new_purchases:,} new purchases, "
                f"days {[d.isoformat() for d in result.days]}) {ok}"
            )
            added = after["purchases"] - before["purchases"]
            print(
                f"  {day}: purchases {before['purchases']:,} -> {after['purchases']:,} "
                f"(+{added:,}), new customers {before['new_customers']:,} -> "
                f"{after['new_customers']:,}"
            )
            assert added == NEW_PURCHASES, added
            assert after["new_customers"] - before["new_customers"] >= NEW_CUSTOMERS
            raise Rollback
    except Rollback:
        pass
    left = Purchase.objects.filter(order_id__startswith=f"bench-analytics-{label}-").count()
    print(f"  rolled back: {left} benchmark purchases left in the database")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="rebuild the rollups (timed)")
    parser.add_argument("--requests", type=int, default=20, help="warm requests per URL")
    parser.add_argument("--cold-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_one:
        cold_one(args.cold_one)
        return

    from tests.bench.dataset import ensure_dataset

    counts = ensure_dataset()
    print(f"dataset: {json.dumps({k: v for k, v in counts.items() if k != 'seconds'})}")
    from analytics.models import DailyRollup, RollupState
    from analytics.rollups import mismatched_days, rebuild_rollups

    state = RollupState.objects.filter(id=1).first()
    if args.rebuild or state is None or state.built_at is None:
        start = time.perf_counter()
        rebuild_rollups()
        print(f"full rollup build: {time.perf_counter() - start:.1f} s")
    else:
        print(f"rollups already built at {state.built_at:%Y-%m-%d %H:%M} (--rebuild to time it)")
        # Purchases other benchmarks added since (bench_customer_pages' 360 customer) would
        # otherwise be folded into the timed refresh below: catch up first, untimed.
        from analytics.rollups import refresh_rollups

        start = time.perf_counter()
        caught_up = refresh_rollups()
        print(f"catch-up refresh (untimed): {time.perf_counter() - start:.1f} s, {caught_up}")
    # What the refresh task does after the rollups (every few minutes in production): the
    # customer snapshot the filters and the customer counts read.
    from analytics.customer_attributes import snapshot_customers, snapshot_lifetimes

    start = time.perf_counter()
    snapshot_customers()
    snapshot_lifetimes()  # as the refresh task does after each refresh
    print(f"customer snapshot (untimed in the figures): {time.perf_counter() - start:.1f} s")
    print(f"daily rollup rows: {DailyRollup.objects.count():,}")
    from django.db.models import Count, Max, Min

    from customers.models import Customer

    ids = Customer.objects.aggregate(lo=Min("id"), hi=Max("id"), n=Count("id"))
    assert ids["hi"] - ids["lo"] + 1 == ids["n"], "customer ids are not contiguous"

    print("\ncold (new process, empty cache):")
    for name in URLS:
        print(line(name, cold(name, COLD_RUNS.get(name, 3))))
    print(f"\nwarm ({args.requests} requests in one process):")
    c = client()
    for name, url in URLS.items():
        timed_get(c, url)
        print(line(name, [timed_get(c, url) for _ in range(args.requests)]))

    from analytics.kpis import kpis_with_comparisons

    start_day, end_day = date.fromisoformat(MONTH[0]), date.fromisoformat(MONTH[1])
    started = time.perf_counter()
    expected = sql_kpis(start_day, end_day)
    sql_seconds = time.perf_counter() - started
    actual = kpis_with_comparisons(start=start_day, end=end_day)
    same = all(
        abs(actual[k] - v) < 1e-12 if isinstance(v, float) else actual[k] == v
        for k, v in expected.items()
    )
    print(
        f"\n{MONTH[0]}..{MONTH[1]} from the rollups: "
        + json.dumps({k: str(actual[k]) for k in expected})
    )
    print(
        f"same period by direct SQL ({sql_seconds:.1f} s): "
        + json.dumps({k: str(v) for k, v in expected.items()})
    )
    print("rollups equal direct SQL: " + ("YES" if same else "NO"))

    started = time.perf_counter()
    bad = mismatched_days()
    print(
        f"\nnightly verification query: {time.perf_counter() - started:.1f} s, "
        f"{len(bad)} mismatched days"
    )

    print(f"\nincremental refresh, {NEW_PURCHASES:,} purchases on a new day:")
    timed_refresh(date(2026, 11, 1), "new-day")
    print(f"incremental refresh, {NEW_PURCHASES:,} more purchases on the last day (2026-10-31):")
    timed_refresh(date(2026, 10, 31), "last-day")
    print(f"finished {datetime.now():%H:%M:%S}")


if __name__ == "__main__":
    main()
