"""Celery tasks of the analytics app: thin wrappers around analytics.rollups."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from analytics.customer_attributes import snapshot_customers, snapshot_lifetimes
from analytics.rollups import refresh_rollups, verify_rollups


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def refresh_analytics() -> None:
    """Scheduled every few minutes: new purchases and days marked dirty into the rollups, then
    the customers' attributes the filters read (a new snapshot) and the lifetime figures LTV
    reads (computed from those rollups). Safe to run twice at once: the second waits for the
    first's row locks, then has little left to do."""
    refresh_rollups()
    snapshot_customers()
    snapshot_lifetimes()


@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def verify_analytics() -> None:
    """Nightly: recompute the days whose rollups no longer match the purchases (edits,
    cancellations and deletions the refresh's id watermark cannot see)."""
    if verify_rollups():
        # Recomputed days are a new rollup version: without this, LTV would be computed
        # from the rollups on every page until the next scheduled refresh.
        snapshot_lifetimes()
