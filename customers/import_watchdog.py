"""Imports whose worker died: failed after a while without progress, so they do not show
"running" forever.

A running import reports its progress (rows read, bytes read) through the shared cache
(customers.importing.live_progress); the job row itself only changes at the end, because the
import writes in one transaction. A periodic sweep therefore remembers, per running job, the
progress it last saw and since when; a job whose progress has not moved for STALL_AFTER is
marked failed. A worker that was only slow and finishes later still records its outcome.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.cache import cache
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from customers.importing import live_progress
from customers.models import ImportJob, ImportStatus

# Imports report progress every batch (seconds apart); half an hour without any is a dead
# worker, not a slow batch.
STALL_AFTER = timedelta(minutes=30)
STALLED_REASON = _(
    "The import stopped making progress (its worker probably stopped); nothing was imported. "
    "Try again, or tell your administrator."
)


# A job that finishes leaves its watch entry behind; the cache forgets it after this.
WATCH_KEPT = 7 * 24 * 3600


def _progress(job: ImportJob) -> tuple[int, int]:
    job = live_progress(job)
    return job.rows_read, job.processed_bytes


def _watch_key(job_id: int) -> str:
    return f"import-watch:{job_id}"


def fail_stalled_imports(*, now: datetime | None = None) -> list[int]:
    """Mark failed every running import without progress for STALL_AFTER; returns their ids."""
    now = now or timezone.now()
    failed = []
    for job in ImportJob.objects.filter(status=ImportStatus.RUNNING).order_by("id"):
        seen = [*map(int, _progress(job))]
        key = _watch_key(job.pk)
        watch = cache.get(key)
        if watch is None:
            # First sight: a job that never reported progress has made none since it started.
            since = job.started_at if job.started_at and not any(seen) else now
        elif watch["seen"] != seen:
            since = now
        else:
            since = watch["since"]
        if now - since < STALL_AFTER:
            cache.set(key, {"seen": seen, "since": since}, timeout=WATCH_KEPT)
            continue
        # Conditional: a worker that finished meanwhile keeps its outcome.
        if ImportJob.objects.filter(pk=job.pk, status=ImportStatus.RUNNING).update(
            status=ImportStatus.FAILED,
            finished_at=now,
            errors=[{"line": None, "column": "", "reason": str(STALLED_REASON)}],
        ):
            failed.append(job.pk)
        cache.delete(key)
    return failed
