"""Scoring runs and their per-customer scores, segments and their membership snapshots.

The exact definitions (recency, quantile cut points, deciles, Pareto classes) are in
``segments/scoring.py`` and in the README ("Scores"); these models only hold the results.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from segments.report_json import ReportDecoder, ReportEncoder


class ScoreMode(models.TextChoices):
    QUANTILE = "quantile", _("Quantiles of the scored customers")
    FIXED = "fixed", _("Fixed thresholds")


class RfmLabel(models.TextChoices):
    CHAMPIONS = "champions", _("Champions")
    LOYAL = "loyal", _("Loyal")
    POTENTIAL_LOYALIST = "potential_loyalist", _("Potential loyalist")
    NEW = "new", _("New")
    PROMISING = "promising", _("Promising")
    NEEDS_ATTENTION = "needs_attention", _("Needs attention")
    ABOUT_TO_SLEEP = "about_to_sleep", _("About to sleep")
    AT_RISK = "at_risk", _("At risk")
    CANNOT_LOSE = "cannot_lose", _("Can't lose them")
    HIBERNATING = "hibernating", _("Hibernating")
    LOST = "lost", _("Lost")


class ParetoClass(models.TextChoices):
    A = "A", _("A (top revenue)")
    B = "B", _("B")
    C = "C", _("C")


class ScoringSettings(models.Model):
    """The one row of scoring settings (id 1): how scores are cut and when the nightly run
    starts. Admins edit it; every run copies it into ``ScoringRun.settings``."""

    # Threshold lists hold the four cut points q1 < q2 < q3 < q4 of a dimension in fixed mode
    # (recency in days, frequency in purchases, monetary in the shop's currency).
    r_mode = models.CharField(
        _("recency scoring"), max_length=10, choices=ScoreMode.choices, default=ScoreMode.QUANTILE
    )
    r_thresholds = models.JSONField(_("recency thresholds (days)"), default=list, blank=True)
    f_mode = models.CharField(
        _("frequency scoring"),
        max_length=10,
        choices=ScoreMode.choices,
        default=ScoreMode.QUANTILE,
    )
    f_thresholds = models.JSONField(_("frequency thresholds"), default=list, blank=True)
    m_mode = models.CharField(
        _("monetary scoring"), max_length=10, choices=ScoreMode.choices, default=ScoreMode.QUANTILE
    )
    m_thresholds = models.JSONField(_("monetary thresholds"), default=list, blank=True)
    window_days = models.PositiveIntegerField(
        _("window (days)"),
        null=True,
        blank=True,
        help_text=_("Only purchases in this many days before the as-of date; empty: all history."),
    )
    pareto_a_share = models.DecimalField(
        _("class A up to revenue share"), max_digits=4, decimal_places=3, default="0.800"
    )
    pareto_b_share = models.DecimalField(
        _("class B up to revenue share"), max_digits=4, decimal_places=3, default="0.950"
    )
    nightly_enabled = models.BooleanField(_("score every night"), default=True)
    nightly_at = models.TimeField(
        _("nightly run at"), default="02:00", help_text=_("In the configured time zone.")
    )
    # The local date the nightly run was last started for: the beat task claims a night by
    # moving it forward with a conditional update, so two beats never start the same night.
    last_nightly_date = models.DateField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("scoring settings")
        verbose_name_plural = _("scoring settings")
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="scoring_settings_single_row"),
            models.CheckConstraint(
                condition=Q(pareto_a_share__gt=0)
                & Q(pareto_a_share__lt=models.F("pareto_b_share"))
                & Q(pareto_b_share__lte=1),
                name="scoring_settings_pareto_order",
            ),
        ]

    def __str__(self) -> str:
        return str(_("Scoring settings"))

    @classmethod
    def load(cls) -> ScoringSettings:
        obj, _created = cls.objects.get_or_create(id=1)
        return obj


class RunStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for a worker")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class RunPhase(models.TextChoices):
    AGGREGATING = "aggregating", _("Adding up purchases")
    SCORING = "scoring", _("Computing scores")
    WRITING = "writing", _("Saving scores")


class RunTrigger(models.TextChoices):
    NIGHTLY = "nightly", _("Nightly schedule")
    MANUAL = "manual", _("On demand (page)")
    API = "api", _("API")
    COMMAND = "command", _("Command line")


class ScoringRunQuerySet(models.QuerySet):
    def active(self) -> ScoringRunQuerySet:
        return self.filter(status__in=[RunStatus.PENDING, RunStatus.RUNNING])

    def succeeded(self) -> ScoringRunQuerySet:
        return self.filter(status=RunStatus.SUCCEEDED)

    def latest_succeeded(self) -> ScoringRun | None:
        return self.succeeded().order_by("-finished_at", "-id").first()


class ScoringRun(models.Model):
    status = models.CharField(
        _("status"), max_length=10, choices=RunStatus.choices, default=RunStatus.PENDING
    )
    trigger = models.CharField(_("started by"), max_length=10, choices=RunTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    as_of = models.DateField(
        _("as of"),
        null=True,
        blank=True,
        help_text=_(
            "Recency is counted up to this date; empty: the day after the newest purchase."
        ),
    )
    window_days = models.PositiveIntegerField(_("window (days)"), null=True, blank=True)
    settings = models.JSONField(_("settings"), default=dict, blank=True)
    created_at = models.DateTimeField(_("requested at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration_seconds = models.FloatField(_("duration (s)"), null=True, blank=True)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    phase = models.CharField(_("phase"), max_length=100, choices=RunPhase.choices, blank=True)
    # Moved forward at every phase: a running run whose worker died stops moving and is
    # failed by the beat task (segments.runs.fail_stale_runs).
    progressed_at = models.DateTimeField(null=True, blank=True, editable=False)
    customers_scored = models.PositiveIntegerField(_("customers scored"), default=0)
    purchases_counted = models.PositiveBigIntegerField(_("purchases counted"), default=0)
    revenue = models.DecimalField(_("revenue"), max_digits=18, decimal_places=2, default=0)
    counts = models.JSONField(
        _("counts"), default=dict, blank=True, help_text=_("Customers per RFM label and class.")
    )
    error = models.TextField(_("error"), blank=True)

    objects = ScoringRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("scoring run")
        verbose_name_plural = _("scoring runs")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "-finished_at"], name="scoringrun_status_idx")]
        permissions = [("run_scoring", _("Can start a scoring run"))]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_status_display()}"

    @property
    def is_active(self) -> bool:
        return self.status in (RunStatus.PENDING, RunStatus.RUNNING)


class CustomerScore(models.Model):
    """One customer's scores in one run. Only customers with at least one completed purchase
    in the run's window are scored (recency is undefined without a purchase)."""

    # A run writes a million of these rows at once (segments.runs, COPY). Database foreign
    # keys would check and lock the run and the customer row by row at commit, the larger
    # part of the write (tests/bench/bench_scoring.py); the rows come only from that code,
    # from ids it has just read, and Django's on_delete still deletes them with their
    # customer or run. The composite indexes below cover both columns, so no FK index.
    run = models.ForeignKey(
        ScoringRun,
        verbose_name=_("run"),
        on_delete=models.CASCADE,
        related_name="scores",
        db_constraint=False,
        db_index=False,
    )
    customer = models.ForeignKey(
        "customers.Customer",
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="scores",
        db_constraint=False,
        db_index=False,
    )
    recency_days = models.PositiveIntegerField(_("recency (days)"))
    frequency = models.PositiveIntegerField(_("frequency"))
    monetary = models.DecimalField(_("monetary"), max_digits=16, decimal_places=2)
    first_purchase_on = models.DateField(_("first purchase"))
    last_purchase_on = models.DateField(_("last purchase"))
    r = models.PositiveSmallIntegerField("R")
    f = models.PositiveSmallIntegerField("F")
    m = models.PositiveSmallIntegerField("M")
    rfm_code = models.CharField(_("RFM code"), max_length=3)
    rfm_label = models.CharField(_("RFM label"), max_length=20, choices=RfmLabel.choices)
    decile = models.PositiveSmallIntegerField(_("decile"))
    cumulative_share = models.FloatField(
        _("cumulative revenue share"), help_text=_("Fraction 0-1, this customer included.")
    )
    pareto_class = models.CharField(_("Pareto class"), max_length=1, choices=ParetoClass.choices)
    top20 = models.BooleanField(_("top 20%"))

    class Meta:
        verbose_name = _("customer score")
        verbose_name_plural = _("customer scores")
        constraints = [
            models.UniqueConstraint(fields=["run", "customer"], name="score_one_per_run"),
            models.CheckConstraint(
                condition=Q(r__range=(1, 5)) & Q(f__range=(1, 5)) & Q(m__range=(1, 5)),
                name="score_rfm_range",
            ),
            models.CheckConstraint(condition=Q(decile__range=(1, 10)), name="score_decile_range"),
        ]
        indexes = [
            # The customer's history across runs (360 page, migration between runs).
            models.Index(fields=["customer", "run"], name="score_customer_idx"),
            # Segment rules on the label or decile read a fifth or less of a run's rows; without
            # these a live count scans the whole run (~150 ms at a million customers).
            models.Index(fields=["run", "rfm_label"], name="score_run_label_idx"),
            models.Index(fields=["run", "decile"], name="score_run_decile_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.rfm_code}"


class RunReport(models.Model):
    """A figure of one succeeded run (R×F grid, label distribution, deciles, Pareto curve,
    migration from an earlier run), computed once after the run: a run's scores never change,
    and grouping a million of them takes about a second, too long for a page's first visit
    (the RFM page, the analytics dashboard) even with an empty cache."""

    run = models.ForeignKey(
        ScoringRun, verbose_name=_("run"), on_delete=models.CASCADE, related_name="reports"
    )
    key = models.CharField(_("report"), max_length=100)
    payload = models.JSONField(_("figures"), encoder=ReportEncoder, decoder=ReportDecoder)
    computed_at = models.DateTimeField(_("computed at"), auto_now_add=True)

    class Meta:
        verbose_name = _("run report")
        verbose_name_plural = _("run reports")
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="run_report_unique")]

    def __str__(self) -> str:
        return f"{self.run_id} {self.key}"


class SegmentKind(models.TextChoices):
    DYNAMIC = "dynamic", _("Dynamic (re-evaluated)")
    STATIC = "static", _("Static (frozen list)")


class Segment(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(
        _("kind"), max_length=10, choices=SegmentKind.choices, default=SegmentKind.DYNAMIC
    )
    rules = models.JSONField(_("rules"), default=dict, help_text=_("See segments/rules.py."))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # Snapshot bookkeeping: the members table holds the last refresh's result.
    member_count = models.PositiveIntegerField(_("members"), default=0)
    refreshed_at = models.DateTimeField(_("members refreshed at"), null=True, blank=True)
    refresh_requested_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SegmentMember(models.Model):
    """The segment's members at its last refresh (for a static segment: the frozen list)."""

    segment = models.ForeignKey(
        Segment, verbose_name=_("segment"), on_delete=models.CASCADE, related_name="members"
    )
    customer = models.ForeignKey(
        "customers.Customer",
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="segment_memberships",
    )

    class Meta:
        verbose_name = _("segment member")
        verbose_name_plural = _("segment members")
        constraints = [
            models.UniqueConstraint(fields=["segment", "customer"], name="segment_member_once")
        ]
        indexes = [models.Index(fields=["customer"], name="segment_member_customer_idx")]

    def __str__(self) -> str:
        return f"{self.segment_id}:{self.customer_id}"


class SegmentSize(models.Model):
    """A segment's size after each refresh: the size history on its page."""

    segment = models.ForeignKey(
        Segment, verbose_name=_("segment"), on_delete=models.CASCADE, related_name="sizes"
    )
    measured_at = models.DateTimeField(_("measured at"), default=timezone.now)
    size = models.PositiveIntegerField(_("size"))
    run = models.ForeignKey(
        ScoringRun,
        verbose_name=_("scoring run"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("segment size")
        verbose_name_plural = _("segment sizes")
        ordering = ["-measured_at"]
        indexes = [models.Index(fields=["segment", "-measured_at"], name="segment_size_idx")]

    def __str__(self) -> str:
        return f"{self.segment_id} {self.size}"
