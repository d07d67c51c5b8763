from django.utils.translation import gettext_lazy as _

from core.errors import DomainError, LimitExceeded, NotFound, ValidationFailed


class MemberInvalid(ValidationFailed):
    """Registration or contact data that fails validation; `fields` names each field."""

    default_message = _("Some member details are not valid.")


class MemberNotFound(NotFound):
    default_message = _("No such member.")


class MemberAlreadyRegistered(DomainError):
    code = "validation_error"
    status = 409
    default_message = _("A member with this ID number is already registered: %(member_no)s.")


class MemberNotActive(DomainError):
    code = "validation_error"
    status = 409
    default_message = _("Member %(member_no)s is %(status)s.")


class MergeNotPossible(DomainError):
    code = "validation_error"
    status = 409
    default_message = _("These two members cannot be merged: %(reason)s")


class InsufficientPoints(DomainError):
    code = "insufficient_points"
    status = 422
    default_message = _("The member has %(points)s points, fewer than needed.")


class PurchaseLimitExceeded(LimitExceeded):
    """A receipt above its format's sanity bounds (largest amount, most points), or a balance at its ceiling."""

    default_message = _("The purchase is beyond a limit: %(limit)s")


class PointsBalanceLimit(LimitExceeded):
    default_message = _("The member's points balance would pass %(limit)s points; ask headquarters to check the "
                        "account.")


class PurchaseInvalid(ValidationFailed):
    """A purchase, a return or a points redemption whose details fail validation; `fields` names each field."""

    default_message = _("Some details of the purchase are not valid.")


class ReceiptAlreadyRecorded(DomainError):
    """The same receipt of the same store is never counted twice (CONTRACT section 3)."""

    code = "validation_error"
    status = 409
    default_message = _("Receipt %(receipt_no)s of this store is already recorded (%(record)s %(record_id)s).")


class PurchaseNotFound(NotFound):
    default_message = _("No purchase with receipt %(receipt_no)s at this store.")


class ReturnExceedsPurchase(ValidationFailed):
    status = 422
    default_message = _("Only %(left)s yuan of this purchase is left to return.")


class CashOutLimitExceeded(DomainError):
    """A points-to-cash request breaks a rule of the points policy; the message names the rule."""

    code = "limit_exceeded"
    status = 422
    default_message = _("This exceeds a points-to-cash limit.")


class PaidTierNotForSale(DomainError):
    code = "validation_error"
    status = 400
    default_message = _("%(tier)s is not a paid tier on sale.")


class PaidTierConflict(DomainError):
    code = "validation_error"
    status = 409
    default_message = _(
        "Member %(member_no)s already has %(tier)s until %(until)s: renew it, or buy another paid tier after it ends."
    )


class PointsAdjustmentInvalid(ValidationFailed):
    """A manual points adjustment request that fails validation; `fields` names each field."""

    default_message = _("This points adjustment is not valid.")


class GiftInvalid(ValidationFailed):
    """A gift stock movement or redemption with a wrong quantity or reason; `fields` names each field."""

    default_message = _("Some gift details are not valid.")


class GiftNotAvailable(DomainError):
    code = "validation_error"
    status = 409
    default_message = _("The gift %(gift)s is no longer given out.")


class GiftOutOfStock(DomainError):
    """Not enough of a gift at a store; its own code so the desk can say so plainly."""

    code = "out_of_stock"
    status = 409
    default_message = _("%(gift)s is out of stock at %(store)s (%(available)s left).")
