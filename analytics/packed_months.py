"""A month's breakdown cells of one dimension packed in one row (``PackedMonth``), and the
filtered breakdowns' reading of them.

Written from the month cells whenever those are (``write``), so a row always holds the same
entries as its month's cells; ``add_missing`` fills the rows of months whose cells were
built before the rows existed (the refresh calls it). Readers use a month's row where it
exists and its cells otherwise: the figures are the same.

Reading a row for a set of customers (``masked``): the ids are the running sum of the stored
differences; one flag lookup tells which entries are wanted; each key's purchases and spend
are the sums of its run of entries times the flags (``np.add.reduceat``), and the wanted
customers of each key (for distinct counts) the kept ids cut at the same runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
from django.db import transaction

from analytics import bitmaps, compact_ints
from analytics.binary_rows import binary_rows
from analytics.models import BreakdownCell, BreakdownDimension, PackedMonth

_STARTS = np.dtype("<i4")


def write(month: date, cells: Iterable[BreakdownCell]) -> None:
    """Replace ``month``'s packed rows by those of its month ``cells`` (every dimension)."""
    PackedMonth.objects.filter(month=month).delete()
    by_dimension: dict[str, list[BreakdownCell]] = {}
    for cell in cells:
        by_dimension.setdefault(cell.dimension, []).append(cell)
    rows = []
    for dimension, group in sorted(by_dimension.items()):
        # By key: the same row whatever order the cells came in.
        parts = [
            (cell.key, *bitmaps.figures_of(cell.customers, cell.amounts, cell.counts))
            for cell in sorted(group, key=lambda cell: cell.key)
        ]
        parts = [part for part in parts if part[1].size]
        if not parts:
            continue
        ids = np.concatenate([ids for _key, ids, _n, _c in parts]).astype(np.int64)
        sizes = [ids.size for _key, ids, _n, _c in parts]
        rows.append(
            PackedMonth(
                month=month,
                dimension=dimension,
                keys=[key for key, *_figures in parts],
                starts=np.concatenate([[0], np.cumsum(sizes)]).astype(_STARTS).tobytes(),
                # Ascending within a key: small differences, and a negative one at each
                # key's first id, which the packing keeps as an exception.
                customers=compact_ints.pack(np.diff(ids, prepend=0)),
                counts=compact_ints.pack(np.concatenate([n for _key, _ids, n, _c in parts])),
                amounts=compact_ints.pack(np.concatenate([c for _key, _ids, _n, c in parts])),
            )
        )
    PackedMonth.objects.bulk_create(rows)


def add_missing() -> int:
    """Write the packed rows of every month with month cells of a dimension and no row for
    it (cells built before the rows existed, or a write interrupted); return the number of
    months written."""
    have = set(PackedMonth.objects.values_list("dimension", "month"))
    wanted: set[tuple[str, date]] = set()
    for dimension in BreakdownDimension.values:
        # One dimension at a time: the index on (dimension, is_month, day) answers each.
        wanted |= {
            (dimension, day)
            for day in BreakdownCell.objects.filter(dimension=dimension, is_month=True)
            .values_list("day", flat=True)
            .distinct()
        }
    months = sorted({month for _dimension, month in wanted - have})
    for month in months:
        with transaction.atomic():
            cells = BreakdownCell.objects.filter(is_month=True, day=month).only(
                "dimension", "key", "customers", "amounts", "counts"
            )
            write(month, list(cells))
    return len(months)


def rows(dimension: str, months: list[date]) -> list[tuple]:
    """(month, keys, starts, customers, amounts, counts) of the packed rows of ``months``
    that exist."""
    if not months:
        return []
    return list(
        binary_rows(
            PackedMonth.objects.filter(dimension=dimension, month__in=months),
            "month",
            "keys",
            "starts",
            "customers",
            "amounts",
            "counts",
        )
    )


@dataclass
class Masked:
    """A packed row's figures for a set of customers, per key (in ``keys``' order)."""

    keys: list[str]
    purchases: np.ndarray
    cents: np.ndarray
    # Per key, the ids of its wanted customers (only when asked for).
    customers: list[np.ndarray] | None


def masked(row: tuple, lookup: np.ndarray, *, with_customers: bool = False) -> Masked:
    """``row`` (as ``rows`` reads it) restricted to the customers flagged in ``lookup``
    (``bitmaps.lookup_of``)."""
    _month, keys, starts, customers, amounts, counts = row
    starts = np.frombuffer(starts, dtype=_STARTS)
    size = int(starts[-1])
    heads = starts[:-1]
    ids = np.cumsum(compact_ints.unpack(customers, size))
    keep = lookup.take(ids, mode="clip")
    # Every key has at least one entry: reduceat sums exactly each key's run.
    purchases = np.add.reduceat(compact_ints.unpack(counts, size) * keep, heads)
    cents = np.add.reduceat(compact_ints.unpack(amounts, size) * keep, heads)
    wanted = None
    if with_customers:
        kept = np.flatnonzero(keep)
        cuts = np.searchsorted(kept, starts)
        kept_ids = ids.take(kept)
        wanted = [kept_ids[cuts[i] : cuts[i + 1]] for i in range(len(keys))]
    return Masked(list(keys), purchases, cents, wanted)


def distinct(pieces: list[np.ndarray], flags: np.ndarray) -> int:
    """How many different ids ``pieces`` hold together, with ``flags`` (all False, long
    enough for every id) as scratch space: left all False again."""
    if not pieces:
        return 0
    ids = np.concatenate(pieces)
    flags[ids] = True
    count = int(np.count_nonzero(flags))
    flags[ids] = False
    return count
