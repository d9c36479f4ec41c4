"""Live evaluation: counts, samples and breakdowns of the customers a rule selects, checked
against the plain-Python reading of the rules in test_rules."""

from __future__ import annotations

from collections import Counter

import pytest
from django.utils import translation

from segments.evaluation import breakdown, count_matching, matching_customers, sample_matching
from segments.rules import RuleError
from tests.segments.test_rules import TODAY, build_world, expect

RULES = {
    "op": "or",
    "conditions": [
        {"field": "prefecture", "op": "not_in", "value": ["14", "01"]},
        {"field": "rfm_label", "op": "in", "value": ["champions", "lost", "new"]},
    ],
}


@pytest.fixture
def world(db, make_user):
    return build_world(make_user)


def expected(world, rules=RULES):
    return [c for c in world.customers if expect(world, rules, c)]


def test_count_and_members_match_the_rules(world):
    want = expected(world)
    assert 0 < len(want) < len(world.customers)
    assert count_matching(RULES, today=TODAY) == len(want)
    assert set(matching_customers(RULES, today=TODAY).values_list("id", flat=True)) == {
        c.pk for c in want
    }


def test_sample_shows_the_newest_matching_customers(world):
    want = sorted(expected(world), key=lambda c: (c.created_at, c.pk), reverse=True)
    assert [c.pk for c in sample_matching(RULES, limit=5)] == [c.pk for c in want[:5]]
    assert len(sample_matching(RULES, limit=10_000)) == min(len(want), 100)


def test_breakdown_by_prefecture_names_them_in_both_languages(world):
    want = Counter(c.prefecture for c in expected(world))
    with translation.override("en"):
        rows = breakdown(RULES, by="prefecture")
    assert {row["key"]: row["count"] for row in rows} == {k or None: n for k, n in want.items()}
    tokyo = next(row for row in rows if row["key"] == "13")
    assert (tokyo["label"], tokyo["label_ja"], tokyo["label_en"]) == ("Tokyo", "東京都", "Tokyo")
    assert rows[-1] == {"key": None, "label": "No prefecture", "count": want[""]}
    assert [row["key"] for row in rows[:-1]] == sorted(row["key"] for row in rows[:-1])
    with translation.override("ja"):
        assert next(r for r in breakdown(RULES, by="prefecture") if r["key"] == "27")["label"] == (
            "大阪府"
        )


def test_breakdown_by_rfm_label_counts_the_unscored_apart(world):
    members = expected(world)
    want = Counter(world.scores[c.pk].rfm_label for c in members if c.pk in world.scores)
    unscored = sum(1 for c in members if c.pk not in world.scores)
    with translation.override("en"):
        rows = breakdown(RULES, by="rfm_label")
    assert {row["key"]: row["count"] for row in rows if row["key"]} == dict(want)
    assert rows[-1] == {"key": None, "label": "Not scored", "count": unscored}
    assert sum(row["count"] for row in rows) == len(members)
    champions = next(row for row in rows if row["key"] == "champions")
    assert champions["label"] == "Champions"


def test_breakdown_by_decile_in_decile_order(world):
    members = expected(world)
    want = Counter(world.scores[c.pk].decile for c in members if c.pk in world.scores)
    with translation.override("en"):
        rows = [row for row in breakdown(RULES, by="decile") if row["key"] is not None]
    assert [(row["key"], row["count"]) for row in rows] == sorted(want.items())
    assert rows[0]["label"] == f"Decile {rows[0]['key']}"


def test_breakdown_refuses_an_unknown_dimension_and_bad_rules(world):
    with pytest.raises(ValueError):
        breakdown(RULES, by="gender")
    with pytest.raises(RuleError):
        count_matching({"op": "and", "conditions": [{"field": "nope", "op": "in", "value": []}]})
