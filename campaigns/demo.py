"""Demo campaigns for `make run`: a finished A/B campaign with a holdout whose review page has
something to show, a draft ready to schedule, and the three automations (birthday, win-back,
thank you), active, so a first start shows every part of the PDCA loop.

The finished campaign's history is written, not sent: its messages are marked sent three weeks
ago and its opens and clicks go through the tracking intake (``tracking.ingest``) exactly as
real hits would, some from Apple's privacy proxy so machine opens show apart. Conversions are
the demo customers' own purchases inside the attribution window; nothing is invented for them.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from campaigns import machine_events
from campaigns.audience import freeze_audience
from campaigns.automations import activate_automation
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Link,
    Message,
    MessageStatus,
    Trigger,
    TriggerKind,
    Variant,
)
from campaigns.rendering import store_links
from campaigns.tracking import CLICK, OPEN, Hit, ingest, ip_hash
from segments.models import Segment

# Content is data, written in the language of the shops the demo stands for.
_HTML = (
    "<p>{{ full_name }} 様</p>"
    "<p>いつもご利用いただきありがとうございます。{{ campaign_name }}のご案内です。</p>"
    '<p><a href="https://shop.example.jp/gift">ギフト特集を見る</a></p>'
    "{% if coupon_code %}<p>クーポンコード: <strong>{{ coupon_code }}</strong></p>{% endif %}"
)
_TEXT = (
    "{{ full_name }} 様\n\nいつもご利用いただきありがとうございます。"
    "{{ campaign_name }}のご案内です。\n\nギフト特集: https://shop.example.jp/gift\n"
    "{% if coupon_code %}クーポンコード: {{ coupon_code }}\n{% endif %}"
)
_HUMAN_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"
# Hours of the day people read mail, weighted: lunch and evening peaks.
_HOURS = list(range(24))
_HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 7, 9, 6, 5, 6, 10, 9, 5, 4, 4, 5, 7, 9, 11, 12, 8, 3]


def create_demo_campaigns(*, by=None, seed: int = 7) -> list[Campaign]:
    """Create the demo campaigns and automations unless some campaign exists already."""
    if Campaign.objects.exists():
        return []
    top = Segment.objects.filter(name="上位20%の顧客").first()
    loyal = Segment.objects.filter(name="首都圏のロイヤル顧客").first()
    if top is None or loyal is None:
        return []
    rng = random.Random(seed)  # noqa: S311 (demo data, not security)
    created = [_finished_ab_campaign(segment=top, by=by, rng=rng)]
    created.append(_draft_campaign(segment=loyal, by=by))
    created.extend(_automations(by=by))
    return created


def _variants(campaign: Campaign, subjects: list[str]) -> None:
    weight = 100 // len(subjects)
    Variant.objects.bulk_create(
        Variant(
            campaign=campaign,
            label=chr(ord("A") + index),
            subject=subject,
            html_body=_HTML,
            text_body=_TEXT,
            weight=weight if index else 100 - weight * (len(subjects) - 1),
        )
        for index, subject in enumerate(subjects)
    )


@transaction.atomic
def _finished_ab_campaign(*, segment: Segment, by, rng: random.Random) -> Campaign:
    campaign = Campaign.objects.create(
        name="冬のギフト特集（件名A/Bテスト）",
        segment=segment,
        hypothesis="件名にクーポンを明記すると、開封率とクリック率が上がるはず。",
        goal_open_rate=Decimal("0.35"),
        goal_click_rate=Decimal("0.06"),
        goal_conversion_rate=Decimal("0.05"),
        attribution_days=7,
        holdout_percent=10,
        coupon_code="WINTER10",
        created_by=by,
    )
    _variants(
        campaign,
        [
            "{{ family_name }}様へ、冬のギフト特集のご案内",
            "【10%OFF】{{ family_name }}様だけのクーポン {{ coupon_code }}",
        ],
    )
    store_links(campaign=campaign)
    freeze_audience(campaign=campaign)
    started = timezone.now() - timedelta(days=21)
    Message.objects.filter(campaign=campaign).update(queued_at=started)
    Message.objects.filter(campaign=campaign, status=MessageStatus.QUEUED).update(
        status=MessageStatus.SENT, sent_at=started + timedelta(minutes=2)
    )
    sent = Message.objects.filter(campaign=campaign, status=MessageStatus.SENT).count()
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SENT,
        started_at=started,
        finished_at=started + timedelta(minutes=5),
        sent_count=sent,
    )
    _simulate_reading(campaign=campaign, sent_at=started + timedelta(minutes=2), rng=rng)
    campaign.refresh_from_db()
    return campaign


def _simulate_reading(*, campaign: Campaign, sent_at, rng: random.Random) -> None:
    """Opens and clicks as the tracking endpoints would have recorded them: variant B's
    subject does better; one recipient in twelve reads through Apple's privacy proxy."""
    link = Link.objects.filter(campaign=campaign).first()
    open_rate = {"A": 0.30, "B": 0.41}
    click_rate = {"A": 0.14, "B": 0.20}  # of those who opened
    hits = []
    human_ip = ip_hash("203.0.113.7")
    messages = Message.objects.filter(campaign=campaign, status=MessageStatus.SENT).values_list(
        "id", "variant__label"
    )
    for message_id, label in messages:
        if rng.random() < 1 / 12:
            hits.append(
                Hit(
                    OPEN,
                    message_id,
                    None,
                    (sent_at + timedelta(seconds=40)).timestamp(),
                    "Mozilla/5.0",
                    ip_hash("17.58.0.1"),
                    machine_events.APPLE_MPP,
                )
            )
        if rng.random() >= open_rate[label]:
            continue
        day = rng.choices([0, 1, 2, 3, 5], weights=[50, 25, 12, 8, 5])[0]
        # Hours of the reader's day (the organisation's time zone), not UTC's.
        opened = timezone.localtime(sent_at + timedelta(days=day)).replace(
            hour=rng.choices(_HOURS, weights=_HOUR_WEIGHTS)[0], minute=rng.randrange(60)
        )
        opened = max(opened, sent_at + timedelta(minutes=10))
        hits.append(Hit(OPEN, message_id, None, opened.timestamp(), _HUMAN_AGENT, human_ip, ""))
        if link is not None and rng.random() < click_rate[label]:
            clicked = opened + timedelta(minutes=rng.randrange(1, 30))
            hits.append(
                Hit(CLICK, message_id, link.pk, clicked.timestamp(), _HUMAN_AGENT, human_ip, "")
            )
    ingest(hits)


def _draft_campaign(*, segment: Segment, by) -> Campaign:
    campaign = Campaign.objects.create(
        name="春の新作のご案内",
        segment=segment,
        hypothesis="前回の勝ちパターン（件名にクーポン）を首都圏のロイヤル顧客でも確かめる。",
        goal_open_rate=Decimal("0.40"),
        goal_click_rate=Decimal("0.08"),
        attribution_days=7,
        coupon_code="SPRING10",
        created_by=by,
    )
    _variants(campaign, ["【10%OFF】{{ family_name }}様、春の新作が入荷しました"])
    return campaign


_AUTOMATIONS = [
    (
        "お誕生日クーポン",
        "{{ family_name }}様、お誕生日おめでとうございます",
        {"kind": TriggerKind.BIRTHDAY, "days": 7},
        "BIRTHDAY500",
    ),
    (
        "掘り起こし（いつもの間隔の2倍）",
        "{{ family_name }}様、お久しぶりです。特別クーポンをお届けします",
        {"kind": TriggerKind.WIN_BACK, "days": 60, "gap_multiplier": Decimal("2.00")},
        "COMEBACK15",
    ),
    (
        "ご購入のお礼",
        "{{ family_name }}様、ご購入ありがとうございました",
        {"kind": TriggerKind.THANK_YOU, "days": 1},
        "",
    ),
]


def _automations(*, by) -> list[Campaign]:
    created = []
    for name, subject, trigger, coupon in _AUTOMATIONS:
        campaign = Campaign.objects.create(
            name=name,
            kind=CampaignKind.AUTOMATION,
            goal_open_rate=Decimal("0.40"),
            goal_conversion_rate=Decimal("0.05"),
            attribution_days=14,
            holdout_percent=10,
            coupon_code=coupon,
            created_by=by,
        )
        _variants(campaign, [subject])
        Trigger.objects.create(campaign=campaign, **trigger)
        created.append(activate_automation(campaign=campaign, by=by))
    return created
