"""Sent campaign messages for the tracking, unsubscribe and bounce tests."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from campaigns.models import Campaign, Link, Message, MessageStatus, Variant
from campaigns.tracking import BUFFER_KEY, buffer_client
from tests.customers.factories import CustomerFactory
from tests.segments.factories import SegmentFactory


def make_campaign(*, links=("https://shop.example.jp/sale", "https://shop.example.jp/new")):
    campaign = Campaign.objects.create(name="秋のセール", segment=SegmentFactory(), status="sent")
    variant = Variant.objects.create(
        campaign=campaign, label="A", subject="セール", html_body="<p>x</p>", text_body="x"
    )
    for url in links:
        Link.objects.create(campaign=campaign, url=url)
    return campaign, variant


def make_message(campaign, variant, *, customer=None, status=MessageStatus.SENT, sent_ago=3600):
    customer = customer or CustomerFactory(email_opt_in=True, email_opt_in_at=timezone.now())
    return Message.objects.create(
        campaign=campaign,
        customer=customer,
        variant=variant,
        email=customer.email,
        status=status,
        sent_at=timezone.now() - timedelta(seconds=sent_ago)
        if status == MessageStatus.SENT
        else None,
    )


def clear_buffer():
    """Empty the Redis tracking buffer and its drain lock (tests share one Redis database)."""
    client = buffer_client()
    if client is not None:
        client.delete(BUFFER_KEY, "campaigns:tracking:drain-lock")
    return client
