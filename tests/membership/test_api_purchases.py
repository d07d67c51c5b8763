"""POST /api/v1/purchases, /api/v1/purchases/returns and /api/v1/points/redeem (CONTRACT section 3)."""

import itertools
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from core.models import IdempotencyRecord
from membership.models import (
    EarnRule,
    Member,
    MemberIdentity,
    PointsDebtEntry,
    PointsEntry,
    PointsHold,
    Purchase,
    PurchaseReturn,
)
from membership.services import member_status_set
from stores.models import Format
from stores.services import terminal_create
from tests.membership.conftest import register

PURCHASES, RETURNS, REDEEM = "/api/v1/purchases", "/api/v1/purchases/returns", "/api/v1/points/redeem"
_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def earn_rules(reference_stores):
    EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=Decimal("1.00"))
    EarnRule.objects.create(format=Format.objects.get(code="SUPER"), amount_per_point=Decimal("2.00"),
                            excluded_categories="TOBACCO")
    EarnRule.objects.create(format=Format.objects.get(code="AUTO"), amount_per_point=Decimal("1.00"), pending_days=7)


@pytest.fixture
def member(earn_rules, dept001):
    return register(name="李建国", phone="13800138000", store=dept001)


@pytest.fixture
def super001_till(client, super001):
    """A test client acting as terminal S1 of SUPER001."""
    from django.test import Client

    _terminal, key = terminal_create(store_code="SUPER001", name="S1")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def auto001_till(reference_stores):
    from django.test import Client

    _terminal, key = terminal_create(store_code="AUTO001", name="A1")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def post(client, url, body, key=None):
    return client.post(url, data=json.dumps(body) if not isinstance(body, str) else body,
                       content_type="application/json", HTTP_IDEMPOTENCY_KEY=key or f"key-{next(_keys)}")


def sale(member, **changes) -> dict:
    body = {
        "member_no": member.member_no, "receipt_no": "R-1", "amount": "100.00",
        "occurred_at": timezone.localtime().isoformat(), "payment_method": "CASH",
        "lines": [{"sku": "6920152400012", "category": "FOOD", "amount": "100.00", "quantity": 1}],
    }
    body.update(changes)
    return body


def balance(member) -> int:
    return Member.objects.values_list("points", flat=True).get(pk=member.pk)


def state():
    """Everything a POS write may change."""
    return (
        list(Member.objects.order_by("pk").values_list("points", "points_debt")),
        list(Purchase.objects.order_by("pk").values_list("pk", "returned_amount")),
        PointsEntry.objects.count(), PointsHold.objects.count(), PurchaseReturn.objects.count(),
        PointsDebtEntry.objects.count(),
    )


def assert_error(response, status: int, code: str, field: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    if field:
        assert field in body["error"]["fields"], body


# --- purchases ------------------------------------------------------------------------------------------------


def test_purchase_answers_in_the_contract_shape(api, member, ledgers_balanced):
    response = post(api, PURCHASES, sale(member, amount="123.45"))

    assert response.status_code == 201
    purchase = Purchase.objects.get()
    assert response.json() == {"purchase_id": purchase.pk, "points_earned": 123, "points": 123, "points_pending": 0,
                               "coupons": []}
    assert (purchase.store.code, purchase.terminal.name, purchase.payment_method) == ("DEPT001", "T1", "CASH")
    assert purchase.lines == [{"sku": "6920152400012", "category": "FOOD", "amount": "100.00", "quantity": "1"}]
    ledgers_balanced()


def test_done_when_points_earned_at_super001_are_redeemed_at_dept001(api, super001_till, member, ledgers_balanced):
    # given: groceries at SUPER001 (1 point per 2 yuan, tobacco excluded)
    lines = [{"sku": "1", "category": "TOBACCO", "amount": "100.00", "quantity": 1},
             {"sku": "2", "category": "FOOD", "amount": "500.00", "quantity": "2.5"}]
    earned = post(super001_till, PURCHASES, sale(member, receipt_no="S-1", amount="600.00", lines=lines))
    assert earned.status_code == 201
    assert earned.json()["points_earned"] == 250
    # when: the points are turned into cash at the department store
    redeemed = post(api, REDEEM, {"member_no": member.member_no, "points": 200, "receipt_no": "D-1"})
    # then
    assert redeemed.status_code == 201
    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.CASH_OUT)
    assert redeemed.json() == {"transaction_id": entry.pk, "points": 200, "cash_value": "2.00", "balance": 50}
    earn = PointsEntry.objects.get(kind=PointsEntry.Kind.EARN)
    assert (earn.store.code, earn.legal_entity.name) == ("SUPER001", "嘉禾超市连锁有限公司")
    assert (entry.store.code, entry.legal_entity.name) == ("DEPT001", "嘉禾百货有限公司")
    assert entry.terminal.name == "T1"
    assert balance(member) == 50
    ledgers_balanced()


def test_a_purchase_with_a_return_window_answers_with_pending_points(auto001_till, member):
    response = post(auto001_till, PURCHASES, sale(member, receipt_no="A-1", amount="150000.00", lines=[]))

    assert response.status_code == 201
    body = response.json()
    assert (body["points_earned"], body["points"], body["points_pending"]) == (150000, 0, 150000)
    assert PointsHold.objects.get().points == 150000


def test_a_legacy_member_number_is_accepted(api, member):
    MemberIdentity.objects.create(member=member, source="DEPT_CRM", external_no="1000234567")

    response = post(api, PURCHASES, sale(member, member_no="1000234567"))

    assert response.status_code == 201
    assert Purchase.objects.get().member_id == member.pk


def test_replay_with_the_same_key_returns_the_first_answer_and_moves_nothing(api, member):
    body = sale(member)
    first = post(api, PURCHASES, body, key="till-1-0001")
    before = state()

    second = post(api, PURCHASES, body, key="till-1-0001")

    assert (second.status_code, second.json()) == (first.status_code, first.json())
    assert second["Idempotent-Replayed"] == "true"
    assert state() == before
    assert balance(member) == 100


def test_the_same_receipt_with_a_new_key_is_a_conflict_naming_the_purchase(api, member, ledgers_balanced):
    first = post(api, PURCHASES, sale(member))
    before = state()

    second = post(api, PURCHASES, sale(member))

    assert_error(second, 409, "validation_error", "receipt_no")
    assert str(first.json()["purchase_id"]) in second.json()["error"]["message"]
    assert state() == before
    assert PointsEntry.objects.filter(kind=PointsEntry.Kind.EARN).count() == 1
    ledgers_balanced()


def test_the_same_key_with_another_body_is_an_idempotency_conflict(api, member):
    body = sale(member)
    post(api, PURCHASES, body, key="k")
    before = state()

    response = post(api, PURCHASES, {**body, "amount": "200.00"}, key="k")

    assert_error(response, 409, "idempotency_conflict")
    assert state() == before


def test_an_unknown_member_is_not_found_and_nothing_is_written(api, member):
    before = state()

    response = post(api, PURCHASES, sale(member, member_no="899999999999"))

    assert_error(response, 404, "not_found")
    assert state() == before


def test_a_frozen_member_is_refused(api, member, hq_admin):
    member_status_set(member=member, status=Member.Status.FROZEN, actor=hq_admin, reason="card lost")

    response = post(api, PURCHASES, sale(member))

    assert_error(response, 409, "validation_error")
    assert not Purchase.objects.exists()


@pytest.mark.parametrize(("changes", "field"), [
    ({"amount": "12.345"}, "amount"),
    ({"amount": "-5.00"}, "amount"),
    ({"amount": "0.00"}, "amount"),
    ({"amount": "0"}, "amount"),
    ({"amount": 12.5}, "amount"),
    ({"amount": "1e3"}, "amount"),
    ({"amount": "abc"}, "amount"),
    ({"amount": "9999999999999.00"}, "amount"),
    ({"amount": None}, "amount"),
    ({"receipt_no": ""}, "receipt_no"),
    ({"receipt_no": "收据1"}, "receipt_no"),
    ({"receipt_no": "R" * 65}, "receipt_no"),
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"occurred_at": "2999-01-01T00:00:00+08:00"}, "occurred_at"),
    ({"member_no": ""}, "member_no"),
    ({"member_no": 800000000000}, None),
    ({"payment_method": "X" * 21}, "payment_method"),
    ({"lines": "food"}, "lines"),
    ({"lines": [{"sku": "1", "category": "A", "amount": "1.001", "quantity": 1}]}, "lines"),
    ({"lines": [{"sku": "1", "category": "A", "amount": "-1.00", "quantity": 1}]}, "lines"),
    ({"lines": [{"sku": "1", "category": "A", "amount": "1.00", "quantity": 0}]}, "lines"),
    ({"lines": [{"sku": "1", "category": "A", "amount": "1.00", "quantity": -1}]}, "lines"),
    ({"lines": [{"sku": "1", "category": "A", "amount": "1.00", "quantity": True}]}, "lines"),
    ({"lines": [{"category": "A", "amount": "1.00", "quantity": 1}]}, "lines"),
])
def test_bad_purchase_input_is_a_4xx_envelope_and_writes_nothing(api, member, changes, field):
    before = state()

    response = post(api, PURCHASES, sale(member, **changes))

    assert 400 <= response.status_code < 500
    body = response.json()
    assert body["error"]["code"] in ("validation_error", "not_found")
    if field:
        assert_error(response, 400, "validation_error", field)
    assert state() == before


@pytest.mark.parametrize("body", ["", "[]", "null", "not json", '{"amount": "1.00"}', "[1, 2]"])
def test_a_body_that_is_not_a_purchase_is_a_validation_error(api, member, body):
    before = state()

    response = post(api, PURCHASES, body)

    assert_error(response, 400, "validation_error")
    assert state() == before


def test_a_purchase_without_a_terminal_key_is_unauthenticated(client, member):
    response = post(client, PURCHASES, sale(member))

    assert_error(response, 401, "unauthenticated")
    assert not Purchase.objects.exists()


def test_a_purchase_without_an_idempotency_key_is_refused(api, member):
    response = api.post(PURCHASES, data=json.dumps(sale(member)), content_type="application/json")

    assert_error(response, 400, "validation_error", "Idempotency-Key")
    assert not Purchase.objects.exists()


# --- points to cash ---------------------------------------------------------------------------------------------


@pytest.fixture
def member_with_points(api, member):
    post(api, PURCHASES, sale(member, receipt_no="R-0", amount="1000.00"))
    assert balance(member) == 1000
    return member


@pytest.mark.parametrize("points", [1.5, "10", -100, 0, True, False, None, [100], 100.0, 2**53])
def test_points_must_be_a_positive_json_integer(api, member_with_points, points):
    before = state()

    response = post(api, REDEEM, {"member_no": member_with_points.member_no, "points": points, "receipt_no": "D-1"})

    assert_error(response, 400, "validation_error", "points")
    assert state() == before


def test_redeeming_more_than_the_balance_is_insufficient_points(api, member_with_points):
    before = state()

    response = post(api, REDEEM, {"member_no": member_with_points.member_no, "points": 1001, "receipt_no": "D-1"})

    assert_error(response, 422, "insufficient_points")
    assert state() == before


def test_redeeming_below_the_minimum_is_limit_exceeded(api, member_with_points):
    response = post(api, REDEEM, {"member_no": member_with_points.member_no, "points": 50, "receipt_no": "D-1"})

    assert_error(response, 422, "limit_exceeded")
    assert "每单最低限额" in response.json()["error"]["message"]
    assert balance(member_with_points) == 1000


def test_redeeming_for_an_unknown_member_is_not_found(api, member_with_points):
    response = post(api, REDEEM, {"member_no": "nobody", "points": 100, "receipt_no": "D-1"})

    assert_error(response, 404, "not_found")


def test_a_redeem_replay_moves_nothing(api, member_with_points):
    body = {"member_no": member_with_points.member_no, "points": 100, "receipt_no": "D-1"}
    first = post(api, REDEEM, body, key="r-1")

    second = post(api, REDEEM, body, key="r-1")

    assert (second.status_code, second.json()) == (201, first.json())
    assert balance(member_with_points) == 900


# --- returns ---------------------------------------------------------------------------------------------------


def test_a_return_answers_with_the_points_taken_back(api, member_with_points, ledgers_balanced):
    purchase = Purchase.objects.get()

    response = post(api, RETURNS, {"original_receipt_no": "R-0", "receipt_no": "RET-1", "amount": "250.00"})

    assert response.status_code == 201
    record = PurchaseReturn.objects.get()
    assert response.json() == {"return_id": record.pk, "purchase_id": purchase.pk, "points_reversed": 250,
                               "points_owed": 0, "points": 750}
    assert record.terminal.name == "T1"
    ledgers_balanced()


def test_a_return_after_spending_answers_with_the_points_owed(api, member_with_points, ledgers_balanced):
    post(api, REDEEM, {"member_no": member_with_points.member_no, "points": 900, "receipt_no": "D-1"})

    response = post(api, RETURNS, {"original_receipt_no": "R-0", "receipt_no": "RET-1", "amount": "1000.00",
                                   "occurred_at": timezone.localtime().isoformat()})

    assert response.status_code == 201
    body = response.json()
    assert (body["points_reversed"], body["points_owed"], body["points"]) == (100, 900, 0)
    assert Member.objects.get(pk=member_with_points.pk).points_debt == 900
    ledgers_balanced()


def test_a_return_larger_than_the_purchase_changes_nothing(api, member_with_points):
    before = state()

    response = post(api, RETURNS, {"original_receipt_no": "R-0", "receipt_no": "RET-1", "amount": "1000.01"})

    assert_error(response, 422, "validation_error", "amount")
    assert state() == before


def test_a_second_return_with_the_same_receipt_is_refused(api, member_with_points):
    post(api, RETURNS, {"original_receipt_no": "R-0", "receipt_no": "RET-1", "amount": "10.00"})
    before = state()

    response = post(api, RETURNS, {"original_receipt_no": "R-0", "receipt_no": "RET-1", "amount": "10.00"})

    assert_error(response, 409, "validation_error", "receipt_no")
    assert state() == before


@pytest.mark.parametrize(("changes", "status", "field"), [
    ({"original_receipt_no": "NOPE"}, 404, None),
    ({"amount": "1.001"}, 400, "amount"),
    ({"amount": "-1.00"}, 400, "amount"),
    ({"amount": "0.00"}, 400, "amount"),
    ({"receipt_no": ""}, 400, "receipt_no"),
    ({"occurred_at": (timezone.now() + timedelta(days=1)).isoformat()}, 400, "occurred_at"),
])
def test_bad_return_input_is_a_4xx_envelope_and_changes_nothing(api, member_with_points, changes, status, field):
    body = {"original_receipt_no": "R-0", "receipt_no": "RET-1", "amount": "10.00"}
    body.update(changes)
    before = state()

    response = post(api, RETURNS, body)

    assert_error(response, status, "not_found" if status == 404 else "validation_error", field)
    assert state() == before


def test_a_return_at_another_store_does_not_find_the_sale(super001_till, member_with_points):
    response = post(super001_till, RETURNS, {"original_receipt_no": "R-0", "receipt_no": "RET-1", "amount": "1.00"})

    assert_error(response, 404, "not_found")


def test_every_4xx_answer_is_remembered_for_its_key(api, member_with_points):
    post(api, RETURNS, {"original_receipt_no": "R-0", "receipt_no": "RET-1", "amount": "1000.01"}, key="x")

    assert IdempotencyRecord.objects.get(key="x").response_status == 422


# --- the schema --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_schema_documents_the_pos_writes(client):
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()

    for path in ("/api/v1/purchases", "/api/v1/purchases/returns", "/api/v1/points/redeem"):
        operation = schema["paths"][path]["post"]
        assert {"201", "400", "401", "404", "409", "422"} <= set(operation["responses"])
        assert "Idempotency-Key" in [parameter["name"] for parameter in operation["parameters"]]
    text = json.dumps(schema)
    for name in ("points_reversed", "points_owed", "cash_value", "points_pending"):
        assert name in text
