"""The card POS API (CONTRACT section 3 "Cards"): enquiry, debit, refund, reverse."""

import itertools
import json
import re
import time
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from cards import api as cards_api
from cards import discounts
from cards.models import Brand, Card, CardLedgerEntry, CardTransaction
from cards.services.ledger import card_post
from core.models import IdempotencyRecord
from stores.services import terminal_create

D = Decimal
_keys = itertools.count(1)
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+08:00$")


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def super001_till(super001):
    """A test client acting as terminal S1 of SUPER001."""
    _terminal, key = terminal_create(store_code="SUPER001", name="S1")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def card(stored_product, card_factory, dept001):
    return card_factory(stored_product, balance="200.00", store=dept001)


@pytest.fixture
def card_with_pin(stored_product, card_factory):
    return card_factory(stored_product, balance="100.00", pin="123456")


def post(client, url, body=None, key=None):
    return client.post(url, data=json.dumps(body if body is not None else {}) if not isinstance(body, str) else body,
                       content_type="application/json", HTTP_IDEMPOTENCY_KEY=key or f"key-{next(_keys)}")


def debit(client, card, amount="50.00", key=None, **extra):
    return post(client, f"/api/v1/cards/{card.card_no}/debit", {"amount": amount, "receipt_no": "R-1", **extra}, key)


def refund(client, card, original_id, amount, key=None, receipt_no="RF-1"):
    return post(client, f"/api/v1/cards/{card.card_no}/refund",
                {"amount": amount, "receipt_no": receipt_no, "original_transaction_id": original_id}, key)


def reverse(client, transaction_id, key=None):
    return post(client, f"/api/v1/transactions/{transaction_id}/reverse", {}, key)


def balance(card) -> Decimal:
    return Card.objects.values_list("balance", flat=True).get(pk=card.pk)


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    if field:
        assert field in error["fields"], error


# --- enquiry -----------------------------------------------------------------------------------------------


def test_enquiry_answers_in_the_contract_shape(api, card):
    response = api.get(f"/api/v1/cards/{card.card_no}")

    assert response.status_code == 200
    assert response.json() == {"card_no": card.card_no, "product": "STORED", "status": "active",
                               "balance": "200.00", "expires_at": None, "brand": None}


def test_enquiry_shows_expiry_with_offset_brand_and_expired_status(api, bearer_product, card_factory):
    bearer_product.brand = Brand.objects.create(code="BRANDDEMO", name="品牌")
    bearer_product.save()
    card = card_factory(bearer_product, balance="10.00", expires_at=timezone.now() - timedelta(minutes=1))

    body = api.get(f"/api/v1/cards/{card.card_no}").json()

    assert (body["status"], body["brand"], body["balance"]) == ("expired", "BRANDDEMO", "10.00")
    assert ISO_WITH_OFFSET.match(body["expires_at"])


def test_enquiry_of_an_unknown_or_malformed_number(api, card_rules):
    assert_error(api.get("/api/v1/cards/310000000000009"), 404, "not_found")
    assert_error(api.get("/api/v1/cards/12-ab"), 400, "validation_error", "card_no")


@pytest.mark.parametrize("header", [None, "Bearer pos_wrong", "Basic abc"])
def test_no_or_invalid_key_is_unauthenticated(client, card, header):
    if header:
        client.defaults["HTTP_AUTHORIZATION"] = header
    assert_error(client.get(f"/api/v1/cards/{card.card_no}"), 401, "unauthenticated")
    assert_error(debit(client, card), 401, "unauthenticated")
    assert_error(reverse(client, "ABC"), 401, "unauthenticated")
    assert balance(card) == D("200.00")
    assert not IdempotencyRecord.objects.exists()


# --- debit -------------------------------------------------------------------------------------------------


def test_debit_answers_in_the_contract_shape_and_writes_the_ledger(api, card, terminal_with_key, ledgers_balanced):
    response = debit(api, card, "12.50")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"transaction_id", "card_no", "amount", "discount", "balance", "created_at"}
    assert (body["card_no"], body["amount"], body["discount"], body["balance"]) == (
        card.card_no, "12.50", "0.00", "187.50")
    assert ISO_WITH_OFFSET.match(body["created_at"])
    record = CardTransaction.objects.get(transaction_id=body["transaction_id"])
    assert (record.terminal, record.store.code, record.receipt_no) == (terminal_with_key[0], "DEPT001", "R-1")
    entry = CardLedgerEntry.objects.get(kind="debit")
    assert (entry.amount, entry.transaction, entry.terminal) == (D("-12.50"), record, terminal_with_key[0])
    assert balance(card) == D("187.50")
    ledgers_balanced()


def test_debit_larger_than_the_balance_moves_nothing(api, card):
    response = debit(api, card, "200.01")

    assert_error(response, 422, "insufficient_balance")
    assert balance(card) == D("200.00")
    assert not CardTransaction.objects.exists()
    assert not CardLedgerEntry.objects.filter(kind="debit").exists()


@pytest.mark.parametrize(("body", "field"), [
    ({"amount": 12.5, "receipt_no": "R"}, "amount"),
    ({"amount": "0.00", "receipt_no": "R"}, "amount"),
    ({"amount": "1.001", "receipt_no": "R"}, "amount"),
    ({"amount": "1.00"}, "receipt_no"),
    ({"amount": "1.00", "receipt_no": "R", "lines": [{"sku": "X", "amount": "1.00"}]}, "lines"),
    ({"amount": "1.00", "receipt_no": "R", "lines": {"sku": "X"}}, "lines"),
    ({"amount": "1.00", "receipt_no": "R", "lines": [{"sku": "X", "amount": "-1.00", "quantity": 1}]}, "lines"),
])
def test_bad_debit_bodies_are_validation_errors_naming_the_field(api, card, body, field):
    response = post(api, f"/api/v1/cards/{card.card_no}/debit", body)

    assert_error(response, 400, "validation_error", field)
    assert balance(card) == D("200.00")


def test_a_body_that_is_not_json_is_a_validation_error(api, card):
    assert_error(post(api, f"/api/v1/cards/{card.card_no}/debit", "{not json"), 400, "validation_error")
    assert_error(post(api, f"/api/v1/cards/{card.card_no}/debit", "[1, 2]"), 400, "validation_error")


def test_a_post_without_idempotency_key_is_refused(api, card):
    response = api.post(f"/api/v1/cards/{card.card_no}/debit", data={"amount": "1.00", "receipt_no": "R"},
                        content_type="application/json")
    assert_error(response, 400, "validation_error", "Idempotency-Key")


def test_inactive_and_expired_cards(api, stored_product, bearer_product, card_factory):
    frozen = card_factory(stored_product, balance="10.00", status=Card.Status.FROZEN)
    expired = card_factory(bearer_product, balance="10.00", expires_at=timezone.now() - timedelta(days=1))

    assert_error(debit(api, frozen, "1.00"), 409, "card_inactive")
    assert_error(debit(api, expired, "1.00"), 409, "card_expired")


def test_lines_are_stored_and_given_to_the_discount_hook(api, card):
    def brand_five_percent(*, card, store, lines, amount):
        listed = sum((D(line["amount"]) for line in lines if line["sku"] == "6900000000001"), D("0"))
        return (listed * D("0.05")).quantize(D("0.01"))

    discounts.register("test_brand", brand_five_percent)
    try:
        response = debit(api, card, "100.00", lines=[
            {"sku": "6900000000001", "amount": "40.00", "quantity": 2},
            {"sku": "6920000000000", "amount": "60.00", "quantity": "1.5"},
        ])
    finally:
        discounts.unregister("test_brand")

    assert response.status_code == 201, response.content
    assert (response.json()["discount"], response.json()["balance"]) == ("2.00", "102.00")
    assert CardTransaction.objects.get().lines[1] == {"sku": "6920000000000", "amount": "60.00", "quantity": "1.5"}


# --- idempotency -------------------------------------------------------------------------------------------


def test_a_replay_returns_the_first_answer_and_moves_nothing(api, card):
    first = debit(api, card, "50.00", key="pay-1")
    again = debit(api, card, "50.00", key="pay-1")

    assert again.status_code == 201 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert balance(card) == D("150.00")
    assert CardTransaction.objects.count() == 1


def test_the_same_key_with_another_body_is_an_idempotency_conflict(api, card):
    debit(api, card, "50.00", key="pay-1")
    assert_error(debit(api, card, "60.00", key="pay-1"), 409, "idempotency_conflict")
    assert balance(card) == D("150.00")


def test_a_refused_debit_replays_its_refusal(api, card):
    first = debit(api, card, "500.00", key="pay-1")
    again = debit(api, card, "500.00", key="pay-1")

    assert first.status_code == again.status_code == 422
    assert again.json() == first.json()


# --- PIN ---------------------------------------------------------------------------------------------------


def test_a_card_with_a_pin_pays_with_it(api, card_with_pin):
    assert_error(debit(api, card_with_pin, "10.00"), 400, "validation_error", "pin")
    assert debit(api, card_with_pin, "10.00", pin="123456").status_code == 201
    assert balance(card_with_pin) == D("90.00")


def test_five_wrong_pins_freeze_the_card_and_replays_do_not_count(api, card_with_pin):
    answers = [debit(api, card_with_pin, "10.00", pin="654321", key=f"wrong-{n}") for n in range(4)]
    replay = debit(api, card_with_pin, "10.00", pin="654321", key="wrong-3")
    assert Card.objects.get(pk=card_with_pin.pk).pin_failures == 4
    fifth = debit(api, card_with_pin, "10.00", pin="654321")

    for response in [*answers, replay, fifth]:
        assert_error(response, 403, "invalid_pin")
    # A POS gets Chinese unless it asks for English.
    assert "再错 1 次" in answers[3].json()["error"]["message"]
    assert "冻结" in fifth.json()["error"]["message"]
    card = Card.objects.get(pk=card_with_pin.pk)
    assert (card.status, card.freeze_reason) == ("frozen", "pin")
    assert_error(debit(api, card_with_pin, "10.00", pin="123456"), 409, "card_inactive")
    assert balance(card_with_pin) == D("100.00")


# --- card-number guessing ----------------------------------------------------------------------------------


def test_many_unknown_numbers_from_one_terminal_get_429_on_every_card_call(api, card, super001_till, settings):
    settings.CARD_GUESS_LIMIT = 5
    for number in range(5):
        assert_error(api.get(f"/api/v1/cards/31000000000{number:04d}"), 404, "not_found")

    blocked = api.get(f"/api/v1/cards/{card.card_no}")
    assert_error(blocked, 429, "rate_limited")
    assert int(blocked["Retry-After"]) > 0
    assert_error(debit(api, card, "1.00"), 429, "rate_limited")
    assert balance(card) == D("200.00")
    # another terminal is not slowed down
    assert super001_till.get(f"/api/v1/cards/{card.card_no}").status_code == 200


def test_unknown_numbers_in_debits_count_too_and_the_window_passes(api, card, settings, monkeypatch):
    settings.CARD_GUESS_LIMIT = 3
    for number in range(2):
        assert_error(post(api, f"/api/v1/cards/80000000000{number:04d}/debit",
                          {"amount": "1.00", "receipt_no": "R"}), 404, "not_found")
    # known and malformed numbers are not counted: they were never guesses
    for _ in range(5):
        assert api.get(f"/api/v1/cards/{card.card_no}").status_code == 200
        assert_error(api.get("/api/v1/cards/12ab"), 400, "validation_error")
    assert_error(api.get("/api/v1/cards/800000000000099"), 404, "not_found")

    assert_error(api.get(f"/api/v1/cards/{card.card_no}"), 429, "rate_limited")
    later = time.time() + settings.CARD_GUESS_WINDOW
    monkeypatch.setattr(cards_api, "time", SimpleNamespace(time=lambda: later))  # the window has passed
    assert api.get(f"/api/v1/cards/{card.card_no}").status_code == 200


def test_a_few_mistyped_numbers_do_not_block_a_till(api, card):
    for number in range(3):
        api.get(f"/api/v1/cards/70000000000{number:04d}")
    assert api.get(f"/api/v1/cards/{card.card_no}").status_code == 200


# --- refunds -----------------------------------------------------------------------------------------------


def test_done_when_a_card_pays_at_super001_and_is_refunded(super001_till, card, ledgers_balanced):
    # given: a stored-value card holding 200.00, sold at DEPT001
    # when: it pays 88.00 at SUPER001 and part of the basket comes back
    paid = debit(super001_till, card, "88.00")
    assert paid.status_code == 201, paid.content
    payment_id = paid.json()["transaction_id"]
    first = refund(super001_till, card, payment_id, "30.00")
    too_much = refund(super001_till, card, payment_id, "58.01", receipt_no="RF-2")
    rest = refund(super001_till, card, payment_id, "58.00", receipt_no="RF-3")

    # then
    assert first.status_code == 201 and first.json()["balance"] == "142.00"
    assert set(first.json()) == {"transaction_id", "card_no", "amount", "discount", "balance", "created_at"}
    assert_error(too_much, 422, "limit_exceeded")
    assert "58.00" in too_much.json()["error"]["message"]
    assert rest.status_code == 201 and rest.json()["balance"] == "200.00"
    assert balance(card) == D("200.00")
    payment = CardTransaction.objects.get(transaction_id=payment_id)
    assert (payment.store.code, payment.refunded) == ("SUPER001", D("88.00"))
    assert list(CardLedgerEntry.objects.filter(card=card).order_by("pk").values_list("kind", "amount")) == [
        ("load", D("200.00")), ("debit", D("-88.00")), ("refund", D("30.00")), ("refund", D("58.00"))]
    assert CardLedgerEntry.objects.filter(card=card).aggregate(total=Sum("amount"))["total"] == D("200.00")
    ledgers_balanced()


def test_a_refund_at_another_store_of_the_group(api, super001_till, card):
    payment_id = debit(super001_till, card, "50.00").json()["transaction_id"]

    response = refund(api, card, payment_id, "50.00")

    assert response.status_code == 201 and response.json()["balance"] == "200.00"
    assert CardTransaction.objects.get(transaction_id=response.json()["transaction_id"]).store.code == "DEPT001"


def test_a_refund_of_an_unknown_payment_is_not_found(api, card):
    assert_error(refund(api, card, "NOSUCHPAYMENT", "1.00"), 404, "not_found")
    assert_error(post(api, f"/api/v1/cards/{card.card_no}/refund", {"amount": "1.00", "receipt_no": "R"}),
                 400, "validation_error", "original_transaction_id")


def test_a_refund_replay_moves_nothing(api, card):
    payment_id = debit(api, card, "50.00").json()["transaction_id"]
    first = refund(api, card, payment_id, "20.00", key="rf")
    again = refund(api, card, payment_id, "20.00", key="rf")

    assert again.json() == first.json()
    assert balance(card) == D("170.00")


# --- reverse -----------------------------------------------------------------------------------------------


def test_reverse_answers_in_the_contract_shape_and_a_second_is_already_reversed(api, card, ledgers_balanced):
    payment_id = debit(api, card, "50.00").json()["transaction_id"]

    first = reverse(api, payment_id)
    second = reverse(api, payment_id)

    assert first.status_code == 201, first.content
    body = first.json()
    assert set(body) == {"transaction_id", "reversed_transaction_id", "balance"}
    assert (body["reversed_transaction_id"], body["balance"]) == (payment_id, "200.00")
    assert body["transaction_id"] != payment_id
    assert_error(second, 409, "already_reversed")
    assert balance(card) == D("200.00")
    assert CardTransaction.objects.filter(kind="reverse").count() == 1
    ledgers_balanced()


def test_reverse_at_another_store_or_of_an_unknown_id_is_not_found(api, super001_till, card):
    payment_id = debit(api, card, "50.00").json()["transaction_id"]

    assert_error(reverse(super001_till, payment_id), 404, "not_found")
    assert_error(reverse(api, "NOSUCHTRANSACTION"), 404, "not_found")
    assert balance(card) == D("150.00")


def test_reverse_of_yesterdays_payment_says_to_refund(api, card):
    payment_id = debit(api, card, "50.00").json()["transaction_id"]
    CardTransaction.objects.filter(transaction_id=payment_id).update(
        business_date=timezone.localdate() - timedelta(days=1))

    response = reverse(api, payment_id)

    assert_error(response, 409, "validation_error")
    assert "请改为退款" in response.json()["error"]["message"]


def test_reverse_of_a_refund(api, card):
    payment_id = debit(api, card, "50.00").json()["transaction_id"]
    refund_id = refund(api, card, payment_id, "50.00").json()["transaction_id"]

    response = reverse(api, refund_id)

    assert response.status_code == 201 and response.json()["balance"] == "150.00"
    assert CardTransaction.objects.get(transaction_id=payment_id).refunded == D("0.00")


def test_reverse_of_a_payment_onto_a_card_back_at_its_cap_is_limit_exceeded(api, stored_product, card_factory,
                                                                            dept001, ledgers_balanced):
    # given: a registered card (cap 5,000.00) pays 100.00 and is then topped up to its cap again
    card = card_factory(stored_product, balance="5000.00", store=dept001)
    payment_id = debit(api, card, "100.00").json()["transaction_id"]
    card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=D("100.00"), store=dept001, cap=D("5000.00"),
              reason="top-up")

    # when: the till reverses the payment
    response = reverse(api, payment_id)

    # then: the money would take the card past its cap: refused, nothing moves
    assert_error(response, 422, "limit_exceeded")
    assert "5000.00" in response.json()["error"]["message"]
    assert balance(card) == D("5000.00")
    assert not CardTransaction.objects.filter(kind="reverse").exists()
    assert CardTransaction.objects.get(transaction_id=payment_id).reversed_at is None
    ledgers_balanced()


def test_reverse_of_a_refund_onto_a_card_at_its_cap_takes_the_money_off(api, stored_product, card_factory, dept001,
                                                                        ledgers_balanced):
    card = card_factory(stored_product, balance="5000.00", store=dept001)
    payment_id = debit(api, card, "100.00").json()["transaction_id"]
    refund_id = refund(api, card, payment_id, "100.00").json()["transaction_id"]
    assert balance(card) == D("5000.00")

    response = reverse(api, refund_id)

    assert response.status_code == 201 and response.json()["balance"] == "4900.00"
    ledgers_balanced()


def test_get_on_a_post_route_and_unknown_card_routes_use_the_envelope(api, card):
    assert_error(api.get(f"/api/v1/cards/{card.card_no}/debit"), 405, "not_found")
    assert_error(api.get(f"/api/v1/cards/{card.card_no}/nothing"), 404, "not_found")


def test_the_schema_lists_the_card_operations(api):
    response = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    paths = json.loads(response.content)["paths"] if response["Content-Type"].startswith("application/json") \
        else response.content.decode()
    for route in ("/api/v1/cards/{card_no}", "/api/v1/cards/{card_no}/debit", "/api/v1/cards/{card_no}/refund",
                  "/api/v1/transactions/{transaction_id}/reverse"):
        assert route in paths
