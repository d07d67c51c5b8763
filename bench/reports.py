"""Benchmark: every report kind over 10,000,000 ledger rows and 1,000,000 members against the bare SQL of its numbers.

Creates a fresh PostgreSQL database (retail_bench_reports), migrates it, loads the reference stores, then generates
in SQL (INSERT ... SELECT over generate_series, seeded with setseed, foreign-key triggers off, secondary indexes
rebuilt at the end, then VACUUM ANALYZE) about --ledger ledger rows over the last 760 days:

- one clerk (a staff user scoped to the store) per store;
- --members members registered over five years at every store (desk 60%, POS 15%, app 15%, import 10%; four in
  five desk registrations by the store's clerk), earned tiers 60/25/11/4%, Plus for 5%, a phone for 85%, WeChat as
  the contact channel for 20%, 1% frozen or closed;
- purchases (40% of the ledger rows): 80% of a member (drawn unevenly: a few buy often, many rarely or never; never
  before the member registered), 20% without a member; at the member's own store 70% of the time; amounts
  5-2,000 yuan skewed low, one in 33 partly returned;
- the points ledger (about 40%): one `earn` per member purchase (points_earned = the whole yuan of the amount),
  a `reversal` of the returned part, and for one purchase in four a later spend of part of what it earned
  (redeemed, turned into cash, a gift, or expired at the end of the following year); `balance_after` is the
  running balance and `member.points` the sum of the member's entries;
- prepaid cards (one for every 25 ledger rows) sold in completed sale orders at every store (40% of the cards in
  corporate group orders of 20 cards with a 2% discount, the others one per walk-in order), face values 100-1,000,
  a tenth topped up once by a walk-in top-up order; 2% more orders cancelled without cards; the card ledger
  (about 20%): the loads, 0-7 POS payments per card at any store (card transactions), a refund of half of one
  payment in 20, the reversal of one in 50; running balances, `card.balance` the sum of its ledger;
- the running paid-tier term of each Plus member; tier changes (a quarter of the members over the 760 days:
  upgrades, grace, kept, downgrades, paid tiers);
- coupons (3% of the ledger rows) of one template issued to members, a third redeemed at a till.

It then measures the last full month before today (or --month), headquarters scope (every store): for each
registered report kind, the kind's build (figures, tables, charts) with its detail read to the end, inside
`reports.frame.report_snapshot` as a report run does it (one read-only snapshot, work_mem 64MB), the median of
--rounds; beside it the anchor: hand-written SQL of the same numbers (the same aggregates, one statement per group
of numbers, no Django) on a raw psycopg connection in a transaction set up the same way, timed the same way. It
prints per kind the seconds, the anchor's seconds, the ratio and the targets of the issue (at most 10 s, at most 3x
the anchor), and checks that the headline figures the anchor computes equal the report's (exit status 1 if not).

    .venv/bin/python bench/reports.py                                     # 1,000,000 members, 10,000,000 rows
    .venv/bin/python bench/reports.py --members 50000 --ledger 500000     # a quick run
    .venv/bin/python bench/reports.py --keep          # keep the database for ...
    .venv/bin/python bench/reports.py --reuse         # ... measuring again without generating
    .venv/bin/python bench/reports.py --reuse --kinds cards,points --explain   # plans: anchors, slowest statement
    .venv/bin/python bench/reports.py --reuse --no-jit --work-mem 64MB        # other session settings, both sides
    .venv/bin/python bench/reports.py --reuse --store DEPT001                 # one store's reports, no anchors

A kind whose query module is missing is reported as such (the other kinds still run). The database is dropped at the
end unless --keep (or --reuse).
"""

import argparse
import contextlib
import importlib
import os
import statistics
import sys
import time
from datetime import date, timedelta

from _support import ROOT, SERVER, bench_database, migrate_with_stores

DATABASE = "retail_bench_reports"
TARGET_SECONDS = 10
TARGET_RATIO = 3
QUERY_MODULES = ("members", "tiers", "crossformat", "points", "cards", "staff", "programmes")
KIND_ORDER = ("cards", "members", "tiers", "cross_format", "points", "staff", "programmes")
HISTORY_DAYS = 760
# What reports.frame.report_snapshot gives a report run; the anchors run with the same.
SNAPSHOT_WORK_MEM = "64MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="Members to generate (default 1,000,000).")
    parser.add_argument("--ledger", type=int, default=10_000_000,
                        help="Ledger rows to generate: purchases, points entries and card ledger rows together "
                             "(default 10,000,000).")
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server URL without a database name.")
    parser.add_argument("--database", default=DATABASE,
                        help=f"The benchmark's database (default {DATABASE}); dropped and created afresh unless "
                             "--reuse.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of each (default 3); the median is kept.")
    parser.add_argument("--month", help="The month measured, YYYY-MM (default: the last full month).")
    parser.add_argument("--store", help="Measure a store's report (its code, e.g. DEPT001) instead of headquarters': "
                                        "the reports only, without anchors (they are written for headquarters).")
    parser.add_argument("--kinds", help="Only these report kinds, separated by commas (default: every kind).")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    parser.add_argument("--reuse", action="store_true",
                        help="Measure on the database a previous --keep run left, without generating (kept too).")
    parser.add_argument("--generate-only", action="store_true", help="Generate (and keep) the data, measure nothing.")
    parser.add_argument("--no-jit", action="store_true",
                        help="Run the reports and the anchors with PostgreSQL's JIT compilation off (jit = off).")
    parser.add_argument("--work-mem", help="Run the reports and the anchors with this work_mem (e.g. 64MB; default: "
                                           "the server's).")
    parser.add_argument("--explain", action="store_true",
                        help="Print the plans (EXPLAIN ANALYZE) of the anchors' statements and of the report's "
                             "slowest statement.")
    args = parser.parse_args()
    if args.members < 100 or args.ledger < max(args.members, 10_000):
        parser.error("--members must be at least 100 and --ledger at least 10,000 and at least --members")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not args.database.isidentifier() or not args.database.isascii() or args.database != args.database.lower():
        parser.error("--database must be a lower-case name of letters, digits and underscores")
    if args.work_mem and not (args.work_mem[:-2].isdigit() and args.work_mem[-2:] in ("kB", "MB", "GB")):
        parser.error("--work-mem must be a number with kB, MB or GB, e.g. 64MB")
    kinds = tuple(args.kinds.split(",")) if args.kinds else KIND_ORDER
    unknown = set(kinds) - set(KIND_ORDER)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))} (known: {', '.join(KIND_ORDER)})")
    try:
        month = date.fromisoformat(f"{args.month}-01") if args.month else None
    except ValueError:
        parser.error("--month must be YYYY-MM")
    if args.reuse:
        _django_on_existing(args.server.rstrip("/"), args.database)
        return measure(month=month, kinds=kinds, rounds=args.rounds, explain=args.explain, jit=not args.no_jit,
                       work_mem=args.work_mem, store=args.store)
    with bench_database(args.server, args.database, keep=args.keep or args.generate_only):
        started = time.perf_counter()
        migrate_with_stores()
        print(f"migrated and seeded stores in {time.perf_counter() - started:.1f}s")
        started = time.perf_counter()
        generate(members=args.members, ledger=args.ledger)
        print(f"generated in {time.perf_counter() - started:.1f}s")
        if args.generate_only:
            return 0
        return measure(month=month, kinds=kinds, rounds=args.rounds, explain=args.explain, jit=not args.no_jit,
                       work_mem=args.work_mem, store=args.store)


def _django_on_existing(server: str, database: str) -> None:
    os.environ["DATABASE_URL"] = f"{server}/{database}"
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


# --- generating the data ------------------------------------------------------------------------


def _next_id(cursor, table: str) -> int:
    """The id before the first row this benchmark writes into `table` (rows get base + 1, base + 2, ...)."""
    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
    return cursor.fetchone()[0]


def _sequence_sync(cursor, table: str) -> None:
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))")


# A member's registration fraction of the five years, from its number alone (a Lehmer generator), so that the
# purchases can be dated after the registration before the member rows exist.
def _registered_fraction(g: str) -> str:
    return f"((({g})::bigint * 48271) %% 2147483647)::float8 / 2147483647"


def clerks_create(stores: list) -> list[int]:
    """One service-desk clerk per store (a staff user scoped to it); return their ids in the stores' order."""
    from django.contrib.auth import get_user_model

    from stores.models import StaffProfile

    User = get_user_model()
    users = User.objects.bulk_create([
        User(username=f"clerk{pk}", is_staff=True, first_name="店员", last_name=str(pk)) for pk, *_rest in stores
    ])
    profiles = StaffProfile.objects.bulk_create([
        StaffProfile(user=user, scope=StaffProfile.Scope.STORES, employee_no=f"E{user.pk:05d}") for user in users
    ])
    through = StaffProfile.stores.through
    through.objects.bulk_create([
        through(staffprofile_id=profile.pk, store_id=store[0]) for profile, store in zip(profiles, stores, strict=True)
    ])
    return [user.pk for user in users]


def coupon_template():
    from decimal import Decimal

    from campaigns.models import CouponTemplate

    template, _created = CouponTemplate.objects.get_or_create(code="BENCH20", defaults={
        "name": "满200减20", "kind": CouponTemplate.Kind.AMOUNT_OFF, "status": CouponTemplate.Status.ACTIVE,
        "amount": Decimal("20.00"), "min_basket": Decimal("200.00"), "valid_days": 30, "per_member_limit": 100,
    })
    return template


def generate(*, members: int, ledger: int) -> None:
    """Every row of the benchmark, deterministic (setseed); see the module docstring."""
    from django.db import connection, transaction
    from django.utils import timezone
    from settlement_reconcile import card_product
    from tier_evaluation import _drop_secondary_indexes

    from campaigns.models import Coupon, CouponRedemption, CouponTemplate
    from cards.models import Card, CardLedgerEntry, CardTransaction, SaleLine, SaleOrder
    from membership.models import Member, PointsEntry, Purchase, Tier, TierChange, TierSubscription
    from stores.models import Store

    stores = list(Store.objects.order_by("pk").values_list("pk", "format_id", "format__legal_entity_id"))
    count = len(stores)

    def array(values) -> str:
        return "ARRAY[" + ",".join(str(value) for value in values) + "]::bigint[]"

    store_ids, format_ids = array(row[0] for row in stores), array(row[1] for row in stores)
    entity_ids = array(row[2] for row in stores)
    clerk_ids = array(clerks_create(stores))
    tiers = dict(Tier.objects.values_list("code", "pk"))
    product = card_product()
    template = coupon_template()
    purchases = ledger * 4 // 10
    cards = max(ledger // 25, 1000)
    group_cards = cards * 4 // 10 // 20 * 20
    group_orders, walk_in_orders = group_cards // 20, cards - group_cards
    coupons = ledger * 3 // 100
    changes = members // 4
    tables = {model: model._meta.db_table for model in (
        Member, Purchase, PointsEntry, TierChange, TierSubscription, Card, CardTransaction, CardLedgerEntry, SaleOrder,
        SaleLine, Coupon, CouponRedemption)}
    now = timezone.now()
    params = {"now": now, "members": members, "purchases": purchases, "cards": cards, "group_cards": group_cards,
              "group_orders": group_orders, "walk_in_orders": walk_in_orders, "coupons": coupons,
              "changes": changes, "product": product.pk, "template": template.pk, "history": HISTORY_DAYS,
              **{f"tier_{code.lower()}": pk for code, pk in tiers.items()}}
    pick_store = f"1 + floor(random() * {count})::int"

    def step(label: str, sql: str) -> int:
        started = time.perf_counter()
        cursor.execute(sql, params)
        rows = cursor.rowcount
        print(f"  {label}: {rows:,} rows in {time.perf_counter() - started:.1f}s", flush=True)
        return rows

    with transaction.atomic(), connection.cursor() as cursor:
        # Foreign keys and secondary indexes cost more row by row than once at the end.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cursor.execute("SET LOCAL work_mem = '128MB'")
        cursor.execute("SET LOCAL TIME ZONE 'Asia/Shanghai'")
        cursor.execute("SET LOCAL jit = off")
        rebuild = []
        for table in tables.values():
            rebuild += _drop_secondary_indexes(cursor, table)
        for key, model in (("member", Member), ("purchase", Purchase), ("card", Card), ("txn", CardTransaction),
                           ("order", SaleOrder), ("coupon", Coupon)):
            params[f"{key}_base"] = _next_id(cursor, tables[model])
        cursor.execute("SELECT setseed(0.2022)")

        # Purchases. A member index drawn as u^1.6 (low indexes buy often); never before the member registered.
        step("purchases", f"""
            INSERT INTO {tables[Purchase]} (
                id, member_id, store_id, format_id, legal_entity_id, terminal_id, receipt_no, amount,
                returned_amount, occurred_at, payment_method, lines, points_earned, promotions_text, created_at)
            SELECT %(purchase_base)s + d.g, %(member_base)s + d.member, ({store_ids})[s.pos], ({format_ids})[s.pos],
                   ({entity_ids})[s.pos], NULL, 'B' || d.g, d.amount,
                   CASE WHEN d.returned < 0.03 THEN round(d.amount * 0.3, 2) ELSE 0 END, t.at, 'cash', '[]',
                   CASE WHEN d.member IS NULL THEN 0 ELSE floor(d.amount)::int END, '', t.at
            FROM (SELECT g, CASE WHEN random() < 0.8 THEN 1 + floor(power(random(), 1.6) * %(members)s)::bigint
                                 END AS member,
                         round((5 * exp(random() * 6))::numeric, 2) AS amount, random() AS returned,
                         random() AS moment, random() AS own, random() AS other
                  FROM generate_series(1, %(purchases)s) g) d
            CROSS JOIN LATERAL (
                SELECT CASE WHEN d.member IS NOT NULL AND d.own < 0.7 THEN 1 + (d.member %% {count})
                            ELSE 1 + floor(d.other * {count})::int END AS pos) s
            CROSS JOIN LATERAL (
                SELECT greatest(%(now)s - %(history)s * interval '1 day',
                                %(now)s - {_registered_fraction('coalesce(d.member, 1)')} * interval '1825 days'
                                ) AS since) f
            CROSS JOIN LATERAL (
                SELECT CASE WHEN d.member IS NULL THEN %(now)s - d.moment * %(history)s * interval '1 day'
                            ELSE f.since + d.moment * (%(now)s - f.since) END AS at) t
        """)

        # The points ledger, staged to give each entry its running balance.
        step("points staged", f"""
            CREATE TEMP TABLE bench_points ON COMMIT DROP AS
            SELECT e.*, sum(e.points) OVER (PARTITION BY e.member_id ORDER BY e.created_at, e.seq) AS balance_after
            FROM (
                SELECT p.member_id, 'earn' AS kind, p.points_earned AS points, p.store_id, p.legal_entity_id,
                       p.receipt_no, p.occurred_at AS created_at, 3 * p.id AS seq
                FROM {tables[Purchase]} p WHERE p.member_id IS NOT NULL
                UNION ALL
                SELECT p.member_id, 'reversal', -floor(p.returned_amount)::int, p.store_id, p.legal_entity_id,
                       p.receipt_no, p.occurred_at + (%(now)s - p.occurred_at) * 0.05, 3 * p.id + 1
                FROM {tables[Purchase]} p WHERE p.member_id IS NOT NULL AND p.returned_amount >= 1
                UNION ALL
                SELECT s.member_id, s.kind, s.points, CASE WHEN s.kind = 'expire' THEN NULL ELSE s.store END,
                       CASE WHEN s.kind = 'expire' THEN NULL ELSE s.entity END, '', s.at, 3 * s.id + 2
                FROM (
                    SELECT p.member_id, p.id, ({store_ids})[x.pos] AS store, ({entity_ids})[x.pos] AS entity,
                           -greatest(1, floor((p.points_earned - floor(p.returned_amount)) * 0.9 * x.part))::int
                               AS points,
                           CASE WHEN x.r < 0.15 AND x.expiry < %(now)s THEN 'expire' WHEN x.r < 0.5 THEN 'redeem'
                                WHEN x.r < 0.8 THEN 'cash_out' ELSE 'gift' END AS kind,
                           CASE WHEN x.r < 0.15 AND x.expiry < %(now)s THEN x.expiry
                                ELSE p.occurred_at + (%(now)s - p.occurred_at) * (0.1 + 0.9 * x.moment) END AS at
                    FROM {tables[Purchase]} p
                    CROSS JOIN LATERAL (
                        SELECT random() + p.id * 0 AS r, random() AS part, random() AS moment, {pick_store} AS pos,
                               make_timestamptz(extract(year FROM p.occurred_at)::int + 1, 12, 31, 23, 59, 59)
                                   AS expiry) x
                    WHERE p.member_id IS NOT NULL AND p.points_earned - floor(p.returned_amount) >= 2
                      AND random() < 0.25
                ) s
            ) e
        """)
        step("points entries", f"""
            INSERT INTO {tables[PointsEntry]} (
                member_id, kind, points, balance_after, store_id, terminal_id, receipt_no, legal_entity_id,
                operator_id, reason, cause_type_id, cause_id, created_at)
            SELECT member_id, kind, points, balance_after, store_id, NULL, receipt_no, legal_entity_id, NULL, '',
                   NULL, '', created_at
            FROM bench_points ORDER BY created_at
        """)

        # Members, their points the sum of their entries.
        step("members", f"""
            INSERT INTO {tables[Member]} (
                id, member_no, name, name_initials, gender, birth_date, id_type, id_number_digest, id_number_sealed,
                id_number_masked, phone, family_phone, address, contact_channel, marketing_consent,
                marketing_consent_at, tier_id, tier_downgrade_on, paid_tier_id, paid_tier_until, points,
                points_debt, registered_store_id, registered_channel, partner_id, registered_by_id,
                registered_at, status, merged_into_id, notes, updated_at)
            SELECT %(member_base)s + g, '9' || lpad(g::text, 11, '0'), '会员' || g, 'hy',
                   (ARRAY['M','F','F','U'])[1 + (g %% 4)],
                   CASE WHEN r.birth < 0.9 THEN date '1940-01-01' + (r.birth / 0.9 * 65 * 365)::int END,
                   'none', NULL, '', '',
                   CASE WHEN r.phone < 0.85 THEN '13' || lpad(g::text, 9, '0') ELSE '' END,
                   CASE WHEN r.phone >= 0.85 AND r.phone < 0.95 THEN '139' || lpad(g::text, 8, '0') ELSE '' END,
                   CASE WHEN r.phone >= 0.85 THEN '重庆市渝中区' || g || '号' ELSE '' END,
                   CASE WHEN r.phone >= 0.95 THEN 'mail' WHEN r.contact < 0.2 THEN 'wechat'
                        WHEN r.contact < 0.9 THEN 'sms' ELSE 'call' END,
                   r.consent < 0.7, CASE WHEN r.consent < 0.7 THEN %(now)s END,
                   CASE WHEN r.tier < 0.60 THEN %(tier_normal)s WHEN r.tier < 0.85 THEN %(tier_silver)s
                        WHEN r.tier < 0.96 THEN %(tier_gold)s ELSE %(tier_platinum)s END, NULL,
                   CASE WHEN r.paid < 0.05 THEN %(tier_plus)s END,
                   CASE WHEN r.paid < 0.05 THEN %(now)s::date + (r.paid * 20 * 365)::int - 20 END,
                   coalesce(b.points, 0), 0, ({store_ids})[1 + (g %% {count})], c.channel, NULL,
                   CASE WHEN c.channel = 'desk' AND r.clerk < 0.8 THEN ({clerk_ids})[1 + (g %% {count})] END,
                   %(now)s - {_registered_fraction('g')} * interval '1825 days',
                   CASE WHEN r.status < 0.99 THEN 'active' WHEN r.status < 0.995 THEN 'frozen' ELSE 'closed' END,
                   NULL, '', %(now)s
            FROM generate_series(1, %(members)s) g
            CROSS JOIN LATERAL (SELECT g AS n, random() AS birth, random() AS phone, random() AS contact,
                                       random() AS consent, random() AS tier, random() AS paid, random() AS clerk,
                                       random() AS channel, random() AS status) r
            CROSS JOIN LATERAL (SELECT CASE WHEN r.channel < 0.6 THEN 'desk' WHEN r.channel < 0.75 THEN 'pos'
                                            WHEN r.channel < 0.9 THEN 'app' ELSE 'import' END AS channel) c
            LEFT JOIN (SELECT member_id, sum(points) AS points FROM bench_points GROUP BY member_id) b
                   ON b.member_id = %(member_base)s + g
        """)

        # The paid tier's current term of every member holding it.
        step("paid tier terms", f"""
            INSERT INTO {tables[TierSubscription]} (member_id, tier_id, kind, starts_on, ends_on, fee, payment_method,
                                                    store_id, operator_id, created_at)
            SELECT m.id, m.paid_tier_id, 'purchase', m.paid_tier_until - 364, m.paid_tier_until, 199.00, 'cash',
                   m.registered_store_id, NULL, (m.paid_tier_until - 364)::timestamptz
            FROM {tables[Member]} m WHERE m.paid_tier_id IS NOT NULL AND m.id > %(member_base)s
        """)
        step("tier changes", f"""
            INSERT INTO {tables[TierChange]} (member_id, from_tier_id, to_tier_id, reason, spend, note, actor_id,
                                              created_at)
            SELECT %(member_base)s + 1 + floor(random() * %(members)s)::bigint, t.from_tier, t.to_tier, c.reason,
                   round((2000 + random() * 30000)::numeric, 2), '', NULL,
                   %(now)s - random() * %(history)s * interval '1 day'
            FROM generate_series(1, %(changes)s) g
            CROSS JOIN LATERAL (SELECT random() + g * 0 AS r, random() AS up) k
            CROSS JOIN LATERAL (
                SELECT CASE WHEN k.r < 0.4 THEN 'upgrade' WHEN k.r < 0.55 THEN 'grace' WHEN k.r < 0.65 THEN 'kept'
                            WHEN k.r < 0.9 THEN 'downgrade' ELSE 'paid' END AS reason,
                       CASE WHEN k.r >= 0.9 THEN NULL WHEN k.r < 0.4 OR k.r >= 0.65 THEN
                            CASE WHEN k.up < 0.5 THEN %(tier_normal)s WHEN k.up < 0.8 THEN %(tier_silver)s
                                 ELSE %(tier_gold)s END
                            ELSE %(tier_silver)s END AS low,
                       CASE WHEN k.up < 0.5 THEN %(tier_silver)s WHEN k.up < 0.8 THEN %(tier_gold)s
                            ELSE %(tier_platinum)s END AS high) c
            CROSS JOIN LATERAL (
                SELECT CASE WHEN c.reason = 'upgrade' THEN c.low WHEN c.reason = 'downgrade' THEN c.high
                            WHEN c.reason = 'paid' THEN NULL ELSE %(tier_silver)s END AS from_tier,
                       CASE WHEN c.reason = 'upgrade' THEN c.high WHEN c.reason = 'downgrade' THEN c.low
                            WHEN c.reason = 'paid' THEN %(tier_plus)s ELSE %(tier_silver)s END AS to_tier) t
        """)

        # Card sale orders: group orders of 20 cards, walk-in orders of one, then a tenth of the cards topped up.
        step("sale orders staged", f"""
            CREATE TEMP TABLE bench_orders ON COMMIT DROP AS
            SELECT %(order_base)s + o AS id, o AS n,
                   CASE WHEN o <= %(group_orders)s THEN 'group' ELSE 'walk_in' END AS channel, 'sale' AS kind,
                   {pick_store} AS pos, %(now)s - random() * %(history)s * interval '1 day' AS completed_at
            FROM generate_series(1, %(group_orders)s + %(walk_in_orders)s) o
        """)
        step("cards staged", """
            CREATE TEMP TABLE bench_cards ON COMMIT DROP AS
            SELECT %(card_base)s + g AS id, g, o.id AS order_id, o.pos, o.completed_at AS sold_at,
                   (ARRAY[100, 200, 500, 1000])[1 + floor(random() * 4)::int]::numeric(14, 2) AS face,
                   random() < 0.1 AS topped_up, random() < 0.3 AS bound
            FROM generate_series(1, %(cards)s) g
            JOIN bench_orders o ON o.n = CASE WHEN g <= %(group_cards)s THEN (g - 1) / 20 + 1
                                              ELSE %(group_orders)s + g - %(group_cards)s END
        """)
        step("top-ups staged", """
            CREATE TEMP TABLE bench_topups ON COMMIT DROP AS
            SELECT %(order_base)s + %(group_orders)s + %(walk_in_orders)s + row_number() OVER (ORDER BY c.id)
                       AS order_id,
                   c.id AS card_id, c.pos, c.sold_at + (%(now)s - c.sold_at) * 0.5 AS at,
                   200.00::numeric(14, 2) AS amount
            FROM bench_cards c WHERE c.topped_up
        """)
        # Every movement of a card: loads, payments (0-7 per card, at any store, together at most 90% of the
        # face value, each after the sale), refunds of half a payment, reversals of whole payments.
        step("card payments staged", f"""
            CREATE TEMP TABLE bench_payments ON COMMIT DROP AS
            SELECT %(txn_base)s + row_number() OVER (ORDER BY c.id, i) AS txn_id, c.id AS card_id, p.pos,
                   round(c.face * 0.9 / (c.g %% 8) * (0.1 + 0.9 * random())::numeric, 2) AS amount,
                   c.sold_at + (%(now)s - c.sold_at) * (i - 1 + random()) / (c.g %% 8) AS at,
                   random() AS follow
            FROM bench_cards c CROSS JOIN LATERAL generate_series(1, (c.g %% 8)::int) i
            CROSS JOIN LATERAL (SELECT {pick_store} + i * 0 AS pos) p
        """)
        step("card follow-ups staged", """
            CREATE TEMP TABLE bench_followups ON COMMIT DROP AS
            SELECT (SELECT coalesce(max(txn_id), %(txn_base)s) FROM bench_payments)
                       + row_number() OVER (ORDER BY p.txn_id) AS txn_id,
                   p.txn_id AS original_id, p.card_id, p.pos,
                   CASE WHEN p.follow < 0.05 THEN 'refund' ELSE 'reverse' END AS kind,
                   CASE WHEN p.follow < 0.05 THEN greatest(round(p.amount * 0.5, 2), 0.01) ELSE p.amount END
                       AS amount,
                   p.at + (%(now)s - p.at) * CASE WHEN p.follow < 0.05 THEN 0.2 ELSE 0.001 END AS at
            FROM bench_payments p WHERE p.follow < 0.07
        """)
        step("card moves staged", """
            CREATE TEMP TABLE bench_moves ON COMMIT DROP AS
            SELECT m.*, sum(m.amount) OVER (PARTITION BY m.card_id ORDER BY m.at, m.seq) AS balance_after
            FROM (
                SELECT c.id AS card_id, 'load' AS kind, c.face AS amount, c.pos, c.sold_at AS at,
                       NULL::bigint AS txn_id, 0::bigint AS seq
                FROM bench_cards c
                UNION ALL
                SELECT t.card_id, 'load', t.amount, t.pos, t.at, NULL, 1 FROM bench_topups t
                UNION ALL
                SELECT p.card_id, 'debit', -p.amount, p.pos, p.at, p.txn_id, 2 * p.txn_id FROM bench_payments p
                UNION ALL
                SELECT f.card_id, f.kind, f.amount, f.pos, f.at, f.txn_id, 2 * f.txn_id + 1 FROM bench_followups f
            ) m
        """)
        step("card ledger", f"""
            INSERT INTO {tables[CardLedgerEntry]} (
                card_id, kind, amount, balance_after, store_id, terminal_id, receipt_no, legal_entity_id,
                operator_id, transaction_id, reason, cause_type_id, cause_id, created_at)
            SELECT m.card_id, m.kind, m.amount, m.balance_after, ({store_ids})[m.pos], NULL,
                   CASE WHEN m.txn_id IS NULL THEN '' ELSE 'R' || m.txn_id END, ({entity_ids})[m.pos], NULL,
                   m.txn_id, '', NULL, '', m.at
            FROM bench_moves m ORDER BY m.at
        """)
        step("card transactions", f"""
            INSERT INTO {tables[CardTransaction]} (
                id, transaction_id, kind, card_id, amount, discount, charged, refunded, balance_after, original_id,
                store_id, terminal_id, receipt_no, lines, business_date, reversed_at, created_at)
            SELECT m.txn_id, 'T' || m.txn_id, m.kind, m.card_id, abs(m.amount), 0, abs(m.amount),
                   coalesce(r.amount, 0), m.balance_after, f.original_id, ({store_ids})[m.pos], NULL,
                   'R' || m.txn_id, '[]', m.at::date, v.at, m.at
            FROM bench_moves m
            LEFT JOIN bench_followups f ON f.txn_id = m.txn_id
            LEFT JOIN bench_followups r ON r.original_id = m.txn_id AND r.kind = 'refund'
            LEFT JOIN bench_followups v ON v.original_id = m.txn_id AND v.kind = 'reverse'
            WHERE m.txn_id IS NOT NULL
        """)
        step("cards", f"""
            INSERT INTO {tables[Card]} (
                id, card_no, product_id, batch_id, face_value, status, freeze_reason, balance, stock_status,
                location_id, pin_hash, pin_failures, member_id, holder_name, sold_store_id, issuer_id, sale_order_id,
                activated_at, expires_at, replaced_by_id, legacy_source, created_at, updated_at)
            SELECT c.id, '8' || lpad(c.g::text, 15, '0'), %(product)s, NULL, c.face, 'active', '', b.balance, 'sold',
                   NULL, '', 0,
                   CASE WHEN c.bound THEN %(member_base)s + 1 + floor(random() * %(members)s)::bigint END, '',
                   ({store_ids})[c.pos], ({entity_ids})[c.pos], c.order_id, c.sold_at, NULL, NULL, '',
                   c.sold_at - interval '30 days', %(now)s
            FROM bench_cards c
            JOIN (SELECT card_id, sum(amount) AS balance FROM bench_moves GROUP BY card_id) b ON b.card_id = c.id
        """)
        # The orders: what was loaded onto their cards; group buyers get 2% off.
        step("sale orders", f"""
            INSERT INTO {tables[SaleOrder]} (
                id, order_no, kind, channel, store_id, status, remote, buyer_type, buyer_name, buyer_id_type,
                buyer_id_digest, buyer_id_sealed, buyer_id_masked, buyer_id_name, buyer_credit_code, buyer_phone,
                buyer_address, member_id, agent_name, agent_id_type, agent_id_digest, agent_id_sealed,
                agent_id_masked, agent_id_name, agent_phone, face_total, voucher_total, discount, rebate, amount_due,
                invoice_title, invoice_tax_no, invoice_item_code, split_suspected, note, created_by_id, created_at,
                completed_at)
            SELECT o.id, 'S' || o.id, o.kind, o.channel, ({store_ids})[o.pos], o.status, false,
                   CASE WHEN o.channel = 'group' THEN 'company' ELSE 'person' END,
                   CASE WHEN o.channel = 'group' THEN '企业' || o.id ELSE '' END, '', '', '', '', '',
                   CASE WHEN o.channel = 'group' THEN '91500000' || lpad(o.id::text, 10, '0') ELSE '' END,
                   '', '', NULL, '', '', '', '', '', '', '', o.face, 0, o.discount, 0, o.face - o.discount,
                   '', '', '601', false, '', ({clerk_ids})[o.pos], o.completed_at - interval '10 minutes',
                   CASE WHEN o.status = 'completed' THEN o.completed_at END
            FROM (
                SELECT o.id, o.kind, o.channel, o.pos, o.completed_at, 'completed' AS status, s.face,
                       CASE WHEN o.channel = 'group' THEN round(s.face * 0.02, 2) ELSE 0 END AS discount
                FROM bench_orders o JOIN (SELECT order_id, sum(face) AS face FROM bench_cards GROUP BY order_id) s
                     ON s.order_id = o.id
                UNION ALL
                SELECT t.order_id, 'top_up', 'walk_in', t.pos, t.at, 'completed', t.amount, 0 FROM bench_topups t
                UNION ALL
                SELECT (SELECT max(order_id) FROM (SELECT id AS order_id FROM bench_orders
                                                   UNION ALL SELECT order_id FROM bench_topups) a)
                           + row_number() OVER (ORDER BY o.id),
                       'sale', o.channel, o.pos, o.completed_at, 'cancelled', 500.00, 0
                FROM bench_orders o WHERE o.n %% 50 = 0
            ) o
        """)
        step("sale lines", f"""
            INSERT INTO {tables[SaleLine]} (order_id, card_id, amount)
            SELECT order_id, id, face FROM bench_cards
            UNION ALL
            SELECT order_id, card_id, amount FROM bench_topups
        """)

        # Coupons of one template issued to members over the history, a third redeemed at a till.
        step("coupons", f"""
            INSERT INTO {tables[Coupon]} (
                id, template_id, batch_id, code, member_id, status, valid_from, valid_until, issued_at,
                issued_store_id, closed_at)
            SELECT %(coupon_base)s + g, %(template)s, NULL, 'BC' || lpad(g::text, 12, '0'),
                   %(member_base)s + 1 + floor(random() * %(members)s)::bigint,
                   CASE WHEN k.r < 0.33 THEN 'redeemed' WHEN k.at + interval '30 days' < %(now)s THEN 'expired'
                        ELSE 'open' END,
                   k.at, k.at + interval '30 days', k.at, ({store_ids})[k.pos],
                   CASE WHEN k.r < 0.33 THEN k.at + k.r * interval '60 days'
                        WHEN k.at + interval '30 days' < %(now)s THEN k.at + interval '30 days' END
            FROM generate_series(1, %(coupons)s) g
            CROSS JOIN LATERAL (SELECT random() + g * 0 AS r, {pick_store} AS pos,
                                       %(now)s - interval '30 days' - random() * (%(history)s - 30) * interval '1 day'
                                           AS at) k
        """)
        step("coupon redemptions", f"""
            INSERT INTO {tables[CouponRedemption]} (
                coupon_id, template_id, member_id, store_id, terminal_id, receipt_no, basket_amount, discount, status,
                created_at, released_at, release_reason)
            SELECT c.id, c.template_id, c.member_id, c.issued_store_id, NULL, 'CR' || c.id,
                   round((200 + random() * 800)::numeric, 2), 20.00, 'redeemed', c.closed_at, NULL, ''
            FROM {tables[Coupon]} c WHERE c.status = 'redeemed' AND c.id > %(coupon_base)s
        """)
        cursor.execute(
            f"""
            UPDATE {CouponTemplate._meta.db_table} t SET
                issued_count = s.issued, redeemed_count = s.redeemed, expired_count = s.expired,
                discount_spent = s.redeemed * 20.00
            FROM (SELECT count(*) AS issued, count(*) FILTER (WHERE status = 'redeemed') AS redeemed,
                         count(*) FILTER (WHERE status = 'expired') AS expired
                  FROM {tables[Coupon]} WHERE template_id = %(template)s) s
            WHERE t.id = %(template)s
            """,
            params,
        )
        for table in (tables[Member], tables[Purchase], tables[Card], tables[CardTransaction], tables[SaleOrder],
                      tables[Coupon]):
            _sequence_sync(cursor, table)
        started = time.perf_counter()
        for statement in rebuild:
            cursor.execute(statement)
        print(f"  indexes rebuilt in {time.perf_counter() - started:.1f}s", flush=True)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in tables.values():
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("CHECKPOINT")
    print(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f}s", flush=True)
    consistency_check()


def consistency_check() -> None:
    """The generated balances equal their ledgers (what `check_ledgers` proves, as two sums here)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT (SELECT sum(points) FROM membership_member), (SELECT sum(points) FROM membership_pointsentry),
                   (SELECT count(*) FROM membership_member m
                    LEFT JOIN (SELECT member_id, sum(points) AS points FROM membership_pointsentry GROUP BY 1) e
                           ON e.member_id = m.id
                    WHERE m.points <> coalesce(e.points, 0))
                   + (SELECT count(*) FROM cards_card c
                      LEFT JOIN (SELECT card_id, sum(amount) AS amount FROM cards_cardledgerentry GROUP BY 1) e
                             ON e.card_id = c.id
                      WHERE c.balance <> coalesce(e.amount, 0)),
                   (SELECT sum(balance) FROM cards_card), (SELECT sum(amount) FROM cards_cardledgerentry),
                   (SELECT count(*) FROM membership_pointsentry WHERE balance_after < 0),
                   (SELECT count(*) FROM cards_cardledgerentry WHERE balance_after < 0)
        """)
        points, entries, accounts_off, balances, ledger, negative_points, negative_cards = cursor.fetchone()
        counts = {}
        for table in ("membership_member", "membership_purchase", "membership_pointsentry", "cards_cardledgerentry",
                      "cards_cardtransaction", "cards_saleorder", "cards_card", "membership_tierchange",
                      "campaigns_coupon"):
            cursor.execute(f"SELECT count(*) FROM {table}")
            counts[table] = cursor.fetchone()[0]
    ledger_rows = counts["membership_purchase"] + counts["membership_pointsentry"] + counts["cards_cardledgerentry"]
    print("  rows: " + ", ".join(f"{table} {rows:,}" for table, rows in counts.items())
          + f"; ledger rows together {ledger_rows:,}")
    good = points == entries and accounts_off == 0 and balances == ledger and not negative_points and not negative_cards
    print(f"  consistency: member points {points:,} = entries {entries:,}, card balances {balances:,} = ledger "
          f"{ledger:,}, accounts whose balance is not their ledger's sum {accounts_off}, negative running balances "
          f"{negative_points + negative_cards}: "
          + ("ok" if good else "FAILED"), flush=True)
    if not good:
        raise SystemExit("the generated data is inconsistent")



# --- the anchors: the same numbers in hand-written SQL -------------------------------------------------------------

LIVE = "('active', 'frozen')"
KEPT = "p.amount > p.returned_amount"
ZONE = "'Asia/Shanghai'"


def _month(column: str) -> str:
    """The local month of a moment (the first instant of it), to GROUP BY."""
    return f"date_trunc('month', {column}, {ZONE})"


class Anchors:
    """For each kind, the statements (name, SQL, parameters) a person would write by hand for the report's numbers
    (its figures, tables, charts and detail), and the comparison of their headline figures with the report's.

    Everything a statement needs (the period's instants, the months, the cutoffs) is prepared here, outside the
    timing; the statements run as they are on a psycopg connection. Python afterwards only adds up a handful of
    grouped rows (per store into per format) for the comparison, which is not timed."""

    def __init__(self, params):
        from django.conf import settings
        from django.utils import timezone

        from cards.models import CardRules
        from cards.queries.liability import quarter_ends
        from core.dates import moment_months_add, months_add
        from membership.models import PointsPolicy, Tier
        from membership.services.expiry import points_expiry_cutoff
        from settlement.queries.clearing import day_bounds

        self.params = params
        low, high = params.moments()
        previous = params.previous_year()
        first_month = months_add(params.end.replace(day=1), -12)
        local_high = timezone.localtime(high)
        policy = PointsPolicy.current()
        runs = [date(params.end.year + offset, 1, 1) for offset in range(1, min(policy.expiry_years + 1, 10) + 1)]
        self.expiry_runs = runs
        cutoffs = [points_expiry_cutoff(run_on=run_on, expiry_years=policy.expiry_years) for run_on in runs]
        self.rules = CardRules.current()
        self.gold_silver = list(Tier.objects.filter(code__in=("GOLD", "SILVER")).values_list("pk", flat=True))
        dormant_days = settings.SETTLEMENT_DORMANT_DAYS

        def since(days: int):
            return day_bounds(params.end - timedelta(days=days))[0]

        self.values = {
            "start": params.start, "end": params.end, "low": low, "high": high,
            "prev_low": previous.moments()[0], "prev_high": previous.moments()[1],
            "months_low": day_bounds(first_month)[0],
            "scope_since": moment_months_add(local_high, -12),
            "cohort_start": moment_months_add(local_high, -24), "cohort_end": moment_months_add(local_high, -12),
            "quarter_end": day_bounds(quarter_ends(today=params.end)[-1])[1],
            "dormant": since(dormant_days - 1), "since90": since(90), "since180": since(180), "since365": since(365),
            "first_cutoff": min([*cutoffs, high]),
            **{f"cutoff{index}": cutoff for index, cutoff in enumerate(cutoffs, 1)},
        }

    def statements(self, kind: str) -> list[tuple[str, str, dict]]:
        return [(name, sql, self.values) for name, sql in getattr(self, f"sql_{kind}")()]

    # cards -------------------------------------------------------------------------------------------------------

    def sql_cards(self):
        completed = "o.status = 'completed' AND o.completed_at >= %(low)s AND o.completed_at < %(high)s"
        spend = ("e.kind IN ('debit', 'refund', 'reverse') AND e.created_at >= %(low)s "
                 "AND e.created_at < %(high)s")
        payments = ("t.kind = 'debit' AND t.business_date BETWEEN %(start)s AND %(end)s "
                    "AND (t.reversed_at IS NULL OR t.reversed_at >= %(high)s)")
        return [
            ("sales", f"""SELECT o.store_id, o.channel, o.kind, sum(o.face_total), sum(o.amount_due), count(*)
                          FROM cards_saleorder o WHERE {completed} GROUP BY 1, 2, 3"""),
            ("last_year", """SELECT o.store_id, sum(o.face_total) FROM cards_saleorder o
                             WHERE o.status = 'completed' AND o.completed_at >= %(prev_low)s
                               AND o.completed_at < %(prev_high)s GROUP BY 1"""),
            ("spend", f"SELECT e.store_id, sum(e.amount) FROM cards_cardledgerentry e WHERE {spend} GROUP BY 1"),
            ("orders", f"SELECT t.store_id, count(*) FROM cards_cardtransaction t WHERE {payments} GROUP BY 1"),
            ("outstanding", """SELECT (SELECT sum(balance) FROM cards_card),
                                      sum(e.amount) FILTER (WHERE e.created_at >= %(high)s),
                                      sum(e.amount) FILTER (WHERE e.created_at >= %(quarter_end)s)
                               FROM cards_cardledgerentry e WHERE e.created_at >= least(%(high)s, %(quarter_end)s)"""),
            ("sales_by_month", f"""SELECT {_month('o.completed_at')}, sum(o.face_total) FROM cards_saleorder o
                                   WHERE o.status = 'completed' AND o.completed_at >= %(months_low)s
                                     AND o.completed_at < %(high)s GROUP BY 1"""),
            ("spend_by_month", f"""SELECT {_month('e.created_at')}, sum(e.amount) FROM cards_cardledgerentry e
                                   WHERE e.kind IN ('debit', 'refund', 'reverse') AND e.created_at >= %(months_low)s
                                     AND e.created_at < %(high)s GROUP BY 1"""),
            ("ageing", """
                SELECT c.issuer_id, b.bucket, sum(b.balance), count(*) FROM (
                    SELECT e.card_id, sum(e.amount) AS balance,
                           CASE WHEN max(e.created_at) < %(dormant)s THEN 'dormant'
                                WHEN max(e.created_at) FILTER (WHERE e.kind IN ('load', 'migration', 'transfer_in'))
                                     >= %(since90)s THEN 'days_0_90'
                                WHEN max(e.created_at) FILTER (WHERE e.kind IN ('load', 'migration', 'transfer_in'))
                                     >= %(since180)s THEN 'days_91_180'
                                WHEN max(e.created_at) FILTER (WHERE e.kind IN ('load', 'migration', 'transfer_in'))
                                     >= %(since365)s THEN 'days_181_365'
                                ELSE 'over_365' END AS bucket
                    FROM cards_cardledgerentry e WHERE e.created_at < %(high)s
                    GROUP BY e.card_id HAVING sum(e.amount) <> 0) b
                JOIN cards_card c ON c.id = b.card_id GROUP BY 1, 2"""),
            ("detail", f"""
                SELECT u.day, s.code, f.name, sum(u.sales), sum(u.walk_in), sum(u.group_sales), sum(u.spend),
                       sum(u.orders)
                FROM (
                    SELECT o.store_id, (o.completed_at AT TIME ZONE {ZONE})::date AS day, sum(o.face_total) AS sales,
                           sum(o.face_total) FILTER (WHERE o.channel = 'walk_in') AS walk_in,
                           sum(o.face_total) FILTER (WHERE o.channel = 'group') AS group_sales, 0 AS spend,
                           0 AS orders
                    FROM cards_saleorder o WHERE {completed} GROUP BY 1, 2
                    UNION ALL
                    SELECT e.store_id, (e.created_at AT TIME ZONE {ZONE})::date, 0, 0, 0, -sum(e.amount), 0
                    FROM cards_cardledgerentry e WHERE {spend} AND e.store_id IS NOT NULL GROUP BY 1, 2
                    UNION ALL
                    SELECT t.store_id, t.business_date, 0, 0, 0, 0, count(*)
                    FROM cards_cardtransaction t WHERE {payments} GROUP BY 1, 2
                ) u JOIN stores_store s ON s.id = u.store_id JOIN stores_format f ON f.id = s.format_id
                GROUP BY 1, 2, 3 ORDER BY 1, 2"""),
        ]

    def figures_cards(self, rows) -> dict:
        from cards.queries.liability import escrow_required

        sales = rows["sales"]
        now, since_end, since_quarter = rows["outstanding"][0]
        ageing = {}
        for _issuer, bucket, balance, _cards in rows["ageing"]:
            ageing[f"ageing_{bucket}"] = ageing.get(f"ageing_{bucket}", 0) + balance
        base = (now or 0) - (since_quarter or 0)
        return {
            "card_sales": sum(row[3] for row in sales),
            "walk_in_sales": sum(row[3] for row in sales if row[1] == "walk_in"),
            "group_sales": sum(row[3] for row in sales if row[1] == "group"),
            "card_sales_received": sum(row[4] for row in sales),
            "sale_orders": sum(row[5] for row in sales),
            "card_sales_last_year": sum(row[1] for row in rows["last_year"]),
            "card_spend": -sum(row[1] for row in rows["spend"]),
            "card_orders": sum(row[1] for row in rows["orders"]),
            "card_outstanding": (now or 0) - (since_end or 0),
            "escrow_required": escrow_required(balance=base, rate=self.rules.escrow_rate,
                                               guarantee=self.rules.escrow_guarantee),
            **ageing,
        }

    # members -----------------------------------------------------------------------------------------------------

    def sql_members(self):
        digital = "(m.phone <> '' OR m.registered_channel = 'app' OR m.contact_channel = 'wechat')"
        return [
            ("members", f"""SELECT m.registered_store_id, m.registered_channel, count(*),
                                   count(*) FILTER (WHERE {digital})
                            FROM membership_member m WHERE m.status IN {LIVE} AND m.registered_at < %(high)s
                            GROUP BY 1, 2"""),
            ("new", f"""SELECT m.registered_store_id, m.registered_channel, count(*),
                               count(*) FILTER (WHERE EXISTS (
                                   SELECT 1 FROM membership_purchase p WHERE p.member_id = m.id AND {KEPT}
                                     AND p.occurred_at >= m.registered_at AND p.occurred_at < %(high)s))
                        FROM membership_member m WHERE m.status IN {LIVE} AND m.registered_at >= %(low)s
                          AND m.registered_at < %(high)s GROUP BY 1, 2"""),
            ("sales", """SELECT p.store_id, sum(p.amount - p.returned_amount),
                                sum(p.amount - p.returned_amount) FILTER (WHERE p.member_id IS NOT NULL)
                         FROM membership_purchase p WHERE p.occurred_at >= %(low)s AND p.occurred_at < %(high)s
                         GROUP BY 1"""),
            ("consuming", f"""SELECT grouping(p.store_id, p.format_id, m.registered_channel), p.store_id,
                                     p.format_id, m.registered_channel,
                                     count(DISTINCT p.member_id) FILTER (WHERE {KEPT}),
                                     sum(p.amount - p.returned_amount)
                              FROM membership_purchase p JOIN membership_member m ON m.id = p.member_id
                              WHERE p.occurred_at >= %(low)s AND p.occurred_at < %(high)s
                              GROUP BY GROUPING SETS ((), (p.store_id), (p.format_id), (m.registered_channel))"""),
            ("buyers_elsewhere_by_store", f"""
                SELECT p.store_id, count(DISTINCT p.member_id)
                FROM membership_purchase p JOIN membership_member m ON m.id = p.member_id
                WHERE p.occurred_at >= %(scope_since)s AND p.occurred_at < %(high)s AND m.status IN {LIVE}
                  AND m.registered_at < %(high)s AND m.registered_store_id IS DISTINCT FROM p.store_id
                GROUP BY 1"""),
            ("buyers_elsewhere_by_format", f"""
                SELECT p.format_id, count(DISTINCT p.member_id)
                FROM membership_purchase p JOIN membership_member m ON m.id = p.member_id
                LEFT JOIN stores_store r ON r.id = m.registered_store_id
                WHERE p.occurred_at >= %(scope_since)s AND p.occurred_at < %(high)s AND m.status IN {LIVE}
                  AND m.registered_at < %(high)s AND r.format_id IS DISTINCT FROM p.format_id
                GROUP BY 1"""),
            ("repurchase", f"""
                WITH firsts AS (
                    SELECT p.member_id, min(p.occurred_at) AS first FROM membership_purchase p
                    WHERE p.member_id IS NOT NULL AND {KEPT} AND p.occurred_at < %(cohort_end)s GROUP BY 1)
                SELECT count(*), count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM membership_purchase p WHERE p.member_id = f.member_id AND {KEPT}
                      AND p.occurred_at >= f.first + interval '1 day'
                      AND p.occurred_at < f.first + interval '365 days'))
                FROM firsts f WHERE f.first >= %(cohort_start)s"""),
            ("new_by_month", f"""SELECT {_month('m.registered_at')}, count(*) FROM membership_member m
                                 WHERE m.status IN {LIVE} AND m.registered_at >= %(months_low)s
                                   AND m.registered_at < %(high)s GROUP BY 1"""),
        ]

    def figures_members(self, rows) -> dict:
        consuming = [row for row in rows["consuming"] if row[0] == 7]
        repurchase = rows["repurchase"][0]
        return {
            "members_total": sum(row[2] for row in rows["members"]),
            "members_digital": sum(row[3] for row in rows["members"]),
            "members_new": sum(row[2] for row in rows["new"]),
            "new_members_converted": sum(row[3] for row in rows["new"]),
            "members_consuming": consuming[0][4] if consuming else 0,
            "sales_total": sum(row[1] or 0 for row in rows["sales"]),
            "member_sales": sum(row[2] or 0 for row in rows["sales"]),
            "first_year_cohort": repurchase[0],
            "first_year_repurchased": repurchase[1],
        }

    # tiers -------------------------------------------------------------------------------------------------------

    def sql_tiers(self):
        # A member's earned tier at the end: the from_tier of the first earned-tier change after it, else today's.
        after = """WITH after AS (
                       SELECT DISTINCT ON (c.member_id) c.member_id, c.from_tier_id FROM membership_tierchange c
                       JOIN membership_tier t ON t.id = c.from_tier_id AND t.kind = 'earned'
                       WHERE c.created_at >= %(high)s ORDER BY c.member_id, c.created_at, c.id)"""
        running = "s.starts_on <= %(end)s AND s.ends_on >= %(end)s"
        return [
            ("mix", f"""{after}
                        SELECT coalesce(a.from_tier_id, m.tier_id), count(*) FROM membership_member m
                        LEFT JOIN after a ON a.member_id = m.id
                        WHERE m.status IN {LIVE} AND m.registered_at < %(high)s GROUP BY 1"""),
            ("sales", f"""{after}
                          SELECT coalesce(a.from_tier_id, m.tier_id), sum(p.amount - p.returned_amount)
                          FROM membership_purchase p JOIN membership_member m ON m.id = p.member_id
                          LEFT JOIN after a ON a.member_id = m.id
                          WHERE p.occurred_at >= %(low)s AND p.occurred_at < %(high)s GROUP BY 1"""),
            ("paid_mix", f"""SELECT s.tier_id, count(DISTINCT s.member_id) FROM membership_tiersubscription s
                             JOIN membership_member m ON m.id = s.member_id
                             WHERE {running} AND m.status IN {LIVE} AND m.registered_at < %(high)s GROUP BY 1"""),
            ("paid_sales", f"""SELECT s.tier_id, sum(p.amount - p.returned_amount) FROM membership_purchase p
                               JOIN (SELECT DISTINCT s.tier_id, s.member_id FROM membership_tiersubscription s
                                     WHERE {running}) s ON s.member_id = p.member_id
                               WHERE p.occurred_at >= %(low)s AND p.occurred_at < %(high)s GROUP BY 1"""),
            ("changes", """SELECT c.reason, count(*) FROM membership_tierchange c
                           WHERE c.created_at >= %(low)s AND c.created_at < %(high)s GROUP BY 1"""),
            ("detail", """SELECT c.created_at, m.member_no, f.name, t.name, c.reason
                          FROM membership_tierchange c JOIN membership_member m ON m.id = c.member_id
                          LEFT JOIN membership_tier f ON f.id = c.from_tier_id
                          LEFT JOIN membership_tier t ON t.id = c.to_tier_id
                          WHERE c.created_at >= %(low)s AND c.created_at < %(high)s ORDER BY c.created_at, c.id"""),
        ]

    def figures_tiers(self, rows) -> dict:
        changes = dict(rows["changes"])
        mix, sales = dict(rows["mix"]), dict(rows["sales"])
        return {
            "members_total": sum(mix.values()),
            "gold_silver_members": sum(mix.get(pk, 0) for pk in self.gold_silver),
            "member_sales": sum(sales.values()),
            "gold_silver_sales": sum(sales.get(pk, 0) for pk in self.gold_silver),
            "paid_tier_members": sum(row[1] for row in rows["paid_mix"]),
            "upgrades": changes.get("upgrade", 0), "downgrades": changes.get("downgrade", 0),
            "paid_tier_terms": changes.get("paid", 0) + changes.get("renewal", 0),
        }

    # cross-format ------------------------------------------------------------------------------------------------

    def sql_cross_format(self):
        kept_period = (f"p.member_id IS NOT NULL AND {KEPT} AND p.occurred_at >= %(low)s "
                       "AND p.occurred_at < %(high)s")
        pairs = f"SELECT DISTINCT p.member_id, p.format_id FROM membership_purchase p WHERE {kept_period}"
        return [
            ("multi", f"""SELECT count(*), count(*) FILTER (WHERE n >= 2) FROM (
                              SELECT p.member_id, count(DISTINCT p.format_id) AS n FROM membership_purchase p
                              WHERE {kept_period} GROUP BY 1) m"""),
            ("flow", f"""WITH mf AS ({pairs})
                         SELECT a.format_id, b.format_id, count(*) FROM mf a JOIN mf b ON b.member_id = a.member_id
                         GROUP BY 1, 2"""),
            ("origins", f"""
                WITH f AS (
                    SELECT p.member_id, p.format_id, min(p.occurred_at) AS first_at FROM membership_purchase p
                    WHERE p.member_id IN (SELECT p.member_id FROM membership_purchase p WHERE {kept_period})
                      AND {KEPT} AND p.occurred_at < %(high)s GROUP BY 1, 2)
                SELECT f.format_id, CASE WHEN o.first_at < f.first_at THEN o.origin END, count(*)
                FROM f JOIN (SELECT DISTINCT ON (member_id) member_id, format_id AS origin, first_at FROM f
                             ORDER BY member_id, first_at, format_id) o ON o.member_id = f.member_id
                WHERE f.first_at >= %(low)s GROUP BY 1, 2"""),
        ]

    def figures_cross_format(self, rows) -> dict:
        consuming, multi = rows["multi"][0]
        return {
            "consuming_members": consuming, "multi_format_members": multi,
            "format_new_members": sum(row[2] for row in rows["origins"]),
            "format_new_from_other_formats": sum(row[2] for row in rows["origins"] if row[1] is not None),
        }

    # points ------------------------------------------------------------------------------------------------------

    def sql_points(self):
        runs = len(self.expiry_runs)
        credits = ", ".join(
            f"CASE WHEN e.points > 0 AND e.created_at >= %(cutoff{index})s AND e.created_at < %(high)s "
            f"THEN e.points ELSE 0 END AS c{index}" for index in range(1, runs + 1))
        zeros = ", ".join(f"0 AS c{index}" for index in range(1, runs + 1))
        sums = ", ".join(f"sum(c{index}) AS c{index}" for index in range(1, runs + 1))
        taken, previous = [], "bal"
        for index in range(1, runs + 1):
            taken.append(f"sum(greatest(least(bal, {previous}) - c{index}, 0))")
            previous = f"c{index}"
        return [
            ("moves", """SELECT s.format_id, e.kind, sum(e.points) FROM membership_pointsentry e
                         LEFT JOIN stores_store s ON s.id = e.store_id
                         WHERE e.created_at >= %(low)s AND e.created_at < %(high)s GROUP BY 1, 2"""),
            ("outstanding", """SELECT (SELECT sum(points) FROM membership_member),
                                      (SELECT sum(points) FROM membership_pointsentry WHERE created_at >= %(high)s)"""),
            ("by_month", f"""SELECT {_month('e.created_at')}, sum(e.points) FILTER (WHERE e.kind = 'earn'),
                                    -sum(e.points) FILTER (WHERE e.kind IN ('redeem', 'cash_out', 'gift'))
                             FROM membership_pointsentry e
                             WHERE e.created_at >= %(months_low)s AND e.created_at < %(high)s GROUP BY 1"""),
            ("expiry", f"""
                SELECT {', '.join(taken)} FROM (
                    SELECT mid, sum(bal) AS bal, {sums} FROM (
                        SELECT m.id AS mid, m.points AS bal, {zeros} FROM membership_member m WHERE m.points > 0
                        UNION ALL
                        SELECT e.member_id, CASE WHEN e.created_at >= %(high)s THEN -e.points ELSE 0 END, {credits}
                        FROM membership_pointsentry e WHERE e.created_at >= %(first_cutoff)s
                    ) u GROUP BY mid) m"""),
        ]

    def figures_points(self, rows) -> dict:
        kinds = {}
        for _format, kind, points in rows["moves"]:
            kinds[kind] = kinds.get(kind, 0) + points
        now, since = rows["outstanding"][0]
        return {
            "points_earned": kinds.get("earn", 0),
            "points_redeemed": -sum(kinds.get(kind, 0) for kind in ("redeem", "cash_out", "gift")),
            "points_cashed_out": -kinds.get("cash_out", 0), "points_gifts": -kinds.get("gift", 0),
            "points_expired": -kinds.get("expire", 0), "points_adjusted": kinds.get("adjust", 0),
            "points_reversed": -kinds.get("reversal", 0),
            "points_outstanding": (now or 0) - (since or 0),
            "points_expiring_next": rows["expiry"][0][0] or 0,
        }

    # staff -------------------------------------------------------------------------------------------------------

    def sql_staff(self):
        registered = ("m.status IN " + LIVE + " AND m.registered_at >= %(low)s AND m.registered_at < %(high)s")
        first = f"""SELECT min(p.occurred_at) FROM membership_purchase p WHERE p.member_id = m.id AND {KEPT}
                      AND p.occurred_at >= m.registered_at AND p.occurred_at < %(high)s"""
        return [
            ("new", f"SELECT count(*) FROM membership_member m WHERE {registered}"),
            ("clerks", f"""SELECT u.username, u.last_name || u.first_name, sp.employee_no, s.code, s.name,
                                  count(*), count(*) FILTER (WHERE EXISTS (
                                      SELECT 1 FROM membership_purchase p WHERE p.member_id = m.id AND {KEPT}
                                        AND p.occurred_at >= m.registered_at AND p.occurred_at < %(high)s))
                           FROM membership_member m JOIN auth_user u ON u.id = m.registered_by_id
                           LEFT JOIN stores_staffprofile sp ON sp.user_id = u.id
                           LEFT JOIN stores_store s ON s.id = m.registered_store_id
                           WHERE {registered} GROUP BY u.id, sp.employee_no, s.id ORDER BY 6 DESC, 1, 4"""),
            ("detail", f"""SELECT m.registered_at, m.member_no, s.code, u.username, ({first})
                           FROM membership_member m JOIN auth_user u ON u.id = m.registered_by_id
                           LEFT JOIN stores_store s ON s.id = m.registered_store_id
                           WHERE {registered} ORDER BY m.registered_at, m.id"""),
        ]

    def figures_staff(self, rows) -> dict:
        return {"registered_by_staff": sum(row[5] for row in rows["clerks"]),
                "staff_first_purchases": sum(row[6] for row in rows["clerks"])}

    # programmes --------------------------------------------------------------------------------------------------

    def sql_programmes(self):
        redeemed = ("r.created_at >= %(low)s AND r.created_at < %(high)s "
                    "AND (r.released_at IS NULL OR r.released_at >= %(high)s)")
        return [
            ("issued", """SELECT c.template_id, count(*) FROM campaigns_coupon c
                          WHERE c.issued_at >= %(low)s AND c.issued_at < %(high)s GROUP BY 1"""),
            ("redeemed", f"""SELECT s.format_id, r.template_id, count(*), sum(r.discount)
                             FROM campaigns_couponredemption r JOIN stores_store s ON s.id = r.store_id
                             WHERE {redeemed} GROUP BY 1, 2"""),
            ("given_back", """SELECT count(*) FROM campaigns_couponredemption r
                              WHERE r.released_at >= %(low)s AND r.released_at < %(high)s"""),
            ("campaigns", """SELECT count(*) FROM campaigns_targetedcampaign t
                             WHERE (t.status IN ('running', 'ended') OR t.started_at IS NOT NULL)
                               AND t.starts_on <= %(end)s AND t.ends_on >= %(start)s"""),
            ("brands", """SELECT s.format_id, d.brand_id, sum(d.eligible_amount), sum(d.discount),
                                 sum(d.brand_amount), count(*)
                          FROM cards_branddiscount d JOIN stores_store s ON s.id = d.store_id
                          WHERE d.business_date BETWEEN %(start)s AND %(end)s GROUP BY 1, 2"""),
            ("vouchers", """SELECT v.product_id, count(*) FILTER (WHERE e.kind = 'issue'),
                                   count(*) FILTER (WHERE e.kind = 'redeem'),
                                   -sum(e.quantity) FILTER (WHERE e.kind = 'redeem')
                            FROM cards_voucherledgerentry e JOIN cards_voucher v ON v.id = e.voucher_id
                            WHERE e.kind IN ('issue', 'redeem') AND e.created_at >= %(low)s
                              AND e.created_at < %(high)s GROUP BY 1"""),
            ("recon", """SELECT x.kind, count(*), count(*) FILTER (WHERE x.resolved_at IS NULL
                                                                  OR x.resolved_at >= %(high)s)
                         FROM settlement_reconexception x JOIN settlement_reconday d ON d.id = x.day_id
                         WHERE d.business_date BETWEEN %(start)s AND %(end)s GROUP BY 1"""),
            ("detail", """SELECT r.created_at, s.code, f.name, t.code, t.name, r.receipt_no, r.basket_amount,
                                 r.discount, r.released_at
                          FROM campaigns_couponredemption r JOIN stores_store s ON s.id = r.store_id
                          JOIN stores_format f ON f.id = s.format_id
                          JOIN campaigns_coupontemplate t ON t.id = r.template_id
                          WHERE r.created_at >= %(low)s AND r.created_at < %(high)s ORDER BY r.created_at, r.id"""),
        ]

    def figures_programmes(self, rows) -> dict:
        return {
            "coupons_issued": sum(row[1] for row in rows["issued"]),
            "coupons_redeemed": sum(row[2] for row in rows["redeemed"]),
            "coupon_discount": sum(row[3] for row in rows["redeemed"]),
            "coupons_given_back": rows["given_back"][0][0],
            "targeted_campaigns": rows["campaigns"][0][0],
            "brand_discount": sum(row[3] for row in rows["brands"]),
            "vouchers_redeemed": sum(row[3] or 0 for row in rows["vouchers"]),
            "recon_exceptions_total": sum(row[1] for row in rows["recon"]),
            "recon_exceptions_open": sum(row[2] for row in rows["recon"]),
        }

    # comparing ---------------------------------------------------------------------------------------------------

    def compare(self, kind: str, report, rows) -> list[tuple[str, object, object]]:
        """(key, anchor's value, report's value) of every headline figure on which they differ."""
        differences = []
        for key, mine in getattr(self, f"figures_{kind}")(rows).items():
            try:
                theirs = report.figure(key).value
            except KeyError:
                differences.append((key, mine, "missing"))
                continue
            if (theirs or 0) != (mine or 0):
                differences.append((key, mine, theirs))
        return differences


# --- measuring ----------------------------------------------------------------------------------------------------


def kinds_registered() -> dict:
    """The registered report kinds: every query module that exists is imported (reports.kinds imports all seven and
    fails while one is missing)."""
    from reports.frame import KINDS

    for name in QUERY_MODULES:
        try:
            importlib.import_module(f"reports.queries.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"reports.queries.{name}":
                raise
            print(f"reports.queries.{name} does not exist yet")
    return KINDS


class StatementClock:
    """Times every statement Django sends (connection.execute_wrapper), to name the slowest of a report."""

    def __init__(self):
        self.statements: list[tuple[float, str, object]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append((time.perf_counter() - started, sql, params))


def report_time(build, params, settings: list[str]) -> tuple[float, object, int, StatementClock]:
    """Build the report and read its detail to the end as a report run does (inside reports.frame.report_snapshot
    where it exists: one read-only snapshot with its work_mem), then `settings`; (seconds, report, detail rows,
    the statements' clock)."""
    from django.db import connection

    from reports import frame

    snapshot = getattr(frame, "report_snapshot", contextlib.nullcontext)
    clock = StatementClock()
    with connection.execute_wrapper(clock):
        started = time.perf_counter()
        with snapshot():
            if settings:
                with connection.cursor() as cursor:
                    for statement in settings:
                        cursor.execute(statement)
            report = build(params)
            for table in report.tables:
                for _row in table:
                    pass
            rows = 0
            if report.detail is not None:
                for _row in report.detail:
                    rows += 1
        seconds = time.perf_counter() - started
    return seconds, report, rows, clock


def anchor_time(raw, statements: list[tuple[str, str, dict]],
                settings: list[str]) -> tuple[float, dict[str, list], dict[str, float]]:
    """Run each (name, sql, params) on the raw connection in one transaction set up as a report run's (read-only
    snapshot, work_mem 64MB, then `settings`) and read every row; (seconds, rows by name, seconds by name)."""
    results, seconds = {}, {}
    started = time.perf_counter()
    with raw.transaction():
        raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        raw.execute(f"SET LOCAL work_mem = '{SNAPSHOT_WORK_MEM}'")
        for name, sql, values in statements:
            begun = time.perf_counter()
            results[name] = raw.execute(sql, values).fetchall()
            seconds[name] = time.perf_counter() - begun
    return time.perf_counter() - started, results, seconds


def measure(*, month: date | None, kinds: tuple[str, ...], rounds: int, explain: bool, jit: bool = True,
            work_mem: str | None = None, store: str | None = None) -> int:
    import psycopg
    from django.db import connection
    from django.utils import timezone

    from reports.frame import ReportParams

    today = timezone.localdate()
    if month is None:
        month = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    end = (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    params = ReportParams(start=month, end=end)
    scope = "headquarters (every store)"
    if store:
        from stores.models import Store

        found = Store.objects.filter(code=store).select_related("format").first()
        if found is None:
            print(f"no store {store}")
            return 2
        params = ReportParams(start=month, end=end, store_ids=(found.pk,), format_codes=(found.format.code,))
        scope = f"store {found.code} only, without anchors"
    registered = kinds_registered()
    with connection.cursor() as cursor:
        settings = session_settings(jit=jit, work_mem=work_mem)
        # Every measurement below starts from the same warm cache.
        for table in ("membership_member", "membership_purchase", "membership_pointsentry", "cards_cardledgerentry",
                      "cards_cardtransaction", "cards_saleorder", "cards_card"):
            cursor.execute(f"SELECT count(*) FROM {table}")
    consistency_check()
    print(f"period {params.start} - {params.end}, {scope}; {rounds} rounds, the median kept; "
          f"JIT {'on' if jit else 'off'}, work_mem {work_mem or SNAPSHOT_WORK_MEM} "
          f"(a report run's: {SNAPSHOT_WORK_MEM})")
    load_start = os.getloadavg()[0]
    anchors = Anchors(params)
    results = []
    failures = 0
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as raw:
        raw.execute("SET TIME ZONE 'Asia/Shanghai'")
        for statement in settings:
            raw.execute(statement)
        for kind in kinds:
            statements = [] if store else anchors.statements(kind)
            anchor_times, anchor_rows, anchor_parts = [0.0], {}, {}
            for _round in range(rounds if statements else 0):
                seconds, anchor_rows, anchor_parts = anchor_time(raw, statements, settings)
                anchor_times.append(seconds)
            anchor = statistics.median(anchor_times)
            if kind not in registered:
                print(f"{kind:13s} not registered yet (its query module is missing); anchor {anchor:.2f}s")
                results.append((kind, None, anchor, None))
                continue
            times, report, rows, clock = [], None, 0, None
            for _round in range(rounds):
                seconds, report, rows, clock = report_time(registered[kind].build, params, settings)
                times.append(seconds)
            product = statistics.median(times)
            ratio = product / anchor if anchor else float("inf")
            misses = []
            if product > TARGET_SECONDS:
                misses.append(f"above {TARGET_SECONDS} s")
            if statements and ratio > TARGET_RATIO:
                misses.append(f"above {TARGET_RATIO}x the anchor")
            print(f"{kind:13s} report {product:6.2f}s (rounds {' '.join(f'{t:.2f}' for t in times)}; "
                  f"{len(clock.statements)} statements, {rows:,} detail rows)  anchor {anchor:6.2f}s "
                  f"({len(statements)} statements)  ratio {_ratio_text(ratio):>5s}  "
                  + ("; ".join(misses) or "on target"),
                  flush=True)
            differences = anchors.compare(kind, report, anchor_rows) if statements else []
            for key, mine, theirs in differences:
                print(f"    figure {key}: report {theirs}, anchor {mine}")
            failures += bool(differences)
            if misses or explain:
                print("    anchor's statements (last round): "
                      + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in anchor_parts.items()))
                print("    the report's slowest statements (last round):")
                slowest = sorted(clock.statements, key=lambda item: item[0], reverse=True)[:3]
                for seconds, sql, _values in slowest:
                    print(f"    {seconds:6.2f}s  {' '.join(sql.split())[:300]}")
                if slowest:
                    _explain(slowest[0][1], slowest[0][2], settings)
            if explain:
                for name, sql, values in statements:
                    print(f"    anchor {name}:")
                    plans, _seconds = anchor_time(raw, [(name, f"EXPLAIN (ANALYZE, BUFFERS) {sql}", values)],
                                                  settings)[1:]
                    print("\n".join("      " + row[0] for row in plans[name]))
            results.append((kind, product, anchor, ratio))
    print()
    print(f"{'kind':13s} {'seconds':>8s} {'anchor':>8s} {'ratio':>6s}  targets: <= {TARGET_SECONDS} s, "
          f"<= {TARGET_RATIO}x")
    for kind, product, anchor, ratio in results:
        if product is None:
            print(f"{kind:13s} {'-':>8s} {anchor:8.2f} {'-':>6s}  not registered")
            continue
        verdict = "ok" if product <= TARGET_SECONDS and (store or ratio <= TARGET_RATIO) else "MISSED"
        print(f"{kind:13s} {product:8.2f} {anchor:8.2f} {_ratio_text(ratio):>6s}  {verdict}")
    print(f"load average {load_start:.2f} at the start, "
          f"{' '.join(f'{value:.2f}' for value in os.getloadavg())} at the end, on {os.cpu_count()} cores")
    if failures:
        print(f"FAILED: {failures} kinds whose figures differ from the anchor's")
    return 1 if failures else 0


def _ratio_text(ratio: float) -> str:
    return "-" if ratio == float("inf") else f"{ratio:.2f}"


def session_settings(*, jit: bool, work_mem: str | None) -> list[str]:
    """The SET LOCAL statements the report's and the anchor's transactions run first, after a report run's own."""
    statements = [] if jit else ["SET LOCAL jit = off"]
    if work_mem:
        statements.append(f"SET LOCAL work_mem = '{work_mem}'")
    return statements


def _explain(sql: str, values, settings: list[str]) -> None:
    """EXPLAIN ANALYZE a report's statement in a transaction set up as the report's was."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL work_mem = '{SNAPSHOT_WORK_MEM}'")
        for statement in settings:
            cursor.execute(statement)
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", values)
        print("\n".join("      " + row[0] for row in cursor.fetchall()))


if __name__ == "__main__":
    sys.exit(main())
