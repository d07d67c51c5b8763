"""The admin pieces every screen of the project shares, knowing nothing of stores or any domain app.

The store-scoped base every screen is built on (`BaseAdmin`, `store_path`, the
store list filter) is in stores/admin_base.py.
"""

from decimal import Decimal
from functools import partial

from django.contrib import admin, messages
from django.contrib.admin import helpers as admin_helpers
from django.contrib.admin import utils as admin_utils
from django.contrib.admin.templatetags import admin_list
from django.contrib.admin.utils import unquote
from django.core.paginator import Paginator
from django.db import connections, models
from django.http import Http404, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from core.dates import month_last_full, month_to_date
from core.errors import DomainError
from core.files import escape_cell
from core.numbers import money_display


class CappedCountPaginator(Paginator):
    """Counting 25 million rows takes seconds on PostgreSQL: count at most `cap` rows.

    An unfiltered list on PostgreSQL shows the planner's row estimate instead;
    a filtered list beyond the cap shows the cap (staff narrow it with search).
    """

    cap = 10_000

    @cached_property
    def count(self):
        counted = self.object_list[: self.cap + 1].count()
        if counted <= self.cap:
            return counted
        query = self.object_list.query
        connection = connections[self.object_list.db]
        if connection.vendor == "postgresql" and not query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [self.object_list.model._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] > counted:
                return row[0]
        return counted


def local_time(moment, *, seconds: bool = False) -> str:
    """A time as staff read it: in the project's time zone (Asia/Shanghai), to the minute or the second; "" for
    none."""
    if moment is None:
        return ""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def money_display_for_field(value, field, empty_value_display, avoid_link=False):
    """The admin's `display_for_field` with money as people read it: a model's amount (a DecimalField with two
    places) in a list column or a read-only field shows 68,551.50 instead of 68551.50; everything else as
    Django shows it. Installed by `admin_money_display_install` (CoreConfig.ready)."""
    if (isinstance(field, models.DecimalField) and field.decimal_places == 2
            and not getattr(field, "flatchoices", None) and value not in field.empty_values):
        return money_display(value)
    return admin_utils.display_for_field(value, field, empty_value_display, avoid_link)


def admin_money_display_install() -> None:
    """Make the admin's lists and read-only fields show amounts with `money_display_for_field`: they call
    `display_for_field` by the name each of their modules imported."""
    admin_helpers.display_for_field = money_display_for_field
    admin_list.display_for_field = money_display_for_field


def summary_cell(value):
    """A cell of a summary table: a Decimal as money (two decimals, thousands separated), the rest as it is."""
    return money_display(value) if isinstance(value, Decimal) else value


def summary_table(headers, rows, *, css_class: str, footer=None, empty=None):
    """A small read-only table on a change page (the cells are escaped unless already safe).

    Decimal cells are amounts and show as money (68,551.50). `empty`, when given, stands in for a table without
    rows.
    """
    rows = [[summary_cell(cell) for cell in row] for row in rows]
    if not rows and empty is not None:
        return format_html("<p>{}</p>{}", empty, footer or "")
    head = format_html_join("", "<th>{}</th>", ((header,) for header in headers))
    body = format_html_join("", "<tr>{}</tr>", (
        (format_html_join("", "<td>{}</td>", ((cell,) for cell in row)),) for row in rows
    ))
    table = format_html('<table class="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
                        css_class, head, body)
    return format_html("{}<p>{}</p>", table, footer) if footer else table


def period_choices(request, *, start_name: str, end_name: str, today=None) -> list[dict]:
    """The one-click periods of a report's form, "last full month" and "this month": each a link to the same page
    with the period's two fields filled in ISO dates (the form's other choices kept; the page number and an
    export dropped). Shown by the template admin/includes/period_choices.html."""
    today = today or timezone.localdate()
    choices = []
    for key, label, (starts_on, ends_on) in (
        ("last-full-month", _("last full month"), month_last_full(today)),
        ("this-month", _("this month"), month_to_date(today)),
    ):
        query = request.GET.copy()
        for name in ("page", "export"):
            query.pop(name, None)
        query[start_name] = starts_on.isoformat()
        query[end_name] = ends_on.isoformat()
        choices.append({"key": key, "label": label, "url": "?" + query.urlencode(), "starts_on": starts_on,
                        "ends_on": ends_on})
    return choices


def copy_saved(obj, saved) -> None:
    """Make the admin form's unsaved `obj` the row a service has just saved (`saved`): the admin then logs the
    addition and leads to that row's page as if it had saved it itself."""
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


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
    "CappedCountPaginator", "DefaultStatusFilter", "ReadOnlyAdminMixin", "SafeExportMixin", "ServiceCallsMixin",
    "ServiceRefusalMixin", "admin", "admin_money_display_install", "admin_page_add", "change_page", "copy_saved",
    "local_time", "money_display_for_field", "period_choices", "summary_cell", "summary_table",
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
