"""Benchmark of the data quality queries at scale (1M customers / 10M purchases).

    DATABASE_URL=postgres://... python -m tests.bench.bench_quality [--repeat 3]

Seeds the database DATABASE_URL points at with ``tests.bench.dataset.ensure_dataset()`` if it
does not hold the dataset yet (PostgreSQL only), then times, best and median of ``--repeat``
runs each: the fill-rate query (every profile field in one aggregate), the usable-share query
(customers with a completed purchase), duplicate detection per rule and in all, and the data
quality pages as a signed-in admin sees them (serving figures computed within the hour).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-" + "x" * 50)
os.environ["DEBUG"] = "false"  # DEBUG keeps every query in memory
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# The pages link static files by name; no collectstatic manifest is needed to time them.
os.environ.setdefault(
    "STATICFILES_BACKEND", "django.contrib.staticfiles.storage.StaticFilesStorage"
)


def timed(function: Callable, repeat: int) -> tuple[float, float, object]:
    """(best, median) seconds of ``repeat`` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return min(seconds), statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()

    from django.contrib.auth import get_user_model
    from django.test import Client

    from crm.roles import Role, assign_role
    from customers.models import Customer
    from customers.quality import (
        DUPLICATE_RULES,
        count_with_completed_purchase,
        duplicate_groups,
        profile_counts,
        rule_matches,
    )
    from tests.bench.dataset import ensure_dataset

    start = time.perf_counter()
    counts = ensure_dataset()
    print(f"dataset: {counts} (ready in {time.perf_counter() - start:.1f} s)")

    user, _created = get_user_model().objects.get_or_create(username="bench-quality")
    assign_role(user, Role.ADMIN)
    client = Client()
    client.force_login(user)

    def page(url: str) -> Callable[[], int]:
        def get() -> int:
            response = client.get(url)
            assert response.status_code == 200, response.status_code
            return len(response.content)

        return get

    def rule(duplicate_rule) -> Callable[[], int]:
        return lambda: len(rule_matches(duplicate_rule, Customer.objects.all()))

    measurements = [
        ("fill rates (1 aggregate query)", profile_counts),
        ("usable share: a completed purchase", count_with_completed_purchase),
        *((f"duplicates: {r.key}", rule(r)) for r in DUPLICATE_RULES),
        ("duplicate detection (all rules)", duplicate_groups),
        # The pages serve figures computed within the last hour: these are cache hits.
        ("page /data-quality/ (cached)", page("/data-quality/")),
        ("page /data-quality/duplicates/ (cached)", page("/data-quality/duplicates/")),
        ("page /data-quality/duplicates/?page=5", page("/data-quality/duplicates/?page=5")),
    ]
    print(f"{'measurement':<42} {'best s':>8} {'median s':>9}  result")
    for label, function in measurements:
        best, median, result = timed(function, args.repeat)
        shown = len(result) if isinstance(result, list | dict) else result
        print(f"{label:<42} {best:>8.2f} {median:>9.2f}  {shown}")
    groups = duplicate_groups()
    rules: dict[str, int] = {}
    for group in groups:
        for key in group.rules:
            rules[key] = rules.get(key, 0) + 1
    print(f"duplicate groups: {len(groups)} {rules}")


if __name__ == "__main__":
    main()
