"""Migration of members from the legacy member systems (CONTRACT sections 1 and 4).

One pass over the file, in batches, inside one transaction: each batch is
validated with the desk's rules (`member_values_clean`, the core of
`member_input_clean`) in a reading thread while the previous batch is being
written, looked up against the database with indexed `= ANY(array)` queries,
and written (PostgreSQL COPY, or bulk_create elsewhere). Merge candidates for
shared phones are found in one set-based statement after the last batch.
Because earlier batches are already in the transaction, the database itself
answers "is this ID number or legacy number already here, from an earlier
import or earlier in this file?", so memory does not grow with the file. The
transaction is rolled back at the end for a dry run, or when rows were invalid
and the user did not choose to skip them: nothing is written then. A dry run
therefore costs as much as an import, and its counts are exactly what the
import would do.

On PostgreSQL the foreign keys of the written tables are checked after each
statement rather than at commit, so the checks overlap the reading of the next
batch; and a first migration into an empty members table drops the table's
non-unique indexes and the written tables' foreign keys to it, and builds and
adds them again at the end (see `_Import.empty_table_indexes_drop`).

Historical records (simple_history) are not written for imported members, and
neither is an event for a member the import creates: its page already says
where it came from (registered through an import, by whom, at which store; the
legacy identity with its source, number and the time of the import; the
migration ledger entry). A member that was there before the import gets a
MemberEvent(kind=imported) for each legacy record attached to it.
"""

import gc
import json
import operator
import os
import queue
import re
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from functools import lru_cache
from itertools import islice

from django.db import OperationalError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext

from core.sql import secondary_indexes_drop, settings_local, text_array
from core.tabular import Column, Rejection, TableRow
from membership.errors import MemberInvalid
from membership.models import Member, MemberEvent, MemberIdentity, MergeCandidate, PointsEntry, Tier
from membership.services import member_values_clean
from membership.services.ledger import points_opening_balances_update, points_opening_entries_write
from stores.models import Store

MEMBER_COLUMNS = (
    Column("member_no", "会员号", required=True, aliases=("会员编号", "会员卡号")),
    Column("name", "姓名", required=True),
    Column("phone", "手机号", aliases=("手机", "手机号码", "电话")),
    Column("id_number", "身份证号", aliases=("身份证", "身份证号码")),
    Column("birth_date", "出生日期", aliases=("生日",)),
    Column("tier_code", "等级", aliases=("会员等级",)),
    Column("points", "积分", aliases=("积分余额",)),
    Column("store_code", "注册门店", aliases=("门店",)),
    Column("registered_at", "注册时间", aliases=("注册日期",)),
)
BATCH_SIZE = 10_000
MAX_POINTS = 1_000_000_000
# A phone shared by a whole clan (or a legacy placeholder number) is reviewed through its first records.
PHONE_PAIRS_PER_MEMBER = 20
SOURCE_MAX_LENGTH = MemberIdentity._meta.get_field("source").max_length
LEGACY_NO_MAX_LENGTH = MemberIdentity._meta.get_field("external_no").max_length

_DATE = re.compile(r"^([0-9]{4})(?:[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})日?|([0-9]{2})([0-9]{2}))$")
_DATETIME = re.compile(
    r"^([0-9]{4})[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})日?"
    r"(?:[ T]([0-9]{1,2})[:时]([0-9]{1,2})(?:[:分]([0-9]{1,2})(?:\.[0-9]+)?秒?)?)?$"
)
_WHOLE = re.compile(r"^\+?([0-9]+)(?:\.0*)?$")
_NUMBER = re.compile(r"^-?[0-9]+(?:\.[0-9]*)?$")
_COMPACT_DATE = re.compile(r"[0-9]{8}")


class Outcome:
    NEW = "new"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    REJECTED = "rejected"


@dataclass
class ImportReport:
    source: str
    dry_run: bool = False
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    points: int = 0
    merge_candidates: int = 0
    first_rejection: Rejection | None = None
    written: bool = False


def source_from_filename(name: str) -> str:
    """The default source of a file: its name without extension, upper-cased (dept_crm.csv -> DEPT_CRM)."""
    stem = name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return source_clean(stem)


def source_clean(value: str) -> str:
    """Normalise a source name. Raise MemberInvalid when it is empty or too long."""
    source = "_".join((value or "").split()).upper()
    if not source:
        raise MemberInvalid(fields={"source": [gettext("Name the legacy system the file comes from.")]})
    if len(source) > SOURCE_MAX_LENGTH:
        raise MemberInvalid(fields={"source": [
            gettext("A source name has at most %(n)s characters.") % {"n": SOURCE_MAX_LENGTH}]})
    return source


# --- one row ------------------------------------------------------------------------------


@dataclass
class _Reference:
    """What every row is checked against, loaded once per import."""

    tiers: dict[str, int]
    tier_codes: list[str]
    default_tier_id: int
    stores: dict[str, int]
    today: date
    now: datetime
    tz: tzinfo  # the current time zone of the caller, for registration times (rows are read in another thread)

    @classmethod
    def load(cls) -> "_Reference":
        tiers: dict[str, int] = {}
        codes = []
        for pk, code, name in Tier.objects.filter(is_active=True).values_list("pk", "code", "name"):
            tiers[code.upper()] = pk
            tiers[name.upper()] = pk
            codes.append(code)
        default = Tier.default()
        if default is None:
            raise MemberInvalid(gettext("No active earned tier exists to give imported members."))
        now = timezone.now()
        return cls(
            tiers=tiers, tier_codes=codes, default_tier_id=default.pk,
            stores=dict(Store.objects.values_list("code", "pk")),
            today=timezone.localdate(now), now=now, tz=timezone.get_current_timezone(),
        )


@dataclass(slots=True)
class _Valid:
    row: TableRow
    legacy_no: str
    values: dict  # Member attnames -> values, ready to write
    points: int


def _date_parse(text: str) -> date:
    match = _DATE.match(text)
    if not match:
        raise ValueError
    year, month, day, compact_month, compact_day = match.groups()
    return date(int(year), int(month or compact_month), int(day or compact_day))


def _datetime_parse(text: str, tz: tzinfo) -> datetime:
    match = _DATETIME.match(text)
    if not match:
        if _COMPACT_DATE.fullmatch(text):
            return datetime.combine(_date_parse(text), datetime.min.time(), tzinfo=tz)
        raise ValueError
    parts = [int(part) if part else 0 for part in match.groups()]
    return datetime(*parts, tzinfo=tz)


def row_clean(row: TableRow, reference: _Reference) -> tuple[_Valid | None, dict[str, list[str]]]:
    """Check one row with the desk's rules; return the member values or the errors by column."""
    get = row.values.get
    errors: dict[str, list[str]] = {}
    legacy_no = get("member_no", "")
    if not legacy_no:
        errors["member_no"] = [gettext("The legacy member number is empty.")]
    elif len(legacy_no) > LEGACY_NO_MAX_LENGTH:
        errors["member_no"] = [gettext("A legacy member number has at most %(n)s characters.")
                               % {"n": LEGACY_NO_MAX_LENGTH}]

    birth_date = None
    birth_text = get("birth_date", "")
    if birth_text:
        try:
            birth_date = _date_parse(birth_text)
        except ValueError:
            errors["birth_date"] = [gettext("%(value)s is not a date; write it as 1948-03-12.") % {"value": birth_text}]

    # The desk's rules (member_input_clean goes through the same function), without an exception per bad row.
    values, person_errors = member_values_clean(
        name=get("name", ""), phone=get("phone", ""), id_number=get("id_number", ""), birth_date=birth_date,
        today=reference.today, require_contact=False,
    )
    for column, messages in person_errors.items():
        errors.setdefault(column, []).extend(messages)

    tier_id = reference.default_tier_id
    tier_text = get("tier_code", "")
    if tier_text:
        tier_id = reference.tiers.get(tier_text.upper())
        if tier_id is None:
            errors["tier_code"] = [gettext("Unknown tier %(value)s; use one of %(codes)s.")
                                   % {"value": tier_text, "codes": ", ".join(reference.tier_codes)}]

    store_id = None
    store_text = get("store_code", "")
    if store_text:
        store_id = reference.stores.get(store_text.upper())
        if store_id is None:
            errors["store_code"] = [gettext("No store has the code %(value)s.") % {"value": store_text}]

    points = 0
    points_text = get("points", "").replace(",", "")
    if points_text:
        whole = _WHOLE.match(points_text)
        if whole:
            points = int(whole.group(1))
            if points > MAX_POINTS:
                errors["points"] = [gettext("%(value)s points is more than any member can hold.")
                                    % {"value": points_text}]
        elif points_text.startswith("-") and _NUMBER.match(points_text):
            errors["points"] = [gettext("Points cannot be negative (%(value)s).") % {"value": points_text}]
        elif _NUMBER.match(points_text):
            errors["points"] = [gettext("Points are whole numbers; %(value)s is not.") % {"value": points_text}]
        else:
            errors["points"] = [gettext("%(value)s is not a number of points.") % {"value": points_text}]

    registered_at = reference.now
    registered_text = get("registered_at", "")
    if registered_text:
        try:
            registered_at = _datetime_parse(registered_text, reference.tz)
        except ValueError:
            errors["registered_at"] = [gettext("%(value)s is not a date or time; write it as 2015-06-01 09:30.")
                                       % {"value": registered_text}]
        else:
            if registered_at > reference.now:
                errors["registered_at"] = [gettext("The registration time %(value)s is in the future.")
                                           % {"value": registered_text}]

    if errors:
        return None, errors
    values.update(tier_id=tier_id, registered_store_id=store_id, registered_at=registered_at)
    return _Valid(row=row, legacy_no=legacy_no, values=values, points=points), {}


# --- the import ---------------------------------------------------------------------------


class _Target:
    """The member a row lands on: one created in this batch, or one already in the database."""

    __slots__ = ("pk", "values", "points", "is_new", "existed", "dirty", "phone_added", "first_row")

    def __init__(self, *, values: dict, points: int, is_new: bool, pk: int | None = None, first_row: int = 0,
                 existed: bool = False):
        self.pk = pk
        self.values = values
        self.points = points
        self.is_new = is_new
        self.existed = existed  # the member was there before this import (not made by an earlier batch of it)
        self.dirty = False
        self.phone_added = False
        self.first_row = first_row

    def fill(self, values: dict) -> None:
        """A later row of the same person fills what the first one left empty."""
        for name in _FILL_FIELDS:
            new = values.get(name)
            current = self.values.get(name)
            empty = not current or (name == "gender" and current == Member.Gender.UNKNOWN)
            if empty and new and new != current:
                self.values[name] = new
                self.dirty = True
                if name == "phone":
                    self.phone_added = True


_FILL_FIELDS = ("phone", "birth_date", "gender", "registered_store_id")
_MEMBER_COLUMNS = (
    "id", "member_no", "name", "name_initials", "gender", "birth_date", "id_type", "id_number_digest",
    "id_number_sealed", "id_number_masked", "phone", "family_phone", "address", "contact_channel",
    "marketing_consent", "marketing_consent_at", "tier_id", "points", "registered_store_id", "registered_channel",
    "registered_by_id", "registered_at", "status", "merged_into_id", "notes", "updated_at",
)


_MEMBER_VALUES = tuple(name for name in _MEMBER_COLUMNS if name not in ("id", "points"))
_member_values = operator.itemgetter(*_MEMBER_VALUES)
_MEMBER_DATE_PLACES = tuple(
    2 + _MEMBER_VALUES.index(name) for name in ("birth_date", "marketing_consent_at", "registered_at"))


def _member_copy_row(target: "_Target", now_text: str) -> list:
    """The member's COPY row: dates and times as ISO text (psycopg adapts a time zone-aware datetime slowly)."""
    row = [target.pk, target.points, *_member_values(target.values)]
    for place in _MEMBER_DATE_PLACES:
        if row[place] is not None:
            row[place] = row[place].isoformat()
    row[-1] = now_text  # updated_at
    return row
_IDENTITY_COLUMNS = ("member_id", "kind", "source", "external_no", "created_at")
_json = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False), one encoder for all rows
_EVENT_COLUMNS = ("member_id", "kind", "actor_id", "store_id", "data", "created_at")


# Member numbers are made as member_no_new makes them ("8", ten random digits, a Luhn check digit), a batch at a
# time from one read of the system's random source: one call per number was a tenth of the import's time.
_NUMBER_SPACE = 10**10
_NUMBER_DRAW_LIMIT = (1 << 64) - (1 << 64) % _NUMBER_SPACE  # below it, a draw modulo 10**10 is uniform
_LUHN_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


@lru_cache(maxsize=1)
def _luhn_tables() -> tuple[bytes, bytes]:
    """Luhn sums (mod 10) of the low and high five digits of the ten random ones, by their value."""
    low = bytearray(100_000)
    high = bytearray(100_000)
    doubled, plain = _LUHN_DOUBLED, range(10)
    for value in range(100_000):
        d0, d1, d2, d3, d4 = value % 10, value // 10 % 10, value // 100 % 10, value // 1000 % 10, value // 10_000
        # Counted from the check digit's left neighbour (doubled), the low five sit at places 0-4, the high at 5-9.
        low[value] = (doubled[d0] + plain[d1] + doubled[d2] + plain[d3] + doubled[d4]) % 10
        high[value] = (plain[d0] + doubled[d1] + plain[d2] + doubled[d3] + plain[d4]) % 10
    return bytes(low), bytes(high)


def member_numbers_new(count: int) -> list[str]:
    """count random member numbers, each as member_no_new would make it (they may repeat: check before use)."""
    low, high = _luhn_tables()
    numbers: list[str] = []
    while len(numbers) < count:
        draws = array("Q", os.urandom(8 * (count - len(numbers))))
        for draw in draws:
            if draw >= _NUMBER_DRAW_LIMIT:
                continue
            digits = draw % _NUMBER_SPACE
            # The leading 8 sits at place 10, doubled: 7.
            total = 7 + low[digits % 100_000] + high[digits // 100_000]
            numbers.append(f"8{digits:010d}{(10 - total % 10) % 10}")
    return numbers


def _among(queryset, field: str, values: list):
    """queryset.filter(field__in=values); on PostgreSQL as `= ANY(array)`, one parameter instead of thousands."""
    if connection.vendor != "postgresql":
        return queryset.filter(**{f"{field}__in": values})
    table, column = queryset.model._meta.db_table, queryset.model._meta.get_field(field).column
    where = f'"{table}"."{column}" = ANY(%s::text[])'
    return queryset.extra(where=[where], params=[text_array(values)])  # noqa: S610 (only the model's names are formatted in)


class _TableNotEmpty(Exception):
    pass


class _Import:
    def __init__(self, *, source: str, actor, dry_run: bool, skip_invalid: bool,
                 on_reject: Callable | None, on_row: Callable | None):
        self.source = source
        self.actor_id = getattr(actor, "pk", None)
        self.dry_run = dry_run
        self.skip_invalid = skip_invalid
        self.on_reject = on_reject
        self.on_row = on_row
        self.reference = _Reference.load()
        self.report = ImportReport(source=source, dry_run=dry_run)
        self.copy = connection.vendor == "postgresql"
        self.now_text = self.reference.now.isoformat()

    def reject(self, row: TableRow, errors: dict[str, list[str]]) -> None:
        rejection = Rejection(row_number=row.number, errors=errors)
        self.report.rejected += 1
        first = self.report.first_rejection
        if first is None or rejection.row_number < first.row_number:
            self.report.first_rejection = rejection
        if self.on_reject is not None:
            self.on_reject(row, rejection)

    def outcome(self, row: TableRow, outcome: str, member_no: str) -> None:
        if self.on_row is not None:
            self.on_row(row, outcome, member_no)

    def batch(self, rows: list[TableRow], cleaned: list[tuple[_Valid | None, dict[str, list[str]]]]) -> None:
        """Write one batch of rows, checked by row_clean (in the reading thread: see _cleaned_batches)."""
        valid: dict[str, _Valid] = {}
        for row, (clean, errors) in zip(rows, cleaned, strict=True):
            self.report.rows += 1
            if errors:
                # Checked again here for the messages: the active language is this thread's.
                clean, errors = row_clean(row, self.reference)
            if clean is not None and clean.legacy_no in valid:
                clean, errors = None, {"member_no": [
                    gettext("The legacy member number %(no)s already appears in row %(row)s of this file.")
                    % {"no": clean.legacy_no, "row": valid[clean.legacy_no].row.number}]}
            if clean is None:
                self.reject(row, errors)
            else:
                valid[clean.legacy_no] = clean
        if valid:
            self.write(list(valid.values()))

    def write(self, valid: list[_Valid]) -> None:
        # Earlier batches of this run are in the database already, stamped with this run's time: a number
        # found with that stamp came earlier in this file; with another stamp, from an earlier import.
        known = {
            number: (member_no, created_at)
            for number, member_no, created_at in _among(
                MemberIdentity.objects.filter(source=self.source), "external_no", [v.legacy_no for v in valid]
            ).values_list("external_no", "member__member_no", "created_at")
        }
        todo = []
        for item in valid:
            if item.legacy_no not in known:
                todo.append(item)
            elif known[item.legacy_no][1] == self.reference.now:
                self.reject(item.row, {"member_no": [
                    gettext("The legacy member number %(no)s already appears earlier in this file.")
                    % {"no": item.legacy_no}]})
            else:
                self.report.unchanged += 1
                self.outcome(item.row, Outcome.UNCHANGED, known[item.legacy_no][0])
        if not todo:
            return
        digests = {item.values["id_number_digest"] for item in todo if item.values["id_number_digest"]}
        existing: dict[str, _Target] = {}
        if digests:
            # Locked in primary-key order, as every points posting does, so no deadlock with the POS.
            # A member this run created came through an import and has no identity but this run's.
            earlier_identity = MemberIdentity.objects.filter(member=OuterRef("pk")).exclude(
                source=self.source, created_at=self.reference.now)
            for row in (
                _among(Member.objects.select_for_update(), "id_number_digest", list(digests))
                .exclude(status=Member.Status.MERGED).order_by("pk")
                .annotate(earlier_identity=Exists(earlier_identity))
                .values("pk", "member_no", "id_number_digest", "points", "registered_channel", "earlier_identity",
                        *_FILL_FIELDS)
            ):
                values = {name: row[name] for name in ("member_no", *_FILL_FIELDS)}
                existed = row["earlier_identity"] or row["registered_channel"] != Member.Channel.IMPORT
                existing[row["id_number_digest"]] = _Target(values=values, points=row["points"], is_new=False,
                                                            pk=row["pk"], existed=existed)

        created: list[_Target] = []
        landed: list[tuple[_Valid, _Target, int]] = []
        in_batch: dict[str, _Target] = {}
        for item in todo:
            digest = item.values["id_number_digest"]
            target = (existing.get(digest) or in_batch.get(digest)) if digest else None
            if target is None:
                target = _Target(values=item.values, points=0, is_new=True, first_row=item.row.number)
                created.append(target)
                if digest:
                    in_batch[digest] = target
            else:
                target.fill(item.values)
            if item.points:
                target.points += item.points
                target.dirty = target.dirty or not target.is_new
            # The balance after this row's opening entry, for the ledger.
            landed.append((item, target, target.points))
            self.report.points += item.points
        self._number(created)
        self._insert_members(created)
        self._update_members([t for t in existing.values() if t.dirty])
        self._insert_related(created, landed)

        for item, target, _balance in landed:
            outcome = Outcome.NEW if target.is_new and target.first_row == item.row.number else Outcome.UPDATE
            if outcome == Outcome.NEW:
                self.report.created += 1
            else:
                self.report.updated += 1
            self.outcome(item.row, outcome, target.values["member_no"])
        self._phone_members_note({t.pk for _item, t, _balance in landed
                                  if t.values["phone"] and (t.is_new or t.phone_added)})

    def _number(self, created: list[_Target]) -> None:
        """Give new members random numbers that no member has and no other new member of the run has."""
        pending = list(created)
        while pending:
            numbers = {}
            draws = iter(member_numbers_new(len(pending) + 8))
            for target in pending:
                number = next(draws, None) or member_numbers_new(1)[0]
                while number in numbers:
                    number = member_numbers_new(1)[0]
                numbers[number] = target
            taken = set(_among(Member.objects.all(), "member_no", list(numbers)).values_list("member_no", flat=True))
            pending = []
            for number, target in numbers.items():
                if number in taken:
                    pending.append(target)
                else:
                    target.values["member_no"] = number

    def _insert_members(self, created: list[_Target]) -> None:
        if not created:
            return
        now = self.reference.now
        common = {
            "family_phone": "", "address": "", "marketing_consent": False, "marketing_consent_at": None,
            "registered_channel": Member.Channel.IMPORT.value, "registered_by_id": self.actor_id,
            "status": Member.Status.ACTIVE.value, "merged_into_id": None, "notes": "", "updated_at": now,
        }
        for target in created:
            target.values.update(common)
        # A new member is inserted with its opening balance (COPY in _insert_related on PostgreSQL); the entries that
        # balance is the sum of are written through the points ledger (points_opening_entries_write).
        if self.copy:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence('membership_member', 'id')) "
                    "FROM generate_series(1, %s)", [len(created)],
                )
                for target, (pk,) in zip(created, cursor.fetchall(), strict=True):
                    target.pk = pk
        else:
            members = Member.objects.bulk_create(
                [Member(points=t.points, **t.values) for t in created],
                batch_size=1000,
            )
            for target, member in zip(created, members, strict=True):
                target.pk = member.pk

    def _update_members(self, targets: list[_Target]) -> None:
        if not targets:
            return
        members = []
        for target in targets:
            member = Member(pk=target.pk, points=target.points, updated_at=self.reference.now)
            for name in _FILL_FIELDS:
                setattr(member, name, target.values[name])
            members.append(member)
        points_opening_balances_update(members, fields=[*_FILL_FIELDS, "updated_at"])

    def _insert_related(self, created: list[_Target], landed: list[tuple[_Valid, _Target, int]]) -> None:
        # COPY takes times as text: the run's time is written out once, not adapted again for every row.
        now = self.now_text if self.copy else self.reference.now
        source, actor_id = self.source, self.actor_id
        legacy = MemberIdentity.Kind.LEGACY.value
        reason = gettext("opening balance from %(source)s") % {"source": source}
        identities = [(target.pk, legacy, source, item.legacy_no, now) for item, target, _balance in landed]
        ledger = [(target.pk, item.points, balance, item.values["registered_store_id"],
                   f"{reason} {item.legacy_no}"[:200], now)
                  for item, target, balance in landed if item.points]
        # A member this import creates has its story on its own page already: registered through an import, by
        # whom, at which store, the legacy identity (source, number, time of the import) and the opening points.
        # A member that was there before the import gets an event for each legacy record attached to it.
        events = [
            (target.pk, MemberEvent.Kind.IMPORTED.value, actor_id, item.values["registered_store_id"],
             _json({"source": source, "external_no": item.legacy_no, "row": item.row.number}), now)
            for item, target, _balance in landed if target.existed
        ]
        if self.copy:
            with connection.cursor() as cursor:
                self._copy(cursor, "membership_member", ("id", "points", *_MEMBER_VALUES),
                           [_member_copy_row(t, now) for t in created])
                self._copy(cursor, "membership_memberidentity", _IDENTITY_COLUMNS, identities)
                points_opening_entries_write(ledger, operator_id=actor_id, cursor=cursor)
                self._copy(cursor, "membership_memberevent", _EVENT_COLUMNS, events)
            return
        MemberIdentity.objects.bulk_create(
            [MemberIdentity(**dict(zip(_IDENTITY_COLUMNS, row, strict=True))) for row in identities], batch_size=1000)
        # auto_now_add stamps each row with its own time; the run's stamp is what tells this file's numbers apart.
        MemberIdentity.objects.filter(source=self.source, external_no__in=[row[3] for row in identities]).update(
            created_at=now)
        points_opening_entries_write(ledger, operator_id=actor_id)
        MemberEvent.objects.bulk_create(
            [MemberEvent(**dict(zip(_EVENT_COLUMNS[:4], row[:4], strict=True)), data=json.loads(row[4]),
                         created_at=row[5])
             for row in events], batch_size=1000)

    @staticmethod
    def _copy(cursor, table: str, columns: Iterable[str], rows: Iterable) -> None:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    # A first migration into an empty members table (no member yet, so no POS or desk reads one) takes the tables
    # it writes for itself until it commits, and drops the indexes the import does not read: one sort per index at
    # the end builds them much faster than a million inserts into each, one at a time. The unique indexes stay, so
    # every member number, ID number and legacy number is still checked as it is written, and the lookups of the
    # import use them. If a lock is not granted within _LOCK_WAIT, or the members table is not empty, the import
    # writes through the indexes.
    _LOCK_WAIT = "2s"
    _WRITTEN_TABLES = [model._meta.db_table for model in (Member, MemberIdentity, PointsEntry, MemberEvent,
                                                          MergeCandidate)]
    foreign_keys_dropped: list[tuple[str, str, str]] = []

    def empty_table_indexes_drop(self) -> list[str]:
        """If the members table is empty, lock the written tables and drop their non-unique indexes.

        Return what rebuilds them. The other written tables are empty too (each of their rows names a member).
        """
        if not self.copy or Member.objects.exists():
            return []
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT current_setting('lock_timeout')")
                lock_timeout = cursor.fetchone()[0]
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [self._LOCK_WAIT])
                for name in self._WRITTEN_TABLES:
                    table = connection.ops.quote_name(name)
                    cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                    cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")  # noqa: S608 (the model's table)
                    if cursor.fetchone()[0]:
                        raise _TableNotEmpty
                rebuild = secondary_indexes_drop(cursor, self._WRITTEN_TABLES)
                # The foreign keys from the written tables to the members, and from the members to their tiers,
                # are checked once, set-based, when they are added again at the end, not once per written row.
                # The tables holding them are empty too (a row there would name a member). Dropping a key locks
                # the table it points to as well: the tiers (read only with members, which are locked already),
                # never the stores or the users, which the rest of the system reads all the time.
                cursor.execute(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE contype = 'f' AND ((confrelid = %s::regclass AND conrelid = ANY(%s::regclass[])) "
                    "OR (conrelid = %s::regclass AND confrelid = %s::regclass)) ORDER BY conrelid, conname",
                    [Member._meta.db_table, text_array(self._WRITTEN_TABLES), Member._meta.db_table,
                     Tier._meta.db_table],
                )
                self.foreign_keys_dropped = cursor.fetchall()
                for table_name, name, _definition in self.foreign_keys_dropped:
                    cursor.execute(f"ALTER TABLE {table_name} DROP CONSTRAINT {connection.ops.quote_name(name)}")
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])
        except (_TableNotEmpty, OperationalError):
            # Rolled back to the savepoint: the lock is released, nothing was dropped.
            self.foreign_keys_dropped = []
            return []
        return rebuild

    @staticmethod
    def indexes_create(definitions: list[str]) -> None:
        with connection.cursor() as cursor:
            for definition in definitions:
                cursor.execute(definition)

    def foreign_keys_add(self) -> None:
        """Add back the foreign keys empty_table_indexes_drop dropped: one validating join each."""
        with connection.cursor() as cursor:
            for table_name, name, definition in self.foreign_keys_dropped:
                cursor.execute(
                    f"ALTER TABLE {table_name} ADD CONSTRAINT {connection.ops.quote_name(name)} {definition}"
                )
        self.foreign_keys_dropped = []

    def foreign_keys_immediate(self) -> list[str]:
        """Check the deferred foreign keys from and to the written tables after each statement; return their names.

        Checked at commit, millions of checks would run one after the other while nothing else can; checked
        after each COPY, they run while the next batch is read and checked. Checks still pending from earlier
        in an enclosing transaction run now (an index cannot be built on a table with pending checks).
        """
        if not self.copy:
            return []
        tables = self._WRITTEN_TABLES
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT conname FROM pg_constraint WHERE contype = 'f' AND condeferrable AND condeferred "
                "AND (conrelid = ANY(%s::regclass[]) OR confrelid = ANY(%s::regclass[])) ORDER BY conname",
                [text_array(tables), text_array(tables)],
            )
            names = [name for (name,) in cursor.fetchall()]
            self._constraints_set(cursor, names, "IMMEDIATE")
        return names

    def foreign_keys_deferred(self, names: list[str]) -> None:
        """Defer again what foreign_keys_immediate made immediate, as they were declared."""
        with connection.cursor() as cursor:
            self._constraints_set(cursor, names, "DEFERRED")

    @staticmethod
    def _constraints_set(cursor, names: list[str], mode: str) -> None:
        if names:
            cursor.execute(f"SET CONSTRAINTS {', '.join(connection.ops.quote_name(n) for n in names)} {mode}")

    # Members that share only a phone are listed for staff, never joined (CONTRACT section 4). The members of
    # this run that have a phone (created with one, or given one by a later row) are noted in a temporary table
    # batch by batch; one set-based pass at the end pairs each of them with the first PHONE_PAIRS_PER_MEMBER other
    # live holders of its phone, in primary-key order: what pairing per batch gives with a single batch, so the
    # outcome does not depend on the batch size.
    _PHONE_TABLE = "membership_import_phone_members"

    def phone_table_create(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self._PHONE_TABLE}")
            cursor.execute(f"CREATE TEMPORARY TABLE {self._PHONE_TABLE} (id bigint NOT NULL)")

    def _phone_members_note(self, pks: set[int]) -> None:
        if not pks:
            return
        with connection.cursor() as cursor:
            if self.copy:
                self._copy(cursor, self._PHONE_TABLE, ("id",), ((pk,) for pk in pks))
            else:
                cursor.executemany(f"INSERT INTO {self._PHONE_TABLE} (id) VALUES (%s)",  # noqa: S608 (constant)
                                   [(pk,) for pk in pks])

    def merge_candidates(self) -> None:
        least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
        insert = "INSERT INTO" if connection.vendor == "postgresql" else "INSERT OR IGNORE INTO"
        conflict = " ON CONFLICT DO NOTHING" if connection.vendor == "postgresql" else ""
        # The planner's guess for the pairs is billions of rows, which makes it compile the statement (JIT) for
        # seconds; its sorts of every phone holder want more than the default work_mem.
        with connection.cursor() as cursor, settings_local(cursor, jit="off", work_mem="128MB"):
            if connection.vendor == "postgresql":
                # Fresh statistics for the tables this run filled (a temporary table never gets any by itself):
                # planned with those of an empty members table, pairing a million members took twice as long.
                cursor.execute(f"ANALYZE {self._PHONE_TABLE}")
                cursor.execute(f"ANALYZE {Member._meta.db_table}")
            cursor.execute(
                f"""{insert} membership_mergecandidate (member_a_id, member_b_id, reason, status, detected_at)
                WITH noted AS (SELECT DISTINCT id FROM {self._PHONE_TABLE}),
                holders AS (
                    SELECT m.id, m.phone, ROW_NUMBER() OVER (PARTITION BY m.phone ORDER BY m.id) AS place
                    FROM membership_member m
                    WHERE m.status <> %s AND m.phone IN (
                        SELECT p.phone FROM membership_member p JOIN noted ON noted.id = p.id WHERE p.phone <> ''
                    )
                ),
                pairs AS (
                    SELECT DISTINCT {least}(x.id, h.id) AS a, {greatest}(x.id, h.id) AS b
                    FROM noted
                    JOIN holders x ON x.id = noted.id
                    JOIN holders h ON h.phone = x.phone AND h.id <> x.id
                        AND h.place <= CASE WHEN x.place <= %s THEN %s ELSE %s END
                )
                SELECT a, b, %s, %s, %s FROM pairs WHERE true{conflict}
                """,  # noqa: S608 (only constants are formatted in)
                [Member.Status.MERGED.value, PHONE_PAIRS_PER_MEMBER + 1, PHONE_PAIRS_PER_MEMBER + 1,
                 PHONE_PAIRS_PER_MEMBER, MergeCandidate.Reason.IMPORT_PHONE.value, MergeCandidate.Status.OPEN.value,
                 connection.ops.adapt_datetimefield_value(timezone.now())],
            )
            self.report.merge_candidates += max(cursor.rowcount, 0)
            cursor.execute(f"DROP TABLE {self._PHONE_TABLE}")


@contextmanager
def _young_garbage_only() -> Iterator[None]:
    """Collect reference cycles only among objects made since the last batch (gc.collect(1) after each one).

    Left to itself, the collector walks every object of the process (Django, the pinyin dictionaries) again
    and again as the rows make and drop millions of objects: a fifth of the import's time, for nothing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_DONE = object()


def _cleaned_batches(rows: Iterable[TableRow], reference: _Reference, size: int) -> Iterator[tuple[list, list]]:
    """Batches of rows with row_clean's answer for each, read and checked in a second thread.

    While the database writes batch N (the GIL is released while psycopg waits), the file is read and batch
    N+1 checked. The queue holds one batch, so memory stays flat. An error while reading (a bad file) is raised
    here, after the batches before it, as a plain loop would. Messages of rejected rows are made again by the
    caller's thread (the active language is per thread).
    """
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            iterator = iter(rows)
            while batch := list(islice(iterator, size)):
                if not put((batch, [row_clean(row, reference) for row in batch])):
                    return
        except BaseException as error:  # noqa: BLE001 (handed to the importing thread, raised there)
            put(error)
        put(_DONE)

    thread = threading.Thread(target=produce, name="members-import-reader", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def members_import(
    *,
    rows: Iterable[TableRow],
    source: str,
    dry_run: bool = False,
    skip_invalid: bool = False,
    actor=None,
    on_reject: Callable[[TableRow, Rejection], None] | None = None,
    on_row: Callable[[TableRow, str, str], None] | None = None,
    batch_size: int | None = None,
) -> ImportReport:
    """Import legacy member rows as members, identities and opening points, all or nothing.

    Rows with the same valid ID number become one member; a legacy number
    already imported from this source is left unchanged. Without skip_invalid,
    any invalid row means nothing is written; a dry run writes nothing either
    way. Raise MemberInvalid for a bad source name.
    """
    source = source_clean(source)
    with transaction.atomic(), _young_garbage_only():
        run = _Import(source=source, actor=actor, dry_run=dry_run, skip_invalid=skip_invalid,
                      on_reject=on_reject, on_row=on_row)
        run.phone_table_create()
        immediate = run.foreign_keys_immediate()
        dropped = run.empty_table_indexes_drop()
        batches = _cleaned_batches(rows, run.reference, batch_size or BATCH_SIZE)
        try:
            for batch, cleaned in batches:
                run.batch(batch, cleaned)
                gc.collect(1)
        finally:
            batches.close()  # stops the reading thread at once if a batch failed
        run.merge_candidates()
        run.indexes_create(dropped)
        run.foreign_keys_add()
        run.foreign_keys_deferred(immediate)
        report = run.report
        report.written = not dry_run and (skip_invalid or not report.rejected)
        if not report.written:
            transaction.set_rollback(True)
    return report
