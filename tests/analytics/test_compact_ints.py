"""Integer arrays packed by their common factor, a narrow base and exceptions."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import compact_ints

RNG = np.random.default_rng(7)
CASES = {
    "empty": np.zeros(0, dtype=np.int64),
    "one value": np.array([5]),
    "all equal": np.full(1000, 1),
    "purchase counts": np.where(RNG.random(10_000) < 0.02, RNG.integers(2, 300, 10_000), 1),
    "yen amounts in minor units": RNG.integers(1, 2000, 10_000) * 500,
    "a few large amounts": np.r_[RNG.integers(1, 60_000, 1000) * 100, [10**12, 2**62, 7]],
    "ascending id differences": np.diff(
        np.r_[np.sort(RNG.choice(10**6, 3000, replace=False)), np.arange(5, 900, 7)], prepend=0
    ),
    "negatives": np.array([-(2**63), -1, 0, 1, 2**63 - 1]),
    "zeros": np.zeros(100, dtype=np.int64),
    "wide": RNG.integers(0, 2**40, 1000),
}


@pytest.mark.parametrize("name", CASES)
def test_unpack_gives_back_exactly_what_was_packed(name):
    values = np.asarray(CASES[name], dtype=np.int64)
    blob = compact_ints.pack(values)
    back = compact_ints.unpack(memoryview(blob), values.size)
    assert back.dtype == np.int64
    assert back.tolist() == values.tolist()


def test_mostly_alike_values_take_a_fraction_of_their_plain_width():
    counts = CASES["purchase counts"]
    # Purchase counts: 1 for 98% of customers, the rest exceptions (12 bytes each).
    assert len(compact_ints.pack(counts)) < counts.size * 0.3
    # Yen amounts: divided by their common factor, 16 bits each.
    amounts = CASES["yen amounts in minor units"]
    assert len(compact_ints.pack(amounts)) <= amounts.size * 2 + 24


def test_a_blob_of_another_format_is_refused():
    with pytest.raises(ValueError):
        compact_ints.unpack(np.arange(8, dtype=np.int32).tobytes(), 8)
