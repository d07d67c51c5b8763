"""Card and points liability at a day's end: card balances per issuing company by age since the last load (with
dormant cards apart), points outstanding valued at the cash rate and shared over the earning companies."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from cards.models import Card, CardLedgerEntry
from cards.services.ledger import card_post
from membership.models import PointsEntry, PointsPolicy
from settlement.queries.liability import card_ageing, points_liability
from tests.factories import CardFactory
from tests.settlement.conftest import local_moment, member_earning, points_move

D = Decimal


@pytest.fixture
def at():
    return timezone.localdate() - timedelta(days=1)


def card_with(issuer_store, product, *movements) -> Card:
    """A card of the store's company with (kind, amount, day) movements through the ledger door."""
    card = CardFactory(product=product, sold_store=issuer_store, issuer=issuer_store.format.legal_entity)
    for kind, amount, day in movements:
        card_post(card=card, kind=kind, amount=D(amount), store=issuer_store, created_at=local_moment(day, 10))
    return card


LOAD, DEBIT = CardLedgerEntry.Kind.LOAD, CardLedgerEntry.Kind.DEBIT


@pytest.fixture
def aged_cards(at, dept001, super001, card_product):
    """Cards loaded 10, 100, 400 (spent 30 days ago) days before `at` at DEPT; 90, 91, 200 and 500 (untouched
    since: dormant) days before at SUPER; one spent to nothing, one loaded after `at`."""
    days = lambda count: at - timedelta(days=count)  # noqa: E731
    card_with(dept001, card_product, (LOAD, "500.00", days(10)), (LOAD, "50.00", at + timedelta(days=1)))
    card_with(dept001, card_product, (LOAD, "300.00", days(100)), (DEBIT, "-100.00", days(20)))
    card_with(dept001, card_product, (LOAD, "1000.00", days(400)), (DEBIT, "-250.00", days(30)))
    card_with(dept001, card_product, (LOAD, "100.00", days(5)), (DEBIT, "-100.00", days(5)))
    card_with(dept001, card_product, (LOAD, "999.00", at + timedelta(days=1)))
    card_with(super001, card_product, (LOAD, "10.00", days(90)))
    card_with(super001, card_product, (LOAD, "20.00", days(91)))
    card_with(super001, card_product, (LOAD, "400.00", days(200)))
    card_with(super001, card_product, (LOAD, "80.00", days(500)))


def buckets(row) -> tuple:
    return (row.days_0_90, row.days_91_180, row.days_181_365, row.over_365, row.dormant)


def test_card_balances_are_aged_by_their_last_load_per_issuer(aged_cards, at):
    ageing = card_ageing(at=at)

    rows = {row.issuer.code: row for row in ageing.rows}
    assert list(rows) == ["LE_DEPT", "LE_SUPER"]
    assert buckets(rows["LE_DEPT"]) == (D("500.00"), D("200.00"), D("0.00"), D("750.00"), D("0.00"))
    assert buckets(rows["LE_SUPER"]) == (D("10.00"), D("20.00"), D("400.00"), D("0.00"), D("80.00"))
    assert (rows["LE_DEPT"].cards, rows["LE_SUPER"].cards, rows["LE_SUPER"].dormant_cards) == (3, 4, 1)
    assert ageing.total == D("1960.00") == rows["LE_DEPT"].total + rows["LE_SUPER"].total
    assert buckets(ageing.totals) == (D("510.00"), D("220.00"), D("400.00"), D("750.00"), D("80.00"))


def test_the_ageing_counts_the_ledger_only_up_to_the_days_end(aged_cards, at):
    later = card_ageing(at=at + timedelta(days=1))

    assert later.total == D("1960.00") + D("50.00") + D("999.00")
    assert card_ageing(at=at - timedelta(days=1000)).rows == []


def test_dormant_days_follow_the_setting_and_win_over_age(aged_cards, at, settings):
    settings.SETTLEMENT_DORMANT_DAYS = 30

    rows = {row.issuer.code: row for row in card_ageing(at=at).rows}

    # The card spent 30 days ago is dormant now; the one spent 20 days ago is not.
    assert buckets(rows["LE_DEPT"]) == (D("500.00"), D("200.00"), D("0.00"), D("0.00"), D("750.00"))


def test_cards_without_an_issuer_have_their_own_row(dept001, card_product, at):
    card = card_with(dept001, card_product, (LOAD, "70.00", at))
    Card.objects.filter(pk=card.pk).update(issuer=None)

    ageing = card_ageing(at=at)

    assert [(row.issuer, row.days_0_90) for row in ageing.rows] == [(None, D("70.00"))]
    assert ageing.rows[0].label == "unknown issuer"


@pytest.fixture
def points_moved(at, dept001, super001, elec001):
    spender = member_earning(store=dept001, points=3000, day=at - timedelta(days=10))
    member_earning(store=super001, points=1000, day=at - timedelta(days=10))
    points_move(spender, kind=PointsEntry.Kind.REDEEM, points=-400, store=elec001, day=at)
    member_earning(store=elec001, points=500, day=at + timedelta(days=1))


def test_points_outstanding_are_valued_at_the_cash_rate_and_shared_by_the_pool(points_moved, at):
    liability = points_liability(at=at)

    assert (liability.points, liability.value) == (3600, D("36.00"))
    assert [(row.company.code, row.points, row.value) for row in liability.companies] == [
        ("LE_DEPT", 2700, D("27.00")), ("LE_SUPER", 900, D("9.00")),
    ]


def test_points_are_valued_at_the_policys_rate_of_the_day(points_moved, at):
    PointsPolicy.objects.filter(pk=PointsPolicy.current().pk).update(cash_points=200, cash_value=D("1.00"))

    liability = points_liability(at=at)

    assert liability.value == D("18.00")
    assert sum(row.points for row in liability.companies) == liability.points


def test_points_with_nothing_earned_in_the_window_belong_to_no_company(dept001, at):
    member = member_earning(store=dept001, points=0)
    points_move(member, kind=PointsEntry.Kind.ADJUST, points=300, store=dept001, day=at)

    liability = points_liability(at=at)

    assert [(row.company, row.points, row.value) for row in liability.companies] == [(None, 300, D("3.00"))]
