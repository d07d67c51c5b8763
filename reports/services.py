"""Running reports: a run writes its workbook and keeps how it went; a failed run can be retried; a definition's
beat schedule is kept in step with it; old files are pruned; every download is logged; recipients get mail.

A run reads and writes nothing of the ledgers: it is safe to run the same report twice, and the same parameters
give the same numbers (the queries take every date from the parameters, never from the clock)."""

import logging
import tempfile
import time
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.files import File
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from core.dates import months_add, quarter_start
from core.schedules import SCHEDULE_TIME_ZONE
from reports.errors import RunNotDownloadable, RunNotRetryable
from reports.frame import ReportParams, kind_get, report_snapshot
from reports.models import ReportDefinition, ReportDownload, ReportRun
from stores.models import Store

__all__ = [
    "definition_params", "definition_run", "definition_schedule_sync", "period_dates", "report_run_create",
    "report_run_retry", "run_download_log", "runs_prune",
]

logger = logging.getLogger(__name__)
TASK_NAME = "reports.definition_run"


def period_dates(period: str, *, today: date) -> tuple[date, date]:
    """The days (first, last; both included) a definition's period means on `today`: always days already over."""
    Period = ReportDefinition.Period
    yesterday = today - timedelta(days=1)
    if period == Period.YESTERDAY:
        return yesterday, yesterday
    if period == Period.LAST_7_DAYS:
        return today - timedelta(days=7), yesterday
    if period == Period.LAST_WEEK:
        this_monday = today - timedelta(days=today.weekday())
        return this_monday - timedelta(days=7), this_monday - timedelta(days=1)
    if period == Period.MONTH_TO_DATE:
        # On the 1st "this month so far" has no day yet: it is the whole of last month.
        first = yesterday.replace(day=1)
        return first, yesterday
    if period == Period.LAST_MONTH:
        first_this = today.replace(day=1)
        return months_add(first_this, -1), first_this - timedelta(days=1)
    if period == Period.LAST_QUARTER:
        this_quarter = quarter_start(today)
        return months_add(this_quarter, -3), this_quarter - timedelta(days=1)
    raise ValueError(f"unknown period {period!r}")


def definition_params(definition: ReportDefinition, *, today: date) -> ReportParams:
    start, end = period_dates(definition.period, today=today)
    Scope = ReportDefinition.Scope
    if definition.scope == Scope.STORE and definition.store_id:
        store = definition.store
        return ReportParams(start=start, end=end, store_ids=(store.pk,), format_codes=(store.format.code,))
    if definition.scope == Scope.FORMAT and definition.format_id:
        store_ids = tuple(Store.objects.filter(format_id=definition.format_id).order_by("pk")
                          .values_list("pk", flat=True))
        return ReportParams(start=start, end=end, store_ids=store_ids, format_codes=(definition.format.code,))
    return ReportParams(start=start, end=end)


def _run_scope(params: ReportParams) -> tuple[Store | None, object | None]:
    """The store a run belongs to (its managers see it) and its format, from what it counts."""
    store = format_ = None
    if params.store_ids is not None and len(params.store_ids) == 1:
        store = Store.objects.select_related("format").filter(pk=params.store_ids[0]).first()
    if len(params.format_codes) == 1:
        from stores.models import Format

        format_ = Format.objects.filter(code=params.format_codes[0]).first()
    return store, format_


def _figures_stored(report) -> list:
    return [
        [figure.key, str(figure.label), None if figure.value is None else str(figure.value), figure.unit]
        for figure in report.figures
    ]


def report_run_create(*, kind: str, params: ReportParams, user=None, definition: ReportDefinition | None = None,
                      trigger: str = ReportRun.Trigger.MANUAL, retry_of: ReportRun | None = None) -> ReportRun:
    """Run the report `kind` for `params` now and write its workbook into the archive.

    The run's row is committed first (status running), so a run that dies half-way is seen; the report is then
    built and written in the site's language; the row ends done (rows, duration, figures, file) or failed (the
    error). Refusals of the input (an unknown kind) raise; a failure inside the report is kept on the run."""
    from reports.excel import report_workbook_write

    kind_label = kind_get(kind).label  # KeyError for an unknown kind, before anything is written
    store, format_ = _run_scope(params)
    with translation.override(settings.LANGUAGE_CODE):
        title = str(kind_label)
    with transaction.atomic():
        run = ReportRun.objects.create(
            definition=definition, kind=kind, title=(definition.name if definition else title)[:200],
            params=params.as_dict(), period_start=params.start, period_end=params.end, store=store, format=format_,
            trigger=trigger, retry_of=retry_of, requested_by=user if user is not None and user.is_authenticated
            else None,
        )
    began = time.monotonic()
    try:
        with translation.override(settings.LANGUAGE_CODE), tempfile.TemporaryFile(suffix=".xlsx") as handle:
            with report_snapshot():
                report = kind_get(kind).build(params)
                rows = report_workbook_write(report, handle)
            handle.seek(0)
            figures = _figures_stored(report)
            name = f"{kind}_{params.start:%Y%m%d}-{params.end:%Y%m%d}_{run.pk}.xlsx"
            run.file.save(name, File(handle), save=False)
            run.file_size = run.file.size
    except Exception as error:  # a report that fails is a failed run to look at and retry, never a lost one
        logger.exception("report run %s (%s) failed", run.pk, kind)
        run.status = ReportRun.Status.FAILED
        run.error = f"{type(error).__name__}: {error}"[:4000]
        run.duration_ms = int((time.monotonic() - began) * 1000)
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "duration_ms", "finished_at"])
        return run
    run.status = ReportRun.Status.DONE
    run.rows = rows
    run.figures = figures
    run.duration_ms = int((time.monotonic() - began) * 1000)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "rows", "figures", "file", "file_size", "duration_ms", "finished_at"])
    return run


def report_run_retry(*, run: ReportRun, user=None) -> ReportRun:
    """Run a failed run again with the same parameters: a new run, pointing at the one it retries."""
    if run.status != ReportRun.Status.FAILED:
        raise RunNotRetryable(status=run.get_status_display())
    return report_run_create(
        kind=run.kind, params=ReportParams.from_dict(run.params), user=user, definition=run.definition,
        trigger=ReportRun.Trigger.RETRY, retry_of=run,
    )


def definition_run(*, definition: ReportDefinition, today: date | None = None, user=None,
                   trigger: str = ReportRun.Trigger.SCHEDULE) -> ReportRun:
    """Run a definition for its period as of `today` (default: today, local) and mail its recipients."""
    today = today or timezone.localdate()
    run = report_run_create(
        kind=definition.kind, params=definition_params(definition, today=today), user=user, definition=definition,
        trigger=trigger,
    )
    if run.status == ReportRun.Status.DONE:
        _recipients_notify(definition, run)
    return run


def _recipients_notify(definition: ReportDefinition, run: ReportRun) -> int:
    addresses = sorted({user.email for user in definition.recipients.filter(is_active=True) if user.email})
    if not addresses:
        return 0
    link = settings.SITE_URL.rstrip("/") + reverse("reports:download", args=[run.pk])
    archive = settings.SITE_URL.rstrip("/") + reverse("reports:archive")
    with translation.override(settings.LANGUAGE_CODE):
        subject = gettext("Report ready: {name} {start} to {end}").format(
            name=definition.name, start=run.period_start, end=run.period_end,
        )
        body = gettext(
            "The report \"{name}\" for {start} to {end} is ready.\n\nDownload it (sign in first): {link}\n"
            "All your reports: {archive}\n"
        ).format(name=definition.name, start=run.period_start, end=run.period_end, link=link, archive=archive)
    try:
        return send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, addresses)
    except OSError:  # a mail server that is down must not fail the run: the report is in the archive
        logger.exception("could not mail report run %s", run.pk)
        return 0


def definition_schedule_sync(definition: ReportDefinition) -> None:
    """Create, change or remove the django-celery-beat task that runs `definition` on its schedule."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    Frequency = ReportDefinition.Frequency
    task = definition.periodic_task
    if definition.frequency == Frequency.NONE:
        if task is not None:
            definition.periodic_task = None
            ReportDefinition.objects.filter(pk=definition.pk).update(periodic_task=None)
            task.delete()
        return
    crontab, _created = CrontabSchedule.objects.get_or_create(
        minute=str(definition.minute), hour=str(definition.hour),
        day_of_week=str(definition.weekday) if definition.frequency == Frequency.WEEKLY else "*",
        day_of_month=str(definition.day_of_month) if definition.frequency == Frequency.MONTHLY else "*",
        month_of_year="*", timezone=ZoneInfo(SCHEDULE_TIME_ZONE),
    )
    with translation.override(settings.LANGUAGE_CODE):  # stored text staff read: in the site's language
        name = gettext("Report: {name}").format(name=definition.name)[:200]
    fields = {
        "name": name, "task": TASK_NAME, "crontab": crontab,
        "interval": None, "kwargs": f'{{"definition_id": {definition.pk}}}', "enabled": definition.active,
        "description": definition.name,
    }
    if task is None:
        task = PeriodicTask.objects.create(**fields)
        definition.periodic_task = task
        ReportDefinition.objects.filter(pk=definition.pk).update(periodic_task=task)
    else:
        for name, value in fields.items():
            setattr(task, name, value)
        task.save()


def definition_delete(definition: ReportDefinition) -> None:
    """Remove a definition and its beat task; its runs stay in the archive."""
    with transaction.atomic():
        task = definition.periodic_task
        definition.delete()
        if task is not None:
            task.delete()


def runs_prune(*, now=None) -> int:
    """Remove the files of runs older than REPORTS_RETENTION_DAYS; the runs stay, marked. Returns files removed."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.REPORTS_RETENTION_DAYS)
    removed = 0
    for run in ReportRun.objects.filter(started_at__lt=cutoff, pruned_at__isnull=True).exclude(file="").iterator():
        run.file.delete(save=False)
        ReportRun.objects.filter(pk=run.pk).update(file="", pruned_at=now)
        removed += 1
    return removed


def run_download_log(*, run: ReportRun, user, ip: str | None = None) -> ReportDownload:
    """Log that `user` downloads `run`'s file (refused when there is no file to download)."""
    if not run.downloadable:
        raise RunNotDownloadable()
    return ReportDownload.objects.create(run=run, user=user, ip=ip or None)
