"""Filters of the RFM pages: shares as percentages and heat-map shading."""

from __future__ import annotations

from django import template

from crm import number_formats

register = template.Library()


@register.filter
def percent(share, digits: int = 1) -> str:
    """A fraction 0-1 as a percentage in the active language's number format: 0.1234 → 12.3%."""
    if share is None or share == "":
        return ""
    return f"{number_formats.number(float(share) * 100, int(digits))}%"


@register.filter
def heat(count, largest) -> float:
    """The shade of a heat-map cell, 0 to 1 in steps of 0.05: an empty cell stays blank and
    any other shows at least a little colour."""
    if not count or not largest:
        return 0.0
    return max(0.05, round(20 * count / largest) / 20)
