"""Rendering: personalisation with safe variables, escaping, links rewritten to click URLs,
the open pixel, the legally required footer and the RFC 8058 headers."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

import pytest
from django.test import override_settings
from django.utils import translation

from campaigns import tokens
from campaigns.mime import CampaignEmail
from campaigns.models import Link
from campaigns.rendering import Recipient, Renderer, check_content, preview, store_links
from segments.models import RfmLabel
from tests.campaigns.factories import VariantFactory, subscriber
from tests.customers.factories import ProductFactory, PurchaseFactory, PurchaseItemFactory
from tests.segments.factories import CustomerScoreFactory, ScoringRunFactory

pytestmark = pytest.mark.django_db

SENDER = {
    "CAMPAIGN_SENDER_NAME": "株式会社サンプル商店",
    "CAMPAIGN_SENDER_ADDRESS": "東京都千代田区丸の内1-1-1",
    "CAMPAIGN_SENDER_CONTACT": "support@shop.example.jp",
    "CAMPAIGN_UNSUBSCRIBE_MAILTO": "unsubscribe@shop.example.jp",
    "SITE_URL": "https://crm.example.jp",
}


def render(variant, customer, message_id=41):
    store_links(campaign=variant.campaign)
    renderer = Renderer(campaign=variant.campaign)
    recipient = Recipient(
        message_id=message_id, customer_id=customer.pk, email=customer.email, variant_id=variant.pk
    )
    return renderer.render([recipient])[0]


def html_of(email) -> str:
    return next(content for content, kind in email.alternatives if kind == "text/html")


@override_settings(**SENDER)
def test_variables_are_filled_from_the_customer_and_the_campaign():
    customer = subscriber(family_name="山田", given_name="花子", family_name_kana="ヤマダ")
    product = ProductFactory(name="有機緑茶")
    older = PurchaseFactory(customer=customer, purchased_at=datetime(2026, 1, 3, tzinfo=UTC))
    PurchaseItemFactory(purchase=older, product=ProductFactory(name="ほうじ茶"))
    someone_else = PurchaseFactory(purchased_at=datetime(2026, 9, 1, tzinfo=UTC))
    PurchaseItemFactory(purchase=someone_else, product=ProductFactory(name="抹茶"))
    purchase = PurchaseFactory(customer=customer, purchased_at=datetime(2026, 5, 3, tzinfo=UTC))
    PurchaseItemFactory(purchase=purchase, product=product)
    CustomerScoreFactory(run=ScoringRunFactory(), customer=customer, rfm_label=RfmLabel.LOYAL)
    variant = VariantFactory(
        subject="{{ family_name }}様へ {{ coupon_code }}",
        text_body=(
            "{{ full_name }} ({{ family_name_kana }}) {{ last_product }} {{ rfm_label }} "
            "{{ prefecture }} {{ unknown_variable }}|"
        ),
    )
    email = render(variant, customer)
    with translation.override("ja"):  # LANGUAGE_CODE: the language the e-mails are written in
        label = str(RfmLabel.LOYAL.label)
    assert email.subject == "山田様へ AUTUMN10"
    assert email.body.startswith(f"山田 花子 (ヤマダ) 有機緑茶 {label} 東京都 |")
    assert email.to == [customer.email]


@override_settings(**SENDER)
def test_html_is_escaped_and_content_cannot_reach_the_database_or_files():
    customer = subscriber(family_name="<script>alert(1)</script>")
    variant = VariantFactory(html_body="<p>{{ family_name }}</p>", text_body="{{ family_name }}")
    email = render(variant, customer)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_of(email)
    assert "<script>" not in html_of(email)
    assert email.body.startswith("<script>alert(1)</script>")  # plain text is not HTML
    for dangerous in (
        "{% load static %}",
        "{% include 'base.html' %}",
        "{% url 'home' %}",
        "{{ family_name.__class__ }}",
        "{% for x in y %}{% endfor %}",
    ):
        assert check_content(subject="s", html_body=dangerous, text_body="t"), dangerous
    assert (
        check_content(
            subject="{{ given_name|default:'お客' }}様",
            html_body="{% if coupon_code %}<b>{{ coupon_code|upper }}</b>{% endif %}",
            text_body="{{ last_purchase_date|date:'Y-m-d' }}",
        )
        == []
    )


@override_settings(**SENDER)
def test_links_are_rewritten_to_click_urls_of_stored_links_and_the_pixel_is_added():
    customer = subscriber()
    variant = VariantFactory()
    email = render(variant, customer, message_id=41)
    link = Link.objects.get(campaign=variant.campaign)
    assert link.url == "https://shop.example.jp/sale?from=mail&x=1"
    click = tokens.click_url(41, link.pk)
    body = html_of(email)
    assert f'href="{click}"' in body
    assert "shop.example.jp/sale" not in body
    assert f'<img src="{tokens.open_url(41)}"' in body
    assert body.index(tokens.open_url(41)) < body.index("</body>")
    assert f"セール会場: {click}\n" in email.body


@override_settings(**SENDER)
def test_every_message_carries_the_sender_footer_and_one_click_unsubscribe_headers():
    customer = subscriber()
    email = render(VariantFactory(), customer, message_id=41)
    unsubscribe = tokens.unsubscribe_url(41)
    assert email.extra_headers["List-Unsubscribe"] == (
        f"<{unsubscribe}>, <mailto:unsubscribe@shop.example.jp?subject=unsubscribe-41>"
    )
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe.startswith("https://crm.example.jp/")
    for part in (email.body, html_of(email)):
        assert "株式会社サンプル商店" in part
        assert "東京都千代田区丸の内1-1-1" in part
        assert "support@shop.example.jp" in part
        assert unsubscribe in part
    parsed = message_from_bytes(email.message().as_bytes())
    assert parsed["Message-ID"] == f"<campaign-{email_campaign(email)}.message-41@crm.example.jp>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def email_campaign(email) -> str:
    return email.extra_headers["Message-ID"].split(".")[0].removeprefix("<campaign-")


@override_settings(**SENDER)
def test_preview_renders_for_a_chosen_customer():
    customer = subscriber(family_name="佐藤")
    variant = VariantFactory()
    email = preview(variant=variant, customer=customer)
    assert email.subject == "佐藤様、秋のセールのお知らせ"
    assert "AUTUMN10" in html_of(email)


@override_settings(**SENDER, DEFAULT_FROM_EMAIL="サンプル商店 <shop@example.jp>")
def test_the_wire_format_decodes_to_what_was_rendered():
    customer = subscriber(family_name="山田")
    email = render(
        VariantFactory(subject="{{ family_name }}様、" + "とても長い件名" * 12), customer
    )
    parsed = message_from_bytes(email.message().as_bytes(linesep="\r\n"), policy=default)
    assert parsed["Subject"] == email.subject
    assert parsed["From"].addresses[0].display_name == "サンプル商店"
    assert parsed["From"].addresses[0].addr_spec == "shop@example.jp"
    assert parsed["To"].addresses[0].addr_spec == customer.email
    assert parsed.get_content_type() == "multipart/alternative"
    plain, rich = parsed.get_payload()
    assert plain.get_content() == email.body
    assert rich.get_content_type() == "text/html" and rich.get_content() == html_of(email)
    assert all(len(line) <= 998 for line in email.message().as_bytes().split(b"\n"))


def test_addresses_the_fast_serialiser_does_not_handle_go_through_django():
    email = CampaignEmail(
        subject="件名", body="本文", from_email="shop@example.jp", to=["ユーザー@例え.jp"]
    )
    email.attach_alternative("<p>本文</p>", "text/html")
    parsed = message_from_bytes(email.message().as_bytes(), policy=default)
    assert parsed["Subject"] == "件名"
