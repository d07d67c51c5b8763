"""Admin screens for brand partners, brand card programmes and their eligible SKU lists.

Thin: every button, action and upload calls cards.services.brands and shows its refusal as a message. Brand
partners and programmes are the group's contracts with brands, managed at headquarters: store staff see none
of it, whatever permissions their role holds. A programme starts through the approvals inbox.
"""


from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from openpyxl import Workbook
from stdnum.cn import uscc

from approvals.admin import ApprovalHistoryInline
from cards.models import Brand, BrandProgramme, BrandSku, BrandSkuList, CardProduct
from cards.services import brands
from core.admin import ServiceCallsMixin, ServiceRefusalMixin, change_page, copy_saved, local_time
from core.errors import DomainError
from core.files import escape_cell, xlsx_response
from core.forms import add_service_error
from stores.admin_base import BaseAdmin, HeadquartersRecordsMixin
from stores.queries import user_is_hq

TEMPLATES = "admin/cards/brands"
PERMISSION_CHANGE = brands.PERMISSION_CHANGE


# --- brand partners -----------------------------------------------------------------------------------


class BrandForm(forms.ModelForm):
    BILLING = ("billing_name", "billing_tax_no", "billing_address", "billing_bank", "billing_account_no")

    class Meta:
        model = Brand
        fields = ["code", "name", "is_active", "contact_name", "contact_phone", "contact_email",
                  "contract_starts_on", "contract_ends_on", *("billing_name", "billing_tax_no", "billing_address",
                                                               "billing_bank", "billing_account_no")]
        help_texts = {
            "code": _("Letters A-Z, digits, - and _, e.g. HAITIAN."),
            "billing_tax_no": _("The unified social credit code (统一社会信用代码, 18 characters), or an older "
                                "taxpayer number of 15 or 20 characters."),
            "billing_account_no": _("Digits only; spaces are removed."),
        }

    def clean_code(self):
        code = self.cleaned_data["code"].strip().upper()
        if not brands.CODE_PATTERN.match(code):
            raise forms.ValidationError(gettext("Letters A-Z, digits, - and _ only, e.g. HAITIAN."))
        return code

    def clean_contact_phone(self):
        phone = self.cleaned_data["contact_phone"].strip()
        digits = sum(character.isdigit() for character in phone)
        if phone and (not all(character.isdigit() or character in "+-() " for character in phone) or digits < 7):
            raise forms.ValidationError(gettext("Write a phone number such as 13800138000 or 0757-8888 8888."))
        return phone

    def clean_billing_tax_no(self):
        number = self.cleaned_data["billing_tax_no"].replace(" ", "").upper()
        if not number:
            return number
        if len(number) == 18:
            if not uscc.is_valid(number):
                raise forms.ValidationError(gettext(
                    "%(number)s is not a valid unified social credit code (its check character does not match)."
                ) % {"number": number})
        elif len(number) not in (15, 20) or not number.isalnum():
            raise forms.ValidationError(gettext(
                "A taxpayer number is 18 characters (unified social credit code), or 15 or 20 for older ones."))
        return number

    def clean_billing_account_no(self):
        number = "".join(self.cleaned_data["billing_account_no"].split()).replace("-", "")
        if number and (not number.isdigit() or not 8 <= len(number) <= 32):
            raise forms.ValidationError(gettext("A bank account number is 8 to 32 digits."))
        return number

    def clean(self):
        cleaned = super().clean()
        if any(cleaned.get(name) for name in self.BILLING):
            for name in ("billing_name", "billing_tax_no"):
                if name in self.fields and not cleaned.get(name) and name not in self.errors:
                    self.add_error(name, gettext("Needed on the brand's statements once billing details are given."))
        return cleaned


class BrandProgrammeInline(admin.TabularInline):
    """The brand's programmes, read-only; each opens on its own page."""

    model = BrandProgramme
    fields = ["code", "name", "product", "status", "discount_rate", "starts_on", "ends_on"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = _("brand card programmes")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Brand)
class BrandAdmin(HeadquartersRecordsMixin, BaseAdmin):
    form = BrandForm
    list_display = ["code", "name", "contact_name", "contact_phone", "contract_starts_on", "contract_ends_on",
                    "billing_name", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["code", "name", "billing_name", "contact_name"]
    fieldsets = [
        (None, {"fields": ["code", "name", "is_active"]}),
        (_("contact"), {"fields": ["contact_name", "contact_phone", "contact_email"]}),
        (_("contract period"), {"fields": ["contract_starts_on", "contract_ends_on"]}),
        (_("billing details"), {"fields": list(BrandForm.BILLING),
                                "description": _("What the brand's statements and invoices are made out to.")}),
    ]
    inlines = [BrandProgrammeInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        running = obj.programmes.filter(status=BrandProgramme.Status.ACTIVE).count() if not obj.is_active else 0
        if running:
            self.message_user(request, ngettext(
                "%(brand)s is inactive: its %(count)s active programme gives no discount until it is active again.",
                "%(brand)s is inactive: its %(count)s active programmes give no discount until it is active again.",
                running) % {"brand": obj.code, "count": running}, messages.WARNING)


# --- programmes ---------------------------------------------------------------------------------------


class BrandProgrammeForm(forms.ModelForm):
    class Meta:
        model = BrandProgramme
        fields = list(brands.TERMS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance if self.instance.pk else None
        if "brand" in self.fields:
            self.fields["brand"].queryset = Brand.objects.filter(
                Q(is_active=True) | Q(pk=current.brand_id if current else None))
        if "product" in self.fields:
            self.fields["product"].queryset = CardProduct.objects.filter(
                Q(brand__isnull=False, is_active=True) | Q(pk=current.product_id if current else None))
            self.fields["product"].help_text = _("A card product whose brand is the programme's brand partner.")

    def clean(self):
        cleaned = super().clean()
        editable = brands.programme_editable_fields(self.instance if self.instance.pk else None)
        if self.errors or editable != brands.TERMS:
            return cleaned
        values = {name: cleaned.get(name, getattr(self.instance, name, None)) for name in brands.TERMS}
        try:
            cleaned.update(brands.programme_values_clean(
                **values, programme=self.instance if self.instance.pk else None))
        except DomainError as error:
            add_service_error(self, error)
        return cleaned


class SkuListInline(admin.TabularInline):
    """The programme's SKU lists, newest first, read-only: lists are uploaded and confirmed on their own pages."""

    model = BrandSkuList
    fields = ["valid_from", "state", "sku_count", "file_name", "created_by", "created_at", "confirmed_by",
              "confirmed_at", "links"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("eligible SKU lists")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by", "confirmed_by")

    @admin.display(description=_("state"))
    def state(self, obj):
        return sku_list_state(obj)

    @admin.display(description=_("view or export"))
    def links(self, obj):
        if obj.pk is None:
            return ""
        return format_html('<a href="{}">{}</a> · <a href="{}">{}</a>',
                           reverse("admin:cards_brandprogramme_sku_list", args=[obj.programme_id, obj.pk]),
                           gettext("SKUs"),
                           reverse("admin:cards_brandprogramme_sku_export", args=[obj.programme_id, obj.pk]),
                           gettext("Excel"))


def sku_list_state(sku_list: BrandSkuList) -> str:
    if sku_list.confirmed_at is None:
        return gettext("staged, not confirmed")
    today = timezone.localdate()
    if sku_list.valid_from > today:
        return gettext("confirmed, applies from %(day)s") % {"day": sku_list.valid_from}
    in_force = brands.sku_list_in_force(sku_list.programme, today)
    if in_force is not None and in_force.pk == sku_list.pk:
        return gettext("in force")
    return gettext("replaced by a later list")


class SkuListUploadForm(forms.Form):
    file = forms.FileField(
        label=_("SKU file"),
        help_text=_("Excel (.xlsx) or CSV with a column sku (SKU, 商品编码 or 条码) and optionally name (商品名称), "
                    "one SKU per row under the header row."),
    )
    valid_from = forms.DateField(
        label=_("applies from"), widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"}),
        help_text=_("The list replaces the one in force from this day on; today or later, not before the "
                    "programme starts."),
    )


@admin.register(BrandProgramme)
class BrandProgrammeAdmin(HeadquartersRecordsMixin, ServiceCallsMixin, ServiceRefusalMixin, BaseAdmin):
    form = BrandProgrammeForm
    change_form_template = f"{TEMPLATES}/programme_change_form.html"
    list_display = ["code", "name", "status", "brand", "product", "rate", "share", "cap_per_receipt",
                    "cap_per_card", "starts_on", "ends_on"]
    list_filter = ["status", "brand", "product", "starts_on"]
    search_fields = ["code", "name", "brand__code", "brand__name", "product__code"]
    list_select_related = ["brand", "product"]
    actions = ["submit_selected", "end_selected"]
    status_fields = ["status", "created_by", "created_at", "approved_at", "ended_at"]

    @admin.display(description=_("discount rate"), ordering="discount_rate")
    def rate(self, obj):
        return f"{brands.percent(obj.discount_rate)}%"

    @admin.display(description=_("share funded by the brand"), ordering="brand_share")
    def share(self, obj):
        return f"{brands.percent(obj.brand_share)}%"

    def get_fields(self, request, obj=None):
        return [*brands.TERMS, *self.status_fields] if obj is not None else list(brands.TERMS)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        editable = brands.programme_editable_fields(obj) if self.has_change_permission(request, obj) else ()
        return [name for name in brands.TERMS if name not in editable] + self.status_fields

    def get_inlines(self, request, obj):
        return [SkuListInline, ApprovalHistoryInline] if obj is not None else []

    def has_change_permission(self, request, obj=None):
        # A programme waiting for approval or ended has no term left to change: its page is read-only.
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or bool(brands.programme_editable_fields(obj)))

    def save_model(self, request, obj, form, change):
        data = {name: form.cleaned_data[name] for name in brands.TERMS if name in form.cleaned_data}
        if change:
            programme = brands.programme_update(
                programme=obj, data={name: data[name] for name in form.changed_data if name in data},
                user=request.user)
        else:
            programme = brands.programme_create(**data, created_by=request.user)
        copy_saved(obj, programme)

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, gettext("Programme %(code)s is a draft: upload its SKU list, confirm it, then "
                                           "submit the programme for approval.") % {"code": obj.code},
                          messages.SUCCESS)
        return change_page(obj)

    # --- what a user may do ----------------------------------------------------------------------

    def _may_manage(self, request) -> bool:
        return user_is_hq(request.user) and request.user.has_perm(PERMISSION_CHANGE)

    def _may_submit(self, request, programme) -> bool:
        return programme.status in brands.EDITABLE_STATUSES and self._may_manage(request)

    def _may_end(self, request, programme) -> bool:
        return programme.status == BrandProgramme.Status.ACTIVE and self._may_manage(request)

    def _may_change_lists(self, request, programme) -> bool:
        return programme.status in brands.SKU_LIST_STATUSES and self._may_manage(request)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        programme = self._programme(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "can_submit": self._may_submit(request, programme),
            "can_end": self._may_end(request, programme),
            "can_upload": self._may_change_lists(request, programme),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    # --- pages and buttons -----------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        name = "cards_brandprogramme"
        return [
            path("<path:object_id>/submit/", wrap(require_POST(self.submit_view)), name=f"{name}_submit"),
            path("<path:object_id>/end/", wrap(require_POST(self.end_view)), name=f"{name}_end"),
            path("<path:object_id>/sku-lists/upload/", wrap(self.upload_view), name=f"{name}_sku_upload"),
            path("<path:object_id>/sku-lists/<int:list_id>/", wrap(self.sku_list_view), name=f"{name}_sku_list"),
            path("<path:object_id>/sku-lists/<int:list_id>/confirm/", wrap(require_POST(self.confirm_view)),
                 name=f"{name}_sku_confirm"),
            path("<path:object_id>/sku-lists/<int:list_id>/discard/", wrap(require_POST(self.discard_view)),
                 name=f"{name}_sku_discard"),
            path("<path:object_id>/sku-lists/<int:list_id>/export/", wrap(self.export_view),
                 name=f"{name}_sku_export"),
            *super().get_urls(),
        ]

    def _programme(self, request, object_id) -> BrandProgramme:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return self.object_or_404(request, object_id)

    def _sku_list(self, request, object_id, list_id) -> tuple[BrandProgramme, BrandSkuList]:
        programme = self._programme(request, object_id)
        sku_list = get_object_or_404(BrandSkuList.objects.select_related("created_by", "confirmed_by"),
                                     pk=list_id, programme=programme)
        return programme, sku_list

    def submit_view(self, request, object_id):
        programme = self._programme(request, object_id)
        if not self._may_manage(request):
            raise PermissionDenied
        return self.service_call(
            request, lambda: brands.programme_submit(programme=programme, requested_by=request.user),
            gettext("Programme %(code)s waits for another person's approval; it starts when it is approved.")
            % {"code": programme.code},
            change_page(programme),
        )

    def end_view(self, request, object_id):
        programme = self._programme(request, object_id)
        if not self._may_manage(request):
            raise PermissionDenied
        return self.service_call(
            request, lambda: brands.programme_end(programme=programme, user=request.user),
            gettext("Programme %(code)s is ended: its cards get no more discount.") % {"code": programme.code},
            change_page(programme),
        )

    def upload_view(self, request, object_id):
        """Upload an SKU file: checked whole, staged, then shown for confirmation."""
        programme = self._programme(request, object_id)
        if not self._may_manage(request):
            raise PermissionDenied
        initial = {"valid_from": max(timezone.localdate(), programme.starts_on)}
        form = SkuListUploadForm(request.POST or None, request.FILES or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                sku_list = brands.sku_list_stage(programme=programme, file=upload, file_name=upload.name,
                                                 valid_from=form.cleaned_data["valid_from"], user=request.user)
            except DomainError as error:
                add_service_error(form, error)
                if error.fields:
                    form.add_error(None, str(error))
            else:
                self.message_user(request, ngettext(
                    "%(count)s SKU read from %(file)s. Check the list and confirm it, or discard it.",
                    "%(count)s SKUs read from %(file)s. Check the list and confirm it, or discard it.",
                    sku_list.sku_count) % {"count": sku_list.sku_count, "file": sku_list.file_name},
                    messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:cards_brandprogramme_sku_list",
                                                    args=[programme.pk, sku_list.pk]))
        return TemplateResponse(request, f"{TEMPLATES}/sku_list_upload.html", {
            **self.admin_site.each_context(request),
            "title": gettext("Upload the eligible SKUs of %(code)s") % {"code": programme.code},
            "opts": self.opts,
            "original": programme,
            "form": form,
            "can_upload": self._may_change_lists(request, programme),
        })

    def sku_list_view(self, request, object_id, list_id):
        """A list's SKUs (the first rows), and what it adds and removes against the list it replaces."""
        programme, sku_list = self._sku_list(request, object_id, list_id)
        staged = sku_list.confirmed_at is None
        return TemplateResponse(request, f"{TEMPLATES}/sku_list.html", {
            **self.admin_site.each_context(request),
            "title": gettext("Eligible SKUs of %(code)s from %(day)s") % {"code": programme.code,
                                                                          "day": sku_list.valid_from},
            "opts": self.opts,
            "original": programme,
            "sku_list": sku_list,
            "state": sku_list_state(sku_list),
            "rows": BrandSku.objects.filter(sku_list=sku_list).order_by("pk")[:brands.PREVIEW_ROWS],
            "preview_rows": brands.PREVIEW_ROWS,
            "diff": brands.sku_list_diff(sku_list),
            "can_decide": staged and self._may_change_lists(request, programme),
        })

    def confirm_view(self, request, object_id, list_id):
        programme, sku_list = self._sku_list(request, object_id, list_id)
        if not self._may_manage(request):
            raise PermissionDenied
        return self.service_call(
            request, lambda: brands.sku_list_confirm(sku_list=sku_list, user=request.user),
            ngettext("The list of %(count)s SKU applies from %(day)s.",
                     "The list of %(count)s SKUs applies from %(day)s.", sku_list.sku_count)
            % {"count": sku_list.sku_count, "day": sku_list.valid_from},
            change_page(programme),
        )

    def discard_view(self, request, object_id, list_id):
        programme, sku_list = self._sku_list(request, object_id, list_id)
        if not self._may_manage(request):
            raise PermissionDenied
        return self.service_call(
            request, lambda: brands.sku_list_discard(sku_list=sku_list, user=request.user),
            gettext("The uploaded list from %(file)s is discarded.") % {"file": sku_list.file_name},
            change_page(programme),
        )

    def export_view(self, request, object_id, list_id):
        programme, sku_list = self._sku_list(request, object_id, list_id)
        return _sku_list_workbook(programme, sku_list)

    # --- list actions ----------------------------------------------------------------------------

    def _each(self, request, queryset, call) -> None:
        self.service_each(request, queryset.order_by("pk"), call, label=lambda programme: programme.code,
                          done_message=lambda done: ngettext("%(count)d programme done.",
                                                             "%(count)d programmes done.", done) % {"count": done})

    @admin.action(description=_("Submit selected programmes for approval"), permissions=["change"])
    def submit_selected(self, request, queryset):
        self._each(request, queryset,
                   lambda programme: brands.programme_submit(programme=programme, requested_by=request.user))

    @admin.action(description=_("End selected programmes"), permissions=["change"])
    def end_selected(self, request, queryset):
        self._each(request, queryset, lambda programme: brands.programme_end(programme=programme, user=request.user))


def _sku_list_workbook(programme: BrandProgramme, sku_list: BrandSkuList) -> HttpResponse:
    """A list's SKUs as Excel, in the upload's format (it can be uploaded again), and a sheet about the list.

    The header row is the columns' Chinese names whatever the page's language, so any user can upload the file.
    """
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(gettext("SKUs"))
    sheet.append([column.label for column in brands.SKU_COLUMNS])
    for sku, name in (BrandSku.objects.filter(sku_list=sku_list).order_by("pk").values_list("sku", "name")
                      .iterator(chunk_size=5000)):
        sheet.append([escape_cell(sku), escape_cell(name)])
    about = workbook.create_sheet(gettext("About the list"))
    confirmed_at = local_time(sku_list.confirmed_at)
    for label, value in (
        (gettext("programme"), f"{programme.code} {programme.name}"),
        (gettext("brand partner"), f"{programme.brand.code} {programme.brand.name}"),
        (gettext("card product"), f"{programme.product.code} {programme.product.name}"),
        (gettext("applies from"), sku_list.valid_from.isoformat()),
        (gettext("state"), sku_list_state(sku_list)),
        (gettext("SKUs"), sku_list.sku_count),
        (gettext("file"), sku_list.file_name),
        (gettext("uploaded by"), str(sku_list.created_by)),
        (gettext("confirmed by"), str(sku_list.confirmed_by or "")),
        (gettext("confirmed at"), confirmed_at),
    ):
        sheet_value = value if isinstance(value, int) else escape_cell(str(value))
        about.append([escape_cell(label), sheet_value])
    return xlsx_response(workbook, f"sku-list-{programme.code}-{sku_list.valid_from:%Y%m%d}-{sku_list.pk}.xlsx")
