"""Duplicate members: the review of two records side by side (merge one into the other, or record that they
are two people) and the list of candidate pairs found by the nightly detection."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from approvals.admin import approval_outcome_message, approval_request_url
from core.admin import CappedCountPaginator, DefaultStatusFilter, ReadOnlyAdminMixin
from core.errors import DomainError
from membership import services
from membership.admin.common import link_to_member, member_url
from membership.admin.forms import MergeReviewForm
from membership.models import Member, MergeCandidate
from membership.queries import member_rows_in_scope
from membership.tasks import merge_candidates_detect
from stores.admin_base import BaseAdmin

PERMISSION_MERGE = "membership.merge_member"


def _merge_rows(member_a: Member, member_b: Member) -> list[tuple]:
    def describe(member):
        identities = ", ".join(str(identity) for identity in member.identities.all()[:10])
        cards = ", ".join(card.card_no for card in member.cards.all()[:10])
        return [
            (_("member number"), link_to_member(member)),
            (_("name"), member.name),
            (_("gender"), member.get_gender_display()),
            (_("birth date"), member.birth_date or "-"),
            (_("ID number"), member.id_number_masked or "-"),
            (_("phone"), member.phone_masked or "-"),
            (_("family contact phone"), member.family_phone_masked or "-"),
            (_("tier"), member.tier),
            (_("points"), member.points),
            (_("registering store"), member.registered_store or "-"),
            (_("registered at"), member.registered_at.strftime("%Y-%m-%d")),
            (_("status"), member.get_status_display()),
            (_("identities"), identities or "-"),
            (_("member cards"), cards or "-"),
        ]

    rows_a, rows_b = describe(member_a), describe(member_b)
    return [(label, value_a, value_b, str(value_a) != str(value_b))
            for (label, value_a), (_label, value_b) in zip(rows_a, rows_b, strict=True)]


def merge_review(model_admin, request, member_a: Member, member_b: Member, *, candidate, back_url):
    """The two records side by side: merge one into the other, or record that they are two people."""
    may_merge = request.user.has_perm(PERMISSION_MERGE)
    form = MergeReviewForm(request.POST if "_merge" in request.POST else None, member_a=member_a, member_b=member_b)
    if request.method == "POST":
        if not may_merge:
            raise PermissionDenied
        if "_dismiss" in request.POST and candidate is not None:
            try:
                services.merge_candidate_dismiss(candidate=candidate, actor=request.user)
            except DomainError as error:
                model_admin.message_user(request, str(error), messages.ERROR)
            else:
                model_admin.message_user(request, gettext("Recorded: %(a)s and %(b)s are not the same person.")
                                         % {"a": member_a.member_no, "b": member_b.member_no}, messages.SUCCESS)
            return HttpResponseRedirect(back_url)
        if form.is_valid():
            survivor = form.members[form.cleaned_data["survivor"]]
            merged = member_b if survivor.pk == member_a.pk else member_a
            try:
                approval = services.member_merge_request(survivor=survivor, merged=merged, requested_by=request.user,
                                                         reason=form.cleaned_data["reason"], candidate=candidate)
            except DomainError as error:
                form.add_error(None, str(error))
            else:
                return _merge_done(model_admin, request, approval, survivor, merged)
    context = {
        "member_a": member_a,
        "member_b": member_b,
        "rows": _merge_rows(member_a, member_b),
        "form": form,
        "candidate": candidate,
        "may_merge": may_merge,
        "ids_conflict": services.ids_conflict(member_a, member_b),
        "back_url": back_url,
        "opts": model_admin.opts,
    }
    return TemplateResponse(request, "admin/membership/merge_review.html", {
        **model_admin.admin_site.each_context(request),
        "title": gettext("Merge review: %(a)s and %(b)s") % {"a": member_a.member_no, "b": member_b.member_no},
        **context,
    })


def _merge_done(model_admin, request, approval, survivor, merged):
    waits = approval_outcome_message(
        model_admin, request, approval,
        pending=gettext("The ID numbers differ, so another person must approve this merge."),
        done=gettext("%(merged)s was merged into %(survivor)s.") % {"merged": merged.member_no,
                                                                    "survivor": survivor.member_no},
    )
    return HttpResponseRedirect(approval_request_url(approval) if waits else member_url(survivor))


def _side(attribute: str, label, getter):
    """A list column showing one value of member A or member B of a candidate."""

    def display(self, obj):
        return getter(getattr(obj, attribute))

    display.short_description = label
    return display


class CandidateStatusFilter(DefaultStatusFilter):
    """The review list opens on the pairs still to review."""

    status_choices = MergeCandidate.Status.choices
    default = MergeCandidate.Status.OPEN


@admin.register(MergeCandidate)
class MergeCandidateAdmin(ReadOnlyAdminMixin, BaseAdmin):
    store_path = ("member_a__registered_store", "member_b__registered_store")
    list_display = ["detected_at", "reason", "status", "review_link",
                    "a_name", "a_phone", "a_id_number", "a_birth_date", "a_points", "a_store",
                    "b_name", "b_phone", "b_id_number", "b_birth_date", "b_points", "b_store"]
    list_filter = [CandidateStatusFilter, "reason"]
    list_select_related = ["member_a__registered_store", "member_b__registered_store"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    change_list_template = "admin/membership/mergecandidate/change_list.html"

    def scope_rows(self, queryset, user):
        # A pair is shown to store staff only when they may see both members (membership.queries.members_in_scope:
        # registered at their stores or bought there in the last 12 months), as the merge page asks.
        queryset = member_rows_in_scope(queryset, user, member_path="member_a")
        return member_rows_in_scope(queryset, user, member_path="member_b")

    @admin.display(description=_("review"))
    def review_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:membership_mergecandidate_review", args=[obj.pk]),
                           gettext("review"))

    a_name = _side("member_a", _("A: name"), lambda m: m.name)
    a_phone = _side("member_a", _("A: phone"), lambda m: m.phone_masked or m.family_phone_masked or "-")
    a_id_number = _side("member_a", _("A: ID number"), lambda m: m.id_number_masked or "-")
    a_birth_date = _side("member_a", _("A: birth date"), lambda m: m.birth_date or "-")
    a_points = _side("member_a", _("A: points"), lambda m: m.points)
    a_store = _side("member_a", _("A: store"), lambda m: m.registered_store or "-")
    b_name = _side("member_b", _("B: name"), lambda m: m.name)
    b_phone = _side("member_b", _("B: phone"), lambda m: m.phone_masked or m.family_phone_masked or "-")
    b_id_number = _side("member_b", _("B: ID number"), lambda m: m.id_number_masked or "-")
    b_birth_date = _side("member_b", _("B: birth date"), lambda m: m.birth_date or "-")
    b_points = _side("member_b", _("B: points"), lambda m: m.points)
    b_store = _side("member_b", _("B: store"), lambda m: m.registered_store or "-")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/review/", wrap(self.review_view), name="membership_mergecandidate_review"),
            path("detect/", wrap(require_POST(self.detect_view)), name="membership_mergecandidate_detect"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        extra_context["may_detect"] = request.user.has_perm(PERMISSION_MERGE)
        return super().changelist_view(request, extra_context)

    def review_view(self, request, object_id):
        candidate = self.get_object(request, unquote(object_id))
        if candidate is None:
            raise Http404
        members = Member.objects.select_related("registered_store", "tier")
        return merge_review(self, request, members.get(pk=candidate.member_a_id),
                            members.get(pk=candidate.member_b_id), candidate=candidate,
                            back_url=reverse("admin:membership_mergecandidate_changelist"))

    def detect_view(self, request):
        if not request.user.has_perm(PERMISSION_MERGE):
            raise PermissionDenied
        merge_candidates_detect.delay()
        self.message_user(request, gettext("Duplicate detection has started; new candidates appear in this list "
                                           "when it finishes."), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:membership_mergecandidate_changelist"))
