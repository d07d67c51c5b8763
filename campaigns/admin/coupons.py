"""Admin screens for coupons (营销 → 券模板): templates with their SKU lists, issues and results, the issued coupons,
their redemptions and the after-payment rules.

Thin: buttons, actions and uploads call campaigns.services (templates.py for the lifecycle and SKU lists,
issuing.py and coupons.py for coupons) and show their refusals as messages. Templates, coupons and rules are
headquarters' campaigns: store staff see none of them, whatever permissions their role holds (a coupon belongs to a
member, not to a store). Redemptions happen at a store's till and are store-scoped: store staff who may read them see
their own stores' only. A coupon's code is its value, so lists and exports show it masked; the codes themselves
leave only as the bulk-code file for printing, for headquarters staff who may change templates.
"""

import os
import tempfile

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from approvals.admin import ApprovalHistoryInline, approval_outcome_message
from campaigns import queries
from campaigns.models import Coupon, CouponBatch, CouponRedemption, CouponRule, CouponSku, CouponTemplate, weekday_set
from campaigns.services import templates
from campaigns.services.coupons import coupon_void
from campaigns.services.issuing import coupons_issue, coupons_issue_from_file
from core.admin import (
    CappedCountPaginator,
    ReadOnlyAdminMixin,
    ServiceCallsMixin,
    ServiceRefusalMixin,
    change_page,
    local_time,
    summary_table,
)
from core.errors import DomainError
from core.files import table_xlsx_response, xlsx_money
from core.forms import add_service_error
from core.http import client_ip
from core.models import PersonalDataAccess
from core.pii import mask_name
from core.services import personal_data_access_log
from membership.models import Member
from stores.admin_base import BaseAdmin, HeadquartersRecordsMixin, StoreFilter
from stores.queries import user_is_hq

TEMPLATES = "admin/campaigns/coupons"
PERMISSION_CHANGE_TEMPLATE = "campaigns.change_coupontemplate"
PERMISSION_ISSUE = "campaigns.add_coupon"
PERMISSION_VOID = "campaigns.change_coupon"
# The bulk-code file holds the codes themselves (whoever holds one can use it): a permission of its own.
PERMISSION_EXPORT_CODES = "campaigns.export_coupon_codes"
MAX_BULK_CODES = 100_000
# The void action calls the service once per coupon: a larger set is a template to pause or end.
MAX_ACTION_COUPONS = 5000
SKUS_SHOWN = 20


def code_masked(code: str) -> str:
    """A coupon code as lists and exports show it: only its last 4 characters."""
    return "****" + code[-4:] if code else ""


# --- templates ------------------------------------------------------------------------------------------------

BASICS = ["code", "name", "kind", "description", "member_day", "funded_by"]
VALUE = ["amount", "percent", "max_discount", "threshold", "repeat", "gift_sku"]
WHERE = ["formats", "stores", "min_basket", "sku_scope", "categories_included", "categories_excluded"]
VALIDITY = ["valid_from", "valid_until", "valid_days"]
LIMITS = ["per_member_limit", "total_quantity", "total_budget"]
COMBINING = ["combines_with_tier_discount", "combines_with_brand_discount"]
ISSUING = ["claim_code", "code_prefix"]
TERMS = [*BASICS, *VALUE, *WHERE, *VALIDITY, *LIMITS, *COMBINING, *ISSUING]
STATE = ["status", "issued_count", "redeemed_count", "voided_count", "expired_count", "discount_spent",
         "created_by", "created_at"]


class CouponTemplateForm(forms.ModelForm):
    class Meta:
        model = CouponTemplate
        fields = TERMS
        help_texts = {
            "code": _("2 to 20 capital letters, digits or underscores, e.g. DEPT_W200_30."),
        }

    def _upper(self, name: str):
        value = self.cleaned_data.get(name)
        return value.strip().upper() if isinstance(value, str) else value

    def clean_code(self):
        return self._upper("code")

    def clean_code_prefix(self):
        return self._upper("code_prefix")

    def clean_claim_code(self):
        return self._upper("claim_code") or None

    def clean(self):
        cleaned = super().clean()
        if "kind" not in self.fields:  # a running template: its terms are read-only
            return cleaned
        values = {name: cleaned.get(name, getattr(self.instance, name, None)) for name in TERMS
                  if name not in ("formats", "stores")}
        try:
            templates.coupon_template_validate(values=values)
        except DomainError as error:
            for name, texts in (error.fields or {}).items():
                if name in self.fields and name not in self.errors:
                    self.add_error(name, texts)
        return cleaned


class CouponBatchInline(admin.TabularInline):
    """The template's issues, newest first; bulk codes have their file for printing."""

    model = CouponBatch
    fields = ["created_at", "channel", "quantity", "source_name", "created_by", "codes_link"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = _("issues")
    max_num = 0

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by").order_by("-created_at", "-pk")

    @admin.display(description=_("code file"))
    def codes_link(self, obj):
        if obj.pk is None or obj.channel != CouponBatch.Channel.BULK:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:campaigns_coupontemplate_codes",
                                                          args=[obj.template_id, obj.pk]), gettext("Excel"))


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("reason"), max_length=200,
                             widget=forms.TextInput(attrs={"size": 60}))


class SkuUploadForm(forms.Form):
    file = forms.FileField(
        label=_("SKU file"),
        help_text=_("Excel (.xlsx) or CSV with a column sku (SKU or 商品编码), one SKU per row under the header row. "
                    "It replaces the template's list."),
    )


class IssueToMembersForm(forms.Form):
    file = forms.FileField(
        label=_("member file"),
        help_text=_("Excel (.xlsx) or CSV with a column member_no (会员号), one member number per row under the "
                    "header row."),
    )
    skip_invalid = forms.BooleanField(
        label=_("skip invalid rows"), required=False,
        help_text=_("Issue to the members found and leave out unknown or inactive numbers; otherwise a file with "
                    "one bad row issues nothing."),
    )


class IssueBulkForm(forms.Form):
    quantity = forms.IntegerField(
        label=_("number of codes"), min_value=1, max_value=MAX_BULK_CODES,
        help_text=_("Codes anyone holding one may use (printed vouchers, partners). Each is unique and cannot be "
                    "guessed; it starts with the template's code prefix."),
    )


def _results_rows(results: dict) -> list[tuple]:
    """The results as (label, value, is money) rows, for the template's page and its Excel."""
    rate = results.get("redemption_rate")
    return [
        (gettext("issued"), results.get("issued", 0), False),
        (gettext("claimed with the public code"), results.get("claimed", 0), False),
        (gettext("redeemed"), results.get("redeemed", 0), False),
        (gettext("redemption rate"), "-" if rate is None else f"{rate * 100:.1f}%", False),
        (gettext("discount cost"), results.get("discount_cost"), True),
        (gettext("sales on redeeming receipts"), results.get("sales", results.get("sales_on_redeeming_receipts")),
         True),
    ]


@admin.register(CouponTemplate)
class CouponTemplateAdmin(HeadquartersRecordsMixin, ServiceCallsMixin, ServiceRefusalMixin, BaseAdmin):
    form = CouponTemplateForm
    change_form_template = f"{TEMPLATES}/template_change_form.html"
    list_display = ["code", "name", "kind", "discount_text", "status", "valid_from", "valid_until", "valid_days",
                    "issued_count", "redeemed_count", "discount_spent", "total_budget"]
    list_filter = ["status", "kind", "formats"]
    search_fields = ["code", "name", "=claim_code"]
    filter_horizontal = ["formats", "stores"]
    actions = ["start_selected", "pause_selected", "end_selected"]

    @admin.display(description=_("discount"))
    def discount_text(self, obj):
        return queries.coupon_discount_text(obj)

    @admin.display(description=_("SKU list"))
    def sku_list(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        count = obj.skus.count()
        if not count:
            return gettext("No SKUs listed.")
        shown = list(CouponSku.objects.filter(template=obj).order_by("sku").values_list("sku", flat=True)[:SKUS_SHOWN])
        more = ngettext(" and %(count)s more", " and %(count)s more", count - len(shown)) % {
            "count": count - len(shown)} if count > len(shown) else ""
        return format_html('{}: {}{} · <a href="{}">{}</a>',
                           ngettext("%(count)s SKU", "%(count)s SKUs", count) % {"count": count},
                           ", ".join(shown), more,
                           reverse("admin:campaigns_coupontemplate_skus_export", args=[obj.pk]),
                           gettext("download as Excel"))

    @admin.display(description=_("results"))
    def results(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        rows = [(label, value) for label, value, _money in _results_rows(queries.coupon_template_results(obj))]
        footer = format_html('<a href="{}">{}</a>', reverse("admin:campaigns_coupontemplate_results_export",
                                                            args=[obj.pk]), gettext("Download the results as Excel"))
        return summary_table([gettext("figure"), gettext("value")], rows, css_class="coupon-results", footer=footer)

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": BASICS if obj is None else [*BASICS, "status"]}),
            (_("value"), {"fields": VALUE,
                          "description": _("Amount off: the amount. Percent off: the percent and an optional cap. "
                                           "Spend X save Y (满减): the threshold X and the amount Y. Item coupon: the "
                                           "amount off the listed SKUs. Gift coupon: the gift's SKU.")}),
            (_("where it applies"), {"fields": WHERE if obj is None else [*WHERE, "sku_list"]}),
            (_("validity"), {"fields": VALIDITY,
                             "description": _("Fixed dates, or a number of days from each coupon's issue.")}),
            (_("limits"), {"fields": LIMITS}),
            (_("combining"), {"fields": COMBINING}),
            (_("issuing"), {"fields": ISSUING}),
        ]
        if obj is not None:
            fieldsets.append((_("results"), {"fields": ["results", *STATE[1:]]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        extra = ["sku_list", "results", *STATE]
        if obj.status == CouponTemplate.Status.DRAFT and self.has_change_permission(request, obj):
            return extra
        return [name for name in TERMS if name not in templates.EDITABLE_WHILE_RUNNING] + extra

    def get_inlines(self, request, obj):
        return [CouponBatchInline, ApprovalHistoryInline] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        obj._history_user = request.user
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, gettext("Coupon template %(code)s is a draft: check it (and upload its SKU list "
                                           "if it has one), then start it.") % {"code": obj.code}, messages.SUCCESS)
        return change_page(obj)

    # --- who may -----------------------------------------------------------------------------------------------

    def _may(self, request, permission: str) -> bool:
        return user_is_hq(request.user) and request.user.has_perm(permission)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        template = self.get_object(request, object_id)
        if template is not None:
            manage = self._may(request, PERMISSION_CHANGE_TEMPLATE)
            status = template.status
            extra_context = {
                **(extra_context or {}),
                "can_start": manage and status in (CouponTemplate.Status.DRAFT, CouponTemplate.Status.PAUSED),
                "can_pause": manage and status == CouponTemplate.Status.ACTIVE,
                "can_end": manage and status in (CouponTemplate.Status.DRAFT, CouponTemplate.Status.ACTIVE,
                                                 CouponTemplate.Status.PAUSED),
                "can_upload": manage and status not in (CouponTemplate.Status.PENDING, CouponTemplate.Status.ENDED),
                "can_issue": self._may(request, PERMISSION_ISSUE) and status == CouponTemplate.Status.ACTIVE,
            }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- pages and buttons -------------------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        name = "campaigns_coupontemplate"
        return [
            path("<path:object_id>/start/", wrap(require_POST(self.start_view)), name=f"{name}_start"),
            path("<path:object_id>/pause/", wrap(require_POST(self.pause_view)), name=f"{name}_pause"),
            path("<path:object_id>/end/", wrap(require_POST(self.end_view)), name=f"{name}_end"),
            path("<path:object_id>/skus/upload/", wrap(self.skus_upload_view), name=f"{name}_skus_upload"),
            path("<path:object_id>/skus/export/", wrap(self.skus_export_view), name=f"{name}_skus_export"),
            path("<path:object_id>/issue/members/", wrap(self.issue_members_view), name=f"{name}_issue_members"),
            path("<path:object_id>/issue/bulk/", wrap(self.issue_bulk_view), name=f"{name}_issue_bulk"),
            path("<path:object_id>/issues/<int:batch_id>/codes/", wrap(self.codes_view), name=f"{name}_codes"),
            path("<path:object_id>/results/export/", wrap(self.results_export_view),
                 name=f"{name}_results_export"),
            *super().get_urls(),
        ]

    def _template(self, request, object_id, permission: str | None = None) -> CouponTemplate:
        if not self.has_view_permission(request):
            raise PermissionDenied
        template = self.object_or_404(request, object_id)
        if permission is not None and not self._may(request, permission):
            raise PermissionDenied
        return template

    def _page(self, request, template, title: str, template_name: str, **context):
        return TemplateResponse(request, f"{TEMPLATES}/{template_name}", {
            **self.admin_site.each_context(request),
            "title": title, "opts": self.opts, "original": template,
            "change_url": reverse("admin:campaigns_coupontemplate_change", args=[template.pk]),
            **context,
        })

    def start_view(self, request, object_id):
        template = self._template(request, object_id, PERMISSION_CHANGE_TEMPLATE)
        try:
            approval = templates.coupon_template_start(template=template, operator=request.user,
                                                       reason=request.POST.get("reason", ""))
        except DomainError as error:
            self.message_user(request, str(error), messages.ERROR)
            return change_page(template)
        if approval is None:
            self.message_user(request, gettext("Coupon template %(code)s runs again.") % {"code": template.code},
                              messages.SUCCESS)
        else:
            approval_outcome_message(
                self, request, approval,
                pending=gettext("Coupon template %(code)s waits for another person's approval; it starts when it "
                                "is approved.") % {"code": template.code},
                done=gettext("Coupon template %(code)s is running.") % {"code": template.code},
            )
        return change_page(template)

    def pause_view(self, request, object_id):
        template = self._template(request, object_id, PERMISSION_CHANGE_TEMPLATE)
        return self.service_call(
            request, lambda: templates.coupon_template_pause(template=template, operator=request.user),
            gettext("Coupon template %(code)s is paused: its coupons cannot be issued or used until it runs "
                    "again.") % {"code": template.code},
            change_page(template))

    def end_view(self, request, object_id):
        template = self._template(request, object_id, PERMISSION_CHANGE_TEMPLATE)
        return self.service_call(
            request, lambda: templates.coupon_template_end(template=template, operator=request.user),
            gettext("Coupon template %(code)s is ended: its coupons can no longer be issued or used.")
            % {"code": template.code},
            change_page(template))

    def skus_upload_view(self, request, object_id):
        template = self._template(request, object_id, PERMISSION_CHANGE_TEMPLATE)
        form = SkuUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                count = templates.coupon_skus_import(template=template, file=upload, file_name=upload.name,
                                                     operator=request.user)
            except DomainError as error:
                add_service_error(form, error)
                if error.fields and str(error) != str(error.default_message):
                    form.add_error(None, str(error))
            else:
                self.message_user(request, ngettext(
                    "%(count)s SKU read from %(file)s: it is the template's list now.",
                    "%(count)s SKUs read from %(file)s: they are the template's list now.", count)
                    % {"count": count, "file": upload.name}, messages.SUCCESS)
                return change_page(template)
        return self._page(request, template, gettext("Upload the SKU list of %(code)s") % {"code": template.code},
                          "form_page.html", form=form, submit_label=gettext("Upload and replace the list"))

    def skus_export_view(self, request, object_id):
        template = self._template(request, object_id)
        rows = ((sku,) for sku in CouponSku.objects.filter(template=template).order_by("sku")
                .values_list("sku", flat=True).iterator(chunk_size=5000))
        # The header is the column's Chinese name whatever the page's language: the file can be uploaded again.
        return table_xlsx_response(filename=f"coupon-skus-{template.code}.xlsx", title=gettext("SKUs"),
                                   header=[templates.SKU_COLUMNS[0].label], rows=rows)

    def _upload_path(self, upload, folder: str) -> str:
        name = os.path.basename(upload.name.replace("\\", "/")) or "members.csv"
        path = os.path.join(folder, name)
        with open(path, "wb") as handle:
            for chunk in upload.chunks():
                handle.write(chunk)
        return path

    def issue_members_view(self, request, object_id):
        template = self._template(request, object_id, PERMISSION_ISSUE)
        form = IssueToMembersForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                with tempfile.TemporaryDirectory(prefix="coupon-members-") as folder:
                    batch = coupons_issue_from_file(
                        template=template, file=self._upload_path(upload, folder), operator=request.user,
                        skip_invalid=form.cleaned_data["skip_invalid"], source_name=upload.name)
            except DomainError as error:
                add_service_error(form, error)
            else:
                self._issued_message(request, batch)
                return change_page(template)
        return self._page(request, template, gettext("Issue %(code)s to members") % {"code": template.code},
                          "form_page.html", form=form, submit_label=gettext("Issue coupons"))

    def _issued_message(self, request, batch) -> None:
        self.message_user(request, ngettext("%(count)s coupon issued.", "%(count)s coupons issued.", batch.quantity)
                          % {"count": batch.quantity}, messages.SUCCESS)
        skipped = getattr(batch, "skipped", 0)
        if skipped:
            self.message_user(request, ngettext(
                "%(count)s member already holds as many coupons of this template as allowed and got none.",
                "%(count)s members already hold as many coupons of this template as allowed and got none.",
                skipped) % {"count": skipped}, messages.WARNING)
        errors = getattr(batch, "errors", None) or []
        if errors:
            self.message_user(request, ngettext("%(count)s row was left out: %(rows)s",
                                                "%(count)s rows were left out: %(rows)s", len(errors))
                              % {"count": len(errors), "rows": "; ".join(str(text) for text in errors[:20])},
                              messages.WARNING)

    def issue_bulk_view(self, request, object_id):
        template = self._template(request, object_id, PERMISSION_ISSUE)
        form = IssueBulkForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                batch = coupons_issue(template=template, quantity=form.cleaned_data["quantity"],
                                      channel=CouponBatch.Channel.BULK, operator=request.user,
                                      source_name=gettext("bulk codes"))
            except DomainError as error:
                add_service_error(form, error)
            else:
                return self._page(
                    request, template, gettext("Bulk codes of %(code)s issued") % {"code": template.code},
                    "bulk_issued.html", batch=batch,
                    may_download=self._may(request, PERMISSION_EXPORT_CODES),
                    codes_url=reverse("admin:campaigns_coupontemplate_codes", args=[template.pk, batch.pk]))
        return self._page(request, template, gettext("Issue bulk codes of %(code)s") % {"code": template.code},
                          "form_page.html", form=form, submit_label=gettext("Issue the codes"))

    def codes_view(self, request, object_id, batch_id):
        """A bulk issue's codes as Excel, for printing; each download is kept in the admin's log."""
        template = self._template(request, object_id, PERMISSION_EXPORT_CODES)
        batch = get_object_or_404(CouponBatch, pk=batch_id, template=template, channel=CouponBatch.Channel.BULK)
        self.log_change(request, template, gettext("Code file of issue #%(batch)s downloaded (%(count)s codes).")
                        % {"batch": batch.pk, "count": batch.quantity})
        discount = queries.coupon_discount_text(template)
        rows = ((code, template.code, template.name, discount, local_time(valid_from), local_time(valid_until))
                for code, valid_from, valid_until in Coupon.objects.filter(batch=batch).order_by("pk")
                .values_list("code", "valid_from", "valid_until").iterator(chunk_size=5000))
        response = table_xlsx_response(
            filename=f"coupon-codes-{template.code}-{batch.pk}.xlsx", title=gettext("Coupon codes"),
            header=[gettext("coupon code"), gettext("template code"), gettext("coupon template"), gettext("discount"),
                    gettext("valid from"), gettext("valid until")],
            rows=rows,
        )
        response["Cache-Control"] = "no-store"
        return response

    def results_export_view(self, request, object_id):
        template = self._template(request, object_id)
        results = queries.coupon_template_results(template)
        rows = [(label, xlsx_money(value) if money else value) for label, value, money in _results_rows(results)]
        return table_xlsx_response(
            filename=f"coupon-results-{template.code}-{timezone.localdate():%Y%m%d}.xlsx",
            title=gettext("Results"), header=[gettext("figure"), gettext("value")], rows=rows,
            preamble=[(gettext("coupon template"), f"{template.code} {template.name}"),
                      (gettext("discount"), queries.coupon_discount_text(template)),
                      (gettext("status"), template.get_status_display()),
                      (gettext("as of"), local_time(timezone.now()))],
        )

    # --- list actions ------------------------------------------------------------------------------------------

    def _each(self, request, queryset, call) -> None:
        if not self._may(request, PERMISSION_CHANGE_TEMPLATE):
            raise PermissionDenied
        self.service_each(request, queryset.order_by("pk"), call, label=lambda template: template.code,
                          done_message=lambda done: ngettext("%(count)d coupon template done.",
                                                             "%(count)d coupon templates done.", done)
                          % {"count": done})

    @admin.action(description=_("Start selected templates (through approval where needed)"), permissions=["change"])
    def start_selected(self, request, queryset):
        self._each(request, queryset,
                   lambda template: templates.coupon_template_start(template=template, operator=request.user))

    @admin.action(description=_("Pause selected templates"), permissions=["change"])
    def pause_selected(self, request, queryset):
        self._each(request, queryset,
                   lambda template: templates.coupon_template_pause(template=template, operator=request.user))

    @admin.action(description=_("End selected templates"), permissions=["change"])
    def end_selected(self, request, queryset):
        self._each(request, queryset,
                   lambda template: templates.coupon_template_end(template=template, operator=request.user))


# --- issued coupons ---------------------------------------------------------------------------------------------


class CouponRedemptionInline(admin.TabularInline):
    model = CouponRedemption
    fields = ["created_at", "store", "receipt_no", "basket_amount", "discount", "status", "released_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name_plural = _("redemptions")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Coupon)
class CouponAdmin(HeadquartersRecordsMixin, ReadOnlyAdminMixin, BaseAdmin):
    list_display = ["masked_code", "member_no", "status", "valid_from", "valid_until", "template", "issued_at"]
    list_filter = ["status", "template"]
    list_select_related = ["template", "member"]
    search_fields = ["=code"]
    search_help_text = _("Exact coupon code or member number.")
    paginator = CappedCountPaginator
    show_full_result_count = False
    actions = ["void_selected", "export_selected"]
    fields = ["masked_code", "template", "batch", "member_no", "member_name", "status", "valid_from", "valid_until",
              "issued_at", "issued_store", "closed_at"]
    readonly_fields = fields
    inlines = [CouponRedemptionInline]

    @admin.display(description=_("coupon code"), ordering="code")
    def masked_code(self, obj):
        return code_masked(obj.code)

    @admin.display(description=_("member number"))
    def member_no(self, obj):
        return obj.member.member_no if obj.member_id else "-"

    def action_checkbox(self, obj):
        # Django labels the box with str(obj), which is the full code: the list shows it masked.
        attrs = {"class": "action-select", "aria-label": format_html(
            gettext("Select this object for an action - {}"), code_masked(obj.code))}
        return forms.CheckboxInput(attrs, lambda value: False).render(admin.helpers.ACTION_CHECKBOX_NAME, str(obj.pk))

    @admin.display(description=_("member name"))
    def member_name(self, obj):
        return mask_name(obj.member.name) if obj.member_id else "-"

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        # Two index lookups (the code's unique index, the holder's): the member's ids first, not an OR over a join.
        holders = list(Member.objects.filter(member_no=term).values_list("pk", flat=True)[:5])
        return queryset.filter(Q(code=term.upper()) | Q(member_id__in=holders)), False

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not (user_is_hq(request.user) and request.user.has_perm(PERMISSION_VOID)):
            actions.pop("void_selected", None)
        return actions

    @admin.action(description=_("Void selected coupons"))
    def void_selected(self, request, queryset):
        if not (user_is_hq(request.user) and request.user.has_perm(PERMISSION_VOID)):
            raise PermissionDenied
        if queryset.count() > MAX_ACTION_COUPONS:
            self.message_user(request, gettext("Select at most %(max)s coupons at a time; to stop a whole campaign, "
                                               "pause or end its template.") % {"max": MAX_ACTION_COUPONS},
                              messages.ERROR)
            return None
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_bound or not form.is_valid():
            return TemplateResponse(request, f"{TEMPLATES}/action_form.html", {
                **self.admin_site.each_context(request),
                "title": gettext("Void selected coupons"), "opts": self.opts, "form": form,
                "selected": queryset.values_list("pk", flat=True), "count": queryset.count(),
                "action": "void_selected", "select_across": request.POST.get("select_across", "0"),
                "index": request.POST.get("index", "0"),
            })
        reason = form.cleaned_data["reason"]
        done = 0
        for coupon in queryset.order_by("pk"):
            try:
                coupon_void(coupon=coupon, operator=request.user, reason=reason)
            except DomainError as error:
                self.message_user(request, f"{code_masked(coupon.code)}: {error}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, ngettext("%(count)d coupon voided.", "%(count)d coupons voided.", done)
                              % {"count": done}, messages.SUCCESS)
        return None

    @admin.action(description=_("Export selected coupons to Excel (masked)"))
    def export_selected(self, request, queryset):
        rows = ((code_masked(coupon.code), coupon.template.code, coupon.template.name,
                 coupon.member.member_no if coupon.member_id else "",
                 mask_name(coupon.member.name) if coupon.member_id else "", coupon.get_status_display(),
                 local_time(coupon.valid_from), local_time(coupon.valid_until), local_time(coupon.issued_at),
                 local_time(coupon.closed_at))
                for coupon in queryset.select_related("template", "member").order_by("pk").iterator(chunk_size=2000))
        # Logged before the file leaves: member numbers with their (masked) names are personal data.
        personal_data_access_log(user=request.user, action=PersonalDataAccess.Action.EXPORT,
                                 detail=f"coupons, {queryset.count()} rows, masked", ip_address=client_ip(request))
        return table_xlsx_response(
            filename=f"coupons-{timezone.localdate():%Y%m%d}.xlsx", title=gettext("Coupons"),
            header=[gettext("coupon code"), gettext("template code"), gettext("coupon template"),
                    gettext("member number"), gettext("member name"), gettext("status"), gettext("valid from"),
                    gettext("valid until"), gettext("issued at"), gettext("closed at")],
            rows=rows,
        )


# --- redemptions ------------------------------------------------------------------------------------------------


@admin.register(CouponRedemption)
class CouponRedemptionAdmin(ReadOnlyAdminMixin, BaseAdmin):
    """Coupons used at the tills, store-scoped: store staff see their own stores' redemptions."""

    store_path = "store"
    list_display = ["created_at", "masked_code", "template", "store", "receipt_no", "basket_amount", "discount",
                    "status", "released_at"]
    list_filter = [StoreFilter, "status", "template"]
    list_select_related = ["coupon", "template", "store"]
    search_fields = ["receipt_no"]
    search_help_text = _("Exact receipt number.")
    paginator = CappedCountPaginator
    show_full_result_count = False
    fields = ["masked_code", "template", "member_no", "store", "terminal", "receipt_no", "basket_amount",
              "discount", "status", "created_at", "released_at", "release_reason"]
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        return (queryset.filter(receipt_no=term) if term else queryset), False

    @admin.display(description=_("coupon code"))
    def masked_code(self, obj):
        return code_masked(obj.coupon.code)

    @admin.display(description=_("member number"))
    def member_no(self, obj):
        return obj.member.member_no if obj.member_id else "-"


# --- after-payment rules -----------------------------------------------------------------------------------------


class CouponRuleForm(forms.ModelForm):
    class Meta:
        model = CouponRule
        fields = ["name", "template", "is_active", "formats", "min_amount", "payment_methods", "starts_on",
                  "ends_on", "weekdays"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "template" in self.fields:
            current = self.instance.template_id if self.instance.pk else None
            self.fields["template"].queryset = CouponTemplate.objects.filter(
                Q(status__in=[CouponTemplate.Status.DRAFT, CouponTemplate.Status.PENDING,
                              CouponTemplate.Status.ACTIVE, CouponTemplate.Status.PAUSED]) | Q(pk=current))

    def clean_weekdays(self):
        text = (self.cleaned_data.get("weekdays") or "").replace("，", ",").replace(" ", "")
        parts = [part for part in text.split(",") if part]
        if any(not part.isdigit() or not 1 <= int(part) <= 7 for part in parts):
            raise forms.ValidationError(gettext("Days of the week as digits 1 (Monday) to 7 (Sunday) separated by "
                                                "commas, e.g. 6,7."))
        return ",".join(str(day) for day in sorted(weekday_set(text)))

    def clean_payment_methods(self):
        text = (self.cleaned_data.get("payment_methods") or "").replace("，", ",").strip()
        return ",".join(part.strip().lower() for part in text.replace(" ", ",").split(",") if part.strip())

    def clean(self):
        cleaned = super().clean()
        starts_on, ends_on = cleaned.get("starts_on"), cleaned.get("ends_on")
        if starts_on and ends_on and ends_on < starts_on:
            self.add_error("ends_on", gettext("The rule cannot end before it starts (%(day)s).") % {"day": starts_on})
        return cleaned


@admin.register(CouponRule)
class CouponRuleAdmin(HeadquartersRecordsMixin, BaseAdmin):
    form = CouponRuleForm
    list_display = ["name", "template", "min_amount", "payment_methods", "starts_on", "ends_on", "weekdays",
                    "is_active"]
    list_filter = ["is_active", "formats"]
    list_select_related = ["template"]
    search_fields = ["name", "template__code"]
    filter_horizontal = ["formats"]
    fieldsets = [
        (None, {"fields": ["name", "template", "is_active"]}),
        (_("which purchases qualify"), {"fields": ["formats", "min_amount", "payment_methods"]}),
        (_("days"), {"fields": ["starts_on", "ends_on", "weekdays"]}),
    ]

