from celery.exceptions import TimeoutError as ResultTimeout
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_celery_beat.models import PeriodicTask

from core.jobs import UnknownJobTask, job_run_now


class Command(BaseCommand):
    help = (
        "Run a scheduled job now: the periodic task named JOB (e.g. 'core: check ledgers'), or the one whose task is "
        "JOB (core.check_ledgers). With a broker (CELERY_BROKER_URL) it is sent to the worker; without one it runs "
        "here. Under `make run`, send it to make run's worker with CELERY_BROKER_URL=filesystem://localhost/."
    )

    def add_arguments(self, parser):
        parser.add_argument("job", help="The periodic task's name or its task.")
        parser.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                            help="With a broker: wait this long for the worker's result (default: do not wait).")

    def handle(self, *args, job, wait, **options):
        periodic_task = (PeriodicTask.objects.filter(name=job).first()
                         or PeriodicTask.objects.filter(task=job).order_by("pk").first())
        if periodic_task is None:
            names = ", ".join(PeriodicTask.objects.order_by("name").values_list("name", flat=True))
            raise CommandError(f"No scheduled job named {job!r}; there are: {names}.")
        eager = settings.CELERY_TASK_ALWAYS_EAGER
        try:
            result = job_run_now(periodic_task)
        except UnknownJobTask as error:
            raise CommandError(f"{periodic_task.name}: no installed app registers the task {error}.") from None
        except Exception as error:  # noqa: BLE001 - run here (no broker): the job's own failure, reported
            raise CommandError(f"{periodic_task.name} failed: {type(error).__name__}: {error}") from None
        if eager:
            self.stdout.write(self.style.SUCCESS(f"{periodic_task.name} ran here: {result.result!r}"))
            return
        self.stdout.write(f"Sent {periodic_task.name} ({periodic_task.task}) to the worker, task id {result.id}.")
        if wait <= 0:
            return
        try:
            value = result.get(timeout=wait, propagate=False)
        except ResultTimeout:
            raise CommandError(f"No result within {wait:g}s: is a worker running (make run, make worker)?") from None
        if result.failed():
            raise CommandError(f"{periodic_task.name} failed in the worker: {value!r}")
        self.stdout.write(self.style.SUCCESS(f"{periodic_task.name} finished in the worker: {value!r}"))
