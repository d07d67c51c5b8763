"""The one door through which a member's points and points owed move (DESIGN section 3).

Every change of Member.points or Member.points_debt, and every row of the points ledger (PointsEntry) and of the
points debt ledger (PointsDebtEntry), is written here: postings for one member (earn, cash-out, gifts,
adjustments, merges, returns), the credit of a purchase that also pays off what the member owes (on PostgreSQL
written in the same statement as the purchase itself, points_earn_joined), the nightly set-based expiry, and the
bulk paths of the legacy migration and the demo data. The balance on the member row is a cache of its ledger,
changed only in the transaction that appends the entry saying why. A posting's UPDATE is conditional: CHECK
constraints keep both columns at zero or above, POINTS_BALANCE_MAX keeps points far from the column's limit.

What a posting is for (limits, statuses, approvals, the rules of earning and expiry) is decided by the
service that calls in here. Member rows are locked with `_lock_members`, several of them in primary-key order.

The one place a balance is set outside this module: a member that the legacy import or the demo loader
creates is inserted with its opening balance in the member row itself, and its `migration` entry is written
here (points_opening_entries_write) in the same transaction; `check_ledgers` proves the two equal.

Each entry that a receiver hears of (earn, redeem, cash-out, gift, expire, adjust, reversal; not migration nor
merge moves) writes its webhook event (integrations.events) right after it, in the same transaction and under
the member's row lock, so a member's events follow its ledger. Nothing is built or read when nobody subscribes.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import F, Model
from django.utils import timezone
from django.utils.translation import gettext

from core.ledgers import cause_fields
from core.sql import execute_prepared, insert_returning_pk
from integrations.events import event_emit, events_emit_many, subscriptions_for
from integrations.models import EventType
from membership.errors import InsufficientPoints, PointsBalanceLimit
from membership.models import Member, PointsDebtEntry, PointsEntry

__all__ = [
    "POINTS_BALANCE_MAX",
    "PointsExpiryRun",
    "points_debt_move",
    "points_earn",
    "points_earn_joined",
    "points_history_append",
    "points_opening_balances_update",
    "points_opening_entries_write",
    "points_post",
    "points_redeem_joined",
]

# The most points one member can hold: far above any real balance, safely inside the 32-bit balance column,
# so a runaway posting is refused (limit_exceeded) instead of overflowing it.
POINTS_BALANCE_MAX = 1_000_000_000


# The ledger kinds a receiver hears of; migration and the moves of a merge are not events.
_ENTRY_EVENTS = {
    PointsEntry.Kind.EARN: EventType.POINTS_EARNED,
    PointsEntry.Kind.REDEEM: EventType.POINTS_REDEEMED,
    PointsEntry.Kind.CASH_OUT: EventType.POINTS_REDEEMED,
    PointsEntry.Kind.GIFT: EventType.POINTS_REDEEMED,
    PointsEntry.Kind.EXPIRE: EventType.POINTS_EXPIRED,
    PointsEntry.Kind.ADJUST: EventType.POINTS_ADJUSTED,
    PointsEntry.Kind.REVERSAL: EventType.POINTS_ADJUSTED,
}


def _entry_data(entry: PointsEntry, *, member_no: str, store_code: str | None) -> dict:
    return {
        "member_no": member_no,
        "entry_id": entry.pk,
        "kind": entry.kind,
        "points": entry.points,
        "balance": entry.balance_after,
        "store": store_code,
        "receipt_no": entry.receipt_no,
        "created_at": timezone.localtime(entry.created_at).isoformat(),
    }


def _entry_event_emit(member: Member, entry: PointsEntry, store) -> None:
    """The entry's webhook event, in the posting's transaction; nothing at all when nobody subscribes."""
    event_type = _ENTRY_EVENTS.get(entry.kind)
    if event_type is None or not subscriptions_for(event_type):
        return
    # A caller may hand in a member by key alone (Member(pk=...)): its number is read then, and only then.
    member_no = member.member_no or Member.objects.filter(pk=member.pk).values_list("member_no", flat=True).get()
    data = _entry_data(entry, member_no=member_no, store_code=store.code if store is not None else None)
    event_emit(event_type, subject=f"member:{member_no}", data=data, at=entry.created_at)


def _lock_members(*pks: int) -> list[Member]:
    """Lock member rows in primary-key order, so two transactions never deadlock."""
    locked = {m.pk: m for m in Member.objects.select_for_update().filter(pk__in=pks).order_by("pk")}
    return [locked[pk] for pk in pks]


# --- one member at a time -------------------------------------------------------------------------------


@transaction.atomic
def points_post(
    *,
    member: Member,
    points: int,
    kind: str,
    store=None,
    terminal=None,
    receipt_no: str = "",
    operator=None,
    reason: str = "",
    cause=None,
    legal_entity=None,
    created_at=None,
) -> PointsEntry:
    """Move a member's points and append the ledger row, in the caller's transaction.

    The balance changes by a conditional UPDATE, so concurrent postings never
    take it below zero nor above POINTS_BALANCE_MAX. Called outside a transaction, the balance and its ledger
    row still commit together. The legal entity that issued or honoured the
    points is the store's format's company unless given. Raise ValueError (points not a non-zero integer),
    InsufficientPoints, PointsBalanceLimit.
    """
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise ValueError("points must be a non-zero integer")
    if points > POINTS_BALANCE_MAX:
        raise PointsBalanceLimit(limit=f"{POINTS_BALANCE_MAX:,}")
    bound = {"points__gte": -points} if points < 0 else {"points__lte": POINTS_BALANCE_MAX - points}
    updated = Member.objects.filter(pk=member.pk, **bound).update(points=F("points") + points)
    if not updated:
        balance = Member.objects.filter(pk=member.pk).values_list("points", flat=True).first() or 0
        if points > 0:
            raise PointsBalanceLimit(limit=f"{POINTS_BALANCE_MAX:,}")
        raise InsufficientPoints(points=balance)
    balance = Member.objects.filter(pk=member.pk).values_list("points", flat=True).get()
    member.points = balance
    if legal_entity is None and store is not None:
        legal_entity = store.format.legal_entity
    entry = PointsEntry.objects.create(
        member=member,
        kind=kind,
        points=points,
        balance_after=balance,
        store=store,
        terminal=terminal,
        receipt_no=receipt_no,
        legal_entity=legal_entity,
        operator=operator,
        reason=reason[:200],
        **cause_fields(cause),
        **({"created_at": created_at} if created_at is not None else {}),
    )
    _entry_event_emit(member, entry, store)
    return entry


@transaction.atomic(savepoint=False)
def points_earn(
    *,
    member: Member,
    points: int,
    store=None,
    terminal=None,
    receipt_no: str = "",
    reason: str = "",
    cause=None,
    legal_entity_id: int | None = None,
    operator=None,
) -> PointsEntry:
    """Credit earned points with an `earn` entry, then pay off any points the member owes from the balance.

    Runs on every POS purchase, inside the caller's transaction (no savepoint of its own). The credit is
    one UPDATE ... RETURNING that also reads what the member owes, so the member needs no lock beforehand
    and a debt a concurrent return recorded is seen. The pay-off is a `reversal` entry and a `repaid` row
    in the points debt ledger. `legal_entity_id` is the company that issued the points.
    Return the earn entry. Raise ValueError (points not a positive integer), PointsBalanceLimit,
    Member.DoesNotExist.
    """
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise ValueError("points must be a positive integer")
    balance, debt = _member_points_change(member.pk, points=points)
    values = {
        "member": member, "store": store, "terminal": terminal, "receipt_no": receipt_no,
        "legal_entity_id": legal_entity_id, "operator": operator, **cause_fields(cause),
    }
    entry = PointsEntry(kind=PointsEntry.Kind.EARN, points=points, balance_after=balance, reason=reason[:200],
                        **values)
    insert_returning_pk(entry)
    _entry_event_emit(member, entry, store)
    member.points, member.points_debt = balance, debt
    if debt > 0 and balance > 0:
        _debt_pay_off(member, values=values, store=store)
    return entry


def _debt_pay_off(member: Member, *, values: dict, store) -> None:
    """Pay what the member owes off from the points just credited: a `reversal` entry and a `repaid` debt row.

    `member` carries its points and debt after the credit, whose UPDATE still locks the row; `values` are the
    credit's own (where, who, the cause) for the two rows.
    """
    pay = min(member.points, member.points_debt)
    note = gettext("paid off points owed")
    member.points, member.points_debt = _member_points_change(member.pk, points=-pay, debt=-pay)
    repaid = PointsEntry.objects.create(kind=PointsEntry.Kind.REVERSAL, points=-pay,
                                        balance_after=member.points, reason=note, **values)
    _entry_event_emit(member, repaid, store)
    PointsDebtEntry.objects.create(member=member, kind=PointsDebtEntry.Kind.REPAID, points=-pay,
                                   debt_after=member.points_debt, reason=note, cause_type=values["cause_type"],
                                   cause_id=values["cause_id"])


# One statement per INSERT a caller joins its credit to (a handful per process), written once.
_EARN_JOINED: dict[str, str] = {}


def _earn_joined_sql(insert_sql: str) -> str:
    sql = _EARN_JOINED.get(insert_sql)
    if sql is None:
        member_table = connection.ops.quote_name(Member._meta.db_table)
        entry_table = connection.ops.quote_name(PointsEntry._meta.db_table)
        # Each step reads the one before it, so a row the INSERT skipped moves nothing, and the member row is
        # locked after the cause's row is written, as points_earn locks it after its caller's INSERT.
        sql = (
            f"WITH cause AS ({insert_sql}), "  # noqa: S608 (table names from _meta, every value a parameter)
            f"moved AS (UPDATE {member_table} AS m SET points = m.points + %s FROM cause "
            "WHERE m.id = %s AND m.points <= %s RETURNING m.points, m.points_debt), "
            f"entry AS (INSERT INTO {entry_table} (member_id, kind, points, balance_after, store_id, terminal_id, "
            "receipt_no, legal_entity_id, operator_id, reason, cause_type_id, cause_id, created_at) "
            "SELECT %s, %s, %s, moved.points, %s, %s, %s, %s, %s, %s, %s, cause.id::text, %s FROM moved, cause "
            "RETURNING id) "
            "SELECT cause.id, moved.points, moved.points_debt, entry.id "
            "FROM cause LEFT JOIN moved ON true LEFT JOIN entry ON true"
        )
        _EARN_JOINED[insert_sql] = sql
    return sql


def points_earn_joined(
    *,
    insert_sql: str,
    insert_params: Sequence,
    cause_model: type[Model],
    member: Member,
    points: int,
    store=None,
    terminal=None,
    receipt_no: str = "",
    reason: str = "",
    legal_entity_id: int | None = None,
    operator=None,
) -> int | None:
    """points_earn for the row an INSERT writes, in the same statement as that INSERT (PostgreSQL only).

    `insert_sql` inserts one row of `cause_model` and ends with RETURNING "id"; it may skip its row (ON CONFLICT
    DO NOTHING), and then nothing moves. Otherwise the member's points go up, the `earn` entry (caused by that
    row) is appended and its webhook event written, as points_earn does, and a debt the UPDATE read is paid off
    with points_earn's own statements. Runs inside the caller's transaction. Return the new row's id, None when
    it was skipped. Raise ValueError (points not a positive integer), PointsBalanceLimit, Member.DoesNotExist.
    """
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise ValueError("points must be a positive integer")
    cause_type = ContentType.objects.get_for_model(cause_model)
    created_at = timezone.now()
    rows = execute_prepared(_earn_joined_sql(insert_sql), [
        *insert_params, points, member.pk, POINTS_BALANCE_MAX - points,
        member.pk, PointsEntry.Kind.EARN.value, points, store.pk if store is not None else None,
        terminal.pk if terminal is not None else None, receipt_no, legal_entity_id,
        operator.pk if operator is not None else None, reason[:200], cause_type.pk, created_at,
    ])
    row = rows[0] if rows else None
    if row is None:
        return None
    cause_id, balance, debt, entry_id = row
    if balance is None:
        if points > POINTS_BALANCE_MAX or Member.objects.filter(pk=member.pk).exists():
            raise PointsBalanceLimit(limit=f"{POINTS_BALANCE_MAX:,}")
        raise Member.DoesNotExist(f"member {member.pk}")
    member.points, member.points_debt = balance, debt
    if subscriptions_for(EventType.POINTS_EARNED):
        _entry_event_emit(member, PointsEntry(
            pk=entry_id, member=member, kind=PointsEntry.Kind.EARN, points=points, balance_after=balance,
            receipt_no=receipt_no, created_at=created_at,
        ), store)
    if debt > 0 and balance > 0:
        values = {
            "member": member, "store": store, "terminal": terminal, "receipt_no": receipt_no,
            "legal_entity_id": legal_entity_id, "operator": operator, "cause_type": cause_type,
            "cause_id": str(cause_id),
        }
        _debt_pay_off(member, values=values, store=store)
    return cause_id


_REDEEM_JOINED: str | None = None


def _redeem_joined_sql() -> str:
    global _REDEEM_JOINED
    if _REDEEM_JOINED is None:
        member_table = connection.ops.quote_name(Member._meta.db_table)
        entry_table = connection.ops.quote_name(PointsEntry._meta.db_table)
        # The sum is read by this statement's snapshot, taken after the caller locked the member: every entry of
        # this member that committed before is in it, and no other can be written until this transaction ends.
        _REDEEM_JOINED = (
            "WITH used AS (SELECT -COALESCE(SUM(points), 0) AS total "  # noqa: S608 (table names from _meta)
            f"FROM {entry_table} WHERE member_id = %s AND kind = %s AND store_id = %s AND receipt_no = %s), "
            f"moved AS (UPDATE {member_table} AS m SET points = m.points - %s FROM used "
            "WHERE m.id = %s AND m.points >= %s AND used.total + %s <= %s RETURNING m.points), "
            f"entry AS (INSERT INTO {entry_table} (member_id, kind, points, balance_after, store_id, terminal_id, "
            "receipt_no, legal_entity_id, operator_id, reason, cause_type_id, cause_id, created_at) "
            "SELECT %s, %s, %s, moved.points, %s, %s, %s, %s, %s, %s, NULL, '', %s FROM moved RETURNING id) "
            "SELECT used.total, moved.points, entry.id FROM used LEFT JOIN moved ON true LEFT JOIN entry ON true"
        )
    return _REDEEM_JOINED


def points_redeem_joined(
    *,
    member: Member,
    points: int,
    kind: str,
    store,
    receipt_no: str,
    receipt_max: int,
    terminal=None,
    legal_entity_id: int | None = None,
    operator=None,
    reason: str = "",
) -> PointsEntry | None:
    """points_post taking `points` (> 0) from a member the caller has locked, in one statement (PostgreSQL only),
    unless the points of `kind` already taken on this store's receipt and these would pass `receipt_max`, or the
    balance is short.

    The sum of the receipt's entries, the conditional UPDATE of the balance and the ledger row are one statement
    with data-modifying CTEs, and the entry's webhook event follows it as points_post writes it. Return the entry
    (its id, kind, points, balance after, receipt and time); None when refused, and then nothing was written, so
    the caller can find out why by its own checks in the same transaction. Raise ValueError (points not a
    positive integer).
    """
    if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
        raise ValueError("points must be a positive integer")
    created_at = timezone.now()
    store_id = store.pk if store is not None else None
    rows = execute_prepared(_redeem_joined_sql(), [
        member.pk, kind, store_id, receipt_no,
        points, member.pk, points, points, receipt_max,
        member.pk, kind, -points, store_id, terminal.pk if terminal is not None else None, receipt_no,
        legal_entity_id, operator.pk if operator is not None else None, reason[:200], created_at,
    ])
    _used, balance, entry_id = rows[0]
    if entry_id is None:
        return None
    member.points = balance
    entry = PointsEntry(
        pk=entry_id, member=member, kind=kind, points=-points, balance_after=balance, store=store,
        terminal=terminal, receipt_no=receipt_no, legal_entity_id=legal_entity_id, operator=operator,
        reason=reason[:200], created_at=created_at,
    )
    _entry_event_emit(member, entry, store)
    return entry


def _member_points_change(member_id: int, *, points: int, debt: int = 0) -> tuple[int, int]:
    """Add to a member's points (and debt) in one statement; return (points, debt) after.

    The CHECK constraints keep both at zero or above, the WHERE keeps points at most POINTS_BALANCE_MAX
    (compared as `points <= max - added`, which cannot overflow the column); the row stays locked until the
    transaction ends. Raise PointsBalanceLimit, Member.DoesNotExist.
    """
    if points > POINTS_BALANCE_MAX:
        raise PointsBalanceLimit(limit=f"{POINTS_BALANCE_MAX:,}")
    table = connection.ops.quote_name(Member._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET points = points + %s, points_debt = points_debt + %s "  # noqa: S608 - table name
            "WHERE id = %s AND points <= %s RETURNING points, points_debt",
            [points, debt, member_id, POINTS_BALANCE_MAX - max(points, 0)],
        )
        row = cursor.fetchone()
    if row is None:
        if Member.objects.filter(pk=member_id).exists():
            raise PointsBalanceLimit(limit=f"{POINTS_BALANCE_MAX:,}")
        raise Member.DoesNotExist(f"member {member_id}")
    return row


@transaction.atomic(savepoint=False)
def points_debt_move(*, member: Member, points: int, kind: str, reason: str, cause=None) -> PointsDebtEntry:
    """Change what a member owes and append the debt ledger row, in the caller's transaction.

    A conditional UPDATE keeps the debt from going below zero; `member` must be locked by the caller.
    Raise ValueError (points not a non-zero integer), RuntimeError (the debt changed under an unlocked member).
    """
    if not isinstance(points, int) or isinstance(points, bool) or points == 0:
        raise ValueError("points must be a non-zero integer")
    updated = Member.objects.filter(pk=member.pk, points_debt__gte=max(-points, 0)).update(
        points_debt=F("points_debt") + points
    )
    if not updated:
        raise RuntimeError(f"points owed by member {member.pk} changed under a transaction that did not lock it")
    member.points_debt += points
    return PointsDebtEntry.objects.create(
        member=member, kind=kind, points=points, debt_after=member.points_debt, reason=reason[:200],
        **cause_fields(cause),
    )


# --- expiry, set-based -----------------------------------------------------------------------------------


class PointsExpiryRun:
    """The statements of one expiry run over primary-key ranges of members (points_expire decides when and why).

    A member's expired points are `points - credits`, credits being the positive entries since `cutoff`
    (see membership/services/expiry.py for why that is FIFO).
    """

    def __init__(self, *, cutoff: datetime, reason: str, policy_type_id: int, policy_id: str):
        self.reason = reason[:200]
        self.policy_type_id = policy_type_id
        self.policy_id = policy_id
        self.cutoff = connection.ops.adapt_datetimefield_value(cutoff)
        self.member_table = connection.ops.quote_name(Member._meta.db_table)
        self.entry_table = connection.ops.quote_name(PointsEntry._meta.db_table)
        self.for_update = " FOR UPDATE OF m" if connection.features.has_select_for_update else ""

    def _expiring(self, cursor, low: int, high: int) -> list[tuple[int, int, int]]:
        """(member id, points expiring, balance) of the range's members with points past the cutoff."""
        cursor.execute(
            f"""
            SELECT m.id, m.points - COALESCE(c.valid, 0), m.points
            FROM {self.member_table} m
            LEFT JOIN (
                SELECT member_id, SUM(points) AS valid FROM {self.entry_table}
                WHERE member_id >= %s AND member_id < %s AND created_at >= %s AND points > 0
                GROUP BY member_id
            ) c ON c.member_id = m.id
            WHERE m.id >= %s AND m.id < %s AND m.points > COALESCE(c.valid, 0)
            ORDER BY m.id
            """,  # noqa: S608 (table names from _meta; every value is a parameter)
            [low, high, self.cutoff, low, high],
        )
        return cursor.fetchall()

    @transaction.atomic
    def run_range(self, low: int, high: int) -> int:
        """Take the expired points of members low <= id < high in one transaction; return the entries written.

        Raise RuntimeError when a balance moved under its lock (nothing of the range is then written).
        """
        with connection.cursor() as cursor:
            # Read without locks first: on every night but the first of the year nothing expires,
            # and the run then neither locks nor writes a single row.
            candidates = self._expiring(cursor, low, high)
            if not candidates:
                return 0
            ids, id_params = _rows_source([(row[0],) for row in candidates], ("id",))
            # The numbers come with the locks, for the events (see _rows_source for the source's text).
            cursor.execute(
                f"SELECT m.id, m.member_no FROM {self.member_table} m JOIN {ids} ON v.id = m.id"  # noqa: S608
                f" ORDER BY m.id{self.for_update}",
                id_params,
            )
            locked = dict(cursor.fetchall())
            # Read again under the locks: a posting that committed in between is counted, and none
            # can commit for these members until this range does. A member who only became a
            # candidate meanwhile (a back-dated import) is left for the next night.
            rows = [row for row in self._expiring(cursor, low, high) if row[0] in locked]
            if not rows:
                return 0
            source, params = _rows_source(rows, ("id", "expiring", "before"))
            moment = timezone.now()
            now = connection.ops.adapt_datetimefield_value(moment)
            # The entries' keys come back only when their events are wanted (the same statement either way).
            emit = bool(subscriptions_for(EventType.POINTS_EXPIRED))
            insert = f"""
                INSERT INTO {self.entry_table}
                    (member_id, kind, points, balance_after, receipt_no, reason, cause_type_id, cause_id, created_at)
                SELECT v.id, %s, -v.expiring, v.before - v.expiring, '', %s, %s, %s, %s FROM {source}
                """  # noqa: S608 (table names from _meta, placeholders from _rows_source)
            if emit:
                insert += " RETURNING id, member_id, points, balance_after"
            cursor.execute(
                insert, [PointsEntry.Kind.EXPIRE.value, self.reason, self.policy_type_id, self.policy_id, now, *params],
            )
            written = sorted(cursor.fetchall(), key=lambda row: row[1]) if emit else []
            # Conditional on the balance read under the lock, so it can never go below zero or
            # disagree with the balance_after just written.
            cursor.execute(
                f"""
                UPDATE {self.member_table} AS m SET points = m.points - v.expiring FROM {source}
                WHERE m.id = v.id AND m.points = v.before
                """,  # noqa: S608 (table names from _meta, placeholders from _rows_source)
                params,
            )
            if cursor.rowcount != len(rows):
                raise RuntimeError(f"points expiry: {len(rows) - cursor.rowcount} balances moved under the lock")
        if written:
            events_emit_many(EventType.POINTS_EXPIRED, (
                (f"member:{locked[member_id]}", _entry_data(
                    PointsEntry(pk=pk, kind=PointsEntry.Kind.EXPIRE, points=points, balance_after=balance,
                                receipt_no="", created_at=moment),
                    member_no=locked[member_id], store_code=None,
                ))
                for pk, member_id, points, balance in written
            ), at=moment)
        return len(rows)


def _rows_source(rows: list[tuple], columns: tuple[str, ...]) -> tuple[str, list]:
    """A FROM item `v` holding integer rows: unnest of one array per column on PostgreSQL (one
    parameter per column however many rows), a VALUES list elsewhere."""
    names = ", ".join(columns)
    if connection.vendor == "postgresql":
        arrays = ", ".join(["%s::bigint[]"] * len(columns))
        # Array literals joined here rather than lists adapted element by element: the same text, a
        # tenth of the time for thousands of members.
        literals = ["{" + ",".join(map(str, column)) + "}" for column in zip(*rows, strict=True)]
        return f"unnest({arrays}) AS v({names})", literals
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(rows))
    aliases = ", ".join(f"column{index} AS {name}" for index, name in enumerate(columns, start=1))
    source = f"(SELECT {aliases} FROM (VALUES {placeholders})) AS v"  # noqa: S608 (placeholders only)
    return source, [value for row in rows for value in row]


# --- bulk paths: the legacy migration and the demo data ---------------------------------------------------

_OPENING_COLUMNS = ("member_id", "kind", "points", "balance_after", "store_id", "receipt_no", "operator_id", "reason",
                    "cause_id", "created_at")


def points_opening_entries_write(
    entries: Iterable[tuple[int, int, int, int | None, str, datetime | str]], *, operator_id: int | None, cursor=None
) -> None:
    """Append opening balances (`migration` entries) in bulk, in the caller's transaction.

    Each entry is (member id, points, balance after, store id, reason, time). The caller sets the balances they
    lead to in the same transaction: in the row of a member it inserts, or with points_opening_balances_update.
    With a PostgreSQL `cursor` the rows go through COPY (a time may then be ISO text), otherwise bulk_create.
    """
    migration = PointsEntry.Kind.MIGRATION.value
    rows = ((member_id, migration, points, balance_after, store_id, "", operator_id, reason, "", created_at)
            for member_id, points, balance_after, store_id, reason, created_at in entries)
    if cursor is not None:
        with cursor.copy(f"COPY {PointsEntry._meta.db_table} ({', '.join(_OPENING_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    PointsEntry.objects.bulk_create(
        [PointsEntry(**dict(zip(_OPENING_COLUMNS, row, strict=True))) for row in rows], batch_size=1000)


def points_opening_balances_update(members: Sequence[Member], *, fields: Sequence[str] = ()) -> None:
    """Set the points of existing members to what their opening entries make them, in the caller's transaction.

    Each Member carries its primary key and the balance after its last opening entry (written with
    points_opening_entries_write in the same transaction); the rows must be locked. `fields` are other columns the
    caller refreshes in the same statement.
    """
    if members:
        Member.objects.bulk_update(members, ["points", *fields], batch_size=1000)


def points_history_append(*, entries: Sequence[dict], balances: dict[int, int]) -> list[PointsEntry]:
    """Append past entries in bulk for members nothing else uses yet (demo data), and bring their balances in step.

    `entries` hold the values of each entry but its balance after; `balances` maps every member concerned to its
    points before them. A member's entries are appended in time order, each with the balance after it, and a
    member whose balance moved gets it in one UPDATE. Return the entries, saved, in the order given.
    """
    made = [PointsEntry(balance_after=0, **values) for values in entries]
    in_time_order = sorted(made, key=lambda entry: (entry.member_id, entry.created_at))
    after = dict(balances)
    for entry in in_time_order:
        after[entry.member_id] += entry.points
        entry.balance_after = after[entry.member_id]
    PointsEntry.objects.bulk_create(in_time_order, batch_size=1000)
    for member_id, points in after.items():
        if points != balances[member_id]:
            Member.objects.filter(pk=member_id).update(points=points)
    return made
