"""Factories for the segments app, shared by its test modules (scoring, rules, pages, API).

``CustomerScoreFactory`` keeps its fields consistent with each other (rfm_code from r/f/m,
top20 from the decile) so a test only sets what it cares about.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from segments.models import (
    CustomerScore,
    ParetoClass,
    RfmLabel,
    RunStatus,
    RunTrigger,
    ScoringRun,
    Segment,
    SegmentKind,
)
from tests.customers.factories import CustomerFactory


class ScoringRunFactory(factory.django.DjangoModelFactory):
    """A finished, succeeded run by default; pass ``status=RunStatus.PENDING`` etc. for others."""

    class Meta:
        model = ScoringRun

    status = RunStatus.SUCCEEDED
    trigger = RunTrigger.COMMAND
    as_of = date(2026, 11, 1)
    started_at = factory.LazyFunction(lambda: timezone.now() - timedelta(seconds=5))
    finished_at = factory.LazyAttribute(
        lambda run: (
            timezone.now() if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED) else None
        )
    )
    duration_seconds = factory.LazyAttribute(lambda run: 5.0 if run.finished_at else None)
    progress = factory.LazyAttribute(lambda run: 100 if run.status == RunStatus.SUCCEEDED else 0)


class CustomerScoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerScore

    run = factory.SubFactory(ScoringRunFactory)
    customer = factory.SubFactory(CustomerFactory)
    recency_days = 10
    frequency = 3
    monetary = Decimal("12000")
    first_purchase_on = date(2026, 1, 5)
    last_purchase_on = factory.LazyAttribute(
        lambda s: (s.run.as_of or date(2026, 11, 1)) - timedelta(days=s.recency_days)
    )
    r = 3
    f = 3
    m = 3
    rfm_code = factory.LazyAttribute(lambda s: f"{s.r}{s.f}{s.m}")
    rfm_label = RfmLabel.NEEDS_ATTENTION
    decile = 5
    cumulative_share = 0.5
    pareto_class = ParetoClass.B
    top20 = factory.LazyAttribute(lambda s: s.decile <= 2)


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"セグメント {n}")
    description = ""
    kind = SegmentKind.DYNAMIC
    rules = factory.LazyFunction(lambda: {"op": "and", "conditions": []})
