"""Members: the list with its exact search, the member's page and its extra pages, the actions on selected
members, the import and export; the member's cards, identities and the personal data audit trail.

The rows and pages of a member about points come from MemberPointsMixin (points.py), those about tiers from
MemberTiersMixin (tiers.py); the forms are in forms.py.
"""

import re

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from approvals.admin import ApprovalHistoryInline
from core.admin import CappedCountPaginator, ReadOnlyAdminMixin, ServiceRefusalMixin, copy_saved
from core.errors import DomainError
from core.http import client_ip
from core.models import PersonalDataAccess
from core.pii import InvalidPersonalData, normalize_id_number, pii_decrypt
from core.services import personal_data_access_log
from membership import services
from membership.admin.benefits import MemberBenefitsMixin
from membership.admin.common import MemberRowAdmin, ReadOnlyInline, link_to_member, member_url
from membership.admin.forms import MemberAddForm, MemberChangeForm, ReasonForm, StatusForm, TagChoiceForm
from membership.admin.merges import PERMISSION_MERGE, merge_review
from membership.admin.points import MemberPointsMixin
from membership.admin.tiers import MemberTiersMixin
from membership.models import Member, MemberCard, MemberEvent, MemberIdentity, MemberTag
from membership.queries import classify_search, members_by_id_number, members_in_scope, members_matching
from membership.resources import MemberExportResource, MemberImportResource
from stores.admin_base import ImportExportBaseAdmin
from stores.queries import stores_visible_to, user_can_see_store, user_is_hq

SEARCH_HELP = _("Phone, ID number, member number, card number, name or pinyin initials (exact).")
# Actions loop over members one service call at a time: a larger set belongs in a file upload.
MAX_ACTION_MEMBERS = 5000
PERMISSION_REVEAL = "membership.reveal_personal_data"
PERMISSION_EXPORT_FULL = "membership.export_personal_data"


def member_search_condition(text: str) -> Q | None:
    """The exact lookups of membership.queries for one search box; None for an empty box."""
    text = (text or "").strip()
    if not text:
        return None
    search = classify_search(text)
    matched = members_matching(search)
    condition = Q(pk__in=matched.values("pk"))
    if search.kind in ("member_no", "number"):
        # The queries lead a merged number to its survivor; staff also see the merged record itself.
        condition |= Q(member_no=search.value)
    elif search.kind == "name" and re.fullmatch(r"(?=.*[0-9])[A-Z0-9]{5,17}", normalize_id_number(text)):
        # Passport and permit numbers: letters and digits, found by their digest like resident IDs.
        condition |= Q(pk__in=members_by_id_number(text).values("pk"))
    return condition


class MemberStoreFilter(admin.SimpleListFilter):
    """Store staff filter by their own stores; headquarters find a store's members by search and format."""

    title = _("registering store")
    parameter_name = "store"

    def lookups(self, request, model_admin):
        if user_is_hq(request.user):
            return []
        return [(str(store.pk), str(store)) for store in stores_visible_to(request.user).order_by("code")]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(registered_store_id=self.value())
        return queryset


class IdentityInline(ReadOnlyInline):
    model = MemberIdentity
    fields = ["kind", "source", "external_no", "created_at"]
    readonly_fields = fields


class MemberCardInline(ReadOnlyInline):
    model = MemberCard
    fields = ["card_no", "status", "issued_at", "issued_store"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("issued_store")


class MemberTagInline(ReadOnlyInline):
    model = MemberTag
    fields = ["tag", "added_by", "added_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tag", "added_by")


class MemberEventInline(ReadOnlyInline):
    model = MemberEvent
    fields = ["created_at", "kind", "actor", "store", "description"]  # the data as a sentence, not as JSON
    readonly_fields = fields
    ordering = ["-created_at", "-pk"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor", "store")


class MemberFileImportResource(MemberImportResource):
    """The legacy member import under the name the import form shows."""

    @classmethod
    def get_display_name(cls):
        return gettext("Legacy members")


class MemberMaskedExportResource(MemberExportResource):
    """Phone and ID numbers masked: what anyone allowed to export members gets."""

    @classmethod
    def get_display_name(cls):
        return gettext("Members (phone and ID number masked)")


class MemberFullExportResource(MemberExportResource):
    """Full phone and ID numbers, for holders of membership.export_personal_data."""

    def __init__(self, **kwargs):
        kwargs.setdefault("full_personal_data", True)
        super().__init__(**kwargs)

    @classmethod
    def get_display_name(cls):
        return gettext("Members with full phone and ID numbers")


# Rows of the change page that no form may write: identity, status, points, registration.
_MEMBER_READONLY = [
    "member_no", "name", "gender", "birth_date_age", "id_type", "id_number_shown", "status", "merged_into_link",
    "tier", "points_link", "phone_shown", "family_phone_shown", "address", "contact_channel", "marketing_consent",
    "marketing_consent_at", "registered_store", "registered_channel", "partner", "registered_by", "registered_at",
    "notes",
    "earned_tier", "paid_tier_shown", "pending_points", "points_debt_shown", "recent_points", "purchases_by_format",
    "recent_purchases", "tier_history", "benefits_remaining",
]


@admin.register(Member)
class MemberAdmin(MemberPointsMixin, MemberTiersMixin, MemberBenefitsMixin, ServiceRefusalMixin,
                  ImportExportBaseAdmin):
    store_path = "registered_store"
    # What staff look a member up by and act on; gender, birth date, paid tier and channel are on the member's page
    # (thirteen columns did not fit a 1366-pixel screen).
    list_display = ["member_no", "name", "phone_column", "id_number_masked", "tier", "points", "registered_store",
                    "status", "registered_at"]
    list_select_related = ["tier", "paid_tier", "registered_store"]
    # No date hierarchy: its year list is a DISTINCT over every row; the date filter uses the index.
    list_filter = ["status", "tier", "registered_channel", "partner", "gender", "registered_store__format",
                   ("registered_at", admin.DateFieldListFilter), "tags", MemberStoreFilter]
    # The box is handled by get_search_results; Django shows it only when search_fields is set.
    search_fields = ["member_no"]
    search_help_text = SEARCH_HELP
    sortable_by = ["member_no", "name", "registered_at"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    actions = ["freeze_members", "unfreeze_members", "close_members", "tag_members", "untag_members",
               "merge_two_members"]
    change_form_template = "admin/membership/member/change_form.html"
    change_list_template = "admin/membership/member/change_list.html"

    # --- list -----------------------------------------------------------------------------

    def scope_rows(self, queryset, user):
        # Registered at the user's stores or bought there in the last 12 months: lists, search, change pages,
        # the member's extra pages and exports all read get_queryset, which comes here.
        return members_in_scope(queryset, user)

    @admin.display(description=_("phone"))
    def phone_column(self, obj):
        if obj.phone:
            return obj.phone_masked
        if obj.family_phone:
            return gettext("family: %(phone)s") % {"phone": obj.family_phone_masked}
        return "-"

    @admin.display(description=_("birth date (age)"), ordering="birth_date")
    def birth_date_age(self, obj):
        if not obj.birth_date:
            return "-"
        return f"{obj.birth_date:%Y-%m-%d} ({obj.age})"

    def get_search_results(self, request, queryset, search_term):
        condition = member_search_condition(search_term)
        if condition is None:
            return queryset, False
        return queryset.filter(condition), False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_merge_permission(self, request):
        return request.user.has_perm(PERMISSION_MERGE)

    # --- change page ------------------------------------------------------------------------

    def _can_see_full(self, request) -> bool:
        return request.user.has_perm(PERMISSION_REVEAL)

    def _contact_editable(self, request, obj) -> bool:
        return obj is not None and obj.status in services.LIVE_STATUSES and self.has_change_permission(request, obj)

    def _status_changeable(self, request, obj) -> bool:
        # A closed member can be reopened; a merged record lives on only as a pointer to its survivor.
        return obj.status != Member.Status.MERGED and self.has_change_permission(request, obj)

    @admin.display(description=_("ID number"))
    def id_number_shown(self, obj):
        return obj.id_number_masked or "-"

    @admin.display(description=_("phone"))
    def phone_shown(self, obj):
        return obj.phone if getattr(obj, "show_full_phone", False) else obj.phone_masked

    @admin.display(description=_("family contact phone"))
    def family_phone_shown(self, obj):
        return obj.family_phone if getattr(obj, "show_full_phone", False) else obj.family_phone_masked

    @admin.display(description=_("merged into"))
    def merged_into_link(self, obj):
        return link_to_member(obj.merged_into)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [
                (None, {"fields": ["name", ("id_type", "id_number"), ("gender", "birth_date")]}),
                (_("contact"), {"fields": ["phone", "family_phone", "address", "contact_channel",
                                           "marketing_consent"]}),
                (_("registration"), {"fields": ["card_no", "registered_store", "channel", "notes"]}),
            ]
        if self._contact_editable(request, obj):
            contact = ["phone", "family_phone", "address", "contact_channel", "marketing_consent"]
        else:
            # A read-only "phone" row would print the full number: the masked display stands in for it.
            contact = ["phone_shown", "family_phone_shown", "address", "contact_channel", "marketing_consent"]
        return [
            (None, {"fields": ["member_no", "name", "gender", "birth_date_age", "id_type", "id_number_shown",
                               "status", "merged_into_link"]}),
            (_("tier and points"), {"fields": ["earned_tier", "paid_tier_shown", "points_link", "pending_points",
                                               "points_debt_shown", "benefits_remaining"]}),
            (_("contact"), {"fields": [*contact, "marketing_consent_at"]}),
            (_("registration"), {"fields": ["registered_store", "registered_channel", "partner", "registered_by",
                                            "registered_at", "notes"]}),
            (_("points ledger"), {"fields": ["recent_points"]}),
            (_("purchases"), {"fields": ["purchases_by_format", "recent_purchases"]}),
            (_("tier changes"), {"fields": ["tier_history"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if self._contact_editable(request, obj):
            return [name for name in _MEMBER_READONLY if name not in (*services.CONTACT_FIELDS, "notes")]
        return _MEMBER_READONLY

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = type("MemberAddForm", (MemberAddForm,),
                                  {"stores_required": not user_is_hq(request.user)})
        else:
            kwargs["form"] = type("MemberChangeForm", (MemberChangeForm,),
                                  {"can_see_full_phone": self._can_see_full(request)})
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(self, request, obj):
        if obj is None:
            return []
        return [IdentityInline, MemberCardInline, MemberTagInline, MemberEventInline, ApprovalHistoryInline]

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.show_full_phone = self._can_see_full(request)
        return obj

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, unquote(object_id))
        # Another store's member looks exactly like a member that does not exist.
        if obj is None:
            raise Http404
        extra_context.update(
            can_reveal=self._can_see_full(request),
            reveal_url=reverse("admin:membership_member_reveal", args=[obj.pk]),
            can_change_status=self._status_changeable(request, obj),
            status_url=reverse("admin:membership_member_status", args=[obj.pk]),
            can_adjust_points=self._points_adjustable(request, obj),
            points_adjust_url=reverse("admin:membership_member_points_adjust", args=[obj.pk]),
            can_sell_paid_tier=self._paid_tier_sellable(request, obj),
            paid_tier_url=reverse("admin:membership_member_paid_tier", args=[obj.pk]),
        )
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request, obj, form, change):
        if not change:
            store = form.cleaned_data.get("registered_store")
            if not user_can_see_store(request.user, store):
                raise PermissionDenied
            member = services.member_register(data=form.member_input(), store=store, registered_by=request.user,
                                              channel=form.cleaned_data["channel"])
            copy_saved(obj, member)
            return
        changes = {name: form.cleaned_data[name] for name in services.CONTACT_FIELDS if name in form.changed_data}
        if changes:
            services.member_contact_update(member=obj, actor=request.user, **changes)
        if "notes" in form.changed_data:
            services.member_notes_set(member=obj, notes=form.cleaned_data["notes"], actor=request.user)

    # --- extra pages ------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/reveal/", wrap(self.reveal_view), name="membership_member_reveal"),
            path("<path:object_id>/status/", wrap(self.status_view), name="membership_member_status"),
            path("merge/<int:pk_a>/<int:pk_b>/", wrap(self.merge_view), name="membership_member_merge"),
            # The points and tier pages: MemberPointsMixin and MemberTiersMixin.
            *super().get_urls(),
        ]

    def reveal_view(self, request, object_id):
        # The permission is checked before the lookup, so a refusal says nothing about the member.
        if not self._can_see_full(request):
            raise PermissionDenied
        member = self.get_object(request, unquote(object_id))
        if member is None or not self.has_view_permission(request, member):
            raise Http404
        context = {"change_url": member_url(member), "revealed": False}
        if request.method == "POST":
            try:
                id_number = pii_decrypt(member.id_number_sealed)
            except InvalidPersonalData as error:
                self.message_user(request, str(error.message), messages.ERROR)
                return HttpResponseRedirect(member_url(member))
            personal_data_access_log(
                user=request.user, action=PersonalDataAccess.Action.REVEAL_ID_NUMBER, subject=member,
                detail="id_number, phone, family_phone", ip_address=client_ip(request),
            )
            context.update(revealed=True, id_number=id_number, phone=member.phone,
                           family_phone=member.family_phone)
        response = self._page(request, "admin/membership/member/reveal.html",
                              gettext("Personal data of %(member)s") % {"member": member}, member, **context)
        response["Cache-Control"] = "no-store"
        return response

    def status_view(self, request, object_id):
        member = self.get_object(request, unquote(object_id))
        if member is None:
            raise Http404
        if not self._status_changeable(request, member):
            raise PermissionDenied
        form = StatusForm(request.POST or None, initial={"status": member.status})
        if request.method == "POST" and form.is_valid():
            try:
                services.member_status_set(member=member, status=form.cleaned_data["status"], actor=request.user,
                                           reason=form.cleaned_data["reason"])
            except DomainError as error:
                form.add_error(None, str(error))
            else:
                member.refresh_from_db()
                self.message_user(request, gettext("%(member)s is now %(status)s.")
                                  % {"member": member, "status": member.get_status_display()}, messages.SUCCESS)
                return HttpResponseRedirect(member_url(member))
        return self._page(request, "admin/membership/form_page.html",
                          gettext("Change the status of %(member)s") % {"member": member}, member,
                          form=form, change_url=member_url(member),
                          submit_label=gettext("Change status"))

    def merge_view(self, request, pk_a, pk_b):
        visible = self.get_queryset(request).select_related("registered_store", "tier")
        pair = {member.pk: member for member in visible.filter(pk__in=[pk_a, pk_b])}
        if pk_a == pk_b or len(pair) != 2:
            raise Http404
        return merge_review(self, request, pair[pk_a], pair[pk_b], candidate=None,
                            back_url=reverse("admin:membership_member_changelist"))

    # --- actions ------------------------------------------------------------------------------

    def _too_many(self, request, queryset) -> bool:
        if queryset[: MAX_ACTION_MEMBERS + 1].count() > MAX_ACTION_MEMBERS:
            self.message_user(request, gettext("Select at most %(max)d members for this action; "
                                               "for more, tag them by file.") % {"max": MAX_ACTION_MEMBERS},
                              messages.ERROR)
            return True
        return False

    def _action_page(self, request, queryset, form, title, action):
        return self._page(request, "admin/membership/member/action_form.html", title, form=form,
                          action=action, selected=queryset.values_list("pk", flat=True),
                          count=queryset.count(), select_across=request.POST.get("select_across", "0"),
                          index=request.POST.get("index", "0"))

    def _set_status(self, request, queryset, status, title, action):
        if self._too_many(request, queryset):
            return None
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_bound or not form.is_valid():
            return self._action_page(request, queryset, form, title, action)
        done = 0
        for member in queryset:
            try:
                services.member_status_set(member=member, status=status, actor=request.user,
                                           reason=form.cleaned_data["reason"])
                done += 1
            except DomainError as error:
                self.message_user(request, f"{member.member_no}: {error}", messages.ERROR)
        if done:
            self.message_user(request, ngettext("%(count)d member changed.", "%(count)d members changed.", done)
                              % {"count": done}, messages.SUCCESS)
        return None

    @admin.action(description=_("Freeze selected members"), permissions=["change"])
    def freeze_members(self, request, queryset):
        return self._set_status(request, queryset, Member.Status.FROZEN, gettext("Freeze members"),
                                "freeze_members")

    @admin.action(description=_("Unfreeze selected members"), permissions=["change"])
    def unfreeze_members(self, request, queryset):
        return self._set_status(request, queryset, Member.Status.ACTIVE, gettext("Unfreeze members"),
                                "unfreeze_members")

    @admin.action(description=_("Close selected members"), permissions=["change"])
    def close_members(self, request, queryset):
        return self._set_status(request, queryset, Member.Status.CLOSED, gettext("Close members"),
                                "close_members")

    def _tag_form(self, request, queryset, title, action):
        if self._too_many(request, queryset):
            return None, None
        form = TagChoiceForm(request.POST if "apply" in request.POST else None)
        if not form.is_bound or not form.is_valid():
            return None, self._action_page(request, queryset, form, title, action)
        return form.cleaned_data["tag"], None

    @admin.action(description=_("Add a tag to selected members"), permissions=["change"])
    def tag_members(self, request, queryset):
        tag, page = self._tag_form(request, queryset, gettext("Add a tag"), "tag_members")
        if tag is None:
            return page
        result = services.members_tag(tag=tag, member_nos=queryset.values_list("member_no", flat=True),
                                      actor=request.user)
        self.message_user(request, gettext("Tag %(tag)s: %(added)d added, %(already)d already tagged.")
                          % {"tag": tag, "added": result.added, "already": result.already}, messages.SUCCESS)
        return None

    @admin.action(description=_("Remove a tag from selected members"), permissions=["change"])
    def untag_members(self, request, queryset):
        tag, page = self._tag_form(request, queryset, gettext("Remove a tag"), "untag_members")
        if tag is None:
            return page
        removed = services.members_untag(tag=tag, members=queryset)
        self.message_user(request, gettext("Tag %(tag)s removed from %(count)d members.")
                          % {"tag": tag, "count": removed}, messages.SUCCESS)
        return None

    @admin.action(description=_("Merge the two selected members"), permissions=["merge"])
    def merge_two_members(self, request, queryset):
        pks = list(queryset.order_by("pk").values_list("pk", flat=True)[:3])
        if len(pks) != 2:
            self.message_user(request, gettext("Select exactly two members to merge."), messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:membership_member_merge", args=pks))

    # --- import and export ----------------------------------------------------------------------

    def has_import_permission(self, request):
        # The import writes members of any store named in the file: a headquarters task.
        return user_is_hq(request.user) and super().has_import_permission(request)

    def get_import_resource_classes(self, request):
        return [MemberFileImportResource]

    def get_export_resource_classes(self, request):
        if request.user.has_perm(PERMISSION_EXPORT_FULL):
            return [MemberMaskedExportResource, MemberFullExportResource]
        return [MemberMaskedExportResource]

    def get_data_for_export(self, request, queryset, **kwargs):
        resource_class = self.choose_export_resource_class(kwargs.get("export_form"), request)
        full = issubclass(resource_class, MemberFullExportResource)
        if full and not request.user.has_perm(PERMISSION_EXPORT_FULL):
            raise PermissionDenied
        data = super().get_data_for_export(request, queryset, **kwargs)
        personal_data_access_log(
            user=request.user, action=PersonalDataAccess.Action.EXPORT,
            detail=f"{len(data)} rows, {'full' if full else 'masked'}", ip_address=client_ip(request),
        )
        return data


@admin.register(MemberCard)
class MemberCardAdmin(MemberRowAdmin):
    list_display = ["card_no", "member_link", "status", "issued_at", "issued_store"]
    list_filter = ["status"]
    list_select_related = ["member", "issued_store"]
    search_fields = ["card_no"]
    search_help_text = _("Exact member card number.")
    exact_search_field = "card_no"


@admin.register(MemberIdentity)
class MemberIdentityAdmin(MemberRowAdmin):
    list_display = ["external_no", "source", "kind", "member_link", "created_at"]
    list_filter = ["kind", "source"]
    list_select_related = ["member"]
    search_fields = ["external_no"]
    search_help_text = _("Exact number in the other system.")
    exact_search_field = "external_no"


@admin.register(PersonalDataAccess)
class PersonalDataAccessAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The PIPL audit trail: who saw a full ID number or exported personal data."""

    list_display = ["created_at", "user", "action", "object_repr", "detail", "ip_address"]
    list_filter = ["action", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["=object_id", "=user__username"]
    search_help_text = _("Exact subject id or user name.")
