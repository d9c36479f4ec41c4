"""Telling the analytics rollups which days changed where their id watermark cannot see.

The rollups' incremental refresh (analytics.rollups) finds new purchases by id; an edited,
moved, cancelled or deleted purchase keeps or loses an id it has already passed, so the
customers code that makes such a change marks the purchase's days, before and after it, with
``analytics.rollups.mark_dirty`` for the next refresh to recompute.

The marks are written when the change commits (``transaction.on_commit``), in their own short
statement: nothing is marked for a change that is rolled back, and a long transaction (a
million-row import) holds no lock on the marked days that would make a concurrent edit of a
purchase on the same day wait for it. Between the commit and the mark (a few milliseconds)
a refresh may miss the change; the mark then has the next refresh recompute it, and should
the process die in between, the nightly ``verify_rollups`` finds the day by its figures.

A day is a calendar date in settings.TIME_ZONE, as the rollups count them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from functools import partial

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import TruncDate


def days_changed(days: Iterable[date | None]) -> None:
    """Have the analytics recompute ``days`` once the current transaction commits (at once
    outside a transaction)."""
    from analytics.rollups import mark_dirty

    marked = {day for day in days if day is not None}
    if marked:
        transaction.on_commit(partial(mark_dirty, dates=marked), robust=True)


def local_days(moments: Iterable[datetime | None]) -> set[date]:
    """The local calendar days of ``moments``."""
    from analytics.rollups import local_day

    return {local_day(moment) for moment in moments if moment is not None}


def days_of(purchases: QuerySet) -> set[date]:
    """The local days of ``purchases`` (one query, read now: call it before changing them)."""
    from analytics.rollups import analytics_timezone

    return set(
        purchases.annotate(day=TruncDate("purchased_at", tzinfo=analytics_timezone()))
        .order_by()
        .values_list("day", flat=True)
        .distinct()
    )


def purchases_changed(purchases: QuerySet) -> None:
    """Mark the days of ``purchases`` (as they are now): call it before moving, editing or
    deleting them, inside the transaction that does."""
    days_changed(days_of(purchases))


def long_insert_committed(*, first_id: int, count: int) -> None:
    """``count`` purchases were inserted with ids from ``first_id`` on by a long transaction
    (an import): once it commits, if other purchases were committed meanwhile with ids above
    ``first_id``, a refresh may have moved the watermark past these before they were visible,
    and would never count them: the days of every purchase from ``first_id`` on are marked.
    Otherwise (the usual case) the watermark finds them, and one index count costs little."""
    from customers.models import Purchase

    def check() -> None:
        from analytics.rollups import mark_dirty

        later = Purchase.objects.filter(id__gte=first_id)
        if later.count() > count:
            mark_dirty(dates=days_of(later))

    transaction.on_commit(check, robust=True)
