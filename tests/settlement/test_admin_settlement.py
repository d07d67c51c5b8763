"""The settlement admin (结算): the period's page and its buttons, statements, clearing lines and their adjustment,
runs, the clearing matrix, the finance files and layouts, the liability page; scoped by company for finance staff
of stores scope, refused to store managers."""

import io
import zipfile
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from approvals.models import ApprovalRequest
from settlement.models import (
    ClearingLine,
    ClearingRun,
    FinanceExportFile,
    FinanceExportLayout,
    SettlementPeriod,
    Statement,
)
from settlement.services.clearing import clearing_days_run, period_for_day
from settlement.services.exports import finance_layouts_ensure
from settlement.services.periods import statements_build
from tests.settlement.conftest import card_pay, card_sold, last_month

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
D = Decimal


@pytest.fixture
def month(dept001, super001, elec001, card_product):
    """Last month: a DEPT card (嘉禾百货) spent at SUPER001 (1,234.50) and at ELEC001 (300.00), every day
    cleared, the statements built."""
    start, end = last_month()
    card = card_sold(store=dept001, amount="5000.00", day=start, product=card_product)
    card_pay(card, store=super001, amount="1234.50", day=start + timedelta(days=1))
    card_pay(card, store=elec001, amount="300.00", day=start + timedelta(days=2))
    clearing_days_run(start=start, end=end)
    period = period_for_day(start)
    statements_build(period=period)
    return period


def _statement(period, code_a: str, code_b: str) -> Statement:
    return Statement.objects.get(period=period, company_a__code=code_a, company_b__code=code_b)


# --- the period's page ---------------------------------------------------------------------------------------------


def test_the_period_page_shows_its_statements_as_money_and_the_buttons(client, finance_hq, month):
    client.force_login(finance_hq)

    response = client.get(reverse("admin:settlement_settlementperiod_change", args=[month.pk]), **EN)

    assert response.status_code == 200
    page = response.content.decode()
    assert "1,234.50" in page
    assert reverse("admin:settlement_settlementperiod_build", args=[month.pk]) in page
    assert reverse("admin:settlement_settlementperiod_close", args=[month.pk]) in page
    assert "Make the files" in page


def test_building_the_statements_from_the_page_writes_them(client, finance_hq, month):
    client.force_login(finance_hq)

    response = client.post(reverse("admin:settlement_settlementperiod_build", args=[month.pk]), follow=True, **EN)

    assert response.status_code == 200
    statement = _statement(month, "LE_DEPT", "LE_SUPER")
    assert statement.a_owes_b == D("1234.50")


def test_the_missing_days_are_cleared_from_the_page(client, finance_hq, reference_stores):
    start, end = last_month()
    period = period_for_day(start)
    client.force_login(finance_hq)

    client.post(reverse("admin:settlement_settlementperiod_run_missing", args=[period.pk]), **EN)

    assert ClearingRun.objects.filter(business_date__range=(start, end),
                                      status=ClearingRun.Status.DONE).count() == (end - start).days + 1


def test_asking_to_close_a_period_not_ready_names_what_is_missing_and_changes_nothing(client, finance_hq,
                                                                                      reference_stores):
    period = period_for_day(last_month()[0])  # no day cleared
    client.force_login(finance_hq)

    response = client.post(reverse("admin:settlement_settlementperiod_close", args=[period.pk]),
                           {"reason": "checked"}, **EN)

    assert response.status_code == 200
    assert "cannot be closed yet" in response.content.decode()
    period.refresh_from_db()
    assert period.status == SettlementPeriod.Status.OPEN
    assert not ApprovalRequest.objects.filter(action="settlement.period_lock").exists()


def test_asking_to_close_a_ready_period_waits_for_approval(client, finance_hq, month, settings):
    settings.SETTLEMENT_CLOSE_NEEDS_POS_FILES = False
    client.force_login(finance_hq)

    response = client.post(reverse("admin:settlement_settlementperiod_close", args=[month.pk]),
                           {"reason": "statements checked with each company"}, follow=True, **EN)

    assert response.status_code == 200
    month.refresh_from_db()
    assert month.status == SettlementPeriod.Status.CLOSING
    approval = ApprovalRequest.objects.get(action="settlement.period_lock")
    assert approval.status == ApprovalRequest.Status.PENDING and approval.requested_by == finance_hq
    assert "Approval request" in response.content.decode()


def test_a_reason_is_required_to_ask_to_close(client, finance_hq, month, settings):
    settings.SETTLEMENT_CLOSE_NEEDS_POS_FILES = False
    client.force_login(finance_hq)

    response = client.post(reverse("admin:settlement_settlementperiod_close", args=[month.pk]), {"reason": ""})

    assert response.status_code == 200
    month.refresh_from_db()
    assert month.status == SettlementPeriod.Status.OPEN


def test_finance_of_stores_scope_cannot_press_the_headquarters_buttons(client, super_finance, month):
    client.force_login(super_finance)

    build = client.post(reverse("admin:settlement_settlementperiod_build", args=[month.pk]))
    close = client.get(reverse("admin:settlement_settlementperiod_close", args=[month.pk]))

    assert build.status_code == 403 and close.status_code == 403


def test_store_managers_see_no_settlement_screen(client, super001_manager, month):
    client.force_login(super001_manager)

    for url in (reverse("admin:settlement_settlementperiod_changelist"),
                reverse("admin:settlement_statement_changelist"),
                reverse("admin:settlement_clearingline_changelist"),
                reverse("admin:settlement_clearing_matrix"), reverse("admin:settlement_liability")):
        assert client.get(url).status_code == 403, url


# --- statements and lines, scoped by company --------------------------------------------------------------------------


def test_finance_of_stores_scope_sees_only_the_statements_of_their_company(client, super_finance, month):
    client.force_login(super_finance)
    own = _statement(month, "LE_DEPT", "LE_SUPER")
    other = _statement(month, "LE_DEPT", "LE_ELEC")

    listed = client.get(reverse("admin:settlement_statement_changelist"))
    own_page = client.get(reverse("admin:settlement_statement_change", args=[own.pk]))
    other_page = client.get(reverse("admin:settlement_statement_change", args=[other.pk]), follow=True)
    other_history = client.get(reverse("admin:settlement_statement_history", args=[other.pk]))

    assert {row.pk for row in listed.context["cl"].result_list} == {own.pk}
    assert own_page.status_code == 200 and "1,234.50" in own_page.content.decode()
    assert "300.00" not in other_page.content.decode()
    assert other_history.status_code == 404


def test_headquarters_see_every_statement(client, finance_hq, month):
    client.force_login(finance_hq)

    listed = client.get(reverse("admin:settlement_statement_changelist"))

    assert listed.context["cl"].result_count == Statement.objects.filter(period=month).count() == 2


def test_finance_of_stores_scope_sees_only_their_companys_clearing_lines(client, super_finance, super_co, month):
    client.force_login(super_finance)

    listed = client.get(reverse("admin:settlement_clearingline_changelist"))

    rows = listed.context["cl"].result_list
    assert rows and all(super_co.pk in (line.issuer_id, line.honourer_id) for line in rows)
    elec_line = ClearingLine.objects.get(kind=ClearingLine.Kind.CARD_DEBIT, honourer__code="LE_ELEC")
    assert client.get(reverse("admin:settlement_clearingline_change", args=[elec_line.pk]),
                      follow=True).request["PATH_INFO"] != reverse("admin:settlement_clearingline_change",
                                                                    args=[elec_line.pk])


def test_an_adjustment_of_a_line_of_a_locked_month_lands_in_the_next_open_period(client, finance_hq, month):
    line = ClearingLine.objects.get(kind=ClearingLine.Kind.CARD_DEBIT, honourer__code="LE_SUPER")
    SettlementPeriod.objects.filter(pk=month.pk).update(status=SettlementPeriod.Status.LOCKED,
                                                        locked_at=timezone.now())
    client.force_login(finance_hq)

    response = client.post(reverse("admin:settlement_clearingline_adjust", args=[line.pk]),
                           {"net": "-34.50", "reason": "receipt R1 was 1,200.00"}, follow=True)

    assert response.status_code == 200
    adjustment = ClearingLine.objects.get(kind=ClearingLine.Kind.ADJUSTMENT)
    assert adjustment.corrects == line and adjustment.net == D("-34.50")
    assert adjustment.period != month and adjustment.period.status == SettlementPeriod.Status.OPEN


def test_an_adjustment_needs_a_reason_and_an_amount(client, finance_hq, month):
    line = ClearingLine.objects.get(kind=ClearingLine.Kind.CARD_DEBIT, honourer__code="LE_SUPER")
    client.force_login(finance_hq)

    response = client.post(reverse("admin:settlement_clearingline_adjust", args=[line.pk]), {"net": "0",
                                                                                             "reason": ""})

    assert response.status_code == 200
    assert response.context["form"].errors.keys() == {"net", "reason"}
    assert not ClearingLine.objects.filter(kind=ClearingLine.Kind.ADJUSTMENT).exists()


def test_finance_of_stores_scope_cannot_adjust(client, super_finance, month):
    line = ClearingLine.objects.get(kind=ClearingLine.Kind.CARD_DEBIT, honourer__code="LE_SUPER")
    client.force_login(super_finance)

    response = client.post(reverse("admin:settlement_clearingline_adjust", args=[line.pk]),
                           {"net": "1.00", "reason": "x"})

    assert response.status_code == 403
    assert not ClearingLine.objects.filter(kind=ClearingLine.Kind.ADJUSTMENT).exists()


# --- runs ----------------------------------------------------------------------------------------------------------


def test_a_day_is_run_from_the_runs_page(client, finance_hq, dept001, super001, card_product):
    day = timezone.localdate() - timedelta(days=1)
    card = card_sold(store=dept001, amount="500.00", day=day, product=card_product)
    card_pay(card, store=super001, amount="120.00", day=day)
    client.force_login(finance_hq)

    page = client.get(reverse("admin:settlement_clearingrun_run"))
    response = client.post(reverse("admin:settlement_clearingrun_run"), {"business_date": day.isoformat()})

    assert page.status_code == 200
    run = ClearingRun.objects.get(business_date=day)
    assert response.status_code == 302 and run.status == ClearingRun.Status.DONE
    assert ClearingLine.objects.filter(run=run, kind=ClearingLine.Kind.CARD_DEBIT, gross=D("120.00")).exists()


def test_a_day_not_yet_over_is_not_run(client, finance_hq, reference_stores):
    client.force_login(finance_hq)

    response = client.post(reverse("admin:settlement_clearingrun_run"),
                           {"business_date": timezone.localdate().isoformat()})

    assert response.status_code == 200 and "business_date" in response.context["form"].errors
    assert not ClearingRun.objects.exists()


def test_a_day_of_a_locked_period_is_refused_on_the_form(client, finance_hq, month):
    SettlementPeriod.objects.filter(pk=month.pk).update(status=SettlementPeriod.Status.LOCKED,
                                                        locked_at=timezone.now())
    client.force_login(finance_hq)

    response = client.post(reverse("admin:settlement_clearingrun_run"),
                           {"business_date": month.starts_on.isoformat()}, **EN)

    assert response.status_code == 200
    assert month.code in str(response.context["form"].errors)


# --- the clearing matrix -------------------------------------------------------------------------------------------


def test_the_matrix_shows_what_each_company_owes_as_money_and_nets_to_zero(client, finance_hq, month):
    client.force_login(finance_hq)

    response = client.get(reverse("admin:settlement_clearing_matrix"), {"period": month.pk}, **EN)

    assert response.status_code == 200
    page = response.content.decode()
    assert "1,234.50" in page and "嘉禾超市连锁有限公司" in page
    assert response.context["tables"]["nets_to_zero"]
    assert response.context["tables"]["positions_total"] == 0


def test_the_matrix_downloads_as_excel(client, finance_hq, month):
    client.force_login(finance_hq)

    response = client.get(reverse("admin:settlement_clearing_matrix"), {"period": month.pk, "export": "xlsx"})

    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = [cell for row in sheet.iter_rows(values_only=True) for cell in row if cell is not None]
    assert D("1234.50") in [D(str(value)) for value in values if isinstance(value, int | float | Decimal)]


def test_the_matrix_of_finance_of_stores_scope_leaves_out_other_companies_pairs(client, super_finance, month):
    client.force_login(super_finance)

    response = client.get(reverse("admin:settlement_clearing_matrix"), {"period": month.pk})

    pairs = response.context["tables"]["pairs"]
    assert [row[4] for row in pairs] == [D("1234.50")]


def test_a_matrix_without_period_or_days_asks_for_them(client, finance_hq, reference_stores):
    client.force_login(finance_hq)

    response = client.get(reverse("admin:settlement_clearing_matrix"), {"date_from": "", "date_to": ""})

    assert response.status_code == 200 and response.context["tables"] is None
    assert response.context["form"].errors


# --- finance files ---------------------------------------------------------------------------------------------------


@pytest.fixture
def layouts(reference_stores):
    return finance_layouts_ensure(finance_system_code="FIN-DEPT") + finance_layouts_ensure(
        finance_system_code="FIN-SUPER")


def test_one_click_makes_a_companys_files_and_offers_the_zip(client, finance_hq, month, layouts, dept_co):
    client.force_login(finance_hq)

    response = client.post(reverse("admin:settlement_settlementperiod_export", args=[month.pk, dept_co.pk]),
                           follow=True, **EN)

    files = FinanceExportFile.objects.filter(period=month, legal_entity=dept_co)
    assert files.count() == FinanceExportLayout.objects.filter(finance_system_code="FIN-DEPT",
                                                               is_active=True).count() > 0
    zip_url = reverse("admin:settlement_settlementperiod_zip", args=[month.pk, dept_co.pk])
    assert zip_url in response.content.decode()
    archive = zipfile.ZipFile(io.BytesIO(b"".join(client.get(zip_url).streaming_content)))
    assert len(archive.namelist()) == files.count()


def test_a_made_file_downloads_for_its_company_only(client, finance_hq, super_finance, month, layouts, dept_co,
                                                    super_co):
    client.force_login(finance_hq)
    client.post(reverse("admin:settlement_settlementperiod_export", args=[month.pk, dept_co.pk]))
    client.post(reverse("admin:settlement_settlementperiod_export", args=[month.pk, super_co.pk]))
    dept_file = FinanceExportFile.objects.filter(legal_entity=dept_co).first()
    super_file = FinanceExportFile.objects.filter(legal_entity=super_co).first()
    client.force_login(super_finance)

    own = client.get(reverse("admin:settlement_financeexportfile_download", args=[super_file.pk]))
    other = client.get(reverse("admin:settlement_financeexportfile_download", args=[dept_file.pk]))
    other_zip = client.get(reverse("admin:settlement_settlementperiod_zip", args=[month.pk, dept_co.pk]))
    listed = client.get(reverse("admin:settlement_financeexportfile_changelist"))

    assert own.status_code == 200 and b"".join(own.streaming_content)
    assert other.status_code == 404 and other_zip.status_code == 404
    assert {row.legal_entity_id for row in listed.context["cl"].result_list} == {super_co.pk}


def test_finance_of_stores_scope_makes_only_their_companys_files(client, super_finance, month, layouts, dept_co):
    client.force_login(super_finance)

    response = client.post(reverse("admin:settlement_settlementperiod_export", args=[month.pk, dept_co.pk]))

    assert response.status_code == 404
    assert not FinanceExportFile.objects.exists()


def test_a_layout_with_an_unknown_field_is_refused_on_the_form(client, hq_admin, reference_stores):
    client.force_login(hq_admin)

    response = client.post(reverse("admin:settlement_financeexportlayout_add"), {
        "finance_system_code": "FIN-X", "dataset": "card_sales", "name": "x",
        "columns": '[{"field": "no_such_field", "header": "列"}]', "file_type": "csv", "encoding": "gbk",
        "delimiter": ",", "date_format": "%Y-%m-%d", "amount_format": "plain", "is_active": "on",
    })

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not FinanceExportLayout.objects.filter(finance_system_code="FIN-X").exists()


def test_a_good_layout_is_saved_and_its_page_lists_the_fields(client, hq_admin, reference_stores):
    client.force_login(hq_admin)

    response = client.post(reverse("admin:settlement_financeexportlayout_add"), {
        "finance_system_code": "FIN-X", "dataset": "card_sales", "name": "x",
        "columns": '[{"field": "store_code", "header": "门店编码"}, {"field": "amount", "header": "金额"}]',
        "file_type": "csv", "encoding": "gbk", "delimiter": ",", "date_format": "%Y%m%d",
        "amount_format": "plain", "is_active": "on",
    })

    layout = FinanceExportLayout.objects.get(finance_system_code="FIN-X")
    assert response.status_code == 302
    assert [column["field"] for column in layout.columns] == ["store_code", "amount"]
    page = client.get(reverse("admin:settlement_financeexportlayout_change", args=[layout.pk])).content.decode()
    assert "<code>invoice_item</code>" in page


# --- liability -----------------------------------------------------------------------------------------------------


def test_the_liability_page_shows_card_balances_by_age_and_points(client, finance_hq, month):
    client.force_login(finance_hq)

    response = client.get(reverse("admin:settlement_liability"), {"at": month.ends_on.isoformat()})

    assert response.status_code == 200
    assert response.context["ageing"].total == D("3465.50")
    assert "3,465.50" in response.content.decode()


def test_the_liability_page_is_headquarters_only(client, super_finance, reference_stores):
    client.force_login(super_finance)

    assert client.get(reverse("admin:settlement_liability")).status_code == 403
