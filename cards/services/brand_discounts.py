"""The brand-card discount at the POS, and the brand's share of it given back on refunds and reversals.

Registered as the "brand_cards" discount of cards.discounts when this module is imported (the cards app
imports every service module when it loads). On a debit with a card whose product has a programme in force
on the business day (Asia/Shanghai), the basket's lines whose SKU is on the programme's list of that day earn
`discount_rate` of their amount, rounded up to the fen in the customer's favour, within the programme's caps
per receipt and per card. The payment's BrandDiscount row (the brand's statement line) is written in the
payment's transaction; a refund gives back a share in proportion to what it put back onto the card, a
reversal all of what it undoes, so the rows of a payment always add up to what the customer kept.

Every write here happens inside a card payment, refund or reversal: the card row, or the payment's
transaction row, is locked by then (cards.services.payments), so the caps and give-backs read here cannot
be raced on PostgreSQL.
"""

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

from django.db.models import Q, Sum
from django.utils import timezone

from cards import discounts
from cards.errors import BrandLinesAboveAmount
from cards.models import BrandDiscount, BrandProgramme, BrandSku, BrandSkuList, CardTransaction

__all__ = [
    "BrandCardDiscount",
    "BrandLinesAboveAmount",
    "BrandQuote",
    "brand_discount_follow_up",
    "brand_discount_quote",
    "brand_discount_record",
    "programme_in_force",
    "sku_list_in_force",
]

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
DISCOUNT_NAME = "brand_cards"


# --- reads ------------------------------------------------------------------------------------------------


def sku_list_in_force(programme: BrandProgramme, on_date: date) -> BrandSkuList | None:
    """The programme's eligible SKU list on `on_date`: the confirmed one applying latest from on or before it.

    Two confirmed lists applying from the same day: the one confirmed last wins (then the later upload).
    """
    return (
        BrandSkuList.objects.filter(programme=programme, confirmed_at__isnull=False, valid_from__lte=on_date)
        .order_by("-valid_from", "-confirmed_at", "-pk")
        .first()
    )


def programme_in_force(product_id: int, on_date: date) -> BrandProgramme | None:
    """The active programme of a card product on `on_date` whose brand is active, or None."""
    return (
        BrandProgramme.objects.filter(
            product_id=product_id, status=BrandProgramme.Status.ACTIVE, starts_on__lte=on_date,
            brand__is_active=True,
        )
        .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=on_date))
        .order_by("-starts_on", "-pk")
        .first()
    )


def _money(value) -> Decimal:
    # SQLite sums decimals as binary floats: bring an aggregate back to whole cents.
    return Decimal(str(value or 0)).quantize(CENT, rounding=ROUND_HALF_UP)


def _card_discount_so_far(programme: BrandProgramme, card_id: int) -> Decimal:
    total = BrandDiscount.objects.filter(programme=programme, card_id=card_id).aggregate(total=Sum("discount"))
    return _money(total["total"])


# --- the quote --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrandQuote:
    """The discount a programme gives one basket, with its split over the eligible lines."""

    programme: BrandProgramme
    sku_list: BrandSkuList
    eligible: Decimal
    discount: Decimal
    brand_amount: Decimal
    lines: list[dict]


def _split(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """`total` shared in proportion to `weights` in whole cents adding up to it exactly (largest remainder).

    Each share is rounded down, then the cents left over go one each to the largest remainders (the first
    line first on a tie).
    """
    weight_sum = sum(weights, Decimal("0"))
    if not weights or weight_sum <= 0 or total == 0:
        return [ZERO for _ in weights]
    cents = int((total / CENT).to_integral_value())
    exact = [Decimal(cents) * weight / weight_sum for weight in weights]
    shares = [int(value.to_integral_value(rounding=ROUND_DOWN)) for value in exact]
    left = cents - sum(shares)
    by_remainder = sorted(range(len(weights)), key=lambda index: (-(exact[index] - shares[index]), index))
    for index in by_remainder[:left]:
        shares[index] += 1
    return [(Decimal(share) * CENT).quantize(CENT) for share in shares]


def brand_discount_quote(*, card, lines: list[dict], amount: Decimal, on_date: date) -> BrandQuote | None:
    """The brand discount the validated `lines` earn on `card` on `on_date`, or None (nothing to give).

    Raise BrandLinesAboveAmount when the brand's lines add up to more than `amount`.
    """
    if not lines or card.product.brand_id is None:
        return None  # the hot path of every other card: no query
    programme = programme_in_force(card.product_id, on_date)
    if programme is None:
        return None
    sku_list = sku_list_in_force(programme, on_date)
    if sku_list is None:
        return None
    listed = set(
        BrandSku.objects.filter(sku_list=sku_list, sku__in={line["sku"] for line in lines})
        .values_list("sku", flat=True)
    )
    eligible_lines = [line for line in lines if line["sku"] in listed]
    if not eligible_lines:
        return None
    amounts = [Decimal(line["amount"]) for line in eligible_lines]
    eligible = sum(amounts, ZERO)
    if eligible > amount:
        error = BrandLinesAboveAmount(eligible=f"{eligible:.2f}", amount=f"{amount:.2f}")
        error.fields = {"lines": [str(error)]}
        raise error
    discount = (eligible * programme.discount_rate).quantize(CENT, rounding=ROUND_UP)
    if programme.cap_per_receipt is not None:
        discount = min(discount, programme.cap_per_receipt)
    if programme.cap_per_card is not None:
        left = programme.cap_per_card - _card_discount_so_far(programme, card.pk)
        discount = min(discount, max(left, ZERO))
    if discount <= 0:
        return None
    brand_amount = (discount * programme.brand_share).quantize(CENT, rounding=ROUND_HALF_UP)
    discount_shares = _split(discount, amounts)
    brand_shares = _split(brand_amount, amounts)
    split = [
        {"sku": line["sku"], "amount": line["amount"], "quantity": line["quantity"],
         "discount": f"{line_discount:.2f}", "brand_amount": f"{line_brand:.2f}"}
        for line, line_discount, line_brand in zip(eligible_lines, discount_shares, brand_shares, strict=True)
    ]
    return BrandQuote(programme=programme, sku_list=sku_list, eligible=eligible.quantize(CENT),
                      discount=discount.quantize(CENT), brand_amount=brand_amount, lines=split)


# --- the statement rows -----------------------------------------------------------------------------------


def brand_discount_record(*, quote: BrandQuote, transaction: CardTransaction) -> BrandDiscount:
    """Write the payment's BrandDiscount (positive amounts), in the payment's transaction."""
    return BrandDiscount.objects.create(
        transaction=transaction, kind=CardTransaction.Kind.DEBIT, programme=quote.programme,
        brand_id=quote.programme.brand_id, card_id=transaction.card_id, store_id=transaction.store_id,
        business_date=transaction.business_date, eligible_amount=quote.eligible, discount=quote.discount,
        brand_amount=quote.brand_amount, lines=quote.lines, created_at=transaction.created_at,
    )


def _row(*, transaction: CardTransaction, source: BrandDiscount, eligible: Decimal, discount: Decimal,
         brand_amount: Decimal) -> BrandDiscount | None:
    if not (eligible or discount or brand_amount):
        return None
    return BrandDiscount.objects.create(
        transaction=transaction, kind=transaction.kind, programme_id=source.programme_id, brand_id=source.brand_id,
        card_id=transaction.card_id, store_id=transaction.store_id, business_date=transaction.business_date,
        eligible_amount=eligible, discount=discount, brand_amount=brand_amount, lines=[],
        created_at=transaction.created_at,
    )


def _share(value: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    if part >= whole:
        return value
    return (value * part / whole).quantize(CENT, rounding=ROUND_HALF_UP)


def _refund_give_back(refund: CardTransaction) -> BrandDiscount | None:
    """A refund's row: the payment's discount in proportion to what is now refunded, less what came back before.

    The payment's transaction row is locked by the refund, so earlier give-backs cannot change meanwhile.
    """
    payment = refund.original
    if payment.discount == 0:
        return None
    paid = BrandDiscount.objects.filter(transaction_id=payment.pk).first()
    if paid is None:
        return None
    charged, refunded = CardTransaction.objects.filter(pk=payment.pk).values_list("charged", "refunded").get()
    before = BrandDiscount.objects.filter(
        Q(transaction__original_id=payment.pk, kind=CardTransaction.Kind.REFUND)
        | Q(transaction__original__original_id=payment.pk, kind=CardTransaction.Kind.REVERSE)
    ).exclude(transaction_id=refund.pk).aggregate(
        eligible=Sum("eligible_amount"), discount=Sum("discount"), brand=Sum("brand_amount"),
    )
    # Rows given back so far are negative (a reversed refund's row puts its part back): their sum, negated,
    # is what the customer has already returned.
    return _row(
        transaction=refund, source=paid,
        eligible=-(_share(paid.eligible_amount, refunded, charged) + _money(before["eligible"])),
        discount=-(_share(paid.discount, refunded, charged) + _money(before["discount"])),
        brand_amount=-(_share(paid.brand_amount, refunded, charged) + _money(before["brand"])),
    )


def _reverse_give_back(reversal: CardTransaction) -> BrandDiscount | None:
    """A reversal undoes the row of what it reverses: all of a payment's, or a refund's give-back."""
    target = reversal.original
    if target.kind == CardTransaction.Kind.DEBIT and target.discount == 0:
        return None
    undone = BrandDiscount.objects.filter(transaction_id=target.pk).first()
    if undone is None:
        return None
    return _row(transaction=reversal, source=undone, eligible=-undone.eligible_amount, discount=-undone.discount,
                brand_amount=-undone.brand_amount)


def brand_discount_follow_up(*, transaction: CardTransaction) -> BrandDiscount | None:
    """Give back the brand discount's share of a refund or reversal just inserted; None when there is none."""
    if transaction.original_id is None:
        return None
    if transaction.kind == CardTransaction.Kind.REFUND:
        return _refund_give_back(transaction)
    if transaction.kind == CardTransaction.Kind.REVERSE:
        return _reverse_give_back(transaction)
    return None


# --- the hook ---------------------------------------------------------------------------------------------


class BrandCardDiscount:
    """The brand-card programmes' discount function of cards.discounts, with its follow-up on refunds."""

    brand_cards_only = True  # a card whose product has no brand gets nothing (brand_discount_quote)

    def __call__(self, *, card, store, lines: list[dict], amount: Decimal) -> discounts.Discount:
        quote = brand_discount_quote(card=card, lines=lines, amount=amount, on_date=timezone.localdate())
        if quote is None:
            return discounts.Discount(ZERO)
        return discounts.Discount(
            quote.discount, record=lambda transaction: brand_discount_record(quote=quote, transaction=transaction)
        )

    def follow_up(self, *, transaction: CardTransaction) -> None:
        brand_discount_follow_up(transaction=transaction)


discounts.register(DISCOUNT_NAME, BrandCardDiscount())
