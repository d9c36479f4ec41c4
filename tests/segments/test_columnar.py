"""The columnar evaluator (segments.columnar over segments.columns' snapshot) against the SQL
it replaces: the same count, members, breakdowns and sample for every field and operator and
for random nested trees, and still exact after customers, purchases, tickets, tags and scores
change behind the snapshot's back. PostgreSQL only (elsewhere the SQL path is all there is)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from customers.models import Customer, Purchase, PurchaseStatus, SupportTicket, Tag, TicketStatus
from segments import columnar, columns
from segments.evaluation import count_matching
from segments.models import ScoringRun
from segments.preview import live_preview
from segments.rules import Context, RuleError, compile_rules, validate_rules
from tests.conftest import wait_for
from tests.customers.factories import CustomerFactory
from tests.segments.factories import CustomerScoreFactory, ScoringRunFactory
from tests.segments.test_rules import TODAY, build_world, condition_cases

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the columnar path is PostgreSQL's"
    ),
]


@pytest.fixture
def world(make_user, settings, tmp_path):
    settings.SEGMENT_COLUMNS_DIR = str(tmp_path / "columns")
    yield build_world(make_user)
    # A background build must not outlive its test (and write into the next one's folder).
    wait_for(lambda: not columns._thread_guard.locked())


def sql_ids(tree: dict, today=TODAY) -> set[int]:
    return set(
        Customer.objects.filter(compile_rules(tree, today=today)).values_list("id", flat=True)
    )


def columnar_ids(tree: dict, today=TODAY) -> set[int]:
    found = columnar.match(tree, run=ScoringRun.objects.latest_succeeded(), today=today)
    assert found is not None, "no fresh snapshot"
    return set(found.snapshot.ids[found.mask].tolist())


def sql_preview(tree: dict, settings) -> dict:
    directory = settings.SEGMENT_COLUMNS_DIR
    settings.SEGMENT_COLUMNS_DIR = ""  # no snapshot: the SQL path
    try:
        return shown(live_preview(tree))
    finally:
        settings.SEGMENT_COLUMNS_DIR = directory


def shown(preview: dict) -> dict:
    return {
        "count": preview["count"],
        "breakdowns": preview["breakdowns"],
        "sample": [
            (c.pk, c.prefecture_label, c.score and (c.score.rfm_label, c.score.decile))
            for c in preview["sample"]
        ],
    }


def assert_exact(tree: dict, settings) -> int:
    """Columnar == SQL for the members, the count and the whole preview; returns the count."""
    want = sql_ids(tree)
    assert columnar_ids(tree) == want, tree
    assert count_matching(tree, today=TODAY) == len(want)
    fast = live_preview(tree)
    assert columns.fresh_snapshot(ScoringRun.objects.latest_succeeded()) is not None
    assert shown(fast) == sql_preview(tree, settings), tree
    return len(want)


def only(condition: dict) -> dict:
    return {"op": "and", "conditions": [condition]}


def test_every_field_and_operator_gives_the_sql_answer(world, settings):
    columns.build_snapshot()
    counts = [assert_exact(only(case), settings) for case in condition_cases(world)]
    # The dataset splits the customers for almost every case: the comparisons mean something.
    assert sum(0 < n < len(world.customers) for n in counts) >= len(counts) - 3


def test_random_nested_trees_give_the_sql_answer(world, settings):
    columns.build_snapshot()
    rng = random.Random(5)
    cases = condition_cases(world)

    def tree(depth: int) -> dict:
        children = []
        for _ in range(rng.randint(0, 4)):
            if depth < 4 and rng.random() < 0.3:
                children.append(tree(depth + 1))
            else:
                children.append(rng.choice(cases))
        return {"op": rng.choice(["and", "or"]), "conditions": children}

    sizes = set()
    for _ in range(60):
        rules = tree(1)
        want = sql_ids(rules)
        assert columnar_ids(rules) == want, rules
        sizes.add(len(want))
    assert len(sizes) > 10


def test_days_count_from_the_day_asked_for(world, settings):
    columns.build_snapshot()
    for days_later in (0, 1, 30, 400):
        today = TODAY + timedelta(days=days_later)
        for case in condition_cases(world):
            if case["field"] in ("age", "signup_date", "days_since_last_purchase") or (
                case["field"].endswith("_last_days")
            ):
                assert columnar_ids(only(case), today) == sql_ids(only(case), today), case


def test_without_any_scoring_run_score_conditions_match_nobody(world, settings):
    ScoringRun.objects.all().delete()
    columns.build_snapshot()
    assert assert_exact(only({"field": "r", "op": "between", "value": [None, 5]}), settings) == 0
    assert assert_exact({"op": "and", "conditions": []}, settings) == len(world.customers)


RULES = {
    "op": "or",
    "conditions": [
        {"field": "prefecture", "op": "in", "value": ["13"]},
        {"field": "days_since_last_purchase", "op": "at_most", "value": 60},
        {"field": "spend_last_days", "op": "between", "value": {"days": 30, "min": 1, "max": None}},
        {
            "field": "ticket_count",
            "op": "between",
            "value": {"min": 2, "max": None, "open_only": True},
        },
        {"field": "tags", "op": "all", "value": ["vip", "新規"]},
        {"field": "rfm_label", "op": "in", "value": ["champions"]},
    ],
}


def changes(world) -> list:
    """Writes of every kind the snapshot must notice, each a (name, function) pair."""
    first, second = world.customers[0], world.customers[1]
    vip = Tag.objects.get(name="vip")
    outside_tokyo = Customer.objects.exclude(prefecture="13").order_by("id").first()
    now = timezone.now()

    def new_purchase():
        Purchase.objects.create(order_id="NEW-1", customer=second, purchased_at=now, total=5000)

    def delete_a_buyers_purchases():
        buyer = Purchase.objects.filter(status=PurchaseStatus.COMPLETED).order_by("id")[0].customer
        Purchase.objects.filter(customer=buyer).delete()

    def new_scoring_run():
        run = ScoringRunFactory(finished_at=now)
        CustomerScoreFactory(run=run, customer=second, rfm_label="champions", decile=1)

    return [
        ("new customer", lambda: CustomerFactory(prefecture="13")),
        (
            "edited customer",
            lambda: Customer.objects.filter(pk=outside_tokyo.pk).update(prefecture="13"),
        ),
        ("deleted customer", lambda: Customer.objects.filter(pk=world.customers[2].pk).delete()),
        ("new purchase", new_purchase),
        (
            "cancelled purchase",
            lambda: Purchase.objects.filter(customer__in=world.customers[3:20]).update(
                status=PurchaseStatus.CANCELLED
            ),
        ),
        (
            "deleted purchases",
            delete_a_buyers_purchases,
        ),
        (
            "back-dated purchase",
            lambda: Purchase.objects.filter(customer__in=world.customers[20:30]).update(
                purchased_at=datetime(2020, 1, 1, tzinfo=UTC)
            ),
        ),
        (
            "new tickets",
            lambda: [
                SupportTicket.objects.create(customer=first, subject="s", status=TicketStatus.OPEN)
                for _ in range(2)
            ],
        ),
        (
            "closed tickets",
            lambda: SupportTicket.objects.all().update(status=TicketStatus.CLOSED),
        ),
        ("tag added", lambda: Customer.objects.exclude(tags=vip).first().tags.add(vip)),
        ("tag removed", lambda: Customer.tags.through.objects.filter(tag=vip).delete()),
        ("new scoring run", new_scoring_run),
        ("scoring run deleted", lambda: ScoringRun.objects.order_by("-finished_at")[0].delete()),
        (
            "spend changed",
            lambda: Purchase.objects.filter(status=PurchaseStatus.COMPLETED).update(
                total=Decimal("1")
            ),
        ),
        ("tag renamed", lambda: Tag.objects.filter(name="line").update(name="LINE友だち")),
    ]


def stale_answers(snapshot, world) -> list[set[int]]:
    """What an outdated snapshot would answer for RULES and each single-condition case."""
    ctx = Context(today=TODAY, run_id=snapshot.run_id)
    answers = []
    for tree in [RULES] + [only(case) for case in condition_cases(world)]:
        try:
            mask = columnar.evaluate(validate_rules(tree), snapshot, ctx)
        except RuleError:  # a tag renamed away
            continue
        answers.append((tree, set(snapshot.ids[mask].tolist())))
    return answers


def test_every_kind_of_change_after_the_snapshot_keeps_the_answer_exact(world, settings):
    snapshot = columns.build_snapshot()
    outdated = []
    for name, change in changes(world):
        change()
        run = ScoringRun.objects.latest_succeeded()
        assert columns.fresh_snapshot(run) is None, name  # noticed: the SQL answers
        assert count_matching(RULES, today=TODAY) == len(sql_ids(RULES)), name
        if any(sql_ids(tree) != stale for tree, stale in stale_answers(snapshot, world)):
            outdated.append(name)
        snapshot = columns.build_snapshot()
        assert assert_exact(RULES, settings) == len(sql_ids(RULES)), name
    # Nearly every change made the old snapshot wrong somewhere: noticing them mattered.
    unnoticed = [name for name, _change in changes(world) if name not in outdated]
    assert unnoticed == ["tag renamed"]  # the rules naming the old name are invalid now


def test_a_stale_snapshot_is_rebuilt_in_the_background(world, settings):
    assert columns.current() is None
    # This connection publishes its table counters (the world's writes) at most once a second;
    # publish them now, or the background build may read them before they are out.
    with connection.cursor() as cursor:
        columns.change_signature(cursor)
    assert count_matching(RULES, today=TODAY) == len(sql_ids(RULES))  # SQL, and a build starts
    wait_for(lambda: columns.current() is not None)
    wait_for(lambda: not columns._thread_guard.locked())
    assert columnar_ids(RULES) == sql_ids(RULES)
    CustomerFactory(prefecture="13")
    assert columns.request_build() is False  # one build per interval and host


def test_the_snapshot_is_shared_through_files(world, settings):
    built = columns.build_snapshot()
    columns._loaded.clear()  # as another process would find it
    loaded = columns.current()
    assert loaded.path == built.path
    assert loaded.arrays["ids"].tolist() == sorted(c.pk for c in world.customers)
    columns.build_snapshot()
    assert columns.current().path != built.path
    assert len(list(built.path.parent.glob("snap-*"))) == columns.KEEP_SNAPSHOTS
