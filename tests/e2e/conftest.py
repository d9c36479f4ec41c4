"""Fixtures for the browser tests: Debian's headless Chromium driven by Playwright (sync API)
against pytest-django's ``live_server``.

No browser is ever downloaded: the tests use /usr/bin/chromium. Without it they are skipped,
unless ``CI_REQUIRE_BROWSER`` is set, in which case they fail (CI must never skip silently).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    # The network is closed: keep Chromium from calling home (refused connections otherwise).
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEFAULT_LOCALE = "ja-JP"
ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"
# Generous for a loaded CI machine; `expect` retries until then, nothing sleeps.
TIMEOUT_MS = 15_000


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = (
        f"Chromium not found at {CHROMIUM} (Debian package 'chromium'); "
        "browser tests need it and never download a browser"
    )
    if os.environ.get("CI_REQUIRE_BROWSER"):
        pytest.fail(f"{reason}, and CI_REQUIRE_BROWSER is set", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for all tests of this package, stopped when they are done.

    Playwright's sync API keeps an asyncio event loop running in the main thread for as long
    as it runs, and Django's ORM refuses to work inside an event loop unless
    DJANGO_ALLOW_ASYNC_UNSAFE is set. It is safe here (test code is synchronous, the live
    server answers from its own thread), but only here: the variable is set for the browser's
    lifetime alone, and that lifetime is this package, not the session, because pytest-django
    runs tests without database after the transactional ones, and those must keep Django's
    check (``manage.py check --deploy`` in tests/crm/test_security.py flags the variable).
    """
    _require_chromium()
    previous = os.environ.get(ASYNC_UNSAFE)
    os.environ[ASYNC_UNSAFE] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop(ASYNC_UNSAFE, None)
        else:
            os.environ[ASYNC_UNSAFE] = previous


@pytest.fixture
def new_page(browser, live_server) -> Iterator[Callable[..., Page]]:
    """``new_page(locale)``: a page in a fresh browser context (own cookies, own session)
    whose Accept-Language follows ``locale``; relative URLs go to the live server.

    The test fails if a page raised a JavaScript error or a static file did not load.
    """
    contexts = []
    problems: list[str] = []

    def on_response(response) -> None:
        if "/static/" in response.url and not response.ok:
            problems.append(f"{response.status} {response.url}")

    def on_request_failed(request) -> None:
        # Requests cut short by a navigation (net::ERR_ABORTED) are the browser's business.
        if "/static/" in request.url and request.failure != "net::ERR_ABORTED":
            problems.append(f"{request.failure} {request.url}")

    def make(locale: str = DEFAULT_LOCALE) -> Page:
        context = browser.new_context(locale=locale, base_url=live_server.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
        page.on("response", on_response)
        page.on("requestfailed", on_request_failed)
        return page

    yield make
    for context in contexts:
        context.close()
    if problems:
        pytest.fail("In the browser:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def page(request, new_page) -> Page:
    """A page in a fresh context; the locale is ``DEFAULT_LOCALE`` or the indirect param."""
    return new_page(getattr(request, "param", DEFAULT_LOCALE))
