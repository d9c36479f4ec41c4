from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from customers.models import Customer, Purchase, PurchaseStatus
from tests.analytics.oracle import TOKYO


def jst(*args) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


class Shop:
    """Builds customers and purchases for a test."""

    def __init__(self):
        self.orders = 0

    def customer(self, name: str, *, prefecture="", channel="", created=None) -> Customer:
        customer = Customer.objects.create(external_id=name, prefecture=prefecture, channel=channel)
        if created is not None:
            Customer.objects.filter(pk=customer.pk).update(created_at=created)
        return customer

    def buy(self, customer, at, total, status=PurchaseStatus.COMPLETED) -> Purchase:
        self.orders += 1
        return Purchase.objects.create(
            order_id=f"o{self.orders}",
            customer=customer,
            purchased_at=at,
            total=Decimal(str(total)),
            status=status,
        )


@pytest.fixture
def shop(db):
    return Shop()


@pytest.fixture
def store(shop):
    """A small shop with the edge cases of the definitions (see each purchase's comment)."""
    since = jst(2024, 1, 1)
    c = {
        "c1": shop.customer("c1", prefecture="13", channel="ecommerce", created=since),
        "c2": shop.customer("c2", prefecture="27", channel="store", created=since),
        "c3": shop.customer("c3", prefecture="13", channel="store", created=since),
        "c4": shop.customer("c4", prefecture="01", channel="line", created=since),
        "c5": shop.customer("c5", prefecture="13", channel="ecommerce", created=jst(2026, 5, 15)),
        "c6": shop.customer("c6", prefecture="27", channel="ecommerce", created=since),
        "c7": shop.customer("c7", created=since),
    }
    shop.buy(c["c1"], jst(2025, 4, 10, 10), "1000.50")
    shop.buy(c["c1"], jst(2025, 5, 3, 0, 30), "333.33")  # 2 May 15:30 UTC: counts on 3 May
    shop.buy(c["c1"], jst(2026, 5, 20, 12), "2500")
    shop.buy(c["c2"], jst(2025, 5, 2, 23, 59), "100.01")
    shop.buy(c["c2"], jst(2025, 5, 2, 12), "200")  # second purchase on the first day
    shop.buy(c["c2"], jst(2026, 4, 1, 9), "999.99")
    shop.buy(c["c3"], jst(2025, 5, 15, 10), "5000", PurchaseStatus.CANCELLED)
    shop.buy(c["c3"], jst(2025, 6, 1, 10), "750")
    shop.buy(c["c3"], jst(2026, 5, 3, 10), "8000", PurchaseStatus.REFUNDED)
    shop.buy(c["c4"], jst(2026, 5, 10, 8), "120")
    shop.buy(c["c4"], jst(2026, 5, 10, 23, 30), "80.5")
    shop.buy(c["c4"], jst(2026, 6, 30, 23, 59, 59), "0")  # a free order still counts
    shop.buy(c["c6"], jst(2024, 5, 5, 10), "640")
    shop.buy(c["c6"], jst(2026, 5, 31, 23, 59, 59), "1640")
    shop.buy(c["c7"], jst(2026, 6, 1, 0, 0), "10")  # midnight: the 1st, not 31 May
    return c
