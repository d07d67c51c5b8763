"""Missed-receipt points (补积分): POST /api/v1/purchases/{receipt_no}/claim and the desk's F12 page."""

import itertools
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from membership.models import EarnRule, Member, PointsEntry, PointsHold, Purchase, PurchaseClaim
from membership.services import member_status_set, points_holds_release, purchase_record, purchase_return
from membership.services import purchases as purchases_module
from membership.services.claims import purchase_claim
from stores.models import Format, Store
from stores.services import terminal_create
from tests.membership.conftest import concurrently, kinds, register

_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def earn_rules(reference_stores):
    EarnRule.objects.create(format=Format.objects.get(code="SUPER"), amount_per_point=Decimal("2.00"))
    EarnRule.objects.create(format=Format.objects.get(code="AUTO"), amount_per_point=Decimal("1.00"), pending_days=7)


@pytest.fixture
def member(earn_rules, super001):
    return register(name="李建国", phone="13800138000", store=super001)


@pytest.fixture
def other_member(earn_rules, super001):
    return register(name="王芳", phone="13900139000", store=super001)


def walk_in(store_code: str = "SUPER001", receipt_no: str = "W-1", amount: str = "100.00", days_ago: float = 1):
    """A sale the POS sent without a member."""
    return purchase_record(store=Store.objects.select_related("format").get(code=store_code), member=None,
                           receipt_no=receipt_no, amount=Decimal(amount),
                           occurred_at=timezone.now() - timedelta(days=days_ago))


@pytest.fixture
def yesterdays_receipt(earn_rules):
    return walk_in()


@pytest.fixture
def super001_till(super001):
    _terminal, key = terminal_create(store_code="SUPER001", name="S1")
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def claim(client, receipt_no, member_no, key=None):
    return client.post(f"/api/v1/purchases/{receipt_no}/claim", data=json.dumps({"member_no": member_no}),
                       content_type="application/json", HTTP_IDEMPOTENCY_KEY=key or f"claim-{next(_keys)}")


def error_of(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code, response.content
    return response.json()["error"]["message"]


# --- the POS API -----------------------------------------------------------------------------------------------


def test_a_claim_credits_the_receipts_points_as_if_shown_at_the_till(super001_till, member, yesterdays_receipt):
    response = claim(super001_till, "W-1", member.member_no)

    assert response.status_code == 201, response.content
    assert response.json() == {"purchase_id": yesterdays_receipt.pk, "points_earned": 50, "points": 50,
                               "points_pending": 0}
    yesterdays_receipt.refresh_from_db()
    assert (yesterdays_receipt.member, yesterdays_receipt.points_earned) == (member, 50)
    entry = PointsEntry.objects.get(member=member)
    assert (entry.kind, entry.points, entry.store.code, entry.receipt_no) == (PointsEntry.Kind.EARN, 50, "SUPER001",
                                                                             "W-1")
    assert entry.reason == "收银台补积分，小票 W-1"
    assert entry.cause == yesterdays_receipt
    record = PurchaseClaim.objects.get()
    assert (record.member, record.channel, record.points, record.store.code) == (member, "pos", 50, "SUPER001")
    assert record.terminal is not None


def test_a_second_claim_of_the_receipt_is_already_claimed_and_credits_nothing(
        super001_till, member, other_member, yesterdays_receipt):
    claim(super001_till, "W-1", member.member_no)

    for member_no in (member.member_no, other_member.member_no):
        message = error_of(claim(super001_till, "W-1", member_no), 409, "already_claimed")
        assert member.member_no not in message
    assert PointsEntry.objects.count() == 1 and PurchaseClaim.objects.count() == 1
    assert Member.objects.get(pk=other_member.pk).points == 0


def test_a_receipt_recorded_for_another_member_at_the_till_is_refused_without_naming_them(
        super001_till, member, other_member, super001):
    purchase_record(store=super001, member=other_member, receipt_no="T-1", amount=Decimal("100.00"),
                    occurred_at=timezone.now() - timedelta(hours=2))

    message = error_of(claim(super001_till, "T-1", member.member_no), 409, "already_claimed")

    assert "在收银时已登记会员" in message and other_member.member_no not in message
    assert Member.objects.get(pk=member.pk).points == 0
    assert not PurchaseClaim.objects.exists()


def test_a_receipt_older_than_the_claim_window_is_refused(super001_till, member, settings):
    settings.PURCHASE_CLAIM_WINDOW_DAYS = 30
    walk_in(receipt_no="W-OLD", days_ago=31)
    walk_in(receipt_no="W-29", days_ago=29)

    error_of(claim(super001_till, "W-OLD", member.member_no), 422, "limit_exceeded")
    assert claim(super001_till, "W-29", member.member_no).status_code == 201
    assert Purchase.objects.get(receipt_no="W-OLD").member is None


def test_another_stores_receipt_is_not_found_at_this_terminal(super001_till, member, earn_rules):
    walk_in(store_code="DEPT001", receipt_no="D-1")

    error_of(claim(super001_till, "D-1", member.member_no), 404, "not_found")
    assert Purchase.objects.get(receipt_no="D-1").member is None


def test_an_unknown_member_is_not_found_and_a_frozen_one_refused(super001_till, member, hq_admin,
                                                                 yesterdays_receipt):
    error_of(claim(super001_till, "W-1", "800000000000"), 404, "not_found")
    member_status_set(member=member, status=Member.Status.FROZEN, actor=hq_admin, reason="核查")

    error_of(claim(super001_till, "W-1", member.member_no), 409, "validation_error")
    assert not PurchaseClaim.objects.exists()


def test_a_replay_of_the_key_answers_the_first_claim_again(super001_till, member, yesterdays_receipt):
    first = claim(super001_till, "W-1", member.member_no, key="claim-once")
    again = claim(super001_till, "W-1", member.member_no, key="claim-once")

    assert (again.status_code, again.content) == (201, first.content)
    assert PointsEntry.objects.count() == 1


def test_a_claim_in_the_return_window_is_pending_until_it_has_passed(super001_till, member):
    receipt = walk_in(store_code="AUTO001", receipt_no="A-1", amount="300.00", days_ago=2)
    _terminal, key = terminal_create(store_code="AUTO001", name="A1")

    response = claim(Client(HTTP_AUTHORIZATION=f"Bearer {key}"), "A-1", member.member_no)

    assert response.json() | {"purchase_id": None} == {"purchase_id": None, "points_earned": 300, "points": 0,
                                                        "points_pending": 300}
    hold = PointsHold.objects.get(purchase=receipt)
    assert (hold.member, hold.remaining, hold.status) == (member, 300, PointsHold.Status.PENDING)
    assert not PointsEntry.objects.filter(member=member).exists()
    # then: the nightly release credits it once the window of the sale has passed
    points_holds_release(now=receipt.occurred_at + timedelta(days=7, minutes=1))
    assert Member.objects.get(pk=member.pk).points == 300


def test_a_part_returned_before_the_claim_is_taken_off_and_a_later_return_takes_the_rest(member, super001):
    walk_in(receipt_no="W-R", amount="100.00")
    purchase_return(store=super001, original_receipt_no="W-R", receipt_no="W-R-1", amount=Decimal("40.00"))

    record = purchase_claim(store=super001, receipt_no="W-R", member=member, channel=PurchaseClaim.Channel.DESK)

    assert record.points == 30 and Member.objects.get(pk=member.pk).points == 30
    purchase_return(store=super001, original_receipt_no="W-R", receipt_no="W-R-2", amount=Decimal("60.00"))
    member.refresh_from_db()
    assert (member.points, member.points_debt) == (0, 0)


def test_a_sale_returned_in_full_has_nothing_to_claim(super001_till, member, super001, yesterdays_receipt):
    purchase_return(store=super001, original_receipt_no="W-1", receipt_no="W-1-R", amount=Decimal("100.00"))

    error_of(claim(super001_till, "W-1", member.member_no), 422, "validation_error")
    assert not PurchaseClaim.objects.exists()


def test_a_claim_does_not_announce_the_sale_again(member, super001, yesterdays_receipt, monkeypatch):
    heard = []
    monkeypatch.setattr(purchases_module, "PURCHASE_RECORDED", [lambda **kwargs: heard.append(kwargs)])

    purchase_claim(store=super001, receipt_no="W-1", member=member, channel=PurchaseClaim.Channel.DESK)

    assert heard == []


# --- the desk (F12) --------------------------------------------------------------------------------------------


@pytest.fixture
def super001_desk(client, super001, make_staff):
    client.force_login(make_staff("super001_desk", group="服务台", stores=[super001]))
    return client


def desk_claim(client, member, receipt_no):
    return client.post(f"/desk/members/{member.member_no}/claim/", {"receipt_no": receipt_no}, follow=True,
                       HTTP_ACCEPT_LANGUAGE="en")


def test_a_member_claims_yesterdays_receipt_at_the_desk_once(super001_desk, member, yesterdays_receipt):
    page = super001_desk.get(f"/desk/members/{member.member_no}/", HTTP_ACCEPT_LANGUAGE="en")
    assert f"/desk/members/{member.member_no}/claim/" in page.content.decode()

    response = desk_claim(super001_desk, member, "W-1")

    assert response.status_code == 200
    text = response.content.decode()
    assert "data-claimed" in text and "Receipt W-1 claimed" in text and "100.00" in text
    assert Member.objects.get(pk=member.pk).points == 50
    entry = PointsEntry.objects.get(member=member)
    assert entry.reason == "missed receipt W-1 claimed at the desk" and entry.operator.username == "super001_desk"
    again = desk_claim(super001_desk, member, "W-1")
    assert again.status_code == 409 and "already claimed" in again.content.decode()
    assert Member.objects.get(pk=member.pk).points == 50 and PointsEntry.objects.count() == 1


def test_a_clerk_of_another_store_cannot_claim_this_stores_receipt(client, make_staff, dept001, member,
                                                                   yesterdays_receipt):
    client.force_login(make_staff("dept001_desk", group="服务台", stores=[dept001]))

    response = desk_claim(client, member, "W-1")

    assert response.status_code == 404
    assert "No purchase with receipt W-1 at this store" in response.content.decode()
    assert not PurchaseClaim.objects.exists()


def test_an_empty_receipt_number_is_asked_for_again(super001_desk, member):
    response = desk_claim(super001_desk, member, "  ")

    assert response.status_code == 400
    assert "Type the receipt number" in response.content.decode()


def test_a_user_without_the_claim_permission_is_refused(client, super001_manager, member, yesterdays_receipt):
    client.force_login(super001_manager)

    response = desk_claim(client, member, "W-1")

    assert response.status_code == 403
    assert not PurchaseClaim.objects.exists()


# --- the admin ------------------------------------------------------------------------------------------------


def test_a_store_manager_sees_the_claims_of_their_store_only(client, super001_manager, member, super001, dept001):
    own = purchase_claim(store=super001, receipt_no=walk_in(receipt_no="W-S").receipt_no, member=member,
                         channel=PurchaseClaim.Channel.DESK)
    other = purchase_claim(store=dept001, receipt_no=walk_in(store_code="DEPT001", receipt_no="W-D").receipt_no,
                           member=member, channel=PurchaseClaim.Channel.DESK)
    client.force_login(super001_manager)

    listed = client.get("/admin/membership/purchaseclaim/")

    assert listed.status_code == 200
    assert "W-S" in listed.content.decode() and "W-D" not in listed.content.decode()
    assert client.get(f"/admin/membership/purchaseclaim/{own.pk}/change/").status_code == 200
    assert client.get(f"/admin/membership/purchaseclaim/{other.pk}/change/").status_code == 404
    assert client.get("/admin/membership/purchaseclaim/add/").status_code == 403


def test_the_demo_claims_a_few_walk_in_receipts_once(reference_stores):
    from membership import demo
    from membership.demo.claims import claims_seed

    demo.seed_members(count=40)
    demo.seed_walk_in_sales()

    made = claims_seed()

    assert made == 3 and PurchaseClaim.objects.count() == made
    assert set(PurchaseClaim.objects.values_list("store__code", flat=True)) == {"SUPER001", "DEPT001"}
    assert claims_seed() == 0 and PurchaseClaim.objects.count() == made


# --- concurrency (PostgreSQL) ----------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twenty_concurrent_claims_of_one_receipt_credit_once(member, yesterdays_receipt):
    store = Store.objects.select_related("format").get(code="SUPER001")

    results = concurrently(20, lambda index: purchase_claim(
        store=store, receipt_no="W-1", member=member.member_no, channel=PurchaseClaim.Channel.POS))

    assert kinds(results) == {"PurchaseClaim": 1, "AlreadyClaimed": 19}
    assert PurchaseClaim.objects.count() == 1
    assert PointsEntry.objects.filter(member=member).count() == 1
    assert Member.objects.get(pk=member.pk).points == 50
