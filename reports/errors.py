"""Every way a report operation can refuse."""

from django.utils.translation import gettext_lazy as _

from core.errors import DomainError


class RunNotRetryable(DomainError):
    code = "not_retryable"
    status = 409
    default_message = _("Only a failed run can be retried; this one is %(status)s.")


class RunNotDownloadable(DomainError):
    code = "not_downloadable"
    status = 409
    default_message = _("This run has no file to download: it failed, is still running, or its file was removed "
                        "by the retention policy.")
