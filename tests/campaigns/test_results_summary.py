"""The campaign list's conversions are refreshed by beat, so nobody has to open a review
first: a campaign that sent gets its summary, a fresh one is left alone, one whose attribution
window has long closed is not recomputed again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.results import compute_results, goal_attainment_for
from campaigns.tasks import refresh_results_summaries
from tests.campaigns.test_results import build_campaign

pytestmark = pytest.mark.django_db


def test_beat_stores_the_conversions_the_list_shows():
    campaign, _messages = build_campaign(sent_days_ago=3)
    assert goal_attainment_for([campaign])[campaign.pk].conversions_as_of is None

    assert refresh_results_summaries() == 1
    campaign.refresh_from_db()
    expected = compute_results(campaign).total
    entry = goal_attainment_for([campaign])[campaign.pk]
    assert entry.conversions_as_of is not None
    assert (entry.figures.converted, entry.figures.revenue) == (
        expected.converted,
        expected.revenue,
    )
    # Fresh: nothing to do within the hour.
    assert refresh_results_summaries() == 0


def test_a_summary_from_before_the_window_closed_is_refreshed_once_after():
    campaign, _messages = build_campaign(sent_days_ago=20)
    Campaign.objects.filter(pk=campaign.pk).update(finished_at=timezone.now() - timedelta(days=20))
    before_close = (timezone.now() - timedelta(days=15)).isoformat()
    Campaign.objects.filter(pk=campaign.pk).update(
        results_summary={"converted": 0, "revenue": "0", "computed_at": before_close}
    )
    assert refresh_results_summaries() == 1
    # Computed after the window closed: final, never recomputed by beat again.
    Campaign.objects.filter(pk=campaign.pk).update(
        results_summary={
            "converted": 1,
            "revenue": "1",
            "computed_at": (timezone.now() - timedelta(days=2)).isoformat(),
        }
    )
    assert refresh_results_summaries() == 0


def test_goals_of_a_campaign_that_delivered_nothing_are_not_judged():
    campaign, _messages = build_campaign(sent_days_ago=3)
    draft = Campaign.objects.create(
        name="下書き",
        segment=campaign.segment,
        goal_open_rate=campaign.goal_open_rate,
        goal_click_rate=campaign.goal_click_rate,
    )
    entry = goal_attainment_for([draft])[draft.pk]
    assert {goal.state for goal in entry.goals if goal.goal is not None} == {"not_started"}
    assert all(goal.actual is None for goal in entry.goals)
