"""Settlement periods: statements per pair of companies, the close asked by one person and approved by another,
then the lock.

A period (a month) is open while its days are cleared and its reconciliation worked off. Asking to close it checks
that nothing is missing (`period_close_problems`), builds its statements, keeps the close figures (card and points
liability at its last day, the escrow of the liability page) and submits the approval `settlement.period_lock`;
the period waits (closing) and nothing of it can be cleared again. Approved by a second person, it is locked for
good: the services refuse any change and the database triggers (migration 0002) refuse it too. Rejected, it is
open again. There is no way back from locked: a correction is an adjusting line in the next open period.
"""

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Sum
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.services import approval_request_submit
from cards.models import CardTransaction
from cards.queries.liability import liability_report
from core.numbers import money_total
from settlement.errors import PeriodLocked, PeriodNotReady, SettlementInvalid
from settlement.models import ClearingLine, ClearingRun, ReconDay, SettlementPeriod, Statement, StatementLine
from settlement.queries.liability import card_ageing, points_liability
from stores.models import LegalEntity

__all__ = ["PERIOD_LOCK", "period_close_problems", "period_close_request", "statements_build"]

PERIOD_LOCK = "settlement.period_lock"
ZERO = Decimal("0.00")
NAMED_AT_MOST = 10


def _not_open(period: SettlementPeriod, message) -> PeriodLocked:
    return PeriodLocked(message, period=period.code, status=period.get_status_display())


# --- statements ----------------------------------------------------------------------------------------------------


def statements_build(*, period: SettlementPeriod) -> list[Statement]:
    """Build the period's statements again from its clearing lines (run lines and adjustments): one per pair of
    different companies (company_a the lower code), one statement line per kind, issuer and honourer.

    Raise PeriodLocked (naming the period and its status) when the period is not open.
    """
    with transaction.atomic():
        period = SettlementPeriod.objects.select_for_update().get(pk=period.pk)
        if period.status != SettlementPeriod.Status.OPEN:
            raise _not_open(period, _("Settlement period %(period)s is %(status)s: its statements cannot be built "
                                      "again."))
        return _statements_write(period)


def _statements_write(period: SettlementPeriod) -> list[Statement]:
    StatementLine.objects.filter(statement__period=period).delete()
    Statement.objects.filter(period=period).delete()
    between = (
        ClearingLine.objects.order_by().filter(period=period, issuer__isnull=False, honourer__isnull=False)
        .exclude(issuer=F("honourer"))
    )
    sums = (
        between.values_list("kind", "issuer_id", "honourer_id")
        .annotate(count=Sum("count"), points=Sum("points"), gross=Sum("gross"), fee=Sum("fee"), net=Sum("net"),
                  lines=Count("id"))
    )
    texts: dict[tuple, list[str]] = defaultdict(list)
    for kind, issuer_id, honourer_id, text in (
        between.filter(kind=ClearingLine.Kind.ADJUSTMENT).exclude(corrects_text="")
        .order_by("business_date", "pk").values_list("kind", "issuer_id", "honourer_id", "corrects_text")
    ):
        texts[(kind, issuer_id, honourer_id)].append(text)
    rows = list(sums)
    company_ids = {pk for _kind, issuer_id, honourer_id, *_rest in rows for pk in (issuer_id, honourer_id)}
    codes = dict(LegalEntity.objects.filter(pk__in=company_ids).values_list("pk", "code"))
    pairs: dict[tuple[int, int], list] = defaultdict(list)
    for row in rows:
        _kind, issuer_id, honourer_id = row[:3]
        pair = (issuer_id, honourer_id) if codes[issuer_id] < codes[honourer_id] else (honourer_id, issuer_id)
        pairs[pair].append(row)
    statements = []
    for (a_id, b_id), pair_rows in sorted(pairs.items(), key=lambda item: (codes[item[0][0]], codes[item[0][1]])):
        a_owes_b = b_owes_a = ZERO
        lines = []
        for kind, issuer_id, honourer_id, count, points, gross, fee, net, _count_lines in pair_rows:
            net = money_total(net)
            # What the issuer owes the honourer; a negative net is owed the other way (a card sold elsewhere).
            if (issuer_id == a_id) == (net >= 0):
                a_owes_b += abs(net)
            else:
                b_owes_a += abs(net)
            lines.append(StatementLine(
                kind=kind, issuer_id=issuer_id, honourer_id=honourer_id, count=int(count or 0),
                points=int(points or 0), gross=money_total(gross), fee=money_total(fee), net=net,
                corrects_text="; ".join(texts.get((kind, issuer_id, honourer_id), []))[:500],
            ))
        statement = Statement.objects.create(period=period, company_a_id=a_id, company_b_id=b_id, a_owes_b=a_owes_b,
                                             b_owes_a=b_owes_a, net=a_owes_b - b_owes_a, built_at=timezone.now())
        for line in lines:
            line.statement = statement
        StatementLine.objects.bulk_create(sorted(lines, key=lambda line: (line.kind, line.issuer_id)))
        statements.append(statement)
    return statements


# --- the close -----------------------------------------------------------------------------------------------------


def _named(items: list[str], total: int) -> str:
    shown = ", ".join(items[:NAMED_AT_MOST])
    if total > NAMED_AT_MOST:
        more = total - NAMED_AT_MOST
        shown += " " + ngettext("and %(count)s more", "and %(count)s more", more) % {"count": more}
    return shown


def period_close_problems(period: SettlementPeriod) -> list[str]:
    """Why the period cannot close yet, as sentences for people; empty when it can.

    The period must be over; every day cleared by a run that finished; no reconciliation day of it with open
    exceptions; and, when SETTLEMENT_CLOSE_NEEDS_POS_FILES, every store-day with card payments reconciled against
    its POS file.
    """
    problems = []
    today = timezone.localdate()
    if period.ends_on >= today:
        problems.append(gettext("The period is not over yet: its last day is %(day)s.")
                        % {"day": period.ends_on.isoformat()})
    last = min(period.ends_on, today - timedelta(days=1))
    done = set(ClearingRun.objects.filter(business_date__gte=period.starts_on, business_date__lte=period.ends_on,
                                          status=ClearingRun.Status.DONE).values_list("business_date", flat=True))
    missing = []
    day = period.starts_on
    while day <= last:
        if day not in done:
            missing.append(day.isoformat())
        day += timedelta(days=1)
    if missing:
        problems.append(ngettext(
            "Clearing has not run for %(count)s day: %(days)s.",
            "Clearing has not run for %(count)s days: %(days)s.", len(missing),
        ) % {"count": len(missing), "days": _named(missing, len(missing))})
    in_period = {"business_date__gte": period.starts_on, "business_date__lte": period.ends_on}
    open_days = ReconDay.objects.filter(status=ReconDay.Status.OPEN, **in_period)
    count = open_days.count()
    if count:
        named = [f"{code} {day.isoformat()}" for code, day in
                 open_days.order_by("business_date", "store__code").values_list("store__code", "business_date")
                 [:NAMED_AT_MOST]]
        problems.append(ngettext(
            "%(count)s reconciliation day has open exceptions: %(days)s.",
            "%(count)s reconciliation days have open exceptions: %(days)s.", count,
        ) % {"count": count, "days": _named(named, count)})
    if settings.SETTLEMENT_CLOSE_NEEDS_POS_FILES:
        unreconciled = (
            CardTransaction.objects.order_by().filter(**in_period)
            .exclude(Exists(ReconDay.objects.filter(store_id=OuterRef("store_id"),
                                                    business_date=OuterRef("business_date"))))
            .values_list("store__code", "business_date").distinct()
        )
        count = unreconciled.count()
        if count:
            named = [f"{code} {day.isoformat()}" for code, day in
                     unreconciled.order_by("business_date", "store__code")[:NAMED_AT_MOST]]
            problems.append(ngettext(
                "%(count)s store-day with card payments has no reconciled POS file: %(days)s.",
                "%(count)s store-days with card payments have no reconciled POS file: %(days)s.", count,
            ) % {"count": count, "days": _named(named, count)})
    return problems


@transaction.atomic
def period_close_request(*, period: SettlementPeriod, user, reason: str) -> ApprovalRequest:
    """Ask to close the period: check it is ready, build its statements, keep the close figures and submit the
    approval `settlement.period_lock` (a second person approves; the requester never can).

    Raise SettlementInvalid (no reason), PeriodLocked (not open), PeriodNotReady (naming what is missing).
    """
    if not (reason or "").strip():
        raise SettlementInvalid(fields={"reason": [gettext("Say why the period may be closed.")]})
    period = SettlementPeriod.objects.select_for_update().get(pk=period.pk)
    if period.status != SettlementPeriod.Status.OPEN:
        raise _not_open(period, _("Settlement period %(period)s is %(status)s: it cannot be asked to close again."))
    problems = period_close_problems(period)
    if problems:
        raise PeriodNotReady(period=period.code, why=" ".join(problems))
    _statements_write(period)
    ageing = card_ageing(at=period.ends_on)
    points = points_liability(at=period.ends_on)
    escrow = liability_report(today=period.ends_on + timedelta(days=1))
    period.card_outstanding = ageing.total
    period.points_outstanding = points.points
    period.points_value = points.value
    period.escrow_base = escrow.escrow_base
    period.escrow_required = escrow.escrow
    period.status = SettlementPeriod.Status.CLOSING
    period.close_requested_by = user
    period.save(update_fields=["card_outstanding", "points_outstanding", "points_value", "escrow_base",
                               "escrow_required", "status", "close_requested_by"])
    return approval_request_submit(action=PERIOD_LOCK, subject=period, requested_by=user, reason=reason,
                                   amount=None, store=None)


def _period_lock_execute(request: ApprovalRequest) -> None:
    period = SettlementPeriod.objects.select_for_update().get(pk=request.object_id)
    if period.status != SettlementPeriod.Status.CLOSING:
        raise _not_open(period, _("Settlement period %(period)s is %(status)s: only a period waiting for approval "
                                  "can be locked."))
    period.status = SettlementPeriod.Status.LOCKED
    period.locked_by = request.decided_by or request.requested_by
    period.locked_at = timezone.now()
    period.save(update_fields=["status", "locked_by", "locked_at"])


def _period_lock_reject(request: ApprovalRequest) -> None:
    SettlementPeriod.objects.filter(pk=request.object_id, status=SettlementPeriod.Status.CLOSING).update(
        status=SettlementPeriod.Status.OPEN
    )


registry.register(PERIOD_LOCK, label=_("Close and lock a settlement period"), execute=_period_lock_execute,
                  on_reject=_period_lock_reject)

