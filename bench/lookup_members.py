"""Benchmark: POS member lookup through the whole Django stack against the bare SQL of the same lookup.

Creates a fresh PostgreSQL database (retail_bench_lookup), migrates it, loads
a million members with COPY (phones shared by families, ID numbers sealed and
digested with core.pii like a registration), then calls
GET /api/v1/members/lookup?phone= and ?id_number= with a terminal key through
django.test.Client (URL routing, middleware, terminal authentication,
throttling, validation, serialisation) for random existing values, and runs
the SQL that lookup executes on a raw cursor as the anchor.

    .venv/bin/python bench/lookup_members.py                  # 1,000,000 members, 2,000 lookups each
    .venv/bin/python bench/lookup_members.py --members 50000  # a quick run

Prints median and p95 in milliseconds and the ratio API/SQL; the target is an
API median under 10 ms. The CPU time of the request in this process is printed
too: on a shared machine it moves less than the wall-clock time. The database
is dropped at the end unless --keep.
"""

import argparse
import os
import random
import statistics
import sys
import time
from datetime import date, timedelta
from functools import lru_cache

from _support import SERVER, bench_database, migrate_with_stores

DATABASE = "retail_bench_lookup"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000, help="Members to load (default 1,000,000).")
    parser.add_argument("--lookups", type=int, default=2000, help="Lookups of each kind (default 2,000).")
    parser.add_argument("--server", default=SERVER,
                        help="PostgreSQL server URL without a database name.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()
    if args.members < 10 or args.lookups < 10:
        parser.error("--members and --lookups must be at least 10")

    with bench_database(args.server, DATABASE, keep=args.keep, environ={
        # The throttle still runs on every call; the limit only has to let the benchmark's calls through.
        "POS_RATE_LIMIT": "1000000/min",
    }):
        return run(members=args.members, lookups=args.lookups)


def run(*, members: int, lookups: int) -> int:

    from stores.services import terminal_create

    started = time.perf_counter()
    migrate_with_stores()
    _terminal, key = terminal_create(store_code="DEPT001", name="BENCH")
    print(f"migrated and seeded stores in {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    samples = load_members(count=members, lookups=lookups)
    elapsed = time.perf_counter() - started
    print(f"loaded {members:,} members in {elapsed:.1f}s ({members / elapsed:,.0f} rows/s)")

    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    failures = 0
    for field in ("phone", "id_number"):
        values = samples[field]
        explain(field, values[0])
        api_ms, cpu_ms, misses = measure_api(client, field, values)
        sql_ms = measure_sql(field, values)
        failures += misses
        api_median, sql_median = statistics.median(api_ms), statistics.median(sql_ms)
        print(
            f"{field:>9}: API median {api_median:.2f} ms, p95 {percentile(api_ms, 95):.2f} ms | "
            f"SQL median {sql_median:.3f} ms, p95 {percentile(sql_ms, 95):.3f} ms | "
            f"ratio API/SQL {api_median / sql_median:.1f} | "
            f"Django CPU median {statistics.median(cpu_ms):.2f} ms | {len(values)} lookups"
            + (f" | {misses} FOUND NOTHING" if misses else "")
        )
        if api_median >= 10:
            print(f"{field:>9}: above the 10 ms target")
    print(f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())} on {os.cpu_count()} cores")
    return 1 if failures else 0


def percentile(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def measure_api(client, field: str, values: list[str]) -> tuple[list[float], int]:
    url = "/api/v1/members/lookup"
    for value in values[:50]:
        client.get(url, {field: value})
    timings, cpu, misses = [], [], 0
    for value in values:
        started, cpu_started = time.perf_counter(), time.thread_time()
        response = client.get(url, {field: value})
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - cpu_started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{field}={value}: HTTP {response.status_code} {response.content[:200]!r}")
        if not response.json()["results"]:
            misses += 1
    return timings, cpu, misses


def _lookup_sql(field: str, value: str):
    from membership.api import member_lookup

    return member_lookup(field=field, value=value).query.sql_with_params()


def measure_sql(field: str, values: list[str]) -> list[float]:
    from django.db import connection

    statements = [_lookup_sql(field, value) for value in values]
    connection.ensure_connection()
    cursor = connection.connection.cursor()
    for sql, params in statements[:50]:
        cursor.execute(sql, params)
        cursor.fetchall()
    timings = []
    for sql, params in statements:
        started = time.perf_counter()
        cursor.execute(sql, params)
        cursor.fetchall()
        timings.append((time.perf_counter() - started) * 1000)
    cursor.close()
    return timings


def explain(field: str, value: str) -> None:
    from django.db import connection

    sql, params = _lookup_sql(field, value)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = [row[0].strip() for row in cursor.fetchall()]
    scans = [line for line in plan if "Scan" in line]
    print(f"{field:>9}: plan {' / '.join(scans) or plan[0]}")


# --- loading ------------------------------------------------------------------------------------

# Filled by load_members; any other column of Member makes the bench stop with its name.
COLUMNS = (
    "member_no", "name", "name_initials", "gender", "birth_date", "id_type", "id_number_digest",
    "id_number_sealed", "id_number_masked", "phone", "family_phone", "address", "contact_channel",
    "marketing_consent", "marketing_consent_at", "tier_id", "points", "registered_store_id",
    "registered_channel", "registered_by_id", "registered_at", "status", "merged_into_id", "notes", "updated_at",
    "tier_downgrade_on", "paid_tier_id", "paid_tier_until", "points_debt",
)


def load_members(*, count: int, lookups: int) -> dict[str, list[str]]:
    """COPY `count` members into membership_member; return sample phones and ID numbers to look up."""
    from django.db import connection, transaction
    from django.utils import timezone

    from core.pii import mask_id_number, pii_digest, pii_encrypt, resident_id_check_digit
    from membership import demo
    from membership.models import Member, Tier
    from membership.services import luhn_check_digit, name_initials
    from stores.models import Store

    columns = [field.column for field in Member._meta.concrete_fields if not field.primary_key]
    if sorted(columns) != sorted(COLUMNS):
        raise SystemExit(f"Member columns changed, update COLUMNS: {sorted(set(columns) ^ set(COLUMNS))}")
    initials = lru_cache(maxsize=None)(name_initials)
    rng = random.Random(20261124)
    tiers = list(Tier.objects.filter(kind=Tier.Kind.EARNED).order_by("rank").values_list("pk", flat=True))
    tier_weights = [60, 25, 11, 4, 1, 1, 1, 1][:len(tiers)]
    stores = list(Store.objects.values_list("pk", flat=True))
    regions = demo.ALL_ID_REGIONS
    names = {key: [surname + given for surname in demo.SURNAMES for given in givens]
             for key, givens in demo.GIVEN_NAMES.items()}
    now = timezone.now()
    born_from = date(1935, 1, 1)
    days = (date(2006, 1, 1) - born_from).days
    wanted = {"phone": set(rng.sample(range(count), min(count, lookups))),
              "id_number": set(rng.sample(range(count), min(count, lookups * 2)))}
    samples: dict[str, list[str]] = {"phone": [], "id_number": []}

    def rows():
        household, left, phone = 0, 0, ""
        for index in range(count):
            if left == 0:
                household += 1
                left = rng.choices((1, 2, 3, 4), weights=(70, 18, 8, 4))[0]
                # Multiplying by a number prime to 10**8 spreads the households without repeating a phone.
                phone = demo.MOBILE_PREFIXES[household % 16] + f"{(household // 16) * 7919 % 10**8:08d}"
            left -= 1
            gender = "M" if rng.random() < 0.5 else "F"
            # Index -> (region, birth date, order) is one-to-one, so no two members share an ID number.
            birth = born_from + timedelta(days=(index // len(regions)) % days)
            generation = "old" if birth.year < 1965 else "mid" if birth.year < 1990 else "young"
            name = rng.choice(names[(generation, gender)])
            phoneless = rng.random() < 0.2
            member_no = f"8{index + 1:010d}"
            id_number = digest = sealed = masked = None
            if rng.random() < 0.75:
                order = (index // (len(regions) * days)) * 2 + (1 if gender == "M" else 0)
                first17 = f"{regions[index % len(regions)]}{birth:%Y%m%d}{order:03d}"
                id_number = first17 + resident_id_check_digit(first17)
                digest, sealed, masked = pii_digest(id_number), pii_encrypt(id_number), mask_id_number(id_number)
                if index in wanted["id_number"]:
                    samples["id_number"].append(id_number)
            if index in wanted["phone"]:
                samples["phone"].append(phone)
            registered = now - timedelta(days=rng.randrange(3650), seconds=rng.randrange(86400))
            yield (
                member_no + luhn_check_digit(member_no), name, initials(name), gender, birth,
                "resident_id" if id_number else "none", digest, sealed or "", masked or "",
                "" if phoneless else phone, phone if phoneless else "", "",
                "call" if phoneless else "sms", False, None, rng.choices(tiers, weights=tier_weights)[0], 0,
                stores[index % len(stores)], "import", None, registered, "active", None, "", now,
                None, None, None, 0,
            )

    with transaction.atomic(), connection.cursor() as cursor:
        # Secondary indexes are built once after the load: faster than maintaining them row by row.
        cursor.execute(
            """
            SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = 'membership_member'::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
            """
        )
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        # Foreign keys are checked at the end of the COPY, not deferred to commit: CREATE INDEX needs that.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        raw = cursor.cursor
        with raw.copy(f"COPY membership_member ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows():
                copy.write_row(row)
        for _name, definition in indexes:
            cursor.execute(definition)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE membership_member")
    rng.shuffle(samples["phone"])
    rng.shuffle(samples["id_number"])
    return {"phone": samples["phone"][:lookups], "id_number": samples["id_number"][:lookups]}


if __name__ == "__main__":
    sys.exit(main())
