"""The scores API: scoring runs (list, status, start: 202 or 409), the scores of a run with
filters and cursor pagination, a customer's history, the CSV export and the report figures;
errors in the standard format; permissions per role."""

from __future__ import annotations

import csv
import io
from collections import Counter
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from crm.roles import Role
from customers.models import Customer
from segments.models import RfmLabel, RunStatus, RunTrigger, ScoringRun
from tests.customers.factories import CustomerFactory
from tests.factories import UserFactory
from tests.segments.score_rows import (
    LABELS,
    Row,
    make_run,
    random_rows,
    scored_run,
    write_scores,
)

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture
def api():
    def make(role: Role | None):
        client = APIClient()
        if role is not None:
            client.force_authenticate(UserFactory(role=role))
        return client

    return make


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"type", "errors"}
    return body["errors"][0]


# --- Scoring runs -----------------------------------------------------------------------------


def test_scoring_runs_list_and_retrieve_for_sales(api):
    older = make_run(minutes_ago=100)
    newer = make_run(status=RunStatus.FAILED, minutes_ago=5)
    newer.error = "boom"
    newer.save(update_fields=["error"])
    client = api(Role.SALES)

    body = client.get("/api/v1/scoring-runs/").json()

    assert [run["id"] for run in body["results"]] == [newer.pk, older.pk]
    first = body["results"][0]
    assert (first["status"], first["is_active"], first["error"]) == ("failed", False, "boom")
    detail = client.get(f"/api/v1/scoring-runs/{older.pk}/").json()
    assert detail["status"] == "succeeded" and detail["duration_seconds"] == 5.0
    assert client.get("/api/v1/scoring-runs/?status=failed").json()["results"][0]["id"] == newer.pk
    assert client.get("/api/v1/scoring-runs/999999/").status_code == 404


def test_anonymous_gets_401(api):
    client = api(None)
    assert client.get("/api/v1/scoring-runs/").status_code == 401
    assert client.get("/api/v1/scores/").status_code == 401
    assert client.post("/api/v1/scoring-runs/", {}, format="json").status_code == 401


def test_sales_cannot_start_a_run(api):
    response = api(Role.SALES).post("/api/v1/scoring-runs/", {}, format="json")
    assert response.status_code == 403
    assert _error(response)["code"] == "permission_denied"
    assert not ScoringRun.objects.exists()


def test_marketer_starts_a_run_202_then_409_while_it_is_active(api):
    client = api(Role.MARKETER)

    response = client.post(
        "/api/v1/scoring-runs/", {"as_of": "2026-10-01", "window_days": 365}, format="json"
    )

    assert response.status_code == 202
    run = ScoringRun.objects.get()
    body = response.json()
    assert body["id"] == run.pk and body["is_active"] is True
    assert (run.trigger, str(run.as_of), run.window_days) == (RunTrigger.API, "2026-10-01", 365)

    again = client.post("/api/v1/scoring-runs/", {}, format="json", **EN)
    assert again.status_code == 409
    error = _error(again)
    assert again.json()["type"] == "client_error"
    assert error["code"] == "scoring_already_running"
    assert error["detail"] == f"Scoring run #{run.pk} is still in progress."
    assert ScoringRun.objects.count() == 1


def test_start_validates_its_input(api):
    response = api(Role.ADMIN).post(
        "/api/v1/scoring-runs/", {"as_of": "yesterday", "window_days": 0}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error"
    assert {error["attr"] for error in body["errors"]} == {"as_of", "window_days"}
    assert not ScoringRun.objects.exists()


# --- Scores -----------------------------------------------------------------------------------


def test_scores_of_the_latest_run_with_filters(api):
    old_run, _old = scored_run(5, seed=1, minutes_ago=300)
    run, rows = scored_run(30, seed=2, minutes_ago=10)
    client = api(Role.SALES)

    body = client.get("/api/v1/scores/?page_size=100").json()

    assert len(body["results"]) == 30
    assert {item["run"] for item in body["results"]} == {run.pk}
    sample = body["results"][0]
    assert set(sample) >= {
        "customer",
        "customer_external_id",
        "recency_days",
        "frequency",
        "monetary",
        "r",
        "f",
        "m",
        "rfm_code",
        "rfm_label",
        "decile",
        "cumulative_share",
        "pareto_class",
        "top20",
    }
    label = rows[0].label
    filtered = client.get(f"/api/v1/scores/?rfm_label={label}&page_size=100").json()["results"]
    assert len(filtered) == sum(1 for row in rows if row.label == label)
    assert {item["rfm_label"] for item in filtered} == {label}
    r5 = client.get("/api/v1/scores/?r=5&f=1&page_size=100").json()["results"]
    assert len(r5) == sum(1 for row in rows if (row.r, row.f) == (5, 1))
    top = client.get("/api/v1/scores/?decile=1&top20=true&page_size=100").json()["results"]
    assert top and all(item["decile"] == 1 and item["top20"] for item in top)
    assert client.get(f"/api/v1/scores/?run={old_run.pk}").json()["results"][0]["run"] == (
        old_run.pk
    )
    one = rows[3].customer_id
    external = Customer.objects.get(pk=one).external_id
    found = client.get(f"/api/v1/scores/?customer_external_id={external}").json()["results"]
    assert [item["customer"] for item in found] == [one]


def test_scores_are_cursor_paginated(api):
    scored_run(7, seed=3)
    client = api(Role.SALES)
    first = client.get("/api/v1/scores/?page_size=5").json()
    assert len(first["results"]) == 5 and first["next"]
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 2 and second["next"] is None
    ids = {item["customer"] for item in first["results"] + second["results"]}
    assert len(ids) == 7


@pytest.mark.parametrize(
    ("query", "attr"),
    [("decile=11", "decile"), ("r=0", "r"), ("rfm_label=best", "rfm_label"), ("run=0", "run")],
)
def test_invalid_filters_are_400_in_the_standard_format(api, query, attr):
    scored_run(2, seed=4)
    response = api(Role.SALES).get(f"/api/v1/scores/?{query}")
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert _error(response)["attr"] == attr


def test_unknown_failed_or_missing_runs_are_404(api):
    client = api(Role.SALES)
    response = client.get("/api/v1/scores/", **EN)
    assert response.status_code == 404
    assert "No scoring run has succeeded yet" in _error(response)["detail"]
    failed = make_run(status=RunStatus.FAILED)
    assert client.get(f"/api/v1/scores/?run={failed.pk}").status_code == 404
    assert client.get("/api/v1/scores/rfm-grid/?run=424242").status_code == 404


def test_customer_score_history_across_runs(api):
    customer = CustomerFactory()
    other = CustomerFactory()
    runs = []
    for minutes, label in [(300, RfmLabel.NEW), (100, RfmLabel.LOYAL), (10, RfmLabel.CHAMPIONS)]:
        run = make_run(minutes_ago=minutes)
        write_scores(run, [_row(customer.pk, label), _row(other.pk, RfmLabel.LOST)])
        runs.append(run)
    failed = make_run(status=RunStatus.FAILED, minutes_ago=1)
    write_scores(failed, [_row(customer.pk, RfmLabel.LOST)])

    body = api(Role.SALES).get(f"/api/v1/customers/{customer.pk}/scores/").json()

    assert [item["run"] for item in body["results"]] == [run.pk for run in reversed(runs)]
    assert [item["rfm_label"] for item in body["results"]] == ["champions", "loyal", "new"]
    assert body["results"][0]["run_as_of"] == "2026-11-01"
    assert api(Role.SALES).get("/api/v1/customers/999999/scores/").status_code == 404


def _row(customer_id: int, label: str) -> Row:
    return Row(customer_id, Decimal(1000), 3, 3, 3, label)


def test_export_csv(api):
    run, rows = scored_run(9, seed=5)
    response = api(Role.SALES).get(f"/api/v1/scores/export/?run={run.pk}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    records = list(csv.DictReader(io.StringIO(body)))
    assert len(records) == 9
    by_external = {record["customer_external_id"]: record for record in records}
    assert len(by_external) == 9
    labels = Counter(record["rfm_label"] for record in records)
    assert labels == Counter(row.label for row in rows)


def test_export_of_a_missing_run_answers_json_404(api):
    response = api(Role.SALES).get("/api/v1/scores/export/?run=424242", HTTP_ACCEPT="text/csv")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert _error(response)["code"] == "not_found"


# --- Report figures ---------------------------------------------------------------------------


def test_report_endpoints(api):
    earlier, earlier_rows = scored_run(20, seed=6, minutes_ago=300)
    ids = [row.customer_id for row in earlier_rows]
    latest = make_run(minutes_ago=10)
    latest_rows = random_rows(ids[5:], seed=7)
    write_scores(latest, latest_rows)
    client = api(Role.SALES)

    grid = client.get("/api/v1/scores/rfm-grid/").json()
    assert grid["run"] == latest.pk and grid["total"] == 15
    cells = {(c["r"], c["f"]): c["customers"] for row in grid["rows"] for c in row["cells"]}
    assert cells == {
        (r, f): sum(1 for row in latest_rows if (row.r, row.f) == (r, f))
        for r in range(1, 6)
        for f in range(1, 6)
    }

    labels = client.get(f"/api/v1/scores/labels/?run={earlier.pk}").json()
    assert labels["run"] == earlier.pk
    assert [item["rfm_label"] for item in labels["labels"]] == LABELS
    assert {item["rfm_label"]: item["customers"] for item in labels["labels"]} == {
        label: sum(1 for row in earlier_rows if row.label == label) for label in LABELS
    }

    deciles = client.get("/api/v1/scores/deciles/").json()["deciles"]
    assert [d["decile"] for d in deciles] == list(range(1, 11))
    assert sum(d["customers"] for d in deciles) == 15
    ordered = sorted(latest_rows, key=lambda row: (-row.monetary, row.customer_id))
    top_decile = [row for i, row in enumerate(ordered) if 10 * i // len(ordered) == 0]
    assert Decimal(deciles[0]["revenue"]) == sum(row.monetary for row in top_decile)

    pareto = client.get("/api/v1/scores/pareto/").json()
    assert pareto["points"][0] == {"customer_share": 0.0, "revenue_share": 0.0}
    assert pareto["points"][-1]["customer_share"] == pytest.approx(1)
    assert [c["pareto_class"] for c in pareto["classes"]] == ["A", "B", "C"]
    assert sum(c["customers"] for c in pareto["classes"]) == 15

    migration = client.get("/api/v1/scores/migration/").json()
    assert (migration["before"], migration["after"]) == (earlier.pk, latest.pk)
    assert migration["total"] == 20
    assert migration["column_totals"][-1] == 5  # scored before, not after
    explicit = client.get(f"/api/v1/scores/migration/?before={latest.pk}&after={earlier.pk}")
    assert explicit.json()["rows"][-1]["total"] == 5


def test_migration_without_an_earlier_run_is_404(api):
    scored_run(3, seed=8)
    response = api(Role.MARKETER).get("/api/v1/scores/migration/", **EN)
    assert response.status_code == 404
    assert "no earlier succeeded run" in _error(response)["detail"]
