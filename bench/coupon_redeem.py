"""Benchmark: POST /api/v1/coupons/{code}/redeem at 32 concurrent clients, each request a coupon of its own.

Creates a fresh PostgreSQL database (retail_bench_coupon_redeem), migrates it, loads the reference stores, one
POS terminal per client and one active amount-off template, or --templates N of them (5.00 off, no store or
item limits; with --budget a total budget large enough never to run out, so every redemption takes the
budget's conditional path), and
issues its coupons through coupons_issue beforehand: bulk codes without a holder (the default; the till
sends no member), or with --holders member coupons held by COPYed members (the till sends the holder's
number). Then it measures three things in turns, each run on coupons of its own, on the same data and the
same two cores:

1. the product: gunicorn on config.wsgi, the whole request path of a redemption (middleware, terminal
   authentication, throttling, the idempotency record, validation, coupon_redeem: one statement reading the
   coupon with its template, the holder and where the template applies, the discount and the budget, then
   one statement locking the coupon and its template and, only if the coupon is open and the budget holds,
   closing the coupon, moving the template's counters and inserting the redemption);
2. the Django anchor: gunicorn on bench/coupon_redeem_bare.py, one view without middleware running only the
   product's three writes (the coupon's and the template's conditional UPDATEs, the redemption INSERT);
3. the SQL anchor: those same three statements in a transaction on raw psycopg, one thread and connection
   per client.

Every redemption of all three updates the one template row: its lock is held from that UPDATE to the commit,
so the redemptions queue there, however many clients there are (--templates N spreads the coupons over N
templates, client modulo N, to measure what that queue costs). Each client sends its next request when the
previous answer arrived, with the next of its coupons, a new receipt and Idempotency-Key each time. Printed
per run: redemptions/s, p50/p99, the CPU per redemption of the server workers, of PostgreSQL and of this
client, the machine's CPU use, and the share of this database's active backends found waiting for a lock;
then the medians of the rounds and the ratios product/Django anchor and product/SQL anchor. Afterwards
every product 201 must be exactly one redemption of that coupon on that receipt, every answer of the
product and the Django anchor 201, and check_ledgers must hold (the template's counters included).

    .venv/bin/python bench/coupon_redeem.py                           # 32 clients, 3 rounds of 10 s each
    .venv/bin/python bench/coupon_redeem.py --seconds 5 --rounds 1    # a quick run
    .venv/bin/python bench/coupon_redeem.py --budget                  # a template with a total budget
    .venv/bin/python bench/coupon_redeem.py --holders member          # member coupons, the holder named
    .venv/bin/python bench/coupon_redeem.py --templates 32            # a template per client: no shared row

Target: the product at least 0.5x the Django anchor's redemptions/s. The database is dropped at the end
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

from _support import SERVER, bench_database, migrate_with_stores
from coupons_issue import members_copy
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

DATABASE = "retail_bench_coupon_redeem"
STORES = ("DEPT001", "SUPER001", "ELEC001", "AUTO001")
TARGET_RATIO = 0.5
DISCOUNT = Decimal("5.00")
HOLDERS = 10_000  # members holding the coupons with --holders member


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="Concurrent clients (default 32).")
    parser.add_argument("--seconds", type=float, default=10,
                        help="Measured seconds per run and round (default 10).")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Rounds of product, Django anchor, SQL anchor; the medians are compared (default 3).")
    parser.add_argument("--warmup", type=float, default=3, help="Unmeasured seconds before each server run.")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes (default 3).")
    parser.add_argument("--threads", type=int, default=1, help="Threads per worker, gthread (default 1).")
    parser.add_argument("--holders", choices=("bulk", "member"), default="bulk",
                        help="bulk: codes without a holder, no member sent; member: each coupon held by a member, "
                             "whose number the till sends (default bulk).")
    parser.add_argument("--budget", action="store_true",
                        help="Give the template a total budget (never reached) instead of none.")
    parser.add_argument("--per-client", type=int, default=1500,
                        help="Coupons issued per client for each run and round, warm-up included, shared by the "
                             "clients of a template (default 1,500).")
    parser.add_argument("--templates", type=int, default=1,
                        help="Templates the coupons belong to, client modulo templates (default 1: every "
                             "redemption updates the one template row; as many as clients: none waits for another).")
    parser.add_argument("--port", type=int, default=0, help="Port for gunicorn (default: a free one).")
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server URL without a database name.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()
    if args.clients < 1 or args.seconds <= 0 or args.rounds < 1 or args.per_client < 10 or args.templates < 1 \
            or args.clients % args.templates:
        parser.error("--clients and --rounds must be at least 1, --seconds above 0, --per-client at least 10 and "
                     "--templates a divisor of --clients")

    with bench_database(args.server, DATABASE, keep=args.keep, environ={
        # The throttle still runs on every call; the limit only has to let the benchmark's calls through.
        "POS_RATE_LIMIT": "1000000/min",
        "CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }) as server:
        return run(args, f"{server}/{DATABASE}")


def run(args, database_url: str) -> int:
    args.database_url = database_url
    started = time.perf_counter()
    runs = [(name, round_no) for round_no in range(1, args.rounds + 1) for name in ("product", "django", "sql")]
    per_template = len(runs) * args.clients // args.templates * args.per_client
    coupons, keys = prepare(clients=args.clients, templates=args.templates, per_template=per_template,
                            holders=args.holders, budget=args.budget)
    # Each run redeems coupons of its own: per run a list for each template, shared by that template's clients
    # (client modulo templates) and used from the end (a client served faster than the others takes more).
    taken = [0] * args.templates
    share = args.per_client * args.clients // args.templates
    pools: dict[tuple[str, int], list[list[tuple]]] = {}
    for run_key in runs:
        pools[run_key] = [coupons[template][taken[template]:taken[template] + share]
                          for template in range(args.templates)]
        taken = [count + share for count in taken]
    print(f"prepared {sum(map(len, coupons)):,} {args.holders} coupons of {args.templates} template(s) "
          f"({'with' if args.budget else 'no'} budget) and "
          f"{len(keys)} terminals in {time.perf_counter() - started:.1f}s")
    print(f"gunicorn {args.workers} workers x {args.threads} threads; {args.clients} clients; "
          f"load average {load_average()}")
    if not args.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            args.port = probe.getsockname()[1]

    # The three take turns, so a noisy minute of the shared machine falls on all of them.
    results: dict[str, list[dict]] = {"product": [], "django": [], "sql": []}
    for round_no in range(1, args.rounds + 1):
        for name, settings_module in (("product", "config.settings"), ("django", "bench.coupon_redeem_bare")):
            pool = pools[name, round_no]
            with gunicorn(settings_module, port=args.port, workers=args.workers, threads=args.threads) as workers:
                drive(args, pool, keys, prefix=f"{name[0]}w{round_no}-", seconds=args.warmup, workers=None)
                result = drive(args, pool, keys, prefix=f"{name[0]}m{round_no}-", seconds=args.seconds,
                               workers=workers)
            results[name].append(result)
            show(f"{name} {round_no}", result)
        result = drive_sql(database_url, pools["sql", round_no], clients=args.clients, seconds=args.seconds)
        results["sql"].append(result)
        show(f"sql {round_no}", result)

    rate = {name: statistics.median(result["rate"] for result in runs) for name, runs in results.items()}
    p99 = {name: statistics.median(percentile(result["latencies"], 99) * 1000 for result in runs)
           for name, runs in results.items()}
    print(f"median of {args.rounds} rounds: product {rate['product']:.0f} redemptions/s "
          f"(p99 {p99['product']:.1f} ms), Django anchor {rate['django']:.0f} redemptions/s "
          f"(p99 {p99['django']:.1f} ms), SQL anchor {rate['sql']:.0f} redemptions/s (p99 {p99['sql']:.1f} ms); "
          f"load average {load_average()}")
    ratio = rate["product"] / rate["django"]
    print(f"ratios: product/Django anchor {ratio:.2f}, product/SQL anchor {rate['product'] / rate['sql']:.2f}")
    failures = verify(results)
    print(f"product: {rate['product']:.0f} redemptions/s, {ratio:.2f}x the Django anchor: "
          f"{'meets' if ratio >= TARGET_RATIO else 'below'} the target of {TARGET_RATIO}x")
    return 1 if failures else 0


def prepare(*, clients: int, templates: int, per_template: int, holders: str,
            budget: bool) -> tuple[list[list[tuple]], list[str]]:
    """The templates, their coupons issued through coupons_issue, and the terminals; return per template the
    (code, holder's number) of its coupons, and the terminals' keys."""
    from campaigns.models import Coupon, CouponTemplate
    from campaigns.services import coupons_issue
    from stores.services import terminal_create

    migrate_with_stores()
    member_ids = members_copy(HOLDERS) if holders == "member" else []
    coupons = []
    for number in range(templates):
        template = CouponTemplate.objects.create(
            code=f"BENCHREDEEM{number}", name="立减5元", kind=CouponTemplate.Kind.AMOUNT_OFF,
            status=CouponTemplate.Status.ACTIVE, amount=DISCOUNT, valid_days=30, code_prefix="BR",
            # Never reached: every redemption fits, but the budget's conditional UPDATE decides.
            total_budget=DISCOUNT * per_template + 1000 if budget else None,
            per_member_limit=-(-per_template // HOLDERS) if holders == "member" else 1,
        )
        if holders == "member":
            batch = coupons_issue(template=template, channel="list",
                                  member_ids=[member_ids[index % HOLDERS] for index in range(per_template)])
            rows = list(Coupon.objects.filter(batch=batch).order_by("pk").values_list("code", "member__member_no"))
            # Coupons are written holder by holder: shuffled, so that no client redeems one member's coupons only.
            random.Random(20261206 + number).shuffle(rows)
        else:
            batch = coupons_issue(template=template, channel="bulk", quantity=per_template)
            rows = [(code, None) for code in Coupon.objects.filter(batch=batch).order_by("pk")
                    .values_list("code", flat=True)]
        coupons.append(rows)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE campaigns_coupon")
    keys = [terminal_create(store_code=STORES[index % len(STORES)], name=f"BENCH{index}")[1]
            for index in range(clients)]
    return coupons, keys


def postgres_pids() -> list[int]:
    """PostgreSQL's processes less the backends of other databases (DATABASE is read when called)."""
    return database_pids(DATABASE)


class LockWatch:
    """Samples pg_stat_activity ten times a second: how many of this database's active backends wait for a lock."""

    def __init__(self, database_url: str):
        self.url = database_url
        self.waiting = self.active = 0
        self.stop = threading.Event()

    def __enter__(self):
        import psycopg

        self.connection = psycopg.connect(self.url, autocommit=True)
        self.thread = threading.Thread(target=self.sample)
        self.thread.start()
        return self

    def sample(self) -> None:
        while not self.stop.wait(0.1):
            waiting, active = self.connection.execute(
                "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"
            ).fetchone()
            self.waiting += waiting
            self.active += active

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.connection.close()

    @property
    def share(self) -> float:
        return self.waiting / self.active if self.active else 0.0


def drive(args, pool, keys, *, prefix: str, seconds: float, workers) -> dict:
    """Run the HTTP clients for `seconds`; return the rate, the latencies and what was answered."""
    cpu_before = cpu_seconds(workers) if workers else 0
    postgres_before = cpu_seconds_alive(postgres_pids())
    client_before = time.process_time()
    busy_before = machine_busy()
    started = time.perf_counter()
    with LockWatch(args.database_url) as watch:
        latencies, statuses, redeemed, empty = asyncio.run(clients(args, pool, keys, prefix=prefix, seconds=seconds))
    elapsed = time.perf_counter() - started
    result = _result(latencies, elapsed, postgres_before, client_before, busy_before)
    result.update(statuses=statuses, redeemed=redeemed, empty=empty, lock_share=watch.share)
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
        "rate": done / elapsed, "requests": done, "latencies": latencies, "statuses": {}, "empty": 0,
        "machine": (busy_after[0] - busy_before[0]) / max(busy_after[1] - busy_before[1], 1),
        "postgres_cpu_ms": postgres_cpu * 1000 / max(done, 1), "client_cpu_ms": client_cpu * 1000 / max(done, 1),
    }


def show(name: str, result: dict) -> None:
    report(name, result)
    notes = [f"{result['lock_share']:.0%} of active backends waiting for a lock"] if "lock_share" in result else []
    if result["empty"]:
        notes.append(f"WARNING: the coupons ran out, {result['empty']} clients stopped early (raise --per-client)")
    if notes:
        print(f"{'':>10}{'; '.join(notes)}")


async def clients(args, pool, keys, *, prefix: str, seconds: float):
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    redeemed: dict[str, str] = {}  # receipt -> code, of the 201s
    empty = 0
    deadline = time.perf_counter() + seconds

    async def one_client(index: int) -> None:
        nonlocal empty
        generator = random.Random(f"{prefix}{index}")
        mine = pool[index % len(pool)]
        reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        serial = 0
        while time.perf_counter() < deadline:
            if not mine:
                empty += 1
                break
            code, member_no = mine.pop()
            serial += 1
            receipt_no = f"{prefix}{index}-{serial}"
            request = redeem_request(keys[index], code, member_no, receipt_no, generator)
            sent = time.perf_counter()
            writer.write(request)
            status, close = await read_response(reader)
            latencies.append(time.perf_counter() - sent)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 201:
                redeemed[receipt_no] = code
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
        writer.close()

    await asyncio.gather(*(one_client(index) for index in range(args.clients)))
    return latencies, statuses, redeemed, empty


def redeem_request(key: str, code: str, member_no: str | None, receipt_no: str, generator: random.Random) -> bytes:
    body = {"member_no": member_no, "receipt_no": receipt_no,
            "basket_amount": f"{generator.randrange(2000, 30000) / 100:.2f}"}
    payload = json.dumps(body).encode()
    head = (
        f"POST /api/v1/coupons/{code}/redeem HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Idempotency-Key: {receipt_no}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def drive_sql(database_url: str, pool, *, clients: int, seconds: float) -> dict:
    """The SQL anchor: the redemption's three writes in a transaction, one thread and connection per client."""
    import psycopg
    from coupon_redeem_bare import AMOUNT, COUPON, INSERT, TEMPLATE, TERMINAL

    connections = [psycopg.connect(database_url) for _ in range(clients)]
    with connections[0].cursor() as cursor:
        terminal_id, store_id = cursor.execute(TERMINAL).fetchone()
        template_id = cursor.execute("SELECT template_id FROM campaigns_coupon WHERE code = %s",
                                     [pool[0][0][0]]).fetchone()[0]
        amount = cursor.execute(AMOUNT, [template_id]).fetchone()[0]
    connections[0].rollback()
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]
    empty = [0]

    def client(index: int) -> None:
        connection = connections[index]
        generator = random.Random(index)
        shared = pool[index % len(pool)]
        mine = []
        barrier.wait()
        serial = 0
        while time.perf_counter() < deadline[0]:
            try:
                code, _member_no = shared.pop()
            except IndexError:
                with lock:
                    empty[0] += 1
                break
            serial += 1
            basket = Decimal(generator.randrange(2000, 30000)) / 100
            discount = min(amount, basket)
            sent = time.perf_counter()
            with connection.cursor() as cursor:
                now = datetime.now(UTC)
                coupon_id, coupon_template, member_id = cursor.execute(COUPON, [now, code]).fetchone()
                cursor.execute(TEMPLATE, [discount, coupon_template, discount])
                cursor.execute(INSERT, [coupon_id, coupon_template, member_id, store_id, terminal_id,
                                        f"sq-{index}-{serial}", basket, discount, now])
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
    with LockWatch(database_url) as watch:
        barrier.wait()
        for thread in threads:
            thread.join()
    elapsed = time.perf_counter() - started
    # Measured before the connections close: a backend's CPU time is gone with its process.
    result = _result(latencies, elapsed, postgres_before, client_before, busy_before)
    result.update(empty=empty[0], lock_share=watch.share)
    for connection in connections:
        connection.close()
    return result


def verify(results: dict[str, list[dict]]) -> int:
    from campaigns.models import Coupon, CouponRedemption
    from core.ledgers import ledgers_check

    failures = 0
    for name in ("product", "django"):
        statuses = {status for result in results[name] for status in result["statuses"]}
        if statuses != {201}:
            print(f"FAILED: not every {name} answer was 201: {[result['statuses'] for result in results[name]]}")
            failures += 1
    answered = {receipt: code for result in results["product"] for receipt, code in result["redeemed"].items()}
    recorded = dict(CouponRedemption.objects.filter(receipt_no__startswith="pm", status="redeemed")
                    .values_list("receipt_no", "coupon__code"))
    if recorded != answered:
        print(f"FAILED: {len(answered)} answers 201 but {len(recorded)} redemptions recorded, "
              f"{sum(1 for receipt, code in answered.items() if recorded.get(receipt) != code)} not as answered")
        failures += 1
    used = sum(result["requests"] for runs in results.values() for result in runs)
    redeemed = Coupon.objects.filter(status=Coupon.Status.REDEEMED).count()
    print(f"{redeemed:,} coupons redeemed in all ({used:,} in the measured windows, the rest in the warm-ups)")
    checked = ledgers_check()
    print(f"check_ledgers: {checked.checked:,} accounts, {checked.difference_count} differences")
    return failures + (0 if checked.ok else 1)


if __name__ == "__main__":
    sys.exit(main())
