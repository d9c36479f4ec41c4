"""The campaigns API: CRUD with nested variants, validation errors in the API's format at
their place, changes only before the start, the sending actions (schedule in the user's time
zone), stats equal to the message rows counted here, the preview, and who may do what."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from campaigns.audience import freeze_audience
from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus, Variant
from tests.campaigns.api_clients import api_as
from tests.campaigns.factories import CampaignFactory, VariantFactory, everyone_segment, subscriber
from tests.customers.factories import PurchaseFactory
from tests.customers.test_quality import validate_against_schema

pytestmark = pytest.mark.django_db
URL = "/api/v1/campaigns/"
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def variant(label: str, weight: int, subject: str = "{{ family_name }}様、秋のセール") -> dict:
    return {
        "label": label,
        "subject": subject,
        "html_body": '<p>{{ full_name }}様</p><a href="https://shop.example.jp/sale">セール</a>',
        "text_body": "{{ full_name }}様\nhttps://shop.example.jp/sale\n",
        "weight": weight,
    }


def plan(**changes) -> dict:
    body = {
        "name": "秋のセール",
        "hypothesis": "件名に名前を入れると開封率が上がる",
        "segment": everyone_segment().pk,
        "coupon_code": "AUTUMN10",
        "goal_open_rate": 0.25,
        "goal_click_rate": 0.05,
        "goal_conversion_rate": 0.02,
        "goal_revenue": "500000",
        "attribution_days": 7,
        "holdout_percent": 10,
        "variants": [variant("A", 50), variant("B", 50, "【限定】秋のセール")],
    }
    return {**body, **changes}


def errors_by_attr(response) -> dict[str, str]:
    return {error["attr"]: error["detail"] for error in response.json()["errors"]}


# --- Create, read, change, delete -------------------------------------------------------------


def test_a_marketer_plans_a_campaign_with_two_variants_and_reads_it_back(marketer):
    client = api_as(marketer)
    response = client.post(URL, plan(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "draft"
    assert body["created_by"] == marketer.pk
    assert body["goal_open_rate"] == 0.25
    assert body["goal_revenue"] == "500000.00"
    assert [(v["label"], v["weight"]) for v in body["variants"]] == [("A", 50), ("B", 50)]
    campaign = Campaign.objects.get(pk=body["id"])
    assert campaign.kind == "campaign"
    assert str(campaign.goal_open_rate) == "0.2500"
    assert campaign.variants.count() == 2
    assert client.get(f"{URL}{campaign.pk}/").json() == body
    assert [c["id"] for c in client.get(URL).json()["results"]] == [campaign.pk]


def test_changing_the_variants_keeps_those_matched_by_label(marketer):
    client = api_as(marketer)
    created = client.post(URL, plan(), format="json").json()
    kept = Variant.objects.get(campaign_id=created["id"], label="A").pk
    response = client.patch(
        f"{URL}{created['id']}/",
        {"name": "秋のセール（改）", "variants": [variant("A", 70), variant("C", 30)]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "秋のセール（改）"
    variants = Variant.objects.filter(campaign_id=created["id"]).order_by("label")
    assert [(v.label, v.weight) for v in variants] == [("A", 70), ("C", 30)]
    assert variants[0].pk == kept
    # Other fields are left as they were.
    assert Campaign.objects.get(pk=created["id"]).coupon_code == "AUTUMN10"


def test_a_draft_is_deleted_but_a_started_campaign_is_not(marketer):
    client = api_as(marketer)
    draft = client.post(URL, plan(), format="json").json()
    assert client.delete(f"{URL}{draft['id']}/").status_code == 204
    assert not Campaign.objects.filter(pk=draft["id"]).exists()

    scheduled = CampaignFactory(
        status=CampaignStatus.SCHEDULED, scheduled_at=timezone.now() + timedelta(days=1)
    )
    response = client.delete(f"{URL}{scheduled.pk}/", **EN)
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "not_draft"
    assert Campaign.objects.filter(pk=scheduled.pk).exists()


def test_a_campaign_that_has_started_cannot_change(marketer):
    subscriber()
    campaign = CampaignFactory()
    VariantFactory(campaign=campaign)
    freeze_audience(campaign=campaign)
    response = api_as(marketer).patch(f"{URL}{campaign.pk}/", {"name": "変更"}, format="json", **EN)
    assert response.status_code == 409
    error = response.json()["errors"][0]
    assert error["code"] == "not_editable"
    assert "Sending" in error["detail"]
    campaign.refresh_from_db()
    assert campaign.name != "変更"


# --- Validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "attr"),
    [
        ({"variants": [variant("A", 60), variant("B", 30)]}, "variants"),
        ({"variants": [variant("A", 50), variant("A", 50)]}, "variants"),
        ({"variants": [variant("A", 100, "{% if %}件名")]}, "variants.0.subject"),
        ({"variants": []}, "variants"),
        ({"goal_open_rate": 1.5}, "goal_open_rate"),
        ({"goal_click_rate": "0.1"}, "goal_click_rate"),
        ({"holdout_percent": 60}, "holdout_percent"),
        ({"from_email": "not an address"}, "from_email"),
        ({"name": "  "}, "name"),
    ],
)
def test_invalid_plans_are_a_400_at_their_place_and_nothing_is_saved(marketer, changes, attr):
    response = api_as(marketer).post(URL, plan(**changes), format="json", **EN)
    assert response.status_code == 400, response.json()
    assert response.json()["type"] == "validation_error"
    attrs = errors_by_attr(response)
    # A list's own errors are reported as "variants.non_field_errors".
    assert attr in attrs or f"{attr}.non_field_errors" in attrs, response.json()
    assert not Campaign.objects.exists()


def test_weights_that_do_not_add_up_say_so(marketer):
    response = api_as(marketer).post(
        URL, plan(variants=[variant("A", 60), variant("B", 30)]), format="json", **EN
    )
    assert errors_by_attr(response) == {"variants": "The variants' weights must add up to 100."}


def test_a_patch_with_an_incomplete_variant_is_refused(marketer):
    client = api_as(marketer)
    created = client.post(URL, plan(), format="json").json()
    response = client.patch(
        f"{URL}{created['id']}/", {"variants": [{"label": "A", "weight": 100}]}, format="json"
    )
    assert response.status_code == 400
    assert {"variants.0.subject", "variants.0.html_body", "variants.0.text_body"} <= set(
        errors_by_attr(response)
    )
    assert Variant.objects.filter(campaign_id=created["id"]).count() == 2


def test_an_unknown_segment_is_a_404(marketer):
    response = api_as(marketer).post(URL, plan(segment=999999), format="json")
    assert response.status_code == 404
    assert errors_by_attr(response).keys() == {"segment"}


def test_a_goal_rate_is_rounded_to_what_is_stored(marketer):
    response = api_as(marketer).post(URL, plan(goal_open_rate=0.1 + 0.2), format="json")
    assert response.status_code == 201
    assert response.json()["goal_open_rate"] == 0.3


# --- Actions ----------------------------------------------------------------------------------


def test_schedule_reads_a_time_without_offset_in_the_users_time_zone(marketer):
    marketer.profile.time_zone = "America/New_York"
    marketer.profile.save(update_fields=["time_zone"])
    client = api_as(marketer)
    created = client.post(URL, plan(), format="json").json()
    response = client.post(
        f"{URL}{created['id']}/schedule/", {"at": "2099-05-03T09:00"}, format="json"
    )
    assert response.status_code == 200, response.json()
    expected = datetime(2099, 5, 3, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert response.json()["status"] == "scheduled"
    assert Campaign.objects.get(pk=created["id"]).scheduled_at == expected


def test_schedule_without_a_profile_uses_tokyo_and_an_offset_is_kept(marketer):
    client = api_as(marketer)
    created = client.post(URL, plan(), format="json").json()
    client.post(f"{URL}{created['id']}/schedule/", {"at": "2099-05-03T09:00"}, format="json")
    campaign = Campaign.objects.get(pk=created["id"])
    assert campaign.scheduled_at == datetime(2099, 5, 3, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    # Re-scheduling a scheduled campaign, with an explicit offset this time.
    client.post(
        f"{URL}{created['id']}/schedule/", {"at": "2099-05-04T09:00:00+02:00"}, format="json"
    )
    campaign.refresh_from_db()
    assert campaign.scheduled_at == datetime(2099, 5, 4, 7, 0, tzinfo=ZoneInfo("UTC"))


def test_send_now_pause_resume_and_cancel_change_the_status(marketer):
    client = api_as(marketer)
    created = client.post(URL, plan(), format="json").json()
    path = f"{URL}{created['id']}/"
    before = timezone.now()
    response = client.post(f"{path}send-now/")
    assert response.status_code == 200, response.json()
    campaign = Campaign.objects.get(pk=created["id"])
    assert campaign.status == CampaignStatus.SCHEDULED
    assert before <= campaign.scheduled_at <= timezone.now()

    # A scheduled campaign is not sending: nothing to pause or resume.
    assert client.post(f"{path}pause/", **EN).json()["errors"][0]["code"] == "not_allowed"
    assert client.post(f"{path}resume/").status_code == 409

    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENDING)
    assert client.post(f"{path}pause/").json()["status"] == "paused"
    assert client.post(f"{path}resume/").json()["status"] == "sending"
    assert client.post(f"{path}cancel/").json()["status"] == "cancelled"
    assert client.post(f"{path}cancel/").status_code == 409
    assert (
        client.post(f"{path}schedule/", {"at": "2099-01-01T00:00"}, format="json").status_code
        == 409
    )


def test_a_campaign_without_sendable_content_cannot_be_scheduled(marketer):
    campaign = CampaignFactory()  # no variant: the pages can save one like this
    response = api_as(marketer).post(f"{URL}{campaign.pk}/send-now/", **EN)
    assert response.status_code == 409
    assert "variant" in response.json()["errors"][0]["detail"]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_schedule_needs_a_date_time(marketer):
    created = api_as(marketer).post(URL, plan(), format="json").json()
    response = api_as(marketer).post(
        f"{URL}{created['id']}/schedule/", {"at": "tomorrow"}, format="json"
    )
    assert response.status_code == 400
    assert errors_by_attr(response).keys() == {"at"}


# --- Stats and preview ------------------------------------------------------------------------


def test_stats_equal_the_messages_counted_by_status(sales):
    for n in range(30):
        subscriber(email=f"aki{n}@example.jp")
    campaign = CampaignFactory(holdout_percent=20, goal_open_rate="0.4000")
    VariantFactory(campaign=campaign)
    freeze_audience(campaign=campaign)
    now = timezone.now()
    # Frozen three hours ago, sent two hours ago.
    Message.objects.filter(campaign=campaign).update(queued_at=now - timedelta(hours=3))
    sendable = list(Message.objects.filter(campaign=campaign, is_holdout=False).order_by("id"))
    statuses = [MessageStatus.SENT] * 6 + [MessageStatus.FAILED] * 2 + [MessageStatus.SKIPPED] * 4
    for n, (message, status) in enumerate(zip(sendable, statuses, strict=False)):
        message.status = status
        if status == MessageStatus.SENT:
            message.sent_at = now - timedelta(hours=2)
            # Three opened by a person, one of them clicked too; one opened by a machine.
            message.first_opened_at = now - timedelta(hours=1) if n < 3 else None
            message.first_clicked_at = now - timedelta(hours=1) if n == 0 else None
            message.opened_by_machine = n == 3
        message.save()
    buyer = sendable[1].customer
    PurchaseFactory(customer=buyer, purchased_at=now - timedelta(minutes=30), total=3960)
    PurchaseFactory(customer=buyer, purchased_at=now - timedelta(days=30), total=1000)  # before

    messages = list(Message.objects.filter(campaign=campaign))
    counts = Counter(m.status for m in messages)
    holdout = sum(m.is_holdout for m in messages)
    delivered = [m for m in messages if m.status == MessageStatus.SENT]
    opened = [m for m in delivered if m.first_opened_at]

    stats = api_as(sales).get(f"{URL}{campaign.pk}/stats/").json()
    progress = stats["progress"]
    assert stats["status"] == "sending"
    assert progress["audience"] == len(messages) == 30
    assert progress["holdout"] == holdout > 0
    for status in ("queued", "sending", "sent", "failed", "bounced", "skipped", "waiting"):
        assert progress[status] == counts[status], status
    assert progress["to_send"] == len(messages) - holdout
    # Holdout messages are stored as skipped: never sent, not counted as done.
    done = counts["sent"] + counts["failed"] + counts["skipped"] - holdout
    assert progress["done"] == done
    assert progress["percent"] == int(100 * done / (len(messages) - holdout))

    total = stats["results"]["total"]
    assert total["delivered"] == len(delivered) == 6
    assert total["opened"] == len(opened) == 3
    assert total["clicked"] == sum(1 for m in delivered if m.first_clicked_at) == 1
    assert total["machine_opened"] == 1
    assert total["open_rate"] == len(opened) / len(delivered)
    assert total["converted"] == 1
    assert total["revenue"] == "3960.00"
    goal = next(g for g in stats["results"]["goals"] if g["metric"] == "open_rate")
    assert goal["goal"] == 0.4
    assert goal["actual"] == 0.5
    assert stats["results"]["holdout"]["members"] == holdout


def test_preview_renders_a_variant_for_a_customer(sales):
    customer = subscriber(family_name="山田", given_name="花子")
    campaign = CampaignFactory()
    VariantFactory(campaign=campaign, label="A")
    b = VariantFactory(campaign=campaign, label="B", subject="{{ given_name }}さんへ")
    client = api_as(sales)
    first = client.get(f"{URL}{campaign.pk}/preview/", {"customer": customer.pk}).json()
    assert first["subject"] == "山田様、秋のセールのお知らせ"
    assert first["to"] == [customer.email]
    assert "山田 花子様" in first["html"] and "AUTUMN10" in first["html"]
    assert "山田 花子様" in first["text"]
    second = client.get(
        f"{URL}{campaign.pk}/preview/", {"customer": customer.pk, "variant": b.pk}
    ).json()
    assert second["subject"] == "花子さんへ"
    other = VariantFactory()
    missing = client.get(
        f"{URL}{campaign.pk}/preview/", {"customer": customer.pk, "variant": other.pk}
    )
    assert missing.status_code == 404
    assert client.get(f"{URL}{campaign.pk}/preview/", {"customer": 999999}).status_code == 404


# --- Who may do what --------------------------------------------------------------------------


def test_sales_read_campaigns_but_every_write_is_refused(sales):
    campaign = CampaignFactory()
    VariantFactory(campaign=campaign)
    client = api_as(sales)
    path = f"{URL}{campaign.pk}/"
    assert client.get(URL).status_code == 200
    assert client.get(path).status_code == 200
    assert client.get(f"{path}stats/").status_code == 200
    assert client.post(URL, plan(), format="json").status_code == 403
    assert client.patch(path, {"name": "x"}, format="json").status_code == 403
    assert client.delete(path).status_code == 403
    for act in ("schedule", "send-now", "pause", "resume", "cancel"):
        at = {"at": "2099-01-01T00:00"}
        assert client.post(f"{path}{act}/", at, format="json").status_code == 403, act
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_anonymous_requests_are_refused(client):
    assert client.get(URL).status_code == 401
    assert client.post(URL, {}, content_type="application/json").status_code == 401


def test_automations_are_not_listed_as_campaigns(marketer):
    campaign = CampaignFactory()
    CampaignFactory(kind="automation", segment=None)
    assert [c["id"] for c in api_as(marketer).get(URL).json()["results"]] == [campaign.pk]


def test_the_answers_are_what_the_schema_documents(marketer):
    customer = subscriber(family_name="山田")
    client = api_as(marketer)
    created = client.post(URL, plan(), format="json")
    validate_against_schema(created, "/api/v1/campaigns/", "post")
    pk = created.json()["id"]
    path = "/api/v1/campaigns/{id}/"
    refused = client.post(URL, plan(variants=[variant("A", 60)]), format="json")
    validate_against_schema(refused, "/api/v1/campaigns/", "post")
    assert client.get(f"{URL}{pk}/preview/", {"customer": customer.pk}).status_code == 200
    bad_query = client.get(f"{URL}{pk}/preview/", {"customer": "x"})
    assert bad_query.status_code == 400
    validate_against_schema(bad_query, f"{path}preview/", "get", id=pk)
    campaign = Campaign.objects.get(pk=pk)
    freeze_audience(campaign=campaign)
    Message.objects.filter(campaign=campaign).update(
        status=MessageStatus.SENT, sent_at=timezone.now()
    )
    validate_against_schema(client.get(f"{URL}{pk}/stats/"), f"{path}stats/", "get", id=pk)
    conflict = client.patch(f"{URL}{pk}/", {"name": "x"}, format="json")
    assert conflict.status_code == 409
    validate_against_schema(conflict, path, "patch", id=pk)
