"""A sales user opens the analytics dashboard in a real browser: Chart.js draws every chart,
a KPI's definition shows when its info button gets the focus, and the filters go into the
query string."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from analytics.rollups import rebuild_rollups
from crm.roles import Role
from tests.analytics.conftest import Shop
from tests.analytics.oracle import TOKYO
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.segments.score_rows import scored_run

pytestmark = pytest.mark.browser

CHARTS = [
    "pareto-chart",
    "decile-chart",
    "rfm-chart",
    "cohort-chart",
    "ltv-cohort-chart",
    "ltv-channel-chart",
]


def log_in(page: Page, username: str, next_url: str) -> None:
    page.goto(next_url)
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(DEFAULT_PASSWORD)
    page.locator('form button[type="submit"]').click()
    expect(page).to_have_url(re.compile(re.escape(next_url) + "$"))


def a_year_of_purchases() -> None:
    """Twenty customers buying on and off over the last 14 months, up to today."""
    shop = Shop()
    today = timezone.localdate()
    channels = ["ecommerce", "store", "line", ""]
    for n in range(20):
        customer = shop.customer(
            f"e2e{n}", prefecture="13" if n % 2 else "27", channel=channels[n % 4]
        )
        for k in range(n % 5 + 1):
            day = today - timedelta(days=(n * 23 + k * 61) % 420)
            shop.buy(
                customer,
                datetime(day.year, day.month, day.day, 12, tzinfo=TOKYO),
                1000 + 150 * n + k,
            )


@pytest.mark.parametrize("page", ["en-US"], indirect=True)
def test_dashboard_draws_its_charts_and_explains_its_kpis(page: Page, transactional_db):
    UserFactory(role=Role.SALES, username="sales-user")
    a_year_of_purchases()
    scored_run(30, seed=2, minutes_ago=5)
    rebuild_rollups()

    log_in(page, "sales-user", "/analytics/?period=last_12_months")
    expect(page.get_by_role("heading", level=1)).to_have_text("Analytics")
    expect(page.locator('[data-kpi="active_customers"] .kpi-value')).not_to_have_text("—")

    # Every chart is a Chart.js instance with data, and painted pixels.
    for chart_id in CHARTS:
        canvas = page.locator(f"#{chart_id}")
        canvas.scroll_into_view_if_needed()
        expect(canvas).to_be_visible()
        drawn = page.evaluate(
            """(id) => {
                const canvas = document.getElementById(id);
                const chart = window.Chart.getChart(canvas);
                const { width, height } = canvas;
                const pixels = canvas.getContext("2d").getImageData(0, 0, width, height);
                let painted = 0;
                for (let i = 3; i < pixels.data.length; i += 4) if (pixels.data[i]) painted++;
                const sets = chart ? chart.data.datasets : [];
                const points = sets.reduce((n, d) => n + d.data.length, 0);
                return { points, painted };
            }""",
            chart_id,
        )
        assert drawn["points"] > 0, chart_id
        assert drawn["painted"] > 500, chart_id

    # A KPI's definition: hidden until its info button is focused (keyboard or tap).
    tip = page.locator("#kpi-def-retention_rate")
    expect(tip).to_be_hidden()
    page.locator('[data-kpi="retention_rate"] .kpi-info').focus()
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("previous equal-length period's active customers")

    # A table opens under its chart, with its CSV download carrying the page's query.
    page.locator("#deciles-details summary").click()
    expect(page.locator("#deciles-table tbody tr")).to_have_count(10)
    link = page.locator("#deciles-details a[download]")
    expect(link).to_have_attribute(
        "href", re.compile(r"/analytics/csv/deciles/\?period=last_12_months")
    )

    # Filters go into the query string, so the view can be shared.
    page.locator("#id_prefecture").select_option("13")
    page.locator("#dashboard-filters button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"prefecture=13"))
    expect(page.locator("#id_prefecture")).to_have_value("13")
