"""Celery tasks of the segments app: thin wrappers (ids in, one function call) around
segments.runs and segments.membership."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from segments import membership, reports, runs
from segments.models import ScoringRun, Segment

# Only a database that is briefly unreachable is worth retrying; a run records its own
# failures (segments.runs.execute_scoring_run) and a second delivery of it does nothing.
RETRY = {
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "max_retries": 5,
}


@shared_task(**RETRY)
def run_scoring(run_id: int) -> None:
    run = ScoringRun.objects.filter(pk=run_id).first()
    if run is not None:
        runs.execute_scoring_run(run=run)


@shared_task(**RETRY)
def nightly_scoring() -> None:
    """Beat, every few minutes: fail runs whose worker died, then start tonight's run once it
    is due (segments.runs.start_nightly_run claims the night, so extra beats do nothing)."""
    runs.fail_stale_runs()
    runs.start_nightly_run()


@shared_task(**RETRY)
def refresh_segment(segment_id: int) -> None:
    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is not None:
        membership.refresh_segment(segment=segment, run=ScoringRun.objects.latest_succeeded())


@shared_task(**RETRY)
def refresh_dynamic_segments(run_id: int | None = None) -> None:
    run = ScoringRun.objects.filter(pk=run_id).first() if run_id else None
    membership.refresh_dynamic_segments(run=run)


@shared_task(**RETRY)
def warm_score_reports(run_id: int) -> None:
    run = ScoringRun.objects.succeeded().filter(pk=run_id).first()
    if run is not None:
        reports.warm_cache(run=run)
