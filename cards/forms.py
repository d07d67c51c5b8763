"""Forms of the card desk pages (/desk/cards/): a walk-in card sale and a top-up.

They only parse what the clerk typed or scanned; the prepaid-card rules (caps, real name, non-cash) live in
cards.services.sales, whose refusals are put next to the fields they name.
"""

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from cards.models import SaleOrder, SalePayment
from cards.services.sales import PartyInput, PaymentInput, SaleInput, SaleLineInput, sale_lines_parse
from core.errors import DomainError

ID_TYPES = [choice for choice in SaleOrder.IdType.choices if choice[0]]
# Most walk-in customers pay at the till's own devices; bank transfer is for the non-cash rule.
DESK_PAYMENT_METHODS = [
    (SalePayment.Method.CASH, SalePayment.Method.CASH.label),
    (SalePayment.Method.WECHAT, SalePayment.Method.WECHAT.label),
    (SalePayment.Method.ALIPAY, SalePayment.Method.ALIPAY.label),
    (SalePayment.Method.UNIONPAY, SalePayment.Method.UNIONPAY.label),
    (SalePayment.Method.BANK_TRANSFER, SalePayment.Method.BANK_TRANSFER.label),
    (SalePayment.Method.OTHER, SalePayment.Method.OTHER.label),
]
# Service field names -> the desk form's own fields, to put a refusal next to the box the clerk typed in.
SERVICE_FIELDS = {"cards": "cards", "payments": "payment_method"}


def _text(**attrs) -> forms.TextInput:
    # Personal data: the browser must not offer what the previous customer typed.
    return forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", **attrs})


class DeskOrderForm(forms.Form):
    """The buyer, agent and payment parts shared by a sale and a top-up."""

    buyer_type = forms.ChoiceField(label=_("Buyer"), choices=SaleOrder.BuyerType.choices,
                                   initial=SaleOrder.BuyerType.PERSON)
    buyer_name = forms.CharField(label=_("Buyer name or company name"), max_length=100, required=False,
                                 widget=_text())
    buyer_id_type = forms.ChoiceField(label=_("ID type"), choices=ID_TYPES, initial=SaleOrder.IdType.RESIDENT_ID,
                                      required=False)
    buyer_id_number = forms.CharField(label=_("ID number"), max_length=30, required=False,
                                      widget=_text(**{"data-id-number": ""}),
                                      help_text=_("Swipe the ID card or type the 18 characters."))
    buyer_credit_code = forms.CharField(label=_("Unified social credit code"), max_length=18, required=False,
                                        widget=_text(), help_text=_("Only when a company buys."))
    buyer_phone = forms.CharField(label=_("Contact phone"), max_length=30, required=False,
                                  widget=_text(inputmode="tel"))
    agent_name = forms.CharField(label=_("Agent name"), max_length=100, required=False, widget=_text(),
                                 help_text=_("When someone buys on the buyer's behalf, and always when a company "
                                             "buys (经办人)."))
    agent_id_type = forms.ChoiceField(label=_("Agent ID type"), choices=ID_TYPES,
                                      initial=SaleOrder.IdType.RESIDENT_ID, required=False)
    agent_id_number = forms.CharField(label=_("Agent ID number"), max_length=30, required=False, widget=_text())
    agent_phone = forms.CharField(label=_("Agent phone"), max_length=30, required=False,
                                  widget=_text(inputmode="tel"))
    payment_method = forms.ChoiceField(label=_("Paid by"), choices=DESK_PAYMENT_METHODS,
                                       initial=SalePayment.Method.CASH)
    payment_reference = forms.CharField(label=_("Payment reference"), max_length=64, required=False,
                                        widget=_text(), help_text=_("The transaction number on the payment slip."))
    payer_account_name = forms.CharField(label=_("Payer account name"), max_length=100, required=False,
                                         widget=_text())
    payer_account_no = forms.CharField(label=_("Payer account number"), max_length=40, required=False,
                                       widget=_text(inputmode="numeric"))
    payee_account_name = forms.CharField(label=_("Payee account name"), max_length=100, required=False,
                                         widget=_text())
    payee_account_no = forms.CharField(label=_("Payee account number"), max_length=40, required=False,
                                       widget=_text(inputmode="numeric"))

    buyer_fields = ("buyer_type", "buyer_name", "buyer_id_type", "buyer_id_number", "buyer_credit_code",
                    "buyer_phone")
    agent_fields = ("agent_name", "agent_id_type", "agent_id_number", "agent_phone")
    payment_fields = ("payment_method", "payment_reference", "payer_account_name", "payer_account_no",
                      "payee_account_name", "payee_account_no")

    def parties(self) -> tuple[PartyInput, PartyInput]:
        data = self.cleaned_data
        buyer = PartyInput(name=data["buyer_name"], id_type=data["buyer_id_type"], id_number=data["buyer_id_number"],
                           phone=data["buyer_phone"], credit_code=data["buyer_credit_code"])
        agent = PartyInput(name=data["agent_name"], id_type=data["agent_id_type"], id_number=data["agent_id_number"],
                           phone=data["agent_phone"])
        return buyer, agent

    def payment(self, amount: Decimal) -> PaymentInput:
        """The one payment of a desk order: the whole amount due by the chosen method."""
        data = self.cleaned_data
        return PaymentInput(
            method=data["payment_method"], amount=amount, reference=data["payment_reference"],
            payer_account_name=data["payer_account_name"], payer_account_no=data["payer_account_no"],
            payee_account_name=data["payee_account_name"], payee_account_no=data["payee_account_no"],
        )


class CardSaleForm(DeskOrderForm):
    cards = forms.CharField(
        label=_("Cards"),
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false",
                                     "inputmode": "numeric"}),
        help_text=_("Scan or type one card number per line, then a space and the amount to load (empty: the face "
                    "value). A range of cards: first-last amount."),
        error_messages={"required": _("Scan or type at least one card number.")},
    )
    member_no = forms.CharField(label=_("Member number"), max_length=12, required=False,
                                widget=_text(inputmode="numeric"),
                                help_text=_("Registered cards are bound to this member."))

    field_order = ["cards", "member_no"]

    def clean_cards(self) -> list[SaleLineInput]:
        try:
            return sale_lines_parse(self.cleaned_data["cards"])
        except DomainError as error:
            raise forms.ValidationError(error.fields["cards"]) from None

    def sale_input(self, *, store, member) -> SaleInput:
        buyer, agent = self.parties()
        return SaleInput(store=store, kind=SaleOrder.Kind.SALE, channel=SaleOrder.Channel.WALK_IN,
                         buyer_type=self.cleaned_data["buyer_type"], buyer=buyer, agent=agent, member=member,
                         lines=self.cleaned_data["cards"])


class TopUpForm(DeskOrderForm):
    card_no = forms.RegexField(
        label=_("Card number"), regex=r"^[0-9]{6,32}$", max_length=32,
        widget=_text(inputmode="numeric"),
        error_messages={"required": _("Scan or type the card number."),
                        "invalid": _("A card number is 6 to 32 digits.")},
    )
    amount = forms.DecimalField(
        label=_("Top-up amount"), max_digits=14, decimal_places=2, min_value=Decimal("0.01"),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        error_messages={"required": _("Enter the amount to load."),
                        "invalid": _("Write an amount such as 500.00.")},
    )

    field_order = ["card_no", "amount"]

    def sale_input(self, *, store) -> SaleInput:
        buyer, agent = self.parties()
        return SaleInput(store=store, kind=SaleOrder.Kind.TOP_UP, channel=SaleOrder.Channel.WALK_IN,
                         buyer_type=self.cleaned_data["buyer_type"], buyer=buyer, agent=agent,
                         lines=[SaleLineInput(first=self.cleaned_data["card_no"], amount=self.cleaned_data["amount"])])
