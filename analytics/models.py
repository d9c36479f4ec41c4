"""Rollups the KPIs are read from, so that no page scans the purchases table.

Distinct customer counts over arbitrary periods are answered with compressed bitmaps of
customer ids (Roaring bitmaps, ``pyroaring``): the union of a year of daily "active" bitmaps
and its intersections with other sets take milliseconds, where COUNT(DISTINCT) over a year of
customer-days takes seconds. Everything here is derived from ``customers.Purchase`` (completed
purchases only) by ``analytics.rollups`` and can be rebuilt from it at any time.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class DailyRollup(models.Model):
    """One calendar day (in settings.TIME_ZONE) of completed purchases."""

    day = models.DateField(_("day"), primary_key=True)
    purchases = models.PositiveIntegerField(_("purchases"), default=0)
    revenue = models.DecimalField(_("revenue"), max_digits=18, decimal_places=2, default=0)
    # Sum of customer_id x purchases of the day: with purchases and revenue, a cheap checksum
    # the nightly verification compares against the purchases table.
    customer_checksum = models.BigIntegerField(_("customer checksum"), default=0, editable=False)
    # Serialized pyroaring.BitMap: customers with a purchase that day (sorted ids)...
    active = models.BinaryField(_("active customers"), default=b"", editable=False)
    # ...and, aligned with those sorted ids, each one's spend in minor units and purchase
    # count (bitmaps.pack_ints): the per-customer figures filters and deciles need.
    amounts = models.BinaryField(_("spend per customer"), default=b"", editable=False)
    counts = models.BinaryField(_("purchases per customer"), default=b"", editable=False)
    # Customers whose first / second completed purchase ever was that day.
    first_buyers = models.BinaryField(_("first-time buyers"), default=b"", editable=False)
    second_buyers = models.BinaryField(_("second-time buyers"), default=b"", editable=False)
    refreshed_at = models.DateTimeField(_("refreshed at"), auto_now=True)

    class Meta:
        verbose_name = _("daily rollup")
        verbose_name_plural = _("daily rollups")
        ordering = ["-day"]
        permissions = [("view_dashboard", _("Can view the analytics figures"))]

    def __str__(self) -> str:
        return self.day.isoformat()


class MonthlyRollup(models.Model):
    """The union of a calendar month's daily rollups (``month`` is its first day): whole
    months of a period are read here instead of 28-31 daily rows."""

    month = models.DateField(_("month"), primary_key=True)
    purchases = models.PositiveIntegerField(_("purchases"), default=0)
    revenue = models.DecimalField(_("revenue"), max_digits=18, decimal_places=2, default=0)
    active = models.BinaryField(_("active customers"), default=b"", editable=False)
    # As in DailyRollup, aligned with the sorted ids of ``active``: each customer's spend in
    # minor units and purchase count over the month, so a year filtered by any set of
    # customers (or ranked by spend) reads 12 arrays instead of 365.
    amounts = models.BinaryField(_("spend per customer"), default=b"", editable=False)
    counts = models.BinaryField(_("purchases per customer"), default=b"", editable=False)
    first_buyers = models.BinaryField(_("first-time buyers"), default=b"", editable=False)
    second_buyers = models.BinaryField(_("second-time buyers"), default=b"", editable=False)

    class Meta:
        verbose_name = _("monthly rollup")
        verbose_name_plural = _("monthly rollups")
        ordering = ["-month"]

    def __str__(self) -> str:
        return self.month.strftime("%Y-%m")


class CustomerHistory(models.Model):
    """Per customer, the days of the first and second completed purchase: global facts that a
    back-dated or cancelled purchase can move, kept here so a refresh can tell whose moved."""

    customer = models.OneToOneField(
        "customers.Customer",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="purchase_history",
        verbose_name=_("customer"),
    )
    first_day = models.DateField(_("first purchase"))
    second_day = models.DateField(_("second purchase"), null=True, blank=True)

    class Meta:
        verbose_name = _("customer purchase history")
        verbose_name_plural = _("customer purchase histories")
        indexes = [
            models.Index(fields=["first_day"], name="analytics_history_first_idx"),
            models.Index(fields=["second_day"], name="analytics_history_second_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.first_day}"


class CohortRevenue(models.Model):
    """Completed purchases of the customers acquired in ``cohort`` (month of their first
    purchase), made in ``month``, by the customers' source channel: the LTV tables."""

    cohort = models.DateField(_("cohort"))
    month = models.DateField(_("month"))
    channel = models.CharField(_("source channel"), max_length=20, blank=True)
    customers = models.PositiveIntegerField(_("customers"))
    purchases = models.PositiveIntegerField(_("purchases"))
    revenue = models.DecimalField(_("revenue"), max_digits=18, decimal_places=2)

    class Meta:
        verbose_name = _("cohort revenue")
        verbose_name_plural = _("cohort revenues")
        constraints = [
            models.UniqueConstraint(
                fields=["month", "cohort", "channel"], name="analytics_cohort_cell_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.cohort:%Y-%m} {self.month:%Y-%m} {self.channel}"


class DirtyDay(models.Model):
    """A day whose purchases changed in a way the id watermark cannot see (an edit, a
    cancellation, a deletion): the next refresh recomputes it (see ``rollups.mark_dirty``)."""

    day = models.DateField(_("day"), primary_key=True)
    marked_at = models.DateTimeField(_("marked at"), auto_now=True)

    class Meta:
        verbose_name = _("day to refresh")
        verbose_name_plural = _("days to refresh")

    def __str__(self) -> str:
        return self.day.isoformat()


class RollupState(models.Model):
    """The single row of refresh bookkeeping; locked while a refresh runs."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    # Purchases with an id up to this one are in the rollups.
    last_purchase_id = models.BigIntegerField(_("last purchase id"), default=0)
    built_at = models.DateTimeField(_("fully built at"), null=True, blank=True)
    refreshed_at = models.DateTimeField(_("refreshed at"), null=True, blank=True)
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    # Bumped by every refresh: the key of the cached customer-attribute bitmaps.
    version = models.PositiveIntegerField(_("version"), default=0, editable=False)

    class Meta:
        verbose_name = _("rollup state")
        verbose_name_plural = _("rollup state")
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="rollup_state_one")]

    def __str__(self) -> str:
        return str(_("Rollups refreshed at %(when)s") % {"when": self.refreshed_at})


class CustomerSnapshot(models.Model):
    """The single row of every customer's attributes the dashboard filters on, as numpy
    arrays indexed by customer id (``analytics.customer_attributes``): a filter's customers
    and their counts come from these in milliseconds, where a query over a million-row
    customers table takes hundreds. Rebuilt by the refresh task; customers created since are
    read live by id."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    built_at = models.DateTimeField(_("built at"))
    # Customers with an id up to this one are in the arrays.
    max_customer_id = models.BigIntegerField(_("last customer id"))
    # Per customer id: day ordinals (local calendar) of creation and erasure (0: none)...
    created = models.BinaryField(_("creation days"), editable=False)
    erased = models.BinaryField(_("erasure days"), editable=False)
    # ...and indexes into ``values`` ({"prefecture": [...], "channel": [...]}).
    prefectures = models.BinaryField(_("prefectures"), editable=False)
    channels = models.BinaryField(_("source channels"), editable=False)
    values = models.JSONField(_("attribute values"), default=dict)

    class Meta:
        verbose_name = _("customer snapshot")
        verbose_name_plural = _("customer snapshots")
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="analytics_customer_snapshot_one")
        ]

    def __str__(self) -> str:
        return str(_("Customers as of %(when)s") % {"when": self.built_at})


# --- Goals ------------------------------------------------------------------------------------
# Numeric targets for the KPIs of analytics.kpis (the articles' first step of CRM: set goals);
# their progress is computed by analytics.goals, never stored.


class GoalKpi(models.TextChoices):
    """The KPIs a goal can target: the keys of ``analytics.kpis.kpis()``."""

    CUSTOMERS = "customers", _("Customers")
    ACTIVE_CUSTOMERS = "active_customers", _("Active customers")
    NEW_CUSTOMERS = "new_customers", _("New customers")
    REVENUE = "revenue", _("Revenue")
    PURCHASES = "purchases", _("Purchases")
    AOV = "aov", _("Average order value")
    PURCHASES_PER_CUSTOMER = "purchases_per_customer", _("Purchases per customer")
    SPEND_PER_CUSTOMER = "spend_per_customer", _("Spend per customer")
    REPEAT_RATE = "repeat_rate", _("Repeat rate")
    RETENTION_RATE = "retention_rate", _("Retention rate")
    CHURN_RATE = "churn_rate", _("Churn rate")


# Stored as fractions 0-1 (forms take percent); their "change" targets are in points.
RATE_KPIS = frozenset({GoalKpi.REPEAT_RATE, GoalKpi.RETENTION_RATE, GoalKpi.CHURN_RATE})


class GoalTargetKind(models.TextChoices):
    ABSOLUTE = "absolute", _("Reach a value")
    # Rates: points (0.05 = +5 points); amounts and counts: percent (0.10 = +10%).
    CHANGE = "change", _("Change vs the previous period")


class Goal(models.Model):
    """A target for one KPI over a period (calendar dates start..end inclusive).

    ``target`` is the value to reach (``absolute``) or the change to make against
    ``baseline`` (``change``): for rates in points, for amounts and counts as a fraction
    (0.10 = +10%). Rates, and every percent or point, are stored as fractions.

    ``baseline`` is the KPI over the equal-length period just before ``start``, frozen once
    that period is over (at creation, or by the first progress computation after ``start``
    for a goal set ahead), so "+5 points" stays measured against the value the goal was set
    against even if history is corrected later; it is recomputed only when the KPI or the
    period of the goal is edited.
    """

    kpi = models.CharField(_("KPI"), max_length=32, choices=GoalKpi.choices)
    start = models.DateField(_("start"))
    end = models.DateField(_("end"))
    target_kind = models.CharField(
        _("kind of target"),
        max_length=16,
        choices=GoalTargetKind.choices,
        default=GoalTargetKind.ABSOLUTE,
    )
    target = models.DecimalField(_("target"), max_digits=20, decimal_places=6)
    baseline = models.DecimalField(
        _("baseline"),
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        help_text=_("The KPI over the equal-length period before the start, frozen."),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="analytics_goals",
        verbose_name=_("owner"),
    )
    note = models.TextField(_("note"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("goal")
        verbose_name_plural = _("goals")
        ordering = ["-end", "kpi", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(end__gte=models.F("start")),
                name="analytics_goal_end_after_start",
            ),
            # Absolute targets: no negative figure exists; a rate is at most 1.
            models.CheckConstraint(
                condition=~models.Q(target_kind="absolute")
                | (
                    models.Q(target__gte=0)
                    & (~models.Q(kpi__in=sorted(RATE_KPIS)) | models.Q(target__lte=1))
                ),
                name="analytics_goal_absolute_target_sane",
            ),
            # Changes: not zero; rates move by at most 100 points, counts fall by at most 100%.
            models.CheckConstraint(
                condition=~models.Q(target_kind="change")
                | (
                    ~models.Q(target=0)
                    & models.Q(target__gte=-1)
                    & (~models.Q(kpi__in=sorted(RATE_KPIS)) | models.Q(target__lte=1))
                ),
                name="analytics_goal_change_target_sane",
            ),
            models.CheckConstraint(
                condition=models.Q(target_kind__in=["absolute", "change"]),
                name="analytics_goal_kind_known",
            ),
        ]
        indexes = [
            # The list's filters: current / past (by end), by owner, by KPI.
            models.Index(fields=["end", "start"], name="analytics_goal_period_idx"),
            models.Index(fields=["owner", "end"], name="analytics_goal_owner_idx"),
            models.Index(fields=["kpi", "end"], name="analytics_goal_kpi_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kpi_display()} {self.start}..{self.end}"

    @property
    def is_rate(self) -> bool:
        return self.kpi in RATE_KPIS


class BreakdownDimension(models.TextChoices):
    HOUR = "hour", _("Hour of the day")
    CHANNEL = "channel", _("Sales channel of the purchase")
    CATEGORY = "category", _("Product category")


class BreakdownCell(models.Model):
    """A day's (or a whole month's) completed purchases that share one value of a breakdown
    dimension: the local hour they were made at, the purchase's sales channel, or a product
    category (see ``analytics.breakdowns`` for the rules). Revenue by customer prefecture has
    no cells: it follows the customers' prefectures now (a customer moves), summed from the
    per-customer arrays of ``DailyRollup`` and ``MonthlyRollup``.

    Like ``DailyRollup``, a cell keeps the ids of its customers as a bitmap with each one's
    purchase count and spend aligned, so that figures restricted to any set of customers
    (a filter) come from the cells too; month cells (``is_month``, ``day`` = the 1st) hold the
    union of the month's day cells; an hour's month cells are per weekday and hour (key
    "weekday:hour", Monday 0), since a month has several of each weekday.
    """

    day = models.DateField(_("day"))
    is_month = models.BooleanField(_("whole month"), default=False)
    dimension = models.CharField(_("dimension"), max_length=20, choices=BreakdownDimension.choices)
    # Hour "0".."23", prefecture JIS code, sales channel or category; "" when none recorded.
    key = models.CharField(_("value"), max_length=100, blank=True)
    purchases = models.PositiveIntegerField(_("purchases"), default=0)
    revenue = models.DecimalField(_("revenue"), max_digits=18, decimal_places=2, default=0)
    customers = models.BinaryField(_("customers"), default=b"", editable=False)
    amounts = models.BinaryField(_("spend per customer"), default=b"", editable=False)
    counts = models.BinaryField(_("purchases per customer"), default=b"", editable=False)

    class Meta:
        verbose_name = _("breakdown cell")
        verbose_name_plural = _("breakdown cells")
        constraints = [
            models.UniqueConstraint(
                fields=["dimension", "is_month", "day", "key"], name="analytics_breakdown_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.dimension}={self.key}"


class CustomerLifetime(models.Model):
    """The single row of every customer's acquisition cohort and lifetime completed spend, as
    numpy arrays indexed by customer id (``analytics.customer_attributes``), derived from the
    monthly rollups of ``rollup_version``: LTV restricted to any set of customers is a mask
    over these, where the cohort cells cannot be split by customer. Apart from
    ``CustomerSnapshot`` so that the readers of filters alone do not load it; rebuilt with
    the snapshot, and ignored once the rollups have moved on to another version."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    built_at = models.DateTimeField(_("built at"))
    # RollupState.version of the rollups the arrays were computed from.
    rollup_version = models.PositiveIntegerField(_("rollup version"))
    # The arrays' length minus one.
    max_customer_id = models.BigIntegerField(_("last customer id"))
    # Month of cohort 1 (the oldest month with purchases); None without any purchase.
    first_month = models.DateField(_("first cohort"), null=True, blank=True)
    # Per customer id (bitmaps.pack_ints): months from first_month to the customer's first
    # completed purchase plus one (0: none yet), and completed spend ever in minor units.
    cohorts = models.BinaryField(_("cohorts"), editable=False)
    spend = models.BinaryField(_("lifetime spend"), editable=False)
    # The same figures summed per (cohort number, source channel): what LTV without a filter
    # reads instead of the megabytes of arrays (``customer_attributes.LifetimeTotals``).
    # None in a row built before it existed.
    totals = models.JSONField(_("totals"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("customer lifetime figures")
        verbose_name_plural = _("customer lifetime figures")
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="analytics_customer_lifetime_one")
        ]

    def __str__(self) -> str:
        return str(_("Lifetime figures as of %(when)s") % {"when": self.built_at})


class PackedMonth(models.Model):
    """A calendar month's cells of one breakdown dimension packed in one row: for every
    (customer, value) of the month's month cells, the customer id, their purchase count and
    spend there, grouped by value (``keys``, in the order of ``starts``) and each group's
    customers ascending. The arrays are ``analytics.compact_ints`` (ids as differences).

    The same figures as the month cells (``BreakdownCell``, which stay for the unfiltered
    totals and the days), for the filtered breakdowns: a year filtered by customers reads 12
    rows per dimension and masks each in a few vectorised steps, where hundreds of cells
    cost a round of deserialising and masking each, and reads less than half their bytes.
    Written and deleted with the month's cells (``analytics.packed_months``)."""

    month = models.DateField(_("month"))
    dimension = models.CharField(_("dimension"), max_length=20, choices=BreakdownDimension.choices)
    keys = models.JSONField(_("values"), default=list)
    # int32 (little-endian): the first entry of each key's group, then the number of entries.
    starts = models.BinaryField(_("group starts"), default=b"", editable=False)
    customers = models.BinaryField(_("customers"), default=b"", editable=False)
    amounts = models.BinaryField(_("spend per customer"), default=b"", editable=False)
    counts = models.BinaryField(_("purchases per customer"), default=b"", editable=False)

    class Meta:
        verbose_name = _("packed month of breakdown cells")
        verbose_name_plural = _("packed months of breakdown cells")
        constraints = [
            models.UniqueConstraint(fields=["dimension", "month"], name="analytics_packed_once")
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.dimension}"
