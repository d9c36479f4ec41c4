"""Celery task draining the tracking buffer (campaigns.tracking.drain_events).

Registered through ``CELERY_IMPORTS`` (crm/settings.py) and run by beat every
``TRACKING_DRAIN_SECONDS``, and on demand when the buffer grows past ``TRACKING_DRAIN_TRIGGER``.
"""

from __future__ import annotations

from celery import shared_task

from campaigns.tracking import drain_events


@shared_task(
    acks_late=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=None,
    ignore_result=True,
)
def drain_tracking_events() -> int:
    # A database outage raises here: the events stay buffered and the retry (or the next beat
    # run) writes them. Safe to run twice: a lock lets one drain at a time take batches.
    return drain_events()
