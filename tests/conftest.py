"""Shared fixtures: users per role, CSRF-enforcing clients, a real SMTP server and a real
Celery worker process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.core.cache import cache
from django.db import connection
from django.test import Client, override_settings

from crm.roles import Role
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent


def pytest_sessionfinish(session, exitstatus):
    # The run's own DATA_DIR (see tests/settings.py) is of no use once the run is over.
    from django.conf import settings

    if settings.DATA_DIR.parent.name == "test":
        shutil.rmtree(settings.DATA_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Throttle counters and cached health results must not leak from one test to the next.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_user(db):
    def make(role: Role | None = None, **kwargs):
        return UserFactory(role=role, **kwargs)

    return make


@pytest.fixture
def admin_member(make_user):
    return make_user(Role.ADMIN, username="admin-member")


@pytest.fixture
def marketer(make_user):
    return make_user(Role.MARKETER, username="marketer")


@pytest.fixture
def sales(make_user):
    return make_user(Role.SALES, username="sales")


@pytest.fixture
def csrf_client():
    """A browser-like client: every unsafe request needs a valid CSRF token."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def client_as():
    """``client_as(user)``: a CSRF-enforcing client signed in as ``user``."""

    def make(user):
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        return client

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Collector:
    def __init__(self):
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on a free port; ``.messages`` holds what it received."""
    handler = _Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    controller.messages = handler.messages
    yield controller
    controller.stop()


@pytest.fixture
def smtp_settings(smtp_server):
    """Django's mail going to ``smtp_server`` in this process (plain SMTP, no login); yields
    the server, whose ``.messages`` hold what it received."""
    with override_settings(
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=smtp_server.port,
        EMAIL_USE_TLS=False,
        EMAIL_USE_SSL=False,
        EMAIL_HOST_USER="",
        EMAIL_HOST_PASSWORD="",
    ):
        yield smtp_server


def _database_url() -> str:
    """The URL of the test database this process uses, for a worker process to share."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    raise RuntimeError(f"No worker support for {connection.vendor}")


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    """A real `celery worker` process on the test database and the configured broker.

    Tests using it need committed data (hence transactional_db) and should wait for effects
    with ``wait_for``; the worker is stopped with a warm shutdown afterwards.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "PYTHONPATH": str(ROOT),
    }
    log = tmp_path / "worker.log"
    hostname = f"test-{os.getpid()}@%h"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "crm",
                "worker",
                "-l",
                "info",
                "--pool",
                "solo",
                "--hostname",
                hostname,
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    from crm.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Celery worker exited early:\n{log.read_text()}")
        if app.control.ping(timeout=0.5):
            break
    else:
        process.kill()
        raise RuntimeError(f"Celery worker did not answer within 60 s:\n{log.read_text()}")
    yield process
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"Condition not met within {timeout} s")
