"""The points report: movements by kind, the balance at the period's end, its value and the expiry forecast."""

from datetime import date, datetime
from decimal import Decimal as D

import pytest
from django.db.models import Sum
from django.utils import timezone

from membership.models import PointsEntry, PointsPolicy
from membership.services import purchase_record
from membership.services.ledger import points_post
from reports.frame import NO_DATA, ReportParams
from reports.queries.points import build
from tests.factories import MemberFactory

OCTOBER = ReportParams(start=date(2026, 10, 1), end=date(2026, 10, 31))
Kind = PointsEntry.Kind


def local(*parts) -> datetime:
    return timezone.make_aware(datetime(*parts))


def post(member, points: int, kind: str, at: datetime, store=None) -> None:
    points_post(member=member, points=points, kind=kind, store=store, reason="test", created_at=at)


@pytest.fixture
def members_with_points(dept001, super001):
    # given: a DEPT001 member with points of 2025 and 2026, spent at both stores in October
    alice = MemberFactory(store=dept001)
    post(alice, 1000, Kind.EARN, local(2025, 6, 1), dept001)
    post(alice, 500, Kind.EARN, local(2026, 10, 5), dept001)
    post(alice, -300, Kind.CASH_OUT, local(2026, 10, 10), dept001)
    post(alice, -200, Kind.GIFT, local(2026, 10, 12), super001)
    post(alice, 50, Kind.ADJUST, local(2026, 10, 15))
    post(alice, 100, Kind.EARN, local(2026, 11, 3), dept001)
    # and a SUPER001 member with points of 2025, part of them expired in October
    bob = MemberFactory(store=super001)
    post(bob, 400, Kind.EARN, local(2025, 12, 1), super001)
    post(bob, -100, Kind.EXPIRE, local(2026, 10, 20))
    return alice, bob


def values(report) -> dict:
    return {figure.key: figure.value for figure in report.figures}


def test_movements_of_the_period_by_kind(members_with_points):
    figures = values(build(OCTOBER))

    assert figures["points_earned"] == 500
    assert figures["points_redeemed"] == 500
    assert figures["points_cashed_out"] == 300
    assert figures["points_gifts"] == 200
    assert figures["points_expired"] == 100
    assert figures["points_adjusted"] == 50


def test_outstanding_is_the_ledger_at_the_period_end_valued_at_the_cash_rate(members_with_points):
    policy = PointsPolicy.current()
    policy.cash_points, policy.cash_value = 100, D("1.00")
    policy.save()

    figures = values(build(OCTOBER))

    # the November earning is after the end: not counted
    assert figures["points_outstanding"] == 1350
    assert figures["points_outstanding_value"] == D("13.50")


def test_expiry_forecast_takes_old_points_first_then_the_rest(members_with_points):
    report = build(OCTOBER)

    forecast = next(table for table in report.tables if table.key == "expiry_forecast").rows
    # 1 Jan 2027 takes what 2026's credits do not cover: alice 1050 - 550, bob all 300; 1 Jan 2028 the rest
    assert [(row[1], row[2]) for row in forecast] == [(date(2027, 1, 1), 800), (date(2028, 1, 1), 550)]
    assert forecast[0][0] == "2027-01"
    assert values(report)["points_expiring_next"] == 800
    chart = next(chart for chart in report.charts if chart.key == "expiry_forecast")
    assert chart.series[0].values == [800, 550]


def test_no_forecast_when_points_do_not_expire(members_with_points):
    PointsPolicy.objects.filter(pk=PointsPolicy.current().pk).update(expiry_enabled=False)

    report = build(OCTOBER)

    assert next(table for table in report.tables if table.key == "expiry_forecast").rows == []
    assert any("do not expire" in note for note in report.notes)


def test_a_store_report_counts_its_rows_and_its_members(members_with_points, dept001):
    params = ReportParams(start=OCTOBER.start, end=OCTOBER.end, store_ids=(dept001.pk,))

    report = build(params)
    figures = values(report)

    assert figures["points_earned"] == 500
    assert figures["points_redeemed"] == 300
    assert figures["points_gifts"] == 0
    assert figures["points_expired"] == 0
    assert figures["points_outstanding"] == 1050
    forecast = next(table for table in report.tables if table.key == "expiry_forecast").rows
    assert [row[2] for row in forecast] == [500, 550]


def test_per_format_table_and_monthly_chart(members_with_points, dept001, super001):
    report = build(OCTOBER)

    by_format = {row[0]: row for row in next(t for t in report.tables if t.key == "by_format").rows}
    assert by_format[dept001.format.name][1:4] == (500, 300, 300)
    assert by_format[super001.format.name][4] == 200
    assert by_format["no store"][5:7] == (100, 50)
    monthly = next(chart for chart in report.charts if chart.key == "points_by_month")
    assert monthly.categories[-1] == "2026-10" and len(monthly.categories) == 13
    assert monthly.series[0].values[-1] == 500 and monthly.series[1].values[-1] == 500
    assert monthly.series[0].values[-5] == 0  # June 2026: nothing


def test_a_period_without_data_says_so(reference_stores):
    report = build(OCTOBER)
    figures = values(report)

    assert figures["points_earned"] == 0
    assert figures["points_outstanding"] == 0
    assert figures["points_outstanding_value"] == D("0.00")
    assert str(NO_DATA) in report.notes


def test_detail_rows_per_day_and_store_add_up_to_the_figures(members_with_points, dept001):
    report = build(OCTOBER)

    rows = list(report.detail.rows)

    assert rows[0] == (date(2026, 10, 5), "DEPT001", dept001.format.name, 500, 0, 0, 0, 0, 0)
    assert sum(row[3] for row in rows) == 500
    assert sum(row[4] for row in rows) == 500
    assert sum(row[7] for row in rows) == 100
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)


def test_a_store_report_counts_the_members_who_bought_there_within_12_months(members_with_points, dept001, super001):
    """A store's members are also those registered elsewhere who bought there in the 12 months before the end:
    their points are in the store's outstanding and forecast, those of an older buyer are not."""
    # given: carol (SUPER001) bought at DEPT001 in October, dave (SUPER001) only more than 12 months before
    carol, dave = MemberFactory(store=super001), MemberFactory(store=super001)
    post(carol, 700, Kind.EARN, local(2026, 9, 1), super001)
    post(dave, 900, Kind.EARN, local(2026, 9, 1), super001)
    purchase_record(store=dept001, member=carol, receipt_no="P-CAROL", amount=D("10.00"),
                    occurred_at=local(2026, 10, 20, 12))
    purchase_record(store=dept001, member=dave, receipt_no="P-DAVE", amount=D("10.00"),
                    occurred_at=local(2025, 10, 20, 12))
    _low, high = OCTOBER.moments()
    carol.refresh_from_db()
    carol_at_end = carol.points - (PointsEntry.objects.filter(member=carol, created_at__gte=high)
                                   .aggregate(total=Sum("points"))["total"] or 0)

    report = build(ReportParams(start=OCTOBER.start, end=OCTOBER.end, store_ids=(dept001.pk,)))

    figures = values(report)
    assert carol_at_end >= 700
    assert figures["points_outstanding"] == 1050 + carol_at_end  # alice's and carol's, not dave's nor bob's
    forecast = next(table for table in report.tables if table.key == "expiry_forecast").rows
    assert sum(row[2] for row in forecast) == figures["points_outstanding"]  # the last run takes every point
