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


class BenefitNotFound(NotFound):
    default_message = _("No such benefit: %(code)s.")


class BenefitUseInvalid(ValidationFailed):
    """A benefit use with a wrong quantity, receipt number or note; `fields` names each field."""

    default_message = _("Some details of the benefit use are not valid.")


class NotEntitled(DomainError):
    """The member's tiers (earned, and paid while its term runs) give no quota of this benefit, or it is off."""

    code = "not_entitled"
    status = 422
    default_message = _("Member %(member_no)s is not entitled to %(benefit)s.")


class BenefitExhausted(DomainError):
    code = "benefit_exhausted"
    status = 422
    default_message = _("%(benefit)s: only %(remaining)s of the quota of %(quota)s left in this period.")


class AlreadyClaimed(DomainError):
    """A receipt whose points already went to a member: claimed before, or shown at the till. The message never
    names the member."""

    code = "already_claimed"
    status = 409
    default_message = _("The points of receipt %(receipt_no)s were already claimed.")
    at_till_message = _("Receipt %(receipt_no)s was recorded for a member at the till: its points went to that "
                        "member.")


class ClaimWindowPassed(LimitExceeded):
    default_message = _("Receipt %(receipt_no)s is from %(day)s: a receipt can be claimed within %(days)s days of "
                        "the sale.")


class NothingToClaim(DomainError):
    code = "validation_error"
    status = 422
    default_message = _("Receipt %(receipt_no)s was returned in full: it has no points to claim.")
