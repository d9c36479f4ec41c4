"""Open pixel and click redirect: tokens, harmless answers to forgeries, the Redis buffer and its
drain (also through a real worker and across a database outage), machine events, and the WSGI
fast path gunicorn serves."""

from __future__ import annotations

import http.client
import io
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.test import override_settings
from django.utils import timezone

from campaigns import machine_events, tracking
from campaigns.models import Link, Message, TrackingEvent
from campaigns.tokens import (
    click_url,
    message_token,
    open_url,
    parse_message_token,
    unsubscribe_url,
)
from campaigns.tracking_tasks import drain_tracking_events
from tests.campaigns.tracking_factories import clear_buffer, make_campaign, make_message
from tests.conftest import ROOT, _database_url, free_port, wait_for

# The buffer these tests exercise: the configured one, or in the embedded mode (no REDIS_URL,
# where hits are written directly) the local Redis, which this file then requires as other
# tests require a worker. Only test_embedded_mode_writes_directly runs without a buffer.
LOCAL_BUFFER = os.environ.get("TEST_TRACKING_BUFFER_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(autouse=True)
def buffer(settings, monkeypatch):
    settings.TRACKING_BUFFER_URL = settings.TRACKING_BUFFER_URL or LOCAL_BUFFER
    monkeypatch.setenv("TRACKING_BUFFER_URL", settings.TRACKING_BUFFER_URL)  # worker processes
    yield clear_buffer()
    clear_buffer()


@contextmanager
def database_unreachable():
    """Every new connection to the database fails until the block ends."""
    key = "PORT" if connection.vendor == "postgresql" else "NAME"
    real = connection.settings_dict[key]
    connection.close()
    # Nothing listens on a free port; SQLite cannot open a file in a missing folder.
    connection.settings_dict[key] = free_port() if key == "PORT" else "/nonexistent/crm.sqlite3"
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict[key] = real


@pytest.fixture
def sent_message(db):
    return make_message(*make_campaign())


BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)


def _path(url: str) -> str:
    return url.removeprefix("http://localhost:8000")


def _open(client, message, **extra):
    extra.setdefault("HTTP_USER_AGENT", BROWSER)
    return client.get(_path(open_url(message.pk)), **extra)


def _click(client, message, link, **extra):
    extra.setdefault("HTTP_USER_AGENT", BROWSER)
    return client.get(_path(click_url(message.pk, link.pk)), **extra)


def _tampered(token: str) -> str:
    return token[:-2] + ("AA" if not token.endswith("AA") else "BB")


# --- Tokens ---------------------------------------------------------------------------------


def test_token_round_trip_and_forgeries():
    token = message_token(4242)
    assert parse_message_token(token) == 4242
    assert parse_message_token(_tampered(token)) is None
    assert parse_message_token(message_token(4243)[:-22] + token[-22:]) is None  # other id
    assert parse_message_token("0" + token) is None  # a second spelling of the same id
    assert parse_message_token("") is None
    assert parse_message_token("x" * 500) is None
    with override_settings(SECRET_KEY="another-secret-" + "y" * 40):
        assert parse_message_token(token) is None


def test_tokens_survive_a_key_rotation_with_the_old_key_as_fallback():
    token = message_token(7)
    with override_settings(SECRET_KEY="new-secret-" + "z" * 40, SECRET_KEY_FALLBACKS=[]):
        assert parse_message_token(token) is None
    from django.conf import settings

    old = settings.SECRET_KEY
    with override_settings(SECRET_KEY="new-secret-" + "z" * 40, SECRET_KEY_FALLBACKS=[old]):
        assert parse_message_token(token) == 7


@override_settings(SITE_URL="https://crm.example.jp/")
def test_urls_are_absolute_on_site_url():
    token = message_token(5)
    assert open_url(5) == f"https://crm.example.jp/t/o/{token}.gif"
    assert click_url(5, 9) == f"https://crm.example.jp/t/c/{token}/9/"
    assert unsubscribe_url(5) == f"https://crm.example.jp/u/{token}/"


# --- Open pixel -----------------------------------------------------------------------------


def _assert_tracking_headers(response):
    assert response["Cache-Control"].startswith("no-store")
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["X-Robots-Tag"].startswith("noindex")
    assert not response.cookies


@pytest.mark.django_db
def test_pixel_answers_without_the_database_and_the_drain_records_the_open(
    client, sent_message, django_assert_num_queries
):
    with django_assert_num_queries(0):
        response = _open(client, sent_message)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    assert response.content == tracking.PIXEL_GIF
    _assert_tracking_headers(response)
    assert tracking.buffered_count() == 1
    assert not TrackingEvent.objects.exists()

    assert tracking.drain_events() == 1
    event = TrackingEvent.objects.get()
    assert (event.message, event.kind, event.is_machine) == (sent_message, "open", False)
    assert event.user_agent == BROWSER
    assert len(event.ip_hash) == 64 and "127.0.0.1" not in event.ip_hash
    sent_message.refresh_from_db()
    assert sent_message.first_opened_at == event.occurred_at
    assert tracking.buffered_count() == 0


@pytest.mark.django_db
def test_second_open_keeps_the_first_open_time(client, sent_message):
    _open(client, sent_message)
    tracking.drain_events()
    first = Message.objects.get(pk=sent_message.pk).first_opened_at
    _open(client, sent_message)
    tracking.drain_events()
    assert TrackingEvent.objects.filter(kind="open").count() == 2
    assert Message.objects.get(pk=sent_message.pk).first_opened_at == first


@pytest.mark.django_db
def test_tampered_pixel_gets_the_same_gif_and_records_nothing(client, sent_message):
    token = message_token(sent_message.pk)
    response = client.get(f"/t/o/{_tampered(token)}.gif")
    assert response.status_code == 200
    assert response.content == tracking.PIXEL_GIF
    _assert_tracking_headers(response)
    assert client.get("/t/o/garbage.gif").content == tracking.PIXEL_GIF
    assert tracking.buffered_count() == 0
    tracking.drain_events()
    assert not TrackingEvent.objects.exists()


@pytest.mark.django_db
def test_opens_of_messages_that_do_not_exist_are_discarded(client, sent_message):
    client.get(_path(open_url(sent_message.pk + 1000)))
    _open(client, sent_message)
    assert tracking.drain_events() == 2
    assert list(TrackingEvent.objects.values_list("message_id", flat=True)) == [sent_message.pk]


# --- Click redirect -------------------------------------------------------------------------


@pytest.mark.django_db
def test_click_redirects_to_the_stored_link_and_is_recorded(client, sent_message):
    link = sent_message.campaign.links.order_by("pk").first()
    response = _click(client, sent_message, link)
    assert response.status_code == 302
    assert response["Location"] == link.url
    _assert_tracking_headers(response)
    tracking.drain_events()
    event = TrackingEvent.objects.get()
    assert (event.kind, event.link, event.is_machine) == ("click", link, False)
    sent_message.refresh_from_db()
    assert sent_message.first_clicked_at == event.occurred_at


@pytest.mark.django_db
def test_click_uses_the_link_cache_after_the_first_click(
    client, sent_message, django_assert_num_queries
):
    link = sent_message.campaign.links.first()
    _click(client, sent_message, link)
    with django_assert_num_queries(0):
        assert _click(client, sent_message, link).status_code == 302


@pytest.mark.django_db
def test_links_of_another_campaign_and_unknown_ids_never_redirect(client, sent_message):
    other_campaign, _ = make_campaign(links=["https://evil.example.com/"])
    foreign = other_campaign.links.get()
    for path in [
        _path(click_url(sent_message.pk, foreign.pk)),
        _path(click_url(sent_message.pk, 999999)),
        _path(click_url(sent_message.pk, foreign.pk)) + "?url=https://evil.example.com/",
    ]:
        response = client.get(path, HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 404, path
        assert "Location" not in response
        assert b"This link does not lead anywhere" in response.content
        assert b"evil.example.com" not in response.content
        assert not response.cookies
    assert tracking.buffered_count() == 0


@pytest.mark.django_db
def test_url_parameter_is_ignored_on_a_valid_click(client, sent_message):
    link = sent_message.campaign.links.first()
    path = _path(click_url(sent_message.pk, link.pk)) + "?url=https://evil.example.com/"
    response = client.get(path)
    assert response["Location"] == link.url


@pytest.mark.django_db
def test_tampered_click_token_is_not_found_and_records_nothing(client, sent_message):
    link = sent_message.campaign.links.first()
    token = _tampered(message_token(sent_message.pk))
    response = client.get(f"/t/c/{token}/{link.pk}/")
    assert response.status_code == 404
    assert "Location" not in response
    assert tracking.buffered_count() == 0


@pytest.mark.django_db
def test_post_to_tracking_urls_is_refused(client, sent_message):
    assert client.post(_path(open_url(sent_message.pk))).status_code == 405
    assert tracking.buffered_count() == 0


# --- Machine events -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("agent", "ip", "reason"),
    [
        ("Mozilla/5.0", "203.0.113.9", machine_events.APPLE_MPP),
        (BROWSER, "17.58.101.4", machine_events.APPLE_MPP),
        (GMAIL_PROXY, "66.249.84.1", ""),
        ("Mozilla/5.0 (compatible; BingPreview/1.0b)", "203.0.113.9", machine_events.PREFETCH),
        ("python-requests/2.32", "203.0.113.9", machine_events.SCANNER),
    ],
)
def test_opens_are_classified(client, sent_message, agent, ip, reason):
    _open(client, sent_message, HTTP_USER_AGENT=agent, REMOTE_ADDR=ip)
    tracking.drain_events()
    event = TrackingEvent.objects.get()
    assert (event.is_machine, event.machine_reason) == (bool(reason), reason)
    sent_message.refresh_from_db()
    assert (sent_message.first_opened_at is None) == bool(reason)
    assert sent_message.opened_by_machine == bool(reason)


@pytest.mark.django_db
def test_head_request_and_scanner_clicks_are_machine_clicks(client, sent_message):
    link = sent_message.campaign.links.first()
    assert client.head(_path(click_url(sent_message.pk, link.pk))).status_code == 302
    _click(client, sent_message, link, HTTP_USER_AGENT="Mozilla/5.0 Proofpoint URL Defense")
    tracking.drain_events()
    reasons = sorted(TrackingEvent.objects.values_list("machine_reason", flat=True))
    assert reasons == [machine_events.HEAD, machine_events.SCANNER]
    sent_message.refresh_from_db()
    assert sent_message.first_clicked_at is None


@pytest.mark.django_db
def test_click_within_seconds_of_sending_is_a_scanner(client, sent_message):
    Message.objects.filter(pk=sent_message.pk).update(sent_at=timezone.now())
    _click(client, sent_message, sent_message.campaign.links.first())
    tracking.drain_events()
    assert TrackingEvent.objects.get().machine_reason == machine_events.SCANNER


@pytest.mark.django_db
def test_clicks_on_every_link_at_once_are_a_scanner_even_across_drains(client):
    campaign, variant = make_campaign(
        links=[f"https://shop.example.jp/{n}" for n in ("a", "b", "c")]
    )
    message = make_message(campaign, variant)
    other = make_message(campaign, variant)
    links = list(campaign.links.order_by("pk"))
    _click(client, message, links[0])
    _click(client, other, links[0])  # one click of a person: stays human
    tracking.drain_events()
    assert Message.objects.get(pk=message.pk).first_clicked_at is not None
    _click(client, message, links[1])
    _click(client, message, links[2])
    tracking.drain_events()
    flagged = TrackingEvent.objects.filter(message=message)
    assert [e.machine_reason for e in flagged] == [machine_events.SCANNER] * 3
    assert Message.objects.get(pk=message.pk).first_clicked_at is None
    assert not TrackingEvent.objects.get(message=other).is_machine


@pytest.mark.django_db
def test_only_human_events_reach_the_automation_hook(
    client, sent_message, django_capture_on_commit_callbacks
):
    received = []

    def listener(sender, events, **kwargs):
        received.extend(events)

    tracking.human_events_recorded.connect(listener)
    try:
        _open(client, sent_message, HTTP_USER_AGENT="Mozilla/5.0")  # Apple MPP
        _open(client, sent_message, HTTP_USER_AGENT=GMAIL_PROXY)
        with django_capture_on_commit_callbacks(execute=True):
            tracking.drain_events()
    finally:
        tracking.human_events_recorded.disconnect(listener)
    assert [(e.kind, e.user_agent) for e in received] == [("open", GMAIL_PROXY)]


def test_scanner_bursts_need_several_links_within_the_window():
    now = timezone.now()
    clicks = [
        ("a", 1, 10, now),
        ("b", 1, 11, now + timedelta(seconds=1)),
        ("c", 1, 10, now + timedelta(seconds=2)),  # two links only
        ("d", 2, 10, now),
        ("e", 2, 11, now + timedelta(seconds=30)),
        ("f", 2, 12, now + timedelta(seconds=60)),  # three links, minutes apart
    ]
    assert machine_events.scanner_bursts(clicks) == set()
    clicks.append(("g", 1, 12, now + timedelta(seconds=3)))
    assert machine_events.scanner_bursts(clicks) == {"a", "b", "c", "g"}


# --- Durability and the drain ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_opens_are_not_lost_while_the_database_is_down(client, sent_message):
    link = Link.objects.filter(campaign=sent_message.campaign).first()
    _click(client, sent_message, link)  # caches the link while the database is up
    with database_unreachable():
        assert _open(client, sent_message).status_code == 200
        assert _click(client, sent_message, link).status_code == 302
        with pytest.raises(OperationalError):
            tracking.drain_events()
    assert tracking.buffered_count() == 3
    assert not TrackingEvent.objects.exists()
    assert tracking.drain_events() == 3
    assert sorted(TrackingEvent.objects.values_list("kind", flat=True)) == [
        "click",
        "click",
        "open",
    ]
    assert tracking.buffered_count() == 0


@pytest.mark.django_db
def test_a_buffer_connection_redis_closed_is_replaced(client, sent_message, buffer, settings):
    _open(client, sent_message)
    # Redis drops the intake's connection (a restart, an idle timeout): the next open is
    # buffered all the same, on a new connection.
    intake = tracking._intake.connections[settings.TRACKING_BUFFER_URL]
    host, port = intake._sock.getsockname()[:2]
    buffer.client_kill(f"{host}:{port}")
    _open(client, sent_message)
    assert tracking.buffered_count() == 2
    assert tracking.drain_events() == 2


@pytest.mark.django_db
def test_drain_works_in_batches(client, sent_message):
    for _ in range(7):
        _open(client, sent_message)
    assert tracking.drain_events(batch_size=3) == 7
    assert TrackingEvent.objects.count() == 7


@pytest.mark.django_db
def test_a_running_drain_is_not_doubled(client, sent_message, buffer):
    _open(client, sent_message)
    buffer.set("campaigns:tracking:drain-lock", "someone-else")
    assert tracking.drain_events() == 0
    assert tracking.buffered_count() == 1


@pytest.mark.django_db(transaction=True)
def test_drain_task_runs_in_a_real_worker(client, celery_worker, sent_message):
    _open(client, sent_message)
    _click(client, sent_message, sent_message.campaign.links.first())
    drain_tracking_events.delay()
    wait_for(lambda: TrackingEvent.objects.count() == 2)
    message = Message.objects.get(pk=sent_message.pk)
    assert message.first_opened_at and message.first_clicked_at


# --- Without Redis --------------------------------------------------------------------------


@pytest.mark.django_db
@override_settings(TRACKING_BUFFER_URL="")
def test_embedded_mode_writes_directly(client, sent_message):
    assert _open(client, sent_message).status_code == 200
    assert TrackingEvent.objects.filter(message=sent_message, kind="open").count() == 1
    assert tracking.drain_events() == 0


@pytest.mark.django_db
def test_redis_down_falls_back_to_the_database(client, sent_message):
    with override_settings(TRACKING_BUFFER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        assert _open(client, sent_message).status_code == 200
    assert TrackingEvent.objects.filter(message=sent_message).count() == 1


# --- The WSGI fast path (what gunicorn serves) ----------------------------------------------


def _wsgi(path: str, method: str = "GET", app=None, **environ):
    from crm.wsgi import application

    application = app or application
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, dict(headers)

    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "198.51.100.7",
        "HTTP_USER_AGENT": BROWSER,
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        **environ,
    }
    body = b"".join(application(env, start_response))
    return captured["status"], captured["headers"], body


@pytest.mark.django_db(transaction=True)
def test_gunicorn_keeps_tracking_hits_out_of_its_access_log(sent_message, tmp_path, settings):
    # gunicorn.conf.py: the log line would keep the opener's raw IP beside the message token,
    # which the event itself stores only as a keyed hash. Other requests are logged as ever.
    port, log = free_port(), tmp_path / "access.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),
        "TRACKING_BUFFER_URL": settings.TRACKING_BUFFER_URL,
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "gunicorn", "crm.wsgi:application", "--workers", "1"]
    command += ["--bind", f"127.0.0.1:{port}", "--access-logfile", str(log)]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: server.poll() is None and _listening(port))
        assert _fetch(port, _path(open_url(sent_message.pk))) == (200, tracking.PIXEL_GIF)
        assert _fetch(port, "/no-such-page/")[0] == 404
    finally:
        server.terminate()
        server.wait(30)
    logged = log.read_text()
    assert "/no-such-page/" in logged
    assert "/t/o/" not in logged
    assert tracking.buffered_count() == 1


def _fetch(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"User-Agent": BROWSER})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


# Transactional: the fast path closes stale connections as a request would.
@pytest.mark.django_db(transaction=True)
def test_fast_path_serves_pixel_and_click(sent_message):
    status, headers, body = _wsgi(_path(open_url(sent_message.pk)))
    assert (status, body) == ("200 OK", tracking.PIXEL_GIF)
    assert headers["Cache-Control"].startswith("no-store")
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in headers
    link = sent_message.campaign.links.first()
    status, headers, _ = _wsgi(_path(click_url(sent_message.pk, link.pk)))
    assert (status, headers["Location"]) == ("302 Found", link.url)
    tracking.drain_events()
    assert TrackingEvent.objects.filter(message=sent_message).count() == 2


# Transactional: the fast path closes stale connections as a request would.
@pytest.mark.django_db(transaction=True)
def test_fast_path_hands_dead_links_and_other_methods_to_django(sent_message):
    status, headers, body = _wsgi(
        _path(click_url(sent_message.pk, 999999)), HTTP_ACCEPT_LANGUAGE="en"
    )
    assert status.startswith("404") and "Location" not in headers
    assert b"This link does not lead anywhere" in body
    status, _, _ = _wsgi(_path(open_url(sent_message.pk)), method="POST")
    assert status[:3] in ("403", "405")  # CSRF or the view refuses it
    assert tracking.buffered_count() == 0


@pytest.mark.django_db(transaction=True)
@override_settings(SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=3600)
def test_fast_path_keeps_https_redirect_and_hsts(sent_message):
    from django.core.wsgi import get_wsgi_application

    from campaigns.tracking_wsgi import TrackingFastPath

    # A new stack: Django's middleware reads these settings when it is built.
    app = TrackingFastPath(get_wsgi_application())
    status, headers, _ = _wsgi(_path(open_url(sent_message.pk)), app=app)
    assert status.startswith("301") and headers["Location"].startswith("https://")
    status, headers, _ = _wsgi(
        _path(open_url(sent_message.pk)), app=app, **{"wsgi.url_scheme": "https"}
    )
    assert status == "200 OK"
    assert headers["Strict-Transport-Security"].startswith("max-age=3600")
