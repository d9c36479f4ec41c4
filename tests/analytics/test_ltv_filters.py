"""LTV (average, by cohort, by source channel) restricted by every filter and grouped by the
customers' current source channel equals the oracle over raw purchases, whether it is read
from the lifetime arrays built with the snapshot or computed without them; without a filter,
from the totals stored with the arrays, with the same figures as the arrays'."""

from __future__ import annotations

from datetime import date

import pytest
from pyroaring import BitMap
from rest_framework.test import APIClient

from analytics.cohorts import average_ltv, ltv_by_channel, ltv_by_cohort
from analytics.customer_attributes import (
    channel_totals,
    fresh_lifetimes,
    fresh_totals,
    snapshot_customers,
    snapshot_lifetimes,
)
from analytics.kpis import Filters, customer_set
from analytics.models import CustomerLifetime
from analytics.rollups import rebuild_rollups, refresh_rollups
from analytics.tasks import refresh_analytics
from customers.models import Customer
from segments.models import Segment, SegmentMember
from tests.analytics import oracle
from tests.analytics.conftest import jst
from tests.analytics.test_dashboard import LONG, MAY, embedded, get_page

CASES = [
    {"prefecture": "13"},
    {"segment": True},
    {"channel": "ecommerce"},
    {"prefecture": "13", "channel": "ecommerce"},
    {"segment": True, "channel": "store"},
    {"prefecture": "47"},  # nobody
]


@pytest.fixture
def segment(store):
    picked = Segment.objects.create(name="picked")
    for name in ("c1", "c2", "c4", "c6"):
        SegmentMember.objects.create(segment=picked, customer=store[name])
    return picked


def build(*, lifetimes: bool) -> None:
    """What the refresh task does, with or without the lifetime arrays (as when the arrays
    were not rebuilt since the rollups changed)."""
    rebuild_rollups()
    snapshot_customers()
    if lifetimes:
        snapshot_lifetimes()
    assert (fresh_lifetimes() is not None) == lifetimes


def filters_of(case: dict, segment: Segment) -> Filters:
    return Filters(
        prefecture=case.get("prefecture"),
        channel=case.get("channel"),
        segment=segment.pk if case.get("segment") else None,
    )


def members_of(filters: Filters) -> set[int]:
    """The matching customers, read plainly from the tables."""
    members = {
        c.pk
        for c in Customer.objects.all()
        if filters.prefecture in (None, c.prefecture) and filters.channel in (None, c.channel)
    }
    if filters.segment is not None:
        members &= set(
            SegmentMember.objects.filter(segment_id=filters.segment).values_list(
                "customer_id", flat=True
            )
        )
    return members


def channels() -> dict[int, str]:
    return dict(Customer.objects.values_list("pk", "channel"))


def figures(rows: list[dict], key: str) -> dict:
    return {row[key]: (row["customers"], row["revenue"], row["ltv"]) for row in rows}


def assert_ltv_equals_oracle(customers, members, first_month=None, last_month=None) -> None:
    months = {"start_month": first_month, "end_month": last_month}
    by_cohort, by_channel, average = oracle.ltv_of(
        oracle.snapshot(), channels(), members, first_month, last_month
    )
    table = ltv_by_cohort(**months, customers=customers)
    assert figures(table, "cohort") == by_cohort
    assert figures(ltv_by_channel(**months, customers=customers), "channel") == by_channel
    found = average_ltv(**months, customers=customers)
    assert (found["customers"], found["revenue"], found["ltv"]) == average
    cumulative = oracle.cumulative_ltv(oracle.snapshot(), members)
    for row in table:
        assert row["cumulative_ltv"] == cumulative[row["cohort"]]


@pytest.mark.parametrize("lifetimes", [True, False], ids=["arrays", "computed"])
@pytest.mark.parametrize("case", CASES)
def test_ltv_of_the_filtered_customers_equals_the_oracle(store, segment, case, lifetimes):
    build(lifetimes=lifetimes)
    filters = filters_of(case, segment)
    members = members_of(filters)
    customers = customer_set(filters)
    assert set(customers) == members
    assert_ltv_equals_oracle(customers, members)
    assert_ltv_equals_oracle(customers, members, date(2025, 5, 1), date(2026, 5, 1))


def test_unfiltered_ltv_is_the_same_from_the_arrays_and_the_cohort_cells(store):
    build(lifetimes=False)
    from_cells = (ltv_by_cohort(), ltv_by_channel(), average_ltv())
    snapshot_lifetimes()
    assert fresh_lifetimes() is not None
    assert (ltv_by_cohort(), ltv_by_channel(), average_ltv()) == from_cells
    assert_ltv_equals_oracle(None, None)
    assert average_ltv()["customers"] == 6  # c5 never bought


RANGES = [(None, None), (date(2025, 5, 1), date(2026, 5, 1)), (date(2026, 5, 1), None)]


def everyone_through_the_arrays(first_month=None, last_month=None) -> tuple:
    """The three LTV figures of every customer, given as a set: the per-customer arrays'
    path, where no set reads the stored totals."""
    everyone = BitMap(Customer.objects.values_list("pk", flat=True))
    months = {"start_month": first_month, "end_month": last_month, "customers": everyone}
    return (
        ltv_by_cohort(**months, cumulative=False),
        ltv_by_channel(**months),
        average_ltv(**months),
    )


def unfiltered(first_month=None, last_month=None) -> tuple:
    months = {"start_month": first_month, "end_month": last_month}
    by_cohort = ltv_by_cohort(**months, cumulative=False)
    return by_cohort, ltv_by_channel(**months), average_ltv(**months)


def assert_totals_equal_the_arrays_and_the_oracle() -> None:
    totals = fresh_totals()
    assert totals is not None and channel_totals(totals) is not None  # the totals are read
    for first_month, last_month in RANGES:
        assert unfiltered(first_month, last_month) == everyone_through_the_arrays(
            first_month, last_month
        )
        assert_ltv_equals_oracle(None, None, first_month, last_month)


def test_unfiltered_ltv_from_the_totals_equals_the_arrays_and_the_oracle(store):
    build(lifetimes=True)
    assert_totals_equal_the_arrays_and_the_oracle()
    by_cohort = {cohort: row[0] for cohort, row in figures(unfiltered()[0], "cohort").items()}
    assert by_cohort == {  # c5 never bought; c3's cancelled May purchase does not count
        date(2024, 5, 1): 1,  # c6
        date(2025, 4, 1): 1,  # c1
        date(2025, 5, 1): 1,  # c2
        date(2025, 6, 1): 1,  # c3
        date(2026, 5, 1): 1,  # c4
        date(2026, 6, 1): 1,  # c7
    }


def test_totals_are_rebuilt_with_the_lifetime_and_used_only_while_they_hold(store, shop):
    build(lifetimes=True)
    before = fresh_totals()
    # A new customer snapshot (a channel edited meanwhile) and the same rollups: the arrays
    # stay fresh but the totals' channels are an older snapshot's; by channel reads the
    # arrays (with the new snapshot's channels), by cohort still the totals.
    store["c3"].channel = "line"
    store["c3"].save()
    snapshot_customers()
    assert fresh_totals() == before and channel_totals(before) is None
    assert figures(ltv_by_channel(), "channel")["line"][0] == 2
    assert unfiltered() == everyone_through_the_arrays()
    assert_ltv_equals_oracle(None, None)
    # Rebuilt with the lifetime: channels of the new snapshot, read again from the totals.
    snapshot_lifetimes()
    assert fresh_totals() != before
    assert_totals_equal_the_arrays_and_the_oracle()
    assert figures(ltv_by_channel(), "channel")["line"][0] == 2
    # New purchases: the rollups moved on, the totals (and arrays) are not used until rebuilt.
    shop.buy(store["c5"], jst(2026, 6, 5, 10), "4321")
    refresh_rollups()
    assert fresh_totals() is None
    assert_ltv_equals_oracle(None, None)
    snapshot_lifetimes()
    assert_totals_equal_the_arrays_and_the_oracle()


def test_a_lifetime_row_without_totals_is_read_from_its_arrays(store):
    build(lifetimes=True)
    expected = unfiltered()
    CustomerLifetime.objects.update(totals=None)  # a row built before the totals existed
    assert fresh_totals() is None and fresh_lifetimes() is not None
    assert unfiltered() == expected
    assert_ltv_equals_oracle(None, None)


def test_an_edited_source_channel_moves_the_customer_after_the_refresh(store):
    refresh_analytics()  # the first run builds everything
    assert fresh_lifetimes() is not None
    store["c3"].channel = "line"
    store["c3"].save()
    # Until the next refresh, the snapshot's channels (as every filter's).
    before = figures(ltv_by_channel(), "channel")
    assert before["store"][0] == 2 and before["line"][0] == 1
    refresh_analytics()
    assert fresh_lifetimes() is not None
    after = figures(ltv_by_channel(), "channel")
    assert after["store"][0] == 1 and after["line"][0] == 2
    assert_ltv_equals_oracle(None, None)
    line = Filters(channel="line")
    assert_ltv_equals_oracle(customer_set(line), members_of(line))
    assert [row["cohort"] for row in ltv_by_cohort(customers=customer_set(line))] == [
        date(2025, 6, 1),  # c3
        date(2026, 5, 1),  # c4
    ]


def test_lifetime_arrays_of_older_rollups_are_not_used(store, shop):
    build(lifetimes=True)
    shop.buy(store["c5"], jst(2026, 6, 5, 10), "4321")  # c5's first purchase
    shop.buy(store["c2"], jst(2026, 6, 6, 10), "66.60")
    refresh_rollups()
    assert fresh_lifetimes() is None
    tokyo = Filters(prefecture="13")
    assert_ltv_equals_oracle(customer_set(tokyo), members_of(tokyo))
    assert_ltv_equals_oracle(None, None)
    snapshot_lifetimes()
    assert fresh_lifetimes() is not None
    assert_ltv_equals_oracle(customer_set(tokyo), members_of(tokyo))


@pytest.mark.parametrize("lifetimes", [True, False], ids=["arrays", "computed"])
def test_the_dashboard_ltv_follows_every_filter(client_as, marketer, store, segment, lifetimes):
    build(lifetimes=lifetimes)
    client = client_as(marketer)
    for case in CASES:
        filters = filters_of(case, segment)
        params = {k: str(v) for k, v in vars(filters).items() if v is not None}
        members = members_of(filters)
        response = get_page(client, **params, **LONG)
        data = embedded(response, "analytics-figures")
        by_cohort, by_channel, _average = oracle.ltv_of(
            oracle.snapshot(), channels(), members, date(2025, 4, 1), date(2026, 6, 1)
        )
        shown = {date.fromisoformat(row["cohort"]): row for row in data["ltv_cohorts"]}
        assert {c: (r["customers"], r["revenue"], r["ltv"]) for c, r in shown.items()} == {
            cohort: (n, str(revenue), str(ltv)) for cohort, (n, revenue, ltv) in by_cohort.items()
        }
        assert {row["channel"]: row["ltv"] for row in data["ltv_channels"]} == {
            channel: str(ltv) for channel, (_n, _revenue, ltv) in by_channel.items()
        }
        assert "filter only" not in response.content.decode()

        kpis = embedded(get_page(client, **params, **MAY), "analytics-figures")["kpis"]
        for block, month in (("value", date(2026, 5, 1)), ("last_year", date(2025, 5, 1))):
            _c, _ch, (_n, _revenue, ltv) = oracle.ltv_of(
                oracle.snapshot(), channels(), members, month, month
            )
            assert kpis["average_ltv"][block] == (None if ltv is None else str(ltv))
        assert kpis["average_ltv"]["previous"] is None  # nobody's first purchase in April 2026


@pytest.mark.parametrize("lifetimes", [True, False], ids=["arrays", "computed"])
def test_the_api_accepts_the_filters(store, segment, sales, lifetimes):
    build(lifetimes=lifetimes)
    api = APIClient()
    api.force_authenticate(sales)
    for case in CASES:
        filters = filters_of(case, segment)
        params = {k: v for k, v in vars(filters).items() if v is not None}
        response = api.get("/api/v1/analytics/ltv/", {**params, "start": "2025-05-01"})
        assert response.status_code == 200
        body = response.json()
        members = members_of(filters)
        by_cohort, by_channel, average = oracle.ltv_of(
            oracle.snapshot(), channels(), members, date(2025, 5, 1)
        )
        cumulative = oracle.cumulative_ltv(oracle.snapshot(), members)
        assert {
            date.fromisoformat(row["cohort"]): (row["customers"], row["revenue"], row["ltv"])
            for row in body["by_cohort"]
        } == {
            cohort: (n, str(revenue), str(ltv)) for cohort, (n, revenue, ltv) in by_cohort.items()
        }
        for row in body["by_cohort"]:
            expected = cumulative[date.fromisoformat(row["cohort"])]
            assert row["cumulative_ltv"] == [str(value) for value in expected]
        assert {row["channel"]: row["customers"] for row in body["by_channel"]} == {
            channel: n for channel, (n, _revenue, _ltv) in by_channel.items()
        }
        assert body["average"]["customers"] == average[0]
    missing = api.get("/api/v1/analytics/ltv/", {"segment": segment.pk + 1000})
    assert missing.status_code == 404
    assert api.get("/api/v1/analytics/ltv/", {"prefecture": "zz"}).status_code == 400


def test_a_buyer_created_after_the_snapshot_counts_under_their_channel(store, shop):
    build(lifetimes=True)
    late = shop.customer("late", prefecture="13", channel="line")
    shop.buy(late, jst(2026, 6, 10, 9), "700")
    refresh_rollups()
    snapshot_lifetimes()  # the customer snapshot is still the one before them
    assert fresh_lifetimes() is not None
    assert figures(ltv_by_channel(), "channel")["line"][0] == 2  # c4 and them
    assert [row[0] for row in fresh_totals().late] == [late.pk]
    assert_totals_equal_the_arrays_and_the_oracle()
    tokyo = Filters(prefecture="13")
    assert late.pk in customer_set(tokyo)
    assert_ltv_equals_oracle(customer_set(tokyo), members_of(tokyo))
    # Their channel is read live, as for any customer created since the snapshot.
    late.channel = "store"
    late.save()
    assert figures(ltv_by_channel(), "channel")["line"][0] == 1
    assert_totals_equal_the_arrays_and_the_oracle()
