"""Matching a store's day of POS lines against the card payments and purchases, the exceptions it finds, working
them off (accepted with a reason, or corrected in the card ledger through approval), and the day's report."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from approvals.errors import ApproverNotPermitted, SelfApprovalForbidden
from approvals.models import ApprovalPolicy, ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from cards.models import CardLedgerEntry
from membership.models import Purchase
from settlement.errors import ExceptionNotOpen, PeriodLocked, SettlementInvalid
from settlement.models import PosFileLayout, ReconDay, ReconException, SettlementPeriod
from settlement.queries.reconciliation import recon_days_open_in, recon_report
from settlement.services.reconciliation import (
    EXCEPTION_CORRECT,
    pos_file_import,
    recon_day_match,
    recon_exception_accept,
    recon_exception_correct_request,
)
from tests.factories import MemberFactory, StaffFactory, permission_named
from tests.settlement.conftest import card_pay, card_refund_at, card_reverse_at, card_sold, local_moment

D = Decimal
HEADER = ["门店", "交易时间", "小票号", "卡号", "会员号", "金额"]
Kind = ReconException.Kind
Status = ReconException.Status


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def day():
    return timezone.localdate() - timedelta(days=2)


@pytest.fixture
def layout(reference_stores):
    return PosFileLayout.objects.create(
        code="DEPT_POS", name="百货POS日结", pos_system_code="POS-DEPT", time_window_minutes=30,
        columns={"store_code": "门店", "occurred_at": "交易时间", "receipt_no": "小票号", "card_no": "卡号",
                 "member_no": "会员号", "amount": "金额"},
    )


@pytest.fixture
def correct_policy(db):
    """The approval policy of corrections (made by the settlement migrations; get-or-create so it holds either way)."""
    policy, _ = ApprovalPolicy.objects.get_or_create(
        action=EXCEPTION_CORRECT, min_amount=None,
        defaults={"approver_permission": permission_named("settlement.resolve_reconexception"), "hq_only": True},
    )
    return policy


@pytest.fixture
def card(dept001, card_product, day):
    return card_sold(store=dept001, amount="1000.00", day=day, product=card_product)


def upload(layout, day, rows, *, store, user=None, name="pos.csv"):
    lines = [",".join(HEADER)]
    for row in rows:
        receipt, card_no, amount = row[:3]
        at = row[3] if len(row) > 3 else "12:00:00"
        member = row[4] if len(row) > 4 else ""
        lines.append(f"{store.code},{day:%Y-%m-%d} {at},{receipt},{card_no},{member},{amount}")
    content = ("\n".join(lines) + "\n").encode()
    return pos_file_import(layout=layout, uploaded=SimpleUploadedFile(name, content), business_date=day, user=user,
                           store=store)


def exceptions(day, store):
    return sorted((e.kind, e.receipt_no, e.pos_amount, e.ledger_amount)
                  for e in ReconException.objects.filter(day__store=store, day__business_date=day))


def recon(store, day) -> ReconDay:
    return ReconDay.objects.get(store=store, business_date=day)


def purchase(store, day, *, receipt, amount, member=None, hour=11):
    return Purchase.objects.create(store=store, format=store.format, legal_entity=store.format.legal_entity,
                                   member=member, receipt_no=receipt, amount=D(amount),
                                   occurred_at=local_moment(day, hour))


# --- matching ------------------------------------------------------------------------------------------------------


def test_a_day_whose_lines_match_is_reconciled(layout, dept001, card, day):
    card_pay(card, store=dept001, amount="100.00", day=day, receipt_no="R1")
    card_pay(card, store=dept001, amount="50.00", day=day, receipt_no="R2", hour=13)

    upload(layout, day, [("R1", card.card_no, "100.00"), ("R2", card.card_no, "50.00", "13:05:00")], store=dept001)

    recon_day = recon(dept001, day)
    assert recon_day.status == ReconDay.Status.RECONCILED
    assert (recon_day.pos_lines, recon_day.ledger_rows, recon_day.matched, recon_day.exceptions) == (2, 2, 2, 0)
    assert recon_day.pos_total == recon_day.ledger_total == D("150.00")


def test_each_kind_of_difference_is_an_exception(layout, dept001, card, day):
    card_pay(card, store=dept001, amount="100.00", day=day, receipt_no="SAME")
    card_pay(card, store=dept001, amount="80.00", day=day, receipt_no="DIFF")
    card_pay(card, store=dept001, amount="30.00", day=day, receipt_no="NOPOS")
    card_pay(card, store=dept001, amount="20.00", day=day, receipt_no="TWICE")

    upload(layout, day, [
        ("SAME", card.card_no, "100.00"),
        ("DIFF", card.card_no, "85.00"),
        ("NOLEDGER", card.card_no, "40.00"),
        ("TWICE", card.card_no, "20.00"),
        ("TWICE", card.card_no, "20.00", "12:10:00"),
    ], store=dept001)

    assert exceptions(day, dept001) == sorted([
        (Kind.AMOUNT_DIFFERS, "DIFF", D("85.00"), D("80.00")),
        (Kind.MISSING_IN_LEDGER, "NOLEDGER", D("40.00"), None),
        (Kind.MISSING_IN_POS, "NOPOS", None, D("30.00")),
        (Kind.DUPLICATE, "TWICE", D("20.00"), None),
    ])
    recon_day = recon(dept001, day)
    assert recon_day.status == ReconDay.Status.OPEN
    assert (recon_day.matched, recon_day.exceptions, recon_day.exceptions_open) == (2, 4, 4)
    assert recon_day.pos_total == D("265.00") and recon_day.ledger_total == D("230.00")


def test_a_payment_twice_in_the_ledger_once_in_the_file_is_a_duplicate(layout, dept001, card, day):
    first = card_pay(card, store=dept001, amount="20.00", day=day, receipt_no="R9")
    second = card_pay(card, store=dept001, amount="20.00", day=day, receipt_no="R9", minute=5)

    upload(layout, day, [("R9", card.card_no, "20.00")], store=dept001)

    found = ReconException.objects.get(day__store=dept001)
    assert found.kind == Kind.DUPLICATE and found.card_transaction_id == second.pk
    assert found.card_transaction_id != first.pk


def test_lines_outside_the_time_window_do_not_match(layout, dept001, card, day):
    card_pay(card, store=dept001, amount="10.00", day=day, receipt_no="LATE", hour=12)

    upload(layout, day, [("LATE", card.card_no, "10.00", "14:00:00")], store=dept001)

    assert {e[0] for e in exceptions(day, dept001)} == {Kind.MISSING_IN_LEDGER, Kind.MISSING_IN_POS}
    assert recon(dept001, day).matched == 0


def test_refunds_and_reversals_match_negative_lines(layout, dept001, card, day):
    payment = card_pay(card, store=dept001, amount="100.00", day=day, receipt_no="P1", hour=10)
    card_refund_at(payment, store=dept001, amount="40.00", day=day, receipt_no="F1")
    voided = card_pay(card, store=dept001, amount="25.00", day=day, receipt_no="V1", hour=15)
    card_reverse_at(voided, store=dept001, day=day, hour=15)

    upload(layout, day, [("P1", card.card_no, "100.00", "10:00:00"), ("F1", card.card_no, "-40.00", "15:00:00"),
                         ("V1", card.card_no, "25.00", "15:00:00"), ("V1", card.card_no, "-25.00", "15:01:00")],
           store=dept001)

    recon_day = recon(dept001, day)
    assert exceptions(day, dept001) == []
    assert (recon_day.matched, recon_day.status, recon_day.ledger_total) == (4, ReconDay.Status.RECONCILED, D("60.00"))


def test_payments_count_as_missing_only_when_the_files_have_card_lines(layout, dept001, card, day):
    card_pay(card, store=dept001, amount="10.00", day=day, receipt_no="C1")
    member = MemberFactory(store=dept001)
    purchase(dept001, day, receipt="S1", amount="60.00", member=member)

    upload(layout, day, [("S1", "", "60.00", "11:00:00", member.member_no)], store=dept001)

    recon_day = recon(dept001, day)
    assert exceptions(day, dept001) == []
    assert (recon_day.matched, recon_day.ledger_rows, recon_day.status) == (1, 1, ReconDay.Status.RECONCILED)


def test_sales_lines_are_matched_with_purchases(layout, dept001, day):
    member = MemberFactory(store=dept001)
    purchase(dept001, day, receipt="S1", amount="60.00", member=member)
    purchase(dept001, day, receipt="S2", amount="70.00")
    purchase(dept001, day, receipt="S3", amount="15.00")
    purchase(dept001, day - timedelta(days=1), receipt="OTHERDAY", amount="9.00")

    upload(layout, day, [("S1", "", "60.00", "11:00:00", member.member_no), ("S2", "", "75.00"),
                         ("S9", "", "5.00")], store=dept001)

    assert exceptions(day, dept001) == sorted([
        (Kind.AMOUNT_DIFFERS, "S2", D("75.00"), D("70.00")),
        (Kind.MISSING_IN_LEDGER, "S9", D("5.00"), None),
        (Kind.MISSING_IN_POS, "S3", None, D("15.00")),
    ])
    assert recon(dept001, day).matched == 1


def test_a_line_naming_another_member_does_not_match_the_purchase(layout, dept001, day):
    purchase(dept001, day, receipt="S1", amount="60.00", member=MemberFactory(store=dept001))

    upload(layout, day, [("S1", "", "60.00", "11:00:00", "M00000000")], store=dept001)

    assert {e[0] for e in exceptions(day, dept001)} == {Kind.MISSING_IN_LEDGER, Kind.MISSING_IN_POS}


def test_matching_again_keeps_worked_off_exceptions_and_finds_open_ones_again(layout, dept001, card, day, hq_admin):
    card_pay(card, store=dept001, amount="30.00", day=day, receipt_no="NOPOS")
    upload(layout, day, [("NOLEDGER", card.card_no, "40.00")], store=dept001)
    accepted = ReconException.objects.get(kind=Kind.MISSING_IN_LEDGER)
    recon_exception_accept(exception=accepted, user=hq_admin, reason="POS test line")
    still_open = ReconException.objects.get(kind=Kind.MISSING_IN_POS)

    recon_day = recon_day_match(store=dept001, business_date=day)

    assert ReconException.objects.filter(day=recon_day).count() == 2
    assert ReconException.objects.get(pk=accepted.pk).status == Status.ACCEPTED
    assert ReconException.objects.get(kind=Kind.MISSING_IN_POS).status == Status.OPEN
    assert ReconException.objects.filter(pk=still_open.pk).exists() is False  # found again, as a new row
    assert (recon_day.exceptions, recon_day.exceptions_open, recon_day.status) == (2, 1, ReconDay.Status.OPEN)


def test_a_second_file_of_the_day_adds_its_lines(layout, dept001, card, day):
    card_pay(card, store=dept001, amount="30.00", day=day, receipt_no="A")
    card_pay(card, store=dept001, amount="40.00", day=day, receipt_no="B")
    upload(layout, day, [("A", card.card_no, "30.00")], store=dept001, name="morning.csv")
    assert recon(dept001, day).exceptions == 1

    upload(layout, day, [("B", card.card_no, "40.00")], store=dept001, name="afternoon.csv")

    assert recon(dept001, day).status == ReconDay.Status.RECONCILED


def test_matching_a_day_without_a_file_is_refused(dept001, day):
    with pytest.raises(SettlementInvalid):
        recon_day_match(store=dept001, business_date=day)

    assert not ReconDay.objects.exists()


def test_matching_a_day_of_a_locked_period_is_refused(layout, dept001, day):
    upload(layout, day, [("A", "", "30.00")], store=dept001)
    SettlementPeriod.objects.create(code=f"{day:%Y-%m}", starts_on=day.replace(day=1), ends_on=day,
                                    status=SettlementPeriod.Status.LOCKED, locked_at=timezone.now())

    with pytest.raises(PeriodLocked) as error:
        recon_day_match(store=dept001, business_date=day)

    assert f"{day:%Y-%m}" in str(error.value)


# --- accepting -----------------------------------------------------------------------------------------------------


def test_accepting_every_exception_works_the_day_off(layout, dept001, day, dept001_manager):
    upload(layout, day, [("A", "", "30.00")], store=dept001)
    exception = ReconException.objects.get()

    accepted = recon_exception_accept(exception=exception, user=dept001_manager, reason="test sale on the till")

    assert (accepted.status, accepted.reason, accepted.resolved_by) == (Status.ACCEPTED, "test sale on the till",
                                                                         dept001_manager)
    assert accepted.resolved_at is not None
    recon_day = recon(dept001, day)
    assert (recon_day.status, recon_day.exceptions, recon_day.exceptions_open) == (ReconDay.Status.ACCEPTED, 1, 0)
    assert not recon_days_open_in(day, day).exists()


def test_accepting_needs_a_reason_and_an_open_exception(layout, dept001, day, dept001_manager):
    upload(layout, day, [("A", "", "30.00")], store=dept001)
    exception = ReconException.objects.get()

    with pytest.raises(SettlementInvalid) as no_reason:
        recon_exception_accept(exception=exception, user=dept001_manager, reason="  ")
    recon_exception_accept(exception=exception, user=dept001_manager, reason="ok")
    with pytest.raises(ExceptionNotOpen) as twice:
        recon_exception_accept(exception=exception, user=dept001_manager, reason="again")

    assert "reason" in no_reason.value.fields
    assert "accepted" in str(twice.value)


# --- correcting through approval -----------------------------------------------------------------------------------


def _only_exception(kind):
    return ReconException.objects.get(kind=kind)


def test_a_missing_debit_is_corrected_after_approval(layout, dept001, card, day, correct_policy, dept001_manager,
                                                     hq_approver, ledgers_balanced):
    upload(layout, day, [("LOST", card.card_no, "40.00")], store=dept001)
    exception = _only_exception(Kind.MISSING_IN_LEDGER)

    request = recon_exception_correct_request(exception=exception, user=dept001_manager, reason="POS sold offline")

    exception.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING and request.amount == D("40.00")
    assert request.store_id == dept001.pk and request.payload["amount"] == "-40.00"
    assert exception.status == Status.CORRECTING
    assert recon(dept001, day).status == ReconDay.Status.OPEN
    card.refresh_from_db()
    assert card.balance == D("1000.00")

    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=request, approver=dept001_manager)
    approval_request_approve(approval_request=request, approver=hq_approver)

    exception.refresh_from_db()
    card.refresh_from_db()
    entry = CardLedgerEntry.objects.filter(card=card, kind=CardLedgerEntry.Kind.ADJUST).get()
    assert card.balance == D("960.00") and entry.amount == D("-40.00")
    assert entry.cause_id == str(exception.pk) and entry.store_id == dept001.pk
    assert entry.legal_entity_id == dept001.format.legal_entity_id and entry.operator_id == hq_approver.pk
    assert "LOST" in entry.reason
    assert (exception.status, exception.resolved_by) == (Status.CORRECTED, hq_approver)
    assert recon(dept001, day).status == ReconDay.Status.ACCEPTED
    ledgers_balanced()


def test_another_manager_of_the_store_cannot_approve_a_correction(layout, dept001, card, day, correct_policy,
                                                                  dept001_manager):
    card_pay(card, store=dept001, amount="80.00", day=day, receipt_no="DIFF")
    upload(layout, day, [("DIFF", card.card_no, "85.00")], store=dept001)
    request = recon_exception_correct_request(exception=_only_exception(Kind.AMOUNT_DIFFERS), user=dept001_manager,
                                              reason="POS is right")
    deputy = StaffFactory(username="dept001_deputy", group="门店店长", stores=[dept001])

    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=request, approver=deputy)

    card.refresh_from_db()
    assert card.balance == D("920.00")
    assert _only_exception(Kind.AMOUNT_DIFFERS).status == Status.CORRECTING


def test_an_amount_difference_is_corrected_by_the_difference(layout, dept001, card, day, correct_policy,
                                                             dept001_manager, hq_approver):
    card_pay(card, store=dept001, amount="80.00", day=day, receipt_no="DIFF")
    upload(layout, day, [("DIFF", card.card_no, "85.00")], store=dept001)

    request = recon_exception_correct_request(exception=_only_exception(Kind.AMOUNT_DIFFERS), user=dept001_manager,
                                              reason="POS is right")
    approval_request_approve(approval_request=request, approver=hq_approver)

    card.refresh_from_db()
    assert card.balance == D("915.00")


def test_a_payment_missing_in_the_file_goes_back_onto_the_card(layout, dept001, card, day, correct_policy,
                                                               dept001_manager, hq_approver):
    card_pay(card, store=dept001, amount="30.00", day=day, receipt_no="NOPOS")
    upload(layout, day, [("OTHER", card.card_no, "10.00")], store=dept001)

    request = recon_exception_correct_request(exception=_only_exception(Kind.MISSING_IN_POS), user=dept001_manager,
                                              reason="sale voided at the till")
    approval_request_approve(approval_request=request, approver=hq_approver)

    card.refresh_from_db()
    assert card.balance == D("1000.00")  # 1000 - 30 + 30
    assert request.payload["amount"] == "30.00"


def test_a_rejected_correction_leaves_the_exception_open(layout, dept001, card, day, correct_policy, dept001_manager,
                                                         hq_approver):
    upload(layout, day, [("LOST", card.card_no, "40.00")], store=dept001)
    exception = _only_exception(Kind.MISSING_IN_LEDGER)
    request = recon_exception_correct_request(exception=exception, user=dept001_manager, reason="offline sale")

    approval_request_reject(approval_request=request, approver=hq_approver, comment="not proven")

    exception.refresh_from_db()
    card.refresh_from_db()
    assert exception.status == Status.OPEN and card.balance == D("1000.00")
    assert not CardLedgerEntry.objects.filter(card=card, kind=CardLedgerEntry.Kind.ADJUST).exists()


def test_without_a_policy_the_correction_is_posted_at_once(layout, dept001, card, day, hq_admin):
    ApprovalPolicy.objects.filter(action=EXCEPTION_CORRECT).delete()
    upload(layout, day, [("LOST", card.card_no, "40.00")], store=dept001)

    request = recon_exception_correct_request(exception=_only_exception(Kind.MISSING_IN_LEDGER), user=hq_admin,
                                              reason="offline sale")

    assert request.status == ApprovalRequest.Status.APPROVED
    assert _only_exception(Kind.MISSING_IN_LEDGER).status == Status.CORRECTED


def test_a_sale_without_a_card_cannot_be_corrected_in_the_card_ledger(layout, dept001, day, hq_admin,
                                                                      correct_policy):
    purchase(dept001, day, receipt="S1", amount="60.00")
    upload(layout, day, [("S1", "", "65.00")], store=dept001)

    with pytest.raises(SettlementInvalid) as error:
        recon_exception_correct_request(exception=_only_exception(Kind.AMOUNT_DIFFERS), user=hq_admin,
                                        reason="fix it")

    assert "accept" in str(error.value.fields["exception"])
    assert _only_exception(Kind.AMOUNT_DIFFERS).status == Status.OPEN
    assert not ApprovalRequest.objects.filter(action=EXCEPTION_CORRECT).exists()


def test_a_correction_taking_the_card_below_zero_is_refused(layout, dept001, card_product, day, hq_admin,
                                                            correct_policy):
    poor = card_sold(store=dept001, amount="10.00", day=day, product=card_product)
    upload(layout, day, [("BIG", poor.card_no, "40.00")], store=dept001)

    with pytest.raises(SettlementInvalid) as error:
        recon_exception_correct_request(exception=_only_exception(Kind.MISSING_IN_LEDGER), user=hq_admin,
                                        reason="offline sale")

    assert "below zero" in str(error.value.fields["exception"])


def test_a_correction_asked_twice_is_refused(layout, dept001, card, day, correct_policy, dept001_manager):
    upload(layout, day, [("LOST", card.card_no, "40.00")], store=dept001)
    exception = _only_exception(Kind.MISSING_IN_LEDGER)
    recon_exception_correct_request(exception=exception, user=dept001_manager, reason="offline sale")

    with pytest.raises(ExceptionNotOpen):
        recon_exception_correct_request(exception=exception, user=dept001_manager, reason="again")


# --- report --------------------------------------------------------------------------------------------------------


def test_the_report_gives_each_stores_day(layout, dept001, dept002, card, day):
    card_pay(card, store=dept001, amount="100.00", day=day, receipt_no="R1")
    upload(layout, day, [("R1", card.card_no, "100.00"), ("X", card.card_no, "5.00")], store=dept001)
    upload(layout, day, [("Y", "", "7.00")], store=dept002)

    rows = recon_report(business_date=day)
    only_dept002 = recon_report(business_date=day, stores=[dept002])

    assert [row.store.code for row in rows] == ["DEPT001", "DEPT002"]
    first = rows[0]
    assert (first.pos_lines, first.ledger_rows, first.matched, first.exceptions, first.exceptions_open) == (
        2, 1, 1, 1, 1)
    assert first.by_kind[Kind.MISSING_IN_LEDGER] == 1 and first.by_kind[Kind.DUPLICATE] == 0
    assert first.difference == D("5.00") and first.status == ReconDay.Status.OPEN
    assert [row.store.code for row in only_dept002] == ["DEPT002"]
    assert [d.store.code for d in recon_days_open_in(day, day)] == ["DEPT001", "DEPT002"]
