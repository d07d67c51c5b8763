"""The API frame's outer edge: what every request under /api/ gets before and after its view.

- A path or query parameter holding bytes no POS sends (control characters, NUL, anything outside printable
  ASCII) is refused with 400 validation_error before it reaches a view or the database.
- A database that cannot be reached (restarting, failing over, out of connections) is 503 unavailable with
  Retry-After, in the error envelope: the POS retries with the same Idempotency-Key. Such an answer is never
  stored for the key (the view's transaction did not commit), so the retry is carried out afresh.
- Every answer carries Cache-Control: no-store: balances, points and coupons must never come from a cache.
"""

import logging

from django.db import DataError, InterfaceError, OperationalError
from django.http import JsonResponse
from django.utils.translation import gettext as _

from core.api import error_body

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
RETRY_AFTER_SECONDS = 5


def _printable(text: str) -> bool:
    return all("\x21" <= character <= "\x7e" for character in text)


def _query_value_ok(text: str) -> bool:
    return all(character >= "\x20" and character != "\x7f" for character in text)


def _request_problem(request) -> dict | None:
    if not _printable(request.path_info):
        return {"path": [_("The path may hold only printable ASCII characters (digits 0-9, letters, punctuation).")]}
    bad = sorted({name for name, values in request.GET.lists()
                  if not _query_value_ok(name) or not all(_query_value_ok(value) for value in values)})
    if bad:
        return {name[:64]: [_("This parameter holds control characters.")] for name in bad}
    return None


class ApiFrameMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        problem = _request_problem(request)
        if problem is not None:
            response = JsonResponse(error_body("validation_error", _("Some fields are not valid."), problem),
                                    status=400)
        else:
            response = self.get_response(request)
        response["Cache-Control"] = "no-store"
        return response

    def process_exception(self, request, exception):
        if not request.path_info.startswith(API_PREFIX):
            return None
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.warning("API request %s %s: database unavailable: %s", request.method, request.path, exception)
            response = JsonResponse(
                error_body("unavailable", _("The service is briefly unavailable; retry with the same "
                                            "Idempotency-Key.")),
                status=503,
            )
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        if isinstance(exception, DataError):
            # A value the database refused (out of range, not storable) that validation let through: a
            # refusal, logged so the missing check is added, never a 500.
            logger.error("API request %s %s: value refused by the database", request.method, request.path,
                         exc_info=exception)
            return JsonResponse(
                error_body("validation_error", _("A value is out of the range this service accepts.")), status=400
            )
        return None
