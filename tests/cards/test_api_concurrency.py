"""Card payments under concurrency on PostgreSQL: real threads, each with its own connection, through the API."""

import json
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db.models import Sum
from django.test import Client

from cards.models import Card, CardLedgerEntry, CardTransaction
from core.models import IdempotencyRecord
from stores.services import terminal_create
from tests.membership.conftest import concurrently

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def till(reference_stores):
    cache.clear()
    _terminal, key = terminal_create(store_code="SUPER001", name="S1")
    yield key
    cache.clear()


def send(key: str, url: str, body: dict, idempotency_key: str):
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post(
        url, data=json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=idempotency_key)
    return response.status_code, response.json()


def codes(results) -> dict:
    summary: dict = {}
    for status, body in results:
        name = str(status) if status < 400 else body["error"]["code"]
        summary[name] = summary.get(name, 0) + 1
    return summary


def balance(card) -> Decimal:
    return Card.objects.values_list("balance", flat=True).get(pk=card.pk)


def ledger_sum(card) -> Decimal:
    return CardLedgerEntry.objects.filter(card=card).aggregate(total=Sum("amount"))["total"]


def test_fifty_concurrent_debits_of_one_yuan_on_twenty_take_exactly_twenty(till, stored_product, card_factory,
                                                                           ledgers_balanced):
    # given: a card holding 20.00
    card = card_factory(stored_product, balance="20.00")
    # when: 50 tills debit 1.00 at the same moment
    results = concurrently(50, lambda index: send(
        till, f"/api/v1/cards/{card.card_no}/debit", {"amount": "1.00", "receipt_no": f"R-{index}"}, f"k-{index}"))
    # then: exactly 20 went through, the others were refused whole, nothing below zero
    assert codes(results) == {"201": 20, "insufficient_balance": 30}
    assert sorted(Decimal(body["balance"]) for status, body in results if status == 201) == [
        Decimal(value) for value in range(20)]
    assert balance(card) == Decimal("0.00") == ledger_sum(card)
    assert CardTransaction.objects.filter(kind="debit").count() == 20
    assert CardLedgerEntry.objects.filter(kind="debit").count() == 20
    ledgers_balanced()


def test_twenty_concurrent_replays_of_one_debit_debit_once(till, stored_product, card_factory, ledgers_balanced):
    card = card_factory(stored_product, balance="100.00")

    results = concurrently(20, lambda index: send(
        till, f"/api/v1/cards/{card.card_no}/debit", {"amount": "10.00", "receipt_no": "R-1"}, "the-same-key"))

    assert codes(results) == {"201": 20}
    assert len({json.dumps(body, sort_keys=True) for _status, body in results}) == 1
    assert balance(card) == Decimal("90.00")
    assert CardTransaction.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1
    ledgers_balanced()


def test_a_concurrent_double_reverse_reverses_once(till, stored_product, card_factory, ledgers_balanced):
    card = card_factory(stored_product, balance="100.00")
    status, paid = send(till, f"/api/v1/cards/{card.card_no}/debit", {"amount": "40.00", "receipt_no": "R-1"}, "p")
    assert status == 201

    results = concurrently(2, lambda index: send(
        till, f"/api/v1/transactions/{paid['transaction_id']}/reverse", {}, f"reverse-{index}"))

    assert codes(results) == {"201": 1, "already_reversed": 1}
    assert balance(card) == Decimal("100.00") == ledger_sum(card)
    assert CardTransaction.objects.filter(kind="reverse").count() == 1
    ledgers_balanced()


def test_concurrent_refunds_never_exceed_the_payment(till, stored_product, card_factory, ledgers_balanced):
    card = card_factory(stored_product, balance="100.00")
    status, paid = send(till, f"/api/v1/cards/{card.card_no}/debit", {"amount": "50.00", "receipt_no": "R-1"}, "p")
    assert status == 201

    results = concurrently(10, lambda index: send(
        till, f"/api/v1/cards/{card.card_no}/refund",
        {"amount": "10.00", "receipt_no": f"RF-{index}", "original_transaction_id": paid["transaction_id"]},
        f"refund-{index}"))

    assert codes(results) == {"201": 5, "limit_exceeded": 5}
    assert CardTransaction.objects.get(transaction_id=paid["transaction_id"]).refunded == Decimal("50.00")
    assert balance(card) == Decimal("100.00")
    ledgers_balanced()


def test_a_refund_racing_the_reverse_of_its_payment_lets_only_one_through(till, stored_product, card_factory,
                                                                          ledgers_balanced):
    card = card_factory(stored_product, balance="100.00")
    status, paid = send(till, f"/api/v1/cards/{card.card_no}/debit", {"amount": "50.00", "receipt_no": "R-1"}, "p")
    assert status == 201
    refund_body = {"amount": "50.00", "receipt_no": "RF-1", "original_transaction_id": paid["transaction_id"]}

    results = concurrently(2, lambda index: send(
        till, f"/api/v1/cards/{card.card_no}/refund", refund_body, "rf") if index == 0 else send(
        till, f"/api/v1/transactions/{paid['transaction_id']}/reverse", {}, "rv"))

    assert sorted(status for status, _body in results) == [201, 409]
    assert balance(card) == Decimal("100.00") == ledger_sum(card)
    ledgers_balanced()
