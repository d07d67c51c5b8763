"""A card debit's short way (PostgreSQL: one statement writes the balance, the payment and its ledger row) and
its answer written without a serializer: the same rows, errors and JSON as the full path."""

import itertools
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cards import discounts
from cards.api import PaymentOutputSerializer, payment_answer
from cards.models import Brand, Card, CardLedgerEntry, CardTransaction
from cards.services.payments import card_debit, card_refund
from config import wsgi
from core.pii import pii_encrypt
from integrations import tasks
from integrations.events import subscriptions_cache_clear
from integrations.models import Event, EventType, Subscription
from stores.services import terminal_create
from tests.core.test_api_handler import wsgi_call

D = Decimal
_keys = itertools.count(1)


@pytest.fixture
def till(dept001):
    terminal, key = terminal_create(store_code="DEPT001", name="HOT1")
    return terminal, Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _debit(client, card, amount="12.30", **extra):
    body = {"amount": amount, "receipt_no": "HOT-1", **extra}
    return client.post(f"/api/v1/cards/{card.card_no}/debit", data=json.dumps(body), content_type="application/json",
                       HTTP_IDEMPOTENCY_KEY=f"hot-{next(_keys)}")


def test_the_answer_written_out_equals_the_serializers(stored_product, card_factory, dept001):
    card = card_factory(stored_product, balance="100.00", store=dept001)
    paid = card_debit(card_no=card.card_no, amount="12.34", receipt_no="A-1", store=dept001,
                      lines=[{"sku": "690001", "amount": "12.34", "quantity": 1}])
    refunded = card_refund(card_no=card.card_no, amount="2.00", receipt_no="A-2",
                           original_transaction_id=paid.transaction_id, store=dept001)
    for record in (paid, CardTransaction.objects.select_related("card").get(pk=paid.pk), refunded):
        assert json.dumps(payment_answer(record)) == json.dumps(PaymentOutputSerializer(record).data)


@pytest.mark.postgres
def test_a_plain_debit_is_one_statement_with_every_row_the_full_path_writes(reference_stores, stored_product,
                                                                         card_factory, dept001):
    card = card_factory(stored_product, balance="100.00", store=dept001)
    terminal, _key = terminal_create(store_code="DEPT001", name="HOT2")
    lines = [{"sku": "690001", "amount": "12.30", "quantity": "1.5"}]

    with CaptureQueriesContext(connection) as queries:
        paid = card_debit(card_no=card.card_no, amount="12.30", receipt_no="ONE-1", store=dept001,
                          terminal=terminal, lines=lines)

    statements = [query["sql"] for query in queries.captured_queries if query["sql"] not in ("BEGIN", "COMMIT")]
    assert len(statements) == 1, statements
    row = CardTransaction.objects.get(pk=paid.pk)
    assert (row.kind, row.amount, row.discount, row.charged, row.refunded, row.balance_after) == (
        "debit", D("12.30"), D("0.00"), D("12.30"), D("0.00"), D("87.70"))
    assert (row.store_id, row.terminal_id, row.receipt_no, row.transaction_id) == (
        dept001.pk, terminal.pk, "ONE-1", paid.transaction_id)
    assert row.lines == lines and row.business_date == timezone.localdate(row.created_at)
    entry = CardLedgerEntry.objects.get(transaction=row)
    assert (entry.kind, entry.amount, entry.balance_after, entry.store_id, entry.terminal_id, entry.receipt_no,
            entry.legal_entity_id, entry.created_at) == (
        "debit", D("-12.30"), D("87.70"), dept001.pk, terminal.pk, "ONE-1", dept001.format.legal_entity_id,
        row.created_at)
    assert Card.objects.get(pk=card.pk).balance == D("87.70")
    assert paid.card.card_no == card.card_no and paid.card.status == Card.Status.ACTIVE  # the rest loads on demand


@pytest.mark.postgres
def test_cards_the_statement_does_not_take_go_the_full_way_with_its_errors(reference_stores, stored_product,
                                                                          pin_product, card_factory, dept001):
    _terminal, key = terminal_create(store_code="DEPT001", name="HOT3")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    frozen = card_factory(stored_product, balance="50.00", store=dept001, status=Card.Status.FROZEN)
    expired = card_factory(stored_product, balance="50.00", store=dept001,
                           expires_at=timezone.now() - timedelta(days=1))
    poor = card_factory(stored_product, balance="5.00", store=dept001)
    with_pin = card_factory(pin_product, balance="50.00", pin="123456")

    assert _debit(client, frozen).json()["error"]["code"] == "card_inactive"
    assert _debit(client, expired).json()["error"]["code"] == "card_expired"
    assert _debit(client, poor).json()["error"]["code"] == "insufficient_balance"
    assert _debit(client, with_pin).json()["error"]["code"] == "validation_error"  # the PIN is missing
    assert _debit(client, with_pin, pin="123456").status_code == 201
    assert not CardTransaction.objects.exclude(card=with_pin).exists()
    assert [card.balance for card in Card.objects.filter(pk__in=[frozen.pk, expired.pk, poor.pk]).order_by("pk")] \
        == [D("50.00"), D("50.00"), D("5.00")]


@pytest.mark.postgres
def test_a_brand_card_keeps_its_discount_and_a_plain_card_its_statement(reference_stores, stored_product,
                                                                        card_factory, dept001):
    assert discounts.none_without_brand()  # the brand programmes concern brand cards only
    branded = card_factory(stored_product, balance="80.00", store=dept001)
    stored_product.brand = Brand.objects.create(code="HOTB", name="热点品牌")
    stored_product.save(update_fields=["brand"])
    with CaptureQueriesContext(connection) as queries:
        card_debit(card_no=branded.card_no, amount="10.00", receipt_no="B-1", store=dept001)
    assert len(queries) > 1  # the statement matched no card: the full path priced it


@pytest.mark.postgres
def test_the_one_statement_debit_sends_its_webhook_event(reference_stores, stored_product, card_factory, dept001,
                                                         monkeypatch):
    monkeypatch.setattr(tasks.deliveries_send, "delay", lambda *args: None)
    monkeypatch.setattr(tasks.deliveries_send_many, "delay", lambda *args: None)
    Subscription.objects.create(name="APP", url="http://127.0.0.1:9/hook", secret_sealed=pii_encrypt("s" * 32),
                                event_types=[EventType.CARD_DEBITED])
    subscriptions_cache_clear()
    try:
        card = card_factory(stored_product, balance="30.00", store=dept001)
        paid = card_debit(card_no=card.card_no, amount="7.50", receipt_no="W-1", store=dept001)
    finally:
        Subscription.objects.update(is_active=False)
        subscriptions_cache_clear()

    event = Event.objects.get(type=EventType.CARD_DEBITED)
    entry = CardLedgerEntry.objects.get(transaction_id=paid.pk)
    assert event.subject == f"card:{card.card_no}"
    assert event.data == {
        "card_no": card.card_no, "entry_id": entry.pk, "transaction_id": paid.transaction_id, "amount": "-7.50",
        "balance": "22.50", "store": "DEPT001", "receipt_no": "W-1",
        "created_at": timezone.localtime(entry.created_at).isoformat(),
    }


def test_a_debit_through_the_api_handler_answers_as_through_the_full_stack(stored_product, card_factory, dept001):
    card = card_factory(stored_product, balance="100.00", store=dept001)
    _terminal, key = terminal_create(store_code="DEPT001", name="WSGI1")
    body = {"amount": "10.00", "receipt_no": "W-1"}

    status, head, content = wsgi_call(wsgi.application, key, f"/api/v1/cards/{card.card_no}/debit", body,
                                  **{"Idempotency-Key": "w-1"})
    assert status.startswith("201")
    answer = json.loads(content)
    assert answer["balance"] == "90.00" and answer["card_no"] == card.card_no
    assert head["Cache-Control"] == "no-store" and head["Content-Length"] == str(len(content))
    assert "Set-Cookie" not in head

    replay = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post(
        f"/api/v1/cards/{card.card_no}/debit", data=json.dumps(body), content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="w-1")
    assert replay.status_code == 201 and replay.content == content and replay["Idempotent-Replayed"] == "true"

    status, _head, content = wsgi_call(wsgi.application, key, f"/api/v1/cards/{card.card_no}/debit",
                                   {"amount": "999.00", "receipt_no": "W-2"}, **{"Idempotency-Key": "w-2"})
    assert status.startswith("422")
    error = json.loads(content)["error"]
    assert error["code"] == "insufficient_balance" and "余额" in error["message"]  # the language still follows

    status, _head, content = wsgi_call(wsgi.application, "pos_unknown", "/api/v1/terminal")
    assert status.startswith("401") and json.loads(content)["error"]["code"] == "unauthenticated"
    card.refresh_from_db()
    assert card.balance == Decimal("90.00")
