"""Personal data requests: a customer's copy of everything held on them, and erasure that
leaves nothing identifying behind (history included) while revenue figures stay."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from decimal import Decimal

import pytest

from customers.consent import record_consent
from customers.merging import merge_customers
from customers.models import (
    ConsentRecord,
    ConsentSource,
    Customer,
    ErasureLog,
    MergeLog,
    PersonalDataExport,
    Purchase,
    PurchaseItem,
    SupportTicket,
    TicketReply,
)
from customers.privacy import erase_customer, export_customer_data, is_erased_email
from tests.crm.test_auth import csrf_token
from tests.customers.factories import (
    CustomerFactory,
    InteractionFactory,
    ProductFactory,
    PurchaseFactory,
    PurchaseItemFactory,
    SupportTicketFactory,
    TagFactory,
    TicketReplyFactory,
)
from tests.customers.test_quality import api_client, validate_against_schema

pytestmark = pytest.mark.django_db

PERSONAL_VALUES = ["山田", "花子", "ヤマダ", "ハナコ", "Hanako.Yamada@Example.JP", "09012345678"]


@pytest.fixture
def hanako(sales):
    customer = CustomerFactory(
        external_id="SHOP-0001",
        family_name="山田",
        given_name="花子",
        family_name_kana="ヤマダ",
        given_name_kana="ハナコ",
        email="Hanako.Yamada@Example.JP",
        phone="09012345678",
        birthday=date(1985, 4, 3),
        gender="female",
        prefecture="27",
        postal_code="5300001",
        address="大阪市北区梅田1-1",
        sns_accounts={"instagram": "@hanako"},
        notes="抹茶味が好き",
    )
    customer.tags.add(TagFactory(name="VIP"), TagFactory(name="定期便"))
    record_consent(
        customer=customer, opted_in=True, source=ConsentSource.WEB_FORM, form="会員登録フォーム"
    )
    customer.address = "大阪市北区梅田2-2"  # a change, so the history holds two versions
    customer.save()
    purchase = PurchaseFactory(customer=customer, order_id="O-1", total=Decimal("5940"))
    PurchaseItemFactory(
        purchase=purchase,
        product=ProductFactory(sku="TEA-01", name="抹茶"),
        quantity=3,
        unit_price=Decimal("1980"),
    )
    ticket = SupportTicketFactory(customer=customer, subject="配送先の変更", body="住所は梅田です")
    TicketReplyFactory(ticket=ticket, author=sales, body="山田様、承知しました")
    InteractionFactory(customer=customer, user=sales, summary="山田様に新茶を案内")
    return customer


# --- Export -----------------------------------------------------------------------------------


def test_export_holds_everything_on_the_customer(hanako, sales):
    data = export_customer_data(hanako)

    profile = data["customer"]
    assert profile["external_id"] == "SHOP-0001"
    assert profile["family_name_kana"] == "ヤマダ"
    assert profile["birthday"] == "1985-04-03"
    assert profile["sns_accounts"] == {"instagram": "@hanako"}
    assert profile["email_opt_in"] is True
    assert sorted(profile["tags"]) == ["VIP", "定期便"]
    assert [r["form"] for r in data["consent_records"]] == ["会員登録フォーム"]
    assert data["purchases"] == [
        {
            "order_id": "O-1",
            "purchased_at": "2026-01-01T03:00:00+00:00",
            "channel": "ecommerce",
            "status": "completed",
            "total": "5940.00",
            "items": [{"sku": "TEA-01", "product": "抹茶", "quantity": 3, "unit_price": "1980.00"}],
        }
    ]
    [ticket] = data["tickets"]
    assert (ticket["subject"], ticket["body"]) == ("配送先の変更", "住所は梅田です")
    assert [(r["author"], r["body"]) for r in ticket["replies"]] == [
        ("sales", "山田様、承知しました")
    ]
    assert [i["summary"] for i in data["interactions"]] == ["山田様に新茶を案内"]
    addresses = [version["values"]["address"] for version in data["history"]]
    assert "大阪市北区梅田1-1" in addresses and "大阪市北区梅田2-2" in addresses
    json.dumps(data)  # JSON-ready as it is


def test_export_needs_the_same_queries_for_one_purchase_or_many(
    hanako, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12) as few:
        export_customer_data(hanako)
    PurchaseItemFactory.create_batch(10, purchase__customer=hanako)
    with django_assert_max_num_queries(len(few.captured_queries)):
        export_customer_data(hanako)


def test_export_page_downloads_json_and_logs_who(client_as, sales, hanako):
    response = client_as(sales).get(f"/data-quality/customers/{hanako.pk}/personal-data/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["customer"]["family_name"] == "山田"
    log = PersonalDataExport.objects.get()
    assert (log.customer, log.exported_by) == (hanako, sales)


def test_marketer_cannot_export(client_as, marketer, hanako):
    response = client_as(marketer).get(f"/data-quality/customers/{hanako.pk}/personal-data/")
    assert response.status_code == 403
    assert not PersonalDataExport.objects.exists()


def test_export_of_an_unknown_customer_is_a_404(client_as, admin_member):
    assert (
        client_as(admin_member).get("/data-quality/customers/999999/personal-data/").status_code
        == 404
    )


# --- Erasure ----------------------------------------------------------------------------------


def test_erasure_removes_personal_data_and_keeps_purchases(hanako, admin_member):
    ticket = hanako.tickets.get()
    log = erase_customer(customer=hanako, by=admin_member)

    hanako.refresh_from_db()
    assert hanako.is_erased
    assert hanako.external_id == f"erased-{hanako.pk}"
    for name in ("family_name", "given_name", "family_name_kana", "given_name_kana", "email"):
        assert getattr(hanako, name) == ""
    assert (hanako.phone, hanako.postal_code, hanako.address, hanako.notes) == ("", "", "", "")
    assert hanako.birthday is None
    assert hanako.sns_accounts == {}
    assert not hanako.tags.exists()
    assert hanako.email_opt_in is False
    assert hanako.consent_records.first().opted_in is False  # the opt-out is on record
    # Gender and prefecture identify nobody on their own and keep area analysis whole.
    assert (hanako.gender, hanako.prefecture) == ("female", "27")
    assert hanako.display_name == f"erased-{hanako.pk}"
    assert not Customer.objects.search("ヤマダ").exists()

    purchase = Purchase.objects.get(order_id="O-1")
    assert purchase.customer == hanako and purchase.total == Decimal("5940")
    assert PurchaseItem.objects.get(purchase=purchase).quantity == 3

    ticket.refresh_from_db()
    assert (ticket.subject, ticket.body) == ("", "")
    assert TicketReply.objects.get(ticket=ticket).body == ""
    assert hanako.interactions.get().summary == ""

    assert log.erased_by == admin_member
    expected = hashlib.sha256(b"hanako.yamada@example.jp").hexdigest()
    assert log.email_hash == expected


def test_history_keeps_nothing_that_was_erased(hanako, admin_member):
    assert hanako.history.count() >= 2
    erase_customer(customer=hanako, by=admin_member)

    history_values = [
        str(value)
        for version in Customer.history.filter(id=hanako.pk).values()
        for value in version.values()
    ]
    ticket_history = [
        str(value)
        for version in SupportTicket.history.filter(customer_id=hanako.pk).values()
        for value in version.values()
    ]
    for personal in [*PERSONAL_VALUES, "SHOP-0001", "1985-04-03", "梅田", "抹茶味", "配送先"]:
        assert not any(personal in value for value in history_values), personal
        assert not any(personal in value for value in ticket_history), personal
    latest = Customer.history.filter(id=hanako.pk).first()
    assert latest.history_user == admin_member  # who erased stays in the audit trail


def test_erased_address_is_recognised_without_being_kept(hanako, admin_member):
    erase_customer(customer=hanako, by=admin_member)
    assert not ErasureLog.objects.filter(email_hash__icontains="example").exists()
    assert is_erased_email("hanako.yamada@example.jp")
    assert is_erased_email("  ＨＡＮＡＫＯ.yamada@example.jp ")  # full width, spaces
    assert not is_erased_email("someone.else@example.jp")
    assert not is_erased_email("")


def test_erasing_twice_is_harmless(hanako, admin_member, marketer):
    first = erase_customer(customer=hanako, by=admin_member)
    consent_records = ConsentRecord.objects.count()
    history = hanako.history.count()

    again = erase_customer(customer=hanako, by=marketer)

    assert again == first and again.erased_by == admin_member
    assert ErasureLog.objects.count() == 1
    assert ConsentRecord.objects.count() == consent_records
    assert hanako.history.count() == history


def test_erasure_also_clears_shop_ids_of_merged_duplicates(hanako, admin_member):
    twin = CustomerFactory(external_id="SHOP-0002", email="hanako.yamada@example.jp")
    merge_customers(keep=hanako, duplicates=[twin], by=admin_member)
    erase_customer(customer=hanako, by=admin_member)
    log = MergeLog.objects.get()
    assert log.merged_external_id == f"erased-{twin.pk}"


def test_customer_without_email_is_erased_with_an_empty_hash(admin_member):
    customer = CustomerFactory(email="")
    assert erase_customer(customer=customer, by=admin_member).email_hash == ""


def test_erase_page_asks_for_confirmation(client_as, admin_member, hanako):
    client = client_as(admin_member)
    url = f"/data-quality/customers/{hanako.pk}/erase/"
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert "cannot be restored" in page.content.decode()

    unconfirmed = client.post(url, {"csrfmiddlewaretoken": csrf_token(page)})
    assert unconfirmed.status_code == 400
    hanako.refresh_from_db()
    assert not hanako.is_erased

    confirmed = client.post(url, {"csrfmiddlewaretoken": csrf_token(page), "confirm": "on"})
    assert confirmed.status_code == 302
    assert confirmed["Location"] == f"/customers/{hanako.pk}/"
    hanako.refresh_from_db()
    assert hanako.is_erased
    assert ErasureLog.objects.get().erased_by == admin_member

    again = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    assert "already erased" in again.content.decode()


@pytest.mark.parametrize("role", ["sales", "marketer"])
def test_only_admins_erase(request, client_as, role, hanako):
    client = client_as(request.getfixturevalue(role))
    url = f"/data-quality/customers/{hanako.pk}/erase/"
    assert client.get(url).status_code == 403
    hanako.refresh_from_db()
    assert not hanako.is_erased


def test_erase_page_needs_a_signed_in_user(csrf_client, hanako):
    response = csrf_client.get(f"/data-quality/customers/{hanako.pk}/erase/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- API --------------------------------------------------------------------------------------


def test_api_export(sales, hanako):
    response = api_client(sales).get(f"/api/v1/customers/{hanako.pk}/personal-data/")
    assert response.status_code == 200
    assert response.json()["purchases"][0]["total"] == "5940.00"
    assert PersonalDataExport.objects.get().exported_by == sales


def test_api_erase(admin_member, hanako):
    client = api_client(admin_member)
    response = client.post(f"/api/v1/customers/{hanako.pk}/erase/")
    assert response.status_code == 200
    body = response.json()
    assert body["customer"] == hanako.pk and body["erased_by"] == admin_member.username
    hanako.refresh_from_db()
    assert hanako.is_erased
    assert client.post(f"/api/v1/customers/{hanako.pk}/erase/").json() == body  # idempotent


@pytest.mark.parametrize(
    ("role", "method", "path", "expected"),
    [
        ("marketer", "get", "personal-data", 403),
        ("marketer", "post", "erase", 403),
        ("sales", "post", "erase", 403),
        ("sales", "get", "personal-data", 200),
        ("admin_member", "get", "personal-data", 200),
    ],
)
def test_api_permissions(request, hanako, role, method, path, expected):
    client = api_client(request.getfixturevalue(role))
    response = getattr(client, method)(f"/api/v1/customers/{hanako.pk}/{path}/")
    assert response.status_code == expected


def test_api_unknown_customer_is_a_404(admin_member):
    response = api_client(admin_member).post("/api/v1/customers/999999/erase/")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_api_export_matches_the_documented_schema(admin_member, hanako):
    client = api_client(admin_member)
    response = client.get(f"/api/v1/customers/{hanako.pk}/personal-data/")
    validate_against_schema(response, "/api/v1/customers/{id}/personal-data/", "get", id=hanako.pk)
    erased = client.post(f"/api/v1/customers/{hanako.pk}/erase/")
    validate_against_schema(erased, "/api/v1/customers/{id}/erase/", "post", id=hanako.pk)
    after = client.get(f"/api/v1/customers/{hanako.pk}/personal-data/")
    validate_against_schema(after, "/api/v1/customers/{id}/personal-data/", "get", id=hanako.pk)


def test_erasure_deletes_the_outbox_copies_of_mail_to_the_customer(hanako, admin_member):
    from crm.models import OutboxEmail

    def mail(to: str, **extra) -> OutboxEmail:
        return OutboxEmail.objects.create(
            from_email="shop@example.jp", to=to, subject="お知らせ", body="山田様", **extra
        )

    to_her = mail("山田 花子 <hanako.yamada@example.jp>")
    copied_to_her = mail("staff@example.jp", bcc="HANAKO.YAMADA@example.jp")
    lookalike = mail("xhanako.yamada@example.jp")
    other = mail("someone@example.jp, other@example.jp")

    erase_customer(customer=hanako, by=admin_member)

    remaining = set(OutboxEmail.objects.values_list("id", flat=True))
    assert remaining == {lookalike.id, other.id}
    assert to_her.id not in remaining and copied_to_her.id not in remaining
