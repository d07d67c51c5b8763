"""Admin screens for clearing (结算): the rules per pair of companies, the daily runs, the clearing lines with their
adjustments, the clearing matrix and the card and points liability.

Thin: the run, the adjustment and the pages' figures come from settlement.services.clearing and
settlement.queries (clearing, liability); a refusal (a locked period) is shown as a message or on the form.

Who sees what: clearing is the companies' business, not a store's. Headquarters see every company; finance staff
of stores scope see the lines, statements and files of the companies of their stores' formats (`user_company_ids`).
Store managers hold no permission on these models. Running a day and adjusting a line move the group's figures:
headquarters only.
"""

import operator
from datetime import date, timedelta
from decimal import Decimal
from functools import reduce

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from openpyxl import Workbook

from core.admin import (
    CappedCountPaginator,
    ReadOnlyAdminMixin,
    ServiceCallsMixin,
    admin_page_add,
    change_page,
    period_choices,
)
from core.dates import month_last_full
from core.errors import DomainError
from core.files import xlsx_cells, xlsx_money, xlsx_response
from core.forms import IsoDateInput, add_service_error
from settlement.models import ClearingLine, ClearingRule, ClearingRun, SettlementPeriod
from settlement.queries.clearing import clearing_matrix
from settlement.queries.liability import AGEING_BUCKETS, card_ageing, points_liability
from settlement.services.clearing import clearing_adjustment_add, clearing_day_run
from stores.admin_base import BaseAdmin
from stores.models import LegalEntity, Store
from stores.queries import user_is_hq, user_store_ids

TEMPLATES = "admin/settlement"
PERMISSION_RUN = "settlement.add_clearingrun"
PERMISSION_ADJUST = "settlement.add_clearingline"
ZERO = Decimal("0.00")


# --- who sees which company -------------------------------------------------------------------------------------


def user_company_ids(user) -> frozenset[int] | None:
    """The companies whose settlement a user may read: None for every one (headquarters), else the legal entities
    of the formats of the user's stores."""
    store_ids = user_store_ids(user)
    if store_ids is None:
        return None
    cache_name = "_settlement_company_ids_cache"
    if not hasattr(user, cache_name):
        setattr(user, cache_name, frozenset(
            Store.objects.filter(pk__in=store_ids).values_list("format__legal_entity_id", flat=True)))
    return getattr(user, cache_name)


def companies_visible_to(user):
    ids = user_company_ids(user)
    companies = LegalEntity.objects.order_by("code")
    return companies if ids is None else companies.filter(pk__in=ids)


def scope_companies(queryset, user, fields: tuple[str, ...]):
    """The rows of `queryset` where any of `fields` (foreign keys to LegalEntity) is one of the user's companies."""
    ids = user_company_ids(user)
    if ids is None:
        return queryset
    return queryset.filter(reduce(operator.or_, (Q(**{f"{field}__in": ids}) for field in fields)))


class CompanyScopedMixin:
    """Rows that belong to companies, not stores (`company_fields`): staff of stores scope see those of their
    stores' companies; another company's row is not found, on its page, its history and its buttons alike."""

    company_fields: tuple[str, ...] = ()

    def get_queryset(self, request):
        return scope_companies(super().get_queryset(request), request.user, self.company_fields)

    def _ensure_visible(self, request, object_id):
        super()._ensure_visible(request, object_id)  # an id of the wrong shape: not found
        if not self.get_queryset(request).filter(pk=self.model._meta.pk.to_python(unquote(object_id))).exists():
            raise Http404


def may_run_clearing(user) -> bool:
    return user_is_hq(user) and user.has_perm(PERMISSION_RUN)


def may_adjust(user) -> bool:
    return user_is_hq(user) and user.has_perm(PERMISSION_ADJUST)


def company_label(company) -> str:
    return f"{company.code} {company.name}" if company is not None else gettext("no company")


def page_response(request, model_admin_or_site, template: str, title, opts, **context):
    site = getattr(model_admin_or_site, "admin_site", model_admin_or_site)
    return TemplateResponse(request, f"{TEMPLATES}/{template}", {
        **site.each_context(request), "title": title, "opts": opts, **context,
    })


# --- rules --------------------------------------------------------------------------------------------------------


@admin.register(ClearingRule)
class ClearingRuleAdmin(BaseAdmin):
    """The fee and points rate per pair of companies: every finance user reads them, headquarters edit them."""

    list_display = ["issuer", "honourer_label", "card_fee_rate", "points_yuan_per_point", "is_active", "note"]
    list_filter = ["is_active", "issuer"]
    list_select_related = ["issuer", "honourer"]
    fields = ["issuer", "honourer", "card_fee_rate", "points_yuan_per_point", "is_active", "note"]

    @admin.display(description=_("honouring company"), ordering="honourer__code")
    def honourer_label(self, obj):
        return obj.honourer or gettext("every other company")

    def has_add_permission(self, request):
        return user_is_hq(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        obj._history_user = request.user
        super().save_model(request, obj, form, change)


# --- runs ---------------------------------------------------------------------------------------------------------


class RunDayForm(forms.Form):
    business_date = forms.DateField(
        label=_("business date"), widget=IsoDateInput(),
        help_text=_("The day's clearing lines are built again from the ledgers; its period must be open."),
    )

    def clean_business_date(self):
        day = self.cleaned_data["business_date"]
        if day >= timezone.localdate():
            raise forms.ValidationError(gettext("Only a day that is over can be cleared."))
        return day


@admin.register(ClearingRun)
class ClearingRunAdmin(ServiceCallsMixin, ReadOnlyAdminMixin, BaseAdmin):
    change_list_template = f"{TEMPLATES}/clearingrun_change_list.html"
    list_display = ["business_date", "period", "status", "rows_read", "lines", "started_at", "finished_at",
                    "duration_text", "run_by"]
    list_filter = ["status", "period"]
    list_select_related = ["period", "run_by"]
    date_hierarchy = "business_date"
    fields = ["business_date", "period", "status", "rows_read", "lines", "started_at", "finished_at",
              "duration_text", "run_by", "error"]
    readonly_fields = fields

    @admin.display(description=_("duration"))
    def duration_text(self, obj):
        duration = obj.duration
        return "-" if duration is None else gettext("%(seconds).1f s") % {"seconds": duration.total_seconds()}

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "may_run": may_run_clearing(request.user)}
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [path("run/", wrap(self.run_view), name="settlement_clearingrun_run"), *super().get_urls()]

    def run_view(self, request):
        if not may_run_clearing(request.user):
            raise PermissionDenied
        form = RunDayForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            day = form.cleaned_data["business_date"]
            try:
                run = clearing_day_run(day=day, user=request.user)
            except DomainError as error:
                add_service_error(form, error)
            else:
                self.message_user(request, gettext("%(day)s cleared: %(lines)s clearing lines from %(rows)s ledger "
                                                   "rows.") % {"day": day, "lines": run.lines, "rows": run.rows_read})
                return change_page(run)
        return page_response(
            request, self, "form_page.html", gettext("Run the clearing of a day"), self.opts, form=form,
            submit_label=gettext("Run the clearing"),
            cancel_url=reverse("admin:settlement_clearingrun_changelist"))


# --- lines --------------------------------------------------------------------------------------------------------


class AdjustForm(forms.Form):
    net = forms.DecimalField(
        label=_("amount owed by the issuer"), max_digits=14, decimal_places=2,
        help_text=_("What the issuing company owes the honouring company on top of the line (negative: less)."),
    )
    reason = forms.CharField(label=_("reason"), max_length=200, widget=forms.TextInput(attrs={"size": 60}))
    period = forms.ModelChoiceField(
        label=_("settlement period"), queryset=SettlementPeriod.objects.none(), required=False,
        help_text=_("Leave empty for the first open period from today."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["period"].queryset = SettlementPeriod.objects.filter(
            status=SettlementPeriod.Status.OPEN).order_by("starts_on")

    def clean_net(self):
        net = self.cleaned_data["net"]
        if not net:
            raise forms.ValidationError(gettext("An adjustment of 0.00 changes nothing."))
        return net


@admin.register(ClearingLine)
class ClearingLineAdmin(CompanyScopedMixin, ServiceCallsMixin, ReadOnlyAdminMixin, BaseAdmin):
    """What each company owes another per day and kind; an adjusting line corrects one of them."""

    company_fields = ("issuer", "honourer")
    change_form_template = f"{TEMPLATES}/clearingline_change_form.html"
    list_display = ["business_date", "kind", "issuer", "honourer", "count", "points", "gross", "fee", "net",
                    "period", "corrects_text"]
    list_filter = ["kind", "period", "issuer", "honourer"]
    list_select_related = ["issuer", "honourer", "period"]
    date_hierarchy = "business_date"
    search_fields = ["corrects_text", "reason"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = ["business_date", "period", "run", "kind", "issuer", "honourer", "count", "points", "gross", "fee",
              "net", "corrects_link", "corrects_text", "reason", "corrections_list", "created_by", "created_at"]
    readonly_fields = fields

    @admin.display(description=_("corrects"))
    def corrects_link(self, obj):
        if not obj.corrects_id:
            return "-"
        return format_html('<a href="{}">#{}</a>', reverse("admin:settlement_clearingline_change",
                                                           args=[obj.corrects_id]), obj.corrects_id)

    @admin.display(description=_("adjusted by"))
    def corrections_list(self, obj):
        corrections = list(obj.corrections.select_related("period").order_by("pk"))
        if not corrections:
            return "-"
        return format_html(", ".join(["{}"] * len(corrections)), *(
            format_html('<a href="{}">#{} {} ({})</a>', reverse("admin:settlement_clearingline_change",
                                                                args=[line.pk]), line.pk, line.net, line.period)
            for line in corrections))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "may_adjust": may_adjust(request.user)}
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [path("<path:object_id>/adjust/", wrap(self.adjust_view), name="settlement_clearingline_adjust"),
                *super().get_urls()]

    def adjust_view(self, request, object_id):
        if not may_adjust(request.user):
            raise PermissionDenied
        line = self.object_or_404(request, object_id)
        form = AdjustForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                adjustment = clearing_adjustment_add(corrects=line, net=form.cleaned_data["net"],
                                                     reason=form.cleaned_data["reason"], user=request.user,
                                                     period=form.cleaned_data["period"])
            except DomainError as error:
                add_service_error(form, error)
            else:
                self.message_user(request, gettext("Adjusting line #%(id)s added to period %(period)s.")
                                  % {"id": adjustment.pk, "period": adjustment.period})
                return change_page(adjustment)
        return page_response(
            request, self, "form_page.html", gettext("Adjust clearing line #%(id)s") % {"id": line.pk},
            self.opts, form=form, original=line, submit_label=gettext("Add the adjusting line"),
            cancel_url=reverse("admin:settlement_clearingline_change", args=[line.pk]))


# --- the clearing matrix --------------------------------------------------------------------------------------------


class MatrixForm(forms.Form):
    period = forms.ModelChoiceField(label=_("settlement period"), queryset=SettlementPeriod.objects.all(),
                                    required=False, help_text=_("Or choose the days below."))
    date_from = forms.DateField(label=_("period starts on"), widget=IsoDateInput(), required=False)
    date_to = forms.DateField(label=_("period ends on"), widget=IsoDateInput(), required=False,
                              help_text=_("Inclusive; days in China time."))

    def clean(self):
        cleaned = super().clean()
        period = cleaned.get("period")
        if period is not None:
            cleaned["date_from"], cleaned["date_to"] = period.starts_on, period.ends_on
            return cleaned
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if not start or not end:
            raise forms.ValidationError(gettext("Choose a settlement period or the first and last day."))
        if start > end:
            self.add_error("date_to", gettext("The period ends before it starts."))
        elif (end - start).days > 366:
            self.add_error("date_to", gettext("A settlement period is at most a year."))
        return cleaned


def may_view_matrix(user) -> bool:
    return user.has_perm("settlement.view_clearingline")


def matrix_tables(matrix) -> dict:
    """The matrix as rows for the page and the Excel: gross and owed per (issuer, honourer), the net per pair,
    the position of each company."""
    entities = list(matrix.entities)
    zero = ZERO

    def cell(table, issuer, honourer):
        return table.get((issuer.pk, honourer.pk), zero)

    gross = [[company_label(issuer), *(cell(matrix.gross, issuer, honourer) for honourer in entities)]
             for issuer in entities]
    owed = [[company_label(issuer), *(cell(matrix.owed, issuer, honourer) if issuer.pk != honourer.pk else ""
                                      for honourer in entities)] for issuer in entities]
    pairs = []
    for index, company_a in enumerate(entities):
        for company_b in entities[index + 1:]:
            a_owes_b, b_owes_a = cell(matrix.owed, company_a, company_b), cell(matrix.owed, company_b, company_a)
            if a_owes_b or b_owes_a:
                pairs.append([company_label(company_a), company_label(company_b), a_owes_b, b_owes_a,
                              a_owes_b - b_owes_a])
    positions = [[company_label(company), matrix.position.get(company.pk, zero)] for company in entities]
    return {"headers": [company_label(company) for company in entities], "gross": gross, "owed": owed,
            "pairs": pairs, "positions": positions,
            "positions_total": sum((row[1] for row in positions), zero)}


def matrix_view(request, *, site: admin.AdminSite):
    """Gross and net of what each company owes each other over a period or a range of days; Excel download."""
    if not may_view_matrix(request.user):
        raise PermissionDenied
    starts_on, ends_on = month_last_full(timezone.localdate())
    form = MatrixForm(request.GET or None, initial={"date_from": starts_on, "date_to": ends_on})
    period = None
    if form.is_bound and form.is_valid():
        period = (form.cleaned_data["date_from"], form.cleaned_data["date_to"])
    elif not form.is_bound:
        period = (starts_on, ends_on)
    tables = None
    title = gettext("Clearing matrix")
    if period is not None:
        ids = user_company_ids(request.user)
        matrix = clearing_matrix(start=period[0], end=period[1], entity_ids=None if ids is None else list(ids))
        tables = matrix_tables(matrix)
        if request.GET.get("export") == "xlsx":
            return _matrix_workbook(title, period, tables, matrix.nets_to_zero or ids is not None)
        # A company's own view leaves out what the others owe each other: only the whole group must net to zero.
        tables["whole_group"] = ids is None
        tables["nets_to_zero"] = matrix.nets_to_zero
    export_query = request.GET.copy()
    if period is not None:
        export_query.update({"date_from": period[0].isoformat(), "date_to": period[1].isoformat()})
    export_query["export"] = "xlsx"
    return page_response(
        request, site, "clearing_matrix.html", title, ClearingLine._meta, form=form, period=period,
        tables=tables, export_url=f"?{export_query.urlencode()}" if period is not None else "",
        period_choices=period_choices(request, start_name="date_from", end_name="date_to"))


def _period_text(period: tuple[date, date]) -> str:
    return f"{period[0].isoformat()} – {period[1].isoformat()}"


def _matrix_workbook(title, period, tables, nets_to_zero: bool):
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title[:31])

    def money_row(row):
        return xlsx_cells(sheet, [row[0], *(xlsx_money(value) if value != "" else "" for value in row[1:])])

    sheet.append(xlsx_cells(sheet, [title, _period_text(period)]))
    sheet.append([])
    sheet.append(xlsx_cells(sheet, [gettext("Gross per issuing company (rows) and honouring company (columns)")]))
    sheet.append(xlsx_cells(sheet, [gettext("issuing company"), *tables["headers"]]))
    for row in tables["gross"]:
        sheet.append(money_row(row))
    sheet.append([])
    sheet.append(xlsx_cells(sheet, [gettext("Owed by the issuing company (rows) to the honouring company (columns)")]))
    sheet.append(xlsx_cells(sheet, [gettext("issuing company"), *tables["headers"]]))
    for row in tables["owed"]:
        sheet.append(money_row(row))
    sheet.append([])
    sheet.append(xlsx_cells(sheet, [gettext("company A"), gettext("company B"), gettext("A owes B"),
                                    gettext("B owes A"), gettext("net, A pays B")]))
    for row in tables["pairs"]:
        sheet.append(xlsx_cells(sheet, [row[0], row[1], *(xlsx_money(value) for value in row[2:])]))
    sheet.append([])
    sheet.append(xlsx_cells(sheet, [gettext("company"), gettext("position (receivable less payable)")]))
    for row in tables["positions"]:
        sheet.append(money_row(row))
    sheet.append(money_row([gettext("Total"), tables["positions_total"]]))
    if not nets_to_zero:
        sheet.append(xlsx_cells(sheet, [gettext("The positions do not add up to zero.")]))
    return xlsx_response(workbook, f"clearing-matrix-{period[0]:%Y%m%d}-{period[1]:%Y%m%d}.xlsx")


# --- card and points liability ----------------------------------------------------------------------------------------


class LiabilityForm(forms.Form):
    at = forms.DateField(label=_("at the end of"), widget=IsoDateInput())


def may_view_liability(user) -> bool:
    return user_is_hq(user) and user.has_perm("settlement.view_settlementperiod")


def liability_view(request, *, site: admin.AdminSite):
    """Outstanding card balances per issuing company by age, and outstanding points valued at the cash rate."""
    if not may_view_liability(request.user):
        raise PermissionDenied
    yesterday = timezone.localdate() - timedelta(days=1)
    form = LiabilityForm(request.GET or None, initial={"at": yesterday})
    at = None
    if form.is_bound and form.is_valid():
        at = form.cleaned_data["at"]
    elif not form.is_bound:
        at = yesterday
    ageing = card_ageing(at=at) if at is not None else None
    points = points_liability(at=at) if at is not None else None
    return page_response(
        request, site, "liability.html", gettext("Card and points liability"), SettlementPeriod._meta,
        form=form, at=at, ageing=ageing, points=points,
        bucket_labels=[str(label) for label in AGEING_BUCKETS.values()])


admin_page_add(
    admin.site, app_label="settlement", route="settlement/clearing-matrix/", url_name="settlement_clearing_matrix",
    view=matrix_view, title=_("Clearing matrix"), object_name="ClearingMatrix", may_view=may_view_matrix,
)
admin_page_add(
    admin.site, app_label="settlement", route="settlement/liability/", url_name="settlement_liability",
    view=liability_view, title=_("Card and points liability"), object_name="SettlementLiability",
    may_view=may_view_liability,
)
