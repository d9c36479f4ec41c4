"""Campaigns: what is sent (Campaign, Variant, Link), to whom (Message, one per frozen
audience member), what happened (TrackingEvent) and who must never get marketing mail again
(Suppression, fed by unsubscribes, hard bounces, complaints and erasure; BounceRecord counts
soft bounces until they add up to a suppression)."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SCHEDULED = "scheduled", _("Scheduled")
    SENDING = "sending", _("Sending")
    PAUSED = "paused", _("Paused")
    # An A/B test share was sent; the rest of the audience waits for the winning variant.
    TESTING = "testing", _("Waiting for the winner")
    SENT = "sent", _("Sent")
    CANCELLED = "cancelled", _("Cancelled")
    FAILED = "failed", _("Failed")


class CampaignKind(models.TextChoices):
    # A one-off send to a segment's members, frozen when it starts.
    CAMPAIGN = "campaign", _("Campaign")
    # Content sent by a Trigger to each customer it matches, as long as it is active
    # (status "sending"; "paused" stops it). Never finishes on its own.
    AUTOMATION = "automation", _("Automation")


class AudienceRule(models.TextChoices):
    # The segment's eligible members, frozen when the send starts.
    SEGMENT = "", _("The segment's members")
    # A resend: the parent campaign's delivered messages nobody opened (human opens), still
    # eligible when the send starts.
    NON_OPENERS_OF_PARENT = "non_openers_of_parent", _("Non-openers of the parent campaign")


class CampaignQuerySet(models.QuerySet):
    def due(self, now=None) -> CampaignQuerySet:
        """Scheduled campaigns whose time has come."""
        return self.filter(status=CampaignStatus.SCHEDULED, scheduled_at__lte=now or timezone.now())


# What a marketer decides about a campaign before it goes (the Plan of PDCA), besides its name
# and audience: the fields the form edits, the API writes and a duplicate copies.
PLAN_FIELDS = (
    "hypothesis",
    "from_email",
    "reply_to",
    "coupon_code",
    "goal_open_rate",
    "goal_click_rate",
    "goal_conversion_rate",
    "goal_revenue",
    "attribution_days",
    "holdout_percent",
    "test_percent",
)


class Campaign(models.Model):
    name = models.CharField(_("name"), max_length=200)
    hypothesis = models.TextField(
        _("hypothesis"), blank=True, help_text=_("What you expect to happen, and why.")
    )
    kind = models.CharField(
        _("kind"), max_length=10, choices=CampaignKind.choices, default=CampaignKind.CAMPAIGN
    )
    # Required for a campaign; for an automation, optional: it narrows the trigger's matches
    # to the segment's members.
    segment = models.ForeignKey(
        "segments.Segment",
        verbose_name=_("segment"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="campaigns",
    )
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=CampaignStatus.choices,
        default=CampaignStatus.DRAFT,
    )
    scheduled_at = models.DateTimeField(_("scheduled for"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    from_email = models.CharField(
        _("from"),
        max_length=254,
        blank=True,
        help_text=_("Blank: the site's default sender."),
    )
    reply_to = models.EmailField(_("reply-to"), max_length=254, blank=True)
    coupon_code = models.CharField(
        _("coupon code"),
        max_length=50,
        blank=True,
        help_text=_("Available to the content as {{ coupon_code }}."),
    )
    # Goals, set before sending (Plan); compared with the actuals on the review (Check).
    goal_open_rate = models.DecimalField(
        _("goal: open rate"),
        max_digits=5,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
    )
    goal_click_rate = models.DecimalField(
        _("goal: click rate"),
        max_digits=5,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
    )
    goal_conversion_rate = models.DecimalField(
        _("goal: conversion rate"),
        max_digits=5,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(1)],
    )
    goal_revenue = models.DecimalField(
        _("goal: revenue"),
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
    )
    attribution_days = models.PositiveSmallIntegerField(
        _("attribution window (days)"),
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(90)],
    )
    holdout_percent = models.PositiveSmallIntegerField(
        _("holdout (%)"),
        default=0,
        validators=[MaxValueValidator(50)],
        help_text=_("Share of the audience kept out to measure the true lift."),
    )
    test_percent = models.PositiveSmallIntegerField(
        _("A/B test share (%)"),
        default=0,
        validators=[MaxValueValidator(90)],
        help_text=_(
            "0: every recipient gets a variant at once. Otherwise only this share of the "
            "audience (after the holdout) gets the variants; the rest waits for the winning "
            "variant."
        ),
    )
    winner = models.ForeignKey(
        "Variant",
        verbose_name=_("winning variant"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text=_("The variant sent to the rest of the audience after the A/B test."),
    )
    act_notes = models.TextField(_("what to change next"), blank=True)
    parent = models.ForeignKey(
        "self",
        verbose_name=_("derived from"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="children",
    )
    audience_rule = models.CharField(
        _("audience"),
        max_length=30,
        choices=AudienceRule.choices,
        default=AudienceRule.SEGMENT,
        blank=True,
    )
    # The review's headline figures as last computed (campaigns.results), so the campaign
    # list shows goal attainment without recomputing every campaign's conversions.
    results_summary = models.JSONField(
        _("results summary"), default=dict, blank=True, editable=False
    )
    # Denormalised progress, written by the sender after each batch.
    audience_size = models.PositiveIntegerField(_("audience"), default=0)
    sent_count = models.PositiveIntegerField(_("sent"), default=0)
    failed_count = models.PositiveIntegerField(_("failed"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "scheduled_at"], name="campaign_status_idx"),
            models.Index(fields=["-created_at", "-id"], name="campaign_recent_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(holdout_percent__lte=50), name="campaign_holdout_at_most_half"
            ),
            models.CheckConstraint(
                condition=~Q(status="scheduled") | Q(scheduled_at__isnull=False),
                name="campaign_scheduled_has_time",
            ),
            models.CheckConstraint(
                condition=Q(kind="automation") | Q(segment__isnull=False),
                name="campaign_has_segment",
            ),
            models.CheckConstraint(
                condition=Q(test_percent__lte=90), name="campaign_test_share_at_most_90"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE, related_name="variants"
    )
    label = models.CharField(_("label"), max_length=10, default="A")
    subject = models.CharField(_("subject"), max_length=255)
    html_body = models.TextField(_("HTML body"))
    text_body = models.TextField(_("plain-text body"))
    weight = models.PositiveSmallIntegerField(
        _("weight (%)"),
        default=100,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text=_("Share of the non-holdout audience; the weights add up to 100."),
    )

    class Meta:
        verbose_name = _("variant")
        verbose_name_plural = _("variants")
        ordering = ["campaign", "label"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "label"], name="variant_label_once"),
            models.CheckConstraint(
                condition=Q(weight__gte=1, weight__lte=100), name="variant_weight_percent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.label}"


class Link(models.Model):
    """A link found in a campaign's content: only stored links ever redirect."""

    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE, related_name="links"
    )
    url = models.URLField(_("URL"), max_length=2000)

    class Meta:
        verbose_name = _("link")
        verbose_name_plural = _("links")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "url"], name="link_url_once"),
        ]

    def __str__(self) -> str:
        return self.url


class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    BOUNCED = "bounced", _("Bounced")
    SKIPPED = "skipped", _("Skipped")
    # Outside an A/B test share: sent the winning variant later, or skipped on cancel.
    WAITING = "waiting", _("Waiting for the winner")


class Message(models.Model):
    """One frozen audience member of a campaign (holdout members too, never sent)."""

    campaign = models.ForeignKey(
        Campaign, verbose_name=_("campaign"), on_delete=models.CASCADE, related_name="messages"
    )
    # CASCADE, not PROTECT: erasure anonymises the address and keeps the row; deleting a
    # customer outright takes their messages with them.
    customer = models.ForeignKey(
        "customers.Customer",
        verbose_name=_("customer"),
        on_delete=models.CASCADE,
        related_name="campaign_messages",
        db_index=False,  # indexed by message_customer_idx (customer, -queued_at)
    )
    variant = models.ForeignKey(
        Variant,
        verbose_name=_("variant"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="messages",
    )
    email = models.CharField(_("e-mail"), max_length=254)
    # An automation sends a customer at most one message per trigger period (the year of a
    # birthday, the date of the purchase being thanked for...); "" for a campaign.
    period = models.CharField(_("period"), max_length=10, blank=True, default="")
    is_holdout = models.BooleanField(_("holdout"), default=False)
    status = models.CharField(
        _("status"), max_length=10, choices=MessageStatus.choices, default=MessageStatus.QUEUED
    )
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveSmallIntegerField(
        _("attempts"),
        default=0,
        help_text=_("How many times a sender claimed it; above 1, a copy may have gone twice."),
    )
    queued_at = models.DateTimeField(_("queued at"), default=timezone.now)
    # The sender's lease: a batch claimed but not finished before the lease runs out is
    # claimed again (its worker died mid-send).
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True, editable=False)
    lease = models.UUIDField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    smtp_message_id = models.CharField(_("Message-ID"), max_length=255, blank=True)
    first_opened_at = models.DateTimeField(_("first opened at"), null=True, blank=True)
    first_clicked_at = models.DateTimeField(_("first clicked at"), null=True, blank=True)
    opened_by_machine = models.BooleanField(_("opened by a machine"), default=False)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["campaign", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "customer", "period"], name="message_once_per_period"
            ),
            models.CheckConstraint(
                condition=Q(is_holdout=True) | Q(status="waiting") | Q(variant__isnull=False),
                name="message_variant_unless_holdout",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "status"], name="message_campaign_status_idx"),
            models.Index(fields=["customer", "-queued_at"], name="message_customer_idx"),
            # No more: each index costs every status write of the sender (measured: two more
            # indexes took bench_send from 1,191 to 764 messages/s). The API's message list
            # filters by campaign through message_campaign_status_idx and sorts that campaign.
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.customer_id} {self.status}"


class EventKind(models.TextChoices):
    OPEN = "open", _("Open")
    CLICK = "click", _("Click")


class TrackingEvent(models.Model):
    message = models.ForeignKey(
        Message,
        verbose_name=_("message"),
        on_delete=models.CASCADE,
        related_name="events",
        db_index=False,  # indexed by event_message_kind_idx
    )
    kind = models.CharField(_("kind"), max_length=5, choices=EventKind.choices)
    link = models.ForeignKey(
        Link,
        verbose_name=_("link"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
    )
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now)
    is_machine = models.BooleanField(_("machine event"), default=False)
    machine_reason = models.CharField(_("machine reason"), max_length=30, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=512, blank=True)
    # sha256 of the IP and a secret: never the raw address.
    ip_hash = models.CharField(_("IP hash"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("tracking event")
        verbose_name_plural = _("tracking events")
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["message", "kind"], name="event_message_kind_idx"),
            models.Index(fields=["kind", "occurred_at"], name="event_kind_time_idx"),
            # The API's event list: newest first, and its time filters without a kind.
            models.Index(fields=["-occurred_at", "-id"], name="event_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.message_id}"


class SuppressionReason(models.TextChoices):
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")
    HARD_BOUNCE = "hard_bounce", _("Hard bounce")
    COMPLAINT = "complaint", _("Complaint")
    ERASED = "erased", _("Erased")
    MANUAL = "manual", _("Added by staff")


class Suppression(models.Model):
    """An address that must never get marketing mail again, kept as a hash so an erased
    customer's address is not stored in clear (campaigns.suppression.email_hash)."""

    email_hash = models.CharField(_("e-mail hash"), max_length=64, unique=True)
    reason = models.CharField(_("reason"), max_length=20, choices=SuppressionReason.choices)
    source_message = models.ForeignKey(
        Message,
        verbose_name=_("source message"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("suppression")
        verbose_name_plural = _("suppressions")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["reason", "-created_at"], name="suppression_reason_idx"),
            models.Index(fields=["-created_at", "-id"], name="suppression_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.email_hash[:12]}… {self.reason}"


class BounceKind(models.TextChoices):
    SOFT = "soft", _("Soft")
    HARD = "hard", _("Hard")


class BounceRecord(models.Model):
    """One bounce; soft ones become a suppression only after several within a window."""

    email_hash = models.CharField(_("e-mail hash"), max_length=64)
    kind = models.CharField(_("kind"), max_length=4, choices=BounceKind.choices)
    message = models.ForeignKey(
        Message,
        verbose_name=_("message"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="bounces",
    )
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now)
    detail = models.TextField(_("detail"), blank=True)

    class Meta:
        verbose_name = _("bounce")
        verbose_name_plural = _("bounces")
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["email_hash", "-occurred_at"], name="bounce_hash_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.email_hash[:12]}…"


class TriggerKind(models.TextChoices):
    BIRTHDAY = "birthday", _("Birthday")
    WIN_BACK = "win_back", _("Win-back")
    THANK_YOU = "thank_you", _("Thank you after a purchase")


class Trigger(models.Model):
    """When an automation sends: evaluated by beat, each match becomes a queued Message of
    the automation's campaign (its content, goal and review), at most one per customer per
    period (campaigns.automations)."""

    campaign = models.OneToOneField(
        Campaign,
        verbose_name=_("automation"),
        on_delete=models.CASCADE,
        related_name="trigger",
        limit_choices_to={"kind": CampaignKind.AUTOMATION},
    )
    kind = models.CharField(_("trigger"), max_length=10, choices=TriggerKind.choices)
    days = models.PositiveSmallIntegerField(
        _("days"),
        validators=[MinValueValidator(0), MaxValueValidator(3650)],
        help_text=_(
            "Birthday: days before the birthday. Win-back: days without a purchase. "
            "Thank you: days after the purchase."
        ),
    )
    gap_multiplier = models.DecimalField(
        _("times the customer's usual gap"),
        max_digits=4,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text=_(
            "Win-back only: also wait until the time since the last purchase exceeds this "
            "many times the customer's median time between purchases (customers with two or "
            "more purchases)."
        ),
    )
    send_hour = models.PositiveSmallIntegerField(
        _("sending hour"),
        default=10,
        validators=[MaxValueValidator(23)],
        help_text=_("Local hour (the organisation's time zone) from which the day's matches go."),
    )
    last_run_at = models.DateTimeField(_("last evaluated at"), null=True, blank=True)
    last_run_matched = models.PositiveIntegerField(_("matched at the last evaluation"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("trigger")
        verbose_name_plural = _("triggers")
        ordering = ["campaign"]
        constraints = [
            models.CheckConstraint(condition=Q(send_hour__lte=23), name="trigger_send_hour"),
            models.CheckConstraint(
                condition=Q(kind="win_back") | Q(gap_multiplier__isnull=True),
                name="trigger_gap_only_for_win_back",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.campaign})"
