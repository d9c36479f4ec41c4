"""KPIs, cohorts, LTV, deciles and Pareto from the rollups equal an independent computation
over the raw purchases (tests/analytics/oracle.py)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from analytics.cohorts import average_ltv, cohort_table, ltv_by_channel, ltv_by_cohort
from analytics.deciles import decile_table, pareto_table
from analytics.kpis import Filters, kpis, kpis_with_comparisons
from analytics.rollups import rebuild_rollups, refresh_rollups
from customers.models import Customer
from segments.models import Segment, SegmentMember
from tests.analytics import oracle
from tests.analytics.conftest import jst

PERIODS = [
    (date(2025, 5, 1), date(2025, 5, 31)),
    (date(2025, 5, 3), date(2025, 5, 3)),
    (date(2025, 5, 2), date(2025, 5, 2)),
    (date(2026, 5, 1), date(2026, 5, 31)),
    (date(2026, 4, 1), date(2026, 6, 30)),
    (date(2025, 7, 1), date(2026, 6, 30)),
    (date(2025, 4, 15), date(2026, 6, 1)),
    (date(2026, 6, 1), date(2026, 6, 1)),
]


def assert_same(actual: dict, expected: dict, where: str = "") -> None:
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_same(actual[key], value, f"{where}{key}.")
        elif isinstance(value, float):
            assert actual[key] == pytest.approx(value), f"{where}{key}"
        else:
            assert actual[key] == value, f"{where}{key}: {actual[key]!r} != {value!r}"


def customers_at(end: date) -> int:
    cut = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=oracle.TOKYO)
    return sum(
        1
        for c in Customer.objects.all()
        if c.created_at < cut and (c.erased_at is None or c.erased_at >= cut)
    )


@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_kpis_equal_the_definitions(store, start, end):
    rebuild_rollups()
    expected = oracle.with_comparisons(oracle.snapshot(), start, end)
    actual = kpis_with_comparisons(start=start, end=end)
    assert_same(actual, expected)
    assert actual["customers"] == customers_at(end)
    assert actual["previous"]["customers"] == customers_at(actual["previous"]["end"])
    assert kpis(start=start, end=end)["revenue"] == expected["revenue"]


def test_a_purchase_at_half_past_midnight_counts_on_that_local_day(store):
    rebuild_rollups()
    assert kpis(start=date(2025, 5, 3), end=date(2025, 5, 3))["revenue"] == Decimal("333.33")
    on_the_2nd = kpis(start=date(2025, 5, 2), end=date(2025, 5, 2))
    assert on_the_2nd["purchases"] == 2  # c2's two orders; c1's 00:30 order is not one of them
    assert on_the_2nd["revenue"] == Decimal("300.01")


def test_cancelled_and_refunded_purchases_are_left_out(store):
    rebuild_rollups()
    figures = kpis(start=date(2025, 5, 15), end=date(2025, 5, 15))
    assert (figures["purchases"], figures["active_customers"]) == (0, 0)
    may = kpis(start=date(2026, 5, 3), end=date(2026, 5, 3))
    assert may["revenue"] == Decimal("0.00")


def test_zero_denominators_give_none(store):
    rebuild_rollups()
    empty = kpis_with_comparisons(start=date(2030, 1, 1), end=date(2030, 1, 31))
    for key in (
        "aov",
        "purchases_per_customer",
        "spend_per_customer",
        "repeat_rate",
        "retention_rate",
        "churn_rate",
    ):
        assert empty[key] is None, key
    assert empty["revenue"] == Decimal("0.00")
    assert empty["customers"] == 7
    # Active customers now but nobody in the previous period: retention has no base.
    first_ever = kpis(start=date(2024, 5, 5), end=date(2024, 5, 5))
    assert first_ever["active_customers"] == 1
    assert first_ever["retention_rate"] is None


def test_the_customer_count_excludes_later_records_and_erased_ones(store):
    rebuild_rollups()
    assert kpis(start=date(2026, 5, 1), end=date(2026, 5, 14))["customers"] == 6
    assert kpis(start=date(2026, 5, 1), end=date(2026, 5, 15))["customers"] == 7
    Customer.objects.filter(external_id="c7").update(erased_at=jst(2026, 7, 1, 12))
    assert kpis(start=date(2026, 6, 1), end=date(2026, 6, 30))["customers"] == 7
    assert kpis(start=date(2026, 7, 1), end=date(2026, 7, 1))["customers"] == 6


@pytest.mark.parametrize(
    "filters",
    [
        Filters(prefecture="13"),
        Filters(channel="ecommerce"),
        Filters(prefecture="27", channel="ecommerce"),
        "segment",
    ],
)
def test_filtered_kpis_count_only_matching_customers(store, filters):
    if filters == "segment":
        segment = Segment.objects.create(name="picked")
        for name in ("c1", "c4"):
            SegmentMember.objects.create(segment=segment, customer=store[name])
        filters = Filters(segment=segment.pk)
    rebuild_rollups()
    members = set(filters.customers().values_list("id", flat=True))
    for start, end in PERIODS:
        expected = oracle.with_comparisons(oracle.snapshot(), start, end, members)
        assert_same(kpis_with_comparisons(start=start, end=end, filters=filters), expected)


def test_a_back_dated_purchase_moves_the_first_purchase(store, shop):
    rebuild_rollups()
    june = kpis(start=date(2025, 6, 1), end=date(2025, 6, 30))
    assert june["new_customers"] == 1  # c3: the May order was cancelled
    shop.buy(store["c3"], jst(2025, 3, 1, 9), "10")
    refresh_rollups()
    purchases = oracle.snapshot()
    for start, end in [*PERIODS, (date(2025, 3, 1), date(2025, 3, 31))]:
        assert_same(
            kpis_with_comparisons(start=start, end=end),
            oracle.with_comparisons(purchases, start, end),
        )
    assert kpis(start=date(2025, 6, 1), end=date(2025, 6, 30))["new_customers"] == 0
    assert kpis(start=date(2025, 6, 1), end=date(2025, 6, 30))["repeat_rate"] == 1
    cohorts = {row["cohort"]: row for row in cohort_table()}
    assert store["c3"].pk and cohorts[date(2025, 3, 1)]["size"] == 1


def test_cohort_retention_equals_the_definition(store):
    rebuild_rollups()
    purchases = oracle.snapshot()
    expected = oracle.cohorts(purchases)
    table = cohort_table()
    assert [row["cohort"] for row in table] == sorted(expected)
    for row in table:
        size, retained = expected[row["cohort"]]
        assert row["size"] == size
        assert row["retained"] == retained
        assert row["retention"] == [n / size for n in retained]
    tokyo = set(Customer.objects.filter(prefecture="13").values_list("id", flat=True))
    expected_tokyo = oracle.cohorts(purchases, tokyo)
    for row in cohort_table(filters=Filters(prefecture="13")):
        size, retained = expected_tokyo[row["cohort"]]
        assert row["size"] == size
        assert row["retained"][: len(retained)] == retained
    later = cohort_table(start_month=date(2025, 5, 9), end_month=date(2025, 6, 30))
    assert [row["cohort"] for row in later] == [date(2025, 5, 1), date(2025, 6, 1)]


def test_ltv_by_cohort_and_channel_equal_the_definition(store):
    rebuild_rollups()
    channel_of = dict(Customer.objects.values_list("id", "channel"))
    by_cohort, by_channel = oracle.ltv(oracle.snapshot(), channel_of)
    table = ltv_by_cohort()
    assert {r["cohort"]: (r["customers"], r["revenue"], r["ltv"]) for r in table} == by_cohort
    for row in table:
        assert row["cumulative_ltv"][-1] == row["ltv"]
    may_2025 = next(r for r in table if r["cohort"] == date(2025, 5, 1))
    # c2 only (c1 started in April): 300.01 in May 2025, + 999.99 in April 2026 (k = 11).
    assert may_2025["cumulative_ltv"][0] == Decimal("300.01")
    assert may_2025["cumulative_ltv"][11] == Decimal("1300.00")
    channels = {r["channel"]: (r["customers"], r["revenue"], r["ltv"]) for r in ltv_by_channel()}
    assert channels == by_channel
    overall = average_ltv()
    assert overall["customers"] == 6
    assert overall["ltv"] == oracle.cents(overall["revenue"] / 6)
    assert average_ltv(channel="store")["customers"] == by_channel["store"][0]


@pytest.mark.parametrize(("start", "end"), PERIODS)
def test_deciles_and_pareto_equal_the_definition(store, start, end):
    rebuild_rollups()
    ranked = oracle.ranked_spend(oracle.snapshot(), start, end)
    n, total = len(ranked), sum((s for _c, s in ranked), Decimal(0))
    table = decile_table(start=start, end=end)
    for row in table:
        chosen = [s for i, (_c, s) in enumerate(ranked) if (10 * i) // n + 1 == row["decile"]]
        assert row["customers"] == len(chosen)
        assert row["revenue"] == sum(chosen, Decimal(0))
        assert row["max_spend"] == (max(chosen) if chosen else None)
    pareto = pareto_table(start=start, end=end)
    classes, before = {"A": [], "B": [], "C": []}, Decimal(0)
    for _c, s in ranked:
        share = before / total if total else Decimal(0)
        classes["A" if share < Decimal("0.8") else "B" if share < Decimal("0.95") else "C"].append(
            s
        )
        before += s
    for row in pareto["classes"]:
        assert row["customers"] == len(classes[row["pareto_class"]])
        assert row["revenue"] == sum(classes[row["pareto_class"]], Decimal(0))
    top = [s for i, (_c, s) in enumerate(ranked) if (10 * i) // n + 1 <= 2]
    assert pareto["top_20_customers"] == len(top)
    if total:
        assert pareto["top_20_revenue_share"] == pytest.approx(float(sum(top) / total))
        assert pareto["curve"][-1]["revenue_share"] == pytest.approx(1.0)


def test_deciles_order_ties_by_customer_id(shop):
    customers = [shop.customer(f"t{n}") for n in range(10)]
    for customer in customers:
        shop.buy(customer, jst(2026, 1, 5, 12), "100")
    rebuild_rollups()
    from analytics.deciles import customer_revenue

    ids, _spend = customer_revenue(start=date(2026, 1, 1), end=date(2026, 1, 31))
    assert list(ids) == sorted(c.pk for c in customers)
    assert [
        row["customers"] for row in decile_table(start=date(2026, 1, 1), end=date(2026, 1, 31))
    ] == [1] * 10


def test_large_amounts_and_counts_survive_the_compact_storage(shop):
    big = shop.customer("big", prefecture="13")
    small = shop.customer("small", prefecture="13")
    for hour in range(20):  # 300 purchases on one day: a count above 255
        for minute in range(15):
            shop.buy(small, jst(2026, 2, 3, hour, minute), "0.01")
    shop.buy(big, jst(2026, 2, 3, 10), "98765432.10")  # above 2**31 in cents
    rebuild_rollups()
    start = end = date(2026, 2, 3)
    expected = oracle.with_comparisons(oracle.snapshot(), start, end)
    assert_same(
        kpis_with_comparisons(start=start, end=end, filters=Filters(prefecture="13")), expected
    )
    assert decile_table(start=start, end=end)[0]["revenue"] == Decimal("98765432.10")
