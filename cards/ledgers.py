"""The card balance and voucher remaining checks for `manage.py check_ledgers` (registered in core.ledgers)."""

from collections.abc import Iterator

from django.utils.translation import gettext_lazy as _

from cards.models import Card, CardLedgerEntry, Voucher, VoucherLedgerEntry
from core import ledgers
from core.ledgers import LedgerBatch, cached_against_ledger


def card_balance_check(batch_size: int) -> Iterator[LedgerBatch]:
    """Card.balance against its ledger: the sum of the entries, and the balance after the last one."""
    return cached_against_ledger(
        accounts=Card.objects.values("pk", "card_no", "balance"), cached="balance",
        account="card {card_no} (id {pk})",
        entries=CardLedgerEntry.objects.all(), account_field="card_id", amount="amount", after="balance_after",
        rule="balance equals the balance after the last ledger entry", batch_size=batch_size,
    )


ledgers.register("cards.balance", label=_("card balances"), run=card_balance_check)


def voucher_remaining_check(batch_size: int) -> Iterator[LedgerBatch]:
    """Voucher.remaining against its ledger: the sum of the entries, and the remaining after the last one."""
    return cached_against_ledger(
        accounts=Voucher.objects.values("pk", "code", "remaining"), cached="remaining",
        account="voucher {code} (id {pk})",
        entries=VoucherLedgerEntry.objects.all(), account_field="voucher_id", amount="quantity",
        after="remaining_after", rule="remaining equals the remaining after the last ledger entry",
        batch_size=batch_size,
    )


ledgers.register("cards.voucher_remaining", label=_("pickup voucher units"), run=voucher_remaining_check)
