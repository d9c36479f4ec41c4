"""Erasing a customer reaches the campaigns: no message keeps the address, none is sent."""

from __future__ import annotations

import pytest

from campaigns.audience import freeze_audience
from campaigns.models import Message, MessageStatus
from customers.privacy import erase_customer
from tests.campaigns.factories import CampaignFactory, VariantFactory, subscriber

pytestmark = pytest.mark.django_db


def test_erasure_blanks_frozen_addresses_and_skips_unsent_messages(admin_member):
    hanako = subscriber(email="hanako@example.jp")
    taro = subscriber(email="taro@example.jp")
    sent_campaign = VariantFactory().campaign
    freeze_audience(campaign=sent_campaign)
    Message.objects.filter(campaign=sent_campaign).update(status=MessageStatus.SENT)
    queued_campaign = VariantFactory(campaign=CampaignFactory()).campaign
    freeze_audience(campaign=queued_campaign)

    erase_customer(customer=hanako, by=admin_member)

    hers = Message.objects.filter(customer=hanako)
    assert hers.count() == 2
    assert set(hers.values_list("email", flat=True)) == {""}
    assert hers.get(campaign=sent_campaign).status == MessageStatus.SENT
    assert hers.get(campaign=queued_campaign).status == MessageStatus.SKIPPED
    # Nobody else's messages change.
    his = Message.objects.filter(customer=taro)
    assert set(his.values_list("email", flat=True)) == {"taro@example.jp"}
    assert his.get(campaign=queued_campaign).status == MessageStatus.QUEUED
