"""The analytics API: figures, formats, errors and who may read them."""

from __future__ import annotations

from datetime import date

import pytest
from rest_framework.test import APIClient

from analytics.rollups import rebuild_rollups
from segments.models import Segment, SegmentMember
from tests.analytics import oracle

KEYS = {
    "start",
    "end",
    "customers",
    "active_customers",
    "new_customers",
    "revenue",
    "purchases",
    "aov",
    "purchases_per_customer",
    "spend_per_customer",
    "repeat_rate",
    "retention_rate",
    "churn_rate",
}


@pytest.fixture
def api(sales):
    client = APIClient()
    client.force_authenticate(sales)
    return client


def get(client, name, **params):
    return client.get(f"/api/v1/analytics/{name}/", params, HTTP_ACCEPT_LANGUAGE="en")


def test_kpis_answer_the_figures_with_both_comparisons(api, store):
    rebuild_rollups()
    response = get(api, "kpis", start="2026-05-01", end="2026-05-31")
    assert response.status_code == 200
    body = response.json()
    assert body.keys() >= KEYS
    assert body["previous"].keys() >= KEYS and body["last_year"].keys() >= KEYS
    assert body["refreshed_at"]
    assert (body["previous"]["start"], body["previous"]["end"]) == ("2026-03-31", "2026-04-30")
    assert (body["last_year"]["start"], body["last_year"]["end"]) == ("2025-05-01", "2025-05-31")
    expected = oracle.with_comparisons(oracle.snapshot(), date(2026, 5, 1), date(2026, 5, 31))
    assert body["revenue"] == str(expected["revenue"])  # money as a string, as in /customers/
    assert body["aov"] == str(expected["aov"])
    assert body["active_customers"] == expected["active_customers"]
    assert body["repeat_rate"] == pytest.approx(expected["repeat_rate"])
    assert body["last_year"]["retention_rate"] == pytest.approx(
        expected["last_year"]["retention_rate"]
    )


def test_kpis_with_filters(api, store):
    segment = Segment.objects.create(name="vip")
    SegmentMember.objects.create(segment=segment, customer=store["c4"])
    rebuild_rollups()
    body = get(api, "kpis", start="2026-05-01", end="2026-05-31", segment=segment.pk).json()
    assert (body["active_customers"], body["purchases"], body["revenue"]) == (1, 2, "200.50")
    body = get(api, "kpis", start="2026-05-01", end="2026-05-31", prefecture="27").json()
    assert (body["active_customers"], body["revenue"]) == (1, "1640.00")
    body = get(api, "kpis", start="2026-05-01", end="2026-05-31", channel="line").json()
    assert body["customers"] == 1


def test_an_empty_period_has_null_rates(api, store):
    rebuild_rollups()
    body = get(api, "kpis", start="2030-01-01", end="2030-01-31").json()
    assert body["revenue"] == "0.00"
    assert body["aov"] is None and body["repeat_rate"] is None and body["churn_rate"] is None


@pytest.mark.parametrize(
    ("params", "attr", "code"),
    [
        ({"start": "2026-13-01", "end": "2026-12-31"}, "start", "invalid"),
        ({"start": "2026-05-01"}, "end", "required"),
        ({"start": "2026-05-02", "end": "2026-05-01"}, "end", "before_start"),
        ({"start": "2016-05-01", "end": "2026-05-01"}, "end", "too_long"),
        ({"start": "1800-05-01", "end": "1801-05-01"}, "start", "out_of_range"),
        (
            {"start": "2026-05-01", "end": "2026-05-31", "prefecture": "48"},
            "prefecture",
            "invalid_choice",
        ),
    ],
)
def test_bad_queries_are_400_in_the_standard_format(api, params, attr, code):
    response = get(api, "kpis", **params)
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error"
    assert {"attr": attr, "code": code} == {k: body["errors"][0][k] for k in ("attr", "code")}
    assert body["errors"][0]["detail"]


def test_an_unknown_segment_is_a_404(api):
    response = get(api, "kpis", start="2026-05-01", end="2026-05-31", segment=999)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_a_period_of_just_under_ten_years_is_accepted(api, store):
    rebuild_rollups()
    assert get(api, "kpis", start="2016-05-01", end="2026-04-30").status_code == 200


def test_cohorts_ltv_deciles_and_pareto(api, store):
    rebuild_rollups()
    cohorts = get(api, "cohorts").json()["cohorts"]
    assert cohorts[0]["cohort"] == "2024-05-01"
    assert cohorts[0]["retention"][0] == 1.0
    ltv = get(api, "ltv", channel="store").json()
    assert ltv["average"]["customers"] == 2
    # Every LTV figure follows the filters, the table by source channel too.
    assert [row["channel"] for row in ltv["by_channel"]] == ["store"]
    deciles = get(api, "deciles", start="2025-01-01", end="2026-12-31").json()["deciles"]
    assert [row["decile"] for row in deciles] == list(range(1, 11))
    assert sum(row["customers"] for row in deciles) == 6
    pareto = get(api, "pareto", start="2025-01-01", end="2026-12-31", a="0.5", b="0.9").json()
    assert [c["pareto_class"] for c in pareto["classes"]] == ["A", "B", "C"]
    assert pareto["a_threshold"] == "0.50"
    assert len(pareto["curve"]) == 100
    response = get(api, "pareto", start="2025-01-01", end="2026-12-31", a="0.9", b="0.8")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "not_above_a"


@pytest.mark.parametrize("name", ["kpis", "cohorts", "ltv", "deciles", "pareto"])
def test_only_signed_in_staff_with_the_permission_may_read(
    name, db, make_user, marketer, admin_member
):
    params = {"start": "2026-05-01", "end": "2026-05-31"}
    assert get(APIClient(), name, **params).status_code in (401, 403)
    nobody = APIClient()
    nobody.force_authenticate(make_user(None, username="no-role"))
    assert get(nobody, name, **params).status_code == 403
    for user in (marketer, admin_member):
        client = APIClient()
        client.force_authenticate(user)
        assert get(client, name, **params).status_code == 200


def test_the_schema_documents_the_analytics_routes(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for name in ("kpis", "cohorts", "ltv", "deciles", "pareto"):
        assert f"/api/v1/analytics/{name}/" in paths
