"""Segment rules on campaigns: "opened", "clicked in" and "did not open" campaign X, optionally
in the last N days, from human events only (the tracking drain's first_opened_at /
first_clicked_at). Machine opens (Apple Mail Privacy Protection), scanner clicks, bounced and
never-reached customers are each checked against what a marketer means by the words."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone, translation
from rest_framework.test import APIClient

from campaigns import tracking
from campaigns.models import Campaign, MessageStatus
from customers.models import Customer
from segments import columnar, columns
from segments.describing import describe_rules
from segments.evaluation import count_matching
from segments.models import ScoringRun
from segments.rules import RuleError, compile_rules, field_catalogue, validate_rules
from tests.campaigns.tracking_factories import make_campaign, make_message
from tests.conftest import wait_for
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
DAY = 24 * 3600
SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Safari/605.1.15"
)
APPLE_PRIVACY_PROXY = "Mozilla/5.0"  # what Apple Mail Privacy Protection's prefetch sends


def event(message, kind: str, *, days_ago: float, user_agent: str = SAFARI) -> None:
    """One pixel fetch or click, ``days_ago`` days back, through the tracking drain's intake
    (classified as a person or a machine as a real request would be)."""
    link_id = message.campaign.links.order_by("pk").first().pk if kind == tracking.CLICK else None
    hit = tracking.make_hit(
        kind=kind,
        message_id=message.pk,
        link_id=link_id,
        method="GET",
        ip="203.0.113.7",
        user_agent=user_agent,
    )
    at = timezone.now() - timedelta(days=days_ago)
    tracking.ingest([replace(hit, at=at.timestamp())])


@pytest.fixture
def world():
    """Campaign "spring" sent 30 days ago (one late message 2 days ago, as an automation or a
    resumed send would), and an "other" campaign."""
    spring, variant = make_campaign()
    other, other_variant = make_campaign()
    people = {
        name: CustomerFactory(family_name=name)
        for name in (
            "recent_opener",
            "old_opener",
            "privacy_proxy",
            "unopened",
            "late_unopened",
            "bounced",
            "other_only",
            "never_sent",
        )
    }

    def sent(name, *, days_ago=30, status=MessageStatus.SENT, campaign=spring, v=variant):
        return make_message(
            campaign, v, customer=people[name], status=status, sent_ago=days_ago * DAY
        )

    recent = sent("recent_opener")
    event(recent, tracking.OPEN, days_ago=2)
    event(recent, tracking.CLICK, days_ago=2)
    old = sent("old_opener")
    event(old, tracking.OPEN, days_ago=20)
    # A machine open and a scanner click (no user agent): the person never looked.
    proxied = sent("privacy_proxy")
    event(proxied, tracking.OPEN, days_ago=29, user_agent=APPLE_PRIVACY_PROXY)
    event(proxied, tracking.CLICK, days_ago=29, user_agent="")
    sent("unopened")
    sent("late_unopened", days_ago=2)
    sent("bounced", status=MessageStatus.BOUNCED)
    elsewhere = sent("other_only", campaign=other, v=other_variant)
    event(elsewhere, tracking.OPEN, days_ago=1)
    event(elsewhere, tracking.CLICK, days_ago=1)
    return spring, other, people


def condition(field: str, campaign: Campaign, days: int | None = None) -> dict:
    return {"field": field, "op": "is", "value": {"campaign": campaign.pk, "days": days}}


def only(cond: dict) -> dict:
    return {"op": "and", "conditions": [cond]}


def names(tree: dict) -> set[str]:
    matched = Customer.objects.filter(compile_rules(tree))
    return set(matched.values_list("family_name", flat=True))


def test_the_machine_events_are_real_and_flagged(world):
    _spring, _other, people = world
    proxied = people["privacy_proxy"].campaign_messages.get()
    assert proxied.opened_by_machine and proxied.first_opened_at is None
    assert proxied.first_clicked_at is None
    assert proxied.events.filter(is_machine=True).count() == 2


def test_opened_counts_human_opens_only(world):
    spring, other, _people = world
    assert names(only(condition("opened_campaign", spring))) == {"recent_opener", "old_opener"}
    assert names(only(condition("opened_campaign", other))) == {"other_only"}


def test_clicked_counts_human_clicks_only(world):
    spring, _other, _people = world
    assert names(only(condition("clicked_campaign", spring))) == {"recent_opener"}


def test_did_not_open_means_received_it_and_no_human_open(world):
    spring, _other, _people = world
    # A machine open is no open; a bounced message or no message at all is not "received".
    assert names(only(condition("not_opened_campaign", spring))) == {
        "privacy_proxy",
        "unopened",
        "late_unopened",
    }


def test_days_limit_to_recent_opens_clicks_and_sends(world):
    spring, _other, _people = world
    assert names(only(condition("opened_campaign", spring, days=7))) == {"recent_opener"}
    assert names(only(condition("opened_campaign", spring, days=25))) == {
        "recent_opener",
        "old_opener",
    }
    assert names(only(condition("clicked_campaign", spring, days=1))) == set()
    assert names(only(condition("clicked_campaign", spring, days=3))) == {"recent_opener"}
    # "Did not open" with days: received (sent) in the last days and not opened.
    assert names(only(condition("not_opened_campaign", spring, days=7))) == {"late_unopened"}


def test_campaign_conditions_combine_with_the_others(world):
    spring, other, people = world
    people["unopened"].prefecture = "27"
    people["unopened"].save(update_fields=["prefecture"])
    tree = {
        "op": "or",
        "conditions": [
            condition("clicked_campaign", other),
            {
                "op": "and",
                "conditions": [
                    condition("not_opened_campaign", spring),
                    {"field": "prefecture", "op": "in", "value": ["27"]},
                ],
            },
        ],
    }
    assert names(tree) == {"other_only", "unopened"}


def test_unknown_campaigns_and_bad_values_are_named_at_their_place(world):
    spring, _other, _people = world
    tree = {
        "op": "and",
        "conditions": [
            {"field": "opened_campaign", "op": "is", "value": {"campaign": 987654, "days": None}},
            {"field": "clicked_campaign", "op": "is", "value": {"campaign": "spring"}},
            {
                "field": "not_opened_campaign",
                "op": "is",
                "value": {"campaign": spring.pk, "days": -1},
            },
            {"field": "opened_campaign", "op": "in", "value": {"campaign": spring.pk}},
            {"field": "opened_campaign", "op": "is", "value": spring.pk},
            {"field": "opened_campaign", "op": "is", "value": {"campaign": spring.pk, "when": 3}},
        ],
    }
    with translation.override("en"), pytest.raises(RuleError) as raised:
        validate_rules(tree)
    errors = {error["path"]: error["message"] for error in raised.value.errors}
    assert errors == {
        "conditions.0.value.campaign": "There is no campaign with the ID 987654.",
        "conditions.1.value.campaign": "Choose a campaign.",
        "conditions.2.value.days": "Enter a number of at least 0.",
        "conditions.3.op": errors["conditions.3.op"],
        "conditions.4.value": "Expected an object with the keys campaign, days.",
        "conditions.5.value.when": "Unknown key.",
    }
    assert "does not take the operator" in errors["conditions.3.op"]


def test_the_builder_offers_sent_campaigns_and_describes_the_rule(world):
    spring, other, _people = world
    Campaign.objects.create(name="下書き", segment=spring.segment)  # a draft: nothing to target
    spring.name = "春のセール"
    spring.save(update_fields=["name"])
    with translation.override("en"):
        fields = {entry["key"]: entry for entry in field_catalogue()}
        rules = validate_rules(only(condition("opened_campaign", spring, days=7)))
        lines = describe_rules(rules)
    offered = fields["opened_campaign"]
    assert offered["type"] == "campaign"
    assert offered["group_label"] == "Behaviour"
    assert {choice["label"] for choice in offered["choices"]} == {"春のセール", other.name}
    assert {"clicked_campaign", "not_opened_campaign"} <= set(fields)
    assert [line["text"] for line in lines] == [
        "Opened the campaign: 春のセール in the last 7 days"
    ]


def test_live_count_through_the_api(world, marketer):
    spring, _other, _people = world
    client = APIClient()
    client.force_authenticate(marketer)
    url = "/api/v1/segments/preview/"
    rules = only(condition("not_opened_campaign", spring))
    response = client.post(url, {"rules": rules}, format="json", **EN)
    assert response.status_code == 200
    assert response.json()["count"] == 3
    bad = only({"field": "opened_campaign", "op": "is", "value": {"campaign": 987654}})
    response = client.post(url, {"rules": bad}, format="json", **EN)
    assert response.status_code == 400
    attrs = {error["attr"] for error in response.json()["errors"]}
    assert attrs == {"rules.conditions.0.value.campaign"}


def test_live_count_on_the_builder_page(world, client_as, marketer):
    spring, _other, _people = world
    client = client_as(marketer)
    page = client.get("/segments/new/", **EN).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    rules = json.dumps(only(condition("opened_campaign", spring)))
    response = client.post(
        "/segments/preview/", {"rules": rules, "csrfmiddlewaretoken": token}, **EN
    )
    assert response.status_code == 200
    assert re.search(r'data-count="(\d+)"', response.content.decode()).group(1) == "2"


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the columnar path is PostgreSQL's")
def test_the_column_snapshot_asks_sql_for_campaign_conditions(world, settings, tmp_path):
    spring, other, _people = world
    settings.SEGMENT_COLUMNS_DIR = str(tmp_path / "columns")
    try:
        columns.build_snapshot()
        run = ScoringRun.objects.latest_succeeded()
        tree = {
            "op": "or",
            "conditions": [
                condition("opened_campaign", spring, days=7),
                condition("not_opened_campaign", spring),
                {"field": "email_opt_in", "op": "is", "value": False},
            ],
        }
        found = columnar.match(tree, run=run)
        assert found is not None, "no fresh snapshot"
        want = set(Customer.objects.filter(compile_rules(tree)).values_list("id", flat=True))
        assert set(found.snapshot.ids[found.mask].tolist()) == want
        assert count_matching(only(condition("clicked_campaign", other))) == 1
        # A new open needs no new snapshot: the campaign part is read from SQL each time.
        unopened = Customer.objects.get(family_name="unopened").campaign_messages.get()
        event(unopened, tracking.OPEN, days_ago=0)
        assert count_matching(only(condition("opened_campaign", spring))) == 3
    finally:
        wait_for(lambda: not columns._thread_guard.locked())
