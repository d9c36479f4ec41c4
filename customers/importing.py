"""CSV import of customers and purchases: one code path for the upload page, the management
commands and the REST bulk endpoint.

``import_customers`` and ``import_purchases`` take rows as ``(line, {column: value})`` (from
``read_csv``, or item positions for the API), validate and normalise every value, and upsert
by external id in batches. Everything happens in one transaction: when a row has an error
nothing is written, unless ``keep_valid_rows`` asks for the valid rows to be written anyway.
Row errors say where (line, column) and what is wrong; only the first ``KEPT_ERRORS`` are
kept in memory, ``on_error`` receives every one of them (for a full error report).

What an import changes:

* Customers match on ``external_id``. An empty cell (or a missing column) leaves the stored
  value unchanged, so a file may carry only the columns it wants to update; a new customer
  gets the usual blank value. An ``email_opt_in`` that changes the consent is written as a
  ``ConsentRecord`` (source "import", the file name as the form, the importing user) exactly
  as ``customers.consent.record_consent`` would write it.
* Purchases match on ``order_id``; a row carries the whole purchase (customer, date, total,
  status, channel), so the last row of an order wins, an empty ``status`` is "completed" and
  an empty ``channel`` is none. Several rows of one order add item lines, one per ``sku``;
  items match on (order, sku) and are never deleted by an import. An unknown ``sku`` creates
  a product named after it, priced at the row's ``unit_price``.

Speed: validation is a few precompiled regular expressions and dictionary look-ups per row,
with no query per row, and runs in a thread one batch ahead of the writing (``_read_ahead``).
On PostgreSQL the named fast paths write: ``_PostgresPurchaseWriter`` (COPY of 50,000 rows
into a staging table, then a few set-based statements: customers and existing orders
resolved in SQL, new orders plain inserts) and ``_PostgresCustomerWriter`` (customers merged
in Python, then COPY and one upsert). Every other backend uses ``_PortablePurchaseWriter``
and ``_CustomerWriter`` (bulk_create with update_conflicts). Memory stays flat whatever the
size of the file: a few batches of rows (purchases travel as CSV text) and the first errors.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache, partial
from queue import Full, Queue
from types import SimpleNamespace
from typing import BinaryIO, TextIO

from django.conf import settings
from django.core.cache import cache as shared_cache
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.validators import validate_email
from django.db import connection, models, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from customers.consent import is_consent_change
from customers.csv_reading import ImportFileError, read_csv
from customers.freshness import days_changed, local_days, long_insert_committed
from customers.models import (
    ConsentRecord,
    ConsentSource,
    Customer,
    Gender,
    ImportJob,
    ImportKind,
    ImportStatus,
    Product,
    Purchase,
    PurchaseChannel,
    PurchaseItem,
    PurchaseStatus,
    SourceChannel,
)
from customers.normalize import (
    is_kana,
    normalize_email,
    normalize_phone,
    normalize_postal_code,
    to_katakana,
)
from customers.prefectures import parse_prefecture

__all__ = [
    "CUSTOMER_COLUMNS",
    "PURCHASE_COLUMNS",
    "ImportFileError",
    "ImportResult",
    "RowError",
    "import_customers",
    "import_purchases",
    "read_csv",
]

logger = logging.getLogger(__name__)

BATCH_SIZE = 10_000
# Rows per COPY on the PostgreSQL fast paths: a statement's fixed costs (planning, the
# staging table's truncation, a round trip) vanish at this size, and the batch travels from
# the reading thread as CSV text (about 100 bytes a row), so memory stays small.
COPY_BATCH_SIZE = 50_000
KEPT_ERRORS = 1000
MAX_FILE_BYTES = 4 * 1024**3  # an upload of 10 million purchase rows is about 700 MB
# Who may import what: creating and updating the rows the import writes.
IMPORT_PERMISSIONS = {
    ImportKind.CUSTOMERS: ("customers.add_customer", "customers.change_customer"),
    ImportKind.PURCHASES: ("customers.add_purchase", "customers.change_purchase"),
}


@dataclass
class RowError:
    line: int
    column: str
    reason: str

    def __str__(self) -> str:
        where = _("line %(line)s") % {"line": self.line}
        return (
            f"{where}, {self.column}: {self.reason}" if self.column else f"{where}: {self.reason}"
        )


@dataclass
class ImportResult:
    rows_read: int
    created: int
    updated: int
    errors: list[RowError]  # the first KEPT_ERRORS, in line order
    error_count: int  # rows with at least one error
    committed: bool
    products_created: int = 0


class _Invalid(Exception):
    """A value that cannot be imported; the message is the reason shown to the user."""


# --- Values ---------------------------------------------------------------------------------


def _shown(raw: str) -> str:
    return f"“{raw if len(raw) <= 40 else raw[:39] + '…'}”"


def _key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def _choice_lookup(choices, aliases: dict[str, Iterable[str]] | None = None) -> dict[str, str]:
    """Codes, and labels in every language of the site, to the code (case and width ignored)."""
    table: dict[str, str] = {}
    for language, _name in settings.LANGUAGES:
        with translation.override(language):
            table.update({_key(str(choice.label)): choice.value for choice in choices})
    table.update({_key(choice.value): choice.value for choice in choices})
    for value, names in (aliases or {}).items():
        table.update({_key(name): value for name in names})
    return table


@cache
def _lookups() -> dict[str, dict[str, str]]:
    # Built on first use: the labels need the translation catalogues loaded.
    return {
        "gender": _choice_lookup(
            Gender,
            {
                Gender.FEMALE: ["女性", "女", "f", "woman"],
                Gender.MALE: ["男性", "男", "m", "man"],
                Gender.OTHER: ["その他", "other", "x"],
                Gender.UNKNOWN: ["不明", "無回答", "回答しない", "unknown", "prefer not to say"],
            },
        ),
        "channel": _choice_lookup(SourceChannel),
        "purchase_channel": _choice_lookup(PurchaseChannel),
        "status": _choice_lookup(PurchaseStatus),
    }


_TRUE = {"true", "1", "yes", "y", "on", "はい"}
_FALSE = {"false", "0", "no", "n", "off", "いいえ"}
_DATE = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})", re.ASCII)
_DATE_TIME = re.compile(
    r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?", re.ASCII
)
# Date-times that Python and PostgreSQL read alike.
_ISO_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}:\d{2})?",
    re.ASCII,
)
_PHONE = re.compile(r"\+?[\d\s()\-‐‑‒–—―ー−.]+")
_POSTAL_SEPARATORS = re.compile(r"[\s〒\-‐‑‒–—―ー−]")
_AMOUNT = re.compile(r"(\d+)(?:\.(\d+))?", re.ASCII)
_GROUPED_AMOUNT = re.compile(r"(\d{1,3}(?:,\d{3})+)(?:\.(\d+))?", re.ASCII)


def _text(max_length: int) -> Callable[[str], str]:
    def clean(raw: str) -> str:
        if len(raw) > max_length:
            raise _Invalid(
                _("too long: %(length)s characters, at most %(max)s")
                % {"length": len(raw), "max": max_length}
            )
        return raw

    return clean


def _identifier(raw: str) -> str:
    if len(raw) > 64:
        raise _Invalid(_("too long: %(length)s characters, at most 64") % {"length": len(raw)})
    return raw


_name = _text(50)
_email_address = _text(254)


def _kana(raw: str) -> str:
    kana = to_katakana(raw)
    if not is_kana(kana):
        raise _Invalid(
            _("%(value)s is not kana (use katakana or hiragana)") % {"value": _shown(raw)}
        )
    return _name(kana)


def _email(raw: str) -> str:
    email = normalize_email(raw)
    try:
        validate_email(email)
    except ValidationError:
        raise _Invalid(_("%(value)s is not an e-mail address") % {"value": _shown(raw)}) from None
    return _email_address(email)


def _phone(raw: str) -> str:
    text = unicodedata.normalize("NFKC", raw)
    number = normalize_phone(text)
    if not _PHONE.fullmatch(text) or not 10 <= len(number) <= 15:
        raise _Invalid(
            _("%(value)s is not a phone number (10 to 15 digits, e.g. 03-1234-5678)")
            % {"value": _shown(raw)}
        )
    return number


def _postal_code(raw: str) -> str:
    text = _POSTAL_SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    if not (text.isascii() and text.isdigit() and len(text) == 7):
        raise _Invalid(
            _("%(value)s is not a postal code (7 digits, e.g. 100-0001)") % {"value": _shown(raw)}
        )
    return normalize_postal_code(text)


def _birthday(raw: str) -> date:
    match = _DATE.fullmatch(unicodedata.normalize("NFKC", raw))
    try:
        if not match:
            raise ValueError
        value = date(*(int(part) for part in match.groups()))
    except ValueError:
        raise _Invalid(
            _("%(value)s is not a date (use YYYY-MM-DD)") % {"value": _shown(raw)}
        ) from None
    if value > timezone.localdate():
        raise _Invalid(_("%(value)s is in the future") % {"value": _shown(raw)})
    return value


def _choice(lookup_name: str, raw: str) -> str:
    lookup = _lookups()[lookup_name]
    value = lookup.get(raw) or lookup.get(_key(raw))
    if value is None:
        codes = sorted(set(lookup.values()))
        raise _Invalid(
            _("%(value)s is not one of %(choices)s")
            % {"value": _shown(raw), "choices": ", ".join(codes)}
        )
    return value


def _prefecture(raw: str) -> str:
    code = parse_prefecture(raw)
    if code is None:
        raise _Invalid(
            _("%(value)s is not a prefecture (use its name, e.g. 東京都, or its code, e.g. 13)")
            % {"value": _shown(raw)}
        )
    return code


def _opt_in(raw: str) -> bool:
    key = _key(raw)
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    raise _Invalid(
        _("%(value)s is not yes or no (use true/false, 1/0, yes/no or はい/いいえ)")
        % {"value": _shown(raw)}
    )


def _amount(raw: str, *, integer_digits: int) -> str:
    """A non-negative amount with at most 2 decimals, as plain digits: "12345", "12,345",
    "¥12,345.50", "１２３", "3,980円" are all accepted."""
    if len(raw) <= integer_digits and raw.isdigit() and raw.isascii():
        return raw  # the usual case, already plain
    match = _AMOUNT.fullmatch(raw)
    if match is None:
        text = unicodedata.normalize("NFKC", raw).strip().lstrip("¥").rstrip("円").strip()
        match = _AMOUNT.fullmatch(text) or _GROUPED_AMOUNT.fullmatch(text)
        if match is None:
            if text.startswith("-") and _AMOUNT.fullmatch(text[1:].replace(",", "")):
                raise _Invalid(
                    _("%(value)s is negative (must be 0 or more)") % {"value": _shown(raw)}
                )
            raise _Invalid(
                _("%(value)s is not an amount (use digits, e.g. 12345 or 12,345)")
                % {"value": _shown(raw)}
            )
    whole, decimals = match.groups()
    whole = whole.replace(",", "").lstrip("0") or "0"
    if decimals and len(decimals) > 2:
        raise _Invalid(_("%(value)s has more than 2 decimals") % {"value": _shown(raw)})
    if len(whole) > integer_digits:
        raise _Invalid(_("%(value)s is too large") % {"value": _shown(raw)})
    return f"{whole}.{decimals}" if decimals else whole


def _quantity(raw: str) -> str:
    text = raw if raw.isascii() else unicodedata.normalize("NFKC", raw)
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**31:
        raise _Invalid(_("%(value)s is not a whole number of 1 or more") % {"value": _shown(raw)})
    return text


def _purchased_at(raw: str) -> tuple[str | None, str | None]:
    """An ISO date or date-time (also Excel's 2026/5/3 14:30) as ``(local, aware)`` text:
    ``local`` when it has no offset (a time of the organisation's time zone, midnight for a
    date alone), ``aware`` when it has one."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        match = _DATE_TIME.fullmatch(unicodedata.normalize("NFKC", raw).strip())
        try:
            if not match:
                raise ValueError from None
            value = datetime(*(int(part) for part in match.groups() if part is not None))
        except ValueError:
            raise _Invalid(
                _("%(value)s is not a date or date-time (use YYYY-MM-DD or YYYY-MM-DD HH:MM)")
                % {"value": _shown(raw)}
            ) from None
        return value.isoformat(), None
    # Python reads more ISO forms than PostgreSQL; those are passed on rewritten.
    text = raw if _ISO_DATE_TIME.fullmatch(raw) else value.isoformat()
    return (None, text) if value.tzinfo is not None else (text, None)


def _aware(local: str | None, aware: str | None, tz) -> datetime:
    """The moment ``_purchased_at`` describes."""
    if aware is not None:
        return datetime.fromisoformat(aware)
    return datetime.fromisoformat(local).replace(tzinfo=tz)


# --- Columns and rows -----------------------------------------------------------------------

# Optional customer columns and how each value is cleaned (the column is the model field).
_CUSTOMER_CLEANERS: dict[str, Callable[[str], object]] = {
    "family_name": _name,
    "given_name": _name,
    "family_name_kana": _kana,
    "given_name_kana": _kana,
    "email": _email,
    "phone": _phone,
    "birthday": _birthday,
    "gender": partial(_choice, "gender"),
    "prefecture": _prefecture,
    "postal_code": _postal_code,
    "address": _text(255),
    "channel": partial(_choice, "channel"),
    "email_opt_in": _opt_in,
}
CUSTOMER_COLUMNS = ("external_id", *_CUSTOMER_CLEANERS)
PURCHASE_COLUMNS = (
    "order_id",
    "customer_external_id",
    "purchased_at",
    "total",
    "status",
    "channel",
    "sku",
    "quantity",
    "unit_price",
)
_REQUIRED = {
    ImportKind.CUSTOMERS: ("external_id",),
    ImportKind.PURCHASES: ("order_id", "customer_external_id", "purchased_at", "total"),
}


def _check_columns(kind: str, columns: Iterable[str]) -> None:
    known = CUSTOMER_COLUMNS if kind == ImportKind.CUSTOMERS else PURCHASE_COLUMNS
    columns = set(columns)
    unknown = sorted(columns - set(known))
    if unknown:
        raise ImportFileError(
            _("Unknown columns: %(unknown)s. The columns of this import are: %(known)s.")
            % {"unknown": ", ".join(unknown), "known": ", ".join(known)}
        )
    missing = [name for name in _REQUIRED[kind] if name not in columns]
    if missing:
        raise ImportFileError(
            _("Required columns are missing: %(missing)s.") % {"missing": ", ".join(missing)}
        )


def _required(raw: str | None) -> str:
    value = (raw or "").strip()
    if not value:
        raise _Invalid(_("required"))
    return _identifier(value)


def _clean_customer(line: int, row: dict[str, str]) -> tuple[dict, list[RowError]]:
    """The row's non-empty values, cleaned (keyed by model field), and its errors."""
    values: dict[str, object] = {}
    problems: list[RowError] = []
    try:
        values["external_id"] = _required(row.get("external_id"))
    except _Invalid as error:
        problems.append(RowError(line, "external_id", str(error)))
    for column, value in row.items():
        clean = _CUSTOMER_CLEANERS.get(column)
        if clean is None or not value or not (value := value.strip()):
            continue
        try:
            values[column] = clean(value)
        except _Invalid as error:
            problems.append(RowError(line, column, str(error)))
    return values, problems


def _purchase_cleaner() -> Callable[[int, dict[str, str]], tuple[tuple | None, list]]:
    """The row cleaner for purchases: ``(line, order_id, customer_external_id, local_at,
    aware_at, total, status, channel, sku, quantity, unit_price)`` as text (or ``None``), and
    the row's errors.

    The hottest code of an import, hence one flat function over locals, and text out: the
    fast path copies it to PostgreSQL as it is.
    """
    statuses = _lookups()["status"]
    channels = _lookups()["purchase_channel"]
    completed = PurchaseStatus.COMPLETED.value

    def clean(line: int, row: dict[str, str]) -> tuple[tuple | None, list[RowError]]:
        problems = []
        column = ""
        try:
            column = "order_id"
            order_id = _required(row.get("order_id"))
        except _Invalid as error:
            problems.append(RowError(line, column, str(error)))
        try:
            column = "customer_external_id"
            customer = _required(row.get("customer_external_id"))
        except _Invalid as error:
            problems.append(RowError(line, column, str(error)))
        try:
            column = "purchased_at"
            raw = (row.get("purchased_at") or "").strip()
            if not raw:
                raise _Invalid(_("required"))
            local_at, aware_at = _purchased_at(raw)
        except _Invalid as error:
            problems.append(RowError(line, column, str(error)))
        try:
            column = "total"
            raw = (row.get("total") or "").strip()
            if not raw:
                raise _Invalid(_("required"))
            total = _amount(raw, integer_digits=12)
        except _Invalid as error:
            problems.append(RowError(line, column, str(error)))
        try:
            column = "status"
            raw = (row.get("status") or "").strip()
            status = (statuses.get(raw) or _choice("status", raw)) if raw else completed
        except _Invalid as error:
            problems.append(RowError(line, column, str(error)))
        try:
            column = "channel"
            raw = (row.get("channel") or "").strip()
            channel = (channels.get(raw) or _choice("purchase_channel", raw)) if raw else ""
        except _Invalid as error:
            problems.append(RowError(line, column, str(error)))
        sku = (row.get("sku") or "").strip()
        quantity = unit_price = None
        raw_quantity = (row.get("quantity") or "").strip()
        raw_price = (row.get("unit_price") or "").strip()
        if sku:
            try:
                column = "sku"
                sku = _identifier(sku)
                column = "quantity"
                quantity = _quantity(raw_quantity) if raw_quantity else "1"
                column = "unit_price"
                if not raw_price:
                    raise _Invalid(_("required when a sku is given"))
                unit_price = _amount(raw_price, integer_digits=10)
            except _Invalid as error:
                problems.append(RowError(line, column, str(error)))
        elif raw_quantity or raw_price:
            problems.append(
                RowError(line, "sku", _("required when quantity or unit_price is given"))
            )
        if problems:
            return None, problems
        cleaned = (line, order_id, customer, local_at, aware_at, total, status, channel)
        return cleaned + ((sku, quantity, unit_price) if sku else (None, None, None)), problems

    return clean


# --- The import loop ------------------------------------------------------------------------


class _ErrorReport:
    """Row errors of one import: every one goes to ``on_error``, the first ones are kept.

    Errors are held back per batch and released in line order, since a batch finds some
    (unknown customers) only when it is written.
    """

    def __init__(self, on_error: Callable[[RowError], None] | None):
        self.on_error = on_error
        self.kept: list[RowError] = []
        self.rows = 0
        self._pending: list[RowError] = []

    def add(self, problems: list[RowError]) -> None:
        self.rows += 1
        self._pending.extend(problems)

    def release(self) -> None:
        self._pending.sort(key=lambda error: error.line)
        room = KEPT_ERRORS - len(self.kept)
        if room > 0:
            self.kept.extend(self._pending[:room])
        if self.on_error is not None:
            for error in self._pending:
                self.on_error(error)
        self._pending.clear()


@dataclass
class _Batch:
    rows_read: int  # rows read so far, this batch included
    size: int  # valid rows in this batch
    valid: object  # the cleaned rows, as the writer's ``pack`` left them
    problems: list[list[RowError]]  # the errors of each invalid row


def _batches(
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    kind: str,
    clean: Callable[[int, dict[str, str]], tuple[object, list[RowError]]],
    size: int,
    group: Callable[[object], object] | None = None,
    pack: Callable[[list], object] | None = None,
) -> Iterator[_Batch]:
    """``rows`` read and validated, about ``size`` valid rows at a time (no database work).

    Consecutive rows of one ``group`` (an order's item lines) stay in one batch, so that a
    batch sees a whole order; ``pack`` turns a batch's rows into what the writer takes.
    """
    rows_read = 0
    valid: list = []
    problems: list[list[RowError]] = []
    columns: set = set()
    for line, row in rows:
        rows_read += 1
        if None in row:
            found, expected = row[None]
            message = _("this line has %(found)s values but the header has %(expected)s")
            problems.append([RowError(line, "", message % {"found": found, "expected": expected})])
            continue
        if row.keys() != columns:
            _check_columns(kind, row.keys())
            columns = set(row.keys())
        cleaned, row_problems = clean(line, row)
        if row_problems:
            problems.append(row_problems)
            continue
        if len(valid) >= size and (group is None or group(cleaned) != group(valid[-1])):
            yield _Batch(rows_read - 1, len(valid), pack(valid) if pack else valid, problems)
            valid, problems = [], []
        valid.append(cleaned)
    yield _Batch(rows_read, len(valid), pack(valid) if pack else valid, problems)


def _read_ahead(items: Iterator, depth: int = 2) -> Iterator:
    """``items``, produced by a thread up to ``depth`` ahead: reading and validating the next
    batch then overlaps the database writing this one (the driver releases the interpreter
    while the server works). Whatever the thread raises is raised here."""
    language = translation.get_language()
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple) -> bool:
        while not stop.is_set():
            try:
                queue.put(message, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        with translation.override(language):  # the active language is per thread
            try:
                for item in items:
                    if not put(("item", item)):
                        return
            except BaseException as error:  # handed to the consumer, raised there
                put(("error", error))
                return
        put(("done", None))

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def _run(
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    kind: str,
    clean: Callable[[int, dict[str, str]], tuple[object, list[RowError]]],
    writer: _Writer,
    keep_valid_rows: bool,
    progress: Callable[..., None] | None,
    on_error: Callable[[RowError], None] | None,
) -> ImportResult:
    """Validate ``rows`` with ``clean`` and hand them to ``writer`` in batches, in one
    transaction that is rolled back if a row has an error and ``keep_valid_rows`` is off."""
    report = _ErrorReport(on_error)
    result = ImportResult(
        rows_read=0, created=0, updated=0, errors=report.kept, error_count=0, committed=False
    )

    def may_write() -> bool:
        # Once a row has failed, an all-or-nothing import only validates the rest.
        return keep_valid_rows or report.rows == 0

    with transaction.atomic():
        # Inside the transaction: a writer's staging tables live as long as it does.
        writer.open()
        batches = _batches(
            rows,
            kind=kind,
            clean=clean,
            size=writer.batch_size(),
            group=writer.group,
            pack=writer.pack,
        )
        for batch in _read_ahead(batches):
            result.rows_read = batch.rows_read
            for problems in batch.problems:
                report.add(problems)
            if batch.size:
                writer.write(batch.valid, report=report, result=result, may_write=may_write)
            report.release()
            if progress is not None:
                progress(rows_read=result.rows_read)
        writer.close()
        result.error_count = report.rows
        result.committed = may_write()
        if not result.committed:
            transaction.set_rollback(True)
            result.created = result.updated = result.products_created = 0
    return result


class _Writer:
    """Writes the valid rows of an import, a batch at a time, inside the import's transaction."""

    group: Callable[[object], object] | None = None  # rows kept in one batch (see _batches)
    pack: Callable[[list], object] | None = None  # run in the reading thread

    def batch_size(self) -> int:
        return BATCH_SIZE  # read when the import starts: tests make it small

    def open(self) -> None:
        pass

    def write(self, batch, *, report: _ErrorReport, result: ImportResult, may_write) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


# --- Customers ------------------------------------------------------------------------------

_CUSTOMER_FIELDS = [name for name in _CUSTOMER_CLEANERS if name != "email_opt_in"]
_CUSTOMER_STATE = ["external_id", *_CUSTOMER_FIELDS, "email_opt_in", "email_opt_in_at"]


class _CustomerWriter(_Writer):
    """Any database: stored customers are read for update by batch and merged with the rows
    in Python (empty cells keep stored values; consent changes are decided here), then
    written by one bulk upsert."""

    def __init__(self, *, user, source: str):
        self.source = source[:200]
        self.recorded_by = user if user is not None and user.is_authenticated else None
        self.new_customer = {
            name: Customer._meta.get_field(name).get_default() for name in _CUSTOMER_STATE
        }

    def write(self, batch: list, *, report: _ErrorReport, result: ImportResult, may_write):
        now = timezone.now()
        merged, consents = self._merge(batch, report=report, result=result, now=now)
        if merged and may_write():
            self._save(list(merged.values()), consents, now=now)

    def _merge(
        self, batch: list, *, report: _ErrorReport, result: ImportResult, now: datetime
    ) -> tuple[dict[str, dict], dict[str, bool]]:
        """The state of every customer of ``batch`` after it (by external id), and the
        consent decisions to record."""
        ids = {values["external_id"] for _line, values in batch}
        stored = {
            customer["external_id"]: customer
            for customer in Customer.objects.filter(external_id__in=ids)
            .select_for_update()
            .values(*_CUSTOMER_STATE, "erased_at")
        }
        merged: dict[str, dict] = {}
        consents: dict[str, bool] = {}
        for line, values in batch:
            external_id = values["external_id"]
            state = merged.get(external_id)
            if state is None:
                previous = stored.get(external_id)
                if previous is not None and previous["erased_at"] is not None:
                    report.add(
                        [
                            RowError(
                                line,
                                "external_id",
                                _("this customer's data was erased; it cannot be imported again"),
                            )
                        ]
                    )
                    continue
                if previous is None:
                    result.created += 1
                    state = dict(self.new_customer)
                else:
                    result.updated += 1
                    state = previous
                merged[external_id] = state
            opted_in = values.pop("email_opt_in", None)
            state.update(values)
            if opted_in is not None and is_consent_change(
                opted_in=opted_in,
                current=state["email_opt_in"],
                current_at=state["email_opt_in_at"],
            ):
                state["email_opt_in"], state["email_opt_in_at"] = opted_in, now
                consents[external_id] = opted_in
        return merged, consents

    def _save(self, states: list[dict], consents: dict[str, bool], *, now) -> None:
        customers = []
        for state in states:
            customer = Customer(**{name: state[name] for name in _CUSTOMER_STATE})
            customer.search_text = customer.build_search_text()
            customers.append(customer)
        # Merged rows hold every stored value, so one upsert writes new and existing alike.
        Customer.objects.bulk_create(
            customers,
            update_conflicts=True,
            unique_fields=["external_id"],
            update_fields=[*_CUSTOMER_STATE[1:], "search_text", "updated_at"],
        )
        if consents:
            ids = dict(
                Customer.objects.filter(external_id__in=consents).values_list("external_id", "id")
            )
            ConsentRecord.objects.bulk_create(
                ConsentRecord(
                    customer_id=ids[external_id],
                    opted_in=opted_in,
                    recorded_at=now,
                    source=ConsentSource.IMPORT,
                    form=self.source,
                    recorded_by=self.recorded_by,
                )
                for external_id, opted_in in consents.items()
            )


class _PostgresCustomerWriter(_CustomerWriter):
    """The PostgreSQL fast path: the merged customers are COPied into a staging table and
    upserted from it by one statement, which also writes the consent records.

    The merge stays in Python (it needs the stored values, the consent rule and the search
    text of ``Customer.build_search_text``); what this path saves is Django building one
    INSERT with 17 parameters per row, which cost more than the database's work.
    """

    _STAGING = "import_customer_rows"
    _COLUMNS = [*_CUSTOMER_STATE, "search_text", "consent"]
    # In CSV an empty value is NULL, except in these columns (empty strings, never NULL).
    _TEXT = ", ".join(
        name
        for name in [*_CUSTOMER_STATE, "search_text"]
        if isinstance(Customer._meta.get_field(name), (models.CharField, models.TextField))
    )

    def open(self) -> None:
        types = {
            field.name: field.db_type(connection)
            for field in Customer._meta.concrete_fields
            if field.name in self._COLUMNS
        }
        columns = ", ".join(f"{name} {types.get(name, 'boolean')}" for name in self._COLUMNS)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")  # short statements: compiling costs more
            # The trigram index of the search text (GIN) takes new entries into a pending
            # list that is merged into the index when it fills. Merging rarely and in big
            # runs, with the memory to sort them, about halves the cost of writing a
            # customer; close() merges what is left before the commit.
            cursor.execute("SET LOCAL gin_pending_list_limit = '128MB'")
            cursor.execute("SET LOCAL work_mem = '128MB'")
            cursor.execute("SET LOCAL maintenance_work_mem = '128MB'")
            cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{self._STAGING}")
            cursor.execute(f"CREATE TEMP TABLE {self._STAGING} ({columns}) ON COMMIT DROP")

    def close(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {self._STAGING}")
            cursor.execute(
                "SELECT gin_clean_pending_list(i.indexrelid) FROM pg_index i"
                " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam"
                " WHERE i.indrelid = %s::regclass AND a.amname = 'gin'",
                [Customer._meta.db_table],
            )

    def _save(self, states: list[dict], consents: dict[str, bool], *, now) -> None:
        staging = self._STAGING
        buffer = io.StringIO()
        # The model's search text rule, applied to the merged values: building a model
        # instance per row would cost more than all the rest of the row's work.
        csv.writer(buffer).writerows(
            [
                *(state[name] for name in _CUSTOMER_STATE),
                Customer.build_search_text(SimpleNamespace(**state)),
                consents.get(state["external_id"]),
            ]
            for state in states
        )
        buffer.seek(0)
        quote = connection.ops.quote_name
        table = quote(Customer._meta.db_table)
        state = ", ".join([*_CUSTOMER_STATE, "search_text"])
        updated = ", ".join(f"{name} = EXCLUDED.{name}" for name in _CUSTOMER_STATE[1:])
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {staging}")
            cursor.copy_expert(
                f"COPY {staging} ({', '.join(self._COLUMNS)}) FROM STDIN"
                f" WITH (FORMAT csv, FORCE_NOT_NULL ({self._TEXT}))",
                buffer,
            )
            cursor.execute(
                "WITH saved AS ("  # noqa: S608 (our table and column names)
                f" INSERT INTO {table} ({state}, sns_accounts, notes, created_at, updated_at)"
                f" SELECT {state}, '{{}}', '', %(now)s, %(now)s FROM {staging}"
                f" ON CONFLICT (external_id) DO UPDATE SET {updated},"
                " search_text = EXCLUDED.search_text, updated_at = EXCLUDED.updated_at"
                " RETURNING id, external_id"
                f") INSERT INTO {quote(ConsentRecord._meta.db_table)}"
                " (customer_id, opted_in, recorded_at, source, form, recorded_by_id)"
                " SELECT saved.id, s.consent, %(now)s, %(source)s, %(form)s, %(by)s"
                f" FROM saved JOIN {staging} s ON s.external_id = saved.external_id"
                " WHERE s.consent IS NOT NULL",
                {
                    "now": now,
                    "source": ConsentSource.IMPORT.value,
                    "form": self.source,
                    "by": self.recorded_by.pk if self.recorded_by else None,
                },
            )


def import_customers(
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    keep_valid_rows: bool = False,
    user=None,
    source: str = "",
    progress: Callable[..., None] | None = None,
    on_error: Callable[[RowError], None] | None = None,
) -> ImportResult:
    """Create or update customers by ``external_id`` (see the module's docstring).

    ``source`` names the file (recorded on consent records); ``progress(rows_read=...)`` is
    called after every batch; ``on_error`` gets every row error. Raises ``ImportFileError``
    when the columns are wrong or the file cannot be read; nothing is written then.
    """

    def clean(line: int, row: dict[str, str]):
        values, problems = _clean_customer(line, row)
        return (line, values), problems

    writer_class = _PostgresCustomerWriter if connection.vendor == "postgresql" else _CustomerWriter
    return _run(
        rows,
        kind=ImportKind.CUSTOMERS,
        clean=clean,
        writer=writer_class(user=user, source=source),
        keep_valid_rows=keep_valid_rows,
        progress=progress,
        on_error=on_error,
    )


# --- Purchases ------------------------------------------------------------------------------

# Positions in a cleaned purchase row (see _purchase_cleaner).
(_LINE, _ORDER, _CUSTOMER, _LOCAL_AT, _AT, _TOTAL, _STATUS, _CHANNEL, _SKU, _QUANTITY, _PRICE) = (
    range(11)
)


def _unknown_customer(line: int, external_id: str) -> RowError:
    return RowError(
        line,
        "customer_external_id",
        _("no customer has the external ID %(value)s (import the customers first)")
        % {"value": _shown(external_id)},
    )


# Off: every import row's references are checked again by the database, row by row.
TRUST_CHECKED_REFERENCES = True


def _may_skip_reference_checks(cursor) -> bool:
    """Whether this role may set session_replication_role (see _PostgresPurchaseWriter)."""
    if connection.pg_version >= 150000:
        cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
    else:
        cursor.execute("SELECT current_setting('is_superuser') = 'on'")
    return cursor.fetchone()[0]


def _order_of(row: tuple) -> str:
    return row[_ORDER]


class _PortablePurchaseWriter(_Writer):
    """Any database: look-ups by batch, then bulk_create(update_conflicts=True)."""

    group = staticmethod(_order_of)

    def __init__(self, tz):
        self.tz = tz
        self.changed_days: set = set()  # local days of existing orders that changed

    def write(self, batch: list, *, report: _ErrorReport, result: ImportResult, may_write):
        customer_ids = dict(
            Customer.objects.filter(external_id__in={row[_CUSTOMER] for row in batch}).values_list(
                "external_id", "id"
            )
        )
        valid = []
        for row in batch:
            if row[_CUSTOMER] in customer_ids:
                valid.append(row)
            else:
                report.add([_unknown_customer(row[_LINE], row[_CUSTOMER])])
        if not valid or not may_write():
            return
        # The last row of an order (and of an order's sku) wins, as a later import would.
        orders = {row[_ORDER]: row for row in valid}
        items = {(row[_ORDER], row[_SKU]): row for row in valid if row[_SKU] is not None}

        product_ids = self._product_ids(items.values(), result)
        stored = {
            order_id: counted
            for order_id, *counted in Purchase.objects.filter(order_id__in=orders).values_list(
                "order_id", "purchased_at", "customer_id", "total", "status"
            )
        }
        result.created += len(orders) - len(stored)
        result.updated += len(stored)
        purchases = [
            Purchase(
                order_id=order_id,
                customer_id=customer_ids[row[_CUSTOMER]],
                purchased_at=_aware(row[_LOCAL_AT], row[_AT], self.tz),
                total=Decimal(row[_TOTAL]),
                status=row[_STATUS],
                channel=row[_CHANNEL],
            )
            for order_id, row in orders.items()
        ]
        # The analytics' id watermark cannot see changed orders (nor their items, which
        # count in the category breakdown): their days before and after are marked.
        stored_items = {
            (order_id, sku): (quantity, unit_price)
            for order_id, sku, quantity, unit_price in PurchaseItem.objects.filter(
                purchase__order_id__in=stored
            ).values_list("purchase__order_id", "product__sku", "quantity", "unit_price")
        }
        new_items = {
            order_id
            for (order_id, sku), row in items.items()
            if order_id in stored
            and stored_items.get((order_id, sku)) != (int(row[_QUANTITY]), Decimal(row[_PRICE]))
        }
        for purchase in purchases:
            before = stored.get(purchase.order_id)
            counted = [purchase.purchased_at, purchase.customer_id, purchase.total, purchase.status]
            if before is not None and (before != counted or purchase.order_id in new_items):
                self.changed_days.update(local_days([before[0], purchase.purchased_at]))
        Purchase.objects.bulk_create(
            purchases,
            update_conflicts=True,
            unique_fields=["order_id"],
            update_fields=["customer", "purchased_at", "total", "status", "channel"],
        )
        if not items:
            return
        purchase_ids = dict(
            Purchase.objects.filter(order_id__in={order for order, _sku in items}).values_list(
                "order_id", "id"
            )
        )
        PurchaseItem.objects.bulk_create(
            [
                PurchaseItem(
                    purchase_id=purchase_ids[order_id],
                    product_id=product_ids[sku],
                    quantity=int(row[_QUANTITY]),
                    unit_price=Decimal(row[_PRICE]),
                )
                for (order_id, sku), row in items.items()
            ],
            update_conflicts=True,
            unique_fields=["purchase", "product"],
            update_fields=["quantity", "unit_price"],
        )

    @staticmethod
    def _product_ids(rows: Iterable[tuple], result: ImportResult) -> dict[str, int]:
        first_price: dict[str, str] = {}
        for row in rows:
            first_price.setdefault(row[_SKU], row[_PRICE])
        ids = dict(Product.objects.filter(sku__in=first_price).values_list("sku", "id"))
        new = [
            Product(sku=sku, name=sku, price=Decimal(price))
            for sku, price in first_price.items()
            if sku not in ids
        ]
        if new:
            Product.objects.bulk_create(new)
            result.products_created += len(new)
            ids.update(
                Product.objects.filter(sku__in=[p.sku for p in new]).values_list("sku", "id")
            )
        return ids


class _PostgresPurchaseWriter(_Writer):
    """The PostgreSQL fast path: each batch is COPied into a staging table and written by a
    few set-based statements, each over the whole batch.

    Customers are resolved in SQL once per distinct external id of a batch (the rows of
    unknown ones are reported by line and set aside); existing orders are found through the
    ``order_id`` index. The LATERAL ... LIMIT 1 look-ups keep those probes on the unique
    indexes whatever the statistics of the big tables say (a hash join would read all of
    them per batch).
    New orders get their ids from the sequence up front, so they and their item lines are
    plain inserts that never read the purchases table back; existing orders are updated
    (only when something changed) and their item lines upserted.

    Foreign keys: every reference a batch writes has been resolved set-wise before (customers
    and existing orders by the look-ups above, products by sku in the items' join, new
    orders are this transaction's own rows), and the look-ups take the same FOR KEY SHARE
    row locks the per-row checks would take, so no referenced row can be deleted before the
    commit. The per-row checks (one query per purchase and two per item line: 8 of the 30
    seconds of a million rows) would find nothing more: when the role may set
    ``session_replication_role`` (a superuser, or on PostgreSQL 15+ ``GRANT SET ON PARAMETER
    session_replication_role TO <role>``), the import's statements run with it set to
    ``replica``, which skips those trigger-based checks for them only; the constraints stay
    declared and valid for every other writer. Without the privilege the checks run as usual
    (same result, slower). Nothing else on these tables is a trigger.
    """

    _ROWS = "import_purchase_rows"
    _ORDERS = "import_purchase_orders"
    _CUSTOMER_IDS = "import_purchase_customers"
    group = staticmethod(_order_of)

    def __init__(self, tz_name: str):
        quote = connection.ops.quote_name
        self.tz_name = tz_name
        self.customer = quote(Customer._meta.db_table)
        self.product = quote(Product._meta.db_table)
        self.purchase = quote(Purchase._meta.db_table)
        self.item = quote(PurchaseItem._meta.db_table)
        self.analysed = False
        self.changed_days: set = set()  # local days of existing orders that changed
        self.first_new_id: int | None = None

    def batch_size(self) -> int:
        return COPY_BATCH_SIZE

    @staticmethod
    def pack(rows: list) -> io.StringIO:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        buffer.seek(0)
        return buffer

    def open(self) -> None:
        with connection.cursor() as cursor:
            # Compiling these short statements costs more than running them.
            cursor.execute("SET LOCAL jit = off")
            # A batch's DISTINCT ON sorts (50,000 rows) stay in memory.
            cursor.execute("SET LOCAL work_mem = '64MB'")
            # Foreign keys are checked per statement: deferred to the commit, the checks of
            # millions of rows would queue up in the server's memory.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            self.trusted = TRUST_CHECKED_REFERENCES and _may_skip_reference_checks(cursor)
            if self.trusted:
                cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [Purchase._meta.db_table])
            self.sequence = cursor.fetchone()[0]
            # Dropped with the transaction; an enclosing transaction may still hold them.
            cursor.execute(
                f"DROP TABLE IF EXISTS pg_temp.{self._ROWS}, pg_temp.{self._ORDERS},"
                f" pg_temp.{self._CUSTOMER_IDS}"
            )
            cursor.execute(
                f"CREATE TEMP TABLE {self._CUSTOMER_IDS} (external_id text, id bigint)"
                " ON COMMIT DROP"
            )
            cursor.execute(
                f"CREATE TEMP TABLE {self._ROWS} ("
                " line bigint, order_id text, customer_external_id text,"
                " purchased_local timestamp, purchased_at timestamptz, total numeric,"
                " status text, channel text, sku text, quantity integer, unit_price numeric"
                ") ON COMMIT DROP"
            )
            cursor.execute(
                f"CREATE TEMP TABLE {self._ORDERS} ("
                " purchase_id bigint, existing boolean, order_id text, customer_id bigint,"
                " purchased_at timestamptz, total numeric, status text, channel text"
                ") ON COMMIT DROP"
            )

    def close(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {self._ROWS}, {self._ORDERS}, {self._CUSTOMER_IDS}")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's default again
            if self.trusted:  # an enclosing transaction checks (and fires triggers) again
                cursor.execute("SET LOCAL session_replication_role = DEFAULT")

    def write(self, batch, *, report: _ErrorReport, result: ImportResult, may_write):
        rows, orders, ids = self._ROWS, self._ORDERS, self._CUSTOMER_IDS
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {rows}, {orders}, {ids}")
            cursor.copy_expert(f"COPY {rows} FROM STDIN WITH (FORMAT csv)", batch)
            if not self.analysed:
                cursor.execute(f"ANALYZE {rows}")  # temporary tables get no autovacuum
            # One probe per distinct customer of the batch.
            cursor.execute(
                f"INSERT INTO {ids} SELECT e.external_id, c.id"  # noqa: S608
                f" FROM (SELECT DISTINCT customer_external_id AS external_id FROM {rows}) e"
                f" LEFT JOIN LATERAL (SELECT c.id FROM {self.customer} c"
                " WHERE c.external_id = e.external_id LIMIT 1 FOR KEY SHARE) c ON true"
            )
            cursor.execute(f"SELECT 1 FROM {ids} WHERE id IS NULL LIMIT 1")  # noqa: S608
            if cursor.fetchone():
                cursor.execute(
                    f"DELETE FROM {rows} s USING {ids} i"  # noqa: S608
                    " WHERE i.external_id = s.customer_external_id AND i.id IS NULL"
                    " RETURNING s.line, s.customer_external_id"
                )
                for line, external_id in cursor.fetchall():
                    report.add([_unknown_customer(line, external_id)])
            if not may_write():
                return
            cursor.execute(
                f"INSERT INTO {self.product} (sku, name, category, price)"  # noqa: S608
                f" SELECT DISTINCT ON (s.sku) s.sku, s.sku, '', s.unit_price FROM {rows} s"
                " WHERE s.sku IS NOT NULL"
                f" AND NOT EXISTS (SELECT 1 FROM {self.product} p WHERE p.sku = s.sku)"
                " ORDER BY s.sku, s.line ON CONFLICT (sku) DO NOTHING"
            )
            result.products_created += cursor.rowcount
            if self.trusted:  # what the items' product checks would lock (a few hundred)
                cursor.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {self.product} p"  # noqa: S608
                    f" WHERE p.sku IN (SELECT s.sku FROM {rows} s) FOR KEY SHARE) locked"
                )
            # The last row of an order wins; nextval follows the order ids, so item lines
            # arrive in the order of their purchase ids.
            cursor.execute(
                f"INSERT INTO {orders}"  # noqa: S608
                " SELECT COALESCE(p.id, nextval(%s)), p.id IS NOT NULL, o.order_id, c.id,"
                " COALESCE(o.purchased_at, o.purchased_local AT TIME ZONE %s), o.total,"
                " o.status, COALESCE(o.channel, '')"
                f" FROM (SELECT DISTINCT ON (order_id) * FROM {rows}"
                " ORDER BY order_id, line DESC) o"
                f" JOIN {ids} c ON c.external_id = o.customer_external_id"
                f" LEFT JOIN LATERAL (SELECT p.id FROM {self.purchase} p"
                " WHERE p.order_id = o.order_id LIMIT 1 FOR KEY SHARE) p ON true",
                [self.sequence, self.tz_name],
            )
            if not self.analysed:
                cursor.execute(f"ANALYZE {orders}")
                self.analysed = True
            cursor.execute(
                f"INSERT INTO {self.purchase}"  # noqa: S608
                " (id, order_id, customer_id, purchased_at, total, status, channel)"
                " SELECT purchase_id, order_id, customer_id, purchased_at, total, status,"
                f" channel FROM {orders} WHERE NOT existing"
            )
            result.created += cursor.rowcount
            cursor.execute(
                "SELECT count(*) FILTER (WHERE existing),"  # noqa: S608
                f" min(purchase_id) FILTER (WHERE NOT existing) FROM {orders}"
            )
            existing, first_new_id = cursor.fetchone()
            if self.first_new_id is None:
                self.first_new_id = first_new_id
            result.updated += existing
            # Items of a new purchase cannot exist yet: a plain insert; those of an existing
            # purchase are upserted. The last row of an order's sku wins.
            lines = (
                "SELECT DISTINCT ON (s.order_id, s.sku) o.purchase_id, p.id,"  # noqa: S608
                " s.quantity, s.unit_price"
                f" FROM {rows} s JOIN {orders} o ON o.order_id = s.order_id"
                f" JOIN {self.product} p ON p.sku = s.sku"
                " WHERE {0} o.existing ORDER BY s.order_id, s.sku, s.line DESC"
            )
            item = f"INSERT INTO {self.item} (purchase_id, product_id, quantity, unit_price)"
            cursor.execute(f"{item} {lines.format('NOT')}")
            if not existing:
                return
            # The analytics' id watermark cannot see changed orders: the days (before and
            # after) of those whose counted fields or item lines change are marked.
            cursor.execute(
                "SELECT DISTINCT v.day FROM"  # noqa: S608
                " (SELECT (p.purchased_at AT TIME ZONE %s)::date AS old_day,"
                " (o.purchased_at AT TIME ZONE %s)::date AS new_day"
                f" FROM {orders} o JOIN {self.purchase} p ON p.id = o.purchase_id"
                " WHERE o.existing AND ((p.customer_id, p.purchased_at, p.total, p.status)"
                " IS DISTINCT FROM (o.customer_id, o.purchased_at, o.total, o.status)"
                f" OR EXISTS (SELECT 1 FROM {rows} s JOIN {self.product} pr ON pr.sku = s.sku"
                f" LEFT JOIN {self.item} i ON i.purchase_id = o.purchase_id"
                " AND i.product_id = pr.id WHERE s.order_id = o.order_id AND (i.id IS NULL"
                " OR (i.quantity, i.unit_price) IS DISTINCT FROM (s.quantity, s.unit_price))))"
                ") c CROSS JOIN LATERAL (VALUES (c.old_day), (c.new_day)) v(day)",
                [self.tz_name, self.tz_name],
            )
            self.changed_days.update(day for (day,) in cursor.fetchall())
            cursor.execute(
                f"UPDATE {self.purchase} p SET customer_id = o.customer_id,"  # noqa: S608
                " purchased_at = o.purchased_at, total = o.total, status = o.status,"
                f" channel = o.channel FROM {orders} o WHERE o.existing AND p.id = o.purchase_id"
                " AND (p.customer_id, p.purchased_at, p.total, p.status, p.channel)"
                " IS DISTINCT FROM (o.customer_id, o.purchased_at, o.total, o.status, o.channel)"
            )
            cursor.execute(
                f"{item} {lines.format('')} ON CONFLICT (purchase_id, product_id) DO UPDATE"
                " SET quantity = EXCLUDED.quantity, unit_price = EXCLUDED.unit_price"
            )


def import_purchases(
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    keep_valid_rows: bool = False,
    user=None,
    source: str = "",
    progress: Callable[..., None] | None = None,
    on_error: Callable[[RowError], None] | None = None,
) -> ImportResult:
    """Create or update purchases by ``order_id``, with their item lines (see the module's
    docstring). ``created``/``updated`` count purchases; ``products_created`` the products
    made for unknown skus. ``user`` and ``source`` are accepted for symmetry with
    ``import_customers``; purchases record neither.
    """
    if connection.vendor == "postgresql":
        writer = _PostgresPurchaseWriter(settings.TIME_ZONE)
    else:
        writer = _PortablePurchaseWriter(timezone.get_default_timezone())
    result = _run(
        rows,
        kind=ImportKind.PURCHASES,
        clean=_purchase_cleaner(),
        writer=writer,
        keep_valid_rows=keep_valid_rows,
        progress=progress,
        on_error=on_error,
    )
    if result.committed:
        days_changed(writer.changed_days)
        if getattr(writer, "first_new_id", None) is not None:
            long_insert_committed(first_id=writer.first_new_id, count=result.created)
    return result


IMPORTERS = {ImportKind.CUSTOMERS: import_customers, ImportKind.PURCHASES: import_purchases}


# --- Import jobs (upload page, commands) ----------------------------------------------------


def importable_kinds(user) -> list[str]:
    """The kinds of import ``user`` may run (and whose past imports they may see)."""
    return [
        kind
        for kind, perms in IMPORT_PERMISSIONS.items()
        if user.is_authenticated and user.is_active and user.has_perms(perms)
    ]


def visible_import_jobs(user):
    return ImportJob.objects.filter(kind__in=importable_kinds(user)).select_related("created_by")


def error_report_name(job: ImportJob) -> str:
    """Where the full error report of an uploaded import is kept (the job keeps the first
    errors only)."""
    return f"imports/errors/import-{job.pk}.csv"


def _progress_key(job_id: int) -> str:
    return f"import-progress:{job_id}"


def live_progress(job: ImportJob) -> ImportJob:
    """``job`` with the progress of its running import: the import's own transaction hides
    its writes until the end, so the worker reports progress through the shared cache."""
    if job.status == ImportStatus.RUNNING:
        reported = shared_cache.get(_progress_key(job.pk))
        if reported:
            job.rows_read = reported["rows_read"]
            job.processed_bytes = reported["processed_bytes"]
    return job


class ErrorCsv:
    """Writes row errors as CSV (line, column, reason): the full error report."""

    HEADER = ("line", "column", "reason")

    def __init__(self, file: TextIO):
        self._writer = csv.writer(file)
        self._writer.writerow(self.HEADER)

    def __call__(self, error: RowError) -> None:
        self._writer.writerow((error.line, error.column, error.reason))

    @classmethod
    def rows(cls, errors: Iterable[dict]) -> Iterator[tuple]:
        yield cls.HEADER
        for error in errors:
            yield (error.get("line") or "", error.get("column", ""), error.get("reason", ""))


class _CountingReader:
    def __init__(self, file: BinaryIO):
        self._file = file
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self.bytes_read += len(data)
        return data


@transaction.atomic
def start_import(
    *, kind: str, file, keep_valid_rows: bool, user, language: str | None = None
) -> ImportJob:
    """Save an uploaded file as a queued import and have a worker run it after the commit."""
    from customers.tasks import run_import  # the task module imports this one

    job = ImportJob(
        kind=kind,
        file_name=file.name[:255],
        keep_valid_rows=keep_valid_rows,
        created_by=user,
        total_bytes=file.size,
    )
    job.file.save(file.name, file, save=False)
    job.save()
    transaction.on_commit(partial(run_import.delay, job.pk, language or translation.get_language()))
    return job


def claim_import_job(*, job_id: int) -> ImportJob | None:
    """The queued job ``job_id``, now marked running; ``None`` if another worker has it."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportStatus.QUEUED).update(
        status=ImportStatus.RUNNING, started_at=timezone.now()
    )
    return ImportJob.objects.select_related("created_by").get(pk=job_id) if claimed else None


def run_import_job(
    *, job: ImportJob, file: BinaryIO, on_error: Callable[[RowError], None] | None = None
) -> ImportResult:
    """Run the import ``job`` describes on ``file`` and record the outcome on the job.

    A file-level problem marks the job failed and is raised again (``ImportFileError``).
    """
    reader = _CountingReader(file)

    def progress(*, rows_read: int) -> None:
        shared_cache.set(
            _progress_key(job.pk),
            {"rows_read": rows_read, "processed_bytes": reader.bytes_read},
            timeout=24 * 3600,
        )

    fields = [
        "status",
        "finished_at",
        "processed_bytes",
        "rows_read",
        "rows_created",
        "rows_updated",
        "error_count",
        "errors",
    ]
    try:
        result = IMPORTERS[job.kind](
            read_csv(reader),
            keep_valid_rows=job.keep_valid_rows,
            user=job.created_by,
            source=job.file_name,
            progress=progress,
            on_error=on_error,
        )
    except ImportFileError as error:
        job.status = ImportStatus.FAILED
        job.finished_at = timezone.now()
        job.processed_bytes = reader.bytes_read
        job.errors = [{"line": error.line, "column": "", "reason": str(error)}]
        job.save(update_fields=fields)
        raise
    finally:
        shared_cache.delete(_progress_key(job.pk))
    job.status = ImportStatus.SUCCEEDED if result.committed else ImportStatus.FAILED
    job.finished_at = timezone.now()
    job.processed_bytes = reader.bytes_read
    job.rows_read = result.rows_read
    job.rows_created = result.created
    job.rows_updated = result.updated
    job.error_count = result.error_count
    job.errors = [{"line": e.line, "column": e.column, "reason": e.reason} for e in result.errors]
    job.save(update_fields=fields)
    return result


def run_uploaded_import(*, job: ImportJob) -> ImportResult | None:
    """Run an uploaded import (claimed by a worker), keeping its full error report."""
    try:
        with tempfile.TemporaryFile() as report_file:
            report = io.TextIOWrapper(report_file, encoding="utf-8-sig", newline="")
            try:
                with job.file.open("rb") as file:
                    result = run_import_job(job=job, file=file, on_error=ErrorCsv(report))
            finally:
                report.flush()
                report.detach()  # the temporary file stays open for saving
            if result.error_count:
                report_file.seek(0)
                default_storage.save(error_report_name(job), File(report_file))
            return result
    except ImportFileError:
        return None  # recorded on the job
    except Exception:
        logger.exception("Import %s stopped", job.pk)
        ImportJob.objects.filter(pk=job.pk, status=ImportStatus.RUNNING).update(
            status=ImportStatus.FAILED,
            finished_at=timezone.now(),
            errors=[
                {
                    "line": None,
                    "column": "",
                    "reason": _(
                        "The import stopped because of an internal error; nothing was "
                        "imported. Try again, or tell your administrator."
                    ),
                }
            ],
        )
        raise


# What the imports list shows as the "file" of a bulk upsert through the API (not translated:
# it names the endpoint, whatever the reader's language).
API_BULK_SOURCE = "POST /api/v1/purchases/bulk/"


def record_api_import(
    *,
    kind: str,
    result: ImportResult,
    errors: list[dict],
    keep_valid_rows: bool,
    user,
    started_at,
) -> ImportJob:
    """A bulk upsert through the API, recorded as a finished import so that admins see it in
    the imports list with the file imports. ``errors``: the answer's row errors (the request's
    purchase ``index``, ``field`` and ``reason``), the first KEPT_ERRORS of them kept."""
    return ImportJob.objects.create(
        kind=kind,
        file_name=API_BULK_SOURCE,
        keep_valid_rows=keep_valid_rows,
        status=ImportStatus.SUCCEEDED if result.committed else ImportStatus.FAILED,
        created_by=user,
        created_at=started_at,
        started_at=started_at,
        finished_at=timezone.now(),
        rows_read=result.rows_read,
        rows_created=result.created,
        rows_updated=result.updated,
        error_count=result.error_count,
        errors=[
            {"line": error["index"], "column": error["field"], "reason": error["reason"]}
            for error in errors[:KEPT_ERRORS]
        ],
    )


def import_file(
    *,
    kind: str,
    file: BinaryIO,
    file_name: str,
    keep_valid_rows: bool = False,
    total_bytes: int = 0,
    user=None,
    on_error: Callable[[RowError], None] | None = None,
) -> tuple[ImportJob, ImportResult]:
    """Import a local file now (the management commands), recorded as an import job."""
    job = ImportJob.objects.create(
        kind=kind,
        file_name=file_name[:255],
        keep_valid_rows=keep_valid_rows,
        created_by=user,
        status=ImportStatus.RUNNING,
        started_at=timezone.now(),
        total_bytes=total_bytes,
    )
    return job, run_import_job(job=job, file=file, on_error=on_error)
