"""A marketer reads a sent campaign's review in a real browser: the cards give the rates the
raw tables give, Chart.js draws every chart, a definition shows on focus, the notes are saved
and the campaign is duplicated for the next round."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from campaigns.models import Campaign, Message, MessageStatus, TrackingEvent
from crm.roles import Role
from tests.campaigns.test_results import build_campaign
from tests.e2e.test_campaign_plan import shoot
from tests.e2e.test_dashboard import log_in
from tests.factories import UserFactory

pytestmark = pytest.mark.browser

CHARTS = ["variants-chart", "lift-chart", "hours-chart", "rfm-chart"]


def painted(page: Page, chart_id: str) -> dict:
    return page.evaluate(
        """(id) => {
            const canvas = document.getElementById(id);
            const chart = window.Chart.getChart(canvas);
            const { width, height } = canvas;
            const pixels = canvas.getContext("2d").getImageData(0, 0, width, height);
            let painted = 0;
            for (let i = 3; i < pixels.data.length; i += 4) if (pixels.data[i]) painted++;
            const sets = chart ? chart.data.datasets : [];
            return { points: sets.reduce((n, d) => n + d.data.length, 0), painted };
        }""",
        chart_id,
    )


@pytest.mark.parametrize("page", ["en-US"], indirect=True)
def test_marketer_reads_the_review_and_acts(page: Page, transactional_db):
    UserFactory(role=Role.MARKETER, username="marketer-user")
    campaign, _variants = build_campaign(sent_days_ago=30, size=80)
    delivered = Message.objects.filter(campaign=campaign, status=MessageStatus.SENT)
    opened = (
        TrackingEvent.objects.filter(message__in=delivered, kind="open", is_machine=False)
        .values("message")
        .distinct()
        .count()
    )

    log_in(page, "marketer-user", f"/campaigns/{campaign.pk}/review/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(campaign.name)
    expected = f"{opened / delivered.count() * 100:.1f}%"
    expect(page.locator('[data-metric="open_rate"] [data-value]')).to_have_text(expected)
    expect(page.locator(".verdict").first).to_be_visible()

    for chart_id in CHARTS:
        canvas = page.locator(f"#{chart_id}")
        canvas.scroll_into_view_if_needed()
        expect(canvas).to_be_visible()
        drawn = painted(page, chart_id)
        assert drawn["points"] > 0, chart_id
        assert drawn["painted"] > 300, chart_id
    expect(page.locator("#heatmap-table tbody tr")).to_have_count(7)
    shoot(page, "review")

    tip = page.locator("#def-conversion_rate")
    expect(tip).to_be_hidden()
    page.locator('[data-metric="conversion_rate"] .kpi-info').focus()
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("attribution window")

    page.locator("#id_notes").fill("件名に名前を入れて再テスト")
    page.get_by_role("button", name="Save notes").click()
    expect(page.locator("#id_notes")).to_have_value("件名に名前を入れて再テスト")

    page.get_by_role("button", name="Duplicate").click()
    copy = Campaign.objects.filter(parent=campaign).get()
    expect(page).to_have_url(re.compile(rf"/campaigns/{copy.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(copy.name)
