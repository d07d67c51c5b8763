import logging

from celery import shared_task

from core import ledgers, limits, services

logger = logging.getLogger(__name__)


@shared_task(name="core.idempotency_records_purge")
def idempotency_records_purge() -> int:
    """Forget old idempotency keys, and expired rate counters with them."""
    limits.counters_purge()
    return services.idempotency_records_purge()


@shared_task(name="core.check_ledgers")
def check_ledgers() -> dict:
    """Nightly proof that every balance equals its ledger; fails, logging each difference, when one does not."""
    report = ledgers.ledgers_check()
    if not report.ok:
        for difference in report.differences:
            logger.error("ledger difference: %s", difference)
        raise ledgers.LedgersOutOfBalance(report)
    return {"checked": report.checked, "per_check": report.per_check}
