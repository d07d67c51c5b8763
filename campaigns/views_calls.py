"""Call-list pages of the service desk (/desk/calls/): large type, for the clerks of a store.

A targeted campaign with a call list gives each store the members who prefer a phone call (many elderly members
have no smartphone). The store's clerks see the running campaigns that have members on their list, call them one
by one with the campaign's script in front of them and record each call's outcome; the campaign's reach counts
from it. Only the members of the desk's own store are shown; recording goes through
campaigns.services.targeting.call_record, which refuses another store's member.
"""

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from campaigns.errors import CallNotAllowed
from campaigns.models import CallAttempt, CampaignMember, TargetedCampaign
from campaigns.queries_targeting import call_list
from campaigns.services.targeting import call_record
from core.errors import DomainError
from core.forms import add_service_error
from core.http import client_ip
from core.models import PersonalDataAccess
from core.services import personal_data_access_log
from stores.desk import desk_view, forbidden

CALL_PERMISSION = "campaigns.add_callattempt"
MEMBERS_PER_PAGE = 50
ATTEMPTS_SHOWN = 10


class CallOutcomeForm(forms.Form):
    """What came of one call: the outcome (one big button each) and an optional note."""

    outcome = forms.ChoiceField(
        label=gettext_lazy("Outcome"), choices=CampaignMember.CallOutcome.choices,
        error_messages={"required": gettext_lazy("Choose how the call went."),
                        "invalid_choice": gettext_lazy("Choose how the call went.")},
    )
    note = forms.CharField(
        label=gettext_lazy("Note"), max_length=200, required=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
        help_text=gettext_lazy("What the member said, a better time to call, a new number (up to 200 characters)."),
    )


def _may_call(request: HttpRequest) -> bool:
    return request.user.has_perm(CALL_PERMISSION)


def _not_allowed(request: HttpRequest) -> HttpResponse:
    return forbidden(request, _("Your account may not work the call lists. Ask your store manager."))


def _campaign_or_none(campaign_id: int) -> TargetedCampaign | None:
    return TargetedCampaign.objects.filter(
        pk=campaign_id, status=TargetedCampaign.Status.RUNNING, call_list=True).first()


def _still_to_call(members):
    """Members not called yet and those who did not answer."""
    return members.filter(call_outcome__in=["", CampaignMember.CallOutcome.NO_ANSWER])


def _not_found(request: HttpRequest) -> HttpResponse:
    return render(request, "campaigns/desk_calls_not_found.html", status=404)


@require_http_methods(["GET"])
@desk_view
def call_campaigns(request: HttpRequest) -> HttpResponse:
    """The running campaigns with members on this store's call list, with how far the list is worked off."""
    if not _may_call(request):
        return _not_allowed(request)
    rows = []
    for campaign in TargetedCampaign.objects.filter(
            status=TargetedCampaign.Status.RUNNING, call_list=True).order_by("ends_on", "pk"):
        members = call_list(campaign=campaign, store=request.desk_store)
        total = members.count()
        if not total:
            continue
        rows.append({
            "campaign": campaign, "total": total,
            "to_call": _still_to_call(members).count(),
            "reached": members.filter(call_outcome=CampaignMember.CallOutcome.REACHED).count(),
        })
    return render(request, "campaigns/desk_calls.html", {"rows": rows})


@require_http_methods(["GET"])
@desk_view
def call_list_page(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """One campaign's call list at this store: who to call, their number, tier and how the last call went."""
    if not _may_call(request):
        return _not_allowed(request)
    campaign = _campaign_or_none(campaign_id)
    if campaign is None:
        return _not_found(request)
    members = call_list(campaign=campaign, store=request.desk_store)
    show_all = request.GET.get("show") == "all"
    to_call = _still_to_call(members)
    shown = members if show_all else to_call
    shown = shown.select_related("member", "member__tier")
    page = Paginator(shown, MEMBERS_PER_PAGE).get_page(request.GET.get("page"))
    # The page shows phone numbers in full (the clerk dials them): who saw which page is kept.
    personal_data_access_log(
        user=request.user, action=PersonalDataAccess.Action.CALL_LIST, subject=campaign, ip_address=client_ip(request),
        detail=f"call list {request.desk_store.code}, page {page.number}, {len(page.object_list)} members",
    )
    return render(request, "campaigns/desk_calls_list.html", {
        "campaign": campaign, "page": page, "show_all": show_all, "total": members.count(),
        "to_call": to_call.count(),
    })


@require_http_methods(["GET", "POST"])
@desk_view
def call_member(request: HttpRequest, campaign_id: int, campaign_member_id: int) -> HttpResponse:
    """One member to call: the number, the script and the earlier calls; the outcome recorded on the list."""
    if not _may_call(request):
        return _not_allowed(request)
    campaign = _campaign_or_none(campaign_id)
    if campaign is None:
        return _not_found(request)
    campaign_member = (CampaignMember.objects.select_related("member", "member__tier", "store")
                       .filter(pk=campaign_member_id, campaign=campaign).first())
    if campaign_member is None:
        return _not_found(request)
    if campaign_member.store_id != request.desk_store.pk:
        # Another store's member: neither name nor number leaves this page.
        return forbidden(request, str(CallNotAllowed.default_message))
    form = CallOutcomeForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                call_record(campaign_member=campaign_member, outcome=form.cleaned_data["outcome"],
                            note=form.cleaned_data["note"], user=request.user, store=request.desk_store)
            except CallNotAllowed as error:
                return forbidden(request, str(error))
            except DomainError as error:
                add_service_error(form, error)
                status = error.status if error.status < 500 else 400
            else:
                outcome = CampaignMember.CallOutcome(form.cleaned_data["outcome"]).label
                messages.success(request, _("Call to %(name)s recorded: %(outcome)s.")
                                 % {"name": campaign_member.member.name, "outcome": outcome})
                return redirect("calls:list", campaign_id=campaign.pk)
    if request.method == "GET":
        personal_data_access_log(
            user=request.user, action=PersonalDataAccess.Action.CALL_LIST, subject=campaign,
            ip_address=client_ip(request),
            detail=f"call list {request.desk_store.code}, member {campaign_member.member.member_no}",
        )
    attempts = (CallAttempt.objects.filter(campaign_member=campaign_member)
                .select_related("called_by").order_by("-called_at", "-pk")[:ATTEMPTS_SHOWN])
    return render(request, "campaigns/desk_calls_member.html", {
        "campaign": campaign, "campaign_member": campaign_member, "member": campaign_member.member, "form": form,
        "attempts": attempts, "outcomes": CampaignMember.CallOutcome.choices,
    }, status=status)
