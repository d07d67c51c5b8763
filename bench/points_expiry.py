"""Benchmark: the nightly points expiry over a million members, against bare set-based SQL over the same rows.

Creates a fresh PostgreSQL database (retail_bench_expiry), migrates it, and
COPYs a million members and their points ledger, spread over the three years
before the run date (earnings and spending; every member's points equal the
sum of their entries and the balance after their last one). It then times, on
a copy of that database (CREATE DATABASE ... TEMPLATE: both start from the same pages),

  anchor 1: one bare aggregate of the credits still valid, per member
            (SELECT member_id, sum(points) ... WHERE created_at >= cutoff AND points > 0 GROUP BY member_id);
  anchor 2: the whole expiry as one bare statement (the aggregate, INSERT of the expire entries, UPDATE of the
            balances) in one transaction;

and on the database itself membership.services.points_expire(today=1 January), then the same run again (what
every other night costs: nothing is left to expire).

    .venv/bin/python bench/points_expiry.py                   # 1,000,000 members (the target: at most 60 s)
    .venv/bin/python bench/points_expiry.py --members 100000  # a quick run

Afterwards it checks the outcome: the entries written are the members the
anchor found, the points taken are the points the anchor computed, the sum of
all balances equals the sum of the ledger, and for a sample of member ranges
every balance equals the sum of its entries and the balance after its last
one. The database is dropped at the end unless --keep.
"""

import argparse
import os
import random
import sys
import time
from datetime import date, datetime, timedelta

from _support import SERVER, bench_database, migrate_with_stores

DATABASE = "retail_bench_expiry"
RUN_ON = date(2026, 1, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="Members to load (default 1,000,000).")
    parser.add_argument("--batch", type=int, default=5000, help="Members per transaction of the expiry run.")
    parser.add_argument("--server", default=SERVER,
                        help="PostgreSQL server URL without a database name.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()
    if args.members < 100:
        parser.error("--members must be at least 100")

    with bench_database(args.server, DATABASE, keep=args.keep) as server:
        return run(server=server, members=args.members, batch=args.batch)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def run(*, server: str, members: int, batch: int) -> int:

    from membership.services import points_expire, points_expiry_cutoff

    started = time.perf_counter()
    migrate_with_stores()
    print(f"migrated and seeded stores in {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    entries = load(count=members)
    elapsed = time.perf_counter() - started
    print(f"loaded {members:,} members and {entries:,} ledger entries in {elapsed:.1f}s")

    cutoff = points_expiry_cutoff(run_on=RUN_ON, expiry_years=1)
    print(f"run on {RUN_ON}: points credited before {cutoff:%Y-%m-%d %H:%M %Z} expire | load average {load_average()}")

    anchor_read, anchor_whole, anchor_count, anchor_points = measure_anchors(server=server, cutoff=cutoff)

    load_before = load_average()
    started = time.perf_counter()
    written = points_expire(today=RUN_ON, batch=batch)
    first_run = time.perf_counter() - started
    started = time.perf_counter()
    again = points_expire(today=RUN_ON, batch=batch)
    second_run = time.perf_counter() - started
    print(f"points_expire: {written:,} expire entries in {first_run:.2f}s "
          f"(ratio {first_run / anchor_whole:.2f} to anchor 2, {first_run / anchor_read:.1f} to anchor 1) | "
          f"load average {load_before} -> {load_average()}")
    print(f"points_expire again (a night with nothing left to expire): {again} entries in {second_run:.2f}s")

    failures = check(cutoff=cutoff, written=written, expected=(anchor_count, anchor_points or 0), again=again)
    if first_run > 60:
        print("above the 60 s target")
    print("outcome: " + ("; ".join(failures) if failures else "consistent"))
    return 1 if failures else 0


def measure_anchors(*, server: str, cutoff) -> tuple[float, float, int, int]:
    """Time both anchors on a copy of the loaded database, so the run starts from the very same state.

    (Run here, the rolled-back anchor would leave a million dead row versions behind, and the VACUUM
    that clears them would leave free space in pages the run then updates.)
    """
    import psycopg
    from django.db import connections
    from django.utils import timezone

    connections.close_all()
    copy = f"{DATABASE}_anchor"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {copy} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {copy} TEMPLATE {DATABASE} STRATEGY FILE_COPY")
    try:
        with psycopg.connect(f"{server}/{copy}", autocommit=True) as anchor:
            anchor.execute("VACUUM ANALYZE")
            started = time.perf_counter()
            valid_rows = len(anchor.execute(
                "SELECT member_id, sum(points) FROM membership_pointsentry WHERE created_at >= %s AND points > 0 "
                "GROUP BY member_id",
                [cutoff],
            ).fetchall())
            anchor_read = time.perf_counter() - started
            print(f"anchor 1 (aggregate of valid credits, {valid_rows:,} members): {anchor_read:.2f}s")
            started = time.perf_counter()
            with anchor.transaction():
                count, points = anchor.execute(ANCHOR_STATEMENT, [cutoff, timezone.now()]).fetchone()
            anchor_whole = time.perf_counter() - started
            print(f"anchor 2 (the whole expiry as one statement: {count:,} members, {points or 0:,} points, "
                  f"committed): {anchor_whole:.2f}s")
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {copy} WITH (FORCE)")
    return anchor_read, anchor_whole, count, points or 0


ANCHOR_STATEMENT = """
    WITH expiring AS (
        SELECT m.id, m.points - COALESCE(c.valid, 0) AS points, m.points AS before
        FROM membership_member m
        LEFT JOIN (
            SELECT member_id, sum(points) AS valid FROM membership_pointsentry
            WHERE created_at >= %s AND points > 0 GROUP BY member_id
        ) c ON c.member_id = m.id
        WHERE m.points > COALESCE(c.valid, 0)
    ), inserted AS (
        INSERT INTO membership_pointsentry (member_id, kind, points, balance_after, receipt_no, reason, cause_id,
                                            created_at)
        SELECT id, 'expire', -points, before - points, '', 'anchor', '', %s FROM expiring
    ), updated AS (
        UPDATE membership_member m SET points = m.points - e.points FROM expiring e WHERE m.id = e.id
    )
    SELECT count(*), sum(points) FROM expiring
"""


def check(*, cutoff, written: int, expected: tuple[int, int], again: int) -> list[str]:
    from django.db import connection

    failures = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), -COALESCE(sum(points), 0) FROM membership_pointsentry WHERE kind = 'expire'")
        entries, points = cursor.fetchone()
        if (written, entries, points) != (expected[0], expected[0], expected[1]):
            failures.append(f"expired {written} members / {entries} entries / {points} points, "
                            f"the anchor {expected[0]} / {expected[1]}")
        if again:
            failures.append(f"the second run wrote {again} entries")
        cursor.execute("SELECT (SELECT sum(points) FROM membership_member), "
                       "(SELECT sum(points) FROM membership_pointsentry)")
        balances, ledger = cursor.fetchone()
        print(f"sum of balances {balances:,}, sum of the ledger {ledger:,}")
        if balances != ledger:
            failures.append("the sum of balances differs from the sum of the ledger")
        cursor.execute(
            """
            SELECT count(*) FROM membership_member m
            LEFT JOIN (SELECT member_id, sum(points) AS valid FROM membership_pointsentry
                       WHERE created_at >= %s AND points > 0 GROUP BY member_id) c ON c.member_id = m.id
            WHERE m.points > COALESCE(c.valid, 0)
            """,
            [cutoff],
        )
        left = cursor.fetchone()[0]
        if left:
            failures.append(f"{left} members still hold points older than the cutoff")
        cursor.execute("SELECT min(id), max(id) FROM membership_member")
        first, last = cursor.fetchone()
    rng = random.Random(7)
    checked = differences = 0
    for _sample in range(20):
        low = rng.randint(first, max(first, last - 1000))
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT count(*), count(*) FILTER (WHERE m.points <> COALESCE(s.total, 0)
                                                  OR m.points <> COALESCE(l.balance_after, 0))
                FROM membership_member m
                LEFT JOIN (SELECT member_id, sum(points) AS total, max(id) AS last_id FROM membership_pointsentry
                           WHERE member_id >= %s AND member_id < %s GROUP BY member_id) s ON s.member_id = m.id
                LEFT JOIN membership_pointsentry l ON l.id = s.last_id
                WHERE m.id >= %s AND m.id < %s
                """,
                [low, low + 1000, low, low + 1000],
            )
            count, wrong = cursor.fetchone()
        checked += count
        differences += wrong
    print(f"sample check (balance = sum of entries = balance after the last): {checked:,} members, "
          f"{differences} differences")
    if differences:
        failures.append(f"{differences} sampled members differ from their ledger")
    return failures


# --- loading ------------------------------------------------------------------------------------


def copy_text(value) -> str:
    """One value in COPY's text format."""
    if value is None:
        return r"\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def template_columns(instance, varying: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The model's columns with `varying` first, and the COPY text of every other column as a new model
    row would hold it (columns left to a database default are not written)."""
    from django.db import connection
    from django.db.models.expressions import DatabaseDefault

    fixed_columns, fixed_values = [], []
    for field in instance._meta.concrete_fields:
        if field.primary_key or field.column in varying:
            continue
        value = getattr(instance, field.attname)
        if isinstance(value, DatabaseDefault):
            continue
        fixed_columns.append(field.column)
        fixed_values.append(copy_text(field.get_db_prep_save(value, connection)))
    return [*varying, *fixed_columns], fixed_values


def load(*, count: int) -> int:
    """COPY `count` members and their ledger; return the number of entries."""
    from django.db import connection, transaction
    from django.utils import timezone

    from membership.models import Member, PointsEntry, Tier
    from stores.models import Store

    rng = random.Random(20260101)
    tz = timezone.get_default_timezone()
    start = datetime(RUN_ON.year - 3, 1, 1, tzinfo=tz)
    span = int((datetime(RUN_ON.year, 1, 1, tzinfo=tz) - start).total_seconds())
    now = timezone.now()
    stores = [(store.pk, store.format.legal_entity_id) for store in Store.objects.select_related("format")]
    tier = Tier.default()

    member_columns, member_fixed = template_columns(
        Member(name="会员", tier=tier, registered_at=start, updated_at=now, member_no="0"),
        ("member_no", "name", "points"),
    )
    entry_columns, entry_fixed = template_columns(
        PointsEntry(member_id=1, kind="earn", points=1, balance_after=1, created_at=now),
        ("member_id", "kind", "points", "balance_after", "store_id", "legal_entity_id", "receipt_no", "created_at"),
    )
    member_tail = "\t" + "\t".join(member_fixed) + "\n" if member_fixed else "\n"
    entry_tail = "\t" + "\t".join(entry_fixed) + "\n" if entry_fixed else "\n"

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(max(id), 0) FROM membership_member")
        first_id = cursor.fetchone()[0] + 1
        dropped = []
        for table in ("membership_member", "membership_pointsentry"):
            # Secondary indexes are built once after the load: faster than maintaining them row by row.
            cursor.execute(
                """
                SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                WHERE x.indrelid = %s::regclass
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
                """,
                [table],
            )
            dropped.extend(cursor.fetchall())
        for name, _definition in dropped:
            cursor.execute(f'DROP INDEX "{name}"')
        # Every id written exists (stores, legal entities, the members loaded first); the foreign-key
        # triggers would only check that once per row.
        cursor.execute("SET LOCAL session_replication_role = replica")
        raw = cursor.cursor
        balances: list[int] = []
        entries = 0
        with raw.copy(f"COPY membership_pointsentry ({', '.join(entry_columns)}) FROM STDIN") as copy:
            buffer: list[str] = []
            receipt = 0
            for index in range(count):
                member_id = first_id + index
                moments = sorted(rng.randrange(span) for _ in range(rng.choice(ENTRY_COUNTS)))
                before = 0
                for moment in moments:
                    # A random balance after each movement: earnings and spending, never below zero.
                    after = rng.randrange(3000)
                    if after == before:
                        after += 1
                    points = after - before
                    store_id, entity_id = stores[rng.randrange(len(stores))]
                    receipt += 1
                    buffer.append(
                        f"{member_id}\t{'earn' if points > 0 else 'redeem'}\t{points}\t{after}\t{store_id}\t"
                        f"{entity_id}\tR{receipt}\t{(start + timedelta(seconds=moment)).isoformat()}{entry_tail}"
                    )
                    before = after
                entries += len(moments)
                balances.append(before)
                if len(buffer) >= 20_000:
                    copy.write("".join(buffer))
                    buffer.clear()
            copy.write("".join(buffer))
        with raw.copy(f"COPY membership_member (id, {', '.join(member_columns)}) FROM STDIN") as copy:
            buffer = []
            for index, points in enumerate(balances):
                buffer.append(f"{first_id + index}\t8{first_id + index:011d}\t会员{index}\t{points}{member_tail}")
                if len(buffer) >= 20_000:
                    copy.write("".join(buffer))
                    buffer.clear()
            copy.write("".join(buffer))
        cursor.execute("SET LOCAL session_replication_role = origin")
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('membership_member', 'id'), (SELECT max(id) FROM membership_member))"
        )
        for _name, definition in dropped:
            cursor.execute(definition)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE membership_member")
        cursor.execute("VACUUM ANALYZE membership_pointsentry")
    return entries


# Entries per member over the three years: from one to a dozen, about five on average.
ENTRY_COUNTS = (1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 8, 9, 10, 12)


if __name__ == "__main__":
    sys.exit(main())
