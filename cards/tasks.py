"""Celery tasks of the card domain: thin wrappers around cards.services."""

from celery import shared_task

from cards.services import operations


@shared_task(name="cards.cards_expire")
def cards_expire() -> int:
    """Nightly: bearer cards past their expiry become expired; their balances stay on them."""
    return operations.cards_expire()
