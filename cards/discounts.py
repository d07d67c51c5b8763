"""The discount hook of a card payment: programmes (brand cards) register a function here.

A debit asks every registered function what the basket's `lines` earn on this card at this store; the
card is charged the basket's amount less their sum. The brand-card programmes register theirs when their
app loads; with nothing registered every discount is 0.00 and a payment costs nothing extra.

A discount function is called as `discount(card=, store=, lines=, amount=)` inside the payment's
transaction (the card row is locked) and returns either a Decimal of 0 or more with at most two decimals,
or a `Discount`: the amount and a `record(transaction)` callable that writes what the programme keeps
about it (the brand's statement row), called once the payment's CardTransaction is inserted, in the same
transaction. `lines` are the validated lines of the request (`sku`, `amount` and `quantity` as strings),
possibly empty. A function may refuse the basket by raising a domain error (before anything is written).

A programme that must give its share back when money goes back to the card registers a callable object
with a `follow_up(*, transaction)` method too: payments call `follow_up` once a refund or a reversal is
inserted (its `original` is the payment or refund it undoes), in the same transaction, after the
payment's `refunded` is brought up to date.

Payments know nothing of any programme: they use `discount_for(...).amount`, call `.record(payment)`
after inserting the payment and `follow_up(refund_or_reversal)` after inserting a refund or reversal.
"""

from collections.abc import Callable
from decimal import Decimal

__all__ = [
    "Discount",
    "DiscountFunction",
    "discount_for",
    "follow_up",
    "none_without_brand",
    "register",
    "registered",
    "unregister",
]

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


class Discount:
    """A discount on one basket: its `amount`, and what to write once the payment is inserted."""

    __slots__ = ("amount", "_recorders")

    def __init__(self, amount: Decimal = ZERO, record: Callable | None = None):
        self.amount = amount
        self._recorders: tuple[Callable, ...] = (record,) if record is not None else ()

    def __repr__(self) -> str:
        return f"Discount({self.amount!r})"

    def record(self, transaction) -> None:
        """Write what the programmes keep about the payment `transaction` (a CardTransaction just inserted)."""
        for recorder in self._recorders:
            recorder(transaction)

    @classmethod
    def _combined(cls, amount: Decimal, recorders: list[Callable]) -> "Discount":
        combined = cls(amount)
        combined._recorders = tuple(recorders)
        return combined


DiscountFunction = Callable[..., "Decimal | Discount"]

_registry: dict[str, DiscountFunction] = {}


def register(name: str, discount: DiscountFunction) -> None:
    """Add (or replace) the discount function known as `name`, e.g. "brand_cards"."""
    if not callable(discount):
        raise TypeError(f"discount {name!r} is not callable")
    follow = getattr(discount, "follow_up", None)
    if follow is not None and not callable(follow):
        raise TypeError(f"discount {name!r} has a follow_up that is not callable")
    _registry[name] = discount


def unregister(name: str) -> None:
    _registry.pop(name, None)


def registered() -> dict[str, DiscountFunction]:
    return dict(_registry)


def _valid(value) -> bool:
    return isinstance(value, Decimal) and value.is_finite() and value >= 0 and value == value.quantize(CENT)


def discount_for(*, card, store, lines: list[dict], amount: Decimal) -> Discount:
    """The discount the registered functions give on a basket of `amount` (never more than `amount`).

    A function answering anything but a Decimal (or a Discount's amount) of 0 or more in whole cents is a
    programming error of its programme, raised as such: a till must never be charged a guessed amount.
    """
    if not _registry:
        return Discount(ZERO)
    total = ZERO
    recorders: list[Callable] = []
    for name, discount in _registry.items():
        answer = discount(card=card, store=store, lines=lines, amount=amount)
        value = answer.amount if isinstance(answer, Discount) else answer
        if not _valid(value):
            raise ValueError(f"discount {name!r} answered {value!r}; it must be a Decimal >= 0 in whole cents")
        total += value
        if isinstance(answer, Discount):
            recorders.extend(answer._recorders)
    return Discount._combined(min(total, amount).quantize(CENT), recorders)


def none_without_brand() -> bool:
    """Whether no registered programme discounts (or records anything about) a card whose product has no brand.

    A programme says so by a true `brand_cards_only` attribute on its function. Then a debit of such a card
    needs neither the programmes nor the lines: payments take their one-statement path.
    """
    return all(getattr(discount, "brand_cards_only", False) for discount in _registry.values())


def follow_up(transaction) -> None:
    """Tell every programme that a refund or reversal `transaction` was inserted, so it gives back its share."""
    for discount in _registry.values():
        follow = getattr(discount, "follow_up", None)
        if follow is not None:
            follow(transaction=transaction)
