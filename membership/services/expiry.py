"""Points expiry: points earned in year N expire at the end of year N + PointsPolicy.expiry_years.

The nightly run on or after 1 January of year N + expiry_years + 1 takes them
with one `expire` entry per member. Which points are old follows FIFO: a
member spends their oldest points first, so what is left of the balance is
made of the most recent credits, and only the part of the balance that recent
credits cannot account for has expired.
"""

from datetime import date, datetime

from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Max, Min, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

from membership.models import Member, PointsEntry, PointsPolicy

__all__ = ["points_credited_since", "points_expire", "points_expiry_cutoff"]


def points_expiry_cutoff(*, run_on: date, expiry_years: int) -> datetime:
    """The start (local midnight, 1 January) of the oldest year whose points are still valid on `run_on`.

    With the default of one year, the run on 1 January 2026 keeps what was
    credited from 1 January 2025 on and takes what is older.
    """
    year = max(1, run_on.year - expiry_years)
    return timezone.make_aware(datetime(year, 1, 1), timezone.get_default_timezone())


def points_credited_since(cutoff: datetime) -> QuerySet:
    """The ledger entries that count as credits still valid after `cutoff`: every positive entry since then.

    Every kind that brings points counts from the day it was booked: earn
    (a purchase, or pending points released after the return window),
    migration (an opening balance starts its validity at the import), adjust
    (an approved correction), merge_in (points moved by a merge start again
    rather than being lost to the bookkeeping of the merge) and a positive
    reversal (points given back). Negative entries, including returns that
    take points back, are spending and come out of the oldest points first.
    Counting this way never takes a point that is still valid: it is the
    smallest expired remainder any order of spending could leave, so where
    the ledger cannot tell (a return of a recent purchase), the member keeps
    the benefit of the doubt.
    """
    return PointsEntry.objects.filter(points__gt=0, created_at__gte=cutoff)


def points_expire(*, today: date | None = None, batch: int = 5000) -> int:
    """Take points past their expiry off every member's balance; return the number of expire entries written.

    Members are handled in primary-key ranges of `batch`, each range in its
    own transaction: one statement computes what expires for the whole range;
    when something does, those members are locked (in primary-key order), the
    same statement reads it again under the locks, one statement appends the
    `expire` entries and one conditional UPDATE lowers the balances.

    A member's expired points are `max(0, points - credits)` where credits is
    the sum of `points_credited_since(cutoff)`; afterwards the
    balance equals those credits, so running again the same day (or any day
    until the next year's cutoff) takes nothing more. Nothing expires while
    PointsPolicy.expiry_enabled is off.

    Expired points are not attributed to a legal entity: under FIFO they are
    the remainder of several issuers' credits, and settlement follows the
    issuing entries.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if connection.vendor != "postgresql":
        # Three parameters per member in a VALUES list: stay well under SQLite's 32,766.
        batch = min(batch, 5000)
    policy = PointsPolicy.current()
    if not policy.expiry_enabled:
        return 0
    today = today or timezone.localdate()
    cutoff = points_expiry_cutoff(run_on=today, expiry_years=policy.expiry_years)
    bounds = Member.objects.aggregate(first=Min("pk"), last=Max("pk"))
    if bounds["first"] is None:
        return 0
    expiry = _ExpiryRun(
        cutoff=cutoff,
        reason=gettext("points earned before %(year)s expired") % {"year": cutoff.year},
        policy_type_id=ContentType.objects.get_for_model(PointsPolicy).pk,
        policy_id=str(policy.pk),
    )
    written = 0
    for low in range(bounds["first"], bounds["last"] + 1, batch):
        written += expiry.run_range(low, low + batch)
    return written


class _ExpiryRun:
    """The statements of one expiry run over primary-key ranges of members."""

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
        with connection.cursor() as cursor:
            # Read without locks first: on every night but the first of the year nothing expires,
            # and the run then neither locks nor writes a single row.
            candidates = self._expiring(cursor, low, high)
            if not candidates:
                return 0
            ids, id_params = _rows_source([(row[0],) for row in candidates], ("id",))
            cursor.execute(
                f"SELECT m.id FROM {self.member_table} m JOIN {ids} ON v.id = m.id"  # noqa: S608 (see _rows_source)
                f" ORDER BY m.id{self.for_update}",
                id_params,
            )
            locked = {row[0] for row in cursor.fetchall()}
            # Read again under the locks: a posting that committed in between is counted, and none
            # can commit for these members until this range does. A member who only became a
            # candidate meanwhile (a back-dated import) is left for the next night.
            rows = [row for row in self._expiring(cursor, low, high) if row[0] in locked]
            if not rows:
                return 0
            source, params = _rows_source(rows, ("id", "expiring", "before"))
            now = connection.ops.adapt_datetimefield_value(timezone.now())
            cursor.execute(
                f"""
                INSERT INTO {self.entry_table}
                    (member_id, kind, points, balance_after, receipt_no, reason, cause_type_id, cause_id, created_at)
                SELECT v.id, %s, -v.expiring, v.before - v.expiring, '', %s, %s, %s, %s FROM {source}
                """,  # noqa: S608 (table names from _meta, placeholders from _rows_source)
                [PointsEntry.Kind.EXPIRE.value, self.reason, self.policy_type_id, self.policy_id, now, *params],
            )
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
