"""The prepaid card report: sales by channel and format with growth, spending, orders, outstanding, escrow."""

from datetime import date, datetime
from decimal import Decimal as D

import pytest
from django.utils import timezone

from cards.models import CardLedgerEntry, CardTransaction, SaleOrder
from cards.queries.liability import liability_report
from cards.services.ledger import card_post
from reports.frame import NO_DATA, ReportParams
from reports.queries.cards import build
from stores.models import StaffProfile
from tests.factories import CardFactory, StaffFactory

OCTOBER = ReportParams(start=date(2026, 10, 1), end=date(2026, 10, 31))


def local(*parts) -> datetime:
    return timezone.make_aware(datetime(*parts))


def order(store, *, face: str, at: datetime, channel=SaleOrder.Channel.WALK_IN, kind=SaleOrder.Kind.SALE,
          status=SaleOrder.Status.COMPLETED) -> SaleOrder:
    clerk = StaffFactory(scope=StaffProfile.Scope.HQ)
    return SaleOrder.objects.create(
        order_no=f"T{SaleOrder.objects.count() + 1:08d}", kind=kind, channel=channel, store=store, status=status,
        face_total=D(face), amount_due=D(face), created_by=clerk, created_at=at,
        completed_at=at if status == SaleOrder.Status.COMPLETED else None,
    )


def payment(card, store, *, day: date, reversed_at: datetime | None = None) -> CardTransaction:
    return CardTransaction.objects.create(
        transaction_id=f"TX{CardTransaction.objects.count() + 1:08d}", kind=CardTransaction.Kind.DEBIT, card=card,
        amount=D("10.00"), charged=D("10.00"), balance_after=card.balance, store=store, business_date=day,
        reversed_at=reversed_at,
    )


@pytest.fixture
def october_cards(dept001, super001):
    # given: sales in October 2026 at both stores, one a year earlier, one just after, one never paid
    order(dept001, face="500.00", at=local(2026, 10, 3, 10))
    order(dept001, face="1500.00", at=local(2026, 10, 20, 15), channel=SaleOrder.Channel.GROUP)
    order(super001, face="200.00", at=local(2026, 10, 31, 23, 59), kind=SaleOrder.Kind.TOP_UP)
    order(dept001, face="900.00", at=local(2026, 11, 1, 0, 1))
    order(dept001, face="700.00", at=local(2026, 10, 5), status=SaleOrder.Status.PENDING)
    order(dept001, face="1000.00", at=local(2025, 10, 15, 12))
    # and a card sold at DEPT001, spent at the tills in and after October
    card = CardFactory(sold_store=dept001)
    card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=D("1000.00"), store=dept001,
              created_at=local(2026, 9, 1, 9))
    card_post(card=card, kind=CardLedgerEntry.Kind.DEBIT, amount=D("-300.00"), store=dept001,
              created_at=local(2026, 10, 10, 9))
    card_post(card=card, kind=CardLedgerEntry.Kind.REFUND, amount=D("50.00"), store=dept001,
              created_at=local(2026, 10, 12, 9))
    card_post(card=card, kind=CardLedgerEntry.Kind.DEBIT, amount=D("-100.00"), store=super001,
              created_at=local(2026, 11, 2, 9))
    payment(card, dept001, day=date(2026, 10, 10))
    payment(card, dept001, day=date(2026, 10, 11), reversed_at=local(2026, 10, 11, 10))
    payment(card, dept001, day=date(2026, 10, 30), reversed_at=local(2026, 11, 5, 10))
    payment(card, super001, day=date(2026, 11, 2))
    return card


def values(report) -> dict:
    return {figure.key: figure.value for figure in report.figures}


def test_card_sales_split_by_channel_with_growth_over_last_year(october_cards):
    # when
    figures = values(build(OCTOBER))
    # then
    assert figures["card_sales"] == D("2200.00")
    assert figures["walk_in_sales"] == D("700.00")
    assert figures["group_sales"] == D("1500.00")
    assert figures["walk_in_share"] == D("0.3182")
    assert figures["group_share"] == D("0.6818")
    assert figures["card_sales_last_year"] == D("1000.00")
    assert figures["card_sales_growth"] == D("1.2000")
    assert figures["sale_orders"] == 3


def test_card_spend_is_payments_net_of_refunds_and_orders_exclude_reversed_ones(october_cards):
    figures = values(build(OCTOBER))

    assert figures["card_spend"] == D("250.00")
    # the payment reversed in October is out, the one reversed in November still counted
    assert figures["card_orders"] == 2


def test_outstanding_is_the_ledger_at_the_period_end_and_matches_the_ageing(october_cards):
    report = build(OCTOBER)
    figures = values(report)

    assert figures["card_outstanding"] == D("750.00")
    ageing = sum(value for key, value in figures.items() if key.startswith("ageing_"))
    assert ageing == D("750.00")
    assert figures["escrow_required"] == liability_report(today=OCTOBER.end).escrow


def test_a_store_report_counts_only_that_stores_rows(october_cards, super001):
    params = ReportParams(start=OCTOBER.start, end=OCTOBER.end, store_ids=(super001.pk,))

    report = build(params)
    figures = values(report)

    assert figures["card_sales"] == D("200.00")
    assert figures["walk_in_share"] == D("1.0000")
    assert figures["card_sales_growth"] is None
    assert figures["card_spend"] == D("0.00")
    assert figures["card_outstanding"] == D("0.00")
    assert figures["escrow_required"] is None
    assert any("headquarters" in note for note in report.notes)


def test_tables_and_charts_split_by_format_and_month(october_cards, dept001, super001):
    report = build(OCTOBER)

    by_format = {row[0]: row for row in next(t for t in report.tables if t.key == "by_format").rows}
    assert by_format[dept001.format.name][1:6] == (D("2000.00"), D("500.00"), D("1500.00"), D("250.00"), 2)
    assert by_format[super001.format.name][1] == D("200.00")
    by_channel = {row[0]: row for row in next(t for t in report.tables if t.key == "by_channel").rows}
    assert sum(row[3] for row in by_channel.values()) == D("2200.00")
    monthly = next(chart for chart in report.charts if chart.key == "card_sales_by_month")
    assert len(monthly.categories) == 13
    assert monthly.categories[-1] == "2026-10" and monthly.categories[0] == "2025-10"
    assert monthly.series[0].values[-1] == D("2200.00") and monthly.series[0].values[0] == D("1000.00")
    assert monthly.series[1].values[-1] == D("250.00")
    pie = next(chart for chart in report.charts if chart.key == "walk_in_vs_group")
    assert pie.series[0].values == [D("700.00"), D("1500.00")]


def test_detail_rows_per_store_and_day_add_up_to_the_figures(october_cards, dept001):
    report = build(OCTOBER)

    rows = list(report.detail.rows)

    assert rows[0] == (date(2026, 10, 3), "DEPT001", dept001.format.name, D("500.00"), D("500.00"), D("0.00"),
                       D("0.00"), 0)
    assert sum(row[3] for row in rows) == D("2200.00")
    assert sum(row[6] for row in rows) == D("250.00")
    assert sum(row[7] for row in rows) == 2
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)


def test_a_period_without_data_gives_zeros_and_says_so(reference_stores):
    report = build(OCTOBER)
    figures = values(report)

    assert figures["card_sales"] == D("0.00")
    assert figures["walk_in_share"] is None
    assert figures["card_sales_growth"] is None
    assert figures["card_orders"] == 0
    assert str(NO_DATA) in report.notes
    assert list(report.detail.rows) == []
