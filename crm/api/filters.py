"""Filters shared by the API's filter sets."""

from datetime import UTC, datetime

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field

# The largest id a bigint primary key can hold: larger ids are a 400, not a database error.
MAX_ID = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """A record's id (a whole number); an id that matches nothing gives an empty list."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=1, max_value=MAX_ID, **kwargs)


extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})(IdFilter)


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time filter that compares in UTC.

    Any offset ISO 8601 allows (up to ±23:59) is accepted; PostgreSQL only takes ±15:59, so
    the value is converted to UTC before it reaches the database. An instant that falls
    before year 1 or after year 9999 in UTC is simply earlier or later than every row.
    """

    def filter(self, qs, value):
        if value is not None:
            try:
                value = value.astimezone(UTC)
            except OverflowError:
                edge = datetime.min if value.year == 1 else datetime.max
                value = edge.replace(tzinfo=UTC)
        return super().filter(qs, value)
