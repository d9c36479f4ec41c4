"""The analytics dashboard's figures, assembled from the rollups for one period and filter.

Each section (KPIs, Pareto and deciles, RFM grid, cohorts, LTV) is a function returning its
tables and chart data. A ``Table`` holds the raw figures once; the page shows them formatted
and the CSV download writes the same cells (``Table.csv_value``), so the two cannot differ.
``build_dashboard`` runs every section and records the time each took (the page sends them
as a Server-Timing header, the benchmark prints them).

Filters: the KPIs, Pareto, deciles, cohort retention and LTV follow all three (prefecture,
channel, segment); the RFM grid is the latest scoring run's, for all scored customers.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import partial

from django.db import connection
from django.utils import translation
from django.utils.translation import gettext as _

from analytics import definitions, rollup_state
from analytics.breakdown_tables import context_of
from analytics.breakdowns import DIMENSIONS, purchase_timing, revenue_by, top_customers
from analytics.cohorts import average_ltv, cohort_table, ltv_by_channel, ltv_by_cohort
from analytics.deciles import deciles_of, pareto_of
from analytics.definitions import COUNT, MONEY, NUMBER, RATE
from analytics.goals import goals_for_dashboard
from analytics.kpis import Filters, Period, customer_set, filter_primer, kpis_with_comparisons
from analytics.period_spend import spend_ranked
from analytics.rollups import month_of
from crm import number_formats
from crm.number_formats import money, rounded
from customers.models import SourceChannel
from segments import reports
from segments.models import ScoringRun

TEXT, MONTH, DELTA_POINTS, DELTA_PERCENT = "text", "month", "delta_points", "delta_percent"
# The cohort triangle shows at least a year of cohorts and at most two, ending with the
# period's last month: enough to compare a cohort with those of the same season before.
MIN_COHORTS, MAX_COHORTS = 12, 24


@dataclass(frozen=True)
class Column:
    header: str
    kind: str = TEXT


@dataclass
class Table:
    """One table of the page: its rows of raw figures, in the columns' order."""

    name: str
    title: str
    columns: list[Column]
    rows: list[list] = field(default_factory=list)
    heat: bool = False  # rate cells shaded by their value (the cohort triangle)
    # Per row, the kinds of its cells when they differ from the columns' (the KPI table).
    row_kinds: list[list[str]] | None = None

    def kinds(self, index: int) -> list[str]:
        if self.row_kinds is not None:
            return self.row_kinds[index]
        return [column.kind for column in self.columns]

    def html_rows(self) -> list[list[dict]]:
        return [
            [
                {
                    "text": display(value, kind),
                    "number": kind not in (TEXT, MONTH),
                    "heat": f"{value:.2f}"
                    if self.heat and kind == RATE and value is not None
                    else None,
                    "dark": self.heat and kind == RATE and value is not None and value >= 0.6,
                }
                for value, kind in zip(row, self.kinds(index), strict=True)
            ]
            for index, row in enumerate(self.rows)
        ]

    def csv_rows(self) -> list[list]:
        return [
            [
                self.csv_value(value, kind)
                for value, kind in zip(row, self.kinds(index), strict=True)
            ]
            for index, row in enumerate(self.rows)
        ]

    @staticmethod
    def csv_value(value, kind: str):
        """A cell of the CSV: the figure the page shows, as a spreadsheet reads it."""
        if value is None:
            return ""
        if kind == MONTH:
            return value.strftime("%Y-%m")
        if kind == RATE:
            return f"{rounded(value * 100, 1)}%"
        if kind == NUMBER:
            return rounded(value, 2)
        if kind in (DELTA_POINTS, DELTA_PERCENT):
            # A number, not "+1.2" text: a spreadsheet would read text with a sign as a
            # formula, and crm.exporting prefixes such text with an apostrophe.
            return rounded(value, 1)
        return value


def display(value, kind: str) -> str:
    """A figure as the page shows it, in the active language's number format."""
    if value is None or value == "":
        return "—"
    if kind == MONTH:
        return value.strftime("%Y-%m")
    if kind == COUNT:
        return number_formats.number(value, 0, force_grouping=True)
    if kind == MONEY:
        return money(value)
    if kind == RATE:
        return f"{number_formats.number(value * 100, 1)}%"
    if kind == NUMBER:
        return number_formats.number(value, 2, force_grouping=True)
    if kind in (DELTA_POINTS, DELTA_PERCENT):
        change = rounded(value, 1)
        text = ("+" if change > 0 else "") + number_formats.number(change, 1, force_grouping=True)
        if kind == DELTA_POINTS:
            return _("%(change)s pt") % {"change": text}
        return f"{text}%"
    return str(value)


def change(current, earlier, kind: str) -> float | None:
    """Percentage points for rates, per cent of the earlier value for the others."""
    if current is None or earlier is None:
        return None
    if kind == RATE:
        return (current - earlier) * 100
    if not earlier:
        return None
    return float((Decimal(str(current)) - Decimal(str(earlier))) / Decimal(str(earlier)) * 100)


def _delta_kind(kind: str) -> str:
    return DELTA_POINTS if kind == RATE else DELTA_PERCENT


# --- Sections ---------------------------------------------------------------------------------


def _average_ltv(period: Period, filters: Filters) -> Decimal | None:
    return average_ltv(
        start_month=month_of(period.start),
        end_month=month_of(period.end),
        customers=customer_set(filters),
    )["ltv"]


def kpi_section(period: Period, filters: Filters) -> dict:
    figures = kpis_with_comparisons(start=period.start, end=period.end, filters=filters)
    blocks = {
        "current": figures,
        "previous": figures["previous"],
        "last_year": figures["last_year"],
    }
    for name, block in blocks.items():
        block_period = Period(block["start"], block["end"])
        block["average_ltv"] = _average_ltv(block_period, filters)
        if name == "current":
            figures["average_ltv"] = block["average_ltv"]
    cards, rows = [], []
    for kpi in definitions.KPIS:
        value = figures[kpi.key]
        previous, last_year = figures["previous"][kpi.key], figures["last_year"][kpi.key]
        to_previous = change(value, previous, kpi.kind)
        to_last_year = change(value, last_year, kpi.kind)
        delta = _delta_kind(kpi.kind)
        cards.append(
            {
                "key": kpi.key,
                "label": kpi.label,
                "definition": kpi.definition,
                "value": display(value, kpi.kind),
                "previous": display(previous, kpi.kind),
                "last_year": display(last_year, kpi.kind),
                "to_previous": display(to_previous, delta),
                "to_last_year": display(to_last_year, delta),
                "to_previous_sign": _sign(to_previous),
                "to_last_year_sign": _sign(to_last_year),
            }
        )
        rows.append([str(kpi.label), value, previous, to_previous, last_year, to_last_year])
    table = Table(
        "kpis",
        _("KPIs"),
        [
            Column(_("KPI")),
            Column(_("This period")),
            Column(_("Previous period")),
            Column(_("Change")),
            Column(_("Same period last year")),
            Column(_("Change")),
        ],
    )
    table.rows = rows
    table.row_kinds = [
        [TEXT, kpi.kind, kpi.kind, _delta_kind(kpi.kind), kpi.kind, _delta_kind(kpi.kind)]
        for kpi in definitions.KPIS
    ]
    data = {
        kpi.key: {
            "value": figures[kpi.key],
            "previous": figures["previous"][kpi.key],
            "last_year": figures["last_year"][kpi.key],
        }
        for kpi in definitions.KPIS
    }
    return {
        "cards": cards,
        "tables": [table],
        "data": data,
        "previous_period": (figures["previous"]["start"], figures["previous"]["end"]),
        "last_year_period": (figures["last_year"]["start"], figures["last_year"]["end"]),
    }


def _sign(value: float | None) -> str:
    if value is None or abs(value) < 0.05:
        return "flat"
    return "up" if value > 0 else "down"


def ranking_section(period: Period, filters: Filters) -> dict:
    """Pareto curve and classes, and deciles: one pass over the period's per-customer revenue."""
    spend = spend_ranked(period=period, filters=filters or None)
    pareto, deciles = pareto_of(spend), deciles_of(spend)
    curve = Table(
        "pareto",
        _("Pareto curve"),
        [
            Column(_("Share of customers"), RATE),
            Column(_("Customers"), COUNT),
            Column(_("Cumulative share of revenue"), RATE),
        ],
        [[p["customer_share"], p["customers"], p["revenue_share"]] for p in pareto["curve"]],
    )
    classes = Table(
        "pareto_classes",
        _("Pareto classes"),
        [
            Column(_("Class")),
            Column(_("Customers"), COUNT),
            Column(_("Share of customers"), RATE),
            Column(_("Revenue"), MONEY),
            Column(_("Share of revenue"), RATE),
        ],
        [
            [
                c["pareto_class"],
                c["customers"],
                c["customer_share"],
                c["revenue"],
                c["revenue_share"],
            ]
            for c in pareto["classes"]
        ],
    )
    decile_table = Table(
        "deciles",
        _("Deciles"),
        [
            Column(_("Decile")),
            Column(_("Customers"), COUNT),
            Column(_("Revenue"), MONEY),
            Column(_("Share of revenue"), RATE),
            Column(_("Cumulative share"), RATE),
            Column(_("Lowest spend"), MONEY),
            Column(_("Highest spend"), MONEY),
            Column(_("Average spend"), MONEY),
        ],
        [
            [
                str(d["decile"]),
                d["customers"],
                d["revenue"],
                d["revenue_share"],
                d["cumulative_revenue_share"],
                d["min_spend"],
                d["max_spend"],
                d["average_spend"],
            ]
            for d in deciles
        ],
    )
    top_share = pareto["top_20_revenue_share"]
    return {
        "tables": [curve, classes, decile_table],
        "customers": pareto["customers"],
        "top_20_customers": pareto["top_20_customers"],
        "top_20_share": display(top_share, RATE),
        "chart": {
            "pareto": {
                "x": [0.0] + [p["customer_share"] for p in pareto["curve"]],
                "y": [0.0] + [p["revenue_share"] or 0.0 for p in pareto["curve"]],
                "top20": [0.2, top_share or 0.0],
            },
            "deciles": {
                "labels": [str(d["decile"]) for d in deciles],
                "revenue": [float(d["revenue"]) for d in deciles],
                "share": [d["revenue_share"] or 0.0 for d in deciles],
            },
        },
        "data": {"pareto": pareto, "deciles": deciles},
    }


def rfm_section(period: Period, filters: Filters) -> dict:
    """The latest scoring run's R×F grid (cached per run by segments.reports)."""
    run = ScoringRun.objects.latest_succeeded()
    if run is None:
        return {"run": None, "tables": [], "chart": {}}
    grid = reports.cached(reports.rf_grid, run=run)
    table = Table(
        "rfm",
        _("Recency × frequency"),
        [Column(_("R \\ F"))] + [Column(f"F {f}", COUNT) for f in reports.SCORES],
        [[f"R {row['r']}"] + [c["customers"] for c in row["cells"]] for row in grid["rows"]],
    )
    largest = grid["max_customers"] or 1
    points = [
        {
            "x": cell["f"],
            "y": row["r"],
            "r": 3 + 22 * (cell["customers"] / largest) ** 0.5,
            "customers": cell["customers"],
            "average": float(cell["average_monetary"] or 0),
        }
        for row in grid["rows"]
        for cell in row["cells"]
        if cell["customers"]
    ]
    return {
        "run": run,
        "tables": [table],
        "chart": {"rfm": points},
        "data": {"rfm": grid},
    }


def cohort_months(period: Period) -> tuple[date, date]:
    """The cohorts of the triangle: MIN_COHORTS to MAX_COHORTS months ending with the period's."""
    last = month_of(period.end)
    earliest = _months_before(last, MAX_COHORTS - 1)
    latest_start = _months_before(last, MIN_COHORTS - 1)
    return max(earliest, min(month_of(period.start), latest_start)), last


def _months_before(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)


def cohort_section(period: Period, filters: Filters) -> dict:
    first, last = cohort_months(period)
    rows = cohort_table(
        start_month=first, end_month=last, filters=filters or None, through_month=last
    )
    width = max((len(r["retention"]) for r in rows), default=0)
    table = Table(
        "cohorts",
        _("Cohort retention"),
        [Column(_("Cohort"), MONTH), Column(_("Customers"), COUNT)]
        + [Column(_("Month %(k)s") % {"k": k}, RATE) for k in range(width)],
        [
            [r["cohort"], r["size"]] + r["retention"] + [None] * (width - len(r["retention"]))
            for r in rows
        ],
        heat=True,
    )
    return {
        "tables": [table],
        "chart": {
            "cohorts": {
                "labels": [str(k) for k in range(width)],
                "series": [
                    {"label": r["cohort"].strftime("%Y-%m"), "data": r["retention"]} for r in rows
                ],
            }
        },
        "data": {"cohorts": rows},
    }


def channel_label(channel: str) -> str:
    return (
        str(SourceChannel(channel).label)
        if channel in SourceChannel.values
        else (channel or _("None recorded"))
    )


def ltv_section(period: Period, filters: Filters) -> dict:
    first, last = cohort_months(period)
    customers = customer_set(filters)
    # The cumulative values are the API's: the page shows each cohort's LTV so far.
    by_cohort = ltv_by_cohort(
        start_month=first, end_month=last, customers=customers, cumulative=False
    )
    by_channel = ltv_by_channel(start_month=first, end_month=last, customers=customers)
    cohort_rows = Table(
        "ltv_cohorts",
        _("LTV by acquisition cohort"),
        [
            Column(_("Cohort"), MONTH),
            Column(_("Customers"), COUNT),
            Column(_("Revenue so far"), MONEY),
            Column(_("LTV"), MONEY),
        ],
        [[r["cohort"], r["customers"], r["revenue"], r["ltv"]] for r in by_cohort],
    )
    channel_rows = Table(
        "ltv_channels",
        _("LTV by source channel"),
        [
            Column(_("Source channel")),
            Column(_("Customers"), COUNT),
            Column(_("Revenue so far"), MONEY),
            Column(_("LTV"), MONEY),
        ],
        [[channel_label(r["channel"]), r["customers"], r["revenue"], r["ltv"]] for r in by_channel],
    )
    return {
        "tables": [cohort_rows, channel_rows],
        "first_cohort": first,
        "last_cohort": last,
        "chart": {
            "ltv_cohorts": {
                "labels": [r["cohort"].strftime("%Y-%m") for r in by_cohort],
                "ltv": [float(r["ltv"] or 0) for r in by_cohort],
            },
            "ltv_channels": {
                "labels": [channel_label(r["channel"]) for r in by_channel],
                "ltv": [float(r["ltv"] or 0) for r in by_channel],
            },
        },
        "data": {"ltv_cohorts": by_cohort, "ltv_channels": by_channel},
    }


SECTIONS: dict[str, Callable[[Period, Filters], dict]] = {
    "kpis": kpi_section,
    "ranking": ranking_section,
    "rfm": rfm_section,
    "cohorts": cohort_section,
    "ltv": ltv_section,
}
# Which section holds each downloadable table.
TABLE_SECTIONS = {
    "kpis": "kpis",
    "pareto": "ranking",
    "pareto_classes": "ranking",
    "deciles": "ranking",
    "rfm": "rfm",
    "cohorts": "cohorts",
    "ltv_cohorts": "ltv",
    "ltv_channels": "ltv",
}


def _breakdown(compute: Callable) -> Callable[[Period, Filters], object]:
    def part(period: Period, filters: Filters):
        return compute(start=period.start, end=period.end, filters=filters or None)

    return part


# The breakdowns (purchase timing, revenue by prefecture / channel / category, top
# customers; analytics.breakdown_tables, shown by its own template part) computed apart, each
# reading its own cells, then assembled into "breakdowns".
BREAKDOWN_PARTS = {
    "timing": _breakdown(purchase_timing),
    **{
        f"revenue_{dimension}": _breakdown(partial(revenue_by, dimension))
        for dimension in DIMENSIONS
    },
    "top": _breakdown(top_customers),
}
# Every part of the page, timed; the breakdowns keep their own tables and CSV view.
# The slowest first (the RFM grid aggregates a whole scoring run when it is not cached; with
# a filter, the timing and the categories read the most cells), so that the last to start
# are short; the top customers before the KPIs and the ranking, which then wait for the
# period figures it reads instead of reading them again.
ORDER = (
    "rfm",
    "timing",
    "revenue_category",
    "top",
    "kpis",
    "revenue_prefecture",
    "revenue_channel",
    "ranking",
    "cohorts",
    "ltv",
)
_FUNCTIONS = {"rfm": rfm_section, **BREAKDOWN_PARTS, **SECTIONS}
PARTS = {name: _FUNCTIONS[name] for name in ORDER}
# Parts run in parallel threads when the page runs outside a transaction: each waits partly
# on the database (another process, another core) or in numpy, both without the GIL. Three
# on two cores: measured 30-70 ms faster per page than four (less contention for the cores
# and the GIL), and no slower than two, whatever the period and filter.
WORKERS = 3


def _timed(name: str, period: Period, filters: Filters, language: str | None):
    began = time.perf_counter()
    with translation.override(language):
        return PARTS[name](period, filters), (time.perf_counter() - began) * 1000


def _in_threads(names: list[str], run: Callable[[str], object]) -> dict[str, object]:
    """``run(name)`` for every name, in WORKERS threads taking the names in order. Each
    thread keeps its database connection for all the parts it runs and closes it when none
    are left (a connection per part cost a few milliseconds each, on both sides)."""
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for name in names:
        pending.put(name)
    outcomes: dict[str, tuple[bool, object]] = {}

    def work() -> None:
        try:
            while True:
                try:
                    name = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    outcomes[name] = (True, run(name))
                except Exception as error:  # raised again in the calling thread
                    outcomes[name] = (False, error)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=work) for _ in range(min(WORKERS, len(names)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in names:
        succeeded, value = outcomes[name]
        if not succeeded:
            raise value
    return {name: outcomes[name][1] for name in names}


def build_dashboard(*, start: date, end: date, filters: Filters, user=None) -> dict:
    """Every part's figures for start..end, and ``timings`` (ms per part); with ``user``,
    also ``goals``: the goals panel's rows for them (goals_for_dashboard), computed with the
    rest rather than while the page renders."""
    period = Period(start, end)
    result: dict = {"timings": {}}
    # The filter's customers and their counts (from the customer snapshot, cached) are the
    # first job: the parts all need them, and read the rollups meanwhile (their readers wait
    # for this prime rather than compute the same).
    compared = (period, period.previous(), period.last_year())
    # Read once: every part's threads answer their dozens of cache keys from it.
    state = rollup_state.current()
    with rollup_state.pinned(state):
        prime = filter_primer(filters=filters, ends=[p.end for p in compared])
    language = translation.get_language()

    def run(name: str):
        with rollup_state.pinned(state):
            return compute(name)

    def compute(name: str):
        if name == "customers":
            began = time.perf_counter()
            prime()
            return None, (time.perf_counter() - began) * 1000
        if name == "goals":
            began = time.perf_counter()
            with translation.override(language):
                rows = goals_for_dashboard(user=user)
            return rows, (time.perf_counter() - began) * 1000
        return _timed(name, period, filters, language)

    names = ["customers", *PARTS] + (["goals"] if user is not None else [])
    # Threads have their own database connections, which cannot see the writes of a
    # transaction still open here (tests): then the parts run one after the other.
    if connection.in_atomic_block:
        done = {name: run(name) for name in names}
    else:
        done = _in_threads(names, run)
    for name, (figures, ms) in done.items():
        if name != "customers":
            result[name] = figures
        result["timings"][name] = ms
    result["breakdowns"] = context_of(
        timing=result.pop("timing"),
        revenue={d: result.pop(f"revenue_{d}") for d in DIMENSIONS},
        top=result.pop("top"),
    )
    return result


def table_for(name: str, *, start: date, end: date, filters: Filters) -> Table | None:
    """The table ``name`` alone (for its CSV download); None if there is no such table."""
    section = TABLE_SECTIONS.get(name)
    if section is None:
        return None
    figures = SECTIONS[section](Period(start, end), filters)
    return next((t for t in figures["tables"] if t.name == name), None)


def chart_data(dashboard: dict) -> dict:
    """What the page's charts draw, with their axis labels in the active language."""
    charts: dict = {}
    for name in ("ranking", "rfm", "cohorts", "ltv"):
        charts.update(dashboard[name].get("chart", {}))
    charts["text"] = {
        "revenue": _("Revenue"),
        "decile": _("Decile"),
        "customers": _("Share of customers"),
        "cumulative": _("Cumulative share of revenue"),
        "equality": _("Equal shares"),
        "top20": _("Top 20%"),
        "recency": _("R score"),
        "frequency": _("F score"),
        "count": _("Customers"),
        "average": _("Average spend"),
        "month": _("Months since the first purchase"),
        "retention": _("Retention"),
        "ltv": _("LTV"),
    }
    return charts


def figures_data(dashboard: dict, *, start: date, end: date) -> dict:
    """The exact figures behind the page (money as strings, rates as fractions), embedded for
    scripts and checks that should not parse formatted text."""
    data: dict = {"start": start, "end": end, "kpis": dashboard["kpis"]["data"]}
    for name in ("ranking", "rfm", "cohorts", "ltv"):
        data.update(dashboard[name].get("data", {}))
    return data
