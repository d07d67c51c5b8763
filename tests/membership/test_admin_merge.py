"""Merge review in the admin: side by side, merge at once or through approval, dismiss, detection."""

from datetime import date

import pytest
from django.db.models import Sum

from approvals.models import ApprovalRequest
from membership.models import Member, MemberEvent, MergeCandidate, PointsEntry
from membership.services import merge_candidates_add, points_post
from tests.membership.conftest import register, resident_id

CANDIDATES = "/admin/membership/mergecandidate/"
MEMBERS = "/admin/membership/member/"
INBOX = "/admin/approvals/approvalrequest/"


def _review_url(candidate):
    return f"{CANDIDATES}{candidate.pk}/review/"


def _messages(response):
    return [str(message.message) for message in response.context["messages"]]


@pytest.fixture
def en_client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def same_phone_pair(dept001, super001):
    """李建国 with an ID card and 300 points; 李健国 (a typo) with the same phone and 120 points elsewhere."""
    with_id = register(name="李建国", phone="13800138000", store=dept001, id_type="resident_id",
                       id_number=resident_id(date(1960, 5, 1), gender="M", serial=11))
    typo = register(name="李健国", phone="13800138000", store=super001)
    points_post(member=with_id, points=300, kind=PointsEntry.Kind.ADJUST, reason="opening")
    points_post(member=typo, points=120, kind=PointsEntry.Kind.ADJUST, reason="opening")
    return with_id, typo


@pytest.fixture
def same_phone_candidate(same_phone_pair):
    merge_candidates_add([(same_phone_pair[0].pk, same_phone_pair[1].pk)], reason=MergeCandidate.Reason.SAME_PHONE)
    return MergeCandidate.objects.get()


@pytest.fixture
def conflicting_ids_candidate(dept001):
    """Two records of one name and birth date with two different ID numbers."""
    first = register(name="张秀英", id_type="resident_id", id_number=resident_id(date(1948, 3, 12), serial=21),
                     store=dept001)
    second = register(name="张秀英", id_type="resident_id", id_number=resident_id(date(1948, 3, 12), serial=22),
                      store=dept001)
    points_post(member=first, points=50, kind=PointsEntry.Kind.ADJUST, reason="opening")
    points_post(member=second, points=70, kind=PointsEntry.Kind.ADJUST, reason="opening")
    merge_candidates_add([(first.pk, second.pk)], reason=MergeCandidate.Reason.SAME_NAME_BIRTH)
    return MergeCandidate.objects.get()


def _ledger_sum(member):
    return PointsEntry.objects.filter(member=member).aggregate(total=Sum("points"))["total"] or 0


def test_candidate_list_opens_on_open_pairs_with_masked_details(client, hq_admin, same_phone_candidate):
    MergeCandidate.objects.filter(pk=same_phone_candidate.pk).update(status=MergeCandidate.Status.DISMISSED)
    other = register(name="王芳", phone="13700137000")
    twin = register(name="王芳芳", phone="13700137000")
    merge_candidates_add([(other.pk, twin.pk)], reason=MergeCandidate.Reason.SAME_PHONE)
    client.force_login(hq_admin)

    response = client.get(CANDIDATES)
    every = client.get(CANDIDATES, {"status": "all"})

    html = response.content.decode()
    assert [c.member_a_id for c in response.context["cl"].result_list] == [other.pk]
    assert len(every.context["cl"].result_list) == 2
    assert "137****7000" in html and "13700137000" not in html


def test_review_page_shows_both_records_side_by_side_masked(client, hq_admin, same_phone_candidate,
                                                            same_phone_pair):
    client.force_login(hq_admin)

    response = client.get(_review_url(same_phone_candidate))

    html = response.content.decode()
    assert response.status_code == 200
    assert "李建国" in html and "李健国" in html
    assert same_phone_pair[0].id_number_masked in html
    assert "138****8000" in html and "13800138000" not in html
    assert response.context["form"]["survivor"].initial == str(same_phone_pair[0].pk)


def test_merge_without_conflicting_ids_executes_at_once_and_points_add_up(en_client, hq_admin,
                                                                           same_phone_candidate, same_phone_pair):
    survivor, merged = same_phone_pair
    en_client.force_login(hq_admin)

    response = en_client.post(_review_url(same_phone_candidate),
                              {"_merge": "1", "survivor": survivor.pk, "reason": "同一人，姓名录入错误"}, follow=True)

    survivor.refresh_from_db()
    merged.refresh_from_db()
    same_phone_candidate.refresh_from_db()
    approval = ApprovalRequest.objects.get()
    assert response.redirect_chain[-1][0] == f"{MEMBERS}{survivor.pk}/change/"
    assert f"{merged.member_no} was merged into {survivor.member_no}." in " ".join(_messages(response))
    assert approval.status == ApprovalRequest.Status.APPROVED
    assert (merged.status, merged.merged_into) == (Member.Status.MERGED, survivor)
    assert survivor.points == 420 and merged.points == 0
    assert _ledger_sum(survivor) == 420 and _ledger_sum(merged) == 0
    assert same_phone_candidate.status == MergeCandidate.Status.MERGED
    assert MemberEvent.objects.filter(member=survivor, kind=MemberEvent.Kind.ABSORBED).exists()


def test_merge_needs_a_reason(en_client, hq_admin, same_phone_candidate, same_phone_pair):
    en_client.force_login(hq_admin)

    response = en_client.post(_review_url(same_phone_candidate),
                              {"_merge": "1", "survivor": same_phone_pair[0].pk, "reason": " "})

    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    assert not ApprovalRequest.objects.exists()
    assert Member.objects.filter(status=Member.Status.MERGED).count() == 0


def test_merge_with_conflicting_ids_waits_and_another_hq_user_approves(en_client, hq_admin, hq_approver,
                                                                       conflicting_ids_candidate):
    first, second = conflicting_ids_candidate.member_a, conflicting_ids_candidate.member_b
    en_client.force_login(hq_admin)

    response = en_client.post(_review_url(conflicting_ids_candidate),
                              {"_merge": "1", "survivor": first.pk, "reason": "同一老人，两张旧身份证"})

    approval = ApprovalRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{INBOX}{approval.pk}/change/"
    assert approval.status == ApprovalRequest.Status.PENDING
    assert Member.objects.get(pk=second.pk).status == Member.Status.ACTIVE

    own = en_client.post(f"{INBOX}{approval.pk}/decide/", {"_approve": "1"}, follow=True)
    approval.refresh_from_db()
    assert approval.status == ApprovalRequest.Status.PENDING
    assert any("own request" in message for message in _messages(own))

    en_client.force_login(hq_approver)
    en_client.post(f"{INBOX}{approval.pk}/decide/", {"_approve": "1", "comment": "核对过户籍信息"})

    approval.refresh_from_db()
    first.refresh_from_db()
    second.refresh_from_db()
    assert (approval.status, approval.decided_by) == (ApprovalRequest.Status.APPROVED, hq_approver)
    assert (second.status, second.merged_into) == (Member.Status.MERGED, first)
    assert first.points == 120 and _ledger_sum(first) == 120 and _ledger_sum(second) == 0


def test_not_the_same_person_dismisses_the_candidate(client, hq_admin, same_phone_candidate, same_phone_pair):
    client.force_login(hq_admin)

    response = client.post(_review_url(same_phone_candidate), {"_dismiss": "1"})

    same_phone_candidate.refresh_from_db()
    assert response.status_code == 302
    assert (same_phone_candidate.status, same_phone_candidate.decided_by) == (
        MergeCandidate.Status.DISMISSED, hq_admin)
    assert not Member.objects.filter(status=Member.Status.MERGED).exists()
    assert not ApprovalRequest.objects.exists()


def test_a_user_without_the_merge_permission_can_look_but_not_merge(client, dept001_manager, dept001):
    first = register(name="李建国", phone="13800138000", store=dept001)
    second = register(name="李健国", phone="13800138000", store=dept001)
    merge_candidates_add([(first.pk, second.pk)], reason=MergeCandidate.Reason.SAME_PHONE)
    candidate = MergeCandidate.objects.get()
    client.force_login(dept001_manager)

    page = client.get(_review_url(candidate))
    merge = client.post(_review_url(candidate), {"_merge": "1", "survivor": first.pk, "reason": "same"})
    dismiss = client.post(_review_url(candidate), {"_dismiss": "1"})

    candidate.refresh_from_db()
    assert page.status_code == 200 and not page.context["may_merge"]
    assert (merge.status_code, dismiss.status_code) == (403, 403)
    assert candidate.status == MergeCandidate.Status.OPEN
    assert not ApprovalRequest.objects.exists()


def test_store_staff_do_not_see_pairs_reaching_into_another_store(client, dept001_manager, same_phone_candidate):
    client.force_login(dept001_manager)

    assert list(client.get(CANDIDATES).context["cl"].result_list) == []
    assert client.get(_review_url(same_phone_candidate)).status_code == 404


def test_merge_action_on_two_members_opens_the_review_page(en_client, hq_admin, same_phone_pair):
    first, second = same_phone_pair
    en_client.force_login(hq_admin)

    response = en_client.post(MEMBERS, {"action": "merge_two_members", "_selected_action": [second.pk, first.pk]})
    merged = en_client.post(response["Location"], {"_merge": "1", "survivor": second.pk, "reason": "同一人"})

    first.refresh_from_db()
    second.refresh_from_db()
    assert response["Location"] == f"{MEMBERS}merge/{min(first.pk, second.pk)}/{max(first.pk, second.pk)}/"
    assert merged.status_code == 302
    assert first.merged_into == second and second.points == 420


def test_merge_action_needs_exactly_two_members(en_client, hq_admin, same_phone_pair, dept001):
    third = register(name="李建", phone="13800138002", store=dept001)
    en_client.force_login(hq_admin)

    response = en_client.post(MEMBERS, {"action": "merge_two_members",
                                        "_selected_action": [m.pk for m in (*same_phone_pair, third)]}, follow=True)

    assert "Select exactly two members to merge." in _messages(response)
    assert not ApprovalRequest.objects.exists()


def test_run_detection_now_lists_new_candidates(client, hq_admin, dept001):
    register(name="李建国", phone="13800138000", store=dept001)
    register(name="李健国", phone="13800138000", store=dept001)
    client.force_login(hq_admin)

    refused = client.get(f"{CANDIDATES}detect/")
    response = client.post(f"{CANDIDATES}detect/")

    assert refused.status_code == 405
    assert response.status_code == 302
    assert MergeCandidate.objects.get().reason == MergeCandidate.Reason.SAME_PHONE


def test_run_detection_needs_the_merge_permission(client, dept001_manager, dept001):
    register(name="李建国", phone="13800138000", store=dept001)
    register(name="李健国", phone="13800138000", store=dept001)
    client.force_login(dept001_manager)

    response = client.post(f"{CANDIDATES}detect/")

    assert response.status_code == 403
    assert not MergeCandidate.objects.exists()
