"""Benchmark of the goals' progress at scale (1M customers / 10M purchases).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        flock /tmp/bench.lock python -m tests.bench.bench_goals [--runs 5]

Needs the rollups (built by ``tests.bench.bench_analytics``; this refuses to start without
them). Inside a transaction that is rolled back at the end (nothing stays in the database), it
creates eight goals as of 2026-10-20 (the dataset's purchases end on 2026-10-31): revenue,
retention +5 points, churn -3 points, AOV and customers +2% for Q4 2026, new customers +10%
for October, repeat rate and active customers for the year 2026, baselines frozen at creation.

Then, each run with an empty cache (Django's cache is the process's own here: no REDIS_URL),
it times ``goals_for_dashboard`` (the dashboard panel's figures) and a request of the goal list
page as a marketer, and prints p50 and max per case in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import date
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.pop("REDIS_URL", None)  # a process-local cache, emptied before every run

TODAY = date(2026, 10, 20)
Q4 = {"start": date(2026, 10, 1), "end": date(2026, 12, 31)}
OCTOBER = {"start": date(2026, 10, 1), "end": date(2026, 10, 31)}
YEAR = {"start": date(2026, 1, 1), "end": date(2026, 12, 31)}
GOALS = [
    ("revenue", "absolute", "2000000000", Q4),
    ("retention_rate", "change", "0.05", Q4),
    ("churn_rate", "change", "-0.03", Q4),
    ("aov", "absolute", "9000", Q4),
    ("customers", "change", "0.02", Q4),
    ("new_customers", "change", "0.10", OCTOBER),
    ("repeat_rate", "absolute", "0.45", YEAR),
    ("active_customers", "absolute", "600000", YEAR),
]


class Rollback(Exception):
    pass


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.cache import cache
    from django.db import transaction
    from django.test import Client

    from analytics.goals import create_goal, goals_for_dashboard
    from analytics.models import RollupState
    from crm.roles import Role
    from tests.factories import UserFactory

    state = RollupState.objects.filter(id=1).first()
    if state is None or state.built_at is None:
        sys.exit("The rollups are not built: run tests.bench.bench_analytics once first.")

    results: dict[str, list[float]] = {"goals_for_dashboard": [], "goal list page": []}
    try:
        with transaction.atomic():
            user = UserFactory(role=Role.MARKETER, username="bench-goals-marketer")
            for kpi, kind, target, period in GOALS:
                create_goal(
                    kpi=kpi,
                    target_kind=kind,
                    target=Decimal(target),
                    owner=user,
                    today=TODAY,
                    **period,
                )
            client = Client()
            client.force_login(user)
            for _ in range(args.runs):
                cache.clear()
                results["goals_for_dashboard"].append(
                    timed(lambda: goals_for_dashboard(today=TODAY, user=user))
                )
                cache.clear()
                # The page counts from the real today, past these goals' ends in 2026's
                # December at the latest: the same figures up to each end.
                results["goal list page"].append(timed(lambda: client.get("/analytics/goals/")))
            rows = goals_for_dashboard(today=TODAY, user=user)
            for row in rows:
                print(
                    f"  {row.goal.kpi:<18} actual {row.actual} target {row.target_value} "
                    f"expected {row.expected} -> {row.status}"
                )
            raise Rollback
    except Rollback:
        pass
    for case, values in results.items():
        print(
            f"{case}: p50 {statistics.median(values):.0f} ms, max {max(values):.0f} ms "
            f"({len(values)} cold runs, {len(GOALS)} goals)"
        )


if __name__ == "__main__":
    main()
