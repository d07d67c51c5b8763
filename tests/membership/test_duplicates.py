"""merge_candidates_detect: records that may be one person, listed for staff, never merged."""

from datetime import date

import pytest
from django_celery_beat.models import PeriodicTask

from core.schedules import NIGHTLY, ensure_schedules
from membership.models import Member, MemberIdentity, MergeCandidate
from membership.services import member_merge_request, merge_candidate_dismiss, merge_candidates_detect
from membership.tasks import merge_candidates_detect as merge_candidates_detect_task
from tests.membership.conftest import register

pytestmark = pytest.mark.django_db
Reason = MergeCandidate.Reason


def pairs() -> set[tuple[frozenset, str]]:
    return {(frozenset((c.member_a_id, c.member_b_id)), c.reason) for c in MergeCandidate.objects.all()}


def pair(a, b, reason) -> tuple[frozenset, str]:
    return frozenset((a.pk, b.pk)), reason


def test_same_phone_with_different_names_is_a_candidate():
    a = register(name="王芳", phone="13700001111")
    b = register(name="王方", phone="137 0000 1111")
    register(name="王芳", phone="13700002222")
    assert merge_candidates_detect() == 1
    assert pairs() == {pair(a, b, Reason.SAME_PHONE)}
    assert MergeCandidate.objects.get().status == MergeCandidate.Status.OPEN
    assert Member.objects.filter(status=Member.Status.MERGED).count() == 0


def test_same_phone_and_same_name_is_not_proposed_by_the_phone_rule():
    register(name="王芳", phone="13700001111")
    register(name="王芳", phone="13700001111")
    assert merge_candidates_detect() == 0
    assert not MergeCandidate.objects.exists()


def test_in_a_shared_phone_only_differently_named_records_are_paired():
    wang1 = register(name="王芳", phone="13700001111")
    wang2 = register(name="王芳", phone="13700001111")
    li = register(name="李强", phone="13700001111")
    merge_candidates_detect()
    assert pairs() == {pair(wang1, li, Reason.SAME_PHONE), pair(wang2, li, Reason.SAME_PHONE)}


def test_same_name_and_birth_date_is_a_candidate():
    a = register(name="刘洋", phone="13600001111", birth_date=date(1970, 1, 1))
    b = register(name="刘洋", family_phone="13600002222", birth_date=date(1970, 1, 1))
    register(name="刘洋", phone="13600003333", birth_date=date(1970, 1, 2))
    register(name="刘洋", phone="13600004444")
    assert merge_candidates_detect() == 1
    assert pairs() == {pair(a, b, Reason.SAME_NAME_BIRTH)}


def test_same_legacy_number_and_name_in_two_sources_is_a_candidate():
    a = register(name="周杰", phone="13500001111")
    b = register(name="周杰", phone="13500002222")
    c = register(name="吴磊", phone="13500003333")
    MemberIdentity.objects.create(member=a, source="DEPT_CRM", external_no="000123")
    MemberIdentity.objects.create(member=b, source="SUPER_CRM", external_no="000123")
    MemberIdentity.objects.create(member=c, source="ELEC_CRM", external_no="000123")
    assert merge_candidates_detect() == 1
    assert pairs() == {pair(a, b, Reason.SAME_LEGACY_NO)}


def test_a_pair_found_by_two_rules_is_recorded_once():
    a = register(name="刘洋", phone="13600001111", birth_date=date(1970, 1, 1))
    b = register(name="刘洋", phone="13600002222", birth_date=date(1970, 1, 1))
    MemberIdentity.objects.create(member=a, source="DEPT_CRM", external_no="77")
    MemberIdentity.objects.create(member=b, source="SUPER_CRM", external_no="77")
    assert merge_candidates_detect() == 1
    assert MergeCandidate.objects.count() == 1


def test_running_twice_finds_nothing_new():
    register(name="王芳", phone="13700001111")
    register(name="王方", phone="13700001111")
    assert merge_candidates_detect() == 1
    assert merge_candidates_detect() == 0
    assert MergeCandidate.objects.count() == 1


def test_dismissed_pair_is_not_proposed_again(hq_admin):
    register(name="王芳", phone="13700001111")
    register(name="王方", phone="13700001111")
    merge_candidates_detect()
    candidate = MergeCandidate.objects.get()
    merge_candidate_dismiss(candidate=candidate, actor=hq_admin)
    assert merge_candidates_detect() == 0
    candidate.refresh_from_db()
    assert candidate.status == MergeCandidate.Status.DISMISSED
    assert candidate.decided_by == hq_admin


def test_merged_members_are_ignored(hq_admin):
    a = register(name="王芳", phone="13700001111")
    b = register(name="王芳", phone="13700002222")
    member_merge_request(survivor=b, merged=a, requested_by=hq_admin, reason="same person")
    MemberIdentity.objects.create(member=register(name="王方", phone="13700001111"), source="X", external_no="1")
    # a is merged: its phone and name match the new record, but a merged record is never proposed.
    assert merge_candidates_detect() == 0
    assert not MergeCandidate.objects.exists()


def test_closed_members_are_ignored(hq_admin):
    from membership.services import member_status_set

    a = register(name="王芳", phone="13700001111")
    register(name="王方", phone="13700001111")
    member_status_set(member=a, status=Member.Status.CLOSED, actor=hq_admin, reason="left")
    assert merge_candidates_detect() == 0


def test_small_batches_find_the_same_pairs():
    for i in range(5):
        register(name="王芳", phone=f"1370000{i:04d}")
        register(name="王方", phone=f"1370000{i:04d}")
        register(name="刘洋", phone=f"1360000{i:04d}", birth_date=date(1970, 1, i + 1))
        register(name="刘洋", phone=f"1350000{i:04d}", birth_date=date(1970, 1, i + 1))
    assert merge_candidates_detect(batch=2) == 10
    assert {reason for _, reason in pairs()} == {Reason.SAME_PHONE, Reason.SAME_NAME_BIRTH}


def test_the_task_returns_the_count_of_new_candidates():
    register(name="王芳", phone="13700001111")
    register(name="王方", phone="13700001111")
    assert merge_candidates_detect_task.apply().get(timeout=10) == 1
    assert MergeCandidate.objects.count() == 1


def test_nightly_schedules_exist_after_migrate_and_staff_edits_are_kept():
    # given: the schedules the migration created
    detect = PeriodicTask.objects.get(task="membership.merge_candidates_detect")
    assert (detect.crontab.hour, detect.crontab.minute) == ("2", "30")
    assert str(detect.crontab.timezone) == "Asia/Shanghai"
    assert detect.enabled
    check = PeriodicTask.objects.get(task="core.check_ledgers")
    assert (check.crontab.hour, check.crontab.minute) == ("4", "30")
    assert PeriodicTask.objects.filter(task="core.idempotency_records_purge").exists()
    detect.enabled = False
    detect.save()
    # when
    created = ensure_schedules()
    # then
    assert created == []
    nightly = ["membership.merge_candidates_detect", "core.check_ledgers", "core.idempotency_records_purge"]
    assert PeriodicTask.objects.filter(task__in=nightly).count() == 3
    assert not PeriodicTask.objects.get(task="membership.merge_candidates_detect").enabled


def test_a_deleted_schedule_is_created_again():
    PeriodicTask.objects.filter(task="core.check_ledgers").delete()

    assert ensure_schedules() == ["core: check ledgers"]


def test_every_nightly_schedule_names_a_registered_task():
    from config.celery import app

    app.loader.import_default_modules()

    assert {task for task, *_rest in NIGHTLY.values()} <= set(app.tasks)
