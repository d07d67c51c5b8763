"""Forms of the service desk (/desk/).

They only parse what the clerk typed (dates, choices, lengths); every rule about
members (ID check digits, possible phones, a way to find the member again) lives
in membership.services, and its MemberInvalid messages are put next to the fields.
"""

from datetime import date, timedelta

from django import forms
from django.utils.translation import gettext_lazy as _

from core.dates import months_add
from membership.models import Member, Tier
from membership.services import MemberInput

BIRTH_DATE_FORMATS = ["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%Y.%m.%d"]
ID_TYPES = [choice for choice in Member.IdType.choices if choice[0] != Member.IdType.NONE]


def _text(**attrs) -> forms.TextInput:
    # Personal data: the browser must not offer what the previous customer typed.
    return forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", **attrs})


class MemberRegisterForm(forms.Form):
    name = forms.CharField(
        label=_("Full name"), max_length=50, widget=_text(),
        error_messages={"required": _("Enter the member's name.")},
    )
    id_type = forms.ChoiceField(label=_("ID type"), choices=ID_TYPES, initial=Member.IdType.RESIDENT_ID)
    id_number = forms.CharField(
        label=_("ID number"), max_length=30, required=False,
        widget=_text(**{"data-id-number": "", "aria-describedby": "id-number-parsed"}),
        help_text=_("Swipe the ID card or type the 18 characters; Enter moves on to the next field."),
    )
    phone = forms.CharField(
        label=_("Mobile or phone"), max_length=30, required=False, widget=_text(inputmode="tel"),
    )
    family_phone = forms.CharField(
        label=_("Family contact phone"), max_length=30, required=False, widget=_text(inputmode="tel"),
        help_text=_("A relative to call, for members without a phone."),
    )
    birth_date = forms.DateField(
        label=_("Birth date"), required=False, input_formats=BIRTH_DATE_FORMATS,
        widget=_text(placeholder="1948-03-12", inputmode="numeric"),
        help_text=_("Only needed without a resident ID."),
        error_messages={"invalid": _("Enter the birth date as year-month-day, for example 1948-03-12.")},
    )
    gender = forms.ChoiceField(label=_("Gender"), choices=Member.Gender.choices, initial=Member.Gender.UNKNOWN)
    address = forms.CharField(label=_("Address"), max_length=200, required=False, widget=_text())
    contact_channel = forms.ChoiceField(
        label=_("Preferred contact"), choices=Member.ContactChannel.choices, initial=Member.ContactChannel.SMS,
    )
    marketing_consent = forms.BooleanField(label=_("Agrees to receive offers"), required=False)
    card_no = forms.CharField(
        label=_("Member card number"), max_length=32, required=False, widget=_text(inputmode="numeric"),
        help_text=_("Only when a member card is handed over."),
    )
    partner_code = forms.CharField(
        label=_("Partner registration code"), max_length=20, required=False, widget=_text(),
        help_text=_("Only when the customer registers through a partner (a bank, a telecom, a car brand)."),
    )
    # The ids of the likely duplicates the clerk was shown; "register anyway" only
    # counts for exactly those, so a different match found later is shown again.
    duplicates_seen = forms.CharField(required=False, widget=forms.HiddenInput)

    def member_input(self) -> MemberInput:
        data = self.cleaned_data
        return MemberInput(
            name=data["name"],
            id_type=data["id_type"],
            id_number=data["id_number"],
            phone=data["phone"],
            family_phone=data["family_phone"],
            birth_date=data["birth_date"],
            gender=data["gender"],
            address=data["address"],
            contact_channel=data["contact_channel"],
            marketing_consent=data["marketing_consent"],
            card_no=data["card_no"],
            partner_code=data["partner_code"],
        )

    def duplicate_ids_seen(self) -> set[int]:
        raw = self.cleaned_data.get("duplicates_seen") or ""
        return {int(part) for part in raw.split(",") if part.strip().isdigit()}


class ContactUpdateForm(forms.Form):
    """New contact details; an empty phone box keeps the number on file (which the clerk sees masked)."""

    phone = forms.CharField(
        label=_("New mobile or phone"), max_length=30, required=False, widget=_text(inputmode="tel"),
        help_text=_("Leave empty to keep the number on file."),
    )
    remove_phone = forms.BooleanField(label=_("Remove the phone on file"), required=False)
    family_phone = forms.CharField(
        label=_("New family contact phone"), max_length=30, required=False, widget=_text(inputmode="tel"),
        help_text=_("Leave empty to keep the number on file."),
    )
    remove_family_phone = forms.BooleanField(label=_("Remove the family contact phone on file"), required=False)
    address = forms.CharField(label=_("Address"), max_length=200, required=False, widget=_text())
    contact_channel = forms.ChoiceField(label=_("Preferred contact"), choices=Member.ContactChannel.choices)
    marketing_consent = forms.BooleanField(label=_("Agrees to receive offers"), required=False)

    def clean(self):
        data = super().clean()
        for field_name in ("phone", "family_phone"):
            if data.get(field_name) and data.get(f"remove_{field_name}"):
                self.add_error(f"remove_{field_name}", _("Either type a new number or remove it, not both."))
        return data

    def changes(self) -> dict:
        """The keyword arguments for member_contact_update."""
        data = self.cleaned_data
        changes = {
            "address": data["address"],
            "contact_channel": data["contact_channel"],
            "marketing_consent": data["marketing_consent"],
        }
        for field_name in ("phone", "family_phone"):
            if data[f"remove_{field_name}"]:
                changes[field_name] = ""
            elif data[field_name]:
                changes[field_name] = data[field_name]
        return changes


# --- points, gifts and paid tiers ---------------------------------------------------------------

# How a paid tier's fee was paid: kept on the TierSubscription for finance.
PAYMENT_METHODS = [
    ("cash", _("cash")),
    ("bank_card", _("bank card")),
    ("wechat", _("WeChat Pay")),
    ("alipay", _("Alipay")),
    ("prepaid_card", _("prepaid card")),
]
MAX_GIFT_QUANTITY = 99


class GiftRedeemForm(forms.Form):
    """A gift from the desk store's stock and how many; whether the member has the points is the service's rule."""

    gift = forms.TypedChoiceField(
        label=_("Gift"), coerce=int, widget=forms.RadioSelect,
        error_messages={"required": _("Choose a gift."), "invalid_choice": _("This gift is not available here.")},
    )
    quantity = forms.IntegerField(
        label=_("Quantity"), min_value=1, max_value=MAX_GIFT_QUANTITY, initial=1,
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
        error_messages={"required": _("Enter how many."), "invalid": _("Enter a whole number.")},
    )

    def __init__(self, *args, gifts, **kwargs):
        super().__init__(*args, **kwargs)
        self.gifts = {gift.pk: gift for gift in gifts}
        self.fields["gift"].choices = [(gift.pk, gift.name) for gift in gifts]

    def clean_gift(self):
        return self.gifts[self.cleaned_data["gift"]]


def paid_tiers_on_sale():
    return Tier.objects.filter(kind=Tier.Kind.PAID, is_active=True).order_by("rank", "code")


def paid_tier_term(*, member: Member, tier: Tier, today: date) -> tuple[date, date]:
    """The term a sale today would give, as paid_tier_buy sets it: a renewal follows on, a purchase starts today."""
    running = member.paid_tier_id == tier.pk and member.paid_tier_until is not None and member.paid_tier_until >= today
    starts_on = member.paid_tier_until + timedelta(days=1) if running else today
    return starts_on, months_add(starts_on, tier.term_months) - timedelta(days=1)


class PaidTierSaleForm(forms.Form):
    """A term of a paid tier (Plus) sold at the desk: which tier and how the fee was paid."""

    tier = forms.ModelChoiceField(
        label=_("Paid tier"), queryset=None, empty_label=None, widget=forms.RadioSelect,
        error_messages={"invalid_choice": _("This paid tier is not on sale.")},
    )
    payment_method = forms.ChoiceField(label=_("Paid by"), choices=PAYMENT_METHODS, initial="cash")

    def __init__(self, *args, tiers, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier"].queryset = tiers
        first = tiers.first()
        if first is not None:
            self.fields["tier"].initial = first.pk

    def offers(self, *, member: Member, today: date) -> list[tuple[Tier, date, date]]:
        """Each paid tier on sale with the term a sale today would give (what the clerk reads out)."""
        return [(tier, *paid_tier_term(member=member, tier=tier, today=today))
                for tier in self.fields["tier"].queryset]
