"""Wrong PINs in a burst (an outside audit's finding): however many arrive together, no more than the rules'
limit is ever checked wrong, and once the limit is reached a right PIN does not pay until the card is unfrozen
after an identity check.

A PIN is checked and its failure counted in one step under the card's row lock, and the count is committed
with the refusal (cards.services.ledger.card_pin_check, core.api.PosPostView `keep_writes`); before, a wrong
PIN was counted only after its request rolled back, while the others checked against the old count.
"""

import json
import re
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import Client

from cards.errors import InvalidPin
from cards.models import Card, CardEvent, CardLedgerEntry, CardTransaction
from cards.services import operations
from cards.services.ledger import card_pin_failure_record
from cards.services.payments import card_debit
from stores.models import StaffProfile
from stores.services import terminal_create
from tests.membership.conftest import concurrently, register

RIGHT, WRONG = "123456", "654321"
HOLDER_ID = "11010519491231002X"
LEFT = re.compile(r"(\d+) attempts left")


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def till(reference_stores):
    """The key of terminal S1 of SUPER001."""
    _terminal, key = terminal_create(store_code="SUPER001", name="S1")
    return key


@pytest.fixture
def holder(db):
    return register(name="李建国", phone="13800138000", id_type="resident_id", id_number=HOLDER_ID)


@pytest.fixture
def clerk(make_staff):
    return make_staff("card_ops", group="卡务运营", scope=StaffProfile.Scope.HQ)


def send(key: str, card, pin: str, idempotency_key: str) -> tuple[int, dict]:
    """A debit of 10.00 from its own client (its own connection in a thread), answered in English."""
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE="en").post(
        f"/api/v1/cards/{card.card_no}/debit", data=json.dumps({"amount": "10.00", "receipt_no": "R-1", "pin": pin}),
        content_type="application/json", HTTP_IDEMPOTENCY_KEY=idempotency_key)
    return response.status_code, response.json()


def code(answer) -> str:
    status, body = answer
    return str(status) if status < 400 else body["error"]["code"]


def codes(answers) -> dict:
    summary: dict = {}
    for answer in answers:
        summary[code(answer)] = summary.get(code(answer), 0) + 1
    return summary


def attempts_left(answers) -> list:
    """What each invalid_pin answer said: attempts left, or "frozen" for the one that froze the card."""
    said = []
    for status, body in answers:
        if status < 400 or body["error"]["code"] != "invalid_pin":
            continue
        message = body["error"]["message"]
        left = LEFT.search(message)
        said.append(int(left.group(1)) if left else "frozen" if "now frozen" in message else message)
    return sorted(said, key=str)


def card_state(card) -> tuple:
    card = Card.objects.get(pk=card.pk)
    return card.status, card.freeze_reason, card.pin_failures, card.balance


def pin_locks(card) -> int:
    return CardEvent.objects.filter(card=card, kind=CardEvent.Kind.PIN_LOCKED, status_to="frozen").count()


def debits(card) -> int:
    return CardLedgerEntry.objects.filter(card=card, kind=CardLedgerEntry.Kind.DEBIT).count()


# --- one after the other (SQLite and PostgreSQL) ------------------------------------------------------------


@pytest.mark.django_db
def test_a_card_at_the_limit_refuses_the_right_pin_until_it_is_unfrozen_after_an_id_check(
    till, stored_product, card_factory, holder, clerk, ledgers_balanced
):
    # given: a registered card, and a card brought over from the old system with its 5 wrong PINs, still active
    card = card_factory(stored_product, balance="100.00", pin=RIGHT, member=holder, holder_name=holder.name)
    brought = card_factory(stored_product, balance="100.00", pin=RIGHT, member=holder, holder_name=holder.name)
    Card.objects.filter(pk=brought.pk).update(pin_failures=5)

    # when: five wrong PINs at the till, then the right one
    wrong = [send(till, card, WRONG, f"wrong-{n}") for n in range(5)]
    right = send(till, card, RIGHT, "right")
    # then: the fifth froze the card; the right PIN is refused and the count stays at the limit
    assert attempts_left(wrong) == [1, 2, 3, 4, "frozen"]
    assert code(right) == "card_inactive"
    assert card_state(card) == ("frozen", "pin", 5, Decimal("100.00"))
    assert pin_locks(card) == 1

    # when: the right PIN on the card brought over at the limit
    right_on_brought = send(till, brought, RIGHT, "right-brought")
    # then: refused without its PIN being compared, frozen (with its event), the count not cleared
    assert code(right_on_brought) == "card_inactive"
    assert card_state(brought) == ("frozen", "pin", 5, Decimal("100.00"))
    assert pin_locks(brought) == 1
    assert debits(card) == debits(brought) == 0

    # when: the holder shows their ID at the desk and both cards are unfrozen
    for locked in (card, brought):
        operations.card_unfreeze(card=locked, actor=clerk, holder_name=holder.name, id_type="resident_id",
                                 id_number=HOLDER_ID)
    # then: the right PIN pays, and the count starts again from nothing
    for locked in (card, brought):
        assert send(till, locked, RIGHT, f"paid-{locked.pk}")[0] == 201
        assert card_state(locked) == ("active", "", 0, Decimal("90.00"))
    ledgers_balanced()


@pytest.mark.django_db
def test_a_lowered_limit_holds_for_counts_already_past_it(till, stored_product, card_factory, card_rules):
    # given: a card with 4 wrong PINs, then the rules lowered to 3 attempts
    card = card_factory(stored_product, balance="100.00", pin=RIGHT)
    Card.objects.filter(pk=card.pk).update(pin_failures=4)
    card_rules.pin_attempts = 3
    card_rules.save()

    # when/then: the right PIN no longer pays, and does not clear the count
    assert code(send(till, card, RIGHT, "right")) == "card_inactive"
    assert card_state(card) == ("frozen", "pin", 4, Decimal("100.00"))
    assert pin_locks(card) == 1


@pytest.mark.django_db
def test_a_wrong_pin_is_counted_in_the_transaction_that_checked_it_and_never_past_the_limit(
    stored_product, card_factory, super001
):
    card = card_factory(stored_product, balance="100.00", pin=RIGHT)

    with transaction.atomic():
        with pytest.raises(InvalidPin):
            card_debit(card_no=card.card_no, amount="10.00", receipt_no="R-1", store=super001, pin=WRONG)
        # counted before the card's lock is let go: the next request to take it sees this count
        assert Card.objects.get(pk=card.pk).pin_failures == 1

    for _attempt in range(8):
        card_pin_failure_record(card_id=card.pk)
    assert card_state(card) == ("frozen", "pin", 5, Decimal("100.00"))
    assert pin_locks(card) == 1


# --- at the same moment (PostgreSQL: real threads, each with its own connection) ----------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_forty_simultaneous_wrong_pins_are_checked_five_times(till, stored_product, card_factory, ledgers_balanced):
    card = card_factory(stored_product, balance="100.00", pin=RIGHT)

    answers = concurrently(40, lambda index: send(till, card, WRONG, f"wrong-{index}"))

    assert codes(answers) == {"invalid_pin": 5, "card_inactive": 35}
    assert attempts_left(answers) == [1, 2, 3, 4, "frozen"]
    assert card_state(card) == ("frozen", "pin", 5, Decimal("100.00"))
    assert pin_locks(card) == 1
    ledgers_balanced()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_right_pin_among_forty_simultaneous_wrong_ones_never_pays_past_the_limit(till, stored_product,
                                                                                  card_factory, ledgers_balanced):
    card = card_factory(stored_product, balance="100.00", pin=RIGHT)
    right_index = 20

    answers = concurrently(41, lambda index: send(
        till, card, RIGHT if index == right_index else WRONG, f"pin-{index}"))

    right = answers.pop(right_index)
    wrong_checked = codes(answers).get("invalid_pin", 0)
    # Whatever the order, the card ends frozen by PINs with its count at the limit, frozen once.
    assert card_state(card)[:3] == ("frozen", "pin", 5)
    assert pin_locks(card) == 1
    if code(right) == "201":
        # It was served before the limit: fewer than 5 wrong PINs were checked before it (it cleared them),
        # and 5 after it froze the card anyway.
        before = wrong_checked - 5
        assert 0 <= before < 5, codes(answers)
        assert attempts_left(answers) == sorted([1, 2, 3, 4, "frozen", *range(4, 4 - before, -1)], key=str)
        assert codes(answers) == {"invalid_pin": 5 + before, "card_inactive": 35 - before}
        assert card_state(card)[3] == Decimal("90.00")
        assert debits(card) == CardTransaction.objects.filter(card=card).count() == 1
    else:
        # It came after the limit: refused like every wrong PIN past it, nothing paid.
        assert code(right) == "card_inactive"
        assert codes(answers) == {"invalid_pin": 5, "card_inactive": 35}
        assert attempts_left(answers) == [1, 2, 3, 4, "frozen"]
        assert card_state(card)[3] == Decimal("100.00")
        assert debits(card) == 0
    ledgers_balanced()
