"""Downloads of table data as CSV or Excel, safe to open in a spreadsheet.

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or
a carriage return) as a formula, so a customer who types ``=HYPERLINK(...)`` as their name
could run it on a colleague's machine (CSV/formula injection, OWASP). Every text cell that
starts with one of those characters gets a leading apostrophe, which spreadsheets show as
text; numbers and dates are written as such and need nothing.

Both formats stream: the CSV is produced batch by batch while the database is read with a
server-side cursor, and the Excel file is written row by row by openpyxl's write-only mode
into a temporary file that is then sent in chunks. Neither holds the whole export in memory.

The CSV starts with a UTF-8 byte order mark, without which Japanese Excel reads UTF-8 as
Shift_JIS and shows mojibake.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone, translation
from openpyxl import Workbook

FORMATS = ("csv", "xlsx")
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BOM = "\ufeff"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Excel's sheet limit is 1,048,576 rows; one is the header. Longer exports continue on
# another sheet (with the header again) instead of being cut short.
XLSX_ROWS_PER_SHEET = 1_048_575
CSV_ROWS_PER_CHUNK = 1000
# Characters XML 1.0 cannot hold; openpyxl refuses them, so they are dropped from XLSX cells.
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


@dataclass(frozen=True)
class Column:
    """One column of an export: its header (translated when the export runs) and how to get
    the cell's value from a row object."""

    header: str
    value: Callable[[Any], Any]


def neutralise(value: Any) -> Any:
    """``value`` with a leading apostrophe if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str):  # most cells: checked first, exports run to a million rows
        return "'" + value if value.startswith(FORMULA_PREFIXES) else value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float | Decimal):
        return value
    return neutralise(str(value))


def _xlsx_cell(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        # Excel has no time zones: write the wall-clock time of the active zone.
        return timezone.localtime(value).replace(tzinfo=None)
    if isinstance(value, bool | int | float | Decimal | date):
        return value
    return neutralise(_XML_ILLEGAL.sub("", str(value)))


class _Line:
    """A write-only file for csv.writer that hands back what was written."""

    def __init__(self):
        self.buffer = io.StringIO()

    def write(self, text: str) -> None:
        self.buffer.write(text)

    def take(self) -> str:
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text


def _in_request_locale(chunks: Iterator) -> Iterator:
    """``chunks`` produced in the language and time zone active now, in the view.

    A streaming response is consumed after the view (and the middleware that activated the
    user's language and time zone) returned, so translated labels and local times would
    otherwise come out in whatever is active then.
    """
    language = translation.get_language()
    zone = timezone.get_current_timezone()

    def produce() -> Iterator:
        with translation.override(language), timezone.override(zone):
            yield from chunks

    return produce()


def csv_chunks(columns: Sequence[Column], objects: Iterable[Any]) -> Iterator[str]:
    """The CSV text, BOM and header first, in chunks of ``CSV_ROWS_PER_CHUNK`` rows."""
    line = _Line()
    writer = csv.writer(line)
    writer.writerow([neutralise(str(column.header)) for column in columns])
    yield BOM + line.take()
    pending = 0
    for obj in objects:
        writer.writerow([_csv_cell(column.value(obj)) for column in columns])
        pending += 1
        if pending == CSV_ROWS_PER_CHUNK:
            yield line.take()
            pending = 0
    if pending:
        yield line.take()


def write_xlsx(
    file, columns: Sequence[Column], objects: Iterable[Any], *, sheet_title: str = ""
) -> int:
    """Write the rows to ``file`` as an Excel workbook; returns the number of data rows."""
    workbook = Workbook(write_only=True)
    header = [_xlsx_cell(str(column.header)) for column in columns]
    title = (sheet_title or "Sheet")[:28]  # Excel allows 31 characters; room for " 2"
    sheet = None
    count = 0
    for obj in objects:
        if count % XLSX_ROWS_PER_SHEET == 0:
            number = count // XLSX_ROWS_PER_SHEET + 1
            sheet = workbook.create_sheet(title if number == 1 else f"{title} {number}")
            sheet.append(header)
        sheet.append([_xlsx_cell(column.value(obj)) for column in columns])
        count += 1
    if sheet is None:
        workbook.create_sheet(title).append(header)
    workbook.save(file)
    return count


def csv_response(
    *, columns: Sequence[Column], objects: Iterable[Any], filename: str
) -> StreamingHttpResponse:
    chunks = _in_request_locale(csv_chunks(columns, objects))
    response = StreamingHttpResponse(
        (chunk.encode("utf-8") for chunk in chunks), content_type=CSV_CONTENT_TYPE
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def xlsx_response(
    *, columns: Sequence[Column], objects: Iterable[Any], filename: str, sheet_title: str = ""
) -> FileResponse:
    # openpyxl writes the finished zip archive at the end, so the workbook goes to a temporary
    # file (on disk beyond a few MB) that FileResponse then sends in chunks and closes.
    file = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - FileResponse closes it
    write_xlsx(file, columns, objects, sheet_title=sheet_title)
    file.seek(0)
    return FileResponse(
        file, as_attachment=True, filename=f"{filename}.xlsx", content_type=XLSX_CONTENT_TYPE
    )


def export_response(
    fmt: str,
    *,
    columns: Sequence[Column],
    objects: Iterable[Any],
    filename: str,
    sheet_title: str = "",
):
    """A download of ``objects`` in ``fmt`` ("csv" or "xlsx")."""
    if fmt == "xlsx":
        return xlsx_response(
            columns=columns, objects=objects, filename=filename, sheet_title=sheet_title
        )
    if fmt == "csv":
        return csv_response(columns=columns, objects=objects, filename=filename)
    raise ValueError(f"Unknown export format: {fmt}")
