"""The read-only messages and tracking events of the campaigns API with their filters, and
the suppression list: hashes only, never an address, manual additions by marketers and
removals by admins only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from campaigns.models import (
    EventKind,
    MessageStatus,
    Suppression,
    SuppressionReason,
    TrackingEvent,
    Variant,
)
from campaigns.suppression import email_hash, suppress
from tests.campaigns.api_clients import api_as
from tests.campaigns.tracking_factories import make_campaign, make_message
from tests.customers.test_quality import validate_against_schema

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent():
    """Two campaigns; the first with a variant B, a holdout and a failed message."""
    campaign, a = make_campaign()
    b = Variant.objects.create(
        campaign=campaign, label="B", subject="B", html_body="<p>b</p>", text_body="b"
    )
    messages = [
        make_message(campaign, a),
        make_message(campaign, b),
        make_message(campaign, a, status=MessageStatus.FAILED),
    ]
    messages[2].error = f"550 <{messages[2].email}>: no such user"
    messages[2].save(update_fields=["error"])
    holdout = make_message(campaign, a, status=MessageStatus.SKIPPED)
    holdout.is_holdout, holdout.variant = True, None
    holdout.save(update_fields=["is_holdout", "variant"])
    other, other_variant = make_campaign()
    return {
        "campaign": campaign,
        "messages": [*messages, holdout],
        "other": make_message(other, other_variant),
    }


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


# --- Messages ---------------------------------------------------------------------------------


def test_messages_are_filtered_by_campaign_status_variant_holdout_and_customer(sales, sent):
    client = api_as(sales)
    campaign, messages = sent["campaign"], sent["messages"]
    everything = [*messages, sent["other"]]
    url = "/api/v1/messages/"
    assert ids(client.get(url)) == sorted((m.pk for m in everything), reverse=True)
    assert set(ids(client.get(url, {"campaign": campaign.pk}))) == {m.pk for m in messages}
    assert ids(client.get(url, {"campaign": campaign.pk, "status": "failed"})) == [messages[2].pk]
    b = messages[1].variant_id
    assert ids(client.get(url, {"variant": b})) == [messages[1].pk]
    assert ids(client.get(url, {"is_holdout": "true"})) == [messages[3].pk]
    assert len(ids(client.get(url, {"is_holdout": "false"}))) == 4
    customer = messages[0].customer_id
    assert ids(client.get(url, {"customer": customer})) == [messages[0].pk]
    assert client.get(url, {"is_holdout": "yes"}).status_code == 400
    assert client.get(url, {"status": "lost"}).status_code == 400


def test_a_message_shows_its_address_and_error_to_those_who_may_view_customers(
    sales, make_user, sent
):
    failed = sent["messages"][2]
    row = api_as(sales).get(f"/api/v1/messages/{failed.pk}/").json()
    assert row["email"] == failed.email
    assert failed.email in row["error"]
    assert row["status"] == "failed"
    assert row["campaign"] == sent["campaign"].pk

    # An integration allowed to read campaign messages but not customers.
    reader = make_user()
    reader.user_permissions.add(
        Permission.objects.get(codename="view_message", content_type__app_label="campaigns")
    )
    row = api_as(reader).get(f"/api/v1/messages/{failed.pk}/").json()
    assert row["email"] is None
    assert row["error"] is None
    assert api_as(reader).get("/api/v1/customers/").status_code == 403


def test_messages_and_events_are_read_only_even_for_admins(admin_member, sent):
    client = api_as(admin_member)
    message = sent["messages"][0]
    assert client.post("/api/v1/messages/", {}, format="json").status_code == 405
    assert client.delete(f"/api/v1/messages/{message.pk}/").status_code == 405
    assert client.post("/api/v1/events/", {}, format="json").status_code == 405


# --- Events -----------------------------------------------------------------------------------


def test_events_are_filtered_by_campaign_message_kind_machine_and_time(marketer, sent):
    first, second = sent["messages"][:2]
    link = sent["campaign"].links.get(url="https://shop.example.jp/sale")
    now = timezone.now()
    proxy = TrackingEvent.objects.create(
        message=first,
        kind=EventKind.OPEN,
        is_machine=True,
        machine_reason="apple_mpp",
        occurred_at=now - timedelta(hours=3),
    )
    opened = TrackingEvent.objects.create(
        message=first, kind=EventKind.OPEN, occurred_at=now - timedelta(hours=2)
    )
    clicked = TrackingEvent.objects.create(
        message=second, kind=EventKind.CLICK, link=link, occurred_at=now - timedelta(hours=1)
    )
    elsewhere = TrackingEvent.objects.create(message=sent["other"], kind=EventKind.OPEN)
    client = api_as(marketer)
    url = "/api/v1/events/"
    assert ids(client.get(url)) == [elsewhere.pk, clicked.pk, opened.pk, proxy.pk]
    assert ids(client.get(url, {"campaign": sent["campaign"].pk})) == [
        clicked.pk,
        opened.pk,
        proxy.pk,
    ]
    assert ids(client.get(url, {"message": first.pk})) == [opened.pk, proxy.pk]
    assert ids(client.get(url, {"kind": "click"})) == [clicked.pk]
    assert ids(client.get(url, {"is_machine": "true"})) == [proxy.pk]
    window = {
        "occurred_after": (now - timedelta(hours=2, minutes=30)).isoformat(),
        "occurred_before": (now - timedelta(minutes=30)).isoformat(),
    }
    assert ids(client.get(url, window)) == [clicked.pk, opened.pk]
    row = client.get(f"{url}{clicked.pk}/").json()
    assert row["url"] == "https://shop.example.jp/sale"
    assert row["campaign"] == sent["campaign"].pk
    assert "user_agent" not in row and "ip_hash" not in row
    machine = client.get(f"{url}{proxy.pk}/").json()
    assert machine["is_machine"] is True
    assert machine["machine_reason"] == "apple_mpp"
    assert machine["url"] is None


# --- Suppressions -----------------------------------------------------------------------------

ADDRESS = "Yamada.Hanako@Example.JP"


def test_a_marketer_suppresses_an_address_stored_as_its_hash_only(marketer):
    client = api_as(marketer)
    response = client.post("/api/v1/suppressions/", {"email": ADDRESS}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["reason"] == "manual"
    assert body["email_hash"] == email_hash(ADDRESS)
    assert "yamada" not in str(body).lower()
    suppression = Suppression.objects.get()
    stored = [str(value).lower() for value in vars(suppression).values()]
    assert not any("yamada" in value or "@" in value for value in stored)
    # Known under any spelling of the address.
    again = client.post("/api/v1/suppressions/", {"email": "yamada.hanako@example.jp"})
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert Suppression.objects.count() == 1


def test_an_address_already_suppressed_keeps_its_first_reason(marketer):
    suppress(email=ADDRESS, reason=SuppressionReason.HARD_BOUNCE)
    response = api_as(marketer).post("/api/v1/suppressions/", {"email": ADDRESS}, format="json")
    assert response.status_code == 200
    assert response.json()["reason"] == "hard_bounce"


def test_the_suppression_list_is_filtered_by_reason_and_shows_no_address(sales):
    bounced = suppress(email="bounce@example.jp", reason=SuppressionReason.HARD_BOUNCE)
    suppress(email="left@example.jp", reason=SuppressionReason.UNSUBSCRIBED)
    client = api_as(sales)
    listed = client.get("/api/v1/suppressions/").json()["results"]
    assert len(listed) == 2
    assert "@" not in str(listed)
    assert set(listed[0]) == {"id", "email_hash", "reason", "created_at"}
    assert ids(client.get("/api/v1/suppressions/", {"reason": "hard_bounce"})) == [bounced.pk]


def test_an_invalid_address_is_a_400(marketer):
    response = api_as(marketer).post(
        "/api/v1/suppressions/", {"email": "no address"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "email"
    assert not Suppression.objects.exists()


@pytest.mark.parametrize(
    ("role_fixture", "adds", "removes"),
    [("admin_member", True, True), ("marketer", True, False), ("sales", False, False)],
)
def test_only_admins_take_an_address_off_the_list(request, role_fixture, adds, removes):
    client = api_as(request.getfixturevalue(role_fixture))
    suppression = suppress(email=ADDRESS, reason=SuppressionReason.UNSUBSCRIBED)
    assert client.get(f"/api/v1/suppressions/{suppression.pk}/").status_code == 200
    added = client.post("/api/v1/suppressions/", {"email": "new@example.jp"}, format="json")
    assert added.status_code == (201 if adds else 403)
    removed = client.delete(f"/api/v1/suppressions/{suppression.pk}/")
    assert removed.status_code == (204 if removes else 403)
    assert Suppression.objects.filter(pk=suppression.pk).exists() != removes


def test_anonymous_requests_are_refused(client):
    for url in ("/api/v1/messages/", "/api/v1/events/", "/api/v1/suppressions/"):
        assert client.get(url).status_code == 401, url


def test_the_answers_are_what_the_schema_documents(admin_member, sent):
    message = sent["messages"][0]
    TrackingEvent.objects.create(
        message=message, kind=EventKind.CLICK, link=message.campaign.links.first()
    )
    TrackingEvent.objects.create(
        message=message, kind=EventKind.OPEN, is_machine=True, machine_reason="proxy"
    )
    suppression = suppress(email=ADDRESS, reason=SuppressionReason.HARD_BOUNCE)
    client = api_as(admin_member)
    for path in ("/api/v1/messages/", "/api/v1/events/", "/api/v1/suppressions/"):
        validate_against_schema(client.get(path), path, "get")
    created = client.post("/api/v1/suppressions/", {"email": "x@example.jp"}, format="json")
    validate_against_schema(created, "/api/v1/suppressions/", "post")
    assert client.delete(f"/api/v1/suppressions/{suppression.pk}/").status_code == 204
