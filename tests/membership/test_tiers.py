"""tiers_evaluate: the nightly re-evaluation of earned tiers by rolling spend, and the end of paid terms."""

import itertools
import threading
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from core.dates import months_add
from membership.models import Member, PointsPolicy, Purchase, Tier, TierChange
from membership.services import (
    TierEvaluation,
    member_qualifying_spend,
    tier_for_spend,
    tier_window,
    tiers_evaluate,
)
from tests.membership.conftest import register

TODAY = date(2025, 6, 15)
_phones = itertools.count(13900000001)
_receipts = itertools.count(1)


def new_member(name: str = "王芳", **fields) -> Member:
    return register(name=name, phone=str(next(_phones)), **fields)


def at(day: date, hour: int = 12) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def buy(member: Member, store, amount: str, *, on: date, returned: str = "0.00", hour: int = 12) -> None:
    """A purchase as the POS records it; bulk_create, as an import of POS history would write it."""
    Purchase.objects.bulk_create([Purchase(
        member=member, store=store, format=store.format, legal_entity=store.format.legal_entity,
        receipt_no=f"R{next(_receipts):06d}", amount=Decimal(amount), returned_amount=Decimal(returned),
        occurred_at=at(on, hour),
    )])


def reload(member: Member) -> Member:
    return Member.objects.select_related("tier").get(pk=member.pk)


def set_tier(member: Member, code: str, *, downgrade_on: date | None = None) -> None:
    Member.objects.filter(pk=member.pk).update(tier=Tier.objects.get(code=code), tier_downgrade_on=downgrade_on)


def history(member: Member) -> list[tuple[str, str | None, str | None]]:
    return list(
        TierChange.objects.filter(member=member).order_by("pk")
        .values_list("reason", "from_tier__code", "to_tier__code")
    )


@pytest.fixture
def tiers(db) -> dict[str, Tier]:
    return {tier.code: tier for tier in Tier.objects.all()}


@pytest.fixture
def member(dept001) -> Member:
    return new_member(store=dept001)


# --- upgrades ------------------------------------------------------------------------------------


def test_spend_across_formats_crossing_the_gold_threshold_upgrades_at_once(member, dept001, super001, tiers):
    # given 12,000 at the supermarket and 8,000 at the department store this year
    buy(member, super001, "12000.00", on=TODAY - timedelta(days=200))
    buy(member, dept001, "8000.00", on=TODAY - timedelta(days=3))
    # when
    result = tiers_evaluate(today=TODAY)
    # then
    assert result == TierEvaluation(upgraded=1)
    assert reload(member).tier == tiers["GOLD"]
    [change] = TierChange.objects.filter(member=member)
    assert (change.reason, change.from_tier, change.to_tier) == ("upgrade", tiers["NORMAL"], tiers["GOLD"])
    assert change.spend == Decimal("20000.00")
    assert change.actor is None


def test_one_yuan_below_the_threshold_is_the_tier_below(member, dept001, tiers):
    buy(member, dept001, "19999.99", on=TODAY)
    tiers_evaluate(today=TODAY)
    assert reload(member).tier == tiers["SILVER"]


def test_the_nightly_task_upgrades_a_member_who_crossed_the_gold_threshold(member, dept001, super001, tiers):
    from membership.tasks import tiers_evaluate as task

    today = timezone.localdate()
    buy(member, super001, "15000.00", on=today - timedelta(days=30))
    buy(member, dept001, "5000.01", on=today - timedelta(days=1))

    result = task.delay().get()

    assert result == {"upgraded": 1, "grace_started": 0, "kept": 0, "downgraded": 0, "paid_expired": 0}
    assert reload(member).tier == tiers["GOLD"]
    assert history(member) == [("upgrade", "NORMAL", "GOLD")]


def test_the_task_is_registered_under_the_name_of_its_schedule():
    from celery import current_app

    from core.schedules import NIGHTLY

    assert "membership.tiers_evaluate" in current_app.tasks
    assert "membership.tiers_evaluate" in {task for task, *_rest in NIGHTLY.values()}


def test_a_member_jumps_straight_to_the_tier_their_spend_reaches(member, dept001, tiers):
    buy(member, dept001, "60000.00", on=TODAY - timedelta(days=10))
    tiers_evaluate(today=TODAY)
    assert reload(member).tier == tiers["PLATINUM"]
    assert history(member) == [("upgrade", "NORMAL", "PLATINUM")]


def test_a_frozen_member_is_evaluated_too(member, dept001, tiers):
    Member.objects.filter(pk=member.pk).update(status=Member.Status.FROZEN)
    buy(member, dept001, "5000.00", on=TODAY)
    assert tiers_evaluate(today=TODAY).upgraded == 1
    assert reload(member).tier == tiers["SILVER"]


# --- grace period and downgrades ---------------------------------------------------------------------


def test_a_gold_member_below_the_threshold_keeps_gold_through_the_grace_period(member, dept001, tiers):
    # given a GOLD member who spent only 6,000 in the window
    set_tier(member, "GOLD")
    buy(member, dept001, "6000.00", on=TODAY - timedelta(days=20))

    # when the nightly run finds them below GOLD: the grace period starts
    assert tiers_evaluate(today=TODAY) == TierEvaluation(grace_started=1)
    gold = reload(member)
    assert gold.tier == tiers["GOLD"]
    assert gold.tier_downgrade_on == TODAY + timedelta(days=90)
    [grace] = TierChange.objects.filter(member=member)
    assert (grace.reason, grace.from_tier, grace.to_tier, grace.spend) == ("grace", tiers["GOLD"], tiers["GOLD"],
                                                                           Decimal("6000.00"))
    assert (TODAY + timedelta(days=90)).isoformat() in grace.note

    # then nothing happens until the last day of the grace period
    assert tiers_evaluate(today=TODAY + timedelta(days=89)) == TierEvaluation()
    assert reload(member).tier == tiers["GOLD"]

    # and on the day it ends they go down to the tier their spend reaches
    assert tiers_evaluate(today=TODAY + timedelta(days=90)) == TierEvaluation(downgraded=1)
    silver = reload(member)
    assert (silver.tier, silver.tier_downgrade_on) == (tiers["SILVER"], None)
    assert history(member) == [("grace", "GOLD", "GOLD"), ("downgrade", "GOLD", "SILVER")]
    assert TierChange.objects.filter(member=member, reason="downgrade").get().spend == Decimal("6000.00")


def test_spend_recovering_during_the_grace_period_keeps_the_tier(member, dept001, tiers):
    set_tier(member, "GOLD")
    buy(member, dept001, "6000.00", on=TODAY - timedelta(days=20))
    tiers_evaluate(today=TODAY)

    buy(member, dept001, "14000.00", on=TODAY + timedelta(days=10))
    assert tiers_evaluate(today=TODAY + timedelta(days=10)) == TierEvaluation(kept=1)

    kept = reload(member)
    assert (kept.tier, kept.tier_downgrade_on) == (tiers["GOLD"], None)
    assert history(member) == [("grace", "GOLD", "GOLD"), ("kept", "GOLD", "GOLD")]
    assert TierChange.objects.get(member=member, reason="kept").spend == Decimal("20000.00")
    assert tiers_evaluate(today=TODAY + timedelta(days=400)).grace_started == 1, "a later fall starts a new grace"


def test_spend_rising_above_the_tier_during_the_grace_period_upgrades_and_ends_it(member, dept001, tiers):
    set_tier(member, "GOLD", downgrade_on=TODAY + timedelta(days=30))
    buy(member, dept001, "55000.00", on=TODAY)
    assert tiers_evaluate(today=TODAY) == TierEvaluation(upgraded=1)
    upgraded = reload(member)
    assert (upgraded.tier, upgraded.tier_downgrade_on) == (tiers["PLATINUM"], None)
    assert history(member) == [("upgrade", "GOLD", "PLATINUM")]


def test_a_grace_period_already_over_downgrades_at_once(member, tiers):
    set_tier(member, "PLATINUM", downgrade_on=TODAY - timedelta(days=3))
    assert tiers_evaluate(today=TODAY) == TierEvaluation(downgraded=1)
    assert reload(member).tier == tiers["NORMAL"]


def test_a_tier_without_grace_period_downgrades_at_once(member, dept001, tiers):
    Tier.objects.filter(code="SILVER").update(grace_days=0)
    set_tier(member, "SILVER")
    buy(member, dept001, "100.00", on=TODAY)
    assert tiers_evaluate(today=TODAY) == TierEvaluation(downgraded=1)
    normal = reload(member)
    assert (normal.tier, normal.tier_downgrade_on) == (tiers["NORMAL"], None)
    assert history(member) == [("downgrade", "SILVER", "NORMAL")]


def test_the_grace_period_is_the_current_tiers(member, tiers):
    Tier.objects.filter(code="PLATINUM").update(grace_days=30)
    set_tier(member, "PLATINUM")
    tiers_evaluate(today=TODAY)
    assert reload(member).tier_downgrade_on == TODAY + timedelta(days=30)


def test_members_at_their_tier_without_grace_are_not_touched(member, dept001, tiers):
    set_tier(member, "SILVER")
    buy(member, dept001, "7000.00", on=TODAY)
    untouched = new_member(name="李建国")
    assert tiers_evaluate(today=TODAY) == TierEvaluation()
    assert reload(member).tier == tiers["SILVER"]
    assert reload(untouched).tier == tiers["NORMAL"]
    assert not TierChange.objects.exists()


# --- spend: returns and the window ------------------------------------------------------------------


def test_returns_lower_the_qualifying_spend(member, dept001, tiers):
    buy(member, dept001, "21000.00", on=TODAY - timedelta(days=5), returned="2000.00")
    tiers_evaluate(today=TODAY)
    assert reload(member).tier == tiers["SILVER"]
    assert TierChange.objects.get(member=member).spend == Decimal("19000.00")
    assert member_qualifying_spend(member, today=TODAY) == Decimal("19000.00")


def test_a_fully_returned_purchase_counts_nothing(member, dept001, tiers):
    buy(member, dept001, "9000.00", on=TODAY, returned="9000.00")
    assert tiers_evaluate(today=TODAY) == TierEvaluation()
    assert reload(member).tier == tiers["NORMAL"]


def test_purchases_older_than_the_window_do_not_count(dept001, tiers):
    # given one member who bought on the day twelve months ago, another on the day after
    left = new_member(name="张伟")
    inside = new_member(name="刘洋")
    buy(left, dept001, "5000.00", on=months_add(TODAY, -12), hour=23)
    buy(inside, dept001, "5000.00", on=months_add(TODAY, -12) + timedelta(days=1), hour=0)
    # when
    tiers_evaluate(today=TODAY)
    # then
    assert reload(left).tier == tiers["NORMAL"]
    assert reload(inside).tier == tiers["SILVER"]


def test_purchases_after_the_evaluated_day_do_not_count(member, dept001, tiers):
    buy(member, dept001, "5000.00", on=TODAY + timedelta(days=1), hour=0)
    tiers_evaluate(today=TODAY)
    assert reload(member).tier == tiers["NORMAL"]


def test_the_window_follows_the_points_policy(member, dept001, tiers):
    PointsPolicy.objects.update_or_create(pk=1, defaults={"tier_window_months": 6})
    buy(member, dept001, "4000.00", on=TODAY - timedelta(days=240))
    buy(member, dept001, "4000.00", on=TODAY - timedelta(days=100))
    tiers_evaluate(today=TODAY)
    assert reload(member).tier == tiers["NORMAL"], "8,000 in 12 months, only 4,000 in the last 6"


def test_the_window_is_in_local_time():
    start, end = tier_window(date(2025, 3, 31), months=1)
    assert (start, end) == (at(date(2025, 3, 1), 0), at(date(2025, 4, 1), 0))
    assert start.isoformat() == "2025-03-01T00:00:00+08:00"


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2025, 1, 31), 1, date(2025, 2, 28)),
    (date(2024, 1, 31), 1, date(2024, 2, 29)),
    (date(2025, 6, 15), -12, date(2024, 6, 15)),
    (date(2025, 3, 31), -1, date(2025, 2, 28)),
    (date(2025, 12, 1), 1, date(2026, 1, 1)),
])
def test_months_add_stays_in_the_month(day, months, expected):
    assert months_add(day, months) == expected


@pytest.mark.parametrize(("spend", "code"), [
    ("0.00", "NORMAL"), ("4999.99", "NORMAL"), ("5000.00", "SILVER"), ("20000.00", "GOLD"), ("1000000.00", "PLATINUM"),
])
def test_tier_for_spend_names_the_tier_the_evaluation_gives(member, dept001, spend, code):
    if Decimal(spend):
        buy(member, dept001, spend, on=TODAY)
    tiers_evaluate(today=TODAY)
    assert tier_for_spend(Decimal(spend)).code == code == reload(member).tier.code


def test_an_inactive_tier_is_no_target(member, dept001, tiers):
    Tier.objects.filter(code="GOLD").update(is_active=False)
    buy(member, dept001, "30000.00", on=TODAY)
    tiers_evaluate(today=TODAY)
    assert reload(member).tier == tiers["SILVER"]


# --- who is evaluated, and how often ------------------------------------------------------------------


def test_merged_and_closed_members_are_left_alone(dept001, tiers):
    survivor = new_member(name="王芳")
    merged = new_member(name="王芳")
    closed = new_member(name="赵敏")
    Member.objects.filter(pk=merged.pk).update(status=Member.Status.MERGED, merged_into=survivor)
    Member.objects.filter(pk=closed.pk).update(status=Member.Status.CLOSED)
    set_tier(closed, "PLATINUM")
    buy(merged, dept001, "25000.00", on=TODAY)
    buy(closed, dept001, "100.00", on=TODAY)

    assert tiers_evaluate(today=TODAY) == TierEvaluation()

    assert reload(merged).tier == tiers["NORMAL"]
    assert (reload(closed).tier, reload(closed).tier_downgrade_on) == (tiers["PLATINUM"], None)
    assert not TierChange.objects.exists()


def test_a_second_run_on_the_same_day_changes_nothing(dept001, tiers):
    upgrade, grace, down = new_member(name="甲"), new_member(name="乙"), new_member(name="丙")
    buy(upgrade, dept001, "20000.00", on=TODAY)
    set_tier(grace, "GOLD")
    set_tier(down, "SILVER", downgrade_on=TODAY)
    first = tiers_evaluate(today=TODAY)
    assert first == TierEvaluation(upgraded=1, grace_started=1, downgraded=1)
    rows = TierChange.objects.count()
    stamps = list(Member.objects.order_by("pk").values_list("updated_at", "tier_id", "tier_downgrade_on"))

    assert tiers_evaluate(today=TODAY) == TierEvaluation()

    assert TierChange.objects.count() == rows == 3
    assert list(Member.objects.order_by("pk").values_list("updated_at", "tier_id", "tier_downgrade_on")) == stamps


def test_the_evaluation_does_not_loop_over_members(dept001, django_assert_max_num_queries):
    for index in range(1, 26):
        member = new_member(name=f"会员{index}")
        buy(member, dept001, f"{index * 1000}.00", on=TODAY)
    with django_assert_max_num_queries(16):
        result = tiers_evaluate(today=TODAY)
    assert result.upgraded == 25 - 4, "1,000 to 4,000 stay NORMAL"


def test_a_member_on_a_paid_tier_in_the_earned_column_is_not_evaluated(member, tiers):
    set_tier(member, "PLUS")
    assert tiers_evaluate(today=TODAY) == TierEvaluation()
    assert reload(member).tier == tiers["PLUS"]


# --- paid tiers end with their term -----------------------------------------------------------------


def test_a_paid_tier_past_its_last_day_ends_at_the_nightly_run(dept001, tiers):
    ended = new_member(name="钱多多")
    last_day = new_member(name="孙悟空")
    Member.objects.filter(pk=ended.pk).update(paid_tier=tiers["PLUS"], paid_tier_until=TODAY - timedelta(days=1))
    Member.objects.filter(pk=last_day.pk).update(paid_tier=tiers["PLUS"], paid_tier_until=TODAY)

    assert tiers_evaluate(today=TODAY) == TierEvaluation(paid_expired=1)

    ended = reload(ended)
    assert (ended.paid_tier, ended.paid_tier_until) == (None, None)
    assert history(ended) == [("paid_expiry", "PLUS", None)]
    assert reload(last_day).paid_tier == tiers["PLUS"], "the last day of the term still counts"
    assert tiers_evaluate(today=TODAY) == TierEvaluation()


def test_a_closed_members_paid_tier_is_left_alone(member, tiers):
    Member.objects.filter(pk=member.pk).update(
        status=Member.Status.CLOSED, paid_tier=tiers["PLUS"], paid_tier_until=TODAY - timedelta(days=10)
    )
    assert tiers_evaluate(today=TODAY) == TierEvaluation()
    assert reload(member).paid_tier == tiers["PLUS"]


def test_earned_and_paid_changes_of_one_member_in_one_run(member, dept001, tiers):
    Member.objects.filter(pk=member.pk).update(paid_tier=tiers["PLUS"], paid_tier_until=TODAY - timedelta(days=1))
    buy(member, dept001, "5000.00", on=TODAY)
    assert tiers_evaluate(today=TODAY) == TierEvaluation(upgraded=1, paid_expired=1)
    changed = reload(member)
    assert (changed.tier, changed.paid_tier) == (tiers["SILVER"], None)
    assert sorted(reason for reason, *_tiers in history(member)) == ["paid_expiry", "upgrade"]


def test_paid_terms_end_even_when_no_earned_tier_is_active(member, tiers):
    Tier.objects.filter(kind=Tier.Kind.EARNED).update(is_active=False)
    Member.objects.filter(pk=member.pk).update(paid_tier=tiers["PLUS"], paid_tier_until=TODAY - timedelta(days=1))
    assert tiers_evaluate(today=TODAY) == TierEvaluation(paid_expired=1)
    assert reload(member).tier == tiers["NORMAL"]


# --- PostgreSQL: two runs at once -------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_evaluations_at_once_decide_each_member_once(reference_stores):
    from stores.models import Store

    dept001 = Store.objects.get(code="DEPT001")
    members = [new_member(name=f"并发{index}") for index in range(20)]
    for member in members:
        buy(member, dept001, "20000.00", on=TODAY)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(tiers_evaluate(today=TODAY))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert sorted(result.upgraded for result in results) == [0, 20]
    assert TierChange.objects.filter(reason="upgrade").count() == 20
    assert set(Member.objects.filter(pk__in=[m.pk for m in members]).values_list("tier__code", flat=True)) == {
        "GOLD"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_member_changed_while_the_evaluation_runs_is_left_to_the_next_run(reference_stores):
    from django.db import transaction

    from stores.models import Store

    dept001 = Store.objects.get(code="DEPT001")
    member = new_member(name="并发")
    buy(member, dept001, "20000.00", on=TODAY)
    platinum = Tier.objects.get(code="PLATINUM")
    changed, release = threading.Event(), threading.Event()
    results = []

    def staff_change():
        # given staff set the member to PLATINUM in a transaction still open when the evaluation decides
        try:
            with transaction.atomic():
                Member.objects.select_for_update().filter(pk=member.pk).update(tier=platinum)
                changed.set()
                release.wait(30)
        finally:
            connection.close()

    def evaluate():
        try:
            results.append(tiers_evaluate(today=TODAY))
        finally:
            connection.close()

    staff = threading.Thread(target=staff_change)
    staff.start()
    assert changed.wait(30)
    nightly = threading.Thread(target=evaluate)
    nightly.start()
    # when the evaluation waits for the row, and the staff change commits
    for _attempt in range(300):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock' AND query LIKE '%%UPDATE%%membership_member%%'")
            if cursor.fetchone()[0]:
                break
        threading.Event().wait(0.1)
    release.set()
    staff.join()
    nightly.join()

    # then the evaluation's upgrade to GOLD is not applied over it, and no history row claims it was
    assert results == [TierEvaluation()]
    assert reload(member).tier == platinum
    assert not TierChange.objects.filter(member=member).exists()
    # and the next run decides from the new state
    assert tiers_evaluate(today=TODAY) == TierEvaluation(grace_started=1)
