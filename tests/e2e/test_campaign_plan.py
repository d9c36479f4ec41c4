"""A marketer plans a campaign in a real browser: goal, two variants with an A/B test share,
the preview, then a schedule for now; a real Celery worker sends it to a real SMTP server
while the campaign page's progress bar follows it to 100%."""

from __future__ import annotations

import os
import re
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from crm.celery import app
from crm.roles import Role
from tests.campaigns.factories import everyone_segment, subscriber
from tests.e2e.test_dashboard import log_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.smtp]

AUDIENCE = 40


def shoot(page: Page, name: str) -> None:
    """Screenshots for a person to look at, when CAMPAIGN_SCREENSHOTS names a folder."""
    if folder := os.environ.get("CAMPAIGN_SCREENSHOTS"):
        page.screenshot(path=f"{folder}/campaign-{name}.png", full_page=True)


@pytest.fixture
def mail_worker(monkeypatch, smtp_server):
    """What the worker process reads from the environment: our SMTP server."""
    monkeypatch.setenv("EMAIL_URL", f"smtp://127.0.0.1:{smtp_server.port}")
    monkeypatch.setenv("SITE_URL", "https://crm.example.jp")
    monkeypatch.setenv("CAMPAIGN_SEND_TASKS", "1")
    # Tasks left in the broker by other tests must not reach this worker.
    app.control.purge()
    return smtp_server


@pytest.mark.django_db(transaction=True)
def test_a_marketer_plans_previews_schedules_and_watches_a_campaign_send(
    mail_worker, celery_worker, page: Page
):
    for n in range(AUDIENCE):
        subscriber(email=f"member{n}@example.jp")
    segment = everyone_segment("東京の購読者")
    UserFactory(role=Role.MARKETER, username="planner")
    log_in(page, "planner", "/campaigns/new/")

    page.fill("#id_name", "冬のセール")
    page.select_option("#id_segment", str(segment.pk))
    page.fill("#id_hypothesis", "名前入りの件名のほうが開封される")
    page.fill("#id_goal_open_rate", "30")
    page.fill("#id_test_percent", "50")
    page.fill("#id_variants-0-subject", "{{ family_name }}様、冬のセールです")
    page.fill(
        "#id_variants-0-html_body",
        '<p>{{ full_name }}様</p><p><a href="https://shop.example.jp/winter">会場へ</a></p>',
    )
    page.fill("#id_variants-0-text_body", "{{ full_name }}様\nhttps://shop.example.jp/winter")
    page.locator("[data-add-variant]").click()
    expect(page.locator("#id_variants-1-label")).to_have_value("B")
    expect(page.locator("#id_variants-0-weight")).to_have_value("50")
    expect(page.locator("#id_variants-1-weight")).to_have_value("50")
    expect(page.locator("[data-weight-total]")).to_have_text("100")
    page.fill("#id_variants-1-subject", "冬のセールのお知らせ")
    page.fill("#id_variants-1-html_body", "<p>冬のセール開催中</p>")
    page.fill("#id_variants-1-text_body", "冬のセール開催中")
    shoot(page, "form")
    page.locator("#campaign-form button[type=submit]").click()

    campaign = Campaign.objects.get()
    expect(page).to_have_url(re.compile(rf"/campaigns/{campaign.pk}/$"))
    assert campaign.variants.count() == 2
    assert str(campaign.goal_open_rate) == "0.3000"

    page.locator(f'a[href="/campaigns/{campaign.pk}/preview/"]').click()
    expect(page.locator("[data-preview-subject]")).to_contain_text("様、冬のセールです")
    expect(page.locator("iframe.email-frame")).to_have_attribute("sandbox", "")
    page.select_option("#preview-variant", str(campaign.variants.get(label="B").pk))
    expect(page.locator("[data-preview-subject]")).to_have_text("冬のセールのお知らせ")
    shoot(page, "preview")
    page.locator(f'a[href="/campaigns/{campaign.pk}/"]').click()

    now = timezone.now().astimezone(ZoneInfo(settings.TIME_ZONE))
    page.fill("#id_at", now.strftime("%Y-%m-%dT%H:%M"))
    page.locator("form.schedule-form button[type=submit]").click()
    expect(page.locator("[data-percent-bar]")).to_have_attribute("value", "100", timeout=90_000)
    expect(page.locator("[data-campaign-status]")).to_have_attribute(
        "class", re.compile("status-testing"), timeout=30_000
    )

    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.TESTING  # the other half waits for the winner
    sent = Message.objects.filter(campaign=campaign, status=MessageStatus.SENT)
    waiting = Message.objects.filter(campaign=campaign, status=MessageStatus.WAITING)
    assert sent.count() + waiting.count() == AUDIENCE
    assert 0 < sent.count() < AUDIENCE
    assert sorted(envelope.rcpt_tos[0] for envelope in mail_worker.messages) == sorted(
        sent.values_list("email", flat=True)
    )
    expect(page.locator('[data-field="sent"]')).to_have_text(str(sent.count()))
    # The page reloaded itself when the status changed: let its files finish loading.
    page.wait_for_load_state("networkidle")
    shoot(page, "detail")
