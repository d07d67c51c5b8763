"""Coupon pages of the service desk (/desk/coupons/): large type, keyboard only.

A clerk finds a member by number or phone and sees the coupons they can use at this store (and any others they
hold), then types a poster's public claim code to claim its coupon for them: for elderly members without a
smartphone, who cannot scan the code themselves. Every write goes through campaigns.services; these views
parse, call and present.
"""

import re

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from campaigns.forms import CouponClaimForm
from campaigns.queries import coupon_discount_text, member_coupons_open, member_coupons_usable
from campaigns.services import coupon_claim
from core.errors import DomainError
from core.forms import add_service_error
from membership.models import Member
from membership.queries import members_search
from stores.desk import desk_view

SEARCH_MAX_LENGTH = 100
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _member_or_none(member_no: str) -> Member | None:
    if not (member_no.isascii() and member_no.isdigit() and len(member_no) <= 12):
        return None
    return Member.objects.select_related("tier").filter(member_no=member_no).first()


def _shown(coupon) -> dict:
    """A coupon as the clerk reads it out: code, name, what it is worth, until when."""
    return {
        "code": coupon.code, "name": coupon.template.name, "discount_text": coupon_discount_text(coupon.template),
        "valid_until": coupon.valid_until or coupon.template.valid_until,
    }


@require_http_methods(["GET"])
@desk_view
def coupon_search(request: HttpRequest) -> HttpResponse:
    """Find the member whose coupons to show: one hit opens them at once, a family's phone lists everyone."""
    # Control characters (a reader's stray NUL, a pasted tab) are never part of a number or name.
    query = _CONTROL_CHARACTERS.sub("", request.GET.get("q") or "").strip()[:SEARCH_MAX_LENGTH]
    results = members_search(query) if query else []
    if len(results) == 1:
        return redirect("coupons:member", member_no=results[0].member_no)
    return render(request, "campaigns/desk/search.html", {"query": query, "results": results, "searched": bool(query)})


@require_http_methods(["GET", "POST"])
@desk_view
def member_coupons(request: HttpRequest, member_no: str) -> HttpResponse:
    """The member's coupons, and a public claim code typed by the clerk claimed for them."""
    member = _member_or_none(member_no)
    if member is None:
        return render(request, "desk/not_found.html", {"member_no": member_no}, status=404)
    if member.status == Member.Status.MERGED and member.merged_into_id:
        return redirect("coupons:member", member_no=member.merged_into.member_no)
    can_claim = member.status == Member.Status.ACTIVE
    form = CouponClaimForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        status = 400
        if not can_claim:
            form.add_error(None, _("Only an active member can claim coupons (this one is %(status)s).")
                           % {"status": member.get_status_display()})
            status = 409
        elif form.is_valid():
            try:
                coupon = coupon_claim(claim_code=form.cleaned_data["claim_code"], member=member,
                                      store=request.desk_store, operator=request.user)
            except DomainError as error:
                if error.fields:
                    add_service_error(form, error)
                else:
                    form.add_error("claim_code", str(error))
                status = error.status if error.status < 500 else 400
            else:
                shown = _shown(coupon)
                messages.success(request, _("Coupon %(code)s claimed for %(name)s: %(coupon)s, %(discount)s.") % {
                    "code": coupon.code, "name": member.name, "coupon": shown["name"],
                    "discount": shown["discount_text"],
                })
                return redirect("coupons:member", member_no=member.member_no)
    usable = member_coupons_usable(member_id=member.pk, store=request.desk_store)
    usable_ids = {coupon.pk for coupon in usable}
    elsewhere = [coupon for coupon in member_coupons_open(member_id=member.pk) if coupon.pk not in usable_ids]
    return render(request, "campaigns/desk/member.html", {
        "member": member, "form": form, "can_claim": can_claim,
        "usable": [_shown(coupon) for coupon in usable], "elsewhere": [_shown(coupon) for coupon in elsewhere],
    }, status=status)
