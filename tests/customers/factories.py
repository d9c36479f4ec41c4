from datetime import UTC, datetime
from decimal import Decimal

import factory

from customers.models import (
    Customer,
    Interaction,
    InteractionKind,
    Product,
    Purchase,
    PurchaseItem,
    SupportTicket,
    Tag,
    TicketReply,
)


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"C{n:06d}")
    family_name = factory.Iterator(["山田", "佐藤", "鈴木", "高橋", "田中"])
    given_name = factory.Iterator(["太郎", "花子", "一郎", "美咲", "健太"])
    family_name_kana = factory.Iterator(["ヤマダ", "サトウ", "スズキ", "タカハシ", "タナカ"])
    given_name_kana = factory.Iterator(["タロウ", "ハナコ", "イチロウ", "ミサキ", "ケンタ"])
    email = factory.LazyAttribute(lambda c: f"{c.external_id.lower()}@example.jp")
    prefecture = "13"
    channel = "ecommerce"


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tag{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Sequence(lambda n: f"商品 {n}")
    category = "食品"
    price = Decimal("1980")


class PurchaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Purchase

    order_id = factory.Sequence(lambda n: f"O{n:08d}")
    customer = factory.SubFactory(CustomerFactory)
    purchased_at = factory.Sequence(lambda n: datetime(2026, 1, 1, 3, 0, tzinfo=UTC))
    channel = "ecommerce"
    total = Decimal("3960")


class PurchaseItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PurchaseItem

    purchase = factory.SubFactory(PurchaseFactory)
    product = factory.SubFactory(ProductFactory)
    quantity = 2
    unit_price = Decimal("1980")


class SupportTicketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SupportTicket

    customer = factory.SubFactory(CustomerFactory)
    subject = factory.Sequence(lambda n: f"商品が届きません ({n})")
    body = "注文した商品がまだ届いていません。"


class TicketReplyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TicketReply

    ticket = factory.SubFactory(SupportTicketFactory)
    body = "ご連絡ありがとうございます。確認いたします。"


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    customer = factory.SubFactory(CustomerFactory)
    kind = InteractionKind.CALL
    summary = "新商品について電話で案内した。"
