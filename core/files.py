"""Helpers for files going out to people (CSV, Excel)."""

import io
import re
import tempfile
from collections.abc import Iterable, Sequence

from django.http import FileResponse, HttpResponse

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")


def escape_cell(value):
    """Make a cell safe for spreadsheets: text that could start a formula gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


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
    flat), an optional totals line. Every cell that could start a formula is escaped."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31])
    for line in preamble:
        sheet.append([escape_cell(cell) for cell in line])
    if preamble:
        sheet.append([])
    sheet.append([escape_cell(str(cell)) for cell in header])
    for row in rows:
        sheet.append([escape_cell(cell) for cell in row])
    if footer:
        sheet.append([escape_cell(cell) for cell in footer])
    return xlsx_file_response(workbook, filename)
