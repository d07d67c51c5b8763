"""The service desk's missed-receipt page (补积分, F12 on a member's page).

The clerk types the receipt number of a sale the POS sent without a member; the desk's store is the claiming
store, so only its own receipts are found. The service decides; this page shows the purchase found with the points
credited, or the refusal.
"""

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from core.errors import DomainError
from core.forms import add_service_error
from membership.models import Member, PurchaseClaim
from membership.queries import member_points_pending
from membership.services import purchase_points_pending
from membership.services.claims import claim_window_days, purchase_claim
from stores.desk import desk_view, forbidden

CLAIM_PERMISSION = "membership.add_purchaseclaim"


class PurchaseClaimForm(forms.Form):
    receipt_no = forms.CharField(
        label=gettext_lazy("Receipt number"), max_length=64,
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off", "inputmode": "latin"}),
        error_messages={"required": gettext_lazy("Type the receipt number printed on the receipt.")},
    )


def _member(member_no: str) -> Member | None:
    if not (member_no.isascii() and member_no.isdigit() and len(member_no) <= 12):
        return None
    return Member.objects.select_related("tier").filter(member_no=member_no).first()


@require_http_methods(["GET", "POST"])
@desk_view
def purchase_claim_page(request: HttpRequest, member_no: str) -> HttpResponse:
    """Claim a receipt of the desk's store for the member; after a claim, the purchase and the points credited."""
    if not request.user.has_perm(CLAIM_PERMISSION):
        return forbidden(request, _("Your account may not claim receipts for members. "
                                    "Ask your store manager for the permission."))
    member = _member(member_no)
    if member is None:
        return render(request, "desk/not_found.html", {"member_no": member_no}, status=404)
    if member.status == Member.Status.MERGED and member.merged_into_id:
        return redirect("desk:claim", member_no=member.merged_into.member_no)
    form = PurchaseClaimForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                claim = purchase_claim(store=request.desk_store, receipt_no=form.cleaned_data["receipt_no"],
                                       member=member, channel=PurchaseClaim.Channel.DESK, operator=request.user)
            except DomainError as error:
                add_service_error(form, error, only_form_fields=True)
                status = error.status if error.status < 500 else 400
            else:
                return redirect(reverse("desk:claim", args=[member.member_no]) + f"?claimed={claim.pk}")
        else:
            status = 400
    return render(request, "desk/claim.html", {
        "member": member, "form": form, "claim": _claim_shown(request, member),
        "window_days": claim_window_days(), "points_pending": member_points_pending(member),
    }, status=status)


def _claim_shown(request: HttpRequest, member: Member) -> dict | None:
    """The claim just made (?claimed=id): only one of this member's at the clerk's stores."""
    claimed = request.GET.get("claimed", "")
    if request.method != "GET" or not (claimed.isascii() and claimed.isdigit() and len(claimed) < 19):
        return None
    claim = (PurchaseClaim.objects.select_related("purchase", "store")
             .filter(pk=int(claimed), member=member, store__in=request.desk_stores).first())
    if claim is None:
        return None
    member.refresh_from_db(fields=["points"])
    return {"claim": claim, "purchase": claim.purchase, "pending": purchase_points_pending(claim.purchase)}
