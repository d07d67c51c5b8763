"""purchase_record and the earning rules: per format, excluded categories, tier and campaign multipliers."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from membership.errors import MemberNotActive, MemberNotFound, PurchaseInvalid, ReceiptAlreadyRecorded
from membership.models import (
    EarnRule,
    Member,
    MemberIdentity,
    PointsDebtEntry,
    PointsEntry,
    PointsHold,
    Purchase,
    Tier,
)
from membership.services import (
    EarnBonus,
    member_for_pos,
    member_merge_request,
    member_points_multiplier,
    member_status_set,
    points_for_purchase,
    purchase_record,
    purchase_return,
)
from stores.models import Format, Store
from tests.membership.conftest import register

D = Decimal


@pytest.fixture
def earn_rules(reference_stores):
    """DEPT 1 point per yuan; SUPER 1 point per 2 yuan without tobacco; AUTO holds points 7 days."""
    return {
        "DEPT": EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=D("1.00")),
        "SUPER": EarnRule.objects.create(format=Format.objects.get(code="SUPER"), amount_per_point=D("2.00"),
                                         excluded_categories="TOBACCO, LOTTERY"),
        "AUTO": EarnRule.objects.create(format=Format.objects.get(code="AUTO"), amount_per_point=D("1.00"),
                                        pending_days=7),
    }


@pytest.fixture
def member(dept001):
    return register(name="李建国", phone="13800138000", store=dept001)


@pytest.fixture
def gold_member(member):
    Member.objects.filter(pk=member.pk).update(tier=Tier.objects.get(code="GOLD"))
    return Member.objects.get(pk=member.pk)


@pytest.fixture
def plus_member(member):
    Member.objects.filter(pk=member.pk).update(
        paid_tier=Tier.objects.get(code="PLUS"), paid_tier_until=timezone.localdate() + timedelta(days=30)
    )
    return Member.objects.get(pk=member.pk)


def store(code: str) -> Store:
    return Store.objects.select_related("format").get(code=code)


def buy(member, code="DEPT001", amount="100.00", receipt_no="R-1", lines=(), **extra) -> Purchase:
    return purchase_record(store=store(code), member=member, receipt_no=receipt_no, amount=D(amount),
                           occurred_at=extra.pop("occurred_at", timezone.now()), lines=lines, **extra)


def balance(member) -> int:
    return Member.objects.values_list("points", flat=True).get(pk=member.pk)


def counts() -> tuple[int, int, int, int]:
    return (Purchase.objects.count(), PointsEntry.objects.count(), PointsHold.objects.count(),
            PointsDebtEntry.objects.count())


# --- earning per format --------------------------------------------------------------------------


def test_department_store_earns_one_point_per_yuan_rounded_down(earn_rules, member, ledgers_balanced):
    purchase = buy(member, "DEPT001", "123.99")

    assert purchase.points_earned == 123
    assert balance(member) == 123
    ledgers_balanced()


def test_supermarket_earns_one_point_per_two_yuan(earn_rules, member):
    purchase = buy(member, "SUPER001", "125.00")

    assert purchase.points_earned == 62
    assert balance(member) == 62


def test_format_without_an_earn_rule_earns_one_point_per_yuan(reference_stores, member):
    purchase = buy(member, "ELEC001", "88.80")

    assert purchase.points_earned == 88


def test_an_inactive_earn_rule_earns_nothing(earn_rules, member):
    EarnRule.objects.filter(pk=earn_rules["DEPT"].pk).update(is_active=False)

    purchase = buy(member, "DEPT001", "500.00")

    assert purchase.points_earned == 0
    assert not PointsEntry.objects.filter(member=member).exists()


def test_excluded_categories_earn_nothing(earn_rules, member):
    lines = [
        {"sku": "6901028075831", "category": "TOBACCO", "amount": D("40.00"), "quantity": 2},
        {"sku": "6920152400012", "category": "FOOD", "amount": D("60.00"), "quantity": 1},
    ]

    purchase = buy(member, "SUPER001", "100.00", lines=lines)

    assert purchase.points_earned == 30
    assert purchase.lines[0] == {"sku": "6901028075831", "category": "TOBACCO", "amount": "40.00", "quantity": "2"}


def test_excluded_lines_above_the_amount_leave_nothing_to_earn(earn_rules, member):
    lines = [{"sku": "1", "category": "LOTTERY", "amount": D("150.00"), "quantity": 1}]

    purchase = buy(member, "SUPER001", "100.00", lines=lines)

    assert purchase.points_earned == 0
    assert balance(member) == 0
    assert not PointsEntry.objects.exists()


def test_a_purchase_too_small_for_a_point_is_recorded_without_an_entry(earn_rules, member):
    purchase = buy(member, "SUPER001", "1.99")

    assert Purchase.objects.filter(pk=purchase.pk, points_earned=0).exists()
    assert not PointsEntry.objects.exists()


# --- multipliers ---------------------------------------------------------------------------------------


def test_gold_tier_multiplies_points_and_rounds_down(earn_rules, gold_member):
    purchase = buy(gold_member, "DEPT001", "99.00")

    assert purchase.points_earned == 118  # 99 x 1.2 = 118.8


def test_plus_member_earns_one_and_a_half_times(earn_rules, plus_member, ledgers_balanced):
    purchase = buy(plus_member, "DEPT001", "101.00")

    assert purchase.points_earned == 151  # 101 x 1.5 = 151.5
    assert balance(plus_member) == 151
    ledgers_balanced()


def test_plus_multiplier_applies_to_the_base_points_of_the_format(earn_rules, plus_member):
    purchase = buy(plus_member, "SUPER001", "100.00")

    assert purchase.points_earned == 75  # 50 base points x 1.5


def test_expired_plus_term_earns_the_earned_tier_rate(earn_rules, plus_member):
    Member.objects.filter(pk=plus_member.pk).update(paid_tier_until=timezone.localdate() - timedelta(days=1))

    purchase = buy(Member.objects.get(pk=plus_member.pk), "DEPT001", "100.00")

    assert purchase.points_earned == 100


def test_the_better_of_earned_and_paid_tier_multiplier_applies(plus_member):
    Member.objects.filter(pk=plus_member.pk).update(tier=Tier.objects.get(code="GOLD"))
    member = Member.objects.select_related("tier", "paid_tier").get(pk=plus_member.pk)
    today = timezone.localdate()

    assert member_points_multiplier(member, on=today) == D("1.50")
    assert member_points_multiplier(member, on=member.paid_tier_until + timedelta(days=1)) == D("1.20")


@pytest.fixture
def double_points_for_wechat(monkeypatch):
    calls = []

    def wechat_double(*, member, store, occurred_at, payment_method, lines):
        calls.append({"member": member.pk, "store": store.code, "lines": len(lines)})
        return [EarnBonus(factor=D("2"), stacking=EarnBonus.MULTIPLY, label="微信双倍积分", key=1)] \
            if payment_method == "WECHAT" else []

    monkeypatch.setattr("membership.services.points.EARN_BONUSES", [wechat_double])
    return calls


def test_campaign_multipliers_multiply_with_the_tier(earn_rules, gold_member, double_points_for_wechat):
    purchase = buy(gold_member, "DEPT001", "99.00", payment_method="WECHAT")

    assert purchase.points_earned == 237  # 99 x 1.2 x 2 = 237.6
    assert double_points_for_wechat == [{"member": gold_member.pk, "store": "DEPT001", "lines": 0}]


def test_a_campaign_that_does_not_apply_changes_nothing(earn_rules, member, double_points_for_wechat):
    purchase = buy(member, "DEPT001", "99.00", payment_method="CASH")

    assert purchase.points_earned == 99


def test_points_for_purchase_without_saving_anything(earn_rules, member, super001):
    member = Member.objects.select_related("tier", "paid_tier").get(pk=member.pk)
    lines = [{"sku": "1", "category": "TOBACCO", "amount": "10.00", "quantity": 1}]

    points = points_for_purchase(member=member, store=super001, amount=D("31.00"), occurred_at=timezone.now(),
                                 lines=lines)

    assert points == 10  # (31 - 10) / 2 = 10.5
    assert not Purchase.objects.exists()


# --- the ledger entry ----------------------------------------------------------------------------------


def test_earn_entry_names_the_receipt_the_purchase_and_the_issuing_company(earn_rules, member, super001):
    terminal_store = store("SUPER001")

    purchase = buy(member, "SUPER001", "40.00", receipt_no="S-778")

    entry = PointsEntry.objects.get(member=member)
    assert (entry.kind, entry.points, entry.balance_after) == (PointsEntry.Kind.EARN, 20, 20)
    assert (entry.store, entry.receipt_no, entry.cause) == (super001, "S-778", purchase)
    assert entry.legal_entity == terminal_store.format.legal_entity
    assert (purchase.format, purchase.legal_entity) == (terminal_store.format, terminal_store.format.legal_entity)


# --- receipts are counted once ----------------------------------------------------------------------------


def test_the_same_receipt_at_the_same_store_is_refused_and_earns_once(earn_rules, member):
    first = buy(member, "DEPT001", "100.00", receipt_no="R-1")

    with pytest.raises(ReceiptAlreadyRecorded) as error:
        buy(member, "DEPT001", "100.00", receipt_no="R-1")

    assert error.value.status == 409
    assert error.value.code == "validation_error"
    assert "receipt_no" in error.value.fields
    assert str(first.pk) in str(error.value)
    assert Purchase.objects.count() == 1
    assert balance(member) == 100


def test_the_same_receipt_number_at_another_store_is_another_purchase(earn_rules, member):
    buy(member, "DEPT001", "100.00", receipt_no="R-1")
    buy(member, "SUPER001", "100.00", receipt_no="R-1")

    assert Purchase.objects.count() == 2
    assert balance(member) == 150


# --- who may earn ----------------------------------------------------------------------------------------------


def test_a_frozen_member_cannot_earn(earn_rules, member, hq_admin):
    member_status_set(member=member, status=Member.Status.FROZEN, actor=hq_admin, reason="lost card")

    with pytest.raises(MemberNotActive):
        buy(member)

    assert counts() == (0, 0, 0, 0)


def test_a_purchase_for_a_merged_number_goes_to_the_survivor(earn_rules, dept001, hq_admin, hq_approver):
    survivor = register(name="王芳", phone="13900001111", store=dept001)
    merged = register(name="王芳", phone="13900002222", store=dept001)
    _merge(survivor=survivor, merged=merged, hq_admin=hq_admin, hq_approver=hq_approver)

    purchase = buy(member_for_pos(merged.member_no), "DEPT001", "50.00")

    assert purchase.member_id == survivor.pk
    assert balance(survivor) == 50
    assert balance(merged) == 0


def test_a_legacy_number_finds_the_member(member):
    MemberIdentity.objects.create(member=member, source="DEPT_CRM", external_no="1000234567")

    assert member_for_pos("1000234567") == member.pk


def test_an_unknown_number_is_not_found(db):
    with pytest.raises(MemberNotFound):
        member_for_pos("800000000000")


def test_a_legacy_number_of_two_members_must_be_given_as_ours(member, dept001):
    other = register(name="赵伟", phone="13700001111", store=dept001)
    MemberIdentity.objects.create(member=member, source="DEPT_CRM", external_no="42")
    MemberIdentity.objects.create(member=other, source="SUPER_CRM", external_no="42")

    with pytest.raises(PurchaseInvalid) as error:
        member_for_pos("42")

    assert "member_no" in error.value.fields


# --- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": D("12.345")}, "amount"),
        ({"amount": D("0.00")}, "amount"),
        ({"amount": D("-5.00")}, "amount"),
        ({"amount": D("NaN")}, "amount"),
        ({"amount": D("1E+30")}, "amount"),
        ({"receipt_no": ""}, "receipt_no"),
        ({"receipt_no": "R" * 65}, "receipt_no"),
        ({"occurred_at": "2026-01-01"}, "occurred_at"),
        ({"payment_method": "X" * 21}, "payment_method"),
        ({"lines": [{"sku": "", "category": "A", "amount": D("1.00"), "quantity": 1}]}, "lines"),
        ({"lines": [{"sku": "1", "category": "A", "amount": D("-1.00"), "quantity": 1}]}, "lines"),
        ({"lines": [{"sku": "1", "category": "A", "amount": D("1.001"), "quantity": 1}]}, "lines"),
        ({"lines": [{"sku": "1", "category": "A", "amount": D("1.00"), "quantity": 0}]}, "lines"),
        ({"lines": ["not a line"]}, "lines"),
        ({"lines": "not a list"}, "lines"),
    ],
)
def test_bad_purchase_details_are_refused_naming_the_field(earn_rules, member, changes, field):
    details = {"store": store("DEPT001"), "member": member, "receipt_no": "R-1", "amount": D("10.00"),
               "occurred_at": timezone.now(), "lines": ()}
    details.update(changes)

    with pytest.raises(PurchaseInvalid) as error:
        purchase_record(**details)

    assert field in error.value.fields
    assert counts() == (0, 0, 0, 0)


def test_an_amount_given_as_text_is_read_as_money(earn_rules, member):
    purchase = purchase_record(store=store("DEPT001"), member=member, receipt_no="R-1", amount="12.50",
                               occurred_at=timezone.now())

    assert Purchase.objects.get(pk=purchase.pk).amount == D("12.50")
    assert purchase.points_earned == 12


def test_a_sale_in_the_future_is_refused_but_a_till_clock_a_little_ahead_is_not(earn_rules, member):
    with pytest.raises(PurchaseInvalid) as error:
        buy(member, occurred_at=timezone.now() + timedelta(minutes=10))
    assert "occurred_at" in error.value.fields

    buy(member, occurred_at=timezone.now() + timedelta(minutes=4))
    assert Purchase.objects.count() == 1


def test_naive_times_are_refused(earn_rules, member):
    with pytest.raises(PurchaseInvalid) as error:
        buy(member, occurred_at=timezone.now().replace(tzinfo=None))
    assert "occurred_at" in error.value.fields


# --- merges ---------------------------------------------------------------------------------------------------


def _merge(*, survivor, merged, hq_admin, hq_approver):
    from approvals.services import approval_request_approve

    request = member_merge_request(survivor=survivor, merged=merged, requested_by=hq_admin, reason="same person")
    if request.status == request.Status.PENDING:
        approval_request_approve(approval_request=request, approver=hq_approver)
    return request


def test_a_merge_moves_purchases_pending_points_and_points_owed(earn_rules, dept001, hq_admin, hq_approver,
                                                                ledgers_balanced):
    # given: the merged member bought a car (points pending), and owes points after a return
    survivor = register(name="王芳", phone="13900001111", store=dept001)
    merged = register(name="王芳", phone="13900002222", store=dept001)
    buy(merged, "AUTO001", "300.00", receipt_no="A-1")
    buy(merged, "DEPT001", "100.00", receipt_no="D-1")
    from membership.services import points_cash_out

    points_cash_out(member=merged, points=100, store=dept001, receipt_no="D-2")
    purchase_return(store=store("DEPT001"), original_receipt_no="D-1", receipt_no="D-1R", amount=D("100.00"))
    assert Member.objects.get(pk=merged.pk).points_debt == 100
    # when
    _merge(survivor=survivor, merged=merged, hq_admin=hq_admin, hq_approver=hq_approver)
    # then
    assert set(Purchase.objects.values_list("member_id", flat=True)) == {survivor.pk}
    assert PointsHold.objects.get().member_id == survivor.pk
    merged.refresh_from_db()
    survivor.refresh_from_db()
    assert (merged.points_debt, survivor.points_debt) == (0, 100)
    assert list(PointsDebtEntry.objects.filter(member=merged).order_by("pk").values_list("points", "debt_after")) == [
        (100, 100), (-100, 0)]
    assert list(PointsDebtEntry.objects.filter(member=survivor).values_list("points", "debt_after")) == [(100, 100)]
    assert PointsDebtEntry.objects.filter(member=survivor).aggregate(total=Sum("points"))["total"] == 100
    ledgers_balanced()
