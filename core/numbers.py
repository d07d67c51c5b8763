"""Numbers from the outside world (POS bodies, files, forms), read one way."""

import re
from decimal import Decimal, InvalidOperation

# How a POS writes money and quantities as text (CONTRACT section 3), checked with fullmatch: ASCII digits,
# at most two decimals for yuan, at most three for a quantity (weighed goods); no sign, exponent or spaces.
MONEY_TEXT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
QUANTITY_TEXT = re.compile(r"[0-9]{1,9}(\.[0-9]{1,3})?")


def decimal_parse(value) -> Decimal | None:
    """The finite Decimal a value spells, or None.

    Text must use ASCII digits: Python reads full-width and Arabic-Indic digits as numbers too, and a till or
    a file that sends them is refused rather than guessed at. True and False are not numbers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii():
            return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None
