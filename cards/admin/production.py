"""Admin screens for production batches (制卡), card transfers and the card stock overview.

Thin: every button and action calls cards.services.production and shows its refusal as a message. Batches are
headquarters' business (store staff may look); transfers are scoped to the stores a user works in, on either
side; the stock overview shows store staff only their stores' stock.
"""


from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from openpyxl import Workbook

from approvals.admin import ApprovalHistoryInline
from cards import queries
from cards.models import CardProduct, CardTransfer, ProductionBatch
from cards.services import production
from core.admin import ServiceCallsMixin, ServiceRefusalMixin, change_page, copy_saved
from core.errors import DomainError
from core.files import escape_cell, xlsx_response
from core.forms import add_service_error
from stores.admin_base import BaseAdmin
from stores.models import Store
from stores.queries import stores_visible_to, user_can_see_store, user_is_hq

PERMISSION_STOCK = production.PERMISSION_STOCK
PERMISSION_PRINTER_FILE = production.PERMISSION_PRINTER_FILE
PERMISSION_VIEW_CARDS = "cards.view_card"
TEMPLATES = "admin/cards/production"


class ProductionBatchForm(forms.ModelForm):
    class Meta:
        model = ProductionBatch
        fields = ["product", "quantity", "face_value", "vendor", "note"]
        help_texts = {"face_value": _("One of the product's face values; empty for a product without any.")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "product" in self.fields:
            self.fields["product"].queryset = CardProduct.objects.filter(is_active=True)

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            cleaned.update(production.batch_values_clean(
                product=cleaned.get("product"), quantity=cleaned.get("quantity"),
                face_value=cleaned.get("face_value"), vendor=cleaned.get("vendor", ""), note=cleaned.get("note", ""),
            ))
        except DomainError as error:
            add_service_error(self, error)
        return cleaned


@admin.register(ProductionBatch)
class ProductionBatchAdmin(ServiceCallsMixin, ServiceRefusalMixin, BaseAdmin):
    form = ProductionBatchForm
    change_form_template = f"{TEMPLATES}/batch_change_form.html"
    change_list_template = f"{TEMPLATES}/batch_change_list.html"
    list_display = ["batch_no", "product", "quantity", "face_value", "vendor", "status", "first_card_no",
                    "last_card_no", "requested_by", "created_at", "printer_file_at", "received_at"]
    list_filter = ["status", "product", "vendor", "created_at"]
    search_fields = ["batch_no", "vendor", "first_card_no", "last_card_no"]
    list_select_related = ["product", "requested_by"]
    date_hierarchy = "created_at"
    actions = ["submit_selected", "receive_selected", "cancel_selected"]
    readonly_fields = ["batch_no", "product", "quantity", "face_value", "vendor", "note", "status", "first_card_no",
                       "last_card_no", "requested_by", "created_at", "generated_at", "printer_file_at",
                       "printer_file_by", "received_at", "received_by"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ProductionBatchForm.Meta.fields

    def get_inlines(self, request, obj):
        return [ApprovalHistoryInline] if obj is not None else []

    def has_change_permission(self, request, obj=None):
        # A batch changes only through its buttons (services); its page is read-only.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False


    def save_model(self, request, obj, form, change):
        batch = production.batch_create(
            product=form.cleaned_data["product"], quantity=form.cleaned_data["quantity"],
            face_value=form.cleaned_data["face_value"], vendor=form.cleaned_data["vendor"],
            note=form.cleaned_data.get("note", ""), requested_by=request.user,
        )
        copy_saved(obj, batch)

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, gettext("Batch %(batch_no)s is a draft: submit it for approval to have its "
                                           "cards numbered.") % {"batch_no": obj.batch_no}, messages.SUCCESS)
        return change_page(obj)

    # --- what a user may do with a batch --------------------------------------------------------------

    def has_add_permission(self, request):
        # Production is headquarters' business, even for store staff in the card operations role.
        return user_is_hq(request.user) and super().has_add_permission(request)

    def _may_request(self, request) -> bool:
        return self.has_add_permission(request)

    def _may_submit(self, request, batch) -> bool:
        return batch.status == ProductionBatch.Status.DRAFT and self._may_request(request)

    def _may_cancel(self, request, batch) -> bool:
        if batch.status == ProductionBatch.Status.PENDING:
            return batch.requested_by_id == request.user.pk
        return batch.status == ProductionBatch.Status.DRAFT and self._may_request(request)

    def _may_download(self, request, batch) -> bool:
        return (batch.status == ProductionBatch.Status.APPROVED and batch.printer_file_at is None
                and request.user.has_perm(PERMISSION_PRINTER_FILE))

    def _may_ask_reissue(self, request, batch) -> bool:
        return (batch.status == ProductionBatch.Status.APPROVED and batch.printer_file_at is not None
                and request.user.has_perm(PERMISSION_PRINTER_FILE))

    def _may_receive(self, request, batch) -> bool:
        return (batch.status == ProductionBatch.Status.APPROVED and batch.printer_file_at is not None
                and user_is_hq(request.user) and request.user.has_perm(PERMISSION_STOCK))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = self.get_object(request, unquote(object_id))
        if batch is None:
            raise Http404
        extra_context = {
            **(extra_context or {}),
            "can_submit": self._may_submit(request, batch),
            "can_cancel": self._may_cancel(request, batch),
            "can_download": self._may_download(request, batch),
            "can_receive": self._may_receive(request, batch),
            "can_ask_reissue": self._may_ask_reissue(request, batch),
            "stock_rows": (queries.stock_overview(user=request.user, include_sold=True, batch=batch)
                           if batch.generated_at else []),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- buttons -----------------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/submit/", wrap(require_POST(self.submit_view)), name="cards_productionbatch_submit"),
            path("<path:object_id>/cancel/", wrap(require_POST(self.cancel_view)), name="cards_productionbatch_cancel"),
            path("<path:object_id>/receive/", wrap(require_POST(self.receive_view)),
                 name="cards_productionbatch_receive"),
            path("<path:object_id>/printer-file/", wrap(require_POST(self.printer_file_view)),
                 name="cards_productionbatch_printer_file"),
            path("<path:object_id>/printer-file/again/", wrap(require_POST(self.printer_file_again_view)),
                 name="cards_productionbatch_printer_file_again"),
            path("stock/", wrap(self.stock_view), name="cards_stock_overview"),
            *super().get_urls(),
        ]

    def _batch(self, request, object_id) -> ProductionBatch:
        return self.object_or_404(request, object_id)

    def _run(self, request, batch, call, success: str):
        return self.service_call(request, call, success, change_page(batch))

    def submit_view(self, request, object_id):
        if not self._may_request(request):
            raise PermissionDenied
        batch = self._batch(request, object_id)
        return self._run(request, batch, lambda: production.batch_submit(batch=batch, requested_by=request.user),
                         gettext("Batch %(batch_no)s waits for another person's approval; its cards are numbered "
                                 "when it is approved.") % {"batch_no": batch.batch_no})

    def cancel_view(self, request, object_id):
        batch = self._batch(request, object_id)
        if not (self._may_request(request) or batch.requested_by_id == request.user.pk):
            raise PermissionDenied
        return self._run(request, batch, lambda: production.batch_cancel(batch=batch, user=request.user),
                         gettext("Batch %(batch_no)s is cancelled.") % {"batch_no": batch.batch_no})

    def receive_view(self, request, object_id):
        if not request.user.has_perm(PERMISSION_STOCK):
            raise PermissionDenied
        batch = self._batch(request, object_id)
        return self._run(request, batch, lambda: production.batch_receive(batch=batch, user=request.user),
                         gettext("Batch %(batch_no)s is in headquarters' stock: %(quantity)s cards.")
                         % {"batch_no": batch.batch_no, "quantity": batch.quantity})

    def printer_file_view(self, request, object_id):
        """Hand the printer's file out, once; its PINs exist nowhere else, so it is never cached."""
        if not request.user.has_perm(PERMISSION_PRINTER_FILE):
            raise PermissionDenied
        batch = self._batch(request, object_id)
        try:
            printer_file = production.batch_printer_file_issue(batch=batch, user=request.user)
        except DomainError as error:
            self.message_user(request, str(error), messages.ERROR)
            return change_page(batch)
        response = StreamingHttpResponse((chunk.encode() for chunk in printer_file.chunks()),
                                         content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{printer_file.filename}"'
        response["Cache-Control"] = "no-store"
        return response

    def printer_file_again_view(self, request, object_id):
        """Ask, with a reason, for the printer file to be handed out once more (approval; new PINs)."""
        if not request.user.has_perm(PERMISSION_PRINTER_FILE):
            raise PermissionDenied
        batch = self._batch(request, object_id)
        return self._run(
            request, batch,
            lambda: production.batch_printer_file_reissue_request(
                batch=batch, requested_by=request.user, reason=request.POST.get("reason", "")),
            gettext("Another person must approve before the printer file of batch %(batch_no)s can be downloaded "
                    "again; that download draws new PINs.") % {"batch_no": batch.batch_no},
        )

    # --- list actions ------------------------------------------------------------------------------

    def _each(self, request, queryset, call) -> None:
        self.service_each(request, queryset.order_by("pk"), call, label=lambda batch: batch.batch_no,
                          done_message=lambda done: ngettext("%(count)d batch done.", "%(count)d batches done.",
                                                             done) % {"count": done})

    @admin.action(description=_("Submit selected batches for approval"), permissions=["add"])
    def submit_selected(self, request, queryset):
        self._each(request, queryset, lambda batch: production.batch_submit(batch=batch, requested_by=request.user))

    @admin.action(description=_("Receive selected batches into headquarters' stock"), permissions=["receive"])
    def receive_selected(self, request, queryset):
        self._each(request, queryset, lambda batch: production.batch_receive(batch=batch, user=request.user))

    @admin.action(description=_("Cancel selected batches"), permissions=["add"])
    def cancel_selected(self, request, queryset):
        self._each(request, queryset, lambda batch: production.batch_cancel(batch=batch, user=request.user))

    def has_receive_permission(self, request):
        return request.user.has_perm(PERMISSION_STOCK)

    # --- stock overview ----------------------------------------------------------------------------

    def stock_view(self, request):
        """Card stock per location, product, stock status and card status; Excel export of the same rows."""
        if not request.user.has_perm(PERMISSION_VIEW_CARDS):
            raise PermissionDenied
        form = StockFilterForm(request.GET or None, user=request.user)
        filters = form.filters() if form.is_valid() else {}
        rows = queries.stock_overview(user=request.user, **filters)
        if request.GET.get("export") == "xlsx":
            return _stock_workbook(rows)
        export_query = request.GET.copy()
        export_query["export"] = "xlsx"
        return TemplateResponse(request, f"{TEMPLATES}/stock.html", {
            **self.admin_site.each_context(request),
            "title": gettext("Card stock"),
            "opts": self.opts,
            "form": form,
            "rows": rows,
            "total": sum(row.count for row in rows),
            "export_url": f"?{export_query.urlencode()}",
        })


class StockFilterForm(forms.Form):
    HQ = "hq"

    location = forms.ChoiceField(label=_("held at"), required=False)
    product = forms.ModelChoiceField(label=_("product"), queryset=CardProduct.objects.all(), required=False)
    include_sold = forms.BooleanField(label=_("include sold and void cards"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.stores = {str(store.pk): store for store in stores_visible_to(user).order_by("code")}
        choices = [("", _("all"))]
        if user_is_hq(user):
            choices.append((self.HQ, _("headquarters")))
        choices += [(pk, f"{store.code} {store.name}") for pk, store in self.stores.items()]
        self.fields["location"].choices = choices

    def filters(self) -> dict:
        location = self.cleaned_data.get("location")
        return {
            "include_sold": self.cleaned_data.get("include_sold", False),
            "product": self.cleaned_data.get("product"),
            "hq_only": location == self.HQ,
            "location": self.stores.get(location) if location and location != self.HQ else None,
        }


def _stock_workbook(rows) -> HttpResponse:
    """The stock rows as an Excel file (openpyxl write-only: rows go straight to the file)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(gettext("Card stock"))
    sheet.append([gettext("held at"), gettext("product code"), gettext("product"), gettext("stock status"),
                  gettext("card status"), gettext("cards")])
    for row in rows:
        sheet.append([escape_cell(str(value)) for value in (
            row.location_label, row.product.code, row.product.name, row.stock_status_label, row.status_label,
        )] + [row.count])
    return xlsx_response(workbook, f"card-stock-{timezone.localdate():%Y%m%d}.xlsx")


# --- transfers ------------------------------------------------------------------------------------------


class TransferCreateForm(forms.Form):
    from_store = forms.ModelChoiceField(label=_("from"), queryset=Store.objects.none(), required=False,
                                        empty_label=_("headquarters"))
    to_store = forms.ModelChoiceField(label=_("to"), queryset=Store.objects.none())
    cards = forms.CharField(
        label=_("cards"), widget=forms.Textarea(attrs={"rows": 8, "cols": 60}),
        help_text=_("Number ranges (first-last) and single numbers, one per line or separated by commas."),
    )
    note = forms.CharField(label=_("note"), max_length=200, required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        open_stores = Store.objects.exclude(status=Store.Status.CLOSED).order_by("code")
        self.fields["to_store"].queryset = open_stores
        self.fields["from_store"].queryset = stores_visible_to(user).exclude(status=Store.Status.CLOSED).order_by(
            "code")
        if not user_is_hq(user):
            self.fields["from_store"].required = True
            self.fields["from_store"].empty_label = None

    def clean_cards(self):
        try:
            return production.card_numbers_parse(self.cleaned_data["cards"])
        except DomainError as error:
            raise forms.ValidationError(error.fields["cards"]) from None


@admin.register(CardTransfer)
class CardTransferAdmin(ServiceCallsMixin, BaseAdmin):
    # A transfer belongs to both stores: the one sending the cards (none for headquarters) and the one receiving.
    store_path = ("from_store", "to_store")
    change_form_template = f"{TEMPLATES}/transfer_change_form.html"
    change_list_template = f"{TEMPLATES}/transfer_change_list.html"
    list_display = ["transfer_no", "from_label", "to_store", "card_count", "status", "created_by", "created_at",
                    "sent_at", "received_at"]
    list_filter = ["status", ("to_store", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["transfer_no", "note"]
    list_select_related = ["from_store", "to_store", "created_by"]
    actions = ["send_selected", "receive_selected", "cancel_selected"]
    readonly_fields = ["transfer_no", "from_label", "to_store", "status", "card_count", "cards_summary", "note",
                       "created_by", "created_at", "sent_by", "sent_at", "received_by", "received_at"]
    fields = readonly_fields

    @admin.display(description=_("from"), ordering="from_store__code")
    def from_label(self, obj):
        return obj.from_store or gettext("headquarters")

    @admin.display(description=_("card numbers"))
    def cards_summary(self, obj):
        runs, more = queries.card_ranges(queries.transfer_card_numbers(obj))
        lines = [f"{first} - {last} ({count})" if count > 1 else first for first, last, count in runs]
        if more:
            lines.append("…")
        return "\n".join(lines)

    def get_queryset(self, request):
        # The same rows as store_path, read where the stock pages read them.
        return queries.transfers_visible_to(request.user, admin.ModelAdmin.get_queryset(self, request))

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        """A transfer is created by the service from ranges and lists of numbers, not saved as a model form."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = TransferCreateForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                transfer = production.transfer_create(
                    from_store=form.cleaned_data["from_store"], to_store=form.cleaned_data["to_store"],
                    selection=form.cleaned_data["cards"], user=request.user, note=form.cleaned_data["note"],
                )
            except DomainError as error:
                add_service_error(form, error)
            else:
                self.message_user(request, gettext("Transfer %(transfer_no)s of %(count)s cards is ready to send.")
                                  % {"transfer_no": transfer.transfer_no, "count": transfer.card_count},
                                  messages.SUCCESS)
                return change_page(transfer)
        return TemplateResponse(request, "admin/membership/form_page.html", {
            **self.admin_site.each_context(request),
            "title": gettext("New card transfer"),
            "opts": self.opts,
            "form": form,
            "change_url": reverse("admin:cards_cardtransfer_changelist"),
            "submit_label": gettext("Create the transfer"),
        })

    def _may_send(self, request, transfer) -> bool:
        return transfer.status == CardTransfer.Status.DRAFT and request.user.has_perm(PERMISSION_STOCK) and (
            user_is_hq(request.user) if transfer.from_store is None else user_can_see_store(request.user,
                                                                                             transfer.from_store))

    def _may_cancel(self, request, transfer) -> bool:
        return transfer.status == CardTransfer.Status.DRAFT and super().has_add_permission(request) and (
            user_is_hq(request.user) if transfer.from_store is None else user_can_see_store(request.user,
                                                                                             transfer.from_store))

    def _may_receive(self, request, transfer) -> bool:
        return (transfer.status == CardTransfer.Status.SENT and request.user.has_perm(PERMISSION_STOCK)
                and user_can_see_store(request.user, transfer.to_store))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        transfer = self.get_object(request, unquote(object_id))
        if transfer is None:
            raise Http404
        extra_context = {
            **(extra_context or {}),
            "can_send": self._may_send(request, transfer),
            "can_receive": self._may_receive(request, transfer),
            "can_cancel": self._may_cancel(request, transfer),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/send/", wrap(require_POST(self.send_view)), name="cards_cardtransfer_send"),
            path("<path:object_id>/receive/", wrap(require_POST(self.receive_view)), name="cards_cardtransfer_receive"),
            path("<path:object_id>/cancel/", wrap(require_POST(self.cancel_view)), name="cards_cardtransfer_cancel"),
            *super().get_urls(),
        ]

    def _transfer_call(self, request, object_id, call, success: str):
        transfer = self.object_or_404(request, object_id)
        return self.service_call(request, lambda: call(transfer), success % {"transfer_no": transfer.transfer_no},
                                 change_page(transfer))

    def send_view(self, request, object_id):
        return self._transfer_call(request, object_id,
                                   lambda transfer: production.transfer_send(transfer=transfer, user=request.user),
                                   gettext("Transfer %(transfer_no)s is sent; its cards are in transit."))

    def receive_view(self, request, object_id):
        return self._transfer_call(request, object_id,
                                   lambda transfer: production.transfer_receive(transfer=transfer, user=request.user),
                                   gettext("Transfer %(transfer_no)s is received; its cards are in stock."))

    def cancel_view(self, request, object_id):
        return self._transfer_call(request, object_id,
                                   lambda transfer: production.transfer_cancel(transfer=transfer, user=request.user),
                                   gettext("Transfer %(transfer_no)s is cancelled."))

    def _each(self, request, queryset, call) -> None:
        self.service_each(request, queryset.order_by("pk"), call, label=lambda transfer: transfer.transfer_no,
                          done_message=lambda done: ngettext("%(count)d transfer done.", "%(count)d transfers done.",
                                                             done) % {"count": done})

    def has_stock_permission(self, request):
        return request.user.has_perm(PERMISSION_STOCK)

    @admin.action(description=_("Send selected transfers"), permissions=["stock"])
    def send_selected(self, request, queryset):
        self._each(request, queryset, lambda transfer: production.transfer_send(transfer=transfer, user=request.user))

    @admin.action(description=_("Receive selected transfers"), permissions=["stock"])
    def receive_selected(self, request, queryset):
        self._each(request, queryset,
                   lambda transfer: production.transfer_receive(transfer=transfer, user=request.user))

    @admin.action(description=_("Cancel selected transfers"), permissions=["add"])
    def cancel_selected(self, request, queryset):
        self._each(request, queryset,
                   lambda transfer: production.transfer_cancel(transfer=transfer, user=request.user))
