"""The prepaid-card rules of a sale or top-up (DESIGN section 7), in one place: real name (实名登记), non-cash
payment (非现金), orders split below a limit, and the issuer's filing number (备案编号).

cards.services.sales checks every order through here when it is written, submitted for approval and paid, at the
desk and in the admin alike, so one rule holds everywhere; every refusal names its rule (商务部令2012年第9号). The
card caps stay with the card ledger (cards.services.ledger), the one door a balance moves through.

Orders of one buyer are summed for the real-name and non-cash limits. A buyer is known by an ID number, a unified
social credit code or an invoice taxpayer number; an order counts that buyer's orders written before it within
`CardRules.split_window_days` unless they were cancelled or rejected: paid, approved, waiting for approval, and
drafts. A draft counts because it is checked again when submitted and paid: were drafts left out, a small draft
written first and paid last would never meet the large order paid in between. Orders written later never count
against an earlier one, so an order that was approved or paid does not become illegal afterwards.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from stdnum.cn import uscc

from cards.errors import CardInvalid, CardRuleBroken, SaleOrderInvalid
from cards.models import CardRules, SaleOrder, SalePayment
from core.pii import (
    InvalidPersonalData,
    mask_id_number,
    normalize_id_number,
    phone_validate,
    pii_digest,
    pii_encrypt,
    resident_id_parse,
)

__all__ = [
    "SUMMED_STATUSES",
    "OrderFacts",
    "PartyInput",
    "PaymentInput",
    "RulesOutcome",
    "SaleOrderInvalid",
    "id_number_clean",
    "issuer_filing_check",
    "order_rules_check",
    "party_values",
    "payments_check",
    "real_name_missing",
]

# The orders of a buyer that count toward the limits (see the module's docstring).
SUMMED_STATUSES = (SaleOrder.Status.DRAFT, SaleOrder.Status.PENDING, SaleOrder.Status.APPROVED,
                   SaleOrder.Status.COMPLETED)
# Orders named in a refusal; more are counted, not listed.
NAMED_ORDERS = 5
_ZERO = Decimal("0.00")
_OTHER_ID = {
    # Passports and permits: letters and digits of a plausible length.
    SaleOrder.IdType.PASSPORT: r"^[A-Z0-9]{5,17}$",
    SaleOrder.IdType.HK_MACAU: r"^[A-Z0-9]{8,11}$",
    SaleOrder.IdType.TAIWAN: r"^[A-Z0-9]{8,10}$",
}


@dataclass
class PartyInput:
    """A buyer or an agent as typed: a person (name, ID, phone) or a company (name, credit code, contact)."""

    name: str = ""
    id_type: str = ""
    id_number: str = ""
    phone: str = ""
    credit_code: str = ""
    address: str = ""

    def is_empty(self) -> bool:
        return not any((self.name.strip(), self.id_number.strip(), self.phone.strip(), self.credit_code.strip()))


@dataclass
class PaymentInput:
    method: str
    amount: Decimal
    reference: str = ""
    payer_account_name: str = ""
    payer_account_no: str = ""
    payee_account_name: str = ""
    payee_account_no: str = ""


@dataclass
class OrderFacts:
    """What the rules look at in an order: its buyer's recorded values (party_values), its money and its cards.

    `order_id` and `now` place the order among the buyer's others: its own row is not counted, and only orders
    written before `now` (its creation time once stored) are.
    """

    store: object
    kind: str
    remote: bool
    buyer_type: str
    invoice_tax_no: str
    values: dict
    total: Decimal
    has_registered: bool
    has_bearer: bool
    has_vouchers: bool
    has_agent: bool
    order_id: int | None
    now: datetime


@dataclass
class RulesOutcome:
    """Which rules apply to an order that passed them.

    `approval_rule` names the non-cash limit the order passes only when added to the buyer's earlier orders
    (`summed_orders`): such an order is paid by bank transfer only and needs approval (looks split).
    """

    real_name_required: bool
    transfer_rule: str
    split_suspected: bool
    approval_rule: str = ""
    summed_orders: list[str] = field(default_factory=list)


# --- identities -------------------------------------------------------------------------------------


def id_number_clean(id_type: str, id_number: str) -> tuple[str, str]:
    """(ID type, normalised number), a resident ID checked by GB 11643; raise InvalidPersonalData."""
    number = normalize_id_number(id_number)
    if not number:
        return "", ""
    id_type = id_type or SaleOrder.IdType.RESIDENT_ID
    if id_type == SaleOrder.IdType.RESIDENT_ID:
        return id_type, resident_id_parse(number).number
    pattern = _OTHER_ID.get(id_type)
    if pattern is None:
        raise InvalidPersonalData(_("Unknown ID type."))
    if not re.match(pattern, number):
        raise InvalidPersonalData(_("This is not a valid number for a %(type)s.") % {
            "type": SaleOrder.IdType(id_type).label})
    return id_type, number


def _identity_kept(party: PartyInput, *, prefix: str, name: str, stored) -> bool:
    """Whether a stored order's sealed ID still belongs to the party as typed: no number typed, and the same
    name and ID type it was recorded with. Staff only ever see it masked, so anything else asks for it again."""
    if stored is None or (party.id_number or "").strip() or not getattr(stored, f"{prefix}_id_digest"):
        return False
    return (getattr(stored, f"{prefix}_id_name") == name
            and (party.id_type or "") == getattr(stored, f"{prefix}_id_type"))


def party_values(party: PartyInput, *, prefix: str, company: bool, errors: dict, stored=None) -> dict:
    """Model values of a buyer (prefix buyer) or agent (prefix agent); wrong details go into errors by field.

    An ID is recorded with the name it was checked against. With no ID number typed, a stored order's sealed ID
    is kept only for the same name and ID type: a changed name, ID type or number clears it (real name follows
    the person).
    """
    name = " ".join((party.name or "").split())
    values = {f"{prefix}_name": name[:100], f"{prefix}_phone": ""}
    if len(name) > 100:
        errors[f"{prefix}_name"] = [gettext("A name has at most 100 characters.")]
    name = name[:100]
    phone = (party.phone or "").strip()
    if phone:
        try:
            values[f"{prefix}_phone"] = phone_validate(phone)
        except InvalidPersonalData as error:
            errors[f"{prefix}_phone"] = [str(error.message)]
    if company:
        code = (party.credit_code or "").strip().upper()
        if code and not uscc.is_valid(code):
            errors[f"{prefix}_credit_code"] = [gettext(
                "%(code)s is not a valid unified social credit code (18 characters with a check character)."
            ) % {"code": code}]
        values.update(buyer_credit_code=code, buyer_id_type="", buyer_id_digest="", buyer_id_sealed="",
                      buyer_id_masked="", buyer_id_name="")
        return values
    if prefix == "buyer":
        values["buyer_credit_code"] = ""
    id_fields = (f"{prefix}_id_type", f"{prefix}_id_digest", f"{prefix}_id_sealed", f"{prefix}_id_masked",
                 f"{prefix}_id_name")
    if _identity_kept(party, prefix=prefix, name=name, stored=stored):
        values.update({field_name: getattr(stored, field_name) for field_name in id_fields})
        return values
    try:
        id_type, number = id_number_clean(party.id_type or "", party.id_number or "")
    except InvalidPersonalData as error:
        errors[f"{prefix}_id_number"] = [str(error.message)]
        id_type, number = "", ""
    values.update({
        f"{prefix}_id_type": id_type,
        f"{prefix}_id_digest": pii_digest(number) if number else "",
        f"{prefix}_id_sealed": pii_encrypt(number) if number else "",
        f"{prefix}_id_masked": mask_id_number(number),
        f"{prefix}_id_name": name if number else "",
    })
    return values


def real_name_missing(values: dict, *, company: bool, has_agent: bool) -> list[tuple[str, str]]:
    """(field, what) of each real-name detail the order lacks. A company always buys through an agent (经办人),
    whose identity is recorded with the company's."""
    missing = []
    if not values["buyer_name"]:
        missing.append(("buyer_name", gettext("the company name") if company else gettext("the buyer's name")))
    if company:
        if not values["buyer_credit_code"]:
            missing.append(("buyer_credit_code", gettext("the unified social credit code")))
    elif not values["buyer_id_digest"]:
        missing.append(("buyer_id_number", gettext("the buyer's ID type and number")))
    if not values["buyer_phone"]:
        missing.append(("buyer_phone", gettext("a contact phone")))
    if has_agent or company:
        if not values["agent_name"]:
            missing.append(("agent_name", gettext("the agent's name")))
        if not values["agent_id_digest"]:
            missing.append(("agent_id_number", gettext("the agent's ID type and number")))
        if not values["agent_phone"]:
            missing.append(("agent_phone", gettext("the agent's phone")))
    return missing


# --- the issuer ---------------------------------------------------------------------------------------


def issuer_filing_check(store) -> None:
    """Refuse a sale or top-up at a store whose legal entity has no prepaid card filing number (备案编号).

    Raise CardRuleBroken naming the legal entity.
    """
    entity = store.format.legal_entity
    if (entity.prepaid_filing_no or "").strip():
        return
    message = gettext(
        "Filing rule (prepaid card rules): %(entity)s, the legal entity that issues the cards of %(store)s, has no "
        "prepaid card filing number (备案编号); it cannot sell or top up cards until its filing number is recorded."
    ) % {"entity": entity.name, "store": store.name}
    raise CardRuleBroken(message, fields={"store": [message]})


# --- orders of one buyer -----------------------------------------------------------------------------


def _earlier(facts: OrderFacts):
    """The orders written before this one that count toward the limits (see the module's docstring)."""
    if facts.order_id is None:
        before = Q(created_at__lte=facts.now)
    else:
        before = Q(created_at__lt=facts.now) | Q(created_at=facts.now, pk__lt=facts.order_id)
    orders = SaleOrder.objects.filter(before, status__in=SUMMED_STATUSES)
    if facts.order_id is not None:
        orders = orders.exclude(pk=facts.order_id)
    return orders


def _buyer_match(facts: OrderFacts) -> Q | None:
    """The buyer's orders: the same ID number, or a credit code or invoice taxpayer number of this order as the
    other's credit code or taxpayer number (a company's taxpayer number is its credit code)."""
    match = Q()
    if facts.values.get("buyer_id_digest"):
        match |= Q(buyer_id_digest=facts.values["buyer_id_digest"])
    codes = sorted({code for code in (facts.values.get("buyer_credit_code"), facts.invoice_tax_no) if code})
    if codes:
        match |= Q(buyer_credit_code__in=codes) | Q(invoice_tax_no__in=codes)
    return match or None


def _summed(orders) -> tuple[Decimal, list[str]]:
    total, numbers = _ZERO, []
    for order_no, cards, vouchers in orders.order_by("created_at", "pk") \
            .values_list("order_no", "face_total", "voucher_total").iterator(chunk_size=2000):
        total += cards + vouchers
        numbers.append(order_no)
    return total, numbers


def _buyer_orders(facts: OrderFacts, rules: CardRules) -> tuple[Decimal, list[str]]:
    """(total, order numbers) of the buyer's earlier orders within the split window."""
    match = _buyer_match(facts)
    if match is None:
        return _ZERO, []
    return _summed(_earlier(facts).filter(match, created_at__gte=facts.now - timedelta(days=rules.split_window_days)))


def _unidentified_today(facts: OrderFacts) -> Decimal:
    """The earlier orders of today at this store whose buyer gave no identity (bearer cards only, as every other
    order records one): sales to many anonymous buyers, or one buyer coming back, that the law counts together."""
    start = timezone.localtime(facts.now).replace(hour=0, minute=0, second=0, microsecond=0)
    orders = _earlier(facts).filter(store=facts.store, created_at__gte=start, buyer_id_digest="",
                                    buyer_credit_code="", invoice_tax_no="")
    return _summed(orders)[0]


def _named(numbers: list[str]) -> str:
    named = ", ".join(numbers[:NAMED_ORDERS])
    if len(numbers) > NAMED_ORDERS:
        named = gettext("%(orders)s and %(more)d more") % {"orders": named, "more": len(numbers) - NAMED_ORDERS}
    return named


# --- the rules ----------------------------------------------------------------------------------------


def _real_name_rule(facts: OrderFacts, rules: CardRules, *, buyer_total: Decimal,
                    buyer_orders: list[str]) -> tuple[str, dict]:
    """The real-name rule this order falls under, as (refusal with a %(missing)s slot, its values), or ("", {})."""
    limit = rules.bearer_real_name_from
    if facts.has_registered:
        return gettext("Real-name rule (prepaid card rules): every sale or top-up of a registered card records the "
                       "buyer's identity. Missing: %(missing)s."), {}
    if facts.has_vouchers:
        return gettext("Real-name rule (prepaid card rules): an order with pickup vouchers records the buyer's "
                       "identity. Missing: %(missing)s."), {}
    if not facts.has_bearer:
        return "", {}
    if facts.total >= limit:
        return gettext("Real-name rule (prepaid card rules): a bearer-card order of %(limit)s or more records the "
                       "buyer's identity. Missing: %(missing)s."), {"limit": limit}
    if buyer_orders and buyer_total + facts.total >= limit:
        return gettext(
            "Real-name rule (prepaid card rules): with this buyer's orders %(orders)s of the last %(days)d days the "
            "bearer-card orders come to %(summed)s, %(limit)s or more, so this one records the buyer's identity. "
            "Missing: %(missing)s."
        ), {"orders": _named(buyer_orders), "days": rules.split_window_days, "summed": buyer_total + facts.total,
            "limit": limit}
    today = _unidentified_today(facts)
    if today and today + facts.total >= limit:
        return gettext(
            "Real-name rule (prepaid card rules): bearer-card sales at %(store)s today to buyers who gave no identity "
            "come to %(summed)s with this one, %(limit)s or more: ask the buyer for their real name. Missing: "
            "%(missing)s."
        ), {"store": facts.store.name, "summed": today + facts.total, "limit": limit}
    return "", {}


def _transfer_limit(facts: OrderFacts, rules: CardRules) -> tuple[Decimal, str]:
    """(limit, the rule for an order of that much at once): a buyer invoiced to a company (a taxpayer number on
    the invoice) counts as a company."""
    if facts.buyer_type == SaleOrder.BuyerType.COMPANY:
        return rules.company_transfer_from, gettext(
            "Non-cash rule (prepaid card rules): a company buying %(limit)s or more at once pays by bank transfer "
            "only.")
    if facts.invoice_tax_no:
        return rules.company_transfer_from, gettext(
            "Non-cash rule (prepaid card rules): an order invoiced to a company (taxpayer number %(tax_no)s) counts "
            "as a company's, and a company buying %(limit)s or more at once pays by bank transfer only.")
    return rules.person_transfer_from, gettext(
        "Non-cash rule (prepaid card rules): a person buying %(limit)s or more at once pays by bank transfer only.")


def order_rules_check(facts: OrderFacts, *, payments: list[PaymentInput] | None = None,
                      rules: CardRules | None = None) -> RulesOutcome:
    """Check an order against the real-name, non-cash and split-order rules, and its payment lines if given.

    Raise CardRuleBroken naming the rule (and the fields it asks for), or SaleOrderInvalid (malformed payments).
    """
    rules = rules or CardRules.current()
    company = facts.buyer_type == SaleOrder.BuyerType.COMPANY
    buyer_total, buyer_orders = _buyer_orders(facts, rules)
    summed = buyer_total + facts.total
    rule, params = _real_name_rule(facts, rules, buyer_total=buyer_total, buyer_orders=buyer_orders)
    if rule:
        missing = real_name_missing(facts.values, company=company, has_agent=facts.has_agent)
        if missing:
            message = rule % {**params, "missing": ", ".join(what for _name, what in missing)}
            raise CardRuleBroken(message, fields={name: [message] for name, _what in missing})
    if company and not facts.values["buyer_credit_code"]:
        message = gettext("Split-order rule (prepaid card rules): a company buyer gives its unified social credit "
                          "code, so that its orders of %(days)d days are added up for the non-cash limit.") % {
            "days": rules.split_window_days}
        raise CardRuleBroken(message, fields={"buyer_credit_code": [message]})
    limit, at_once = _transfer_limit(facts, rules)
    approval_rule = ""
    if buyer_orders and facts.total < limit <= summed:
        approval_rule = gettext(
            "Non-cash rule (prepaid card rules): with this buyer's orders %(orders)s of the last %(days)d days this "
            "order brings the total to %(summed)s, past the limit of %(limit)s: it is paid by bank transfer only, "
            "no cash, and needs approval as it looks split."
        ) % {"orders": _named(buyer_orders), "days": rules.split_window_days, "summed": summed, "limit": limit}
    if facts.remote:
        transfer_rule = gettext("Non-cash rule (prepaid card rules): an order made remotely or online is paid by "
                                "bank transfer only.")
    elif facts.total >= limit:
        transfer_rule = at_once % {"limit": limit, "tax_no": facts.invoice_tax_no}
    else:
        transfer_rule = approval_rule
    if payments is not None:
        payments_check(payments, transfer_rule=transfer_rule)
    limits = [limit] + ([rules.bearer_real_name_from] if facts.has_bearer else [])
    split = bool(buyer_orders) and any(facts.total < each <= summed for each in limits if each > 0)
    return RulesOutcome(real_name_required=bool(rule), transfer_rule=transfer_rule, split_suspected=split,
                        approval_rule=approval_rule, summed_orders=buyer_orders if split else [])


def payments_check(payments: list[PaymentInput], *, transfer_rule: str) -> list[PaymentInput]:
    """Refuse payment lines that are malformed, or any line not a bank transfer when the non-cash rule applies
    (cash or otherwise, even beside transfers). Raise SaleOrderInvalid (fields) or CardRuleBroken."""
    # Here, not at the top: importing cards.services imports cards.services.sales, which imports this module.
    from cards.services.ledger import money_clean

    errors: dict[str, list[str]] = {}
    for number, payment in enumerate(payments, start=1):
        if payment.method not in SalePayment.Method.values:
            errors.setdefault("payments", []).append(gettext("Payment %(line)d: unknown method.") % {"line": number})
            continue
        try:
            payment.amount = money_clean(payment.amount, field="payments")
        except CardInvalid:
            errors.setdefault("payments", []).append(gettext("Payment %(line)d: the amount must be more than zero "
                                                             "with at most two decimals.") % {"line": number})
            continue
        if payment.method == SalePayment.Method.BANK_TRANSFER:
            lacking = [label for label, value in (
                (gettext("payer account name"), payment.payer_account_name),
                (gettext("payer account number"), payment.payer_account_no),
                (gettext("payee account name"), payment.payee_account_name),
                (gettext("payee account number"), payment.payee_account_no),
            ) if not (value or "").strip()]
            if lacking:
                errors.setdefault("payments", []).append(gettext(
                    "Payment %(line)d: a bank transfer records the %(missing)s (prepaid card rules)."
                ) % {"line": number, "missing": ", ".join(lacking)})
    if errors:
        raise SaleOrderInvalid(fields=errors)
    others = [gettext("payment %(line)d (%(method)s %(amount)s)") % {
        "line": number, "method": SalePayment.Method(payment.method).label, "amount": payment.amount}
        for number, payment in enumerate(payments, start=1) if payment.method != SalePayment.Method.BANK_TRANSFER]
    if transfer_rule and others:
        message = gettext("%(rule)s Not a bank transfer: %(lines)s.") % {"rule": transfer_rule,
                                                                         "lines": ", ".join(others)}
        raise CardRuleBroken(message, fields={"payments": [message]})
    return payments
