"""`make run`'s demo data comes scored and segmented, so the RFM pages and the builder show
real figures on first start; running setup_demo again changes nothing."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from customers.demo_data import flush_customer_data
from segments.demo import DEMO_SEGMENTS
from segments.evaluation import count_matching
from segments.models import CustomerScore, RunStatus, ScoringRun, Segment

pytestmark = pytest.mark.django_db


def test_setup_demo_scores_the_demo_customers_and_creates_the_demo_segments():
    flush_customer_data()
    call_command("setup_demo", "--customers", "120", "--skip-checks", verbosity=0)

    run = ScoringRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    assert run.customers_scored == CustomerScore.objects.filter(run=run).count() > 0
    segments = {segment.name: segment for segment in Segment.objects.all()}
    assert set(segments) == {demo["name"] for demo in DEMO_SEGMENTS}
    for demo in DEMO_SEGMENTS:
        segment = segments[demo["name"]]
        assert segment.member_count == segment.members.count() == count_matching(demo["rules"])
    assert segments["上位20%の顧客"].member_count == run.scores.filter(decile__lte=2).count()

    call_command("setup_demo", "--customers", "120", "--skip-checks", verbosity=0)
    assert ScoringRun.objects.count() == 1
    assert Segment.objects.count() == len(DEMO_SEGMENTS)
