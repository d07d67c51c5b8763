from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.admin import GenericTabularInline
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from approvals import queries, registry, services
from approvals.models import ApprovalPolicy, ApprovalRequest
from approvals.store_closing import store_close_request
from core.admin import DefaultStatusFilter, ReadOnlyAdminMixin
from core.errors import DomainError
from core.numbers import money_display
from core.permissions import permission_label
from stores.admin import StoreAdmin as StoreBaseAdmin
from stores.admin_base import BaseAdmin, ScopedAdminMixin
from stores.models import Store
from stores.roles import PROJECT_APPS


class ActionFilter(admin.SimpleListFilter):
    """The actions by their labels (the stored codes, cards.voucher_batch_issue, mean nothing to staff)."""

    title = _("action")
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return registry.choices()

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


# The labels of what the actions put in a request's payload (the *_id keys are the engine's own and not shown).
PAYLOAD_LABELS = {
    "batch_no": _("batch number"), "product": _("product code"), "quantity": _("quantity"),
    "units": _("units per voucher"), "price": _("price"), "expires_on": _("valid until"),
    "order_no": _("order number"), "discount": _("discount"), "amount_due": _("amount due"), "cards": _("cards"),
    "vouchers": _("vouchers"), "voucher_total": _("vouchers' total"), "summed_with": _("added up with orders"),
    "code": _("code"), "brand": _("brand partner"), "discount_rate": _("discount rate"),
    "brand_share": _("brand's share"), "cap_per_receipt": _("cap per receipt"), "cap_per_card": _("cap per card"),
    "starts_on": _("starts on"), "ends_on": _("ends on"), "sku_count": _("SKUs listed"),
    "card_no": _("card number"), "amount": _("amount"), "bank_account_masked": _("bank account"),
    "balance_at_request": _("balance when requested"), "face_value": _("face value"), "vendor": _("card vendor"),
    "first_file_at": _("first file written at"), "first_file_by": _("first file written by (user id)"),
    "survivor_no": _("member kept"), "member_no": _("member number"), "points": _("points"),
    "owed_at_request": _("owed when requested"), "closed_on": _("closed on"),
}
# The payload's amounts, shown as money (68,551.50).
PAYLOAD_MONEY = {"price", "discount", "amount_due", "voucher_total", "cap_per_receipt", "cap_per_card", "amount",
                 "balance_at_request", "face_value"}


def _payload_value(value) -> str:
    if isinstance(value, list):
        return gettext(", ").join(str(item) for item in value)
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    return str(value)


class ApprovalPolicyForm(forms.ModelForm):
    action = forms.ChoiceField(label=_("action"))

    class Meta:
        model = ApprovalPolicy
        fields = ["action", "min_amount", "approver_permission", "hq_only", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = registry.choices()
        self.fields["approver_permission"].queryset = Permission.objects.filter(
            content_type__app_label__in=PROJECT_APPS
        ).select_related("content_type")
        self.fields["approver_permission"].label_from_instance = permission_label


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(BaseAdmin):
    form = ApprovalPolicyForm
    list_display = ["action_label", "min_amount", "approver_permission_label", "hq_only", "is_active"]
    list_filter = ["is_active", "hq_only", ActionFilter]
    list_select_related = ["approver_permission__content_type"]

    @admin.display(description=_("action"), ordering="action")
    def action_label(self, obj):
        return obj.action_label

    @admin.display(description=_("approver permission"), ordering="approver_permission__codename")
    def approver_permission_label(self, obj):
        return permission_label(obj.approver_permission)


class StatusFilter(DefaultStatusFilter):
    """The inbox opens on pending requests."""

    status_choices = ApprovalRequest.Status.choices
    default = ApprovalRequest.Status.PENDING


class DecisionForm(forms.Form):
    comment = forms.CharField(
        label=_("comment"), required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Required when rejecting."),
    )


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdminMixin, ScopedAdminMixin, admin.ModelAdmin):
    store_path = "store"
    list_display = ["id", "action_label", "subject_repr", "store", "amount", "requested_by", "status", "created_at"]
    list_filter = [StatusFilter, ActionFilter, ("store", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["store", "requested_by", "decided_by"]
    search_fields = ["subject_repr", "reason", "=id"]
    date_hierarchy = "created_at"
    actions = ["approve_selected"]
    fields = [
        "action_label", "subject_link", "store", "amount", "payload_table", "reason", "requested_by", "created_at",
        "policy", "status", "decided_by", "decided_at", "decision_comment",
    ]
    readonly_fields = fields
    change_form_template = "admin/approvals/approvalrequest/change_form.html"

    @admin.display(description=_("action"), ordering="action")
    def action_label(self, obj):
        return obj.action_label

    @admin.display(description=_("details"))
    def payload_table(self, obj):
        """What the request carries, as labelled rows (the stored JSON is the engine's, not for reading)."""
        payload = obj.payload if isinstance(obj.payload, dict) else {}
        rows = [(PAYLOAD_LABELS.get(key, key),
                 money_display(value) if key in PAYLOAD_MONEY and not isinstance(value, (list, bool))
                 else _payload_value(value)) for key, value in payload.items()
                if not key.endswith("_id") and value not in (None, "", [])]
        if not rows:
            return "-"
        return format_html('<table class="approval-payload">{}</table>', format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description=_("subject"))
    def subject_link(self, obj):
        subject = obj.subject
        if subject is None:
            return obj.subject_repr
        try:
            url = reverse(f"admin:{subject._meta.app_label}_{subject._meta.model_name}_change", args=[subject.pk])
        except NoReverseMatch:
            return obj.subject_repr
        return format_html('<a href="{}">{}</a>', url, obj.subject_repr)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="approvals_approvalrequest_decide",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra_context["can_decide"] = (
                obj.status == ApprovalRequest.Status.PENDING
                and queries.can_decide(approval_request=obj, user=request.user)
            )
            extra_context["is_own_pending"] = (
                obj.status == ApprovalRequest.Status.PENDING and obj.requested_by_id == request.user.pk
            )
            extra_context["decision_form"] = DecisionForm()
            extra_context["decide_url"] = reverse("admin:approvals_approvalrequest_decide", args=[obj.pk])
        return super().change_view(request, object_id, form_url, extra_context)

    def decide_view(self, request, object_id):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        change_url = reverse("admin:approvals_approvalrequest_change", args=[obj.pk])
        if request.method != "POST":
            return HttpResponseRedirect(change_url)
        form = DecisionForm(request.POST)
        form.is_valid()
        comment = form.cleaned_data.get("comment", "")
        try:
            if "_approve" in request.POST:
                services.approval_request_approve(approval_request=obj, approver=request.user, comment=comment)
                self.message_user(request, gettext("Request #%(id)s approved and carried out.") % {"id": obj.pk})
            elif "_reject" in request.POST:
                services.approval_request_reject(approval_request=obj, approver=request.user, comment=comment)
                self.message_user(request, gettext("Request #%(id)s rejected.") % {"id": obj.pk})
            elif "_cancel" in request.POST:
                services.approval_request_cancel(approval_request=obj, user=request.user)
                self.message_user(request, gettext("Request #%(id)s withdrawn.") % {"id": obj.pk})
        except DomainError as error:
            self.message_user(request, str(error), level=messages.ERROR)
        return HttpResponseRedirect(change_url)

    @admin.action(description=_("Approve selected requests"))
    def approve_selected(self, request, queryset):
        approved = 0
        for obj in queryset:
            try:
                services.approval_request_approve(approval_request=obj, approver=request.user)
                approved += 1
            except DomainError as error:
                self.message_user(request, f"#{obj.pk}: {error}", level=messages.ERROR)
        if approved:
            self.message_user(request, gettext("%(count)d request(s) approved.") % {"count": approved})


class ApprovalHistoryInline(GenericTabularInline):
    """The approval requests of a subject, on the subject's own page."""

    model = ApprovalRequest
    ct_field = "content_type"
    ct_fk_field = "object_id"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["action_label", "status", "reason", "requested_by", "created_at", "decided_by", "decided_at",
              "decision_comment"]
    readonly_fields = fields
    verbose_name = _("approval")
    verbose_name_plural = _("approval history")

    @admin.display(description=_("action"))
    def action_label(self, obj):
        return obj.action_label

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("requested_by", "decided_by")


def approval_request_url(approval: ApprovalRequest) -> str:
    return reverse("admin:approvals_approvalrequest_change", args=[approval.pk])


def approval_outcome_message(model_admin, request, approval: ApprovalRequest, *, pending: str, done: str) -> bool:
    """Say what became of a request just made, linked to it: `pending` (a warning) while it waits for another
    person's approval, `done` when it was carried out at once. Return whether it waits."""
    url = approval_request_url(approval)
    if approval.status == ApprovalRequest.Status.PENDING:
        model_admin.message_user(request, format_html(
            '{} <a href="{}">{}</a>', pending, url, gettext("Approval request #%(id)s") % {"id": approval.pk},
        ), messages.WARNING)
        return True
    model_admin.message_user(request, format_html(
        '{} <a href="{}">{}</a>', done, url, gettext("Request #%(id)s") % {"id": approval.pk},
    ), messages.SUCCESS)
    return False


# --- the store's page: its approval history, and the request to close it (approvals/store_closing.py) ---------


class StoreCloseForm(forms.Form):
    closed_on = forms.DateField(label=_("closing date"), widget=forms.DateInput(attrs={"type": "date"}))
    reason = forms.CharField(label=_("reason"), widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class StoreAdmin(StoreBaseAdmin):
    """The stores app's Store admin with what approvals adds to it (stores does not import approvals): the page
    lists the store's approval requests and offers to request its closing, which a second person approves."""

    inlines = [*StoreBaseAdmin.inlines, ApprovalHistoryInline]
    change_form_template = "admin/stores/store/change_form.html"

    def get_urls(self):
        return [
            path("<path:object_id>/close/", self.admin_site.admin_view(self.close_view), name="stores_store_close"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, unquote(object_id))
        extra_context["can_request_close"] = (
            obj is not None and obj.status != Store.Status.CLOSED and self.has_change_permission(request, obj)
        )
        return super().change_view(request, object_id, form_url, extra_context)

    def close_view(self, request, object_id):
        store = self.get_object(request, unquote(object_id))
        if store is None:
            raise Http404
        if not self.has_change_permission(request, store):
            raise PermissionDenied
        change_url = reverse("admin:stores_store_change", args=[store.pk])
        form = StoreCloseForm(request.POST or None, initial={"closed_on": timezone.localdate()})
        if request.method == "POST" and form.is_valid():
            try:
                approval = store_close_request(
                    store=store,
                    requested_by=request.user,
                    reason=form.cleaned_data["reason"],
                    closed_on=form.cleaned_data["closed_on"],
                )
            except DomainError as error:
                form.add_error(None, str(error))
            else:
                if approval.status == approval.Status.PENDING:
                    message = gettext("Closing %(store)s is waiting for approval (request #%(id)s).")
                else:
                    message = gettext("%(store)s is closed.")
                self.message_user(request, message % {"store": store, "id": approval.pk}, messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Request to close %(store)s") % {"store": store},
            "opts": self.opts,
            "original": store,
            "form": form,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/stores/store/close.html", context)


admin.site.unregister(Store)
admin.site.register(Store, StoreAdmin)
