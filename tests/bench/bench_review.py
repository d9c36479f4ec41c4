"""Benchmark of a campaign's review (campaigns.results) at the issue's scale.

    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE crm_bench_review TEMPLATE crm_bench"
    flock /tmp/bench.lock env DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench_review \\
        REDIS_URL=redis://127.0.0.1:6379/2 .venv/bin/python -m tests.bench.bench_review [--runs 3]
    psql -h 127.0.0.1 -U postgres -c "DROP DATABASE crm_bench_review"

It writes, so it refuses crm_bench itself: run it on a scratch copy and drop that afterwards.
On the copy (1M customers, ~10M purchases) it applies pending migrations, writes a scoring run
if there is none (bench_segments.scratch_run), then a sent campaign of 100,000 recipients with
two variants and a 10% holdout, sent ten days before the newest purchase (so the dataset's own
purchases fall in the 7-day attribution windows): ~30% human opens (~10% more opened only by
machines), 5% human clicks (1% machine clicks), 0.3% unsubscribes, each with its tracking
events, all in set-based INSERT ... SELECT statements.

Then it times, ``--runs`` times each: ``compute_results`` (no cache), ``campaign_results``
with the cache cleared first (cold, the page's first visit) and again (warm), the review page
through Django's test client as a marketer (cold cache, the server's own time: results +
render, from its Server-Timing header), and ``goal_attainment_for`` (the list's query).
Target: the cold review under 1 s. Prints the figures and the results' headline counts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from tests.bench.dataset import setup_django

RECIPIENTS = 100_000
TARGET_S = 1.0


def build_campaign():
    from django.db import connection
    from django.utils import timezone

    from campaigns.models import Campaign, CampaignStatus, Variant
    from segments.models import Segment, SegmentKind

    segment = Segment.objects.create(name="bench-review", kind=SegmentKind.STATIC, rules={})
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(purchased_at) FROM customers_purchase")
        newest = cursor.fetchone()[0] or timezone.now()
    sent_at = newest - timezone.timedelta(days=10)
    campaign = Campaign.objects.create(
        name="bench-review",
        segment=segment,
        status=CampaignStatus.SENT,
        started_at=sent_at - timezone.timedelta(minutes=10),
        finished_at=sent_at + timezone.timedelta(hours=1),
        attribution_days=7,
        holdout_percent=10,
        goal_open_rate="0.25",
        goal_click_rate="0.04",
        goal_conversion_rate="0.02",
        goal_revenue="10000000",
    )
    a = Variant.objects.create(
        campaign=campaign, label="A", subject="A", html_body="<p>a</p>", text_body="a", weight=50
    )
    b = Variant.objects.create(
        campaign=campaign, label="B", subject="B", html_body="<p>b</p>", text_body="b", weight=50
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT setseed(0.17)")
        # One message per recipient: 10% holdout (skipped, never sent), the rest sent over an
        # hour; opens, clicks and machine opens drawn at the rates of the docstring.
        cursor.execute(
            """
            INSERT INTO campaigns_message (campaign_id, customer_id, variant_id, email, period,
                is_holdout, status, error, attempts, queued_at, sent_at, smtp_message_id,
                first_opened_at, first_clicked_at, opened_by_machine)
            SELECT %(campaign)s, c.id,
                CASE WHEN h THEN NULL WHEN v < 0.5 THEN %(a)s ELSE %(b)s END,
                c.email, '', h, CASE WHEN h THEN 'skipped' ELSE 'sent' END, '',
                CASE WHEN h THEN 0 ELSE 1 END, %(queued)s,
                CASE WHEN NOT h THEN %(sent)s + random() * interval '1 hour' END,
                '',
                CASE WHEN NOT h AND o < 0.30 THEN %(sent)s + random() * interval '72 hours' END,
                CASE WHEN NOT h AND o < 0.05 THEN %(sent)s + random() * interval '72 hours' END,
                NOT h AND o >= 0.25 AND o < 0.40
            FROM (
                -- Three draws of their own: an ORDER BY random() in this query would be
                -- taken for the same expression as a draw and bias it.
                SELECT id, email, random() < 0.1 AS h, 1.0 * random() AS v, 0.0 + random() AS o
                FROM (
                    SELECT id, email FROM customers_customer WHERE email <> ''
                    ORDER BY random() LIMIT %(n)s
                ) sample
            ) c
            """,
            {
                "campaign": campaign.pk,
                "a": a.pk,
                "b": b.pk,
                "queued": sent_at - timezone.timedelta(minutes=10),
                "sent": sent_at,
                "n": RECIPIENTS,
            },
        )
        # The events behind those first times, plus machine ones (not in any first time).
        cursor.execute(
            """
            INSERT INTO campaigns_trackingevent (message_id, kind, occurred_at, is_machine,
                machine_reason, user_agent, ip_hash)
            SELECT id, 'open', first_opened_at, false, '', 'Mozilla/5.0', ''
                FROM campaigns_message
                WHERE campaign_id = %(c)s AND first_opened_at IS NOT NULL
            UNION ALL
            SELECT id, 'click', first_clicked_at, false, '', 'Mozilla/5.0', ''
                FROM campaigns_message
                WHERE campaign_id = %(c)s AND first_clicked_at IS NOT NULL
            UNION ALL
            SELECT id, 'open', sent_at + interval '1 minute', true, 'apple_mpp', 'Mozilla/5.0', ''
                FROM campaigns_message WHERE campaign_id = %(c)s AND opened_by_machine
            UNION ALL
            SELECT id, 'click', sent_at + interval '2 seconds', true, 'scanner', 'scanner', ''
                FROM campaigns_message WHERE campaign_id = %(c)s AND status = 'sent'
                AND id %% 100 = 7
            """,
            {"c": campaign.pk},
        )
        cursor.execute(
            """
            INSERT INTO campaigns_suppression
                (email_hash, reason, source_message_id, note, created_at)
            SELECT md5('bench-review' || id) || md5(id::text), 'unsubscribed', id, '', now()
            FROM campaigns_message WHERE campaign_id = %(c)s AND status = 'sent' AND id %% 333 = 1
            """,
            {"c": campaign.pk},
        )
        cursor.execute("ANALYZE campaigns_message")
        cursor.execute("ANALYZE campaigns_trackingevent")
        cursor.execute("ANALYZE campaigns_suppression")
    return campaign


def timed(function, runs: int, before=None) -> list[float]:
    times = []
    for _ in range(runs):
        if before:
            before()
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def show(name: str, times: list[float]) -> None:
    print(
        f"{name:<42} median {statistics.median(times) * 1000:8.1f} ms"
        f"   min {min(times) * 1000:8.1f}   max {max(times) * 1000:8.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.environ.get("DATABASE_URL", "").rstrip("/").endswith("/crm_bench"):
        raise SystemExit("bench_review writes: use a scratch copy of crm_bench (see --help).")

    setup_django()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client

    from campaigns.models import Campaign
    from campaigns.results import campaign_results, compute_results, goal_attainment_for
    from crm.roles import Role
    from segments.models import ScoringRun

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    if ScoringRun.objects.succeeded().first() is None:
        from tests.bench.bench_segments import scratch_run

        scratch_run()
    campaign = build_campaign()
    print(f"setup (migrate, scores, 100k messages): {time.perf_counter() - started:.1f} s")

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user, _created = get_user_model().objects.get_or_create(username="bench-review-marketer")
    user.groups.add(Group.objects.get(name=Role.MARKETER))
    client = Client()
    client.force_login(user)
    timings = {}

    def page():
        response = client.get(f"/campaigns/{campaign.pk}/review/", HTTP_HOST="localhost")
        assert response.status_code == 200, response.status_code
        timings.setdefault("server", []).append(response["Server-Timing"])

    campaign = Campaign.objects.get(pk=campaign.pk)
    show("compute_results (no cache)", timed(lambda: compute_results(campaign), args.runs))
    show(
        "campaign_results, cold cache",
        timed(lambda: campaign_results(campaign), args.runs, cache.clear),
    )
    show("campaign_results, warm cache", timed(lambda: campaign_results(campaign), args.runs))
    show("review page, cold cache (client)", timed(page, args.runs, cache.clear))
    for header in timings["server"]:
        print(f"    Server-Timing: {header}")
    page_of = list(Campaign.objects.order_by("-created_at")[:25])
    show("goal_attainment_for (list page)", timed(lambda: goal_attainment_for(page_of), args.runs))

    results = compute_results(campaign)
    total = results.total
    print(
        f"delivered {total.delivered:,}  opened {total.opened:,} ({total.open_rate:.1%})  "
        f"clicked {total.clicked:,} ({total.click_rate:.1%})  machine opens "
        f"{total.machine_opened:,}  machine clicks {total.machine_clicked:,}  unsubscribed "
        f"{total.unsubscribed:,}  converted {total.converted:,} ({total.conversion_rate:.2%})  "
        f"revenue {total.revenue:,.0f}  holdout {results.holdout.members:,} "
        f"(converted {results.holdout.converted:,})  scored groups {len(results.by_rfm)}"
    )
    print(f"verdict: {results.verdicts()}")
    print(f"target: cold review < {TARGET_S:.0f} s")


if __name__ == "__main__":
    main()
