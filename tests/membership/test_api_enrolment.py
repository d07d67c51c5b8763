"""POST /api/v1/members: enrolment at the till (CONTRACT section 3)."""

import itertools
import json
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from membership.models import EarnRule, Member, MemberEvent, PointsEntry
from membership.services import member_status_set
from stores.models import Format
from stores.services import terminal_create
from tests.membership.conftest import concurrently, kinds, register

MEMBERS, PURCHASES = "/api/v1/members", "/api/v1/purchases"
_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def till(store_code: str, name: str = "S1") -> Client:
    _terminal, key = terminal_create(store_code=store_code, name=name)
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.fixture
def super001_till(super001):
    """A test client acting as terminal S1 of SUPER001."""
    return till("SUPER001")


def post(client, url, body, key=None):
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       HTTP_IDEMPOTENCY_KEY=key or f"enrol-{next(_keys)}")


def enrol(client, key=None, **changes):
    return post(client, MEMBERS, {"name": "王秀兰", "phone": "13912345678", "consent": True, **changes}, key=key)


def test_a_new_customer_is_enrolled_at_the_terminals_store_through_the_pos(super001_till, super001):
    response = enrol(super001_till)

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"member_no", "name_masked", "tier", "points", "status"}
    member = Member.objects.get(member_no=body["member_no"])
    assert body["name_masked"] == "王**" and body["points"] == 0 and body["status"] == "active"
    assert body["tier"] == {"code": member.tier.code, "name": member.tier.name,
                            "discount_rate": f"{member.tier.discount_rate:.2f}"}
    assert (member.name, member.phone, member.registered_store, member.registered_channel) == (
        "王秀兰", "13912345678", super001, Member.Channel.POS)
    assert member.contact_channel == Member.ContactChannel.SMS
    assert member.marketing_consent is True and member.marketing_consent_at is not None
    assert MemberEvent.objects.filter(member=member, kind=MemberEvent.Kind.REGISTERED, store=super001).exists()


def test_no_consent_is_recorded_as_no_consent_without_a_time(super001_till):
    response = enrol(super001_till, consent=False)

    member = Member.objects.get(member_no=response.json()["member_no"])
    assert member.marketing_consent is False and member.marketing_consent_at is None


def test_a_phone_already_a_members_own_answers_that_member_with_200_and_creates_nothing(super001_till, dept001):
    older = register(name="李建国", phone="13912345678", store=dept001)
    register(name="李小明", phone="13912345678", store=dept001)  # the family's second member, registered later

    response = enrol(super001_till, name="李四", phone="13912345678")

    assert response.status_code == 200, response.content
    assert response.json()["member_no"] == older.member_no
    assert response.json()["name_masked"] == "李**"
    assert Member.objects.count() == 2


def test_a_family_contact_phone_does_not_count_as_the_customers_own(super001_till, dept001):
    grandmother = register(name="张秀英", family_phone="13912345678", store=dept001)

    response = enrol(super001_till)

    assert response.status_code == 201
    assert response.json()["member_no"] != grandmother.member_no


def test_a_phone_held_only_by_a_closed_member_enrols_anew(super001_till, dept001, hq_admin):
    closed = register(name="王秀兰", phone="13912345678", store=dept001)
    member_status_set(member=closed, status=Member.Status.CLOSED, actor=hq_admin, reason="注销")

    response = enrol(super001_till)

    assert response.status_code == 201
    assert response.json()["member_no"] != closed.member_no


def test_an_active_member_is_preferred_to_an_older_frozen_one(super001_till, dept001, hq_admin):
    frozen = register(name="王秀兰", phone="13912345678", store=dept001)
    member_status_set(member=frozen, status=Member.Status.FROZEN, actor=hq_admin, reason="核查")
    active = register(name="王秀兰", phone="13912345678", store=dept001)

    response = enrol(super001_till)

    assert (response.status_code, response.json()["member_no"]) == (200, active.member_no)


@pytest.mark.parametrize(("changes", "field"), [
    ({"phone": "12345"}, "phone"),
    ({"phone": "\t13912345678"}, "phone"),
    ({"phone": "+86 139 1234 5678"}, "phone"),
    ({"phone": ""}, "phone"),
    ({"name": "   "}, "name"),
    ({"name": "王" * 51}, "name"),
    ({"name": 0}, "name"),
    ({"consent": "true"}, "consent"),
    ({"consent": 1}, "consent"),
])
def test_a_bad_field_is_400_naming_it_and_enrols_nobody(super001_till, changes, field):
    response = enrol(super001_till, **changes)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["fields"], error
    assert not Member.objects.exists()


@pytest.mark.parametrize("missing", ["name", "phone", "consent"])
def test_each_field_is_required(super001_till, missing):
    body = {"name": "王秀兰", "phone": "13912345678", "consent": True}
    del body[missing]

    response = post(super001_till, MEMBERS, body)

    assert response.status_code == 400
    assert missing in response.json()["error"]["fields"]


def test_a_replay_of_the_key_answers_the_same_and_enrols_once(super001_till):
    first = enrol(super001_till, key="enrol-once")
    again = enrol(super001_till, key="enrol-once")

    assert (again.status_code, again.content) == (201, first.content)
    assert again["Idempotent-Replayed"] == "true"
    assert Member.objects.count() == 1


def test_the_same_key_with_another_body_is_an_idempotency_conflict(super001_till):
    enrol(super001_till, key="enrol-twice")

    response = enrol(super001_till, key="enrol-twice", name="王芳")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_conflict"


def test_another_stores_terminal_enrols_at_its_own_store(super001_till, dept001):
    response = enrol(till("DEPT001", "D1"))

    assert response.status_code == 201
    assert Member.objects.get(member_no=response.json()["member_no"]).registered_store == dept001


def test_enrolment_needs_a_terminal_key(client, super001):
    response = post(client, MEMBERS, {"name": "王秀兰", "phone": "13912345678", "consent": True})

    assert response.status_code == 401
    assert not Member.objects.exists()


def test_a_customer_enrolled_at_super001_earns_on_the_next_purchase(super001_till):
    EarnRule.objects.create(format=Format.objects.get(code="SUPER"), amount_per_point=Decimal("2.00"))
    member_no = enrol(super001_till).json()["member_no"]

    response = post(super001_till, PURCHASES, {
        "member_no": member_no, "receipt_no": "S-1", "amount": "88.00",
        "occurred_at": timezone.localtime().isoformat(), "payment_method": "CASH",
    })

    assert response.status_code == 201, response.content
    assert response.json()["points_earned"] == 44 and response.json()["points"] == 44
    entry = PointsEntry.objects.get(member__member_no=member_no)
    assert (entry.kind, entry.points, entry.store.code) == (PointsEntry.Kind.EARN, 44, "SUPER001")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_ten_tills_enrolling_one_phone_at_once_make_one_member(reference_stores):
    from membership.services.enrolment import member_enrol_at_till
    from stores.models import Store

    store = Store.objects.select_related("format").get(code="SUPER001")

    results = concurrently(10, lambda index: member_enrol_at_till(
        name=f"王秀兰{index}", phone="13912345678", consent=False, store=store))

    assert kinds(results) == {"Enrolment": 10}
    assert sum(result.created for result in results) == 1
    assert len({result.member.pk for result in results}) == 1
    assert Member.objects.filter(phone="13912345678").count() == 1
