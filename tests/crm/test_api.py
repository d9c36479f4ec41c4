"""API infrastructure: token auth, cursor pagination, filters, ordering, throttling and the
one error format every failure uses."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.factories import OutboxEmailFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(marketer):
    token = Token.objects.create(user=marketer)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_ACCEPT_LANGUAGE="en")


def test_cursor_pagination_walks_every_row_once(api):
    emails = OutboxEmailFactory.create_batch(7)
    seen, url = [], "/api/v1/outbox/?page_size=3"
    while url:
        page = api.get(url).json()
        assert len(page["results"]) <= 3
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == [e.pk for e in reversed(emails)]  # newest first, no gaps or repeats


def test_filters_and_ordering(api):
    OutboxEmailFactory(to="yamada@example.com", subject="秋のセール")
    OutboxEmailFactory(to="suzuki@example.com", subject="新商品のお知らせ")
    by_to = api.get("/api/v1/outbox/?to=yamada").json()["results"]
    assert [row["to"] for row in by_to] == ["yamada@example.com"]
    by_subject = api.get("/api/v1/outbox/?subject=セール").json()["results"]
    assert [row["subject"] for row in by_subject] == ["秋のセール"]
    oldest_first = api.get("/api/v1/outbox/?ordering=created_at").json()["results"]
    assert oldest_first[0]["to"] == "yamada@example.com"


def test_validation_error_format(api):
    response = api.get("/api/v1/outbox/?created_after=not-a-date")
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error"
    assert body["errors"][0]["attr"] == "created_after"
    assert body["errors"][0]["code"] == "invalid"


def test_not_found_format(api):
    response = api.get("/api/v1/outbox/999999/")
    assert response.status_code == 404
    assert response.json() == {
        "type": "client_error",
        "errors": [{"code": "not_found", "detail": "Not found.", "attr": None}],
    }


def test_unknown_api_url_uses_the_same_format(api):
    response = api.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["type"] == "client_error"
    assert response.json()["errors"][0]["code"] == "not_found"


def test_bad_token_is_401_with_format(client):
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION="Token nope")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "authentication_failed"


def test_malformed_json_is_a_parse_error(client, sales):
    response = client.post("/api/v1/auth/token/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["type"] == "client_error"
    assert response.json()["errors"][0]["code"] == "parse_error"


def test_throttling_answers_429_in_the_error_format(api, settings):
    from rest_framework.throttling import UserRateThrottle

    original = UserRateThrottle.THROTTLE_RATES
    UserRateThrottle.THROTTLE_RATES = {**original, "user": "3/min"}
    try:
        statuses = [api.get("/api/v1/me/").status_code for _ in range(4)]
    finally:
        UserRateThrottle.THROTTLE_RATES = original
    assert statuses == [200, 200, 200, 429]
    response = api.get("/api/v1/me/")  # back to the configured rate
    assert response.status_code == 200


def test_api_root_lists_collections(api):
    body = api.get("/api/v1/").json()
    assert body["outbox"].endswith("/api/v1/outbox/")


def test_schema_and_docs_are_served_locally(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")
    docs = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs
    assert "cdn" not in docs.lower()  # assets come from drf-spectacular-sidecar, not a CDN


def test_date_time_filters_take_any_iso_offset(api):
    OutboxEmailFactory()
    for value in (
        "0001-01-01T01:28:00+06:05",
        "9999-12-31T23:00:00-20:00",
        "2026-05-03T00:00+20:54",
    ):
        response = api.get("/api/v1/outbox/", {"created_after": value})
        assert response.status_code == 200, value
