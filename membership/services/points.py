"""How many points a purchase earns, what points are worth in cash, and turning them into cash at a till.

Points are integers and every step of a calculation rounds down, so a member
is never credited a point the rules did not give in full. The balances move
in ledger.py.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext

from membership.errors import (
    CashOutLimitExceeded,
    InsufficientPoints,
    MemberNotActive,
    PurchaseInvalid,
)
from membership.models import EarnRule, Member, PointsEntry, PointsPolicy
from membership.services.ledger import _lock_members, points_post

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


@dataclass(frozen=True)
class CashOut:
    entry: PointsEntry
    cash_value: Decimal
    balance: int


def cash_value_of(points: int, policy: PointsPolicy) -> Decimal:
    """What points are worth in cash: points x cash value / points per unit, rounded down to the cent.

    The one points-to-cash rounding: a till pays it out (CONTRACT, points/redeem), and an adjustment's
    approval level is set by it.
    """
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
