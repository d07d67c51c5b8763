"""Admin screens for pickup vouchers: suppliers, products, batches, vouchers with their ledger, reports.

Thin: batches are created, submitted, cancelled and their code files handed out by cards.services.vouchers;
vouchers and their ledger are only read here. A voucher's code is its value (whoever holds it can collect the
goods), so lists show it masked, and only headquarters sees it in full (the code file is for those who may
change batches, and every download is kept in the batch's history). Vouchers and the ledger are store-scoped:
store staff see the vouchers sold or redeemed at their own stores, and only their own stores' ledger rows. The
two reports (outstanding vouchers, supplier settlement) are headquarters' figures.
"""

from datetime import date

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from approvals.admin import ApprovalHistoryInline
from cards.admin.cards import ExportMixin, _local, _table
from cards.models import Supplier, Voucher, VoucherBatch, VoucherLedgerEntry, VoucherProduct
from cards.services import vouchers
from core.admin import (
    CappedCountPaginator,
    ReadOnlyAdminMixin,
    ServiceCallsMixin,
    ServiceRefusalMixin,
    change_page,
    copy_saved,
    period_choices,
)
from core.dates import month_last_full
from core.errors import DomainError
from core.files import table_xlsx_response, xlsx_money
from core.forms import IsoDateInput, add_service_error
from stores.admin_base import BaseAdmin, ScopedAdminMixin, StoreFilter
from stores.queries import user_is_hq, user_store_ids

TEMPLATES = "admin/cards/vouchers"
PERMISSION_LIABILITY = "cards.view_voucher"
PERMISSION_SETTLEMENT = "cards.view_voucherledgerentry"
RECENT_LEDGER_ROWS = 100


class HqWritesMixin:
    """Master data headquarters keeps: store staff may read it, never add or change it."""

    def has_add_permission(self, request):
        return user_is_hq(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Supplier)
class SupplierAdmin(HqWritesMixin, BaseAdmin):
    list_display = ["code", "name", "contact_name", "contact_phone", "tax_no", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["code", "name", "tax_no"]
    fieldsets = [
        (None, {"fields": ["code", "name", "is_active"]}),
        (_("contact"), {"fields": ["contact_name", "contact_phone"]}),
        (_("settlement"), {"fields": ["tax_no", "bank", "bank_account_no"]}),
    ]


@admin.register(VoucherProduct)
class VoucherProductAdmin(HqWritesMixin, BaseAdmin):
    list_display = ["code", "name", "sku", "unit", "supplier", "settlement_price", "is_active"]
    list_filter = ["is_active", "supplier"]
    list_select_related = ["supplier"]
    search_fields = ["code", "name", "sku"]
    autocomplete_fields = ["supplier"]


# --- batches ------------------------------------------------------------------------------------------------


class VoucherBatchForm(forms.ModelForm):
    class Meta:
        model = VoucherBatch
        fields = ["product", "quantity", "units", "price", "expires_on", "note"]
        help_texts = {"price": _("What the buyer pays for one voucher."),
                      "units": _("How many units of the product one voucher is good for.")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "product" in self.fields:
            self.fields["product"].queryset = VoucherProduct.objects.filter(is_active=True).select_related("supplier")

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            cleaned.update(vouchers.voucher_batch_values_clean(
                product=cleaned.get("product"), quantity=cleaned.get("quantity"), units=cleaned.get("units"),
                price=cleaned.get("price"), expires_on=cleaned.get("expires_on"), note=cleaned.get("note", ""),
            ))
        except DomainError as error:
            add_service_error(self, error)
        return cleaned


@admin.register(VoucherBatch)
class VoucherBatchAdmin(ServiceCallsMixin, ServiceRefusalMixin, BaseAdmin):
    form = VoucherBatchForm
    change_form_template = f"{TEMPLATES}/batch_change_form.html"
    change_list_template = f"{TEMPLATES}/change_list.html"
    list_display = ["batch_no", "product", "quantity", "units", "price", "expires_on", "status", "requested_by",
                    "created_at", "issued_at"]
    list_filter = ["status", "product__supplier", "product", "created_at"]
    list_select_related = ["product", "requested_by"]
    search_fields = ["batch_no", "note"]
    date_hierarchy = "created_at"
    actions = ["submit_selected", "cancel_selected"]
    readonly_fields = ["batch_no", "product", "quantity", "units", "price", "expires_on", "note", "status",
                       "requested_by", "created_at", "issued_at", "sales_summary"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else VoucherBatchForm.Meta.fields

    def get_inlines(self, request, obj):
        return [ApprovalHistoryInline] if obj is not None else []

    @admin.display(description=_("vouchers by status"))
    def sales_summary(self, obj):
        counts = dict(obj.vouchers.order_by().values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
        if not counts:
            return "-"
        return ", ".join(f"{Voucher.Status(status).label}: {count}" for status, count in sorted(counts.items()))

    def has_add_permission(self, request):
        # Vouchers are sold by headquarters to companies: batches are headquarters' business.
        return user_is_hq(request.user) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        # A batch changes only through its buttons (services); its page is read-only.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        batch = vouchers.voucher_batch_create(
            product=form.cleaned_data["product"], quantity=form.cleaned_data["quantity"],
            units=form.cleaned_data["units"], price=form.cleaned_data["price"],
            expires_on=form.cleaned_data["expires_on"], note=form.cleaned_data.get("note", ""),
            requested_by=request.user,
        )
        copy_saved(obj, batch)

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, gettext("Voucher batch %(batch_no)s is a draft: submit it for approval to have "
                                           "its codes generated.") % {"batch_no": obj.batch_no}, messages.SUCCESS)
        return change_page(obj)

    def _may_request(self, request) -> bool:
        return self.has_add_permission(request)

    def _may_cancel(self, request, batch) -> bool:
        if batch.status == VoucherBatch.Status.PENDING:
            return batch.requested_by_id == request.user.pk
        return batch.status == VoucherBatch.Status.DRAFT and self._may_request(request)

    def _may_download(self, request, batch) -> bool:
        return (batch.status == VoucherBatch.Status.ISSUED and user_is_hq(request.user)
                and request.user.has_perm(vouchers.PERMISSION_CODE_FILE))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = self.get_object(request, unquote(object_id))
        if batch is None:
            raise Http404
        extra_context = {
            **(extra_context or {}),
            "can_submit": batch.status == VoucherBatch.Status.DRAFT and self._may_request(request),
            "can_cancel": self._may_cancel(request, batch),
            "can_download": self._may_download(request, batch),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), **report_links(request)})

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/submit/", wrap(require_POST(self.submit_view)), name="cards_voucherbatch_submit"),
            path("<path:object_id>/cancel/", wrap(require_POST(self.cancel_view)), name="cards_voucherbatch_cancel"),
            path("<path:object_id>/codes/", wrap(require_POST(self.codes_view)), name="cards_voucherbatch_codes"),
            *super().get_urls(),
        ]

    def _batch(self, request, object_id) -> VoucherBatch:
        return self.object_or_404(request, object_id)

    def _run(self, request, batch, call, success: str):
        return self.service_call(request, call, success, change_page(batch))

    def submit_view(self, request, object_id):
        if not self._may_request(request):
            raise PermissionDenied
        batch = self._batch(request, object_id)
        return self._run(request, batch,
                         lambda: vouchers.voucher_batch_submit(batch=batch, requested_by=request.user),
                         gettext("Voucher batch %(batch_no)s waits for another person's approval; its codes are "
                                 "generated when it is approved.") % {"batch_no": batch.batch_no})

    def cancel_view(self, request, object_id):
        batch = self._batch(request, object_id)
        if not (self._may_request(request) or batch.requested_by_id == request.user.pk):
            raise PermissionDenied
        return self._run(request, batch, lambda: vouchers.voucher_batch_cancel(batch=batch, user=request.user),
                         gettext("Voucher batch %(batch_no)s is cancelled.") % {"batch_no": batch.batch_no})

    def codes_view(self, request, object_id):
        """The batch's codes as Excel, for printing; each download is recorded in the batch's history."""
        if not (user_is_hq(request.user) and request.user.has_perm(vouchers.PERMISSION_CODE_FILE)):
            raise PermissionDenied
        batch = self._batch(request, object_id)
        try:
            vouchers.voucher_batch_code_file_issue(batch=batch, user=request.user)
        except DomainError as error:
            self.message_user(request, str(error), messages.ERROR)
            return change_page(batch)
        product = batch.product
        valid_until = batch.expires_on.isoformat()
        rows = ((batch.batch_no, serial, code, product.code, product.name, product.sku, batch.units, product.unit,
                 valid_until) for serial, code, _status in vouchers.voucher_batch_code_rows(batch))
        response = table_xlsx_response(
            filename=f"voucher-codes-{batch.batch_no}.xlsx", title=gettext("Voucher codes"),
            header=[gettext("batch number"), gettext("serial in batch"), gettext("code"), gettext("product code"),
                    gettext("product"), gettext("SKU"), gettext("units"), gettext("unit"), gettext("valid until")],
            rows=rows,
        )
        response["Cache-Control"] = "no-store"
        return response

    def _each(self, request, queryset, call) -> None:
        self.service_each(request, queryset.order_by("pk"), call, label=lambda batch: batch.batch_no,
                          done_message=lambda done: ngettext("%(count)d voucher batch done.",
                                                             "%(count)d voucher batches done.", done)
                          % {"count": done})

    @admin.action(description=_("Submit selected voucher batches for approval"), permissions=["add"])
    def submit_selected(self, request, queryset):
        self._each(request, queryset,
                   lambda batch: vouchers.voucher_batch_submit(batch=batch, requested_by=request.user))

    @admin.action(description=_("Cancel selected voucher batches"), permissions=["add"])
    def cancel_selected(self, request, queryset):
        self._each(request, queryset, lambda batch: vouchers.voucher_batch_cancel(batch=batch, user=request.user))


# --- vouchers and their ledger ------------------------------------------------------------------------------


class ExactCodeSearchMixin:
    """Search by the exact voucher code, through its unique index."""

    code_field = "voucher__code"
    search_fields = ["code"]
    search_help_text = _("Exact voucher code.")

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        return queryset.filter(**{self.code_field: term}), False


def _voucher_link(voucher) -> str:
    url = reverse("admin:cards_voucher_change", args=[voucher.pk])
    return format_html('<a href="{}">{}</a>', url, voucher.code_masked)


def _at_stores(store_ids) -> Exists:
    """Whether a voucher has a ledger row at one of these stores: it was sold or redeemed there."""
    return Exists(VoucherLedgerEntry.objects.filter(voucher=OuterRef("pk"), store_id__in=store_ids))


@admin.register(Voucher)
class VoucherAdmin(ExactCodeSearchMixin, ReadOnlyAdminMixin, ScopedAdminMixin, admin.ModelAdmin):
    """Vouchers are read here; they change through sale orders and redemptions at the POS.

    A voucher is sold at one store (its sale order) and redeemed at any store. Headquarters sees every voucher.
    Store staff see the vouchers sold or redeemed at their stores, as a retailer runs them: the selling store
    answers its buyer, a redeeming store reconciles the goods it handed out. On a voucher's page they see only
    their own stores' ledger rows, and its sale order only when their store sold it: another store's receipts,
    cashiers and buyers are that store's business. Any voucher whose exact code they search for (a customer at
    the desk asking what is left on it: whoever holds the code holds the voucher) shows in the list with what is
    left on it, without a link to a page they may not open.
    """

    # Every store of a voucher has a ledger row of it: the sale (issue) at the selling store, each redemption
    # where the goods were handed out. Many rows per voucher, so get_queryset scopes with EXISTS, not a join.
    store_path = "ledger_entries__store"
    code_field = "code"
    change_list_template = f"{TEMPLATES}/change_list.html"
    change_form_template = f"{TEMPLATES}/voucher_change_form.html"
    list_display = ["code_link", "batch", "serial", "product", "units", "remaining", "status", "expires_at",
                    "sold_at", "issuer"]
    list_display_links = None
    list_filter = ["status", "product__supplier", "product", ("expires_at", admin.DateFieldListFilter)]
    list_select_related = ["batch", "product", "issuer"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 50
    readonly_fields = ["code_masked_label", "sale_order_shown", "ledger_recent"]

    def get_fieldsets(self, request, obj=None):
        # The full code only for headquarters: whoever holds it can collect the goods.
        code = "code" if user_is_hq(request.user) else "code_masked_label"
        return [
            (None, {"fields": [code, "batch", "serial", "product", "units", "remaining", "status", "expires_at"]}),
            (_("sale"), {"fields": ["sale_order_shown", "sold_at", "issuer"]}),
            (_("voucher ledger"), {"fields": ["ledger_recent"]}),
        ]

    @admin.display(description=_("code"), ordering="code")
    def code_masked_label(self, obj):
        return obj.code_masked

    @admin.display(description=_("code"), ordering="code")
    def code_link(self, obj):
        if getattr(obj, "outside_user_stores", False):
            return obj.code_masked
        return _voucher_link(obj)

    @admin.display(description=_("sale order"))
    def sale_order_shown(self, obj):
        order = obj.sale_order
        if order is None:
            return "-"
        store_ids = getattr(obj, "shown_store_ids", frozenset())
        if store_ids is not None and order.store_id not in store_ids:
            return gettext("sold by another store")
        return format_html('<a href="{}">{}</a>', reverse("admin:cards_saleorder_change", args=[order.pk]),
                           order.order_no)

    @admin.display(description=_("recent entries"))
    def ledger_recent(self, obj):
        entries = VoucherLedgerEntry.objects.filter(voucher=obj)
        store_ids = getattr(obj, "shown_store_ids", frozenset())
        if store_ids is not None:
            entries = entries.filter(store_id__in=store_ids)
        entries = (entries.select_related("store", "legal_entity", "operator")
                   .order_by("-created_at", "-pk")[:RECENT_LEDGER_ROWS])
        return _table(
            [_("time"), _("kind"), _("units"), _("remaining after"), _("store"), _("receipt number"),
             _("legal entity"), _("operator")],
            [(_local(e.created_at), e.get_kind_display(), f"{e.quantity:+}", e.remaining_after,
              e.store.code if e.store else "-", e.receipt_no or "-", e.legal_entity.code if e.legal_entity else "-",
              e.operator.get_username() if e.operator else "-") for e in entries],
        )

    def get_queryset(self, request):
        queryset = admin.ModelAdmin.get_queryset(self, request)
        store_ids = user_store_ids(request.user)
        if store_ids is None:
            return queryset
        return queryset.filter(_at_stores(store_ids))

    def get_object(self, request, object_id, from_field=None):
        voucher = super().get_object(request, object_id, from_field)
        if voucher is not None:
            # The stores whose ledger rows and sale order the page shows (None: every store).
            voucher.shown_store_ids = user_store_ids(request.user)
        return voucher

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        found = Voucher.objects.select_related(*self.list_select_related).filter(code=term)
        store_ids = user_store_ids(request.user)
        if store_ids is not None:
            found = found.annotate(outside_user_stores=~_at_stores(store_ids))
        return found, False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # Another store's voucher looks like one that does not exist, also to whoever found it by its code.
        voucher = self.get_object(request, unquote(object_id))
        if voucher is None:
            raise Http404
        shown = voucher.code if user_is_hq(request.user) else voucher.code_masked
        return super().change_view(request, object_id, form_url,
                                   {**(extra_context or {}), "subtitle": shown, "voucher_label": shown})

    def history_view(self, request, object_id, extra_context=None):
        # Its title names the voucher by its full code.
        if not user_is_hq(request.user):
            raise PermissionDenied
        return super().history_view(request, object_id, extra_context)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), **report_links(request)})

    def get_urls(self):
        return [*report_urls(self), *super().get_urls()]


@admin.register(VoucherLedgerEntry)
class VoucherLedgerEntryAdmin(ExportMixin, ExactCodeSearchMixin, ReadOnlyAdminMixin, ScopedAdminMixin,
                              admin.ModelAdmin):
    store_path = "store"
    export_name = "voucher-ledger"
    change_list_template = f"{TEMPLATES}/change_list.html"
    list_display = ["created_at", "voucher_link", "kind", "quantity", "remaining_after", "store", "receipt_no",
                    "legal_entity", "operator"]
    list_filter = ["kind", StoreFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["voucher", "store", "legal_entity", "operator"]
    export_select_related = ["voucher__product", "terminal"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 50

    fields = ["created_at", "voucher_link", "kind", "quantity", "remaining_after", "store", "terminal", "receipt_no",
              "legal_entity", "operator", "reason"]
    readonly_fields = ["voucher_link"]

    @admin.display(description=_("voucher"), ordering="voucher__code")
    def voucher_link(self, obj):
        return _voucher_link(obj.voucher)

    def export_header(self):
        return [gettext("time"), *self.export_labels("voucher"), str(Voucher._meta.get_field("product").verbose_name),
                *self.export_labels("kind", "quantity", "remaining_after", "store", "terminal", "receipt_no",
                                    "legal_entity", "operator")]

    def export_row(self, entry):
        return [_local(entry.created_at), entry.voucher.code_masked, entry.voucher.product.code,
                entry.get_kind_display(),
                entry.quantity, entry.remaining_after, entry.store.code if entry.store else "",
                entry.terminal.name if entry.terminal else "", entry.receipt_no,
                entry.legal_entity.code if entry.legal_entity else "",
                entry.operator.get_username() if entry.operator else ""]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), **report_links(request)})


# --- reports ------------------------------------------------------------------------------------------------


def may_view_liability(user) -> bool:
    return user_is_hq(user) and user.has_perm(PERMISSION_LIABILITY)


def may_view_settlement(user) -> bool:
    return user_is_hq(user) and user.has_perm(PERMISSION_SETTLEMENT)


def report_links(request) -> dict:
    return {
        "liability_url": reverse("admin:cards_voucher_liability") if may_view_liability(request.user) else "",
        "settlement_url": reverse("admin:cards_voucher_settlement") if may_view_settlement(request.user) else "",
    }


class LiabilityFilterForm(forms.Form):
    supplier = forms.ModelChoiceField(label=_("supplier"), queryset=Supplier.objects.all(), required=False)


class SettlementForm(forms.Form):
    # Labels of their own: the bare "from" and "to" are the card transfer's (调出方, 调入门店) in Chinese.
    date_from = forms.DateField(label=_("period starts on"), widget=IsoDateInput())
    date_to = forms.DateField(label=_("period ends on"), widget=IsoDateInput(),
                              help_text=_("Inclusive; days in China time."))
    supplier = forms.ModelChoiceField(label=_("supplier"), queryset=Supplier.objects.all(), required=False)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", gettext("The period ends before it starts."))
        elif start and end and (end - start).days > 366:
            self.add_error("date_to", gettext("A settlement period is at most a year."))
        return cleaned


def _liability_totals(rows) -> dict:
    names = ["active_vouchers", "active_units", "active_value", "expired_vouchers", "expired_units", "expired_value"]
    return {name: sum((getattr(row, name) for row in rows), 0) for name in names}


def liability_view(request, *, model_admin):
    """Outstanding vouchers per product and supplier: active, and expired but not fully redeemed, apart."""
    if not may_view_liability(request.user):
        raise PermissionDenied
    form = LiabilityFilterForm(request.GET or None)
    supplier = form.cleaned_data.get("supplier") if form.is_valid() else None
    rows = vouchers.voucher_liability(supplier=supplier)
    totals = _liability_totals(rows)
    title = gettext("Pickup voucher liability")
    if request.GET.get("export") == "xlsx":
        header = [gettext("supplier"), gettext("supplier name"), gettext("product code"), gettext("product"),
                  gettext("unit"), gettext("active vouchers"), gettext("units remaining"), gettext("value remaining"),
                  gettext("expired vouchers"), gettext("expired units unredeemed"), gettext("expired value")]
        body = [[row.supplier_code, row.supplier_name, row.product_code, row.product_name, row.unit,
                 row.active_vouchers, row.active_units, xlsx_money(row.active_value), row.expired_vouchers,
                 row.expired_units, xlsx_money(row.expired_value)] for row in rows]
        footer = [gettext("Total"), "", "", "", "", *(xlsx_money(value) if name.endswith("_value") else value
                                                      for name, value in totals.items())]
        preamble = [[title], [gettext("as of"), timezone.localtime().strftime("%Y-%m-%d %H:%M")]]
        if supplier is not None:
            preamble.append([gettext("supplier"), str(supplier)])
        return table_xlsx_response(filename=f"voucher-liability-{timezone.localdate():%Y%m%d}.xlsx", title=title,
                                  preamble=preamble, header=header, rows=body, footer=footer)
    export_query = request.GET.copy()
    export_query["export"] = "xlsx"
    return TemplateResponse(request, f"{TEMPLATES}/liability.html", {
        **model_admin.admin_site.each_context(request),
        "title": title, "opts": Voucher._meta, "form": form, "rows": rows, "totals": totals,
        "as_of": timezone.localtime(), "export_url": f"?{export_query.urlencode()}",
    })


def settlement_view(request, *, model_admin):
    """Units redeemed per supplier, product and redeeming company in a period, at the settlement price."""
    if not may_view_settlement(request.user):
        raise PermissionDenied
    starts_on, ends_on = month_last_full(timezone.localdate())
    initial = {"date_from": starts_on, "date_to": ends_on}
    form = SettlementForm(request.GET or None, initial=initial)
    rows, period = [], None
    if form.is_bound and form.is_valid():
        period = (form.cleaned_data["date_from"], form.cleaned_data["date_to"])
    elif not form.is_bound:
        period = (initial["date_from"], initial["date_to"])
    if period is not None:
        rows = vouchers.voucher_settlement(date_from=period[0], date_to=period[1],
                                           supplier=form.cleaned_data.get("supplier") if form.is_bound else None)
    total_units = sum(row.units for row in rows)
    total_amount = sum((row.amount for row in rows), 0)
    title = gettext("Pickup voucher supplier settlement")
    if request.GET.get("export") == "xlsx" and period is not None:
        header = [gettext("supplier"), gettext("supplier name"), gettext("product code"), gettext("product"),
                  gettext("unit"), gettext("redeemed by (legal entity)"), gettext("legal entity name"),
                  gettext("units redeemed"), gettext("settlement price per unit"), gettext("amount owed")]
        body = [[row.supplier_code, row.supplier_name, row.product_code, row.product_name, row.unit,
                 row.legal_entity_code, row.legal_entity_name, row.units, xlsx_money(row.settlement_price),
                 xlsx_money(row.amount)] for row in rows]
        preamble = [[title], [gettext("period"), _period_label(*period)]]
        return table_xlsx_response(
            filename=f"voucher-settlement-{period[0]:%Y%m%d}-{period[1]:%Y%m%d}.xlsx", title=title,
            preamble=preamble, header=header, rows=body,
            footer=[gettext("Total"), "", "", "", "", "", "", total_units, "", xlsx_money(total_amount)],
        )
    export_query = request.GET.copy()
    if not form.is_bound:
        export_query.update({"date_from": period[0].isoformat(), "date_to": period[1].isoformat()})
    export_query["export"] = "xlsx"
    return TemplateResponse(request, f"{TEMPLATES}/settlement.html", {
        **model_admin.admin_site.each_context(request),
        "title": title, "opts": Voucher._meta, "form": form, "rows": rows, "period": period,
        "total_units": total_units, "total_amount": total_amount,
        "period_choices": period_choices(request, start_name="date_from", end_name="date_to"),
        "export_url": f"?{export_query.urlencode()}" if period is not None else "",
    })


def _period_label(start: date, end: date) -> str:
    return f"{start.isoformat()} – {end.isoformat()}"


def report_urls(model_admin) -> list:
    wrap = model_admin.admin_site.admin_view
    return [
        path("liability/", wrap(lambda request: liability_view(request, model_admin=model_admin)),
             name="cards_voucher_liability"),
        path("settlement/", wrap(lambda request: settlement_view(request, model_admin=model_admin)),
             name="cards_voucher_settlement"),
    ]


