"""A store's members (DESIGN section 5, docs/operations.md §4): those registered at the store or who bought there in
the last 12 months; in the member list, its search, the change page and the export, and in the lists of a
member's rows (cards, identities, ledgers, tier changes, duplicate pairs)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from core.dates import moment_months_add
from membership.models import (
    Member,
    MemberCard,
    MemberIdentity,
    MergeCandidate,
    PointsDebtEntry,
    PointsEntry,
    Purchase,
    TierChange,
)
from membership.queries import members_in_scope
from membership.services import points_debt_move, points_post
from membership.services.members import merge_candidates_add
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


# --- the rows of a member ---------------------------------------------------------------------------------------


def _rows_of(member, index: int) -> dict:
    """A card, a legacy identity, a tier change and a points entry (at the registering store) of a member."""
    points_post(member=member, points=10, kind=PointsEntry.Kind.ADJUST, store=member.registered_store,
                reason=f"scope test {index}")
    return {
        MemberCard: MemberCard.objects.create(card_no=f"SCOPECARD{index:04d}", member=member),
        MemberIdentity: MemberIdentity.objects.create(member=member, source="legacy", external_no=f"SCOPE-ID-{index}"),
        TierChange: TierChange.objects.create(member=member, reason=TierChange.Reason.MANUAL, note=f"scope {index}"),
        PointsEntry: PointsEntry.objects.filter(member=member).latest("pk"),
    }


@pytest.fixture
def member_rows(members):
    return {name: _rows_of(member, index) for index, (name, member) in enumerate(sorted(members.items()))}


ROW_MODELS = [MemberCard, MemberIdentity, TierChange, PointsEntry]


def _admin_url(model, suffix: str = "") -> str:
    return f"/admin/membership/{model._meta.model_name}/{suffix}"


@pytest.mark.parametrize("model", ROW_MODELS, ids=lambda model: model.__name__)
def test_the_lists_of_a_members_rows_follow_the_member_rule(client, dept001_manager, members, member_rows, model):
    client.force_login(dept001_manager)

    response = client.get(_admin_url(model))

    assert response.status_code == 200
    rows = response.context["cl"].result_list
    assert {row.member_id for row in rows} == {members[name].pk for name in VISIBLE}
    assert {member_rows[name][model].pk for name in VISIBLE} <= {row.pk for row in rows}


@pytest.mark.parametrize("name", sorted(VISIBLE | HIDDEN))
@pytest.mark.parametrize("model", ROW_MODELS, ids=lambda model: model.__name__)
def test_a_members_row_opens_only_when_the_member_does(client, dept001_manager, member_rows, model, name):
    client.force_login(dept001_manager)
    row = member_rows[name][model]

    for page in ("change", "history"):
        response = client.get(_admin_url(model, f"{row.pk}/{page}/"))

        assert response.status_code == (200 if name in VISIBLE else 404), (page, response.status_code)


def test_a_search_by_card_number_finds_only_the_cards_of_the_stores_members(client, dept001_manager, member_rows):
    client.force_login(dept001_manager)

    found = {name: [row.pk for row in client.get(_admin_url(MemberCard), {"q": rows[MemberCard].card_no})
                    .context["cl"].result_list] for name, rows in member_rows.items()}

    assert found == {name: ([member_rows[name][MemberCard].pk] if name in VISIBLE else []) for name in member_rows}


def test_the_points_debt_list_follows_the_member_rule(client, dept001_manager, members):
    entries = {name: points_debt_move(member=member, points=5, kind=PointsDebtEntry.Kind.INCURRED,
                                      reason=f"scope {name}")
               for name, member in members.items()}
    client.force_login(dept001_manager)

    response = client.get(_admin_url(PointsDebtEntry))

    assert {row.pk for row in response.context["cl"].result_list} == {entries[name].pk for name in VISIBLE}


def test_a_duplicate_pair_is_listed_when_the_manager_sees_both_members(client, dept001_manager, members):
    merge_candidates_add([(members["registered_here"].pk, members["recent_buyer"].pk),
                          (members["registered_here"].pk, members["old_buyer"].pk),
                          (members["recent_buyer"].pk, members["elsewhere_buyer"].pk)],
                         reason=MergeCandidate.Reason.SAME_PHONE)
    both_visible = MergeCandidate.objects.get(member_a__in=[members["registered_here"], members["recent_buyer"]],
                                              member_b__in=[members["registered_here"], members["recent_buyer"]])
    client.force_login(dept001_manager)

    response = client.get(_admin_url(MergeCandidate))

    assert [row.pk for row in response.context["cl"].result_list] == [both_visible.pk]
    hidden = MergeCandidate.objects.exclude(pk=both_visible.pk)
    for candidate in hidden:
        assert client.get(_admin_url(MergeCandidate, f"{candidate.pk}/review/")).status_code == 404


def test_purchases_stay_scoped_by_the_store_they_were_made_at(client, dept001_manager, members):
    # The store's own sales, whoever the member: the 13 months old receipt of a member the store no longer sees
    # is still one of its receipts; a recent buyer's receipt at another store is not.
    client.force_login(dept001_manager)

    response = client.get(_admin_url(Purchase))

    shown = {row.receipt_no for row in response.context["cl"].result_list}
    assert {"SCOPE-11", "SCOPE-13"} <= shown
    assert "SCOPE-01" not in shown
