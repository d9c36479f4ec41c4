"""Automations: activation, each trigger's matching (birthdays with 29 February and the year
end, win-back by days and by the customer's own gap, thank-you with its look-back),
eligibility, once per period, the holdout, a segment narrowing, and the whole path to a real
SMTP server."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from campaigns.automations import activate_automation, pause_automation
from campaigns.models import Campaign, CampaignKind, CampaignStatus, Trigger, TriggerKind
from tests.campaigns.factories import CampaignFactory, VariantFactory

pytestmark = pytest.mark.django_db


def automation(kind: str = TriggerKind.BIRTHDAY, *, days: int = 7, segment=None, **fields):
    """An automation with one variant and its trigger, still a draft."""
    campaign = CampaignFactory(kind=CampaignKind.AUTOMATION, segment=segment, **fields)
    VariantFactory(campaign=campaign, subject="{{ family_name }}様、お誕生日おめでとうございます")
    Trigger.objects.create(campaign=campaign, kind=kind, days=days, send_hour=10)
    return campaign


def test_activate_and_pause_an_automation():
    campaign = automation()
    activate_automation(campaign=campaign)
    assert campaign.status == CampaignStatus.SENDING
    started = campaign.started_at
    assert started is not None
    assert campaign.links.count() == 1

    assert pause_automation(campaign=campaign) is True
    assert campaign.status == CampaignStatus.PAUSED
    assert pause_automation(campaign=campaign) is False

    activate_automation(campaign=campaign)
    assert campaign.status == CampaignStatus.SENDING
    assert campaign.started_at == started  # since its first activation


def test_activation_checks_the_content_and_the_kind():
    campaign = automation()
    campaign.variants.update(weight=60)
    with pytest.raises(ValidationError):
        activate_automation(campaign=campaign)
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DRAFT

    one_off = VariantFactory().campaign
    with pytest.raises(ValidationError):
        activate_automation(campaign=one_off)

    campaign.variants.update(weight=100)
    activate_automation(campaign=campaign)
    with pytest.raises(ValidationError):
        activate_automation(campaign=campaign)  # already active
