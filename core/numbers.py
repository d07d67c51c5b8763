"""Numbers from the outside world (POS bodies, files, forms), read one way."""

from decimal import Decimal, InvalidOperation


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
