"""points_cash_out: points turned into cash at a till, within the points policy's limits."""

from decimal import Decimal

import pytest
from django.utils import timezone

from membership.errors import CashOutLimitExceeded, InsufficientPoints, MemberNotActive, PurchaseInvalid
from membership.models import EarnRule, Member, PointsEntry, PointsPolicy
from membership.services import member_status_set, points_cash_out, purchase_record
from stores.models import Format, Store
from tests.membership.conftest import register

D = Decimal


@pytest.fixture
def member_with_1000_points(reference_stores):
    """Earned at SUPER001 (1 point per 2 yuan): 2,000 yuan of groceries."""
    EarnRule.objects.create(format=Format.objects.get(code="SUPER"), amount_per_point=D("2.00"))
    member = register(name="李建国", phone="13800138000")
    purchase_record(store=Store.objects.get(code="SUPER001"), member=member, receipt_no="S-1", amount=D("2000.00"),
                    occurred_at=timezone.now())
    return Member.objects.get(pk=member.pk)


def balance(member) -> int:
    return Member.objects.values_list("points", flat=True).get(pk=member.pk)


def cash_out_entries():
    return PointsEntry.objects.filter(kind=PointsEntry.Kind.CASH_OUT)


def test_cash_out_at_another_format_is_honoured_by_that_format_s_company(member_with_1000_points, dept001,
                                                                        ledgers_balanced):
    result = points_cash_out(member=member_with_1000_points, points=150, store=dept001, receipt_no="D-1")

    assert (result.cash_value, result.balance) == (D("1.50"), 850)
    entry = result.entry
    assert (entry.kind, entry.points, entry.balance_after) == (PointsEntry.Kind.CASH_OUT, -150, 850)
    assert (entry.store, entry.receipt_no) == (dept001, "D-1")
    assert entry.legal_entity == dept001.format.legal_entity
    earned = PointsEntry.objects.get(kind=PointsEntry.Kind.EARN)
    assert earned.legal_entity == Format.objects.get(code="SUPER").legal_entity != entry.legal_entity
    assert "1.50" in entry.reason
    assert balance(member_with_1000_points) == 850
    ledgers_balanced()


def test_cash_value_is_rounded_down_to_the_cent(member_with_1000_points, dept001):
    PointsPolicy.objects.filter(pk=1).update(cash_points=300, cash_value=D("1.00"))

    result = points_cash_out(member=member_with_1000_points, points=200, store=dept001, receipt_no="D-1")

    assert result.cash_value == D("0.66")
    assert balance(member_with_1000_points) == 800


def test_fewer_points_than_the_minimum_are_refused(member_with_1000_points, dept001):
    with pytest.raises(CashOutLimitExceeded) as error:
        points_cash_out(member=member_with_1000_points, points=99, store=dept001, receipt_no="D-1")

    assert error.value.code == "limit_exceeded"
    assert "minimum per receipt" in str(error.value)
    assert balance(member_with_1000_points) == 1000
    assert not cash_out_entries().exists()


def test_redemptions_on_one_receipt_stay_within_the_maximum(member_with_1000_points, dept001):
    PointsPolicy.objects.filter(pk=1).update(cash_max_points=500)
    points_cash_out(member=member_with_1000_points, points=300, store=dept001, receipt_no="D-1")

    with pytest.raises(CashOutLimitExceeded) as error:
        points_cash_out(member=member_with_1000_points, points=201, store=dept001, receipt_no="D-1")

    assert "maximum per receipt" in str(error.value)
    assert "300 already" in str(error.value)
    points_cash_out(member=member_with_1000_points, points=200, store=dept001, receipt_no="D-1")
    points_cash_out(member=member_with_1000_points, points=201, store=dept001, receipt_no="D-2")
    assert balance(member_with_1000_points) == 299


def test_points_worth_less_than_a_cent_are_refused(member_with_1000_points, dept001):
    PointsPolicy.objects.filter(pk=1).update(cash_points=1000, cash_value=D("0.01"), cash_min_points=1)

    with pytest.raises(CashOutLimitExceeded) as error:
        points_cash_out(member=member_with_1000_points, points=999, store=dept001, receipt_no="D-1")

    assert "less than 0.01" in str(error.value)
    assert balance(member_with_1000_points) == 1000


def test_more_points_than_the_balance_moves_nothing(member_with_1000_points, dept001):
    with pytest.raises(InsufficientPoints) as error:
        points_cash_out(member=member_with_1000_points, points=1001, store=dept001, receipt_no="D-1")

    assert error.value.code == "insufficient_points"
    assert balance(member_with_1000_points) == 1000
    assert not cash_out_entries().exists()


def test_the_whole_balance_can_be_cashed(member_with_1000_points, dept001):
    result = points_cash_out(member=member_with_1000_points, points=1000, store=dept001, receipt_no="D-1")

    assert (result.cash_value, result.balance) == (D("10.00"), 0)


@pytest.mark.parametrize("status", [Member.Status.FROZEN, Member.Status.CLOSED])
def test_a_frozen_or_closed_member_cannot_cash_out(member_with_1000_points, dept001, hq_admin, status):
    member_status_set(member=member_with_1000_points, status=status, actor=hq_admin, reason="at the member's request")

    with pytest.raises(MemberNotActive):
        points_cash_out(member=member_with_1000_points, points=100, store=dept001, receipt_no="D-1")

    assert balance(member_with_1000_points) == 1000


@pytest.mark.parametrize("points", [0, -100, 1.5, "100", True, 2**40])
def test_points_must_be_a_whole_positive_number(member_with_1000_points, dept001, points):
    with pytest.raises(PurchaseInvalid) as error:
        points_cash_out(member=member_with_1000_points, points=points, store=dept001, receipt_no="D-1")

    assert "points" in error.value.fields
    assert balance(member_with_1000_points) == 1000


def test_a_receipt_number_is_required(member_with_1000_points, dept001):
    with pytest.raises(PurchaseInvalid) as error:
        points_cash_out(member=member_with_1000_points, points=100, store=dept001, receipt_no=" ")

    assert "receipt_no" in error.value.fields
