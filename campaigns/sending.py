"""Sending campaigns: start, schedule, pause, resume, cancel, and the batch sender.

Work is claimed in the database, never by task ETAs: any number of workers (and of beat
processes kicking them) share a campaign's messages without sending one twice in normal
operation.

- ``claim_batch`` takes up to CAMPAIGN_BATCH_SIZE queued messages (``select_for_update``
  with ``skip_locked``) and marks them sending under a fresh lease (a UUID and a timestamp).
- ``send_batch`` renders them (templates compiled once), re-checks consent and suppression
  right before each group of CAMPAIGN_FLUSH_EVERY messages (an unsubscribe during a send stops
  any further message to that customer), sends them over ONE SMTP connection and writes the
  group's statuses in one transaction, renewing the lease of the rest.
- A message is marked sent only after the server accepted it. A permanent (5xx) rejection
  fails that message only; transient errors (4xx, a dropped connection) put it back in the
  queue with exponential backoff and jitter until CAMPAIGN_MAX_ATTEMPTS.
- A worker killed mid-batch leaves messages "sending"; once the lease expires
  (CAMPAIGN_LEASE_SECONDS) another worker claims them again. Those accepted by the server but
  not yet written, at most one flush group (CAMPAIGN_FLUSH_EVERY) per kill, go out twice: each
  such message keeps ``attempts`` > 1 and the INTERRUPTED note, and ``campaign_progress``
  counts them. Nothing is lost: the campaign is marked sent only in the same statement that
  checks that no message is queued or sending.
"""

from __future__ import annotations

import contextlib
import logging
import random
import smtplib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.db import transaction
from django.db.models import Case, CharField, Count, Exists, F, OuterRef, Q, Value, When
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.audience import freeze_audience
from campaigns.mime import send_one
from campaigns.models import Campaign, CampaignKind, CampaignStatus, Message, MessageStatus
from campaigns.rendering import (
    Recipient,
    Renderer,
    check_content,
    customer_contexts,
    message_id_domain,
    store_links,
)
from campaigns.suppression import blocked_hashes, email_hash
from customers.models import Customer

logger = logging.getLogger(__name__)

# Written on a message re-claimed after its sender died mid-send: the first copy may have
# reached the server, so this one may be a duplicate. Stored text, not shown translated.
INTERRUPTED = "Interrupted mid-send; may have been delivered twice."
CANCELLED_NOTE = "Campaign cancelled."
OPTED_OUT_NOTE = "No longer eligible when its turn came (unsubscribed, suppressed or erased)."

_STARTABLE = [CampaignStatus.DRAFT, CampaignStatus.SCHEDULED]


# --- Actions ----------------------------------------------------------------------------------


def check_sendable(campaign: Campaign) -> None:
    """Raise ValidationError if the campaign cannot be sent as it stands."""
    variants = list(campaign.variants.all())
    if not variants:
        raise ValidationError(_("Add at least one variant before sending."))
    if sum(v.weight for v in variants) != 100:
        raise ValidationError(_("The variants' weights must add up to 100."))
    for variant in variants:
        errors = check_content(
            subject=variant.subject, html_body=variant.html_body, text_body=variant.text_body
        )
        if errors:
            raise ValidationError(
                _("Variant %(label)s: %(error)s") % {"label": variant.label, "error": errors[0]}
            )


def _enqueue_start(campaign_id: int) -> None:
    from campaigns.tasks import start_campaign_task

    transaction.on_commit(lambda: start_campaign_task.delay(campaign_id))


@transaction.atomic
def schedule_campaign(
    *, campaign: Campaign, at: datetime, by=None, time_zone: str | None = None
) -> Campaign:
    """Schedule a draft (or re-schedule a scheduled) campaign. A naive ``at`` is read in
    ``time_zone``, else the user's own (their profile), else the organisation's."""
    check_sendable(campaign)
    if timezone.is_naive(at):
        zone_name = time_zone or _user_time_zone(by) or settings.TIME_ZONE
        at = timezone.make_aware(at, ZoneInfo(zone_name))
    updated = Campaign.objects.filter(pk=campaign.pk, status__in=_STARTABLE).update(
        status=CampaignStatus.SCHEDULED, scheduled_at=at, updated_at=timezone.now()
    )
    if not updated:
        raise ValidationError(_("Only a draft or scheduled campaign can be scheduled."))
    campaign.refresh_from_db()
    if at <= timezone.now():
        _enqueue_start(campaign.pk)
    return campaign


def start_campaign(*, campaign: Campaign, by=None) -> Campaign:
    """Send now: scheduled for this moment and handed to a worker at once."""
    return schedule_campaign(campaign=campaign, at=timezone.now(), by=by)


def _user_time_zone(user) -> str:
    profile = getattr(user, "profile", None) if user is not None else None
    return getattr(profile, "time_zone", "") or ""


def start_due_campaigns() -> list[int]:
    """Ids of the scheduled campaigns whose time has come (beat hands each to a worker)."""
    return list(Campaign.objects.due().values_list("id", flat=True))


@transaction.atomic
def pause_campaign(*, campaign: Campaign, by=None) -> bool:
    """Stop sending after the group of messages in flight; resume picks up from there."""
    paused = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.SENDING).update(
        status=CampaignStatus.PAUSED, updated_at=timezone.now()
    )
    campaign.refresh_from_db()
    return bool(paused)


@transaction.atomic
def resume_campaign(*, campaign: Campaign, by=None) -> bool:
    resumed = Campaign.objects.filter(pk=campaign.pk, status=CampaignStatus.PAUSED).update(
        status=CampaignStatus.SENDING, updated_at=timezone.now()
    )
    campaign.refresh_from_db()
    if resumed:
        kick_sending(campaign_id=campaign.pk)
    return bool(resumed)


@transaction.atomic
def cancel_campaign(*, campaign: Campaign, by=None) -> bool:
    """Cancel a campaign not yet finished: nothing more is sent; what was sent stays sent."""
    now = timezone.now()
    cancelled = Campaign.objects.filter(
        pk=campaign.pk,
        status__in=[
            *_STARTABLE,
            CampaignStatus.SENDING,
            CampaignStatus.PAUSED,
            CampaignStatus.TESTING,
        ],
    ).update(status=CampaignStatus.CANCELLED, finished_at=now, updated_at=now)
    if cancelled:
        Message.objects.filter(
            campaign=campaign, status__in=[MessageStatus.QUEUED, MessageStatus.WAITING]
        ).update(status=MessageStatus.SKIPPED, error=CANCELLED_NOTE, lease=None)
    campaign.refresh_from_db()
    return bool(cancelled)


def kick_sending(*, campaign_id: int) -> None:
    """Start the campaign's send tasks (they share its batches through claims)."""
    from campaigns.tasks import send_campaign_task

    def kick():
        for _n in range(settings.CAMPAIGN_SEND_TASKS):
            send_campaign_task.delay(campaign_id)

    transaction.on_commit(kick)


# --- Progress ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    audience: int
    queued: int
    sending: int
    sent: int
    failed: int
    bounced: int
    skipped: int
    holdout: int
    possibly_duplicated: int
    waiting: int = 0

    @property
    def to_send(self) -> int:
        """Messages to send now: the audience but the holdout and those waiting for the
        A/B test's winner."""
        return self.audience - self.holdout - self.waiting

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.bounced + self.skipped - self.holdout

    @property
    def percent(self) -> int:
        return 100 if not self.to_send else int(100 * self.done / self.to_send)


def campaign_progress(campaign: Campaign) -> Progress:
    counts = dict(
        Message.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    extra = Message.objects.filter(campaign=campaign).aggregate(
        holdout=Count("id", filter=Q(is_holdout=True)),
        duplicated=Count("id", filter=Q(status=MessageStatus.SENT, error=INTERRUPTED)),
    )
    return Progress(
        audience=sum(counts.values()),
        queued=counts.get(MessageStatus.QUEUED, 0),
        sending=counts.get(MessageStatus.SENDING, 0),
        sent=counts.get(MessageStatus.SENT, 0),
        failed=counts.get(MessageStatus.FAILED, 0),
        bounced=counts.get(MessageStatus.BOUNCED, 0),
        skipped=counts.get(MessageStatus.SKIPPED, 0),
        holdout=extra["holdout"],
        possibly_duplicated=extra["duplicated"],
        waiting=counts.get(MessageStatus.WAITING, 0),
    )


# --- The sender -------------------------------------------------------------------------------


def _claimable(now) -> Q:
    # claimed_at on a queued message is "not before" (a transient error's backoff); on a
    # sending one, when its lease was last renewed.
    lease_start = now - timedelta(seconds=settings.CAMPAIGN_LEASE_SECONDS)
    ready = Q(status=MessageStatus.QUEUED) & (Q(claimed_at__isnull=True) | Q(claimed_at__lte=now))
    expired = Q(status=MessageStatus.SENDING, claimed_at__lt=lease_start)
    return ready | expired


def launch_campaign(*, campaign_id: int) -> int:
    """Freeze the audience of a due campaign and start its senders; returns the audience size.
    Safe to run twice or after a crash (the freeze claims the campaign)."""
    campaign = Campaign.objects.get(pk=campaign_id)
    if campaign.status not in (*_STARTABLE, CampaignStatus.SENDING):
        return campaign.audience_size
    # Links first: a batch rendered after the freeze must find them all.
    store_links(campaign=campaign)
    size = freeze_audience(campaign=campaign)
    kick_sending(campaign_id=campaign_id)
    return size


def campaigns_needing_senders() -> list[int]:
    """Sending campaigns with claimable work and no live lease: nobody is sending them (their
    worker died, or a backoff has run out). Beat starts senders for them."""
    now = timezone.now()
    lease_start = now - timedelta(seconds=settings.CAMPAIGN_LEASE_SECONDS)
    claimable = Message.objects.filter(campaign=OuterRef("pk")).filter(_claimable(now))
    live = Message.objects.filter(
        campaign=OuterRef("pk"), status=MessageStatus.SENDING, claimed_at__gte=lease_start
    )
    return list(
        Campaign.objects.filter(status=CampaignStatus.SENDING)
        .filter(Exists(claimable))
        .exclude(Exists(live))
        .values_list("id", flat=True)
    )


@transaction.atomic
def claim_batch(*, campaign_id: int, size: int | None = None) -> uuid.UUID | None:
    """Claim up to ``size`` messages of a sending campaign; returns the lease, or None when
    there is nothing to claim (or the campaign is not sending)."""
    if not Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SENDING).exists():
        return None
    now = timezone.now()
    rows = list(
        Message.objects.select_for_update(skip_locked=True)
        .filter(campaign_id=campaign_id)
        .filter(_claimable(now))
        .values_list("id", "status", "sent_at")[: size or settings.CAMPAIGN_BATCH_SIZE]
    )
    if not rows:
        return None
    lease = uuid.uuid4()
    claim = {
        "status": MessageStatus.SENDING,
        "claimed_at": now,
        "lease": lease,
        "sent_at": None,
        "attempts": F("attempts") + 1,
    }
    # A "sending" message with a send time was handed to the server when its worker died:
    # it may have arrived, so this copy may be a duplicate. Without one it was never tried.
    interrupted = [pk for pk, status, tried in rows if status == MessageStatus.SENDING and tried]
    others = [pk for pk, status, tried in rows if not (status == MessageStatus.SENDING and tried)]
    Message.objects.filter(id__in=others).update(**claim)
    if interrupted:
        logger.warning(
            "campaign %s: %d messages were mid-send when their worker died; sending again",
            campaign_id,
            len(interrupted),
        )
        Message.objects.filter(id__in=interrupted).update(error=INTERRUPTED, **claim)
    return lease


def _classify(error: Exception) -> tuple[bool, str]:
    """(permanent?, description) of a failed send."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(error.recipients.values()), (450, b""))
        reply = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        return code >= 500, f"{code} {reply}"
    if isinstance(error, smtplib.SMTPResponseException):
        reply = error.smtp_error
        reply = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        return error.smtp_code >= 500, f"{error.smtp_code} {reply}"
    return False, f"{type(error).__name__}: {error}"


def _is_connection_error(error: Exception) -> bool:
    return isinstance(error, smtplib.SMTPServerDisconnected | ConnectionError | TimeoutError)


def _backoff(attempts: int) -> timedelta:
    """Exponential from 5 s, capped at 10 minutes, with jitter so retries spread out."""
    base = min(5 * 2 ** max(attempts - 1, 0), 600)
    return timedelta(seconds=base * random.uniform(0.5, 1.5))  # noqa: S311 (jitter, not crypto)


@dataclass
class _Outcome:
    sent: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    retry: dict[int, str] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)
    connection_lost: bool = False


def _eligible_ids(rows: list[Message]) -> set[int]:
    """Those messages whose customer may still get marketing mail at this moment."""
    consenting = set(
        Customer.objects.filter(
            id__in=[m.customer_id for m in rows], email_opt_in=True, erased_at__isnull=True
        ).values_list("id", flat=True)
    )
    hashes = {m.id: email_hash(m.email) for m in rows}
    blocked = blocked_hashes(hashes.values())
    return {m.id for m in rows if m.customer_id in consenting and hashes[m.id] not in blocked}


def _held(*, campaign_id: int, lease: uuid.UUID):
    """The messages a sender holds under ``lease`` (the campaign narrows the search to the
    (campaign, status) index: the lease has none of its own)."""
    return Message.objects.filter(
        campaign_id=campaign_id, status=MessageStatus.SENDING, lease=lease
    )


@transaction.atomic
def _write_outcome(
    *,
    campaign_id: int,
    lease: uuid.UUID,
    outcome: _Outcome,
    attempts: dict[int, int],
    next_group: list[int],
) -> int:
    """Write one group's statuses, mark the next group as being handed to the server and
    renew the lease of the batch's messages still to send. Returns how many of those this
    worker still holds (fewer than expected: another worker took the batch over)."""
    now = timezone.now()
    mine = _held(campaign_id=campaign_id, lease=lease)
    sent = mine.filter(id__in=outcome.sent).update(
        status=MessageStatus.SENT,
        sent_at=now,
        lease=None,
        smtp_message_id=Concat(
            Value(f"<campaign-{campaign_id}.message-"),
            Cast("id", CharField()),
            Value(f"@{message_id_domain()}>"),
        ),
    )
    failed = 0
    for pk, error in outcome.failed.items():
        failed += mine.filter(id=pk).update(status=MessageStatus.FAILED, error=error, lease=None)
    for pk, error in outcome.retry.items():
        if attempts[pk] >= settings.CAMPAIGN_MAX_ATTEMPTS:
            failed += mine.filter(id=pk).update(
                status=MessageStatus.FAILED, error=error, lease=None
            )
        else:
            mine.filter(id=pk).update(
                status=MessageStatus.QUEUED,
                error=error,
                lease=None,
                sent_at=None,
                claimed_at=now + _backoff(attempts[pk]),
            )
    if outcome.skipped:
        mine.filter(id__in=outcome.skipped).update(
            status=MessageStatus.SKIPPED, error=OPTED_OUT_NOTE, lease=None, sent_at=None
        )
    if sent or failed:
        Campaign.objects.filter(pk=campaign_id).update(
            sent_count=F("sent_count") + sent, failed_count=F("failed_count") + failed
        )
    if next_group:
        mine.filter(id__in=next_group).update(sent_at=now)
    return mine.update(claimed_at=now)


@transaction.atomic
def _release(*, campaign_id: int, lease: uuid.UUID) -> None:
    """Give back the batch's messages never handed to the server (paused, cancelled, server
    unavailable, connection lost)."""
    mine = _held(campaign_id=campaign_id, lease=lease)
    if Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.CANCELLED).exists():
        mine.update(status=MessageStatus.SKIPPED, error=CANCELLED_NOTE, lease=None, sent_at=None)
        return
    # The claim counted an attempt that never happened.
    mine.update(
        status=MessageStatus.QUEUED,
        lease=None,
        claimed_at=None,
        sent_at=None,
        attempts=F("attempts") - 1,
    )


def _still_sending(campaign_id: int) -> bool:
    return Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SENDING).exists()


def send_batch(*, campaign: Campaign, lease: uuid.UUID) -> tuple[int, bool]:
    """Send the messages claimed under ``lease`` over one connection. Returns how many the
    server accepted and whether it is worth claiming another batch now (False: the server
    is unreachable, the campaign stopped or the batch was taken over)."""
    rows = list(
        _held(campaign_id=campaign.pk, lease=lease)
        .only("id", "customer_id", "email", "variant_id", "attempts")
        .order_by("id")
    )
    if not rows:
        return 0, True
    step = max(settings.CAMPAIGN_FLUSH_EVERY, 1)
    groups = [rows[start : start + step] for start in range(0, len(rows), step)]
    attempts = {m.id: m.attempts for m in rows}
    accepted = 0
    go_on = True
    connection = get_connection()
    try:
        renderer = Renderer(campaign=campaign)
        contexts = customer_contexts(m.customer_id for m in rows)
        connection.open()
        _held(campaign_id=campaign.pk, lease=lease).filter(id__in=[m.id for m in groups[0]]).update(
            sent_at=timezone.now()
        )
        for index, group in enumerate(groups):
            outcome = _send_group(
                connection=connection, renderer=renderer, group=group, contexts=contexts
            )
            accepted += len(outcome.sent)
            stop = outcome.connection_lost or not _still_sending(campaign.pk)
            later = groups[index + 1] if index + 1 < len(groups) and not stop else []
            held = _write_outcome(
                campaign_id=campaign.pk,
                lease=lease,
                outcome=outcome,
                attempts=attempts,
                next_group=[m.id for m in later],
            )
            if held < sum(len(g) for g in groups[index + 1 :]):
                logger.warning("campaign %s: batch %s taken over", campaign.pk, lease)
                return accepted, False
            if stop:
                go_on = not outcome.connection_lost or bool(outcome.sent)
                break
    except (smtplib.SMTPException, OSError) as error:
        # The connection could not be opened: nothing more of the batch was sent.
        logger.warning("campaign %s: SMTP server unavailable: %s", campaign.pk, error)
        go_on = False
    finally:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            connection.close()
        _release(campaign_id=campaign.pk, lease=lease)
    return accepted, go_on and _still_sending(campaign.pk)


def _send_group(*, connection, renderer: Renderer, group: list[Message], contexts) -> _Outcome:
    outcome = _Outcome()
    eligible = _eligible_ids(group)
    to_send = [m for m in group if m.id in eligible]
    outcome.skipped = [m.id for m in group if m.id not in eligible]
    recipients = [
        Recipient(
            message_id=m.id, customer_id=m.customer_id, email=m.email, variant_id=m.variant_id
        )
        for m in to_send
    ]
    for message, email in zip(to_send, renderer.render(recipients, contexts), strict=True):
        try:
            if send_one(connection, email):
                outcome.sent.append(message.id)
            else:
                outcome.retry[message.id] = "not accepted"
        except Exception as error:
            permanent, description = _classify(error)
            if _is_connection_error(error):
                # Unknown whether this one arrived: it is retried (a possible duplicate). The
                # rest of the group was never tried and goes back to the queue as it was.
                outcome.retry[message.id] = description
                outcome.connection_lost = True
                return outcome
            if permanent:
                outcome.failed[message.id] = description
            else:
                outcome.retry[message.id] = description
    return outcome


def finish_if_done(*, campaign_id: int) -> bool:
    """Mark the campaign sent if, and only if, no message is queued or being sent: checked
    and written in one statement, so it is never marked finished with unsent mail. With
    messages waiting for an A/B test's winner it becomes "testing" instead (not finished).
    Automations never finish: their trigger keeps adding messages."""
    now = timezone.now()
    unsent = Message.objects.filter(
        campaign=OuterRef("pk"), status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]
    )
    waiting = Exists(Message.objects.filter(campaign=OuterRef("pk"), status=MessageStatus.WAITING))
    return bool(
        Campaign.objects.filter(
            pk=campaign_id, status=CampaignStatus.SENDING, kind=CampaignKind.CAMPAIGN
        )
        .exclude(Exists(unsent))
        .update(
            status=Case(
                When(waiting, then=Value(CampaignStatus.TESTING)),
                default=Value(CampaignStatus.SENT),
            ),
            finished_at=Case(When(waiting, then=None), default=Value(now)),
            updated_at=now,
        )
    )


def send_pending(*, campaign_id: int, max_batches: int | None = None) -> int:
    """Claim and send batches until none is left (or ``max_batches``); returns how many
    messages the server accepted. What a send task runs; several may run at once."""
    campaign = Campaign.objects.get(pk=campaign_id)
    accepted = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        lease = claim_batch(campaign_id=campaign_id)
        if lease is None:
            break
        sent, go_on = send_batch(campaign=campaign, lease=lease)
        accepted += sent
        batches += 1
        if not go_on:
            break
    finish_if_done(campaign_id=campaign_id)
    return accepted
