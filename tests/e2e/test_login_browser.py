"""Signing in, the language and the role-based menu, as a user sees them in a real browser.

Each test checks rendered pages through Playwright's auto-waiting ``expect``; nothing sleeps.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from crm.names import user_display_name
from crm.roles import Role
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.browser

# What the pages say, per language (Japanese from locale/ja/LC_MESSAGES/django.po).
TEXT = {
    "ja": {
        "log_in": "ログイン",
        "log_out": "ログアウト",
        "welcome": "ようこそ",
        "sales": "営業",
        "home": "ホーム",
        "outbox": "送信トレイ",
        "access_denied": "アクセスできません",
    },
    "en": {
        "log_in": "Log in",
        "log_out": "Log out",
        "welcome": "Welcome",
        "sales": "Sales",
        "home": "Home",
        "outbox": "Outbox",
        "access_denied": "Access denied",
    },
}
LOGIN_URL = re.compile(r"/accounts/login/(\?.*)?$")
HOME_URL = re.compile(r"^http://[^/]+/$")
SCREENSHOT = Path("/tmp/crm-home-ja.png")  # noqa: S108 - a fixed place for people to look at


def expect_styled(page: Page) -> None:
    """app.css is applied: a missing or unserved static file leaves the top bar transparent."""
    expect(page.locator("header.topbar")).not_to_have_css("background-color", "rgba(0, 0, 0, 0)")


def log_in(page: Page, username: str, lang: str) -> None:
    """Open the site signed out, get sent to the login form, fill it in and submit it."""
    text = TEXT[lang]
    page.goto("/")
    expect(page).to_have_url(LOGIN_URL)
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.get_by_role("heading", level=1)).to_have_text(text["log_in"])
    expect_styled(page)
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name=text["log_in"], exact=True).click()
    expect(page).to_have_url(HOME_URL)


def expect_home(page: Page, lang: str, user) -> None:
    text = TEXT[lang]
    expect(page.locator("html")).to_have_attribute("lang", lang)
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text(text["welcome"])
    expect(heading).to_contain_text(user_display_name(user))
    expect(page.locator("main .lead .badge")).to_have_text(text["sales"])
    expect(page.locator("details.user-menu summary .badge")).to_have_text(text["sales"])
    home_link = page.locator("#main-nav").get_by_role("link", name=text["home"], exact=True)
    expect(home_link).to_be_visible()
    expect(home_link).to_have_attribute("aria-current", "page")
    expect_styled(page)


def log_out(page: Page, lang: str) -> None:
    page.locator("details.user-menu summary").click()
    page.get_by_role("button", name=TEXT[lang]["log_out"], exact=True).click()
    expect(page).to_have_url(LOGIN_URL)
    expect(page.locator("details.user-menu")).to_have_count(0)


@pytest.mark.parametrize(
    ("page", "lang"), [("ja-JP", "ja"), ("en-US", "en")], indirect=["page"], ids=["ja", "en"]
)
def test_login_through_the_form_in_the_browser_language(page: Page, lang):
    user = UserFactory(role=Role.SALES, username="sales-user")

    log_in(page, "sales-user", lang)

    expect_home(page, lang, user)


def test_language_switcher_choice_persists_in_the_profile(page: Page, new_page):
    user = UserFactory(role=Role.SALES, username="switcher")
    log_in(page, "switcher", "ja")
    expect_home(page, "ja", user)

    # app.js submits the switcher on change; the page comes back in English.
    page.locator("select#language-select").select_option(label="English")
    expect(page).to_have_url(HOME_URL)
    expect_home(page, "en", user)
    expect(page.locator("select#language-select")).to_have_value("en")

    # Signed out and in again in the same browser: still English (cookie and profile agree).
    log_out(page, "en")
    log_in(page, "switcher", "en")
    expect_home(page, "en", user)

    # A fresh browser that asks for Japanese: the login page is Japanese (no cookie yet), but
    # once signed in the profile's choice wins over Accept-Language.
    other = new_page("ja-JP")
    log_in(other, "switcher", "ja")
    expect_home(other, "en", user)


def test_outbox_is_in_the_menu_of_marketers_only(new_page):
    UserFactory(role=Role.MARKETER, username="marketer")
    UserFactory(role=Role.SALES, username="sales-user")
    ja = TEXT["ja"]

    marketer = new_page("ja-JP")
    log_in(marketer, "marketer", "ja")
    outbox_link = marketer.locator("#main-nav").get_by_role("link", name=ja["outbox"], exact=True)
    expect(outbox_link).to_be_visible()
    outbox_link.click()
    expect(marketer).to_have_url(re.compile(r"/outbox/$"))
    expect(marketer.get_by_role("heading", level=1)).to_have_text(ja["outbox"])

    sales = new_page("ja-JP")
    log_in(sales, "sales-user", "ja")
    nav = sales.locator("#main-nav")
    expect(nav.get_by_role("link", name=ja["home"], exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name=ja["outbox"])).to_have_count(0)

    # Typing the address does not help: the 403 page, in the user's language and styled.
    response = sales.goto("/outbox/")
    assert response is not None
    assert response.status == 403
    expect(sales.get_by_role("heading", level=1)).to_have_text(ja["access_denied"])
    expect(sales.locator("html")).to_have_attribute("lang", "ja")
    expect_styled(sales)


def test_screenshot_of_the_japanese_home_page(page: Page, tmp_path):
    user = UserFactory(role=Role.SALES, username="camera-shy")
    log_in(page, "camera-shy", "ja")
    expect_home(page, "ja", user)

    shot = tmp_path / "home-ja.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.stat().st_size > 0
    page.screenshot(path=SCREENSHOT, full_page=True)
    assert SCREENSHOT.stat().st_size > 0
