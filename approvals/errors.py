from django.utils.translation import gettext_lazy as _

from core.errors import DomainError, Forbidden


class SelfApprovalForbidden(Forbidden):
    default_message = _("You cannot decide on your own request; another person must approve it.")


class ApproverNotPermitted(Forbidden):
    default_message = _("You do not hold the permission this approval level requires.")


class ApprovalNotPending(DomainError):
    code = "validation_error"
    status = 409
    default_message = _("This request is already %(status)s.")


class ApprovalAlreadyPending(DomainError):
    code = "validation_error"
    status = 409
    default_message = _("A request for this is already waiting for approval (#%(request_id)s).")


class DecisionCommentRequired(DomainError):
    code = "validation_error"
    status = 400
    default_message = _("Give a reason when rejecting a request.")


class ReasonRequired(DomainError):
    code = "validation_error"
    status = 400
    default_message = _("Give a reason for the request.")
