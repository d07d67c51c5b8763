"""members_tag / members_untag: tagging members by lists of member numbers."""

import pytest

from membership.models import MemberEvent, MemberTag, Tag
from membership.services import member_merge_request, members_tag, members_untag
from tests.membership.conftest import register

pytestmark = pytest.mark.django_db


@pytest.fixture
def vip():
    return Tag.objects.create(name="VIP", description="spends over 50,000 a year")


@pytest.fixture
def three_members():
    return [register(name=f"会员{i}", phone=f"1380000000{i}") for i in range(3)]


def tagged(tag) -> set[str]:
    return set(MemberTag.objects.filter(tag=tag).values_list("member__member_no", flat=True))


def test_known_numbers_are_tagged_and_unknown_ones_returned(vip, three_members, hq_admin):
    numbers = [m.member_no for m in three_members[:2]]
    result = members_tag(tag=vip, member_nos=[*numbers, "800000000000", "nonsense"], actor=hq_admin)
    assert (result.added, result.already) == (2, 0)
    assert result.unknown == ["800000000000", "nonsense"]
    assert tagged(vip) == set(numbers)
    assert set(MemberTag.objects.values_list("added_by", flat=True)) == {hq_admin.pk}


def test_duplicates_and_blanks_in_the_list_count_once(vip, three_members):
    number = three_members[0].member_no
    result = members_tag(tag=vip, member_nos=[number, f" {number} ", number, "", "  "])
    assert (result.added, result.already, result.unknown) == (1, 0, [])
    assert MemberTag.objects.count() == 1


def test_tagging_twice_changes_nothing(vip, three_members):
    numbers = [m.member_no for m in three_members]
    members_tag(tag=vip, member_nos=numbers[:2])
    result = members_tag(tag=vip, member_nos=numbers)
    assert (result.added, result.already) == (1, 2)
    assert MemberTag.objects.filter(tag=vip).count() == 3


def test_numbers_may_be_integers_from_a_spreadsheet(vip, three_members):
    result = members_tag(tag=vip, member_nos=[int(three_members[0].member_no)])
    assert result.added == 1


def test_one_tag_does_not_touch_another(vip, three_members):
    other = Tag.objects.create(name="团购")
    members_tag(tag=other, member_nos=[three_members[0].member_no])
    members_tag(tag=vip, member_nos=[three_members[0].member_no])
    assert tagged(other) == tagged(vip) == {three_members[0].member_no}


def test_merged_members_number_tags_the_survivor(vip, three_members, hq_admin):
    merged, survivor = three_members[0], three_members[1]
    member_merge_request(survivor=survivor, merged=merged, requested_by=hq_admin, reason="same person")
    result = members_tag(tag=vip, member_nos=[merged.member_no, survivor.member_no])
    assert (result.added, result.already, result.unknown) == (1, 0, [])
    assert tagged(vip) == {survivor.member_no}


def test_untag_removes_only_that_tag(vip, three_members):
    other = Tag.objects.create(name="团购")
    numbers = [m.member_no for m in three_members]
    members_tag(tag=vip, member_nos=numbers)
    members_tag(tag=other, member_nos=numbers)
    assert members_untag(tag=vip, members=three_members[:2]) == 2
    assert tagged(vip) == {numbers[2]}
    assert tagged(other) == set(numbers)


def test_empty_list_tags_nobody(vip):
    result = members_tag(tag=vip, member_nos=[])
    assert (result.added, result.already, result.unknown) == (0, 0, [])


def test_tagging_is_an_event_on_each_newly_tagged_member_only(vip, three_members, hq_admin):
    first, second, _third = three_members
    members_tag(tag=vip, member_nos=[first.member_no], actor=hq_admin)

    members_tag(tag=vip, member_nos=[first.member_no, second.member_no], actor=hq_admin)

    events = MemberEvent.objects.filter(kind=MemberEvent.Kind.TAGGED)
    assert sorted(events.values_list("member_id", flat=True)) == sorted([first.pk, second.pk])
    assert {event.data["tag"] for event in events} == {vip.name}
    assert {event.actor_id for event in events} == {hq_admin.pk}
