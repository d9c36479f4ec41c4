"""A campaign's results (Check of PDCA): what the review page, its CSV, the campaign list and
the API show. ``campaign_results(campaign)`` computes them; ``goal_attainment_for(campaigns)``
gives a page of the campaign list its rates and goal badges without recomputing every campaign.

Definitions (the page repeats them as notes; tests count each one independently):

- **delivered**: messages with status sent. Holdout members are never delivered; bounced,
  failed, skipped and waiting messages are not delivered.
- **opened**: delivered messages with at least one human open (``first_opened_at`` set by the
  tracking drain from human events only); open rate = opened / delivered. **clicked** likewise
  with human clicks; click rate = clicked / delivered; click-to-open = clicked / opened.
- **machine opens**: delivered messages with a machine open (privacy proxy, prefetcher) and no
  human open; **machine clicks**: delivered messages with a machine click (link scanner) and no
  human click. Shown apart, never in a rate.
- **unsubscribed**: delivered messages that are the source of an "unsubscribed" suppression;
  unsubscribe rate = unsubscribed / delivered.
- **converted**: a delivered message whose customer has a completed purchase with
  ``purchased_at`` in (sent_at, sent_at + attribution_days]; conversion rate = converted /
  delivered; **attributed revenue** = the sum of the totals of every such purchase. For a holdout
  member the window starts at ``queued_at`` (when the audience was frozen).
- **lift**: conversion rate of the delivered minus that of the holdout (absolute, and relative
  to the holdout's); incremental conversions = (rate_delivered - rate_holdout) x delivered;
  incremental revenue = (revenue per delivered - revenue per holdout member) x delivered; a
  two-proportion z-test says whether the difference is more than chance.
- **provisional**: while now < the last sent_at + attribution_days (and always for an active
  automation) conversions can still come in.
- **per variant**: the same figures per variant, and the best variant compared with each other
  one on the goal's primary metric (click rate with a click goal, else conversion rate with a
  conversion or revenue goal, else open rate); see campaigns.significance.
- **heat map**: delivered messages by weekday and hour (settings.TIME_ZONE) of their first
  human open; a cell's rate = its opens / delivered, so the cells add up to the open rate.
- **by RFM label and decile**: each delivered recipient's score in the latest scoring run that
  finished before the campaign started (else the latest run).
- **goal attainment**: actual / goal per goal; met, not met, provisional (window open) or no goal.

Everything is aggregated in the database: one grouped query over the messages (with the
purchases, suppressions, machine clicks and scores as correlated subqueries, each on an index)
and one for the heat map. The result is cached per campaign under a version that changes with
any new event, suppression, purchase, scoring run or progress of the campaign.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import ExtractHour, ExtractIsoWeekDay
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    EventKind,
    Message,
    MessageStatus,
    Suppression,
    SuppressionReason,
    TrackingEvent,
)
from campaigns.significance import Comparison, Proportion, compare, two_proportion_p_value
from customers.models import Purchase, PurchaseStatus
from segments.models import CustomerScore, RfmLabel, ScoringRun

CACHE_SECONDS = 600
ZERO = Decimal(0)


class Metric(StrEnum):
    OPEN = "open_rate"
    CLICK = "click_rate"
    CONVERSION = "conversion_rate"
    REVENUE = "revenue"


METRIC_NAMES = {
    Metric.OPEN: _("open rate"),
    Metric.CLICK: _("click rate"),
    Metric.CONVERSION: _("conversion rate"),
    Metric.REVENUE: _("attributed revenue"),
}


# What each figure means, for the page's notes and tooltips (see the module docstring).
DEFINITIONS = {
    "delivered": _(
        "Messages accepted by the mail server (status sent). Bounced, failed and held-out "
        "recipients are not delivered."
    ),
    Metric.OPEN: _(
        "Delivered messages opened at least once by a person / delivered. Opens by privacy "
        "proxies and prefetchers are counted apart and excluded."
    ),
    Metric.CLICK: _(
        "Delivered messages with at least one click by a person / delivered. Clicks by link "
        "scanners are counted apart and excluded."
    ),
    "click_to_open": _("Messages clicked / messages opened."),
    "unsubscribe_rate": _(
        "Delivered messages whose recipient unsubscribed through them / delivered."
    ),
    Metric.CONVERSION: _(
        "Delivered messages whose customer completed a purchase within the attribution window "
        "after the send / delivered. Cancelled and refunded purchases do not count."
    ),
    Metric.REVENUE: _(
        "Sum of the completed purchases of recipients within the attribution window after "
        "their message was sent."
    ),
    "machine": _(
        "Delivered messages opened (or clicked) only by machines: privacy proxies such as "
        "Apple Mail Privacy Protection, prefetchers and link scanners."
    ),
    "lift": _(
        "Conversion rate of the delivered recipients minus that of the holdout, who were kept "
        "out of the send; their window starts when the audience was frozen."
    ),
    "heat_map": _(
        "Delivered messages by weekday and hour of their first opening by a person (local "
        "time); each cell's share is of the delivered messages, so the cells add up to the "
        "open rate."
    ),
}


class GoalState(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    PROVISIONAL = "provisional"
    NO_GOAL = "no_goal"
    # Nothing delivered yet: a draft, a scheduled campaign, an automation that has not fired.
    NOT_STARTED = "not_started"
    # The list has no stored conversions for a campaign whose review was never computed.
    UNKNOWN = "unknown"


GOAL_STATE_NAMES = {
    GoalState.MET: _("Met"),
    GoalState.NOT_MET: _("Not met"),
    GoalState.PROVISIONAL: _("Provisional"),
    GoalState.NO_GOAL: _("No goal"),
    GoalState.NOT_STARTED: _("Nothing delivered yet"),
    GoalState.UNKNOWN: _("Not computed yet"),
}


def _ratio(part, whole) -> float | None:
    return float(part) / float(whole) if whole else None


@dataclass(frozen=True)
class Figures:
    """Counts of one group of messages and the rates derived from them."""

    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    machine_opened: int = 0
    machine_clicked: int = 0
    unsubscribed: int = 0
    converted: int = 0
    revenue: Decimal = ZERO

    @property
    def open_rate(self) -> float | None:
        return _ratio(self.opened, self.delivered)

    @property
    def click_rate(self) -> float | None:
        return _ratio(self.clicked, self.delivered)

    @property
    def click_to_open(self) -> float | None:
        return _ratio(self.clicked, self.opened)

    @property
    def unsubscribe_rate(self) -> float | None:
        return _ratio(self.unsubscribed, self.delivered)

    @property
    def conversion_rate(self) -> float | None:
        return _ratio(self.converted, self.delivered)

    @property
    def revenue_per_recipient(self) -> Decimal | None:
        return self.revenue / self.delivered if self.delivered else None

    def __add__(self, other: Figures) -> Figures:
        return Figures(*(getattr(self, name) + getattr(other, name) for name in _FIGURE_FIELDS))

    def rate(self, metric: Metric) -> float | Decimal | None:
        return self.revenue if metric == Metric.REVENUE else getattr(self, metric.value)

    def successes(self, metric: Metric) -> int:
        return {Metric.OPEN: self.opened, Metric.CLICK: self.clicked}.get(metric, self.converted)


_FIGURE_FIELDS = tuple(f.name for f in fields(Figures))


@dataclass(frozen=True)
class VariantResult:
    variant_id: int
    label: str
    subject: str
    figures: Figures


@dataclass(frozen=True)
class Holdout:
    members: int
    converted: int
    revenue: Decimal

    @property
    def conversion_rate(self) -> float | None:
        return _ratio(self.converted, self.members)

    @property
    def revenue_per_member(self) -> Decimal | None:
        return self.revenue / self.members if self.members else None


@dataclass(frozen=True)
class Lift:
    """Delivered against holdout (see the module's definitions)."""

    absolute: float
    relative: float | None
    incremental_conversions: float
    incremental_revenue: Decimal
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


@dataclass(frozen=True)
class GoalResult:
    metric: Metric
    goal: Decimal | None
    actual: float | Decimal | None
    state: GoalState

    @property
    def name(self):
        return METRIC_NAMES[self.metric]

    @property
    def state_name(self):
        return GOAL_STATE_NAMES[self.state]

    @property
    def attainment(self) -> float | None:
        """actual / goal (1.0 = exactly the goal)."""
        if self.goal is None or self.actual is None or not self.goal:
            return None
        return float(self.actual) / float(self.goal)


@dataclass(frozen=True)
class Group:
    """A breakdown row (an RFM label, a decile); ``key`` "" = no score in the run. The label
    is looked up when shown: cached results serve every language."""

    key: str
    figures: Figures

    @property
    def label(self) -> str:
        if not self.key:
            return str(_("No score"))
        return str(dict(RfmLabel.choices).get(self.key, self.key))


@dataclass(frozen=True)
class CampaignResults:
    campaign_id: int
    computed_at: datetime
    total: Figures
    variants: list[VariantResult]
    holdout: Holdout | None
    lift: Lift | None
    primary_metric: Metric
    comparison: Comparison
    goals: list[GoalResult]
    last_sent_at: datetime | None
    window_closes_at: datetime | None
    provisional: bool
    # heat_map[weekday 0 = Monday][hour] = delivered messages first opened then.
    heat_map: list[list[int]] = field(default_factory=list)
    by_rfm: list[Group] = field(default_factory=list)
    by_decile: list[Group] = field(default_factory=list)
    scoring_run_id: int | None = None

    @property
    def primary_metric_name(self):
        return METRIC_NAMES[self.primary_metric]

    def verdicts(self) -> list[str]:
        """The significance verdicts in the active language."""
        return self.comparison.verdicts(str(self.primary_metric_name))

    @property
    def suggested_winner_id(self) -> int | None:
        winner = self.comparison.winner
        if winner is None:
            return None
        return next((v.variant_id for v in self.variants if v.label == winner.label), None)


# --- Computing ----------------------------------------------------------------------------------


def campaign_results(campaign: Campaign) -> CampaignResults:
    """The campaign's results, from the cache while nothing they depend on has changed."""
    key = f"campaigns:results:{campaign.pk}:{_version(campaign)}"
    results = cache.get(key)
    if results is None:
        results = compute_results(campaign)
        cache.set(key, results, CACHE_SECONDS)
        _store_summary(campaign, results)
    return results


def _version(campaign: Campaign) -> str:
    """Changes whenever the results may: the campaign's own progress (updated_at moves with
    every batch and status change) and the newest event, suppression, purchase and run."""
    latest = [
        model.objects.aggregate(latest=Max("pk"))["latest"] or 0
        for model in (TrackingEvent, Suppression, Purchase, ScoringRun)
    ]
    stamp = campaign.updated_at.timestamp() if campaign.updated_at else 0
    return f"{stamp}:{':'.join(map(str, latest))}"


def scoring_run_for(campaign: Campaign) -> ScoringRun | None:
    """The latest scoring run finished before the campaign started, else the latest one."""
    succeeded = ScoringRun.objects.succeeded().order_by("-finished_at", "-id")
    if campaign.started_at:
        before = succeeded.filter(finished_at__lte=campaign.started_at).first()
        if before is not None:
            return before
    return succeeded.first()


def compute_results(campaign: Campaign, *, fast_path: bool | None = None) -> CampaignResults:
    """Everything the review shows, computed now (no cache). ``fast_path``: PostgreSQL's
    set-based query (default on PostgreSQL) or the portable ORM query (tests compare both)."""
    now = timezone.now()
    run = scoring_run_for(campaign)
    run_id = run.pk if run else None
    if fast_path is None:
        fast_path = connection.vendor == "postgresql"
    if fast_path:
        rows = _grouped_messages_postgresql(campaign, run_id=run_id)
    else:
        rows = list(_grouped_messages(campaign, run_id=run_id))
    labels = {v.pk: (v.label, v.subject) for v in campaign.variants.all()}

    by_variant: dict[int, Figures] = defaultdict(Figures)
    by_rfm: dict[str, Figures] = defaultdict(Figures)
    by_decile: dict[str, Figures] = defaultdict(Figures)
    holdout = Holdout(0, 0, ZERO)
    last_sent_at = None
    for row in rows:
        if row["is_holdout"]:
            holdout = Holdout(
                holdout.members + row["delivered"],
                holdout.converted + row["converted"],
                holdout.revenue + (row["revenue"] or ZERO),
            )
            continue
        figures = Figures(**{name: row[name] or 0 for name in _FIGURE_FIELDS})
        by_variant[row["variant_id"]] += figures
        by_rfm[row["rfm_label"] or ""] += figures
        by_decile[str(row["decile"] or "")] += figures
        if row["last_sent_at"] and (last_sent_at is None or row["last_sent_at"] > last_sent_at):
            last_sent_at = row["last_sent_at"]

    total = sum(by_variant.values(), Figures())
    variants = [
        VariantResult(pk, label, subject, by_variant.get(pk, Figures()))
        for pk, (label, subject) in sorted(labels.items(), key=lambda item: item[1][0])
    ]
    window_closes_at = (
        last_sent_at + timedelta(days=campaign.attribution_days) if last_sent_at else None
    )
    provisional = _is_provisional(campaign, window_closes_at, now)
    metric = primary_metric(campaign)
    comparison = compare(
        [Proportion(v.label, v.figures.successes(metric), v.figures.delivered) for v in variants],
        metric=metric.value,
    )
    return CampaignResults(
        campaign_id=campaign.pk,
        computed_at=now,
        total=total,
        variants=variants,
        holdout=holdout if holdout.members else None,
        lift=_lift(total, holdout) if holdout.members and total.delivered else None,
        primary_metric=metric,
        comparison=comparison,
        goals=goal_results(campaign, total, provisional=provisional),
        last_sent_at=last_sent_at,
        window_closes_at=window_closes_at,
        provisional=provisional,
        heat_map=_heat_map(campaign),
        by_rfm=_rfm_groups(by_rfm),
        by_decile=_decile_groups(by_decile),
        scoring_run_id=run.pk if run else None,
    )


def _grouped_messages(campaign: Campaign, *, run_id: int | None):
    """The delivered and holdout messages' counts per (holdout, variant, RFM label, decile)."""
    window = timedelta(days=campaign.attribution_days)
    start = Case(When(is_holdout=True, then=F("queued_at")), default=F("sent_at"))
    purchases = (
        Purchase.objects.completed()
        .filter(
            customer_id=OuterRef("customer_id"),
            purchased_at__gt=OuterRef("attribution_start"),
            purchased_at__lte=OuterRef("attribution_end"),
        )
        .order_by()
        .values("customer_id")
        .annotate(revenue=Sum("total"))
        .values("revenue")
    )
    machine_clicks = TrackingEvent.objects.filter(
        message=OuterRef("pk"), kind=EventKind.CLICK, is_machine=True
    )
    unsubscribes = Suppression.objects.filter(
        source_message=OuterRef("pk"), reason=SuppressionReason.UNSUBSCRIBED
    )
    scores = CustomerScore.objects.filter(run_id=run_id, customer_id=OuterRef("customer_id"))
    delivered = Q(status=MessageStatus.SENT, is_holdout=False)
    return (
        Message.objects.filter(campaign=campaign)
        .filter(Q(is_holdout=True) | delivered)
        .alias(
            attribution_start=start,
            attribution_end=ExpressionWrapper(start + Value(window), DateTimeField()),
            attributed=Subquery(purchases, output_field=DecimalField()),
            machine_click=Exists(machine_clicks),
            unsubscribe=Exists(unsubscribes),
        )
        .annotate(
            rfm_label=Subquery(scores.values("rfm_label")[:1]),
            decile=Subquery(scores.values("decile")[:1]),
        )
        .order_by()
        .values("is_holdout", "variant_id", "rfm_label", "decile")
        .annotate(
            delivered=Count("pk"),
            opened=Count("pk", filter=Q(first_opened_at__isnull=False)),
            clicked=Count("pk", filter=Q(first_clicked_at__isnull=False)),
            machine_opened=Count(
                "pk", filter=Q(opened_by_machine=True, first_opened_at__isnull=True)
            ),
            machine_clicked=Count(
                "pk", filter=Q(machine_click=True, first_clicked_at__isnull=True)
            ),
            unsubscribed=Count("pk", filter=Q(unsubscribe=True)),
            converted=Count("pk", filter=Q(attributed__isnull=False)),
            revenue=Sum("attributed"),
            last_sent_at=Max("sent_at"),
        )
    )


_GROUPED_SQL = """
WITH m AS MATERIALIZED (
    SELECT id, customer_id, variant_id, is_holdout, first_opened_at, first_clicked_at,
        opened_by_machine, sent_at, CASE WHEN is_holdout THEN queued_at ELSE sent_at END AS start
    FROM {message}
    WHERE campaign_id = %(campaign)s AND (is_holdout OR status = %(sent)s)
), conversion AS (
    SELECT m.id, sum(p.total) AS revenue
    FROM m JOIN {purchase} p ON p.customer_id = m.customer_id
    WHERE p.status = %(completed)s
        AND p.purchased_at > m.start AND p.purchased_at <= m.start + %(window)s
        AND p.purchased_at > %(low)s AND p.purchased_at <= %(high)s
    GROUP BY m.id
), machine_click AS (
    SELECT DISTINCT e.message_id AS id
    FROM {event} e JOIN m ON m.id = e.message_id
    WHERE e.kind = %(click)s AND e.is_machine
), unsubscribe AS (
    SELECT DISTINCT s.source_message_id AS id
    FROM {suppression} s JOIN m ON m.id = s.source_message_id
    WHERE s.reason = %(unsubscribed)s
)
SELECT m.is_holdout, m.variant_id, score.rfm_label, score.decile,
    count(*) AS delivered,
    count(m.first_opened_at) AS opened,
    count(m.first_clicked_at) AS clicked,
    count(*) FILTER (WHERE m.opened_by_machine AND m.first_opened_at IS NULL) AS machine_opened,
    count(machine_click.id) FILTER (WHERE m.first_clicked_at IS NULL) AS machine_clicked,
    count(unsubscribe.id) AS unsubscribed,
    count(conversion.id) AS converted,
    sum(conversion.revenue) AS revenue,
    max(m.sent_at) AS last_sent_at
FROM m
LEFT JOIN conversion ON conversion.id = m.id
LEFT JOIN machine_click ON machine_click.id = m.id
LEFT JOIN unsubscribe ON unsubscribe.id = m.id
LEFT JOIN {score} score ON score.run_id = %(run)s AND score.customer_id = m.customer_id
GROUP BY 1, 2, 3, 4
"""


def _grouped_messages_postgresql(campaign: Campaign, *, run_id: int | None) -> list[dict]:
    """The named fast path of ``_grouped_messages`` (same rows): set-based joins instead of
    a subquery per message, so the purchases of the whole send's window are read once (by
    their date index) and hash-joined. JIT compilation cost 2.2 s of 3.5 s at 100,000
    recipients (more than it saves on this query): off for it."""
    window = timedelta(days=campaign.attribution_days)
    bounds = Message.objects.filter(campaign=campaign).aggregate(
        low=Min("queued_at"), high=Max("sent_at")
    )
    low = bounds["low"] or timezone.now()
    high = max(bounds["high"] or low, low) + window
    sql = _GROUPED_SQL.format(
        message=Message._meta.db_table,
        purchase=Purchase._meta.db_table,
        event=TrackingEvent._meta.db_table,
        suppression=Suppression._meta.db_table,
        score=CustomerScore._meta.db_table,
    )
    params = {
        "campaign": campaign.pk,
        "sent": MessageStatus.SENT.value,
        "completed": PurchaseStatus.COMPLETED.value,
        "window": window,
        "low": low,
        "high": high,
        "click": EventKind.CLICK.value,
        "unsubscribed": SuppressionReason.UNSUBSCRIBED.value,
        "run": run_id,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        # Room for the scores' hash and the sorts in memory rather than in batches on disk.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _heat_map(campaign: Campaign) -> list[list[int]]:
    zone = ZoneInfo(settings.TIME_ZONE)
    cells = (
        Message.objects.filter(
            campaign=campaign,
            status=MessageStatus.SENT,
            is_holdout=False,
            first_opened_at__isnull=False,
        )
        .annotate(
            weekday=ExtractIsoWeekDay("first_opened_at", tzinfo=zone),
            hour=ExtractHour("first_opened_at", tzinfo=zone),
        )
        .order_by()
        .values("weekday", "hour")
        .annotate(opened=Count("pk"))
    )
    grid = [[0] * 24 for _day in range(7)]
    for cell in cells:
        grid[cell["weekday"] - 1][cell["hour"]] = cell["opened"]
    return grid


def _rfm_groups(by_label: dict[str, Figures]) -> list[Group]:
    order = [*RfmLabel.values, ""]
    return [Group(key, by_label[key]) for key in order if key in by_label]


def _decile_groups(by_decile: dict[str, Figures]) -> list[Group]:
    order = [*(str(n) for n in range(1, 11)), ""]
    return [Group(key, by_decile[key]) for key in order if key in by_decile]


def _is_provisional(campaign: Campaign, window_closes_at: datetime | None, now: datetime) -> bool:
    if campaign.kind == CampaignKind.AUTOMATION and campaign.status == CampaignStatus.SENDING:
        return True
    if campaign.status in (CampaignStatus.SENDING, CampaignStatus.TESTING, CampaignStatus.PAUSED):
        return True
    return window_closes_at is not None and now < window_closes_at


def _lift(total: Figures, holdout: Holdout) -> Lift:
    rate_t = total.converted / total.delivered
    rate_h = holdout.converted / holdout.members
    absolute = rate_t - rate_h
    per_member = holdout.revenue / holdout.members
    return Lift(
        absolute=absolute,
        relative=absolute / rate_h if rate_h else None,
        incremental_conversions=absolute * total.delivered,
        incremental_revenue=(total.revenue / total.delivered - per_member) * total.delivered,
        p_value=two_proportion_p_value(
            Proportion("delivered", total.converted, total.delivered),
            Proportion("holdout", holdout.converted, holdout.members),
        ),
    )


def primary_metric(campaign: Campaign) -> Metric:
    """The metric variants are compared on: the goal's own (click, else conversion or
    revenue, else open)."""
    if campaign.goal_click_rate is not None:
        return Metric.CLICK
    if campaign.goal_conversion_rate is not None or campaign.goal_revenue is not None:
        return Metric.CONVERSION
    return Metric.OPEN


def _goals(campaign: Campaign) -> dict[Metric, Decimal | None]:
    return {
        Metric.OPEN: campaign.goal_open_rate,
        Metric.CLICK: campaign.goal_click_rate,
        Metric.CONVERSION: campaign.goal_conversion_rate,
        Metric.REVENUE: campaign.goal_revenue,
    }


def goal_results(
    campaign: Campaign, figures: Figures, *, provisional: bool, unknown: frozenset = frozenset()
) -> list[GoalResult]:
    """Each goal against the actual figure. ``unknown``: metrics without a known actual."""
    results = []
    for metric, goal in _goals(campaign).items():
        actual = None if metric in unknown else figures.rate(metric)
        if goal is None:
            state = GoalState.NO_GOAL
        elif not figures.delivered:
            state, actual = GoalState.NOT_STARTED, None
        elif metric in unknown:
            state = GoalState.UNKNOWN
        elif provisional:
            state = GoalState.PROVISIONAL
        elif actual is not None and Decimal(str(actual)) >= Decimal(str(goal)):
            state = GoalState.MET
        else:
            state = GoalState.NOT_MET
        results.append(GoalResult(metric, goal, actual, state))
    return results


# --- The campaign list ----------------------------------------------------------------------

# A summary younger than this is fresh enough for the list while conversions may still come in.
SUMMARY_MAX_AGE = timedelta(hours=1)


def campaigns_needing_summary(*, now: datetime | None = None) -> list[int]:
    """Campaigns whose list figures may be out of date: they sent something and have no
    summary yet, or one older than SUMMARY_MAX_AGE computed while conversions could still
    arrive (before the attribution window closed; automations: always, they keep sending).
    Beat refreshes them, so the list needs nobody to open a review first."""
    now = now or timezone.now()
    candidates = Campaign.objects.filter(
        Exists(Message.objects.filter(campaign=OuterRef("pk"), status=MessageStatus.SENT))
    ).only("pk", "kind", "finished_at", "attribution_days", "results_summary")
    due = []
    for campaign in candidates:
        summary = campaign.results_summary or {}
        if not summary:
            due.append(campaign.pk)
            continue
        computed_at = datetime.fromisoformat(summary["computed_at"])
        if now - computed_at < SUMMARY_MAX_AGE:
            continue
        window_open_until = (
            campaign.finished_at + timedelta(days=campaign.attribution_days)
            if campaign.finished_at
            else None
        )
        if window_open_until is None or computed_at <= window_open_until:
            due.append(campaign.pk)
    return due


def refresh_summary(*, campaign_id: int) -> None:
    """Recompute one campaign's results (and so its stored summary)."""
    campaign = Campaign.objects.get(pk=campaign_id)
    results = compute_results(campaign)
    _store_summary(campaign, results)


def _store_summary(campaign: Campaign, results: CampaignResults) -> None:
    """Keep the conversions for the list, which cannot afford to recompute them."""
    summary = {
        "converted": results.total.converted,
        "revenue": str(results.total.revenue),
        "computed_at": results.computed_at.isoformat(),
    }
    Campaign.objects.filter(pk=campaign.pk).update(results_summary=summary)


@dataclass(frozen=True)
class ListEntry:
    """One campaign's figures on the list: live delivered/opens/clicks, conversions as of the
    last time its review was computed (``conversions_as_of``; None: never)."""

    figures: Figures
    goals: list[GoalResult]
    provisional: bool
    last_sent_at: datetime | None
    conversions_as_of: datetime | None


def goal_attainment_for(campaigns) -> dict[int, ListEntry]:
    """For a page of campaigns, in one query: delivered, opened and clicked counted live, the
    conversions and revenue stored by their last review, and goal attainment."""
    campaigns = list(campaigns)
    counts = {
        row["campaign_id"]: row
        for row in Message.objects.filter(
            campaign__in=campaigns, status=MessageStatus.SENT, is_holdout=False
        )
        .order_by()
        .values("campaign_id")
        .annotate(
            delivered=Count("pk"),
            opened=Count("pk", filter=Q(first_opened_at__isnull=False)),
            clicked=Count("pk", filter=Q(first_clicked_at__isnull=False)),
            last_sent_at=Max("sent_at"),
        )
    }
    now = timezone.now()
    entries = {}
    for campaign in campaigns:
        row = counts.get(campaign.pk, {})
        summary = campaign.results_summary or {}
        figures = Figures(
            delivered=row.get("delivered", 0),
            opened=row.get("opened", 0),
            clicked=row.get("clicked", 0),
            converted=summary.get("converted", 0),
            revenue=Decimal(summary.get("revenue", "0")),
        )
        last_sent_at = row.get("last_sent_at")
        closes = last_sent_at + timedelta(days=campaign.attribution_days) if last_sent_at else None
        provisional = _is_provisional(campaign, closes, now)
        unknown = frozenset() if summary else frozenset({Metric.CONVERSION, Metric.REVENUE})
        entries[campaign.pk] = ListEntry(
            figures=figures,
            goals=goal_results(campaign, figures, provisional=provisional, unknown=unknown),
            provisional=provisional,
            last_sent_at=last_sent_at,
            conversions_as_of=datetime.fromisoformat(summary["computed_at"]) if summary else None,
        )
    return entries
