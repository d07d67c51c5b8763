"""Demo members loaded by `manage.py seed_demo` (CONTRACT section 2)."""

from collections import Counter
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import transaction
from django.db.models import Avg, Count, Sum
from django.utils import timezone

from core.pii import pii_decrypt, pii_digest, resident_id_parse
from membership import demo
from membership.models import (
    EarnRule,
    Gift,
    GiftStock,
    GiftStockMovement,
    Member,
    MemberIdentity,
    MemberTag,
    PointsEntry,
    PointsHold,
    Purchase,
    Tier,
    TierChange,
    TierSubscription,
)

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
    assert Member.objects.filter(identities__source=demo.DEMO_SOURCE).count() == 10


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


# --- tiers, points, purchases and gifts -------------------------------------------------------------


@pytest.fixture
def demo_loyalty(demo_members):
    """The 400 demo members with a year of purchases, tiers and Plus, as `seed_demo` loads them."""
    return demo.seed_loyalty()


def test_seed_loyalty_sets_the_earn_rules_of_the_four_formats(demo_loyalty):
    rules = {rule.format.code: rule for rule in EarnRule.objects.select_related("format")}

    assert {code: (rule.amount_per_point, rule.pending_days) for code, rule in rules.items()} == {
        "DEPT": (Decimal("1.00"), 0), "SUPER": (Decimal("2.00"), 0), "ELEC": (Decimal("1.00"), 0),
        "AUTO": (Decimal("10.00"), 7),
    }
    assert rules["SUPER"].excluded_category_set == {"TOBACCO"}
    assert rules["ELEC"].excluded_category_set == {"GIFTCARD"}


def test_seed_loyalty_stocks_the_gift_catalogue_at_the_flagship_desks(demo_loyalty):
    gifts = dict(Gift.objects.values_list("name", "points"))
    stocked = set(GiftStock.objects.filter(quantity__gt=0).values_list("store__code", flat=True))

    assert gifts == {"环保购物袋": 200, "保温杯": 1500, "食用油5L": 3000, "电饭煲": 12000}
    assert {"DEPT001", "SUPER001"} <= stocked and len(stocked) >= 4
    assert GiftStockMovement.objects.filter(kind=GiftStockMovement.Kind.RECEIVED).count() == GiftStock.objects.count()


def test_demo_purchases_cover_a_year_across_formats_with_realistic_baskets(demo_loyalty):
    year_ago = timezone.now() - timedelta(days=366)
    by_format = {
        row["format__code"]: row for row in
        Purchase.objects.values("format__code").annotate(n=Count("pk"), average=Avg("amount"))
    }

    assert demo_loyalty.purchases == Purchase.objects.count() > 400 * 5
    assert not Purchase.objects.filter(occurred_at__lt=year_ago).exists()
    assert not Purchase.objects.filter(occurred_at__gt=timezone.now()).exists()
    assert set(by_format) == {"DEPT", "SUPER", "ELEC", "AUTO"}
    # supermarket small and frequent, department store medium, electronics occasional and large
    assert by_format["SUPER"]["n"] > by_format["DEPT"]["n"] > by_format["ELEC"]["n"]
    assert by_format["SUPER"]["average"] < by_format["DEPT"]["average"] < by_format["ELEC"]["average"]
    assert Purchase.objects.filter(lines__icontains="TOBACCO").exists()


def test_elderly_demo_members_shop_mostly_at_the_supermarket(demo_loyalty):
    born_before = timezone.localdate().replace(year=timezone.localdate().year - 61)
    elderly = Purchase.objects.filter(member__birth_date__lt=born_before)

    assert elderly.filter(format__code="SUPER").count() > 0.7 * elderly.count()


def test_demo_points_equal_the_ledger_and_every_earning_names_its_receipt_and_company(demo_loyalty):
    earned = PointsEntry.objects.filter(kind=PointsEntry.Kind.EARN)
    purchase_type = ContentType.objects.get_for_model(Purchase)

    call_command("check_ledgers", stdout=StringIO())
    assert earned.count() == demo_loyalty.points_entries
    assert not earned.filter(legal_entity=None).exists()
    assert not earned.exclude(cause_type=purchase_type).exists()
    assert set(earned.values_list("receipt_no", flat=True)) == set(
        Purchase.objects.filter(points_earned__gt=0).exclude(points_hold__status=PointsHold.Status.PENDING)
        .values_list("receipt_no", flat=True)
    )
    supermarket = Purchase.objects.filter(format__code="SUPER", points_earned__gt=0).first()
    assert supermarket.points_earned <= supermarket.amount / 2


def test_demo_members_reach_real_tiers_and_a_few_hold_plus(demo_loyalty):
    tiers = Counter(Member.objects.filter(identities__source=demo.DEMO_SOURCE).values_list("tier__code", flat=True))
    plus = Member.objects.filter(paid_tier__code="PLUS")

    assert tiers["NORMAL"] > tiers["SILVER"] > tiers["GOLD"] > 0
    assert "PLUS" not in tiers
    assert TierChange.objects.filter(reason=TierChange.Reason.UPGRADE).count() == demo_loyalty.tiers["upgraded"]
    assert plus.count() == demo_loyalty.plus > 0
    assert TierSubscription.objects.filter(fee=Decimal("199.00")).count() == demo_loyalty.plus


def test_seed_demo_twice_adds_no_purchases_points_or_tier_changes():
    first = seed(members=60, cards=0)
    counts = (Purchase.objects.count(), PointsEntry.objects.count(), TierChange.objects.count(),
              GiftStockMovement.objects.count(), TierSubscription.objects.count())

    second = seed(members=60, cards=0)

    assert "Loyalty: 4 earn rules and 4 gifts created" in first
    assert "0 purchases with 0 points entries" in second and "Plus sold: 0" in second
    assert (Purchase.objects.count(), PointsEntry.objects.count(), TierChange.objects.count(),
            GiftStockMovement.objects.count(), TierSubscription.objects.count()) == counts
    call_command("check_ledgers", stdout=StringIO())


def test_demo_purchases_are_the_same_on_every_run(reference_stores):
    def load():
        with transaction.atomic():
            demo.seed_members(count=40)
            demo.seed_loyalty()
            baskets = sorted(Purchase.objects.values_list("receipt_no", "amount", "store__code", "points_earned"))
            transaction.set_rollback(True)
        return baskets

    first, second = load(), load()

    assert first and first == second
