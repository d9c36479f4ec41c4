"""Open and click tracking: a fast, durable intake and a batched drain into the database.

A hit (pixel fetch or link click) is answered without waiting for the database:

1. the token is checked with its HMAC (``campaigns.tokens``, no query);
2. the request is classified where only the request can tell (``machine_events``), the IP is
   replaced by its keyed hash, and a compact event is appended (RPUSH) to a Redis list;
3. the pixel or the redirect goes out.

``drain_events`` (Celery, every few seconds from beat, and at once when the buffer grows past
``TRACKING_DRAIN_TRIGGER``) writes the buffered events in batches: it reads a batch (LRANGE),
writes it in one transaction, and only then removes it (LTRIM). Events therefore survive a
database outage in Redis and are written once the database answers again; a crash between the
commit and the LTRIM writes that batch twice (at least once, never lost), which first-open and
first-click times and unique rates do not notice. A lock keeps two drains from taking the same
batch. Events of messages that do not exist (deleted campaigns) or clicks on links of another
campaign are dropped.

Without ``TRACKING_BUFFER_URL`` (the embedded mode, no Redis) a hit is written directly; if
Redis is configured but down, the hit falls back to the direct write too. Only with both down is
an event lost (and the visitor still gets the pixel or the redirect).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import NamedTuple

import redis
from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import connection, transaction
from django.db.models import Min, OuterRef, Subquery
from django.dispatch import Signal
from django.utils.crypto import salted_hmac

from campaigns import machine_events
from campaigns.tokens import parse_message_token

logger = logging.getLogger(__name__)

# The smallest transparent GIF (1x1, 43 bytes).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

# On every tracking response: never cached (each fetch is an event), no referrer leaks the
# token to the destination site, and search engines keep the URLs out of their index.
TRACKING_HEADERS = (
    ("Cache-Control", "no-store, max-age=0"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Robots-Tag", "noindex, nofollow"),
    ("X-Content-Type-Options", "nosniff"),
)

OPEN = "open"
CLICK = "click"

BUFFER_KEY = "campaigns:tracking:events"
_LOCK_KEY = "campaigns:tracking:drain-lock"
_LOCK_SECONDS = 300
_LINK_CACHE_SECONDS = 24 * 3600

# Sent after each drain with the human events just written (never machine ones): the hook for
# automations reacting to opens and clicks. ``events`` is a list of TrackingEvent.
human_events_recorded = Signal()


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str
    message_id: int
    link_id: int | None
    at: float  # POSIX time of the request
    user_agent: str
    ip_hash: str
    machine_reason: str  # from the request alone (machine_events.classify_request)

    def encode(self) -> bytes:
        return json.dumps(
            [
                self.kind,
                self.message_id,
                self.link_id,
                self.at,
                self.user_agent,
                self.ip_hash,
                self.machine_reason,
            ],
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Hit | None:
        try:
            kind, message_id, link_id, at, agent, ip_hash, reason = json.loads(raw)
            return cls(kind, int(message_id), link_id, float(at), agent, ip_hash, reason)
        except (ValueError, TypeError):
            logger.warning("Dropping an unreadable tracking event: %r", raw[:200])
            return None


def ip_hash(ip: str) -> str:
    """Keyed SHA-256 of an IP address: lets repeated visits be told apart without storing it."""
    return salted_hmac("campaigns.tracking.ip", ip, algorithm="sha256").hexdigest()


def client_ip(environ) -> str:
    """The visitor's address: REMOTE_ADDR, or the entry of X-Forwarded-For that the trusted
    proxies (``AXES_IPWARE_PROXY_COUNT``, set with ``BEHIND_TLS_PROXY``) added."""
    proxies = getattr(settings, "AXES_IPWARE_PROXY_COUNT", None)
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",")]
        if len(hops) >= proxies:
            return hops[-proxies]
    return environ.get("REMOTE_ADDR", "")


def make_hit(
    *, kind: str, message_id: int, link_id: int | None, method: str, ip: str, user_agent: str
) -> Hit:
    user_agent = user_agent[:512]
    return Hit(
        kind=kind,
        message_id=message_id,
        link_id=link_id,
        at=time.time(),
        user_agent=user_agent,
        ip_hash=ip_hash(ip) if ip else "",
        machine_reason=machine_events.classify_request(
            kind=kind, method=method, ip=ip, user_agent=user_agent
        ),
    )


# --- Intake (the hot path) ------------------------------------------------------------------


@cache
def _buffer(url: str) -> redis.Redis:
    # One connection pool per process and URL; short timeouts so a dead Redis falls back to
    # the direct write instead of holding the visitor.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def buffer_client() -> redis.Redis | None:
    url = settings.TRACKING_BUFFER_URL
    return _buffer(url) if url else None


class _Intake(threading.local):
    def __init__(self):
        self.connections: dict[str, redis.connection.AbstractConnection] = {}


_intake = _Intake()


def _push(url: str, payload: bytes) -> int:
    """RPUSH one event on this thread's own connection; returns the buffer's length.

    Checking a connection out of redis-py's pool costs more than the command itself (a
    readiness poll and bookkeeping on every checkout: ~70 us against ~30 us for the RPUSH on
    loopback), and a hit is a single command, so each thread keeps one connection instead.
    """
    connection = _intake.connections.get(url)
    if connection is None or connection.pid != os.getpid():  # new thread, or a forked worker
        pool = _buffer(url).connection_pool
        connection = _intake.connections[url] = pool.connection_class(**pool.connection_kwargs)
    command = connection.pack_command("RPUSH", BUFFER_KEY, payload)
    try:
        try:
            connection.send_packed_command(command)
            return connection.read_response()
        except (redis.ConnectionError, redis.TimeoutError):
            # Redis closed an idle or old connection (restart, timeout): once more on a new
            # one. Should the first push have landed after all, the event is written twice,
            # which first-open times and unique rates do not notice (see the drain).
            connection.disconnect()
            connection.send_packed_command(command)
            return connection.read_response()
    except BaseException:
        connection.disconnect()  # whatever state the socket is in, start afresh next time
        raise


def record_hit(hit: Hit) -> None:
    """Keep one event: in the Redis buffer, or in the database without one (or if it fails)."""
    url = settings.TRACKING_BUFFER_URL
    if url:
        try:
            length = _push(url, hit.encode())
        except redis.RedisError:
            logger.exception("Tracking buffer unavailable; writing the event directly")
        else:
            if length % settings.TRACKING_DRAIN_TRIGGER == 0:
                _request_drain()
            return
    try:
        ingest([hit])
    except Exception:
        # The visitor still gets the pixel or the link; losing one event beats a 500.
        logger.exception("Tracking event lost: no buffer and no database")


def _request_drain() -> None:
    from campaigns.tracking_tasks import drain_tracking_events

    try:
        drain_tracking_events.delay()
    except Exception:  # the beat schedule drains anyway
        logger.exception("Could not enqueue a tracking drain")


def record_open(*, token: str, method: str, ip: str, user_agent: str) -> bool:
    """Record a pixel fetch if the token is genuine; True when recorded."""
    message_id = parse_message_token(token)
    if message_id is None:
        return False
    record_hit(
        make_hit(
            kind=OPEN,
            message_id=message_id,
            link_id=None,
            method=method,
            ip=ip,
            user_agent=user_agent,
        )
    )
    return True


def record_click(*, token: str, link_id: int, method: str, ip: str, user_agent: str) -> str | None:
    """The stored URL a genuine click goes to (the click is recorded), or None: a tampered
    token, or a link id that is not one of the message's campaign's links."""
    message_id = parse_message_token(token)
    if message_id is None:
        return None
    url = link_target(message_id=message_id, link_id=link_id)
    if url is None:
        return None
    record_hit(
        make_hit(
            kind=CLICK,
            message_id=message_id,
            link_id=link_id,
            method=method,
            ip=ip,
            user_agent=user_agent,
        )
    )
    return url


def link_target(*, message_id: int, link_id: int) -> str | None:
    """URL of link ``link_id`` if it belongs to the campaign of message ``message_id``.

    Both facts never change (a message stays in its campaign, a link keeps its URL), so they
    are cached: a message's repeated clicks and a campaign's popular links skip the database.
    """
    from campaigns.models import Link, Message

    message_key, link_key = f"campaigns:msg-campaign:{message_id}", f"campaigns:link:{link_id}"
    cached = django_cache.get_many([message_key, link_key])
    campaign_id = cached.get(message_key)
    link = cached.get(link_key)
    if campaign_id is None:
        campaign_id = (
            Message.objects.filter(pk=message_id).values_list("campaign_id", flat=True).first()
        )
        if campaign_id is None:
            return None
        django_cache.set(message_key, campaign_id, _LINK_CACHE_SECONDS)
    if link is None:
        link = Link.objects.filter(pk=link_id).values_list("campaign_id", "url").first()
        if link is None:
            return None
        django_cache.set(link_key, tuple(link), _LINK_CACHE_SECONDS)
    link_campaign_id, url = link
    return url if link_campaign_id == campaign_id else None


# --- Drain ----------------------------------------------------------------------------------


def drain_events(*, batch_size: int | None = None, max_batches: int = 50) -> int:
    """Move buffered events into the database, batch by batch; returns how many were read.

    A batch is removed from Redis only after its transaction committed: if the database is
    down, this raises and the events stay buffered for the next run.
    """
    client = buffer_client()
    if client is None:
        return 0
    batch_size = batch_size or settings.TRACKING_DRAIN_BATCH
    owner = uuid.uuid4().hex
    if not client.set(_LOCK_KEY, owner, nx=True, ex=_LOCK_SECONDS):
        return 0  # another drain is running
    drained = 0
    try:
        for _ in range(max_batches):
            raw = client.lrange(BUFFER_KEY, 0, batch_size - 1)
            if not raw:
                break
            ingest([hit for hit in map(Hit.decode, raw) if hit is not None])
            # Only RPUSH adds (at the tail), so the head still holds exactly this batch.
            client.ltrim(BUFFER_KEY, len(raw), -1)
            drained += len(raw)
            if len(raw) < batch_size:
                break
    finally:
        if client.get(_LOCK_KEY) == owner.encode():
            client.delete(_LOCK_KEY)
    return drained


def buffered_count() -> int:
    """Events waiting in the buffer (0 without one)."""
    client = buffer_client()
    return client.llen(BUFFER_KEY) if client is not None else 0


def _aware(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class _Row(NamedTuple):
    """One event to write, in TrackingEvent's field names."""

    message_id: int
    kind: str
    link_id: int | None
    occurred_at: datetime
    is_machine: bool
    machine_reason: str
    user_agent: str
    ip_hash: str


@transaction.atomic
def ingest(hits: list[Hit]) -> int:
    """Write events of existing messages (clicks only on their campaign's links), classify
    them, and update the messages' first open / first click / machine-open fields; returns
    how many events were written."""
    from campaigns.models import EventKind, Link, Message, TrackingEvent

    if not hits:
        return 0
    messages = {
        pk: (campaign_id, sent_at)
        for pk, campaign_id, sent_at in Message.objects.filter(
            pk__in={hit.message_id for hit in hits}
        ).values_list("pk", "campaign_id", "sent_at")
    }
    link_campaigns = dict(
        Link.objects.filter(
            pk__in={hit.link_id for hit in hits if hit.kind == CLICK and hit.link_id}
        ).values_list("pk", "campaign_id")
    )
    rows = []
    for hit in hits:
        if hit.message_id not in messages or hit.kind not in (OPEN, CLICK):
            continue
        campaign_id, sent_at = messages[hit.message_id]
        if hit.kind == CLICK and link_campaigns.get(hit.link_id) != campaign_id:
            continue
        occurred_at = _aware(hit.at)
        reason = hit.machine_reason or machine_events.classify_timing(
            occurred_at=occurred_at, sent_at=sent_at
        )
        link_id = hit.link_id if hit.kind == CLICK else None
        agent = hit.user_agent[:512]
        rows.append(
            _Row(
                hit.message_id,
                hit.kind,
                link_id,
                occurred_at,
                bool(reason),
                reason,
                agent,
                hit.ip_hash,
            )
        )
    if not rows:
        return 0
    pks = _insert_events(rows)
    # Model instances only where they are needed: clicks (burst detection may reflag them)
    # and, if anything listens, the hook's human events. Opens are most of the volume.
    clicks = {
        pk: TrackingEvent(pk=pk, **row._asdict())
        for pk, row in zip(pks, rows, strict=True)
        if row.kind == CLICK
    }
    reflagged = _flag_click_bursts(list(clicks.values()))

    opened = {r.message_id for r in rows if r.kind == EventKind.OPEN and not r.is_machine}
    machine_opened = {r.message_id for r in rows if r.kind == EventKind.OPEN and r.is_machine}
    clicked = {event.message_id for event in clicks.values()} | reflagged
    if opened:
        _refresh_first_time(opened, EventKind.OPEN, "first_opened_at")
    if machine_opened:
        Message.objects.filter(pk__in=machine_opened, opened_by_machine=False).update(
            opened_by_machine=True
        )
    if clicked:
        _refresh_first_time(clicked, EventKind.CLICK, "first_clicked_at")
    if human_events_recorded.has_listeners(TrackingEvent):
        events = (
            clicks.get(pk) or TrackingEvent(pk=pk, **row._asdict())
            for pk, row in zip(pks, rows, strict=True)
        )
        human = [event for event in events if not event.is_machine]
        if human:
            transaction.on_commit(
                lambda: human_events_recorded.send(sender=TrackingEvent, events=human)
            )
    return len(rows)


def _insert_events(rows: list[_Row]) -> list[int]:
    """Write the events; their primary keys, in order.

    PostgreSQL fast path: one INSERT from column arrays (unnest). Building a model instance per
    event and bulk_create's per-value SQL took more than half of a drain's time, and a busy
    campaign's opens arrive by the thousand per second. Elsewhere: bulk_create.
    """
    from campaigns.models import TrackingEvent

    if connection.vendor != "postgresql":
        created = TrackingEvent.objects.bulk_create(TrackingEvent(**row._asdict()) for row in rows)
        return [event.pk for event in created]
    meta, quote = TrackingEvent._meta, connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in _Row._fields)
    arrays = ", ".join(f"%s::{kind}[]" for kind in _ROW_TYPES)
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    # Identifiers from the model, every value a parameter.
    sql = f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) RETURNING {pk}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(column) for column in zip(*rows, strict=True)])
        return [pk for (pk,) in cursor.fetchall()]


_ROW_TYPES = ("bigint", "text", "bigint", "timestamptz", "boolean", "text", "text", "text")


def _refresh_first_time(message_ids: set[int], kind: str, field: str) -> None:
    """Recompute a first-event time from the human events: idempotent, and right even when a
    late-seen burst turned earlier clicks into machine ones."""
    from campaigns.models import Message, TrackingEvent

    first = (
        TrackingEvent.objects.filter(message=OuterRef("pk"), kind=kind, is_machine=False)
        .order_by()
        .values("message")
        .annotate(first=Min("occurred_at"))
        .values("first")
    )
    Message.objects.filter(pk__in=message_ids).update(**{field: Subquery(first)})


def _flag_click_bursts(new_clicks: list) -> set[int]:
    """Mark clicks that form a burst (machine_events.scanner_bursts) as scanner clicks, the
    message's earlier clicks in the window included; returns the messages touched."""
    from campaigns.models import EventKind, TrackingEvent

    if not new_clicks:
        return set()
    since = min(event.occurred_at for event in new_clicks) - timedelta(
        seconds=machine_events.BURST_SECONDS
    )
    recent = TrackingEvent.objects.filter(
        message_id__in={event.message_id for event in new_clicks},
        kind=EventKind.CLICK,
        occurred_at__gte=since,
    ).values_list("pk", "message_id", "link_id", "occurred_at")
    burst_ids = machine_events.scanner_bursts(recent)
    if not burst_ids:
        return set()
    TrackingEvent.objects.filter(pk__in=burst_ids, is_machine=False).update(
        is_machine=True, machine_reason=machine_events.SCANNER
    )
    touched = set()
    for event in new_clicks:
        if event.pk in burst_ids and not event.is_machine:
            event.is_machine, event.machine_reason = True, machine_events.SCANNER
            touched.add(event.message_id)
    return touched | set(
        TrackingEvent.objects.filter(pk__in=burst_ids).values_list("message_id", flat=True)
    )
