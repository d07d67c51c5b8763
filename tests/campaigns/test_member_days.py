"""Member days (会员日): new members, members who bought, member sales and their share, over its days and stores."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

import campaigns.promotion_hooks  # noqa: F401 - registers the providers and the purchase listener
from campaigns.demo.promotions import promotions_seed
from campaigns.models import MemberDay, PointsPromotion
from campaigns.queries_promotions import days_span, member_day_results, promotion_results
from campaigns.services.promotions import member_day_check
from core.errors import ValidationFailed
from membership.models import Member
from membership.services.purchases import purchase_record
from stores.models import Store
from tests.campaigns.test_promotions import make_promotion
from tests.membership.conftest import register


def make_member_day(*, stores=(), **fields) -> MemberDay:
    today = timezone.localdate()
    values = {"code": "MD1", "name": "十二月会员日", "starts_on": today - timedelta(days=1), "ends_on": today,
              **fields}
    member_day_check(starts_on=values["starts_on"], ends_on=values["ends_on"])
    member_day = MemberDay.objects.create(**values)
    member_day.stores.set(stores)
    return member_day


def buy(store, member, receipt_no, amount, *, ago=timedelta(minutes=5)):
    return purchase_record(store=store, member=member, receipt_no=receipt_no, amount=Decimal(amount),
                           occurred_at=timezone.now() - ago, payment_method="cash")


def registered_days_ago(member, days: int) -> None:
    Member.objects.filter(pk=member.pk).update(registered_at=timezone.now() - timedelta(days=days))


@pytest.fixture
def elec001(reference_stores):
    return Store.objects.get(code="ELEC001")


@pytest.fixture
def member_day_scenario(dept001, super001, elec001):
    """十二月会员日 yesterday and today at DEPT001 and SUPER001.

    Joined during it: 李建国 at DEPT001, 王芳 at SUPER001 (both count), 赵强 at ELEC001 (not a participating store).
    Joined before it: 张秀英 at DEPT001. Bought during it at its stores: 李建国 300.00 and 120.00, 张秀英 80.00;
    a customer without membership 500.00. Not counted: 赵强's 1,000.00 at ELEC001 and 李建国's 60.00 three days
    ago.
    """
    member_day = make_member_day(stores=[dept001, super001])
    li = register(name="李建国", phone="13800138000", store=dept001)
    wang = register(name="王芳", phone="13800138001", store=super001)
    zhao = register(name="赵强", phone="13800138002", store=elec001)
    zhang = register(name="张秀英", phone="13800138003", store=dept001)
    registered_days_ago(zhang, 30)
    buy(dept001, li, "R-1", "300.00")
    buy(super001, li, "R-2", "120.00")
    buy(dept001, zhang, "R-3", "80.00")
    buy(super001, None, "R-4", "500.00")
    buy(elec001, zhao, "R-5", "1000.00")
    buy(dept001, li, "R-6", "60.00", ago=timedelta(days=3))
    return member_day, {"li": li, "wang": wang}


def test_a_member_day_counts_new_members_buyers_and_member_share_of_sales(member_day_scenario):
    member_day, _members = member_day_scenario

    results = member_day_results(member_day)

    assert results["store_codes"] == ["DEPT001", "SUPER001"]
    assert results["new_members"] == 2
    assert results["buyers"] == 2
    assert (results["receipts"], results["member_receipts"]) == (4, 3)
    assert results["member_sales"] == Decimal("500.00")
    assert results["all_sales"] == Decimal("1000.00")
    assert results["member_share"] == Decimal("0.5000")


def test_a_member_day_without_stores_counts_every_store(member_day_scenario):
    member_day, _members = member_day_scenario
    member_day.stores.clear()

    results = member_day_results(member_day)

    assert results["new_members"] == 3
    assert results["buyers"] == 3
    assert results["member_sales"] == Decimal("1500.00")
    assert results["all_sales"] == Decimal("2000.00")
    assert results["member_share"] == Decimal("0.7500")


def test_a_member_day_before_any_sale_has_no_share(db, reference_stores):
    today = timezone.localdate()
    member_day = make_member_day(starts_on=today + timedelta(days=7), ends_on=today + timedelta(days=8))

    results = member_day_results(member_day)

    assert (results["new_members"], results["buyers"], results["all_sales"], results["member_share"]) == (
        0, 0, Decimal("0.00"), None)


def test_a_member_day_lists_its_promotions_and_the_points_they_gave(member_day_scenario, super001):
    member_day, members = member_day_scenario
    promotion = make_promotion(name="会员日双倍积分", member_day=member_day, stores=[super001])
    buy(super001, members["wang"], "R-7", "40.00")

    results = member_day_results(member_day)

    assert results["promotions"] == [promotion]
    assert results["extra_points"] == 40
    assert results["extra_points_value"] == Decimal("0.40")
    assert results["coupon_templates"] == []


def test_a_merged_record_is_not_a_new_member(member_day_scenario):
    member_day, members = member_day_scenario
    Member.objects.filter(pk=members["wang"].pk).update(status=Member.Status.MERGED,
                                                        merged_into=members["li"])

    assert member_day_results(member_day)["new_members"] == 1


def test_the_days_run_from_the_first_midnight_to_the_midnight_after_the_last(db):
    today = timezone.localdate()

    starts, ends = days_span(today, today)

    assert timezone.localtime(starts).date() == today and timezone.localtime(starts).hour == 0
    assert ends - starts == timedelta(days=1)


def test_a_member_day_cannot_end_before_it_starts(db):
    today = timezone.localdate()
    with pytest.raises(ValidationFailed) as refused:
        member_day_check(starts_on=today, ends_on=today - timedelta(days=1))
    assert "ends_on" in refused.value.fields


def test_a_member_day_needs_both_days(db):
    with pytest.raises(ValidationFailed) as refused:
        member_day_check(starts_on=None, ends_on=None)
    assert {"starts_on", "ends_on"} <= set(refused.value.fields)


def test_the_demo_promotions_and_member_day_have_results_and_load_twice_without_adding(reference_stores,
                                                                                        dept001, super001):
    # given: members who shop (the demo's are registered by seed_members)
    for index in range(6):
        register(name=f"演示会员{index}", phone=f"1380013810{index}", store=dept001 if index % 2 else super001)
        registered_days_ago(Member.objects.get(phone=f"1380013810{index}"), 90)

    # when
    first = promotions_seed()
    second = promotions_seed()

    # then
    assert first["promotions"] == 4 and first["member_days"] == 1 and first["members"] == 2
    assert first["purchases"] > 0
    assert second == {"promotions": 0, "member_days": 0, "purchases": 0, "members": 0}
    results = member_day_results(MemberDay.objects.get(code="MEMBER_DAY_DEMO"))
    assert results["new_members"] == 2
    assert results["buyers"] > 0
    assert Decimal("0") < results["member_share"] < Decimal("1")
    assert results["extra_points"] > 0
    wechat = PointsPromotion.objects.get(code="WX_WED_DOUBLE")
    assert promotion_results(wechat)["extra_points"] > 0
    assert wechat.weekdays == "3" and [fmt.code for fmt in wechat.formats.all()] == ["SUPER"]
