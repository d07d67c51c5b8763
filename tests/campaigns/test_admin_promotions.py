"""The admin screens of points promotions and member days: in Chinese for headquarters, their checks, their
results with the Excel download, and refused to store staff."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from openpyxl import load_workbook

import campaigns.promotion_hooks  # noqa: F401 - registers the providers and the purchase listener
from campaigns.models import MemberDay, PointsPromotion
from membership.services.purchases import purchase_record
from stores.models import Format, StaffProfile
from tests.campaigns.test_member_days import elec001, member_day_scenario  # noqa: F401 - fixtures
from tests.campaigns.test_promotions import make_promotion, wednesday
from tests.factories import StaffFactory
from tests.membership.conftest import register

PROMOTIONS = "/admin/campaigns/pointspromotion/"
MEMBER_DAYS = "/admin/campaigns/memberday/"
ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def _form(**changes) -> dict:
    today = timezone.localdate()
    data = {
        "code": "WX_WED", "name": "周三微信支付双倍积分", "kind": "multiplier", "is_active": "on",
        "starts_on": today.isoformat(), "ends_on": (today + timedelta(days=30)).isoformat(),
        "weekdays": ["3"], "formats": [str(Format.objects.get(code="SUPER").pk)], "payment_methods": ["wechat"],
        "multiplier": "2.00", "stacking": "multiply", "cash_points": "", "cash_value": "", "member_day": "",
    }
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def _sheet_values(response) -> list[list]:
    workbook = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    return [list(row) for row in workbook.active.iter_rows(values_only=True)]


@pytest.fixture
def hq_client(client, hq_admin):
    client.force_login(hq_admin)
    return client


@pytest.fixture
def promotion_with_results(super001, dept001):
    """周三微信支付双倍积分 with two WeChat purchases on a Wednesday at SUPER001 (100.00 and 50.00)."""
    promotion = make_promotion(code="WX_WED", weekdays="3", payment_methods="wechat", formats=[super001.format])
    member = register(name="李建国", phone="13800138000", store=dept001)
    for receipt_no, amount in (("WX-1", "100.00"), ("WX-2", "50.00")):
        purchase_record(store=super001, member=member, receipt_no=receipt_no, amount=Decimal(amount),
                        occurred_at=wednesday(), payment_method="wechat")
    return promotion


# --- headquarters ------------------------------------------------------------------------------------------


def test_headquarters_see_the_promotions_in_chinese(hq_client, promotion_with_results):
    response = hq_client.get(PROMOTIONS, **ZH)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'lang="zh-hans"' in html and "营销活动" in html
    assert "周三微信支付双倍积分" in html


def test_headquarters_create_a_promotion_from_the_form(hq_client, reference_stores):
    response = hq_client.post(f"{PROMOTIONS}add/", _form(), **ZH)

    assert response.status_code == 302, response.context["adminform"].form.errors
    promotion = PointsPromotion.objects.get(code="WX_WED")
    assert (promotion.weekdays, promotion.payment_methods, promotion.multiplier) == ("3", "wechat",
                                                                                      Decimal("2.00"))
    assert [fmt.code for fmt in promotion.formats.all()] == ["SUPER"]


def test_a_promotion_ending_before_it_starts_is_refused_on_the_form(hq_client, reference_stores):
    today = timezone.localdate()

    response = hq_client.post(f"{PROMOTIONS}add/", _form(ends_on=(today - timedelta(days=1)).isoformat()), **ZH)

    assert response.status_code == 200
    assert "ends_on" in response.context["adminform"].form.errors
    assert not PointsPromotion.objects.exists()


def test_a_points_to_cash_day_without_its_rate_is_refused_on_the_form(hq_client, reference_stores):
    response = hq_client.post(f"{PROMOTIONS}add/", _form(kind="cash_rate"), **ZH)

    errors = response.context["adminform"].form.errors
    assert {"cash_points", "cash_value"} <= set(errors)
    assert not PointsPromotion.objects.exists()


def test_a_multiplier_above_10_is_refused_on_the_form(hq_client, reference_stores):
    response = hq_client.post(f"{PROMOTIONS}add/", _form(multiplier="12.00"), **ZH)

    assert "multiplier" in response.context["adminform"].form.errors
    assert not PointsPromotion.objects.exists()


def test_a_promotions_page_shows_its_results(hq_client, promotion_with_results):
    response = hq_client.get(f"{PROMOTIONS}{promotion_with_results.pk}/change/", HTTP_ACCEPT_LANGUAGE="en")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Extra points given" in html and "<td>150</td>" in html
    assert "<td>1.50</td>" in html  # their cash value at 100 points = 1.00
    assert "<td>150.00</td>" in html  # the sales on those purchases
    assert f"{PROMOTIONS}{promotion_with_results.pk}/results.xlsx" in html


def test_a_promotions_results_download_as_excel_with_numbers(hq_client, promotion_with_results):
    PointsPromotion.objects.filter(pk=promotion_with_results.pk).update(name="=HYPERLINK(\"http://x\")")

    response = hq_client.get(f"{PROMOTIONS}{promotion_with_results.pk}/results.xlsx", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    rows = _sheet_values(response)
    assert rows[0][0] == "'=HYPERLINK(\"http://x\")"
    values = {row[0]: row[1] for row in rows if row and row[0]}
    assert values["Extra points given"] == 150
    assert values["Cash value of the extra points"] == pytest.approx(1.50)
    assert values["Sales on those purchases"] == pytest.approx(150.00)


def test_a_member_days_page_shows_new_members_and_member_share(hq_client, member_day_scenario):
    member_day, _members = member_day_scenario

    response = hq_client.get(f"{MEMBER_DAYS}{member_day.pk}/change/", HTTP_ACCEPT_LANGUAGE="en")

    html = response.content.decode()
    assert response.status_code == 200
    assert "New members (joined during it at its stores)</td><td>2</td>" in html
    assert "Members who bought</td><td>2</td>" in html
    assert "Member sales</td><td>500.00</td>" in html
    assert "All sales</td><td>1,000.00</td>" in html
    assert "Member share of sales</td><td>50.0%</td>" in html


def test_a_member_days_page_renders_in_chinese(hq_client, member_day_scenario):
    member_day, _members = member_day_scenario

    response = hq_client.get(f"{MEMBER_DAYS}{member_day.pk}/change/", **ZH)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'lang="zh-hans"' in html and "营销活动" in html and "十二月会员日" in html


def test_a_member_days_results_download_as_excel(hq_client, member_day_scenario):
    member_day, _members = member_day_scenario

    response = hq_client.get(f"{MEMBER_DAYS}{member_day.pk}/results.xlsx", HTTP_ACCEPT_LANGUAGE="en")

    values = {row[0]: row[1] for row in _sheet_values(response) if row and row[0]}
    assert values["New members (joined during it at its stores)"] == 2
    assert values["Member sales"] == pytest.approx(500.00)
    assert values["All sales"] == pytest.approx(1000.00)
    assert values["Member share of sales"] == "50.0%"
    assert values["participating stores"] == "DEPT001, SUPER001"


def test_headquarters_create_a_member_day_and_are_named_its_creator(hq_client, hq_admin, dept001):
    today = timezone.localdate()
    response = hq_client.post(f"{MEMBER_DAYS}add/", {
        "code": "MD_DEC", "name": "十二月会员日", "starts_on": today.isoformat(), "ends_on": today.isoformat(),
        "stores": [str(dept001.pk)], "description": "",
    })

    assert response.status_code == 302
    member_day = MemberDay.objects.get(code="MD_DEC")
    assert member_day.created_by == hq_admin
    assert [store.code for store in member_day.stores.all()] == ["DEPT001"]


def test_a_member_day_ending_before_it_starts_is_refused_on_the_form(hq_client, dept001):
    today = timezone.localdate()
    response = hq_client.post(f"{MEMBER_DAYS}add/", {
        "code": "MD_DEC", "name": "十二月会员日", "starts_on": today.isoformat(),
        "ends_on": (today - timedelta(days=2)).isoformat(),
    })

    assert "ends_on" in response.context["adminform"].form.errors
    assert not MemberDay.objects.exists()


# --- store staff ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    PROMOTIONS, f"{PROMOTIONS}add/", "{promotion}/change/", "{promotion}/results.xlsx", "{promotion}/history/",
    MEMBER_DAYS, "{member_day}/change/", "{member_day}/results.xlsx",
])
def test_a_store_manager_is_refused_the_promotion_screens(client, super001_manager, promotion_with_results,
                                                          member_day_scenario, url):
    member_day, _members = member_day_scenario
    url = url.format(promotion=f"{PROMOTIONS}{promotion_with_results.pk}",
                     member_day=f"{MEMBER_DAYS}{member_day.pk}")
    client.force_login(super001_manager)

    response = client.get(url)

    assert response.status_code in (403, 404)
    assert "周三微信支付双倍积分" not in response.content.decode()


def test_store_staff_in_the_marketing_role_are_refused_too(client, super001, promotion_with_results):
    marketer = StaffFactory(username="super001_marketer", group="市场营销", scope=StaffProfile.Scope.STORES,
                            stores=[super001])
    client.force_login(marketer)

    assert client.get(PROMOTIONS).status_code == 403
    assert client.get(f"{PROMOTIONS}{promotion_with_results.pk}/change/").status_code in (403, 404)
    home = client.get("/admin/").content.decode()
    assert PROMOTIONS not in home and MEMBER_DAYS not in home


def test_the_home_lists_the_promotion_screens_under_marketing_for_headquarters(hq_client):
    html = hq_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert '<span class="section">Marketing</span>' in html
    assert PROMOTIONS in html and MEMBER_DAYS in html


def test_the_add_pages_open_for_headquarters(hq_client, reference_stores):
    for url in (f"{PROMOTIONS}add/", f"{MEMBER_DAYS}add/"):
        response = hq_client.get(url, **ZH)
        assert response.status_code == 200
        assert 'lang="zh-hans"' in response.content.decode()


def test_a_points_to_cash_days_page_shows_the_points_turned_into_cash(hq_client, super001):
    today = timezone.localdate()
    cash_day = make_promotion(name="积分抵现日", kind="cash_rate", cash_points=100, cash_value=Decimal("2.00"),
                              starts_on=today, ends_on=today, formats=[super001.format])

    response = hq_client.get(f"{PROMOTIONS}{cash_day.pk}/change/", HTTP_ACCEPT_LANGUAGE="en")
    listing = hq_client.get(PROMOTIONS, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert response.status_code == 200
    assert "Points turned into cash</td><td>0</td>" in response.content.decode()
    assert "100 points = 2.00 yuan" in listing
