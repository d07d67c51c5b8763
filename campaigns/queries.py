"""Reads of coupons shared by the POS API, the desk, the admin and the results."""

from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext

from campaigns.models import Coupon, CouponBatch, CouponRedemption, CouponTemplate
from core.numbers import money_display

ZERO = Decimal("0.00")


def _yuan(amount: Decimal) -> str:
    text = money_display(amount)
    return text[:-3] if text.endswith(".00") else text


def coupon_discount_text(template: CouponTemplate) -> str:
    """What the coupon gives, as a till or a member reads it: 满200减30, 减20元, 9折 最高减50元, 赠品."""
    kind = template.kind
    if kind == CouponTemplate.Kind.THRESHOLD:
        text = gettext("%(threshold)s yuan or more, %(amount)s yuan off") % {
            "threshold": _yuan(template.threshold), "amount": _yuan(template.amount)}
        if template.repeat:
            text = gettext("%(text)s, for every full amount") % {"text": text}
        return text
    if kind == CouponTemplate.Kind.PERCENT_OFF:
        text = gettext("%(percent)s%% off") % {"percent": format(template.percent.normalize(), "f")}
        if template.max_discount is not None:
            text = gettext("%(text)s, at most %(cap)s yuan") % {"text": text, "cap": _yuan(template.max_discount)}
        return text
    if kind == CouponTemplate.Kind.GIFT:
        return gettext("gift: item %(sku)s") % {"sku": template.gift_sku}
    if kind == CouponTemplate.Kind.ITEM:
        return gettext("%(amount)s yuan off listed items") % {"amount": _yuan(template.amount)}
    return gettext("%(amount)s yuan off") % {"amount": _yuan(template.amount)}


def _fits_store(template: CouponTemplate, store) -> bool:
    store_ids = {item.pk for item in template.stores.all()}
    if store_ids:
        return store.pk in store_ids
    format_ids = {item.pk for item in template.formats.all()}
    return not format_ids or store.format_id in format_ids


def member_coupons_usable(*, member_id: int, store, now: datetime | None = None, limit: int = 100) -> list[Coupon]:
    """A member's open coupons usable now at this store, the soonest to expire first."""
    now = now or timezone.now()
    coupons = (
        Coupon.objects.filter(member_id=member_id, status=Coupon.Status.OPEN,
                              template__status=CouponTemplate.Status.ACTIVE)
        .filter(Q(valid_from__isnull=True) | Q(valid_from__lte=now))
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        .select_related("template").prefetch_related("template__stores", "template__formats")
        .order_by("valid_until", "pk")
    )
    return [coupon for coupon in coupons[:limit * 2] if _fits_store(coupon.template, store)][:limit]


def member_coupons_open(*, member_id: int, limit: int = 100) -> list[Coupon]:
    """A member's open coupons wherever they can be used (the desk), the soonest to expire first."""
    return list(
        Coupon.objects.filter(member_id=member_id, status=Coupon.Status.OPEN)
        .select_related("template").order_by("valid_until", "pk")[:limit]
    )


def coupon_template_results(template: CouponTemplate) -> dict:
    """Issued, claimed, redeemed, the redemption rate, the discounts given and the sales on redeeming receipts.

    Redemptions given back (returned purchases, reversed payments) do not count. Sales on redeeming receipts
    are the baskets the tills reported when using the coupons.
    """
    claimed = CouponBatch.objects.filter(template=template, channel=CouponBatch.Channel.CLAIM).count()
    kept = CouponRedemption.objects.filter(template=template, status=CouponRedemption.Status.REDEEMED)
    totals = kept.aggregate(count=Count("pk"), discount=Sum("discount"), sales=Sum("basket_amount"))
    issued = template.issued_count
    redeemed = totals["count"] or 0
    return {
        "issued": issued,
        "claimed": claimed,
        "redeemed": redeemed,
        "voided": template.voided_count,
        "expired": template.expired_count,
        "open": template.open_count,
        "redemption_rate": (Decimal(redeemed) / Decimal(issued)).quantize(Decimal("0.0001")) if issued else None,
        "discount_cost": Decimal(totals["discount"] or ZERO).quantize(Decimal("0.01")),
        "sales": Decimal(totals["sales"] or ZERO).quantize(Decimal("0.01")),
    }
