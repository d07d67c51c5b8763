"""Card sales (售卡) and top-ups: orders, the prepaid-card rules of DESIGN section 7, approval, payment.

An order is written as a draft (cards, pickup vouchers, amounts, buyer, invoice, payment lines), submitted
(approval when the rules ask for it), then paid: payment confirmation loads and activates every card and
activates every voucher in one transaction. Vouchers (提货券) are sold under the same rules as cards: the
order's whole total counts for the non-cash, approval and split limits, and a voucher order is real-name.
The same functions serve the admin's corporate group sales and the desk's walk-in sales, so one rule holds
everywhere. The rules themselves (real name, non-cash, split orders, filing number) are cards.rules; this module
resolves the cards and vouchers, writes the orders and runs their approval and payment.
"""

import re
import secrets
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.queries import pending_request, requests_of
from approvals.services import approval_request_cancel, approval_request_submit
from cards.errors import CardInvalid, CardOperationRefused, CardRuleBroken, SaleForbidden, SaleOrderInvalid
from cards.models import (
    Card,
    CardEvent,
    CardLedgerEntry,
    CardRules,
    SaleLine,
    SaleOrder,
    SalePayment,
    SaleVoucherLine,
    Voucher,
    VoucherBatch,
)
from cards.rules import (
    OrderFacts,
    PartyInput,
    PaymentInput,
    issuer_filing_check,
    order_rules_check,
    party_values,
)
from cards.services import vouchers as voucher_services
from cards.services.ledger import card_cap, card_for_use, card_post, card_status_change, money_clean
from core.dates import moment_months_add
from stores.queries import user_can_see_store

__all__ = [
    "OPEN_STATUSES",
    "SALE_APPROVE",
    "SALE_SPLIT_APPROVE",
    "PartyInput",
    "PaymentInput",
    "SaleForbidden",
    "SaleInput",
    "SaleLineInput",
    "SaleOrderInvalid",
    "SalePlan",
    "VoucherLineInput",
    "sale_lines_parse",
    "sale_order_cancel",
    "sale_order_check",
    "sale_order_create",
    "sale_order_pay",
    "sale_order_payments_set",
    "sale_order_submit",
    "sale_order_update",
    "sale_walk_in",
    "voucher_lines_of",
    "voucher_lines_parse",
    "voucher_lines_text",
]

SALE_APPROVE = "cards.sale_approve"
# An order that passes a non-cash limit only added to its buyer's earlier orders (cards.rules) is approved under
# its own action, so its policy and approvers can differ from those of large or discounted orders.
SALE_SPLIT_APPROVE = "cards.sale_split_approve"
SALE_ACTIONS = (SALE_APPROVE, SALE_SPLIT_APPROVE)
OPEN_STATUSES = (SaleOrder.Status.DRAFT, SaleOrder.Status.PENDING, SaleOrder.Status.APPROVED)
# One order loads at most this many cards: a larger corporate order is several orders.
MAX_ORDER_CARDS = 10_000
# Likewise for pickup vouchers: each is activated with its own ledger row when the order is paid.
MAX_ORDER_VOUCHERS = 10_000
_ZERO = Decimal("0.00")
_LINE = re.compile(
    r"^(?P<first>[0-9]{6,32})(?:\s*(?:-|~|–|至|到)\s*(?P<last>[0-9]{6,32}))?"
    r"(?:[\s,;，；]+(?P<amount>\S+))?$"
)
_VOUCHER_LINE = re.compile(
    r"^(?P<batch>[^\s,;，；:：]{1,20})[\s,;，；:：]+(?P<first>[0-9]{1,7})"
    r"(?:\s*(?:-|~|–|至|到)\s*(?P<last>[0-9]{1,7}))?$"
)


# --- input ----------------------------------------------------------------------------------------


@dataclass
class SaleLineInput:
    """One card, or a range of card numbers (first to last, same length), with the amount loaded onto each.

    No amount means each card's face value.
    """

    first: str
    last: str = ""
    amount: Decimal | None = None


@dataclass
class VoucherLineInput:
    """Pickup vouchers of one batch by serial number: `first` alone, or `first` to `last`.

    Each voucher sells at its batch's price. `line` is the line of the staff's text it came from (for messages).
    """

    batch_no: str
    first: int
    last: int | None = None
    line: int = 0


@dataclass
class SaleInput:
    """Everything a sale order records besides who wrote it."""

    store: object
    kind: str = SaleOrder.Kind.SALE
    channel: str = SaleOrder.Channel.WALK_IN
    remote: bool = False
    buyer_type: str = SaleOrder.BuyerType.PERSON
    buyer: PartyInput = field(default_factory=PartyInput)
    agent: PartyInput = field(default_factory=PartyInput)
    member: object = None
    lines: list[SaleLineInput] = field(default_factory=list)
    voucher_lines: list[VoucherLineInput] = field(default_factory=list)
    discount: Decimal = _ZERO
    rebate: Decimal = _ZERO
    invoice_title: str = ""
    invoice_tax_no: str = ""
    note: str = ""


@dataclass
class SalePlan:
    """What an order would do, as checked: the cards, vouchers and amounts, the money, and which rules apply."""

    cards: list[tuple[Card, Decimal]]
    face_total: Decimal
    discount: Decimal
    amount_due: Decimal
    values: dict
    real_name_required: bool
    transfer_only: bool
    transfer_rule: str
    split_suspected: bool
    approval_required: bool
    vouchers: list[tuple[Voucher, Decimal]] = field(default_factory=list)
    voucher_total: Decimal = _ZERO
    # The non-cash rule the order passes only with its buyer's earlier orders (`summed_orders`): approval needed.
    split_approval_rule: str = ""
    summed_orders: list[str] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        """Cards and vouchers before the discount: the amount the prepaid-card rules' limits look at."""
        return self.face_total + self.voucher_total


def sale_lines_parse(text: str, *, field_name: str = "cards") -> list[SaleLineInput]:
    """Card lines as staff type or scan them, one per line: `card_no [amount]` or `first-last [amount]`.

    Raise SaleOrderInvalid naming the line.
    """
    lines = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        row = raw.strip()
        if not row:
            continue
        match = _LINE.match(row)
        if match is None:
            raise SaleOrderInvalid(fields={field_name: [gettext(
                "Line %(line)d: write a card number, or first-last card numbers, then the amount (e.g. "
                "6201000000001 500)."
            ) % {"line": number}]})
        amount = None
        if match["amount"]:
            try:
                amount = money_clean(match["amount"].replace("，", ""), field=field_name)
            except CardInvalid:
                raise SaleOrderInvalid(fields={field_name: [gettext(
                    "Line %(line)d: %(amount)s is not an amount such as 500.00."
                ) % {"line": number, "amount": match["amount"]}]}) from None
        lines.append(SaleLineInput(first=match["first"], last=match["last"] or "", amount=amount))
    return lines


def voucher_lines_parse(text: str, *, field_name: str = "vouchers") -> list[VoucherLineInput]:
    """Voucher lines as staff type them, one per line: `batch_no serial` or `batch_no first-last`
    (e.g. `VB2026001 1-50`). Raise SaleOrderInvalid naming the line."""
    lines = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        row = raw.strip()
        if not row:
            continue
        match = _VOUCHER_LINE.match(row)
        if match is None:
            raise SaleOrderInvalid(fields={field_name: [gettext(
                "Line %(line)d: write a voucher batch number, then a serial number or first-last serial numbers "
                "(e.g. VB2026001 1-50)."
            ) % {"line": number}]})
        first = int(match["first"])
        last = int(match["last"]) if match["last"] else None
        if first < 1 or (last is not None and last < first):
            raise SaleOrderInvalid(fields={field_name: [gettext(
                "Line %(line)d: serial numbers start at 1 and a range runs from the lower to the higher number."
            ) % {"line": number}]})
        lines.append(VoucherLineInput(batch_no=match["batch"], first=first, last=last, line=number))
    return lines


def voucher_lines_of(order: SaleOrder) -> list[VoucherLineInput]:
    """An order's stored vouchers as lines, consecutive serials of a batch joined into one range."""
    lines: list[VoucherLineInput] = []
    rows = order.voucher_lines.order_by("voucher__batch__batch_no", "voucher__serial") \
        .values_list("voucher__batch__batch_no", "voucher__serial")
    for batch_no, serial in rows.iterator(chunk_size=2000):
        last = lines[-1] if lines else None
        if last is not None and last.batch_no == batch_no and (last.last or last.first) + 1 == serial:
            last.last = serial
        else:
            lines.append(VoucherLineInput(batch_no=batch_no, first=serial, line=len(lines) + 1))
    return lines


def voucher_lines_text(order: SaleOrder) -> str:
    """An order's vouchers written the way staff type them (`VB2026001 1-50`, one batch range a line)."""
    return "\n".join(f"{line.batch_no} {line.first}-{line.last}" if line.last else f"{line.batch_no} {line.first}"
                     for line in voucher_lines_of(order))


# --- the checks -------------------------------------------------------------------------------------


def _resolve_cards(lines: list[SaleLineInput], *, field_name: str = "cards") -> list[tuple[Card, Decimal | None]]:
    """The cards the lines name, in the order given; raise SaleOrderInvalid naming a missing or repeated card."""
    if not lines:
        raise SaleOrderInvalid(fields={field_name: [gettext("Add at least one card.")]})
    found: list[tuple[Card, Decimal | None]] = []
    seen: set[int] = set()
    for line in lines:
        if line.last:
            if len(line.last) != len(line.first) or line.last < line.first:
                raise SaleOrderInvalid(fields={field_name: [gettext(
                    "The range %(first)s-%(last)s must run from a lower to a higher card number of the same length."
                ) % {"first": line.first, "last": line.last}]})
            cards = [card for card in Card.objects.select_related("product").filter(
                card_no__gte=line.first, card_no__lte=line.last).order_by("card_no")[: MAX_ORDER_CARDS + 1]
                if len(card.card_no) == len(line.first)]
            if not cards:
                raise SaleOrderInvalid(fields={field_name: [gettext("No cards from %(first)s to %(last)s.")
                                                            % {"first": line.first, "last": line.last}]})
        else:
            card = Card.objects.select_related("product").filter(card_no=line.first).first()
            if card is None:
                raise SaleOrderInvalid(fields={field_name: [gettext("No card with number %(card_no)s.")
                                                            % {"card_no": line.first}]})
            cards = [card]
        for card in cards:
            if card.pk in seen:
                raise SaleOrderInvalid(fields={field_name: [gettext("Card %(card_no)s is named twice.")
                                                            % {"card_no": card.card_no}]})
            seen.add(card.pk)
            found.append((card, line.amount))
        if len(found) > MAX_ORDER_CARDS:
            raise SaleOrderInvalid(fields={field_name: [gettext("One order holds at most %(max)d cards.")
                                                        % {"max": MAX_ORDER_CARDS}]})
    return found


def _resolve_vouchers(lines: list[VoucherLineInput], *, order_id, now,
                      field_name: str = "vouchers") -> list[tuple[Voucher, Decimal]]:
    """The vouchers the lines name with their batch's price; raise SaleOrderInvalid naming the line of a
    voucher that cannot be sold (unknown batch, batch not issued, sold, expired, repeated, in another open order)."""
    def refuse(message: str, **params) -> SaleOrderInvalid:
        return SaleOrderInvalid(fields={field_name: [message % params]})

    found: list[tuple[Voucher, Decimal]] = []
    line_of: dict[int, tuple[int, str, int]] = {}
    batches: dict[str, VoucherBatch] = {}
    for index, line in enumerate(lines, start=1):
        number = line.line or index
        last = line.last or line.first
        batch = batches.get(line.batch_no)
        if batch is None:
            batch = VoucherBatch.objects.select_related("product").filter(batch_no=line.batch_no).first()
            if batch is None:
                raise refuse(gettext("Line %(line)d: there is no voucher batch %(batch)s."),
                             line=number, batch=line.batch_no)
            batches[line.batch_no] = batch
        if batch.status != VoucherBatch.Status.ISSUED:
            raise refuse(gettext("Line %(line)d: batch %(batch)s is %(status)s; only vouchers of an approved batch "
                                 "with generated codes can be sold."),
                         line=number, batch=batch.batch_no, status=batch.get_status_display())
        if not batch.product.is_active:
            raise refuse(gettext("Line %(line)d: the product of batch %(batch)s (%(product)s) is no longer active."),
                         line=number, batch=batch.batch_no, product=batch.product.name)
        if line.first < 1 or last < line.first or last > batch.quantity:
            raise refuse(gettext("Line %(line)d: batch %(batch)s has serial numbers 1 to %(quantity)d."),
                         line=number, batch=batch.batch_no, quantity=batch.quantity)
        if len(found) + last - line.first + 1 > MAX_ORDER_VOUCHERS:
            raise SaleOrderInvalid(fields={field_name: [gettext("One order holds at most %(max)d vouchers.")
                                                        % {"max": MAX_ORDER_VOUCHERS}]})
        vouchers = list(Voucher.objects.filter(batch=batch, serial__gte=line.first, serial__lte=last)
                        .order_by("serial"))
        serials = {voucher.serial for voucher in vouchers}
        for serial in range(line.first, last + 1):
            if serial not in serials:
                raise refuse(gettext("Line %(line)d: there is no voucher %(batch)s #%(serial)d."),
                             line=number, batch=batch.batch_no, serial=serial)
        for voucher in vouchers:
            voucher.batch = batch
            if voucher.pk in line_of:
                raise refuse(gettext("Line %(line)d: voucher %(batch)s #%(serial)d is named twice."),
                             line=number, batch=batch.batch_no, serial=voucher.serial)
            if voucher.status != Voucher.Status.UNSOLD:
                raise refuse(gettext("Line %(line)d: voucher %(batch)s #%(serial)d is %(status)s; only an unsold "
                                     "voucher can be sold."), line=number, batch=batch.batch_no,
                             serial=voucher.serial, status=voucher.get_status_display())
            if voucher.expires_at <= now:
                raise refuse(gettext("Line %(line)d: voucher %(batch)s #%(serial)d expired on %(date)s."),
                             line=number, batch=batch.batch_no, serial=voucher.serial,
                             date=timezone.localtime(voucher.expires_at).date().isoformat())
            line_of[voucher.pk] = (number, batch.batch_no, voucher.serial)
            found.append((voucher, batch.price))
    voucher_ids = [voucher.pk for voucher, _price in found]
    for start in range(0, len(voucher_ids), 1000):
        busy = SaleVoucherLine.objects.filter(voucher_id__in=voucher_ids[start:start + 1000],
                                              order__status__in=OPEN_STATUSES)
        if order_id is not None:
            busy = busy.exclude(order_id=order_id)
        taken = dict(busy.values_list("voucher_id", "order__order_no"))
        if taken:
            voucher_id = min(taken, key=lambda pk: line_of[pk])
            number, batch_no, serial = line_of[voucher_id]
            raise refuse(gettext("Line %(line)d: voucher %(batch)s #%(serial)d is already in open order "
                                 "%(order_no)s."), line=number, batch=batch_no, serial=serial,
                         order_no=taken[voucher_id])
    return found


def _cards_in_open_orders(card_ids: list[int], *, order_id) -> dict[int, str]:
    """card id -> number of another unpaid order holding it."""
    busy: dict[int, str] = {}
    for start in range(0, len(card_ids), 1000):
        lines = SaleLine.objects.filter(card_id__in=card_ids[start:start + 1000], order__status__in=OPEN_STATUSES)
        if order_id is not None:
            lines = lines.exclude(order_id=order_id)
        busy.update(lines.values_list("card_id", "order__order_no"))
    return busy


def _check_card(card: Card, amount: Decimal | None, *, kind: str, channel: str, store, rules,
                field_name: str = "cards") -> Decimal:
    """Refuse a card this order cannot sell or top up; return the amount to load."""
    if amount is None:
        amount = card.face_value if kind == SaleOrder.Kind.SALE else None
        if not amount:
            raise SaleOrderInvalid(fields={field_name: [gettext("Give the amount to load onto card %(card_no)s.")
                                                        % {"card_no": card.card_no}]})
    cap = card_cap(card, rules)
    if kind == SaleOrder.Kind.SALE:
        if card.status != Card.Status.INACTIVE or card.stock_status != Card.Stock.IN_STOCK:
            raise CardOperationRefused(reason=gettext("card %(card_no)s is not an unsold card in stock (%(status)s, "
                                                      "%(stock)s).") % {
                "card_no": card.card_no, "status": card.get_status_display(),
                "stock": card.get_stock_status_display()})
        allowed = {store.pk}
        if card.location_id not in allowed and not (channel == SaleOrder.Channel.GROUP and card.location_id is None):
            raise CardOperationRefused(reason=gettext("card %(card_no)s is not in stock at %(store)s.") % {
                "card_no": card.card_no, "store": store.name})
        if amount > cap:
            raise CardRuleBroken(gettext(
                "Card cap (prepaid card rules): card %(card_no)s may hold at most %(cap)s, not %(amount)s."
            ) % {"card_no": card.card_no, "cap": cap, "amount": amount})
    else:
        card_for_use(card)
        if not card.product.reloadable:
            raise CardOperationRefused(reason=gettext("card %(card_no)s (%(product)s) is not reloadable.") % {
                "card_no": card.card_no, "product": card.product.name})
        if card.balance + amount > cap:
            raise CardRuleBroken(gettext(
                "Card cap (prepaid card rules): card %(card_no)s holds %(balance)s and may hold at most %(cap)s; "
                "a top-up of %(amount)s is too much."
            ) % {"card_no": card.card_no, "balance": card.balance, "cap": cap, "amount": amount})
    return amount


def sale_order_check(*, data: SaleInput, stored: SaleOrder | None = None,
                     payments: list[PaymentInput] | None = None, now=None) -> SalePlan:
    """Check an order against its cards, its pickup vouchers and the prepaid-card rules without writing anything.

    `stored` is the order being changed or paid: its own cards and vouchers are not "in another open order"; its
    sealed IDs stand in for ID numbers not typed again under the same name and ID type, and its time places it
    among its buyer's orders. Raise SaleOrderInvalid (fields), CardRuleBroken (naming the rule) or
    CardOperationRefused.
    """
    order_id = stored.pk if stored is not None else None
    rules = CardRules.current()
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}
    if data.kind not in SaleOrder.Kind.values:
        errors["kind"] = [gettext("Unknown kind of order.")]
    if data.channel not in SaleOrder.Channel.values:
        errors["channel"] = [gettext("Unknown channel.")]
    if data.buyer_type not in SaleOrder.BuyerType.values:
        errors["buyer_type"] = [gettext("Choose a person or a company.")]
    if data.store is None:
        errors["store"] = [gettext("Choose the selling store.")]
    company = data.buyer_type == SaleOrder.BuyerType.COMPANY
    same_type = stored is not None and stored.buyer_type == data.buyer_type
    values = party_values(data.buyer, prefix="buyer", company=company, errors=errors,
                          stored=stored if same_type else None)
    values["buyer_address"] = (data.buyer.address or "").strip()[:200]
    has_agent = not data.agent.is_empty()
    values.update(party_values(data.agent, prefix="agent", company=False, errors=errors, stored=stored))
    discount = _money_or_error(data.discount, "discount", errors)
    rebate = _money_or_error(data.rebate, "rebate", errors)
    invoice_tax_no = (data.invoice_tax_no or "").strip().upper()
    if invoice_tax_no and not re.fullmatch(r"[0-9A-Z]{15,20}", invoice_tax_no):
        errors["invoice_tax_no"] = [gettext("A taxpayer number is 15 to 20 letters and digits.")]
    if not data.lines and not data.voucher_lines:
        errors["cards"] = [gettext("Add at least one card or pickup voucher.")]
    elif data.voucher_lines and data.kind == SaleOrder.Kind.TOP_UP:
        errors["vouchers"] = [gettext("A top-up order holds cards only; sell pickup vouchers in a sale order.")]
    if errors:
        raise SaleOrderInvalid(fields=errors)
    issuer_filing_check(data.store)
    resolved = _resolve_cards(data.lines) if data.lines else []
    busy = _cards_in_open_orders([card.pk for card, _amount in resolved], order_id=order_id)
    cards = []
    for card, amount in resolved:
        if card.pk in busy:
            raise CardOperationRefused(reason=gettext("card %(card_no)s is already in open order %(order_no)s.")
                                       % {"card_no": card.card_no, "order_no": busy[card.pk]})
        cards.append((card, _check_card(card, amount, kind=data.kind, channel=data.channel, store=data.store,
                                        rules=rules)))
    # Vouchers expire by the clock, not by the order's time that `now` may stand for.
    vouchers = _resolve_vouchers(data.voucher_lines, order_id=order_id, now=timezone.now()) \
        if data.voucher_lines else []
    face_total = sum((amount for _card, amount in cards), _ZERO)
    voucher_total = sum((price for _voucher, price in vouchers), _ZERO)
    total = face_total + voucher_total
    if discount > total:
        if vouchers:
            message = gettext("The discount cannot be more than the order's total %(total)s (cards and vouchers).")
        else:
            message = gettext("The discount cannot be more than the cards' total %(total)s.")
        raise SaleOrderInvalid(fields={"discount": [message % {"total": total}]})
    outcome = order_rules_check(OrderFacts(
        store=data.store, kind=data.kind, remote=bool(data.remote), buyer_type=data.buyer_type,
        invoice_tax_no=invoice_tax_no, values=values, total=total,
        has_registered=any(card.product.is_registered for card, _amount in cards),
        has_bearer=any(not card.product.is_registered for card, _amount in cards), has_vouchers=bool(vouchers),
        has_agent=has_agent, order_id=order_id, now=now,
    ), payments=payments, rules=rules)
    approval = (discount > 0 or (data.channel == SaleOrder.Channel.GROUP and total >= rules.group_approval_from)
                or bool(outcome.approval_rule))
    values.update(
        kind=data.kind, channel=data.channel, store=data.store, remote=bool(data.remote),
        buyer_type=data.buyer_type, member=data.member, face_total=face_total, voucher_total=voucher_total,
        discount=discount, rebate=rebate, amount_due=total - discount,
        invoice_title=(data.invoice_title or "").strip()[:100], invoice_tax_no=invoice_tax_no,
        note=(data.note or "").strip()[:200], split_suspected=outcome.split_suspected,
    )
    return SalePlan(cards=cards, face_total=face_total, discount=discount, amount_due=total - discount,
                    values=values, real_name_required=outcome.real_name_required,
                    transfer_only=bool(outcome.transfer_rule), transfer_rule=outcome.transfer_rule,
                    split_suspected=outcome.split_suspected, approval_required=approval, vouchers=vouchers,
                    voucher_total=voucher_total, split_approval_rule=outcome.approval_rule,
                    summed_orders=outcome.summed_orders)


def _money_or_error(value, name: str, errors: dict) -> Decimal:
    if value in (None, ""):
        return _ZERO
    try:
        return money_clean(value, field=name, allow_zero=True)
    except CardInvalid as error:
        errors.update(error.fields or {})
        return _ZERO


# --- writes -----------------------------------------------------------------------------------------


def _ensure_store(actor, store) -> None:
    if store is not None and not user_can_see_store(actor, store):
        raise SaleForbidden()


def _order_no_new(kind: str) -> str:
    prefix = "T" if kind == SaleOrder.Kind.TOP_UP else "S"
    while True:
        order_no = f"{prefix}{timezone.localdate():%y%m%d}{secrets.randbelow(10**8):08d}"
        if not SaleOrder.objects.filter(order_no=order_no).exists():
            return order_no


def _lines_write(order: SaleOrder, plan: SalePlan) -> None:
    SaleLine.objects.filter(order=order).delete()
    SaleLine.objects.bulk_create([SaleLine(order=order, card=card, amount=amount) for card, amount in plan.cards],
                                 batch_size=1000)


def _voucher_lines_write(order: SaleOrder, plan: SalePlan) -> None:
    SaleVoucherLine.objects.filter(order=order).delete()
    SaleVoucherLine.objects.bulk_create([SaleVoucherLine(order=order, voucher=voucher, amount=price)
                                         for voucher, price in plan.vouchers], batch_size=1000)


def _payments_write(order: SaleOrder, payments: list[PaymentInput]) -> None:
    SalePayment.objects.filter(order=order).delete()
    SalePayment.objects.bulk_create([SalePayment(
        order=order, method=p.method, amount=p.amount, reference=(p.reference or "").strip()[:64],
        payer_account_name=(p.payer_account_name or "").strip()[:100],
        payer_account_no=(p.payer_account_no or "").strip()[:40],
        payee_account_name=(p.payee_account_name or "").strip()[:100],
        payee_account_no=(p.payee_account_no or "").strip()[:40],
    ) for p in payments])


def _lock_order(order: SaleOrder) -> SaleOrder:
    return SaleOrder.objects.select_for_update(of=("self",)).select_related("store__format__legal_entity", "member") \
        .get(pk=order.pk)


def _order_input(order: SaleOrder) -> SaleInput:
    """The order as stored, for checking it again at submission and payment (IDs are known by their digests)."""
    return SaleInput(
        store=order.store, kind=order.kind, channel=order.channel, remote=order.remote, buyer_type=order.buyer_type,
        member=order.member, discount=order.discount, rebate=order.rebate, invoice_title=order.invoice_title,
        invoice_tax_no=order.invoice_tax_no, note=order.note,
        lines=[SaleLineInput(first=card_no, amount=amount)
               for card_no, amount in order.lines.order_by("pk").values_list("card__card_no", "amount")],
        voucher_lines=voucher_lines_of(order),
    )


def _recheck(order: SaleOrder, payments: list[PaymentInput] | None = None) -> SalePlan:
    """Check a stored order again: its cards and money now, its stored identity, its own time for the window."""
    data = _order_input(order)
    data.buyer = PartyInput(name=order.buyer_name, id_type=order.buyer_id_type, phone=order.buyer_phone,
                            credit_code=order.buyer_credit_code, address=order.buyer_address)
    data.agent = PartyInput(name=order.agent_name, id_type=order.agent_id_type, phone=order.agent_phone)
    return sale_order_check(data=data, stored=order, payments=payments, now=order.created_at)


def _payments_of(order: SaleOrder) -> list[PaymentInput]:
    return [PaymentInput(method=p.method, amount=p.amount, reference=p.reference,
                         payer_account_name=p.payer_account_name, payer_account_no=p.payer_account_no,
                         payee_account_name=p.payee_account_name, payee_account_no=p.payee_account_no)
            for p in order.payments.order_by("pk")]


def _create(data: SaleInput, created_by, payments: list[PaymentInput] | None) -> tuple[SaleOrder, SalePlan]:
    _ensure_store(created_by, data.store)
    plan = sale_order_check(data=data, payments=payments)
    order = SaleOrder.objects.create(order_no=_order_no_new(data.kind), created_by=created_by, **plan.values)
    _lines_write(order, plan)
    _voucher_lines_write(order, plan)
    if payments is not None:
        _payments_write(order, payments)
    return order, plan


@transaction.atomic
def sale_order_create(*, data: SaleInput, created_by, payments: list[PaymentInput] | None = None) -> SaleOrder:
    """Write a draft order after checking it. Raise SaleForbidden, SaleOrderInvalid, CardRuleBroken,
    CardOperationRefused."""
    return _create(data, created_by, payments)[0]


@transaction.atomic
def sale_order_update(*, order: SaleOrder, data: SaleInput, actor,
                      payments: list[PaymentInput] | None = None) -> SaleOrder:
    """Change a draft order; an ID number left empty keeps the one on file (staff see it masked only) while the
    name and ID type stay those it was recorded with.

    Raise CardOperationRefused when it is no longer a draft, or what the checks raise.
    """
    order = _lock_order(order)
    _ensure_store(actor, order.store)
    _ensure_store(actor, data.store)
    if order.status != SaleOrder.Status.DRAFT:
        raise CardOperationRefused(reason=gettext("order %(order_no)s is %(status)s; only a draft can be changed.")
                                   % {"order_no": order.order_no, "status": order.get_status_display()})
    plan = sale_order_check(data=data, stored=order, payments=payments, now=order.created_at)
    for name, value in plan.values.items():
        setattr(order, name, value)
    order.save()
    _lines_write(order, plan)
    _voucher_lines_write(order, plan)
    if payments is not None:
        _payments_write(order, payments)
    return order


@transaction.atomic
def sale_order_payments_set(*, order: SaleOrder, payments: list[PaymentInput], actor) -> SaleOrder:
    """Record the payment lines of an unpaid order (replacing its lines); the sum is checked at payment.

    Raise CardOperationRefused once paid or closed, SaleOrderInvalid or CardRuleBroken (non-cash rule).
    """
    order = _lock_order(order)
    _ensure_store(actor, order.store)
    if order.status not in (SaleOrder.Status.DRAFT, SaleOrder.Status.APPROVED):
        raise CardOperationRefused(reason=gettext("order %(order_no)s is %(status)s; its payments cannot change.")
                                   % {"order_no": order.order_no, "status": order.get_status_display()})
    _recheck(order, payments)
    _payments_write(order, payments)
    return order


def _cancel_approval(order: SaleOrder, actor) -> None:
    pending = pending_request(order, actions=SALE_ACTIONS)
    if pending is None:
        return
    if pending.requested_by_id != actor.pk:
        raise CardOperationRefused(reason=gettext(
            "order %(order_no)s is waiting for approval: only %(requester)s, who asked for it, can withdraw it; "
            "otherwise the approver rejects it.") % {"order_no": order.order_no,
                                                     "requester": pending.requested_by.get_username()})
    approval_request_cancel(approval_request=pending, user=actor)


@transaction.atomic
def sale_order_submit(*, order: SaleOrder, actor, reason: str = "") -> SaleOrder:
    """Submit a draft: checked again, then waiting for approval when the rules ask for it, else ready for payment.

    Raise CardOperationRefused (not a draft), or what the checks raise.
    """
    order = _lock_order(order)
    _ensure_store(actor, order.store)
    if order.status != SaleOrder.Status.DRAFT:
        raise CardOperationRefused(reason=gettext("order %(order_no)s is %(status)s, not a draft.")
                                   % {"order_no": order.order_no, "status": order.get_status_display()})
    # Its payment lines too: a cash line the rules now refuse (orders summed since) is named at submission.
    plan = _recheck(order, _payments_of(order))
    order.split_suspected = plan.split_suspected
    if not plan.approval_required:
        order.status = SaleOrder.Status.APPROVED
        order.save(update_fields=["status", "split_suspected"])
        return order
    order.status = SaleOrder.Status.PENDING
    order.save(update_fields=["status", "split_suspected"])
    why = []
    if plan.discount > 0:
        why.append(gettext("discount %(discount)s") % {"discount": plan.discount})
    if order.channel == SaleOrder.Channel.GROUP and plan.total >= CardRules.current().group_approval_from:
        why.append(gettext("corporate order of %(total)s") % {"total": plan.total})
    if plan.split_approval_rule:
        why.append(gettext("adds up past a non-cash limit with orders %(orders)s, bank transfer only")
                   % {"orders": ", ".join(plan.summed_orders)})
    elif plan.split_suspected:
        why.append(gettext("looks split"))
    text = (reason or "").strip() or gettext("Card order %(order_no)s: %(why)s.") % {
        "order_no": order.order_no, "why": ", ".join(why)}
    approval_request_submit(action=SALE_SPLIT_APPROVE if plan.split_approval_rule else SALE_APPROVE,
                            subject=order, requested_by=actor, reason=text, amount=plan.total, store=order.store,
                            payload={"order_no": order.order_no, "discount": str(plan.discount),
                                     "amount_due": str(plan.amount_due), "cards": len(plan.cards),
                                     "vouchers": len(plan.vouchers), "voucher_total": str(plan.voucher_total),
                                     "summed_with": plan.summed_orders})
    order.refresh_from_db(fields=["status"])
    return order


def _approve_execute(request: ApprovalRequest) -> None:
    """An approved order waits for payment; its cards and rules are checked again when it is paid."""
    order = SaleOrder.objects.select_for_update().get(pk=int(request.object_id))
    if order.status != SaleOrder.Status.PENDING:
        raise CardOperationRefused(reason=gettext("order %(order_no)s is %(status)s.")
                                   % {"order_no": order.order_no, "status": order.get_status_display()})
    order.status = SaleOrder.Status.APPROVED
    order.save(update_fields=["status"])


def _approve_rejected(request: ApprovalRequest) -> None:
    SaleOrder.objects.filter(pk=int(request.object_id), status=SaleOrder.Status.PENDING) \
        .update(status=SaleOrder.Status.REJECTED)


registry.register(SALE_APPROVE, label=_("Card sale (large or discounted)"), execute=_approve_execute,
                  on_reject=_approve_rejected)
registry.register(SALE_SPLIT_APPROVE, label=_("Card sale adding up past a non-cash limit (looks split)"),
                  execute=_approve_execute, on_reject=_approve_rejected)


def _split_approved(order: SaleOrder) -> bool:
    return requests_of(order, actions=[SALE_SPLIT_APPROVE]).filter(status=ApprovalRequest.Status.APPROVED).exists()


@transaction.atomic
def sale_order_pay(*, order: SaleOrder, actor, payments: list[PaymentInput] | None = None) -> SaleOrder:
    """Confirm payment: the lines must add up to the amount due; then every card is loaded and activated and
    every pickup voucher activated with its units.

    `payments`, when given, replace the order's payment lines. A draft that needs no approval is submitted
    on the way. Raise CardOperationRefused, SaleOrderInvalid, CardRuleBroken (naming the rule).
    """
    order = _lock_order(order)
    _ensure_store(actor, order.store)
    if order.status == SaleOrder.Status.DRAFT:
        order = sale_order_submit(order=order, actor=actor)
    if order.status != SaleOrder.Status.APPROVED:
        raise CardOperationRefused(reason=gettext("order %(order_no)s is %(status)s; it cannot be paid now.")
                                   % {"order_no": order.order_no, "status": order.get_status_display()})
    if payments is None:
        payments = _payments_of(order)
    # Cards, then vouchers, locked in primary-key order, so two orders never wait on each other's cards or vouchers.
    card_ids = list(order.lines.values_list("card_id", flat=True))
    list(Card.objects.select_for_update().filter(pk__in=card_ids).order_by("pk").values_list("pk", flat=True))
    list(Voucher.objects.select_for_update().filter(pk__in=SaleVoucherLine.objects.filter(order=order)
                                                    .values("voucher_id")).order_by("pk").values_list("pk", flat=True))
    plan = _recheck(order, payments)
    if plan.split_approval_rule and not _split_approved(order):
        raise CardRuleBroken(gettext(
            "%(rule)s Order %(order_no)s was approved before it added up so: cancel it and write it again to submit "
            "it for approval."
        ) % {"rule": plan.split_approval_rule, "order_no": order.order_no})
    if plan.voucher_total != order.voucher_total:
        raise CardOperationRefused(reason=gettext(
            "the vouchers of order %(order_no)s now cost %(now)s, not %(then)s as written and approved; cancel it "
            "and write it again.") % {"order_no": order.order_no, "now": plan.voucher_total,
                                      "then": order.voucher_total})
    paid = sum((p.amount for p in payments), _ZERO)
    if paid != plan.amount_due:
        raise SaleOrderInvalid(fields={"payments": [gettext(
            "The payments add up to %(paid)s; the amount due is %(due)s. They must match exactly."
        ) % {"paid": paid, "due": plan.amount_due}]})
    _payments_write(order, payments)
    _activate(order, plan, actor=actor)
    order.status = SaleOrder.Status.COMPLETED
    order.completed_at = timezone.now()
    order.split_suspected = plan.split_suspected
    order.save(update_fields=["status", "completed_at", "split_suspected"])
    return order


def _activate(order: SaleOrder, plan: SalePlan, *, actor) -> None:
    store = order.store
    issuer = store.format.legal_entity
    now = timezone.now()
    member = order.member
    rules = CardRules.current()
    for card, amount in plan.cards:
        card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=amount, store=store, operator=actor,
                  legal_entity=issuer, receipt_no=order.order_no, cause=order, cap=card_cap(card, rules),
                  reason=gettext("Top-up") if order.kind == SaleOrder.Kind.TOP_UP else gettext("Card sale"))
        if order.kind == SaleOrder.Kind.TOP_UP:
            continue
        registered = card.product.is_registered
        expires_at = None
        if not registered and card.product.validity_months:
            expires_at = _months_later(now, card.product.validity_months)
        card_status_change(
            card=card, status=Card.Status.ACTIVE, event=CardEvent.Kind.ACTIVATED, store=store, actor=actor,
            note=order.order_no, data={"order_no": order.order_no, "amount": str(amount)},
            activated_at=now, expires_at=expires_at, stock_status=Card.Stock.SOLD, sold_store=store, issuer=issuer,
            sale_order=order, member=member if registered else None,
            holder_name=_holder_name(order) if registered else "",
        )
    for voucher, _price in plan.vouchers:
        voucher_services.voucher_activate(voucher=voucher, order=order, store=store, actor=actor)


def _holder_name(order: SaleOrder) -> str:
    return (order.member.name if order.member is not None else order.buyer_name)[:100]


def _months_later(moment, months: int):
    """The same local day and time `months` later (the last day of a shorter month)."""
    return moment_months_add(timezone.localtime(moment), months)


@transaction.atomic
def sale_order_cancel(*, order: SaleOrder, actor, reason: str = "") -> SaleOrder:
    """Cancel an order before payment; a pending approval is withdrawn (only its requester may).

    Raise CardOperationRefused once paid, or what approval_request_cancel raises.
    """
    order = _lock_order(order)
    _ensure_store(actor, order.store)
    if order.status not in OPEN_STATUSES:
        raise CardOperationRefused(reason=gettext("order %(order_no)s is %(status)s; only an unpaid order can be "
                                                  "cancelled.") % {"order_no": order.order_no,
                                                                   "status": order.get_status_display()})
    if order.status == SaleOrder.Status.PENDING:
        _cancel_approval(order, actor)
    order.status = SaleOrder.Status.CANCELLED
    if reason.strip():
        order.note = f"{order.note} {reason.strip()}".strip()[:200]
    order.save(update_fields=["status", "note"])
    return order


@transaction.atomic
def sale_walk_in(*, data: SaleInput, payments: list[PaymentInput], actor) -> SaleOrder:
    """A sale or top-up at the desk, paid at once: created, submitted and paid in one transaction.

    Raise CardOperationRefused when the order needs approval (a discount), CardRuleBroken when it adds up with
    the buyer's earlier orders past a non-cash limit (approval in the back office), or what the steps raise.
    """
    order, plan = _create(data, actor, payments)
    if order.discount > 0:
        raise CardOperationRefused(reason=gettext("a discounted order needs approval; enter it in the back office."))
    if plan.split_approval_rule:
        message = gettext("%(rule)s Enter it in the back office to submit it for approval.") % {
            "rule": plan.split_approval_rule}
        raise CardRuleBroken(message, fields={"payments": [message]})
    return sale_order_pay(order=order, actor=actor)
