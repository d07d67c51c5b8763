"""Migration of prepaid cards from the legacy card systems (CONTRACT sections 1 and 4).

Every row is checked against the same rules on every database; each failed
rule is a bit of `Problem`, and one function turns the bits of a row into the
reasons the user reads, so both ways of checking give the same messages.

On PostgreSQL the work is set-based: the file goes into a temporary table of
text columns with COPY (a well-formed CSV is handed to PostgreSQL's own CSV
parser as bytes, with no Python per row; an XLSX workbook or a CSV that
PostgreSQL refuses, such as one with ragged or blank lines, is read by
`TableReader` and copied row by row), one statement checks every row against
the products, statuses, stores, holders, the other rows of the file and the
cards already there, and one more inserts the cards with their opening ledger
entries. A million rows cost a few statements, whatever their length. A first
migration into empty card tables builds their non-unique indexes once at the
end, and where the database user may, the foreign keys of the new rows are
checked and locked set-based instead of by a trigger per row and key (see
`_CopyImport._foreign_key_checks_off`).

Elsewhere (SQLite: development and tests) the rows are checked in Python
(`row_clean`) and written with bulk_create, a batch at a time.

Either way it all happens in one transaction, rolled back for a dry run, or
when rows were invalid and the user did not choose to skip them: nothing is
written then. A card already imported from the same source is left
unchanged, so a second run of a file creates nothing new. Balances arrive
with one ledger entry of kind `migration` each, so check_ledgers holds.

Like the member import, a card the import creates gets no CardEvent: its
page says where it came from (the legacy source, the migration ledger entry).
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from enum import IntFlag
from itertools import islice
from pathlib import Path

import psycopg
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from cards.errors import CardInvalid
from cards.models import Card, CardLedgerEntry, CardProduct, CardRules
from core.dates import moment_months_add
from core.sql import secondary_indexes_drop, settings_local, text_array
from core.tabular import Column, Rejection, TableReader, TableRow
from membership.models import Member, MemberIdentity
from membership.services import survivor_pk
from stores.models import Store

CARD_COLUMNS = (
    Column("card_no", "卡号", required=True, aliases=("卡号码", "card_number")),
    Column("product_code", "卡类型", required=True, aliases=("卡种", "卡产品")),
    Column("balance", "余额", required=True, aliases=("卡余额", "卡内余额")),
    Column("status", "状态", required=True, aliases=("卡状态",)),
    Column("issued_at", "发卡日期", aliases=("发卡时间", "售卡日期")),
    Column("expires_at", "有效期", aliases=("有效期至", "到期日期")),
    Column("holder_member_no", "持卡会员号", aliases=("持卡人会员号",)),
    Column("store_code", "售卡门店", aliases=("发卡门店",)),
)
BATCH_SIZE = 2_000
SOURCE_MAX_LENGTH = Card._meta.get_field("legacy_source").max_length
ISSUED = (Card.Status.ACTIVE, Card.Status.FROZEN, Card.Status.EXPIRED, Card.Status.CLOSED)

# What legacy systems write in the status column, in English or Chinese: (status, why a frozen card is frozen).
STATUS_WORDS = {
    "active": (Card.Status.ACTIVE, ""), "正常": (Card.Status.ACTIVE, ""), "激活": (Card.Status.ACTIVE, ""),
    "已激活": (Card.Status.ACTIVE, ""),
    "frozen": (Card.Status.FROZEN, Card.FreezeReason.MANUAL), "冻结": (Card.Status.FROZEN, Card.FreezeReason.MANUAL),
    "已冻结": (Card.Status.FROZEN, Card.FreezeReason.MANUAL), "挂失": (Card.Status.FROZEN, Card.FreezeReason.LOST),
    "已挂失": (Card.Status.FROZEN, Card.FreezeReason.LOST),
    "expired": (Card.Status.EXPIRED, ""), "过期": (Card.Status.EXPIRED, ""), "已过期": (Card.Status.EXPIRED, ""),
    "closed": (Card.Status.CLOSED, ""), "注销": (Card.Status.CLOSED, ""), "已注销": (Card.Status.CLOSED, ""),
    "inactive": (Card.Status.INACTIVE, ""), "未激活": (Card.Status.INACTIVE, ""), "未售": (Card.Status.INACTIVE, ""),
}

_CARD_NO = r"^[0-9]{6,32}$"
_AMOUNT = r"^-?[0-9]+(\.[0-9]+)?$"
_COMPACT_DATE = r"^[0-9]{8}$"
_DATETIME = (r"^([0-9]{4})[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})日?"
             r"(?:[ T]([0-9]{1,2})[:时]([0-9]{1,2})(?:[:分]([0-9]{1,2})(?:\.[0-9]+)?秒?)?)?$")
_CARD_NO_RE, _AMOUNT_RE, _COMPACT_DATE_RE, _DATETIME_RE = (
    re.compile(pattern) for pattern in (_CARD_NO, _AMOUNT, _COMPACT_DATE, _DATETIME))
# What Python's str.strip() removes from a cell and PostgreSQL's btrim must remove too.
_SPACES = " \t\r\n\u3000\u00a0\ufeff"
CENT = Decimal("0.01")


class Problem(IntFlag):
    """One rule a row breaks; a row's problems are the sum of these bits (also computed in SQL)."""

    CARD_NO_EMPTY = 1 << 0
    CARD_NO_FORMAT = 1 << 1
    CARD_NO_REPEATED = 1 << 2
    CARD_NO_TAKEN = 1 << 3
    PRODUCT_EMPTY = 1 << 4
    PRODUCT_UNKNOWN = 1 << 5
    BALANCE_EMPTY = 1 << 6
    BALANCE_NOT_AMOUNT = 1 << 7
    BALANCE_NEGATIVE = 1 << 8
    BALANCE_DECIMALS = 1 << 9
    BALANCE_OVER_CAP = 1 << 10
    BALANCE_ON_CLOSED = 1 << 11
    BALANCE_ON_INACTIVE = 1 << 12
    STATUS_EMPTY = 1 << 13
    STATUS_UNKNOWN = 1 << 14
    ISSUED_NOT_DATE = 1 << 15
    ISSUED_FUTURE = 1 << 16
    EXPIRES_NOT_DATE = 1 << 17
    EXPIRES_NOT_ALLOWED = 1 << 18
    EXPIRES_BEFORE_ISSUE = 1 << 19
    HOLDER_NOT_FOUND = 1 << 20
    HOLDER_AMBIGUOUS = 1 << 21
    STORE_UNKNOWN = 1 << 22
    STATUS_EXPIRED_REGISTERED = 1 << 23


_COLUMN_OF = {  # the problem's name starts with ...: the column it is about
    "CARD_NO": "card_no", "PRODUCT": "product_code", "BALANCE": "balance", "STATUS": "status",
    "ISSUED": "issued_at", "EXPIRES": "expires_at", "HOLDER": "holder_member_no", "STORE": "store_code",
}


def _message(problem: Problem, params: dict) -> str:
    """The reason for one problem, in the active language; params: value, row, source, product, cap, codes."""
    messages = {
        Problem.CARD_NO_EMPTY: gettext("The card number is empty."),
        Problem.CARD_NO_FORMAT: gettext("%(value)s is not a card number: write 6 to 32 digits."),
        Problem.CARD_NO_REPEATED: gettext("Card %(value)s already appears in row %(row)s of this file."),
        Problem.PRODUCT_EMPTY: gettext("The card type is empty."),
        Problem.PRODUCT_UNKNOWN: gettext("Unknown card type %(value)s; use one of %(codes)s."),
        Problem.BALANCE_EMPTY: gettext("The balance is empty; write 0.00 for a card without money."),
        Problem.BALANCE_NOT_AMOUNT: gettext("%(value)s is not an amount; write it as 1234.50."),
        Problem.BALANCE_NEGATIVE: gettext("A balance cannot be negative (%(value)s)."),
        Problem.BALANCE_DECIMALS: gettext("A balance has at most two decimals (%(value)s)."),
        Problem.BALANCE_OVER_CAP: gettext(
            "%(value)s is more than a %(product)s card may hold: %(cap)s (prepaid card rules)."),
        Problem.BALANCE_ON_CLOSED: gettext("A closed card cannot hold a balance (%(value)s)."),
        Problem.BALANCE_ON_INACTIVE: gettext("An inactive (unsold) card cannot hold a balance (%(value)s)."),
        Problem.STATUS_EMPTY: gettext("The status is empty."),
        Problem.STATUS_UNKNOWN: gettext(
            "Unknown status %(value)s; use one of active, frozen, expired, closed, inactive."),
        Problem.ISSUED_NOT_DATE: gettext("%(value)s is not a date; write it as 2019-05-01."),
        Problem.ISSUED_FUTURE: gettext("The issue date %(value)s is in the future."),
        Problem.EXPIRES_NOT_DATE: gettext("%(value)s is not a date; write it as 2019-05-01."),
        Problem.EXPIRES_NOT_ALLOWED: gettext(
            "A %(product)s card has no expiry (registered cards never expire); leave it empty."),
        Problem.EXPIRES_BEFORE_ISSUE: gettext("The card would expire (%(value)s) before it was issued."),
        Problem.HOLDER_NOT_FOUND: gettext("No member has the number %(value)s, as their own or a legacy number."),
        Problem.HOLDER_AMBIGUOUS: gettext(
            "The number %(value)s belongs to several members; write the member's own number."),
        Problem.STORE_UNKNOWN: gettext("No store has the code %(value)s."),
        Problem.STATUS_EXPIRED_REGISTERED: gettext(
            "A %(product)s card is registered (记名卡): registered cards never expire (prepaid card rules), so it "
            "cannot be imported as %(value)s. Write active (or frozen) instead; its balance stays the holder's."),
    }
    if problem == Problem.CARD_NO_TAKEN:
        if params.get("source"):
            return gettext("Card %(value)s is already in the system, imported from %(source)s.") % params
        return gettext("Card %(value)s is already in the system (not from a migration).") % params
    return messages[problem] % params


def problems_explain(problems: int, *, values: dict[str, str], first_row: int | None = None,
                     taken_source: str | None = None, product: "_Product | None" = None,
                     codes: str = "") -> dict[str, list[str]]:
    """The reasons of a row's problems by column, in the order of the columns."""
    errors: dict[str, list[str]] = {}
    for problem in Problem:
        if not problems & problem:
            continue
        column = next(column for prefix, column in _COLUMN_OF.items() if problem.name.startswith(prefix))
        value = values.get(column, "")
        params = {
            "value": value.replace(",", "") if column == "balance" else value, "row": first_row,
            "source": taken_source, "codes": codes,
            "product": product.code if product else "", "cap": product.cap if product else "",
        }
        errors.setdefault(column, []).append(_message(problem, params))
    return errors


@dataclass
class ImportReport:
    source: str
    dry_run: bool = False
    rows: int = 0
    created: int = 0
    unchanged: int = 0
    rejected: int = 0
    balances: Decimal = Decimal("0.00")  # migrated onto the created cards
    entries: int = 0  # opening ledger entries
    first_rejection: Rejection | None = None
    written: bool = False
    by_status: dict[str, int] = field(default_factory=dict)


def source_from_filename(name: str) -> str:
    """The default source of a file: its name without extension, upper-cased (dept_cards.csv -> DEPT_CARDS)."""
    return source_clean(Path(name.replace("\\", "/")).stem)


def source_clean(value: str) -> str:
    """Normalise a source name. Raise CardInvalid when it is empty or too long."""
    source = "_".join((value or "").split()).upper()
    if not source:
        message = gettext("Name the legacy system the file comes from (--source).")
        raise CardInvalid(message, fields={"source": [message]})
    if len(source) > SOURCE_MAX_LENGTH:
        message = gettext("A source name has at most %(n)s characters.") % {"n": SOURCE_MAX_LENGTH}
        raise CardInvalid(message, fields={"source": [message]})
    return source


# --- what rows are checked against ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Product:
    pk: int
    code: str
    cap: Decimal  # the product's limit, never above the rules' limit for its kind (card_cap)
    validity_months: int | None
    registered: bool = False  # registered cards (记名卡) never expire


@dataclass
class _Reference:
    products: dict[str, _Product]  # upper-cased code or name -> product
    by_pk: dict[int, _Product]
    codes: str
    stores: dict[str, tuple[int, int]]  # code -> (store id, legal entity id)
    now: datetime
    tz: tzinfo

    @classmethod
    def load(cls) -> "_Reference":
        rules = CardRules.current()
        products: dict[str, _Product] = {}
        by_pk: dict[int, _Product] = {}
        rows = list(CardProduct.objects.order_by("code"))
        for product in rows:
            rule_cap = rules.registered_max_balance if product.is_registered else rules.bearer_max_balance
            by_pk[product.pk] = _Product(pk=product.pk, code=product.code, cap=min(product.max_balance, rule_cap),
                                         validity_months=None if product.is_registered else product.validity_months,
                                         registered=product.is_registered)
        # A code wins over another product's name.
        for product in rows:
            products[product.name.strip().upper()] = by_pk[product.pk]
        for product in rows:
            products[product.code.upper()] = by_pk[product.pk]
        stores = {code.upper(): (pk, legal_entity) for code, pk, legal_entity in
                  Store.objects.values_list("code", "pk", "format__legal_entity_id")}
        return cls(products=products, by_pk=by_pk, codes=", ".join(p.code for p in rows) or "-", stores=stores,
                   now=timezone.now(), tz=timezone.get_current_timezone())


def holders_resolve(numbers: Iterable[str]) -> dict[str, set[int]]:
    """The live members behind each holder number: by their own number or a legacy one (merged ones followed)."""
    found: dict[str, set[int]] = {}
    pending = iter(sorted(set(numbers)))
    while chunk := list(islice(pending, 5000)):
        pairs = list(Member.objects.filter(member_no__in=chunk).values_list("member_no", "pk", "merged_into_id"))
        pairs += list(MemberIdentity.objects.filter(external_no__in=chunk).values_list(
            "external_no", "member_id", "member__merged_into_id"))
        for number, pk, merged_into in pairs:
            found.setdefault(number, set()).add(survivor_pk(pk, merged_into))
    return found


# --- one row, in Python -------------------------------------------------------------------------------------


def _moment_parse(text: str, tz: tzinfo, *, end_of_day: bool) -> datetime:
    """A date or date and time in the local time zone; a bare date that ends a validity means its end."""
    if _COMPACT_DATE_RE.match(text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    match = _DATETIME_RE.match(text)
    if not match:
        raise ValueError(text)
    year, month, day, hour, minute, second = match.groups()
    if year == "0000":
        raise ValueError(text)
    moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                      tzinfo=tz)
    if end_of_day and hour is None:
        # Valid through the date printed on the card.
        following = moment.date() + timedelta(days=1)
        moment = datetime(following.year, following.month, following.day, tzinfo=tz)
    return moment


@dataclass(slots=True)
class _Checked:
    row: TableRow
    problems: int
    values: dict  # Card fields, when the row is valid
    holder: str
    first_row: int | None = None
    taken_source: str | None = None
    product: _Product | None = None


def row_clean(row: TableRow, reference: _Reference) -> _Checked:
    """Check one row (all but what needs the other rows and the database: repeats, taken numbers, holders)."""
    get = row.values.get
    problems = 0
    card_no = get("card_no", "")
    if not card_no:
        problems |= Problem.CARD_NO_EMPTY
    elif not _CARD_NO_RE.match(card_no):
        problems |= Problem.CARD_NO_FORMAT

    product_text = get("product_code", "")
    product = reference.products.get(product_text.upper()) if product_text else None
    if not product_text:
        problems |= Problem.PRODUCT_EMPTY
    elif product is None:
        problems |= Problem.PRODUCT_UNKNOWN

    status_text = get("status", "")
    status, freeze_reason = STATUS_WORDS.get(status_text.lower(), (None, ""))
    if not status_text:
        problems |= Problem.STATUS_EMPTY
    elif status is None:
        problems |= Problem.STATUS_UNKNOWN
    elif status == Card.Status.EXPIRED and product is not None and product.registered:
        problems |= Problem.STATUS_EXPIRED_REGISTERED

    balance = None
    balance_text = get("balance", "").replace(",", "")
    if not balance_text:
        problems |= Problem.BALANCE_EMPTY
    elif not _AMOUNT_RE.match(balance_text):
        problems |= Problem.BALANCE_NOT_AMOUNT
    else:
        amount = Decimal(balance_text)
        if amount < 0:
            problems |= Problem.BALANCE_NEGATIVE
        elif amount != amount.quantize(CENT):
            problems |= Problem.BALANCE_DECIMALS
        else:
            balance = amount.quantize(CENT)
            if product is not None and balance > product.cap:
                problems |= Problem.BALANCE_OVER_CAP
            if balance > 0 and status == Card.Status.CLOSED:
                problems |= Problem.BALANCE_ON_CLOSED
            if balance > 0 and status == Card.Status.INACTIVE:
                problems |= Problem.BALANCE_ON_INACTIVE

    issued_at = expires_at = None
    issued_text, expires_text = get("issued_at", ""), get("expires_at", "")
    if issued_text:
        try:
            issued_at = _moment_parse(issued_text, reference.tz, end_of_day=False)
        except ValueError:
            problems |= Problem.ISSUED_NOT_DATE
        else:
            if issued_at > reference.now:
                problems |= Problem.ISSUED_FUTURE
    if expires_text:
        try:
            expires_at = _moment_parse(expires_text, reference.tz, end_of_day=True)
        except ValueError:
            problems |= Problem.EXPIRES_NOT_DATE
        else:
            if product is not None and product.validity_months is None:
                problems |= Problem.EXPIRES_NOT_ALLOWED
            if issued_at is not None and expires_at <= issued_at:
                problems |= Problem.EXPIRES_BEFORE_ISSUE

    store = None
    store_text = get("store_code", "")
    if store_text:
        store = reference.stores.get(store_text.upper())
        if store is None:
            problems |= Problem.STORE_UNKNOWN

    values = {}
    if not problems:
        issued = status in ISSUED
        if expires_at is None and issued and issued_at is not None and product.validity_months is not None:
            expires_at = moment_months_add(issued_at.astimezone(reference.tz), product.validity_months)
        store_id, legal_entity_id = store or (None, None)
        values = {
            "card_no": card_no, "product_id": product.pk, "status": status, "freeze_reason": freeze_reason,
            "balance": balance, "stock_status": Card.Stock.SOLD if issued else Card.Stock.IN_STOCK,
            "location_id": None if issued else store_id, "sold_store_id": store_id if issued else None,
            "issuer_id": legal_entity_id if issued else None, "activated_at": issued_at if issued else None,
            "expires_at": expires_at,
        }
    return _Checked(row=row, problems=problems, values=values, holder=get("holder_member_no", ""), product=product)


# --- the import ---------------------------------------------------------------------------------------------


class _Import:
    def __init__(self, *, source: str, actor, dry_run: bool, skip_invalid: bool, on_reject: Callable | None):
        self.source = source
        self.actor_id = getattr(actor, "pk", None)
        self.dry_run = dry_run
        self.skip_invalid = skip_invalid
        self.on_reject = on_reject
        self.reference = _Reference.load()
        self.report = ImportReport(source=source, dry_run=dry_run)
        self.reason = gettext("opening balance from %(source)s") % {"source": source}

    @property
    def writing(self) -> bool:
        return not self.dry_run

    def reject(self, number: int, errors: dict[str, list[str]], cells: Iterable[str]) -> None:
        rejection = Rejection(row_number=number, errors=errors)
        self.report.rejected += 1
        first = self.report.first_rejection
        if first is None or rejection.row_number < first.row_number:
            self.report.first_rejection = rejection
        if self.on_reject is not None:
            self.on_reject(TableRow(number=number, values={}, cells=tuple(cells)), rejection)

    def created(self, status: str, balance: Decimal) -> None:
        self.report.created += 1
        self.report.by_status[status] = self.report.by_status.get(status, 0) + 1
        if balance:
            self.report.balances += balance
            self.report.entries += 1


class _PythonImport(_Import):
    """Rows checked in Python and written with bulk_create, a batch at a time (SQLite, small files)."""

    def run(self, rows: Iterable[TableRow]) -> None:
        seen: dict[str, int] = {}  # card number -> first row; the file's numbers, not its rows
        iterator = iter(rows)
        while batch := list(islice(iterator, BATCH_SIZE)):
            checked = [row_clean(row, self.reference) for row in batch]
            self.report.rows += len(checked)
            for item in checked:
                card_no = item.row.values.get("card_no", "")
                if item.problems & (Problem.CARD_NO_EMPTY | Problem.CARD_NO_FORMAT):
                    continue
                if card_no in seen:
                    item.problems |= Problem.CARD_NO_REPEATED
                    item.first_row = seen[card_no]
                else:
                    seen[card_no] = item.row.number
            self._against_database(checked)
            self._write(checked)

    def _against_database(self, checked: list[_Checked]) -> None:
        numbers = [item.row.values["card_no"] for item in checked if not item.problems & (
            Problem.CARD_NO_EMPTY | Problem.CARD_NO_FORMAT | Problem.CARD_NO_REPEATED)]
        existing = dict(Card.objects.filter(card_no__in=numbers).values_list("card_no", "legacy_source"))
        holders = holders_resolve(item.holder for item in checked if item.holder)
        for item in checked:
            card_no = item.row.values.get("card_no", "")
            if card_no in existing and not item.problems & Problem.CARD_NO_REPEATED \
                    and existing[card_no] != self.source:
                item.problems |= Problem.CARD_NO_TAKEN
                item.taken_source = existing[card_no]
            if item.holder:
                members = holders.get(item.holder, set())
                if not members:
                    item.problems |= Problem.HOLDER_NOT_FOUND
                elif len(members) > 1:
                    item.problems |= Problem.HOLDER_AMBIGUOUS
                elif item.values:
                    item.values["member_id"] = next(iter(members))
            item.values["unchanged"] = card_no in existing and existing[card_no] == self.source

    def _write(self, checked: list[_Checked]) -> None:
        cards: list[Card] = []
        for item in checked:
            if item.problems:
                errors = problems_explain(item.problems, values=item.row.values, first_row=item.first_row,
                                          taken_source=item.taken_source, product=item.product,
                                          codes=self.reference.codes)
                self.reject(item.row.number, errors, item.row.cells)
                continue
            values = dict(item.values)
            if values.pop("unchanged"):
                self.report.unchanged += 1
                continue
            self.created(values["status"], values["balance"])
            cards.append(Card(legacy_source=self.source, created_at=self.reference.now, **values))
        if not cards or not self.writing or (self.report.rejected and not self.skip_invalid):
            return
        Card.objects.bulk_create(cards, batch_size=500)
        if None in (card.pk for card in cards):
            ids = dict(Card.objects.filter(card_no__in=[card.card_no for card in cards]).values_list("card_no", "pk"))
            for card in cards:
                card.pk = ids[card.card_no]
        CardLedgerEntry.objects.bulk_create([
            CardLedgerEntry(card_id=card.pk, kind=CardLedgerEntry.Kind.MIGRATION, amount=card.balance,
                            balance_after=card.balance, store_id=card.sold_store_id, legal_entity_id=card.issuer_id,
                            operator_id=self.actor_id, reason=self.reason, created_at=self.reference.now)
            for card in cards if card.balance
        ], batch_size=500)


class _TablesNotEmpty(Exception):
    pass


class _CopyImport(_Import):
    """Rows COPYed into a temporary table, checked and written by a few set-based statements (PostgreSQL)."""

    RAW = "cards_import_raw"
    ROWS = "cards_import_rows"
    HOLDERS = "cards_import_holders"
    TEMPORARY = (RAW, ROWS, HOLDERS)

    def run(self, path: Path, reader: TableReader) -> None:
        self.width = max(len(reader.header.headers), 1)
        self.positions = reader.header.positions
        columns = ", ".join(f"c{index} text" for index in range(self.width))
        with connection.cursor() as cursor:
            # Dropped at the end, and at commit in any case; a caller's enclosing transaction may run several.
            cursor.execute(f"DROP TABLE IF EXISTS {', '.join(self.TEMPORARY)}")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.RAW} (row_no bigint GENERATED BY DEFAULT AS IDENTITY "
                           f"(START WITH 2), {columns}) ON COMMIT DROP")
        if reader.encoding == "xlsx" or not self._copy_file(path, reader.encoding):
            self._copy_rows(reader)
        # The check hashes every card number of the file (repeats) in memory rather than sorting them on disk; the
        # rebuilt indexes are sorted in memory too. The planner's guesses for a million-row statement made it
        # compile (JIT) for longer than the statement runs.
        settings = {"work_mem": "128MB", "maintenance_work_mem": "256MB", "jit": "off"}
        with connection.cursor() as cursor, settings_local(cursor, **settings):
            self._steps(cursor)
            cursor.execute(f"DROP TABLE {', '.join(self.TEMPORARY)}")

    def _steps(self, cursor) -> None:
        """Check the copied rows, report them, and write the valid ones unless nothing is to be written."""
        cursor.execute(f"ANALYZE {self.RAW}")
        self._holders_load(cursor)
        self._check(cursor)
        self._count(cursor)
        self._rejections()
        if self.writing and (self.skip_invalid or not self.report.rejected) and self.report.created:
            rebuild = self._empty_tables_indexes_drop(cursor)
            replication_role = self._foreign_key_checks_off(cursor)
            if replication_role is not None:
                self._references_lock(cursor)
                self._insert(cursor)
                cursor.execute("SELECT set_config('session_replication_role', %s, true)", [replication_role])
            else:
                # Checked after the statement, not at commit: an index cannot be built on a table with checks
                # pending.
                names = self._foreign_keys_set(cursor, "IMMEDIATE")
                self._insert(cursor)
                self._foreign_keys_set(cursor, "DEFERRED", names)
            for definition in rebuild:
                cursor.execute(definition)

    def _copy_file(self, path: Path, encoding: str) -> bool:
        """COPY the CSV file as bytes, parsed by PostgreSQL. Return False when PostgreSQL refuses it."""
        server_encoding = "GB18030" if encoding == "gb18030" else "UTF8"
        try:
            with transaction.atomic(), connection.cursor() as cursor, cursor.copy(
                f"COPY {self.RAW} ({', '.join(f'c{i}' for i in range(self.width))}) FROM STDIN "
                f"WITH (FORMAT csv, HEADER true, ENCODING '{server_encoding}')"
            ) as copy, open(path, "rb") as handle:
                # psycopg queues what is written for a writer thread: small chunks keep that queue small.
                while chunk := handle.read(1 << 16):
                    copy.write(chunk)
        except (DatabaseError, psycopg.Error):
            # Ragged or blank lines, or bytes that are not text in the file's encoding: TableReader reads it
            # row by row, naming the row it cannot read.
            return False
        return True

    def _copy_rows(self, reader: TableReader) -> None:
        width = self.width
        with connection.cursor() as cursor, cursor.copy(
            f"COPY {self.RAW} (row_no, {', '.join(f'c{i}' for i in range(width))}) FROM STDIN"
        ) as copy:
            for row in reader:
                cells = list(row.cells[:width]) + [None] * (width - len(row.cells))
                copy.write_row((row.number, *cells))

    def _cell(self, name: str) -> str:
        """The trimmed text of a column, or '' for an optional column the file does not have."""
        if name not in self.positions:
            return "''::text"
        return f"coalesce(btrim(c{self.positions[name]}, %(spaces)s), '')"

    def _holders_load(self, cursor) -> None:
        cursor.execute(f"CREATE TEMPORARY TABLE {self.HOLDERS} (no text PRIMARY KEY, found int, member_id bigint) "
                       "ON COMMIT DROP")
        if "holder_member_no" not in self.positions:
            return
        cursor.execute(f"SELECT DISTINCT {self._cell('holder_member_no')} FROM {self.RAW}",  # noqa: S608
                       {"spaces": _SPACES})
        numbers = [number for (number,) in cursor.fetchall() if number]
        found = holders_resolve(numbers)
        with cursor.copy("COPY cards_import_holders (no, found, member_id) FROM STDIN") as copy:
            for number in numbers:
                members = found.get(number, set())
                copy.write_row((number, len(members), min(members) if members else None))
        cursor.execute("ANALYZE cards_import_holders")

    def _check(self, cursor) -> None:
        """One statement: every row's values and problems, against the reference, the file and the cards there."""
        reference = self.reference
        products = [(key, p.pk, str(p.cap), p.validity_months, p.registered)
                    for key, p in reference.products.items()]
        stores = [(code, pk, legal_entity) for code, (pk, legal_entity) in reference.stores.items()]
        statuses = [(word, status, reason) for word, (status, reason) in STATUS_WORDS.items()]
        params = {
            "spaces": _SPACES, "amount_re": _AMOUNT, "compact_re": _COMPACT_DATE,
            "datetime_re": _DATETIME, "tz": timezone.get_current_timezone_name(), "now": reference.now,
            "source": self.source, "issued": text_array(ISSUED),
            "product_keys": text_array(p[0] for p in products), "product_ids": [p[1] for p in products],
            "product_caps": [p[2] for p in products], "product_months": [p[3] for p in products],
            "product_registered": [p[4] for p in products],
            "store_codes": text_array(s[0] for s in stores), "store_ids": [s[1] for s in stores],
            "store_entities": [s[2] for s in stores],
            "status_words": text_array(s[0] for s in statuses), "status_values": text_array(s[1] for s in statuses),
            "status_reasons": text_array(s[2] for s in statuses),
            **{problem.name: int(problem) for problem in Problem},
        }
        cells = {name: self._cell(name) for name in (column.name for column in CARD_COLUMNS)}
        blank = " || ".join(f"coalesce(c{index}, '')" for index in range(self.width))
        # A moment from its regexp_match groups (year, month, day, hour, minute, second), or NULL when the groups
        # do not make one; CASE keeps make_date away from a month or day that does not exist.
        moment = """CASE WHEN {m} IS NULL OR ({m})[1]::int < 1 OR ({m})[2]::int NOT BETWEEN 1 AND 12 THEN NULL
            WHEN ({m})[3]::int NOT BETWEEN 1 AND extract(day FROM make_date(({m})[1]::int, ({m})[2]::int, 1)
                + interval '1 month' - interval '1 day')
                OR coalesce(({m})[4]::int, 0) > 23 OR coalesce(({m})[5]::int, 0) > 59
                OR coalesce(({m})[6]::int, 0) > 59 THEN NULL
            ELSE make_timestamptz(({m})[1]::int, ({m})[2]::int, ({m})[3]::int, coalesce(({m})[4]::int, 0),
                coalesce(({m})[5]::int, 0), coalesce(({m})[6]::int, 0), %(tz)s){end} END"""
        # The groups of _DATETIME; the two shapes nearly every file has are cut out without a regular expression
        # (a tenth of the time), which gives the same groups.
        date_groups = """CASE WHEN {x} = '' THEN NULL
            WHEN translate({x}, '0123456789', '9999999999') = '9999-99-99'
                THEN ARRAY[substr({x}, 1, 4), substr({x}, 6, 2), substr({x}, 9, 2), NULL, NULL, NULL]
            WHEN translate({x}, '0123456789', '9999999999') = '9999-99-99 99:99:99'
                THEN ARRAY[substr({x}, 1, 4), substr({x}, 6, 2), substr({x}, 9, 2), substr({x}, 12, 2),
                           substr({x}, 15, 2), substr({x}, 18, 2)]
            WHEN {x} ~ %(compact_re)s THEN ARRAY[substr({x}, 1, 4), substr({x}, 5, 2), substr({x}, 7, 2), NULL,
                NULL, NULL]
            ELSE regexp_match({x}, %(datetime_re)s) END"""
        issued_groups, expires_groups = date_groups.format(x="c.issued"), date_groups.format(x="c.expires")
        issued_at = moment.format(m="t.issued_m", end="")
        expires_at = moment.format(
            m="t.expires_m", end=" + CASE WHEN (t.expires_m)[4] IS NULL THEN interval '1 day' ELSE interval '0' END")
        sql = f"""
        CREATE TEMPORARY TABLE {self.ROWS} ON COMMIT DROP AS
        WITH cells AS MATERIALIZED (
            SELECT row_no, {cells['card_no']} AS card_no, {cells['product_code']} AS product,
                replace({cells['balance']}, ',', '') AS balance, {cells['status']} AS status,
                {cells['issued_at']} AS issued, {cells['expires_at']} AS expires,
                {cells['holder_member_no']} AS holder, {cells['store_code']} AS store
            FROM {self.RAW} WHERE btrim({blank}, %(spaces)s) <> ''
        ),
        repeated AS (
            SELECT card_no, min(row_no) AS first_row FROM cells
            WHERE card_no ~ '^[0-9]+$' AND length(card_no) BETWEEN 6 AND 32
            GROUP BY card_no HAVING count(*) > 1
        ),
        products AS (SELECT * FROM unnest(%(product_keys)s::text[], %(product_ids)s::bigint[],
            %(product_caps)s::numeric[], %(product_months)s::int[], %(product_registered)s::boolean[])
            AS p(key, id, cap, months, registered)),
        stores AS (SELECT * FROM unnest(%(store_codes)s::text[], %(store_ids)s::bigint[],
            %(store_entities)s::bigint[]) AS s(code, id, legal_entity_id)),
        statuses AS (SELECT * FROM unnest(%(status_words)s::text[], %(status_values)s::text[],
            %(status_reasons)s::text[]) AS s(word, status, freeze_reason)),
        parsed AS (
            SELECT c.*,
                c.balance ~ %(amount_re)s AS amount_shaped,
                {issued_groups} AS issued_m,
                {expires_groups} AS expires_m
            FROM cells c
            OFFSET 0
        ),
        valued AS (
            SELECT t.row_no, t.card_no, t.balance, t.issued, t.expires, t.holder, t.store, t.product, t.status AS word,
                t.card_no ~ '^[0-9]+$' AND length(t.card_no) BETWEEN 6 AND 32 AS card_no_shaped,
                CASE WHEN t.amount_shaped THEN t.balance::numeric END AS amount,
                {issued_at} AS issued_at,
                {expires_at} AS expires_at,
                p.id AS product_id, p.cap, p.months, p.registered, st.status, st.freeze_reason,
                s.id AS store_id, s.legal_entity_id, h.found, h.member_id,
                r.first_row, e.legacy_source AS existing_source
            FROM parsed t
            LEFT JOIN products p ON p.key = upper(t.product)
            LEFT JOIN statuses st ON st.word = lower(t.status)
            LEFT JOIN stores s ON s.code = upper(t.store)
            LEFT JOIN cards_import_holders h ON h.no = t.holder
            LEFT JOIN repeated r ON r.card_no = t.card_no AND r.first_row < t.row_no
            LEFT JOIN cards_card e ON e.card_no = t.card_no
            OFFSET 0
        )
        SELECT v.row_no, v.card_no, v.product_id, v.status, v.freeze_reason, v.store_id, v.legal_entity_id,
            v.member_id, v.first_row, v.existing_source,
            CASE WHEN v.amount BETWEEN 0 AND 999999999999.99 THEN v.amount::numeric(14, 2) END AS balance,
            v.issued_at,
            CASE WHEN v.expires_at IS NULL AND v.status = ANY(%(issued)s::text[]) AND v.months IS NOT NULL
                THEN (v.issued_at AT TIME ZONE %(tz)s + make_interval(months => v.months)) AT TIME ZONE %(tz)s
                ELSE v.expires_at END AS expires_at,
            v.existing_source = %(source)s AS unchanged,
            (CASE WHEN v.card_no = '' THEN %(CARD_NO_EMPTY)s
                  WHEN NOT v.card_no_shaped THEN %(CARD_NO_FORMAT)s
                  WHEN v.first_row IS NOT NULL THEN %(CARD_NO_REPEATED)s
                  WHEN v.existing_source <> %(source)s THEN %(CARD_NO_TAKEN)s ELSE 0 END)
            + (CASE WHEN v.product = '' THEN %(PRODUCT_EMPTY)s
                    WHEN v.product_id IS NULL THEN %(PRODUCT_UNKNOWN)s ELSE 0 END)
            + (CASE WHEN v.word = '' THEN %(STATUS_EMPTY)s WHEN v.status IS NULL THEN %(STATUS_UNKNOWN)s
                    WHEN v.status = 'expired' AND v.registered THEN %(STATUS_EXPIRED_REGISTERED)s ELSE 0 END)
            + (CASE WHEN v.balance = '' THEN %(BALANCE_EMPTY)s
                    WHEN v.amount IS NULL THEN %(BALANCE_NOT_AMOUNT)s
                    WHEN v.amount < 0 THEN %(BALANCE_NEGATIVE)s
                    WHEN v.amount <> round(v.amount, 2) THEN %(BALANCE_DECIMALS)s
                    ELSE (CASE WHEN v.amount > v.cap THEN %(BALANCE_OVER_CAP)s ELSE 0 END)
                       + (CASE WHEN v.amount > 0 AND v.status = 'closed' THEN %(BALANCE_ON_CLOSED)s ELSE 0 END)
                       + (CASE WHEN v.amount > 0 AND v.status = 'inactive' THEN %(BALANCE_ON_INACTIVE)s ELSE 0 END)
               END)
            + (CASE WHEN v.issued = '' THEN 0 WHEN v.issued_at IS NULL THEN %(ISSUED_NOT_DATE)s
                    WHEN v.issued_at > %(now)s THEN %(ISSUED_FUTURE)s ELSE 0 END)
            + (CASE WHEN v.expires = '' THEN 0 WHEN v.expires_at IS NULL THEN %(EXPIRES_NOT_DATE)s
                    ELSE (CASE WHEN v.product_id IS NOT NULL AND v.months IS NULL
                               THEN %(EXPIRES_NOT_ALLOWED)s ELSE 0 END)
                       + (CASE WHEN v.expires_at <= v.issued_at THEN %(EXPIRES_BEFORE_ISSUE)s ELSE 0 END) END)
            + (CASE WHEN v.holder = '' THEN 0 WHEN v.found = 0 THEN %(HOLDER_NOT_FOUND)s
                    WHEN v.found > 1 THEN %(HOLDER_AMBIGUOUS)s ELSE 0 END)
            + (CASE WHEN v.store <> '' AND v.store_id IS NULL THEN %(STORE_UNKNOWN)s ELSE 0 END) AS problems
        FROM valued v
        """  # noqa: S608 (only column names and constants are formatted in)
        cursor.execute(sql, params)

    def _count(self, cursor) -> None:
        cursor.execute(
            f"SELECT count(*), count(*) FILTER (WHERE problems <> 0), "  # noqa: S608 (constant table name)
            f"count(*) FILTER (WHERE problems = 0 AND unchanged) FROM {self.ROWS}"
        )
        rows, rejected, unchanged = cursor.fetchone()
        self.report.rows, self.report.unchanged = rows, unchanged
        cursor.execute(
            f"SELECT status, count(*), coalesce(sum(balance), 0), count(*) FILTER (WHERE balance > 0) "  # noqa: S608
            f"FROM {self.ROWS} WHERE problems = 0 AND unchanged IS NOT TRUE GROUP BY status ORDER BY status"
        )
        for status, count, balances, entries in cursor.fetchall():
            self.report.created += count
            self.report.by_status[status] = count
            self.report.balances += balances
            self.report.entries += entries
        self._rejected_count = rejected

    def _rejections(self) -> None:
        """Read the rejected rows in file order, through a server-side cursor (there may be a million)."""
        if not self._rejected_count:
            return
        names = {name: index for name, index in self.positions.items()}
        cells = ", ".join(f"coalesce(btrim(r.c{i}, %s), '')" for i in range(self.width))
        connection.ensure_connection()
        with connection.connection.cursor(name="cards_import_rejected") as cursor:
            cursor.itersize = 5000
            cursor.execute(
                f"SELECT s.row_no, s.problems, s.first_row, s.existing_source, s.product_id, {cells} "  # noqa: S608
                f"FROM {self.ROWS} s JOIN {self.RAW} r ON r.row_no = s.row_no WHERE s.problems <> 0 "
                f"ORDER BY s.row_no", [_SPACES] * self.width,
            )
            for row_no, problems, first_row, existing_source, product_id, *texts in cursor:
                values = {name: texts[index] if index < len(texts) else "" for name, index in names.items()}
                errors = problems_explain(problems, values=values, first_row=first_row, taken_source=existing_source,
                                          product=self.reference.by_pk.get(product_id), codes=self.reference.codes)
                self.reject(row_no, errors, texts)

    # A first migration into empty card tables (no card yet, so no POS or desk reads one) takes them for itself
    # until it commits and drops their non-unique indexes: one sort per index at the end builds them several
    # times faster than a million inserts into each. The unique indexes stay. If the lock is not granted within
    # _LOCK_WAIT, or a card is there, the import writes through the indexes.
    _LOCK_WAIT = "2s"
    _TABLES = ("cards_card", "cards_cardledgerentry")

    def _empty_tables_indexes_drop(self, cursor) -> list[str]:
        """Drop the non-unique indexes of the empty card tables; return the statements that build them again."""
        try:
            with transaction.atomic(), settings_local(cursor, lock_timeout=self._LOCK_WAIT):
                cursor.execute(f"LOCK TABLE {', '.join(self._TABLES)} IN ACCESS EXCLUSIVE MODE")
                cursor.execute("SELECT EXISTS (SELECT 1 FROM cards_card)")
                if cursor.fetchone()[0]:
                    raise _TablesNotEmpty  # rolled back to the savepoint: the lock is released
                return secondary_indexes_drop(cursor, self._TABLES)
        except (_TablesNotEmpty, DatabaseError):
            return []

    def _foreign_key_checks_off(self, cursor) -> str | None:
        """Leave out the foreign-key triggers for this transaction's inserts, if the database user may.

        Each foreign key of each new row costs a queued trigger and a lookup at commit: for a million cards
        with their ledger entries, about fifteen of the import's seconds. What they would check is checked
        and locked set-based instead (_references_lock). It needs a superuser or
        `GRANT SET ON PARAMETER session_replication_role TO <user>`; without it the triggers run. Return the
        setting to put back afterwards, or None when the triggers stay on.
        """
        try:
            with transaction.atomic():
                cursor.execute("SELECT current_setting('session_replication_role'), "
                               "set_config('session_replication_role', 'replica', true)")
                return cursor.fetchone()[0]
        except DatabaseError:
            return None

    def _foreign_keys_set(self, cursor, mode: str, names: list[str] | None = None) -> list[str]:
        """SET CONSTRAINTS mode for the deferred foreign keys of the written tables; return their names."""
        if names is None:
            cursor.execute(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' AND condeferrable AND condeferred "
                "AND conrelid = ANY(%s::regclass[]) ORDER BY conname", [text_array(self._TABLES)],
            )
            names = [name for (name,) in cursor.fetchall()]
        if names:
            cursor.execute(f"SET CONSTRAINTS {', '.join(connection.ops.quote_name(n) for n in names)} {mode}")
        return names

    def _references_lock(self, cursor) -> None:
        """What the foreign-key triggers would do, set-based: lock the rows the new ones point to, FOR KEY SHARE
        (no one deletes them or changes their key until this commits), and make sure each of them is there.

        Raise CardInvalid when one went away since the file was checked.
        """
        references = (("cards_cardproduct", "product_id"), ("stores_store", "store_id"),
                      ("stores_legalentity", "legal_entity_id"), ("membership_member", "member_id"))
        cursor.execute(
            f"SELECT {', '.join(f'array_agg(DISTINCT {column})' for _table, column in references)} "  # noqa: S608
            f"FROM {self.ROWS} WHERE problems = 0 AND unchanged IS NOT TRUE"
        )
        for (table, _column), ids in zip(references, cursor.fetchone(), strict=True):
            wanted = [pk for pk in ids or () if pk is not None]
            cursor.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {table} WHERE id = ANY(%s) FOR KEY SHARE) locked",  # noqa: S608
                [wanted],
            )
            if cursor.fetchone()[0] != len(wanted):
                raise CardInvalid(gettext(
                    "A product, store or member the file names was deleted while it was imported; nothing was "
                    "imported. Run the import again."))
        if self.actor_id is not None:
            cursor.execute("SELECT 1 FROM auth_user WHERE id = %s FOR KEY SHARE", [self.actor_id])

    def _insert(self, cursor) -> None:
        """The cards, and the opening ledger entries of those with a balance, in one statement."""
        cursor.execute(
            f"""
            WITH created AS (
                INSERT INTO cards_card (card_no, product_id, batch_id, face_value, status, freeze_reason, balance,
                    stock_status, location_id, pin_hash, pin_failures, member_id, holder_name, sold_store_id,
                    issuer_id, sale_order_id, activated_at, expires_at, replaced_by_id, legacy_source, created_at,
                    updated_at)
                SELECT card_no, product_id, NULL, NULL, status, freeze_reason, balance,
                    CASE WHEN issued THEN %(sold)s ELSE %(in_stock)s END,
                    CASE WHEN issued THEN NULL ELSE store_id END, '', 0, member_id, '',
                    CASE WHEN issued THEN store_id END, CASE WHEN issued THEN legal_entity_id END, NULL,
                    CASE WHEN issued THEN issued_at END, expires_at, NULL, %(source)s, %(now)s, %(now)s
                FROM (SELECT *, status = ANY(%(issued)s::text[]) AS issued FROM {self.ROWS}
                      WHERE problems = 0 AND unchanged IS NOT TRUE ORDER BY row_no) valid
                RETURNING id, balance, sold_store_id, issuer_id
            )
            INSERT INTO cards_cardledgerentry (card_id, kind, amount, balance_after, store_id, terminal_id,
                receipt_no, legal_entity_id, operator_id, transaction_id, reason, cause_type_id, cause_id, created_at)
            SELECT id, %(kind)s, balance, balance, sold_store_id, NULL, '', issuer_id, %(actor)s, NULL, %(reason)s,
                NULL, '', %(now)s
            FROM created WHERE balance > 0
            """,  # noqa: S608 (constant table name)
            {"sold": Card.Stock.SOLD.value, "in_stock": Card.Stock.IN_STOCK.value, "source": self.source,
             "now": self.reference.now, "issued": text_array(ISSUED), "kind": CardLedgerEntry.Kind.MIGRATION.value,
             "actor": self.actor_id, "reason": self.reason},
        )


def _copy_available() -> bool:
    return connection.vendor == "postgresql"


def cards_import(
    *,
    reader: TableReader,
    source: str,
    dry_run: bool = False,
    skip_invalid: bool = False,
    actor=None,
    on_reject: Callable[[TableRow, Rejection], None] | None = None,
) -> ImportReport:
    """Import a legacy card file (an opened TableReader of CARD_COLUMNS) as cards with their opening balances.

    All or nothing: a card already imported from this source is left
    unchanged; without skip_invalid, any invalid row means nothing is written;
    a dry run writes nothing either way. Raise CardInvalid for a bad source
    name, TableInvalid for a row that cannot be read.
    """
    source = source_clean(source)
    with transaction.atomic():
        if _copy_available():
            run = _CopyImport(source=source, actor=actor, dry_run=dry_run, skip_invalid=skip_invalid,
                              on_reject=on_reject)
            run.run(reader.path, reader)
        else:
            run = _PythonImport(source=source, actor=actor, dry_run=dry_run, skip_invalid=skip_invalid,
                                on_reject=on_reject)
            run.run(reader)
        report = run.report
        report.written = not dry_run and (skip_invalid or not report.rejected)
        if not report.written:
            transaction.set_rollback(True)
    return report


__all__ = ["CARD_COLUMNS", "ImportReport", "Problem", "Rejection", "cards_import", "problems_explain",
           "source_clean", "source_from_filename"]
