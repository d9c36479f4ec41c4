from __future__ import annotations

from django import template

from crm import number_formats
from crm.names import user_display_name

register = template.Library()


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with ``changes`` applied (keeps filters while paginating)."""
    query = context["request"].GET.copy()
    for key, value in changes.items():
        query[key] = value
    return query.urlencode()


@register.filter
def page_window(page, around: int = 2) -> list[int | None]:
    """Page numbers to show: first, last and ``around`` either side of the current one;
    ``None`` marks a gap."""
    last = page.paginator.num_pages
    wanted = {1, last, *range(page.number - around, page.number + around + 1)}
    numbers = sorted(n for n in wanted if 1 <= n <= last)
    window: list[int | None] = []
    for n in numbers:
        if window and n - window[-1] > 1:
            window.append(None)
        window.append(n)
    return window


@register.filter
def money(amount, currency: str | None = None) -> str:
    """An amount in the configured currency for the active language: ¥12,345 / ￥12,345.

    JPY has no minor unit, so yen amounts show no decimals; other currencies show theirs.
    """
    if amount is None or amount == "":
        return ""
    return number_formats.money(amount, currency)


@register.filter
def display_name(user) -> str:
    """A user's name in the right order for the name (see crm.names.full_name)."""
    return user_display_name(user)
