"""Benchmark of the CSV import: customers, then purchases with multi-item orders.

    DATABASE_URL=postgres://... python -m tests.bench.bench_import --rows 1000000

Migrates the database DATABASE_URL points at (PostgreSQL only: the figures are for the
production path), writes realistic Japanese files to a temporary folder (customers in
Shift_JIS as Japanese Excel saves them, purchases in UTF-8), imports the customers the
purchases need through ``import_customers`` and then the purchases through
``import_purchases``, each from its CSV file with full validation, and prints rows, seconds,
rows/s, the process's peak memory and the machine's load. Every run uses new external ids
and order ids (a prefix of its own) and deletes its rows afterwards (``--keep`` keeps them), so
the database keeps its realistic 10M purchases and nothing more. ``--per-row-checks``
measures the path of a database role that may not set ``session_replication_role`` (see
``customers.importing._PostgresPurchaseWriter``): every row's foreign keys checked again.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-" + "x" * 50)
# DEBUG keeps every query in memory, which would swamp the memory figure.
os.environ["DEBUG"] = "false"

FAMILY = [
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"),
    ("伊藤", "イトウ"), ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"),
    ("小林", "コバヤシ"), ("加藤", "カトウ"), ("吉田", "ヨシダ"), ("山田", "ヤマダ"),
    ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"), ("井上", "イノウエ"),
]  # fmt: skip
GIVEN = [("太郎", "タロウ", "male"), ("花子", "ハナコ", "female"), ("翔太", "ショウタ", "male"),
         ("美咲", "ミサキ", "female"), ("健一", "ケンイチ", "male"), ("陽菜", "ヒナ", "female"),
         ("大輔", "ダイスケ", "male"), ("結衣", "ユイ", "female"), ("拓也", "タクヤ", "male"),
         ("さくら", "さくら", "female")]  # fmt: skip
PREFECTURES = ["東京都", "神奈川県", "大阪府", "愛知県", "埼玉県", "千葉県", "兵庫県", "北海道",
               "福岡県", "静岡県", "京都", "広島", "13", "14"]  # fmt: skip
TOWNS = ["中央区銀座", "港区南青山", "北区梅田", "中区栄", "浦和区高砂", "博多区博多駅前"]
CHANNELS = ["ecommerce", "ecommerce", "store", "line", "newsletter", "event"]
GENDERS = {"male": ["男性", "male", "M"], "female": ["女性", "female", "F"]}
SKUS = [f"SKU-{n:04d}" for n in range(500)]
PRICES = [480, 980, 1080, 1280, 1980, 2480, 2980, 3980, 5400, 12800]


def write_customers(path: Path, prefix: str, count: int, rng: random.Random) -> None:
    with path.open("w", encoding="cp932", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            ["external_id", "family_name", "given_name", "family_name_kana", "given_name_kana",
             "email", "phone", "birthday", "gender", "prefecture", "postal_code", "address",
             "channel", "email_opt_in"]
        )  # fmt: skip
        for n in range(count):
            family, family_kana = rng.choice(FAMILY)
            given, given_kana, gender = rng.choice(GIVEN)
            writer.writerow(
                [
                    f"{prefix}C{n:07d}",
                    family,
                    given,
                    family_kana,
                    given_kana,
                    f"user{n}.{prefix.lower()}@example.jp",
                    f"090-{rng.randrange(10000):04d}-{rng.randrange(10000):04d}",
                    f"{rng.randrange(1950, 2005)}/{rng.randrange(1, 13)}/{rng.randrange(1, 29)}",
                    rng.choice(GENDERS[gender]),
                    rng.choice(PREFECTURES),
                    f"〒{rng.randrange(100, 1000)}-{rng.randrange(10000):04d}",
                    f"{rng.choice(TOWNS)}{rng.randrange(1, 10)}-{rng.randrange(1, 30)}",
                    rng.choice(CHANNELS),
                    rng.choice(["はい", "いいえ", "1", "0", ""]),
                ]
            )


def write_purchases(path: Path, prefix: str, rows: int, customers: int, rng: random.Random) -> int:
    """Orders of 1 to 4 items, one row per item; returns the number of orders."""
    written = orders = 0
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            ["order_id", "customer_external_id", "purchased_at", "total", "status", "channel",
             "sku", "quantity", "unit_price"]
        )  # fmt: skip
        while written < rows:
            orders += 1
            order_id = f"{prefix}O{orders:08d}"
            customer = f"{prefix}C{rng.randrange(customers):07d}"
            when = (
                f"{rng.randrange(2023, 2027)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
                f" {rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
            )
            status = "completed" if rng.random() < 0.93 else rng.choice(["cancelled", "refunded"])
            channel = rng.choice(["ecommerce", "ecommerce", "ecommerce", "store", "subscription"])
            items = [
                (sku, rng.randint(1, 3), rng.choice(PRICES))
                for sku in rng.sample(SKUS, min(rng.randint(1, 4), rows - written))
            ]
            total = sum(quantity * price for _sku, quantity, price in items)
            # Half the files write amounts as Excel shows them: 12,345.
            shown = f"{total:,}" if orders % 2 else str(total)
            for sku, quantity, price in items:
                writer.writerow(
                    [order_id, customer, when, shown, status, channel, sku, quantity, price]
                )
            written += len(items)
    return orders


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed_import(importer, path: Path, label: str):
    from customers.importing import read_csv

    started = time.perf_counter()
    with path.open("rb") as file:
        result = importer(read_csv(file), source=path.name)
    seconds = time.perf_counter() - started
    if result.error_count:
        sys.exit(f"{label}: {result.error_count} rows with errors, e.g. {result.errors[:3]}")
    print(
        f"{label}: {result.rows_read:,} rows in {seconds:.1f} s = "
        f"{result.rows_read / seconds:,.0f} rows/s "
        f"({result.created:,} created, {result.updated:,} updated"
        + (f", {result.products_created:,} products created" if result.products_created else "")
        + f"); peak memory {peak_mib():,.0f} MiB"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="purchase rows (items)")
    parser.add_argument("--rows-per-customer", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the imported rows")
    parser.add_argument(
        "--per-row-checks",
        action="store_true",
        help="have the database check every row's foreign keys, as for a role that may not "
        "set session_replication_role",
    )
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://", "pgsql://")):
        sys.exit("Set DATABASE_URL to a PostgreSQL database: the benchmark refuses SQLite.")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from customers.importing import (
        BATCH_SIZE,
        COPY_BATCH_SIZE,
        import_customers,
        import_purchases,
    )

    if connection.vendor != "postgresql":
        sys.exit("The benchmark runs on PostgreSQL only.")
    call_command("migrate", interactive=False, verbosity=0)
    from customers import importing

    if args.per_row_checks:
        importing.TRUST_CHECKED_REFERENCES = False
    with connection.cursor() as cursor:
        set_wise = importing.TRUST_CHECKED_REFERENCES and importing._may_skip_reference_checks(
            cursor
        )
    print(
        "purchase foreign keys: "
        + ("checked set-wise per batch" if set_wise else "checked per row by the database")
    )

    rng = random.Random(args.seed)
    prefix = f"B{time.time_ns() // 1_000_000 % 10**10}-"
    customers = max(1, args.rows // args.rows_per_customer)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        customers_csv = Path(folder) / "customers.csv"
        purchases_csv = Path(folder) / "purchases.csv"
        started = time.perf_counter()
        write_customers(customers_csv, prefix, customers, rng)
        orders = write_purchases(purchases_csv, prefix, args.rows, customers, rng)
        print(
            f"PostgreSQL {connection.pg_version // 10000}, batches of {BATCH_SIZE:,} customers"
            f" and {COPY_BATCH_SIZE:,} purchase rows; "
            f"files written in {time.perf_counter() - started:.1f} s: {customers:,} customers "
            f"({customers_csv.stat().st_size / 2**20:,.0f} MiB, Shift_JIS), {args.rows:,} "
            f"purchase rows in {orders:,} orders ({purchases_csv.stat().st_size / 2**20:,.0f} MiB)"
        )
        try:
            print(f"load average before: {load()}")
            timed_import(import_customers, customers_csv, "customers")
            timed_import(import_purchases, purchases_csv, "purchases")
            print(f"load average after: {load()}")
        finally:
            if not args.keep:
                delete_rows(prefix)


def load() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def delete_rows(prefix: str) -> None:
    """Delete what a run imported (its ids start with ``prefix``), and the products it made
    if nothing else uses them.

    Raw deletes, with the foreign keys checked at each statement: a run's customers have only
    their consent records (an import writes no change history). Deleting them through the
    ORM took over two minutes (a history row per customer, related rows collected in
    Python) while holding the benchmark lock; should anything else refer to them, the raw
    deletes fail and the ORM's cascade runs instead.
    """
    from django.db import IntegrityError, connection, transaction

    from customers.models import ConsentRecord, Customer, Product, Purchase, PurchaseItem

    started = time.perf_counter()
    purchases = Purchase.objects.filter(order_id__startswith=prefix)
    customers = Customer.objects.filter(external_id__startswith=prefix)
    with transaction.atomic():
        # Raw deletes: nothing else refers to the purchases of a run.
        PurchaseItem.objects.filter(purchase__in=purchases)._raw_delete(connection.alias)
        purchases._raw_delete(connection.alias)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                ConsentRecord.objects.filter(customer__in=customers)._raw_delete(connection.alias)
                customers._raw_delete(connection.alias)
        except IntegrityError:
            customers.delete()  # through the ORM for whatever else refers to them
        Product.objects.filter(sku__in=SKUS, purchase_items__isnull=True).delete()
    print(f"rows of {prefix} deleted in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
