"""The segments API: CRUD with rule errors at their place in the tree, preview without
saving, members with cursor pagination, CSV export, refresh and the field catalogue, per
role. Counts are checked against the customers counted in plain Python."""

from __future__ import annotations

import csv
import io

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from customers.models import Customer
from segments.api_segments import RULES_SCHEMA, schema_problems
from segments.models import RfmLabel, Segment, SegmentKind, SegmentMember
from tests.customers.factories import CustomerFactory, TagFactory
from tests.segments.factories import CustomerScoreFactory, ScoringRunFactory, SegmentFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/segments/"
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}

TOKYO_AND_CONSENT = {
    "op": "and",
    "conditions": [
        {"field": "prefecture", "op": "in", "value": ["13"]},
        {"field": "email_opt_in", "op": "is", "value": True},
    ],
}


@pytest.fixture
def api():
    def make(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


@pytest.fixture
def people():
    run = ScoringRunFactory()
    now = timezone.now()
    customers = [
        CustomerFactory(prefecture="13", email_opt_in=True, email_opt_in_at=now),
        CustomerFactory(prefecture="13", email_opt_in=True, email_opt_in_at=now),
        CustomerFactory(prefecture="13"),
        CustomerFactory(prefecture="27", email_opt_in=True, email_opt_in_at=now),
    ]
    CustomerScoreFactory(run=run, customer=customers[0], rfm_label=RfmLabel.CHAMPIONS, decile=1)
    return customers


def tokyo_consenting() -> set[int]:
    return {c.pk for c in Customer.objects.all() if c.prefecture == "13" and c.email_opt_in}


def errors_by_attr(response) -> dict[str, str]:
    return {error["attr"]: error["detail"] for error in response.json()["errors"]}


# --- Access -----------------------------------------------------------------------------------


def test_anonymous_requests_are_refused(client):
    assert client.get(URL).status_code == 401
    assert client.post(f"{URL}preview/", {}, content_type="application/json").status_code == 401


def test_sales_read_segments_but_cannot_write_preview_or_refresh(api, sales, people):
    segment = SegmentFactory(name="読むだけ")
    SegmentMember.objects.create(segment=segment, customer=people[0])
    client = api(sales)
    assert [s["name"] for s in client.get(URL).json()["results"]] == ["読むだけ"]
    assert client.get(f"{URL}{segment.pk}/").status_code == 200
    assert client.get(f"{URL}{segment.pk}/members/").status_code == 200
    assert client.get(f"{URL}{segment.pk}/members/export/").status_code == 200
    assert client.get(f"{URL}fields/").status_code == 200
    rules = {"name": "x", "rules": TOKYO_AND_CONSENT}
    assert client.post(URL, rules, format="json").status_code == 403
    assert client.patch(f"{URL}{segment.pk}/", {"name": "y"}, format="json").status_code == 403
    assert client.delete(f"{URL}{segment.pk}/").status_code == 403
    assert client.post(f"{URL}preview/", {"rules": {}}, format="json").status_code == 403
    assert client.post(f"{URL}{segment.pk}/refresh/").status_code == 403
    assert Segment.objects.get().name == "読むだけ"


# --- Create, update, delete -------------------------------------------------------------------


def test_marketer_creates_a_segment_and_its_members_are_taken(api, marketer, people):
    response = api(marketer).post(
        URL,
        {"name": "東京の同意者", "kind": "dynamic", "rules": TOKYO_AND_CONSENT},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    expected = tokyo_consenting()
    assert body["member_count"] == len(expected) == 2
    assert body["rules"] == TOKYO_AND_CONSENT
    assert body["created_by"] == marketer.pk
    segment = Segment.objects.get(pk=body["id"])
    assert set(segment.members.values_list("customer_id", flat=True)) == expected


def test_rules_that_break_the_schema_are_a_400_at_their_place_and_nothing_is_saved(
    api, marketer, people
):
    rules = {
        "op": "and",
        "conditions": [
            {"field": "prefecture", "op": "in", "value": ["13"]},
            {"field": "decile", "op": "between", "value": [1, 11]},
            {"field": "nonsense", "op": "is", "value": True},
        ],
    }
    response = api(marketer).post(URL, {"name": "壊れた", "rules": rules}, format="json", **EN)
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert errors_by_attr(response) == {
        "rules.conditions.1.value.1": "Enter a number of at most 10.",
        "rules.conditions.2.field": "Unknown field nonsense.",
    }
    assert not Segment.objects.exists()


def test_rules_beyond_the_json_schema_are_a_400_with_their_place(api, marketer):
    TagFactory(name="VIP")
    rules = {
        "op": "or",
        "conditions": [
            {"field": "tags", "op": "any", "value": ["VIP", "存在しない"]},
            {"field": "age", "op": "between", "value": [60, 20]},
        ],
    }
    assert schema_problems(RULES_SCHEMA, rules) == []  # well formed
    response = api(marketer).post(URL, {"name": "矛盾", "rules": rules}, format="json", **EN)
    assert response.status_code == 400
    assert errors_by_attr(response) == {
        "rules.conditions.0.value.1": "There is no tag named 存在しない.",
        "rules.conditions.1.value": "The minimum is larger than the maximum.",
    }
    assert not Segment.objects.exists()


def test_a_duplicate_name_is_a_409(api, marketer):
    SegmentFactory(name="休眠")
    response = api(marketer).post(
        URL, {"name": "休眠", "rules": {"op": "and", "conditions": []}}, format="json"
    )
    assert response.status_code == 409
    assert errors_by_attr(response).keys() == {"name"}


def test_updating_the_rules_re_takes_the_members(api, marketer, people):
    segment = SegmentFactory(name="東京", kind=SegmentKind.STATIC)
    response = api(marketer).patch(
        f"{URL}{segment.pk}/", {"rules": TOKYO_AND_CONSENT}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["member_count"] == len(tokyo_consenting())
    segment.refresh_from_db()
    assert set(segment.members.values_list("customer_id", flat=True)) == tokyo_consenting()
    assert (segment.name, segment.kind) == ("東京", SegmentKind.STATIC)


def test_delete(api, marketer, people):
    segment = SegmentFactory()
    SegmentMember.objects.create(segment=segment, customer=people[0])
    assert api(marketer).delete(f"{URL}{segment.pk}/").status_code == 204
    assert not Segment.objects.exists()
    assert Customer.objects.filter(pk=people[0].pk).exists()


# --- Preview, fields --------------------------------------------------------------------------


def test_preview_counts_without_saving(api, marketer, people):
    response = api(marketer).post(
        f"{URL}preview/", {"rules": TOKYO_AND_CONSENT}, format="json", **EN
    )
    assert response.status_code == 200
    body = response.json()
    expected = tokyo_consenting()
    assert body["count"] == len(expected)
    assert {row["id"] for row in body["sample"]} == expected
    labels = {row["id"]: row["rfm_label"] for row in body["sample"]}
    assert labels == {people[0].pk: "champions", people[1].pk: None}
    assert body["breakdowns"]["prefecture"] == [{"key": "13", "label": "Tokyo", "count": 2}]
    assert body["breakdowns"]["decile"] == [
        {"key": 1, "label": "Decile 1", "count": 1},
        {"key": None, "label": "Not scored", "count": 1},
    ]
    assert not Segment.objects.exists()


def test_preview_of_bad_rules_names_the_place(api, marketer):
    rules = {"op": "xor", "conditions": [{"field": "age", "op": "between", "value": "old"}]}
    response = api(marketer).post(f"{URL}preview/", {"rules": rules}, format="json", **EN)
    assert response.status_code == 400
    assert set(errors_by_attr(response)) == {"rules.op", "rules.conditions.0.value"}


def test_fields_lists_the_catalogue_in_the_request_language(api, sales):
    fields = api(sales).get(f"{URL}fields/", **EN).json()
    by_key = {field["key"]: field for field in fields}
    assert by_key["prefecture"]["group_label"] == "Profile"
    assert {"value": "13", "label": "Tokyo"} in by_key["prefecture"]["choices"]
    assert [op["key"] for op in by_key["days_since_last_purchase"]["operators"]] == [
        "between",
        "at_least",
        "at_most",
    ]


# --- Members, export, refresh -----------------------------------------------------------------


def test_members_are_cursor_paginated_by_id(api, sales):
    segment = SegmentFactory()
    customers = CustomerFactory.create_batch(5)
    SegmentMember.objects.bulk_create(SegmentMember(segment=segment, customer=c) for c in customers)
    CustomerFactory()  # not a member
    client = api(sales)
    seen, url = [], f"{URL}{segment.pk}/members/?page_size=2"
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == sorted(c.pk for c in customers)


def test_members_export_is_csv_safe_for_spreadsheets(api, sales):
    segment = SegmentFactory()
    inside = CustomerFactory(family_name="@SUM(A1)")
    SegmentMember.objects.create(segment=segment, customer=inside)
    response = api(sales).get(f"{URL}{segment.pk}/members/export/", **EN)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][0] == "external ID"
    assert rows[1][:2] == [inside.external_id, "'@SUM(A1)"]


def test_export_of_a_missing_segment_is_a_json_404(api, sales):
    response = api(sales).get(f"{URL}999999/members/export/")
    assert response.status_code == 404
    assert response.json()["type"] == "client_error"


def test_refresh_of_a_static_segment_is_a_409(api, marketer):
    segment = SegmentFactory(kind=SegmentKind.STATIC)
    response = api(marketer).post(f"{URL}{segment.pk}/refresh/")
    assert response.status_code == 409
    segment.refresh_from_db()
    assert segment.refresh_requested_at is None


@pytest.mark.django_db(transaction=True)
def test_refresh_re_takes_the_members_in_a_worker(api, marketer, celery_worker):
    from tests.conftest import wait_for

    now = timezone.now()
    segment = SegmentFactory(rules=TOKYO_AND_CONSENT)  # no snapshot yet
    CustomerFactory(prefecture="13", email_opt_in=True, email_opt_in_at=now)
    CustomerFactory(prefecture="13")
    response = api(marketer).post(f"{URL}{segment.pk}/refresh/")
    assert response.status_code == 202
    assert response.json()["id"] == segment.pk

    def refreshed():
        segment.refresh_from_db()
        return segment.refreshed_at is not None

    wait_for(refreshed)
    assert segment.member_count == 1
    assert set(segment.members.values_list("customer_id", flat=True)) == tokyo_consenting()
