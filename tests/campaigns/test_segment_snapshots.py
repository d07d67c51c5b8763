"""Segment services: saving, counting, snapshots materialised by the Celery task, and the export rows."""

from datetime import date
from unittest import mock

import pytest
from django.db import DatabaseError

from campaigns import services
from campaigns.errors import SegmentInvalid
from campaigns.models import Segment, SegmentMember, SegmentSnapshot
from campaigns.segments import rules_count
from membership.models import Member, Tag, Tier
from tests.membership.conftest import register

CONSENT = {"field": "marketing_consent", "value": True}
ELDERLY = {"match": "all", "conditions": [CONSENT, {"field": "age", "min": 60}]}


@pytest.fixture
def operator(hq_admin):
    return hq_admin


@pytest.fixture
def elderly(dept001):
    """Three members of DEPT001 aged over 60 with consent, one without consent, one young."""
    members = []
    for index, (birth, consent) in enumerate([(date(1950, 1, 1), True), (date(1955, 5, 5), True),
                                              (date(1948, 3, 12), True), (date(1950, 1, 1), False),
                                              (date(1999, 1, 1), True)]):
        member = register(name=f"会员{index}", phone=f"1380013800{index}", store=dept001)
        Member.objects.filter(pk=member.pk).update(birth_date=birth, marketing_consent=consent,
                                                   tier=Tier.objects.get(code="SILVER"))
        members.append(member)
    return members


@pytest.fixture
def segment(operator, elderly):
    return services.segment_save(name="老年会员", purpose=Segment.Purpose.MARKETING, rules=ELDERLY, operator=operator)


def test_save_cleans_the_rules_and_keeps_history(operator, db):
    segment = services.segment_save(name="  老年  会员 ", purpose="marketing", operator=operator, rules={
        "match": "all", "conditions": [CONSENT, {"field": "age", "min": "60"}]})
    segment.refresh_from_db()
    assert segment.name == "老年 会员"
    assert segment.rules == {"match": "all", "conditions": [CONSENT, {"field": "age", "min": 60}]}
    assert segment.created_by == operator
    assert segment.history.get().history_user == operator


def test_save_refuses_bad_fields_naming_each(operator, db):
    with pytest.raises(SegmentInvalid) as caught:
        services.segment_save(name="", purpose="marketing", operator=operator,
                              rules={"match": "all", "conditions": [{"field": "age", "min": 60}]})
    assert set(caught.value.fields) == {"name", "rules"}
    assert "Consent is always required" in caught.value.fields["rules"][0]
    with pytest.raises(SegmentInvalid) as caught:
        services.segment_save(name="x", purpose="spam", operator=operator, rules=ELDERLY)
    assert set(caught.value.fields) == {"purpose"}
    assert not Segment.objects.exists()


def test_save_changes_an_existing_segment(operator, segment):
    changed = services.segment_save(segment=segment, name="老年会员（男）", purpose="service", operator=operator,
                                    rules={"match": "all", "conditions": [{"field": "gender", "values": ["M"]}]})
    assert changed.pk == segment.pk
    segment.refresh_from_db()
    assert segment.purpose == "service" and segment.rules["conditions"] == [{"field": "gender", "values": ["M"]}]
    assert segment.history.count() == 2


def test_count_keeps_the_last_count(segment):
    assert services.segment_count(segment=segment) == 3
    segment.refresh_from_db()
    assert segment.last_count == 3 and segment.last_counted_at is not None


def test_request_enqueues_the_task_after_commit_and_it_writes_the_members(segment, operator, elderly,
                                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        snapshot = services.segment_snapshot_request(segment=segment, requested_by=operator)
    assert snapshot.status == SegmentSnapshot.Status.PENDING
    assert snapshot.rules == segment.rules
    assert not SegmentMember.objects.exists()
    assert len(callbacks) == 1
    callbacks[0]()  # the task runs eagerly in tests (no broker)
    snapshot.refresh_from_db()
    assert snapshot.status == SegmentSnapshot.Status.DONE
    assert snapshot.member_count == 3
    assert snapshot.finished_at is not None and snapshot.duration_ms is not None
    assert set(SegmentMember.objects.filter(snapshot=snapshot).values_list("member_id", flat=True)) == {
        member.pk for member in elderly[:3]}


def test_materialise_runs_once(segment, operator):
    snapshot = services.segment_snapshot_take(segment=segment, requested_by=operator)
    again = services.segment_snapshot_materialise(snapshot_id=snapshot.pk)
    assert again.status == SegmentSnapshot.Status.DONE
    assert SegmentMember.objects.filter(snapshot=snapshot).count() == 3


def test_a_failed_materialise_is_recorded_and_writes_no_members(segment, operator):
    snapshot = services.segment_snapshot_request(segment=segment, requested_by=operator)
    with mock.patch("campaigns.services.segments._insert_members", side_effect=DatabaseError("disk full")):
        services.segment_snapshot_materialise(snapshot_id=snapshot.pk)
    snapshot.refresh_from_db()
    assert snapshot.status == SegmentSnapshot.Status.FAILED
    assert "disk full" in snapshot.error
    assert snapshot.finished_at is not None
    assert not SegmentMember.objects.filter(snapshot=snapshot).exists()


def test_a_failure_inside_the_insert_rolls_back_its_rows(segment, operator):
    snapshot = services.segment_snapshot_request(segment=segment, requested_by=operator)
    real = services.segments._insert_members

    def insert_then_fail(snap):
        real(snap)
        raise DatabaseError("connection lost")

    with mock.patch("campaigns.services.segments._insert_members", side_effect=insert_then_fail):
        services.segment_snapshot_materialise(snapshot_id=snapshot.pk)
    snapshot.refresh_from_db()
    assert snapshot.status == SegmentSnapshot.Status.FAILED
    assert not SegmentMember.objects.filter(snapshot=snapshot).exists()


def test_take_refuses_when_the_members_cannot_be_written(segment, operator):
    with mock.patch("campaigns.services.segments._insert_members", side_effect=DatabaseError("disk full")), \
            pytest.raises(SegmentInvalid, match="could not be taken"):
        services.segment_snapshot_take(segment=segment, requested_by=operator)


def test_snapshot_refuses_rules_whose_tag_has_gone(operator, db):
    tag = Tag.objects.create(name="VIP")
    segment = services.segment_save(name="VIP", purpose="service", operator=operator,
                                    rules={"match": "all", "conditions": [{"field": "tags", "tags": ["VIP"]}]})
    tag.delete()
    with pytest.raises(SegmentInvalid):
        services.segment_snapshot_request(segment=segment, requested_by=operator)
    assert not SegmentSnapshot.objects.exists()


def test_snapshot_keeps_who_was_in_it_when_the_segment_changes_later(segment, operator, elderly):
    snapshot = services.segment_snapshot_take(segment=segment, requested_by=operator)
    Member.objects.filter(pk=elderly[0].pk).update(marketing_consent=False)
    assert rules_count(segment.rules) == 2
    assert SegmentMember.objects.filter(snapshot=snapshot).count() == 3


def test_export_rows_are_masked_unless_unmasked(segment, operator, elderly):
    snapshot = services.segment_snapshot_take(segment=segment, requested_by=operator)
    masked = list(services.segment_members_rows(snapshot=snapshot, unmasked=False))
    assert len(masked) == 3
    first = masked[0]
    assert first["member_no"] == elderly[0].member_no
    assert first["phone"] == "138****8000"
    assert first["tier"] == "银卡"
    assert first["registered_store"].startswith("DEPT001 ")
    assert first["channel"] == "SMS"
    full = list(services.segment_members_rows(snapshot=snapshot, unmasked=True))
    assert full[0]["phone"] == "13800138000"
    assert [key for key, _label in services.SEGMENT_MEMBER_COLUMNS] == list(first)
