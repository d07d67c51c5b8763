"""A POS body is read once: its fields turn the text into typed values, the service does not read it again.

(What a service still checks on those values, and on the text other callers give it, is tested with the
services: tests/cards/test_payments.py, tests/membership/test_purchases.py.)
"""

import json
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from cards.models import CardTransaction
from cards.services import payments
from membership.models import EarnRule, Purchase
from membership.services import purchases
from stores.models import Format
from tests.cards import conftest as card_fixtures
from tests.membership.conftest import register

card_rules = card_fixtures.card_rules
stored_product = card_fixtures.stored_product


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def post(api, path: str, body: dict, key: str):
    return api.post(path, data=json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_debits_lines_are_checked_once(api, dept001, stored_product, monkeypatch):
    card = card_fixtures.make_card(stored_product, balance="100.00", store=dept001)
    calls = []
    checked = payments.card_debit_lines_clean

    def counted(lines):
        calls.append(lines)
        return checked(lines)

    monkeypatch.setattr(payments, "card_debit_lines_clean", counted)
    lines = [{"sku": " 6900000000001 ", "amount": "12.5", "quantity": "2.500"}]

    response = post(api, f"/api/v1/cards/{card.card_no}/debit", {"amount": "12.50", "receipt_no": "R-1",
                                                                 "lines": lines}, key="once-1")

    assert response.status_code == 201, response.content
    assert calls == [lines]
    stored = CardTransaction.objects.get(transaction_id=response.json()["transaction_id"]).lines
    assert stored == [{"sku": "6900000000001", "amount": "12.50", "quantity": "2.5"}]


def test_a_purchases_lines_reach_the_service_as_decimals(api, dept001, monkeypatch):
    EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=Decimal("1.00"))
    member = register(name="李建国", phone="13800138000", store=dept001)
    seen = []
    clean = purchases._lines_clean

    def recorded(lines):
        seen.extend(lines)
        return clean(lines)

    monkeypatch.setattr(purchases, "_lines_clean", recorded)

    response = post(api, "/api/v1/purchases", {
        "member_no": member.member_no, "receipt_no": "R-1", "amount": "30.00",
        "occurred_at": timezone.localtime().isoformat(),
        "lines": [{"sku": "A", "category": "FOOD", "amount": "12.5", "quantity": 2},
                  {"sku": "B", "amount": "17.50", "quantity": "1.250"}],
    }, key="once-2")

    assert response.status_code == 201, response.content
    assert [(line["amount"], line["quantity"]) for line in seen] == [
        (Decimal("12.5"), Decimal("2")), (Decimal("17.50"), Decimal("1.250")),
    ]
    assert all(isinstance(line["amount"], Decimal) and isinstance(line["quantity"], Decimal) for line in seen)
    assert Purchase.objects.get().lines == [
        {"sku": "A", "category": "FOOD", "amount": "12.50", "quantity": "2"},
        {"sku": "B", "category": "", "amount": "17.50", "quantity": "1.25"},
    ]
