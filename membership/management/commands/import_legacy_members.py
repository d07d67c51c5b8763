"""manage.py import_legacy_members FILE [--source NAME] [--dry-run] [--skip-invalid] [--errors OUT] (CONTRACT 1, 4)."""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.management.legacy_import import LegacyImportCommand
from membership.legacy import MEMBER_COLUMNS, members_import, source_clean, source_from_filename


class Command(LegacyImportCommand):
    help = (
        "Import members from a legacy member system (CSV in UTF-8, UTF-8 with BOM or GBK, or XLSX; English or "
        "Chinese headers: member_no 会员号, name 姓名, phone 手机号, id_number 身份证号, birth_date 出生日期, "
        "tier_code 等级, points 积分, store_code 注册门店, registered_at 注册时间). Rows with the same ID number "
        "become one member; a second run of the same file creates nothing new. Without --skip-invalid, a file "
        "with any invalid row writes nothing."
    )

    columns = MEMBER_COLUMNS
    source_help = gettext_lazy(
        "Name of the legacy system the numbers come from, kept with each legacy member number "
        "(default: the file name without extension, upper-cased: dept_crm.csv -> DEPT_CRM)."
    )

    def source_clean(self, value: str) -> str:
        return source_clean(value)

    def source_from_filename(self, name: str) -> str:
        return source_from_filename(name)

    def run_import(self, *, reader, **options):
        return members_import(rows=reader, **options)

    def summary(self, report, source: str) -> str:
        counts = {
            "source": source, "rows": report.rows, "created": report.created, "updated": report.updated,
            "unchanged": report.unchanged, "rejected": report.rejected, "points": report.points,
            "candidates": report.merge_candidates,
        }
        if report.dry_run:
            return _(
                "Dry run of %(rows)s rows as source %(source)s, nothing written: would create %(created)s, "
                "update %(updated)s (attach to an existing member), leave %(unchanged)s unchanged, "
                "reject %(rejected)s; %(points)s points; %(candidates)s merge candidates."
            ) % counts
        return _(
            "Imported %(rows)s rows as source %(source)s: created %(created)s, updated %(updated)s "
            "(attached to an existing member), unchanged %(unchanged)s, rejected %(rejected)s; "
            "%(points)s points migrated; %(candidates)s merge candidates to review."
        ) % counts
