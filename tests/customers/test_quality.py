"""Data quality: fill rates and usable shares (hand-computed), probable duplicates by each
rule, the pages and the API."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import requests
import schemathesis
from django.test import Client
from django.utils import translation
from rest_framework.authtoken.models import Token
from schemathesis.core.transport import Response as SchemaResponse
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from customers.consent import record_consent
from customers.merging import merge_customers
from customers.models import ConsentSource, PurchaseStatus
from customers.privacy import erase_customer
from customers.quality import (
    RULE_EMAIL,
    RULE_KANA_BIRTHDAY,
    RULE_PHONE,
    duplicate_groups,
    quality_summary,
)
from tests.crm.test_auth import csrf_token
from tests.customers.factories import CustomerFactory, PurchaseFactory

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}


def validate_against_schema(response, path: str, method: str, **path_parameters) -> None:
    """Fail unless ``response`` (Django test client) is what the OpenAPI schema documents."""
    document = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    operation = schemathesis.openapi.from_dict(document.json())[path][method.upper()]
    request = requests.Request(
        method.upper(), "http://testserver" + response.wsgi_request.get_full_path()
    ).prepare()
    adapted = SchemaResponse(
        status_code=response.status_code,
        headers={name: [value] for name, value in response.headers.items()},
        content=response.content,
        request=request,
        elapsed=0.0,
        verify=False,
    )
    operation.Case(path_parameters=path_parameters).validate_response(
        adapted,
        checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
    )


def api_client(user) -> Client:
    token = Token.objects.create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}", HTTP_ACCEPT_LANGUAGE="en")


def blank(**fields):
    """A customer with nothing but an external ID, plus ``fields``."""
    empty = dict(
        family_name="",
        given_name="",
        family_name_kana="",
        given_name_kana="",
        email="",
        prefecture="",
        channel="",
    )
    return CustomerFactory(**{**empty, **fields})


@pytest.fixture
def population(sales):
    """Four customers counted, one erased (not counted).

    complete:  every field, consent given, a completed purchase
    typical:   the factory's names, kana, e-mail, prefecture, channel; only a cancelled purchase
    bare:      an external ID only
    private:   birthday, e-mail, gender "prefer not to say", consent refused
    """
    complete = CustomerFactory(
        phone="09011112222",
        birthday=date(1980, 1, 2),
        gender="female",
        postal_code="1000001",
        address="千代田区千代田1-1",
        sns_accounts={"line": "hanako"},
        owner=sales,
    )
    record_consent(customer=complete, opted_in=True, source=ConsentSource.WEB_FORM)
    PurchaseFactory(customer=complete)
    typical = CustomerFactory()
    PurchaseFactory(customer=typical, status=PurchaseStatus.CANCELLED)
    bare = blank()
    private = blank(email="private@example.jp", birthday=date(1990, 5, 6), gender="unknown")
    record_consent(customer=private, opted_in=False, source=ConsentSource.PAPER)
    erased = CustomerFactory(birthday=date(1970, 1, 1))
    erase_customer(customer=erased, by=None)
    return {"complete": complete, "typical": typical, "bare": bare, "private": private}


EXPECTED_FILLED = {
    "family_name": 2,
    "given_name": 2,
    "family_name_kana": 2,
    "given_name_kana": 2,
    "email": 3,
    "phone": 1,
    "birthday": 2,
    "gender": 2,  # "prefer not to say" is an answer
    "prefecture": 2,
    "postal_code": 1,
    "address": 1,
    "channel": 2,
    "sns_accounts": 1,
    "email_consent": 2,  # a decision either way
    "owner": 1,
}
EXPECTED_USABLE = {
    "rfm": 1,  # a cancelled purchase does not count
    "birthday": 2,
    "email_campaigns": 1,
    "area": 2,
    "gender": 1,  # "prefer not to say" cannot be analysed
}


def test_fill_rates_and_usable_shares(population):
    summary = quality_summary()
    assert summary.total == 4
    assert {rate.key: rate.count for rate in summary.fields} == EXPECTED_FILLED
    assert {rate.key: rate.count for rate in summary.uses} == EXPECTED_USABLE
    phone = next(rate for rate in summary.fields if rate.key == "phone")
    assert (phone.share, phone.missing, phone.percent) == (0.25, 3, 25.0)


def test_summary_is_two_queries_whatever_the_number_of_fields(
    population, django_assert_num_queries
):
    with django_assert_num_queries(2):
        quality_summary()


def test_empty_database_reports_nothing_missing():
    summary = quality_summary()
    assert summary.total == 0
    assert all(rate.share == 0 for rate in [*summary.fields, *summary.uses])


def test_quality_page_in_english(client_as, marketer, population):
    html = client_as(marketer).get("/data-quality/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "4 customers are counted" in html
    assert "Birthday campaigns can only reach customers with a birthday" in html
    phone_row = html[html.index('id="field-phone"') :]
    phone_row = phone_row[: phone_row.index("</tr>")]
    assert "Phone" in phone_row and "25.0%" in phone_row
    email_row = html[html.index('id="field-email"') :]
    assert "75.0%" in email_row[: email_row.index("</tr>")]


def test_quality_page_in_japanese(client_as, sales, population):
    html = client_as(sales).get("/data-quality/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert '<html lang="ja">' in html
    birthday_row = html[html.index('id="field-birthday"') :]
    assert "生年月日" in birthday_row[: birthday_row.index("</tr>")]
    assert "50.0%" in birthday_row[: birthday_row.index("</tr>")]


def test_quality_page_without_customers_shows_an_empty_state(client_as, sales):
    html = client_as(sales).get("/data-quality/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "No customers yet" in html


def test_quality_page_needs_a_signed_in_user(csrf_client):
    response = csrf_client.get("/data-quality/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- Duplicates -------------------------------------------------------------------------------


def test_same_email_ignoring_case():
    a = CustomerFactory(email="Taro@Example.jp")
    b = CustomerFactory(email="taro@example.jp")
    CustomerFactory(email="jiro@example.jp")
    [group] = duplicate_groups()
    assert group.customer_ids == (a.pk, b.pk)
    assert group.rules == [RULE_EMAIL]
    assert group.keys == {RULE_EMAIL: "taro@example.jp"}


def test_same_phone():
    a = blank(phone="09012345678")
    b = blank(phone="09012345678")
    blank(phone="09099999999")
    [group] = duplicate_groups()
    assert (group.customer_ids, group.rules) == ((a.pk, b.pk), [RULE_PHONE])


def test_same_kana_name_and_birthday():
    born = date(1990, 3, 4)
    a = blank(family_name_kana="ヤマダ", given_name_kana="タロウ", birthday=born)
    b = blank(family_name_kana="ヤマダ", given_name_kana="タロウ", birthday=born)
    blank(family_name_kana="ヤマダ", given_name_kana="タロウ", birthday=date(1991, 3, 4))
    blank(family_name_kana="ヤマダ", given_name_kana="ジロウ", birthday=born)
    blank(family_name_kana="ヤマダ", given_name_kana="タロウ")  # no birthday: no evidence
    [group] = duplicate_groups()
    assert (group.customer_ids, group.rules) == ((a.pk, b.pk), [RULE_KANA_BIRTHDAY])
    assert group.keys[RULE_KANA_BIRTHDAY] == "ヤマダ タロウ 1990-03-04"


def test_records_matching_several_rules_are_one_group_with_every_reason():
    a = CustomerFactory(email="same@example.jp", phone="0311112222")
    b = CustomerFactory(email="same@example.jp", phone="0311112222")
    c = blank(phone="0311112222")
    groups = duplicate_groups()
    assert [(g.customer_ids, g.rules) for g in groups] == [
        ((a.pk, b.pk), [RULE_EMAIL]),
        ((a.pk, b.pk, c.pk), [RULE_PHONE]),
    ]
    d = CustomerFactory(email="pair@example.jp", phone="0322223333")
    e = CustomerFactory(email="pair@example.jp", phone="0322223333")
    pair = next(g for g in duplicate_groups() if g.customer_ids == (d.pk, e.pk))
    assert pair.rules == [RULE_EMAIL, RULE_PHONE]
    with translation.override("en"):
        assert pair.reasons == ["Same e-mail", "Same phone"]


def test_empty_values_and_erased_customers_are_not_duplicates():
    blank()
    blank()  # both without e-mail, phone, kana: nothing in common
    CustomerFactory(email="gone@example.jp")
    erased = CustomerFactory(email="gone@example.jp")
    erase_customer(customer=erased, by=None)
    assert duplicate_groups() == []


def test_duplicates_page_shows_records_side_by_side(client_as, admin_member):
    a = CustomerFactory(family_name="山田", given_name="太郎", email="taro@example.jp")
    b = CustomerFactory(family_name="山田", given_name="太郎", email="TARO@example.jp")
    PurchaseFactory(customer=b, total=Decimal("12000"))
    html = (
        client_as(admin_member)
        .get("/data-quality/duplicates/", HTTP_ACCEPT_LANGUAGE="en")
        .content.decode()
    )
    assert "Same e-mail" in html and "taro@example.jp" in html
    assert a.external_id in html and b.external_id in html
    assert "¥12,000" in html
    assert f'name="keep" value="{a.pk}"' in html
    assert "Review the merge" in html


@pytest.mark.parametrize("role", ["marketer", "sales"])
def test_duplicates_page_offers_merging_to_admins_only(request, client_as, role):
    CustomerFactory(email="same@example.jp")
    CustomerFactory(email="same@example.jp")
    html = (
        client_as(request.getfixturevalue(role)).get("/data-quality/duplicates/").content.decode()
    )
    assert "same@example.jp" in html
    assert 'name="keep"' not in html


def test_duplicates_page_is_paginated(client_as, marketer):
    for n in range(25):
        blank(phone=f"0900000{n:04d}")
        blank(phone=f"0900000{n:04d}")
    client = client_as(marketer)
    first = client.get("/data-quality/duplicates/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    second = client.get("/data-quality/duplicates/?page=2").content.decode()
    assert first.count('class="panel duplicate-group"') == 20
    assert second.count('class="panel duplicate-group"') == 5
    assert "1–20 of 25" in first


def test_duplicates_page_without_duplicates(client_as, marketer):
    CustomerFactory()
    html = client_as(marketer).get("/data-quality/duplicates/", HTTP_ACCEPT_LANGUAGE="en")
    assert "No probable duplicates" in html.content.decode()


# --- API --------------------------------------------------------------------------------------


def test_api_summary(marketer, population):
    response = api_client(marketer).get("/api/v1/data-quality/")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 4
    assert {row["profile_field"]: row["filled"] for row in body["fields"]} == EXPECTED_FILLED
    assert {row["analysis"]: row["usable"] for row in body["uses"]} == EXPECTED_USABLE
    gender = next(row for row in body["uses"] if row["analysis"] == "gender")
    assert gender["share"] == 0.25 and gender["label"] == "Gender analysis"
    validate_against_schema(response, "/api/v1/data-quality/", "get")


def test_api_duplicates_are_paginated(marketer):
    for n in range(3):
        blank(phone=f"0800000{n:04d}")
        blank(phone=f"0800000{n:04d}")
    client = api_client(marketer)
    response = client.get("/api/v1/data-quality/duplicates/?page_size=2")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    group = body["results"][0]
    assert group["rules"] == ["phone"] and group["reasons"] == ["Same phone"]
    assert [c["id"] for c in group["customers"]] == group["customer_ids"]
    assert group["customers"][0]["purchase_count"] == 0
    validate_against_schema(response, "/api/v1/data-quality/duplicates/", "get")
    assert len(client.get(body["next"]).json()["results"]) == 1


@pytest.mark.parametrize("page_size", ["0", "501", "two"])
def test_api_duplicates_refuse_a_bad_page_size(marketer, page_size):
    response = api_client(marketer).get(f"/api/v1/data-quality/duplicates/?page_size={page_size}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["attr"] == "page_size"
    validate_against_schema(response, "/api/v1/data-quality/duplicates/", "get")


def test_api_needs_a_token(client):
    response = client.get("/api/v1/data-quality/")
    assert response.status_code == 401


# --- Cached figures ---------------------------------------------------------------------------


def test_figures_are_kept_until_recomputed(client_as, marketer, population):
    client = client_as(marketer)
    first = client.get("/data-quality/", HTTP_ACCEPT_LANGUAGE="en")
    assert "4 customers are counted" in first.content.decode()
    assert "Figures computed at" in first.content.decode()
    CustomerFactory()
    assert (
        "4 customers are counted"
        in client.get("/data-quality/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    )

    response = client.post("/data-quality/", {"csrfmiddlewaretoken": csrf_token(first)})
    assert response.status_code == 302
    again = client.get("/data-quality/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "5 customers are counted" in again


def test_api_recomputes_on_request(marketer, population):
    client = api_client(marketer)
    first = client.get("/api/v1/data-quality/").json()
    CustomerFactory()
    assert client.get("/api/v1/data-quality/").json() == first
    fresh = client.get("/api/v1/data-quality/?refresh=true").json()
    assert fresh["total"] == 5 and fresh["computed_at"] >= first["computed_at"]
    invalid = client.get("/api/v1/data-quality/?refresh=maybe")
    assert invalid.status_code == 400
    validate_against_schema(invalid, "/api/v1/data-quality/", "get")


def test_merged_and_erased_records_leave_the_listed_duplicates_at_once(client_as, admin_member):
    kept = CustomerFactory(email="same@example.jp")
    merged = CustomerFactory(email="same@example.jp")
    erased_pair = [blank(phone="0312345678"), blank(phone="0312345678")]
    client = client_as(admin_member)
    html = client.get("/data-quality/duplicates/").content.decode()
    assert "same@example.jp" in html and "0312345678" in html

    merge_customers(keep=kept, duplicates=[merged], by=admin_member)
    erase_customer(customer=erased_pair[0], by=admin_member)
    html = client.get("/data-quality/duplicates/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "same@example.jp" not in html and "0312345678" not in html
    assert "No probable duplicates" in html


def test_the_nightly_task_recomputes_the_cached_figures(client_as, marketer, population):
    from customers.tasks import refresh_data_quality

    client = client_as(marketer)
    assert "4 customers are counted" in client.get("/data-quality/", **EN).content.decode()
    CustomerFactory()
    assert "4 customers are counted" in client.get("/data-quality/", **EN).content.decode()
    refresh_data_quality.apply()  # in this process: the figures are in its cache
    assert "5 customers are counted" in client.get("/data-quality/", **EN).content.decode()


def test_the_beat_schedule_runs_the_refresh_nightly_and_the_import_watchdog():
    from django.conf import settings

    from crm.celery import app

    schedule = {
        entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()
    }
    nightly = schedule["customers.tasks.refresh_data_quality"]
    assert nightly.hour == {2} and nightly.minute == {30}
    assert schedule["customers.tasks.fail_stalled_imports"] <= 600
    app.loader.import_default_modules()
    assert {"customers.tasks.refresh_data_quality", "customers.tasks.fail_stalled_imports"} <= set(
        app.tasks
    )
