"""The analytics dashboard page: who may open it, its figures against the independent oracle
(tests/analytics/oracle.py), filters, form errors and the CSV download of each table."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from html.parser import HTMLParser

import pytest

from analytics.customer_attributes import snapshot_customers
from analytics.dashboard import TABLE_SECTIONS
from analytics.goals import analytics_today, create_goal
from analytics.rollups import day_start, rebuild_rollups
from customers.models import Customer
from segments.models import Segment, SegmentMember
from tests.analytics import oracle
from tests.analytics.test_api import KEYS

MAY = {"period": "custom", "start": "2026-05-01", "end": "2026-05-31"}
# Long enough for the cohort triangle and LTV to hold every cohort of the store but one.
LONG = {"period": "custom", "start": "2025-04-01", "end": "2026-06-30"}
KPI_KEYS = sorted(KEYS - {"start", "end", "customers"})  # customers: checked apart


def get_page(client, **params):
    response = client.get("/analytics/", params, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    return response


def embedded(response, element_id: str):
    html = response.content.decode()
    pattern = rf'<script id="{element_id}" type="application/json">(.*?)</script>'
    found = re.search(pattern, html, re.S)
    assert found, element_id
    return json.loads(found.group(1))


class TableParser(HTMLParser):
    """The text of every cell of the table with the given id, row by row."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.depth, self.rows, self.cell = table_id, 0, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.depth = 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self.depth = 0
        elif self.depth and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def html_table(response, table_id: str) -> list[list[str]]:
    parser = TableParser(table_id)
    parser.feed(response.content.decode())
    return parser.rows


def number(text: str) -> Decimal | None:
    """A figure as the page shows it (¥1,234 / 12.3% / +1.5 pt / —) as a number."""
    cleaned = re.sub(r"[¥￥,%\s]|pt", "", text)
    return None if cleaned in ("", "—") else Decimal(cleaned)


def card_value(response, key: str) -> str:
    html = response.content.decode()
    block = html[html.index(f'data-kpi="{key}"') :]
    return re.search(r'<p class="kpi-value">(.*?)</p>', block, re.S).group(1).strip()


def customers_on_record(end: date, members=None) -> int:
    cut = day_start(end + timedelta(days=1))
    return sum(
        1
        for c in Customer.objects.all()
        if c.created_at < cut and (members is None or c.pk in members)
    )


@pytest.fixture
def built(store):
    # As the refresh task does: the rollups, then the customer snapshot the filters read.
    rebuild_rollups()
    snapshot_customers()
    return store


# --- Access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["sales", "marketer", "admin_member"])
def test_every_role_opens_the_dashboard_from_the_menu(request, client_as, role):
    client = client_as(request.getfixturevalue(role))
    home = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'href="/analytics/"' in home
    response = get_page(client)
    html = response.content.decode()
    assert "<h1>Analytics</h1>" in html
    assert 'id="analytics-chart-data"' in html
    assert "kpis;dur=" in response["Server-Timing"]


def test_anonymous_visitors_are_sent_to_the_login(client):
    for path in ("/analytics/", "/analytics/csv/deciles/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")


def test_a_user_without_a_role_is_refused(client_as, make_user):
    client = client_as(make_user(None, username="nobody"))
    assert client.get("/analytics/").status_code == 403
    assert client.get("/analytics/csv/kpis/").status_code == 403


# --- Figures against the oracle -----------------------------------------------------------------


def assert_kpis_equal(block: dict, expected: dict) -> None:
    for key in KPI_KEYS:
        value, want = block[key], expected[key]
        if want is None:
            assert value is None, key
        elif isinstance(want, Decimal):
            assert Decimal(value) == want, key
        else:
            assert value == pytest.approx(want), key


def test_kpis_on_the_page_equal_the_oracle(client_as, marketer, built):
    response = get_page(client_as(marketer), **MAY)
    figures = embedded(response, "analytics-figures")["kpis"]
    expected = oracle.with_comparisons(oracle.snapshot(), date(2026, 5, 1), date(2026, 5, 31))
    assert_kpis_equal({k: figures[k]["value"] for k in KPI_KEYS}, expected)
    assert_kpis_equal({k: figures[k]["previous"] for k in KPI_KEYS}, expected["previous"])
    assert_kpis_equal({k: figures[k]["last_year"] for k in KPI_KEYS}, expected["last_year"])
    assert figures["customers"]["value"] == customers_on_record(date(2026, 5, 31))
    assert figures["customers"]["previous"] == customers_on_record(date(2026, 4, 30))
    # The cards show the same figures, formatted.
    assert number(card_value(response, "active_customers")) == expected["active_customers"]
    assert same_figure(card_value(response, "revenue"), str(expected["revenue"]))
    repeat = Decimal(str(expected["repeat_rate"] * 100)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    assert number(card_value(response, "repeat_rate")) == repeat


def test_kpi_cards_show_changes_and_each_definition(client_as, sales, built):
    response = get_page(client_as(sales), **MAY)
    html = response.content.decode()
    expected = oracle.with_comparisons(oracle.snapshot(), date(2026, 5, 1), date(2026, 5, 31))
    # Rates change in points: retention this May vs May last year.
    rows = {row[0]: row for row in html_table(response, "kpis-table")}
    points = (expected["retention_rate"] - expected["last_year"]["retention_rate"]) * 100
    assert float(number(rows["Retention rate"][5])) == pytest.approx(points, abs=0.05)
    assert rows["Retention rate"][5].endswith("pt")
    assert rows["Retention rate"][3] == "—"  # nobody was active in the period before April
    # Amounts change in per cent of the earlier value.
    revenue = expected["revenue"]
    percent = (revenue - expected["last_year"]["revenue"]) / expected["last_year"]["revenue"] * 100
    assert number(rows["Revenue"][5]) == percent.quantize(Decimal("0.1"), ROUND_HALF_UP)
    for key, definition in [
        ("repeat_rate", "two or more completed purchases"),
        ("retention_rate", "previous equal-length period"),
        ("average_ltv", "cumulative revenue so far"),
    ]:
        assert f'aria-describedby="kpi-def-{key}"' in html
        tip = re.search(rf'id="kpi-def-{key}">(.*?)</span>', html, re.S).group(1)
        assert definition in tip


def test_average_ltv_of_the_customers_acquired_in_the_period(client_as, marketer, built):
    response = get_page(client_as(marketer), **MAY)
    figures = embedded(response, "analytics-figures")["kpis"]["average_ltv"]
    purchases = oracle.snapshot()
    channel_of = dict(Customer.objects.values_list("pk", "channel"))
    by_cohort, _by_channel = oracle.ltv(purchases, channel_of)
    assert Decimal(figures["value"]) == by_cohort[date(2026, 5, 1)][2]
    assert Decimal(figures["last_year"]) == by_cohort[date(2025, 5, 1)][2]
    assert figures["previous"] is None  # nobody's first purchase was in April 2026


def test_pareto_and_deciles_equal_the_oracle(client_as, marketer, built):
    response = get_page(client_as(marketer), **LONG)
    data = embedded(response, "analytics-figures")
    ranked = oracle.ranked_spend(oracle.snapshot(), date(2025, 4, 1), date(2026, 6, 30))
    n, total = len(ranked), sum(spend for _c, spend in ranked)
    deciles = {}
    for i, (_customer, spend) in enumerate(ranked, start=1):
        decile = 10 * (i - 1) // n + 1
        count, revenue = deciles.get(decile, (0, Decimal(0)))
        deciles[decile] = (count + 1, revenue + spend)
    for row in data["deciles"]:
        count, revenue = deciles.get(row["decile"], (0, Decimal(0)))
        assert (row["customers"], Decimal(row["revenue"])) == (count, revenue)
    top = sum(spend for i, (_c, spend) in enumerate(ranked) if 10 * i // n + 1 <= 2)
    assert data["pareto"]["top_20_revenue_share"] == pytest.approx(float(top / total))
    assert data["pareto"]["customers"] == n
    # The page's headline and the decile table say the same.
    html = response.content.decode()
    share = Decimal(str(float(top / total) * 100)).quantize(Decimal("0.1"), ROUND_HALF_UP)
    assert f"<strong>{share}%</strong>" in html
    table = html_table(response, "deciles-table")[1:]
    assert [int(row[1]) for row in table] == [deciles.get(d, (0, 0))[0] for d in range(1, 11)]


def test_cohort_triangle_and_ltv_equal_the_oracle(client_as, marketer, built):
    response = get_page(client_as(marketer), **LONG)
    data = embedded(response, "analytics-figures")
    purchases = oracle.snapshot()
    expected = oracle.cohorts(purchases)
    shown = {date.fromisoformat(row["cohort"]): row for row in data["cohorts"]}
    in_range = {c for c in expected if date(2025, 4, 1) <= c <= date(2026, 6, 1)}
    assert set(shown) == in_range
    for cohort in in_range:
        size, retained = expected[cohort]
        months = (2026 - cohort.year) * 12 + 6 - cohort.month + 1  # through June 2026
        assert shown[cohort]["size"] == size
        assert shown[cohort]["retained"] == retained[:months]
    # The heat-coloured table shows the same retention, in per cent.
    rows = {row[0]: row for row in html_table(response, "cohorts-table")[1:]}
    size, retained = expected[date(2025, 5, 1)]
    assert number(rows["2025-05"][2]) == Decimal("100.0")
    assert number(rows["2025-05"][3]) == (Decimal(retained[1] * 100) / size).quantize(
        Decimal("0.1"), ROUND_HALF_UP
    )

    channel_of = dict(Customer.objects.values_list("pk", "channel"))
    acquired = {
        p.customer
        for p in purchases
        if p.completed
        and date(2025, 4, 1)
        <= min(q.day for q in purchases if q.customer == p.customer and q.completed)
        <= date(2026, 6, 30)
    }
    by_cohort, by_channel = oracle.ltv([p for p in purchases if p.customer in acquired], channel_of)
    for row in data["ltv_cohorts"]:
        customers, revenue, ltv = by_cohort[date.fromisoformat(row["cohort"])]
        assert (row["customers"], Decimal(row["revenue"]), Decimal(row["ltv"])) == (
            customers,
            revenue,
            ltv,
        )
    assert {row["channel"]: Decimal(row["ltv"]) for row in data["ltv_channels"]} == {
        channel: figures[2] for channel, figures in by_channel.items()
    }


def test_rfm_grid_of_the_latest_run_links_to_the_scores_page(client_as, sales, built):
    from tests.segments.score_rows import scored_run

    run, rows = scored_run(40, seed=3, minutes_ago=5)
    response = get_page(client_as(sales), **MAY)
    html = response.content.decode()
    assert f"Scoring run #{run.pk}" in html
    assert 'href="/segments/scores/"' in html
    table = {row[0]: row[1:] for row in html_table(response, "rfm-table")[1:]}
    for r in range(1, 6):
        for f in range(1, 6):
            count = sum(1 for row in rows if (row.r, row.f) == (r, f))
            assert int(table[f"R {r}"][f - 1].replace(",", "")) == count


# --- Filters ------------------------------------------------------------------------------------


def test_prefecture_filter_restricts_every_figure(client_as, marketer, built):
    response = get_page(client_as(marketer), prefecture="13", **MAY)
    data = embedded(response, "analytics-figures")
    members = {built[name].pk for name in ("c1", "c3", "c5")}
    expected = oracle.with_comparisons(
        oracle.snapshot(), date(2026, 5, 1), date(2026, 5, 31), members
    )
    assert_kpis_equal({k: data["kpis"][k]["value"] for k in KPI_KEYS}, expected)
    assert data["kpis"]["customers"]["value"] == customers_on_record(date(2026, 5, 31), members)
    ranked = oracle.ranked_spend(oracle.snapshot(), date(2026, 5, 1), date(2026, 5, 31), members)
    assert data["pareto"]["customers"] == len(ranked)
    assert 'option value="13" selected' in response.content.decode()


def test_segment_and_channel_filters(client_as, marketer, built):
    segment = Segment.objects.create(name="picked")
    for name in ("c1", "c2", "c4"):
        SegmentMember.objects.create(segment=segment, customer=built[name])
    client = client_as(marketer)
    data = embedded(get_page(client, segment=str(segment.pk), **MAY), "analytics-figures")
    members = {built[name].pk for name in ("c1", "c2", "c4")}
    expected = oracle.with_comparisons(
        oracle.snapshot(), date(2026, 5, 1), date(2026, 5, 31), members
    )
    assert_kpis_equal({k: data["kpis"][k]["value"] for k in KPI_KEYS}, expected)

    response = get_page(client, channel="ecommerce", **LONG)
    data = embedded(response, "analytics-figures")
    members = {built[name].pk for name in ("c1", "c5", "c6")}
    expected = oracle.with_comparisons(
        oracle.snapshot(), date(2025, 4, 1), date(2026, 6, 30), members
    )
    assert_kpis_equal({k: data["kpis"][k]["value"] for k in KPI_KEYS}, expected)
    assert [row["channel"] for row in data["ltv_channels"]] == ["ecommerce"]


def test_presets_resolve_to_calendar_periods(client_as, marketer, built):
    from analytics.forms import preset_period

    today = date(2026, 11, 29)
    assert preset_period("this_month", today) == (date(2026, 11, 1), today)
    assert preset_period("last_month", today) == (date(2026, 10, 1), date(2026, 10, 31))
    assert preset_period("this_quarter", today) == (date(2026, 10, 1), today)
    assert preset_period("last_quarter", today) == (date(2026, 7, 1), date(2026, 9, 30))
    assert preset_period("this_year", today) == (date(2026, 1, 1), today)
    assert preset_period("last_12_months", today) == (date(2025, 11, 1), date(2026, 10, 31))
    data = embedded(get_page(client_as(marketer), period="last_month"), "analytics-figures")
    start, end = date.fromisoformat(data["start"]), date.fromisoformat(data["end"])
    assert start.day == 1
    assert end == (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"period": "custom", "start": "2026-13-01", "end": "2026-05-01"}, "start", "valid date"),
        ({"period": "custom", "start": "2026-05-02", "end": "2026-05-01"}, "end", "before"),
        ({"period": "custom", "start": "2010-01-01", "end": "2026-01-01"}, "end", "at most"),
        ({"period": "custom", "start": "1800-01-01", "end": "2026-01-01"}, "start", "between"),
        ({"period": "custom"}, "start", "Enter a date"),
        ({"period": "someday"}, "period", "valid choice"),
        ({"prefecture": "99"}, "prefecture", "valid choice"),
        ({"channel": "=cmd"}, "channel", "valid choice"),
        ({"segment": "999999"}, "segment", "valid choice"),
        ({"segment": "abc"}, "segment", "valid choice"),
    ],
)
def test_bad_filters_are_form_errors_not_server_errors(
    client_as, marketer, built, params, field, message
):
    response = get_page(client_as(marketer), **params)
    html = response.content.decode()
    assert "Some filters are not valid" in html
    block = html[html.index(f'id="id_{field}"') :]
    error = re.search(r'<p class="error" role="alert">(.*?)</p>', block, re.S).group(1)
    assert message in error
    # The figures fall back to the default period, unfiltered.
    data = embedded(response, "analytics-figures")
    assert date.fromisoformat(data["start"]).day == 1


# --- CSV ----------------------------------------------------------------------------------------


def same_figure(page_text: str, csv_text: str) -> bool:
    if page_text == csv_text or (page_text == "—" and csv_text == ""):
        return True
    shown, written = number(page_text), number(csv_text)
    if shown is None or written is None:
        return False
    # The page rounds yen to whole units (the formatting library rounds half to even); the
    # CSV keeps the cents.
    places = Decimal(1).scaleb(shown.as_tuple().exponent)
    return shown in (
        written.quantize(places, ROUND_HALF_UP),
        written.quantize(places, ROUND_HALF_EVEN),
    )


@pytest.mark.parametrize("name", sorted(TABLE_SECTIONS))
def test_each_csv_equals_its_table(client_as, marketer, built, name):
    from tests.segments.score_rows import scored_run

    scored_run(30, seed=5, minutes_ago=5)
    client = client_as(marketer)
    params = {**LONG, "prefecture": "13"} if name != "ltv_channels" else LONG
    page_rows = html_table(get_page(client, **params), f"{name}-table")
    response = client.get(f"/analytics/csv/{name}/", params, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    csv_rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert csv_rows[0] == page_rows[0]  # the same headers
    assert len(csv_rows) == len(page_rows) > 1
    for page_row, csv_row in zip(page_rows[1:], csv_rows[1:], strict=True):
        assert len(page_row) == len(csv_row)
        for shown, written in zip(page_row, csv_row, strict=True):
            assert same_figure(shown, written), (name, page_row, csv_row)


def test_unknown_csv_table_is_a_404(client_as, marketer):
    response = client_as(marketer).get("/analytics/csv/nothing/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 404


def test_parts_computed_in_parallel_threads_give_the_same_figures(
    transactional_db, client_as, marketer, store
):
    """Outside a transaction (as in production) the parts run in threads with their own
    database connections; the figures are the oracle's all the same."""
    rebuild_rollups()
    today = analytics_today()
    goal = create_goal(
        kpi="revenue",
        target_kind="absolute",
        target=Decimal("1000"),
        owner=marketer,
        start=today.replace(day=1),
        end=today,
    )
    response = get_page(client_as(marketer), prefecture="13", **LONG)
    data = embedded(response, "analytics-figures")
    members = {store[name].pk for name in ("c1", "c3", "c5")}
    purchases = oracle.snapshot()
    expected = oracle.with_comparisons(purchases, date(2025, 4, 1), date(2026, 6, 30), members)
    assert_kpis_equal({k: data["kpis"][k]["value"] for k in KPI_KEYS}, expected)
    assert data["kpis"]["customers"]["value"] == customers_on_record(date(2026, 6, 30), members)
    ranked = oracle.ranked_spend(purchases, date(2025, 4, 1), date(2026, 6, 30), members)
    assert data["pareto"]["customers"] == len(ranked)
    sizes = {c: size for c, (size, _r) in oracle.cohorts(purchases, members).items()}
    assert {date.fromisoformat(r["cohort"]): r["size"] for r in data["cohorts"]} == {
        c: n for c, n in sizes.items() if date(2025, 4, 1) <= c <= date(2026, 6, 1)
    }
    # The breakdowns and the goals panel are part of the page.
    html = response.content.decode()
    assert 'id="top-customers"' in html and 'id="timing"' in html
    assert "data-goals-panel" in html
    # The panel's goal was computed in a thread too (its own database connection).
    assert "goals;dur=" in response["Server-Timing"]
    assert f'data-goal="{goal.pk}"' in html
    assert "timing;dur=" in response["Server-Timing"]
    assert "revenue_category;dur=" in response["Server-Timing"]


def test_readers_wait_for_the_filters_pending_prime(transactional_db, store):
    """While the dashboard's first job primes a filter, the parts' readers of its customer set
    wait for it (rather than compute the same), then get the prime's set."""
    import threading

    from django.db import connection

    from analytics.kpis import Filters, customer_set, filter_primer

    snapshot_customers()
    filters = Filters(prefecture="13")
    prime = filter_primer(filters=filters, ends=[date(2026, 6, 30)])
    got = []

    def read() -> None:
        try:
            got.append(customer_set(filters))
        finally:
            connection.close()

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(timeout=0.5)
    assert reader.is_alive() and not got  # waiting for the prime
    prime()
    reader.join(timeout=10)
    assert not reader.is_alive()
    tokyo = set(Customer.objects.filter(prefecture="13").values_list("id", flat=True))
    assert set(got[0]) == tokyo and tokyo
