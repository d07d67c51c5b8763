"""How the API reads a request body (kept apart from the views: DRF's settings import it)."""

import json

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework import exceptions, parsers

# No POS body nests deeper than a few levels; a limit keeps every recursive consumer (serializers, the
# fingerprint, the database's JSON) far from the interpreter's recursion limit.
JSON_MAX_DEPTH = 32


def _json_problem(value) -> str | None:
    """What makes a parsed body unusable, or None: nesting too deep, or a string no database can store."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > JSON_MAX_DEPTH:
            return _("The JSON is nested more than %(depth)s levels deep.") % {"depth": JSON_MAX_DEPTH}
        if isinstance(item, dict):
            pending.extend((key, depth + 1) for key in item)
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if "\x00" in item:
                return _("A string holds a NUL character (\\u0000).")
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return _("A string holds an unpaired UTF-16 surrogate (for example \\ud800).")
    return None


class PosJSONParser(parsers.JSONParser):
    """JSON bodies, strictly: UTF-8, bounded in size and depth, no NaN, no lone surrogates, no NUL.

    Every API view parses with it (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES), so hostile bytes become one
    400 validation_error here instead of an error wherever the body is used next (the idempotency
    fingerprint, a serializer, the database).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if limit is not None and len(raw) > limit:
            raise exceptions.ParseError(_("The body is larger than %(bytes)s bytes.") % {"bytes": limit})
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise exceptions.ParseError(_("The body is not valid UTF-8.")) from None
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise exceptions.ParseError(
                _("The JSON is nested more than %(depth)s levels deep.") % {"depth": JSON_MAX_DEPTH}
            ) from None
        except ValueError as error:
            raise exceptions.ParseError(_("The body is not valid JSON: %(error)s") % {"error": error}) from None
        problem = _json_problem(data)
        if problem:
            raise exceptions.ParseError(problem)
        return data


def _refuse_constant(name: str):
    raise ValueError(_("%(name)s is not a JSON number") % {"name": name})
