from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from approvals import registry
from approvals.errors import (
    ApprovalAlreadyPending,
    ApprovalNotPending,
    ApproverNotPermitted,
    DecisionCommentRequired,
    ReasonRequired,
)
from approvals.models import ApprovalPolicy, ApprovalRequest
from approvals.queries import ensure_may_decide, pending_request


def policy_for(*, action: str, amount: Decimal | None) -> ApprovalPolicy | None:
    """The level that applies: the active policy with the highest threshold the amount reaches."""
    policies = ApprovalPolicy.objects.filter(action=action, is_active=True).select_related(
        "approver_permission__content_type"
    )
    if amount is None:
        policies = policies.filter(Q(min_amount__isnull=True) | Q(min_amount=0))
    else:
        policies = policies.filter(Q(min_amount__isnull=True) | Q(min_amount__lte=amount))
    # NULL ("every amount") is the lowest level; PostgreSQL would sort it first when descending.
    return policies.order_by(F("min_amount").desc(nulls_last=True)).first()


@transaction.atomic
def approval_request_submit(
    *,
    action: str,
    subject,
    requested_by,
    reason: str,
    amount: Decimal | None = None,
    payload: dict | None = None,
    store=None,
) -> ApprovalRequest:
    """Ask for an action on a subject; carry it out at once when no policy asks for approval.

    Raise ReasonRequired, ApprovalAlreadyPending, or whatever the action raises.
    """
    handler = registry.get(action)
    if not reason or not reason.strip():
        raise ReasonRequired()
    content_type = ContentType.objects.get_for_model(subject)
    pending = pending_request(subject, actions=[action])
    if pending is not None:
        raise ApprovalAlreadyPending(request_id=pending.pk)
    policy = policy_for(action=action, amount=amount)
    request = ApprovalRequest.objects.create(
        action=action,
        content_type=content_type,
        object_id=str(subject.pk),
        subject_repr=str(subject)[:200],
        store=store,
        amount=amount,
        payload=payload or {},
        reason=reason.strip(),
        requested_by=requested_by,
        policy=policy,
    )
    if policy is None:
        handler.execute(request)
        request.status = ApprovalRequest.Status.APPROVED
        request.decided_at = timezone.now()
        request.save(update_fields=["status", "decided_at"])
    return request


def _lock_pending(approval_request: ApprovalRequest) -> ApprovalRequest:
    locked = ApprovalRequest.objects.select_for_update().get(pk=approval_request.pk)
    if locked.status != ApprovalRequest.Status.PENDING:
        raise ApprovalNotPending(status=locked.get_status_display())
    return locked


@transaction.atomic
def approval_request_approve(*, approval_request: ApprovalRequest, approver, comment: str = "") -> ApprovalRequest:
    """Approve and carry out the action in this transaction.

    Raise ApprovalNotPending, SelfApprovalForbidden, ApproverNotPermitted, or what the action raises.
    """
    request = _lock_pending(approval_request)
    ensure_may_decide(request, approver)
    # Set before the action runs, so what it writes (ledger operator, events) names the approver.
    request.decided_by = approver
    registry.get(request.action).execute(request)
    request.status = ApprovalRequest.Status.APPROVED
    request.decided_by = approver
    request.decided_at = timezone.now()
    request.decision_comment = comment.strip()
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_comment"])
    return request


@transaction.atomic
def approval_request_reject(*, approval_request: ApprovalRequest, approver, comment: str) -> ApprovalRequest:
    """Reject with a reason. Raise ApprovalNotPending, SelfApprovalForbidden, ApproverNotPermitted,
    DecisionCommentRequired."""
    if not comment or not comment.strip():
        raise DecisionCommentRequired()
    request = _lock_pending(approval_request)
    ensure_may_decide(request, approver)
    handler = registry.get(request.action)
    if handler.on_reject is not None:
        handler.on_reject(request)
    request.status = ApprovalRequest.Status.REJECTED
    request.decided_by = approver
    request.decided_at = timezone.now()
    request.decision_comment = comment.strip()
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_comment"])
    return request


@transaction.atomic
def approval_request_cancel(*, approval_request: ApprovalRequest, user) -> ApprovalRequest:
    """Withdraw one's own pending request. Raise ApprovalNotPending, ApproverNotPermitted."""
    request = _lock_pending(approval_request)
    if request.requested_by_id != user.pk:
        raise ApproverNotPermitted()
    handler = registry.get(request.action)
    if handler.on_reject is not None:
        handler.on_reject(request)
    request.status = ApprovalRequest.Status.CANCELLED
    request.decided_by = user
    request.decided_at = timezone.now()
    request.save(update_fields=["status", "decided_by", "decided_at"])
    return request
