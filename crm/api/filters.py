"""Filters shared by the API's filter sets."""

from datetime import UTC, datetime

import django_filters


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
