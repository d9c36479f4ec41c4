"""`make run`'s demo comes with a finished A/B campaign whose review has figures, a draft to
schedule and the three automations active; a second setup_demo adds nothing."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    EventKind,
    Message,
    MessageStatus,
    TrackingEvent,
    TriggerKind,
)
from campaigns.results import campaign_results
from customers.demo_data import flush_customer_data

pytestmark = pytest.mark.django_db


def test_setup_demo_creates_a_reviewable_campaign_a_draft_and_active_automations():
    flush_customer_data()
    call_command("setup_demo", "--customers", "400", "--skip-checks", verbosity=0)

    finished = Campaign.objects.get(status=CampaignStatus.SENT)
    assert finished.variants.count() == 2
    sent = Message.objects.filter(campaign=finished, status=MessageStatus.SENT)
    assert finished.sent_count == sent.count() > 0
    assert Message.objects.filter(campaign=finished, is_holdout=True).exists()
    results = campaign_results(finished)
    human_opens = (
        TrackingEvent.objects.filter(message__campaign=finished, kind=EventKind.OPEN)
        .filter(is_machine=False)
        .values("message")
        .distinct()
        .count()
    )
    assert results.total.delivered == sent.count()
    assert results.total.opened == human_opens > 0
    assert results.total.machine_opened > 0
    assert sum(sum(row) for row in results.heat_map) == human_opens

    assert (
        Campaign.objects.filter(status=CampaignStatus.DRAFT, kind=CampaignKind.CAMPAIGN).count()
        == 1
    )
    automations = Campaign.objects.filter(kind=CampaignKind.AUTOMATION)
    assert {a.trigger.kind for a in automations} == set(TriggerKind.values)
    assert {a.status for a in automations} == {CampaignStatus.SENDING}

    call_command("setup_demo", "--customers", "400", "--skip-checks", verbosity=0)
    assert Campaign.objects.count() == 5
