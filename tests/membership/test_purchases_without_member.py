"""Sales to customers who showed no membership (CONTRACT section 3, POST /api/v1/purchases with member_no null or
left out): recorded, counted once per receipt, earning nothing; and every place that reads purchases copes."""

import itertools
import json
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from membership import demo
from membership.errors import PurchaseLimitExceeded, ReceiptAlreadyRecorded
from membership.models import EarnRule, Member, PointsEntry, PointsHold, Purchase, PurchaseReturn, Tier
from membership.queries import members_in_scope_count
from membership.services import (
    member_qualifying_spend,
    purchase_record,
    purchase_return,
    purchases_move_on_merge,
    tiers_evaluate,
)
from stores.models import Format, Store
from tests.membership.conftest import register

D = Decimal
PURCHASES, RETURNS = "/api/v1/purchases", "/api/v1/purchases/returns"
_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def no_campaign_listeners(monkeypatch):
    """Only membership's own behaviour: the campaigns app's listeners stay out."""
    monkeypatch.setattr("membership.services.points.EARN_BONUSES", [])
    monkeypatch.setattr("membership.services.purchases.PURCHASE_RECORDED", [])
    monkeypatch.setattr("membership.services.purchases.PURCHASE_RETURNED", [])


@pytest.fixture
def earn_rules(reference_stores):
    EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=D("1.00"),
                            max_receipt_amount=D("50000.00"))
    EarnRule.objects.create(format=Format.objects.get(code="AUTO"), amount_per_point=D("1.00"), pending_days=7)


@pytest.fixture
def member(earn_rules, dept001):
    return register(name="李建国", phone="13800138000", store=dept001)


def post(client, url, body, key=None):
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       HTTP_IDEMPOTENCY_KEY=key or f"walk-in-{next(_keys)}")


def walk_in_sale(**changes) -> dict:
    body = {"receipt_no": "R-1", "amount": "100.00", "occurred_at": timezone.localtime().isoformat(),
            "payment_method": "cash",
            "lines": [{"sku": "6920152400012", "category": "FOOD", "amount": "100.00", "quantity": 1}]}
    body.update(changes)
    return body


def sell(receipt_no="R-1", amount="100.00", store="DEPT001") -> Purchase:
    return purchase_record(store=Store.objects.get(code=store), member=None, receipt_no=receipt_no,
                           amount=D(amount), occurred_at=timezone.now())


# --- the POS API -----------------------------------------------------------------------------------------------


def test_a_sale_without_member_no_is_recorded_and_earns_nothing(api, earn_rules, ledgers_balanced):
    response = post(api, PURCHASES, walk_in_sale())

    assert response.status_code == 201, response.content
    purchase = Purchase.objects.get()
    assert response.json() == {"purchase_id": purchase.pk, "points_earned": 0, "points": None, "points_pending": 0,
                               "coupons": []}
    assert (purchase.member, purchase.amount, purchase.points_earned, purchase.store.code) == (
        None, D("100.00"), 0, "DEPT001")
    assert not PointsEntry.objects.exists() and not PointsHold.objects.exists()
    ledgers_balanced()


def test_member_no_null_is_a_sale_without_a_member(api, earn_rules):
    response = post(api, PURCHASES, walk_in_sale(member_no=None))

    assert response.status_code == 201, response.content
    assert (response.json()["points_earned"], response.json()["points"]) == (0, None)
    assert Purchase.objects.get().member_id is None


def test_a_blank_member_no_is_refused(api, earn_rules):
    response = post(api, PURCHASES, walk_in_sale(member_no="  "))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "member_no" in response.json()["error"]["fields"]
    assert not Purchase.objects.exists()


def test_a_replay_returns_the_same_bytes_and_records_nothing_more(api, earn_rules):
    body = walk_in_sale()
    first = post(api, PURCHASES, body, key="walk-in-replay")

    again = post(api, PURCHASES, body, key="walk-in-replay")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.content == first.content
    assert Purchase.objects.count() == 1


def test_the_same_receipt_under_another_key_is_refused(api, member, earn_rules):
    post(api, PURCHASES, walk_in_sale())

    again = post(api, PURCHASES, walk_in_sale(amount="50.00"))
    with_member = post(api, PURCHASES, walk_in_sale(member_no=member.member_no))

    for response in (again, with_member):
        assert response.status_code == 409, response.content
        assert response.json()["error"]["code"] == "validation_error"
        assert "receipt_no" in response.json()["error"]["fields"]
    assert Purchase.objects.count() == 1
    assert Member.objects.get(pk=member.pk).points == 0


def test_a_return_of_a_sale_without_a_member_takes_back_nothing(api, earn_rules, ledgers_balanced):
    post(api, PURCHASES, walk_in_sale())

    response = post(api, RETURNS, {"original_receipt_no": "R-1", "receipt_no": "RT-1", "amount": "30.00"})

    assert response.status_code == 201, response.content
    record = PurchaseReturn.objects.get()
    assert response.json() == {"return_id": record.pk, "purchase_id": record.purchase_id, "points_reversed": 0,
                               "points_owed": 0, "points": None}
    assert Purchase.objects.get().returned_amount == D("30.00")
    assert not PointsEntry.objects.exists()
    ledgers_balanced()


# --- the service -------------------------------------------------------------------------------------------------


def test_the_format_s_receipt_limit_applies_without_a_member(earn_rules):
    with pytest.raises(PurchaseLimitExceeded):
        sell(amount="50000.01")

    assert not Purchase.objects.exists()


def test_a_sale_in_a_format_with_a_return_window_holds_nothing(earn_rules):
    purchase = sell(store="AUTO001", amount="900.00")

    assert (purchase.points_earned, PointsHold.objects.count()) == (0, 0)


def test_the_service_refuses_a_second_copy_of_the_receipt(earn_rules):
    first = sell()

    with pytest.raises(ReceiptAlreadyRecorded) as refused:
        sell(amount="20.00")

    assert refused.value.params["record_id"] == first.pk


def test_a_full_return_of_a_sale_without_a_member(earn_rules):
    purchase = sell()

    record = purchase_return(store=purchase.store, original_receipt_no="R-1", receipt_no="RT-1", amount=D("100.00"))

    assert (record.points_reversed, record.points_debt) == (0, 0)
    assert Purchase.objects.get().net_amount == D("0.00")


def test_the_database_refuses_points_on_a_sale_without_a_member(earn_rules):
    purchase = sell()

    with pytest.raises(IntegrityError), transaction.atomic():
        Purchase.objects.filter(pk=purchase.pk).update(points_earned=5)


# --- everything that reads purchases ------------------------------------------------------------------------------


def test_sales_without_a_member_count_in_no_member_s_spend_or_scope(member, dept001):
    purchase_record(store=dept001, member=member, receipt_no="M-1", amount=D("80.00"), occurred_at=timezone.now())
    sell(amount="5000.00")
    other_store_buyer = register(name="王芳", phone="13900139000", store=Store.objects.get(code="SUPER001"))
    purchase_record(store=dept001, member=other_store_buyer, receipt_no="M-2", amount=D("10.00"),
                    occurred_at=timezone.now())

    assert member_qualifying_spend(member) == D("80.00")
    assert members_in_scope_count([dept001.pk]) == 2  # the registered member and the other store's buyer
    tiers_evaluate()
    assert Member.objects.get(pk=member.pk).tier == Tier.default()


def test_a_merge_moves_no_sale_without_a_member(member, dept001):
    other = register(name="李建国", phone="13700137000", store=dept001)
    purchase_record(store=dept001, member=other, receipt_no="M-1", amount=D("80.00"), occurred_at=timezone.now())
    walk_in = sell()

    purchases_move_on_merge(merged=other, survivor=member, request=None)

    assert Purchase.objects.get(receipt_no="M-1").member_id == member.pk
    assert Purchase.objects.get(pk=walk_in.pk).member_id is None


@pytest.fixture
def en_client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def test_the_purchase_list_and_page_show_a_sale_without_a_member(en_client, hq_admin, member, dept001):
    purchase_record(store=dept001, member=member, receipt_no="M-1", amount=D("80.00"), occurred_at=timezone.now())
    walk_in = sell(receipt_no="W-1")
    en_client.force_login(hq_admin)

    listing = en_client.get(reverse("admin:membership_purchase_changelist"))
    page = en_client.get(reverse("admin:membership_purchase_change", args=[walk_in.pk]))
    found = en_client.get(reverse("admin:membership_purchase_changelist"), {"q": "W-1"})

    assert listing.status_code == page.status_code == found.status_code == 200
    text = listing.content.decode()
    assert "W-1" in text and "M-1" in text and "— <span" in text and "non-member" in text
    assert "A sale without a member earns no points." in page.content.decode()
    assert "W-1" in found.content.decode()


def test_the_return_list_shows_the_return_of_a_sale_without_a_member(en_client, hq_admin, earn_rules):
    purchase = sell()
    purchase_return(store=purchase.store, original_receipt_no="R-1", receipt_no="RT-1", amount=D("10.00"))
    en_client.force_login(hq_admin)

    response = en_client.get(reverse("admin:membership_purchasereturn_changelist"))

    assert response.status_code == 200
    assert "RT-1" in response.content.decode()


def test_a_store_manager_sees_the_store_s_sales_without_a_member(en_client, dept001_manager, earn_rules):
    walk_in = sell(receipt_no="W-1")
    elsewhere = sell(receipt_no="W-2", store="AUTO001")
    en_client.force_login(dept001_manager)

    mine = en_client.get(reverse("admin:membership_purchase_change", args=[walk_in.pk]))
    theirs = en_client.get(reverse("admin:membership_purchase_change", args=[elsewhere.pk]))

    assert (mine.status_code, theirs.status_code) == (200, 404)


# --- demo data --------------------------------------------------------------------------------------------------


def test_demo_sales_without_a_member_at_every_store_twice_add_nothing(reference_stores, ledgers_balanced):
    created = demo.seed_walk_in_sales()
    again = demo.seed_walk_in_sales()

    open_stores = Store.objects.exclude(status=Store.Status.CLOSED)
    assert created == open_stores.count() * demo.WALK_IN_SALES_PER_STORE > 0
    assert again == 0
    assert Purchase.objects.filter(member=None).count() == created
    assert set(Purchase.objects.values_list("store_id", flat=True)) == set(open_stores.values_list("pk", flat=True))
    assert not Purchase.objects.filter(points_earned__gt=0).exists()
    assert not Purchase.objects.filter(occurred_at__gt=timezone.now()).exists()
    ledgers_balanced()
