"""Merging probable duplicates: every related row moves to the kept record, its gaps are
filled, the latest consent stands, the duplicate leaves no trace but the MergeLog, and a
failure changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError

from customers.consent import record_consent
from customers.merging import merge_customers
from customers.models import (
    ConsentRecord,
    ConsentSource,
    Customer,
    Interaction,
    MergeLog,
    Purchase,
    PurchaseItem,
    SupportTicket,
    TicketReply,
)
from customers.privacy import erase_customer
from customers.quality import duplicate_groups
from tests.crm.test_auth import csrf_token
from tests.customers.factories import (
    CustomerFactory,
    InteractionFactory,
    PurchaseFactory,
    PurchaseItemFactory,
    SupportTicketFactory,
    TagFactory,
    TicketReplyFactory,
)
from tests.customers.test_quality import api_client, validate_against_schema

pytestmark = pytest.mark.django_db


def at(day: int) -> datetime:
    return datetime(2026, 1, day, 12, 0, tzinfo=UTC)


@pytest.fixture
def kept():
    customer = CustomerFactory(
        external_id="SHOP-1",
        family_name="山田",
        given_name="太郎",
        email="taro@example.jp",
        phone="",
        birthday=None,
        notes="贈答用の包装を希望",
    )
    customer.tags.add(TagFactory(name="VIP"))
    record_consent(customer=customer, opted_in=True, source=ConsentSource.CHECKOUT, at=at(1))
    PurchaseFactory(customer=customer, order_id="K-1", total=Decimal("1000"))
    return customer


@pytest.fixture
def twin(sales):
    customer = CustomerFactory(
        external_id="SHOP-2",
        family_name="ヤマダ",  # differs: the kept record's value stays
        given_name="タロウ",
        email="TARO@example.jp",
        phone="09012345678",
        birthday=date(1988, 8, 8),
        postal_code="1500001",
        sns_accounts={"line": "taro"},
        notes="平日昼は不在",
    )
    customer.tags.add(TagFactory(name="VIP"), TagFactory(name="定期便"))
    record_consent(customer=customer, opted_in=False, source=ConsentSource.UNSUBSCRIBE, at=at(5))
    purchase = PurchaseFactory(customer=customer, order_id="T-1", total=Decimal("2500"))
    PurchaseItemFactory(purchase=purchase, quantity=1, unit_price=Decimal("2500"))
    PurchaseFactory(customer=customer, order_id="T-2", total=Decimal("800"))
    ticket = SupportTicketFactory(customer=customer)
    TicketReplyFactory(ticket=ticket, author=sales)
    InteractionFactory(customer=customer, user=sales)
    customer.address = "渋谷区"  # a second version in its history
    customer.save()
    return customer


def test_merge_moves_every_related_row_and_leaves_nothing_of_the_duplicate(
    kept, twin, admin_member
):
    twin_id = twin.pk
    twin_history = twin.history.count()
    kept_history = kept.history.count()

    [log] = merge_customers(keep=kept, duplicates=[twin], by=admin_member)

    assert not Customer.objects.filter(pk=twin_id).exists()
    assert sorted(Purchase.objects.filter(customer=kept).values_list("order_id", flat=True)) == [
        "K-1",
        "T-1",
        "T-2",
    ]
    assert PurchaseItem.objects.get().purchase.customer == kept
    ticket = SupportTicket.objects.get()
    assert ticket.customer == kept and TicketReply.objects.get().ticket == ticket
    assert Interaction.objects.get().customer == kept
    assert ConsentRecord.objects.filter(customer=kept).count() == 2
    assert sorted(kept.tags.values_list("name", flat=True)) == ["VIP", "定期便"]
    # Nothing points at the removed id any more, history included.
    for model, field in [
        (Purchase, "customer_id"),
        (SupportTicket, "customer_id"),
        (Interaction, "customer_id"),
        (ConsentRecord, "customer_id"),
        (Customer.tags.through, "customer_id"),
        (Customer.history.model, "id"),
        (SupportTicket.history.model, "customer_id"),
    ]:
        assert not model.objects.filter(**{field: twin_id}).exists(), model
    # The twin's versions now belong to the kept record, plus one for the merge itself.
    assert kept.history.count() == kept_history + twin_history + 1
    assert kept.history.first().history_user == admin_member

    assert (log.kept, log.merged_customer_id, log.merged_external_id) == (kept, twin_id, "SHOP-2")
    assert log.merged_by == admin_member
    assert log.moved == {
        "purchases": 2,
        "tickets": 1,
        "interactions": 1,
        "consent_records": 1,
        "tags": 2,
        "history": twin_history,
    }


def test_merge_fills_only_empty_fields(kept, twin, admin_member):
    merge_customers(keep=kept, duplicates=[twin], by=admin_member)
    kept.refresh_from_db()
    assert (kept.external_id, kept.family_name, kept.email) == ("SHOP-1", "山田", "taro@example.jp")
    assert (kept.phone, kept.birthday, kept.postal_code) == (
        "09012345678",
        date(1988, 8, 8),
        "1500001",
    )
    assert kept.address == "渋谷区"
    assert kept.sns_accounts == {"line": "taro"}
    assert kept.notes == "贈答用の包装を希望\n\n平日昼は不在"
    assert Customer.objects.search("09012345678").get() == kept  # search text rebuilt
    log = MergeLog.objects.get()
    assert {"phone", "birthday", "postal_code", "address", "sns_accounts", "notes"} <= set(
        log.filled_fields
    )
    assert "family_name" not in log.filled_fields


def test_the_more_recent_consent_decision_stands(kept, twin, admin_member):
    # The twin unsubscribed on the 5th, after the kept record opted in on the 1st.
    merge_customers(keep=kept, duplicates=[twin], by=admin_member)
    kept.refresh_from_db()
    assert (kept.email_opt_in, kept.email_opt_in_at) == (False, at(5))
    assert kept.consent_records.first().opted_in is False  # the state follows the latest record


def test_an_older_consent_decision_does_not_override(admin_member):
    keep = CustomerFactory()
    record_consent(customer=keep, opted_in=True, source=ConsentSource.WEB_FORM, at=at(9))
    old = CustomerFactory()
    record_consent(customer=old, opted_in=False, source=ConsentSource.PAPER, at=at(2))
    merge_customers(keep=keep, duplicates=[old], by=admin_member)
    keep.refresh_from_db()
    assert (keep.email_opt_in, keep.email_opt_in_at) == (True, at(9))


def test_a_group_of_three_merges_at_once_and_is_no_longer_listed(admin_member):
    phone = "0312345678"
    first, second, third = (CustomerFactory(phone=phone) for _ in range(3))
    PurchaseFactory(customer=third)
    assert len(duplicate_groups()) == 1
    logs = merge_customers(keep=second, duplicates=[first, third], by=admin_member)
    assert [log.merged_customer_id for log in logs] == [first.pk, third.pk]
    assert list(Customer.objects.all()) == [second]
    assert second.purchases.count() == 1
    assert duplicate_groups() == []


def test_earlier_merges_follow_the_record_they_were_merged_into(admin_member):
    a, b, c = CustomerFactory(), CustomerFactory(), CustomerFactory()
    merge_customers(keep=b, duplicates=[a], by=admin_member)
    merge_customers(keep=c, duplicates=[b], by=admin_member)
    assert set(MergeLog.objects.values_list("kept", flat=True)) == {c.pk}


@pytest.mark.parametrize("case", ["itself", "twice", "none", "erased"])
def test_refused_merges_change_nothing(kept, twin, admin_member, case):
    duplicates = {"itself": [kept], "twice": [twin, twin], "none": [], "erased": [twin]}[case]
    if case == "erased":
        erase_customer(customer=twin, by=admin_member)
    with pytest.raises(ValidationError):
        merge_customers(keep=kept, duplicates=duplicates, by=admin_member)
    assert Customer.objects.count() == 2
    assert not MergeLog.objects.exists()


def test_a_failure_part_way_leaves_both_records_as_they_were(kept, twin, admin_member, monkeypatch):
    twin_history = twin.history.count()

    def database_down(*args, **kwargs):
        raise DatabaseError("connection lost")

    # The very last write fails, after every row has been moved and the twin deleted.
    monkeypatch.setattr(MergeLog.objects, "bulk_create", database_down)
    with pytest.raises(DatabaseError):
        merge_customers(keep=kept, duplicates=[twin], by=admin_member)

    twin.refresh_from_db()
    kept.refresh_from_db()
    assert twin.purchases.count() == 2 and twin.tickets.count() == 1
    assert twin.history.count() == twin_history
    assert kept.phone == "" and kept.purchases.count() == 1
    assert not MergeLog.objects.exists()


# --- Pages ------------------------------------------------------------------------------------


def test_merge_from_the_duplicates_page(client_as, admin_member, kept, twin):
    client = client_as(admin_member)
    preview = client.get(
        f"/data-quality/merge/?keep={kept.pk}&merge={kept.pk}&merge={twin.pk}",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "SHOP-2" in html and "cannot be undone" in html
    moved = html[html.index("Purchases</dt>") :]
    assert moved.startswith("Purchases</dt><dd>2</dd>")
    assert "phone, birthday" in html[html.index("Fields filled in") :]
    assert Customer.objects.count() == 2  # a preview changes nothing

    response = client.post(
        "/data-quality/merge/",
        {"keep": kept.pk, "merge": [twin.pk], "csrfmiddlewaretoken": csrf_token(preview)},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert response.status_code == 302
    assert response["Location"] == "/data-quality/duplicates/"
    assert list(Customer.objects.all()) == [kept]
    assert MergeLog.objects.get().merged_by == admin_member
    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "1 record merged into 山田 太郎" in page


def test_merge_page_reports_bad_choices(client_as, admin_member, kept):
    client = client_as(admin_member)
    response = client.get(f"/data-quality/merge/?keep={kept.pk}&merge={kept.pk}")
    assert response.status_code == 400
    missing = client.get(f"/data-quality/merge/?keep={kept.pk}&merge=999999")
    assert missing.status_code == 400
    assert client.get("/data-quality/merge/").status_code == 400


@pytest.mark.parametrize("role", ["sales", "marketer"])
def test_only_admins_merge(request, client_as, role, kept, twin):
    client = client_as(request.getfixturevalue(role))
    assert client.get(f"/data-quality/merge/?keep={kept.pk}&merge={twin.pk}").status_code == 403
    assert Customer.objects.count() == 2


# --- API --------------------------------------------------------------------------------------


def test_api_merge(admin_member, kept, twin):
    client = api_client(admin_member)
    response = client.post(
        "/api/v1/data-quality/merge/",
        {"keep": kept.pk, "merge": [twin.pk, twin.pk]},
        content_type="application/json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["kept"] == kept.pk
    [merge] = body["merges"]
    assert (merge["merged_external_id"], merge["moved"]["purchases"]) == ("SHOP-2", 2)
    assert not Customer.objects.filter(pk=twin.pk).exists()
    validate_against_schema(response, "/api/v1/data-quality/merge/", "post")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"keep": "KEPT", "merge": ["KEPT"]}, 409, "conflict"),  # into itself
        ({"keep": "KEPT", "merge": [999999]}, 404, "not_found"),
        ({"keep": "KEPT", "merge": []}, 400, "min_length"),
        ({"keep": 0, "merge": ["KEPT"]}, 400, "min_value"),
    ],
)
def test_api_merge_errors(admin_member, kept, twin, body, status, code):
    def real(value):
        return kept.pk if value == "KEPT" else value

    body = {"keep": real(body["keep"]), "merge": [real(value) for value in body["merge"]]}
    response = api_client(admin_member).post(
        "/api/v1/data-quality/merge/", body, content_type="application/json"
    )
    assert response.status_code == status
    assert response.json()["errors"][0]["code"] == code
    assert Customer.objects.count() == 2
    validate_against_schema(response, "/api/v1/data-quality/merge/", "post")


@pytest.mark.parametrize("role", ["sales", "marketer"])
def test_api_merge_is_for_admins(request, role, kept, twin):
    response = api_client(request.getfixturevalue(role)).post(
        "/api/v1/data-quality/merge/",
        {"keep": kept.pk, "merge": [twin.pk]},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert Customer.objects.count() == 2
