"""Benchmark: issuing a million coupons of one template to a million members, against a plain COPY of the same rows.

Creates a fresh PostgreSQL database (retail_bench_coupons_issue), migrates it, loads the reference stores,
COPYs N members straight into membership_member (valid rows for the coupons' foreign key; secondary indexes
built after the load) and creates one active amount-off template. Then, in each round and on an emptied
coupon table (TRUNCATE, the template's counters set back to zero, CHECKPOINT before each timing):

1. the anchor: N coupon rows prepared in memory beforehand (the same columns and values the product writes,
   codes drawn outside the timing) COPYed into campaigns_coupon with every index and foreign key in place,
   on Django's connection in one transaction, up to its commit (the foreign keys are checked then);
2. the product: campaigns.services.coupons_issue(template=..., member_ids=[...], channel="list"), up to its
   commit: the template locked, the limit per member, the batch, N codes drawn, the COPY, the counter.

Printed per run: seconds, coupons/s, this process's CPU and its PostgreSQL backend's CPU; for the product
also where its time went (codes, limit check, COPY with its row formatting, commit). Then the medians of the
rounds and the ratio product/anchor. Afterwards the last product run is checked: N coupons, one per
member, all open with distinct codes, the batch and the template's issued count N, and check_ledgers.

    .venv/bin/python bench/coupons_issue.py                              # 1,000,000 coupons, 3 rounds
    .venv/bin/python bench/coupons_issue.py --coupons 100000 --rounds 1  # a quick run

Target: 1,000,000 coupons in at most 60 s and at most 3x the plain COPY. The database is dropped at the
end unless --keep.
"""

import argparse
import statistics
import sys
import time
from contextlib import contextmanager

from _support import SERVER, bench_database, migrate_with_stores
from points_expiry import template_columns
from purchases_api import cpu_seconds, load_average
from tier_evaluation import _drop_secondary_indexes

DATABASE = "retail_bench_coupons_issue"
TARGET_SECONDS = 60
TARGET_RATIO = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--coupons", type=int, default=1_000_000,
                        help="Coupons to issue, one per member (default 1,000,000).")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Rounds of anchor then product; the medians are compared (default 3).")
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server URL without a database name.")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    args = parser.parse_args()
    if args.coupons < 100 or args.rounds < 1:
        parser.error("--coupons must be at least 100 and --rounds at least 1")

    with bench_database(args.server, DATABASE, keep=args.keep):
        return run(coupons=args.coupons, rounds=args.rounds)


def run(*, coupons: int, rounds: int) -> int:
    from campaigns.models import CouponTemplate

    started = time.perf_counter()
    migrate_with_stores()
    print(f"migrated and seeded stores in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    member_ids = members_copy(coupons)
    print(f"COPYed {len(member_ids):,} members in {time.perf_counter() - started:.1f}s")
    template = CouponTemplate.objects.create(
        code="BENCHISSUE", name="满100减10", kind=CouponTemplate.Kind.AMOUNT_OFF,
        status=CouponTemplate.Status.ACTIVE, amount="10.00", min_basket="100.00", valid_days=30, code_prefix="BI",
    )
    print(f"{coupons:,} coupons per run, {rounds} round(s); load average {load_average()}")

    results: dict[str, list[dict]] = {"anchor": [], "product": []}
    for round_no in range(1, rounds + 1):
        coupons_empty()
        results["anchor"].append(anchor_copy(template, member_ids))
        report(f"anchor {round_no}", results["anchor"][-1])
        coupons_empty()
        results["product"].append(product_issue(template, member_ids))
        report(f"product {round_no}", results["product"][-1])

    product = statistics.median(result["seconds"] for result in results["product"])
    anchor = statistics.median(result["seconds"] for result in results["anchor"])
    ratio = product / anchor
    print(f"median of {rounds} round(s): product {product:.2f}s, plain COPY {anchor:.2f}s; "
          f"ratio product/COPY {ratio:.2f}; load average {load_average()}")
    failures = verify(template, member_ids, results["product"][-1]["batch"])
    met = product <= TARGET_SECONDS * len(member_ids) / 1_000_000 and ratio <= TARGET_RATIO
    print(f"product: {product:.2f}s for {len(member_ids):,} coupons, {ratio:.2f}x the COPY: "
          f"{'meets' if met else 'misses'} the target of {TARGET_SECONDS} s per million and {TARGET_RATIO}x")
    return 1 if failures else 0


# --- the members ------------------------------------------------------------------------------------------------


def members_copy(count: int) -> list[int]:
    """COPY `count` active members of the default tier (numbers 8 and eleven digits); return their ids.

    Only valid rows for the coupons' foreign key: no identities, no ledger (no points). Secondary indexes are
    built after the load and the foreign-key triggers skipped (the tier and the rows are ours).
    """
    from django.db import connection, transaction
    from django.utils import timezone

    from membership.models import Member, Tier

    now = timezone.now()
    columns, fixed = template_columns(
        Member(name="会员", tier=Tier.default(), registered_at=now, updated_at=now, member_no="0"),
        ("member_no", "name"),
    )
    tail = "\t" + "\t".join(fixed) + "\n" if fixed else "\n"
    table = Member._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(max(id), 0) FROM {table}")
        first_id = cursor.fetchone()[0] + 1
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        rebuild = _drop_secondary_indexes(cursor, table)
        with cursor.cursor.copy(f"COPY {table} (id, {', '.join(columns)}) FROM STDIN") as copy:
            buffer = []
            for member_id in range(first_id, first_id + count):
                buffer.append(f"{member_id}\t8{member_id:011d}\t会员{member_id}{tail}")
                if len(buffer) >= 20_000:
                    copy.write("".join(buffer))
                    buffer.clear()
            copy.write("".join(buffer))
        cursor.execute("SET LOCAL session_replication_role = origin")
        cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        for statement in rebuild:
            cursor.execute(statement)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")
    return list(range(first_id, first_id + count))


# --- the runs ---------------------------------------------------------------------------------------------------


def coupons_empty() -> None:
    """No coupon, batch or redemption left, every template's counters at zero, dirty pages written out."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE campaigns_couponredemption, campaigns_coupon, campaigns_couponbatch")
        cursor.execute("UPDATE campaigns_coupontemplate SET issued_count = 0, redeemed_count = 0, voided_count = 0, "
                       "expired_count = 0, discount_spent = 0")
        cursor.execute("VACUUM ANALYZE campaigns_coupontemplate")
        cursor.execute("CHECKPOINT")


@contextmanager
def measured(result: dict, count: int):
    """Wall seconds, this process's CPU and its PostgreSQL backend's CPU of the block, into `result`."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    backend_before, own_before = cpu_seconds([backend]), time.process_time()
    started = time.perf_counter()
    yield
    result["seconds"] = time.perf_counter() - started
    result["count"] = count
    result["own_cpu"] = time.process_time() - own_before
    result["backend_cpu"] = cpu_seconds([backend]) - backend_before


def anchor_copy(template, member_ids: list[int]) -> dict:
    """COPY the rows the product would write (prepared beforehand) in one transaction, up to its commit."""
    from django.db import connection, transaction
    from django.utils import timezone

    from campaigns.models import Coupon, CouponBatch
    from campaigns.services.issuing import _COPY_COLUMNS, _validity, coupon_codes_new

    now = timezone.now()
    batch = CouponBatch.objects.create(template=template, channel="list", quantity=len(member_ids), created_at=now)
    valid_from, valid_until = _validity(template, now)
    head = f"{template.pk}\t{batch.pk}\t"
    tail = "\t".join(["open", valid_from.isoformat() if valid_from else r"\N",
                      valid_until.isoformat() if valid_until else r"\N", now.isoformat(), r"\N"]) + "\n"
    codes = coupon_codes_new(len(member_ids), prefix=template.code_prefix)
    chunks = ["".join(f"{head}{code}\t{member_id}\t{tail}"
                      for code, member_id in zip(codes[start:start + 5000], member_ids[start:start + 5000],
                                                 strict=True))
              for start in range(0, len(member_ids), 5000)]
    del codes
    result: dict = {}
    with measured(result, len(member_ids)):
        with transaction.atomic(), connection.cursor() as cursor:
            with cursor.cursor.copy(f'COPY "{Coupon._meta.db_table}" ({", ".join(_COPY_COLUMNS)}) FROM STDIN') as copy:
                for chunk in chunks:
                    copy.write(chunk)
            copy_done = time.perf_counter()
        result["commit"] = time.perf_counter() - copy_done
    return result


def product_issue(template, member_ids: list[int]) -> dict:
    """coupons_issue up to its commit, with where its time went (the service's own steps, wrapped in timers)."""
    from django.db import transaction

    from campaigns.services import issuing

    steps: dict[str, float] = {}
    result: dict = {"steps": steps}
    with measured(result, len(member_ids)), timed(issuing, "coupon_codes_new", steps, "codes"), \
            timed(issuing, "_within_limit", steps, "limit check"), timed(issuing, "_copy", steps, "COPY"):
        # An outer transaction only to time the commit apart: coupons_issue's own becomes a savepoint.
        with transaction.atomic():
            batch = issuing.coupons_issue(template=template.pk, member_ids=list(member_ids), channel="list")
            issued = time.perf_counter()
        result["commit"] = time.perf_counter() - issued
    result["batch"] = batch.pk
    return result


@contextmanager
def timed(module, name: str, into: dict, label: str):
    """Time every call of module.name (wall seconds, added up into into[label]) while the block runs."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into[label] = into.get(label, 0) + time.perf_counter() - started

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, original)


def report(name: str, result: dict) -> None:
    steps = result.get("steps")
    if steps is not None:
        known = sum(steps.values()) + result["commit"]
        parts = [f"{label} {seconds:.2f}s" for label, seconds in steps.items()]
        parts += [f"commit {result['commit']:.2f}s", f"the rest {result['seconds'] - known:.2f}s"]
        detail = " | " + ", ".join(parts)
    else:
        detail = f" | commit {result['commit']:.2f}s"
    print(f"{name:>10}: {result['seconds']:.2f}s ({result['count'] / result['seconds']:,.0f} coupons/s) | "
          f"this process's CPU {result['own_cpu']:.2f}s, "
          f"PostgreSQL backend CPU {result['backend_cpu']:.2f}s{detail} | load average {load_average()}")


def verify(template, member_ids: list[int], batch_id: int) -> int:
    from django.db import connection

    from campaigns.models import CouponBatch, CouponTemplate
    from core.ledgers import ledgers_check

    failures = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT code), count(DISTINCT member_id), min(member_id), max(member_id), "
            "count(*) FILTER (WHERE status = 'open' AND batch_id = %s AND template_id = %s "
            "AND valid_until IS NOT NULL) FROM campaigns_coupon",
            [batch_id, template.pk],
        )
        total, codes, members, lowest, highest, proper = cursor.fetchone()
    expected = len(member_ids)
    if not total == codes == members == proper == expected:
        failures.append(f"{total} coupons, {codes} codes, {members} members, {proper} open of the batch; "
                        f"expected {expected} of each")
    if (lowest, highest) != (member_ids[0], member_ids[-1]):
        failures.append(f"members {lowest}-{highest}, expected {member_ids[0]}-{member_ids[-1]}")
    if CouponBatch.objects.get(pk=batch_id).quantity != expected:
        failures.append("the batch's quantity is not the coupons issued")
    if CouponTemplate.objects.get(pk=template.pk).issued_count != expected:
        failures.append("the template's issued count is not the coupons issued")
    checked = ledgers_check()
    print(f"check_ledgers: {checked.checked:,} accounts, {checked.difference_count} differences")
    if not checked.ok:
        failures.append("check_ledgers found differences")
    print("outcome: " + ("; ".join(failures) if failures else
                         f"{expected:,} coupons, one per member, all open, distinct codes"))
    return len(failures)


if __name__ == "__main__":
    sys.exit(main())
