"""REST API of the customers app: customers, products, purchases (with a bulk upsert for shop
integrations), support tickets and interactions.

The OpenAPI schema says exactly what is accepted: serializers take the JSON types they
declare (no guessing "13" from 13 or true from "yes"), and every rule they check is declared
as a length, choice, range or pattern. So a request that follows the schema is never refused
with a 400. What the schema cannot know is the state of the database: a reference to a record
that does not exist is a 404, a duplicate external ID, order ID or SKU, or a ticket status the
workflow does not allow from the current one, a 409.

Writes go through the app's functions, as the pages' do: customers.profiles, the consent
record (customers.consent.record_consent), customers.ticketing, customers.interactions, and
for the bulk upsert the CSV import's code path (customers.importing.import_purchases).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db import IntegrityError, models, transaction
from django.db.models import Prefetch, ProtectedError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import (
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from drf_standardized_errors.openapi_serializers import (
    ClientErrorEnum,
    ErrorResponse404Serializer,
    ValidationErrorEnum,
)
from drf_standardized_errors.openapi_validation_errors import extend_validation_errors
from drf_standardized_errors.settings import package_settings
from rest_framework import exceptions, filters, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ErrorDetail
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.validators import UniqueValidator

from crm.api.filters import DateTimeFilter
from crm.api.schema import AutoSchema as BaseAutoSchema
from customers.consent import record_consent
from customers.importing import RowError, import_purchases
from customers.interactions import log_interaction
from customers.models import (
    ConsentSource,
    ContactChannel,
    Customer,
    Interaction,
    Product,
    Purchase,
    PurchaseChannel,
    PurchaseItem,
    PurchaseStatus,
    SourceChannel,
    SupportTicket,
    Tag,
    TicketReply,
    TicketStatus,
)
from customers.normalize import (
    normalize_email,
    normalize_phone,
    normalize_postal_code,
    to_katakana,
)
from customers.prefectures import Prefecture
from customers.profiles import create_customer, update_customer
from customers.ticketing import (
    TransitionNotAllowed,
    add_ticket_reply,
    change_ticket_status,
    open_ticket,
)

User = get_user_model()

MAX_BULK_PURCHASES = 10_000
MAX_ITEMS_PER_PURCHASE = 200
MAX_ID = 2**63 - 1
MAX_INT = 2**31 - 1
EARLIEST_BIRTHDAY = date(1900, 1, 1)

# --- Patterns: the schema's pattern is the server's rule ------------------------------------

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
_NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")
# Amounts: digits with at most two decimals, as a string, or a whole number.
_AMOUNT_STRING = r"[0-9]{1,%d}(?:\.[0-9]{1,2})?"


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
        self.string = re.compile(_AMOUNT_STRING % self.whole_digits)

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
                {"type": "string", "pattern": f"^{_AMOUNT_STRING % field.whole_digits}$"},
                {"type": "integer", "minimum": 0, "maximum": 10**field.whole_digits - 1},
            ]
        }


# Python cannot represent every instant ISO 8601 can write: "0001-01-01T00:00+01:00" is in year
# 0 in UTC. The first and last two days of the calendar are refused, whatever the time and
# offset, and the schema says so: every other date-time is an instant that can be shown in
# any time zone.
_EDGE_DAYS = ("0001-01-01", "0001-01-02", "9999-12-30", "9999-12-31")
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
        if value.startswith(_EDGE_DAYS):
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


def _pattern_field(pattern: str, *, max_length: int, message, **kwargs) -> TextField:
    return TextField(
        pattern=pattern,
        max_length=max_length,
        required=False,
        allow_blank=True,
        error_messages={"pattern": message},
        **kwargs,
    )


# The base of the model serializers here: JSON-typed fields, and a 404 or 409 rather than a
# 400 for what only the database refuses (see _refusal). A comment, not a docstring, since the
# schema would show a docstring as every serializer's description.
class APIModelSerializer(serializers.ModelSerializer):
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        **dict.fromkeys([models.CharField, models.TextField], TextField),
        models.EmailField: EmailField,
        models.BooleanField: BooleanField,
        models.IntegerField: IntegerField,
        models.PositiveIntegerField: IntegerField,
        models.DecimalField: AmountField,
        models.DateTimeField: DateTimeField,
    }
    serializer_related_field = PrimaryKeyRelatedField
    serializer_choice_field = ChoiceField

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if issubclass(field_class, IntegerField):
            kwargs.setdefault("max_value", MAX_INT)
        return field_class, kwargs

    def is_valid(self, *, raise_exception=False):
        valid = super().is_valid(raise_exception=False)
        if not valid and raise_exception:
            raise _refusal(self.errors)
        return valid


def _codes(detail) -> Iterator[str]:
    if isinstance(detail, dict):
        for value in detail.values():
            yield from _codes(value)
    elif isinstance(detail, list):
        for value in detail:
            yield from _codes(value)
    else:
        yield detail.code


def _recoded(detail, code: str):
    if isinstance(detail, dict):
        return {key: _recoded(value, code) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_recoded(value, code) for value in detail]
    return ErrorDetail(str(detail), code=code)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = _("The request conflicts with the current state of the data.")


def _refusal(errors) -> exceptions.APIException:
    """A 400 for invalid input; a 404 when the only problem is a reference to something that
    does not exist, a 409 when it is a value another record already has."""
    codes = set(_codes(errors))
    if codes == {"does_not_exist"}:
        return exceptions.NotFound(_recoded(errors, "not_found"))
    if codes and codes <= {"does_not_exist", "unique"}:
        return Conflict(errors)
    return serializers.ValidationError(errors)


class ConflictErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True)


class ConflictResponseSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ClientErrorEnum.choices)
    errors = ConflictErrorSerializer(many=True)


class AutoSchema(BaseAutoSchema):
    """Two corrections to the generated schema, so that real requests and responses match it:
    lists of objects declare their size limits, and errors inside a list or a dictionary are
    described by a pattern naming their position ("items.0.sku") rather than the literal
    "items.INDEX.sku" drf-standardized-errors writes."""

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.ListSerializer)
            and schema.get("type") == "array"
        ):
            if field.min_length is not None or not field.allow_empty:
                schema["minItems"] = max(field.min_length or 0, 0 if field.allow_empty else 1)
            if field.max_length is not None:
                schema["maxItems"] = field.max_length
        return schema

    def _get_validation_error_codes_by_field(self, data_fields):
        codes = super()._get_validation_error_codes_by_field(data_fields)
        for data_field in data_fields:
            field = data_field.field
            if isinstance(field, serializers.ListSerializer):
                # Checked by the list itself, not by validators the library looks at.
                if field.max_length is not None:
                    codes[data_field.name].add("max_length")
                if field.min_length is not None:
                    codes[data_field.name].add("min_length")
        return codes

    def _get_serializer_for_validation_error_response(self):
        base = super()._get_serializer_for_validation_error_response()
        errors = base._declared_fields["errors"]
        proxy = getattr(errors, "child", errors)
        separator = package_settings.NESTED_FIELD_SEPARATOR
        placeholders = {
            package_settings.LIST_INDEX_IN_API_SCHEMA: "[0-9]+",
            package_settings.DICT_KEY_IN_API_SCHEMA: r"[\s\S]*",
        }
        error_serializers, changed = [], False
        for attr, error_serializer in proxy.serializers.items():
            parts = (attr or "").split(separator)
            pattern = re.escape(separator).join(
                placeholders.get(part, re.escape(part)) for part in parts
            )
            if len(parts) > 1 and parts[-1] == api_settings.NON_FIELD_ERRORS_KEY:
                # A nested object or list that is null, or a list item that is not an object,
                # is reported on itself ("items", "items.0"), not on its non_field_errors.
                pattern = pattern.removesuffix(re.escape(separator + parts[-1]))
                pattern += f"(?:{re.escape(separator + parts[-1])})?"
            if pattern != re.escape(attr or ""):
                changed = True
                error_serializer = type(
                    error_serializer.__name__,
                    (error_serializer,),
                    {
                        "attr": serializers.RegexField(rf"^{pattern}\Z"),
                        "Meta": error_serializer.Meta,
                    },
                )
            error_serializers.append(error_serializer)
        if not changed:
            return base

        class ValidationErrorSerializer(serializers.Serializer):
            type = serializers.ChoiceField(choices=ValidationErrorEnum.choices)
            errors = PolymorphicProxySerializer(
                component_name=proxy.component_name,
                serializers=error_serializers,
                resource_type_field_name=None,
                many=True,
            )

            class Meta:
                ref_name = base.Meta.ref_name

        return ValidationErrorSerializer


class IdFilter(django_filters.NumberFilter):
    """A record's id; an id that matches nothing gives an empty list, not an error."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=1, max_value=MAX_ID, **kwargs)


extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})(IdFilter)


class _TrueOrFalseField(forms.Field):
    default_error_messages = {"invalid": _("Enter true or false.")}

    def to_python(self, value):
        if value in (None, ""):
            return None
        if value in ("true", "false"):
            return value == "true"
        raise forms.ValidationError(self.error_messages["invalid"], code="invalid")


class BooleanFilter(django_filters.BooleanFilter):
    """``true`` or ``false``, as the schema says; anything else is a 400, not ignored."""

    field_class = _TrueOrFalseField


class StableOrderingFilter(filters.OrderingFilter):
    """``ordering=`` with the id as the last key, so that cursor pagination stays exact when
    several rows share a date."""

    def get_ordering(self, request, queryset, view):
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if ordering and ordering[-1].lstrip("-") not in ("id", "pk"):
            ordering.append("-id" if ordering[-1].startswith("-") else "id")
        return ordering


class APIViewSetMixin:
    schema = AutoSchema()
    parser_classes = [JSONParser]
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, StableOrderingFilter]


class VisibleToUserField(PrimaryKeyRelatedField):
    """A related record by id, among those the requesting user may see."""

    def get_queryset(self):
        return self.queryset.visible_to(self.context["request"].user)


class ActiveUserField(PrimaryKeyRelatedField):
    def __init__(self, **kwargs):
        super().__init__(queryset=User.objects.filter(is_active=True), **kwargs)


def _writes_404_409(serializer) -> dict:
    """Schema of the create/update operations: the 404 and 409 that ``_refusal`` answers."""
    responses = {404: ErrorResponse404Serializer, 409: ConflictResponseSerializer}
    return {
        "create": extend_schema(responses={201: serializer, **responses}),
        "update": extend_schema(responses={200: serializer, **responses}),
        "partial_update": extend_schema(responses={200: serializer, **responses}),
    }


# --- Customers -------------------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "maxLength": 50},
        "maxItems": 100,
        "description": "Tag names; unknown ones are created, blank ones ignored.",
    }
)
class TagNamesField(serializers.ListField):
    child = TextField(max_length=50, allow_blank=True)

    def __init__(self, **kwargs):
        super().__init__(max_length=100, **kwargs)

    def to_internal_value(self, data):
        return list(dict.fromkeys(name for name in super().to_internal_value(data) if name))

    def to_representation(self, value):
        return [tag.name for tag in value.all()]


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": 200},
        "maxProperties": 20,
    }
)
class SNSAccountsField(serializers.DictField):
    child = TextField(max_length=200, allow_blank=True)
    default_error_messages = {
        "too_many": _("At most 20 accounts."),
        "invalid_service": _("A service name cannot contain NUL or surrogate characters."),
    }

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if len(value) > 20:
            self.fail("too_many")
        if any(_NUL_OR_SURROGATE.search(service) for service in value):
            self.fail("invalid_service")
        return value


class CustomerSerializer(APIModelSerializer):
    family_name_kana = _pattern_field(
        KANA_PATTERN,
        max_length=50,
        label=_("family name (kana)"),
        message=_("Enter the reading in kana (hiragana or katakana)."),
        help_text=_("Hiragana or katakana (half-width too); stored as full-width katakana."),
    )
    given_name_kana = _pattern_field(
        KANA_PATTERN,
        max_length=50,
        label=_("given name (kana)"),
        message=_("Enter the reading in kana (hiragana or katakana)."),
        help_text=_("Hiragana or katakana (half-width too); stored as full-width katakana."),
    )
    phone = _pattern_field(
        PHONE_PATTERN,
        max_length=30,
        label=_("phone"),
        message=_("Enter a phone number of 10 to 15 digits (hyphens and spaces are fine)."),
        help_text=_(
            'A number of 10 to 15 digits in any usual form ("03-1234-5678", '
            '"+81 90 1234 5678"); stored as digits.'
        ),
    )
    postal_code = _pattern_field(
        POSTAL_CODE_PATTERN,
        max_length=10,
        label=_("postal code"),
        message=_("Enter a postal code of 7 digits, e.g. 100-0001."),
        help_text=_('Seven digits, e.g. "100-0001" or "〒1000001"; stored as digits.'),
    )
    birthday = BirthdayField(required=False, allow_null=True, label=_("birthday"))
    prefecture = ChoiceField(
        choices=Prefecture.choices,
        required=False,
        allow_blank=True,
        label=_("prefecture"),
        help_text=_("JIS X 0401 code, e.g. 13 for Tokyo."),
    )
    sns_accounts = SNSAccountsField(
        required=False,
        label=_("SNS accounts"),
        help_text=_('Service and account, e.g. {"line": "...", "instagram": "@..."}.'),
    )
    channel = EnumField(SourceChannel, required=False, allow_blank=True, label=_("source channel"))
    tags = TagNamesField(required=False, label=_("tags"))
    owner = ActiveUserField(required=False, allow_null=True, label=_("owner"))
    email_opt_in = BooleanField(
        required=False,
        label=_("e-mail consent"),
        help_text=_(
            "Send it only with consent_source (and optionally consent_form): every consent "
            "decision is recorded as a consent record."
        ),
    )
    consent_source = ChoiceField(
        choices=ConsentSource.choices,
        required=False,
        write_only=True,
        label=_("how consent was given"),
        help_text=_("Required with email_opt_in, and only with it."),
    )
    consent_form = TextField(
        max_length=200,
        required=False,
        allow_blank=True,
        write_only=True,
        label=_("form or wording"),
        help_text=_("Which form, or its text."),
    )

    class Meta:
        model = Customer
        fields = [
            "id",
            "external_id",
            "family_name",
            "given_name",
            "family_name_kana",
            "given_name_kana",
            "email",
            "phone",
            "birthday",
            "gender",
            "prefecture",
            "postal_code",
            "address",
            "channel",
            "sns_accounts",
            "tags",
            "notes",
            "owner",
            "email_opt_in",
            "email_opt_in_at",
            "consent_source",
            "consent_form",
            "erased_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["email_opt_in_at", "updated_at"]
        extra_kwargs = {
            "external_id": {
                "validators": [
                    UniqueValidator(
                        queryset=Customer.objects.all(),
                        message=_("Another customer already has this external ID."),
                    ),
                ]
            }
        }

    # The fields' pattern lets only kana through (KANA_PATTERN); stored as katakana.
    def validate_family_name_kana(self, value: str) -> str:
        return to_katakana(value)

    def validate_given_name_kana(self, value: str) -> str:
        return to_katakana(value)

    def validate_phone(self, value: str) -> str:
        return normalize_phone(value)

    def validate_postal_code(self, value: str) -> str:
        return normalize_postal_code(value)

    def validate(self, attrs: dict) -> dict:
        # Stated in the schema too (see CustomerSerializerExtension): a consent decision is
        # email_opt_in with consent_source (and maybe consent_form), or none of them.
        given = {"email_opt_in", "consent_source", "consent_form"} & attrs.keys()
        if given and not {"email_opt_in", "consent_source"} <= given:
            missing = "consent_source" if "email_opt_in" in given else "email_opt_in"
            raise serializers.ValidationError(
                {
                    missing: _(
                        "Send email_opt_in together with consent_source: how the customer "
                        "gave or withdrew consent is part of the record."
                    )
                },
                code="required",
            )
        return attrs

    @transaction.atomic
    def create(self, validated_data: dict) -> Customer:
        consent = self._pop_consent(validated_data)
        tags = validated_data.pop("tags", [])
        by = self.context["request"].user
        customer = self._saving(create_customer, fields=validated_data, tags=tags, by=by)
        self._record_consent(customer, consent)
        return customer

    @transaction.atomic
    def update(self, instance: Customer, validated_data: dict) -> Customer:
        if instance.is_erased:
            raise Conflict(_("This customer's personal data was erased; it cannot be edited."))
        consent = self._pop_consent(validated_data)
        tags = validated_data.pop("tags", None)
        customer = self._saving(
            update_customer,
            customer=instance,
            fields=validated_data,
            tags=[tag.name for tag in instance.tags.all()] if tags is None else tags,
            # Unchanged here: a change is recorded below with the source the client gave.
            email_opt_in=instance.email_opt_in,
            by=self.context["request"].user,
        )
        self._record_consent(customer, consent)
        return customer

    @staticmethod
    def _pop_consent(data: dict) -> dict | None:
        if "email_opt_in" not in data:
            return None
        return {
            "opted_in": data.pop("email_opt_in"),
            "source": data.pop("consent_source"),
            "form": data.pop("consent_form", ""),
        }

    def _record_consent(self, customer: Customer, consent: dict | None) -> None:
        if consent is not None:
            record_consent(customer=customer, by=self.context["request"].user, **consent)

    @staticmethod
    def _saving(save, **kwargs) -> Customer:
        try:
            with transaction.atomic():
                return save(**kwargs)
        except IntegrityError as error:  # another request took the external ID meanwhile
            raise Conflict(
                {"external_id": [_("Another customer already has this external ID.")]}
            ) from error


class CustomerSerializerExtension(OpenApiSerializerExtension):
    """email_opt_in and consent_source come together or not at all."""

    target_class = CustomerSerializer

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["anyOf"] = [
                {"required": ["email_opt_in", "consent_source"]},
                {
                    "not": {
                        "anyOf": [
                            {"required": ["email_opt_in"]},
                            {"required": ["consent_source"]},
                            {"required": ["consent_form"]},
                        ]
                    }
                },
            ]
        return schema


class CustomerFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="search",
        label=_("Name, kana, e-mail, phone or external ID, however typed (width, kana)"),
    )
    prefecture = django_filters.ChoiceFilter(choices=Prefecture.choices)
    owner = IdFilter(field_name="owner")
    tag = django_filters.CharFilter(field_name="tags__name", label=_("Tag name"))
    email_opt_in = BooleanFilter()
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Customer
        fields = ["q", "prefecture", "channel", "owner", "tag", "email_opt_in"]

    def search(self, queryset, name, value: str):
        return queryset.search(value)


@extend_schema_view(**_writes_404_409(CustomerSerializer))
@extend_validation_errors(["required"], field_name="email_opt_in", methods=["post", "put", "patch"])
@extend_validation_errors(
    ["required"], field_name="consent_source", methods=["post", "put", "patch"]
)
class CustomerViewSet(
    APIViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Customers, newest first. Erasing one is a separate, logged personal-data request."""

    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    ordering_fields = ["created_at", "id"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return Customer.objects.visible_to(self.request.user).prefetch_related(
            Prefetch("tags", queryset=Tag.objects.order_by("name"))
        )


# --- Products --------------------------------------------------------------------------------


class ProductSerializer(APIModelSerializer):
    class Meta:
        model = Product
        fields = ["id", "sku", "name", "category", "price"]
        extra_kwargs = {
            "sku": {
                "validators": [
                    UniqueValidator(
                        queryset=Product.objects.all(),
                        message=_("Another product already has this SKU."),
                    ),
                ]
            }
        }

    def save(self, **kwargs):
        try:
            with transaction.atomic():
                return super().save(**kwargs)
        except IntegrityError as error:  # another request took the SKU meanwhile
            raise Conflict({"sku": [_("Another product already has this SKU.")]}) from error


class ProductFilter(django_filters.FilterSet):
    class Meta:
        model = Product
        fields = ["sku", "category"]


@extend_schema_view(
    **_writes_404_409(ProductSerializer),
    destroy=extend_schema(responses={204: None, 409: ConflictResponseSerializer}),
)
class ProductViewSet(APIViewSetMixin, viewsets.ModelViewSet):
    """The product catalogue. A product that appears on a purchase cannot be deleted."""

    queryset = Product.objects.all()
    serializer_class = ProductSerializer
    filterset_class = ProductFilter
    ordering_fields = ["sku", "name", "id"]
    ordering = ["sku", "id"]

    def perform_destroy(self, instance: Product) -> None:
        try:
            instance.delete()
        except ProtectedError as error:
            raise Conflict(
                _("This product appears on purchases and cannot be deleted."), code="protected"
            ) from error


# --- Purchases -------------------------------------------------------------------------------


class PurchaseItemSerializer(APIModelSerializer):
    sku = SlugRelatedField(
        source="product",
        slug_field="sku",
        queryset=Product.objects.all(),
        label=_("SKU"),
        error_messages={"does_not_exist": _("No product has the SKU {value}.")},
    )
    name = serializers.CharField(source="product.name", read_only=True)

    class Meta:
        model = PurchaseItem
        fields = ["sku", "name", "quantity", "unit_price"]
        extra_kwargs = {"quantity": {"min_value": 1}}


class PurchaseSerializer(APIModelSerializer):
    customer = VisibleToUserField(queryset=Customer.objects, label=_("customer"))
    customer_external_id = serializers.CharField(source="customer.external_id", read_only=True)
    channel = EnumField(PurchaseChannel, required=False, allow_blank=True, label=_("channel"))
    status = EnumField(PurchaseStatus, required=False, label=_("status"))
    items = PurchaseItemSerializer(
        many=True,
        required=False,
        max_length=MAX_ITEMS_PER_PURCHASE,
        help_text=_(
            "The purchase's lines; on update they replace the current ones. A SKU listed "
            "twice counts once, with its last line (as in the CSV import)."
        ),
    )

    class Meta:
        model = Purchase
        fields = [
            "id",
            "order_id",
            "customer",
            "customer_external_id",
            "purchased_at",
            "channel",
            "status",
            "total",
            "items",
        ]
        extra_kwargs = {
            "order_id": {
                "validators": [
                    UniqueValidator(
                        queryset=Purchase.objects.all(),
                        message=_("Another purchase already has this order ID."),
                    ),
                ]
            }
        }

    @transaction.atomic
    def create(self, validated_data: dict) -> Purchase:
        items = validated_data.pop("items", [])
        purchase = self._save(Purchase(), validated_data)
        self._replace_items(purchase, items)
        return purchase

    @transaction.atomic
    def update(self, instance: Purchase, validated_data: dict) -> Purchase:
        items = validated_data.pop("items", None)
        purchase = self._save(instance, validated_data)
        if items is not None:
            self._replace_items(purchase, items)
        return purchase

    @staticmethod
    def _save(purchase: Purchase, data: dict) -> Purchase:
        for field, value in data.items():
            setattr(purchase, field, value)
        try:
            with transaction.atomic():
                purchase.save()
        except IntegrityError as error:  # another request took the order ID meanwhile
            raise Conflict(
                {"order_id": [_("Another purchase already has this order ID.")]}
            ) from error
        return purchase

    @staticmethod
    def _replace_items(purchase: Purchase, items: list[dict]) -> None:
        lines = {item["product"].pk: item for item in items}  # one line per product
        purchase.items.all().delete()
        PurchaseItem.objects.bulk_create(
            PurchaseItem(purchase=purchase, **item) for item in lines.values()
        )


class PurchaseFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer")
    customer_external_id = django_filters.CharFilter(field_name="customer__external_id")
    purchased_after = DateTimeFilter(field_name="purchased_at", lookup_expr="gte")
    purchased_before = DateTimeFilter(field_name="purchased_at", lookup_expr="lt")

    class Meta:
        model = Purchase
        fields = ["customer", "customer_external_id", "status", "channel"]


class DateOrDateTimeField(serializers.Field):
    """An ISO 8601 date (midnight in the organisation's time zone) or date-time."""

    default_error_messages = {
        "invalid": _("Enter an ISO 8601 date (YYYY-MM-DD) or date-time."),
        "out_of_range": _("Enter a date from 0001-01-03 to 9999-12-29."),
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if data.startswith(_EDGE_DAYS):
            self.fail("out_of_range")
        field = serializers.DateField() if len(data) == 10 else DateTimeField()
        try:
            return field.run_validation(data)
        except serializers.ValidationError:
            self.fail("invalid")


class DateOrDateTimeFieldExtension(OpenApiSerializerFieldExtension):
    target_class = DateOrDateTimeField

    def map_serializer_field(self, auto_schema, direction):
        return {
            "oneOf": [
                {"type": "string", "format": "date", "pattern": REPRESENTABLE_DATE_PATTERN},
                {"type": "string", "format": "date-time", "pattern": REPRESENTABLE_DATE_PATTERN},
            ]
        }


class BulkItemSerializer(serializers.Serializer):
    sku = TextField(max_length=64)
    quantity = IntegerField(min_value=1, max_value=MAX_INT, required=False)
    unit_price = AmountField(max_digits=12, decimal_places=2)


class BulkPurchaseSerializer(serializers.Serializer):
    order_id = TextField(max_length=64)
    customer_external_id = TextField(max_length=64)
    purchased_at = DateOrDateTimeField(
        help_text=_(
            "ISO 8601 date-time, or a date alone for midnight in the organisation's time zone."
        )
    )
    total = AmountField(max_digits=14, decimal_places=2)
    status = EnumField(PurchaseStatus, required=False)
    channel = EnumField(PurchaseChannel, required=False, allow_blank=True)
    items = BulkItemSerializer(many=True, required=False, max_length=MAX_ITEMS_PER_PURCHASE)


class _Unusual(Exception):
    """Input the fast path leaves to the serializer, which says exactly what is wrong."""


_PLAIN_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2}))?"
)
_CENT = Decimal("0.01")
_PURCHASE_STATUSES = frozenset(PurchaseStatus.values)
_PURCHASE_CHANNELS = frozenset([*PurchaseChannel.values, ""])


def _plain_identifier(value) -> str:
    if (
        type(value) is not str
        or not 0 < len(value) <= 64
        or value != value.strip()
        or _NUL_OR_SURROGATE.search(value)
    ):
        raise _Unusual
    return value


def _plain_amount(value, whole_digits: int) -> Decimal:
    if type(value) is int and 0 <= value < 10**whole_digits:
        return Decimal(value).quantize(_CENT)
    if type(value) is str and re.fullmatch(_AMOUNT_STRING % whole_digits, value):
        return Decimal(value).quantize(_CENT)
    raise _Unusual


def _plain_moment(value) -> date | datetime:
    if type(value) is not str or not _PLAIN_DATE_TIME.fullmatch(value):
        raise _Unusual
    if value.startswith(_EDGE_DAYS):
        raise _Unusual
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        raise _Unusual from None


def _plain_choice(row: dict, name: str, choices: frozenset, into: dict) -> None:
    if name in row:
        value = row[name]
        if type(value) is not str or value not in choices:
            raise _Unusual
        into[name] = value


def _plain_purchase(row) -> dict:
    if type(row) is not dict:
        raise _Unusual
    purchase = {
        "order_id": _plain_identifier(row.get("order_id")),
        "customer_external_id": _plain_identifier(row.get("customer_external_id")),
        "purchased_at": _plain_moment(row.get("purchased_at")),
        "total": _plain_amount(row.get("total"), 12),
    }
    _plain_choice(row, "status", _PURCHASE_STATUSES, purchase)
    _plain_choice(row, "channel", _PURCHASE_CHANNELS, purchase)
    if "items" in row:
        items = row["items"]
        if type(items) is not list or len(items) > MAX_ITEMS_PER_PURCHASE:
            raise _Unusual
        purchase["items"] = [_plain_item(item) for item in items]
    return purchase


def _plain_item(row) -> dict:
    if type(row) is not dict:
        raise _Unusual
    item = {
        "sku": _plain_identifier(row.get("sku")),
        "unit_price": _plain_amount(row.get("unit_price"), 10),
    }
    if "quantity" in row:
        quantity = row["quantity"]
        if type(quantity) is not int or not 1 <= quantity <= MAX_INT:
            raise _Unusual
        item["quantity"] = quantity
    return item


class BulkRequestSerializer(serializers.Serializer):
    """Up to 10,000 purchases to create or update by order ID."""

    keep_valid_rows = BooleanField(
        default=False,
        help_text=_(
            "Write the purchases that can be written even if others cannot (unknown "
            "customers); by default nothing is written then."
        ),
    )
    purchases = BulkPurchaseSerializer(
        many=True, allow_empty=False, min_length=1, max_length=MAX_BULK_PURCHASES
    )

    def to_internal_value(self, data):
        # DRF validates 10,000 purchases with their items in 2-3 s, most of the request's
        # time. Plain, well-formed input (what integrations send) is checked here in a
        # fraction of that and gives the same values; anything else goes through the fields,
        # which then name every problem.
        try:
            return self._plain(data)
        except _Unusual:
            return super().to_internal_value(data)

    @staticmethod
    def _plain(data) -> dict:
        if type(data) is not dict:
            raise _Unusual
        keep_valid_rows = data.get("keep_valid_rows", False)
        purchases = data.get("purchases")
        if (
            type(keep_valid_rows) is not bool
            or type(purchases) is not list
            or not 1 <= len(purchases) <= MAX_BULK_PURCHASES
        ):
            raise _Unusual
        return {
            "keep_valid_rows": keep_valid_rows,
            "purchases": [_plain_purchase(row) for row in purchases],
        }


class BulkRowErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text=_("Position of the purchase in the request."))
    field = serializers.CharField(help_text=_('e.g. "customer_external_id" or "items.0.sku".'))
    reason = serializers.CharField()


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    committed = serializers.BooleanField()
    products_created = serializers.IntegerField()
    error_count = serializers.IntegerField(help_text=_("Purchase rows with an error."))
    errors = BulkRowErrorSerializer(many=True, help_text=_("The first 1,000 errors."))


class BulkValidationErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    attr = serializers.CharField(
        allow_null=True, help_text=_('Where, e.g. "purchases.3.purchased_at".')
    )


class BulkValidationResponseSerializer(serializers.Serializer):
    type = serializers.CharField(
        help_text=_('"validation_error", or "client_error" for a parse error.')
    )
    errors = BulkValidationErrorSerializer(many=True)


def _import_rows(purchases: list[dict]) -> tuple[list[tuple[int, dict]], list[tuple]]:
    """The purchases as the import's rows (one per item, as in a CSV file) and, for each row,
    the purchase and item it came from."""
    rows, origins = [], []
    for index, purchase in enumerate(purchases):
        at = purchase["purchased_at"]
        head = {
            "order_id": purchase["order_id"],
            "customer_external_id": purchase["customer_external_id"],
            "purchased_at": at.isoformat(),
            "total": f"{purchase['total']:f}",
            "status": purchase.get("status", ""),
            "channel": purchase.get("channel", ""),
            "sku": "",
            "quantity": "",
            "unit_price": "",
        }
        for item_index, item in enumerate(purchase.get("items") or [None]):
            row = dict(head)
            if item is not None:
                row.update(
                    sku=item["sku"],
                    quantity=str(item.get("quantity", 1)),
                    unit_price=f"{item['unit_price']:f}",
                )
            origins.append((index, item_index if item is not None else None))
            rows.append((len(rows), row))
    return rows, origins


_ITEM_COLUMNS = {"sku", "quantity", "unit_price"}


def _row_errors(errors: list[RowError], origins: list[tuple]) -> list[dict]:
    """The import's row errors by purchase (``index``) and field, each once."""
    found: dict[tuple, dict] = {}
    for error in errors:
        index, item_index = origins[error.line]
        field = error.column or "non_field_errors"
        if field in _ITEM_COLUMNS and item_index is not None:
            field = f"items.{item_index}.{field}"
        found.setdefault(
            (index, field, error.reason), {"index": index, "field": field, "reason": error.reason}
        )
    return list(found.values())


@extend_schema_view(**_writes_404_409(PurchaseSerializer))
class PurchaseViewSet(
    APIViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Purchases with their items, newest first."""

    serializer_class = PurchaseSerializer
    filterset_class = PurchaseFilter
    ordering_fields = ["purchased_at", "id"]
    ordering = ["-purchased_at", "-id"]
    required_permissions = None  # model permissions, except where an action declares its own

    def get_queryset(self):
        return Purchase.objects.select_related("customer").prefetch_related(
            Prefetch("items", queryset=PurchaseItem.objects.select_related("product"))
        )

    @extend_schema(
        request=BulkRequestSerializer,
        responses={
            200: BulkResultSerializer,
            400: BulkValidationResponseSerializer,
            404: ErrorResponse404Serializer,
        },
        summary="Create or update purchases by order ID",
        description=(
            "Upserts up to 10,000 purchases with their items by order_id, as the CSV import "
            "does: a purchase's fields are replaced, its items added or updated by SKU, and an "
            "unknown SKU creates a product. A request that does not follow this schema is "
            'refused whole with a 400 naming the field, e.g. "purchases.3.purchased_at". '
            "A purchase of an unknown customer cannot be written: by default nothing is "
            'written and the answer is a 404 naming them ("purchases.3.customer_external_id"); '
            "with keep_valid_rows the others are written and the answer lists the errors."
        ),
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="bulk",
        required_permissions=("customers.add_purchase", "customers.change_purchase"),
        filter_backends=[],
        pagination_class=None,
    )
    def bulk(self, request):
        serializer = BulkRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rows, origins = _import_rows(serializer.validated_data["purchases"])
        result = import_purchases(
            rows,
            keep_valid_rows=serializer.validated_data["keep_valid_rows"],
            user=request.user,
            source="api",
        )
        errors = _row_errors(result.errors, origins)
        if not result.committed:
            detail = {}
            for error in errors:
                detail.setdefault(f"purchases.{error['index']}.{error['field']}", []).append(
                    ErrorDetail(error["reason"], code="invalid")
                )
            raise _refusal_of_rows(detail)
        return Response(
            BulkResultSerializer(
                {
                    "created": result.created,
                    "updated": result.updated,
                    "committed": result.committed,
                    "products_created": result.products_created,
                    "error_count": result.error_count,
                    "errors": errors,
                }
            ).data
        )


def _refusal_of_rows(detail: dict) -> exceptions.APIException:
    """Rows refused only for unknown customers: a 404 (the request was well formed); any
    other row error: a 400."""
    if detail and all(attr.endswith(".customer_external_id") for attr in detail):
        return exceptions.NotFound(_recoded(detail, "not_found"))
    return serializers.ValidationError(detail or {"purchases": [_("Nothing was written.")]})


# --- Support tickets -------------------------------------------------------------------------


class TicketReplySerializer(APIModelSerializer):
    class Meta:
        model = TicketReply
        fields = ["id", "author", "body", "internal", "created_at"]
        read_only_fields = ["author", "created_at"]


class SupportTicketSerializer(APIModelSerializer):
    customer = VisibleToUserField(queryset=Customer.objects, label=_("customer"))
    assignee = ActiveUserField(required=False, allow_null=True, label=_("assignee"))
    channel = EnumField(ContactChannel, required=False, label=_("channel"))
    status = EnumField(
        TicketStatus,
        required=False,
        label=_("status"),
        help_text=_(
            "open → pending → resolved → closed; pending can go back to open, "
            "resolved and closed tickets can be reopened. Another change is a 409."
        ),
    )
    is_overdue = serializers.BooleanField(read_only=True)
    replies = TicketReplySerializer(many=True, read_only=True)

    class Meta:
        model = SupportTicket
        fields = [
            "id",
            "customer",
            "opened_at",
            "channel",
            "subject",
            "body",
            "status",
            "priority",
            "assignee",
            "due_at",
            "resolved_at",
            "is_overdue",
            "replies",
        ]
        read_only_fields = ["resolved_at"]

    @transaction.atomic
    def update(self, instance: SupportTicket, validated_data: dict) -> SupportTicket:
        by = self.context["request"].user
        new_status = validated_data.pop("status", instance.status)
        for field, value in validated_data.items():
            setattr(instance, field, value)
        instance._history_user = by
        instance.save()
        if new_status != instance.status:
            try:
                instance = change_ticket_status(ticket=instance, status=new_status, by=by)
            except TransitionNotAllowed as error:
                raise Conflict({"status": [str(error)]}, code="transition_not_allowed") from error
        return instance


class SupportTicketCreateSerializer(SupportTicketSerializer):
    """A new ticket is open; its status then changes through updates."""

    status = EnumField(TicketStatus, read_only=True, label=_("status"))

    def create(self, validated_data: dict) -> SupportTicket:
        opened_at = validated_data.pop("opened_at", None)
        ticket = open_ticket(by=self.context["request"].user, **validated_data)
        if opened_at is not None:  # an inquiry recorded after the fact
            ticket.opened_at = opened_at
            if "due_at" not in validated_data:
                ticket.due_at = None  # counted from the opening again (SupportTicket.save)
            ticket.save(update_fields=["opened_at", "due_at"])
        return ticket


class SupportTicketFilter(django_filters.FilterSet):
    assignee = IdFilter(field_name="assignee")
    customer = IdFilter(field_name="customer")
    overdue = BooleanFilter(method="filter_overdue", label=_("Overdue (open or pending, past due)"))

    class Meta:
        model = SupportTicket
        fields = ["status", "priority", "assignee", "customer", "overdue"]

    def filter_overdue(self, queryset, name, value: bool):
        overdue = SupportTicket.objects.overdue().values("pk")
        return queryset.filter(pk__in=overdue) if value else queryset.exclude(pk__in=overdue)


@extend_schema_view(
    **{
        **_writes_404_409(SupportTicketSerializer),
        "create": extend_schema(
            request=SupportTicketCreateSerializer,
            responses={201: SupportTicketSerializer, 404: ErrorResponse404Serializer},
        ),
    }
)
class SupportTicketViewSet(
    APIViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Support tickets (inquiries) with their replies and internal notes, newest first."""

    filterset_class = SupportTicketFilter
    ordering_fields = ["opened_at", "due_at", "id"]
    ordering = ["-opened_at", "-id"]
    required_permissions = None  # model permissions, except where an action declares its own

    def get_queryset(self):
        return SupportTicket.objects.visible_to(self.request.user).prefetch_related("replies")

    def get_serializer_class(self):
        if self.action == "create":
            return SupportTicketCreateSerializer
        if self.action == "replies":
            return TicketReplySerializer
        return SupportTicketSerializer

    @extend_schema(
        request=TicketReplySerializer,
        responses={201: TicketReplySerializer},
        summary="Reply to a ticket, or add an internal note",
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="replies",
        required_permissions=("customers.add_ticketreply", "customers.view_supportticket"),
        filter_backends=[],
        pagination_class=None,
    )
    def replies(self, request, pk=None):
        """A reply to the customer, or with internal=true a note for colleagues only; the
        author is the caller."""
        ticket = self.get_object()
        serializer = TicketReplySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reply = add_ticket_reply(ticket=ticket, by=request.user, **serializer.validated_data)
        return Response(TicketReplySerializer(reply).data, status=status.HTTP_201_CREATED)


# --- Interactions ----------------------------------------------------------------------------


class InteractionSerializer(APIModelSerializer):
    customer = VisibleToUserField(queryset=Customer.objects, label=_("customer"))

    class Meta:
        model = Interaction
        fields = ["id", "customer", "kind", "occurred_at", "user", "summary"]
        read_only_fields = ["user"]

    def create(self, validated_data: dict) -> Interaction:
        return log_interaction(by=self.context["request"].user, **validated_data)


class InteractionFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer")
    user = IdFilter(field_name="user")
    occurred_after = DateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = DateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = Interaction
        fields = ["customer", "kind", "user"]


@extend_schema_view(
    create=extend_schema(responses={201: InteractionSerializer, 404: ErrorResponse404Serializer})
)
class InteractionViewSet(
    APIViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Calls, visits, meetings, e-mails and notes with customers, newest first; the one who
    records an interaction is its user."""

    queryset = Interaction.objects.all()
    serializer_class = InteractionSerializer
    filterset_class = InteractionFilter
    ordering_fields = ["occurred_at", "id"]
    ordering = ["-occurred_at", "-id"]
