"""Coupon template services (campaigns/services/templates.py): the terms' rules, starting through approval, pausing,
ending and the SKU list from Excel or CSV."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from openpyxl import Workbook

from approvals.errors import SelfApprovalForbidden
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from campaigns.demo.coupons import coupons_seed
from campaigns.errors import CouponInvalid
from campaigns.models import Coupon, CouponRedemption, CouponSku, CouponTemplate
from campaigns.queries import coupon_template_results
from campaigns.services.templates import (
    COUPON_TEMPLATE_START,
    coupon_skus_import,
    coupon_template_end,
    coupon_template_pause,
    coupon_template_start,
    coupon_template_validate,
)
from tests.campaigns.conftest import CouponTemplateFactory
from tests.factories import ApprovalPolicyFactory

pytestmark = pytest.mark.django_db
DRAFT, PENDING, ACTIVE = CouponTemplate.Status.DRAFT, CouponTemplate.Status.PENDING, CouponTemplate.Status.ACTIVE
PAUSED, ENDED = CouponTemplate.Status.PAUSED, CouponTemplate.Status.ENDED


def draft(**fields) -> CouponTemplate:
    fields.setdefault("valid_days", 30)
    return CouponTemplateFactory(status=DRAFT, **fields)


def xlsx(rows) -> bytes:
    workbook = Workbook()
    for row in rows:
        workbook.active.append(list(row))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def budget_policy(db):
    """Starting a template whose budget is 50,000.00 or more needs a second person with approve_coupon_template."""
    return ApprovalPolicyFactory(action=COUPON_TEMPLATE_START, min_amount=Decimal("50000.00"),
                                 permission="campaigns.approve_coupon_template")


# --- the terms ---------------------------------------------------------------------------------------------------


def _errors(**values) -> dict:
    values.setdefault("valid_days", 30)
    with pytest.raises(CouponInvalid) as caught:
        coupon_template_validate(values=values)
    return caught.value.fields


@pytest.mark.parametrize(("values", "field"), [
    ({"kind": "amount_off", "amount": Decimal("0")}, "amount"),
    ({"kind": "percent_off", "percent": Decimal("0")}, "percent"),
    ({"kind": "percent_off", "percent": Decimal("100")}, "percent"),
    ({"kind": "threshold", "amount": Decimal("30"), "threshold": Decimal("30")}, "threshold"),
    ({"kind": "threshold", "amount": Decimal("0"), "threshold": Decimal("200")}, "amount"),
    ({"kind": "item", "amount": Decimal("20"), "sku_scope": "all"}, "sku_scope"),
    ({"kind": "item", "amount": Decimal("0"), "sku_scope": "include"}, "amount"),
    ({"kind": "gift", "gift_sku": "  "}, "gift_sku"),
    ({"kind": "amount_off", "amount": Decimal("5"), "code_prefix": "ab-"}, "code_prefix"),
])
def test_each_kind_needs_its_own_terms(values, field):
    assert field in _errors(**values)


@pytest.mark.parametrize("values", [
    {"kind": "amount_off", "amount": Decimal("20")},
    {"kind": "percent_off", "percent": Decimal("10"), "max_discount": Decimal("50")},
    {"kind": "threshold", "amount": Decimal("30"), "threshold": Decimal("200"), "repeat": True},
    {"kind": "item", "amount": Decimal("20"), "sku_scope": "include"},
    {"kind": "gift", "gift_sku": "6902083881405"},
])
def test_terms_that_fit_their_kind_pass(values):
    coupon_template_validate(values={**values, "valid_days": 30})


def test_validity_is_fixed_dates_or_days_from_issue_never_both_nor_neither():
    now = timezone.now()
    base = {"kind": "amount_off", "amount": Decimal("5")}
    assert "valid_days" in _errors(**base, valid_until=now + timedelta(days=1), valid_days=3)
    assert "valid_until" in _errors(**base, valid_days=None)
    assert "valid_until" in _errors(**base, valid_days=None, valid_from=now, valid_until=now - timedelta(hours=1))
    coupon_template_validate(values={**base, "valid_from": now, "valid_until": now + timedelta(days=7)})


# --- starting ----------------------------------------------------------------------------------------------------


def test_a_template_without_a_policy_starts_at_once(hq_admin):
    template = draft(total_budget=Decimal("80000.00"))

    approval = coupon_template_start(template=template, operator=hq_admin, reason="周末活动")

    template.refresh_from_db()
    assert template.status == ACTIVE
    assert approval.status == ApprovalRequest.Status.APPROVED
    assert (approval.action, approval.amount) == (COUPON_TEMPLATE_START, Decimal("80000.00"))


def test_a_budget_below_the_policy_starts_at_once(hq_admin, budget_policy):
    template = draft(total_budget=Decimal("49999.99"))

    coupon_template_start(template=template, operator=hq_admin, reason="小活动")

    template.refresh_from_db()
    assert template.status == ACTIVE


def test_a_budget_above_the_policy_waits_for_a_second_person(hq_admin, hq_approver, budget_policy):
    template = draft(total_budget=Decimal("60000.00"))

    approval = coupon_template_start(template=template, operator=hq_admin, reason="店庆")

    template.refresh_from_db()
    assert (template.status, approval.status) == (PENDING, ApprovalRequest.Status.PENDING)
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=approval, approver=hq_admin)
    with pytest.raises(CouponInvalid, match="pending approval"):
        coupon_template_start(template=template, operator=hq_admin, reason="again")
    template.refresh_from_db()
    assert template.status == PENDING

    approval_request_approve(approval_request=approval, approver=hq_approver)

    template.refresh_from_db()
    assert template.status == ACTIVE
    assert template.history.first().history_user == hq_approver


def test_a_rejected_start_leaves_a_draft(hq_admin, hq_approver, budget_policy):
    template = draft(total_budget=Decimal("60000.00"))
    approval = coupon_template_start(template=template, operator=hq_admin, reason="店庆")

    approval_request_reject(approval_request=approval, approver=hq_approver, comment="预算太高")

    template.refresh_from_db()
    assert template.status == DRAFT


def test_a_template_whose_terms_are_wrong_does_not_start(hq_admin):
    template = draft(kind=CouponTemplate.Kind.PERCENT_OFF, percent=Decimal("0"))

    with pytest.raises(CouponInvalid, match="cannot start"):
        coupon_template_start(template=template, operator=hq_admin, reason="x")

    template.refresh_from_db()
    assert template.status == DRAFT
    assert not ApprovalRequest.objects.exists()


def test_an_item_template_needs_its_sku_list_to_start(hq_admin):
    template = draft(kind=CouponTemplate.Kind.ITEM, amount=Decimal("20"), sku_scope="include")

    with pytest.raises(CouponInvalid, match="SKU list is empty"):
        coupon_template_start(template=template, operator=hq_admin, reason="x")

    coupon_skus_import(template=template, file=b"sku\n6902083881405\n", file_name="skus.csv", operator=hq_admin)
    coupon_template_start(template=template, operator=hq_admin, reason="x")
    template.refresh_from_db()
    assert template.status == ACTIVE


def test_a_template_whose_validity_ended_does_not_start(hq_admin):
    now = timezone.now()
    template = draft(valid_days=None, valid_from=now - timedelta(days=9), valid_until=now - timedelta(days=1))

    with pytest.raises(CouponInvalid, match="validity ended"):
        coupon_template_start(template=template, operator=hq_admin, reason="x")


# --- pausing and ending ------------------------------------------------------------------------------------------


def test_a_paused_template_runs_again_without_a_new_approval(hq_admin, budget_policy):
    template = CouponTemplateFactory(status=ACTIVE, valid_days=30, total_budget=Decimal("90000.00"))

    coupon_template_pause(template=template, operator=hq_admin, reason="库存不足")
    template.refresh_from_db()
    assert template.status == PAUSED

    assert coupon_template_start(template=template, operator=hq_admin) is None
    template.refresh_from_db()
    assert template.status == ACTIVE
    assert not ApprovalRequest.objects.exists()


@pytest.mark.parametrize("status", [DRAFT, ACTIVE, PAUSED])
def test_a_template_ends_from_draft_active_or_paused(status, hq_admin):
    template = CouponTemplateFactory(status=status, valid_days=30)

    coupon_template_end(template=template, operator=hq_admin)

    template.refresh_from_db()
    assert template.status == ENDED


@pytest.mark.parametrize(("status", "call"), [
    (ENDED, coupon_template_end), (PENDING, coupon_template_end), (DRAFT, coupon_template_pause),
    (ENDED, coupon_template_start), (ACTIVE, coupon_template_start),
])
def test_a_status_change_from_the_wrong_status_is_refused(status, call, hq_admin):
    template = CouponTemplateFactory(status=status, valid_days=30)

    with pytest.raises(CouponInvalid):
        call(template=template, operator=hq_admin)

    template.refresh_from_db()
    assert template.status == status


# --- SKU lists ---------------------------------------------------------------------------------------------------


def test_an_sku_file_replaces_the_list(hq_admin):
    template = draft(kind=CouponTemplate.Kind.ITEM, amount=Decimal("20"), sku_scope="include",
                     skus=["OLD1", "OLD2"])

    count = coupon_skus_import(template=template, file=xlsx([("商品编码",), ("6902083881405",), (6902083886417,)]),
                               file_name="清单.xlsx", operator=hq_admin)

    assert count == 2
    assert sorted(CouponSku.objects.filter(template=template).values_list("sku", flat=True)) == [
        "6902083881405", "6902083886417"]


@pytest.mark.parametrize("header", ["sku", "SKU", "商品编码"])
def test_the_sku_column_is_named_in_english_or_chinese(header, hq_admin):
    template = draft()

    assert coupon_skus_import(template=template, file=f"{header}\nA1\nA2\n".encode(), file_name="s.csv") == 2


def test_a_file_with_bad_rows_names_them_and_writes_nothing(hq_admin):
    template = draft(kind=CouponTemplate.Kind.ITEM, amount=Decimal("20"), sku_scope="include", skus=["OLD1"])

    with pytest.raises(CouponInvalid) as caught:
        coupon_skus_import(template=template, file=b"sku\nA1\n\n6.9E+12\nA1\n", file_name="s.csv")

    problems = caught.value.fields["file"]
    assert any("row 4" in text and "shortened" in text for text in problems)
    assert any("row 5" in text and "repeats row 2" in text for text in problems)
    assert list(CouponSku.objects.filter(template=template).values_list("sku", flat=True)) == ["OLD1"]


@pytest.mark.parametrize(("content", "name", "text"), [
    (b"code\nA1\n", "s.csv", "sku"),
    (b"sku\n", "s.csv", "no SKUs"),
    (b"whatever", "s.pdf", "not an .xlsx or .csv"),
    (b"not a zip", "s.xlsx", "cannot be opened"),
])
def test_a_file_that_cannot_be_read_is_refused(content, name, text):
    template = draft()

    with pytest.raises(CouponInvalid) as caught:
        coupon_skus_import(template=template, file=content, file_name=name)

    assert text in " ".join(caught.value.fields["file"])
    assert not CouponSku.objects.exists()


def test_the_sku_list_of_an_ended_template_no_longer_changes():
    template = CouponTemplateFactory(status=ENDED, valid_days=30, skus=["OLD1"])

    with pytest.raises(CouponInvalid):
        coupon_skus_import(template=template, file=b"sku\nA1\n", file_name="s.csv")

    assert list(CouponSku.objects.values_list("sku", flat=True)) == ["OLD1"]


# --- the demo ----------------------------------------------------------------------------------------------------


def test_the_demo_coupons_have_every_state_and_results_and_load_twice(reference_stores, hq_approver):
    from tests.factories import MemberFactory

    for _ in range(12):
        MemberFactory(store=reference_stores.get(code="DEPT001"))

    made = coupons_seed()
    again = coupons_seed()

    statuses = dict(CouponTemplate.objects.values_list("code", "status"))
    assert statuses["DEPT_W200_30"] == ACTIVE and statuses["SUPER_P10"] == ACTIVE
    assert statuses["SPRING_100_10"] == ENDED and statuses["DEPT_ANNIV_500_50"] == PENDING
    assert CouponTemplate.objects.get(code="WELCOME30").claim_code == "WELCOME30"
    assert CouponSku.objects.filter(template__code="BRAND_SKU_20").count() == 5
    assert made["redemptions"] == 6 == CouponRedemption.objects.count()
    assert set(CouponRedemption.objects.values_list("store__code", flat=True)) == {"DEPT001", "SUPER001"}
    assert coupon_template_results(CouponTemplate.objects.get(code="DEPT_W200_30"))["redeemed"] == 3
    assert again == {"policy": False, "templates": 0, "coupons": 0, "redemptions": 0}
    assert Coupon.objects.count() == made["coupons"]
