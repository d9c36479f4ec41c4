"""What each KPI means, in one place: the dashboard's cards and tooltips, the API's schema
help texts and the README all quote these (DESIGN.md, "Definitions", is the source).

``kind`` tells how a figure is shown and compared: counts and amounts change in per cent of
the earlier value, rates (fractions 0-1) in percentage points.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

COUNT, MONEY, RATE, NUMBER = "count", "money", "rate", "number"


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    definition: str
    kind: str


KPIS: tuple[Kpi, ...] = (
    Kpi(
        "customers",
        _("Customers"),
        _("Customer records created by the end of the period and not erased by then."),
        COUNT,
    ),
    Kpi(
        "active_customers",
        _("Active customers"),
        _("Customers with a completed purchase in the period."),
        COUNT,
    ),
    Kpi(
        "new_customers",
        _("New customers"),
        _("Customers whose first completed purchase ever is in the period."),
        COUNT,
    ),
    Kpi(
        "repeat_rate",
        _("Repeat rate"),
        _(
            "Share of the period's active customers with two or more completed purchases "
            "up to the end of the period."
        ),
        RATE,
    ),
    Kpi(
        "retention_rate",
        _("Retention rate"),
        _(
            "Share of the previous equal-length period's active customers who are active "
            "in this period."
        ),
        RATE,
    ),
    Kpi("churn_rate", _("Churn rate"), _("1 - retention rate."), RATE),
    Kpi(
        "purchases_per_customer",
        _("Purchases per customer"),
        _("Completed purchases in the period / active customers."),
        NUMBER,
    ),
    Kpi(
        "spend_per_customer",
        _("Spend per customer"),
        _("Revenue of the period / active customers."),
        MONEY,
    ),
    Kpi(
        "aov",
        _("Average order value"),
        _("Revenue of the period / completed purchases in the period."),
        MONEY,
    ),
    Kpi(
        "revenue",
        _("Revenue"),
        _("Total of the completed purchases in the period (cancelled and refunded excluded)."),
        MONEY,
    ),
    Kpi("purchases", _("Purchases"), _("Completed purchases in the period."), COUNT),
    Kpi(
        "average_ltv",
        _("Average LTV"),
        _(
            "Historical lifetime value of the customers acquired in the period's months "
            "(month of first purchase): their cumulative revenue so far / their number."
        ),
        MONEY,
    ),
)

BY_KEY = {kpi.key: kpi for kpi in KPIS}

# The pictures' definitions, shown under their headings.
PARETO = _(
    "Active customers of the period ordered by their revenue in it, highest first: the "
    "cumulative share of revenue against the share of customers. The top 20% are deciles 1-2."
)
DECILES = _(
    "The same order cut into ten groups of equal size: decile 1 is the top 10%; decile of "
    "the i-th of n customers = floor(10 (i - 1) / n) + 1."
)
COHORTS = _(
    "Cohort = month of first completed purchase. Retention at month k = share of the cohort "
    "with a purchase in month first + k."
)
LTV = _("Historical LTV = the cohort's cumulative revenue so far / the cohort's size.")
RFM = _(
    "Customers of the latest scoring run by recency score (rows, 5 = most recent) and "
    "frequency score (columns, 5 = most purchases)."
)


def help_text(key: str) -> str:
    """The definition of the KPI ``key`` (for schema help texts)."""
    return BY_KEY[key].definition
