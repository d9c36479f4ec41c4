"""Automations: activation, each trigger's matching (birthdays with 29 February and the year
end, win-back by days and by the customer's own gap, thank-you with its look-back),
eligibility, once per period (also with two runs at once), the holdout, a segment narrowing,
and the whole path to a real SMTP server."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from email import message_from_bytes
from email.header import decode_header, make_header
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.utils import timezone

from campaigns.audience import draw
from campaigns.automations import (
    activate_automation,
    evaluate_trigger,
    pause_automation,
    run_due_triggers,
    trigger_preview_count,
)
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Message,
    MessageStatus,
    SuppressionReason,
    Trigger,
    TriggerKind,
)
from campaigns.sending import send_pending
from campaigns.suppression import suppress
from campaigns.tasks import run_automations
from crm.celery import app
from customers.models import Customer, PurchaseStatus
from customers.privacy import erase_customer
from segments.membership import create_segment, refresh_segment
from segments.models import SegmentKind
from tests.campaigns.factories import CampaignFactory, VariantFactory, everyone_segment, subscriber
from tests.conftest import wait_for
from tests.customers.factories import CustomerFactory, PurchaseFactory

TOKYO = ZoneInfo("Asia/Tokyo")

pytestmark = pytest.mark.django_db


def automation(kind: str = TriggerKind.BIRTHDAY, *, days: int = 7, segment=None, **fields):
    """An automation with one variant and its trigger, still a draft."""
    gap = fields.pop("gap_multiplier", None)
    send_hour = fields.pop("send_hour", 10)
    campaign = CampaignFactory(kind=CampaignKind.AUTOMATION, segment=segment, **fields)
    VariantFactory(
        campaign=campaign,
        subject="{{ family_name }}様、お誕生日おめでとうございます",
        html_body="<html><body><p>{{ full_name }}様</p><p>クーポン: {{ coupon_code }}</p>"
        '<p><a href="https://shop.example.jp/birthday">お祝いクーポン</a></p></body></html>',
        text_body="{{ full_name }}様\nクーポン: {{ coupon_code }}\n",
    )
    Trigger.objects.create(
        campaign=campaign, kind=kind, days=days, gap_multiplier=gap, send_hour=send_hour
    )
    return campaign


def bought(customer, day: date, *, hour: int = 12, status=PurchaseStatus.COMPLETED):
    """A purchase at ``hour`` o'clock Tokyo time on ``day``."""
    return PurchaseFactory(
        customer=customer,
        purchased_at=datetime.combine(day, time(hour), tzinfo=TOKYO),
        status=status,
    )


def messages(campaign) -> dict[int, str]:
    """customer id -> period of the automation's messages (each customer at most once)."""
    rows = list(Message.objects.filter(campaign=campaign).values_list("customer_id", "period"))
    assert len({customer for customer, _period in rows}) == len(rows)
    return dict(rows)


def periods(campaign) -> set[tuple[int, str]]:
    return set(Message.objects.filter(campaign=campaign).values_list("customer_id", "period"))


# --- Activation -------------------------------------------------------------------------------


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


def test_activation_checks_the_content_the_trigger_and_the_kind():
    campaign = automation()
    campaign.variants.update(weight=60)
    with pytest.raises(ValidationError):
        activate_automation(campaign=campaign)
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DRAFT

    one_off = VariantFactory().campaign
    with pytest.raises(ValidationError):
        activate_automation(campaign=one_off)

    no_trigger = CampaignFactory(kind=CampaignKind.AUTOMATION, segment=None)
    VariantFactory(campaign=no_trigger)
    with pytest.raises(ValidationError):
        activate_automation(campaign=no_trigger)

    campaign.variants.update(weight=100)
    activate_automation(campaign=campaign)
    with pytest.raises(ValidationError):
        activate_automation(campaign=campaign)  # already active


# --- Birthdays --------------------------------------------------------------------------------


def test_birthday_n_days_before_with_29_february_in_leap_and_other_years():
    on_28 = subscriber(birthday=date(1990, 2, 28))
    on_29 = subscriber(birthday=date(1992, 2, 29))
    subscriber(birthday=date(1990, 3, 1))
    subscriber(birthday=None)

    # 2027 has no 29 February: both celebrate on the 28th, seven days after 21 February.
    plain_year = automation(days=7)
    assert evaluate_trigger(trigger=plain_year.trigger, today=date(2027, 2, 21)) == 2
    assert messages(plain_year) == {on_28.pk: "2027", on_29.pk: "2027"}

    # 2028 has one: each on their own day.
    leap_year = automation(days=7)
    assert evaluate_trigger(trigger=leap_year.trigger, today=date(2028, 2, 21)) == 1
    assert messages(leap_year) == {on_28.pk: "2028"}
    assert evaluate_trigger(trigger=leap_year.trigger, today=date(2028, 2, 22)) == 1
    assert messages(leap_year) == {on_28.pk: "2028", on_29.pk: "2028"}


def test_birthday_across_the_year_end_counts_for_the_new_year(settings):
    settings.AUTOMATION_LOOKBACK_DAYS = 0  # each day's birthdays only
    second_january = subscriber(birthday=date(1985, 1, 2))
    new_years_eve = subscriber(birthday=date(1985, 12, 31))
    campaign = automation(days=2)

    assert evaluate_trigger(trigger=campaign.trigger, today=date(2026, 12, 31)) == 1
    assert messages(campaign) == {second_january.pk: "2027"}
    # Last year's message does not stop this year's.
    Message.objects.filter(campaign=campaign).update(period="2026")
    assert evaluate_trigger(trigger=campaign.trigger, today=date(2026, 12, 31)) == 1
    assert periods(campaign) == {(second_january.pk, "2026"), (second_january.pk, "2027")}
    assert evaluate_trigger(trigger=campaign.trigger, today=date(2026, 12, 29)) == 1
    assert (new_years_eve.pk, "2026") in periods(campaign)


def test_a_birthday_beat_missed_still_gets_its_coupon_once(settings):
    settings.AUTOMATION_LOOKBACK_DAYS = 3
    on_day = subscriber(birthday=date(1990, 5, 13))
    missed = subscriber(birthday=date(1990, 5, 10))  # its coupon was due three days ago
    subscriber(birthday=date(1990, 5, 9))  # due four days ago: past the look-back
    campaign = automation(days=3)

    today = date(2026, 5, 10)
    assert trigger_preview_count(campaign.trigger, today=today) == 2
    assert evaluate_trigger(trigger=campaign.trigger, today=today) == 2
    assert messages(campaign) == {on_day.pk: "2026", missed.pk: "2026"}
    assert evaluate_trigger(trigger=campaign.trigger, today=today + timedelta(days=1)) == 0


# --- Win-back ---------------------------------------------------------------------------------


def test_win_back_fires_on_crossing_the_days_once_per_lapse(settings):
    settings.AUTOMATION_LOOKBACK_DAYS = 3
    today = date(2026, 11, 20)
    crossing = subscriber()
    bought(crossing, today - timedelta(days=120))
    bought(crossing, today - timedelta(days=90))
    # A later purchase that was cancelled does not count.
    bought(crossing, today - timedelta(days=10), status=PurchaseStatus.CANCELLED)
    missed = subscriber()  # crossed three days ago: beat missed those days
    bought(missed, today - timedelta(days=93))
    too_old = subscriber()  # crossed four days ago: past the look-back
    bought(too_old, today - timedelta(days=94))
    long_ago = subscriber()  # lapsed years ago: a segment campaign's job
    bought(long_ago, today - timedelta(days=900))
    recent = subscriber()
    bought(recent, today - timedelta(days=89))
    subscriber()  # never bought
    campaign = automation(TriggerKind.WIN_BACK, days=90)

    assert trigger_preview_count(campaign.trigger, today=today) == 2
    assert evaluate_trigger(trigger=campaign.trigger, today=today) == 2
    assert messages(campaign) == {
        crossing.pk: (today - timedelta(days=90)).isoformat(),
        missed.pk: (today - timedelta(days=93)).isoformat(),
    }
    # The next day: the recent one crosses; the others' lapse has its message.
    assert evaluate_trigger(trigger=campaign.trigger, today=today + timedelta(days=1)) == 1
    assert recent.pk in messages(campaign)
    assert evaluate_trigger(trigger=campaign.trigger, today=today + timedelta(days=2)) == 0

    # Won back, then lapsed again: a new lapse, a new message.
    bought(crossing, today + timedelta(days=5))
    later = today + timedelta(days=95)
    assert evaluate_trigger(trigger=campaign.trigger, today=later) == 1
    assert (crossing.pk, (today + timedelta(days=5)).isoformat()) in periods(campaign)
    assert {customer for customer, _period in periods(campaign)} == {
        crossing.pk,
        missed.pk,
        recent.pk,
    }


def test_win_back_by_the_customers_own_usual_gap(settings):
    settings.AUTOMATION_LOOKBACK_DAYS = 3
    today = date(2026, 11, 20)

    def customer_with(*days_ago: int):
        customer = subscriber()
        for days in days_ago:
            bought(customer, today - timedelta(days=days))
        return customer

    # Gaps 30, 10 and 10: twice the median of 10 is less than the 30 days, which apply.
    frequent = customer_with(80, 50, 40, 30)
    # Gaps 20 and 20: lapsed at twice 20 days, today.
    steady = customer_with(80, 60, 40)
    # The same, two days short of it.
    nearly = customer_with(78, 58, 38)
    # Gaps of 100 days: lapsed at 200, tomorrow (long since the last purchase).
    seldom = customer_with(399, 299, 199)
    # Gaps of 20 days, lapsed at 40 twenty days ago: long past, not mailed.
    long_ago = customer_with(100, 80, 60)
    # One purchase day only: the 30 days apply alone, crossed yesterday.
    once = customer_with(31)
    # Two purchases on one day count as one purchase day: one gap of 20 days (lapsed at 40,
    # in eight days), not 20 and 0 (a median of 10: lapsed at 30, two days ago).
    same_day = customer_with(52, 32)
    bought(same_day, today - timedelta(days=32), hour=18)
    # A purchase at 00:30 Tokyo time counts on that Tokyo day (the day before in UTC).
    midnight = subscriber()
    bought(midnight, today - timedelta(days=30), hour=0)

    campaign = automation(TriggerKind.WIN_BACK, days=30, gap_multiplier=Decimal("2"))
    assert trigger_preview_count(campaign.trigger, today=today) == 4
    assert evaluate_trigger(trigger=campaign.trigger, today=today) == 4
    assert set(messages(campaign)) == {frequent.pk, steady.pk, once.pk, midnight.pk}
    assert messages(campaign)[midnight.pk] == (today - timedelta(days=30)).isoformat()

    assert evaluate_trigger(trigger=campaign.trigger, today=today + timedelta(days=1)) == 1
    assert seldom.pk in messages(campaign)
    assert evaluate_trigger(trigger=campaign.trigger, today=today + timedelta(days=2)) == 1
    assert nearly.pk in messages(campaign)
    assert not set(messages(campaign)) & {long_ago.pk, same_day.pk}


def test_the_look_back_catches_up_a_crossing_beat_missed_once(settings):
    settings.AUTOMATION_LOOKBACK_DAYS = 1
    today = date(2026, 11, 20)
    customer = subscriber()
    bought(customer, today - timedelta(days=61))
    campaign = automation(TriggerKind.WIN_BACK, days=60)
    assert evaluate_trigger(trigger=campaign.trigger, today=today) == 1
    assert evaluate_trigger(trigger=campaign.trigger, today=today) == 0
    settings.AUTOMATION_LOOKBACK_DAYS = 0
    other = automation(TriggerKind.WIN_BACK, days=60)
    assert evaluate_trigger(trigger=other.trigger, today=today) == 0


# --- Thank-you --------------------------------------------------------------------------------


def test_thank_you_per_purchase_day_with_a_look_back_for_missed_days(settings):
    settings.AUTOMATION_LOOKBACK_DAYS = 2
    today = date(2026, 6, 10)
    yesterday = subscriber()
    # 00:30 in Tokyo on the 9th is the 8th in UTC: it counts on the 9th.
    bought(yesterday, date(2026, 6, 9), hour=0)
    bought(yesterday, date(2026, 6, 9), hour=20)
    missed = subscriber()
    bought(missed, date(2026, 6, 7))  # three days ago: beat missed two days
    too_old = subscriber()
    bought(too_old, date(2026, 6, 6))
    cancelled = subscriber()
    bought(cancelled, date(2026, 6, 9), status=PurchaseStatus.CANCELLED)
    bought_today = subscriber()
    bought(bought_today, today)
    campaign = automation(TriggerKind.THANK_YOU, days=1)

    assert evaluate_trigger(trigger=campaign.trigger, today=today) == 2
    assert messages(campaign) == {yesterday.pk: "2026-06-09", missed.pk: "2026-06-07"}

    # The next day: today's purchase is thanked; nobody is thanked twice.
    assert evaluate_trigger(trigger=campaign.trigger, today=today + timedelta(days=1)) == 1
    assert messages(campaign)[bought_today.pk] == "2026-06-10"
    # A new purchase day is a new occasion.
    bought(yesterday, date(2026, 6, 11))
    assert evaluate_trigger(trigger=campaign.trigger, today=date(2026, 6, 12)) == 1
    assert (yesterday.pk, "2026-06-11") in periods(campaign)


# --- Who may get one --------------------------------------------------------------------------


def test_a_shared_address_gets_one_thank_you_per_day_across_runs():
    first = subscriber(email="family@example.jp")
    second = subscriber(email="Family@Example.jp")
    bought(first, date(2026, 6, 9))
    bought(second, date(2026, 6, 9))
    campaign = automation(TriggerKind.THANK_YOU, days=1)

    assert evaluate_trigger(trigger=campaign.trigger, today=date(2026, 6, 10)) == 1
    # The look-back sees the 9th again the next days: the address has its thank-you.
    assert evaluate_trigger(trigger=campaign.trigger, today=date(2026, 6, 11)) == 0
    assert evaluate_trigger(trigger=campaign.trigger, today=date(2026, 6, 12)) == 0
    assert messages(campaign) == {first.pk: "2026-06-09"}
    # Another day's purchase by the other customer is another occasion.
    bought(second, date(2026, 6, 12))
    assert evaluate_trigger(trigger=campaign.trigger, today=date(2026, 6, 13)) == 1
    assert (second.pk, "2026-06-12") in periods(campaign)


def test_only_eligible_customers_get_an_automated_message(admin_member):
    birthday = date(1990, 5, 17)
    kept = subscriber(birthday=birthday)
    CustomerFactory(birthday=birthday)  # never consented
    unrecorded = CustomerFactory(birthday=birthday)
    # Consent flag set without the legal record: not enough.
    Customer.objects.filter(pk=unrecorded.pk).update(
        email_opt_in=True, email_opt_in_at=kept.email_opt_in_at
    )
    subscriber(birthday=birthday, email="not-an-address@")
    subscriber(birthday=birthday, email="unsub@example.jp")
    suppress(email="Unsub@Example.jp", reason=SuppressionReason.UNSUBSCRIBED)
    erased = subscriber(birthday=birthday, email="erased@example.jp")
    erase_customer(customer=erased, by=admin_member)
    subscriber(birthday=birthday, email="Erased@example.jp")  # came back after erasure
    family = subscriber(birthday=birthday, email="family@example.jp")
    subscriber(birthday=birthday, email="FAMILY@example.jp")  # the same address
    campaign = automation(days=3)

    today = birthday.replace(year=2026) - timedelta(days=3)
    assert trigger_preview_count(campaign.trigger, today=today) == 2
    assert evaluate_trigger(trigger=campaign.trigger, today=today) == 2
    assert set(messages(campaign)) == {kept.pk, family.pk}


def test_the_holdout_is_drawn_and_recorded():
    birthday = date(1990, 7, 1)
    customers = [subscriber(birthday=birthday) for _n in range(40)]
    campaign = automation(days=0, holdout_percent=50)
    variant = campaign.variants.get()

    assert evaluate_trigger(trigger=campaign.trigger, today=date(2026, 7, 1)) == 40
    rows = {m.customer_id: m for m in Message.objects.filter(campaign=campaign)}
    held = {pk for pk, m in rows.items() if m.is_holdout}
    assert 0 < len(held) < 40
    for customer in customers:
        expected = draw(
            campaign_id=campaign.pk,
            customer_id=customer.pk,
            holdout_percent=50,
            variants=[variant],
        )
        message = rows[customer.pk]
        assert message.is_holdout == expected.is_holdout
        if message.is_holdout:
            assert (message.status, message.variant_id) == (MessageStatus.SKIPPED, None)
        else:
            assert (message.status, message.variant_id) == (MessageStatus.QUEUED, variant.pk)
    campaign.refresh_from_db()
    assert campaign.audience_size == 40


def test_a_segment_narrows_the_matches():
    birthday = date(1990, 9, 9)
    in_tokyo = subscriber(birthday=birthday)
    in_osaka = subscriber(birthday=birthday, prefecture="27")
    today = date(2026, 9, 2)

    dynamic = automation(days=7, segment=everyone_segment())
    assert evaluate_trigger(trigger=dynamic.trigger, today=today) == 1
    assert set(messages(dynamic)) == {in_tokyo.pk}

    osaka = create_segment(
        name="大阪",
        description="",
        kind=SegmentKind.STATIC,
        rules={"op": "and", "conditions": [{"field": "prefecture", "op": "in", "value": ["27"]}]},
    )
    refresh_segment(segment=osaka)
    static = automation(days=7, segment=osaka)
    assert evaluate_trigger(trigger=static.trigger, today=today) == 1
    assert set(messages(static)) == {in_osaka.pk}


def test_preview_of_an_unsaved_trigger_writes_nothing():
    subscriber(birthday=date(1990, 4, 8))
    subscriber(birthday=date(1991, 4, 8))
    trigger = Trigger(kind=TriggerKind.BIRTHDAY, days=7)
    assert trigger_preview_count(trigger, today=date(2026, 4, 1)) == 2
    saved = automation(days=7)
    assert trigger_preview_count(saved.trigger, today=date(2026, 4, 1)) == 2
    assert not Message.objects.exists()
    saved.trigger.refresh_from_db()
    assert saved.trigger.last_run_at is None


# --- Beat -------------------------------------------------------------------------------------


def tokyo(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=TOKYO)


def test_run_due_triggers_once_a_day_from_the_sending_hour_while_active():
    day = date(2026, 8, 1)
    subscriber(birthday=date(1980, 8, 8))
    subscriber(birthday=date(1980, 8, 9))
    campaign = automation(days=7, send_hour=9)
    idle = automation(days=7, send_hour=9)  # a draft: never evaluated
    activate_automation(campaign=campaign)

    assert run_due_triggers(now=tokyo(day, 8, 55)) == {}
    assert run_due_triggers(now=tokyo(day, 9, 0)) == {campaign.trigger.pk: 1}
    assert run_due_triggers(now=tokyo(day, 9, 5)) == {}
    campaign.trigger.refresh_from_db()
    assert (campaign.trigger.last_run_at, campaign.trigger.last_run_matched) == (
        tokyo(day, 9, 0),
        1,
    )

    pause_automation(campaign=campaign)
    assert run_due_triggers(now=tokyo(day + timedelta(days=1), 9, 0)) == {}
    activate_automation(campaign=campaign)
    assert run_due_triggers(now=tokyo(day + timedelta(days=1), 23, 59)) == {campaign.trigger.pk: 1}
    assert len(messages(campaign)) == 2
    assert not Message.objects.filter(campaign=idle).exists()


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_send_each_customer_one_message():
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(":memory"):
        pytest.skip("threads need a shared database")
    birthday = date(1990, 10, 10)
    for _n in range(30):
        subscriber(birthday=birthday)
    campaign = automation(days=1)
    activate_automation(campaign=campaign)
    now = tokyo(date(2026, 10, 9), 11)
    results = []
    start = threading.Barrier(2)

    def run():
        try:
            start.wait()
            results.append(run_due_triggers(now=now))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results, key=len) == [{}, {campaign.trigger.pk: 30}]
    assert Message.objects.filter(campaign=campaign).count() == 30
    # An evaluation forced on top of beat's adds nothing either.
    assert evaluate_trigger(trigger=campaign.trigger, today=date(2026, 10, 9)) == 0


# --- End to end -------------------------------------------------------------------------------


def test_an_active_automation_delivers_its_content_through_smtp(smtp_settings):
    customer = subscriber(birthday=date(1988, 12, 24), family_name="佐藤", given_name="花子")
    campaign = automation(days=5, coupon_code="HAPPY-BDAY")
    activate_automation(campaign=campaign)

    assert run_due_triggers(now=datetime(2026, 12, 19, 3, 0, tzinfo=UTC)) == {
        campaign.trigger.pk: 1
    }
    assert send_pending(campaign_id=campaign.pk) == 1

    [envelope] = smtp_settings.messages
    assert envelope.rcpt_tos == [customer.email]
    mail = message_from_bytes(envelope.content)
    assert (
        str(make_header(decode_header(mail["Subject"]))) == "佐藤様、お誕生日おめでとうございます"
    )
    text = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    assert "HAPPY-BDAY" in text.get_payload(decode=True).decode(text.get_content_charset())
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    message = Message.objects.get(campaign=campaign)
    assert (message.status, message.period) == (MessageStatus.SENT, "2026")
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING  # an automation never finishes


@pytest.fixture
def worker_smtp(monkeypatch, smtp_server):
    """The SMTP server, in the environment the worker process is started with."""
    monkeypatch.setenv("EMAIL_URL", f"smtp://127.0.0.1:{smtp_server.port}")
    monkeypatch.setenv("SITE_URL", "https://crm.example.jp")
    monkeypatch.setenv("CAMPAIGN_SEND_TASKS", "1")
    app.control.purge()  # tasks other tests left in the broker
    return smtp_server


@pytest.mark.worker
@pytest.mark.smtp
def test_beats_task_run_by_a_real_worker_delivers_the_days_birthday_mail(
    worker_smtp, celery_worker
):
    today = timezone.localdate(timezone=TOKYO)
    customer = subscriber(birthday=(today + timedelta(days=3)).replace(year=1992))
    campaign = automation(days=3, send_hour=0)
    activate_automation(campaign=campaign)

    run_automations.delay()

    wait_for(lambda: worker_smtp.messages, timeout=60)
    assert [m.rcpt_tos for m in worker_smtp.messages] == [[customer.email]]
    wait_for(lambda: Message.objects.filter(campaign=campaign, status=MessageStatus.SENT).exists())
    # Beat's next runs that day find the trigger done.
    assert run_due_triggers() == {}
    assert Message.objects.filter(campaign=campaign).count() == 1
