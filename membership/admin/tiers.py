"""Tiers and the points rules: tier configuration, the points policy, earn rules per format, paid tier terms
sold; and the tier part of a member's page (earned and paid tier, tier changes, selling a paid tier)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.admin import local_time
from core.errors import DomainError
from core.forms import add_service_error
from core.numbers import money_display
from membership import services
from membership.admin.common import MemberPagesMixin, MemberRowAdmin, member_table, member_url
from membership.admin.forms import PaidTierAdminForm, PointsPolicyForm, TierForm
from membership.forms import paid_tiers_on_sale
from membership.models import EarnRule, PointsPolicy, Tier, TierSubscription
from stores.admin_base import BaseAdmin, StoreFilter
from stores.models import Store
from stores.queries import stores_visible_to, user_is_hq

RECENT_TIER_CHANGES = 20
PERMISSION_SELL_PAID_TIER = "membership.sell_paid_tier"


class MemberTiersMixin(MemberPagesMixin):
    """The tier rows of a member's page and the sale of a paid tier (Plus) from it."""

    @admin.display(description=_("earned tier"))
    def earned_tier(self, obj):
        text = f"{obj.tier.name} ({obj.tier.code})"
        if obj.tier_downgrade_on:
            return format_html("{} · <strong>{}</strong>", text, gettext("downgrade due on %(date)s")
                               % {"date": f"{obj.tier_downgrade_on:%Y-%m-%d}"})
        return text

    @admin.display(description=_("paid tier"))
    def paid_tier_shown(self, obj):
        if obj.paid_tier is None:
            return "-"
        until = obj.paid_tier_until
        if until is not None and until < timezone.localdate():
            return gettext("%(tier)s, ended on %(date)s") % {"tier": obj.paid_tier.name, "date": f"{until:%Y-%m-%d}"}
        return gettext("%(tier)s until %(date)s") % {
            "tier": obj.paid_tier.name, "date": f"{until:%Y-%m-%d}" if until else "-",
        }

    @admin.display(description=_("tier changes"))
    def tier_history(self, obj):
        changes = list(obj.tier_changes.select_related("from_tier", "to_tier", "actor")
                       .order_by("-created_at", "-pk")[:RECENT_TIER_CHANGES])
        if not changes:
            return gettext("No tier changes.")
        url = reverse("admin:membership_tierchange_changelist") + f"?member__id__exact={obj.pk}"
        return member_table(
            [gettext("time"), gettext("from tier"), gettext("to tier"), gettext("reason"), gettext("qualifying spend"),
             gettext("note"), gettext("by")],
            [(local_time(change.created_at), change.from_tier or "-", change.to_tier or "-",
              change.get_reason_display(), change.spend if change.spend is not None else "-", change.note or "-",
              change.actor or "-") for change in changes],
            footer=format_html('<a href="{}">{}</a>', url, gettext("Every tier change of this member")),
        )

    def _paid_tier_sellable(self, request, obj) -> bool:
        return obj.status in services.LIVE_STATUSES and request.user.has_perm(PERMISSION_SELL_PAID_TIER)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/paid-tier/", wrap(self.paid_tier_view), name="membership_member_paid_tier"),
            *super().get_urls(),
        ]

    def paid_tier_view(self, request, object_id):
        """Sell or renew a paid tier (Plus): the fee and the new end date are shown before confirming."""
        if not request.user.has_perm(PERMISSION_SELL_PAID_TIER):
            raise PermissionDenied
        member = self._member_for(request, object_id, self._paid_tier_sellable)
        stores = stores_visible_to(request.user).exclude(status=Store.Status.CLOSED).order_by("code")
        form = PaidTierAdminForm(request.POST or None, tiers=paid_tiers_on_sale(), stores=stores,
                                 store_required=not user_is_hq(request.user))
        if request.method == "POST" and form.is_valid():
            try:
                subscription = services.paid_tier_buy(
                    member=member, tier=form.cleaned_data["tier"], store=form.cleaned_data.get("store"),
                    operator=request.user, payment_method=form.cleaned_data["payment_method"],
                )
            except DomainError as error:
                add_service_error(form, error)
            else:
                self.message_user(request, gettext(
                    "%(member)s: %(tier)s %(kind)s, fee %(fee)s, valid until %(ends_on)s."
                ) % {"member": member.member_no, "tier": subscription.tier.name,
                     "kind": subscription.get_kind_display(), "fee": money_display(subscription.fee),
                     "ends_on": f"{subscription.ends_on:%Y-%m-%d}"}, messages.SUCCESS)
                return HttpResponseRedirect(member_url(member))
        offers = form.offers(member=member, today=timezone.localdate())
        return self._page(request, "admin/membership/member/paid_tier.html",
                          gettext("Sell or renew a paid tier for %(member)s") % {"member": member}, member,
                          form=form, offers=offers, change_url=member_url(member),
                          submit_label=gettext("Confirm the sale"))


@admin.register(Tier)
class TierAdmin(BaseAdmin):
    """Tier configuration: what earns each tier, what it gives, and what a paid tier costs (history kept)."""

    form = TierForm
    list_display = ["code", "name", "kind", "rank", "threshold", "points_multiplier", "discount_rate", "discount_text",
                    "grace_days", "fee", "term_months", "is_active"]
    list_display_links = ["code", "name"]
    list_filter = ["kind", "is_active"]
    search_fields = ["=code", "name"]
    fieldsets = [
        (None, {"fields": ["code", "name", "kind", "rank", "is_active"]}),
        (_("benefits"), {"fields": ["points_multiplier", "discount_rate", "discount_text", "benefits"]}),
        (_("earned tiers"), {"fields": ["threshold", "grace_days"],
                             "description": _("The spend window is set in the points policy.")}),
        (_("paid tiers"), {"fields": ["fee", "term_months"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # POS systems and the CONTRACT know tiers by code: it stays as created.
        return ["code"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PointsPolicy)
class PointsPolicyAdmin(BaseAdmin):
    """The group's one points policy: the list opens the row itself; it is never added twice or deleted."""

    form = PointsPolicyForm
    list_display = ["__str__", "cash_points", "cash_value", "cash_min_points", "cash_max_points", "expiry_enabled",
                    "expiry_years", "expiry_notice_days", "tier_window_months", "updated_at"]
    fieldsets = [
        (_("points to cash"), {"fields": ["cash_points", "cash_value", "cash_min_points", "cash_max_points"]}),
        (_("expiry"), {"fields": ["expiry_enabled", "expiry_years", "expiry_notice_days"]}),
        (_("tiers"), {"fields": ["tier_window_months"]}),
    ]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not PointsPolicy.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        policy = PointsPolicy.objects.first()
        if policy is not None and self.has_view_or_change_permission(request, policy):
            return HttpResponseRedirect(reverse("admin:membership_pointspolicy_change", args=[policy.pk]))
        return super().changelist_view(request, extra_context)


@admin.register(EarnRule)
class EarnRuleAdmin(BaseAdmin):
    """Points per format; a format without a rule earns 1 point per yuan with no exclusions."""

    list_display = ["format", "amount_per_point", "excluded_list", "pending_days", "is_active"]
    list_select_related = ["format"]
    list_filter = ["is_active"]

    @admin.display(description=_("excluded categories"))
    def excluded_list(self, obj):
        return ", ".join(sorted(obj.excluded_category_set)) or "-"

    def get_readonly_fields(self, request, obj=None):
        return ["format"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TierSubscription)
class TierSubscriptionAdmin(MemberRowAdmin):
    """Paid tier terms sold and renewed, with their fee and the selling store."""

    store_path = "store"
    list_display = ["created_at", "member_link", "tier", "kind", "starts_on", "ends_on", "fee",
                    "payment_method_shown", "store", "operator"]
    list_filter = ["tier", "kind", StoreFilter, ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["member", "tier", "store", "operator"]
    search_fields = ["member__member_no"]
    search_help_text = _("Exact member number.")
    exact_search_field = "member__member_no"
    sortable_by = ["created_at", "ends_on"]
