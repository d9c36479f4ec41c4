"""Numbers and amounts of money as the active language writes them, fast.

The analytics dashboard writes a few thousand figures per page (the cohort triangle, the
timing heat maps, the tables under every chart). Through Django's ``formats.number_format``
each number looks its language's separators up again (~4 µs), and through Babel's
``format_currency`` each amount applies the currency pattern again (~12 µs): together a
quarter of the page's rendering. Here the separators are read once per language, and an
amount in a currency without a minor unit (yen) is written from the prefix, group separator
and suffix Babel itself writes for that language, read off one amount it formatted. The
output is Babel's character for character (tests/crm/test_number_formats.py compares them);
anything else (a currency with cents, a negative amount, a grouping that is not by threes)
goes to Babel as before. Numbers are Django's too, with one difference: they are rounded half
up to their places, where Django's number format cuts the other digits off (a share of
12.97% shown as "12.9%"); every page writing a rate or a share with places goes through here.
"""

from __future__ import annotations

import functools
import re
from decimal import ROUND_HALF_UP, Decimal

from babel import Locale
from babel.numbers import format_currency, get_currency_precision
from django.conf import settings
from django.core.signals import setting_changed
from django.utils import numberformat
from django.utils.formats import get_format
from django.utils.translation import get_language, to_locale

_ONE = Decimal(1)
# A probe amount whose digits show the prefix, the group separator and the suffix.
_PROBE = Decimal(1234567)
_PROBED = re.compile(r"(\D*)1(?P<group>\D+)234(?P=group)567(\D*)")


@functools.cache
def babel_locale(language: str) -> Locale:
    # Parsed once per language: Babel parses the name and loads its data on every call given
    # a string.
    return Locale.parse(to_locale(language))


@functools.cache
def _separators(language: str | None) -> tuple[str, object, str]:
    return (
        get_format("DECIMAL_SEPARATOR", language, use_l10n=True),
        get_format("NUMBER_GROUPING", language, use_l10n=True),
        get_format("THOUSAND_SEPARATOR", language, use_l10n=True),
    )


def rounded(value, places: int) -> Decimal:
    """Half up, from the shortest decimal of the float: the page and the CSV show the same
    digits (binary floats and other rounding rules would differ in the last one; Django's
    number format cuts the digits beyond its places off instead of rounding)."""
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)


def number(value, decimal_pos: int | None = None, *, force_grouping: bool = False) -> str:
    """``django.utils.formats.number_format(value, decimal_pos, force_grouping=...)`` of the
    value rounded half up to ``decimal_pos`` places: Django's cuts the other digits off
    (12.97 with one place is "12.9" there, "13.0" here, as ``floatformat`` writes it)."""
    if decimal_pos is not None and value is not None:
        value = rounded(value, decimal_pos)
    decimal_sep, grouping, thousand_sep = _separators(get_language())
    return numberformat.format(
        value,
        decimal_sep,
        decimal_pos,
        grouping,
        thousand_sep,
        force_grouping=force_grouping,
        use_l10n=True,
    )


@functools.cache
def _whole_amounts(language: str, currency: str) -> tuple[str, str, str] | None:
    """(prefix, group separator, suffix) of amounts in ``currency`` as Babel writes them in
    ``language``, if the currency has no minor unit and groups by threes; else None."""
    if get_currency_precision(currency) != 0:
        return None
    probe = format_currency(_PROBE, currency, locale=babel_locale(language))
    found = _PROBED.fullmatch(probe)
    return found.groups() if found else None


def money(amount, currency: str | None = None) -> str:
    """``amount`` in ``currency`` (settings.CURRENCY) for the active language: ¥12,345 /
    ￥12,345, as Babel's ``format_currency`` writes it."""
    currency = currency or settings.CURRENCY
    language = get_language() or "ja"
    value = Decimal(amount)
    whole = _whole_amounts(language, currency)
    if whole is None or not value.is_finite() or value.is_signed():
        return format_currency(value, currency, locale=babel_locale(language))
    prefix, group, suffix = whole
    # Rounded as Babel rounds: by the decimal context (half to even by default).
    digits = f"{int(value.quantize(_ONE)):,}"
    return prefix + (digits if group == "," else digits.replace(",", group)) + suffix


def _settings_changed(*, setting: str, **kwargs) -> None:
    if setting in ("LANGUAGE_CODE", "LANGUAGES", "FORMAT_MODULE_PATH") or setting.endswith(
        ("_SEPARATOR", "_GROUPING")
    ):
        _separators.cache_clear()


setting_changed.connect(_settings_changed)
