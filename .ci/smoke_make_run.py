"""Smoke test of `make run` as a new user runs it: start it, wait for the URL it prints, log in
over HTTP as each demo user, see the health check go green (worker and beat included), then
stop it with Ctrl-C (SIGINT to its process group) and check that nothing is left running."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = os.environ.get("SMOKE_PORT", "8765")
SMOKE_PAGES = (
    "customers/",
    "segments/",
    "campaigns/",
    "analytics/",
    "analytics/?period=last_12_months&prefecture=13",
    "api/v1/analytics/ltv/?prefecture=13",
)
DEMO_PASSWORD = "crm-demo-2026"  # noqa: S105 (the documented demo password)
STARTUP_TIMEOUT = 300


def fail(message: str, log: Path | None = None) -> None:
    print(f"SMOKE FAIL: {message}")
    if log and log.exists():
        print("---- make run output ----")
        print(log.read_text()[-6000:])
    sys.exit(1)


def open_url(opener, url, data=None):
    try:
        with opener.open(url, data=data, timeout=10) as response:
            return response.status, response.geturl(), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, url, error.read().decode()


def log_in(base: str, username: str) -> tuple[urllib.request.OpenerDirector, str]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    status, _, page = open_url(opener, base + "accounts/login/")
    assert status == 200, status
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"username": username, "password": DEMO_PASSWORD, "csrfmiddlewaretoken": token}
    ).encode()
    request = urllib.request.Request(base + "accounts/login/", data=form, headers={"Referer": base})
    status, final_url, home = open_url(opener, request)
    if status != 200 or final_url.rstrip("/") != base.rstrip("/"):
        raise AssertionError(f"login as {username}: {status} at {final_url}")
    return opener, home


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="crm-smoke-"))
    log = data_dir / "make-run.log"
    env = {**os.environ, "DATA_DIR": str(data_dir), "PORT": PORT}
    base = f"http://127.0.0.1:{PORT}/"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while f"CRM is running at {base}" not in log.read_text():
            if process.poll() is not None:
                fail(f"make run exited with {process.returncode} before printing the URL", log)
            if time.monotonic() > deadline:
                fail("make run printed no URL in time", log)
            time.sleep(1)
        waited = STARTUP_TIMEOUT - (deadline - time.monotonic())
        print(f"make run printed the URL after {waited:.0f} s")

        for username, marker in [("admin", "管理者"), ("marketer", "Marketer"), ("sales", "営業")]:
            opener, home = log_in(base, username)
            if marker not in home:
                fail(f"{username}'s home page does not show the role {marker!r}", log)
            print(f"logged in over HTTP as {username}")
            if username == "marketer":
                # The main pages on the embedded database (SQLite), whose SQL differs from
                # PostgreSQL's the tests run on.
                for path in SMOKE_PAGES:
                    status, _, _ = open_url(opener, base + path)
                    if status != 200:
                        fail(f"/{path} answered {status} to the marketer", log)
                print(f"{len(SMOKE_PAGES)} pages answered 200 to the marketer")

        opener = urllib.request.build_opener()
        deadline = time.monotonic() + 120
        while True:
            status, _, body = open_url(opener, base + "healthz")
            if status == 200:
                print(f"/healthz: {body}")
                break
            if time.monotonic() > deadline:
                fail(f"/healthz never became healthy: {status} {body}", log)
            time.sleep(2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                fail("make run did not stop within 60 s of Ctrl-C", log)

    # Every process make run started carries DATA_DIR in its environment.
    candidates = subprocess.run(["pgrep", "-f", "python"], capture_output=True, text=True)
    left = [pid for pid in candidates.stdout.split() if _environ_has(pid, str(data_dir))]
    if left:
        fail(f"processes left running after Ctrl-C: {left}", log)
    if "Stopped." not in log.read_text():
        fail("make run did not report a clean stop", log)
    print("make run stopped cleanly on Ctrl-C; smoke test passed")


def _environ_has(pid: str, value: str) -> bool:
    try:
        return value.encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


if __name__ == "__main__":
    main()
