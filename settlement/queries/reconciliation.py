"""Reads of reconciliation shared by the admin, the Excel report and the period close."""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db.models import Count, Q, QuerySet

from settlement.models import ReconDay, ReconException
from stores.models import Store

__all__ = ["ReconReportRow", "recon_days_open_in", "recon_report"]


@dataclass
class ReconReportRow:
    """One store's reconciliation of one day."""

    store: Store
    day: ReconDay
    pos_lines: int
    ledger_rows: int
    matched: int
    exceptions: int
    exceptions_open: int
    pos_total: Decimal
    ledger_total: Decimal
    status: str
    status_label: str
    by_kind: dict[str, int] = field(default_factory=dict)  # ReconException.Kind -> count, every status

    @property
    def difference(self) -> Decimal:
        return self.pos_total - self.ledger_total


def recon_report(*, business_date: date, stores=None) -> list[ReconReportRow]:
    """The reconciliation of a day per store (ordered by store code): lines, ledger rows, matched, exceptions by
    kind, how many are still open, totals and status. `stores` (a queryset or list) limits it to those stores."""
    days = ReconDay.objects.filter(business_date=business_date).select_related("store").order_by("store__code")
    if stores is not None:
        days = days.filter(store__in=stores)
    days = list(days)
    kinds: dict[int, dict[str, int]] = {}
    rows = (ReconException.objects.filter(day__in=days).order_by().values("day_id", "kind")
            .annotate(count=Count("pk")).values_list("day_id", "kind", "count"))
    for day_id, kind, count in rows:
        kinds.setdefault(day_id, {})[kind] = count
    return [
        ReconReportRow(
            store=day.store, day=day, pos_lines=day.pos_lines, ledger_rows=day.ledger_rows, matched=day.matched,
            exceptions=day.exceptions, exceptions_open=day.exceptions_open, pos_total=day.pos_total,
            ledger_total=day.ledger_total, status=day.status, status_label=day.get_status_display(),
            by_kind={kind: kinds.get(day.pk, {}).get(kind, 0) for kind in ReconException.Kind.values},
        )
        for day in days
    ]


def recon_days_open_in(start: date, end: date) -> QuerySet:
    """The reconciliation days from `start` to `end` (inclusive) whose exceptions are not all worked off,
    ordered by day and store code: a period with any of them cannot close."""
    return (ReconDay.objects.filter(business_date__gte=start, business_date__lte=end)
            .filter(Q(status=ReconDay.Status.OPEN)).select_related("store").order_by("business_date", "store__code"))
