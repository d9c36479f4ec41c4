"""Logging in and out, changing passwords, lockout after failed logins, idle sessions.

Every client here enforces CSRF like a browser, so each POST carries the token of the
page it came from.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from tests.factories import DEFAULT_PASSWORD


def csrf_token(response) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())
    assert match, "the page has no CSRF token"
    return match.group(1)


def post_form(client, url: str, data: dict, **extra):
    """GET the page, then POST the form with its CSRF token (what a browser does)."""
    page = client.get(url, **extra)
    return client.post(url, {**data, "csrfmiddlewaretoken": csrf_token(page)}, **extra)


def log_in(client, username: str, password: str, **extra):
    return post_form(
        client, "/accounts/login/", {"username": username, "password": password}, **extra
    )


pytestmark = pytest.mark.django_db


def test_login_and_logout(csrf_client, sales):
    response = log_in(csrf_client, "sales", DEFAULT_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert csrf_client.get("/").status_code == 200

    home = csrf_client.get("/")
    response = csrf_client.post("/accounts/logout/", {"csrfmiddlewaretoken": csrf_token(home)})
    assert response.status_code == 302
    assert csrf_client.get("/").status_code == 302


def test_login_without_csrf_token_is_refused(csrf_client, sales):
    response = csrf_client.post(
        "/accounts/login/", {"username": "sales", "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 403
    assert csrf_client.get("/").status_code == 302  # still signed out


def test_wrong_password_shows_a_form_error(csrf_client, sales):
    response = log_in(csrf_client, "sales", "wrong", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_login_page_lockout_after_repeated_failures(csrf_client, sales):
    for _attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(csrf_client, "sales", "wrong").status_code == 200
    locked = log_in(csrf_client, "sales", "wrong", HTTP_ACCEPT_LANGUAGE="en")
    assert locked.status_code == 429
    assert "Too many failed login attempts" in locked.content.decode()
    # Even the right password is refused while locked out.
    again = log_in(csrf_client, "sales", DEFAULT_PASSWORD)
    assert again.status_code == 429
    assert csrf_client.get("/").status_code == 302


def test_lockout_is_per_username(csrf_client, sales, marketer):
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        log_in(csrf_client, "sales", "wrong")
    assert log_in(csrf_client, "marketer", DEFAULT_PASSWORD).status_code == 302


def test_api_token_endpoint_locks_out_too(client, sales):
    def ask(password):
        return client.post(
            "/api/v1/auth/token/",
            {"username": "sales", "password": password},
            content_type="application/json",
            HTTP_ACCEPT_LANGUAGE="en",
        )

    for _attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        response = ask("wrong")
        assert response.status_code == 401
        assert response.json()["errors"][0] == {
            "code": "authentication_failed",
            "detail": "Unable to log in with these credentials.",
            "attr": None,
        }
    locked = ask("wrong")
    assert locked.status_code == 429
    assert locked.json()["errors"][0]["code"] == "locked_out"
    assert ask(DEFAULT_PASSWORD).status_code == 429


def test_api_token_works(client, sales):
    response = client.post(
        "/api/v1/auth/token/",
        {"username": "sales", "password": DEFAULT_PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200
    token = response.json()["token"]
    me = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")
    assert me.json()["username"] == "sales"
    assert me.json()["roles"] == ["Sales"]


def test_password_change(client_as, sales, csrf_client):
    client = client_as(sales)
    response = post_form(
        client,
        "/accounts/password_change/",
        {
            "old_password": DEFAULT_PASSWORD,
            "new_password1": "新しい-passphrase-2026",
            "new_password2": "新しい-passphrase-2026",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_change/done/"
    assert log_in(csrf_client, "sales", "新しい-passphrase-2026").status_code == 302


def test_password_change_rejects_weak_password(client_as, sales):
    response = post_form(
        client_as(sales),
        "/accounts/password_change/",
        {"old_password": DEFAULT_PASSWORD, "new_password1": "123", "new_password2": "123"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 200
    assert "This password is too short" in response.content.decode()


def test_session_expires_after_idle_timeout(csrf_client, sales):
    log_in(csrf_client, "sales", DEFAULT_PASSWORD)
    assert csrf_client.get("/").status_code == 200
    # Each request pushes the expiry SESSION_IDLE_TIMEOUT into the future...
    session = Session.objects.get()
    remaining = session.expire_date - timezone.now()
    assert timedelta(seconds=settings.SESSION_COOKIE_AGE - 60) < remaining
    # ...and a session left idle past it is over.
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    from django.core.cache import cache

    cache.clear()  # the cached_db engine would otherwise still serve it from the cache
    response = csrf_client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_password_reset_email_goes_to_the_outbox(csrf_client, sales, settings):
    from crm.models import OutboxEmail

    settings.EMAIL_BACKEND = "crm.mail.OutboxBackend"  # the embedded default

    response = post_form(csrf_client, "/accounts/password_reset/", {"email": sales.email})
    assert response.status_code == 302
    email = OutboxEmail.objects.get()
    assert email.to == sales.email
    assert "/accounts/reset/" in email.body
