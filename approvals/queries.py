"""Reads of approval requests shared by the engine, the admin and the apps' services: the requests of a subject,
the one waiting for a decision, and whether a user may decide a request. The writes (submit, approve, reject,
withdraw) are approvals.services."""

from collections.abc import Iterable

from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet

from approvals.errors import ApproverNotPermitted, SelfApprovalForbidden
from approvals.models import ApprovalRequest
from stores.queries import user_can_see_store, user_is_hq

__all__ = ["can_decide", "ensure_may_decide", "pending_request", "pending_requests", "requests_of"]


def requests_of(subject, *, actions: Iterable[str] | None = None) -> QuerySet:
    """The approval requests of a subject (of these actions only, when given), whatever their status."""
    requests = ApprovalRequest.objects.filter(
        content_type=ContentType.objects.get_for_model(subject), object_id=str(subject.pk)
    )
    if actions is not None:
        requests = requests.filter(action__in=list(actions))
    return requests


def pending_requests(subject, *, actions: Iterable[str] | None = None) -> QuerySet:
    """The requests of a subject waiting for a decision (at most one per action: a unique index keeps it so)."""
    return requests_of(subject, actions=actions).filter(status=ApprovalRequest.Status.PENDING)


def pending_request(subject, *, actions: Iterable[str] | None = None) -> ApprovalRequest | None:
    """The newest request of a subject waiting for a decision, or None."""
    return pending_requests(subject, actions=actions).first()


def ensure_may_decide(approval_request: ApprovalRequest, user) -> None:
    """Whether a user may approve or reject this request: not their own, the permission of its level, and its
    store in their scope (a request of no store is headquarters' to decide).

    Raise SelfApprovalForbidden, ApproverNotPermitted.
    """
    if approval_request.requested_by_id == user.pk:
        raise SelfApprovalForbidden()
    policy = approval_request.policy
    if policy is None:
        raise ApproverNotPermitted()
    permission = policy.approver_permission
    if not user.has_perm(f"{permission.content_type.app_label}.{permission.codename}"):
        raise ApproverNotPermitted()
    if policy.hq_only and not user_is_hq(user):
        raise ApproverNotPermitted()
    if approval_request.store_id is None:
        # A request that concerns no store (a member merge, ...) is headquarters' to decide: no store's staff
        # may decide it, even on a level open to store staff.
        if not user_is_hq(user):
            raise ApproverNotPermitted()
    elif not user_can_see_store(user, approval_request.store):
        raise ApproverNotPermitted()


def can_decide(*, approval_request: ApprovalRequest, user) -> bool:
    """Whether a user may approve or reject this request (not theirs, right permission and scope)."""
    try:
        ensure_may_decide(approval_request, user)
    except (SelfApprovalForbidden, ApproverNotPermitted):
        return False
    return True
