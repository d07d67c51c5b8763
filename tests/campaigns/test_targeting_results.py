"""Results of a targeted campaign (campaigns/queries_targeting.py) on a small planted population: ten targeted
and ten control members whose purchases, returns, reach and coupons are known, so every figure is exact."""

import math
import statistics
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import CampaignMember, Coupon, CouponBatch, Segment, TargetedCampaign
from campaigns.queries_targeting import Z_95, call_list, campaign_results, results_window
from campaigns.services import coupon_redeem, coupons_issue
from membership.services.purchases import purchase_record, purchase_return
from tests.campaigns.conftest import CouponTemplateFactory
from tests.membership.conftest import register

pytestmark = pytest.mark.django_db
TARGET, CONTROL = CampaignMember.Group.TARGET, CampaignMember.Group.CONTROL


def local(day, hour=12, minute=0):
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


@pytest.fixture
def planted(dept001, super001):
    """A campaign that started ten days ago (30-day window) with ten targeted members (t0..t9) and ten in the
    control group (c0..c9); t0..t4 registered at DEPT001, the rest at SUPER001.

    In the window: t0 buys 100.00 at DEPT001 and 50.00 at SUPER001; t1 200.00 at DEPT001; t2 300.00 at SUPER001,
    all of it returned; t3 400.00 at SUPER001 and uses the campaign's 10.00 coupon there; c0 100.00 at DEPT001.
    Before the window: t4 bought 999.00 the evening before the first day (not counted).
    Reached: t0 and t5 (SMS). Each targeted member was given 100 points (100 points = 1.00 yuan).
    """
    today = timezone.localdate()
    starts_on = today - timedelta(days=10)
    segment = Segment.objects.create(name="测试人群", rules={
        "match": "all", "conditions": [{"field": "marketing_consent", "value": True}]})
    campaign = TargetedCampaign.objects.create(
        code="TCRESULTS", name="结果测试", segment=segment, status=TargetedCampaign.Status.RUNNING,
        control_percent=50, starts_on=starts_on, ends_on=today + timedelta(days=4), result_days=30,
        target_count=10, control_count=10)
    template = CouponTemplateFactory(amount=Decimal("10.00"))
    members = {}
    for group, prefix in ((TARGET, "t"), (CONTROL, "c")):
        for index in range(10):
            store = dept001 if index < 5 else super001
            member = register(name=f"成员{prefix}{index}", phone=f"139{ord(prefix):04d}{index:04d}", store=store)
            members[f"{prefix}{index}"] = CampaignMember.objects.create(
                campaign=campaign, member=member, group=group, store=store, channel=CampaignMember.Channel.SMS,
                points_given=100 if group == TARGET else 0)
    batch = coupons_issue(template=template, member_ids=[members["t3"].member_id],
                          channel=CouponBatch.Channel.SEGMENT, source_name=campaign.code)
    coupon = Coupon.objects.get(batch=batch)
    CampaignMember.objects.filter(pk=members["t3"].pk).update(coupon=coupon)
    in_window = local(starts_on, 10)
    purchase_record(store=dept001, member=members["t0"].member, receipt_no="R-T0-1", amount=Decimal("100.00"),
                    occurred_at=in_window)
    purchase_record(store=super001, member=members["t0"].member, receipt_no="R-T0-2", amount=Decimal("50.00"),
                    occurred_at=in_window + timedelta(days=2))
    purchase_record(store=dept001, member=members["t1"].member, receipt_no="R-T1", amount=Decimal("200.00"),
                    occurred_at=in_window + timedelta(days=1))
    purchase_record(store=super001, member=members["t2"].member, receipt_no="R-T2", amount=Decimal("300.00"),
                    occurred_at=in_window)
    purchase_return(store=super001, original_receipt_no="R-T2", receipt_no="RR-T2", amount=Decimal("300.00"),
                    occurred_at=in_window + timedelta(hours=1))
    purchase_record(store=super001, member=members["t3"].member, receipt_no="R-T3", amount=Decimal("400.00"),
                    occurred_at=in_window + timedelta(days=3))
    coupon_redeem(code=coupon.code, store=super001, member_no=members["t3"].member.member_no, receipt_no="R-T3",
                  basket_amount=Decimal("400.00"))
    purchase_record(store=dept001, member=members["c0"].member, receipt_no="R-C0", amount=Decimal("100.00"),
                    occurred_at=in_window)
    purchase_record(store=dept001, member=members["t4"].member, receipt_no="R-T4-EARLY", amount=Decimal("999.00"),
                    occurred_at=local(starts_on - timedelta(days=1), 23, 59))
    now = timezone.now()
    CampaignMember.objects.filter(pk__in=[members["t0"].pk, members["t5"].pk]).update(reached_at=now)
    return campaign, members


def interval(values_t, values_c):
    """The Welch interval computed independently, with the statistics module."""
    diff = statistics.mean(values_t) - statistics.mean(values_c)
    se = math.sqrt(statistics.variance(values_t) / len(values_t) + statistics.variance(values_c) / len(values_c))
    return diff, diff - Z_95 * se, diff + Z_95 * se


def test_the_window_runs_from_local_midnight_of_the_first_day(planted):
    campaign, _members = planted
    start, end = results_window(campaign)
    assert timezone.localtime(start).time() == time(0, 0)
    assert timezone.localdate(start) == campaign.starts_on
    assert end - start == timedelta(days=30)


def test_overall_row_counts_groups_buyers_net_sales_reach_and_coupons(planted):
    campaign, _members = planted

    [row] = campaign_results(campaign=campaign)

    assert (row["targeted"], row["control"]) == (10, 10)
    assert row["reached"] == 2
    assert row["coupons_redeemed"] == 1
    # t2 returned everything and t4 bought before the window: three targeted buyers, one in control.
    assert (row["buyers_target"], row["buyers_control"]) == (3, 1)
    assert row["sales_target"] == Decimal("750.00")
    assert row["sales_control"] == Decimal("100.00")
    assert row["conversion_target"] == pytest.approx(0.3)
    assert row["conversion_control"] == pytest.approx(0.1)
    assert row["sales_per_member_target"] == Decimal("75.00")
    assert row["sales_per_member_control"] == Decimal("10.00")
    # Cost: the 10.00 coupon redeemed plus 1,000 points given at 100 points a yuan.
    assert row["cost"] == Decimal("20.00")


def test_uplift_in_conversion_has_the_two_proportion_interval(planted):
    campaign, _members = planted

    [row] = campaign_results(campaign=campaign)

    se = math.sqrt(0.3 * 0.7 / 10 + 0.1 * 0.9 / 10)
    assert row["uplift_conversion"] == pytest.approx(0.2)
    assert row["uplift_conversion_low"] == pytest.approx(0.2 - 1.96 * se)
    assert row["uplift_conversion_high"] == pytest.approx(0.2 + 1.96 * se)
    assert row["uplift_conversion_low"] < 0 < row["uplift_conversion_high"]


def test_uplift_in_sales_per_member_has_the_welch_interval(planted):
    campaign, _members = planted

    [row] = campaign_results(campaign=campaign)

    diff, low, high = interval([150, 200, 0, 400, 0, 0, 0, 0, 0, 0], [100] + [0] * 9)
    assert row["uplift_sales_per_member"] == Decimal("65.00") == Decimal(str(diff)).quantize(Decimal("0.01"))
    assert row["uplift_sales_per_member_low"] == Decimal(str(low)).quantize(Decimal("0.01"))
    assert row["uplift_sales_per_member_high"] == Decimal(str(high)).quantize(Decimal("0.01"))


def test_rows_per_store_follow_the_members_registering_store(planted, dept001, super001):
    campaign, _members = planted

    rows = {row["key"]: row for row in campaign_results(campaign=campaign, by="store")}

    assert set(rows) == {"DEPT001", "SUPER001"}
    dept, superstore = rows["DEPT001"], rows["SUPER001"]
    assert (dept["targeted"], dept["control"], superstore["targeted"], superstore["control"]) == (5, 5, 5, 5)
    # t0, t1 and t3 registered at DEPT001: their sales count there wherever they bought (t3 at SUPER001).
    assert (dept["buyers_target"], dept["sales_target"]) == (3, Decimal("750.00"))
    assert (superstore["buyers_target"], superstore["sales_target"]) == (0, Decimal("0.00"))
    assert (dept["buyers_control"], superstore["buyers_control"]) == (1, 0)
    assert (dept["reached"], superstore["reached"]) == (1, 1)
    assert (dept["coupons_redeemed"], superstore["coupons_redeemed"]) == (1, 0)
    assert dept["cost"] == Decimal("15.00")  # 500 points and the coupon
    assert superstore["cost"] == Decimal("5.00")  # 500 points


def test_rows_per_format_use_where_the_purchase_was_made(planted):
    campaign, _members = planted

    rows = {row["key"]: row for row in campaign_results(campaign=campaign, by="format")}

    dept, superstore = rows["DEPT"], rows["SUPER"]
    assert (dept["targeted"], dept["control"]) == (10, 10)
    assert (dept["buyers_target"], dept["sales_target"], dept["buyers_control"]) == (2, Decimal("300.00"), 1)
    assert (superstore["buyers_target"], superstore["sales_target"]) == (2, Decimal("450.00"))
    assert superstore["coupons_redeemed"] == 1
    assert superstore["cost"] == Decimal("10.00")
    assert dept["conversion_target"] == pytest.approx(0.2)


def test_a_store_managers_view_holds_only_their_stores_members(planted, dept001):
    campaign, _members = planted

    [row] = campaign_results(campaign=campaign, store_ids=[dept001.pk])

    assert (row["targeted"], row["control"], row["sales_target"]) == (5, 5, Decimal("750.00"))
    assert campaign_results(campaign=campaign, store_ids=[])[0]["targeted"] == 0


def test_an_empty_group_gives_no_interval(planted):
    campaign, _members = planted
    CampaignMember.objects.filter(campaign=campaign, group=CONTROL).delete()

    [row] = campaign_results(campaign=campaign)

    assert row["control"] == 0
    assert row["uplift_conversion"] is None and row["uplift_sales_per_member_low"] is None


def test_results_take_a_bounded_number_of_queries(planted, django_assert_max_num_queries):
    campaign, _members = planted

    with django_assert_max_num_queries(6):
        campaign_results(campaign=campaign, by="store")


def test_call_list_holds_the_stores_targeted_callers_not_called_first(planted, dept001):
    campaign, members = planted
    CampaignMember.objects.filter(pk__in=[members["t0"].pk, members["t1"].pk, members["c1"].pk]).update(
        channel=CampaignMember.Channel.CALL)
    CampaignMember.objects.filter(pk=members["t0"].pk).update(call_outcome=CampaignMember.CallOutcome.NO_ANSWER)

    listed = list(call_list(campaign=campaign, store=dept001))

    assert [item.pk for item in listed] == [members["t1"].pk, members["t0"].pk]
