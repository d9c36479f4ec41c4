"""Automations: campaigns whose Trigger adds recipients day after day (birthday coupon,
win-back of lapsing customers, thank-you after a purchase).

An automation is a Campaign of kind "automation": its variants, goal, holdout and optional
segment work as a campaign's; its Trigger says whom and when. While it is active (status
"sending") beat evaluates its trigger once a day from the trigger's sending hour; each match
becomes a Message of the automation with the trigger's period key, so a customer gets at most
one message per trigger per period however often it runs, and the ordinary sender
(campaigns.sending) sends it. Paused, nothing is evaluated or sent; it never finishes.

Each trigger fires on the day of its occasion (campaigns.triggers) and looks back
``settings.AUTOMATION_LOOKBACK_DAYS`` days for occasions a missed beat run left without their
message. A win-back fires when a customer crosses the lapse threshold, not for being past it:
customers who lapsed before the look-back are not mailed when the automation is activated (a
campaign to a segment "last purchase >= N days ago" reaches them).

Eligibility is a campaign's (campaigns.audience: consent given and recorded, a valid address,
not erased, not suppressed, one per address, and per period across runs). The holdout and
variant are drawn as for a campaign, from (automation, customer): a held-out customer stays
out in every period, the comparison group of the automation's review.

Machine events never fire automations: our three triggers depend on purchases and birthdays,
not on opens or clicks. Event-based triggers would hook on the ``human_events_recorded``
signal of campaigns.tracking, which carries human events only.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from itertools import groupby
from typing import NamedTuple

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, F, Q, Value
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.audience import draw_all, screened
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Message,
    MessageStatus,
    Trigger,
    TriggerKind,
)
from campaigns.rendering import store_links
from campaigns.sending import check_sendable, kick_sending
from campaigns.triggers import Match, look_back_days, matches
from customers.normalize import normalize_email
from segments.aggregation import local_midnight
from segments.models import Segment

logger = logging.getLogger(__name__)

_ACTIVATABLE = [CampaignStatus.DRAFT, CampaignStatus.PAUSED]
# ``segment`` left out of a preview: the automation's own (none for a trigger without one).
SAVED_SEGMENT = object()


@transaction.atomic
def activate_automation(*, campaign: Campaign, by=None) -> Campaign:
    """Start (or resume) an automation: its trigger is evaluated from now on. Its content is
    checked as a campaign's is before sending; no segment is needed. Raises ValidationError
    when it cannot be activated."""
    if campaign.kind != CampaignKind.AUTOMATION:
        raise ValidationError(_("Only an automation can be activated."))
    if not hasattr(campaign, "trigger"):
        raise ValidationError(_("Set the automation's trigger before activating it."))
    check_sendable(campaign)
    # Links first: a message rendered once it is active must find them all.
    store_links(campaign=campaign)
    now = timezone.now()
    activated = Campaign.objects.filter(
        pk=campaign.pk, kind=CampaignKind.AUTOMATION, status__in=_ACTIVATABLE
    ).update(
        status=CampaignStatus.SENDING,
        # Since when the automation runs: its first activation.
        started_at=Coalesce(F("started_at"), Value(now)),
        updated_at=now,
    )
    campaign.refresh_from_db()
    if not activated:
        raise ValidationError(_("Only a draft or paused automation can be activated."))
    # Messages queued before a pause go out now.
    if Message.objects.filter(campaign=campaign, status=MessageStatus.QUEUED).exists():
        kick_sending(campaign_id=campaign.pk)
    return campaign


@transaction.atomic
def pause_automation(*, campaign: Campaign, by=None) -> bool:
    """Stop an active automation: its trigger is no longer evaluated and its queued messages
    wait (the group in flight finishes). Returns False if it was not active."""
    paused = Campaign.objects.filter(
        pk=campaign.pk, kind=CampaignKind.AUTOMATION, status=CampaignStatus.SENDING
    ).update(status=CampaignStatus.PAUSED, updated_at=timezone.now())
    campaign.refresh_from_db()
    return bool(paused)


def _local_today() -> date:
    return timezone.localdate(timezone=timezone.get_default_timezone())


def _reachable(trigger: Trigger, today: date, *, segment=SAVED_SEGMENT) -> list[Match]:
    """The trigger's matches that may get marketing mail (audience.screened: a valid address,
    not suppressed, one per address; per purchase day for thank-yous, whose periods are
    separate occasions). ``segment``: instead of the automation's."""
    campaign = (
        trigger.campaign if Trigger.campaign.is_cached(trigger) or trigger.campaign_id else None
    )
    if segment is SAVED_SEGMENT:
        segment = campaign.segment if campaign else None
    found = matches(
        trigger=trigger,
        today=today,
        campaign_id=campaign.pk if campaign else None,
        segment=segment,
    )
    if trigger.kind == TriggerKind.THANK_YOU:
        groups = [
            list(group) for _period, group in groupby(sorted(found, key=_by_period), _by_period)
        ]
    else:
        groups = [found]
    reachable = []
    for group in groups:
        period_of = {m.customer_id: m.period for m in group}
        kept = screened([(m.customer_id, m.email) for m in group])
        reachable += [
            Match(customer_id, email, period_of[customer_id]) for customer_id, email in kept
        ]
    if campaign is None or campaign.pk is None:
        return reachable
    # One per address across runs too: a shared address whose first customer got the
    # period's message in an earlier run (a thank-you seen again by the look-back) is done.
    addressed = _addressed(campaign_id=campaign.pk, found=reachable)
    return [m for m in reachable if (normalize_email(m.email), m.period) not in addressed]


def _by_period(match: Match) -> str:
    return match.period


# Addresses per query when looking for earlier messages to them (IN lists stay short).
_CHUNK = 5_000


def _addressed(*, campaign_id: int, found: list[Match]) -> set[tuple[str, str]]:
    """(normalised address, period) of the automation's messages already written to the
    addresses of ``found`` for their periods."""
    addresses = sorted({m.email.lower() for m in found})
    periods = {m.period for m in found}
    rows = []
    for start in range(0, len(addresses), _CHUNK):
        rows += (
            Message.objects.filter(campaign_id=campaign_id, period__in=periods)
            .annotate(address=Lower("email"))
            .filter(address__in=addresses[start : start + _CHUNK])
            .values_list("email", "period")
        )
    return {(normalize_email(email), period) for email, period in rows}


def trigger_preview_count(
    trigger: Trigger, *, today: date | None = None, segment=SAVED_SEGMENT
) -> int:
    """How many customers the trigger would send to if evaluated today (holdout included):
    what ``evaluate_trigger`` would add; writes nothing. The trigger and its automation need
    not be saved (unsaved: nobody has a message yet). ``segment``: the one chosen on the
    form instead of the saved automation's (None: every customer)."""
    return len(_reachable(trigger, today or _local_today(), segment=segment))


# The form's count is a few seconds' work at scale: shown for this long from the cache.
PREVIEW_CACHE_SECONDS = 300


def cached_trigger_preview_count(
    trigger: Trigger, *, segment: Segment | None, today: date | None = None
) -> int:
    """``trigger_preview_count``, kept a few minutes per trigger parameters, segment,
    automation and day (a message added meanwhile shows after that at most)."""
    today = today or _local_today()
    key = "campaigns:trigger-count:" + ":".join(
        str(part)
        for part in (
            today.isoformat(),
            trigger.kind,
            trigger.days,
            trigger.gap_multiplier or "",
            segment.pk if segment else "",
            trigger.campaign_id or "",
            look_back_days(),
        )
    )
    count = cache.get(key)
    if count is None:
        count = trigger_preview_count(trigger, today=today, segment=segment)
        cache.set(key, count, PREVIEW_CACHE_SECONDS)
    return count


@transaction.atomic
def evaluate_trigger(
    *, trigger: Trigger, today: date | None = None, now: datetime | None = None
) -> int:
    """Give each customer the trigger matches on ``today`` (local date, default today) a
    message of its automation for the match's period, queued or, drawn into the holdout,
    skipped; returns how many were added. A customer who already has one for that period
    gets none, whoever evaluated first (the insert ignores the (campaign, customer, period)
    conflict), so running it twice is harmless. ``now``: the evaluation time recorded on the
    trigger (default: the current time)."""
    campaign = trigger.campaign
    # Content edited into an unsendable state since the activation: nothing is queued.
    check_sendable(campaign)
    today = today or _local_today()
    found = _reachable(trigger, today)
    draws = draw_all(
        campaign_id=campaign.pk,
        customer_ids=[m.customer_id for m in found],
        holdout_percent=campaign.holdout_percent,
        variants=list(campaign.variants.order_by("label")),
    )
    queued_at = timezone.now()
    rows = [
        _Row(
            customer_id=match.customer_id,
            variant_id=assigned.variant_id,
            email=match.email,
            period=match.period,
            is_holdout=assigned.is_holdout,
            status=MessageStatus.SKIPPED if assigned.is_holdout else MessageStatus.QUEUED,
        )
        for match, assigned in zip(found, draws, strict=True)
    ]
    insert = _insert_postgresql if connection.vendor == "postgresql" else _insert
    added = insert(campaign=campaign, rows=rows, queued_at=queued_at) if rows else _Added(0, 0)
    Trigger.objects.filter(pk=trigger.pk).update(
        last_run_at=now or queued_at, last_run_matched=added.all
    )
    Campaign.objects.filter(pk=campaign.pk).update(
        audience_size=F("audience_size") + added.all, updated_at=queued_at
    )
    trigger.refresh_from_db(fields=["last_run_at", "last_run_matched"])
    if added.queued:
        kick_sending(campaign_id=campaign.pk)
    return added.all


class _Row(NamedTuple):
    customer_id: int
    variant_id: int | None
    email: str
    period: str
    is_holdout: bool
    status: str


class _Added(NamedTuple):
    all: int
    queued: int


def _insert(*, campaign: Campaign, rows: list[_Row], queued_at: datetime) -> _Added:
    """Insert the messages, skipping those whose (campaign, customer, period) exists."""
    Message.objects.bulk_create(
        [Message(campaign=campaign, queued_at=queued_at, **row._asdict()) for row in rows],
        batch_size=2_000,
        ignore_conflicts=True,
    )
    added = Message.objects.filter(campaign=campaign, queued_at=queued_at).aggregate(
        all=Count("id"), queued=Count("id", filter=Q(status=MessageStatus.QUEUED))
    )
    return _Added(added["all"], added["queued"])


_INSERT_SQL = """
WITH added AS (
    INSERT INTO {message} ({columns})
    SELECT %s, customer_id, variant_id, email, period, is_holdout, status, '', 0, %s, '', false
    FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::boolean[], %s::text[])
        AS new (customer_id, variant_id, email, period, is_holdout, status)
    ON CONFLICT (campaign_id, customer_id, period) DO NOTHING
    RETURNING status
)
SELECT count(*), count(*) FILTER (WHERE status = %s) FROM added
"""
_INSERT_COLUMNS = (
    "campaign_id, customer_id, variant_id, email, period, is_holdout, status, error, "
    "attempts, queued_at, smtp_message_id, opened_by_machine"
)


def _insert_postgresql(*, campaign: Campaign, rows: list[_Row], queued_at: datetime) -> _Added:
    """PostgreSQL fast path: every row in one statement (arrays unnested), counted as they
    go in; a win-back's first day adds hundreds of thousands, which bulk_create's batches
    take ten times longer to write."""
    sql = _INSERT_SQL.format(
        message=connection.ops.quote_name(Message._meta.db_table), columns=_INSERT_COLUMNS
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                campaign.pk,
                queued_at,
                *(list(column) for column in zip(*rows, strict=True)),
                MessageStatus.QUEUED,
            ],
        )
        return _Added(*cursor.fetchone())


def _not_run_since(start: datetime) -> Q:
    return Q(last_run_at__isnull=True) | Q(last_run_at__lt=start)


def run_due_triggers(now: datetime | None = None) -> dict[int, int]:
    """Evaluate every trigger of an active automation whose sending hour has come today
    (local time) and that was not evaluated yet today; returns trigger id -> messages added.

    Each trigger is claimed by a conditional update of ``last_run_at`` in the transaction that
    evaluates it: of two beat processes or workers at once, one claims it and the other's
    update finds it done (or waits for the first to commit, then finds it done). A failed
    evaluation rolls its claim back, so the next run tries again."""
    now = now or timezone.now()
    local = timezone.localtime(now, timezone.get_default_timezone())
    day_start = local_midnight(local.date())
    due = list(
        Trigger.objects.filter(
            campaign__kind=CampaignKind.AUTOMATION,
            campaign__status=CampaignStatus.SENDING,
            send_hour__lte=local.hour,
        )
        .filter(_not_run_since(day_start))
        .select_related("campaign__segment")
        .order_by("pk")
    )
    added = {}
    for trigger in due:
        try:
            with transaction.atomic():
                # No join in this update: PostgreSQL would evaluate it as a subquery, which
                # is not re-checked after waiting for another claim's lock.
                claimed = (
                    Trigger.objects.filter(pk=trigger.pk)
                    .filter(_not_run_since(day_start))
                    .update(last_run_at=now)
                )
                if claimed:
                    added[trigger.pk] = evaluate_trigger(
                        trigger=trigger, today=local.date(), now=now
                    )
        except Exception:
            # One broken automation must not hold up the others; it is tried again next run.
            logger.exception("automation trigger %s: evaluation failed", trigger.pk)
    return added
