"""The RFM page's figures, checked against the same figures counted in Python from the rows
the test wrote."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from segments import reports
from segments.models import RfmLabel, RunStatus
from tests.customers.factories import CustomerFactory
from tests.segments.score_rows import (
    LABELS,
    Row,
    make_run,
    random_rows,
    scored_run,
    write_scores,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_and_rows():
    return scored_run(137, seed=7)


def test_rf_grid_counts_and_average_spend_per_cell(run_and_rows):
    run, rows = run_and_rows
    counts = Counter((row.r, row.f) for row in rows)
    spend = defaultdict(Decimal)
    for row in rows:
        spend[row.r, row.f] += row.monetary

    grid = reports.rf_grid(run=run)

    assert grid["total"] == len(rows)
    assert grid["max_customers"] == max(counts.values())
    assert [row["r"] for row in grid["rows"]] == [5, 4, 3, 2, 1]
    for grid_row in grid["rows"]:
        assert [cell["f"] for cell in grid_row["cells"]] == [1, 2, 3, 4, 5]
        for cell in grid_row["cells"]:
            key = (cell["r"], cell["f"])
            assert cell["customers"] == counts[key]
            assert cell["share"] == pytest.approx(counts[key] / len(rows))
            if counts[key]:
                expected = (spend[key] / counts[key]).quantize(Decimal("0.01"))
                assert cell["average_monetary"] == expected
            else:
                assert cell["average_monetary"] is None


def test_label_distribution_in_label_order_with_zero_rows(run_and_rows):
    run, rows = run_and_rows
    # One label nobody has: it is still listed.
    rows_left = [row for row in rows if row.label != RfmLabel.NEW]
    run = make_run(minutes_ago=10)
    write_scores(run, rows_left)
    total_revenue = sum(row.monetary for row in rows_left)

    distribution = reports.label_distribution(run=run)

    assert [item["label"] for item in distribution] == LABELS
    by_label = {item["label"]: item for item in distribution}
    assert by_label[RfmLabel.NEW]["customers"] == 0
    assert by_label[RfmLabel.NEW]["revenue"] == 0
    for label in LABELS:
        mine = [row for row in rows_left if row.label == label]
        revenue = sum((row.monetary for row in mine), Decimal(0))
        assert by_label[label]["customers"] == len(mine)
        assert by_label[label]["share"] == pytest.approx(len(mine) / len(rows_left))
        assert by_label[label]["revenue"] == revenue
        assert by_label[label]["revenue_share"] == pytest.approx(
            float(revenue) / float(total_revenue)
        )
        assert by_label[label]["definition"]
    assert sum(item["share"] for item in distribution) == pytest.approx(1)


def test_decile_table(run_and_rows):
    run, rows = run_and_rows
    ordered = sorted(rows, key=lambda row: (-row.monetary, row.customer_id))
    total = sum(row.monetary for row in rows)
    n = len(ordered)

    table = reports.decile_table(run=run)

    assert [row["decile"] for row in table] == list(range(1, 11))
    cumulative = Decimal(0)
    for entry in table:
        members = [r for i, r in enumerate(ordered) if (10 * i) // n + 1 == entry["decile"]]
        revenue = sum((r.monetary for r in members), Decimal(0))
        cumulative += revenue
        assert entry["customers"] == len(members)
        assert entry["revenue"] == revenue
        assert entry["share"] == pytest.approx(float(revenue / total))
        assert entry["cumulative_share"] == pytest.approx(float(cumulative / total))
    assert table[-1]["cumulative_share"] == pytest.approx(1)
    assert sum(entry["customers"] for entry in table) == n


def test_pareto_curve_downsampled_with_top20_and_classes(run_and_rows):
    run, rows = run_and_rows
    ordered = sorted(rows, key=lambda row: (-row.monetary, row.customer_id))
    total = sum(row.monetary for row in rows)
    n = len(ordered)

    curve = reports.pareto_curve(run=run, points=20)

    points = curve["points"]
    assert points[0] == {"customer_share": 0.0, "revenue_share": 0.0}
    # Fewer points than customers: about one per 5% of revenue, per decile and per class.
    assert 10 < len(points) <= 1 + 21 + 10 + 3
    assert points[-1]["customer_share"] == pytest.approx(1)
    assert points[-1]["revenue_share"] == pytest.approx(1)
    for point in points[1:]:
        # The point at customer share k/n is the cumulative revenue of the first k customers.
        k = round(point["customer_share"] * n)
        expected = sum(row.monetary for row in ordered[:k]) / total
        assert point["revenue_share"] == pytest.approx(float(expected))
    xs = [p["customer_share"] for p in points]
    assert xs == sorted(set(xs))
    # Every decile boundary is on the curve, so its tail is drawn even where it is flat.
    for decile in range(1, 11):
        end = max(i + 1 for i in range(n) if (10 * i) // n + 1 == decile)
        assert pytest.approx(end / n) in xs

    top = math.ceil(0.2 * n)
    assert curve["top20_customers"] == top
    assert curve["top20_customer_share"] == pytest.approx(top / n)
    top_revenue = sum(row.monetary for row in ordered[:top]) / total
    assert curve["top20_revenue_share"] == pytest.approx(float(top_revenue))

    classes = {item["pareto_class"]: item for item in curve["classes"]}
    expected_classes: Counter = Counter()
    running = Decimal(0)
    for row in ordered:
        share_before = running / total
        expected_classes["A" if share_before < 0.8 else "B" if share_before < 0.95 else "C"] += 1
        running += row.monetary
    assert {key: item["customers"] for key, item in classes.items()} == {
        key: expected_classes[key] for key in "ABC"
    }
    assert sum(item["revenue_share"] for item in classes.values()) == pytest.approx(1)


def test_pareto_curve_of_few_customers_has_every_point():
    customers = CustomerFactory.create_batch(3)
    run = make_run()
    write_scores(
        run,
        [
            Row(customers[0].pk, Decimal(600), 5, 5, 5, RfmLabel.CHAMPIONS),
            Row(customers[1].pk, Decimal(300), 4, 4, 4, RfmLabel.LOYAL),
            Row(customers[2].pk, Decimal(100), 1, 1, 1, RfmLabel.LOST),
        ],
    )
    curve = reports.pareto_curve(run=run)
    assert [(p["customer_share"], p["revenue_share"]) for p in curve["points"]] == [
        pytest.approx((0, 0)),
        pytest.approx((1 / 3, 0.6)),
        pytest.approx((2 / 3, 0.9)),
        pytest.approx((1, 1)),
    ]
    assert curve["top20_customers"] == 1
    assert curve["top20_revenue_share"] == pytest.approx(0.6)


def test_reports_of_a_run_without_scores_are_empty_not_errors():
    run = make_run(status=RunStatus.SUCCEEDED)
    grid = reports.rf_grid(run=run)
    assert grid["total"] == 0 and grid["max_customers"] == 0
    assert all(cell["customers"] == 0 for row in grid["rows"] for cell in row["cells"])
    assert all(item["share"] == 0 for item in reports.label_distribution(run=run))
    assert all(entry["cumulative_share"] == 0 for entry in reports.decile_table(run=run))
    curve = reports.pareto_curve(run=run)
    assert curve["points"] == [{"customer_share": 0.0, "revenue_share": 0.0}]
    assert curve["top20_revenue_share"] == 0


def test_zero_revenue_gives_zero_shares():
    customers = CustomerFactory.create_batch(4)
    run = make_run()
    write_scores(run, [Row(c.pk, Decimal(0), 3, 1, 1, RfmLabel.ABOUT_TO_SLEEP) for c in customers])
    assert all(entry["share"] == 0 for entry in reports.decile_table(run=run))
    assert reports.pareto_curve(run=run)["points"][-1] == {
        "customer_share": 1.0,
        "revenue_share": 0.0,
    }


def test_migration_matrix_counts_moves_and_customers_scored_in_one_run_only():
    customers = CustomerFactory.create_batch(60)
    ids = [c.pk for c in customers]
    before = make_run(minutes_ago=60)
    write_scores(before, random_rows(ids[:45], seed=3))
    after = make_run(minutes_ago=5)
    # 15 customers scored only before, 15 only after, 30 in both.
    write_scores(after, random_rows(ids[15:], seed=4))
    old = {row.customer_id: row.label for row in random_rows(ids[:45], seed=3)}
    new = {row.customer_id: row.label for row in random_rows(ids[15:], seed=4)}
    expected = Counter(
        (old.get(pk, reports.NOT_SCORED), new.get(pk, reports.NOT_SCORED)) for pk in ids
    )

    matrix = reports.migration_matrix(before=before, after=after)

    keys = [item["label"] for item in matrix["labels"]]
    assert keys == [*LABELS, reports.NOT_SCORED]
    for i, row_key in enumerate(keys):
        for j, column_key in enumerate(keys):
            cell = matrix["rows"][i]["counts"][j]
            assert cell == expected[row_key, column_key], (row_key, column_key)
    assert matrix["total"] == 60
    assert [row["label"] for row in matrix["rows"]] == keys
    assert matrix["rows"][-1]["total"] == 15  # new in the later run
    assert matrix["column_totals"][-1] == 15  # no longer scored
    assert matrix["rows"][-1]["counts"][-1] == 0
    assert matrix["unchanged"] == sum(
        1 for pk in ids if pk in old and pk in new and old[pk] == new[pk]
    )


def test_previous_run_is_the_run_with_scores_before():
    customers = CustomerFactory.create_batch(2)
    ids = [c.pk for c in customers]

    def run_with_scores(minutes_ago: int):
        run = make_run(minutes_ago=minutes_ago)
        write_scores(run, random_rows(ids, seed=minutes_ago))
        return run

    oldest = run_with_scores(400)
    make_run(minutes_ago=300)  # succeeded, but its scores were pruned
    failed = make_run(status=RunStatus.FAILED, minutes_ago=200)
    write_scores(failed, random_rows(ids, seed=1))
    middle = run_with_scores(100)
    latest = run_with_scores(10)
    assert reports.previous_run(run=latest) == middle
    assert reports.previous_run(run=middle) == oldest
    assert reports.previous_run(run=oldest) is None


def test_cached_reports_are_computed_once_per_run(run_and_rows, django_assert_num_queries):
    run, rows = run_and_rows
    first = reports.cached(reports.rf_grid, run=run)
    with django_assert_num_queries(0):
        assert reports.cached(reports.rf_grid, run=run) == first
    other, _other_rows = scored_run(3, seed=99, minutes_ago=5)
    assert reports.cached(reports.rf_grid, run=other)["total"] == 3
    matrix = reports.cached(reports.migration_matrix, before=run, after=other)
    assert matrix["total"] == len(rows) + 3
    assert reports.cached(reports.migration_matrix, before=other, after=run) != matrix


def test_warming_a_new_run_caches_every_report_of_its_page(django_assert_num_queries):
    earlier, _rows = scored_run(20, seed=3, minutes_ago=60)
    run, _rows = scored_run(25, seed=4, minutes_ago=5)

    reports.warm_cache(run=run)

    with django_assert_num_queries(0):
        reports.cached(reports.rf_grid, run=run)
        reports.cached(reports.label_distribution, run=run)
        reports.cached(reports.decile_table, run=run)
        reports.cached(reports.pareto_curve, run=run)
        reports.cached(reports.migration_matrix, before=earlier, after=run)


def test_figure_reports_are_stored_with_the_run_and_read_back_unchanged(
    run_and_rows, django_assert_num_queries
):
    from django.core.cache import cache

    from segments.models import RunReport

    run, _rows = run_and_rows
    grid = reports.cached(reports.rf_grid, run=run)
    deciles = reports.cached(reports.decile_table, run=run)
    reports.cached(reports.label_distribution, run=run)  # carries translated labels
    assert set(RunReport.objects.filter(run=run).values_list("key", flat=True)) == {
        f"rf_grid:run={run.pk}",
        f"decile_table:run={run.pk}",
    }

    cache.clear()  # a cold cache: one query each, no grouping of the scores
    with django_assert_num_queries(2):
        assert reports.cached(reports.rf_grid, run=run) == grid
        assert reports.cached(reports.decile_table, run=run) == deciles
    stored = reports.cached(reports.rf_grid, run=run)
    average = next(
        c["average_monetary"] for row in stored["rows"] for c in row["cells"] if c["customers"]
    )
    assert isinstance(average, Decimal)
    assert stored == reports.rf_grid(run=run)


def test_reports_of_an_unfinished_run_are_not_stored(run_and_rows):
    from segments.models import RunReport

    run, _rows = run_and_rows
    run.status = RunStatus.RUNNING
    run.save(update_fields=["status"])
    reports.cached(reports.rf_grid, run=run)
    assert not RunReport.objects.filter(run=run).exists()
