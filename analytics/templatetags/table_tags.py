"""The rows of the dashboard's tables, written in Python rather than by template loops.

The page holds a few thousand cells (the cohort triangle, the two timing heatmaps, the Pareto
curve...): through ``{% for %}`` and ``{% if %}`` per cell the template engine took well over
a hundred milliseconds to write them, a third of the page's time; here they take a few. The
markup is the one the templates wrote: the first cell a row header, the others right-aligned
when numbers and shaded when part of a heatmap.

    {% load table_tags %}{% table_rows table.html_rows %}

Each row is a list of cells, or a dict with ``cells`` and an optional ``link`` for the first
cell (analytics.breakdown_tables); a cell is a dict with ``text``, ``number``, ``heat`` (a
share 0..1 as text, or None) and ``dark``.
"""

from __future__ import annotations

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


def _header(cell: dict, link: str | None) -> str:
    text = conditional_escape(cell["text"])
    if link:
        text = f'<a href="{conditional_escape(link)}">{text}</a>'
    return f'<th scope="row">{text}</th>'


def _data(cell: dict) -> str:
    classes = "number nowrap" if cell["number"] else ""
    style = ""
    if cell.get("heat"):
        classes += " heat-cell"
        style = f' style="--heat: {conditional_escape(cell["heat"])}"'
    if cell.get("dark"):
        classes += " heat-dark"
    return f'<td class="{classes}"{style}>{conditional_escape(cell["text"])}</td>'


@register.simple_tag
def table_rows(rows) -> SafeString:
    """The ``<tr>`` elements of ``rows``."""
    lines = []
    for row in rows:
        if isinstance(row, dict):
            cells, link = row["cells"], row.get("link")
        else:
            cells, link = row, None
        if not cells:
            continue
        lines.append(
            "<tr>" + _header(cells[0], link) + "".join(_data(cell) for cell in cells[1:]) + "</tr>"
        )
    # Every text and attribute value above went through conditional_escape.
    return mark_safe("\n".join(lines))  # noqa: S308
