"""Reachability of what the app depends on: database, broker, Celery workers, beat.

Each check returns a small dict; ``run_checks`` adds the overall status. The worker ping is
cached for a few seconds so that a burst of health probes cannot flood the broker.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from crm.celery import app as celery_app

WORKER_PING_TIMEOUT = 1.0
WORKER_PING_CACHE_SECONDS = 10
# Beat runs the heartbeat every minute; three missed beats means it is gone.
BEAT_STALE_AFTER = timedelta(minutes=3)


def _timed(check):
    started = time.perf_counter()
    try:
        result = check()
    except Exception as exc:  # any failure to reach a dependency is the answer, not an error
        result = {"ok": False, "error": exc.__class__.__name__}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connection.vendor}


def check_broker() -> dict:
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        transport = conn.transport_cls
    return {"ok": True, "transport": str(transport)}


def check_workers() -> dict:
    workers = cache.get("health:workers")
    if workers is None:
        # One reply is enough to know the queue is served; do not wait out the timeout.
        replies = celery_app.control.ping(timeout=WORKER_PING_TIMEOUT, limit=1) or []
        workers = sorted(name for reply in replies for name in reply)
        cache.set("health:workers", workers, WORKER_PING_CACHE_SECONDS)
    return {"ok": bool(workers), "count": len(workers)}


def check_beat() -> dict:
    from crm.models import Heartbeat

    beat = Heartbeat.objects.filter(name="beat").first()
    if beat is None:
        return {"ok": False, "last_seen": None}
    return {
        "ok": timezone.now() - beat.last_seen < BEAT_STALE_AFTER,
        "last_seen": beat.last_seen.isoformat(),
    }


CHECKS = {
    "database": check_database,
    "broker": check_broker,
    "workers": check_workers,
    "beat": check_beat,
}


def run_checks(names: list[str] | None = None) -> dict:
    """Run the named checks (all by default); ``status`` is "ok" only if every one passed."""
    selected = {name: CHECKS[name] for name in (names or CHECKS) if name in CHECKS}
    results = {name: _timed(check) for name, check in selected.items()}
    return {
        "status": "ok" if all(r["ok"] for r in results.values()) else "fail",
        "checks": results,
    }
