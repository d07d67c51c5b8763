"""Tier benefits (权益): the catalogue with each tier's quota, the usage ledger, and what a member has left."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from membership.admin.common import MemberRowAdmin, member_table
from membership.models import Benefit, BenefitQuota, BenefitUse
from membership.services.benefits import member_benefits
from stores.admin_base import BaseAdmin, StoreFilter
from stores.queries import user_is_hq


class HeadquartersEditsMixin:
    """Headquarters change the catalogue; store staff with the view permission read it."""

    def has_add_permission(self, request, *args, **kwargs):
        return user_is_hq(request.user) and super().has_add_permission(request, *args, **kwargs)

    def has_change_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_delete_permission(request, obj)


class BenefitQuotaInline(HeadquartersEditsMixin, admin.TabularInline):
    model = BenefitQuota
    fields = ["tier", "quantity", "period"]
    extra = 0
    ordering = ["tier__rank", "tier__code"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tier")


@admin.register(Benefit)
class BenefitAdmin(HeadquartersEditsMixin, BaseAdmin):
    """The benefit catalogue and each tier's quota per period; a benefit in use is switched off, not deleted."""

    list_display = ["code", "name", "unit", "quotas_shown", "is_active", "uses_link"]
    list_display_links = ["code", "name"]
    list_filter = ["is_active", "unit"]
    search_fields = ["=code", "name"]
    fields = ["code", "name", "unit", "description", "is_active"]
    inlines = [BenefitQuotaInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("quotas__tier")

    @admin.display(description=_("quotas"))
    def quotas_shown(self, obj):
        quotas = sorted(obj.quotas.all(), key=lambda quota: (quota.tier.rank, quota.tier.code))
        return "; ".join(
            f"{quota.tier.name} {quota.get_period_display()} {quota.quantity} {obj.get_unit_display()}"
            for quota in quotas
        ) or "-"

    @admin.display(description=_("uses"))
    def uses_link(self, obj):
        url = reverse("admin:membership_benefituse_changelist") + f"?benefit__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, gettext("usage ledger"))

    def get_readonly_fields(self, request, obj=None):
        # Tills name a benefit by its code: it stays as created.
        return ["code"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(BenefitUse)
class BenefitUseAdmin(MemberRowAdmin):
    """The usage ledger: each use at a desk or a till and each use given back, by the store it was recorded at."""

    store_path = "store"
    list_display = ["created_at", "member_link", "benefit", "quantity", "period_start", "quota", "store", "terminal",
                    "receipt_no", "operator", "note"]
    list_filter = [StoreFilter, "benefit", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["member", "benefit", "store", "terminal", "operator"]
    search_fields = ["member__member_no"]
    search_help_text = _("Exact member number.")
    exact_search_field = "member__member_no"
    sortable_by = ["created_at"]


class MemberBenefitsMixin:
    """The member page's row of benefits: each quota of this period with what was used and what is left."""

    @admin.display(description=_("benefits"))
    def benefits_remaining(self, obj):
        balances = member_benefits(obj)
        url = reverse("admin:membership_benefituse_changelist") + f"?q={obj.member_no}"
        return member_table(
            [gettext("benefit"), gettext("quota"), gettext("period"), gettext("used"), gettext("left")],
            [(balance.benefit.name, f"{balance.quota} {balance.benefit.get_unit_display()}",
              BenefitQuota.Period(balance.period).label, balance.used, balance.remaining) for balance in balances],
            footer=format_html('<a href="{}">{}</a>', url, gettext("Every benefit use of this member")),
            empty=gettext("The member's tiers give no benefits."),
        )
