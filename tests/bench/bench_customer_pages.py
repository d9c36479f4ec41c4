"""Benchmark of the sales pages at scale (1M customers / 10M purchases).

    DATABASE_URL=postgres://... python -m tests.bench.bench_customer_pages [--requests 200]

Seeds the database DATABASE_URL points at with ``tests.bench.dataset.ensure_dataset()`` if it
does not hold the dataset yet (PostgreSQL only), then requests each page in-process with
Django's test client as a signed-in sales user (templates, middleware and all) and prints
p50/p95/max per page against the targets: the customer list (no filter, a kana fragment, phone
digits, prefecture + consent, the next page, a tag, a tag + prefecture), the customer API
list with ``?q=`` and ``?tag=`` and the Customer 360 of a customer with 1,000 purchases. The
tag cases use the tag with the fewest members of at least 1% of the customers (VIP in the
seeded data: 2%, mostly long-standing customers), the hard case for a newest-first page;
so are the big tags of BIG_OLD_TAGS (ギフト利用 and 定期便 alone, on their fifth page and on
the API, 法人 in Okinawa), measured when present.
``--explain`` also prints the plans of the list's queries (EXPLAIN ANALYZE), ``--export``
times the CSV and Excel exports of the Tokyo customers (about 110,000 rows) with the
process's peak memory.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import time
from datetime import datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from urllib.parse import quote

# The test settings: production mode (DEBUG off, which would keep every query in memory)
# with plain static file storage, so pages render without running collectstatic first.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")

LIST_TARGET_MS = 100
DETAIL_TARGET_MS = 150
WARM_UP = 5
SAMPLES = 40  # different search values, cycled through the requests
BIG_CUSTOMER = "bench-360"
BIG_CUSTOMER_PURCHASES = 1000
# (tag, prefecture or ""): measured when the dataset has the tag.
BIG_OLD_TAGS = (("ギフト利用", ""), ("定期便", ""), ("法人", "47"))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def measure(client, urls: list[str], requests: int) -> list[float]:
    """Milliseconds per request, cycling through ``urls``; every answer must be a 200."""
    for url in urls[:WARM_UP]:
        client.get(url)
    timings = []
    for n in range(requests):
        url = urls[n % len(urls)]
        start = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return timings


def big_customer():
    """A customer with 1,000 completed purchases of two items each, created on first run
    (finding one in 10M purchases would cost a GROUP BY over all of them)."""
    from customers.models import Customer, Product, Purchase, PurchaseItem

    customer = Customer.objects.filter(external_id=BIG_CUSTOMER).first()
    if customer is not None:
        return customer
    from django.utils import timezone

    from tests.bench.dataset import END

    # Purchases end with the dataset, not today: the newest purchase in the database sets the
    # default as-of date of scoring runs and other benchmarks.
    start = datetime.combine(END, clock(12), tzinfo=timezone.get_default_timezone()) - timedelta(
        days=BIG_CUSTOMER_PURCHASES
    )
    customer = Customer.objects.create(
        created_at=start,
        external_id=BIG_CUSTOMER,
        family_name="大口",
        given_name="顧客",
        family_name_kana="オオグチ",
        given_name_kana="コキャク",
    )
    products = list(Product.objects.order_by("id")[:20])
    if len(products) < 2:
        products = [
            Product.objects.create(sku=f"bench-360-{n}", name=f"ベンチ商品 {n}", price=1000)
            for n in range(2)
        ]
    purchases = Purchase.objects.bulk_create(
        Purchase(
            order_id=f"{BIG_CUSTOMER}-{n:05d}",
            customer=customer,
            purchased_at=start + timedelta(days=n, hours=n % 12),
            total=Decimal(2000 + 37 * n),
        )
        for n in range(BIG_CUSTOMER_PURCHASES)
    )
    PurchaseItem.objects.bulk_create(
        PurchaseItem(
            purchase=purchase,
            product=products[(n + offset) % len(products)],
            quantity=1 + offset,
            unit_price=Decimal(1000),
        )
        for n, purchase in enumerate(purchases)
        for offset in range(2)
    )
    return customer


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def explain(sql_params: tuple[str, tuple]) -> str:
    from django.db import connection

    sql, params = sql_params
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--explain", action="store_true", help="print the list query plans")
    parser.add_argument("--export", action="store_true", help="also time the CSV and Excel exports")
    args = parser.parse_args()

    import django

    django.setup()

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.db.models import Count
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import Resolver404, resolve

    from crm.roles import Role, assign_role
    from customers import selectors
    from customers.models import Customer, Tag
    from tests.bench.dataset import ensure_dataset

    start = time.perf_counter()
    counts = ensure_dataset()
    print(f"dataset: {counts} (ready in {time.perf_counter() - start:.1f} s)")

    user, _created = get_user_model().objects.get_or_create(username="bench-sales")
    assign_role(user, Role.SALES)
    client = Client()
    client.force_login(user)

    # Search values taken from random customers, so each request looks for someone real.
    rng = random.Random(42)
    last_id = Customer.objects.order_by("-id").values_list("id", flat=True).first()
    sample = list(
        Customer.objects.filter(
            id__in=[rng.randint(1, last_id) for _ in range(SAMPLES * 5)]
        ).exclude(family_name_kana="", phone="")[:SAMPLES]
    )
    kana = [c.family_name_kana for c in sample if c.family_name_kana]
    phones = [c.phone[3:10] for c in sample if len(c.phone) >= 10]
    first_page = selectors.keyset_page(
        selectors.list_page_rows(selectors.customers_for_list(user=user))
    )
    next_cursor = first_page.next_cursor
    customer_360 = big_customer()
    customer_count = Customer.objects.count()
    tags = list(Tag.objects.annotate(members=Count("customers")).order_by("members"))
    print(
        "tags: "
        + ", ".join(f"{t.name} {t.members:,} ({t.members / customer_count:.1%})" for t in tags)
    )
    tag = next((t for t in tags if t.members >= customer_count / 100), tags[-1])

    pages: list[tuple[str, list[str], int]] = [
        ("list, no filter", ["/customers/"], LIST_TARGET_MS),
        ("list, next page (keyset)", [f"/customers/?after={next_cursor}"], LIST_TARGET_MS),
        ("list, kana fragment", [f"/customers/?q={k}" for k in kana], LIST_TARGET_MS),
        ("list, phone digits", [f"/customers/?q={p}" for p in phones], LIST_TARGET_MS),
        (
            "list, prefecture + consent",
            [f"/customers/?prefecture={p:02d}&consent=yes" for p in range(1, 48)],
            LIST_TARGET_MS,
        ),
        (f"list, tag ({tag.name})", [f"/customers/?tag={quote(tag.name)}"], LIST_TARGET_MS),
        (
            "list, tag + prefecture",
            [f"/customers/?tag={quote(tag.name)}&prefecture={p:02d}" for p in range(1, 48)],
            LIST_TARGET_MS,
        ),
    ]
    # Big tags whose members are mostly old customers, the hard case of a newest-first page,
    # alone, on a later page, and with a rare prefecture (Okinawa).
    present = {t.name for t in tags}
    for name, prefecture in BIG_OLD_TAGS:
        if name not in present:
            continue
        url = f"/customers/?tag={quote(name)}" + (f"&prefecture={prefecture}" if prefecture else "")
        label = f"list, tag {name}" + (f" + pref {prefecture}" if prefecture else "")
        pages.append((label, [url], LIST_TARGET_MS))
        if not prefecture:
            page = selectors.keyset_page(
                selectors.list_page_rows(selectors.customers_for_list(user=user, tag=name))
            )
            for _n in range(3):  # the fourth page
                page = selectors.keyset_page(
                    selectors.list_page_rows(selectors.customers_for_list(user=user, tag=name)),
                    after=page.next_cursor,
                )
            pages.append((f"{label}, page 5", [f"{url}&after={page.next_cursor}"], LIST_TARGET_MS))
    try:
        resolve("/api/v1/customers/")
    except Resolver404:
        print("note: /api/v1/customers/ is not routed yet; the API list is not measured")
    else:
        pages.append(
            ("API list, ?q=kana", [f"/api/v1/customers/?q={k}" for k in kana], LIST_TARGET_MS)
        )
        for name in (tag.name, *(n for n, p in BIG_OLD_TAGS if not p and n in present)):
            pages.append(
                (
                    f"API list, ?tag ({name})",
                    [f"/api/v1/customers/?tag={quote(name)}"],
                    LIST_TARGET_MS,
                )
            )
    pages.append(
        (
            f"360, {BIG_CUSTOMER_PURCHASES} purchases",
            [f"/customers/{customer_360.pk}/", f"/customers/{customer_360.pk}/?page=7"],
            DETAIL_TARGET_MS,
        )
    )

    print(f"\n{args.requests} requests per page, in-process (Django test client), milliseconds")
    print(f"{'page':<32}{'queries':>8}{'p50':>9}{'p95':>9}{'max':>9}{'target':>9}  ok")
    for name, urls, target in pages:
        with CaptureQueriesContext(connection) as queries:
            client.get(urls[0])
        query_count = len(queries)  # now: the next request resets the connection's log
        timings = measure(client, urls, args.requests)
        p95 = percentile(timings, 0.95)
        print(
            f"{name:<32}{query_count:>8}{statistics.median(timings):>9.1f}{p95:>9.1f}"
            f"{max(timings):>9.1f}{'< ' + str(target):>9}  {'yes' if p95 < target else 'NO'}"
        )

    if args.export:
        print("\nexport of the Tokyo customers (prefecture=13), streamed to /dev/null")
        rows = Customer.objects.filter(prefecture="13").count()
        for fmt in ("csv", "xlsx"):
            start = time.perf_counter()
            response = client.get(f"/customers/export/?format={fmt}&prefecture=13")
            size = sum(len(chunk) for chunk in response.streaming_content)
            seconds = time.perf_counter() - start
            print(
                f"{fmt:<5} {rows:>9,} rows {size / 1e6:>8.1f} MB {seconds:>7.1f} s "
                f"{rows / seconds:>9,.0f} rows/s  process peak RSS so far {peak_rss_mb():,.0f} MB"
            )

    if args.explain:
        plans = {
            "no filter": selectors.customers_for_list(user=user),
            "kana fragment": selectors.customers_for_list(user=user, q=kana[0]),
            "phone digits": selectors.customers_for_list(user=user, q=phones[0]),
            "prefecture + consent": selectors.customers_for_list(
                user=user, prefecture="31", consent=True
            ),
            f"tag {tag.name}": selectors.customers_for_list(user=user, tag=tag.name),
            f"tag {tag.name} + prefecture": selectors.customers_for_list(
                user=user, tag=tag.name, prefecture="13"
            ),
            **{
                f"tag {name} {prefecture}": selectors.customers_for_list(
                    user=user, tag=name, prefecture=prefecture
                )
                for name, prefecture in BIG_OLD_TAGS
                if name in present
            },
        }
        for name, customers in plans.items():
            query = selectors.list_page_rows(customers)[: selectors.CUSTOMER_PAGE_SIZE + 1]
            print(f"\n--- {name}\n{explain(query.query.sql_with_params())}")


if __name__ == "__main__":
    main()
