"""Coupons under concurrency on PostgreSQL: real threads, each with its own connection, through the POS API."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from campaigns.models import Coupon, CouponRedemption, CouponTemplate
from membership.models import EarnRule
from stores.services import terminal_create
from tests.campaigns.conftest import CouponTemplateFactory, coupon_issue, coupons_issued
from tests.membership.conftest import concurrently, register

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def till(reference_stores):
    """The API key of a DEPT001 terminal."""
    cache.clear()
    _terminal, key = terminal_create(store_code="DEPT001", name="D1")
    yield key
    cache.clear()


def send(key: str, url: str, body: dict, idempotency_key: str):
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post(
        url, data=json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=idempotency_key)
    return response.status_code, response.json()


def outcomes(results) -> dict:
    """{"201": 1, "already_redeemed": 19}: successes by status, refusals by reason (or code)."""
    summary: dict = {}
    for result in results:
        assert not isinstance(result, Exception), result
        status, body = result
        name = str(status) if status < 400 else body["error"].get("reason", body["error"]["code"])
        summary[name] = summary.get(name, 0) + 1
    return summary


def test_twenty_tills_redeeming_one_coupon_at_once_use_it_once(till, ledgers_balanced):
    # given: one 30.00 coupon of 李建国's
    member = register(name="李建国", phone="13800138000")
    coupon = coupon_issue(CouponTemplateFactory(amount=Decimal("30.00")), member)
    # when: twenty tills redeem it at the same moment, each on its own receipt
    results = concurrently(20, lambda index: send(
        till, f"/api/v1/coupons/{coupon.code}/redeem",
        {"member_no": member.member_no, "receipt_no": f"R-{index}", "basket_amount": "100.00"}, f"k-{index}"))
    # then: exactly one went through, the others were refused as already redeemed
    assert outcomes(results) == {"201": 1, "already_redeemed": 19}
    coupon.refresh_from_db()
    assert coupon.status == Coupon.Status.REDEEMED
    assert CouponRedemption.objects.filter(coupon=coupon).count() == 1
    template = CouponTemplate.objects.get(pk=coupon.template_id)
    assert (template.redeemed_count, template.discount_spent) == (1, Decimal("30.00"))
    ledgers_balanced()


def test_fifty_redemptions_at_once_never_pass_the_templates_budget(till, ledgers_balanced):
    # given: 50 bulk codes of 30.00 off, with a budget of 500.00 for all of them (16 uses)
    template = CouponTemplateFactory(amount=Decimal("30.00"), total_budget=Decimal("500.00"))
    coupons = coupons_issued(template, 50)
    # when: fifty tills each redeem one of them at the same moment
    results = concurrently(50, lambda index: send(
        till, f"/api/v1/coupons/{coupons[index].code}/redeem",
        {"receipt_no": f"R-{index}", "basket_amount": "100.00"}, f"k-{index}"))
    # then: sixteen went through, the rest were refused and stay open
    assert outcomes(results) == {"201": 16, "budget_exhausted": 34}
    template.refresh_from_db()
    assert template.discount_spent == Decimal("480.00") <= template.total_budget
    assert template.redeemed_count == 16
    kept = CouponRedemption.objects.filter(template=template, status=CouponRedemption.Status.REDEEMED)
    assert kept.aggregate(total=Sum("discount"))["total"] == Decimal("480.00")
    assert Coupon.objects.filter(template=template, status=Coupon.Status.OPEN).count() == 34
    ledgers_balanced()


def test_a_returned_purchase_gives_its_coupon_back_once_however_often_the_return_is_replayed(till, dept001,
                                                                                           ledgers_balanced):
    # given: 李建国 bought for 250.00 at DEPT001 and used his 满200减30 coupon on that receipt
    EarnRule.objects.create(format=dept001.format, amount_per_point=Decimal("1.00"))
    member = register(name="李建国", phone="13800138000", store=dept001)
    template = CouponTemplateFactory(kind=CouponTemplate.Kind.THRESHOLD, threshold=Decimal("200.00"),
                                     amount=Decimal("30.00"), formats=["DEPT"])
    coupon = coupon_issue(template, member)
    status, _body = send(till, f"/api/v1/coupons/{coupon.code}/redeem",
                         {"member_no": member.member_no, "receipt_no": "S-1", "basket_amount": "250.00"}, "redeem")
    assert status == 201
    status, _body = send(till, "/api/v1/purchases", {
        "member_no": member.member_no, "receipt_no": "S-1", "amount": "220.00",
        "occurred_at": (timezone.localtime() - timedelta(minutes=5)).isoformat(), "payment_method": "cash",
    }, "sale")
    assert status == 201
    return_body = {"original_receipt_no": "S-1", "receipt_no": "RT-1", "amount": "220.00"}
    # when: the till sends the full return ten times at once (a retry storm), and then again with new keys
    replays = concurrently(10, lambda index: send(till, "/api/v1/purchases/returns", return_body, "return"))
    again = [send(till, "/api/v1/purchases/returns", {**return_body, "receipt_no": f"RT-{index}"}, f"return-{index}")
             for index in range(2, 4)]
    # then: one return, the coupon open again once, the budget given back once
    assert outcomes(replays) == {"201": 10}
    assert len({json.dumps(body, sort_keys=True) for _status, body in replays}) == 1
    assert all(status >= 400 for status, _body in again)
    coupon.refresh_from_db()
    assert coupon.status == Coupon.Status.OPEN and coupon.closed_at is None
    redemption = CouponRedemption.objects.get(coupon=coupon)
    assert redemption.status == CouponRedemption.Status.RELEASED
    template.refresh_from_db()
    assert (template.redeemed_count, template.discount_spent) == (0, Decimal("0.00"))
    ledgers_balanced()
