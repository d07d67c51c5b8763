"""The API frame: one error envelope for every error, and idempotent POSTs.

Every error leaves as
``{"error": {"code": ..., "message": ..., "fields": {...}}}`` (CONTRACT section 3).
The fields that read POS bodies and write answers are in core/fields.py.
"""

import re
import threading
from functools import cached_property

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, renderers, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core import services
from core.errors import DomainError

IDEMPOTENCY_HEADER = "Idempotency-Key"
# The schema's patterns (JSON Schema: ECMA 262, unanchored unless ^...$) and the checks use the same text.
IDEMPOTENCY_KEY_PATTERN = r"^[\x20-\x7e]{1,64}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
# Whitespace as Python sees it (str.strip(), re's \s): what DRF's trimmed fields and the services drop around a
# value. ECMA's \s, which a schema pattern would mean, is another set (\x1c-\x1f and \x85 are only Python's).
SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The part of it a query value may hold (core.middleware refuses control characters there).
QUERY_SPACE = r" \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A value with one character that is not whitespace: a trimmed field refuses any other as blank.
NOT_BLANK_PATTERN = rf"[^{SPACE}]"


def error_body(code: str, message: str, fields: dict | None = None, extra: dict | None = None) -> dict:
    """The CONTRACT envelope; `extra` adds keys an error code documents (a coupon refusal's "reason")."""
    error = {"code": code, "message": message}
    if extra:
        error.update(extra)
    if fields:
        error["fields"] = fields
    return {"error": error}


def _flatten_fields(detail) -> dict:
    """Turn DRF's nested error detail into {"field": ["message", ...]}."""
    if isinstance(detail, dict):
        return {key: _messages(value) for key, value in detail.items()}
    return {"non_field_errors": _messages(detail)}


def _messages(value):
    if isinstance(value, dict):
        return {key: _messages(item) for key, item in value.items()}
    if isinstance(value, list):
        if all(isinstance(item, (str, exceptions.ErrorDetail)) for item in value):
            return [str(item) for item in value]
        return [_messages(item) for item in value]
    return [str(value)]


_DRF_CODES = [
    (exceptions.NotAuthenticated, "unauthenticated", status.HTTP_401_UNAUTHORIZED),
    (exceptions.AuthenticationFailed, "unauthenticated", status.HTTP_401_UNAUTHORIZED),
    (exceptions.PermissionDenied, "forbidden", status.HTTP_403_FORBIDDEN),
    (exceptions.NotFound, "not_found", status.HTTP_404_NOT_FOUND),
    (exceptions.MethodNotAllowed, "not_found", status.HTTP_405_METHOD_NOT_ALLOWED),
    (exceptions.Throttled, "rate_limited", status.HTTP_429_TOO_MANY_REQUESTS),
    (exceptions.ValidationError, "validation_error", status.HTTP_400_BAD_REQUEST),
    (exceptions.ParseError, "validation_error", status.HTTP_400_BAD_REQUEST),
    (exceptions.UnsupportedMediaType, "validation_error", status.HTTP_415_UNSUPPORTED_MEDIA_TYPE),
    (exceptions.NotAcceptable, "validation_error", status.HTTP_406_NOT_ACCEPTABLE),
]


def exception_handler(exc, context):
    """Render every error the API raises in the CONTRACT envelope."""
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, str(exc), exc.fields, exc.extra), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    code, http_status = next(
        ((code, http_status) for kind, code, http_status in _DRF_CODES if isinstance(exc, kind)),
        ("validation_error", exc.status_code),
    )
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, exceptions.ValidationError):
        body = error_body(code, _("Some fields are not valid."), _flatten_fields(exc.detail))
    else:
        body = error_body(code, str(exc.detail))
    return Response(body, status=http_status, headers=headers)


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Any path under /api/v1/ that names no operation."""
    return JsonResponse(
        error_body("not_found", _("No such API operation: %(path)s") % {"path": request.path}),
        status=404,
    )


class IdempotencyConflict(DomainError):
    code = "idempotency_conflict"
    status = 409


class PosPostView(APIView):
    """A POS write: the subclass implements `create`; `post` makes it idempotent.

    The first answer to a key is stored in the same transaction as the write it
    describes, so a replay never moves anything and a crash leaves no half state.
    A write that succeeded claims its key and stores its answer in one statement,
    at its end (idempotency_record_store): the busy path pays one round trip for
    its key, not two. A request whose key was answered before (a till's retry),
    or by a concurrent request with the same key, finds the key taken there: it
    rolls back everything it did and sends the stored answer. The key is the last
    lock a write takes and nothing waits on it but another insert of the same key,
    so no lock order of a service changes and no deadlock is possible.
    An error answer is stored too, after the request's own writes were rolled
    back, so a replay gets the same status and body. (The success path needs no
    savepoint: an error rolls back everything, and the error's answer is claimed
    and stored afresh.) An error with an `after_rollback`
    method has it called in that second transaction: what must stay although the request failed (an unknown
    card number counted as a guess) is written once, not again on a replay. An error whose `keep_writes` is
    true is not rolled back: it was raised after the only writes the request made besides its key, and they
    must stay (a wrong PIN counted, and the card frozen at the limit, under the card's lock: counted after a
    rollback, other requests would check PINs against the old count meanwhile). Its answer is stored in the
    request's own transaction, which commits (unless its key was answered before); its `after_rollback` is
    not called.
    """

    def create(self, request, *args, **kwargs) -> Response:
        raise NotImplementedError

    def post(self, request, *args, **kwargs):
        key = self._idempotency_key(request)
        fingerprint = services.request_fingerprint(method=request.method, path=request.path, data=request.data)
        terminal_id = request.auth.pk
        error = None
        try:
            with transaction.atomic():
                try:
                    response = self.create(request, *args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - the handler decides what becomes an answer
                    error = exc
                    response = self.handle_exception(exc)
                if response.status_code < 400 or getattr(error, "keep_writes", False):
                    content = renderers.JSONRenderer().render(response.data)
                    if services.idempotency_record_store(
                        terminal_id=terminal_id, key=key, fingerprint=fingerprint, status=response.status_code,
                        body=content.decode("utf-8"),
                    ):
                        return self._sent(content, response)
                    # The key was answered before: nothing this request did stays, that answer is sent.
                    transaction.set_rollback(True)
                    return self._replay(services.idempotency_record_find(terminal_id=terminal_id, key=key),
                                        fingerprint)
                transaction.set_rollback(True)
        except IdempotencyConflict:
            raise  # the replay above found the key used for another request: that is the answer
        except Exception:
            # A write that cannot be done twice may fail in an unforeseen way when it is done again: a retry
            # of a key answered before still gets that answer.
            record = services.idempotency_record_find(terminal_id=terminal_id, key=key)
            if record is None:
                raise
            return self._replay(record, fingerprint)
        with transaction.atomic():
            record, created = services.idempotency_record_claim(
                terminal=request.auth, key=key, fingerprint=fingerprint
            )
            if not created:  # answered before, or by a concurrent request with the key meanwhile
                return self._replay(record, fingerprint)
            # What an error must leave behind although the request failed (a wrong PIN is counted), once.
            after_rollback = getattr(error, "after_rollback", None)
            if after_rollback is not None:
                after_rollback()
            return self._answer(record, response)

    @classmethod
    def _answer(cls, record, response: Response) -> HttpResponse:
        """Render the answer once, store exactly those bytes for the key and send them."""
        content = renderers.JSONRenderer().render(response.data)
        services.idempotency_record_answer(record, status=response.status_code, body=content.decode("utf-8"))
        return cls._sent(content, response)

    @staticmethod
    def _sent(content: bytes, response: Response) -> HttpResponse:
        answer = HttpResponse(content, status=response.status_code, content_type="application/json")
        for header, value in response.items():
            if header.lower() != "content-type":
                answer[header] = value
        return answer

    @staticmethod
    def _replay(record, fingerprint: str) -> HttpResponse:
        if record.fingerprint != fingerprint:
            raise IdempotencyConflict(_("This Idempotency-Key was already used with a different request."))
        response = HttpResponse(record.response_body, status=record.response_status, content_type="application/json")
        response["Idempotent-Replayed"] = "true"
        return response

    @staticmethod
    def _idempotency_key(request) -> str:
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if not key:
            raise exceptions.ValidationError(
                {IDEMPOTENCY_HEADER: [_("This header is required on every POST.")]}
            )
        if not _IDEMPOTENCY_KEY.fullmatch(key):
            raise exceptions.ValidationError(
                {IDEMPOTENCY_HEADER: [_("Use 1 to 64 printable ASCII characters.")]}
            )
        return key


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    reason = serializers.CharField(
        required=False, help_text="coupon_not_applicable only: why the coupon does not apply.",
    )
    fields = serializers.DictField(required=False)


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorSerializer()


# The errors a POS write may answer with, for the schema (core.schema adds the frame's 400, 401, 429 and 503).
WRITE_ERRORS = {
    400: ErrorEnvelopeSerializer, 401: ErrorEnvelopeSerializer, 404: ErrorEnvelopeSerializer,
    409: ErrorEnvelopeSerializer, 422: ErrorEnvelopeSerializer,
}


class InputSerializer(serializers.Serializer):
    """A POS body's serializer whose fields are built once per thread, not copied for every request.

    DRF deep-copies a serializer's declared fields into each new instance, which on a till's write costs more
    than reading the body. The fields of an input serializer keep nothing of a request (the values read and the
    errors are the serializer's own), so each thread keeps one set per class and every new instance binds it
    to itself. Only for flat bodies read by `validated`: a serializer nested in itself would share its fields.
    """

    _kept = threading.local()

    @cached_property
    def fields(self):
        kept = self._kept.__dict__
        fields = kept.get(type(self))
        if fields is None:
            fields = serializers.BindingDict(self)
            for name, field in self.get_fields().items():
                fields[name] = field
            kept[type(self)] = fields
        else:
            fields.serializer = self
            for field in fields.values():
                field.parent = self
        return fields


def validated(serializer_class, request) -> dict:
    """The request's body read by its input serializer (core.fields): typed values, or 400 validation_error."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
