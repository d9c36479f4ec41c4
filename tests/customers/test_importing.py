"""CSV import of customers and purchases: reading files as people save them, every
validation rule, upserts, all-or-nothing versus keeping the valid rows, consent records.

Runs on SQLite (the portable path) by default and on PostgreSQL (the COPY fast path for
purchases) with DATABASE_URL set.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import translation

from customers import importing
from customers.csv_reading import ImportFileError, read_csv
from customers.importing import RowError, import_customers, import_purchases
from customers.models import ConsentRecord, Customer, Product, Purchase, PurchaseItem
from tests.customers.factories import CustomerFactory, ProductFactory, PurchaseFactory, TagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    # Row errors are translated; these tests read the English source texts.
    with translation.override("en"):
        yield


def rows_of(text: str, encoding: str = "utf-8"):
    return read_csv(io.BytesIO(text.encode(encoding)))


def customers_csv(text: str, **options):
    return import_customers(rows_of(text), source="customers.csv", **options)


def purchases_csv(text: str, **options):
    return import_purchases(rows_of(text), source="purchases.csv", **options)


def csv_text(header, *rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


@pytest.fixture
def batch_size(monkeypatch):
    """Makes every import write ``size`` valid rows at a time, on either path."""

    def set_size(size: int) -> None:
        monkeypatch.setattr(importing, "BATCH_SIZE", size)
        monkeypatch.setattr(importing, "COPY_BATCH_SIZE", size)

    return set_size


def reasons(result) -> list[tuple[int, str, str]]:
    return [(e.line, e.column, e.reason) for e in result.errors]


# --- Reading files ------------------------------------------------------------------------

JAPANESE = "external_id,family_name,given_name\nC1,山田,太郎\nC2,髙橋,美咲\n"


@pytest.mark.parametrize(
    "data",
    [
        JAPANESE.encode("utf-8"),
        b"\xef\xbb\xbf" + JAPANESE.encode("utf-8"),  # Excel's "CSV UTF-8"
        JAPANESE.encode("cp932"),  # Excel's "CSV" on a Japanese Windows
        JAPANESE.replace("\n", "\r\n").encode("cp932"),
    ],
    ids=["utf-8", "utf-8-bom", "shift_jis", "shift_jis-crlf"],
)
def test_reads_utf8_with_or_without_bom_and_shift_jis(data):
    assert list(read_csv(io.BytesIO(data))) == [
        (2, {"external_id": "C1", "family_name": "山田", "given_name": "太郎"}),
        (3, {"external_id": "C2", "family_name": "髙橋", "given_name": "美咲"}),
    ]


def test_column_names_are_trimmed_and_case_insensitive():
    rows = list(rows_of(" External_ID ,FAMILY_NAME\nC1,山田\n"))
    assert rows == [(2, {"external_id": "C1", "family_name": "山田"})]


def test_line_numbers_are_physical_lines():
    text = 'external_id,address\nC1,"1-1\n2nd floor"\n\nC2,x\n,\nC3,y\n'
    assert [line for line, _row in rows_of(text)] == [2, 5, 7]


def test_trailing_empty_columns_from_spreadsheets_are_ignored():
    rows = list(rows_of("external_id,family_name,,\nC1,山田,,\n"))
    assert rows == [(2, {"external_id": "C1", "family_name": "山田"})]


def test_a_line_with_the_wrong_number_of_values_is_a_row_error():
    result = customers_csv("external_id,address\nC1,東京都千代田区1-1, ビル\nC2,x\n")
    assert reasons(result) == [(2, "", "this line has 3 values but the header has 2")]
    assert not result.committed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"external_id,external_id\nC1,C2\n", "repeats these columns: external_id"),
        (b"external_id,,name\n", "Column 2 of the header row has no name"),
        (b'external_id\n"C1\nC2\n', "Line 2 is not valid CSV: a quoted value is never closed"),
        (b'external_id\n"C1"x\n', "Line 2 is not valid CSV: a quoted value is followed"),
        ("external_id\nC1\n".encode("utf-16"), "UTF-16"),
    ],
)
def test_file_level_problems(data, message):
    with pytest.raises(ImportFileError, match=message):
        list(read_csv(io.BytesIO(data)))


def test_bytes_that_are_not_the_detected_encoding_are_a_file_error_with_the_line():
    # An all-ASCII start reads as UTF-8; Shift_JIS text further on cannot.
    ascii_part = "".join(f"C{n},Yamada\n" for n in range(100_000))  # over 1 MiB
    data = ("external_id,family_name\n" + ascii_part + "C0,山田\n").encode("cp932")
    with pytest.raises(ImportFileError, match="Line 100002 is not valid UTF-8") as error:
        list(read_csv(io.BytesIO(data)))
    assert error.value.line == 100002


def test_a_file_error_midway_undoes_the_rows_already_written(batch_size):
    batch_size(2)
    valid = "".join(f"C{n},1990-01-01\n" for n in range(4))
    invalid = "".join(f"X{n},soon\n" for n in range(120_000))  # over 1 MiB of ASCII
    data = ("external_id,birthday\n" + valid + invalid + "C9,１９９０-01-01\n").encode("cp932")
    with pytest.raises(ImportFileError, match="Line 120006 is not valid UTF-8"):
        import_customers(read_csv(io.BytesIO(data)), keep_valid_rows=True)
    assert not Customer.objects.exists()


def test_unknown_and_missing_columns_are_file_errors_and_nothing_is_written():
    with pytest.raises(ImportFileError, match="Unknown columns: nickname, shoe_size"):
        customers_csv("external_id,nickname,shoe_size\nC1,Taro,27\n")
    with pytest.raises(ImportFileError, match="Required columns are missing: external_id"):
        customers_csv("family_name\n山田\n")
    with pytest.raises(ImportFileError, match="missing: customer_external_id, total"):
        purchases_csv("order_id,purchased_at\nO1,2026-05-03\n")
    assert not Customer.objects.exists()


# --- Customers ----------------------------------------------------------------------------

FULL_HEADER = (
    "external_id,family_name,given_name,family_name_kana,given_name_kana,email,phone,"
    "birthday,gender,prefecture,postal_code,address,channel,email_opt_in\n"
)


def test_customers_are_validated_normalised_and_created():
    result = customers_csv(
        FULL_HEADER
        + "C1,山田,太郎,やまだ,ﾀﾛｳ, Taro@Example.JP ,+81 90-1234-5678,1990/1/5,女性,東京,"
        "〒100-0001,千代田区千代田1-1,ECサイト,はい\n"
        "C2,佐藤,花子,サトウ,ハナコ,hanako@example.jp,03(1234)5678,1985-12-31,M,Osaka,"
        "５３０－０００１,北区梅田1-1,event,no\n"
    )
    assert (result.rows_read, result.created, result.updated, result.errors) == (2, 2, 0, [])
    assert result.committed
    yamada = Customer.objects.get(external_id="C1")
    assert (yamada.family_name_kana, yamada.given_name_kana) == ("ヤマダ", "タロウ")
    assert (yamada.email, yamada.phone, yamada.postal_code) == (
        "taro@example.jp",
        "09012345678",
        "1000001",
    )
    assert (yamada.birthday, yamada.gender, yamada.prefecture) == (date(1990, 1, 5), "female", "13")
    assert (yamada.channel, yamada.email_opt_in) == ("ecommerce", True)
    sato = Customer.objects.get(external_id="C2")
    assert (sato.gender, sato.prefecture, sato.postal_code, sato.phone) == (
        "male",
        "27",
        "5300001",
        "0312345678",
    )
    # Imported customers are found by search however the name is typed.
    assert list(Customer.objects.search("ヤマダ")) == [yamada]
    assert list(Customer.objects.search("090-1234-5678")) == [yamada]


def test_a_customer_may_have_only_an_external_id():
    result = customers_csv("external_id\nC1\n")
    assert result.created == 1
    assert Customer.objects.get().display_name == "C1"


VALID = {
    "external_id": "C0",
    "family_name": "佐藤",
    "family_name_kana": "サトウ",
    "given_name_kana": "ハナコ",
    "email": "hanako@example.jp",
    "phone": "09012345678",
    "birthday": "1990-01-01",
    "gender": "female",
    "prefecture": "13",
    "postal_code": "1000001",
    "channel": "event",
    "email_opt_in": "yes",
}


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("external_id", "", "required"),
        ("external_id", "X" * 65, "too long: 65 characters, at most 64"),
        ("family_name", "山" * 51, "too long: 51 characters, at most 50"),
        ("family_name_kana", "山田", "“山田” is not kana (use katakana or hiragana)"),
        ("given_name_kana", "Taro", "“Taro” is not kana (use katakana or hiragana)"),
        ("email", "taro@", "“taro@” is not an e-mail address"),
        ("phone", "090-1234", "“090-1234” is not a phone number (10 to 15 digits"),
        ("phone", "090-abcd-5678", "“090-abcd-5678” is not a phone number"),
        ("birthday", "2026-13-01", "“2026-13-01” is not a date (use YYYY-MM-DD)"),
        ("birthday", "1990-02-30", "“1990-02-30” is not a date (use YYYY-MM-DD)"),
        ("birthday", "5 Jan 1990", "“5 Jan 1990” is not a date (use YYYY-MM-DD)"),
        ("birthday", "2999-01-01", "“2999-01-01” is in the future"),
        ("gender", "maybe", "“maybe” is not one of female, male, other, unknown"),
        ("prefecture", "Atlantis", "“Atlantis” is not a prefecture"),
        ("postal_code", "100-00011", "“100-00011” is not a postal code (7 digits, e.g. 100-0001)"),
        ("postal_code", "ABC-DEFG", "“ABC-DEFG” is not a postal code"),
        ("channel", "tv", "“tv” is not one of business_card, ecommerce, event"),
        ("email_opt_in", "maybe", "“maybe” is not yes or no"),
    ],
)
def test_customer_validation_rules(column, value, reason):
    columns = list(dict.fromkeys(["external_id", "family_name", column]))
    valid = {name: VALID[name] for name in columns}
    invalid = {**valid, "external_id": "C1", column: value}
    result = customers_csv(csv_text(columns, valid.values(), invalid.values()))
    assert result.error_count == 1
    (error,) = result.errors
    assert (error.line, error.column) == (3, column)
    assert error.reason.startswith(reason)
    assert not Customer.objects.exists()  # the valid first row is not written either


@pytest.mark.parametrize(
    ("column", "value", "stored"),
    [
        ("gender", "female", "female"),
        ("gender", "F", "female"),
        ("gender", "男", "male"),
        ("gender", "その他", "other"),
        ("gender", "Prefer not to say", "unknown"),
        ("gender", "無回答", "unknown"),
        ("prefecture", "13", "13"),
        ("prefecture", "東京都", "13"),
        ("prefecture", "北海道", "01"),
        ("prefecture", "kyoto", "26"),
        ("channel", "line", "line"),
        ("channel", "LINE official account", "line"),
        ("channel", "Newsletter sign-up", "newsletter"),
        ("birthday", "1990-01-05", date(1990, 1, 5)),
        ("birthday", "１９９０／０１／０５", date(1990, 1, 5)),
        ("phone", "０９０－１２３４－５６７８", "09012345678"),
        ("family_name_kana", "ﾔﾏﾀﾞ", "ヤマダ"),
        ("given_name_kana", "たろう", "タロウ"),
    ],
)
def test_accepted_spellings(column, value, stored):
    result = customers_csv(f"external_id,{column}\nC1,{value}\n")
    assert result.errors == []
    assert getattr(Customer.objects.get(), column) == stored


@pytest.mark.parametrize(
    ("value", "opted_in"),
    [
        *[("true", True), ("1", True), ("Yes", True), ("y", True), ("はい", True)],
        *[("FALSE", False), ("0", False), ("no", False), ("n", False), ("いいえ", False)],
    ],
)
def test_email_opt_in_spellings(value, opted_in):
    customers_csv(f"external_id,email_opt_in\nC1,{value}\n")
    assert Customer.objects.get().email_opt_in is opted_in


def test_second_import_updates_and_empty_cells_leave_values_unchanged():
    customers_csv(
        FULL_HEADER + "C1,山田,太郎,ヤマダ,タロウ,taro@example.jp,09012345678,"
        "1990-01-05,male,13,1000001,千代田区,ecommerce,\n"
    )
    result = customers_csv(
        "external_id,family_name,given_name,email,prefecture\nC1,山本,,taro@example.com,\nC2,佐藤,,,\n"
    )
    assert (result.created, result.updated) == (1, 1)
    customer = Customer.objects.get(external_id="C1")
    assert (customer.family_name, customer.given_name) == ("山本", "太郎")
    assert (customer.email, customer.prefecture, customer.phone) == (
        "taro@example.com",
        "13",
        "09012345678",
    )
    assert list(Customer.objects.search("山本")) == [customer]
    assert not Customer.objects.search("山田").exists()


def test_later_rows_for_the_same_customer_win():
    result = customers_csv(
        "external_id,family_name,email\nC1,山田,a@example.jp\nC1,,b@example.jp\n"
    )
    assert (result.created, result.updated) == (1, 0)
    customer = Customer.objects.get()
    assert (customer.family_name, customer.email) == ("山田", "b@example.jp")


def test_any_row_error_means_nothing_is_written():
    CustomerFactory(external_id="C1", family_name="山田")
    result = customers_csv(
        "external_id,family_name,birthday\nC1,山本,\nC2,佐藤,1990-01-01\nC3,鈴木,yesterday\n"
    )
    assert not result.committed
    assert (result.rows_read, result.error_count, result.created, result.updated) == (3, 1, 0, 0)
    assert reasons(result) == [
        (4, "birthday", "“yesterday” is not a date (use YYYY-MM-DD)"),
    ]
    assert Customer.objects.get().family_name == "山田"
    assert Customer.objects.count() == 1


def test_keep_valid_rows_writes_the_valid_rows_and_reports_the_others():
    result = customers_csv(
        "external_id,birthday\nC1,1990-01-01\nC2,1990-99-01\nC3,\n", keep_valid_rows=True
    )
    assert result.committed
    assert (result.created, result.error_count) == (2, 1)
    assert reasons(result) == [(3, "birthday", "“1990-99-01” is not a date (use YYYY-MM-DD)")]
    assert set(Customer.objects.values_list("external_id", flat=True)) == {"C1", "C3"}


def test_erased_customers_are_not_brought_back():
    CustomerFactory(external_id="C1", family_name="", erased_at=datetime(2026, 1, 1, tzinfo=UTC))
    result = customers_csv("external_id,family_name\nC1,山田\n")
    assert reasons(result) == [
        (2, "external_id", "this customer's data was erased; it cannot be imported again")
    ]
    assert Customer.objects.get().family_name == ""


def test_consent_records_only_when_the_consent_changes(make_user):
    user = make_user()
    customers_csv(
        "external_id,email_opt_in\nC1,yes\nC2,no\nC3,\n", user=user, keep_valid_rows=False
    )
    records = ConsentRecord.objects.order_by("customer__external_id")
    assert [(r.customer.external_id, r.opted_in) for r in records] == [("C1", True), ("C2", False)]
    first = records[0]
    assert (first.source, first.form, first.recorded_by) == ("import", "customers.csv", user)
    c1 = Customer.objects.get(external_id="C1")
    assert c1.email_opt_in and c1.email_opt_in_at == first.recorded_at
    c3 = Customer.objects.get(external_id="C3")
    assert (c3.email_opt_in, c3.email_opt_in_at) == (False, None)

    # The same file again changes nothing; a withdrawal is recorded; an empty cell is no change.
    customers_csv("external_id,email_opt_in\nC1,yes\nC2,no\nC3,\n", user=user)
    assert ConsentRecord.objects.count() == 2
    customers_csv("external_id,email_opt_in\nC1,no\nC2,\n", user=user)
    assert ConsentRecord.objects.count() == 3
    assert not Customer.objects.get(external_id="C1").email_opt_in
    assert ConsentRecord.objects.filter(customer__external_id="C1", opted_in=False).exists()


def test_no_consent_record_when_the_import_is_rolled_back():
    customers_csv("external_id,email_opt_in\nC1,yes\nC2,perhaps\n")
    assert not ConsentRecord.objects.exists()


def test_only_the_first_errors_are_kept_but_all_are_counted_and_reported(monkeypatch, batch_size):
    monkeypatch.setattr(importing, "KEPT_ERRORS", 5)
    batch_size(4)
    seen: list[RowError] = []
    text = "external_id,birthday\n" + "".join(f"C{n},1990-13-01\n" for n in range(12))
    result = customers_csv(text, on_error=seen.append)
    assert result.error_count == 12
    assert [e.line for e in result.errors] == [2, 3, 4, 5, 6]
    assert [e.line for e in seen] == list(range(2, 14))


def test_progress_is_reported_after_every_batch(batch_size):
    batch_size(2)
    calls = []
    customers_csv(
        "external_id\nC1\nC2\nC3\nC4\nC5\n", progress=lambda **kwargs: calls.append(kwargs)
    )
    assert calls == [{"rows_read": 2}, {"rows_read": 4}, {"rows_read": 5}]
    assert Customer.objects.count() == 5


def test_rows_from_the_api_use_item_positions():
    result = import_customers(
        [(1, {"external_id": "C1", "email": "x"}), (2, {"external_id": "C2"})]
    )
    assert reasons(result) == [(1, "email", "“x” is not an e-mail address")]


# --- Purchases ----------------------------------------------------------------------------


@pytest.fixture
def customers():
    return {c.external_id: c for c in CustomerFactory.create_batch(3)}


PURCHASE_HEADER = "order_id,customer_external_id,purchased_at,total,status,channel\n"


def test_purchases_are_created_with_dates_in_the_organisations_time_zone(customers):
    c1, c2, _c3 = customers
    result = purchases_csv(
        PURCHASE_HEADER
        + f"O1,{c1},2026-05-03,3980,,ecommerce\n"
        + f'O2,{c1},2026-05-03 08:30,"12,345",cancelled,store\n'
        + f'O3,{c2},2026-05-03T10:00:00+00:00,"１２,３４５",refunded,\n'
        + f"O4,{c2},2026/5/3 23:59,¥1980,Completed,Phone order\n"
    )
    assert result.errors == []
    assert (result.created, result.updated, result.committed) == (4, 0, True)
    o1, o2, o3, o4 = Purchase.objects.order_by("order_id")
    # A date alone is midnight in Tokyo: 2026-05-03 00:00 JST is 2026-05-02 15:00 UTC.
    assert o1.purchased_at == datetime(2026, 5, 2, 15, 0, tzinfo=UTC)
    assert (o1.total, o1.status, o1.channel, o1.customer.external_id) == (
        Decimal("3980"),
        "completed",
        "ecommerce",
        c1,
    )
    assert o2.purchased_at == datetime(2026, 5, 2, 23, 30, tzinfo=UTC)
    assert (o2.total, o2.status, o2.channel) == (Decimal("12345"), "cancelled", "store")
    assert o3.purchased_at == datetime(2026, 5, 3, 10, 0, tzinfo=UTC)
    assert (o3.total, o3.status, o3.channel) == (Decimal("12345"), "refunded", "")
    assert o4.purchased_at == datetime(2026, 5, 3, 14, 59, tzinfo=UTC)
    assert (o4.total, o4.status, o4.channel) == (Decimal("1980"), "completed", "phone")


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("order_id", "", "required"),
        ("customer_external_id", "", "required"),
        ("purchased_at", "", "required"),
        ("purchased_at", "2026-02-30", "“2026-02-30” is not a date or date-time"),
        ("purchased_at", "May 3rd", "“May 3rd” is not a date or date-time"),
        ("total", "", "required"),
        ("total", "-100", "“-100” is negative (must be 0 or more)"),
        ("total", "12.345", "“12.345” has more than 2 decimals"),
        ("total", "1,2345", "“1,2345” is not an amount"),
        ("total", "abc", "“abc” is not an amount"),
        ("total", "1" * 13, "“1111111111111” is too large"),
        ("status", "shipped", "“shipped” is not one of cancelled, completed, refunded"),
        ("channel", "fax", "“fax” is not one of ecommerce, other, phone, store, subscription"),
    ],
)
def test_purchase_validation_rules(customers, column, value, reason):
    values = {
        "order_id": "O2",
        "customer_external_id": next(iter(customers)),
        "purchased_at": "2026-05-03",
        "total": "100",
        "status": "",
        "channel": "",
    }
    values[column] = value
    row = ",".join(f'"{v}"' for v in values.values())
    first = f"O1,{next(iter(customers))},2026-05-03,100,,\n"
    result = purchases_csv(PURCHASE_HEADER + first + row + "\n")
    assert [(e.line, e.column) for e in result.errors] == [(3, column)]
    assert result.errors[0].reason.startswith(reason)
    assert not Purchase.objects.exists()


def test_purchase_for_an_unknown_customer_is_a_row_error(customers):
    c1 = next(iter(customers))
    text = PURCHASE_HEADER + f"O1,{c1},2026-05-03,100,,\nO2,NOBODY,2026-05-03,100,,\n"
    result = purchases_csv(text)
    assert reasons(result) == [
        (
            3,
            "customer_external_id",
            "no customer has the external ID “NOBODY” (import the customers first)",
        )
    ]
    assert not result.committed
    assert not Purchase.objects.exists()

    result = purchases_csv(text, keep_valid_rows=True)
    assert (result.committed, result.created, result.error_count) == (True, 1, 1)
    assert list(Purchase.objects.values_list("order_id", flat=True)) == ["O1"]


ITEM_HEADER = "order_id,customer_external_id,purchased_at,total,sku,quantity,unit_price\n"


def test_multi_item_orders_create_products_for_unknown_skus(customers):
    c1, c2, _c3 = customers
    ProductFactory(sku="TEA-01", name="煎茶 100g", price=Decimal("1080"))
    result = purchases_csv(
        ITEM_HEADER
        + f"O1,{c1},2026-05-03,5040,TEA-01,2,1080\n"
        + f"O1,{c1},2026-05-03,5040,CUP-01,1,2880\n"
        + f"O2,{c2},2026-05-04,2880,CUP-01,,2880\n"
        + f"O3,{c2},2026-05-05,500,,,\n"
    )
    assert result.errors == []
    assert (result.created, result.products_created) == (3, 1)
    cup = Product.objects.get(sku="CUP-01")
    assert (cup.name, cup.price) == ("CUP-01", Decimal("2880"))
    o1 = Purchase.objects.get(order_id="O1")
    assert sorted((i.product.sku, i.quantity, i.unit_price) for i in o1.items.all()) == [
        ("CUP-01", 1, Decimal("2880")),
        ("TEA-01", 2, Decimal("1080")),
    ]
    assert Purchase.objects.get(order_id="O2").items.get().quantity == 1  # the default
    assert not Purchase.objects.get(order_id="O3").items.exists()


def test_reimporting_purchases_updates_orders_and_items_without_duplicates(customers):
    c1, c2, _c3 = customers
    first = (
        ITEM_HEADER
        + f"O1,{c1},2026-05-03,5040,TEA-01,2,1080\nO1,{c1},2026-05-03,5040,CUP-01,1,2880\n"
    )
    purchases_csv(first)
    result = purchases_csv(
        "order_id,customer_external_id,purchased_at,total,status,sku,quantity,unit_price\n"
        f"O1,{c2},2026-05-03,3960,cancelled,TEA-01,3,1320\n"
    )
    assert (result.created, result.updated, result.products_created) == (0, 1, 0)
    purchase = Purchase.objects.get()
    assert (purchase.customer.external_id, purchase.total, purchase.status) == (
        c2,
        Decimal("3960"),
        "cancelled",
    )
    assert sorted((i.product.sku, i.quantity, i.unit_price) for i in purchase.items.all()) == [
        ("CUP-01", 1, Decimal("2880")),  # not in the second file: kept
        ("TEA-01", 3, Decimal("1320")),
    ]
    assert PurchaseItem.objects.count() == 2


@pytest.mark.parametrize("trusted", [True, False], ids=["set-wise checks", "per-row checks"])
def test_purchase_references_are_checked_once_and_triggers_fire_again_after(
    customers, monkeypatch, trusted
):
    # On PostgreSQL with the privilege, the references the import resolved itself are not
    # checked again row by row (session_replication_role): same rows either way, and the
    # enclosing transaction gets its checks and triggers back.
    monkeypatch.setattr(importing, "TRUST_CHECKED_REFERENCES", trusted)
    c1, c2, _c3 = customers
    purchases_csv(ITEM_HEADER + f"O1,{c1},2026-05-03,1080,TEA-01,1,1080\n")
    result = purchases_csv(
        ITEM_HEADER
        + f"O1,{c2},2026-05-04,2160,TEA-01,2,1080\nO2,{c1},2026-05-05,500,NEW-01,1,500\n"
        + "O3,NOBODY,2026-05-05,500,NEW-01,1,500\n",
        keep_valid_rows=True,
    )
    assert (result.created, result.updated, result.products_created) == (1, 1, 1)
    assert sorted(
        PurchaseItem.objects.values_list(
            "purchase__order_id", "purchase__customer__external_id", "product__sku", "quantity"
        )
    ) == [("O1", c2, "TEA-01", 2), ("O2", c1, "NEW-01", 1)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW session_replication_role")
            assert cursor.fetchone()[0] == "origin"
            with pytest.raises(IntegrityError), transaction.atomic():
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # checked now, not at commit
                PurchaseItem.objects.create(
                    purchase_id=Purchase.objects.get(order_id="O2").pk,
                    product_id=2**40,
                    quantity=1,
                    unit_price=1,
                )
    tagged = Customer.objects.get(external_id=c1)
    tagged.tags.add(TagFactory(name="VIP"))  # the tag row's created_at comes from a trigger
    assert tagged.customertag_set.get().created_at == tagged.created_at


def test_an_order_split_across_batches_is_one_purchase(customers, batch_size):
    batch_size(2)
    c1 = next(iter(customers))
    lines = [f"O1,{c1},2026-05-03,300,SKU-{n},1,100\n" for n in range(3)]
    lines.append(f"O1,{c1},2026-05-03,300,SKU-0,5,100\n")  # the same sku again: the last wins
    result = purchases_csv(ITEM_HEADER + "".join(lines))
    assert result.errors == [] and result.products_created == 3
    purchase = Purchase.objects.get()
    assert sorted((i.product.sku, i.quantity) for i in purchase.items.all()) == [
        ("SKU-0", 5),
        ("SKU-1", 1),
        ("SKU-2", 1),
    ]


@pytest.mark.parametrize(
    ("sku", "quantity", "unit_price", "column", "reason"),
    [
        ("TEA-01", "0", "100", "quantity", "“0” is not a whole number of 1 or more"),
        ("TEA-01", "1.5", "100", "quantity", "“1.5” is not a whole number of 1 or more"),
        ("TEA-01", "1", "", "unit_price", "required when a sku is given"),
        ("TEA-01", "1", "-5", "unit_price", "“-5” is negative"),
        ("", "2", "100", "sku", "required when quantity or unit_price is given"),
    ],
)
def test_item_validation_rules(customers, sku, quantity, unit_price, column, reason):
    c1 = next(iter(customers))
    result = purchases_csv(ITEM_HEADER + f"O1,{c1},2026-05-03,100,{sku},{quantity},{unit_price}\n")
    (error,) = result.errors
    assert (error.line, error.column) == (2, column)
    assert error.reason.startswith(reason)
    assert not Product.objects.exists()


def test_existing_purchases_count_as_updated(customers):
    customer = Customer.objects.get(external_id=next(iter(customers)))
    PurchaseFactory(order_id="O1", customer=customer)
    result = purchases_csv(
        PURCHASE_HEADER + f"O1,{customer.external_id},2026-05-03,100,,\n"
        f"O2,{customer.external_id},2026-05-03,100,,\n"
    )
    assert (result.created, result.updated) == (1, 1)
    assert Purchase.objects.get(order_id="O1").total == Decimal("100")


def test_purchases_in_shift_jis_with_japanese_labels(customers):
    c1 = next(iter(customers))
    with translation.override("ja"):
        text = PURCHASE_HEADER + f'O1,{c1},2026/05/03,"３,９８０円",キャンセル,店舗\n'
        result = import_purchases(read_csv(io.BytesIO(text.encode("cp932"))))
    assert result.errors == []
    purchase = Purchase.objects.get()
    assert (purchase.total, purchase.status, purchase.channel) == (
        Decimal("3980"),
        "cancelled",
        "store",
    )


# --- Set-wise checks and batches (the PostgreSQL path with DATABASE_URL set) -----------------


def test_unknown_customers_are_reported_by_line_in_every_batch(customers, batch_size):
    batch_size(3)
    c1, c2, _c3 = customers
    owners = [c1, "GHOST-1", c2, c2, "GHOST-2", c1, "GHOST-1", c1]
    text = PURCHASE_HEADER + "".join(
        f"O{n},{owner},2026-05-03,100,,\n" for n, owner in enumerate(owners)
    )
    result = purchases_csv(text)
    unknown = "no customer has the external ID “{}” (import the customers first)"
    expected = [
        (3, "customer_external_id", unknown.format("GHOST-1")),
        (6, "customer_external_id", unknown.format("GHOST-2")),
        (8, "customer_external_id", unknown.format("GHOST-1")),
    ]
    assert reasons(result) == expected
    assert (result.committed, result.error_count, result.created) == (False, 3, 0)
    assert not Purchase.objects.exists()

    result = purchases_csv(text, keep_valid_rows=True)
    assert reasons(result) == expected
    assert (result.committed, result.error_count, result.created) == (True, 3, 5)
    assert set(Purchase.objects.values_list("order_id", flat=True)) == {
        "O0",
        "O2",
        "O3",
        "O5",
        "O7",
    }


def test_an_order_is_not_split_at_a_batch_boundary(customers, batch_size):
    batch_size(2)
    c1, c2, _c3 = customers
    result = purchases_csv(
        ITEM_HEADER
        + f"O1,{c1},2026-05-03,300,SKU-0,1,100\n"
        + f"O2,{c2},2026-05-03,600,SKU-0,1,100\n"
        + f"O2,{c2},2026-05-03,600,SKU-1,1,200\n"
        + f"O2,{c2},2026-05-03,600,SKU-2,1,300\n"
        + f"O3,{c1},2026-05-04,100,SKU-0,1,100\n"
    )
    # O2's three lines straddle the batch size but are written together: one purchase,
    # counted once as created.
    assert (result.created, result.updated, result.errors) == (3, 0, [])
    o2 = Purchase.objects.get(order_id="O2")
    assert sorted(o2.items.values_list("product__sku", "unit_price")) == [
        ("SKU-0", Decimal("100")),
        ("SKU-1", Decimal("200")),
        ("SKU-2", Decimal("300")),
    ]


def test_an_order_id_repeated_later_in_the_file_updates_the_same_purchase(customers, batch_size):
    batch_size(1)
    c1, c2, _c3 = customers
    result = purchases_csv(
        ITEM_HEADER
        + f"O1,{c1},2026-05-03,100,TEA-01,1,100\n"
        + f"O2,{c1},2026-05-03,500,TEA-01,5,100\n"
        + f"O1,{c2},2026-05-04,300,CUP-01,1,200\n"
    )
    assert result.errors == []
    # The third line is in a later batch: O1 exists by then, so it counts as updated.
    assert (result.created, result.updated) == (2, 1)
    o1 = Purchase.objects.get(order_id="O1")
    assert (o1.customer.external_id, o1.total) == (c2, Decimal("300"))
    assert sorted(o1.items.values_list("product__sku", "quantity")) == [
        ("CUP-01", 1),
        ("TEA-01", 1),
    ]
    assert Purchase.objects.count() == 2


def test_duplicate_order_ids_in_one_batch_are_one_purchase_and_the_last_row_wins(customers):
    c1, c2, _c3 = customers
    result = purchases_csv(
        PURCHASE_HEADER
        + f"O1,{c1},2026-05-03,100,,store\n"
        + f"O2,{c1},2026-05-03,200,,\n"
        + f"O1,{c2},2026-05-05,300,refunded,\n"
    )
    assert (result.created, result.updated, result.errors) == (2, 0, [])
    o1 = Purchase.objects.get(order_id="O1")
    assert (o1.customer.external_id, o1.total, o1.status, o1.channel) == (
        c2,
        Decimal("300"),
        "refunded",
        "",
    )


def test_updating_existing_orders_changes_them_and_upserts_their_items(customers):
    c1, c2, _c3 = customers
    customer = Customer.objects.get(external_id=c1)
    tea = ProductFactory(sku="TEA-01", price=Decimal("1080"))
    kept = PurchaseFactory(order_id="O1", customer=customer, total=Decimal("2160"))
    kept.items.create(product=tea, quantity=2, unit_price=Decimal("1080"))
    untouched = PurchaseFactory(order_id="O9", customer=customer, total=Decimal("1"))
    new_ids_before = Purchase.objects.count()

    result = purchases_csv(
        "order_id,customer_external_id,purchased_at,total,status,sku,quantity,unit_price\n"
        f"O1,{c2},2026-05-06 10:00,4320,completed,TEA-01,4,1080\n"
        f"O1,{c2},2026-05-06 10:00,4320,completed,CUP-01,1,0\n"
        f"O2,{c1},2026-05-07,1080,,TEA-01,1,1080\n"
    )
    assert (result.created, result.updated, result.products_created) == (1, 1, 1)
    kept.refresh_from_db()
    assert kept.pk == Purchase.objects.get(order_id="O1").pk
    assert (kept.customer.external_id, kept.total) == (c2, Decimal("4320"))
    assert kept.purchased_at == datetime(2026, 5, 6, 1, 0, tzinfo=UTC)
    assert sorted(kept.items.values_list("product__sku", "quantity", "unit_price")) == [
        ("CUP-01", 1, Decimal("0")),
        ("TEA-01", 4, Decimal("1080")),
    ]
    untouched.refresh_from_db()
    assert untouched.total == Decimal("1")
    assert Purchase.objects.count() == new_ids_before + 1
    o2 = Purchase.objects.get(order_id="O2")
    assert list(o2.items.values_list("product__sku", "quantity")) == [("TEA-01", 1)]

    # The same file again: every order exists and nothing changes.
    again = purchases_csv(
        "order_id,customer_external_id,purchased_at,total,status,sku,quantity,unit_price\n"
        f"O1,{c2},2026-05-06 10:00,4320,completed,TEA-01,4,1080\n"
        f"O2,{c1},2026-05-07,1080,,TEA-01,1,1080\n"
    )
    assert (again.created, again.updated, again.products_created) == (0, 2, 0)
    assert PurchaseItem.objects.count() == 3


def test_mixed_errors_all_or_nothing_then_keeping_the_valid_rows(customers, batch_size):
    batch_size(2)
    c1, c2, _c3 = customers
    text = (
        ITEM_HEADER
        + f"O1,{c1},2026-05-03,100,TEA-01,1,100\n"
        + "O2,NOBODY,2026-05-03,100,TEA-01,1,100\n"
        + f"O3,{c2},2026-13-03,100,TEA-01,1,100\n"
        + f"O4,{c2},2026-05-03,100,TEA-01,0,100\n"
        + f"O5,{c2},2026-05-03,100,,,\n"
        + "O6,NOBODY,2026-05-03,-1,,,\n"
    )
    seen: list[RowError] = []
    result = purchases_csv(text, on_error=seen.append)
    expected = [
        (3, "customer_external_id"),
        (4, "purchased_at"),
        (5, "quantity"),
        (7, "total"),  # a row invalid in itself is not looked up
    ]
    assert [(e.line, e.column) for e in result.errors] == expected
    assert [(e.line, e.column) for e in seen] == expected
    assert (result.committed, result.error_count, result.created) == (False, 4, 0)
    assert not Purchase.objects.exists() and not Product.objects.exists()

    result = purchases_csv(text, keep_valid_rows=True)
    assert [(e.line, e.column) for e in result.errors] == expected
    assert (result.committed, result.error_count, result.created) == (True, 4, 2)
    assert sorted(Purchase.objects.values_list("order_id", flat=True)) == ["O1", "O5"]
    assert list(Product.objects.values_list("sku", flat=True)) == ["TEA-01"]


def test_importing_customers_keeps_what_the_file_does_not_carry(sales):
    owner = sales
    customer = CustomerFactory(
        external_id="C1", family_name="山田", notes="お得意様", owner=owner, phone="0312345678"
    )
    created_at = customer.created_at
    result = customers_csv(
        "external_id,family_name_kana,given_name_kana,email_opt_in\n"
        "C1,やまだ,たろう,はい\nC2,すずき,,いいえ\n"
    )
    assert (result.created, result.updated, result.errors) == (1, 1, [])
    customer.refresh_from_db()
    assert (customer.family_name, customer.notes, customer.owner, customer.phone) == (
        "山田",
        "お得意様",
        owner,
        "0312345678",
    )
    assert customer.created_at == created_at
    assert (customer.family_name_kana, customer.given_name_kana) == ("ヤマダ", "タロウ")
    assert customer.email_opt_in and customer.email_opt_in_at is not None
    # The search text is rebuilt from stored and imported values alike.
    assert list(Customer.objects.search("ﾔﾏﾀﾞﾀﾛｳ")) == [customer]
    assert list(Customer.objects.search("03-1234-5678")) == [customer]
    c2 = Customer.objects.get(external_id="C2")
    assert (c2.notes, c2.sns_accounts, c2.owner, c2.email_opt_in) == ("", {}, None, False)
    assert sorted(
        ConsentRecord.objects.values_list("customer__external_id", "opted_in", "source", "form")
    ) == [("C1", True, "import", "customers.csv"), ("C2", False, "import", "customers.csv")]
