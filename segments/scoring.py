"""RFM, decile and Pareto scores of customers from their purchase aggregates: pure pandas/numpy,
no database (``segments/aggregation.py`` builds the input, ``segments/runs.py`` stores the
output).

The definitions, exactly (README "Scores (RFM, deciles, Pareto)"):

- R, F, M scores 1..5, 5 best. Quantile mode: cut points q1..q4 are the 20/40/60/80%
  quantiles of the scored customers' values with linear interpolation (numpy's default).
  F and M score = 1 + number of cut points strictly below the value; R score = 1 + number of
  cut points strictly above the recency (fewer days is better). Equal values therefore always
  get equal scores. Fixed mode uses four configured ascending cut points the same way.
- Decile: customers ordered by monetary descending, ties by customer id ascending; the i-th
  of n (1-based) is in decile floor(10*(i-1)/n)+1.
- Pareto: the same order; cumulative_share = revenue up to and including the customer / total
  revenue (0 for everyone if the total is 0); class A while the share *before* the customer is
  below ``pareto_a_share``, B while below ``pareto_b_share``, else C. top20 = decile <= 2.
- RFM code = "{r}{f}{m}"; the label comes from R and FM = floor((F + M) / 2) through
  ``RFM_LABEL_GRID``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from django.utils.translation import gettext_lazy as _

from segments.models import ParetoClass, RfmLabel, ScoreMode

if TYPE_CHECKING:
    from segments.models import ScoringSettings

QUANTILES = (0.2, 0.4, 0.6, 0.8)

L = RfmLabel
# Rows: R score 5 (top) down to 1; columns: FM = floor((F + M) / 2) from 1 to 5.
RFM_LABEL_GRID: dict[int, tuple[RfmLabel, ...]] = {
    5: (L.NEW, L.POTENTIAL_LOYALIST, L.POTENTIAL_LOYALIST, L.CHAMPIONS, L.CHAMPIONS),
    4: (L.PROMISING, L.POTENTIAL_LOYALIST, L.POTENTIAL_LOYALIST, L.LOYAL, L.LOYAL),
    3: (L.ABOUT_TO_SLEEP, L.ABOUT_TO_SLEEP, L.NEEDS_ATTENTION, L.LOYAL, L.LOYAL),
    2: (L.HIBERNATING, L.HIBERNATING, L.AT_RISK, L.AT_RISK, L.CANNOT_LOSE),
    1: (L.LOST, L.HIBERNATING, L.AT_RISK, L.AT_RISK, L.CANNOT_LOSE),
}
del L

INPUT_COLUMNS = (
    "customer_id",
    "recency_days",
    "frequency",
    "monetary",
    "first_purchase_on",
    "last_purchase_on",
)
OUTPUT_COLUMNS = (
    *INPUT_COLUMNS,
    "r",
    "f",
    "m",
    "rfm_code",
    "rfm_label",
    "decile",
    "cumulative_share",
    "pareto_class",
    "top20",
)


class ScoringConfigError(ValueError):
    """Settings that cannot score: a fixed mode without four ascending cut points, or Pareto
    shares out of order. ``errors`` maps a setting's name to its message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors.items()))


@dataclass(frozen=True)
class ScoringConfig:
    r_mode: str = ScoreMode.QUANTILE
    r_thresholds: tuple[float, ...] = ()
    f_mode: str = ScoreMode.QUANTILE
    f_thresholds: tuple[float, ...] = ()
    m_mode: str = ScoreMode.QUANTILE
    m_thresholds: tuple[float, ...] = ()
    pareto_a_share: float = 0.8
    pareto_b_share: float = 0.95
    # Filled from the settings for the run's record; scoring itself does not use it.
    window_days: int | None = field(default=None, compare=False)

    def __post_init__(self):
        errors = {}
        for dim in "rfm":
            mode = getattr(self, f"{dim}_mode")
            try:
                thresholds = tuple(float(t) for t in getattr(self, f"{dim}_thresholds") or ())
            except (TypeError, ValueError):
                errors[f"{dim}_thresholds"] = str(_("Cut points must be a list of numbers."))
                continue
            object.__setattr__(self, f"{dim}_thresholds", thresholds)
            if mode not in ScoreMode.values:
                errors[f"{dim}_mode"] = str(_("Unknown scoring mode."))
            elif mode == ScoreMode.FIXED and (
                len(thresholds) != 4 or any(a >= b for a, b in pairwise(thresholds))
            ):
                errors[f"{dim}_thresholds"] = str(
                    _("Fixed mode needs four cut points in ascending order.")
                )
        a, b = float(self.pareto_a_share), float(self.pareto_b_share)
        object.__setattr__(self, "pareto_a_share", a)
        object.__setattr__(self, "pareto_b_share", b)
        if not 0 < a < b <= 1:
            errors["pareto_a_share"] = str(
                _("The class A share must be above 0 and below the class B share, at most 1.")
            )
        if errors:
            raise ScoringConfigError(errors)

    @classmethod
    def from_settings(cls, settings: ScoringSettings) -> ScoringConfig:
        return cls(
            r_mode=settings.r_mode,
            r_thresholds=tuple(settings.r_thresholds or ()),
            f_mode=settings.f_mode,
            f_thresholds=tuple(settings.f_thresholds or ()),
            m_mode=settings.m_mode,
            m_thresholds=tuple(settings.m_thresholds or ()),
            pareto_a_share=float(Decimal(settings.pareto_a_share)),
            pareto_b_share=float(Decimal(settings.pareto_b_share)),
            window_days=settings.window_days,
        )

    def as_dict(self) -> dict:
        """JSON-ready, for ``ScoringRun.settings`` (what a run was scored with)."""
        data = asdict(self)
        for dim in "rfm":
            data[f"{dim}_thresholds"] = list(data[f"{dim}_thresholds"])
        return data


def rfm_label(r: int, fm: int) -> RfmLabel:
    """The label of an R score and FM = floor((F + M) / 2), both 1..5."""
    return RFM_LABEL_GRID[r][fm - 1]


def cut_points(values: np.ndarray | pd.Series, *, mode: str, thresholds: Sequence[float] = ()):
    """The four cut points of a dimension: configured (fixed mode) or the 20/40/60/80%
    quantiles of ``values`` (empty input: no cut points, nothing to score)."""
    if mode == ScoreMode.FIXED:
        return np.asarray(thresholds, dtype=float)
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.asarray(QUANTILES, dtype=float)[:0]
    return np.quantile(values, QUANTILES)


def score_higher_is_better(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """1 + number of cut points strictly below each value (F and M)."""
    # searchsorted(side="left") counts the cut points < value.
    return (1 + np.searchsorted(cuts, values, side="left")).astype(np.int8)


def score_lower_is_better(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """1 + number of cut points strictly above each value (R: fewer days is better)."""
    # searchsorted(side="right") counts the cut points <= value.
    return (1 + len(cuts) - np.searchsorted(cuts, values, side="right")).astype(np.int8)


# Codes and labels by index (R - 1) * 25 + (F - 1) * 5 + (M - 1): one vectorised take of
# ready-made strings instead of formatting a million of them.
_CODE_TABLE = np.array(
    [f"{r}{f}{m}" for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)], dtype=object
)
_LABEL_TABLE = np.array(
    [
        str(RFM_LABEL_GRID[r][(f + m) // 2 - 1].value)
        for r in range(1, 6)
        for f in range(1, 6)
        for m in range(1, 6)
    ],
    dtype=object,
)
_PARETO_TABLE = np.array([c.value for c in ParetoClass], dtype=object)  # A, B, C


def score_customers(aggregates: pd.DataFrame, *, config: ScoringConfig) -> pd.DataFrame:
    """Scores of every row of ``aggregates`` (columns ``INPUT_COLUMNS``; monetary as float or
    Decimal). Returns a new frame with ``OUTPUT_COLUMNS``, ordered by decile (monetary
    descending, customer id ascending), monetary as float rounded to cents."""
    # Integer cents: cumulative sums and equal-value tests are exact whatever the row count.
    cents = np.rint(aggregates["monetary"].astype(float).to_numpy() * 100).astype(np.int64)
    customer_id = aggregates["customer_id"].to_numpy().astype(np.int64)
    # Decile and Pareto order (monetary descending, customer id ascending) first, so that
    # every column is built in its final order and nothing is shuffled afterwards.
    order = np.lexsort((customer_id, -cents))
    cents = cents[order]
    monetary = cents / 100
    recency = aggregates["recency_days"].to_numpy().astype(np.int64)[order]
    frequency = aggregates["frequency"].to_numpy().astype(np.int64)[order]

    r = score_lower_is_better(
        recency, cut_points(recency, mode=config.r_mode, thresholds=config.r_thresholds)
    )
    f = score_higher_is_better(
        frequency, cut_points(frequency, mode=config.f_mode, thresholds=config.f_thresholds)
    )
    m = score_higher_is_better(
        monetary, cut_points(monetary, mode=config.m_mode, thresholds=config.m_thresholds)
    )
    rfm_index = (r.astype(np.int64) - 1) * 25 + (f.astype(np.int64) - 1) * 5 + (m - 1)

    n = len(cents)
    decile = (10 * np.arange(n, dtype=np.int64) // max(n, 1) + 1).astype(np.int8)
    cumulative = np.cumsum(cents)
    total = int(cumulative[-1]) if n else 0
    if total > 0:
        share = cumulative / total
        share_before = (cumulative - cents) / total
    else:
        share = np.zeros(n)
        share_before = np.zeros(n)
    pareto = (share_before >= config.pareto_a_share).astype(np.int8) + (
        share_before >= config.pareto_b_share
    )
    return pd.DataFrame(
        {
            "customer_id": customer_id[order],
            "recency_days": recency,
            "frequency": frequency,
            "monetary": monetary,
            "first_purchase_on": aggregates["first_purchase_on"].to_numpy()[order],
            "last_purchase_on": aggregates["last_purchase_on"].to_numpy()[order],
            "r": r,
            "f": f,
            "m": m,
            "rfm_code": _CODE_TABLE[rfm_index],
            "rfm_label": _LABEL_TABLE[rfm_index],
            "decile": decile,
            "cumulative_share": share,
            "pareto_class": _PARETO_TABLE[pareto],
            "top20": decile <= 2,
        },
        columns=list(OUTPUT_COLUMNS),
    )
