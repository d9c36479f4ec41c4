"""Automation pages with the Django client: a win-back automation planned with its trigger
(no segment needed), the usual-gap multiplier kept for win-backs only, the list with trigger,
state, last evaluation and messages sent, activate and pause, and sales staff kept out."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignKind, CampaignStatus, Trigger, TriggerKind
from tests.campaigns.factories import CampaignFactory, VariantFactory, subscriber
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


def test_the_form_shows_how_many_customers_the_trigger_would_match_today(signed_in, marketer):
    in_a_week = timezone.localdate() + timedelta(days=7)
    # Born in a leap year, so that a 29 February a week ahead is a birthday too.
    subscriber(birthday=in_a_week.replace(year=1992))
    subscriber(birthday=(in_a_week + timedelta(days=60)).replace(year=1992))
    campaign = automation(kind=TriggerKind.BIRTHDAY, days=7)
    page = signed_in(marketer).get(
        f"/campaigns/automations/{campaign.pk}/edit/", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert "Today the trigger would match 1 customer." in page.content.decode()
