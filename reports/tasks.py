"""Celery tasks of reports: thin wrappers around the services."""

from celery import shared_task

from reports import services
from reports.models import ReportDefinition


@shared_task(name="reports.definition_run")
def definition_run(definition_id: int) -> int | None:
    """Beat runs a report definition on its schedule; returns the run's id (None when the definition is gone or
    switched off)."""
    definition = ReportDefinition.objects.filter(pk=definition_id, active=True).first()
    if definition is None:
        return None
    return services.definition_run(definition=definition).pk


@shared_task(name="reports.runs_prune")
def runs_prune() -> int:
    """Nightly: remove report files past the retention period; return how many."""
    return services.runs_prune()
