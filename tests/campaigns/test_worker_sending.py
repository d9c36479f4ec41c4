"""Campaigns sent by real Celery workers to a real SMTP server (issue 5, "Reliability"):
end to end, two workers plus two beats without duplicates, and the worker SIGKILLed at
random points of a 10,000-recipient campaign: nothing lost, duplicates at most the messages
in flight at each kill, each traceable to a row that was mid-send."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, Message, MessageStatus
from campaigns.sending import INTERRUPTED, campaign_progress, start_campaign
from campaigns.tasks import tick
from crm.celery import app
from customers.models import ConsentRecord, ConsentSource, Customer
from tests.campaigns.factories import CampaignFactory, VariantFactory, subscriber
from tests.conftest import ROOT, _database_url, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.smtp]

FLUSH_EVERY = 20
_MESSAGE_ID = re.compile(rb"^Message-ID: (\S+)\r?$", re.MULTILINE | re.IGNORECASE)


@pytest.fixture
def worker_settings(monkeypatch, settings, smtp_server):
    """What the worker processes read from the environment (and this process, the beat, its
    settings): our SMTP server, small batches and a short lease so a killed worker's batch
    is taken over quickly."""
    lease = 2
    settings.CAMPAIGN_LEASE_SECONDS = lease  # pytest-django's settings fixture restores it
    for name, value in {
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_server.port}",
        "SITE_URL": "https://crm.example.jp",
        "CAMPAIGN_BATCH_SIZE": "200",
        "CAMPAIGN_FLUSH_EVERY": str(FLUSH_EVERY),
        "CAMPAIGN_LEASE_SECONDS": str(lease),
        "CAMPAIGN_SEND_TASKS": "1",
    }.items():
        monkeypatch.setenv(name, value)
    # Tasks left in the broker by other tests must not reach these workers.
    app.control.purge()
    return smtp_server


@pytest.fixture
def workers(worker_settings, celery_worker, tmp_path):
    """Starts further worker processes like the celery_worker fixture's; SIGKILLs and
    restarts them on demand."""

    class Workers:
        def __init__(self):
            self.processes = [celery_worker]
            self.started = 0
            self.smtp_server = worker_settings

        def start(self) -> subprocess.Popen:
            self.started += 1
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "DATABASE_URL": _database_url(),
                "PYTHONPATH": str(ROOT),
            }
            args = list(celery_worker.args)
            args[args.index("--hostname") + 1] = f"extra{self.started}-{os.getpid()}@%h"
            log = tmp_path / f"worker{self.started}.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            self.processes.append(process)
            # Not a ping: a solo worker busy with a task does not answer one.
            wait_for(lambda: " ready." in log.read_text(), timeout=60)
            return process

        def kill(self, process: subprocess.Popen) -> None:
            process.send_signal(signal.SIGKILL)
            process.wait()

    manager = Workers()
    yield manager
    for process in manager.processes[1:]:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def received_ids(smtp_server) -> list[str]:
    ids = []
    for envelope in list(smtp_server.messages):
        match = _MESSAGE_ID.search(envelope.content)
        ids.append(match.group(1).decode())
    return ids


def bulk_subscribers(count: int) -> None:
    """``count`` consenting customers in Tokyo, written in bulk (the factories would take
    minutes)."""
    now = timezone.now()
    customers = Customer.objects.bulk_create(
        [
            Customer(
                external_id=f"K{n:06d}",
                family_name="山田",
                given_name=f"{n}",
                email=f"k{n:06d}@example.jp",
                prefecture="13",
                email_opt_in=True,
                email_opt_in_at=now,
            )
            for n in range(count)
        ],
        batch_size=2_000,
    )
    ConsentRecord.objects.bulk_create(
        [
            ConsentRecord(customer=c, opted_in=True, recorded_at=now, source=ConsentSource.IMPORT)
            for c in customers
        ],
        batch_size=2_000,
    )


def progressed(campaign: Campaign, before: int) -> bool:
    now = Campaign.objects.get(pk=campaign.pk)
    return now.sent_count > before or now.status == CampaignStatus.SENT


def beat(stop: threading.Event, period: float = 0.5) -> None:
    """What the beat process does for campaigns (campaigns.tasks.tick), every ``period``."""
    from django.db import connections

    try:
        while not stop.wait(period):
            tick()
    finally:
        connections.close_all()


def test_a_campaign_sent_by_a_worker_reaches_the_smtp_server(workers, marketer):
    customers = [subscriber() for _ in range(20)]
    campaign = CampaignFactory(holdout_percent=10)
    a = VariantFactory(campaign=campaign, label="A", subject="A: {{ family_name }}様", weight=50)
    b = VariantFactory(campaign=campaign, label="B", subject="B: {{ family_name }}様", weight=50)
    start_campaign(campaign=campaign, by=marketer)

    wait_for(lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT, 60)
    campaign.refresh_from_db()
    messages = list(Message.objects.filter(campaign=campaign).select_related("variant"))
    assert len(messages) == campaign.audience_size == len(customers)
    to_send = [m for m in messages if not m.is_holdout]
    assert all(m.status == MessageStatus.SENT for m in to_send)
    assert all(m.status == MessageStatus.SKIPPED for m in messages if m.is_holdout)
    assert campaign.sent_count == len(to_send)
    smtp_server = workers.smtp_server
    assert sorted(received_ids(smtp_server)) == sorted(m.smtp_message_id for m in to_send)
    by_id = {m.smtp_message_id: m for m in to_send}
    for envelope in smtp_server.messages:
        content = envelope.content
        message = by_id[_MESSAGE_ID.search(content).group(1).decode()]
        assert envelope.rcpt_tos == [message.email]
        assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in content
        assert message.variant in (a, b)
    assert {m.variant.label for m in to_send} <= {"A", "B"}


def test_two_workers_and_two_beats_send_every_message_once(workers, marketer):
    workers.start()
    bulk_subscribers(1_000)
    campaign = VariantFactory().campaign
    start_campaign(campaign=campaign, by=marketer)
    stop = threading.Event()
    beats = [threading.Thread(target=beat, args=(stop, 0.3)) for _ in range(2)]
    for thread in beats:
        thread.start()
    try:
        wait_for(lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT, 90)
    finally:
        stop.set()
        for thread in beats:
            thread.join()
    ids = received_ids(workers.smtp_server)
    assert len(ids) == len(set(ids)) == 1_000


def test_sigkilled_workers_lose_nothing_and_duplicate_at_most_the_messages_in_flight(
    workers, marketer
):
    rng = random.Random()
    bulk_subscribers(10_000)
    campaign = VariantFactory().campaign
    start_campaign(campaign=campaign, by=marketer)
    stop = threading.Event()
    beat_thread = threading.Thread(target=beat, args=(stop,))
    beat_thread.start()
    kills = 0
    try:
        current = workers.processes[0]
        for _ in range(4):
            # Let it send a little, then kill it at a random moment of a batch.
            before = Campaign.objects.get(pk=campaign.pk).sent_count
            wait_for(lambda b=before: progressed(campaign, b), 60)
            time.sleep(rng.uniform(0.1, 1.0))
            if Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT:
                break
            workers.kill(current)
            kills += 1
            current = workers.start()
        wait_for(lambda: Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT, 120)
    finally:
        stop.set()
        beat_thread.join()

    assert kills >= 3
    rows = {m.smtp_message_id: m for m in Message.objects.filter(campaign=campaign)}
    assert len(rows) == 10_000
    assert all(m.status == MessageStatus.SENT for m in rows.values())
    received = Counter(received_ids(workers.smtp_server))
    assert set(received) == set(rows)  # every recipient has a message: none lost
    duplicated = {message_id: n for message_id, n in received.items() if n > 1}
    extra_copies = sum(n - 1 for n in duplicated.values())
    assert extra_copies <= kills * FLUSH_EVERY
    for message_id in duplicated:
        # Each duplicate is a message that was mid-send when its worker died.
        assert rows[message_id].error == INTERRUPTED and rows[message_id].attempts >= 2
    progress = campaign_progress(Campaign.objects.get(pk=campaign.pk))
    print(f"{kills} kills, {extra_copies} extra copies of {len(duplicated)} messages")
    assert progress.possibly_duplicated >= len(duplicated)
    assert progress.possibly_duplicated <= kills * FLUSH_EVERY
    assert progress.sent == 10_000 and progress.queued == progress.sending == 0
