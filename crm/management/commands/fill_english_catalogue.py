from babel.messages.pofile import read_po, write_po
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Complete the English catalogue after makemessages: the source strings are English, "
        "so every untranslated or fuzzy entry gets its msgid as translation."
    )

    def handle(self, *args, **options):
        path = settings.BASE_DIR / "locale" / "en" / "LC_MESSAGES" / "django.po"
        with path.open("rb") as source:
            catalogue = read_po(source, locale="en")
        filled = 0
        for message in catalogue:
            if not message.id:
                continue
            if message.fuzzy or not message.string or not any(message.string):
                message.string = message.id
                message.flags.discard("fuzzy")
                filled += 1
        catalogue.fuzzy = False
        with path.open("wb") as target:
            write_po(target, catalogue, width=100, omit_header=False)
        self.stdout.write(f"Filled {filled} English entries in {path}.")
