"""Benchmark of the RFM page's figures at scale (1M scored customers, two runs).

    flock /tmp/bench.lock env DATABASE_URL=postgres://... python -m tests.bench.bench_rfm_reports

Scores the dataset of ``tests.bench.dataset`` twice (as of the default date and 180 days
earlier) with the app's own aggregation, scoring and COPY (``segments.aggregation``,
``segments.scoring``, ``segments.runs.write_scores``) into two runs of its own, then times
each report of ``segments.reports`` on the later run (median of ``--repeat``), the whole RFM
page and the scores API figures as a signed-in sales user, and with ``--export`` the CSV
export of the page streamed to the end. The two runs and the user are deleted at the end,
whatever happens; no other run is touched. ``--explain`` prints the plan of the migration
matrix's query.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import timedelta

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

BENCH_USER = "bench-rfm-sales"


def timed(function, repeat: int) -> tuple[float, object]:
    """Median milliseconds of ``repeat`` calls, and the last result."""
    timings, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        timings.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings), result


def make_run(*, as_of):
    """A succeeded run with the app's scores as of ``as_of`` (no task is enqueued)."""
    from django.db import transaction
    from django.utils import timezone

    from segments.aggregation import customer_aggregates
    from segments.models import RunStatus, RunTrigger, ScoringRun, ScoringSettings
    from segments.runs import summarise, write_scores
    from segments.scoring import ScoringConfig, score_customers

    start = time.perf_counter()
    run = ScoringRun.objects.create(
        trigger=RunTrigger.COMMAND, status=RunStatus.RUNNING, started_at=timezone.now()
    )
    aggregates, used_as_of = customer_aggregates(as_of=as_of, window_days=None)
    scored = score_customers(aggregates, config=ScoringConfig.from_settings(ScoringSettings.load()))
    with transaction.atomic():
        write_scores(run=run, scored=scored)
        ScoringRun.objects.filter(pk=run.pk).update(
            status=RunStatus.SUCCEEDED,
            as_of=used_as_of,
            finished_at=timezone.now(),
            duration_seconds=time.perf_counter() - start,
            progress=100,
            **summarise(scored),
        )
    run.refresh_from_db()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--export", action="store_true", help="also stream the CSV export")
    parser.add_argument(
        "--explain", action="store_true", help="print the plan of the migration matrix query"
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client

    from crm.roles import Role, assign_role
    from segments import reports
    from segments.models import CustomerScore, ScoringRun

    assert connection.vendor == "postgresql", "run the benchmark on PostgreSQL"
    created: list[int] = []
    user = None
    try:
        start = time.perf_counter()
        latest = make_run(as_of=None)
        created.append(latest.pk)
        earlier = make_run(as_of=latest.as_of - timedelta(days=180))
        created.append(earlier.pk)
        # The earlier run must finish first in the history: it is "the run before".
        ScoringRun.objects.filter(pk=earlier.pk).update(
            finished_at=latest.finished_at - timedelta(hours=1)
        )
        earlier.refresh_from_db()
        print(
            f"setup: runs #{earlier.pk} (as of {earlier.as_of}, {earlier.customers_scored:,} "
            f"customers) and #{latest.pk} (as of {latest.as_of}, "
            f"{latest.customers_scored:,} customers) in {time.perf_counter() - start:.1f} s"
        )
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {CustomerScore._meta.db_table}")

        cases = {
            "rf_grid": lambda: reports.rf_grid(run=latest),
            "label_distribution": lambda: reports.label_distribution(run=latest),
            "decile_table": lambda: reports.decile_table(run=latest),
            "pareto_curve": lambda: reports.pareto_curve(run=latest),
            "migration_matrix": lambda: reports.migration_matrix(before=earlier, after=latest),
            "previous_run": lambda: reports.previous_run(run=latest),
        }
        total = 0.0
        for name, function in cases.items():
            ms, _result = timed(function, args.repeat)
            total += ms
            print(f"  {name:<20} {ms:8.0f} ms")
        print(f"  {'all reports':<20} {total:8.0f} ms")
        if args.explain:
            from django.test.utils import CaptureQueriesContext

            with CaptureQueriesContext(connection) as queries:
                reports.migration_matrix(before=earlier, after=latest)
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + queries[-1]["sql"])
                print("\n".join(row[0] for row in cursor.fetchall()))
        matrix = reports.migration_matrix(before=earlier, after=latest)
        print(
            f"  migration: {matrix['total']:,} customers, {matrix['unchanged']:,} kept their "
            f"label, {matrix['rows'][-1]['total']:,} new, {matrix['column_totals'][-1]:,} gone"
        )

        user = get_user_model().objects.create_user(BENCH_USER, password="x")
        assign_role(user, Role.SALES)
        client = Client()
        client.force_login(user)
        # The first visit after a run computes the figures; later ones read them cached.
        cache.clear()
        ms, _response = timed(lambda: client.get("/segments/scores/"), 1)
        print(f"  {'RFM page, first':<20} {ms:8.0f} ms")
        pages = {
            "RFM page, cached": "/segments/scores/",
            "runs page": "/segments/scores/runs/",
            "API rfm-grid": "/api/v1/scores/rfm-grid/",
            "API pareto": "/api/v1/scores/pareto/",
            "API migration": "/api/v1/scores/migration/",
            "API scores page": "/api/v1/scores/?rfm_label=champions",
        }
        for name, url in pages.items():

            def get(url=url):
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)
                return response

            ms, _response = timed(get, args.repeat)
            print(f"  {name:<20} {ms:8.0f} ms")

        if args.export:
            start = time.perf_counter()
            response = client.get(f"/segments/scores/export/?run={latest.pk}")
            size = sum(len(chunk) for chunk in response.streaming_content)
            print(
                f"  CSV export (page)    {time.perf_counter() - start:8.1f} s, "
                f"{size / 1e6:.0f} MB for {latest.customers_scored:,} rows"
            )
    finally:
        if created:
            CustomerScore.objects.filter(run_id__in=created)._raw_delete(CustomerScore.objects.db)
            ScoringRun.objects.filter(pk__in=created).delete()
        if user is not None:
            user.delete()
        print(f"deleted bench runs {created}")


if __name__ == "__main__":
    main()
