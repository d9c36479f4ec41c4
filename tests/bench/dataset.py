"""The benchmark dataset: realistic demo data at scale in the PostgreSQL database named by
DATABASE_URL (1M customers / 10M purchases by default).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench \\
        python -m tests.bench.dataset --customers 1000000

``ensure_dataset()`` migrates the database and seeds it only if it does not already hold that
exact dataset: what was seeded is recorded in a small marker table (``bench_dataset``, outside
Django's models) together with the id ranges, and the dataset counts as present while the
marker matches the request and every seeded customer and purchase is still there. Rows other
benchmarks add do not trigger a reseed; a reseed flushes the customers app's data first.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date

# A fixed last day: the same dataset whatever day the benchmark runs.
END = date(2026, 10, 31)
SALES_STAFF = 5
_LOCK_KEY = 7_305_000_001  # pg_advisory_lock: one seeding at a time


def setup_django() -> None:
    """Configure Django for a benchmark script (the test settings: DEBUG off, no query log)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


def ensure_dataset(
    customers: int = 1_000_000, purchases_per_customer: float = 10, seed: int = 42
) -> dict:
    """Make sure the database holds the demo dataset of that size and seed; return its counts
    (``seeded`` tells whether it was generated now, ``seconds`` how long that took)."""
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit(
            "The benchmark dataset needs PostgreSQL: set DATABASE_URL, e.g. "
            "postgres://postgres@127.0.0.1:5432/crm_bench (SQLite is refused)."
        )
    call_command("migrate", interactive=False, verbosity=0)
    from customers.demo_data import GENERATOR_VERSION

    wanted = {
        "generator": GENERATOR_VERSION,
        "customers": customers,
        "purchases_per_customer": float(purchases_per_customer),
        "seed": seed,
        "end": END.isoformat(),
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_dataset "
            "(id integer PRIMARY KEY, params jsonb NOT NULL, counts jsonb NOT NULL, "
            "seeded_at timestamptz NOT NULL DEFAULT now())"
        )
        cursor.execute("SELECT pg_advisory_lock(%s)", [_LOCK_KEY])
        try:
            counts = _present_counts(cursor, wanted)
            if counts is not None:
                return {**counts, "seeded": False, "seconds": 0.0}
            counts = _seed(wanted)
            cursor.execute(
                "INSERT INTO bench_dataset (id, params, counts) VALUES (1, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET params = EXCLUDED.params, "
                "counts = EXCLUDED.counts, seeded_at = now()",
                [json.dumps(wanted), json.dumps(counts)],
            )
            return {**counts, "seeded": True}
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])


def _present_counts(cursor, wanted: dict) -> dict | None:
    from customers.models import Customer, Purchase

    cursor.execute("SELECT params, counts FROM bench_dataset WHERE id = 1")
    row = cursor.fetchone()
    if row is None:
        return None
    params, counts = (json.loads(v) if isinstance(v, str) else v for v in row)
    if params != wanted:
        return None
    customers = Customer.objects.filter(pk__range=counts["customer_ids"]).count()
    purchases = Purchase.objects.filter(pk__range=counts["purchase_ids"]).count()
    intact = customers == counts["customers"] and purchases == counts["purchases"]
    return counts if intact else None


def _seed(wanted: dict) -> dict:
    from django.db import connection
    from django.db.models import Max, Min

    from customers.demo_data import seed_demo_data
    from customers.models import Customer, Purchase

    _ensure_sales_staff()
    summary = seed_demo_data(
        customers=wanted["customers"],
        seed=wanted["seed"],
        purchases_per_customer=wanted["purchases_per_customer"],
        end=END,
        existing="flush",
        progress=print,
    )
    # Benchmarks should meet tables as autovacuum leaves them in production (visibility map
    # set, statistics fresh), not an autovacuum run starting in the middle of a measurement.
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"VACUUM ANALYZE: {time.perf_counter() - started:.1f} s")
    customer_ids = Customer.objects.aggregate(a=Min("pk"), b=Max("pk"))
    purchase_ids = Purchase.objects.aggregate(a=Min("pk"), b=Max("pk"))
    return {
        "customers": summary.customers,
        "purchases": summary.purchases,
        "items": summary.items,
        "tickets": summary.tickets,
        "interactions": summary.interactions,
        "customer_ids": [customer_ids["a"], customer_ids["b"]],
        "purchase_ids": [purchase_ids["a"], purchase_ids["b"]],
        "seconds": round(summary.seconds, 1),
    }


def _ensure_sales_staff() -> None:
    """Owners and ticket assignees come from the Sales role: give the dataset a small team."""
    from django.contrib.auth import get_user_model

    from crm.roles import Role, assign_role

    User = get_user_model()
    for number in range(1, SALES_STAFF + 1):
        user, created = User.objects.get_or_create(
            username=f"bench-sales-{number}",
            defaults={"first_name": "営業", "last_name": f"担当{number}"},
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            assign_role(user, Role.SALES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--purchases-per-customer", type=float, default=10)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    started = time.perf_counter()
    counts = ensure_dataset(args.customers, args.purchases_per_customer, args.seed)
    for key in ("customers", "purchases", "items", "tickets", "interactions"):
        print(f"{key:>13}: {counts[key]:,}")
    state = "seeded" if counts["seeded"] else "already present"
    print(f"Dataset {state}; {time.perf_counter() - started:.1f} s in all.")


if __name__ == "__main__":
    main()
