"""Settlement periods: statements per pair of companies, what keeps a month from closing, the close asked by one
person and approved by another, the lock, and corrections after it landing in the next open period."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from approvals.errors import SelfApprovalForbidden
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from cards.queries.liability import liability_report
from cards.services.ledger import card_post
from settlement.errors import PeriodLocked, PeriodNotReady, SettlementInvalid
from settlement.models import ClearingLine, ClearingRun, ReconDay, SettlementPeriod, Statement
from settlement.services import (
    clearing_adjustment_add,
    clearing_day_run,
    clearing_days_run,
    period_close_problems,
    period_close_request,
    period_for_day,
    statements_build,
)
from tests.settlement.conftest import card_pay, card_sold, local_moment, member_earning

D = Decimal


@pytest.fixture
def month(last_month_days):
    first, last = last_month_days
    return first, last, first + timedelta(days=2)


@pytest.fixture
def cleared_month(month, dept001, super001, fee_rules, card_product):
    """Last month: a DEPT card spent at SUPER001 (300.00, 0.6% fee), a SUPER card topped up at DEPT001 (200.00) and
    spent there (50.00), every day cleared and every store-day with card payments reconciled."""
    first, last, day = month
    dept_card = card_sold(store=dept001, amount="1000.00", day=first)
    super_card = card_sold(store=super001, amount="100.00", day=first)
    card_pay(dept_card, store=super001, amount="300.00", day=day)
    card_post(card=super_card, kind="load", amount=D("200.00"), store=dept001, created_at=local_moment(day, 10))
    card_pay(super_card, store=dept001, amount="50.00", day=day)
    for store in (super001, dept001):
        ReconDay.objects.create(store=store, business_date=day, status=ReconDay.Status.RECONCILED)
    clearing_days_run(start=first, end=last)
    return period_for_day(first)


def closed(period, *, requester, approver, reason="月结") -> SettlementPeriod:
    request = period_close_request(period=period, user=requester, reason=reason)
    approval_request_approve(approval_request=request, approver=approver)
    period.refresh_from_db()
    return period


# --- statements ----------------------------------------------------------------------------------------------------


def test_statements_net_what_two_companies_owe_each_other(cleared_month, companies):
    statements = statements_build(period=cleared_month)

    assert len(statements) == 1
    statement = Statement.objects.get(period=cleared_month)
    assert (statement.company_a, statement.company_b) == (companies["DEPT"], companies["SUPER"])
    # DEPT owes SUPER 298.20 for its card spent there and 200.00 it took in for SUPER's card; SUPER owes DEPT 50.00.
    assert (statement.a_owes_b, statement.b_owes_a, statement.net) == (D("498.20"), D("50.00"), D("448.20"))
    lines = {(line.kind, line.issuer.code): (line.count, line.gross, line.fee, line.net)
             for line in statement.lines.select_related("issuer")}
    assert lines == {
        ("card_debit", "LE_DEPT"): (1, D("300.00"), D("1.80"), D("298.20")),
        ("card_load", "LE_SUPER"): (1, D("200.00"), D("0.00"), D("-200.00")),
        ("card_debit", "LE_SUPER"): (1, D("50.00"), D("0.00"), D("50.00")),
    }


def test_statements_are_rebuilt_with_adjusting_lines_naming_what_they_correct(cleared_month, finance_hq):
    statements_build(period=cleared_month)
    spending = ClearingLine.objects.get(period=cleared_month, kind="card_debit", issuer__code="LE_DEPT")
    clearing_adjustment_add(corrects=spending, net=D("-8.20"), reason="手续费差额", user=finance_hq,
                            period=cleared_month)

    statements_build(period=cleared_month)

    statement = Statement.objects.get(period=cleared_month)
    # A negative adjustment of what DEPT owes counts the other way: SUPER owes DEPT 8.20 more.
    assert (statement.a_owes_b, statement.b_owes_a, statement.net) == (D("498.20"), D("58.20"), D("440.00"))
    adjusting = statement.lines.get(kind="adjustment")
    assert adjusting.net == D("-8.20")
    assert f"(line #{spending.pk})" in adjusting.corrects_text
    assert Statement.objects.count() == 1


def test_statements_of_a_period_that_is_not_open_are_not_built_again(cleared_month, finance_hq, hq_approver):
    closed(cleared_month, requester=finance_hq, approver=hq_approver)

    with pytest.raises(PeriodLocked, match=cleared_month.code):
        statements_build(period=cleared_month)


# --- what keeps a month from closing -------------------------------------------------------------------------------


def test_a_month_that_is_not_over_cannot_close(db):
    period = period_for_day(timezone.localdate())

    problems = period_close_problems(period)

    assert any(f"its last day is {period.ends_on.isoformat()}" in problem for problem in problems)


def test_days_without_a_finished_clearing_run_are_named(cleared_month, month):
    first, _last, day = month
    ClearingRun.objects.filter(business_date=day).update(status=ClearingRun.Status.FAILED)
    ClearingLine.objects.filter(business_date=first).delete()
    ClearingRun.objects.filter(business_date=first).delete()

    problems = period_close_problems(cleared_month)

    assert problems == [f"Clearing has not run for 2 days: {first.isoformat()}, {day.isoformat()}."]


def test_a_month_never_cleared_names_ten_days_and_counts_the_rest(month, db):
    first, last, _day = month

    problems = period_close_problems(period_for_day(first))

    days = last.day
    assert problems[0].startswith(f"Clearing has not run for {days} days: {first.isoformat()}, ")
    assert problems[0].endswith(f"and {days - 10} more.")


def test_open_reconciliation_days_are_named(cleared_month, month, super001):
    _first, _last, day = month
    ReconDay.objects.filter(store=super001).update(status=ReconDay.Status.OPEN)

    problems = period_close_problems(cleared_month)

    assert problems == [f"1 reconciliation day has open exceptions: SUPER001 {day.isoformat()}."]


def test_store_days_with_card_payments_but_no_reconciled_pos_file_are_named(cleared_month, month, dept001,
                                                                            settings):
    _first, _last, day = month
    ReconDay.objects.filter(store=dept001).delete()

    problems = period_close_problems(cleared_month)

    assert problems == [f"1 store-day with card payments has no reconciled POS file: DEPT001 {day.isoformat()}."]
    settings.SETTLEMENT_CLOSE_NEEDS_POS_FILES = False
    assert period_close_problems(cleared_month) == []


def test_a_cleared_and_reconciled_month_is_ready(cleared_month):
    assert period_close_problems(cleared_month) == []


# --- close, approval, lock -----------------------------------------------------------------------------------------


def test_asking_to_close_a_month_that_is_not_ready_is_refused_naming_why(month, finance_hq):
    first, _last, _day = month
    period = period_for_day(first)

    with pytest.raises(PeriodNotReady) as refused:
        period_close_request(period=period, user=finance_hq, reason="月结")

    assert period.code in str(refused.value) and "Clearing has not run for" in str(refused.value)
    period.refresh_from_db()
    assert period.status == SettlementPeriod.Status.OPEN
    assert not ApprovalRequest.objects.exists()


def test_asking_to_close_needs_a_reason(cleared_month, finance_hq):
    with pytest.raises(SettlementInvalid) as refused:
        period_close_request(period=cleared_month, user=finance_hq, reason="  ")

    assert "reason" in refused.value.fields
    cleared_month.refresh_from_db()
    assert cleared_month.status == SettlementPeriod.Status.OPEN


def test_a_close_request_builds_statements_keeps_the_figures_and_waits_for_approval(cleared_month, finance_hq, month):
    _first, last, _day = month

    request = period_close_request(period=cleared_month, user=finance_hq, reason="十一月月结")

    cleared_month.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING
    assert request.action == "settlement.period_lock" and request.policy.hq_only
    assert cleared_month.status == SettlementPeriod.Status.CLOSING
    assert cleared_month.close_requested_by == finance_hq
    assert Statement.objects.filter(period=cleared_month).count() == 1
    # 1,000.00 - 300.00 on the DEPT card, 100.00 + 200.00 - 50.00 on the SUPER card.
    assert cleared_month.card_outstanding == D("950.00")
    report = liability_report(today=last + timedelta(days=1))
    assert (cleared_month.escrow_base, cleared_month.escrow_required) == (report.escrow_base, report.escrow)
    assert cleared_month.points_outstanding == 0 and cleared_month.points_value == D("0.00")
    with pytest.raises(PeriodLocked, match="waiting for approval"):
        clearing_day_run(day=last)


def test_the_requester_cannot_approve_their_own_close(cleared_month, finance_hq):
    request = period_close_request(period=cleared_month, user=finance_hq, reason="月结")

    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=request, approver=finance_hq)

    cleared_month.refresh_from_db()
    assert cleared_month.status == SettlementPeriod.Status.CLOSING


def test_a_second_person_approves_and_the_period_is_locked(cleared_month, finance_hq, hq_approver, month):
    _first, last, _day = month

    period = closed(cleared_month, requester=finance_hq, approver=hq_approver)

    assert period.status == SettlementPeriod.Status.LOCKED
    assert period.locked_by == hq_approver and period.locked_at is not None
    with pytest.raises(PeriodLocked, match=f"{period.code} is locked"):
        clearing_day_run(day=last)
    assert clearing_days_run(start=last, end=last) == []
    with pytest.raises(PeriodLocked):
        period_close_request(period=period, user=finance_hq, reason="again")


def test_a_rejected_close_opens_the_period_again(cleared_month, finance_hq, hq_approver):
    request = period_close_request(period=cleared_month, user=finance_hq, reason="月结")

    approval_request_reject(approval_request=request, approver=hq_approver, comment="对账未完成")

    cleared_month.refresh_from_db()
    assert cleared_month.status == SettlementPeriod.Status.OPEN
    assert clearing_day_run(day=cleared_month.ends_on).status == ClearingRun.Status.DONE


def test_the_month_closes_with_points_valued_at_the_cash_rate(cleared_month, finance_hq, hq_approver, dept001, month):
    first, _last, _day = month
    member_earning(store=dept001, points=1250, day=first)
    member_earning(store=dept001, points=50, day=timezone.localdate())  # after the month: not in its figures

    period = closed(cleared_month, requester=finance_hq, approver=hq_approver)

    assert (period.points_outstanding, period.points_value) == (1250, D("12.50"))


# --- corrections after the lock ------------------------------------------------------------------------------------


def test_a_late_correction_lands_in_the_next_open_period_naming_what_it_corrects(cleared_month, finance_hq,
                                                                                 hq_approver, month):
    _first, _last, day = month
    closed(cleared_month, requester=finance_hq, approver=hq_approver)
    spending = ClearingLine.objects.get(period=cleared_month, kind="card_debit", issuer__code="LE_DEPT")

    adjustment = clearing_adjustment_add(corrects=spending, net=D("12.00"), reason="POS 少记一笔", user=finance_hq)

    today = timezone.localdate()
    assert adjustment.period == period_for_day(today)
    assert adjustment.period.status == SettlementPeriod.Status.OPEN
    assert (adjustment.kind, adjustment.run, adjustment.business_date) == ("adjustment", None, today)
    assert (adjustment.issuer, adjustment.honourer) == (spending.issuer, spending.honourer)
    assert (adjustment.gross, adjustment.fee, adjustment.net) == (D("12.00"), D("0.00"), D("12.00"))
    assert adjustment.corrects == spending
    assert adjustment.corrects_text == (f"{day.isoformat()} card spending {spending.issuer.name} → "
                                        f"{spending.honourer.name} (line #{spending.pk})")
    spending.refresh_from_db()
    assert spending.net == D("298.20")


def test_a_correction_aimed_at_a_locked_period_is_refused_naming_the_lock(cleared_month, finance_hq, hq_approver):
    period = closed(cleared_month, requester=finance_hq, approver=hq_approver)
    spending = ClearingLine.objects.get(period=period, kind="card_debit", issuer__code="LE_DEPT")

    with pytest.raises(PeriodLocked) as refused:
        clearing_adjustment_add(corrects=spending, net=D("12.00"), reason="POS 少记一笔", user=finance_hq,
                                period=period)

    assert f"{period.code} is locked" in str(refused.value)
    assert not ClearingLine.objects.filter(kind="adjustment").exists()


@pytest.mark.parametrize(("net", "reason", "field"), [
    (D("0.00"), "原因", "net"),
    ("abc", "原因", "net"),
    (D("5.00"), "  ", "reason"),
])
def test_a_correction_needs_a_reason_and_an_amount(cleared_month, finance_hq, net, reason, field):
    spending = ClearingLine.objects.filter(period=cleared_month).first()

    with pytest.raises(SettlementInvalid) as refused:
        clearing_adjustment_add(corrects=spending, net=net, reason=reason, user=finance_hq)

    assert field in refused.value.fields
    assert not ClearingLine.objects.filter(kind="adjustment").exists()
