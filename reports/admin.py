"""Admin screens of reports (报表): report definitions with their beat schedule, the runs with their files (retry a
failed one, download a done one) and the download log. Thin: every button calls reports.services."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from core.admin import ReadOnlyAdminMixin, ServiceCallsMixin, local_time
from reports import services
from reports.frame import value_display
from reports.models import ReportDefinition, ReportDownload, ReportRun
from reports.queries.runs import runs_visible_to
from stores.admin_base import BaseAdmin, HeadquartersOnlyMixin
from stores.queries import user_is_hq


@admin.register(ReportDefinition)
class ReportDefinitionAdmin(HeadquartersOnlyMixin, ServiceCallsMixin, BaseAdmin):
    list_display = ("name", "kind", "period", "scope_text", "schedule_text", "active", "last_run")
    list_filter = ("kind", "frequency", "active")
    search_fields = ("name",)
    autocomplete_fields = ()
    filter_horizontal = ("recipients",)
    actions = ("run_now",)
    fieldsets = (
        (None, {"fields": ("name", "kind", "period", "active")}),
        (_("Scope"), {"fields": ("scope", "format", "store")}),
        (_("Schedule"), {
            "fields": ("frequency", "hour", "minute", "weekday", "day_of_month", "beat_task"),
            "description": _("Beat runs the report at this local time; the task is also listed under 定时任务, "
                             "where it can be paused."),
        }),
        (_("Recipients"), {"fields": ("recipients",)}),
    )
    readonly_fields = ("beat_task",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("format", "store", "periodic_task")

    @admin.display(description=_("scope"))
    def scope_text(self, obj):
        if obj.scope == ReportDefinition.Scope.STORE and obj.store_id:
            return f"{obj.store.code} {obj.store.name}"
        if obj.scope == ReportDefinition.Scope.FORMAT and obj.format_id:
            return obj.format.name
        return obj.get_scope_display()

    @admin.display(description=_("schedule"))
    def schedule_text(self, obj):
        Frequency = ReportDefinition.Frequency
        at = f"{obj.hour:02d}:{obj.minute:02d}"
        if obj.frequency == Frequency.DAILY:
            return gettext("daily at {time}").format(time=at)
        if obj.frequency == Frequency.WEEKLY:
            return gettext("every {weekday} at {time}").format(weekday=obj.get_weekday_display(), time=at)
        if obj.frequency == Frequency.MONTHLY:
            return gettext("on day {day} of each month at {time}").format(day=obj.day_of_month, time=at)
        return obj.get_frequency_display()

    @admin.display(description=_("beat schedule"))
    def beat_task(self, obj):
        task = obj.periodic_task if obj and obj.pk else None
        if task is None:
            return "—"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        state = gettext("enabled") if task.enabled else gettext("paused")
        return format_html('<a href="{}">{}</a> ({})', url, task.name, state)

    @admin.display(description=_("last run"))
    def last_run(self, obj):
        run = obj.runs.order_by("-started_at", "-pk").first()
        if run is None:
            return "—"
        url = reverse("admin:reports_reportrun_change", args=[run.pk])
        return format_html('<a href="{}">{} · {}</a>', url, local_time(run.started_at), run.get_status_display())

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        services.definition_schedule_sync(obj)

    def delete_model(self, request, obj):
        services.definition_delete(obj)

    def delete_queryset(self, request, queryset):
        for definition in queryset:
            services.definition_delete(definition)

    @admin.action(description=_("Run now for its period"), permissions=["view"])
    def run_now(self, request, queryset):
        for definition in queryset:
            run = services.definition_run(definition=definition, user=request.user,
                                          trigger=ReportRun.Trigger.MANUAL)
            if run.status == ReportRun.Status.DONE:
                self.message_user(request, format_html(
                    '{} <a href="{}">{}</a>', gettext("{name}: done.").format(name=definition.name),
                    reverse("reports:download", args=[run.pk]), gettext("Download"),
                ), messages.SUCCESS)
            else:
                self.message_user(request, gettext("{name}: failed: {error}").format(
                    name=definition.name, error=run.error), messages.ERROR)


class RunStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return ReportRun.Status.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value in ReportRun.Status.values:
            return queryset.filter(status=value)
        return queryset


@admin.register(ReportRun)
class ReportRunAdmin(ReadOnlyAdminMixin, ServiceCallsMixin, BaseAdmin):
    store_path = "store"
    list_display = ("title", "period_text", "store", "status", "trigger", "rows", "duration_ms", "started_text",
                    "download")
    list_filter = (RunStatusFilter, "kind", "trigger")
    search_fields = ("title",)
    actions = ("retry",)
    fields = ("title", "kind", "period_text", "store", "format", "status", "trigger", "retry_of", "definition",
              "requested_by", "started_text", "finished_text", "rows", "duration_ms", "figures_table", "error",
              "download", "pruned_at", "downloads_text")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("store", "format", "requested_by", "definition")

    def scope_rows(self, queryset, user):
        return runs_visible_to(user, queryset)

    @admin.display(description=_("period"), ordering="period_start")
    def period_text(self, obj):
        if obj.period_start == obj.period_end:
            return f"{obj.period_start:%Y-%m-%d}"
        return f"{obj.period_start:%Y-%m-%d} ~ {obj.period_end:%Y-%m-%d}"

    @admin.display(description=_("started at"), ordering="started_at")
    def started_text(self, obj):
        return local_time(obj.started_at)

    @admin.display(description=_("finished at"))
    def finished_text(self, obj):
        return local_time(obj.finished_at) if obj.finished_at else "—"

    @admin.display(description=_("file"))
    def download(self, obj):
        if obj.downloadable:
            return format_html('<a href="{}">{}</a>', reverse("reports:download", args=[obj.pk]), gettext("Download"))
        if obj.pruned_at:
            return gettext("removed")
        return "—"

    @admin.display(description=_("headline figures"))
    def figures_table(self, obj):
        if not obj.figures:
            return "—"
        rows = format_html_join(
            "", "<tr><th>{}</th><td class=\"amount\">{}</td></tr>",
            ((label, value_display(value, unit)) for _key, label, value, unit in obj.figures),
        )
        return format_html('<table class="summary">{}</table>', rows)

    @admin.display(description=_("downloads"))
    def downloads_text(self, obj):
        downloads = list(obj.downloads.select_related("user")[:20])
        if not downloads:
            return "—"
        return format_html_join(
            "", "<div>{} · {}</div>", ((local_time(item.at), item.user.get_username()) for item in downloads)
        )

    @admin.action(description=_("Retry the failed runs"), permissions=["view"])
    def retry(self, request, queryset):
        count = self.service_each(
            request, queryset, lambda run: services.report_run_retry(run=run, user=request.user),
            done_message=lambda count: ngettext("{count} run retried.", "{count} runs retried.", count).format(
                count=count),
        )
        return count


@admin.register(ReportDownload)
class ReportDownloadAdmin(HeadquartersOnlyMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at_text", "user", "run", "ip")
    list_select_related = ("user", "run")
    search_fields = ("user__username", "run__title")

    @admin.display(description=_("downloaded at"), ordering="at")
    def at_text(self, obj):
        return local_time(obj.at)

    def has_module_permission(self, request):
        return user_is_hq(request.user) and super().has_module_permission(request)
