"""Segment rules: every field and operator compiled and counted on a small hand-built dataset,
compared with the customers a plain-Python reading of the same definitions selects; random
nested trees; validation errors with their paths; the field registry and catalogue."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db.models import Q
from django.utils import translation

from customers.models import (
    Customer,
    Product,
    Purchase,
    PurchaseItem,
    PurchaseStatus,
    SupportTicket,
    Tag,
    TicketStatus,
)
from segments.models import CustomerScore, ParetoClass, RfmLabel
from segments.rules import (
    FIELDS,
    MAX_CONDITIONS,
    RuleError,
    RuleField,
    compile_rules,
    field_catalogue,
    register_field,
    validate_rules,
)
from tests.customers.factories import CustomerFactory
from tests.segments.factories import ScoringRunFactory

TODAY = date(2026, 11, 1)
TOKYO = ZoneInfo("Asia/Tokyo")
LABELS = [label.value for label in RfmLabel]
OPEN_STATUSES = {TicketStatus.OPEN, TicketStatus.PENDING}


def local_date(instant: datetime) -> date:
    return instant.astimezone(TOKYO).date()


def age_on(birthday: date, today: date) -> int:
    return today.year - birthday.year - ((today.month, today.day) < (birthday.month, birthday.day))


@dataclass
class World:
    """The dataset as plain Python objects, for the expected results."""

    customers: list[Customer]
    tags: dict[int, set[str]] = field(default_factory=dict)
    purchases: dict[int, list[Purchase]] = field(default_factory=dict)
    items: dict[int, list[Product]] = field(default_factory=dict)  # purchase id -> products
    tickets: dict[int, list[str]] = field(default_factory=dict)  # customer id -> statuses
    scores: dict[int, CustomerScore] = field(default_factory=dict)  # latest run only
    products: list[Product] = field(default_factory=list)
    owners: list = field(default_factory=list)
    latest_run: object = None

    def ids(self, predicate) -> set[int]:
        return {c.pk for c in self.customers if predicate(c)}


def build_world(make_user, *, size: int = 48, seed: int = 7) -> World:
    """Customers with varied profiles, purchases of every status over ~2 years (some right
    after local midnight), items in two categories, tickets, and two scoring runs."""
    rng = random.Random(seed)
    owners = [make_user(username=f"owner{n}") for n in range(2)]
    tags = [Tag.objects.create(name=name) for name in ("vip", "line", "新規")]
    products = [
        Product.objects.create(sku=f"SKU-{n}", name=f"商品{n}", category=cat, price=1000)
        for n, cat in enumerate(["食品", "食品", "雑貨", "雑貨"])
    ]
    customers = []
    for n in range(size):
        birthday = None
        if rng.random() < 0.8:
            birthday = TODAY - timedelta(days=rng.randint(15 * 365, 75 * 365))
        if n == 0:
            birthday = date(2000, 2, 29)
        if n == 1:
            birthday = TODAY.replace(year=1990)  # 36 today, exactly
        customers.append(
            CustomerFactory(
                gender=rng.choice(["female", "male", "other", ""]),
                prefecture=rng.choice(["13", "14", "27", "01", ""]),
                channel=rng.choice(["ecommerce", "line", "store", ""]),
                birthday=birthday,
                owner=rng.choice([*owners, None]),
                email_opt_in=(opt_in := rng.random() < 0.5),
                email_opt_in_at=datetime(2026, 1, 1, tzinfo=UTC) if opt_in else None,
                created_at=datetime(2024, 1, 1, tzinfo=UTC)
                + timedelta(hours=rng.randint(0, 24 * 1000)),
            )
        )
    world = World(customers=customers, products=products, owners=owners)
    for customer in customers:
        chosen = [tag for tag in tags if rng.random() < 0.35]
        customer.tags.set(chosen)
        world.tags[customer.pk] = {tag.name for tag in chosen}
        world.purchases[customer.pk] = []
        for k in range(rng.choice([0, 0, 1, 2, 3, 5])):
            day = TODAY - timedelta(days=rng.randint(0, 800))
            # Some purchases 30 minutes after local midnight: the previous day in UTC.
            hour, minute = rng.choice([(0, 30), (12, 0), (23, 50)])
            purchased_at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=TOKYO)
            purchase = Purchase.objects.create(
                order_id=f"O-{customer.pk}-{k}",
                customer=customer,
                purchased_at=purchased_at,
                status=rng.choice(
                    [PurchaseStatus.COMPLETED] * 4
                    + [PurchaseStatus.CANCELLED, PurchaseStatus.REFUNDED]
                ),
                total=Decimal(rng.choice([0, 1500, 4800, 12000, 30000])),
            )
            bought = rng.sample(products, rng.randint(1, 2))
            for product in bought:
                PurchaseItem.objects.create(purchase=purchase, product=product, unit_price=1000)
            world.items[purchase.pk] = bought
            world.purchases[customer.pk].append(purchase)
        statuses = [rng.choice(list(TicketStatus)) for _ in range(rng.choice([0, 0, 1, 2, 3]))]
        for status in statuses:
            SupportTicket.objects.create(customer=customer, subject="問い合わせ", status=status)
        world.tickets[customer.pk] = statuses
    older = ScoringRunFactory(finished_at=datetime(2026, 10, 1, tzinfo=UTC))
    latest = ScoringRunFactory(finished_at=datetime(2026, 11, 1, tzinfo=UTC))
    for customer in customers:
        if rng.random() < 0.25:
            continue  # not scored in the latest run
        for run in (older, latest):
            r, f, m = (rng.randint(1, 5) for _ in range(3))
            decile = rng.randint(1, 10)
            score = CustomerScore.objects.create(
                run=run,
                customer=customer,
                recency_days=10,
                frequency=1,
                monetary=Decimal(1000),
                first_purchase_on=date(2025, 1, 1),
                last_purchase_on=date(2026, 10, 1),
                r=r,
                f=f,
                m=m,
                rfm_code=f"{r}{f}{m}",
                rfm_label=rng.choice(LABELS),
                decile=decile,
                cumulative_share=0.5,
                pareto_class=rng.choice(list(ParetoClass)),
                top20=decile <= 2,
            )
            if run is latest:
                world.scores[customer.pk] = score
    world.latest_run = latest
    return world


# --- the expected results, in plain Python ------------------------------------------------


def completed(world: World, customer: Customer) -> list[Purchase]:
    return [p for p in world.purchases[customer.pk] if p.status == PurchaseStatus.COMPLETED]


def in_last(purchase: Purchase, days: int | None) -> bool:
    return days is None or local_date(purchase.purchased_at) >= TODAY - timedelta(days=days)


def within(value, low, high) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def expect_condition(world: World, cond: dict, c: Customer) -> bool:
    key, op, value = cond["field"], cond["op"], cond["value"]
    if key in ("gender", "prefecture", "channel"):
        return (getattr(c, key) in value) == (op == "in")
    if key == "age":
        return c.birthday is not None and within(age_on(c.birthday, TODAY), *value)
    if key == "birthday_month":
        return c.birthday is not None and c.birthday.month in value
    if key == "tags":
        mine = world.tags[c.pk]
        return {
            "any": bool(mine & set(value)),
            "all": set(value) <= mine,
            "none": not mine & set(value),
        }[op]
    if key == "owner":
        hit = c.owner_id in value or ("none" in value and c.owner_id is None)
        return hit == (op == "in")
    if key == "email_opt_in":
        return c.email_opt_in is value
    if key == "signup_date":
        signed_up = local_date(c.created_at)
        if op == "within_last_days":
            return signed_up >= TODAY - timedelta(days=value)
        bounds = [date.fromisoformat(v) if v else None for v in value]
        return within(signed_up, *bounds)
    if key in ("r", "f", "m", "rfm_label", "decile", "pareto_class", "top20"):
        score = world.scores.get(c.pk)
        if score is None:
            return False
        got = getattr(score, key)
        if op == "in":
            return got in value
        if op == "not_in":
            return got not in value
        if op == "is":
            return got is value
        return within(got, *value)
    purchases = completed(world, c)
    if key == "days_since_last_purchase":
        if not purchases:
            return False
        days = (TODAY - max(local_date(p.purchased_at) for p in purchases)).days
        low, high = {"at_least": (value, None), "at_most": (None, value)}.get(op, value)
        return within(days, low, high)
    if key in ("purchases_last_days", "spend_last_days"):
        recent = [p for p in purchases if in_last(p, value["days"])]
        measure = len(recent) if key == "purchases_last_days" else sum(p.total for p in recent)
        low = value["min"] if value["min"] is None else Decimal(str(value["min"]))
        high = value["max"] if value["max"] is None else Decimal(str(value["max"]))
        return within(measure, low, high)
    if key in ("bought_product", "bought_category"):
        wanted = value.get("products") or value.get("categories")
        hit = any(
            (product.pk in wanted or product.sku in wanted)
            if key == "bought_product"
            else product.category in wanted
            for p in purchases
            if in_last(p, value.get("days"))
            for product in world.items[p.pk]
        )
        return hit == (op == "any")
    if key == "ticket_count":
        statuses = world.tickets[c.pk]
        if value.get("open_only"):
            statuses = [s for s in statuses if s in OPEN_STATUSES]
        return within(len(statuses), value.get("min"), value.get("max"))
    raise AssertionError(f"no expectation for {key}")


def expect(world: World, tree: dict, c: Customer) -> bool:
    if "conditions" in tree:
        results = [expect(world, child, c) for child in tree["conditions"]]
        return all(results) if tree["op"] == "and" else any(results)
    return expect_condition(world, tree, c)


def matched(tree: dict) -> set[int]:
    return set(
        Customer.objects.filter(compile_rules(tree, today=TODAY)).values_list("id", flat=True)
    )


def condition_cases(world: World) -> list[dict]:
    """At least one case per field and operator."""
    p0, p2 = world.products[0], world.products[2]
    o0 = world.owners[0].pk

    def c(field_key, op, value):
        return {"field": field_key, "op": op, "value": value}

    return [
        c("gender", "in", ["female", "other"]),
        c("gender", "not_in", ["female"]),
        c("prefecture", "in", ["13", "14"]),
        c("prefecture", "not_in", ["13"]),
        c("channel", "in", ["line"]),
        c("channel", "not_in", ["ecommerce", "store"]),
        c("age", "between", [20, 39]),
        c("age", "between", [36, 36]),
        c("age", "between", [None, 30]),
        c("age", "between", [50, None]),
        c("birthday_month", "in", [2, 11]),
        c("tags", "any", ["vip", "新規"]),
        c("tags", "all", ["vip", "line"]),
        c("tags", "none", ["vip"]),
        c("owner", "in", [o0]),
        c("owner", "in", ["none"]),
        c("owner", "not_in", [o0, "none"]),
        c("email_opt_in", "is", True),
        c("email_opt_in", "is", False),
        c("signup_date", "between", ["2024-06-01", "2025-06-30"]),
        c("signup_date", "between", [None, "2024-12-31"]),
        c("signup_date", "within_last_days", 400),
        c("r", "in", [4, 5]),
        c("f", "between", [2, 3]),
        c("m", "between", [None, 2]),
        c("r", "between", [2, None]),
        c("f", "in", [1]),
        c("m", "in", [3, 5]),
        c("rfm_label", "in", ["champions", "loyal", "lost"]),
        c("rfm_label", "not_in", ["champions"]),
        c("decile", "between", [1, 3]),
        c("decile", "in", [10]),
        c("pareto_class", "in", ["A", "B"]),
        c("top20", "is", True),
        c("top20", "is", False),
        c("days_since_last_purchase", "at_most", 180),
        c("days_since_last_purchase", "at_least", 200),
        c("days_since_last_purchase", "at_least", 0),
        c("days_since_last_purchase", "between", [30, 365]),
        c("purchases_last_days", "between", {"days": 365, "min": 1, "max": None}),
        c("purchases_last_days", "between", {"days": 365, "min": 2, "max": 3}),
        c("purchases_last_days", "between", {"days": 365, "min": 0, "max": 1}),
        c("purchases_last_days", "between", {"days": 90, "min": None, "max": 0}),
        c("spend_last_days", "between", {"days": 365, "min": 10000, "max": None}),
        c("spend_last_days", "between", {"days": 730, "min": "1500", "max": 20000}),
        c("spend_last_days", "between", {"days": 365, "min": None, "max": 4800}),
        c("bought_product", "any", {"products": [p0.pk], "days": None}),
        c("bought_product", "any", {"products": [p2.sku], "days": 365}),
        c("bought_product", "none", {"products": [p0.pk, p2.sku], "days": None}),
        c("bought_category", "any", {"categories": ["雑貨"], "days": 200}),
        c("bought_category", "none", {"categories": ["食品"], "days": None}),
        c("ticket_count", "between", {"min": 1, "max": None, "open_only": False}),
        c("ticket_count", "between", {"min": 1, "max": 2, "open_only": True}),
        c("ticket_count", "between", {"min": 0, "max": 0, "open_only": True}),
        c("ticket_count", "between", {"min": None, "max": 1, "open_only": False}),
    ]


@pytest.fixture
def world(db, make_user) -> World:
    return build_world(make_user)


def test_every_field_and_operator_selects_the_expected_customers(world):
    cases = condition_cases(world)
    covered = {(case["field"], case["op"]) for case in cases}
    # The campaign fields have their own world of messages: tests/segments/test_campaign_rules.py
    offered = {
        (k, op) for k, f in FIELDS.items() for op in f.operators if f.value_type != "campaign"
    }
    assert offered <= covered, offered - covered
    mismatches, trivial = [], []
    for case in cases:
        want = world.ids(lambda c, case=case: expect_condition(world, case, c))
        got = matched({"op": "and", "conditions": [case]})
        if got != want:
            mismatches.append((case, sorted(got - want), sorted(want - got)))
        if not want or len(want) == len(world.customers):
            trivial.append(case)
    assert not mismatches
    # The dataset is varied enough that almost every case splits the customers.
    assert len(trivial) <= 3, trivial


def test_random_nested_trees_match_the_plain_reading(world):
    rng = random.Random(11)
    cases = condition_cases(world)

    def tree(depth: int) -> dict:
        children = []
        for _ in range(rng.randint(1, 4)):
            if depth < 4 and rng.random() < 0.3:
                children.append(tree(depth + 1))
            else:
                children.append(rng.choice(cases))
        return {"op": rng.choice(["and", "or"]), "conditions": children}

    for _ in range(40):
        rules = tree(1)
        want = world.ids(lambda c, rules=rules: expect(world, rules, c))
        assert matched(rules) == want, rules


def test_score_conditions_of_an_or_group_share_one_subquery_and_stay_exact(world):
    rules = {
        "op": "or",
        "conditions": [
            {"field": "r", "op": "in", "value": [5]},
            {"field": "rfm_label", "op": "not_in", "value": ["lost", "champions"]},
            {"field": "prefecture", "op": "in", "value": ["27"]},
        ],
    }
    sql = str(Customer.objects.filter(compile_rules(rules, today=TODAY)).query)
    assert sql.count("segments_customerscore") == 1
    assert matched(rules) == world.ids(lambda c: expect(world, rules, c))


def test_scores_come_from_the_latest_succeeded_run_only(world):
    latest_ids = set(world.scores)
    rules = {"op": "and", "conditions": [{"field": "decile", "op": "between", "value": [1, 10]}]}
    assert matched(rules) == latest_ids
    assert len(latest_ids) < len(world.customers)


def test_empty_groups(world):
    everyone = {c.pk for c in world.customers}
    assert matched({"op": "and", "conditions": []}) == everyone
    assert matched({}) == everyone
    assert matched({"op": "or", "conditions": []}) == set()
    nested_everyone = {
        "op": "or",
        "conditions": [
            {"field": "prefecture", "op": "in", "value": ["13"]},
            {"op": "and", "conditions": []},
        ],
    }
    assert matched(nested_everyone) == everyone


@pytest.mark.django_db
def test_score_conditions_match_nobody_before_the_first_scoring_run():
    CustomerFactory()
    rules = {"op": "and", "conditions": [{"field": "top20", "op": "is", "value": False}]}
    assert matched(rules) == set()


@pytest.mark.django_db
def test_a_purchase_half_an_hour_after_local_midnight_counts_on_that_local_day():
    customer = CustomerFactory()
    # 2026-05-03 00:30 in Tokyo is still 2 May in UTC.
    Purchase.objects.create(
        order_id="tz-edge",
        customer=customer,
        purchased_at=datetime(2026, 5, 2, 15, 30, tzinfo=UTC),
        total=Decimal(1000),
    )
    today = date(2026, 5, 10)

    def hits(cond: dict) -> bool:
        rules = {"op": "and", "conditions": [cond]}
        return Customer.objects.filter(compile_rules(rules, today=today)).exists()

    assert hits({"field": "days_since_last_purchase", "op": "between", "value": [7, 7]})
    assert not hits({"field": "days_since_last_purchase", "op": "at_least", "value": 8})
    assert not hits({"field": "days_since_last_purchase", "op": "at_most", "value": 6})
    window = {"min": 1, "max": None}
    assert hits({"field": "purchases_last_days", "op": "between", "value": {"days": 7, **window}})
    assert not hits(
        {"field": "purchases_last_days", "op": "between", "value": {"days": 6, **window}}
    )


@pytest.mark.django_db
def test_age_of_a_leap_day_birthday_counts_whole_years():
    leap = CustomerFactory(birthday=date(2000, 2, 29))

    def age_is(years: int, today: date) -> bool:
        rules = {
            "op": "and",
            "conditions": [{"field": "age", "op": "between", "value": [years, years]}],
        }
        return Customer.objects.filter(compile_rules(rules, today=today), pk=leap.pk).exists()

    assert age_is(25, date(2026, 2, 28))
    assert age_is(26, date(2026, 3, 1))
    assert age_is(24, date(2024, 2, 29))


# --- validation ----------------------------------------------------------------------------


def errors_of(tree) -> list[dict]:
    with translation.override("en"), pytest.raises(RuleError) as raised:
        validate_rules(tree)
    return raised.value.errors


@pytest.mark.django_db
def test_validation_reports_every_error_with_its_path():
    errors = errors_of(
        {
            "op": "xor",
            "conditions": [
                {"field": "shoe_size", "op": "in", "value": [42]},
                {"field": "age", "op": "above", "value": 3},
                {"field": "r", "op": "in", "value": [0, 3, "5"]},
                {"op": "and", "conditions": [{"field": "prefecture", "op": "in", "value": ["48"]}]},
                {"field": "spend_last_days", "op": "between", "value": {"days": -1, "min": "x"}},
                {"field": "tags", "op": "any", "value": ["nope"]},
                {"field": "email_opt_in", "op": "is"},
                {"field": "signup_date", "op": "between", "value": ["2026-02-30", "2026-01-01"]},
            ],
        }
    )
    got = {(e["path"], e["message"]) for e in errors}
    assert got == {
        ("op", 'Choose "and" or "or".'),
        ("conditions.0.field", "Unknown field shoe_size."),
        (
            "conditions.1.op",
            "Age does not take the operator above; use one of: between.",
        ),
        ("conditions.2.value.0", "Enter a number of at least 1."),
        ("conditions.2.value.2", "Enter a whole number."),
        ("conditions.3.conditions.0.value.0", "48 is not one of the choices."),
        ("conditions.4.value.days", "Enter a number of at least 0."),
        ("conditions.4.value.min", "Enter an amount."),
        ("conditions.5.value.0", "There is no tag named nope."),
        ("conditions.6.value", "Enter a value."),
        ("conditions.7.value.0", "Enter a date as YYYY-MM-DD."),
    }


@pytest.mark.django_db
def test_validation_refuses_too_deep_and_too_large_trees():
    leaf = {"field": "email_opt_in", "op": "is", "value": True}
    deep = {"op": "and", "conditions": [leaf]}
    for _ in range(4):
        deep = {"op": "or", "conditions": [deep]}
    errors = errors_of(deep)
    assert errors == [
        {
            "path": "conditions.0.conditions.0.conditions.0.conditions.0",
            "message": "Groups nest at most 4 levels deep.",
        }
    ]
    errors = errors_of({"op": "and", "conditions": [leaf] * (MAX_CONDITIONS + 1)})
    assert errors == [
        {"path": "conditions", "message": "The rules have 51 conditions; at most 50 are allowed."}
    ]
    assert validate_rules({"op": "and", "conditions": [leaf] * MAX_CONDITIONS})


@pytest.mark.django_db
def test_validation_checks_value_shapes_and_ranges():
    cases = [
        (
            {"field": "age", "op": "between", "value": [40, 30]},
            "value",
            "The minimum is larger than the maximum.",
        ),
        (
            {"field": "age", "op": "between", "value": [None, None]},
            "value",
            "Enter a minimum or a maximum.",
        ),
        ({"field": "decile", "op": "between", "value": 3}, "value", "Expected [minimum, maximum]."),
        ({"field": "top20", "op": "is", "value": "yes"}, "value", "Expected true or false."),
        ({"field": "gender", "op": "in", "value": []}, "value", "Choose at least one value."),
        (
            {"field": "owner", "op": "in", "value": [999999]},
            "value.0",
            "There is no user with the ID 999999.",
        ),
        (
            {"field": "bought_product", "op": "any", "value": {"products": ["NOPE"]}},
            "value.products.0",
            "There is no product with the ID or SKU NOPE.",
        ),
        (
            {"field": "ticket_count", "op": "between", "value": {"min": 1, "colour": "red"}},
            "value.colour",
            "Unknown key.",
        ),
        (
            {"field": "purchases_last_days", "op": "between", "value": {"days": 30}},
            "value",
            "Enter a minimum or a maximum.",
        ),
        ("age", "", 'Expected a condition: {"field": ..., "op": ..., "value": ...}.'),
    ]
    for condition, path, message in cases:
        errors = errors_of({"op": "and", "conditions": [condition]})
        assert errors == [{"path": f"conditions.0.{path}".rstrip("."), "message": message}]


@pytest.mark.django_db
def test_validation_normalises_the_tree():
    tree = {
        "op": "and",
        "conditions": [
            {"field": "r", "op": "in", "value": [5, 4, 5]},
            {"field": "spend_last_days", "op": "between", "value": {"days": 30, "min": 1000.50}},
            {"field": "gender", "op": "in", "value": ["male", "male"]},
        ],
    }
    assert validate_rules(tree) == {
        "op": "and",
        "conditions": [
            {"field": "r", "op": "in", "value": [4, 5]},
            {
                "field": "spend_last_days",
                "op": "between",
                "value": {"days": 30, "min": "1000.5", "max": None},
            },
            {"field": "gender", "op": "in", "value": ["male"]},
        ],
    }


def test_validation_messages_are_translated():
    with translation.override("ja"), pytest.raises(RuleError) as raised:
        validate_rules({"op": "and", "conditions": [{"field": "r", "op": "in", "value": ["x"]}]})
    assert raised.value.errors[0]["message"] == "整数を入力してください。"


# --- registry and catalogue ----------------------------------------------------------------


@pytest.mark.django_db
def test_another_app_can_register_a_field(world):
    def check(op, value, report):
        if not isinstance(value, str):
            report("Enter an e-mail domain.")
            return None
        return value.lower()

    domain = RuleField(
        key="email_domain",
        label="E-mail domain",
        group="campaigns",
        value_type="text",
        operators=("is",),
        check=check,
        build=lambda op, value, ctx: Q(email__iendswith="@" + value),
    )
    register_field(domain)
    try:
        with pytest.raises(ValueError):
            register_field(domain)
        rules = {
            "op": "and",
            "conditions": [{"field": "email_domain", "op": "is", "value": "EXAMPLE.JP"}],
        }
        assert matched(rules) == {c.pk for c in world.customers}
        assert "email_domain" in {entry["key"] for entry in field_catalogue()}
        assert errors_of(
            {"op": "and", "conditions": [{"field": "email_domain", "op": "is", "value": 1}]}
        ) == [{"path": "conditions.0.value", "message": "Enter an e-mail domain."}]
    finally:
        del FIELDS["email_domain"]


@pytest.mark.django_db
def test_catalogue_describes_every_field_in_the_users_language(make_user):
    Tag.objects.create(name="vip")
    with translation.override("en"):
        catalogue = {entry["key"]: entry for entry in field_catalogue()}
    assert set(catalogue) == set(FIELDS)
    prefecture = catalogue["prefecture"]
    assert prefecture["label"] == "Prefecture"
    assert prefecture["group"] == "profile"
    assert [op["key"] for op in prefecture["operators"]] == ["in", "not_in"]
    assert len(prefecture["choices"]) == 47
    assert {"value": "13", "label": "Tokyo"} in prefecture["choices"]
    assert catalogue["tags"]["choices"] == [{"value": "vip", "label": "vip"}]
    assert catalogue["decile"]["min"] == 1 and catalogue["decile"]["max"] == 10
    assert catalogue["rfm_label"]["group"] == "scores"
    assert {"value": "champions", "label": "Champions"} in catalogue["rfm_label"]["choices"]
    with translation.override("ja"):
        ja = {entry["key"]: entry for entry in field_catalogue()}
    assert {"value": "13", "label": "東京都"} in ja["prefecture"]["choices"]
