"""A per-customer column snapshot of everything segment rules read, for the columnar evaluator
(``segments.columnar``) behind the live count and preview on PostgreSQL.

What is in it (numpy arrays, one file each, customers by ascending id, "positions" index them):
profile codes (prefecture, gender, channel as small ints), birthday and signup day (days since
1970-01-01, local dates in settings.TIME_ZONE), birthday month, owner, e-mail consent; the
order of the builder's sample (newest first); tag links as sorted positions per tag; the
scores of ONE scoring run; the last completed purchase day; ticket counts (all and open);
and every completed purchase as three day-sorted arrays (day, customer position, total in
cents), so "in the last N days" is a searchsorted plus a bincount.

Building (``build_snapshot``): one REPEATABLE READ transaction of binary COPYs (fixed-width
rows read straight into numpy), a few seconds at 1M customers / 10M purchases, written under
``settings.SEGMENT_COLUMNS_DIR/<database>/`` as a new folder that ``current.json`` then names
(an atomic rename): the web processes of a host share the files through ``mmap`` and pick up
a new snapshot on their next request. Requests never build: ``request_build`` starts a
background thread that takes a host-wide file lock (one build at a time, others skip) and
builds at most once per ``MIN_BUILD_INTERVAL_S``. A thread rather than a Celery task because
the snapshot lives on the web host's disk: a worker on another host (or container) would
build it where no web process can map it.

Fresh, precisely: a snapshot answers a request only if, at the start of that request,
- the database is the one it was built from and no table it reads was rewritten (TRUNCATE,
  VACUUM FULL: same relfilenodes);
- the inserted / updated / deleted row counters PostgreSQL keeps for customers, purchases,
  tickets, customer tags and tags (pg_stat_user_tables, plus this connection's own pending
  transaction from pg_stat_xact_user_tables) equal those read just BEFORE the snapshot's
  data was read (so a change committed after the data was read always moves a counter);
- the largest customer, purchase, ticket and tag-link ids equal the snapshot's (catches new
  rows at once, before their counters are published);
- the latest succeeded scoring run is the run whose scores it holds (score rows are only
  written by their run, before it succeeds, and never edited afterwards).
PostgreSQL publishes a connection's counters when it goes idle, at most once a second
(PGSTAT_MIN_INTERVAL); this connection's are published first (pg_stat_force_next_flush). So
the window is: an UPDATE or DELETE committed by ANOTHER connection less than about 1 s before
the request (or, if that connection went straight on to a long statement, until that
statement ends) may not be seen yet; so may an insert whose id is not above the watermark
(a transaction that took its id before the build and committed after it). New rows of the
four id-watermarked tables are seen at once. Inside a transaction block (the caller may hold
uncommitted changes) the SQL answers. Whatever is not fresh is answered by SQL (today's
code, the oracle) while a rebuild is requested; a false alarm (counters published late)
costs only that. Dates are not part of freshness: ages, months and "last N days" are
computed at evaluation for today's date.

Cost of the check: two round trips and about 1 ms (the counters through the pg_stat_get_*
functions, the watermarks through the primary keys). Memory: ~200 MB of arrays at 1M
customers / 10M purchases, mapped read-only from the page cache and so shared by every
process of the host; a build needs about twice that, briefly, in the process that builds.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction

from customers.models import (
    ACTIVE_TICKET_STATUSES,
    Customer,
    Gender,
    Purchase,
    PurchaseStatus,
    SourceChannel,
    SupportTicket,
    Tag,
)
from customers.prefectures import Prefecture
from segments.models import CustomerScore, ParetoClass, RfmLabel, ScoringRun

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MIN_BUILD_INTERVAL_S = 30  # a database that changes all the time must not be rebuilt nonstop
KEEP_SNAPSHOTS = 2  # the current one and the previous, which a process may still be reading
NO_DAY = np.iinfo(np.int32).min  # no birthday / no purchase
UNKNOWN_CODE = 127  # a stored value outside the field's choices (imported raw)

# The coded text columns: 0 is "" (no value), k the k-th choice, UNKNOWN_CODE anything else.
PREFECTURES = [code for code, _label in Prefecture.choices]
GENDERS = [code for code, _label in Gender.choices]
CHANNELS = [code for code, _label in SourceChannel.choices]
RFM_LABELS = [code for code, _label in RfmLabel.choices]
PARETO_CLASSES = [code for code, _label in ParetoClass.choices]

# Tables whose every change makes a snapshot stale (scores are keyed by the run instead).
WATCHED = (Customer, Purchase, SupportTicket, Customer.tags.through, Tag)
# Tables whose largest id a snapshot records: an insert shows there before its counters do.
ID_WATERMARKED = (Customer, Purchase, SupportTicket, Customer.tags.through)


def supported() -> bool:
    return connection.vendor == "postgresql" and bool(settings.SEGMENT_COLUMNS_DIR)


def root() -> Path:
    return Path(settings.SEGMENT_COLUMNS_DIR) / connection.settings_dict["NAME"]


# --- reading PostgreSQL's binary COPY into numpy ---------------------------------------------

_COPY_HEADER = 19  # signature (11) + flags (4) + header extension length (4)
_COPY_TRAILER = 2


def _copy(cursor, sql: str, columns: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """The rows of ``sql`` (no NULLs, fixed-width types: "i2", "i4", "i8", "?") as native
    arrays by column name, parsed with one structured dtype: each binary COPY row is a field
    count then (length, value) per field."""
    dtype = [("_n", ">i2")]
    for name, kind in columns:
        dtype += [(f"_{name}_len", ">i4"), (name, kind if kind == "?" else f">{kind}")]
    buffer = io.BytesIO()
    cursor.copy_expert(f"COPY ({sql}) TO STDOUT (FORMAT binary)", buffer)
    data = buffer.getbuffer()[_COPY_HEADER : len(buffer.getbuffer()) - _COPY_TRAILER]
    rows = np.frombuffer(data, dtype=np.dtype(dtype))
    return {name: rows[name].astype(kind if kind == "?" else f"={kind}") for name, kind in columns}


def _coded(column: str, values: list[str]) -> str:
    codes = ",".join(f"'{v}'" for v in values)  # our own TextChoices values, no quotes in them
    return (
        f"(CASE WHEN {column} = '' OR {column} IS NULL THEN 0 ELSE "
        f"COALESCE(array_position(ARRAY[{codes}]::text[], {column}::text), {UNKNOWN_CODE}) "
        "END)::int2"
    )


_MICROS_1970_TO_2000 = 946_684_800 * 1_000_000


def _local_days(stamps: np.ndarray) -> np.ndarray:
    """Local calendar days (settings.TIME_ZONE, since 1970-01-01) of binary-COPY timestamptz
    values (microseconds since 2000-01-01 UTC). Converted here rather than with AT TIME ZONE
    in the query: that costs PostgreSQL 2.5 s per 10M rows, pandas a fraction of it."""
    utc = pd.to_datetime(stamps + _MICROS_1970_TO_2000, unit="us", utc=True)
    local = utc.tz_convert(settings.TIME_ZONE).tz_localize(None)
    return local.values.astype("datetime64[D]").astype(np.int64).astype(np.int32)


def _day_order(days: np.ndarray) -> np.ndarray:
    """The stable sorting order of ``days``: as 16-bit offsets when their span allows, which
    numpy sorts by radix (10M purchases: 0.1 s rather than 1.1 s)."""
    if len(days) and int(days.max()) - int(days.min()) < 2**16:
        return np.argsort((days - days.min()).astype(np.uint16), kind="stable")
    return np.argsort(days, kind="stable")


def _positions(ids: np.ndarray, of: np.ndarray) -> np.ndarray:
    """Positions of the customer ids ``of`` in the sorted ``ids`` (all present: one snapshot).
    Dense ids (the usual case) go through a lookup table, 20x faster than a binary search."""
    if len(ids) and ids[-1] <= 4 * len(ids) + 1000:
        table = np.zeros(int(ids[-1]) + 1, dtype=np.int32)
        table[ids] = np.arange(len(ids), dtype=np.int32)
        return table[of]
    return np.searchsorted(ids, of).astype(np.int32)


# --- the change detector -------------------------------------------------------------------


def change_signature(cursor) -> list:
    """Per watched table: its relfilenode and its insert/update/delete counters (published
    plus this transaction's own). This connection's committed changes are published first."""
    # Flushed as this statement ends; the next one reads fresh shared statistics.
    cursor.execute("SELECT pg_stat_force_next_flush(), pg_stat_clear_snapshot()")
    tables = [model._meta.db_table for model in WATCHED]
    # The counter functions themselves: the pg_stat_user_tables view costs a millisecond.
    cursor.execute(
        """
        SELECT t::text, pg_relation_filenode(t),
               pg_stat_get_tuples_inserted(t) + pg_stat_get_xact_tuples_inserted(t),
               pg_stat_get_tuples_updated(t) + pg_stat_get_xact_tuples_updated(t),
               pg_stat_get_tuples_deleted(t) + pg_stat_get_xact_tuples_deleted(t)
        FROM unnest(%s::regclass[]) AS t
        ORDER BY 1
        """,
        [tables],
    )
    return [list(row) for row in cursor.fetchall()]


def id_watermarks(cursor) -> list:
    selects = ", ".join(
        f"(SELECT coalesce(max(id), 0) FROM {model._meta.db_table})"  # noqa: S608 - ours
        for model in ID_WATERMARKED
    )
    cursor.execute(f"SELECT {selects}")
    return list(cursor.fetchone())


# --- the snapshot --------------------------------------------------------------------------

ARRAYS = (
    *("ids", "prefecture", "gender", "channel", "birthday", "birthday_month", "signup_day"),
    *("owner", "opt_in", "recent", "tag_positions", "last_day", "tickets_all", "tickets_open"),
    *("score_r", "score_f", "score_m", "score_decile", "score_label", "score_pareto"),
    *("p_day", "p_pos", "p_cents"),
)


@dataclass
class Snapshot:
    """A loaded snapshot: ``meta`` (signature, watermarks, run, tags) and the arrays."""

    path: Path
    meta: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    @property
    def size(self) -> int:
        return len(self.arrays["ids"])

    @property
    def run_id(self) -> int | None:
        return self.meta["run_id"]

    def tag_positions_of(self, name: str) -> np.ndarray:
        start, end = self.meta["tags"].get(name, (0, 0))
        return self.arrays["tag_positions"][start:end]

    def disk_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.path.iterdir())

    def is_fresh(self, cursor, run: ScoringRun | None) -> bool:
        if (run.pk if run else None) != self.meta["run_id"]:
            return False
        return (
            id_watermarks(cursor) == self.meta["watermarks"]
            and change_signature(cursor) == self.meta["signature"]
        )


def _read_data(cursor, run: ScoringRun | None) -> tuple[dict[str, np.ndarray], dict]:
    customers = _copy(
        cursor,
        f"""SELECT id, {_coded("prefecture", PREFECTURES)} AS prefecture,
                   {_coded("gender", GENDERS)} AS gender, {_coded("channel", CHANNELS)} AS channel,
                   coalesce(birthday - DATE '1970-01-01', {NO_DAY}) AS birthday,
                   coalesce(extract(month FROM birthday)::int2, 0::int2) AS birthday_month,
                   created_at,
                   coalesce(owner_id, 0)::int8 AS owner, email_opt_in
            FROM {Customer._meta.db_table} ORDER BY id""",  # noqa: S608
        [
            ("ids", "i8"),
            ("prefecture", "i2"),
            ("gender", "i2"),
            ("channel", "i2"),
            ("birthday", "i4"),
            ("birthday_month", "i2"),
            ("signup_day", "i8"),
            ("owner", "i8"),
            ("opt_in", "?"),
        ],
    )
    ids = customers["ids"]
    n = len(ids)
    arrays = {key: value for key, value in customers.items()}
    for key in ("prefecture", "gender", "channel", "birthday_month"):
        arrays[key] = arrays[key].astype(np.int8)
    arrays["signup_day"] = _local_days(arrays["signup_day"])
    recent = _copy(
        cursor,
        f"SELECT id FROM {Customer._meta.db_table} ORDER BY created_at DESC, id DESC",  # noqa: S608
        [("id", "i8")],
    )["id"]
    arrays["recent"] = _positions(ids, recent)

    links = _copy(
        cursor,
        f"SELECT tag_id, customer_id FROM {Customer.tags.through._meta.db_table}",  # noqa: S608
        [("tag", "i8"), ("customer", "i8")],
    )
    positions = _positions(ids, links["customer"])
    order = np.lexsort((positions, links["tag"]))
    tag_ids, positions = links["tag"][order], positions[order]
    arrays["tag_positions"] = positions
    tags = {}
    for tag_id, name in Tag.objects.values_list("id", "name"):
        start, end = np.searchsorted(tag_ids, [tag_id, tag_id + 1])
        tags[name] = (int(start), int(end))

    for key in ("r", "f", "m", "decile", "label", "pareto"):
        arrays[f"score_{key}"] = np.zeros(n, dtype=np.int8)  # 0: not scored in the run
    if run is not None:
        scores = _copy(
            cursor,
            f"""SELECT customer_id, r, f, m, decile, {_coded("rfm_label", RFM_LABELS)},
                       {_coded("pareto_class", PARETO_CLASSES)}
                FROM {CustomerScore._meta.db_table} WHERE run_id = {int(run.pk)}""",  # noqa: S608
            [(k, "i8" if k == "customer" else "i2") for k in ("customer", *"rfm", "d", "l", "p")],
        )
        # Rows of customers deleted since (no database foreign key) are left out.
        where = np.minimum(np.searchsorted(ids, scores["customer"]), max(n - 1, 0))
        known = ids[where] == scores["customer"] if n else np.zeros(0, dtype=bool)
        for key, column in (("r", "r"), ("f", "f"), ("m", "m"), ("decile", "d")):
            arrays[f"score_{key}"][where[known]] = scores[column][known]
        arrays["score_label"][where[known]] = scores["l"][known]
        arrays["score_pareto"][where[known]] = scores["p"][known]

    purchases = _copy(
        cursor,
        f"""SELECT purchased_at, customer_id,
                   (total * 100)::int8 AS cents
            FROM {Purchase._meta.db_table}
            WHERE status = '{PurchaseStatus.COMPLETED.value}'""",  # noqa: S608
        [("day", "i8"), ("customer", "i8"), ("cents", "i8")],
    )
    purchases["day"] = _local_days(purchases["day"])
    by_day = _day_order(purchases["day"])
    arrays["p_day"] = purchases["day"][by_day]
    arrays["p_pos"] = _positions(ids, purchases["customer"][by_day])
    arrays["p_cents"] = purchases["cents"][by_day]
    last_day = np.full(n, NO_DAY, dtype=np.int32)
    np.maximum.at(last_day, arrays["p_pos"], arrays["p_day"])
    arrays["last_day"] = last_day

    active = ",".join(f"'{s}'" for s in ACTIVE_TICKET_STATUSES)
    tickets = _copy(
        cursor,
        f"""SELECT customer_id, status IN ({active}) AS open
            FROM {SupportTicket._meta.db_table}""",  # noqa: S608
        [("customer", "i8"), ("open", "?")],
    )
    ticket_positions = _positions(ids, tickets["customer"])
    arrays["tickets_all"] = np.bincount(ticket_positions, minlength=n).astype(np.int32)
    arrays["tickets_open"] = np.bincount(ticket_positions[tickets["open"]], minlength=n).astype(
        np.int32
    )
    return arrays, {"tags": tags}


def build_snapshot(*, wait: bool = True) -> Snapshot | None:
    """Read the columns from the database and publish them as the host's current snapshot.
    Builds of a host take turns (a file lock): one that started later also read later, so a
    snapshot is never replaced by an older one. ``wait=False``: None if another one runs."""
    base = root()
    base.mkdir(parents=True, exist_ok=True)
    with open(base / "build.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return None
        try:
            os.utime(lock.fileno())  # the interval between background builds counts from here
            arrays, meta = _read()
            return _publish(base, arrays, meta)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read() -> tuple[dict[str, np.ndarray], dict]:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Read BEFORE the data: a change committed after the data snapshot is then always
        # one these counters do not include yet (see the module docstring).
        signature = change_signature(cursor)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("SET LOCAL jit = off")
        run = ScoringRun.objects.latest_succeeded()
        watermarks = id_watermarks(cursor)
        arrays, extra = _read_data(cursor, run)
    meta = {
        "version": FORMAT_VERSION,
        "database": connection.settings_dict["NAME"],
        "time_zone": settings.TIME_ZONE,
        "run_id": run.pk if run else None,
        "signature": signature,
        "watermarks": watermarks,
        "built_at": time.time(),
        "build_seconds": round(time.perf_counter() - started, 3),
        **extra,
    }
    return arrays, meta


def _publish(base: Path, arrays: dict[str, np.ndarray], meta: dict) -> Snapshot:
    name = f"snap-{time.time_ns()}-{uuid.uuid4().hex[:8]}"
    folder = base / name
    staging = base / f".{name}"
    staging.mkdir()
    for key in ARRAYS:
        np.save(staging / f"{key}.npy", np.ascontiguousarray(arrays[key]))
    (staging / "meta.json").write_text(json.dumps(meta))
    staging.rename(folder)
    pointer = base / f".current-{name}.json"
    pointer.write_text(json.dumps({"name": name}))
    os.replace(pointer, base / "current.json")  # atomic: readers see the old or the new one
    _prune(base, keep=name)
    return load(folder)


def _prune(base: Path, *, keep: str) -> None:
    folders = sorted(p for p in base.glob("snap-*") if p.is_dir() and p.name != keep)
    for old in folders[: max(0, len(folders) - (KEEP_SNAPSHOTS - 1))]:
        shutil.rmtree(old, ignore_errors=True)  # mapped files stay readable until unmapped


def load(folder: Path) -> Snapshot:
    meta = json.loads((folder / "meta.json").read_text())
    arrays = {key: np.load(folder / f"{key}.npy", mmap_mode="r") for key in ARRAYS}
    return Snapshot(path=folder, meta=meta, arrays=arrays)


_loaded: dict[str, Snapshot] = {}
_loaded_lock = threading.Lock()


def current() -> Snapshot | None:
    """The host's current snapshot for this database (mapped once per process), or None."""
    pointer = root() / "current.json"
    try:
        name = json.loads(pointer.read_text())["name"]
    except (OSError, ValueError, KeyError):
        return None
    key = str(root() / name)
    with _loaded_lock:
        snapshot = _loaded.get(key)
        if snapshot is None:
            try:
                snapshot = load(root() / name)
            except (OSError, ValueError):
                return None
            if snapshot.meta.get("version") != FORMAT_VERSION or snapshot.meta.get("time_zone") != (
                settings.TIME_ZONE
            ):
                return None
            _loaded.clear()  # the previous one is unmapped once no request holds it
            _loaded[key] = snapshot
        return snapshot


def fresh_snapshot(run: ScoringRun | None) -> Snapshot | None:
    """The current snapshot if it is fresh for this request (else None, and a rebuild is
    requested). Inside a transaction block the caller may hold changes of its own that a
    snapshot cannot see, so it gets SQL."""
    if not supported() or connection.in_atomic_block:
        return None
    snapshot = current()
    if snapshot is not None:
        with connection.cursor() as cursor:
            if snapshot.is_fresh(cursor, run):
                return snapshot
    request_build()
    return None


# --- building in the background ------------------------------------------------------------

_thread_guard = threading.Lock()


def request_build() -> bool:
    """Start a background build unless one runs in this process or one was started on this
    host less than MIN_BUILD_INTERVAL_S ago. Returns whether a thread was started."""
    if not supported():
        return False
    lock_path = root() / "build.lock"
    try:
        if time.time() - lock_path.stat().st_mtime < MIN_BUILD_INTERVAL_S:
            return False
    except FileNotFoundError:
        pass
    if not _thread_guard.acquire(blocking=False):
        return False
    thread = threading.Thread(target=_build_in_background, name="segment-columns", daemon=True)
    try:
        thread.start()
    except RuntimeError:
        _thread_guard.release()
        return False
    return True


def _build_in_background() -> None:
    try:
        build_snapshot(wait=False)
    except Exception:  # a failed build only means requests keep using SQL
        logger.exception("building the segment column snapshot failed")
    finally:
        connection.close()  # this thread's own connection
        _thread_guard.release()


def memory_bytes(snapshot: Snapshot) -> int:
    return sum(array.nbytes for array in snapshot.arrays.values())


def describe(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "customers": snapshot.size,
        "purchases": len(snapshot.arrays["p_day"]),
        "bytes": memory_bytes(snapshot),
        "build_seconds": snapshot.meta["build_seconds"],
    }
