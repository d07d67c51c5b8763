"""How many points a purchase earns, what points are worth in cash, and turning them into cash at a till.

Points are integers and every step of a calculation rounds down, so a member
is never credited a point the rules did not give in full. The balances move
in ledger.py. A till's cash-out on PostgreSQL finds, locks and reads the member with the points policy in one
statement and opens no savepoint of its own; a refusal takes the path every database takes, which finds out
which one it is.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext

from core.sql import JoinedSelect, Part
from membership.errors import (
    CashOutLimitExceeded,
    InsufficientPoints,
    MemberNotActive,
    PurchaseInvalid,
)
from membership.models import EarnRule, Member, PointsEntry, PointsPolicy
from membership.services.ledger import _lock_members, points_post, points_redeem_joined

__all__ = [
    "CASHED_OUT",
    "CASH_RATES",
    "EARN_BONUSES",
    "POINTS_MAX",
    "CashOut",
    "CashRate",
    "EarnBonus",
    "EarnResult",
    "cash_rate_best",
    "cash_rate_provider",
    "on_points_cashed_out",
    "cash_value_of",
    "earn_bonus_provider",
    "earn_rule_default",
    "earn_rule_for",
    "member_points_multiplier",
    "points_cash_out",
    "points_for_purchase",
    "points_for_purchase_detail",
    "promotions_text",
]

ONE = Decimal("1")
# The largest number of points one request may name (the ledger column is a 32-bit integer).
POINTS_MAX = 2_147_483_647
# What Purchase.promotions_text holds at most.
PROMOTIONS_TEXT_MAX = 200


# --- hooks other apps fill in at start-up (membership knows no campaign) ---------------------------------------


@dataclass(frozen=True)
class EarnBonus:
    """A points promotion that applies to a purchase (double points by day, store, tier or payment method)."""

    MULTIPLY = "multiply"  # multiplied with the tier's multiplier and with every other such bonus
    LARGER = "larger"  # the larger of this factor and the tier's multiplier (and every other such bonus)

    factor: Decimal
    stacking: str
    label: str  # the promotion's name, as the ledger's reason shows it
    key: int  # the promotion's id, for the provider's own bookkeeping

    def __post_init__(self):
        if self.stacking not in (self.MULTIPLY, self.LARGER):
            raise ValueError(f"stacking must be {self.MULTIPLY!r} or {self.LARGER!r}, not {self.stacking!r}")
        object.__setattr__(self, "factor", Decimal(self.factor))

    @property
    def shown(self) -> str:
        """The promotion as a ledger reason names it: 周三双倍积分 x2.00."""
        return f"{self.label} x{self.factor.quantize(Decimal('0.01'))}"


# Points promotions: each provider is called as provider(member=, store=, occurred_at=, payment_method=, lines=)
# and returns the EarnBonus list that applies to the purchase (possibly empty). Nothing is saved yet.
EARN_BONUSES: list[Callable[..., list[EarnBonus]]] = []


def earn_bonus_provider(function: Callable[..., list[EarnBonus]]) -> Callable[..., list[EarnBonus]]:
    """Register a provider of points promotions (see EARN_BONUSES)."""
    EARN_BONUSES.append(function)
    return function


@dataclass(frozen=True)
class CashRate:
    """A points-to-cash rate a promotion offers on a day (积分抵现日): cash_points points are worth cash_value."""

    cash_points: int
    cash_value: Decimal
    label: str  # the promotion's name, as the ledger's reason shows it
    key: int  # the promotion's id

    def __post_init__(self):
        object.__setattr__(self, "cash_value", Decimal(self.cash_value))


# Points-to-cash days: each provider is called as provider(store=, on=date) and returns the CashRate list that
# applies at that store on that day (possibly empty).
CASH_RATES: list[Callable[..., list[CashRate]]] = []


def cash_rate_provider(function: Callable[..., list[CashRate]]) -> Callable[..., list[CashRate]]:
    """Register a provider of points-to-cash rates (see CASH_RATES)."""
    CASH_RATES.append(function)
    return function


# Called as listener(cash_out=) in the cash-out's transaction when a promotion's rate paid it (campaigns records
# what each points-to-cash day paid). Registered with on_points_cashed_out.
CASHED_OUT: list[Callable] = []


def on_points_cashed_out(function: Callable) -> Callable:
    """Register a listener of cash-outs paid at a promotion's rate (see CASHED_OUT)."""
    CASHED_OUT.append(function)
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


@dataclass(frozen=True)
class EarnResult:
    """What a purchase earns, and each points promotion that took effect with the extra points it gave."""

    points: int
    # (bonus, points with every bonus less points without this one); never below 0.
    bonuses: list[tuple[EarnBonus, int]] = field(default_factory=list)


def _earned(base: int, tier: Decimal, bonuses: Iterable[EarnBonus]) -> int:
    """floor(base x max(tier, every "larger" factor) x every "multiply" factor), within the ledger's range."""
    multiplier = tier
    factors = []
    for bonus in bonuses:
        if bonus.stacking == EarnBonus.LARGER:
            multiplier = max(multiplier, bonus.factor)
        else:
            factors.append(bonus.factor)
    for factor in factors:
        multiplier *= factor
    points = (Decimal(base) * multiplier).to_integral_value(rounding=ROUND_FLOOR)
    return min(max(int(points), 0), POINTS_MAX)


def _bonuses_in_effect(bonuses: list[EarnBonus], *, tier: Decimal) -> list[EarnBonus]:
    """The bonuses that change the multiplier: every "multiply" one above 1, and the first of the largest
    "larger" ones when it beats the tier (a "larger" one the tier or another promotion beats gave nothing)."""
    larger = [bonus for bonus in bonuses if bonus.stacking == EarnBonus.LARGER and bonus.factor > tier]
    best = max(larger, key=lambda bonus: bonus.factor, default=None)
    return [bonus for bonus in bonuses
            if (bonus.stacking == EarnBonus.MULTIPLY and bonus.factor > ONE) or bonus is best]


def points_for_purchase_detail(
    *,
    member: Member,
    store,
    amount: Decimal,
    occurred_at: datetime,
    lines: Iterable[Mapping] = (),
    payment_method: str = "",
    purchase=None,
    rule: EarnRule | None = None,
) -> EarnResult:
    """The points a purchase earns and the points promotions (EARN_BONUSES) behind them.

    eligible = amount less the lines whose category the format's rule excludes (never below 0);
    base = floor(eligible / yuan per point), in whole cents so no rounding of a division can add a point;
    points = floor(base x max(tier multiplier, every "larger" promotion) x every "multiply" promotion).
    The multipliers apply to whole base points, so 1.5x on 3 points is 4, not 4.5 rounded up.
    A promotion's extra points are the points with every promotion less the points without that one.
    """
    rule = rule or earn_rule_for(store.format)
    if not rule.is_active:
        return EarnResult(points=0)
    lines = list(lines)
    excluded = rule.excluded_category_set
    excluded_amount = sum(
        (Decimal(str(line["amount"])) for line in lines if excluded and line.get("category") in excluded),
        Decimal("0.00"),
    )
    eligible = max(amount - excluded_amount, Decimal("0.00"))
    base = _cents(eligible) // _cents(rule.amount_per_point)
    if base <= 0:
        return EarnResult(points=0)
    tier = member_points_multiplier(member, on=timezone.localdate(occurred_at))
    offered = []
    for provider in EARN_BONUSES:
        offered.extend(provider(member=member, store=store, occurred_at=occurred_at, payment_method=payment_method,
                                lines=lines) or ())
    bonuses = _bonuses_in_effect(offered, tier=tier)
    points = _earned(base, tier, bonuses)
    return EarnResult(points=points, bonuses=[
        (bonus, max(points - _earned(base, tier, [other for other in bonuses if other is not bonus]), 0))
        for bonus in bonuses
    ])


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
    """The points a purchase earns (points_for_purchase_detail without the promotions behind them)."""
    return points_for_purchase_detail(
        member=member, store=store, amount=amount, occurred_at=occurred_at, lines=lines,
        payment_method=payment_method, purchase=purchase, rule=rule,
    ).points


def promotions_text(bonuses: Iterable[tuple[EarnBonus, int]]) -> str:
    """The promotions of an earning as a ledger reason names them ("周三双倍积分 x2.00; 会员日 x1.50"), cut to
    what Purchase.promotions_text holds."""
    text = "; ".join(bonus.shown for bonus, _extra in bonuses)
    if len(text) > PROMOTIONS_TEXT_MAX:
        text = text[:PROMOTIONS_TEXT_MAX - 1] + "…"
    return text


@dataclass(frozen=True)
class CashOut:
    entry: PointsEntry
    cash_value: Decimal
    balance: int
    # The points-to-cash day whose rate was used; None for the points policy's own rate.
    promotion: CashRate | None = None


def cash_value_of(points: int, policy: PointsPolicy | CashRate) -> Decimal:
    """What points are worth in cash: points x cash value / points per unit, rounded down to the cent.

    The one points-to-cash rounding: a till pays it out (CONTRACT, points/redeem), and an adjustment's
    approval level is set by it. `policy` is anything with cash_points and cash_value (the points policy, a
    points-to-cash day's CashRate).
    """
    cents = points * _cents(policy.cash_value) // policy.cash_points
    return Decimal(cents).scaleb(-2).quantize(Decimal("0.01"))


def _rate_beats(rate, other) -> bool:
    # More cash per point, compared exactly: value / points > other value / other points, cross-multiplied.
    return _cents(rate.cash_value) * other.cash_points > _cents(other.cash_value) * rate.cash_points


def cash_rate_best(*, store, on: date, policy: PointsPolicy) -> PointsPolicy | CashRate:
    """The rate points are turned into cash at: the points policy's, or a points-to-cash day's (CASH_RATES) that
    gives more cash per point at that store on that day; on a tie the policy's."""
    best = policy
    for provider in CASH_RATES:
        for rate in provider(store=store, on=on) or ():
            if rate.cash_points > 0 and rate.cash_value > 0 and _rate_beats(rate, best):
                best = rate
    return best


def points_cash_out(
    *, member: Member | int | None = None, member_no: str | None = None, points: int, store, terminal=None,
    receipt_no: str, operator=None,
) -> CashOut:
    """Turn points into cash on a receipt at a till (积分抵现), within the points policy's limits.

    The member is given, or named by the number a till sends (our number or a legacy one, as member_for_pos
    finds it). The rate is the best of the points policy's and today's points-to-cash days at the store
    (cash_rate_best); the minimum and maximum per receipt stay the policy's.

    The member row is locked first, so two tills working on one receipt cannot pass the per-receipt
    maximum together. The company of the redeeming store's format honours the points.
    Raise MemberNotFound (member_no), PurchaseInvalid, MemberNotActive, CashOutLimitExceeded, InsufficientPoints.
    """
    bad_points = not isinstance(points, int) or isinstance(points, bool) or not 0 < points <= POINTS_MAX
    receipt_no = (receipt_no or "").strip()
    if bad_points or not receipt_no or len(receipt_no) > 64:
        if member is None:
            _member_for_pos(member_no)  # an unknown member is named before the body's mistakes
        if bad_points:
            raise PurchaseInvalid(fields={"points": [gettext("Give a whole number of points greater than 0.")]})
        raise PurchaseInvalid(fields={"receipt_no": [gettext("Give the receipt number (1 to 64 characters).")]})
    arguments = {"points": points, "store": store, "terminal": terminal, "receipt_no": receipt_no,
                 "operator": operator}
    if connection.vendor == "postgresql" and store is not None:
        key = member if member is None or isinstance(member, int) else member.pk
        outcome = None
        if key is None:
            outcome = _cash_out_postgresql(_LOCKED_BY_NUMBER, (member_no or "").strip(), **arguments)
            if outcome is None:  # a legacy number, a merged record's, or none of ours
                key = _member_for_pos(member_no)
        if key is not None:
            outcome = _cash_out_postgresql(_LOCKED_BY_ID, key, **arguments)
        if isinstance(outcome, CashOut):
            return outcome
        # Refused (the member's key came back) or not found: the checked path raises what it always raised.
        member = key if outcome is None else outcome
    elif member is None:
        member = _member_for_pos(member_no)
    return _points_cash_out_checked(member=member, **arguments)


def _member_for_pos(member_no: str | None) -> int:
    # purchases.py reads this module's rules when it is imported, so its lookup is imported when first used.
    from membership.services.purchases import member_for_pos

    return member_for_pos(member_no)


def _cash_out_reason(*, cash_value: Decimal, receipt_no: str, promotion: CashRate | None) -> str:
    """The ledger reason of a cash-out: what it paid on which receipt, and the points-to-cash day's rate."""
    if promotion is None:
        return gettext("turned into %(value)s yuan on receipt %(receipt_no)s") % {
            "value": cash_value, "receipt_no": receipt_no}
    return gettext("turned into %(value)s yuan on receipt %(receipt_no)s, %(promotion)s (%(rate)s points = "
                   "%(rate_value)s yuan)") % {
        "value": cash_value, "receipt_no": receipt_no, "promotion": promotion.label,
        "rate": promotion.cash_points, "rate_value": promotion.cash_value}


@transaction.atomic
def _points_cash_out_checked(
    *, member: Member | int, points: int, store, terminal=None, receipt_no: str, operator=None
) -> CashOut:
    """points_cash_out on every database, its arguments checked: lock, each limit in turn, points_post."""
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
    rate = cash_rate_best(store=store, on=timezone.localdate(), policy=policy)
    cash_value = cash_value_of(points, rate)
    if cash_value <= 0:
        raise CashOutLimitExceeded(
            gettext("%(points)s points are worth less than 0.01 yuan (%(rate)s points = %(value)s yuan)."),
            points=points, rate=rate.cash_points, value=rate.cash_value,
        )
    if member.points < points:
        raise InsufficientPoints(points=member.points)
    promotion = rate if isinstance(rate, CashRate) else None
    reason = _cash_out_reason(cash_value=cash_value, receipt_no=receipt_no, promotion=promotion)
    entry = points_post(
        member=member, points=-points, kind=PointsEntry.Kind.CASH_OUT, store=store, terminal=terminal,
        receipt_no=receipt_no, operator=operator, reason=reason,
    )
    cash_out = CashOut(entry=entry, cash_value=cash_value, balance=entry.balance_after, promotion=promotion)
    if promotion is not None:
        for listener in CASHED_OUT:
            listener(cash_out=cash_out)
    return cash_out


# --- a till's cash-out on PostgreSQL ----------------------------------------------------------------------------

_POLICY_FIELDS = ("cash_points", "cash_value", "cash_min_points", "cash_max_points")


def _locked_select(where: str) -> JoinedSelect:
    # The member locked (its number for the event) and the points policy, in one statement written once per
    # process. A merged record is found by its number only through member_for_pos.
    return JoinedSelect(
        [Part("m", Member, ("member_no", "status", "points")), Part("p", PointsPolicy, _POLICY_FIELDS)],
        'FROM {m} m LEFT JOIN {p} p ON p."id" = 1 WHERE ' + where + " FOR UPDATE OF m",
    )


_LOCKED_BY_ID = _locked_select('m."id" = %s')
_LOCKED_BY_NUMBER = _locked_select('m."member_no" = %s AND m."merged_into_id" IS NULL')
def _cash_out_postgresql(select: JoinedSelect, key, *, points: int, store, terminal, receipt_no: str,
                         operator) -> CashOut | int | None:
    """The cash-out with the member found, locked and read with the policy in one statement, and the points used
    on the receipt summed, the balance taken and the entry appended in another (points_redeem_joined). Nothing is
    written when the member is not found by `select` (None) or a limit refuses it (the member's key, for the
    checked path to say which)."""
    # No savepoint: nothing is raised in here, and points_redeem_joined writes all or nothing.
    with transaction.atomic(savepoint=False):
        found = select.fetch([key]) if key else None
        if found is None:
            return None
        member, policy = found["m"], found["p"] or PointsPolicy.current()
        if member.status != Member.Status.ACTIVE or points < policy.cash_min_points or member.points < points:
            return member.pk
        rate = cash_rate_best(store=store, on=timezone.localdate(), policy=policy)
        cash_value = cash_value_of(points, rate)
        if cash_value <= 0:
            return member.pk
        promotion = rate if isinstance(rate, CashRate) else None
        entry = points_redeem_joined(
            member=member, points=points, kind=PointsEntry.Kind.CASH_OUT, store=store, receipt_no=receipt_no,
            receipt_max=policy.cash_max_points, terminal=terminal, legal_entity_id=store.format.legal_entity_id,
            operator=operator,
            reason=_cash_out_reason(cash_value=cash_value, receipt_no=receipt_no, promotion=promotion),
        )
        if entry is None:
            return member.pk
        cash_out = CashOut(entry=entry, cash_value=cash_value, balance=entry.balance_after, promotion=promotion)
        if promotion is not None:
            for listener in CASHED_OUT:
                listener(cash_out=cash_out)
        return cash_out
