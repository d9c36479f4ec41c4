"""The dashboard's breakdown sections as tables and chart data (analytics.breakdowns' figures):
the page shows each table under its chart, and the CSV download of a table writes the same
rows (``BreakdownTable.rows``), so the two cannot differ.

The dashboard page calls ``breakdowns_context`` and includes the template:

    {% include "analytics/_breakdowns.html" with breakdowns=breakdowns query=query %}

where ``breakdowns`` is ``breakdowns_context(start=..., end=..., filters=...)`` and ``query``
the page's query string (carried by the CSV links).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from django.utils import formats
from django.utils.translation import gettext as _

from analytics.breakdowns import (
    DIMENSION_TITLES,
    DIMENSIONS,
    HOURS,
    WEEKDAY_NAMES,
    purchase_timing,
    revenue_by,
    top_customers,
)
from analytics.kpis import Filters
from crm import number_formats
from crm.number_formats import money

TEXT, COUNT, MONEY, RATE, MOMENT = "text", "count", "money", "rate", "moment"
TIMING_TABLES = ("timing_purchases", "timing_revenue")
TABLES = (*TIMING_TABLES, *(f"revenue_{d}" for d in DIMENSIONS), "top_customers")


def show(value, kind: str) -> str:
    """A cell as the page shows it, in the active language's formats."""
    if value is None:
        return "—"
    if kind == COUNT:
        return number_formats.number(value, 0, force_grouping=True)
    if kind == MONEY:
        return money(value)
    if kind == RATE:
        return f"{number_formats.number(value * 100, 1)}%"
    if kind == MOMENT:
        return formats.date_format(value, "SHORT_DATETIME_FORMAT")
    return str(value)


@dataclass
class BreakdownTable:
    name: str
    title: str
    headers: list[str]
    kinds: list[str]
    rows: list[list] = field(default_factory=list)
    links: list[str | None] = field(default_factory=list)  # per row, for the first cell
    heat: list[list[float | None]] | None = None  # per cell 0..1 (the timing heatmaps)

    def html_headers(self) -> list[dict]:
        return [
            {"text": header, "number": kind != TEXT}
            for header, kind in zip(self.headers, self.kinds, strict=True)
        ]

    def html_rows(self) -> list[dict]:
        return [
            {
                "link": self.links[index] if self.links else None,
                "cells": [
                    {
                        "text": show(value, kind),
                        "number": kind != TEXT,
                        "heat": None
                        if self.heat is None or self.heat[index][column] is None
                        else f"{self.heat[index][column]:.2f}",
                        # White text on the darkest cells.
                        "dark": self.heat is not None and (self.heat[index][column] or 0) >= 0.6,
                    }
                    for column, (value, kind) in enumerate(zip(row, self.kinds, strict=True))
                ],
            }
            for index, row in enumerate(self.rows)
        ]


def _timing_tables(cells: list[dict]) -> list[BreakdownTable]:
    tables = []
    for name, title, figure, kind in (
        ("timing_purchases", _("Purchases by weekday and hour"), "purchases", COUNT),
        ("timing_revenue", _("Revenue by weekday and hour"), "revenue", MONEY),
    ):
        grid = [[0] * HOURS for _weekday in WEEKDAY_NAMES]
        for cell in cells:
            grid[cell["weekday"]][cell["hour"]] = cell[figure]
        highest = max((max(row) for row in grid), default=0)
        tables.append(
            BreakdownTable(
                name=name,
                title=title,
                headers=[_("Weekday"), *(f"{hour}:00" for hour in range(HOURS)), _("Total")],
                kinds=[TEXT, *[kind] * (HOURS + 1)],
                rows=[
                    [str(WEEKDAY_NAMES[weekday]), *row, sum(row)]
                    for weekday, row in enumerate(grid)
                ],
                heat=[
                    [None, *(float(v / highest) if highest else 0.0 for v in row), None]
                    for row in grid
                ],
            )
        )
    return tables


def _revenue_table(dimension: str, rows: list[dict]) -> BreakdownTable:
    value_header = {
        "prefecture": _("Customer's prefecture"),
        "channel": _("Sales channel of the purchase"),
        "category": _("Product category"),
    }[dimension]
    return BreakdownTable(
        name=f"revenue_{dimension}",
        title=str(DIMENSION_TITLES[dimension]),
        headers=[value_header, _("Purchases"), _("Customers"), _("Revenue"), _("Share")],
        kinds=[TEXT, COUNT, COUNT, MONEY, RATE],
        rows=[[r["label"], r["purchases"], r["customers"], r["revenue"], r["share"]] for r in rows],
    )


def _top_table(rows: list[dict]) -> BreakdownTable:
    return BreakdownTable(
        name="top_customers",
        title=_("Top customers by revenue"),
        headers=[
            _("Customer"),
            _("Kana"),
            _("Customer ID"),
            _("Prefecture"),
            _("Purchases"),
            _("Revenue"),
            _("Share"),
            _("Last purchase"),
        ],
        kinds=[TEXT, TEXT, TEXT, TEXT, COUNT, MONEY, RATE, MOMENT],
        rows=[
            [
                r["name"],
                r["kana"],
                str(r["customer_id"]),
                r["prefecture_label"],
                r["purchases"],
                r["revenue"],
                r["share"],
                r["last_purchase"],
            ]
            for r in rows
        ],
        links=[r["url"] for r in rows],
    )


def breakdown_table(
    name: str, *, start: date, end: date, filters: Filters | None
) -> BreakdownTable | None:
    """One of ``TABLES`` for the period and filters (None: no such table)."""
    if name in TIMING_TABLES:
        tables = _timing_tables(purchase_timing(start=start, end=end, filters=filters))
        return tables[TIMING_TABLES.index(name)]
    if name == "top_customers":
        return _top_table(top_customers(start=start, end=end, filters=filters))
    dimension = name.removeprefix("revenue_")
    if name.startswith("revenue_") and dimension in DIMENSIONS:
        return _revenue_table(
            dimension, revenue_by(dimension, start=start, end=end, filters=filters)
        )
    return None


def breakdowns_context(*, start: date, end: date, filters: Filters | None) -> dict:
    """What ``analytics/_breakdowns.html`` needs: ``tables`` by name and ``chart_data`` (for
    json_script: the bar charts' labels and figures, the texts the charts show).

    Include line for the dashboard template (``query``: the page's query string):
    ``{% include "analytics/_breakdowns.html" with breakdowns=breakdowns query=query %}``
    """
    return context_of(
        timing=purchase_timing(start=start, end=end, filters=filters),
        revenue={d: revenue_by(d, start=start, end=end, filters=filters) for d in DIMENSIONS},
        top=top_customers(start=start, end=end, filters=filters),
    )


def context_of(*, timing: list[dict], revenue: dict[str, list[dict]], top: list[dict]) -> dict:
    """breakdowns_context from the figures (computed apart: the dashboard computes each in
    its own thread)."""
    tables = {table.name: table for table in _timing_tables(timing)}
    for dimension, rows in revenue.items():
        table = _revenue_table(dimension, rows)
        tables[table.name] = table
    tables["top_customers"] = _top_table(top)
    chart_data = {
        dimension: {
            "labels": [r["label"] for r in rows],
            "revenue": [float(r["revenue"]) for r in rows],
            "share": [r["share"] for r in rows],
            "customers": [r["customers"] for r in rows],
        }
        for dimension, rows in revenue.items()
    }
    chart_data["text"] = {"revenue": _("Revenue"), "customers": _("Customers")}
    return {"tables": tables, "chart_data": chart_data}
