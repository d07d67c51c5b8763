"""Refunds and reverses on the POS hot path: on PostgreSQL a find-and-lock and one write statement, with the rules,
rows, events and answers of the row-by-row path (which SQLite keeps)."""

import json
import threading
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer

from cards.api import PaymentOutputSerializer, ReverseOutputSerializer
from cards.errors import AlreadyReversed, CardLimitExceeded, InsufficientBalance
from cards.models import Card, CardLedgerEntry, CardTransaction
from cards.services import payments
from cards.services.ledger import card_post
from core.pii import pii_encrypt
from integrations import tasks
from integrations.events import subscriptions_cache_clear
from integrations.models import Event, EventType, Subscription
from stores.models import Store
from stores.services import terminal_create

D = Decimal


@pytest.fixture
def dept(reference_stores) -> Store:
    return Store.objects.select_related("format").get(code="DEPT001")


@pytest.fixture
def card(stored_product, card_factory, dept) -> Card:
    return card_factory(stored_product, balance="200.00", store=dept)


def pay(card, amount, store, receipt_no="R-1") -> CardTransaction:
    return payments.card_debit(card_no=card.card_no, amount=D(amount), receipt_no=receipt_no, store=store)


def refund(card, payment, amount, store, receipt_no="RF-1") -> CardTransaction:
    return payments.card_refund(card_no=card.card_no, amount=D(amount), receipt_no=receipt_no,
                                original_transaction_id=payment.transaction_id, store=store)


def balance(card) -> Decimal:
    return Card.objects.values_list("balance", flat=True).get(pk=card.pk)


def written(card) -> tuple:
    """What a refused write must leave as it was: the card's balance, its transactions and its ledger."""
    return (
        balance(card),
        sorted(CardTransaction.objects.filter(card=card).values_list("pk", "refunded", "reversed_at")),
        CardLedgerEntry.objects.filter(card=card).count(),
    )


# --- statements on PostgreSQL --------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_refund_is_one_locking_read_and_one_write(card, dept):
    payment = pay(card, "80.00", dept)

    with CaptureQueriesContext(connection) as queries:
        record = refund(card, payment, "30.00", dept)

    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 2, statements
    assert statements[0].startswith("SELECT") and statements[0].endswith("FOR NO KEY UPDATE OF t, c")
    assert statements[1].startswith("WITH moved AS (UPDATE cards_card")
    assert record.balance_after == D("150.00") == balance(card)
    assert CardTransaction.objects.get(pk=payment.pk).refunded == D("30.00")
    entry = CardLedgerEntry.objects.get(kind="refund")
    assert (entry.amount, entry.balance_after, entry.transaction_id, entry.store_id, entry.legal_entity_id) == (
        D("30.00"), D("150.00"), record.pk, dept.pk, dept.format.legal_entity_id)
    assert (entry.operator_id, entry.reason, entry.cause_type_id, entry.cause_id) == (None, "", None, "")
    saved = CardTransaction.objects.get(pk=record.pk)
    assert (saved.kind, saved.amount, saved.discount, saved.charged, saved.refunded, saved.lines) == (
        "refund", D("30.00"), D("0.00"), D("30.00"), D("0.00"), [])
    assert (saved.original_id, saved.reversed_at, saved.created_at, saved.receipt_no) == (
        payment.pk, None, record.created_at, "RF-1")


@pytest.mark.postgres
def test_a_reverse_of_a_payment_is_one_locking_read_and_one_write_before_its_listeners(card, dept):
    payment = pay(card, "80.00", dept)

    with CaptureQueriesContext(connection) as queries:
        reversal = payments.card_transaction_reverse(transaction_id=payment.transaction_id, store=dept)

    statements = [query["sql"] for query in queries.captured_queries]
    assert statements[0].startswith("SELECT") and statements[0].endswith("FOR NO KEY UPDATE OF t")
    assert statements[1].startswith("WITH moved AS (UPDATE cards_card")
    # what follows is the coupons' listener (campaigns), which reads no card table
    assert not [sql for sql in statements[2:] if "cards_" in sql], statements
    assert reversal.balance_after == D("200.00") == balance(card)
    assert CardTransaction.objects.get(pk=payment.pk).reversed_at == reversal.created_at


@pytest.mark.postgres
def test_a_reverse_of_a_refund_locks_both_transactions_and_writes_once(card, dept):
    payment = pay(card, "80.00", dept)
    first = refund(card, payment, "30.00", dept)

    with CaptureQueriesContext(connection) as queries:
        reversal = payments.card_transaction_reverse(transaction_id=first.transaction_id, store=dept)

    writes = [query["sql"] for query in queries.captured_queries if not query["sql"].startswith("SELECT")]
    assert len(writes) == 1 and writes[0].startswith("WITH moved AS"), writes
    assert reversal.balance_after == D("120.00") == balance(card)
    assert CardTransaction.objects.get(pk=payment.pk).refunded == D("0.00")
    assert CardTransaction.objects.get(pk=first.pk).reversed_at == reversal.created_at
    assert CardLedgerEntry.objects.get(kind="reverse").amount == D("-30.00")


@pytest.mark.postgres
def test_a_write_whose_balance_move_is_refused_writes_nothing(card, dept):
    payment = pay(card, "80.00", dept)
    record = CardTransaction(
        kind=CardTransaction.Kind.REFUND, card=card, amount=D("30.00"), charged=D("30.00"), original=payment,
        balance_after=D("150.00"), store=dept, receipt_no="RF-1", business_date=payment.business_date,
        created_at=payment.created_at,
    )
    before = written(card)

    with pytest.raises(CardLimitExceeded) as error:
        payments._refund_write(record, moved=D("30.00"), kind=CardLedgerEntry.Kind.REFUND, cap=D("149.99"),
                               legal_entity_id=None, undone=(("refunded", payment.pk, D("30.00")),))

    assert "149.99" in str(error.value) and "120.00" in str(error.value)
    assert written(card) == before
    assert record.pk is None


# --- both databases ----------------------------------------------------------------------------------------


def test_a_reverse_of_a_refund_whose_money_is_spent_writes_nothing(card, dept):
    payment = pay(card, "80.00", dept)
    first = refund(card, payment, "80.00", dept)
    pay(card, "190.00", dept, receipt_no="R-2")
    before = written(card)

    with pytest.raises(InsufficientBalance) as error:
        payments.card_transaction_reverse(transaction_id=first.transaction_id, store=dept)

    assert "10.00" in str(error.value) and "80.00" in str(error.value)
    assert written(card) == before


def test_a_public_id_already_taken_is_drawn_again(card, dept):
    payment = pay(card, "80.00", dept)
    taken = payment.transaction_id

    with mock.patch.object(payments, "_new_transaction_id", side_effect=[taken, "FRESHREFUND23456"]):
        record = refund(card, payment, "30.00", dept)

    assert record.transaction_id == "FRESHREFUND23456"
    assert balance(card) == D("150.00") == record.balance_after
    assert CardTransaction.objects.get(pk=payment.pk).refunded == D("30.00")
    assert CardLedgerEntry.objects.filter(kind="refund").count() == 1


def test_a_refund_and_its_reverse_tell_their_webhook_events_as_card_post_does(card, dept, monkeypatch):
    monkeypatch.setattr(tasks.deliveries_send, "delay", lambda *args: None)
    subscriptions_cache_clear()
    Subscription.objects.create(name="集团APP", url="http://127.0.0.1:9/none", secret_sealed=pii_encrypt("s" * 32),
                                event_types=[EventType.CARD_REFUNDED, EventType.CARD_REVERSED])
    subscriptions_cache_clear()
    try:
        payment = pay(card, "80.00", dept)
        first = refund(card, payment, "30.00", dept)
        reversal = payments.card_transaction_reverse(transaction_id=first.transaction_id, store=dept)
        events = list(Event.objects.order_by("pk").values_list("type", "subject", "data", "created_at"))
    finally:
        subscriptions_cache_clear()

    entries = {entry.kind: entry for entry in CardLedgerEntry.objects.filter(kind__in=["refund", "reverse"])}
    assert [(kind, subject) for kind, subject, _data, _at in events] == [
        ("card.refunded", f"card:{card.card_no}"), ("card.reversed", f"card:{card.card_no}")]
    for (_type, _subject, data, at), record, entry, amount, after in zip(
        events, (first, reversal), (entries["refund"], entries["reverse"]), ("30.00", "-30.00"),
        ("150.00", "120.00"), strict=True,
    ):
        assert at == record.created_at == entry.created_at
        assert data == {
            "card_no": card.card_no, "entry_id": entry.pk, "transaction_id": record.transaction_id,
            "amount": amount, "balance": after, "store": "DEPT001", "receipt_no": "RF-1",
            "created_at": data["created_at"],
        }
        assert data["created_at"].endswith("+08:00")


# --- the answers ---------------------------------------------------------------------------------------------


@pytest.fixture
def till(dept):
    _terminal, key = terminal_create(store_code="DEPT001", name="D1")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def post(client, url, body, key):
    return client.post(url, data=json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


def test_refund_and_reverse_answers_are_the_output_serializers_byte_for_byte(till, stored_product, card_factory,
                                                                           dept):
    renderer = JSONRenderer()
    # a whole balance paid, then refunded in parts (the last of which is reversed)
    plans = {"200.00": ("0.01", "199.99"), "4999.99": ("4000.00", "999.99"), "0.01": ("0.01",)}
    cards = [card_factory(stored_product, balance=amount, store=dept) for amount in plans]
    answers = []
    for number, (card, (paid_amount, parts)) in enumerate(zip(cards, plans.items(), strict=True)):
        paid = post(till, f"/api/v1/cards/{card.card_no}/debit",
                    {"amount": paid_amount, "receipt_no": f"R-{number}"}, f"pay-{number}").json()
        for part, amount in enumerate(parts):
            response = post(till, f"/api/v1/cards/{card.card_no}/refund",
                            {"amount": amount, "receipt_no": f"RF-{number}-{part}",
                             "original_transaction_id": paid["transaction_id"]}, f"refund-{number}-{part}")
            assert response.status_code == 201, response.content
            answers.append(("refund", response))
        response = post(till, f"/api/v1/transactions/{response.json()['transaction_id']}/reverse", {},
                        f"reverse-{number}")
        assert response.status_code == 201, response.content
        answers.append(("reverse", response))
    again = pay(cards[1], "5.00", dept, receipt_no="R-last")
    response = post(till, f"/api/v1/transactions/{again.transaction_id}/reverse", {}, "reverse-payment")
    answers.append(("reverse", response))

    for kind, response in answers:
        saved = CardTransaction.objects.select_related("card", "original").get(
            transaction_id=response.json()["transaction_id"])
        serializer = PaymentOutputSerializer if kind == "refund" else ReverseOutputSerializer
        assert response.content == renderer.render(serializer(saved).data)


# --- PostgreSQL: a reverse waits for a payment in flight, as it did under the card's explicit lock ----------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_reverse_refused_by_the_balance_waits_for_a_load_in_flight(stored_product, card_factory,
                                                                     reference_stores, ledgers_balanced):
    dept = Store.objects.select_related("format").get(code="DEPT001")
    card = card_factory(stored_product, balance="100.00", store=dept)
    payment = pay(card, "50.00", dept)
    first = refund(card, payment, "50.00", dept)
    pay(card, "80.00", dept, receipt_no="R-2")  # 20.00 left: the refund's 50.00 is spent
    locked, release = threading.Event(), threading.Event()

    def load_in_flight():
        try:
            with transaction.atomic():
                card_post(card=Card.objects.get(pk=card.pk), kind=CardLedgerEntry.Kind.LOAD, amount=D("100.00"),
                          store=dept)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    loader = threading.Thread(target=load_in_flight)
    loader.start()
    assert locked.wait(10)
    threading.Timer(0.5, release.set).start()
    try:
        reversal = payments.card_transaction_reverse(transaction_id=first.transaction_id, store=dept)
    finally:
        release.set()
        loader.join(10)

    assert reversal.balance_after == D("70.00") == balance(card)
    ledgers_balanced()


def test_a_reverse_losing_the_race_to_the_one_reversal_index_is_already_reversed(card, dept):
    payment = pay(card, "80.00", dept)
    # a reversal written by a concurrent request that this one did not see
    CardTransaction.objects.create(
        transaction_id="RACEDREVERSAL234", kind=CardTransaction.Kind.REVERSE, card=card, amount=D("80.00"),
        charged=D("80.00"), balance_after=D("200.00"), original=payment, store=dept, receipt_no="R-1",
        business_date=payment.business_date,
    )

    with pytest.raises(AlreadyReversed), transaction.atomic():
        payments.card_transaction_reverse(transaction_id=payment.transaction_id, store=dept)

    assert balance(card) == D("120.00")
    assert CardLedgerEntry.objects.filter(kind="reverse").count() == 0
