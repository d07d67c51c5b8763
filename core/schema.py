"""What the API frame adds to every operation of the OpenAPI schema (drf-spectacular postprocessing hook).

The frame answers before or around every view: a path or query the frame refuses is 400 validation_error
(core.middleware), a missing or unknown key 401 unauthenticated, a terminal over its rate 429 rate_limited,
a database that cannot be reached 503 unavailable with Retry-After, and every POST needs its Idempotency-Key
(core.api.PosPostView). Stated here once, so no view can forget them and the schema never promises less.
"""

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter

from core.api import IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_PATTERN

API_PREFIX = "/api/"
ENVELOPE = "ErrorEnvelope"
_ENVELOPE_REF = {"$ref": f"#/components/schemas/{ENVELOPE}"}
_ERROR_COMPONENTS = {
    "Error": {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {}},
        },
        "required": ["code", "message"],
    },
    ENVELOPE: {
        "type": "object",
        "properties": {"error": {"$ref": "#/components/schemas/Error"}},
        "required": ["error"],
    },
}
_METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")


def idempotency_key_schema() -> dict:
    return {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN, "minLength": 1, "maxLength": 64}


# A POS write's views name the header too, only so that it stands among the operation's parameters where
# drf-spectacular puts them; api_frame_responses replaces it with the full statement.
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    name=IDEMPOTENCY_HEADER, location=OpenApiParameter.HEADER, required=True, type=idempotency_key_schema(),
)


def _retry_after(*, required: bool) -> dict:
    return {"Retry-After": {
        "required": required,
        "description": _("Seconds to wait before retrying."),
        "schema": {"type": "integer", "minimum": 0},
    }}


def _frame_responses() -> dict[str, dict]:
    """The answers every operation can give, whatever its view does (CONTRACT section 3)."""
    return {
        "400": {"description": _(
            "validation_error: a field, a query parameter or a header is not valid (`fields` names each), the body "
            "is not strict JSON (UTF-8, no NaN, no NUL character, no lone surrogate, at most 32 levels deep), or "
            "the path holds characters other than printable ASCII."
        )},
        "401": {"description": _("unauthenticated: no `Authorization: Bearer <terminal key>`, or an unknown or "
                                 "disabled key.")},
        "429": {"description": _("rate_limited: too many calls from this terminal; retry after Retry-After "
                                 "seconds."), "headers": _retry_after(required=False)},
        "503": {"description": _("unavailable: the database cannot be reached for a moment; retry after Retry-After "
                                 "seconds with the same Idempotency-Key."), "headers": _retry_after(required=True)},
    }


def _idempotency_parameter() -> dict:
    return {
        "in": "header", "name": IDEMPOTENCY_HEADER, "required": True, "schema": idempotency_key_schema(),
        "description": _("1-64 printable ASCII characters, new for every operation. The same key with the same body "
                         "returns the first answer again and moves nothing; with a different body it is 409 "
                         "idempotency_conflict."),
    }


def api_frame_responses(result, generator, request, public):
    """Add the frame's answers (400, 401, 429, 503) and, on POSTs, the Idempotency-Key header everywhere."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, component in _ERROR_COMPONENTS.items():
        schemas.setdefault(name, component)
    for path, operations in result.get("paths", {}).items():
        if not path.startswith(API_PREFIX):
            continue
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, frame in _frame_responses().items():
                answer = responses.setdefault(status, {"description": frame["description"]})
                answer.setdefault("content", {"application/json": {"schema": _ENVELOPE_REF}})
                if "headers" in frame:
                    answer.setdefault("headers", {}).update(frame["headers"])
                if not answer.get("description"):
                    answer["description"] = frame["description"]
            if method == "post":
                parameters = [parameter for parameter in operation.get("parameters", [])
                              if not (parameter.get("in") == "header" and parameter.get("name") == IDEMPOTENCY_HEADER)]
                operation["parameters"] = [_idempotency_parameter(), *parameters]
    return result
