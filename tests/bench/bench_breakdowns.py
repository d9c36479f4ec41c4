"""Benchmark of the dashboard's breakdowns (analytics.breakdowns) at 1M customers / 10M
purchases: each section cold, for a month, a quarter and a year, without and with filters.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        flock /tmp/bench.lock python -m tests.bench.bench_breakdowns [--runs 3] [--rebuild] \\
        [--sections "timing,prefecture,channel,category,top customers,page (all)"]

Builds the rollups if they are not built, or only the breakdown cells if the rollups were
built before them (``--rebuild``: the cells again, timed). Derived data only: the purchases
are never written. Then, per section (purchase timing, revenue by prefecture / sales channel /
category, top customers, and all of them as the page's ``breakdowns_context``), period and
filter, ``--runs`` cold runs: each in a new process with an empty cache (Django's cache and
the cells it reads; PostgreSQL's buffers and the OS page cache stay as they are), after
warming up Django itself (URLconf, translation catalogue: what a page request has done before
its sections run). Prints p50 and max per line, against the ~60 ms per section budget. A
filter's customer set (``analytics.kpis.customer_set``, cached, computed once per page for
the KPIs and every section) is timed apart, before the section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

SECTION_TARGET_MS = 60
PERIODS = {
    "month": ("2026-09-01", "2026-09-30"),
    "quarter": ("2026-07-01", "2026-09-30"),
    "year": ("2025-10-01", "2026-09-30"),
}
FILTERS = {"all": {}, "Tokyo": {"prefecture": "13"}, "ecommerce": {"channel": "ecommerce"}}
SECTIONS = ("timing", "prefecture", "channel", "category", "top customers", "page (all)")


def run_section(section: str, start: date, end: date, filters) -> None:
    from analytics.breakdown_tables import breakdowns_context
    from analytics.breakdowns import purchase_timing, revenue_by, top_customers

    if section == "timing":
        purchase_timing(start=start, end=end, filters=filters)
    elif section == "top customers":
        top_customers(start=start, end=end, filters=filters)
    elif section == "page (all)":
        breakdowns_context(start=start, end=end, filters=filters)
    else:
        revenue_by(section, start=start, end=end, filters=filters)


def cold_one(section: str, period: str, filter_name: str) -> None:
    """In a fresh process: Django warmed up (imports, a query), the cache emptied, one run."""
    from tests.bench.dataset import setup_django

    setup_django()
    from django.core.cache import cache
    from django.db import connection
    from django.urls import reverse
    from django.utils import translation
    from django.utils.translation import gettext as _

    from analytics.kpis import Filters, customer_set

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    # What a page request has done before its sections run: URLconf loaded, catalogue read.
    reverse("customers:detail", args=[1])
    with translation.override("en"):
        str(_("Revenue"))
    cache.clear()
    start, end = (date.fromisoformat(d) for d in PERIODS[period])
    filters = Filters(**FILTERS[filter_name])
    with translation.override("en"):
        began = time.perf_counter()
        customer_set(filters)  # cached: what every section of the page shares
        filtered = time.perf_counter()
        run_section(section, start, end, filters)
        done = time.perf_counter()
        print(json.dumps({"ms": (done - filtered) * 1000, "set_ms": (filtered - began) * 1000}))


def cold(section: str, period: str, filter_name: str, runs: int) -> tuple[list, list]:
    timings, set_timings = [], []
    for _ in range(runs):
        out = subprocess.run(
            [
                *(sys.executable, "-m", "tests.bench.bench_breakdowns", "--cold-one"),
                *(section, period, filter_name),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        timings.append(figures["ms"])
        set_timings.append(figures["set_ms"])
    return timings, set_timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold runs per line")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cells (timed)")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="comma-separated, default: all"
    )
    parser.add_argument("--cold-one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_one:
        cold_one(*args.cold_one)
        return

    from tests.bench.dataset import ensure_dataset

    counts = ensure_dataset()
    print(f"dataset: {json.dumps({k: v for k, v in counts.items() if k != 'seconds'})}")
    from django.db import transaction

    from analytics.models import BreakdownCell, RollupState
    from analytics.rollups import rebuild_breakdowns, rebuild_rollups

    state = RollupState.objects.filter(id=1).first()
    if state is None or state.built_at is None:
        began = time.perf_counter()
        rebuild_rollups()
        print(f"full rollup build (with the cells): {time.perf_counter() - began:.1f} s")
    elif args.rebuild or not BreakdownCell.objects.exists():
        began = time.perf_counter()
        with transaction.atomic():
            cells = rebuild_breakdowns(max_id=state.last_purchase_id)
        print(f"breakdown cells build: {cells:,} cells in {time.perf_counter() - began:.1f} s")
    print(f"breakdown cells: {BreakdownCell.objects.count():,}")

    print(f"\ncold (new process, empty cache), {args.runs} runs, p50 / max:")
    for section in args.sections.split(","):
        for period in PERIODS:
            for filter_name in FILTERS:
                timings, set_timings = cold(section, period, filter_name, args.runs)
                target = (
                    ""
                    if section == "page (all)"
                    else (
                        "  OK"
                        if max(timings) <= SECTION_TARGET_MS
                        else f"  OVER {SECTION_TARGET_MS} ms"
                    )
                )
                print(
                    f"{section:<14} {period:<8} {filter_name:<10} "
                    f"p50 {statistics.median(timings):7.1f} ms  max {max(timings):7.1f} ms{target}"
                    + (
                        f"  (+ customer set of the filter, shared with the KPIs: p50 "
                        f"{statistics.median(set_timings):.1f} ms)"
                        if filter_name != "all"
                        else ""
                    )
                )


if __name__ == "__main__":
    main()
