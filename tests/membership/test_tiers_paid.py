"""Paid tiers (Plus): selling and renewing terms, their benefits, and what a merge does with tiers."""

import itertools
from datetime import date, timedelta
from decimal import Decimal

import pytest

from approvals.models import ApprovalRequest
from core.errors import ValidationFailed
from membership.errors import MemberNotActive, PaidTierConflict, PaidTierNotForSale
from membership.models import Member, PointsEntry, Tier, TierChange, TierSubscription
from membership.services import (
    member_merge_request,
    paid_tier_active,
    paid_tier_buy,
    points_post,
    tiers_evaluate,
)
from tests.membership.conftest import register

TODAY = date(2025, 6, 15)
_phones = itertools.count(13700000001)


def new_member(name: str = "王芳", **fields) -> Member:
    return register(name=name, phone=str(next(_phones)), **fields)


def reload(member: Member) -> Member:
    return Member.objects.select_related("tier", "paid_tier").get(pk=member.pk)


@pytest.fixture
def tiers(db) -> dict[str, Tier]:
    return {tier.code: tier for tier in Tier.objects.all()}


@pytest.fixture
def member(dept001) -> Member:
    return new_member(store=dept001)


@pytest.fixture
def black_gold(db) -> Tier:
    """A second paid tier, 黑金, dearer than Plus."""
    return Tier.objects.create(code="BLACK", name="黑金", kind=Tier.Kind.PAID, rank=2, fee=Decimal("999.00"),
                               term_months=12, points_multiplier=Decimal("2.00"))


@pytest.fixture
def plus_member(member, tiers, dept001, hq_admin) -> Member:
    """A member who bought Plus at DEPT001 on TODAY: the term runs to 14 June of next year."""
    paid_tier_buy(member=member, tier=tiers["PLUS"], store=dept001, operator=hq_admin, payment_method="cash",
                  today=TODAY)
    return reload(member)


# --- buying --------------------------------------------------------------------------------------


def test_buying_plus_starts_a_term_of_twelve_months_today(member, tiers, dept001, hq_admin):
    subscription = paid_tier_buy(member=member, tier=tiers["PLUS"], store=dept001, operator=hq_admin,
                                 payment_method="wechat", today=TODAY)

    subscription.refresh_from_db()
    assert (subscription.kind, subscription.starts_on, subscription.ends_on) == (
        "purchase", TODAY, date(2026, 6, 14))
    assert (subscription.fee, subscription.payment_method, subscription.store, subscription.operator) == (
        Decimal("199.00"), "wechat", dept001, hq_admin)
    bought = reload(member)
    assert (bought.paid_tier, bought.paid_tier_until) == (tiers["PLUS"], date(2026, 6, 14))
    assert bought.tier == tiers["NORMAL"], "the earned tier is not touched"
    assert bought.history.first().history_change_reason == "paid tier bought: PLUS until 2026-06-14"
    [change] = TierChange.objects.filter(member=member)
    assert (change.reason, change.from_tier, change.to_tier, change.actor) == ("paid", None, tiers["PLUS"], hq_admin)
    assert "199.00" in change.note and "2026-06-14" in change.note


def test_the_fee_and_term_are_the_tiers_at_the_time_of_sale(member, tiers):
    Tier.objects.filter(code="PLUS").update(fee=Decimal("99.00"), term_months=3)
    subscription = paid_tier_buy(member=member, tier=tiers["PLUS"], today=date(2025, 11, 30))
    assert (subscription.fee, subscription.ends_on) == (Decimal("99.00"), date(2026, 2, 27))


def test_renewing_an_active_term_extends_it(plus_member, tiers, hq_admin):
    renewal = paid_tier_buy(member=plus_member, tier=tiers["PLUS"], operator=hq_admin,
                            today=TODAY + timedelta(days=300))

    assert (renewal.kind, renewal.starts_on, renewal.ends_on) == ("renewal", date(2026, 6, 15), date(2027, 6, 14))
    assert reload(plus_member).paid_tier_until == date(2027, 6, 14)
    assert list(TierChange.objects.filter(member=plus_member).order_by("pk").values_list("reason", flat=True)) == [
        "paid", "renewal"]
    assert TierSubscription.objects.filter(member=plus_member).count() == 2


def test_renewing_on_the_last_day_of_the_term_still_extends_it(plus_member, tiers):
    renewal = paid_tier_buy(member=plus_member, tier=tiers["PLUS"], today=date(2026, 6, 14))
    assert (renewal.kind, renewal.starts_on) == ("renewal", date(2026, 6, 15))


def test_buying_after_the_term_ended_starts_a_new_term(plus_member, tiers):
    again = paid_tier_buy(member=plus_member, tier=tiers["PLUS"], today=date(2026, 8, 1))
    assert (again.kind, again.starts_on, again.ends_on) == ("purchase", date(2026, 8, 1), date(2027, 7, 31))
    assert TierChange.objects.filter(member=plus_member).order_by("-pk").first().reason == "paid"


def test_an_earned_tier_cannot_be_bought(member, tiers):
    with pytest.raises(PaidTierNotForSale) as error:
        paid_tier_buy(member=member, tier=tiers["GOLD"], today=TODAY)
    assert error.value.code == "validation_error"
    assert tiers["GOLD"].name in str(error.value)
    assert_nothing_sold(member)


def test_a_paid_tier_no_longer_on_sale_cannot_be_bought(member, tiers):
    Tier.objects.filter(code="PLUS").update(is_active=False)
    with pytest.raises(PaidTierNotForSale):
        paid_tier_buy(member=member, tier=tiers["PLUS"], today=TODAY)
    assert_nothing_sold(member)


@pytest.mark.parametrize("status", [Member.Status.CLOSED, Member.Status.MERGED])
def test_a_member_who_is_not_live_cannot_buy(member, tiers, status):
    other = new_member(name="李建国")
    Member.objects.filter(pk=member.pk).update(
        status=status, merged_into=other if status == Member.Status.MERGED else None
    )
    with pytest.raises(MemberNotActive):
        paid_tier_buy(member=member, tier=tiers["PLUS"], today=TODAY)
    assert_nothing_sold(member)


def test_another_paid_tier_while_one_is_active_is_refused(plus_member, black_gold):
    with pytest.raises(PaidTierConflict) as error:
        paid_tier_buy(member=plus_member, tier=black_gold, today=TODAY + timedelta(days=10))
    assert error.value.status == 409
    assert "2026-06-14" in str(error.value)
    assert reload(plus_member).paid_tier.code == "PLUS"
    assert TierSubscription.objects.filter(member=plus_member).count() == 1


def test_another_paid_tier_after_the_term_ended_is_sold(plus_member, black_gold):
    subscription = paid_tier_buy(member=plus_member, tier=black_gold, today=date(2026, 6, 15))
    assert subscription.kind == "purchase"
    assert reload(plus_member).paid_tier == black_gold


def test_a_payment_method_longer_than_the_column_is_refused(member, tiers):
    with pytest.raises(ValidationFailed) as error:
        paid_tier_buy(member=member, tier=tiers["PLUS"], payment_method="x" * 21, today=TODAY)
    assert error.value.code == "validation_error"
    assert "payment_method" in error.value.fields
    assert_nothing_sold(member)


def assert_nothing_sold(member: Member) -> None:
    assert not TierSubscription.objects.filter(member=member).exists()
    assert not TierChange.objects.filter(member=member).exists()
    assert reload(member).paid_tier is None


# --- benefits --------------------------------------------------------------------------------------


def test_a_plus_members_paid_tier_applies_from_the_first_to_the_last_day(plus_member, tiers):
    assert paid_tier_active(plus_member, on=TODAY) == tiers["PLUS"]
    assert paid_tier_active(plus_member, on=date(2026, 6, 14)) == tiers["PLUS"]
    assert paid_tier_active(plus_member, on=date(2026, 6, 15)) is None
    assert paid_tier_active(reload(plus_member), on=TODAY).points_multiplier == Decimal("1.50")


def test_a_member_without_a_paid_tier_has_none(member):
    assert paid_tier_active(member) is None


def test_a_plus_member_earns_one_and_a_half_times_the_points(plus_member):
    try:
        from membership.services.points import member_points_multiplier
    except ImportError:
        pytest.skip("the points multiplier of purchases lives in membership.services.points, not there yet")
    assert member_points_multiplier(reload(plus_member), on=TODAY) == Decimal("1.50")
    assert member_points_multiplier(reload(plus_member), on=date(2026, 6, 15)) == Decimal("1.00"), "term over"


def test_the_nightly_run_ends_plus_the_day_after_its_term(plus_member):
    assert tiers_evaluate(today=date(2026, 6, 14)).paid_expired == 0
    assert tiers_evaluate(today=date(2026, 6, 15)).paid_expired == 1
    ended = reload(plus_member)
    assert (ended.paid_tier, ended.paid_tier_until) == (None, None)
    assert list(TierChange.objects.filter(member=plus_member).order_by("pk").values_list("reason", flat=True)) == [
        "paid", "paid_expiry"]


def test_a_renewed_term_is_not_ended_at_the_old_end(plus_member, tiers):
    paid_tier_buy(member=plus_member, tier=tiers["PLUS"], today=date(2026, 6, 1))
    assert tiers_evaluate(today=date(2026, 6, 15)).paid_expired == 0
    assert reload(plus_member).paid_tier_until == date(2027, 6, 14)


# --- merge ------------------------------------------------------------------------------------------


def merge(survivor: Member, merged: Member, user) -> ApprovalRequest:
    request = member_merge_request(survivor=survivor, merged=merged, requested_by=user, reason="same person")
    assert request.status == ApprovalRequest.Status.APPROVED
    return request


def test_a_merge_gives_the_survivor_the_higher_earned_tier_with_a_history_row(
    dept001, tiers, hq_admin, ledgers_balanced
):
    survivor = new_member(name="王芳")
    merged = new_member(name="王芳")
    Member.objects.filter(pk=merged.pk).update(tier=tiers["GOLD"], tier_downgrade_on=date(2030, 1, 1))
    points_post(member=reload(merged), points=300, kind=PointsEntry.Kind.EARN, store=dept001)

    merge(survivor, reload(merged), hq_admin)

    taken = reload(survivor)
    assert (taken.tier, taken.tier_downgrade_on) == (tiers["GOLD"], date(2030, 1, 1))
    [change] = TierChange.objects.filter(member=survivor)
    assert (change.reason, change.from_tier, change.to_tier, change.actor) == (
        "merge", tiers["NORMAL"], tiers["GOLD"], hq_admin)
    assert merged.member_no in change.note
    ledgers_balanced()


def test_a_merge_keeps_the_survivors_higher_earned_tier_without_a_history_row(tiers, hq_admin):
    survivor = new_member(name="王芳")
    merged = new_member(name="王芳")
    Member.objects.filter(pk=survivor.pk).update(tier=tiers["PLATINUM"])
    Member.objects.filter(pk=merged.pk).update(tier=tiers["SILVER"])
    merge(reload(survivor), reload(merged), hq_admin)
    assert reload(survivor).tier == tiers["PLATINUM"]
    assert not TierChange.objects.filter(member=survivor).exists()


def test_a_merge_moves_the_paid_terms_and_keeps_the_later_ending_paid_tier(dept001, tiers, black_gold, hq_admin):
    today = date.today()
    survivor = new_member(name="王芳")
    merged = new_member(name="王芳")
    paid_tier_buy(member=survivor, tier=tiers["PLUS"], today=today - timedelta(days=200))
    paid_tier_buy(member=merged, tier=black_gold, today=today - timedelta(days=10))

    merge(reload(survivor), reload(merged), hq_admin)

    taken = reload(survivor)
    assert taken.paid_tier == black_gold
    assert taken.paid_tier_until == reload(merged).paid_tier_until
    assert taken.history.first().history_change_reason == f"tiers from member {merged.member_no}"
    assert TierSubscription.objects.filter(member=survivor).count() == 2
    assert not TierSubscription.objects.filter(member=merged).exists()
    [change] = TierChange.objects.filter(member=survivor, reason="merge")
    assert (change.from_tier, change.to_tier) == (tiers["PLUS"], black_gold)


def test_a_merge_keeps_the_survivors_paid_tier_when_it_ends_later(tiers, hq_admin):
    today = date.today()
    survivor = new_member(name="王芳")
    merged = new_member(name="王芳")
    paid_tier_buy(member=survivor, tier=tiers["PLUS"], today=today - timedelta(days=10))
    paid_tier_buy(member=merged, tier=tiers["PLUS"], today=today - timedelta(days=200))
    until = reload(survivor).paid_tier_until

    merge(reload(survivor), reload(merged), hq_admin)

    assert reload(survivor).paid_tier_until == until
    assert not TierChange.objects.filter(member=survivor, reason="merge").exists()
    assert TierSubscription.objects.filter(member=survivor).count() == 2


def test_a_merge_ignores_a_paid_tier_that_has_ended(tiers, hq_admin):
    survivor = new_member(name="王芳")
    merged = new_member(name="王芳")
    Member.objects.filter(pk=merged.pk).update(paid_tier=tiers["PLUS"],
                                               paid_tier_until=date.today() - timedelta(days=1))
    merge(survivor, reload(merged), hq_admin)
    assert reload(survivor).paid_tier is None
