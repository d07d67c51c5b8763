"""Admin screens for partner channels (会员 → 合作方, 联名会员渠道): banks, telecoms and car brands whose customers
register with the partner's registration code.

Headquarters keep the partners and read what each brought: members registered through it, those who converted
(made at least one purchase after registering) and their net sales, on the list, on each partner's page (with a
table per month) and in Excel. The figures come from membership.queries_partners (SQL aggregates); store staff
get neither the menu entry nor the pages, since the figures span every store.
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.admin import local_time, summary_table
from core.files import table_xlsx_response, xlsx_money
from core.numbers import money_display
from membership.models import Partner
from membership.queries_partners import partner_figures, partner_months, partners_with_figures
from stores.admin_base import BaseAdmin, HeadquartersRecordsMixin


def _share_text(share) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def _month_text(month) -> str:
    return f"{month:%Y-%m}"


def _month_headers() -> list[str]:
    return [gettext("month"), gettext("new members"), gettext("converted (first purchase)"),
            gettext("members who bought"), gettext("sales (net)")]


@admin.register(Partner)
class PartnerAdmin(HeadquartersRecordsMixin, BaseAdmin):
    """Partners with their registration codes, and what their members brought."""

    list_display = ["code", "name", "kind", "registration_code", "is_active", "members_shown", "converted_shown",
                    "sales_shown"]
    list_display_links = ["code", "name"]
    list_filter = ["kind", "is_active"]
    search_fields = ["=code", "name", "=registration_code"]
    change_list_template = "admin/membership/partner/change_list.html"
    fieldsets = [
        (None, {"fields": ["code", "name", "kind", "registration_code", "is_active", "notes"]}),
    ]

    def get_queryset(self, request):
        return partners_with_figures(super().get_queryset(request))

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.append((_("what its members brought"), {"fields": ["figures", "months"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        # Members and reports know a partner by its code: it stays as created.
        return ["code", "figures", "months"] if obj is not None else []

    # --- list columns ---------------------------------------------------------------------

    @admin.display(description=_("members"), ordering="members_count")
    def members_shown(self, obj):
        return obj.members_count

    @admin.display(description=_("converted"), ordering="converted_count")
    def converted_shown(self, obj):
        return obj.converted_count

    @admin.display(description=_("sales (net)"), ordering="sales")
    def sales_shown(self, obj):
        return money_display(obj.sales)

    # --- change page ----------------------------------------------------------------------

    def _figure_rows(self, obj) -> list[tuple[str, object]]:
        figures = partner_figures(partner=obj)
        return [
            (gettext("Members registered through it"), figures["members"]),
            (gettext("Converted (made at least one purchase after registering)"), figures["converted"]),
            (gettext("Conversion"), _share_text(figures["conversion"])),
            (gettext("Their sales (net, after registering)"), figures["sales"]),
        ]

    @admin.display(description=_("figures"))
    def figures(self, obj):
        table = summary_table([gettext("figure"), gettext("value")], self._figure_rows(obj),
                              css_class="member-summary")
        return format_html('{}<p><a class="button" href="{}">{}</a></p>', table, self.xlsx_url(obj),
                           gettext("Download (Excel)"))

    @admin.display(description=_("per month"))
    def months(self, obj):
        rows = [(_month_text(row.month), row.registered, row.converted, row.buyers, row.sales)
                for row in partner_months(partner=obj)]
        return summary_table(_month_headers(), rows, css_class="member-summary",
                             empty=gettext("No member has registered through this partner yet."))

    # --- Excel ----------------------------------------------------------------------------

    def get_urls(self):
        return [
            path("partners.xlsx", self.admin_site.admin_view(self.all_xlsx_view),
                 name="membership_partner_all_xlsx"),
            path("<path:object_id>/partner.xlsx", self.admin_site.admin_view(self.xlsx_view),
                 name="membership_partner_xlsx"),
            *super().get_urls(),
        ]

    def xlsx_url(self, obj) -> str:
        return reverse("admin:membership_partner_xlsx", args=[obj.pk])

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "all_xlsx_url": reverse("admin:membership_partner_all_xlsx")}
        return super().changelist_view(request, extra_context)

    def xlsx_view(self, request, object_id):
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        preamble = [
            [gettext("partner"), obj.code, obj.name],
            [gettext("kind"), obj.get_kind_display()],
            [gettext("registration code"), obj.registration_code],
            [gettext("as of"), local_time(timezone.now())],
            [],
            *([label, value if isinstance(value, (int, str)) else xlsx_money(value)]
              for label, value in self._figure_rows(obj)),
        ]
        rows = ([_month_text(row.month), row.registered, row.converted, row.buyers, xlsx_money(row.sales)]
                for row in partner_months(partner=obj))
        return table_xlsx_response(
            filename=f"partner-{obj.code}-{timezone.localdate():%Y%m%d}.xlsx", title=obj.code,
            preamble=preamble, header=_month_headers(), rows=rows,
        )

    def all_xlsx_view(self, request):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        partners = self.get_queryset(request).order_by("code")
        header = [gettext("code"), gettext("name"), gettext("kind"), gettext("registration code"),
                  gettext("active"), gettext("members"), gettext("converted"), gettext("conversion"),
                  gettext("sales (net)")]
        rows = ([partner.code, partner.name, partner.get_kind_display(), partner.registration_code,
                 gettext("yes") if partner.is_active else gettext("no"), partner.members_count,
                 partner.converted_count,
                 _share_text(partner.converted_count / partner.members_count if partner.members_count else None),
                 xlsx_money(partner.sales)]
                for partner in partners)
        return table_xlsx_response(
            filename=f"partners-{timezone.localdate():%Y%m%d}.xlsx", title=gettext("partners"),
            preamble=[[gettext("Partner channels"), gettext("as of"), local_time(timezone.now())]],
            header=header, rows=rows,
        )
