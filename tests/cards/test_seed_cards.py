"""Demo prepaid cards loaded by `manage.py seed_demo --cards N` (CONTRACT section 2, issue items 7 and 8)."""

from collections import Counter
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Count, Sum
from stdnum import luhn

from cards import demo
from cards.models import Card, CardEvent, CardLedgerEntry, CardProduct

pytestmark = pytest.mark.django_db


def seed(**options) -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def snapshot():
    return (Card.objects.count(), CardLedgerEntry.objects.count(), CardEvent.objects.count(),
            CardProduct.objects.count(), Card.objects.aggregate(total=Sum("balance"))["total"])


def test_seed_demo_loads_the_contract_products_and_cards_in_every_state_and_twice_adds_nothing(ledgers_balanced):
    # when
    output = seed(members=20, cards=40)

    # then: the products of CONTRACT section 2
    stored, bearer = CardProduct.objects.get(code="STORED"), CardProduct.objects.get(code="BEARER")
    assert (stored.kind, stored.reloadable, stored.max_balance, stored.validity_months) == (
        "registered", True, Decimal("5000.00"), None)
    assert (bearer.kind, bearer.max_balance, bearer.validity_months) == ("bearer", Decimal("1000.00"), 36)
    assert "40 demo cards created" in output
    statuses = Counter(Card.objects.values_list("status", flat=True))
    assert set(statuses) == {"inactive", "active", "frozen", "expired", "closed"}
    assert Card.objects.filter(status="inactive", location__isnull=True, stock_status="in_stock").exists()
    assert Card.objects.filter(status="inactive", location__isnull=False, stock_status="in_stock").exists()
    assert Card.objects.filter(status="frozen", freeze_reason="lost", balance__gt=0).exists()
    assert Card.objects.filter(status="expired", product=bearer, balance__gt=0).exists()
    assert not Card.objects.filter(status="closed", balance__gt=0).exists()
    assert Card.objects.filter(status="active", member__isnull=False).exists()
    ledgers_balanced()

    # when run again
    before = snapshot()
    output = seed(members=20, cards=40)

    # then nothing is added
    assert snapshot() == before
    assert "0 demo cards created" in output and "40 already there" in output


def test_demo_cards_have_a_year_of_loads_and_payments_at_stores_of_several_formats(reference_stores):
    demo.seed_cards(count=30)

    debits = CardLedgerEntry.objects.filter(kind="debit")
    formats = set(debits.values_list("store__format__code", flat=True))
    assert {"DEPT", "SUPER", "ELEC", "AUTO"} <= formats
    assert debits.values("store").distinct().count() >= 4
    first, last = (CardLedgerEntry.objects.order_by(order).values_list("created_at", flat=True).first()
                   for order in ("created_at", "-created_at"))
    assert (last - first).days >= 300
    assert CardLedgerEntry.objects.filter(kind="load").count() >= Card.objects.exclude(status="inactive").count()
    # Every card that was sold was activated through a status change, with its event.
    sold = Card.objects.filter(stock_status="sold")
    assert sold.annotate(n=Count("events")).filter(n__lt=2).count() == 0
    assert CardEvent.objects.filter(kind="activated").count() == sold.count()
    # A STORED card never holds more than its limit, a BEARER card never more than 1,000.00.
    assert not CardLedgerEntry.objects.filter(card__product__code="BEARER", balance_after__gt=1000).exists()
    assert not CardLedgerEntry.objects.filter(balance_after__gt=5000).exists()


def test_demo_card_numbers_are_luhn_valid_and_a_larger_count_only_adds_the_missing_ones(reference_stores):
    demo.seed_cards(count=10)
    first_ten = set(Card.objects.values_list("card_no", "balance"))

    result = demo.seed_cards(count=15)

    assert (result.created, result.existing) == (5, 10)
    assert first_ten <= set(Card.objects.values_list("card_no", "balance"))
    assert all(luhn.is_valid(number) and number.startswith(demo.DEMO_PREFIX)
               for number in Card.objects.values_list("card_no", flat=True))


def test_an_edited_product_is_left_as_hq_set_it(reference_stores):
    demo.seed_card_products()
    CardProduct.objects.filter(code="STORED").update(name="储值卡（新版）")

    demo.seed_cards(count=0)

    assert CardProduct.objects.get(code="STORED").name == "储值卡（新版）"


def test_zero_cards_loads_only_the_products(reference_stores):
    result = demo.seed_cards(count=0)

    assert (result.products, result.created, Card.objects.count()) == (2, 0, 0)
