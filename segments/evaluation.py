"""Live evaluation of segment rules: which customers match, how many, a sample, and how the
matches break down by prefecture, RFM label or decile (what the builder shows while a
marketer edits the rules).

Every function takes the rule tree as given (validated here: ``RuleError`` for bad rules)
and answers with one query; counts are exact ``COUNT(*)`` over the compiled semi-joins, or,
for ``count_matching`` on PostgreSQL with a fresh column snapshot, the same count read from
the snapshot (segments.columnar; the SQL remains the fallback and the oracle).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, QuerySet
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from customers.models import Customer
from customers.prefectures import JAPANESE_NAMES, Prefecture
from segments import columnar
from segments.models import CustomerScore, RfmLabel, ScoringRun
from segments.rules import compile_rules

BREAKDOWNS = ("prefecture", "rfm_label", "decile")
SAMPLE_LIMIT_MAX = 100
# Per-query memory for hashing and sorting the purchases a behaviour condition groups; the
# server's default (4MB) spills a year of purchases to disk several times over.
EVALUATION_WORK_MEM = "64MB"


@contextmanager
def evaluation_settings() -> Iterator[None]:
    """PostgreSQL fast path for one evaluation: JIT off (compiling a plan costs ~100 ms, more
    than it saves on these sub-second queries) and a work_mem that keeps the hash aggregates
    in memory. SET LOCAL ends with the transaction; other databases need nothing."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(f"SET LOCAL work_mem = '{EVALUATION_WORK_MEM}'")
        yield


def matching_customers(
    tree: Any, *, today: date | None = None, run: ScoringRun | None = None
) -> QuerySet[Customer]:
    """The customers the rules select (scores of ``run``, default the latest succeeded)."""
    return Customer.objects.filter(compile_rules(tree, today=today, run=run))


def count_matching(tree: Any, *, today: date | None = None) -> int:
    """How many customers the rules select: from the column snapshot when a fresh one exists
    (PostgreSQL, see segments.columns), else one SQL count."""
    run = ScoringRun.objects.latest_succeeded()
    found = columnar.match(tree, run=run, today=today)
    if found is not None:
        return found.count
    customers = matching_customers(tree, today=today, run=run)
    with evaluation_settings():
        return customers.count()


def sample_matching(tree: Any, *, limit: int = 20) -> list[Customer]:
    """A few matching customers (the newest first) to show beside the count."""
    limit = max(1, min(limit, SAMPLE_LIMIT_MAX))
    return list(matching_customers(tree).order_by("-created_at", "-id")[:limit])


def breakdown(tree: Any, *, by: str) -> list[dict]:
    """Matching customers counted by ``by`` (prefecture, rfm_label or decile), as
    {key, label, count} in the dimension's natural order; customers without a value (no
    prefecture, not scored) come last with key None. The counts add up to the total."""
    if by not in BREAKDOWNS:
        raise ValueError(f"breakdown by {by!r}: choose one of {', '.join(BREAKDOWNS)}")
    run = ScoringRun.objects.latest_succeeded()
    customers = matching_customers(tree, run=run)
    with evaluation_settings():
        if by == "prefecture":
            return _by_prefecture(customers)
        return _by_score(customers, run=run, column=by)


def _by_prefecture(customers: QuerySet[Customer]) -> list[dict]:
    counts = dict(
        customers.order_by()
        .values_list("prefecture")
        .annotate(n=Count("id"))
        .values_list("prefecture", "n")
    )
    rows = [
        {
            "key": code,
            "label": str(label),
            "label_ja": JAPANESE_NAMES[code],
            "label_en": code_name(code),
            "count": counts[code],
        }
        for code, label in Prefecture.choices
        if counts.get(code)
    ]
    if counts.get(""):
        rows.append(_missing(_("No prefecture"), counts[""]))
    return rows


def code_name(code: str) -> str:
    """The prefecture's romanised name (the enum name: TOKYO -> Tokyo), whatever the language."""
    return Prefecture(code).name.title()


def _by_score(customers: QuerySet[Customer], *, run: ScoringRun | None, column: str) -> list:
    total = customers.count()
    counts: dict = {}
    if run is not None:
        counts = dict(
            CustomerScore.objects.filter(run=run, customer__in=customers.values("id"))
            .order_by()
            .values_list(column)
            .annotate(n=Count("id"))
            .values_list(column, "n")
        )
    if column == "rfm_label":
        keys = [(value, str(label)) for value, label in RfmLabel.choices]
    else:
        keys = [(n, gettext("Decile %(n)s") % {"n": n}) for n in range(1, 11)]
    rows = [
        {"key": key, "label": label, "count": counts[key]} for key, label in keys if counts.get(key)
    ]
    unscored = total - sum(counts.values())
    if unscored:
        rows.append(_missing(_("Not scored"), unscored))
    return rows


def _missing(label, count: int) -> dict:
    return {"key": None, "label": str(label), "count": count}
