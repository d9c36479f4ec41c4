"""The customers' attributes the dashboard filters on, kept as arrays indexed by customer id.

A filter (prefecture, source channel) and "customers on record at the end of a period" are
answered from a snapshot of every customer's creation and erasure day, prefecture and source
channel (``analytics.models.CustomerSnapshot``), rebuilt by the refresh task: a scan of a
million-row customers table costs hundreds of milliseconds, the arrays a few. The snapshot is
loaded once per process and kept while its row is unchanged (one primary-key lookup checks).

Freshness: customers created since the snapshot are read live (ids above its last one, an
index range); attribute edits and erasures of older customers show with the next snapshot
(the refresh runs every few minutes), as the filters' former five-minute cache did. A
snapshot older than ``STALE_AFTER`` (the refresh task stopped) is not used: the callers fall
back to querying the customers table.

Lifetime figures (``analytics.models.CustomerLifetime``), rebuilt with the snapshot: every
customer's acquisition cohort and completed spend ever, derived from the monthly rollups, so
that LTV restricted to any set of customers is a mask over two arrays. They are used only
while the rollups are still the version they were computed from; otherwise the same arrays
are computed from the rollups (slower, as exact). Stored with them, their sums per (cohort,
source channel of the customer snapshot) (``LifetimeTotals``): LTV without a filter reads
those few hundred figures instead of the megabytes of arrays.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
from django.db import transaction
from django.db.models.functions import TruncDate
from django.utils import timezone

from analytics import bitmaps, rollup_state
from analytics.binary_rows import binary_rows
from analytics.models import CustomerLifetime, CustomerSnapshot, MonthlyRollup
from analytics.rollups import analytics_timezone
from customers.models import Customer

STALE_AFTER = timedelta(minutes=15)
# Customer rows read per round trip while building.
CHUNK = 50_000


@dataclass(frozen=True)
class Attributes:
    """Arrays indexed by customer id (no customer: created 0)."""

    created: np.ndarray  # local day ordinal of creation
    erased: np.ndarray  # local day ordinal of erasure, 0 if not erased
    prefectures: np.ndarray  # index into values["prefecture"]
    channels: np.ndarray  # index into values["channel"]
    values: dict[str, list[str]]

    def matching(self, *, prefecture: str | None, channel: str | None) -> np.ndarray:
        """Ids of the customers with this prefecture and source channel (None: any)."""
        keep = self.created > 0
        for codes, name, wanted in (
            (self.prefectures, "prefecture", prefecture),
            (self.channels, "channel", channel),
        ):
            if wanted is not None:
                known = self.values[name]
                if wanted not in known:
                    return np.zeros(0, dtype=np.int64)
                keep &= codes == known.index(wanted)
        return np.flatnonzero(keep)

    def on_record(self, ids: np.ndarray, end: date) -> int:
        """How many of ``ids`` were created on or before ``end`` and not erased by then."""
        ids = ids[ids < self.created.size]
        created, erased = self.created[ids], self.erased[ids]
        day = end.toordinal()
        return int(((created > 0) & (created <= day) & ((erased == 0) | (erased > day))).sum())


def _rows(queryset):
    zone = analytics_timezone()
    return (
        queryset.annotate(
            created_day=TruncDate("created_at", tzinfo=zone),
            erased_day=TruncDate("erased_at", tzinfo=zone),
        )
        .order_by()
        .values_list("id", "created_day", "erased_day", "prefecture", "channel")
    )


def _arrays(rows, size: int, values: dict[str, list[str]]) -> Attributes:
    created = np.zeros(size, dtype=np.int32)
    erased = np.zeros(size, dtype=np.int32)
    prefectures = np.zeros(size, dtype=np.uint16)
    channels = np.zeros(size, dtype=np.uint16)
    codes = {name: {v: n for n, v in enumerate(known)} for name, known in values.items()}
    for cid, created_day, erased_day, prefecture, channel in rows:
        created[cid] = created_day.toordinal()
        erased[cid] = erased_day.toordinal() if erased_day else 0
        for name, value, target in (
            ("prefecture", prefecture, prefectures),
            ("channel", channel, channels),
        ):
            code = codes[name].get(value)
            if code is None:
                code = codes[name][value] = len(values[name])
                values[name].append(value)
            target[cid] = code
    return Attributes(created, erased, prefectures, channels, values)


def _from_table() -> tuple[int, Attributes]:
    """Every customer's attributes read from the customers table, and the last id read."""
    max_id = Customer.objects.order_by("-id").values_list("id", flat=True).first() or 0
    values: dict[str, list[str]] = {"prefecture": [""], "channel": [""]}
    rows = _rows(Customer.objects.filter(id__lte=max_id)).iterator(chunk_size=CHUNK)
    return max_id, _arrays(rows, max_id + 1, values)


@transaction.atomic
def snapshot_customers() -> CustomerSnapshot:
    """Rebuild the snapshot from the customers table (the refresh task calls it)."""
    built_at = timezone.now()
    max_id, attributes = _from_table()
    values = attributes.values
    # Stored narrow (a page load reads them): creation days as offsets from the first one,
    # erasures as (id, erasure day, creation day) of the few erased customers, codes in bytes
    # when they fit; and how many customers were created each day, for the count of all
    # customers on record without reading any per-customer array.
    created = attributes.created
    base = int(created[created > 0].min()) - 1 if created.any() else 0
    offsets = np.where(created > 0, created - base, 0)
    erased_ids = np.flatnonzero(attributes.erased)
    snapshot, _created = CustomerSnapshot.objects.update_or_create(
        id=1,
        defaults={
            "built_at": built_at,
            "max_customer_id": max_id,
            "created": bitmaps.pack_ints(offsets),
            "erased": np.stack([erased_ids, attributes.erased[erased_ids], created[erased_ids]])
            .astype(np.int64)
            .tobytes(),
            "prefectures": bitmaps.pack_ints(attributes.prefectures),
            "channels": bitmaps.pack_ints(attributes.channels),
            "values": {
                **values,
                "base": base,
                "created_per_day": np.bincount(offsets[offsets > 0]).tolist(),
            },
        },
    )
    return snapshot


_lock = threading.Lock()
_loaded: dict[str, tuple] = {}


def _load(stamp: tuple) -> Attributes:
    with _lock:
        cached = _loaded.get("snapshot")
        if cached is not None and cached[0] == stamp:
            return cached[1]
        snapshot = CustomerSnapshot.objects.filter(id=1)
        # The arrays by binary COPY (analytics.binary_rows): megabytes, a third of the time
        # of a SELECT's hex text; the JSON values apart.
        max_id, created_blob, erased_blob, prefectures, channels = next(
            binary_rows(snapshot, "max_customer_id", "created", "erased", "prefectures", "channels")
        )
        values = snapshot.values_list("values", flat=True).get()
        size = max_id + 1
        offsets = bitmaps.unpack_ints(created_blob, size).astype(np.int32)
        created = np.where(offsets > 0, offsets + np.int32(values["base"]), 0)
        erased = np.zeros(size, dtype=np.int32)
        erasures = np.frombuffer(erased_blob, dtype=np.int64).reshape(3, -1)
        erased[erasures[0]] = erasures[1]
        attributes = Attributes(
            created=created.astype(np.int32),
            erased=erased,
            prefectures=bitmaps.unpack_ints(prefectures, size).astype(np.uint16),
            channels=bitmaps.unpack_ints(channels, size).astype(np.uint16),
            values={k: values[k] for k in ("prefecture", "channel")},
        )
        _loaded["snapshot"] = (stamp, attributes)
        return attributes


def current_attributes() -> Attributes | None:
    """Every customer's attributes now (None without a recent snapshot)."""
    stamp = CustomerSnapshot.objects.values_list("built_at", "max_customer_id").first()
    if stamp is None or timezone.now() - stamp[0] > STALE_AFTER:
        return None
    attributes = _load(stamp)
    newer = list(_rows(Customer.objects.filter(id__gt=stamp[1])))
    if not newer:
        return attributes
    # Customers created since the snapshot: the arrays extended with them (copies: the
    # loaded snapshot stays as it was for the next caller).
    size = max(attributes.created.size, max(row[0] for row in newer) + 1)
    values = {name: list(known) for name, known in attributes.values.items()}
    extra = _arrays(newer, size, values)
    # Their ids are all above the snapshot's: the snapshot's arrays fill the start.
    for old, new in (
        (attributes.created, extra.created),
        (attributes.erased, extra.erased),
        (attributes.prefectures, extra.prefectures),
        (attributes.channels, extra.channels),
    ):
        new[: old.size] = old
    return extra


def customers_on_record(ends: list[date]) -> dict[date, int] | None:
    """All customers on record at the end of each day in ``ends``, from the snapshot's
    creations per day and its few erasures, and the customers created since (None without a
    recent snapshot)."""
    found = CustomerSnapshot.objects.values_list(
        "built_at", "max_customer_id", "values", "erased"
    ).first()
    if found is None or timezone.now() - found[0] > STALE_AFTER:
        return None
    _built_at, max_id, values, erased = found
    per_day = np.cumsum(np.array(values["created_per_day"], dtype=np.int64))
    erasures = np.frombuffer(erased, dtype=np.int64).reshape(3, -1)
    newer = [
        (created.toordinal(), erased_day.toordinal() if erased_day else 0)
        for _id, created, erased_day, _p, _c in _rows(Customer.objects.filter(id__gt=max_id))
    ]
    counts = {}
    for end in ends:
        day = end.toordinal()
        offset = min(day - values["base"], per_day.size - 1)
        created = int(per_day[offset]) if offset >= 0 else 0
        gone = int(((erasures[2] <= day) & (erasures[1] <= day)).sum())
        late = sum(1 for c, e in newer if c <= day and not (e and e <= day))
        counts[end] = created - gone + late
    return counts


def channels_now() -> tuple[np.ndarray, list[str]]:
    """Every customer's current source channel: codes indexed by customer id and the value of
    each code (0 is ""), from the snapshot, or without a recent one from the customers table
    (slow at a million customers, as exact)."""
    stamp = CustomerSnapshot.objects.values_list("built_at", "max_customer_id").first()
    found = None
    if stamp is not None and timezone.now() - stamp[0] <= STALE_AFTER:
        found = _snapshot_channels(stamp)
    if found is None:
        _max_id, attributes = _from_table()
        return attributes.channels, attributes.values["channel"]
    codes, values = found
    newer = list(Customer.objects.filter(id__gt=stamp[1]).values_list("id", "channel"))
    if not newer:
        return codes, values
    # Customers created since the snapshot, as in current_attributes (copies: the loaded
    # arrays stay as they were).
    values = list(values)
    extended = np.zeros(max(codes.size, max(cid for cid, _c in newer) + 1), dtype=np.uint16)
    extended[: codes.size] = codes
    for cid, channel in newer:
        if channel not in values:
            values.append(channel)
        extended[cid] = values.index(channel)
    return extended, values


def _snapshot_channels(stamp: tuple) -> tuple[np.ndarray, list[str]] | None:
    """The snapshot's channel codes and values (None if it was just rebuilt): from the whole
    snapshot when loaded already, else its channel column alone (a page without filters
    needs nothing else of it)."""
    with _lock:
        cached = _loaded.get("snapshot")
        if cached is not None and cached[0] == stamp:
            return cached[1].channels, cached[1].values["channel"]
        cached = _loaded.get("channels")
        if cached is not None and cached[0] == stamp:
            return cached[1]
        row = CustomerSnapshot.objects.filter(id=1, built_at=stamp[0])
        found = list(binary_rows(row, "channels"))
        values = row.values_list("values__channel", flat=True).first()
        if not found or values is None:
            return None
        codes = bitmaps.unpack_ints(found[0][0], stamp[1] + 1)
        _loaded["channels"] = (stamp, (codes, values))
        return codes, values


# --- Lifetime figures (LTV) -------------------------------------------------------------------


@dataclass(frozen=True)
class CohortNumbers:
    """Cohorts numbered by month: 1 is ``first_month`` (the oldest month with purchases)."""

    first_month: date | None

    def number_of(self, month: date) -> int:
        """The cohort number of ``month`` (below 1 before the first month)."""
        if self.first_month is None:
            return 0
        first = self.first_month
        return (month.year - first.year) * 12 + month.month - first.month + 1

    def month_of(self, number: int) -> date:
        months = self.first_month.year * 12 + self.first_month.month - 1 + number - 1
        return date(months // 12, months % 12 + 1, 1)


@dataclass(frozen=True)
class Lifetimes(CohortNumbers):
    """Arrays indexed by customer id: acquisition cohort and completed spend ever."""

    cohorts: np.ndarray  # months from first_month to the first purchase's, plus one; 0: none
    spend: np.ndarray  # minor units (narrowest integer type holding them; sums are int64)


@dataclass(frozen=True)
class LifetimeTotals(CohortNumbers):
    """The lifetime figures of every buyer summed per cohort number and source channel, as
    stored with the arrays: ``cells`` of [number, channel, customers, cents] for the buyers
    in the customer snapshot ``snapshot`` ([built_at ISO, last id]; channel as it holds it),
    and ``late`` [id, number, cents] for each buyer created after it, whose channel is read
    live (as ``channels_now`` does). Without a snapshot at build time, ``snapshot`` is None
    and the cells hold every buyer with channel None: good for cohorts, not for channels."""

    snapshot: list | None
    cells: list[list]
    late: list[list]

    def per_cohort(self) -> list[tuple[int, int, int]]:
        """(cohort number, customers, cents) of every cell and late buyer."""
        return [(number, n, cents) for number, _channel, n, cents in self.cells] + [
            (number, 1, cents) for _id, number, cents in self.late
        ]


def exact_sums(codes: np.ndarray, cents: np.ndarray, size: int) -> np.ndarray:
    """Exact int64 sums of ``cents`` per code 0..size-1."""
    if int(np.abs(cents).sum(dtype=np.int64)) < 2**53:
        # bincount adds in float64, exact for integers while every partial sum is below 2**53.
        return np.bincount(codes, weights=cents, minlength=size).astype(np.int64)
    sums = np.zeros(size, dtype=np.int64)
    np.add.at(sums, codes, cents)
    return sums


def lifetime_arrays() -> Lifetimes:
    """Every customer's cohort and lifetime spend computed from the monthly rollups: each
    month's first buyers are its cohort, the months' per-customer amounts add up to the
    spend (the same purchases, days and customers as the cohort cells)."""
    rows = binary_rows(
        MonthlyRollup.objects.order_by("month"), "month", "active", "amounts", "first_buyers"
    )
    months = []
    for month, active, amounts, first in rows:
        ids = bitmaps.to_numpy(bitmaps.load(active))
        cents = bitmaps.unpack_ints(amounts, ids.size)
        months.append((month, ids, cents, bitmaps.to_numpy(bitmaps.load(first))))
    if not months:
        empty = np.zeros(0, dtype=np.int64)
        return Lifetimes(None, empty, empty)
    size = 1 + max((int(ids[-1]) for _m, ids, _c, _f in months if ids.size), default=0)
    lifetimes = Lifetimes(
        months[0][0], np.zeros(size, dtype=np.int32), np.zeros(size, dtype=np.int64)
    )
    for month, ids, cents, first in months:
        # Ids are unique within a month: a plain fancy-indexed add is exact.
        lifetimes.spend[ids] += cents
        lifetimes.cohorts[first] = lifetimes.number_of(month)
    return lifetimes


@transaction.atomic
def snapshot_lifetimes() -> CustomerLifetime:
    """Rebuild the lifetime figures from the rollups (the refresh task calls it after the
    snapshot)."""
    # Read before the rollups: a refresh committed in between leaves the row labelled older
    # than what it holds, so ignored as stale, never the reverse.
    version, _refreshed_at = rollup_state.current()
    lifetimes = lifetime_arrays()
    totals = lifetime_totals(lifetimes)
    row, _created = CustomerLifetime.objects.update_or_create(
        id=1,
        defaults={
            "built_at": timezone.now(),
            "rollup_version": version,
            "max_customer_id": lifetimes.cohorts.size - 1,
            "first_month": lifetimes.first_month,
            "cohorts": bitmaps.pack_ints(lifetimes.cohorts),
            "spend": bitmaps.pack_ints(lifetimes.spend),
            "totals": totals,
        },
    )
    return row


def _recent_snapshot() -> tuple | None:
    """(built_at, last id) of the customer snapshot, None without a recent one (as
    ``channels_now``, which reads the customers table then)."""
    stamp = CustomerSnapshot.objects.values_list("built_at", "max_customer_id").first()
    if stamp is None or timezone.now() - stamp[0] > STALE_AFTER:
        return None
    return stamp


def lifetime_totals(lifetimes: Lifetimes) -> dict:
    """The stored form of ``LifetimeTotals``: the buyers' figures grouped by cohort and the
    channel the current customer snapshot gives them."""
    stamp = _recent_snapshot()
    found = _snapshot_channels(stamp) if stamp is not None else None
    buyers = np.flatnonzero(lifetimes.cohorts)
    if found is None:
        codes, values, last_id = np.zeros(lifetimes.cohorts.size, dtype=np.uint16), [None], None
    else:
        (codes, values), last_id = found, stamp[1]
    known = buyers if last_id is None else buyers[buyers <= last_id]
    late = buyers[known.size :]  # ids ascending: those past the snapshot's last id
    # One code per (cohort, channel) pair, so that one bincount groups them.
    keys = lifetimes.cohorts[known].astype(np.int64) * len(values) + codes[known]
    counts = np.bincount(keys)
    sums = exact_sums(keys, lifetimes.spend[known], counts.size)
    width = len(values)
    return {
        "snapshot": None if last_id is None else [stamp[0].isoformat(), last_id],
        "cells": [
            [int(key) // width, values[int(key) % width], int(counts[key]), int(sums[key])]
            for key in np.flatnonzero(counts)
        ],
        "late": [
            [int(cid), int(lifetimes.cohorts[cid]), int(lifetimes.spend[cid])] for cid in late
        ],
    }


def fresh_totals() -> LifetimeTotals | None:
    """The stored totals if computed from the current rollups (None otherwise, or in a row
    built before they existed): one small query, no array."""
    found = (
        CustomerLifetime.objects.filter(id=1, rollup_version=rollup_state.current()[0])
        .values_list("first_month", "totals")
        .first()
    )
    if found is None or found[1] is None:
        return None
    first_month, totals = found
    return LifetimeTotals(first_month, totals["snapshot"], totals["cells"], totals["late"])


def channel_totals(totals: LifetimeTotals) -> list[tuple[int, str, int, int]] | None:
    """(cohort number, source channel, customers, cents) of every buyer, grouped as
    ``channels_now`` would (the snapshot's channels, live ones for the customers created
    since); None unless the totals were built from the current customer snapshot."""
    stamp = _recent_snapshot()
    if stamp is None or totals.snapshot != [stamp[0].isoformat(), stamp[1]]:
        return None
    rows = [tuple(cell) for cell in totals.cells]
    if totals.late:
        ids = [cid for cid, _number, _cents in totals.late]
        live = dict(Customer.objects.filter(id__in=ids).values_list("id", "channel"))
        # A customer gone since counts as "" (code 0 of channels_now's arrays).
        rows += [(number, live.get(cid, ""), 1, cents) for cid, number, cents in totals.late]
    return rows


_lifetime_lock = threading.Lock()


def _stored_lifetimes(version: int) -> Lifetimes:
    # A binary COPY: megabytes of arrays without the hex encoding of a SELECT.
    queryset = CustomerLifetime.objects.filter(id=1, rollup_version=version)
    (found,) = binary_rows(queryset, "max_customer_id", "first_month", "cohorts", "spend")
    max_id, first_month, cohorts, spend = found
    # Views of the received bytes in their stored (narrow) types: no copy at all.
    return Lifetimes(
        first_month,
        bitmaps.unpack_ints(cohorts, max_id + 1),
        bitmaps.unpack_ints(spend, max_id + 1),
    )


def fresh_lifetimes() -> Lifetimes | None:
    """The stored lifetime figures if computed from the current rollups (None otherwise),
    loaded once per process while unchanged."""
    found = (
        CustomerLifetime.objects.filter(id=1, rollup_version=rollup_state.current()[0])
        .values_list("rollup_version", "built_at")
        .first()
    )
    if found is None:
        return None
    return _kept(("stored", *found), lambda: _stored_lifetimes(found[0]))


def computed_lifetimes() -> Lifetimes:
    """The lifetime figures of the current rollups: the stored ones when fresh, else computed
    from the rollups (every month's per-customer arrays; kept per process until the next
    refresh)."""
    fresh = fresh_lifetimes()
    if fresh is not None:
        return fresh
    # Keyed by the refresh time too: a version number alone can come back (a restored
    # database, the tests' rolled-back transactions).
    return _kept(("computed", *rollup_state.current()), lifetime_arrays)


def _kept(stamp: tuple, load) -> Lifetimes:
    with _lifetime_lock:
        cached = _loaded.get("lifetimes")
        if cached is not None and cached[0] == stamp:
            return cached[1]
        lifetimes = load()
        _loaded["lifetimes"] = (stamp, lifetimes)
        return lifetimes
