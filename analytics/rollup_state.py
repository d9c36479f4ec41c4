"""The rollups' state as the readers key their caches by: (version, refreshed_at), which
every refresh or rebuild changes.

A dashboard page asks for it dozens of times from its parallel parts (every lookup of a
filter's customers, every period's figures), a query each: about 25 ms of one page's time,
holding the interpreter lock the other parts wait for. The page reads it once and pins it for
the threads computing its parts (``pinned``), which also keeps all its parts on one version.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from analytics.models import RollupState

_local = threading.local()


def current() -> tuple[int, datetime | None]:
    """(version, refreshed_at) of the rollups: the pinned state in a page's thread, else
    read now ((0, None) before any build)."""
    state = getattr(_local, "state", None)
    if state is not None:
        return state
    row = RollupState.objects.filter(id=1).values_list("version", "refreshed_at").first()
    return row or (0, None)


@contextmanager
def pinned(state: tuple[int, datetime | None]) -> Iterator[None]:
    """``current()`` answers ``state`` in this thread until the block ends."""
    previous = getattr(_local, "state", None)
    _local.state = state
    try:
        yield
    finally:
        _local.state = previous
