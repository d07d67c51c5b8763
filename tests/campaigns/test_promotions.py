"""Points promotions (积分活动): multipliers by day, weekday, store or format, tier and payment method through the POS,
how they stack with a paid tier, points-to-cash days, the checks of their settings and their results."""

import itertools
import json
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

import campaigns.promotion_hooks  # noqa: F401 - registers the providers and the purchase listener
from campaigns.models import PointsPromotion, PromotionCashOut, PromotionCredit
from campaigns.queries_promotions import promotion_results
from campaigns.services.promotions import points_promotion_check, promotion_cash_rates, promotion_earn_bonuses
from core.errors import ValidationFailed
from membership.models import EarnRule, Member, PointsEntry, PointsPolicy, Purchase, Tier
from membership.services.points import points_cash_out
from membership.services.purchases import purchase_record
from membership.services.tiers import paid_tier_buy
from stores.models import Format, Store
from stores.services import terminal_create
from tests.membership.conftest import register

PURCHASES, REDEEM = "/api/v1/purchases", "/api/v1/points/redeem"
WECHAT_DOUBLE = "周三微信支付双倍积分"
_keys = itertools.count(1)
_codes = itertools.count(1)


def make_promotion(*, stores=(), formats=(), tiers=(), **fields) -> PointsPromotion:
    """A points promotion running from a month ago to a month ahead, checked as the admin checks it."""
    today = timezone.localdate()
    values = {"code": f"PROMO{next(_codes)}", "name": WECHAT_DOUBLE, "kind": PointsPromotion.Kind.MULTIPLIER,
              "multiplier": Decimal("2.00"), "starts_on": today - timedelta(days=30),
              "ends_on": today + timedelta(days=30), **fields}
    points_promotion_check(**{name: values.get(name) for name in (
        "kind", "starts_on", "ends_on", "multiplier", "cash_points", "cash_value")},
        weekdays=values.get("weekdays", ""), payment_methods=values.get("payment_methods", ""))
    promotion = PointsPromotion.objects.create(**values)
    promotion.stores.set(stores)
    promotion.formats.set(formats)
    promotion.tiers.set(tiers)
    return promotion


def last_weekday(isoweekday: int, *, hour: int = 11) -> datetime:
    """A moment of that weekday one or two weeks back (never in the future), in local time."""
    today = timezone.localdate()
    day = today - timedelta(days=(today.isoweekday() - isoweekday) % 7 + 7)
    return timezone.make_aware(datetime.combine(day, time(hour, 0)))


def wednesday() -> datetime:
    return last_weekday(3)


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       HTTP_IDEMPOTENCY_KEY=f"promo-{next(_keys)}")


def sale(member, *, occurred_at, payment_method="wechat", amount="100.00", receipt_no=None) -> dict:
    return {
        "member_no": member.member_no if member is not None else None,
        "receipt_no": receipt_no or f"P-{next(_keys)}", "amount": amount,
        "occurred_at": occurred_at.isoformat(), "payment_method": payment_method,
        "lines": [{"sku": "6920152400012", "category": "FOOD", "amount": amount, "quantity": 1}],
    }


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def earn_rules(reference_stores):
    for code in ("DEPT", "SUPER"):
        EarnRule.objects.create(format=Format.objects.get(code=code), amount_per_point=Decimal("1.00"))


@pytest.fixture
def member(earn_rules, dept001):
    return register(name="李建国", phone="13800138000", store=dept001)


@pytest.fixture
def plus_member(member, dept001, hq_admin):
    """李建国 with Plus (1.5x points) bought a month ago, so it runs on the Wednesdays of the tests."""
    paid_tier_buy(member=member, tier=Tier.objects.get(code="PLUS"), store=dept001, operator=hq_admin,
                  payment_method="cash", today=timezone.localdate() - timedelta(days=30))
    return Member.objects.get(pk=member.pk)


@pytest.fixture
def super001_till(super001):
    _terminal, key = terminal_create(store_code="SUPER001", name="S1")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def dept001_till(dept001):
    _terminal, key = terminal_create(store_code="DEPT001", name="D1")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def wechat_wednesdays(super001):
    """周三微信支付双倍积分: double points paying with WeChat Pay on Wednesdays at every SUPER store."""
    return make_promotion(weekdays="3", payment_methods="wechat", formats=[super001.format])


def earn_entry(member) -> PointsEntry:
    return PointsEntry.objects.filter(member=member, kind=PointsEntry.Kind.EARN).latest("pk")


# --- the double points of the issue -----------------------------------------------------------------------


def test_wechat_on_wednesday_at_a_super_store_earns_double_points_named_in_the_ledger(
        super001_till, member, wechat_wednesdays, ledgers_balanced):
    # when
    response = post(super001_till, PURCHASES, sale(member, occurred_at=wednesday()))

    # then
    assert response.status_code == 201, response.content
    assert response.json()["points_earned"] == 200
    entry = earn_entry(member)
    assert entry.points == 200
    assert WECHAT_DOUBLE in entry.reason
    purchase = Purchase.objects.get(pk=response.json()["purchase_id"])
    assert WECHAT_DOUBLE in purchase.promotions_text
    credit = PromotionCredit.objects.get()
    assert (credit.promotion, credit.purchase, credit.member_id, credit.extra_points) == (
        wechat_wednesdays, purchase, member.pk, 100)
    ledgers_balanced()


def test_wechat_on_thursday_earns_the_usual_points(super001_till, member, wechat_wednesdays):
    response = post(super001_till, PURCHASES, sale(member, occurred_at=last_weekday(4)))

    assert response.json()["points_earned"] == 100
    assert WECHAT_DOUBLE not in earn_entry(member).reason
    assert not PromotionCredit.objects.exists()


def test_cash_on_wednesday_earns_the_usual_points(super001_till, member, wechat_wednesdays):
    response = post(super001_till, PURCHASES, sale(member, occurred_at=wednesday(), payment_method="cash"))

    assert response.json()["points_earned"] == 100
    assert not PromotionCredit.objects.exists()


def test_the_payment_method_a_till_sends_in_capitals_still_matches(super001_till, member, wechat_wednesdays):
    response = post(super001_till, PURCHASES, sale(member, occurred_at=wednesday(), payment_method="WECHAT"))

    assert response.json()["points_earned"] == 200


def test_wechat_on_wednesday_at_a_department_store_earns_the_usual_points(dept001_till, member, wechat_wednesdays):
    response = post(dept001_till, PURCHASES, sale(member, occurred_at=wednesday()))

    assert response.json()["points_earned"] == 100
    assert not PromotionCredit.objects.exists()


def test_a_promotion_outside_its_dates_or_inactive_gives_nothing(super001, member):
    today = timezone.localdate()
    make_promotion(starts_on=today - timedelta(days=60), ends_on=today - timedelta(days=40))
    make_promotion(is_active=False)

    purchase = purchase_record(store=super001, member=member, receipt_no="R-1", amount=Decimal("100.00"),
                               occurred_at=wednesday(), payment_method="wechat")

    assert purchase.points_earned == 100


def test_a_sale_without_a_member_records_no_promotion_points(super001_till, earn_rules, wechat_wednesdays):
    response = post(super001_till, PURCHASES, sale(None, occurred_at=wednesday()))

    assert response.status_code == 201, response.content
    assert response.json()["points_earned"] == 0
    assert not PromotionCredit.objects.exists()


# --- where, for whom --------------------------------------------------------------------------------------


def test_a_store_list_wins_over_a_format_list(super001, dept001, member):
    make_promotion(stores=[dept001], formats=[super001.format])

    at_dept = purchase_record(store=dept001, member=member, receipt_no="R-1", amount=Decimal("100.00"),
                              occurred_at=wednesday())
    at_super = purchase_record(store=super001, member=member, receipt_no="R-2", amount=Decimal("100.00"),
                               occurred_at=wednesday())

    assert (at_dept.points_earned, at_super.points_earned) == (200, 100)


def test_a_promotion_for_a_paid_tier_reaches_its_members_only(super001, member, plus_member, dept001):
    make_promotion(name="Plus会员三倍积分", multiplier=Decimal("3.00"), tiers=[Tier.objects.get(code="PLUS")],
                   stacking=PointsPromotion.Stacking.LARGER)
    other = register(name="王芳", phone="13800138001", store=dept001)

    plus = purchase_record(store=super001, member=plus_member, receipt_no="R-1", amount=Decimal("100.00"),
                           occurred_at=wednesday())
    normal = purchase_record(store=super001, member=other, receipt_no="R-2", amount=Decimal("100.00"),
                             occurred_at=wednesday())

    assert (plus.points_earned, normal.points_earned) == (300, 100)


def test_a_promotion_for_an_earned_tier_leaves_other_tiers_out(super001, member):
    make_promotion(tiers=[Tier.objects.get(code="GOLD")])

    purchase = purchase_record(store=super001, member=member, receipt_no="R-1", amount=Decimal("100.00"),
                               occurred_at=wednesday())

    assert purchase.points_earned == 100


# --- stacking with Plus (1.5x) ------------------------------------------------------------------------------


def test_a_multiplying_promotion_multiplies_the_plus_multiplier(super001_till, plus_member, super001):
    make_promotion(weekdays="3", payment_methods="wechat", formats=[super001.format],
                   stacking=PointsPromotion.Stacking.MULTIPLY)

    response = post(super001_till, PURCHASES, sale(plus_member, occurred_at=wednesday()))

    assert response.json()["points_earned"] == 300  # 100 x 1.5 x 2
    assert PromotionCredit.objects.get().extra_points == 150


def test_a_larger_of_the_two_promotion_takes_the_larger_multiplier(super001_till, plus_member, super001):
    make_promotion(weekdays="3", payment_methods="wechat", formats=[super001.format],
                   stacking=PointsPromotion.Stacking.LARGER)

    response = post(super001_till, PURCHASES, sale(plus_member, occurred_at=wednesday()))

    assert response.json()["points_earned"] == 200  # max(1.5, 2) x 100
    assert PromotionCredit.objects.get().extra_points == 50


# --- one query --------------------------------------------------------------------------------------------------


def test_the_promotions_of_a_purchase_are_found_with_one_query(super001, member, wechat_wednesdays,
                                                                django_assert_num_queries):
    make_promotion(stores=[super001], tiers=[Tier.objects.get(code="NORMAL")])
    make_promotion(payment_methods="alipay")
    member = Member.objects.select_related("tier", "paid_tier").get(pk=member.pk)

    with django_assert_num_queries(1):
        bonuses = promotion_earn_bonuses(member=member, store=super001, occurred_at=wednesday(),
                                         payment_method="wechat", lines=[])

    assert sorted(bonus.factor for bonus in bonuses) == [Decimal("2.00"), Decimal("2.00")]


# --- points-to-cash days ------------------------------------------------------------------------------------------


@pytest.fixture
def cash_day(super001):
    """积分抵现日 today at SUPER stores: 100 points = 2.00 yuan (the policy's is 100 = 1.00)."""
    today = timezone.localdate()
    return make_promotion(name="积分抵现日", kind=PointsPromotion.Kind.CASH_RATE, cash_points=100,
                          cash_value=Decimal("2.00"), starts_on=today, ends_on=today, formats=[super001.format])


def test_a_points_to_cash_day_gives_the_better_rate_and_names_it(super001_till, member, cash_day,
                                                                   ledgers_balanced):
    # given
    purchase_record(store=Store.objects.get(code="DEPT001"), member=member, receipt_no="R-1",
                    amount=Decimal("1000.00"), occurred_at=timezone.now() - timedelta(minutes=5))

    # when
    response = post(super001_till, REDEEM, {"member_no": member.member_no, "points": 500, "receipt_no": "C-1"})

    # then
    assert response.status_code == 201, response.content
    assert response.json()["cash_value"] == "10.00"
    entry = PointsEntry.objects.get(member=member, kind=PointsEntry.Kind.CASH_OUT)
    assert "积分抵现日" in entry.reason
    assert promotion_results(cash_day) == {"kind": "cash_rate", "cash_outs": 1, "members": 1,
                                           "points_cashed": 500}
    ledgers_balanced()


def test_a_cash_day_counts_only_the_cash_outs_its_own_rate_paid(super001, dept001, member, cash_day):
    # given: another points-to-cash day whose name contains the first's, at DEPT stores
    today = timezone.localdate()
    other = make_promotion(name="周六积分抵现日", code="SAT_CASH", kind=PointsPromotion.Kind.CASH_RATE,
                           cash_points=100, cash_value=Decimal("1.50"), starts_on=today, ends_on=today,
                           formats=[dept001.format])
    purchase_record(store=dept001, member=member, receipt_no="R-1", amount=Decimal("1000.00"),
                    occurred_at=timezone.now() - timedelta(minutes=5))

    # when
    points_cash_out(member=member, points=300, store=dept001, receipt_no="C-1")
    points_cash_out(member=member, points=200, store=super001, receipt_no="C-2")

    # then
    assert promotion_results(other)["points_cashed"] == 300
    assert promotion_results(cash_day)["points_cashed"] == 200
    record = PromotionCashOut.objects.get(promotion=other)
    assert (record.points, record.cash_value) == (300, Decimal("4.50"))


def test_a_points_to_cash_day_leaves_other_stores_at_the_policy_rate(dept001, member, cash_day):
    purchase_record(store=dept001, member=member, receipt_no="R-1", amount=Decimal("1000.00"),
                    occurred_at=timezone.now() - timedelta(minutes=5))

    cash_out = points_cash_out(member=member, points=500, store=dept001, receipt_no="C-1")

    assert cash_out.cash_value == Decimal("5.00")
    assert cash_out.promotion is None
    assert promotion_cash_rates(store=dept001, on=timezone.localdate()) == []


def test_a_points_to_cash_day_runs_only_on_its_weekdays(super001, cash_day):
    today = timezone.localdate()
    cash_day.weekdays = str(today.isoweekday() % 7 + 1)  # tomorrow's weekday
    cash_day.ends_on = today + timedelta(days=1)
    cash_day.save()

    assert promotion_cash_rates(store=super001, on=today) == []
    assert len(promotion_cash_rates(store=super001, on=today + timedelta(days=1))) == 1


# --- checks of the settings -----------------------------------------------------------------------------------


def _check(**changes):
    today = timezone.localdate()
    values = {"kind": "multiplier", "starts_on": today, "ends_on": today, "multiplier": Decimal("2.00"),
              **changes}
    with pytest.raises(ValidationFailed) as refused:
        points_promotion_check(**values)
    return refused.value.fields


def test_a_promotion_cannot_end_before_it_starts(db):
    today = timezone.localdate()
    assert "ends_on" in _check(starts_on=today, ends_on=today - timedelta(days=1))


@pytest.mark.parametrize("multiplier", [Decimal("0.50"), Decimal("10.50"), None])
def test_a_multiplier_is_from_1_to_10(db, multiplier):
    assert "multiplier" in _check(multiplier=multiplier)


def test_a_points_to_cash_day_needs_its_rate(db):
    fields = _check(kind="cash_rate", cash_points=None, cash_value=None)
    assert {"cash_points", "cash_value"} <= set(fields)


def test_a_points_to_cash_day_must_beat_the_policy_rate(db):
    PointsPolicy.current()
    fields = _check(kind="cash_rate", cash_points=200, cash_value=Decimal("1.00"))
    assert "better rate" in fields["cash_value"][0]


def test_weekdays_are_1_to_7(db):
    assert "weekdays" in _check(weekdays="3,8")


def test_good_settings_pass(db):
    today = timezone.localdate()
    points_promotion_check(kind="cash_rate", starts_on=today, ends_on=today, cash_points=100,
                           cash_value=Decimal("1.50"), weekdays="3, 6", payment_methods="wechat")


# --- results ------------------------------------------------------------------------------------------------------


def test_results_count_purchases_members_extra_points_and_their_cash_value(super001, member, dept001,
                                                                          wechat_wednesdays):
    other = register(name="王芳", phone="13800138001", store=dept001)
    for receipt_no, who, amount in (("R-1", member, "100.00"), ("R-2", member, "50.00"), ("R-3", other, "30.00")):
        purchase_record(store=super001, member=who, receipt_no=receipt_no, amount=Decimal(amount),
                        occurred_at=wednesday(), payment_method="wechat")
    purchase_record(store=super001, member=other, receipt_no="R-4", amount=Decimal("80.00"),
                    occurred_at=wednesday(), payment_method="cash")

    results = promotion_results(wechat_wednesdays)

    assert results == {
        "kind": "multiplier", "purchases": 3, "members": 2, "extra_points": 180,
        "extra_points_value": Decimal("1.80"), "sales": Decimal("180.00"), "returned": Decimal("0.00"),
    }
