"""points_expire: points earned in year N leave the balance with an `expire` entry at the end of year N+1."""

import threading
import time
from datetime import date, datetime

import pytest
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from membership.models import Member, PointsEntry, PointsPolicy
from membership.queries import member_points_expiring, points_expiring, points_expiry_next
from membership.services import points_expire, points_expiry_cutoff, points_post
from membership.tasks import points_expire as points_expire_task
from tests.membership.conftest import register

EARN, REDEEM, EXPIRE = PointsEntry.Kind.EARN, PointsEntry.Kind.REDEEM, PointsEntry.Kind.EXPIRE
NEW_YEAR_2026 = date(2026, 1, 1)


def at(year: int, month: int = 6, day: int = 1) -> datetime:
    return timezone.make_aware(datetime(year, month, day, 12, 0))


def balance(member) -> int:
    return Member.objects.values_list("points", flat=True).get(pk=member.pk)


def ledger_sum(member) -> int:
    return PointsEntry.objects.filter(member=member).aggregate(total=Sum("points"))["total"] or 0


def expire_entries(member):
    return list(PointsEntry.objects.filter(member=member, kind=EXPIRE).order_by("pk"))


def post(member, points: int, when: datetime, kind=None):
    kind = kind or (EARN if points > 0 else REDEEM)
    return points_post(member=member, points=points, kind=kind, created_at=when)


@pytest.fixture
def member(dept001):
    return register(name="李建国", phone="13800138000", store=dept001)


@pytest.fixture
def member_with_2024_and_2025_points(member):
    """300 points earned in 2024 and 200 in 2025: 500 on the balance."""
    post(member, 300, at(2024, 5, 1))
    post(member, 200, at(2025, 3, 1))
    return member


# --- the rule -------------------------------------------------------------------------------------


def test_cutoff_is_the_start_of_the_oldest_valid_year_in_local_time():
    cutoff = points_expiry_cutoff(run_on=NEW_YEAR_2026, expiry_years=1)
    assert cutoff == timezone.make_aware(datetime(2025, 1, 1))
    assert cutoff.utcoffset().total_seconds() == 8 * 3600, "Asia/Shanghai midnight"
    assert points_expiry_cutoff(run_on=date(2026, 7, 15), expiry_years=1) == cutoff
    assert points_expiry_cutoff(run_on=NEW_YEAR_2026, expiry_years=0).year == 2026


def test_points_earned_in_2024_leave_the_balance_on_1_january_2026(member_with_2024_and_2025_points,
                                                                     ledgers_balanced):
    member = member_with_2024_and_2025_points
    assert points_expire(today=date(2025, 12, 31)) == 0
    assert balance(member) == 500

    assert points_expire(today=NEW_YEAR_2026) == 1

    assert balance(member) == 200 == ledger_sum(member)
    [entry] = expire_entries(member)
    assert (entry.points, entry.balance_after) == (-300, 200)
    assert entry.reason == "points earned before 2025 expired"
    assert entry.cause == PointsPolicy.current()
    assert timezone.localdate(entry.created_at) == timezone.localdate()
    ledgers_balanced()


def test_points_earned_in_2025_are_kept_until_1_january_2027(member, ledgers_balanced):
    post(member, 200, timezone.make_aware(datetime(2025, 1, 1, 0, 0)))
    post(member, 50, at(2025, 12, 31))
    assert points_expire(today=NEW_YEAR_2026) == 0
    assert balance(member) == 250
    assert points_expire(today=date(2026, 12, 31)) == 0

    assert points_expire(today=date(2027, 1, 1)) == 1

    assert balance(member) == 0
    assert [(e.points, e.balance_after) for e in expire_entries(member)] == [(-250, 0)]
    ledgers_balanced()


def test_a_point_earned_a_second_before_the_new_year_is_old(member):
    post(member, 40, timezone.make_aware(datetime(2024, 12, 31, 23, 59, 59)))
    post(member, 60, timezone.make_aware(datetime(2025, 1, 1, 0, 0, 0)))
    points_expire(today=NEW_YEAR_2026)
    assert balance(member) == 60


def test_spent_points_come_out_of_the_oldest_first(member, ledgers_balanced):
    # given 300 old points, 250 of them spent in 2025, and 100 earned in 2025
    post(member, 300, at(2024, 5, 1))
    post(member, -250, at(2025, 2, 1))
    post(member, 100, at(2025, 4, 1))
    # when
    points_expire(today=NEW_YEAR_2026)
    # then only the 50 old points left over expire
    assert balance(member) == 100
    assert [e.points for e in expire_entries(member)] == [-50]
    ledgers_balanced()


def test_nothing_expires_when_spending_already_used_the_old_points(member):
    post(member, 100, at(2024, 5, 1))
    post(member, 200, at(2025, 3, 1))
    post(member, -150, at(2025, 4, 1))
    assert points_expire(today=NEW_YEAR_2026) == 0
    assert balance(member) == 150
    assert expire_entries(member) == []


def test_every_kind_of_credit_since_the_cutoff_counts_as_valid(member):
    post(member, 100, at(2024, 5, 1))
    for kind in (PointsEntry.Kind.MIGRATION, PointsEntry.Kind.ADJUST, PointsEntry.Kind.MERGE_IN,
                 PointsEntry.Kind.REVERSAL):
        post(member, 10, at(2025, 5, 1), kind=kind)
    points_expire(today=NEW_YEAR_2026)
    assert balance(member) == 40


def test_a_second_run_the_same_day_or_later_in_the_year_expires_nothing_more(member_with_2024_and_2025_points,
                                                                              ledgers_balanced):
    member = member_with_2024_and_2025_points
    assert points_expire(today=NEW_YEAR_2026) == 1
    assert points_expire(today=NEW_YEAR_2026) == 0
    post(member, -120, at(2026, 3, 1))
    post(member, 80, at(2026, 4, 1))
    assert points_expire(today=date(2026, 11, 30)) == 0
    assert balance(member) == 160
    assert len(expire_entries(member)) == 1
    ledgers_balanced()


def test_nothing_expires_while_the_policy_is_disabled(member_with_2024_and_2025_points):
    PointsPolicy.objects.filter(pk=PointsPolicy.current().pk).update(expiry_enabled=False)
    assert points_expire(today=NEW_YEAR_2026) == 0
    assert balance(member_with_2024_and_2025_points) == 500
    assert points_expiring(today=date(2025, 12, 20)).count() == 0
    assert member_points_expiring(member=member_with_2024_and_2025_points, today=date(2025, 12, 20)) is None


def test_two_years_of_validity_keep_2024_points_through_2026(member_with_2024_and_2025_points):
    PointsPolicy.objects.filter(pk=PointsPolicy.current().pk).update(expiry_years=2)
    assert points_expire(today=NEW_YEAR_2026) == 0
    assert points_expire(today=date(2027, 1, 1)) == 1
    assert balance(member_with_2024_and_2025_points) == 200


def test_members_without_old_points_are_untouched(dept001, member_with_2024_and_2025_points):
    empty = register(name="王芳", phone="13900139000", store=dept001)
    recent = register(name="赵敏", phone="13700137000", store=dept001)
    post(recent, 70, at(2025, 8, 1))
    points_expire(today=NEW_YEAR_2026)
    assert (balance(empty), balance(recent)) == (0, 70)
    assert not PointsEntry.objects.filter(member__in=[empty, recent], kind=EXPIRE).exists()


def test_many_members_in_small_batches_each_lose_their_own_old_points(dept001, ledgers_balanced):
    members = []
    for index in range(12):
        member = register(name=f"会员{index}", phone=f"1380000{index:04d}", store=dept001)
        post(member, 100 + index, at(2024, 5, 1))
        if index % 3 == 0:
            post(member, 5, at(2025, 5, 1))
        members.append(member)

    assert points_expire(today=NEW_YEAR_2026, batch=5) == 12

    assert [balance(member) for member in members] == [5 if index % 3 == 0 else 0 for index in range(12)]
    assert points_expire(today=NEW_YEAR_2026, batch=5) == 0
    ledgers_balanced()


def test_a_batch_must_hold_at_least_one_member(member):
    with pytest.raises(ValueError, match="batch"):
        points_expire(today=NEW_YEAR_2026, batch=0)


def test_the_nightly_task_takes_points_older_than_last_year(member, ledgers_balanced):
    today = timezone.localdate()
    post(member, 90, at(today.year - 2, 3, 1))
    post(member, 10, timezone.now())
    assert points_expire_task.apply().get() == 1
    assert balance(member) == 10
    ledgers_balanced()


# --- the list of points expiring soon ------------------------------------------------------------


def test_points_expiring_names_what_the_coming_year_end_takes(member_with_2024_and_2025_points, dept001):
    member = member_with_2024_and_2025_points
    register(name="王芳", phone="13900139000", store=dept001)  # no points: never listed
    [row] = points_expiring(today=date(2025, 12, 10))
    assert (row.pk, row.points_expiring, row.points_expire_on) == (member.pk, 300, date(2025, 12, 31))
    assert points_expiry_next(today=date(2025, 12, 10)).cutoff == timezone.make_aware(datetime(2025, 1, 1))


def test_points_expiring_is_empty_before_the_notice_period(member_with_2024_and_2025_points):
    assert points_expiring(today=date(2025, 11, 1)).count() == 0
    assert points_expiring(today=date(2025, 11, 1), within_days=366).count() == 1
    PointsPolicy.objects.filter(pk=1).update(expiry_notice_days=90)
    assert points_expiring(today=date(2025, 11, 1)).count() == 1


def test_the_list_agrees_with_what_the_run_then_takes(dept001, member_with_2024_and_2025_points):
    other = register(name="王芳", phone="13900139000", store=dept001)
    post(other, 80, at(2024, 2, 1))
    post(other, -30, at(2025, 2, 1))
    listed = dict(points_expiring(today=date(2025, 12, 31)).values_list("pk", "points_expiring"))

    points_expire(today=NEW_YEAR_2026)

    taken = dict(PointsEntry.objects.filter(kind=EXPIRE).values_list("member_id", "points"))
    assert listed == {member_id: -points for member_id, points in taken.items()}
    assert listed == {member_with_2024_and_2025_points.pk: 300, other.pk: 50}


def test_member_points_expiring_for_the_member_page(member_with_2024_and_2025_points, dept001):
    expiring = member_points_expiring(member=member_with_2024_and_2025_points, today=date(2025, 7, 1))
    assert (expiring.points, expiring.expires_on) == (300, date(2025, 12, 31))
    nobody = register(name="王芳", phone="13900139000", store=dept001)
    assert member_points_expiring(member=nobody, today=date(2025, 7, 1)) is None


# --- PostgreSQL only -----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_points_earned_while_the_run_waits_for_the_member_are_not_expired(dept001, ledgers_balanced):
    """A till holds the member's row while the run reaches it: the run waits, then counts the new points."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    member = register(name="李建国", phone="13800138000", store=dept001)
    post(member, 300, at(2024, 5, 1))
    result: dict = {}

    def run():
        try:
            result["written"] = points_expire(today=NEW_YEAR_2026)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            result["error"] = repr(error)
        finally:
            connection.close()

    with transaction.atomic():
        locked = Member.objects.select_for_update().get(pk=member.pk)
        points_post(member=locked, points=50, kind=EARN)
        runner = threading.Thread(target=run)
        runner.start()
        time.sleep(1.0)
        assert runner.is_alive(), "the run waits for the member's lock"
    runner.join(timeout=60)

    assert result == {"written": 1}
    assert balance(member) == 50
    assert [(e.points, e.balance_after) for e in expire_entries(member)] == [(-300, 50)]
    ledgers_balanced()
