"""Admin screens for settlement periods (结算): the month's page with what keeps it from closing, its statements,
its close figures, its finance files and the buttons that run its clearing, build its statements, ask to close it
and make each company's files; the statements; the finance export layouts and the files made.

Thin: every button calls settlement.services (clearing, periods, exports); the approval of a close happens in the
approvals inbox. Statements and files are scoped by company (settlement/admin/clearing.py `user_company_ids`).
"""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from approvals.admin import ApprovalHistoryInline, approval_outcome_message
from core.admin import ReadOnlyAdminMixin, ServiceCallsMixin, change_page, local_time, summary_table
from core.errors import DomainError
from core.forms import add_service_error
from core.numbers import points_display
from settlement.admin.clearing import (
    TEMPLATES,
    CompanyScopedMixin,
    companies_visible_to,
    company_label,
    page_response,
    scope_companies,
)
from settlement.models import (
    ClearingRun,
    FinanceExportFile,
    FinanceExportLayout,
    SettlementPeriod,
    Statement,
    StatementLine,
)
from settlement.services.clearing import clearing_days_run
from settlement.services.exports import (
    DATASET_FIELDS,
    export_layout_clean,
    finance_export_filename,
    finance_export_make,
    finance_export_zip_file,
)
from settlement.services.periods import period_close_problems, period_close_request, statements_build
from stores.admin_base import BaseAdmin
from stores.models import LegalEntity
from stores.queries import user_is_hq

PERMISSION_CLOSE = "settlement.close_settlementperiod"
PERMISSION_RUN = "settlement.add_clearingrun"
PERMISSION_BUILD = "settlement.add_statement"
PERMISSION_EXPORT = "settlement.add_financeexportfile"


def may_close(user) -> bool:
    return user_is_hq(user) and user.has_perm(PERMISSION_CLOSE)


def may_run(user) -> bool:
    return user_is_hq(user) and user.has_perm(PERMISSION_RUN)


def may_build(user) -> bool:
    return user_is_hq(user) and user.has_perm(PERMISSION_BUILD)


def may_export(user) -> bool:
    return user.has_perm(PERMISSION_EXPORT)


def missing_days(period: SettlementPeriod, *, today=None) -> list:
    """The days of the period that are over and have no finished clearing run."""
    today = today or timezone.localdate()
    last = min(period.ends_on, today - timedelta(days=1))
    if last < period.starts_on:
        return []
    done = set(ClearingRun.objects.filter(business_date__range=(period.starts_on, last),
                                          status=ClearingRun.Status.DONE).values_list("business_date", flat=True))
    return [period.starts_on + timedelta(days=offset) for offset in range((last - period.starts_on).days + 1)
            if period.starts_on + timedelta(days=offset) not in done]


def day_ranges(days: list) -> list[tuple]:
    """Consecutive days as (first, last) ranges."""
    ranges = []
    for day in days:
        if ranges and ranges[-1][1] + timedelta(days=1) == day:
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


class CloseRequestForm(forms.Form):
    reason = forms.CharField(label=_("reason"), widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
                             help_text=_("What the approver should know, e.g. the statements were checked with each "
                                         "company's finance."))


@admin.register(SettlementPeriod)
class SettlementPeriodAdmin(ServiceCallsMixin, ReadOnlyAdminMixin, BaseAdmin):
    change_form_template = f"{TEMPLATES}/settlementperiod_change_form.html"
    list_display = ["code", "starts_on", "ends_on", "status", "close_requested_by", "locked_by", "locked_at"]
    list_filter = ["status"]
    list_select_related = ["close_requested_by", "locked_by"]
    fieldsets = [
        (None, {"fields": ["code", "starts_on", "ends_on", "status", "close_requested_by", "locked_by", "locked_at",
                           "note"]}),
        (_("readiness"), {"fields": ["readiness"]}),
        (_("statements"), {"fields": ["statements_summary"]}),
        (_("close figures"), {"fields": ["card_outstanding", "points_outstanding_shown", "points_value",
                                         "escrow_base", "escrow_required"]}),
        (_("finance files"), {"fields": ["export_files"]}),
    ]
    readonly_fields = ["code", "starts_on", "ends_on", "status", "close_requested_by", "locked_by", "locked_at",
                       "note", "readiness", "statements_summary", "card_outstanding", "points_outstanding_shown",
                       "points_value", "escrow_base", "escrow_required", "export_files"]
    inlines = [ApprovalHistoryInline]

    def get_object(self, request, object_id, from_field=None):
        # The read-only fields below show only the companies the user may see.
        period = super().get_object(request, object_id, from_field)
        if period is not None:
            period.viewer = request.user
        return period

    @admin.display(description=SettlementPeriod._meta.get_field("points_outstanding").verbose_name)
    def points_outstanding_shown(self, obj):
        return "-" if obj.points_outstanding is None else points_display(obj.points_outstanding)

    @admin.display(description=_("what keeps it from closing"))
    def readiness(self, obj):
        if obj.status == SettlementPeriod.Status.LOCKED:
            return gettext("Locked: nothing of this period changes any more; a correction goes into the next open "
                           "period.")
        if obj.status != SettlementPeriod.Status.OPEN:
            return obj.get_status_display()
        problems = period_close_problems(obj)
        if not problems:
            return gettext("Nothing: the period can be closed.")
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((problem,) for problem in problems)))

    @admin.display(description=_("settlement statements"))
    def statements_summary(self, obj):
        statements = scope_companies(obj.statements.select_related("company_a", "company_b"),
                                     obj.viewer, ("company_a", "company_b")).order_by(
            "company_a__code", "company_b__code")
        rows = [(format_html('<a href="{}">{}</a>', reverse("admin:settlement_statement_change", args=[st.pk]),
                             company_label(st.company_a)),
                 company_label(st.company_b), st.a_owes_b, st.b_owes_a, st.net) for st in statements]
        return summary_table([gettext("company A"), gettext("company B"), gettext("A owes B"), gettext("B owes A"),
                              gettext("net, A pays B")], rows, css_class="settlement-statements",
                             empty=gettext("No statements yet: build them once the days are cleared."))

    @admin.display(description=_("files made"))
    def export_files(self, obj):
        files = scope_companies(obj.export_files.select_related("period", "legal_entity", "layout", "created_by"),
                                obj.viewer, ("legal_entity",)).order_by("-created_at", "-pk")[:50]
        rows = [(local_time(file.created_at), company_label(file.legal_entity), file.layout.name, file.rows,
                 file.created_by or "-",
                 format_html('<a href="{}">{}</a>', reverse("admin:settlement_financeexportfile_download",
                                                            args=[file.pk]), finance_export_filename(file)))
                for file in files]
        return summary_table([gettext("made at"), gettext("legal entity"), gettext("layout"), gettext("rows"),
                              gettext("made by"), gettext("file")], rows, css_class="settlement-files",
                             empty=gettext("No finance files made for this period yet."))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        period = self.get_object(request, object_id)
        if period is not None:
            is_open = period.status == SettlementPeriod.Status.OPEN
            user = request.user
            extra_context = {
                **(extra_context or {}),
                "may_run": may_run(user) and is_open and bool(missing_days(period)),
                "may_build": may_build(user) and is_open,
                "may_close": may_close(user) and is_open,
                "export_companies": list(companies_visible_to(user)) if may_export(user) else [],
                "matrix_url": reverse("admin:settlement_clearing_matrix") + f"?period={period.pk}",
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        name = "settlement_settlementperiod"
        return [
            path("<path:object_id>/run-missing/", wrap(require_POST(self.run_missing_view)),
                 name=f"{name}_run_missing"),
            path("<path:object_id>/build/", wrap(require_POST(self.build_view)), name=f"{name}_build"),
            path("<path:object_id>/close/", wrap(self.close_view), name=f"{name}_close"),
            path("<path:object_id>/exports/<int:entity_id>/make/", wrap(require_POST(self.export_view)),
                 name=f"{name}_export"),
            path("<path:object_id>/exports/<int:entity_id>/zip/", wrap(self.zip_view), name=f"{name}_zip"),
            *super().get_urls(),
        ]

    def _period(self, request, object_id, allowed) -> SettlementPeriod:
        if not self.has_view_permission(request) or not allowed(request.user):
            raise PermissionDenied
        return self.object_or_404(request, object_id)

    def run_missing_view(self, request, object_id):
        period = self._period(request, object_id, may_run)
        days = missing_days(period)

        def run():
            for start, end in day_ranges(days):
                clearing_days_run(start=start, end=end, user=request.user)

        return self.service_call(request, run, ngettext("%(count)s day cleared.", "%(count)s days cleared.",
                                                        len(days)) % {"count": len(days)}, change_page(period))

    def build_view(self, request, object_id):
        period = self._period(request, object_id, may_build)
        try:
            statements = statements_build(period=period)
        except DomainError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(request, ngettext("%(count)s statement built.", "%(count)s statements built.",
                                                len(statements)) % {"count": len(statements)}, messages.SUCCESS)
        return change_page(period)

    def close_view(self, request, object_id):
        period = self._period(request, object_id, may_close)
        form = CloseRequestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                approval = period_close_request(period=period, user=request.user, reason=form.cleaned_data["reason"])
            except DomainError as error:
                add_service_error(form, error)
            else:
                approval_outcome_message(
                    self, request, approval,
                    pending=gettext("Period %(period)s waits for another person's approval; it is locked when "
                                    "approved.") % {"period": period.code},
                    done=gettext("Period %(period)s is locked.") % {"period": period.code})
                return change_page(period)
        problems = period_close_problems(period) if period.status == SettlementPeriod.Status.OPEN else []
        return page_response(
            request, self, "form_page.html", gettext("Ask to close period %(period)s") % {
            "period": period.code}, self.opts, form=form, original=period, problems=problems,
            submit_label=gettext("Ask for approval"),
            cancel_url=reverse("admin:settlement_settlementperiod_change", args=[period.pk]))

    def _company(self, request, entity_id) -> LegalEntity:
        return get_object_or_404(companies_visible_to(request.user), pk=entity_id)

    def export_view(self, request, object_id, entity_id):
        period = self._period(request, object_id, may_export)
        company = self._company(request, entity_id)
        try:
            files = finance_export_make(period=period, legal_entity=company, user=request.user)
        except DomainError as error:
            self.message_user(request, str(error), messages.ERROR)
            return change_page(period)
        if not files:
            self.message_user(request, gettext("No active layout for the finance systems of %(company)s: nothing "
                                               "was made.") % {"company": company_label(company)}, messages.WARNING)
            return change_page(period)
        zip_url = reverse("admin:settlement_settlementperiod_zip", args=[period.pk, company.pk])
        self.message_user(request, format_html(
            '{} <a href="{}">{}</a>',
            ngettext("%(count)s file made for %(company)s.", "%(count)s files made for %(company)s.", len(files))
            % {"count": len(files), "company": company_label(company)}, zip_url, gettext("Download them as a ZIP")),
            messages.SUCCESS)
        return change_page(period)

    def zip_view(self, request, object_id, entity_id):
        """The newest file of each layout made for the company and period, in one ZIP."""
        period = self._period(request, object_id, lambda user: user.has_perm("settlement.view_financeexportfile"))
        company = self._company(request, entity_id)
        newest = {}
        for file in (FinanceExportFile.objects.filter(period=period, legal_entity=company)
                     .select_related("layout").order_by("-created_at", "-pk")):
            newest.setdefault(file.layout_id, file)
        if not newest:
            raise Http404
        return FileResponse(finance_export_zip_file(list(newest.values())), as_attachment=True,
                            filename=f"finance-{period.code}-{company.code}.zip", content_type="application/zip")


# --- statements -----------------------------------------------------------------------------------------------------


class StatementLineInline(admin.TabularInline):
    model = StatementLine
    fields = ["kind", "issuer", "honourer", "count", "points", "gross", "fee", "net", "corrects_text"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("issuer", "honourer")


@admin.register(Statement)
class StatementAdmin(CompanyScopedMixin, ReadOnlyAdminMixin, BaseAdmin):
    company_fields = ("company_a", "company_b")
    list_display = ["period", "company_a", "company_b", "a_owes_b", "b_owes_a", "net", "built_at"]
    list_filter = ["period", "company_a", "company_b"]
    list_select_related = ["period", "company_a", "company_b"]
    fields = ["period", "company_a", "company_b", "a_owes_b", "b_owes_a", "net", "built_at"]
    readonly_fields = fields
    inlines = [StatementLineInline]


# --- finance export layouts and files ---------------------------------------------------------------------------------


class FinanceExportLayoutForm(forms.ModelForm):
    class Meta:
        model = FinanceExportLayout
        fields = ["finance_system_code", "dataset", "name", "columns", "file_type", "encoding", "delimiter",
                  "date_format", "amount_format", "is_active"]
        widgets = {"columns": forms.Textarea(attrs={"rows": 12, "cols": 80, "translate": "no"})}

    def clean(self):
        cleaned = super().clean()
        needed = ("dataset", "columns", "date_format", "encoding", "file_type", "delimiter")
        if any(name in self.errors for name in needed):
            return cleaned
        try:
            cleaned["columns"] = export_layout_clean(**{name: cleaned.get(name) for name in needed})
        except DomainError as error:
            add_service_error(self, error)
        return cleaned


@admin.register(FinanceExportLayout)
class FinanceExportLayoutAdmin(BaseAdmin):
    """Each finance system's columns; headquarters edit them, finance reads them. A layout that made files is made
    inactive rather than deleted."""

    form = FinanceExportLayoutForm
    list_display = ["finance_system_code", "dataset", "name", "file_type", "encoding", "amount_format", "is_active"]
    list_filter = ["finance_system_code", "dataset", "file_type", "is_active"]
    search_fields = ["finance_system_code", "name"]
    readonly_fields = ["fields_offered"]

    def get_fields(self, request, obj=None):
        return [*FinanceExportLayoutForm.Meta.fields, "fields_offered"]

    @admin.display(description=_("fields each data offers"))
    def fields_offered(self, obj):
        rows = []
        for dataset, label in FinanceExportLayout.Dataset.choices:
            rows.extend((label, format_html("<code>{}</code>", field), field_label)
                        for field, field_label in DATASET_FIELDS.get(dataset, []))
        return summary_table([gettext("data"), gettext("field"), gettext("meaning")], rows,
                             css_class="finance-layout-fields")

    def has_add_permission(self, request):
        return user_is_hq(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_delete_permission(request, obj) and (
            obj is None or not obj.files.exists())

    def save_model(self, request, obj, form, change):
        obj._history_user = request.user
        super().save_model(request, obj, form, change)


@admin.register(FinanceExportFile)
class FinanceExportFileAdmin(CompanyScopedMixin, ReadOnlyAdminMixin, BaseAdmin):
    company_fields = ("legal_entity",)
    list_display = ["created_at", "period", "legal_entity", "layout", "rows", "created_by", "download_link"]
    list_filter = ["period", "legal_entity", "layout__finance_system_code", "layout__dataset"]
    list_select_related = ["period", "legal_entity", "layout", "created_by"]
    fields = ["period", "legal_entity", "layout", "rows", "sha256", "created_by", "created_at", "download_link"]
    readonly_fields = fields

    @admin.display(description=_("file"))
    def download_link(self, obj):
        if not obj.file:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:settlement_financeexportfile_download",
                                                          args=[obj.pk]), finance_export_filename(obj))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [path("<path:object_id>/download/", wrap(self.download_view),
                     name="settlement_financeexportfile_download"), *super().get_urls()]

    def download_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise PermissionDenied
        self._ensure_visible(request, object_id)
        export = self.get_queryset(request).get(pk=object_id)
        try:
            handle = export.file.open("rb")
        except (FileNotFoundError, ValueError):
            raise Http404 from None
        return FileResponse(handle, as_attachment=True, filename=finance_export_filename(export))

