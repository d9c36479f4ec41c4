"""The 80/20 picture of a period: deciles and Pareto classes of the customers' revenue.

The population is the customers active in the period (a completed purchase in it, matching
the filters), each with their revenue in the period, ordered by revenue descending and ties by
customer id ascending (DESIGN.md). Decile of the i-th of n (1-based) = floor(10*(i-1)/n)+1;
Pareto class A while the cumulative revenue share *before* the customer is < a (80%), B while
< b (95%), else C. With a total revenue of zero nobody has a share before them: all are A.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import numpy as np

from analytics.kpis import Filters, Period, money_ratio, ratio
from analytics.period_spend import period_figures, spend_ranked
from analytics.rollups import cents_to_decimal

DEFAULT_A = Decimal("0.80")
DEFAULT_B = Decimal("0.95")
CURVE_POINTS = 100


def customer_revenue(
    *, start: date, end: date, filters: Filters | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, cents) of the period's active customers, ordered by revenue descending and ties
    by id ascending, from the rollups' per-customer amounts."""
    figures = period_figures(period=Period(start, end), filters=filters)
    # The ids come ascending: a stable sort by spend keeps equal spends in id order.
    order = np.argsort(-figures.cents, kind="stable")
    return figures.ids[order], figures.cents[order]


def _deciles(n: int) -> np.ndarray:
    return (10 * np.arange(n, dtype=np.int64)) // max(n, 1) + 1


def decile_table(*, start: date, end: date, filters: Filters | None = None) -> list[dict]:
    """Deciles 1 (top 10%) to 10: customers, revenue, revenue share, cumulative share, and
    the lowest, highest and average spend in each."""
    return deciles_of(spend_ranked(period=Period(start, end), filters=filters))


def deciles_of(spend: np.ndarray) -> list[dict]:
    """decile_table's rows for the ordered spend (cents) of customer_revenue."""
    total = int(spend.sum())
    deciles = _deciles(spend.size)
    table, cumulative = [], 0
    for decile in range(1, 11):
        chosen = spend[deciles == decile]
        revenue = int(chosen.sum())
        cumulative += revenue
        table.append(
            {
                "decile": decile,
                "customers": int(chosen.size),
                "revenue": cents_to_decimal(revenue),
                "revenue_share": ratio(revenue, total),
                "cumulative_revenue_share": ratio(cumulative, total),
                "min_spend": cents_to_decimal(int(chosen.min())) if chosen.size else None,
                "max_spend": cents_to_decimal(int(chosen.max())) if chosen.size else None,
                "average_spend": money_ratio(revenue, int(chosen.size)),
            }
        )
    return table


def pareto_table(
    *,
    start: date,
    end: date,
    filters: Filters | None = None,
    a: Decimal = DEFAULT_A,
    b: Decimal = DEFAULT_B,
) -> dict:
    """Pareto classes A/B/C (customers, revenue and their shares), the share of revenue of the
    top 20% of customers (deciles 1-2), and the curve: cumulative revenue share at each whole
    percent of customers."""
    return pareto_of(spend_ranked(period=Period(start, end), filters=filters), a=a, b=b)


def pareto_of(spend: np.ndarray, *, a: Decimal = DEFAULT_A, b: Decimal = DEFAULT_B) -> dict:
    """pareto_table's figures for the ordered spend (cents) of customer_revenue."""
    n, total = int(spend.size), int(spend.sum())
    before = np.cumsum(spend) - spend
    # Exact comparison in integers: before / total < a  <=>  before * den < num * total.
    a_frac, b_frac = Fraction(str(a)), Fraction(str(b))
    if total:
        is_a = before * a_frac.denominator < a_frac.numerator * total
        is_b = ~is_a & (before * b_frac.denominator < b_frac.numerator * total)
    else:
        is_a, is_b = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    is_c = ~is_a & ~is_b
    classes = []
    for name, mask in (("A", is_a), ("B", is_b), ("C", is_c)):
        revenue = int(spend[mask].sum())
        classes.append(
            {
                "pareto_class": name,
                "customers": int(mask.sum()),
                "customer_share": ratio(int(mask.sum()), n),
                "revenue": cents_to_decimal(revenue),
                "revenue_share": ratio(revenue, total),
            }
        )
    cumulative = np.cumsum(spend)
    curve = []
    for percent in range(1, CURVE_POINTS + 1):
        count = -(-n * percent // CURVE_POINTS)  # ceil: the customers within that share
        curve.append(
            {
                "customer_share": percent / CURVE_POINTS,
                "customers": count,
                "revenue_share": ratio(int(cumulative[count - 1]), total) if count else None,
            }
        )
    top = int(spend[_deciles(n) <= 2].sum())
    return {
        "customers": n,
        "revenue": cents_to_decimal(total),
        "a_threshold": a,
        "b_threshold": b,
        "top_20_customers": int((_deciles(n) <= 2).sum()),
        "top_20_revenue_share": ratio(top, total),
        "classes": classes,
        "curve": curve,
    }
