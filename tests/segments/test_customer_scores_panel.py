"""The score panel on the Customer 360 page: the latest succeeded run's scores and the labels
of earlier runs, never a failed run's."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from segments.models import CustomerScore, RfmLabel, RunStatus, RunTrigger, ScoringRun
from tests.customers.factories import CustomerFactory

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def make_run(status: str, *, as_of: date, finished_minutes_ago: int) -> ScoringRun:
    return ScoringRun.objects.create(
        status=status,
        trigger=RunTrigger.COMMAND,
        as_of=as_of,
        finished_at=timezone.now() - timedelta(minutes=finished_minutes_ago),
    )


def score(run: ScoringRun, customer, *, r: int, f: int, m: int, label: str, decile: int):
    return CustomerScore.objects.create(
        run=run,
        customer=customer,
        recency_days=10,
        frequency=3,
        monetary=12000,
        first_purchase_on=date(2026, 1, 5),
        last_purchase_on=date(2026, 10, 21),
        r=r,
        f=f,
        m=m,
        rfm_code=f"{r}{f}{m}",
        rfm_label=label,
        decile=decile,
        cumulative_share=0.25,
        pareto_class="A",
        top20=decile <= 2,
    )


def test_360_shows_latest_scores_and_earlier_labels(client_as, sales):
    customer = CustomerFactory()
    older = make_run(RunStatus.SUCCEEDED, as_of=date(2026, 10, 1), finished_minutes_ago=600)
    latest = make_run(RunStatus.SUCCEEDED, as_of=date(2026, 11, 1), finished_minutes_ago=60)
    failed = make_run(RunStatus.FAILED, as_of=date(2026, 11, 2), finished_minutes_ago=1)
    score(older, customer, r=2, f=3, m=3, label=RfmLabel.AT_RISK, decile=5)
    score(latest, customer, r=5, f=4, m=5, label=RfmLabel.CHAMPIONS, decile=1)
    # A failed run never shows, even if rows of it were left behind.
    score(failed, customer, r=1, f=1, m=1, label=RfmLabel.LOST, decile=10)

    html = client_as(sales).get(f"/customers/{customer.pk}/", **EN).content.decode()

    assert "Champions" in html
    assert "545" in html
    assert "Top 20%" in html
    assert f"Scoring run #{latest.pk}" in html
    assert "RFM label in earlier runs" in html and "At risk" in html
    assert "Lost" not in html


def test_360_says_when_a_customer_is_not_scored(client_as, sales):
    customer = CustomerFactory()
    html = client_as(sales).get(f"/customers/{customer.pk}/", **EN).content.decode()
    assert "Not scored" in html
