"""The hooks membership offers other apps (campaigns fills them in): points promotions on earning, listeners of
purchases and returns, and points-to-cash days."""

import json
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone

from membership.errors import CashOutLimitExceeded
from membership.models import EarnRule, Member, PointsEntry, PointsHold, PointsPolicy, Purchase, PurchaseReturn, Tier
from membership.services import (
    CashRate,
    EarnBonus,
    cash_rate_best,
    cash_value_of,
    points_cash_out,
    points_for_purchase,
    points_for_purchase_detail,
    points_holds_release,
    purchase_record,
    purchase_return,
)
from stores.models import Format, Store
from tests.membership.conftest import register

D = Decimal
WEDNESDAY_DOUBLE = EarnBonus(factor=D("2.00"), stacking=EarnBonus.MULTIPLY, label="周三双倍积分", key=1)
WECHAT_TRIPLE = EarnBonus(factor=D("3.00"), stacking=EarnBonus.LARGER, label="微信支付三倍积分", key=2)
MEMBER_DAY = EarnBonus(factor=D("1.50"), stacking=EarnBonus.LARGER, label="会员日1.5倍", key=3)
CASH_DAY = CashRate(cash_points=100, cash_value=D("2.00"), label="积分抵现日", key=9)


@pytest.fixture(autouse=True)
def no_other_hooks(monkeypatch):
    """Only what a test registers: the campaigns app's own providers and listeners stay out."""
    lists = {
        "earn": [], "cash": [], "recorded": [], "returned": [],
    }
    monkeypatch.setattr("membership.services.points.EARN_BONUSES", lists["earn"])
    monkeypatch.setattr("membership.services.points.CASH_RATES", lists["cash"])
    monkeypatch.setattr("membership.services.purchases.PURCHASE_RECORDED", lists["recorded"])
    monkeypatch.setattr("membership.services.purchases.PURCHASE_RETURNED", lists["returned"])
    return lists


@pytest.fixture
def promotions(no_other_hooks):
    """Register promotions for the next purchases: promotions(WEDNESDAY_DOUBLE, ...); returns the calls seen."""
    calls = []

    def offer(*bonuses):
        def provider(*, member, store, occurred_at, payment_method, lines):
            calls.append({"member": member.pk, "store": store.code, "payment_method": payment_method,
                          "lines": len(lines), "occurred_at": occurred_at})
            return list(bonuses)

        no_other_hooks["earn"].append(provider)
        return calls

    return offer


@pytest.fixture
def earn_rules(reference_stores):
    """DEPT 1 point per yuan; AUTO 1 point per yuan, held for a 7-day return window."""
    EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=D("1.00"))
    EarnRule.objects.create(format=Format.objects.get(code="AUTO"), amount_per_point=D("1.00"), pending_days=7)


@pytest.fixture
def member(earn_rules, dept001):
    return register(name="李建国", phone="13800138000", store=dept001)


@pytest.fixture
def gold_member(member):
    """A GOLD member: the tier multiplies points by 1.20."""
    Member.objects.filter(pk=member.pk).update(tier=Tier.objects.get(code="GOLD"))
    return Member.objects.select_related("tier", "paid_tier").get(pk=member.pk)


def detail(member, amount="100.00", store="DEPT001", **changes):
    return points_for_purchase_detail(member=member, store=Store.objects.get(code=store), amount=D(amount),
                                      occurred_at=timezone.now(), **changes)


def buy(member, receipt_no="R-1", amount="100.00", store="DEPT001", **changes) -> Purchase:
    return purchase_record(store=Store.objects.get(code=store), member=member, receipt_no=receipt_no,
                           amount=D(amount), occurred_at=changes.pop("occurred_at", timezone.now()), **changes)


# --- points promotions on earning ------------------------------------------------------------------------------


def test_a_multiply_promotion_multiplies_with_the_tier(gold_member, promotions):
    promotions(WEDNESDAY_DOUBLE)

    result = detail(gold_member)

    assert result.points == 240  # 100 x 1.20 x 2
    assert result.bonuses == [(WEDNESDAY_DOUBLE, 120)]


def test_a_larger_promotion_replaces_a_smaller_tier_multiplier(gold_member, promotions):
    promotions(WECHAT_TRIPLE)

    result = detail(gold_member)

    assert result.points == 300  # max(1.20, 3) x 100
    assert result.bonuses == [(WECHAT_TRIPLE, 180)]


def test_a_larger_promotion_below_the_tier_gives_nothing(gold_member, promotions):
    Tier.objects.filter(code="GOLD").update(points_multiplier=D("2.00"))
    promotions(MEMBER_DAY)

    result = detail(Member.objects.select_related("tier").get(pk=gold_member.pk))

    assert result.points == 200
    assert result.bonuses == []


def test_only_the_largest_of_several_larger_promotions_counts(gold_member, promotions):
    promotions(MEMBER_DAY, WECHAT_TRIPLE)

    result = detail(gold_member)

    assert result.points == 300
    assert result.bonuses == [(WECHAT_TRIPLE, 180)]


def test_larger_and_multiply_promotions_stack_and_each_gets_its_own_extra(gold_member, promotions):
    promotions(MEMBER_DAY, WEDNESDAY_DOUBLE)

    result = detail(gold_member)

    # max(1.20, 1.50) x 2 = 3: 300 points; without the member day 1.20 x 2 = 240, without the double 150.
    assert result.points == 300
    assert result.bonuses == [(MEMBER_DAY, 60), (WEDNESDAY_DOUBLE, 150)]


def test_two_multiply_promotions_multiply_together(member, promotions):
    other = EarnBonus(factor=D("1.50"), stacking=EarnBonus.MULTIPLY, label="新店开业", key=4)
    promotions(WEDNESDAY_DOUBLE, other)

    result = detail(member)

    assert result.points == 300  # 100 x 2 x 1.5
    assert result.bonuses == [(WEDNESDAY_DOUBLE, 150), (other, 100)]


def test_promotions_round_down_on_whole_base_points(member, promotions):
    promotions(EarnBonus(factor=D("1.50"), stacking=EarnBonus.MULTIPLY, label="x", key=5))

    result = detail(member, amount="3.99")

    assert (result.points, result.bonuses[0][1]) == (4, 1)  # 3 base points x 1.5 = 4.5


def test_a_provider_gets_the_purchase_and_its_lines(member, promotions):
    calls = promotions()
    lines = [{"sku": "A", "category": "FOOD", "amount": "100.00", "quantity": "1"}]

    result = detail(member, payment_method="wechat", lines=lines)

    assert (result.points, result.bonuses) == (100, [])
    assert [(call["member"], call["store"], call["payment_method"], call["lines"]) for call in calls] == [
        (member.pk, "DEPT001", "wechat", 1)]


def test_points_for_purchase_is_the_detail_s_points(gold_member, promotions):
    promotions(MEMBER_DAY, WEDNESDAY_DOUBLE)

    points = points_for_purchase(member=gold_member, store=Store.objects.get(code="DEPT001"), amount=D("100.00"),
                                 occurred_at=timezone.now())

    assert points == 300


def test_stacking_must_be_multiply_or_larger():
    with pytest.raises(ValueError, match="stacking"):
        EarnBonus(factor=D("2"), stacking="add", label="x", key=1)


def test_the_ledger_reason_names_the_promotions(member, promotions, ledgers_balanced):
    other = EarnBonus(factor=D("1.5"), stacking=EarnBonus.MULTIPLY, label="新店开业", key=4)
    promotions(WEDNESDAY_DOUBLE, other)

    purchase = buy(member)

    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.EARN)
    assert entry.points == purchase.points_earned == 300
    assert entry.reason == "purchase on receipt R-1, 周三双倍积分 x2.00; 新店开业 x1.50"
    assert Purchase.objects.get().promotions_text == "周三双倍积分 x2.00; 新店开业 x1.50"
    ledgers_balanced()


def test_a_purchase_without_promotions_keeps_the_plain_reason(member, promotions):
    promotions()

    buy(member)

    assert PointsEntry.objects.get(kind=PointsEntry.Kind.EARN).reason == "purchase on receipt R-1"
    assert Purchase.objects.get().promotions_text == ""


def test_released_held_points_name_the_promotion(member, promotions, ledgers_balanced):
    promotions(WEDNESDAY_DOUBLE)
    purchase = buy(member, store="AUTO001", amount="500.00")
    assert PointsHold.objects.get().points == purchase.points_earned == 1000
    assert not PointsEntry.objects.filter(kind=PointsEntry.Kind.EARN).exists()

    assert points_holds_release(now=timezone.now() + timedelta(days=8)) == 1

    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.EARN)
    assert entry.points == 1000
    assert entry.reason == "pending points of receipt R-1 released, 周三双倍积分 x2.00"
    ledgers_balanced()


def test_a_long_list_of_promotions_is_cut_to_the_purchase_field(member, promotions):
    promotions(*[EarnBonus(factor=D("1.01"), stacking=EarnBonus.MULTIPLY, label="很长的活动名称" * 3, key=n)
                 for n in range(12)])

    purchase = buy(member, amount="10000.00")

    stored = Purchase.objects.get(pk=purchase.pk).promotions_text
    assert len(stored) == 200 and stored.endswith("…")


# --- listeners of purchases and returns -----------------------------------------------------------------------------


@pytest.fixture
def recorded(no_other_hooks):
    """A listener of recorded purchases: what it saw."""
    seen = []

    def listener(*, purchase, bonuses):
        seen.append({"purchase": purchase.pk, "member": purchase.member_id, "bonuses": bonuses,
                     "stored": Purchase.objects.filter(pk=purchase.pk).exists()})

    no_other_hooks["recorded"].append(listener)
    return seen


def test_a_listener_hears_of_a_member_s_purchase_with_its_promotions(member, promotions, recorded):
    promotions(WEDNESDAY_DOUBLE)

    purchase = buy(member)

    assert recorded == [{"purchase": purchase.pk, "member": member.pk, "bonuses": [(WEDNESDAY_DOUBLE, 100)],
                         "stored": True}]


def test_a_listener_hears_of_a_sale_without_a_member(earn_rules, promotions, recorded):
    calls = promotions(WEDNESDAY_DOUBLE)

    purchase = buy(None)

    assert recorded == [{"purchase": purchase.pk, "member": None, "bonuses": [], "stored": True}]
    assert calls == []  # a sale without a member asks no promotion


def test_a_failing_listener_rolls_the_purchase_back(member, no_other_hooks):
    def broken(*, purchase, bonuses):
        raise RuntimeError("campaign down")

    no_other_hooks["recorded"].append(broken)

    with pytest.raises(RuntimeError), transaction.atomic():
        buy(member)

    assert (Purchase.objects.count(), PointsEntry.objects.count()) == (0, 0)


def test_a_second_copy_of_a_receipt_calls_no_listener(member, recorded):
    buy(member)

    with pytest.raises(Exception, match="already recorded"):
        buy(member)

    assert len(recorded) == 1


def test_coupons_a_listener_issues_are_in_the_purchase_answer(member, api, no_other_hooks):
    until = datetime(2026, 12, 31, 23, 59, 59, tzinfo=ZoneInfo("Asia/Shanghai"))

    def issue(*, purchase, bonuses):
        purchase.issued_coupons = [
            {"coupon_code": "C-0001", "name": "满100减10", "discount_text": "10.00", "valid_until": until},
            {"coupon_code": "C-0002", "name": "停车券", "discount_text": "免费停车2小时", "valid_until": None},
        ]

    no_other_hooks["recorded"].append(issue)
    body = {"member_no": member.member_no, "receipt_no": "R-1", "amount": "100.00",
            "occurred_at": timezone.localtime().isoformat()}

    response = api.post("/api/v1/purchases", data=json.dumps(body), content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="k-coupons")

    assert response.status_code == 201, response.content
    assert response.json()["coupons"] == [
        {"coupon_code": "C-0001", "name": "满100减10", "discount_text": "10.00",
         "valid_until": "2026-12-31T23:59:59+08:00"},
        {"coupon_code": "C-0002", "name": "停车券", "discount_text": "免费停车2小时", "valid_until": None},
    ]


def test_a_return_listener_hears_of_the_return_after_it_is_recorded(member, no_other_hooks):
    seen = []

    def listener(*, purchase, purchase_return):
        seen.append((purchase.pk, purchase.returned_amount, purchase_return.pk,
                     PurchaseReturn.objects.filter(pk=purchase_return.pk).exists()))

    no_other_hooks["returned"].append(listener)
    purchase = buy(member)

    record = purchase_return(store=purchase.store, original_receipt_no="R-1", receipt_no="RT-1", amount=D("40.00"))

    assert seen == [(purchase.pk, D("40.00"), record.pk, True)]


# --- points-to-cash days --------------------------------------------------------------------------------------------


@pytest.fixture
def member_with_1000_points(member):
    buy(member, amount="1000.00")
    return Member.objects.get(pk=member.pk)


def cash_days(no_other_hooks, *rates):
    calls = []

    def provider(*, store, on):
        calls.append((store.code, on))
        return list(rates)

    no_other_hooks["cash"].append(provider)
    return calls


def test_cash_out_uses_a_better_points_to_cash_day_and_names_it(member_with_1000_points, dept001, no_other_hooks,
                                                                 ledgers_balanced):
    worse = CashRate(cash_points=50, cash_value=D("0.40"), label="小活动", key=8)
    calls = cash_days(no_other_hooks, worse, CASH_DAY)

    result = points_cash_out(member=member_with_1000_points, points=200, store=dept001, receipt_no="D-1")

    assert (result.cash_value, result.balance, result.promotion) == (D("4.00"), 800, CASH_DAY)
    assert result.entry.reason == "turned into 4.00 yuan on receipt D-1, 积分抵现日 (100 points = 2.00 yuan)"
    assert calls == [("DEPT001", timezone.localdate())]
    ledgers_balanced()


def test_a_points_to_cash_day_worse_than_the_policy_is_not_used(member_with_1000_points, dept001, no_other_hooks):
    cash_days(no_other_hooks, CashRate(cash_points=200, cash_value=D("1.00"), label="小活动", key=8))

    result = points_cash_out(member=member_with_1000_points, points=200, store=dept001, receipt_no="D-1")

    assert (result.cash_value, result.promotion) == (D("2.00"), None)
    assert result.entry.reason == "turned into 2.00 yuan on receipt D-1"


def test_the_best_rate_is_compared_exactly(no_other_hooks, dept001):
    policy = PointsPolicy.current()
    policy.cash_points, policy.cash_value = 100, D("0.33")
    # 0.01 per 3 points (0.00333...) beats 0.33 per 100 (0.0033); 0.33 per 100 ties with the policy.
    better = CashRate(cash_points=3, cash_value=D("0.01"), label="更好", key=1)
    tie = CashRate(cash_points=100, cash_value=D("0.33"), label="一样", key=2)
    cash_days(no_other_hooks, tie)

    assert cash_rate_best(store=dept001, on=timezone.localdate(), policy=policy) is policy

    cash_days(no_other_hooks, better)

    assert cash_rate_best(store=dept001, on=timezone.localdate(), policy=policy) == better


def test_the_policy_s_limits_per_receipt_still_apply_on_a_points_to_cash_day(member_with_1000_points, dept001,
                                                                             no_other_hooks):
    cash_days(no_other_hooks, CASH_DAY)

    with pytest.raises(CashOutLimitExceeded):
        points_cash_out(member=member_with_1000_points, points=99, store=dept001, receipt_no="D-1")

    assert not PointsEntry.objects.filter(kind=PointsEntry.Kind.CASH_OUT).exists()


def test_cash_value_of_takes_a_points_to_cash_day(db):
    assert cash_value_of(150, CASH_DAY) == D("3.00")
    assert cash_value_of(7, CashRate(cash_points=3, cash_value=D("0.01"), label="x", key=1)) == D("0.02")


def test_the_redeem_answer_shows_the_day_s_cash_value(member_with_1000_points, api, no_other_hooks):
    cash_days(no_other_hooks, CASH_DAY)
    body = {"member_no": member_with_1000_points.member_no, "points": 300, "receipt_no": "D-1"}

    response = api.post("/api/v1/points/redeem", data=json.dumps(body), content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="k-redeem")

    assert response.status_code == 201, response.content
    assert (response.json()["cash_value"], response.json()["balance"]) == ("6.00", 700)
