"""The gift catalogue at the service desk (礼品兑换): stock per store, and gifts given for points.

A store's stock changes only here, each time with an append-only
GiftStockMovement carrying the stock after it, so `check_ledgers` can prove
GiftStock.quantity against its movements as it proves points against theirs.
"""

from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext

from membership.errors import GiftInvalid, GiftNotAvailable, GiftOutOfStock, InsufficientPoints, MemberNotActive
from membership.models import Gift, GiftRedemption, GiftStock, GiftStockMovement, Member, PointsEntry
from membership.services.ledger import _lock_members, points_post

__all__ = ["GIFT_QUANTITY_LIMIT", "GIFT_REDEEM_LIMIT", "gift_redeem", "gift_stock_adjust", "gift_stock_receive"]

# One delivery or count correction; a larger figure is a typing mistake, not a delivery.
GIFT_QUANTITY_LIMIT = 100_000
# Gifts handed over at once to one member at a desk.
GIFT_REDEEM_LIMIT = 100
_REASON_LENGTH = GiftStockMovement._meta.get_field("reason").max_length


def _quantity_errors(quantity, *, signed: bool, limit: int) -> list[str]:
    if not isinstance(quantity, int) or isinstance(quantity, bool):
        return [gettext("The quantity is a whole number.")]
    if signed and quantity == 0:
        return [gettext("A correction adds or takes away at least one.")]
    if not signed and quantity < 1:
        return [gettext("The quantity must be at least 1.")]
    if abs(quantity) > limit:
        return [gettext("At most %(limit)s at once.") % {"limit": limit}]
    return []


def _reason_errors(reason: str, *, required: bool) -> list[str]:
    if required and not reason:
        return [gettext("Give the reason for the correction.")]
    if len(reason) > _REASON_LENGTH:
        return [gettext("A reason has at most %(length)s characters.") % {"length": _REASON_LENGTH}]
    return []


def _stock_move(*, stock: GiftStock, quantity: int, kind: str, reason: str, operator) -> GiftStockMovement | None:
    """Change the stock by a conditional UPDATE and append its movement; None when it would go below zero.

    The UPDATE takes the stock row's lock: two desks giving out the last one
    queue on it, and the second finds nothing left.
    """
    updated = GiftStock.objects.filter(pk=stock.pk, quantity__gte=max(0, -quantity)).update(
        quantity=F("quantity") + quantity
    )
    if not updated:
        return None
    after = GiftStock.objects.values_list("quantity", flat=True).get(pk=stock.pk)
    return GiftStockMovement.objects.create(
        stock=stock, kind=kind, quantity=quantity, quantity_after=after, reason=reason, operator=operator
    )


def _check_stock_change(*, quantity, reason: str, signed: bool, reason_required: bool) -> None:
    """Raise GiftInvalid naming the quantity, the reason or both when a stock change cannot be recorded."""
    errors = {}
    if quantity_errors := _quantity_errors(quantity, signed=signed, limit=GIFT_QUANTITY_LIMIT):
        errors["quantity"] = quantity_errors
    if reason_errors := _reason_errors(reason, required=reason_required):
        errors["reason"] = reason_errors
    if errors:
        raise GiftInvalid(fields=errors)


def _stock_for(*, gift: Gift, store) -> GiftStock:
    # get_or_create retries the read when a concurrent first delivery created the row meanwhile.
    stock, _created = GiftStock.objects.get_or_create(gift=gift, store=store)
    return stock


def _available(stock: GiftStock | None) -> int:
    if stock is None:
        return 0
    return GiftStock.objects.filter(pk=stock.pk).values_list("quantity", flat=True).first() or 0


@transaction.atomic
def gift_stock_receive(*, gift: Gift, store, quantity: int, operator, reason: str = "") -> GiftStockMovement:
    """Add delivered gifts to a store's stock (its first delivery opens the stock). Raise GiftInvalid."""
    reason = (reason or "").strip()
    _check_stock_change(quantity=quantity, reason=reason, signed=False, reason_required=False)
    stock = _stock_for(gift=gift, store=store)
    return _stock_move(stock=stock, quantity=quantity, kind=GiftStockMovement.Kind.RECEIVED, reason=reason,
                       operator=operator)


@transaction.atomic
def gift_stock_adjust(*, gift: Gift, store, quantity: int, operator, reason: str) -> GiftStockMovement:
    """Correct a store's stock after a count (positive adds, negative takes away), never below zero.

    Raise GiftInvalid naming the field: no reason, a zero or oversized quantity,
    or more taken away than the store holds.
    """
    reason = (reason or "").strip()
    _check_stock_change(quantity=quantity, reason=reason, signed=True, reason_required=True)
    stock = _stock_for(gift=gift, store=store)
    movement = _stock_move(stock=stock, quantity=quantity, kind=GiftStockMovement.Kind.ADJUSTED, reason=reason,
                           operator=operator)
    if movement is None:
        raise GiftInvalid(fields={"quantity": [
            gettext("The store holds only %(available)s; the stock cannot go below zero.")
            % {"available": _available(stock)}
        ]})
    return movement


@transaction.atomic
def gift_redeem(*, member: Member, gift: Gift, store, quantity: int = 1, operator) -> GiftRedemption:
    """Give a member gifts for points at a store's desk: stock, points and the redemption move together.

    The member row is locked first, then the stock row (by its conditional
    UPDATE), always in that order. Only an active member spends points; a
    frozen account keeps them until it is unfrozen. Raise GiftInvalid,
    GiftNotAvailable, MemberNotActive, InsufficientPoints, GiftOutOfStock;
    each leaves stock and points as they were.
    """
    if quantity_errors := _quantity_errors(quantity, signed=False, limit=GIFT_REDEEM_LIMIT):
        raise GiftInvalid(fields={"quantity": quantity_errors})
    gift = Gift.objects.get(pk=gift.pk)
    if not gift.is_active:
        raise GiftNotAvailable(gift=gift.name)
    member = _lock_members(member.pk)[0]
    if member.status != Member.Status.ACTIVE:
        raise MemberNotActive(member_no=member.member_no, status=member.get_status_display())
    cost = gift.points * quantity
    if member.points < cost:
        raise InsufficientPoints(points=member.points)
    stock = GiftStock.objects.filter(gift=gift, store=store).first()
    movement = None
    if stock is not None:
        movement = _stock_move(stock=stock, quantity=-quantity, kind=GiftStockMovement.Kind.REDEEMED,
                               reason=member.member_no, operator=operator)
    if movement is None:
        raise GiftOutOfStock(gift=gift.name, store=store.name, available=_available(stock))
    entry = points_post(
        member=member, points=-cost, kind=PointsEntry.Kind.GIFT, store=store, operator=operator,
        reason=f"{gift.name} x{quantity}", cause=movement,
    )
    return GiftRedemption.objects.create(
        member=member, gift=gift, store=store, quantity=quantity, points=cost, points_entry=entry,
        stock_movement=movement, operator=operator,
    )
