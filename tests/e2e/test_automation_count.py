"""The automation form in a real browser: the page shows at once, then its script asks
campaigns:trigger-count how many customers the trigger would match today, and asks again
when the trigger's fields change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import TriggerKind
from crm.roles import Role
from tests.campaigns.factories import subscriber
from tests.e2e.test_dashboard import log_in
from tests.factories import UserFactory

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_the_count_follows_the_trigger_fields(new_page):
    in_a_week = timezone.localdate() + timedelta(days=7)
    subscriber(birthday=in_a_week.replace(year=1992))
    UserFactory(role=Role.MARKETER, username="planner")
    page = new_page("en")
    log_in(page, "planner", "/campaigns/automations/new/")

    page.select_option("#id_trigger-kind", TriggerKind.BIRTHDAY)
    page.fill("#id_trigger-days", "7")
    count = page.locator("[data-trigger-count]")
    expect(count).to_have_text("Today the trigger would match 1 customer.")
    page.fill("#id_trigger-days", "30")
    expect(count).to_have_text("Today the trigger would match 0 customers.")
