"""Celery tasks of settlement: thin wrappers around the services."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from settlement.services import clearing


@shared_task(name="settlement.clearing_run_yesterday")
def clearing_run_yesterday() -> int:
    """Nightly: clear yesterday (local business day) when its period is open; return the lines written."""
    yesterday = timezone.localdate() - timedelta(days=1)
    runs = clearing.clearing_days_run(start=yesterday, end=yesterday)
    return sum(run.lines for run in runs)
