"""points_post: the only way a member's points move, and the ledger that proves them."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum

from membership.errors import InsufficientPoints
from membership.models import Member, PointsEntry
from membership.services import points_post
from tests.membership.conftest import concurrently, kinds, register

EARN, REDEEM = PointsEntry.Kind.EARN, PointsEntry.Kind.REDEEM


def ledger_sum(member) -> int:
    return PointsEntry.objects.filter(member=member).aggregate(total=Sum("points"))["total"] or 0


def balance(member) -> int:
    return Member.objects.values_list("points", flat=True).get(pk=member.pk)


@pytest.fixture
def member_with_100_points(db, dept001):
    member = register(name="李建国", phone="13800138000", store=dept001)
    points_post(member=member, points=100, kind=EARN, store=dept001, receipt_no="R-1")
    return member


def test_earning_appends_an_entry_with_the_balance_after(member_with_100_points, dept001, hq_admin):
    entry = points_post(member=member_with_100_points, points=25, kind=EARN, store=dept001, receipt_no="R-2",
                        operator=hq_admin, reason="purchase")
    entry.refresh_from_db()
    assert (entry.points, entry.balance_after, entry.kind) == (25, 125, EARN)
    assert (entry.store, entry.receipt_no, entry.operator, entry.reason) == (dept001, "R-2", hq_admin, "purchase")
    assert balance(member_with_100_points) == 125
    assert member_with_100_points.points == 125, "the caller's object follows the database"


def test_balance_after_follows_every_movement(member_with_100_points):
    for points in (-30, 45, -115):
        points_post(member=member_with_100_points, points=points, kind=EARN if points > 0 else REDEEM)
    entries = PointsEntry.objects.filter(member=member_with_100_points).order_by("pk")
    assert [(e.points, e.balance_after) for e in entries] == [(100, 100), (-30, 70), (45, 115), (-115, 0)]
    assert balance(member_with_100_points) == 0 == ledger_sum(member_with_100_points)


def test_redeeming_the_whole_balance_leaves_zero(member_with_100_points):
    points_post(member=member_with_100_points, points=-100, kind=REDEEM)
    assert balance(member_with_100_points) == 0


def test_redeeming_more_than_the_balance_moves_nothing(member_with_100_points):
    with pytest.raises(InsufficientPoints) as error:
        points_post(member=member_with_100_points, points=-101, kind=REDEEM, receipt_no="R-9")
    assert error.value.code == "insufficient_points"
    assert "100" in str(error.value)
    assert balance(member_with_100_points) == 100
    assert not PointsEntry.objects.filter(receipt_no="R-9").exists()
    assert PointsEntry.objects.filter(member=member_with_100_points).count() == 1


def test_a_stale_member_object_cannot_overdraw(member_with_100_points):
    stale = Member.objects.get(pk=member_with_100_points.pk)
    points_post(member=member_with_100_points, points=-80, kind=REDEEM)
    assert stale.points == 100
    with pytest.raises(InsufficientPoints):
        points_post(member=stale, points=-50, kind=REDEEM)
    assert balance(member_with_100_points) == 20 == ledger_sum(member_with_100_points)


@pytest.mark.parametrize("points", [0, 1.5, "10", True])
def test_points_must_be_a_non_zero_integer(member_with_100_points, points):
    with pytest.raises(ValueError, match="non-zero integer"):
        points_post(member=member_with_100_points, points=points, kind=EARN)
    assert balance(member_with_100_points) == 100


def test_a_failed_ledger_insert_takes_the_balance_change_back(member_with_100_points):
    # A kind of None breaks the NOT NULL of the ledger row after the balance was already updated.
    with pytest.raises(IntegrityError):
        points_post(member=member_with_100_points, points=-40, kind=None)
    assert balance(member_with_100_points) == 100 == ledger_sum(member_with_100_points)


def test_cause_is_recorded_as_a_generic_reference(member_with_100_points, hq_admin):
    entry = points_post(member=member_with_100_points, points=5, kind=PointsEntry.Kind.ADJUST, cause=hq_admin)
    entry.refresh_from_db()
    assert entry.cause == hq_admin


# --- PostgreSQL only -----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_ten_concurrent_redemptions_of_30_from_100_let_exactly_three_through(dept001):
    if connection.vendor != "postgresql":
        pytest.skip("row locks under concurrency need PostgreSQL")
    member = register(name="李建国", phone="13800138000", store=dept001)
    points_post(member=member, points=100, kind=EARN)

    def redeem(index: int):
        with transaction.atomic():
            return points_post(member=Member.objects.get(pk=member.pk), points=-30, kind=REDEEM,
                               receipt_no=f"R-{index}")

    assert kinds(concurrently(10, redeem)) == {"PointsEntry": 3, "InsufficientPoints": 7}
    assert balance(member) == 10 == ledger_sum(member)
    assert sorted(PointsEntry.objects.filter(kind=REDEEM).values_list("balance_after", flat=True)) == [10, 40, 70]


@pytest.mark.postgres
@pytest.mark.parametrize("statement", [
    "UPDATE membership_pointsentry SET points = 1000 WHERE id = %s",
    "DELETE FROM membership_pointsentry WHERE id = %s",
])
def test_points_ledger_refuses_update_and_delete_on_postgresql(member_with_100_points, statement):
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger exists on PostgreSQL only")
    entry = PointsEntry.objects.get(member=member_with_100_points)
    with pytest.raises(IntegrityError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [entry.pk])
    entry.refresh_from_db()
    assert entry.points == 100
