from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.demo_data import DemoDataError, flushed_models, seed_demo_data


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Generate realistic demo data: Japanese customers with purchases, support tickets and "
        "interactions. Refuses to run when the database already has customers unless --append "
        "(add more) or --flush (first delete ALL data of the customers app) is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=_positive_int, required=True)
        parser.add_argument(
            "--seed", type=int, default=42, help="Same seed, same data (default 42)."
        )
        parser.add_argument(
            "--purchases-per-customer",
            type=float,
            default=10.0,
            metavar="MEAN",
            help="Mean number of purchases per customer (default 10).",
        )
        parser.add_argument(
            "--years", type=_positive_int, default=3, help="Years of history (default 3)."
        )
        parser.add_argument(
            "--end",
            type=date.fromisoformat,
            help="Last day with purchases, YYYY-MM-DD (default: yesterday).",
        )
        existing = parser.add_mutually_exclusive_group()
        existing.add_argument(
            "--append", action="store_true", help="Add to the customers already in the database."
        )
        existing.add_argument(
            "--flush",
            action="store_true",
            help="Delete every customer, purchase, ticket, interaction, product, tag, consent "
            "record and import of the customers app (and rows of other apps that refer to "
            "them) before seeding. Users and other data stay.",
        )

    def handle(self, *args, **options) -> None:
        existing = "append" if options["append"] else "flush" if options["flush"] else "refuse"
        if existing == "flush":
            tables = ", ".join(m._meta.db_table for m in flushed_models())
            self.stdout.write(f"Flushing {tables}")
        verbose = options["verbosity"] >= 1
        try:
            summary = seed_demo_data(
                customers=options["customers"],
                seed=options["seed"],
                purchases_per_customer=options["purchases_per_customer"],
                years=options["years"],
                end=options["end"],
                existing=existing,
                progress=self.stdout.write if verbose else None,
            )
        except DemoDataError as error:
            raise CommandError(error) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {summary.customers:,} customers, {summary.purchases:,} purchases "
                f"({summary.items:,} items), {summary.tickets:,} tickets "
                f"({summary.replies:,} replies), {summary.interactions:,} interactions and "
                f"{summary.consent_records:,} consent records in {summary.seconds:.1f} s."
            )
        )
