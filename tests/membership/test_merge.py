"""member_merge_request and its execution: two records of one person become one."""

import threading
from datetime import date

import pytest
from django.db import connection, transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvals.errors import SelfApprovalForbidden
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from membership.errors import MergeNotPossible
from membership.models import (
    Member,
    MemberCard,
    MemberEvent,
    MemberIdentity,
    MemberTag,
    MergeCandidate,
    PointsEntry,
    Tag,
    Tier,
)
from membership.queries import members_by_card_no, members_by_id_number, members_by_member_no
from membership.services import (
    MEMBER_MERGE_CONFLICTING_IDS,
    member_merge_request,
    member_status_set,
    members_tag,
    merge_candidates_add,
    points_post,
)
from tests.membership.conftest import register, resident_id

EARN = PointsEntry.Kind.EARN


def ledger_sum(member) -> int:
    return PointsEntry.objects.filter(member=member).aggregate(total=Sum("points"))["total"] or 0


def reload(member) -> Member:
    return Member.objects.get(pk=member.pk)


def merge(survivor, merged, user, **extra) -> ApprovalRequest:
    return member_merge_request(survivor=survivor, merged=merged, requested_by=user, reason="same person", **extra)


@pytest.fixture
def tags(db):
    return [Tag.objects.create(name=name) for name in ("老年", "VIP", "团购", "电器常客", "汽贸车主")]


@pytest.fixture
def legacy_record(db, dept001):
    """王芳 as the supermarket's old CRM knew her: a phone, 300 points, a member card, tags, a legacy number."""
    member = register(name="王芳", phone="13700001111", address="重庆市江北区1号", card_no="OLD-001", store=dept001)
    points_post(member=member, points=300, kind=PointsEntry.Kind.MIGRATION)
    MemberIdentity.objects.create(member=member, source="SUPER_CRM", external_no="S-0042")
    return member


@pytest.fixture
def desk_record(db, dept001):
    """王芳 registered again at the desk with her ID card, 50 points, no phone of her own."""
    member = register(name="王芳", id_type="resident_id", id_number=resident_id(date(1955, 6, 1)),
                      family_phone="13908070605", store=dept001)
    points_post(member=member, points=50, kind=EARN)
    return member


# --- without conflicting ID numbers: at once ---------------------------------------------------


def test_merge_without_conflicting_ids_moves_everything_at_once(
    legacy_record, desk_record, tags, hq_admin, ledgers_balanced
):
    members_tag(tag=tags[0], member_nos=[legacy_record.member_no, desk_record.member_no])
    members_tag(tag=tags[1], member_nos=[legacy_record.member_no])
    request = merge(desk_record, legacy_record, hq_admin)

    assert request.status == ApprovalRequest.Status.APPROVED
    merged, survivor = reload(legacy_record), reload(desk_record)
    assert merged.status == Member.Status.MERGED
    assert merged.merged_into == survivor
    assert MemberIdentity.objects.get(external_no="S-0042").member == survivor
    assert MemberCard.objects.get(card_no="OLD-001").member == survivor
    assert set(survivor.tags.values_list("name", flat=True)) == {"老年", "VIP"}
    assert not MemberTag.objects.filter(member=merged).exists()
    assert (merged.points, survivor.points) == (0, 350)
    assert list(PointsEntry.objects.filter(kind__in=["merge_out", "merge_in"]).order_by("pk").values_list(
        "member_id", "kind", "points", "balance_after")) == [
        (merged.pk, "merge_out", -300, 0), (survivor.pk, "merge_in", 300, 350)]
    ledgers_balanced()


def test_survivor_fills_its_empty_fields_and_keeps_its_own(legacy_record, desk_record, hq_admin):
    merge(desk_record, legacy_record, hq_admin)
    survivor = reload(desk_record)
    assert survivor.phone == "13700001111", "taken from the merged record"
    assert survivor.address == "重庆市江北区1号"
    assert survivor.family_phone == "13908070605", "its own is kept"
    assert survivor.birth_date == date(1955, 6, 1)
    assert survivor.history.first().history_change_reason == f"absorbed {legacy_record.member_no}"
    assert reload(legacy_record).history.first().history_change_reason == f"merged into {survivor.member_no}"


def test_survivor_without_id_takes_the_merged_id_number(legacy_record, desk_record, hq_admin):
    number_digest = desk_record.id_number_digest
    merge(legacy_record, desk_record, hq_admin)
    survivor = reload(legacy_record)
    assert survivor.id_number_digest == number_digest
    assert survivor.id_type == Member.IdType.RESIDENT_ID
    assert survivor.id_number_masked == desk_record.id_number_masked
    assert survivor.birth_date == date(1955, 6, 1)
    assert survivor.gender == Member.Gender.FEMALE
    number = resident_id(date(1955, 6, 1), serial=None)  # another number of the same day finds no one
    assert list(members_by_id_number(number)) == []


def test_id_number_lookup_finds_the_survivor_after_it_took_the_number(dept001, hq_admin):
    number = resident_id(date(1955, 6, 1))
    with_id = register(name="王芳", id_type="resident_id", id_number=number, store=dept001)
    without_id = register(name="王芳", phone="13700001111", store=dept001)
    merge(without_id, with_id, hq_admin)
    assert list(members_by_id_number(number)) == [reload(without_id)]


def test_merge_writes_events_on_both_members(legacy_record, desk_record, hq_admin):
    request = merge(desk_record, legacy_record, hq_admin)
    [out] = MemberEvent.objects.filter(member=legacy_record, kind=MemberEvent.Kind.MERGED_INTO)
    [into] = MemberEvent.objects.filter(member=desk_record, kind=MemberEvent.Kind.ABSORBED)
    assert out.data == {"survivor": desk_record.member_no, "approval": request.pk}
    assert into.data["merged"] == legacy_record.member_no
    assert into.data["moved"] == {"identities": 1, "cards": 1, "points": 300, "tags": 0}
    assert out.actor == into.actor == hq_admin


def test_merging_marks_the_candidate_merged_and_drops_the_merged_records_other_candidates(
    legacy_record, desk_record, hq_admin
):
    third = register(name="王小芳", phone="13700001111")
    merge_candidates_add([(legacy_record.pk, desk_record.pk), (legacy_record.pk, third.pk)], reason="same_phone")
    candidate = MergeCandidate.objects.get(member_a=min(legacy_record.pk, desk_record.pk),
                                           member_b=max(legacy_record.pk, desk_record.pk))
    merge(desk_record, legacy_record, hq_admin, candidate=candidate)
    candidate.refresh_from_db()
    assert candidate.status == MergeCandidate.Status.MERGED
    assert candidate.decided_by == hq_admin
    assert candidate.decided_at is not None
    other = MergeCandidate.objects.exclude(pk=candidate.pk).get()
    assert other.status == MergeCandidate.Status.DISMISSED


def test_higher_earned_tier_of_the_merged_record_is_kept(legacy_record, desk_record, hq_admin):
    Member.objects.filter(pk=legacy_record.pk).update(tier=Tier.objects.get(code="GOLD"))
    merge(desk_record, legacy_record, hq_admin)
    assert reload(desk_record).tier.code == "GOLD"


def test_lookup_by_the_merged_card_or_legacy_number_finds_the_survivor(legacy_record, desk_record, hq_admin):
    merge(desk_record, legacy_record, hq_admin)
    assert list(members_by_card_no("OLD-001")) == [reload(desk_record)]
    assert list(members_by_member_no("S-0042")) == [reload(desk_record)]
    assert list(members_by_member_no(legacy_record.member_no)) == [reload(desk_record)]


def test_chain_of_merges_leads_to_the_last_survivor(dept001, hq_admin, ledgers_balanced):
    a, b, c = (register(name="王芳", phone=f"1370000111{i}", store=dept001) for i in range(3))
    for member, points in ((a, 10), (b, 20), (c, 40)):
        points_post(member=member, points=points, kind=EARN)
    merge(b, a, hq_admin)
    merge(c, b, hq_admin)
    c = reload(c)
    assert list(members_by_member_no(a.member_no)) == [c]
    assert list(members_by_member_no(b.member_no)) == [c]
    assert c.points == 70
    assert (reload(a).merged_into, reload(b).merged_into) == (reload(b), c)
    ledgers_balanced()


# --- refusals -------------------------------------------------------------------------------------


def test_member_cannot_be_merged_into_itself(legacy_record, hq_admin):
    with pytest.raises(MergeNotPossible, match="itself"):
        merge(legacy_record, legacy_record, hq_admin)
    assert reload(legacy_record).status == Member.Status.ACTIVE
    assert not ApprovalRequest.objects.exists()


def test_merged_member_cannot_be_merged_again(legacy_record, desk_record, hq_admin):
    third = register(name="王芳", phone="13700002222")
    merge(desk_record, legacy_record, hq_admin)
    with pytest.raises(MergeNotPossible, match=legacy_record.member_no):
        merge(third, reload(legacy_record), hq_admin)
    with pytest.raises(MergeNotPossible):
        merge(reload(legacy_record), third, hq_admin)
    assert reload(third).points == 0
    assert reload(desk_record).points == 350


def test_closed_member_cannot_be_merged(legacy_record, desk_record, hq_admin):
    member_status_set(member=legacy_record, status=Member.Status.CLOSED, actor=hq_admin, reason="left")
    with pytest.raises(MergeNotPossible):
        merge(desk_record, reload(legacy_record), hq_admin)
    with pytest.raises(MergeNotPossible):
        merge(reload(legacy_record), desk_record, hq_admin)
    assert (reload(legacy_record).points, reload(desk_record).points) == (300, 50)


def test_member_closed_after_the_request_is_refused_at_execution(dept001, hq_admin, hq_approver):
    first = register(name="王芳", id_type="resident_id", id_number=resident_id(date(1955, 6, 1)), store=dept001)
    second = register(name="王芳", id_type="resident_id", id_number=resident_id(date(1956, 6, 1)), store=dept001)
    request = merge(first, second, hq_admin)
    member_status_set(member=second, status=Member.Status.CLOSED, actor=hq_admin, reason="left")
    with pytest.raises(MergeNotPossible):
        approval_request_approve(approval_request=request, approver=hq_approver)
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING
    assert reload(second).status == Member.Status.CLOSED


# --- conflicting ID numbers: a second person approves ----------------------------------------------


@pytest.fixture
def two_id_cards(dept001):
    first = register(name="刘洋", id_type="resident_id", id_number=resident_id(date(1970, 1, 1), gender="M"),
                     phone="13600001111", store=dept001)
    second = register(name="刘洋", id_type="resident_id", id_number=resident_id(date(1970, 1, 2), gender="M"),
                      store=dept001)
    points_post(member=second, points=80, kind=EARN)
    MemberIdentity.objects.create(member=second, source="ELEC_CRM", external_no="E-7")
    return first, second


def test_conflicting_id_numbers_wait_for_approval_and_move_nothing(two_id_cards, hq_admin):
    first, second = two_id_cards
    request = merge(first, second, hq_admin)
    assert request.action == MEMBER_MERGE_CONFLICTING_IDS
    assert request.status == ApprovalRequest.Status.PENDING
    assert request.policy.approver_permission.codename == "approve_member_merge"
    assert reload(second).status == Member.Status.ACTIVE
    assert (reload(first).points, reload(second).points) == (0, 80)
    assert MemberIdentity.objects.get(external_no="E-7").member == second
    assert not PointsEntry.objects.filter(kind__in=["merge_in", "merge_out"]).exists()
    assert not MemberEvent.objects.filter(kind__in=["merged_into", "absorbed"]).exists()


def test_requester_cannot_approve_their_own_merge(two_id_cards, hq_admin):
    first, second = two_id_cards
    request = merge(first, second, hq_admin)
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=request, approver=hq_admin)
    assert reload(second).status == Member.Status.ACTIVE
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING


def test_another_approver_carries_the_merge_out(two_id_cards, hq_admin, hq_approver, ledgers_balanced):
    first, second = two_id_cards
    request = merge(first, second, hq_admin)
    approval_request_approve(approval_request=request, approver=hq_approver, comment="checked both cards")
    first, second = reload(first), reload(second)
    assert second.status == Member.Status.MERGED and second.merged_into == first
    assert (first.points, second.points) == (80, 0)
    assert MemberIdentity.objects.get(external_no="E-7").member == first
    assert first.id_number_digest != second.id_number_digest, "the survivor keeps its own ID number"
    [absorbed] = MemberEvent.objects.filter(member=first, kind=MemberEvent.Kind.ABSORBED)
    assert absorbed.actor == hq_approver
    ledgers_balanced()


def test_rejected_merge_leaves_both_members_untouched(two_id_cards, hq_admin, hq_approver):
    first, second = two_id_cards
    before = [Member.objects.filter(pk=m.pk).values().get() for m in (first, second)]
    request = merge(first, second, hq_admin)
    approval_request_reject(approval_request=request, approver=hq_approver, comment="two different people")
    assert [Member.objects.filter(pk=m.pk).values().get() for m in (first, second)] == before
    assert MemberIdentity.objects.get(external_no="E-7").member == second
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.REJECTED


# --- property: a merge never loses or doubles a point ---------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    survivor_earnings=st.lists(st.integers(1, 100_000), max_size=4),
    merged_earnings=st.lists(st.integers(1, 100_000), max_size=4),
    merged_redeems=st.integers(0, 100),
    survivor_tags=st.sets(st.integers(0, 4)),
    merged_tags=st.sets(st.integers(0, 4)),
    merged_has_id=st.booleans(),
)
@pytest.mark.django_db
def test_a_merge_never_loses_or_doubles_a_point(
    hq_admin, tags, ledgers_balanced,
    survivor_earnings, merged_earnings, merged_redeems, survivor_tags, merged_tags, merged_has_id,
):
    with transaction.atomic():
        survivor = register(name="赵敏", phone="13500001111")
        merged = register(name="赵敏", phone="13500002222", id_type="resident_id" if merged_has_id else "",
                          id_number=resident_id(date(1980, 1, 1)) if merged_has_id else "")
        for member, earnings in ((survivor, survivor_earnings), (merged, merged_earnings)):
            for points in earnings:
                points_post(member=member, points=points, kind=EARN)
        merged_balance = sum(merged_earnings)
        spent = merged_balance * merged_redeems // 100
        if spent:
            points_post(member=merged, points=-spent, kind=PointsEntry.Kind.REDEEM)
        for index in survivor_tags:
            members_tag(tag=tags[index], member_nos=[survivor.member_no])
        for index in merged_tags:
            members_tag(tag=tags[index], member_nos=[merged.member_no])
        total_before = Member.objects.aggregate(total=Sum("points"))["total"]

        merge(survivor, merged, hq_admin)

        survivor, merged = reload(survivor), reload(merged)
        assert survivor.points == sum(survivor_earnings) + merged_balance - spent
        assert merged.points == 0
        assert Member.objects.aggregate(total=Sum("points"))["total"] == total_before
        assert (PointsEntry.objects.aggregate(total=Sum("points"))["total"] or 0) == total_before
        assert ledger_sum(survivor) == survivor.points and ledger_sum(merged) == 0
        assert set(survivor.tags.values_list("pk", flat=True)) == {tags[i].pk for i in survivor_tags | merged_tags}
        assert not merged.tags.exists()
        assert survivor.id_number_digest == (merged.id_number_digest if merged_has_id else None)
        ledgers_balanced()
        transaction.set_rollback(True)


# --- PostgreSQL: two merges of one member at once ---------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_merges_of_one_member_let_one_through(dept001, hq_admin, ledgers_balanced):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under concurrency need PostgreSQL")
    merged = register(name="孙丽", phone="13300001111", store=dept001)
    points_post(member=merged, points=500, kind=EARN)
    survivors = [register(name="孙丽", phone=f"1330000222{i}", store=dept001) for i in range(2)]
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[int, str] = {}

    def run(index: int):
        try:
            survivor, member = Member.objects.get(pk=survivors[index].pk), Member.objects.get(pk=merged.pk)
            barrier.wait()
            merge(survivor, member, hq_admin)
            outcomes[index] = "merged"
        except MergeNotPossible:
            outcomes[index] = "refused"
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            outcomes[index] = repr(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes.values()) == ["merged", "refused"]
    winner = survivors[[i for i, outcome in outcomes.items() if outcome == "merged"][0]]
    assert reload(merged).merged_into == reload(winner)
    assert [reload(s).points for s in survivors] == [500 if s == winner else 0 for s in survivors]
    assert PointsEntry.objects.filter(kind=PointsEntry.Kind.MERGE_IN).count() == 1
    assert ApprovalRequest.objects.count() == 1, "the refused merge left no request behind"
    ledgers_balanced()
