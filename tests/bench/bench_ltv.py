"""Benchmark of the dashboard's LTV figures without a filter, cold (a new process per run).

    flock /tmp/bench.lock env DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        python -m tests.bench.bench_ltv [--runs 5] [--build]

``--build`` first rebuilds the customer snapshot and the lifetime figures (what the refresh
task does every few minutes; the only writes). Then it times, each run in a fresh process
(Django set up, nothing of the analytics loaded), the LTV section of the page and, apart, the
average LTV of a KPI card, for the month and the 12 months to October 2026 (the dataset's last
month), and prints the median and max per case.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import date

CASES = {
    "month": (date(2026, 10, 1), date(2026, 10, 31)),
    "12 months": (date(2025, 11, 1), date(2026, 10, 31)),
}


FIGURES = ("ltv_section", "average_ltv")


def cold_one(case: str, figure: str) -> None:
    from tests.bench.dataset import setup_django

    setup_django()
    from analytics.dashboard import _average_ltv, ltv_section
    from analytics.kpis import Filters, Period

    section = {"ltv_section": ltv_section, "average_ltv": _average_ltv}[figure]
    start = time.perf_counter()
    section(Period(*CASES[case]), Filters())
    print(json.dumps((time.perf_counter() - start) * 1000))


def measure(case: str, figure: str) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "tests.bench.bench_ltv", "--cold-one", case, figure],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--build", action="store_true", help="rebuild snapshot and lifetimes")
    parser.add_argument("--cold-one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_one:
        cold_one(*args.cold_one)
        return
    if args.build:
        from tests.bench.dataset import setup_django

        setup_django()
        from analytics.customer_attributes import snapshot_customers, snapshot_lifetimes

        started = time.perf_counter()
        snapshot_customers()
        snapshot_lifetimes()
        print(f"build: snapshot and lifetimes in {time.perf_counter() - started:.1f} s")
    for case in CASES:
        for figure in FIGURES:
            timings = [measure(case, figure) for _ in range(args.runs)]
            print(
                f"{case:<10} {figure:<12} p50 {statistics.median(timings):6.1f} ms"
                f"  max {max(timings):6.1f} ms"
            )


if __name__ == "__main__":
    main()
