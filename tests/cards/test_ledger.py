"""The card ledger itself (cards.services.ledger): balance moves within limits, status transitions, PINs."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from cards.errors import (
    CardExpired,
    CardInactive,
    CardInvalid,
    CardLimitExceeded,
    CardNotFound,
    CardStatusChangeRefused,
    InsufficientBalance,
    InvalidPin,
)
from cards.models import Card, CardEvent, CardLedgerEntry, CardProduct
from cards.services.ledger import (
    card_cap,
    card_for_use,
    card_get,
    card_pin_check,
    card_pin_failure_record,
    card_post,
    card_status_change,
    money_clean,
)


def balance(card: Card) -> Decimal:
    return Card.objects.values_list("balance", flat=True).get(pk=card.pk)


# --- card_post ------------------------------------------------------------------------------------------


def test_a_post_moves_the_balance_and_appends_its_row(card_factory, stored_product, super001):
    card = card_factory(stored_product, balance="100.00")

    entry = card_post(card=card, kind=CardLedgerEntry.Kind.DEBIT, amount=Decimal("-30.25"), store=super001,
                      receipt_no="R-9", reason="basket")

    assert balance(card) == card.balance == Decimal("69.75")
    entry = CardLedgerEntry.objects.get(pk=entry.pk)
    assert (entry.amount, entry.balance_after, entry.receipt_no) == (Decimal("-30.25"), Decimal("69.75"), "R-9")
    assert entry.legal_entity == super001.format.legal_entity


def test_a_debit_larger_than_the_balance_moves_nothing(card_factory, stored_product, super001):
    card = card_factory(stored_product, balance="20.00")

    # card_post runs in its caller's transaction (no savepoint): the caller's atomic block rolls back.
    with pytest.raises(InsufficientBalance) as refused, transaction.atomic():
        card_post(card=card, kind=CardLedgerEntry.Kind.DEBIT, amount=Decimal("-20.01"), store=super001)

    assert refused.value.code == "insufficient_balance"
    assert balance(card) == Decimal("20.00")
    assert card.ledger_entries.count() == 1


def test_the_whole_balance_can_be_spent(card_factory, stored_product):
    card = card_factory(stored_product, balance="20.00")

    card_post(card=card, kind=CardLedgerEntry.Kind.DEBIT, amount=Decimal("-20.00"))

    assert balance(card) == Decimal("0.00")


def test_a_load_above_the_cap_moves_nothing(card_factory, bearer_product):
    card = card_factory(bearer_product, balance="900.00")
    cap = card_cap(card)

    with pytest.raises(CardLimitExceeded) as refused, transaction.atomic():
        card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=Decimal("100.01"), cap=cap)

    assert refused.value.code == "limit_exceeded"
    assert "1000.00" in str(refused.value) and "prepaid card rules" in str(refused.value)
    assert balance(card) == Decimal("900.00")
    card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=Decimal("100.00"), cap=cap)
    assert balance(card) == Decimal("1000.00")


@pytest.mark.parametrize("amount", [Decimal("0"), 5, "5.00", 5.0])
def test_a_post_of_zero_or_not_a_decimal_is_a_programming_error(card_factory, stored_product, amount):
    card = card_factory(stored_product)

    with pytest.raises(ValueError):
        card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=amount)


def test_the_cap_is_the_lower_of_product_and_rules(card_factory, card_rules):
    product = CardProduct.objects.create(code="BIG", name="大额卡", kind=CardProduct.Kind.REGISTERED,
                                         max_balance=Decimal("8000.00"))
    card = card_factory(product)

    assert card_cap(card) == Decimal("5000.00")
    card_rules.registered_max_balance = Decimal("3000.00")
    card_rules.save()
    assert card_cap(card) == Decimal("3000.00")


@pytest.mark.parametrize(("value", "message"), [
    ("abc", "Write an amount"), ("1.001", "two decimals"), ("-1", "more than zero"), ("0", "more than zero"),
    ("NaN", "Write an amount"), ("1e20", "too large"),
])
def test_money_clean_names_the_field(value, message):
    with pytest.raises(CardInvalid) as refused:
        money_clean(value, field="amount")

    assert message in refused.value.fields["amount"][0]


def test_money_clean_gives_two_places():
    assert str(money_clean(" 12.5 ")) == "12.50"
    assert money_clean("0", allow_zero=True) == Decimal("0.00")


def test_card_get_finds_and_refuses(card_factory, stored_product):
    card = card_factory(stored_product)

    assert card_get(card.card_no).pk == card.pk
    with pytest.raises(CardNotFound):
        card_get("000000000")


# --- statuses -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "target"), [
    (Card.Status.CLOSED, Card.Status.ACTIVE), (Card.Status.INACTIVE, Card.Status.FROZEN),
    (Card.Status.FROZEN, Card.Status.EXPIRED), (Card.Status.EXPIRED, Card.Status.FROZEN),
])
def test_a_transition_the_table_does_not_allow_is_refused(card_factory, stored_product, start, target):
    card = card_factory(stored_product, status=start)

    with pytest.raises(CardStatusChangeRefused):
        card_status_change(card=card, status=target)

    assert Card.objects.get(pk=card.pk).status == start
    assert not card.events.exists()


def test_an_allowed_transition_writes_its_event(card_factory, stored_product, dept001, hq_admin):
    card = card_factory(stored_product)

    card_status_change(card=card, status=Card.Status.FROZEN, store=dept001, actor=hq_admin, note="checked",
                       freeze_reason=Card.FreezeReason.MANUAL)

    card.refresh_from_db()
    assert (card.status, card.freeze_reason) == (Card.Status.FROZEN, Card.FreezeReason.MANUAL)
    event = card.events.get()
    assert (event.kind, event.status_from, event.status_to, event.store, event.actor, event.note) == (
        CardEvent.Kind.STATUS, "active", "frozen", dept001, hq_admin, "checked")


def test_a_change_from_a_status_read_before_someone_elses_change_is_refused(card_factory, stored_product):
    card = card_factory(stored_product)
    Card.objects.filter(pk=card.pk).update(status=Card.Status.CLOSED)

    with pytest.raises(CardStatusChangeRefused):
        card_status_change(card=card, status=Card.Status.FROZEN)

    assert Card.objects.get(pk=card.pk).status == Card.Status.CLOSED


def test_unfreezing_clears_the_reason_and_the_wrong_pins(card_factory, stored_product):
    card = card_factory(stored_product, pin="123456")
    for _attempt in range(5):
        card_pin_failure_record(card_id=card.pk)

    card_status_change(card=card, status=Card.Status.ACTIVE)

    card.refresh_from_db()
    assert (card.status, card.freeze_reason, card.pin_failures) == (Card.Status.ACTIVE, "", 0)


def test_a_card_that_cannot_pay_is_refused(card_factory, bearer_product):
    past = timezone.now() - timedelta(minutes=1)
    with pytest.raises(CardExpired):
        card_for_use(card_factory(bearer_product, expires_at=past))
    with pytest.raises(CardExpired):
        card_for_use(card_factory(bearer_product, status=Card.Status.EXPIRED))
    for status in (Card.Status.FROZEN, Card.Status.INACTIVE, Card.Status.CLOSED):
        with pytest.raises(CardInactive):
            card_for_use(card_factory(bearer_product, status=status))
    card_for_use(card_factory(bearer_product, expires_at=timezone.now() + timedelta(days=1)))


# --- PINs -----------------------------------------------------------------------------------------------


def test_the_right_pin_passes_and_clears_earlier_failures(card_factory, stored_product):
    card = card_factory(stored_product, pin="123456")
    card_pin_failure_record(card_id=card.pk)
    card.refresh_from_db()

    card_pin_check(card, "123456")

    assert Card.objects.get(pk=card.pk).pin_failures == 0


@pytest.mark.parametrize(("pin", "message"), [(None, "needs its PIN"), ("", "needs its PIN"),
                                              ("12345", "six digits"), ("abcdef", "six digits")])
def test_a_missing_or_malformed_pin_is_a_validation_error(card_factory, stored_product, pin, message):
    card = card_factory(stored_product, pin="123456")

    with pytest.raises(CardInvalid) as refused:
        card_pin_check(card, pin)

    assert message in refused.value.fields["pin"][0]
    assert Card.objects.get(pk=card.pk).pin_failures == 0


def test_a_card_without_a_pin_needs_none(card_factory, stored_product):
    card_pin_check(card_factory(stored_product), None)


def test_a_wrong_pin_says_how_many_attempts_are_left(card_factory, stored_product):
    card = card_factory(stored_product, pin="123456")

    with pytest.raises(InvalidPin) as refused:
        card_pin_check(card, "654321")

    assert refused.value.code == "invalid_pin"
    assert refused.value.params["left"] == 4


def test_five_wrong_pins_freeze_the_card(card_factory, stored_product):
    card = card_factory(stored_product, balance="10.00", pin="123456")

    for attempt in range(5):
        card.refresh_from_db()
        with pytest.raises(InvalidPin) as refused:
            # A request's writes roll back; the failure is counted after (as the API does).
            with transaction.atomic():
                card_pin_check(card, "000000")
        refused.value.after_rollback()
        if attempt < 4:
            assert Card.objects.get(pk=card.pk).status == Card.Status.ACTIVE

    assert "now frozen" in str(refused.value)
    card.refresh_from_db()
    assert (card.status, card.freeze_reason, card.pin_failures) == (Card.Status.FROZEN, Card.FreezeReason.PIN, 5)
    assert card.events.filter(kind=CardEvent.Kind.PIN_LOCKED, status_to="frozen").count() == 1
    assert balance(card) == Decimal("10.00")


def test_the_attempts_follow_the_rules(card_factory, stored_product, card_rules):
    card_rules.pin_attempts = 2
    card_rules.save()
    card = card_factory(stored_product, pin="123456")

    card_pin_failure_record(card_id=card.pk)
    card_pin_failure_record(card_id=card.pk)

    assert Card.objects.get(pk=card.pk).status == Card.Status.FROZEN


def test_wrong_pins_on_a_frozen_card_do_not_change_its_status_again(card_factory, stored_product):
    card = card_factory(stored_product, pin="123456", status=Card.Status.FROZEN)

    for _attempt in range(6):
        card_pin_failure_record(card_id=card.pk)

    assert Card.objects.get(pk=card.pk).status == Card.Status.FROZEN
    assert not card.events.exists()
