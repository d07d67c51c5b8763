"""Benchmark: POST /api/v1/purchases throughput at 32 concurrent clients against a multi-process server.

Creates a fresh PostgreSQL database (retail_bench_purchases), migrates it, loads the reference stores,
earn rules, members and one POS terminal per client, then measures three things in turns on the same data:

1. the product: gunicorn (DEBUG off, persistent database connections) on config.wsgi, the whole request
   path of POST /api/v1/purchases (middleware, terminal authentication, throttling, the idempotency
   record, validation, purchase_record with its earn rule, multipliers and ledger entry);
2. the Django anchor: gunicorn on bench/purchases_bare.py, one plain Django view writing the same rows
   with plain SQL;
3. the SQL anchor: that view's transaction (BEGIN, its statements, COMMIT) run directly with psycopg from
   one thread and connection per client.

A small asyncio client (HTTP/1.1 keep-alive, one connection per client, each request with its own
receipt number and Idempotency-Key) drives each server for the same time and prints requests/s, p50/p99
latency, the CPU per request of the server workers, of PostgreSQL's backends of this database and of the
client itself, and the machine's CPU use; then the medians, the ratios product/Django anchor and
product/SQL anchor, and the ratio of PostgreSQL's CPU per request product/Django anchor. On a 2-core
machine everything shares the same two cores: requests/s is at most 2000 / (the three CPU figures added
up, in ms). After the runs one request of each is sent in this process (the product through
config.wsgi's application, warmed by a request first; the anchors' own code) and the statements it sent
to PostgreSQL are counted, BEGIN and COMMIT included.
Afterwards it checks every 201 recorded exactly one purchase and that check_ledgers holds.

    .venv/bin/python bench/purchases_api.py                           # 32 clients, 3 rounds of 10 s each
    .venv/bin/python bench/purchases_api.py --seconds 5 --rounds 1    # a quick run

The target is at least 800 requests/s for the product. The database is dropped at the end unless --keep.
"""

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import warnings
from decimal import Decimal
from pathlib import Path

from _support import (
    ROOT,
    SERVER,
    bench_database,
    cache_environ,
    cache_option,
    hot_path_targets,
    migrate_with_stores,
    statements_sent,
    wsgi_call,
)

DATABASE = "retail_bench_purchases"
STORES = ("DEPT001", "SUPER001", "ELEC001")
TARGET = 800
# A backend's process title: "postgres: 15/main: <user> <database> <client> <state>".
BACKEND_TITLE = re.compile(r"^postgres: \S+: \S+ (\S+) (?:\S+\(\d+\)|\[local\])")
RUNS = (("product", "config.settings"), ("django", "bench.purchases_bare"), ("sql", None))
LABELS = {"product": "product", "django": "Django anchor", "sql": "SQL anchor"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="Concurrent clients (default 32).")
    parser.add_argument("--seconds", type=float, default=10,
                        help="Measured seconds per server and round (default 10).")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Rounds of product then anchor; the medians are compared (default 3).")
    parser.add_argument("--warmup", type=float, default=3, help="Unmeasured seconds first (default 3).")
    parser.add_argument("--members", type=int, default=20_000, help="Members to load (default 20,000).")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes (default 3).")
    parser.add_argument("--threads", type=int, default=1,
                        help="Threads per worker, gthread (default 1: on 2 cores more threads fight over the GIL).")
    parser.add_argument("--port", type=int, default=0, help="Port for gunicorn (default: a free one).")
    parser.add_argument("--server", default=SERVER,
                        help="PostgreSQL server URL without a database name.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    cache_option(parser)
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.members < 100 or args.rounds < 1:
        parser.error("--clients and --rounds must be at least 1, --seconds above 0 and --members at least 100")

    with bench_database(args.server, DATABASE, keep=args.keep, environ={
        # The throttle still runs on every call; the limit only has to let the benchmark's calls through.
        "POS_RATE_LIMIT": "1000000/min",
        "CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **cache_environ(args.cache_url),
    }) as server:
        return run(args, f"{server}/{DATABASE}")


def run(args, database_url: str) -> int:
    started = time.perf_counter()
    member_nos, keys = prepare(members=args.members, clients=args.clients)
    print(f"prepared {len(member_nos):,} members and {len(keys)} terminals in {time.perf_counter() - started:.1f}s")
    print(f"{os.cpu_count()} cores; gunicorn {args.workers} workers x {args.threads} threads; "
          f"{args.clients} clients; cache {args.cache_url or 'per process'}; load average {load_average()}")

    if not args.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            args.port = probe.getsockname()[1]
    # The three take turns, so a noisy minute of the machine falls on all of them; the medians are compared.
    results: dict[str, list[dict]] = {name: [] for name, _settings in RUNS}
    for round_no in range(1, args.rounds + 1):
        for name, settings_module in RUNS:
            if settings_module is None:
                result = drive_sql(database_url, member_nos, keys, prefix=f"sm{round_no}-", clients=args.clients,
                                   seconds=args.seconds)
            else:
                with gunicorn(settings_module, port=args.port, workers=args.workers,
                              threads=args.threads) as workers:
                    drive(args, member_nos, keys, prefix=f"{name[0]}w{round_no}-", seconds=args.warmup, workers=None,
                          pids=database_pids)
                    result = drive(args, member_nos, keys, prefix=f"{name[0]}m{round_no}-", seconds=args.seconds,
                                   workers=workers, pids=database_pids)
            results[name].append(result)
            report(f"{name} {round_no}", result)

    rate = {name: statistics.median(result["rate"] for result in runs) for name, runs in results.items()}
    postgres = {name: statistics.median(result["postgres_cpu_ms"] for result in runs) for name, runs in results.items()}
    print(f"median of {args.rounds} rounds: " + ", ".join(
        f"{LABELS[name]} {rate[name]:.0f} requests/s (PostgreSQL {postgres[name]:.2f} ms/request)" for name in rate
    ) + f"; load average {load_average()}")
    print(f"ratios: product/Django anchor {rate['product'] / rate['django']:.2f} "
          f"({rate['django'] / rate['product']:.1f}x slower), product/SQL anchor {rate['product'] / rate['sql']:.2f}; "
          f"PostgreSQL CPU per request product/Django anchor {postgres['product'] / postgres['django']:.2f}")
    sent = statements_per_request(member_nos, keys)
    print("statements per request (BEGIN and COMMIT included): " + ", ".join(
        f"{LABELS[name]} {len(statements)}" for name, statements in sent.items()))
    for statement in sent["product"]:
        text = " ".join(statement.strip('"').split())
        print(f"  product: {text[:110]}")
    failures = verify(results["product"])
    verdict = "meets" if rate["product"] >= TARGET else "below"
    print(f"product: {rate['product']:.0f} requests/s, {verdict} the {TARGET} requests/s target")
    worker = {name: statistics.median(result["worker_cpu_ms"] for result in results[name])
              for name in ("product", "django")}
    p99 = statistics.median(percentile(result["latencies"], 99) * 1000 for result in results["product"])
    print(f"per request (medians of the rounds): worker CPU product {worker['product']:.2f} ms, Django anchor "
          f"{worker['django']:.2f} ms; PostgreSQL CPU product {postgres['product']:.2f} ms, Django anchor "
          f"{postgres['django']:.2f} ms, SQL anchor {postgres['sql']:.2f} ms")
    hot_path_targets(rate["product"] / rate["django"], postgres["product"] / postgres["django"], p99,
                     write="purchase")
    return 1 if failures else 0


def prepare(*, members: int, clients: int) -> tuple[list[str], list[str]]:

    from membership.models import EarnRule, Member, Tier
    from membership.services import luhn_check_digit
    from stores.models import Format
    from stores.services import terminal_create

    migrate_with_stores()
    EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=Decimal("1.00"))
    EarnRule.objects.create(format=Format.objects.get(code="SUPER"), amount_per_point=Decimal("2.00"),
                            excluded_categories="TOBACCO")
    tiers = list(Tier.objects.filter(code__in=["NORMAL", "SILVER", "GOLD"]))
    numbers = []
    rows = []
    for index in range(members):
        body = f"8{index:010d}"
        numbers.append(body + luhn_check_digit(body))
        rows.append(Member(member_no=numbers[-1], name=f"会员{index}", phone=f"138{index:08d}",
                           tier=tiers[index % len(tiers)]))
    Member.objects.bulk_create(rows, batch_size=5000)
    keys = [terminal_create(store_code=STORES[index % len(STORES)], name=f"BENCH{index}")[1]
            for index in range(clients)]
    return numbers, keys


class gunicorn:
    """A gunicorn server for the duration of a with block; yields its worker pids."""

    def __init__(self, settings_module: str, *, port: int, workers: int, threads: int):
        self.command = [
            str(ROOT / ".venv/bin/gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
            "--keep-alive", "30", "--log-level", "warning", "--chdir", str(ROOT),
        ]
        self.env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module,
                    "PYTHONWARNINGS": "ignore::UserWarning"}
        self.port = port

    def __enter__(self) -> list[int]:
        self.process = subprocess.Popen(self.command, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            self.process.kill()
            raise RuntimeError("gunicorn did not start")
        time.sleep(1)
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def postgres_pids() -> list[int]:
    """PostgreSQL's server processes (the backends serving the workers among them)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def database_pids(database: str = DATABASE) -> list[int]:
    """PostgreSQL's processes less the backends of databases other than `database`: on a shared machine their work
    is not ours."""
    pids = []
    for pid in postgres_pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        backend = BACKEND_TITLE.match(title)
        if backend is None or backend.group(1) == database:
            pids.append(pid)
    return pids


def cpu_seconds_alive(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds([pid])
        except OSError:
            continue
    return found


def machine_busy() -> tuple[int, int]:
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def drive(args, member_nos, keys, *, prefix: str, seconds: float, workers, pids=None) -> dict:
    """Run the clients for `seconds`; return the rate, the latencies and what was sent.

    PostgreSQL's CPU is that of the processes `pids()` lists (default: postgres_pids, all of them).
    """
    pids = pids or postgres_pids
    cpu_before = cpu_seconds(workers) if workers else 0
    postgres_before = cpu_seconds_alive(pids())
    client_before = time.process_time()
    busy_before = machine_busy()
    started = time.perf_counter()
    outcome = asyncio.run(clients(args, member_nos, keys, prefix=prefix, seconds=seconds))
    elapsed = time.perf_counter() - started
    busy_after = machine_busy()
    client_cpu = time.process_time() - client_before
    postgres_after = cpu_seconds_alive(pids())
    postgres_cpu = sum(after - postgres_before.get(pid, 0) for pid, after in postgres_after.items())
    latencies, statuses, receipts = outcome
    done = len(latencies)
    result = {
        "rate": done / elapsed,
        "requests": done,
        "latencies": latencies,
        "statuses": statuses,
        "receipts": receipts,
        "machine": (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1),
        "postgres_cpu_ms": postgres_cpu * 1000 / max(done, 1),
        "client_cpu_ms": client_cpu * 1000 / max(done, 1),
    }
    if workers:
        result["worker_cpu_ms"] = (cpu_seconds(workers) - cpu_before) * 1000 / max(done, 1)
    return result


async def clients(args, member_nos, keys, *, prefix: str, seconds: float):
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    receipts: list[tuple[int, str]] = []
    deadline = time.perf_counter() + seconds

    async def one_client(index: int) -> None:
        generator = random.Random(index)
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        serial = 0
        while time.perf_counter() < deadline:
            serial += 1
            receipt_no = f"{prefix}{index}-{serial}"
            request = purchase_request(keys[index], receipt_no, generator.choice(member_nos), generator)
            sent = time.perf_counter()
            writer.write(request)
            status, close = await read_response(reader)
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 201:
                receipts.append((index, receipt_no))
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        writer.close()

    await asyncio.gather(*(one_client(index) for index in range(args.clients)))
    return latencies, statuses, receipts


def purchase_request(key: str, receipt_no: str, member_no: str, generator: random.Random) -> bytes:
    body = purchase_body(receipt_no, member_no, generator)
    head = (
        f"POST /api/v1/purchases HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Idempotency-Key: {receipt_no}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def purchase_body(receipt_no: str, member_no: str, generator: random.Random) -> bytes:
    lines = [
        {"sku": f"69{generator.randrange(10**11):011d}", "category": generator.choice(["FOOD", "HOME", "TOBACCO"]),
         "amount": f"{generator.randrange(100, 30000) / 100:.2f}", "quantity": generator.randrange(1, 4)}
        for _line in range(generator.randrange(1, 4))
    ]
    amount = sum(Decimal(line["amount"]) for line in lines)
    return json.dumps({
        "member_no": member_no, "receipt_no": receipt_no, "amount": str(amount),
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600)),
        "payment_method": "CASH", "lines": lines,
    }).encode()


def drive_sql(database_url: str, member_nos, keys, *, prefix: str, clients: int, seconds: float) -> dict:
    """The SQL anchor: the bare view's transaction with psycopg alone, one thread and connection per client."""
    import psycopg
    from purchases_bare import purchase_write

    connections = [psycopg.connect(database_url) for _ in range(clients)]
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(index: int) -> None:
        connection = connections[index]
        generator = random.Random(f"{prefix}{index}")
        mine = []
        barrier.wait()
        serial = 0
        while time.perf_counter() < deadline[0]:
            serial += 1
            receipt_no = f"{prefix}{index}-{serial}"
            body = purchase_body(receipt_no, generator.choice(member_nos), generator)
            sent = time.perf_counter()
            with connection.transaction(), connection.cursor() as cursor:
                purchase_write(cursor, key=keys[index], idempotency_key=receipt_no, raw_body=body)
            mine.append(time.perf_counter() - sent)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    postgres_before = cpu_seconds_alive(database_pids())
    client_before = time.process_time()
    busy_before = machine_busy()
    started = time.perf_counter()
    deadline[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    # Measured before the connections close: a backend's CPU time is gone with its process.
    busy_after = machine_busy()
    client_cpu = time.process_time() - client_before
    postgres_after = cpu_seconds_alive(database_pids())
    postgres_cpu = sum(after - postgres_before.get(pid, 0) for pid, after in postgres_after.items())
    for connection in connections:
        connection.close()
    done = len(latencies)
    return {
        "rate": done / elapsed, "requests": done, "latencies": latencies, "statuses": {}, "receipts": [],
        "machine": (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1),
        "postgres_cpu_ms": postgres_cpu * 1000 / max(done, 1), "client_cpu_ms": client_cpu * 1000 / max(done, 1),
    }


def statements_per_request(member_nos, keys) -> dict[str, list[str]]:
    """The statements one request of each run sends to PostgreSQL, BEGIN and COMMIT included, sent in this process.

    The product's request goes through config.wsgi's application after a first one, as in a worker that has
    served before (its caches of terminals, earn rules and subscriptions filled).
    """
    from django.db import connection
    from django.test import RequestFactory
    from purchases_bare import purchase_bare, purchase_write

    with warnings.catch_warnings():
        # As in the gunicorn runs: whitenoise's warning that the static files are not collected.
        warnings.simplefilter("ignore", UserWarning)
        from config.wsgi import application

    generator = random.Random(0)

    def product(receipt_no: str) -> None:
        status, content = wsgi_call(application, purchase_request(keys[0], receipt_no, member_nos[0], generator))
        if not status.startswith("201"):
            raise RuntimeError(f"the product answered {status}: {content[:200]!r}")

    def django_anchor() -> None:
        purchase_bare(RequestFactory().post(
            "/api/v1/purchases", data=purchase_body("count-d1", member_nos[0], generator),
            content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {keys[0]}", HTTP_IDEMPOTENCY_KEY="count-d1",
        ))

    def sql_anchor() -> None:
        raw = connection.connection
        with raw.transaction(), raw.cursor() as cursor:
            purchase_write(cursor, key=keys[0], idempotency_key="count-s1",
                           raw_body=purchase_body("count-s1", member_nos[0], generator))

    names: dict[str, str] = {}  # the prepared statements' text, read when the first call prepares them
    statements_sent(lambda: product("count-p0"), names=names)
    return {"product": statements_sent(lambda: product("count-p1"), names=names),
            "django": statements_sent(django_anchor), "sql": statements_sent(sql_anchor)}


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length, close = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def report(name: str, result: dict) -> None:
    latencies = result["latencies"]
    worker_cpu = f", server workers' CPU {result['worker_cpu_ms']:.2f} ms/request" if "worker_cpu_ms" in result else ""
    print(
        f"{name:>8}: {result['rate']:.0f} requests/s ({result['requests']:,} in the measured window) | "
        f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms | "
        f"statuses {dict(sorted(result['statuses'].items()))}{worker_cpu}, PostgreSQL "
        f"{result['postgres_cpu_ms']:.2f} ms/request, this client {result['client_cpu_ms']:.2f} ms/request, "
        f"machine CPU {result['machine']:.0%}"
    )


def verify(rounds: list[dict]) -> int:
    from core.ledgers import ledgers_check
    from membership.models import Purchase

    failures = 0
    statuses = {status for result in rounds for status in result["statuses"]}
    if statuses != {201}:
        print(f"FAILED: not every answer was 201: {[result['statuses'] for result in rounds]}")
        failures += 1
    answered = sum(len(result["receipts"]) for result in rounds)
    recorded = Purchase.objects.filter(receipt_no__startswith="pm").count()
    if recorded != answered:
        print(f"FAILED: {answered} answers 201 but {recorded} purchases recorded")
        failures += 1
    report = ledgers_check()
    print(f"check_ledgers: {report.checked:,} accounts, {report.difference_count} differences")
    return failures + (0 if report.ok else 1)


if __name__ == "__main__":
    sys.exit(main())
