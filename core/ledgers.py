"""Proof that every cached balance equals its append-only ledger (DESIGN section 3).

Each app that keeps a balance registers one check here (membership: member
points; cards: card balances; ...). A check streams over its accounts in
batches with one aggregate query per batch, so it stays fast and flat in
memory with tens of millions of accounts, and yields per batch how many
accounts it looked at and which of them differ. `manage.py check_ledgers` and
the nightly task run every registered check.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.db.models import Max, Sum


def cause_fields(cause) -> dict:
    """The generic reference of a ledger row to what caused it (a purchase, a sale order, a return, an approval ...)."""
    if cause is None:
        return {"cause_type": None, "cause_id": ""}
    return {"cause_type": ContentType.objects.get_for_model(cause), "cause_id": str(cause.pk)}


@dataclass(frozen=True)
class LedgerDifference:
    """One account whose cached balance disagrees with its ledger."""

    account: str
    balance: int | Decimal
    ledger: int | Decimal | None
    rule: str = "balance equals the sum of the ledger"

    def __str__(self) -> str:
        return f"{self.account}: balance {self.balance}, ledger {self.ledger} ({self.rule})"


@dataclass(frozen=True)
class LedgerBatch:
    checked: int
    differences: list[LedgerDifference] = field(default_factory=list)


def balance_difference(
    *, account: str, cached: int | Decimal, total: int | Decimal, after: int | Decimal | None, rule: str
) -> LedgerDifference | None:
    """A cached balance that differs from the sum of its ledger, or else from the value after the last entry."""
    if isinstance(cached, Decimal) and total is not None:
        # SQLite sums decimals as floating point (2.8E-14 for a card paid down to zero): compare in cents.
        total = Decimal(total).quantize(Decimal("0.01"))
    if total != cached:
        return LedgerDifference(account=account, balance=cached, ledger=total)
    if after is not None and after != cached:
        return LedgerDifference(account=account, balance=cached, ledger=after, rule=rule)
    return None


def cached_against_ledger(
    *, accounts, cached: str, account: str, entries, account_field: str, amount: str, after: str, rule: str,
    batch_size: int,
) -> Iterator[LedgerBatch]:
    """Each account's cached value against its ledger: the sum of the entries, and the value after the last one.

    `accounts` is a values() query of the account rows with the field `cached` and those named in the `account`
    format. One difference per account at most: a wrong sum is reported before a wrong value-after. Accounts are
    read in primary-key ranges; each range costs two aggregate queries over the ledger, whatever its length.
    """
    last_pk = 0
    while True:
        rows = list(accounts.filter(pk__gt=last_pk).order_by("pk")[:batch_size])
        if not rows:
            return
        first_pk, last_pk = rows[0]["pk"], rows[-1]["pk"]
        in_range = entries.filter(**{f"{account_field}__gte": first_pk, f"{account_field}__lte": last_pk}).order_by()
        sums = dict(in_range.values(account_field).annotate(total=Sum(amount)).values_list(account_field, "total"))
        # The most recently appended entry: ids are drawn after the account row is locked, so they follow its order.
        last_entries = in_range.values(account_field).annotate(last=Max("pk")).values("last")
        afters = dict(entries.filter(pk__in=last_entries).order_by().values_list(account_field, after))
        differences = [
            difference for row in rows
            if (difference := balance_difference(account=account.format(**row), cached=row[cached],
                                          total=sums.get(row["pk"], 0), after=afters.get(row["pk"]), rule=rule))
            is not None
        ]
        yield LedgerBatch(checked=len(rows), differences=differences)


LedgerCheck = Callable[[int], Iterator[LedgerBatch]]


@dataclass(frozen=True)
class RegisteredCheck:
    name: str
    label: str
    run: LedgerCheck


_checks: dict[str, RegisteredCheck] = {}


def register(name: str, *, label: str, run: LedgerCheck) -> RegisteredCheck:
    """Add a ledger check; `run(batch_size)` yields LedgerBatch items. Registering twice is refused."""
    if name in _checks and _checks[name].run is not run:
        raise ValueError(f"ledger check {name!r} is registered twice")
    _checks[name] = RegisteredCheck(name=name, label=label, run=run)
    return _checks[name]


def registered_checks() -> list[RegisteredCheck]:
    return sorted(_checks.values(), key=lambda check: check.name)


@dataclass
class LedgerReport:
    checked: int = 0
    difference_count: int = 0
    differences: list[LedgerDifference] = field(default_factory=list)
    per_check: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.difference_count == 0


def ledgers_check(*, batch_size: int = 10_000, keep: int = 20, only: list[str] | None = None) -> LedgerReport:
    """Run the registered checks; keep the first `keep` differences and count them all.

    Raise KeyError for a name in `only` that no app registered.
    """
    checks = registered_checks()
    if only:
        unknown = sorted(set(only) - {check.name for check in checks})
        if unknown:
            raise KeyError(", ".join(unknown))
        checks = [check for check in checks if check.name in only]
    report = LedgerReport()
    for check in checks:
        checked = 0
        for batch in check.run(batch_size):
            checked += batch.checked
            report.difference_count += len(batch.differences)
            room = keep - len(report.differences)
            if room > 0:
                report.differences.extend(batch.differences[:room])
        report.per_check[check.name] = checked
        report.checked += checked
    return report


class LedgersOutOfBalance(Exception):
    """Raised by the nightly task so the run shows as failed in the task results."""

    def __init__(self, report: LedgerReport):
        self.report = report
        super().__init__(
            f"{report.difference_count} difference(s) between balances and ledgers in {report.checked} accounts; "
            f"first: {'; '.join(str(difference) for difference in report.differences[:5])}"
        )
