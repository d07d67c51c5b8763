"""Points promotions (积分活动) and member days (会员日): which promotions a purchase or a cash-out meets, the
points a promotion added, and the checks of their settings.

The membership paths ask the providers here through their hooks (campaigns/promotion_hooks.py registers them):
`promotion_earn_bonuses` on every purchase, `promotion_cash_rates` on every points-to-cash at a till, and
`promotion_credits_record` once the purchase is written, in its transaction. A provider answers with one query:
the promotions running that day whose stores, formats and tiers fit are found in the database (EXISTS over the
small link tables, by their unique indexes); weekdays and payment methods, short texts, are matched here.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext

from campaigns.models import PointsPromotion, PromotionCashOut, PromotionCredit, weekday_set, word_set
from core.errors import ValidationFailed
from core.sql import JoinedSelect, Part
from membership.models import PointsPolicy
from membership.services.points import CashRate, EarnBonus

__all__ = [
    "PromotionBonus",
    "PromotionCashRate",
    "member_day_check",
    "points_promotion_check",
    "promotion_cash_out_record",
    "promotion_cash_rates",
    "promotion_credits_record",
    "promotion_earn_bonuses",
    "promotions_running",
]

MULTIPLIER_MIN, MULTIPLIER_MAX = Decimal("1.00"), Decimal("10.00")
PAYMENT_METHODS_MAX = 200


@dataclass(frozen=True)
class PromotionBonus(EarnBonus):
    """A points promotion's multiplier on a purchase (its `key` is the promotion's id): the purchase listener
    credits the promotion with the points it added."""


@dataclass(frozen=True)
class PromotionCashRate(CashRate):
    """A points-to-cash day's rate (its `key` is the promotion's id): the cash-out listener records what it paid."""


# --- which promotions apply ---------------------------------------------------------------------------------


# On every POS purchase (and cash-out): which promotions run. One hand-written statement per number of tiers,
# written once per process; the ORM's compiling of the same query cost more than the rest of the purchase.
_PROMOTION_FIELDS = (
    "code", "name", "kind", "multiplier", "stacking", "cash_points", "cash_value", "weekdays", "payment_methods",
)
_RUNNING_FROM = (
    'FROM {p} p WHERE p."kind" = %s AND p."is_active" = %s AND p."starts_on" <= %s AND p."ends_on" >= %s '
    'AND (EXISTS (SELECT 1 FROM {ps} ps WHERE ps."pointspromotion_id" = p."id" AND ps."store_id" = %s) '
    'OR (NOT EXISTS (SELECT 1 FROM {ps} ps WHERE ps."pointspromotion_id" = p."id") '
    'AND (NOT EXISTS (SELECT 1 FROM {pf} pf WHERE pf."pointspromotion_id" = p."id") '
    'OR EXISTS (SELECT 1 FROM {pf} pf WHERE pf."pointspromotion_id" = p."id" AND pf."format_id" = %s))))'
)
_FOR_TIERS = (
    ' AND (NOT EXISTS (SELECT 1 FROM {pt} pt WHERE pt."pointspromotion_id" = p."id") '
    'OR EXISTS (SELECT 1 FROM {pt} pt WHERE pt."pointspromotion_id" = p."id" AND pt."tier_id" IN (TIERS)))'
)
_RUNNING: dict[int | None, JoinedSelect] = {}


def _running_select(tier_count: int | None) -> JoinedSelect:
    select = _RUNNING.get(tier_count)
    if select is None:
        from_sql = _RUNNING_FROM
        if tier_count is not None:
            from_sql += _FOR_TIERS.replace("TIERS", ", ".join(["%s"] * tier_count))
        select = JoinedSelect(
            [Part("p", PointsPromotion, _PROMOTION_FIELDS)], from_sql + ' ORDER BY p."id"',
            tables={"ps": PointsPromotion.stores.through, "pf": PointsPromotion.formats.through,
                    "pt": PointsPromotion.tiers.through},
        )
        _RUNNING[tier_count] = select
    return select


def promotions_running(*, kind: str, store, day: date, tier_ids=None) -> list[PointsPromotion]:
    """The active promotions of `kind` running on `day` at `store` (and, when `tier_ids` is given, open to a
    member of one of those tiers), whatever their weekdays and payment methods. One query.

    A store takes part when a promotion names it, or names no store and names its format or no format; a promotion
    that names tiers is for their members only.
    """
    params = [str(kind), True, day, day, store.pk, store.format_id]
    tier_count = None
    if tier_ids is not None:
        tiers = list(tier_ids) or [0]
        tier_count = len(tiers)
        params += tiers
    select = _running_select(tier_count)
    with connection.cursor() as cursor:
        cursor.execute(select.sql, params)
        rows = cursor.fetchall()
    return [select.load(row)["p"] for row in rows]


def _member_tier_ids(member, *, day: date) -> list[int]:
    """The member's earned tier and paid tier still running on that day."""
    tier_ids = [member.tier_id] if member.tier_id else []
    if member.paid_tier_id and member.paid_tier_until and member.paid_tier_until >= day:
        tier_ids.append(member.paid_tier_id)
    return tier_ids


def _on_weekday(promotion: PointsPromotion, day: date) -> bool:
    weekdays = weekday_set(promotion.weekdays)
    return not weekdays or day.isoweekday() in weekdays


def _paid_with(promotion: PointsPromotion, payment_method: str) -> bool:
    methods = {method.lower() for method in word_set(promotion.payment_methods)}
    return not methods or (payment_method or "").strip().lower() in methods


def promotion_earn_bonuses(*, member, store, occurred_at: datetime, payment_method: str = "", lines=(),
                           **_context) -> list[PromotionBonus]:
    """The multipliers of the points promotions a purchase meets: its day (the local date of the sale) and
    weekday, its store or format, the member's tier (earned, or paid and running), its payment method."""
    if member is None:
        return []
    day = timezone.localdate(occurred_at)
    promotions = promotions_running(kind=PointsPromotion.Kind.MULTIPLIER, store=store, day=day,
                                    tier_ids=_member_tier_ids(member, day=day))
    return [
        PromotionBonus(factor=promotion.multiplier, stacking=promotion.stacking, label=promotion.name,
                       key=promotion.pk)
        for promotion in promotions
        if _on_weekday(promotion, day) and _paid_with(promotion, payment_method) and promotion.multiplier > 1
    ]


def promotion_cash_rates(*, store, on: date, **_context) -> list[PromotionCashRate]:
    """The points-to-cash rates of the points-to-cash days running at `store` on that day."""
    return [
        PromotionCashRate(cash_points=promotion.cash_points, cash_value=promotion.cash_value, label=promotion.name,
                          key=promotion.pk)
        for promotion in promotions_running(kind=PointsPromotion.Kind.CASH_RATE, store=store, day=on)
        if _on_weekday(promotion, on) and promotion.cash_points and promotion.cash_value
    ]


def promotion_credits_record(*, purchase, bonuses, **_context) -> list[PromotionCredit]:
    """Record the extra points each points promotion gave a member's purchase (for its results), in the
    purchase's transaction. Other bonuses, and sales without a member, record nothing."""
    if purchase.member_id is None:
        return []
    credits = [
        PromotionCredit(promotion_id=bonus.key, purchase=purchase, member_id=purchase.member_id,
                        extra_points=extra_points, created_at=purchase.created_at or timezone.now())
        for bonus, extra_points in bonuses
        if isinstance(bonus, PromotionBonus) and extra_points > 0
    ]
    if credits:
        PromotionCredit.objects.bulk_create(credits)
    return credits


def promotion_cash_out_record(*, cash_out, **_context) -> PromotionCashOut | None:
    """Record the points a points-to-cash day's rate turned into cash (for its results), in the cash-out's
    transaction. A rate of another provider records nothing."""
    rate, entry = cash_out.promotion, cash_out.entry
    if not isinstance(rate, PromotionCashRate):
        return None
    return PromotionCashOut.objects.create(promotion_id=rate.key, entry=entry, member_id=entry.member_id,
                                           points=-entry.points, cash_value=cash_out.cash_value,
                                           created_at=entry.created_at)


# --- checks of the settings ---------------------------------------------------------------------------------


def _dates_errors(starts_on, ends_on) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not isinstance(starts_on, date):
        errors["starts_on"] = [gettext("Give the first day.")]
    if not isinstance(ends_on, date):
        errors["ends_on"] = [gettext("Give the last day.")]
    if not errors and ends_on < starts_on:
        errors["ends_on"] = [gettext("The last day cannot come before the first day.")]
    return errors


def points_promotion_check(
    *,
    kind: str,
    starts_on: date | None,
    ends_on: date | None,
    multiplier: Decimal | None = None,
    cash_points: int | None = None,
    cash_value: Decimal | None = None,
    weekdays: str = "",
    payment_methods: str = "",
) -> None:
    """Check a points promotion's settings before it is created or changed: the dates in order, a multiplier
    from 1 to 10, a points-to-cash day's rate given and better than the standard one, weekdays 1 to 7.
    Raise ValidationFailed naming the fields."""
    errors = _dates_errors(starts_on, ends_on)
    if kind not in PointsPromotion.Kind.values:
        errors["kind"] = [gettext("Choose a points multiplier or a points-to-cash day.")]
    if kind == PointsPromotion.Kind.MULTIPLIER:
        if not isinstance(multiplier, Decimal) or not MULTIPLIER_MIN <= multiplier <= MULTIPLIER_MAX:
            errors["multiplier"] = [gettext("A multiplier is from 1 to 10, e.g. 2 for double points.")]
    if kind == PointsPromotion.Kind.CASH_RATE:
        if not isinstance(cash_points, int) or cash_points < 1:
            errors["cash_points"] = [gettext("A points-to-cash day needs the points per cash unit (1 or more).")]
        if not isinstance(cash_value, Decimal) or cash_value < Decimal("0.01"):
            errors["cash_value"] = [gettext("A points-to-cash day needs the cash value of those points "
                                            "(0.01 yuan or more).")]
        if "cash_points" not in errors and "cash_value" not in errors:
            policy = PointsPolicy.current()
            if cash_value * policy.cash_points <= policy.cash_value * cash_points:
                errors["cash_value"] = [gettext(
                    "A points-to-cash day must give a better rate than the standard %(points)s points = "
                    "%(value)s yuan."
                ) % {"points": policy.cash_points, "value": policy.cash_value}]
    days = [part.strip() for part in (weekdays or "").replace("，", ",").split(",") if part.strip()]
    if any(not part.isdigit() or not 1 <= int(part) <= 7 for part in days):
        errors["weekdays"] = [gettext("Days of the week are numbers 1 (Monday) to 7 (Sunday) separated by "
                                      "commas.")]
    if len(payment_methods or "") > PAYMENT_METHODS_MAX:
        errors["payment_methods"] = [gettext("At most %(max)s characters.") % {"max": PAYMENT_METHODS_MAX}]
    if errors:
        raise ValidationFailed(fields=errors)


def member_day_check(*, starts_on: date | None, ends_on: date | None) -> None:
    """Check a member day's dates before it is created or changed. Raise ValidationFailed naming the fields."""
    errors = _dates_errors(starts_on, ends_on)
    if errors:
        raise ValidationFailed(fields=errors)
