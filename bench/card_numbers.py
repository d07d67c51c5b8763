"""Benchmark: numbering a production batch of 100,000 cards against a plain COPY of 100,000 prepared card rows.

Creates a fresh PostgreSQL database (retail_bench_card_numbers), migrates it, loads the reference stores, a card
product with a PIN and two headquarters users, and produces a small batch first (not timed) so the counter and
the caches exist. Then, in each round:

  product: a batch of N cards created and submitted by one user and approved by the other through
           approvals.services.approval_request_approve: the approval's transaction reserves the serials under
           the counter's row lock, makes every number with its Luhn digit and COPYs the cards in
           (cards.services.production); timed from the call to its commit;
  anchor:  N card rows prepared in memory beforehand (same columns, other numbers), COPYed into the same table
           with the same indexes on a raw psycopg connection, in one transaction.

Afterwards it times the once-only printer file of the product's batch (PINs drawn, their hashes written, the
CSV streamed to nowhere), checks every number (length, Luhn digit, consecutive serials, no number twice) and
prints the figures, the ratio product/anchor and the load average.

    .venv/bin/python bench/card_numbers.py                  # 100,000 cards (the target: at most 10 s)
    .venv/bin/python bench/card_numbers.py --cards 20000    # a quick run

The database is dropped at the end unless --keep.
"""

import argparse
import os
import statistics
import time

from _support import SERVER, bench_database, migrate_with_stores

DATABASE = "retail_bench_card_numbers"
TARGET_SECONDS = 10


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=100_000, help="Cards per batch (default 100,000).")
    parser.add_argument("--rounds", type=int, default=1, help="Rounds of product then anchor (medians compared).")
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server URL without a database name.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()
    if not 100 <= args.cards <= 1_000_000:
        parser.error("--cards must be between 100 and 1,000,000")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    with bench_database(args.server, DATABASE, keep=args.keep) as server:
        return run(server=server, cards=args.cards, rounds=args.rounds)


def setup():
    from decimal import Decimal

    from django.contrib.auth.models import User

    from cards.models import CardProduct, CardRules

    CardRules.current()
    product = CardProduct.objects.create(
        code="BENCHPIN", name="压测卡", kind=CardProduct.Kind.BEARER, max_balance=Decimal("1000.00"),
        face_values=["100.00"], validity_months=36, pin_required=True,
    )
    requester = User.objects.create_superuser("bench_requester", password="bench-requester-1")
    approver = User.objects.create_superuser("bench_approver", password="bench-approver-1")
    return product, requester, approver


def produce(product, quantity: int, requester, approver) -> tuple[object, float]:
    """Create and submit a batch (not timed), then time its approval: numbering and COPY, up to the commit."""
    from approvals.services import approval_request_approve
    from cards.services.production import batch_create, batch_submit

    batch = batch_create(product=product, quantity=quantity, face_value="100.00", vendor="压测卡厂",
                         requested_by=requester)
    approval = batch_submit(batch=batch, requested_by=requester)
    started = time.perf_counter()
    approval_request_approve(approval_request=approval, approver=approver)
    elapsed = time.perf_counter() - started
    batch.refresh_from_db()
    return batch, elapsed


def anchor_rows(product_id: int, count: int, round_no: int) -> str:
    """COPY text of `count` card rows like the product's, numbered under a prefix the product never uses."""
    from django.utils import timezone

    from cards.models import Card
    from cards.services.production import card_no_make

    now = timezone.now().isoformat()
    fields = [f for f in Card._meta.concrete_fields if not f.primary_key and f.name != "card_no"]
    # Columns not named here are NULL (\N), as on a card just made.
    values = {"product_id": str(product_id), "face_value": "100.00", "status": "inactive", "freeze_reason": "",
              "balance": "0.00", "stock_status": "produced", "pin_hash": "", "pin_failures": "0", "holder_name": "",
              "legacy_source": "", "created_at": now, "updated_at": now}
    tail = "\t" + "\t".join(values.get(f.attname, "\\N") for f in fields) + "\n"
    prefix = f"97{round_no:02d}"
    return "".join(card_no_make(prefix, serial) + tail for serial in range(1, count + 1))


def anchor_copy(server: str, product_id: int, count: int, round_no: int) -> float:
    import psycopg
    from django.db import connection

    from cards.models import Card

    text = anchor_rows(product_id, count, round_no)
    fields = [f for f in Card._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(f.column for f in fields)
    with psycopg.connect(f"{server}/{connection.settings_dict['NAME']}") as raw:
        started = time.perf_counter()
        with raw.cursor() as cursor, cursor.copy(f"COPY cards_card ({columns}) FROM STDIN") as copy:
            copy.write(text)
        raw.commit()
        return time.perf_counter() - started


def printer_file(batch, user) -> tuple[float, int]:
    from cards.services.production import batch_printer_file_issue

    started = time.perf_counter()
    issued = batch_printer_file_issue(batch=batch, user=user)
    size = sum(len(chunk.encode()) for chunk in issued.chunks())
    return time.perf_counter() - started, size


def check(batch, quantity: int) -> list[str]:
    from stdnum import luhn

    from cards.models import Card
    from cards.services.production import CARD_NO_LENGTH

    numbers = list(Card.objects.filter(batch=batch).order_by("card_no").values_list("card_no", flat=True))
    failures = []
    if len(numbers) != quantity:
        failures.append(f"{len(numbers)} cards instead of {quantity}")
    if any(len(n) != CARD_NO_LENGTH or not luhn.is_valid(n) for n in numbers):
        failures.append("a number without a valid Luhn digit or of another length")
    serials = [int(n[:-1]) for n in numbers]
    if serials != list(range(serials[0], serials[0] + len(serials))):
        failures.append("numbers not consecutive")
    if (numbers[0], numbers[-1]) != (batch.first_card_no, batch.last_card_no):
        failures.append("first/last number of the batch do not match its cards")
    if Card.objects.filter(batch=batch).exclude(pin_hash="").count() != quantity:
        failures.append("not every card got a PIN hash")
    return failures


def run(*, server: str, cards: int, rounds: int) -> int:
    from django.db import connection

    from cards.models import Card

    started = time.perf_counter()
    migrate_with_stores()
    product, requester, approver = setup()
    produce(product, 1000, requester, approver)
    print(f"migrated, seeded and warmed up in {time.perf_counter() - started:.1f}s | load average {load_average()}")

    product_times, anchor_times, failures, batch = [], [], [], None
    for round_no in range(1, rounds + 1):
        load_before = load_average()
        batch, elapsed = produce(product, cards, requester, approver)
        product_times.append(elapsed)
        anchor = anchor_copy(server, product.pk, cards, round_no)
        anchor_times.append(anchor)
        print(f"round {round_no}: product (approve, number, COPY, commit) {elapsed:.2f}s "
              f"({cards / elapsed:,.0f} cards/s) | anchor COPY {anchor:.2f}s | ratio {elapsed / anchor:.1f} | "
              f"load average {load_before} -> {load_average()}")
    file_time, file_size = printer_file(batch, approver)
    failures += check(batch, cards)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM cards_card")
        total = cursor.fetchone()[0]
    expected = 1000 + rounds * cards * 2
    if total != expected or Card.objects.values("card_no").distinct().count() != total:
        failures.append(f"{total} cards in the table, expected {expected} distinct numbers")
    product_median, anchor_median = statistics.median(product_times), statistics.median(anchor_times)
    print(f"{cards:,} cards: product {product_median:.2f}s, anchor COPY {anchor_median:.2f}s, "
          f"ratio {product_median / anchor_median:.1f} (medians of {rounds} round(s))")
    print(f"printer file of the last batch (PINs drawn and hashed, {file_size / 1e6:.1f} MB of CSV streamed): "
          f"{file_time:.2f}s")
    if product_median > TARGET_SECONDS:
        print(f"above the {TARGET_SECONDS} s target")
    print("outcome: " + ("; ".join(failures) if failures else "consistent"))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
