"""Demo segments and targeted campaigns for `seed_demo` (safe to run twice: segments are matched by their scenario,
campaigns by their codes, the call-list members by their family phone).

- a segment for each of the twelve scenarios (营销 → 人群);
- TCDEMOWINBACK (ended): a win-back campaign to the members who agreed to marketing and bought nothing in the last
  45 days, 20 yuan off, a 20% control group, started forty days ago; targeted members bought more in the thirty
  days after its start than the control group and some used the coupon, so its results show reach, conversion
  and uplift;
- TCDEMOCALLS (running): a service call campaign of DEPT001 to its members who prefer a phone call, with a call
  list the desk works off and a few calls already recorded by dept001_desk.

Everything goes through the services a marketer's screens call; only the dates of the ended campaign are moved
into the past (a new campaign cannot start in the past), and its purchases are recorded with past times as the POS
would have sent them.
"""

import random
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal

from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalPolicy
from campaigns.errors import SegmentInvalid
from campaigns.models import CampaignMember, CouponTemplate, Segment, TargetedCampaign
from campaigns.queries_targeting import call_list
from campaigns.scenarios import SCENARIOS
from campaigns.segments import rules_count
from campaigns.services.coupons import coupon_redeem
from campaigns.services.segments import segment_save
from campaigns.services.targeting import (
    TARGETED_CAMPAIGN_START,
    call_record,
    campaign_end,
    campaign_estimate,
    campaign_save,
    campaign_start,
    campaign_submit,
    contacts_mark_reached,
)
from campaigns.services.templates import coupon_template_start
from membership.models import Member, Purchase, Tag
from membership.services import MemberInput, member_register
from membership.services.purchases import purchase_record
from stores.models import Store

SEED_USERNAME = "demo_seed"  # the same inactive user the other demo modules write as
DESK_USERNAME = "dept001_desk"
POLICY_FROM = Decimal("50000.00")
WINBACK_CODE, CALLS_CODE = "TCDEMOWINBACK", "TCDEMOCALLS"
WINBACK_TEMPLATE = "DEMO_TC_WINBACK20"
WINBACK_SEGMENT = "演示：45天未消费的会员"
DEMO_SEED = 20
# Elderly members of DEPT001 who left a child's number and want a call: the call list always has someone on it.
CALLERS = (
    ("周桂兰", "13996410001", "重庆市渝中区解放碑民族路12号"),
    ("陈德明", "13996410002", ""),
    ("刘淑芬", "13996410003", "重庆市渝中区八一路7号"),
    ("黄志强", "13996410004", ""),
)
CALLS = (("reached", "已告知会员日活动，老人表示会来"), ("no_answer", "无人接听，明天再打"),
         ("declined", "家属表示不需要"))


def _seeder() -> User:
    seeder, created = User.objects.get_or_create(username=SEED_USERNAME,
                                                 defaults={"first_name": "演示数据", "is_active": False})
    if created:
        seeder.set_unusable_password()
        seeder.save(update_fields=["password"])
    return seeder


def _policy() -> bool:
    """Targeted campaigns with a budget of 50,000.00 or more wait for a second person's approval."""
    permission = Permission.objects.filter(content_type__app_label="campaigns",
                                           codename="approve_targeted_campaign").first()
    if permission is None:
        return False
    _row, created = ApprovalPolicy.objects.get_or_create(
        action=TARGETED_CAMPAIGN_START, min_amount=POLICY_FROM,
        defaults={"approver_permission": permission, "hq_only": True, "is_active": True})
    return created


def _segments(seeder: User, today: date) -> int:
    made = 0
    taken = set(Segment.objects.exclude(scenario="").values_list("scenario", flat=True))
    for scenario in SCENARIOS.values():
        if scenario.code in taken:
            continue
        try:
            segment_save(name=str(scenario.name), description=str(scenario.description), purpose=scenario.purpose,
                         rules=scenario.rules(today), operator=seeder, scenario=scenario.code)
        except SegmentInvalid:
            continue  # rules that need reference data this database does not have
        made += 1
    return made


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def _backdate(campaign: TargetedCampaign, starts_on: date, ends_on: date) -> None:
    # A new campaign cannot be drafted in the past: the demo's ended campaign is drafted for tomorrow, then its
    # dates are moved back before it starts.
    TargetedCampaign.objects.filter(pk=campaign.pk).update(starts_on=starts_on, ends_on=ends_on)
    campaign.refresh_from_db()


def _template(seeder: User) -> CouponTemplate:
    template, created = CouponTemplate.objects.get_or_create(code=WINBACK_TEMPLATE, defaults={
        "name": "回归礼 20元券", "kind": CouponTemplate.Kind.AMOUNT_OFF, "amount": Decimal("20.00"),
        "min_basket": Decimal("100.00"), "valid_days": 60, "per_member_limit": 1,
        "total_budget": Decimal("30000.00"), "code_prefix": "WB", "created_by": seeder,
        "description": "定向营销：沉睡会员回归礼，满100可用。"})
    if created:
        coupon_template_start(template=template, operator=seeder, reason="演示数据")
        template.refresh_from_db()
    return template


def _buy(store: Store, member_id: int, receipt_no: str, amount: Decimal, occurred_at: datetime) -> bool:
    if occurred_at > timezone.now() or Purchase.objects.filter(store=store, receipt_no=receipt_no).exists():
        return False
    purchase_record(store=store, member=member_id, receipt_no=receipt_no, amount=amount, occurred_at=occurred_at,
                    payment_method="wechat")
    return True


def _winback(seeder: User, today: date) -> dict:
    made = {"campaigns": 0, "purchases": 0, "redeemed": 0}
    if TargetedCampaign.objects.filter(code=WINBACK_CODE).exists():
        return made
    segment = Segment.objects.filter(name=WINBACK_SEGMENT).first()
    if segment is None:
        # Members who agreed to marketing and bought nothing in the last 45 days (the campaign started 40 days
        # ago): only what the demo plants counts in its results window, so the control group shows what the
        # coupon brought.
        consent = {"field": "marketing_consent", "value": True}
        rules = {"match": "all", "conditions": [consent, {"field": "recency", "days_min": 45}]}
        if not rules_count(rules):
            rules = {"match": "all", "conditions": [consent]}
        segment = segment_save(name=WINBACK_SEGMENT, purpose=Segment.Purpose.MARKETING, operator=seeder,
                               description="同意接收营销信息、45天内没有消费的会员。", rules=rules)
    if not rules_count(segment.rules):
        return made
    template = _template(seeder)
    tomorrow = today + timedelta(days=1)
    campaign = campaign_save(operator=seeder, values={
        "code": WINBACK_CODE, "name": "沉睡会员回归礼（演示，已结束）", "segment": segment, "control_percent": 20,
        "starts_on": tomorrow, "ends_on": tomorrow + timedelta(days=13),
        "coupon_template": template, "result_days": 30,
        "message_text": "{name}您好，嘉禾送您20元回归礼券，满100元可用，期待您再次光临。",
        "description": "演示：20% 会员作为对照组不发券，比较30天内的到店与消费。"})
    # The budget covers the estimate whatever the number of demo members; above the demo policy the campaign
    # waits for hq_approver in the approvals inbox instead of starting.
    cost = campaign_estimate(campaign=campaign)["cost_max"]
    budget = max(Decimal("10000.00"), (cost / 1000).to_integral_value(rounding=ROUND_CEILING) * 1000)
    campaign = campaign_save(campaign=campaign, values={"budget": budget}, operator=seeder)
    campaign_submit(campaign=campaign, operator=seeder, reason="演示数据")
    campaign.refresh_from_db()
    made["campaigns"] += 1
    if campaign.status != TargetedCampaign.Status.SCHEDULED:
        return made
    starts_on = today - timedelta(days=40)
    _backdate(campaign, starts_on, starts_on + timedelta(days=13))
    campaign = campaign_start(campaign=campaign, now=_at(starts_on, 0, 5))
    contacts_mark_reached(campaign=campaign, channel=CampaignMember.Channel.SMS, now=_at(starts_on, 10))
    rng = random.Random(DEMO_SEED)
    stores = {store.pk: store for store in Store.objects.filter(status=Store.Status.OPEN)}
    fallback = Store.objects.filter(code="DEPT001").first()
    rows = (CampaignMember.objects.filter(campaign=campaign).select_related("coupon", "member")
            .order_by("member_id"))
    for number, row in enumerate(rows, start=1):
        # About a third of the targeted members come back within the window, an eighth of the control group.
        share = 0.34 if row.group == CampaignMember.Group.TARGET else 0.125
        if rng.random() >= share:
            continue
        store = stores.get(row.store_id) or fallback
        if store is None:
            continue
        occurred_at = _at(starts_on + timedelta(days=rng.randrange(1, 28)), rng.randrange(10, 21), rng.randrange(60))
        amount = Decimal(rng.randrange(8000, 120000)).scaleb(-2).quantize(Decimal("0.01"))
        receipt_no = f"DEMO-TC-{number:05d}"
        if not _buy(store, row.member_id, receipt_no, amount, occurred_at):
            continue
        made["purchases"] += 1
        coupon = row.coupon
        if coupon is not None and amount >= Decimal("100.00") and rng.random() < 0.6:
            coupon_redeem(code=coupon.code, store=store, member_no=row.member.member_no, receipt_no=receipt_no,
                          basket_amount=amount)
            made["redeemed"] += 1
    campaign_end(campaign=campaign, now=_at(campaign.ends_on + timedelta(days=1), 0, 5))
    return made


def _callers(seeder: User, store: Store) -> None:
    taken = set(Member.objects.filter(family_phone__in=[phone for _name, phone, _address in CALLERS])
                .values_list("family_phone", flat=True))
    for name, family_phone, address in CALLERS:
        if family_phone in taken:
            continue
        member_register(data=MemberInput(name=name, family_phone=family_phone, address=address,
                                         contact_channel=Member.ContactChannel.CALL),
                        store=store, registered_by=seeder, channel=Member.Channel.DESK)


def _calls(seeder: User, today: date) -> dict:
    made = {"campaigns": 0, "calls": 0}
    store = Store.objects.filter(code="DEPT001").first()
    if store is None or TargetedCampaign.objects.filter(code=CALLS_CODE).exists():
        return made
    _callers(seeder, store)
    segment = Segment.objects.filter(name="演示：解放碑百货电话回访").first() or segment_save(
        name="演示：解放碑百货电话回访", purpose=Segment.Purpose.SERVICE, operator=seeder,
        description="在 DEPT001 登记、希望电话联系的会员（多为没有手机的老年会员）。",
        rules={"match": "all", "conditions": [{"field": "registered_store", "stores": ["DEPT001"]},
                                              {"field": "contact_channel", "channels": ["call"]}]})
    tag, _created = Tag.objects.get_or_create(name="电话回访", defaults={"description": "门店电话回访过的会员"})
    campaign = campaign_save(operator=seeder, values={
        "code": CALLS_CODE, "name": "会员日电话邀约（演示，进行中）", "segment": segment, "control_percent": 10,
        "starts_on": today, "ends_on": today + timedelta(days=13), "budget": Decimal("0.00"), "tag": tag,
        "call_list": True, "result_days": 30,
        "call_script": "您好，我是嘉禾百货解放碑店服务台。本周六是会员日，全场积分翻倍，欢迎您来店。",
        "description": "演示：服务台按名单给老年会员打电话，记录每次通话结果。"})
    campaign_submit(campaign=campaign, operator=seeder, reason="演示数据")
    campaign = campaign_start(campaign=campaign)
    made["campaigns"] += 1
    clerk = User.objects.filter(username=DESK_USERNAME).first()
    if clerk is None:
        return made
    for row, (outcome, note) in zip(list(call_list(campaign=campaign, store=store)), CALLS, strict=False):
        call_record(campaign_member=row, outcome=outcome, note=note, user=clerk, store=store)
        made["calls"] += 1
    return made


@transaction.atomic
def load(*, stdout=None, today: date | None = None) -> dict:
    """Create the demo segments, the ended win-back campaign with its results and the running call campaign."""
    today = today or timezone.localdate()
    seeder = _seeder()
    made = {"policy": _policy(), "segments": _segments(seeder, today)}
    winback = _winback(seeder, today)
    calls = _calls(seeder, today)
    made.update(campaigns=winback["campaigns"] + calls["campaigns"], purchases=winback["purchases"],
                redeemed=winback["redeemed"], calls=calls["calls"])
    if stdout is not None:
        stdout.write(f"Targeted campaigns: {made['segments']} scenario segments, {made['campaigns']} demo campaigns "
                     f"created ({made['purchases']} purchases after the win-back campaign, {made['redeemed']} of its "
                     f"coupons used, {made['calls']} calls recorded at DEPT001).")
    return made
