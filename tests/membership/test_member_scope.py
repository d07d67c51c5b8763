"""A store's members (DESIGN section 5, docs/permissions.md): those registered at the store or who bought there in
the last 12 months; in the member list, its search, the change page and the export."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from core.dates import moment_months_add
from membership.models import Member, Purchase
from membership.queries import members_in_scope
from membership.services.purchases import purchase_record
from tests.membership.conftest import register

LIST = "/admin/membership/member/"
EXPORT = f"{LIST}export/"


def _bought(member, store, *, months_ago: int, receipt_no: str):
    purchase = purchase_record(store=store, member=member, receipt_no=receipt_no, amount=Decimal("88.00"),
                               occurred_at=timezone.now() - timedelta(minutes=5))
    # The POS refuses receipts that old: the time is moved back as a purchase of that day would have it.
    occurred_at = moment_months_add(timezone.now(), -months_ago)
    Purchase.objects.filter(pk=purchase.pk).update(occurred_at=occurred_at)
    return purchase


@pytest.fixture
def members(dept001, super001):
    """At DEPT001's view: one registered there, one who bought there 11 months ago, one 13 months ago, one who
    bought only at SUPER001 (all three registered at SUPER001)."""
    registered_here = register(name="李建国", phone="13800138001", store=dept001)
    recent_buyer = register(name="王芳", phone="13800138002", store=super001)
    _bought(recent_buyer, dept001, months_ago=11, receipt_no="SCOPE-11")
    old_buyer = register(name="赵丽", phone="13800138003", store=super001)
    _bought(old_buyer, dept001, months_ago=13, receipt_no="SCOPE-13")
    elsewhere_buyer = register(name="孙强", phone="13800138004", store=super001)
    _bought(elsewhere_buyer, super001, months_ago=1, receipt_no="SCOPE-01")
    return {"registered_here": registered_here, "recent_buyer": recent_buyer, "old_buyer": old_buyer,
            "elsewhere_buyer": elsewhere_buyer}


VISIBLE = {"registered_here", "recent_buyer"}
HIDDEN = {"old_buyer", "elsewhere_buyer"}


def test_the_query_keeps_registered_members_and_recent_buyers(dept001_manager, members):
    shown = set(members_in_scope(Member.objects.all(), dept001_manager).values_list("pk", flat=True))

    assert shown == {members[name].pk for name in VISIBLE}


def test_headquarters_see_every_member(hq_admin, members):
    assert members_in_scope(Member.objects.all(), hq_admin).count() == len(members)


def test_the_member_list_of_a_store_manager_shows_registered_members_and_recent_buyers(client, dept001_manager,
                                                                                       members):
    client.force_login(dept001_manager)

    response = client.get(LIST)

    assert {m.pk for m in response.context["cl"].result_list} == {members[name].pk for name in VISIBLE}


@pytest.mark.parametrize("name", sorted(VISIBLE | HIDDEN))
def test_search_finds_only_the_stores_members(client, dept001_manager, members, name):
    client.force_login(dept001_manager)

    response = client.get(LIST, {"q": members[name].phone})

    found = [m.pk for m in response.context["cl"].result_list]
    assert found == ([members[name].pk] if name in VISIBLE else [])


@pytest.mark.parametrize("name", sorted(VISIBLE | HIDDEN))
def test_the_change_page_opens_only_for_the_stores_members(client, dept001_manager, members, name):
    client.force_login(dept001_manager)

    response = client.get(f"{LIST}{members[name].pk}/change/")

    assert response.status_code == (200 if name in VISIBLE else 404)


def test_the_export_holds_only_the_stores_members(client, dept001_manager, members):
    client.force_login(dept001_manager)
    page = client.get(EXPORT)
    form = page.context["form"]
    csv_format = next(value for value, label in form.fields["format"].choices if str(label).lower() == "csv")
    data = {"format": csv_format, "resource": "0"}
    data |= {name: "on" for name, field in form.fields.items() if getattr(field, "is_selectable_field", False)}

    response = client.post(EXPORT, data)

    content = response.content.decode("utf-8-sig")
    for name in VISIBLE:
        assert members[name].member_no in content
    for name in HIDDEN:
        assert members[name].member_no not in content
