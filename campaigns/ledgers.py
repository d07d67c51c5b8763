"""The coupon check for `manage.py check_ledgers` (registered in core.ledgers).

Each template's counters against its coupons: issued = every coupon; redeemed, voided and expired = the
coupons in that state (so issued = redeemed + voided + expired + open); discounts given = the sum of the
redemptions not given back, within the budget.
"""

from collections.abc import Iterator
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils.translation import gettext_lazy as _

from campaigns.models import Coupon, CouponRedemption, CouponTemplate
from core import ledgers
from core.ledgers import LedgerBatch, LedgerDifference


def coupon_counts_check(batch_size: int) -> Iterator[LedgerBatch]:
    last_pk = 0
    while True:
        templates = list(CouponTemplate.objects.filter(pk__gt=last_pk).order_by("pk")[:batch_size].values(
            "pk", "code", "issued_count", "redeemed_count", "voided_count", "expired_count", "discount_spent",
            "total_budget"))
        if not templates:
            return
        last_pk = templates[-1]["pk"]
        ids = [row["pk"] for row in templates]
        counts = {
            row["template_id"]: row for row in Coupon.objects.filter(template_id__in=ids).order_by()
            .values("template_id").annotate(
                issued=Count("pk"),
                redeemed=Count("pk", filter=Q(status=Coupon.Status.REDEEMED)),
                voided=Count("pk", filter=Q(status=Coupon.Status.VOIDED)),
                expired=Count("pk", filter=Q(status=Coupon.Status.EXPIRED)),
            )
        }
        kept = {
            template_id: (count, total) for template_id, count, total in
            CouponRedemption.objects.filter(template_id__in=ids, status=CouponRedemption.Status.REDEEMED).order_by()
            .values("template_id").annotate(n=Count("pk"), total=Sum("discount"))
            .values_list("template_id", "n", "total")
        }
        redeemed_rows = {template_id: count for template_id, (count, _total) in kept.items()}
        spent = {template_id: total for template_id, (_count, total) in kept.items()}
        differences = []
        for row in templates:
            actual = counts.get(row["pk"], {})
            account = f"coupon template {row['code']} (id {row['pk']})"
            for field in ("issued", "redeemed", "voided", "expired"):
                if row[f"{field}_count"] != actual.get(field, 0):
                    differences.append(LedgerDifference(
                        account=account, balance=row[f"{field}_count"], ledger=actual.get(field, 0),
                        rule=f"{field} count equals the coupons {field}"))
            if redeemed_rows.get(row["pk"], 0) != actual.get("redeemed", 0):
                differences.append(LedgerDifference(
                    account=account, balance=actual.get("redeemed", 0), ledger=redeemed_rows.get(row["pk"], 0),
                    rule="redeemed coupons equal the redemptions not given back"))
            total = Decimal(spent.get(row["pk"]) or 0).quantize(Decimal("0.01"))
            if total != row["discount_spent"]:
                differences.append(LedgerDifference(account=account, balance=row["discount_spent"], ledger=total,
                                                    rule="discounts given equal the sum of the redemptions"))
            if row["total_budget"] is not None and row["discount_spent"] > row["total_budget"]:
                differences.append(LedgerDifference(account=account, balance=row["discount_spent"],
                                                    ledger=row["total_budget"], rule="discounts within the budget"))
        yield LedgerBatch(checked=len(templates), differences=differences)


ledgers.register("campaigns.coupons", label=_("coupons"), run=coupon_counts_check)
