from functools import partial
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from cards.legacy import CARD_COLUMNS, cards_import, source_clean, source_from_filename
from core.errors import DomainError
from core.tabular import ErrorFileWriter, TableReader


class Command(BaseCommand):
    help = (
        "Import prepaid cards from a legacy card system (CSV in UTF-8, UTF-8 with BOM or GBK, or XLSX; English or "
        "Chinese headers: card_no 卡号, product_code 卡类型, balance 余额, status 状态 (active, frozen, expired, "
        "closed, inactive), issued_at 发卡日期, expires_at 有效期, holder_member_no 持卡会员号, store_code 售卡门店). "
        "Each balance arrives as one opening ledger entry of kind migration; a second run of the same file creates "
        "nothing new. Without --skip-invalid, a file with any invalid row writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help=gettext_lazy("The CSV or XLSX file."))
        parser.add_argument(
            "--source",
            help=gettext_lazy(
                "Name of the legacy system the cards come from, kept on each card "
                "(default: the file name without extension, upper-cased: dept_cards.csv -> DEPT_CARDS)."
            ),
        )
        parser.add_argument("--dry-run", action="store_true", help=gettext_lazy(
            "Read and validate the whole file, print what would happen, write nothing."))
        parser.add_argument("--skip-invalid", action="store_true", help=gettext_lazy(
            "Import the valid rows and leave out the invalid ones (see --errors)."))
        parser.add_argument("--errors", metavar="OUT", help=gettext_lazy(
            "Write rejected rows with a reason column to this CSV file (UTF-8 with BOM)."))

    def handle(self, *args, **options):
        path = Path(options["file"])
        try:
            source = source_clean(options["source"]) if options["source"] else source_from_filename(path.name)
            with TableReader(path, CARD_COLUMNS) as reader:
                if reader.header.unknown:
                    self.stdout.write(_("Ignored columns: %(columns)s") % {"columns": ", ".join(reader.header.unknown)})
                run = partial(cards_import, reader=reader, source=source, dry_run=options["dry_run"],
                              skip_invalid=options["skip_invalid"])
                if options["errors"]:
                    with ErrorFileWriter(options["errors"], reader.header.headers) as errors:
                        report = run(on_reject=lambda row, rejection: errors.write(row.cells, str(rejection)))
                else:
                    report = run()
        except DomainError as error:
            raise CommandError(_("%(file)s: %(error)s") % {"file": path.name, "error": error}) from None
        except OSError as error:
            raise CommandError(_("%(file)s: %(error)s") % {"file": path.name, "error": error.strerror}) from None
        except DatabaseError as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise CommandError(_("%(file)s: nothing was imported: %(error)s")
                               % {"file": path.name, "error": first_line}) from None

        if report.rejected and not options["skip_invalid"] and not options["dry_run"]:
            raise CommandError(
                ngettext(
                    "%(count)s row is invalid, so nothing was imported; the first: %(first)s",
                    "%(count)s rows are invalid, so nothing was imported; the first: %(first)s",
                    report.rejected,
                ) % {"count": report.rejected, "first": report.first_rejection}
                + " " + _("Fix the file, or import the valid rows with --skip-invalid.")
            )
        counts = {
            "source": source, "rows": report.rows, "created": report.created, "unchanged": report.unchanged,
            "rejected": report.rejected, "balances": report.balances, "entries": report.entries,
            "statuses": ", ".join(f"{status} {count}" for status, count in sorted(report.by_status.items())) or "-",
        }
        if report.dry_run:
            self.stdout.write(_(
                "Dry run of %(rows)s rows as source %(source)s, nothing written: would create %(created)s cards "
                "(%(statuses)s), leave %(unchanged)s unchanged, reject %(rejected)s; %(balances)s in balances "
                "in %(entries)s opening ledger entries."
            ) % counts)
            if report.rejected and not options["skip_invalid"]:
                self.stdout.write(_("Without --skip-invalid nothing would be imported; the first invalid row: "
                                    "%(first)s") % {"first": report.first_rejection})
        else:
            self.stdout.write(_(
                "Imported %(rows)s rows as source %(source)s: created %(created)s cards (%(statuses)s), "
                "unchanged %(unchanged)s, rejected %(rejected)s; %(balances)s migrated in %(entries)s opening "
                "ledger entries."
            ) % counts)
        if report.rejected and options["errors"]:
            self.stdout.write(_("Rejected rows with their reasons: %(path)s") % {"path": options["errors"]})
