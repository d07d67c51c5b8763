"""Reading and writing the tabular files of migrations and imports (CSV or XLSX).

Files come from Chinese Excel and legacy systems: CSV in UTF-8, UTF-8 with a
BOM or GBK, or an XLSX workbook; headers in English or Chinese. Rows are read
one at a time so memory stays flat however long the file is, and rows that
were turned away are written back to an error file the user can open in Excel.
"""

import codecs
import csv
import io
import os
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

from django.utils.translation import gettext

from core.errors import TableInvalid
from core.files import escape_cell

_SAMPLE_BYTES = 256 * 1024
_SPACES = re.compile(r"[\s_\u3000]+")


@dataclass(frozen=True)
class Column:
    name: str
    label: str  # the Chinese header of the same column
    required: bool = False
    aliases: tuple[str, ...] = ()

    def headers(self) -> tuple[str, ...]:
        return (self.name, self.label, *self.aliases)

    def describe(self) -> str:
        return f"{self.name} ({self.label})"


@dataclass(frozen=True)
class TableRow:
    number: int  # the row in the file, 1-based, the header being row 1
    values: dict[str, str]  # canonical column name -> text, stripped
    cells: tuple[str, ...]  # every cell as read, for the error file


@dataclass
class HeaderMap:
    headers: list[str]
    positions: dict[str, int]  # canonical column name -> index in the row
    unknown: list[str] = field(default_factory=list)


def header_key(text) -> str:
    return _SPACES.sub("", str(text or "")).lstrip("\ufeff").casefold()


def header_map(headers: Sequence, columns: Sequence[Column]) -> HeaderMap:
    """Match a header row to the columns. Raise TableInvalid naming missing or repeated columns."""
    by_key = {header_key(alias): column for column in columns for alias in column.headers()}
    positions: dict[str, int] = {}
    unknown: list[str] = []
    texts = ["" if value is None else str(value).strip().lstrip("\ufeff") for value in headers]
    for index, text in enumerate(texts):
        if not text:
            continue
        column = by_key.get(header_key(text))
        if column is None:
            unknown.append(text)
        elif column.name in positions:
            raise TableInvalid(
                gettext("The column %(column)s appears twice in the header row.") % {"column": column.describe()}
            )
        else:
            positions[column.name] = index
    missing = [column.describe() for column in columns if column.required and column.name not in positions]
    if missing:
        raise TableInvalid(
            gettext("Required columns are missing: %(columns)s. The header row has: %(found)s.")
            % {"columns": ", ".join(missing), "found": ", ".join(t for t in texts if t) or gettext("nothing")}
        )
    return HeaderMap(headers=texts, positions=positions, unknown=unknown)


def cell_text(value) -> str:
    """A cell as text: Excel's numbers without a spurious .0, dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ") if value.time() != time(0) else value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _csv_encoding(path: Path) -> str:
    with open(path, "rb") as handle:
        sample = handle.read(_SAMPLE_BYTES)
    try:
        # Not final: the sample may end in the middle of a character.
        codecs.getincrementaldecoder("utf-8-sig")().decode(sample, final=False)
    except UnicodeDecodeError:
        # GB18030 reads all of GBK and GB2312, which is what Chinese Excel saves.
        return "gb18030"
    return "utf-8-sig"


class TableReader:
    """Rows of a CSV or XLSX file, mapped to canonical column names; use as a context manager."""

    def __init__(self, path, columns: Sequence[Column]):
        self.path = Path(path)
        self.columns = tuple(columns)
        self._close = None
        self._rows: Iterator[Sequence] | None = None
        self.encoding = ""
        self.header = HeaderMap(headers=[], positions={})

    def __enter__(self) -> "TableReader":
        if not self.path.is_file():
            raise TableInvalid(gettext("There is no file %(path)s.") % {"path": self.path})
        suffix = self.path.suffix.lower()
        if suffix in (".xlsx", ".xlsm"):
            self._open_xlsx()
        elif suffix in (".csv", ".txt", ""):
            self._open_csv()
        else:
            raise TableInvalid(
                gettext("%(name)s is neither a CSV nor an XLSX file.") % {"name": self.path.name}
            )
        first = next(self._rows, None)
        if first is None:
            self.close()
            raise TableInvalid(gettext("The file %(name)s is empty: it has no header row.") % {"name": self.path.name})
        try:
            self.header = header_map(first, self.columns)
        except TableInvalid:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def _open_csv(self) -> None:
        self.encoding = _csv_encoding(self.path)
        handle = open(self.path, encoding=self.encoding, newline="")
        self._close = handle.close
        self._rows = csv.reader(handle)

    def _open_xlsx(self) -> None:
        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            workbook = load_workbook(self.path, read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as error:
            raise TableInvalid(
                gettext("%(name)s cannot be opened as an Excel workbook: %(error)s")
                % {"name": self.path.name, "error": error}
            ) from None
        self.encoding = "xlsx"
        self._close = workbook.close
        self._rows = workbook.worksheets[0].iter_rows(values_only=True)

    def __iter__(self) -> Iterator[TableRow]:
        positions = self.header.positions.items()
        number = 1
        try:
            for raw in self._rows:
                number += 1
                cells = tuple(cell_text(value) for value in raw)
                if not any(cells):
                    continue
                width = len(cells)
                yield TableRow(
                    number=number,
                    values={name: cells[index] if index < width else "" for name, index in positions},
                    cells=cells,
                )
        except UnicodeDecodeError:
            raise TableInvalid(
                gettext("Row %(row)s cannot be read as %(encoding)s text; save the file as UTF-8 or GBK CSV.")
                % {"row": number, "encoding": self.encoding}
            ) from None
        except csv.Error as error:
            raise TableInvalid(gettext("Row %(row)s is not valid CSV: %(error)s") % {"row": number, "error": error}) \
                from None


class ErrorFileWriter:
    """Rejected rows with their reason, as CSV with a BOM so that Chinese Excel opens it right."""

    def __init__(self, path, headers: Sequence[str], *, reason_header: str = "reason"):
        self.path = Path(path)
        self.headers = list(headers)
        self.reason_header = reason_header
        self.count = 0
        self._handle: io.TextIOBase | None = None
        self._writer = None

    def __enter__(self) -> "ErrorFileWriter":
        os.makedirs(self.path.parent, exist_ok=True)
        self._handle = open(self.path, "w", encoding="utf-8-sig", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow([escape_cell(h) for h in [*self.headers, self.reason_header]])
        return self

    def write(self, cells: Sequence[str], reason: str) -> None:
        width = len(self.headers)
        padded = list(cells[:width]) + [""] * (width - len(cells))
        self._writer.writerow([escape_cell(cell) for cell in [*padded, reason]])
        self.count += 1

    def __exit__(self, *exc_info) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


@dataclass(frozen=True)
class Rejection:
    """A row an import refused, with the messages by column (the error file's reason column)."""

    row_number: int
    errors: dict[str, list[str]]  # column -> messages

    @property
    def reason(self) -> str:
        return "; ".join(f"{column}: {' '.join(messages)}" for column, messages in self.errors.items())

    def __str__(self) -> str:
        return gettext("row %(row)s, %(reason)s") % {"row": self.row_number, "reason": self.reason}
