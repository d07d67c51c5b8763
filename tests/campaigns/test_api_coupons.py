"""POS API for coupons (CONTRACT section 3): redeem, validate, a member's coupons, claiming with a poster's code."""

import itertools
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from campaigns.models import Coupon, CouponRedemption, CouponTemplate
from core.models import IdempotencyRecord
from tests.campaigns.conftest import CouponTemplateFactory, coupon_issue

pytestmark = pytest.mark.django_db

_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def post(client, url: str, body, key: str | None = None):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(url, data=raw, content_type="application/json",
                       HTTP_IDEMPOTENCY_KEY=key or f"coupon-{next(_keys)}")


def redeem_url(code: str) -> str:
    return f"/api/v1/coupons/{code}/redeem"


def validate_url(code: str) -> str:
    return f"/api/v1/coupons/{code}/validate"


def basket(member=None, **changes) -> dict:
    body = {"member_no": member.member_no if member else None, "receipt_no": "R-1", "basket_amount": "250.00"}
    return {**body, **changes}


def refusal(response, reason: str) -> dict:
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "coupon_not_applicable" and error["reason"] == reason and error["message"], error
    return error


def error_code(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    return error


def unchanged(coupon: Coupon, template: CouponTemplate | None = None) -> None:
    """Nothing moved: the coupon is open, no redemption, the template's counters as before any use."""
    coupon.refresh_from_db()
    assert coupon.status == Coupon.Status.OPEN and coupon.closed_at is None
    assert not CouponRedemption.objects.filter(coupon=coupon).exists()
    template = template or coupon.template
    template.refresh_from_db()
    assert template.redeemed_count == 0 and template.discount_spent == Decimal("0.00")


# --- the "done when" scenario ------------------------------------------------------------------------------


def test_a_dept_threshold_coupon_is_redeemed_at_a_dept_till(api, coupon_issued_to_member, coupon_member,
                                                            ledgers_balanced):
    # given: 李建国's 满200减30 coupon for DEPT stores; when: a DEPT001 till redeems it on a 250.00 basket
    response = post(api, redeem_url(coupon_issued_to_member.code), basket(coupon_member))

    # then
    assert response.status_code == 201, response.content
    assert response.json() == {"coupon_code": coupon_issued_to_member.code, "discount": "30.00"}
    coupon_issued_to_member.refresh_from_db()
    assert coupon_issued_to_member.status == Coupon.Status.REDEEMED
    redemption = CouponRedemption.objects.get(coupon=coupon_issued_to_member)
    assert (redemption.store.code, redemption.receipt_no, redemption.discount, redemption.basket_amount) == (
        "DEPT001", "R-1", Decimal("30.00"), Decimal("250.00"))
    assert redemption.terminal.name == "T1" and redemption.member_id == coupon_member.pk
    template = coupon_issued_to_member.template
    template.refresh_from_db()
    assert (template.redeemed_count, template.discount_spent) == (1, Decimal("30.00"))
    ledgers_balanced()


def test_the_same_coupon_is_refused_at_a_supermarket_till_and_nothing_changes(super001_api, coupon_issued_to_member,
                                                                              coupon_member):
    response = post(super001_api, redeem_url(coupon_issued_to_member.code), basket(coupon_member))

    refusal(response, "wrong_store")
    unchanged(coupon_issued_to_member)


# --- each refusal -------------------------------------------------------------------------------------------


def test_a_coupon_used_once_is_already_redeemed_the_second_time(api, coupon_issued_to_member, coupon_member):
    assert post(api, redeem_url(coupon_issued_to_member.code), basket(coupon_member)).status_code == 201

    response = post(api, redeem_url(coupon_issued_to_member.code), basket(coupon_member, receipt_no="R-2"))

    refusal(response, "already_redeemed")
    assert CouponRedemption.objects.filter(coupon=coupon_issued_to_member).count() == 1
    coupon_issued_to_member.template.refresh_from_db()
    assert coupon_issued_to_member.template.discount_spent == Decimal("30.00")


def test_a_coupon_past_its_validity_is_expired(api, coupon_expired, coupon_member):
    response = post(api, redeem_url(coupon_expired.code), basket(coupon_member))

    refusal(response, "expired")
    unchanged(coupon_expired)


def test_a_coupon_before_its_validity_is_not_started(api, reference_stores, coupon_member):
    template = CouponTemplateFactory(valid_from=timezone.now() + timedelta(days=2),
                                     valid_until=timezone.now() + timedelta(days=9))
    coupon = coupon_issue(template, coupon_member)

    response = post(api, redeem_url(coupon.code), basket(coupon_member))

    refusal(response, "not_started")
    unchanged(coupon)


def test_a_basket_under_the_threshold_is_below_threshold(api, coupon_issued_to_member, coupon_member):
    response = post(api, redeem_url(coupon_issued_to_member.code), basket(coupon_member, basket_amount="199.99"))

    refusal(response, "below_threshold")
    unchanged(coupon_issued_to_member)


@pytest.mark.parametrize("who", ["another member", "no member"])
def test_a_members_coupon_shown_by_someone_else_is_not_owner(api, coupon_issued_to_member, other_member, who):
    body = basket(other_member if who == "another member" else None)

    response = post(api, redeem_url(coupon_issued_to_member.code), body)

    refusal(response, "not_owner")
    unchanged(coupon_issued_to_member)


def test_an_sku_coupon_on_a_receipt_without_its_items_has_no_eligible_items(api, reference_stores, coupon_member):
    template = CouponTemplateFactory(kind=CouponTemplate.Kind.ITEM, amount=Decimal("5.00"),
                                     sku_scope=CouponTemplate.SkuScope.INCLUDE, skus=["6900000000001"])
    coupon = coupon_issue(template, coupon_member)
    lines = [{"sku": "6911111111111", "category": "FOOD", "amount": "250.00", "quantity": 1}]

    response = post(api, redeem_url(coupon.code), basket(coupon_member, lines=lines))

    refusal(response, "no_eligible_items")
    unchanged(coupon)


def test_an_sku_coupon_counts_the_lines_of_its_skus(api, reference_stores, coupon_member):
    template = CouponTemplateFactory(kind=CouponTemplate.Kind.PERCENT_OFF, percent=Decimal("10"),
                                     sku_scope=CouponTemplate.SkuScope.INCLUDE, skus=["6900000000001"])
    coupon = coupon_issue(template, coupon_member)
    lines = [
        {"sku": "6900000000001", "category": "FOOD", "amount": "80.00", "quantity": 2},
        {"sku": "6911111111111", "category": "FOOD", "amount": "170.00", "quantity": "1.5"},
    ]

    response = post(api, redeem_url(coupon.code), basket(coupon_member, lines=lines))

    assert response.status_code == 201, response.content
    assert response.json() == {"coupon_code": coupon.code, "discount": "8.00"}


def test_a_coupon_whose_campaign_budget_is_spent_is_budget_exhausted(api, reference_stores, coupon_member,
                                                                     other_member):
    template = CouponTemplateFactory(amount=Decimal("30.00"), total_budget=Decimal("50.00"))
    first, second = coupon_issue(template, coupon_member), coupon_issue(template, other_member)
    assert post(api, redeem_url(first.code), basket(coupon_member)).status_code == 201

    response = post(api, redeem_url(second.code), basket(other_member, receipt_no="R-2"))

    refusal(response, "budget_exhausted")
    second.refresh_from_db()
    assert second.status == Coupon.Status.OPEN
    template.refresh_from_db()
    assert (template.redeemed_count, template.discount_spent) == (1, Decimal("30.00"))


def test_an_unknown_code_is_not_found(api, coupon_member):
    response = post(api, redeem_url("NOSUCHCODE1"), basket(coupon_member))

    error_code(response, 404, "not_found")
    assert "reason" not in response.json()["error"]


def test_an_unknown_member_is_not_found_and_nothing_changes(api, coupon_issued_to_member):
    response = post(api, redeem_url(coupon_issued_to_member.code), {**basket(), "member_no": "99999999"})

    error_code(response, 404, "not_found")
    unchanged(coupon_issued_to_member)


def test_a_code_typed_in_small_letters_is_the_same_coupon(api, coupon_issued_to_member, coupon_member):
    response = post(api, redeem_url(coupon_issued_to_member.code.lower()), basket(coupon_member))

    assert response.status_code == 201, response.content
    assert response.json()["coupon_code"] == coupon_issued_to_member.code


def test_a_bulk_code_is_redeemed_without_a_member(api, coupon_template_dept_threshold):
    coupon = coupon_issue(coupon_template_dept_threshold)

    response = post(api, redeem_url(coupon.code), {"receipt_no": "R-1", "basket_amount": "400.00"})

    assert response.status_code == 201, response.content
    assert response.json()["discount"] == "30.00"
    assert CouponRedemption.objects.get(coupon=coupon).member_id is None


# --- validate -----------------------------------------------------------------------------------------------


def test_validate_answers_the_discount_and_changes_nothing(api, coupon_issued_to_member, coupon_member):
    response = post(api, validate_url(coupon_issued_to_member.code), basket(coupon_member))

    assert response.status_code == 200, response.content
    assert response.json() == {"coupon_code": coupon_issued_to_member.code, "discount": "30.00"}
    unchanged(coupon_issued_to_member)
    redeemed = post(api, redeem_url(coupon_issued_to_member.code), basket(coupon_member))
    assert redeemed.status_code == 201, redeemed.content


def test_validate_gives_the_same_refusals(super001_api, coupon_issued_to_member, coupon_member):
    response = post(super001_api, validate_url(coupon_issued_to_member.code), basket(coupon_member))

    refusal(response, "wrong_store")
    unchanged(coupon_issued_to_member)


def test_validate_of_a_used_coupon_is_already_redeemed(api, coupon_issued_to_member, coupon_member):
    assert post(api, redeem_url(coupon_issued_to_member.code), basket(coupon_member)).status_code == 201

    refusal(post(api, validate_url(coupon_issued_to_member.code), basket(coupon_member)), "already_redeemed")


# --- idempotency --------------------------------------------------------------------------------------------


def test_a_replayed_redeem_returns_the_same_bytes_and_moves_nothing(api, coupon_issued_to_member, coupon_member):
    first = post(api, redeem_url(coupon_issued_to_member.code), basket(coupon_member), key="redeem-1")

    again = post(api, redeem_url(coupon_issued_to_member.code), basket(coupon_member), key="redeem-1")

    assert (again.status_code, again.content) == (first.status_code, first.content) == (201, again.content)
    assert again["Idempotent-Replayed"] == "true"
    assert CouponRedemption.objects.filter(coupon=coupon_issued_to_member).count() == 1
    coupon_issued_to_member.template.refresh_from_db()
    assert coupon_issued_to_member.template.redeemed_count == 1


def test_a_replayed_refusal_returns_the_same_bytes(super001_api, coupon_issued_to_member, coupon_member):
    first = post(super001_api, redeem_url(coupon_issued_to_member.code), basket(coupon_member), key="r-1")

    again = post(super001_api, redeem_url(coupon_issued_to_member.code), basket(coupon_member), key="r-1")

    assert (again.status_code, again.content) == (first.status_code, first.content)
    refusal(again, "wrong_store")


def test_the_same_key_with_another_body_is_an_idempotency_conflict(api, coupon_issued_to_member, coupon_member):
    assert post(api, redeem_url(coupon_issued_to_member.code), basket(coupon_member), key="k").status_code == 201

    response = post(api, redeem_url(coupon_issued_to_member.code), basket(coupon_member, receipt_no="R-2"), key="k")

    error_code(response, 409, "idempotency_conflict")
    assert CouponRedemption.objects.filter(coupon=coupon_issued_to_member).count() == 1


def test_a_redeem_without_an_idempotency_key_is_refused(api, coupon_issued_to_member, coupon_member):
    response = api.post(redeem_url(coupon_issued_to_member.code), data=json.dumps(basket(coupon_member)),
                        content_type="application/json")

    error = error_code(response, 400, "validation_error")
    assert "Idempotency-Key" in error["fields"]
    unchanged(coupon_issued_to_member)


# --- hostile and careless input -----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    pytest.param('{"receipt_no": "\\ud800", "basket_amount": "250.00"}', id="lone surrogate"),
    pytest.param('{"receipt_no": "R-1\\u0000", "basket_amount": "250.00"}', id="NUL in the receipt"),
    pytest.param('{"\\udfff": 1, "receipt_no": "R-1", "basket_amount": "250.00"}', id="surrogate as a key"),
    pytest.param('{"receipt_no": "R-1", "basket_amount": "9999999999999.99"}', id="thirteen-digit amount"),
    pytest.param('{"receipt_no": "R-1", "basket_amount": 1e400}', id="huge JSON number"),
    pytest.param('{"receipt_no": "R-1", "basket_amount": 250}', id="money as a number"),
    pytest.param('{"receipt_no": "R-1", "basket_amount": "0.00"}', id="empty basket"),
    pytest.param('{"receipt_no": "R-1", "basket_amount": "-30.00"}', id="negative basket"),
    pytest.param('{"receipt_no": "R-1", "basket_amount": "NaN"}', id="NaN text"),
    pytest.param('{"receipt_no": "R-1", "basket_amount": "250.00", "lines": [{"sku": "A", "amount": "1e9", '
                 '"quantity": 1}]}', id="line amount in exponent"),
    pytest.param('{"receipt_no": "R-1", "basket_amount": "250.00", "lines": [{"sku": "A", "amount": "10.00", '
                 '"quantity": 0}]}', id="line quantity 0"),
    pytest.param('{"receipt_no": "R-1", "basket_amount": "250.00", "lines": [{"sku": "A", "amount": "10.00", '
                 '"quantity": 1000000000000}]}', id="line quantity above the maximum"),
    pytest.param('{"receipt_no": "R-1", "basket_amount": "250.00", "lines": "all of them"}', id="lines as text"),
    pytest.param('{"receipt_no": "' + "R" * 65 + '", "basket_amount": "250.00"}', id="receipt too long"),
    pytest.param('{"member_no": 12345678, "receipt_no": "R-1", "basket_amount": "250.00"}', id="member as number"),
    pytest.param('[]', id="a list"),
])
@pytest.mark.parametrize("url", [redeem_url, validate_url])
def test_hostile_input_is_a_validation_error_and_changes_nothing(api, coupon_issued_to_member, raw, url):
    response = post(api, url(coupon_issued_to_member.code), raw)

    error_code(response, 400, "validation_error")
    unchanged(coupon_issued_to_member)


def test_a_code_longer_than_a_coupon_code_is_a_validation_error(api, coupon_member):
    response = post(api, redeem_url("A" * 41), basket(coupon_member))

    error = error_code(response, 400, "validation_error")
    assert "code" in error["fields"]


@pytest.mark.parametrize("path", ["/api/v1/coupons/AB%00CD/redeem", "/api/v1/coupons/%E5%88%B8/validate",
                                  "/api/v1/members/1%202/coupons"])
def test_nul_and_non_ascii_in_a_path_are_a_validation_error(api, path):
    response = api.post(path, data="{}", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")

    error_code(response, 400, "validation_error")
    assert not IdempotencyRecord.objects.exists()


# --- a member's coupons -------------------------------------------------------------------------------------


def test_a_members_coupons_list_those_usable_at_the_terminals_store(api, super001_api, coupon_issued_to_member,
                                                                   coupon_template_super_amount_off, coupon_member):
    super_coupon = coupon_issue(coupon_template_super_amount_off, coupon_member)
    url = f"/api/v1/members/{coupon_member.member_no}/coupons"

    at_dept, at_super = api.get(url), super001_api.get(url)

    assert at_dept.status_code == 200, at_dept.content
    (shown,) = at_dept.json()["results"]
    assert set(shown) == {"coupon_code", "name", "discount_text", "valid_until"}
    assert (shown["coupon_code"], shown["name"]) == (coupon_issued_to_member.code, "百货满200减30")
    assert "200" in shown["discount_text"] and "30" in shown["discount_text"]
    assert shown["valid_until"] is None
    assert [item["coupon_code"] for item in at_super.json()["results"]] == [super_coupon.code]


def test_used_expired_and_other_members_coupons_are_not_listed(api, coupon_issued_to_member, coupon_expired,
                                                              coupon_template_dept_threshold, coupon_member,
                                                              other_member):
    coupon_issue(coupon_template_dept_threshold, other_member)
    assert post(api, redeem_url(coupon_issued_to_member.code), basket(coupon_member)).status_code == 201

    response = api.get(f"/api/v1/members/{coupon_member.member_no}/coupons")

    assert response.json() == {"results": []}


def test_a_coupon_valid_for_some_days_shows_its_end_with_the_offset(api, coupon_template_claimable, coupon_member):
    coupon = coupon_issue(coupon_template_claimable, coupon_member)

    (shown,) = api.get(f"/api/v1/members/{coupon_member.member_no}/coupons").json()["results"]

    assert shown["valid_until"] == timezone.localtime(coupon.valid_until).isoformat()
    assert shown["valid_until"].endswith("+08:00")


def test_the_coupons_of_an_unknown_member_are_not_found(api, reference_stores):
    error_code(api.get("/api/v1/members/99999999/coupons"), 404, "not_found")


def test_a_member_number_longer_than_any_is_a_validation_error(api, reference_stores):
    error = error_code(api.get(f"/api/v1/members/{'1' * 65}/coupons"), 400, "validation_error")
    assert "member_no" in error["fields"]


def test_the_coupon_api_needs_a_terminal_key(client, coupon_issued_to_member, coupon_member):
    response = post(client, redeem_url(coupon_issued_to_member.code), basket(coupon_member))

    error_code(response, 401, "unauthenticated")
    error_code(client.get(f"/api/v1/members/{coupon_member.member_no}/coupons"), 401, "unauthenticated")
    unchanged(coupon_issued_to_member)


# --- claiming with a poster's code --------------------------------------------------------------------------


def claim_url(member) -> str:
    return f"/api/v1/members/{member.member_no}/coupons/claim"


def test_a_claim_gives_the_member_a_coupon_they_can_use_at_once(api, coupon_template_claimable, coupon_member):
    response = post(api, claim_url(coupon_member), {"claim_code": "spring20"})

    assert response.status_code == 201, response.content
    body = response.json()
    coupon = Coupon.objects.get(template=coupon_template_claimable, member=coupon_member)
    assert body == {"coupon_code": coupon.code, "name": "春季20元券", "discount_text": body["discount_text"],
                    "valid_until": timezone.localtime(coupon.valid_until).isoformat()}
    assert "20" in body["discount_text"]
    listed = api.get(f"/api/v1/members/{coupon_member.member_no}/coupons").json()["results"]
    assert [item["coupon_code"] for item in listed] == [coupon.code]
    assert post(api, redeem_url(coupon.code), basket(coupon_member)).json()["discount"] == "20.00"


def test_a_second_claim_is_already_claimed_and_issues_nothing(api, coupon_template_claimable, coupon_member):
    assert post(api, claim_url(coupon_member), {"claim_code": "SPRING20"}).status_code == 201

    response = post(api, claim_url(coupon_member), {"claim_code": "SPRING20"})

    error_code(response, 409, "already_claimed")
    assert Coupon.objects.filter(member=coupon_member).count() == 1
    coupon_template_claimable.refresh_from_db()
    assert coupon_template_claimable.issued_count == 1


def test_a_replayed_claim_returns_the_first_answer(api, coupon_template_claimable, coupon_member):
    first = post(api, claim_url(coupon_member), {"claim_code": "SPRING20"}, key="claim-1")

    again = post(api, claim_url(coupon_member), {"claim_code": "SPRING20"}, key="claim-1")

    assert (again.status_code, again.content) == (201, first.content)
    assert Coupon.objects.filter(member=coupon_member).count() == 1


def test_an_unknown_claim_code_is_not_found(api, coupon_template_claimable, coupon_member):
    error_code(post(api, claim_url(coupon_member), {"claim_code": "WINTER99"}), 404, "not_found")
    assert not Coupon.objects.exists()


def test_a_claim_for_an_unknown_member_is_not_found(api, coupon_template_claimable):
    response = post(api, "/api/v1/members/99999999/coupons/claim", {"claim_code": "SPRING20"})

    error_code(response, 404, "not_found")
    assert not Coupon.objects.exists()


@pytest.mark.parametrize("body", [{}, {"claim_code": ""}, {"claim_code": "   "}, {"claim_code": "X" * 33},
                                  {"claim_code": 20}, {"claim_code": "\ud800"}])
def test_a_claim_without_a_usable_code_is_a_validation_error(api, coupon_template_claimable, coupon_member, body):
    raw = json.dumps(body) if "\ud800" not in str(body.get("claim_code")) else '{"claim_code": "\\ud800"}'

    error_code(post(api, claim_url(coupon_member), raw), 400, "validation_error")
    assert not Coupon.objects.exists()


# --- the schema ---------------------------------------------------------------------------------------------


def test_the_schema_states_the_coupon_operations_as_the_server_reads_them(api):
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]

    redeem = paths["/api/v1/coupons/{code}/redeem"]["post"]
    validate = paths["/api/v1/coupons/{code}/validate"]["post"]
    listed = paths["/api/v1/members/{member_no}/coupons"]["get"]
    claim = paths["/api/v1/members/{member_no}/coupons/claim"]["post"]
    assert [operation["operationId"] for operation in (redeem, validate, listed, claim)] == [
        "coupons_redeem", "coupons_validate", "members_coupons_list", "members_coupons_claim"]
    assert {"201", "404", "409", "422"} <= set(redeem["responses"]) and "200" in validate["responses"]
    assert "reason" in redeem["responses"]["422"]["description"]
    code = next(item for item in redeem["parameters"] if item["name"] == "code")
    member_no = next(item for item in listed["parameters"] if item["name"] == "member_no")
    assert code["schema"]["pattern"] == r"^[\x21-\x7e]{1,40}$"
    assert member_no["schema"]["pattern"] == r"^[\x21-\x7e]{1,64}$"
    assert schema["components"]["schemas"]["Error"]["properties"]["reason"]["type"] == "string"
    lines = redeem["requestBody"]["content"]["application/json"]["schema"]
    body = schema["components"]["schemas"][lines["$ref"].rsplit("/", 1)[-1]]["properties"]["lines"]
    assert body["maxItems"] == 1000 and body["items"]["$ref"].endswith("/PurchaseLine")
