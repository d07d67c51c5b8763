"""Demo coupons for `seed_demo` (safe to run twice: templates are matched by their codes).

Templates of every kind in every state: a running 满200减30 weekend coupon of the department stores, a percent-off
coupon with a cap at the supermarkets, an item coupon on a list of SKUs with bulk codes, a claim-code welcome coupon,
an ended spring campaign, and a large anniversary campaign waiting for approval (the demo policy asks a second
person to approve a coupon template whose budget is above 50,000.00). Coupons go to the first demo members and a few
are used at the tills through the same service the POS calls, so the templates' results show numbers.
"""

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalPolicy
from campaigns.models import Coupon, CouponBatch, CouponTemplate
from campaigns.services.coupons import coupon_redeem
from campaigns.services.issuing import coupon_claim, coupons_issue
from campaigns.services.templates import (
    COUPON_TEMPLATE_START,
    coupon_skus_import,
    coupon_template_end,
    coupon_template_start,
)
from membership.models import Member
from stores.models import Format, Store

SEED_USERNAME = "demo_seed"  # the same inactive user the other demo modules write as
POLICY_FROM = Decimal("50000.00")
POLICY_PERMISSION = ("campaigns", "approve_coupon_template")
MEMBERS = 12
DEMO_SKUS = ("6902083881405", "6902083886417", "6902083890636", "6920174736731", "6921168509256")


def _seeder() -> User:
    seeder, created = User.objects.get_or_create(username=SEED_USERNAME,
                                                 defaults={"first_name": "演示数据", "is_active": False})
    if created:
        seeder.set_unusable_password()
        seeder.save(update_fields=["password"])
    return seeder


def _policy() -> bool:
    app_label, codename = POLICY_PERMISSION
    permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
    if permission is None:
        return False
    _policy_row, created = ApprovalPolicy.objects.get_or_create(
        action=COUPON_TEMPLATE_START, min_amount=POLICY_FROM,
        defaults={"approver_permission": permission, "hq_only": True, "is_active": True})
    return created


def _template(code: str, **terms) -> tuple[CouponTemplate, bool]:
    formats = terms.pop("formats", ())
    skus = terms.pop("skus", ())
    template, created = CouponTemplate.objects.get_or_create(code=code, defaults={**terms, "created_by": _seeder()})
    if created:
        template.formats.set(formats)
        if skus:
            coupon_skus_import(template=template, file=("sku\n" + "\n".join(skus) + "\n").encode(),
                               file_name="演示商品清单.csv", operator=_seeder())
    return template, created


def _start(template: CouponTemplate) -> None:
    coupon_template_start(template=template, operator=_seeder(), reason="演示数据")
    template.refresh_from_db()


def _redeem(coupon: Coupon, *, store: Store, receipt_no: str, basket: str) -> bool:
    if Coupon.objects.filter(pk=coupon.pk, status=Coupon.Status.OPEN).exists():
        coupon_redeem(code=coupon.code, store=store, member_no=coupon.member.member_no if coupon.member_id else None,
                      receipt_no=receipt_no, basket_amount=Decimal(basket))
        return True
    return False


@transaction.atomic
def coupons_seed(*, stdout=None) -> dict:
    """Create the demo coupon templates, their coupons and a few redemptions; return what was made."""
    now = timezone.now()
    seeder = _seeder()
    made = {"policy": _policy(), "templates": 0, "coupons": 0, "redemptions": 0}
    members = list(Member.objects.filter(status=Member.Status.ACTIVE, merged_into__isnull=True)
                   .order_by("pk")[:MEMBERS])
    dept, superstore = Format.objects.filter(code="DEPT").first(), Format.objects.filter(code="SUPER").first()
    dept001, super001 = Store.objects.filter(code="DEPT001").first(), Store.objects.filter(code="SUPER001").first()

    weekend, created = _template(
        "DEPT_W200_30", name="满200减30 百货周末", kind=CouponTemplate.Kind.THRESHOLD, threshold=Decimal("200.00"),
        amount=Decimal("30.00"), repeat=True, min_basket=Decimal("200.00"), formats=[dept] if dept else [],
        valid_from=now - timedelta(days=7), valid_until=now + timedelta(days=60), per_member_limit=2,
        total_quantity=5000, total_budget=Decimal("30000.00"), code_prefix="DW",
        description="百货业态周末满200减30，每满200减30，可叠加会员等级折扣。")
    if created:
        made["templates"] += 1
        _start(weekend)
        if members:
            batch = coupons_issue(template=weekend, member_ids=[member.pk for member in members[:8]],
                                  channel=CouponBatch.Channel.MEMBER_LIST, source_name="演示会员名单.xlsx",
                                  operator=seeder)
            made["coupons"] += batch.quantity
            if dept001 is not None:
                for number, (coupon, basket) in enumerate(zip(
                        Coupon.objects.filter(batch=batch).select_related("member").order_by("pk")[:3],
                        ("268.00", "455.50", "1210.00"), strict=False), start=1):
                    made["redemptions"] += _redeem(coupon, store=dept001, receipt_no=f"DEMO-CPN-D{number:03d}",
                                                   basket=basket)

    percent, created = _template(
        "SUPER_P10", name="超市9折券 最高减50", kind=CouponTemplate.Kind.PERCENT_OFF, percent=Decimal("10.00"),
        max_discount=Decimal("50.00"), formats=[superstore] if superstore else [], valid_days=30,
        per_member_limit=1, total_budget=Decimal("20000.00"), code_prefix="SP",
        combines_with_tier_discount=False, description="超市业态全场9折，单张最高减50元，不与会员等级折扣同享。")
    if created:
        made["templates"] += 1
        _start(percent)
        if members:
            batch = coupons_issue(template=percent, member_ids=[member.pk for member in members[4:12]],
                                  channel=CouponBatch.Channel.MEMBER_LIST, source_name="演示会员名单.xlsx",
                                  operator=seeder)
            made["coupons"] += batch.quantity
            if super001 is not None:
                for number, (coupon, basket) in enumerate(zip(
                        Coupon.objects.filter(batch=batch).select_related("member").order_by("pk")[:2],
                        ("186.40", "820.00"), strict=False), start=1):
                    made["redemptions"] += _redeem(coupon, store=super001, receipt_no=f"DEMO-CPN-S{number:03d}",
                                                   basket=basket)

    items, created = _template(
        "BRAND_SKU_20", name="指定商品立减20元", kind=CouponTemplate.Kind.ITEM, amount=Decimal("20.00"),
        sku_scope=CouponTemplate.SkuScope.INCLUDE, skus=DEMO_SKUS, valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=90), per_member_limit=1, total_quantity=1000,
        total_budget=Decimal("20000.00"), code_prefix="SKU", combines_with_brand_discount=False,
        description="品牌合作：指定商品（见 SKU 清单）立减20元，印刷券码由门店发放。")
    if created:
        made["templates"] += 1
        _start(items)
        made["coupons"] += coupons_issue(template=items, quantity=20, channel=CouponBatch.Channel.BULK,
                                         source_name="印刷券码", operator=seeder).quantity

    welcome, created = _template(
        "WELCOME30", name="新会员扫码领券 满100减30", kind=CouponTemplate.Kind.THRESHOLD, threshold=Decimal("100.00"),
        amount=Decimal("30.00"), min_basket=Decimal("100.00"), valid_days=14, per_member_limit=1,
        total_quantity=10000, total_budget=Decimal("30000.00"), claim_code="WELCOME30", code_prefix="WL",
        description="门店海报二维码，每位会员可领取一张。")
    if created:
        made["templates"] += 1
        _start(welcome)
        for member in members[8:11]:
            coupon_claim(claim_code="WELCOME30", member=member, store=dept001)
            made["coupons"] += 1

    spring, created = _template(
        "SPRING_100_10", name="春季满100减10（已结束）", kind=CouponTemplate.Kind.THRESHOLD,
        threshold=Decimal("100.00"), amount=Decimal("10.00"), valid_from=now - timedelta(days=120),
        valid_until=now + timedelta(days=1), per_member_limit=1, total_budget=Decimal("5000.00"), code_prefix="SS")
    if created:
        made["templates"] += 1
        _start(spring)
        if members:
            batch = coupons_issue(template=spring, member_ids=[member.pk for member in members[:4]],
                                  channel=CouponBatch.Channel.MEMBER_LIST, source_name="春季活动名单.xlsx",
                                  operator=seeder)
            made["coupons"] += batch.quantity
            first = Coupon.objects.filter(batch=batch).select_related("member").order_by("pk").first()
            if first is not None and dept001 is not None:
                made["redemptions"] += _redeem(first, store=dept001, receipt_no="DEMO-CPN-P001", basket="150.00")
        coupon_template_end(template=spring, operator=seeder, reason="演示数据：活动结束")

    anniversary, created = _template(
        "DEPT_ANNIV_500_50", name="店庆满500减50", kind=CouponTemplate.Kind.THRESHOLD, threshold=Decimal("500.00"),
        amount=Decimal("50.00"), repeat=True, min_basket=Decimal("500.00"), formats=[dept] if dept else [],
        valid_from=now + timedelta(days=10), valid_until=now + timedelta(days=40), per_member_limit=3,
        total_budget=Decimal("200000.00"), code_prefix="AN", description="预算超过审批线，启动需第二人审批。")
    if created:
        made["templates"] += 1
        # Above the demo policy's 50,000.00: it waits for hq_approver in the approvals inbox.
        _start(anniversary)

    if stdout is not None:
        stdout.write(f"Coupons: {made['templates']} demo templates created, {made['coupons']} coupons issued, "
                     f"{made['redemptions']} redeemed; approval policy above {POLICY_FROM} "
                     f"{'created' if made['policy'] else 'already there'}.")
    return made
