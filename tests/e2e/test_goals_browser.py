"""A marketer sets a goal in a real browser (a rate typed in percent), sees it in the list
with its progress bar and status badge, and a form error when the target makes no sense."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from analytics.models import Goal
from analytics.rollups import rebuild_rollups
from crm.roles import Role
from tests.analytics.conftest import Shop
from tests.analytics.oracle import TOKYO
from tests.e2e.test_dashboard import log_in
from tests.factories import UserFactory

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_a_marketer_sets_a_goal_and_follows_it(page: Page, tmp_path):
    shop = Shop()
    today = timezone.localdate()
    for n in range(4):
        customer = shop.customer(f"g{n}")
        day = today - timedelta(days=n)
        shop.buy(customer, datetime(day.year, day.month, day.day, 9, tzinfo=TOKYO), 1000)
    rebuild_rollups()
    user = UserFactory(role=Role.MARKETER, username="goal-setter")
    log_in(page, user.username, "/analytics/goals/new/")

    page.select_option("#id_kpi", "repeat_rate")
    page.select_option("#id_target_kind", "absolute")
    page.fill("#id_target", "150")
    page.fill("#id_start", (today - timedelta(days=5)).isoformat())
    page.fill("#id_end", (today + timedelta(days=25)).isoformat())
    page.locator("form.goal-form button[type=submit]").click()
    expect(page.locator(".field.has-error .error")).to_have_count(1)
    assert not Goal.objects.exists()

    page.fill("#id_target", "25")
    page.locator("form.goal-form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/analytics/goals/$"))
    goal = Goal.objects.get()
    assert str(goal.target) == "0.250000"
    row = page.locator(f'tr[data-goal="{goal.pk}"]')
    expect(row.locator("progress")).to_have_count(1)
    badge = row.locator("[data-goal-status]")
    expect(badge).to_have_attribute("data-goal-status", re.compile("on_track|off_track"))
    if os.environ.get("GOALS_SCREENSHOT"):
        page.screenshot(path=os.environ["GOALS_SCREENSHOT"], full_page=True)
