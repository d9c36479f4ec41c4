"""Benchmark of segment rules at scale (1M customers / 10M purchases).

    flock /tmp/bench.lock env DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        .venv/bin/python -m tests.bench.bench_segments [--requests 60] [--explain]

(a) live counts for several three-condition rules, cycling through variants of each rule:
``count_matching``'s SQL path once per variant (the oracle; its timings for comparison), then
``count_matching`` and ``live_preview`` (the builder page's call: count, breakdowns, sample)
from the column snapshot (segments.columns, built first: its build time and size are
printed), ``--requests`` calls each, p50/p95/max (target p95 <= 200 ms), every count checked
against SQL's and one preview per rule compared whole with the SQL preview; and
(b) the refresh of a dynamic segment of about 200,000 members through ``refresh_segment``
(target <= 10 s), timed twice: into an empty members table and replacing the members.

Score conditions read the latest succeeded scoring run. If the database has none yet, the
script writes a scratch run (plausible random scores for 90% of the customers, the labels from
the RFM grid, deciles and shares from the random monetary values) and deletes it afterwards;
the segment and its members are deleted too, so the dataset is left as found.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time

from tests.bench.dataset import ensure_dataset, setup_django

COUNT_TARGET_MS = 200
REFRESH_TARGET_S = 10
STATEMENT_TIMEOUT_S = 60
SCRATCH_MARK = {"bench_segments": "scratch run"}  # in ScoringRun.settings

# The RFM label grid of the issue (rows R 5..1, columns FM 1..5), for the scratch scores.
GRID = {
    5: ["new", "potential_loyalist", "potential_loyalist", "champions", "champions"],
    4: ["promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"],
    3: ["about_to_sleep", "about_to_sleep", "needs_attention", "loyal", "loyal"],
    2: ["hibernating", "hibernating", "at_risk", "at_risk", "cannot_lose"],
    1: ["lost", "hibernating", "at_risk", "at_risk", "cannot_lose"],
}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def scratch_run():
    """A succeeded run with random but well-formed scores, written in one INSERT ... SELECT."""
    from django.db import connection
    from django.utils import timezone

    from segments.models import CustomerScore, RunStatus, RunTrigger, ScoringRun

    now = timezone.now()
    run = ScoringRun.objects.create(
        status=RunStatus.SUCCEEDED,
        trigger=RunTrigger.COMMAND,
        settings=SCRATCH_MARK,
        started_at=now,
        finished_at=now,
        progress=100,
    )
    label_case = "CASE " + " ".join(
        f"WHEN r = {r} AND (f + m) / 2 = {fm} THEN '{label}'"
        for r, row in GRID.items()
        for fm, label in enumerate(row, start=1)
    )
    table = CustomerScore._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            f"""
            INSERT INTO {table} (run_id, customer_id, recency_days, frequency, monetary,
                first_purchase_on, last_purchase_on, r, f, m, rfm_code, rfm_label, decile,
                cumulative_share, pareto_class, top20)
            WITH base AS (
                SELECT id, 1 + floor(random() * 5)::int AS r, 1 + floor(random() * 5)::int AS f,
                       1 + floor(random() * 5)::int AS m,
                       round((random() ^ 3 * 500000)::numeric, 2) AS monetary
                FROM customers_customer WHERE id %% 10 <> 0
            ), ranked AS (
                SELECT *, ntile(10) OVER w AS decile,
                       (sum(monetary) OVER w / sum(monetary) OVER ())::float AS share
                FROM base WINDOW w AS (ORDER BY monetary DESC, id)
            )
            SELECT %s, id, (6 - r) * 60, f * 3, monetary, DATE '2024-01-01',
                   DATE '2026-11-01' - (6 - r) * 60, r, f, m, r::text || f::text || m::text,
                   {label_case} END, decile, share,
                   CASE WHEN share < 0.8 THEN 'A' WHEN share < 0.95 THEN 'B' ELSE 'C' END,
                   decile <= 2
            FROM ranked
            """,  # noqa: S608 - our own table and constants
            [run.pk],
        )
        cursor.execute(f"ANALYZE {table}")
    return run


def drop_run(run) -> None:
    from segments.models import CustomerScore

    CustomerScore.objects.filter(run=run)._raw_delete(CustomerScore.objects.db)
    run.delete()


def rules() -> list[tuple[str, list[dict]]]:
    """Three-condition rules, each with variants cycled through the requests."""

    def cond(field, op, value):
        return {"field": field, "op": op, "value": value}

    def group(*conditions):
        return {"op": "and", "conditions": list(conditions)}

    prefecture_sets = [["13", "14", "27"], ["11", "12", "13"], ["23", "27", "28"], ["01", "40"]]
    label_sets = [["champions", "loyal"], ["at_risk", "cannot_lose"], ["potential_loyalist"]]
    return [
        (
            "pref + rfm_label + last purchase <= N days",
            [
                group(
                    cond("prefecture", "in", prefs),
                    cond("rfm_label", "in", labels),
                    cond("days_since_last_purchase", "at_most", days),
                )
                for prefs in prefecture_sets
                for labels in label_sets
                for days in (90, 180)
            ],
        ),
        (
            "gender + age + spend in 365 days",
            [
                group(
                    cond("gender", "in", [gender]),
                    cond("age", "between", ages),
                    cond("spend_last_days", "between", {"days": 365, "min": low, "max": None}),
                )
                for gender in ("female", "male")
                for ages in ([30, 49], [20, 29], [50, 69])
                for low in (20000, 50000)
            ],
        ),
        (
            "channel + decile <= 2 + e-mail consent",
            [
                group(
                    cond("channel", "in", channels),
                    cond("decile", "between", [1, 2]),
                    cond("email_opt_in", "is", consent),
                )
                for channels in (["ecommerce"], ["line", "store"], ["membership", "event"])
                for consent in (True, False)
            ],
        ),
        (
            "last purchase >= 365 days + F >= 3 + no tickets",
            [
                group(
                    cond("days_since_last_purchase", "at_least", days),
                    cond("f", "between", [3, 5]),
                    cond("ticket_count", "between", {"min": 0, "max": 0, "open_only": False}),
                )
                for days in (365, 540)
            ],
        ),
    ]


def explain(tree: dict) -> str:
    from django.db import connection

    from segments.evaluation import evaluation_settings, matching_customers

    sql, params = matching_customers(tree).values("id").query.sql_with_params()
    with evaluation_settings(), connection.cursor() as cursor:  # as count_matching runs it
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM ({sql}) q", params)  # noqa: S608
        return "\n".join(row[0] for row in cursor.fetchall())


def summary(timings: list[float]) -> str:
    p95 = percentile(timings, 0.95)
    return (
        f"{statistics.median(timings):>9.1f}{p95:>9.1f}{max(timings):>9.1f}"
        f"{'<= ' + str(COUNT_TARGET_MS):>9}  {'yes' if p95 <= COUNT_TARGET_MS else 'NO'}"
    )


def sql_counts(variants: list[dict]) -> tuple[list[int], list[float]]:
    """count_matching's SQL path for every variant (the oracle), with its timings."""
    from django.test import override_settings

    from segments.evaluation import count_matching

    counts, timings = [], []
    with override_settings(SEGMENT_COLUMNS_DIR=""):
        for tree in variants:
            start = time.perf_counter()
            counts.append(count_matching(tree))
            timings.append((time.perf_counter() - start) * 1000)
    return counts, timings


def build_columns() -> None:
    from segments import columns

    start = time.perf_counter()
    snapshot = columns.build_snapshot()
    print(
        f"\ncolumn snapshot: built in {time.perf_counter() - start:.1f} s, "
        f"{snapshot.size:,} customers, {len(snapshot.arrays['p_day']):,} completed purchases, "
        f"{columns.memory_bytes(snapshot) / 2**20:.0f} MiB in memory (mapped, shared by the "
        f"processes of a host), {snapshot.disk_bytes() / 2**20:.0f} MiB on disk"
    )


def served_from_snapshot() -> bool:
    from segments import columns
    from segments.models import ScoringRun

    return columns.fresh_snapshot(ScoringRun.objects.latest_succeeded()) is not None


def bench_counts(requests: int, show_plans: bool) -> None:
    """Per rule: the SQL path once per variant (the oracle and its timings), then
    ``count_matching`` and ``live_preview`` from the column snapshot, ``requests`` calls each."""
    from django.db import OperationalError
    from django.test import override_settings

    from segments.evaluation import count_matching
    from segments.preview import live_preview

    print(f"\n(a) live counts, milliseconds: SQL once per variant, columnar {requests} calls")
    print(f"{'rule / path':<58}{'matches':>16}{'p50':>9}{'p95':>9}{'max':>9}{'target':>9}  ok")
    for name, variants in rules():
        try:
            want, sql_timings = sql_counts(variants)
        except OperationalError as error:
            print(f"{name:<58} SQL gave up: {str(error).strip()}")
            want, sql_timings = None, None
        print(name)
        if sql_timings:
            shown = f"{min(want)}-{max(want)}"
            print(f"{'  SQL count_matching':<58}{shown:>16}{summary(sql_timings)}")
        fresh_before = served_from_snapshot()
        for label, call in (
            ("columnar count_matching", count_matching),
            ("columnar live_preview", lambda tree: live_preview(tree)["count"]),
        ):
            timings, counts = [], []
            for n in range(requests):
                tree = variants[n % len(variants)]
                start = time.perf_counter()
                counts.append(call(tree))
                timings.append((time.perf_counter() - start) * 1000)
            same = want is not None and all(
                counts[n] == want[n % len(variants)] for n in range(requests)
            )
            shown = f"{min(counts)}-{max(counts)} {'=SQL' if same else '!=SQL'}"
            print(f"{'  ' + label:<58}{shown:>16}{summary(timings)}")
        fresh = fresh_before and served_from_snapshot()
        with override_settings(SEGMENT_COLUMNS_DIR=""):
            slow = live_preview(variants[0])
        fast = live_preview(variants[0])
        same_preview = (
            fast["breakdowns"] == slow["breakdowns"]
            and [c.pk for c in fast["sample"]] == [c.pk for c in slow["sample"]]
            and fast["count"] == slow["count"]
        )
        print(
            f"  served from the snapshot throughout: {'yes' if fresh else 'NO (data changed)'}; "
            f"preview (breakdowns, sample) equal to SQL's: {'yes' if same_preview else 'NO'}"
        )
        if show_plans:
            print(explain(variants[0]))


def bench_refresh(run) -> None:
    from segments.membership import refresh_segment
    from segments.models import Segment, SegmentKind, SegmentMember

    tree = {
        "op": "and",
        "conditions": [
            # ~200,000 members at 1M customers, the size (the top 20% gave ~133,000).
            {"field": "decile", "op": "between", "value": [1, 3]},
            {"field": "days_since_last_purchase", "op": "at_most", "value": 730},
        ],
    }
    print("\n(b) membership refresh of a dynamic segment (deciles 1-3 bought in the last 2 years)")
    Segment.objects.filter(name="bench-segments-refresh").delete()
    segment = Segment.objects.create(
        name="bench-segments-refresh", kind=SegmentKind.DYNAMIC, rules=tree
    )
    try:
        for attempt in ("first snapshot", "replacing the members"):
            start = time.perf_counter()
            size = refresh_segment(segment=segment, run=run)
            seconds = time.perf_counter() - start
            print(
                f"  {attempt:<24}{size:>9,} members {seconds:>7.2f} s "
                f"(target <= {REFRESH_TARGET_S} s) {'yes' if seconds <= REFRESH_TARGET_S else 'NO'}"
            )
    finally:
        SegmentMember.objects.filter(segment=segment)._raw_delete(SegmentMember.objects.db)
        segment.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--explain", action="store_true", help="print each rule's plan")
    args = parser.parse_args()

    setup_django()
    start = time.perf_counter()
    counts = ensure_dataset()
    print(f"dataset: {counts} (ready in {time.perf_counter() - start:.1f} s)")

    from django.db import connection

    from customers.models import Customer, Purchase
    from segments.models import CustomerScore, ScoringRun

    for leftover in ScoringRun.objects.filter(settings=SCRATCH_MARK):
        drop_run(leftover)  # left by an interrupted bench
    run = ScoringRun.objects.latest_succeeded()
    scratch = run is None
    if scratch:
        start = time.perf_counter()
        run = scratch_run()
        print(
            f"scoring run: none in the database; scratch run #{run.pk} written in "
            f"{time.perf_counter() - start:.1f} s (deleted at the end)"
        )
    else:
        print(f"scoring run: #{run.pk} ({run.customers_scored:,} customers scored)")
    with connection.cursor() as cursor:
        # Fresh statistics: a scoring run just written (COPY) is invisible to the planner
        # until analysed, and it then plans a nested loop over "one" score row.
        for model in (CustomerScore, Customer, Purchase):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
        # A runaway plan must not hold the shared benchmark lock for long.
        cursor.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT_S}s'")
    # The snapshot goes to a scratch folder, removed at the end like the scratch run.
    from django.conf import settings

    settings.SEGMENT_COLUMNS_DIR = tempfile.mkdtemp(prefix="bench-segment-columns-")
    try:
        build_columns()
        bench_counts(args.requests, args.explain)
        bench_refresh(run)
    finally:
        shutil.rmtree(settings.SEGMENT_COLUMNS_DIR, ignore_errors=True)
        if scratch:
            drop_run(run)


if __name__ == "__main__":
    main()
