"""The fast number and money formats write exactly what Django and Babel write."""

from __future__ import annotations

from decimal import Decimal

import pytest
from babel.numbers import format_currency
from django.utils import formats, translation

from crm import number_formats
from crm.templatetags.crm_tags import money

AMOUNTS = [
    0,
    1,
    999,
    1000,
    12345,
    1234567,
    10**15 + 7,
    Decimal("0.4"),
    Decimal("0.5"),  # half to even: 0
    Decimal("1.5"),  # 2
    Decimal("2.5"),  # 2
    Decimal("12345.67"),
    Decimal("99999.5"),
    Decimal("1234567.49"),
    Decimal("-0.4"),  # a negative zero after rounding: Babel writes the sign
    Decimal("-1"),
    Decimal("-12345.5"),
    8123.45,
    "1500",
    "1500.50",
]
NUMBERS = [0, 7, 1000, -1000, 1234567, Decimal("1234.5"), Decimal("-0.05"), 3.14159, 0.1 + 0.2]


@pytest.mark.parametrize("language", ["ja", "en"])
@pytest.mark.parametrize("currency", ["JPY", "USD", "EUR"])
def test_money_is_what_babel_writes(language, currency):
    locale = number_formats.babel_locale(language)
    with translation.override(language):
        for amount in AMOUNTS:
            expected = format_currency(Decimal(amount), currency, locale=locale)
            assert money(amount, currency) == expected, amount
    assert money(None) == money("") == ""


@pytest.mark.parametrize("language", ["ja", "en"])
def test_yen_amounts_take_the_fast_way(language):
    assert number_formats._whole_amounts(language, "JPY") is not None
    assert number_formats._whole_amounts(language, "USD") is None
    with translation.override(language):
        assert money(1234567, "JPY") in ("¥1,234,567", "￥1,234,567")


@pytest.mark.parametrize("language", ["ja", "en", None])
@pytest.mark.parametrize("places", [None, 0, 1, 2])
@pytest.mark.parametrize("grouping", [True, False])
def test_numbers_are_what_django_writes_of_them_rounded(language, places, grouping):
    with translation.override(language):
        for value in NUMBERS:
            exact = value if places is None else number_formats.rounded(value, places)
            assert number_formats.number(
                value, places, force_grouping=grouping
            ) == formats.number_format(exact, places, force_grouping=grouping)


def test_numbers_are_rounded_half_up_not_cut():
    # Django's number format writes 12.9 and 0.0 for these: the digits beyond are cut off.
    assert formats.number_format(12.97, 1) == "12.9"
    assert number_formats.number(12.97, 1) == "13.0"
    assert number_formats.number(0.063, 1) == "0.1"
    assert number_formats.number(0.05, 1) == "0.1"
    assert number_formats.number(Decimal("2.5"), 0) == "3"
    assert number_formats.number(-0.04, 1) == "0.0"
    assert number_formats.number(1234.5, 0, force_grouping=True) == "1,235"


def test_changed_separators_are_read_again(settings):
    with translation.override(None):
        before = number_formats.number(1234567, force_grouping=True)
        assert before == formats.number_format(1234567, force_grouping=True)
        settings.THOUSAND_SEPARATOR = " "
        settings.NUMBER_GROUPING = 3
        after = number_formats.number(1234567, force_grouping=True)
        assert after == formats.number_format(1234567, force_grouping=True) == "1 234 567"
