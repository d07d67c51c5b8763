"""GET /api/v1/members/lookup (CONTRACT section 3)."""

from datetime import date

import pytest

from core.pii import resident_id_check_digit
from membership.api import LOOKUP_LIMIT
from membership.models import Member, MemberCard, MemberIdentity, PointsEntry, Tier
from membership.services import member_merge_request, member_status_set, points_post
from tests.membership.conftest import register, resident_id

URL = "/api/v1/members/lookup"
VALID_ID = resident_id(date(1948, 3, 12), serial=1)
WRONG_CHECK_DIGIT = VALID_ID[:17] + ("1" if VALID_ID[17] == "0" else "0")
NO_SUCH_BIRTH_DATE = "50010319480230002" + resident_id_check_digit("50010319480230002")


def lookup(api, **params):
    response = api.get(URL, params)
    return response, response.json()


def numbers(body) -> list[str]:
    return [row["member_no"] for row in body["results"]]


@pytest.mark.parametrize(("tier", "rate"), [("NORMAL", "0.00"), ("SILVER", "0.02"), ("GOLD", "0.05"),
                                            ("PLATINUM", "0.08")])
def test_lookup_gives_the_tier_s_discount_rate_with_two_decimals(api, member_with_phone, tier, rate):
    Member.objects.filter(pk=member_with_phone.pk).update(tier=Tier.objects.get(code=tier))

    response, body = lookup(api, member_no=member_with_phone.member_no)

    assert response.status_code == 200
    assert body["results"][0]["tier"] == {"code": tier, "name": Tier.objects.get(code=tier).name,
                                          "discount_rate": rate}


def test_lookup_rounds_a_finer_discount_rate_down(api, member_with_phone):
    Tier.objects.filter(code="NORMAL").update(discount_rate="0.0850")

    _response, body = lookup(api, member_no=member_with_phone.member_no)

    assert body["results"][0]["tier"]["discount_rate"] == "0.08"


def test_lookup_by_phone_answers_in_the_contract_shape(api, member_with_phone):
    # given
    points_post(member=member_with_phone, points=150, kind=PointsEntry.Kind.EARN)
    # when
    response, body = lookup(api, phone="13800138000")
    # then
    assert response.status_code == 200
    assert body == {
        "results": [
            {
                "member_no": member_with_phone.member_no,
                "name_masked": "李**",
                "tier": {"code": "NORMAL", "name": "普卡", "discount_rate": "0.00"},
                "points": 150,
                "status": "active",
                "benefits": [],
            }
        ]
    }
    assert isinstance(body["results"][0]["points"], int)


def test_lookup_by_phone_lists_every_member_of_a_family_sharing_it(api, dept001):
    # given: parents with the phone, a grandmother who gave it as her family contact
    father = register(name="王建华", phone="13912345678", store=dept001)
    mother = register(name="刘丽", phone="139 1234 5678", store=dept001)
    grandmother = register(name="王秀兰", family_phone="13912345678", store=dept001)
    register(name="赵伟", phone="13912345679", store=dept001)
    # when
    response, body = lookup(api, phone="+86 139-1234-5678")
    # then: everyone using the phone, oldest registration first
    assert response.status_code == 200
    assert numbers(body) == [father.member_no, mother.member_no, grandmother.member_no]


def test_lookup_by_own_member_number_finds_the_member(api, member_with_phone):
    response, body = lookup(api, member_no=member_with_phone.member_no)

    assert response.status_code == 200
    assert numbers(body) == [member_with_phone.member_no]


def test_lookup_by_legacy_member_number_finds_the_member(api, member_with_phone):
    # given
    MemberIdentity.objects.create(member=member_with_phone, source="DEPT_CRM", external_no="1000234567")
    # when
    response, body = lookup(api, member_no="1000234567")
    # then
    assert response.status_code == 200
    assert numbers(body) == [member_with_phone.member_no]


def test_lookup_by_number_of_a_merged_member_answers_with_the_survivor(api, dept001, hq_admin):
    # given
    survivor = register(name="陈国强", phone="13700001111", store=dept001)
    merged = register(name="陈国强", phone="13700002222", store=dept001)
    MemberIdentity.objects.create(member=merged, source="SUPER_CRM", external_no="V300000123")
    member_merge_request(survivor=survivor, merged=merged, requested_by=hq_admin, reason="同一人两张卡")
    assert Member.objects.get(pk=merged.pk).status == Member.Status.MERGED
    # when
    by_own_number = lookup(api, member_no=merged.member_no)[1]
    by_legacy_number = lookup(api, member_no="V300000123")[1]
    by_old_phone = lookup(api, phone="13700002222")[1]
    # then
    assert numbers(by_own_number) == [survivor.member_no]
    assert numbers(by_legacy_number) == [survivor.member_no]
    assert numbers(by_old_phone) == []


def test_lookup_by_member_card_number_finds_the_holder(api, dept001):
    # given
    holder = register(name="黄桂英", phone="13600136000", card_no="6688000000000042", store=dept001)
    # when
    response, body = lookup(api, card_no="6688000000000042")
    # then
    assert response.status_code == 200
    assert numbers(body) == [holder.member_no]
    assert MemberCard.objects.get(card_no="6688000000000042").member == holder


def test_lookup_by_id_number_accepts_a_lowercase_x(api, dept001):
    # given: a number whose check character is X
    number = next(
        candidate for serial in range(1, 400)
        if (candidate := resident_id(date(1950, 6, 1), serial=serial)).endswith("X")
    )
    member = register(name="周淑珍", id_type="resident_id", id_number=number, family_phone="13500135000",
                      store=dept001)
    # when
    response, body = lookup(api, id_number=number.lower())
    # then
    assert response.status_code == 200
    assert numbers(body) == [member.member_no]


def test_lookup_lists_frozen_and_closed_members_with_their_status(api, dept001, hq_admin):
    # given
    frozen = register(name="孙德福", phone="13311112222", store=dept001)
    closed = register(name="孙玉梅", phone="13311112222", store=dept001)
    member_status_set(member=frozen, status=Member.Status.FROZEN, actor=hq_admin, reason="卡片可疑")
    member_status_set(member=closed, status=Member.Status.CLOSED, actor=hq_admin, reason="本人注销")
    # when
    body = lookup(api, phone="13311112222")[1]
    # then
    assert [(row["member_no"], row["status"]) for row in body["results"]] == [
        (frozen.member_no, "frozen"), (closed.member_no, "closed"),
    ]


def test_lookup_without_a_match_is_an_empty_list(api, member_with_phone):
    for params in ({"phone": "13999999999"}, {"member_no": "800000000000"}, {"card_no": "123"},
                   {"id_number": resident_id(date(1980, 1, 1))}):
        response, body = lookup(api, **params)
        assert response.status_code == 200, params
        assert body == {"results": []}, params


def test_lookup_answers_at_most_the_limit_in_a_stable_order(api, dept001):
    # given: more members on one phone than a till is shown
    members = [register(name=f"郭{index:02d}", phone="13722223333", store=dept001) for index in range(LOOKUP_LIMIT + 3)]
    # when
    first = numbers(lookup(api, phone="13722223333")[1])
    second = numbers(lookup(api, phone="13722223333")[1])
    # then
    assert first == [member.member_no for member in members[:LOOKUP_LIMIT]]
    assert second == first


def test_lookup_without_any_parameter_names_all_four_fields(api):
    response, body = lookup(api)

    assert response.status_code == 400
    assert body["error"]["code"] == "validation_error"
    assert set(body["error"]["fields"]) == {"phone", "member_no", "card_no", "id_number"}


def test_lookup_with_only_an_empty_parameter_asks_for_one_of_the_four(api):
    response, body = lookup(api, phone="")

    assert response.status_code == 400
    assert set(body["error"]["fields"]) == {"phone", "member_no", "card_no", "id_number"}


def test_lookup_with_two_parameters_names_both(api, member_with_phone):
    response, body = lookup(api, phone="13800138000", member_no=member_with_phone.member_no)

    assert response.status_code == 400
    assert body["error"]["code"] == "validation_error"
    assert set(body["error"]["fields"]) == {"phone", "member_no"}


def test_lookup_with_a_parameter_given_twice_is_refused(api, member_with_phone):
    response = api.get(f"{URL}?phone=13800138000&phone=13800138001")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"phone"}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"phone": "1380013800a"}, "phone"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "1" * 40}, "phone"),
        ({"member_no": "8" * 65}, "member_no"),
        ({"member_no": "80000 0000000"}, "member_no"),
        ({"member_no": "会员号"}, "member_no"),
        ({"card_no": "6688\x00123"}, "card_no"),
        ({"card_no": "6688;drop"}, "card_no"),
        ({"card_no": "9" * 33}, "card_no"),
        ({"id_number": VALID_ID[:17]}, "id_number"),
        ({"id_number": WRONG_CHECK_DIGIT}, "id_number"),
        ({"id_number": NO_SUCH_BIRTH_DATE}, "id_number"),
        ({"id_number": "身份证"}, "id_number"),
        ({"id_number": "9" * 200}, "id_number"),
    ],
)
def test_lookup_with_an_ill_formed_value_is_a_validation_error_naming_the_field(api, params, field):
    response, body = lookup(api, **params)

    assert response.status_code == 400
    assert body["error"]["code"] == "validation_error"
    assert list(body["error"]["fields"]) == [field]
    assert body["error"]["fields"][field][0]


@pytest.mark.django_db
def test_lookup_without_a_terminal_key_is_unauthenticated(client):
    response = client.get(URL, {"phone": "13800138000"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_lookup_is_described_in_the_schema(api):
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/v1/members/lookup"]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} == {
        "phone", "member_no", "card_no", "id_number",
    }
    # 429 and 503 are the frame's, on every operation (core/schema.py).
    assert set(operation["responses"]) == {"200", "400", "401", "429", "503"}
