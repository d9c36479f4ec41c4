"""Goals in templates: ``{% goals_panel user %}`` (the dashboard's panel of current goals) and
the filters that print a KPI value or a goal's target the way people read them."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.translation import gettext as _

from analytics.forms_goals import plain
from analytics.goals import COUNTS, MONEY, analytics_today, goals_for_dashboard
from analytics.models import RATE_KPIS, GoalTargetKind
from crm import number_formats
from crm.templatetags.crm_tags import money

register = template.Library()


@register.inclusion_tag("analytics/_goals_panel.html")
def goals_panel(user, today=None, rows=None):
    """Current goals with actual vs target, progress and status; renders alone too. ``rows``:
    the panel's goals_for_dashboard if already computed (the dashboard computes them while
    its other figures are read)."""
    can_view = bool(user and user.is_authenticated and user.has_perm("analytics.view_goal"))
    if rows is None:
        rows = goals_for_dashboard(user=user, today=today or analytics_today())
    return {
        "can_view": can_view,
        "can_add": can_view and user.has_perm("analytics.add_goal"),
        "rows": rows,
    }


def _percent(value: Decimal, digits: int = 1) -> str:
    return f"{number_formats.number(float(value) * 100, digits)}%"


@register.filter
def goal_value(value, kpi: str) -> str:
    """A KPI value: rates in percent, amounts as money, counts whole, ratios with two
    decimals; an em dash without a value."""
    if value is None or value == "":
        return "—"
    value = Decimal(value)
    if kpi in RATE_KPIS:
        return _percent(value)
    if kpi in MONEY:
        return money(value)
    if kpi in COUNTS:
        return number_formats.number(value, 0, force_grouping=True)
    return number_formats.number(value, 2, force_grouping=True)


@register.filter
def goal_target(goal) -> str:
    """How the goal was set: the value to reach, or the change ("+5 points", "+10%")."""
    if goal.target_kind == GoalTargetKind.ABSOLUTE:
        return goal_value(goal.target, goal.kpi)
    sign = "+" if goal.target > 0 else "−"
    size = abs(goal.target) * 100
    number = number_formats.number(plain(size))
    if goal.kpi in RATE_KPIS:
        return _("%(sign)s%(number)s points") % {"sign": sign, "number": number}
    return f"{sign}{number}%"


@register.filter
def share(value) -> str:
    """An attainment (1 = 100%) in whole percent."""
    if value is None:
        return "—"
    return f"{number_formats.number(value * 100, 0)}%"
