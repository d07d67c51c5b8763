"""Clearing: what the group's companies owe each other for one business day, and the periods the days belong to.

Every movement of money or points has an issuing company (the card's issuer, the company where the points were
earned, the coupon's funder, the voucher's seller) and an honouring one (the company whose store took the money,
honoured the card, the points, the coupon or the voucher). A day's run reads the ledgers of that day with a
handful of GROUP BY queries (never row by row) and writes one clearing line per kind and pair of companies;
`net` on a line is what the issuer owes the honourer. Lines of a company with itself (the diagonal) are kept for
the finance files and the matrix, with net 0.

Cards (by card ledger kind, issuer = the card's issuer, honourer = the entry's company):
- load: gross = what was loaded; net = -gross (the company that took the money in owes it to the issuer);
- debit, refund, reverse: gross = what the card paid (refunds and voided payments negative); the issuer keeps the
  service fee of the pair's rule (else the issuer's default rule): fee = gross x rate, net = gross - fee;
- adjust: gross = what was taken off the card (negative when put on), net = gross, no fee.

Points (the group's 通存通兑 pool rule): points are settled at the points-to-cash rate of the pair's rule, else of
the issuer's default rule, else of the points policy. Points earned (less reversals) are diagonal lines of the
earning company. Points redeemed (with gifts) and turned into cash at a company H were earned all over the group:
they are attributed to the earning companies E by each one's share of the points earned in the 365 days ending on
the day, whole points by largest remainder; E owes H their value (nothing when E is H). Nobody earned anything in
the window: H itself is the issuer. Points expired are attributed the same way, as diagonal lines (the earning
company keeps what was never spent).

Coupons: the template's funder bears the discount given at another company's store (redemptions of the day;
redemptions given back that day are negative lines). Pickup vouchers: the company that sold the voucher owes the
company that handed out the goods the units' price (batch price / units per voucher).

A day of a period that is not open (closing or locked) is never run again; a correction after the lock is an
adjusting line in the next open period, naming the line it corrects (`clearing_adjustment_add`).
"""

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import BigIntegerField, Count, F, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from campaigns.models import CouponRedemption
from cards.models import CardLedgerEntry, VoucherLedgerEntry
from core.numbers import money_round
from membership.models import PointsEntry, PointsPolicy
from settlement.errors import NoOpenPeriod, PeriodLocked, SettlementInvalid
from settlement.models import ClearingLine, ClearingRule, ClearingRun, SettlementPeriod
from settlement.queries.clearing import day_bounds, points_allocate, points_pool

__all__ = [
    "clearing_adjustment_add", "clearing_day_run", "clearing_days_run", "period_for_day", "period_open_on_or_after",
    "points_rate",
]

ZERO = Decimal("0.00")
Kind = ClearingLine.Kind
# Months looked ahead for an open period before giving up (a correction never lands a century away).
OPEN_PERIOD_SEARCH_MONTHS = 1200

CARD_KINDS = {
    CardLedgerEntry.Kind.LOAD: Kind.CARD_LOAD,
    CardLedgerEntry.Kind.DEBIT: Kind.CARD_DEBIT,
    CardLedgerEntry.Kind.REFUND: Kind.CARD_REFUND,
    CardLedgerEntry.Kind.REVERSE: Kind.CARD_REVERSE,
    CardLedgerEntry.Kind.ADJUST: Kind.CARD_ADJUST,
}
CARD_FEE_KINDS = {Kind.CARD_DEBIT, Kind.CARD_REFUND, Kind.CARD_REVERSE}
POINTS_KINDS = {
    PointsEntry.Kind.EARN: Kind.POINTS_EARN,
    PointsEntry.Kind.REVERSAL: Kind.POINTS_EARN,
    PointsEntry.Kind.REDEEM: Kind.POINTS_REDEEM,
    PointsEntry.Kind.GIFT: Kind.POINTS_REDEEM,
    PointsEntry.Kind.CASH_OUT: Kind.POINTS_CASH_OUT,
    PointsEntry.Kind.EXPIRE: Kind.POINTS_EXPIRE,
}
# Spent points: the issuer is the earning company by pool share, the honourer the company where they were spent.
POINTS_SPENT_KINDS = {Kind.POINTS_REDEEM, Kind.POINTS_CASH_OUT}


# --- periods -------------------------------------------------------------------------------------------------------


def _month_period(day: date) -> tuple[str, date, date]:
    first = day.replace(day=1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return f"{day:%Y-%m}", first, last


def period_for_day(day: date) -> SettlementPeriod:
    """The settlement period (the month) of `day`, created open when it does not exist yet.

    Safe under concurrency: two callers creating the same month get the one row (the code is unique).
    """
    code, first, last = _month_period(day)
    period = SettlementPeriod.objects.filter(code=code).first()
    if period is not None:
        return period
    try:
        with transaction.atomic():
            return SettlementPeriod.objects.create(code=code, starts_on=first, ends_on=last)
    except IntegrityError:
        return SettlementPeriod.objects.get(code=code)


def period_open_on_or_after(day: date) -> SettlementPeriod:
    """The period of `day` when it is open, else the first open one after it (months created as needed): where a
    correction made on `day` lands. Raise NoOpenPeriod (only when none is found in a hundred years)."""
    current = day
    for _month in range(OPEN_PERIOD_SEARCH_MONTHS):
        period = period_for_day(current)
        if period.status == SettlementPeriod.Status.OPEN:
            return period
        current = period.ends_on + timedelta(days=1)
    raise NoOpenPeriod(day=day.isoformat())


def _period_not_open(period: SettlementPeriod, message) -> PeriodLocked:
    return PeriodLocked(message, period=period.code, status=period.get_status_display())


# --- rates ---------------------------------------------------------------------------------------------------------


class _Rules:
    """The active clearing rules, read once per run: the pair's rule, else the issuer's default rule."""

    def __init__(self):
        self.pairs: dict[tuple[int, int], ClearingRule] = {}
        self.defaults: dict[int, ClearingRule] = {}
        for rule in ClearingRule.objects.filter(is_active=True):
            if rule.honourer_id is None:
                self.defaults[rule.issuer_id] = rule
            else:
                self.pairs[(rule.issuer_id, rule.honourer_id)] = rule
        self._policy_rate: Decimal | None = None

    def _rules(self, issuer_id, honourer_id):
        return [rule for rule in (self.pairs.get((issuer_id, honourer_id)), self.defaults.get(issuer_id)) if rule]

    def fee_rate(self, issuer_id, honourer_id) -> Decimal:
        rules = self._rules(issuer_id, honourer_id)
        return rules[0].card_fee_rate if rules else Decimal("0")

    def points_rate(self, issuer_id, honourer_id) -> Decimal:
        for rule in self._rules(issuer_id, honourer_id):
            if rule.points_yuan_per_point is not None:
                return rule.points_yuan_per_point
        if self._policy_rate is None:
            policy = PointsPolicy.current()
            self._policy_rate = policy.cash_value / Decimal(policy.cash_points)
        return self._policy_rate


def points_rate(issuer_id, honourer_id) -> Decimal:
    """Yuan per point between two companies: the pair's rule, else the issuer's default rule (honourer empty),
    else the points policy's points-to-cash rate (cash_value / cash_points)."""
    return _Rules().points_rate(issuer_id, honourer_id)


# --- the day's run -------------------------------------------------------------------------------------------------


class _Lines:
    """The day's lines being gathered, one per (kind, issuer, honourer)."""

    def __init__(self):
        self.values: dict[tuple, dict] = defaultdict(lambda: {"count": 0, "points": 0, "gross": ZERO})
        self.rows_read = 0

    def add(self, kind, issuer_id, honourer_id, *, count=0, points=0, gross=ZERO, apart: str = ""):
        """Add to the line of (kind, issuer, honourer); `apart` names a line kept beside it (coupons given back)."""
        line = self.values[(kind, issuer_id, honourer_id, apart)]
        line["count"] += count
        line["points"] += points
        line["gross"] += gross


def _cleared_between(issuer_id, honourer_id) -> bool:
    return issuer_id is not None and honourer_id is not None and issuer_id != honourer_id


def _card_lines(lines: _Lines, start, end) -> None:
    groups = (
        CardLedgerEntry.objects.order_by()
        .filter(created_at__gte=start, created_at__lt=end, kind__in=list(CARD_KINDS))
        .values_list("kind", "card__issuer_id", "legal_entity_id")
        .annotate(count=Count("*"), total=Sum("amount"))
    )
    for ledger_kind, issuer_id, honourer_id, count, total in groups:
        total = money_round(total)
        gross = total if ledger_kind == CardLedgerEntry.Kind.LOAD else -total
        lines.add(CARD_KINDS[ledger_kind], issuer_id, honourer_id, count=count, gross=gross)
        lines.rows_read += count


def _points_lines(lines: _Lines, day: date, start, end) -> None:
    groups = list(
        PointsEntry.objects.order_by()
        .filter(created_at__gte=start, created_at__lt=end, kind__in=list(POINTS_KINDS))
        .values_list("kind", "legal_entity_id")
        .annotate(count=Count("*"), points=Sum("points"))
    )
    day_earned: dict[int, int] = defaultdict(int)
    for ledger_kind, company_id, _count, points in groups:
        if POINTS_KINDS[ledger_kind] == Kind.POINTS_EARN:
            day_earned[company_id] += int(points or 0)
    pool = None
    for ledger_kind, company_id, count, points in groups:
        lines.rows_read += count
        kind = POINTS_KINDS[ledger_kind]
        points = int(points or 0)
        if kind == Kind.POINTS_EARN:
            lines.add(kind, company_id, company_id, count=count, points=points)
            continue
        if pool is None:
            pool = points_pool(day=day, day_earned=day_earned)
        taken = -points  # redeemed, cashed out or expired: positive
        shares = points_allocate(taken, pool) or {company_id: taken}
        counts = points_allocate(count, pool) or {company_id: count}
        for earner_id in set(shares) | set(counts):
            honourer_id = company_id if kind in POINTS_SPENT_KINDS else earner_id
            lines.add(kind, earner_id, honourer_id, count=counts.get(earner_id, 0), points=shares.get(earner_id, 0))


def _coupon_lines(lines: _Lines, start, end) -> None:
    keys = ("template__funded_by_id", "store__format__legal_entity_id")
    redeemed = (
        CouponRedemption.objects.order_by().filter(created_at__gte=start, created_at__lt=end)
        .values_list(*keys).annotate(count=Count("*"), total=Sum("discount"))
    )
    released = (
        CouponRedemption.objects.order_by()
        .filter(released_at__gte=start, released_at__lt=end, status=CouponRedemption.Status.RELEASED)
        .values_list(*keys).annotate(count=Count("*"), total=Sum("discount"))
    )
    for sign, groups in ((1, redeemed), (-1, released)):
        for issuer_id, honourer_id, count, total in groups:
            # Given back: its own negative line, so the day shows both what was used and what came back.
            lines.add(Kind.COUPON, issuer_id, honourer_id, count=count, gross=sign * money_round(total),
                      apart="" if sign > 0 else "released")
            lines.rows_read += count


def _voucher_lines(lines: _Lines, start, end) -> None:
    seller = Subquery(
        VoucherLedgerEntry.objects.filter(voucher_id=OuterRef("voucher_id"), kind=VoucherLedgerEntry.Kind.ISSUE)
        .order_by("pk").values("legal_entity_id")[:1]
    )
    groups = (
        VoucherLedgerEntry.objects.order_by()
        .filter(created_at__gte=start, created_at__lt=end, kind=VoucherLedgerEntry.Kind.REDEEM)
        .annotate(seller_id=Coalesce(seller, F("voucher__issuer_id"), output_field=BigIntegerField()))
        .values_list("seller_id", "legal_entity_id", "voucher__batch__price", "voucher__units")
        .annotate(count=Count("*"), quantity=Sum("quantity"))
    )
    for issuer_id, honourer_id, price, units, count, quantity in groups:
        value = money_round(Decimal(-int(quantity)) * Decimal(price) / Decimal(units))
        lines.add(Kind.VOUCHER, issuer_id, honourer_id, count=count, gross=value)
        lines.rows_read += count


def _line_rows(lines: _Lines, rules: _Rules, **common) -> list[ClearingLine]:
    rows = []
    for (kind, issuer_id, honourer_id, _apart), values in lines.values.items():
        points, gross, fee = values["points"], values["gross"], ZERO
        if kind.startswith("points_"):
            gross = money_round(Decimal(points) * rules.points_rate(issuer_id, honourer_id))
        between = _cleared_between(issuer_id, honourer_id)
        if not between:
            net = ZERO
        elif kind == Kind.CARD_LOAD:
            net = -gross
        elif kind in CARD_FEE_KINDS:
            fee = money_round(gross * rules.fee_rate(issuer_id, honourer_id))
            net = gross - fee
        elif kind in (Kind.POINTS_EARN, Kind.POINTS_EXPIRE):
            net = ZERO
        else:
            net = gross
        if not (values["count"] or points or gross):
            continue
        rows.append(ClearingLine(kind=kind, issuer_id=issuer_id, honourer_id=honourer_id, count=values["count"],
                                 points=points, gross=gross, fee=fee, net=net, **common))
    rows.sort(key=lambda row: (row.kind, row.issuer_id or 0, row.honourer_id or 0, row.gross))
    return rows


def clearing_day_run(*, day: date, user=None) -> ClearingRun:
    """Clear one business day: replace the day's run lines (adjusting lines stay) with what the ledgers say.

    Raise PeriodLocked when the day's period is not open (waiting for approval or locked). A run that fails is
    recorded as failed with its error (kept even though its lines are rolled back) and the error raised again.
    """
    period = period_for_day(day)
    if period.status != SettlementPeriod.Status.OPEN:
        raise _period_not_open(period, _day_refused_message())
    started = timezone.now()
    try:
        with transaction.atomic():
            return _day_run(day=day, period=period, user=user, started=started)
    except PeriodLocked:
        raise
    except Exception as error:
        _run_failed(day=day, period=period, user=user, started=started, error=error)
        raise


def _day_refused_message():
    return _("Settlement period %(period)s is %(status)s: its days are not cleared again; a correction goes into "
             "the next open period.")


def _day_run(*, day: date, period: SettlementPeriod, user, started) -> ClearingRun:
    # The period's row lock: a close request waits for the run, and a run never writes into a closing period.
    period = SettlementPeriod.objects.select_for_update().get(pk=period.pk)
    if period.status != SettlementPeriod.Status.OPEN:
        raise _period_not_open(period, _day_refused_message())
    run, _created = ClearingRun.objects.update_or_create(
        business_date=day,
        defaults={"period": period, "status": ClearingRun.Status.RUNNING, "rows_read": 0, "lines": 0,
                  "started_at": started, "finished_at": None, "error": "", "run_by": user},
    )
    earlier = ClearingLine.objects.filter(business_date=day).exclude(kind=Kind.ADJUSTMENT)
    # Adjusting lines that correct one of the day's lines are pointed at its replacement (same kind and pair).
    corrections = list(
        ClearingLine.objects.filter(corrects__in=earlier)
        .values_list("pk", "corrects__kind", "corrects__issuer_id", "corrects__honourer_id")
    )
    if corrections:
        ClearingLine.objects.filter(pk__in=[row[0] for row in corrections]).update(corrects=None)
    earlier.delete()

    start, end = day_bounds(day)
    lines = _Lines()
    _card_lines(lines, start, end)
    _points_lines(lines, day, start, end)
    _coupon_lines(lines, start, end)
    _voucher_lines(lines, start, end)
    rows = ClearingLine.objects.bulk_create(
        _line_rows(lines, _Rules(), period=period, business_date=day, run=run, created_by=user)
    )
    if corrections:
        replacement = {(row.kind, row.issuer_id, row.honourer_id): row.pk for row in rows}
        for pk, kind, issuer_id, honourer_id in corrections:
            if (kind, issuer_id, honourer_id) in replacement:
                ClearingLine.objects.filter(pk=pk).update(corrects_id=replacement[(kind, issuer_id, honourer_id)])
    run.status = ClearingRun.Status.DONE
    run.rows_read = lines.rows_read
    run.lines = len(rows)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "rows_read", "lines", "finished_at"])
    return run


def _run_failed(*, day: date, period: SettlementPeriod, user, started, error: Exception) -> None:
    if connection.needs_rollback:  # the caller's transaction is broken: nothing can be written in it
        return
    with transaction.atomic():
        ClearingRun.objects.update_or_create(
            business_date=day,
            defaults={"period": period, "status": ClearingRun.Status.FAILED, "started_at": started,
                      "finished_at": timezone.now(), "error": f"{type(error).__name__}: {error}"[:4000],
                      "run_by": user},
        )


def clearing_days_run(*, start: date, end: date, user=None) -> list[ClearingRun]:
    """Clear every day from `start` to `end` (inclusive) whose period is open; days of a closing or locked period
    are skipped without an error. Used by the nightly task, the admin and the demo."""
    runs = []
    day = start
    while day <= end:
        period = period_for_day(day)
        if period.status == SettlementPeriod.Status.OPEN:
            runs.append(clearing_day_run(day=day, user=user))
        day += timedelta(days=1)
    return runs


# --- adjustments ---------------------------------------------------------------------------------------------------


def _corrects_text(line: ClearingLine) -> str:
    names = {None: gettext("no company")}
    for company in (line.issuer, line.honourer):
        if company is not None:
            names[company.pk] = company.name
    return (gettext("%(day)s %(kind)s %(issuer)s → %(honourer)s (line #%(line)s)") % {
        "day": line.business_date.isoformat(), "kind": line.get_kind_display(),
        "issuer": names[line.issuer_id], "honourer": names[line.honourer_id], "line": line.pk,
    })[:200]


@transaction.atomic
def clearing_adjustment_add(*, corrects: ClearingLine, net, reason: str, user,
                            period: SettlementPeriod | None = None) -> ClearingLine:
    """Correct a clearing line with an adjusting line of `net` (what the issuer owes the honourer in addition).

    The line lands in `period` when given (refused with PeriodLocked naming it when it is not open), else in the
    open period of today or the first open one after it: a line of a locked period is corrected in the next open
    one, and the adjusting line names what it corrects. Raise SettlementInvalid (no reason, net zero or not an
    amount).
    """
    reason = (reason or "").strip()
    amount = money_round(net)
    errors = {}
    if not reason:
        errors["reason"] = [gettext("Say why the line is corrected.")]
    if amount is None:
        errors["net"] = [gettext("Write an amount such as 12.50.")]
    elif amount == 0:
        errors["net"] = [gettext("A correction of zero changes nothing.")]
    if errors:
        raise SettlementInvalid(fields=errors)
    today = timezone.localdate()
    if period is None:
        period = period_open_on_or_after(today)
    period = SettlementPeriod.objects.select_for_update().get(pk=period.pk)
    if period.status != SettlementPeriod.Status.OPEN:
        raise _period_not_open(period, _(
            "Settlement period %(period)s is %(status)s: nothing can be added to it; a correction goes into the next "
            "open period."
        ))
    corrects = ClearingLine.objects.select_related("issuer", "honourer").get(pk=corrects.pk)
    business_date = min(max(today, period.starts_on), period.ends_on)
    return ClearingLine.objects.create(
        period=period, business_date=business_date, run=None, kind=Kind.ADJUSTMENT, issuer=corrects.issuer,
        honourer=corrects.honourer, count=0, points=0, gross=amount, fee=ZERO, net=amount, corrects=corrects,
        corrects_text=_corrects_text(corrects), reason=reason[:200], created_by=user,
    )
