"""The service desk (/desk/): large-type, keyboard-only pages for store clerks.

A clerk finds a member with one search box, registers a new one, prints the
registration slip, updates contact details, gives gifts for points (礼品兑换)
and sells or renews a paid tier (Plus). Every write goes through
membership.services; these views parse, call and present.
"""

import re
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from core.errors import DomainError
from core.forms import add_service_error
from core.numbers import money_display
from membership.errors import MemberAlreadyRegistered, MemberInvalid, MemberNotActive
from membership.forms import (
    ContactUpdateForm,
    GiftRedeemForm,
    MemberRegisterForm,
    PaidTierSaleForm,
    paid_tiers_on_sale,
)
from membership.models import GiftRedemption, Member
from membership.queries import (
    classify_search,
    gifts_available,
    likely_duplicates,
    member_points_expiring,
    member_points_pending,
    members_by_id_number,
    members_search,
)
from membership.services import (
    gift_redeem,
    member_contact_update,
    member_input_clean,
    member_register,
    paid_tier_active,
    paid_tier_buy,
)
from membership.services.benefits import member_benefits
from stores.desk import SESSION_STORE_KEY, StoreChoiceForm, desk_view, forbidden, store_choice_page

GIFT_PERMISSION = "membership.redeem_gift"
PAID_TIER_PERMISSION = "membership.sell_paid_tier"
SEARCH_MAX_LENGTH = 100
# Kinds of search that name one person; a single hit opens the member at once,
# so a clerk with an ID-card reader goes from card to member in one step.
_UNIQUE_SEARCH_KINDS = ("id_number", "member_no")
_PINYIN_INITIALS = re.compile(r"^[A-Za-z]{1,10}$")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return default


@require_POST
@desk_view(needs_store=False)
def store_choose(request: HttpRequest) -> HttpResponse:
    form = StoreChoiceForm(request.POST, stores=request.desk_stores)
    if not form.is_valid():
        return store_choice_page(request, form, status=400)
    request.session[SESSION_STORE_KEY] = form.cleaned_data["store"].pk
    return redirect(_safe_next(request, reverse("desk:search")))


@require_http_methods(["GET"])
@desk_view
def search(request: HttpRequest) -> HttpResponse:
    # Control characters (a reader's stray NUL, a pasted tab) are never part of a name or number,
    # and PostgreSQL refuses NUL in a query parameter.
    query = _CONTROL_CHARACTERS.sub("", request.GET.get("q") or "").strip()[:SEARCH_MAX_LENGTH]
    results = members_search(query) if query else []
    kind = classify_search(query).kind
    if len(results) == 1 and kind in _UNIQUE_SEARCH_KINDS:
        return redirect("desk:member", member_no=results[0].member_no)
    context = {"query": query, "results": results, "searched": bool(query)}
    if query and not results:
        context["register_url"] = _register_url_for(query, kind)
    return render(request, "desk/search.html", context)


def _register_url_for(query: str, kind: str) -> str:
    """The registration form already holding what the clerk searched for in vain."""
    field_name = {"id_number": "id_number", "phone": "phone", "name": "name"}.get(kind)
    # Pinyin initials (zxy) are how a name was searched, not the name itself.
    if kind == "name" and _PINYIN_INITIALS.match(query):
        field_name = None
    url = reverse("desk:register")
    return f"{url}?{urlencode({field_name: query})}" if field_name else url


def _already_registered(form, member: Member) -> None:
    form.add_error("id_number", str(MemberAlreadyRegistered(member_no=member.member_no)))


@require_http_methods(["GET", "POST"])
@desk_view
def register(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        prefill = {name: request.GET[name][:50] for name in ("name", "phone", "id_number") if request.GET.get(name)}
        return _register_page(request, MemberRegisterForm(initial=prefill))
    form = MemberRegisterForm(request.POST)
    if not form.is_valid():
        return _register_page(request, form, status=400)
    data = form.member_input()
    try:
        values = member_input_clean(data)
    except MemberInvalid as error:
        add_service_error(form, error)
        return _register_page(request, form, status=400)
    if values["id_number_digest"]:
        existing = members_by_id_number(data.id_number).first()
        if existing is not None:
            _already_registered(form, existing)
            return _register_page(request, form, status=409, existing=existing)
    duplicates = likely_duplicates(
        name=values["name"], phone=values["phone"], family_phone=values["family_phone"],
        id_number=data.id_number, birth_date=values["birth_date"],
    )
    confirmed = request.POST.get("confirm") == "1"
    if duplicates and not (confirmed and {m.pk for m in duplicates} <= form.duplicate_ids_seen()):
        return _register_page(request, form, duplicates=duplicates)
    try:
        member = member_register(data=data, store=request.desk_store, registered_by=request.user,
                                 channel=Member.Channel.DESK)
    except MemberInvalid as error:
        add_service_error(form, error)
        return _register_page(request, form, status=400)
    except MemberAlreadyRegistered as error:
        # Someone registered the same ID number at another desk a moment ago.
        form.add_error("id_number", str(error))
        return _register_page(request, form, status=409)
    messages.success(request, _("Member %(member_no)s registered. Print the slip for the member to sign.")
                     % {"member_no": member.member_no})
    return redirect(reverse("desk:member", kwargs={"member_no": member.member_no}) + "?registered=1")


def _register_page(request, form, *, status: int = 200, duplicates=(), existing=None) -> HttpResponse:
    if duplicates:
        # Rebinding keeps what the clerk typed and records which matches they were shown.
        data = form.data.copy()
        data["duplicates_seen"] = ",".join(str(member.pk) for member in duplicates)
        form = MemberRegisterForm(data)
        form.is_valid()
    _focus(form, default=None if duplicates else "name")
    return render(request, "desk/register.html",
                  {"form": form, "duplicates": duplicates, "existing": existing}, status=status)


def _focus(form, *, default: str | None) -> None:
    """Put the cursor where the clerk has to type next: the first field in error, else `default`."""
    target = next((name for name in form.fields if name in form.errors), default)
    if target is not None:
        form.fields[target].widget.attrs["autofocus"] = True


def _member_or_none(member_no: str) -> Member | None:
    if not (member_no.isascii() and member_no.isdigit() and len(member_no) <= 12):
        return None
    return (Member.objects.select_related("tier", "paid_tier", "registered_store__format__legal_entity")
            .filter(member_no=member_no).first())


def _not_found(request: HttpRequest, member_no: str) -> HttpResponse:
    return render(request, "desk/not_found.html", {"member_no": member_no}, status=404)


@require_http_methods(["GET"])
@desk_view
def member_detail(request: HttpRequest, member_no: str) -> HttpResponse:
    member = _member_or_none(member_no)
    if member is None:
        return _not_found(request, member_no)
    if member.status == Member.Status.MERGED and member.merged_into_id:
        return redirect("desk:member", member_no=member.merged_into.member_no)
    return render(request, "desk/member.html", {
        "member": member,
        "identities": member.identities.all(),
        "cards": member.cards.all(),
        "points_entries": member.points_entries.select_related("store")[:10],
        "just_registered": request.GET.get("registered") == "1",
        "issuer": member.registered_store.legal_entity if member.registered_store else None,
        **_points_summary(member),
        "can_redeem_gift": request.user.has_perm(GIFT_PERMISSION) and member.status == Member.Status.ACTIVE,
        "can_sell_paid_tier": request.user.has_perm(PAID_TIER_PERMISSION) and member.status == Member.Status.ACTIVE,
        "benefits": member_benefits(member),
    })


def _points_summary(member: Member) -> dict:
    """Tier and points as the clerk tells them to the member: usable, pending, owed, expiring."""
    return {
        "paid_tier": paid_tier_active(member),
        "points_pending": member_points_pending(member),
        "points_expiring": member_points_expiring(member=member),
    }


@require_http_methods(["GET", "POST"])
@desk_view
def contact_update(request: HttpRequest, member_no: str) -> HttpResponse:
    member = _member_or_none(member_no)
    if member is None or member.status == Member.Status.MERGED:
        return _not_found(request, member_no)
    if request.method == "GET":
        form = ContactUpdateForm(initial={
            "address": member.address,
            "contact_channel": member.contact_channel,
            "marketing_consent": member.marketing_consent,
        })
        return _contact_page(request, member, form)
    form = ContactUpdateForm(request.POST)
    if not form.is_valid():
        return _contact_page(request, member, form, status=400)
    try:
        member_contact_update(member=member, actor=request.user, store=request.desk_store, **form.changes())
    except MemberInvalid as error:
        add_service_error(form, error)
        return _contact_page(request, member, form, status=400)
    except MemberNotActive as error:
        form.add_error(None, str(error))
        return _contact_page(request, member, form, status=409)
    messages.success(request, _("Contact details saved."))
    return redirect("desk:member", member_no=member.member_no)


def _contact_page(request, member, form, *, status: int = 200) -> HttpResponse:
    _focus(form, default="phone")
    return render(request, "desk/contact.html", {"member": member, "form": form}, status=status)


# --- gifts for points (礼品兑换) ----------------------------------------------------------------------


def _live_member_or_refusal(request: HttpRequest, member_no: str, *, permission: str, refusal: str):
    """The member a points page is about, or the page to show instead (forbidden, not found, merged)."""
    if not request.user.has_perm(permission):
        return None, forbidden(request, refusal)
    member = _member_or_none(member_no)
    if member is None:
        return None, _not_found(request, member_no)
    if member.status == Member.Status.MERGED and member.merged_into_id:
        return None, redirect(request.resolver_match.view_name, member_no=member.merged_into.member_no)
    return member, None


@require_http_methods(["GET", "POST"])
@desk_view
def gift_redeem_page(request: HttpRequest, member_no: str) -> HttpResponse:
    member, other = _live_member_or_refusal(
        request, member_no, permission=GIFT_PERMISSION,
        refusal=_("Your account may not give gifts for points. Ask your store manager for the gift permission."),
    )
    if other is not None:
        return other
    gifts = list(gifts_available(store=request.desk_store))
    form = GiftRedeemForm(request.POST if request.method == "POST" else None, gifts=gifts)
    if request.method == "GET" or not form.is_valid():
        return _gift_page(request, member, form, gifts, status=200 if request.method == "GET" else 400)
    try:
        redemption = gift_redeem(member=member, gift=form.cleaned_data["gift"], store=request.desk_store,
                                 quantity=form.cleaned_data["quantity"], operator=request.user)
    except DomainError as error:
        add_service_error(form, error)
        return _gift_page(request, member, form, gifts, status=error.status if error.status < 500 else 400)
    return redirect("desk:gift_slip", member_no=member.member_no, redemption_id=redemption.pk)


def _gift_page(request, member, form, gifts, *, status: int) -> HttpResponse:
    chosen = form["gift"].value()
    rows = [{"gift": gift, "affordable": gift.points <= member.points, "checked": str(gift.pk) == str(chosen)}
            for gift in gifts]
    if rows and not any(row["checked"] for row in rows):
        first = next((row for row in rows if row["affordable"]), rows[0])
        first["checked"] = True
    return render(request, "desk/gifts.html", {
        "member": member, "form": form, "rows": rows, "focus_quantity": "quantity" in form.errors,
    }, status=status)


@require_http_methods(["GET"])
@desk_view
def gift_slip(request: HttpRequest, member_no: str, redemption_id: int) -> HttpResponse:
    """The result of a redemption with its printable slip; only at the desks of the store that gave it."""
    if not request.user.has_perm(GIFT_PERMISSION):
        return forbidden(request, _("Your account may not give gifts for points. "
                                    "Ask your store manager for the gift permission."))
    redemption = (
        GiftRedemption.objects.select_related("member", "gift", "store__format__legal_entity", "points_entry",
                                              "operator")
        .filter(pk=redemption_id, member__member_no=member_no, store__in=request.desk_stores).first()
    )
    if redemption is None:
        return _not_found(request, member_no)
    return render(request, "desk/gift_slip.html", {
        "member": redemption.member,
        "redemption": redemption,
        "balance": redemption.points_entry.balance_after,
        "issuer": redemption.store.format.legal_entity,
    })


# --- paid tiers (Plus) --------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@desk_view
def paid_tier_sale(request: HttpRequest, member_no: str) -> HttpResponse:
    """Sell or renew a paid tier: the fee and the new end date are on screen before the clerk confirms."""
    member, other = _live_member_or_refusal(
        request, member_no, permission=PAID_TIER_PERMISSION,
        refusal=_("Your account may not sell paid tiers. Ask your store manager for the permission."),
    )
    if other is not None:
        return other
    form = PaidTierSaleForm(request.POST if request.method == "POST" else None, tiers=paid_tiers_on_sale())
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                subscription = paid_tier_buy(member=member, tier=form.cleaned_data["tier"], store=request.desk_store,
                                             operator=request.user,
                                             payment_method=form.cleaned_data["payment_method"])
            except DomainError as error:
                add_service_error(form, error)
                status = error.status if error.status < 500 else 400
            else:
                messages.success(request, _("%(tier)s %(kind)s: fee %(fee)s yuan received, valid until %(ends_on)s.")
                                 % {"tier": subscription.tier.name, "kind": subscription.get_kind_display(),
                                    "fee": money_display(subscription.fee),
                                    "ends_on": f"{subscription.ends_on:%Y-%m-%d}"})
                return redirect("desk:member", member_no=member.member_no)
        else:
            status = 400
    return render(request, "desk/paid_tier.html", {
        "member": member, "form": form, "paid_tier": paid_tier_active(member),
        "offers": form.offers(member=member, today=timezone.localdate()),
    }, status=status)
