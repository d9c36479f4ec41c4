"""The segment builder's live preview: how many customers the rules match, a sample, and the
breakdowns by prefecture, RFM label and decile, for the page and the API alike.

The count and the three breakdowns come from ONE grouped query (matching customers LEFT JOIN
their score in the latest run, grouped by prefecture, label and decile; at most 48 x 12 x 11
rows) instead of a count plus one query per breakdown: at 1M customers that is 0.8 s rather
than about 4 s per edit. The breakdowns are the same as ``segments.evaluation.breakdown``'s
(same order, same labels, customers without a value last with key None).

On PostgreSQL with a fresh column snapshot (segments.columns) all of it is read from the
snapshot instead (segments.columnar), a few milliseconds; the grouped query is the fallback.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import Count, FilteredRelation, Q
from django.utils.translation import gettext

from customers.models import Customer
from customers.prefectures import Prefecture
from segments import columnar
from segments.evaluation import SAMPLE_LIMIT_MAX, matching_customers, sample_matching
from segments.models import CustomerScore, RfmLabel, ScoringRun

SAMPLE_SIZE = 20


def with_scores(customers: list[Customer], *, run: ScoringRun | None) -> list[Customer]:
    """Sets ``prefecture_label`` and ``score`` (the customer's row in ``run``, or None)."""
    scores = {}
    if run is not None and customers:
        scores = {
            score.customer_id: score
            for score in CustomerScore.objects.filter(
                run=run, customer_id__in=[c.pk for c in customers]
            ).only("customer_id", "rfm_label", "decile")
        }
    prefectures = dict(Prefecture.choices)
    for customer in customers:
        customer.prefecture_label = prefectures.get(customer.prefecture, "")
        customer.score = scores.get(customer.pk)
    return customers


def _rows(counts: Counter, keys: list[tuple[Any, str]], missing_label: str) -> list[dict]:
    rows = [
        {"key": key, "label": label, "count": counts[key]} for key, label in keys if counts[key]
    ]
    if counts[None]:
        rows.append({"key": None, "label": missing_label, "count": counts[None]})
    return rows


def live_preview(tree: Any, *, sample_size: int = SAMPLE_SIZE) -> dict[str, Any]:
    """{"count", "sample", "breakdowns": {"prefecture", "rfm_label", "decile"}} for the
    (valid) rules ``tree``, scores from the latest succeeded run."""
    run = ScoringRun.objects.latest_succeeded()
    found = columnar.match(tree, run=run)
    if found is not None:
        return _result(
            columnar.counts_by(found, "prefecture"),
            columnar.counts_by(found, "score_label"),
            columnar.counts_by(found, "score_decile"),
            with_scores(columnar.sample(found, limit=_sample_limit(sample_size)), run=run),
        )
    customers = matching_customers(tree, run=run).order_by()
    if run is not None:
        customers = customers.annotate(
            score=FilteredRelation("scores", condition=Q(scores__run=run))
        )
        groups = customers.values_list("prefecture", "score__rfm_label", "score__decile")
    else:
        groups = customers.values_list("prefecture")
    by_prefecture: Counter = Counter()
    by_label: Counter = Counter()
    by_decile: Counter = Counter()
    for *values, n in groups.annotate(n=Count("id")):
        prefecture, label, decile = (*values, None, None)[:3]
        by_prefecture[prefecture or None] += n
        by_label[label] += n
        by_decile[decile] += n
    return _result(
        by_prefecture,
        by_label,
        by_decile,
        with_scores(sample_matching(tree, limit=sample_size), run=run),
    )


def _sample_limit(size: int) -> int:
    return max(1, min(size, SAMPLE_LIMIT_MAX))  # as sample_matching bounds it


def _result(by_prefecture: dict, by_label: dict, by_decile: dict, sample: list) -> dict:
    by_prefecture, by_label, by_decile = (
        Counter(by_prefecture),
        Counter(by_label),
        Counter(by_decile),
    )
    deciles = [(n, gettext("Decile %(n)s") % {"n": n}) for n in range(1, 11)]
    return {
        "count": sum(by_prefecture.values()),
        "sample": sample,
        "breakdowns": {
            "prefecture": _rows(
                by_prefecture,
                [(c, str(label)) for c, label in Prefecture.choices],
                gettext("No prefecture"),
            ),
            "rfm_label": _rows(
                by_label, [(v, str(label)) for v, label in RfmLabel.choices], gettext("Not scored")
            ),
            "decile": _rows(by_decile, deciles, gettext("Not scored")),
        },
    }
