"""Imports whose worker died are marked failed after 30 minutes without progress, instead of
showing "running" forever; live imports, and finished or queued ones, are left alone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone, translation

from customers import importing
from customers.import_watchdog import STALL_AFTER, fail_stalled_imports
from customers.models import ImportJob, ImportKind, ImportStatus
from customers.tasks import fail_stalled_imports as fail_stalled_imports_task
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db


def running_job(started_at, **fields) -> ImportJob:
    return ImportJob.objects.create(
        kind=ImportKind.CUSTOMERS,
        file_name="customers.csv",
        status=ImportStatus.RUNNING,
        started_at=started_at,
        **fields,
    )


def report_progress(job: ImportJob, rows_read: int) -> None:
    # What the worker's progress callback does (customers.importing.run_import_job).
    cache.set(
        importing._progress_key(job.pk),
        {"rows_read": rows_read, "processed_bytes": 100 * rows_read},
    )


def test_an_import_that_keeps_reporting_progress_stays_running():
    start = timezone.now()
    job = running_job(start)
    report_progress(job, 100)
    assert fail_stalled_imports(now=start + timedelta(minutes=20)) == []
    report_progress(job, 5000)
    assert fail_stalled_imports(now=start + timedelta(minutes=45)) == []
    # Stuck at 5,000 rows since minute 45: still within the grace period at minute 70.
    assert fail_stalled_imports(now=start + timedelta(minutes=70)) == []
    job.refresh_from_db()
    assert job.status == ImportStatus.RUNNING

    stalled_at = start + timedelta(minutes=45) + STALL_AFTER
    with translation.override("en"):  # the reason is stored in the language of the worker
        assert fail_stalled_imports(now=stalled_at) == [job.pk]
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    assert job.finished_at == stalled_at
    assert "stopped making progress" in job.errors[0]["reason"]


def test_an_import_that_never_reported_progress_fails_once_it_started_long_enough_ago():
    now = timezone.now()
    fresh = running_job(now - timedelta(minutes=5))
    dead = running_job(now - STALL_AFTER - timedelta(minutes=1))
    assert fail_stalled_imports(now=now) == [dead.pk]
    assert ImportJob.objects.get(pk=fresh.pk).status == ImportStatus.RUNNING


def test_finished_and_queued_imports_are_left_alone():
    long_ago = timezone.now() - timedelta(days=2)
    done = running_job(long_ago, finished_at=long_ago)
    ImportJob.objects.filter(pk=done.pk).update(status=ImportStatus.SUCCEEDED)
    queued = ImportJob.objects.create(
        kind=ImportKind.PURCHASES, file_name="p.csv", created_at=long_ago
    )
    assert fail_stalled_imports() == []
    assert ImportJob.objects.get(pk=done.pk).status == ImportStatus.SUCCEEDED
    assert ImportJob.objects.get(pk=queued.pk).status == ImportStatus.QUEUED


def test_the_periodic_task_fails_a_dead_import_in_a_worker(celery_worker):
    job = running_job(timezone.now() - timedelta(hours=2))
    fail_stalled_imports_task.delay()
    job = wait_for(lambda: ImportJob.objects.filter(pk=job.pk, status=ImportStatus.FAILED).first())
    assert job.errors[0]["reason"]
