"""Integer arrays stored in a few bits where most of their values are alike.

The per-customer figures of a month (spend in minor units, purchase counts, customer ids
written as the differences between neighbours) are mostly small or equal: a purchase count
is 1 for nearly everyone, yen amounts are multiples of 100 minor units and most fit in 16
bits once divided by it, ids ascending within a cell differ by a few hundred. Stored as
they are (``bitmaps.pack_ints``: one width for the whole array) a filtered year of them is
tens of megabytes that PostgreSQL reads, sends and the page receives; packed here it is less
than half, and unpacking costs a few vectorised steps.

Layout (little-endian): a header ``MAGIC``, base width in bytes (0, 1, 2 or 4), the number of
exceptions (uint32), the scale and the fill (int64); then the base array; then the
exceptions' positions (uint32) and values (int64). Every value is ``scale`` times the base
entry (``fill`` for every entry with width 0), except at the exceptions' positions, which
hold their values exactly (a value that does not fit the base, a negative one).
"""

from __future__ import annotations

import struct

import numpy as np

MAGIC = b"CI"
_HEADER = struct.Struct("<2sBxIqq")
_BASES = {1: np.uint8, 2: np.uint16, 4: np.uint32}
_EXCEPTION_BYTES = 4 + 8


def _scale_of(values: np.ndarray) -> int:
    """The common factor of the values (1 when there is none, or only zeros)."""
    nonzero = values[values != 0]
    if not nonzero.size:
        return 1
    factor = int(np.gcd.reduce(np.abs(nonzero)))
    return factor if factor > 1 else 1


def pack(values: np.ndarray) -> bytes:
    """``values`` (any integer array, 64-bit range) in the smallest of the layouts."""
    values = np.asarray(values, dtype=np.int64)
    count = values.size
    scale = _scale_of(values)
    scaled = values // scale
    # Width 0: every entry the most common value, the others exceptions.
    if count:
        distinct, occurrences = np.unique(scaled, return_counts=True)
        fill = int(distinct[np.argmax(occurrences)])
    else:
        fill = 0
    best = (0, scaled != fill)
    best_size = int(best[1].sum()) * _EXCEPTION_BYTES
    for width, dtype in _BASES.items():
        outside = (scaled < 0) | (scaled > np.iinfo(dtype).max)
        size = count * width + int(outside.sum()) * _EXCEPTION_BYTES
        if size < best_size:
            best, best_size = (width, outside), size
    width, outside = best
    positions = np.flatnonzero(outside)
    parts = [_HEADER.pack(MAGIC, width, positions.size, scale, fill)]
    if width:
        parts.append(np.where(outside, 0, scaled).astype(_BASES[width]).tobytes())
    parts.append(positions.astype("<u4").tobytes())
    # The exact values, unscaled: what does not fit is rare and kept as it is.
    parts.append(values[positions].astype("<i8").tobytes())
    return b"".join(parts)


def unpack(blob: bytes | memoryview, count: int) -> np.ndarray:
    """The ``count`` values packed in ``blob`` (int64)."""
    if not count:
        return np.zeros(0, dtype=np.int64)
    magic, width, exceptions, scale, fill = _HEADER.unpack_from(blob)
    if magic != MAGIC or (width and width not in _BASES):
        raise ValueError("not a packed integer array")
    offset = _HEADER.size
    if width:
        base = np.frombuffer(blob, dtype=_BASES[width], count=count, offset=offset)
        values = base.astype(np.int64)
        if scale != 1:
            values *= scale
        offset += count * width
    else:
        values = np.full(count, fill * scale, dtype=np.int64)
    if exceptions:
        positions = np.frombuffer(blob, dtype="<u4", count=exceptions, offset=offset)
        offset += exceptions * 4
        values[positions] = np.frombuffer(blob, dtype="<i8", count=exceptions, offset=offset)
    return values
