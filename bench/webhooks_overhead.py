"""Benchmark: what webhook subscriptions cost the POS write path (card debits and purchases).

Issue 23: the POS write path may not slow by more than 10% with subscriptions present. Creates a fresh
PostgreSQL database (retail_bench_webhooks), migrates it, loads the reference stores, the cards and terminals
of bench/card_debit.py and the members, earn rules and terminals of bench/purchases_api.py, two webhook
subscriptions that want every event type (pointing at a local receiver that answers 200 at once, in its own
process) and a Celery worker on a real broker (Redis database 15 by default, or kombu's filesystem transport).
Then it drives the same two workloads as those benchmarks, with their own client code (32 clients, gunicorn on
config.wsgi, 3 workers x 1 thread, DEBUG off), in three modes that take turns within every round:

A. no active subscription: a write emits nothing (the subscriptions are read from a per-process cache);
B. both subscriptions active, the worker paused (SIGSTOP): each write also writes its event and two deliveries
   in its transaction and, after commit, publishes one Celery message per subscription; nothing is sent;
C. as B with the worker running: it sends the deliveries to the receiver while the POS writes go on, on the
   same two cores (the figure of a one-machine installation).

The request never sends a webhook itself: the server runs with CELERY_BROKER_URL set, so tasks are queued, not
run in the request. Printed per run: requests/s, p50/p99, the CPU per request of the server workers, of
PostgreSQL, of this client and, in B and C, of the sender (the Celery worker), the receiver and the broker, and
the events written per request; then per workload the medians of the rounds and the ratios B/A and C/A. The
target is B at least 0.90 x A. At the end the worker drains what is left; printed: deliveries delivered,
pending and failed, the requests the receiver got and the drain rate. Afterwards every 201 must be exactly one
card transaction or purchase, every card debit and points earning of modes B and C exactly one event with one
delivery per subscription, none in mode A, and check_ledgers must hold.

    .venv/bin/python bench/webhooks_overhead.py                          # 3 rounds of 10 s per mode and workload
    .venv/bin/python bench/webhooks_overhead.py --quick                  # a smoke run
    .venv/bin/python bench/webhooks_overhead.py --broker filesystem      # the broker of `make run`

The database is dropped at the end unless --keep.
"""

import argparse
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import card_debit
import purchases_api
from _support import ROOT, SERVER, bench_database
from purchases_api import cpu_seconds_alive, gunicorn, load_average, percentile, report

DATABASE = "retail_bench_webhooks"
REDIS = "redis://127.0.0.1:6379/15"
MODES = ("A", "B", "C")
WORKLOADS = ("debit", "purchase")
PURCHASE_STORES = ("DEPT001", "SUPER001", "ELEC001")
TARGET_RATIO = 0.90

# The two drivers count the CPU of PostgreSQL per request: only the backends of this benchmark's database.
card_debit.DATABASE = DATABASE


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="Concurrent clients (default 32).")
    parser.add_argument("--seconds", type=float, default=10, help="Measured seconds per run (default 10).")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Rounds; in each, every workload runs in every mode, in turns (default 3).")
    parser.add_argument("--warmup", type=float, default=3, help="Unmeasured seconds before each run (default 3).")
    parser.add_argument("--modes", default="ABC", help="Modes to run, among A, B and C (default ABC; A is needed).")
    parser.add_argument("--workloads", default="debit,purchase", help="debit, purchase or both (default both).")
    parser.add_argument("--members", type=int, default=20_000, help="Members for the purchases (default 20,000).")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes (default 3).")
    parser.add_argument("--threads", type=int, default=1, help="Threads per worker, gthread (default 1).")
    parser.add_argument("--no-lines", action="store_true", help="Send debits without basket lines.")
    parser.add_argument("--broker", choices=("redis", "filesystem"), default="redis",
                        help=f"Celery broker: Redis ({REDIS}) or kombu's filesystem "
                             "transport in a temporary folder (default redis).")
    parser.add_argument("--drain-seconds", type=float, default=300,
                        help="How long the worker may take to send what is left at the end (default 300).")
    parser.add_argument("--in-process", type=int, default=2000,
                        help="Requests per workload and mode sent in this process through Django's test client, "
                             "A and B in alternating blocks, for the CPU of one request (default 2,000; 0: none).")
    parser.add_argument("--quick", action="store_true",
                        help="A smoke run: 1 round of 3 s, 1 s of warm-up, 2,000 members, 60 s to drain.")
    parser.add_argument("--port", type=int, default=0, help="Port for gunicorn (default: a free one).")
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server URL without a database name.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup, args.members, args.in_process = 1, 3, 1, 2000, 400
        args.drain_seconds = min(args.drain_seconds, 60)
    args.modes = tuple(mode for mode in MODES if mode in args.modes.upper())
    args.workloads = tuple(name for name in WORKLOADS if name in args.workloads.split(","))
    if "A" not in args.modes or len(args.modes) < 2 or not args.workloads:
        parser.error("--modes needs A and at least one of B and C; --workloads at least one of debit, purchase")
    if args.clients < 1 or args.seconds <= 0 or args.rounds < 1 or args.members < 100:
        parser.error("--clients and --rounds must be at least 1, --seconds above 0 and --members at least 100")

    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as folder:
        environ = {
            # The throttle still runs on every call; the limit only has to let the benchmark's calls through.
            "POS_RATE_LIMIT": "1000000/min",
            "CONN_MAX_AGE": "600",
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        if args.broker == "redis":
            environ["CELERY_BROKER_URL"] = REDIS
        else:
            environ["CELERY_BROKER_URL"] = "filesystem://localhost/"
            environ["CELERY_FILESYSTEM_FOLDER"] = folder
            for name in ("queue", "control", "processed"):
                Path(folder, name).mkdir()
        with Receiver() as receiver, bench_database(args.server, DATABASE, keep=args.keep, environ=environ):
            return run(args, receiver, Path(folder))


class Receiver:
    """The webhook receiver: a threaded HTTP server in its own process that answers every POST 200 at once."""

    def __enter__(self) -> "Receiver":
        context = multiprocessing.get_context("spawn")
        self.received = context.Value("q", 0)
        self.signed = context.Value("q", 0)
        ready = context.Event()
        self.port_value = context.Value("i", 0)
        self.process = context.Process(target=_receive, args=(self.port_value, self.received, self.signed, ready),
                                       daemon=True)
        self.process.start()
        if not ready.wait(30):
            raise RuntimeError("the webhook receiver did not start")
        self.port = self.port_value.value
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join(10)


def _receive(port_value, received, signed, ready) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with received.get_lock():
                received.value += 1
            if all(self.headers.get(name) for name in ("Webhook-Id", "Webhook-Timestamp", "Webhook-Signature")):
                with signed.get_lock():
                    signed.value += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_value.value = server.server_address[1]
    ready.set()
    server.serve_forever()


class Worker:
    """The Celery worker of `make run` (solo pool, INFO log to a file), paused with SIGSTOP outside mode C."""

    def __init__(self, log: Path):
        self.log = log
        self.command = [
            str(ROOT / ".venv/bin/celery"), "-A", "config", "worker", "--pool=solo", "--loglevel=INFO",
            "-n", f"bench-webhooks-{os.getpid()}@%h", "--without-gossip", "--without-mingle",
            f"--logfile={log}",
        ]

    def __enter__(self) -> "Worker":
        self.process = subprocess.Popen(self.command, cwd=ROOT, env={**os.environ}, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        deadline = time.monotonic() + 90
        while not (self.log.exists() and " ready." in self.log.read_text(errors="replace")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise RuntimeError(f"the Celery worker did not become ready in 90 s: {self.log_tail()}")
            time.sleep(0.3)
        self.running = True
        return self

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-500:] if self.log.exists() else "no log"

    def pause(self) -> None:
        if self.running:
            os.kill(self.pid, signal.SIGSTOP)
            self.running = False

    def resume(self) -> None:
        if not self.running:
            os.kill(self.pid, signal.SIGCONT)
            self.running = True

    def errors(self) -> list[str]:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return [line for line in lines if "ERROR" in line or "Traceback" in line]

    def __exit__(self, *exc) -> None:
        self.resume()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run(args, receiver: Receiver, folder: Path) -> int:
    from config.celery import app

    started = time.perf_counter()
    data = prepare(args, receiver_port=receiver.port)
    print(f"prepared {sum(map(len, data['cards'].values()))} cards, {len(data['members']):,} members, "
          f"{2 * args.clients} terminals and 2 subscriptions in {time.perf_counter() - started:.1f}s")
    broker = os.environ["CELERY_BROKER_URL"]
    print(f"{os.cpu_count()} cores; gunicorn {args.workers} workers x {args.threads} threads; {args.clients} clients; "
          f"broker {broker}; modes {', '.join(args.modes)}; load average {load_average()}")
    if not args.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            args.port = probe.getsockname()[1]
    app.control.purge()

    results: dict[tuple[str, str], list[dict]] = {(w, m): [] for w in args.workloads for m in args.modes}
    runs: list[tuple[str, str, dict]] = []  # (workload, mode, result) of every run, warm-ups included
    with Worker(folder / "worker.log") as worker:
        worker.pause()
        extra_pids = {"sender": [worker.pid], "receiver": [receiver.process.pid]}
        if broker.startswith("redis://"):
            extra_pids["broker"] = process_pids("redis-server")
        for round_no in range(1, args.rounds + 1):
            # The modes take turns, starting one later each round: no mode always follows another.
            shift = (round_no - 1) % len(args.modes)
            for workload in args.workloads:
                for mode in args.modes[shift:] + args.modes[:shift]:
                    subscriptions_switch(active=mode != "A")
                    with gunicorn("config.settings", port=args.port, workers=args.workers,
                                  threads=args.threads) as workers:
                        (worker.resume if mode == "C" else worker.pause)()
                        warm = drive(args, data, workload, mode, round_no, "w", seconds=args.warmup, workers=None)
                        runs.append((workload, mode, warm))
                        result = measure(args, data, workload, mode, round_no, workers=workers,
                                         extra_pids=extra_pids if mode != "A" else {})
                        worker.pause()
                    runs.append((workload, mode, result))
                    results[workload, mode].append(result)
                    report(f"{workload} {mode}{round_no}", result)
                    print(f"{'':>8}  events/request {result['events_per_request']:.2f}"
                          + "".join(f", {name} {value:.2f} ms/request"
                                    for name, value in result.get("extra_cpu_ms", {}).items()))
        summarise(args, results)
        if args.in_process:
            for workload in args.workloads:
                in_process(args, data, workload)
        subscriptions_switch(active=True)
        worker.resume()
        failures = drain(args, app, worker, receiver)
    return 1 if failures + verify(runs) else 0


def prepare(args, *, receiver_port: int) -> dict:
    """The cards and terminals of bench/card_debit.py, the members of bench/purchases_api.py, two subscriptions."""
    from core.pii import pii_encrypt
    from integrations.models import EventType, Subscription
    from membership.models import EarnRule, Member, Tier
    from membership.services import luhn_check_digit
    from stores.models import Format
    from stores.services import terminal_create

    # card_debit.prepare migrates, loads the stores, the cards (each with 5,000.00 through its ledger) and one
    # terminal per client: each mode of each round debits its own cards.
    sets = len(args.modes) * args.rounds + 1
    card_nos, card_keys = card_debit.prepare(clients=args.clients, sets=sets)
    places = [(mode, round_no) for round_no in range(1, args.rounds + 1) for mode in args.modes] + ["in process"]
    cards = {place: card_nos[index * args.clients:(index + 1) * args.clients] for index, place in enumerate(places)}
    # As purchases_api.prepare, without its migration and with terminal names of their own.
    EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=Decimal("1.00"))
    EarnRule.objects.create(format=Format.objects.get(code="SUPER"), amount_per_point=Decimal("2.00"),
                            excluded_categories="TOBACCO")
    tiers = list(Tier.objects.filter(code__in=["NORMAL", "SILVER", "GOLD"]))
    numbers, rows = [], []
    for index in range(args.members):
        body = f"8{index:010d}"
        numbers.append(body + luhn_check_digit(body))
        rows.append(Member(member_no=numbers[-1], name=f"会员{index}", phone=f"138{index:08d}",
                           tier=tiers[index % len(tiers)]))
    Member.objects.bulk_create(rows, batch_size=5000)
    purchase_keys = [
        terminal_create(store_code=PURCHASE_STORES[index % len(PURCHASE_STORES)], name=f"BENCHP{index}")[1]
        for index in range(args.clients)
    ]
    for name in ("集团APP", "财务中台"):
        Subscription.objects.create(
            name=name, url=f"http://127.0.0.1:{receiver_port}/{name.encode().hex()}",
            secret_sealed=pii_encrypt(os.urandom(24).hex()), event_types=list(EventType.values), is_active=False,
        )
    return {"cards": cards, "card_keys": card_keys, "members": numbers, "purchase_keys": purchase_keys}


def subscriptions_switch(*, active: bool) -> None:
    """Every gunicorn run starts new processes, which read the subscriptions afresh."""
    from integrations.models import Subscription

    Subscription.objects.update(is_active=active)


def prefix(workload: str, mode: str, round_no: int, phase: str) -> str:
    return f"{workload[0]}{mode.lower()}{phase}{round_no}-"


def drive(args, data, workload, mode, round_no, phase, *, seconds: float, workers) -> dict:
    receipts_prefix = prefix(workload, mode, round_no, phase)
    if workload == "debit":
        result = card_debit.drive(args, data["cards"][mode, round_no], data["card_keys"], prefix=receipts_prefix,
                                  seconds=seconds, workers=workers)
    else:
        result = purchases_api.drive(args, data["members"], data["purchase_keys"], prefix=receipts_prefix,
                                     seconds=seconds, workers=workers, pids=card_debit.postgres_pids)
    result["prefix"] = receipts_prefix
    return result


def measure(args, data, workload, mode, round_no, *, workers, extra_pids: dict[str, list[int]]) -> dict:
    """One measured run; beside the drivers' figures, the CPU of the sender, receiver and broker, and the events."""
    from integrations.models import Event

    events_before = Event.objects.count()
    extra_before = {name: cpu_seconds_alive(pids) for name, pids in extra_pids.items()}
    result = drive(args, data, workload, mode, round_no, "m", seconds=args.seconds, workers=workers)
    done = max(result["requests"], 1)
    result["extra_cpu_ms"] = {
        name: sum(after - extra_before[name].get(pid, 0) for pid, after in cpu_seconds_alive(pids).items())
        * 1000 / done
        for name, pids in extra_pids.items()
    }
    result["events_per_request"] = (Event.objects.count() - events_before) / done
    return result


def in_process(args, data, workload: str, *, blocks: int = 10) -> None:
    """The CPU of one request without the HTTP server, modes A and B in alternating blocks.

    Django's test client in this process: the same middleware, authentication, validation, service and, in B,
    the event with its deliveries and the Celery messages published to the broker (the worker is paused). Less
    moved by a busy machine than requests/s: the CPU time of the process that did the work.
    """
    import random
    import warnings

    from django.test import Client

    from integrations.events import subscriptions_cache_clear

    # As the gunicorn runs (PYTHONWARNINGS): static files are not collected for a benchmark.
    warnings.filterwarnings("ignore", "No directory at", UserWarning)
    client = Client()
    per_block = max(args.in_process // blocks, 1)
    generator = random.Random(workload)
    serial = 0
    cpu: dict[str, list[float]] = {"A": [], "B": []}
    postgres: dict[str, list[float]] = {"A": [], "B": []}
    for block in range(2 * blocks):
        mode = "AB"[(block + block // 2) % 2]  # A B B A A B B A ...: neither mode always goes first
        subscriptions_switch(active=mode == "B")
        subscriptions_cache_clear()
        postgres_before = cpu_seconds_alive(card_debit.postgres_pids())
        before = time.process_time()
        for _request in range(per_block):
            serial += 1
            index = serial % args.clients
            receipt_no = f"{workload[0]}{mode.lower()}i-{serial}"
            if workload == "debit":
                card_no = data["cards"]["in process"][index]
                raw = card_debit.debit_request(data["card_keys"][index], card_no, receipt_no, generator,
                                               lines=not args.no_lines)
                path = f"/api/v1/cards/{card_no}/debit"
                key = data["card_keys"][index]
            else:
                key = data["purchase_keys"][index]
                raw = purchases_api.purchase_request(key, receipt_no, generator.choice(data["members"]), generator)
                path = "/api/v1/purchases"
            answer = client.post(path, data=raw.split(b"\r\n\r\n", 1)[1], content_type="application/json",
                                 HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IDEMPOTENCY_KEY=receipt_no,
                                 HTTP_HOST="127.0.0.1")
            if answer.status_code != 201:
                raise RuntimeError(f"in-process {workload} answered {answer.status_code}: {answer.content[:300]!r}")
        cpu[mode].append((time.process_time() - before) * 1000 / per_block)
        postgres_after = cpu_seconds_alive(card_debit.postgres_pids())
        postgres[mode].append(sum(after - postgres_before.get(pid, 0) for pid, after in postgres_after.items())
                              * 1000 / per_block)
    median = {mode: statistics.median(values) for mode, values in cpu.items()}
    median_pg = {mode: statistics.median(values) for mode, values in postgres.items()}
    print(f"{workload} in this process, {blocks} blocks of {per_block} per mode: CPU per request A "
          f"{median['A']:.2f} ms, B {median['B']:.2f} ms (+{median['B'] - median['A']:.2f} ms, ratio "
          f"{median['B'] / median['A']:.2f}); PostgreSQL A {median_pg['A']:.2f} ms, B {median_pg['B']:.2f} ms; "
          f"load average {load_average()}")


def summarise(args, results) -> None:
    print(f"medians of {args.rounds} rounds; load average {load_average()}")
    header = ("workload", "mode", "requests/s (runs)", "p50 ms", "p99 ms", "workers ms", "PostgreSQL ms",
              "sender ms", "events/request")
    print(" | ".join(header))
    missed = 0
    for workload in args.workloads:
        rate = {}
        for mode in args.modes:
            runs = results[workload, mode]
            rate[mode] = statistics.median(result["rate"] for result in runs)
            p50 = statistics.median(statistics.median(result["latencies"]) * 1000 for result in runs)
            p99 = statistics.median(percentile(result["latencies"], 99) * 1000 for result in runs)
            workers_ms = statistics.median(result["worker_cpu_ms"] for result in runs)
            postgres_ms = statistics.median(result["postgres_cpu_ms"] for result in runs)
            sender = statistics.median(result["extra_cpu_ms"].get("sender", 0) for result in runs)
            events = statistics.median(result["events_per_request"] for result in runs)
            spread = ", ".join(f"{result['rate']:.0f}" for result in runs)
            print(f"{workload} | {mode} | {rate[mode]:.0f} ({spread}) | {p50:.1f} | {p99:.1f} | {workers_ms:.2f} | "
                  f"{postgres_ms:.2f} | {sender:.2f} | {events:.2f}")
        for mode in args.modes[1:]:
            ratio = rate[mode] / rate["A"]
            verdict = ""
            if mode == "B":
                verdict = (f": {'meets' if ratio >= TARGET_RATIO else 'below'} the target of "
                           f"{TARGET_RATIO:.2f}")
                missed += ratio < TARGET_RATIO
            print(f"{workload}: ratio {mode}/A {ratio:.2f}{verdict}")
    if missed:
        print(f"{missed} workload(s) below the target (not counted as a failure of the run)")


def drain(args, app, worker: Worker, receiver: Receiver) -> int:
    """Let the worker send what is left; report deliveries by status and what the receiver got."""
    from django.db.models import Count

    from integrations.models import Attempt, Delivery

    started = time.perf_counter()
    cpu_before = cpu_seconds_alive([worker.pid]).get(worker.pid, 0)
    pending_at_start = Delivery.objects.filter(status=Delivery.Status.PENDING).count()
    pending = pending_at_start
    shown = started
    while pending and time.perf_counter() - started < args.drain_seconds:
        time.sleep(1)
        pending = Delivery.objects.filter(status=Delivery.Status.PENDING).count()
        if time.perf_counter() - shown >= 15:
            print(f"draining: {pending:,} deliveries pending after {time.perf_counter() - started:.0f}s")
            shown = time.perf_counter()
    elapsed = time.perf_counter() - started
    sent = pending_at_start - pending
    cpu = cpu_seconds_alive([worker.pid]).get(worker.pid, 0) - cpu_before
    # The messages left are the ones of deliveries already sent by an earlier message of the same subscription.
    purged = app.control.purge()
    by_status = dict(Delivery.objects.values_list("status").annotate(n=Count("pk")).order_by())
    print(f"drain: {sent:,} of {pending_at_start:,} pending deliveries sent in {elapsed:.1f}s "
          f"({sent / elapsed if elapsed else 0:.0f}/s, sender CPU {cpu * 1000 / max(sent, 1):.2f} ms per delivery); "
          f"{purged:,} queued messages left over and purged")
    print(f"deliveries: {by_status.get('delivered', 0):,} delivered, {by_status.get('pending', 0):,} pending, "
          f"{by_status.get('failed', 0):,} failed; the receiver got {receiver.received.value:,} requests "
          f"({receiver.signed.value:,} with the three Webhook-* headers)")
    retried = Delivery.objects.filter(attempts__gt=1).count()
    if retried:
        failed_tries = list(Attempt.objects.exclude(error="").values_list("error").annotate(n=Count("pk")).order_by())
        print(f"{retried:,} deliveries needed more than one try; failed tries by error: {failed_tries}")
    errors = worker.errors()
    if errors:
        print(f"the worker logged {len(errors)} error lines; the first: {errors[0][:300]}")
    return 1 if pending else 0


def verify(runs: list[tuple[str, str, dict]]) -> int:
    """Every 201 one write; every write of modes B and C exactly one event, with one delivery per subscription."""
    from django.db.models import Count, Q

    from cards.models import CardTransaction
    from core.ledgers import ledgers_check
    from integrations.models import Delivery, Event, Subscription
    from membership.models import PointsEntry, Purchase

    failures = 0
    statuses = {status for _workload, _mode, result in runs for status in result["statuses"]}
    if statuses != {201}:
        print(f"FAILED: not every answer was 201: {[result['statuses'] for _w, _m, result in runs]}")
        failures += 1
    for workload, mode, result in runs:
        model = CardTransaction if workload == "debit" else Purchase
        recorded = model.objects.filter(receipt_no__startswith=result["prefix"]).count()
        if recorded != len(result["receipts"]):
            print(f"FAILED: {workload} {mode} {result['prefix']}: {len(result['receipts'])} answers 201 but "
                  f"{recorded} recorded")
            failures += 1
    emitting = ("b", "c")
    expected = {
        "card.debited": CardTransaction.objects.filter(
            Q(*(Q(receipt_no__startswith=f"d{mode}") for mode in emitting), _connector=Q.OR),
            kind=CardTransaction.Kind.DEBIT).count(),
        "points.earned": PointsEntry.objects.filter(
            Q(*(Q(receipt_no__startswith=f"p{mode}") for mode in emitting), _connector=Q.OR),
            kind=PointsEntry.Kind.EARN).count(),
    }
    written = dict(Event.objects.values_list("type").annotate(n=Count("pk")).order_by())
    print(f"events written: {written}; expected from the writes of modes B and C: {expected}")
    for event_type, count in expected.items():
        if written.get(event_type, 0) != count:
            print(f"FAILED: {written.get(event_type, 0)} {event_type} events for {count} writes")
            failures += 1
    deliveries = Delivery.objects.count()
    subscriptions = Subscription.objects.count()
    if deliveries != subscriptions * sum(written.values()):
        print(f"FAILED: {deliveries} deliveries for {sum(written.values())} events and {subscriptions} subscriptions")
        failures += 1
    checked = ledgers_check()
    print(f"check_ledgers: {checked.checked:,} accounts, {checked.difference_count} differences")
    return failures + (0 if checked.ok else 1)


def process_pids(command: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == command:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


if __name__ == "__main__":
    sys.exit(main())
