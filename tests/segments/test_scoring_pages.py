"""The RFM page, the scores export and the scoring runs pages, per role: sales staff see
everything but cannot start a run, marketers (and admins) can, anonymous visitors log in."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from segments.models import RunPhase, RunStatus, RunTrigger, ScoringRun
from tests.conftest import wait_for
from tests.customers.factories import CustomerFactory, PurchaseFactory
from tests.segments.score_rows import LABELS, make_run, random_rows, scored_run, write_scores

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
HTMX = {"HTTP_HX_REQUEST": "true"}
PAGES = [
    "/segments/scores/",
    "/segments/scores/export/",
    "/segments/scores/runs/",
]


def _text(response) -> str:
    return response.content.decode()


def _csrf_post(client, url: str, **extra):
    """POST as the browser does: with the CSRF token of a page the user was shown."""
    page = client.get("/segments/scores/runs/", **EN)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', _text(page))
    data = {"csrfmiddlewaretoken": token.group(1)} if token else {}
    return client.post(url, data, **extra)


@pytest.mark.parametrize("url", [*PAGES, "/segments/scores/runs/1/"])
def test_anonymous_visitors_are_sent_to_the_login_page(csrf_client, url):
    response = csrf_client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_anonymous_post_to_start_a_run_is_sent_to_log_in(csrf_client):
    response = csrf_client.post("/segments/scores/runs/start/")
    # The CSRF check comes first; either way nothing starts.
    assert response.status_code in (302, 403)
    assert not ScoringRun.objects.exists()


def test_users_without_a_role_are_refused(client_as, make_user):
    client = client_as(make_user(None, username="nobody"))
    for url in ["/segments/scores/", "/segments/scores/runs/"]:
        assert client.get(url).status_code == 403


def test_empty_state_explains_and_offers_the_button_to_marketers(client_as, marketer, sales):
    html = _text(client_as(marketer).get("/segments/scores/", **EN))
    assert "No scores yet" in html
    assert "Run scoring now" in html
    html = _text(client_as(sales).get("/segments/scores/", **EN))
    assert "No scores yet" in html
    assert "Run scoring now" not in html
    assert "Export scores CSV" not in html


def test_rfm_page_shows_the_latest_run_with_grid_labels_deciles_pareto_and_migration(
    client_as, sales
):
    earlier, earlier_rows = scored_run(40, seed=1, minutes_ago=600)
    customers_ids = [row.customer_id for row in earlier_rows]
    latest = make_run(minutes_ago=10)
    latest_rows = random_rows(customers_ids[10:], seed=2)
    write_scores(latest, latest_rows)
    make_run(status=RunStatus.FAILED, minutes_ago=1)

    response = client_as(sales).get("/segments/scores/", **EN)

    assert response.status_code == 200
    html = _text(response)
    assert f"Scoring run #{latest.pk}" in html
    assert "Run scoring now" not in html  # sales may look, not start
    assert f'href="/segments/scores/export/?run={latest.pk}"' in html
    # The heat map: each cell's count is the number of rows with that R and F.
    counts = Counter((row.r, row.f) for row in latest_rows)
    for r in range(1, 6):
        for f in range(1, 6):
            cell = re.search(
                rf'data-r="{r}" data-f="{f}"[^>]*>\s*<span class="heat-count">(\d+)</span>', html
            )
            assert cell and int(cell.group(1)) == counts[r, f], (r, f)
    assert "Champions" in html and "Can&#x27;t lose them" in html
    assert "Bought very recently, buy often and spend the most." in html  # a definition
    assert 'id="decile-table"' in html and 'id="decile-chart"' in html
    assert 'id="pareto-chart"' in html and "of customers bring" in html
    # Migration against the run before: each cell counts the customers who moved from the
    # row's label to the column's; 10 customers were scored in the earlier run only.
    assert f"label in run #{earlier.pk}" in html
    before = {row.customer_id: row.label for row in earlier_rows}
    after = {row.customer_id: row.label for row in latest_rows}
    moves = Counter((before[pk], after.get(pk, "not_scored")) for pk in customers_ids)
    table = html[
        html.index('id="migration-table"') : html.index(
            "</table>", html.index('id="migration-table"')
        )
    ]
    body = table[table.index("<tbody>") : table.index("</tbody>")]
    matrix = [
        [int(n) for n in re.findall(r"<td[^>]*>(\d+)</td>", row)][:-1]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]
    keys = [*LABELS, "not_scored"]
    assert matrix == [[moves[row, column] for column in keys] for row in keys]
    assert 'id="score-chart-data"' in html


def test_an_older_run_can_be_chosen_but_not_a_failed_or_unknown_one(client_as, marketer):
    older, _rows = scored_run(12, seed=3, minutes_ago=300)
    scored_run(5, seed=4, minutes_ago=10)
    failed = make_run(status=RunStatus.FAILED, minutes_ago=1)
    client = client_as(marketer)

    html = _text(client.get(f"/segments/scores/?run={older.pk}", **EN))
    assert f"Scoring run #{older.pk}" in html
    assert "12 customers scored" in html
    assert "the movement between labels shows from the next run on" in html

    assert client.get(f"/segments/scores/?run={failed.pk}").status_code == 404
    pruned = make_run(minutes_ago=900)  # succeeded, but its scores were pruned
    assert client.get(f"/segments/scores/?run={pruned.pk}").status_code == 404
    assert client.get("/segments/scores/?run=999999").status_code == 404
    assert client.get("/segments/scores/?run=abc").status_code == 404


def test_migration_can_be_compared_with_a_chosen_run(client_as, marketer):
    first, rows = scored_run(8, seed=5, minutes_ago=900)
    ids = [row.customer_id for row in rows]
    second = make_run(minutes_ago=500)
    write_scores(second, random_rows(ids[:4], seed=6))
    third = make_run(minutes_ago=5)
    write_scores(third, random_rows(ids, seed=7))

    html = _text(
        client_as(marketer).get(f"/segments/scores/?run={third.pk}&before={first.pk}", **EN)
    )
    assert f"label in run #{first.pk}" in html
    assert "8 of 8 customers" in html or "of 8 customers kept their label" in html


def test_sales_cannot_start_a_run(client_as, sales):
    client = client_as(sales)
    html = _text(client.get("/segments/scores/runs/", **EN))
    assert "Run scoring now" not in html
    response = _csrf_post(client, "/segments/scores/runs/start/")
    assert response.status_code == 403
    assert not ScoringRun.objects.exists()


def test_marketer_starts_a_run_and_a_second_one_is_refused_while_it_runs(client_as, marketer):
    client = client_as(marketer)
    html = _text(client.get("/segments/scores/runs/", **EN))
    assert "Run scoring now" in html and "No scoring run yet" in html

    response = _csrf_post(client, "/segments/scores/runs/start/", **EN)

    run = ScoringRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/segments/scores/runs/{run.pk}/"
    assert (run.status, run.trigger, run.requested_by) == (
        RunStatus.PENDING,
        RunTrigger.MANUAL,
        marketer,
    )
    detail = _text(client.get(response["Location"], **EN))
    assert f"Scoring run #{run.pk} was started" in detail
    assert 'hx-trigger="every 2s"' in detail

    again = _csrf_post(client, "/segments/scores/runs/start/", follow=True, **EN)
    assert ScoringRun.objects.count() == 1
    assert "A scoring run is already in progress" in _text(again)


def test_only_post_starts_a_run(client_as, marketer):
    assert client_as(marketer).get("/segments/scores/runs/start/").status_code == 405


def test_progress_polls_while_the_run_is_active_and_stops_when_it_finished(client_as, sales):
    run = make_run(status=RunStatus.RUNNING)
    run.progress, run.phase = 40, RunPhase.SCORING
    run.save(update_fields=["progress", "phase"])
    client = client_as(sales)

    listing = _text(client.get("/segments/scores/runs/", **EN))
    assert f'hx-get="/segments/scores/runs/{run.pk}/?fragment=row"' in listing
    assert 'hx-trigger="every 2s"' in listing
    assert 'value="40"' in listing
    overview = _text(client.get("/segments/scores/", **EN))
    assert f'id="run-status-{run.pk}"' in overview

    fragment = _text(client.get(f"/segments/scores/runs/{run.pk}/", **HTMX, **EN))
    assert fragment.lstrip().startswith(f'<div id="run-status-{run.pk}"')
    assert 'hx-trigger="every 2s"' in fragment and "40%" in fragment
    assert "Computing scores" in fragment

    run.status, run.progress, run.customers_scored = RunStatus.SUCCEEDED, 100, 1234
    run.finished_at = timezone.now()
    run.save()
    fragment = _text(client.get(f"/segments/scores/runs/{run.pk}/", **HTMX, **EN))
    assert "hx-trigger" not in fragment
    assert "1234 customers scored" in fragment
    row = _text(client.get(f"/segments/scores/runs/{run.pk}/?fragment=row", **HTMX, **EN))
    assert row.lstrip().startswith(f'<tr id="run-row-{run.pk}"') and "hx-trigger" not in row


def test_runs_list_shows_status_trigger_counts_duration_and_error(client_as, sales):
    ok, _rows = scored_run(3, seed=8)
    failed = make_run(status=RunStatus.FAILED, minutes_ago=1)
    failed.error = "Database connection lost"
    failed.save(update_fields=["error"])

    html = _text(client_as(sales).get("/segments/scores/runs/", **EN))

    assert "Succeeded" in html and "Failed" in html
    assert "Database connection lost" in html
    assert "Command line" in html
    assert "5.0 s" in html
    assert f'href="/segments/scores/?run={ok.pk}"' in html
    detail = _text(client_as(sales).get(f"/segments/scores/runs/{failed.pk}/", **EN))
    assert "the previous scores stay in place" in detail


def test_run_detail_of_an_unknown_run_is_404(client_as, sales):
    assert client_as(sales).get("/segments/scores/runs/424242/").status_code == 404


def test_export_streams_the_runs_scores_as_csv(client_as, sales):
    run, rows = scored_run(7, seed=9)
    response = client_as(sales).get(f"/segments/scores/export/?run={run.pk}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    records = list(csv.DictReader(io.StringIO(body)))
    assert len(records) == len(rows)
    assert {"customer_external_id", "rfm_label", "decile", "cumulative_share"} <= set(records[0])


def test_export_without_any_run_explains(client_as, sales):
    response = client_as(sales).get("/segments/scores/export/", follow=True, **EN)
    assert "There are no scores to export yet" in _text(response)


def test_pages_in_japanese(client_as, marketer):
    scored_run(6, seed=10)
    html = _text(client_as(marketer).get("/segments/scores/", HTTP_ACCEPT_LANGUAGE="ja"))
    assert '<html lang="ja">' in html


def test_run_started_on_the_page_is_scored_by_the_worker_and_shown(
    client_as, marketer, celery_worker
):
    """End to end: the button, a real worker, the status fragment the page polls, and the
    RFM page of the new run computed from the purchases."""
    for n, customer in enumerate(CustomerFactory.create_batch(4), start=1):
        PurchaseFactory(
            customer=customer,
            purchased_at=datetime(2026, 10, n, 3, 0, tzinfo=UTC),
            total=1000 * n,
        )
    client = client_as(marketer)

    started = _csrf_post(client, "/segments/scores/runs/start/")

    run = ScoringRun.objects.get()
    assert started["Location"] == f"/segments/scores/runs/{run.pk}/"

    # What the progress block polls, until it stops polling.
    def finished_fragment() -> str | None:
        html = _text(client.get(f"/segments/scores/runs/{run.pk}/", **HTMX, **EN))
        return None if "hx-trigger" in html else html

    fragment = wait_for(finished_fragment, 60)
    assert "4 customers scored" in fragment
    html = _text(client.get("/segments/scores/", **EN))
    assert f"Scoring run #{run.pk} as of" in html
    # The top customer (4,000 of 10,000 yen) alone is the top 20%: 40% of revenue.
    assert "bring <strong>40.0%</strong> of revenue" in html
