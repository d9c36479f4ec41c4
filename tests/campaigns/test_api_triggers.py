"""Automations through the API: created with their variants and trigger, activated and
paused, changed only as a draft or paused, and who may do what."""

from __future__ import annotations

import pytest

from campaigns.models import Campaign, CampaignStatus, Trigger
from tests.campaigns.api_clients import api_as
from tests.customers.test_quality import validate_against_schema

pytestmark = pytest.mark.django_db
URL = "/api/v1/automations/"
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}

VARIANT = {
    "label": "A",
    "subject": "{{ family_name }}様、お誕生日おめでとうございます",
    "html_body": "<p>{{ full_name }}様</p><p>クーポン: {{ coupon_code }}</p>",
    "text_body": "{{ full_name }}様\nクーポン: {{ coupon_code }}\n",
    "weight": 100,
}


def automation(**changes) -> dict:
    body = {
        "name": "誕生日クーポン",
        "coupon_code": "HAPPY",
        "goal_conversion_rate": 0.1,
        "variants": [VARIANT],
        "trigger": {"kind": "birthday", "days": 7, "send_hour": 9},
    }
    return {**body, **changes}


def errors_by_attr(response) -> dict[str, str]:
    return {error["attr"]: error["detail"] for error in response.json()["errors"]}


def test_a_marketer_creates_a_birthday_automation_without_a_segment(marketer):
    client = api_as(marketer)
    response = client.post(URL, automation(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["segment"] is None
    assert body["status"] == "draft"
    assert body["trigger"] == {
        "kind": "birthday",
        "days": 7,
        "gap_multiplier": None,
        "send_hour": 9,
        "last_run_at": None,
        "last_run_matched": 0,
    }
    trigger = Trigger.objects.get(campaign_id=body["id"])
    assert (trigger.kind, trigger.days, trigger.send_hour) == ("birthday", 7, 9)
    assert trigger.campaign.kind == "automation"
    assert client.get(f"{URL}{body['id']}/").json() == body
    # Automations are not campaigns.
    assert client.get("/api/v1/campaigns/").json()["results"] == []
    assert client.get(f"/api/v1/campaigns/{body['id']}/").status_code == 404


def test_a_win_back_trigger_takes_a_gap_multiplier_and_others_do_not(marketer):
    client = api_as(marketer)
    win_back = {"kind": "win_back", "days": 90, "gap_multiplier": 2.5}
    response = client.post(URL, automation(trigger=win_back), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["trigger"]["gap_multiplier"] == 2.5
    assert str(Trigger.objects.get().gap_multiplier) == "2.50"
    assert Trigger.objects.get().send_hour == 10  # the default

    birthday = {"kind": "birthday", "days": 7, "gap_multiplier": 2}
    refused = client.post(URL, automation(trigger=birthday), format="json", **EN)
    assert refused.status_code == 400
    assert errors_by_attr(refused) == {
        "trigger.gap_multiplier": "Only a win-back trigger has a gap."
    }
    assert Campaign.objects.count() == 1


@pytest.mark.parametrize(
    ("trigger", "attr"),
    [
        ({"kind": "anniversary", "days": 7}, "trigger.kind"),
        ({"kind": "birthday", "days": -1}, "trigger.days"),
        ({"kind": "birthday", "days": 7, "send_hour": 24}, "trigger.send_hour"),
        ({"kind": "win_back", "days": 90, "gap_multiplier": 0.5}, "trigger.gap_multiplier"),
        ({"kind": "birthday"}, "trigger.days"),
    ],
)
def test_an_invalid_trigger_is_a_400_at_its_place(marketer, trigger, attr):
    response = api_as(marketer).post(URL, automation(trigger=trigger), format="json")
    assert response.status_code == 400
    assert attr in errors_by_attr(response), response.json()
    assert not Campaign.objects.exists()


def test_an_automation_needs_its_trigger(marketer):
    body = automation()
    del body["trigger"]
    response = api_as(marketer).post(URL, body, format="json")
    assert response.status_code == 400
    assert "trigger" in errors_by_attr(response)


def test_activate_and_pause_and_changes_only_while_not_active(marketer):
    client = api_as(marketer)
    created = client.post(URL, automation(), format="json").json()
    path = f"{URL}{created['id']}/"
    activated = client.post(f"{path}activate/")
    assert activated.status_code == 200, activated.json()
    assert activated.json()["status"] == "sending"
    assert Campaign.objects.get(pk=created["id"]).started_at is not None

    # Active: no change, no second activation, no deletion.
    changed = client.patch(path, {"trigger": {"kind": "birthday", "days": 3}}, format="json")
    assert changed.status_code == 409
    assert changed.json()["errors"][0]["code"] == "not_editable"
    assert client.post(f"{path}activate/").status_code == 409
    assert client.delete(path).status_code == 409

    assert client.post(f"{path}pause/").json()["status"] == "paused"
    assert client.post(f"{path}pause/").status_code == 409
    changed = client.patch(path, {"trigger": {"kind": "birthday", "days": 3}}, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["trigger"]["days"] == 3
    assert changed.json()["trigger"]["send_hour"] == 10  # left out: the default again
    assert Trigger.objects.get().days == 3
    assert client.post(f"{path}activate/").json()["status"] == "sending"


def test_an_automation_with_broken_content_cannot_be_activated(marketer):
    client = api_as(marketer)
    created = client.post(URL, automation(), format="json").json()
    # Saved through the pages or the admin with weights that no longer add up.
    Campaign.objects.get(pk=created["id"]).variants.update(weight=50)
    response = client.post(f"{URL}{created['id']}/activate/", **EN)
    assert response.status_code == 409
    assert "100" in response.json()["errors"][0]["detail"]
    assert Campaign.objects.get(pk=created["id"]).status == CampaignStatus.DRAFT


def test_sales_read_automations_but_cannot_change_or_run_them(marketer, sales):
    created = api_as(marketer).post(URL, automation(), format="json").json()
    client = api_as(sales)
    path = f"{URL}{created['id']}/"
    assert client.get(URL).status_code == 200
    assert client.get(path).status_code == 200
    assert client.get(f"{path}stats/").status_code == 200
    assert client.post(URL, automation(), format="json").status_code == 403
    assert client.patch(path, {"name": "x"}, format="json").status_code == 403
    assert client.post(f"{path}activate/").status_code == 403
    assert client.post(f"{path}pause/").status_code == 403
    assert client.delete(path).status_code == 403
    assert Campaign.objects.get().status == CampaignStatus.DRAFT


def test_the_answers_are_what_the_schema_documents(marketer):
    client = api_as(marketer)
    win_back = {"kind": "win_back", "days": 90, "gap_multiplier": 2}
    created = client.post(URL, automation(trigger=win_back), format="json")
    validate_against_schema(created, "/api/v1/automations/", "post")
    pk = created.json()["id"]
    assert client.post(f"{URL}{pk}/activate/").status_code == 200
    refused = client.patch(
        f"{URL}{pk}/",
        {"trigger": {"kind": "birthday", "days": 1, "gap_multiplier": 3}},
        format="json",
    )
    assert refused.status_code == 400
    validate_against_schema(refused, "/api/v1/automations/{id}/", "patch", id=pk)
