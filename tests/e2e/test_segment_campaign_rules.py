"""A marketer targets the people who did not open a campaign, in a real browser: the builder
offers the campaign fields with a campaign picker and a day window, the live count follows,
and the saved segment's rules read in words. (The rule semantics themselves:
tests/segments/test_campaign_rules.py.)"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from campaigns import tracking
from campaigns.models import MessageStatus
from crm.roles import Role
from segments.models import Segment
from tests.campaigns.tracking_factories import make_campaign, make_message
from tests.e2e.test_segment_builder import log_in
from tests.factories import UserFactory

pytestmark = pytest.mark.browser
SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Safari/605.1.15"
)


@pytest.mark.parametrize("page", ["en-US"], indirect=True)
def test_target_the_people_who_did_not_open_a_campaign(page: Page):
    UserFactory(role=Role.MARKETER, username="marketer-user")
    campaign, variant = make_campaign()
    campaign.name = "Spring sale"
    campaign.save(update_fields=["name"])
    opened = make_message(campaign, variant, sent_ago=3 * 24 * 3600)
    make_message(campaign, variant, sent_ago=3 * 24 * 3600)  # not opened, sent 3 days ago
    make_message(campaign, variant, sent_ago=30 * 24 * 3600)  # not opened, sent 30 days ago
    make_message(campaign, variant, status=MessageStatus.BOUNCED)  # never received
    hit = tracking.make_hit(
        kind=tracking.OPEN,
        message_id=opened.pk,
        link_id=None,
        method="GET",
        ip="203.0.113.7",
        user_agent=SAFARI,
    )
    tracking.ingest([hit])

    log_in(page, "marketer-user", "/segments/new/")
    count = page.locator("#segment-preview .preview-count")
    builder = page.locator("#rule-builder")
    builder.get_by_role("button", name="Add condition").click()
    condition = builder.locator(".rule-condition").nth(0)
    condition.get_by_label("Field").select_option("not_opened_campaign")
    # No campaign chosen yet: the server names the problem beside the condition.
    expect(condition.locator(".rule-error")).to_contain_text("Choose a campaign")
    condition.get_by_label("Value").select_option(label="Spring sale")
    expect(count).to_have_attribute("data-count", "2")
    condition.get_by_role("spinbutton", name="In the last days").fill("7")
    expect(count).to_have_attribute("data-count", "1")

    page.get_by_label("Name").fill("Spring sale, not opened")
    page.get_by_role("button", name="Save segment").click()
    segment = Segment.objects.get(name="Spring sale, not opened")
    expect(page).to_have_url(re.compile(rf"/segments/{segment.pk}/$"))
    expect(page.locator(".rules-words")).to_contain_text(
        "Did not open the campaign: Spring sale in the last 7 days"
    )
    assert segment.rules["conditions"] == [
        {
            "field": "not_opened_campaign",
            "op": "is",
            "value": {"campaign": campaign.pk, "days": 7},
        }
    ]
