"""Tags: the list with member counts, and tagging members by an uploaded file of member numbers."""

import csv
import io

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from core.files import escape_cell
from membership import services
from membership.admin.files import MemberNumberFileError, member_numbers_from_file
from membership.admin.forms import BulkTagForm
from membership.models import Member, Tag
from membership.queries import members_in_scope
from stores.admin_base import BaseAdmin
from stores.queries import user_is_hq


@admin.register(Tag)
class TagAdmin(BaseAdmin):
    list_display = ["name", "description", "member_count", "bulk_link", "created_at"]
    search_fields = ["name"]
    change_form_template = "admin/membership/tag/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("member_tags"))

    @admin.display(description=_("members"), ordering="member_count")
    def member_count(self, obj):
        return obj.member_count

    @admin.display(description=_("tag by file"))
    def bulk_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:membership_tag_bulk", args=[obj.pk]),
                           gettext("upload member numbers"))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/bulk/", wrap(self.bulk_view), name="membership_tag_bulk"),
            path("<path:object_id>/bulk/unknown.csv", wrap(require_POST(self.unknown_csv_view)),
                 name="membership_tag_bulk_unknown"),
            *super().get_urls(),
        ]

    def _tag_for_bulk(self, request, object_id) -> Tag:
        tag = self.get_object(request, unquote(object_id))
        if tag is None:
            raise Http404
        if not self.has_change_permission(request, tag):
            raise PermissionDenied
        return tag

    def bulk_view(self, request, object_id):
        tag = self._tag_for_bulk(request, object_id)
        form = BulkTagForm(request.POST or None, request.FILES or None)
        result = None
        if request.method == "POST" and form.is_valid():
            try:
                numbers = member_numbers_from_file(form.cleaned_data["file"])
            except MemberNumberFileError as error:
                form.add_error("file", str(error.message))
            else:
                result = self._tag_numbers(request, tag, numbers)
        return TemplateResponse(request, "admin/membership/tag/bulk_tag.html", {
            **self.admin_site.each_context(request),
            "title": gettext("Tag members by file: %(tag)s") % {"tag": tag},
            "opts": self.opts,
            "original": tag,
            "form": form,
            "result": result,
            "unknown_shown": result.unknown[:200] if result else [],
            "unknown_all": "\n".join(result.unknown) if result else "",
            "change_url": reverse("admin:membership_tag_change", args=[tag.pk]),
            "unknown_url": reverse("admin:membership_tag_bulk_unknown", args=[tag.pk]),
        })

    def _tag_numbers(self, request, tag, numbers):
        wanted = list(dict.fromkeys(numbers))
        if not user_is_hq(request.user):
            # Members of other stores are not the user's to tag: they are reported as unknown.
            visible = set()
            for start in range(0, len(wanted), 5000):
                visible.update(members_in_scope(Member.objects.filter(member_no__in=wanted[start:start + 5000]),
                                                request.user).values_list("member_no", flat=True))
            result = services.members_tag(tag=tag, member_nos=[no for no in wanted if no in visible],
                                          actor=request.user)
            result.unknown = [no for no in wanted if no not in visible]
            return result
        return services.members_tag(tag=tag, member_nos=wanted, actor=request.user)

    def unknown_csv_view(self, request, object_id):
        tag = self._tag_for_bulk(request, object_id)
        numbers = [line.strip() for line in request.POST.get("numbers", "").splitlines() if line.strip()]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["member_no"])
        writer.writerows([escape_cell(number)] for number in numbers)
        response = HttpResponse("\ufeff" + buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="unknown-member-numbers-tag-{tag.pk}.csv"'
        return response
