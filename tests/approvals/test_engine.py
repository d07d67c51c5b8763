"""The approval engine on its own (approvals.registry, approvals.services), with a test-only action.

The action renames a store; its policy table has two levels by amount. Store closing, the first real action, is
tested through its screens in test_store_close.py.
"""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals import registry
from approvals.errors import (
    ApprovalAlreadyPending,
    ApprovalNotPending,
    ApproverNotPermitted,
    DecisionCommentRequired,
    ReasonRequired,
    SelfApprovalForbidden,
)
from approvals.models import ApprovalPolicy, ApprovalRequest
from approvals.queries import can_decide
from approvals.services import (
    approval_request_approve,
    approval_request_cancel,
    approval_request_reject,
    approval_request_submit,
)
from core.errors import DomainError
from stores.models import StaffProfile, Store
from tests.factories import ApprovalPolicyFactory, ApprovalRequestFactory, StaffFactory, StoreFactory

RENAME = "tests.store_rename"
RENAME_WITHOUT_HOOK = "tests.store_rename_without_hook"
OLD_NAME = "老店名"
NEW_NAME = "新店名"


class RenameRefused(DomainError):
    default_message = "the test action refuses"


class StoreRename:
    """What the test action does: rename the store to payload["name"]; when rejected or withdrawn, note it in the
    store's address. payload["fail"] makes either raise after it has written."""

    def __init__(self):
        self.executed: list[tuple[int, object]] = []  # (request, its decided_by while the action ran)
        self.rejected: list[int] = []

    def execute(self, request: ApprovalRequest) -> None:
        self.executed.append((request.pk, request.decided_by))
        Store.objects.filter(pk=request.object_id).update(name=request.payload["name"])
        if request.payload.get("fail"):
            raise RenameRefused()

    def on_reject(self, request: ApprovalRequest) -> None:
        self.rejected.append(request.pk)
        Store.objects.filter(pk=request.object_id).update(address=f"rename #{request.pk} not done")
        if request.payload.get("fail"):
            raise RenameRefused()


@pytest.fixture
def store_rename(monkeypatch) -> StoreRename:
    """The test action, registered in a copy of the registry's table so that it is gone after the test."""
    monkeypatch.setattr(registry, "_actions", dict(registry._actions))
    action = StoreRename()
    registry.register(RENAME, label="Rename a store (test)", execute=action.execute, on_reject=action.on_reject)
    registry.register(RENAME_WITHOUT_HOOK, label="Rename a store, no hook (test)", execute=action.execute)
    return action


@pytest.fixture
def rename_levels(store_rename) -> dict[str, ApprovalPolicy]:
    """Renaming needs no approval below 1,000.00; from 1,000.00 HQ with change_store; from 10,000.00 delete_store."""
    return {
        "1000": ApprovalPolicyFactory(action=RENAME, min_amount=Decimal("1000.00"), permission="stores.change_store"),
        "10000": ApprovalPolicyFactory(action=RENAME, min_amount=Decimal("10000.00"),
                                       permission="stores.delete_store"),
    }


@pytest.fixture
def rename_levels_open_to_store_staff(rename_levels) -> dict[str, ApprovalPolicy]:
    ApprovalPolicy.objects.filter(action=RENAME).update(hq_only=False)
    return rename_levels


@pytest.fixture
def old_store(db) -> Store:
    return StoreFactory(name=OLD_NAME, address="")


@pytest.fixture
def other_store(db) -> Store:
    return StoreFactory()


@pytest.fixture
def hq_requester(db):
    return StaffFactory(username="hq_requester", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def hq_store_changer(db):
    """HQ staff holding the permission of the 1,000.00 level."""
    return StaffFactory(username="hq_store_changer", scope=StaffProfile.Scope.HQ, permissions=["stores.change_store"])


@pytest.fixture
def hq_store_deleter(db):
    """HQ staff holding the permission of the 10,000.00 level only."""
    return StaffFactory(username="hq_store_deleter", scope=StaffProfile.Scope.HQ, permissions=["stores.delete_store"])


@pytest.fixture
def hq_without_permissions(db):
    return StaffFactory(username="hq_without_permissions", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def old_store_changer(old_store):
    """Staff of the renamed store holding the 1,000.00 level's permission."""
    return StaffFactory(username="old_store_changer", stores=[old_store], permissions=["stores.change_store"])


@pytest.fixture
def other_store_changer(other_store):
    """Staff of another store holding the 1,000.00 level's permission."""
    return StaffFactory(username="other_store_changer", stores=[other_store], permissions=["stores.change_store"])


def _rename(store, requested_by, *, amount="5000.00", action=RENAME, **payload) -> ApprovalRequest:
    return ApprovalRequestFactory(action=action, subject=store, store=store, requested_by=requested_by,
                                  amount=Decimal(amount), payload={"name": NEW_NAME, **payload})


@pytest.fixture
def rename_pending(rename_levels, old_store, hq_requester) -> ApprovalRequest:
    """hq_requester asks to rename the old store for 5,000.00: the 1,000.00 level applies."""
    return _rename(old_store, hq_requester)


@pytest.fixture
def rename_failing_pending(rename_levels, old_store, hq_requester) -> ApprovalRequest:
    """A pending rename whose action (and rejected hook) raise after writing."""
    return _rename(old_store, hq_requester, fail=True)


@pytest.fixture
def rename_approved(rename_pending, hq_store_changer) -> ApprovalRequest:
    return approval_request_approve(approval_request=rename_pending, approver=hq_store_changer)


def _name(store) -> str:
    store.refresh_from_db()
    return store.name


def _status(request) -> str:
    request.refresh_from_db()
    return request.status


# --- the registry -------------------------------------------------------------------------------------------------


def test_a_registered_action_is_offered_to_policies_under_its_label(store_rename):
    assert (RENAME, "Rename a store (test)") in registry.choices()
    assert registry.label(RENAME) == "Rename a store (test)"


def test_registering_another_function_under_a_taken_name_is_refused(store_rename):
    # when / then
    with pytest.raises(ValueError, match=RENAME):
        registry.register(RENAME, label="Something else", execute=lambda request: None)
    assert registry.get(RENAME).execute == store_rename.execute


# --- submitting: the policy table -----------------------------------------------------------------------------------


def test_an_amount_below_every_level_is_carried_out_at_once_without_an_approver(rename_levels, old_store,
                                                                                hq_requester, store_rename):
    # when
    approval = _rename(old_store, hq_requester, amount="999.99")
    # then
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.APPROVED
    assert approval.policy is None
    assert approval.decided_by is None
    assert approval.decided_at is not None
    assert store_rename.executed == [(approval.pk, None)]
    assert _name(old_store) == NEW_NAME


@pytest.mark.parametrize(("amount", "level"), [("1000.00", "1000"), ("9999.99", "1000"), ("10000.00", "10000")])
def test_a_request_waits_at_the_level_of_the_highest_threshold_its_amount_reaches(rename_levels, old_store,
                                                                                  hq_requester, amount, level):
    approval = _rename(old_store, hq_requester, amount=amount)

    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.PENDING
    assert approval.policy == rename_levels[level]


def test_a_waiting_request_has_not_carried_out_the_action(rename_pending, old_store, store_rename):
    assert store_rename.executed == []
    assert _name(old_store) == OLD_NAME
    assert rename_pending.decided_by is None and rename_pending.decided_at is None


def test_an_inactive_level_no_longer_applies(rename_levels, old_store, hq_requester):
    # given
    ApprovalPolicy.objects.filter(pk=rename_levels["10000"].pk).update(is_active=False)
    # when
    approval = _rename(old_store, hq_requester, amount="50000.00")
    # then
    assert approval.policy == rename_levels["1000"]


def test_a_request_without_a_reason_is_refused_and_nothing_is_written(rename_levels, old_store, hq_requester):
    with pytest.raises(ReasonRequired):
        approval_request_submit(action=RENAME, subject=old_store, requested_by=hq_requester, reason="   ",
                                amount=Decimal("5000.00"), payload={"name": NEW_NAME}, store=old_store)

    assert not ApprovalRequest.objects.filter(action=RENAME).exists()


def test_a_second_pending_request_for_the_same_subject_and_action_is_refused(rename_pending, old_store,
                                                                             hq_store_changer):
    # when
    with pytest.raises(ApprovalAlreadyPending) as raised:
        _rename(old_store, hq_store_changer)
    # then
    assert raised.value.params == {"request_id": rename_pending.pk}
    assert ApprovalRequest.objects.filter(action=RENAME).count() == 1


def test_when_the_action_fails_at_once_no_request_is_written_and_the_store_keeps_its_name(
    rename_levels, old_store, hq_requester, store_rename
):
    # given: an amount no level asks approval for, so the action runs at submission
    # when
    with pytest.raises(RenameRefused):
        _rename(old_store, hq_requester, amount="10.00", fail=True)
    # then
    assert len(store_rename.executed) == 1
    assert not ApprovalRequest.objects.filter(action=RENAME).exists()
    assert _name(old_store) == OLD_NAME


# --- who may decide -------------------------------------------------------------------------------------------------


def test_the_requester_cannot_approve_their_own_request_even_as_a_superuser(rename_levels, old_store, store_rename):
    # given
    boss = StaffFactory(username="boss", is_superuser=True, scope=StaffProfile.Scope.HQ)
    approval = _rename(old_store, boss)
    # when
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=approval, approver=boss)
    # then
    assert _status(approval) == ApprovalRequest.Status.PENDING
    assert store_rename.executed == []


def test_the_requester_cannot_reject_their_own_request(rename_pending, hq_requester, store_rename):
    with pytest.raises(SelfApprovalForbidden):
        approval_request_reject(approval_request=rename_pending, approver=hq_requester, comment="算了")

    assert _status(rename_pending) == ApprovalRequest.Status.PENDING
    assert store_rename.rejected == []


def test_a_user_without_the_levels_permission_cannot_approve(rename_pending, hq_without_permissions, old_store,
                                                             store_rename):
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=rename_pending, approver=hq_without_permissions)

    assert _status(rename_pending) == ApprovalRequest.Status.PENDING
    assert store_rename.executed == []
    assert _name(old_store) == OLD_NAME


def test_a_user_without_the_levels_permission_cannot_reject(rename_pending, hq_without_permissions, store_rename):
    with pytest.raises(ApproverNotPermitted):
        approval_request_reject(approval_request=rename_pending, approver=hq_without_permissions, comment="不行")

    assert _status(rename_pending) == ApprovalRequest.Status.PENDING
    assert store_rename.rejected == []


def test_the_permission_of_a_lower_level_does_not_approve_a_higher_level(rename_levels, old_store, hq_requester,
                                                                          hq_store_changer, store_rename):
    # given: 20,000.00 reaches the level that needs delete_store
    approval = _rename(old_store, hq_requester, amount="20000.00")
    # when
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=approval, approver=hq_store_changer)
    # then
    assert _status(approval) == ApprovalRequest.Status.PENDING
    assert store_rename.executed == []


def test_the_permission_of_a_higher_level_alone_does_not_approve_a_lower_level(rename_pending, hq_store_deleter):
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=rename_pending, approver=hq_store_deleter)

    assert _status(rename_pending) == ApprovalRequest.Status.PENDING


def test_store_staff_cannot_approve_a_headquarters_only_level_even_with_the_permission(
    rename_pending, old_store_changer, old_store
):
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=rename_pending, approver=old_store_changer)

    assert _status(rename_pending) == ApprovalRequest.Status.PENDING
    assert _name(old_store) == OLD_NAME


def test_store_staff_may_approve_their_stores_request_when_the_level_is_open_to_them(
    rename_levels_open_to_store_staff, old_store, hq_requester, old_store_changer, store_rename
):
    # given
    approval = _rename(old_store, hq_requester)
    # when
    approval_request_approve(approval_request=approval, approver=old_store_changer)
    # then
    assert _status(approval) == ApprovalRequest.Status.APPROVED
    assert _name(old_store) == NEW_NAME


def test_store_staff_cannot_approve_another_stores_request_when_the_level_is_open_to_store_staff(
    rename_levels_open_to_store_staff, old_store, hq_requester, other_store_changer, store_rename
):
    # given
    approval = _rename(old_store, hq_requester)
    # when
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=approval, approver=other_store_changer)
    # then
    assert _status(approval) == ApprovalRequest.Status.PENDING
    assert _name(old_store) == OLD_NAME


def test_store_staff_cannot_approve_a_request_that_concerns_no_store(
    rename_levels_open_to_store_staff, old_store, hq_requester, other_store_changer, store_rename
):
    # given: the same rename, filed without a store
    approval = ApprovalRequestFactory(action=RENAME, subject=old_store, store=None, requested_by=hq_requester,
                                      amount=Decimal("5000.00"), payload={"name": NEW_NAME})
    # when
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=approval, approver=other_store_changer)
    # then
    assert _status(approval) == ApprovalRequest.Status.PENDING
    assert _name(old_store) == OLD_NAME


@pytest.mark.parametrize(
    ("user", "may_decide"),
    [
        ("hq_requester", False),
        ("hq_without_permissions", False),
        ("hq_store_deleter", False),
        ("old_store_changer", False),
        ("hq_store_changer", True),
    ],
)
def test_can_decide_answers_as_approving_would(request, rename_pending, user, may_decide):
    assert can_decide(approval_request=rename_pending, user=request.getfixturevalue(user)) is may_decide


# --- approving ------------------------------------------------------------------------------------------------------


def test_approving_carries_out_the_action_and_records_the_decision(rename_pending, hq_store_changer, old_store,
                                                                  store_rename):
    # when
    approval_request_approve(approval_request=rename_pending, approver=hq_store_changer, comment="  同意改名  ")
    # then
    rename_pending.refresh_from_db()
    assert rename_pending.status == ApprovalRequest.Status.APPROVED
    assert rename_pending.decided_by == hq_store_changer
    assert rename_pending.decided_at is not None
    assert rename_pending.decision_comment == "同意改名"
    assert [pk for pk, _ in store_rename.executed] == [rename_pending.pk]
    assert _name(old_store) == NEW_NAME


def test_the_action_runs_knowing_its_approver(rename_pending, hq_store_changer, store_rename):
    # given: what the action writes (ledger operators, events) names whoever approved it
    # when
    approval_request_approve(approval_request=rename_pending, approver=hq_store_changer)
    # then
    assert store_rename.executed == [(rename_pending.pk, hq_store_changer)]


def test_when_the_action_raises_the_request_stays_pending_and_nothing_it_wrote_remains(
    rename_failing_pending, hq_store_changer, old_store, store_rename
):
    # when
    with pytest.raises(RenameRefused):
        approval_request_approve(approval_request=rename_failing_pending, approver=hq_store_changer, comment="好")
    # then: the action ran and renamed the store before raising; the rename went with the approval
    assert len(store_rename.executed) == 1
    assert _name(old_store) == OLD_NAME
    rename_failing_pending.refresh_from_db()
    assert rename_failing_pending.status == ApprovalRequest.Status.PENDING
    assert rename_failing_pending.decided_by is None
    assert rename_failing_pending.decided_at is None
    assert rename_failing_pending.decision_comment == ""


def test_an_approved_request_cannot_be_approved_again(rename_approved, store_rename):
    # given
    approver = StaffFactory(username="second_changer", scope=StaffProfile.Scope.HQ,
                            permissions=["stores.change_store"])
    # when
    with pytest.raises(ApprovalNotPending):
        approval_request_approve(approval_request=rename_approved, approver=approver)
    # then
    assert len(store_rename.executed) == 1
    rename_approved.refresh_from_db()
    assert rename_approved.decided_by.username == "hq_store_changer"


def test_an_approved_request_cannot_be_rejected(rename_approved, hq_store_changer, old_store, store_rename):
    with pytest.raises(ApprovalNotPending):
        approval_request_reject(approval_request=rename_approved, approver=hq_store_changer, comment="改主意了")

    assert _status(rename_approved) == ApprovalRequest.Status.APPROVED
    assert store_rename.rejected == []
    assert _name(old_store) == NEW_NAME


def test_a_rejected_request_cannot_be_approved(rename_pending, hq_store_changer, old_store, store_rename):
    # given
    approval_request_reject(approval_request=rename_pending, approver=hq_store_changer, comment="不改")
    # when
    with pytest.raises(ApprovalNotPending):
        approval_request_approve(approval_request=rename_pending, approver=hq_store_changer)
    # then
    assert _status(rename_pending) == ApprovalRequest.Status.REJECTED
    assert store_rename.executed == []
    assert _name(old_store) == OLD_NAME


def test_a_withdrawn_request_cannot_be_approved(rename_pending, hq_requester, hq_store_changer, store_rename):
    # given
    approval_request_cancel(approval_request=rename_pending, user=hq_requester)
    # when
    with pytest.raises(ApprovalNotPending):
        approval_request_approve(approval_request=rename_pending, approver=hq_store_changer)
    # then
    assert _status(rename_pending) == ApprovalRequest.Status.CANCELLED
    assert store_rename.executed == []


# --- rejecting and withdrawing --------------------------------------------------------------------------------------


def test_rejecting_runs_the_rejected_hook_and_not_the_action(rename_pending, hq_store_changer, old_store,
                                                             store_rename):
    # when
    approval_request_reject(approval_request=rename_pending, approver=hq_store_changer, comment="  名字不好  ")
    # then
    rename_pending.refresh_from_db()
    assert rename_pending.status == ApprovalRequest.Status.REJECTED
    assert rename_pending.decided_by == hq_store_changer
    assert rename_pending.decision_comment == "名字不好"
    assert store_rename.rejected == [rename_pending.pk]
    assert store_rename.executed == []
    old_store.refresh_from_db()
    assert old_store.name == OLD_NAME
    assert old_store.address == f"rename #{rename_pending.pk} not done"


def test_rejecting_an_action_without_a_rejected_hook_only_records_the_decision(
    rename_levels, old_store, hq_requester, hq_store_changer, store_rename
):
    # given
    ApprovalPolicyFactory(action=RENAME_WITHOUT_HOOK, permission="stores.change_store")
    approval = _rename(old_store, hq_requester, action=RENAME_WITHOUT_HOOK)
    # when
    approval_request_reject(approval_request=approval, approver=hq_store_changer, comment="不改")
    # then
    assert _status(approval) == ApprovalRequest.Status.REJECTED
    assert store_rename.rejected == [] and store_rename.executed == []
    old_store.refresh_from_db()
    assert (old_store.name, old_store.address) == (OLD_NAME, "")


def test_rejecting_without_a_comment_is_refused_and_runs_nothing(rename_pending, hq_store_changer, store_rename):
    with pytest.raises(DecisionCommentRequired):
        approval_request_reject(approval_request=rename_pending, approver=hq_store_changer, comment="  ")

    assert _status(rename_pending) == ApprovalRequest.Status.PENDING
    assert store_rename.rejected == []


def test_when_the_rejected_hook_raises_the_request_stays_pending_and_nothing_it_wrote_remains(
    rename_failing_pending, hq_store_changer, old_store, store_rename
):
    # when
    with pytest.raises(RenameRefused):
        approval_request_reject(approval_request=rename_failing_pending, approver=hq_store_changer, comment="不改")
    # then
    assert store_rename.rejected == [rename_failing_pending.pk]
    rename_failing_pending.refresh_from_db()
    assert rename_failing_pending.status == ApprovalRequest.Status.PENDING
    assert rename_failing_pending.decided_by is None
    old_store.refresh_from_db()
    assert old_store.address == ""


def test_withdrawing_runs_the_rejected_hook_and_records_the_requester(rename_pending, hq_requester, old_store,
                                                                      store_rename):
    # when
    approval_request_cancel(approval_request=rename_pending, user=hq_requester)
    # then
    rename_pending.refresh_from_db()
    assert rename_pending.status == ApprovalRequest.Status.CANCELLED
    assert rename_pending.decided_by == hq_requester
    assert store_rename.rejected == [rename_pending.pk]
    assert store_rename.executed == []
    assert _name(old_store) == OLD_NAME


def test_only_the_requester_can_withdraw(rename_pending, hq_store_changer, store_rename):
    with pytest.raises(ApproverNotPermitted):
        approval_request_cancel(approval_request=rename_pending, user=hq_store_changer)

    assert _status(rename_pending) == ApprovalRequest.Status.PENDING
    assert store_rename.rejected == []


# --- what the database keeps ----------------------------------------------------------------------------------------


def test_the_database_refuses_a_decision_recorded_for_the_requester(rename_pending, hq_requester):
    # when: written around the service
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.filter(pk=rename_pending.pk).update(
            status=ApprovalRequest.Status.APPROVED, decided_by=hq_requester, decided_at=timezone.now()
        )
    # then
    assert _status(rename_pending) == ApprovalRequest.Status.PENDING


def test_the_database_refuses_a_second_pending_request_for_the_same_subject(rename_pending):
    # when: written around the service
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.create(
            action=RENAME, content_type=rename_pending.content_type, object_id=rename_pending.object_id,
            subject_repr=rename_pending.subject_repr, reason="再来一次", requested_by=rename_pending.requested_by,
        )
    # then
    assert ApprovalRequest.objects.filter(action=RENAME).count() == 1


# --- at the same time (PostgreSQL) ----------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_approvers_at_once_carry_out_the_action_once(rename_pending, hq_store_changer, old_store, store_rename):
    from tests.membership.conftest import concurrently, kinds

    # given
    approvers = [hq_store_changer, StaffFactory(username="second_changer", scope=StaffProfile.Scope.HQ,
                                                permissions=["stores.change_store"])]
    # when
    results = concurrently(2, lambda index: approval_request_approve(approval_request=rename_pending,
                                                                     approver=approvers[index]))
    # then
    assert kinds(results) == {"ApprovalRequest": 1, "ApprovalNotPending": 1}, results
    assert len(store_rename.executed) == 1
    assert _status(rename_pending) == ApprovalRequest.Status.APPROVED
    assert _name(old_store) == NEW_NAME
