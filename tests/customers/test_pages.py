"""The customer pages as sales staff use them: list with search and filters, the Customer 360,
the profile forms and logging interactions. Every client enforces CSRF like a browser."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import (
    ConsentRecord,
    ConsentSource,
    Customer,
    Interaction,
    PurchaseStatus,
    Tag,
    TicketPriority,
)
from customers.selectors import CUSTOMER_PAGE_SIZE
from tests.crm.test_auth import csrf_token, post_form
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
EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
LIST = "/customers/"


def names_in(html: str) -> list[str]:
    """The customer names of the list's rows, in order."""
    return re.findall(r'<a href="/customers/\d+/">([^<]+)</a>', html)


def get_html(client, url: str, **extra) -> str:
    response = client.get(url, **{**EN, **extra})
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def post_from(client, page_url: str, action_url: str, data: dict, **extra):
    """POST ``data`` to ``action_url`` with the CSRF token of the page it is a form of."""
    token = csrf_token(client.get(page_url, **{**EN, **extra}))
    return client.post(action_url, {**data, "csrfmiddlewaretoken": token}, **{**EN, **extra})


# --- List, search, filters --------------------------------------------------------------------


def test_search_finds_kana_however_it_is_typed(client_as, sales):
    CustomerFactory(family_name="山田", given_name="太郎", family_name_kana="ヤマダ")
    CustomerFactory(family_name="佐藤", given_name="花子", family_name_kana="サトウ")
    client = client_as(sales)
    for typed in ("ﾔﾏﾀﾞ", "やまだ", "ヤマダ", "山田"):
        html = get_html(client, f"{LIST}?q={typed}")
        assert names_in(html) == ["山田 太郎"], typed


@pytest.mark.parametrize(
    "typed", ["090-1234-5678", "０９０１２３４５６７８", "1234-5678", "TARO@EXAMPLE.JP", "ec-0042"]
)
def test_search_by_phone_email_and_external_id(client_as, sales, typed):
    CustomerFactory(
        family_name="山田",
        given_name="太郎",
        phone="09012345678",
        email="taro@example.jp",
        external_id="EC-0042",
    )
    CustomerFactory(family_name="佐藤", given_name="花子", phone="0398765432")
    assert names_in(get_html(client_as(sales), f"{LIST}?q={typed}")) == ["山田 太郎"]


def test_list_shows_the_columns_newest_first(client_as, sales):
    owner = sales
    old = CustomerFactory(
        family_name="古川", given_name="一", created_at=timezone.now() - timedelta(days=3)
    )
    new = CustomerFactory(
        family_name="新井",
        given_name="二",
        family_name_kana="アライ",
        given_name_kana="ニ",
        prefecture="27",
        channel="line",
        email_opt_in=True,
        email_opt_in_at=timezone.now(),
        owner=owner,
    )
    html = get_html(client_as(sales), LIST)
    assert names_in(html) == [new.display_name, old.display_name]
    row = html[html.index(new.display_name) : html.index(old.display_name)]
    for text in ("アライ ニ", new.external_id, "Osaka", "LINE official account", "Consented"):
        assert text in row
    assert f"{owner.last_name} {owner.first_name}" in row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("prefecture=27", ["大阪 一"]),
        ("channel=line", ["北海 二"]),
        ("tag=VIP", ["大阪 一", "東京 三"]),
        ("consent=yes", ["北海 二"]),
        ("consent=no", ["東京 三", "大阪 一"]),
        ("prefecture=13&consent=no", ["東京 三"]),
    ],
)
def test_each_filter(client_as, sales, query, expected):
    vip = TagFactory(name="VIP")
    osaka = CustomerFactory(family_name="大阪", given_name="一", prefecture="27")
    osaka.tags.add(vip)
    CustomerFactory(
        family_name="北海",
        given_name="二",
        prefecture="01",
        channel="line",
        email_opt_in=True,
        email_opt_in_at=timezone.now(),
    )
    tokyo = CustomerFactory(family_name="東京", given_name="三", prefecture="13")
    tokyo.tags.add(vip)
    assert sorted(names_in(get_html(client_as(sales), f"{LIST}?{query}"))) == sorted(expected)


def test_owner_filter_and_customers_without_owner(client_as, sales, make_user):
    from crm.roles import Role

    colleague = make_user(Role.SALES, username="colleague")
    CustomerFactory(family_name="自分", given_name="の", owner=sales)
    CustomerFactory(family_name="同僚", given_name="の", owner=colleague)
    CustomerFactory(family_name="担当", given_name="なし")
    client = client_as(sales)
    assert names_in(get_html(client, f"{LIST}?owner={colleague.pk}")) == ["同僚 の"]
    assert names_in(get_html(client, f"{LIST}?owner=none")) == ["担当 なし"]


def test_an_invalid_filter_is_reported_and_the_others_still_apply(client_as, sales):
    CustomerFactory(family_name="大阪", given_name="一", prefecture="27")
    CustomerFactory(family_name="東京", given_name="三", prefecture="13")
    html = get_html(client_as(sales), f"{LIST}?prefecture=99&q=大阪")
    assert names_in(html) == ["大阪 一"]
    assert "Select a valid choice" in html


def test_pages_by_keyset_without_counting(client_as, sales):
    base = timezone.now()
    # Two customers share a creation time: the id breaks the tie, nobody is skipped.
    created = [base - timedelta(minutes=n // 2) for n in range(CUSTOMER_PAGE_SIZE + 5)]
    customers = [
        CustomerFactory(family_name="顧客", given_name=f"{n:02d}", created_at=at)
        for n, at in enumerate(created)
    ]
    expected = [c.display_name for c in sorted(customers, key=lambda c: (c.created_at, c.pk))][::-1]
    client = client_as(sales)
    with CaptureQueriesContext(connection) as queries:
        first = get_html(client, f"{LIST}?q=顧客")
    assert not [q for q in queries if "COUNT(" in q["sql"].upper()]
    assert names_in(first) == expected[:CUSTOMER_PAGE_SIZE]
    assert 'rel="prev"' not in first
    next_url = re.search(r'href="(\?[^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "q=%E9%A1%A7%E5%AE%A2" in next_url  # the search is kept

    second = get_html(client, LIST + next_url)
    assert names_in(second) == expected[CUSTOMER_PAGE_SIZE:]
    assert 'rel="next"' not in second
    prev_url = re.search(r'href="(\?[^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    back = get_html(client, LIST + prev_url)
    assert names_in(back) == expected[:CUSTOMER_PAGE_SIZE]
    assert 'rel="prev"' not in back


def test_a_tag_filter_pages_newest_first_from_the_tag_rows(client_as, sales):
    # The tag's members are the oldest customers, as VIPs often are: the pages are read from
    # the tag rows' copy of created_at (selectors.with_tag), in the customers' own order.
    vip = TagFactory(name="VIP")
    base = timezone.now()
    members = []
    for n in range(CUSTOMER_PAGE_SIZE + 3):
        customer = CustomerFactory(
            family_name="上得意",
            given_name=f"{n:02d}",
            prefecture="13" if n % 2 else "27",
            created_at=base - timedelta(days=400 + n // 2),
        )
        customer.tags.add(vip)
        members.append(customer)
    for n in range(10):
        CustomerFactory(family_name="新規", given_name=f"{n:02d}", created_at=base - timedelta(n))
    TagFactory(name="定期便").customers.add(CustomerFactory(family_name="別", given_name="タグ"))
    newest_first = sorted(members, key=lambda c: (c.created_at, c.pk), reverse=True)
    expected = [c.display_name for c in newest_first]
    client = client_as(sales)

    first = get_html(client, f"{LIST}?tag=VIP")
    assert names_in(first) == expected[:CUSTOMER_PAGE_SIZE]
    next_url = re.search(r'href="(\?[^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert names_in(get_html(client, LIST + next_url)) == expected[CUSTOMER_PAGE_SIZE:]
    second = get_html(client, LIST + next_url)
    prev_url = re.search(r'href="(\?[^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    assert names_in(get_html(client, LIST + prev_url)) == expected[:CUSTOMER_PAGE_SIZE]
    tokyo = [c.display_name for c in newest_first if c.prefecture == "13"]
    assert names_in(get_html(client, f"{LIST}?tag=VIP&prefecture=13")) == tokyo

    # A member whose created_at is corrected moves with it (the tag row's copy follows).
    oldest = newest_first[-1]
    Customer.objects.filter(pk=oldest.pk).update(created_at=base + timedelta(days=1))
    assert names_in(get_html(client, f"{LIST}?tag=VIP"))[0] == oldest.display_name


def test_a_broken_cursor_shows_the_first_page(client_as, sales):
    CustomerFactory(family_name="山田", given_name="太郎")
    assert names_in(get_html(client_as(sales), f"{LIST}?after=garbage")) == ["山田 太郎"]


def test_live_search_returns_only_the_results(client_as, sales):
    CustomerFactory(family_name="山田", given_name="太郎", family_name_kana="ヤマダ")
    CustomerFactory(family_name="佐藤", given_name="花子", family_name_kana="サトウ")
    html = get_html(client_as(sales), f"{LIST}?q=ﾔﾏﾀﾞ", HTTP_HX_REQUEST="true")
    assert "<html" not in html
    assert names_in(html) == ["山田 太郎"]


def test_empty_states(client_as, sales):
    client = client_as(sales)
    assert "No customers yet" in get_html(client, LIST)
    CustomerFactory()
    assert "No customer matches your search" in get_html(client, f"{LIST}?q=存在しない")


def test_marketers_read_but_cannot_create(client_as, marketer):
    CustomerFactory(family_name="山田", given_name="太郎")
    html = get_html(client_as(marketer), LIST)
    assert names_in(html) == ["山田 太郎"]
    assert "/customers/new/" not in html


def test_menu_shows_customers_and_tickets_to_sales(client_as, sales):
    html = get_html(client_as(sales), "/")
    nav = html[html.index('id="main-nav"') : html.index("</nav>")]
    assert ">Customers</a>" in nav
    assert ">Tickets</a>" in nav


# --- Customer 360 -----------------------------------------------------------------------------


def test_360_shows_the_profile_and_consent_history(client_as, sales):
    customer = CustomerFactory(
        family_name="山田",
        given_name="太郎",
        family_name_kana="ヤマダ",
        given_name_kana="タロウ",
        phone="09012345678",
        postal_code="1000001",
        prefecture="13",
        address="千代田区千代田1-1",
        sns_accounts={"instagram": "@yamada"},
        notes="辛いものが好き",
        owner=sales,
        birthday=datetime(1985, 4, 1).date(),
        gender="male",
    )
    customer.tags.add(TagFactory(name="定期便"))
    ConsentRecord.objects.create(
        customer=customer,
        opted_in=True,
        source=ConsentSource.PAPER,
        form="店頭申込書 2025年版",
        recorded_by=sales,
        recorded_at=datetime(2025, 6, 1, 1, 0, tzinfo=UTC),
    )
    html = get_html(client_as(sales), f"/customers/{customer.pk}/")
    for text in (
        "山田 太郎",
        "ヤマダ タロウ",
        customer.external_id,
        "09012345678",
        "〒100-0001",
        "Tokyo",
        "千代田区千代田1-1",
        "@yamada",
        "定期便",
        "辛いものが好き",
        "Male",
        "Paper form",
        "店頭申込書 2025年版",
        "06/01/2025 10 a.m.",  # 01:00 UTC in Tokyo time
    ):
        assert text in html, text


def test_360_kpis_count_completed_purchases_in_tokyo_dates(client_as, sales):
    customer = CustomerFactory()
    # 15:30 UTC on 2 May is 00:30 on 3 May in Tokyo: it counts on 3 May.
    PurchaseFactory(customer=customer, purchased_at=datetime(2026, 5, 2, 15, 30, tzinfo=UTC))
    PurchaseFactory(
        customer=customer, total=Decimal("6000"), purchased_at=datetime(2026, 5, 10, tzinfo=UTC)
    )
    PurchaseFactory(
        customer=customer,
        total=Decimal("2000"),
        purchased_at=datetime(2026, 6, 1, tzinfo=UTC),
    )
    for status in (PurchaseStatus.CANCELLED, PurchaseStatus.REFUNDED):
        PurchaseFactory(
            customer=customer,
            status=status,
            total=Decimal("99999"),
            purchased_at=datetime(2026, 7, 1, tzinfo=UTC),
        )
    PurchaseFactory(total=Decimal("55555"))  # someone else's
    html = get_html(client_as(sales), f"/customers/{customer.pk}/")
    section = html[html.index('<dl class="kpis">') :]
    section = section[: section.index("</dl>")]
    kpis = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", section))
    days = (timezone.localdate() - datetime(2026, 6, 1).date()).days
    assert kpis == {
        "Lifetime spend": "¥11,960",  # 3,960 + 6,000 + 2,000
        "Purchases": "3",
        "Average order value": "¥3,987",  # 11,960 / 3, shown without decimals
        "First purchase": "05/03/2026",
        "Last purchase": "06/01/2026",
        "Days since last purchase": str(days),
    }
    # Cancelled and refunded purchases are listed (marked) but not counted.
    assert html.count("Cancelled") == 1 and html.count("Refunded") == 1


def test_360_without_purchases(client_as, sales):
    customer = CustomerFactory()
    html = get_html(client_as(sales), f"/customers/{customer.pk}/")
    assert "No purchases yet" in html
    assert "¥0" in html


def test_360_timeline_newest_first_with_items_in_pages_of_20(client_as, sales):
    customer = CustomerFactory()
    product = ProductFactory(name="有機緑茶")
    start = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)
    purchases = [
        PurchaseFactory(customer=customer, purchased_at=start + timedelta(days=n))
        for n in range(25)
    ]
    for purchase in purchases:
        PurchaseItemFactory(purchase=purchase, product=product, quantity=3)
    client = client_as(sales)
    first = get_html(client, f"/customers/{customer.pk}/")
    orders = re.findall(r"O\d{8}", first)
    assert orders[:20] == [p.order_id for p in reversed(purchases)][:20]
    assert purchases[4].order_id not in first
    assert first.count("有機緑茶") == 20
    second = get_html(client, f"/customers/{customer.pk}/?page=2")
    assert re.findall(r"O\d{8}", second) == [p.order_id for p in reversed(purchases[:5])]


def test_360_queries_do_not_grow_with_purchases(client_as, sales):
    def queries_for(customer) -> int:
        client = client_as(sales)
        client.get(f"/customers/{customer.pk}/")  # warm the session
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/customers/{customer.pk}/").status_code == 200
        return len(queries)

    small, big = CustomerFactory(), CustomerFactory()
    for customer, count in ((small, 1), (big, 30)):
        for _n in range(count):
            PurchaseItemFactory.create_batch(2, purchase=PurchaseFactory(customer=customer))
        SupportTicketFactory.create_batch(count, customer=customer)
        InteractionFactory.create_batch(count, customer=customer, user=sales)
    assert queries_for(big) == queries_for(small)


def test_360_lists_tickets_with_overdue_badge(client_as, sales):
    customer = CustomerFactory()
    SupportTicketFactory(
        customer=customer,
        subject="返品したい",
        priority=TicketPriority.URGENT,
        opened_at=timezone.now() - timedelta(days=1),
    )
    SupportTicketFactory(customer=customer, subject="配送日の変更")
    html = get_html(client_as(sales), f"/customers/{customer.pk}/")
    assert "返品したい" in html and "配送日の変更" in html
    assert html.count("badge badge-overdue") == 1
    assert "Urgent" in html


def test_360_of_an_unknown_customer_is_404(client_as, sales):
    assert client_as(sales).get("/customers/999999/").status_code == 404


def test_360_links_follow_permissions(client_as, sales, marketer):
    customer = CustomerFactory()
    sales_html = get_html(client_as(sales), f"/customers/{customer.pk}/")
    assert f"/customers/{customer.pk}/edit/" in sales_html
    assert f"/tickets/new/?customer={customer.pk}" in sales_html
    assert "Log interaction" in sales_html
    marketer_html = get_html(client_as(marketer), f"/customers/{customer.pk}/")
    assert f"/customers/{customer.pk}/edit/" not in marketer_html
    assert "/tickets/new/" not in marketer_html
    assert "Log interaction" not in marketer_html


# --- Interactions -----------------------------------------------------------------------------


def interaction_data(**changes) -> dict:
    when = timezone.localtime() - timedelta(hours=1)
    return {
        "kind": "call",
        "occurred_at": when.strftime("%Y-%m-%dT%H:%M"),
        "summary": "定期便の解約について相談を受けた",
        **changes,
    }


def test_log_interaction_with_a_plain_post(client_as, sales):
    customer = CustomerFactory()
    client = client_as(sales)
    page, action = f"/customers/{customer.pk}/", f"/customers/{customer.pk}/interactions/"
    response = post_from(client, page, action, interaction_data())
    assert response.status_code == 302
    assert response["Location"] == f"/customers/{customer.pk}/#interactions"
    interaction = Interaction.objects.get(customer=customer)
    assert interaction.user == sales
    assert interaction.kind == "call"
    html = get_html(client, page)
    assert "The interaction was logged." in html
    assert "定期便の解約について相談を受けた" in html


def test_log_interaction_with_htmx_returns_the_section(client_as, sales):
    customer = CustomerFactory()
    InteractionFactory(
        customer=customer,
        summary="前回の電話",
        user=sales,
        occurred_at=timezone.now() - timedelta(days=2),
    )
    client = client_as(sales)
    response = post_from(
        client,
        f"/customers/{customer.pk}/",
        f"/customers/{customer.pk}/interactions/",
        interaction_data(kind="visit", summary="店舗で新商品を試した"),
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.startswith('<section id="interactions"')
    assert html.index("店舗で新商品を試した") < html.index("前回の電話")
    assert "The interaction was logged." in html
    assert Interaction.objects.filter(customer=customer).count() == 2


@pytest.mark.parametrize("htmx", [True, False])
def test_invalid_interaction_shows_errors(client_as, sales, htmx):
    customer = CustomerFactory()
    future = (timezone.localtime() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = post_from(
        client_as(sales),
        f"/customers/{customer.pk}/",
        f"/customers/{customer.pk}/interactions/",
        interaction_data(occurred_at=future, summary=""),
        **extra,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "An interaction cannot be in the future." in html
    assert "This field is required." in html
    assert ("<html" in html) is not htmx
    assert not Interaction.objects.exists()


def test_marketers_cannot_log_interactions(client_as, marketer):
    customer = CustomerFactory()
    response = post_from(
        client_as(marketer),
        f"/customers/{customer.pk}/",
        f"/customers/{customer.pk}/interactions/",
        interaction_data(),
    )
    assert response.status_code == 403
    assert not Interaction.objects.exists()


def test_all_interactions_page(client_as, sales):
    customer = CustomerFactory()
    InteractionFactory.create_batch(12, customer=customer, summary="メモ")
    client = client_as(sales)
    assert f"/customers/{customer.pk}/interactions/" in get_html(
        client, f"/customers/{customer.pk}/"
    )
    html = get_html(client, f"/customers/{customer.pk}/interactions/")
    assert html.count("メモ") == 12


# --- Create and edit --------------------------------------------------------------------------


def profile_data(**changes) -> dict:
    data = {
        "family_name": "山田",
        "given_name": "太郎",
        "family_name_kana": "やまだ",
        "given_name_kana": "ﾀﾛｳ",
        "external_id": "EC-1001",
        "email": "Taro.Yamada@Example.JP",
        "phone": "+81 90-1234-5678",
        "birthday": "1985-04-01",
        "gender": "male",
        "postal_code": "〒100-0001",
        "prefecture": "13",
        "address": "千代田区千代田1-1",
        "channel": "event",
        "owner": "",
        "notes": "",
        "sns_accounts": "Instagram: @yamada\nline: yamada_t",
        "tags": "VIP、定期便, vip ",
        "consent_note": "",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_create_a_customer(client_as, sales):
    client = client_as(sales)
    response = post_form(
        client,
        "/customers/new/",
        profile_data(email_opt_in="on", consent_note="展示会の申込書", owner=str(sales.pk)),
        **EN,
    )
    customer = Customer.objects.get(external_id="EC-1001")
    assert response.status_code == 302
    assert response["Location"] == f"/customers/{customer.pk}/"
    assert customer.family_name_kana == "ヤマダ"
    assert customer.given_name_kana == "タロウ"
    assert customer.phone == "09012345678"
    assert customer.postal_code == "1000001"
    assert customer.email == "taro.yamada@example.jp"
    assert customer.sns_accounts == {"instagram": "@yamada", "line": "yamada_t"}
    assert sorted(customer.tags.values_list("name", flat=True)) == ["VIP", "vip", "定期便"]
    assert customer.owner == sales
    assert customer.email_opt_in is True
    record = customer.consent_records.get()
    assert (record.opted_in, record.source, record.form, record.recorded_by) == (
        True,
        ConsentSource.STAFF,
        "展示会の申込書",
        sales,
    )
    assert {entry.history_user for entry in customer.history.all()} == {sales}
    assert "Customer 山田 太郎 was created." in get_html(client, response["Location"])


def test_create_without_consent_records_nothing(client_as, sales):
    post_form(client_as(sales), "/customers/new/", profile_data(), **EN)
    customer = Customer.objects.get()
    assert customer.email_opt_in is False
    assert not ConsentRecord.objects.exists()


def test_only_an_external_id_is_required(client_as, sales):
    minimal = dict.fromkeys(profile_data(), "")
    response = post_form(client_as(sales), "/customers/new/", {**minimal, "external_id": "X1"})
    assert response.status_code == 302
    assert Customer.objects.get().external_id == "X1"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"family_name_kana": "Yamada"}, "family_name_kana", "Enter the reading in kana"),
        ({"given_name_kana": "太郎"}, "given_name_kana", "Enter the reading in kana"),
        ({"phone": "090-1234"}, "phone", "Enter a phone number of 10 to 15 digits"),
        ({"phone": "call me"}, "phone", "Enter a phone number of 10 to 15 digits"),
        ({"postal_code": "100-001"}, "postal_code", "Enter a postal code of 7 digits"),
        ({"birthday": "2999-01-01"}, "birthday", "The birthday cannot be in the future."),
        ({"birthday": "1985-13-01"}, "birthday", "Enter a valid date."),
        ({"email": "not-an-address"}, "email", "Enter a valid email address."),
        ({"external_id": "　"}, "external_id", "This field is required."),
        ({"prefecture": "48"}, "prefecture", "Select a valid choice."),
        ({"sns_accounts": "just text"}, "sns_accounts", 'Line 1: write "service: account"'),
        ({"tags": "x" * 51}, "tags", "A tag can have at most 50 characters"),
        (
            {"email_opt_in": "on"},
            "consent_note",
            "Say how and on which form the customer gave consent.",
        ),
        (
            {"email_opt_in": "on", "consent_note": "口頭", "email": ""},
            "email",
            "Consent to e-mail needs an e-mail address.",
        ),
    ],
)
def test_validation_errors(client_as, sales, changes, field, message):
    response = post_form(client_as(sales), "/customers/new/", profile_data(**changes), **EN)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert message.replace('"', "&quot;") in response.content.decode()
    assert not Customer.objects.exists()


def test_external_id_must_be_unique(client_as, sales):
    CustomerFactory(external_id="EC-1001")
    response = post_form(client_as(sales), "/customers/new/", profile_data(), **EN)
    assert response.status_code == 200
    assert "Another customer already has this external ID." in response.content.decode()
    assert Customer.objects.count() == 1


def test_edit_a_customer(client_as, sales):
    customer = CustomerFactory(
        external_id="EC-1", email="a@example.jp", email_opt_in=True, email_opt_in_at=timezone.now()
    )
    customer.tags.add(TagFactory(name="旧タグ"))
    client = client_as(sales)
    page = get_html(client, f"/customers/{customer.pk}/edit/")
    assert 'value="EC-1"' in page and "旧タグ" in page and "checked" in page

    response = post_form(
        client,
        f"/customers/{customer.pk}/edit/",
        profile_data(external_id="EC-1", email="a@example.jp", tags="新タグ"),
        **EN,
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.family_name == "山田"
    assert list(customer.tags.values_list("name", flat=True)) == ["新タグ"]
    assert Tag.objects.filter(name="旧タグ").exists()  # other customers may still use it
    # The checkbox was left unticked: consent withdrawn, and recorded as such.
    assert customer.email_opt_in is False
    record = customer.consent_records.get()
    assert (record.opted_in, record.source, record.recorded_by) == (False, "staff", sales)
    assert customer.history.first().history_user == sales
    assert "Customer 山田 太郎 was saved." in get_html(client, f"/customers/{customer.pk}/")


def test_editing_without_a_consent_change_records_none(client_as, sales):
    customer = CustomerFactory(external_id="EC-1")
    post_form(client_as(sales), f"/customers/{customer.pk}/edit/", profile_data(external_id="EC-1"))
    assert not ConsentRecord.objects.exists()


def test_edit_keeps_its_own_external_id_but_not_anothers(client_as, sales):
    CustomerFactory(external_id="TAKEN")
    customer = CustomerFactory(external_id="MINE")
    client = client_as(sales)
    url = f"/customers/{customer.pk}/edit/"
    assert post_form(client, url, profile_data(external_id="MINE")).status_code == 302
    response = post_form(client, url, profile_data(external_id="TAKEN"), **EN)
    assert "Another customer already has this external ID." in response.content.decode()


@pytest.mark.parametrize(
    ("role_fixture", "status"), [("admin_member", 200), ("sales", 200), ("marketer", 403)]
)
def test_form_permissions_per_role(request, client_as, role_fixture, status):
    user = request.getfixturevalue(role_fixture)
    customer = CustomerFactory()
    client = client_as(user)
    assert client.get("/customers/new/").status_code == status
    assert client.get(f"/customers/{customer.pk}/edit/").status_code == status
    assert client.get(f"/customers/{customer.pk}/").status_code == 200


def test_marketer_post_is_refused(client_as, marketer, sales):
    customer = CustomerFactory(family_name="元の名前")
    # A token from a page the marketer may open: the refusal is the permission, not CSRF.
    client = client_as(marketer)
    token = csrf_token(client.get(f"/customers/{customer.pk}/"))
    response = client.post(
        f"/customers/{customer.pk}/edit/",
        {**profile_data(), "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 403
    customer.refresh_from_db()
    assert customer.family_name == "元の名前"


def test_prefecture_choices_in_the_users_language(client_as, sales):
    html = get_html(client_as(sales), "/customers/new/")
    assert '<option value="13">Tokyo</option>' in html


@pytest.mark.parametrize(("count", "link"), [(10, False), (11, True)])
def test_360_links_to_all_tickets_only_when_some_are_not_shown(client_as, sales, count, link):
    customer = CustomerFactory()
    SupportTicketFactory.create_batch(count, customer=customer)
    html = get_html(client_as(sales), f"/customers/{customer.pk}/")
    assert len(re.findall(r'<a href="/tickets/\d+/">', html)) == 10
    assert (f"/tickets/?tab=all&amp;customer={customer.pk}" in html) is link


def test_filters_stay_selected(client_as, sales):
    TagFactory(name="VIP")
    html = get_html(client_as(sales), f"{LIST}?q=山田&prefecture=27&tag=VIP&consent=yes")
    assert 'value="山田"' in html
    assert '<option value="27" selected>Osaka</option>' in html
    assert '<option value="VIP" selected>VIP</option>' in html
    assert '<option value="yes" selected>Consented</option>' in html


@pytest.mark.parametrize(
    ("role_fixture", "export", "erase"),
    [("admin_member", True, True), ("sales", True, False), ("marketer", False, False)],
)
def test_personal_data_links_follow_permissions(request, client_as, role_fixture, export, erase):
    user = request.getfixturevalue(role_fixture)
    customer = CustomerFactory()
    html = get_html(client_as(user), f"/customers/{customer.pk}/")
    assert ("Export personal data" in html) is export
    assert ("Erase personal data" in html) is erase


def test_an_erased_customer_cannot_be_edited(client_as, sales):
    customer = CustomerFactory(external_id="erased-1", erased_at=timezone.now())
    client = client_as(sales)
    html = get_html(client, f"/customers/{customer.pk}/")
    assert "personal data was erased" in html
    assert f"/customers/{customer.pk}/edit/" not in html
    response = client.get(f"/customers/{customer.pk}/edit/", **EN)
    assert response.status_code == 302
    assert "it cannot be edited" in get_html(client, response["Location"])


def test_a_rejected_edit_keeps_the_saved_name_in_the_heading(client_as, sales):
    customer = CustomerFactory(external_id="EC-1", family_name="山田", given_name="太郎")
    response = post_form(
        client_as(sales),
        f"/customers/{customer.pk}/edit/",
        profile_data(external_id="EC-1", family_name="佐藤", phone="123"),
        **EN,
    )
    html = response.content.decode()
    assert "<h1>Edit 山田 太郎</h1>" in html
    assert 'value="佐藤"' in html  # what was typed stays in the form


def test_the_admin_shows_and_edits_a_customers_tags_inline(make_user):
    from django.test import Client

    admin = make_user(is_staff=True, is_superuser=True, username="root")
    customer = CustomerFactory()
    customer.tags.add(TagFactory(name="VIP"))
    new_tag = TagFactory(name="定期便")
    client = Client()
    client.force_login(admin)
    url = f"/admin/customers/customer/{customer.pk}/change/"
    page = client.get(url, **EN)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {
        **{k: v for k, v in form.initial.items() if v is not None and k != "sns_accounts"},
        "sns_accounts": "{}",
        "external_id": customer.external_id,
    }
    inline = next(f for f in page.context["inline_admin_formsets"] if f.formset.prefix)
    prefix = inline.formset.prefix
    existing = inline.formset.forms[0].instance
    data.update(
        {
            f"{prefix}-TOTAL_FORMS": "2",
            f"{prefix}-INITIAL_FORMS": "1",
            f"{prefix}-0-id": existing.pk,
            f"{prefix}-0-customer": customer.pk,
            f"{prefix}-0-tag": existing.tag_id,
            f"{prefix}-1-customer": customer.pk,
            f"{prefix}-1-tag": new_tag.pk,
        }
    )
    for formset in page.context["inline_admin_formsets"]:
        other = formset.formset.prefix
        if other != prefix:
            data.update({f"{other}-TOTAL_FORMS": "0", f"{other}-INITIAL_FORMS": "0"})
    response = client.post(url, data, **EN)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert sorted(customer.tags.values_list("name", flat=True)) == ["VIP", "定期便"]
