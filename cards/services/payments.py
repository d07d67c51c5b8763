"""POS payments with cards: enquiry, debit, refund of a debit, and the same-day reverse of either.

Every payment is one CardTransaction (its public id is what a till prints and quotes back) and one ledger
row linked to it, written with the balance in one transaction (`card_post`). Locks are taken in one order:
card transactions by primary key, then the card, so a refund, a reverse and a payment of the same card
never deadlock.

Rules a group's tills rely on:
- a debit is all or nothing: a basket the balance cannot cover moves nothing (insufficient_balance);
- a refund goes back onto the card that paid, at any store of the group (a card is honoured in every
  format, so a return is too; the ledger row names the refunding store's company for settlement), and the
  refunds of one payment never add up to more than it charged;
- a reverse (void) is for the same store on the same business day (Asia/Shanghai); later, refund instead.

Discount programmes (cards.discounts) price a debit and record it once the payment is inserted; a refund or
reverse tells them (`discounts.follow_up`) so they give back their share in the same transaction.
"""

import base64
import json
import secrets
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from cards import discounts
from cards.errors import (
    AlreadyReversed,
    CardInactive,
    CardInvalid,
    CardLimitExceeded,
    CardOperationRefused,
    CardPaymentNotFound,
    CardTransactionNotFound,
    InsufficientBalance,
    RefundExceedsPayment,
)
from cards.models import Brand, Card, CardLedgerEntry, CardProduct, CardRules, CardTransaction
from cards.services.ledger import (
    card_cap,
    card_entry_event_emit,
    card_for_use,
    card_get,
    card_no_clean,
    card_pin_check,
    card_post,
    money_clean,
)
from core.numbers import LINES_MAX, QUANTITY_MAX, money_text_read, quantity_text_read
from core.sql import JoinedSelect, Part, execute_prepared, insert_returning_pk
from integrations.events import subscriptions_for
from integrations.models import EventType
from stores.models import Format, LegalEntity

__all__ = [
    "LINES_MAX",
    "CardPaymentNotFound",
    "PAYMENT_REVERSED",
    "CheckedLines",
    "RefundExceedsPayment",
    "card_debit",
    "card_debit_lines_clean",
    "card_enquiry",
    "card_refund",
    "card_status_shown",
    "card_transaction_reverse",
    "on_payment_reversed",
]

RECEIPT_MAX = 64
CENT = Decimal("0.01")
# A refund lands on the card that paid whatever its state, except where no money may sit: a card never sold
# (inactive) or closed. A frozen (lost) or expired card keeps it for its holder, as the rules require.
REFUNDABLE = {Card.Status.ACTIVE, Card.Status.FROZEN, Card.Status.EXPIRED}


# --- reading the card -------------------------------------------------------------------------------------
# On every POS payment: the card with its product and brand in one statement written once per process,
# locked on PostgreSQL (SQLite runs one writer at a time and has no FOR UPDATE).

_CARD_FIELDS = (
    "card_no", "product", "status", "freeze_reason", "balance", "pin_hash", "pin_failures", "member", "expires_at",
)
_CARD_PARTS = [
    Part("c", Card, _CARD_FIELDS),
    Part("p", CardProduct, via="c.product"),
    Part("b", Brand, ("code", "name", "is_active"), via="p.brand"),
]
_CARD_FROM = (
    'FROM {c} c JOIN {p} p ON p."id" = c."product_id" LEFT JOIN {b} b ON b."id" = p."brand_id" '
    'WHERE c."card_no" = %s'
)
_CARD = JoinedSelect(_CARD_PARTS, _CARD_FROM)
# NO KEY UPDATE is the lock the balance UPDATE takes anyway; unlike FOR UPDATE it does not hold up other
# transactions' foreign-key checks of rows that refer to the card.
_CARD_LOCKED = JoinedSelect(_CARD_PARTS, _CARD_FROM + ' FOR NO KEY UPDATE OF c')


# Called as listener(payment=, reversal=) in the reversal's transaction when a card payment is voided (campaigns
# gives back the coupons used on its receipt). Registered with on_payment_reversed.
PAYMENT_REVERSED: list[Callable] = []


def on_payment_reversed(function: Callable) -> Callable:
    """Register a listener of voided card payments (see PAYMENT_REVERSED)."""
    PAYMENT_REVERSED.append(function)
    return function


def _card(card_no: str, *, lock: bool) -> Card:
    select = _CARD_LOCKED if lock and connection.vendor == "postgresql" else _CARD
    found = select.fetch([card_no])
    if found is None:
        return card_get(card_no)  # raises CardNotFound, the one answer for every unknown number
    return found["c"]


def _company(store) -> LegalEntity | None:
    """The company of the store's format: the cached one, or a reference by key (no query on every payment)."""
    if store is None:
        return None
    format_ = store.format
    if Format.legal_entity.is_cached(format_):
        return format_.legal_entity
    company = LegalEntity(pk=format_.legal_entity_id)
    company._state.adding = False
    return company


def card_enquiry(card_no: str) -> Card:
    """The card with its product and brand, for a till's balance enquiry. Raise CardInvalid, CardNotFound."""
    return _card(card_no_clean(card_no), lock=False)


def card_status_shown(card: Card, *, now: datetime | None = None) -> str:
    """The status a till sees: an active card past its expiry date is already expired for paying."""
    now = now or timezone.now()
    if card.status == Card.Status.ACTIVE and card.expires_at is not None and card.expires_at <= now:
        return Card.Status.EXPIRED
    return card.status


# --- validation ---------------------------------------------------------------------------------------------


def _receipt_clean(receipt_no) -> str:
    if not isinstance(receipt_no, str) or not receipt_no.strip() or len(receipt_no.strip()) > RECEIPT_MAX:
        raise CardInvalid(fields={"receipt_no": [gettext("Give the receipt number (1 to 64 characters).")]})
    return receipt_no.strip()


def _line_money(value) -> Decimal | None:
    # Money is a string (CONTRACT section 3), written plainly: not 12, "1e2", " 12.5" or "+12".
    amount = money_text_read(value)
    return None if amount is None else amount.quantize(CENT)


def _line_quantity(value) -> Decimal | None:
    # Whole units as a JSON integer, or a plain decimal string (weighed goods; at most three decimals).
    quantity = quantity_text_read(value)
    if quantity is None or quantity <= 0 or quantity > QUANTITY_MAX:
        return None
    return quantity


class CheckedLines(list):
    """Lines card_debit_lines_clean returned: {"sku", "amount", "quantity"} strings, each line checked.

    card_debit takes these as they are and checks lines of any other type itself, so a basket is read once:
    by the API's field (which calls card_debit_lines_clean) for a POS debit, by card_debit for other callers.
    """


def card_debit_lines_clean(lines) -> tuple[list[dict], list[str]]:
    """The basket's lines as CheckedLines, or a message per bad line (naming it) and no lines.

    Discount programmes read these; a line with a wrong SKU, amount or quantity is refused rather than
    guessed at, since a discount is computed from it.
    """
    if lines is None:
        return CheckedLines(), []
    if not isinstance(lines, list):
        return [], [gettext("Give the lines as a list of objects with sku, amount and quantity.")]
    if len(lines) > LINES_MAX:
        return [], [gettext("A receipt has at most %(max)s lines.") % {"max": LINES_MAX}]
    cleaned, errors = [], []
    for number, line in enumerate(lines, start=1):
        if not isinstance(line, dict):
            errors.append(gettext("Line %(n)s: give sku, amount and quantity.") % {"n": number})
            continue
        sku = line.get("sku")
        if not isinstance(sku, str) or not sku.strip() or len(sku) > 64:
            errors.append(gettext("Line %(n)s: give the SKU (1 to 64 characters).") % {"n": number})
        amount = _line_money(line.get("amount"))
        if amount is None:
            errors.append(gettext('Line %(n)s: give the amount as a string with at most two decimals, e.g. "12.50".')
                          % {"n": number})
        quantity = _line_quantity(line.get("quantity"))
        if quantity is None:
            errors.append(gettext("Line %(n)s: the quantity must be greater than 0, with at most three decimals.")
                          % {"n": number})
        if not errors:
            cleaned.append({"sku": sku.strip(), "amount": f"{amount:.2f}",
                            "quantity": format(quantity.normalize(), "f")})
    if errors:
        return [], errors
    return CheckedLines(cleaned), []


# --- transactions -------------------------------------------------------------------------------------------


def _new_transaction_id() -> str:
    # 80 random bits as 16 base32 characters: short enough to key in, never guessable or sequential.
    return base64.b32encode(secrets.token_bytes(10)).decode()


def _transaction_insert(record: CardTransaction) -> CardTransaction:
    """Insert with a fresh public id; a clash (one in 2**80) is skipped by the unique index and drawn again."""
    while True:
        record.transaction_id = _new_transaction_id()
        if insert_returning_pk(record, skip_on_conflict=("transaction_id",)) is not None:
            return record


def _transaction():
    """The caller's transaction when there is one (a POS request's), else a new one.

    No savepoint on the busy path: every refusal below is raised before the first write, so it leaves the
    caller's transaction usable; an error of the database itself leaves it to be rolled back.
    """
    return nullcontext() if connection.in_atomic_block else transaction.atomic()


def _post(record: CardTransaction, **posting) -> None:
    """The transaction's balance move and ledger row; `balance_after` was read under the card's lock.

    On SQLite (no row locks; writers one at a time) another payment may have moved the balance between that
    read and this write: the ledger's figure is the true one and the transaction is set to it.
    """
    card = posting["card"]
    card_post(transaction_record=record, created_at=record.created_at, **posting)
    if card.balance != record.balance_after:
        record.balance_after = card.balance
        CardTransaction.objects.filter(pk=record.pk).update(balance_after=card.balance)


def _transactions_lock(*pks: int) -> dict[int, CardTransaction]:
    """Lock card transactions in primary-key order (the first lock of every refund and reverse)."""
    rows = CardTransaction.objects.select_for_update(no_key=True).filter(pk__in=pks).order_by("pk")
    return {row.pk: row for row in rows}


def _insufficient(card: Card, amount: Decimal) -> InsufficientBalance:
    return InsufficientBalance(card_no=card.card_no, balance=card.balance, amount=amount)


def _over_cap(card: Card, cap: Decimal) -> CardLimitExceeded:
    return CardLimitExceeded(
        gettext("Card %(card_no)s may hold at most %(cap)s; it holds %(balance)s (prepaid card rules).")
        % {"card_no": card.card_no, "cap": cap, "balance": card.balance}
    )


# --- a debit in one statement (PostgreSQL) ---------------------------------------------------------------------
# The common debit (an active card without PIN, in date, able to pay, that no discount programme concerns) needs
# nothing read before it is written: the balance's UPDATE carries the checks card_debit makes in Python, and the
# payment and its ledger row are inserted from what it returns, all in one statement. When the UPDATE matches no
# card, nothing is written and card_debit takes its full path, which finds out why (or pays a card with a PIN).
# The card's row is locked by the UPDATE as by the full path's SELECT ... FOR NO KEY UPDATE, first and alone.

_DEBIT_IN_ONE = " ".join("""
WITH moved AS (
    UPDATE cards_card AS c SET balance = c.balance - %s, updated_at = %s
    FROM cards_cardproduct AS p
    WHERE c.card_no = %s AND p.id = c.product_id AND c.status = %s AND c.pin_hash = ''
        AND (c.expires_at IS NULL OR c.expires_at > %s) AND c.balance >= %s{brandless}
    RETURNING c.id, c.balance
), payment AS (
    INSERT INTO cards_cardtransaction (transaction_id, kind, card_id, amount, discount, charged, refunded,
        balance_after, store_id, terminal_id, receipt_no, lines, business_date, created_at)
    SELECT %s, %s, moved.id, %s, 0, %s, 0, moved.balance, %s, %s, %s, %s::jsonb, %s, %s FROM moved
    RETURNING id, card_id, balance_after
)
INSERT INTO cards_cardledgerentry (card_id, kind, amount, balance_after, store_id, terminal_id, receipt_no,
    legal_entity_id, transaction_id, reason, cause_id, created_at)
SELECT payment.card_id, %s, %s, payment.balance_after, %s, %s, %s, %s, payment.id, '', '', %s FROM payment
RETURNING id, transaction_id, card_id, balance_after
""".split())  # on one line: as the database's and the driver's logs show it


def _debit_in_one(*, card_no: str, amount: Decimal, receipt_no: str, store, terminal, lines: list[dict],
                  now: datetime) -> CardTransaction | None:
    """The debit as one statement, or None (nothing written) when the card needs card_debit's full path."""
    if not discounts.none_without_brand():
        return None
    # With programmes registered, only a card whose product has no brand goes this way.
    sql = _DEBIT_IN_ONE.format(brandless=" AND p.brand_id IS NULL" if discounts.registered() else "")
    transaction_id = _new_transaction_id()
    terminal_id = terminal.pk if terminal is not None else None
    company_id = store.format.legal_entity_id
    rows = execute_prepared(sql, [
        amount, now, card_no, str(Card.Status.ACTIVE), now, amount,
        transaction_id, str(CardTransaction.Kind.DEBIT), amount, amount, store.pk, terminal_id, receipt_no,
        json.dumps(lines, ensure_ascii=False), timezone.localdate(now), now,
        str(CardLedgerEntry.Kind.DEBIT), -amount, store.pk, terminal_id, receipt_no, company_id, now,
    ])
    if not rows:
        return None
    entry_id, payment_id, card_id, balance = rows[0]
    if subscriptions_for(EventType.CARD_DEBITED):
        card_entry_event_emit(
            EventType.CARD_DEBITED, card_no=card_no, entry_id=entry_id, transaction_id=transaction_id,
            amount=-amount, balance=balance, store=store, receipt_no=receipt_no, created_at=now,
        )
    # What the caller gets: the payment as inserted, its card loaded on demand (only its number is known).
    card = Card.from_db("default", ["id", "card_no", "balance"], [card_id, card_no, balance])
    payment = CardTransaction(
        id=payment_id, transaction_id=transaction_id, kind=CardTransaction.Kind.DEBIT, card=card, amount=amount,
        discount=Decimal("0.00"), charged=amount, refunded=Decimal("0.00"), balance_after=balance, store=store,
        terminal=terminal, receipt_no=receipt_no, lines=lines, business_date=timezone.localdate(now),
        created_at=now,
    )
    payment._state.adding = False
    return payment


def card_debit(
    *,
    card_no: str,
    amount,
    receipt_no: str,
    store,
    terminal=None,
    pin: str | None = None,
    lines: list[dict] | None = None,
) -> CardTransaction:
    """Pay `amount` less any programme discount with a card, all or nothing.

    `lines` that are CheckedLines (the API's, read once by its field) are taken as they are; others are checked
    here with card_debit_lines_clean.
    Raise CardInvalid, CardNotFound, CardInactive, CardExpired, InvalidPin or PinLocked, InsufficientBalance.
    A wrong PIN is checked and counted under the card's lock before anything is written (card_pin_check): the
    API commits that count with its answer (`keep_writes`); a caller whose transaction (or card_debit's own)
    is rolled back calls the error's `after_rollback()`.
    """
    card_no = card_no_clean(card_no)
    amount = money_clean(amount)
    receipt_no = _receipt_clean(receipt_no)
    if not isinstance(lines, CheckedLines):
        lines, problems = card_debit_lines_clean(lines)
        if problems:
            raise CardInvalid(fields={"lines": problems})
    now = timezone.now()
    with _transaction():
        if connection.vendor == "postgresql":
            paid = _debit_in_one(card_no=card_no, amount=amount, receipt_no=receipt_no, store=store,
                                 terminal=terminal, lines=lines, now=now)
            if paid is not None:
                return paid
        card = _card(card_no, lock=True)
        card_for_use(card, now=now)
        card_pin_check(card, pin)
        quote = discounts.discount_for(card=card, store=store, lines=lines, amount=amount)
        discount = quote.amount
        charged = amount - discount
        if charged <= 0:
            raise CardInvalid(fields={"amount": [gettext(
                "The discount covers the whole amount: nothing is left to charge to the card."
            )]})
        if card.balance < charged:
            raise _insufficient(card, charged)
        record = _transaction_insert(CardTransaction(
            kind=CardTransaction.Kind.DEBIT, card=card, amount=amount, discount=discount, charged=charged,
            balance_after=card.balance - charged, store=store, terminal=terminal, receipt_no=receipt_no,
            lines=lines, business_date=timezone.localdate(now), created_at=now,
        ))
        _post(record, card=card, kind=CardLedgerEntry.Kind.DEBIT, amount=-charged, store=store, terminal=terminal,
              receipt_no=receipt_no, legal_entity=_company(store))
        quote.record(record)
    return record


# --- refunds and reverses -----------------------------------------------------------------------------------
# A refund or a reverse reads what it undoes in one hand-written statement: the card transaction(s) with their
# card, its product and the rules' caps (card_cap), locked on PostgreSQL in the module's order. A refund's one
# payment and its card are locked by one row of one statement, which locks its tables in the order `OF` names
# them: the payment, then the card. A reverse locks its transactions (the one reversed and what it undoes) in
# primary-key order, and the card afterwards, by the balance's UPDATE. On PostgreSQL the refund or reversal
# is then written by one statement (_refund_write); SQLite writes it row by row, as card_post does.

# Every column but the basket's lines, which nothing that undoes a payment reads.
_UNDONE_FIELDS = (
    "transaction_id", "kind", "card", "amount", "discount", "charged", "refunded", "balance_after", "original",
    "store", "terminal", "receipt_no", "business_date", "reversed_at", "created_at",
)
_RULES_PART = Part("r", CardRules, ("registered_max_balance", "bearer_max_balance"))
# The row CardRules.current() reads; none yet, and card_cap creates it.
_RULES_JOIN = 'LEFT JOIN {r} r ON r."id" = (SELECT MIN("id") FROM {r})'

_REFUND_PARTS = [
    Part("t", CardTransaction, _UNDONE_FIELDS),
    Part("c", Card, ("card_no", "product", "status", "balance"), via="t.card"),
    Part("p", CardProduct, ("kind", "max_balance"), via="c.product"),
    _RULES_PART,
]
_REFUND_FROM = (
    'FROM {t} t JOIN {c} c ON c."id" = t."card_id" JOIN {p} p ON p."id" = c."product_id" ' + _RULES_JOIN
    + " WHERE t.\"transaction_id\" = %s AND t.\"kind\" = 'debit' AND c.\"card_no\" = %s"
)
_REFUND_FIND = JoinedSelect(_REFUND_PARTS, _REFUND_FROM)
_REFUND_FIND_LOCKED = JoinedSelect(_REFUND_PARTS, _REFUND_FROM + " FOR NO KEY UPDATE OF t, c")

_REVERSE_PARTS = [
    Part("t", CardTransaction, _UNDONE_FIELDS),
    Part("c", Card, ("card_no", "product", "balance"), via="t.card"),
    Part("p", CardProduct, ("kind", "max_balance"), via="c.product"),
    _RULES_PART,
]
# The transaction of this store with that id, and the one it undoes (a refund's payment), in primary-key order.
_REVERSE_FROM = (
    'FROM {t} s JOIN {t} t ON t."id" IN (s."id", s."original_id") JOIN {c} c ON c."id" = t."card_id" '
    'JOIN {p} p ON p."id" = c."product_id" ' + _RULES_JOIN
    + ' WHERE s."transaction_id" = %s AND s."store_id" = %s ORDER BY t."id"'
)
_REVERSE_FIND = JoinedSelect(_REVERSE_PARTS, _REVERSE_FROM)
_REVERSE_FIND_LOCKED = JoinedSelect(_REVERSE_PARTS, _REVERSE_FROM + " FOR NO KEY UPDATE OF t")

# The columns of transactions a refund or reversal sets on what it undoes (rows the request has locked).
_UNDONE_COLUMNS = frozenset({"refunded", "reversed_at"})
_WRITES: dict[tuple, str] = {}


def _refund_write_sql(columns: tuple[str, ...], capped: bool) -> str:
    """The statement of _refund_write: each part reads the rows of the one before, so all start from the move."""
    key = (columns, capped)
    sql = _WRITES.get(key)
    if sql is None:
        if not _UNDONE_COLUMNS.issuperset(columns):
            raise ValueError(f"a refund or reversal sets no column of {columns!r}")
        updates = "".join(
            f", u{number} AS (UPDATE cards_cardtransaction SET {column} = %s FROM txn "  # noqa: S608 - known columns
            "WHERE cards_cardtransaction.id = %s)"
            for number, column in enumerate(columns)
        )
        sql = (
            "WITH moved AS (UPDATE cards_card SET balance = balance + %s, updated_at = %s "  # noqa: S608
            "WHERE id = %s AND balance + %s >= 0" + (" AND balance + %s <= %s" if capped else "")
            + " AND NOT EXISTS (SELECT 1 FROM cards_cardtransaction WHERE transaction_id = %s) RETURNING balance), "
            "txn AS (INSERT INTO cards_cardtransaction (transaction_id, kind, card_id, amount, discount, charged, "
            "refunded, balance_after, original_id, store_id, terminal_id, receipt_no, lines, business_date, "
            "created_at) SELECT %s, %s, %s, %s, %s, %s, %s, moved.balance, %s, %s, %s, %s, '[]'::jsonb, %s, %s "
            "FROM moved RETURNING id)" + updates
            + " INSERT INTO cards_cardledgerentry (card_id, kind, amount, balance_after, store_id, terminal_id, "
            "receipt_no, legal_entity_id, transaction_id, reason, cause_id, created_at) "
            "SELECT %s, %s, %s, moved.balance, %s, %s, %s, %s, txn.id, '', '', %s FROM moved, txn "
            "RETURNING id, transaction_id, balance_after"
        )
        _WRITES[key] = sql
    return sql


def _refund_write(record: CardTransaction, *, moved: Decimal, kind: str, cap: Decimal | None,
                  legal_entity_id: int | None, undone: tuple[tuple[str, int, object], ...]) -> int:
    """Write a refund or reversal on PostgreSQL in one statement; return its ledger row's id.

    The statement moves the card's balance by `moved` (signed) with the conditional UPDATE of card_post (never
    below zero, nor above `cap` when given), inserts the record with the balance after, sets the (column,
    primary key, value) of `undone` on the transactions it undoes and appends the ledger row of `kind`. Every
    part reads the rows of the part before it: a move refused writes nothing.
    The record's public id is drawn afresh while another transaction has it (the move is refused then too).
    Raise InsufficientBalance or CardLimitExceeded with the card's balance (read under its lock), as card_post.
    """
    card = record.card
    sql = _refund_write_sql(tuple(column for column, _pk, _value in undone), cap is not None)
    bound = [moved, cap] if cap is not None else []
    tail = [value for _column, pk, value in undone for value in (value, pk)] + [
        record.card_id, kind, moved, record.store_id, record.terminal_id, record.receipt_no, legal_entity_id,
        record.created_at,
    ]
    with connection.cursor() as cursor:
        while True:
            record.transaction_id = _new_transaction_id()
            cursor.execute(sql, [
                moved, record.created_at, record.card_id, moved, *bound, record.transaction_id,
                record.transaction_id, record.kind, record.card_id, record.amount, record.discount, record.charged,
                record.refunded, record.original_id, record.store_id, record.terminal_id, record.receipt_no,
                record.business_date, record.created_at, *tail,
            ])
            row = cursor.fetchone()
            if row is not None:
                break
            # Refused, or the id was taken. The UPDATE judged the balance its snapshot holds; the card's lock waits
            # for a payment in flight (as a lock taken before the move would have), then it is judged again.
            cursor.execute(
                "SELECT balance, EXISTS (SELECT 1 FROM cards_cardtransaction WHERE transaction_id = %s) "
                "FROM cards_card WHERE id = %s FOR NO KEY UPDATE",
                [record.transaction_id, record.card_id],
            )
            balance, taken = cursor.fetchone()
            after = balance + moved
            if not taken and (after < 0 or (cap is not None and after > cap)):
                card.balance = balance
                raise _insufficient(card, -moved) if moved < 0 else _over_cap(card, cap)
    entry_id, record.pk, record.balance_after = row
    record._state.adding = False
    record._state.db = connection.alias
    card.balance = record.balance_after
    return entry_id


def _refund_event_emit(event_type: str, *, record: CardTransaction, entry_id: int, moved: Decimal) -> None:
    """The ledger row's webhook event, as card_post writes it, when a subscription wants the type."""
    if subscriptions_for(event_type):
        card_entry_event_emit(
            event_type, card_no=record.card.card_no, entry_id=entry_id, transaction_id=record.transaction_id,
            amount=moved, balance=record.balance_after, store=record.store, receipt_no=record.receipt_no,
            created_at=record.created_at,
        )


def _legal_entity_id(store) -> int | None:
    return store.format.legal_entity_id if store is not None else None


def _reverse_raced(error: IntegrityError) -> bool:
    """Whether the insert of a reversal broke card_txn_one_reverse: a concurrent reverse got there first."""
    diagnostics = getattr(error.__cause__, "diag", None)  # PostgreSQL names the constraint; SQLite does not
    return diagnostics is None or diagnostics.constraint_name == "card_txn_one_reverse"


def card_refund(
    *,
    card_no: str,
    amount,
    receipt_no: str,
    original_transaction_id: str,
    store,
    terminal=None,
) -> CardTransaction:
    """Put (part of) a payment back onto the card that paid it, within the card's limit.

    Raise CardInvalid, CardNotFound, CardPaymentNotFound, AlreadyReversed (the payment was voided),
    RefundExceedsPayment, CardInactive (a card not sold or closed), CardLimitExceeded (the card's cap).
    """
    card_no = card_no_clean(card_no)
    amount = money_clean(amount)
    receipt_no = _receipt_clean(receipt_no)
    original_transaction_id = str(original_transaction_id or "").strip()
    now = timezone.now()
    postgresql = connection.vendor == "postgresql"
    with _transaction():
        found = (_REFUND_FIND_LOCKED if postgresql else _REFUND_FIND).fetch([original_transaction_id, card_no])
        if found is None:
            card_get(card_no)  # an unknown card is not_found for the card (and counts as a guess)
            raise CardPaymentNotFound(transaction_id=original_transaction_id, card_no=card_no)
        original, card = found["t"], found["c"]
        if original.reversed_at is not None:
            raise AlreadyReversed(
                gettext("Payment %(transaction_id)s was reversed; nothing of it is left to refund."),
                transaction_id=original.transaction_id,
            )
        left = original.charged - original.refunded
        if amount > left:
            raise RefundExceedsPayment(
                transaction_id=original.transaction_id, charged=original.charged, refunded=original.refunded,
                left=left,
            )
        if card.status not in REFUNDABLE:
            raise CardInactive(card_no=card.card_no, status=card.get_status_display())
        cap = card_cap(card, found["r"])
        if card.balance + amount > cap:
            raise _over_cap(card, cap)
        record = CardTransaction(
            kind=CardTransaction.Kind.REFUND, card=card, amount=amount, charged=amount,
            balance_after=card.balance + amount, original=original, store=store, terminal=terminal,
            receipt_no=receipt_no, business_date=timezone.localdate(now), created_at=now,
        )
        # The payment is locked: its total is computed here, exactly (SQLite would add binary floats).
        refunded = original.refunded + amount
        if postgresql:
            entry_id = _refund_write(record, moved=amount, kind=CardLedgerEntry.Kind.REFUND, cap=cap,
                                     legal_entity_id=_legal_entity_id(store),
                                     undone=(("refunded", original.pk, refunded),))
            _refund_event_emit(EventType.CARD_REFUNDED, record=record, entry_id=entry_id, moved=amount)
        else:
            _transaction_insert(record)
            CardTransaction.objects.filter(pk=original.pk).update(refunded=refunded)
            _post(record, card=card, kind=CardLedgerEntry.Kind.REFUND, amount=amount, store=store,
                  terminal=terminal, receipt_no=receipt_no, legal_entity=_company(store), cap=cap)
        discounts.follow_up(record)
    return record


def card_transaction_reverse(*, transaction_id: str, store, terminal=None) -> CardTransaction:
    """Void a payment without refunds, or a refund, of this store and business day; return the reversal.

    Raise CardTransactionNotFound (also for another store's), AlreadyReversed, CardOperationRefused
    (a reversal, another day, a payment with refunds), InsufficientBalance (the refunded money is spent),
    CardLimitExceeded.
    """
    transaction_id = str(transaction_id or "").strip()
    now = timezone.now()
    today = timezone.localdate(now)
    postgresql = connection.vendor == "postgresql"
    with _transaction():
        select = _REVERSE_FIND_LOCKED if postgresql else _REVERSE_FIND
        with connection.cursor() as cursor:
            cursor.execute(select.sql, [transaction_id, store.pk])
            found = {row["t"].transaction_id: row for row in map(select.load, cursor.fetchall())}
        if transaction_id not in found:
            raise CardTransactionNotFound(transaction_id=transaction_id)
        target, card, rules = found[transaction_id]["t"], found[transaction_id]["c"], found[transaction_id]["r"]
        if target.kind == CardTransaction.Kind.REVERSE:
            raise CardOperationRefused(reason=gettext("a reversal cannot itself be reversed."))
        if target.reversed_at is not None:
            raise AlreadyReversed(transaction_id=target.transaction_id)
        if target.business_date != today:
            raise CardOperationRefused(reason=gettext(
                "only a transaction of today's business day can be reversed (this one is of %(date)s); "
                "refund it instead."
            ) % {"date": target.business_date.isoformat()})
        if target.kind == CardTransaction.Kind.DEBIT and target.refunded:
            raise CardOperationRefused(reason=gettext(
                "%(refunded)s of this payment is already refunded; refund the rest instead."
            ) % {"refunded": target.refunded})
        # A reversed payment puts its money back; a reversed refund takes it off again.
        moved = target.charged if target.kind == CardTransaction.Kind.DEBIT else -target.charged
        cap = card_cap(card, rules) if moved > 0 else None
        undone = [("reversed_at", target.pk, now)]
        if target.kind == CardTransaction.Kind.REFUND:
            paid = next(row["t"] for row in found.values() if row["t"].pk == target.original_id)
            undone.append(("refunded", paid.pk, paid.refunded - target.charged))
        record = CardTransaction(
            kind=CardTransaction.Kind.REVERSE, card=card, amount=target.charged, charged=target.charged,
            balance_after=card.balance + moved, original=target, store=store, terminal=terminal,
            receipt_no=target.receipt_no, business_date=today, created_at=now,
        )
        try:
            if postgresql:
                # The balance's UPDATE takes the card's lock and checks zero and the cap under it.
                entry_id = _refund_write(record, moved=moved, kind=CardLedgerEntry.Kind.REVERSE, cap=cap,
                                         legal_entity_id=_legal_entity_id(store), undone=tuple(undone))
            else:
                if cap is not None and card.balance + moved > cap:
                    raise _over_cap(card, cap)
                if card.balance + moved < 0:
                    raise _insufficient(card, -moved)
                _transaction_insert(record)
        except IntegrityError as error:
            if not _reverse_raced(error):
                raise
            raise AlreadyReversed(transaction_id=target.transaction_id) from None
        if postgresql:
            _refund_event_emit(EventType.CARD_REVERSED, record=record, entry_id=entry_id, moved=moved)
        else:
            for column, pk, value in undone:
                CardTransaction.objects.filter(pk=pk).update(**{column: value})
            _post(record, card=card, kind=CardLedgerEntry.Kind.REVERSE, amount=moved, store=store,
                  terminal=terminal, receipt_no=target.receipt_no, legal_entity=_company(store), cap=cap)
        discounts.follow_up(record)
        if target.kind == CardTransaction.Kind.DEBIT:
            for listener in PAYMENT_REVERSED:
                listener(payment=target, reversal=record)
    return record
