"""Freezing a campaign's audience: who gets it, in which variant, and who is held out.

The audience is taken once, when the send starts: the segment's members (re-evaluated first
when the segment is dynamic) who may receive marketing mail, one per address. Each becomes a
Message row; holdout and variant are drawn from a hash of (campaign, customer), so the draw is
random across customers but the same every time for one customer, and it is recorded.

Eligible means: e-mail consent given (``email_opt_in``) and recorded (a ConsentRecord saying
so), a syntactically valid address, not erased, and an address neither suppressed nor of an
erased customer (by hash, see campaigns.suppression). Duplicated addresses get one message
(the oldest customer's).

A resend to non-openers (``audience_rule``) takes, instead of the segment, the parent
campaign's delivered recipients without a human open, under the same eligibility checks.

The rows are written in one COPY on PostgreSQL (the named fast path) and with bulk_create
elsewhere; 100,000 recipients take about a second or two.
"""

from __future__ import annotations

import hashlib
import io
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from campaigns.models import (
    AudienceRule,
    Campaign,
    CampaignStatus,
    Message,
    MessageStatus,
    Variant,
)
from campaigns.suppression import blocked_hashes, email_hash
from customers.models import ConsentRecord, Customer
from customers.normalize import normalize_email
from segments.membership import refresh_segment
from segments.models import SegmentKind

_TWO_64 = float(2**64)


class Draw(NamedTuple):
    """Where one customer falls in a campaign: held out, waiting for the A/B test's winner,
    or which variant."""

    is_holdout: bool
    variant_id: int | None
    is_waiting: bool = False


_HELD_OUT = Draw(True, None)
_WAITING = Draw(False, None, True)


def draw_all(
    *,
    campaign_id: int,
    customer_ids: Iterable[int],
    holdout_percent: int,
    variants: Sequence[Variant],
    test_percent: int = 0,
) -> list[Draw]:
    """The stable random assignment of each customer in the campaign: three independent
    uniform numbers from one hash of (campaign, customer), the first for the holdout, the
    second for the variant (chosen by the cumulative weights), the third for the A/B test
    share (outside it, the customer waits for the winner; ``test_percent`` 0: no waiting)."""
    cumulative = list(accumulate(v.weight for v in variants))
    variant_ids = [v.pk for v in variants]
    last = len(variant_ids) - 1
    prefix = f"campaigns.draw:{campaign_id}:".encode()
    sha256, from_bytes = hashlib.sha256, int.from_bytes
    draws = []
    for customer_id in customer_ids:
        digest = sha256(prefix + str(customer_id).encode()).digest()
        if from_bytes(digest[:8], "big") / _TWO_64 * 100 < holdout_percent:
            draws.append(_HELD_OUT)
            continue
        if test_percent and from_bytes(digest[16:24], "big") / _TWO_64 * 100 >= test_percent:
            draws.append(_WAITING)
            continue
        variant_draw = from_bytes(digest[8:16], "big") / _TWO_64 * 100
        index = min(bisect_right(cumulative, variant_draw), last)
        draws.append(Draw(False, variant_ids[index]))
    return draws


def draw(
    *,
    campaign_id: int,
    customer_id: int,
    holdout_percent: int,
    variants: Sequence[Variant],
    test_percent: int = 0,
) -> Draw:
    """One customer's assignment (see ``draw_all``)."""
    return draw_all(
        campaign_id=campaign_id,
        customer_ids=[customer_id],
        holdout_percent=holdout_percent,
        variants=variants,
        test_percent=test_percent,
    )[0]


def _status(assigned: Draw) -> MessageStatus:
    if assigned.is_holdout:
        return MessageStatus.SKIPPED
    if assigned.is_waiting:
        return MessageStatus.WAITING
    return MessageStatus.QUEUED


def is_valid_address(email: str) -> bool:
    try:
        validate_email(email)
    except ValidationError:
        return False
    return True


def consenting(customers: QuerySet[Customer]) -> QuerySet[Customer]:
    """Those of ``customers`` who gave and recorded consent, have an address and are not
    erased; address checks and suppression come after (``screened``)."""
    recorded = ConsentRecord.objects.filter(customer=OuterRef("pk"), opted_in=True)
    return (
        customers.filter(email_opt_in=True, erased_at__isnull=True)
        .exclude(email="")
        .filter(Exists(recorded))
    )


def _consenting(customers) -> list[tuple[int, str]]:
    """(customer id, address) of ``consenting(customers)``, oldest customer first."""
    return list(consenting(customers).order_by("id").values_list("id", "email"))


def eligible_candidates(*, segment_id: int) -> list[tuple[int, str]]:
    """The segment's current members who gave and recorded consent (see ``_consenting``)."""
    return _consenting(Customer.objects.filter(segment_memberships__segment_id=segment_id))


def eligible_recipients(*, segment_id: int) -> list[tuple[int, str]]:
    """(customer id, address) of everyone who may get a campaign sent to the segment now,
    one per address."""
    return screened(eligible_candidates(segment_id=segment_id))


def eligible_non_openers(*, parent_id: int | None) -> list[tuple[int, str]]:
    """(customer id, address) of the parent campaign's delivered recipients without a human
    open who may still get marketing mail now, one per address (a resend's audience)."""
    if parent_id is None:
        return []
    not_opened = Message.objects.filter(
        campaign_id=parent_id,
        status=MessageStatus.SENT,
        is_holdout=False,
        first_opened_at__isnull=True,
    )
    return screened(_consenting(Customer.objects.filter(pk__in=not_opened.values("customer_id"))))


def screened(candidates: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The candidates with a valid address that is not suppressed, the first per address."""
    candidates_checked = []
    seen: set[str] = set()
    for customer_id, email in candidates:
        address = normalize_email(email)
        if address in seen or not is_valid_address(address):
            continue
        seen.add(address)
        candidates_checked.append((customer_id, email.strip(), email_hash(address)))
    blocked = blocked_hashes(hashed for _id, _email, hashed in candidates_checked)
    return [
        (customer_id, email)
        for customer_id, email, hashed in candidates_checked
        if hashed not in blocked
    ]


@transaction.atomic
def freeze_audience(*, campaign: Campaign) -> int:
    """Take the campaign's audience and write its messages; returns the audience size.

    Safe to call twice: the first call claims the campaign (scheduled or draft -> sending) in
    the same transaction that writes the messages, so a second call, or one after a crash that
    rolled everything back, either does nothing or does the whole freeze.
    """
    now = timezone.now()
    claimed = Campaign.objects.filter(
        pk=campaign.pk, status__in=[CampaignStatus.DRAFT, CampaignStatus.SCHEDULED]
    ).update(status=CampaignStatus.SENDING, started_at=now, updated_at=now)
    campaign.refresh_from_db()
    if not claimed:
        return campaign.audience_size
    variants = list(campaign.variants.order_by("label"))
    recipients = _audience(campaign)
    draws = draw_all(
        campaign_id=campaign.pk,
        customer_ids=[customer_id for customer_id, _email in recipients],
        holdout_percent=campaign.holdout_percent,
        variants=variants,
        test_percent=campaign.test_percent if len(variants) > 1 else 0,
    )
    rows = [
        (customer_id, email, assigned)
        for (customer_id, email), assigned in zip(recipients, draws, strict=True)
    ]
    _write_messages(campaign=campaign, rows=rows, queued_at=now)
    campaign.audience_size = len(rows)
    campaign.save(update_fields=["audience_size", "updated_at"])
    return len(rows)


def _audience(campaign: Campaign) -> list[tuple[int, str]]:
    if campaign.audience_rule == AudienceRule.NON_OPENERS_OF_PARENT:
        return eligible_non_openers(parent_id=campaign.parent_id)
    segment = campaign.segment
    if segment.kind == SegmentKind.DYNAMIC or segment.refreshed_at is None:
        refresh_segment(segment=segment)
    return eligible_recipients(segment_id=segment.pk)


def _write_messages(*, campaign: Campaign, rows: list[tuple[int, str, Draw]], queued_at) -> None:
    if connection.vendor == "postgresql":
        _copy_messages(campaign=campaign, rows=rows, queued_at=queued_at)
        return
    Message.objects.bulk_create(
        [
            Message(
                campaign=campaign,
                customer_id=customer_id,
                email=email,
                variant_id=assigned.variant_id,
                is_holdout=assigned.is_holdout,
                status=_status(assigned),
                queued_at=queued_at,
            )
            for customer_id, email, assigned in rows
        ],
        batch_size=2_000,
    )


_COPY_COLUMNS = (
    "campaign_id",
    "customer_id",
    "variant_id",
    "email",
    "period",
    "is_holdout",
    "status",
    "error",
    "attempts",
    "queued_at",
    "smtp_message_id",
    "opened_by_machine",
)


def _copy_escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy_messages(*, campaign: Campaign, rows: list[tuple[int, str, Draw]], queued_at) -> None:
    """PostgreSQL fast path: every message row in one COPY (text format)."""
    buffer = io.StringIO()
    stamp = queued_at.isoformat()
    for customer_id, email, assigned in rows:
        variant = r"\N" if assigned.variant_id is None else str(assigned.variant_id)
        status = _status(assigned)
        holdout = "t" if assigned.is_holdout else "f"
        buffer.write(
            f"{campaign.pk}\t{customer_id}\t{variant}\t{_copy_escape(email)}\t\t{holdout}\t"
            f"{status.value}\t\t0\t{stamp}\t\tf\n"
        )
    buffer.seek(0)
    table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(
            f"COPY {table} ({', '.join(_COPY_COLUMNS)}) FROM STDIN",  # our own names only
            buffer,
        )
