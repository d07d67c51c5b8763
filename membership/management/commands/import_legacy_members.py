from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from core.errors import DomainError
from core.tabular import ErrorFileWriter, TableReader
from membership.legacy import MEMBER_COLUMNS, members_import, source_clean, source_from_filename


class Command(BaseCommand):
    help = (
        "Import members from a legacy member system (CSV in UTF-8, UTF-8 with BOM or GBK, or XLSX; English or "
        "Chinese headers: member_no 会员号, name 姓名, phone 手机号, id_number 身份证号, birth_date 出生日期, "
        "tier_code 等级, points 积分, store_code 注册门店, registered_at 注册时间). Rows with the same ID number "
        "become one member; a second run of the same file creates nothing new. Without --skip-invalid, a file "
        "with any invalid row writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help=gettext_lazy("The CSV or XLSX file."))
        parser.add_argument(
            "--source",
            help=gettext_lazy(
                "Name of the legacy system the numbers come from, kept with each legacy member number "
                "(default: the file name without extension, upper-cased: dept_crm.csv -> DEPT_CRM)."
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
            with TableReader(path, MEMBER_COLUMNS) as reader:
                if reader.header.unknown:
                    self.stdout.write(_("Ignored columns: %(columns)s") % {"columns": ", ".join(reader.header.unknown)})
                if options["errors"]:
                    with ErrorFileWriter(options["errors"], reader.header.headers) as errors:
                        report = members_import(
                            rows=reader, source=source, dry_run=options["dry_run"],
                            skip_invalid=options["skip_invalid"],
                            on_reject=lambda row, rejection: errors.write(row.cells, str(rejection)),
                        )
                else:
                    report = members_import(rows=reader, source=source, dry_run=options["dry_run"],
                                            skip_invalid=options["skip_invalid"])
        except DomainError as error:
            raise CommandError(_("%(file)s: %(error)s") % {"file": path.name, "error": error}) from None
        except OSError as error:
            raise CommandError(_("%(file)s: %(error)s") % {"file": path.name, "error": error.strerror}) from None

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
            "source": source, "rows": report.rows, "created": report.created, "updated": report.updated,
            "unchanged": report.unchanged, "rejected": report.rejected, "points": report.points,
            "candidates": report.merge_candidates,
        }
        if report.dry_run:
            self.stdout.write(_(
                "Dry run of %(rows)s rows as source %(source)s, nothing written: would create %(created)s, "
                "update %(updated)s (attach to an existing member), leave %(unchanged)s unchanged, "
                "reject %(rejected)s; %(points)s points; %(candidates)s merge candidates."
            ) % counts)
            if report.rejected and not options["skip_invalid"]:
                self.stdout.write(_("Without --skip-invalid nothing would be imported; the first invalid row: "
                                    "%(first)s") % {"first": report.first_rejection})
        else:
            self.stdout.write(_(
                "Imported %(rows)s rows as source %(source)s: created %(created)s, updated %(updated)s "
                "(attached to an existing member), unchanged %(unchanged)s, rejected %(rejected)s; "
                "%(points)s points migrated; %(candidates)s merge candidates to review."
            ) % counts)
        if report.rejected and options["errors"]:
            self.stdout.write(_("Rejected rows with their reasons: %(path)s") % {"path": options["errors"]})
