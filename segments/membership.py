"""Segment membership snapshots: the members table holds each segment's customers at its
last refresh, with the size recorded every time (the size history).

A refresh replaces the members in the database with one DELETE and one INSERT ... SELECT
built from the compiled rules' SQL, so a 200,000-member segment never passes through Python.
Dynamic segments are re-evaluated on every refresh (after each scoring run and on demand);
static segments are frozen at creation and only re-taken when asked explicitly (``force``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, transaction
from django.utils import timezone

from segments.evaluation import evaluation_settings, matching_customers
from segments.models import (
    CustomerScore,
    ScoringRun,
    Segment,
    SegmentKind,
    SegmentMember,
    SegmentSize,
)
from segments.rules import validate_rules

logger = logging.getLogger(__name__)


@transaction.atomic
def refresh_segment(*, segment: Segment, run: ScoringRun | None = None, force: bool = False) -> int:
    """Re-take the segment's members (score conditions read ``run``, default the latest
    succeeded run) and return their number. A static segment that already has its snapshot
    keeps it unless ``force``."""
    # The row lock serialises refreshes of one segment: two at once would insert twice.
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    if segment.kind == SegmentKind.STATIC and segment.refreshed_at is not None and not force:
        return segment.member_count
    members = matching_customers(segment.rules, run=run).order_by().values("id")
    SegmentMember.objects.filter(segment=segment).delete()
    with evaluation_settings():
        size = _insert_members(segment_id=segment.pk, customer_ids=members)
    now = timezone.now()
    SegmentSize.objects.create(segment=segment, size=size, run=run, measured_at=now)
    segment.member_count = size
    segment.refreshed_at = now
    segment.save(update_fields=["member_count", "refreshed_at", "updated_at"])
    return size


def _insert_members(*, segment_id: int, customer_ids) -> int:
    try:
        select_sql, params = customer_ids.query.sql_with_params()
    except EmptyResultSet:  # rules that can match nobody (e.g. scores before any run)
        return 0
    table = connection.ops.quote_name(SegmentMember._meta.db_table)
    # The table name is ours and the SELECT is Django's compiled SQL, its values passed as
    # parameters: nothing from the user is pasted into the text.
    sql = f"INSERT INTO {table} (segment_id, customer_id) SELECT %s, matched.id FROM ({select_sql}) matched"  # noqa: S608, E501
    with connection.cursor() as cursor:
        cursor.execute(sql, (segment_id, *params))
        return cursor.rowcount


def refresh_dynamic_segments(*, run: ScoringRun | None = None) -> int:
    """Refresh every dynamic segment, each in its own transaction; one failing segment is
    logged and does not stop the others. Returns how many were refreshed."""
    if run is not None and connection.vendor == "postgresql":
        # A run's score rows were just written in bulk: until the table is analysed the
        # planner believes the run has one row and plans nested loops over all of them.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(CustomerScore._meta.db_table)}")
    refreshed = 0
    for segment in Segment.objects.filter(kind=SegmentKind.DYNAMIC).order_by("pk"):
        try:
            refresh_segment(segment=segment, run=run)
        except Exception:
            logger.exception("Refreshing segment %s (%s) failed", segment.pk, segment.name)
        else:
            refreshed += 1
    return refreshed


@transaction.atomic
def create_segment(
    *, name: str, description: str, kind: str, rules: Any, created_by=None
) -> Segment:
    """Validate the rules (``RuleError``), save the segment and take its first snapshot."""
    segment = Segment.objects.create(
        name=name,
        description=description,
        kind=kind,
        rules=validate_rules(rules),
        created_by=created_by,
    )
    refresh_segment(segment=segment, force=True)
    segment.refresh_from_db()
    return segment


@transaction.atomic
def update_segment(
    *, segment: Segment, name: str, description: str, kind: str, rules: Any
) -> Segment:
    """Save the builder's changes and re-take the members at once, so the page shows the
    members of the rules just saved (a static segment is frozen again with its new rules)."""
    segment.name = name
    segment.description = description
    segment.kind = kind
    segment.rules = validate_rules(rules)
    segment.save(update_fields=["name", "description", "kind", "rules", "updated_at"])
    refresh_segment(segment=segment, force=True)
    segment.refresh_from_db()
    return segment
