"""Membership snapshots: dynamic segments re-evaluated, static ones frozen, size history,
one failing segment not stopping the others."""

from __future__ import annotations

import logging

import pytest

from customers.models import Customer
from segments.membership import create_segment, refresh_dynamic_segments, refresh_segment
from segments.models import Segment, SegmentKind, SegmentMember, SegmentSize
from segments.rules import RuleError
from tests.customers.factories import CustomerFactory
from tests.segments.factories import CustomerScoreFactory, ScoringRunFactory, SegmentFactory

TOKYO = {"op": "and", "conditions": [{"field": "prefecture", "op": "in", "value": ["13"]}]}


def members(segment) -> set[int]:
    return set(SegmentMember.objects.filter(segment=segment).values_list("customer_id", flat=True))


def tokyo_ids() -> set[int]:
    return set(Customer.objects.filter(prefecture="13").values_list("id", flat=True))


@pytest.fixture
def customers(db):
    return [CustomerFactory(prefecture=p) for p in ["13", "13", "27", "13", "01"]]


def test_create_segment_validates_saves_and_takes_the_first_snapshot(customers, marketer):
    segment = create_segment(
        name="東京の顧客",
        description="",
        kind=SegmentKind.DYNAMIC,
        rules=TOKYO,
        created_by=marketer,
    )
    assert members(segment) == tokyo_ids() and len(tokyo_ids()) == 3
    assert segment.member_count == 3 and segment.refreshed_at is not None
    assert segment.created_by == marketer
    assert list(segment.sizes.values_list("size", flat=True)) == [3]


def test_create_segment_refuses_invalid_rules_and_saves_nothing(customers):
    bad = {"op": "and", "conditions": [{"field": "prefecture", "op": "in", "value": ["99"]}]}
    with pytest.raises(RuleError) as raised:
        create_segment(name="x", description="", kind=SegmentKind.DYNAMIC, rules=bad)
    assert raised.value.errors[0]["path"] == "conditions.0.value.0"
    assert not SegmentSize.objects.exists()
    assert not Segment.objects.exists()


def test_dynamic_segment_follows_the_data_and_keeps_its_size_history(customers):
    segment = create_segment(name="dyn", description="", kind=SegmentKind.DYNAMIC, rules=TOKYO)
    CustomerFactory(prefecture="13")
    Customer.objects.filter(pk=customers[0].pk).update(prefecture="14")
    run = ScoringRunFactory()
    assert refresh_segment(segment=segment, run=run) == 3
    assert members(segment) == tokyo_ids()
    segment.refresh_from_db()
    assert segment.member_count == 3
    sizes = list(SegmentSize.objects.filter(segment=segment).order_by("measured_at", "id"))
    assert [(s.size, s.run) for s in sizes] == [(3, None), (3, run)]
    Customer.objects.filter(prefecture="13").update(prefecture="27")
    assert refresh_segment(segment=segment) == 0
    assert members(segment) == set()
    segment.refresh_from_db()
    assert segment.member_count == 0
    assert segment.sizes.count() == 3


def test_static_segment_is_frozen_unless_forced(customers):
    segment = create_segment(name="static", description="", kind=SegmentKind.STATIC, rules=TOKYO)
    frozen = members(segment)
    CustomerFactory(prefecture="13")
    assert refresh_segment(segment=segment) == 3
    assert members(segment) == frozen
    assert segment.sizes.count() == 1
    assert refresh_segment(segment=segment, force=True) == 4
    assert members(segment) == tokyo_ids()
    assert segment.sizes.count() == 2


def test_segment_matching_nobody_before_any_scoring_run_has_zero_members(customers):
    rules = {"op": "and", "conditions": [{"field": "rfm_label", "op": "in", "value": ["lost"]}]}
    segment = create_segment(name="lost", description="", kind=SegmentKind.DYNAMIC, rules=rules)
    assert segment.member_count == 0 and members(segment) == set()
    assert list(segment.sizes.values_list("size", flat=True)) == [0]
    run = ScoringRunFactory()
    CustomerScoreFactory(run=run, customer=customers[2], rfm_label="lost")
    assert refresh_segment(segment=segment, run=run) == 1
    assert members(segment) == {customers[2].pk}


def test_refresh_dynamic_segments_carries_on_past_a_broken_segment(customers, caplog):
    good = create_segment(name="good", description="", kind=SegmentKind.DYNAMIC, rules=TOKYO)
    static = create_segment(name="static", description="", kind=SegmentKind.STATIC, rules=TOKYO)
    # Rules saved before a field was withdrawn: they no longer validate.
    broken = SegmentFactory(
        name="broken",
        rules={"op": "and", "conditions": [{"field": "gone", "op": "in", "value": [1]}]},
    )
    later = SegmentFactory(name="later", rules=TOKYO)
    CustomerFactory(prefecture="13")
    run = ScoringRunFactory()
    with caplog.at_level(logging.ERROR, logger="segments.membership"):
        assert refresh_dynamic_segments(run=run) == 2
    assert "broken" in caplog.text
    assert members(good) == members(later) == tokyo_ids() and len(tokyo_ids()) == 4
    assert len(members(static)) == 3
    assert members(broken) == set() and not broken.sizes.exists()
    assert later.sizes.get().run == run
