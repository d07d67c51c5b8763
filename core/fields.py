"""The fields of POS bodies and answers that every app's API shares (CONTRACT section 3).

An input field reads its JSON value once, into the type the services take: money into Decimal, a whole number
into int, a time into an aware datetime, a receipt's lines into a list whose amounts and quantities are Decimal.
The services check what only they can (a rule of the business, a limit, what the database holds) on those typed
values, and read text only when the admin or a test hands it to them. An output field writes a value as the
CONTRACT spells it (money as "12.50", times with their offset). Each field states its own schema, so the OpenAPI
document and the server read a value the same way.
"""

import re

from django.core.validators import MaxLengthValidator
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api import NOT_BLANK_PATTERN
from core.numbers import LINES_MAX, MONEY_TEXT, QUANTITY_MAX, QUANTITY_TEXT, money_text_read, quantity_text_read

# The schema's patterns (ECMA 262, anchored) of the texts core.numbers reads.
MONEY_PATTERN = f"^{MONEY_TEXT.pattern}$"
# The same, with a digit other than 0 somewhere: more than zero.
POSITIVE_MONEY_PATTERN = f"^(?=[0-9.]*[1-9]){MONEY_TEXT.pattern}$"
# A line's quantity as a string: at most nine digits and three decimals (the schema's: and more than 0).
POSITIVE_QUANTITY_PATTERN = f"^(?=[0-9.]*[1-9]){QUANTITY_TEXT.pattern}$"
# Printable ASCII with one character other than a space (\Z: "$" would let a final newline through).
_RECEIPT = re.compile(r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*\Z")


# --- money and whole numbers --------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "pattern": MONEY_PATTERN, "example": "12.50"})
class MoneyField(serializers.Field):
    """Money as a string with at most two decimals ("12.50"): never a JSON number, which a till may round."""

    default_error_messages = {
        "invalid": _('Give the amount as a string in yuan with at most two decimals, e.g. "12.50".'),
    }

    def to_internal_value(self, data):
        amount = money_text_read(data)
        if amount is None:
            self.fail("invalid")
        return amount

    def to_representation(self, value) -> str:
        return f"{value:.2f}"


@extend_schema_field({"type": "string", "pattern": POSITIVE_MONEY_PATTERN, "example": "12.50"})
class PositiveMoneyField(MoneyField):
    """Money greater than 0; the service refuses 0 and names the field."""


class WholeNumberField(serializers.Field):
    """A whole number from 1 to `maximum` as a JSON integer: 1.5, "10", true and 0 are refused.

    A subclass says what the number counts in its "invalid" message (PointsField, cards' VoucherQuantityField).
    """

    def __init__(self, *, maximum: int, **kwargs):
        self.maximum = maximum
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> int:
        if type(data) is not int or not 1 <= data <= self.maximum:
            self.fail("invalid")
        return data

    def to_representation(self, value) -> int:
        return value


class WholeNumberFieldSchema(OpenApiSerializerFieldExtension):
    """The schema of a WholeNumberField: its own maximum."""

    target_class = WholeNumberField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "integer", "minimum": 1, "maximum": self.target.maximum}


class PointsField(WholeNumberField):
    """A whole number of points greater than 0, as a JSON integer: 1.5, "10", true and 0 are refused."""

    default_error_messages = {"invalid": _("Give the points as a whole number greater than 0, e.g. 500.")}


# --- receipts, times ----------------------------------------------------------------------------------------


class ReceiptField(serializers.RegexField):
    """Taken as sent, not trimmed: a tab or an ideographic space around the number is refused, not dropped."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _("The till's receipt number, 1-64 printable ASCII characters, not only "
                                         "spaces (spaces around it are dropped)."))
        super().__init__(_RECEIPT, max_length=64, trim_whitespace=False,
                         error_messages={"invalid": _("Use 1 to 64 printable ASCII characters.")}, **kwargs)


class OffsetDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time with its UTC offset ("2026-12-06T10:30:00+08:00"): a time without one is refused,
    since the zone of the till's clock cannot be guessed."""

    default_error_messages = {
        "offset": _('Give the time in ISO 8601 with its UTC offset, e.g. "2026-12-06T10:30:00+08:00".'),
    }

    def to_internal_value(self, value):
        try:
            parsed = parse_datetime(value.strip()) if isinstance(value, str) and value.isascii() else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            self.fail("offset")
        return super().to_internal_value(value)


class LocalTimeField(serializers.DateTimeField):
    """A time in an answer: ISO 8601 in the server's zone, with its offset ("2026-12-06T10:30:00.123456+08:00")."""

    def to_representation(self, value) -> str:
        return timezone.localtime(value).isoformat()


# --- a receipt's lines --------------------------------------------------------------------------------------


@extend_schema_field({"type": "string", "maxLength": 64, "pattern": NOT_BLANK_PATTERN})
class SkuField(serializers.CharField):
    """A line's SKU (documentation of a line; the lines are checked by their own field)."""


@extend_schema_field({"oneOf": [
    {"type": "integer", "minimum": 1, "maximum": int(QUANTITY_MAX)},
    {"type": "string", "pattern": POSITIVE_QUANTITY_PATTERN, "example": "1.5"},
]})
class QuantityField(serializers.Field):
    """A line's quantity (documentation of a line; the lines are checked by their own field)."""


class PurchaseLineSerializer(serializers.Serializer):
    sku = SkuField()
    category = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default="",
        help_text=_("The format's category code; the format's earn rule may exclude some (tobacco, gold ...)."),
    )
    amount = MoneyField(help_text=_("What the line costs, 0 or more."))
    quantity = QuantityField(help_text=_(
        "Greater than 0: whole units as a JSON integer, or a string with at most three decimals (weighed goods)."
    ))


@extend_schema_field(PurchaseLineSerializer(many=True))
class LinesField(serializers.Field):
    """A receipt's lines (sku, category, amount, quantity), as purchases and coupons take them.

    Read here once: the shape, and each line's amount and quantity from their text into Decimal (money as
    strings, not 12 or "1e1"). What a line's values must be (an SKU, a quantity above 0 ...) the service checks
    on those Decimals and names the line; it does not read the text again.
    """

    default_error_messages = {
        "invalid": _("Give the lines as a list of objects with sku, category, amount and quantity."),
        "too_many": _("A receipt has at most {max} lines."),
        "amount": _('Line {n}: give the amount as a string in yuan with at most two decimals, e.g. "12.50".'),
        "quantity": _('Line {n}: give the quantity as a whole number or as a string with at most three decimals, '
                      'e.g. "1.5".'),
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # The schema's maxItems; a longer list is refused first, by to_internal_value, naming the limit.
        self.validators.append(MaxLengthValidator(LINES_MAX))

    def to_internal_value(self, data) -> list[dict]:
        if not isinstance(data, list) or not all(isinstance(line, dict) for line in data):
            self.fail("invalid")
        if len(data) > LINES_MAX:
            self.fail("too_many", max=LINES_MAX)
        lines = []
        for number, line in enumerate(data, start=1):
            amount = money_text_read(line.get("amount"))
            if amount is None:
                self.fail("amount", n=number)
            quantity = quantity_text_read(line.get("quantity"))
            if quantity is None:
                self.fail("quantity", n=number)
            lines.append({**line, "amount": amount, "quantity": quantity})
        return lines
