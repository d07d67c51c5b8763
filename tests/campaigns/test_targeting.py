"""Targeted campaign services (campaigns/services/targeting.py): drafting, approval, the start with its stable
control group, channels and actions, overlaps, reach, the call list at the desk and the nightly switch."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from approvals.errors import SelfApprovalForbidden
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from campaigns.errors import CallNotAllowed, CampaignInvalid
from campaigns.models import (
    CallAttempt,
    CampaignMember,
    Coupon,
    CouponBatch,
    CouponTemplate,
    Segment,
    SegmentMember,
    SegmentSnapshot,
    TargetedCampaign,
)
from campaigns.services import (
    TARGETED_CAMPAIGN_START,
    call_record,
    campaign_cancel,
    campaign_end,
    campaign_estimate,
    campaign_overlaps,
    campaign_save,
    campaign_start,
    campaign_submit,
    contacts_mark_reached,
    control_group,
    member_channel,
    message_fill,
    segment_save,
    targeted_campaigns_switch,
)
from campaigns.tasks import targeted_campaigns_switch as switch_task
from core.schedules import JOB_LABELS, NIGHTLY
from membership.models import Member, MemberTag, PointsEntry, Tag
from stores.models import LegalEntity, StaffProfile
from tests.campaigns.conftest import CouponTemplateFactory
from tests.factories import ApprovalPolicyFactory, StaffFactory
from tests.membership.conftest import register

pytestmark = pytest.mark.django_db
Status = TargetedCampaign.Status
TARGET, CONTROL = CampaignMember.Group.TARGET, CampaignMember.Group.CONTROL
CONSENT = {"match": "all", "conditions": [{"field": "marketing_consent", "value": True}]}


@pytest.fixture
def marketer(db):
    return StaffFactory(username="marketer", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def approver(db):
    return StaffFactory(username="campaign_approver", scope=StaffProfile.Scope.HQ,
                        permissions=["campaigns.approve_targeted_campaign"])


@pytest.fixture
def budget_policy(db):
    """A campaign with a budget of 10,000.00 or more needs a second person with approve_targeted_campaign."""
    return ApprovalPolicyFactory(action=TARGETED_CAMPAIGN_START, min_amount=Decimal("10000.00"),
                                 permission="campaigns.approve_targeted_campaign")


@pytest.fixture
def consenting(dept001, super001):
    """Twelve members who agreed to marketing: eight at DEPT001 preferring SMS, four at SUPER001 (WeChat)."""
    members = [register(name=f"会员{index}", phone=f"1380000{index:04d}", store=dept001, marketing_consent=True)
               for index in range(8)]
    members += [register(name=f"微信会员{index}", phone=f"1370000{index:04d}", store=super001, marketing_consent=True,
                         contact_channel=Member.ContactChannel.WECHAT) for index in range(4)]
    return members


@pytest.fixture
def not_consenting(dept001):
    return register(name="未同意", phone="13600000000", store=dept001)


@pytest.fixture
def segment(marketer, consenting):
    return segment_save(name="同意营销的会员", purpose=Segment.Purpose.MARKETING, rules=CONSENT, operator=marketer)


@pytest.fixture
def service_segment(marketer, dept001):
    return segment_save(name="解放碑店老会员回访", purpose=Segment.Purpose.SERVICE, operator=marketer, rules={
        "match": "all", "conditions": [{"field": "registered_store", "stores": ["DEPT001"]}]})


@pytest.fixture
def coupon_template(reference_stores):
    return CouponTemplateFactory(code="TC10", name="定向10元券", amount=Decimal("10.00"), valid_days=30)


@pytest.fixture
def company(reference_stores):
    return LegalEntity.objects.order_by("pk").first()


def values(segment, /, **changes) -> dict:
    tomorrow = timezone.localdate() + timedelta(days=1)
    return {"name": "沉睡会员唤醒", "segment": segment, "starts_on": tomorrow, "ends_on": tomorrow + timedelta(days=13),
            "control_percent": 25, "budget": Decimal("5000.00"), "message_text": "{name}您好，送您一张10元券。",
            **changes}


def draft(segment, operator, /, **changes) -> TargetedCampaign:
    return campaign_save(values=values(segment, **changes), operator=operator)


def scheduled(segment, operator, **changes) -> TargetedCampaign:
    campaign = draft(segment, operator, **changes)
    campaign_submit(campaign=campaign, operator=operator, reason="测试")
    campaign.refresh_from_db()
    assert campaign.status == Status.SCHEDULED
    return campaign


def running(segment, operator, **changes) -> TargetedCampaign:
    return campaign_start(campaign=scheduled(segment, operator, **changes))


def fields_of(call) -> dict:
    with pytest.raises(CampaignInvalid) as caught:
        call()
    return caught.value.fields or {}


# --- drafting -----------------------------------------------------------------------------------------------------


def test_a_new_draft_gets_a_dated_code_and_the_values(segment, marketer):
    campaign = draft(segment, marketer)

    assert campaign.status == Status.DRAFT
    assert campaign.code == f"TC{timezone.localdate():%Y%m%d}001"
    assert draft(segment, marketer).code.endswith("002")
    assert (campaign.control_percent, campaign.budget, campaign.created_by) == (25, Decimal("5000.00"), marketer)
    assert campaign.history.count() == 1


@pytest.mark.parametrize(("changes", "field"), [
    ({"ends_on": timezone.localdate()}, "ends_on"),
    ({"starts_on": timezone.localdate() - timedelta(days=1)}, "starts_on"),
    ({"control_percent": 60}, "control_percent"),
    ({"control_percent": "ten"}, "control_percent"),
    ({"budget": "-1"}, "budget"),
    ({"budget": "12.345"}, "budget"),
    ({"name": " "}, "name"),
    ({"segment": None}, "segment"),
    ({"points": 50}, "legal_entity"),
    ({"message_text": "{name} 您好 {phone}"}, "message_text"),
    ({"message_text": "", "coupon_template": None}, "coupon_template"),
    ({"result_days": 0}, "result_days"),
    ({"status": "running"}, "status"),
    ({"code": "tc-1"}, "code"),
])
def test_bad_values_are_refused_naming_the_field(segment, marketer, changes, field):
    assert field in fields_of(lambda: draft(segment, marketer, **changes))
    assert not TargetedCampaign.objects.exists()


def test_an_ended_coupon_template_is_refused(segment, marketer, coupon_template):
    CouponTemplate.objects.filter(pk=coupon_template.pk).update(status=CouponTemplate.Status.ENDED)
    coupon_template.refresh_from_db()

    assert "coupon_template" in fields_of(lambda: draft(segment, marketer, coupon_template=coupon_template))


def test_a_service_segment_allows_only_a_call_list_and_a_tag(service_segment, marketer, coupon_template, company):
    tag = Tag.objects.create(name="已回访")

    errors = fields_of(lambda: draft(service_segment, marketer, coupon_template=coupon_template, points=100,
                                     legal_entity=company))

    assert {"coupon_template", "points", "message_text"} <= set(errors)
    assert "marketing needs consent" in errors["points"][0]
    campaign = draft(service_segment, marketer, message_text="", call_list=True, tag=tag, call_script="您好")
    assert campaign.call_list and campaign.tag == tag


def test_only_a_draft_changes(segment, marketer):
    campaign = scheduled(segment, marketer)

    with pytest.raises(CampaignInvalid, match="only a draft can be changed"):
        campaign_save(campaign=campaign, values={"name": "改名"}, operator=marketer)


def test_a_draft_changes_only_the_values_given(segment, marketer):
    campaign = draft(segment, marketer)

    campaign_save(campaign=campaign, values={"name": "改名", "control_percent": 10}, operator=marketer)

    campaign.refresh_from_db()
    assert (campaign.name, campaign.control_percent, campaign.budget) == ("改名", 10, Decimal("5000.00"))


# --- estimate, budget, approval -----------------------------------------------------------------------------------


def test_the_estimate_splits_the_segment_and_prices_coupon_and_points(segment, marketer, coupon_template, company):
    campaign = draft(segment, marketer, coupon_template=coupon_template, points=200, legal_entity=company)

    estimate = campaign_estimate(campaign=campaign)

    # 12 members, 25% held out: 3 control, 9 targeted; 9 x (10.00 + 200 points at 100 points a yuan).
    assert (estimate["members"], estimate["target"], estimate["control"]) == (12, 9, 3)
    assert estimate["cost_max"] == Decimal("108.00")


def test_a_cost_above_the_budget_is_refused_with_both_figures(segment, marketer, coupon_template):
    campaign = draft(segment, marketer, coupon_template=coupon_template, budget=Decimal("50.00"))

    errors = fields_of(lambda: campaign_submit(campaign=campaign, operator=marketer))

    assert "90.00" in errors["budget"][0] and "50.00" in errors["budget"][0]
    campaign.refresh_from_db()
    assert campaign.status == Status.DRAFT
    assert not ApprovalRequest.objects.exists()


def test_a_percent_coupon_without_a_cap_cannot_be_priced(segment, marketer):
    template = CouponTemplateFactory(kind=CouponTemplate.Kind.PERCENT_OFF, percent=Decimal("10"), amount=0,
                                     valid_days=30)
    campaign = draft(segment, marketer, coupon_template=template)

    assert "coupon_template" in fields_of(lambda: campaign_submit(campaign=campaign, operator=marketer))


def test_without_a_policy_a_submitted_campaign_is_scheduled_at_once(segment, marketer):
    campaign = draft(segment, marketer)

    request = campaign_submit(campaign=campaign, operator=marketer, reason="唤醒")

    campaign.refresh_from_db()
    assert campaign.status == Status.SCHEDULED
    assert (request.status, request.action, request.amount) == (
        ApprovalRequest.Status.APPROVED, TARGETED_CAMPAIGN_START, Decimal("5000.00"))
    assert request.payload["target"] == 9 and request.payload["control"] == 3


def test_above_the_policy_it_waits_then_an_approver_schedules_it(segment, marketer, approver, budget_policy):
    campaign = draft(segment, marketer, budget=Decimal("20000.00"))

    request = campaign_submit(campaign=campaign, operator=marketer, reason="大额")

    campaign.refresh_from_db()
    assert (campaign.status, request.status) == (Status.PENDING, ApprovalRequest.Status.PENDING)
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=request, approver=marketer)
    approval_request_approve(approval_request=request, approver=approver)
    campaign.refresh_from_db()
    assert campaign.status == Status.SCHEDULED


def test_a_rejected_campaign_is_a_draft_again(segment, marketer, approver, budget_policy):
    campaign = draft(segment, marketer, budget=Decimal("20000.00"))
    request = campaign_submit(campaign=campaign, operator=marketer)

    approval_request_reject(approval_request=request, approver=approver, comment="预算太高")

    campaign.refresh_from_db()
    assert campaign.status == Status.DRAFT
    campaign_save(campaign=campaign, values={"budget": Decimal("9000.00")}, operator=marketer)


def test_approved_on_its_first_day_it_starts_after_the_commit(segment, marketer, approver, budget_policy,
                                                             django_capture_on_commit_callbacks):
    campaign = draft(segment, marketer, budget=Decimal("20000.00"), starts_on=timezone.localdate())
    request = campaign_submit(campaign=campaign, operator=marketer)

    with django_capture_on_commit_callbacks(execute=True):
        approval_request_approve(approval_request=request, approver=approver)

    campaign.refresh_from_db()
    assert campaign.status == Status.RUNNING
    assert campaign.target_count + campaign.control_count == 12


def test_only_a_draft_is_submitted(segment, marketer):
    campaign = scheduled(segment, marketer)

    with pytest.raises(CampaignInvalid, match="only a draft can be submitted"):
        campaign_submit(campaign=campaign, operator=marketer)


# --- overlaps -----------------------------------------------------------------------------------------------------


def test_overlapping_campaigns_on_the_same_members_are_named_before_approval(segment, marketer, dept001):
    first = scheduled(segment, marketer, name="第一个")
    later = timezone.localdate() + timedelta(days=30)
    draft(segment, marketer, name="不重叠", starts_on=later, ends_on=later + timedelta(days=3))
    dept_only = segment_save(name="解放碑店", purpose=Segment.Purpose.MARKETING, operator=marketer, rules={
        "match": "all", "conditions": [{"field": "marketing_consent", "value": True},
                                       {"field": "registered_store", "stores": ["DEPT001"]}]})
    second = draft(dept_only, marketer, name="第二个")

    assert campaign_overlaps(campaign=second) == [(first, 8)]
    request = campaign_submit(campaign=second, operator=marketer)
    assert first.code in request.reason and "8" in request.reason
    assert request.payload["overlaps"] == [{"code": first.code, "name": "第一个", "members": 8}]


def test_a_started_campaign_overlaps_by_its_members(segment, marketer):
    first = running(segment, marketer)
    second = draft(segment, marketer)

    assert campaign_overlaps(campaign=second) == [(first, 12)]


# --- the start ----------------------------------------------------------------------------------------------------


def test_start_records_every_member_in_the_group_the_hash_gives(segment, marketer):
    campaign = running(segment, marketer)

    rows = list(CampaignMember.objects.filter(campaign=campaign))
    assert len(rows) == 12
    for row in rows:
        assert row.group == (CONTROL if control_group(campaign.pk, row.member_id, 25) else TARGET)
    assert campaign.status == Status.RUNNING and campaign.started_at is not None
    assert campaign.target_count == sum(row.group == TARGET for row in rows)
    assert campaign.control_count == 12 - campaign.target_count
    assert campaign.snapshot.status == SegmentSnapshot.Status.DONE
    assert SegmentMember.objects.filter(snapshot=campaign.snapshot).count() == 12


def test_the_split_is_stable_and_near_the_share():
    first = [control_group(7, member_id, 10) for member_id in range(1, 2001)]

    assert first == [control_group(7, member_id, 10) for member_id in range(1, 2001)]
    assert 160 <= sum(first) <= 240
    assert not any(control_group(7, member_id, 0) for member_id in range(1, 2001))
    assert sum(control_group(8, member_id, 10) for member_id in range(1, 2001)) != sum(first) or \
        [control_group(8, m, 10) for m in range(1, 2001)] != first


def test_a_second_start_changes_nothing(segment, marketer, coupon_template):
    campaign = running(segment, marketer, coupon_template=coupon_template)
    before = (CampaignMember.objects.count(), Coupon.objects.count(), SegmentSnapshot.objects.count())

    again = campaign_start(campaign=campaign)

    assert again.status == Status.RUNNING
    assert (CampaignMember.objects.count(), Coupon.objects.count(), SegmentSnapshot.objects.count()) == before


def test_only_a_scheduled_campaign_starts(segment, marketer):
    campaign = draft(segment, marketer)

    with pytest.raises(CampaignInvalid, match="only a scheduled campaign can start"):
        campaign_start(campaign=campaign)


def test_targeted_members_get_the_coupon_points_and_tag_the_control_group_nothing(
        segment, marketer, coupon_template, company, consenting):
    tag = Tag.objects.create(name="唤醒活动")
    MemberTag.objects.create(member=consenting[0], tag=tag)

    campaign = running(segment, marketer, coupon_template=coupon_template, points=200, legal_entity=company, tag=tag)

    targeted = CampaignMember.objects.filter(campaign=campaign, group=TARGET)
    control = CampaignMember.objects.filter(campaign=campaign, group=CONTROL)
    assert targeted.count() == campaign.target_count > 0 and control.exists()
    for row in targeted.select_related("coupon"):
        assert row.coupon.member_id == row.member_id
        assert row.coupon.batch.channel == CouponBatch.Channel.SEGMENT
        assert row.coupon.batch.source_name == campaign.code
        assert row.points_given == 200
    assert not control.filter(coupon__isnull=False).exists()
    assert not control.exclude(points_given=0).exists()
    entries = PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUST, cause_id=str(campaign.pk), points=200)
    assert set(entries.values_list("member_id", flat=True)) == set(targeted.values_list("member_id", flat=True))
    assert entries.first().cause == campaign and entries.first().legal_entity == company
    tagged = set(MemberTag.objects.filter(tag=tag).values_list("member_id", flat=True))
    assert set(targeted.values_list("member_id", flat=True)) <= tagged
    assert not (set(control.values_list("member_id", flat=True)) - {consenting[0].pk}) & tagged
    coupon_template.refresh_from_db()
    assert coupon_template.issued_count == campaign.target_count


def test_members_who_withdrew_consent_before_the_start_are_left_out(segment, marketer, consenting):
    campaign = scheduled(segment, marketer)
    Member.objects.filter(pk=consenting[0].pk).update(marketing_consent=False)

    campaign_start(campaign=campaign)

    assert not CampaignMember.objects.filter(campaign=campaign, member=consenting[0]).exists()
    assert CampaignMember.objects.filter(campaign=campaign).count() == 11


def test_a_marketing_segment_that_lost_its_consent_rule_does_not_start(segment, marketer, not_consenting):
    campaign = scheduled(segment, marketer)
    Segment.objects.filter(pk=segment.pk).update(rules={
        "match": "all", "conditions": [{"field": "registered_store", "stores": ["DEPT001"]}]})

    errors = fields_of(lambda: campaign_start(campaign=campaign))

    assert "segment" in errors
    campaign.refresh_from_db()
    assert campaign.status == Status.SCHEDULED and not CampaignMember.objects.exists()


def test_a_template_without_enough_coupons_left_starts_nothing(segment, marketer, coupon_template):
    CouponTemplate.objects.filter(pk=coupon_template.pk).update(total_quantity=3)
    campaign = scheduled(segment, marketer, coupon_template=coupon_template)

    with pytest.raises(CampaignInvalid, match="coupons left to issue") as caught:
        campaign_start(campaign=campaign)

    assert "coupon_template" in caught.value.fields
    campaign.refresh_from_db()
    assert campaign.status == Status.SCHEDULED
    assert not CampaignMember.objects.exists() and not Coupon.objects.exists()
    assert not SegmentSnapshot.objects.exists()


def test_a_paused_template_starts_nothing(segment, marketer, coupon_template):
    campaign = scheduled(segment, marketer, coupon_template=coupon_template)
    CouponTemplate.objects.filter(pk=coupon_template.pk).update(status=CouponTemplate.Status.PAUSED)

    with pytest.raises(CampaignInvalid, match="not active"):
        campaign_start(campaign=campaign)

    assert not CampaignMember.objects.exists()


# --- channels -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("preferred", "phone", "family_phone", "address", "call_list", "expected"), [
    ("sms", "13800000000", "", "", False, "sms"),
    ("sms", "", "", "解放碑1号", False, "mail"),
    ("sms", "", "", "", False, "none"),
    ("wechat", "", "", "", False, "wechat"),
    ("mail", "13800000000", "", "解放碑1号", False, "mail"),
    ("mail", "13800000000", "", "", False, "none"),
    ("call", "13800000000", "", "", True, "call"),
    ("call", "", "13900000000", "", True, "call"),
    ("call", "13800000000", "", "", False, "none"),
    ("call", "", "", "解放碑1号", True, "mail"),
    ("none", "", "", "解放碑1号", True, "none"),
])
def test_the_channel_follows_the_preference_with_fallbacks(preferred, phone, family_phone, address, call_list,
                                                           expected):
    assert member_channel(contact_channel=preferred, phone=phone, family_phone=family_phone, address=address,
                          call_list=call_list, has_store=True) == expected


def test_a_caller_without_a_store_cannot_be_on_a_call_list():
    assert member_channel(contact_channel="call", phone="13800000000", family_phone="", address="",
                          call_list=True, has_store=False) == "none"


def test_each_member_is_recorded_with_a_channel_and_the_registering_store(marketer, dept001):
    elderly = register(name="张秀英", family_phone="13900001111", store=dept001, marketing_consent=True,
                       contact_channel=Member.ContactChannel.CALL)
    letter = register(name="王大爷", family_phone="13900002222", address="解放碑路1号", store=dept001,
                      marketing_consent=True, contact_channel=Member.ContactChannel.SMS)
    segment = segment_save(name="全部", purpose=Segment.Purpose.MARKETING, rules=CONSENT, operator=marketer)

    campaign = running(segment, marketer, call_list=True)

    rows = {row.member_id: row for row in CampaignMember.objects.filter(campaign=campaign)}
    assert (rows[elderly.pk].channel, rows[elderly.pk].store) == (CampaignMember.Channel.CALL, dept001)
    assert rows[letter.pk].channel == CampaignMember.Channel.MAIL


def test_a_service_campaign_reaches_only_by_call(service_segment, marketer, not_consenting, dept001):
    caller = register(name="回访对象", phone="13500000001", store=dept001, contact_channel=Member.ContactChannel.CALL)

    campaign = running(service_segment, marketer, message_text="", call_list=True)

    rows = {row.member_id: row.channel for row in CampaignMember.objects.filter(campaign=campaign)}
    assert rows[caller.pk] == CampaignMember.Channel.CALL
    assert rows[not_consenting.pk] == CampaignMember.Channel.NONE


# --- reach --------------------------------------------------------------------------------------------------------


def test_exporting_a_message_list_marks_the_targeted_members_reached(segment, marketer):
    campaign = running(segment, marketer)
    sms_targets = CampaignMember.objects.filter(campaign=campaign, group=TARGET, channel="sms")

    assert contacts_mark_reached(campaign=campaign, channel="sms") == sms_targets.count() > 0
    assert not sms_targets.filter(reached_at__isnull=True).exists()
    assert not CampaignMember.objects.filter(campaign=campaign, group=CONTROL, reached_at__isnull=False).exists()
    assert not CampaignMember.objects.filter(campaign=campaign, channel="wechat", reached_at__isnull=False).exists()
    assert contacts_mark_reached(campaign=campaign, channel="sms") == 0
    assert "channel" in fields_of(lambda: contacts_mark_reached(campaign=campaign, channel="call"))


@pytest.fixture
def call_campaign(marketer, dept001, super001):
    """A running service campaign whose DEPT001 caller is on the call list, and one SUPER001 caller."""
    callers = [register(name="王奶奶", family_phone="13900003333", store=dept001,
                        contact_channel=Member.ContactChannel.CALL),
               register(name="李爷爷", phone="13500000002", store=super001,
                        contact_channel=Member.ContactChannel.CALL)]
    segment = segment_save(name="电话回访", purpose=Segment.Purpose.SERVICE, operator=marketer, rules={
        "match": "all", "conditions": [{"field": "contact_channel", "channels": ["call"]}]})
    campaign = running(segment, marketer, message_text="", call_list=True, control_percent=0)
    rows = {row.member_id: row for row in CampaignMember.objects.filter(campaign=campaign)}
    return campaign, rows[callers[0].pk], rows[callers[1].pk]


def test_a_clerk_records_a_call_of_their_store(call_campaign, dept001, dept001_clerk):
    _campaign, dept_row, _super_row = call_campaign

    call_record(campaign_member=dept_row, outcome="no_answer", note="无人接听", user=dept001_clerk, store=dept001)
    attempt = call_record(campaign_member=dept_row, outcome="reached", note="已告知", user=dept001_clerk,
                          store=dept001)

    dept_row.refresh_from_db()
    assert (dept_row.call_outcome, attempt.called_by, attempt.store) == ("reached", dept001_clerk, dept001)
    assert dept_row.reached_at is not None
    assert CallAttempt.objects.filter(campaign_member=dept_row).count() == 2


def test_another_stores_clerk_may_not_record_a_call(call_campaign, dept001, super001, dept001_clerk):
    _campaign, dept_row, super_row = call_campaign
    super_clerk = StaffFactory(username="super001_desk", group="服务台", stores=[super001])

    with pytest.raises(CallNotAllowed):
        call_record(campaign_member=dept_row, outcome="reached", user=super_clerk, store=dept001)
    with pytest.raises(CallNotAllowed):
        call_record(campaign_member=dept_row, outcome="reached", user=super_clerk, store=super001)
    with pytest.raises(CallNotAllowed):
        call_record(campaign_member=super_row, outcome="reached", user=dept001_clerk, store=dept001)
    assert not CallAttempt.objects.exists()


def test_a_call_needs_a_known_outcome_and_a_short_note(call_campaign, dept001, dept001_clerk):
    _campaign, dept_row, _super_row = call_campaign

    assert "outcome" in fields_of(lambda: call_record(campaign_member=dept_row, outcome="maybe", user=dept001_clerk,
                                                      store=dept001))
    assert "note" in fields_of(lambda: call_record(campaign_member=dept_row, outcome="reached", note="长" * 201,
                                                   user=dept001_clerk, store=dept001))


def test_calls_stop_when_the_campaign_ends(call_campaign, dept001, dept001_clerk):
    campaign, dept_row, _super_row = call_campaign
    campaign_end(campaign=campaign)

    with pytest.raises(CampaignInvalid):
        call_record(campaign_member=dept_row, outcome="reached", user=dept001_clerk, store=dept001)


# --- cancel and end -----------------------------------------------------------------------------------------------


def test_a_draft_or_scheduled_campaign_can_be_cancelled_with_a_reason(segment, marketer):
    campaign = draft(segment, marketer)

    assert "reason" in fields_of(lambda: campaign_cancel(campaign=campaign, operator=marketer, reason=" "))
    campaign_cancel(campaign=campaign, operator=marketer, reason="方案调整")
    campaign.refresh_from_db()
    assert campaign.status == Status.CANCELLED
    other = scheduled(segment, marketer)
    assert campaign_cancel(campaign=other, operator=marketer, reason="取消").status == Status.CANCELLED


def test_cancelling_a_pending_campaign_withdraws_its_request(segment, marketer, approver, budget_policy):
    campaign = draft(segment, marketer, budget=Decimal("20000.00"))
    request = campaign_submit(campaign=campaign, operator=marketer)

    with pytest.raises(CampaignInvalid, match="approvals inbox"):
        campaign_cancel(campaign=campaign, operator=approver, reason="不做了")
    campaign_cancel(campaign=campaign, operator=marketer, reason="不做了")

    campaign.refresh_from_db()
    request.refresh_from_db()
    assert (campaign.status, request.status) == (Status.CANCELLED, ApprovalRequest.Status.CANCELLED)


def test_a_running_campaign_cannot_be_cancelled_only_ended(segment, marketer):
    campaign = running(segment, marketer)

    with pytest.raises(CampaignInvalid, match="has not started"):
        campaign_cancel(campaign=campaign, operator=marketer, reason="取消")
    ended = campaign_end(campaign=campaign)
    assert ended.status == Status.ENDED and ended.ended_at is not None
    assert campaign_end(campaign=campaign).ended_at == ended.ended_at


# --- the nightly switch -------------------------------------------------------------------------------------------


def test_the_switch_starts_on_the_first_day_and_ends_after_the_last(segment, marketer):
    first_day = timezone.localdate() + timedelta(days=1)
    starting = scheduled(segment, marketer, name="明天开始")
    ending = running(segment, marketer, name="已开始", ends_on=first_day)
    one_day = scheduled(segment, marketer, name="只有一天", ends_on=first_day)

    done = targeted_campaigns_switch(today=first_day)
    later = targeted_campaigns_switch(today=first_day + timedelta(days=1))

    assert done == {"ended": [], "started": [starting.code, one_day.code], "cancelled": [], "failed": {}}
    assert later["ended"] == [ending.code, one_day.code]
    for campaign in (starting, ending, one_day):
        campaign.refresh_from_db()
    assert starting.status == Status.RUNNING
    assert ending.status == one_day.status == Status.ENDED


def test_a_scheduled_campaign_whose_days_passed_is_cancelled(segment, marketer):
    campaign = scheduled(segment, marketer)

    done = targeted_campaigns_switch(today=campaign.ends_on + timedelta(days=1))

    campaign.refresh_from_db()
    assert campaign.status == Status.CANCELLED and done["cancelled"] == [campaign.code]
    assert not CampaignMember.objects.exists()


def test_a_campaign_that_cannot_start_is_reported_and_the_others_start(segment, marketer, coupon_template):
    today = timezone.localdate()
    broken = scheduled(segment, marketer, coupon_template=coupon_template, name="券已暂停", starts_on=today)
    fine = scheduled(segment, marketer, name="正常", starts_on=today)
    CouponTemplate.objects.filter(pk=coupon_template.pk).update(status=CouponTemplate.Status.PAUSED)

    done = switch_task.delay().get()  # the Celery task, eager in tests

    assert done["started"] == [fine.code]
    assert "not active" in done["failed"][broken.code]
    broken.refresh_from_db()
    assert broken.status == Status.SCHEDULED
    assert not CampaignMember.objects.filter(campaign=broken).exists()


def test_the_switch_runs_nightly_at_five_past_midnight():
    task, hour, minute, _description = NIGHTLY["campaigns: switch targeted campaigns"]

    assert (task, hour, minute) == ("campaigns.targeted_campaigns_switch", 0, 5)
    assert "campaigns: switch targeted campaigns" in JOB_LABELS
    schedule = PeriodicTask.objects.get(name="campaigns: switch targeted campaigns")
    assert (schedule.crontab.hour, schedule.crontab.minute) == ("0", "5")


# --- the demo -----------------------------------------------------------------------------------------------------


def test_the_demo_loader_makes_an_ended_campaign_with_results_and_a_running_call_list(consenting, dept001):
    from campaigns.demo.targeting import CALLS_CODE, WINBACK_CODE, load
    from campaigns.queries_targeting import campaign_results
    from stores import demo as stores_demo

    stores_demo.seed_staff(password="demo-password-1")
    # Forty consenting members in all, so a 20% control group is never empty by chance (0.8^40 < 0.0002).
    for index in range(28):
        register(name=f"演示会员{index}", phone=f"1350000{index:04d}", store=dept001, marketing_consent=True)

    made = load()

    ended = TargetedCampaign.objects.get(code=WINBACK_CODE)
    assert ended.status == Status.ENDED and ended.starts_on < timezone.localdate() - timedelta(days=30)
    [row] = campaign_results(campaign=ended)
    assert row["targeted"] + row["control"] == 40 and row["control"] > 0
    assert row["reached"] == CampaignMember.objects.filter(campaign=ended, group=TARGET, channel="sms").count()
    calls = TargetedCampaign.objects.get(code=CALLS_CODE)
    assert calls.status == Status.RUNNING and calls.call_list
    assert CallAttempt.objects.filter(campaign_member__campaign=calls, store=dept001).count() == made["calls"] == 3
    assert CampaignMember.objects.filter(campaign=calls, call_outcome="reached", reached_at__isnull=False).count() == 1
    assert load()["campaigns"] == 0


def test_a_message_names_the_member_and_keeps_braces_written_doubled():
    assert message_fill("{name}您好，满{{300}}减30", "张秀英") == "张秀英您好，满{300}减30"
    # A text saved before the check that does not read as a template only gets the name.
    assert message_fill("{name}，{优惠}", "张秀英") == "张秀英，{优惠}"
