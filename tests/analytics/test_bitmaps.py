"""Compressed sets of customer ids."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import bitmaps


@pytest.mark.parametrize("ids", [[], [0, 5, 65_536, 4_000_000_000], list(range(0, 300_000, 3))])
def test_bitmaps_from_numpy_ids_hold_exactly_those_ids(ids):
    array = np.array(ids, dtype=np.int64)
    assert list(bitmaps.from_ids(array)) == ids
    assert list(bitmaps.from_ids(array.astype(np.uint32))) == ids
    with pytest.raises(ValueError):
        bitmaps.from_ids(np.array([2**32], dtype=np.int64))
