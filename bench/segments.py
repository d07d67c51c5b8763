"""Benchmark: counting and materialising a four-condition segment against the bare SQL of the same question.

Creates a fresh PostgreSQL database (retail_bench_segments), migrates it, loads
the reference stores, then generates in SQL (INSERT ... SELECT over
generate_series) a million members and ten million purchases over the last
two years:

- members: registering store spread over every store, earned tiers 60/25/11/4%
  (normal, silver, gold, platinum), 5% holding Plus, marketing consent ~70%,
  a phone ~85%, a birth date ~90% (born 1940-2005), gender, contact channel,
  registered over the last five years, 99% active;
- purchases: over the last 730 days, a member's own store about 70% of the
  time (else any store), so formats follow the stores; members drawn unevenly
  (a few buy often, some never), amounts 5-2,000 yuan skewed low, one in 33
  partly returned.

It then times, on the same data and from the same warm cache, the segment

    marketing consent, last DEPT purchase at least 90 days ago,
    net spend of at least 1,000 in 365 days, aged 50 or more

four ways:

- `campaigns.segments.rules_count` (median of --rounds);
- the bare count: hand-written SQL of the same question on a raw psycopg
  connection, in three shapes (correlated subqueries per member; IN and NOT
  EXISTS semi-joins; one GROUP BY per purchase condition, joined), the fastest
  one being the anchor;
- `campaigns.services.segments.segment_snapshot_materialise` on a pending
  snapshot (one INSERT ... SELECT into the snapshot's members);
- the bare snapshot: the anchor's SELECT inside one INSERT into the same table;

and prints the times, the counts (which must agree) and the ratios.

    .venv/bin/python bench/segments.py                                          # 1,000,000 / 10,000,000
    .venv/bin/python bench/segments.py --members 100000 --purchases 1000000     # a quick run
    .venv/bin/python bench/segments.py --keep            # keep the database for ...
    .venv/bin/python bench/segments.py --reuse           # ... measuring again without generating

Targets (the issue): count at most 2 s, snapshot at most 30 s, at most 2x the
bare SQL. The database is dropped at the end unless --keep (or --reuse).
"""

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from datetime import time as clock

from _support import ROOT, SERVER, bench_database, migrate_with_stores

DATABASE = "retail_bench_segments"

RULES = {
    "match": "all",
    "conditions": [
        {"field": "marketing_consent", "value": True},
        {"field": "recency", "days_min": 90, "formats": ["DEPT"]},
        {"field": "spend", "min": "1000", "days": 365},
        {"field": "age", "min": 50},
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="Members to generate (default 1,000,000).")
    parser.add_argument("--purchases", type=int, default=10_000_000,
                        help="Purchases to generate (default 10,000,000).")
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server URL without a database name.")
    parser.add_argument("--rounds", type=int, default=5, help="Rounds of each count (default 5); the median is kept.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--reuse", action="store_true",
                        help="Measure on the database a previous --keep run left, without generating (kept too).")
    parser.add_argument("--explain", action="store_true",
                        help="Print the plans (EXPLAIN ANALYZE) of the product's count and of both bare shapes.")
    args = parser.parse_args()
    if args.members < 100 or args.purchases < args.members:
        parser.error("--members must be at least 100 and --purchases at least --members")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    if args.reuse:
        _django_on_existing(args.server.rstrip("/"))
        return run(members=None, purchases=None, rounds=args.rounds, explain=args.explain)
    with bench_database(args.server, DATABASE, keep=args.keep):
        return run(members=args.members, purchases=args.purchases, rounds=args.rounds, explain=args.explain)


def _django_on_existing(server: str) -> None:
    os.environ["DATABASE_URL"] = f"{server}/{DATABASE}"
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def run(*, members: int | None, purchases: int | None, rounds: int, explain: bool) -> int:
    from django.db import connection
    from django.utils import timezone

    from membership.models import Member, Purchase

    today = timezone.localdate()
    if members is not None:
        started = time.perf_counter()
        migrate_with_stores()
        print(f"migrated and seeded stores in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        generate(members=members, purchases=purchases, today=today)
        print(f"generated {members:,} members and {purchases:,} purchases in {time.perf_counter() - started:.1f}s")
    with connection.cursor() as cursor:
        # Every measurement below starts from the same warm cache.
        cursor.execute(f"SELECT count(*), sum(amount) FROM {Purchase._meta.db_table}")
        purchase_count = cursor.fetchone()[0]
        cursor.execute(f"SELECT count(*) FROM {Member._meta.db_table}")
        member_count = cursor.fetchone()[0]
    print(f"database: {member_count:,} members, {purchase_count:,} purchases; today {today:%Y-%m-%d}")

    params = bare_params(today=today)
    load_start = os.getloadavg()[0]

    # The anchor: plain SQL on its own psycopg connection, no Django in between.
    import psycopg

    bare_times: dict[str, list[float]] = {}
    bare_counts: dict[str, int] = {}
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as raw:
        for shape, sql in BARE_SHAPES.items():
            times = []
            for _round in range(rounds):
                started = time.perf_counter()
                bare_counts[shape] = raw.execute(f"SELECT count(*) FROM ({sql}) s", params).fetchone()[0]
                times.append(time.perf_counter() - started)
            bare_times[shape] = times
            print(f"bare count ({shape}): {bare_counts[shape]:,} members, median {statistics.median(times):.3f}s "
                  f"(rounds {' '.join(f'{t:.3f}' for t in times)})")
            if explain:
                plan = raw.execute(f"EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM ({sql}) s", params).fetchall()
                print("\n".join("    " + row[0] for row in plan))
    anchor_shape = min(bare_times, key=lambda shape: statistics.median(bare_times[shape]))
    anchor = statistics.median(bare_times[anchor_shape])
    anchor_count = bare_counts[anchor_shape]

    from campaigns.segments import rules_count, rules_queryset

    count_times = []
    product_count = None
    for _round in range(rounds):
        started = time.perf_counter()
        product_count = rules_count(RULES, today=today)
        count_times.append(time.perf_counter() - started)
    product = statistics.median(count_times)
    print(f"rules_count: {product_count:,} members, median {product:.3f}s "
          f"(rounds {' '.join(f'{t:.3f}' for t in count_times)})")
    if explain:
        queryset = rules_queryset(RULES, today=today)
        sql, sql_params = queryset.query.sql_with_params()
        print(f"    the product's SQL: {queryset.query}")
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM ({sql}) s", sql_params)
            print("\n".join("    " + row[0] for row in cursor.fetchall()))
    print(f"ratio count/anchor ({anchor_shape}): {product / anchor:.2f}"
          + ("" if product <= 2 else " | above the 2 s target")
          + ("" if product <= 2 * anchor else " | above 2x the anchor"))

    snapshot_seconds, snapshot_count = materialise()
    bare_snapshot_seconds, bare_snapshot_count = bare_materialise(sql=BARE_SHAPES[anchor_shape], params=params)
    print(f"segment_snapshot_materialise: {snapshot_count:,} members in {snapshot_seconds:.2f}s"
          + ("" if snapshot_seconds <= 30 else " | above the 30 s target"))
    print(f"bare snapshot (INSERT ... SELECT, {anchor_shape}): {bare_snapshot_count:,} members in "
          f"{bare_snapshot_seconds:.2f}s")
    print(f"ratio snapshot/anchor: {snapshot_seconds / bare_snapshot_seconds:.2f}")

    failures = 0
    counts = {product_count, snapshot_count, bare_snapshot_count, *bare_counts.values()}
    if len(counts) != 1:
        print(f"FAILED: the counts differ: product {product_count}, snapshot {snapshot_count}, "
              f"bare {bare_counts}, bare snapshot {bare_snapshot_count}")
        failures += 1
    if anchor_count == 0:
        print("FAILED: the segment is empty: the data does not exercise the question")
        failures += 1
    print(f"load average {load_start:.2f} at the start, "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())} at the end, on {os.cpu_count()} cores")
    return 1 if failures else 0


# --- the bare SQL -------------------------------------------------------------------------------

# The same question in plain SQL. Days are local days: "at least 90 days since the last DEPT purchase" is a
# last purchase before the local midnight that starts the day 89 days ago; "spend in 365 days" counts from
# the midnight starting the day 364 days ago (today included, no purchase lies ahead); "aged 50 or more" is
# born on or before the day 50 years ago.
_MEMBER_WHERE = """
    m.status = 'active' AND m.marketing_consent AND m.birth_date <= %(born_by)s
"""

BARE_SHAPES = {
    "correlated": f"""
        SELECT m.id FROM membership_member m
        WHERE {_MEMBER_WHERE}
          AND EXISTS (SELECT 1 FROM membership_purchase p WHERE p.member_id = m.id AND p.format_id = %(dept)s)
          AND NOT EXISTS (SELECT 1 FROM membership_purchase p WHERE p.member_id = m.id
                          AND p.format_id = %(dept)s AND p.occurred_at >= %(recency_from)s)
          AND (SELECT sum(p.amount - p.returned_amount) FROM membership_purchase p
               WHERE p.member_id = m.id AND p.occurred_at >= %(spend_from)s)
              >= %(spend_min)s
    """,
    "semi-join": f"""
        SELECT m.id FROM membership_member m
        WHERE {_MEMBER_WHERE}
          AND m.id IN (SELECT member_id FROM membership_purchase
                       WHERE format_id = %(dept)s AND occurred_at < %(recency_from)s)
          AND NOT EXISTS (SELECT 1 FROM membership_purchase p WHERE p.member_id = m.id
                          AND p.format_id = %(dept)s AND p.occurred_at >= %(recency_from)s)
          AND m.id IN (SELECT member_id FROM membership_purchase WHERE occurred_at >= %(spend_from)s
                       GROUP BY member_id HAVING sum(amount - returned_amount) >= %(spend_min)s)
    """,
    "grouped": f"""
        SELECT m.id FROM membership_member m
        JOIN (SELECT member_id FROM membership_purchase WHERE format_id = %(dept)s
              GROUP BY member_id HAVING max(occurred_at) < %(recency_from)s) r ON r.member_id = m.id
        JOIN (SELECT member_id FROM membership_purchase
              WHERE occurred_at >= %(spend_from)s
              GROUP BY member_id HAVING sum(amount - returned_amount) >= %(spend_min)s) s ON s.member_id = m.id
        WHERE {_MEMBER_WHERE}
    """,
}


def bare_params(*, today) -> dict:
    from django.utils import timezone

    from core.dates import months_add
    from stores.models import Format

    def midnight(day):
        return timezone.make_aware(datetime.combine(day, clock.min))

    return {
        "dept": Format.objects.get(code="DEPT").pk,
        "recency_from": midnight(today - timedelta(days=89)),
        "spend_from": midnight(today - timedelta(days=364)),
        "spend_min": 1000,
        "born_by": months_add(today, -12 * 50),
    }


# --- snapshots ----------------------------------------------------------------------------------


def _pending_snapshot():
    from campaigns.models import Segment, SegmentSnapshot

    segment, _created = Segment.objects.get_or_create(
        name="bench: four conditions", defaults={"purpose": Segment.Purpose.MARKETING, "rules": RULES}
    )
    return SegmentSnapshot.objects.create(segment=segment, rules=RULES, status=SegmentSnapshot.Status.PENDING)


def materialise() -> tuple[float, int]:
    from campaigns.services.segments import segment_snapshot_materialise

    snapshot = _pending_snapshot()
    started = time.perf_counter()
    snapshot = segment_snapshot_materialise(snapshot_id=snapshot.pk)
    seconds = time.perf_counter() - started
    if snapshot.status != snapshot.Status.DONE:
        print(f"snapshot failed: {snapshot.error}")
    return seconds, snapshot.member_count


def bare_materialise(*, sql: str, params: dict) -> tuple[float, int]:
    import psycopg

    from campaigns.models import SegmentMember

    snapshot = _pending_snapshot()
    table = SegmentMember._meta.db_table
    with psycopg.connect(os.environ["DATABASE_URL"]) as raw:
        started = time.perf_counter()
        inserted = raw.execute(
            f"INSERT INTO {table} (snapshot_id, member_id) SELECT %(snapshot)s, b.id FROM ({sql}) b",
            {**params, "snapshot": snapshot.pk},
        ).rowcount
        raw.commit()
        seconds = time.perf_counter() - started
    return seconds, inserted


# --- generating the data ------------------------------------------------------------------------


def generate(*, members: int, purchases: int, today) -> None:
    """Members and purchases by INSERT ... SELECT over generate_series, deterministic (setseed)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from membership.models import Member, Purchase, Tier
    from stores.models import Store

    sys.path.insert(0, str(ROOT / "bench"))
    from tier_evaluation import _drop_secondary_indexes

    tiers = dict(Tier.objects.values_list("code", "pk"))
    stores = list(Store.objects.order_by("pk").values_list("pk", "format_id", "format__legal_entity_id"))
    store_ids = "ARRAY[" + ",".join(str(row[0]) for row in stores) + "]::bigint[]"
    format_ids = "ARRAY[" + ",".join(str(row[1]) for row in stores) + "]::bigint[]"
    entity_ids = "ARRAY[" + ",".join(str(row[2]) for row in stores) + "]::bigint[]"
    now = timezone.now()
    member_table, purchase_table = Member._meta.db_table, Purchase._meta.db_table

    with transaction.atomic(), connection.cursor() as cursor:
        # Foreign keys and secondary indexes cost more row by row than once at the end.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        rebuild = []
        for table in (member_table, purchase_table):
            rebuild += _drop_secondary_indexes(cursor, table)
        cursor.execute("SELECT setseed(0.2026)")
        started = time.perf_counter()
        cursor.execute(
            f"""
            INSERT INTO {member_table} (
                member_no, name, name_initials, gender, birth_date, id_type, id_number_digest, id_number_sealed,
                id_number_masked, phone, family_phone, address, contact_channel, marketing_consent,
                marketing_consent_at, tier_id, tier_downgrade_on, paid_tier_id, paid_tier_until, points,
                points_debt, registered_store_id, registered_channel, partner_id, registered_by_id,
                registered_at, status, merged_into_id, notes, updated_at)
            SELECT
                '9' || lpad(g::text, 11, '0'), '会员' || g, 'hy', (ARRAY['M','F','F','U'])[1 + (g %% 4)],
                CASE WHEN r.birth < 0.9 THEN date '1940-01-01' + (r.birth / 0.9 * 65 * 365)::int END,
                'none', NULL, '', '',
                CASE WHEN r.phone < 0.85 THEN '13' || lpad(g::text, 9, '0') ELSE '' END, '',
                CASE WHEN r.phone >= 0.85 THEN '重庆市渝中区' || g || '号' ELSE '' END,
                CASE WHEN r.phone >= 0.85 THEN 'mail' WHEN r.channel < 0.7 THEN 'sms'
                     WHEN r.channel < 0.9 THEN 'wechat' ELSE 'call' END,
                r.consent < 0.7, CASE WHEN r.consent < 0.7 THEN %(now)s END,
                CASE WHEN r.tier < 0.60 THEN %(normal)s WHEN r.tier < 0.85 THEN %(silver)s
                     WHEN r.tier < 0.96 THEN %(gold)s ELSE %(platinum)s END, NULL,
                CASE WHEN r.paid < 0.05 THEN %(plus)s END,
                CASE WHEN r.paid < 0.05 THEN %(today)s::date + (r.paid * 20 * 365)::int - 20 END,
                (r.points * 5000)::int, 0,
                ({store_ids})[1 + (g %% {len(stores)})], 'desk', NULL, NULL,
                %(now)s - (r.registered * interval '1825 days'), CASE WHEN r.status < 0.99 THEN 'active'
                     WHEN r.status < 0.995 THEN 'frozen' ELSE 'closed' END,
                NULL, '', %(now)s
            FROM generate_series(1, %(members)s) g
            CROSS JOIN LATERAL (SELECT g AS n, random() AS birth, random() AS phone, random() AS channel,
                                       random() AS consent, random() AS tier, random() AS paid,
                                       random() AS points, random() AS registered, random() AS status) r
            """,
            {"members": members, "now": now, "today": today, "normal": tiers["NORMAL"], "silver": tiers["SILVER"],
             "gold": tiers["GOLD"], "platinum": tiers["PLATINUM"], "plus": tiers["PLUS"]},
        )
        print(f"  members inserted in {time.perf_counter() - started:.1f}s")
        cursor.execute(f"SELECT min(id) FROM {member_table}")
        first_id = cursor.fetchone()[0]
        started = time.perf_counter()
        # A member index drawn as u^1.6: low indexes buy often, the highest rarely or never. A purchase is at
        # the member's own store (index mod stores, as registered) 70% of the time, else at any store.
        cursor.execute(
            f"""
            INSERT INTO {purchase_table} (
                member_id, store_id, format_id, legal_entity_id, terminal_id, receipt_no, amount,
                returned_amount, occurred_at, payment_method, lines, points_earned, promotions_text, created_at)
            SELECT %(first_id)s + d.member - 1, s.store, ({format_ids})[s.pos], ({entity_ids})[s.pos], NULL,
                   'B' || d.g, d.amount, CASE WHEN d.returned < 0.03 THEN round(d.amount * 0.3, 2) ELSE 0 END,
                   %(now)s - d.back * interval '730 days', '', '[]', 0, '', %(now)s
            FROM (SELECT g, 1 + floor(power(random(), 1.6) * %(members)s)::bigint AS member,
                         round((5 * exp(random() * 6))::numeric, 2) AS amount, random() AS returned,
                         random() AS back, random() AS own, random() AS other
                  FROM generate_series(1, %(purchases)s) g) d
            CROSS JOIN LATERAL (
                SELECT p AS pos, ({store_ids})[p] AS store FROM (
                    SELECT CASE WHEN d.own < 0.7 THEN 1 + (d.member %% {len(stores)})
                                ELSE 1 + floor(d.other * {len(stores)})::int END AS p) q) s
            """,
            {"first_id": first_id, "members": members, "purchases": purchases, "now": now},
        )
        print(f"  purchases inserted in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        for statement in rebuild:
            cursor.execute(statement)
        print(f"  indexes rebuilt in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in (member_table, purchase_table):
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("CHECKPOINT")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    sys.exit(main())
