"""Manual points adjustments: asked for by one person, posted only when another approves (DESIGN section 4)."""

from decimal import Decimal

from django.db import transaction
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.services import approval_request_submit
from membership.errors import InsufficientPoints, PointsAdjustmentInvalid
from membership.models import Member, PointsDebtEntry, PointsEntry, PointsPolicy
from membership.services.ledger import _lock_members, points_debt_move, points_post
from membership.services.members import _ensure_live
from membership.services.points import cash_value_of

__all__ = ["POINTS_ADJUST", "POINTS_ADJUST_LIMIT", "POINTS_DEBT_WAIVE", "points_adjust_request",
           "points_debt_waive_request"]

POINTS_ADJUST = "membership.points_adjust"
POINTS_DEBT_WAIVE = "membership.points_debt_waive"
# Far above any real correction (the largest legacy balances are a few hundred thousand), far below
# what would overflow the integer balance when added to one.
POINTS_ADJUST_LIMIT = 10_000_000
_REASON_LENGTH = PointsEntry._meta.get_field("reason").max_length


def _adjustment_errors(*, points, reason: str) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not isinstance(points, int) or isinstance(points, bool):
        errors["points"] = [gettext("Points are a whole number.")]
    elif points == 0:
        errors["points"] = [gettext("An adjustment adds or takes away at least one point.")]
    elif abs(points) > POINTS_ADJUST_LIMIT:
        errors["points"] = [gettext("An adjustment moves at most %(limit)s points.") % {"limit": POINTS_ADJUST_LIMIT}]
    if not reason:
        errors["reason"] = [gettext("Give the reason for the adjustment; the member's ledger shows it.")]
    elif len(reason) > _REASON_LENGTH:
        errors["reason"] = [gettext("A reason has at most %(length)s characters.") % {"length": _REASON_LENGTH}]
    return errors


def _cash_value(points: int) -> Decimal:
    """What the points are worth at the points-to-cash rate, as a till pays them: the amount approval levels are
    set by."""
    return cash_value_of(abs(points), PointsPolicy.current())


@transaction.atomic
def points_adjust_request(*, member: Member, points: int, reason: str, requested_by, store=None) -> ApprovalRequest:
    """Ask for a manual adjustment of a member's points (positive adds, negative takes away).

    The points move only when a person holding membership.approve_points_adjustment
    approves; the requester never can. Raise PointsAdjustmentInvalid (naming the
    field), MemberNotActive, InsufficientPoints (taking away more than the
    balance), ApprovalAlreadyPending (one open adjustment per member).
    """
    reason = (reason or "").strip()
    errors = _adjustment_errors(points=points, reason=reason)
    if errors:
        raise PointsAdjustmentInvalid(fields=errors)
    member = Member.objects.get(pk=member.pk)
    _ensure_live(member)
    if points < 0 and member.points < -points:
        raise InsufficientPoints(points=member.points)
    return approval_request_submit(
        action=POINTS_ADJUST,
        subject=member,
        requested_by=requested_by,
        reason=reason,
        amount=_cash_value(points),
        store=store,
        payload={
            "member_id": member.pk,
            "member_no": member.member_no,
            "points": points,
            "balance_at_request": member.points,
            "store_id": store.pk if store is not None else None,
        },
    )


def _points_adjust_execute(request: ApprovalRequest) -> None:
    """Post the approved adjustment in the approval's transaction; the approver is the entry's operator.

    The balance is checked again now: points spent since the request can make
    a negative adjustment impossible, and then InsufficientPoints leaves the
    request pending and nothing moved.
    """
    member = _lock_members(int(request.payload["member_id"]))[0]
    _ensure_live(member)
    points_post(
        member=member,
        points=int(request.payload["points"]),
        kind=PointsEntry.Kind.ADJUST,
        store=request.store,
        operator=request.decided_by or request.requested_by,
        reason=request.reason,
        cause=request,
    )


@transaction.atomic
def points_debt_waive_request(
    *, member: Member, points: int, reason: str, requested_by, store=None
) -> ApprovalRequest:
    """Ask to forgive points a member owes after a return (a goodwill decision, so a second person approves).

    Raise PointsAdjustmentInvalid (naming the field: more than the member owes, no reason),
    ApprovalAlreadyPending (one open waiver per member).
    """
    reason = (reason or "").strip()
    errors = _adjustment_errors(points=points, reason=reason)
    member = Member.objects.get(pk=member.pk)
    if "points" not in errors and (points < 0 or points > member.points_debt):
        errors["points"] = [
            gettext("The member owes %(owed)s points: waive between 1 and that.") % {"owed": member.points_debt}
        ]
    if errors:
        raise PointsAdjustmentInvalid(fields=errors)
    return approval_request_submit(
        action=POINTS_DEBT_WAIVE,
        subject=member,
        requested_by=requested_by,
        reason=reason,
        amount=_cash_value(points),
        store=store,
        payload={"member_id": member.pk, "member_no": member.member_no, "points": points,
                 "owed_at_request": member.points_debt},
    )


def _points_debt_waive_execute(request: ApprovalRequest) -> None:
    """Forgive what is still owed, up to the approved points: earnings may have paid part off since."""
    member = _lock_members(int(request.payload["member_id"]))[0]
    points = min(int(request.payload["points"]), member.points_debt)
    if points <= 0:
        raise PointsAdjustmentInvalid(fields={"points": [gettext("The member no longer owes any points.")]})
    points_debt_move(member=member, points=-points, kind=PointsDebtEntry.Kind.WAIVED, reason=request.reason,
                     cause=request)


registry.register(POINTS_ADJUST, label=_("Manual points adjustment"), execute=_points_adjust_execute)
registry.register(POINTS_DEBT_WAIVE, label=_("Waive points owed"), execute=_points_debt_waive_execute)
