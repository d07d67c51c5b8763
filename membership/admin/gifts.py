"""Gifts for points (礼品): the catalogue, stock per store with its history (received, counted, redeemed) and
the redemptions."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, Sum
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.admin import ReadOnlyAdminMixin
from core.errors import DomainError
from core.forms import add_service_error
from membership import services
from membership.admin.common import MemberRowAdmin, ReadOnlyInline
from membership.admin.forms import GiftStockCorrectForm, GiftStockReceiveForm
from membership.errors import GiftInvalid
from membership.models import Gift, GiftRedemption, GiftStock, GiftStockMovement
from stores.admin_base import BaseAdmin, StoreFilter
from stores.models import Store
from stores.queries import scope_queryset, stores_visible_to

PERMISSION_GIFT_STOCK = "membership.change_giftstock"


class GiftStockInline(ReadOnlyInline):
    model = GiftStock
    fields = ["store", "quantity", "stock_link"]
    readonly_fields = fields
    ordering = ["store__code"]

    @admin.display(description=_("stock history"))
    def stock_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:membership_giftstock_change", args=[obj.pk]),
                           gettext("movements"))

    def get_queryset(self, request):
        return scope_queryset(super().get_queryset(request).select_related("store"), request.user, "store")


@admin.register(Gift)
class GiftAdmin(BaseAdmin):
    """The points gift catalogue (礼品); stock per store is received and counted on the gift stock pages."""

    list_display = ["code", "name", "points", "is_active", "stock_total", "stock_link"]
    list_display_links = ["code", "name"]
    list_filter = ["is_active"]
    search_fields = ["=code", "name"]
    inlines = [GiftStockInline]

    def get_queryset(self, request):
        stocks = scope_queryset(GiftStock.objects.all(), request.user, "store").values("pk")
        return super().get_queryset(request).annotate(
            stock_total=Sum("stocks__quantity", filter=Q(stocks__in=stocks))
        )

    @admin.display(description=_("in stock"), ordering="stock_total")
    def stock_total(self, obj):
        return obj.stock_total or 0

    @admin.display(description=_("stock"))
    def stock_link(self, obj):
        url = reverse("admin:membership_giftstock_changelist") + f"?gift__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, gettext("by store"))

    def get_readonly_fields(self, request, obj=None):
        return ["code"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False


class GiftStockMovementInline(ReadOnlyInline):
    model = GiftStockMovement
    fields = ["created_at", "kind", "quantity", "quantity_after", "reason", "operator"]
    readonly_fields = fields
    ordering = ["-created_at", "-pk"]
    verbose_name_plural = _("stock history (latest first)")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("operator")


@admin.register(GiftStock)
class GiftStockAdmin(ReadOnlyAdminMixin, BaseAdmin):
    """Stock of each gift per store. Read-only here: it changes only by receiving, counting or redeeming."""

    store_path = "store"
    list_display = ["store", "gift", "quantity"]
    list_select_related = ["store", "gift"]
    list_filter = [StoreFilter, "gift"]
    inlines = [GiftStockMovementInline]
    change_list_template = "admin/membership/giftstock/change_list.html"
    change_form_template = "admin/membership/giftstock/change_form.html"

    def may_change_stock(self, request) -> bool:
        return request.user.has_perm(PERMISSION_GIFT_STOCK)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("receive/", wrap(self.receive_view), name="membership_giftstock_receive"),
            path("<path:object_id>/correct/", wrap(self.correct_view), name="membership_giftstock_correct"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "may_change_stock": self.may_change_stock(request)}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "may_change_stock": self.may_change_stock(request),
            "correct_url": reverse("admin:membership_giftstock_correct", args=[object_id]),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _page(self, request, title, form, *, obj=None, back_url, submit_label):
        return TemplateResponse(request, "admin/membership/form_page.html", {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "original": obj,
            "form": form,
            "change_url": back_url,
            "submit_label": submit_label,
        })

    def receive_view(self, request):
        """Goods in: a delivery of gifts to a store the user may act for."""
        if not self.may_change_stock(request):
            raise PermissionDenied
        stores = stores_visible_to(request.user).exclude(status=Store.Status.CLOSED).order_by("code")
        initial = {key: request.GET[key] for key in ("gift", "store") if request.GET.get(key, "").isdigit()}
        form = GiftStockReceiveForm(request.POST or None, stores=stores, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.gift_stock_receive(gift=data["gift"], store=data["store"], quantity=data["quantity"],
                                            operator=request.user, reason=data["reason"])
            except DomainError as error:
                add_service_error(form, error)
            else:
                self.message_user(request, gettext("%(quantity)d × %(gift)s received at %(store)s.") % {
                    "quantity": data["quantity"], "gift": data["gift"].name, "store": data["store"].code,
                }, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:membership_giftstock_changelist"))
        return self._page(request, gettext("Receive gift stock"), form,
                          back_url=reverse("admin:membership_giftstock_changelist"),
                          submit_label=gettext("Receive"))

    def correct_view(self, request, object_id):
        """A stock count that differs from the books: the difference is booked as a correction."""
        if not self.may_change_stock(request):
            raise PermissionDenied
        stock = self.get_object(request, unquote(object_id))
        if stock is None:
            raise Http404
        back_url = reverse("admin:membership_giftstock_change", args=[stock.pk])
        form = GiftStockCorrectForm(request.POST or None,
                                    initial={"quantity": stock.quantity, "seen": stock.quantity})
        if request.method == "POST" and form.is_valid():
            counted, seen = form.cleaned_data["quantity"], form.cleaned_data["seen"]
            try:
                if stock.quantity != seen:
                    # A desk gave some out while the shelf was counted: the count must be checked again.
                    raise GiftInvalid(fields={"quantity": [gettext(
                        "The stock changed from %(seen)d to %(now)d while you counted; check the count again."
                    ) % {"seen": seen, "now": stock.quantity}]})
                if counted == seen:
                    raise GiftInvalid(fields={"quantity": [
                        gettext("The count matches the books: nothing to correct.")
                    ]})
                services.gift_stock_adjust(gift=stock.gift, store=stock.store, quantity=counted - seen,
                                           operator=request.user, reason=form.cleaned_data["reason"])
            except DomainError as error:
                add_service_error(form, error)
            else:
                self.message_user(request, gettext("Stock of %(gift)s at %(store)s is now %(quantity)d.") % {
                    "gift": stock.gift.name, "store": stock.store.code, "quantity": counted,
                }, messages.SUCCESS)
                return HttpResponseRedirect(back_url)
        return self._page(request, gettext("Correct the stock of %(stock)s") % {"stock": stock}, form, obj=stock,
                          back_url=back_url, submit_label=gettext("Book the correction"))


@admin.register(GiftRedemption)
class GiftRedemptionAdmin(MemberRowAdmin):
    store_path = "store"
    list_display = ["created_at", "member_link", "gift", "quantity", "points", "store", "operator"]
    list_filter = [StoreFilter, "gift", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["member", "gift", "store", "operator"]
    search_fields = ["member__member_no"]
    search_help_text = _("Exact member number.")
    exact_search_field = "member__member_no"
    sortable_by = ["created_at"]
