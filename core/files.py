"""Helpers for files going out to people (CSV, Excel)."""

import io
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.http import FileResponse, HttpResponse

from core.numbers import MONEY_XLSX_FORMAT, money_round

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")


def escape_cell(value):
    """Make a cell safe for spreadsheets: text that could start a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


@dataclass(frozen=True)
class XlsxMoney:
    """An amount going into a sheet: written as a number to the fen with the yuan format '#,##0.00' (Excel adds
    it up and shows 68,551.50), never as text. Made by `xlsx_money`, turned into a cell by `xlsx_cells`."""

    value: object


def xlsx_money(value) -> XlsxMoney:
    return XlsxMoney(value)


def xlsx_money_cell(sheet, value):
    """A write-only sheet's money cell: the amount rounded to the fen (Decimal) with the yuan number format;
    "" for none."""
    from openpyxl.cell import WriteOnlyCell

    number = money_round(value)
    if number is None:
        return escape_cell("" if value is None else value)
    cell = WriteOnlyCell(sheet, value=number)
    cell.number_format = MONEY_XLSX_FORMAT
    return cell


def xlsx_cells(sheet, cells: Iterable) -> list:
    """A row for `sheet.append`: amounts marked with `xlsx_money` become money cells, every other cell is
    escaped (formula injection)."""
    return [xlsx_money_cell(sheet, cell.value) if isinstance(cell, XlsxMoney) else escape_cell(cell)
            for cell in cells]


XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_response(workbook, filename: str) -> HttpResponse:
    """A small workbook (a report page, a list) as an Excel download, built in memory."""
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = HttpResponse(buffer.getvalue(), content_type=XLSX_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def xlsx_file_response(workbook, filename: str) -> FileResponse:
    """A large workbook as an Excel download through a temporary file: write-only sheets keep their rows on
    disk, so memory stays flat however many rows there are."""
    handle = tempfile.TemporaryFile()
    workbook.save(handle)
    handle.seek(0)
    return FileResponse(handle, as_attachment=True, filename=filename, content_type=XLSX_CONTENT_TYPE)


def table_xlsx_response(*, filename: str, title: str, header: list, rows: Iterable[Iterable],
                        preamble: Sequence[Sequence] = (), footer: Sequence | None = None) -> FileResponse:
    """One sheet as an Excel download: optional lines above the table (a title, the period) and a blank line,
    the header, the rows written one by one (openpyxl write-only, through a temporary file, so memory stays
    flat), an optional totals line. Every cell that could start a formula is escaped; amounts marked with
    `xlsx_money` are numbers with the yuan format."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    for line in preamble:
        sheet.append(xlsx_cells(sheet, line))
    if preamble:
        sheet.append([])
    sheet.append([escape_cell(str(cell)) for cell in header])
    for row in rows:
        sheet.append(xlsx_cells(sheet, row))
    if footer:
        sheet.append(xlsx_cells(sheet, footer))
    return xlsx_file_response(workbook, filename)
