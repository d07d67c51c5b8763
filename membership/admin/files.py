"""Reading an uploaded .xlsx or .csv file of member numbers (tagging members by file)."""

import csv
import io
import re
import zipfile

from django.utils.translation import gettext_lazy as _
from openpyxl import load_workbook
from openpyxl.utils.exceptions import InvalidFileException

MAX_BULK_TAG_NUMBERS = 200_000


class MemberNumberFileError(Exception):
    def __init__(self, message):
        self.message = message
        super().__init__(str(message))


_NUMBER_HEADERS = {"member_no", "会员号", "member number", "会员编号", "会员卡号"}
_SCIENTIFIC = re.compile(r"^[0-9](\.[0-9]+)?e\+?[0-9]+$", re.IGNORECASE)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    return str(value).strip().lstrip("'").strip()


def _rows_from_xlsx(upload):
    try:
        workbook = load_workbook(upload, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError):
        raise MemberNumberFileError(_("The file could not be read as an Excel workbook (.xlsx).")) from None
    try:
        for row in workbook.worksheets[0].iter_rows(values_only=True):
            yield [_cell_text(value) for value in row]
    finally:
        workbook.close()


def _rows_from_csv(upload):
    raw = upload.read()
    for encoding in ("utf-8-sig", "gbk"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise MemberNumberFileError(_("The CSV file is neither UTF-8 nor GBK text."))
    if "\x00" in text:
        raise MemberNumberFileError(_("The file is not a CSV text file."))
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    for row in csv.reader(io.StringIO(text), dialect):
        yield [_cell_text(value) for value in row]


def member_numbers_from_file(upload) -> list[str]:
    """The member numbers of an uploaded .xlsx or .csv. Raise MemberNumberFileError naming the problem."""
    name = (upload.name or "").lower()
    if name.endswith(".xlsx"):
        rows = _rows_from_xlsx(upload)
    elif name.endswith(".csv"):
        rows = _rows_from_csv(upload)
    else:
        raise MemberNumberFileError(_("Upload an .xlsx or .csv file (an old .xls must be saved as .xlsx)."))
    column = None
    numbers: list[str] = []
    for row_no, row in enumerate(rows, start=1):
        if not any(row):
            continue
        if column is None:
            headers = [cell.lower() for cell in row]
            named = [index for index, header in enumerate(headers) if header in _NUMBER_HEADERS]
            if named:
                column = named[0]
                continue
            if row[0].isdigit():
                column = 0
            else:
                raise MemberNumberFileError(
                    _("No member number column: name a column member_no or 会员号, "
                      "or put the numbers in the first column without a header.")
                )
        value = row[column] if column < len(row) else ""
        if not value:
            continue
        if _SCIENTIFIC.match(value):
            raise MemberNumberFileError(
                _("Row %(row)d: %(value)s is a number Excel shortened; format the column as text and save again.")
                % {"row": row_no, "value": value}
            )
        numbers.append(value)
        if len(numbers) > MAX_BULK_TAG_NUMBERS:
            raise MemberNumberFileError(_("The file holds more than %(max)d member numbers; split it.")
                                        % {"max": MAX_BULK_TAG_NUMBERS})
    if not numbers:
        raise MemberNumberFileError(_("The file holds no member numbers."))
    return numbers
