"""Reconciliation: each POS's daily file matched with the card payments and purchases recorded here (issue 21).

A POS system writes one file per store or per format and business day, in its own layout (`PosFileLayout`:
the header of each field, the time format, the encoding). `pos_file_import` reads the file row by row
(core.tabular, so memory stays flat however long it is), checks every line (store, time on the day, amount,
formula cells, exact repeats) and writes nothing unless every line is good: one `ReconFileInvalid` names the
bad lines. The same file uploaded again is recognised by its SHA-256 and imports nothing. The lines go in with
COPY on PostgreSQL and in batches elsewhere, and every store-day of the file is matched at once.

`recon_day_match` matches a store's day in a few set-based statements, never a Python loop over the ledger:
POS lines with a card number against the card payments (`CardTransaction`) of the store and day on receipt
and card number within the layout's time window, and the other lines against the purchases of the store on
the day on receipt number (and member number when the line has one). Lines and payments are paired with
their multiplicity: equal amounts first, then the rest of a receipt as "amount differs"; what is left is a
"duplicate" when the other side has the receipt at all, else "missing in the ledger" or "missing in the POS
file". Payments and purchases count as missing only for the kinds the day's files cover.

Exceptions are worked off by accepting them with a reason, or, for card exceptions, by a correcting ledger
entry (an adjustment posted through the card ledger's door) that a second person approves
(`settlement.exception_correct`). A day is reconciled when it has no exception at all, worked off when every
exception is accepted or corrected; only then may its month be locked.
"""

import csv
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import psycopg
from django.core.files import File
from django.db import DatabaseError, connection, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.services import approval_request_submit
from cards.models import Card, CardLedgerEntry
from cards.services.ledger import card_cap, card_post
from cards.services.operations import _lock_cards
from core.errors import TableInvalid
from core.sql import insert_returning_pk, settings_local, text_array
from core.tabular import Column, TableReader
from settlement.errors import (
    ExceptionNotOpen,
    PeriodLocked,
    ReconFileDuplicate,
    ReconFileInvalid,
    SettlementInvalid,
)
from settlement.models import PosFile, PosFileLayout, PosLine, ReconDay, ReconException, SettlementPeriod
from stores.models import Store

__all__ = [
    "EXCEPTION_CORRECT",
    "ExceptionNotOpen",
    "PeriodLocked",
    "ReconFileDuplicate",
    "ReconFileInvalid",
    "SettlementInvalid",
    "pos_file_import",
    "pos_layout_clean",
    "recon_day_match",
    "recon_exception_accept",
    "recon_exception_correct_request",
]

EXCEPTION_CORRECT = "settlement.exception_correct"
ERRORS_SHOWN = 20
_COPY_CHUNK = 1 << 16
_INSERT_BATCH = 2000
_FORMULA_START = ("=", "+", "-", "@")
_PLAIN_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")
_AMOUNT = re.compile(r"^[+-]?[0-9]{1,12}(\.[0-9]{1,2})?$")
_CARD_NO = re.compile(r"^[0-9]{6,32}$")
_RECEIPT_LENGTH = PosLine._meta.get_field("receipt_no").max_length
_MEMBER_LENGTH = PosLine._meta.get_field("member_no").max_length
_REASON_LENGTH = ReconException._meta.get_field("reason").max_length
_XLSX_MAGIC = b"PK\x03\x04"
_SAMPLE_MOMENT = datetime(2026, 11, 3, 14, 5, 9)
WORKED_OFF = (ReconException.Status.ACCEPTED, ReconException.Status.CORRECTED)
_FIELD_LABELS = {
    "store_code": _("store code"),
    "occurred_at": _("time"),
    "receipt_no": _("receipt number"),
    "card_no": _("card number"),
    "member_no": _("member number"),
    "amount": _("amount"),
}


# --- layouts ---------------------------------------------------------------------------------------------


def _header_key(text: str) -> str:
    return re.sub(r"[\s_\u3000]+", "", text).lstrip("\ufeff").casefold()


def pos_layout_clean(*, columns, file_type: str, encoding: str, datetime_format: str) -> dict:
    """The layout's columns cleaned (field -> header, in the order of PosFileLayout.FIELDS); the admin's form
    calls it. Raise SettlementInvalid naming the field: a required field without a header, an unknown field,
    an empty or repeated header, an unknown file type or encoding, a time format that does not read back the
    date and the time to the minute."""
    problems: dict[str, list[str]] = {}
    if not isinstance(columns, dict):
        raise SettlementInvalid(fields={"columns": [gettext(
            "Give the columns as pairs of field and header, e.g. receipt_no: 小票号.")]})
    cleaned: dict[str, str] = {}
    seen: dict[str, str] = {}
    column_problems = []
    for name in columns:
        if name not in PosFileLayout.FIELDS:
            column_problems.append(gettext("%(field)s is not a field of a POS line; the fields are %(fields)s.")
                                   % {"field": name, "fields": ", ".join(PosFileLayout.FIELDS)})
    for name in PosFileLayout.FIELDS:
        header = columns.get(name)
        header = "" if header is None else str(header).strip()
        if not header:
            if name in PosFileLayout.REQUIRED_FIELDS:
                column_problems.append(gettext("%(field)s (%(label)s) needs the header of its column.")
                                       % {"field": name, "label": _FIELD_LABELS[name]})
            continue
        key = _header_key(header)
        if key in seen:
            column_problems.append(gettext("The header %(header)s is used for both %(first)s and %(field)s.")
                                   % {"header": header, "first": seen[key], "field": name})
            continue
        seen[key] = name
        cleaned[name] = header
    if column_problems:
        problems["columns"] = column_problems
    if file_type not in PosFileLayout.FileType.values:
        problems["file_type"] = [gettext("Choose CSV or Excel.")]
    if encoding not in PosFileLayout.Encoding.values:
        problems["encoding"] = [gettext("Choose UTF-8, GBK or recognise.")]
    format_problem = _datetime_format_problem(datetime_format)
    if format_problem:
        problems["datetime_format"] = [format_problem]
    if problems:
        raise SettlementInvalid(fields=problems)
    return cleaned


def _datetime_format_problem(datetime_format) -> str:
    datetime_format = str(datetime_format or "")
    if not datetime_format.strip():
        return gettext("Give the time format, e.g. %(example)s.") % {"example": "%Y-%m-%d %H:%M:%S"}
    try:
        parsed = _time_parser(datetime_format)(_SAMPLE_MOMENT.strftime(datetime_format))
    except ValueError:
        parsed = None
    if parsed is None or parsed.replace(second=0) != _SAMPLE_MOMENT.replace(second=0):
        return gettext("The time format %(format)s does not read back a time such as %(sample)s: it needs the "
                       "date and the time to the minute (%%Y %%m %%d %%H %%M).") % {
            "format": datetime_format, "sample": _SAMPLE_MOMENT.strftime("%Y-%m-%d %H:%M:%S")}
    return ""


_DIRECTIVES = {"Y": r"(?P<Y>[0-9]{4})", "m": r"(?P<m>[0-9]{1,2})", "d": r"(?P<d>[0-9]{1,2})",
               "H": r"(?P<H>[0-9]{1,2})", "M": r"(?P<M>[0-9]{1,2})", "S": r"(?P<S>[0-9]{1,2})",
               "f": r"(?P<f>[0-9]{1,6})"}


def _time_parser(datetime_format: str) -> Callable[[str], datetime | None]:
    """A function reading a POS time written in `datetime_format` into a naive local datetime, or None.

    strptime costs several microseconds a call; a file has hundreds of thousands of lines, so the usual
    formats are read by a regular expression (or datetime.fromisoformat) compiled once.
    """
    if datetime_format == "%Y-%m-%d %H:%M:%S":
        def iso(text: str) -> datetime | None:
            if len(text) != 19 or text[10] != " ":
                return None
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return None
            return None if moment.tzinfo is not None else moment
        return iso
    pattern, index, usable = [], 0, True
    while index < len(datetime_format):
        char = datetime_format[index]
        if char == "%" and index + 1 < len(datetime_format):
            directive = datetime_format[index + 1]
            if directive in _DIRECTIVES and f"(?P<{directive}>" not in "".join(pattern):
                pattern.append(_DIRECTIVES[directive])
            elif directive == "%":
                pattern.append("%")
            else:
                usable = False
                break
            index += 2
        else:
            pattern.append(re.escape(char))
            index += 1
    if not usable:
        def by_strptime(text: str) -> datetime | None:
            try:
                return datetime.strptime(text, datetime_format)  # noqa: DTZ007 - a local POS time
            except ValueError:
                return None
        return by_strptime
    regex = re.compile("".join(pattern))

    def by_regex(text: str) -> datetime | None:
        found = regex.fullmatch(text)
        if found is None:
            return None
        parts = found.groupdict()
        try:
            return datetime(int(parts.get("Y") or 1900), int(parts.get("m") or 1), int(parts.get("d") or 1),
                            int(parts.get("H") or 0), int(parts.get("M") or 0), int(parts.get("S") or 0),
                            int((parts.get("f") or "0").ljust(6, "0")))
        except ValueError:
            return None
    return by_regex


# --- reading a file -------------------------------------------------------------------------------------


class _PosTableReader(TableReader):
    """TableReader with the layout's encoding (UTF-8, GBK, or recognised) and CSV delimiter."""

    ENCODINGS = {PosFileLayout.Encoding.UTF8: "utf-8-sig", PosFileLayout.Encoding.GBK: "gb18030"}

    def __init__(self, path, columns, *, encoding: str, delimiter: str):
        super().__init__(path, columns)
        self._encoding_asked = encoding
        self._delimiter = delimiter or ","

    def _open_csv(self) -> None:
        encoding = self.ENCODINGS.get(self._encoding_asked)
        if encoding is None:
            super()._open_csv()
            if self._delimiter == ",":
                return
            encoding = self.encoding
            self.close()
        self.encoding = encoding
        handle = open(self.path, encoding=encoding, newline="")  # noqa: SIM115 - closed by close()
        self._close = handle.close
        self._rows = csv.reader(handle, delimiter=self._delimiter)


@dataclass
class _Upload:
    path: str
    sha256: str
    size: int
    head: bytes


def _upload_copy(uploaded, folder: str, suffix: str) -> _Upload:
    """Write the upload to a file in `folder`, hashing it on the way."""
    digest = hashlib.sha256()
    path = os.path.join(folder, f"upload{suffix}")
    size, head = 0, b""
    if hasattr(uploaded, "seek"):
        try:
            uploaded.seek(0)
        except (OSError, ValueError):
            pass
    chunks = uploaded.chunks() if hasattr(uploaded, "chunks") else iter(lambda: uploaded.read(_COPY_CHUNK), b"")
    with open(path, "wb") as handle:
        for chunk in chunks:
            if not head:
                head = bytes(chunk[:8])
            digest.update(chunk)
            handle.write(chunk)
            size += len(chunk)
    return _Upload(path=path, sha256=digest.hexdigest(), size=size, head=head)


def _columns_of(layout: PosFileLayout) -> list[Column]:
    return [Column(name=name, label=str(layout.columns[name]), required=True)
            for name in PosFileLayout.FIELDS if str(layout.columns.get(name) or "").strip()]


@dataclass
class _Scope:
    """Which stores a file may name: the given store, or the stores of the given format."""

    store: Store | None
    format: object
    stores: dict[str, tuple[int, int]]  # code -> (store id, format id)

    def problem(self, code: str) -> tuple[int | None, str]:
        found = self.stores.get(code) or self.stores.get(code.upper())
        if not code:
            return None, gettext("the store code is empty")
        if found is None:
            return None, gettext("store %(code)s is unknown") % {"code": code}
        store_id, format_id = found
        if self.store is not None and store_id != self.store.pk:
            return None, gettext("store %(code)s is not the store of this upload (%(store)s)") % {
                "code": code, "store": self.store.code}
        if format_id != self.format.pk:
            return None, gettext("store %(code)s is not a store of format %(format)s") % {
                "code": code, "format": self.format}
        return store_id, ""


class _LineWriter:
    """The file's good lines into settlement_posline: COPY on PostgreSQL, prepared INSERTs in batches else."""

    COLUMNS = ("pos_file_id", "line_no", "store_id", "business_date", "occurred_at", "receipt_no", "card_no",
               "member_no", "amount")

    def __init__(self, cursor):
        self.cursor = cursor
        self.table = connection.ops.quote_name(PosLine._meta.db_table)
        self.columns = ", ".join(connection.ops.quote_name(name) for name in self.COLUMNS)
        self.postgresql = connection.vendor == "postgresql"
        self._copy_context = None
        self._copy = None
        self._batch: list[tuple] = []

    def __enter__(self) -> "_LineWriter":
        if self.postgresql:
            self._copy_context = self.cursor.copy(f"COPY {self.table} ({self.columns}) FROM STDIN")
            self._copy = self._copy_context.__enter__()
        return self

    def write(self, row: tuple) -> None:
        if self._copy is not None:
            self._copy.write_row(row)
            return
        self._batch.append(row)
        if len(self._batch) >= _INSERT_BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        rows = [(*row[:3], connection.ops.adapt_datefield_value(row[3]),
                 connection.ops.adapt_datetimefield_value(row[4]), *row[5:8],
                 connection.ops.adapt_decimalfield_value(row[8], 14, 2)) for row in self._batch]
        placeholders = ", ".join(["%s"] * len(self.COLUMNS))
        self.cursor.executemany(f"INSERT INTO {self.table} ({self.columns}) VALUES ({placeholders})",  # noqa: S608
                                rows)
        self._batch = []

    def __exit__(self, exc_type, exc, traceback) -> None:
        if self._copy_context is not None:
            self._copy_context.__exit__(exc_type, exc, traceback)
        elif exc_type is None:
            self._flush()


def _cell_is_formula(text: str) -> bool:
    return text[:1] in _FORMULA_START and not _PLAIN_NUMBER.match(text)


class _LineChecker:
    """The checks of one line, the same for every way a file is read; gives the row to write or the problems."""

    def __init__(self, *, layout: PosFileLayout, business_date: date, scope: _Scope, pos_file_id: int,
                 xlsx: bool = False):
        self.layout, self.business_date, self.scope, self.pos_file_id = layout, business_date, scope, pos_file_id
        self.parse = _time_parser(layout.datetime_format)
        self.xlsx = xlsx
        window = timedelta(minutes=layout.time_window_minutes)
        self.earliest = datetime.combine(business_date, time.min) - window
        self.latest = datetime.combine(business_date + timedelta(days=1), time.min) + window
        self.zone = timezone.get_current_timezone()

    def check(self, number: int, values: dict[str, str], cells) -> tuple[tuple | None, str]:
        found: list[str] = []
        formula = next((cell for cell in cells if cell and _cell_is_formula(cell)), None)
        if formula is not None:
            found.append(gettext("the cell %(cell)s starts like a formula (= + - @)") % {"cell": formula[:40]})
        store_id, problem = self.scope.problem(values["store_code"])
        if problem:
            found.append(problem)
        text = values["occurred_at"]
        moment = self.parse(text) if text else None
        if moment is None and self.xlsx and text:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                moment = None
        if moment is None:
            found.append(gettext("the time %(time)s is not in the format %(format)s") % {
                "time": text or "''", "format": self.layout.datetime_format})
        elif not self.earliest <= moment < self.latest:
            found.append(gettext("the time %(time)s is not on the business date %(day)s") % {
                "time": text, "day": self.business_date.isoformat()})
        receipt_no = values["receipt_no"]
        if not receipt_no:
            found.append(gettext("the receipt number is empty"))
        elif len(receipt_no) > _RECEIPT_LENGTH:
            found.append(gettext("the receipt number is longer than %(n)s characters") % {"n": _RECEIPT_LENGTH})
        card_no = values.get("card_no", "")
        if card_no and not _CARD_NO.match(card_no):
            found.append(gettext("the card number %(card_no)s is not 6 to 32 digits") % {"card_no": card_no[:40]})
        member_no = values.get("member_no", "")
        if len(member_no) > _MEMBER_LENGTH:
            found.append(gettext("the member number is longer than %(n)s characters") % {"n": _MEMBER_LENGTH})
        amount_text = values["amount"].replace(",", "")
        amount = None
        if _AMOUNT.match(amount_text):
            amount = Decimal(amount_text)
            if not amount:
                found.append(gettext("the amount is zero"))
        else:
            found.append(gettext("the amount %(amount)s is not an amount of yuan with at most two decimals") % {
                "amount": values["amount"] or "''"})
        if found:
            return None, "; ".join(found)
        return (self.pos_file_id, number, store_id, self.business_date, moment.replace(tzinfo=self.zone),
                receipt_no, card_no, member_no, amount), ""


def _lines_read(reader: TableReader, *, checker: _LineChecker,
                writer: _LineWriter) -> tuple[int, list[tuple[int, str]], set[int]]:
    """Check every line and write the good ones; return the count of lines, the problems (line, text) and the
    ids of the stores named."""
    problems: list[tuple[int, str]] = []
    store_ids: set[int] = set()
    count = 0
    for row in reader:
        count += 1
        good, problem = checker.check(row.number, row.values, row.cells)
        if good is None:
            problems.append((row.number, problem))
            continue
        store_ids.add(good[2])
        writer.write(good)
    return count, problems, store_ids


# What Python's str.strip() takes off a cell that PostgreSQL's btrim must take off too.
_SPACES = " \t\r\n\x0b\x0c\u3000\u00a0"
# A local moment written as %Y-%m-%d %H:%M:%S, or NULL where Python's datetime.fromisoformat would refuse it; the
# day of the month is checked against the month before the text is cast (a cast error would end the statement).
_ISO_MOMENT = """CASE WHEN translate({x}, '0123456789', '9999999999') = '9999-99-99 99:99:99'
        AND substr({x}, 6, 2) BETWEEN '01' AND '12' AND substr({x}, 9, 2) BETWEEN '01' AND '31'
        AND substr({x}, 12, 2) <= '23' AND substr({x}, 15, 2) <= '59' AND substr({x}, 18, 2) <= '59'
        AND left({x}, 4) <> '0000' THEN
    CASE WHEN substr({x}, 9, 2) <= '28' OR substr({x}, 9, 2)::int <= extract(day FROM
        make_date(substr({x}, 1, 4)::int, substr({x}, 6, 2)::int, 1) + interval '1 month' - interval '1 day')
    THEN {x}::timestamp END END"""


def _copy_import(*, path: str, header, encoding: str, layout: PosFileLayout,
                 checker: _LineChecker) -> tuple[int, list[tuple[int, str]], set[int], bool] | None:
    """PostgreSQL: the file's bytes COPYed into a temporary table of text columns (PostgreSQL's own CSV parser,
    no Python per line) and checked and written by a few set-based statements. A line the statement cannot
    vouch for is checked in Python (`_LineChecker`, which words the problems), so both ways give the same
    result. Return None when the file is not for this path (Excel, another time format, a CSV PostgreSQL
    refuses, such as one with ragged lines): it is then read row by row. The last value says whether lines
    may repeat each other (then `_repeats` looks)."""
    if encoding not in ("utf-8-sig", "gb18030") or layout.datetime_format != "%Y-%m-%d %H:%M:%S":
        return None
    width = max(len(header.headers), 1)
    raw = "settlement_pos_raw"
    columns = ", ".join(f"c{index}" for index in range(width))
    server_encoding = "GB18030" if encoding == "gb18030" else "UTF8"
    delimiter = (layout.delimiter or ",").replace("'", "''")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {raw}")
        cursor.execute(f"CREATE TEMPORARY TABLE {raw} (row_no bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 2), "
                       f"{', '.join(f'c{index} text' for index in range(width))}) ON COMMIT DROP")
    try:
        with transaction.atomic(), connection.cursor() as cursor, cursor.copy(
            f"COPY {raw} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER '{delimiter}', "
            f"ENCODING '{server_encoding}')"
        ) as copy, open(path, "rb") as handle:
            while chunk := handle.read(_COPY_CHUNK):
                copy.write(chunk)
    except (DatabaseError, psycopg.Error):
        return None
    positions = header.positions
    cell = {name: (f"coalesce(btrim(c{positions[name]}, %(spaces)s), '')" if name in positions else "''")
            for name in PosFileLayout.FIELDS}
    trimmed = [f"coalesce(btrim(c{index}, %(spaces)s), '')" for index in range(width)]
    # A cell starting with a formula character or a space of any kind is left to Python (a negative amount is
    # not a formula; Python's strip() decides what a space is).
    formula = " OR ".join(
        f"(left(coalesce(c{index}, ''), 1) IN ('=', '+', '-', '@', ' ', E'\\t', E'\\r', E'\\n', E'\\u3000', "
        f"E'\\u00a0') AND coalesce(c{index}, '') !~ '^-[0-9]+(\\.[0-9]+)?$')" for index in range(width))
    blank = " || ".join(trimmed)
    scope = checker.scope
    allowed = ([(scope.store.code, scope.store.pk)] if scope.store is not None else
               [(code, pk) for code, (pk, format_id) in scope.stores.items() if format_id == scope.format.pk])
    params = {
        "spaces": _SPACES, "codes": text_array(code for code, _pk in allowed), "ids": [pk for _code, pk in allowed],
        "earliest": checker.earliest, "latest": checker.latest, "zone": timezone.get_current_timezone_name(),
        "pos_file": checker.pos_file_id, "day": checker.business_date,
        "amount_re": _AMOUNT.pattern, "card_re": _CARD_NO.pattern,
        "receipt_max": _RECEIPT_LENGTH, "member_max": _MEMBER_LENGTH,
    }
    # Memory enough for the look for repeated lines to hash the day's lines without spilling to disk.
    with connection.cursor() as cursor, settings_local(cursor, work_mem="256MB"):
        replication_role = _foreign_key_checks_off(cursor)
        # One statement: the lines it can vouch for go in, and it answers the count, the stores and the other
        # lines' numbers.
        cursor.execute(f"""
            WITH v AS MATERIALIZED (
                SELECT row_no, {cell['store_code']} AS store_code, {cell['occurred_at']} AS at_text,
                    {cell['receipt_no']} AS receipt_no, {cell['card_no']} AS card_no,
                    {cell['member_no']} AS member_no, replace({cell['amount']}, ',', '') AS amount_text,
                    ({formula}) AS formula
                FROM {raw} WHERE {blank} <> ''
            ),
            w AS MATERIALIZED (
                SELECT v.*, s.id AS store_id, {_ISO_MOMENT.format(x="v.at_text")} AS local_at,
                    CASE WHEN v.amount_text ~ %(amount_re)s THEN v.amount_text::numeric END AS amount
                FROM v LEFT JOIN unnest(%(codes)s::text[], %(ids)s::bigint[]) AS s(code, id)
                    ON s.code = upper(v.store_code)
            ),
            checked AS MATERIALIZED (
                SELECT row_no, store_id, local_at, receipt_no, card_no, member_no, amount,
                    coalesce(formula OR store_id IS NULL OR local_at IS NULL OR local_at < %(earliest)s
                     OR local_at >= %(latest)s OR receipt_no = '' OR char_length(receipt_no) > %(receipt_max)s
                     OR (card_no <> '' AND card_no !~ %(card_re)s) OR char_length(member_no) > %(member_max)s
                     OR amount IS NULL OR amount = 0, true) AS suspect
                FROM w
            ),
            written AS (
                INSERT INTO settlement_posline (pos_file_id, line_no, store_id, business_date, occurred_at,
                    receipt_no, card_no, member_no, amount)
                SELECT %(pos_file)s, row_no, store_id, %(day)s, local_at AT TIME ZONE %(zone)s, receipt_no, card_no,
                    member_no, amount
                FROM checked WHERE NOT suspect
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM checked), (SELECT count(*) FROM written),
                EXISTS (SELECT 1 FROM checked WHERE NOT suspect
                        GROUP BY store_id, local_at, receipt_no, card_no, member_no, amount HAVING count(*) > 1),
                (SELECT array_agg(DISTINCT store_id) FROM checked WHERE NOT suspect),
                (SELECT array_agg(row_no ORDER BY row_no) FROM checked WHERE suspect)
        """, params)  # noqa: S608
        count, _written, repeated, store_ids, suspects = cursor.fetchone()
        if replication_role is not None:
            cursor.execute("SELECT set_config('session_replication_role', %s, true)", [replication_role])
            _stores_lock(cursor, store_ids or [])
    store_ids = set(store_ids or ())
    problems: list[tuple[int, str]] = []
    suspects = suspects or []
    for start in range(0, len(suspects), 5000):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {raw} WHERE row_no = ANY(%s) ORDER BY row_no",  # noqa: S608
                           [suspects[start:start + 5000]])
            rows = cursor.fetchall()
        with connection.cursor() as cursor, _LineWriter(cursor) as writer:
            for row_no, *cells in rows:
                cells = [(value or "").strip() for value in cells]
                values = {name: cells[index] for name, index in positions.items()}
                good, problem = checker.check(row_no, values, cells)
                if good is None:
                    problems.append((row_no, problem))
                else:
                    store_ids.add(good[2])
                    writer.write(good)
                    repeated = True  # written after the statement's own look for repeats: looked for again
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {raw}")
    return count, problems, store_ids, repeated


def _foreign_key_checks_off(cursor) -> str | None:
    """Leave out the foreign-key triggers of the lines' INSERT, if the database user may (as cards/legacy.py).

    Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: each line's two keys (file, store) would queue a
    trigger and a lookup at commit, about a tenth of a second per 10,000 lines. The file is this transaction's
    own row; the stores are checked and locked set-based instead (`_stores_lock`). It needs a superuser or
    `GRANT SET ON PARAMETER session_replication_role TO <user>`; without it the triggers run. Return the setting
    to put back after the INSERT, or None when the triggers stay on.
    """
    try:
        with transaction.atomic():
            cursor.execute("SELECT current_setting('session_replication_role'), "
                           "set_config('session_replication_role', 'replica', true)")
            return cursor.fetchone()[0]
    except DatabaseError:
        return None


def _stores_lock(cursor, store_ids: list[int]) -> None:
    """What the store key's trigger would do, set-based: lock the stores the lines name FOR KEY SHARE (no one
    deletes them until this commits) and make sure each is there. Raise ReconFileInvalid when one went away."""
    cursor.execute("SELECT count(*) FROM (SELECT 1 FROM stores_store WHERE id = ANY(%s) FOR KEY SHARE) locked",
                   [list(store_ids)])
    if cursor.fetchone()[0] != len(store_ids):
        raise _invalid(gettext("A store the file names was deleted while it was imported; nothing was imported. "
                               "Upload the file again."))


def _repeats(pos_file_id: int, cursor) -> list[tuple[int, str]]:
    """Lines of the file that repeat an earlier line field by field."""
    key = "store_id, occurred_at, receipt_no, card_no, member_no, amount"
    table = connection.ops.quote_name(PosLine._meta.db_table)
    cursor.execute(f"SELECT 1 FROM {table} WHERE pos_file_id = %s GROUP BY {key} HAVING count(*) > 1 LIMIT 1",  # noqa: S608
                   [pos_file_id])
    if cursor.fetchone() is None:
        return []
    cursor.execute(
        f"SELECT line_no, first_line FROM (SELECT line_no, min(line_no) OVER (PARTITION BY {key}) AS first_line "  # noqa: S608
        f"FROM {table} WHERE pos_file_id = %s) repeated WHERE line_no > first_line ORDER BY line_no", [pos_file_id])
    return [(line, gettext("the line repeats line %(first)s field by field") % {"first": first})
            for line, first in cursor.fetchall()]


def _file_refusal(name: str, problems: list[tuple[int, str]]) -> ReconFileInvalid:
    problems = sorted(problems)
    shown = [gettext("line %(line)s: %(problem)s") % {"line": line, "problem": text}
             for line, text in problems[:ERRORS_SHOWN]]
    more = len(problems) - len(shown)
    if more:
        shown.append(ngettext("and %(count)s more line", "and %(count)s more lines", more) % {"count": more})
    summary = ngettext("%(name)s was not imported: %(count)s line has a problem; nothing was saved.",
                       "%(name)s was not imported: %(count)s lines have problems; nothing was saved.",
                       len(problems)) % {"name": name, "count": len(problems)}
    return ReconFileInvalid(f"{summary} {'; '.join(shown)}", fields={"file": [summary, *shown]})


def _invalid(text: str) -> ReconFileInvalid:
    return ReconFileInvalid(text, fields={"file": [text]})


def _period_open_check(day: date) -> None:
    """Refuse a change to the reconciliation of a day whose settlement period is closing or locked."""
    period = SettlementPeriod.objects.filter(starts_on__lte=day, ends_on__gte=day).first()
    if period is None or period.status == SettlementPeriod.Status.OPEN:
        return
    if period.status == SettlementPeriod.Status.LOCKED:
        raise PeriodLocked(gettext("Settlement period %(period)s is locked: the reconciliation of %(day)s does not "
                                   "change any more."), period=period.code, day=day.isoformat())
    raise PeriodLocked(gettext("Settlement period %(period)s is waiting for approval to close: the reconciliation "
                               "of %(day)s does not change now."), period=period.code, day=day.isoformat())


def _duplicate_of(existing: PosFile) -> ReconFileDuplicate:
    uploaded_at = timezone.localtime(existing.uploaded_at).strftime("%Y-%m-%d %H:%M")
    return ReconFileDuplicate(uploaded_at=uploaded_at, file_id=existing.pk)


def pos_file_import(*, layout: PosFileLayout, uploaded, business_date: date, user, store: Store | None = None,
                    format=None) -> PosFile:
    """Import one POS daily file of a store (or of every store of a format) and match its store-days.

    `uploaded` is a Django UploadedFile or any binary file object with `.name`. Every line is checked before
    anything is kept: one ReconFileInvalid names the bad lines (up to 20, then how many more) and nothing is
    saved. Raise SettlementInvalid (store or format, layout), ReconFileDuplicate (the same bytes were uploaded
    before; nothing is imported again), ReconFileInvalid, PeriodLocked (the day's period is closing or locked).
    """
    if store is None and format is None:
        raise SettlementInvalid(fields={"store": [gettext("Choose the store or the format the file is of.")]})
    if store is not None:
        if format is not None and format.pk != store.format_id:
            raise SettlementInvalid(fields={"format": [gettext(
                "Store %(store)s is not of format %(format)s.") % {"store": store.code, "format": format}]})
        format = store.format
    if not layout.is_active:
        raise SettlementInvalid(fields={"layout": [gettext("The layout %(layout)s is not active.") % {
            "layout": layout.code}]})
    if layout.pos_system_code and format.pos_system_code and layout.pos_system_code != format.pos_system_code:
        raise SettlementInvalid(fields={"layout": [gettext(
            "The layout %(layout)s is for POS system %(layout_pos)s; format %(format)s uses %(format_pos)s.") % {
            "layout": layout.code, "layout_pos": layout.pos_system_code, "format": format,
            "format_pos": format.pos_system_code}]})
    if not isinstance(business_date, date):
        raise SettlementInvalid(fields={"business_date": [gettext("Give the business date of the file.")]})
    _period_open_check(business_date)
    name = os.path.basename(str(getattr(uploaded, "name", "") or "pos.csv"))[:200]
    suffix = ".xlsx" if layout.file_type == PosFileLayout.FileType.XLSX else ".csv"
    with tempfile.TemporaryDirectory(prefix="pos-file-") as folder:
        upload = _upload_copy(uploaded, folder, suffix)
        existing = PosFile.objects.filter(sha256=upload.sha256).first()
        if existing is not None:
            raise _duplicate_of(existing)
        if not upload.size:
            raise _invalid(gettext("%(name)s is empty.") % {"name": name})
        if suffix == ".csv" and upload.head.startswith(_XLSX_MAGIC):
            raise _invalid(gettext("%(name)s is an Excel workbook; the layout %(layout)s reads CSV files.") % {
                "name": name, "layout": layout.code})
        if suffix == ".xlsx" and not upload.head.startswith(_XLSX_MAGIC):
            raise _invalid(gettext("%(name)s is not an Excel workbook (.xlsx); the layout %(layout)s reads Excel "
                                   "files.") % {"name": name, "layout": layout.code})
        return _import(layout=layout, upload=upload, name=name, business_date=business_date, user=user,
                       store=store, format=format)


def _import(*, layout, upload: _Upload, name: str, business_date: date, user, store, format) -> PosFile:
    stored_name = None
    pos_file = PosFile(layout=layout, store=store, format=format, business_date=business_date, file="",
                       original_name=name, sha256=upload.sha256, uploaded_by=user, uploaded_at=timezone.now())
    try:
        with transaction.atomic():
            # A concurrent upload of the same bytes waits on the unique SHA-256 here, then finds it taken.
            if insert_returning_pk(pos_file, skip_on_conflict=("sha256",)) is None:
                raise _duplicate_of(PosFile.objects.get(sha256=upload.sha256))
            scope = _Scope(store=store, format=format, stores={
                code: (pk, format_id) for code, pk, format_id in Store.objects.values_list("code", "pk", "format_id")})
            try:
                with _PosTableReader(upload.path, _columns_of(layout), encoding=layout.encoding,
                                     delimiter=layout.delimiter) as reader, connection.cursor() as cursor:
                    checker = _LineChecker(layout=layout, business_date=business_date, scope=scope,
                                           pos_file_id=pos_file.pk, xlsx=reader.encoding == "xlsx")
                    read = None
                    if connection.vendor == "postgresql":
                        read = _copy_import(path=upload.path, header=reader.header, encoding=reader.encoding,
                                            layout=layout, checker=checker)
                    if read is None:
                        with _LineWriter(cursor) as writer:
                            read = (*_lines_read(reader, checker=checker, writer=writer), True)
                    count, problems, store_ids, repeats_possible = read
                    if not count:
                        raise _invalid(gettext("%(name)s has no lines under its header row.") % {"name": name})
                    if repeats_possible:
                        problems.extend(_repeats(pos_file.pk, cursor))
            except TableInvalid as error:
                raise _invalid(gettext("%(name)s does not fit the layout %(layout)s: %(problem)s") % {
                    "name": name, "layout": layout.code, "problem": error}) from None
            except UnicodeDecodeError:
                raise _invalid(gettext("%(name)s cannot be read as %(encoding)s text; save it as UTF-8 or GBK CSV.")
                               % {"name": name, "encoding": layout.get_encoding_display()}) from None
            if problems:
                raise _file_refusal(name, problems)
            with open(upload.path, "rb") as handle:
                pos_file.file.save(name, File(handle), save=False)
            stored_name = pos_file.file.name
            pos_file.lines = count
            PosFile.objects.filter(pk=pos_file.pk).update(file=stored_name, lines=count)
            _days_match(store_ids=sorted(store_ids), business_date=business_date)
            pos_file.status = PosFile.Status.MATCHED
            PosFile.objects.filter(pk=pos_file.pk).update(status=pos_file.status)
    except BaseException:
        if stored_name:
            pos_file.file.storage.delete(stored_name)
        raise
    return pos_file


# --- matching --------------------------------------------------------------------------------------------


def _within(a: str, b: str, minutes: str) -> str:
    """SQL: moments a and b at most `minutes` apart."""
    if connection.vendor == "postgresql":
        return f"{b} BETWEEN {a} - {minutes} * interval '1 minute' AND {a} + {minutes} * interval '1 minute'"
    return f"abs(julianday({a}) - julianday({b})) * 1440.0 <= {minutes} + 0.000001"


def _same(a: str, b: str) -> str:
    return f"{a} IS NOT DISTINCT FROM {b}" if connection.vendor == "postgresql" else f"{a} IS {b}"


def _in(column: str, values: list, params: list) -> str:
    if not values:
        return "FALSE" if connection.vendor == "postgresql" else "0"
    params.extend(values)
    return f"{column} IN ({', '.join(['%s'] * len(values))})"


_RESULT = "settlement_recon_result"
_RESULT_COLUMNS = ("store_id", "kind", "pos_line_id", "card_transaction_id", "purchase_id", "receipt_no", "card_no",
                   "member_no", "pos_amount", "ledger_amount")


def _pairing_sql(*, pos_sql: str, ledger_sql: str, keys: tuple[str, ...], ledger_column: str,
                 extra: str = "", timed: bool = True) -> str:
    """One INSERT of the result rows of one kind of line: matched pairs and exceptions.

    `pos_sql` and `ledger_sql` give (id, key columns, amount, at [, w]) rows; `extra` is a further join
    condition between p and t (the member number); `timed`: only rows within the line's time window pair up (a
    purchase's receipt number is unique in its store, so purchases are paired on the day). Pairs are made with
    their multiplicity by numbering the rows of each key (and amount): equal amounts first, then the rest of a
    key as "amount differs".
    """
    on = " AND ".join(f"t.{key} = p.{key}" for key in keys) + extra
    by = ", ".join(keys)
    t_keys = " AND ".join(f"k.{key} = t.{key}" for key in keys)
    p_keys = " AND ".join(f"k.{key} = p.{key}" for key in keys)
    within = _within("p.at", "t.at", "p.w") if timed else "1 = 1"
    t_cols = "t.card_no, ''" if ledger_column == "card_transaction_id" else "'', t.member_no"
    # NULLs typed: the first SELECT of a UNION gives the column types on PostgreSQL.
    none, no_amount = "CAST(NULL AS bigint)", "CAST(NULL AS numeric)"
    ledger_ids = (f"t.id, {none}" if ledger_column == "card_transaction_id" else f"{none}, t.id")
    pair_ids = (f"tid, {none}" if ledger_column == "card_transaction_id" else f"{none}, tid")
    pair = "p.id AS pid, t.id AS tid, p.store_id, p.receipt_no, p.card_no, p.member_no, p.amount AS pa, t.amount AS ta"
    # What is left unpaired is a duplicate when the other side has that key paired (it has it fewer times), else
    # missing there. Only the keys of what is left are looked up, by hash joins: few rows whatever the day's size.
    return f"""
        WITH p AS MATERIALIZED (
            SELECT x.*, row_number() OVER (PARTITION BY {by}, amount ORDER BY at, id) AS r FROM ({pos_sql}) x
        ),
        t AS MATERIALIZED (
            SELECT y.*, row_number() OVER (PARTITION BY {by}, amount ORDER BY at, id) AS r FROM ({ledger_sql}) y
        ),
        exact AS MATERIALIZED (
            SELECT {pair} FROM p JOIN t ON {on} AND t.amount = p.amount AND t.r = p.r WHERE {within}
        ),
        p2 AS MATERIALIZED (
            SELECT p.*, row_number() OVER (PARTITION BY {by} ORDER BY at, id) AS r2 FROM p
            WHERE NOT EXISTS (SELECT 1 FROM exact e WHERE e.pid = p.id)
        ),
        t2 AS MATERIALIZED (
            SELECT t.*, row_number() OVER (PARTITION BY {by} ORDER BY at, id) AS r2 FROM t
            WHERE NOT EXISTS (SELECT 1 FROM exact e WHERE e.tid = t.id)
        ),
        differ AS MATERIALIZED (
            SELECT {pair} FROM p2 p JOIN t2 t ON {on} AND t.r2 = p.r2 WHERE {within}
        ),
        pl AS MATERIALIZED (SELECT p.* FROM p2 p WHERE NOT EXISTS (SELECT 1 FROM differ d WHERE d.pid = p.id)),
        tl AS MATERIALIZED (SELECT t.* FROM t2 t WHERE NOT EXISTS (SELECT 1 FROM differ d WHERE d.tid = t.id)),
        lk AS MATERIALIZED (SELECT {by} FROM pl UNION SELECT {by} FROM tl),
        tp AS MATERIALIZED (
            SELECT DISTINCT {', '.join(f't.{key}' for key in keys)} FROM t JOIN lk k ON {t_keys}
            WHERE NOT EXISTS (SELECT 1 FROM tl x WHERE x.id = t.id)
        ),
        pp AS MATERIALIZED (
            SELECT DISTINCT {', '.join(f'p.{key}' for key in keys)} FROM p JOIN lk k ON {p_keys}
            WHERE NOT EXISTS (SELECT 1 FROM pl x WHERE x.id = p.id)
        )
        INSERT INTO {_RESULT} ({', '.join(_RESULT_COLUMNS)})
        SELECT store_id, 'matched', pid, {pair_ids}, receipt_no, card_no, member_no, pa, ta FROM exact
        UNION ALL
        SELECT store_id, 'amount_differs', pid, {pair_ids}, receipt_no, card_no, member_no, pa, ta FROM differ
        UNION ALL
        SELECT p.store_id, CASE WHEN k.store_id IS NULL THEN 'missing_in_ledger' ELSE 'duplicate' END,
            p.id, {none}, {none}, p.receipt_no, p.card_no, p.member_no, p.amount, {no_amount}
            FROM pl p LEFT JOIN tp k ON {p_keys}
        UNION ALL
        SELECT t.store_id, CASE WHEN k.store_id IS NULL THEN 'missing_in_pos' ELSE 'duplicate' END,
            {none}, {ledger_ids}, t.receipt_no, {t_cols}, {no_amount}, t.amount
            FROM tl t LEFT JOIN pp k ON {t_keys}
    """  # noqa: S608


# A payment as the POS writes it: positive; a refund, or the reversal of a payment, negative.
_PAYMENTS = (
    "SELECT t.id, t.store_id, t.receipt_no, c.card_no, "
    "CASE WHEN t.kind = 'debit' THEN t.charged WHEN t.kind = 'refund' THEN -t.charged "
    "WHEN (SELECT o.kind FROM cards_cardtransaction o WHERE o.id = t.original_id) = 'refund' "
    "THEN t.charged ELSE -t.charged END AS amount, t.created_at AS at "
    "FROM cards_cardtransaction t JOIN cards_card c ON c.id = t.card_id "
    "WHERE t.business_date = %s AND {stores}"
)
_PURCHASES = (
    "SELECT u.id, u.store_id, u.receipt_no, coalesce(m.member_no, '') AS member_no, u.amount, "
    "u.occurred_at AS at FROM membership_purchase u LEFT JOIN membership_member m ON m.id = u.member_id "
    "WHERE u.occurred_at >= %s AND u.occurred_at < %s AND {stores}"
)


def _coverage(store_ids: list[int], business_date: date) -> tuple[list[int], list[int]]:
    """The stores whose day's files have card lines, and those whose files have lines without a card: only
    for those are payments (purchases) that no line names "missing in the POS file"."""
    stores = dict(Store.objects.filter(pk__in=store_ids).values_list("pk", "format_id"))
    files = list(PosFile.objects.filter(business_date=business_date).values_list("pk", "store_id", "format_id"))
    card_files, sale_files = set(), set()
    for pk, _store_id, _format_id in files:
        lines = PosLine.objects.filter(pos_file_id=pk)
        if lines.exclude(card_no="").exists():
            card_files.add(pk)
        if lines.filter(card_no="").exists():
            sale_files.add(pk)
    card_stores, sale_stores = [], []
    for store_id, format_id in stores.items():
        relevant = {pk for pk, file_store, file_format in files
                    if file_store == store_id or (file_store is None and file_format == format_id)}
        if relevant & card_files:
            card_stores.append(store_id)
        if relevant & sale_files:
            sale_stores.append(store_id)
    return card_stores, sale_stores


def _days_match(*, store_ids: list[int], business_date: date) -> dict[int, ReconDay]:
    """Match the store-days set-based (a few statements whatever the number of lines); return the days."""
    now = timezone.now()
    ReconDay.objects.bulk_create([ReconDay(store_id=pk, business_date=business_date) for pk in store_ids],
                                 ignore_conflicts=True)
    days = {day.store_id: day for day in ReconDay.objects.select_for_update().filter(
        store_id__in=store_ids, business_date=business_date).order_by("pk")}
    card_stores, sale_stores = _coverage(store_ids, business_date)
    day_start = timezone.make_aware(datetime.combine(business_date, time.min))
    day_end = timezone.make_aware(datetime.combine(business_date + timedelta(days=1), time.min))
    ops = connection.ops
    day_param = ops.adapt_datefield_value(business_date)
    postgresql = connection.vendor == "postgresql"
    result_table = (f"CREATE TEMPORARY TABLE {_RESULT} (store_id bigint, kind varchar(20), pos_line_id bigint, "
                    "card_transaction_id bigint, purchase_id bigint, receipt_no varchar(64), card_no varchar(32), "
                    "member_no varchar(32), pos_amount numeric(14, 2), ledger_amount numeric(14, 2))"
                    + (" ON COMMIT DROP" if postgresql else ""))
    pos_base = ("SELECT l.id, l.store_id, l.receipt_no, l.card_no, l.member_no, l.amount, l.occurred_at AS at, "
                "y.time_window_minutes AS w FROM settlement_posline l "
                "JOIN settlement_posfile f ON f.id = l.pos_file_id "
                "JOIN settlement_posfilelayout y ON y.id = f.layout_id "
                "WHERE l.business_date = %s AND {stores} AND l.card_no {card}")
    settings = {"work_mem": "256MB", "jit": "off"}
    with connection.cursor() as cursor, settings_local(cursor, **settings):
        cursor.execute(f"DROP TABLE IF EXISTS {_RESULT}")
        cursor.execute(result_table)
        # Card lines against the card payments of the store and day.
        params: list = [day_param]
        pos_sql = pos_base.format(stores=_in("l.store_id", store_ids, params), card="<> ''")
        ledger_params: list = [day_param]
        stores_in = _in("t.store_id", card_stores, ledger_params)
        ledger_sql = _PAYMENTS.format(stores=stores_in)
        cursor.execute(_pairing_sql(pos_sql=pos_sql, ledger_sql=ledger_sql, keys=("store_id", "receipt_no", "card_no"),
                                    ledger_column="card_transaction_id"), [*params, *ledger_params])
        # Sales without a card against the purchases of the store on the day.
        if sale_stores:
            params = [day_param]
            pos_sql = pos_base.format(stores=_in("l.store_id", sale_stores, params), card="= ''")
            ledger_params = [ops.adapt_datetimefield_value(day_start), ops.adapt_datetimefield_value(day_end)]
            stores_in = _in("u.store_id", sale_stores, ledger_params)
            ledger_sql = _PURCHASES.format(stores=stores_in)
            cursor.execute(_pairing_sql(
                pos_sql=pos_sql, ledger_sql=ledger_sql, keys=("store_id", "receipt_no"), ledger_column="purchase_id",
                extra=" AND (p.member_no = '' OR p.member_no = t.member_no)", timed=False), [*params, *ledger_params])
        _exceptions_write(cursor, days=days, business_date=business_date, now=now)
        cursor.execute(
            f"SELECT store_id, sum(CASE WHEN pos_line_id IS NOT NULL THEN 1 ELSE 0 END), "  # noqa: S608
            "sum(CASE WHEN pos_line_id IS NOT NULL THEN pos_amount ELSE 0 END), "
            "sum(CASE WHEN card_transaction_id IS NOT NULL OR purchase_id IS NOT NULL THEN 1 ELSE 0 END), "
            "sum(CASE WHEN card_transaction_id IS NOT NULL OR purchase_id IS NOT NULL THEN ledger_amount ELSE 0 END), "
            f"sum(CASE WHEN kind = 'matched' THEN 1 ELSE 0 END) FROM {_RESULT} GROUP BY store_id")
        figures = {row[0]: row[1:] for row in cursor.fetchall()}
        cursor.execute(f"DROP TABLE {_RESULT}")
    for store_id, day in days.items():
        pos_lines, pos_total, ledger_rows, ledger_total, matched = figures.get(store_id, (0, 0, 0, 0, 0))
        day.pos_lines, day.ledger_rows, day.matched = int(pos_lines or 0), int(ledger_rows or 0), int(matched or 0)
        day.pos_total = _money(pos_total)
        day.ledger_total = _money(ledger_total)
        day.matched_at = now
        _day_status_set(day)
    ReconDay.objects.bulk_update(list(days.values()), ["pos_lines", "ledger_rows", "matched", "pos_total",
                                                        "ledger_total", "matched_at", "exceptions",
                                                        "exceptions_open", "status"])
    return days


def _money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def _exceptions_write(cursor, *, days: dict[int, ReconDay], business_date: date, now) -> None:
    """Open exceptions are found again; those accepted, being corrected or corrected stay as they are and are
    not written twice."""
    day_ids = [day.pk for day in days.values()]
    ReconException.objects.filter(day_id__in=day_ids, status=ReconException.Status.OPEN).delete()
    params: list = [ReconException.Status.OPEN, connection.ops.adapt_datetimefield_value(now),
                    connection.ops.adapt_datefield_value(business_date)]
    days_in = _in("d.id", day_ids, params)
    same = " AND ".join(_same(f"e.{column}", f"r.{column}")
                        for column in ("pos_line_id", "card_transaction_id", "purchase_id"))
    cursor.execute(f"""
        INSERT INTO settlement_reconexception (day_id, kind, status, pos_line_id, card_transaction_id, purchase_id,
            receipt_no, card_no, member_no, pos_amount, ledger_amount, reason, created_at)
        SELECT d.id, r.kind, %s, r.pos_line_id, r.card_transaction_id, r.purchase_id, r.receipt_no,
            coalesce(r.card_no, ''), coalesce(r.member_no, ''), r.pos_amount, r.ledger_amount, '', %s
        FROM {_RESULT} r JOIN settlement_reconday d ON d.store_id = r.store_id AND d.business_date = %s
        WHERE r.kind <> 'matched' AND {days_in}
            AND NOT EXISTS (SELECT 1 FROM settlement_reconexception e WHERE e.day_id = d.id AND e.kind = r.kind
                            AND {same})
    """, params)  # noqa: S608


def _day_status_set(day: ReconDay) -> None:
    """The day's exception counters and status from its exceptions (not saved)."""
    counts = dict(ReconException.objects.filter(day=day).order_by().values("status").annotate(count=Count("pk"))
                  .values_list("status", "count"))
    total = sum(counts.values())
    worked_off = sum(counts.get(status, 0) for status in WORKED_OFF)
    day.exceptions = total
    day.exceptions_open = total - worked_off
    if not total:
        day.status = ReconDay.Status.RECONCILED
    elif worked_off == total:
        day.status = ReconDay.Status.ACCEPTED
    else:
        day.status = ReconDay.Status.OPEN


def _day_refresh(day_id: int) -> ReconDay:
    day = ReconDay.objects.select_for_update().get(pk=day_id)
    _day_status_set(day)
    day.save(update_fields=["exceptions", "exceptions_open", "status"])
    return day


def _has_files(store: Store, business_date: date) -> bool:
    return PosLine.objects.filter(store=store, business_date=business_date).exists()


@transaction.atomic
def recon_day_match(*, store: Store, business_date: date, user=None) -> ReconDay:
    """Match (again) one store's day: its POS lines against its card payments and purchases.

    Exceptions already accepted, being corrected or corrected are kept; open ones are found again. Raise
    SettlementInvalid (no POS file of the store and day), PeriodLocked (the day's period is closing or locked).
    """
    _period_open_check(business_date)
    if not _has_files(store, business_date):
        raise SettlementInvalid(fields={"business_date": [gettext(
            "There is no POS file of %(store)s for %(day)s; upload one first.") % {
            "store": store.code, "day": business_date.isoformat()}]})
    return _days_match(store_ids=[store.pk], business_date=business_date)[store.pk]


# --- working exceptions off --------------------------------------------------------------------------------


def _reason_clean(reason) -> str:
    reason = str(reason or "").strip()
    if not reason:
        raise SettlementInvalid(fields={"reason": [gettext("Give the reason.")]})
    if len(reason) > _REASON_LENGTH:
        raise SettlementInvalid(fields={"reason": [gettext("The reason is longer than %(n)s characters.") % {
            "n": _REASON_LENGTH}]})
    return reason


def _exception_lock(exception: ReconException, *statuses: str) -> ReconException:
    locked = (ReconException.objects.select_for_update(of=("self",)).select_related("day__store__format")
              .get(pk=exception.pk))
    if locked.status not in statuses:
        raise ExceptionNotOpen(status=locked.get_status_display())
    return locked


@transaction.atomic
def recon_exception_accept(*, exception: ReconException, user, reason: str) -> ReconException:
    """Accept an open exception with a reason (the difference is explained; the ledger stays as it is).

    Raise SettlementInvalid (no reason), ExceptionNotOpen, PeriodLocked.
    """
    reason = _reason_clean(reason)
    exception = _exception_lock(exception, ReconException.Status.OPEN)
    _period_open_check(exception.day.business_date)
    exception.status = ReconException.Status.ACCEPTED
    exception.reason = reason
    exception.resolved_by = user
    exception.resolved_at = timezone.now()
    exception.save(update_fields=["status", "reason", "resolved_by", "resolved_at"])
    exception.day = _day_refresh(exception.day_id)
    return exception


def _correction(exception: ReconException) -> tuple[Card, Decimal]:
    """The card and the signed amount that makes the ledger agree with the POS file.

    Amounts are as the POS writes them: a payment positive, a refund negative; the card moves the other way.
    """
    card = None
    if exception.card_transaction_id is not None:
        card = Card.objects.filter(transactions__pk=exception.card_transaction_id).first()
    elif exception.card_no:
        card = Card.objects.filter(card_no=exception.card_no).first()
    if card is None:
        if exception.purchase_id is not None or not exception.card_no:
            raise SettlementInvalid(fields={"exception": [gettext(
                "Only a card payment is corrected through the card ledger; accept this exception with a reason.")]})
        raise SettlementInvalid(fields={"exception": [gettext(
            "There is no card %(card_no)s; accept this exception with a reason.") % {"card_no": exception.card_no}]})
    kind, pos, ledger = exception.kind, exception.pos_amount, exception.ledger_amount
    if kind == ReconException.Kind.AMOUNT_DIFFERS:
        amount = ledger - pos
    elif exception.card_transaction_id is not None:
        # The ledger has a payment the POS file does not: it goes back onto the card (a reversing adjustment).
        amount = ledger
    else:
        # The POS file has a payment the ledger does not: it is taken off the card (a refund is given back).
        amount = -pos
    if not amount:
        raise SettlementInvalid(fields={"exception": [gettext("The correction would move nothing.")]})
    return card, amount


@transaction.atomic
def recon_exception_correct_request(*, exception: ReconException, user, reason: str) -> ApprovalRequest:
    """Ask for a correcting ledger entry for an open card exception; a second person approves it.

    Missing in the ledger: the POS amount is taken off the card (a refund is given back). Amount differs: the
    difference, so that the ledger agrees with the POS. Missing in the POS file or a duplicate payment: the
    payment goes back onto the card. The exception waits as "correcting" until the decision; without an
    approval policy the correction is posted at once. Raise SettlementInvalid (no reason, not a card
    exception, a card that cannot take it), ExceptionNotOpen, PeriodLocked, ApprovalAlreadyPending.
    """
    reason = _reason_clean(reason)
    exception = _exception_lock(exception, ReconException.Status.OPEN)
    _period_open_check(exception.day.business_date)
    card, amount = _correction(exception)
    if card.status in (Card.Status.INACTIVE, Card.Status.CLOSED):
        raise SettlementInvalid(fields={"exception": [gettext(
            "Card %(card_no)s is %(status)s; its balance is not corrected. Accept the exception with a reason.")
            % {"card_no": card.card_no, "status": card.get_status_display()}]})
    if card.balance + amount < 0:
        raise SettlementInvalid(fields={"exception": [gettext(
            "Card %(card_no)s holds %(balance)s; the correction of %(amount)s would take it below zero.")
            % {"card_no": card.card_no, "balance": card.balance, "amount": amount}]})
    exception.status = ReconException.Status.CORRECTING
    exception.reason = reason
    exception.save(update_fields=["status", "reason"])
    _day_refresh(exception.day_id)
    store = exception.day.store
    return approval_request_submit(
        action=EXCEPTION_CORRECT, subject=exception, requested_by=user, reason=reason, amount=abs(amount),
        store=store, payload={"card_id": card.pk, "card_no": card.card_no, "amount": str(amount),
                              "exception_id": exception.pk, "kind": exception.kind},
    )


def _correction_reason(exception: ReconException) -> str:
    return gettext("Reconciliation %(day)s %(store)s: %(kind)s, receipt %(receipt)s (exception #%(id)s)") % {
        "day": exception.day.business_date.isoformat(), "store": exception.day.store.code,
        "kind": exception.get_kind_display(), "receipt": exception.receipt_no, "id": exception.pk}


def _exception_correct_execute(request: ApprovalRequest) -> None:
    """Post the correction through the card ledger's door, in the approval's transaction."""
    exception = _exception_lock(ReconException(pk=int(request.object_id)), ReconException.Status.CORRECTING)
    card = _lock_cards(int(request.payload["card_id"]))[0]
    if card.status in (Card.Status.INACTIVE, Card.Status.CLOSED):
        raise SettlementInvalid(fields={"exception": [gettext(
            "Card %(card_no)s is %(status)s; its balance is not corrected.")
            % {"card_no": card.card_no, "status": card.get_status_display()}]})
    store = exception.day.store
    approver = request.decided_by or request.requested_by
    card_post(card=card, kind=CardLedgerEntry.Kind.ADJUST, amount=Decimal(request.payload["amount"]), store=store,
              legal_entity=store.format.legal_entity, operator=approver, reason=_correction_reason(exception),
              cause=exception, cap=card_cap(card))
    exception.status = ReconException.Status.CORRECTED
    exception.resolved_by = approver
    exception.resolved_at = timezone.now()
    exception.save(update_fields=["status", "resolved_by", "resolved_at"])
    _day_refresh(exception.day_id)


def _exception_correct_reject(request: ApprovalRequest) -> None:
    """Rejected or withdrawn: the exception is open again, to be accepted or corrected anew."""
    exception = ReconException.objects.select_for_update().get(pk=int(request.object_id))
    if exception.status == ReconException.Status.CORRECTING:
        exception.status = ReconException.Status.OPEN
        exception.save(update_fields=["status"])
        _day_refresh(exception.day_id)


registry.register(EXCEPTION_CORRECT, label=_("Correct a reconciliation exception in the card ledger"),
                  execute=_exception_correct_execute, on_reject=_exception_correct_reject)
