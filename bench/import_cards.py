"""Benchmark: import_legacy_cards on PostgreSQL against a plain COPY of the same file.

Generates a realistic legacy card file (STORED and BEARER cards, some named by the product name, in every
status, balances within each product's limit, issue and expiry dates, holders
for part of the registered cards by member or legacy number, selling stores,
~0.1% invalid rows), imports it into a fresh database with
`manage.py import_legacy_cards --skip-invalid` in a subprocess, and measures
wall time and the peak memory of the subprocess's tree. Then it checks the
result (one card per valid row, the ledger's sum equal to the balances equal to
the file's, `check_ledgers` passing) and COPYs the same CSV into an unlogged
table of text columns in the same run: the floor any import of that file
stands on.

    .venv/bin/python bench/import_cards.py --rows 1000000

Target (the issue): 1,000,000 rows in at most 20 s and at most 5x the COPY, peak memory under 300 MB.
"""

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import import_members
import psycopg
from import_members import ROOT, SERVER, Watch, admin_execute, manage

DATABASE = "retail_bench_import_cards"
import_members.DATABASE = DATABASE  # the watcher reads the CPU of this database's backends
HEADER = ["卡号", "卡类型", "余额", "状态", "发卡日期", "有效期", "持卡会员号", "售卡门店"]
STATUSES = ["active"] * 70 + ["frozen"] * 3 + ["挂失"] * 1 + ["expired"] * 5 + ["closed"] * 5 + ["inactive"] * 16
DEMO_MEMBERS = 2000


def generate(path: Path, rows: int, *, stores: list[str], holders: list[str], seed: int = 20261124) -> dict:
    """Write the legacy file; return what it holds, to check the import against."""
    rng = random.Random(seed)
    stats = {"rows": rows, "invalid": 0, "balance": Decimal("0.00"), "entries": 0}
    start = date(2014, 1, 1)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for index in range(rows):
            bearer = rng.random() < 0.4
            status = rng.choice(STATUSES)
            issued = start + timedelta(days=rng.randint(0, 4300)) if status != "inactive" else None
            cents = 0 if status in ("closed", "inactive") or rng.random() < 0.2 else rng.randint(
                1, 100_000 if bearer else 500_000)
            balance = Decimal(cents) / 100
            expires = ""
            if bearer and issued and rng.random() < 0.7:
                expires = (issued + timedelta(days=3 * 365)).isoformat()
            holder = rng.choice(holders) if holders and not bearer and rng.random() < 0.15 else ""
            row = [
                f"62{index:014d}", "BEARER" if bearer else ("STORED" if rng.random() < 0.9 else "嘉禾储值卡"),
                f"{balance:.2f}", status, issued.isoformat() if issued else "", expires, holder,
                rng.choice(stores) if rng.random() < 0.95 else "",
            ]
            roll = rng.random()
            if roll < 0.001:
                # Legacy data is messy: an unknown card type, a balance over the limit, a date that does not
                # exist, a card number listed twice.
                kind = rng.randrange(4)
                if kind == 0:
                    row[1] = "GOLDCARD"
                elif kind == 1:
                    row[2] = "1000.01" if bearer else "5000.01"
                elif kind == 2:
                    row[4] = "2019-02-30"
                else:
                    row[0] = f"62{max(index - 1, 0):014d}"
                stats["invalid"] += 1
            elif cents:
                stats["balance"] += balance
                stats["entries"] += 1
            writer.writerow(row)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="Keep the benchmark database for a look afterwards.")
    parser.add_argument("--again", action="store_true",
                        help="Run the same file a second time (every card unchanged) and time that too.")
    options = parser.parse_args()

    env = {**os.environ, "DATABASE_URL": f"{SERVER}/{DATABASE}", "PYTHONUNBUFFERED": "1", "DEBUG": "false"}
    admin_execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    admin_execute(f"CREATE DATABASE {DATABASE}")
    try:
        manage(["migrate", "--noinput", "-v", "0"], env)
        manage(["shell", "-c", "from stores.demo import seed_stores; from cards.demo import seed_card_products; "
                               f"from membership.demo import seed_members; seed_stores(); seed_card_products(); "
                               f"seed_members(count={DEMO_MEMBERS})"], env)
        with psycopg.connect(f"{SERVER}/{DATABASE}") as conn:
            stores = [code for (code,) in conn.execute("SELECT code FROM stores_store ORDER BY code")]
            holders = [number for (number,) in conn.execute(
                "SELECT member_no FROM membership_member UNION ALL "
                "SELECT external_no FROM membership_memberidentity WHERE source <> 'DEMO'")]

        with tempfile.TemporaryDirectory(prefix="bench_import_cards_") as tmp:
            path = Path(tmp) / "legacy_cards.csv"
            started = time.perf_counter()
            stats = generate(path, options.rows, stores=stores, holders=holders)
            print(f"generated {options.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) "
                  f"in {time.perf_counter() - started:.1f} s", flush=True)

            command = [sys.executable, "manage.py", "import_legacy_cards", str(path), "--skip-invalid",
                       "--errors", str(Path(tmp) / "errors.csv")]
            runs = []
            for _attempt in range(2 if options.again else 1):
                load = os.getloadavg()[0]
                started = time.perf_counter()
                process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE)
                with Watch(process.pid) as watch:
                    _pid, status, usage = os.wait4(process.pid, 0)
                seconds = time.perf_counter() - started
                output = process.stdout.read().decode() + process.stderr.read().decode()
                if status != 0:
                    raise SystemExit(f"import failed:\n{output}")
                print(output.strip(), flush=True)
                runs.append({
                    "seconds": seconds, "load": load, "load_after": os.getloadavg()[0],
                    "cpu": usage.ru_utime + usage.ru_stime, "postgres_cpu": sum(watch.backends.values()),
                    "peak_mb": max(watch.peak_rss_kb / 1024, usage.ru_maxrss / 1024),
                    "pss_mb": watch.peak_pss_kb / 1024,
                })

            with psycopg.connect(f"{SERVER}/{DATABASE}") as conn:
                cards, entries, ledger, balances = conn.execute(
                    "SELECT (SELECT count(*) FROM cards_card), (SELECT count(*) FROM cards_cardledgerentry),"
                    " (SELECT coalesce(sum(amount), 0) FROM cards_cardledgerentry),"
                    " (SELECT coalesce(sum(balance), 0) FROM cards_card)"
                ).fetchone()
                assert cards == options.rows - stats["invalid"], (cards, options.rows, stats["invalid"])
                assert ledger == balances == stats["balance"], (ledger, balances, stats["balance"])
                assert entries == stats["entries"], (entries, stats["entries"])
            started = time.perf_counter()
            checked = manage(["check_ledgers", "--only", "cards.balance"], env).stdout.strip().splitlines()[-1]
            check_seconds = time.perf_counter() - started

            with psycopg.connect(f"{SERVER}/{DATABASE}") as conn:
                columns = ", ".join(f"c{i} text" for i in range(len(HEADER)))
                conn.execute(f"CREATE UNLOGGED TABLE bench_copy ({columns})")
                conn.commit()
                started = time.perf_counter()
                with conn.cursor() as cursor, cursor.copy(
                    "COPY bench_copy FROM STDIN WITH (FORMAT csv, HEADER true)"
                ) as copy, open(path, "rb") as handle:
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk)
                conn.commit()
                copy_seconds = time.perf_counter() - started

        print(f"cards {cards:,}, ledger entries {entries:,}, balances {balances:,}; check_ledgers "
              f"{check_seconds:.1f} s: {checked}")
        for number, run in enumerate(runs, start=1):
            label = "import" if number == 1 else "same file again"
            print(f"{label}: rows {options.rows:,} | {run['seconds']:.1f} s (its own CPU {run['cpu']:.1f} s, "
                  f"PostgreSQL backend CPU {run['postgres_cpu']:.1f} s) | peak {run['peak_mb']:.0f} MB "
                  f"(sum of RSS over the process tree; PSS {run['pss_mb']:.0f} MB) | COPY {copy_seconds:.2f} s | "
                  f"ratio import/COPY {run['seconds'] / copy_seconds:.1f} | load average {run['load']:.1f} on "
                  f"{os.cpu_count()} cores at the start, {run['load_after']:.1f} at the end")
    finally:
        if not options.keep:
            admin_execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


if __name__ == "__main__":
    main()
