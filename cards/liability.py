"""Outstanding prepaid balances and escrow (DESIGN section 7, 商务部令2012年第9号): read-side only.

The outstanding balance of an issuer at a day's end is the sum of its cards' ledger up to then. Summing the whole
ledger for every quarter end would read every entry ever written; instead the balances now (the card balances,
which check_ledgers proves equal to their ledger) are taken back by the entries written since each day's end.
Those are a tail of the ledger, read through its time index (card_ledger_time), all quarter ends in one pass, and
in the same statement as the card balances so both come from one snapshot.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import DecimalField, Q, Sum, Value
from django.utils import timezone
from django.utils.translation import gettext

from cards.models import Card, CardLedgerEntry, CardRules
from stores.models import LegalEntity
from stores.queries import user_is_hq

__all__ = [
    "PERMISSION_VIEW", "IssuerLiability", "LiabilityReport", "RevenueAlert", "day_end", "escrow_required",
    "liability_report", "outstanding_at_days", "quarter_ends", "revenue_alert",
    "user_may_view_liability",
]

PERMISSION_VIEW = "cards.view_card"
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
QUARTERS_SHOWN = 4


def user_may_view_liability(user) -> bool:
    """The group's prepaid liability is headquarters' figure: HQ staff who may view cards, never store staff."""
    return user_is_hq(user) and user.has_perm(PERMISSION_VIEW)


def day_end(day: date) -> datetime:
    """The instant a day ends in the project's time zone (Asia/Shanghai): the next day's midnight."""
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


def quarter_ends(*, today: date, count: int = QUARTERS_SHOWN) -> list[date]:
    """The last `count` quarter ends before `today`'s quarter, oldest first."""
    ends = []
    day = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1) - timedelta(days=1)
    for _ in range(count):
        ends.append(day)
        day = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1) - timedelta(days=1)
    return ends[::-1]


def _money(field: str, **extra):
    return Sum(field, output_field=DecimalField(max_digits=18, decimal_places=2), **extra)


def _zero():
    return Value(ZERO, output_field=DecimalField(max_digits=18, decimal_places=2))


def outstanding_at_days(*, days: Sequence[date]) -> tuple[dict[int | None, Decimal], dict[int | None, list[Decimal]]]:
    """Outstanding balance per issuer id (None: cards without one) now and at the end of each of `days`.

    One SQL statement: the card balances grouped by issuer, and the ledger entries written since the earliest
    day's end grouped by their card's issuer with one filtered sum per day. Returns (now, at_days) where at_days
    lists the balances in the order of `days`.
    """
    ends = [day_end(day) for day in days]
    after = [f"after_{index}" for index in range(len(ends))]
    balances = (
        Card.objects.order_by().filter(balance__gt=0).values("issuer_id")
        .annotate(now=_money("balance"), **{name: _zero() for name in after})
    )
    statement = balances
    if ends:
        tail = (
            CardLedgerEntry.objects.order_by().filter(created_at__gte=min(ends)).values("card__issuer_id")
            .annotate(now=_zero(), **{name: _money("amount", filter=Q(created_at__gte=end))
                                      for name, end in zip(after, ends, strict=True)})
        )
        statement = balances.union(tail, all=True)
    now: dict[int | None, Decimal] = {}
    at_days: dict[int | None, list[Decimal]] = {}
    for issuer_id, balance, *later in statement.values_list("issuer_id", "now", *after):
        now[issuer_id] = now.get(issuer_id, ZERO) + (balance or ZERO)
        previous = at_days.get(issuer_id, [ZERO] * len(ends))
        at_days[issuer_id] = [total + (amount or ZERO) for total, amount in zip(previous, later, strict=True)]
    for issuer_id, written_since in at_days.items():
        balance = now.setdefault(issuer_id, ZERO)
        at_days[issuer_id] = [balance - amount for amount in written_since]
    return now, at_days


def escrow_required(*, balance: Decimal, rate: Decimal, guarantee: Decimal = ZERO) -> Decimal:
    """Escrow to hold: rate x the previous quarter end's outstanding balance less the guarantee, never below 0."""
    return max(ZERO, (rate * balance).quantize(CENT, rounding=ROUND_HALF_UP) - guarantee)


@dataclass(frozen=True)
class RevenueAlert:
    """Outstanding balances above the rules' share of last year's revenue."""

    outstanding: Decimal
    revenue: Decimal
    share: Decimal
    limit: Decimal

    @property
    def message(self) -> str:
        return gettext(
            "Outstanding prepaid balances of %(outstanding)s pass %(share)s%% of last year's revenue of "
            "%(revenue)s (limit %(limit)s)."
        ) % {"outstanding": self.outstanding, "share": _percent(self.share), "revenue": self.revenue,
             "limit": self.limit}


def revenue_alert(*, outstanding: Decimal, rules: CardRules) -> RevenueAlert | None:
    """The alert when outstanding balances pass the share of last year's revenue; None below it or unset revenue."""
    if not rules.last_year_revenue or rules.last_year_revenue <= 0:
        return None
    limit = (rules.revenue_alert_share * rules.last_year_revenue).quantize(CENT, rounding=ROUND_HALF_UP)
    if outstanding <= limit:
        return None
    return RevenueAlert(outstanding=outstanding, revenue=rules.last_year_revenue, share=rules.revenue_alert_share,
                        limit=limit)


@dataclass(frozen=True)
class IssuerLiability:
    issuer: LegalEntity | None  # None: cards sold without an issuer
    outstanding: Decimal
    at_quarter_ends: tuple[Decimal, ...]  # in the order of LiabilityReport.quarter_ends
    escrow: Decimal  # rate x the previous quarter end's balance; the group's guarantee is taken off the total

    @property
    def label(self) -> str:
        return f"{self.issuer.code} {self.issuer.name}" if self.issuer else gettext("unknown issuer")

    @property
    def filing_no(self) -> str:
        return self.issuer.prepaid_filing_no if self.issuer else ""


@dataclass(frozen=True)
class LiabilityReport:
    as_of: datetime
    quarter_ends: tuple[date, ...]  # oldest first; the last is the previous quarter end
    rows: tuple[IssuerLiability, ...]
    outstanding: Decimal
    at_quarter_ends: tuple[Decimal, ...]
    escrow_rate: Decimal
    escrow_base: Decimal  # the previous quarter end's outstanding balance
    escrow_before_guarantee: Decimal
    guarantee: Decimal
    escrow: Decimal
    alert: RevenueAlert | None

    @property
    def escrow_rate_percent(self) -> str:
        return _percent(self.escrow_rate)

    @property
    def issuers_without_filing_no(self) -> list[IssuerLiability]:
        return [row for row in self.rows if row.outstanding and not row.filing_no]


def liability_report(*, today: date | None = None, rules: CardRules | None = None) -> LiabilityReport:
    """Outstanding balances per issuer now and at the last four quarter ends, the escrow due and the alert."""
    today = today or timezone.localdate()
    rules = rules or CardRules.current()
    ends = quarter_ends(today=today)
    now, at_days = outstanding_at_days(days=ends)
    issuer_ids = sorted(set(now) | set(at_days), key=lambda pk: (pk is None, pk or 0))
    issuers = LegalEntity.objects.in_bulk([pk for pk in issuer_ids if pk is not None])
    rows = []
    for issuer_id in issuer_ids:
        at_ends = tuple(at_days.get(issuer_id, [now.get(issuer_id, ZERO)] * len(ends)))
        if not now.get(issuer_id) and not any(at_ends):
            continue
        rows.append(IssuerLiability(
            issuer=issuers.get(issuer_id), outstanding=now.get(issuer_id, ZERO), at_quarter_ends=at_ends,
            escrow=escrow_required(balance=at_ends[-1], rate=rules.escrow_rate),
        ))
    rows.sort(key=lambda row: (row.issuer is None, row.issuer.code if row.issuer else ""))
    outstanding = sum((row.outstanding for row in rows), ZERO)
    totals = tuple(sum((row.at_quarter_ends[index] for row in rows), ZERO) for index in range(len(ends)))
    base = totals[-1] if totals else ZERO
    return LiabilityReport(
        as_of=timezone.localtime(), quarter_ends=tuple(ends), rows=tuple(rows), outstanding=outstanding,
        at_quarter_ends=totals, escrow_rate=rules.escrow_rate, escrow_base=base,
        escrow_before_guarantee=escrow_required(balance=base, rate=rules.escrow_rate),
        guarantee=rules.escrow_guarantee,
        escrow=escrow_required(balance=base, rate=rules.escrow_rate, guarantee=rules.escrow_guarantee),
        alert=revenue_alert(outstanding=outstanding, rules=rules),
    )


def _percent(share: Decimal) -> str:
    return f"{(share * 100).normalize():f}"
