"""Running a scheduled job (a django-celery-beat PeriodicTask) now, and reading how its runs ended.

Shared by the admin's "run now" action (config/admin.py) and `manage.py run_job`.
"""

from celery import current_app
from celery.result import AsyncResult
from django.db.models import OuterRef, Q, Subquery
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import TaskResult
from kombu.utils.json import loads


class UnknownJobTask(LookupError):
    """The periodic task names a task no installed app registers."""


def job_run_now(periodic_task: PeriodicTask) -> AsyncResult:
    """Send the job's task with its arguments, as beat does (the result carries the job's name).

    With a broker the worker runs it and this returns at once; without one (tests, plain commands) it runs here
    and a failure raises.
    """
    app = current_app  # the project's (config/celery.py), as for django-celery-beat's screens
    app.loader.import_default_modules()
    task = app.tasks.get(periodic_task.task)
    if task is None:
        raise UnknownJobTask(periodic_task.task)
    options = {"headers": {"periodic_task_name": periodic_task.name}}
    if periodic_task.queue:
        options["queue"] = periodic_task.queue
    return task.apply_async(args=loads(periodic_task.args or "[]"), kwargs=loads(periodic_task.kwargs or "{}"),
                            **options)


def with_last_result(queryset):
    """Periodic tasks annotated with their latest stored result: last_result_status, last_result_done,
    last_result_pk. A result counts when it carries the job's name (sent by beat or "run now"), or when it is of
    the job's task and was sent by no schedule (a manual call)."""
    latest = TaskResult.objects.filter(
        Q(periodic_task_name=OuterRef("name"))
        | Q(periodic_task_name__isnull=True, task_name=OuterRef("task"))
    ).order_by("-date_done", "-pk")
    return queryset.annotate(
        last_result_status=Subquery(latest.values("status")[:1]),
        last_result_done=Subquery(latest.values("date_done")[:1]),
        last_result_pk=Subquery(latest.values("pk")[:1]),
    )
