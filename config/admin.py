"""The scheduled jobs in the admin: headquarters only, each job with its schedule, last run and last result.

django-celery-beat and django-celery-results register their own screens. This module is the last app's admin
(config is last in INSTALLED_APPS), so by the time it is loaded theirs are registered: `install()` registers them
again with headquarters-only access (superusers and staff of HQ scope, and only with the model permissions: the
role 总部管理员 holds them). The periodic tasks list shows when the schedule last started each job, how its
latest run ended (linked to that stored result) and has a "run now" action; core/schedules.py creates the nightly
jobs, core/jobs.py runs one now.
"""

import re

from celery.result import EagerResult
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from core.jobs import UnknownJobTask, job_run_now, with_last_result
from stores.queries import user_is_hq

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


class HeadquartersOnlyMixin:
    """Headquarters staff and superusers only, and only with the model's permissions."""

    def has_module_permission(self, request):
        return user_is_hq(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args, **kwargs):
        return user_is_hq(request.user) and super().has_add_permission(request, *args, **kwargs)

    def has_change_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_delete_permission(request, obj)


class ScheduledJobAdmin(HeadquartersOnlyMixin, PeriodicTaskAdmin):
    list_display = ("name", "enabled", "schedule_text", "last_run", "last_result", "last_result_done")
    list_display_links = ("name",)
    ordering = ("name",)
    actions = ("run_tasks", "enable_tasks", "disable_tasks", "toggle_tasks")

    def get_queryset(self, request):
        return with_last_result(super().get_queryset(request))

    @admin.display(description=_("Schedule"))
    def schedule_text(self, obj):
        crontab = obj.crontab
        daily = crontab is not None and (crontab.day_of_week, crontab.day_of_month, crontab.month_of_year) == (
            "*", "*", "*")
        if daily and _NUMBER.match(crontab.hour) and _NUMBER.match(crontab.minute):
            return gettext("Every day at %(time)s (%(zone)s)") % {
                "time": f"{int(crontab.hour):02d}:{int(crontab.minute):02d}", "zone": crontab.timezone}
        return str(obj.scheduler or "")

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
                    "job": periodic_task.name, "task": error}, messages.ERROR)
                continue
            except Exception as error:  # noqa: BLE001 - run here (no broker): the job's own failure, reported
                self.message_user(request, gettext("%(job)s failed: %(error)s") % {
                    "job": periodic_task.name, "error": error}, messages.ERROR)
                continue
            if isinstance(result, EagerResult):  # no broker: it ran in this request
                self.message_user(request, gettext("%(job)s ran.") % {"job": periodic_task.name}, messages.SUCCESS)
            else:
                self.message_user(request, gettext(
                    "%(job)s was sent to the worker; its result appears under “Last result” once it has "
                    "run.") % {"job": periodic_task.name}, messages.SUCCESS)


def install(site: admin.AdminSite = admin.site) -> None:
    """Register the job screens again, headquarters only; the periodic tasks with ScheduledJobAdmin."""
    for model, model_admin in list(site._registry.items()):
        if model._meta.app_label not in JOB_APPS or isinstance(model_admin, HeadquartersOnlyMixin):
            continue
        site.unregister(model)
        if model is PeriodicTask:
            site.register(model, ScheduledJobAdmin)
        else:
            site.register(model, type(type(model_admin).__name__, (HeadquartersOnlyMixin, type(model_admin)),
                                      {"__module__": __name__}))


install()
