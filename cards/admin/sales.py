"""Card sale orders in the admin: corporate group sales (团购), their approval, payment and the walk-in share export.

Staff write an order (buyer, cards by range or list, pickup vouchers by batch and serial, amounts, discount
or rebate, invoice, payment lines), submit it, and confirm payment once the money is in; every step is a
service of cards.services.sales, so the prepaid-card rules refuse here exactly as at the desk, and the refusal
is shown with the rule's name.
"""

from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from openpyxl import Workbook

from approvals.admin import ApprovalHistoryInline
from cards.models import CardRules, SaleLine, SaleOrder, SalePayment, SaleVoucherLine
from cards.queries.liability import revenue_alert_off_reason
from cards.services import sales as services
from core.admin import ServiceCallsMixin, ServiceRefusalMixin, copy_saved, local_time
from core.errors import DomainError
from core.files import xlsx_cells, xlsx_money, xlsx_money_cell, xlsx_response
from core.forms import add_service_error
from core.numbers import money_display
from core.pii import mask_phone
from stores.admin_base import BaseAdmin
from stores.queries import user_can_see_store, user_is_hq

# Actions call a service per order: more than this belongs in several runs.
MAX_ACTION_ORDERS = 200
EXPORT_HEADERS = (
    _("order number"), _("kind"), _("channel"), _("store code"), _("selling store"), _("status"), _("created at"),
    _("paid at"), _("buyer"), _("buyer name or company name"), _("buyer ID"), _("unified social credit code"),
    _("buyer phone"), _("agent name"), _("agent ID"), _("cards"), _("loaded onto cards"), _("vouchers"),
    _("pickup vouchers"), _("discount"),
    _("rebate"), _("amount due"), _("payments"), _("looks split"), _("invoice title"),
    _("invoice taxpayer number"), _("invoice item code"),
)


class SaleOrderForm(forms.ModelForm):
    """An order as staff type it; checked by the same service that writes it."""

    cards = forms.CharField(
        label=_("cards"), required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60, "spellcheck": "false"}),
        help_text=_("One per line: a card number, or first-last card numbers, then the amount loaded onto each "
                    "card (empty: the face value). Example: 6201000000010-6201000000209 500"),
    )
    vouchers = forms.CharField(
        label=_("pickup vouchers"), required=False,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60, "spellcheck": "false"}),
        help_text=_("One per line: a voucher batch number, then a serial number or first-last serial numbers; each "
                    "voucher sells at its batch's price. Example: VB2026001 1-50. An order holds cards, vouchers "
                    "or both."),
    )
    buyer_id_number = forms.CharField(
        label=_("buyer ID number"), max_length=30, required=False,
        help_text=_("Resident IDs are checked (GB 11643). On a saved order, leave empty to keep the one on file; "
                    "another buyer name or ID type asks for the ID again."),
    )
    agent_id_number = forms.CharField(
        label=_("agent ID number"), max_length=30, required=False,
        help_text=_("When someone buys on the buyer's behalf, and always for a company (经办人). Leave empty to keep "
                    "the one on file; another agent name or ID type asks for the ID again."),
    )

    class Meta:
        model = SaleOrder
        fields = [
            "kind", "channel", "store", "remote", "buyer_type", "buyer_name", "buyer_id_type", "buyer_id_number",
            "buyer_credit_code", "buyer_phone", "buyer_address", "member", "agent_name", "agent_id_type",
            "agent_id_number", "agent_phone", "cards", "vouchers", "discount", "rebate", "invoice_title",
            "invoice_tax_no", "note",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "channel" in self.fields and not self.instance.pk:
            self.fields["channel"].initial = SaleOrder.Channel.GROUP
        if self.instance.pk and "cards" in self.fields:
            lines = self.instance.lines.order_by("card__card_no").values_list("card__card_no", "amount")
            self.fields["cards"].initial = "\n".join(f"{card_no} {amount}" for card_no, amount in lines)
        if self.instance.pk and "vouchers" in self.fields:
            self.fields["vouchers"].initial = services.voucher_lines_text(self.instance)
        self.plan = None

    def sale_input(self) -> services.SaleInput:
        data = self.cleaned_data
        lines = data.get("card_lines") or []
        return services.SaleInput(
            store=data.get("store"), kind=data.get("kind") or SaleOrder.Kind.SALE,
            channel=data.get("channel") or SaleOrder.Channel.GROUP, remote=bool(data.get("remote")),
            buyer_type=data.get("buyer_type") or SaleOrder.BuyerType.PERSON,
            buyer=services.PartyInput(
                name=data.get("buyer_name") or "", id_type=data.get("buyer_id_type") or "",
                id_number=data.get("buyer_id_number") or "", phone=data.get("buyer_phone") or "",
                credit_code=data.get("buyer_credit_code") or "", address=data.get("buyer_address") or "",
            ),
            agent=services.PartyInput(
                name=data.get("agent_name") or "", id_type=data.get("agent_id_type") or "",
                id_number=data.get("agent_id_number") or "", phone=data.get("agent_phone") or "",
            ),
            member=data.get("member"), lines=lines, voucher_lines=data.get("voucher_line_inputs") or [],
            discount=data.get("discount") or Decimal("0.00"),
            rebate=data.get("rebate") or Decimal("0.00"), invoice_title=data.get("invoice_title") or "",
            invoice_tax_no=data.get("invoice_tax_no") or "", note=data.get("note") or "",
        )

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            cleaned["card_lines"] = services.sale_lines_parse(cleaned.get("cards") or "")
            cleaned["voucher_line_inputs"] = services.voucher_lines_parse(cleaned.get("vouchers") or "")
            self.plan = services.sale_order_check(data=self.sale_input(),
                                                  stored=self.instance if self.instance.pk else None)
        except DomainError as error:
            add_service_error(self, error, only_form_fields=True)
        return cleaned

    def _post_clean(self):
        # The model's own validation would ask for fields the service fills in (order number, creator).
        pass


class SaleLineInline(admin.TabularInline):
    model = SaleLine
    fields = ["card", "card_status", "amount"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("cards in this order")

    @admin.display(description=_("status"))
    def card_status(self, obj):
        return obj.card.get_status_display()

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("card").order_by("card__card_no")


class SaleVoucherLineInline(admin.TabularInline):
    """The order's vouchers by batch and serial; codes stay masked here, they are what a till redeems."""

    model = SaleVoucherLine
    fields = ["batch_no", "serial", "code_shown", "product", "units", "voucher_status", "amount"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("pickup vouchers in this order")

    @admin.display(description=_("batch number"))
    def batch_no(self, obj):
        return obj.voucher.batch.batch_no

    @admin.display(description=_("serial in batch"))
    def serial(self, obj):
        return obj.voucher.serial

    @admin.display(description=_("voucher code"))
    def code_shown(self, obj):
        return obj.voucher.code_masked

    @admin.display(description=_("voucher product"))
    def product(self, obj):
        return obj.voucher.product.name

    @admin.display(description=_("units"))
    def units(self, obj):
        return f"{obj.voucher.units} {obj.voucher.product.unit}"

    @admin.display(description=_("status"))
    def voucher_status(self, obj):
        return obj.voucher.get_status_display()

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("voucher__batch", "voucher__product") \
            .order_by("voucher__batch__batch_no", "voucher__serial")


class SalePaymentInline(admin.TabularInline):
    model = SalePayment
    fields = ["method", "amount", "reference", "payer_account_name", "payer_account_no", "payee_account_name",
              "payee_account_no"]
    extra = 1
    verbose_name_plural = _("payment lines (bank transfers record both accounts)")

    def _open(self, obj) -> bool:
        return obj is None or obj.status in (SaleOrder.Status.DRAFT, SaleOrder.Status.APPROVED)

    def has_add_permission(self, request, obj=None):
        return self._open(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._open(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._open(obj) and super().has_delete_permission(request, obj)

    def get_extra(self, request, obj=None, **kwargs):
        return 1 if self._open(obj) else 0


class SaleStatusFilter(admin.SimpleListFilter):
    title = _("looks split")
    parameter_name = "split"

    def lookups(self, request, model_admin):
        return [("yes", _("looks split")), ("no", _("not flagged"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(split_suspected=True)
        if self.value() == "no":
            return queryset.filter(split_suspected=False)
        return queryset


@admin.register(SaleOrder)
class SaleOrderAdmin(ServiceCallsMixin, ServiceRefusalMixin, BaseAdmin):
    store_path = "store"
    form = SaleOrderForm
    list_display = ["order_no", "kind", "channel", "store", "status", "buyer_name", "buyer_id_shown",
                    "face_total", "voucher_total", "discount", "amount_due", "split_flag", "created_at"]
    list_filter = ["status", "channel", "kind", SaleStatusFilter, "store__format"]
    search_fields = ["order_no", "buyer_name", "buyer_credit_code"]
    list_select_related = ["store"]
    date_hierarchy = "created_at"
    raw_id_fields = ["member"]
    actions = ["submit_orders", "confirm_payment", "cancel_orders", "export_xlsx"]
    readonly_fields_always = ["order_no", "status", "buyer_id_masked", "agent_id_masked", "face_total",
                              "voucher_total", "amount_due", "invoice_item_code", "split_flag", "created_by",
                              "created_at", "completed_at"]

    @admin.display(description=_("buyer ID"))
    def buyer_id_shown(self, obj):
        return obj.buyer_credit_code or obj.buyer_id_masked or "—"

    @admin.display(description=_("looks split"), boolean=True)
    def split_flag(self, obj):
        return obj.split_suspected

    def get_fieldsets(self, request, obj=None):
        order = [_("order"), _("buyer"), _("agent"), _("cards, vouchers and money"), _("invoice")]
        groups = {
            order[0]: ["order_no", "status", "kind", "channel", "store", "remote", "split_flag", "note"],
            order[1]: ["buyer_type", "buyer_name", "buyer_id_type", "buyer_id_number", "buyer_id_masked",
                       "buyer_credit_code", "buyer_phone", "buyer_address", "member"],
            order[2]: ["agent_name", "agent_id_type", "agent_id_number", "agent_id_masked", "agent_phone"],
            order[3]: ["cards", "face_total", "vouchers", "voucher_total", "discount", "rebate", "amount_due"],
            order[4]: ["invoice_title", "invoice_tax_no", "invoice_item_code"],
        }
        editable = obj is None or obj.status == SaleOrder.Status.DRAFT
        hidden = {"order_no", "status", "buyer_id_masked", "agent_id_masked", "face_total", "voucher_total",
                  "amount_due", "split_flag"} if obj is None else set()
        if not editable:
            hidden |= {"buyer_id_number", "agent_id_number", "cards", "vouchers"}
        fieldsets = [(title, {"fields": [name for name in groups[title] if name not in hidden]}) for title in order]
        if obj is not None:
            fieldsets.append((_("history"), {"fields": ["created_by", "created_at", "completed_at"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != SaleOrder.Status.DRAFT:
            return [*self.readonly_fields_always, "kind", "channel", "store", "remote", "buyer_type", "buyer_name",
                    "buyer_id_type", "buyer_credit_code", "buyer_phone", "buyer_address", "member", "agent_name",
                    "agent_id_type", "agent_phone", "discount", "rebate", "invoice_title", "invoice_tax_no", "note"]
        return self.readonly_fields_always

    def get_inlines(self, request, obj):
        if obj is None:
            return [SalePaymentInline]
        # Voucher lines only where there are some: a cards-only order's page (and its POSTs) stays as it was.
        vouchers = [SaleVoucherLineInline] if obj.voucher_lines.exists() else []
        return [SaleLineInline, *vouchers, SalePaymentInline, ApprovalHistoryInline]

    def has_delete_permission(self, request, obj=None):
        # The real-name record is kept at least five years (prepaid card rules): orders are cancelled, never deleted.
        return False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "GET":
            self._revenue_alert_off_warn(request, self.get_object(request, object_id) if object_id else None)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _revenue_alert_off_warn(self, request, order: SaleOrder | None) -> None:
        """Headquarters is told, where it sells cards, that the issuer's revenue alert cannot fire (no revenue)."""
        if not user_is_hq(request.user):
            return
        reason = revenue_alert_off_reason(CardRules.current())
        if not reason:
            return
        if order is not None and order.store_id is not None:
            issuer = order.store.format.legal_entity
            reason = gettext("Cards sold by %(issuer)s: %(reason)s") % {"issuer": issuer.name, "reason": reason}
        self.message_user(request, reason, messages.WARNING)

    def save_model(self, request, obj, form, change):
        store = form.cleaned_data.get("store") or obj.store
        if not user_can_see_store(request.user, store):
            raise services.SaleForbidden()
        if change:
            if obj.status != SaleOrder.Status.DRAFT:
                return
            order = services.sale_order_update(order=obj, data=form.sale_input(), actor=request.user)
        else:
            order = services.sale_order_create(data=form.sale_input(), created_by=request.user)
        copy_saved(obj, order)

    def save_formset(self, request, form, formset, change):
        if formset.model is not SalePayment:
            return super().save_formset(request, form, formset, change)
        # The lines are written by the service; the change message of the admin's history reads these.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if not formset.has_changed():
            return None
        payments = []
        for line in formset.forms:
            data = getattr(line, "cleaned_data", None) or {}
            if not data or data.get("DELETE") or not data.get("method"):
                continue
            payments.append(services.PaymentInput(
                method=data["method"], amount=data.get("amount"), reference=data.get("reference") or "",
                payer_account_name=data.get("payer_account_name") or "",
                payer_account_no=data.get("payer_account_no") or "",
                payee_account_name=data.get("payee_account_name") or "",
                payee_account_no=data.get("payee_account_no") or "",
            ))
        services.sale_order_payments_set(order=form.instance, payments=payments, actor=request.user)
        return None

    # --- actions ------------------------------------------------------------------------------------

    def _each(self, request, queryset, call, done_message):
        if queryset[: MAX_ACTION_ORDERS + 1].count() > MAX_ACTION_ORDERS:
            self.message_user(request, gettext("Select at most %(max)d orders for this action.")
                              % {"max": MAX_ACTION_ORDERS}, messages.ERROR)
            return
        self.service_each(request, queryset, call, label=lambda order: order.order_no, done_message=done_message)

    @admin.action(description=_("Submit selected orders (for approval when the rules ask)"), permissions=["change"])
    def submit_orders(self, request, queryset):
        def submit(order):
            order = services.sale_order_submit(order=order, actor=request.user)
            if order.split_suspected:
                self.message_user(request, gettext("%(order_no)s looks split: this buyer's orders within the rules' "
                                                   "window add up past a limit.") % {"order_no": order.order_no},
                                  messages.WARNING)

        self._each(request, queryset, submit, lambda n: ngettext(
            "%(count)d order submitted.", "%(count)d orders submitted.", n) % {"count": n})

    @admin.action(description=_("Confirm payment of selected orders and activate their cards and vouchers"),
                  permissions=["change"])
    def confirm_payment(self, request, queryset):
        self._each(request, queryset, lambda order: services.sale_order_pay(order=order, actor=request.user),
                   lambda n: ngettext("%(count)d order paid; its cards are active.",
                                      "%(count)d orders paid; their cards are active.", n) % {"count": n})
        self._revenue_alert_off_warn(request, None)

    @admin.action(description=_("Cancel selected unpaid orders"), permissions=["change"])
    def cancel_orders(self, request, queryset):
        self._each(request, queryset, lambda order: services.sale_order_cancel(order=order, actor=request.user),
                   lambda n: ngettext("%(count)d order cancelled.", "%(count)d orders cancelled.", n)
                   % {"count": n})

    @admin.action(description=_("Export selected orders to Excel (with the walk-in share)"), permissions=["view"])
    def export_xlsx(self, request, queryset):
        """Orders with their channel, IDs and phones masked; a second sheet adds up the walk-in share."""
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(gettext("card sale orders"))
        sheet.append([str(header) for header in EXPORT_HEADERS])
        orders = (queryset.select_related("store").prefetch_related("payments")
                  .annotate(card_count=Count("lines", distinct=True),
                            voucher_count=Count("voucher_lines", distinct=True)).order_by("created_at", "pk"))
        for order in orders.iterator(chunk_size=2000):
            sheet.append(xlsx_cells(sheet, _export_row(order)))
        share = workbook.create_sheet(gettext("walk-in share"))
        share.append([gettext("channel"), gettext("paid orders"), gettext("cards"), gettext("loaded onto cards"),
                      gettext("share of the amount")])
        paid = queryset.filter(status=SaleOrder.Status.COMPLETED).order_by().values("channel").annotate(
            orders=Count("pk", distinct=True), cards=Count("lines"), total=Sum("lines__amount"))
        rows = {row["channel"]: row for row in paid}
        grand = sum((row["total"] or Decimal("0")) for row in rows.values())
        for channel, label in SaleOrder.Channel.choices:
            row = rows.get(channel, {"orders": 0, "cards": 0, "total": Decimal("0.00")})
            total = row["total"] or Decimal("0.00")
            ratio = (total / grand).quantize(Decimal("0.0001")) if grand else Decimal("0")
            share.append([str(label), row["orders"], row["cards"], xlsx_money_cell(share, total), ratio])
        return xlsx_response(workbook, f"card-sale-orders-{timezone.localtime():%Y%m%d-%H%M}.xlsx")


def _export_row(order: SaleOrder) -> list:
    payments = "; ".join(f"{p.get_method_display()} {money_display(p.amount)}" for p in order.payments.all())
    return [
        order.order_no, order.get_kind_display(), order.get_channel_display(), order.store.code, order.store.name,
        order.get_status_display(), local_time(order.created_at), local_time(order.completed_at),
        order.get_buyer_type_display(), order.buyer_name, order.buyer_id_masked, order.buyer_credit_code,
        mask_phone(order.buyer_phone), order.agent_name, order.agent_id_masked, order.card_count,
        xlsx_money(order.face_total), order.voucher_count, xlsx_money(order.voucher_total), xlsx_money(order.discount),
        xlsx_money(order.rebate), xlsx_money(order.amount_due), payments,
        gettext("yes") if order.split_suspected else "", order.invoice_title, order.invoice_tax_no,
        order.invoice_item_code,
    ]

