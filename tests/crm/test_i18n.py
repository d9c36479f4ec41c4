"""Language per browser and per user, complete catalogues, Japanese formatting."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.template import Context, Template
from django.utils import translation

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("accept_language", "greeting", "role"),
    [("ja,en;q=0.5", "ようこそ", "営業"), ("en-US,en;q=0.9", "Welcome", "Sales")],
)
def test_home_page_speaks_the_browser_language(client_as, sales, accept_language, greeting, role):
    html = client_as(sales).get("/", HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    assert greeting in html
    assert f'<span class="badge">{role}</span>' in html


@pytest.mark.django_db
def test_default_language_is_japanese(csrf_client):
    html = csrf_client.get("/accounts/login/").content.decode()
    assert '<html lang="ja">' in html
    assert "ログイン" in html


@pytest.mark.django_db
def test_user_language_choice_wins_over_the_browser(client_as, sales):
    client = client_as(sales)
    page = client.get("/")
    token = page.context["csrf_token"]
    response = client.post(
        "/i18n/setlang/", {"language": "en", "next": "/", "csrfmiddlewaretoken": str(token)}
    )
    assert response.status_code == 302
    sales.profile.refresh_from_db()
    assert sales.profile.language == "en"
    # A new browser session that asks for Japanese still gets English for this user.
    other = client_as(sales)
    assert "Welcome" in other.get("/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()


@pytest.mark.django_db
def test_set_language_refuses_foreign_redirects(csrf_client):
    page = csrf_client.get("/accounts/login/")
    response = csrf_client.post(
        "/i18n/setlang/",
        {
            "language": "en",
            "next": "https://evil.example/",
            "csrfmiddlewaretoken": str(page.context["csrf_token"]),
        },
    )
    assert response["Location"] == "/"
    assert response.cookies["django_language"].value == "en"


@pytest.mark.parametrize("language", ["ja", "en"])
def test_catalogue_is_complete(language):
    catalogue = polib.pofile(str(ROOT / "locale" / language / "LC_MESSAGES" / "django.po"))
    assert catalogue.untranslated_entries() == []
    assert catalogue.fuzzy_entries() == []
    assert catalogue.obsolete_entries() == []


def test_catalogue_covers_every_string_in_the_source(tmp_path):
    """makemessages over a copy of the source adds no untranslated string to the catalogue."""
    if shutil.which("xgettext") is None:
        pytest.skip("GNU gettext (xgettext) is not installed; .ci/run installs it")
    for name in ("crm", "customers", "segments", "campaigns", "analytics", "templates", "locale"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("*.mo"))
    # makemessages writes to LOCALE_PATHS[0]: point it at the copy, never the real catalogue.
    (tmp_path / "copy_settings.py").write_text(
        f"from tests.settings import *\nLOCALE_PATHS = [{str(tmp_path / 'locale')!r}]\n"
    )
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "--locale", "ja", "--no-obsolete"],
        cwd=tmp_path,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "copy_settings",
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        },
        check=True,
        capture_output=True,
    )
    catalogue = polib.pofile(str(tmp_path / "locale/ja/LC_MESSAGES/django.po"))
    assert [e.msgid for e in catalogue.untranslated_entries()] == []
    assert [e.msgid for e in catalogue.fuzzy_entries()] == []


@pytest.mark.parametrize(
    ("language", "amount", "expected"),
    [("ja", "1234567", "￥1,234,567"), ("en", "1234567.4", "¥1,234,567"), ("ja", "0", "￥0")],
)
def test_money_shows_yen_without_decimals(language, amount, expected):
    with translation.override(language):
        rendered = Template("{% load crm_tags %}{{ amount|money }}").render(
            Context({"amount": amount})
        )
    assert rendered == expected


@pytest.mark.django_db
def test_preferences_set_language_and_time_zone(client_as, marketer):
    from datetime import UTC, datetime

    from tests.crm.test_auth import post_form
    from tests.factories import OutboxEmailFactory

    client = client_as(marketer)
    response = post_form(
        client, "/accounts/preferences/", {"language": "en", "time_zone": "America/New_York"}
    )
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Your preferences were saved." in page

    email = OutboxEmailFactory(created_at=datetime(2026, 5, 3, 15, 30, tzinfo=UTC))
    detail = client.get(f"/outbox/{email.pk}/").content.decode()
    assert "11:30" in detail  # 15:30 UTC is 11:30 in New York (EDT)


@pytest.mark.django_db
def test_dates_default_to_tokyo_time(client_as, marketer):
    from datetime import UTC, datetime

    from tests.factories import OutboxEmailFactory

    email = OutboxEmailFactory(created_at=datetime(2026, 5, 2, 15, 30, tzinfo=UTC))
    detail = client_as(marketer).get(f"/outbox/{email.pk}/").content.decode()
    assert "2026年5月3日" in detail  # 00:30 JST on 3 May
    assert "0:30" in detail


@pytest.mark.django_db
def test_preferences_reject_an_unknown_time_zone(client_as, marketer):
    from tests.crm.test_auth import post_form

    response = post_form(
        client_as(marketer),
        "/accounts/preferences/",
        {"language": "en", "time_zone": "Mars/Olympus"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
