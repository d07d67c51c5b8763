"""Demo members loaded by `manage.py seed_demo` (CONTRACT section 2)."""

from collections import Counter
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Count, Sum
from django.utils import timezone

from core.pii import pii_decrypt, pii_digest, resident_id_parse
from membership import demo
from membership.models import Member, MemberIdentity, MemberTag, PointsEntry, Tier

pytestmark = pytest.mark.django_db


def seed(**options) -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


@pytest.fixture
def demo_members(reference_stores):
    """400 demo members, loaded as `seed_demo --members 400` does."""
    demo.seed_members(count=400)
    return Member.objects.filter(identities__source=demo.DEMO_SOURCE)


def test_seed_demo_run_twice_creates_the_members_once():
    # when
    first = seed(members=50, cards=0)
    numbers = set(Member.objects.values_list("member_no", flat=True))
    second = seed(members=50, cards=0)
    # then
    assert "Members: 50 created, 0 already there" in first
    assert "Members: 0 created, 50 already there" in second
    assert set(Member.objects.values_list("member_no", flat=True)) == numbers
    assert MemberIdentity.objects.filter(source=demo.DEMO_SOURCE).count() == 50


def test_seed_demo_with_more_members_adds_only_the_missing_ones(reference_stores):
    # given
    demo.seed_members(count=30)
    first_thirty = set(Member.objects.values_list("member_no", flat=True))
    # when
    result = demo.seed_members(count=45)
    # then
    assert (result.created, result.existing) == (15, 30)
    assert first_thirty < set(Member.objects.values_list("member_no", flat=True))
    assert Member.objects.count() == 45


def test_seed_demo_once_does_nothing_when_the_demo_data_is_there():
    seed(members=10, cards=0)

    output = seed(members=30, cards=0, once=True)

    assert "already loaded" in output
    assert Member.objects.count() == 10


def test_seed_demo_restores_the_reference_tiers():
    # given: someone renamed a reference tier
    Tier.objects.filter(code="NORMAL").update(name="renamed")
    # when
    seed(members=0, cards=0)
    # then
    assert dict(Tier.objects.values_list("code", "name")) == {
        "NORMAL": "普卡", "SILVER": "银卡", "GOLD": "金卡", "PLATINUM": "铂金卡", "PLUS": "Plus会员",
    }
    assert Tier.objects.get(code="PLUS").kind == Tier.Kind.PAID


def test_a_third_of_demo_members_are_over_60_and_a_fifth_have_no_phone(demo_members):
    members = list(demo_members)
    over_60 = sum(1 for member in members if member.age > 60)
    without_phone = [member for member in members if not member.phone]

    assert 0.27 <= over_60 / len(members) <= 0.40
    assert 0.15 <= len(without_phone) / len(members) <= 0.25
    assert all(member.family_phone for member in without_phone)


def test_every_demo_id_number_is_valid_sealed_and_found_by_its_digest(demo_members):
    with_id = demo_members.exclude(id_number_digest=None)
    assert with_id.count() > len(demo_members) / 2

    for member in with_id:
        number = pii_decrypt(member.id_number_sealed)
        parsed = resident_id_parse(number)
        assert member.id_number_digest == pii_digest(number)
        assert (parsed.birth_date, parsed.gender) == (member.birth_date, member.gender)
        assert number[:6] in demo.ALL_ID_REGIONS
        assert member.id_number_masked == number[:3] + "*" * 11 + number[-4:]


def test_demo_member_points_equal_their_opening_ledger_entries(demo_members):
    ledger = dict(
        PointsEntry.objects.values("member_id").annotate(total=Sum("points")).values_list("member_id", "total")
    )

    assert all(member.points == ledger.get(member.pk, 0) for member in demo_members)
    assert set(PointsEntry.objects.values_list("kind", flat=True)) == {PointsEntry.Kind.MIGRATION}
    assert PointsEntry.objects.count() > len(demo_members) / 2
    call_command("check_ledgers", stdout=StringIO())


def test_demo_families_share_a_phone_between_two_and_four_members(demo_members):
    sharing = Counter(
        phone for member in demo_members for phone in {member.phone, member.family_phone} if phone
    )
    family_sizes = [count for count in sharing.values() if count > 1]

    assert len(family_sizes) >= 20
    assert max(family_sizes) <= 4


def test_demo_members_look_like_the_groups_customers(demo_members):
    channels = set(demo_members.values_list("registered_channel", flat=True))
    stores = demo_members.values("registered_store").distinct().count()
    legacy_sources = set(MemberIdentity.objects.exclude(source=demo.DEMO_SOURCE).values_list("source", flat=True))
    tags = dict(MemberTag.objects.values("tag__name").annotate(n=Count("pk")).values_list("tag__name", "n"))

    assert channels == {"desk", "pos", "import"}
    assert stores >= 100
    assert legacy_sources == {"DEPT_CRM", "SUPER_CRM"}
    assert demo_members.filter(cards__isnull=False).exists()
    assert 0 < demo_members.filter(marketing_consent=True).count() < len(demo_members)
    assert tags[demo.TAG_SILVER] == sum(1 for member in demo_members if member.age > 60)
    assert tags[demo.TAG_FAMILY] > 0
    assert all(2 <= len(member.name) <= 3 and member.name[0] in demo.SURNAMES for member in demo_members)
    assert all(member.registered_at <= timezone.now() for member in demo_members)


def test_a_demo_family_is_found_together_by_its_phone(api, demo_members):
    # given
    phone, size = Counter(demo_members.exclude(phone="").values_list("phone", flat=True)).most_common(1)[0]
    family = set(demo_members.filter(phone=phone).values_list("member_no", flat=True)) | set(
        demo_members.filter(family_phone=phone).values_list("member_no", flat=True)
    )
    # when
    response = api.get("/api/v1/members/lookup", {"phone": phone})
    # then
    assert size >= 2
    assert {row["member_no"] for row in response.json()["results"]} == family
