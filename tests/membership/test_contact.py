"""member_contact_update and member_status_set: changes that leave a trace on the member's page."""

import pytest

from membership.errors import MemberInvalid, MemberNotActive
from membership.models import Member, MemberEvent
from membership.services import member_contact_update, member_merge_request, member_status_set
from tests.membership.conftest import register

pytestmark = pytest.mark.django_db


def events(member, kind):
    return list(MemberEvent.objects.filter(member=member, kind=kind))


def test_contact_update_writes_an_event_and_a_history_row(member_with_phone, hq_admin, dept001):
    history_before = member_with_phone.history.count()
    member_contact_update(member=member_with_phone, actor=hq_admin, store=dept001,
                          phone="139 0000 1111", address="重庆市渝中区解放碑1号")
    member_with_phone.refresh_from_db()
    assert member_with_phone.phone == "13900001111"
    assert member_with_phone.address == "重庆市渝中区解放碑1号"
    [event] = events(member_with_phone, MemberEvent.Kind.CONTACT_CHANGED)
    assert event.actor == hq_admin
    assert event.store == dept001
    assert event.data == {"fields": ["address", "phone"]}
    assert member_with_phone.history.count() == history_before + 1
    latest = member_with_phone.history.first()
    assert latest.history_user == hq_admin
    assert latest.phone == "13900001111"
    assert latest.prev_record.phone == "13800138000"


def test_unchanged_contact_details_write_nothing(member_with_phone, hq_admin):
    history_before = member_with_phone.history.count()
    member_contact_update(member=member_with_phone, actor=hq_admin, phone="+86 13800138000")
    assert events(member_with_phone, MemberEvent.Kind.CONTACT_CHANGED) == []
    assert member_with_phone.history.count() == history_before


def test_consent_timestamp_is_set_then_cleared(member_with_phone, hq_admin):
    member_contact_update(member=member_with_phone, actor=hq_admin, marketing_consent=True)
    member_with_phone.refresh_from_db()
    given_at = member_with_phone.marketing_consent_at
    assert member_with_phone.marketing_consent is True
    assert given_at is not None

    member_contact_update(member=member_with_phone, actor=hq_admin, marketing_consent=True, address="新地址")
    member_with_phone.refresh_from_db()
    assert member_with_phone.marketing_consent_at == given_at, "consent given again keeps its first time"

    member_contact_update(member=member_with_phone, actor=hq_admin, marketing_consent=False)
    member_with_phone.refresh_from_db()
    assert member_with_phone.marketing_consent is False
    assert member_with_phone.marketing_consent_at is None
    assert len(events(member_with_phone, MemberEvent.Kind.CONTACT_CHANGED)) == 3


def test_impossible_phone_is_refused_and_nothing_changes(member_with_phone, hq_admin):
    with pytest.raises(MemberInvalid) as error:
        member_contact_update(member=member_with_phone, actor=hq_admin, phone="12345", address="新地址")
    assert set(error.value.fields) == {"phone"}
    member_with_phone.refresh_from_db()
    assert (member_with_phone.phone, member_with_phone.address) == ("13800138000", "")
    assert events(member_with_phone, MemberEvent.Kind.CONTACT_CHANGED) == []


def test_member_without_id_cannot_lose_the_last_way_to_reach_them(member_with_phone, hq_admin):
    with pytest.raises(MemberInvalid):
        member_contact_update(member=member_with_phone, actor=hq_admin, phone="")
    member_with_phone.refresh_from_db()
    assert member_with_phone.phone == "13800138000"


def test_member_with_id_may_clear_the_family_phone(elderly_member_without_phone, hq_admin):
    member_contact_update(member=elderly_member_without_phone, actor=hq_admin, family_phone="")
    elderly_member_without_phone.refresh_from_db()
    assert elderly_member_without_phone.family_phone == ""


def test_unknown_contact_channel_is_refused(member_with_phone, hq_admin):
    with pytest.raises(MemberInvalid) as error:
        member_contact_update(member=member_with_phone, actor=hq_admin, contact_channel="pigeon")
    assert "contact_channel" in error.value.fields


def test_fields_other_than_contact_details_are_a_programming_error(member_with_phone, hq_admin):
    with pytest.raises(TypeError, match="name"):
        member_contact_update(member=member_with_phone, actor=hq_admin, name="别人")


def test_contact_of_a_merged_member_cannot_change(member_with_phone, hq_admin):
    survivor = register(name="李建国", phone="13800138001")
    member_merge_request(survivor=survivor, merged=member_with_phone, requested_by=hq_admin, reason="same person")
    with pytest.raises(MemberNotActive):
        member_contact_update(member=member_with_phone, actor=hq_admin, address="新地址")


# --- status -------------------------------------------------------------------------------------


def test_freezing_writes_an_event_with_the_reason(member_with_phone, hq_admin):
    member_status_set(member=member_with_phone, status=Member.Status.FROZEN, actor=hq_admin, reason="卡片被冒用")
    member_with_phone.refresh_from_db()
    assert member_with_phone.status == Member.Status.FROZEN
    [event] = events(member_with_phone, MemberEvent.Kind.STATUS_CHANGED)
    assert event.data == {"from": "active", "to": "frozen", "reason": "卡片被冒用"}
    assert event.actor == hq_admin
    assert member_with_phone.history.first().history_change_reason == "卡片被冒用"


def test_unfreezing_and_closing_each_leave_an_event(member_with_phone, hq_admin):
    member_status_set(member=member_with_phone, status=Member.Status.FROZEN, actor=hq_admin, reason="a")
    member_status_set(member=member_with_phone, status=Member.Status.ACTIVE, actor=hq_admin, reason="b")
    member_status_set(member=member_with_phone, status=Member.Status.CLOSED, actor=hq_admin, reason="c")
    member_with_phone.refresh_from_db()
    assert member_with_phone.status == Member.Status.CLOSED
    assert [e.data["to"] for e in events(member_with_phone, MemberEvent.Kind.STATUS_CHANGED)][::-1] == [
        "frozen", "active", "closed"]


def test_setting_the_same_status_writes_nothing(member_with_phone, hq_admin):
    member_status_set(member=member_with_phone, status=Member.Status.ACTIVE, actor=hq_admin, reason="again")
    assert events(member_with_phone, MemberEvent.Kind.STATUS_CHANGED) == []


def test_status_change_needs_a_reason(member_with_phone, hq_admin):
    with pytest.raises(MemberInvalid) as error:
        member_status_set(member=member_with_phone, status=Member.Status.FROZEN, actor=hq_admin, reason="  ")
    assert "reason" in error.value.fields
    member_with_phone.refresh_from_db()
    assert member_with_phone.status == Member.Status.ACTIVE


@pytest.mark.parametrize("status", ["merged", "deleted"])
def test_merged_or_unknown_status_cannot_be_set_directly(member_with_phone, hq_admin, status):
    with pytest.raises(MemberInvalid) as error:
        member_status_set(member=member_with_phone, status=status, actor=hq_admin, reason="x")
    assert "status" in error.value.fields
    member_with_phone.refresh_from_db()
    assert member_with_phone.status == Member.Status.ACTIVE


def test_merged_member_cannot_be_reactivated(member_with_phone, hq_admin):
    survivor = register(name="李建国", phone="13800138001")
    member_merge_request(survivor=survivor, merged=member_with_phone, requested_by=hq_admin, reason="same person")
    with pytest.raises(MemberNotActive):
        member_status_set(member=member_with_phone, status=Member.Status.ACTIVE, actor=hq_admin, reason="undo")
    member_with_phone.refresh_from_db()
    assert member_with_phone.status == Member.Status.MERGED
