"""The admin home grouped by the work (config/admin_index.py), a store manager's home, and the store filter with a
box (stores/admin_base.py StoreFilter)."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.utils import timezone

from approvals.models import ApprovalRequest
from config.admin_index import GROUPS, PAGE_TITLES, SYSTEM, group_of
from membership.services.purchases import purchase_record
from stores.admin_base import StoreFilter
from tests.factories import ApprovalRequestFactory
from tests.membership.conftest import register

HOME = "/admin/"
NAMED = {entry for _key, _title, entries in GROUPS for entry in entries}


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("index_root", password="x-Unused-42")


def _groups(response) -> dict[str, list[str]]:
    return {group["key"]: [str(model["admin_url"]) for model in group["models"]]
            for group in response.context["app_list"]}


@pytest.mark.parametrize("model", sorted(admin.site._registry, key=lambda model: model._meta.label),
                         ids=lambda model: model._meta.label)
def test_every_registered_model_is_placed_in_a_group_of_the_home(model):
    assert model._meta.label in NAMED, (
        f"{model._meta.label} is in no group of the admin home: add it to GROUPS in config/admin_index.py")


def test_every_page_of_the_home_is_a_page_of_the_site():
    pages = {entry.removeprefix("page:") for entry in NAMED if entry.startswith("page:")}
    # core.admin.admin_page_add: they carry their own titles
    added = {"cards_liability", "cards_brand_billing", "settlement_clearing_matrix", "settlement_liability",
             "settlement_recon_report"}
    assert pages == set(PAGE_TITLES) | added


def test_a_model_nobody_placed_falls_into_the_group_of_its_app():
    assert group_of("membership.SomethingNew") == "members"
    assert group_of("cards.SomethingNew") == "cards"
    assert group_of("someapp.SomethingNew") == SYSTEM


def test_the_superusers_home_shows_every_screen_grouped_by_the_work(client, superuser):
    client.force_login(superuser)

    response = client.get(HOME, HTTP_ACCEPT_LANGUAGE="en")

    groups = _groups(response)
    assert list(groups) == [key for key, _title, _entries in GROUPS]
    shown = {url for urls in groups.values() for url in urls}
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        assert url in shown, f"{model._meta.label} is not on the home"
    assert "/admin/membership/member/" in groups["members"]
    assert "/admin/axes/accessattempt/" in groups[SYSTEM]
    assert "/admin/cards/liability/" in groups["cards"]
    assert "/admin/membership/member/points-expiring/" in groups["points"]
    html = response.content.decode()
    for title in ("Members", "Points and tiers", "Prepaid cards", "Brand cards and vouchers", "Approvals",
                  "Stores and staff", "System"):
        assert f'<span class="section">{title}</span>' in html


def test_the_home_is_in_chinese_by_default(client, superuser):
    client.force_login(superuser)

    html = client.get(HOME, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    assert "会员" in html and "预付卡" in html


def test_headquarters_staff_do_not_see_the_system_group(client, hq_admin):
    client.force_login(hq_admin)

    groups = _groups(client.get(HOME))

    assert SYSTEM not in groups
    assert "/admin/membership/member/" in groups["members"]
    assert "/admin/auth/user/" in groups["stores"]


def test_the_side_navigation_of_a_list_shows_the_same_groups(client, hq_admin):
    client.force_login(hq_admin)

    response = client.get("/admin/membership/member/")

    assert [app["key"] for app in response.context["available_apps"]][:2] == ["members", "points"]
    assert "#group-members" in response.content.decode()


def test_an_app_page_keeps_djangos_list(client, superuser):
    client.force_login(superuser)

    response = client.get("/admin/membership/")

    assert response.status_code == 200
    assert response.context["app_list"][0]["app_label"] == "membership"


def test_a_store_managers_home_names_their_store_and_counts_it(client, dept001_manager, dept001, super001):
    member = register(name="李建国", phone="13800138001", store=dept001)
    register(name="王芳", phone="13800138002", store=super001)
    purchase_record(store=dept001, member=member, receipt_no="HOME-1", amount=Decimal("50.00"),
                    occurred_at=timezone.now())
    raised = ApprovalRequestFactory(subject=dept001, store=dept001, requested_by=dept001_manager)
    client.force_login(dept001_manager)

    response = client.get(HOME, HTTP_ACCEPT_LANGUAGE="en")

    home = response.context["store_home"]
    assert response.context["title"].startswith(f"{dept001.code} {dept001.name}")
    counts = {label: count for label, count, _url in home["counts"]}
    assert counts["Members (registered here or bought here in the last 12 months)"] == 1
    assert counts["Purchases this month"] == 1
    assert counts["Card sales paid this month"] == 0
    if raised.status == ApprovalRequest.Status.PENDING:
        assert [approval.pk for approval, _url in home["raised"]] == [raised.pk]
    assert SYSTEM not in _groups(response)


def test_headquarters_get_no_store_home(client, hq_admin):
    client.force_login(hq_admin)

    assert "store_home" not in client.get(HOME).context


# --- the store filter -------------------------------------------------------------------------------------------

PURCHASES = "/admin/membership/purchase/"


@pytest.fixture
def purchases(dept001, super001):
    at_dept = register(name="李建国", phone="13800138001", store=dept001)
    at_super = register(name="王芳", phone="13800138002", store=super001)
    now = timezone.now()
    return {
        "DEPT001": purchase_record(store=dept001, member=at_dept, receipt_no="F-1", amount=Decimal("9.00"),
                                   occurred_at=now),
        "SUPER001": purchase_record(store=super001, member=at_super, receipt_no="F-2", amount=Decimal("9.00"),
                                    occurred_at=now),
    }


@pytest.fixture
def few_links(monkeypatch):
    monkeypatch.setattr(StoreFilter, "LINKS_AT_MOST", 1)


def _rows(response):
    return {purchase.pk for purchase in response.context["cl"].result_list}


def test_many_stores_are_a_box_to_type_a_store_in(client, hq_admin, purchases, few_links):
    client.force_login(hq_admin)

    html = client.get(PURCHASES, {"q": ""}).content.decode()

    assert 'list="store-stores"' in html
    assert '<option value="DEPT001">' in html
    assert 'href="?store=' not in html


def test_the_box_filters_by_store_code_and_an_id_still_works(client, hq_admin, purchases, dept001, few_links):
    client.force_login(hq_admin)

    by_code = client.get(PURCHASES, {"store": "dept001"})
    by_id = client.get(PURCHASES, {"store": str(dept001.pk)})
    unknown = client.get(PURCHASES, {"store": "NOPE999"})

    assert _rows(by_code) == _rows(by_id) == {purchases["DEPT001"].pk}
    assert _rows(unknown) == set()


def test_a_few_stores_stay_links(client, dept001_manager, purchases, dept001):
    client.force_login(dept001_manager)

    html = client.get(PURCHASES).content.decode()

    assert f'href="?store={dept001.pk}"' in html
