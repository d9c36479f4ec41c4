"""The outbox page: search (also live, through htmx), pagination, empty states."""

from __future__ import annotations

import pytest

from tests.factories import OutboxEmailFactory

pytestmark = pytest.mark.django_db


def test_empty_outbox_says_so(client_as, marketer):
    html = client_as(marketer).get("/outbox/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "The outbox is empty" in html


def test_pages_of_25_newest_first(client_as, marketer):
    emails = OutboxEmailFactory.create_batch(30)
    client = client_as(marketer)
    first = client.get("/outbox/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert emails[-1].subject in first
    assert emails[0].subject not in first
    assert "1–25 of 30" in first
    second = client.get("/outbox/?page=2", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert emails[0].subject in second
    assert "26–30 of 30" in second


def test_search_keeps_the_query_in_page_links(client_as, marketer):
    OutboxEmailFactory.create_batch(30, subject="秋のセール")
    OutboxEmailFactory(subject="別件")
    html = client_as(marketer).get("/outbox/?q=セール").content.decode()
    assert "別件" not in html
    assert "?q=%E3%82%BB%E3%83%BC%E3%83%AB&amp;page=2" in html


def test_live_search_returns_only_the_results(client_as, marketer):
    OutboxEmailFactory(to="yamada@example.com")
    OutboxEmailFactory(to="suzuki@example.com")
    response = client_as(marketer).get(
        "/outbox/?q=yamada", HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="en"
    )
    html = response.content.decode()
    assert "yamada@example.com" in html
    assert "suzuki@example.com" not in html
    assert "<html" not in html  # a fragment for htmx to swap in


def test_search_without_match_has_its_own_empty_state(client_as, marketer):
    OutboxEmailFactory()
    html = client_as(marketer).get("/outbox/?q=zzz", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "No e-mail matches your search" in html
