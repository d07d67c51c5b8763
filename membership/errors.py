from django.utils.translation import gettext_lazy as _

from core.errors import DomainError, NotFound, ValidationFailed


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
