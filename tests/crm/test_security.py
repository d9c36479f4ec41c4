"""Production mode (DEBUG off, no overrides): check --deploy is clean and the responses carry
secure cookies and HSTS. Runs crm.settings in a fresh process with its real defaults."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Variables the test environment may set that would relax production defaults.
_RELAXING = (
    "DEBUG",
    "SECURE_SSL_REDIRECT",
    "SECURE_COOKIES",
    "SECURE_HSTS_SECONDS",
    "DJANGO_ALLOW_ASYNC_UNSAFE",  # set while the browser tests run
)


def production_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _RELAXING}
    env.update(
        # Explicit, so a developer's local .env (DEBUG=true, see the Makefile) cannot win.
        DEBUG="false",
        DJANGO_SETTINGS_MODULE="crm.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="crm.example.com",
        DATA_DIR=str(tmp_path),
    )
    return env


def test_check_deploy_is_clean(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


_PROBE = """
import json, re, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("collectstatic", interactive=False, verbosity=0)
from django.test import Client
from tests.factories import UserFactory
UserFactory(username="probe")
client = Client(HTTP_HOST="crm.example.com")
plain = client.get("/accounts/login/")
page = client.get("/accounts/login/", secure=True)
token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
credentials = {"username": "probe", "password": "correct-horse-battery-staple"}
login = client.post(
    "/accounts/login/", {**credentials, "csrfmiddlewaretoken": token}, secure=True
)
def flags(morsel):
    return {"secure": bool(morsel["secure"]), "httponly": bool(morsel["httponly"]),
            "samesite": morsel["samesite"]}
print(json.dumps({
    "plain_status": plain.status_code, "plain_location": plain.get("Location"),
    "hsts": page.get("Strict-Transport-Security"),
    "login_status": login.status_code,
    "csrf": flags(page.cookies["csrftoken"]),
    "session": flags(login.cookies["sessionid"]),
    "frame": page.get("X-Frame-Options"),
    "nosniff": page.get("X-Content-Type-Options"),
}))
"""


@pytest.fixture(scope="module")
def production_probe(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("prod")
    env = production_env(tmp_path)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'prod.sqlite3'}"
    env["PYTHONPATH"] = str(ROOT)
    env["CACHE_URL"] = "locmemcache://"
    env["STATIC_ROOT"] = str(tmp_path / "static")
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_plain_http_is_redirected_to_https(production_probe):
    assert production_probe["plain_status"] == 301
    assert production_probe["plain_location"].startswith("https://crm.example.com/")


def test_hsts_is_sent(production_probe):
    assert production_probe["hsts"] == "max-age=31536000; includeSubDomains; preload"


def test_cookies_are_secure_httponly_samesite(production_probe):
    assert production_probe["login_status"] == 302
    for cookie in ("csrf", "session"):
        assert production_probe[cookie] == {"secure": True, "httponly": True, "samesite": "Lax"}


def test_framing_and_sniffing_are_refused(production_probe):
    assert production_probe["frame"] == "DENY"
    assert production_probe["nosniff"] == "nosniff"
