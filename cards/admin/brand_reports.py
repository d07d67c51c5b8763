"""Brand billing in the admin: the statement of a brand partner for a period, programme results, and the list of
brand-card discount rows they are made of.

The billing page belongs to no model, so it is added to the admin site itself (as the liability page is): one
URL in front of the site's own, and one entry in the cards section, both only for headquarters staff who may view
brand discounts. What a brand is billed is the group's business with the brand, not a store's: store staff see
neither the page nor the discount rows.
"""

import re
from datetime import date

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from openpyxl import Workbook

from cards.admin.cards import ExportMixin, ReadOnlyRecordAdmin
from cards.models import Brand, BrandDiscount, Card
from cards.queries.brand_reports import (
    ProgrammeResult,
    ProgrammeResults,
    StatementTotals,
    previous_month,
    programme_results,
    statement_line_items,
    statement_query,
    statement_rows,
    statement_totals,
    user_may_view_brand_billing,
)
from core.admin import admin_page_add, local_time, period_choices
from core.files import escape_cell, xlsx_file_response, xlsx_money, xlsx_money_cell
from core.forms import IsoDateInput
from stores.admin_base import StoreFilter

TITLE = _("Brand card billing")
URL_NAME = "cards_brand_billing"
STATEMENT = "statement"
RESULTS = "results"
PAGE_ROWS = 100


# --- the forms ---------------------------------------------------------------------------------------------------


class PeriodForm(forms.Form):
    # Labels of their own: the bare "from" and "to" are the card transfer's (调出方, 调入门店) in Chinese.
    starts_on = forms.DateField(label=_("period starts on"), widget=IsoDateInput(),
                                help_text=_("Business date, inclusive."))
    ends_on = forms.DateField(label=_("period ends on"), widget=IsoDateInput(),
                              help_text=_("Business date, inclusive."))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        starts_on, ends_on = previous_month()
        self.fields["starts_on"].initial = starts_on
        self.fields["ends_on"].initial = ends_on

    def clean(self):
        cleaned = super().clean()
        starts_on, ends_on = cleaned.get("starts_on"), cleaned.get("ends_on")
        if starts_on and ends_on and ends_on < starts_on:
            self.add_error("ends_on", _("The period cannot end before it starts."))
        return cleaned


class StatementForm(PeriodForm):
    brand = forms.ModelChoiceField(queryset=Brand.objects.order_by("code"), label=_("brand partner"))
    field_order = ["brand", "starts_on", "ends_on"]


class ResultsForm(PeriodForm):
    brand = forms.ModelChoiceField(queryset=Brand.objects.order_by("code"), label=_("brand partner"),
                                   required=False, empty_label=_("every brand"))
    field_order = ["brand", "starts_on", "ends_on"]


def _bound(form_class, request):
    """The form bound to the query string once it holds any of its fields, else unbound with the defaults."""
    if any(name in request.GET for name in form_class.base_fields):
        return form_class(request.GET)
    return form_class()


# --- the page ----------------------------------------------------------------------------------------------------


def brand_billing_view(request, *, site: admin.AdminSite):
    """The statement of one brand for a period, or every programme's results for a period; both as Excel."""
    if not user_may_view_brand_billing(request.user):
        raise PermissionDenied
    report = RESULTS if request.GET.get("report") == RESULTS else STATEMENT
    context = {
        **site.each_context(request),
        "title": TITLE,
        "opts": BrandDiscount._meta,
        "report": report,
        "statement_url": f"?report={STATEMENT}",
        "results_url": f"?report={RESULTS}",
        "discounts_url": reverse(f"{site.name}:cards_branddiscount_changelist"),
    }
    if report == RESULTS:
        return _results_page(request, context)
    return _statement_page(request, context)


def _query(request, **changes) -> str:
    query = request.GET.copy() if request.GET else QueryDict(mutable=True)
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return "?" + query.urlencode()


def _period_choices(request) -> list[dict]:
    return period_choices(request, start_name="starts_on", end_name="ends_on")


def _statement_page(request, context: dict):
    form = _bound(StatementForm, request)
    context["form"] = form
    context["period_choices"] = _period_choices(request)
    if not form.is_bound or not form.is_valid():
        return TemplateResponse(request, "admin/cards/brand_reports/statement.html", context)
    brand, starts_on, ends_on = (form.cleaned_data[name] for name in ("brand", "starts_on", "ends_on"))
    if request.GET.get("export") == "xlsx":
        return _statement_workbook(brand=brand, starts_on=starts_on, ends_on=ends_on)
    query = statement_query(brand=brand, starts_on=starts_on, ends_on=ends_on)
    page = Paginator(query, PAGE_ROWS).get_page(request.GET.get("page"))
    context.update({
        "brand": brand,
        "starts_on": starts_on,
        "ends_on": ends_on,
        "totals": statement_totals(brand=brand, starts_on=starts_on, ends_on=ends_on),
        "page": page,
        "rows": list(statement_rows(page.object_list, chunk_size=None)),
        "previous_url": _query(request, page=page.previous_page_number()) if page.has_previous() else "",
        "next_url": _query(request, page=page.next_page_number()) if page.has_next() else "",
        "export_url": _query(request, export="xlsx", page=None),
    })
    return TemplateResponse(request, "admin/cards/brand_reports/statement.html", context)


def _results_page(request, context: dict):
    form = _bound(ResultsForm, request)
    context["form"] = form
    context["period_choices"] = _period_choices(request)
    if form.is_bound and not form.is_valid():
        return TemplateResponse(request, "admin/cards/brand_reports/results.html", context)
    if form.is_bound:
        brand, starts_on, ends_on = (form.cleaned_data[name] for name in ("brand", "starts_on", "ends_on"))
    else:
        brand, (starts_on, ends_on) = None, previous_month()
    results = programme_results(starts_on=starts_on, ends_on=ends_on, brand=brand)
    if request.GET.get("export") == "xlsx":
        return _results_workbook(results, brand=brand)
    context.update({
        "brand": brand,
        "results": results,
        "results_empty": not any(row.cards_sold or row.payments or row.eligible_amount or row.discount
                                 for row in results.rows),
        "export_url": _query(request, export="xlsx", starts_on=starts_on.isoformat(), ends_on=ends_on.isoformat()),
    })
    return TemplateResponse(request, "admin/cards/brand_reports/results.html", context)


# --- Excel ---------------------------------------------------------------------------------------------------------


def _money(sheet, value):
    """A money cell shown with two decimals (the value stays a number the brand's finance can add up)."""
    if value is None or isinstance(value, str):
        return escape_cell(value or "")
    return xlsx_money_cell(sheet, value)


def _text(value) -> str:
    return escape_cell("" if value is None else str(value))


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "brand"


def _period(starts_on: date, ends_on: date) -> str:
    return f"{starts_on:%Y-%m-%d} – {ends_on:%Y-%m-%d}"


def _generated_at() -> str:
    return timezone.localtime().strftime("%Y-%m-%d %H:%M")


def _brand_block(brand: Brand, starts_on: date, ends_on: date) -> list[list]:
    contract = ""
    if brand.contract_starts_on or brand.contract_ends_on:
        contract = (f"{brand.contract_starts_on:%Y-%m-%d}" if brand.contract_starts_on else "") + " – " + (
            f"{brand.contract_ends_on:%Y-%m-%d}" if brand.contract_ends_on else "")
    return [
        [gettext("Brand card discount statement")],
        [gettext("brand partner"), brand.code, brand.name],
        [gettext("billed company"), brand.billing_name],
        [gettext("taxpayer number"), brand.billing_tax_no],
        [gettext("billing address"), brand.billing_address],
        [gettext("bank"), brand.billing_bank],
        [gettext("bank account number"), brand.billing_account_no],
        [gettext("contact person"), " ".join(part for part in (brand.contact_name, brand.contact_phone,
                                                               brand.contact_email) if part)],
        [gettext("contract period"), contract],
        [gettext("period (business dates)"), _period(starts_on, ends_on)],
        [gettext("generated at"), _generated_at()],
    ]


def _statement_workbook(*, brand: Brand, starts_on: date, ends_on: date) -> FileResponse:
    """The statement as Excel: header block, one row per discount row, totals; the SKU lines on a second sheet.

    Rows stream from the database into write-only sheets; the totals are added up from the very rows written,
    so the file always agrees with itself.
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(gettext("Statement"))
    lines_sheet = workbook.create_sheet(gettext("SKU lines"))
    for block_row in _brand_block(brand, starts_on, ends_on):
        sheet.append([_text(cell) for cell in block_row])
    sheet.append([])
    sheet.append([_text(header) for header in (
        gettext("business date"), gettext("time"), gettext("store"), gettext("card number"),
        gettext("receipt number"), gettext("transaction id"), gettext("kind"), gettext("programme"),
        gettext("eligible sales"), gettext("discount"), gettext("funded by the brand"),
    )])
    lines_sheet.append([_text(header) for header in (
        gettext("business date"), gettext("transaction id"), gettext("receipt number"), gettext("store"),
        gettext("programme"), gettext("SKU"), gettext("quantity"), gettext("amount"), gettext("discount"),
        gettext("funded by the brand"),
    )])
    totals = StatementTotals()
    query = statement_query(brand=brand, starts_on=starts_on, ends_on=ends_on)
    for row, lines in statement_line_items(query):
        totals.add(row)
        sheet.append([
            row.business_date, _text(row.time), _text(row.store), _text(row.card_no_masked), _text(row.receipt_no),
            _text(row.transaction_id), _text(row.kind_label), _text(row.programme_code),
            _money(sheet, row.eligible_amount), _money(sheet, row.discount), _money(sheet, row.brand_amount),
        ])
        for line in lines:
            lines_sheet.append([
                row.business_date, _text(row.transaction_id), _text(row.receipt_no), _text(row.store_code),
                _text(row.programme_code), _text(line.sku),
                line.quantity if not isinstance(line.quantity, str) else _text(line.quantity),
                _money(lines_sheet, line.amount), _money(lines_sheet, line.discount),
                _money(lines_sheet, line.brand_amount),
            ])
    count = ngettext("%(count)s row", "%(count)s rows", totals.count) % {"count": totals.count}
    sheet.append([
        _text(gettext("Total")), _text(count), "", "", "", "", "", "",
        _money(sheet, totals.eligible_amount), _money(sheet, totals.discount), _money(sheet, totals.brand_amount),
    ])
    sheet.append([])
    sheet.append([_text(header) for header in (
        gettext("programme"), gettext("rows"), gettext("eligible sales"), gettext("discount"),
        gettext("funded by the brand"), gettext("cost to the group"),
    )])
    for code, part in sorted(totals.by_programme.items()):
        sheet.append([_text(code), part.count, _money(sheet, part.eligible_amount), _money(sheet, part.discount),
                      _money(sheet, part.brand_amount), _money(sheet, part.group_cost)])
    filename = f"brand-statement-{_file_part(brand.code)}-{starts_on:%Y%m%d}-{ends_on:%Y%m%d}.xlsx"
    return xlsx_file_response(workbook, filename)


def _result_cells(sheet, label: str, row: ProgrammeResult, extra: list) -> list:
    return [
        _text(label), *extra, row.cards_sold, row.paying_cards, row.payments, _money(sheet, row.eligible_amount),
        _money(sheet, row.discount), _money(sheet, row.brand_amount), _money(sheet, row.group_cost),
        _money(sheet, row.sales_per_yuan) if row.sales_per_yuan is not None else "",
    ]


def _results_workbook(results: ProgrammeResults, *, brand: Brand | None) -> FileResponse:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(gettext("Programme results"))
    sheet.append([_text(gettext("Brand card programme results"))])
    sheet.append([_text(gettext("period (business dates)")), _text(_period(results.starts_on, results.ends_on))])
    sheet.append([_text(gettext("brand partner")), *([_text(brand.code), _text(brand.name)] if brand
                                                     else [_text(gettext("every brand"))])])
    sheet.append([_text(gettext("generated at")), _text(_generated_at())])
    sheet.append([])
    sheet.append([_text(header) for header in (
        gettext("programme"), gettext("name"), gettext("brand partner"), gettext("card product"),
        gettext("discount rate"), gettext("share funded by the brand"), gettext("starts on"), gettext("ends on"),
        gettext("status"), gettext("cards sold"), gettext("paying cards"), gettext("payments"),
        gettext("eligible sales"), gettext("discount"), gettext("funded by the brand"), gettext("cost to the group"),
        gettext("sales per yuan of discount"),
    )])
    for row in results.rows:
        programme = row.programme
        sheet.append(_result_cells(sheet, programme.code, row, [
            _text(programme.name), _text(programme.brand.name), _text(programme.product.code),
            programme.discount_rate, programme.brand_share, programme.starts_on, programme.ends_on or "",
            _text(programme.get_status_display()),
        ]))
    sheet.append(_result_cells(sheet, gettext("Total"), results.total, [""] * 8))
    stamp = f"{results.starts_on:%Y%m%d}-{results.ends_on:%Y%m%d}"
    brand_part = f"-{_file_part(brand.code)}" if brand else ""
    return xlsx_file_response(workbook, f"brand-programme-results{brand_part}-{stamp}.xlsx")


admin_page_add(
    admin.site, app_label="cards", route="cards/brand-billing/", url_name=URL_NAME, view=brand_billing_view,
    title=TITLE, object_name="BrandBilling", may_view=user_may_view_brand_billing,
)


# --- the discount rows ---------------------------------------------------------------------------------------


@admin.register(BrandDiscount)
class BrandDiscountAdmin(ExportMixin, ReadOnlyRecordAdmin):
    """Every brand-card discount and give-back, written only by the payment services; headquarters only."""

    export_name = "brand-discounts"
    change_list_template = "admin/cards/card/change_list.html"
    list_display = ["created_at", "business_date", "brand", "programme", "kind", "card_link", "store",
                    "transaction_link", "eligible_amount", "discount", "brand_amount"]
    list_filter = ["brand", "programme", "kind", ("business_date", admin.DateFieldListFilter), StoreFilter]
    list_select_related = ["brand", "programme", "card", "store", "transaction"]
    export_select_related = ["brand", "programme", "card", "store", "transaction"]
    search_help_text = _("Exact card number or transaction id.")
    fields = ["transaction_link", "kind", "brand", "programme", "card_link", "store", "business_date",
              "created_at", "eligible_amount", "discount", "brand_amount", "lines_table"]
    readonly_fields = fields

    def has_module_permission(self, request):
        return user_may_view_brand_billing(request.user)

    def has_view_permission(self, request, obj=None):
        return user_may_view_brand_billing(request.user)

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        card_id = Card.objects.filter(card_no=term).values_list("pk", flat=True).first()
        return queryset.filter(Q(transaction__transaction_id=term) | Q(card_id=card_id)), False

    @admin.display(description=_("transaction id"), ordering="transaction__transaction_id")
    def transaction_link(self, obj):
        url = reverse("admin:cards_cardtransaction_change", args=[obj.transaction_id])
        return format_html('<a href="{}">{}</a>', url, obj.transaction.transaction_id)

    def export_header(self):
        return [gettext("time"), gettext("business date"), gettext("brand partner"), gettext("programme"),
                gettext("kind"), gettext("card number"), gettext("store"), gettext("transaction id"),
                gettext("receipt number"), gettext("eligible sales"), gettext("discount"),
                gettext("funded by the brand")]

    def export_row(self, obj):
        return [local_time(obj.created_at, seconds=True), obj.business_date,
                obj.brand.code, obj.programme.code, obj.get_kind_display(), obj.card.card_no, obj.store.code,
                obj.transaction.transaction_id, obj.transaction.receipt_no, xlsx_money(obj.eligible_amount),
                xlsx_money(obj.discount), xlsx_money(obj.brand_amount)]
