"""The card ledger: every change of a card's balance or status goes through here (DESIGN section 3).

A balance moves only in `card_post`, by a conditional UPDATE in the same
transaction as its ledger row, so concurrent payments never take a card below
zero or above its limit. Status changes go through `card_status_change`, which
refuses what `Card.TRANSITIONS` does not allow and writes a card event.

Both write the webhook event of what they did (integrations.events) right after it, in the same transaction
and under the card's row lock, so a receiver gets a card's events in the order of its ledger; a write rolled
back sends nothing. When nobody subscribes to the type nothing is built or written.
"""

import hashlib
import hmac
import re
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from cards.errors import (
    CardExpired,
    CardInactive,
    CardInvalid,
    CardLimitExceeded,
    CardNotFound,
    CardStatusChangeRefused,
    InsufficientBalance,
    InvalidPin,
    PinLocked,
)
from cards.models import Card, CardEvent, CardLedgerEntry, CardProduct, CardRules
from core.ledgers import cause_fields
from core.numbers import decimal_parse
from core.sql import insert_returning_pk
from integrations.events import event_emit, subscriptions_for
from integrations.models import EventType

__all__ = [
    "CARD_NO_PATTERN",
    "card_cap",
    "card_entry_event_emit",
    "card_event",
    "card_for_use",
    "card_get",
    "card_no_clean",
    "card_pin_check",
    "card_pin_failure_record",
    "card_post",
    "card_status_change",
    "cause_fields",
    "money_clean",
    "pin_hash",
]

CENT = Decimal("0.01")
MONEY_MAX = Decimal("999999999999.99")
CARD_NO_PATTERN = re.compile(r"^[0-9]{6,32}$")
PIN_PATTERN = re.compile(r"^[0-9]{6}$")


def money_clean(value, *, field: str = "amount", allow_zero: bool = False) -> Decimal:
    """A positive amount of yuan with at most two decimals, as Decimal; raise CardInvalid naming the field."""
    amount = decimal_parse(value)
    if amount is None:
        raise CardInvalid(fields={field: [gettext("Write an amount such as 12.50.")]})
    if amount != amount.quantize(CENT):
        raise CardInvalid(fields={field: [gettext("An amount has at most two decimals.")]})
    if amount < 0 or (amount == 0 and not allow_zero):
        raise CardInvalid(fields={field: [gettext("The amount must be more than zero.")]})
    if amount > MONEY_MAX:
        raise CardInvalid(fields={field: [gettext("The amount is too large.")]})
    return amount.quantize(CENT)


def card_no_clean(value, *, field: str = "card_no") -> str:
    card_no = str(value or "").strip()
    if not CARD_NO_PATTERN.match(card_no):
        raise CardInvalid(fields={field: [gettext("A card number is 6 to 32 digits.")]})
    return card_no


def card_get(card_no: str, *, lock: bool = False) -> Card:
    """The card with this number and its product; raise CardNotFound."""
    cards = Card.objects.select_related("product")
    if lock:
        cards = cards.select_for_update(of=("self",))
    card = cards.filter(card_no=card_no).first()
    if card is None:
        raise CardNotFound(card_no=card_no)
    return card


def card_cap(card: Card, rules: CardRules | None = None) -> Decimal:
    """The most this card may hold: its product's limit, never above the rules' limit for its kind."""
    rules = rules or CardRules.current()
    product: CardProduct = card.product
    rule_cap = rules.registered_max_balance if product.is_registered else rules.bearer_max_balance
    return min(product.max_balance, rule_cap)


def card_for_use(card: Card, *, now=None) -> None:
    """Refuse a card that cannot pay: not active (card_inactive) or past its expiry (card_expired)."""
    now = now or timezone.now()
    if card.status == Card.Status.EXPIRED or (
        card.status == Card.Status.ACTIVE and card.expires_at is not None and card.expires_at <= now
    ):
        expires_at = timezone.localtime(card.expires_at).date() if card.expires_at else ""
        raise CardExpired(card_no=card.card_no, expires_at=expires_at)
    if card.status != Card.Status.ACTIVE:
        raise CardInactive(card_no=card.card_no, status=card.get_status_display())


# --- PINs -------------------------------------------------------------------------------------------
# A PIN is six digits, kept as an HMAC keyed with a secret outside the database and salted with the card
# number: a copy of the database alone does not give the PINs away, and a check costs microseconds (a POS
# payment checks one; a production batch hashes a hundred thousand).


def _pin_key() -> bytes:
    secret = settings.CARD_PIN_KEY or settings.SECRET_KEY
    return hashlib.sha256(f"card-pin:{secret}".encode()).digest()


def pin_hash(card_no: str, pin: str) -> str:
    return hmac.new(_pin_key(), f"{card_no}:{pin}".encode(), hashlib.sha256).hexdigest()


def card_pin_check(card: Card, pin) -> None:
    """Check the PIN of a card that has one. Raise CardInvalid (missing or malformed), InvalidPin or PinLocked.

    Call it with the card read under its row lock, in the transaction of the request (card_debit does): the
    check and its count are then one step, and no other request checks a PIN against a count this one has not
    yet raised. A wrong PIN is counted here, by one UPDATE bounded by the rules' limit, and at the limit the
    card is frozen (reason: PIN) with its event, in that same transaction; the API commits it with the answer
    (`keep_writes`). A card whose count has reached the limit is refused without its PIN being compared, and a
    right PIN clears the count only while it is below the limit. A caller that rolls its transaction back
    calls the error's `after_rollback()` to count the wrong PIN again there.
    """
    if not card.pin_hash:
        return
    pin = str(pin or "").strip()
    if not pin:
        raise CardInvalid(fields={"pin": [gettext("This card needs its PIN.")]})
    if not PIN_PATTERN.match(pin):
        raise CardInvalid(fields={"pin": [gettext("A PIN is six digits.")]})
    limit = CardRules.current().pin_attempts
    if card.pin_failures >= limit:
        raise _pin_locked(card)
    if hmac.compare_digest(pin_hash(card.card_no, pin), card.pin_hash):
        # Bounded too: a count that reached the limit since the card was read (by a caller without its lock)
        # is never cleared by a right PIN.
        if card.pin_failures and not Card.objects.filter(pk=card.pk, pin_failures__lt=limit).update(pin_failures=0):
            raise _pin_locked(card)
        card.pin_failures = 0
        return
    counted = _pin_failure_add(card.pk, limit)
    if counted is None:  # the limit was reached since the card was read (a caller without its lock)
        raise _pin_locked(card)
    card.pin_failures, status = counted
    if card.pin_failures < limit:
        raise InvalidPin(card_id=card.pk, left=limit - card.pin_failures)
    if status == Card.Status.ACTIVE:
        _pin_freeze(card)
    raise InvalidPin(
        gettext("Wrong PIN; the card is now frozen. The holder can unfreeze it at a service desk."),
        card_id=card.pk,
    )


def _pin_failure_add(card_id: int, limit: int) -> tuple[int, str] | None:
    """One wrong PIN more, by one UPDATE that never takes the count past the limit (and locks the card's row).

    Return the count and the card's status after it, or None when the count had already reached the limit.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE cards_card SET pin_failures = pin_failures + 1 WHERE id = %s AND pin_failures < %s "
            "RETURNING pin_failures, status",
            [card_id, limit],
        )
        return cursor.fetchone()


def _pin_freeze(card: Card) -> None:
    card_status_change(card=card, status=Card.Status.FROZEN, event=CardEvent.Kind.PIN_LOCKED,
                       freeze_reason=Card.FreezeReason.PIN)


def _pin_locked(card: Card) -> PinLocked:
    """The refusal of a card whose count is at the limit, frozen now (with its event) if it was still active.

    The count reaches the limit in the transaction that freezes the card, so an active card here is one whose
    count was raised before the limit was lowered, or one brought over with its count.
    """
    status = Card.objects.filter(pk=card.pk).values_list("status", flat=True).get()
    if status == Card.Status.ACTIVE:
        _pin_freeze(card)
        status = Card.Status.FROZEN
    return PinLocked(card_id=card.pk, card_no=card.card_no, status=Card.Status(status).label)


@transaction.atomic
def card_pin_failure_record(*, card_id: int) -> Card:
    """Count one wrong PIN, never past the rules' limit; at the limit the card is frozen (reason: PIN) with an event.

    For a caller whose transaction, in which card_pin_check counted the PIN, was rolled back
    (InvalidPin.after_rollback).
    """
    limit = CardRules.current().pin_attempts
    _pin_failure_add(card_id, limit)
    card = Card.objects.select_related("product").get(pk=card_id)
    if card.pin_failures >= limit and card.status == Card.Status.ACTIVE:
        _pin_freeze(card)
    return card


# --- status ---------------------------------------------------------------------------------------


def card_event(*, card: Card, kind: str, store=None, actor=None, note: str = "", data: dict | None = None,
               status_from: str = "", status_to: str = "") -> CardEvent:
    event = CardEvent(card=card, kind=kind, store=store, actor=actor, note=note[:200], data=data or {},
                      status_from=status_from, status_to=status_to)
    insert_returning_pk(event)
    return event


@transaction.atomic
def card_status_change(*, card: Card, status: str, event: str = CardEvent.Kind.STATUS, store=None, actor=None,
                       note: str = "", freeze_reason: str | None = None, data: dict | None = None,
                       **fields) -> Card:
    """Move a card to another status, as Card.TRANSITIONS allows; write the event.

    Extra keyword arguments are card fields set in the same UPDATE (expires_at, replaced_by ...).
    Raise CardStatusChangeRefused.
    """
    current = Card.objects.filter(pk=card.pk).values_list("status", flat=True).get()
    if status not in Card.TRANSITIONS[current]:
        raise CardStatusChangeRefused(
            card_no=card.card_no, status_from=Card.Status(current).label, status_to=Card.Status(status).label
        )
    if freeze_reason is None:
        freeze_reason = card.freeze_reason if status == Card.Status.FROZEN else Card.FreezeReason.NONE
    values = {"status": status, "freeze_reason": freeze_reason, "updated_at": timezone.now(), **fields}
    if status == Card.Status.ACTIVE and freeze_reason == Card.FreezeReason.NONE and current == Card.Status.FROZEN:
        values.setdefault("pin_failures", 0)
    # Only from the status read above: a concurrent change makes this match nothing, and it is refused.
    if not Card.objects.filter(pk=card.pk, status=current).update(**values):
        raise CardStatusChangeRefused(
            card_no=card.card_no, status_from=Card.Status(current).label, status_to=Card.Status(status).label
        )
    for name, value in values.items():
        setattr(card, name, value)
    written = card_event(card=card, kind=event, store=store, actor=actor, note=note, data=data,
                         status_from=current, status_to=status)
    _status_event_emit(card, written)
    return card


# What a receiver hears of a status change: a loss report and a replacement (or exchange) by their own events,
# any other move to frozen (staff, PIN lockout) or expired by the status. Other changes are not events.
_STATUS_EVENTS_BY_KIND = {
    CardEvent.Kind.LOST: EventType.CARD_LOST,
    CardEvent.Kind.REPLACED: EventType.CARD_REPLACED,
    CardEvent.Kind.EXCHANGED: EventType.CARD_REPLACED,
}
_STATUS_EVENTS = {Card.Status.FROZEN: EventType.CARD_FROZEN, Card.Status.EXPIRED: EventType.CARD_EXPIRED}


def _status_event_emit(card: Card, written: CardEvent) -> None:
    event_type = _STATUS_EVENTS_BY_KIND.get(written.kind) or _STATUS_EVENTS.get(written.status_to)
    if event_type is None or not subscriptions_for(event_type):
        return
    data = {
        "card_no": card.card_no,
        "status": written.status_to,
        "store": written.store.code if written.store is not None else None,
        "created_at": timezone.localtime(written.created_at).isoformat(),
    }
    if event_type == EventType.CARD_REPLACED:
        data["replacement_card_no"] = card.replaced_by.card_no if card.replaced_by is not None else None
    event_emit(event_type, subject=f"card:{card.card_no}", data=data, at=written.created_at)


# --- the balance ----------------------------------------------------------------------------------


def _balance_move(card_id: int, amount: Decimal, cap: Decimal | None) -> Decimal | None:
    """Add amount (signed) to the card's balance unless it would fall below zero or pass cap.

    Return the new balance, or None when refused. On PostgreSQL one conditional UPDATE (numeric arithmetic
    is exact). SQLite keeps decimals as floating point, so there the new balance is computed in Python and
    written only if the balance is still the one read (SQLite runs one writer at a time anyway).
    """
    now = timezone.now()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = "UPDATE cards_card SET balance = balance + %s, updated_at = %s WHERE id = %s AND balance + %s >= 0"
            params = [amount, now, card_id, amount]
            if cap is not None:
                sql += " AND balance + %s <= %s"
                params += [amount, cap]
            cursor.execute(sql + " RETURNING balance", params)
            row = cursor.fetchone()
            return row[0] if row else None
        balance = Card.objects.filter(pk=card_id).values_list("balance", flat=True).get()
        new = balance + amount
        if new < 0 or (cap is not None and new > cap):
            return None
        updated = Card.objects.filter(pk=card_id, balance=balance).update(balance=new, updated_at=now)
        return new if updated else None


def card_post(
    *,
    card: Card,
    kind: str,
    amount: Decimal,
    store=None,
    terminal=None,
    receipt_no: str = "",
    operator=None,
    legal_entity=None,
    transaction_record=None,
    reason: str = "",
    cause=None,
    cap: Decimal | None = None,
    created_at=None,
) -> CardLedgerEntry:
    """Move a card's balance by `amount` (signed) and append its ledger row, in the caller's transaction.

    `cap`, when given, is the most the card may hold afterwards (card_cap). The legal entity is the store's
    format's company unless given. Raise InsufficientBalance or CardLimitExceeded; nothing moves then.
    """
    if not isinstance(amount, Decimal) or amount == 0:
        raise ValueError("amount must be a non-zero Decimal")
    with transaction.atomic(savepoint=False):
        balance = _balance_move(card.pk, amount, cap)
        if balance is None:
            current = Card.objects.filter(pk=card.pk).values_list("balance", flat=True).get()
            card.balance = current
            if amount < 0:
                raise InsufficientBalance(card_no=card.card_no, balance=current, amount=-amount)
            raise CardLimitExceeded(
                gettext("Card %(card_no)s may hold at most %(cap)s; it holds %(balance)s (prepaid card rules).")
                % {"card_no": card.card_no, "cap": cap, "balance": current}
            )
        card.balance = balance
        if legal_entity is None and store is not None:
            legal_entity = store.format.legal_entity
        entry = CardLedgerEntry(
            card=card, kind=kind, amount=amount, balance_after=balance, store=store, terminal=terminal,
            receipt_no=receipt_no, legal_entity=legal_entity, operator=operator, transaction=transaction_record,
            reason=reason[:200], **cause_fields(cause),
            **({"created_at": created_at} if created_at is not None else {}),
        )
        insert_returning_pk(entry)
        event_type = _ENTRY_EVENTS.get(kind)
        if event_type is not None and subscriptions_for(event_type):
            _entry_event_emit(event_type, card=card, entry=entry, store=store, transaction_record=transaction_record)
    return entry


# The ledger kinds a receiver hears of; adjustments, transfers, migration, closing and write-offs are not events.
_ENTRY_EVENTS = {
    CardLedgerEntry.Kind.LOAD: EventType.CARD_LOADED,
    CardLedgerEntry.Kind.DEBIT: EventType.CARD_DEBITED,
    CardLedgerEntry.Kind.REFUND: EventType.CARD_REFUNDED,
    CardLedgerEntry.Kind.REVERSE: EventType.CARD_REVERSED,
}


def _entry_event_emit(event_type: str, *, card: Card, entry: CardLedgerEntry, store, transaction_record) -> None:
    """The entry's event, from what the posting already holds: no query but the event's own insert."""
    card_entry_event_emit(
        event_type, card_no=card.card_no, entry_id=entry.pk,
        transaction_id=transaction_record.transaction_id if transaction_record is not None else None,
        amount=entry.amount, balance=entry.balance_after, store=store, receipt_no=entry.receipt_no,
        created_at=entry.created_at,
    )


def card_entry_event_emit(event_type: str, *, card_no: str, entry_id: int, transaction_id: str | None,
                          amount: Decimal, balance: Decimal, store, receipt_no: str, created_at) -> None:
    """The webhook event of a ledger row written (by card_post, or by a payment's one-statement path).

    The caller has checked that a subscription wants `event_type` (subscriptions_for).
    """
    event_emit(event_type, subject=f"card:{card_no}", at=created_at, data={
        "card_no": card_no,
        "entry_id": entry_id,
        "transaction_id": transaction_id,
        "amount": f"{amount:.2f}",
        "balance": f"{balance:.2f}",
        "store": store.code if store is not None else None,
        "receipt_no": receipt_no,
        "created_at": timezone.localtime(created_at).isoformat(),
    })
