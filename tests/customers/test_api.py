"""The REST API of customers, products, purchases (with the bulk upsert), tickets and
interactions, as an integration or a sales tool would use it: token authentication, JSON,
Japanese data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token

from customers.models import (
    ConsentRecord,
    ConsentSource,
    Customer,
    ImportJob,
    Interaction,
    Product,
    Purchase,
    SupportTicket,
    TicketReply,
    TicketStatus,
)
from tests.customers.factories import (
    CustomerFactory,
    InteractionFactory,
    ProductFactory,
    PurchaseFactory,
    PurchaseItemFactory,
    SupportTicketFactory,
    TagFactory,
)

pytestmark = pytest.mark.django_db


class API:
    """A JSON client authenticated with an API token, answering in English."""

    def __init__(self, user=None):
        headers = {"HTTP_ACCEPT_LANGUAGE": "en"}
        if user is not None:
            headers["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
        self.client = Client(**headers)

    def get(self, url, params=None):
        return self.client.get(url, params or {})

    def post(self, url, data):
        return self.client.post(url, data, content_type="application/json")

    def put(self, url, data):
        return self.client.put(url, data, content_type="application/json")

    def patch(self, url, data):
        return self.client.patch(url, data, content_type="application/json")

    def delete(self, url):
        return self.client.delete(url)


@pytest.fixture
def api(sales):
    return API(sales)


def errors(response) -> dict[str, str]:
    """attr -> code of an error response in the standard format."""
    return {error["attr"]: error["code"] for error in response.json()["errors"]}


def results(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return response.json()["results"]


# --- Customers -------------------------------------------------------------------------------


def test_create_customer_normalises_what_people_type(api, sales):
    response = api.post(
        "/api/v1/customers/",
        {
            "external_id": "C-1001",
            "family_name": "山田",
            "given_name": "太郎",
            "family_name_kana": "やまだ",
            "given_name_kana": "ﾀﾛｳ",
            "email": "Yamada@Example.JP",
            "phone": "090-1234-5678",
            "postal_code": "〒100-0001",
            "prefecture": "13",
            "birthday": "1985-04-12",
            "gender": "male",
            "channel": "ecommerce",
            "sns_accounts": {"line": "@yamada"},
            "tags": ["VIP", "定期便", "VIP", " "],
            "owner": sales.pk,
            "notes": "ギフト包装を希望",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    customer = Customer.objects.get(external_id="C-1001")
    assert body["id"] == customer.pk
    assert (customer.family_name_kana, customer.given_name_kana) == ("ヤマダ", "タロウ")
    assert customer.phone == "09012345678"
    assert customer.postal_code == "1000001"
    assert customer.email == "yamada@example.jp"
    assert sorted(body["tags"]) == ["VIP", "定期便"]
    assert body["prefecture"] == "13"
    assert body["owner"] == sales.pk
    assert body["email_opt_in"] is False
    assert "search_text" not in body
    assert Customer.objects.search("ﾔﾏﾀﾞ").get() == customer


def test_customer_validation_errors_name_the_field(api):
    response = api.post(
        "/api/v1/customers/",
        {
            "external_id": "C-1002",
            "family_name_kana": "yamada",
            "phone": "12-34",
            "postal_code": "1000",
            "prefecture": "48",
            "birthday": (timezone.localdate() + timedelta(days=1)).isoformat(),
        },
    )
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert errors(response) == {
        "family_name_kana": "pattern",
        "phone": "pattern",
        "postal_code": "pattern",
        "prefecture": "invalid_choice",
        "birthday": "invalid",
    }
    messages = {error["attr"]: error["detail"] for error in response.json()["errors"]}
    assert messages["family_name_kana"] == "Enter the reading in kana (hiragana or katakana)."
    assert "10 to 15 digits" in messages["phone"]
    assert not Customer.objects.exists()


def test_values_of_another_json_type_are_refused(api):
    response = api.post("/api/v1/customers/", {"external_id": 1001, "prefecture": 13, "owner": "1"})
    assert response.status_code == 400
    assert errors(response) == {
        "external_id": "invalid",
        "prefecture": "invalid_choice",
        "owner": "incorrect_type",
    }


def test_duplicate_external_id_is_a_conflict(api):
    CustomerFactory(external_id="C-1003")
    response = api.post("/api/v1/customers/", {"external_id": "C-1003"})
    assert response.status_code == 409
    assert response.json()["errors"] == [
        {
            "code": "unique",
            "detail": "Another customer already has this external ID.",
            "attr": "external_id",
        }
    ]


def test_unknown_owner_is_not_found(api):
    response = api.post("/api/v1/customers/", {"external_id": "C-1004", "owner": 999999})
    assert response.status_code == 404
    assert errors(response) == {"owner": "not_found"}


def test_consent_change_writes_a_consent_record(api, sales):
    customer = CustomerFactory()
    url = f"/api/v1/customers/{customer.pk}/"
    response = api.patch(
        url,
        {
            "email_opt_in": True,
            "consent_source": "web_form",
            "consent_form": "春の新商品キャンペーン応募フォーム",
        },
    )
    assert response.status_code == 200, response.content
    assert response.json()["email_opt_in"] is True
    assert response.json()["email_opt_in_at"]
    record = ConsentRecord.objects.get(customer=customer)
    assert record.opted_in is True
    assert record.source == ConsentSource.WEB_FORM
    assert record.form == "春の新商品キャンペーン応募フォーム"
    assert record.recorded_by == sales

    # Withdrawing it is recorded too; sending the same state again records nothing.
    api.patch(url, {"email_opt_in": False, "consent_source": "unsubscribe"})
    api.patch(url, {"email_opt_in": False, "consent_source": "unsubscribe"})
    assert list(
        ConsentRecord.objects.filter(customer=customer).values_list("opted_in", flat=True)
    ) == [False, True]


def test_consent_cannot_change_without_saying_how(api):
    customer = CustomerFactory()
    response = api.patch(f"/api/v1/customers/{customer.pk}/", {"email_opt_in": True})
    assert response.status_code == 400
    assert errors(response) == {"consent_source": "required"}
    response = api.patch(f"/api/v1/customers/{customer.pk}/", {"consent_source": "paper"})
    assert errors(response) == {"email_opt_in": "required"}
    customer.refresh_from_db()
    assert customer.email_opt_in is False
    assert not ConsentRecord.objects.exists()


def test_update_replaces_tags_only_when_given(api):
    customer = CustomerFactory()
    customer.tags.set([TagFactory(name="VIP")])
    url = f"/api/v1/customers/{customer.pk}/"
    response = api.patch(url, {"given_name": "花子"})
    assert response.json()["tags"] == ["VIP"]
    response = api.patch(url, {"tags": ["メルマガ希望"]})
    assert response.json()["tags"] == ["メルマガ希望"]


def test_erased_customer_cannot_be_edited(api):
    customer = CustomerFactory(erased_at=timezone.now())
    response = api.patch(f"/api/v1/customers/{customer.pk}/", {"family_name": "山田"})
    assert response.status_code == 409


def test_customers_cannot_be_deleted_through_the_api(api):
    customer = CustomerFactory()
    assert api.delete(f"/api/v1/customers/{customer.pk}/").status_code == 405
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_search_finds_kana_however_it_is_typed(api):
    yamada = CustomerFactory(family_name="山田", family_name_kana="ヤマダ", given_name_kana="")
    CustomerFactory(family_name="佐藤", family_name_kana="サトウ", given_name_kana="")
    for typed in ("ﾔﾏﾀﾞ", "やまだ", "ヤマダ", "山田"):
        found = results(api.get("/api/v1/customers/", {"q": typed}))
        assert [row["id"] for row in found] == [yamada.pk], typed


def test_customer_filters(api, sales, make_user):
    now = timezone.now()
    other_owner = make_user()
    tokyo = CustomerFactory(prefecture="13", channel="line", owner=sales)
    tokyo.tags.set([TagFactory(name="VIP")])
    osaka = CustomerFactory(prefecture="27", channel="event", owner=other_owner)
    Customer.objects.filter(pk=osaka.pk).update(
        email_opt_in=True, email_opt_in_at=now, created_at=now - timedelta(days=30)
    )

    def ids(**params):
        return [row["id"] for row in results(api.get("/api/v1/customers/", params))]

    assert ids(prefecture="13") == [tokyo.pk]
    assert ids(channel="event") == [osaka.pk]
    assert ids(owner=sales.pk) == [tokyo.pk]
    assert ids(tag="VIP") == [tokyo.pk]
    assert ids(email_opt_in="true") == [osaka.pk]
    assert ids(email_opt_in="false") == [tokyo.pk]
    assert ids(created_before=(now - timedelta(days=1)).isoformat()) == [osaka.pk]
    assert ids(created_after=(now - timedelta(days=1)).isoformat()) == [tokyo.pk]
    assert ids(owner=2**63 - 1) == []
    assert ids(ordering="created_at") == [osaka.pk, tokyo.pk]


def test_bad_filter_values_are_400_not_ignored(api):
    response = api.get("/api/v1/customers/", {"email_opt_in": "yes", "owner": "x"})
    assert response.status_code == 400
    assert errors(response) == {"email_opt_in": "invalid", "owner": "invalid"}


def test_list_is_newest_first_with_cursor_pages_and_no_count(api):
    customers = CustomerFactory.create_batch(5)
    page = api.get("/api/v1/customers/", {"page_size": 2}).json()
    assert set(page) == {"next", "previous", "results"}  # no COUNT(*) over a million rows
    seen, url = [], "/api/v1/customers/?page_size=2"
    while url:
        page = api.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == [c.pk for c in reversed(customers)]


def test_list_queries_do_not_grow_with_the_page(api):
    def queries(count: int) -> int:
        Customer.objects.all().delete()
        vip = TagFactory(name="VIP")
        for customer in CustomerFactory.create_batch(count):
            customer.tags.set([vip])
        with CaptureQueriesContext(connection) as captured:
            assert len(results(api.get("/api/v1/customers/"))) == count
        return len(captured)

    assert queries(2) == queries(20)


# --- Products --------------------------------------------------------------------------------


def test_product_crud_and_filters(api):
    response = api.post(
        "/api/v1/products/",
        {"sku": "TEA-001", "name": "静岡煎茶 100g", "category": "飲料", "price": 1280},
    )
    assert response.status_code == 201, response.content
    assert response.json()["price"] == "1280.00"
    product_id = response.json()["id"]
    ProductFactory(sku="SOAP-001", category="日用品")
    assert [p["sku"] for p in results(api.get("/api/v1/products/", {"category": "飲料"}))] == [
        "TEA-001"
    ]
    assert [p["sku"] for p in results(api.get("/api/v1/products/", {"sku": "SOAP-001"}))] == [
        "SOAP-001"
    ]
    response = api.patch(f"/api/v1/products/{product_id}/", {"price": "1380.50"})
    assert response.json()["price"] == "1380.50"
    assert api.delete(f"/api/v1/products/{product_id}/").status_code == 204
    assert not Product.objects.filter(sku="TEA-001").exists()


def test_product_rules(api):
    ProductFactory(sku="TEA-001")
    response = api.post("/api/v1/products/", {"sku": "TEA-001", "name": "煎茶"})
    assert response.status_code == 409
    assert errors(response) == {"sku": "unique"}
    response = api.post("/api/v1/products/", {"sku": "TEA-002", "name": "煎茶", "price": -1})
    assert response.status_code == 400
    response = api.post("/api/v1/products/", {"sku": "TEA-002", "name": "煎茶", "price": 1.5})
    assert errors(response) == {"price": "invalid"}  # decimals travel as strings


def test_product_on_a_purchase_cannot_be_deleted(api):
    item = PurchaseItemFactory()
    response = api.delete(f"/api/v1/products/{item.product_id}/")
    assert response.status_code == 409
    assert response.json()["errors"][0]["detail"] == (
        "This product appears on purchases and cannot be deleted."
    )
    assert Product.objects.filter(pk=item.product_id).exists()


# --- Purchases -------------------------------------------------------------------------------


def test_create_purchase_with_items_by_sku(api):
    customer = CustomerFactory(external_id="C-2001")
    ProductFactory(sku="TEA-001", name="静岡煎茶")
    ProductFactory(sku="CUP-001", name="湯呑み")
    response = api.post(
        "/api/v1/purchases/",
        {
            "order_id": "ORD-0001",
            "customer": customer.pk,
            "purchased_at": "2026-05-03T00:30:00+09:00",
            "channel": "ecommerce",
            "total": 3840,
            "items": [
                {"sku": "TEA-001", "quantity": 2, "unit_price": "1280"},
                {"sku": "CUP-001", "unit_price": 1280},
            ],
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["customer_external_id"] == "C-2001"
    assert body["status"] == "completed"
    assert body["total"] == "3840.00"
    assert body["purchased_at"] == "2026-05-02T15:30:00Z"
    assert sorted((i["sku"], i["name"], i["quantity"]) for i in body["items"]) == [
        ("CUP-001", "湯呑み", 1),
        ("TEA-001", "静岡煎茶", 2),
    ]


def test_purchase_with_an_unknown_sku_is_refused(api):
    customer = CustomerFactory()
    response = api.post(
        "/api/v1/purchases/",
        {
            "order_id": "ORD-0002",
            "customer": customer.pk,
            "purchased_at": "2026-05-03T10:00:00+09:00",
            "total": "1000",
            "items": [{"sku": "NO-SUCH-SKU", "unit_price": "1000"}],
        },
    )
    assert response.status_code == 404
    assert response.json()["errors"] == [
        {
            "code": "not_found",
            "detail": "No product has the SKU NO-SUCH-SKU.",
            "attr": "items.0.sku",
        }
    ]
    assert not Purchase.objects.exists()


def test_purchase_validation_errors(api):
    customer = CustomerFactory()
    ProductFactory(sku="X")
    response = api.post(
        "/api/v1/purchases/",
        {
            "order_id": " ",
            "customer": customer.pk,
            "purchased_at": "2026/05/03",
            "total": "-5",
            "status": "paid",
            "items": [{"sku": "X", "quantity": 0, "unit_price": "1"}],
        },
    )
    assert response.status_code == 400
    assert errors(response) == {
        "order_id": "blank",
        "purchased_at": "invalid",
        "total": "invalid",
        "status": "invalid_choice",
        "items.0.quantity": "min_value",
    }


def test_update_replaces_the_items(api):
    item = PurchaseItemFactory(quantity=1)
    ProductFactory(sku="NEW-001")
    url = f"/api/v1/purchases/{item.purchase_id}/"
    response = api.patch(url, {"items": [{"sku": "NEW-001", "quantity": 3, "unit_price": "500"}]})
    assert response.status_code == 200, response.content
    assert [(i["sku"], i["quantity"]) for i in response.json()["items"]] == [("NEW-001", 3)]
    response = api.patch(url, {"status": "refunded"})
    assert response.json()["status"] == "refunded"
    assert len(response.json()["items"]) == 1  # untouched when not given


def test_purchase_filters_and_ordering(api):
    yamada = CustomerFactory(external_id="C-3001")
    first = PurchaseFactory(customer=yamada, purchased_at=datetime(2026, 1, 5, tzinfo=UTC))
    second = PurchaseFactory(
        customer=yamada, purchased_at=datetime(2026, 2, 5, tzinfo=UTC), status="cancelled"
    )
    other = PurchaseFactory(purchased_at=datetime(2026, 3, 5, tzinfo=UTC), channel="store")

    def ids(**params):
        return [row["id"] for row in results(api.get("/api/v1/purchases/", params))]

    assert ids() == [other.pk, second.pk, first.pk]
    assert ids(customer=yamada.pk) == [second.pk, first.pk]
    assert ids(customer_external_id="C-3001", status="cancelled") == [second.pk]
    assert ids(channel="store") == [other.pk]
    assert ids(purchased_after="2026-02-01T00:00:00+09:00") == [other.pk, second.pk]
    assert ids(purchased_before="2026-02-01T00:00:00Z", ordering="purchased_at") == [first.pk]
    assert ids(ordering="purchased_at") == [first.pk, second.pk, other.pk]


# --- Bulk upsert -----------------------------------------------------------------------------


def bulk_row(order_id: str, customer: str = "C-4001", **fields) -> dict:
    return {
        "order_id": order_id,
        "customer_external_id": customer,
        "purchased_at": "2026-05-03T20:15:00+09:00",
        "total": "3960",
        **fields,
    }


def test_bulk_upsert_creates_then_updates(api):
    CustomerFactory(external_id="C-4001")
    ProductFactory(sku="TEA-001")
    payload = {
        "purchases": [
            bulk_row(
                "EC-1",
                items=[
                    {"sku": "TEA-001", "quantity": 2, "unit_price": "1280"},
                    {"sku": "GIFT-BOX", "quantity": 1, "unit_price": 1400},
                ],
            ),
            bulk_row("EC-2", purchased_at="2026-05-03", total=1000, channel="store"),
        ]
    }
    response = api.post("/api/v1/purchases/bulk/", payload)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "created": 2,
        "updated": 0,
        "committed": True,
        "products_created": 1,
        "error_count": 0,
        "errors": [],
    }
    ec1 = Purchase.objects.get(order_id="EC-1")
    assert ec1.total == Decimal("3960")
    assert sorted(ec1.items.values_list("product__sku", "quantity")) == [
        ("GIFT-BOX", 1),
        ("TEA-001", 2),
    ]
    assert Product.objects.get(sku="GIFT-BOX").name == "GIFT-BOX"
    # A date alone is midnight in Japan.
    assert Purchase.objects.get(order_id="EC-2").purchased_at == datetime(
        2026, 5, 2, 15, 0, tzinfo=UTC
    )

    payload["purchases"][0]["status"] = "cancelled"
    response = api.post("/api/v1/purchases/bulk/", payload)
    assert (response.json()["created"], response.json()["updated"]) == (0, 2)
    assert Purchase.objects.get(order_id="EC-1").status == "cancelled"
    assert Purchase.objects.count() == 2


def test_bulk_takes_what_the_schema_allows_beyond_the_usual_forms(api):
    CustomerFactory(external_id="C-4001")
    payload = {
        "purchases": [
            # Surrounding spaces are trimmed; a date-time without offset is Japan time.
            bulk_row(" EC-9 ", purchased_at="2026-05-03T20:15:00", total="1980.5"),
        ]
    }
    response = api.post("/api/v1/purchases/bulk/", payload)
    assert response.status_code == 200, response.content
    purchase = Purchase.objects.get()
    assert purchase.order_id == "EC-9"
    assert purchase.purchased_at == datetime(2026, 5, 3, 11, 15, tzinfo=UTC)
    assert purchase.total == Decimal("1980.50")


def test_bulk_with_an_unknown_customer_writes_nothing_by_default(api):
    CustomerFactory(external_id="C-4001")
    payload = {
        "purchases": [bulk_row("EC-1"), bulk_row("EC-2", customer="NOBODY"), bulk_row("EC-3")]
    }
    response = api.post("/api/v1/purchases/bulk/", payload)
    assert response.status_code == 404
    assert errors(response) == {"purchases.1.customer_external_id": "not_found"}
    assert "NOBODY" in response.json()["errors"][0]["detail"]
    assert not Purchase.objects.exists()


def test_bulk_keep_valid_rows_writes_the_others(api):
    CustomerFactory(external_id="C-4001")
    payload = {
        "keep_valid_rows": True,
        "purchases": [
            bulk_row("EC-1"),
            bulk_row("EC-2", customer="NOBODY", items=[{"sku": "A", "unit_price": "1"}]),
        ],
    }
    response = api.post("/api/v1/purchases/bulk/", payload)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["committed"], body["error_count"]) == (1, True, 1)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "customer_external_id")]
    assert list(Purchase.objects.values_list("order_id", flat=True)) == ["EC-1"]


def test_bulk_upserts_are_listed_with_the_imports(api, sales, admin_member, client_as):
    CustomerFactory(external_id="C-4001")
    api.post("/api/v1/purchases/bulk/", {"purchases": [bulk_row("EC-1"), bulk_row("EC-2")]})
    api.post("/api/v1/purchases/bulk/", {"purchases": [bulk_row("EC-1", total="10")]})
    refused = {"purchases": [bulk_row("EC-3"), bulk_row("EC-4", customer="NOBODY")]}
    assert api.post("/api/v1/purchases/bulk/", refused).status_code == 404
    jobs = ImportJob.objects.order_by("id")
    assert [
        (j.kind, j.status, j.created_by, j.rows_read, j.rows_created, j.rows_updated) for j in jobs
    ] == [
        ("purchases", "succeeded", sales, 2, 2, 0),
        ("purchases", "succeeded", sales, 1, 0, 1),
        ("purchases", "failed", sales, 2, 0, 0),
    ]
    assert jobs[2].error_count == 1
    assert [(e["line"], e["column"]) for e in jobs[2].errors] == [(1, "customer_external_id")]
    assert all(j.file_name == "POST /api/v1/purchases/bulk/" and j.finished_at for j in jobs)

    page = client_as(admin_member).get("/imports/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert page.content.decode().count("POST /api/v1/purchases/bulk/") == 3
    detail = client_as(admin_member).get(f"/imports/{jobs[2].pk}/", HTTP_ACCEPT_LANGUAGE="en")
    assert "NOBODY" in detail.content.decode()


def test_bulk_refuses_malformed_rows_whole(api):
    CustomerFactory(external_id="C-4001")
    payload = {
        "keep_valid_rows": True,
        "purchases": [
            bulk_row("EC-1"),
            bulk_row("EC-2", purchased_at="3 May 2026", items=[{"sku": "A", "unit_price": "x"}]),
        ],
    }
    response = api.post("/api/v1/purchases/bulk/", payload)
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert errors(response) == {
        "purchases.1.purchased_at": "invalid",
        "purchases.1.items.0.unit_price": "invalid",
    }
    assert not Purchase.objects.exists()


def test_bulk_accepts_at_most_10000_purchases(api):
    payload = {"purchases": [bulk_row(f"EC-{n}") for n in range(10_001)]}
    response = api.post("/api/v1/purchases/bulk/", payload)
    assert response.status_code == 400
    assert errors(response) == {"purchases.non_field_errors": "max_length"}
    assert api.post("/api/v1/purchases/bulk/", {"purchases": []}).status_code == 400


def test_bulk_needs_to_create_and_change_purchases(marketer):
    response = API(marketer).post("/api/v1/purchases/bulk/", {"purchases": [bulk_row("EC-1")]})
    assert response.status_code == 403


# --- Tickets ---------------------------------------------------------------------------------


def test_open_a_ticket_and_reply(api, sales):
    customer = CustomerFactory()
    response = api.post(
        "/api/v1/tickets/",
        {
            "customer": customer.pk,
            "subject": "商品が届きません",
            "body": "5月3日に注文した煎茶がまだ届いていません。",
            "channel": "email",
            "priority": "high",
            "assignee": sales.pk,
            "status": "closed",  # a new ticket is open whatever is sent
        },
    )
    assert response.status_code == 201, response.content
    ticket = response.json()
    assert ticket["status"] == "open"
    assert ticket["due_at"]  # the priority's response time

    url = f"/api/v1/tickets/{ticket['id']}/replies/"
    response = api.post(url, {"body": "ご不便をおかけしております。確認いたします。"})
    assert response.status_code == 201, response.content
    assert response.json()["author"] == sales.pk
    api.post(url, {"body": "配送業者に問い合わせ中", "internal": True})
    replies = api.get(f"/api/v1/tickets/{ticket['id']}/").json()["replies"]
    assert [(r["body"], r["internal"]) for r in replies] == [
        ("ご不便をおかけしております。確認いたします。", False),
        ("配送業者に問い合わせ中", True),
    ]
    assert TicketReply.objects.filter(author=sales).count() == 2


def test_a_reply_needs_a_body(api):
    ticket = SupportTicketFactory()
    response = api.post(f"/api/v1/tickets/{ticket.pk}/replies/", {"body": "  "})
    assert response.status_code == 400
    assert errors(response) == {"body": "blank"}


def test_ticket_status_follows_the_workflow(api):
    ticket = SupportTicketFactory()
    url = f"/api/v1/tickets/{ticket.pk}/"
    response = api.patch(url, {"status": "resolved"})
    assert response.status_code == 200, response.content
    assert response.json()["resolved_at"]
    response = api.patch(url, {"status": "pending"})
    assert response.status_code == 409
    assert errors(response) == {"status": "transition_not_allowed"}
    response = api.patch(url, {"status": "open", "priority": "urgent"})
    assert response.json()["status"] == "open"
    assert response.json()["resolved_at"] is None
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority) == (TicketStatus.OPEN, "urgent")


def test_ticket_filters(api, sales):
    now = timezone.now()
    overdue = SupportTicketFactory(assignee=sales, due_at=now - timedelta(hours=1))
    on_time = SupportTicketFactory(priority="urgent", due_at=now + timedelta(hours=1))
    closed = SupportTicketFactory(status="closed", due_at=now - timedelta(days=3))

    def ids(**params):
        return {row["id"] for row in results(api.get("/api/v1/tickets/", params))}

    assert ids(overdue="true") == {overdue.pk}
    assert ids(overdue="false") == {on_time.pk, closed.pk}
    assert ids(assignee=sales.pk) == {overdue.pk}
    assert ids(priority="urgent") == {on_time.pk}
    assert ids(status="closed") == {closed.pk}
    assert ids(customer=overdue.customer_id) == {overdue.pk}
    assert results(api.get("/api/v1/tickets/", {"overdue": "true"}))[0]["is_overdue"] is True


def test_tickets_cannot_be_deleted(api):
    ticket = SupportTicketFactory()
    assert api.delete(f"/api/v1/tickets/{ticket.pk}/").status_code == 405
    assert SupportTicket.objects.filter(pk=ticket.pk).exists()


# --- Interactions ----------------------------------------------------------------------------


def test_log_an_interaction_as_the_caller(api, sales):
    customer = CustomerFactory()
    response = api.post(
        "/api/v1/interactions/",
        {"customer": customer.pk, "kind": "call", "summary": "定期便の内容変更について電話"},
    )
    assert response.status_code == 201, response.content
    assert response.json()["user"] == sales.pk
    assert Interaction.objects.get().user == sales
    response = api.post(
        "/api/v1/interactions/", {"customer": 999999, "kind": "call", "summary": "x"}
    )
    assert response.status_code == 404


def test_interaction_filters(api, sales):
    customer = CustomerFactory()
    call = InteractionFactory(
        customer=customer, kind="call", user=sales, occurred_at=datetime(2026, 4, 1, tzinfo=UTC)
    )
    visit = InteractionFactory(kind="visit", occurred_at=datetime(2026, 5, 1, tzinfo=UTC))

    def ids(**params):
        return [row["id"] for row in results(api.get("/api/v1/interactions/", params))]

    assert ids() == [visit.pk, call.pk]
    assert ids(customer=customer.pk) == [call.pk]
    assert ids(kind="visit") == [visit.pk]
    assert ids(user=sales.pk) == [call.pk]
    assert ids(occurred_after="2026-04-15T00:00:00+09:00") == [visit.pk]
    assert ids(occurred_before="2026-04-15T00:00:00+09:00") == [call.pk]


# --- Access ----------------------------------------------------------------------------------

COLLECTIONS = ["customers", "products", "purchases", "tickets", "interactions"]


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_anonymous_requests_are_401(collection):
    response = API().get(f"/api/v1/{collection}/")
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "not_authenticated"


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_marketers_read_but_do_not_write(marketer, collection):
    api = API(marketer)
    assert api.get(f"/api/v1/{collection}/").status_code == 200
    response = api.post(f"/api/v1/{collection}/", {})
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "permission_denied"


def test_marketers_cannot_reply_to_tickets(marketer):
    ticket = SupportTicketFactory()
    response = API(marketer).post(f"/api/v1/tickets/{ticket.pk}/replies/", {"body": "はい"})
    assert response.status_code == 403
    assert not TicketReply.objects.exists()


def test_sales_and_admins_write(sales, admin_member):
    for number, user in enumerate([sales, admin_member]):
        response = API(user).post("/api/v1/customers/", {"external_id": f"C-500{number}"})
        assert response.status_code == 201, response.content


def test_browser_sessions_need_the_csrf_token_to_write(client_as, sales):
    client = client_as(sales)
    assert client.get("/api/v1/customers/").status_code == 200
    response = client.post(
        "/api/v1/customers/", {"external_id": "C-6001"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert not Customer.objects.exists()


def test_api_root_lists_the_collections(api):
    body = api.get("/api/v1/").json()
    for collection in COLLECTIONS:
        assert body[collection].endswith(f"/api/v1/{collection}/")
