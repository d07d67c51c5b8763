"""Every way a settlement, reconciliation or finance export operation can refuse."""

from django.utils.translation import gettext_lazy as _

from core.errors import DomainError, NotFound, ValidationFailed


class SettlementInvalid(ValidationFailed):
    default_message = _("Some fields are not valid.")


class PeriodLocked(DomainError):
    """Something that belongs to a locked settlement period would change."""

    code = "period_locked"
    status = 409
    default_message = _("Settlement period %(period)s is locked; a correction goes into the next open period.")


class PeriodNotReady(DomainError):
    """A period cannot be closed yet (days not cleared, reconciliation exceptions still open)."""

    code = "period_not_ready"
    status = 409
    default_message = _("Settlement period %(period)s cannot be closed yet: %(why)s")


class NoOpenPeriod(DomainError):
    code = "no_open_period"
    status = 409
    default_message = _("There is no open settlement period on or after %(day)s.")


class ReconFileInvalid(ValidationFailed):
    """A POS daily file that cannot be imported; the message names the lines."""

    code = "file_invalid"
    default_message = _("The POS file cannot be imported.")


class ReconFileDuplicate(DomainError):
    code = "duplicate_file"
    status = 409
    default_message = _("This file was already uploaded on %(uploaded_at)s (file #%(file_id)s); nothing was imported "
                        "again.")


class ExceptionNotOpen(DomainError):
    code = "exception_not_open"
    status = 409
    default_message = _("This reconciliation exception is already %(status)s.")


class ExportLayoutInvalid(ValidationFailed):
    default_message = _("The export layout is not valid.")


class ClearingRunNotFound(NotFound):
    default_message = _("No clearing run for this day.")
