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


def test_seed_demo_adds_the_branddemo_programme_and_vouchers_sold_to_a_company(ledgers_balanced):
    from django.utils import timezone

    from cards.models import BrandProgramme, SaleOrder, Voucher
    from cards.services.brand_discounts import programme_in_force, sku_list_in_force

    output = seed(members=0, cards=0)
    assert "programme BRANDDEMO5 on BRANDDEMO" in output and "20 sold to a company now" in output

    # CONTRACT section 2: BRANDDEMO, registered like STORED, with an active 5% programme on 6900000000001-300.
    product = CardProduct.objects.get(code="BRANDDEMO")
    assert (product.kind, product.reloadable, product.max_balance) == ("registered", True, Decimal("5000.00"))
    today = timezone.localdate()
    programme = programme_in_force(product.pk, today)
    assert programme is not None and programme.status == BrandProgramme.Status.ACTIVE
    assert programme.discount_rate == Decimal("0.05") and programme.brand == product.brand
    skus = set(sku_list_in_force(programme, today).skus.values_list("sku", flat=True))
    assert skus == {f"69000000{number:05d}" for number in range(1, 301)}

    order = SaleOrder.objects.get(voucher_total__gt=0)
    assert (order.status, order.channel, order.buyer_type) == ("completed", "group", "company")
    sold = Voucher.objects.filter(sale_order=order)
    assert sold.count() == 20 and {voucher.status for voucher in sold} == {"active"}
    assert all(voucher.remaining == voucher.units for voucher in sold)

    again = seed(members=0, cards=0)
    assert "0 sold to a company now" in again
    assert SaleOrder.objects.filter(voucher_total__gt=0).count() == 1
    assert BrandProgramme.objects.filter(product=product).count() == 1
