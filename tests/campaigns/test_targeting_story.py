"""The whole of a targeted campaign as the people who run it see it: a marketer picks the scenario "lapsed 90 days",
narrows it to department stores, runs it with a 10% control group and a coupon, prints paper-mail letters for the
members without a phone, DEPT001's clerks work their call list at the desk, a member redeems the coupon at a till,
and the results page shows reach, conversion and uplift against the control group."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.models import CallAttempt, CampaignMember, Coupon, Segment, TargetedCampaign
from campaigns.queries_targeting import campaign_results
from campaigns.services import campaign_save, campaign_submit, targeted_campaigns_switch
from core.models import PersonalDataAccess
from membership.models import Member
from membership.services import purchase_record
from stores.models import StaffProfile
from tests.campaigns.conftest import CouponTemplateFactory, till_client
from tests.factories import StaffFactory
from tests.membership.conftest import register

pytestmark = pytest.mark.django_db
MAIL, CALL = Member.ContactChannel.MAIL, Member.ContactChannel.CALL


@pytest.fixture
def lapsed_members(dept001, super001):
    """Forty DEPT001 members who last bought 120 days ago (ten without a phone who read letters, ten who prefer a
    call, twenty by SMS), one lapsed SUPER001 member, one DEPT001 member who bought last week."""
    long_ago = timezone.now() - timedelta(days=120)
    members = []
    for index in range(40):
        if index < 10:
            fields = {"phone": "", "family_phone": f"1360000{index:04d}", "address": f"重庆市渝中区解放碑{index}号",
                      "contact_channel": MAIL}
        elif index < 20:
            fields = {"phone": f"1390000{index:04d}", "contact_channel": CALL}
        else:
            fields = {"phone": f"1380000{index:04d}"}
        members.append(register(name=f"老顾客{index}", store=dept001, marketing_consent=True, **fields))
    elsewhere = register(name="超市老顾客", phone="13700000001", store=super001, marketing_consent=True)
    recent = register(name="常客", phone="13700000002", store=dept001, marketing_consent=True)
    for number, member in enumerate([*members, elsewhere]):
        store = super001 if member is elsewhere else dept001
        purchase_record(store=store, member=member, receipt_no=f"OLD-{number}", amount=Decimal("300.00"),
                        occurred_at=long_ago)
    purchase_record(store=dept001, member=recent, receipt_no="RECENT-1", amount=Decimal("300.00"),
                    occurred_at=timezone.now() - timedelta(days=7))
    return {"dept": members, "elsewhere": elsewhere, "recent": recent}


@pytest.fixture
def marketer(reference_stores):
    return StaffFactory(username="story_marketer", scope=StaffProfile.Scope.HQ, group="市场营销",
                        permissions=["campaigns.export_campaign_contacts"])


def admin_client(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(user)
    return client


def test_a_win_back_campaign_from_scenario_to_uplift(lapsed_members, marketer, dept001):
    staff = admin_client(marketer)
    template = CouponTemplateFactory(code="WINBACK20", name="回归礼20元", amount=Decimal("20.00"), valid_days=30,
                                     formats=["DEPT"])

    # The marketer starts from the scenario gallery: "lapsed 90 days".
    gallery = staff.get(reverse("admin:campaigns_segment_scenarios"))
    assert gallery.status_code == 200
    response = staff.post(reverse("admin:campaigns_segment_scenario_use", args=["lapsed_90d"]))
    assert response.status_code == 302, response.content
    campaign = TargetedCampaign.objects.get()
    segment = campaign.segment
    assert campaign.status == TargetedCampaign.Status.DRAFT and segment.scenario == "lapsed_90d"

    # ... narrows the segment to department stores in the builder (the live count answers first) ...
    rules = json.loads(json.dumps(segment.rules))
    rules["conditions"].append({"field": "registered_format", "formats": ["DEPT"]})
    count = staff.post(reverse("admin:campaigns_segment_count"), data=json.dumps({"rules": rules}),
                       content_type="application/json")
    assert count.status_code == 200, count.content
    assert count.json()["count"] == 40
    change = staff.post(reverse("admin:campaigns_segment_change", args=[segment.pk]), data={
        "name": segment.name, "description": segment.description, "purpose": Segment.Purpose.MARKETING,
        "rules": json.dumps(rules), "_continue": "1",
    })
    assert change.status_code == 302, change.content.decode()[:3000]
    segment.refresh_from_db()
    assert {"field": "registered_format", "formats": ["DEPT"]} in segment.rules["conditions"]

    # ... sets a 10% control group, the coupon and a call list, and submits it (no policy: scheduled at once).
    today = timezone.localdate()
    campaign = campaign_save(campaign=campaign, operator=marketer, values={
        "name": campaign.name, "segment": segment, "starts_on": today,
        "ends_on": today + timedelta(days=13), "control_percent": 10, "budget": Decimal("2000.00"),
        "coupon_template": template, "call_list": True, "message_text": campaign.message_text,
        "result_days": 30,
    })
    campaign_submit(campaign=campaign, operator=marketer)
    campaign.refresh_from_db()
    assert campaign.status == TargetedCampaign.Status.SCHEDULED

    # On its first day the switch starts it: 40 members, about 10% held out.
    targeted_campaigns_switch(today=today)
    campaign.refresh_from_db()
    assert campaign.status == TargetedCampaign.Status.RUNNING
    members = CampaignMember.objects.filter(campaign=campaign)
    assert members.count() == 40 == campaign.target_count + campaign.control_count
    assert 1 <= campaign.control_count <= 10
    assert not members.filter(member=lapsed_members["elsewhere"]).exists()
    assert not members.filter(member=lapsed_members["recent"]).exists()
    targeted = members.filter(group=CampaignMember.Group.TARGET)
    assert targeted.filter(coupon__isnull=False).count() == campaign.target_count
    assert not members.filter(group=CampaignMember.Group.CONTROL, coupon__isnull=False).exists()

    # Paper-mail letters for the members without a phone: printed, logged, and counted as reached.
    mail = targeted.filter(channel=CampaignMember.Channel.MAIL)
    assert mail.exists() and all(not row.member.phone for row in mail.select_related("member"))
    letters = staff.get(reverse("admin:campaigns_targetedcampaign_letters", args=[campaign.pk]))
    assert letters.status_code == 200
    page = letters.content.decode()
    for row in mail.select_related("member"):
        assert row.member.name in page and row.member.address in page
    assert PersonalDataAccess.objects.filter(user=marketer, action=PersonalDataAccess.Action.EXPORT).exists()
    assert mail.filter(reached_at__isnull=False).count() == mail.count()

    # DEPT001's clerk works the call list at the desk.
    calls = targeted.filter(channel=CampaignMember.Channel.CALL, store=dept001)
    assert calls.exists()
    clerk = StaffFactory(username="story_desk", group="服务台", stores=[dept001])
    desk = admin_client(clerk)
    listing = desk.get(reverse("calls:list", args=[campaign.pk]))
    assert listing.status_code == 200
    first, second = calls.order_by("pk")[:2]
    assert first.member.name in listing.content.decode()
    answered = desk.post(reverse("calls:member", args=[campaign.pk, first.pk]),
                         data={"outcome": "reached", "note": "会来店里看看"})
    assert answered.status_code == 302, answered.content.decode()[:2000]
    desk.post(reverse("calls:member", args=[campaign.pk, second.pk]), data={"outcome": "no_answer", "note": ""})
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.reached_at is not None and first.call_outcome == "reached"
    assert second.reached_at is None and second.call_outcome == "no_answer"
    assert CallAttempt.objects.filter(campaign_member__campaign=campaign).count() == 2

    # A targeted member redeems the coupon at a DEPT001 till and buys; one control member buys too.
    buyer = targeted.select_related("coupon", "member").order_by("pk").first()
    till = till_client("DEPT001", "STORY-T1")
    redeemed = till.post(f"/api/v1/coupons/{buyer.coupon.code}/redeem", content_type="application/json",
                         data=json.dumps({"member_no": buyer.member.member_no, "receipt_no": "STORY-R-1",
                                          "basket_amount": "400.00"}),
                         HTTP_IDEMPOTENCY_KEY="story-redeem-1")
    assert redeemed.status_code == 201, redeemed.content
    buyer.coupon.refresh_from_db()
    assert buyer.coupon.status == Coupon.Status.REDEEMED
    started = timezone.now()
    purchase_record(store=dept001, member=buyer.member, receipt_no="STORY-R-1", amount=Decimal("380.00"),
                    occurred_at=started)
    control = members.filter(group=CampaignMember.Group.CONTROL).select_related("member").order_by("pk").first()
    purchase_record(store=dept001, member=control.member, receipt_no="STORY-C-1", amount=Decimal("100.00"),
                    occurred_at=started)

    # The results: reach, coupons redeemed, conversion and uplift against the control group.
    overall = campaign_results(campaign=campaign)[0]
    assert overall["targeted"] == campaign.target_count and overall["control"] == campaign.control_count
    assert overall["reached"] == mail.count() + 1
    assert overall["coupons_redeemed"] == 1
    assert overall["buyers_target"] == 1 and overall["buyers_control"] == 1
    assert overall["sales_target"] == Decimal("380.00") and overall["sales_control"] == Decimal("100.00")
    expected = Decimal(1) / campaign.target_count - Decimal(1) / campaign.control_count
    assert abs(Decimal(str(overall["uplift_conversion"])) - expected) < Decimal("0.0001")
    assert overall["uplift_conversion_low"] < overall["uplift_conversion"] < overall["uplift_conversion_high"]
    page = staff.get(reverse("admin:campaigns_targetedcampaign_change", args=[campaign.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert "380.00" in text and "对照组" in text
