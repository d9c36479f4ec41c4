"""Open-pixel benchmark: the production server against a plain Django view, in one run.

Starts gunicorn exactly as docker-compose.yml does (``crm.wsgi:application``,
``--workers $WEB_CONCURRENCY`` = 3, access log on, gunicorn.conf.py read from the repository
root as the image reads it from /app: gthread workers of 4 threads, answered tracking hits
kept out of the access log, the baseline's hits logged like any page) plus a Celery worker
(``--concurrency 2``) on
loopback against a scratch database, drives it with wrk (one thread, C, epoll: little CPU)
requesting the pixels of many messages for a fixed time, drains the tracking buffer and counts
the recorded opens. Then the same for a baseline: Django's full stack with a plain view that
INSERTs one row per hit (defined here only, never part of the app). Prints requests/s,
latency percentiles (wrk's: from sending the request to the end of the answer), recorded
events against answered requests, and the ratio.

Usage (PostgreSQL, Redis and `apt-get install wrk` needed; the database in DATABASE_URL is
dropped and re-created, so never point it at real data):

    flock /tmp/bench.lock env DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_track_bench \\
        REDIS_URL=redis://127.0.0.1:6379/12 .venv/bin/python tests/bench/bench_pixel.py \\
        [--seconds 20] [--connections 16] [--workers 3] [--worker-class W] [--threads N]
        [--messages 20000]

``--worker-class`` and ``--threads`` override gunicorn.conf.py for both servers alike.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
PROTECTED = {"crm", "crm_bench", "crm_bench_import", "postgres"}
SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Safari/605.1.15"
)
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local i = math.random(#paths)
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i], {["User-Agent"] = os.getenv("BENCH_UA")})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "socket_errors": %d, "non_2xx_3xx": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


# --- The baseline: Django's full stack, one INSERT per hit (bench only) -----------------------


def baseline_pixel(request, token):
    from django.http import HttpResponse

    from campaigns.models import TrackingEvent
    from campaigns.tokens import parse_message_token
    from campaigns.tracking import PIXEL_GIF, ip_hash

    message_id = parse_message_token(token)
    if message_id is not None:
        TrackingEvent.objects.create(
            message_id=message_id,
            kind="open",
            user_agent=request.headers.get("User-Agent", "")[:512],
            ip_hash=ip_hash(request.META.get("REMOTE_ADDR", "")),
        )
    return HttpResponse(PIXEL_GIF, content_type="image/gif")


def __getattr__(name):
    # This module doubles as the baseline's URLconf: the app's URLs plus the baseline view.
    if name == "urlpatterns":
        from django.urls import path

        from crm.urls import urlpatterns

        return [path("bench/o/<str:token>.gif", baseline_pixel), *urlpatterns]
    raise AttributeError(name)


def baseline_application():
    """gunicorn app factory: Django's WSGI handler, no fast path, with the baseline URLconf."""
    import django
    from django.conf import settings

    django.setup()
    settings.ROOT_URLCONF = "tests.bench.bench_pixel"
    from django.core.handlers.wsgi import WSGIHandler

    return WSGIHandler()


# --- The run ----------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "crm.settings",
        "DEBUG": "false",
        "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-pixel-secret-" + "k" * 40),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # As docker-compose.yml on plain HTTP.
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": tempfile.mkdtemp(prefix="bench-pixel-"),
    }


def _recreate_database(url: str) -> None:
    import psycopg2

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in PROTECTED:
        sys.exit(f"Refusing to drop the database {name!r}: use a scratch one (crm_track_bench).")
    admin = psycopg2.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password,
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def _seed(messages: int) -> list[str]:
    """A sent campaign of ``messages`` messages; returns their pixel paths."""
    from datetime import timedelta

    from django.utils import timezone

    from campaigns.models import Campaign, Message, Variant
    from campaigns.tokens import open_url
    from customers.models import Customer
    from segments.models import Segment

    segment = Segment.objects.create(name="bench", rules={"op": "and", "conditions": []})
    campaign = Campaign.objects.create(name="bench", segment=segment, status="sent")
    variant = Variant.objects.create(campaign=campaign, subject="s", html_body="h", text_body="t")
    customers = Customer.objects.bulk_create(
        Customer(
            external_id=f"B{n:07d}",
            family_name="山田",
            given_name="太郎",
            email=f"b{n}@example.jp",
        )
        for n in range(messages)
    )
    sent_at = timezone.now() - timedelta(hours=1)
    rows = Message.objects.bulk_create(
        Message(
            campaign=campaign,
            customer=customer,
            variant=variant,
            email=customer.email,
            status="sent",
            sent_at=sent_at,
        )
        for customer in customers
    )
    return [urlsplit(open_url(message.pk)).path for message in rows]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"Server exited early with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    sys.exit("Server did not start")


def _wrk(port: int, paths_file: str, seconds: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    completed = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}/",
        ],
        env={**os.environ, "BENCH_PATHS": paths_file, "BENCH_UA": SAFARI},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(x for x in completed.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def _count_events() -> int:
    from campaigns.models import TrackingEvent

    return TrackingEvent.objects.count()


def _overrides(args) -> list[str]:
    flags = []
    if args.worker_class:
        flags += ["--worker-class", args.worker_class]
    if args.threads:
        flags += ["--threads", str(args.threads)]
    return flags


def _server_setup(args) -> str:
    """Worker class and threads as gunicorn will run them (its config file, then the flags)."""
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    worker_class = args.worker_class or config.get("worker_class", "sync")
    threads = args.threads or config.get("threads", 1)
    return f"gunicorn {args.workers} {worker_class} workers x {threads} threads"


def _run(label: str, app: str, paths: list[str], args, env) -> dict:
    from django.db import connection

    from campaigns.models import TrackingEvent
    from campaigns.tracking import buffered_count, drain_events
    from tests.campaigns.tracking_factories import clear_buffer

    TrackingEvent.objects.all().delete()
    clear_buffer()
    connection.close()
    port = _free_port()
    workdir = Path(env["DATA_DIR"])
    paths_file = workdir / f"{label}-paths.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            *_overrides(args),
            "--access-logfile",
            "-",
        ],
        cwd=ROOT,
        env=env,
        stdout=(workdir / f"{label}-access.log").open("w"),
        stderr=(workdir / f"{label}-server.log").open("w"),
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "crm",
            "worker",
            "-l",
            "warning",
            "--concurrency",
            "2",
            "--hostname",
            f"bench-pixel-{label}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        stdout=(workdir / f"{label}-worker.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, server)
        warm = _wrk(port, str(paths_file), 2, args.connections)
        result = _wrk(port, str(paths_file), args.seconds, args.connections)
    finally:
        server.terminate()
        server.wait(30)
        worker.terminate()
        worker.wait(60)
    while buffered_count():
        drain_events()
    result["answered"] = warm["requests"] + result["requests"]
    result["recorded"] = _count_events()
    return result


def _line(label: str, r: dict) -> str:
    rate = r["requests"] / (r["duration_us"] / 1e6)
    r["rate"] = rate
    return (
        f"{label}: {rate:,.0f} req/s over {r['duration_us'] / 1e6:.0f} s, "
        f"p50 {r['p50_us'] / 1000:.1f} ms, p90 {r['p90_us'] / 1000:.1f} ms, "
        f"p99 {r['p99_us'] / 1000:.1f} ms, max {r['max_us'] / 1000:.0f} ms, "
        f"errors {r['socket_errors'] + r['non_2xx_3xx']}; "
        f"opens recorded {r['recorded']:,} of {r['answered']:,} answered"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--worker-class", help="default: gunicorn.conf.py's")
    parser.add_argument("--threads", type=int, help="per worker; default: gunicorn.conf.py's")
    parser.add_argument("--messages", type=int, default=20000)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL to a scratch PostgreSQL database (crm_track_bench).")
    if not os.environ.get("REDIS_URL"):
        sys.exit("Set REDIS_URL: the fast path buffers opens in Redis.")

    env = _env()
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    _recreate_database(os.environ["DATABASE_URL"])
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    import django

    django.setup()
    paths = _seed(args.messages)
    baseline_paths = [p.replace("/t/o/", "/bench/o/") for p in paths]

    setup = (
        f"{_server_setup(args)}, {args.connections} connections, "
        f"{args.messages:,} messages, {os.cpu_count()} CPUs"
    )
    print(f"open pixel benchmark ({setup})", flush=True)
    fast = _run("fast", "crm.wsgi:application", paths, args, env)
    print(_line("tracking pixel (crm.wsgi fast path + Redis buffer)", fast), flush=True)
    base = _run(
        "baseline", "tests.bench.bench_pixel:baseline_application()", baseline_paths, args, env
    )
    print(_line("baseline (plain Django view, one INSERT per hit)", base), flush=True)
    print(f"ratio: {fast['rate'] / base['rate']:.1f}x", flush=True)


if __name__ == "__main__":
    main()
