"""POST /api/v1/vouchers/{code}/redeem (CONTRACT section 3 "Coupons and vouchers")."""

import itertools
import json

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from cards.models import Voucher, VoucherLedgerEntry
from core.models import IdempotencyRecord
from stores.services import terminal_create
from tests.cards import test_vouchers as voucher_fixtures
from tests.membership.conftest import concurrently

# The voucher fixtures, shared with tests/cards/test_vouchers.py.
active_voucher = voucher_fixtures.active_voucher
issued_batch = voucher_fixtures.issued_batch
oil = voucher_fixtures.oil
supplier = voucher_fixtures.supplier

_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def super001_till(super001):
    _terminal, key = terminal_create(store_code="SUPER001", name="S1")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def redeem(client, code, quantity=1, receipt_no="R-1", key=None, body=None):
    payload = body if body is not None else {"receipt_no": receipt_no, "quantity": quantity}
    return client.post(f"/api/v1/vouchers/{code}/redeem", data=json.dumps(payload), content_type="application/json",
                       HTTP_IDEMPOTENCY_KEY=key or f"key-{next(_keys)}")


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    if field:
        assert field in error["fields"], error


def remaining(voucher) -> int:
    return Voucher.objects.values_list("remaining", flat=True).get(pk=voucher.pk)


def test_redeeming_answers_201_with_exactly_the_contract_shape(api, active_voucher, terminal_with_key, dept001):
    response = redeem(api, active_voucher.code, quantity=3, receipt_no="R-100")

    assert response.status_code == 201, response.content
    assert response.json() == {"voucher_code": active_voucher.code, "sku": "6948195800019",
                               "quantity_redeemed": 3, "remaining": 7}
    entry = VoucherLedgerEntry.objects.get(kind="redeem")
    terminal, _key = terminal_with_key
    assert (entry.quantity, entry.remaining_after, entry.receipt_no) == (-3, 7, "R-100")
    assert (entry.store, entry.terminal, entry.legal_entity) == (dept001, terminal, dept001.legal_entity)


def test_partial_redemption_in_two_parts_at_two_stores(api, super001_till, active_voucher, dept001, super001):
    first = redeem(api, active_voucher.code, quantity=4)
    second = redeem(super001_till, active_voucher.code, quantity=6, receipt_no="S-1")

    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.json()["remaining"], second.json()["remaining"]) == (6, 0)
    stores = list(VoucherLedgerEntry.objects.filter(kind="redeem").order_by("pk").values_list("store__code",
                                                                                             flat=True))
    assert stores == ["DEPT001", "SUPER001"]
    assert Voucher.objects.get(pk=active_voucher.pk).status == Voucher.Status.USED


def test_more_than_remains_is_422_and_moves_nothing(api, active_voucher):
    response = redeem(api, active_voucher.code, quantity=11)

    assert_error(response, 422, "insufficient_balance")
    assert "10" in response.json()["error"]["message"]
    assert remaining(active_voucher) == 10
    assert not VoucherLedgerEntry.objects.filter(kind="redeem").exists()


def test_an_expired_voucher_is_409_card_expired(api, active_voucher):
    Voucher.objects.filter(pk=active_voucher.pk).update(status=Voucher.Status.EXPIRED)

    assert_error(redeem(api, active_voucher.code), 409, "card_expired")
    assert remaining(active_voucher) == 10


def test_an_unsold_voucher_is_409_card_inactive(api, issued_batch):
    voucher = issued_batch.vouchers.get(serial=5)

    assert_error(redeem(api, voucher.code), 409, "card_inactive")
    assert not VoucherLedgerEntry.objects.filter(voucher=voucher).exists()


def test_an_unknown_code_is_404_not_found(api, active_voucher):
    assert_error(redeem(api, "9999999999999995"), 404, "not_found")


@pytest.mark.parametrize(("body", "field"), [
    ({"receipt_no": "R-1", "quantity": 0}, "quantity"),
    ({"receipt_no": "R-1", "quantity": 1.5}, "quantity"),
    ({"receipt_no": "R-1", "quantity": "2"}, "quantity"),
    ({"receipt_no": "R-1", "quantity": True}, "quantity"),
    ({"receipt_no": "R-1"}, "quantity"),
    ({"quantity": 1}, "receipt_no"),
    ({"receipt_no": "", "quantity": 1}, "receipt_no"),
])
def test_bad_bodies_are_400_naming_the_field(api, active_voucher, body, field):
    assert_error(redeem(api, active_voucher.code, body=body), 400, "validation_error", field)
    assert remaining(active_voucher) == 10


def test_a_replay_returns_the_first_answer_and_redeems_once(api, active_voucher):
    first = redeem(api, active_voucher.code, quantity=2, key="same")
    replay = redeem(api, active_voucher.code, quantity=2, key="same")
    conflict = redeem(api, active_voucher.code, quantity=3, key="same")

    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json() == first.json() and replay["Idempotent-Replayed"] == "true"
    assert_error(conflict, 409, "idempotency_conflict")
    assert remaining(active_voucher) == 8
    assert VoucherLedgerEntry.objects.filter(kind="redeem").count() == 1


def test_a_replayed_error_is_the_same_error(api, active_voucher):
    first = redeem(api, active_voucher.code, quantity=20, key="too-many")
    replay = redeem(api, active_voucher.code, quantity=20, key="too-many")

    assert first.status_code == replay.status_code == 422
    assert first.json() == replay.json()


def test_many_unknown_codes_get_429_on_voucher_and_card_calls(api, active_voucher, super001_till, settings,
                                                              stored_product, card_factory):
    # given
    settings.CARD_GUESS_LIMIT = 4
    card = card_factory(stored_product, balance="10.00")
    for index in range(4):
        assert_error(redeem(api, f"12345678901234{index:02d}"), 404, "not_found")
    # when / then: the terminal is blocked for known codes and cards too; another terminal is not
    assert_error(redeem(api, active_voucher.code), 429, "rate_limited")
    assert_error(api.get(f"/api/v1/cards/{card.card_no}"), 429, "rate_limited")
    assert redeem(super001_till, active_voucher.code).status_code == 201
    assert remaining(active_voucher) == 9


def test_unknown_card_numbers_count_toward_the_voucher_limit(api, active_voucher, settings):
    settings.CARD_GUESS_LIMIT = 2
    for number in ("6200000000000001", "6200000000000002"):
        assert api.get(f"/api/v1/cards/{number}").status_code == 404

    assert_error(redeem(api, active_voucher.code), 429, "rate_limited")


def test_without_a_terminal_key_it_is_401(client, active_voucher):
    assert_error(redeem(client, active_voucher.code), 401, "unauthenticated")


def test_the_schema_documents_the_operation(client):
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")

    schema = json.loads(response.content)
    operation = schema["paths"]["/api/v1/vouchers/{code}/redeem"]["post"]
    assert operation["operationId"] == "vouchers_redeem"
    assert {"201", "404", "409", "422", "429"} <= set(operation["responses"])


# --- concurrency (PostgreSQL) -------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twenty_concurrent_redemptions_of_one_unit_on_ten_take_exactly_ten(active_voucher, ledgers_balanced):
    cache.clear()
    _terminal, key = terminal_create(store_code="SUPER001", name="S-concurrent")

    def send(index):
        response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post(
            f"/api/v1/vouchers/{active_voucher.code}/redeem",
            data=json.dumps({"receipt_no": f"R-{index}", "quantity": 1}), content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=f"c-{index}")
        return response.status_code, response.json()

    results = concurrently(20, send)

    statuses = sorted(status for status, _body in results)
    assert statuses == [201] * 10 + [422] * 10
    assert {body["error"]["code"] for status, body in results if status == 422} == {"insufficient_balance"}
    assert sorted(body["remaining"] for status, body in results if status == 201) == list(range(10))
    voucher = Voucher.objects.get(pk=active_voucher.pk)
    assert (voucher.remaining, voucher.status) == (0, Voucher.Status.USED)
    assert VoucherLedgerEntry.objects.filter(voucher=voucher, kind="redeem").count() == 10
    assert IdempotencyRecord.objects.count() == 20
    ledgers_balanced()
    cache.clear()


def test_expiry_is_checked_against_the_time_not_only_the_status(api, active_voucher):
    Voucher.objects.filter(pk=active_voucher.pk).update(expires_at=timezone.now())

    assert_error(redeem(api, active_voucher.code), 409, "card_expired")
