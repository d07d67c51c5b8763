"""Admin screens for reconciliation (对账): the POS file layouts, the upload of a POS daily file, its lines, the
reconciliation days with their exceptions and the day's report.

Thin: the upload, the match, accepting an exception and asking for a correction call
settlement.services.reconciliation; the report comes from settlement.queries.reconciliation. A refused file shows
the service's message, which names the lines.

Store-scoped: a store manager uploads only their stores' files and sees only their stores' files, lines, days and
exceptions. A format's file (many stores) is visible to those with a store in it; the layouts are headquarters'.
"""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, Q
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from approvals.admin import ApprovalHistoryInline, approval_outcome_message
from core.admin import (
    CappedCountPaginator,
    DefaultStatusFilter,
    ReadOnlyAdminMixin,
    ServiceCallsMixin,
    admin_page_add,
    change_page,
    local_time,
    summary_table,
)
from core.errors import DomainError
from core.files import table_xlsx_response, xlsx_money
from core.forms import IsoDateInput, add_service_error
from settlement.admin.clearing import TEMPLATES, page_response
from settlement.models import PosFile, PosFileLayout, PosLine, ReconDay, ReconException
from settlement.queries.reconciliation import recon_report
from settlement.services.reconciliation import (
    pos_file_import,
    pos_layout_clean,
    recon_day_match,
    recon_exception_accept,
    recon_exception_correct_request,
)
from stores.admin_base import BaseAdmin, HeadquartersOnlyMixin, StoreFilter
from stores.models import Format
from stores.queries import stores_visible_to, user_is_hq, user_store_ids

PERMISSION_RESOLVE = "settlement.resolve_reconexception"
PERMISSION_MATCH = "settlement.change_reconday"


# --- layouts ------------------------------------------------------------------------------------------------------


class PosFileLayoutForm(forms.ModelForm):
    class Meta:
        model = PosFileLayout
        fields = ["code", "name", "pos_system_code", "file_type", "encoding", "delimiter", "columns",
                  "datetime_format", "time_window_minutes", "is_active"]
        widgets = {"columns": forms.Textarea(attrs={"rows": 8, "cols": 80, "translate": "no"})}

    def clean(self):
        cleaned = super().clean()
        needed = ("columns", "file_type", "encoding", "datetime_format")
        if any(name in self.errors for name in needed):
            return cleaned
        try:
            cleaned["columns"] = pos_layout_clean(**{name: cleaned.get(name) for name in needed})
        except DomainError as error:
            add_service_error(self, error)
        return cleaned


@admin.register(PosFileLayout)
class PosFileLayoutAdmin(HeadquartersOnlyMixin, BaseAdmin):
    """How each POS system writes its daily file: headquarters keep them (stores pick one when uploading)."""

    form = PosFileLayoutForm
    list_display = ["code", "name", "pos_system_code", "file_type", "encoding", "datetime_format",
                    "time_window_minutes", "is_active"]
    list_filter = ["pos_system_code", "file_type", "is_active"]
    search_fields = ["code", "name", "pos_system_code"]

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (obj is None or not obj.files.exists())

    def save_model(self, request, obj, form, change):
        obj._history_user = request.user
        super().save_model(request, obj, form, change)


# --- files ----------------------------------------------------------------------------------------------------------


class PosFileUploadForm(forms.Form):
    layout = forms.ModelChoiceField(label=_("layout"), queryset=PosFileLayout.objects.none())
    store = forms.ModelChoiceField(label=_("store"), queryset=None, required=False,
                                   help_text=_("The store whose day the file holds."))
    format = forms.ModelChoiceField(label=_("format"), queryset=Format.objects.order_by("code"), required=False,
                                    help_text=_("Or, for a file of all the format's stores, the format."))
    business_date = forms.DateField(label=_("business date"), widget=IsoDateInput())
    file = forms.FileField(label=_("POS file"), help_text=_("CSV (UTF-8 or GBK) or Excel, as the layout says."))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["layout"].queryset = PosFileLayout.objects.filter(is_active=True).order_by("code")
        self.fields["store"].queryset = stores_visible_to(user).order_by("code")
        if not user_is_hq(user):
            del self.fields["format"]
            self.fields["store"].required = True

    def clean(self):
        cleaned = super().clean()
        store, file_format = cleaned.get("store"), cleaned.get("format")
        if "store" in self.errors:
            return cleaned
        if bool(store) == bool(file_format):
            raise forms.ValidationError(gettext("Choose either the store or the format of the file."))
        day = cleaned.get("business_date")
        if day and day > timezone.localdate():
            self.add_error("business_date", gettext("The business date cannot be in the future."))
        return cleaned


def _files_with_lines_of(store_ids):
    return Exists(PosLine.objects.filter(pos_file=OuterRef("pk"), store__in=store_ids))


@admin.register(PosFile)
class PosFileAdmin(ReadOnlyAdminMixin, BaseAdmin):
    """The POS daily files as uploaded; adding one is the upload, which imports and matches it."""

    # A store's own file, or a format's file holding the store's lines.
    store_path = ("store", "pos_lines__store")
    list_display = ["business_date", "store", "format", "original_name", "lines", "status", "uploaded_by",
                    "uploaded_at"]
    list_filter = ["status", "format", "layout"]
    list_select_related = ["store", "format", "uploaded_by", "layout"]
    date_hierarchy = "business_date"
    search_fields = ["original_name", "=sha256"]
    fields = ["business_date", "store", "format", "layout", "original_name", "lines", "status", "sha256",
              "uploaded_by", "uploaded_at", "days"]
    readonly_fields = fields

    def scope_rows(self, queryset, user):
        # Through the lines by EXISTS, not a join: a format's file has many lines of the same store.
        store_ids = user_store_ids(user)
        if store_ids is None:
            return queryset
        return queryset.filter(Q(store__in=store_ids) | _files_with_lines_of(store_ids))

    def has_add_permission(self, request, obj=None):
        return request.user.has_perm("settlement.add_posfile")

    @admin.display(description=_("reconciliation days"))
    def days(self, obj):
        days = ReconDay.objects.filter(business_date=obj.business_date, store__in=PosLine.objects.filter(
            pos_file=obj).values("store")).select_related("store").order_by("store__code")
        store_ids = user_store_ids(obj.viewer)
        if store_ids is not None:
            days = days.filter(store__in=store_ids)
        rows = [(format_html('<a href="{}">{} {}</a>', reverse("admin:settlement_reconday_change", args=[day.pk]),
                             day.store.code, day.store.name), day.get_status_display(), day.pos_lines, day.matched,
                 day.exceptions, day.exceptions_open) for day in days]
        return summary_table([gettext("store"), gettext("status"), gettext("POS lines"), gettext("matched"),
                              gettext("exceptions"), gettext("exceptions open")], rows, css_class="recon-days",
                             empty=gettext("No reconciliation day yet."))

    def get_object(self, request, object_id, from_field=None):
        # The file's days are listed for the user's stores only.
        pos_file = super().get_object(request, object_id, from_field)
        if pos_file is not None:
            pos_file.viewer = request.user
        return pos_file

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PosFileUploadForm(request.POST or None, request.FILES or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                pos_file = pos_file_import(layout=data["layout"], uploaded=data["file"],
                                           business_date=data["business_date"], user=request.user,
                                           store=data["store"], format=data.get("format"))
            except DomainError as error:
                add_service_error(form, error, field_names={"uploaded": "file", "file": "file"})
                if error.fields and str(error) != str(error.default_message):
                    form.add_error(None, str(error))
            else:
                self.log_addition(request, pos_file, [{"added": {}}])
                self.message_user(request, ngettext(
                    "%(name)s imported: %(count)s line, matched against the ledger.",
                    "%(name)s imported: %(count)s lines, matched against the ledger.", pos_file.lines)
                    % {"name": pos_file.original_name, "count": pos_file.lines}, messages.SUCCESS)
                return change_page(pos_file)
        return page_response(
            request, self, "form_page.html", gettext("Upload a POS daily file"), self.opts, form=form,
            submit_label=gettext("Upload and match"),
            cancel_url=reverse("admin:settlement_posfile_changelist"))


@admin.register(PosLine)
class PosLineAdmin(ReadOnlyAdminMixin, BaseAdmin):
    store_path = "store"
    list_display = ["business_date", "store", "line_no", "occurred_at", "receipt_no", "card_no", "member_no",
                    "amount", "pos_file"]
    list_filter = [StoreFilter]
    list_select_related = ["store", "pos_file"]
    date_hierarchy = "business_date"
    search_fields = ["=receipt_no", "=card_no", "=member_no"]
    search_help_text = _("Exact receipt, card or member number.")
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = ["pos_file", "line_no", "store", "business_date", "occurred_at", "receipt_no", "card_no", "member_no",
              "amount"]
    readonly_fields = fields


# --- days -----------------------------------------------------------------------------------------------------------


class ReconExceptionInline(admin.TabularInline):
    model = ReconException
    fk_name = "day"
    fields = ["kind", "status", "receipt_no", "card_no", "member_no", "pos_amount", "ledger_amount", "reason",
              "resolved_by", "resolved_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = _("exceptions")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("resolved_by").order_by("pk")


@admin.register(ReconDay)
class ReconDayAdmin(ServiceCallsMixin, ReadOnlyAdminMixin, BaseAdmin):
    store_path = "store"
    list_display = ["business_date", "store", "status", "pos_lines", "ledger_rows", "matched", "exceptions",
                    "exceptions_open", "pos_total", "ledger_total", "matched_at"]
    list_filter = ["status", StoreFilter]
    list_select_related = ["store"]
    date_hierarchy = "business_date"
    actions = ["match_again"]
    fields = ["business_date", "store", "status", "pos_lines", "ledger_rows", "matched", "exceptions",
              "exceptions_open", "pos_total", "ledger_total", "difference", "matched_at", "report_link"]
    readonly_fields = fields
    inlines = [ReconExceptionInline]

    @admin.display(description=_("difference"))
    def difference(self, obj):
        return obj.pos_total - obj.ledger_total

    @admin.display(description=_("report"))
    def report_link(self, obj):
        return format_html('<a href="{}?business_date={}&store={}">{}</a>', reverse("admin:settlement_recon_report"),
                           obj.business_date.isoformat(), obj.store_id, gettext("the day's report"))

    def has_match_permission(self, request):
        return request.user.has_perm(PERMISSION_MATCH)

    @admin.action(description=_("Match the selected days again"), permissions=["match"])
    def match_again(self, request, queryset):
        self.service_each(
            request, queryset.select_related("store").order_by("business_date", "store__code"),
            lambda day: recon_day_match(store=day.store, business_date=day.business_date, user=request.user),
            label=str, done_message=lambda done: ngettext("%(count)d day matched again.",
                                                          "%(count)d days matched again.", done) % {"count": done})


# --- exceptions -------------------------------------------------------------------------------------------------------


class ExceptionStatusFilter(DefaultStatusFilter):
    """The list opens on the exceptions still to work off."""

    status_choices = ReconException.Status.choices
    default = ReconException.Status.OPEN


class ExceptionStoreFilter(StoreFilter):
    store_field = "day__store_id"


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=200, widget=forms.TextInput(attrs={"size": 60}))


@admin.register(ReconException)
class ReconExceptionAdmin(ServiceCallsMixin, ReadOnlyAdminMixin, BaseAdmin):
    store_path = "day__store"
    change_form_template = f"{TEMPLATES}/reconexception_change_form.html"
    list_display = ["business_date", "store", "kind", "status", "receipt_no", "card_no", "member_no", "pos_amount",
                    "ledger_amount", "difference_amount", "reason", "resolved_by"]
    list_filter = [ExceptionStatusFilter, "kind", ExceptionStoreFilter]
    list_select_related = ["day__store", "resolved_by"]
    search_fields = ["=receipt_no", "=card_no", "=member_no"]
    search_help_text = _("Exact receipt, card or member number.")
    actions = ["accept_selected", "correct_selected"]
    fields = ["day", "kind", "status", "receipt_no", "card_no", "member_no", "pos_amount", "ledger_amount",
              "difference_amount", "pos_line", "card_transaction", "purchase", "reason", "resolved_by", "resolved_at",
              "created_at"]
    readonly_fields = fields
    inlines = [ApprovalHistoryInline]

    @admin.display(description=_("business date"), ordering="day__business_date")
    def business_date(self, obj):
        return obj.day.business_date

    @admin.display(description=_("store"), ordering="day__store__code")
    def store(self, obj):
        return obj.day.store

    @admin.display(description=_("difference"))
    def difference_amount(self, obj):
        return obj.difference if obj.difference is not None else "-"

    def has_resolve_permission(self, request):
        return request.user.has_perm(PERMISSION_RESOLVE)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        exception = self.get_object(request, object_id)
        if exception is not None:
            may = self.has_resolve_permission(request) and exception.status == ReconException.Status.OPEN
            extra_context = {**(extra_context or {}), "may_resolve": may}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        name = "settlement_reconexception"
        return [
            path("<path:object_id>/accept/", wrap(self.accept_view), name=f"{name}_accept"),
            path("<path:object_id>/correct/", wrap(self.correct_view), name=f"{name}_correct"),
            *super().get_urls(),
        ]

    def _resolve_page(self, request, object_id, *, title, submit_label, call):
        if not (self.has_view_permission(request) and self.has_resolve_permission(request)):
            raise PermissionDenied
        exception = self.object_or_404(request, object_id)
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                call(exception, form.cleaned_data["reason"])
            except DomainError as error:
                add_service_error(form, error)
            else:
                return change_page(exception)
        return page_response(
            request, self, "form_page.html", title % {"exception": exception}, self.opts, form=form,
            original=exception, submit_label=submit_label,
            cancel_url=reverse("admin:settlement_reconexception_change", args=[exception.pk]))

    def _accept(self, request, exception, reason):
        recon_exception_accept(exception=exception, user=request.user, reason=reason)
        self.message_user(request, gettext("Exception %(exception)s accepted.") % {"exception": exception},
                          messages.SUCCESS)

    def _correct(self, request, exception, reason):
        approval = recon_exception_correct_request(exception=exception, user=request.user, reason=reason)
        approval_outcome_message(
            self, request, approval,
            pending=gettext("The correction of %(exception)s waits for another person's approval.")
            % {"exception": exception},
            done=gettext("%(exception)s is corrected in the ledger.") % {"exception": exception})

    def accept_view(self, request, object_id):
        return self._resolve_page(request, object_id, title=gettext("Accept %(exception)s"),
                                  submit_label=gettext("Accept with this reason"),
                                  call=lambda exception, reason: self._accept(request, exception, reason))

    def correct_view(self, request, object_id):
        return self._resolve_page(request, object_id, title=gettext("Ask to correct %(exception)s"),
                                  submit_label=gettext("Ask for approval"),
                                  call=lambda exception, reason: self._correct(request, exception, reason))

    def _action_with_reason(self, request, queryset, *, action: str, title, call):
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_bound or not form.is_valid():
            return TemplateResponse(request, f"{TEMPLATES}/action_form.html", {
                **self.admin_site.each_context(request),
                "title": title, "opts": self.opts, "form": form, "count": queryset.count(),
                "selected": queryset.values_list("pk", flat=True), "action": action,
                "select_across": request.POST.get("select_across", "0"), "index": request.POST.get("index", "0"),
            })
        reason = form.cleaned_data["reason"]
        self.service_each(request, queryset.select_related("day__store").order_by("pk"),
                          lambda exception: call(exception, reason), label=str,
                          done_message=lambda done: ngettext("%(count)d exception done.", "%(count)d exceptions done.",
                                                             done) % {"count": done})
        return None

    @admin.action(description=_("Accept the selected exceptions with a reason"), permissions=["resolve"])
    def accept_selected(self, request, queryset):
        return self._action_with_reason(
            request, queryset, action="accept_selected", title=gettext("Accept the selected exceptions"),
            call=lambda exception, reason: recon_exception_accept(exception=exception, user=request.user,
                                                                  reason=reason))

    @admin.action(description=_("Ask to correct the selected exceptions in the ledger (approval)"),
                  permissions=["resolve"])
    def correct_selected(self, request, queryset):
        return self._action_with_reason(
            request, queryset, action="correct_selected", title=gettext("Ask to correct the selected exceptions"),
            call=lambda exception, reason: recon_exception_correct_request(exception=exception, user=request.user,
                                                                           reason=reason))


# --- the day's report -------------------------------------------------------------------------------------------------


class ReportForm(forms.Form):
    business_date = forms.DateField(label=_("business date"), widget=IsoDateInput())
    store = forms.ModelChoiceField(label=_("store"), queryset=None, required=False,
                                   help_text=_("Leave empty for every store."))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["store"].queryset = stores_visible_to(user).order_by("code")


def may_view_report(user) -> bool:
    return user.has_perm("settlement.view_reconday")


REPORT_KINDS = ReconException.Kind.choices


def _report_rows(rows) -> list[dict]:
    """The report's rows with their exceptions per kind in the order of the columns."""
    return [{"row": row, "by_kind": [row.by_kind.get(kind, 0) for kind, _label in REPORT_KINDS],
             "url": reverse("admin:settlement_reconday_change", args=[row.day.pk])} for row in rows]


def recon_report_view(request, *, site: admin.AdminSite):
    """Per store of a day: POS lines, ledger rows, matched, exceptions by kind, open, totals, status; Excel."""
    if not may_view_report(request.user):
        raise PermissionDenied
    yesterday = timezone.localdate() - timedelta(days=1)
    form = ReportForm(request.GET or None, initial={"business_date": yesterday}, user=request.user)
    day, store = None, None
    if form.is_bound and form.is_valid():
        day, store = form.cleaned_data["business_date"], form.cleaned_data["store"]
    elif not form.is_bound:
        day = yesterday
    rows = []
    if day is not None:
        if store is not None:
            stores = [store]
        elif user_store_ids(request.user) is None:
            stores = None
        else:
            stores = list(stores_visible_to(request.user))
        rows = recon_report(business_date=day, stores=stores)
    title = gettext("Reconciliation report")
    headers = [gettext("store"), gettext("status"), gettext("POS lines"), gettext("rows recorded here"),
               gettext("matched"), *(label for _kind, label in REPORT_KINDS), gettext("exceptions open"),
               gettext("POS total"), gettext("total recorded here")]
    if request.GET.get("export") == "xlsx" and day is not None:
        body = [[f"{row.store.code} {row.store.name}", row.status_label, row.pos_lines, row.ledger_rows, row.matched,
                 *(row.by_kind.get(kind, 0) for kind, _label in REPORT_KINDS),
                 row.exceptions_open, xlsx_money(row.pos_total), xlsx_money(row.ledger_total)] for row in rows]
        return table_xlsx_response(filename=f"reconciliation-{day:%Y%m%d}.xlsx", title=title, header=headers,
                                   rows=body, preamble=[[title], [gettext("business date"), day.isoformat()],
                                                        [gettext("as of"), local_time(timezone.now())]])
    export_query = request.GET.copy()
    if day is not None:
        export_query["business_date"] = day.isoformat()
    export_query["export"] = "xlsx"
    return page_response(
        request, site, "recon_report.html", title, ReconDay._meta, form=form, day=day, headers=headers,
        rows=_report_rows(rows), export_url=f"?{export_query.urlencode()}" if day is not None else "")


admin_page_add(
    admin.site, app_label="settlement", route="settlement/recon-report/", url_name="settlement_recon_report",
    view=recon_report_view, title=_("Reconciliation report"), object_name="ReconReport", may_view=may_view_report,
)
