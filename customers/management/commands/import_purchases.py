from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from customers.importing import ErrorCsv, ImportFileError, RowError, import_file
from customers.models import ImportKind

# Row errors printed to the terminal; --errors-csv writes all of them.
ERRORS_PRINTED = 20


class ImportCommand(BaseCommand):
    """``import_customers`` and ``import_purchases``: the same options and report."""

    kind: str

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="the CSV file")
        parser.add_argument(
            "--keep-valid-rows",
            action="store_true",
            help="import the valid rows even if some rows have errors",
        )
        parser.add_argument(
            "--errors-csv", type=Path, metavar="PATH", help="write every row error to this CSV"
        )
        parser.add_argument(
            "--user", metavar="USERNAME", help="record the import (and consents) as this user"
        )

    def handle(self, *args, file: Path, keep_valid_rows: bool, errors_csv, user, **options):
        importer = None
        if user:
            try:
                importer = get_user_model().objects.get_by_natural_key(user)
            except get_user_model().DoesNotExist:
                raise CommandError(_("No user is called %(name)s.") % {"name": user}) from None
        with ExitStack() as files:
            try:
                source = files.enter_context(file.open("rb"))
                report = (
                    files.enter_context(errors_csv.open("w", encoding="utf-8-sig", newline=""))
                    if errors_csv
                    else None
                )
            except OSError as error:
                raise CommandError(
                    _("Cannot open %(file)s: %(error)s")
                    % {"file": error.filename, "error": error.strerror}
                ) from None
            on_error = ErrorCsv(report) if report else None
            try:
                _job, result = import_file(
                    kind=self.kind,
                    file=source,
                    file_name=file.name,
                    keep_valid_rows=keep_valid_rows,
                    total_bytes=os.fstat(source.fileno()).st_size,
                    user=importer,
                    on_error=on_error,
                )
            except ImportFileError as error:
                if on_error:
                    on_error(RowError(error.line or 0, "", str(error)))
                raise CommandError(str(error)) from None
        self._report(result, keep_valid_rows=keep_valid_rows, errors_csv=errors_csv)

    def _report(self, result, *, keep_valid_rows: bool, errors_csv) -> None:
        self.stdout.write(
            ngettext(
                "%(rows)s row read: %(created)s created, %(updated)s updated.",
                "%(rows)s rows read: %(created)s created, %(updated)s updated.",
                result.rows_read,
            )
            % {"rows": result.rows_read, "created": result.created, "updated": result.updated}
        )
        if result.products_created:
            self.stdout.write(
                ngettext(
                    "%(count)s product was created for an unknown SKU.",
                    "%(count)s products were created for unknown SKUs.",
                    result.products_created,
                )
                % {"count": result.products_created}
            )
        if not result.error_count:
            return
        for error in result.errors[:ERRORS_PRINTED]:
            self.stderr.write(str(error))
        if len(result.errors) > ERRORS_PRINTED or result.error_count > len(result.errors):
            self.stderr.write(
                _("… and more: %(hint)s")
                % {
                    "hint": _("see %(path)s") % {"path": errors_csv}
                    if errors_csv
                    else _("use --errors-csv PATH for the full report")
                }
            )
        if keep_valid_rows:
            summary = ngettext(
                "%(count)s row has errors and was skipped; the valid rows were imported.",
                "%(count)s rows have errors and were skipped; the valid rows were imported.",
                result.error_count,
            )
        else:
            summary = ngettext(
                "%(count)s row has errors: nothing was imported "
                "(use --keep-valid-rows to import the valid rows).",
                "%(count)s rows have errors: nothing was imported "
                "(use --keep-valid-rows to import the valid rows).",
                result.error_count,
            )
        raise CommandError(summary % {"count": result.error_count})


class Command(ImportCommand):
    help = (
        "Import purchases (with their items) from a CSV file (UTF-8 or Shift_JIS, with a header "
        "row), matched on order_id. Exits with status 1 if any row has an error."
    )
    kind = ImportKind.PURCHASES
