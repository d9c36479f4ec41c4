"""A marketer opens the RFM page in a real browser: the R×F heat map and the decile table
show the run's figures, and Chart.js draws the Pareto curve and the decile bars."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from playwright.sync_api import Page, expect

from crm.roles import Role
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.segments.score_rows import make_run, random_rows, scored_run, write_scores

pytestmark = pytest.mark.browser


def log_in(page: Page, username: str, next_url: str) -> None:
    page.goto(next_url)
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(DEFAULT_PASSWORD)
    page.locator('form button[type="submit"]').click()
    expect(page).to_have_url(re.compile(re.escape(next_url) + "$"))


@pytest.mark.parametrize("page", ["en-US"], indirect=True)
def test_rfm_page_shows_grid_deciles_and_draws_the_charts(page: Page):
    UserFactory(role=Role.MARKETER, username="marketer-user")
    earlier, rows = scored_run(60, seed=11, minutes_ago=600)
    latest = make_run(minutes_ago=5)
    latest_rows = random_rows([row.customer_id for row in rows][:50], seed=12)
    write_scores(latest, latest_rows)

    log_in(page, "marketer-user", "/segments/scores/")

    expect(page.get_by_role("heading", level=1)).to_have_text("RFM analysis")
    expect(page.locator(".run-summary")).to_contain_text(f"Scoring run #{latest.pk}")
    # The heat map: 5 rows (R 5..1) of 5 cells, each with the count of its (R, F).
    grid = page.locator("#rf-grid-table")
    expect(grid.locator("tbody tr")).to_have_count(5)
    counts = Counter((row.r, row.f) for row in latest_rows)
    for r, f in [(5, 5), (1, 1), (3, 2), (2, 4)]:
        cell = grid.locator(f'td[data-r="{r}"][data-f="{f}"] .heat-count')
        expect(cell).to_have_text(str(counts[r, f]))
    # The decile table: ten deciles whose customers add up to the scored customers.
    deciles = page.locator("#decile-table tbody tr")
    expect(deciles).to_have_count(10)
    cells = page.locator("#decile-table tbody tr td:nth-child(2)").all_inner_texts()
    assert sum(int(text) for text in cells) == 50
    expect(page.locator("#decile-table tbody tr").last).to_contain_text("100.0%")

    # Chart.js drew into both canvases (a chart instance with its data, and pixels).
    pareto = page.locator("#pareto-chart")
    pareto.scroll_into_view_if_needed()
    expect(pareto).to_be_visible()
    drawn = page.evaluate(
        """() => {
            const canvas = document.getElementById("pareto-chart");
            const bars = window.Chart.getChart(document.getElementById("decile-chart"));
            const chart = window.Chart.getChart(canvas);
            const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
            let painted = 0;
            for (let i = 3; i < pixels.data.length; i += 4) if (pixels.data[i]) painted++;
            return {
                points: chart ? chart.data.datasets[0].data.length : 0,
                expected: JSON.parse(document.getElementById("score-chart-data").textContent)
                    .pareto.x.length,
                width: canvas.width,
                painted,
                bars: bars ? bars.data.labels.length : 0,
            };
        }"""
    )
    assert drawn["points"] == drawn["expected"] > 10
    assert drawn["width"] > 0 and drawn["painted"] > 0
    assert drawn["bars"] == 10

    # The migration matrix compares with the run before by default.
    expect(page.locator("#migration")).to_contain_text(f"label in run #{earlier.pk}")
    # Another run can be picked; the page follows.
    page.locator("#run-select").select_option(str(earlier.pk))
    expect(page).to_have_url(re.compile(rf"\?run={earlier.pk}$"))
    expect(page.locator(".run-summary")).to_contain_text("60 customers scored")

    # On a phone the wide tables scroll inside their frame; the page itself never does.
    page.set_viewport_size({"width": 390, "height": 800})
    for url in ["/segments/scores/", "/segments/scores/runs/"]:
        page.goto(url)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, url
