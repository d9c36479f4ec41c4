from django.conf import settings
from django.core.management.base import BaseCommand

from crm.demo import DEMO_USERS, create_demo_users


class Command(BaseCommand):
    help = "Create the demo users (one per role) if they do not exist, and print the logins."

    def handle(self, *args, **options):
        created = create_demo_users(password=settings.DEMO_PASSWORD)
        if created:
            self.stdout.write(f"Created {len(created)} demo users.")
        self.stdout.write("Demo logins (username / password / role):")
        for demo in DEMO_USERS:
            self.stdout.write(f"  {demo.username:<10} {settings.DEMO_PASSWORD}  {demo.role.value}")
