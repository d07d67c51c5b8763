"""How purchases earn points, how points become cash at a till, and how points owed are paid off.

Points are integers and every step of a calculation rounds down, so a member
is never credited a point the rules did not give in full.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal

from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext

from core.sql import insert_returning_pk
from membership.errors import (
    CashOutLimitExceeded,
    InsufficientPoints,
    MemberNotActive,
    PointsBalanceLimit,
    PurchaseInvalid,
)
from membership.models import EarnRule, Member, PointsDebtEntry, PointsEntry, PointsPolicy
from membership.services.members import POINTS_BALANCE_MAX, _lock_members, cause_fields, points_post

__all__ = [
    "EARN_MULTIPLIERS",
    "POINTS_MAX",
    "CashOut",
    "cash_value_of",
    "earn_multiplier",
    "earn_rule_default",
    "earn_rule_for",
    "member_points_multiplier",
    "points_cash_out",
    "points_debt_move",
    "points_earn",
    "points_for_purchase",
]

ONE = Decimal("1")
# The largest number of points one request may name (the ledger column is a 32-bit integer).
POINTS_MAX = 2_147_483_647

# Campaign multipliers (double points by day, store, tier or payment method): each callable is called as
# multiplier(member=, store=, purchase=, occurred_at=, payment_method=, lines=) and returns a Decimal or None
# (does not apply). The purchase is not saved yet. Multipliers that apply are multiplied together.
EARN_MULTIPLIERS: list[Callable] = []


def earn_multiplier(function: Callable) -> Callable:
    """Register a campaign multiplier (see EARN_MULTIPLIERS)."""
    EARN_MULTIPLIERS.append(function)
    return function


def earn_rule_for(format) -> EarnRule:
    """The format's earn rule; a format without one earns 1 point per yuan, excludes nothing, holds nothing."""
    try:
        return EarnRule.objects.get(format_id=format.pk)
    except EarnRule.DoesNotExist:
        return earn_rule_default(format)


def earn_rule_default(format) -> EarnRule:
    """The rule of a format that has none configured (not saved)."""
    return EarnRule(format=format, amount_per_point=Decimal("1.00"), excluded_categories="", pending_days=0)


def member_points_multiplier(member: Member, *, on: date) -> Decimal:
    """The better of the earned tier's multiplier and a paid tier's that is still running on that day.

    A paid tier is honoured to the end of its term even if it is no longer sold.
    """
    best = member.tier.points_multiplier if member.tier_id else ONE
    if member.paid_tier_id and member.paid_tier_until and member.paid_tier_until >= on:
        best = max(best, member.paid_tier.points_multiplier)
    return best


def _cents(amount: Decimal) -> int:
    return int(amount.scaleb(2).to_integral_value(rounding=ROUND_FLOOR))


def points_for_purchase(
    *,
    member: Member,
    store,
    amount: Decimal,
    occurred_at: datetime,
    lines: Iterable[Mapping] = (),
    payment_method: str = "",
    purchase=None,
    rule: EarnRule | None = None,
) -> int:
    """The points a purchase earns.

    eligible = amount less the lines whose category the format's rule excludes (never below 0);
    base = floor(eligible / yuan per point), in whole cents so no rounding of a division can add a point;
    points = floor(base x tier multiplier x every campaign multiplier that applies).
    The multipliers apply to whole base points, so 1.5x on 3 points is 4, not 4.5 rounded up.
    """
    rule = rule or earn_rule_for(store.format)
    if not rule.is_active:
        return 0
    lines = list(lines)
    excluded = rule.excluded_category_set
    excluded_amount = sum(
        (Decimal(str(line["amount"])) for line in lines if excluded and line.get("category") in excluded),
        Decimal("0.00"),
    )
    eligible = max(amount - excluded_amount, Decimal("0.00"))
    base = _cents(eligible) // _cents(rule.amount_per_point)
    if base <= 0:
        return 0
    multiplier = member_points_multiplier(member, on=timezone.localdate(occurred_at))
    for campaign in EARN_MULTIPLIERS:
        factor = campaign(member=member, store=store, purchase=purchase, occurred_at=occurred_at,
                          payment_method=payment_method, lines=lines)
        if factor is not None:
            multiplier *= Decimal(factor)
    points = (Decimal(base) * multiplier).to_integral_value(rounding=ROUND_FLOOR)
    return min(max(int(points), 0), POINTS_MAX)


@transaction.atomic(savepoint=False)
def points_earn(
    *,
    member: Member,
    points: int,
    store=None,
    terminal=None,
    receipt_no: str = "",
    reason: str = "",
    cause=None,
    legal_entity_id: int | None = None,
    operator=None,
) -> PointsEntry:
    """Credit earned points with an `earn` entry, then pay off any points the member owes from the balance.

    Runs on every POS purchase, inside the caller's transaction (no savepoint of its own). The credit is
    one UPDATE ... RETURNING that also reads what the member owes, so the member needs no lock beforehand
    and a debt a concurrent return recorded is seen. The pay-off is a `reversal` entry and a `repaid` row
    in the points debt ledger. `legal_entity_id` is the company that issued the points.
    Return the earn entry.
    """
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise ValueError("points must be a positive integer")
    balance, debt = _member_points_change(member.pk, points=points)
    values = {
        "member": member, "store": store, "terminal": terminal, "receipt_no": receipt_no,
        "legal_entity_id": legal_entity_id, "operator": operator, **cause_fields(cause),
    }
    entry = PointsEntry(kind=PointsEntry.Kind.EARN, points=points, balance_after=balance, reason=reason[:200],
                        **values)
    insert_returning_pk(entry)
    member.points, member.points_debt = balance, debt
    if debt > 0 and balance > 0:
        pay = min(balance, debt)
        note = gettext("paid off points owed")
        member.points, member.points_debt = _member_points_change(member.pk, points=-pay, debt=-pay)
        PointsEntry.objects.create(kind=PointsEntry.Kind.REVERSAL, points=-pay, balance_after=member.points,
                                   reason=note, **values)
        PointsDebtEntry.objects.create(member=member, kind=PointsDebtEntry.Kind.REPAID, points=-pay,
                                       debt_after=member.points_debt, reason=note, **cause_fields(cause))
    return entry


def _member_points_change(member_id: int, *, points: int, debt: int = 0) -> tuple[int, int]:
    """Add to a member's points (and debt) in one statement; return (points, debt) after.

    The CHECK constraints keep both at zero or above, the WHERE keeps points at most POINTS_BALANCE_MAX
    (compared as `points <= max - added`, which cannot overflow the column); the row stays locked until the
    transaction ends. Raise PointsBalanceLimit.
    """
    if points > POINTS_BALANCE_MAX:
        raise PointsBalanceLimit(limit=f"{POINTS_BALANCE_MAX:,}")
    table = connection.ops.quote_name(Member._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET points = points + %s, points_debt = points_debt + %s "  # noqa: S608 - table name
            "WHERE id = %s AND points <= %s RETURNING points, points_debt",
            [points, debt, member_id, POINTS_BALANCE_MAX - max(points, 0)],
        )
        row = cursor.fetchone()
    if row is None:
        if Member.objects.filter(pk=member_id).exists():
            raise PointsBalanceLimit(limit=f"{POINTS_BALANCE_MAX:,}")
        raise Member.DoesNotExist(f"member {member_id}")
    return row


@transaction.atomic(savepoint=False)
def points_debt_move(*, member: Member, points: int, kind: str, reason: str, cause=None) -> PointsDebtEntry:
    """Change what a member owes and append the debt ledger row, in the caller's transaction.

    A conditional UPDATE keeps the debt from going below zero; `member` must be locked by the caller.
    """
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise ValueError("points must be a non-zero integer")
    updated = Member.objects.filter(pk=member.pk, points_debt__gte=max(-points, 0)).update(
        points_debt=F("points_debt") + points
    )
    if not updated:
        raise RuntimeError(f"points owed by member {member.pk} changed under a transaction that did not lock it")
    member.points_debt += points
    return PointsDebtEntry.objects.create(
        member=member, kind=kind, points=points, debt_after=member.points_debt, reason=reason[:200],
        **cause_fields(cause),
    )


@dataclass(frozen=True)
class CashOut:
    entry: PointsEntry
    cash_value: Decimal
    balance: int


def cash_value_of(points: int, policy: PointsPolicy) -> Decimal:
    """What points are worth in cash: points x cash value / points per unit, rounded down to the cent."""
    cents = points * _cents(policy.cash_value) // policy.cash_points
    return Decimal(cents).scaleb(-2).quantize(Decimal("0.01"))


@transaction.atomic
def points_cash_out(
    *, member: Member | int, points: int, store, terminal=None, receipt_no: str, operator=None
) -> CashOut:
    """Turn points into cash on a receipt at a till (积分抵现), within the points policy's limits.

    The member row is locked first, so two tills working on one receipt cannot pass the per-receipt
    maximum together. The company of the redeeming store's format honours the points.
    Raise PurchaseInvalid, MemberNotActive, CashOutLimitExceeded, InsufficientPoints.
    """
    if not isinstance(points, int) or isinstance(points, bool) or not 0 < points <= POINTS_MAX:
        raise PurchaseInvalid(fields={"points": [gettext("Give a whole number of points greater than 0.")]})
    receipt_no = (receipt_no or "").strip()
    if not receipt_no or len(receipt_no) > 64:
        raise PurchaseInvalid(fields={"receipt_no": [gettext("Give the receipt number (1 to 64 characters).")]})
    member = _lock_members(member if isinstance(member, int) else member.pk)[0]
    if member.status != Member.Status.ACTIVE:
        raise MemberNotActive(member_no=member.member_no, status=member.get_status_display())
    policy = PointsPolicy.current()
    if points < policy.cash_min_points:
        raise CashOutLimitExceeded(
            gettext("At least %(min)s points must be turned into cash at once (minimum per receipt)."),
            min=policy.cash_min_points,
        )
    used = -(
        PointsEntry.objects.filter(
            member=member, kind=PointsEntry.Kind.CASH_OUT, store=store, receipt_no=receipt_no
        ).aggregate(total=Sum("points"))["total"]
        or 0
    )
    if used + points > policy.cash_max_points:
        raise CashOutLimitExceeded(
            gettext("At most %(max)s points can be turned into cash on one receipt (maximum per receipt); "
                    "%(used)s already were on this receipt."),
            max=policy.cash_max_points, used=used,
        )
    cash_value = cash_value_of(points, policy)
    if cash_value <= 0:
        raise CashOutLimitExceeded(
            gettext("%(points)s points are worth less than 0.01 yuan (%(rate)s points = %(value)s yuan)."),
            points=points, rate=policy.cash_points, value=policy.cash_value,
        )
    if member.points < points:
        raise InsufficientPoints(points=member.points)
    entry = points_post(
        member=member, points=-points, kind=PointsEntry.Kind.CASH_OUT, store=store, terminal=terminal,
        receipt_no=receipt_no, operator=operator,
        reason=gettext("turned into %(value)s yuan on receipt %(receipt_no)s")
        % {"value": cash_value, "receipt_no": receipt_no},
    )
    return CashOut(entry=entry, cash_value=cash_value, balance=entry.balance_after)
