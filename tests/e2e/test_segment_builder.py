"""A marketer builds a segment in a real browser: two conditions (prefecture = Tokyo AND
e-mail consent), the live count follows each change, a mistake is shown beside its
condition, and the saved segment is in the list with that many members."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from crm.roles import Role
from customers.models import Customer
from segments.models import Segment
from tests.customers.factories import CustomerFactory
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.browser


def log_in(page: Page, username: str, path: str) -> None:
    page.goto(path)
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(DEFAULT_PASSWORD)
    page.locator('form button[type="submit"]').click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))


@pytest.mark.parametrize("page", ["en-US"], indirect=True)
def test_build_a_segment_with_two_conditions_and_save_it(page: Page):
    UserFactory(role=Role.MARKETER, username="marketer-user")
    now = timezone.now()
    for prefecture, consents in [("13", True), ("13", True), ("13", True), ("13", False)]:
        CustomerFactory(
            prefecture=prefecture, email_opt_in=consents, email_opt_in_at=now if consents else None
        )
    for prefecture in ("27", "14"):
        CustomerFactory(prefecture=prefecture, email_opt_in=True, email_opt_in_at=now)
    everyone = Customer.objects.count()
    in_tokyo = Customer.objects.filter(prefecture="13").count()
    tokyo_consenting = Customer.objects.filter(prefecture="13", email_opt_in=True).count()
    assert (everyone, in_tokyo, tokyo_consenting) == (6, 4, 3)

    log_in(page, "marketer-user", "/segments/new/")
    count = page.locator("#segment-preview .preview-count")
    expect(count).to_have_attribute("data-count", str(everyone))  # no condition yet: everyone

    builder = page.locator("#rule-builder")
    builder.get_by_role("button", name="Add condition").click()
    first = builder.locator(".rule-condition").nth(0)
    # A condition without a field is an error shown beside it, not a count.
    expect(first.locator(".rule-error")).to_contain_text("Unknown field")
    first.get_by_label("Field").select_option("prefecture")
    first.get_by_label("Value").select_option(label="Tokyo")
    expect(count).to_have_attribute("data-count", str(in_tokyo))
    expect(first.locator(".rule-error")).to_have_count(0)

    builder.get_by_role("button", name="Add condition").click()
    second = builder.locator(".rule-condition").nth(1)
    second.get_by_label("Field").select_option("email_opt_in")
    expect(second.get_by_label("Value")).to_have_value("true")
    expect(count).to_have_attribute("data-count", str(tokyo_consenting))
    expect(page.locator("#segment-preview .preview-sample tbody tr")).to_have_count(
        tokyo_consenting
    )

    page.get_by_label("Name").fill("東京のメール可")
    page.get_by_role("button", name="Save segment").click()
    segment = Segment.objects.get()
    expect(page).to_have_url(re.compile(rf"/segments/{segment.pk}/$"))
    expect(page.locator("#member-count")).to_have_text(str(tokyo_consenting))
    expect(page.locator(".rules-words")).to_contain_text("Prefecture is one of Tokyo")

    page.goto("/segments/")
    row = page.locator(f'tr[data-segment="{segment.pk}"]')
    expect(row.get_by_role("link", name="東京のメール可")).to_be_visible()
    expect(row.locator(".segment-members")).to_have_text(str(tokyo_consenting))
    assert segment.rules == {
        "op": "and",
        "conditions": [
            {"field": "prefecture", "op": "in", "value": ["13"]},
            {"field": "email_opt_in", "op": "is", "value": True},
        ],
    }
