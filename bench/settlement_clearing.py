"""Benchmark: the daily clearing run over one day of 1,000,000 ledger rows against its bare GROUP BY.

Creates a fresh PostgreSQL database (retail_bench_settlement_clearing), migrates it, loads the reference stores,
then generates in SQL (INSERT ... SELECT over generate_series, seeded with setseed, foreign-key triggers off and
secondary indexes rebuilt at the end, then VACUUM ANALYZE):

- cards (one for every 10 rows of the day) sold at every store, the issuer being the selling store's company,
  and members (as many, the columns a member needs and nothing more);
- the day (yesterday): --rows ledger rows, 70% card ledger rows at every store (loads 8%, payments 80%, refunds
  6%, reversals 4%, adjustments 2%, the store's company as the honouring one) and 30% points entries (earned
  70%, redeemed 15%, turned into cash 5%, gifts 3%, expired 5%, reversals 2%), between 08:00 and 22:00;
- the history before it: --history-rows more, half card payments and half points earned, over the 365 days
  before the day (what the pool share of redeemed points reads, and what the day's indexes must skip).

It then times, from the same warm cache and the median of --rounds each:

- the product: `settlement.services.clearing.clearing_day_run(day=)` (the day's earlier lines deleted, the
  groups computed in the database, the rules and rates applied, the lines written, the run recorded);
- the anchor: the bare GROUP BYs of the same data on a raw psycopg connection: card ledger rows of the day
  joined to their cards by (kind, issuer, honourer); points entries of the day by (kind, company); points
  earned in the 365 days up to the day by company (the pool share);

and prints the times, the totals both found (which must agree), the ratio and whether the target of the issue
(at most 3x the bare GROUP BY) is met. Coupons and vouchers are left empty: a day has a handful of them.

    .venv/bin/python bench/settlement_clearing.py                               # 1,000,000 rows of the day
    .venv/bin/python bench/settlement_clearing.py --rows 100000 --history-rows 200000   # a quick run
    .venv/bin/python bench/settlement_clearing.py --keep     # keep the database for ...
    .venv/bin/python bench/settlement_clearing.py --reuse    # ... measuring again without generating

The database is dropped at the end unless --keep (or --reuse).
"""

import argparse
import os
import statistics
import sys
import time
from datetime import date, datetime, timedelta
from decimal import Decimal

from _support import ROOT, SERVER, bench_database, migrate_with_stores
from settlement_reconcile import cards_insert, django_on_existing, store_arrays

DATABASE = "retail_bench_settlement_clearing"
TARGET_RATIO = 3
CARD_KINDS = ("load", "debit", "refund", "reverse", "adjust")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Ledger rows of the day (default 1,000,000).")
    parser.add_argument("--history-rows", type=int, default=2_000_000,
                        help="Ledger rows of the 365 days before it (default 2,000,000).")
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server URL without a database name.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of each (default 3); the median is kept.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--reuse", action="store_true",
                        help="Measure on the database a previous --keep run left, without generating (kept too).")
    args = parser.parse_args()
    if args.rows < 1000 or args.history_rows < 0:
        parser.error("--rows must be at least 1,000 and --history-rows 0 or more")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.reuse:
        django_on_existing(args.server.rstrip("/"), DATABASE, environ={})
        return run(args, generate_data=False)
    with bench_database(args.server, DATABASE, keep=args.keep):
        return run(args, generate_data=True)


def run(args, *, generate_data: bool) -> int:
    from django.db import connection
    from django.utils import timezone

    from cards.models import CardLedgerEntry
    from membership.models import PointsEntry

    day = timezone.localdate() - timedelta(days=1)
    if generate_data:
        started = time.perf_counter()
        migrate_with_stores()
        print(f"migrated and seeded stores in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        generate(rows=args.rows, history_rows=args.history_rows, day=day)
        print(f"generated {args.rows:,} rows of the day and {args.history_rows:,} before it in "
              f"{time.perf_counter() - started:.1f}s")
    else:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT max(created_at) FROM {CardLedgerEntry._meta.db_table}")
            day = timezone.localdate(cursor.fetchone()[0])
    start, end = day_bounds(day)
    with connection.cursor() as cursor:
        # Every measurement below starts from the same warm cache.
        counts = []
        for model in (CardLedgerEntry, PointsEntry):
            cursor.execute(f"SELECT count(*) FILTER (WHERE created_at >= %s AND created_at < %s), count(*) "
                           f"FROM {model._meta.db_table}", [start, end])
            counts.append(cursor.fetchone())
    print(f"database: {counts[0][1]:,} card ledger rows ({counts[0][0]:,} on the day), {counts[1][1]:,} points "
          f"entries ({counts[1][0]:,} on the day); the day: {day:%Y-%m-%d}")

    load_start = os.getloadavg()[0]
    anchor_times, bare = [], None
    for _round in range(args.rounds):
        seconds, bare = bare_group_by(day)
        anchor_times.append(seconds)
    anchor = statistics.median(anchor_times)
    print(f"anchor (bare GROUP BYs): median {anchor:.2f}s (rounds {' '.join(f'{t:.2f}' for t in anchor_times)}); "
          f"{bare}")

    from settlement.services.clearing import clearing_day_run

    product_times, clearing_run = [], None
    for _round in range(args.rounds):
        started = time.perf_counter()
        clearing_run = clearing_day_run(day=day)
        product_times.append(time.perf_counter() - started)
    product = statistics.median(product_times)
    found = product_totals(clearing_run)
    print(f"clearing_day_run: median {product:.2f}s (rounds {' '.join(f'{t:.2f}' for t in product_times)}); "
          f"{clearing_run.lines} lines, {clearing_run.rows_read:,} rows read; {found}")
    ratio = product / anchor
    print(f"ratio product/anchor: {ratio:.2f}"
          + (f" | meets the target of {TARGET_RATIO}x" if ratio <= TARGET_RATIO else f" | above {TARGET_RATIO}x"))

    failures = 0
    if clearing_run.status != clearing_run.Status.DONE:
        print(f"FAILED: the run ended {clearing_run.status}: {clearing_run.error}")
        failures += 1
    for key, value in bare.items():
        if found.get(key) != value:
            print(f"FAILED: {key}: the bare SQL found {value}, the product {found.get(key)}")
            failures += 1
    print(f"load average {load_start:.2f} at the start, "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())} at the end, on {os.cpu_count()} cores")
    return 1 if failures else 0


def day_bounds(day: date) -> tuple[datetime, datetime]:
    from django.utils import timezone

    start = timezone.make_aware(datetime.combine(day, datetime.min.time()))
    return start, timezone.make_aware(datetime.combine(day + timedelta(days=1), datetime.min.time()))


# --- the anchor -----------------------------------------------------------------------------------------

BARE_CARDS = """
    SELECT e.kind, c.issuer_id, e.legal_entity_id, count(*), sum(e.amount)
    FROM cards_cardledgerentry e JOIN cards_card c ON c.id = e.card_id
    WHERE e.created_at >= %(start)s AND e.created_at < %(end)s AND e.kind = ANY(%(kinds)s)
    GROUP BY 1, 2, 3
"""
BARE_POINTS = """
    SELECT kind, legal_entity_id, count(*), sum(points)
    FROM membership_pointsentry
    WHERE created_at >= %(start)s AND created_at < %(end)s
    GROUP BY 1, 2
"""
BARE_POOL = """
    SELECT legal_entity_id, sum(points)
    FROM membership_pointsentry
    WHERE created_at >= %(pool_start)s AND created_at < %(end)s AND kind IN ('earn', 'reversal')
    GROUP BY 1
"""


def bare_group_by(day: date) -> tuple[float, dict]:
    """The three GROUP BYs on raw psycopg; the time and the totals a clearing run must agree with."""
    import psycopg

    start, end = day_bounds(day)
    pool_start, _end = day_bounds(day - timedelta(days=364))
    params = {"start": start, "end": end, "pool_start": pool_start, "kinds": list(CARD_KINDS)}
    with psycopg.connect(os.environ["DATABASE_URL"]) as raw:
        started = time.perf_counter()
        cards = raw.execute(BARE_CARDS, params).fetchall()
        points = raw.execute(BARE_POINTS, params).fetchall()
        raw.execute(BARE_POOL, params).fetchall()
        seconds = time.perf_counter() - started
    totals = {}
    for kind, _issuer, _honourer, count, amount in cards:
        key = f"card_{kind}"
        totals[key] = totals.get(key, (0, Decimal("0.00")))
        totals[key] = (totals[key][0] + count, totals[key][1] - amount if kind != "load" else totals[key][1] + amount)
    redeemed = sum(-total for kind, _entity, _count, total in points if kind in ("redeem", "gift"))
    earned = sum(total for kind, _entity, _count, total in points if kind in ("earn", "reversal"))
    return seconds, {**{key: value for key, value in sorted(totals.items())}, "points_earn": earned,
                     "points_redeem": redeemed}


def product_totals(clearing_run) -> dict:
    """The run's lines added up as the bare totals are: (count, gross) per card kind, points per points kind."""
    from django.db.models import Sum

    from settlement.models import ClearingLine

    lines = ClearingLine.objects.filter(run=clearing_run)
    totals = {}
    for kind in CARD_KINDS:
        summed = lines.filter(kind=f"card_{kind}").aggregate(count=Sum("count"), gross=Sum("gross"))
        if summed["count"]:
            totals[f"card_{kind}"] = (summed["count"], summed["gross"])
    for kind in ("points_earn", "points_redeem"):
        totals[kind] = lines.filter(kind=kind).aggregate(points=Sum("points"))["points"] or 0
    return totals


# --- generating the data --------------------------------------------------------------------------------


def members_insert(cursor, *, members: int, now, stores: list) -> int:
    """`members` active members with the columns a member needs; return the first one's id."""
    from membership.models import Member, Tier

    store_ids, _entities = store_arrays(stores)
    table = Member._meta.db_table
    tier = Tier.objects.get(code="NORMAL").pk
    cursor.execute(
        f"""
        INSERT INTO {table} (
            member_no, name, name_initials, gender, birth_date, id_type, id_number_digest, id_number_sealed,
            id_number_masked, phone, family_phone, address, contact_channel, marketing_consent,
            marketing_consent_at, tier_id, tier_downgrade_on, paid_tier_id, paid_tier_until, points,
            points_debt, registered_store_id, registered_channel, partner_id, registered_by_id,
            registered_at, status, merged_into_id, notes, updated_at)
        SELECT '9' || lpad(g::text, 11, '0'), '会员' || g, 'hy', 'U', NULL, 'none', NULL, '', '', '', '', '', 'sms',
               false, NULL, %(tier)s, NULL, NULL, NULL, 100000, 0, ({store_ids})[1 + (g %% {len(stores)})],
               'desk', NULL, NULL, %(now)s, 'active', NULL, '', %(now)s
        FROM generate_series(1, %(members)s) g
        """,
        {"members": members, "now": now - timedelta(days=400), "tier": tier},
    )
    cursor.execute(f"SELECT min(id) FROM {table}")
    return cursor.fetchone()[0]


def generate(*, rows: int, history_rows: int, day: date) -> None:
    """Cards, members, the day's ledger rows and the history, deterministic (setseed)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from cards.models import Card, CardLedgerEntry
    from membership.models import Member, PointsEntry
    from stores.models import Store

    sys.path.insert(0, str(ROOT / "bench"))
    from tier_evaluation import _drop_secondary_indexes

    stores = list(Store.objects.order_by("pk").values_list("pk", "format__legal_entity_id"))
    store_ids, entity_ids = store_arrays(stores)
    accounts = max(rows // 10, 1000)
    card_rows, points_rows = rows * 7 // 10, rows - rows * 7 // 10
    tables = [Card._meta.db_table, Member._meta.db_table, CardLedgerEntry._meta.db_table, PointsEntry._meta.db_table]
    pick_store = f"1 + floor(random() * {len(stores)})::int"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET LOCAL TIME ZONE 'Asia/Shanghai'")
        rebuild = []
        for table in tables:
            rebuild += _drop_secondary_indexes(cursor, table)
        cursor.execute("SELECT setseed(0.2027)")
        started = time.perf_counter()
        now = timezone.now()
        first_card = cards_insert(cursor, cards=accounts, now=now)
        first_member = members_insert(cursor, members=accounts, now=now, stores=stores)
        print(f"  {accounts:,} cards and {accounts:,} members inserted in {time.perf_counter() - started:.1f}s")
        params = {"first_card": first_card, "first_member": first_member, "accounts": accounts, "day": day,
                  "card_rows": card_rows, "points_rows": points_rows, "history": history_rows // 2}
        # The card ledger: a row's sign follows its kind; balance_after is not what this benchmark reads.
        card_columns = """card_id, kind, amount, balance_after, store_id, terminal_id, receipt_no, legal_entity_id,
                          operator_id, transaction_id, reason, cause_type_id, cause_id, created_at"""
        points_columns = """member_id, kind, points, balance_after, store_id, terminal_id, receipt_no,
                            legal_entity_id, operator_id, reason, cause_type_id, cause_id, created_at"""
        started = time.perf_counter()
        cursor.execute(
            f"""
            INSERT INTO {CardLedgerEntry._meta.db_table} ({card_columns})
            SELECT %(first_card)s + floor(d.card * %(accounts)s)::bigint, d.kind,
                   CASE WHEN d.kind IN ('load', 'refund', 'reverse') THEN d.amount
                        WHEN d.kind = 'adjust' AND d.sign < 0.5 THEN d.amount ELSE -d.amount END,
                   500.00, ({store_ids})[d.pos], NULL, 'C' || d.g, ({entity_ids})[d.pos], NULL, NULL, '', NULL, '',
                   d.day + time '08:00' + d.moment * interval '14 hours'
            FROM (SELECT g, random() AS card, random() AS moment, random() AS sign, {pick_store} AS pos,
                         round((5 * exp(random() * 5))::numeric, 2) AS amount,
                         CASE WHEN g <= %(card_rows)s THEN %(day)s::date
                              ELSE %(day)s::date - 1 - floor(random() * 364)::int END AS day,
                         CASE WHEN g > %(card_rows)s THEN 'debit'
                              ELSE (ARRAY['load', 'debit', 'refund', 'reverse', 'adjust'])[
                                  CASE WHEN r < 0.08 THEN 1 WHEN r < 0.88 THEN 2 WHEN r < 0.94 THEN 3
                                       WHEN r < 0.98 THEN 4 ELSE 5 END] END AS kind
                  FROM generate_series(1, %(card_rows)s + %(history)s) g, LATERAL (SELECT random() + g * 0 AS r) k
                  ) d
            """,
            params,
        )
        print(f"  {card_rows + history_rows // 2:,} card ledger rows inserted in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        cursor.execute(
            f"""
            INSERT INTO {PointsEntry._meta.db_table} ({points_columns})
            SELECT %(first_member)s + floor(d.member * %(accounts)s)::bigint, d.kind,
                   CASE WHEN d.kind = 'earn' THEN d.points ELSE -d.points END, 100000,
                   ({store_ids})[d.pos], NULL, 'P' || d.g, ({entity_ids})[d.pos], NULL, '', NULL, '',
                   d.day + time '08:00' + d.moment * interval '14 hours'
            FROM (SELECT g, random() AS member, random() AS moment, {pick_store} AS pos,
                         1 + floor(random() * 2000)::int AS points,
                         CASE WHEN g <= %(points_rows)s THEN %(day)s::date
                              ELSE %(day)s::date - 1 - floor(random() * 364)::int END AS day,
                         CASE WHEN g > %(points_rows)s THEN 'earn'
                              ELSE (ARRAY['earn', 'redeem', 'cash_out', 'gift', 'expire', 'reversal'])[
                                  CASE WHEN r < 0.70 THEN 1 WHEN r < 0.85 THEN 2 WHEN r < 0.90 THEN 3
                                       WHEN r < 0.93 THEN 4 WHEN r < 0.98 THEN 5 ELSE 6 END] END AS kind
                  FROM generate_series(1, %(points_rows)s + %(history)s) g,
                       LATERAL (SELECT random() + g * 0 AS r) k) d
            """,
            params,
        )
        print(f"  {points_rows + history_rows // 2:,} points entries inserted in "
              f"{time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        for statement in rebuild:
            cursor.execute(statement)
        print(f"  indexes rebuilt in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("CHECKPOINT")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    sys.exit(main())
