"""The scheduled jobs in the admin: headquarters only, each job with its schedule, last run and last result.

django-celery-beat and django-celery-results register their own screens. This module is the last app's admin
(config is last in INSTALLED_APPS), so by the time it is loaded theirs are registered: `install()` registers them
again with headquarters-only access (superusers and staff of HQ scope, and only with the model permissions: the
role 总部管理员 holds them). The periodic tasks list shows when the schedule last started each job, how its
latest run ended (linked to that stored result) and has a "run now" action; core/schedules.py creates the nightly
jobs, core/jobs.py runs one now.
"""

import re
from zoneinfo import ZoneInfo

from celery.result import EagerResult
from cron_descriptor import FormatException, MissingFieldException, Options, WrongArgumentException, get_description
from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.dates import WEEKDAYS
from django.utils.html import format_html
from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_lazy as _
from django_celery_beat.admin import CrontabScheduleAdmin, PeriodicTaskAdmin, PeriodicTaskInline, ScheduleAdmin
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from config import admin_index
from core.jobs import UnknownJobTask, job_run_now, with_last_result
from core.schedules import job_label
from stores.admin_base import HeadquartersOnlyMixin

JOB_APPS = ("django_celery_beat", "django_celery_results")

RESULT_LABELS = {
    "SUCCESS": _("Succeeded"),
    "FAILURE": _("Failed"),
    "STARTED": _("Running"),
    "PENDING": _("Waiting"),
    "RECEIVED": _("Waiting"),
    "RETRY": _("Retrying"),
    "REVOKED": _("Cancelled"),
}
_NUMBER = re.compile(r"^\d{1,2}$")


def crontab_text(crontab: CrontabSchedule | None) -> str:
    """A crontab as staff read it, in the active language: "Every day at 04:30 (Asia/Shanghai)", else
    cron_descriptor's description (in Chinese under zh-hans), never the raw "30 4 * * * (m/h/dM/MY/d)"."""
    if crontab is None:
        return ""
    daily = (crontab.day_of_week, crontab.day_of_month, crontab.month_of_year) == ("*", "*", "*")
    if daily and _NUMBER.match(crontab.hour) and _NUMBER.match(crontab.minute):
        return gettext("Every day at %(time)s (%(zone)s)") % {
            "time": f"{int(crontab.hour):02d}:{int(crontab.minute):02d}", "zone": crontab.timezone}
    timed = _NUMBER.match(crontab.hour) and _NUMBER.match(crontab.minute)
    at = f"{int(crontab.hour):02d}:{int(crontab.minute):02d}" if timed else ""
    if timed and crontab.month_of_year == "*":
        # A report's weekly or monthly schedule (reports.services.definition_schedule_sync); cron_descriptor leaves
        # weekday names in English.
        if crontab.day_of_month == "*" and re.fullmatch(r"[0-6]", crontab.day_of_week):
            # cron counts from Sunday (0), Django's WEEKDAYS from Monday (0).
            weekday = WEEKDAYS[(int(crontab.day_of_week) - 1) % 7]
            return gettext("Every %(weekday)s at %(time)s (%(zone)s)") % {
                "weekday": weekday, "time": at, "zone": crontab.timezone}
        if crontab.day_of_week == "*" and _NUMBER.match(crontab.day_of_month):
            return gettext("On day %(day)s of each month at %(time)s (%(zone)s)") % {
                "day": int(crontab.day_of_month), "time": at, "zone": crontab.timezone}
    expression = " ".join((crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year,
                           crontab.day_of_week))
    options = Options()
    options.locale_code = "zh_CN" if (get_language() or "").startswith("zh") else "en_US"
    options.use_24hour_time_format = True
    try:
        described = get_description(expression, options)
    except (FormatException, MissingFieldException, WrongArgumentException):
        described = expression
    return f"{described} ({crontab.timezone})"


class ScheduledJobAdmin(HeadquartersOnlyMixin, PeriodicTaskAdmin):
    list_display = ("job_name", "enabled", "schedule_text", "last_run", "last_result", "last_result_done")
    list_display_links = ("job_name",)
    list_filter = ["enabled", "one_off", "start_time", "last_run_at"]
    ordering = ("name",)
    actions = ("run_tasks", "enable_tasks", "disable_tasks", "toggle_tasks")

    def get_queryset(self, request):
        return with_last_result(super().get_queryset(request))

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "crontab" and field is not None:
            field.label_from_instance = crontab_text
        return field

    @admin.display(description=_("name"), ordering="name")
    def job_name(self, obj):
        return job_label(obj.name)

    @admin.display(description=_("Schedule"))
    def schedule_text(self, obj):
        if obj.crontab is not None:
            return crontab_text(obj.crontab)
        return str(obj.scheduler or "")

    @admin.display(description=_("Schedule"))
    def crontab_translation(self, obj):
        return crontab_text(obj.crontab)

    @admin.display(description=_("Last run"), ordering="last_run_at")
    def last_run(self, obj):
        """When the schedule last started the job (beat's last_run_at); a "run now" shows under Last result."""
        return obj.last_run_at

    @admin.display(description=_("Last result"), ordering="last_result_status")
    def last_result(self, obj):
        if not obj.last_result_status:
            return gettext("No result stored")
        label = RESULT_LABELS.get(obj.last_result_status, obj.last_result_status)
        url = reverse("admin:django_celery_results_taskresult_change", args=[obj.last_result_pk])
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description=_("Last result at"), ordering="last_result_done")
    def last_result_done(self, obj):
        return obj.last_result_done

    @admin.action(description=_("Run the selected jobs now"), permissions=["change"])
    def run_tasks(self, request, queryset):
        for periodic_task in queryset.order_by("name"):
            try:
                result = job_run_now(periodic_task)
            except UnknownJobTask as error:
                self.message_user(request, gettext("%(job)s: no installed app has the task %(task)s.") % {
                    "job": job_label(periodic_task.name), "task": error}, messages.ERROR)
                continue
            except Exception as error:  # noqa: BLE001 - run here (no broker): the job's own failure, reported
                self.message_user(request, gettext("%(job)s failed: %(error)s") % {
                    "job": job_label(periodic_task.name), "error": error}, messages.ERROR)
                continue
            if isinstance(result, EagerResult):  # no broker: it ran in this request
                self.message_user(request, gettext("%(job)s ran.") % {"job": job_label(periodic_task.name)},
                                  messages.SUCCESS)
            else:
                self.message_user(request, gettext(
                    "%(job)s was sent to the worker; its result appears under “Last result” once it has "
                    "run.") % {"job": job_label(periodic_task.name)}, messages.SUCCESS)


class JobsOnScheduleInline(PeriodicTaskInline):
    """The jobs a schedule starts, on the schedule's page: named as in the jobs list."""

    fields = ("job_name", "task_path")
    readonly_fields = fields
    verbose_name = _("job on this schedule")
    verbose_name_plural = _("jobs on this schedule")

    @admin.display(description=_("name"))
    def job_name(self, obj):
        return job_label(obj.name)

    @admin.display(description=_("task"))
    def task_path(self, obj):
        return obj.task


# The time zones a schedule is offered: the stores' own, and UTC (not the 600 names of the tz database).
SCHEDULE_TIME_ZONES = [("Asia/Shanghai", _("China Standard Time (Asia/Shanghai)")), ("UTC", "UTC")]


class CrontabAdmin(HeadquartersOnlyMixin, CrontabScheduleAdmin):
    """The crontabs described in the user's language instead of "30 4 * * * (m/h/dM/MY/d)"."""

    list_display = ("schedule_text",)
    fields = ("schedule_text", "minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone")
    readonly_fields = ("schedule_text",)
    inlines = [JobsOnScheduleInline]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "timezone":
            return forms.TypedChoiceField(label=db_field.verbose_name, choices=SCHEDULE_TIME_ZONES,
                                          coerce=ZoneInfo, initial="Asia/Shanghai")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description=_("Schedule"))
    def schedule_text(self, obj):
        return crontab_text(obj)


def _job_str(periodic_task: PeriodicTask) -> str:
    return job_label(periodic_task.name)


def install(site: admin.AdminSite = admin.site) -> None:
    """Register the job screens again, headquarters only; the periodic tasks with ScheduledJobAdmin.

    A job reads as its label wherever the admin names it (titles, breadcrumbs, choices, the history), not as
    django-celery-beat's "membership: expire points: 40 0 * * * (m/h/dM/MY/d) Asia/Shanghai".
    """
    PeriodicTask.__str__ = _job_str
    for model, model_admin in list(site._registry.items()):
        if model._meta.app_label not in JOB_APPS or isinstance(model_admin, HeadquartersOnlyMixin):
            continue
        site.unregister(model)
        if model is PeriodicTask:
            site.register(model, ScheduledJobAdmin)
        elif model is CrontabSchedule:
            site.register(model, CrontabAdmin)
        else:
            attrs = {"__module__": __name__}
            if isinstance(model_admin, ScheduleAdmin):
                attrs["inlines"] = [JobsOnScheduleInline]
            site.register(model, type(type(model_admin).__name__, (HeadquartersOnlyMixin, type(model_admin)), attrs))


install()
# The home grouped by the work, and store staff's own home (config/admin_index.py).
admin_index.install()
