"""The service desk for tiers, points and gifts: the member's points, 礼品兑换 with its slip, selling Plus."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from membership.models import (
    Gift,
    GiftRedemption,
    GiftStock,
    Member,
    PointsEntry,
    Tier,
    TierChange,
    TierSubscription,
)
from membership.services import gift_stock_receive, paid_tier_buy, purchase_record
from tests.factories import StaffFactory
from tests.membership.conftest import register

pytestmark = pytest.mark.django_db


@pytest.fixture
def dept001_clerk(dept001):
    return StaffFactory(username="dept001_desk", group="服务台", stores=[dept001])


@pytest.fixture
def desk(client, dept001_clerk):
    """A test client logged in as the service-desk clerk of DEPT001, reading English."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(dept001_clerk)
    return client


@pytest.fixture
def clerk_without_loyalty(dept001):
    """A desk user of DEPT001 who may find and register members, but not give gifts or sell Plus."""
    group = Group.objects.create(name="registration only")
    group.permissions.add(*Permission.objects.filter(
        content_type__app_label="membership", codename__in=["use_service_desk", "view_member", "add_member"]
    ))
    return StaffFactory(username="registration_only", group="registration only", stores=[dept001])


@pytest.fixture
def member_with_3000_points(super001):
    """王芳, who spent 3,000.00 yuan at SUPER001 (no earn rule: 1 point per yuan)."""
    member = register(name="王芳", phone="13700137000", store=super001)
    purchase_record(store=super001, member=member, receipt_no="S-0001", amount=Decimal("3000.00"),
                    occurred_at=timezone.now() - timedelta(hours=1))
    member.refresh_from_db()
    assert member.points == 3000
    return member


@pytest.fixture
def gifts_at_dept001(dept001, super001, hq_admin):
    """A bag (200), a flask (1500) and a rice cooker (12000) at DEPT001; oil only at SUPER001."""
    bag = Gift.objects.create(code="BAG", name="环保购物袋", points=200)
    flask = Gift.objects.create(code="FLASK", name="保温杯", points=1500)
    cooker = Gift.objects.create(code="COOKER", name="电饭煲", points=12000)
    oil = Gift.objects.create(code="OIL5L", name="食用油5L", points=3000)
    gift_stock_receive(gift=bag, store=dept001, quantity=50, operator=hq_admin)
    gift_stock_receive(gift=flask, store=dept001, quantity=2, operator=hq_admin)
    gift_stock_receive(gift=cooker, store=dept001, quantity=1, operator=hq_admin)
    gift_stock_receive(gift=oil, store=super001, quantity=10, operator=hq_admin)
    return {"bag": bag, "flask": flask, "cooker": cooker, "oil": oil}


def _gifts_url(member) -> str:
    return f"/desk/members/{member.member_no}/gifts/"


def _plus_url(member) -> str:
    return f"/desk/members/{member.member_no}/plus/"


def _stock(gift, store) -> int:
    return GiftStock.objects.get(gift=gift, store=store).quantity


# --- the member page ---------------------------------------------------------------------------


def test_member_page_shows_tier_plus_until_and_points_available_pending_and_owed(desk, member_with_3000_points,
                                                                                  dept001):
    # given: a Plus member
    paid_tier_buy(member=member_with_3000_points, tier=Tier.objects.get(code="PLUS"), store=dept001)
    member = Member.objects.get(pk=member_with_3000_points.pk)
    # when
    response = desk.get(f"/desk/members/{member.member_no}/")
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Points available" in html and ">3000<" in html
    assert "Points pending" in html and "Points owed" in html
    assert f"until {member.paid_tier_until:%Y-%m-%d}" in html
    assert 'data-key="F6"' in html and 'data-key="F7"' in html


def test_member_page_offers_no_gift_or_plus_keys_without_the_permissions(client, clerk_without_loyalty,
                                                                         member_with_3000_points):
    client.force_login(clerk_without_loyalty)

    html = client.get(f"/desk/members/{member_with_3000_points.member_no}/").content.decode()

    assert 'data-key="F6"' not in html and 'data-key="F7"' not in html


# --- gifts for points --------------------------------------------------------------------------


def test_gift_page_lists_the_gifts_in_stock_at_the_clerks_store_with_points_and_stock(
    desk, member_with_3000_points, gifts_at_dept001
):
    response = desk.get(_gifts_url(member_with_3000_points))

    html = response.content.decode()
    assert response.status_code == 200
    assert "环保购物袋" in html and "保温杯" in html and "电饭煲" in html
    assert "食用油5L" not in html  # only stocked at SUPER001
    assert "50 in stock" in html and "2 in stock" in html
    assert html.count('type="radio"') == 3
    assert "not enough points" in html  # the rice cooker costs 12000


def test_clerk_gives_a_gift_and_sees_the_new_balance_with_a_printable_slip(
    desk, member_with_3000_points, gifts_at_dept001, dept001, dept001_clerk, ledgers_balanced
):
    flask = gifts_at_dept001["flask"]
    # when
    response = desk.post(_gifts_url(member_with_3000_points), {"gift": flask.pk, "quantity": "2"})
    # then
    redemption = GiftRedemption.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/desk/members/{member_with_3000_points.member_no}/gifts/{redemption.pk}/"
    member = Member.objects.get(pk=member_with_3000_points.pk)
    assert member.points == 0
    assert _stock(flask, dept001) == 0
    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.GIFT)
    assert (entry.points, entry.store, entry.operator) == (-3000, dept001, dept001_clerk)
    assert (redemption.quantity, redemption.points, redemption.store) == (2, 3000, dept001)
    ledgers_balanced()

    slip = desk.get(response["Location"])
    html = slip.content.decode()
    assert slip.status_code == 200
    assert "New balance" in html and "data-balance>0<" in html
    assert 'class="slip"' in html and "Gift redemption slip" in html and "保温杯 (FLASK)" in html
    assert "data-print" in html and 'data-key="F8"' in html


def test_a_gift_costing_more_than_the_balance_is_refused_and_nothing_moves(
    desk, member_with_3000_points, gifts_at_dept001, dept001
):
    cooker = gifts_at_dept001["cooker"]

    response = desk.post(_gifts_url(member_with_3000_points), {"gift": cooker.pk, "quantity": "1"})

    assert response.status_code == 422
    assert "3000 points, fewer than needed" in response.content.decode()
    assert Member.objects.get(pk=member_with_3000_points.pk).points == 3000
    assert _stock(cooker, dept001) == 1
    assert not GiftRedemption.objects.exists()


def test_more_than_the_store_holds_is_refused_as_out_of_stock(desk, member_with_3000_points, gifts_at_dept001,
                                                               dept001):
    bag = gifts_at_dept001["bag"]
    stock = GiftStock.objects.get(gift=bag, store=dept001)
    # given: someone else took all but three bags
    from membership.services import gift_stock_adjust

    gift_stock_adjust(gift=bag, store=dept001, quantity=-47, operator=None, reason="count")
    # when
    response = desk.post(_gifts_url(member_with_3000_points), {"gift": bag.pk, "quantity": "5"})
    # then
    assert response.status_code == 409
    assert "out of stock" in response.content.decode()
    stock.refresh_from_db()
    assert stock.quantity == 3
    assert Member.objects.get(pk=member_with_3000_points.pk).points == 3000


@pytest.mark.parametrize("quantity", ["0", "-1", "1.5", "abc", "", "100"])
def test_a_quantity_that_is_not_a_whole_number_from_1_to_99_is_refused(desk, member_with_3000_points,
                                                                          gifts_at_dept001, quantity):
    response = desk.post(_gifts_url(member_with_3000_points),
                         {"gift": gifts_at_dept001["bag"].pk, "quantity": quantity})

    assert response.status_code == 400
    assert 'class="error"' in response.content.decode()
    assert not GiftRedemption.objects.exists()


def test_a_gift_not_stocked_at_the_clerks_store_cannot_be_chosen(desk, member_with_3000_points, gifts_at_dept001):
    response = desk.post(_gifts_url(member_with_3000_points), {"gift": gifts_at_dept001["oil"].pk, "quantity": "1"})

    assert response.status_code == 400
    assert "not available here" in response.content.decode()
    assert not GiftRedemption.objects.exists()


def test_desk_clerk_without_the_gift_permission_gets_403(client, clerk_without_loyalty, member_with_3000_points,
                                                          gifts_at_dept001):
    client.force_login(clerk_without_loyalty)

    shown = client.get(_gifts_url(member_with_3000_points))
    posted = client.post(_gifts_url(member_with_3000_points), {"gift": gifts_at_dept001["bag"].pk, "quantity": "1"})

    assert shown.status_code == 403 and posted.status_code == 403
    assert "desk/forbidden.html" in [template.name for template in posted.templates]
    assert not GiftRedemption.objects.exists()


def test_a_slip_of_another_stores_redemption_is_not_found(desk, member_with_3000_points, gifts_at_dept001,
                                                          super001):
    from membership.services import gift_redeem

    redemption = gift_redeem(member=member_with_3000_points, gift=gifts_at_dept001["oil"], store=super001,
                             operator=None)

    response = desk.get(f"{_gifts_url(member_with_3000_points)}{redemption.pk}/")

    assert response.status_code == 404


def test_gift_page_of_an_unknown_member_is_not_found(desk, gifts_at_dept001):
    response = desk.get("/desk/members/899999999999/gifts/")

    assert response.status_code == 404


def test_gift_page_is_in_chinese_by_default(client, dept001_clerk, member_with_3000_points, gifts_at_dept001):
    client.force_login(dept001_clerk)

    response = client.get(_gifts_url(member_with_3000_points), HTTP_ACCEPT_LANGUAGE="zh-hans")

    html = response.content.decode()
    assert response.status_code == 200
    assert '<html lang="zh-hans">' in html
    assert "环保购物袋" in html


# --- Plus at the desk ---------------------------------------------------------------------------


def test_plus_page_shows_the_fee_and_the_end_date_before_confirming(desk, member_with_3000_points):
    today = timezone.localdate()

    response = desk.get(_plus_url(member_with_3000_points))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Fee 199.00 yuan" in html
    ends = date(today.year + 1, today.month, today.day) - timedelta(days=1) if not (
        today.month == 2 and today.day == 29) else date(today.year + 1, 2, 27)
    assert f"{today:%Y-%m-%d} to <strong>{ends:%Y-%m-%d}</strong>" in html
    assert not TierSubscription.objects.exists()


def test_clerk_sells_plus_for_the_fee_and_the_member_earns_one_and_a_half_points(
    desk, member_with_3000_points, dept001, dept001_clerk, ledgers_balanced
):
    plus = Tier.objects.get(code="PLUS")
    # when
    response = desk.post(_plus_url(member_with_3000_points), {"tier": plus.pk, "payment_method": "wechat"})
    # then
    assert response.status_code == 302
    assert response["Location"] == f"/desk/members/{member_with_3000_points.member_no}/"
    subscription = TierSubscription.objects.get()
    assert (subscription.fee, subscription.store, subscription.operator, subscription.payment_method) == (
        Decimal("199.00"), dept001, dept001_clerk, "wechat")
    member = Member.objects.get(pk=member_with_3000_points.pk)
    assert member.paid_tier == plus and member.paid_tier_until == subscription.ends_on
    assert TierChange.objects.filter(member=member, reason=TierChange.Reason.PAID).exists()
    # and a purchase now earns 1.5x
    purchase = purchase_record(store=dept001, member=member, receipt_no="D-1", amount=Decimal("100.00"),
                               occurred_at=timezone.now())
    assert purchase.points_earned == 150
    ledgers_balanced()
    page = desk.get(response["Location"]).content.decode()
    assert f"until {subscription.ends_on:%Y-%m-%d}" in page


def test_renewing_plus_at_the_desk_follows_on_from_the_running_term(desk, member_with_3000_points, dept001):
    plus = Tier.objects.get(code="PLUS")
    first = paid_tier_buy(member=member_with_3000_points, tier=plus, store=dept001)

    page = desk.get(_plus_url(member_with_3000_points)).content.decode()
    response = desk.post(_plus_url(member_with_3000_points), {"tier": plus.pk, "payment_method": "cash"})

    renewal = TierSubscription.objects.exclude(pk=first.pk).get()
    assert f"{first.ends_on + timedelta(days=1):%Y-%m-%d} to <strong>{renewal.ends_on:%Y-%m-%d}</strong>" in page
    assert response.status_code == 302
    assert renewal.kind == TierSubscription.Kind.RENEWAL
    assert Member.objects.get(pk=member_with_3000_points.pk).paid_tier_until == renewal.ends_on


def test_plus_sale_with_an_unknown_payment_method_is_refused(desk, member_with_3000_points):
    plus = Tier.objects.get(code="PLUS")

    response = desk.post(_plus_url(member_with_3000_points), {"tier": plus.pk, "payment_method": "bitcoin"})

    assert response.status_code == 400
    assert not TierSubscription.objects.exists()


def test_desk_clerk_without_the_plus_permission_gets_403(client, clerk_without_loyalty, member_with_3000_points):
    client.force_login(clerk_without_loyalty)
    plus = Tier.objects.get(code="PLUS")

    response = client.post(_plus_url(member_with_3000_points), {"tier": plus.pk, "payment_method": "cash"})

    assert response.status_code == 403
    assert not TierSubscription.objects.exists()
