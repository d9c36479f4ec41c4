"""Celery tasks of the customers app: thin wrappers around customers.importing,
customers.import_watchdog and customers.quality."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError
from django.utils import translation

from customers import import_watchdog, quality
from customers.importing import claim_import_job, run_uploaded_import


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def run_import(job_id: int, language: str | None = None) -> None:
    """Run an uploaded CSV import. Safe to deliver twice: only the worker that moves the job
    from queued to running imports it. A database outage before that is retried; a file that
    failed is not (it would fail again), the job page says why."""
    job = claim_import_job(job_id=job_id)
    if job is None:
        return
    # Row errors are stored as text, in the language of the person who uploaded the file.
    with translation.override(language):
        run_uploaded_import(job=job)


@shared_task(acks_late=True, ignore_result=True)
def fail_stalled_imports() -> None:
    """Periodic: imports whose worker died are marked failed instead of running forever."""
    import_watchdog.fail_stalled_imports()


@shared_task(acks_late=True, ignore_result=True)
def refresh_data_quality() -> None:
    """Nightly: recompute the cached data-quality figures, so the page never waits for them."""
    quality.refresh_cached_figures()
