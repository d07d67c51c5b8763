"""Card pages of the service desk (/desk/cards/): a walk-in card sale, a top-up, and the receipt slip.

The clerk scans the cards, types the amounts and, when the prepaid-card rules need them, the buyer's
details; the page first shows what will happen (total, which rules apply), then Enter confirms and the
cards are active. Every write goes through cards.services.sales; these views parse, call and present.
"""

from functools import wraps

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from cards.forms import DESK_PAYMENT_METHODS, SERVICE_FIELDS, CardSaleForm, TopUpForm
from cards.models import SaleOrder
from cards.services.sales import SalePlan, sale_order_check, sale_walk_in
from core.errors import DomainError
from core.forms import add_service_error
from core.pii import mask_name
from membership.models import Member
from stores.desk import desk_view, forbidden

SELL_PERMISSION = "cards.sell_card"
TOP_UP_PERMISSIONS = ("cards.sell_card", "cards.serve_card")


def card_desk_view(*permissions: str):
    """The desk's login, store and permission checks, plus one of the card permissions."""

    def decorate(function):
        @wraps(function)
        @desk_view
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not any(request.user.has_perm(permission) for permission in permissions):
                return forbidden(request, _("Your account may not sell cards. "
                                            "Ask your store manager for the card sales permission."))
            return function(request, *args, **kwargs)

        return wrapper

    return decorate


def _status(error: DomainError) -> int:
    return error.status if error.status < 500 else 400


def _plan(form, data) -> SalePlan:
    """Check the order as typed and its one payment of the whole amount due; raise what the service raises."""
    plan = sale_order_check(data=data)
    return sale_order_check(data=data, payments=[form.payment(plan.amount_due)])


def _member_or_error(form) -> tuple[Member | None, bool]:
    member_no = (form.cleaned_data.get("member_no") or "").strip()
    if not member_no:
        return None, True
    member = Member.objects.filter(member_no=member_no, status=Member.Status.ACTIVE).first()
    if member is None:
        form.add_error("member_no", _("No active member with number %(member_no)s.") % {"member_no": member_no})
        return None, False
    return member, True


@require_http_methods(["GET", "POST"])
@card_desk_view(SELL_PERMISSION)
def card_sale(request: HttpRequest) -> HttpResponse:
    """Sell cards to a walk-in customer: check, show the total and the rules, confirm, print the receipt."""
    if request.method == "GET":
        return _page(request, "cards/sale.html", CardSaleForm())
    form = CardSaleForm(request.POST)
    if not form.is_valid():
        return _page(request, "cards/sale.html", form, status=400)
    member, found = _member_or_error(form)
    if not found:
        return _page(request, "cards/sale.html", form, status=400)
    data = form.sale_input(store=request.desk_store, member=member)
    return _check_or_confirm(request, form, data, template="cards/sale.html")


@require_http_methods(["GET", "POST"])
@card_desk_view(*TOP_UP_PERMISSIONS)
def card_top_up(request: HttpRequest) -> HttpResponse:
    """Top up a reloadable card within its cap; registered cards record the buyer (real name)."""
    if request.method == "GET":
        initial = {"card_no": request.GET.get("card_no", "")[:32]} if request.GET.get("card_no") else None
        return _page(request, "cards/top_up.html", TopUpForm(initial=initial))
    form = TopUpForm(request.POST)
    if not form.is_valid():
        return _page(request, "cards/top_up.html", form, status=400)
    return _check_or_confirm(request, form, form.sale_input(store=request.desk_store), template="cards/top_up.html")


def _check_or_confirm(request, form, data, *, template: str) -> HttpResponse:
    try:
        plan = _plan(form, data)
    except DomainError as error:
        add_service_error(form, error, field_names=SERVICE_FIELDS, only_form_fields=True)
        return _page(request, template, form, status=_status(error))
    if request.POST.get("confirm") != "1":
        return _page(request, template, form, plan=plan)
    try:
        order = sale_walk_in(data=data, payments=[form.payment(plan.amount_due)], actor=request.user)
    except DomainError as error:
        # A card sold at another desk a moment ago, a rule changed: nothing was written.
        add_service_error(form, error, field_names=SERVICE_FIELDS, only_form_fields=True)
        return _page(request, template, form, status=_status(error))
    return redirect("cards:receipt", order_no=order.order_no)


def _page(request, template: str, form, *, status: int = 200, plan: SalePlan | None = None) -> HttpResponse:
    target = next((name for name in form.fields if name in form.errors), None)
    if target is None and plan is None:
        target = "cards" if "cards" in form.fields else "card_no"
    if target is not None:
        form.fields[target].widget.attrs["autofocus"] = True
    payment_label = dict(DESK_PAYMENT_METHODS).get(form["payment_method"].value(), "")
    return render(request, template, {"form": form, "plan": plan, "payment_label": payment_label}, status=status)


@require_http_methods(["GET"])
@card_desk_view(*TOP_UP_PERMISSIONS)
def receipt(request: HttpRequest, order_no: str) -> HttpResponse:
    """The paid order with its printable receipt; only at the desks of the store that sold it."""
    order = (SaleOrder.objects.select_related("store__format__legal_entity", "member", "created_by")
             .filter(order_no=order_no[:20], store__in=request.desk_stores, status=SaleOrder.Status.COMPLETED)
             .first())
    if order is None:
        return render(request, "cards/not_found.html", {"order_no": order_no[:20]}, status=404)
    lines = order.lines.select_related("card__product").order_by("card__card_no")
    return render(request, "cards/receipt.html", {
        "order": order, "lines": lines, "issuer": order.store.format.legal_entity,
        "payments": order.payments.order_by("pk"), "buyer_name": mask_name(order.buyer_name),
    })
