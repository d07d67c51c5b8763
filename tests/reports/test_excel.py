"""The report workbook (reports/excel.py): the summary with its figures, tables and native charts, the streamed
detail under a frozen, filtered header, number formats per unit, and formula escaping. Built from reports made
here (reports.frame), so the workbook is checked against known numbers."""

import io
import zipfile
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from django.utils import timezone
from openpyxl import load_workbook

from reports import excel
from reports.excel import report_workbook_write
from reports.frame import Chart, Column, Figure, Report, ReportParams, Series, Table

PARAMS = ReportParams(start=date(2026, 11, 1), end=date(2026, 11, 30))
DETAIL_COLUMNS = [
    Column("day", "日期", "date"), Column("store", "门店"), Column("format", "业态"),
    Column("sales", "售卡金额", "money"), Column("walk_in", "散客", "money"), Column("group", "团购", "money"),
    Column("orders", "订单数", "count"),
]


def detail_rows(count: int):
    for index in range(count):
        yield (date(2026, 11, 1 + index % 30), f"DEPT{index % 7:03d}", "百货", Decimal(index) / 100,
               Decimal("10.50"), Decimal("0.00"), index)


def a_report(*, detail_count: int | None = 3, charts=True, params=PARAMS) -> Report:
    report = Report(kind="cards", title="售卡报表", params=params)
    report.figures = [
        Figure("card_sales", "售卡金额", Decimal("68551.50"), "money"),
        Figure("walk_in_share", "散客占比", Decimal("0.1234"), "percent"),
        Figure("card_orders", "刷卡订单数", 1234, "count"),
        Figure("points", "积分", 98765, "points"),
        Figure("card_sales_growth", "同比增长", None, "percent"),
        Figure("evil", "=HYPERLINK(\"http://x\")", 1, "count"),
    ]
    report.tables = [Table("by_format", "按业态", [
        Column("format", "业态"), Column("sales", "售卡金额", "money"), Column("share", "占比", "percent"),
    ], [("百货", Decimal("100.00"), Decimal("0.2500")), ("+超市", Decimal("300.00"), None)])]
    if charts:
        report.charts = [
            Chart("by_format", "按业态售卡", "column", ["百货", "超市"],
                  [Series("今年", [Decimal("100.00"), Decimal("300.00")]), Series("去年", [Decimal("80.00"), None])],
                  "money"),
            Chart("by_month", "按月", "line", ["2026-10", "2026-11"], [Series("售卡", [1, 2])], "count"),
            Chart("mix", "散客与团购", "pie", ["散客", "团购"], [Series("金额", [Decimal("1.00"), Decimal("3.00")])],
                  "money"),
            Chart("bars", "门店", "bar", ["@A1"], [Series("x", [Decimal("0.5")])], "percent"),
        ]
    report.notes = ["-说明 starts with a minus"]
    if detail_count is not None:
        report.detail = Table("detail", "明细", DETAIL_COLUMNS, detail_rows(detail_count))
    return report


@pytest.fixture
def written(tmp_path):
    path = tmp_path / "report.xlsx"
    rows = report_workbook_write(a_report(), path)
    return path, rows


def test_the_workbook_has_a_summary_a_detail_and_a_chart_data_sheet(written):
    path, rows = written
    book = load_workbook(path)
    assert book.sheetnames == ["Summary", "Detail", "Chart data"]
    assert rows == 3


def test_the_summary_shows_title_period_and_every_figure_with_its_number_format(written):
    path, _rows = written
    sheet = load_workbook(path)["Summary"]
    assert sheet["A1"].value == "售卡报表"
    assert sheet["A2"].value == "Period: 2026-11-01 to 2026-11-30 (30 days)"
    assert sheet["A3"].value == "Stores: all stores (headquarters)"
    cells = {row[0].value: row[1] for row in sheet.iter_rows(min_row=1, max_col=2) if row[0].value}
    assert cells["售卡金额"].value == 68551.5
    assert cells["售卡金额"].number_format == "#,##0.00"
    assert cells["散客占比"].value == pytest.approx(0.1234)
    assert cells["散客占比"].number_format == "0.00%"
    assert cells["刷卡订单数"].value == 1234
    assert cells["刷卡订单数"].number_format == "#,##0"
    assert cells["积分"].number_format == "#,##0"
    assert cells["同比增长"].value == "—"


def test_the_summary_holds_each_table_under_a_bold_header(written):
    path, _rows = written
    sheet = load_workbook(path)["Summary"]
    rows = list(sheet.iter_rows())
    title_row = next(index for index, row in enumerate(rows) if row[0].value == "按业态")
    header, first, second = rows[title_row + 1], rows[title_row + 2], rows[title_row + 3]
    assert [cell.value for cell in header[:3]] == ["业态", "售卡金额", "占比"]
    assert all(cell.font.b for cell in header[:3])
    assert (first[0].value, first[1].value, first[2].value) == ("百货", 100, 0.25)
    assert first[1].number_format == "#,##0.00" and first[2].number_format == "0.00%"
    assert second[2].value == "—"


def test_every_chart_is_a_native_excel_chart_over_its_data(written):
    path, _rows = written
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        charts = sorted(name for name in names if name.startswith("xl/charts/chart"))
        xml = {name: archive.read(name).decode() for name in charts}
    assert len(charts) == 4
    everything = "".join(xml.values())
    for element in ("<c:barChart>", "<c:lineChart>", "<c:pieChart>"):
        assert element in everything
    assert '<c:barDir val="bar"/>' in everything and '<c:barDir val="col"/>' in everything
    assert "按业态售卡" in everything
    assert "Chart data" in xml["xl/charts/chart1.xml"]
    data = load_workbook(path)["Chart data"]
    values = [[cell.value for cell in row] for row in data.iter_rows(min_row=1, max_row=4, max_col=3)]
    assert values == [["按业态售卡", None, None], [None, "今年", "去年"], ["百货", 100, 80], ["超市", 300, None]]


def test_the_detail_has_a_frozen_filtered_header_and_formats_per_unit(written):
    path, _rows = written
    sheet = load_workbook(path)["Detail"]
    assert [cell.value for cell in sheet[1]] == [column.label for column in DETAIL_COLUMNS]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:G4"
    day, store, _format, sales, walk_in, _group, orders = sheet[3]
    assert day.value == datetime(2026, 11, 2) and day.number_format == "yyyy-mm-dd"
    assert store.value == "DEPT001"
    assert sales.value == 0.01 and sales.number_format == "#,##0.00"
    assert walk_in.value == 10.5
    assert orders.value == 1 and orders.number_format == "#,##0"
    assert sheet.column_dimensions["D"].width >= 14


def test_text_that_could_start_a_formula_is_escaped_everywhere(tmp_path):
    report = a_report(detail_count=None)
    report.detail = Table("detail", "明细", [Column("a", "=A"), Column("b", "B"), Column("c", "C")],
                          iter([("=1+1", "@SUM(A1)", "-2+3"), ("+cmd", "plain", "-12.5")]))
    path = tmp_path / "escaped.xlsx"
    report_workbook_write(report, path)
    book = load_workbook(path)
    summary = [cell.value for row in book["Summary"].iter_rows() for cell in row if isinstance(cell.value, str)]
    assert "'=HYPERLINK(\"http://x\")" in summary
    assert "'+超市" in summary
    assert "'-说明 starts with a minus" in summary
    detail = [[cell.value for cell in row] for row in book["Detail"].iter_rows()]
    assert detail == [["'=A", "B", "C"], ["'=1+1", "'@SUM(A1)", "'-2+3"], ["'+cmd", "plain", "-12.5"]]
    assert "'@A1" in [cell.value for row in book["Chart data"].iter_rows() for cell in row]
    with zipfile.ZipFile(path) as archive:
        sheets = "".join(archive.read(name).decode() for name in archive.namelist()
                         if name.startswith("xl/worksheets/"))
    assert "<f>" not in sheets


def test_a_generator_detail_of_20000_rows_is_streamed_to_the_end(tmp_path):
    path = tmp_path / "big.xlsx"
    rows = report_workbook_write(a_report(detail_count=20_000, charts=False), path)
    assert rows == 20_000
    assert load_workbook(path, read_only=True).sheetnames == ["Summary", "Detail"]
    with zipfile.ZipFile(path) as archive:
        xml = archive.read("xl/worksheets/sheet2.xml").decode()  # read as text: openpyxl takes seconds here
    assert xml.count("<row ") == 20_001
    last = xml[xml.rindex("<row "):]
    assert 'r="20001"' in last
    assert "DEPT000" in last and "<v>199.99</v>" in last and "<v>19999</v>" in last


def test_a_detail_longer_than_a_sheet_goes_on_in_another_sheet_with_the_header(tmp_path, monkeypatch):
    monkeypatch.setattr(excel, "DETAIL_ROWS_PER_SHEET", 5)
    path = tmp_path / "long.xlsx"
    assert report_workbook_write(a_report(detail_count=12, charts=False), path) == 12
    book = load_workbook(path)
    assert book.sheetnames == ["Summary", "Detail", "Detail (2)", "Detail (3)"]
    for name, count in (("Detail", 5), ("Detail (2)", 5), ("Detail (3)", 2)):
        sheet = book[name]
        assert sheet["A1"].value == "日期"
        assert sheet.max_row == count + 1
        assert sheet.freeze_panes == "A2"
    assert book["Detail (3)"]["G3"].value == 11


def test_a_report_without_detail_or_charts_has_only_its_summary(tmp_path):
    buffer = io.BytesIO()
    assert report_workbook_write(a_report(detail_count=None, charts=False), buffer) == 0
    book = load_workbook(io.BytesIO(buffer.getvalue()))
    assert book.sheetnames == ["Summary"]
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        assert not [name for name in archive.namelist() if name.startswith("xl/charts/")]


def test_moments_in_the_detail_are_shown_in_local_time(tmp_path):
    moment = timezone.make_aware(datetime.combine(date(2026, 11, 3), time(0, 30)))  # Asia/Shanghai
    report = a_report(detail_count=None, charts=False)
    report.detail = Table("detail", "明细", [Column("at", "时间", "date")],
                          iter([(moment.astimezone(UTC),)]))
    path = tmp_path / "moments.xlsx"
    report_workbook_write(report, path)
    cell = load_workbook(path)["Detail"]["A2"]
    assert cell.value == datetime(2026, 11, 3, 0, 30)
    assert cell.number_format == "yyyy-mm-dd hh:mm:ss"


def test_the_scope_names_the_stores_and_their_formats(tmp_path, dept001, super001):
    params = ReportParams(start=date(2026, 11, 1), end=date(2026, 11, 30), store_ids=(dept001.pk, super001.pk))
    path = tmp_path / "stores.xlsx"
    report_workbook_write(a_report(params=params, detail_count=None, charts=False), path)
    sheet = load_workbook(path)["Summary"]
    assert sheet["A3"].value == f"Stores (2): DEPT001 {dept001.name}, SUPER001 {super001.name}"
    assert sheet["A4"].value == "Formats: " + ", ".join(sorted([dept001.format.name, super001.format.name]))


def test_sheet_names_follow_the_language(tmp_path):
    from django.utils import translation

    path = tmp_path / "zh.xlsx"
    with translation.override("zh-hans"):
        summary, detail = translation.gettext("Summary"), translation.gettext("Detail")
        report_workbook_write(a_report(detail_count=1, charts=False), path)
    assert load_workbook(path).sheetnames == [summary, detail]
