"""The daily clearing between the group's companies: cards with fee rules, the points pool, coupons, vouchers, a run
replacing the last one, the matrix netting to zero, locked days refused by the service and by the database."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, InternalError, transaction
from django.utils import timezone

from campaigns.models import CouponRedemption
from campaigns.services import coupon_redeem, coupon_redemptions_release
from cards.models import CardLedgerEntry, Supplier, VoucherProduct
from cards.services import vouchers
from cards.services.ledger import card_post
from membership.models import PointsEntry, PointsPolicy
from settlement import tasks
from settlement.errors import PeriodLocked
from settlement.models import ClearingLine, ClearingRule, ClearingRun, SettlementPeriod
from settlement.queries.clearing import clearing_matrix, points_allocate, points_pool
from settlement.services import clearing
from settlement.services.clearing import (
    clearing_adjustment_add,
    clearing_day_run,
    clearing_days_run,
    period_for_day,
    period_open_on_or_after,
    points_rate,
)
from tests.campaigns.conftest import CouponTemplateFactory, coupon_issue
from tests.cards.test_vouchers import batch_issued, sold
from tests.settlement.conftest import (
    card_adjust,
    card_pay,
    card_refund_at,
    card_reverse_at,
    card_sold,
    local_moment,
    member_earning,
    points_move,
)

D = Decimal


def lines_of(day) -> dict[tuple, tuple]:
    """The day's lines as {(kind, issuer code, honourer code): (count, points, gross, fee, net)}; several lines of
    one key (a coupon given back) are listed in a tuple of tuples."""
    found: dict[tuple, list] = {}
    for line in ClearingLine.objects.filter(business_date=day).select_related("issuer", "honourer"):
        key = (line.kind, line.issuer.code if line.issuer else None, line.honourer.code if line.honourer else None)
        found.setdefault(key, []).append((line.count, line.points, line.gross, line.fee, line.net))
    return {key: values[0] if len(values) == 1 else tuple(sorted(values, key=lambda v: v[2]))
            for key, values in found.items()}


def lock(period: SettlementPeriod, status=SettlementPeriod.Status.LOCKED) -> SettlementPeriod:
    """Put a period in a state the close would (the close itself is tested in test_periods)."""
    SettlementPeriod.objects.filter(pk=period.pk).update(status=status, locked_at=timezone.now())
    period.refresh_from_db()
    return period


@pytest.fixture
def today():
    return timezone.localdate()


# --- periods -------------------------------------------------------------------------------------------------------


def test_the_period_of_a_day_is_its_month_created_open_once(db):
    day = timezone.localdate().replace(day=1) - timedelta(days=40)

    period = period_for_day(day)

    assert (period.code, period.starts_on.day, period.status) == (f"{day:%Y-%m}", 1, SettlementPeriod.Status.OPEN)
    assert (period.ends_on + timedelta(days=1)).day == 1 and period.ends_on.month == day.month
    assert period_for_day(period.ends_on) == period
    assert SettlementPeriod.objects.filter(code=period.code).count() == 1


def test_the_open_period_on_or_after_a_day_skips_closing_and_locked_months(db, today):
    this = period_for_day(today)
    lock(this)
    following = period_for_day(this.ends_on + timedelta(days=1))
    lock(following, SettlementPeriod.Status.CLOSING)

    found = period_open_on_or_after(today)

    assert found.starts_on == following.ends_on + timedelta(days=1)
    assert found.status == SettlementPeriod.Status.OPEN


# --- cards ---------------------------------------------------------------------------------------------------------


def test_card_spending_elsewhere_is_owed_by_the_issuer_less_the_fee_of_its_rule(dept001, super001, elec001, fee_rules,
                                                                                today):
    card = card_sold(store=dept001, amount="2000.00")
    paid_super = card_pay(card, store=super001, amount="500.00")
    card_pay(card, store=elec001, amount="200.00")
    card_pay(card, store=dept001, amount="100.00")
    card_refund_at(paid_super, store=super001, amount="50.00")

    run = clearing_day_run(day=today)

    lines = lines_of(today)
    # 0.6% for SUPER (the pair's rule), 1% for ELEC (DEPT's default rule), nothing at DEPT's own store.
    assert lines[("card_debit", "LE_DEPT", "LE_SUPER")] == (1, 0, D("500.00"), D("3.00"), D("497.00"))
    assert lines[("card_debit", "LE_DEPT", "LE_ELEC")] == (1, 0, D("200.00"), D("2.00"), D("198.00"))
    assert lines[("card_debit", "LE_DEPT", "LE_DEPT")] == (1, 0, D("100.00"), D("0.00"), D("0.00"))
    assert lines[("card_refund", "LE_DEPT", "LE_SUPER")] == (1, 0, D("-50.00"), D("-0.30"), D("-49.70"))
    assert lines[("card_load", "LE_DEPT", "LE_DEPT")] == (1, 0, D("2000.00"), D("0.00"), D("0.00"))
    assert (run.status, run.rows_read, run.lines) == (ClearingRun.Status.DONE, 5, 5)
    assert run.finished_at is not None


def test_a_card_loaded_at_another_company_is_owed_to_the_issuer(dept001, super001, card_product, today):
    card = card_sold(store=super001, amount="100.00")
    card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=D("300.00"), store=dept001,
              created_at=local_moment(today, 10))

    clearing_day_run(day=today)

    # The department store took 300.00 for the supermarket's card: it owes it (net negative: honourer owes issuer).
    assert lines_of(today)[("card_load", "LE_SUPER", "LE_DEPT")] == (1, 0, D("300.00"), D("0.00"), D("-300.00"))


def test_voided_payments_and_adjustments_are_cleared_with_their_signs(dept001, super001, elec001, fee_rules, today):
    card = card_sold(store=dept001, amount="1000.00")
    paid = card_pay(card, store=elec001, amount="200.00")
    card_reverse_at(paid, store=elec001)
    card_adjust(card, amount="-10.00", store=super001)
    card_adjust(card, amount="4.00", store=super001)

    clearing_day_run(day=today)

    lines = lines_of(today)
    assert lines[("card_reverse", "LE_DEPT", "LE_ELEC")] == (1, 0, D("-200.00"), D("-2.00"), D("-198.00"))
    # Taken off at the supermarket, 4.00 put back: the issuer owes the 6.00 the supermarket handed out; no fee.
    assert lines[("card_adjust", "LE_DEPT", "LE_SUPER")] == (2, 0, D("6.00"), D("0.00"), D("6.00"))


def test_only_the_days_ledger_is_cleared_in_local_time(dept001, super001, card_product, today):
    card = card_sold(store=dept001, amount="1000.00", day=today - timedelta(days=1))
    card_pay(card, store=super001, amount="10.00", day=today, hour=0, minute=5)  # 16:05 UTC the day before
    card_pay(card, store=super001, amount="20.00", day=today + timedelta(days=1), hour=0)

    clearing_day_run(day=today)

    assert lines_of(today) == {("card_debit", "LE_DEPT", "LE_SUPER"): (1, 0, D("10.00"), D("0.00"), D("10.00"))}


def test_a_card_without_an_issuer_is_kept_on_the_diagonal_with_nothing_owed(dept001, super001, card_product, today):
    card = card_sold(store=dept001, amount="100.00")
    type(card).objects.filter(pk=card.pk).update(issuer=None)
    card_pay(card, store=super001, amount="30.00")

    clearing_day_run(day=today)

    assert lines_of(today)[("card_debit", None, "LE_SUPER")] == (1, 0, D("30.00"), D("0.00"), D("0.00"))


# --- points --------------------------------------------------------------------------------------------------------


def test_points_spent_are_paid_by_the_earning_companies_by_their_pool_share(dept001, super001, elec001, today):
    earlier = today - timedelta(days=10)
    spender = member_earning(store=dept001, points=3000, day=earlier)
    member_earning(store=super001, points=1000, day=earlier)
    points_move(spender, kind=PointsEntry.Kind.REDEEM, points=-400, store=elec001, day=today)
    points_move(spender, kind=PointsEntry.Kind.CASH_OUT, points=-200, store=elec001, day=today)

    clearing_day_run(day=today)

    lines = lines_of(today)
    # 3:1 pool share; 100 points = 1.00 yuan (the points policy).
    assert lines[("points_redeem", "LE_DEPT", "LE_ELEC")] == (1, 300, D("3.00"), D("0.00"), D("3.00"))
    assert lines[("points_redeem", "LE_SUPER", "LE_ELEC")] == (0, 100, D("1.00"), D("0.00"), D("1.00"))
    assert lines[("points_cash_out", "LE_DEPT", "LE_ELEC")][1:] == (150, D("1.50"), D("0.00"), D("1.50"))
    assert lines[("points_cash_out", "LE_SUPER", "LE_ELEC")][1:] == (50, D("0.50"), D("0.00"), D("0.50"))


def test_points_earned_are_diagonal_lines_net_of_reversals(dept001, super001, today):
    member = member_earning(store=dept001, points=500, day=today)
    points_move(member, kind=PointsEntry.Kind.REVERSAL, points=-120, store=dept001, day=today)
    points_move(member, kind=PointsEntry.Kind.GIFT, points=-80, store=dept001, day=today)

    clearing_day_run(day=today)

    lines = lines_of(today)
    assert lines[("points_earn", "LE_DEPT", "LE_DEPT")] == (2, 380, D("3.80"), D("0.00"), D("0.00"))
    # A gift is redeemed points; earned only at DEPT, spent at DEPT: nothing owed.
    assert lines[("points_redeem", "LE_DEPT", "LE_DEPT")] == (1, 80, D("0.80"), D("0.00"), D("0.00"))


def test_points_expired_are_shared_by_the_pool_on_the_diagonal(dept001, super001, today):
    earlier = today - timedelta(days=30)
    member = member_earning(store=dept001, points=600, day=earlier)
    member_earning(store=super001, points=400, day=earlier)
    points_move(member, kind=PointsEntry.Kind.EXPIRE, points=-250, store=None, day=today)

    clearing_day_run(day=today)

    lines = lines_of(today)
    assert lines[("points_expire", "LE_DEPT", "LE_DEPT")][1:] == (150, D("1.50"), D("0.00"), D("0.00"))
    assert lines[("points_expire", "LE_SUPER", "LE_SUPER")][1:] == (100, D("1.00"), D("0.00"), D("0.00"))


def test_points_earned_outside_the_365_day_window_take_no_share(dept001, super001, elec001, today):
    old = member_earning(store=super001, points=5000, day=today - timedelta(days=365))
    member_earning(store=dept001, points=1000, day=today - timedelta(days=364))
    points_move(old, kind=PointsEntry.Kind.REDEEM, points=-100, store=elec001, day=today)

    assert points_pool(day=today) == {dept001.format.legal_entity_id: 1000}
    clearing_day_run(day=today)

    assert set(lines_of(today)) == {("points_redeem", "LE_DEPT", "LE_ELEC")}


def test_with_nothing_earned_in_the_window_the_redeeming_company_is_the_issuer(dept001, super001, today):
    member = member_earning(store=super001, points=0)
    points_move(member, kind=PointsEntry.Kind.ADJUST, points=500, store=super001, day=today - timedelta(days=400))
    points_move(member, kind=PointsEntry.Kind.REDEEM, points=-300, store=dept001, day=today)

    clearing_day_run(day=today)

    assert lines_of(today) == {("points_redeem", "LE_DEPT", "LE_DEPT"): (1, 300, D("3.00"), D("0.00"), D("0.00"))}


def test_a_pair_rule_sets_its_own_points_rate(companies, dept001, elec001, today):
    ClearingRule.objects.create(issuer=companies["DEPT"], honourer=companies["ELEC"],
                                points_yuan_per_point=D("0.008"))
    member = member_earning(store=dept001, points=1000, day=today - timedelta(days=1))
    points_move(member, kind=PointsEntry.Kind.REDEEM, points=-250, store=elec001, day=today)

    clearing_day_run(day=today)

    assert lines_of(today)[("points_redeem", "LE_DEPT", "LE_ELEC")] == (1, 250, D("2.00"), D("0.00"), D("2.00"))


def test_the_points_rate_falls_back_from_the_pair_to_the_default_rule_to_the_policy(companies):
    dept, super_, elec = companies["DEPT"], companies["SUPER"], companies["ELEC"]
    PointsPolicy.objects.filter(pk=PointsPolicy.current().pk).update(cash_points=200, cash_value=D("1.00"))
    ClearingRule.objects.create(issuer=dept, honourer=None, points_yuan_per_point=D("0.012"))
    ClearingRule.objects.create(issuer=dept, honourer=super_, card_fee_rate=D("0.005"))  # no points rate of its own
    ClearingRule.objects.create(issuer=dept, honourer=elec, points_yuan_per_point=D("0.009"))

    assert points_rate(dept.pk, elec.pk) == D("0.009")
    assert points_rate(dept.pk, super_.pk) == D("0.012")
    assert points_rate(super_.pk, dept.pk) == D("0.005")


@pytest.mark.parametrize(("points", "pool", "expected"), [
    (10, {1: 1, 2: 1, 3: 1}, {1: 4, 2: 3, 3: 3}),
    (7, {1: 50, 2: 30, 3: 20}, {1: 4, 2: 2, 3: 1}),
    (-7, {1: 50, 2: 30, 3: 20}, {1: -4, 2: -2, 3: -1}),
    (1, {1: 1, 2: 3}, {2: 1}),
    (5, {}, {}),
])
def test_points_are_allocated_by_largest_remainder_and_add_up(points, pool, expected):
    parts = points_allocate(points, pool)

    assert parts == expected
    assert sum(parts.values()) == (points if pool else 0)


# --- coupons and vouchers ------------------------------------------------------------------------------------------


def test_a_coupon_funded_by_another_company_is_borne_by_its_funder(companies, super001, today):
    template = CouponTemplateFactory(code="CLR10", amount=D("10.00"), stores=["SUPER001"],
                                     funded_by=companies["DEPT"])
    for receipt in ("C1", "C2"):
        coupon_redeem(code=coupon_issue(template).code, store=super001, member_no=None, receipt_no=receipt,
                      basket_amount=D("100.00"))
    coupon_redemptions_release(store=super001, receipt_no="C2", reason="退货")

    run = clearing_day_run(day=today)

    # Two used, one of them given back the same day: a line each way.
    assert lines_of(today)[("coupon", "LE_DEPT", "LE_SUPER")] == (
        (1, 0, D("-10.00"), D("0.00"), D("-10.00")), (2, 0, D("20.00"), D("0.00"), D("20.00")),
    )
    assert CouponRedemption.objects.filter(status=CouponRedemption.Status.RELEASED).count() == 1
    assert run.rows_read == 3


def test_a_coupon_the_honouring_company_funds_itself_moves_nothing(companies, super001, today):
    template = CouponTemplateFactory(code="OWN5", amount=D("5.00"), stores=["SUPER001"], funded_by=companies["SUPER"])
    coupon_redeem(code=coupon_issue(template).code, store=super001, member_no=None, receipt_no="C9",
                  basket_amount=D("50.00"))

    clearing_day_run(day=today)

    assert lines_of(today) == {("coupon", "LE_SUPER", "LE_SUPER"): (1, 0, D("5.00"), D("0.00"), D("0.00"))}


@pytest.fixture
def voucher_product(db) -> VoucherProduct:
    supplier = Supplier.objects.create(code="SUPCLR", name="益海嘉里", contact_name="王经理")
    return VoucherProduct.objects.create(code="OILCLR", name="食用油 5L", sku="6948195800019", unit="桶",
                                         supplier=supplier, settlement_price=D("58.00"))


def test_a_voucher_redeemed_elsewhere_is_owed_by_the_company_that_sold_it(voucher_product, dept001, super001,
                                                                          hq_admin, hq_approver, today):
    batch = batch_issued(voucher_product, requested_by=hq_admin, approver=hq_approver, units=3, price="100.00")
    voucher = sold(batch, store=dept001, user=hq_admin, count=1)[0]
    vouchers.voucher_redeem(code=voucher.code, quantity=2, receipt_no="V1", store=super001)
    vouchers.voucher_redeem(code=voucher.code, quantity=1, receipt_no="V2", store=dept001)

    clearing_day_run(day=today)

    lines = lines_of(today)
    # 100.00 for 3 units: 2 units are 66.67, 1 unit 33.33.
    assert lines[("voucher", "LE_DEPT", "LE_SUPER")] == (1, 0, D("66.67"), D("0.00"), D("66.67"))
    assert lines[("voucher", "LE_DEPT", "LE_DEPT")] == (1, 0, D("33.33"), D("0.00"), D("0.00"))


# --- the run -------------------------------------------------------------------------------------------------------


def test_running_a_day_again_replaces_its_lines_and_keeps_adjustments(dept001, super001, card_product, hq_admin,
                                                                      today):
    card = card_sold(store=dept001, amount="1000.00")
    card_pay(card, store=super001, amount="100.00")
    first = clearing_day_run(day=today)
    spending = ClearingLine.objects.get(business_date=today, kind="card_debit")
    adjustment = clearing_adjustment_add(corrects=spending, net=D("-5.00"), reason="POS 金额差异", user=hq_admin)
    card_pay(card, store=super001, amount="50.00")

    second = clearing_day_run(day=today)

    assert second.pk == first.pk
    assert ClearingLine.objects.filter(business_date=today).exclude(kind="adjustment").count() == 2
    assert lines_of(today)[("card_debit", "LE_DEPT", "LE_SUPER")] == (2, 0, D("150.00"), D("0.00"), D("150.00"))
    adjustment.refresh_from_db()
    assert adjustment.corrects.kind == "card_debit" and adjustment.corrects.run_id == second.pk
    assert adjustment.net == D("-5.00")


def test_a_failing_run_is_recorded_and_leaves_the_earlier_lines(dept001, super001, card_product, today, monkeypatch):
    card = card_sold(store=dept001, amount="1000.00")
    card_pay(card, store=super001, amount="100.00")
    clearing_day_run(day=today)
    before = list(ClearingLine.objects.filter(business_date=today).values_list("pk", flat=True))

    def broken(*args, **kwargs):
        raise RuntimeError("voucher ledger unreadable")

    monkeypatch.setattr(clearing, "_voucher_lines", broken)
    with pytest.raises(RuntimeError):
        clearing_day_run(day=today)

    run = ClearingRun.objects.get(business_date=today)
    assert run.status == ClearingRun.Status.FAILED
    assert "voucher ledger unreadable" in run.error
    assert list(ClearingLine.objects.filter(business_date=today).values_list("pk", flat=True)) == before


def test_the_matrix_nets_to_zero_and_shows_each_companys_position(companies, dept001, super001, elec001, fee_rules,
                                                                  today):
    dept_card = card_sold(store=dept001, amount="1000.00")
    super_card = card_sold(store=super001, amount="500.00")
    card_pay(dept_card, store=super001, amount="300.00")  # DEPT owes SUPER 298.20
    card_pay(super_card, store=elec001, amount="100.00")  # SUPER owes ELEC 100.00
    card_pay(super_card, store=dept001, amount="40.00")  # SUPER owes DEPT 40.00
    clearing_day_run(day=today)

    matrix = clearing_matrix(start=today, end=today)

    dept, super_, elec = (companies[code].pk for code in ("DEPT", "SUPER", "ELEC"))
    assert matrix.nets_to_zero
    assert [entity.code for entity in matrix.entities] == ["LE_DEPT", "LE_ELEC", "LE_SUPER"]
    assert matrix.owed == {(dept, super_): D("298.20"), (super_, elec): D("100.00"), (super_, dept): D("40.00")}
    assert matrix.position == {dept: D("-258.20"), super_: D("158.20"), elec: D("100.00")}
    assert matrix.pair_net[(dept, super_)] == D("258.20")  # DEPT (the lower code) pays SUPER
    assert matrix.gross[(dept, dept)] == D("1000.00")  # the diagonal is shown in gross only
    assert (dept, dept) not in matrix.owed


def test_the_matrix_of_one_company_keeps_only_its_lines(companies, dept001, super001, elec001, card_product, today):
    super_card = card_sold(store=super001, amount="500.00")
    card_pay(super_card, store=elec001, amount="100.00")
    card_pay(super_card, store=dept001, amount="40.00")
    clearing_day_run(day=today)

    matrix = clearing_matrix(start=today, end=today, entity_ids=[companies["ELEC"].pk])

    assert matrix.owed == {(companies["SUPER"].pk, companies["ELEC"].pk): D("100.00")}


def test_a_day_of_a_locked_or_closing_period_is_refused_naming_the_period(dept001, super001, card_product, today):
    card = card_sold(store=dept001, amount="100.00")
    card_pay(card, store=super001, amount="10.00")
    period = period_for_day(today)
    for status, shown in ((SettlementPeriod.Status.CLOSING, "waiting for approval"),
                          (SettlementPeriod.Status.LOCKED, "locked")):
        SettlementPeriod.objects.filter(pk=period.pk).update(status=status, locked_at=timezone.now())

        with pytest.raises(PeriodLocked) as refused:
            clearing_day_run(day=today)

        assert period.code in str(refused.value) and shown in str(refused.value)
    assert not ClearingLine.objects.exists()
    assert not ClearingRun.objects.exists()


def test_running_many_days_skips_the_days_of_locked_periods(dept001, card_product, today):
    last_of_previous = today.replace(day=1) - timedelta(days=1)
    lock(period_for_day(last_of_previous))

    runs = clearing_days_run(start=last_of_previous - timedelta(days=1), end=today)

    assert [run.business_date for run in runs] == [today.replace(day=1) + timedelta(days=n) for n in range(today.day)]


def test_the_database_refuses_a_clearing_line_for_a_locked_period(dept001, super001, card_product, today):
    card = card_sold(store=dept001, amount="100.00")
    card_pay(card, store=super001, amount="10.00")
    run = clearing_day_run(day=today)
    period = lock(run.period)

    with pytest.raises((IntegrityError, InternalError)), transaction.atomic():
        ClearingLine.objects.create(period=period, business_date=today, run=run, kind="card_debit", net=D("1.00"))
    with pytest.raises((IntegrityError, InternalError)), transaction.atomic():
        ClearingLine.objects.filter(period=period).update(net=D("0.00"))
    with pytest.raises((IntegrityError, InternalError)), transaction.atomic():
        SettlementPeriod.objects.filter(pk=period.pk).update(status=SettlementPeriod.Status.OPEN)

    assert ClearingLine.objects.get(period=period, kind="card_debit").net == D("10.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_locked_periods_lines_cannot_be_deleted(dept001, super001, card_product):
    today = timezone.localdate()
    card = card_sold(store=dept001, amount="100.00")
    card_pay(card, store=super001, amount="10.00")
    run = clearing_day_run(day=today)
    period = lock(run.period)

    with pytest.raises(IntegrityError, match="settlement period is locked"), transaction.atomic():
        ClearingLine.objects.filter(period=period).delete()
    with pytest.raises(IntegrityError, match="settlement period is locked"), transaction.atomic():
        ClearingRun.objects.filter(pk=run.pk).update(rows_read=0)

    assert ClearingLine.objects.filter(period=period).count() == 2


# --- the nightly task ----------------------------------------------------------------------------------------------


def test_the_nightly_task_clears_yesterday(dept001, super001, card_product, today):
    yesterday = today - timedelta(days=1)
    card = card_sold(store=dept001, amount="100.00", day=yesterday)
    card_pay(card, store=super001, amount="10.00", day=yesterday)

    written = tasks.clearing_run_yesterday()

    assert written == 2
    assert ClearingRun.objects.get().business_date == yesterday
    assert ("card_debit", "LE_DEPT", "LE_SUPER") in lines_of(yesterday)


def test_the_nightly_task_leaves_a_locked_yesterday_alone(db, today):
    lock(period_for_day(today - timedelta(days=1)))

    assert tasks.clearing_run_yesterday() == 0
    assert not ClearingRun.objects.exists()


def test_the_nightly_clearing_is_scheduled_at_ten_past_two():
    from core.schedules import JOB_LABELS, NIGHTLY

    assert NIGHTLY["settlement: clear yesterday"][:3] == ("settlement.clearing_run_yesterday", 2, 10)
    assert "settlement: clear yesterday" in JOB_LABELS


def test_the_pool_reads_cleared_days_from_their_lines_and_the_others_from_the_ledger(dept001, super001, elec001,
                                                                                     companies, today):
    member_earning(store=dept001, points=1000, day=today - timedelta(days=10))
    member_earning(store=super001, points=500, day=today - timedelta(days=5))
    member_earning(store=elec001, points=300, day=today - timedelta(days=400))
    clearing_day_run(day=today - timedelta(days=10))
    clearing_day_run(day=today - timedelta(days=3))

    pool = points_pool(day=today)

    assert pool == {companies["DEPT"].pk: 1000, companies["SUPER"].pk: 500}
    assert points_pool(day=today, day_earned={companies["ELEC"].pk: 7, None: 9}) == {
        companies["DEPT"].pk: 1000, companies["SUPER"].pk: 500, companies["ELEC"].pk: 7,
    }
