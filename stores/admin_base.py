"""The store-scoped admin base every screen of the project uses.

`store_path` names the lookup from a row to its store ("store",
"terminal__store"; "" for stores themselves; None for master data everyone may
read), or a tuple of lookups for a row that belongs to more than one store (a
card to the store holding it and the store that sold it). Store staff then see
and change only their stores' rows: in lists, change pages, history, choices of
related rows and exports. tests/core/test_admin_scope.py tries every admin
screen with another store's objects. The pieces that know nothing of stores are
in core/admin.py.
"""

import operator
from functools import reduce

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin
from simple_history.admin import SimpleHistoryAdmin

from core.exports import LabelledExportForm
from core.history import ReadableHistoryMixin
from stores.queries import scope_queryset, stores_visible_to, user_can_see_store, user_is_hq


def store_paths(store_path: str | tuple[str, ...]) -> tuple[str, ...]:
    """The lookups of a `store_path`, one or several."""
    return (store_path,) if isinstance(store_path, str) else tuple(store_path)


def _scope(queryset, user, store_path: str | tuple[str, ...]):
    # A row is the user's when any of the lookups leads to one of their stores. Through foreign keys only: a
    # lookup across a one-to-many relation repeats rows, so an admin with one scopes in its own get_queryset.
    return reduce(operator.or_, (scope_queryset(queryset, user, path) for path in store_paths(store_path)))


class ScopedAdminMixin:
    store_path: str | tuple[str, ...] | None = None

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if self.store_path is None:
            return queryset
        return self.scope_rows(queryset, request.user)

    def scope_rows(self, queryset, user):
        """The rows of `queryset` the user may see: by `store_path`; an admin with a wider rule (members: also
        those who bought at the user's stores) overrides this."""
        return _scope(queryset, user, self.store_path)

    def _related_queryset(self, request, model, queryset):
        related_admin = self.admin_site._registry.get(model)
        if isinstance(related_admin, ScopedAdminMixin) and related_admin.store_path is not None:
            return related_admin.scope_rows(queryset if queryset is not None else model._default_manager.all(),
                                            request.user)
        return queryset

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is not None and hasattr(formfield, "queryset"):
            formfield.queryset = self._related_queryset(request, db_field.related_model, formfield.queryset)
        return formfield

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        formfield = super().formfield_for_manytomany(db_field, request, **kwargs)
        if formfield is not None and hasattr(formfield, "queryset"):
            formfield.queryset = self._related_queryset(request, db_field.related_model, formfield.queryset)
        return formfield

    def save_model(self, request, obj, form, change):
        if self.store_path and not any(user_can_see_store(request.user, self._store_of(obj, path))
                                       for path in store_paths(self.store_path)):
            raise PermissionDenied
        super().save_model(request, obj, form, change)

    def _store_of(self, obj, path: str):
        for part in path.split("__") if path else ():
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj

    def _ensure_visible(self, request, object_id):
        try:
            pk = self.model._meta.pk.to_python(unquote(object_id))
        except ValidationError:
            raise Http404 from None
        if self.store_path is None:
            return
        if not self.get_queryset(request).filter(pk=pk).exists():
            raise Http404

    def history_view(self, request, object_id, extra_context=None):
        self._ensure_visible(request, object_id)
        if not hasattr(self.model._meta, "simple_history_manager_attribute"):
            # A model without a history table of its own (ledgers, purchases, ...): the admin's log of the changes
            # made through its screens.
            return admin.ModelAdmin.history_view(self, request, object_id, extra_context)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self._ensure_visible(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)


class BaseAdmin(ScopedAdminMixin, ReadableHistoryMixin, SimpleHistoryAdmin):
    """Scoped, with change history."""

    list_per_page = 50


class ImportExportBaseAdmin(ScopedAdminMixin, ImportExportModelAdmin, ReadableHistoryMixin, SimpleHistoryAdmin):
    """Scoped, with change history and Excel/CSV import and export (preview before writing)."""

    list_per_page = 50
    export_form_class = LabelledExportForm  # the columns by their Chinese names

    def write_to_tmp_storage(self, import_file, input_format):
        if input_format.is_binary():
            return super().write_to_tmp_storage(import_file, input_format)
        # CSV may come as UTF-8, UTF-8 with BOM or GBK (what Chinese Excel saves); kept as UTF-8.
        data = b"".join(import_file.chunks())
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("gb18030", errors="replace")
        tmp_storage = self.get_tmp_storage_class()(
            encoding=self.from_encoding, read_mode=input_format.get_read_mode(), **self.get_tmp_storage_class_kwargs()
        )
        tmp_storage.save(text.encode(self.from_encoding))
        return tmp_storage

    def get_import_data_kwargs(self, **kwargs):
        # A file with a bad row writes nothing, also when it went bad between the preview and the
        # confirmation (a code or region changed meanwhile): the confirmed import is rolled back whole.
        return {**super().get_import_data_kwargs(**kwargs), "rollback_on_validation_errors": True}

    def process_result(self, result, request):
        if result.has_errors() or result.has_validation_errors():
            self.message_user(
                request,
                gettext("Nothing was imported: the file no longer passes the checks. Upload it again to see why."),
                messages.ERROR,
            )
            return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_import"))
        return super().process_result(result, request)


class StoreFilter(admin.SimpleListFilter):
    """The stores the user may see; rows are filtered on their own store column (`store_field`).

    Up to LINKS_AT_MOST stores are links, as any filter; more (headquarters see some 300) are one box where the
    user types a store's code or name and picks it from the browser's list (templates/admin/store_filter.html).
    The value is the store's id (links) or its code (the box).
    """

    title = _("store")
    parameter_name = "store"
    store_field = "store_id"
    template = "admin/store_filter.html"
    LINKS_AT_MOST = 20

    def lookups(self, request, model_admin):
        stores = stores_visible_to(request.user).order_by("code").values_list("pk", "code", "name")
        self._codes = {str(pk): code for pk, code, _name in stores}
        return [(str(pk), f"{code} {name}") for pk, code, name in stores]

    def _store_pk(self) -> str | None:
        value = (self.value() or "").strip()
        if value.isdigit():
            return value
        code = value.split(" ", 1)[0].upper()
        return next((pk for pk, store_code in getattr(self, "_codes", {}).items() if store_code.upper() == code),
                    None)

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        pk = self._store_pk()
        if pk is None:
            # A code that is none of the user's stores: no rows, rather than every store's.
            return queryset.none()
        return queryset.filter(**{self.store_field: int(pk)})

    def choices(self, changelist):
        choices = list(super().choices(changelist))
        if len(self.lookup_choices) <= self.LINKS_AT_MOST:
            yield from choices
            return
        pk = self._store_pk() if self.value() else None
        labels = dict(self.lookup_choices)
        yield {
            "search": True,
            "selected": pk is not None,
            "query_string": choices[0]["query_string"],  # "All": the filter cleared
            "display": labels.get(pk, ""),
            "value": self._codes.get(pk, self.value() or ""),
            "keep": sorted((name, value) for name, value in changelist.params.items()
                           if name != self.parameter_name),
            "options": [(self._codes[pk], label) for pk, label in self.lookup_choices],
        }


class HeadquartersOnlyMixin:
    """Headquarters staff and superusers only, and only with the model's permissions: store staff get neither the
    menu entry nor the pages (schedules, brand contracts, campaigns)."""

    def has_module_permission(self, request):
        return user_is_hq(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args, **kwargs):
        return user_is_hq(request.user) and super().has_add_permission(request, *args, **kwargs)

    def has_change_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return user_is_hq(request.user) and super().has_delete_permission(request, obj)


class HeadquartersRecordsMixin(HeadquartersOnlyMixin):
    """HeadquartersOnlyMixin for records that stay once made (a brand contract, a coupon template that issued, a
    promotion that gave points): ended or made inactive, never deleted."""

    def has_delete_permission(self, request, obj=None):
        return False

