"""Missed-receipt points (补积分): a sale the POS sent without a member, claimed for one afterwards.

The claim credits what the receipt would have earned had the member been shown at the till: the format's earn
rule, the member's tier multiplier, the points promotions of the time of sale (EARN_BONUSES), held while the
return window of the sale is open. A part returned before the claim is taken off as a return would have taken
it, so the purchase and its returns stay in step with what a later return takes back.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from membership.errors import (
    AlreadyClaimed,
    ClaimWindowPassed,
    NothingToClaim,
    PurchaseInvalid,
    PurchaseLimitExceeded,
    PurchaseNotFound,
)
from membership.models import Member, PointsHold, Purchase, PurchaseClaim
from membership.services.ledger import points_earn
from membership.services.points import points_for_purchase_detail, promotions_text
from membership.services.purchases import _earning_member, _receipt_error, points_to_take_back

__all__ = ["claim_window_days", "purchase_claim"]

ZERO = Decimal("0.00")


def claim_window_days() -> int:
    """How many days after the sale a receipt may be claimed (settings.PURCHASE_CLAIM_WINDOW_DAYS)."""
    return settings.PURCHASE_CLAIM_WINDOW_DAYS


@transaction.atomic
def purchase_claim(
    *,
    store,
    receipt_no: str,
    member: Member | int | str,
    channel: str,
    terminal=None,
    operator=None,
    now: datetime | None = None,
) -> PurchaseClaim:
    """Credit a receipt of `store` sent without a member to `member` (a Member, its key or a number a till sends).

    Once per receipt, whoever asks: the purchase row is locked, so of many claims at once one credits and the
    others find the member it set. The listeners of PURCHASE_RECORDED are not called again: the sale was
    announced when the POS sent it, and its after-payment coupons belong to the moment of payment.
    Raise PurchaseInvalid, PurchaseNotFound, MemberNotFound, MemberNotActive, AlreadyClaimed,
    ClaimWindowPassed, NothingToClaim, PurchaseLimitExceeded.
    """
    if channel not in PurchaseClaim.Channel.values:
        raise ValueError(f"channel must be one of {PurchaseClaim.Channel.values}, not {channel!r}")
    now = now or timezone.now()
    if problem := _receipt_error(receipt_no):
        raise PurchaseInvalid(fields={"receipt_no": [problem]})
    receipt_no = receipt_no.strip()
    member, rule = _earning_member(member, format=store.format)
    purchase = Purchase.objects.select_for_update().filter(store=store, receipt_no=receipt_no).first()
    if purchase is None:
        raise PurchaseNotFound(receipt_no=receipt_no)
    if purchase.member_id is not None:
        if PurchaseClaim.objects.filter(purchase=purchase).exists():
            raise AlreadyClaimed(receipt_no=receipt_no)
        raise AlreadyClaimed(AlreadyClaimed.at_till_message, receipt_no=receipt_no)
    days = claim_window_days()
    if purchase.occurred_at < now - timedelta(days=days):
        raise ClaimWindowPassed(receipt_no=receipt_no, days=days,
                                day=f"{timezone.localtime(purchase.occurred_at):%Y-%m-%d}")
    if purchase.returned_amount >= purchase.amount:
        raise NothingToClaim(receipt_no=receipt_no)

    earned = points_for_purchase_detail(
        member=member, store=store, amount=purchase.amount, occurred_at=purchase.occurred_at, lines=purchase.lines,
        payment_method=purchase.payment_method, purchase=purchase, rule=rule,
    )
    points = earned.points
    if points > rule.max_points_per_receipt:
        limit = gettext("a receipt of this format earns at most %(points)s points") % {
            "points": f"{rule.max_points_per_receipt:,}"}
        raise PurchaseLimitExceeded(limit=limit, fields={"receipt_no": [limit]})
    # What returns before the claim would have taken back from points shown at the till.
    returned = points_to_take_back(points_earned=points, amount=purchase.amount, returned_before=ZERO,
                                   returned_after=purchase.returned_amount)
    credited = points - returned
    shown = promotions_text(earned.bonuses) if points else ""
    Purchase.objects.filter(pk=purchase.pk).update(member=member, points_earned=points, promotions_text=shown)
    purchase.member, purchase.points_earned, purchase.promotions_text = member, points, shown

    claim = PurchaseClaim.objects.create(
        purchase=purchase, member=member, channel=channel, store=store, terminal=terminal, operator=operator,
        points=credited, created_at=now,
    )
    available_at = purchase.occurred_at + timedelta(days=rule.pending_days)
    if credited and rule.pending_days and available_at > now:
        PointsHold.objects.create(member=member, purchase=purchase, points=points, cancelled_points=returned,
                                  available_at=available_at)
    elif credited:
        points_earn(
            member=member, points=credited, store=store, terminal=terminal, receipt_no=receipt_no, cause=purchase,
            legal_entity_id=purchase.legal_entity_id, operator=operator, reason=_claim_reason(claim, shown),
        )
    return claim


def _claim_reason(claim: PurchaseClaim, promotions: str) -> str:
    receipt_no = claim.purchase.receipt_no
    if claim.channel == PurchaseClaim.Channel.DESK:
        reason = gettext("missed receipt %(receipt_no)s claimed at the desk") % {"receipt_no": receipt_no}
    else:
        reason = gettext("missed receipt %(receipt_no)s claimed at the till") % {"receipt_no": receipt_no}
    return f"{reason}, {promotions}" if promotions else reason
