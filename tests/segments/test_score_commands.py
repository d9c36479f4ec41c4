"""``score_customers`` and ``export_scores`` on a hand-built shop, every exported row checked
against an independent computation written here in plain Python (exact fractions, not
segments.scoring)."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from customers.models import PurchaseStatus
from segments.models import RunStatus, RunTrigger, ScoringRun
from segments.runs import request_scoring_run
from tests.conftest import wait_for
from tests.customers.factories import CustomerFactory, PurchaseFactory

pytestmark = pytest.mark.django_db
TOKYO = ZoneInfo("Asia/Tokyo")
PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
COLUMNS = [
    "customer_external_id",
    "recency_days",
    "frequency",
    "monetary",
    "r",
    "f",
    "m",
    "rfm_code",
    "rfm_label",
    "decile",
    "cumulative_share",
    "pareto_class",
]
GRID = {
    5: ["new", "potential_loyalist", "potential_loyalist", "champions", "champions"],
    4: ["promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"],
    3: ["about_to_sleep", "about_to_sleep", "needs_attention", "loyal", "loyal"],
    2: ["hibernating", "hibernating", "at_risk", "at_risk", "cannot_lose"],
    1: ["lost", "hibernating", "at_risk", "at_risk", "cannot_lose"],
}

# (customer, purchased_at, total, status). Times around midnight in Tokyo, some given in
# other zones: what counts is the calendar date in Tokyo.
SHOP = [
    ("A", datetime(2026, 3, 1, 0, 30, tzinfo=TOKYO), "1200", "completed"),
    ("A", datetime(2026, 9, 30, 23, 59, tzinfo=TOKYO), "800.50", "completed"),
    ("A", datetime(2026, 10, 20, 12, 0, tzinfo=TOKYO), "5000", "cancelled"),
    # 16:30 on 30 Sep in Paris (CEST) is 23:30 in Tokyo: 30 Sep.
    ("B", datetime(2026, 9, 30, 16, 30, tzinfo=PARIS), "300", "completed"),
    # 11:15 on 30 Sep in New York (EDT) is 00:15 on 1 Oct in Tokyo.
    ("B", datetime(2026, 9, 30, 11, 15, tzinfo=NEW_YORK), "300", "completed"),
    ("B", datetime(2026, 6, 1, 9, 0, tzinfo=TOKYO), "0", "completed"),
    ("C", datetime(2026, 10, 31, 15, 1, tzinfo=UTC), "99999", "completed"),  # 1 Nov 00:01 JST
    ("C", datetime(2026, 2, 2, 2, 2, tzinfo=TOKYO), "1", "completed"),
    ("D", datetime(2026, 10, 31, 23, 59, tzinfo=TOKYO), "4500", "refunded"),
    ("D", datetime(2025, 12, 31, 23, 59, tzinfo=TOKYO), "4500", "completed"),
    ("E", datetime(2026, 7, 7, 7, 7, tzinfo=TOKYO), "700", "completed"),
    ("E", datetime(2026, 7, 8, 7, 7, tzinfo=TOKYO), "700", "completed"),
    ("E", datetime(2026, 7, 9, 7, 7, tzinfo=TOKYO), "700", "completed"),
    ("F", datetime(2026, 10, 1, 0, 0, tzinfo=TOKYO), "2100", "completed"),
    ("G", datetime(2026, 8, 15, 18, 0, tzinfo=TOKYO), "2100", "completed"),
    ("H", datetime(2026, 10, 10, 10, 0, tzinfo=TOKYO), "250.25", "completed"),
    ("H", datetime(2026, 10, 11, 10, 0, tzinfo=TOKYO), "250.25", "completed"),
    ("H", datetime(2026, 10, 12, 10, 0, tzinfo=TOKYO), "250.25", "completed"),
    ("H", datetime(2026, 10, 13, 10, 0, tzinfo=TOKYO), "250.25", "completed"),
    ("I", datetime(2026, 5, 5, 5, 5, tzinfo=TOKYO), "15000", "cancelled"),
    ("J", datetime(2026, 1, 10, 12, 0, tzinfo=TOKYO), "60", "completed"),
    ("K", datetime(2026, 10, 25, 21, 0, tzinfo=TOKYO), "3333.33", "completed"),
    ("K", datetime(2026, 4, 25, 21, 0, tzinfo=TOKYO), "3333.33", "completed"),
]


@pytest.fixture
def shop():
    customers = {name: CustomerFactory(external_id=f"ext-{name}") for name in "ABCDEFGHIJK"}
    for name, at, total, status in SHOP:
        PurchaseFactory(
            customer=customers[name],
            purchased_at=at,
            total=Decimal(total),
            status=PurchaseStatus(status),
        )
    return customers


def quantile(values: list, p: Fraction) -> Fraction:
    """Linear interpolation between the order statistics at position (n - 1) * p."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * p
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def expected_rows(customers, *, as_of: date | None, window_days: int | None) -> list[dict]:
    completed = [
        (customers[name].pk, f"ext-{name}", at.astimezone(TOKYO).date(), Fraction(Decimal(t)))
        for name, at, t, status in SHOP
        if status == "completed"
    ]
    if as_of is None:
        as_of = max(day for _, _, day, _ in completed) + timedelta(days=1)
    first_day = as_of - timedelta(days=window_days) if window_days else date.min
    per_customer: dict = {}
    for pk, ext, day, total in completed:
        if first_day <= day < as_of:
            per_customer.setdefault((pk, ext), []).append((day, total))
    people = []
    for (pk, ext), purchases in per_customer.items():
        people.append(
            {
                "pk": pk,
                "customer_external_id": ext,
                "recency_days": (as_of - max(d for d, _ in purchases)).days,
                "frequency": len(purchases),
                "monetary": sum((t for _, t in purchases), Fraction(0)),
            }
        )
    cuts = {
        key: [quantile([p[key] for p in people], Fraction(k, 5)) for k in (1, 2, 3, 4)]
        for key in ("recency_days", "frequency", "monetary")
    }
    people.sort(key=lambda p: (-p["monetary"], p["pk"]))
    total = sum(p["monetary"] for p in people)
    running = Fraction(0)
    for i, p in enumerate(people, start=1):
        p["r"] = 1 + sum(1 for c in cuts["recency_days"] if c > p["recency_days"])
        p["f"] = 1 + sum(1 for c in cuts["frequency"] if c < p["frequency"])
        p["m"] = 1 + sum(1 for c in cuts["monetary"] if c < p["monetary"])
        p["rfm_code"] = f"{p['r']}{p['f']}{p['m']}"
        p["rfm_label"] = GRID[p["r"]][(p["f"] + p["m"]) // 2 - 1]
        p["decile"] = 10 * (i - 1) // len(people) + 1
        before = running / total if total else 0
        running += p["monetary"]
        p["cumulative_share"] = running / total if total else Fraction(0)
        p["pareto_class"] = (
            "A" if before < Fraction(8, 10) else "B" if before < Fraction(95, 100) else "C"
        )
    return people


def exported(tmp_path, *args) -> list[dict]:
    path = tmp_path / "scores.csv"
    call_command("export_scores", str(path), *args, stdout=io.StringIO())
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.DictReader(file)
        assert reader.fieldnames[: len(COLUMNS)] == COLUMNS
        return list(reader)


def check(rows: list[dict], expected: list[dict]) -> None:
    assert [row["customer_external_id"] for row in rows] == [
        p["customer_external_id"] for p in expected
    ]
    for row, p in zip(rows, expected, strict=True):
        for column in ("recency_days", "frequency", "r", "f", "m", "decile"):
            assert int(row[column]) == p[column], (row, column)
        for column in ("rfm_code", "rfm_label", "pareto_class"):
            assert row[column] == p[column], (row, column)
        assert Fraction(Decimal(row["monetary"])) == p["monetary"]
        # The stored float, every digit: the nearest double to the exact share.
        assert float(row["cumulative_share"]) == float(p["cumulative_share"])
        assert row["top20"] == ("1" if p["decile"] <= 2 else "0")


def test_score_then_export_matches_an_independent_computation(shop, tmp_path):
    out = io.StringIO()
    call_command("score_customers", stdout=out)
    run = ScoringRun.objects.get()
    summary = out.getvalue()
    assert f"#{run.pk}" in summary and "2026-11-02" in summary  # C's last purchase: 1 Nov JST
    assert run.trigger == RunTrigger.COMMAND and run.status == RunStatus.SUCCEEDED
    expected = expected_rows(shop, as_of=None, window_days=None)
    assert run.customers_scored == len(expected) == 10  # I only cancelled
    assert run.purchases_counted == sum(p["frequency"] for p in expected)
    assert "champions" in summary and str(run.customers_scored) in summary
    check(exported(tmp_path), expected)


def test_as_of_and_window(shop, tmp_path):
    call_command(
        "score_customers", "--as-of", "2026-10-01", "--window-days", "92", stdout=io.StringIO()
    )
    run = ScoringRun.objects.get()
    assert run.as_of == date(2026, 10, 1) and run.window_days == 92
    expected = expected_rows(shop, as_of=date(2026, 10, 1), window_days=92)
    # 1 July .. 30 September: A (30 Sep), B (30 Sep; 1 Oct is out), E, G.
    assert sorted(p["customer_external_id"] for p in expected) == [
        "ext-A",
        "ext-B",
        "ext-E",
        "ext-G",
    ]
    # A later run does not change what --run exports.
    call_command("score_customers", stdout=io.StringIO())
    check(exported(tmp_path, "--run", str(run.pk)), expected)


def test_export_to_stdout(shop):
    call_command("score_customers", stdout=io.StringIO())
    out = io.StringIO()
    call_command("export_scores", "-", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(",".join(COLUMNS))  # no BOM on a pipe
    assert len(lines) == 11


def test_refusals(shop, tmp_path):
    with pytest.raises(CommandError, match="No scoring run"):
        call_command("export_scores", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("score_customers", "--as-of", "1 October")
    with pytest.raises(CommandError, match="--window-days"):
        call_command("score_customers", "--window-days", "0")
    active = request_scoring_run(trigger=RunTrigger.MANUAL, enqueue=False)
    with pytest.raises(CommandError, match=f"#{active.pk}"):
        call_command("score_customers")
    with pytest.raises(CommandError, match=str(active.pk)):
        call_command("export_scores", str(tmp_path / "x.csv"), "--run", str(active.pk))


def test_async_runs_in_the_worker(shop, celery_worker, tmp_path):
    out = io.StringIO()
    call_command("score_customers", "--async", stdout=out)
    run = ScoringRun.objects.get()
    assert f"#{run.pk}" in out.getvalue()
    wait_for(lambda: ScoringRun.objects.filter(pk=run.pk, status=RunStatus.SUCCEEDED).exists(), 60)
    check(exported(tmp_path), expected_rows(shop, as_of=None, window_days=None))
