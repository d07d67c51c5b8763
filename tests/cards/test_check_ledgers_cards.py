"""check_ledgers over card balances (CONTRACT section 1): every card's balance equals the sum of its ledger, and
the balance after its last entry; a broken card is named by its number."""

import csv
import re
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cards.models import Card, CardLedgerEntry
from cards.services.ledger import card_post

pytestmark = pytest.mark.django_db


def check(*args) -> str:
    out = StringIO()
    call_command("check_ledgers", *args, stdout=out)
    return out.getvalue()


def check_failing(*args) -> tuple[str, str]:
    out = StringIO()
    with pytest.raises(CommandError) as error:
        call_command("check_ledgers", *args, stdout=out)
    return out.getvalue(), str(error.value)


def difference(output: str, card_no: str) -> tuple[Decimal, Decimal]:
    """The balance and ledger figure listed for a card (SQLite prints the ledger's sum unrounded: 75.5)."""
    match = re.search(rf"card {card_no} \(id \d+\): balance (\S+), ledger (\S+) ", output)
    assert match, output
    return Decimal(match.group(1)), Decimal(match.group(2))


@pytest.fixture
def cards(stored_product, bearer_product, card_factory, dept001):
    """Three cards with a history: loaded, paid with, one imported from a legacy file."""
    first = card_factory(stored_product, card_no="6222000000000011", balance="500.00", store=dept001)
    card_post(card=first, kind=CardLedgerEntry.Kind.DEBIT, amount=Decimal("-120.50"), store=dept001)
    second = card_factory(bearer_product, card_no="6222000000000029", balance="200.00", store=dept001)
    return first, second


@pytest.fixture
def imported(cards, tmp_path):
    path = tmp_path / "legacy.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["card_no", "product_code", "balance", "status"])
        writer.writerow(["6222000000000037", "STORED", "75.50", "active"])
        writer.writerow(["6222000000000045", "BEARER", "0.00", "inactive"])
    call_command("import_legacy_cards", str(path), stdout=StringIO())
    return Card.objects.get(card_no="6222000000000037")


def test_card_balances_after_payments_and_an_import_pass(imported):
    output = check("--only", "cards.balance")

    assert "cards.balance: 4 accounts" in output and "every balance equals its ledger" in output


@pytest.mark.ledgers_broken
def test_a_balance_changed_without_a_ledger_row_is_found_and_named(cards, imported):
    # given what a mistaken script does
    Card.objects.filter(pk=cards[0].pk).update(balance=Decimal("999.00"))

    output, reason = check_failing()

    assert difference(output, "6222000000000011") == (Decimal("999.00"), Decimal("379.50"))
    assert "6222000000000029" not in output and "6222000000000037" not in output
    assert reason.startswith("1 difference(s)") and "\n" not in reason


@pytest.mark.ledgers_broken
def test_an_imported_balance_without_its_migration_entry_is_found(imported):
    Card.objects.filter(pk=imported.pk).update(balance=Decimal("80.00"))

    output, _ = check_failing("--only", "cards.balance")

    assert difference(output, "6222000000000037") == (Decimal("80.00"), Decimal("75.50"))


@pytest.mark.ledgers_broken
def test_a_ledger_row_without_a_balance_change_is_found(cards):
    CardLedgerEntry.objects.create(card=cards[1], kind=CardLedgerEntry.Kind.ADJUST, amount=Decimal("5.00"),
                                   balance_after=Decimal("205.00"))

    output, _ = check_failing()

    assert difference(output, "6222000000000029") == (Decimal("200.00"), Decimal("205.00"))


@pytest.mark.ledgers_broken
def test_a_last_balance_after_that_disagrees_is_found_even_when_the_sum_agrees(cards):
    CardLedgerEntry.objects.create(card=cards[1], kind=CardLedgerEntry.Kind.ADJUST, amount=Decimal("10.00"),
                                   balance_after=Decimal("50.00"))
    Card.objects.filter(pk=cards[1].pk).update(balance=Decimal("210.00"))

    output, reason = check_failing("--only", "cards.balance")

    assert difference(output, "6222000000000029") == (Decimal("210.00"), Decimal("50.00"))
    assert "balance after the last ledger entry" in output and reason.startswith("1 difference(s)")


@pytest.mark.ledgers_broken
def test_differences_are_found_across_batches_of_cards(cards, imported):
    Card.objects.filter(pk=cards[0].pk).update(balance=Decimal("1.00"))
    Card.objects.filter(pk=imported.pk).update(balance=Decimal("2.00"))

    output, reason = check_failing("--only", "cards.balance", "--batch-size", "1")

    assert "6222000000000011" in output and "6222000000000037" in output
    assert reason.startswith("2 difference(s)") and "in 4 accounts checked" in reason
