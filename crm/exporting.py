"""Downloads of table data as CSV or Excel, safe to open in a spreadsheet.

Spreadsheets run a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or
a carriage return) as a formula, so a customer who types ``=HYPERLINK(...)`` as their name
could run it on a colleague's machine (CSV/formula injection, OWASP). Every text cell that
starts with one of those characters gets a leading apostrophe, which spreadsheets show as
text; numbers and dates are written as such and need nothing.

Both formats stream: the CSV is produced batch by batch while the database is read in
chunks, and the Excel file is written row by row into a temporary file that is then sent in
chunks. Neither holds the whole export in memory.

The Excel file is written here rather than by openpyxl, which builds a cell object and an XML
element per cell: 1,700-3,600 rows/s for the customer export (with lxml or without), so a
100,000-row export took a minute. An .xlsx file is a zip of a few XML parts; the worksheet is
the only large one, and writing its rows as text runs at the speed of the CSV. It holds what
openpyxl's write-only mode wrote: inline strings, numbers, booleans, and dates and times as
serial numbers with a date format, one style per kind, no shared strings.

The CSV starts with a UTF-8 byte order mark, without which Japanese Excel reads UTF-8 as
Shift_JIS and shows mojibake.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone, translation

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
_XML_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


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


# --- Excel ------------------------------------------------------------------------------------

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
# Excel's day 0 (its serial numbers count days from here; 1900 is wrongly a leap year in
# Excel, which this epoch already accounts for from March 1900 on).
_EXCEL_EPOCH = datetime(1899, 12, 30)
_DAY = timedelta(days=1)
# Cell styles (indexes into styles.xml's cellXfs): 1 date and time, 2 date.
_STYLES = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="{_MAIN_NS}">\
<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd h:mm:ss"/>\
<numFmt numFmtId="165" formatCode="yyyy-mm-dd"/></numFmts>\
<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>\
<fills count="2"><fill><patternFill patternType="none"/></fill>\
<fill><patternFill patternType="gray125"/></fill></fills>\
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>\
<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>\
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>\
</styleSheet>"""


def _xlsx_cell(value: Any) -> str:
    """One ``<c>`` element (without its reference, which is optional in the format)."""
    if isinstance(value, str):  # most cells: checked first
        if value.startswith(FORMULA_PREFIXES):
            value = "'" + value
        text = escape(_XML_ILLEGAL.sub("", value))
        return f'<c t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'
    if value is None:
        return "<c/>"
    if isinstance(value, bool):
        return f'<c t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float | Decimal):
        return f"<c><v>{value}</v></c>"
    if isinstance(value, datetime):
        # Excel has no time zones: the wall-clock time of the active zone.
        serial = (timezone.localtime(value).replace(tzinfo=None) - _EXCEL_EPOCH) / _DAY
        return f'<c s="1"><v>{serial!r}</v></c>'
    if isinstance(value, date):
        return f'<c s="2"><v>{(value - _EXCEL_EPOCH.date()).days}</v></c>'
    return _xlsx_cell(str(value))


class _Sheet:
    """One worksheet being written into the archive, a thousand rows at a time."""

    def __init__(self, archive: zipfile.ZipFile, number: int, header: str):
        self.file = archive.open(f"xl/worksheets/sheet{number}.xml", "w", force_zip64=True)
        self.file.write(
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<worksheet xmlns="{_MAIN_NS}"><sheetData>'.encode()
        )
        self.pending = [header]

    def append(self, row: str) -> None:
        self.pending.append(row)
        if len(self.pending) >= CSV_ROWS_PER_CHUNK:
            self.flush()

    def flush(self) -> None:
        self.file.write("".join(self.pending).encode())
        self.pending.clear()

    def close(self) -> None:
        self.pending.append("</sheetData></worksheet>")
        self.flush()
        self.file.close()


def _write_package(archive: zipfile.ZipFile, titles: list[str]) -> None:
    """The parts around the worksheets: content types, relationships, workbook, styles."""
    sheets = range(1, len(titles) + 1)
    header = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    archive.writestr(
        "[Content_Types].xml",
        header
        + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        + '<Default Extension="rels" '
        + 'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        + '<Default Extension="xml" ContentType="application/xml"/>'
        + f'<Override PartName="/xl/workbook.xml" ContentType="{_CONTENT_TYPE}.sheet.main+xml"/>'
        + f'<Override PartName="/xl/styles.xml" ContentType="{_CONTENT_TYPE}.styles+xml"/>'
        + "".join(
            f'<Override PartName="/xl/worksheets/sheet{n}.xml" '
            f'ContentType="{_CONTENT_TYPE}.worksheet+xml"/>'
            for n in sheets
        )
        + "</Types>",
    )
    archive.writestr(
        "_rels/.rels",
        header
        + f'<Relationships xmlns="{_PACKAGE_REL_NS}">'
        + f'<Relationship Id="rId1" Type="{_REL_NS}/officeDocument" Target="xl/workbook.xml"/>'
        + "</Relationships>",
    )
    archive.writestr(
        "xl/workbook.xml",
        header
        + f'<workbook xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><sheets>'
        + "".join(
            f'<sheet name={quoteattr(title)} sheetId="{n}" r:id="rId{n}"/>'
            for n, title in zip(sheets, titles, strict=True)
        )
        + "</sheets></workbook>",
    )
    archive.writestr(
        "xl/_rels/workbook.xml.rels",
        header
        + f'<Relationships xmlns="{_PACKAGE_REL_NS}">'
        + "".join(
            f'<Relationship Id="rId{n}" Type="{_REL_NS}/worksheet" '
            f'Target="worksheets/sheet{n}.xml"/>'
            for n in sheets
        )
        + f'<Relationship Id="rId{len(titles) + 1}" Type="{_REL_NS}/styles" '
        + 'Target="styles.xml"/></Relationships>',
    )
    archive.writestr("xl/styles.xml", _STYLES)


def write_xlsx(
    file, columns: Sequence[Column], objects: Iterable[Any], *, sheet_title: str = ""
) -> int:
    """Write the rows to ``file`` as an Excel workbook; returns the number of data rows."""
    header = '<row r="1">' + "".join(_xlsx_cell(str(col.header)) for col in columns) + "</row>"
    title = _XML_ILLEGAL.sub("", sheet_title or "Sheet")[:28]  # Excel allows 31: room for " 2"
    titles: list[str] = []
    values = [column.value for column in columns]
    count = 0
    # Level 1: the XML compresses about as well at a fraction of the default level's time.
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        sheet = None
        for obj in objects:
            if count % XLSX_ROWS_PER_SHEET == 0:
                if sheet is not None:
                    sheet.close()
                titles.append(title if not titles else f"{title} {len(titles) + 1}")
                sheet = _Sheet(archive, len(titles), header)
            cells = "".join([_xlsx_cell(value(obj)) for value in values])
            sheet.append(f'<row r="{count % XLSX_ROWS_PER_SHEET + 2}">{cells}</row>')
            count += 1
        if sheet is None:
            titles.append(title)
            sheet = _Sheet(archive, 1, header)
        sheet.close()
        _write_package(archive, titles)
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
