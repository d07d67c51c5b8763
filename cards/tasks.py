"""Celery tasks of the card domain: thin wrappers around cards.services."""

from celery import shared_task

from cards.services import operations, vouchers


@shared_task(name="cards.cards_expire")
def cards_expire() -> int:
    """Nightly: bearer cards past their expiry become expired; their balances stay on them."""
    return operations.cards_expire()


@shared_task(name="cards.vouchers_expire")
def vouchers_expire() -> int:
    """Nightly: active pickup vouchers past their validity become expired; their remaining units stay."""
    return vouchers.vouchers_expire()
