"""The one base class for domain errors; each app's errors.py subclasses it.

`code` is the stable code of CONTRACT section 3, `status` the HTTP status the
API answers with; the admin and the desk show the same `message`.
"""

from django.utils.translation import gettext_lazy as _


class DomainError(Exception):
    code = "validation_error"
    status = 400
    default_message = _("The request could not be carried out.")
    # Keys the API adds to the error object beside code and message (a coupon refusal's "reason").
    extra: dict | None = None

    def __init__(self, message=None, *, fields: dict | None = None, **params):
        self.message = message if message is not None else self.default_message
        self.fields = fields
        self.params = params
        super().__init__(str(self.message))

    def __str__(self) -> str:
        text = str(self.message)
        return text % self.params if self.params else text


class ValidationFailed(DomainError):
    code = "validation_error"
    status = 400
    default_message = _("Some fields are not valid.")


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_message = _("Not found.")


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
    default_message = _("You may not do this.")


class LimitExceeded(DomainError):
    code = "limit_exceeded"
    status = 422
    default_message = _("A limit was exceeded.")


class TableInvalid(ValidationFailed):
    """A file that cannot be read as a table (core.tabular): wrong format, encoding or headers."""

    default_message = _("The file cannot be read.")
