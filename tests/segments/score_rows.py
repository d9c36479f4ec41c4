"""Scoring runs with score rows written directly, for tests of what reads them (reports,
pages, API). The rows follow the definitions: decile, cumulative share, Pareto class and
top-20 flag are derived here from the monetary values, in the scoring order."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone

from segments.models import CustomerScore, RfmLabel, RunStatus, RunTrigger, ScoringRun
from tests.customers.factories import CustomerFactory

LABELS = [label.value for label in RfmLabel]


@dataclass
class Row:
    customer_id: int
    monetary: Decimal
    r: int
    f: int
    m: int
    label: str


def make_run(
    *, status: str = RunStatus.SUCCEEDED, minutes_ago: int = 60, as_of=date(2026, 11, 1)
) -> ScoringRun:
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    return ScoringRun.objects.create(
        status=status,
        trigger=RunTrigger.COMMAND,
        as_of=as_of,
        started_at=finished - timedelta(seconds=5),
        finished_at=finished if status in (RunStatus.SUCCEEDED, RunStatus.FAILED) else None,
        duration_seconds=5.0 if status == RunStatus.SUCCEEDED else None,
    )


def write_scores(run: ScoringRun, rows: list[Row]) -> list[CustomerScore]:
    ordered = sorted(rows, key=lambda row: (-row.monetary, row.customer_id))
    n = len(ordered)
    total = sum((row.monetary for row in ordered), Decimal(0))
    scores, running = [], Decimal(0)
    for i, row in enumerate(ordered, start=1):
        before = running / total if total else 0
        running += row.monetary
        scores.append(
            CustomerScore(
                run=run,
                customer_id=row.customer_id,
                recency_days=(6 - row.r) * 30,
                frequency=row.f,
                monetary=row.monetary,
                first_purchase_on=date(2025, 1, 1),
                last_purchase_on=date(2026, 10, 1),
                r=row.r,
                f=row.f,
                m=row.m,
                rfm_code=f"{row.r}{row.f}{row.m}",
                rfm_label=row.label,
                decile=(10 * (i - 1)) // n + 1,
                cumulative_share=float(running / total) if total else 0.0,
                pareto_class="A" if before < Decimal("0.8") else "B" if before < 0.95 else "C",
                top20=(10 * (i - 1)) // n + 1 <= 2,
            )
        )
    run.customers_scored = n
    run.revenue = total
    run.save(update_fields=["customers_scored", "revenue"])
    return CustomerScore.objects.bulk_create(scores)


def random_rows(customer_ids: list[int], *, seed: int) -> list[Row]:
    rng = random.Random(seed)
    return [
        Row(
            customer_id=pk,
            # Some equal amounts and some zero-amount customers, as real data has.
            monetary=Decimal(rng.choice([0, 500, 1200, 1200, rng.randint(1, 90_000)])),
            r=rng.randint(1, 5),
            f=rng.randint(1, 5),
            m=rng.randint(1, 5),
            label=rng.choice(LABELS),
        )
        for pk in customer_ids
    ]


def scored_run(n: int, *, seed: int = 1, minutes_ago: int = 60, customers=None):
    """A succeeded run with ``n`` random score rows (new customers unless given)."""
    customers = customers or CustomerFactory.create_batch(n)
    run = make_run(minutes_ago=minutes_ago)
    rows = random_rows([c.pk for c in customers[:n]], seed=seed)
    write_scores(run, rows)
    return run, rows
