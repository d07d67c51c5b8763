"""manage.py import_legacy_cards FILE [--source NAME] [--dry-run] [--skip-invalid] [--errors OUT] (CONTRACT 1, 4)."""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from cards.legacy import CARD_COLUMNS, cards_import, source_clean, source_from_filename
from core.management.legacy_import import LegacyImportCommand


class Command(LegacyImportCommand):
    help = (
        "Import prepaid cards from a legacy card system (CSV in UTF-8, UTF-8 with BOM or GBK, or XLSX; English or "
        "Chinese headers: card_no 卡号, product_code 卡类型, balance 余额, status 状态 (active, frozen, expired, "
        "closed, inactive), issued_at 发卡日期, expires_at 有效期, holder_member_no 持卡会员号, store_code 售卡门店). "
        "Each balance arrives as one opening ledger entry of kind migration; a second run of the same file creates "
        "nothing new. Without --skip-invalid, a file with any invalid row writes nothing."
    )

    columns = CARD_COLUMNS
    source_help = gettext_lazy(
        "Name of the legacy system the cards come from, kept on each card "
        "(default: the file name without extension, upper-cased: dept_cards.csv -> DEPT_CARDS)."
    )
    database_errors_reported = True

    def source_clean(self, value: str) -> str:
        return source_clean(value)

    def source_from_filename(self, name: str) -> str:
        return source_from_filename(name)

    def run_import(self, **options):
        return cards_import(**options)

    def summary(self, report, source: str) -> str:
        counts = {
            "source": source, "rows": report.rows, "created": report.created, "unchanged": report.unchanged,
            "rejected": report.rejected, "balances": report.balances, "entries": report.entries,
            "statuses": ", ".join(f"{status} {count}" for status, count in sorted(report.by_status.items())) or "-",
        }
        if report.dry_run:
            return _(
                "Dry run of %(rows)s rows as source %(source)s, nothing written: would create %(created)s cards "
                "(%(statuses)s), leave %(unchanged)s unchanged, reject %(rejected)s; %(balances)s in balances "
                "in %(entries)s opening ledger entries."
            ) % counts
        return _(
            "Imported %(rows)s rows as source %(source)s: created %(created)s cards (%(statuses)s), "
            "unchanged %(unchanged)s, rejected %(rejected)s; %(balances)s migrated in %(entries)s opening "
            "ledger entries."
        ) % counts
