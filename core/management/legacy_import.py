"""What every legacy import command shares (CONTRACT section 1): the options, reading the file, the error file,
the exit codes and the lines around the summary. A command names its columns, its import and its summary."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from core.errors import DomainError
from core.tabular import ErrorFileWriter, TableReader


class LegacyImportCommand(BaseCommand):
    columns = ()
    source_help = ""
    # A database error (a rare conflict with another writer) becomes a one-line reason instead of a traceback.
    database_errors_reported = False

    def source_clean(self, value: str) -> str:
        raise NotImplementedError

    def source_from_filename(self, name: str) -> str:
        raise NotImplementedError

    def run_import(self, *, reader: TableReader, source: str, dry_run: bool, skip_invalid: bool, on_reject=None):
        """Import the rows; return the report (rows, rejected, first_rejection, dry_run and the command's own)."""
        raise NotImplementedError

    def summary(self, report, source: str) -> str:
        """The line saying what was (or, in a dry run, would be) imported."""
        raise NotImplementedError

    def add_arguments(self, parser):
        parser.add_argument("file", help=gettext_lazy("The CSV or XLSX file."))
        parser.add_argument("--source", help=self.source_help)
        parser.add_argument("--dry-run", action="store_true", help=gettext_lazy(
            "Read and validate the whole file, print what would happen, write nothing."))
        parser.add_argument("--skip-invalid", action="store_true", help=gettext_lazy(
            "Import the valid rows and leave out the invalid ones (see --errors)."))
        parser.add_argument("--errors", metavar="OUT", help=gettext_lazy(
            "Write rejected rows with a reason column to this CSV file (UTF-8 with BOM)."))

    def handle(self, *args, **options):
        path = Path(options["file"])
        caught = (DatabaseError,) if self.database_errors_reported else ()
        try:
            source = (self.source_clean(options["source"]) if options["source"]
                      else self.source_from_filename(path.name))
            with TableReader(path, self.columns) as reader:
                if reader.header.unknown:
                    self.stdout.write(_("Ignored columns: %(columns)s") % {"columns": ", ".join(reader.header.unknown)})
                run = {"reader": reader, "source": source, "dry_run": options["dry_run"],
                       "skip_invalid": options["skip_invalid"]}
                if options["errors"]:
                    with ErrorFileWriter(options["errors"], reader.header.headers) as errors:
                        report = self.run_import(
                            **run, on_reject=lambda row, rejection: errors.write(row.cells, str(rejection)))
                else:
                    report = self.run_import(**run)
        except DomainError as error:
            raise CommandError(_("%(file)s: %(error)s") % {"file": path.name, "error": error}) from None
        except OSError as error:
            raise CommandError(_("%(file)s: %(error)s") % {"file": path.name, "error": error.strerror}) from None
        except caught as error:
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
        self.stdout.write(self.summary(report, source))
        if report.dry_run and report.rejected and not options["skip_invalid"]:
            self.stdout.write(_("Without --skip-invalid nothing would be imported; the first invalid row: "
                                "%(first)s") % {"first": report.first_rejection})
        if report.rejected and options["errors"]:
            self.stdout.write(_("Rejected rows with their reasons: %(path)s") % {"path": options["errors"]})
