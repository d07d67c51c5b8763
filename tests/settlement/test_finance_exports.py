"""Finance exports: each dataset's rows against the ledgers, scoped to one company; the files in their layouts
(order, headers, encodings, date and amount formats, formula escaping), bad layouts, and the period's history."""

import csv
import io
import zipfile
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone
from openpyxl import load_workbook

from campaigns.models import Coupon, CouponBatch, CouponTemplate
from campaigns.services import coupon_redeem, coupon_redemptions_release, coupons_issue
from cards.models import CardLedgerEntry
from cards.services.ledger import card_post
from membership.models import PointsEntry
from settlement.errors import ExportLayoutInvalid
from settlement.models import ClearingLine, ClearingRun, FinanceExportFile, FinanceExportLayout, SettlementPeriod
from settlement.services.exports import (
    DATASET_FIELDS,
    DEFAULT_COLUMNS,
    export_layout_clean,
    finance_export_filename,
    finance_export_make,
    finance_export_rows,
    finance_export_zip,
    finance_layouts_ensure,
)
from tests.settlement.conftest import (
    card_pay,
    card_refund_at,
    card_reverse_at,
    card_sold,
    frozen_at,
    local_moment,
    member_earning,
    points_move,
)

D = Decimal
Dataset = FinanceExportLayout.Dataset


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    """Files made by the tests go to a temporary folder."""
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def month(last_month_days) -> tuple[date, date]:
    return last_month_days


@pytest.fixture
def period(month) -> SettlementPeriod:
    start, end = month
    return SettlementPeriod.objects.create(code=f"{start:%Y-%m}", starts_on=start, ends_on=end)


@pytest.fixture
def day(month) -> date:
    """A business day inside last month."""
    return month[0] + timedelta(days=9)


def rows_of(dataset, *, company, month, period=None) -> list[dict]:
    return list(finance_export_rows(dataset=dataset, start=month[0], end=month[1], legal_entity=company,
                                    period=period))


def layout_make(dataset, columns, *, code="FIN-DEPT", file_type="csv", encoding="utf-8", **fields):
    return FinanceExportLayout.objects.create(
        finance_system_code=code, dataset=dataset, name=f"{code} {dataset}", columns=columns, file_type=file_type,
        encoding=encoding, **fields,
    )


def csv_rows(export_file: FinanceExportFile, encoding="utf-8", delimiter=",") -> list[list[str]]:
    with export_file.file.open("rb") as handle:
        text = handle.read().decode(encoding)
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


def run_for(day_: date, period: SettlementPeriod) -> ClearingRun:
    return ClearingRun.objects.create(business_date=day_, period=period, status=ClearingRun.Status.DONE)


# --- datasets against the ledgers ----------------------------------------------------------------------------------


def test_card_sales_are_the_loads_the_company_took_in_with_invoice_item_601(
        dept001, super001, dept_co, super_co, card_product, month, day):
    # given cards sold at DEPT001 and at SUPER001, and a DEPT load a minute after the month ended
    dept_card = card_sold(store=dept001, amount="500.00", day=day, product=card_product)
    card_sold(store=super001, amount="300.00", day=day, product=card_product)
    last_evening = card_sold(store=dept001, amount="200.00", day=month[1], hour=23, product=card_product)
    card_post(card=last_evening, kind=CardLedgerEntry.Kind.LOAD, amount=D("100.00"), store=dept001,
              created_at=local_moment(month[1] + timedelta(days=1), 0, 1))

    # when
    rows = rows_of(Dataset.CARD_SALES, company=dept_co, month=month)

    # then: the month's two DEPT loads (23:00 on the last day counts, 00:01 the next day does not)
    assert [(row["card_no"], row["amount"]) for row in rows] == [
        (dept_card.card_no, D("500.00")), (last_evening.card_no, D("200.00"))]
    first = rows[0]
    assert (first["date"], first["time"], first["store_code"], first["store_name"]) == (
        day, "09:00:00", "DEPT001", dept001.name)
    assert (first["invoice_item"], first["invoice_item_name"], first["tax"]) == ("601", "预付卡销售和充值", "不征税")
    assert (first["product_name"], first["issuer_code"]) == (card_product.name, dept_co.code)
    in_ledger = CardLedgerEntry.objects.filter(
        kind=CardLedgerEntry.Kind.LOAD, legal_entity=dept_co, created_at__gte=local_moment(month[0], 0),
        created_at__lt=local_moment(month[1] + timedelta(days=1), 0)).aggregate(total=Sum("amount"))["total"]
    assert sum(row["amount"] for row in rows) == in_ledger == D("700.00")
    assert [row["amount"] for row in rows_of(Dataset.CARD_SALES, company=super_co, month=month)] == [D("300.00")]


def test_card_spending_per_store_and_day_with_the_share_on_other_companies_cards(
        dept001, super001, dept_co, super_co, card_product, month, day):
    # given a DEPT card spent at SUPER001 and DEPT001, and a SUPER card spent at SUPER001
    dept_card = card_sold(store=dept001, amount="1000.00", day=day, product=card_product)
    super_card = card_sold(store=super001, amount="500.00", day=day, product=card_product)
    card_pay(dept_card, store=super001, amount="100.00", day=day)
    card_pay(super_card, store=super001, amount="50.00", day=day, hour=13)
    card_pay(super_card, store=super001, amount="20.00", day=day + timedelta(days=1))
    card_pay(dept_card, store=dept001, amount="30.00", day=day)

    # when
    super_rows = rows_of(Dataset.CARD_SPENDING, company=super_co, month=month)
    dept_rows = rows_of(Dataset.CARD_SPENDING, company=dept_co, month=month)

    # then
    assert super_rows == [
        {"date": day, "store_code": "SUPER001", "store_name": super001.name, "count": 2, "amount": D("150.00"),
         "count_other_issuers": 1, "amount_other_issuers": D("100.00"), "amount_own_cards": D("50.00")},
        {"date": day + timedelta(days=1), "store_code": "SUPER001", "store_name": super001.name, "count": 1,
         "amount": D("20.00"), "count_other_issuers": 0, "amount_other_issuers": D("0.00"),
         "amount_own_cards": D("20.00")},
    ]
    assert [(row["store_code"], row["amount"], row["amount_other_issuers"]) for row in dept_rows] == [
        ("DEPT001", D("30.00"), D("0.00"))]
    spent_at_super = -CardLedgerEntry.objects.filter(kind=CardLedgerEntry.Kind.DEBIT, legal_entity=super_co) \
        .aggregate(total=Sum("amount"))["total"]
    assert sum(row["amount"] for row in super_rows) == spent_at_super


def test_refunds_and_reversals_onto_cards_at_the_company_stores(
        dept001, super001, dept_co, super_co, card_product, month, day):
    # given a DEPT card paying at SUPER001, partly refunded there, and a second payment voided
    card = card_sold(store=dept001, amount="1000.00", day=day, product=card_product)
    payment = card_pay(card, store=super001, amount="100.00", day=day, receipt_no="P-1")
    refund = card_refund_at(payment, store=super001, amount="40.00", day=day, receipt_no="RF-1")
    voided = card_pay(card, store=super001, amount="25.00", day=day, hour=14, receipt_no="P-2")
    card_reverse_at(voided, store=super001, day=day)

    # when
    rows = rows_of(Dataset.REFUNDS, company=super_co, month=month)

    # then
    assert [(row["kind"], row["receipt_no"], row["original_receipt_no"], row["amount"]) for row in rows] == [
        ("refund", "RF-1", "P-1", D("40.00")), ("reversal", "P-2", "P-2", D("25.00"))]
    assert (rows[0]["card_no"], rows[0]["issuer_code"], rows[0]["store_code"]) == (card.card_no, dept_co.code,
                                                                                   "SUPER001")
    assert rows[0]["entry_id"] == CardLedgerEntry.objects.get(transaction=refund).pk
    assert rows_of(Dataset.REFUNDS, company=dept_co, month=month) == []


def test_points_per_day_store_and_kind_valued_at_the_cash_rate(dept001, super001, dept_co, super_co, month, day):
    # given a member earning 250 points at DEPT001 and redeeming 120 at SUPER001 (100 points = 1.00 yuan)
    member = member_earning(store=dept001, points=250, day=day)
    points_move(member, kind=PointsEntry.Kind.REDEEM, points=-120, store=super001, day=day)

    # when
    dept_rows = rows_of(Dataset.POINTS, company=dept_co, month=month)
    super_rows = rows_of(Dataset.POINTS, company=super_co, month=month)

    # then
    assert dept_rows == [{"date": day, "store_code": "DEPT001", "store_name": dept001.name, "kind": "earned",
                          "count": 1, "points": 250, "value": D("2.50")}]
    assert [(row["kind"], row["points"], row["value"]) for row in super_rows] == [("redeemed", -120, D("-1.20"))]


@pytest.fixture
def dept_funded_coupons(reference_stores, dept_co) -> CouponTemplate:
    """减10元 anywhere, borne by 嘉禾百货."""
    return CouponTemplate.objects.create(code="DEPTPAYS", name="百货承担10元券", kind=CouponTemplate.Kind.AMOUNT_OFF,
                                         amount=D("10.00"), status=CouponTemplate.Status.ACTIVE, funded_by=dept_co)


def test_coupons_used_at_the_company_stores_or_funded_by_it_net_of_those_given_back(
        dept_funded_coupons, super001, elec001, dept_co, super_co, elec_co):
    # given three coupons borne by DEPT used at SUPER001 today, one of them given back, and one used at ELEC001
    today = timezone.localdate()
    batch = coupons_issue(template=dept_funded_coupons, quantity=4, channel=CouponBatch.Channel.BULK)
    codes = list(Coupon.objects.filter(batch=batch).order_by("pk").values_list("code", flat=True))
    with frozen_at(local_moment(today, 0, 30)):
        for number, code in enumerate(codes[:3]):
            coupon_redeem(code=code, store=super001, member_no=None, receipt_no=f"C{number}", basket_amount="80.00")
        coupon_redeem(code=codes[3], store=elec001, member_no=None, receipt_no="E1", basket_amount="80.00")
        coupon_redemptions_release(store=super001, receipt_no="C1", reason="退货")

    # when
    def rows(company):
        return [(row["store_code"], row["template_code"], row["funded_by_code"], row["count"], row["discount"])
                for row in finance_export_rows(dataset=Dataset.COUPONS, start=today, end=today,
                                               legal_entity=company)]

    # then: the funder sees every store; each store's company only its own
    assert rows(dept_co) == [("ELEC001", "DEPTPAYS", dept_co.code, 1, D("10.00")),
                             ("SUPER001", "DEPTPAYS", dept_co.code, 2, D("20.00"))]
    assert rows(super_co) == [("SUPER001", "DEPTPAYS", dept_co.code, 2, D("20.00"))]
    assert rows(elec_co) == [("ELEC001", "DEPTPAYS", dept_co.code, 1, D("10.00"))]


def test_a_coupon_given_back_on_a_later_day_is_taken_off_that_day(dept_funded_coupons, super001, super_co):
    today = timezone.localdate()
    yesterday = today - timedelta(days=1)
    batch = coupons_issue(template=dept_funded_coupons, quantity=1, channel=CouponBatch.Channel.BULK)
    Coupon.objects.filter(batch=batch).update(valid_from=local_moment(yesterday, 0))
    code = Coupon.objects.get(batch=batch).code
    with frozen_at(local_moment(yesterday, 10)):
        coupon_redeem(code=code, store=super001, member_no=None, receipt_no="C9", basket_amount="80.00")
    with frozen_at(local_moment(today, 0, 5)):
        coupon_redemptions_release(store=super001, receipt_no="C9", reason="退货")

    rows = list(finance_export_rows(dataset=Dataset.COUPONS, start=yesterday, end=today, legal_entity=super_co))

    assert [(row["date"], row["count"], row["discount"]) for row in rows] == [
        (yesterday, 1, D("10.00")), (today, -1, D("-10.00"))]


def test_clearing_lines_the_company_is_party_to_with_its_counterparty_and_side(
        period, day, dept_co, super_co, elec_co, month):
    # given the period's lines: DEPT cards spent at SUPER, SUPER cards spent at DEPT, an ELEC/SUPER line, the
    # DEPT diagonal and an adjusting line that corrects the first
    run = run_for(day, period)
    spent_at_super = ClearingLine.objects.create(
        period=period, business_date=day, run=run, kind=ClearingLine.Kind.CARD_DEBIT, issuer=dept_co,
        honourer=super_co, count=3, gross=D("100.00"), fee=D("0.60"), net=D("99.40"))
    ClearingLine.objects.create(period=period, business_date=day, run=run, kind=ClearingLine.Kind.CARD_DEBIT,
                                issuer=super_co, honourer=dept_co, count=1, gross=D("40.00"), net=D("40.00"))
    ClearingLine.objects.create(period=period, business_date=day, run=run, kind=ClearingLine.Kind.CARD_DEBIT,
                                issuer=elec_co, honourer=super_co, count=1, gross=D("70.00"), net=D("70.00"))
    ClearingLine.objects.create(period=period, business_date=day, run=run, kind=ClearingLine.Kind.CARD_LOAD,
                                issuer=dept_co, honourer=dept_co, count=2, gross=D("500.00"), net=D("0.00"))
    ClearingLine.objects.create(
        period=period, business_date=month[1], kind=ClearingLine.Kind.ADJUSTMENT, issuer=dept_co, honourer=super_co,
        gross=D("-5.00"), net=D("-5.00"), corrects=spent_at_super, corrects_text="card spending (line #1)",
        reason="POS 差额")

    # when
    rows = rows_of(Dataset.CLEARING, company=dept_co, month=month, period=period)

    # then
    assert [(row["kind"], row["issuer_code"], row["honourer_code"], row["counterparty_code"], row["net"],
             row["net_for_company"]) for row in rows] == [
        ("card spending", dept_co.code, super_co.code, super_co.code, D("99.40"), D("-99.40")),
        ("card spending", super_co.code, dept_co.code, super_co.code, D("40.00"), D("40.00")),
        ("card sales and top-ups", dept_co.code, dept_co.code, dept_co.code, D("0.00"), D("0.00")),
        ("adjusting line", dept_co.code, super_co.code, super_co.code, D("-5.00"), D("5.00")),
    ]
    assert (rows[0]["count"], rows[0]["gross"], rows[0]["fee"]) == (3, D("100.00"), D("0.60"))
    assert (rows[3]["corrects_text"], rows[3]["reason"]) == ("card spending (line #1)", "POS 差额")
    assert [row["counterparty_code"] for row in rows_of(Dataset.CLEARING, company=elec_co, month=month,
                                                        period=period)] == [super_co.code]


def test_clearing_lines_of_a_day_run_add_up_to_the_ledger(dept001, super001, dept_co, super_co, card_product, day):
    clearing = pytest.importorskip("settlement.services.clearing")
    card = card_sold(store=dept001, amount="1000.00", day=day, product=card_product)
    card_pay(card, store=super001, amount="100.00", day=day)
    clearing.clearing_day_run(day=day)

    dept_rows = list(finance_export_rows(dataset=Dataset.CLEARING, start=day, end=day, legal_entity=dept_co))
    super_rows = list(finance_export_rows(dataset=Dataset.CLEARING, start=day, end=day, legal_entity=super_co))

    debit_gross = [row["gross"] for row in super_rows if row["kind"] == "card spending"]
    assert debit_gross == [D("100.00")]
    between = [row for row in dept_rows if row["counterparty_code"] == super_co.code]
    assert sum(row["net_for_company"] for row in between) == -sum(
        row["net_for_company"] for row in super_rows if row["counterparty_code"] == dept_co.code)


# --- files ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def dept_sales(dept001, card_product, day):
    """Two DEPT card sales in the month: 1,234.50 and 500.00."""
    return [card_sold(store=dept001, amount="1234.50", day=day, product=card_product),
            card_sold(store=dept001, amount="500.00", day=day, hour=10, product=card_product)]


def test_a_csv_file_has_the_layout_columns_in_its_order_under_its_headers(dept_sales, period, day, dept_co,
                                                                         hq_admin):
    layout = layout_make(Dataset.CARD_SALES, [{"field": "amount", "header": "金额"},
                                              {"field": "card_no", "header": "卡号"},
                                              {"field": "date", "header": "日期"},
                                              {"field": "invoice_item", "header": "开票项目"}], delimiter=";")

    [made] = finance_export_make(period=period, legal_entity=dept_co, user=hq_admin, layouts=[layout])

    assert csv_rows(made, delimiter=";") == [
        ["金额", "卡号", "日期", "开票项目"],
        ["1234.50", dept_sales[0].card_no, day.isoformat(), "601"],
        ["500.00", dept_sales[1].card_no, day.isoformat(), "601"],
    ]
    assert (made.rows, made.layout, made.legal_entity, made.period, made.created_by) == (
        2, layout, dept_co, period, hq_admin)


@pytest.mark.parametrize(("amount_format", "date_format", "amount", "day_text"), [
    ("plain", "%Y-%m-%d", "1234.50", "{d:%Y-%m-%d}"),
    ("grouped", "%Y%m%d", "1,234.50", "{d:%Y%m%d}"),
    ("cents", "%d/%m/%Y", "123450", "{d:%d/%m/%Y}"),
])
def test_amounts_and_dates_are_written_in_the_layout_formats(
        dept_sales, period, dept_co, hq_admin, day, amount_format, date_format, amount, day_text):
    columns = [{"field": "date", "header": "日期"}, {"field": "amount", "header": "金额"}]
    layout = layout_make(Dataset.CARD_SALES, columns, amount_format=amount_format, date_format=date_format)

    [made] = finance_export_make(period=period, legal_entity=dept_co, user=hq_admin, layouts=[layout])

    assert csv_rows(made)[1] == [day_text.format(d=day), amount]


def test_a_gbk_csv_decodes_as_gbk_and_utf8_with_bom_starts_with_the_bom(dept_sales, period, dept_co, hq_admin):
    columns = [{"field": "store_name", "header": "门店名称"}, {"field": "invoice_item_name", "header": "开票项目名称"}]
    gbk = layout_make(Dataset.CARD_SALES, columns, encoding="gbk")
    bom = layout_make(Dataset.CARD_SALES, columns, code="FIN-X", encoding="utf-8-sig")

    gbk_file, bom_file = finance_export_make(period=period, legal_entity=dept_co, user=hq_admin, layouts=[gbk, bom])

    raw = gbk_file.file.open("rb").read()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert raw.decode("gbk").splitlines()[:2] == [
        "门店名称,开票项目名称", f"{dept_sales[0].sold_store.name},预付卡销售和充值"]
    assert bom_file.file.open("rb").read().startswith(b"\xef\xbb\xbf\xe9\x97\xa8")


def test_an_excel_file_opens_with_its_headers_amounts_as_numbers_and_a_frozen_header(
        dept_sales, period, dept_co, hq_admin, day):
    layout = layout_make(Dataset.CARD_SALES, [{"field": "date", "header": "日期"},
                                              {"field": "store_code", "header": "门店编码"},
                                              {"field": "amount", "header": "金额"}],
                         file_type="xlsx", amount_format="grouped", date_format="%Y%m%d")

    [made] = finance_export_make(period=period, legal_entity=dept_co, user=hq_admin, layouts=[layout])

    sheet = load_workbook(made.file.open("rb")).active
    assert [cell.value for cell in sheet[1]] == ["日期", "门店编码", "金额"]
    assert [cell.value for cell in sheet[2]] == [f"{day:%Y%m%d}", "DEPT001", 1234.5]
    assert sheet["C2"].number_format == "#,##0.00"
    assert sheet.freeze_panes == "A2"
    assert sheet.max_row == 3 and made.rows == 2
    assert made.file.name.endswith(".xlsx")
    assert finance_export_filename(made) == f"FIN-DEPT-card_sales-{period.code}-{dept_co.code}.xlsx"


@pytest.mark.parametrize("file_type", ["csv", "xlsx"])
def test_cells_that_could_start_a_formula_are_escaped(period, day, dept_co, super_co, hq_admin, file_type):
    run = run_for(day, period)
    line = ClearingLine.objects.create(period=period, business_date=day, run=run, kind=ClearingLine.Kind.CARD_DEBIT,
                                       issuer=dept_co, honourer=super_co, gross=D("-3.00"), net=D("-3.00"))
    ClearingLine.objects.create(period=period, business_date=day, kind=ClearingLine.Kind.ADJUSTMENT, issuer=dept_co,
                                honourer=super_co, gross=D("1.00"), net=D("1.00"), corrects=line,
                                corrects_text="=HYPERLINK(\"http://x\")", reason="@SUM(A1)")
    layout = layout_make(Dataset.CLEARING, [{"field": "corrects_text", "header": "=更正"},
                                            {"field": "reason", "header": "原因"},
                                            {"field": "net", "header": "金额"}], file_type=file_type)

    [made] = finance_export_make(period=period, legal_entity=dept_co, user=hq_admin, layouts=[layout])

    if file_type == "csv":
        rows = csv_rows(made)
    else:
        rows = [[cell.value for cell in row] for row in load_workbook(made.file.open("rb")).active.iter_rows()]
    assert rows[0][0] == "'=更正"
    assert rows[1] == ["'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "1.00" if file_type == "csv" else 1]
    assert rows[2][2] == ("-3.00" if file_type == "csv" else -3)


def test_a_character_gbk_cannot_hold_refuses_naming_row_and_text_and_saves_nothing(
        dept001, card_product, period, day, dept_co, hq_admin):
    card_sold(store=dept001, amount="100.00", day=day, product=card_product)
    card_product.name = "礼品卡😀"
    card_product.save(update_fields=["name"])
    utf8 = layout_make(Dataset.CARD_SALES, [{"field": "amount", "header": "金额"}], code="FIN-OK")
    gbk = layout_make(Dataset.CARD_SALES, [{"field": "amount", "header": "金额"},
                                           {"field": "product_name", "header": "卡产品"}], encoding="gbk")

    with pytest.raises(ExportLayoutInvalid) as refused:
        finance_export_make(period=period, legal_entity=dept_co, user=hq_admin, layouts=[utf8, gbk])

    message = str(refused.value)
    assert "row 2" in message and "“卡产品”" in message and "“礼品卡😀”" in message and "UTF-8" in message
    assert refused.value.fields and "encoding" in refused.value.fields
    assert not FinanceExportFile.objects.exists()


@pytest.mark.parametrize(("columns", "changes", "field", "words"), [
    ([], {}, "columns", "at least one column"),
    ([{"field": "colour", "header": "颜色"}], {}, "columns", "“colour” is not a field"),
    ([{"field": "amount", "header": "  "}], {}, "columns", "has no header"),
    ([{"field": "amount", "header": "金额"}, {"field": "date", "header": "金额"}], {}, "columns",
     "Columns 1 and 2 have the same header “金额”"),
    (["amount"], {}, "columns", "Column 1 must name a \"field\""),
    ([{"field": "amount", "header": "金额"}], {"date_format": "%Y-%m"}, "date_format", "“%Y-%m”"),
    ([{"field": "amount", "header": "金额"}], {"date_format": "日期"}, "date_format", "does not write a whole date"),
    ([{"field": "amount", "header": "金额"}], {"encoding": "latin-1"}, "encoding", "“latin-1”"),
    ([{"field": "amount", "header": "金额"}], {"file_type": "pdf"}, "file_type", "“pdf”"),
    ([{"field": "amount", "header": "金额"}], {"delimiter": "ab"}, "delimiter", "one character"),
    ([{"field": "amount", "header": "金额😀"}], {"encoding": "gbk"}, "columns", "GBK cannot hold"),
])
def test_a_bad_layout_is_refused_naming_the_field(columns, changes, field, words):
    arguments = {"dataset": Dataset.CARD_SALES, "columns": columns, "date_format": "%Y-%m-%d", "encoding": "utf-8",
                 "file_type": "csv", **changes}

    with pytest.raises(ExportLayoutInvalid) as refused:
        export_layout_clean(**arguments)

    assert list(refused.value.fields) == [field]
    assert words in str(refused.value)


def test_a_good_layout_comes_back_with_headers_trimmed():
    assert export_layout_clean(dataset="points", columns=[{"field": "points", "header": " 积分 "}],
                               date_format="%Y%m%d", encoding="gbk", file_type="xlsx") == [
        {"field": "points", "header": "积分"}]


def test_every_default_layout_is_valid_and_every_dataset_has_fields():
    assert set(DATASET_FIELDS) == set(Dataset.values) == set(DEFAULT_COLUMNS)
    for dataset, columns in DEFAULT_COLUMNS.items():
        assert export_layout_clean(dataset=dataset, columns=columns, date_format="%Y-%m-%d", encoding="gbk",
                                   file_type="csv") == columns


def test_a_saved_layout_gone_bad_is_refused_naming_it(period, dept_co, hq_admin):
    layout = layout_make(Dataset.POINTS, [{"field": "nothing", "header": "无"}])

    with pytest.raises(ExportLayoutInvalid) as refused:
        finance_export_make(period=period, legal_entity=dept_co, user=hq_admin, layouts=[layout])

    assert "FIN-DEPT points" in str(refused.value) and "“nothing”" in str(refused.value)


# --- layouts of a company, history, zip ----------------------------------------------------------------------------


def test_default_layouts_are_made_once_per_finance_system_and_edits_are_kept(reference_stores):
    layouts = finance_layouts_ensure(finance_system_code="FIN-DEPT")
    FinanceExportLayout.objects.filter(pk=layouts[0].pk).update(name="已改")

    again = finance_layouts_ensure(finance_system_code="FIN-DEPT")

    assert sorted(layout.dataset for layout in layouts) == sorted(Dataset.values)
    assert [layout.pk for layout in again] == [layout.pk for layout in layouts]
    assert FinanceExportLayout.objects.get(pk=layouts[0].pk).name == "已改"
    assert FinanceExportLayout.objects.count() == len(Dataset.values)


def test_a_company_gets_one_file_per_layout_of_its_finance_system_only(dept_sales, period, dept_co, hq_admin):
    finance_layouts_ensure(finance_system_code="FIN-DEPT")
    finance_layouts_ensure(finance_system_code="FIN-SUPER")

    made = finance_export_make(period=period, legal_entity=dept_co, user=hq_admin)

    assert sorted(finance_export_filename(item) for item in made) == sorted(
        f"FIN-DEPT-{dataset}-{period.code}-{dept_co.code}.xlsx" for dataset in Dataset.values)
    sales = next(item for item in made if item.layout.dataset == Dataset.CARD_SALES)
    sheet = load_workbook(sales.file.open("rb")).active
    assert [cell.value for cell in sheet[1]] == [column["header"] for column in DEFAULT_COLUMNS["card_sales"]]
    assert sales.rows == 2


def test_a_company_without_layouts_is_told_so(reference_stores, period, dept_co, hq_admin):
    with pytest.raises(ExportLayoutInvalid) as refused:
        finance_export_make(period=period, legal_entity=dept_co, user=hq_admin)
    assert "FIN-DEPT" in str(refused.value)


def test_files_made_again_for_a_locked_period_are_kept_beside_the_first_ones(
        dept_sales, period, dept_co, hq_admin, hq_finance):
    import hashlib

    layout = layout_make(Dataset.CARD_SALES, [{"field": "amount", "header": "金额"}])
    first = finance_export_make(period=period, legal_entity=dept_co, user=hq_finance, layouts=[layout])
    SettlementPeriod.objects.filter(pk=period.pk).update(status=SettlementPeriod.Status.LOCKED,
                                                         locked_at=timezone.now())
    period.refresh_from_db()

    second = finance_export_make(period=period, legal_entity=dept_co, user=hq_admin, layouts=[layout])

    history = list(period.export_files.order_by("pk"))
    assert history == [*first, *second]
    assert [item.created_by for item in history] == [hq_finance, hq_admin]
    assert first[0].file.name != second[0].file.name
    for item in history:
        content = item.file.open("rb").read()
        assert hashlib.sha256(content).hexdigest() == item.sha256
        assert content.decode().splitlines() == ["金额", "1234.50", "500.00"]


def test_the_files_come_together_in_one_zip_under_their_names(dept_sales, period, dept_co, hq_admin):
    sales = layout_make(Dataset.CARD_SALES, [{"field": "amount", "header": "金额"}])
    points = layout_make(Dataset.POINTS, [{"field": "points", "header": "积分"}], file_type="xlsx")
    made = finance_export_make(period=period, legal_entity=dept_co, user=hq_admin, layouts=[sales, points])

    archive = zipfile.ZipFile(io.BytesIO(finance_export_zip(made)))

    assert sorted(archive.namelist()) == [f"FIN-DEPT-card_sales-{period.code}-{dept_co.code}.csv",
                                          f"FIN-DEPT-points-{period.code}-{dept_co.code}.xlsx"]
    assert archive.read(f"FIN-DEPT-card_sales-{period.code}-{dept_co.code}.csv") == made[0].file.open("rb").read()


def test_rows_stream_in_chunks_without_loading_the_dataset(dept001, card_product, dept_co, month, day,
                                                          django_assert_max_num_queries):
    card = card_sold(store=dept001, amount="4000.00", day=day, product=card_product)
    for _ in range(5):
        card_post(card=card, kind=CardLedgerEntry.Kind.DEBIT, amount=D("-1.00"), store=dept001,
                  created_at=local_moment(day, 12))
        card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=D("1.00"), store=dept001,
                  created_at=local_moment(day, 13))

    rows = finance_export_rows(dataset=Dataset.CARD_SALES, start=month[0], end=month[1], legal_entity=dept_co)

    assert iter(rows) is rows
    with django_assert_max_num_queries(2):
        assert sum(1 for _ in rows) == 6
