import time

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from core.ledgers import ledgers_check, registered_checks


class Command(BaseCommand):
    help = (
        "Verify that every cached balance (member points, card balances ...) equals the sum of its ledger. "
        "Prints the number of accounts checked; exits 1 and lists the first differences if any."
    )

    def add_arguments(self, parser):
        parser.add_argument("--show", type=int, default=20, metavar="N",
                            help="How many differences to list at most (default 20).")
        parser.add_argument("--batch-size", type=int, default=10_000, metavar="N",
                            help="Accounts read per aggregate query (default 10000).")
        parser.add_argument("--only", action="append", metavar="CHECK",
                            help="Run only this check (repeatable); one of: "
                                 + ", ".join(check.name for check in registered_checks()))

    def handle(self, *args, show, batch_size, only, **options):
        if batch_size < 1 or show < 0:
            raise CommandError("--batch-size must be at least 1 and --show at least 0.")
        started = time.monotonic()
        try:
            report = ledgers_check(batch_size=batch_size, keep=show, only=only)
        except KeyError as error:
            raise CommandError(f"No such ledger check: {error.args[0]}.") from None
        except DatabaseError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CommandError(f"Cannot read the ledgers ({first_line}); is the database migrated?") from None
        elapsed = time.monotonic() - started
        for name, checked in report.per_check.items():
            self.stdout.write(f"{name}: {checked} accounts")
        if report.ok:
            self.stdout.write(self.style.SUCCESS(
                f"Checked {report.checked} accounts in {elapsed:.1f}s: every balance equals its ledger."
            ))
            return
        for difference in report.differences:
            self.stdout.write(f"  {difference}")
        if report.difference_count > len(report.differences):
            self.stdout.write(f"  ... and {report.difference_count - len(report.differences)} more")
        raise CommandError(
            f"{report.difference_count} difference(s) between balances and ledgers "
            f"in {report.checked} accounts checked."
        )
