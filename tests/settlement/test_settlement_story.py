"""Finance closes a month, end to end (issue 21's "done when"): the clearing matrix nets to zero across the
companies, each format downloads its file in its own layout, a planted missing debit and a planted amount
difference are worked off (one accepted, one corrected through approval), the month is approved by a second
person and locked, and a late correction lands in the next month."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone
from openpyxl import load_workbook

from approvals.errors import SelfApprovalForbidden
from approvals.services import approval_request_approve
from cards.models import CardLedgerEntry
from membership.models import PointsEntry
from settlement.errors import PeriodLocked, PeriodNotReady
from settlement.models import (
    ClearingLine,
    FinanceExportLayout,
    PosFileLayout,
    ReconDay,
    ReconException,
    SettlementPeriod,
)
from settlement.queries.clearing import clearing_matrix
from settlement.services.clearing import clearing_adjustment_add, clearing_day_run, clearing_days_run, period_for_day
from settlement.services.exports import finance_export_make, finance_layouts_ensure
from settlement.services.periods import period_close_problems, period_close_request
from settlement.services.reconciliation import (
    pos_file_import,
    recon_exception_accept,
    recon_exception_correct_request,
)
from stores.models import StaffProfile
from tests.factories import StaffFactory
from tests.settlement.conftest import card_pay, card_sold, member_earning, points_move

D = Decimal
HEADER = ["门店", "交易时间", "小票号", "卡号", "会员号", "金额"]


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def hq_approver(db):
    return StaffFactory(username="hq_approver", group="总部管理员", scope=StaffProfile.Scope.HQ)


def _pos_file(layout, *, store, day, rows, encoding="utf-8"):
    lines = [HEADER, *[[store.code, f"{day:%Y-%m-%d} {hour:02d}:00:00", receipt, card, "", amount]
                       for hour, receipt, card, amount in rows]]
    text = "\n".join(",".join(line) for line in lines) + "\n"
    return SimpleUploadedFile(f"{store.code}-{day:%Y%m%d}.csv", text.encode(encoding), content_type="text/csv")


def test_finance_closes_a_month(dept001, super001, companies, fee_rules, last_month_days, finance_hq, hq_approver):
    first, last = last_month_days
    dept, supermarket = companies["DEPT"], companies["SUPER"]
    sale_day, spend_day = first + timedelta(days=1), first + timedelta(days=4)

    # given: last month a DEPT card was sold and spent at both companies, and points earned at DEPT were spent
    # at SUPER
    card = card_sold(store=dept001, amount="1000.00", day=sale_day)
    at_super = card_pay(card, store=super001, amount="300.00", day=spend_day, hour=10)
    differs = card_pay(card, store=super001, amount="50.00", day=spend_day, hour=11)
    at_dept = card_pay(card, store=dept001, amount="100.00", day=spend_day, hour=12)
    member = member_earning(store=dept001, points=1000, day=sale_day)
    points_move(member, kind=PointsEntry.Kind.REDEEM, points=-500, store=super001, day=spend_day)

    # when: the nightly clearing has run over every day of the month
    clearing_days_run(start=first, end=last)
    period = SettlementPeriod.objects.get(code=f"{first:%Y-%m}")

    # then: the matrix nets to zero; DEPT owes SUPER the spend less the 0.6% fee and the points at the cash rate
    matrix = clearing_matrix(start=first, end=last)
    assert matrix.nets_to_zero
    owed = matrix.owed[(dept.pk, supermarket.pk)]
    assert owed == D("350.00") - D("2.10") + D("5.00")
    assert matrix.position[supermarket.pk] == owed and matrix.position[dept.pk] == -owed

    # and: the month cannot close while the POS files of its days are missing
    assert any(period_close_problems(period))
    with pytest.raises(PeriodNotReady):
        period_close_request(period=period, user=finance_hq, reason="月结")

    # when: each store's POS file of the day is uploaded; SUPER001's has a debit the ledger lacks and an amount
    # that differs
    columns = {"store_code": "门店", "occurred_at": "交易时间", "receipt_no": "小票号", "card_no": "卡号",
               "member_no": "会员号", "amount": "金额"}
    dept_layout = PosFileLayout.objects.create(code="POS_DEPT", name="百货POS", pos_system_code="POS-DEPT",
                                               columns=columns)
    super_layout = PosFileLayout.objects.create(code="POS_SUPER", name="超市POS", pos_system_code="POS-SUPER",
                                                columns=columns, encoding=PosFileLayout.Encoding.GBK)
    pos_file_import(layout=dept_layout, business_date=spend_day, user=finance_hq, store=dept001,
                    uploaded=_pos_file(dept_layout, store=dept001, day=spend_day,
                                       rows=[(12, at_dept.receipt_no, card.card_no, "100.00")]))
    pos_file_import(layout=super_layout, business_date=spend_day, user=finance_hq, store=super001,
                    uploaded=_pos_file(super_layout, store=super001, day=spend_day, encoding="gbk", rows=[
                        (10, at_super.receipt_no, card.card_no, "300.00"),
                        (11, differs.receipt_no, card.card_no, "55.00"),
                        (13, "R-MISSING-1", card.card_no, "80.00"),
                    ]))

    # then: DEPT001's day is reconciled, SUPER001's has the two planted exceptions
    assert ReconDay.objects.get(store=dept001, business_date=spend_day).status == ReconDay.Status.RECONCILED
    super_day = ReconDay.objects.get(store=super001, business_date=spend_day)
    assert super_day.status == ReconDay.Status.OPEN
    exceptions = {e.kind: e for e in ReconException.objects.filter(day=super_day)}
    assert set(exceptions) == {ReconException.Kind.AMOUNT_DIFFERS, ReconException.Kind.MISSING_IN_LEDGER}

    # when: the amount difference is accepted with a reason and the missing debit corrected through approval
    recon_exception_accept(exception=exceptions[ReconException.Kind.AMOUNT_DIFFERS], user=finance_hq,
                           reason="收银员手工改价，已核对小票")
    request = recon_exception_correct_request(exception=exceptions[ReconException.Kind.MISSING_IN_LEDGER],
                                              user=finance_hq, reason="POS已扣款，后台漏记")
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=request, approver=finance_hq)
    approval_request_approve(approval_request=request, approver=hq_approver)

    # then: the card gave up the 80.00 through an adjusting ledger entry naming the exception, and the day is
    # worked off
    correction = CardLedgerEntry.objects.get(card=card, kind=CardLedgerEntry.Kind.ADJUST)
    assert correction.amount == D("-80.00")
    card.refresh_from_db()
    assert card.balance == D("1000.00") - D("450.00") - D("80.00")
    super_day.refresh_from_db()
    assert super_day.status == ReconDay.Status.ACCEPTED

    # when: each format downloads its files in its own layout: SUPER's clearing file as GBK CSV with its headers
    finance_layouts_ensure(finance_system_code="FIN-DEPT")
    finance_layouts_ensure(finance_system_code="FIN-SUPER")
    super_clearing = FinanceExportLayout.objects.get(finance_system_code="FIN-SUPER", dataset="clearing",
                                                     is_active=True)
    super_clearing.file_type = FinanceExportLayout.FileType.CSV
    super_clearing.encoding = FinanceExportLayout.Encoding.GBK
    super_clearing.columns = [{"field": "net", "header": "应收应付"}, {"field": "kind", "header": "业务类型"}]
    super_clearing.save()
    dept_files = finance_export_make(period=period, legal_entity=dept, user=finance_hq)
    super_files = finance_export_make(period=period, legal_entity=supermarket, user=finance_hq)

    # then: DEPT gets Excel workbooks of every dataset, SUPER its clearing lines in its own columns and encoding
    assert {f.layout.dataset for f in dept_files} == set(FinanceExportLayout.Dataset.values)
    dept_sales = next(f for f in dept_files if f.layout.dataset == "card_sales")
    with dept_sales.file.open("rb") as handle:
        sheet = load_workbook(io.BytesIO(handle.read()), read_only=True).worksheets[0]
        cells = [str(value) for row in sheet.iter_rows(values_only=True) for value in row if value is not None]
    assert "601" in cells
    super_file = next(f for f in super_files if f.layout.dataset == "clearing")
    with super_file.file.open("rb") as handle:
        rows = list(csv.reader(io.StringIO(handle.read().decode("gbk"))))
    assert rows[0] == ["应收应付", "业务类型"]
    assert len(rows) > 1

    # when: finance asks to close and a second person approves
    assert period_close_problems(period) == []
    request = period_close_request(period=period, user=finance_hq, reason="十一月月结")
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=request, approver=finance_hq)
    approval_request_approve(approval_request=request, approver=hq_approver)

    # then: the month is locked with its statements and its close figures; nothing of it changes any more
    period.refresh_from_db()
    assert period.status == SettlementPeriod.Status.LOCKED and period.locked_by == hq_approver
    statement = period.statements.get(company_a=dept, company_b=supermarket)
    assert statement.net == owed
    assert period.card_outstanding is not None and period.escrow_required is not None
    with pytest.raises(PeriodLocked):
        clearing_day_run(day=spend_day)
    line = ClearingLine.objects.filter(period=period, kind=ClearingLine.Kind.CARD_DEBIT, issuer=dept,
                                       honourer=supermarket).get()
    with pytest.raises(IntegrityError), transaction.atomic():
        ClearingLine.objects.filter(pk=line.pk).update(net=D("0.00"))

    # when: a late correction of the locked month is made
    with pytest.raises(PeriodLocked) as refused:
        clearing_adjustment_add(corrects=line, net=D("-1.00"), reason="手续费少算", user=finance_hq, period=period)
    assert period.code in str(refused.value)
    late = clearing_adjustment_add(corrects=line, net=D("-1.00"), reason="手续费少算", user=finance_hq)

    # then: it lands in the next open period as an adjusting line naming what it corrects
    assert late.period == period_for_day(timezone.localdate())
    assert late.period.starts_on > period.ends_on
    assert late.kind == ClearingLine.Kind.ADJUSTMENT and late.corrects == line and late.corrects_text
