"""Goals: progress on a hand-computed shop for each status and kind of target, the percent
input of the form, the pages, the dashboard panel and the API with each role's rights.

The shop (every purchase at noon, Tokyo time), and the figures worked out by hand:

- Q4 2025 (1 Oct - 30 Dec, the 91 days before the baseline period): a and d buy.
- The baseline period of a Q2 2026 goal (31 Dec 2025 - 31 Mar 2026, 91 days): a 1000,
  b 1000, c 2000: revenue 4000, 3 purchases, retention 1/2 ({a, d} -> a), churn 1/2.
- Q2 2026 (1 Apr - 30 Jun, 91 days): a 3000 (5 Apr), b 1000 (20 Apr), d 1000 (15 Jun):
  revenue 5000, retention 2/3 ({a, b, c} -> a, b), churn 1/3.
- Up to 30 April (day 30 of 91): revenue 4000; the 30 days before (2-31 March) only c was
  active and c did not come back: retention 0, churn 1.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.test import Client
from django.utils import translation
from rest_framework.test import APIClient

from analytics.forms_goals import GoalForm
from analytics.goals import GoalStatus, create_goal, goal_progress, update_goal
from analytics.models import Goal, GoalKpi, GoalTargetKind
from analytics.rollups import rebuild_rollups
from tests.analytics.conftest import jst

Q2 = {"start": date(2026, 4, 1), "end": date(2026, 6, 30)}
MID_Q2 = date(2026, 4, 30)
AFTER_Q2 = date(2026, 7, 15)
ABSOLUTE, CHANGE = GoalTargetKind.ABSOLUTE, GoalTargetKind.CHANGE


@pytest.fixture
def shop_data(shop):
    since = jst(2025, 1, 1)
    a, b, c, d = (shop.customer(name, created=since) for name in "abcd")
    shop.buy(a, jst(2025, 11, 10, 12), "500")
    shop.buy(d, jst(2025, 11, 15, 12), "500")
    shop.buy(a, jst(2026, 1, 10, 12), "1000")
    shop.buy(b, jst(2026, 2, 10, 12), "1000")
    shop.buy(c, jst(2026, 3, 10, 12), "2000")
    shop.buy(a, jst(2026, 4, 5, 12), "3000")
    shop.buy(b, jst(2026, 4, 20, 12), "1000")
    shop.buy(d, jst(2026, 6, 15, 12), "1000")
    rebuild_rollups()
    return {"a": a, "b": b, "c": c, "d": d}


def goal(owner, kpi, target, *, kind=ABSOLUTE, today=MID_Q2, **period) -> Goal:
    return create_goal(
        kpi=kpi,
        target_kind=kind,
        target=Decimal(target),
        owner=owner,
        today=today,
        **(period or Q2),
    )


# --- Progress ---------------------------------------------------------------------------------


def test_revenue_ahead_of_its_pace_is_on_track(shop_data, marketer):
    progress = goal_progress(goal(marketer, GoalKpi.REVENUE, "12000"), today=MID_Q2)
    assert progress.actual == Decimal("4000")
    assert progress.expected == Decimal("3956.043956")  # 12000 x 30 / 91
    assert progress.attainment == pytest.approx(1 / 3)
    assert progress.percent == 33
    assert (progress.elapsed_days, progress.days) == (30, 91)
    assert progress.status == GoalStatus.ON_TRACK


def test_revenue_behind_its_pace_is_off_track(shop_data, marketer):
    progress = goal_progress(goal(marketer, GoalKpi.REVENUE, "13000"), today=MID_Q2)
    assert progress.expected == Decimal("4285.714286")  # 13000 x 30 / 91
    assert progress.status == GoalStatus.OFF_TRACK


def test_a_cumulative_kpi_that_reached_its_target_is_achieved_before_the_end(shop_data, marketer):
    progress = goal_progress(goal(marketer, GoalKpi.REVENUE, "3500"), today=MID_Q2)
    assert progress.status == GoalStatus.ACHIEVED
    assert progress.percent == 100


def test_a_goal_that_has_not_begun(shop_data, marketer):
    later = goal(marketer, GoalKpi.PURCHASES, "10", start=date(2026, 7, 1), end=date(2026, 9, 30))
    progress = goal_progress(later, today=MID_Q2)
    assert progress.status == GoalStatus.NOT_STARTED
    assert (progress.actual, progress.attainment, progress.percent) == (None, None, 0)
    assert later.baseline is None  # its previous period (Q2) is not over


def test_a_rate_in_progress_is_held_to_the_target_itself(shop_data, marketer):
    # Churn so far: 1 (c, active in March, has not come back in April); lower is better.
    progress = goal_progress(goal(marketer, GoalKpi.CHURN_RATE, "0.4"), today=MID_Q2)
    assert progress.actual == Decimal(1)
    assert progress.expected == Decimal("0.4")
    assert progress.attainment == pytest.approx(0.4)  # target / actual
    assert progress.status == GoalStatus.OFF_TRACK
    assert goal_progress(goal(marketer, GoalKpi.CHURN_RATE, "1"), today=MID_Q2).status == (
        GoalStatus.ON_TRACK
    )


@pytest.mark.parametrize(
    ("kpi", "change", "target", "attainment", "status"),
    [
        # Retention 1/2 -> 2/3: +10 points reached (2/3 >= 0.6), +20 points missed.
        (GoalKpi.RETENTION_RATE, "0.10", Decimal("0.6"), (2 / 3 - 0.5) / 0.1, "achieved"),
        (GoalKpi.RETENTION_RATE, "0.20", Decimal("0.7"), (2 / 3 - 0.5) / 0.2, "missed"),
        # Churn 1/2 -> 1/3, lower is better: -10 points reached, -20 points missed.
        (GoalKpi.CHURN_RATE, "-0.10", Decimal("0.4"), (1 / 3 - 0.5) / -0.1, "achieved"),
        (GoalKpi.CHURN_RATE, "-0.20", Decimal("0.3"), (1 / 3 - 0.5) / -0.2, "missed"),
        # Revenue 4000 -> 5000: +10% (4400) reached, +50% (6000) missed.
        (GoalKpi.REVENUE, "0.10", Decimal("4400"), 1000 / 400, "achieved"),
        (GoalKpi.REVENUE, "0.50", Decimal("6000"), 1000 / 2000, "missed"),
    ],
)
def test_a_past_change_goal(shop_data, marketer, kpi, change, target, attainment, status):
    progress = goal_progress(goal(marketer, kpi, change, kind=CHANGE), today=AFTER_Q2)
    assert progress.target_value == target
    assert progress.attainment == pytest.approx(attainment, abs=1e-5)
    assert progress.as_of == Q2["end"]
    assert progress.status == status


def test_past_absolute_goals(shop_data, marketer):
    met = goal_progress(goal(marketer, GoalKpi.PURCHASES, "3"), today=AFTER_Q2)
    short = goal_progress(goal(marketer, GoalKpi.PURCHASES, "4"), today=AFTER_Q2)
    assert (met.actual, met.status) == (Decimal(3), GoalStatus.ACHIEVED)
    assert (short.status, short.attainment) == (GoalStatus.MISSED, 0.75)


def test_the_baseline_is_frozen_at_creation(shop_data, shop, marketer):
    retention = goal(marketer, GoalKpi.REVENUE, "0.10", kind=CHANGE)
    assert retention.baseline == Decimal("4000")
    # A purchase back-dated into the baseline period does not move the goal's baseline.
    shop.buy(shop_data["c"], jst(2026, 3, 20, 12), "6000")
    rebuild_rollups()
    assert goal_progress(retention, today=AFTER_Q2).target_value == Decimal("4400")
    # Editing the KPI or the period measures against the new previous period.
    for end in (date(2026, 6, 30), date(2026, 6, 29)):
        update_goal(
            goal=retention,
            kpi=GoalKpi.REVENUE,
            start=date(2026, 4, 1),
            end=end,
            target_kind=CHANGE,
            target=Decimal("0.10"),
            owner=marketer,
            today=AFTER_Q2,
        )
        if end == Q2["end"]:
            assert retention.baseline == Decimal("4000")  # same KPI and period: kept
    assert retention.baseline == Decimal("10000")  # 1 Jan - 31 Mar: 1000 + 1000 + 2000 + 6000


def test_a_goal_set_ahead_freezes_its_baseline_once_it_starts(shop_data, marketer):
    ahead = goal(marketer, GoalKpi.REVENUE, "0.10", kind=CHANGE, today=date(2026, 3, 1))
    assert ahead.baseline is None
    assert goal_progress(ahead, today=date(2026, 3, 31)).status == GoalStatus.NOT_STARTED
    progress = goal_progress(ahead, today=MID_Q2)
    assert Goal.objects.get(pk=ahead.pk).baseline == Decimal("4000")
    assert progress.target_value == Decimal("4400")


# --- Form: percent input and errors -----------------------------------------------------------


def form(**data) -> GoalForm:
    fields = {"kpi": "revenue", "target_kind": "absolute", "target": "1000", **Q2, **data}
    return GoalForm(fields, today=AFTER_Q2)


@pytest.mark.parametrize(
    ("data", "stored"),
    [
        ({"kpi": "retention_rate", "target": "35"}, Decimal("0.35")),
        ({"kpi": "retention_rate", "target_kind": "change", "target": "5"}, Decimal("0.05")),
        ({"kpi": "churn_rate", "target_kind": "change", "target": "-2.5"}, Decimal("-0.025")),
        ({"kpi": "revenue", "target_kind": "change", "target": "10"}, Decimal("0.1")),
        ({"kpi": "revenue", "target": "1000000"}, Decimal("1000000")),
    ],
)
def test_rates_and_changes_are_typed_in_percent(shop_data, marketer, data, stored):
    bound = form(owner=marketer.pk, **data)
    assert bound.is_valid(), bound.errors
    assert bound.cleaned_data["target"] == stored


@pytest.mark.parametrize(
    ("kpi", "stored", "shown"),
    [
        (GoalKpi.REPEAT_RATE, "0.125", "12.5"),
        (GoalKpi.REPEAT_RATE, "1", "100"),
        (GoalKpi.REVENUE, "1000000", "1000000"),
    ],
)
def test_editing_shows_what_was_typed(shop_data, marketer, kpi, stored, shown):
    saved = goal(marketer, kpi, stored)
    assert str(GoalForm(instance=saved).initial["target"]) == shown


@pytest.mark.parametrize(
    ("data", "field", "code"),
    [
        ({"kpi": "repeat_rate", "target": "150"}, "target", "above_100"),
        ({"target": "-1"}, "target", "negative"),
        ({"kpi": "purchases", "target": "10.5"}, "target", "not_whole"),
        ({"end": "2026-03-01"}, "end", "before_start"),
        ({"end": "2046-03-01"}, "end", "too_long"),
        ({"target_kind": "change", "target": "0"}, "target", "zero_change"),
        (
            {"kpi": "churn_rate", "target_kind": "change", "target": "5"},
            "target",
            "wrong_direction",
        ),
        ({"target_kind": "change", "target": "-5"}, "target", "wrong_direction"),
        # Nothing was bought in the 91 days before Q2 2025: no baseline to change.
        (
            {"target_kind": "change", "target": "5", "start": "2025-04-01", "end": "2025-06-30"},
            "target_kind",
            "no_baseline",
        ),
        ({"target": "abc"}, "target", "invalid"),
        ({"kpi": "nope"}, "kpi", "invalid_choice"),
    ],
)
def test_bad_input_gets_a_form_error(shop_data, marketer, data, field, code):
    bound = form(owner=marketer.pk, **data)
    assert not bound.is_valid()
    assert code in [error.code for error in bound.errors.as_data()[field]]


# --- Pages ------------------------------------------------------------------------------------


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


NEW_GOAL = {
    "kpi": "retention_rate",
    "target_kind": "change",
    "target": "5",
    "start": "2026-04-01",
    "end": "2026-06-30",
    "note": "Win back the spring buyers",
}


def test_a_marketer_creates_edits_and_deletes_a_goal(shop_data, marketer):
    client = page_client(marketer)
    response = client.post(
        "/analytics/goals/new/", {**NEW_GOAL, "owner": marketer.pk}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 302
    saved = Goal.objects.get()
    assert (saved.target, saved.baseline, saved.created_by) == (
        Decimal("0.05"),
        Decimal("0.5"),
        marketer,
    )
    listing = client.get("/analytics/goals/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Retention rate" in listing and "+5 points" in listing
    assert 'data-goal-status="' in listing and "How progress and status are computed" in listing
    edit = f"/analytics/goals/{saved.pk}/edit/"
    assert 'value="5"' in client.get(edit).content.decode()
    response = client.post(edit, {**NEW_GOAL, "target": "150", "owner": marketer.pk})
    assert response.status_code == 200  # the form again, with its error
    assert (
        "100 points"
        in client.post(
            edit, {**NEW_GOAL, "target": "150", "owner": marketer.pk}, HTTP_ACCEPT_LANGUAGE="en"
        ).content.decode()
    )
    assert client.post(edit, {**NEW_GOAL, "target": "8", "owner": marketer.pk}).status_code == 302
    assert Goal.objects.get().target == Decimal("0.08")
    delete = f"/analytics/goals/{saved.pk}/delete/"
    assert client.get(delete).status_code == 200
    assert client.post(delete).status_code == 302
    assert not Goal.objects.exists()


def test_the_list_filters(shop_data, marketer, sales):
    goal(marketer, GoalKpi.REVENUE, "12000")
    goal(sales, GoalKpi.PURCHASES, "5", start=date(2026, 1, 1), end=date(2026, 3, 31))
    client = page_client(sales)
    current = client.get("/analytics/goals/", {"state": "current", "kpi": ""}).context["rows"]
    past = client.get("/analytics/goals/", {"state": "past"}).context["rows"]
    mine = client.get("/analytics/goals/", {"owner": sales.pk}).context["rows"]
    # "Today" is the real date: both goals are past by now.
    assert [row.goal.kpi for row in past] == ["revenue", "purchases"]
    assert current == []
    assert [row.goal.owner for row in mine] == [sales]
    bad = client.get("/analytics/goals/", {"state": "nonsense", "owner": "x"})
    assert bad.status_code == 200 and len(bad.context["rows"]) == 2


def test_sales_read_goals_but_cannot_manage_them(shop_data, marketer, sales):
    saved = goal(marketer, GoalKpi.REVENUE, "12000")
    client = page_client(sales)
    listing = client.get("/analytics/goals/", HTTP_ACCEPT_LANGUAGE="en")
    assert listing.status_code == 200 and "New goal" not in listing.content.decode()
    assert client.get("/analytics/goals/new/").status_code == 403
    assert client.post("/analytics/goals/new/", {**NEW_GOAL, "owner": sales.pk}).status_code == 403
    assert client.get(f"/analytics/goals/{saved.pk}/edit/").status_code == 403
    assert client.post(f"/analytics/goals/{saved.pk}/delete/").status_code == 403
    assert Goal.objects.count() == 1


def test_an_admin_manages_goals(shop_data, admin_member):
    client = page_client(admin_member)
    response = client.post("/analytics/goals/new/", {**NEW_GOAL, "owner": admin_member.pk})
    assert response.status_code == 302
    assert client.get("/analytics/goals/999999/edit/").status_code == 404


# --- Dashboard panel --------------------------------------------------------------------------


def render_panel(user, today) -> str:
    template = Template("{% load goal_tags %}{% goals_panel user today %}")
    with translation.override("en"):
        return template.render(Context({"user": user, "today": today}))


def test_the_panel_shows_current_goals_with_their_status(shop_data, marketer, sales):
    goal(marketer, GoalKpi.REVENUE, "12000")
    goal(marketer, GoalKpi.REVENUE, "13000")
    goal(marketer, GoalKpi.PURCHASES, "1", start=date(2025, 1, 1), end=date(2025, 3, 31))
    html = render_panel(sales, MID_Q2)
    assert html.count("data-goal=") == 2  # the 2025 goal ended long ago
    assert "goal-on_track" in html and ">On track</span>" in html
    assert "goal-off_track" in html and ">Off track</span>" in html
    assert "/analytics/goals/?state=current" in html
    assert "New goal" not in html  # sales may not add
    assert "New goal" in render_panel(marketer, MID_Q2)


def test_the_panel_is_empty_for_anonymous_visitors(shop_data):
    from django.contrib.auth.models import AnonymousUser

    assert "data-goals-panel" not in render_panel(AnonymousUser(), MID_Q2)


# --- API --------------------------------------------------------------------------------------


def api_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


API = "/api/v1/analytics/goals/"


def test_the_api_creates_goals_with_read_only_progress(shop_data, marketer):
    client = api_client(marketer)
    body = {
        "kpi": "revenue",
        "target_kind": "change",
        "target": "0.10",
        "start": "2026-04-01",
        "end": "2026-06-30",
        "baseline": "1",
        "progress": {"status": "achieved"},
    }
    response = client.post(API, body, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert (data["owner"], data["created_by"], data["baseline"]) == (
        marketer.pk,
        marketer.pk,
        "4000.000000",
    )
    assert data["progress"]["target_value"] == "4400.000000"
    assert data["progress"]["status"] in {s.value for s in GoalStatus}
    goal_id = data["id"]
    response = client.patch(f"{API}{goal_id}/", {"target": "0.2"}, format="json")
    assert response.status_code == 200
    assert response.json()["progress"]["target_value"] == "4800.000000"
    listed = client.get(API, {"kpi": "revenue", "state": "past"}).json()["results"]
    assert [row["id"] for row in listed] == [goal_id]
    assert client.delete(f"{API}{goal_id}/").status_code == 204


def test_sales_read_the_api_but_cannot_write(shop_data, marketer, sales):
    saved = goal(marketer, GoalKpi.REVENUE, "12000")
    client = api_client(sales)
    assert client.get(API).json()["results"][0]["id"] == saved.pk
    body = {"kpi": "revenue", "target": "1", "start": "2026-04-01", "end": "2026-06-30"}
    response = client.post(API, body, format="json")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "permission_denied"
    assert client.patch(f"{API}{saved.pk}/", {"target": "1"}, format="json").status_code == 403
    assert client.delete(f"{API}{saved.pk}/").status_code == 403


@pytest.mark.parametrize(
    ("body", "attr", "code"),
    [
        ({"kpi": "repeat_rate", "target": "1.5"}, "target", "above_100"),
        ({"end": "2026-03-01"}, "end", "before_start"),
        ({"target_kind": "change", "target": "0"}, "target", "zero_change"),
        ({"kpi": "nope"}, "kpi", "invalid_choice"),
        ({"target": "NaN"}, "target", "invalid"),
        ({"start": "2026-13-01"}, "start", "invalid"),
        ({"owner": 999999}, "owner", "does_not_exist"),
        ({"note": "x" * 3000}, "note", "max_length"),
    ],
)
def test_bad_api_input_is_a_400_in_the_common_format(shop_data, marketer, body, attr, code):
    base = {"kpi": "revenue", "target": "1000", "start": "2026-04-01", "end": "2026-06-30"}
    response = api_client(marketer).post(API, {**base, **body}, format="json")
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["type"] == "validation_error"
    assert (attr, code) in {(error["attr"], error["code"]) for error in payload["errors"]}
    assert not Goal.objects.exists()


def test_nonsense_posted_to_the_pages_gets_form_errors_not_a_500(shop_data, marketer):
    client = page_client(marketer)
    nonsense = {"kpi": "x", "target_kind": "y", "target": "1e999", "start": "abc", "end": ""}
    response = client.post("/analytics/goals/new/", nonsense, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    assert set(response.context["form"].errors) >= {"kpi", "target_kind", "target", "start"}
    assert client.get("/analytics/goals/", {"page": "abc"}).status_code == 200


def test_the_admin_saves_goals_through_the_actions(shop_data, admin_member):
    client = page_client(admin_member)
    data = {**NEW_GOAL, "target": "0.05", "owner": admin_member.pk}
    response = client.post("/admin/analytics/goal/add/", data)
    assert response.status_code == 302, response.content
    saved = Goal.objects.get()
    assert (saved.baseline, saved.created_by) == (Decimal("0.5"), admin_member)
    refused = client.post("/admin/analytics/goal/add/", {**data, "target": "5"})
    assert refused.status_code == 200 and Goal.objects.count() == 1  # 500 points
    assert client.get("/admin/analytics/goal/").status_code == 200


@pytest.mark.parametrize(
    ("kpi", "kind", "target", "shown"),
    [
        (GoalKpi.RETENTION_RATE, CHANGE, "0.05", "+5 points"),
        (GoalKpi.CHURN_RATE, CHANGE, "-0.025", "−2.5 points"),
        (GoalKpi.REVENUE, CHANGE, "1", "+100%"),
        (GoalKpi.REPEAT_RATE, ABSOLUTE, "0.35", "35.0%"),
        (GoalKpi.PURCHASES, ABSOLUTE, "12000", "12,000"),
    ],
)
def test_targets_read_as_they_were_set(kpi, kind, target, shown):
    from analytics.templatetags.goal_tags import goal_target

    with translation.override("en"):
        assert goal_target(Goal(kpi=kpi, target_kind=kind, target=Decimal(target))) == shown


def test_progress_read_together_equals_progress_one_by_one(shop_data, marketer):
    from django.core.cache import cache

    from analytics.goals import progress_of

    goals = [
        goal(marketer, GoalKpi.REVENUE, "12000"),
        goal(marketer, GoalKpi.RETENTION_RATE, "0.10", kind=CHANGE),
        goal(marketer, GoalKpi.CUSTOMERS, "0.5", kind=CHANGE),
        goal(marketer, GoalKpi.REPEAT_RATE, "0.5", start=date(2026, 1, 1), end=date(2026, 12, 31)),
        goal(marketer, GoalKpi.AOV, "1500", start=date(2026, 4, 10), end=date(2026, 4, 25)),
    ]
    for today in (MID_Q2, AFTER_Q2):
        cache.clear()
        together = progress_of(goals, today=today)
        cache.clear()
        alone = [goal_progress(g, today=today) for g in goals]
        for a, b in zip(together, alone, strict=True):
            assert (a.actual, a.target_value, a.status) == (b.actual, b.target_value, b.status)
    assert together[2].actual == Decimal(4) and together[4].actual == Decimal(1000)  # b on 20 April
