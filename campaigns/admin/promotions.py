"""Admin screens for points promotions (营销 → 积分活动) and member days (会员日), with their results.

Headquarters configure them: store staff get neither the menu entries nor the pages, whatever permissions
their role holds. The settings are checked by campaigns.services.promotions; the results on each page and in
its Excel download come from campaigns.queries_promotions.
"""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from campaigns.models import WEEKDAY_CHOICES, MemberDay, PointsPromotion, weekday_set, word_set
from campaigns.queries_promotions import member_day_results, promotion_results
from campaigns.services.promotions import member_day_check, points_promotion_check
from core.admin import local_time, summary_table
from core.errors import DomainError
from core.files import table_xlsx_response, xlsx_money
from core.forms import add_service_error
from core.numbers import points_display
from membership.models.loyalty import PAYMENT_METHOD_LABELS, payment_method_label
from stores.admin_base import BaseAdmin, HeadquartersRecordsMixin


def _table(headers, rows, *, empty=None):
    return summary_table(headers, rows, css_class="campaign-summary", empty=empty)


def _share_text(share) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


class ResultsDownloadMixin:
    """An Excel download of the results on each object's page: /admin/campaigns/<model>/<id>/results.xlsx."""

    results_name = ""

    def get_urls(self):
        return [
            path("<path:object_id>/results.xlsx", self.admin_site.admin_view(self.results_xlsx_view),
                 name=f"{self.opts.app_label}_{self.opts.model_name}_results_xlsx"),
            *super().get_urls(),
        ]

    def results_xlsx_url(self, obj) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_results_xlsx", args=[obj.pk])

    def results_xlsx_view(self, request, object_id):
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        preamble, rows = self.results_sheet(obj)
        return table_xlsx_response(
            filename=f"{self.results_name}-{obj.code}-{timezone.localdate():%Y%m%d}.xlsx",
            title=str(self.opts.verbose_name), preamble=preamble,
            header=[gettext("figure"), gettext("value")], rows=rows,
        )

    def results_sheet(self, obj) -> tuple[list, list]:
        raise NotImplementedError

    def download_link(self, obj):
        return format_html('<p><a class="button" href="{}">{}</a></p>', self.results_xlsx_url(obj),
                           gettext("Download the results (Excel)"))


def _period_text(obj) -> str:
    return f"{obj.starts_on:%Y-%m-%d} – {obj.ends_on:%Y-%m-%d}"


# --- points promotions ------------------------------------------------------------------------------------


def _payment_method_choices(current: str) -> list[tuple[str, str]]:
    choices = [(code, label) for code, label in PAYMENT_METHOD_LABELS.items()]
    known = set(PAYMENT_METHOD_LABELS)
    # Codes a till sends that the list does not know stay choosable, so saving the page keeps them.
    choices.extend((code, code) for code in sorted(word_set(current)) if code not in known)
    return choices


class PointsPromotionForm(forms.ModelForm):
    weekdays = forms.TypedMultipleChoiceField(
        label=_("weekdays"), choices=WEEKDAY_CHOICES, coerce=int, required=False,
        widget=forms.CheckboxSelectMultiple, help_text=_("None ticked: every day."),
    )
    payment_methods = forms.MultipleChoiceField(
        label=_("payment methods"), choices=(), required=False, widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: any payment method."),
    )

    class Meta:
        model = PointsPromotion
        fields = ["code", "name", "kind", "is_active", "member_day", "starts_on", "ends_on", "weekdays", "stores",
                  "formats", "tiers", "payment_methods", "multiplier", "stacking", "cash_points", "cash_value"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.payment_methods if self.instance.pk else ""
        self.fields["payment_methods"].choices = _payment_method_choices(current)
        if self.instance.pk:
            self.initial["weekdays"] = sorted(weekday_set(self.instance.weekdays))
            self.initial["payment_methods"] = sorted(word_set(self.instance.payment_methods))

    def clean_weekdays(self):
        return ",".join(str(day) for day in sorted(set(self.cleaned_data["weekdays"])))

    def clean_payment_methods(self):
        return ",".join(self.cleaned_data["payment_methods"])

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            points_promotion_check(
                kind=cleaned.get("kind"), starts_on=cleaned.get("starts_on"), ends_on=cleaned.get("ends_on"),
                multiplier=cleaned.get("multiplier"), cash_points=cleaned.get("cash_points"),
                cash_value=cleaned.get("cash_value"), weekdays=cleaned.get("weekdays", ""),
                payment_methods=cleaned.get("payment_methods", ""),
            )
        except DomainError as error:
            add_service_error(self, error)
        return cleaned


@admin.register(PointsPromotion)
class PointsPromotionAdmin(HeadquartersRecordsMixin, ResultsDownloadMixin, BaseAdmin):
    """Points multipliers and points-to-cash days: where and when they run, and what they gave."""

    form = PointsPromotionForm
    results_name = "points-promotion"
    list_display = ["code", "name", "kind", "rate_shown", "starts_on", "ends_on", "weekdays_shown",
                    "payment_methods_shown", "member_day", "is_active"]
    list_display_links = ["code", "name"]
    list_filter = ["kind", "is_active", "stacking", "member_day"]
    list_select_related = ["member_day"]
    search_fields = ["=code", "name"]
    filter_horizontal = ["stores", "formats", "tiers"]
    fieldsets = [
        (None, {"fields": ["code", "name", "kind", "is_active", "member_day"]}),
        (_("when"), {"fields": ["starts_on", "ends_on", "weekdays"]}),
        (_("where and for whom"), {
            "fields": ["stores", "formats", "tiers", "payment_methods"],
            "description": _("A store takes part when it is listed, or when no store is listed and its format is "
                             "(or no format is)."),
        }),
        (_("points multiplier"), {"fields": ["multiplier", "stacking"]}),
        (_("points-to-cash day"), {"fields": ["cash_points", "cash_value"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.append((_("results"), {"fields": ["results"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        # Tills, ledger reasons and results know a promotion by its code and kind: they stay as created.
        return ["code", "kind", "results"] if obj is not None else []

    @admin.display(description=_("multiplier or rate"))
    def rate_shown(self, obj):
        if obj.kind == PointsPromotion.Kind.CASH_RATE:
            return gettext("%(points)s points = %(value)s yuan") % {"points": obj.cash_points,
                                                                      "value": obj.cash_value}
        return f"x{obj.multiplier} ({obj.get_stacking_display()})"

    @admin.display(description=_("weekdays"))
    def weekdays_shown(self, obj):
        days = dict(WEEKDAY_CHOICES)
        return ", ".join(str(days[day]) for day in sorted(weekday_set(obj.weekdays)) if day in days) or gettext(
            "every day")

    @admin.display(description=_("payment methods"))
    def payment_methods_shown(self, obj):
        return ", ".join(payment_method_label(code) for code in sorted(word_set(obj.payment_methods))) or gettext(
            "any")

    def _result_rows(self, obj) -> list[tuple[str, object]]:
        results = promotion_results(obj)
        if obj.kind == PointsPromotion.Kind.CASH_RATE:
            return [
                (gettext("Cash-outs at its rate"), results["cash_outs"]),
                (gettext("Members"), results["members"]),
                (gettext("Points turned into cash"), results["points_cashed"]),
            ]
        return [
            (gettext("Purchases it raised"), results["purchases"]),
            (gettext("Members"), results["members"]),
            (gettext("Extra points given"), results["extra_points"]),
            (gettext("Cash value of the extra points"), results["extra_points_value"]),
            (gettext("Sales on those purchases"), results["sales"]),
            (gettext("Returned of those sales"), results["returned"]),
        ]

    @admin.display(description=_("results"))
    def results(self, obj):
        rows = [(label, points_display(value) if isinstance(value, int) else value)
                for label, value in self._result_rows(obj)]
        return format_html("{}{}", _table([gettext("figure"), gettext("value")], rows), self.download_link(obj))

    def results_sheet(self, obj):
        preamble = [[obj.name, obj.code], [gettext("period"), _period_text(obj)],
                    [gettext("as of"), local_time(timezone.now())]]
        rows = [[label, xlsx_money(value) if not isinstance(value, int) else value]
                for label, value in self._result_rows(obj)]
        return preamble, rows


# --- member days ---------------------------------------------------------------------------------------------


class MemberDayForm(forms.ModelForm):
    class Meta:
        model = MemberDay
        fields = ["code", "name", "starts_on", "ends_on", "stores", "description"]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            member_day_check(starts_on=cleaned.get("starts_on"), ends_on=cleaned.get("ends_on"))
        except DomainError as error:
            add_service_error(self, error)
        return cleaned


@admin.register(MemberDay)
class MemberDayAdmin(HeadquartersRecordsMixin, ResultsDownloadMixin, BaseAdmin):
    """Member-only sale days: their days and stores, the promotions and coupons that belong to them, and what
    they brought (new members, members who bought, member share of sales)."""

    form = MemberDayForm
    results_name = "member-day"
    list_display = ["code", "name", "starts_on", "ends_on", "stores_shown", "created_by"]
    list_display_links = ["code", "name"]
    list_select_related = ["created_by"]
    search_fields = ["=code", "name"]
    date_hierarchy = "starts_on"
    filter_horizontal = ["stores"]
    fieldsets = [
        (None, {"fields": ["code", "name", "starts_on", "ends_on", "stores", "description"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("stores")

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None:
            fieldsets.append((_("results"), {"fields": ["results", "promotions_and_coupons"]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return ["code", "results", "promotions_and_coupons"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description=_("participating stores"))
    def stores_shown(self, obj):
        codes = sorted(store.code for store in obj.stores.all())
        return ", ".join(codes) if codes else gettext("every store")

    def _result_rows(self, results) -> list[tuple[str, object]]:
        return [
            (gettext("New members (joined during it at its stores)"), results["new_members"]),
            (gettext("Members who bought"), results["buyers"]),
            (gettext("Receipts"), results["receipts"]),
            (gettext("Receipts of members"), results["member_receipts"]),
            (gettext("Member sales"), results["member_sales"]),
            (gettext("All sales"), results["all_sales"]),
            (gettext("Member share of sales"), _share_text(results["member_share"])),
            (gettext("Extra points from its promotions"), results["extra_points"]),
            (gettext("Cash value of the extra points"), results["extra_points_value"]),
        ]

    @admin.display(description=_("results"))
    def results(self, obj):
        rows = [(label, points_display(value) if isinstance(value, int) else value)
                for label, value in self._result_rows(member_day_results(obj))]
        return format_html("{}{}", _table([gettext("figure"), gettext("value")], rows), self.download_link(obj))

    @admin.display(description=_("promotions and coupons"))
    def promotions_and_coupons(self, obj):
        rows = []
        for promotion in obj.promotions.order_by("starts_on", "pk"):
            rows.append((gettext("points promotion"), _link(promotion), _period_text(promotion),
                         gettext("active") if promotion.is_active else gettext("inactive")))
        for template in obj.coupon_templates.order_by("code"):
            rows.append((gettext("coupon template"), _link(template), "", template.get_status_display()))
        return _table([gettext("kind"), gettext("name"), gettext("period"), gettext("status")], rows,
                      empty=gettext("No promotion or coupon belongs to this member day yet: choose it on their "
                                    "pages."))

    def results_sheet(self, obj):
        results = member_day_results(obj)
        preamble = [[obj.name, obj.code], [gettext("period"), _period_text(obj)],
                    [gettext("participating stores"), ", ".join(results["store_codes"]) or gettext("every store")],
                    [gettext("as of"), local_time(timezone.now())]]
        rows = [[label, value if isinstance(value, (int, str)) else xlsx_money(value)]
                for label, value in self._result_rows(results)]
        return preamble, rows


def _link(obj):
    try:
        url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:  # a model without a screen is named without a link
        return str(obj)
    return format_html('<a href="{}">{}</a>', url, obj)

