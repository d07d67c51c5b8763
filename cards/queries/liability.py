"""Outstanding prepaid balances and escrow (DESIGN section 7, 商务部令2012年第9号): read-side only.

The outstanding balance of an issuer at a day's end is the sum of its cards' ledger up to then. Summing the whole
ledger for every quarter end would read every entry ever written; instead the balances now (the card balances,
which check_ledgers proves equal to their ledger) are taken back by the entries written since each day's end.
Those are a tail of the ledger, read through its time index (card_ledger_time), all quarter ends in one pass, and
in the same statement as the card balances so both come from one snapshot.

Pickup vouchers sold and not yet redeemed are prepaid funds too (DESIGN section 7: they count in the escrow base).
They are valued at the price paid: remaining units x the batch's price per voucher / the voucher's units
(`voucher_value`), expired ones included (their units are still owed). Their value at a day's end is taken back
from the remaining units now by the voucher ledger written since, the same way, in one statement.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import DecimalField, IntegerField, Q, Sum, Value
from django.utils import timezone
from django.utils.translation import gettext

from cards.models import Card, CardLedgerEntry, CardRules, Voucher, VoucherLedgerEntry
from cards.models.vouchers import voucher_value
from core.dates import quarter_start
from core.numbers import money_display
from stores.models import LegalEntity
from stores.queries import user_is_hq

__all__ = [
    "PERMISSION_VIEW", "IssuerLiability", "LiabilityReport", "RevenueAlert", "day_end", "escrow_required",
    "liability_report", "outstanding_at_days", "quarter_ends", "revenue_alert", "revenue_alert_off_reason",
    "user_may_view_liability", "voucher_outstanding_at_days",
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
    day = quarter_start(today) - timedelta(days=1)
    for _ in range(count):
        ends.append(day)
        day = quarter_start(day) - timedelta(days=1)
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


def voucher_outstanding_at_days(
    *, days: Sequence[date],
) -> tuple[dict[int | None, Decimal], dict[int | None, list[Decimal]]]:
    """Value of unredeemed pickup vouchers per issuer id now and at the end of each of `days`, as
    outstanding_at_days gives the card balances.

    One SQL statement: the remaining units now and the units moved since each day's end, both grouped by issuer,
    batch price and units per voucher (integers: exact on every database); the groups are valued here.
    """
    ends = [day_end(day) for day in days]
    after = [f"after_{index}" for index in range(len(ends))]
    units = {"output_field": IntegerField()}
    remaining = (
        Voucher.objects.order_by().filter(remaining__gt=0).values("issuer_id", "batch__price", "units")
        .annotate(now=Sum("remaining", **units), **{name: Value(0, **units) for name in after})
    )
    statement = remaining
    if ends:
        tail = (
            VoucherLedgerEntry.objects.order_by().filter(created_at__gte=min(ends))
            .values("voucher__issuer_id", "voucher__batch__price", "voucher__units")
            .annotate(now=Value(0, **units), **{name: Sum("quantity", filter=Q(created_at__gte=end), **units)
                                                for name, end in zip(after, ends, strict=True)})
        )
        statement = remaining.union(tail, all=True)
    now: dict[int | None, Decimal] = {}
    at_days: dict[int | None, list[Decimal]] = {}
    for issuer_id, price, per_voucher, units_now, *moved_since in statement.values_list(
            "issuer_id", "batch__price", "units", "now", *after):
        value = voucher_value(units_left=units_now or 0, price=price, units=per_voucher)
        now[issuer_id] = now.get(issuer_id, ZERO) + value
        previous = at_days.get(issuer_id, [ZERO] * len(ends))
        at_days[issuer_id] = [
            total + value - voucher_value(units_left=moved or 0, price=price, units=per_voucher)
            for total, moved in zip(previous, moved_since, strict=True)
        ]
    rounded = {issuer_id: _cents(value) for issuer_id, value in now.items()}
    return rounded, {issuer_id: [_cents(value) for value in values] for issuer_id, values in at_days.items()}


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


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
        ) % {"outstanding": money_display(self.outstanding), "share": _percent(self.share),
             "revenue": money_display(self.revenue), "limit": money_display(self.limit)}


def revenue_alert_off_reason(rules: CardRules) -> str:
    """Why the revenue alert cannot fire, for the screens to say so; "" when it is on."""
    if rules.last_year_revenue and rules.last_year_revenue > 0:
        return ""
    return gettext(
        "The revenue alert is off: last year's revenue is %(revenue)s in the prepaid card rules, so outstanding "
        "prepaid balances are not compared with %(share)s%% of it (prepaid card rules: escrow and reporting). Enter "
        "last year's revenue in the prepaid card rules to turn it on."
    ) % {"revenue": money_display(rules.last_year_revenue or ZERO), "share": _percent(rules.revenue_alert_share)}


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
    outstanding: Decimal  # card balances and unredeemed pickup vouchers
    at_quarter_ends: tuple[Decimal, ...]  # in the order of LiabilityReport.quarter_ends; cards and vouchers
    escrow: Decimal  # rate x the previous quarter end's balance; the group's guarantee is taken off the total
    vouchers: Decimal = ZERO  # of outstanding: pickup vouchers
    vouchers_at_quarter_ends: tuple[Decimal, ...] = ()

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
    vouchers: Decimal = ZERO  # of outstanding: pickup vouchers
    voucher_base: Decimal = ZERO  # of escrow_base: pickup vouchers
    alert_off: str = ""  # why the revenue alert cannot fire, or ""

    @property
    def escrow_rate_percent(self) -> str:
        return _percent(self.escrow_rate)

    @property
    def card_base(self) -> Decimal:
        return self.escrow_base - self.voucher_base

    @property
    def issuers_without_filing_no(self) -> list[IssuerLiability]:
        return [row for row in self.rows if row.outstanding and not row.filing_no]


def liability_report(*, today: date | None = None, rules: CardRules | None = None) -> LiabilityReport:
    """Outstanding balances (cards and pickup vouchers) per issuer now and at the last four quarter ends, the escrow
    due and the alert, or why the alert is off."""
    today = today or timezone.localdate()
    rules = rules or CardRules.current()
    ends = quarter_ends(today=today)
    now, at_days = outstanding_at_days(days=ends)
    vouchers_now, vouchers_at_days = voucher_outstanding_at_days(days=ends)
    issuer_ids = sorted(set(now) | set(at_days) | set(vouchers_now) | set(vouchers_at_days),
                        key=lambda pk: (pk is None, pk or 0))
    issuers = LegalEntity.objects.in_bulk([pk for pk in issuer_ids if pk is not None])
    rows = []
    for issuer_id in issuer_ids:
        card_ends = at_days.get(issuer_id, [now.get(issuer_id, ZERO)] * len(ends))
        voucher_ends = tuple(vouchers_at_days.get(issuer_id, [vouchers_now.get(issuer_id, ZERO)] * len(ends)))
        at_ends = tuple(cards + vouchers for cards, vouchers in zip(card_ends, voucher_ends, strict=True))
        outstanding = now.get(issuer_id, ZERO) + vouchers_now.get(issuer_id, ZERO)
        if not outstanding and not any(at_ends):
            continue
        rows.append(IssuerLiability(
            issuer=issuers.get(issuer_id), outstanding=outstanding, at_quarter_ends=at_ends,
            escrow=escrow_required(balance=at_ends[-1], rate=rules.escrow_rate),
            vouchers=vouchers_now.get(issuer_id, ZERO), vouchers_at_quarter_ends=voucher_ends,
        ))
    rows.sort(key=lambda row: (row.issuer is None, row.issuer.code if row.issuer else ""))
    outstanding = sum((row.outstanding for row in rows), ZERO)
    totals = tuple(sum((row.at_quarter_ends[index] for row in rows), ZERO) for index in range(len(ends)))
    base = totals[-1] if totals else ZERO
    voucher_base = sum((row.vouchers_at_quarter_ends[-1] for row in rows if row.vouchers_at_quarter_ends), ZERO)
    return LiabilityReport(
        as_of=timezone.localtime(), quarter_ends=tuple(ends), rows=tuple(rows), outstanding=outstanding,
        at_quarter_ends=totals, escrow_rate=rules.escrow_rate, escrow_base=base,
        escrow_before_guarantee=escrow_required(balance=base, rate=rules.escrow_rate),
        guarantee=rules.escrow_guarantee,
        escrow=escrow_required(balance=base, rate=rules.escrow_rate, guarantee=rules.escrow_guarantee),
        alert=revenue_alert(outstanding=outstanding, rules=rules),
        vouchers=sum((row.vouchers for row in rows), ZERO), voucher_base=voucher_base,
        alert_off=revenue_alert_off_reason(rules),
    )


def _percent(share: Decimal) -> str:
    return f"{(share * 100).normalize():f}"
