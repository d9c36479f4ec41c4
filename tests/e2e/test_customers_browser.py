"""A sales user's everyday path in a real browser: find a customer by typing the reading in
half-width katakana, open the Customer 360 and log a call without leaving the page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from crm.roles import Role
from customers.models import Interaction
from tests.customers.factories import CustomerFactory
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.browser


def log_in(page: Page, username: str) -> None:
    page.goto("/customers/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/customers/$"))
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(DEFAULT_PASSWORD)
    page.locator('form button[type="submit"]').click()
    expect(page).to_have_url(re.compile(r"/customers/$"))


@pytest.mark.parametrize("page", ["en-US"], indirect=True)
def test_search_in_half_width_kana_open_360_and_log_a_call(page: Page):
    sales = UserFactory(role=Role.SALES, username="sales-user")
    yamada = CustomerFactory(
        family_name="山田", given_name="花子", family_name_kana="ヤマダ", given_name_kana="ハナコ"
    )
    CustomerFactory(
        family_name="佐藤", given_name="一郎", family_name_kana="サトウ", given_name_kana="イチロウ"
    )
    log_in(page, "sales-user")
    results = page.locator("#customer-results")
    expect(results.get_by_role("link", name="佐藤 一郎")).to_be_visible()

    # Typing is enough: htmx fetches the results and swaps them in, and the URL follows.
    page.locator("#customer-q").press_sequentially("ﾔﾏﾀﾞ")
    expect(results.get_by_role("link", name="佐藤 一郎")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/customers/\?q=%EF%BE%94"))
    results.get_by_role("link", name="山田 花子").click()

    expect(page).to_have_url(re.compile(rf"/customers/{yamada.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("山田 花子")
    expect(page.locator(".customer-subtitle")).to_contain_text("ヤマダ ハナコ")

    # A marker on the window survives only if the page is not reloaded.
    page.evaluate("window.notReloaded = true")
    section = page.locator("#interactions")
    section.get_by_label("Kind").select_option("call")
    section.get_by_label("Summary").fill("定期便のお届け日を変更したいとの電話")
    section.get_by_role("button", name="Log interaction").click()

    timeline = page.locator("#interactions .timeline")
    expect(timeline).to_contain_text("定期便のお届け日を変更したいとの電話")
    expect(page.locator("#interactions [role=status]")).to_have_text("The interaction was logged.")
    expect(section.get_by_label("Summary")).to_have_value("")
    assert page.evaluate("window.notReloaded") is True
    interaction = Interaction.objects.get()
    assert (interaction.customer, interaction.user, interaction.kind) == (yamada, sales, "call")
