"""What campaigns add to the purchase and card-payment paths of membership and cards, through their hooks.

- a purchase that qualifies for an after-payment rule gets its coupons, returned in the purchase's answer;
- a purchase returned in full, or a card payment voided, gives back the coupons used on its receipt.
"""

from django.utils.translation import gettext

from campaigns import promotion_hooks  # noqa: F401 - points promotions in the purchase and cash-out paths
from campaigns.queries import coupon_discount_text
from campaigns.services.coupons import coupon_redemptions_release
from campaigns.services.issuing import coupons_after_payment
from cards.services.payments import on_payment_reversed
from membership.services import purchases


def coupons_for_purchase(*, purchase, bonuses=()) -> None:
    coupons = coupons_after_payment(purchase=purchase)
    purchase.issued_coupons = [*getattr(purchase, "issued_coupons", ()), *(
        {"coupon_code": coupon.code, "name": coupon.template.name,
         "discount_text": coupon_discount_text(coupon.template), "valid_until": coupon.valid_until}
        for coupon in coupons
    )]


def coupons_back_on_return(*, purchase, purchase_return) -> None:
    if purchase.returned_amount >= purchase.amount:
        coupon_redemptions_release(
            store=purchase.store_id, receipt_no=purchase.receipt_no,
            reason=gettext("purchase returned (return %(receipt_no)s)") % {"receipt_no": purchase_return.receipt_no},
        )


@on_payment_reversed
def coupons_back_on_reversal(*, payment, reversal) -> None:
    coupon_redemptions_release(
        store=payment.store_id, receipt_no=payment.receipt_no,
        reason=gettext("card payment %(transaction_id)s voided") % {"transaction_id": payment.transaction_id},
    )


purchases.on_purchase_recorded(coupons_for_purchase)
purchases.on_purchase_returned(coupons_back_on_return)
