"""The admin for tiers, points, purchases and gifts: configuration, read-only ledgers, store scope, the member page,
points adjustments through approval, paid tiers, gift stock and the list of points expiring soon."""

import csv
import io
import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.models import ApprovalRequest
from core.models import PersonalDataAccess
from membership.models import (
    EarnRule,
    Gift,
    GiftStock,
    GiftStockMovement,
    Member,
    PointsEntry,
    PointsHold,
    PointsPolicy,
    Purchase,
    Tier,
    TierSubscription,
)
from membership.services import gift_stock_receive, paid_tier_buy, points_post, purchase_record, purchase_return
from stores.models import Format, StaffProfile, Store
from tests.factories import StaffFactory
from tests.membership.conftest import register

pytestmark = pytest.mark.django_db

MEMBERS = "/admin/membership/member/"
LEDGER = "/admin/membership/pointsentry/"
PURCHASES = "/admin/membership/purchase/"
GIFT_STOCK = "/admin/membership/giftstock/"


def _change_url(member) -> str:
    return f"{MEMBERS}{member.pk}/change/"


def _messages(response) -> list[str]:
    return [str(message.message) for message in response.context["messages"]]


@pytest.fixture
def en_client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def auto001(reference_stores):
    return Store.objects.get(code="AUTO001")


@pytest.fixture
def auto_return_window(reference_stores):
    """Car dealerships hold points 7 days, in case the car comes back."""
    return EarnRule.objects.create(format=Format.objects.get(code="AUTO"), amount_per_point=Decimal("10.00"),
                                   pending_days=7)


@pytest.fixture
def shopper(dept001, super001, auto001, auto_return_window):
    """李建国: a basket at SUPER001 and at DEPT001 (one partly returned), a car held at AUTO001, and Plus."""
    member = register(name="李建国", phone="13800138000", store=dept001)
    now = timezone.now()
    purchase_record(store=super001, member=member, receipt_no="S-0001", amount=Decimal("300.00"),
                    occurred_at=now - timedelta(days=20))
    purchase_record(store=dept001, member=member, receipt_no="D-0001", amount=Decimal("1200.00"),
                    occurred_at=now - timedelta(days=10))
    purchase_return(store=dept001, receipt_no="D-R-0001", original_receipt_no="D-0001", amount=Decimal("200.00"),
                    occurred_at=now - timedelta(days=9))
    purchase_record(store=auto001, member=member, receipt_no="A-0001", amount=Decimal("150000.00"),
                    occurred_at=now - timedelta(days=1))
    paid_tier_buy(member=member, tier=Tier.objects.get(code="PLUS"), store=dept001)
    return Member.objects.get(pk=member.pk)


@pytest.fixture
def super001_shopper(super001):
    member = register(name="王芳", phone="13700137000", store=super001)
    purchase_record(store=super001, member=member, receipt_no="S-0002", amount=Decimal("88.80"),
                    occurred_at=timezone.now() - timedelta(days=2))
    return member


# --- the member page ----------------------------------------------------------------------------


def test_member_page_shows_tiers_points_ledger_purchases_by_format_and_tier_history(en_client, hq_admin, shopper):
    en_client.force_login(hq_admin)

    response = en_client.get(_change_url(shopper))

    html = response.content.decode()
    assert response.status_code == 200
    # tiers: earned and paid with its end date
    assert "普卡 (NORMAL)" in html
    assert f"Plus会员 until {shopper.paid_tier_until:%Y-%m-%d}" in html
    # points: balance, pending in the return window, the recent ledger with its cause and legal entity
    assert "15000" in html and "in a return window" in html
    assert "receipt S-0001" in html and "return D-R-0001" in html
    assert "嘉禾超市连锁有限公司" in html
    assert f'{LEDGER}?member__id__exact={shopper.pk}' in html
    # purchases by format over 12 months, net of returns
    assert re.search(r"<td>百货</td><td>1</td><td>1,000.00</td>", html)
    assert re.search(r"<td>超市</td><td>1</td><td>300.00</td>", html)
    assert re.search(r"<td>汽贸</td><td>1</td><td>150,000.00</td>", html)
    assert "D-0001" in html and "A-0001" in html
    # tier history and the member's tools
    assert "paid tier bought" in html
    assert "Request a points adjustment" in html and "Sell or renew paid tier" in html


def test_member_page_renders_in_chinese(client, hq_admin, shopper):
    client.force_login(hq_admin)

    response = client.get(_change_url(shopper), HTTP_ACCEPT_LANGUAGE="zh-hans")

    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="zh-hans"' in html
    assert "Plus会员" in html and "S-0001" in html


def test_member_page_shows_points_owed_after_a_return_of_spent_points(en_client, hq_admin, dept001):
    # given: 1000 points earned, 900 spent, then the whole purchase returned
    member = register(name="赵丽", phone="13600136000", store=dept001)
    purchase_record(store=dept001, member=member, receipt_no="D-9", amount=Decimal("1000.00"),
                    occurred_at=timezone.now() - timedelta(days=3))
    points_post(member=member, points=-900, kind=PointsEntry.Kind.REDEEM, store=dept001, reason="test")
    purchase_return(store=dept001, receipt_no="D-R-9", original_receipt_no="D-9", amount=Decimal("1000.00"),
                    occurred_at=timezone.now())
    en_client.force_login(hq_admin)
    # when
    html = en_client.get(_change_url(member)).content.decode()
    # then
    assert Member.objects.get(pk=member.pk).points_debt == 900
    assert "900 (<a" in html and "debt ledger" in html


# --- points ledger: read-only, filtered, searched exactly -------------------------------------------


def test_points_ledger_cannot_be_added_changed_or_deleted(en_client, hq_admin, shopper):
    en_client.force_login(hq_admin)
    entry = PointsEntry.objects.filter(member=shopper).first()

    listing = en_client.get(LEDGER)
    page = en_client.get(f"{LEDGER}{entry.pk}/change/")
    post = en_client.post(f"{LEDGER}{entry.pk}/change/", {"points": "999999"})
    delete = en_client.post(f"{LEDGER}{entry.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200 and "Add points entry" not in listing.content.decode()
    assert page.status_code == 200 and 'name="points"' not in page.content.decode()
    assert post.status_code == 403 and delete.status_code == 403
    assert en_client.get(f"{LEDGER}add/").status_code == 403
    assert PointsEntry.objects.get(pk=entry.pk).points == entry.points


def test_points_ledger_filters_by_kind_store_and_legal_entity(en_client, hq_admin, shopper, super001):
    en_client.force_login(hq_admin)

    by_store = en_client.get(LEDGER, {"store": super001.pk})
    by_entity = en_client.get(LEDGER, {"legal_entity__id__exact": super001.format.legal_entity_id})
    by_kind = en_client.get(LEDGER, {"kind__exact": "reversal"})

    assert {entry.receipt_no for entry in by_store.context["cl"].result_list} == {"S-0001"}
    assert {entry.receipt_no for entry in by_entity.context["cl"].result_list} == {"S-0001"}
    assert {entry.receipt_no for entry in by_kind.context["cl"].result_list} == {"D-R-0001"}


def test_points_ledger_search_is_by_exact_member_number_without_a_scan(en_client, hq_admin, shopper,
                                                                       super001_shopper):
    en_client.force_login(hq_admin)

    with CaptureQueriesContext(connection) as queries:
        response = en_client.get(LEDGER, {"q": super001_shopper.member_no})

    assert {entry.member_id for entry in response.context["cl"].result_list} == {super001_shopper.pk}
    assert not any(" LIKE " in query["sql"] for query in queries.captured_queries)


# --- purchases ------------------------------------------------------------------------------------


def test_purchases_are_read_only_and_searched_by_exact_receipt_or_member_number(en_client, hq_admin, shopper,
                                                                               super001_shopper):
    en_client.force_login(hq_admin)
    purchase = Purchase.objects.get(receipt_no="D-0001")

    with CaptureQueriesContext(connection) as queries:
        by_receipt = en_client.get(PURCHASES, {"q": "S-0002"})
        by_member = en_client.get(PURCHASES, {"q": shopper.member_no})
    page = en_client.get(f"{PURCHASES}{purchase.pk}/change/")
    post = en_client.post(f"{PURCHASES}{purchase.pk}/change/", {"amount": "1.00"})

    assert [p.receipt_no for p in by_receipt.context["cl"].result_list] == ["S-0002"]
    assert {p.receipt_no for p in by_member.context["cl"].result_list} == {"S-0001", "D-0001", "A-0001"}
    assert not any(" LIKE " in query["sql"] for query in queries.captured_queries)
    assert page.status_code == 200
    assert "D-R-0001" in page.content.decode() and "200.00" in page.content.decode()
    assert post.status_code == 403
    assert Purchase.objects.get(pk=purchase.pk).amount == Decimal("1200.00")


def test_purchases_filter_by_format_and_store(en_client, hq_admin, shopper, super001_shopper, super001):
    en_client.force_login(hq_admin)

    by_format = en_client.get(PURCHASES, {"format__id__exact": super001.format_id})
    by_store = en_client.get(PURCHASES, {"store": super001.pk})
    by_member = en_client.get(PURCHASES, {"member__id__exact": super001_shopper.pk})

    assert {p.receipt_no for p in by_format.context["cl"].result_list} == {"S-0001", "S-0002"}
    assert {p.receipt_no for p in by_store.context["cl"].result_list} == {"S-0001", "S-0002"}
    assert {p.receipt_no for p in by_member.context["cl"].result_list} == {"S-0002"}


def test_store_manager_sees_only_their_stores_purchases(en_client, dept001_manager, shopper, super001_shopper):
    en_client.force_login(dept001_manager)
    other = Purchase.objects.get(receipt_no="S-0002")

    listing = en_client.get(PURCHASES)
    searched = en_client.get(PURCHASES, {"q": "S-0002"})
    page = en_client.get(f"{PURCHASES}{other.pk}/change/")

    assert {p.receipt_no for p in listing.context["cl"].result_list} == {"D-0001"}
    assert list(searched.context["cl"].result_list) == []
    assert page.status_code == 404  # the same answer as for a missing row (MemberRowAdmin.change_view)
    assert en_client.get(f"{PURCHASES}999999/change/").status_code == 404


def test_pending_points_list_shows_the_held_car_points(en_client, hq_admin, shopper):
    en_client.force_login(hq_admin)

    response = en_client.get("/admin/membership/pointshold/")

    holds = list(response.context["cl"].result_list)
    assert [(hold.purchase.receipt_no, hold.points) for hold in holds] == [("A-0001", 15000)]
    assert all(hold.status == PointsHold.Status.PENDING for hold in holds)


@pytest.mark.parametrize("path", [
    "/admin/membership/tierchange/", "/admin/membership/tiersubscription/", "/admin/membership/pointsdebtentry/",
    "/admin/membership/purchasereturn/", "/admin/membership/giftredemption/", "/admin/membership/pointshold/",
])
def test_history_lists_render_and_offer_no_add(en_client, hq_admin, shopper, path):
    en_client.force_login(hq_admin)

    response = en_client.get(path)

    assert response.status_code == 200
    assert en_client.get(f"{path}add/").status_code == 403


# --- points adjustments through approval ------------------------------------------------------------


def test_points_adjustment_request_waits_for_another_persons_approval(en_client, hq_admin, hq_approver, shopper,
                                                                      ledgers_balanced):
    en_client.force_login(hq_admin)
    url = f"{MEMBERS}{shopper.pk}/points-adjust/"
    before = shopper.points
    # when: the request
    response = en_client.post(url, {"points": "500", "reason": "补录2025年遗漏积分"}, follow=True)
    # then: pending, nothing moved
    approval = ApprovalRequest.objects.get(action="membership.points_adjust")
    assert approval.status == ApprovalRequest.Status.PENDING
    assert any("waits for another person" in text for text in _messages(response))
    assert Member.objects.get(pk=shopper.pk).points == before
    assert not PointsEntry.objects.filter(kind=PointsEntry.Kind.ADJUST).exists()
    assert "补录2025年遗漏积分" in en_client.get(url).content.decode()  # shown as waiting
    # when: the requester tries to approve it
    en_client.post(f"/admin/approvals/approvalrequest/{approval.pk}/decide/", {"_approve": "1"})
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalRequest.Status.PENDING
    assert Member.objects.get(pk=shopper.pk).points == before
    # when: another HQ person approves
    en_client.force_login(hq_approver)
    en_client.post(f"/admin/approvals/approvalrequest/{approval.pk}/decide/", {"_approve": "1"})
    # then
    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.ADJUST)
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalRequest.Status.APPROVED
    assert Member.objects.get(pk=shopper.pk).points == before + 500
    assert (entry.points, entry.operator, entry.cause) == (500, hq_approver, approval)
    ledgers_balanced()
    page = en_client.get(_change_url(shopper)).content.decode()
    assert f"approval request #{approval.pk}" in page


@pytest.mark.parametrize("points", ["0", "1.5", "abc", ""])
def test_points_adjustment_must_be_a_whole_number_other_than_zero(en_client, hq_admin, shopper, points):
    en_client.force_login(hq_admin)

    response = en_client.post(f"{MEMBERS}{shopper.pk}/points-adjust/", {"points": points, "reason": "x"})

    assert response.status_code == 200
    assert response.context["form"].errors["points"]
    assert not ApprovalRequest.objects.exists()


def test_points_adjustment_taking_more_than_the_balance_is_refused(en_client, hq_admin, shopper):
    en_client.force_login(hq_admin)

    response = en_client.post(f"{MEMBERS}{shopper.pk}/points-adjust/",
                              {"points": str(-(shopper.points + 1)), "reason": "wrong"})

    assert "fewer than needed" in response.content.decode()
    assert not ApprovalRequest.objects.exists()


def test_staff_without_the_adjust_permission_get_403(en_client, dept001_manager, shopper):
    en_client.force_login(dept001_manager)

    page = en_client.get(_change_url(shopper)).content.decode()
    response = en_client.post(f"{MEMBERS}{shopper.pk}/points-adjust/", {"points": "10", "reason": "x"})

    assert "Request a points adjustment" not in page
    assert response.status_code == 403
    assert not ApprovalRequest.objects.exists()


# --- paid tiers in the admin ---------------------------------------------------------------------


def test_hq_sells_plus_in_the_admin_with_the_fee_and_end_date_shown_first(en_client, hq_admin, dept001):
    member = register(name="周建华", phone="13500135000", store=dept001)
    plus = Tier.objects.get(code="PLUS")
    en_client.force_login(hq_admin)
    url = f"{MEMBERS}{member.pk}/paid-tier/"

    shown = en_client.get(url).content.decode()
    response = en_client.post(url, {"tier": plus.pk, "payment_method": "bank_card", "store": ""}, follow=True)

    subscription = TierSubscription.objects.get(member=member)
    assert "199.00" in shown and f"{subscription.ends_on:%Y-%m-%d}" in shown
    assert (subscription.store, subscription.operator, subscription.fee) == (None, hq_admin, Decimal("199.00"))
    assert any("valid until" in text for text in _messages(response))
    assert Member.objects.get(pk=member.pk).paid_tier == plus


def test_selling_another_paid_tier_while_plus_runs_shows_the_services_reason(en_client, hq_admin, shopper):
    black = Tier.objects.create(code="BLACK", name="黑金", kind=Tier.Kind.PAID, rank=11, fee=Decimal("999.00"),
                                points_multiplier=Decimal("2.00"))
    en_client.force_login(hq_admin)

    response = en_client.post(f"{MEMBERS}{shopper.pk}/paid-tier/", {"tier": black.pk, "payment_method": "cash"})

    assert response.status_code == 200
    assert "already has Plus会员" in response.content.decode()
    assert TierSubscription.objects.filter(member=shopper).count() == 1


def test_store_manager_may_not_sell_paid_tiers(en_client, dept001_manager, dept001):
    member = register(name="周建华", phone="13500135000", store=dept001)
    en_client.force_login(dept001_manager)

    response = en_client.post(f"{MEMBERS}{member.pk}/paid-tier/",
                              {"tier": Tier.objects.get(code="PLUS").pk, "payment_method": "cash"})

    assert response.status_code == 403
    assert not TierSubscription.objects.exists()


# --- configuration --------------------------------------------------------------------------------


def test_tier_configuration_is_edited_with_history_and_never_deleted(en_client, hq_admin):
    en_client.force_login(hq_admin)
    gold = Tier.objects.get(code="GOLD")
    url = f"/admin/membership/tier/{gold.pk}/change/"

    listing = en_client.get("/admin/membership/tier/").content.decode()
    response = en_client.post(url, {
        "name": "金卡", "kind": "earned", "rank": "2", "is_active": "on", "points_multiplier": "1.30",
        "discount_rate": "0.06", "discount_text": "94折", "benefits": "生日双倍积分", "threshold": "25000.00",
        "grace_days": "60", "fee": "0.00", "term_months": "12",
    })

    gold.refresh_from_db()
    assert "20,000.00" in listing and "1.20" in listing and "199.00" in listing
    assert response.status_code == 302
    assert (gold.threshold, gold.points_multiplier, gold.discount_rate, gold.grace_days, gold.code) == (
        Decimal("25000.00"), Decimal("1.30"), Decimal("0.06"), 60, "GOLD")
    assert gold.history.count() >= 1
    assert en_client.post(f"/admin/membership/tier/{gold.pk}/delete/", {"post": "yes"}).status_code == 403


@pytest.mark.parametrize("rate", ["1.00", "-0.01", "0.12345"])
def test_a_tier_discount_rate_outside_0_to_0_9999_is_refused(en_client, hq_admin, rate):
    en_client.force_login(hq_admin)
    gold = Tier.objects.get(code="GOLD")

    response = en_client.post(f"/admin/membership/tier/{gold.pk}/change/", {
        "name": "金卡", "kind": "earned", "rank": "2", "is_active": "on", "points_multiplier": "1.20",
        "discount_rate": rate, "discount_text": "95折", "threshold": "20000.00", "grace_days": "90",
        "fee": "0.00", "term_months": "12",
    })

    assert response.status_code == 200
    assert "discount_rate" in response.context["adminform"].form.errors
    gold.refresh_from_db()
    assert gold.discount_rate == Decimal("0.05")


def test_points_policy_opens_its_one_row_and_is_never_added_or_deleted(en_client, hq_admin):
    en_client.force_login(hq_admin)
    policy = PointsPolicy.current()

    listing = en_client.get("/admin/membership/pointspolicy/")
    add = en_client.get("/admin/membership/pointspolicy/add/")
    delete = en_client.post(f"/admin/membership/pointspolicy/{policy.pk}/delete/", {"post": "yes"})
    refused = en_client.post(f"/admin/membership/pointspolicy/{policy.pk}/change/", {
        "cash_points": "100", "cash_value": "1.00", "cash_min_points": "5000", "cash_max_points": "100",
        "expiry_years": "1", "expiry_notice_days": "30", "tier_window_months": "12",
    })

    assert listing.status_code == 302 and listing["Location"].endswith(f"/pointspolicy/{policy.pk}/change/")
    assert add.status_code == 403 and delete.status_code == 403
    assert refused.status_code == 200 and "maximum must not be below the minimum" in refused.content.decode()
    assert PointsPolicy.objects.get().cash_min_points == 100


def test_earn_rule_per_format_is_added_in_the_admin(en_client, hq_admin, reference_stores):
    en_client.force_login(hq_admin)
    supermarkets = Format.objects.get(code="SUPER")

    response = en_client.post("/admin/membership/earnrule/add/", {
        "format": supermarkets.pk, "amount_per_point": "2.00", "excluded_categories": "TOBACCO\nGIFTCARD",
        "pending_days": "0", "max_receipt_amount": "10000000.00", "max_points_per_receipt": "1000000",
        "is_active": "on",
    })

    rule = EarnRule.objects.get(format=supermarkets)
    assert response.status_code == 302
    assert rule.excluded_category_set == {"TOBACCO", "GIFTCARD"}
    assert "TOBACCO" in en_client.get("/admin/membership/earnrule/").content.decode()


# --- gifts and gift stock ----------------------------------------------------------------------------


@pytest.fixture
def flask(db):
    return Gift.objects.create(code="FLASK", name="保温杯", points=1500)


def test_store_manager_receives_gift_stock_for_their_store(en_client, dept001_manager, dept001, flask):
    en_client.force_login(dept001_manager)

    page = en_client.get(f"{GIFT_STOCK}receive/")
    response = en_client.post(f"{GIFT_STOCK}receive/", {"gift": flask.pk, "store": dept001.pk, "quantity": "20",
                                                        "reason": "送货单 A-17"})

    assert page.status_code == 200
    assert response.status_code == 302
    stock = GiftStock.objects.get(gift=flask, store=dept001)
    assert stock.quantity == 20
    movement = stock.movements.get()
    assert (movement.kind, movement.quantity, movement.operator) == (
        GiftStockMovement.Kind.RECEIVED, 20, dept001_manager)


def test_store_manager_cannot_receive_stock_for_another_store(en_client, dept001_manager, super001, flask):
    en_client.force_login(dept001_manager)

    response = en_client.post(f"{GIFT_STOCK}receive/", {"gift": flask.pk, "store": super001.pk, "quantity": "5"})

    assert response.status_code == 200
    assert "store" in response.context["form"].errors
    assert not GiftStock.objects.exists()


def test_store_manager_sees_only_their_stores_gift_stock(en_client, dept001_manager, dept001, super001, flask,
                                                         hq_admin):
    gift_stock_receive(gift=flask, store=dept001, quantity=3, operator=hq_admin)
    other = gift_stock_receive(gift=flask, store=super001, quantity=7, operator=hq_admin).stock
    en_client.force_login(dept001_manager)

    listing = en_client.get(GIFT_STOCK)
    page = en_client.get(f"{GIFT_STOCK}{other.pk}/change/")
    catalogue = en_client.get("/admin/membership/gift/")

    assert [(s.store.code, s.quantity) for s in listing.context["cl"].result_list] == [("DEPT001", 3)]
    assert page.status_code == 302
    assert [gift.stock_total for gift in catalogue.context["cl"].result_list] == [3]


def test_stock_is_corrected_to_the_counted_quantity_with_a_reason(en_client, dept001_manager, dept001, flask,
                                                                  hq_admin):
    stock = gift_stock_receive(gift=flask, store=dept001, quantity=10, operator=hq_admin).stock
    en_client.force_login(dept001_manager)
    url = f"{GIFT_STOCK}{stock.pk}/correct/"

    no_reason = en_client.post(url, {"quantity": "8", "seen": "10", "reason": ""})
    stale = en_client.post(url, {"quantity": "8", "seen": "12", "reason": "盘点"})
    response = en_client.post(url, {"quantity": "8", "seen": "10", "reason": "盘点：两个破损"})

    assert no_reason.status_code == 200 and stale.status_code == 200
    assert "changed from 12 to 10" in stale.content.decode()
    assert response.status_code == 302
    stock.refresh_from_db()
    assert stock.quantity == 8
    correction = stock.movements.get(kind=GiftStockMovement.Kind.ADJUSTED)
    assert (correction.quantity, correction.quantity_after, correction.reason) == (-2, 8, "盘点：两个破损")


def test_gift_stock_itself_is_read_only(en_client, hq_admin, dept001, flask):
    stock = gift_stock_receive(gift=flask, store=dept001, quantity=10, operator=hq_admin).stock
    en_client.force_login(hq_admin)

    response = en_client.post(f"{GIFT_STOCK}{stock.pk}/change/", {"quantity": "999"})

    assert response.status_code == 403
    assert GiftStock.objects.get(pk=stock.pk).quantity == 10


def test_finance_without_stock_permission_cannot_receive(en_client, hq_finance, dept001, flask):
    en_client.force_login(hq_finance)

    response = en_client.post(f"{GIFT_STOCK}receive/", {"gift": flask.pk, "store": dept001.pk, "quantity": "5"})

    assert response.status_code == 403
    assert not GiftStock.objects.exists()


# --- points expiring soon ----------------------------------------------------------------------------


@pytest.fixture
def member_with_old_points(dept001):
    member = register(name="孙秀兰", phone="13912345678", store=dept001)
    last_year = timezone.make_aware(datetime(timezone.localdate().year - 1, 3, 1, 10, 0))
    points_post(member=member, points=800, kind=PointsEntry.Kind.MIGRATION, store=dept001, created_at=last_year,
                reason="opening balance")
    return member


def test_points_expiring_list_and_its_masked_export(en_client, hq_admin, member_with_old_points):
    en_client.force_login(hq_admin)
    url = f"{MEMBERS}points-expiring/"

    members = en_client.get(MEMBERS).content.decode()
    listing = en_client.get(url, {"all": "1"})
    export = en_client.get(url, {"all": "1", "export": "csv"})

    assert url in members
    html = listing.content.decode()
    assert listing.status_code == 200
    assert member_with_old_points.member_no in html and "139****5678" in html and "13912345678" not in html
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:3] == ["member number", "name", "phone"]  # the columns by their names
    assert rows[1][0] == member_with_old_points.member_no
    assert rows[1][2] == "139****5678" and rows[1][6] == "800"
    assert PersonalDataAccess.objects.filter(user=hq_admin, action=PersonalDataAccess.Action.EXPORT).exists()


def test_points_expiring_list_is_scoped_to_the_store(en_client, super001_manager, member_with_old_points):
    en_client.force_login(super001_manager)

    response = en_client.get(f"{MEMBERS}points-expiring/", {"all": "1"})

    assert member_with_old_points.member_no not in response.content.decode()


# --- roles ------------------------------------------------------------------------------------------


def test_roles_grant_what_each_job_needs(db):
    desk = StaffFactory(username="desk_role", group="服务台")
    manager = StaffFactory(username="manager_role", group="门店店长")
    finance = StaffFactory(username="finance_role", group="财务", scope=StaffProfile.Scope.HQ)
    operations = StaffFactory(username="operations_role", group="会员运营", scope=StaffProfile.Scope.HQ)

    assert desk.has_perms(["membership.redeem_gift", "membership.sell_paid_tier", "membership.view_gift",
                           "membership.view_tier"])
    assert not desk.has_perm("membership.adjust_points")
    assert manager.has_perms(["membership.view_purchase", "membership.view_gift", "membership.change_giftstock"])
    assert not manager.has_perm("membership.sell_paid_tier")
    assert finance.has_perms(["membership.view_pointsentry", "membership.view_purchase",
                              "membership.view_pointsdebtentry"])
    assert not finance.has_perm("membership.view_member")
    assert operations.has_perms(["membership.adjust_points", "membership.approve_points_adjustment",
                                 "membership.change_tier", "membership.change_pointspolicy"])


def test_finance_reads_the_points_ledger_and_purchases(en_client, hq_finance, shopper):
    en_client.force_login(hq_finance)

    assert en_client.get(LEDGER).status_code == 200
    assert en_client.get(PURCHASES).status_code == 200
    assert en_client.get("/admin/membership/pointsdebtentry/").status_code == 200
    assert en_client.get(_change_url(shopper)).status_code == 403


@pytest.mark.parametrize("path", [
    "/admin/", "/admin/membership/", "/admin/membership/tier/", "/admin/membership/earnrule/",
    "/admin/membership/gift/", GIFT_STOCK, LEDGER, PURCHASES, "/admin/membership/tierchange/",
    f"{MEMBERS}points-expiring/",
])
@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_loyalty_pages_render_for_headquarters_and_a_store_manager(client, hq_admin, dept001_manager, shopper,
                                                                   path, language):
    for user in (hq_admin, dept001_manager):
        client.force_login(user)

        response = client.get(path, HTTP_ACCEPT_LANGUAGE=language)

        assert response.status_code == 200, (user, path)
        assert f'lang="{language}"' in response.content.decode()
