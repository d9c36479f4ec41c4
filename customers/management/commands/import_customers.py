from customers.management.commands.import_purchases import ImportCommand
from customers.models import ImportKind


class Command(ImportCommand):
    help = (
        "Import customers from a CSV file (UTF-8 or Shift_JIS, with a header row), matched on "
        "external_id; an empty cell leaves the stored value unchanged. Exits with status 1 if "
        "any row has an error."
    )
    kind = ImportKind.CUSTOMERS
