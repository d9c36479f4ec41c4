"""How the rollups' binary columns are stored by PostgreSQL (used by migrations).

A filtered dashboard reads tens of megabytes of per-customer arrays, and PostgreSQL
decompresses each value before sending it: a year of timing cells took ~80 ms with its
default pglz and ~30 ms with LZ4 (~47 ms stored uncompressed, which reads half as much
again). LZ4 needs a PostgreSQL built with it (the official packages and images are); without
it the columns keep pglz and every figure is the same, only slower to read.
"""

from __future__ import annotations


def lz4_available(cursor) -> bool:
    cursor.execute(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )
    row = cursor.fetchone()
    return bool(row and row[0])


def compress_with_lz4(schema_editor, blobs: dict[str, tuple[str, ...]]) -> None:
    """Have ``blobs`` ({table: columns}) compressed with LZ4, the values already stored
    included (``col || ''`` detoasts a value, so it is compressed again when written)."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    with connection.cursor() as cursor:
        if not lz4_available(cursor):
            return
        for table, columns in blobs.items():
            # Table and column names come from the migrations, quoted: no user input.
            names = [quote(c) for c in columns]
            cursor.execute(
                f"ALTER TABLE {quote(table)} "
                + ", ".join(f"ALTER COLUMN {c} SET COMPRESSION lz4" for c in names)
            )
            assignments = ", ".join(f"{c} = {c} || ''::bytea" for c in names)
            cursor.execute(f"UPDATE {quote(table)} SET {assignments}")  # noqa: S608
