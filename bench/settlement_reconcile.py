"""Benchmark: reconciling a POS day file of 200,000 lines against a ledger of 10,000,000 card payments.

Creates a fresh PostgreSQL database (retail_bench_settlement_reconcile), migrates it, loads the reference
stores, then generates in SQL (INSERT ... SELECT over generate_series, seeded with setseed, foreign-key
triggers off and secondary indexes rebuilt at the end, then VACUUM ANALYZE):

- cards: one for every 20 card payments (500,000 for the default size), sold at every store, the issuer being
  the selling store's company;
- card payments (`CardTransaction`): --ledger-rows in all; --lines of them on the benchmark's day (yesterday) at
  the stores of one format (SUPER), the others over the --days before it at every store; 96% payments, 3%
  refunds, 1% reversals, 5-740 yuan skewed low, between 08:00 and 22:00 local time, cards drawn at random.

It then writes the format's POS file of that day as the POS would (CSV, UTF-8, Chinese headers: store, time,
receipt, card, amount, a refund or reversal negative), read from the ledger with a server-side cursor, with
five planted differences of each kind: an amount off by 1.00 (amount differs), a payment left out (missing in
the POS file), a line the ledger never saw (missing in the ledger), a line sent twice a minute apart
(duplicate). And times, from the same warm cache:

- the product: `settlement.services.reconciliation.pos_file_import` of that file for the format (every line
  checked, the lines written with COPY, then `recon_day_match` for each store of the day), wall time and the
  process's resident memory before and its peak during the import (the peak reset first);
- the anchor: the bare SQL of the same work on a raw psycopg connection: the file's bytes COPYed as they are
  into a temporary table, then the matching join (store by code, card by number, the day's card payments of
  those stores on store, receipt, card and the time window; counts of matched, amount differs, missing on
  either side, duplicates). The median of --rounds.

and prints both, the ratio and whether the targets of the issue are met: at most 30 s and at most 3x the
anchor, memory flat (the peak grows by far less than the file).

    .venv/bin/python bench/settlement_reconcile.py                                   # 10,000,000 / 200,000
    .venv/bin/python bench/settlement_reconcile.py --ledger-rows 1000000 --lines 50000   # a quick run
    .venv/bin/python bench/settlement_reconcile.py --keep     # keep the database for ...
    .venv/bin/python bench/settlement_reconcile.py --reuse    # ... measuring again without generating

With --reuse the earlier run's POS files, lines, reconciliation days and exceptions of the day are deleted
first (they are the benchmark's own). The database is dropped at the end unless --keep (or --reuse).
"""

import argparse
import csv
import os
import resource
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

from _support import ROOT, SERVER, bench_database, migrate_with_stores

DATABASE = "retail_bench_settlement_reconcile"
FORMAT = "SUPER"
PLANTED = 5
MEDIA = Path("/tmp/retail_bench_settlement_media")
HEADERS = {"store_code": "门店编码", "occurred_at": "交易时间", "receipt_no": "小票号", "card_no": "卡号",
           "member_no": "会员号", "amount": "金额"}
WINDOW_MINUTES = 30
TARGET_SECONDS = 30
TARGET_RATIO = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ledger-rows", type=int, default=10_000_000,
                        help="Card payments in the ledger, the day's included (default 10,000,000).")
    parser.add_argument("--lines", type=int, default=200_000, help="Lines of the POS day file (default 200,000).")
    parser.add_argument("--days", type=int, default=365, help="Days the other payments spread over (default 365).")
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server URL without a database name.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of the anchor (default 3); the median is kept.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--reuse", action="store_true",
                        help="Measure on the database a previous --keep run left, without generating (kept too).")
    args = parser.parse_args()
    if args.lines < 100 or args.ledger_rows < args.lines or args.days < 1:
        parser.error("--lines must be at least 100, --ledger-rows at least --lines and --days at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    environ = {"MEDIA_ROOT": str(MEDIA)}
    if args.reuse:
        django_on_existing(args.server.rstrip("/"), DATABASE, environ=environ)
        return run(args, generate_data=False)
    with bench_database(args.server, DATABASE, keep=args.keep, environ=environ):
        return run(args, generate_data=True)


def django_on_existing(server: str, database: str, *, environ: dict[str, str]) -> None:
    """Set Django up on a database a previous --keep run left."""
    os.environ["DATABASE_URL"] = f"{server}/{database}"
    os.environ["DEBUG"] = "false"
    os.environ.update(environ)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def peak_rss_mb(*, reset: bool = False) -> float:
    """This process's peak resident memory in MB; `reset` starts a new peak first (Linux: clear_refs 5)."""
    status = Path("/proc/self/status")
    if reset:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(args, *, generate_data: bool) -> int:
    from django.db import connection
    from django.utils import timezone

    from cards.models import CardTransaction

    day = timezone.localdate() - timedelta(days=1)
    if generate_data:
        started = time.perf_counter()
        migrate_with_stores()
        print(f"migrated and seeded stores in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        cards = generate(ledger_rows=args.ledger_rows, lines=args.lines, days=args.days, day=day)
        print(f"generated {cards:,} cards and {args.ledger_rows:,} card payments in "
              f"{time.perf_counter() - started:.1f}s")
    else:
        forget_earlier_runs()
    with connection.cursor() as cursor:
        # Every measurement below starts from the same warm cache.
        cursor.execute(f"SELECT count(*), max(business_date) FROM {CardTransaction._meta.db_table}")
        total, day = cursor.fetchone()
    print(f"database: {total:,} card payments; the day: {day:%Y-%m-%d}")

    MEDIA.mkdir(parents=True, exist_ok=True)
    path = MEDIA / f"POS-{FORMAT}-{day:%Y%m%d}.csv"
    started = time.perf_counter()
    expected, lines = pos_file_write(path, day=day)
    print(f"wrote the POS file: {lines:,} lines, {path.stat().st_size / 1e6:.1f} MB in "
          f"{time.perf_counter() - started:.1f}s; planted {expected}")

    load_start = os.getloadavg()[0]
    anchor_times, anchor_counts = [], None
    for _round in range(args.rounds):
        seconds, anchor_counts = bare_reconcile(path, day=day)
        anchor_times.append(seconds)
    anchor = statistics.median(anchor_times)
    print(f"anchor (COPY + matching join): median {anchor:.2f}s "
          f"(rounds {' '.join(f'{t:.2f}' for t in anchor_times)}); {anchor_counts}")

    seconds, rss_before, rss_after, product_counts = product_reconcile(path, day=day)
    print(f"pos_file_import + recon_day_match: {seconds:.2f}s; memory {rss_before:.0f} MB before, "
          f"peak {rss_after:.0f} MB during (+{rss_after - rss_before:.0f} MB for a "
          f"{path.stat().st_size / 1e6:.0f} MB file); {product_counts}")
    ratio = seconds / anchor
    print(f"ratio product/anchor: {ratio:.2f}"
          + ("" if seconds <= TARGET_SECONDS else f" | above the {TARGET_SECONDS} s target")
          + ("" if ratio <= TARGET_RATIO else f" | above {TARGET_RATIO}x the anchor")
          + (" | meets both targets" if seconds <= TARGET_SECONDS and ratio <= TARGET_RATIO else ""))

    failures = 0
    for kind, count in expected.items():
        if product_counts.get(kind) != count:
            print(f"FAILED: {count} planted '{kind}' but the product found {product_counts.get(kind, 0)}")
            failures += 1
    if product_counts.get("pos_lines") != lines:
        print(f"FAILED: the file has {lines:,} lines, the product counted {product_counts.get('pos_lines')}")
        failures += 1
    print(f"load average {load_start:.2f} at the start, "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())} at the end, on {os.cpu_count()} cores")
    return 1 if failures else 0


# --- the product ----------------------------------------------------------------------------------------


def layout_ensure():
    """The benchmark format's POS layout (Chinese headers, UTF-8 as written)."""
    from settlement.models import PosFileLayout
    from stores.models import Format

    pos_format = Format.objects.get(code=FORMAT)
    layout, _created = PosFileLayout.objects.update_or_create(code="BENCH", defaults={
        "name": "bench", "pos_system_code": pos_format.pos_system_code, "file_type": PosFileLayout.FileType.CSV,
        "encoding": PosFileLayout.Encoding.UTF8, "delimiter": ",", "columns": HEADERS,
        "datetime_format": "%Y-%m-%d %H:%M:%S", "time_window_minutes": WINDOW_MINUTES, "is_active": True,
    })
    return layout, pos_format


def bench_user():
    from django.contrib.auth import get_user_model

    user, _created = get_user_model().objects.get_or_create(username="bench_settlement", defaults={
        "is_staff": True, "is_superuser": True})
    return user


def product_reconcile(path: Path, *, day: date) -> tuple[float, float, float, dict]:
    from django.core.files import File

    from settlement.models import ReconDay, ReconException
    from settlement.services.reconciliation import pos_file_import

    layout, pos_format = layout_ensure()
    user = bench_user()
    rss_before = peak_rss_mb(reset=True)
    started = time.perf_counter()
    with path.open("rb") as handle:
        pos_file = pos_file_import(layout=layout, uploaded=File(handle, name=path.name), business_date=day,
                                   user=user, format=pos_format)
    seconds = time.perf_counter() - started
    rss_after = peak_rss_mb()
    days = ReconDay.objects.filter(business_date=day, store__format=pos_format)
    counts = {"pos_lines": pos_file.lines, "matched": sum(days.values_list("matched", flat=True))}
    for kind in ReconException.Kind.values:
        counts[kind] = ReconException.objects.filter(day__in=days, kind=kind).count()
    return seconds, rss_before, rss_after, counts


def forget_earlier_runs() -> None:
    """Delete what an earlier measurement on this database imported, so the file is new again."""
    from django.db import connection

    from settlement.models import PosFile, PosLine, ReconDay, ReconException

    with connection.cursor() as cursor:
        for model in (ReconException, ReconDay, PosLine, PosFile):
            cursor.execute(f"DELETE FROM {model._meta.db_table}")


# --- the anchor -----------------------------------------------------------------------------------------

BARE_JOIN = """
WITH p AS (
    SELECT l.line_no, s.id AS store_id, c.id AS card_id, l.receipt_no, l.amount, l.occurred_at
    FROM bench_pos l
    JOIN stores_store s ON s.code = l.store_code
    LEFT JOIN cards_card c ON c.card_no = l.card_no
), t AS (
    SELECT t.id, t.store_id, t.card_id, t.receipt_no, t.created_at,
           CASE WHEN t.kind = 'debit' THEN t.charged ELSE -t.charged END AS amount
    FROM cards_cardtransaction t
    WHERE t.business_date = %(day)s AND t.store_id IN (SELECT DISTINCT store_id FROM p)
), j AS (
    SELECT p.line_no, p.amount AS pos_amount, t.id AS txn, t.amount AS ledger_amount
    FROM p LEFT JOIN t ON t.store_id = p.store_id AND t.receipt_no = p.receipt_no AND t.card_id = p.card_id
        AND t.created_at BETWEEN p.occurred_at - %(window)s AND p.occurred_at + %(window)s
)
SELECT count(*),
       count(*) FILTER (WHERE txn IS NOT NULL AND pos_amount = ledger_amount),
       count(*) FILTER (WHERE txn IS NOT NULL AND pos_amount <> ledger_amount),
       count(*) FILTER (WHERE txn IS NULL),
       (SELECT count(*) FROM t WHERE NOT EXISTS (SELECT 1 FROM j WHERE j.txn = t.id)),
       count(txn) - count(DISTINCT txn)
FROM j
"""


def bare_reconcile(path: Path, *, day: date) -> tuple[float, dict]:
    """The file's bytes COPYed into a temporary table and matched in one statement, on raw psycopg."""
    import psycopg

    with psycopg.connect(os.environ["DATABASE_URL"]) as raw:
        raw.execute("SET TIME ZONE 'Asia/Shanghai'")
        started = time.perf_counter()
        raw.execute("""
            CREATE TEMP TABLE bench_pos (
                line_no bigint GENERATED ALWAYS AS IDENTITY, store_code text, occurred_at timestamptz,
                receipt_no text, card_no text, member_no text, amount numeric(14, 2)) ON COMMIT DROP
        """)
        with raw.cursor() as cursor:
            with cursor.copy("COPY bench_pos (store_code, occurred_at, receipt_no, card_no, member_no, amount) "
                             "FROM STDIN (FORMAT csv, HEADER true)") as copy, path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    copy.write(chunk)
            cursor.execute("ANALYZE bench_pos")
            lines, matched, differs, missing_in_ledger, missing_in_pos, duplicates = cursor.execute(
                BARE_JOIN, {"day": day, "window": timedelta(minutes=WINDOW_MINUTES)}).fetchone()
        seconds = time.perf_counter() - started
        raw.rollback()
    return seconds, {"pos_lines": lines, "matched": matched - duplicates, "amount_differs": differs,
                     "missing_in_ledger": missing_in_ledger, "missing_in_pos": missing_in_pos,
                     "duplicate": duplicates}


# --- the POS file ---------------------------------------------------------------------------------------


def pos_file_write(path: Path, *, day: date) -> tuple[dict, int]:
    """Write the format's POS file of `day` from the ledger, with PLANTED differences of each kind.

    Return the planted counts by exception kind and the number of lines written.
    """
    import psycopg

    # Planted on payments spread evenly over the day's rows (debits only, so every amount is positive).
    with psycopg.connect(os.environ["DATABASE_URL"]) as raw:
        raw.execute("SET TIME ZONE 'Asia/Shanghai'")
        total = raw.execute(
            "SELECT count(*) FROM cards_cardtransaction t JOIN stores_store s ON s.id = t.store_id "
            "JOIN stores_format f ON f.id = s.format_id WHERE t.business_date = %s AND f.code = %s",
            [day, FORMAT]).fetchone()[0]
        step = max(total // (PLANTED * 3 + 1), 4)
        written = 0
        planted = {"amount_differs": 0, "missing_in_pos": 0, "duplicate": 0, "missing_in_ledger": 0}
        with raw.cursor(name="pos_day") as rows, path.open("w", newline="", encoding="utf-8") as handle:
            rows.itersize = 20_000
            rows.execute("""
                SELECT s.code, to_char(t.created_at, 'YYYY-MM-DD HH24:MI:SS'), t.receipt_no, c.card_no,
                       CASE WHEN t.kind = 'debit' THEN t.charged ELSE -t.charged END, t.kind
                FROM cards_cardtransaction t
                JOIN stores_store s ON s.id = t.store_id JOIN stores_format f ON f.id = s.format_id
                JOIN cards_card c ON c.id = t.card_id
                WHERE t.business_date = %s AND f.code = %s ORDER BY t.created_at, t.id
            """, [day, FORMAT])
            writer = csv.writer(handle)
            writer.writerow(HEADERS[field] for field in ("store_code", "occurred_at", "receipt_no", "card_no",
                                                         "member_no", "amount"))
            last = None
            for number, (store_code, moment, receipt_no, card_no, amount, kind) in enumerate(rows):
                line = [store_code, moment, receipt_no, card_no, "", f"{amount:.2f}"]
                plant = number // step if number % step == 0 and kind == "debit" else None
                if plant is not None and plant % 3 == 0 and planted["amount_differs"] < PLANTED:
                    line[5] = f"{amount + 1:.2f}"
                    planted["amount_differs"] += 1
                elif plant is not None and plant % 3 == 1 and planted["missing_in_pos"] < PLANTED:
                    planted["missing_in_pos"] += 1
                    continue
                elif plant is not None and plant % 3 == 2 and planted["duplicate"] < PLANTED:
                    writer.writerow(line)
                    written += 1
                    line = [*line[:1], _minute_later(moment), *line[2:]]
                    planted["duplicate"] += 1
                writer.writerow(line)
                written += 1
                last = line
            for index in range(PLANTED):
                writer.writerow([last[0], last[1], f"NOT-IN-LEDGER-{index}", last[3], "", "88.00"])
                written += 1
                planted["missing_in_ledger"] += 1
    return planted, written


def _minute_later(moment: str) -> str:
    from datetime import datetime

    later = datetime.strptime(moment, "%Y-%m-%d %H:%M:%S") + timedelta(minutes=1)
    return later.strftime("%Y-%m-%d %H:%M:%S")


# --- generating the data --------------------------------------------------------------------------------


def card_product():
    from decimal import Decimal

    from cards.models import CardProduct

    product, _created = CardProduct.objects.get_or_create(code="STORED", defaults={
        "name": "储值卡", "kind": CardProduct.Kind.REGISTERED, "reloadable": True,
        "max_balance": Decimal("5000.00"), "face_values": ["100.00", "500.00", "1000.00"],
    })
    return product


def store_arrays(stores) -> tuple[str, str]:
    """SQL arrays of the stores' ids and their companies' ids, in the same order."""
    store_ids = "ARRAY[" + ",".join(str(row[0]) for row in stores) + "]::bigint[]"
    entity_ids = "ARRAY[" + ",".join(str(row[1]) for row in stores) + "]::bigint[]"
    return store_ids, entity_ids


def cards_insert(cursor, *, cards: int, now) -> int:
    """`cards` sold, active cards (8 and 15 digits) spread over every store; return the first card's id."""
    from cards.models import Card
    from stores.models import Store

    stores = list(Store.objects.order_by("pk").values_list("pk", "format__legal_entity_id"))
    store_ids, entity_ids = store_arrays(stores)
    table = Card._meta.db_table
    cursor.execute(
        f"""
        INSERT INTO {table} (
            card_no, product_id, batch_id, face_value, status, freeze_reason, balance, stock_status, location_id,
            pin_hash, pin_failures, member_id, holder_name, sold_store_id, issuer_id, sale_order_id, activated_at,
            expires_at, replaced_by_id, legacy_source, created_at, updated_at)
        SELECT '8' || lpad(g::text, 15, '0'), %(product)s, NULL, NULL, 'active', '', 1000.00, 'sold', NULL,
               '', 0, NULL, '', ({store_ids})[1 + (g %% {len(stores)})], ({entity_ids})[1 + (g %% {len(stores)})],
               NULL, %(sold)s, NULL, NULL, '', %(sold)s, %(sold)s
        FROM generate_series(1, %(cards)s) g
        """,
        {"product": card_product().pk, "cards": cards, "sold": now - timedelta(days=400)},
    )
    cursor.execute(f"SELECT min(id) FROM {table}")
    return cursor.fetchone()[0]


def generate(*, ledger_rows: int, lines: int, days: int, day: date) -> int:
    """Cards and card payments by INSERT ... SELECT over generate_series, deterministic (setseed)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from cards.models import Card, CardTransaction
    from stores.models import Store

    sys.path.insert(0, str(ROOT / "bench"))
    from tier_evaluation import _drop_secondary_indexes

    cards = max(ledger_rows // 20, 1000)
    stores = list(Store.objects.order_by("pk").values_list("pk", "format__legal_entity_id"))
    day_stores = list(Store.objects.filter(format__code=FORMAT).order_by("pk").values_list(
        "pk", "format__legal_entity_id"))
    all_ids, _entities = store_arrays(stores)
    day_ids, _entities = store_arrays(day_stores)
    table = CardTransaction._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        # Foreign keys and secondary indexes cost more row by row than once at the end.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET LOCAL TIME ZONE 'Asia/Shanghai'")
        rebuild = []
        for name in (Card._meta.db_table, table):
            rebuild += _drop_secondary_indexes(cursor, name)
        cursor.execute("SELECT setseed(0.2026)")
        started = time.perf_counter()
        first_card = cards_insert(cursor, cards=cards, now=timezone.now())
        print(f"  {cards:,} cards inserted in {time.perf_counter() - started:.1f}s")
        columns = """transaction_id, kind, card_id, amount, discount, charged, refunded, balance_after, original_id,
                     store_id, terminal_id, receipt_no, lines, business_date, reversed_at, created_at"""
        # A payment's time is a local time between 08:00 and 22:00 of its business day.
        values = """
            d.prefix || lpad(d.g::text, 15, '0'),
            CASE WHEN d.kind < 0.96 THEN 'debit' WHEN d.kind < 0.99 THEN 'refund' ELSE 'reverse' END,
            %(first_card)s + floor(d.card * %(cards)s)::bigint, d.amount, 0, d.amount, 0, 100.00, NULL,
            d.store, NULL, d.prefix || d.g, '[]'::jsonb, d.day,
            NULL, d.day + time '08:00' + d.moment * interval '14 hours'
        """
        started = time.perf_counter()
        cursor.execute(
            f"""
            INSERT INTO {table} ({columns})
            SELECT {values}
            FROM (SELECT g, 'H' AS prefix, random() AS kind, random() AS card, random() AS moment,
                         round((5 * exp(random() * 5))::numeric, 2) AS amount,
                         ({all_ids})[1 + floor(random() * {len(stores)})::int] AS store,
                         %(day)s::date - 1 - floor(random() * %(days)s)::int AS day
                  FROM generate_series(1, %(rows)s) g) d
            """,
            {"first_card": first_card, "cards": cards, "rows": ledger_rows - lines, "day": day, "days": days},
        )
        print(f"  {ledger_rows - lines:,} payments of the other days inserted in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        cursor.execute(
            f"""
            INSERT INTO {table} ({columns})
            SELECT {values}
            FROM (SELECT g, 'D' AS prefix, random() AS kind, random() AS card, random() AS moment,
                         round((5 * exp(random() * 5))::numeric, 2) AS amount,
                         ({day_ids})[1 + (g %% {len(day_stores)})] AS store, %(day)s::date AS day
                  FROM generate_series(1, %(rows)s) g) d
            """,
            {"first_card": first_card, "cards": cards, "rows": lines, "day": day},
        )
        print(f"  {lines:,} payments of the day inserted in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        for statement in rebuild:
            cursor.execute(statement)
        print(f"  indexes rebuilt in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for name in (Card._meta.db_table, table):
            cursor.execute(f"VACUUM ANALYZE {name}")
        cursor.execute("CHECKPOINT")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f}s")
    return cards


if __name__ == "__main__":
    sys.exit(main())
