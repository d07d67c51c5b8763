"""Gifts for points at the desk (礼品兑换): stock per store, redemptions, and the stock ledger check."""

import pytest
from django.db import IntegrityError, connection, transaction

from core.ledgers import ledgers_check
from membership.errors import GiftInvalid, GiftNotAvailable, GiftOutOfStock, InsufficientPoints, MemberNotActive
from membership.models import Gift, GiftRedemption, GiftStock, GiftStockMovement, Member, PointsEntry
from membership.queries import gifts_available
from membership.services import (
    gift_redeem,
    gift_stock_adjust,
    gift_stock_receive,
    member_status_set,
    points_post,
)
from tests.membership.conftest import concurrently, kinds, register


def stock_of(gift, store) -> int:
    return GiftStock.objects.filter(gift=gift, store=store).values_list("quantity", flat=True).first() or 0


def balance(member) -> int:
    return Member.objects.values_list("points", flat=True).get(pk=member.pk)


@pytest.fixture
def thermos(db):
    return Gift.objects.create(code="THERMOS", name="保温杯", points=500)


@pytest.fixture
def thermos_3_at_dept001(thermos, dept001, dept001_manager):
    gift_stock_receive(gift=thermos, store=dept001, quantity=3, operator=dept001_manager, reason="delivery 0412")
    return thermos


@pytest.fixture
def member_with_2000_points(dept001):
    member = register(name="张秀英", phone="13800138000", store=dept001)
    points_post(member=member, points=2000, kind=PointsEntry.Kind.EARN, store=dept001, receipt_no="R-1")
    return member


# --- stock ------------------------------------------------------------------------------------------


def test_the_first_delivery_opens_the_stock_and_later_ones_add(thermos, dept001, dept001_manager,
                                                              ledgers_balanced):
    first = gift_stock_receive(gift=thermos, store=dept001, quantity=3, operator=dept001_manager)
    second = gift_stock_receive(gift=thermos, store=dept001, quantity=7, operator=dept001_manager,
                                reason="delivery 0413")
    assert stock_of(thermos, dept001) == 10
    assert [(m.kind, m.quantity, m.quantity_after) for m in (first, second)] == [
        (GiftStockMovement.Kind.RECEIVED, 3, 3), (GiftStockMovement.Kind.RECEIVED, 7, 10)]
    assert (second.operator, second.reason) == (dept001_manager, "delivery 0413")
    assert GiftStock.objects.filter(gift=thermos).count() == 1
    ledgers_balanced()


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "3", True, None, 100_001])
def test_a_delivery_needs_a_positive_whole_quantity(thermos, dept001, dept001_manager, quantity):
    with pytest.raises(GiftInvalid) as error:
        gift_stock_receive(gift=thermos, store=dept001, quantity=quantity, operator=dept001_manager)
    assert list(error.value.fields) == ["quantity"]
    assert not GiftStock.objects.exists()


def test_a_count_correction_records_its_reason(thermos_3_at_dept001, dept001, dept001_manager, ledgers_balanced):
    movement = gift_stock_adjust(gift=thermos_3_at_dept001, store=dept001, quantity=-2, operator=dept001_manager,
                                 reason="two broken in the store room")
    assert (movement.kind, movement.quantity, movement.quantity_after) == (GiftStockMovement.Kind.ADJUSTED, -2, 1)
    assert movement.reason == "two broken in the store room"
    assert stock_of(thermos_3_at_dept001, dept001) == 1
    gift_stock_adjust(gift=thermos_3_at_dept001, store=dept001, quantity=4, operator=dept001_manager,
                      reason="found in the back")
    assert stock_of(thermos_3_at_dept001, dept001) == 5
    ledgers_balanced()


def test_a_count_correction_never_takes_the_stock_below_zero(thermos_3_at_dept001, dept001, dept001_manager):
    with pytest.raises(GiftInvalid) as error:
        gift_stock_adjust(gift=thermos_3_at_dept001, store=dept001, quantity=-4, operator=dept001_manager,
                          reason="count")
    assert "only 3" in error.value.fields["quantity"][0]
    assert stock_of(thermos_3_at_dept001, dept001) == 3
    assert GiftStockMovement.objects.count() == 1


@pytest.mark.parametrize(("quantity", "reason", "fields"), [
    (-1, "", ["reason"]),
    (-1, "   ", ["reason"]),
    (0, "count", ["quantity"]),
    (0, "", ["quantity", "reason"]),
    (2, "x" * 201, ["reason"]),
])
def test_a_count_correction_needs_a_quantity_and_a_reason(thermos_3_at_dept001, dept001, dept001_manager,
                                                          quantity, reason, fields):
    with pytest.raises(GiftInvalid) as error:
        gift_stock_adjust(gift=thermos_3_at_dept001, store=dept001, quantity=quantity, operator=dept001_manager,
                          reason=reason)
    assert sorted(error.value.fields) == fields
    assert stock_of(thermos_3_at_dept001, dept001) == 3


def test_a_correction_at_a_store_without_stock_creates_nothing(thermos, super001, hq_admin):
    with pytest.raises(GiftInvalid):
        gift_stock_adjust(gift=thermos, store=super001, quantity=-1, operator=hq_admin, reason="count")
    assert not GiftStock.objects.exists()


# --- redemption ---------------------------------------------------------------------------------------


def test_a_redemption_moves_stock_and_points_together(thermos_3_at_dept001, member_with_2000_points, dept001,
                                                       dept001_manager, ledgers_balanced):
    redemption = gift_redeem(member=member_with_2000_points, gift=thermos_3_at_dept001, store=dept001,
                             quantity=2, operator=dept001_manager)

    assert stock_of(thermos_3_at_dept001, dept001) == 1
    assert balance(member_with_2000_points) == 1000
    redemption = GiftRedemption.objects.get(pk=redemption.pk)
    assert (redemption.member, redemption.gift, redemption.store) == (
        member_with_2000_points, thermos_3_at_dept001, dept001)
    assert (redemption.quantity, redemption.points, redemption.operator) == (2, 1000, dept001_manager)
    entry = redemption.points_entry
    assert (entry.kind, entry.points, entry.balance_after) == (PointsEntry.Kind.GIFT, -1000, 1000)
    assert entry.reason == "保温杯 x2"
    assert entry.cause == redemption.stock_movement
    assert (entry.store, entry.operator, entry.legal_entity) == (dept001, dept001_manager,
                                                                 dept001.format.legal_entity)
    movement = redemption.stock_movement
    assert (movement.kind, movement.quantity, movement.quantity_after) == (GiftStockMovement.Kind.REDEEMED, -2, 1)
    assert movement.reason == member_with_2000_points.member_no
    ledgers_balanced()


def test_points_earned_at_a_supermarket_buy_a_gift_at_the_department_store(
    thermos_3_at_dept001, dept001, super001, dept001_manager, ledgers_balanced
):
    member = register(name="王芳", phone="13900139000", store=super001)
    points_post(member=member, points=600, kind=PointsEntry.Kind.EARN, store=super001, receipt_no="S-1")
    gift_redeem(member=member, gift=thermos_3_at_dept001, store=dept001, operator=dept001_manager)
    assert balance(member) == 100
    entries = PointsEntry.objects.filter(member=member).order_by("pk")
    assert [e.legal_entity for e in entries] == [super001.format.legal_entity, dept001.format.legal_entity]
    ledgers_balanced()


def test_more_than_the_stock_is_out_of_stock_and_moves_nothing(thermos_3_at_dept001, member_with_2000_points,
                                                               dept001, dept001_manager):
    member_with_2000_points.points = 10_000  # a stale object must not matter
    points_post(member=member_with_2000_points, points=8000, kind=PointsEntry.Kind.EARN)
    with pytest.raises(GiftOutOfStock) as error:
        gift_redeem(member=member_with_2000_points, gift=thermos_3_at_dept001, store=dept001, quantity=4,
                    operator=dept001_manager)
    assert (error.value.code, error.value.status) == ("out_of_stock", 409)
    assert str(error.value) == f"保温杯 is out of stock at {dept001.name} (3 left)."
    assert stock_of(thermos_3_at_dept001, dept001) == 3
    assert balance(member_with_2000_points) == 10_000
    assert not GiftRedemption.objects.exists()


def test_a_store_that_never_had_the_gift_is_out_of_stock(thermos_3_at_dept001, member_with_2000_points, super001,
                                                         hq_admin):
    with pytest.raises(GiftOutOfStock) as error:
        gift_redeem(member=member_with_2000_points, gift=thermos_3_at_dept001, store=super001, operator=hq_admin)
    assert "(0 left)" in str(error.value)
    assert balance(member_with_2000_points) == 2000


def test_too_few_points_leave_the_stock_untouched(thermos_3_at_dept001, member_with_2000_points, dept001,
                                                  dept001_manager, ledgers_balanced):
    points_post(member=member_with_2000_points, points=-600, kind=PointsEntry.Kind.CASH_OUT)
    with pytest.raises(InsufficientPoints) as error:
        gift_redeem(member=member_with_2000_points, gift=thermos_3_at_dept001, store=dept001, quantity=3,
                    operator=dept001_manager)
    assert error.value.code == "insufficient_points"
    assert "1400" in str(error.value)
    assert stock_of(thermos_3_at_dept001, dept001) == 3
    assert balance(member_with_2000_points) == 1400
    assert GiftStockMovement.objects.filter(kind=GiftStockMovement.Kind.REDEEMED).count() == 0
    ledgers_balanced()


def test_a_gift_taken_out_of_the_catalogue_is_refused(thermos_3_at_dept001, member_with_2000_points, dept001,
                                                      dept001_manager):
    Gift.objects.filter(pk=thermos_3_at_dept001.pk).update(is_active=False)
    with pytest.raises(GiftNotAvailable):
        gift_redeem(member=member_with_2000_points, gift=thermos_3_at_dept001, store=dept001,
                    operator=dept001_manager)
    assert stock_of(thermos_3_at_dept001, dept001) == 3
    assert balance(member_with_2000_points) == 2000


@pytest.mark.parametrize("status", [Member.Status.FROZEN, Member.Status.CLOSED])
def test_only_an_active_member_takes_gifts(thermos_3_at_dept001, member_with_2000_points, dept001,
                                           dept001_manager, hq_admin, status):
    member_status_set(member=member_with_2000_points, status=status, actor=hq_admin, reason="card lost")
    with pytest.raises(MemberNotActive):
        gift_redeem(member=member_with_2000_points, gift=thermos_3_at_dept001, store=dept001,
                    operator=dept001_manager)
    assert stock_of(thermos_3_at_dept001, dept001) == 3
    assert balance(member_with_2000_points) == 2000


@pytest.mark.parametrize("quantity", [0, -1, 2.0, "1", False, 101])
def test_a_redemption_needs_a_sensible_quantity(thermos_3_at_dept001, member_with_2000_points, dept001,
                                                dept001_manager, quantity):
    with pytest.raises(GiftInvalid) as error:
        gift_redeem(member=member_with_2000_points, gift=thermos_3_at_dept001, store=dept001, quantity=quantity,
                    operator=dept001_manager)
    assert list(error.value.fields) == ["quantity"]
    assert stock_of(thermos_3_at_dept001, dept001) == 3


# --- the catalogue at a desk ---------------------------------------------------------------------------


def test_gifts_available_lists_active_gifts_in_stock_at_the_store(thermos_3_at_dept001, dept001, super001,
                                                                  dept001_manager, member_with_2000_points):
    umbrella = Gift.objects.create(code="UMBRELLA", name="雨伞", points=300)
    retired = Gift.objects.create(code="OLDMUG", name="旧杯子", points=100, is_active=False)
    rice = Gift.objects.create(code="RICE", name="大米5kg", points=800)
    gift_stock_receive(gift=umbrella, store=dept001, quantity=1, operator=dept001_manager)
    gift_stock_receive(gift=retired, store=dept001, quantity=9, operator=dept001_manager)
    gift_stock_receive(gift=rice, store=super001, quantity=9, operator=dept001_manager)
    gift_redeem(member=member_with_2000_points, gift=umbrella, store=dept001, operator=dept001_manager)

    assert [(gift.code, gift.in_stock) for gift in gifts_available(store=dept001)] == [("THERMOS", 3)]
    assert [(gift.code, gift.in_stock) for gift in gifts_available(store=super001)] == [("RICE", 9)]


# --- the stock ledger ------------------------------------------------------------------------------


@pytest.mark.ledgers_broken
def test_check_ledgers_finds_a_stock_changed_without_a_movement(thermos_3_at_dept001, dept001):
    assert ledgers_check(only=["membership.gift_stock"]).ok
    GiftStock.objects.filter(gift=thermos_3_at_dept001, store=dept001).update(quantity=5)

    report = ledgers_check(only=["membership.gift_stock"])

    assert report.difference_count == 1
    [difference] = report.differences
    assert (difference.balance, difference.ledger) == (5, 3)
    assert "THERMOS" in difference.account and dept001.code in difference.account


@pytest.mark.ledgers_broken
def test_check_ledgers_finds_a_last_movement_that_disagrees(thermos_3_at_dept001, dept001, dept001_manager):
    stock = GiftStock.objects.get(gift=thermos_3_at_dept001, store=dept001)
    GiftStockMovement.objects.create(stock=stock, kind=GiftStockMovement.Kind.ADJUSTED, quantity=2,
                                     quantity_after=4, reason="bad", operator=dept001_manager)
    GiftStockMovement.objects.create(stock=stock, kind=GiftStockMovement.Kind.ADJUSTED, quantity=-2,
                                     quantity_after=2, reason="bad", operator=dept001_manager)
    [difference] = ledgers_check(only=["membership.gift_stock"]).differences
    assert (difference.balance, difference.ledger) == (3, 2)
    assert "after the last movement" in difference.rule


@pytest.mark.ledgers_broken
def test_a_stock_without_movements_must_be_empty(thermos, dept001):
    GiftStock.objects.create(gift=thermos, store=dept001)
    assert ledgers_check(only=["membership.gift_stock"]).ok
    GiftStock.objects.filter(gift=thermos).update(quantity=1)
    assert ledgers_check(only=["membership.gift_stock"]).difference_count == 1


# --- PostgreSQL only -----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_desks_giving_out_the_last_one_at_once_one_wins(thermos, dept001, ledgers_balanced):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under concurrency need PostgreSQL")
    gift_stock_receive(gift=thermos, store=dept001, quantity=1, operator=None)
    members = []
    for index, phone in enumerate(("13800138000", "13900139000")):
        member = register(name=f"会员{index}", phone=phone, store=dept001)
        points_post(member=member, points=500, kind=PointsEntry.Kind.EARN)
        members.append(member)
    results = concurrently(2, lambda index: gift_redeem(member=members[index], gift=thermos, store=dept001,
                                                        operator=None))

    assert kinds(results) == {"GiftRedemption": 1, "GiftOutOfStock": 1}
    assert stock_of(thermos, dept001) == 0
    assert sorted(balance(member) for member in members) == [0, 500]
    assert GiftRedemption.objects.count() == 1
    ledgers_balanced()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_one_member_redeeming_at_two_desks_at_once_never_overdraws(thermos, dept001, super001, ledgers_balanced):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under concurrency need PostgreSQL")
    for store in (dept001, super001):
        gift_stock_receive(gift=thermos, store=store, quantity=5, operator=None)
    member = register(name="李建国", phone="13800138000", store=dept001)
    points_post(member=member, points=1200, kind=PointsEntry.Kind.EARN)
    stores = (dept001, super001) * 2
    results = concurrently(4, lambda index: gift_redeem(member=member, gift=thermos, store=stores[index],
                                                        operator=None))

    assert kinds(results) == {"GiftRedemption": 2, "InsufficientPoints": 2}
    assert balance(member) == 200
    assert stock_of(thermos, dept001) + stock_of(thermos, super001) == 8
    ledgers_balanced()


@pytest.mark.postgres
@pytest.mark.parametrize("statement", [
    "UPDATE membership_giftstockmovement SET quantity = 100 WHERE id = %s",
    "DELETE FROM membership_giftstockmovement WHERE id = %s",
])
def test_stock_movements_are_append_only_on_postgresql(thermos_3_at_dept001, statement):
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL only")
    movement = GiftStockMovement.objects.get()
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [movement.pk])
    movement.refresh_from_db()
    assert movement.quantity == 3
