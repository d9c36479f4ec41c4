"""Benchmark of a scoring run at scale (1M customers / 10M purchases) against the
straightforward pandas pipeline.

    flock /tmp/bench.lock env DATABASE_URL=postgres://... python -m tests.bench.bench_scoring

1. The run as the app does it (``segments.runs.execute_scoring_run``: SQL aggregate with the
   PostgreSQL session settings and COPY out -> pandas/numpy scores -> COPY of the score rows
   in the run's transaction), wall seconds per phase and in total, the process's peak RSS
   and the peak RSS of the PostgreSQL backend serving it (``VmHWM`` of its process, read from
   /proc: the hash aggregate's ``work_mem`` lives there, not in Python; parallel workers are
   separate processes, each bounded by the same ``work_mem``).
2. The straightforward pipeline: ``pd.read_sql`` of the raw completed purchases into pandas,
   groupby + ``pd.qcut`` there, and ORM ``bulk_update`` of the scores into the rows of a
   scratch run copied from the fast run.
3. A check that both pipelines agree on recency, frequency and monetary for every customer.

Targets: <= 15 s wall, <= 2 GiB peak, >= 5x faster than the naive pipeline. Every run the
benchmark creates is deleted at the end except the last fast run, kept so that other
benchmarks (segments, reports) find current scores; its id is printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

WALL_TARGET_S = 15
MEMORY_TARGET_MB = 2048
SPEEDUP_TARGET = 5


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def backend_peak_mb(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return f"{int(line.split()[1]) / 1024:.0f} MB"
    except OSError:
        pass
    return "n/a (backend not on this machine)"


class PhaseLog(logging.Handler):
    """Collects the phase timings ``execute_scoring_run`` logs."""

    def __init__(self):
        super().__init__()
        self.phases: dict = {}

    def emit(self, record):
        self.phases.update(getattr(record, "phase_seconds", {}))


def fast_run():
    from django.db import connection

    from segments.models import RunTrigger
    from segments.runs import execute_scoring_run, request_scoring_run

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    handler = PhaseLog()
    logger = logging.getLogger("segments.runs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    start = time.perf_counter()
    run = request_scoring_run(trigger=RunTrigger.COMMAND, enqueue=False)
    run = execute_scoring_run(run=run)
    wall = time.perf_counter() - start
    logger.removeHandler(handler)
    assert run.status == "succeeded", run.error
    return run, wall, handler.phases, backend_peak_mb(backend)


def formatting_alternatives(*, run) -> str:
    """Seconds to turn the score rows into COPY text: ours vs ``DataFrame.to_csv``."""
    from segments.aggregation import customer_aggregates
    from segments.runs import score_rows_text
    from segments.scoring import ScoringConfig, score_customers

    aggregates, _ = customer_aggregates(as_of=run.as_of, window_days=run.window_days)
    scored = score_customers(aggregates, config=ScoringConfig(**run.settings))
    t = time.perf_counter()
    ours = score_rows_text(run_id=run.pk, scored=scored)
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    theirs = scored.assign(run_id=run.pk).to_csv(sep="\t", header=False, index=False)
    to_csv_s = time.perf_counter() - t
    return (
        f"formatting {len(scored):,} rows: score_rows_text {ours_s:.2f} s "
        f"({len(ours) / 1e6:.0f} MB), DataFrame.to_csv {to_csv_s:.2f} s "
        f"({len(theirs) / 1e6:.0f} MB)"
    )


def naive_pipeline(*, fast_run_id: int, as_of, update_sample: int):
    """The straightforward way: raw rows into pandas, groupby + qcut, ORM bulk_update."""
    import numpy as np
    import pandas as pd
    from django.db import connection, transaction

    from customers.models import Purchase
    from segments.aggregation import local_midnight
    from segments.models import CustomerScore, RunStatus, RunTrigger, ScoringRun

    phases = {}
    start = time.perf_counter()
    raw = pd.read_sql(
        f"SELECT customer_id, purchased_at, total FROM {Purchase._meta.db_table} "  # noqa: S608
        "WHERE status = 'completed' AND purchased_at < %(end)s",
        connection.connection,
        params={"end": local_midnight(as_of)},
    )
    phases["read_sql"] = time.perf_counter() - start

    t = time.perf_counter()
    local = pd.to_datetime(raw["purchased_at"], utc=True).dt.tz_convert("Asia/Tokyo")
    raw["day"] = local.dt.tz_localize(None).dt.normalize()
    raw["total"] = raw["total"].astype(float)
    grouped = raw.groupby("customer_id").agg(
        last=("day", "max"), frequency=("day", "size"), monetary=("total", "sum")
    )
    del raw, local
    grouped["recency_days"] = (pd.Timestamp(as_of) - grouped["last"]).dt.days
    grouped["r"] = 5 - pd.qcut(grouped["recency_days"], 5, labels=False, duplicates="drop")
    grouped["f"] = 1 + pd.qcut(grouped["frequency"], 5, labels=False, duplicates="drop")
    grouped["m"] = 1 + pd.qcut(grouped["monetary"], 5, labels=False, duplicates="drop")
    grouped = grouped.sort_values(["monetary"], ascending=False, kind="stable")
    grouped["decile"] = 1 + np.arange(len(grouped)) * 10 // len(grouped)
    phases["groupby_qcut"] = time.perf_counter() - t

    # A scratch run with a copy of the fast run's rows, updated through the ORM.
    scratch = ScoringRun.objects.create(status=RunStatus.FAILED, trigger=RunTrigger.COMMAND)
    table = CustomerScore._meta.db_table
    columns = [
        f.column for f in CustomerScore._meta.concrete_fields if f.column not in ("id", "run_id")
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (run_id, {', '.join(columns)}) "  # noqa: S608
            f"SELECT %s, {', '.join(columns)} FROM {table} WHERE run_id = %s",
            [scratch.pk, fast_run_id],
        )
    t = time.perf_counter()
    by_customer = grouped[["r", "f", "m", "decile"]].to_dict("index")
    rows = CustomerScore.objects.filter(run=scratch).order_by("pk")
    scores = list(rows[:update_sample] if update_sample else rows)
    for score in scores:
        values = by_customer[score.customer_id]
        score.r, score.f, score.m = int(values["r"]), int(values["f"]), int(values["m"])
        score.rfm_code = f"{score.r}{score.f}{score.m}"
        score.decile = int(values["decile"])
    with transaction.atomic():
        CustomerScore.objects.bulk_update(
            scores, ["r", "f", "m", "rfm_code", "decile"], batch_size=2000
        )
    measured = time.perf_counter() - t
    wall = time.perf_counter() - start
    if len(scores) < len(grouped):
        # ~1.5 ms a row whatever the batch size: the full update would take most of an hour,
        # so a sample is timed and scaled to the row count (the wall time likewise).
        scaled = measured * len(grouped) / len(scores)
        phases[f"orm_bulk_update ({len(scores):,} rows in {measured:.1f} s, scaled)"] = scaled
        wall += scaled - measured
    else:
        phases["orm_bulk_update"] = measured
    return grouped, scratch, phases, wall


def compare(grouped, run) -> dict:
    import numpy as np

    from segments.models import CustomerScore

    ours = (
        CustomerScore.objects.filter(run=run)
        .order_by("customer_id")
        .values_list("customer_id", "recency_days", "frequency", "monetary", "m")
    )
    ids, recency, frequency, monetary, m = (np.asarray(c) for c in zip(*ours, strict=True))
    naive = grouped.loc[ids]
    return {
        "customers": len(ids) == len(grouped),
        "recency": bool((naive["recency_days"].to_numpy() == recency).all()),
        "frequency": bool((naive["frequency"].to_numpy() == frequency).all()),
        "monetary": bool(
            (
                np.rint(naive["monetary"].to_numpy() * 100) == np.rint(monetary.astype(float) * 100)
            ).all()
        ),
        "m_score_share_equal": float((naive["m"].to_numpy() == m).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-naive", action="store_true", help="only the fast run")
    parser.add_argument(
        "--update-sample",
        type=int,
        default=20_000,
        help="rows the naive ORM bulk_update is timed on, scaled to all (0: all rows)",
    )
    parser.add_argument(
        "--customers", type=int, default=1_000_000, help="dataset size (smaller: a dry run)"
    )
    args = parser.parse_args()

    from tests.bench.dataset import ensure_dataset

    counts = ensure_dataset(customers=args.customers)
    print(f"dataset: {counts}")
    from segments.models import ScoringRun

    before = set(ScoringRun.objects.values_list("pk", flat=True))

    run, wall, phases, backend = fast_run()
    peak = rss_peak_mb()
    print(
        f"fast run #{run.pk} as of {run.as_of}: {run.customers_scored:,} customers, "
        f"{run.purchases_counted:,} purchases, revenue {run.revenue:,}"
    )
    print("  phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
    print(
        f"  wall {wall:.2f} s (target <= {WALL_TARGET_S} s), peak RSS {peak:.0f} MB "
        f"(target <= {MEMORY_TARGET_MB} MB), PostgreSQL backend peak RSS {backend}"
    )
    print(formatting_alternatives(run=run))
    created = []
    if not args.skip_naive:
        grouped, scratch, naive_phases, naive_wall = naive_pipeline(
            fast_run_id=run.pk, as_of=run.as_of, update_sample=args.update_sample
        )
        created.append(scratch.pk)
        print(
            "naive pipeline: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in naive_phases.items())
            + f"; wall {naive_wall:.2f} s, process peak RSS now {rss_peak_mb():.0f} MB"
        )
        print(f"speed-up: {naive_wall / wall:.1f}x (target >= {SPEEDUP_TARGET}x)")
        print(f"agreement (fast vs naive): {compare(grouped, run)}")

    # Keep this fast run for the other benchmarks; delete the scratch run and the runs earlier
    # executions of this benchmark kept (listed in a marker table outside Django's models).
    from django.db import connection

    from segments.models import CustomerScore

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_scoring_runs (run_id integer PRIMARY KEY)")
        cursor.execute("SELECT run_id FROM bench_scoring_runs")
        doomed = [row[0] for row in cursor.fetchall()] + created
        cursor.execute("DELETE FROM bench_scoring_runs")
        cursor.execute("INSERT INTO bench_scoring_runs VALUES (%s)", [run.pk])
    doomed = [pk for pk in doomed if pk != run.pk]
    CustomerScore.objects.filter(run_id__in=doomed)._raw_delete(CustomerScore.objects.db)
    ScoringRun.objects.filter(pk__in=doomed).delete()
    others = sorted(before - set(doomed))
    print(f"kept scoring run #{run.pk}; deleted bench runs {doomed}; other runs left: {others}")


if __name__ == "__main__":
    main()
