"""Numbers from the outside world (POS bodies, files, forms), read one way."""

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# How a POS writes money and quantities as text (CONTRACT section 3), checked with fullmatch: ASCII digits,
# at most two decimals for yuan, at most three for a quantity (weighed goods); no sign, exponent or spaces.
MONEY_TEXT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
QUANTITY_TEXT = re.compile(r"[0-9]{1,9}(\.[0-9]{1,3})?")
# The most a quantity so written can be, and the most lines a receipt may have (the API's fields and the
# services that take lines refuse more).
QUANTITY_MAX = Decimal("999999999.999")
LINES_MAX = 1000
# A yuan amount to the fen, and how Excel shows it (a number, two decimals, thousands separated).
CENT = Decimal("0.01")
MONEY_XLSX_FORMAT = "#,##0.00"


def money_text_read(value) -> Decimal | None:
    """Money as a POS sends it (a string matching MONEY_TEXT) as Decimal, or None: never a JSON number."""
    if not isinstance(value, str) or not MONEY_TEXT.fullmatch(value):
        return None
    return Decimal(value)


def quantity_text_read(value) -> Decimal | None:
    """A line's quantity as a POS sends it (a JSON integer, or a string matching QUANTITY_TEXT) as Decimal, or None.

    Only the spelling is read here; whether the quantity is more than 0 is the caller's rule.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and QUANTITY_TEXT.fullmatch(value):
        return Decimal(value)
    return None


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


def money_round(value) -> Decimal | None:
    """An amount to the fen (0.01, half up) as Decimal, or None for none or what is not a number.

    Sums come back from SQLite with long tails (2000.00000000000000): this is where they are cut for people.
    """
    if value is None or value == "":
        return None
    number = decimal_parse(value)
    if number is None:
        return None
    return number.quantize(CENT, rounding=ROUND_HALF_UP)


def money_total(value) -> Decimal:
    """A sum read from the database as money: to the fen (as money_round), 0.00 when there was nothing to sum."""
    return money_round(value) if value is not None else Decimal("0.00")


def money_display(value, *, signed: bool = False) -> str:
    """An amount as people read it, on every screen, receipt and slip: two decimals, thousands separated
    (68,551.50); "" for none. Text that is not a number is shown as it is. Never for the API, whose amounts are
    plain strings ("12.50", CONTRACT section 3). `signed`: a + before an amount above 0 (a ledger's movement)."""
    number = money_round(value)
    if number is None:
        return "" if value is None else str(value)
    return f"{number + 0:{'+' if signed and number else ''},.2f}"  # + 0: no "-0.00"


def points_display(value) -> str:
    """Points as people read them: a whole number, thousands separated (12,345); "" for none."""
    if value is None or value == "":
        return ""
    number = decimal_parse(value)
    if number is None:
        return str(value)
    return f"{int(number):,}"
