"""What the membership screens share: links to a member, the small tables of a change page, read-only inlines,
the base of the lists of a member's rows, and the frame of the extra pages of a member."""

from functools import partial

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from core.admin import CappedCountPaginator, ReadOnlyAdminMixin, summary_table
from membership.models import Member
from membership.queries import member_rows_in_scope
from stores.admin_base import BaseAdmin

member_table = partial(summary_table, css_class="member-summary")


def member_url(member) -> str:
    return reverse("admin:membership_member_change", args=[member.pk])


def link_to_member(member):
    if member is None:
        return "-"
    return format_html('<a href="{}">{}</a>', member_url(member), member)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    template = "admin/membership/readonly_tabular.html"  # the rows' columns, without a code label above each

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ExactSearchMixin:
    """Search by one exact, indexed column (`exact_search_field`); never a LIKE over the table."""

    exact_search_field = ""

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        return queryset.filter(**{self.exact_search_field: term}), False


class MemberRowAdmin(ExactSearchMixin, ReadOnlyAdminMixin, BaseAdmin):
    """Read-only rows that belong to a member, on tables that grow with the members (no full counts).

    Scoped as the member is (membership.queries.members_in_scope: registered at the user's stores or bought there
    in the last 12 months), so whoever may open a member may open their cards, identities, ledgers and tier
    changes. An admin whose rows are a store's own business (purchases, returns, gift redemptions, paid tier
    sales) sets its own `store_path` ("store") and is scoped by that store instead.
    """

    store_path = "member__registered_store"
    show_full_result_count = False
    paginator = CappedCountPaginator

    def scope_rows(self, queryset, user):
        if self.store_path == MemberRowAdmin.store_path:
            return member_rows_in_scope(queryset, user, member_path="member")
        return super().scope_rows(queryset, user)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # A row of a member (or store) the user may not see looks exactly like a row that does not exist: not
        # found, as the member's own page answers, rather than Django's redirect with "doesn't exist".
        self._ensure_visible(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description=_("member"))
    def member_link(self, obj):
        return link_to_member(obj.member)


class MemberPagesMixin:
    """The extra pages of a member's admin (status, points adjustment, paid tier, ...): their frame, and the
    member a page is about."""

    def _page(self, request, template, title, obj=None, **context):
        return TemplateResponse(request, template, {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
            "original": obj,
            **context,
        })

    def _member_for(self, request, object_id, allowed) -> Member:
        # The permission is checked before the lookup, so a refusal says nothing about the member.
        member = self.get_object(request, unquote(object_id))
        if member is None:
            raise Http404
        if not allowed(request, member):
            raise PermissionDenied
        return member
