"""Closing a store goes through a second person's approval: services, the store page and the inbox."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import ERROR, INFO
from django.utils import timezone, translation

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
from approvals.services import (
    approval_request_approve,
    approval_request_cancel,
    approval_request_reject,
    approval_request_submit,
    policy_for,
)
from approvals.store_closing import STORE_CLOSE, store_close_request
from stores.errors import InvalidClosingDate, StoreAlreadyClosed
from stores.models import StaffProfile, Store, Terminal
from stores.services import terminal_create
from tests.factories import StaffFactory

INBOX = "/admin/approvals/approvalrequest/"


def _close_url(store):
    return f"/admin/stores/store/{store.pk}/close/"


def _store_url(store):
    return f"/admin/stores/store/{store.pk}/change/"


def _request_url(approval):
    return f"{INBOX}{approval.pk}/change/"


def _decide_url(approval):
    return f"{INBOX}{approval.pk}/decide/"


def _messages(response):
    return [(message.level, message.message) for message in response.context["messages"]]


def _english(error) -> str:
    with translation.override("en"):
        return str(error)


@pytest.fixture
def en_client(client):
    """The admin in English, so messages can be compared with the errors' own text."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def dept001_terminals(dept001):
    return [terminal_create(store_code=dept001.code, name=name)[0] for name in ("T1", "T2")]


@pytest.fixture
def close_pending(dept001, hq_admin):
    """A pending request by hq_admin to close DEPT001 today."""
    return store_close_request(
        store=dept001, requested_by=hq_admin, reason="商场租约到期", closed_on=timezone.localdate()
    )


def _store_unchanged(store):
    store.refresh_from_db()
    return store.status == Store.Status.OPEN and store.closed_on is None


# --- asking -------------------------------------------------------------------------------------


def test_close_request_creates_a_pending_request_and_the_store_stays_open(dept001, hq_admin, dept001_terminals):
    # when
    approval = store_close_request(
        store=dept001, requested_by=hq_admin, reason="商场租约到期", closed_on=timezone.localdate()
    )
    # then
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.PENDING
    assert approval.action == STORE_CLOSE
    assert approval.subject == dept001
    assert approval.store == dept001
    assert approval.requested_by == hq_admin
    assert approval.decided_by is None
    assert approval.policy == ApprovalPolicy.objects.get(action=STORE_CLOSE)
    assert approval.payload == {"closed_on": timezone.localdate().isoformat()}
    assert _store_unchanged(dept001)
    assert Terminal.objects.filter(store=dept001, is_active=True).count() == 2


def test_close_request_without_a_reason_is_refused(dept001, hq_admin):
    with pytest.raises(ReasonRequired):
        store_close_request(store=dept001, requested_by=hq_admin, reason="  ", closed_on=timezone.localdate())

    assert not ApprovalRequest.objects.exists()


def test_closing_date_before_the_opening_date_is_refused(dept001, hq_admin):
    # given
    assert dept001.opened_on is not None
    # when
    with pytest.raises(InvalidClosingDate):
        store_close_request(
            store=dept001, requested_by=hq_admin, reason="租约到期", closed_on=dept001.opened_on - timedelta(days=1)
        )
    # then
    assert not ApprovalRequest.objects.exists()
    assert _store_unchanged(dept001)


def test_closing_on_the_opening_day_is_allowed(dept001, hq_admin):
    approval = store_close_request(
        store=dept001, requested_by=hq_admin, reason="试营业失败", closed_on=dept001.opened_on
    )

    assert approval.status == ApprovalRequest.Status.PENDING


def test_a_second_pending_request_for_the_same_store_is_refused(close_pending, dept001, hq_approver):
    with pytest.raises(ApprovalAlreadyPending) as raised:
        store_close_request(store=dept001, requested_by=hq_approver, reason="再次申请", closed_on=timezone.localdate())

    assert str(close_pending.pk) in _english(raised.value)
    assert ApprovalRequest.objects.filter(object_id=str(dept001.pk)).count() == 1


def test_a_new_request_is_possible_after_the_first_was_rejected(close_pending, dept001, hq_admin, hq_approver):
    approval_request_reject(approval_request=close_pending, approver=hq_approver, comment="暂不闭店")

    again = store_close_request(store=dept001, requested_by=hq_admin, reason="重新申请", closed_on=timezone.localdate())

    assert again.status == ApprovalRequest.Status.PENDING
    assert ApprovalRequest.objects.filter(object_id=str(dept001.pk)).count() == 2


def test_closing_a_closed_store_is_refused(dept001, hq_admin):
    Store.objects.filter(pk=dept001.pk).update(status=Store.Status.CLOSED, closed_on=timezone.localdate())
    dept001.refresh_from_db()

    with pytest.raises(StoreAlreadyClosed):
        store_close_request(store=dept001, requested_by=hq_admin, reason="重复", closed_on=timezone.localdate())

    assert not ApprovalRequest.objects.exists()


# --- approving --------------------------------------------------------------------------------


def test_another_hq_user_approves_and_the_store_closes_with_its_terminals(
    close_pending, dept001, hq_approver, dept001_terminals
):
    # when
    approval_request_approve(approval_request=close_pending, approver=hq_approver, comment="同意")
    # then
    dept001.refresh_from_db()
    assert dept001.status == Store.Status.CLOSED
    assert dept001.closed_on == timezone.localdate()
    assert not Terminal.objects.filter(store=dept001, is_active=True).exists()
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.APPROVED
    assert close_pending.decided_by == hq_approver
    assert close_pending.decided_at is not None
    assert close_pending.decision_comment == "同意"


def test_closing_leaves_an_audit_trail_naming_the_approval(close_pending, dept001, hq_approver, dept001_terminals):
    approval_request_approve(approval_request=close_pending, approver=hq_approver)

    latest = dept001.history.latest()
    assert latest.status == Store.Status.CLOSED
    assert latest.history_change_reason == f"approval #{close_pending.pk}"
    terminal_history = dept001_terminals[0].history.latest()
    assert terminal_history.is_active is False
    assert terminal_history.history_change_reason == f"store closed, approval #{close_pending.pk}"


def test_keys_of_a_closed_stores_terminals_stop_working(client, dept001, hq_admin, hq_approver):
    # given
    _, key = terminal_create(store_code=dept001.code, name="T1")
    approval = store_close_request(store=dept001, requested_by=hq_admin, reason="闭店", closed_on=timezone.localdate())
    # when
    approval_request_approve(approval_request=approval, approver=hq_approver)
    # then
    response = client.get("/api/v1/terminal", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_the_requester_cannot_approve_their_own_request(close_pending, dept001, hq_admin, dept001_terminals):
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=close_pending, approver=hq_admin)

    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING
    assert close_pending.decided_by is None
    assert _store_unchanged(dept001)
    assert Terminal.objects.filter(store=dept001, is_active=True).count() == 2


def test_the_requester_cannot_reject_their_own_request(close_pending, hq_admin):
    with pytest.raises(SelfApprovalForbidden):
        approval_request_reject(approval_request=close_pending, approver=hq_admin, comment="算了")

    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING


def test_a_user_without_the_approve_permission_is_refused(close_pending, dept001, hq_finance):
    # given: HQ scope, but the finance role does not hold stores.approve_store_close
    assert not hq_finance.has_perm("stores.approve_store_close")
    # when
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=close_pending, approver=hq_finance)
    # then
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING
    assert _store_unchanged(dept001)


def test_a_store_manager_cannot_approve_even_with_the_permission(close_pending, dept001, dept001_manager):
    # given: the permission granted by hand; the policy is for headquarters only
    dept001_manager.user_permissions.add(Permission.objects.get(codename="approve_store_close"))
    manager = User.objects.get(pk=dept001_manager.pk)
    assert manager.has_perm("stores.approve_store_close")
    # when
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=close_pending, approver=manager)
    # then
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING
    assert _store_unchanged(dept001)


def test_a_manager_of_another_store_cannot_approve_when_store_staff_may(close_pending, dept001, super001_manager):
    # given: a policy open to store staff, and a manager of SUPER001 holding the permission
    ApprovalPolicy.objects.filter(action=STORE_CLOSE).update(hq_only=False)
    super001_manager.user_permissions.add(Permission.objects.get(codename="approve_store_close"))
    close_pending.refresh_from_db()
    manager = User.objects.get(pk=super001_manager.pk)
    # when
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=close_pending, approver=manager)
    # then
    assert _store_unchanged(dept001)


def test_approving_an_already_approved_request_is_refused(close_pending, dept001, hq_approver):
    # given
    approval_request_approve(approval_request=close_pending, approver=hq_approver)
    another = User.objects.create_superuser("root", password="pw-for-tests-123")
    # when
    with pytest.raises(ApprovalNotPending):
        approval_request_approve(approval_request=close_pending, approver=another)
    # then
    close_pending.refresh_from_db()
    assert close_pending.decided_by == hq_approver


def test_approving_a_rejected_request_is_refused_and_the_store_stays_open(close_pending, dept001, hq_approver):
    approval_request_reject(approval_request=close_pending, approver=hq_approver, comment="不同意")

    with pytest.raises(ApprovalNotPending):
        approval_request_approve(approval_request=close_pending, approver=hq_approver)

    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.REJECTED
    assert _store_unchanged(dept001)


def test_approval_fails_whole_when_the_store_closed_meanwhile(close_pending, dept001, hq_approver, dept001_terminals):
    # given: the store was closed some other way after the request
    Store.objects.filter(pk=dept001.pk).update(status=Store.Status.CLOSED, closed_on=dept001.opened_on)
    # when
    with pytest.raises(StoreAlreadyClosed):
        approval_request_approve(approval_request=close_pending, approver=hq_approver)
    # then: nothing of the approval happened
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING
    assert close_pending.decided_by is None
    dept001.refresh_from_db()
    assert dept001.closed_on == dept001.opened_on
    assert Terminal.objects.filter(store=dept001, is_active=True).count() == 2


# --- rejecting and withdrawing -------------------------------------------------------------------


def test_reject_needs_a_comment(close_pending, dept001, hq_approver):
    with pytest.raises(DecisionCommentRequired):
        approval_request_reject(approval_request=close_pending, approver=hq_approver, comment="   ")

    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING
    assert close_pending.decided_by is None


def test_reject_with_a_comment_keeps_the_store_open(close_pending, dept001, hq_approver, dept001_terminals):
    approval_request_reject(approval_request=close_pending, approver=hq_approver, comment="  仍在盈利  ")

    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.REJECTED
    assert close_pending.decided_by == hq_approver
    assert close_pending.decision_comment == "仍在盈利"
    assert _store_unchanged(dept001)
    assert Terminal.objects.filter(store=dept001, is_active=True).count() == 2


def test_the_requester_can_withdraw_their_request(close_pending, dept001, hq_admin):
    approval_request_cancel(approval_request=close_pending, user=hq_admin)

    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.CANCELLED
    assert close_pending.decided_by == hq_admin
    assert _store_unchanged(dept001)


def test_another_user_cannot_withdraw_the_request(close_pending, hq_approver):
    with pytest.raises(ApproverNotPermitted):
        approval_request_cancel(approval_request=close_pending, user=hq_approver)

    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING


def test_a_withdrawn_request_cannot_be_approved(close_pending, dept001, hq_admin, hq_approver):
    approval_request_cancel(approval_request=close_pending, user=hq_admin)

    with pytest.raises(ApprovalNotPending):
        approval_request_approve(approval_request=close_pending, approver=hq_approver)

    assert _store_unchanged(dept001)


# --- roles ---------------------------------------------------------------------------------------


def test_the_hq_admin_role_may_see_and_approve_requests(hq_approver):
    assert hq_approver.has_perm("approvals.view_approvalrequest")
    assert hq_approver.has_perm("approvals.change_approvalpolicy")
    assert hq_approver.has_perm("stores.approve_store_close")


def test_the_store_manager_role_may_see_requests_but_not_approve(dept001_manager):
    assert dept001_manager.has_perm("approvals.view_approvalrequest")
    assert not dept001_manager.has_perm("stores.approve_store_close")
    assert not dept001_manager.has_perm("approvals.change_approvalpolicy")


# --- the admin: asking on the store's page -------------------------------------------------------------


def test_store_page_offers_to_request_closing(client, hq_admin, dept001):
    client.force_login(hq_admin)

    response = client.get(_store_url(dept001))

    assert response.status_code == 200
    assert response.context["can_request_close"] is True
    assert _close_url(dept001) in response.content.decode()


def test_close_form_in_the_admin_creates_a_pending_request(client, hq_admin, dept001):
    # given
    client.force_login(hq_admin)
    assert client.get(_close_url(dept001)).status_code == 200
    # when
    response = client.post(
        _close_url(dept001), {"closed_on": timezone.localdate().isoformat(), "reason": "商场改造"}
    )
    # then
    assert response.status_code == 302
    assert response["Location"] == _store_url(dept001)
    approval = ApprovalRequest.objects.get()
    assert approval.status == ApprovalRequest.Status.PENDING
    assert approval.requested_by == hq_admin
    assert approval.reason == "商场改造"
    assert _store_unchanged(dept001)


def test_store_manager_can_request_closing_their_own_store(client, dept001_manager, dept001):
    client.force_login(dept001_manager)

    response = client.post(_close_url(dept001), {"closed_on": timezone.localdate().isoformat(), "reason": "客流下降"})

    assert response.status_code == 302
    assert ApprovalRequest.objects.get().requested_by == dept001_manager
    assert _store_unchanged(dept001)


def test_close_form_refuses_a_closing_date_before_opening(en_client, hq_admin, dept001):
    # given
    en_client.force_login(hq_admin)
    before_opening = dept001.opened_on - timedelta(days=1)
    # when
    response = en_client.post(_close_url(dept001), {"closed_on": before_opening.isoformat(), "reason": "错误日期"})
    # then
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert errors == [_english(InvalidClosingDate(opened_on=dept001.opened_on.isoformat()))]
    assert not ApprovalRequest.objects.exists()


def test_close_form_refuses_a_second_pending_request(en_client, hq_approver, close_pending, dept001):
    en_client.force_login(hq_approver)

    response = en_client.post(_close_url(dept001), {"closed_on": timezone.localdate().isoformat(), "reason": "再来"})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        _english(ApprovalAlreadyPending(request_id=close_pending.pk))
    ]
    assert ApprovalRequest.objects.count() == 1


def test_close_form_needs_a_date_and_a_reason(client, hq_admin, dept001):
    client.force_login(hq_admin)

    response = client.post(_close_url(dept001), {"closed_on": "", "reason": ""})

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"closed_on", "reason"}
    assert not ApprovalRequest.objects.exists()


def test_request_history_is_shown_on_the_stores_page(client, hq_approver, close_pending, dept001):
    # given
    approval_request_reject(approval_request=close_pending, approver=hq_approver, comment="暂缓")
    client.force_login(hq_approver)
    # when
    response = client.get(_store_url(dept001))
    # then
    history = next(
        formset for formset in response.context["inline_admin_formsets"]
        if formset.formset.model is ApprovalRequest
    )
    assert list(history.formset.queryset) == [close_pending]
    content = response.content.decode()
    assert "商场租约到期" in content
    assert "暂缓" in content


def test_store_history_does_not_show_requests_of_other_stores(client, hq_approver, close_pending, super001):
    client.force_login(hq_approver)

    response = client.get(_store_url(super001))

    history = next(
        formset for formset in response.context["inline_admin_formsets"]
        if formset.formset.model is ApprovalRequest
    )
    assert not history.formset.queryset.exists()


def test_closed_stores_page_offers_no_close_request(client, hq_approver, close_pending, dept001):
    approval_request_approve(approval_request=close_pending, approver=hq_approver)
    client.force_login(hq_approver)

    response = client.get(_store_url(dept001))

    assert response.context["can_request_close"] is False
    assert _close_url(dept001) not in response.content.decode()


def test_admin_refuses_a_new_terminal_for_a_closed_store_with_a_form_error(client, hq_approver, close_pending, dept001):
    # given
    approval_request_approve(approval_request=close_pending, approver=hq_approver)
    client.force_login(hq_approver)
    # when
    response = client.post("/admin/stores/terminal/add/", {"store": dept001.pk, "name": "T9"})
    # then
    assert response.status_code == 200
    assert "store" in response.context["adminform"].form.errors
    assert not Terminal.objects.filter(store=dept001).exists()


# --- the admin: the approval inbox --------------------------------------------------------------------


def test_the_inbox_lists_pending_requests_by_default(client, hq_approver, close_pending, super001, hq_admin):
    # given: one pending and one decided request
    decided = store_close_request(store=super001, requested_by=hq_admin, reason="撤店", closed_on=timezone.localdate())
    approval_request_reject(approval_request=decided, approver=hq_approver, comment="不批")
    client.force_login(hq_approver)
    # when
    response = client.get(INBOX)
    # then
    assert response.status_code == 200
    assert list(response.context["cl"].queryset) == [close_pending]


def test_the_inbox_shows_every_request_on_asking_for_all(client, hq_approver, close_pending, super001, hq_admin):
    decided = store_close_request(store=super001, requested_by=hq_admin, reason="撤店", closed_on=timezone.localdate())
    approval_request_reject(approval_request=decided, approver=hq_approver, comment="不批")
    client.force_login(hq_approver)

    everything = client.get(INBOX, {"status": "all"})
    rejected = client.get(INBOX, {"status": "rejected"})

    assert set(everything.context["cl"].queryset) == {close_pending, decided}
    assert list(rejected.context["cl"].queryset) == [decided]


def test_a_store_manager_sees_only_their_stores_requests_in_the_inbox(
    client, dept001_manager, close_pending, super001, hq_admin
):
    store_close_request(store=super001, requested_by=hq_admin, reason="撤店", closed_on=timezone.localdate())
    client.force_login(dept001_manager)

    response = client.get(INBOX)

    assert list(response.context["cl"].queryset) == [close_pending]


def test_the_request_page_offers_the_decision_to_another_hq_user(client, hq_approver, close_pending):
    client.force_login(hq_approver)

    response = client.get(_request_url(close_pending))

    assert response.status_code == 200
    assert response.context["can_decide"] is True
    assert 'name="_approve"' in response.content.decode()


def test_the_request_page_offers_the_requester_only_to_withdraw(client, hq_admin, close_pending):
    client.force_login(hq_admin)

    response = client.get(_request_url(close_pending))

    assert response.context["can_decide"] is False
    assert response.context["is_own_pending"] is True
    content = response.content.decode()
    assert 'name="_approve"' not in content
    assert 'name="_cancel"' in content


def test_approving_in_the_admin_closes_the_store(client, hq_approver, close_pending, dept001, dept001_terminals):
    # given
    client.force_login(hq_approver)
    # when
    response = client.post(_decide_url(close_pending), {"_approve": "1", "comment": "同意闭店"}, follow=True)
    # then
    assert response.redirect_chain[-1][0] == _request_url(close_pending)
    assert [level for level, _ in _messages(response)] == [INFO]
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.APPROVED
    assert close_pending.decided_by == hq_approver
    assert close_pending.decision_comment == "同意闭店"
    dept001.refresh_from_db()
    assert dept001.status == Store.Status.CLOSED
    assert dept001.closed_on == timezone.localdate()
    assert not Terminal.objects.filter(store=dept001, is_active=True).exists()


def test_self_approval_in_the_admin_shows_an_error_and_changes_nothing(
    en_client, hq_admin, close_pending, dept001, dept001_terminals
):
    # given
    en_client.force_login(hq_admin)
    # when
    response = en_client.post(_decide_url(close_pending), {"_approve": "1"}, follow=True)
    # then
    assert response.status_code == 200
    assert _messages(response) == [(ERROR, _english(SelfApprovalForbidden()))]
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING
    assert close_pending.decided_by is None
    assert _store_unchanged(dept001)
    assert Terminal.objects.filter(store=dept001, is_active=True).count() == 2


def test_self_approval_through_the_bulk_action_is_refused(en_client, hq_admin, close_pending, dept001):
    en_client.force_login(hq_admin)

    response = en_client.post(
        INBOX, {"action": "approve_selected", "_selected_action": [str(close_pending.pk)]}, follow=True
    )

    assert _messages(response) == [(ERROR, f"#{close_pending.pk}: {_english(SelfApprovalForbidden())}")]
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING
    assert _store_unchanged(dept001)


def test_bulk_approval_by_another_hq_user_closes_the_store(client, hq_approver, close_pending, dept001):
    client.force_login(hq_approver)

    client.post(INBOX, {"action": "approve_selected", "_selected_action": [str(close_pending.pk)]})

    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.APPROVED
    dept001.refresh_from_db()
    assert dept001.status == Store.Status.CLOSED


def test_approval_in_the_admin_without_the_permission_shows_an_error(en_client, hq_finance, close_pending, dept001):
    # given
    en_client.force_login(hq_finance)
    assert en_client.get(_request_url(close_pending)).context["can_decide"] is False
    # when
    response = en_client.post(_decide_url(close_pending), {"_approve": "1"}, follow=True)
    # then
    assert _messages(response) == [(ERROR, _english(ApproverNotPermitted()))]
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING
    assert _store_unchanged(dept001)


def test_store_manager_cannot_approve_in_the_admin(en_client, dept001_manager, hq_admin, dept001):
    # given: a request for the manager's own store, by someone else
    approval = store_close_request(store=dept001, requested_by=hq_admin, reason="闭店", closed_on=timezone.localdate())
    en_client.force_login(dept001_manager)
    # when
    response = en_client.post(_decide_url(approval), {"_approve": "1"}, follow=True)
    # then
    assert _messages(response) == [(ERROR, _english(ApproverNotPermitted()))]
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.PENDING
    assert _store_unchanged(dept001)


def test_store_manager_cannot_reach_another_stores_request(client, super001_manager, close_pending, dept001):
    client.force_login(super001_manager)

    response = client.post(_decide_url(close_pending), {"_approve": "1"})

    assert response.status_code == 404
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING


def test_reject_in_the_admin_without_a_comment_shows_an_error(en_client, hq_approver, close_pending):
    en_client.force_login(hq_approver)

    response = en_client.post(_decide_url(close_pending), {"_reject": "1", "comment": ""}, follow=True)

    assert _messages(response) == [(ERROR, _english(DecisionCommentRequired()))]
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING


def test_reject_in_the_admin_with_a_comment(client, hq_approver, close_pending, dept001):
    client.force_login(hq_approver)

    client.post(_decide_url(close_pending), {"_reject": "1", "comment": "客流尚可"})

    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.REJECTED
    assert close_pending.decided_by == hq_approver
    assert close_pending.decision_comment == "客流尚可"
    assert _store_unchanged(dept001)


def test_withdraw_in_the_admin_by_the_requester(client, hq_admin, close_pending, dept001):
    client.force_login(hq_admin)

    client.post(_decide_url(close_pending), {"_cancel": "1"})

    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.CANCELLED
    assert _store_unchanged(dept001)


def test_deciding_twice_in_the_admin_shows_an_error(en_client, hq_approver, close_pending):
    # given
    en_client.force_login(hq_approver)
    en_client.post(_decide_url(close_pending), {"_approve": "1"}, follow=True)
    # when
    response = en_client.post(_decide_url(close_pending), {"_reject": "1", "comment": "改主意了"}, follow=True)
    # then
    assert [level for level, _ in _messages(response)] == [ERROR]
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.APPROVED
    assert close_pending.decision_comment == ""


def test_decide_page_answers_get_with_a_redirect_and_changes_nothing(client, hq_approver, close_pending):
    client.force_login(hq_approver)

    response = client.get(_decide_url(close_pending))

    assert response.status_code == 302
    close_pending.refresh_from_db()
    assert close_pending.status == ApprovalRequest.Status.PENDING


def test_approval_requests_cannot_be_edited_or_added_in_the_admin(client, hq_approver, close_pending):
    client.force_login(hq_approver)

    assert client.get(f"{INBOX}add/").status_code == 403
    response = client.post(_request_url(close_pending), {"status": "approved"})

    close_pending.refresh_from_db()
    assert response.status_code == 403
    assert close_pending.status == ApprovalRequest.Status.PENDING


# --- policy levels ------------------------------------------------------------------------------------

LEVELS_ACTION = "tests.levels_demo"
_carried_out: list[int] = []


def _levels_execute(request):
    _carried_out.append(request.pk)


@pytest.fixture(autouse=True)
def _levels_action():
    """The test action exists only while this module's tests run: other tests list every registered action."""
    registry.register(LEVELS_ACTION, label="Test action with levels", execute=_levels_execute)
    yield
    registry.unregister(LEVELS_ACTION)


def _permission(codename):
    return Permission.objects.get(content_type__app_label="stores", codename=codename)


@pytest.fixture
def levels(db):
    """Three levels: every amount (change_store), from 1,000 (approve_store_close), from 10,000 (delete_store)."""
    _carried_out.clear()
    return {
        "base": ApprovalPolicy.objects.create(action=LEVELS_ACTION, min_amount=None,
                                              approver_permission=_permission("change_store")),
        "1000": ApprovalPolicy.objects.create(action=LEVELS_ACTION, min_amount=Decimal("1000.00"),
                                              approver_permission=_permission("approve_store_close")),
        "10000": ApprovalPolicy.objects.create(action=LEVELS_ACTION, min_amount=Decimal("10000.00"),
                                               approver_permission=_permission("delete_store")),
    }


def _hq_user_with(username, *codenames):
    return StaffFactory(username=username, scope=StaffProfile.Scope.HQ,
                        permissions=[f"stores.{codename}" for codename in codenames])


@pytest.mark.parametrize(
    ("amount", "level"),
    [
        (None, "base"),
        (Decimal("0.00"), "base"),
        (Decimal("999.99"), "base"),
        (Decimal("1000.00"), "1000"),
        (Decimal("9999.99"), "1000"),
        (Decimal("10000.00"), "10000"),
        (Decimal("2500000.00"), "10000"),
    ],
)
def test_policy_for_picks_the_highest_threshold_the_amount_reaches(levels, amount, level):
    assert policy_for(action=LEVELS_ACTION, amount=amount) == levels[level]


def test_policy_for_skips_inactive_levels(levels):
    ApprovalPolicy.objects.filter(pk=levels["10000"].pk).update(is_active=False)

    assert policy_for(action=LEVELS_ACTION, amount=Decimal("50000.00")) == levels["1000"]


def test_policy_for_without_a_base_level_needs_no_approval_below_the_first_threshold(levels):
    levels["base"].delete()

    assert policy_for(action=LEVELS_ACTION, amount=Decimal("10.00")) is None
    assert policy_for(action=LEVELS_ACTION, amount=Decimal("1000.00")) == levels["1000"]


def test_policy_for_an_action_without_policies_is_none(levels):
    assert policy_for(action="tests.no_such_action", amount=Decimal("1.00")) is None


def test_a_big_request_needs_the_permission_of_its_level(levels, reference_stores):
    # given
    region = reference_stores.first().region
    requester = _hq_user_with("requester")
    low_approver = _hq_user_with("low", "change_store", "approve_store_close")
    high_approver = _hq_user_with("high", "delete_store")
    approval = approval_request_submit(
        action=LEVELS_ACTION, subject=region, requested_by=requester, reason="大额", amount=Decimal("20000.00")
    )
    assert approval.policy == levels["10000"]
    # when / then: the lower levels' permissions are not enough
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=approval, approver=low_approver)
    assert _carried_out == []
    approval_request_approve(approval_request=approval, approver=high_approver)
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.APPROVED
    assert approval.decided_by == high_approver
    assert _carried_out == [approval.pk]


def test_an_action_without_a_policy_is_carried_out_at_once(levels, reference_stores):
    # given: no level applies below 1,000 once the base level is gone
    levels["base"].delete()
    requester = _hq_user_with("requester")
    # when
    approval = approval_request_submit(
        action=LEVELS_ACTION, subject=reference_stores.first().region, requested_by=requester, reason="小额",
        amount=Decimal("10.00"),
    )
    # then
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.APPROVED
    assert approval.policy is None
    assert approval.decided_by is None
    assert _carried_out == [approval.pk]
