"""The admin base every screen of the project uses.

`store_path` names the lookup from a row to its store ("store",
"terminal__store"; "" for stores themselves; None for master data everyone may
read), or a tuple of lookups for a row that belongs to more than one store (a
card to the store holding it and the store that sold it). Store staff then see
and change only their stores' rows: in lists, change pages, history, choices of
related rows and exports. tests/core/test_admin_scope.py tries every admin
screen with another store's objects.
"""

import operator
from functools import partial, reduce

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportModelAdmin
from simple_history.admin import SimpleHistoryAdmin

from core.errors import DomainError
from core.files import escape_cell
from stores.queries import scope_queryset, user_can_see_store


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
        return _scope(queryset, request.user, self.store_path)

    def _related_queryset(self, request, model, queryset):
        related_admin = self.admin_site._registry.get(model)
        if isinstance(related_admin, ScopedAdminMixin) and related_admin.store_path is not None:
            return _scope(queryset if queryset is not None else model._default_manager.all(),
                          request.user, related_admin.store_path)
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


class BaseAdmin(ScopedAdminMixin, SimpleHistoryAdmin):
    """Scoped, with change history."""

    list_per_page = 50


class ImportExportBaseAdmin(ScopedAdminMixin, ImportExportModelAdmin, SimpleHistoryAdmin):
    """Scoped, with change history and Excel/CSV import and export (preview before writing)."""

    list_per_page = 50

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


class DefaultStatusFilter(admin.SimpleListFilter):
    """A status filter that opens on one status (the work still to do), with "All" to see the rest.

    Subclasses name `status_choices` and `default`.
    """

    title = _("status")
    parameter_name = "status"
    status_choices: list = []
    default = ""

    def lookups(self, request, model_admin):
        return [*self.status_choices, ("all", _("All"))]

    def choices(self, changelist):
        value = self.value() or self.default
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or self.default
        if value == "all":
            return queryset
        return queryset.filter(status=value)


class SafeExportMixin:
    """For import-export resources: no exported cell can start a spreadsheet formula."""

    def export_field(self, field, instance, **kwargs):
        return escape_cell(super().export_field(field, instance, **kwargs))


class ReadOnlyAdminMixin:
    """For records written only by services: no add, change or delete from a form."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


__all__ = [
    "BaseAdmin", "DefaultStatusFilter", "ImportExportBaseAdmin", "ReadOnlyAdminMixin", "SafeExportMixin",
    "ScopedAdminMixin", "admin", "store_paths",
]


class ServiceRefusalMixin:
    """The add/change page of a model whose save goes through a service that may still refuse.

    The service's transaction has rolled back (a duplicate registered, a card sold a moment ago): the
    page is shown again with the service's message instead of an error page.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


def change_page(obj) -> HttpResponseRedirect:
    """Back to an object's change page (after a button on it)."""
    return HttpResponseRedirect(reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk]))


class ServiceCallsMixin:
    """Buttons and list actions that call a service: its refusal becomes an error message, never an error page."""

    def object_or_404(self, request, object_id):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404
        return obj

    def service_call(self, request, call, success: str, redirect) -> HttpResponseRedirect:
        """Run `call()`; say `success` or the service's refusal; answer `redirect`."""
        try:
            call()
        except DomainError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(request, success, messages.SUCCESS)
        return redirect

    def service_each(self, request, objects, call, *, done_message, label=str) -> int:
        """Run `call(obj)` for each object: a refusal names the object and the others go on. Say how many were
        done (`done_message(count)`); return that count."""
        done = 0
        for obj in objects:
            try:
                call(obj)
            except DomainError as error:
                self.message_user(request, f"{label(obj)}: {error}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, done_message(done), messages.SUCCESS)
        return done


def admin_page_add(site: admin.AdminSite, *, app_label: str, route: str, url_name: str, view, title,
                   object_name: str, may_view) -> None:
    """Add a page that belongs to no model to `site`: its URL in front of the site's own, and an entry in its
    app's section of the index and the side navigation for the users `may_view(user)` admits. Once per site."""
    marker = f"_page_added_{url_name}"
    if getattr(site, marker, False):
        return
    setattr(site, marker, True)
    site_get_urls = site.get_urls
    site_get_app_list = site.get_app_list

    def get_urls():
        # In front of the site's own patterns, whose last one catches every other address.
        return [path(route, site.admin_view(partial(view, site=site)), name=url_name), *site_get_urls()]

    def get_app_list(request, app_label_asked=None):
        app_list = site_get_app_list(request, app_label_asked)
        if not may_view(request.user):
            return app_list
        for app in app_list:
            if app["app_label"] == app_label:
                app["models"].append({
                    "name": title, "object_name": object_name, "perms": {"view": True},
                    "admin_url": reverse(f"{site.name}:{url_name}"), "add_url": None, "view_only": True,
                })
                app["models"].sort(key=lambda model: str(model["name"]))
        return app_list

    site.get_urls = get_urls
    site.get_app_list = get_app_list
