"""Scoring runs: one at a time, claimed once, scores and success committed together, a failed
run keeps the previous scores, history pruning, dead workers, the nightly start, and the real
worker path (run, then the dynamic segments refreshed)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from customers.models import PurchaseStatus
from segments import runs
from segments.models import (
    CustomerScore,
    RunStatus,
    RunTrigger,
    ScoreMode,
    ScoringRun,
    ScoringSettings,
    SegmentKind,
)
from segments.runs import (
    ScoringAlreadyRunning,
    execute_scoring_run,
    fail_stale_runs,
    latest_scores,
    prune_score_history,
    request_scoring_run,
    start_nightly_run,
)
from tests.conftest import wait_for
from tests.customers.factories import CustomerFactory, PurchaseFactory
from tests.segments.factories import ScoringRunFactory, SegmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def customers():
    """Five customers who spent 100..500 once, on 1..5 October (JST), plus a cancelled one."""
    people = CustomerFactory.create_batch(5)
    for n, customer in enumerate(people, start=1):
        PurchaseFactory(
            customer=customer,
            purchased_at=datetime(2026, 10, n, 3, 0, tzinfo=UTC),
            total=100 * n,
        )
    PurchaseFactory(
        customer=CustomerFactory(),
        purchased_at=datetime(2026, 10, 9, tzinfo=UTC),
        total=999,
        status=PurchaseStatus.CANCELLED,
    )
    return people


def run_now(**kwargs) -> ScoringRun:
    run = request_scoring_run(trigger=RunTrigger.COMMAND, enqueue=False, **kwargs)
    return execute_scoring_run(run=run)


def test_a_run_scores_and_summarises(customers, monkeypatch):
    # Rows are written in several chunks (COPY) or batches (bulk_create).
    monkeypatch.setattr(runs, "COPY_CHUNK_ROWS", 2)
    monkeypatch.setattr(runs, "BULK_CREATE_BATCH", 2)
    run = run_now()
    assert run.status == RunStatus.SUCCEEDED and run.progress == 100 and run.phase == ""
    assert run.as_of == date(2026, 10, 6)
    assert run.customers_scored == 5 and run.purchases_counted == 5
    assert run.revenue == 1500
    assert run.duration_seconds > 0 and run.started_at <= run.finished_at
    assert sum(run.counts["rfm_label"].values()) == 5
    # Shares before: 0, 1/3, 0.6 (A); 0.8, 0.93 (B).
    assert run.counts["pareto_class"] == {"A": 3, "B": 2, "C": 0}
    scores = {s.customer_id: s for s in latest_scores()}
    assert len(scores) == 5
    best = scores[customers[4].pk]
    assert (best.recency_days, best.monetary, best.rfm_code, best.decile) == (1, 500, "515", 1)
    # Everyone bought once: F=1 for all; FM = floor((1 + 5) / 2) = 3.
    assert (
        best.rfm_label == "potential_loyalist"
        and best.top20
        and best.cumulative_share == 500 / 1500
    )
    worst = scores[customers[0].pk]
    assert (worst.rfm_code, worst.rfm_label, worst.decile, worst.pareto_class) == (
        "111",
        "lost",
        9,
        "B",
    )
    assert worst.first_purchase_on == worst.last_purchase_on == date(2026, 10, 1)


def test_one_run_at_a_time(customers, marketer):
    first = request_scoring_run(trigger=RunTrigger.MANUAL, requested_by=marketer)
    assert first.status == RunStatus.PENDING and first.requested_by == marketer
    with pytest.raises(ScoringAlreadyRunning) as refused:
        request_scoring_run(trigger=RunTrigger.API)
    assert refused.value.run == first
    execute_scoring_run(run=first)
    assert request_scoring_run(trigger=RunTrigger.API).status == RunStatus.PENDING


def test_a_run_delivered_twice_runs_once(customers):
    run = request_scoring_run(trigger=RunTrigger.COMMAND, enqueue=False)
    assert execute_scoring_run(run=run).status == RunStatus.SUCCEEDED
    finished_at = ScoringRun.objects.get(pk=run.pk).finished_at
    again = execute_scoring_run(run=ScoringRun.objects.get(pk=run.pk))
    assert again.finished_at == finished_at
    assert CustomerScore.objects.filter(run=run).count() == 5


def test_a_failed_run_keeps_the_previous_scores(customers):
    good = run_now()
    scoring_settings = ScoringSettings.load()
    scoring_settings.m_mode = ScoreMode.FIXED
    scoring_settings.m_thresholds = [100, 50]  # not four ascending cut points
    scoring_settings.save()
    failed = run_now()
    assert failed.status == RunStatus.FAILED
    assert "m_thresholds" in failed.error and failed.finished_at is not None
    assert not CustomerScore.objects.filter(run=failed).exists()
    assert ScoringRun.objects.latest_succeeded() == good
    assert latest_scores().count() == 5
    # Fixed again, the next run goes through.
    scoring_settings.m_thresholds = [100, 200, 300, 400]
    scoring_settings.save()
    fixed = run_now()
    assert fixed.status == RunStatus.SUCCEEDED
    assert {s.m for s in latest_scores()} == {1, 2, 3, 4, 5}


def test_as_of_and_window_of_a_run(customers):
    run = run_now(as_of=date(2026, 10, 5), window_days=2)
    # Days 3 and 4 October count; the 5th is the as-of date itself.
    assert run.customers_scored == 2 and run.window_days == 2
    assert {s.customer_id for s in latest_scores()} == {customers[2].pk, customers[3].pk}


def test_window_from_the_settings(customers):
    scoring_settings = ScoringSettings.load()
    scoring_settings.window_days = 1
    scoring_settings.save()
    run = run_now()
    assert run.window_days == 1 and run.customers_scored == 1
    assert run.settings["window_days"] == 1


def test_old_runs_lose_their_rows_but_keep_their_summary(
    customers, settings, django_capture_on_commit_callbacks
):
    settings.SCORING_KEEP_RUNS = 2
    done = []
    for _ in range(3):
        # Pruning happens once the new run's scores are committed.
        with django_capture_on_commit_callbacks(execute=True):
            done.append(run_now())
    assert not CustomerScore.objects.filter(run=done[0]).exists()
    assert CustomerScore.objects.filter(run=done[1]).count() == 5
    assert CustomerScore.objects.filter(run=done[2]).count() == 5
    oldest = ScoringRun.objects.get(pk=done[0].pk)
    assert oldest.customers_scored == 5 and oldest.counts["pareto_class"]["A"] == 3
    assert prune_score_history(keep=1) == 1
    assert not CustomerScore.objects.filter(run=done[1]).exists()


def test_runs_whose_worker_died_are_failed():
    now = timezone.now()
    dead = ScoringRunFactory(status=RunStatus.RUNNING, progressed_at=now - timedelta(minutes=31))
    slow = ScoringRunFactory(status=RunStatus.RUNNING, progressed_at=now - timedelta(minutes=29))
    lost = ScoringRunFactory(status=RunStatus.PENDING, created_at=now - timedelta(hours=7))
    waiting = ScoringRunFactory(status=RunStatus.PENDING, created_at=now - timedelta(hours=1))
    assert fail_stale_runs(now=now) == 2
    statuses = {r.pk: r.status for r in ScoringRun.objects.all()}
    assert statuses[dead.pk] == statuses[lost.pk] == RunStatus.FAILED
    assert statuses[slow.pk] == RunStatus.RUNNING and statuses[waiting.pk] == RunStatus.PENDING
    assert ScoringRun.objects.get(pk=dead.pk).error


def jst(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=9)


def test_nightly_run_starts_once_a_night():
    scoring_settings = ScoringSettings.load()
    scoring_settings.nightly_at = "02:00"
    scoring_settings.save()
    assert start_nightly_run(now=jst(10, 1, 59)) is None
    run = start_nightly_run(now=jst(10, 2, 0))
    assert run.trigger == RunTrigger.NIGHTLY and run.status == RunStatus.PENDING
    ScoringRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    # Later beats the same night (and two beats at once) start nothing more.
    assert start_nightly_run(now=jst(10, 2, 5)) is None
    assert start_nightly_run(now=jst(10, 23, 59)) is None
    assert ScoringSettings.load().last_nightly_date == date(2026, 11, 10)
    # The next night it starts again; a run started by hand at that moment takes its place.
    manual = request_scoring_run(trigger=RunTrigger.MANUAL)
    assert start_nightly_run(now=jst(11, 2, 1)) is None
    assert ScoringRun.objects.active().get() == manual
    assert ScoringSettings.load().last_nightly_date == date(2026, 11, 11)


def test_nightly_run_can_be_switched_off():
    ScoringSettings.objects.update_or_create(id=1, defaults={"nightly_enabled": False})
    assert start_nightly_run(now=jst(10, 3)) is None
    assert not ScoringRun.objects.exists()


def test_a_requested_run_goes_through_the_worker(customers, celery_worker):
    segment = SegmentFactory(
        kind=SegmentKind.DYNAMIC,
        rules={
            "op": "and",
            "conditions": [{"field": "rfm_label", "op": "in", "value": ["potential_loyalist"]}],
        },
    )
    run = request_scoring_run(trigger=RunTrigger.MANUAL)
    done = wait_for(
        lambda: ScoringRun.objects.filter(pk=run.pk, status=RunStatus.SUCCEEDED).first(), 60
    )
    assert done.customers_scored == 5 and latest_scores().count() == 5
    # After the run, the dynamic segments are refreshed with its scores.
    segment = wait_for(
        lambda: type(segment).objects.filter(pk=segment.pk, refreshed_at__isnull=False).first(), 60
    )
    # 515 and 414 (FM = floor((1 + 4) / 2) = 2): both potential loyalists.
    assert segment.member_count == 2
    assert set(segment.members.values_list("customer_id", flat=True)) == {
        customers[3].pk,
        customers[4].pk,
    }


EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def test_admin_edits_the_one_settings_row_and_checks_thresholds(client_as, admin_member):
    client = client_as(admin_member)
    response = client.get("/admin/segments/scoringsettings/", **EN)
    assert response.status_code == 302
    assert response["Location"].endswith("/admin/segments/scoringsettings/1/change/")
    page = client.get(response["Location"], **EN)
    assert page.status_code == 200
    form = {
        "r_mode": "quantile",
        "r_thresholds": "[]",
        "f_mode": "quantile",
        "f_thresholds": "[]",
        "m_mode": "fixed",
        "m_thresholds": "[5000, 1000]",
        "window_days": "",
        "pareto_a_share": "0.8",
        "pareto_b_share": "0.95",
        "nightly_enabled": "on",
        "nightly_at": "03:30",
        "csrfmiddlewaretoken": page.context["csrf_token"],
    }
    refused = client.post(response["Location"], form, **EN)
    assert refused.status_code == 200
    assert "Fixed mode needs four cut points in ascending order." in refused.content.decode()
    form["m_thresholds"] = "[1000, 5000, 10000, 50000]"
    assert client.post(response["Location"], form, **EN).status_code == 302
    saved = ScoringSettings.load()
    assert saved.m_thresholds == [1000, 5000, 10000, 50000]
    assert saved.nightly_at.hour == 3 and saved.nightly_at.minute == 30


def test_admin_score_list_opens_on_the_latest_run(client_as, admin_member, customers):
    run = run_now()
    client = client_as(admin_member)
    response = client.get("/admin/segments/customerscore/", **EN)
    assert response.status_code == 302 and f"run__id__exact={run.pk}" in response["Location"]
    page = client.get(response["Location"], **EN)
    assert page.status_code == 200 and "515" in page.content.decode()
    assert client.get(f"/admin/segments/scoringrun/{run.pk}/change/", **EN).status_code == 200


def test_a_deleted_customer_takes_its_scores_along(customers):
    # Score rows have no database foreign key (see CustomerScore): Django's cascade is what
    # removes them.
    run = run_now()
    customers[4].delete()
    assert CustomerScore.objects.filter(run=run).count() == 4
    assert not CustomerScore.objects.filter(customer_id=customers[4].pk).exists()
