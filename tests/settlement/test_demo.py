"""The settlement demo: a locked month with statements, a reconciled day and an open day with two planted
exceptions, and a second run that adds nothing."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest

from approvals.models import ApprovalRequest
from cards.demo import seed_card_products
from cards.models import CardLedgerEntry, CardTransaction
from settlement.demo import OPEN_DAY_STORE, demo_days, settlement_seed
from settlement.models import (
    ClearingLine,
    ClearingRule,
    ClearingRun,
    FinanceExportLayout,
    PosFile,
    PosFileLayout,
    ReconDay,
    ReconException,
    SettlementPeriod,
    Statement,
)
from settlement.queries.clearing import clearing_matrix
from stores.demo import seed_staff


@pytest.fixture
def demo_ready(reference_stores):
    """What seed_demo has made before the settlement demo: stores, the demo staff, the card products."""
    seed_staff(password="demo-Passw0rd!")
    seed_card_products()


@pytest.fixture
def seeded(demo_ready):
    return settlement_seed(stdout=io.StringIO())


def _counts() -> dict[str, int]:
    models = (ClearingRule, PosFileLayout, FinanceExportLayout, CardTransaction, CardLedgerEntry, ClearingRun,
              ClearingLine, PosFile, ReconDay, ReconException, SettlementPeriod, Statement, ApprovalRequest)
    return {model.__name__: model.objects.count() for model in models}


def _the_closed_month_is_locked_with_statements_that_net_to_zero(seeded):
    # given the demo's days
    days = demo_days(seeded["reconciled_day"] + timedelta(days=3))
    period = SettlementPeriod.objects.get(code=seeded["closed_period"])

    # then the month was asked to close by finance and approved by the approver
    assert period.status == SettlementPeriod.Status.LOCKED
    assert (period.starts_on, period.ends_on) == (days["closed_start"], days["closed_end"])
    assert period.close_requested_by.username == "finance_hq"
    assert period.locked_by.username == "hq_approver"
    assert period.card_outstanding is not None
    # every day of it was cleared
    runs = ClearingRun.objects.filter(period=period, status=ClearingRun.Status.DONE)
    assert runs.count() == (period.ends_on - period.starts_on).days + 1
    # card money moved between companies, so there are statements, each netting its two directions
    statements = list(Statement.objects.filter(period=period))
    assert statements
    for statement in statements:
        assert statement.net == statement.a_owes_b - statement.b_owes_a
        assert statement.lines.exists()
    matrix = clearing_matrix(start=period.starts_on, end=period.ends_on)
    assert matrix.nets_to_zero
    assert sum(matrix.position.values()) == 0
    assert any(value for value in matrix.owed.values())


def _the_month_s_pos_files_were_reconciled_in_every_format(seeded):
    period = SettlementPeriod.objects.get(code=seeded["closed_period"])
    files = PosFile.objects.filter(business_date__range=(period.starts_on, period.ends_on))

    # one file per format and day with card payments, every store-day reconciled without exceptions
    assert len(set(files.values_list("format", flat=True))) == 4
    assert files.filter(layout__encoding=PosFileLayout.Encoding.GBK).exists()
    days = ReconDay.objects.filter(business_date__range=(period.starts_on, period.ends_on))
    assert days.exists()
    assert set(days.values_list("status", flat=True)) == {ReconDay.Status.RECONCILED}
    paid = set(CardTransaction.objects.filter(business_date__range=(period.starts_on, period.ends_on))
               .values_list("store_id", "business_date"))
    assert paid <= set(days.values_list("store_id", "business_date"))


def _the_current_month_has_a_reconciled_day_and_an_open_day_with_two_planted_exceptions(seeded):
    # a reconciled day: every store-day of it matched
    reconciled = ReconDay.objects.filter(business_date=seeded["reconciled_day"])
    assert reconciled.filter(store__code=OPEN_DAY_STORE).exists()
    assert set(reconciled.values_list("status", flat=True)) == {ReconDay.Status.RECONCILED}

    # the open day: DEPT001 open with exactly a missing debit and a differing amount
    open_day = ReconDay.objects.get(store__code=OPEN_DAY_STORE, business_date=seeded["open_day"])
    assert open_day.status == ReconDay.Status.OPEN
    exceptions = ReconException.objects.filter(day=open_day)
    assert sorted(exceptions.values_list("kind", "status")) == [
        (ReconException.Kind.AMOUNT_DIFFERS, ReconException.Status.OPEN),
        (ReconException.Kind.MISSING_IN_LEDGER, ReconException.Status.OPEN),
    ]
    differs = exceptions.get(kind=ReconException.Kind.AMOUNT_DIFFERS)
    assert differs.card_transaction is not None
    assert differs.pos_amount - differs.ledger_amount == 10
    assert seeded["open_exceptions"] == 2
    # the other stores of that day matched
    others = ReconDay.objects.filter(business_date=seeded["open_day"]).exclude(pk=open_day.pk)
    assert set(others.values_list("status", flat=True)) == {ReconDay.Status.RECONCILED}
    # the current month stays open, cleared up to yesterday
    current = SettlementPeriod.objects.get(starts_on__lte=seeded["open_day"], ends_on__gte=seeded["open_day"])
    assert current.status == SettlementPeriod.Status.OPEN
    assert ClearingRun.objects.filter(business_date=seeded["open_day"], status=ClearingRun.Status.DONE).exists()


def _the_rules_and_layouts_are_there_for_every_company_and_system(seeded):
    assert ClearingRule.objects.filter(honourer__isnull=True).count() == 4
    assert ClearingRule.objects.get(issuer__code="LE_DEPT", honourer__code="LE_SUPER").card_fee_rate == Decimal(
        "0.0060")
    assert set(PosFileLayout.objects.values_list("pos_system_code", flat=True)) == {
        "POS-DEPT", "POS-SUPER", "POS-ELEC", "POS-AUTO"}
    assert set(FinanceExportLayout.objects.values_list("finance_system_code", flat=True)) == {
        "FIN-DEPT", "FIN-SUPER", "FIN-ELEC", "FIN-AUTO"}


def _seeding_twice_adds_nothing(seeded):
    before = _counts()

    again = settlement_seed(stdout=io.StringIO())

    assert _counts() == before
    assert again["payments"] == again["clearing_runs"] == again["pos_files"] == 0
    assert again["rules"] == again["pos_layouts"] == again["finance_layouts"] == 0
    assert again["closed_status"] == SettlementPeriod.Status.LOCKED


def test_the_settlement_demo(seeded):
    """One seed for every check (seeding takes seconds): each check is a function above, the second run last."""
    _the_closed_month_is_locked_with_statements_that_net_to_zero(seeded)
    _the_month_s_pos_files_were_reconciled_in_every_format(seeded)
    _the_current_month_has_a_reconciled_day_and_an_open_day_with_two_planted_exceptions(seeded)
    _the_rules_and_layouts_are_there_for_every_company_and_system(seeded)
    _seeding_twice_adds_nothing(seeded)
