"""A report as an Excel workbook: a summary sheet (title, period, scope, the figures, the small tables and one native
chart per chart of the report), a detail sheet streamed row by row, and the charts' numbers on a sheet of their own.

Written with XlsxWriter in constant-memory mode: each sheet keeps one row in memory and flushes it to a temporary
file as soon as a later row is started, so a sheet's rows must be written top to bottom. The summary is therefore
planned first (every row in order), the charts, which float over the sheet, are placed after the last row, and the
detail is written from the report's generator without ever holding its rows. Memory stays flat however many rows.

Every text cell that could start a formula is escaped (core/files.py `escape_cell`, DESIGN section 6), and the
workbook is told never to read text as a formula, a number or a link.
"""

import os
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

import xlsxwriter
from django.utils import timezone
from django.utils.translation import gettext

from core.files import escape_cell
from core.numbers import MONEY_XLSX_FORMAT
from reports.frame import Chart, Column, Report, ReportParams, Table

__all__ = ["DETAIL_ROWS_PER_SHEET", "NUMBER_FORMATS", "report_workbook_write"]

# unit -> Excel number format (a share 0..1 is shown as a percentage with two decimals).
NUMBER_FORMATS = {
    "money": MONEY_XLSX_FORMAT,
    "percent": "0.00%",
    "count": "#,##0",
    "points": "#,##0",
    "decimal": "#,##0.00##",
    "date": "yyyy-mm-dd",
}
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
# Excel's last row is 1,048,576: a longer detail goes on into a second detail sheet, under the same header.
DETAIL_ROWS_PER_SHEET = 1_048_575
# How many stores the scope line names before it only counts the rest.
SCOPE_STORES_NAMED = 30
NONE_SHOWN = "—"
CHART_TYPES = {"column": "column", "bar": "bar", "line": "line", "pie": "pie"}
# A chart covers about 15 rows x 8 columns at XlsxWriter's default size (480 x 288 pixels).
CHART_ROWS, CHART_COLUMNS = 18, 9
WIDTHS = {"money": 15, "percent": 10, "count": 10, "points": 12, "decimal": 12, "date": 12, "text": 16}
SHEET_NAME_FORBIDDEN = str.maketrans({char: " " for char in "[]:*?/\\"})


def report_workbook_write(report: Report, target) -> int:
    """Write `report` as an .xlsx to `target` (a path or a binary file object); return the detail rows written."""
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    workbook = xlsxwriter.Workbook(target, {
        "constant_memory": True, "in_memory": False,
        # Text stays text: never a formula, a number or a hyperlink, whatever it spells.
        "strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False,
        "default_date_format": NUMBER_FORMATS["date"],
    })
    workbook.set_properties({"title": str(report.title)})
    styles = _Styles(workbook)
    names = _SheetNames()
    summary = workbook.add_worksheet(names.take(gettext("Summary")))
    detail_name = names.take(gettext("Detail")) if report.detail is not None else None
    detail = workbook.add_worksheet(detail_name) if detail_name else None
    chart_data = workbook.add_worksheet(names.take(gettext("Chart data"))) if report.charts else None

    next_row = _summary_write(summary, report, styles)
    if chart_data is not None:
        _charts_write(workbook, summary, chart_data, report.charts, styles, first_row=next_row + 1)
    rows = 0
    if detail is not None:
        rows = _detail_write(workbook, detail, report.detail, styles, names)
    workbook.close()
    return rows


class _Styles:
    """The workbook's formats, made once (XlsxWriter keeps every format object it is given)."""

    def __init__(self, workbook):
        self.title = workbook.add_format({"bold": True, "font_size": 14})
        self.bold = workbook.add_format({"bold": True})
        self.note = workbook.add_format({"italic": True, "font_color": "#666666"})
        self.header = workbook.add_format({"bold": True, "bg_color": "#DDE4EE", "bottom": 1, "text_wrap": True,
                                           "valign": "top"})
        self.none = workbook.add_format({"align": "right", "font_color": "#888888"})
        self.units = {unit: workbook.add_format({"num_format": number_format})
                      for unit, number_format in NUMBER_FORMATS.items()}
        self.datetime = workbook.add_format({"num_format": DATETIME_FORMAT})
        self.bold_units = {unit: workbook.add_format({"num_format": number_format, "bold": True})
                           for unit, number_format in NUMBER_FORMATS.items()}


class _SheetNames:
    """Excel's sheet names: at most 31 characters, none of []:*?/\\, unique whatever their case."""

    def __init__(self):
        self.taken: set[str] = set()

    def take(self, name: str) -> str:
        base = (str(name).translate(SHEET_NAME_FORBIDDEN).strip("' ") or "Sheet")[:31]
        candidate, number = base, 2
        while candidate.lower() in self.taken:
            suffix = f" ({number})"
            candidate, number = base[:31 - len(suffix)] + suffix, number + 1
        self.taken.add(candidate.lower())
        return candidate


def _text(value) -> str:
    return escape_cell(str(value))


def _number(value):
    """A cell's number as XlsxWriter writes it (Decimal is written exactly), or None when it is none."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | Decimal):
        return value if not isinstance(value, Decimal) or value.is_finite() else None
    if isinstance(value, float):
        return Decimal(str(value)) if value == value and value not in (float("inf"), float("-inf")) else None
    return None


def _local(value: datetime) -> datetime:
    # Excel has no time zones: a moment is shown in the site's local time.
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.replace(tzinfo=None)


def _cell_write(sheet, row: int, col: int, value, unit: str, styles: _Styles, *, bold: bool = False,
                none_text: str | None = NONE_SHOWN) -> None:
    """One cell of the summary: a number with its unit's format, a date, or escaped text; None as a dash."""
    if value is None:
        if none_text is not None:
            sheet.write_string(row, col, none_text, styles.none)
        return
    number = _number(value)
    if number is not None:
        formats = styles.bold_units if bold else styles.units
        sheet.write_number(row, col, number, formats.get(unit))
    elif isinstance(value, datetime):
        sheet.write_datetime(row, col, _local(value), styles.datetime)
    elif isinstance(value, date):
        sheet.write_datetime(row, col, value, styles.units["date"])
    else:
        sheet.write_string(row, col, _text(value), styles.bold if bold else None)


def _scope_lines(params: ReportParams) -> list[str]:
    """The period and the stores and formats counted, as people read them (store names in one query)."""
    from stores.models import Format, Store

    lines = [gettext("Period: {start} to {end} ({days} days)").format(
        start=params.start.isoformat(), end=params.end.isoformat(), days=params.days)]
    format_names: list[str] = []
    if params.store_ids is None:
        lines.append(gettext("Stores: all stores (headquarters)"))
        if params.format_codes:
            format_names = list(Format.objects.filter(code__in=params.format_codes).order_by("code")
                                .values_list("name", flat=True))
    else:
        stores = list(Store.objects.filter(pk__in=params.store_ids).order_by("code")
                      .values_list("code", "name", "format__name"))
        named = ", ".join(f"{code} {name}" for code, name, _format in stores[:SCOPE_STORES_NAMED])
        if len(stores) > SCOPE_STORES_NAMED:
            named += " " + gettext("and {count} more").format(count=len(stores) - SCOPE_STORES_NAMED)
        lines.append(gettext("Stores ({count}): {stores}").format(count=len(stores), stores=named or NONE_SHOWN))
        format_names = sorted({format_name for _code, _name, format_name in stores})
    if format_names:
        lines.append(gettext("Formats: {formats}").format(formats=", ".join(format_names)))
    return lines


def _summary_write(sheet, report: Report, styles: _Styles) -> int:
    """Every row of the summary, top to bottom; returns the first free row."""
    sheet.set_column(0, 0, 30)
    sheet.set_column(1, 12, 16)
    row = 0
    sheet.write_string(row, 0, _text(report.title), styles.title)
    row += 1
    for line in _scope_lines(report.params):
        sheet.write_string(row, 0, _text(line))
        row += 1
    for note in report.notes:
        sheet.write_string(row, 0, _text(note), styles.note)
        row += 1
    row += 1
    if report.figures:
        sheet.write_string(row, 0, gettext("Figure"), styles.header)
        sheet.write_string(row, 1, gettext("Value"), styles.header)
        row += 1
        for figure in report.figures:
            sheet.write_string(row, 0, _text(figure.label))
            _cell_write(sheet, row, 1, figure.value, figure.unit, styles, bold=True)
            if figure.note:
                sheet.write_string(row, 2, _text(figure.note), styles.note)
            row += 1
        row += 1
    for table in report.tables:
        row = _table_write(sheet, table, styles, row) + 1
    return row


def _table_write(sheet, table: Table, styles: _Styles, row: int) -> int:
    sheet.write_string(row, 0, _text(table.title), styles.bold)
    row += 1
    for col, column in enumerate(table.columns):
        sheet.write_string(row, col, _text(column.label), styles.header)
    row += 1
    units = [column.unit for column in table.columns]
    for values in table.rows:
        for col, value in enumerate(values):
            _cell_write(sheet, row, col, value, units[col] if col < len(units) else "text", styles)
        row += 1
    return row


def _charts_write(workbook, summary, data_sheet, charts: list[Chart], styles: _Styles, *, first_row: int) -> None:
    """Each chart's numbers in a block of the chart data sheet, and a native chart over them on the summary,
    placed two abreast below the summary's last row."""
    data_sheet.set_column(0, 0, 24)
    data_sheet.set_column(1, 20, 14)
    sheet_name = data_sheet.get_name()
    row = 0
    for index, item in enumerate(charts):
        data_sheet.write_string(row, 0, _text(item.title), styles.bold)
        header_row = row + 1
        data_sheet.write_blank(header_row, 0, None, styles.header)
        for col, series in enumerate(item.series, start=1):
            data_sheet.write_string(header_row, col, _text(series.name), styles.header)
        first = header_row + 1
        for offset, category in enumerate(item.categories):
            data_sheet.write_string(first + offset, 0, _text(category))
            for col, series in enumerate(item.series, start=1):
                value = series.values[offset] if offset < len(series.values) else None
                _cell_write(data_sheet, first + offset, col, value, item.unit, styles, none_text=None)
        last = first + max(len(item.categories), 1) - 1
        chart = _chart_make(workbook, item, sheet_name, header_row, first, last)
        summary.insert_chart(first_row + (index // 2) * CHART_ROWS, (index % 2) * CHART_COLUMNS, chart)
        row = last + 2


def _chart_make(workbook, item: Chart, sheet_name: str, header_row: int, first: int, last: int):
    chart_type = CHART_TYPES.get(item.kind, "column")
    chart = workbook.add_chart({"type": chart_type})
    # A title starting with = would be read as a reference to a cell.
    chart.set_title({"name": _text(item.title)})
    series_list = item.series[:1] if chart_type == "pie" else item.series
    for col, _series in enumerate(series_list, start=1):
        options = {
            "name": [sheet_name, header_row, col],
            "categories": [sheet_name, first, 0, last, 0],
            "values": [sheet_name, first, col, last, col],
        }
        if chart_type == "pie":
            options["data_labels"] = {"percentage": True, "category": True, "leader_lines": True}
        elif chart_type == "line":
            options["marker"] = {"type": "circle", "size": 5}
        chart.add_series(options)
    number_format = NUMBER_FORMATS.get(item.unit)
    if chart_type != "pie" and number_format:
        axis = "set_x_axis" if chart_type == "bar" else "set_y_axis"
        getattr(chart, axis)({"num_format": number_format, "major_gridlines": {"visible": True}})
    if chart_type == "pie" or len(series_list) < 2:
        chart.set_legend({"position": "right" if chart_type == "pie" else "none"})
    else:
        chart.set_legend({"position": "bottom"})
    chart.set_size({"width": 600, "height": 330})
    return chart


def _column_writer(sheet, column: Column, styles: _Styles) -> Callable[[int, int, object], None]:
    """How one detail column writes a value: chosen once per column, so the per-cell work is one call."""
    number_format = styles.units.get(column.unit)
    write_number, write_string, write_datetime = sheet.write_number, sheet.write_string, sheet.write_datetime
    date_format, datetime_format = styles.units["date"], styles.datetime

    def write(row: int, col: int, value) -> None:
        kind = value.__class__
        if kind is Decimal or kind is int:
            write_number(row, col, value, number_format)
        elif kind is str:
            write_string(row, col, escape_cell(value))
        elif value is None:
            return
        elif kind is date:
            write_datetime(row, col, value, date_format)
        elif isinstance(value, datetime):
            write_datetime(row, col, _local(value), datetime_format)
        else:
            number = _number(value)
            if number is not None:
                write_number(row, col, number, number_format)
            else:
                write_string(row, col, _text(value))

    return write


def _detail_sheet_start(sheet, table: Table, styles: _Styles) -> list:
    for col, column in enumerate(table.columns):
        label = str(column.label)
        # CJK characters are about twice as wide as Latin ones.
        header_width = sum(2 if ord(char) > 0x2E80 else 1 for char in label) + 2
        sheet.set_column(col, col, max(WIDTHS.get(column.unit, 16), min(header_width, 40)))
        sheet.write_string(0, col, _text(label), styles.header)
    sheet.freeze_panes(1, 0)
    return [_column_writer(sheet, column, styles) for column in table.columns]


def _detail_write(workbook, sheet, table: Table, styles: _Styles, names: _SheetNames) -> int:
    """Stream the detail's rows under a frozen header with a filter; returns how many rows were written."""
    width = len(table.columns)
    writers = _detail_sheet_start(sheet, table, styles)
    total = row = 0
    sheets = [sheet]
    for values in table.rows:
        if row == DETAIL_ROWS_PER_SHEET:
            _detail_sheet_finish(sheet, row, width)
            sheet = workbook.add_worksheet(names.take(sheets[0].get_name()))
            sheets.append(sheet)
            writers = _detail_sheet_start(sheet, table, styles)
            row = 0
        row += 1
        for col, value in enumerate(values[:width]):
            writers[col](row, col, value)
        total += 1
    _detail_sheet_finish(sheet, row, width)
    return total


def _detail_sheet_finish(sheet, rows: int, width: int) -> None:
    if width:
        sheet.autofilter(0, 0, max(rows, 1), width - 1)
