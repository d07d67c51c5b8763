"""Benchmark: POST /api/v1/cards/{card_no}/debit at 32 concurrent clients on distinct cards.

Creates a fresh PostgreSQL database (retail_bench_cards), migrates it, loads the reference stores, one
STORED card per client holding 5,000.00 (loaded through the ledger) and one POS terminal per client, then
measures three things in turns, on the same data and the same two cores:

1. the product: gunicorn on config.wsgi, the whole request path of a card debit (middleware, terminal
   authentication, throttling and the card-number guess limit, the idempotency record, validation of the
   amount and the basket's lines, card_debit: the card locked, status, expiry, PIN and discount hook, the
   card transaction, the balance and its ledger row);
2. the Django anchor: gunicorn on bench/card_debit_bare.py, one view without middleware running only the
   product's UPDATE of the balance and INSERT of the ledger row;
3. the SQL anchor: that same transaction (BEGIN, UPDATE ... RETURNING, INSERT, COMMIT) run directly with
   psycopg from one thread and connection per client.

Each client sends its next request when the previous answer arrived (a new receipt and Idempotency-Key each
time). Printed per run: debits/s, p50/p99, the CPU per debit of the server workers, of PostgreSQL and of
this client; then the medians of the rounds and the ratios product/Django anchor and product/SQL anchor.
Afterwards every 201 must be exactly one card transaction and check_ledgers must hold.

    .venv/bin/python bench/card_debit.py                           # 32 clients, 3 rounds of 10 s each
    .venv/bin/python bench/card_debit.py --seconds 5 --rounds 1    # a quick run

Target: at least 1,000 debits/s with p99 at most 50 ms for the product. The database is dropped at the end
unless --keep.
"""

import argparse
import asyncio
import json
import random
import socket
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

from _support import (
    SERVER,
    bench_database,
    cache_environ,
    cache_option,
    hot_path_targets,
    migrate_with_stores,
    statements_sent,
    wsgi_call,
)
from purchases_api import (
    cpu_seconds,
    cpu_seconds_alive,
    database_pids,
    gunicorn,
    load_average,
    machine_busy,
    percentile,
    read_response,
    report,
)

DATABASE = "retail_bench_cards"
STORES = ("DEPT001", "SUPER001", "ELEC001", "AUTO001")
TARGET_RATE = 1000
TARGET_P99_MS = 50
LOAD = Decimal("5000.00")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="Concurrent clients, one card each (default 32).")
    parser.add_argument("--seconds", type=float, default=10,
                        help="Measured seconds per run and round (default 10).")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Rounds of product, Django anchor, SQL anchor; the medians are compared (default 3).")
    parser.add_argument("--warmup", type=float, default=3, help="Unmeasured seconds before each server run.")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes (default 3).")
    parser.add_argument("--threads", type=int, default=1, help="Threads per worker, gthread (default 1).")
    parser.add_argument("--no-lines", action="store_true",
                        help="Send debits without basket lines (by default each has 1-3 lines).")
    parser.add_argument("--port", type=int, default=0, help="Port for gunicorn (default: a free one).")
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server URL without a database name.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    cache_option(parser)
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.rounds < 1:
        parser.error("--clients and --rounds must be at least 1 and --seconds above 0")

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
    # Each of the three drives its own cards in each round: a round spends thousands of yuan per card.
    all_card_nos, keys = prepare(clients=args.clients, sets=3 * args.rounds)
    cards_of = {
        (name, round_no): all_card_nos[place * args.clients:(place + 1) * args.clients]
        for place, (name, round_no) in enumerate(
            (name, round_no) for round_no in range(1, args.rounds + 1) for name in ("product", "django", "sql"))
    }
    print(f"prepared {len(all_card_nos)} cards and {len(keys)} terminals in {time.perf_counter() - started:.1f}s")
    print(f"gunicorn {args.workers} workers x {args.threads} threads; {args.clients} clients; "
          f"lines per debit: {'none' if args.no_lines else '1-3'}; cache {args.cache_url or 'per process'}; "
          f"load average {load_average()}")
    if not args.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            args.port = probe.getsockname()[1]

    # The three take turns, so a noisy minute of the shared machine falls on all of them.
    results: dict[str, list[dict]] = {"product": [], "django": [], "sql": []}
    for round_no in range(1, args.rounds + 1):
        for name, settings_module in (("product", "config.settings"), ("django", "bench.card_debit_bare")):
            with gunicorn(settings_module, port=args.port, workers=args.workers, threads=args.threads) as workers:
                drive(args, cards_of[name, round_no], keys, prefix=f"{name[0]}w{round_no}-", seconds=args.warmup,
                      workers=None)
                result = drive(args, cards_of[name, round_no], keys, prefix=f"{name[0]}m{round_no}-",
                               seconds=args.seconds, workers=workers)
            results[name].append(result)
            report(f"{name} {round_no}", result)
        result = drive_sql(database_url, cards_of["sql", round_no], clients=args.clients, seconds=args.seconds)
        results["sql"].append(result)
        report(f"sql {round_no}", result)

    rate = {name: statistics.median(result["rate"] for result in runs) for name, runs in results.items()}
    p99 = {name: statistics.median(percentile(result["latencies"], 99) * 1000 for result in runs)
           for name, runs in results.items()}
    print(f"median of {args.rounds} rounds: product {rate['product']:.0f} debits/s (p99 {p99['product']:.1f} ms), "
          f"Django anchor {rate['django']:.0f} debits/s (p99 {p99['django']:.1f} ms), "
          f"SQL anchor {rate['sql']:.0f} debits/s (p99 {p99['sql']:.1f} ms); load average {load_average()}")
    print(f"ratios: product/Django anchor {rate['product'] / rate['django']:.2f}, "
          f"product/SQL anchor {rate['product'] / rate['sql']:.2f}")
    failures = verify(results["product"])
    per_request(results, statements_counted(all_card_nos[-1], keys[0], lines=not args.no_lines))
    met = rate["product"] >= TARGET_RATE and p99["product"] <= TARGET_P99_MS
    print(f"product: {rate['product']:.0f} debits/s, p99 {p99['product']:.1f} ms: "
          f"{'meets' if met else 'below'} the target of {TARGET_RATE} debits/s with p99 <= {TARGET_P99_MS} ms")
    hot_path_targets(rate["product"] / rate["django"], cpu(results, "product", "postgres_cpu_ms") / cpu(
        results, "django", "postgres_cpu_ms"), p99["product"], write="debit")
    return 1 if failures else 0


def cpu(results: dict, name: str, what: str) -> float:
    return statistics.median(result[what] for result in results[name])


def per_request(results: dict, statements: dict[str, list[str]]) -> None:
    """What one request costs each of the three: worker CPU, PostgreSQL CPU, statements sent (medians)."""
    print("per request (medians of the rounds):")
    for name in ("product", "django", "sql"):
        worker = f"{cpu(results, name, 'worker_cpu_ms'):.2f} ms" if name != "sql" else "-"
        print(f"  {name:>8}: worker CPU {worker}, PostgreSQL CPU {cpu(results, name, 'postgres_cpu_ms'):.2f} ms, "
              f"client CPU {cpu(results, name, 'client_cpu_ms'):.2f} ms, {len(statements[name])} statements: "
              + "; ".join(" ".join(statement.split())[:60] for statement in statements[name]))


def statements_counted(card_no: str, key: str, *, lines: bool) -> dict[str, list[str]]:
    """The statements one debit sends to PostgreSQL, BEGIN and COMMIT included, by each of the three.

    The product through config.wsgi in this process (the connection's health check included, as a worker runs
    it); the Django anchor's view called in this process; the SQL anchor's transaction on a connection of its own.
    """
    import psycopg
    from card_debit_bare import INSERT, TERMINAL, UPDATE, debit_bare
    from django.conf import settings
    from django.test import RequestFactory

    from config.wsgi import application

    generator = random.Random("statements")

    def product(receipt_no: str) -> None:
        wsgi_call(application, debit_request(key, card_no, receipt_no, generator, lines=lines))

    def django_anchor(receipt_no: str) -> None:
        debit_bare(RequestFactory().post(f"/api/v1/cards/{card_no}/debit", data=json.dumps(
            {"amount": "0.01", "receipt_no": receipt_no}), content_type="application/json"), card_no)

    # A first call of each warms what a running worker has kept (the terminal, the webhook subscriptions, the
    # prepared statements, whose text it reads).
    names: dict[str, str] = {}
    statements_sent(lambda: product("count-product-1"), names=names)
    django_anchor("count-django-1")
    sent = {"product": statements_sent(lambda: product("count-product-2"), names=names),
            "django": statements_sent(lambda: django_anchor("count-django-2"))}
    with psycopg.connect(_url(settings.DATABASES["default"])) as raw:
        terminal_id, store_id, legal_entity_id = raw.execute(TERMINAL).fetchone()
        raw.commit()

        def transaction() -> None:
            now = datetime.now(UTC)
            with raw.cursor() as cursor:
                card_id, balance = cursor.execute(UPDATE, [Decimal("0.01"), now, card_no, Decimal("0.01")]).fetchone()
                cursor.execute(INSERT, [card_id, Decimal("-0.01"), balance, store_id, terminal_id, "count-sql",
                                        legal_entity_id, now])
            raw.commit()

        sent["sql"] = statements_sent(transaction, pgconn=raw.pgconn)
    return sent


def _url(database: dict) -> str:
    return f"postgresql://{database['USER']}@{database['HOST']}:{database['PORT'] or 5432}/{database['NAME']}"


def prepare(*, clients: int, sets: int = 1) -> tuple[list[str], list[str]]:
    from cards.models import Card, CardLedgerEntry, CardProduct
    from stores.models import Store
    from stores.services import terminal_create

    migrate_with_stores()
    product = CardProduct.objects.create(
        code="STORED", name="储值卡", kind=CardProduct.Kind.REGISTERED, reloadable=True,
        max_balance=Decimal("5000.00"), face_values=["100.00", "500.00", "1000.00"],
    )
    store = Store.objects.select_related("format").get(code="DEPT001")
    cards = Card.objects.bulk_create([
        Card(card_no=f"8{index:015d}", product=product, status=Card.Status.ACTIVE, stock_status=Card.Stock.SOLD,
             balance=LOAD, sold_store=store, issuer_id=store.format.legal_entity_id)
        for index in range(clients * sets)
    ])
    CardLedgerEntry.objects.bulk_create([
        CardLedgerEntry(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=LOAD, balance_after=LOAD, store=store,
                        legal_entity_id=store.format.legal_entity_id, reason="benchmark load")
        for card in cards
    ])
    keys = [terminal_create(store_code=STORES[index % len(STORES)], name=f"BENCH{index}")[1]
            for index in range(clients)]
    return [card.card_no for card in cards], keys


def postgres_pids() -> list[int]:
    """PostgreSQL's processes less the backends of other databases (DATABASE is read when called)."""
    return database_pids(DATABASE)


def drive(args, card_nos, keys, *, prefix: str, seconds: float, workers) -> dict:
    """Run the HTTP clients for `seconds`; return the rate, the latencies and what was answered."""
    cpu_before = cpu_seconds(workers) if workers else 0
    postgres_before = cpu_seconds_alive(postgres_pids())
    client_before = time.process_time()
    busy_before = machine_busy()
    started = time.perf_counter()
    latencies, statuses, receipts = asyncio.run(clients(args, card_nos, keys, prefix=prefix, seconds=seconds))
    elapsed = time.perf_counter() - started
    result = _result(latencies, elapsed, postgres_before, client_before, busy_before)
    result.update(statuses=statuses, receipts=receipts)
    if workers:
        result["worker_cpu_ms"] = (cpu_seconds(workers) - cpu_before) * 1000 / max(len(latencies), 1)
    return result


def _result(latencies, elapsed, postgres_before, client_before, busy_before) -> dict:
    busy_after = machine_busy()
    client_cpu = time.process_time() - client_before
    postgres_after = cpu_seconds_alive(postgres_pids())
    postgres_cpu = sum(after - postgres_before.get(pid, 0) for pid, after in postgres_after.items())
    done = len(latencies)
    return {
        "rate": done / elapsed, "requests": done, "latencies": latencies, "statuses": {},
        "machine": (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1),
        "postgres_cpu_ms": postgres_cpu * 1000 / max(done, 1), "client_cpu_ms": client_cpu * 1000 / max(done, 1),
    }


async def clients(args, card_nos, keys, *, prefix: str, seconds: float):
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    receipts: list[str] = []
    deadline = time.perf_counter() + seconds

    async def one_client(index: int) -> None:
        generator = random.Random(f"{prefix}{index}")
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        serial = 0
        while time.perf_counter() < deadline:
            serial += 1
            receipt_no = f"{prefix}{index}-{serial}"
            request = debit_request(keys[index], card_nos[index], receipt_no, generator, lines=not args.no_lines)
            sent = time.perf_counter()
            writer.write(request)
            status, close = await read_response(reader)
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 201:
                receipts.append(receipt_no)
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        writer.close()

    await asyncio.gather(*(one_client(index) for index in range(args.clients)))
    return latencies, statuses, receipts


def debit_request(key: str, card_no: str, receipt_no: str, generator: random.Random, *, lines: bool) -> bytes:
    basket = [
        {"sku": f"69{generator.randrange(10**11):011d}", "amount": f"{generator.randrange(1, 100) / 100:.2f}",
         "quantity": generator.randrange(1, 4)}
        for _line in range(generator.randrange(1, 4))
    ]
    amount = sum(Decimal(line["amount"]) for line in basket)
    body = {"amount": str(amount), "receipt_no": receipt_no}
    if lines:
        body["lines"] = basket
    payload = json.dumps(body).encode()
    head = (
        f"POST /api/v1/cards/{card_no}/debit HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Idempotency-Key: {receipt_no}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def drive_sql(database_url: str, card_nos: list[str], *, clients: int, seconds: float) -> dict:
    """The SQL anchor: the debit's UPDATE and INSERT in a transaction, one thread and connection per client."""
    import psycopg
    from card_debit_bare import INSERT, TERMINAL, UPDATE

    connections = [psycopg.connect(database_url) for _ in range(clients)]
    with connections[0].cursor() as cursor:
        terminal_id, store_id, legal_entity_id = cursor.execute(TERMINAL).fetchone()
    connections[0].rollback()
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(index: int) -> None:
        connection = connections[index]
        generator = random.Random(index)
        mine = []
        barrier.wait()
        serial = 0
        while time.perf_counter() < deadline[0]:
            serial += 1
            amount = Decimal(generator.randrange(1, 100)) / 100
            sent = time.perf_counter()
            with connection.cursor() as cursor:
                now = datetime.now(UTC)
                card_id, balance = cursor.execute(UPDATE, [amount, now, card_nos[index], amount]).fetchone()
                cursor.execute(INSERT, [card_id, -amount, balance, store_id, terminal_id, f"sq-{index}-{serial}",
                                        legal_entity_id, now])
            connection.commit()
            mine.append(time.perf_counter() - sent)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    postgres_before = cpu_seconds_alive(postgres_pids())
    client_before = time.process_time()
    busy_before = machine_busy()
    started = time.perf_counter()
    deadline[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    # Measured before the connections close: a backend's CPU time is gone with its process.
    result = _result(latencies, elapsed, postgres_before, client_before, busy_before)
    for connection in connections:
        connection.close()
    return result


def verify(rounds: list[dict]) -> int:
    from cards.models import CardTransaction
    from core.ledgers import ledgers_check

    failures = 0
    statuses = {status for result in rounds for status in result["statuses"]}
    if statuses != {201}:
        print(f"FAILED: not every answer was 201: {[result['statuses'] for result in rounds]}")
        failures += 1
    answered = sum(len(result["receipts"]) for result in rounds)
    recorded = CardTransaction.objects.filter(receipt_no__startswith="pm", kind=CardTransaction.Kind.DEBIT).count()
    if recorded != answered:
        print(f"FAILED: {answered} answers 201 but {recorded} card transactions recorded")
        failures += 1
    checked = ledgers_check()
    print(f"check_ledgers: {checked.checked:,} accounts, {checked.difference_count} differences")
    return failures + (0 if checked.ok else 1)


if __name__ == "__main__":
    sys.exit(main())
