"""The discount hook of a card payment: programmes (brand cards) register a function here.

A debit asks every registered function what the basket's `lines` earn on this card at this store; the
card is charged the basket's amount less their sum. The brand-card programmes register theirs when their
app loads; with nothing registered every discount is 0.00 and a payment costs nothing extra.

A discount function is called as `discount(card=, store=, lines=, amount=)` inside the payment's
transaction (the card row is locked) and returns a Decimal of 0 or more with at most two decimals. `lines`
are the validated lines of the request (`sku`, `amount` and `quantity` as strings), possibly empty.
"""

from collections.abc import Callable
from decimal import Decimal

__all__ = ["DiscountFunction", "discount_for", "register", "registered", "unregister"]

DiscountFunction = Callable[..., Decimal]
ZERO = Decimal("0.00")
CENT = Decimal("0.01")

_registry: dict[str, DiscountFunction] = {}


def register(name: str, discount: DiscountFunction) -> None:
    """Add (or replace) the discount function known as `name`, e.g. "brand_cards"."""
    if not callable(discount):
        raise TypeError(f"discount {name!r} is not callable")
    _registry[name] = discount


def unregister(name: str) -> None:
    _registry.pop(name, None)


def registered() -> dict[str, DiscountFunction]:
    return dict(_registry)


def discount_for(*, card, store, lines: list[dict], amount: Decimal) -> Decimal:
    """The discount the registered functions give on a basket of `amount`, never more than `amount`.

    A function answering anything but a Decimal of 0 or more in whole cents is a programming error of its
    programme, raised as such: a till must never be charged a guessed amount.
    """
    if not _registry:
        return ZERO
    total = ZERO
    for name, discount in _registry.items():
        value = discount(card=card, store=store, lines=lines, amount=amount)
        if not isinstance(value, Decimal) or not value.is_finite() or value < 0 or value != value.quantize(CENT):
            raise ValueError(f"discount {name!r} answered {value!r}; it must be a Decimal >= 0 in whole cents")
        total += value
    return min(total, amount).quantize(CENT)
