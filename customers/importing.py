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
Purchases, the big tables, are written on PostgreSQL by the fast path
``_PostgresPurchaseWriter`` (COPY into a temporary staging table, then set-based upserts);
every other backend uses ``_PortablePurchaseWriter`` (bulk_create with update_conflicts).
Customers, far fewer and merged cell by cell, use one portable path. Memory stays flat
whatever the size of the file: a few batches of rows and the first errors.
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
from typing import BinaryIO, TextIO

from django.conf import settings
from django.core.cache import cache as shared_cache
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from customers.consent import is_consent_change
from customers.csv_reading import ImportFileError, read_csv
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
    valid: list  # cleaned rows
    problems: list[list[RowError]]  # the errors of each invalid row


def _batches(
    rows: Iterable[tuple[int, dict[str, str]]],
    *,
    kind: str,
    clean: Callable[[int, dict[str, str]], tuple[object, list[RowError]]],
) -> Iterator[_Batch]:
    """``rows`` read and validated, ``BATCH_SIZE`` valid rows at a time (no database work)."""
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
        else:
            valid.append(cleaned)
            if len(valid) >= BATCH_SIZE:
                yield _Batch(rows_read, valid, problems)
                valid, problems = [], []
    yield _Batch(rows_read, valid, problems)


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
    write: Callable[..., None],
    keep_valid_rows: bool,
    progress: Callable[..., None] | None,
    on_error: Callable[[RowError], None] | None,
) -> ImportResult:
    """Validate ``rows`` with ``clean`` and hand them to ``write`` in batches, in one
    transaction that is rolled back if a row has an error and ``keep_valid_rows`` is off."""
    report = _ErrorReport(on_error)
    result = ImportResult(
        rows_read=0, created=0, updated=0, errors=report.kept, error_count=0, committed=False
    )

    def may_write() -> bool:
        # Once a row has failed, an all-or-nothing import only validates the rest.
        return keep_valid_rows or report.rows == 0

    with transaction.atomic():
        for batch in _read_ahead(_batches(rows, kind=kind, clean=clean)):
            result.rows_read = batch.rows_read
            for problems in batch.problems:
                report.add(problems)
            if batch.valid:
                write(batch.valid, report=report, result=result, may_write=may_write)
            report.release()
            if progress is not None:
                progress(rows_read=result.rows_read)
        result.error_count = report.rows
        result.committed = may_write()
        if not result.committed:
            transaction.set_rollback(True)
            result.created = result.updated = result.products_created = 0
    return result


# --- Customers ------------------------------------------------------------------------------

_CUSTOMER_FIELDS = [name for name in _CUSTOMER_CLEANERS if name != "email_opt_in"]
_CUSTOMER_STATE = ["external_id", *_CUSTOMER_FIELDS, "email_opt_in", "email_opt_in_at"]


def _customer_writer(*, user, source: str):
    new_customer = {name: Customer._meta.get_field(name).get_default() for name in _CUSTOMER_STATE}
    recorded_by = user if user is not None and user.is_authenticated else None

    def write(batch: list, *, report: _ErrorReport, result: ImportResult, may_write) -> None:
        now = timezone.now()
        ids = {values["external_id"] for _line, values in batch}
        stored = {
            customer["external_id"]: customer
            for customer in Customer.objects.filter(external_id__in=ids)
            .select_for_update()
            .values(*_CUSTOMER_STATE, "erased_at")
        }
        merged: dict[str, dict] = {}
        consents: list[tuple[str, bool]] = []
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
                    state = dict(new_customer)
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
                consents.append((external_id, opted_in))
        if not merged or not may_write():
            return
        customers = []
        for state in merged.values():
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
                Customer.objects.filter(
                    external_id__in={external_id for external_id, _opt in consents}
                ).values_list("external_id", "id")
            )
            ConsentRecord.objects.bulk_create(
                ConsentRecord(
                    customer_id=ids[external_id],
                    opted_in=opted_in,
                    recorded_at=now,
                    source=ConsentSource.IMPORT,
                    form=source[:200],
                    recorded_by=recorded_by,
                )
                for external_id, opted_in in consents
            )

    return write


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

    return _run(
        rows,
        kind=ImportKind.CUSTOMERS,
        clean=clean,
        write=_customer_writer(user=user, source=source),
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


class _PortablePurchaseWriter:
    """Any database: look-ups by batch, then bulk_create(update_conflicts=True)."""

    def __init__(self, tz):
        self.tz = tz

    def __call__(self, batch: list, *, report: _ErrorReport, result: ImportResult, may_write):
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
        existing = set(
            Purchase.objects.filter(order_id__in=orders).values_list("order_id", flat=True)
        )
        result.created += len(orders) - len(existing)
        result.updated += len(existing)
        Purchase.objects.bulk_create(
            [
                Purchase(
                    order_id=order_id,
                    customer_id=customer_ids[row[_CUSTOMER]],
                    purchased_at=_aware(row[_LOCAL_AT], row[_AT], self.tz),
                    total=Decimal(row[_TOTAL]),
                    status=row[_STATUS],
                    channel=row[_CHANNEL],
                )
                for order_id, row in orders.items()
            ],
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

    def close(self) -> None:
        pass

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


class _PostgresPurchaseWriter:
    """The PostgreSQL fast path: each batch is COPied into a temporary staging table and
    written by a few set-based statements.

    Customers are looked up through their unique index row by row (a LATERAL subquery), so
    the plan never depends on statistics of the customers table; item lines join the
    purchases just written (RETURNING), never the whole purchases table.
    """

    _STAGING = "import_purchase_rows"

    def __init__(self, tz_name: str):
        quote = connection.ops.quote_name
        self.tz_name = tz_name
        self.customer = quote(Customer._meta.db_table)
        self.product = quote(Product._meta.db_table)
        self.purchase = quote(Purchase._meta.db_table)
        self.item = quote(PurchaseItem._meta.db_table)
        self.analysed = False
        with connection.cursor() as cursor:
            # Compiling these short statements costs more than running them.
            cursor.execute("SET LOCAL jit = off")
            # Foreign keys are checked per statement: deferred to the commit, the checks of
            # millions of rows would queue up in the server's memory.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            # Dropped with the transaction; an enclosing transaction may still hold one.
            cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{self._STAGING}")
            cursor.execute(
                f"CREATE TEMP TABLE {self._STAGING} ("
                " line bigint, order_id text, customer_external_id text,"
                " purchased_local timestamp, purchased_at timestamptz, total numeric,"
                " status text, channel text, sku text, quantity integer, unit_price numeric"
                ") ON COMMIT DROP"
            )

    def close(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {self._STAGING}")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's default again

    def __call__(self, batch: list, *, report: _ErrorReport, result: ImportResult, may_write):
        staging = self._STAGING
        customer_id = (
            f"SELECT c.id FROM {self.customer} c"  # noqa: S608 (our table names)
            " WHERE c.external_id = s.customer_external_id LIMIT 1"
        )
        buffer = io.StringIO()
        csv.writer(buffer).writerows(batch)
        buffer.seek(0)
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {staging}")
            cursor.copy_expert(f"COPY {staging} FROM STDIN WITH (FORMAT csv)", buffer)
            if not self.analysed:
                cursor.execute(f"ANALYZE {staging}")  # temporary tables get no autovacuum
                self.analysed = True
            cursor.execute(
                f"SELECT s.line, s.customer_external_id FROM {staging} s"  # noqa: S608
                f" LEFT JOIN LATERAL ({customer_id}) c ON true WHERE c.id IS NULL"
            )
            unknown = cursor.fetchall()
            if unknown:
                for line, external_id in unknown:
                    report.add([_unknown_customer(line, external_id)])
                cursor.execute(
                    f"DELETE FROM {staging} WHERE line = ANY(%s)",  # noqa: S608
                    [[line for line, _id in unknown]],
                )
            if not may_write():
                return
            cursor.execute(
                f"INSERT INTO {self.product} (sku, name, category, price)"  # noqa: S608
                f" SELECT DISTINCT ON (s.sku) s.sku, s.sku, '', s.unit_price FROM {staging} s"
                " WHERE s.sku IS NOT NULL"
                f" AND NOT EXISTS (SELECT 1 FROM {self.product} p WHERE p.sku = s.sku)"
                " ORDER BY s.sku, s.line ON CONFLICT (sku) DO NOTHING"
            )
            result.products_created += cursor.rowcount
            # Items of a purchase this statement creates cannot exist yet: a plain insert;
            # those of an existing purchase are upserted.
            cursor.execute(
                "WITH upserted AS ("  # noqa: S608
                f" INSERT INTO {self.purchase}"
                " (order_id, customer_id, purchased_at, total, status, channel)"
                " SELECT DISTINCT ON (s.order_id) s.order_id, c.id,"
                " COALESCE(s.purchased_at, s.purchased_local AT TIME ZONE %s), s.total,"
                " s.status, COALESCE(s.channel, '')"
                f" FROM {staging} s CROSS JOIN LATERAL ({customer_id}) c"
                " ORDER BY s.order_id, s.line DESC"
                " ON CONFLICT (order_id) DO UPDATE SET customer_id = EXCLUDED.customer_id,"
                " purchased_at = EXCLUDED.purchased_at, total = EXCLUDED.total,"
                " status = EXCLUDED.status, channel = EXCLUDED.channel"
                " RETURNING id, order_id, xmax = 0 AS inserted"
                "), lines AS ("
                " SELECT DISTINCT ON (s.order_id, s.sku) u.id AS purchase_id,"
                " p.id AS product_id, s.quantity, s.unit_price, u.inserted"
                f" FROM {staging} s JOIN upserted u ON u.order_id = s.order_id"
                f" JOIN {self.product} p ON p.sku = s.sku"
                " ORDER BY s.order_id, s.sku, s.line DESC"
                "), added AS ("
                f" INSERT INTO {self.item} (purchase_id, product_id, quantity, unit_price)"
                " SELECT purchase_id, product_id, quantity, unit_price FROM lines WHERE inserted"
                "), changed AS ("
                f" INSERT INTO {self.item} (purchase_id, product_id, quantity, unit_price)"
                " SELECT purchase_id, product_id, quantity, unit_price FROM lines"
                " WHERE NOT inserted"
                " ON CONFLICT (purchase_id, product_id) DO UPDATE"
                " SET quantity = EXCLUDED.quantity, unit_price = EXCLUDED.unit_price"
                ") SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)"
                " FROM upserted",
                [self.tz_name],
            )
            created, updated = cursor.fetchone()
            result.created += created
            result.updated += updated


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
    with transaction.atomic():
        # Inside the transaction: the staging table lives as long as it does.
        if connection.vendor == "postgresql":
            writer = _PostgresPurchaseWriter(settings.TIME_ZONE)
        else:
            writer = _PortablePurchaseWriter(timezone.get_default_timezone())
        result = _run(
            rows,
            kind=ImportKind.PURCHASES,
            clean=_purchase_cleaner(),
            write=writer,
            keep_valid_rows=keep_valid_rows,
            progress=progress,
            on_error=on_error,
        )
        writer.close()
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
