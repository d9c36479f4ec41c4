"""Dashboard breakdowns (analytics.breakdowns): purchase timing, revenue by prefecture, sales
channel and category, top customers; each figure equals an independent computation from the
raw purchases (tests/analytics/oracle.py), filtered or not, and stays equal through the
incremental refresh and the nightly verification; their API, CSV downloads and page part."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.utils import translation
from rest_framework.test import APIClient

from analytics import packed_months
from analytics.breakdown_tables import RATE, TABLES, breakdown_table, breakdowns_context, show
from analytics.breakdowns import DIMENSIONS, purchase_timing, revenue_by, top_customers
from analytics.customer_attributes import snapshot_customers
from analytics.kpis import Filters
from analytics.models import BreakdownCell, PackedMonth
from analytics.rollups import (
    mark_dirty,
    mismatched_breakdown_days,
    rebuild_rollups,
    refresh_rollups,
)
from customers.models import Customer, Product, Purchase, PurchaseItem, PurchaseStatus
from segments.models import Segment, SegmentMember
from tests.analytics import oracle
from tests.analytics.conftest import jst

PERIODS = [
    (date(2024, 1, 1), date(2026, 12, 31)),  # everything, whole months
    (date(2025, 5, 2), date(2026, 5, 31)),  # a partial month, then whole ones
    (date(2025, 5, 3), date(2025, 5, 3)),  # one day: the 00:30 JST purchase
    (date(2026, 5, 10), date(2026, 6, 1)),  # days of two months
]


@pytest.fixture
def shop_items(store):
    """The store's purchases with sales channels and items: itemised exactly, partly (the
    rest has no category), with a discount (items above the total), on a product without
    category, and without items."""
    food = Product.objects.create(sku="F1", name="Rice", category="Food", price=250)
    drink = Product.objects.create(sku="D1", name="Tea", category="Drink", price=600)
    loose = Product.objects.create(sku="X1", name="Bag", category="", price=999)

    def purchase(customer, total):
        return Purchase.objects.get(customer=store[customer], total=Decimal(total))

    def items(p, *lines):
        for product, quantity, price in lines:
            PurchaseItem.objects.create(
                purchase=p, product=product, quantity=quantity, unit_price=Decimal(price)
            )

    items(purchase("c1", "1000.50"), (food, 2, "250"), (drink, 1, "500.50"))
    items(purchase("c1", "2500"), (food, 1, "2000"))
    items(purchase("c2", "999.99"), (loose, 1, "999.99"))
    items(purchase("c6", "1640"), (drink, 3, "600"))
    items(purchase("c4", "120"), (food, 1, "120"))
    channels = {
        "1000.50": "ecommerce",
        "333.33": "ecommerce",
        "2500": "store",
        "100.01": "phone",
        "200": "store",
        "999.99": "ecommerce",
        "120": "subscription",
        "1640": "ecommerce",
    }
    for total, channel in channels.items():
        Purchase.objects.filter(total=Decimal(total)).update(channel=channel)
    return store


def members_of(filters: Filters) -> set[int] | None:
    if not filters:
        return None
    return set(filters.customers().values_list("id", flat=True))


def assert_match(start: date, end: date, filters: Filters | None = None) -> None:
    members = members_of(filters) if filters else None
    cells = purchase_timing(start=start, end=end, filters=filters)
    assert len(cells) == 7 * 24
    assert {
        (c["weekday"], c["hour"]): (c["purchases"], c["revenue"]) for c in cells if c["purchases"]
    } == oracle.timing(start, end, members)
    for dimension in DIMENSIONS:
        rows = revenue_by(dimension, start=start, end=end, filters=filters)
        expected = oracle.revenue_by(dimension, start, end, members)
        assert [(r["key"], r["purchases"], r["customers"], r["revenue"]) for r in rows] == expected
        total = sum(r["revenue"] for r in rows)
        for row in rows:
            assert row["share"] == pytest.approx(float(row["revenue"] / total) if total else None)
    top = top_customers(start=start, end=end, filters=filters)
    assert [
        (r["customer_id"], r["purchases"], r["revenue"], r["last_purchase"]) for r in top
    ] == oracle.top_customers(start, end, members)


def test_every_figure_equals_the_raw_purchases(shop_items):
    rebuild_rollups()
    for start, end in PERIODS:
        assert_match(start, end)


def test_filters_restrict_every_figure_to_the_matching_customers(shop_items):
    segment = Segment.objects.create(name="vip")
    for name in ("c1", "c4"):
        SegmentMember.objects.create(segment=segment, customer=shop_items[name])
    rebuild_rollups()
    for filters in (
        Filters(prefecture="13"),
        Filters(channel="ecommerce"),
        Filters(segment=segment.pk),
        Filters(prefecture="13", channel="store"),
        Filters(prefecture="47"),  # nobody
    ):
        for start, end in PERIODS:
            assert_match(start, end, filters)


def test_the_refresh_adds_hour_month_cells_to_cells_built_before_them(shop_items):
    rebuild_rollups()
    BreakdownCell.objects.filter(dimension="hour", is_month=True).delete()
    refresh_rollups()
    assert BreakdownCell.objects.filter(dimension="hour", is_month=True).exists()
    for filters in (None, Filters(prefecture="13")):
        for start, end in PERIODS:
            assert_match(start, end, filters)


def test_a_purchase_at_half_past_midnight_counts_on_its_local_day_and_hour(shop_items):
    rebuild_rollups()
    day = date(2025, 5, 3)  # c1's purchase at 00:30 JST, 2 May 15:30 UTC
    cells = purchase_timing(start=day, end=day)
    busy = [
        (c["weekday"], c["hour"], c["purchases"], c["revenue"]) for c in cells if c["purchases"]
    ]
    assert busy == [(day.weekday(), 0, 1, Decimal("333.33"))]
    assert revenue_by("prefecture", start=day, end=day)[0]["key"] == "13"


def test_categories_follow_the_stated_rule_and_add_up_to_the_revenue(shop_items):
    rebuild_rollups()
    start, end = date(2024, 1, 1), date(2026, 12, 31)
    with translation.override("en"):
        rows = {r["key"]: r for r in revenue_by("category", start=start, end=end)}
        channels = {r["key"]: r["label"] for r in revenue_by("channel", start=start, end=end)}
    # Drink: 500.50 (c1) + 3 x 600 (c6, whose total is 1640: a 160 discount under "").
    assert rows["Drink"]["revenue"] == Decimal("2300.50")
    assert rows["Food"]["revenue"] == Decimal("2620.00")  # 500 + 2000 + 120
    assert rows[""]["label"] == "No category"
    revenue = sum(p.total for p in oracle.snapshot() if p.completed)
    assert sum(r["revenue"] for r in rows.values()) == revenue
    assert channels["ecommerce"] == "E-commerce" and channels[""] == "No sales channel recorded"


def cells_state() -> list[tuple]:
    return sorted(
        BreakdownCell.objects.values_list(
            "day", "is_month", "dimension", "key", "purchases", "revenue", "customers", "amounts"
        ).order_by()
    )


def test_the_incremental_refresh_keeps_the_cells_equal_to_a_rebuild(shop_items, shop):
    rebuild_rollups()
    late = shop.buy(shop_items["c3"], jst(2026, 6, 30, 23, 30), "300")
    PurchaseItem.objects.create(
        purchase=late, product=Product.objects.get(sku="F1"), quantity=2, unit_price=150
    )
    shop.buy(shop_items["c5"], jst(2026, 7, 1, 0, 30), "75")
    cancelled = Purchase.objects.get(total=Decimal("2500"))
    cancelled.status = PurchaseStatus.CANCELLED
    cancelled.save(update_fields=["status"])
    mark_dirty(dates=[date(2026, 5, 20)])
    refresh_rollups()
    refreshed = cells_state()
    for start, end in [*PERIODS, (date(2026, 6, 1), date(2026, 7, 31))]:
        assert_match(start, end)
        assert_match(start, end, Filters(prefecture="13"))
    rebuild_rollups()
    assert refreshed == cells_state()


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "customers table"])
def test_a_customer_who_moves_counts_under_the_new_prefecture_at_once(shop_items, snapshot):
    rebuild_rollups()
    Customer.objects.filter(pk=shop_items["c2"].pk).update(prefecture="01")
    if snapshot:  # as the refresh task takes one after every refresh
        snapshot_customers()
    # No refresh, no verification: there are no prefecture cells to go stale.
    for start, end in PERIODS:
        assert_match(start, end)
        assert_match(start, end, Filters(prefecture="01"))
    assert mismatched_breakdown_days() == []
    assert not BreakdownCell.objects.filter(dimension="prefecture").exists()


def test_revenue_by_prefecture_from_the_snapshot_equals_the_customers_table(shop_items):
    rebuild_rollups()
    without = [revenue_by("prefecture", start=s, end=e) for s, e in PERIODS]
    snapshot_customers()
    assert [revenue_by("prefecture", start=s, end=e) for s, e in PERIODS] == without
    for filters in (Filters(prefecture="13"), Filters(channel="ecommerce")):
        for start, end in PERIODS:
            assert_match(start, end, filters)


def packed_rows() -> list[tuple]:
    return sorted(
        (
            row.dimension,
            row.month,
            row.keys,
            bytes(row.starts),
            bytes(row.customers),
            bytes(row.amounts),
            bytes(row.counts),
        )
        for row in PackedMonth.objects.all()
    )


def filtered_figures(filters: list[Filters]) -> dict:
    return {
        (f, p): (
            purchase_timing(start=p[0], end=p[1], filters=f),
            *(revenue_by(d, start=p[0], end=p[1], filters=f) for d in ("channel", "category")),
        )
        for f in filters
        for p in PERIODS
    }


def test_filtered_breakdowns_read_the_packed_months_or_else_the_cells(shop_items, shop):
    segment = Segment.objects.create(name="some")
    for name in ("c1", "c2", "c6"):
        SegmentMember.objects.create(segment=segment, customer=shop_items[name])
    rebuild_rollups()
    assert {row.dimension for row in PackedMonth.objects.all()} == {"hour", "channel", "category"}
    filters = [Filters(prefecture="13"), Filters(segment=segment.pk)]
    with_rows = filtered_figures(filters)
    for f in filters:
        for start, end in PERIODS:
            assert_match(start, end, f)
    built = packed_rows()
    # Rollups built before the packed rows: the same figures from the cells, and the next
    # refresh writes the rows.
    PackedMonth.objects.all().delete()
    assert filtered_figures(filters) == with_rows
    refresh_rollups()
    assert packed_rows() == built
    # Some months' rows only (a write interrupted): the others from their cells.
    PackedMonth.objects.filter(month__gte=date(2026, 1, 1)).delete()
    assert filtered_figures(filters) == with_rows
    assert packed_months.add_missing() > 0
    assert packed_rows() == built
    # The incremental refresh rewrites a changed month's rows as a rebuild would.
    shop.buy(shop_items["c1"], jst(2026, 5, 20, 21, 15), "410")
    refresh_rollups()
    refreshed = packed_rows()
    rebuild_rollups()
    assert refreshed == packed_rows() != built
    for f in filters:
        for start, end in PERIODS:
            assert_match(start, end, f)


def test_cells_of_rollups_built_before_them_are_built_by_the_next_refresh(shop_items):
    rebuild_rollups()
    expected = cells_state()
    BreakdownCell.objects.all().delete()
    refresh_rollups()
    assert cells_state() == expected


def test_an_unknown_dimension_is_refused():
    with pytest.raises(ValueError):
        revenue_by("colour", start=date(2026, 1, 1), end=date(2026, 1, 31))


# --- API ---------------------------------------------------------------------------------------


@pytest.fixture
def api(sales):
    client = APIClient()
    client.force_authenticate(sales)
    return client


def get(client, name, **params):
    return client.get(f"/api/v1/analytics/{name}/", params, HTTP_ACCEPT_LANGUAGE="en")


def test_the_api_answers_the_figures(api, shop_items):
    rebuild_rollups()
    period = {"start": "2025-05-02", "end": "2026-05-31"}
    body = get(api, "timing", **period).json()
    assert len(body["cells"]) == 168 and body["refreshed_at"]
    saturday_midnight = body["cells"][5 * 24]
    assert (saturday_midnight["weekday"], saturday_midnight["hour"]) == (5, 0)
    assert saturday_midnight["revenue"] == "333.33"
    body = get(api, "revenue-by", dimension="channel", **period).json()
    expected = oracle.revenue_by("channel", date(2025, 5, 2), date(2026, 5, 31))
    assert [(r["key"], r["revenue"]) for r in body["rows"]] == [
        (key, str(revenue)) for key, _n, _c, revenue in expected
    ]
    assert body["title"] == "Revenue by sales channel of the purchase"
    body = get(api, "top-customers", limit=2, prefecture="13", **period).json()
    expected = oracle.top_customers(
        date(2025, 5, 2), date(2026, 5, 31), members_of(Filters(prefecture="13")), limit=2
    )
    assert [(r["customer_id"], r["revenue"]) for r in body["customers"]] == [
        (cid, str(revenue)) for cid, _n, revenue, _last in expected
    ]


@pytest.mark.parametrize(
    ("name", "params", "attr", "code"),
    [
        ("revenue-by", {"dimension": "colour"}, "dimension", "invalid_choice"),
        ("revenue-by", {}, "dimension", "required"),
        ("timing", {"start": "2026-13-01"}, "start", "invalid"),
        ("timing", {"start": "2026-06-01"}, "end", "before_start"),
        ("top-customers", {"limit": "0"}, "limit", "min_value"),
        ("top-customers", {"end": "yesterday"}, "end", "invalid"),
    ],
)
def test_bad_queries_are_400_in_the_standard_format(api, name, params, attr, code):
    query = {"start": "2026-05-01", "end": "2026-05-31", "dimension": "prefecture"}
    if name == "revenue-by" and "dimension" not in params:
        query.pop("dimension")
    response = get(api, name, **{**query, **params})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error"
    assert {"attr": attr, "code": code} == {k: body["errors"][0][k] for k in ("attr", "code")}


def test_an_unknown_segment_is_a_404(api):
    response = get(api, "timing", start="2026-05-01", end="2026-05-31", segment=999)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


@pytest.mark.parametrize("name", ["timing", "revenue-by", "top-customers"])
def test_only_staff_with_the_permission_may_read(name, db, make_user, marketer, admin_member):
    params = {"start": "2026-05-01", "end": "2026-05-31", "dimension": "category"}
    assert get(APIClient(), name, **params).status_code in (401, 403)
    nobody = APIClient()
    nobody.force_authenticate(make_user(None, username="no-role"))
    assert get(nobody, name, **params).status_code == 403
    for user in (marketer, admin_member):
        client = APIClient()
        client.force_authenticate(user)
        assert get(client, name, **params).status_code == 200


def test_the_schema_documents_the_breakdown_routes(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for name in ("timing", "revenue-by", "top-customers"):
        assert f"/api/v1/analytics/{name}/" in schema["paths"]
    parameters = schema["paths"]["/api/v1/analytics/revenue-by/"]["get"]["parameters"]
    assert "dimension" in {p["name"] for p in parameters}


# --- Page part and CSV --------------------------------------------------------------------------

QUERY = {"period": "custom", "start": "2025-05-02", "end": "2026-05-31", "prefecture": "13"}


def as_csv(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"  # in the organisation's time zone, as the page
    return str(value)


def test_each_csv_download_equals_its_table(client_as, marketer, shop_items):
    rebuild_rollups()
    client = client_as(marketer)
    filters = Filters(prefecture="13")
    for name in TABLES:
        response = client.get(
            f"/analytics/csv/breakdowns/{name}/", QUERY, HTTP_ACCEPT_LANGUAGE="en"
        )
        assert response.status_code == 200
        text = b"".join(response.streaming_content).decode("utf-8").lstrip("\ufeff")
        rows = list(csv.reader(io.StringIO(text)))
        with translation.override("en"):
            table = breakdown_table(
                name, start=date(2025, 5, 2), end=date(2026, 5, 31), filters=filters
            )
        assert rows[0] == [str(h) for h in table.headers]
        assert len(rows) - 1 == len(table.rows)
        for written, row in zip(rows[1:], table.rows, strict=True):
            assert written == [as_csv(v) for v in row]
    assert client.get("/analytics/csv/breakdowns/nothing/", QUERY).status_code == 404


def test_the_csv_downloads_need_the_dashboard_permission(client_as, make_user, db):
    client = client_as(make_user(None, username="no-role"))
    response = client.get("/analytics/csv/breakdowns/timing_purchases/")
    assert response.status_code in (302, 403)


def test_the_page_part_shows_every_chart_with_its_table_and_download(marketer, shop_items):
    rebuild_rollups()
    with translation.override("en"):
        context = breakdowns_context(start=date(2024, 1, 1), end=date(2026, 12, 31), filters=None)
        request = RequestFactory().get("/analytics/")
        request.user = marketer
        html = render_to_string(
            "analytics/_breakdowns.html",
            {"breakdowns": context, "query": "period=custom"},
            request=request,
        )
    for name in TABLES:
        assert f'id="{name}-table"' in html
        assert f"/analytics/csv/breakdowns/{name}/?period=custom" in html
    for dimension in DIMENSIONS:
        assert f'id="breakdown-{dimension}-chart"' in html
    assert 'id="breakdown-chart-data"' in html
    assert {"Food", "Drink", "No category"} == set(context["chart_data"]["category"]["labels"])
    c1 = shop_items["c1"]
    assert f'href="/customers/{c1.pk}/"' in html
    assert "<script>" not in html  # no inline script: the charts come from the static file


def test_shares_are_shown_rounded_half_up():
    # Django's number format alone would cut the digits off: 13.0% shown as 12.9%.
    assert show(0.12968, RATE) == "13.0%"
    assert show(0.00063, RATE) == "0.1%"
    assert show(0.125, RATE) == "12.5%"
