"""Fields of the campaigns API that the customers API's fields do not cover: decimals sent
as JSON numbers (rates as fractions, the win-back gap multiplier) and the schedule's
date-time, which keeps a missing offset for the user's time zone to resolve."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from customers.api.fields import REPRESENTABLE_DATE_PATTERN, DateTimeField


class NumberField(serializers.Field):
    """A JSON number from ``minimum`` to ``maximum`` stored as a decimal: any number in range
    is accepted and rounded to ``places`` decimals (a client computing 0.1 + 0.2 should not
    get a 400), and it is answered as a number."""

    default_error_messages = {
        "invalid": _("A number is required."),
        "range": _("Enter a number from {minimum} to {maximum}."),
    }

    def __init__(self, *, minimum: int, maximum: int, places: int, **kwargs):
        self.minimum, self.maximum = minimum, maximum
        self.quantum = Decimal(1).scaleb(-places)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if not self.minimum <= data <= self.maximum:
            self.fail("range", minimum=self.minimum, maximum=self.maximum)
        return Decimal(repr(data)).quantize(self.quantum, rounding=ROUND_HALF_UP)

    def to_representation(self, value):
        return float(value)


class NumberFieldExtension(OpenApiSerializerFieldExtension):
    target_class = NumberField

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        return {"type": "number", "minimum": field.minimum, "maximum": field.maximum}


def rate_field(**kwargs) -> NumberField:
    """A goal rate as a fraction (0.25 for 25%), four decimals kept, as the model stores it."""
    return NumberField(minimum=0, maximum=1, places=4, required=False, allow_null=True, **kwargs)


@extend_schema_field(
    {"type": "string", "format": "date-time", "pattern": REPRESENTABLE_DATE_PATTERN}
)
class LocalDateTimeField(DateTimeField):
    """An ISO 8601 date-time; without an offset it is left naive, for the function it is
    handed to to read in the user's time zone."""

    def enforce_timezone(self, value):
        return value if value.tzinfo is None else super().enforce_timezone(value)
