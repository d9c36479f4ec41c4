"""Benchmark of the analytics dashboard page at scale (1M customers / 10M purchases).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        flock /tmp/bench.lock python -m tests.bench.bench_dashboard [--runs 5] [--no-rfm] \\
        [--rfm-warm]

Needs the rollups (built by ``tests.bench.bench_analytics`` on its first run; this refuses to
start without them). Sets up what the page shows beyond the rollups: a fresh customer
snapshot (as the refresh task makes every few minutes), a scoring run of the whole dataset
(the RFM grid; ``--no-rfm`` skips it), a segment of every fifth customer (200,000
members, for the segment filter) and eight current goals on the goals panel. The run, the
segment and the goals are deleted at the end, whatever happens.

Then it requests the whole page (every figure, server-side, the charts' data embedded) as a
signed-in marketer, each request in a new process with an empty cache (Django's cache and
everything in memory; PostgreSQL's buffers and the OS page cache stay as they are), and
prints p50/p95/max of the server time per case, and the median time of each section of the
page (the Server-Timing header: KPIs, Pareto and deciles, RFM grid, cohorts, LTV).

Cases: the default period (this month, today: the dataset's purchases end on 2026-10-31, so
it is nearly empty), October 2026 (the default preset on the dataset's last month), the 12
months to October 2026, and both filtered by prefecture (Tokyo), channel (e-commerce) and
the segment.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from urllib.parse import urlencode

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

TARGET_MS = 500
WARM_TEMPLATES = (
    "analytics/dashboard.html",
    "analytics/_table.html",
    "analytics/_breakdowns.html",
    "analytics/_breakdown_table.html",
    "analytics/_goals_panel.html",
    "analytics/goals/_styles.html",
    "base.html",
    "includes/messages.html",
)
WARM_WIDGET_TEMPLATES = (
    "django/forms/widgets/select.html",
    "django/forms/widgets/select_option.html",
    "django/forms/widgets/date.html",
    "django/forms/widgets/input.html",
    "django/forms/widgets/attrs.html",
)
SEGMENT_NAME = "bench-dashboard-every-fifth"
MONTH = {"period": "custom", "start": "2026-10-01", "end": "2026-10-31"}
YEAR = {"period": "custom", "start": "2025-11-01", "end": "2026-10-31"}
CASES = {
    "default (this month)": {},
    "month": MONTH,
    "month, Tokyo": {**MONTH, "prefecture": "13"},
    "12 months": YEAR,
    "12 months, Tokyo": {**YEAR, "prefecture": "13"},
    "12 months, e-commerce": {**YEAR, "channel": "ecommerce"},
    "12 months, segment": {**YEAR, "segment": "{segment}"},
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def url_for(case: str, segment: int) -> str:
    params = {k: v.format(segment=segment) for k, v in CASES[case].items()}
    return "/analytics/" + ("?" + urlencode(params) if params else "")


def cold_one(url: str, rfm_warm: bool) -> None:
    """In a fresh process: one request after warming up Django itself (URLconf, imports,
    templates, Babel's locale data);
    with ``rfm_warm`` the RFM grid of the latest run is put back in the cache first, as the
    worker does after every scoring run (segments.reports.warm_cache)."""
    from tests.bench.dataset import setup_django

    setup_django()
    from django.core.cache import cache
    from django.template.loader import get_template

    from tests.bench.bench_analytics import client

    c = client()
    c.get("/api/v1/me/")
    # A running server has compiled its templates at its first page: compiling them here
    # is part of warming Django up, like the URLconf (the figures and caches stay cold).
    for name in WARM_TEMPLATES:
        get_template(name)
    # And the form widgets' templates (the filter form), compiled by the forms' renderer.
    from django.forms.renderers import get_default_renderer

    for name in WARM_WIDGET_TEMPLATES:
        get_default_renderer().get_template(name)
    # Likewise Babel's locale data, which a server loads at its first amount of money.
    from django.utils import translation

    from crm.templatetags.crm_tags import money

    for language in ("en", "ja"):
        with translation.override(language):
            money(1)
    cache.clear()
    if rfm_warm:
        from segments import reports
        from segments.models import ScoringRun

        reports.cached(reports.rf_grid, run=ScoringRun.objects.latest_succeeded())
    start = time.perf_counter()
    response = c.get(url, HTTP_ACCEPT_LANGUAGE="en")
    ms = (time.perf_counter() - start) * 1000
    assert response.status_code == 200, (url, response.status_code)
    assert b"Some filters are not valid" not in response.content, url
    sections = {
        part.split(";dur=")[0].strip(): float(part.split(";dur=")[1])
        for part in response["Server-Timing"].split(",")
    }
    print(json.dumps({"ms": ms, "sections": sections, "bytes": len(response.content)}))


def cold(url: str, runs: int, rfm_warm: bool) -> tuple[list[float], dict[str, list[float]], int]:
    timings, sections, size = [], {}, 0
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_dashboard", "--cold-one", url]
            + (["--rfm-warm"] if rfm_warm else []),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        timings.append(result["ms"])
        size = result["bytes"]
        for name, ms in result["sections"].items():
            sections.setdefault(name, []).append(ms)
    return timings, sections, size


# The goals of the panel a manager sees first (current as of today, tests.bench.bench_goals'
# kinds): the whole of Q4 2026, November and the year.
GOALS = [
    ("revenue", "absolute", "2000000000", "2026-10-01", "2026-12-31"),
    ("retention_rate", "change", "0.05", "2026-10-01", "2026-12-31"),
    ("churn_rate", "change", "-0.03", "2026-10-01", "2026-12-31"),
    ("aov", "absolute", "9000", "2026-10-01", "2026-12-31"),
    ("customers", "change", "0.02", "2026-10-01", "2026-12-31"),
    ("new_customers", "change", "0.10", "2026-11-01", "2026-11-30"),
    ("repeat_rate", "absolute", "0.45", "2026-01-01", "2026-12-31"),
    ("active_customers", "absolute", "600000", "2026-01-01", "2026-12-31"),
]


def create_goals() -> list[int]:
    """GOALS, owned by the benchmark's marketer (who sees the panel)."""
    from datetime import date
    from decimal import Decimal

    from django.contrib.auth import get_user_model

    from analytics.goals import create_goal

    owner = get_user_model().objects.get(username="bench-marketer")
    return [
        create_goal(
            kpi=kpi,
            target_kind=kind,
            target=Decimal(target),
            owner=owner,
            start=date.fromisoformat(start),
            end=date.fromisoformat(end),
        ).pk
        for kpi, kind, target, start, end in GOALS
    ]


def setup(with_rfm: bool) -> tuple[int, int | None, list[int]]:
    """The segment (every fifth customer), the goals and, unless skipped, a scoring run of
    everyone."""
    from django.db import connection

    # What the refresh task does every few minutes: a fresh customer snapshot (filters and
    # customer counts read it; one older than its limit would be ignored).
    from analytics.customer_attributes import snapshot_customers, snapshot_lifetimes
    from segments.models import Segment, SegmentKind

    started = time.perf_counter()
    snapshot_customers()
    snapshot_lifetimes()  # and the lifetime arrays LTV reads, built with it
    print(f"setup: customer snapshot in {time.perf_counter() - started:.1f} s")
    Segment.objects.filter(name=SEGMENT_NAME).delete()
    segment = Segment.objects.create(name=SEGMENT_NAME, kind=SegmentKind.STATIC)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO segments_segmentmember (segment_id, customer_id) "
            "SELECT %s, id FROM customers_customer WHERE id %% 5 = 0",
            [segment.pk],
        )
        print(f"setup: segment #{segment.pk} with {cursor.rowcount:,} members")
    from tests.bench.bench_analytics import client

    client()  # creates the benchmark's marketer, the goals' owner, if needed
    goal_ids = create_goals()
    print(f"setup: {len(goal_ids)} current goals on the panel")
    run_id = None
    if with_rfm:
        from tests.bench.bench_rfm_reports import make_run

        started = time.perf_counter()
        run = make_run(as_of=None)
        run_id = run.pk
        from segments import reports

        # What the worker does after every scoring run: the run's figures are computed once
        # and the R×F grid and deciles stored with it (segments.RunReport), so a cold page
        # reads them instead of grouping the run's scores.
        reports.warm_cache(run=run)
        print(
            f"setup: scoring run #{run.pk} ({run.customers_scored:,} customers) "
            f"in {time.perf_counter() - started:.1f} s"
        )
    return segment.pk, run_id, goal_ids


def cleanup(segment_id: int | None, run_id: int | None, goal_ids: list[int]) -> None:
    from analytics.models import Goal
    from segments.models import CustomerScore, ScoringRun, Segment, SegmentMember

    Goal.objects.filter(pk__in=goal_ids).delete()
    if run_id is not None:
        CustomerScore.objects.filter(run_id=run_id)._raw_delete(CustomerScore.objects.db)
        ScoringRun.objects.filter(pk=run_id).delete()
    if segment_id is not None:
        SegmentMember.objects.filter(segment_id=segment_id)._raw_delete(SegmentMember.objects.db)
        Segment.objects.filter(pk=segment_id).delete()
    print("cleaned up: the scoring run, the segment and the goals are deleted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold requests per case")
    parser.add_argument("--no-rfm", action="store_true", help="no scoring run (no RFM grid)")
    parser.add_argument(
        "--rfm-warm", action="store_true", help="the run's RFM grid cached, as after a run"
    )
    parser.add_argument("--cold-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_one:
        cold_one(args.cold_one, args.rfm_warm)
        return

    from tests.bench.dataset import setup_django

    setup_django()
    from analytics.models import RollupState

    state = RollupState.objects.filter(id=1).first()
    if state is None or state.built_at is None:
        sys.exit("The rollups are not built: run tests.bench.bench_analytics once first.")
    segment_id = run_id = None
    goal_ids: list[int] = []
    try:
        segment_id, run_id, goal_ids = setup(with_rfm=not args.no_rfm)
        print(f"\ncold (new process, empty cache), {args.runs} requests per case:")
        if args.rfm_warm:
            print("(except the RFM grid of the run, cached as the worker does after a run)")
        for case in CASES:
            timings, sections, size = cold(url_for(case, segment_id), args.runs, args.rfm_warm)
            p95 = percentile(timings, 0.95)
            verdict = "OK" if p95 < TARGET_MS else f"OVER {TARGET_MS} ms"
            print(
                f"{case:<24} p50 {statistics.median(timings):6.0f} ms  p95 {p95:6.0f} ms"
                f"  max {max(timings):6.0f} ms  {verdict}  ({size / 1024:.0f} KiB)"
            )
            print(
                "    sections (median ms): "
                + ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in sections.items())
            )
    finally:
        cleanup(segment_id, run_id, goal_ids)


if __name__ == "__main__":
    main()
