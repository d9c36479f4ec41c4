"""Celery tasks of the customers app: thin wrappers around customers.importing."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError
from django.utils import translation

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
