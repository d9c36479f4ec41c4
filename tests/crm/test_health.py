"""/healthz reports database, broker, workers and beat; the live-worker tests run a real
`celery worker` process against the test database and the configured broker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from crm.models import Heartbeat
from crm.tasks import heartbeat
from tests.conftest import wait_for


@pytest.mark.django_db
def test_healthz_without_worker_says_which_part_is_down(client):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "fail"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert body["checks"]["workers"] == {
        "ok": False,
        "count": 0,
        "ms": body["checks"]["workers"]["ms"],
    }
    assert body["checks"]["beat"]["ok"] is False


@pytest.mark.django_db
def test_healthz_can_be_limited_to_some_checks(client):
    response = client.get("/healthz?check=database&check=broker")
    assert response.status_code == 200
    assert set(response.json()["checks"]) == {"database", "broker"}


@pytest.mark.django_db
def test_stale_beat_is_reported(client):
    Heartbeat.objects.create(name="beat", last_seen=timezone.now() - timedelta(minutes=10))
    beat = client.get("/healthz?check=beat").json()["checks"]["beat"]
    assert beat["ok"] is False
    assert beat["last_seen"]


@pytest.mark.worker
def test_live_worker_runs_tasks_and_answers_health(client, celery_worker):
    heartbeat.delay()
    beat = wait_for(lambda: Heartbeat.objects.filter(name="beat").first())
    assert timezone.now() - beat.last_seen < timedelta(minutes=1)

    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["workers"]["count"] >= 1
