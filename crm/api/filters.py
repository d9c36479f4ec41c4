"""Filters shared by the API's filter sets."""

from datetime import UTC

import django_filters


class DateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time filter that compares in UTC.

    Any offset ISO 8601 allows (up to ±23:59) is accepted; PostgreSQL only takes ±15:59, so
    the value is converted to UTC before it reaches the database.
    """

    def filter(self, qs, value):
        if value is not None:
            value = value.astimezone(UTC)
        return super().filter(qs, value)
