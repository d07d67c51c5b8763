"""Card payments in the service layer: debit, refund, reverse and the discount hook."""

import re
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from cards import discounts
from cards.errors import (
    AlreadyReversed,
    CardExpired,
    CardInactive,
    CardInvalid,
    CardLimitExceeded,
    CardNotFound,
    CardOperationRefused,
    CardPaymentNotFound,
    CardTransactionNotFound,
    InsufficientBalance,
    InvalidPin,
    RefundExceedsPayment,
)
from cards.models import Card, CardEvent, CardLedgerEntry, CardTransaction
from cards.services.ledger import card_post
from cards.services.payments import (
    card_debit,
    card_debit_lines_clean,
    card_enquiry,
    card_refund,
    card_transaction_reverse,
)
from stores.models import Store

D = Decimal


@pytest.fixture
def dept(reference_stores) -> Store:
    return Store.objects.select_related("format").get(code="DEPT001")


@pytest.fixture
def super_(reference_stores) -> Store:
    return Store.objects.select_related("format").get(code="SUPER001")


@pytest.fixture
def card_with_200(stored_product, card_factory, dept):
    return card_factory(stored_product, balance="200.00", store=dept)


@pytest.fixture
def no_discounts():
    saved = discounts.registered()
    for name in saved:
        discounts.unregister(name)
    yield
    for name in list(discounts.registered()):
        discounts.unregister(name)
    for name, function in saved.items():
        discounts.register(name, function)


def balance(card) -> Decimal:
    return Card.objects.values_list("balance", flat=True).get(pk=card.pk)


def ledger_sum(card) -> Decimal:
    return CardLedgerEntry.objects.filter(card=card).aggregate(total=Sum("amount"))["total"] or D("0")


def pay(card, amount="50.00", store=None, **extra) -> CardTransaction:
    return card_debit(card_no=card.card_no, amount=D(amount), receipt_no=extra.pop("receipt_no", "R-1"),
                      store=store, **extra)


# --- debit -------------------------------------------------------------------------------------------------


def test_debit_takes_the_amount_off_with_one_transaction_and_one_ledger_row(card_with_200, super_):
    record = pay(card_with_200, "50.00", store=super_)

    assert balance(card_with_200) == D("150.00") == record.balance_after
    assert (record.kind, record.amount, record.discount, record.charged) == ("debit", D("50.00"), D("0.00"),
                                                                             D("50.00"))
    entry = CardLedgerEntry.objects.get(kind=CardLedgerEntry.Kind.DEBIT)
    assert (entry.amount, entry.balance_after, entry.transaction_id) == (D("-50.00"), D("150.00"), record.pk)
    assert entry.store == super_ and entry.legal_entity_id == super_.format.legal_entity_id
    assert record.business_date == timezone.localdate()
    assert ledger_sum(card_with_200) == D("150.00")


def test_transaction_ids_are_short_random_and_unique(card_with_200, dept):
    ids = [pay(card_with_200, "1.00", store=dept).transaction_id for _ in range(5)]

    assert len(set(ids)) == 5
    assert all(re.fullmatch(r"[A-Z2-7]{16}", value) for value in ids)
    assert not any(value.isdigit() for value in ids)  # never confused with a sequential or card number


def test_debit_larger_than_balance_moves_nothing(card_with_200, dept):
    with pytest.raises(InsufficientBalance) as error:
        pay(card_with_200, "200.01", store=dept)

    assert "200.00" in str(error.value) and "200.01" in str(error.value)
    assert balance(card_with_200) == D("200.00")
    assert not CardTransaction.objects.exists()
    assert CardLedgerEntry.objects.filter(kind="debit").count() == 0


def test_debit_of_the_whole_balance_leaves_zero(card_with_200, dept):
    assert pay(card_with_200, "200.00", store=dept).balance_after == D("0.00")
    assert balance(card_with_200) == D("0.00")


@pytest.mark.parametrize("status", [Card.Status.INACTIVE, Card.Status.FROZEN, Card.Status.CLOSED])
def test_a_card_not_active_cannot_pay(stored_product, card_factory, dept, status):
    card = card_factory(stored_product, balance="100.00", status=status)

    with pytest.raises(CardInactive):
        pay(card, "10.00", store=dept)
    assert balance(card) == D("100.00")


def test_a_card_past_its_expiry_cannot_pay(bearer_product, card_factory, dept):
    card = card_factory(bearer_product, balance="100.00", expires_at=timezone.now() - timedelta(days=1))

    with pytest.raises(CardExpired):
        pay(card, "10.00", store=dept)
    assert card_enquiry(card.card_no).balance == D("100.00")


def test_unknown_and_malformed_card_numbers(dept, card_rules):
    with pytest.raises(CardNotFound):
        card_debit(card_no="310000000000001", amount=D("1.00"), receipt_no="R", store=dept)
    with pytest.raises(CardInvalid) as error:
        card_debit(card_no="12ab", amount=D("1.00"), receipt_no="R", store=dept)
    assert "card_no" in error.value.fields


@pytest.mark.parametrize(("field", "changes"), [
    ("amount", {"amount": D("0")}),
    ("amount", {"amount": D("1.005")}),
    ("receipt_no", {"receipt_no": " "}),
    ("lines", {"lines": [{"sku": "", "amount": "1.00", "quantity": "1"}]}),
    ("lines", {"lines": "not a list"}),
])
def test_bad_input_is_refused_naming_the_field(card_with_200, dept, field, changes):
    arguments = {"card_no": card_with_200.card_no, "amount": D("10.00"), "receipt_no": "R-1", "store": dept,
                 **changes}
    with pytest.raises(CardInvalid) as error:
        card_debit(**arguments)
    assert field in error.value.fields
    assert balance(card_with_200) == D("200.00")


def test_lines_are_cleaned_and_each_bad_one_named():
    lines, problems = card_debit_lines_clean([
        {"sku": " 6900000000001 ", "amount": "12.5", "quantity": "2"},
        {"sku": "X", "amount": 1.5, "quantity": "1"},
        {"sku": "Y", "amount": "1.00", "quantity": "0"},
    ])
    assert problems[0].startswith("Line 2:") and problems[1].startswith("Line 3:")
    lines, problems = card_debit_lines_clean([{"sku": "6900000000001", "amount": "12.5", "quantity": "2.500"}])
    assert problems == [] and lines == [{"sku": "6900000000001", "amount": "12.50", "quantity": "2.5"}]


# --- PINs --------------------------------------------------------------------------------------------------


@pytest.fixture
def card_with_pin(stored_product, card_factory, dept):
    return card_factory(stored_product, balance="100.00", pin="123456", store=dept)


def wrong_pin(card, store):
    """A wrong PIN as the API handles it: the request rolls back, then the failure is counted."""
    with pytest.raises(InvalidPin) as error, transaction.atomic():
        pay(card, "10.00", store=store, pin="000000")
    error.value.after_rollback()
    return error.value


def test_the_right_pin_pays_and_clears_earlier_failures(card_with_pin, dept):
    wrong_pin(card_with_pin, dept)
    record = pay(card_with_pin, "10.00", store=dept, pin="123456")

    assert record.balance_after == D("90.00")
    assert Card.objects.get(pk=card_with_pin.pk).pin_failures == 0


def test_a_missing_pin_is_a_validation_error_and_not_counted(card_with_pin, dept):
    with pytest.raises(CardInvalid) as error:
        pay(card_with_pin, "10.00", store=dept)
    assert "pin" in error.value.fields
    assert Card.objects.get(pk=card_with_pin.pk).pin_failures == 0


def test_five_wrong_pins_freeze_the_card(card_with_pin, dept):
    errors = [wrong_pin(card_with_pin, dept) for _ in range(5)]

    assert "4 attempts left" in str(errors[0])
    assert "frozen" in str(errors[4])
    card = Card.objects.get(pk=card_with_pin.pk)
    assert (card.status, card.freeze_reason, card.pin_failures) == ("frozen", "pin", 5)
    assert CardEvent.objects.filter(card=card, kind=CardEvent.Kind.PIN_LOCKED).count() == 1
    with pytest.raises(CardInactive):
        pay(card, "10.00", store=dept, pin="123456")
    assert balance(card) == D("100.00")


# --- discounts ---------------------------------------------------------------------------------------------


def test_without_a_registered_discount_nothing_is_taken_off(card_with_200, dept, no_discounts):
    record = pay(card_with_200, "10.00", store=dept, lines=[{"sku": "6900000000001", "amount": "10.00",
                                                             "quantity": 1}])
    assert (record.discount, record.charged) == (D("0.00"), D("10.00"))
    assert record.lines == [{"sku": "6900000000001", "amount": "10.00", "quantity": "1"}]


def test_a_registered_discount_is_taken_off_the_charge(card_with_200, dept, no_discounts):
    seen = {}

    def five_percent(*, card, store, lines, amount):
        seen.update(card=card.card_no, store=store.code, lines=lines, amount=amount)
        return sum((D(line["amount"]) for line in lines if line["sku"].startswith("69")), D("0")) * D("0.05")

    discounts.register("test_brand", lambda **kw: five_percent(**kw).quantize(D("0.01")))
    record = pay(card_with_200, "100.00", store=dept, lines=[
        {"sku": "6900000000001", "amount": "60.00", "quantity": "1"},
        {"sku": "1234", "amount": "40.00", "quantity": "1"},
    ])

    assert (record.amount, record.discount, record.charged) == (D("100.00"), D("3.00"), D("97.00"))
    assert balance(card_with_200) == D("103.00")
    assert CardLedgerEntry.objects.get(kind="debit").amount == D("-97.00")
    assert seen["card"] == card_with_200.card_no and seen["amount"] == D("100.00")


def test_discounts_never_add_up_to_more_than_the_amount(no_discounts):
    discounts.register("a", lambda **kw: D("8.00"))
    discounts.register("b", lambda **kw: D("8.00"))
    assert discounts.discount_for(card=None, store=None, lines=[], amount=D("10.00")).amount == D("10.00")


def test_a_discount_covering_everything_charges_nothing_and_is_refused(card_with_200, dept, no_discounts):
    discounts.register("all", lambda **kw: kw["amount"])
    with pytest.raises(CardInvalid):
        pay(card_with_200, "10.00", store=dept)
    assert balance(card_with_200) == D("200.00")


def test_a_broken_discount_function_is_a_programming_error(no_discounts):
    discounts.register("float", lambda **kw: 0.5)
    with pytest.raises(ValueError, match="float"):
        discounts.discount_for(card=None, store=None, lines=[], amount=D("10.00"))


# --- refunds -----------------------------------------------------------------------------------------------


def refund(card, original, amount, store, receipt_no="RF-1"):
    return card_refund(card_no=card.card_no, amount=D(amount), receipt_no=receipt_no,
                       original_transaction_id=original.transaction_id, store=store)


def test_a_refund_goes_back_onto_the_card_and_is_counted_on_the_payment(card_with_200, super_):
    payment = pay(card_with_200, "80.00", store=super_)
    record = refund(card_with_200, payment, "30.00", super_)

    assert record.kind == "refund" and record.original == payment and record.balance_after == D("150.00")
    assert balance(card_with_200) == D("150.00") == ledger_sum(card_with_200)
    assert CardTransaction.objects.get(pk=payment.pk).refunded == D("30.00")
    entry = CardLedgerEntry.objects.get(kind="refund")
    assert (entry.amount, entry.transaction_id) == (D("30.00"), record.pk)


def test_a_refund_at_another_store_of_the_group_is_accepted(card_with_200, dept, super_):
    payment = pay(card_with_200, "80.00", store=dept)
    record = refund(card_with_200, payment, "80.00", super_)

    assert record.store == super_
    assert CardLedgerEntry.objects.get(kind="refund").legal_entity_id == super_.format.legal_entity_id


def test_refunds_never_add_up_to_more_than_the_payment_charged(card_with_200, dept):
    payment = pay(card_with_200, "80.00", store=dept)
    refund(card_with_200, payment, "50.00", dept)

    with pytest.raises(RefundExceedsPayment) as error:
        refund(card_with_200, payment, "30.01", dept, receipt_no="RF-2")

    assert "at most 30.00" in str(error.value)
    assert error.value.code == "limit_exceeded"
    assert refund(card_with_200, payment, "30.00", dept, receipt_no="RF-3").balance_after == D("200.00")
    assert CardTransaction.objects.get(pk=payment.pk).refunded == D("80.00")


def test_many_refunds_in_cents_add_up_exactly_to_the_whole_payment(card_with_200, dept):
    # Totals are computed as decimals: on SQLite six refunds of 4.99 and one of 1.91 must reach 31.85 exactly.
    payment = pay(card_with_200, "31.85", store=dept)
    for number in range(6):
        refund(card_with_200, payment, "4.99", dept, receipt_no=f"RF-{number}")
    last = refund(card_with_200, payment, "1.91", dept, receipt_no="RF-last")

    assert CardTransaction.objects.get(pk=payment.pk).refunded == D("31.85")
    assert last.balance_after == D("200.00") == balance(card_with_200)
    card_transaction_reverse(transaction_id=last.transaction_id, store=dept)
    assert CardTransaction.objects.get(pk=payment.pk).refunded == D("29.94")


def test_a_refund_is_of_what_was_charged_not_of_the_discount(card_with_200, dept, no_discounts):
    discounts.register("ten", lambda **kw: D("10.00"))
    payment = pay(card_with_200, "100.00", store=dept)
    with pytest.raises(RefundExceedsPayment):
        refund(card_with_200, payment, "100.00", dept)
    assert refund(card_with_200, payment, "90.00", dept).balance_after == D("200.00")


def test_a_refund_must_name_a_payment_of_the_same_card(stored_product, card_factory, card_with_200, dept):
    other = card_factory(stored_product, balance="50.00")
    payment = pay(other, "10.00", store=dept)

    with pytest.raises(CardPaymentNotFound):
        refund(card_with_200, payment, "5.00", dept)
    first_refund = refund(other, payment, "5.00", dept)
    with pytest.raises(CardPaymentNotFound):  # a refund is not a payment
        refund(other, first_refund, "1.00", dept, receipt_no="RF-2")


def test_a_refund_never_takes_the_card_above_its_cap(stored_product, card_factory, dept):
    card = card_factory(stored_product, balance="5000.00")
    payment = pay(card, "100.00", store=dept)
    # topped up again meanwhile, to its limit
    card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=D("100.00"), store=dept)

    with pytest.raises(CardLimitExceeded) as error:
        refund(card, payment, "0.01", dept)
    assert "5000.00" in str(error.value)
    assert balance(card) == D("5000.00")


def test_a_refund_onto_a_closed_card_is_refused(stored_product, card_factory, dept):
    card = card_factory(stored_product, balance="100.00")
    payment = pay(card, "100.00", store=dept)
    Card.objects.filter(pk=card.pk).update(status=Card.Status.CLOSED)

    with pytest.raises(CardInactive):
        refund(card, payment, "10.00", dept)


def test_a_refund_onto_a_frozen_card_keeps_the_money_for_its_holder(card_with_200, dept):
    payment = pay(card_with_200, "100.00", store=dept)
    Card.objects.filter(pk=card_with_200.pk).update(status=Card.Status.FROZEN)

    assert refund(card_with_200, payment, "100.00", dept).balance_after == D("200.00")


# --- reverse -----------------------------------------------------------------------------------------------


def test_reversing_a_payment_puts_the_money_back(card_with_200, dept):
    payment = pay(card_with_200, "80.00", store=dept)
    reversal = card_transaction_reverse(transaction_id=payment.transaction_id, store=dept)

    assert (reversal.kind, reversal.original, reversal.amount, reversal.balance_after) == (
        "reverse", payment, D("80.00"), D("200.00"))
    assert CardTransaction.objects.get(pk=payment.pk).reversed_at is not None
    assert balance(card_with_200) == D("200.00") == ledger_sum(card_with_200)
    assert CardLedgerEntry.objects.get(kind="reverse").amount == D("80.00")


def test_a_second_reverse_is_already_reversed(card_with_200, dept):
    payment = pay(card_with_200, "80.00", store=dept)
    card_transaction_reverse(transaction_id=payment.transaction_id, store=dept)

    with pytest.raises(AlreadyReversed):
        card_transaction_reverse(transaction_id=payment.transaction_id, store=dept)
    assert balance(card_with_200) == D("200.00")
    assert CardTransaction.objects.filter(kind="reverse").count() == 1


def test_a_reversed_payment_cannot_be_refunded(card_with_200, dept):
    payment = pay(card_with_200, "80.00", store=dept)
    card_transaction_reverse(transaction_id=payment.transaction_id, store=dept)

    with pytest.raises(AlreadyReversed):
        refund(card_with_200, payment, "10.00", dept)


def test_reversing_a_refund_takes_the_money_off_again(card_with_200, dept):
    payment = pay(card_with_200, "80.00", store=dept)
    first = refund(card_with_200, payment, "30.00", dept)
    reversal = card_transaction_reverse(transaction_id=first.transaction_id, store=dept)

    assert reversal.balance_after == D("120.00") == balance(card_with_200)
    assert CardTransaction.objects.get(pk=payment.pk).refunded == D("0.00")
    assert refund(card_with_200, payment, "80.00", dept, receipt_no="RF-2").balance_after == D("200.00")


def test_a_refund_whose_money_is_spent_cannot_be_reversed(card_with_200, dept):
    payment = pay(card_with_200, "80.00", store=dept)
    first = refund(card_with_200, payment, "80.00", dept)
    pay(card_with_200, "200.00", store=dept, receipt_no="R-2")

    with pytest.raises(InsufficientBalance):
        card_transaction_reverse(transaction_id=first.transaction_id, store=dept)
    assert CardTransaction.objects.get(pk=first.pk).reversed_at is None


def test_a_payment_with_refunds_cannot_be_reversed(card_with_200, dept):
    payment = pay(card_with_200, "80.00", store=dept)
    refund(card_with_200, payment, "10.00", dept)

    with pytest.raises(CardOperationRefused, match="already refunded"):
        card_transaction_reverse(transaction_id=payment.transaction_id, store=dept)


def test_only_the_same_store_can_reverse(card_with_200, dept, super_):
    payment = pay(card_with_200, "80.00", store=dept)

    with pytest.raises(CardTransactionNotFound):
        card_transaction_reverse(transaction_id=payment.transaction_id, store=super_)
    assert balance(card_with_200) == D("120.00")


def test_only_the_same_business_day_can_reverse(card_with_200, dept):
    payment = pay(card_with_200, "80.00", store=dept)
    CardTransaction.objects.filter(pk=payment.pk).update(business_date=timezone.localdate() - timedelta(days=1))

    with pytest.raises(CardOperationRefused, match="refund it instead"):
        card_transaction_reverse(transaction_id=payment.transaction_id, store=dept)


def test_the_business_day_is_the_shanghai_date(card_with_200, dept, settings):
    # 23:30 UTC is already the next morning in Shanghai.
    moment = timezone.now().replace(hour=23, minute=30)
    with mock.patch("cards.services.payments.timezone.now", return_value=moment):
        payment = pay(card_with_200, "1.00", store=dept)
    assert payment.business_date == (moment + timedelta(hours=8)).date()


def test_a_reversal_cannot_be_reversed(card_with_200, dept):
    payment = pay(card_with_200, "80.00", store=dept)
    reversal = card_transaction_reverse(transaction_id=payment.transaction_id, store=dept)

    with pytest.raises(CardOperationRefused):
        card_transaction_reverse(transaction_id=reversal.transaction_id, store=dept)
