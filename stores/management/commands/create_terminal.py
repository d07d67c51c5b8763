from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from stores import services


class Command(BaseCommand):
    help = "Create a POS terminal for a store and print its API key as the last line (shown only once)."

    def add_arguments(self, parser):
        parser.add_argument("--store", required=True, help="Store code, e.g. DEPT001.")
        parser.add_argument("--name", required=True, help="Terminal name, unique within the store, e.g. T1.")

    def handle(self, *args, **options):
        name = options["name"].strip()
        if not name or len(name) > 50:
            raise CommandError("--name must be 1 to 50 characters")
        try:
            terminal, key = services.terminal_create(store_code=options["store"].strip(), name=name)
        except DomainError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"Terminal {terminal} created. Keep this API key; it is not shown again:")
        self.stdout.write(key)
