"""Automations benchmark: each trigger kind's evaluation at 1M customers / 10M purchases.

Read-only by default (``trigger_preview_count``: the matching queries, consent, address
checks and suppression, no writes), safe on crm_bench:

    flock /tmp/bench.lock env DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        .venv/bin/python -m tests.bench.bench_automations

``--write`` also times ``evaluate_trigger`` (the messages inserted) on its first day, when
every match is new, and on the next day, when the earlier matches already have theirs. It
writes automations and their messages, and deletes them afterwards; it refuses crm_bench, so
run it on a scratch copy:

    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE crm_bench_auto2 TEMPLATE crm_bench"
    flock /tmp/bench.lock env DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench_auto2 \\
        .venv/bin/python -m tests.bench.bench_automations --write
    psql -h 127.0.0.1 -U postgres -c "DROP DATABASE crm_bench_auto2"

"Today" is the day after the dataset's last purchase day (tests.bench.dataset.END), so the
thank-you trigger finds the last days' purchases.

Measured (2 cores shared with other work, 10% holdout, look-back 3 days): triggers fire on
crossing their day, so no first day mails every customer who ever lapsed. Preview: birthday
0.4-0.5 s (5,231 matches), win-back 90 days 0.4-0.5 s (4,973), win-back 60 days and twice the
usual gap 4.4-4.8 s (5,596), thank-you 0.1 s (3,069). Evaluation, first day / next day:
birthday 0.5 s / 0.4 s, win-back 90 days 0.6 s / 0.6 s, win-back by the usual gap 4.8 s /
4.4 s, thank-you 0.3 s / 0.1 s. The usual-gap win-back is the slow one: the first and last
purchase of each of the 590,000 consenting customers (~2.7 s of index probes), then the median
gap of the ~86,000 lapsed ones whose threshold can still reach the look-back (~1.5 s).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta
from decimal import Decimal

from tests.bench.dataset import END, setup_django

TODAY = END + timedelta(days=1)
# (label, trigger kind, days, gap multiplier)
CASES = [
    ("birthday, 7 days before", "birthday", 7, None),
    ("win-back, 90 days", "win_back", 90, None),
    ("win-back, 60 days and 2x the usual gap", "win_back", 60, Decimal("2")),
    ("thank-you, 1 day after", "thank_you", 1, None),
]


def _timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def preview(today) -> None:
    from campaigns.automations import trigger_preview_count
    from campaigns.models import Trigger

    for label, kind, days, gap in CASES:
        trigger = Trigger(kind=kind, days=days, gap_multiplier=gap)
        count, seconds = _timed(lambda t=trigger: trigger_preview_count(t, today=today))
        print(f"preview   {label:<42} {count:>9,} matches {seconds:7.2f} s")


def evaluate(today) -> None:
    from django.db import connection

    from campaigns.automations import evaluate_trigger
    from campaigns.models import Campaign, CampaignKind, Trigger, Variant

    campaigns = []
    try:
        for label, kind, days, gap in CASES:
            campaign = Campaign.objects.create(
                name=f"bench automation: {label}", kind=CampaignKind.AUTOMATION, holdout_percent=10
            )
            campaigns.append(campaign)
            Variant.objects.create(
                campaign=campaign,
                subject="{{ family_name }}様へ",
                html_body="<p>{{ full_name }}様</p>",
                text_body="{{ full_name }}様",
            )
            trigger = Trigger.objects.create(
                campaign=campaign, kind=kind, days=days, gap_multiplier=gap
            )
            for day, when in ((today, "first day"), (today + timedelta(days=1), "next day")):
                added, seconds = _timed(
                    lambda t=trigger, d=day: evaluate_trigger(trigger=t, today=d)
                )
                print(f"evaluate  {label:<42} {when:<9} {added:>9,} added {seconds:7.2f} s")
    finally:
        # Straight DELETE: nothing refers to these fresh messages, and the ORM's cascade
        # collection of several hundred thousand rows takes minutes.
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM campaigns_message WHERE campaign_id = ANY(%s)",
                [[c.pk for c in campaigns]],
            )
        for campaign in campaigns:
            campaign.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="also time evaluate_trigger")
    args = parser.parse_args()
    if args.write and os.environ.get("DATABASE_URL", "").rstrip("/").endswith("/crm_bench"):
        raise SystemExit("--write writes messages: run it on a scratch copy, not crm_bench.")
    setup_django()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM customers_customer")
        customers = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM customers_purchase")
        purchases = cursor.fetchone()[0]
    print(f"{customers:,} customers, {purchases:,} purchases; today = {TODAY}")
    preview(TODAY)
    if args.write:
        evaluate(TODAY)


if __name__ == "__main__":
    main()
