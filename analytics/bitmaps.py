"""Compressed sets of customer ids (Roaring bitmaps) as stored in the rollup tables."""

from __future__ import annotations

import array
from collections.abc import Iterable

import numpy as np
from pyroaring import BitMap

# pyroaring's BitMap holds 32-bit values; customer ids beyond are refused loudly rather than
# silently wrapped (4.29 billion customers is far beyond what one database here holds).
MAX_ID = 2**32 - 1
# The array.array type code of unsigned 32-bit integers ("I" on every platform we know).
_UINT32 = next(code for code in "IL" if array.array(code).itemsize == 4)


def load(blob: bytes | memoryview | None) -> BitMap:
    if not blob:
        return BitMap()
    return BitMap.deserialize(bytes(blob))


def dump(bitmap: BitMap) -> bytes:
    if not bitmap:
        return b""
    bitmap.run_optimize()
    return bitmap.serialize()


def from_ids(ids: Iterable[int] | np.ndarray) -> BitMap:
    if isinstance(ids, np.ndarray):
        if ids.size and int(ids.max()) > MAX_ID:
            raise ValueError("customer ids above 2**32-1 are not supported by the rollups")
        # Through an array.array: pyroaring reads its buffer at once, where a numpy array
        # is iterated value by value (5x slower, holding the interpreter lock).
        return BitMap(array.array(_UINT32, ids.astype(np.uint32, copy=False).tobytes()))
    return BitMap(ids)


def union(bitmaps: Iterable[BitMap]) -> BitMap:
    bitmaps = [b for b in bitmaps if b]
    if not bitmaps:
        return BitMap()
    if len(bitmaps) == 1:
        return bitmaps[0].copy()
    return BitMap.union(*bitmaps)


def to_numpy(bitmap: BitMap) -> np.ndarray:
    """The sorted ids as a numpy array (uint32)."""
    return np.frombuffer(bitmap.to_array(), dtype=np.uint32)


# Per-customer figures aligned with a bitmap's sorted ids, in the narrowest integer type that
# holds them: the reader tells the type from the length (bytes per id), so a year of days
# loads a third of what fixed 64-bit columns would.
_WIDTHS = {1: np.uint8, 2: np.int16, 4: np.int32, 8: np.int64}


def pack_ints(values: np.ndarray) -> bytes:
    if values.size == 0:
        return b""
    low, high = int(values.min()), int(values.max())
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return values.astype(dtype).tobytes()
    return values.astype(np.int64).tobytes()


def unpack_ints(blob: bytes | memoryview | None, count: int) -> np.ndarray:
    if not blob or not count:
        return np.zeros(0, dtype=np.int64)
    return np.frombuffer(blob, dtype=_WIDTHS[len(blob) // count])


def merge_figures(
    parts: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, counts, cents) arrays of several days or months, each with sorted unique ids,
    merged into one: sorted unique ids with each one's counts and cents summed (exactly, in
    64-bit integers)."""
    parts = [p for p in parts if p[0].size]
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    ids = np.concatenate([p[0] for p in parts]).astype(np.int64, copy=False)
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    counts = np.add.reduceat(np.concatenate([p[1] for p in parts]).astype(np.int64)[order], starts)
    cents = np.add.reduceat(np.concatenate([p[2] for p in parts]).astype(np.int64)[order], starts)
    return ids[starts], counts, cents


def figures_of(active, amounts, counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stored row's (ids, counts, cents): its ``active`` bitmap with the aligned arrays."""
    ids = to_numpy(load(active))
    return ids, unpack_ints(counts, ids.size), unpack_ints(amounts, ids.size)


def lookup_of(wanted: BitMap) -> np.ndarray:
    """One flag per id up to the largest wanted one, and a last False that every larger id
    is clipped onto: ``lookup.take(ids, mode="clip")`` tells which of ``ids`` are wanted."""
    lookup = np.zeros((wanted.max() + 2) if wanted else 1, dtype=bool)
    lookup[to_numpy(wanted)] = True
    return lookup


def masked_sum(values: np.ndarray, keep: np.ndarray) -> int:
    """The sum of ``values`` where ``keep`` is True, exactly (64-bit). Multiplying by the
    flags is several times faster than ``np.sum(where=)`` or selecting the kept values, and
    cannot overflow: each product is 0 or the value itself."""
    return int((values * keep).sum(dtype=np.int64))
