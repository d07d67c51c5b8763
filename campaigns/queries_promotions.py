"""The results of points promotions and member days, read by their admin pages, their Excel downloads and
reports."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from campaigns.models import MemberDay, PointsPromotion, PromotionCashOut, PromotionCredit
from membership.models import Member, PointsPolicy, Purchase
from membership.services.points import cash_value_of

__all__ = ["days_span", "member_day_results", "promotion_results"]

ZERO = Decimal("0.00")
SHARE_PLACES = Decimal("0.0001")


def days_span(starts_on: date, ends_on: date) -> tuple[datetime, datetime]:
    """The moments a run of local days covers: from the first day's midnight to the midnight after the last."""
    zone = timezone.get_current_timezone()
    return (timezone.make_aware(datetime.combine(starts_on, time.min), zone),
            timezone.make_aware(datetime.combine(ends_on + timedelta(days=1), time.min), zone))


def promotion_results(promotion: PointsPromotion) -> dict:
    """What a points promotion gave.

    A multiplier: the purchases it raised, their members, the extra points and their cash value at today's
    points policy, and the sales on those purchases. A points-to-cash day: the cash-outs its rate paid (recorded
    as PromotionCashOut when they were paid), their members and the points turned into cash.
    """
    policy = PointsPolicy.current()
    if promotion.kind == PointsPromotion.Kind.CASH_RATE:
        totals = PromotionCashOut.objects.filter(promotion=promotion).aggregate(
            cash_outs=Count("pk"), members=Count("member_id", distinct=True), points=Sum("points"))
        return {
            "kind": promotion.kind,
            "cash_outs": totals["cash_outs"],
            "members": totals["members"],
            "points_cashed": totals["points"] or 0,
        }
    totals = PromotionCredit.objects.filter(promotion=promotion).aggregate(
        purchases=Count("pk"), members=Count("member_id", distinct=True), extra_points=Sum("extra_points"),
        sales=Sum("purchase__amount"), returned=Sum("purchase__returned_amount"),
    )
    extra_points = totals["extra_points"] or 0
    return {
        "kind": promotion.kind,
        "purchases": totals["purchases"],
        "members": totals["members"],
        "extra_points": extra_points,
        "extra_points_value": cash_value_of(extra_points, policy),
        "sales": totals["sales"] or ZERO,
        "returned": totals["returned"] or ZERO,
    }


def member_day_results(member_day: MemberDay) -> dict:
    """What a member day brought at its stores (every store when it names none), over its days.

    New members: registered during it at a participating store (merged records left out). Buyers: members with a
    purchase. Member sales and all sales (with the sales of customers who showed no membership); the member
    share is member sales / all sales, None without sales. Also its promotions (and the extra points they
    gave) and its coupon templates.
    """
    starts, ends = days_span(member_day.starts_on, member_day.ends_on)
    store_ids = list(member_day.stores.values_list("pk", flat=True))
    members = Member.objects.filter(registered_at__gte=starts, registered_at__lt=ends).exclude(
        status=Member.Status.MERGED)
    purchases = Purchase.objects.filter(occurred_at__gte=starts, occurred_at__lt=ends)
    if store_ids:
        members = members.filter(registered_store_id__in=store_ids)
        purchases = purchases.filter(store_id__in=store_ids)
    with_member = Q(member__isnull=False)
    totals = purchases.aggregate(
        receipts=Count("pk"), member_receipts=Count("pk", filter=with_member),
        buyers=Count("member_id", distinct=True), all_sales=Sum("amount"),
        member_sales=Sum("amount", filter=with_member),
    )
    all_sales, member_sales = totals["all_sales"] or ZERO, totals["member_sales"] or ZERO
    share = (member_sales / all_sales).quantize(SHARE_PLACES) if all_sales else None
    promotions = list(member_day.promotions.order_by("starts_on", "pk"))
    extra_points = 0
    if promotions:
        extra_points = PromotionCredit.objects.filter(
            promotion__in=[promotion.pk for promotion in promotions]
        ).aggregate(total=Sum("extra_points"))["total"] or 0
    return {
        "store_codes": sorted(member_day.stores.values_list("code", flat=True)),
        "new_members": members.count(),
        "buyers": totals["buyers"],
        "receipts": totals["receipts"],
        "member_receipts": totals["member_receipts"],
        "member_sales": member_sales,
        "all_sales": all_sales,
        "member_share": share,
        "promotions": promotions,
        "extra_points": extra_points,
        "extra_points_value": cash_value_of(extra_points, PointsPolicy.current()),
        "coupon_templates": list(member_day.coupon_templates.order_by("code")),
    }
