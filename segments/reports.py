"""Figures of one scoring run for the RFM pages and the API: the R×F grid, the label
distribution, the decile table, the Pareto curve and the migration between two runs.

Each function reads one run's CustomerScore rows and lets the database aggregate them, so a
report over a million scores moves a few dozen rows into Python. Shares are fractions 0-1;
amounts are Decimals in the shop's currency. The definitions of the scores themselves are in
``segments/scoring.py`` and the README ("Scores").
"""

from __future__ import annotations

from decimal import Decimal

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, F, Max, OuterRef, Sum
from django.db.models.functions import Floor
from django.utils.translation import gettext_lazy as _

from segments.models import (
    CustomerScore,
    ParetoClass,
    RfmLabel,
    RunReport,
    RunStatus,
    ScoringRun,
)

SCORES = range(1, 6)
DECILES = range(1, 11)
# The key of customers without a score in one of the two runs of a migration matrix.
NOT_SCORED = "not_scored"
NOT_SCORED_LABEL = _("Not scored")

# What each label means, for the legend and tooltips of the RFM page.
LABEL_DEFINITIONS = {
    RfmLabel.CHAMPIONS: _("Bought very recently, buy often and spend the most."),
    RfmLabel.LOYAL: _("Buy regularly and spend well; fairly recent."),
    RfmLabel.POTENTIAL_LOYALIST: _("Recent customers with a few purchases: can become loyal."),
    RfmLabel.NEW: _("Bought very recently for the first time or little so far."),
    RfmLabel.PROMISING: _("Recent, but have bought little so far."),
    RfmLabel.NEEDS_ATTENTION: _("Average recency, frequency and spend: keep them engaged."),
    RfmLabel.ABOUT_TO_SLEEP: _("Last purchase a while ago and few purchases: slipping away."),
    RfmLabel.AT_RISK: _("Used to buy often and spend well, but not for a long time."),
    RfmLabel.CANNOT_LOSE: _("Were among the best customers and have not been back for long."),
    RfmLabel.HIBERNATING: _("Long since the last purchase, few purchases, low spend."),
    RfmLabel.LOST: _("Lowest recency, frequency and spend: probably gone."),
}


def _share(part, whole) -> float:
    return float(part) / float(whole) if whole else 0.0


def _scores(run: ScoringRun):
    # order_by(): the model has no default ordering, but a GROUP BY must not pick one up.
    return CustomerScore.objects.filter(run=run).order_by()


# --- R×F grid ---------------------------------------------------------------------------------


def rf_grid(*, run: ScoringRun) -> dict:
    """Customers and their average monetary value per (R, F) cell, 5×5.

    ``rows`` go from R 5 (most recent) down to R 1, each with the cells F 1..5; every cell is
    present, empty ones with 0 customers and no average. ``share`` is the cell's fraction of
    the run's scored customers; ``max_customers`` is the largest cell, for a heat-map scale.
    """
    found = {
        (row["r"], row["f"]): row
        for row in _scores(run)
        .values("r", "f")
        .annotate(customers=Count("id"), revenue=Sum("monetary"))
    }
    total = sum(row["customers"] for row in found.values())
    rows = []
    for r in reversed(SCORES):
        cells = []
        for f in SCORES:
            row = found.get((r, f), {"customers": 0, "revenue": None})
            customers = row["customers"]
            revenue = Decimal(row["revenue"] or 0)
            cells.append(
                {
                    "r": r,
                    "f": f,
                    "customers": customers,
                    "share": _share(customers, total),
                    "average_monetary": (revenue / customers).quantize(Decimal("0.01"))
                    if customers
                    else None,
                }
            )
        rows.append({"r": r, "cells": cells})
    max_customers = max((row["customers"] for row in found.values()), default=0)
    return {"total": total, "max_customers": max_customers, "rows": rows}


# --- Label distribution -----------------------------------------------------------------------


def label_distribution(*, run: ScoringRun) -> list[dict]:
    """Customers, their share, revenue and share of revenue per RFM label, in the order of
    ``RfmLabel`` (best first); labels nobody has are listed with zeros."""
    found = {
        row["rfm_label"]: row
        for row in _scores(run)
        .values("rfm_label")
        .annotate(customers=Count("id"), revenue=Sum("monetary"))
    }
    total = sum(row["customers"] for row in found.values())
    total_revenue = sum((Decimal(row["revenue"] or 0) for row in found.values()), Decimal(0))
    result = []
    for label in RfmLabel:
        row = found.get(label.value, {"customers": 0, "revenue": 0})
        revenue = Decimal(row["revenue"] or 0)
        result.append(
            {
                "label": label.value,
                "name": label.label,
                "definition": LABEL_DEFINITIONS[label],
                "customers": row["customers"],
                "share": _share(row["customers"], total),
                "revenue": revenue,
                "revenue_share": _share(revenue, total_revenue),
            }
        )
    return result


# --- Deciles ----------------------------------------------------------------------------------


def decile_table(*, run: ScoringRun) -> list[dict]:
    """Deciles 1 (top 10% by monetary) to 10: customers, revenue, the decile's share of
    revenue and the cumulative share up to and including it. With fewer than ten customers
    some deciles are empty and listed with zeros."""
    found = {
        row["decile"]: row
        for row in _scores(run)
        .values("decile")
        .annotate(customers=Count("id"), revenue=Sum("monetary"))
    }
    total_revenue = sum((Decimal(row["revenue"] or 0) for row in found.values()), Decimal(0))
    result, cumulative = [], Decimal(0)
    for decile in DECILES:
        row = found.get(decile, {"customers": 0, "revenue": 0})
        revenue = Decimal(row["revenue"] or 0)
        cumulative += revenue
        result.append(
            {
                "decile": decile,
                "customers": row["customers"],
                "revenue": revenue,
                "share": _share(revenue, total_revenue),
                "cumulative_share": _share(cumulative, total_revenue),
            }
        )
    return result


# --- Pareto -----------------------------------------------------------------------------------


def pareto_curve(*, run: ScoringRun, points: int = 100) -> dict:
    """The Pareto (Lorenz-style) curve: customers ordered by monetary descending (ties by
    customer id, the scoring order), x = share of customers so far, y = their cumulative
    share of revenue; about ``points`` points plus one per decile and the origin, each an
    exact point of the curve.

    Also: the revenue share of the top 20% of customers (deciles 1-2, the run's ``top20``),
    and the customers and revenue of each Pareto class.

    One pass, no sort of the scores: the decile, the bucket of revenue share
    (``cumulative_share`` cut in ``points`` steps) and the Pareto class all grow with the
    customer's position in the scoring order, so the groups of equal (decile, bucket, class),
    taken in that order, follow the order of the customers: counting the customers group by
    group gives the position reached and ``max(cumulative_share)`` the share there. Revenue
    buckets put most points where the curve climbs; deciles add one every 10% of customers
    along the flat tail.
    """
    groups = list(
        _scores(run)
        .annotate(bucket=Floor(F("cumulative_share") * points))
        .values("decile", "bucket", "pareto_class")
        .annotate(customers=Count("id"), revenue=Sum("monetary"), share=Max("cumulative_share"))
        .order_by("decile", "bucket", "pareto_class")
    )
    n = sum(group["customers"] for group in groups)
    total_revenue = sum((Decimal(group["revenue"] or 0) for group in groups), Decimal(0))
    curve, position = [{"customer_share": 0.0, "revenue_share": 0.0}], 0
    classes = {cls.value: {"customers": 0, "revenue": Decimal(0)} for cls in ParetoClass}
    top20 = {"customers": 0, "revenue": Decimal(0)}
    for group in groups:
        position += group["customers"]
        curve.append({"customer_share": position / n, "revenue_share": group["share"]})
        revenue = Decimal(group["revenue"] or 0)
        classes[group["pareto_class"]]["customers"] += group["customers"]
        classes[group["pareto_class"]]["revenue"] += revenue
        if group["decile"] <= 2:
            top20["customers"] += group["customers"]
            top20["revenue"] += revenue
    return {
        "customers": n,
        "revenue": total_revenue,
        "points": curve,
        "top20_customers": top20["customers"],
        "top20_customer_share": _share(top20["customers"], n),
        "top20_revenue_share": _share(top20["revenue"], total_revenue),
        "classes": [
            {
                "pareto_class": cls.value,
                "name": cls.label,
                "customers": classes[cls.value]["customers"],
                "share": _share(classes[cls.value]["customers"], n),
                "revenue": classes[cls.value]["revenue"],
                "revenue_share": _share(classes[cls.value]["revenue"], total_revenue),
            }
            for cls in ParetoClass
        ],
    }


# --- Migration between runs -------------------------------------------------------------------


def migration_matrix(*, before: ScoringRun, after: ScoringRun) -> dict:
    """How customers moved between RFM labels from run ``before`` to run ``after``.

    ``labels`` are the keys of both axes: the labels in the order of ``RfmLabel`` followed
    by "not scored" (no completed purchase in that run's window, or not a customer yet).
    ``rows[i]["counts"][j]`` is the number of customers with label i in ``before`` and label
    j in ``after``; a customer scored in neither run is not counted. Row and column totals
    are included.
    """
    table = CustomerScore._meta.db_table
    # One pass with a FULL OUTER JOIN (PostgreSQL; SQLite from 3.39): the ORM has no way to
    # keep the customers of either side that the other side lacks in a single query.
    sql = f"""
        SELECT b.rfm_label, a.rfm_label, COUNT(*)
        FROM (SELECT customer_id, rfm_label FROM {table} WHERE run_id = %s) b
        FULL OUTER JOIN (SELECT customer_id, rfm_label FROM {table} WHERE run_id = %s) a
          ON a.customer_id = b.customer_id
        GROUP BY b.rfm_label, a.rfm_label
    """  # noqa: S608 (the table name is the model's; the values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [before.pk, after.pk])
        found = {(b or NOT_SCORED, a or NOT_SCORED): count for b, a, count in cursor.fetchall()}
    keys = [label.value for label in RfmLabel] + [NOT_SCORED]
    names = dict(RfmLabel.choices) | {NOT_SCORED: NOT_SCORED_LABEL}
    counts = [[found.get((row, column), 0) for column in keys] for row in keys]
    return {
        "before": before.pk,
        "after": after.pk,
        "labels": [{"label": key, "name": names[key]} for key in keys],
        "rows": [
            {"label": key, "name": names[key], "counts": row, "total": sum(row)}
            for key, row in zip(keys, counts, strict=True)
        ],
        "column_totals": [sum(column) for column in zip(*counts, strict=True)],
        "total": sum(sum(row) for row in counts),
        "unchanged": sum(counts[i][i] for i in range(len(keys) - 1)),
    }


# A succeeded run's scores never change (they are only ever deleted whole, with the run or
# by pruning, after which the run is no longer offered): its figures are computed once, stored
# with the run (RunReport) and kept in the cache for the pages' repeated reads.
CACHE_SECONDS = 24 * 3600
# The reports stored with the run: figures only (the others carry translated labels, which a
# stored copy would freeze in the language of whoever computed it first).
STORED_REPORTS = {"rf_grid", "decile_table"}


def cached(report, **kwargs):
    """``report(**kwargs)`` (one of the functions above, on succeeded runs): from the cache,
    else from the run's stored reports, else computed and stored; ``kwargs`` are runs (the
    report belongs to ``run``, or to ``after`` for a migration matrix) or numbers."""
    parts = [f"{name}={getattr(value, 'pk', value)}" for name, value in sorted(kwargs.items())]
    key = ":".join([report.__name__, *parts])
    cache_key = f"segments-report:{key}"
    result = cache.get(cache_key)
    if result is not None:
        return result
    owner = kwargs.get("run") or kwargs.get("after")
    storable = report.__name__ in STORED_REPORTS and owner.status == RunStatus.SUCCEEDED
    if storable:
        stored = RunReport.objects.filter(run=owner, key=key).values_list("payload", flat=True)
        result = stored.first()
    if result is None:
        result = report(**kwargs)
        if storable:
            RunReport.objects.bulk_create(
                [RunReport(run=owner, key=key, payload=result)], ignore_conflicts=True
            )
    cache.set(cache_key, result, CACHE_SECONDS)
    return result


def runs_with_scores():
    """Succeeded runs whose score rows are kept (older ones are pruned to their summary):
    the runs the reports can be asked about."""
    return ScoringRun.objects.succeeded().filter(
        Exists(CustomerScore.objects.filter(run=OuterRef("pk")))
    )


def previous_run(*, run: ScoringRun) -> ScoringRun | None:
    """The run with scores finished just before ``run``: the default for the migration
    matrix."""
    earlier = runs_with_scores().exclude(pk=run.pk)
    if run.finished_at is not None:
        earlier = earlier.filter(finished_at__lte=run.finished_at)
    return earlier.order_by("-finished_at", "-id").first()


def warm_cache(*, run: ScoringRun) -> None:
    """Compute a new run's figures into the cache, so the first visit of the RFM page after
    a run is as quick as the next ones (at a million customers the reports take seconds)."""
    for report in (rf_grid, label_distribution, decile_table, pareto_curve):
        cached(report, run=run)
    before = previous_run(run=run)
    if before is not None:
        cached(migration_matrix, before=before, after=run)
