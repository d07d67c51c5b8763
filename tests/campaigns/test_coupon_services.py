"""Coupon services: what a coupon is worth, using it, giving it back, voiding, expiring, issuing and claiming."""

from datetime import timedelta
from decimal import Decimal

import openpyxl
import pytest
from django.utils import timezone

from campaigns.errors import (
    AlreadyClaimed,
    ClaimCodeNotFound,
    CouponInvalid,
    CouponNotApplicable,
    CouponNotFound,
    CouponNotVoidable,
    CouponQuantityExhausted,
    CouponTemplateNotActive,
)
from campaigns.models import Coupon, CouponBatch, CouponRedemption, CouponRule, CouponSku, CouponTemplate
from campaigns.services import (
    coupon_claim,
    coupon_codes_new,
    coupon_quote,
    coupon_redeem,
    coupon_redemptions_release,
    coupon_void,
    coupons_expire,
    coupons_issue,
    coupons_issue_from_file,
)
from core.ledgers import ledgers_check
from stores.models import Format
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def template_make(code="T1", *, status=CouponTemplate.Status.ACTIVE, formats=(), stores=(), **fields):
    fields.setdefault("name", f"券 {code}")
    fields.setdefault("kind", CouponTemplate.Kind.AMOUNT_OFF)
    fields.setdefault("amount", Decimal("10.00"))
    template = CouponTemplate.objects.create(code=code, status=status, **fields)
    template.formats.set(formats)
    template.stores.set(stores)
    return template


def issue_one(template, member=None):
    batch = coupons_issue(template=template, member_ids=[member.pk] if member else [], quantity=0 if member else 1,
                          channel=CouponBatch.Channel.MEMBER_LIST if member else CouponBatch.Channel.BULK)
    return Coupon.objects.get(batch=batch)


@pytest.fixture
def dept_threshold(reference_stores):
    """满200减30 at DEPT stores."""
    return template_make("DEPT200", kind=CouponTemplate.Kind.THRESHOLD, threshold=Decimal("200.00"),
                         amount=Decimal("30.00"), formats=[Format.objects.get(code="DEPT")])


@pytest.fixture
def member(dept001):
    return MemberFactory(store=dept001)


def test_a_threshold_coupon_takes_30_off_200_at_a_dept_store_and_is_refused_at_super(
        dept_threshold, member, dept001, super001):
    coupon = issue_one(dept_threshold, member)
    with pytest.raises(CouponNotApplicable) as refused:
        coupon_redeem(code=coupon.code, store=super001, member_no=member.member_no, receipt_no="R1",
                      basket_amount="250.00")
    assert refused.value.reason == "wrong_store"
    coupon.refresh_from_db()
    assert coupon.status == Coupon.Status.OPEN

    redemption = coupon_redeem(code=coupon.code, store=dept001, member_no=member.member_no, receipt_no="R1",
                               basket_amount="250.00")
    assert redemption.discount == Decimal("30.00")
    coupon.refresh_from_db()
    dept_threshold.refresh_from_db()
    assert coupon.status == Coupon.Status.REDEEMED
    assert (dept_threshold.redeemed_count, dept_threshold.discount_spent) == (1, Decimal("30.00"))
    assert ledgers_check().difference_count == 0


def test_below_the_threshold_and_a_repeating_threshold(dept_threshold, member, dept001):
    coupon = issue_one(dept_threshold, member)
    with pytest.raises(CouponNotApplicable) as refused:
        coupon_quote(code=coupon.code, store=dept001, member_no=member.member_no, basket_amount="199.99")
    assert refused.value.reason == "below_threshold"
    dept_threshold.repeat = True
    dept_threshold.save()
    quote = coupon_quote(code=coupon.code, store=dept001, member_no=member.member_no, basket_amount="650.00")
    assert quote.discount == Decimal("90.00")


def test_a_coupon_is_used_once_and_another_member_cannot_use_it(dept_threshold, member, dept001):
    coupon = issue_one(dept_threshold, member)
    other = MemberFactory(store=dept001)
    with pytest.raises(CouponNotApplicable) as refused:
        coupon_redeem(code=coupon.code, store=dept001, member_no=other.member_no, receipt_no="R1",
                      basket_amount="300.00")
    assert refused.value.reason == "not_owner"
    coupon_redeem(code=coupon.code, store=dept001, member_no=member.member_no, receipt_no="R1", basket_amount="300.00")
    with pytest.raises(CouponNotApplicable) as again:
        coupon_redeem(code=coupon.code, store=dept001, member_no=member.member_no, receipt_no="R2",
                      basket_amount="300.00")
    assert again.value.reason == "already_redeemed"


def test_validity_not_started_and_expired(reference_stores, member, dept001):
    now = timezone.now()
    later = template_make("LATER", valid_from=now + timedelta(days=1), valid_until=now + timedelta(days=5))
    coupon = issue_one(later, member)
    with pytest.raises(CouponNotApplicable) as refused:
        coupon_quote(code=coupon.code, store=dept001, member_no=member.member_no, basket_amount="50.00")
    assert refused.value.reason == "not_started"
    with pytest.raises(CouponNotApplicable) as expired:
        coupon_quote(code=coupon.code, store=dept001, member_no=member.member_no, basket_amount="50.00",
                     now=now + timedelta(days=6))
    assert expired.value.reason == "expired"


def test_percent_off_is_capped_and_rounded_down(reference_stores, member, dept001):
    template = template_make("PCT", kind=CouponTemplate.Kind.PERCENT_OFF, percent=Decimal("15"),
                             max_discount=Decimal("20.00"))
    coupon = issue_one(template, member)
    assert coupon_quote(code=coupon.code, store=dept001, member_no=member.member_no,
                        basket_amount="33.33").discount == Decimal("4.99")
    assert coupon_quote(code=coupon.code, store=dept001, member_no=member.member_no,
                        basket_amount="500.00").discount == Decimal("20.00")


def test_an_sku_coupon_counts_only_its_items(reference_stores, member, dept001):
    template = template_make("SKU", kind=CouponTemplate.Kind.ITEM, amount=Decimal("15.00"),
                             sku_scope=CouponTemplate.SkuScope.INCLUDE)
    CouponSku.objects.create(template=template, sku="690001")
    coupon = issue_one(template, member)
    lines = [{"sku": "111", "category": "food", "amount": "100.00", "quantity": "1"}]
    with pytest.raises(CouponNotApplicable) as refused:
        coupon_quote(code=coupon.code, store=dept001, member_no=member.member_no, basket_amount="100.00",
                     lines=lines)
    assert refused.value.reason == "no_eligible_items"
    with pytest.raises(CouponNotApplicable) as no_lines:
        coupon_quote(code=coupon.code, store=dept001, member_no=member.member_no, basket_amount="100.00")
    assert no_lines.value.reason == "no_eligible_items"
    lines.append({"sku": "690001", "category": "food", "amount": "9.90", "quantity": "1"})
    quote = coupon_quote(code=coupon.code, store=dept001, member_no=member.member_no, basket_amount="109.90",
                         lines=lines)
    assert quote.discount == Decimal("9.90")  # never more than the items it covers


def test_a_gift_coupon_pays_for_one_gift_item(reference_stores, member, dept001):
    template = template_make("GIFT", kind=CouponTemplate.Kind.GIFT, amount=Decimal("0.00"), gift_sku="G1")
    coupon = issue_one(template, member)
    lines = [{"sku": "G1", "category": "", "amount": "24.00", "quantity": "2"}]
    assert coupon_quote(code=coupon.code, store=dept001, member_no=member.member_no, basket_amount="24.00",
                        lines=lines).discount == Decimal("12.00")


def test_the_budget_is_never_passed(reference_stores, dept001):
    template = template_make("BUDGET", amount=Decimal("10.00"), total_budget=Decimal("25.00"))
    batch = coupons_issue(template=template, quantity=3, channel=CouponBatch.Channel.BULK)
    codes = list(Coupon.objects.filter(batch=batch).values_list("code", flat=True))
    for number, code in enumerate(codes[:2]):
        coupon_redeem(code=code, store=dept001, member_no=None, receipt_no=f"B{number}", basket_amount="50.00")
    with pytest.raises(CouponNotApplicable) as refused:
        coupon_redeem(code=codes[2], store=dept001, member_no=None, receipt_no="B3", basket_amount="50.00")
    assert refused.value.reason == "budget_exhausted"
    assert Coupon.objects.get(code=codes[2]).status == Coupon.Status.OPEN
    template.refresh_from_db()
    assert template.discount_spent == Decimal("20.00")


def test_an_unknown_code_and_bad_amounts(reference_stores, dept001):
    with pytest.raises(CouponNotFound):
        coupon_quote(code="NOPE", store=dept001, member_no=None, basket_amount="1.00")
    with pytest.raises(CouponInvalid) as bad:
        coupon_quote(code="NOPE", store=dept001, member_no=None, basket_amount="1.001")
    assert "basket_amount" in bad.value.fields


def test_a_returned_receipt_gives_its_coupon_back_once(dept_threshold, member, dept001):
    coupon = issue_one(dept_threshold, member)
    coupon_redeem(code=coupon.code, store=dept001, member_no=member.member_no, receipt_no="R9",
                  basket_amount="300.00")
    assert coupon_redemptions_release(store=dept001, receipt_no="R9", reason="test") == 1
    assert coupon_redemptions_release(store=dept001, receipt_no="R9", reason="test") == 0
    coupon.refresh_from_db()
    dept_threshold.refresh_from_db()
    assert coupon.status == Coupon.Status.OPEN
    assert (dept_threshold.redeemed_count, dept_threshold.discount_spent) == (0, Decimal("0.00"))
    assert CouponRedemption.objects.get().status == CouponRedemption.Status.RELEASED
    # usable again
    coupon_redeem(code=coupon.code, store=dept001, member_no=member.member_no, receipt_no="R10",
                  basket_amount="300.00")
    assert ledgers_check().difference_count == 0


def test_a_coupon_given_back_after_its_validity_is_expired(reference_stores, member, dept001):
    now = timezone.now()
    template = template_make("SHORT", valid_until=now + timedelta(hours=1))
    coupon = issue_one(template, member)
    coupon_redeem(code=coupon.code, store=dept001, member_no=member.member_no, receipt_no="S1", basket_amount="50.00")
    Coupon.objects.filter(pk=coupon.pk).update(valid_until=now - timedelta(minutes=1))
    coupon_redemptions_release(store=dept001, receipt_no="S1", reason="test")
    coupon.refresh_from_db()
    template.refresh_from_db()
    assert coupon.status == Coupon.Status.EXPIRED
    assert template.expired_count == 1
    assert ledgers_check().difference_count == 0


def test_void_and_expire(reference_stores, member, dept001, hq_admin):
    template = template_make("V", valid_days=3)
    batch = coupons_issue(template=template, quantity=3, channel=CouponBatch.Channel.BULK)
    first, second, third = Coupon.objects.filter(batch=batch).order_by("pk")
    assert third.valid_until - third.issued_at == timedelta(days=3)
    coupon_void(coupon=first, operator=hq_admin, reason="printed twice")
    with pytest.raises(CouponNotVoidable):
        coupon_void(coupon=first, operator=hq_admin, reason="again")
    with pytest.raises(CouponNotApplicable):
        coupon_quote(code=first.code, store=dept001, member_no=None, basket_amount="50.00")
    assert coupons_expire(now=timezone.now() + timedelta(days=4)) == 2
    template.refresh_from_db()
    assert (template.issued_count, template.voided_count, template.expired_count, template.open_count) == (3, 1, 2, 0)
    assert ledgers_check().difference_count == 0


def test_issue_respects_limit_quantity_and_status(reference_stores, member, dept001):
    template = template_make("LIM", per_member_limit=1, total_quantity=2)
    batch = coupons_issue(template=template, member_ids=[member.pk, member.pk], channel="list")
    assert (batch.quantity, batch.skipped) == (1, 1)
    with pytest.raises(CouponQuantityExhausted):
        coupons_issue(template=template, quantity=2, channel="bulk")
    assert Coupon.objects.filter(template=template).count() == 1
    draft = template_make("DRAFT", status=CouponTemplate.Status.DRAFT)
    with pytest.raises(CouponTemplateNotActive):
        coupons_issue(template=draft, quantity=1, channel="bulk")


def test_codes_are_unique_unguessable_and_carry_the_prefix(reference_stores):
    codes = coupon_codes_new(20_000, prefix="VIP")
    assert len(set(codes)) == 20_000
    assert all(code.startswith("VIP") and len(code) == 15 for code in codes)
    assert all(set(code[3:]) <= set("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for code in codes)


def test_issue_from_a_file_names_the_bad_row_and_writes_nothing(reference_stores, member, dept001, tmp_path):
    template = template_make("FILE")
    path = tmp_path / "members.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["会员号"])
    sheet.append([member.member_no])
    sheet.append(["NOSUCH"])
    book.save(path)
    with pytest.raises(CouponInvalid) as refused:
        coupons_issue_from_file(template=template, file=path)
    assert "NOSUCH" in refused.value.fields["file"][0] and "3" in refused.value.fields["file"][0]
    assert not Coupon.objects.exists()
    batch = coupons_issue_from_file(template=template, file=path, skip_invalid=True)
    assert batch.quantity == 1 and len(batch.errors) == 1
    assert Coupon.objects.get().member_id == member.pk


def test_a_claim_code_gives_one_coupon_per_member(reference_stores, member, dept001):
    template_make("CLAIM", claim_code="WELCOME30", per_member_limit=3)
    coupon = coupon_claim(claim_code="welcome30", member=member.member_no, store=dept001)
    assert coupon.member_id == member.pk
    with pytest.raises(AlreadyClaimed):
        coupon_claim(claim_code="WELCOME30", member=member)
    with pytest.raises(ClaimCodeNotFound):
        coupon_claim(claim_code="NOPE", member=member)


def test_after_payment_rule_issues_a_coupon(reference_stores, member, dept001):
    from membership.models import Purchase
    template = template_make("AFTER", valid_days=30)
    rule = CouponRule.objects.create(name="满100返券", template=template, min_amount=Decimal("100.00"),
                                     starts_on=timezone.localdate() - timedelta(days=1),
                                     ends_on=timezone.localdate() + timedelta(days=1))
    rule.formats.set([dept001.format])
    from campaigns.services import coupons_after_payment
    purchase = Purchase(member=member, store=dept001, format_id=dept001.format_id, amount=Decimal("120.00"),
                        occurred_at=timezone.now(), receipt_no="P1", payment_method="cash")
    assert [coupon.member_id for coupon in coupons_after_payment(purchase=purchase)] == [member.pk]
    purchase.amount = Decimal("99.00")
    assert coupons_after_payment(purchase=purchase) == []


@pytest.mark.ledgers_broken
def test_check_ledgers_finds_a_template_whose_counts_disagree_with_its_coupons(reference_stores, member):
    template = template_make("BROKEN")
    coupons_issue(template=template, quantity=2, channel=CouponBatch.Channel.BULK)
    assert ledgers_check().difference_count == 0
    CouponTemplate.objects.filter(pk=template.pk).update(issued_count=3, discount_spent=Decimal("1.00"))
    report = ledgers_check()
    rules = {difference.rule for difference in report.differences}
    assert "issued count equals the coupons issued" in rules
    assert "discounts given equal the sum of the redemptions" in rules
