"""The scoring engine on hand-computed cases (no database): quantile cut points, ties, tiny
populations, fixed thresholds, deciles, Pareto boundaries and the label grid."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from segments.models import RfmLabel, ScoreMode
from segments.scoring import (
    RFM_LABEL_GRID,
    ScoringConfig,
    ScoringConfigError,
    rfm_label,
    score_customers,
)

QUANTILE = ScoringConfig()


def aggregates(rows: list[tuple[int, int, int, float]]) -> pd.DataFrame:
    """(customer_id, recency_days, frequency, monetary) rows; dates do not affect scores."""
    return pd.DataFrame(
        {
            "customer_id": [row[0] for row in rows],
            "recency_days": [row[1] for row in rows],
            "frequency": [row[2] for row in rows],
            "monetary": [row[3] for row in rows],
            "first_purchase_on": [date(2026, 1, 1)] * len(rows),
            "last_purchase_on": [date(2026, 10, 1)] * len(rows),
        }
    )


def by_customer(scored: pd.DataFrame) -> dict[int, dict]:
    return {row["customer_id"]: row for row in scored.to_dict("records")}


def test_quantile_scores_of_a_small_population():
    # n = 6: the 20/40/60/80% positions (n-1)*p are 1, 2, 3, 4 -> the cut points are the 2nd
    # to 5th smallest values. Recency 1,10,20,30,40,400 -> cuts 10,20,30,40; frequency
    # 1,1,1,2,5,10 -> cuts 1,1,2,5; monetary 100..600 -> cuts 200,300,400,500.
    scored = by_customer(
        score_customers(
            aggregates(
                [
                    (1, 1, 10, 600),
                    (2, 10, 5, 500),
                    (3, 20, 2, 400),
                    (4, 30, 1, 300),
                    (5, 40, 1, 200),
                    (6, 400, 1, 100),
                ]
            ),
            config=QUANTILE,
        )
    )
    assert [scored[c]["r"] for c in range(1, 7)] == [5, 4, 3, 2, 1, 1]
    assert [scored[c]["f"] for c in range(1, 7)] == [5, 4, 3, 1, 1, 1]
    assert [scored[c]["m"] for c in range(1, 7)] == [5, 4, 3, 2, 1, 1]
    assert scored[1]["rfm_code"] == "555" and scored[1]["rfm_label"] == RfmLabel.CHAMPIONS
    # R=4, FM=floor((4+4)/2)=4 -> loyal; R=3, FM=3 -> needs attention; R=2, FM=1 -> hibernating.
    assert scored[2]["rfm_label"] == RfmLabel.LOYAL
    assert scored[3]["rfm_code"] == "333" and scored[3]["rfm_label"] == RfmLabel.NEEDS_ATTENTION
    assert scored[4]["rfm_code"] == "212" and scored[4]["rfm_label"] == RfmLabel.HIBERNATING
    assert scored[6]["rfm_code"] == "111" and scored[6]["rfm_label"] == RfmLabel.LOST


def test_interpolated_cut_points():
    # n = 5: positions 0.8, 1.6, 2.4, 3.2 of 10,20,30,40,50 -> cuts 18, 26, 34, 42.
    rows = [(c, 5, 1, 10 * c) for c in range(1, 6)]
    rows.append((6, 5, 1, 26))  # exactly on q2: 1 + one cut strictly below (18) = 2
    rows.append((7, 5, 1, 26.01))  # just above q2: 3
    scored = by_customer(score_customers(aggregates(rows[:5]), config=QUANTILE))
    assert [scored[c]["m"] for c in range(1, 6)] == [1, 2, 3, 4, 5]
    fixed = ScoringConfig(m_mode=ScoreMode.FIXED, m_thresholds=(18, 26, 34, 42))
    scored = by_customer(score_customers(aggregates(rows), config=fixed))
    assert scored[6]["m"] == 2 and scored[7]["m"] == 3


def test_equal_values_get_equal_scores_also_on_cut_points():
    # Monetary 5,5,5,5,9: cuts at positions 0.8,1.6,2.4,3.2 are 5, 5, 5, 5.8. Every 5 has no
    # cut strictly below it (M=1); 9 has all four (M=5). Recency 7 everywhere: every cut is
    # 7, none strictly above -> R=1 for all.
    rows = [(1, 7, 3, 5), (2, 7, 3, 5), (3, 7, 3, 5), (4, 7, 3, 5), (5, 7, 3, 9)]
    scored = by_customer(score_customers(aggregates(rows), config=QUANTILE))
    assert [scored[c]["m"] for c in range(1, 6)] == [1, 1, 1, 1, 5]
    assert {scored[c]["r"] for c in range(1, 6)} == {1}
    assert {scored[c]["f"] for c in range(1, 6)} == {1}


def test_one_customer():
    (row,) = score_customers(aggregates([(42, 3, 2, 5000)]), config=QUANTILE).to_dict("records")
    # All four cuts equal the value: none strictly below (F=M=1), none strictly above (R=1).
    assert (row["r"], row["f"], row["m"]) == (1, 1, 1)
    assert row["rfm_label"] == RfmLabel.LOST
    assert row["decile"] == 1 and row["top20"]
    assert row["cumulative_share"] == 1.0 and row["pareto_class"] == "A"


def test_everyone_equal():
    scored = score_customers(aggregates([(c, 30, 2, 1000) for c in range(1, 8)]), config=QUANTILE)
    assert set(scored["rfm_code"]) == {"111"}
    assert list(scored["customer_id"]) == list(range(1, 8))  # ties by id ascending
    assert list(scored["decile"]) == [1, 2, 3, 5, 6, 8, 9]  # floor(10*(i-1)/7)+1


def test_zero_amount_purchases():
    # Customer 2 bought once for 0: counted in F, adds nothing to M.
    scored = by_customer(
        score_customers(aggregates([(1, 5, 1, 300), (2, 5, 1, 0), (3, 5, 2, 0)]), config=QUANTILE)
    )
    assert scored[2]["monetary"] == 0 and scored[2]["frequency"] == 1
    assert scored[1]["cumulative_share"] == 1.0
    assert scored[2]["cumulative_share"] == 1.0 and scored[2]["pareto_class"] == "C"
    # Nobody spent anything: every share is 0 and, the share before everyone being 0, all A.
    nothing = score_customers(aggregates([(1, 5, 1, 0), (2, 9, 3, 0)]), config=QUANTILE)
    assert list(nothing["cumulative_share"]) == [0.0, 0.0]
    assert list(nothing["pareto_class"]) == ["A", "A"]
    assert list(nothing["m"]) == [1, 1]


def test_fixed_thresholds():
    config = ScoringConfig(
        r_mode=ScoreMode.FIXED,
        r_thresholds=(30, 90, 180, 365),
        f_mode=ScoreMode.FIXED,
        f_thresholds=(1, 2, 4, 8),
        m_mode=ScoreMode.FIXED,
        m_thresholds=[1000, 5000, 10000, 50000],
    )
    rows = [
        (1, 29, 1, 999),
        (2, 30, 2, 1000),
        (3, 90, 3, 5000.01),
        (4, 364, 8, 50000),
        (5, 365, 9, 50000.01),
        (6, 366, 100, 1e7),
    ]
    scored = by_customer(score_customers(aggregates(rows), config=config))
    assert [scored[c]["r"] for c in range(1, 7)] == [5, 4, 3, 2, 1, 1]
    assert [scored[c]["f"] for c in range(1, 7)] == [1, 2, 3, 4, 5, 5]
    assert [scored[c]["m"] for c in range(1, 7)] == [1, 1, 3, 4, 5, 5]


def test_deciles_when_n_is_not_a_multiple_of_ten():
    scored = score_customers(
        aggregates([(c, 1, 1, 100 - c) for c in range(1, 14)]), config=QUANTILE
    )
    # Monetary descending is customer id ascending here; floor(10*(i-1)/13)+1.
    assert list(scored["customer_id"]) == list(range(1, 14))
    assert list(scored["decile"]) == [1, 1, 2, 3, 4, 4, 5, 6, 7, 7, 8, 9, 10]
    assert list(scored["top20"]) == [True] * 3 + [False] * 10
    three = score_customers(
        aggregates([(7, 1, 1, 10), (3, 1, 1, 30), (5, 1, 1, 30)]), config=QUANTILE
    )
    assert list(three["customer_id"]) == [3, 5, 7]  # 30 (ids 3, 5) then 10
    assert list(three["decile"]) == [1, 4, 7]


def test_pareto_classes_at_the_exact_boundaries():
    # Shares before each customer: 0, 0.5, 0.8 (not < 0.8 -> B), 0.95 (not < 0.95 -> C).
    scored = score_customers(
        aggregates([(1, 1, 1, 50), (2, 1, 1, 30), (3, 1, 1, 15), (4, 1, 1, 5)]), config=QUANTILE
    )
    assert list(scored["pareto_class"]) == ["A", "A", "B", "C"]
    assert list(scored["cumulative_share"]) == [0.5, 0.8, 0.95, 1.0]
    # Just below the boundaries: 0, 0.5, 0.79 (A), 0.949 (B).
    scored = score_customers(
        aggregates([(1, 1, 1, 500), (2, 1, 1, 290), (3, 1, 1, 159), (4, 1, 1, 51)]),
        config=QUANTILE,
    )
    assert list(scored["pareto_class"]) == ["A", "A", "A", "B"]
    # Configured shares.
    config = ScoringConfig(pareto_a_share=0.5, pareto_b_share=0.8)
    scored = score_customers(
        aggregates([(1, 1, 1, 50), (2, 1, 1, 30), (3, 1, 1, 15), (4, 1, 1, 5)]), config=config
    )
    assert list(scored["pareto_class"]) == ["A", "B", "C", "C"]


def test_monetary_in_cents_keeps_shares_exact():
    # 0.1 + 0.2 is not 0.3 in floats; the shares are computed on integer cents.
    scored = score_customers(aggregates([(1, 1, 1, 0.2), (2, 1, 1, 0.1)]), config=QUANTILE)
    assert list(scored["cumulative_share"]) == [2 / 3, 1.0]


def test_label_grid():
    expected = {
        5: ["new", "potential_loyalist", "potential_loyalist", "champions", "champions"],
        4: ["promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"],
        3: ["about_to_sleep", "about_to_sleep", "needs_attention", "loyal", "loyal"],
        2: ["hibernating", "hibernating", "at_risk", "at_risk", "cannot_lose"],
        1: ["lost", "hibernating", "at_risk", "at_risk", "cannot_lose"],
    }
    for r, labels in expected.items():
        assert [rfm_label(r, fm) for fm in range(1, 6)] == labels
        assert list(RFM_LABEL_GRID[r]) == labels
    # FM is floor((F + M) / 2): F=4, M=5 -> 4 (champions with R=5); F=1, M=2 -> 1 (new).
    scored = score_customers(
        aggregates([(1, 1, 4, 50), (2, 1, 1, 20)]),
        config=ScoringConfig(
            r_mode=ScoreMode.FIXED,
            r_thresholds=(10, 20, 30, 40),
            f_mode=ScoreMode.FIXED,
            f_thresholds=(1, 2, 3, 4),
            m_mode=ScoreMode.FIXED,
            m_thresholds=(10, 20, 30, 40),
        ),
    )
    first, second = scored.to_dict("records")
    assert (first["rfm_code"], first["rfm_label"]) == ("545", "champions")
    assert (second["rfm_code"], second["rfm_label"]) == ("512", "new")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"r_mode": ScoreMode.FIXED, "r_thresholds": (1, 2, 3)}, "r_thresholds"),
        ({"f_mode": ScoreMode.FIXED, "f_thresholds": (1, 3, 2, 4)}, "f_thresholds"),
        ({"m_mode": ScoreMode.FIXED, "m_thresholds": (1, 1, 2, 4)}, "m_thresholds"),
        ({"m_mode": "median"}, "m_mode"),
        ({"pareto_a_share": 0.95, "pareto_b_share": 0.8}, "pareto_a_share"),
    ],
)
def test_config_refuses_settings_that_cannot_score(kwargs, key):
    with pytest.raises(ScoringConfigError) as caught:
        ScoringConfig(**kwargs)
    assert key in caught.value.errors


def test_empty_population():
    scored = score_customers(aggregates([]), config=QUANTILE)
    assert scored.empty and list(scored.columns)[-1] == "top20"
