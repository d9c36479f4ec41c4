"""Goals: numeric targets for the KPIs, their progress, and the actions that write them.

A goal (analytics.models.Goal) targets one KPI of ``analytics.kpis.kpis()`` over the calendar
dates start..end. Its **target value** is ``target`` for an absolute goal; for a change goal it
is the frozen ``baseline`` (the KPI over the equal-length period just before ``start``) plus
``target`` points for a rate (clamped to 0-1), or ``baseline x (1 + target)`` for an amount or
a count. Rates, points and percents are fractions (0.05 = 5 points or 5%).

Progress of a goal on a day ``today`` (``goal_progress``):

- **as of**: min(today, end); **actual** = the KPI over start..as-of (kpis(), so a rate so far
  is over the days elapsed; today's purchases count as far as the rollups have them).
- **higher or lower is better**: only the churn rate is better lower; "meets X" means actual
  >= X, or actual <= X for the churn rate.
- **attainment** (share of the target reached, 1 = 100%): for a change goal, the share of the
  planned change made so far, (actual - baseline) / (target value - baseline); for an absolute
  goal, actual / target value (lower is better: target value / actual). It may exceed 1 or be
  negative; the progress bar shows it clamped to 0-100%. None without an actual or a target.
- **expected by now**: the fraction of the period elapsed, f = (as-of - start + 1) / days
  (today counts as a whole day). Cumulative KPIs (revenue, purchases, new customers, active
  customers) grow through the period: target value x f (a straight-line pace). Customers on
  record is a stock: baseline + (target value - baseline) x f (the target value itself without
  a baseline). Rates and ratios (repeat, retention, churn, AOV, per-customer figures) should
  sit at the target all along: the target value itself.
- **status**:
  ``not_started`` before ``start``;
  ``achieved`` after ``end`` if the actual meets the target value, or during the period once a
  cumulative KPI meets it (it only grows);
  ``missed`` after ``end`` otherwise (also when there is no actual or no target value);
  ``on_track`` during the period if the actual meets the expected-by-now value;
  ``off_track`` during the period otherwise (also when there is no actual or no target value,
  e.g. a rate with no customers to count yet).

The baseline is frozen so that "+5 points" stays measured against the value the goal was set
against: at creation when the previous period is over (start <= today), otherwise by the first
progress computation on or after ``start``; an edit of the KPI or the period recomputes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.core.cache import cache
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from analytics.kpis import Period, kpis, kpis_for_periods, rollup_version, shift_years
from analytics.models import RATE_KPIS, Goal, GoalKpi, GoalTargetKind
from analytics.rollups import local_day

LOWER_IS_BETTER = frozenset({GoalKpi.CHURN_RATE})
CUMULATIVE = frozenset(
    {GoalKpi.REVENUE, GoalKpi.PURCHASES, GoalKpi.NEW_CUSTOMERS, GoalKpi.ACTIVE_CUSTOMERS}
)
STOCKS = frozenset({GoalKpi.CUSTOMERS})
COUNTS = frozenset(
    {GoalKpi.CUSTOMERS, GoalKpi.ACTIVE_CUSTOMERS, GoalKpi.NEW_CUSTOMERS, GoalKpi.PURCHASES}
)
MONEY = frozenset({GoalKpi.REVENUE, GoalKpi.AOV, GoalKpi.SPEND_PER_CUSTOMER})

EARLIEST = date(1900, 1, 1)
LATEST = date(2999, 12, 31)
MAX_YEARS = 10
MAX_AMOUNT = Decimal(10**12)
MAX_COUNT = Decimal(2**31 - 1)
MAX_CHANGE = Decimal(100)  # +10,000%: beyond it a "change" is a typo
STORED = Decimal("0.000001")  # the model's six decimal places
# Figures of a period are cached until the next rollup refresh (the version is in the key).
FIGURES_CACHE_SECONDS = 300
# The dashboard panel also shows goals that ended or start within this many days.
PANEL_WINDOW_DAYS = 31
PANEL_LIMIT = 12


class GoalStatus(models.TextChoices):
    NOT_STARTED = "not_started", _("Not started")
    ON_TRACK = "on_track", _("On track")
    OFF_TRACK = "off_track", _("Off track")
    ACHIEVED = "achieved", _("Achieved")
    MISSED = "missed", _("Missed")


STATUS_HELP = {
    GoalStatus.NOT_STARTED: _("The period has not begun."),
    GoalStatus.ON_TRACK: _(
        "During the period, the actual meets the value expected by now: for revenue, "
        "purchases, new and active customers the target times the share of the period "
        "elapsed; for customers on record the baseline plus that share of the planned change; "
        "for rates and ratios the target itself."
    ),
    GoalStatus.OFF_TRACK: _(
        "During the period, the actual falls short of the value expected by now, or there is "
        "no figure yet."
    ),
    GoalStatus.ACHIEVED: _(
        "The period is over and the actual meets the target, or a cumulative KPI (revenue, "
        "purchases, new or active customers) has already reached it."
    ),
    GoalStatus.MISSED: _("The period is over and the actual falls short of the target."),
}


def analytics_today() -> date:
    """Today in the organisation's time zone (the KPIs' calendar)."""
    return local_day(timezone.now())


# --- Figures ----------------------------------------------------------------------------------


def as_decimal(value) -> Decimal | None:
    """A KPI value as a Decimal with the model's six places (rates are floats in kpis())."""
    if value is None:
        return None
    return Decimal(str(value)).quantize(STORED, rounding=ROUND_HALF_UP)


def _figures_key(version: int, period: Period) -> str:
    return f"analytics:goal-figures:{version}:{period.start.isoformat()}:{period.end.isoformat()}"


def period_figures(start: date, end: date) -> dict:
    """kpis() of start..end, cached until the rollups change (the version is in the key)."""
    key = _figures_key(rollup_version(), Period(start, end))
    figures = cache.get(key)
    if figures is None:
        figures = kpis(start=start, end=end)
        cache.set(key, figures, FIGURES_CACHE_SECONDS)
    return figures


def prefetch_figures(periods) -> None:
    """Compute the figures of every period not cached yet in one read of the rollups, as
    kpis_with_comparisons() does for its three periods: a page of goals reads the months
    their overlapping periods share once, not once per goal."""
    version = rollup_version()
    wanted = {_figures_key(version, period): period for period in set(periods)}
    cached = cache.get_many(list(wanted))
    todo = [period for key, period in wanted.items() if key not in cached]
    if not todo:
        return
    figures = kpis_for_periods(todo)
    cache.set_many(
        {
            _figures_key(version, period): values
            for period, values in zip(todo, figures, strict=True)
        },
        FIGURES_CACHE_SECONDS,
    )


def periods_needed(goal: Goal, *, today: date) -> list[Period]:
    """The periods whose figures ``goal_progress(goal, today=today)`` reads."""
    if today < goal.start:
        return []
    periods = [Period(goal.start, min(today, goal.end))]
    if goal.baseline is None:
        periods.append(baseline_period(goal.start, goal.end))
    return periods


def kpi_value(kpi: str, start: date, end: date) -> Decimal | None:
    return as_decimal(period_figures(start, end)[kpi])


def baseline_period(start: date, end: date) -> Period:
    return Period(start, end).previous()


def compute_baseline(kpi: str, start: date, end: date) -> Decimal | None:
    previous = baseline_period(start, end)
    return kpi_value(kpi, previous.start, previous.end)


def target_value(goal: Goal) -> Decimal | None:
    """The value the KPI should reach (see the module's docstring); None for a change goal
    without a baseline yet."""
    if goal.target_kind == GoalTargetKind.ABSOLUTE:
        return goal.target
    if goal.baseline is None:
        return None
    if goal.kpi in RATE_KPIS:
        return min(max(goal.baseline + goal.target, Decimal(0)), Decimal(1))
    return (goal.baseline * (1 + goal.target)).quantize(STORED, rounding=ROUND_HALF_UP)


def meets(kpi: str, actual: Decimal, threshold: Decimal) -> bool:
    return actual <= threshold if kpi in LOWER_IS_BETTER else actual >= threshold


# --- Progress ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    goal: Goal
    status: str
    as_of: date | None  # the last day the actual covers (None: not started)
    actual: Decimal | None
    target_value: Decimal | None
    expected: Decimal | None
    attainment: float | None  # 1.0 = 100% of the target reached
    elapsed_days: int
    days: int

    @property
    def percent(self) -> int:
        """The attainment as a progress bar's width, 0-100."""
        if self.attainment is None:
            return 0
        return round(min(max(self.attainment, 0.0), 1.0) * 100)

    @property
    def status_label(self) -> str:
        return GoalStatus(self.status).label

    @property
    def status_help(self) -> str:
        return STATUS_HELP[GoalStatus(self.status)]

    @property
    def lower_is_better(self) -> bool:
        return self.goal.kpi in LOWER_IS_BETTER


def _attainment(goal: Goal, actual, target) -> float | None:
    if actual is None or target is None:
        return None
    baseline = goal.baseline
    if goal.target_kind == GoalTargetKind.CHANGE and baseline is not None and target != baseline:
        return float((actual - baseline) / (target - baseline))
    if goal.kpi in LOWER_IS_BETTER:
        return float(target / actual) if actual else 1.0
    return float(actual / target) if target else 1.0


def _expected(goal: Goal, target, share: Decimal) -> Decimal | None:
    if target is None:
        return None
    if goal.kpi in CUMULATIVE:
        return (target * share).quantize(STORED, rounding=ROUND_HALF_UP)
    if goal.kpi in STOCKS and goal.baseline is not None:
        return (goal.baseline + (target - goal.baseline) * share).quantize(
            STORED, rounding=ROUND_HALF_UP
        )
    return target


def freeze_baseline(goal: Goal, *, today: date) -> None:
    """Store the goal's baseline once its period is over (see the module's docstring). The
    UPDATE only fills an empty baseline, so two requests at once store the same value."""
    if goal.baseline is not None or goal.start > today:
        return
    value = compute_baseline(goal.kpi, goal.start, goal.end)
    if value is None:
        return
    Goal.objects.filter(pk=goal.pk, baseline__isnull=True).update(baseline=value)
    goal.baseline = value


def goal_progress(goal: Goal, *, today: date | None = None) -> Progress:
    """Actual vs target of ``goal`` on ``today`` (default: today in the organisation's
    zone); every rule is in the module's docstring."""
    today = today or analytics_today()
    days = (goal.end - goal.start).days + 1
    if today < goal.start:
        target = target_value(goal)
        return Progress(goal, GoalStatus.NOT_STARTED, None, None, target, None, None, 0, days)
    freeze_baseline(goal, today=today)
    as_of = min(today, goal.end)
    elapsed = (as_of - goal.start).days + 1
    actual = kpi_value(goal.kpi, goal.start, as_of)
    target = target_value(goal)
    expected = _expected(goal, target, Decimal(elapsed) / Decimal(days))
    over = today > goal.end
    if actual is None or target is None:
        status = GoalStatus.MISSED if over else GoalStatus.OFF_TRACK
    elif over:
        status = GoalStatus.ACHIEVED if meets(goal.kpi, actual, target) else GoalStatus.MISSED
    elif goal.kpi in CUMULATIVE and meets(goal.kpi, actual, target):
        status = GoalStatus.ACHIEVED
    else:
        status = GoalStatus.ON_TRACK if meets(goal.kpi, actual, expected) else GoalStatus.OFF_TRACK
    return Progress(
        goal,
        status,
        as_of,
        actual,
        target,
        expected,
        _attainment(goal, actual, target),
        elapsed,
        days,
    )


def progress_of(goals, *, today: date | None = None) -> list[Progress]:
    """``goal_progress`` of each goal, their figures read together first."""
    today = today or analytics_today()
    goals = list(goals)
    prefetch_figures([period for goal in goals for period in periods_needed(goal, today=today)])
    return [goal_progress(goal, today=today) for goal in goals]


# --- Lists ------------------------------------------------------------------------------------


class GoalState(models.TextChoices):
    CURRENT = "current", _("Current")
    UPCOMING = "upcoming", _("Upcoming")
    PAST = "past", _("Past")


def goals_queryset(
    *,
    today: date,
    state: str | None = None,
    owner_id: int | None = None,
    kpi: str | None = None,
):
    """Goals filtered as the list page and the API offer: current (today in the period),
    upcoming (starting later) or past (ended), by owner and by KPI."""
    queryset = Goal.objects.select_related("owner")
    if state == GoalState.CURRENT:
        queryset = queryset.filter(start__lte=today, end__gte=today)
    elif state == GoalState.UPCOMING:
        queryset = queryset.filter(start__gt=today)
    elif state == GoalState.PAST:
        queryset = queryset.filter(end__lt=today)
    if owner_id is not None:
        queryset = queryset.filter(owner_id=owner_id)
    if kpi:
        queryset = queryset.filter(kpi=kpi)
    return queryset


def _panel_order(goal: Goal, *, today: date, user) -> tuple:
    if goal.start <= today <= goal.end:
        rank = 0  # current
    elif goal.start > today:
        rank = 1  # upcoming
    else:
        rank = 2  # just ended
    # The signed-in user's own goals first within each group, then the nearest end.
    return (rank, goal.owner_id != getattr(user, "pk", None), abs((goal.end - today).days))


def goals_for_dashboard(*, today: date | None = None, user) -> list[Progress]:
    """The goals the dashboard shows with their progress: current goals first (the user's
    own first), then those starting or ended within ``PANEL_WINDOW_DAYS``; at most
    ``PANEL_LIMIT``. Empty for a user who may not view goals."""
    if not (user and user.is_authenticated and user.has_perm("analytics.view_goal")):
        return []
    today = today or analytics_today()
    window = timedelta(days=PANEL_WINDOW_DAYS)
    goals = list(
        Goal.objects.select_related("owner").filter(
            start__lte=today + window, end__gte=today - window
        )
    )
    goals.sort(key=lambda goal: _panel_order(goal, today=today, user=user))
    return progress_of(goals[:PANEL_LIMIT], today=today)


# --- Validation -------------------------------------------------------------------------------


# Every (field, code) goal_errors() can report, for the API's schema.
ERROR_CODES = {
    "start": {"out_of_range"},
    "end": {"out_of_range", "before_start", "too_long"},
    "target": {
        "negative",
        "above_100",
        "not_whole",
        "too_large",
        "zero_change",
        "wrong_direction",
    },
    "target_kind": {"no_baseline"},
}


def goal_errors(
    *, kpi: str, start: date, end: date, target_kind: str, target: Decimal, today: date
) -> dict[str, list[tuple[str, str]]]:
    """What is wrong with a goal, as {field: [(code, message)]} (empty: nothing). Targets
    are in stored units: rates and changes as fractions. Shared by the form and the API."""
    errors: dict[str, list[tuple[str, str]]] = {}

    def add(field: str, code: str, message) -> None:
        errors.setdefault(field, []).append((code, str(message)))

    for name, value in (("start", start), ("end", end)):
        if not EARLIEST <= value <= LATEST:
            add(
                name,
                "out_of_range",
                _("Enter a date between %(first)s and %(last)s.")
                % {"first": EARLIEST.isoformat(), "last": LATEST.isoformat()},
            )
    if errors:
        return errors
    if end < start:
        add("end", "before_start", _("The end is before the start."))
    elif end >= shift_years(start, MAX_YEARS):
        add(
            "end",
            "too_long",
            _("A goal's period can be at most %(years)d years long.") % {"years": MAX_YEARS},
        )
    is_rate = kpi in RATE_KPIS
    if target_kind == GoalTargetKind.ABSOLUTE:
        if target < 0:
            add("target", "negative", _("A target cannot be negative."))
        elif is_rate and target > 1:
            add("target", "above_100", _("A rate cannot exceed 100%."))
        elif kpi in COUNTS and target != target.to_integral_value():
            add("target", "not_whole", _("A count is a whole number."))
        elif target > (MAX_COUNT if kpi in COUNTS else MAX_AMOUNT):
            add("target", "too_large", _("This target is too large."))
        return errors
    if target == 0:
        add("target", "zero_change", _("A change of zero is not a goal."))
    elif kpi in LOWER_IS_BETTER and target > 0:
        add("target", "wrong_direction", _("Lower is better for this KPI: enter a decrease."))
    elif kpi not in LOWER_IS_BETTER and target < 0:
        add("target", "wrong_direction", _("Higher is better for this KPI: enter an increase."))
    elif is_rate and abs(target) > 1:
        add("target", "too_large", _("A rate can move by at most 100 points."))
    elif not is_rate and target > MAX_CHANGE:
        add("target", "too_large", _("This change is too large."))
    if errors or start > today or end < start:
        return errors
    # The previous period is over: the baseline is known now, and a change needs one.
    baseline = compute_baseline(kpi, start, end)
    if baseline is None:
        add(
            "target_kind",
            "no_baseline",
            _(
                "The previous period has no figure for this KPI to change from: "
                "set a value to reach instead."
            ),
        )
    elif baseline == 0 and not is_rate:
        add(
            "target_kind",
            "no_baseline",
            _("The previous period's figure is zero: a percent change of it is still zero."),
        )
    return errors


# --- Actions ----------------------------------------------------------------------------------


@transaction.atomic
def create_goal(
    *,
    kpi: str,
    start: date,
    end: date,
    target_kind: str,
    target: Decimal,
    owner,
    note: str = "",
    created_by=None,
    today: date | None = None,
) -> Goal:
    """Save a goal (validated by ``goal_errors``) with its baseline frozen if known."""
    today = today or analytics_today()
    goal = Goal(
        kpi=kpi,
        start=start,
        end=end,
        target_kind=target_kind,
        target=target,
        owner=owner,
        note=note,
        created_by=created_by,
    )
    if start <= today:
        goal.baseline = compute_baseline(kpi, start, end)
    goal.save()
    return goal


@transaction.atomic
def update_goal(
    *,
    goal: Goal,
    kpi: str,
    start: date,
    end: date,
    target_kind: str,
    target: Decimal,
    owner,
    note: str = "",
    today: date | None = None,
) -> Goal:
    """Change a goal; a new KPI or period measures against a new baseline."""
    today = today or analytics_today()
    if (kpi, start, end) != (goal.kpi, goal.start, goal.end):
        goal.baseline = compute_baseline(kpi, start, end) if start <= today else None
    goal.kpi, goal.start, goal.end = kpi, start, end
    goal.target_kind, goal.target, goal.owner, goal.note = target_kind, target, owner, note
    goal.save()
    return goal


@transaction.atomic
def delete_goal(*, goal: Goal) -> None:
    goal.delete()
