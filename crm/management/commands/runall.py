"""Run the whole app in one terminal: web server, Celery worker and Celery beat.

Used by `make run`. Each process runs in its own session so that Ctrl-C reaches only this
supervisor, which then stops them in order (web, beat, worker) and waits for each; if any of
them dies, the others are stopped too and the command exits with an error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from crm.demo import DEMO_USERS

STOP_TIMEOUT = 20


class Command(BaseCommand):
    help = "Start the web server, a Celery worker and Celery beat; Ctrl-C stops all three."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--worker-concurrency", type=int, default=2)

    def handle(self, *args, host, port, worker_concurrency, **options):
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "crm"]
        commands = {
            "web": [python, "manage.py", "runserver", "--noreload", f"{host}:{port}"],
            "worker": [*celery, "worker", "-l", "info", "--concurrency", str(worker_concurrency)],
            "beat": [
                *celery,
                "beat",
                "-l",
                "info",
                "--schedule",
                settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ],
        }
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        processes = {
            name: subprocess.Popen(command, cwd=settings.BASE_DIR, start_new_session=True)  # noqa: S603
            for name, command in commands.items()
        }
        stopping = False

        def request_stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        url = f"http://{host}:{port}/"
        announced = False
        failed = None
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    failed = name
            if failed:
                break
            if not announced and _answers(url + "healthz?check=database"):
                self._announce(url)
                announced = True
            time.sleep(0.5)

        self.stdout.write("Stopping web, beat and worker...")
        for name in ("web", "beat", "worker"):
            _stop(processes[name])
        if failed:
            raise CommandError(f"The {failed} process exited unexpectedly; everything was stopped.")
        self.stdout.write("Stopped.")

    def _announce(self, url: str) -> None:
        lines = [
            "",
            "=" * 64,
            f"  CRM is running at {url}",
            f"  API docs: {url}api/docs/   Admin: {url}admin/",
            "  Demo logins (username / password / role):",
            *(f"    {d.username:<10} {settings.DEMO_PASSWORD}  {d.role.value}" for d in DEMO_USERS),
            "  Press Ctrl-C to stop the web server, worker and beat.",
            "=" * 64,
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own http URL)
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the process and any children it left
        process.wait()
