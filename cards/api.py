"""POS API for prepaid cards: enquiry, debit, refund and reverse (CONTRACT section 3 "Cards"); and the redemption
of pickup vouchers ("Coupons and vouchers"), whose codes count toward the same guessing limit.

Card numbers are guessable in a way transaction ids are not (a number range is printed on every card of a
batch), so a terminal that asks for many unknown numbers in a short time is answered 429 rate_limited on
every card-number call until its window has passed: also for known cards, so the answers give nothing away.
The limit is settings.CARD_GUESS_LIMIT unknown numbers per CARD_GUESS_WINDOW seconds, counted per terminal by
core.limits, so every web process shares one count (in Redis when CACHE_URL names it, else in the database).
An unknown number in a POS write is counted after the write's transaction was rolled back, once per
Idempotency-Key (a replay is not a new guess).
"""

import time

from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from cards.errors import CardNotFound, VoucherNotFound
from cards.services import payments, vouchers
from cards.services.ledger import CARD_NO_PATTERN
from core.api import (
    NOT_BLANK_PATTERN,
    WRITE_ERRORS,
    ErrorEnvelopeSerializer,
    InputSerializer,
    PosPostView,
    validated,
)
from core.fields import (
    LocalTimeField,
    MoneyField,
    PositiveMoneyField,
    QuantityField,
    ReceiptField,
    SkuField,
    WholeNumberField,
)
from core.limits import counter_get, counter_hit, shared_cache
from core.schema import IDEMPOTENCY_PARAMETER
from stores.api_auth import TerminalRateThrottle
from stores.models import Terminal

CARD_GUESS_LIMIT = 20
CARD_GUESS_WINDOW = 300

CARD_NO_PARAMETER = OpenApiParameter(
    name="card_no", location=OpenApiParameter.PATH, type={"type": "string", "pattern": CARD_NO_PATTERN.pattern},
    description=_("The card number (6-32 digits)."),
)
CARD_ERRORS = {**WRITE_ERRORS, 403: ErrorEnvelopeSerializer, 429: ErrorEnvelopeSerializer}


# --- card-number guessing -----------------------------------------------------------------------------------


def _guess_settings() -> tuple[int, int]:
    limit = getattr(settings, "CARD_GUESS_LIMIT", CARD_GUESS_LIMIT)
    window = getattr(settings, "CARD_GUESS_WINDOW", CARD_GUESS_WINDOW)
    return max(int(limit), 1), max(int(window), 1)


def _guess_key(terminal_id: int, window: int, now: float) -> str:
    return f"cards:unknown-numbers:{terminal_id}:{int(now // window)}"


def card_guess_record(terminal: Terminal) -> int:
    """Count one unknown card number asked for by this terminal in the current window; return the count."""
    _limit, window = _guess_settings()
    return counter_hit(_guess_key(terminal.pk, window, time.time()), seconds=window * 2)


def _guess_counted(request, error: Exception) -> None:
    """Count an unknown number: now for a read, after the rollback for a POS write (PosPostView's hook).

    A read that finds itself past the limit once counted answers 429 too, so requests racing past the
    throttle's check together still give away no more than the limit.
    """
    if request.method != "POST":
        if card_guess_record(request.auth) > _guess_settings()[0]:
            _throttled()
        return
    earlier = getattr(error, "after_rollback", None)

    def after_rollback():
        if earlier is not None:
            earlier()
        card_guess_record(request.auth)

    error.after_rollback = after_rollback


class CardCallThrottle(TerminalRateThrottle):
    """The terminal's rate limit, and 429 on every card-number call of a terminal that asked for too many unknown
    numbers in this window.

    With a shared cache the unknown numbers' count is read in the rate limit's own round trip; without one it is
    read from the database (core.limits). A terminal past both limits is told about the unknown numbers.
    """

    def counts_read(self, request) -> tuple[str, ...]:
        if not shared_cache():
            return ()
        _limit, window = _guess_settings()
        return (_guess_key(request.auth.pk, window, time.time()),)

    def allow_request(self, request, view) -> bool:
        allowed = super().allow_request(request, view)
        if not isinstance(request.auth, Terminal):
            return allowed
        limit, window = _guess_settings()
        key = _guess_key(request.auth.pk, window, time.time())
        guesses = self.read_back[key] if key in self.read_back else counter_get(key)
        if guesses >= limit:
            _throttled()
        return allowed


def _throttled():
    _limit, window = _guess_settings()
    wait = max(int(window - time.time() % window), 1)
    raise exceptions.Throttled(wait=wait, detail=gettext(
        "Too many unknown card numbers from this terminal; card calls are refused for %(seconds)s seconds."
    ) % {"seconds": wait})


def _counting_unknown(request, call, **kwargs):
    try:
        return call(**kwargs)
    except CardNotFound as error:
        _guess_counted(request, error)
        raise


# --- enquiry ------------------------------------------------------------------------------------------------


class ShownStatusField(serializers.ChoiceField):
    """A card's status as a till sees it (payments.card_status_shown), not as stored."""

    def get_attribute(self, card):
        return payments.card_status_shown(card)


# A card (with its product and brand) as a balance enquiry answers it. (A docstring would be the schema's text.)
class CardOutputSerializer(serializers.Serializer):
    card_no = serializers.CharField()
    product = serializers.CharField(
        source="product.code", help_text=_("The card product's code, e.g. STORED or BEARER.")
    )
    status = ShownStatusField(
        choices=["active", "inactive", "frozen", "expired", "closed"],
        help_text=_("An active card past its expiry date is shown as expired: it can no longer pay."),
    )
    balance = MoneyField()
    expires_at = LocalTimeField(allow_null=True, help_text=_("Empty for cards that never expire."))
    brand = serializers.CharField(
        source="product.brand.code", allow_null=True, help_text=_("The co-branding brand's code, if any.")
    )


class CardView(APIView):
    """GET /api/v1/cards/{card_no}."""

    throttle_classes = [CardCallThrottle]

    @extend_schema(
        operation_id="cards_retrieve",
        parameters=[CARD_NO_PARAMETER],
        responses={200: CardOutputSerializer, 400: ErrorEnvelopeSerializer, 401: ErrorEnvelopeSerializer,
                   404: ErrorEnvelopeSerializer, 429: ErrorEnvelopeSerializer},
        description=(
            "A card's product, status, balance and expiry, for a balance enquiry at the till. Unknown number: "
            "404 not_found. A terminal asking for many unknown numbers in a short time gets 429 rate_limited "
            "on every card call until its window has passed (Retry-After says how long)."
        ),
    )
    def get(self, request, card_no: str):
        card = _counting_unknown(request, payments.card_enquiry, card_no=card_no)
        return Response(CardOutputSerializer(card).data)


# --- debit and refund ---------------------------------------------------------------------------------------


class CardLineSerializer(serializers.Serializer):
    sku = SkuField()
    amount = MoneyField(help_text=_("What the line costs, 0 or more."))
    quantity = QuantityField(help_text=_(
        "Greater than 0: whole units as a JSON integer, or a string with at most three decimals (weighed goods)."
    ))


@extend_schema_field(CardLineSerializer(many=True))
class CardLinesField(serializers.Field):
    """The basket's lines, each checked (sku, amount, quantity) with a message naming the line."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # The schema's maxItems; a longer list is refused first, by card_debit_lines_clean, naming the limit.
        self.validators.append(MaxLengthValidator(payments.LINES_MAX))

    def to_internal_value(self, data) -> list[dict]:
        lines, problems = payments.card_debit_lines_clean(data)
        if problems:
            raise serializers.ValidationError(problems)
        return lines

    def to_representation(self, value):
        return value


class DebitInputSerializer(InputSerializer):
    amount = PositiveMoneyField(
        help_text=_("What the basket costs, greater than 0; the card is charged amount - discount.")
    )
    receipt_no = ReceiptField()
    pin = serializers.CharField(
        required=False, allow_blank=True, max_length=32, trim_whitespace=True,
        help_text=_("The card's six-digit PIN, when it has one."),
    )
    lines = CardLinesField(
        required=False, default=list,
        help_text=_("The basket's lines (optional); brand-card discounts are computed from them."),
    )


@extend_schema_field({"type": "string", "maxLength": 32, "pattern": NOT_BLANK_PATTERN})
class TransactionIdField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=32, **kwargs)


class RefundInputSerializer(InputSerializer):
    amount = PositiveMoneyField(help_text=_("What goes back onto the card, greater than 0."))
    receipt_no = ReceiptField(help_text=_("The return's own receipt number."))
    original_transaction_id = TransactionIdField(help_text=_("The transaction_id of the card payment being refunded."))


# A debit or refund (a CardTransaction) as the till gets it.
class PaymentOutputSerializer(serializers.Serializer):
    transaction_id = serializers.CharField(help_text=_("Quote it to refund or reverse this transaction."))
    card_no = serializers.CharField(source="card.card_no")
    amount = MoneyField(help_text=_("Debit: what the basket cost; refund: what went back onto the card."))
    discount = MoneyField(help_text=_("Brand-card discount; the card was charged amount - discount."))
    balance = MoneyField(source="balance_after", help_text=_("The card's balance afterwards."))
    created_at = LocalTimeField()


def payment_answer(record) -> dict:
    """PaymentOutputSerializer's answer, written out: the same keys, in order, and the same text, at a fraction of
    the serializer's cost on every payment (tests/cards/test_debit_hotpath.py holds the two equal)."""
    return {
        "transaction_id": record.transaction_id,
        "card_no": record.card.card_no,
        "amount": f"{record.amount:.2f}",
        "discount": f"{record.discount:.2f}",
        "balance": f"{record.balance_after:.2f}",
        "created_at": timezone.localtime(record.created_at).isoformat(),
    }


@extend_schema_view(post=extend_schema(
    operation_id="cards_debit",
    request=DebitInputSerializer,
    responses={201: PaymentOutputSerializer, **CARD_ERRORS},
    parameters=[CARD_NO_PARAMETER, IDEMPOTENCY_PARAMETER],
    description=(
        "Pay with a card, all or nothing: a charge larger than the balance is 422 insufficient_balance and moves "
        "nothing. A card with a PIN needs it; a wrong PIN is 403 invalid_pin and the fifth wrong one in a row "
        "freezes the card. A card not active is 409 card_inactive, past its expiry 409 card_expired, an unknown "
        "number 404 not_found."
    ),
))
class CardDebitView(PosPostView):
    """POST /api/v1/cards/{card_no}/debit."""

    throttle_classes = [CardCallThrottle]

    def create(self, request, card_no: str):
        data = validated(DebitInputSerializer, request)
        record = _counting_unknown(
            request, payments.card_debit, card_no=card_no, amount=data["amount"], receipt_no=data["receipt_no"],
            store=request.auth.store, terminal=request.auth, pin=data.get("pin"), lines=data["lines"],
        )
        return Response(payment_answer(record), status=201)


@extend_schema_view(post=extend_schema(
    operation_id="cards_refund",
    request=RefundInputSerializer,
    responses={201: PaymentOutputSerializer, **CARD_ERRORS},
    parameters=[CARD_NO_PARAMETER, IDEMPOTENCY_PARAMETER],
    description=(
        "Put (part of) a payment of this card back onto it, at any store of the group. The refunds of one payment "
        "never add up to more than it charged: above what is left is 422 limit_exceeded naming it; a refund that "
        "would take the card above its maximum balance is 422 limit_exceeded too. A payment that was reversed is "
        "409 already_reversed; a transaction that is not a payment of this card is 404 not_found."
    ),
))
class CardRefundView(PosPostView):
    """POST /api/v1/cards/{card_no}/refund."""

    throttle_classes = [CardCallThrottle]

    def create(self, request, card_no: str):
        data = validated(RefundInputSerializer, request)
        record = _counting_unknown(
            request, payments.card_refund, card_no=card_no, amount=data["amount"], receipt_no=data["receipt_no"],
            original_transaction_id=data["original_transaction_id"], store=request.auth.store,
            terminal=request.auth,
        )
        return Response(payment_answer(record), status=201)


# --- reverse ------------------------------------------------------------------------------------------------


# A reversal (a CardTransaction of kind reverse) as the till gets it.
class ReverseOutputSerializer(serializers.Serializer):
    transaction_id = serializers.CharField(help_text=_("The reversal's own id."))
    reversed_transaction_id = serializers.CharField(source="original.transaction_id")
    balance = MoneyField(source="balance_after", help_text=_("The card's balance afterwards."))


@extend_schema_view(post=extend_schema(
    operation_id="transactions_reverse",
    request=None,
    responses={201: ReverseOutputSerializer, **CARD_ERRORS},
    parameters=[
        OpenApiParameter(name="transaction_id", location=OpenApiParameter.PATH,
                         type={"type": "string", "pattern": r"^[\x21-\x7e]{1,32}$"},
                         description=_("A card payment or refund of this store (its transaction_id).")),
        IDEMPOTENCY_PARAMETER,
    ],
    description=(
        "Void a card payment (without refunds) or a refund, at the store that made it, on the same business day "
        "(Asia/Shanghai); later, refund instead (409 validation_error says so). A second reverse is 409 "
        "already_reversed. Another store's transaction is 404 not_found."
    ),
))
class TransactionReverseView(PosPostView):
    """POST /api/v1/transactions/{transaction_id}/reverse."""

    def create(self, request, transaction_id: str):
        record = payments.card_transaction_reverse(
            transaction_id=transaction_id, store=request.auth.store, terminal=request.auth,
        )
        return Response(self.answer(record), status=201)

    @staticmethod
    def answer(record) -> dict:
        """ReverseOutputSerializer's answer, written out as payment_answer is (tests/cards/test_refund_hotpath.py
        holds the two equal)."""
        return {
            "transaction_id": record.transaction_id,
            "reversed_transaction_id": record.original.transaction_id,
            "balance": f"{record.balance_after:.2f}",
        }


# --- pickup vouchers ----------------------------------------------------------------------------------------


class VoucherQuantityField(WholeNumberField):
    """Whole units as a JSON integer of at least 1: 1.5, "2", true and 0 are refused."""

    default_error_messages = {"invalid": _("Give the quantity as a whole number of units, at least 1.")}


class VoucherRedeemInputSerializer(serializers.Serializer):
    receipt_no = ReceiptField()
    quantity = VoucherQuantityField(
        maximum=vouchers.MAX_REDEEM_QUANTITY, help_text=_("How many units of the voucher's goods are handed out now.")
    )


class VoucherRedeemOutputSerializer(serializers.Serializer):
    voucher_code = serializers.CharField()
    sku = serializers.CharField(help_text=_("The SKU of the goods the voucher is for."))
    quantity_redeemed = serializers.IntegerField(help_text=_("Units handed out by this call."))
    remaining = serializers.IntegerField(help_text=_("Units the voucher is still good for."))


@extend_schema_view(post=extend_schema(
    operation_id="vouchers_redeem",
    request=VoucherRedeemInputSerializer,
    responses={201: VoucherRedeemOutputSerializer, **CARD_ERRORS},
    parameters=[
        OpenApiParameter(name="code", location=OpenApiParameter.PATH,
                         type={"type": "string", "pattern": r"^[\x21-\x7e]{1,32}$"},
                         description=_("The code printed on the pickup voucher (1-32 printable ASCII characters).")),
        IDEMPOTENCY_PARAMETER,
    ],
    description=(
        "Hand out goods against a pickup voucher, at any store of the group, all at once or in parts. A quantity "
        "above what remains is 422 insufficient_balance (the message says what remains) and moves nothing. A "
        "voucher not sold or void is 409 card_inactive, past its validity 409 card_expired, an unknown code 404 "
        "not_found; unknown codes count toward the same limit as unknown card numbers (429 rate_limited)."
    ),
))
class VoucherRedeemView(PosPostView):
    """POST /api/v1/vouchers/{code}/redeem."""

    throttle_classes = [CardCallThrottle]

    def create(self, request, code: str):
        data = validated(VoucherRedeemInputSerializer, request)
        try:
            voucher, entry = vouchers.voucher_redeem(code=code, quantity=data["quantity"],
                                                     receipt_no=data["receipt_no"], store=request.auth.store,
                                                     terminal=request.auth)
        except VoucherNotFound as error:
            _guess_counted(request, error)
            raise
        # VoucherRedeemOutputSerializer's answer, built without it (the schema still names the serializer,
        # tests/core/test_redeem_hotpath.py holds the two equal).
        return Response({
            "voucher_code": str(voucher.code), "sku": str(voucher.product.sku),
            "quantity_redeemed": int(-entry.quantity), "remaining": int(entry.remaining_after),
        }, status=201)
