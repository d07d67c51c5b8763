"""Hostile and careless input at the API frame: a 4xx in the error envelope, never a 500, nothing written.

Each test names the outside finding it covers (issue "What outside testing found", items 1, 2, 4 and 9).
"""

import itertools
import json
from decimal import Decimal
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import OperationalError
from django.utils import timezone

from cards.models import Card, CardLedgerEntry, CardTransaction
from core.models import IdempotencyRecord
from membership.models import EarnRule, Member, PointsEntry, Purchase
from membership.services.members import POINTS_BALANCE_MAX
from stores.models import Format
from tests.cards.conftest import card_rules, make_card, stored_product  # noqa: F401 - fixtures
from tests.membership.conftest import register

_keys = itertools.count(1)
PURCHASES = "/api/v1/purchases"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def card(stored_product, dept001):
    return make_card(stored_product, balance="200.00", store=dept001)


@pytest.fixture
def card_with_pin(stored_product, dept001):
    return make_card(stored_product, balance="100.00", pin="123456", store=dept001)


@pytest.fixture
def member(reference_stores, dept001):
    EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=Decimal("1.00"))
    return register(name="李建国", phone="13800138000", store=dept001)


def raw_post(api, url, raw: bytes | str, key=None, **extra):
    return api.post(url, data=raw, content_type="application/json",
                    HTTP_IDEMPOTENCY_KEY=key or f"hostile-{next(_keys)}", **extra)


def post(api, url, body, key=None):
    return raw_post(api, url, json.dumps(body), key)


def sale(member, **changes) -> dict:
    return {"member_no": member.member_no, "receipt_no": "R-1", "amount": "100.00",
            "occurred_at": timezone.localtime().isoformat(), "payment_method": "CASH", "lines": [], **changes}


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


def nothing_written():
    assert not IdempotencyRecord.objects.exists()
    assert not CardTransaction.objects.exists()
    assert not Purchase.objects.exists()


# --- 1. hostile bodies and path parameters -------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    pytest.param('{"amount": "10.00", "receipt_no": "\\ud800"}', id="unpaired high surrogate"),
    pytest.param('{"amount": "10.00", "receipt_no": "R", "lines": [{"sku": "\\udfff"}]}', id="nested low surrogate"),
    pytest.param('{"\\ud800": 1, "amount": "10.00", "receipt_no": "R"}', id="surrogate as a key"),
    pytest.param('{"amount": "10.00", "receipt_no": "R\\u0000"}', id="NUL inside a string"),
    pytest.param("[" * 50_000 + "]" * 50_000, id="50,000 levels of arrays"),
    pytest.param('{"a":' * 40 + "1" + "}" * 40, id="40 levels of objects"),
    pytest.param(b'{"amount": "10.00", "receipt_no": "\xff\xfe"}', id="bytes that are not UTF-8"),
    pytest.param('{"amount": NaN, "receipt_no": "R"}', id="NaN"),
    pytest.param('{"amount": "10.00", "receipt_no": ', id="truncated"),
])
def test_a_hostile_card_debit_body_is_a_validation_error(api, card, raw):
    response = raw_post(api, f"/api/v1/cards/{card.card_no}/debit", raw)

    assert_envelope(response, 400, "validation_error")
    nothing_written()
    card.refresh_from_db()
    assert card.balance == Decimal("200.00")


@pytest.mark.parametrize("url", [PURCHASES, "/api/v1/points/redeem", "/api/v1/purchases/returns",
                                 "/api/v1/vouchers/1234567890123456/redeem", "/api/v1/coupons/ABC123/redeem",
                                 "/api/v1/coupons/ABC123/validate", "/api/v1/members/12345678/coupons/claim"])
def test_every_pos_write_refuses_a_lone_surrogate_the_same_way(api, url):
    response = raw_post(api, url, '{"receipt_no": "\\ud800"}')

    assert_envelope(response, 400, "validation_error")
    assert not IdempotencyRecord.objects.exists()


def test_a_body_larger_than_the_upload_limit_is_refused(api, card, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = raw_post(api, f"/api/v1/cards/{card.card_no}/debit",
                        json.dumps({"amount": "1.00", "receipt_no": "R", "pin": "x" * 2000}))

    assert_envelope(response, 400, "validation_error")


@pytest.mark.parametrize("path", [
    "/api/v1/transactions/AB%00CD/reverse",
    "/api/v1/transactions/AB\x00CD/reverse",
    "/api/v1/transactions/%E2%80%AE%E2%80%AE/reverse",
])
def test_nul_and_non_ascii_in_a_path_parameter_is_a_validation_error(api, path):
    response = api.post(path, data="{}", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")

    error = assert_envelope(response, 400, "validation_error")
    assert "path" in error["fields"]
    assert not IdempotencyRecord.objects.exists()


def test_nul_in_a_query_parameter_is_a_validation_error(api):
    response = api.get("/api/v1/members/lookup", {"member_no": "M\x00 1"})

    error = assert_envelope(response, 400, "validation_error")
    assert "member_no" in error["fields"]


# --- 2. absurd receipts and balances that could overflow ------------------------------------------------


def test_an_absurd_receipt_is_refused_and_earns_nothing(api, member, ledgers_balanced):
    response = post(api, PURCHASES, sale(member, amount="999999999999.99"))

    error = assert_envelope(response, 422, "limit_exceeded")
    assert "amount" in error["fields"]
    assert not Purchase.objects.exists()
    assert Member.objects.get(pk=member.pk).points == 0
    ledgers_balanced()


def test_the_largest_receipt_amount_is_a_setting_of_the_format(api, member):
    EarnRule.objects.filter(format__code="DEPT").update(max_receipt_amount=Decimal("50000.00"))

    assert post(api, PURCHASES, sale(member, amount="50000.00", receipt_no="R-1")).status_code == 201
    assert_envelope(post(api, PURCHASES, sale(member, amount="50000.01", receipt_no="R-2")), 422, "limit_exceeded")


def test_a_receipt_earning_more_than_the_format_allows_is_refused(api, member):
    EarnRule.objects.filter(format__code="DEPT").update(max_points_per_receipt=500)

    response = post(api, PURCHASES, sale(member, amount="501.00"))

    assert_envelope(response, 422, "limit_exceeded")
    assert not PointsEntry.objects.exists()


def test_a_balance_at_its_ceiling_refuses_more_points_and_still_redeems(api, member, ledgers_balanced):
    # given: a member whose balance reached the ceiling (e.g. from a legacy system)
    from membership.services.members import points_post

    points_post(member=member, points=POINTS_BALANCE_MAX, kind=PointsEntry.Kind.ADJUST, reason="test")
    # when: a later purchase would earn more
    refused = post(api, PURCHASES, sale(member, receipt_no="R-2"))
    # then: refused in the envelope, the account is not stuck: it still redeems
    assert_envelope(refused, 422, "limit_exceeded")
    redeemed = post(api, "/api/v1/points/redeem", {"member_no": member.member_no, "points": 100, "receipt_no": "R-3"})
    assert redeemed.status_code == 201, redeemed.content
    assert post(api, PURCHASES, sale(member, receipt_no="R-4")).status_code == 201
    ledgers_balanced()


# --- 4. careless POS input --------------------------------------------------------------------------------


def test_a_post_to_an_unknown_api_path_is_not_found_in_the_envelope(api):
    response = api.post("/api/v1/no/such/thing", data="{}", content_type="application/json")

    assert_envelope(response, 404, "not_found")


def test_a_post_to_an_unknown_api_path_without_a_key_is_not_found_too(client, db):
    response = client.post("/api/v1/cards", data="{}", content_type="application/json")

    assert_envelope(response, 404, "not_found")


@pytest.mark.parametrize("occurred_at", ["2026-12-06T10:30:00", "2026-12-06 10:30:00", "2026-12-06", "1733452200",
                                         "２０２６-12-06T10:30:00+08:00"])
def test_a_time_without_its_utc_offset_is_refused(api, member, occurred_at):
    response = post(api, PURCHASES, sale(member, occurred_at=occurred_at))

    error = assert_envelope(response, 400, "validation_error")
    assert "occurred_at" in error["fields"]
    assert not Purchase.objects.exists()


@pytest.mark.parametrize("occurred_at", ["2026-12-06T10:30:00+08:00", "2026-12-06T02:30:00Z",
                                         "2026-12-06T10:30:00.123+0800"])
def test_a_time_with_its_offset_is_accepted(api, member, occurred_at, settings):
    with mock.patch("membership.services.purchases._time_error", return_value=None):
        response = post(api, PURCHASES, sale(member, occurred_at=occurred_at))

    assert response.status_code == 201, response.content


@pytest.mark.parametrize("amount", ["１２.５０", "١٢.٥٠", "12.５0"])
def test_non_ascii_digits_in_an_amount_are_refused(api, card, amount):
    response = post(api, f"/api/v1/cards/{card.card_no}/debit", {"amount": amount, "receipt_no": "R"})

    error = assert_envelope(response, 400, "validation_error")
    assert "amount" in error["fields"]
    card.refresh_from_db()
    assert card.balance == Decimal("200.00")


def test_non_ascii_digits_in_a_line_quantity_are_refused(api, card):
    body = {"amount": "10.00", "receipt_no": "R", "lines": [{"sku": "A", "amount": "10.00", "quantity": "１"}]}

    response = post(api, f"/api/v1/cards/{card.card_no}/debit", body)

    assert_envelope(response, 400, "validation_error")


def test_non_ascii_digits_in_a_purchase_line_are_refused(api, member):
    body = sale(member, lines=[{"sku": "A", "category": "", "amount": "１00.00", "quantity": "1"}])

    assert_envelope(post(api, PURCHASES, body), 400, "validation_error")


def test_full_width_digits_in_a_card_number_are_refused(api, card):
    full_width = card.card_no.translate(str.maketrans("0123456789", "０１２３４５６７８９"))

    assert_envelope(api.get(f"/api/v1/cards/{full_width}"), 400, "validation_error")
    assert_envelope(post(api, f"/api/v1/cards/{full_width}/debit", {"amount": "1.00", "receipt_no": "R"}),
                    400, "validation_error")


def test_a_pin_in_full_width_digits_is_refused_and_not_counted_as_wrong(api, card_with_pin):
    response = post(api, f"/api/v1/cards/{card_with_pin.card_no}/debit",
                    {"amount": "1.00", "receipt_no": "R", "pin": "１２３４５６"})

    error = assert_envelope(response, 400, "validation_error")
    assert "pin" in error["fields"]
    assert Card.objects.get(pk=card_with_pin.pk).pin_failures == 0


def test_answers_about_balances_are_never_cached(api, card):
    enquiry = api.get(f"/api/v1/cards/{card.card_no}")
    paid = post(api, f"/api/v1/cards/{card.card_no}/debit", {"amount": "1.00", "receipt_no": "R"})
    refused = api.get("/api/v1/cards/9999999999999")

    for response in (enquiry, paid, refused):
        assert response["Cache-Control"] == "no-store"


def test_a_replayed_answer_is_the_same_bytes_as_the_first(api, card):
    body = {"amount": "12.50", "receipt_no": "R-1"}

    first = post(api, f"/api/v1/cards/{card.card_no}/debit", body, key="same")
    again = post(api, f"/api/v1/cards/{card.card_no}/debit", body, key="same")

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert list(json.loads(again.content)) == ["transaction_id", "card_no", "amount", "discount", "balance",
                                               "created_at"]


def test_a_replayed_refusal_is_the_same_bytes_as_the_first(api, card):
    body = {"amount": "999.00", "receipt_no": "R-1"}

    first = post(api, f"/api/v1/cards/{card.card_no}/debit", body, key="same")
    again = post(api, f"/api/v1/cards/{card.card_no}/debit", body, key="same")

    assert first.status_code == again.status_code == 422
    assert again.content == first.content


# --- 9. the database goes away ------------------------------------------------------------------------------


def test_a_database_that_cannot_be_reached_is_503_unavailable_and_the_retry_goes_through(api, card):
    body = {"amount": "10.00", "receipt_no": "R-1"}
    with mock.patch("cards.services.payments.card_debit",
                    side_effect=OperationalError("could not connect to server: Connection refused")):
        down = post(api, f"/api/v1/cards/{card.card_no}/debit", body, key="retry-me")

    assert_envelope(down, 503, "unavailable")
    assert int(down["Retry-After"]) > 0
    assert not IdempotencyRecord.objects.exists()
    # when the POS retries with the same key once the database is back, the payment is made once
    again = post(api, f"/api/v1/cards/{card.card_no}/debit", body, key="retry-me")
    assert again.status_code == 201
    assert CardLedgerEntry.objects.filter(card=card, kind=CardLedgerEntry.Kind.DEBIT).count() == 1


def test_a_database_lost_while_authenticating_is_503_unavailable(api):
    with mock.patch("stores.services.terminal_for_key", side_effect=OperationalError("server closed the connection")):
        response = api.get("/api/v1/terminal")

    assert_envelope(response, 503, "unavailable")
    assert response["Retry-After"]
