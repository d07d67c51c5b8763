"""Forms of the coupon pages of the service desk (/desk/coupons/).

They only read what the clerk typed; whether a claim code is running and whether the member may claim it is
campaigns.services' rule, and its refusal is put next to the field.
"""

from django import forms
from django.utils.translation import gettext_lazy as _

CLAIM_CODE_MAX = 32


class CouponClaimForm(forms.Form):
    claim_code = forms.CharField(
        label=_("Claim code"), max_length=CLAIM_CODE_MAX,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "characters",
                                     "autofocus": True}),
        help_text=_("The code printed on the coupon poster; small letters are read as capitals."),
        error_messages={"required": _("Type the claim code from the poster.")},
    )
