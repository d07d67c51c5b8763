"""Every POS answer has exactly the keys the OpenAPI schema states for it.

The views render the output serializers their `extend_schema(responses=...)` names, so the documentation cannot
drift from the answers. This reads the schema as drf-spectacular generates it (what /api/v1/schema/ serves) and
compares each operation's success answer with it, nested objects and list items included; an operation of the
schema without a case here fails too, so a new endpoint is checked from the start.
"""

import itertools
import json
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from campaigns.models import CouponBatch, CouponRule, CouponTemplate
from campaigns.services import coupons_issue
from cards.services.payments import card_debit
from membership.models import Benefit, BenefitQuota, EarnRule
from membership.services import purchase_record
from stores.models import Format
from tests.cards import conftest as card_fixtures
from tests.cards import test_vouchers as voucher_fixtures
from tests.membership.conftest import register

card_rules = card_fixtures.card_rules
stored_product = card_fixtures.stored_product
active_voucher = voucher_fixtures.active_voucher
issued_batch = voucher_fixtures.issued_batch
oil = voucher_fixtures.oil
supplier = voucher_fixtures.supplier

API = "/api/v1"
_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def world(dept001, stored_product, active_voucher) -> dict:
    """A card with a payment, a member with a purchase and points, a sold voucher: what the calls name."""
    EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=Decimal("1.00"))
    card = card_fixtures.make_card(stored_product, balance="500.00", store=dept001)
    payment = card_debit(card_no=card.card_no, amount=Decimal("50.00"), receipt_no="W-1", store=dept001)
    member = register(name="李建国", phone="13800138000", store=dept001)
    purchase_record(store=dept001, member=member, receipt_no="W-P", amount=Decimal("5000.00"),
                    occurred_at=timezone.now())
    return {"card": card, "payment": payment, "member": member, "voucher": active_voucher}


def post(api, path: str, body: dict):
    return api.post(f"{API}{path}", data=json.dumps(body), content_type="application/json",
                    HTTP_IDEMPOTENCY_KEY=f"outputs-{next(_keys)}")


def _reverse(api, world):
    fresh = post(api, f"/cards/{world['card'].card_no}/debit", {"amount": "3.00", "receipt_no": "W-3"})
    return post(api, f"/transactions/{fresh.json()['transaction_id']}/reverse", {})


def _coupon_code(world, code: str, **fields) -> str:
    """A new coupon of the member's, of an active template (100.00 or more, 10.00 off by default)."""
    fields = {"kind": CouponTemplate.Kind.THRESHOLD, "threshold": Decimal("100.00"), "amount": Decimal("10.00"),
              **fields}
    template = CouponTemplate.objects.create(code=code, name=code, status=CouponTemplate.Status.ACTIVE, **fields)
    batch = coupons_issue(template=template, member_ids=[world["member"].pk], channel=CouponBatch.Channel.MEMBER_LIST)
    return batch.coupons.get().code


def _purchase_with_coupon(api, world):
    """A purchase an after-payment rule gives a coupon, so the answer's list of coupons is not empty."""
    template = CouponTemplate.objects.create(code="WAFTER", name="WAFTER", status=CouponTemplate.Status.ACTIVE,
                                             amount=Decimal("5.00"), valid_days=30)
    CouponRule.objects.create(name="W", template=template, starts_on=timezone.localdate(),
                              ends_on=timezone.localdate())
    return post(api, "/purchases", {
        "member_no": world["member"].member_no, "receipt_no": "W-P2", "amount": "100.00",
        "occurred_at": timezone.localtime().isoformat(), "payment_method": "CASH",
        "lines": [{"sku": "6920152400012", "category": "FOOD", "amount": "100.00", "quantity": "1.5"}],
    })


def _coupon_use(api, world, action: str):
    return post(api, f"/coupons/{_coupon_code(world, 'W' + action.upper())}/{action}",
                {"member_no": world["member"].member_no, "receipt_no": "W-C", "basket_amount": "150.00"})


def _member_coupons(api, world):
    _coupon_code(world, "WLIST")
    return api.get(f"{API}/members/{world['member'].member_no}/coupons")


def _coupon_claim(api, world):
    CouponTemplate.objects.create(code="WCLAIM", name="WCLAIM", status=CouponTemplate.Status.ACTIVE,
                                  amount=Decimal("5.00"), claim_code="WPOSTER", valid_days=30)
    return post(api, f"/members/{world['member'].member_no}/coupons/claim", {"claim_code": "WPOSTER"})


def _claim(api, world):
    """A sale the till sent without a member, claimed for the member afterwards."""
    purchase_record(store=world["member"].registered_store, member=None, receipt_no="W-WALK", amount=Decimal("80.00"),
                    occurred_at=timezone.now())
    return post(api, "/purchases/W-WALK/claim", {"member_no": world["member"].member_no})


def _benefit_use(api, world):
    parking = Benefit.objects.create(code="WPARK", name="免费停车", unit=Benefit.Unit.HOUR)
    BenefitQuota.objects.create(benefit=parking, tier=world["member"].tier, quantity=4)
    return post(api, f"/members/{world['member'].member_no}/benefits/WPARK/use", {"quantity": 1, "receipt_no": "W-B"})


# operationId: (method, path in the schema, status, the call)
CASES = {
    "terminal_retrieve": ("get", "/terminal", 200, lambda api, world: api.get(f"{API}/terminal")),
    "members_lookup": ("get", "/members/lookup", 200,
                       lambda api, world: api.get(f"{API}/members/lookup", {"phone": "13800138000"})),
    "cards_retrieve": ("get", "/cards/{card_no}", 200,
                       lambda api, world: api.get(f"{API}/cards/{world['card'].card_no}")),
    "cards_debit": ("post", "/cards/{card_no}/debit", 201, lambda api, world: post(
        api, f"/cards/{world['card'].card_no}/debit",
        {"amount": "12.50", "receipt_no": "W-2", "lines": [{"sku": "6900000000001", "amount": "12.50",
                                                           "quantity": 1}]},
    )),
    "cards_refund": ("post", "/cards/{card_no}/refund", 201, lambda api, world: post(
        api, f"/cards/{world['card'].card_no}/refund",
        {"amount": "5.00", "receipt_no": "W-R", "original_transaction_id": world["payment"].transaction_id},
    )),
    "transactions_reverse": ("post", "/transactions/{transaction_id}/reverse", 201, _reverse),
    "vouchers_redeem": ("post", "/vouchers/{code}/redeem", 201, lambda api, world: post(
        api, f"/vouchers/{world['voucher'].code}/redeem", {"receipt_no": "W-V", "quantity": 2},
    )),
    "purchases_create": ("post", "/purchases", 201, lambda api, world: _purchase_with_coupon(api, world)),
    "purchases_returns_create": ("post", "/purchases/returns", 201, lambda api, world: post(
        api, "/purchases/returns", {"original_receipt_no": "W-P", "receipt_no": "W-PR", "amount": "10.00"},
    )),
    "points_redeem": ("post", "/points/redeem", 201, lambda api, world: post(
        api, "/points/redeem", {"member_no": world["member"].member_no, "points": 200, "receipt_no": "W-D"},
    )),
    "coupons_redeem": ("post", "/coupons/{code}/redeem", 201, lambda api, world: _coupon_use(api, world, "redeem")),
    "coupons_validate": ("post", "/coupons/{code}/validate", 200,
                         lambda api, world: _coupon_use(api, world, "validate")),
    "members_coupons_list": ("get", "/members/{member_no}/coupons", 200, _member_coupons),
    "members_coupons_claim": ("post", "/members/{member_no}/coupons/claim", 201, _coupon_claim),
    "members_create": ("post", "/members", 201, lambda api, world: post(
        api, "/members", {"name": "王秀兰", "phone": "13912345678", "consent": True},
    )),
    "purchases_claim": ("post", "/purchases/{receipt_no}/claim", 201, _claim),
    "members_benefits_use": ("post", "/members/{member_no}/benefits/{code}/use", 201, _benefit_use),
}


def _resolved(schema: dict, part: dict) -> dict:
    while True:
        if "$ref" in part:
            part = schema["components"]["schemas"][part["$ref"].rsplit("/", 1)[-1]]
        elif len(part.get("allOf", ())) == 1:
            part = part["allOf"][0]
        else:
            return part


def _shape_problems(schema: dict, part: dict, value, where: str) -> list[str]:
    """Where the value's keys differ from the schema's properties, at every level."""
    part = _resolved(schema, part)
    if isinstance(value, dict):
        properties = part.get("properties", {})
        if set(value) != set(properties):
            return [f"{where}: answer has {sorted(value)}, schema states {sorted(properties)}"]
        return [problem for key, item in value.items()
                for problem in _shape_problems(schema, properties[key], item, f"{where}.{key}")]
    if isinstance(value, list):
        return [problem for index, item in enumerate(value)
                for problem in _shape_problems(schema, part.get("items", {}), item, f"{where}[{index}]")]
    return []


def test_every_pos_operation_of_the_schema_has_a_case(schema):
    operations = {operation["operationId"] for path, methods in schema["paths"].items() if path.startswith(API)
                  for operation in methods.values() if isinstance(operation, dict) and "operationId" in operation}
    assert operations == set(CASES)


@pytest.mark.parametrize("operation_id", sorted(CASES))
def test_the_answer_has_exactly_the_keys_of_its_schema(api, world, schema, operation_id):
    method, path, status, call = CASES[operation_id]
    operation = schema["paths"][f"{API}{path}"][method]
    assert operation["operationId"] == operation_id

    response = call(api, world)

    assert response.status_code == status, response.content
    body = response.json()
    declared = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    assert _resolved(schema, declared).get("properties"), "the schema states no fields for this answer"
    assert _shape_problems(schema, declared, body, operation_id) == []
    # Lists are checked item by item: an empty one would check nothing.
    assert all(item for item in body.values() if isinstance(item, list)), body
