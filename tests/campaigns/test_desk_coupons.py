"""The coupon page of the service desk: a member's coupons, and a poster's claim code claimed for them by keyboard."""

import pytest
from django.contrib.auth.models import Group, Permission

from campaigns.models import Coupon, CouponBatch
from membership.models import Member
from tests.campaigns.conftest import coupon_issue
from tests.factories import StaffFactory
from tests.membership.conftest import elderly_member_without_phone, register  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def coupons_url(member) -> str:
    return f"/desk/coupons/members/{member.member_no}/"


def test_the_member_page_links_to_the_coupons_by_f9(desk, coupon_member):
    page = desk.get(f"/desk/members/{coupon_member.member_no}/").content.decode()

    assert f'href="{coupons_url(coupon_member)}" data-key="F9"' in page


def test_the_page_shows_the_coupons_usable_here_and_the_others(desk, coupon_issued_to_member,
                                                              coupon_template_super_amount_off, coupon_member):
    super_coupon = coupon_issue(coupon_template_super_amount_off, coupon_member)

    response = desk.get(coupons_url(coupon_member))

    assert response.status_code == 200
    page = response.content.decode()
    usable, _, elsewhere = page.partition("data-coupons-elsewhere")
    assert coupon_issued_to_member.code in usable and "百货满200减30" in usable
    assert super_coupon.code in elsewhere and super_coupon.code not in usable
    assert 'name="claim_code"' in page and "autofocus" in page


def test_a_member_without_coupons_is_told_so(desk, coupon_member):
    page = desk.get(coupons_url(coupon_member)).content.decode()

    assert "No coupon usable at this store." in page


def test_a_search_by_phone_opens_the_members_coupons(desk, coupon_member):
    response = desk.get("/desk/coupons/", {"q": "13800138000"})

    assert response.status_code == 302 and response["Location"] == coupons_url(coupon_member)


def test_a_family_phone_lists_every_member_to_choose(desk, dept001):
    first = register(name="张秀英", family_phone="13908070605", store=dept001)
    second = register(name="张建华", phone="13908070605", store=dept001)

    page = desk.get("/desk/coupons/", {"q": "13908070605"}).content.decode()

    assert coupons_url(first) in page and coupons_url(second) in page


def test_a_search_that_finds_nobody_says_so(desk, reference_stores):
    response = desk.get("/desk/coupons/", {"q": "13999999999"})

    assert response.status_code == 200
    assert "No member found" in response.content.decode()


def test_a_clerk_claims_a_poster_coupon_for_an_elderly_member(desk, coupon_template_claimable,
                                                              elderly_member_without_phone):
    member = elderly_member_without_phone

    response = desk.post(coupons_url(member), {"claim_code": " spring20 "}, follow=True)

    coupon = Coupon.objects.get(member=member)
    assert coupon.template == coupon_template_claimable and coupon.batch.channel == CouponBatch.Channel.CLAIM
    assert coupon.issued_store.code == "DEPT001" and coupon.batch.created_by.username == "dept001_coupon_desk"
    assert response.redirect_chain == [(coupons_url(member), 302)]
    page = response.content.decode()
    assert f"Coupon {coupon.code} claimed for 张秀英" in page
    assert coupon.code in page.partition("data-coupons-usable")[2]


def test_a_second_claim_is_refused_on_the_field(desk, coupon_template_claimable, coupon_member):
    assert desk.post(coupons_url(coupon_member), {"claim_code": "SPRING20"}).status_code == 302

    response = desk.post(coupons_url(coupon_member), {"claim_code": "SPRING20"})

    assert response.status_code == 409
    assert "already claimed a coupon with this code" in response.content.decode()
    assert Coupon.objects.filter(member=coupon_member).count() == 1


@pytest.mark.parametrize(("claim_code", "status", "message"), [
    ("WINTER99", 404, "No running coupon has this claim code."),
    ("", 400, "Type the claim code from the poster."),
    ("X" * 33, 400, "at most 32 characters"),
])
def test_a_wrong_claim_code_is_refused_and_issues_nothing(desk, coupon_template_claimable, coupon_member,
                                                          claim_code, status, message):
    response = desk.post(coupons_url(coupon_member), {"claim_code": claim_code})

    assert response.status_code == status
    assert message in response.content.decode()
    assert not Coupon.objects.exists()


def test_a_frozen_member_cannot_claim(desk, coupon_template_claimable, coupon_member):
    Member.objects.filter(pk=coupon_member.pk).update(status=Member.Status.FROZEN)

    page = desk.get(coupons_url(coupon_member)).content.decode()
    response = desk.post(coupons_url(coupon_member), {"claim_code": "SPRING20"})

    assert 'name="claim_code"' not in page
    assert response.status_code == 409
    assert not Coupon.objects.exists()


def test_an_unknown_member_number_is_not_found(desk, reference_stores):
    assert desk.get("/desk/coupons/members/99999999/").status_code == 404
    assert desk.get("/desk/coupons/members/abc%00/").status_code == 404


def test_the_page_needs_a_login(client, coupon_member):
    response = client.get(coupons_url(coupon_member))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_staff_without_the_desk_permission_are_refused(client, dept001, coupon_template_claimable, coupon_member):
    group = Group.objects.create(name="viewers only")
    group.permissions.add(Permission.objects.get(content_type__app_label="membership", codename="view_member"))
    client.force_login(StaffFactory(username="viewer", group="viewers only", stores=[dept001]))

    assert client.get(coupons_url(coupon_member)).status_code == 403
    assert client.post(coupons_url(coupon_member), {"claim_code": "SPRING20"}).status_code == 403
    assert not Coupon.objects.exists()
