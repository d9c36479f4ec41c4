"""Reading CSV files as people actually save them: UTF-8 with or without a BOM, or Shift_JIS
(cp932, what Japanese Excel writes), one row at a time so a file of any size streams.

``read_csv`` yields ``(line, row)``: ``line`` is the physical line number in the file (the
header is line 1; a quoted value spanning lines counts every line), ``row`` maps the trimmed,
lower-case column names to the values as written. Problems with the file as a whole (no
header, a duplicated column, bytes that are neither UTF-8 nor Shift_JIS) raise
``ImportFileError``; problems with one row are left to the importer, which reports them by
line. A line whose number of values differs from the header's is yielded as
``{None: (values, columns)}`` so the importer can report it as a row error.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
import unicodedata
from collections.abc import Iterator
from typing import BinaryIO

from django.utils.translation import gettext as _

# Enough to see the first non-ASCII text of almost any file; an all-ASCII start is UTF-8
# (ASCII reads the same in both encodings), so the sniffing never holds the whole file.
_SNIFF_CHUNK = 64 * 1024
_SNIFF_LIMIT = 1024 * 1024
_READ_BUFFER = 1024 * 1024

ENCODING_NAMES = {"utf-8-sig": "UTF-8", "utf-8": "UTF-8", "cp932": "Shift_JIS"}

# Addresses and notes can be long; the csv module's default limit is 128 KiB per value.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class ImportFileError(ValueError):
    """The file cannot be imported at all; the message says why, for the person who sent it."""

    def __init__(self, message: str, *, line: int | None = None):
        super().__init__(message)
        self.line = line


class _Prefixed(io.RawIOBase):
    """The bytes already read for sniffing, then the rest of the file (which may not seek)."""

    def __init__(self, prefix: bytes, rest: BinaryIO):
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            size = min(len(buffer), len(self._prefix))
            buffer[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def detect_encoding(file: BinaryIO) -> tuple[str, bytes]:
    """(encoding, bytes read so far): a BOM means UTF-8; else UTF-8 if the first non-ASCII
    bytes decode as UTF-8, Shift_JIS (cp932) if they decode as that."""
    head = file.read(_SNIFF_CHUNK)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", head
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError(
            _(
                "The file is in UTF-16 (Excel's “Unicode text”). Save it as “CSV UTF-8 "
                "(comma delimited)” or “CSV (comma delimited)” and upload it again."
            )
        )
    while head.isascii() and len(head) < _SNIFF_LIMIT:
        more = file.read(_SNIFF_CHUNK)
        if not more:
            break
        head += more
    for encoding in ("utf-8", "cp932"):
        try:
            # final=False: the sniffed bytes may end in the middle of a character.
            codecs.getincrementaldecoder(encoding)().decode(head, final=False)
        except UnicodeDecodeError:
            continue
        return encoding, head
    raise ImportFileError(
        _("The file is neither UTF-8 nor Shift_JIS text. Save it as CSV and upload it again.")
    )


def _lines(stream: io.TextIOWrapper, encoding: str) -> Iterator[str]:
    """The text lines, failing on the first one that did not decode (replacement character),
    with its line number: a file-level error, since the encoding was guessed wrong."""
    for number, text in enumerate(stream, start=1):
        if "\ufffd" in text:
            raise ImportFileError(
                _(
                    "Line %(line)s is not valid %(encoding)s text. Save the whole file as "
                    "UTF-8 (or Shift_JIS) and upload it again."
                )
                % {"line": number, "encoding": ENCODING_NAMES[encoding]},
                line=number,
            )
        yield text


def _column_name(name: str) -> str:
    return unicodedata.normalize("NFKC", name).replace("\ufeff", "").strip().lower()


def read_csv(file: BinaryIO) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a CSV file with a header row, streamed: ``(line, {column: value})``.

    Raises ``ImportFileError`` (when iterated) for a file that cannot be read as a whole.
    Lines with no values (blank, or only commas, as spreadsheets leave them) are skipped.
    """
    encoding, head = detect_encoding(file)
    raw = io.BufferedReader(_Prefixed(head, file), buffer_size=_READ_BUFFER)
    stream = io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")
    reader = csv.reader(_lines(stream, encoding), strict=True)
    last_line = 0  # the line the previous record ended on
    try:
        header = next(reader, None)
        if header is None:
            raise ImportFileError(_("The file is empty: it needs a header row of column names."))
        columns = [_column_name(name) for name in header]
        while columns and not columns[-1]:  # spreadsheets leave empty columns at the end
            columns.pop()
        if not columns:
            raise ImportFileError(_("The first line must be a header row of column names."), line=1)
        if "" in columns:
            raise ImportFileError(
                _("Column %(number)s of the header row has no name.")
                % {"number": columns.index("") + 1},
                line=1,
            )
        duplicates = sorted({name for name in columns if columns.count(name) > 1})
        if duplicates:
            raise ImportFileError(
                _("The header row repeats these columns: %(columns)s.")
                % {"columns": ", ".join(duplicates)},
                line=1,
            )
        width = len(columns)
        last_line = reader.line_num
        for fields in reader:
            line = last_line + 1  # where the row starts, if a quoted value spans lines
            last_line = reader.line_num
            if len(fields) != width:
                if not any(fields):
                    continue
                if len(fields) < width or any(fields[width:]):
                    yield line, {None: (len(fields), width)}
                    continue
                fields = fields[:width]
            elif not any(fields):
                continue
            yield line, dict(zip(columns, fields, strict=True))
    except csv.Error as error:
        if "end of data" in str(error):
            problem = _('a quoted value is never closed (a closing " is missing)')
        else:
            problem = _('a quoted value is followed by other text (write a " inside a value as "")')
        raise ImportFileError(
            _("Line %(line)s is not valid CSV: %(problem)s.")
            % {"line": last_line + 1, "problem": problem},
            line=last_line + 1,
        ) from error
