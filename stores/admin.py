from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.permissions import permission_label
from stores import services
from stores.admin_base import BaseAdmin, ImportExportBaseAdmin
from stores.models import Format, LegalEntity, Region, StaffProfile, Store, Terminal
from stores.resources import StoreResource


@admin.register(LegalEntity)
class LegalEntityAdmin(BaseAdmin):
    list_display = ["code", "name", "credit_code", "prepaid_filing_no"]
    search_fields = ["code", "name", "credit_code"]


@admin.register(Format)
class FormatAdmin(BaseAdmin):
    list_display = ["code", "name", "legal_entity", "finance_system_code", "pos_system_code", "is_active"]
    list_filter = ["is_active"]
    list_select_related = ["legal_entity"]
    search_fields = ["code", "name"]


@admin.register(Region)
class RegionAdmin(BaseAdmin):
    list_display = ["code", "name", "level", "parent"]
    list_filter = ["level", ("parent", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["parent"]
    search_fields = ["code", "name"]


class StoreForm(forms.ModelForm):
    class Meta:
        model = Store
        fields = ["code", "name", "format", "region", "address", "phone", "status", "opened_on"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "status" in self.fields:
            self.fields["status"].choices = [
                (value, label) for value, label in Store.Status.choices if value != Store.Status.CLOSED
            ]


class TerminalInline(admin.TabularInline):
    model = Terminal
    extra = 0
    fields = ["name", "key_prefix", "is_active", "last_used_at", "created_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Store)
class StoreAdmin(ImportExportBaseAdmin):
    store_path = ""
    form = StoreForm
    resource_classes = [StoreResource]
    list_display = ["code", "name", "format", "region", "status", "opened_on", "phone"]
    list_filter = ["status", "format", ("region__parent", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["format", "region__parent"]
    search_fields = ["=code", "name", "address"]
    autocomplete_fields = ["region"]
    # approvals/admin.py adds the approval history and the request to close the store.
    inlines = [TerminalInline]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status == Store.Status.CLOSED:
            return [*StoreForm.Meta.fields, "closed_on"]
        if obj is not None:
            return ["code", "closed_on"]
        return []


@admin.register(Terminal)
class TerminalAdmin(BaseAdmin):
    store_path = "store"
    list_display = ["__str__", "store", "name", "key_prefix", "is_active", "last_used_at", "created_at"]
    list_filter = ["is_active", ("store", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["store"]
    search_fields = ["name", "=store__code", "key_prefix"]
    autocomplete_fields = ["store"]
    actions = ["rotate_keys"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "store" and formfield is not None:
            # A closed store takes no new terminals (terminal_create refuses them): a form error, not a crash.
            formfield.queryset = formfield.queryset.exclude(status=Store.Status.CLOSED)
        return formfield

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["store", "name"]
        return ["store", "name", "key_prefix", "is_active", "last_used_at", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["store", "key_prefix", "last_used_at", "created_at"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        terminal, key = services.terminal_create(store_code=obj.store.code, name=obj.name)
        obj.pk = terminal.pk
        obj.key_prefix = terminal.key_prefix
        obj.created_at = terminal.created_at
        self.message_user(
            request,
            gettext("API key of %(terminal)s (shown only this once): %(key)s") % {"terminal": terminal, "key": key},
            messages.WARNING,
        )

    @admin.action(description=_("Issue new API keys (old keys stop working)"), permissions=["change"])
    def rotate_keys(self, request, queryset):
        for terminal in queryset:
            key = services.terminal_key_rotate(terminal=terminal)
            self.message_user(
                request,
                gettext("New API key of %(terminal)s (shown only this once): %(key)s")
                % {"terminal": terminal, "key": key},
                messages.WARNING,
            )


@admin.register(StaffProfile)
class StaffProfileAdmin(BaseAdmin):
    list_display = ["user", "scope", "employee_no", "store_list"]
    list_filter = ["scope"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "employee_no"]
    filter_horizontal = ["stores"]
    autocomplete_fields = ["user"]

    @admin.display(description=_("stores"))
    def store_list(self, obj):
        return ", ".join(store.code for store in obj.stores.all()[:10])

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user").prefetch_related("stores")


class StaffProfileInline(admin.StackedInline):
    model = StaffProfile
    can_delete = False
    filter_horizontal = ["stores"]
    verbose_name_plural = _("staff profile")


class PermissionLabelsMixin:
    """Permissions listed in the user's language (Django keeps their names in English, core/permissions.py)."""

    def formfield_for_manytomany(self, db_field, request=None, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.name in ("permissions", "user_permissions") and field is not None:
            field.label_from_instance = permission_label
        return field


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(Group)
class RoleAdmin(PermissionLabelsMixin, GroupAdmin):
    pass


@admin.register(User)
class StaffUserAdmin(PermissionLabelsMixin, UserAdmin):
    inlines = [StaffProfileInline]
    list_display = ["username", "first_name", "last_name", "is_staff", "is_active", "scope"]
    list_select_related = ["staff_profile"]

    @admin.display(description=_("scope"))
    def scope(self, obj):
        profile = getattr(obj, "staff_profile", None)
        return profile.get_scope_display() if profile else "-"
