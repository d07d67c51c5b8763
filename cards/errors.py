"""The card domain's errors; `code` is the stable code of CONTRACT section 3."""

from django.utils.translation import gettext_lazy as _

from core.errors import DomainError, Forbidden, LimitExceeded, NotFound, ValidationFailed


class CardInvalid(ValidationFailed):
    """Details of a card operation that fail validation; `fields` names each field."""

    default_message = _("Some details of the card operation are not valid.")


class CardNotFound(NotFound):
    default_message = _("No card with number %(card_no)s.")


class CardTransactionNotFound(NotFound):
    default_message = _("No card transaction %(transaction_id)s at this store.")


class CardInactive(DomainError):
    """The card cannot be used in its status (inactive, frozen, closed)."""

    code = "card_inactive"
    status = 409
    default_message = _("Card %(card_no)s is %(status)s and cannot be used.")


class CardExpired(DomainError):
    code = "card_expired"
    status = 409
    default_message = _("Card %(card_no)s expired on %(expires_at)s; it can be reactivated or exchanged at a desk.")


class InsufficientBalance(DomainError):
    code = "insufficient_balance"
    status = 422
    default_message = _("Card %(card_no)s holds %(balance)s, less than %(amount)s.")


class CardLimitExceeded(LimitExceeded):
    """An operation would break a prepaid-card rule or limit; the message names the rule."""

    default_message = _("This exceeds a card limit.")


class _PinCounted:
    """A PIN refusal whose count (and the card's freeze at the limit) was written, under the card's lock, in the
    transaction that checked the PIN; the service raises it before any write of its own (card_debit).

    `keep_writes`: the API commits that transaction with the answer (core.api.PosPostView), so no other request
    checks a PIN against the old count. A caller that rolls it back calls `after_rollback()` instead.
    """

    keep_writes = True

    def __init__(self, message=None, *, card_id: int, **params):
        super().__init__(message, **params)
        self.card_id = card_id

    def after_rollback(self) -> None:
        """Count the wrong PIN (freezing the card at the limit) again, for a caller that rolled back the
        transaction that checked it: only then."""
        from cards.services.ledger import card_pin_failure_record

        card_pin_failure_record(card_id=self.card_id)


class InvalidPin(_PinCounted, DomainError):
    """A wrong PIN, counted; the message says how many attempts are left, or that the card is now frozen."""

    code = "invalid_pin"
    status = 403
    default_message = _("Wrong PIN; %(left)s attempts left before the card is frozen.")


class PinLocked(_PinCounted, CardInactive):
    """A card whose wrong PINs had reached the limit: refused without its PIN being compared, and frozen
    (reason: PIN) in the same transaction if it was still active (a limit lowered since, a card brought over)."""


class AlreadyReversed(DomainError):
    code = "already_reversed"
    status = 409
    default_message = _("Transaction %(transaction_id)s is already reversed.")


class CardStatusChangeRefused(DomainError):
    code = "validation_error"
    status = 409
    default_message = _("Card %(card_no)s cannot go from %(status_from)s to %(status_to)s.")


class CardRuleBroken(DomainError):
    """A sale, top-up or service operation breaks a prepaid-card rule (DESIGN section 7); the message names it."""

    code = "validation_error"
    status = 422
    default_message = _("This breaks a prepaid-card rule.")


class CardOperationRefused(DomainError):
    code = "validation_error"
    status = 409
    default_message = _("This cannot be done: %(reason)s")


# --- POS payments (cards.services.payments, cards.services.brand_discounts) -----------------------------


class CardPaymentNotFound(CardTransactionNotFound):
    """The payment a refund names is not a payment of this card (or does not exist: the same answer)."""

    default_message = _("No payment %(transaction_id)s of card %(card_no)s.")


class RefundExceedsPayment(CardLimitExceeded):
    default_message = _(
        "Payment %(transaction_id)s charged %(charged)s to the card and %(refunded)s of it is already refunded: "
        "at most %(left)s can still be refunded."
    )


class BrandLinesAboveAmount(CardInvalid):
    """The lines of the brand's SKUs add up to more than the basket: the POS sent an inconsistent receipt."""

    default_message = _(
        "The brand's lines add up to %(eligible)s, more than the amount %(amount)s of the basket."
    )


# --- service operations at the desk (cards.services.operations) ----------------------------------------


class HolderMismatch(Forbidden):
    """The name and ID shown at the desk are not those of the card's holder."""

    default_message = _("The name and ID number do not match the holder of card %(card_no)s.")


# --- sales (cards.rules, cards.services.sales) -----------------------------------------------------------


class SaleOrderInvalid(CardInvalid):
    """Details of a sale order that fail validation; `fields` names each field."""

    default_message = _("Some details of the card order are not valid.")


class SaleForbidden(Forbidden):
    default_message = _("You may not sell cards for this store.")


# --- production and stock (cards.services.production) ----------------------------------------------------


class BatchInvalid(ValidationFailed):
    default_message = _("Some details of the production batch are not valid.")


class TransferInvalid(ValidationFailed):
    default_message = _("Some details of the card transfer are not valid.")


class StockForbidden(Forbidden):
    default_message = _("You may not do this with card stock.")


class PrinterFileAlreadyHandedOut(DomainError):
    code = "validation_error"
    status = 409
    default_message = _(
        "The printer file of batch %(batch_no)s was already handed out on %(at)s to %(user)s; it can be "
        "downloaded only once."
    )


# --- pickup vouchers (cards.services.vouchers) -----------------------------------------------------------


class VoucherInvalid(ValidationFailed):
    default_message = _("Some details of the voucher operation are not valid.")


class VoucherBatchInvalid(ValidationFailed):
    default_message = _("Some details of the voucher batch are not valid.")


class VoucherNotFound(NotFound):
    default_message = _("No pickup voucher with code %(code)s.")


class VoucherInactive(CardInactive):
    default_message = _("Voucher %(code)s is %(status)s and cannot be redeemed.")


class VoucherExpired(CardExpired):
    default_message = _("Voucher %(code)s expired on %(expires_on)s.")


class VoucherInsufficient(InsufficientBalance):
    default_message = _("Voucher %(code)s has %(remaining)s %(unit)s left, less than the %(quantity)s asked for.")


class VoucherOverfilled(CardLimitExceeded):
    default_message = _("Voucher %(code)s is good for %(units)s units; it cannot hold more.")


class VoucherBatchRefused(DomainError):
    code = "validation_error"
    status = 409
    default_message = _("Voucher batch %(batch_no)s is %(status)s; %(reason)s")


class VoucherBatchForbidden(Forbidden):
    default_message = _("You may not do this with voucher batches.")


# --- brand card programmes (cards.services.brands) -------------------------------------------------------


class ProgrammeInvalid(ValidationFailed):
    default_message = _("Some details of the brand card programme are not valid.")


class SkuListInvalid(ValidationFailed):
    """An SKU file refused whole; `fields["file"]` lists the rows and what is wrong with each."""

    default_message = _("The SKU list was not imported; nothing was saved.")


class ProgrammeForbidden(Forbidden):
    default_message = _("Brand card programmes are managed at headquarters by staff allowed to change them.")
