"""points_adjust_request: a manual points adjustment moves points only after another person approves it."""

from decimal import Decimal

import pytest
from django.db.models import Sum

from approvals import registry
from approvals.errors import ApprovalAlreadyPending, ApproverNotPermitted, SelfApprovalForbidden
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from membership.errors import InsufficientPoints, MemberNotActive, PointsAdjustmentInvalid
from membership.models import Member, PointsEntry
from membership.services import POINTS_ADJUST, member_status_set, points_adjust_request, points_post
from tests.membership.conftest import register

ADJUST = PointsEntry.Kind.ADJUST


def balance(member) -> int:
    return Member.objects.values_list("points", flat=True).get(pk=member.pk)


def ledger_sum(member) -> int:
    return PointsEntry.objects.filter(member=member).aggregate(total=Sum("points"))["total"] or 0


@pytest.fixture
def member_with_500_points(dept001):
    member = register(name="李建国", phone="13800138000", store=dept001)
    points_post(member=member, points=500, kind=PointsEntry.Kind.EARN, store=dept001, receipt_no="R-1")
    return member


@pytest.fixture
def pending_credit_of_300(member_with_500_points, hq_admin, dept001) -> ApprovalRequest:
    """hq_admin asked to add 300 points the member earned at a till that was offline."""
    return points_adjust_request(member=member_with_500_points, points=300, reason="till offline on 3 May, R-77",
                                 requested_by=hq_admin, store=dept001)


def test_a_request_waits_for_approval_and_moves_nothing(pending_credit_of_300, member_with_500_points):
    request = pending_credit_of_300
    assert request.status == ApprovalRequest.Status.PENDING
    assert request.action == POINTS_ADJUST
    assert request.subject == member_with_500_points
    assert request.payload["points"] == 300
    assert request.amount == Decimal("3.00"), "the cash value of the points, for approval levels"
    assert balance(member_with_500_points) == 500
    assert not PointsEntry.objects.filter(kind=ADJUST).exists()


def test_the_requester_cannot_approve_their_own_adjustment(pending_credit_of_300, hq_admin, member_with_500_points):
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=pending_credit_of_300, approver=hq_admin)
    pending_credit_of_300.refresh_from_db()
    assert pending_credit_of_300.status == ApprovalRequest.Status.PENDING
    assert balance(member_with_500_points) == 500


def test_staff_without_the_approve_permission_cannot_approve(pending_credit_of_300, dept001_manager,
                                                            member_with_500_points):
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=pending_credit_of_300, approver=dept001_manager)
    assert balance(member_with_500_points) == 500


def test_another_approver_posts_the_adjustment_with_its_reason_and_cause(
    pending_credit_of_300, member_with_500_points, hq_approver, dept001, ledgers_balanced
):
    approval_request_approve(approval_request=pending_credit_of_300, approver=hq_approver, comment="checked")

    assert balance(member_with_500_points) == 800 == ledger_sum(member_with_500_points)
    entry = PointsEntry.objects.get(kind=ADJUST)
    assert (entry.points, entry.balance_after) == (300, 800)
    assert entry.reason == "till offline on 3 May, R-77"
    assert entry.cause == pending_credit_of_300
    assert entry.operator == hq_approver
    assert entry.store == dept001
    assert entry.legal_entity == dept001.format.legal_entity
    pending_credit_of_300.refresh_from_db()
    assert pending_credit_of_300.status == ApprovalRequest.Status.APPROVED
    ledgers_balanced()


def test_an_approved_negative_adjustment_takes_points_away(member_with_500_points, hq_admin, hq_approver,
                                                           ledgers_balanced):
    request = points_adjust_request(member=member_with_500_points, points=-200, reason="duplicate receipt R-1",
                                    requested_by=hq_admin)
    approval_request_approve(approval_request=request, approver=hq_approver)
    entry = PointsEntry.objects.get(kind=ADJUST)
    assert (entry.points, entry.balance_after, entry.store, entry.legal_entity) == (-200, 300, None, None)
    assert balance(member_with_500_points) == 300
    ledgers_balanced()


def test_a_rejected_request_moves_nothing(pending_credit_of_300, member_with_500_points, hq_approver):
    approval_request_reject(approval_request=pending_credit_of_300, approver=hq_approver, comment="no receipt")
    pending_credit_of_300.refresh_from_db()
    assert pending_credit_of_300.status == ApprovalRequest.Status.REJECTED
    assert balance(member_with_500_points) == 500
    assert not PointsEntry.objects.filter(kind=ADJUST).exists()


def test_taking_away_more_than_the_balance_is_refused_at_once(member_with_500_points, hq_admin):
    with pytest.raises(InsufficientPoints):
        points_adjust_request(member=member_with_500_points, points=-501, reason="error", requested_by=hq_admin)
    assert not ApprovalRequest.objects.exists()


def test_points_spent_before_approval_make_a_negative_adjustment_fail_and_move_nothing(
    member_with_500_points, hq_admin, hq_approver, ledgers_balanced
):
    request = points_adjust_request(member=member_with_500_points, points=-400, reason="duplicate receipt R-1",
                                    requested_by=hq_admin)
    points_post(member=member_with_500_points, points=-300, kind=PointsEntry.Kind.REDEEM)

    with pytest.raises(InsufficientPoints):
        approval_request_approve(approval_request=request, approver=hq_approver)

    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING
    assert balance(member_with_500_points) == 200
    assert not PointsEntry.objects.filter(kind=ADJUST).exists()
    ledgers_balanced()


def test_one_open_adjustment_per_member(pending_credit_of_300, member_with_500_points, hq_admin):
    with pytest.raises(ApprovalAlreadyPending):
        points_adjust_request(member=member_with_500_points, points=10, reason="again", requested_by=hq_admin)


def test_a_frozen_account_can_still_be_corrected(member_with_500_points, hq_admin):
    frozen = member_status_set(member=member_with_500_points, status=Member.Status.FROZEN, actor=hq_admin,
                               reason="card lost")
    request = points_adjust_request(member=frozen, points=5, reason="goodwill", requested_by=hq_admin)
    assert request.status == ApprovalRequest.Status.PENDING


def test_a_closed_member_is_not_adjusted(member_with_500_points, hq_admin):
    member_status_set(member=member_with_500_points, status=Member.Status.CLOSED, actor=hq_admin, reason="moved")
    with pytest.raises(MemberNotActive):
        points_adjust_request(member=member_with_500_points, points=5, reason="goodwill", requested_by=hq_admin)
    assert not ApprovalRequest.objects.exists()


def test_the_approval_fails_when_the_member_was_closed_meanwhile(pending_credit_of_300, member_with_500_points,
                                                                 hq_admin, hq_approver):
    member_status_set(member=member_with_500_points, status=Member.Status.CLOSED, actor=hq_admin, reason="moved")
    with pytest.raises(MemberNotActive):
        approval_request_approve(approval_request=pending_credit_of_300, approver=hq_approver)
    assert balance(member_with_500_points) == 500


@pytest.mark.parametrize("points", [0, 1.5, "10", True, None, 10_000_001, -10_000_001])
def test_points_must_be_a_non_zero_whole_number_within_bounds(member_with_500_points, hq_admin, points):
    with pytest.raises(PointsAdjustmentInvalid) as error:
        points_adjust_request(member=member_with_500_points, points=points, reason="x", requested_by=hq_admin)
    assert error.value.code == "validation_error"
    assert list(error.value.fields) == ["points"]
    assert not ApprovalRequest.objects.exists()


@pytest.mark.parametrize("reason", ["", "   ", None, "x" * 201])
def test_a_reason_is_required_and_fits_the_ledger(member_with_500_points, hq_admin, reason):
    with pytest.raises(PointsAdjustmentInvalid) as error:
        points_adjust_request(member=member_with_500_points, points=10, reason=reason, requested_by=hq_admin)
    assert list(error.value.fields) == ["reason"]
    assert not ApprovalRequest.objects.exists()


def test_the_largest_adjustment_allowed_goes_through(member_with_500_points, hq_admin, hq_approver):
    request = points_adjust_request(member=member_with_500_points, points=10_000_000, reason="legacy balance",
                                    requested_by=hq_admin)
    approval_request_approve(approval_request=request, approver=hq_approver)
    assert balance(member_with_500_points) == 10_000_500


def test_the_action_is_registered_with_a_label():
    assert str(registry.label(POINTS_ADJUST)) == "Manual points adjustment"
