"""The desk page of a member's tier benefits (权益): what is left of each quota this period, and a use recorded.

The clerk picks a benefit with the arrow keys, types the quantity (and the receipt or a note), and confirms; a use
entered by mistake is given back the same period with a note saying why. Members are group-wide at the desk: any
store's clerk may record a use, and the desk's store is the one recorded. Writes go through
membership.services.benefits.
"""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from core.errors import DomainError
from core.forms import add_service_error
from membership.models import BenefitQuota, BenefitUse, Member
from membership.services.benefits import BENEFIT_USE_MAX, benefit_give_back, benefit_use, member_benefits
from membership.views import _live_member_or_refusal
from stores.desk import desk_view

BENEFIT_PERMISSION = "membership.use_benefit"
RECENT_USES = 10
USE, GIVE_BACK = "use", "give_back"


class BenefitUseForm(forms.Form):
    """A benefit the member is entitled to and how much; whether the quota allows it is the service's rule."""

    benefit = forms.ChoiceField(
        label=gettext_lazy("Benefit"), widget=forms.RadioSelect,
        error_messages={"required": gettext_lazy("Choose a benefit."),
                        "invalid_choice": gettext_lazy("The member is not entitled to this benefit.")},
    )
    quantity = forms.IntegerField(
        label=gettext_lazy("Quantity"), min_value=1, max_value=BENEFIT_USE_MAX, initial=1,
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
        error_messages={"required": gettext_lazy("Enter how many."),
                        "invalid": gettext_lazy("Enter a whole number.")},
    )
    receipt_no = forms.CharField(
        label=gettext_lazy("Receipt number"), required=False, max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    note = forms.CharField(
        label=gettext_lazy("Note"), required=False, max_length=200,
        help_text=gettext_lazy("Required when giving a use back: say why."),
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args, codes, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["benefit"].choices = [(code, code) for code in codes]


@require_http_methods(["GET", "POST"])
@desk_view
def benefits_page(request: HttpRequest, member_no: str) -> HttpResponse:
    member, other = _live_member_or_refusal(
        request, member_no, permission=BENEFIT_PERMISSION,
        refusal=_("Your account may not record benefit uses. Ask your store manager for the permission."),
    )
    if other is not None:
        return other
    balances = member_benefits(member)
    form = BenefitUseForm(request.POST if request.method == "POST" else None,
                          codes=[balance.benefit.code for balance in balances])
    if request.method == "GET" or not form.is_valid():
        return _page(request, member, form, balances, status=200 if request.method == "GET" else 400)
    data = form.cleaned_data
    giving_back = request.POST.get("action") == GIVE_BACK
    try:
        if giving_back:
            result = benefit_give_back(member=member, code=data["benefit"], quantity=data["quantity"],
                                       store=request.desk_store, operator=request.user, note=data["note"])
        else:
            result = benefit_use(member=member, code=data["benefit"], quantity=data["quantity"],
                                 store=request.desk_store, operator=request.user, receipt_no=data["receipt_no"],
                                 note=data["note"])
    except DomainError as error:
        add_service_error(form, error)
        return _page(request, member, form, member_benefits(member),
                     status=error.status if error.status < 500 else 400)
    values = {"benefit": result.use.benefit.name, "quantity": abs(result.used), "remaining": result.remaining}
    if giving_back:
        messages.success(request, _("%(benefit)s: %(quantity)s given back; %(remaining)s left in this period.")
                         % values)
    else:
        messages.success(request, _("%(benefit)s: %(quantity)s used; %(remaining)s left in this period.") % values)
    return redirect("desk:benefits", member_no=member.member_no)


def _page(request, member: Member, form: BenefitUseForm, balances, *, status: int) -> HttpResponse:
    chosen = form["benefit"].value()
    rows = [{"balance": balance, "period": BenefitQuota.Period(balance.period).label,
             "checked": balance.benefit.code == chosen} for balance in balances]
    if rows and not any(row["checked"] for row in rows):
        first = next((row for row in rows if row["balance"].remaining), rows[0])
        first["checked"] = True
    uses = (BenefitUse.objects.filter(member=member).select_related("benefit", "store", "operator")
            .order_by("-created_at", "-pk")[:RECENT_USES])
    return render(request, "desk/benefits.html", {
        "member": member, "form": form, "rows": rows, "uses": uses,
        "focus_field": next((name for name in ("quantity", "receipt_no", "note") if name in form.errors), None),
    }, status=status)
