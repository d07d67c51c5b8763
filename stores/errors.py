from django.utils.translation import gettext_lazy as _

from core.errors import DomainError, NotFound


class StoreNotFound(NotFound):
    default_message = _("There is no store with code %(code)s.")


class StoreAlreadyClosed(DomainError):
    code = "validation_error"
    status = 409
    default_message = _("Store %(code)s is already closed.")


class InvalidClosingDate(DomainError):
    code = "validation_error"
    status = 400
    default_message = _("The closing date cannot be before the opening date (%(opened_on)s).")


class TerminalNameTaken(DomainError):
    code = "validation_error"
    status = 409
    default_message = _("Store %(store)s already has a terminal named %(name)s.")
