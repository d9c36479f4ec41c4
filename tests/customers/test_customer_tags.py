"""A tag row's copy of its customer's created_at (what the tag filter pages on) stays equal to
it whatever path writes the row or changes the customer, and the API's tag filter pages
newest first on it."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from customers.merging import merge_customers
from customers.models import Customer, CustomerTag
from customers.profiles import create_customer, update_customer
from tests.customers.factories import CustomerFactory, TagFactory
from tests.customers.test_api import API


def copies_are_equal() -> bool:
    rows = list(CustomerTag.objects.values_list("created_at", "customer__created_at"))
    assert rows, "no tag rows to check"
    return all(copy == own for copy, own in rows)


def test_every_path_that_writes_a_tag_row_copies_the_customers_created_at(admin_member):
    old = timezone.now() - timedelta(days=900)
    TagFactory(name="VIP")
    created = create_customer(fields={"external_id": "F-1", "created_at": old}, tags=["VIP"])
    update_customer(customer=created, fields={}, tags=["VIP", "定期便"], email_opt_in=False)
    added = CustomerFactory(created_at=old - timedelta(days=1))
    added.tags.add(TagFactory(name="法人"))
    inline = CustomerFactory(created_at=old - timedelta(days=2))
    CustomerTag(customer=inline, tag=TagFactory(name="要フォロー")).save()  # the admin inline
    assert CustomerTag.objects.filter(created_at__isnull=True).count() == 0
    assert CustomerTag.objects.count() == 4
    assert copies_are_equal()

    # A merge moves the duplicate's tags to the kept record: they take its created_at.
    twin = CustomerFactory(created_at=timezone.now())
    twin.tags.add(TagFactory(name="ギフト利用"))
    merge_customers(keep=added, duplicates=[twin], by=admin_member)
    assert sorted(added.tags.values_list("name", flat=True)) == ["ギフト利用", "法人"]
    assert copies_are_equal()

    # A corrected created_at (rare) is copied to the customer's tag rows, by save or update.
    created.created_at = old + timedelta(hours=5)
    created.save()
    Customer.objects.filter(pk=inline.pk).update(created_at=old + timedelta(days=3))
    assert copies_are_equal()
    assert set(
        CustomerTag.objects.filter(customer=inline).values_list("created_at", flat=True)
    ) == {old + timedelta(days=3)}


def test_the_api_tag_filter_pages_newest_first_in_both_directions(sales):
    vip = TagFactory(name="VIP")
    base = timezone.now() - timedelta(days=100)
    # Some members share a created_at: the id breaks the tie, as on the untagged list.
    members = [CustomerFactory(created_at=base - timedelta(days=n // 2)) for n in range(7)]
    for customer in members:
        customer.tags.add(vip)
    CustomerFactory.create_batch(3)  # newer customers without the tag
    api = API(sales)
    expected = [c.pk for c in sorted(members, key=lambda c: (c.created_at, c.pk), reverse=True)]

    seen, url = [], "/api/v1/customers/?tag=VIP&page_size=3"
    while url:
        page = api.get(url).json()
        seen += [row["id"] for row in page["results"]]
        previous, url = page["previous"], page["next"]
    assert seen == expected
    back = api.get(previous).json()
    assert [row["id"] for row in back["results"]] == expected[3:6]

    ascending = api.get("/api/v1/customers/", {"tag": "VIP", "ordering": "created_at"}).json()
    assert [row["id"] for row in ascending["results"]] == expected[::-1]
    assert api.get("/api/v1/customers/", {"tag": "存在しない"}).json()["results"] == []
