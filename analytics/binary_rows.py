"""A queryset's rows read with PostgreSQL's binary COPY instead of a SELECT.

The filtered dashboard reads tens of megabytes of per-customer arrays (bytea columns) per
request. Through a SELECT, PostgreSQL encodes every byte as two hex digits and psycopg2
decodes them again: about half of the read's time. ``COPY (query) TO STDOUT (FORMAT binary)``
sends the bytes as they are (the same query, the same rows), and the blobs are handed out as
views of the received buffer, without a copy.

Only the column types the rollups' readers need are decoded: binary, text, boolean, date,
integers and decimals. NULL is None. On another database than PostgreSQL (the embedded
SQLite of ``make run``) the same rows come from a plain SELECT.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal

import numpy as np
from django.core.exceptions import EmptyResultSet
from django.db import connection, connections
from django.db.models import QuerySet

HEADER = b"PGCOPY\n\xff\r\n\x00"
# PostgreSQL's dates count days from 2000-01-01.
EPOCH = date(2000, 1, 1).toordinal()
_INTEGERS = {2: "!h", 4: "!i", 8: "!q"}


def _integer(value: memoryview) -> int:
    return struct.unpack(_INTEGERS[len(value)], value)[0]


def _numeric(value: memoryview) -> Decimal:
    """PostgreSQL's binary numeric: digit count, weight (of the first digit, in powers of
    10000), sign, display scale, then the base-10000 digits."""
    count, weight, sign, scale = struct.unpack_from("!hhHh", value)
    if sign == 0xC000:
        return Decimal("NaN")
    digits = struct.unpack_from(f"!{count}h", value, 8)
    # The digits as one integer, then shifted to its place: exact, whatever the size.
    whole = 0
    for digit in digits:
        whole = whole * 10000 + digit
    number = Decimal(whole).scaleb(4 * (weight - count + 1))
    if sign == 0x4000:
        number = -number
    return number.quantize(Decimal(1).scaleb(-scale))


DECODERS: dict[str, Callable[[memoryview], object]] = {
    "DecimalField": _numeric,
    "BinaryField": lambda value: value,
    "CharField": lambda value: bytes(value).decode(),
    "TextField": lambda value: bytes(value).decode(),
    "BooleanField": lambda value: value[0] != 0,
    "DateField": lambda value: date.fromordinal(EPOCH + _integer(value)),
    "IntegerField": _integer,
    "PositiveIntegerField": _integer,
    "PositiveSmallIntegerField": _integer,
    "SmallIntegerField": _integer,
    "BigIntegerField": _integer,
    "AutoField": _integer,
    "BigAutoField": _integer,
}


def _received(queryset: QuerySet, fields: tuple[str, ...]) -> tuple[memoryview, int] | None:
    """The COPY stream of ``queryset.values_list(*fields)`` and where its first row starts;
    None when Django knows there is no row (an empty ``__in`` list)."""
    try:
        sql, params = queryset.values_list(*fields).query.sql_with_params()
    except EmptyResultSet:
        return None
    received = io.BytesIO()
    with connection.cursor() as cursor:
        # COPY takes no parameters: psycopg2 quotes them into the statement.
        query = cursor.mogrify(sql, params).decode()
        cursor.copy_expert(f"COPY ({query}) TO STDOUT (FORMAT binary)", received)
    data = received.getbuffer()
    if bytes(data[: len(HEADER)]) != HEADER:
        raise ValueError("not a binary COPY stream")
    # Header: signature, flags (int32), header extension length (int32) and the extension.
    position = len(HEADER) + 4
    return data, position + 4 + struct.unpack_from("!i", data, position)[0]


def _copy_available(queryset: QuerySet) -> bool:
    """COPY is PostgreSQL's: on another database (the embedded SQLite of ``make run``) the
    readers get the same rows from a plain SELECT."""
    return connections[queryset.db].vendor == "postgresql"


def binary_rows(queryset: QuerySet, *fields: str) -> Iterator[tuple]:
    """The rows of ``queryset.values_list(*fields)`` (plain model fields only), as tuples."""
    if not _copy_available(queryset):
        yield from queryset.values_list(*fields)
        return
    meta = queryset.model._meta
    decoders = [DECODERS[meta.get_field(name).get_internal_type()] for name in fields]
    received = _received(queryset, fields)
    if received is None:
        return
    data, position = received
    unpack_count, unpack_length = struct.Struct("!h").unpack_from, struct.Struct("!i").unpack_from
    while True:
        (count,) = unpack_count(data, position)
        position += 2
        if count == -1:  # the trailer
            return
        row = []
        for decode in decoders:
            (length,) = unpack_length(data, position)
            position += 4
            if length == -1:
                row.append(None)
                continue
            row.append(decode(data[position : position + length]))
            position += length
        yield tuple(row)


def integer_column(queryset: QuerySet, field: str) -> np.ndarray:
    """The values of one integer column without NULLs (a segment's member ids, say) as an
    int64 array, in no particular order. On PostgreSQL they come as one array value
    (``array_agg``): a COPY row per value would cost a Python call per value on receipt."""
    if not _copy_available(queryset):
        return np.array(queryset.values_list(field, flat=True), dtype=np.int64)
    try:
        sql, params = queryset.values_list(field).query.sql_with_params()
    except EmptyResultSet:
        return np.zeros(0, dtype=np.int64)
    received = io.BytesIO()
    with connection.cursor() as cursor:
        # The statement is Django's, its parameters quoted by psycopg2 (COPY takes none).
        query = cursor.mogrify(sql, params).decode()
        aggregated = f"SELECT array_agg(v) FROM ({query}) AS q(v)"  # noqa: S608
        cursor.copy_expert(f"COPY ({aggregated}) TO STDOUT (FORMAT binary)", received)
    data = received.getbuffer()
    # Header (signature, flags, extension length), then the one row: field count, length
    # (-1: NULL, no rows) and the array: dimensions, flags, element type, per dimension its
    # size and lower bound, then each element's length and value.
    position = len(HEADER) + 8 + struct.unpack_from("!i", data, len(HEADER) + 4)[0]
    _fields, length = struct.unpack_from("!hi", data, position)
    if length == -1:
        return np.zeros(0, dtype=np.int64)
    dimensions, _flags, _type = struct.unpack_from("!iii", data, position + 6)
    if dimensions == 0:
        return np.zeros(0, dtype=np.int64)
    size, _lower = struct.unpack_from("!ii", data, position + 18)
    start = position + 26
    (width,) = struct.unpack_from("!i", data, start)  # every element has the same length
    layout = np.dtype([("length", ">i4"), ("value", f">i{width}")])
    return np.frombuffer(data, dtype=layout, count=size, offset=start)["value"].astype(np.int64)
