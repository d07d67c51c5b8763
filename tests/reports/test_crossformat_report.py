"""The cross-format report: members buying in several formats, the flow matrix and new members' origins."""

from datetime import date, datetime
from decimal import Decimal as D

import pytest
from django.utils import timezone

from membership.models import Purchase
from reports.frame import NO_DATA, ReportParams
from reports.queries.crossformat import build
from tests.factories import MemberFactory

OCTOBER = ReportParams(start=date(2026, 10, 1), end=date(2026, 10, 31))


def local(*parts) -> datetime:
    return timezone.make_aware(datetime(*parts))


def buy(member, store, at: datetime, *, returned: bool = False) -> Purchase:
    return Purchase.objects.create(
        member=member, store=store, format=store.format, legal_entity=store.format.legal_entity,
        receipt_no=f"R{Purchase.objects.count() + 1:06d}", amount=D("100.00"),
        returned_amount=D("100.00") if returned else D("0.00"), occurred_at=at,
    )


@pytest.fixture
def shoppers(dept001, super001):
    # given: alice bought at DEPT before, then at SUPER and DEPT in October
    alice = MemberFactory(store=dept001)
    buy(alice, dept001, local(2026, 3, 1, 10))
    buy(alice, super001, local(2026, 10, 5, 10))
    buy(alice, dept001, local(2026, 10, 6, 10))
    # bob's first purchase ever is at SUPER in October
    bob = MemberFactory(store=super001)
    buy(bob, super001, local(2026, 10, 7, 10))
    # carol bought at DEPT and returned all she bought at SUPER
    carol = MemberFactory(store=dept001)
    buy(carol, dept001, local(2026, 10, 8, 10))
    buy(carol, super001, local(2026, 10, 9, 10), returned=True)
    # dave bought at DEPT in October and at SUPER only after it
    dave = MemberFactory(store=dept001)
    buy(dave, dept001, local(2026, 10, 10, 10))
    buy(dave, super001, local(2026, 11, 2, 10))
    # and a customer without membership
    buy(None, dept001, local(2026, 10, 11, 10))


def values(report) -> dict:
    return {figure.key: figure.value for figure in report.figures}


def table(report, key: str) -> dict:
    found = next(table for table in report.tables if table.key == key)
    return {row[0]: dict(zip([column.key for column in found.columns], row, strict=True)) for row in found.rows}


def test_members_buying_in_two_formats_and_their_share(shoppers):
    figures = values(build(OCTOBER))

    assert figures["consuming_members"] == 4
    assert figures["multi_format_members"] == 1
    assert figures["multi_format_share"] == D("0.2500")


def test_flow_matrix_counts_members_of_both_formats_with_the_format_itself_on_the_diagonal(
        shoppers, dept001, super001):
    report = build(OCTOBER)

    matrix = table(report, "flow_matrix")
    dept, supermarket = dept001.format, super001.format
    assert matrix[dept.name][f"with_{dept.code}"] == 3
    assert matrix[supermarket.name][f"with_{supermarket.code}"] == 2
    assert matrix[dept.name][f"with_{supermarket.code}"] == 1
    assert matrix[supermarket.name][f"with_{dept.code}"] == 1
    chart = next(chart for chart in report.charts if chart.key == "format_flow")
    column = chart.categories.index(dept.name)
    assert next(series for series in chart.series if series.name == supermarket.name).values[column] == 1


def test_new_members_of_a_format_by_where_they_bought_first(shoppers, dept001, super001):
    report = build(OCTOBER)

    origins = table(report, "new_by_origin")
    dept, supermarket = dept001.format, super001.format
    assert origins[supermarket.name][f"from_{dept.code}"] == 1
    assert origins[supermarket.name]["no_earlier"] == 1
    assert origins[dept.name]["no_earlier"] == 2
    assert origins[dept.name]["total"] == 2
    figures = values(report)
    assert figures["format_new_members"] == 4
    assert figures["format_new_from_other_formats"] == 1


def test_a_store_report_follows_its_buyers_into_every_format(shoppers, dept001, super001):
    params = ReportParams(start=OCTOBER.start, end=OCTOBER.end, store_ids=(super001.pk,))

    report = build(params)
    figures = values(report)

    assert figures["consuming_members"] == 2
    assert figures["multi_format_members"] == 1
    matrix = table(report, "flow_matrix")
    assert matrix[dept001.format.name][f"with_{dept001.format.code}"] == 1
    origins = table(report, "new_by_origin")
    assert list(origins) == [super001.format.name]
    assert origins[super001.format.name]["total"] == 2


def test_a_period_without_purchases_says_so(reference_stores):
    report = build(OCTOBER)
    figures = values(report)

    assert figures["consuming_members"] == 0
    assert figures["multi_format_share"] is None
    assert str(NO_DATA) in report.notes
