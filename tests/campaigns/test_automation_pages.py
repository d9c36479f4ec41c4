"""Automation pages with the Django client: a win-back automation planned with its trigger
(no segment needed), the usual-gap multiplier kept for win-backs only, the list with trigger,
state, last evaluation and messages sent, activate and pause, sales staff kept out, and the
trigger's count for the form from its JSON endpoint (the page never waits for it)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from campaigns.automations import evaluate_trigger
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Message,
    Trigger,
    TriggerKind,
)
from segments.membership import create_segment, refresh_segment
from segments.models import SegmentKind
from tests.campaigns.factories import CampaignFactory, VariantFactory, everyone_segment, subscriber
from tests.campaigns.test_plan_pages import Browser, plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client_as):
    return lambda user: Browser(client_as(user))


def automation_plan(**changes) -> dict:
    data = plan(
        name="休眠顧客の呼び戻し",
        segment="",
        **{
            "trigger-kind": TriggerKind.WIN_BACK,
            "trigger-days": "90",
            "trigger-gap_multiplier": "2",
            "trigger-send_hour": "10",
        },
    )
    data.pop("test_percent")
    data.update(changes)
    return data


def automation(status=CampaignStatus.DRAFT, **trigger) -> Campaign:
    campaign = CampaignFactory(kind=CampaignKind.AUTOMATION, segment=None, status=status)
    VariantFactory(campaign=campaign)
    Trigger.objects.create(
        campaign=campaign, **{"kind": TriggerKind.BIRTHDAY, "days": 7, **trigger}
    )
    return campaign


def test_a_marketer_plans_a_win_back_automation_without_a_segment(signed_in, marketer):
    client = signed_in(marketer)
    assert client.get("/campaigns/automations/new/").status_code == 200
    response = client.post("/campaigns/automations/new/", automation_plan())
    saved = Campaign.objects.get()
    assert response["Location"] == f"/campaigns/{saved.pk}/"
    assert (saved.kind, saved.segment, saved.status) == (CampaignKind.AUTOMATION, None, "draft")
    assert saved.goal_open_rate == Decimal("0.2550")
    trigger = saved.trigger
    assert (trigger.kind, trigger.days, trigger.gap_multiplier, trigger.send_hour) == (
        TriggerKind.WIN_BACK,
        90,
        Decimal("2.00"),
        10,
    )
    assert saved.variants.count() == 2


def test_the_gap_multiplier_is_for_win_backs_only(signed_in, marketer):
    client = signed_in(marketer)
    client.post(
        "/campaigns/automations/new/",
        automation_plan(**{"trigger-kind": TriggerKind.BIRTHDAY, "trigger-days": "7"}),
    )
    trigger = Trigger.objects.get()
    assert (trigger.kind, trigger.gap_multiplier) == (TriggerKind.BIRTHDAY, None)


def test_a_trigger_error_keeps_the_form(signed_in, marketer):
    response = signed_in(marketer).post(
        "/campaigns/automations/new/", automation_plan(**{"trigger-send_hour": "25"})
    )
    assert response.status_code == 200
    assert "休眠顧客の呼び戻し" in response.content.decode()
    assert not Campaign.objects.exists()


def test_the_list_shows_trigger_state_last_evaluation_and_messages_sent(signed_in, sales):
    active = automation(CampaignStatus.SENDING, kind=TriggerKind.WIN_BACK, days=120)
    Trigger.objects.filter(campaign=active).update(last_run_matched=37, last_run_at=timezone.now())
    Campaign.objects.filter(pk=active.pk).update(sent_count=1234)
    automation(CampaignStatus.PAUSED)
    automation()
    html = signed_in(sales).get("/campaigns/automations/", HTTP_ACCEPT_LANGUAGE="en")
    html = html.content.decode()
    row = html[html.index(f'data-automation="{active.pk}"') :].split("</tr>")[0]
    assert "No purchase for 120 days" in row
    assert 'data-state="active"' in row
    assert ">37<" in row
    assert "1,234" in row
    assert 'data-state="paused"' in html
    assert 'data-state="draft"' in html
    assert "New automation" not in html  # sales staff read only


def test_activate_and_pause(signed_in, marketer):
    campaign = automation()
    client = signed_in(marketer)
    base = f"/campaigns/automations/{campaign.pk}"
    page = client.get(f"/campaigns/{campaign.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'action="{base}/activate/"' in page
    client.post(f"{base}/activate/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING
    # An active automation is paused before it is changed.
    assert client.get(f"{base}/edit/")["Location"] == f"/campaigns/{campaign.pk}/"
    client.post(f"{base}/pause/")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    assert client.get(f"{base}/edit/").status_code == 200


def test_an_automation_without_trigger_is_not_activated(signed_in, marketer):
    campaign = CampaignFactory(kind=CampaignKind.AUTOMATION, segment=None)
    VariantFactory(campaign=campaign)
    response = signed_in(marketer).post(
        f"/campaigns/automations/{campaign.pk}/activate/", follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert "trigger" in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_sales_cannot_plan_activate_or_pause(signed_in, sales):
    campaign = automation()
    client = signed_in(sales)
    assert client.get(f"/campaigns/{campaign.pk}/").status_code == 200
    assert client.get("/campaigns/automations/new/").status_code == 403
    assert client.post("/campaigns/automations/new/", automation_plan()).status_code == 403
    base = f"/campaigns/automations/{campaign.pk}"
    for action in ("edit", "activate", "pause"):
        assert client.post(f"{base}/{action}/").status_code == 403, action
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def count_query(campaign=None, segment=None, **trigger) -> dict:
    fields = {"kind": TriggerKind.BIRTHDAY, "days": 7, "send_hour": 10, **trigger}
    query = {f"trigger-{name}": value for name, value in fields.items()}
    query["segment"] = segment.pk if segment else ""
    if campaign is not None:
        query["campaign"] = campaign.pk
    return query


def test_the_form_does_not_wait_for_the_count_its_script_asks_for_it(signed_in, marketer):
    in_a_week = timezone.localdate() + timedelta(days=7)
    subscriber(birthday=in_a_week.replace(year=1992))
    campaign = automation(kind=TriggerKind.BIRTHDAY, days=7)
    for url in (f"/campaigns/automations/{campaign.pk}/edit/", "/campaigns/automations/new/"):
        html = signed_in(marketer).get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
        assert 'data-trigger-count="/campaigns/automations/trigger-count/"' in html
        assert "would match" not in html
        assert "campaign-trigger-count.js" in html
    assert (
        f'data-campaign="{campaign.pk}"'
        in signed_in(marketer).get(f"/campaigns/automations/{campaign.pk}/edit/").content.decode()
    )


def test_the_count_is_what_the_evaluation_would_add_today(client_as, marketer):
    today = timezone.localdate()
    in_a_week = today + timedelta(days=7)
    # Born in a leap year, so that a 29 February a week ahead is a birthday too.
    tokyo = subscriber(birthday=in_a_week.replace(year=1992))
    subscriber(birthday=in_a_week.replace(year=1992), prefecture="27")
    subscriber(birthday=(in_a_week + timedelta(days=60)).replace(year=1992))
    campaign = automation(kind=TriggerKind.BIRTHDAY, days=7)
    client = client_as(marketer)
    url = "/campaigns/automations/trigger-count/"

    response = client.get(url, count_query(campaign), HTTP_ACCEPT_LANGUAGE="en")
    assert response.json() == {"count": 2, "text": "Today the trigger would match 2 customers."}
    # An unsaved form with a segment chosen: its members only.
    osaka = create_segment(
        name="大阪",
        description="",
        kind=SegmentKind.STATIC,
        rules={"op": "and", "conditions": [{"field": "prefecture", "op": "in", "value": ["27"]}]},
    )
    refresh_segment(segment=osaka)
    assert client.get(url, count_query(segment=osaka)).json()["count"] == 1

    # The automation's segment as saved: the count equals what the evaluation adds.
    Campaign.objects.filter(pk=campaign.pk).update(segment=everyone_segment())
    campaign.refresh_from_db()
    segment = campaign.segment
    counted = client.get(url, count_query(campaign, segment=segment)).json()["count"]
    assert counted == evaluate_trigger(trigger=campaign.trigger, today=today) == 1
    assert set(Message.objects.values_list("customer_id", flat=True)) == {tokyo.pk}


def test_the_count_is_cached_per_trigger_and_day(client_as, marketer):
    in_a_week = timezone.localdate() + timedelta(days=7)
    subscriber(birthday=in_a_week.replace(year=1992))
    client = client_as(marketer)
    url = "/campaigns/automations/trigger-count/"
    assert client.get(url, count_query()).json()["count"] == 1
    subscriber(birthday=in_a_week.replace(year=1993))
    # Asked again within minutes: the same answer, not counted again.
    assert client.get(url, count_query()).json()["count"] == 1
    # Other parameters are another question (the birthday within the look-back of 8 days).
    assert client.get(url, count_query(days=8)).json()["count"] == 2
    cache.clear()
    assert client.get(url, count_query()).json()["count"] == 2


def test_the_count_needs_valid_fields_and_the_right_to_change_campaigns(client_as, marketer, sales):
    url = "/campaigns/automations/trigger-count/"
    response = client_as(marketer).get(url, count_query(send_hour=25))
    assert response.status_code == 400
    assert "send_hour" in response.json()["errors"]
    assert client_as(sales).get(url, count_query()).status_code == 403
