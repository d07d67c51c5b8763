"""Every way a coupon or a promotion operation can refuse (CONTRACT section 3, "Coupons and vouchers")."""

from django.utils.translation import gettext_lazy as _

from core.errors import DomainError, LimitExceeded, NotFound, ValidationFailed


class CouponNotApplicable(DomainError):
    """A coupon that cannot be used on this receipt; `reason` is the machine-readable why."""

    code = "coupon_not_applicable"
    status = 422

    REASONS = {
        "already_redeemed": _("This coupon was already used."),
        "expired": _("This coupon has expired."),
        "not_started": _("This coupon cannot be used yet."),
        "wrong_store": _("This coupon cannot be used at this store."),
        "below_threshold": _("The basket does not reach the amount this coupon needs."),
        "not_owner": _("This coupon belongs to another member."),
        "no_eligible_items": _("No item on this receipt counts towards this coupon."),
        "budget_exhausted": _("This coupon's campaign budget is used up."),
        "voided": _("This coupon was voided."),
        "not_active": _("This coupon's campaign is not running."),
    }

    def __init__(self, reason: str, message=None, **params):
        self.reason = reason
        self.extra = {"reason": reason}
        super().__init__(message if message is not None else self.REASONS[reason], **params)


class CouponNotFound(NotFound):
    default_message = _("No coupon has this code.")


class CouponInvalid(ValidationFailed):
    default_message = _("Some fields are not valid.")


class CouponLimitReached(LimitExceeded):
    default_message = _("The member already holds as many coupons of this template as allowed.")


class CouponQuantityExhausted(LimitExceeded):
    default_message = _("The template's total quantity is reached: %(left)s coupons left to issue.")


class AlreadyClaimed(DomainError):
    code = "already_claimed"
    status = 409
    default_message = _("This member already claimed a coupon with this code.")


class CouponTemplateNotActive(DomainError):
    code = "validation_error"
    status = 400
    default_message = _("Coupons can only be issued from an active template (this one is %(status)s).")


class CouponNotVoidable(DomainError):
    code = "validation_error"
    status = 400
    default_message = _("Only an open coupon can be voided (this one is %(status)s).")


class ClaimCodeNotFound(NotFound):
    default_message = _("No running coupon has this claim code.")


class SegmentInvalid(ValidationFailed):
    """A segment's rules that cannot be counted or used: `fields` names what is wrong."""

    default_message = _("The segment's rules are not valid.")


class CampaignInvalid(ValidationFailed):
    """A targeted campaign that cannot be saved, submitted or started as it is."""

    default_message = _("The campaign cannot be carried out as it is.")


class CallNotAllowed(DomainError):
    """A call outcome recorded by someone who may not work that store's call list."""

    code = "forbidden"
    status = 403
    default_message = _("This call is on another store's list.")
