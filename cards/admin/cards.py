"""Admin screens for card products, the rules, the cards with their ledger, and service operations.

Cards, ledger entries, POS transactions, returns and events are written only by cards.services: here they are
read, filtered, exported, and the card page offers the service operations as small forms that call a service
and show its refusal as a message. Card search is one exact lookup on the card number's unique index.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from approvals.admin import ApprovalHistoryInline, approval_request_url
from approvals.models import ApprovalRequest
from approvals.queries import requests_of
from cards.errors import CardInvalid
from cards.models import (
    Card,
    CardEvent,
    CardLedgerEntry,
    CardProduct,
    CardReturn,
    CardRules,
    CardTransaction,
    SaleOrder,
)
from cards.queries import cards_above_cap
from cards.services import operations
from cards.services.ledger import card_cap
from core.admin import CappedCountPaginator, ReadOnlyAdminMixin, local_time, summary_table
from core.errors import DomainError
from core.files import table_xlsx_response, xlsx_money
from core.forms import add_service_error
from core.numbers import money_display
from core.pii import mask_name
from membership.models import Member
from stores.admin_base import BaseAdmin, ScopedAdminMixin, StoreFilter
from stores.models import Store
from stores.queries import user_store_ids

PERMISSION_SERVE = "cards.serve_card"
# Manual adjustments and write-offs are headquarters' card operations, not the desk's (docs/operations.md).
PERMISSION_ADJUST = "cards.change_card"
RECENT_LEDGER_ROWS = 50
RECENT_TRANSACTIONS = 20
RECENT_EVENTS = 50
# An xlsx sheet holds 1,048,576 rows: a larger selection is narrowed by the filters first.
EXPORT_MAX_ROWS = 1_000_000
ID_TYPES = [choice for choice in SaleOrder.IdType.choices if choice[0]]


# Card records are shown and exported to the second.
_local = partial(local_time, seconds=True)


def _card_url(card) -> str:
    return reverse("admin:cards_card_change", args=[card.pk])


def _card_link(card):
    if card is None:
        return "-"
    return format_html('<a href="{}">{}</a>', _card_url(card), card.card_no)


def _status_label(value: str) -> str:
    return Card.Status(value).label if value in Card.Status.values else (value or "-")


# The small tables on a card's page; an empty one says so.
_table = partial(summary_table, css_class="card-summary", empty=_("None yet."))


class ExportMixin:
    """An "Export to Excel" link on the list: the rows the list shows (filters, search, store scope)."""

    export_name = ""
    export_select_related: list[str] = []

    def export_header(self) -> list[str]:
        raise NotImplementedError

    def export_labels(self, *names: str) -> list[str]:
        """The column headers of the export: the verbose names of the model's fields, in the user's language
        ("time" for created_at)."""
        return [gettext("time") if name == "created_at" else str(self.opts.get_field(name).verbose_name)
                for name in names]

    def export_row(self, obj) -> list:
        raise NotImplementedError

    def get_urls(self):
        return [
            path("export/", self.admin_site.admin_view(self.export_view),
                 name=f"{self.opts.app_label}_{self.opts.model_name}_export"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        if self.has_view_permission(request):
            query = request.GET.urlencode()
            extra_context["export_url"] = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_export") + (
                f"?{query}" if query else "")
        return super().changelist_view(request, extra_context)

    def export_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        queryset = changelist.get_queryset(request).select_related(*self.export_select_related)
        if queryset[EXPORT_MAX_ROWS:EXPORT_MAX_ROWS + 1].exists():
            self.message_user(request, gettext("An export holds at most %(max)s rows: narrow the list with its "
                                               "filters first.") % {"max": EXPORT_MAX_ROWS}, messages.ERROR)
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
                                        + (f"?{request.GET.urlencode()}" if request.GET else ""))
        rows = (self.export_row(obj) for obj in queryset.iterator(chunk_size=2000))
        return table_xlsx_response(filename=f"{self.export_name}-{timezone.localdate():%Y%m%d}.xlsx",
                             title=str(self.opts.verbose_name_plural), header=self.export_header(), rows=rows)


class ExactCardNumberSearchMixin:
    """Search by the exact card number, through the unique index; never a LIKE over millions of cards."""

    card_no_field = "card__card_no"
    search_fields = ["card_no"]
    search_help_text = _("Exact card number.")

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        return queryset.filter(**{self.card_no_field: term}), False


# --- products, rules ------------------------------------------------------------------------


@admin.register(CardProduct)
class CardProductAdmin(BaseAdmin):
    """Products are validated by the model's clean: the rules' caps and the bearer cards' minimum validity."""

    list_display = ["code", "name", "kind", "medium", "reloadable", "max_balance", "validity_months",
                    "pin_required", "brand", "is_active"]
    list_filter = ["kind", "medium", "reloadable", "is_active", "brand"]
    list_select_related = ["brand"]
    search_fields = ["code", "name"]
    fields = ["code", "name", "kind", "medium", "reloadable", "max_balance", "face_values", "validity_months",
              "pin_required", "brand", "is_active"]

    def get_readonly_fields(self, request, obj=None):
        # Issued cards follow their product: what a card is never changes under it.
        if obj is not None and obj.cards.exists():
            return ["code", "kind", "medium"]
        return []

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CardRules)
class CardRulesAdmin(BaseAdmin):
    """The one row of prepaid-card rules: the list opens it; it is never added twice or deleted."""

    list_display = ["__str__", "registered_max_balance", "bearer_max_balance", "bearer_min_validity_months",
                    "pin_attempts", "updated_at"]
    fieldsets = [
        (_("caps"), {"fields": ["registered_max_balance", "bearer_max_balance"]}),
        (_("real name and payment"), {"fields": ["bearer_real_name_from", "company_transfer_from",
                                                 "person_transfer_from", "split_window_days",
                                                 "group_approval_from"]}),
        (_("validity and PINs"), {"fields": ["bearer_min_validity_months", "pin_attempts"]}),
        (_("escrow and reporting"), {"fields": ["issuer_type", "escrow_rate", "escrow_guarantee",
                                                "revenue_alert_share", "last_year_revenue"]}),
    ]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not {"registered_max_balance", "bearer_max_balance"} & set(form.changed_data):
            return
        # A lowered cap holds for every later load; what cards hold already stays theirs, listed for follow-up.
        above = cards_above_cap(rules=obj).count()
        if above:
            url = reverse("admin:cards_card_changelist") + f"?{AboveCapFilter.parameter_name}=yes"
            self.message_user(request, format_html(
                '{} <a href="{}">{}</a>',
                ngettext("%(count)d card holds more than the new cap; it takes no further loads until spent below "
                         "it.", "%(count)d cards hold more than the new cap; they take no further loads until spent "
                         "below it.", above) % {"count": above},
                url, gettext("List them for follow-up"),
            ), messages.WARNING)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not CardRules.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        rules = CardRules.objects.order_by("pk").first()
        if rules is not None and self.has_view_or_change_permission(request, rules):
            return HttpResponseRedirect(reverse("admin:cards_cardrules_change", args=[rules.pk]))
        return super().changelist_view(request, extra_context)


# --- operation forms --------------------------------------------------------------------------------


def _text(**attrs) -> forms.TextInput:
    # Personal data: the browser must not offer what the previous customer typed.
    return forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", **attrs})


class NoteForm(forms.Form):
    note = forms.CharField(label=_("note"), max_length=200, required=False)


class IdentityForm(forms.Form):
    holder_name = forms.CharField(label=_("holder name"), max_length=100, widget=_text())
    id_type = forms.ChoiceField(label=_("ID type"), choices=ID_TYPES, initial=SaleOrder.IdType.RESIDENT_ID)
    id_number = forms.CharField(label=_("ID number"), max_length=32, widget=_text())


class LossReportForm(IdentityForm, NoteForm):
    field_order = ["holder_name", "id_type", "id_number", "note"]


class UnfreezeForm(IdentityForm, NoteForm):
    field_order = ["holder_name", "id_type", "id_number", "note"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("holder_name", "id_number"):
            self.fields[name].required = False
        self.fields["note"].help_text = _("A registered card's holder shows their ID; for a bearer card, or a card "
                                          "frozen by staff, note how the card was shown.")


class NewCardForm(NoteForm):
    field_order = ["new_card_no", "note"]
    new_card_no = forms.CharField(label=_("new card number"), max_length=32, widget=_text(),
                                  help_text=_("An unused card in stock at this store, or an e-card."))


class ReturnForm(IdentityForm):
    bank_account_name = forms.CharField(label=_("bank account name"), max_length=100, widget=_text(),
                                        help_text=_("Must be the holder's own name (prepaid card rules)."))
    bank_account_no = forms.CharField(label=_("bank account number"), max_length=40, widget=_text())
    bank_name = forms.CharField(label=_("bank"), max_length=100)
    reason = forms.CharField(label=_("reason"), max_length=200)


class MemberForm(NoteForm):
    field_order = ["member_no", "note"]
    member_no = forms.CharField(label=_("member number"), max_length=20, widget=_text())


class AdjustForm(forms.Form):
    amount = forms.CharField(label=_("amount"), max_length=20,
                             help_text=_("Positive adds to the balance, negative takes away, e.g. -12.50."))
    reason = forms.CharField(label=_("reason"), max_length=200)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=200)


@dataclass(frozen=True)
class Operation:
    slug: str
    label: str
    form: type[forms.Form]
    available: Callable[[Card], bool]
    submit: str
    permissions: tuple[str, ...] = (PERMISSION_SERVE,)

    def allowed(self, user) -> bool:
        return user.has_perms(self.permissions)


def _electronic(card: Card) -> bool:
    return card.product.medium == CardProduct.Medium.ELECTRONIC


def _expired_with_balance(card: Card) -> bool:
    return card.status == Card.Status.EXPIRED and card.balance > 0


OPERATIONS = {operation.slug: operation for operation in [
    Operation("report-lost", _("Report lost"), LossReportForm,
              lambda card: card.product.is_registered and card.status == Card.Status.ACTIVE, _("Report lost")),
    Operation("replace", _("Replace"), NewCardForm,
              lambda card: card.status == Card.Status.FROZEN and card.freeze_reason == Card.FreezeReason.LOST,
              _("Replace the card")),
    Operation("unfreeze", _("Unfreeze"), UnfreezeForm, lambda card: card.status == Card.Status.FROZEN,
              _("Unfreeze")),
    Operation("return", _("Return (退卡)"), ReturnForm,
              lambda card: card.product.is_registered and card.status in (Card.Status.ACTIVE, Card.Status.FROZEN),
              _("Request the return")),
    Operation("reactivate", _("Reactivate"), NoteForm, _expired_with_balance, _("Reactivate")),
    Operation("exchange", _("Exchange for a new card"), NewCardForm, _expired_with_balance, _("Exchange")),
    Operation("bind", _("Bind to a member"), MemberForm,
              lambda card: _electronic(card) and card.member_id is None
              and card.status in (Card.Status.ACTIVE, Card.Status.EXPIRED), _("Bind")),
    Operation("transfer", _("Give to another member"), MemberForm,
              lambda card: _electronic(card) and card.member_id is not None
              and card.status in (Card.Status.ACTIVE, Card.Status.EXPIRED), _("Transfer")),
    Operation("adjust", _("Request a balance adjustment"), AdjustForm,
              lambda card: card.status not in (Card.Status.INACTIVE, Card.Status.CLOSED),
              _("Request the adjustment"), (PERMISSION_SERVE, PERMISSION_ADJUST)),
    # Registered cards never expire, so their balance is never written off (prepaid card rules: validity).
    Operation("write-off", _("Request a write-off"), ReasonForm,
              lambda card: not card.product.is_registered and _expired_with_balance(card), _("Request the write-off"),
              (PERMISSION_SERVE, PERMISSION_ADJUST)),
]}


# --- cards ----------------------------------------------------------------------------------------


class AboveCapFilter(admin.SimpleListFilter):
    """Cards above today's cap (loaded before a cap was lowered), for headquarters to follow up."""

    title = _("cap")
    parameter_name = "above_cap"

    def lookups(self, request, model_admin):
        return [("yes", _("above today's cap"))]

    def queryset(self, request, queryset):
        return cards_above_cap(queryset) if self.value() == "yes" else queryset


class LocationFilter(StoreFilter):
    title = _("held at")
    parameter_name = "location"
    store_field = "location_id"


class SoldStoreFilter(StoreFilter):
    title = _("sold at")
    parameter_name = "sold_store"
    store_field = "sold_store_id"


@admin.register(Card)
class CardAdmin(ExportMixin, ExactCardNumberSearchMixin, ReadOnlyAdminMixin, ScopedAdminMixin, admin.ModelAdmin):
    """Cards are read here; every change is a service operation from the card page."""

    # Store staff see the cards their stores hold in stock or sold.
    store_path = ("location", "sold_store")
    card_no_field = "card_no"
    export_name = "cards"
    export_select_related = ["replaced_by"]
    # Fits a 1366-pixel screen; the expiry date is on the card's page.
    list_display = ["card_no", "product", "status", "balance", "holder", "stock_status", "location", "sold_store"]
    list_filter = ["product", "status", "stock_status", LocationFilter, SoldStoreFilter, AboveCapFilter]
    list_select_related = ["product", "location", "sold_store", "member"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 50
    inlines = [ApprovalHistoryInline]
    fieldsets = [
        (None, {"fields": ["card_no", "product", "status", "freeze_reason", "balance", "cap", "expires_at",
                           "activated_at", "holder", "holder_name", "replaced_by_link", "replaces_link"]}),
        (_("stock and sale"), {"fields": ["stock_status", "location", "batch", "face_value", "sold_store", "issuer",
                                          "sale_order", "legacy_source", "created_at"]}),
        (_("PIN"), {"fields": ["pin_set", "pin_failures"]}),
        (_("card ledger"), {"fields": ["ledger_recent"]}),
        (_("POS transactions"), {"fields": ["transactions_recent"]}),
        (_("returns (退卡)"), {"fields": ["returns_list"]}),
        (_("history"), {"fields": ["events_recent"]}),
    ]
    readonly_fields = ["cap", "holder", "replaced_by_link", "replaces_link", "pin_set", "pin_failures",
                       "ledger_recent", "transactions_recent", "returns_list", "events_recent"]

    # --- the card page -----------------------------------------------------------------------------

    @admin.display(description=_("holder (member)"))
    def holder(self, obj):
        if obj.member is None:
            return "-"
        url = reverse("admin:membership_member_change", args=[obj.member_id])
        return format_html('<a href="{}">{}</a>', url, obj.member.member_no)

    @admin.display(description=_("maximum balance"))
    def cap(self, obj):
        return money_display(card_cap(obj))

    @admin.display(description=_("replaced by"))
    def replaced_by_link(self, obj):
        return _card_link(obj.replaced_by)

    @admin.display(description=_("replaces"))
    def replaces_link(self, obj):
        # replaced_by has no index: the card it replaces is named by this card's activation event instead.
        numbers = [event.data.get("replaces") for event in obj.events.filter(kind=CardEvent.Kind.ACTIVATED)]
        previous = list(Card.objects.filter(card_no__in=[number for number in numbers if number])
                        .only("pk", "card_no"))
        return format_html_join(", ", "{}", ((_card_link(card),) for card in previous)) if previous else "-"

    @admin.display(description=_("PIN set"), boolean=True)
    def pin_set(self, obj):
        return bool(obj.pin_hash)

    @admin.display(description=_("recent entries"))
    def ledger_recent(self, obj):
        entries = (CardLedgerEntry.objects.filter(card=obj).select_related("store", "operator")
                   .order_by("-created_at", "-pk")[:RECENT_LEDGER_ROWS])
        url = reverse("admin:cards_cardledgerentry_changelist") + f"?card__id__exact={obj.pk}"
        return _table(
            [_("time"), _("kind"), _("amount"), _("balance after"), _("store"), _("receipt number"), _("operator"),
             _("reason")],
            [(_local(e.created_at), e.get_kind_display(), money_display(e.amount, signed=True), e.balance_after,
              e.store.code if e.store else "-", e.receipt_no or "-", e.operator or "-", e.reason or "-")
             for e in entries],
            footer=format_html('<a href="{}">{}</a>', url, gettext("All entries of this card")),
        )

    @admin.display(description=_("recent payments"))
    def transactions_recent(self, obj):
        rows = (CardTransaction.objects.filter(card=obj).select_related("store")
                .order_by("-created_at", "-pk")[:RECENT_TRANSACTIONS])
        return _table(
            [_("time"), _("transaction id"), _("kind"), _("amount"), _("discount"), _("moved on the card"),
             _("refunded so far"), _("store"), _("receipt number"), _("reversed at")],
            [(_local(t.created_at), t.transaction_id, t.get_kind_display(), t.amount, t.discount, t.charged,
              t.refunded, t.store.code, t.receipt_no or "-", _local(t.reversed_at) or "-") for t in rows],
        )

    @admin.display(description=_("returns"))
    def returns_list(self, obj):
        rows = CardReturn.objects.filter(card=obj).select_related("store").order_by("-created_at", "-pk")
        return _table(
            [_("created at"), _("store"), _("amount"), _("holder name"), _("bank account"), _("status"),
             _("paid out at")],
            [(_local(r.created_at), r.store.code, r.amount, r.holder_name,
              f"{r.bank_name} ****{r.bank_account_no[-4:]}", r.get_status_display(), _local(r.paid_at) or "-")
             for r in rows],
        )

    @admin.display(description=_("events"))
    def events_recent(self, obj):
        events = (CardEvent.objects.filter(card=obj).select_related("store", "actor")
                  .order_by("-created_at", "-pk")[:RECENT_EVENTS])
        return _table(
            [_("time"), _("kind"), _("status before"), _("status after"), _("store"), _("by"), _("note")],
            [(_local(e.created_at), e.get_kind_display(), _status_label(e.status_from), _status_label(e.status_to),
              e.store.code if e.store else "-", e.actor or "-", e.note or "-") for e in events],
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        card = self.get_object(request, unquote(object_id))
        if card is None:
            raise Http404
        extra_context = extra_context or {}
        extra_context["card_operations"] = [
            {"label": operation.label, "url": reverse("admin:cards_card_operation", args=[card.pk, operation.slug])}
            for operation in OPERATIONS.values() if operation.allowed(request.user) and operation.available(card)
        ]
        return super().change_view(request, object_id, form_url, extra_context)

    # --- service operations ------------------------------------------------------------------------

    def get_urls(self):
        return [
            path("<path:object_id>/operation/<slug:slug>/", self.admin_site.admin_view(self.operation_view),
                 name="cards_card_operation"),
            *super().get_urls(),
        ]

    def _acting_store(self, request, card):
        """Where the operation happens: headquarters (None), or the store staff works in, the card's first."""
        store_ids = user_store_ids(request.user)
        if store_ids is None:
            return None
        for store in (card.location, card.sold_store):
            if store is not None and store.pk in store_ids:
                return store
        return Store.objects.filter(pk__in=store_ids).order_by("code").first()

    def _card_by_number(self, request, card_no: str, field: str) -> Card:
        card = self.get_queryset(request).select_related("product").filter(card_no=(card_no or "").strip()).first()
        if card is None:
            raise CardInvalid(fields={field: [gettext("No card with number %(card_no)s that you may use.")
                                              % {"card_no": card_no}]})
        return card

    def _member_by_number(self, member_no: str) -> Member:
        member = Member.objects.filter(member_no=(member_no or "").strip()).first()
        if member is None:
            raise CardInvalid(fields={"member_no": [gettext("No member with number %(member_no)s.")
                                                    % {"member_no": member_no}]})
        return member

    def _run(self, slug: str, request, card: Card, data: dict, store) -> tuple[str, Card]:
        """Call the service of one operation; return the message for staff and the card to show next."""
        user = request.user
        identity = {name: data.get(name, "") for name in ("holder_name", "id_type", "id_number")}
        note = data.get("note", "")
        names = {"card_no": card.card_no}
        if slug == "report-lost":
            operations.card_report_lost(card=card, actor=user, store=store, note=note, **identity)
            return gettext("Card %(card_no)s is reported lost and frozen.") % names, card
        if slug in ("replace", "exchange"):
            new = self._card_by_number(request, data["new_card_no"], "new_card_no")
            service = operations.card_replace if slug == "replace" else operations.card_exchange
            new = service(card=card, new_card=new, actor=user, store=store, note=note)
            return gettext("The balance of card %(card_no)s is now on card %(new_card_no)s; %(card_no)s is closed.") \
                % {**names, "new_card_no": new.card_no}, new
        if slug == "unfreeze":
            operations.card_unfreeze(card=card, actor=user, store=store, note=note, **identity)
            return gettext("Card %(card_no)s is active again.") % names, card
        if slug == "return":
            operations.card_return_request(
                card=card, requested_by=user, store=store or card.sold_store or card.location, reason=data["reason"],
                bank_account_name=data["bank_account_name"], bank_account_no=data["bank_account_no"],
                bank_name=data["bank_name"], **identity)
            return gettext("The return of card %(card_no)s waits for another person's approval; nothing is paid "
                           "out until then.") % names, card
        if slug == "reactivate":
            operations.card_reactivate(card=card, actor=user, store=store, note=note)
            return gettext("Card %(card_no)s is active again.") % names, card
        if slug == "bind":
            member = self._member_by_number(data["member_no"])
            operations.ecard_bind(card=card, member=member, actor=user, store=store)
            return gettext("E-card %(card_no)s is bound to member %(member_no)s.") % {
                **names, "member_no": member.member_no}, card
        if slug == "transfer":
            member = self._member_by_number(data["member_no"])
            operations.ecard_transfer(card=card, to_member=member, actor=user, store=store, note=note)
            return gettext("E-card %(card_no)s now belongs to member %(member_no)s.") % {
                **names, "member_no": member.member_no}, card
        if slug == "adjust":
            approval = operations.card_adjust_request(card=card, amount=data["amount"], reason=data["reason"],
                                                      requested_by=user, store=store)
        else:
            approval = operations.card_write_off_request(card=card, reason=data["reason"], requested_by=user,
                                                         store=store)
        if approval.status == ApprovalRequest.Status.PENDING:
            return gettext("Approval request #%(id)s for card %(card_no)s waits for another person; the balance "
                           "does not change until then.") % {**names, "id": approval.pk}, card
        return gettext("Request #%(id)s for card %(card_no)s was carried out.") % {**names, "id": approval.pk}, card

    def operation_view(self, request, object_id, slug):
        operation = OPERATIONS.get(slug)
        # The permission is checked before the lookup, so a refusal says nothing about the card.
        if operation is None or not operation.allowed(request.user):
            raise PermissionDenied
        card = self.get_queryset(request).select_related("product", "member", "location", "sold_store").filter(
            pk=unquote(object_id)).first() if str(object_id).isdigit() else None
        if card is None:
            raise Http404
        form = operation.form(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                message, shown = self._run(slug, request, card, form.cleaned_data, self._acting_store(request, card))
            except DomainError as error:
                # Details are shown next to the fields they name; a refusal of the whole operation as a message.
                if error.fields:
                    add_service_error(form, error)
                else:
                    self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, message, messages.SUCCESS)
                return HttpResponseRedirect(_card_url(shown))
        return TemplateResponse(request, "admin/cards/card/operation.html", {
            **self.admin_site.each_context(request),
            "title": f"{operation.label}: {card.card_no}",
            "opts": self.opts,
            "original": card,
            "card": card,
            "cap": card_cap(card),
            "form": form,
            "submit_label": operation.submit,
            "change_url": _card_url(card),
        })

    # --- export ------------------------------------------------------------------------------------

    def export_header(self):
        return [*self.export_labels("card_no", "product", "status", "freeze_reason", "balance", "stock_status",
                                    "location", "sold_store", "member", "holder_name", "activated_at", "expires_at",
                                    "replaced_by"), gettext("created at")]

    def export_row(self, card):
        return [card.card_no, card.product.code, card.get_status_display(),
                card.get_freeze_reason_display() if card.freeze_reason else "", xlsx_money(card.balance),
                card.get_stock_status_display(),
                card.location.code if card.location else "", card.sold_store.code if card.sold_store else "",
                card.member.member_no if card.member else "", mask_name(card.holder_name),
                _local(card.activated_at), _local(card.expires_at),
                card.replaced_by.card_no if card.replaced_by else "", _local(card.created_at)]


# --- the ledger and the other records services write -----------------------------------------------------


class ReadOnlyRecordAdmin(ExactCardNumberSearchMixin, ReadOnlyAdminMixin, ScopedAdminMixin, admin.ModelAdmin):
    """Rows written only by services, on tables that grow with the cards: no full counts, exact search."""

    store_path = "store"
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 50

    @admin.display(description=_("card"), ordering="card__card_no")
    def card_link(self, obj):
        return _card_link(obj.card)

    # A receipt's lines (JSON) as a table, where the page would show the stored JSON.
    def _has_lines(self) -> bool:
        return any(field.name == "lines" for field in self.opts.get_fields())

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "lines_table"] if self._has_lines() and "lines_table" not in fields else fields

    def get_fields(self, request, obj=None):
        fields = [name for name in super().get_fields(request, obj) if name != "lines_table"]
        return ["lines_table" if name == "lines" else name for name in fields]

    @admin.display(description=_("lines"))
    def lines_table(self, obj):
        lines = [line for line in (getattr(obj, "lines", None) or []) if isinstance(line, dict)]
        return _table([gettext("SKU"), gettext("category"), gettext("amount"), gettext("quantity"),
                       gettext("discount")],
                      [(line.get("sku", ""), line.get("category", "") or "-", money_display(line.get("amount")),
                        line.get("quantity", ""), money_display(line.get("discount")) or "-") for line in lines])


@admin.register(CardLedgerEntry)
class CardLedgerEntryAdmin(ExportMixin, ReadOnlyRecordAdmin):
    export_name = "card-ledger"
    change_list_template = "admin/cards/card/change_list.html"
    list_display = ["created_at", "card_link", "kind", "amount", "balance_after", "store", "receipt_no", "operator",
                    "reason"]
    list_filter = ["kind", StoreFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["card", "store", "operator"]
    export_select_related = ["terminal", "legal_entity"]

    def export_header(self):
        return [gettext("time"), gettext("card number"), *self.export_labels(
            "kind", "amount", "balance_after", "store", "terminal", "receipt_no", "legal_entity", "operator",
            "reason")]

    def export_row(self, entry):
        return [_local(entry.created_at), entry.card.card_no, entry.get_kind_display(), xlsx_money(entry.amount),
                xlsx_money(entry.balance_after),
                entry.store.code if entry.store else "", entry.terminal.name if entry.terminal else "",
                entry.receipt_no, entry.legal_entity.code if entry.legal_entity else "",
                entry.operator.username if entry.operator else "", entry.reason]


@admin.register(CardTransaction)
class CardTransactionAdmin(ReadOnlyRecordAdmin):
    list_display = ["created_at", "transaction_id", "kind", "card_link", "amount", "discount", "charged", "refunded",
                    "balance_after", "store", "receipt_no", "reversed_at"]
    list_filter = ["kind", StoreFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["card", "store"]
    search_help_text = _("Exact card number or transaction id.")

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        card_id = Card.objects.filter(card_no=term).values_list("pk", flat=True).first()
        return queryset.filter(Q(transaction_id=term) | Q(card_id=card_id)), False


class ReturnStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return CardReturn.Status.choices

    def queryset(self, request, queryset):
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(CardReturn)
class CardReturnAdmin(ReadOnlyRecordAdmin, BaseAdmin):
    list_display = ["created_at", "card_link", "store", "amount", "holder_name", "holder_id_masked",
                    "bank_account", "status", "approval_link", "paid_at"]
    list_filter = [ReturnStatusFilter, StoreFilter]
    list_select_related = ["card", "store"]
    fields = ["card_link", "store", "amount", "holder_name", "holder_id_type", "holder_id_masked",
              "bank_account_name", "bank_account", "bank_name", "reason", "status", "requested_by", "created_at",
              "paid_at", "approval_link"]
    readonly_fields = fields
    inlines = [ApprovalHistoryInline]

    @admin.display(description=_("bank account number"))
    def bank_account(self, obj):
        return f"****{obj.bank_account_no[-4:]}"

    @admin.display(description=_("approval"))
    def approval_link(self, obj):
        request = requests_of(obj, actions=[operations.CARD_RETURN]).order_by("-pk").first()
        if request is None:
            return "-"
        return format_html('<a href="{}">#{} {}</a>', approval_request_url(request), request.pk,
                           request.get_status_display())


@admin.register(CardEvent)
class CardEventAdmin(ReadOnlyRecordAdmin):
    list_display = ["created_at", "card_link", "kind", "status_before", "status_after", "store", "actor", "note"]
    list_filter = ["kind", StoreFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["card", "store", "actor"]
    readonly_fields = ["status_before", "status_after"]
    _STATUS_SHOWN = {"status_from": "status_before", "status_to": "status_after"}

    def get_fields(self, request, obj=None):
        # The statuses by their labels, where the stored codes would show.
        fields = [name for name in super().get_fields(request, obj) if name not in self.readonly_fields]
        return [self._STATUS_SHOWN.get(name, name) for name in fields]

    @admin.display(description=_("status before"), ordering="status_from")
    def status_before(self, obj):
        return _status_label(obj.status_from)

    @admin.display(description=_("status after"), ordering="status_to")
    def status_after(self, obj):
        return _status_label(obj.status_to)
