"""Missed-receipt claims (补积分): read-only, written only by the claim at the desk or through the POS API; a store's
staff see the claims made at their stores."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from membership.admin.common import MemberRowAdmin
from membership.admin.points import _purchase_link
from membership.models import PurchaseClaim
from stores.admin_base import StoreFilter


@admin.register(PurchaseClaim)
class PurchaseClaimAdmin(MemberRowAdmin):
    """Who claimed which receipt, where, through which channel, and the points it credited."""

    store_path = "store"
    list_display = ["created_at", "store", "purchase_link", "member_link", "channel", "points", "operator"]
    list_filter = ["channel", StoreFilter]
    list_select_related = ["store", "purchase__store", "member", "operator"]
    search_fields = ["member__member_no"]
    search_help_text = _("Exact member number.")
    exact_search_field = "member__member_no"
    sortable_by = ["created_at"]
    readonly_fields = ["purchase_link", "member_link", "channel", "store", "terminal", "operator", "points",
                       "created_at"]
    fields = readonly_fields

    @admin.display(description=_("purchase"))
    def purchase_link(self, obj):
        return _purchase_link(obj)
