"""Serializer fields of the API that take exactly the JSON types their schema declares, and
the patterns that are both the schema's and the server's rule (what a request that follows
the schema sends is never refused with a 400)."""

from __future__ import annotations

import re
from datetime import UTC, date
from decimal import Decimal

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

from crm.api.filters import MAX_ID  # noqa: F401 - the API modules import it from here
from customers.normalize import (
    normalize_email,
)

MAX_INT = 2**31 - 1
EARLIEST_BIRTHDAY = date(1900, 1, 1)


_DIGIT = "[0-9０-９]"
_PHONE_SEPARATOR = r"[ \u3000().\-‐‑‒–—―−ー－（）]"


def _digits(count: str) -> str:
    return rf"(?:{_PHONE_SEPARATOR}*{_DIGIT}){count}"


# 10 to 15 digits once normalised (normalize_phone turns "+81 90..." into "090..."), written
# with the usual separators: the rule of the customer form and the CSV import.
PHONE_PATTERN = (
    r"(?:[+＋](?:[8８][1１]"
    + _digits("{9,14}")
    + rf"|(?:{_PHONE_SEPARATOR}*[0-79０-７９]|{_PHONE_SEPARATOR}+{_DIGIT})"
    + _digits("{9,14}")
    + r"|[8８](?:"
    + rf"{_PHONE_SEPARATOR}+{_DIGIT}|[02-9０２-９])"
    + _digits("{8,13}")
    + r")|"
    + _digits("{10,15}")
    + rf"){_PHONE_SEPARATOR}*"
)
# Seven digits, optionally as "〒100-0001".
POSTAL_CODE_PATTERN = r"(?:〒 ?)?[0-9０-９]{3}[\-‐－ー]?[0-9０-９]{4}"
# Hiragana, full-width katakana, half-width katakana (voicing marks only where they combine
# into one letter) and spaces: everything this matches is kana, stored as full-width katakana
# no longer than what was sent (customers.normalize.to_katakana).
KANA_PATTERN = (
    r"(?:[\u3041-\u3096\u30a1-\u30fa\u30fc-\u30fe\u30fb\uff66-\uff9d \u3000]"
    r"|[\uff66\uff73\uff76-\uff84\uff8a-\uff8e\uff9c]\uff9e|[\uff8a-\uff8e]\uff9f)+"
)
# What no database column can store (DRF checks text values, but not a dictionary's keys).
NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")
# Amounts: digits with at most two decimals, as a string, or a whole number.
AMOUNT_STRING = r"[0-9]{1,%d}(?:\.[0-9]{1,2})?"


# Contains a character that is not white space as Python's str.strip() sees it (which DRF
# trims), spelled out: JSON Schema's \s is ECMAScript's, which differs (\x1c-\x1f, \ufeff).
NOT_BLANK_PATTERN = (
    r"[^\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
    r"\u3000]"
)


def _numbers(first: int, last: int, width: int) -> str:
    """A regular expression for the zero-padded numbers ``first``..``last``."""
    parts, n = [], first
    while n <= last:
        if n % 100 == 0 and n + 99 <= last and width > 2:
            parts.append(f"{n // 100:0{width - 2}d}[0-9]{{2}}")
            n += 100
        elif n % 10 == 0 and n + 9 <= last:
            parts.append(f"{n // 10:0{width - 1}d}[0-9]")
            n += 10
        else:
            parts.append(f"{n:0{width}d}")
            n += 1
    return "|".join(parts)


def past_dates_pattern(today: date) -> str:
    """Dates from 1900-01-01 to ``today`` (with format: date for the calendar)."""
    year, month = f"{today.year:04d}", f"{today.month:02d}"
    choices = []
    if today.year > EARLIEST_BIRTHDAY.year:
        choices.append(f"(?:{_numbers(EARLIEST_BIRTHDAY.year, today.year - 1, 4)})-[0-9]{{2}}")
    if today.month > 1:
        choices.append(f"{year}-(?:{_numbers(1, today.month - 1, 2)})")
    choices.append(f"{year}-{month}-(?:{_numbers(1, today.day, 2)})$")
    return "^(?:" + "|".join(choices) + ")"


# --- Fields that take exactly the JSON types their schema declares -------------------------


class _JSONTyped:
    """DRF coerces (13 to "13", "yes" to true, "5" to 5): here a value of another JSON type
    than the schema's is refused, so what the schema calls invalid is never accepted."""

    json_types: tuple[type, ...] = (str,)

    def to_internal_value(self, data):
        if isinstance(data, bool) != (bool in self.json_types) or not isinstance(
            data, self.json_types
        ):
            self.wrong_type(data)
        return super().to_internal_value(data)

    def wrong_type(self, data):
        self.fail("invalid")


class TextField(_JSONTyped, serializers.CharField):
    """A string, trimmed unless it has a ``pattern`` (which then says which spaces may be
    sent); its length limit counts what was sent, as the schema's maxLength does."""

    default_error_messages = {"pattern": _("Enter a valid value.")}

    def __init__(self, *, pattern: str | None = None, **kwargs):
        self.pattern = re.compile(pattern) if pattern else None
        if self.pattern:
            kwargs["trim_whitespace"] = False
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        value = super().to_internal_value(data)
        if self.pattern and not self.pattern.fullmatch(value):
            self.fail("pattern")
        return value


def _schema_pattern(regex: str) -> str:
    # As drf-spectacular writes patterns: \u escapes.
    return regex.encode("ascii", "backslashreplace").decode().replace(r"\x", r"\u00")


class TextFieldExtension(OpenApiSerializerFieldExtension):
    """Requests get the limits a text field checks: length, not blank (some character that
    is not white space), pattern. Responses only the type: a stored value need not look like
    what clients type (a phone is typed with hyphens, stored as digits)."""

    target_class = TextField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field, schema = self.target, {"type": "string"}
        if direction == "request":
            if field.max_length is not None:
                schema["maxLength"] = field.max_length
            if field.pattern:
                schema["pattern"] = f"^(?:{_schema_pattern(field.pattern.pattern)})$"
            elif not field.allow_blank:
                schema["pattern"] = NOT_BLANK_PATTERN
        return schema


class EmailField(_JSONTyped, serializers.EmailField):
    """Stored as the import and the form store it: full-width folded, lower case."""

    def to_internal_value(self, data):
        return normalize_email(super().to_internal_value(data))


class ChoiceField(_JSONTyped, serializers.ChoiceField):
    def wrong_type(self, data):
        self.fail("invalid_choice", input=data)


class EnumField(ChoiceField):
    """A choice among a TextChoices class, which the schema describes as a component named
    after it: one field name stands for different choices (a purchase's or a ticket's
    status), which drf-spectacular could otherwise only name by a hash."""

    def __init__(self, enum: type[models.TextChoices], **kwargs):
        self.enum = enum
        super().__init__(choices=enum.choices, **kwargs)


class EnumFieldExtension(OpenApiSerializerFieldExtension):
    target_class = EnumField
    match_subclasses = True

    def get_name(self):
        return f"{self.target.enum.__name__}Enum"

    def map_serializer_field(self, auto_schema, direction):
        values = [choice.value for choice in self.target.enum]
        labels = [f"* `{c.value}` - {c.label}" for c in self.target.enum]
        if self.target.allow_blank:
            values.append("")
            labels.append("* `` - " + str(_("none")))
        return {"type": "string", "enum": values, "description": "\n".join(labels)}


class BooleanField(_JSONTyped, serializers.BooleanField):
    json_types = (bool,)


class IntegerField(_JSONTyped, serializers.IntegerField):
    json_types = (int,)


class PrimaryKeyRelatedField(_JSONTyped, serializers.PrimaryKeyRelatedField):
    json_types = (int,)

    def wrong_type(self, data):
        self.fail("incorrect_type", data_type=type(data).__name__)


class SlugRelatedField(_JSONTyped, serializers.SlugRelatedField):
    pass


class AmountField(serializers.DecimalField):
    """A non-negative amount: a string of digits with at most two decimals ("1980.50"), or a
    whole number (1980). Decimals as JSON numbers would arrive rounded by the parser."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", Decimal("0"))
        super().__init__(**kwargs)
        self.whole_digits = self.max_digits - self.decimal_places
        self.string = re.compile(AMOUNT_STRING % self.whole_digits)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, str | int):
            self.fail("invalid")
        if isinstance(data, str) and not self.string.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class AmountFieldExtension(OpenApiSerializerFieldExtension):
    target_class = AmountField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        return {
            "oneOf": [
                {"type": "string", "pattern": f"^{AMOUNT_STRING % field.whole_digits}$"},
                {"type": "integer", "minimum": 0, "maximum": 10**field.whole_digits - 1},
            ]
        }


# Python cannot represent every instant ISO 8601 can write: "0001-01-01T00:00+01:00" is in year
# 0 in UTC. The first and last two days of the calendar are refused, whatever the time and
# offset, and the schema says so: every other date-time is an instant that can be shown in
# any time zone.
EDGE_DAYS = ("0001-01-01", "0001-01-02", "9999-12-30", "9999-12-31")
REPRESENTABLE_DATE_PATTERN = (
    "^(?:(?:"
    + _numbers(2, 9998, 4)
    + ")-|0001-(?:0[2-9]|1[0-2])-|0001-01-(?:0[3-9]|[12][0-9]|3[01])"
    + "|9999-(?:0[1-9]|1[01])-|9999-12-(?:[01][0-9]|2[0-9]))"
)


class DateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time (an offset is expected; without one it is in the organisation's
    time zone), answered in UTC."""

    default_error_messages = {
        "out_of_range": _("Enter a date-time from 0001-01-03 to 9999-12-29."),
    }

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            value = timezone.make_aware(value, timezone.get_default_timezone())
        try:
            return value.astimezone(UTC)
        except OverflowError:
            self.fail("overflow")

    def to_internal_value(self, value):
        if not isinstance(value, str):
            self.fail("invalid", format="YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]")
        if value.startswith(EDGE_DAYS):
            self.fail("out_of_range")
        return super().to_internal_value(value)


class DateTimeFieldExtension(OpenApiSerializerFieldExtension):
    target_class = DateTimeField

    def map_serializer_field(self, auto_schema, direction):
        schema = {"type": "string", "format": "date-time"}
        if direction == "request":
            schema["pattern"] = REPRESENTABLE_DATE_PATTERN
        return schema


class BirthdayField(serializers.DateField):
    """A date from 1900-01-01 to today (in the organisation's time zone)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", format="YYYY-MM-DD")
        value = super().to_internal_value(data)
        if not EARLIEST_BIRTHDAY <= value <= timezone.localdate():
            raise serializers.ValidationError(
                _("Enter a date from 1900-01-01 to today."), code="invalid"
            )
        return value


class BirthdayFieldExtension(OpenApiSerializerFieldExtension):
    target_class = BirthdayField

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "string",
            "format": "date",
            "pattern": past_dates_pattern(timezone.localdate()),
        }


def pattern_field(pattern: str, *, max_length: int, message, **kwargs) -> TextField:
    return TextField(
        pattern=pattern,
        max_length=max_length,
        required=False,
        allow_blank=True,
        error_messages={"pattern": message},
        **kwargs,
    )
