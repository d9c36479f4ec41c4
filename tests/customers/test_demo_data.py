"""Demo data: realistic (names, readings, Pareto, seasons, hours), consistent (totals, consent,
search text), deterministic, and careful with data that is already there."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F, Min, Sum

from crm.roles import Role
from customers import demo_names
from customers.demo_data import DemoDataError, flush_customer_data, seed_demo_data
from customers.models import (
    ConsentRecord,
    Customer,
    Interaction,
    Product,
    Purchase,
    PurchaseItem,
    SupportTicket,
    TicketReply,
)
from tests.factories import UserFactory

TOKYO = ZoneInfo("Asia/Tokyo")
END = date(2025, 12, 31)
KATAKANA = re.compile(r"^[ァ-ヶー]+$")


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """A few thousand demo customers, seeded once for the module (committed, removed after)."""
    with django_db_blocker.unblock():
        sales = [UserFactory(role=Role.SALES, username=f"demo-sales-{n}") for n in range(2)]
        marketer = UserFactory(role=Role.MARKETER, username="demo-marketer")
        summary = seed_demo_data(
            customers=3000, seed=11, purchases_per_customer=6, end=END, existing="flush"
        )
        yield {"summary": summary, "sales": sales, "marketer": marketer}
        flush_customer_data()
        for user in [*sales, marketer]:
            user.delete()


def _snapshot() -> dict:
    """Everything the demo wrote, by natural keys (database ids of products and tags, and the
    write time in updated_at, are not part of the data)."""
    customer_fields = [
        f.attname
        for f in Customer._meta.concrete_fields
        if f.attname not in ("updated_at", "search_text")
    ]
    return {
        "customers": list(Customer.objects.order_by("external_id").values_list(*customer_fields)),
        "tags": sorted(
            Customer.tags.through.objects.values_list("customer__external_id", "tag__name")
        ),
        "consent": sorted(
            ConsentRecord.objects.values_list(
                "customer__external_id", "opted_in", "recorded_at", "source", "form"
            )
        ),
        "purchases": list(
            Purchase.objects.order_by("order_id").values_list(
                "order_id", "customer__external_id", "purchased_at", "channel", "status", "total"
            )
        ),
        "items": sorted(
            PurchaseItem.objects.values_list(
                "purchase__order_id", "product__sku", "quantity", "unit_price"
            )
        ),
        "tickets": list(
            SupportTicket.objects.order_by("pk").values_list(
                "customer__external_id", "opened_at", "subject", "status", "priority"
            )
        ),
        "replies": sorted(
            TicketReply.objects.values_list("ticket_id", "author_id", "body", "created_at")
        ),
        "interactions": sorted(
            Interaction.objects.values_list(
                "customer__external_id", "kind", "occurred_at", "user_id", "summary"
            )
        ),
    }


@pytest.mark.django_db
def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(make_user):
    make_user(Role.SALES)
    seed_demo_data(customers=150, seed=5, purchases_per_customer=4, end=END, existing="flush")
    first = _snapshot()
    seed_demo_data(customers=150, seed=5, purchases_per_customer=4, end=END, existing="flush")
    assert _snapshot() == first
    assert len(first["purchases"]) > 300
    seed_demo_data(customers=150, seed=6, purchases_per_customer=4, end=END, existing="flush")
    assert _snapshot()["customers"] != first["customers"]


@pytest.mark.django_db
def test_names_have_their_katakana_reading_from_the_table(seeded):
    family = {kanji: kana for kanji, kana, _w in demo_names.FAMILY_NAMES}
    given = defaultdict(set)
    for kanji, kana, _era in demo_names.FEMALE_GIVEN_NAMES + demo_names.MALE_GIVEN_NAMES:
        given[kanji].add(kana)
    rows = Customer.objects.values_list(
        "family_name", "given_name", "family_name_kana", "given_name_kana"
    )
    with_kana = [row for row in rows if row[2]]
    assert 0.85 * len(rows) < len(with_kana) < len(rows)  # some profiles lack the reading
    for family_name, given_name, family_kana, given_kana in with_kana:
        assert KATAKANA.match(family_kana) and KATAKANA.match(given_kana)
        assert family[family_name] == family_kana
        assert given_kana in given[given_name]


@pytest.mark.django_db
def test_a_fifth_of_the_customers_bring_most_of_the_revenue(seeded):
    revenue = sorted(
        Purchase.objects.completed()
        .values("customer")
        .annotate(spent=Sum("total"))
        .values_list("spent", flat=True),
        reverse=True,
    )
    top = revenue[: len(revenue) // 5]
    share = sum(top) / sum(revenue)
    assert Decimal("0.70") <= share <= Decimal("0.85")


@pytest.mark.django_db
def test_gift_seasons_sell_more_than_february_and_nights_are_quiet(seeded):
    by_month = Counter()
    hours = Counter()
    for purchased_at, total in Purchase.objects.completed().values_list("purchased_at", "total"):
        local = purchased_at.astimezone(TOKYO)
        by_month[local.month] += total
        hours[local.hour] += 1
    assert by_month[12] > by_month[2] * Decimal("1.3")
    assert by_month[7] > by_month[2] * Decimal("1.3")
    night = (hours[3] + hours[4]) / sum(hours.values())
    assert night < 0.02
    assert hours[21] > 5 * hours[4]  # the evening peak


@pytest.mark.django_db
def test_purchases_are_consistent_and_plausible(seeded):
    purchases = Purchase.objects.annotate(
        items_total=Sum(F("items__quantity") * F("items__unit_price"))
    )
    assert not [p.order_id for p in purchases if p.items_total != p.total]
    assert not PurchaseItem.objects.exclude(unit_price=F("product__price")).exists()
    statuses = Counter(Purchase.objects.values_list("status", flat=True))
    count = sum(statuses.values())
    assert 0.01 < statuses["cancelled"] / count < 0.05
    assert 0.005 < statuses["refunded"] / count < 0.04
    assert 4.5 < count / seeded["summary"].customers < 7.5  # the requested mean: 6
    lines = Counter(PurchaseItem.objects.values_list("purchase_id", flat=True))
    assert set(lines.values()) == {1, 2, 3}
    assert {p.category for p in Product.objects.all()} >= {"食品", "化粧品", "ギフト", "アパレル"}
    assert 140 <= Product.objects.count() <= 160
    # Many one-time buyers, a long tail of loyal ones.
    per_customer = Counter(Purchase.objects.values_list("customer_id", flat=True))
    one_time = sum(1 for n in per_customer.values() if n == 1)
    assert one_time > 0.3 * len(per_customer)
    assert max(per_customer.values()) > 40


@pytest.mark.django_db
def test_consent_is_recorded_for_every_opted_in_customer(seeded):
    customers = Customer.objects.annotate(first_purchase=Min("purchases__purchased_at"))
    records = defaultdict(list)
    for record in ConsentRecord.objects.order_by("recorded_at"):
        records[record.customer_id].append(record)
    opted_in = [c for c in customers if c.email_opt_in]
    assert 0.5 < len(opted_in) / len(customers) < 0.7
    for customer in opted_in:
        history = records[customer.pk]
        assert history[-1].opted_in and history[-1].recorded_at == customer.email_opt_in_at
        assert history[-1].form and customer.email
        if customer.first_purchase:
            assert history[0].recorded_at <= customer.first_purchase
    unsubscribed = [c for c in customers if not c.email_opt_in and records[c.pk]]
    assert unsubscribed
    assert all(records[c.pk][-1].source == "unsubscribe" for c in unsubscribed)


@pytest.mark.django_db
def test_search_text_is_what_the_model_would_store(seeded):
    customers = list(Customer.objects.all())
    assert [c.search_text for c in customers] == [c.build_search_text() for c in customers]
    someone = next(c for c in customers if c.family_name_kana and c.phone)
    hiragana = "".join(chr(ord(ch) - 0x60) for ch in someone.family_name_kana)
    assert someone in Customer.objects.search(hiragana + someone.given_name_kana)
    assert someone in Customer.objects.search(someone.phone[-8:])


@pytest.mark.django_db
def test_profiles_have_gaps_and_some_probable_duplicates(seeded):
    customers = list(Customer.objects.all())
    total = len(customers)
    for field in ("birthday", "family_name_kana", "phone", "email", "prefecture"):
        missing = sum(1 for c in customers if not getattr(c, field))
        assert 0.01 * total < missing < 0.25 * total, field
    emails = Counter(c.email.lower() for c in customers if c.email)
    phones = Counter(c.phone for c in customers if c.phone)
    assert any(n > 1 for n in emails.values()) and any(n > 1 for n in phones.values())
    reserved = {domain for domain, _weight in demo_names.EMAIL_DOMAINS}
    assert {c.email.rpartition("@")[2] for c in customers if c.email} == reserved
    mobile = sum(1 for c in customers if c.phone.startswith(("090", "080", "070")))
    assert mobile > 0.6 * total
    prefectures = Counter(c.prefecture for c in customers)
    assert prefectures["13"] > prefectures["31"] * 5  # Tokyo outnumbers Tottori
    adults = [c.birthday for c in customers if c.birthday]
    assert all(date(1940, 1, 1) <= b <= date(2007, 12, 31) for b in adults)  # 18 to 85


@pytest.mark.django_db
def test_staff_work_is_assigned_to_sales_users(seeded):
    sales_ids = {u.pk for u in seeded["sales"]}
    owners = set(Customer.objects.exclude(owner=None).values_list("owner_id", flat=True))
    assert owners and owners <= sales_ids
    tickets = list(SupportTicket.objects.all())
    customers = seeded["summary"].customers
    assert 0.03 * customers < len({t.customer_id for t in tickets}) < 0.08 * customers
    assert {t.assignee_id for t in tickets} - {None} <= sales_ids
    for ticket in tickets:
        finished = ticket.status in ("resolved", "closed")
        assert (ticket.resolved_at is not None) == finished
        assert ticket.due_at > ticket.opened_at
    assert SupportTicket.objects.overdue().exists()
    assert TicketReply.objects.exists()
    users = set(Interaction.objects.values_list("user_id", flat=True))
    assert users and users <= sales_ids


@pytest.mark.django_db
def test_existing_customers_are_kept_unless_appending_or_flushing(make_user):
    flush_customer_data()
    seed_demo_data(customers=20, purchases_per_customer=2, end=END)
    with pytest.raises(DemoDataError):
        seed_demo_data(customers=20, purchases_per_customer=2, end=END)
    with pytest.raises(CommandError, match="already has customers"):
        call_command("seed_demo", "--customers", "5", "--skip-checks", verbosity=0)
    seed_demo_data(customers=30, purchases_per_customer=2, end=END, existing="append")
    assert Customer.objects.count() == 50
    user = make_user(Role.SALES)
    call_command("seed_demo", "--customers", "7", "--flush", "--skip-checks", verbosity=0)
    assert Customer.objects.count() == 7
    user.refresh_from_db()  # users survive a flush


@pytest.mark.django_db
def test_setup_demo_seeds_once_only():
    flush_customer_data()
    call_command("setup_demo", "--customers", "40", "--skip-checks", verbosity=0)
    assert Customer.objects.count() == 40
    owned = Customer.objects.exclude(owner=None)
    assert not owned.exclude(owner__groups__name=Role.SALES.value).exists()
    call_command("setup_demo", "--customers", "40", "--skip-checks", verbosity=0)
    assert Customer.objects.count() == 40


@pytest.mark.django_db
def test_bulk_load_restores_every_index_and_constraint():
    if connection.vendor != "postgresql":
        pytest.skip("the COPY fast path runs on PostgreSQL only")

    def schema():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexdef FROM pg_indexes WHERE tablename LIKE 'customers_%%' "
                "UNION ALL SELECT conrelid::regclass::text || pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE conrelid::regclass::text LIKE 'customers_%%'"
            )
            return sorted(row[0] for row in cursor.fetchall())

    flush_customer_data()
    before = schema()
    seed_demo_data(customers=200, purchases_per_customer=3, end=END)
    assert schema() == before
    assert Purchase.objects.count() > 300
