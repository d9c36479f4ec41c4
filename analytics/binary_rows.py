"""A queryset's rows read with PostgreSQL's binary COPY instead of a SELECT.

The filtered dashboard reads tens of megabytes of per-customer arrays (bytea columns) per
request. Through a SELECT, PostgreSQL encodes every byte as two hex digits and psycopg2
decodes them again: about half of the read's time. ``COPY (query) TO STDOUT (FORMAT binary)``
sends the bytes as they are (the same query, the same rows), and the blobs are handed out as
views of the received messages, without a copy.

Only the column types the rollups' readers need are decoded: binary, text, boolean, date,
integers, decimals and JSON (jsonb). NULL is None. On another database than PostgreSQL (the
embedded SQLite of ``make run``) the same rows come from a plain SELECT.
"""

from __future__ import annotations

import json
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
    # jsonb: a format version byte (1), then the JSON text.
    "JSONField": lambda value: json.loads(bytes(value[1:])),
    "IntegerField": _integer,
    "PositiveIntegerField": _integer,
    "PositiveSmallIntegerField": _integer,
    "SmallIntegerField": _integer,
    "BigIntegerField": _integer,
    "AutoField": _integer,
    "BigAutoField": _integer,
}


class _Chunks:
    """What psycopg2's ``copy_expert`` writes: PostgreSQL sends a message per row, kept as
    received. Appending them to one growing buffer (``io.BytesIO``) copied the megabytes
    again at every enlargement, holding the GIL the dashboard's other threads wait for."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)


class _Stream:
    """The received messages read as one stream: views into a message where a read lies
    inside it (a row's fields always do, as PostgreSQL sends them), a joined copy else."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = [memoryview(part) for part in parts if part]
        self.index = 0
        self.position = 0

    def read(self, size: int) -> memoryview:
        while self.index < len(self.parts) and self.position == len(self.parts[self.index]):
            self.index, self.position = self.index + 1, 0
        if self.index == len(self.parts):
            raise ValueError("the COPY stream ended early")
        part = self.parts[self.index]
        if self.position + size <= len(part):
            self.position += size
            return part[self.position - size : self.position]
        pieces, wanted = [], size
        while wanted:
            part = self.parts[self.index]
            taken = part[self.position : self.position + wanted]
            pieces.append(taken)
            wanted -= len(taken)
            self.position += len(taken)
            if wanted:
                self.index, self.position = self.index + 1, 0
                if self.index == len(self.parts):
                    raise ValueError("the COPY stream ended early")
        return memoryview(b"".join(pieces))

    def integer(self, size: int) -> int:
        return int.from_bytes(self.read(size), "big", signed=True)


def _received(queryset: QuerySet, fields: tuple[str, ...], wrap: str = "") -> _Stream | None:
    """The COPY stream of ``queryset.values_list(*fields)`` (or of ``wrap`` formatted with
    its statement as ``query``), past the header; None when Django knows there is no row (an
    empty ``__in`` list)."""
    try:
        sql, params = queryset.values_list(*fields).query.sql_with_params()
    except EmptyResultSet:
        return None
    received = _Chunks()
    with connection.cursor() as cursor:
        # COPY takes no parameters: psycopg2 quotes them into the statement.
        query = cursor.mogrify(sql, params).decode()
        if wrap:
            query = wrap.format(query=query)
        cursor.copy_expert(f"COPY ({query}) TO STDOUT (FORMAT binary)", received)
    stream = _Stream(received.parts)
    if bytes(stream.read(len(HEADER))) != HEADER:
        raise ValueError("not a binary COPY stream")
    # Header: signature, flags (int32), header extension length (int32) and the extension.
    stream.integer(4)
    stream.read(stream.integer(4))
    return stream


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
    stream = _received(queryset, fields)
    if stream is None:
        return
    while True:
        count = stream.integer(2)
        if count == -1:  # the trailer
            return
        row = []
        for decode in decoders:
            length = stream.integer(4)
            row.append(None if length == -1 else decode(stream.read(length)))
        yield tuple(row)


def integer_column(queryset: QuerySet, field: str) -> np.ndarray:
    """The values of one integer column without NULLs (a segment's member ids, say) as an
    int64 array, in no particular order. On PostgreSQL they come as one array value
    (``array_agg``): a COPY row per value would cost a Python call per value on receipt."""
    if not _copy_available(queryset):
        return np.array(queryset.values_list(field, flat=True), dtype=np.int64)
    # The statement is Django's, its parameters quoted by psycopg2 (COPY takes none).
    stream = _received(
        queryset,
        (field,),
        wrap="SELECT array_agg(v) FROM ({query}) AS q(v)",
    )
    if stream is None or stream.integer(2) == -1:  # no row at all
        return np.zeros(0, dtype=np.int64)
    # One row, one field: its length (-1: NULL, no values), then the array: dimensions,
    # flags, element type, per dimension its size and lower bound, then each element's
    # length and value.
    length = stream.integer(4)
    if length == -1:
        return np.zeros(0, dtype=np.int64)
    array = stream.read(length)
    dimensions, _flags, _type = struct.unpack_from("!iii", array)
    if dimensions == 0:
        return np.zeros(0, dtype=np.int64)
    size, _lower = struct.unpack_from("!ii", array, 12)
    (width,) = struct.unpack_from("!i", array, 20)  # every element has the same length
    layout = np.dtype([("length", ">i4"), ("value", f">i{width}")])
    return np.frombuffer(array, dtype=layout, count=size, offset=20)["value"].astype(np.int64)
