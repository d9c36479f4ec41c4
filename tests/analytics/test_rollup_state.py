"""The rollups' state read once per page and pinned for its threads."""

from __future__ import annotations

import threading

import pytest

from analytics import rollup_state
from analytics.models import RollupState
from analytics.rollups import rebuild_rollups

pytestmark = pytest.mark.django_db


def test_current_reads_the_state_and_a_pinned_state_costs_no_query(
    django_assert_num_queries,
):
    assert rollup_state.current() == (0, None)
    rebuild_rollups()
    row = RollupState.objects.get()
    assert rollup_state.current() == (row.version, row.refreshed_at)
    with rollup_state.pinned((41, None)), django_assert_num_queries(0):
        assert rollup_state.current() == (41, None)
        with rollup_state.pinned((42, None)):
            assert rollup_state.current() == (42, None)
        assert rollup_state.current() == (41, None)
    assert rollup_state.current() == (row.version, row.refreshed_at)


def test_a_pinned_state_is_the_pinning_threads_own():
    seen = []
    with rollup_state.pinned((7, None)):
        # Another thread reads the table (no rollups built: version 0).
        thread = threading.Thread(target=lambda: seen.append(_read_and_close()))
        thread.start()
        thread.join()
    assert seen == [(0, None)]


def _read_and_close():
    from django.db import connection

    try:
        return rollup_state.current()
    finally:
        connection.close()
