from django.conf import settings
from django.core.management.base import BaseCommand

from campaigns.demo import create_demo_campaigns
from crm.demo import DEMO_USERS, create_demo_users
from customers.demo_data import seed_demo_data
from customers.models import Customer
from segments.demo import score_and_segment_demo_data


class Command(BaseCommand):
    help = (
        "Create the demo users (one per role) if they do not exist and, while there is no "
        "customer yet, demo customers with their purchases and tickets; print the logins."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--customers",
            type=int,
            default=2000,
            help="Demo customers to create on the first run (default 2000; 0 for none).",
        )

    def handle(self, *args, customers, **options):
        created = create_demo_users(password=settings.DEMO_PASSWORD)
        if created:
            self.stdout.write(f"Created {len(created)} demo users.")
        # Only an empty CRM gets demo data: a later run never touches real or edited data.
        if customers > 0 and not Customer.objects.exists():
            self.stdout.write(f"Creating {customers:,} demo customers...")
            summary = seed_demo_data(customers=customers, purchases_per_customer=6)
            self.stdout.write(
                f"Created {summary.customers:,} customers with {summary.purchases:,} purchases, "
                f"{summary.tickets:,} support tickets and {summary.interactions:,} "
                f"interactions in {summary.seconds:.1f} s."
            )
            run, segments = score_and_segment_demo_data()
            self.stdout.write(
                f"Scored {run.customers_scored:,} customers (scoring run #{run.pk}); "
                f"created {len(segments)} demo segments."
            )
            campaigns = create_demo_campaigns()
            self.stdout.write(f"Created {len(campaigns)} demo campaigns and automations.")
        self.stdout.write("Demo logins (username / password / role):")
        for demo in DEMO_USERS:
            self.stdout.write(f"  {demo.username:<10} {settings.DEMO_PASSWORD}  {demo.role.value}")
