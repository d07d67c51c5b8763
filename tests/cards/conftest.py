from decimal import Decimal

import pytest

from cards.models import Card, CardLedgerEntry, CardProduct, CardRules
from cards.services.ledger import card_post, pin_hash


@pytest.fixture
def card_rules(db) -> CardRules:
    return CardRules.current()


@pytest.fixture
def stored_product(card_rules) -> CardProduct:
    """STORED of CONTRACT section 2: registered, reloadable, at most 5,000.00."""
    return CardProduct.objects.get_or_create(code="STORED", defaults={
        "name": "储值卡", "kind": CardProduct.Kind.REGISTERED, "reloadable": True,
        "max_balance": Decimal("5000.00"), "face_values": ["100.00", "500.00", "1000.00"],
    })[0]


@pytest.fixture
def bearer_product(card_rules) -> CardProduct:
    """BEARER of CONTRACT section 2: bearer, at most 1,000.00, valid three years."""
    return CardProduct.objects.get_or_create(code="BEARER", defaults={
        "name": "不记名卡", "kind": CardProduct.Kind.BEARER, "max_balance": Decimal("1000.00"),
        "face_values": ["100.00", "200.00", "500.00", "1000.00"], "validity_months": 36,
    })[0]


@pytest.fixture
def pin_product(card_rules) -> CardProduct:
    """A bearer product whose cards need a PIN."""
    return CardProduct.objects.create(code="PINCARD", name="密码卡", kind=CardProduct.Kind.BEARER,
                                      max_balance=Decimal("1000.00"), face_values=["200.00"], validity_months=36,
                                      pin_required=True)


_serial = iter(range(1, 10**9))


def make_card(product: CardProduct, *, balance="0.00", status=Card.Status.ACTIVE, pin: str | None = None,
              card_no: str | None = None, store=None, **fields) -> Card:
    """A card with its balance loaded through the ledger (so check_ledgers holds)."""
    card_no = card_no or f"9{next(_serial):014d}"
    card = Card.objects.create(
        card_no=card_no, product=product, status=Card.Status.ACTIVE, stock_status=Card.Stock.SOLD,
        pin_hash=pin_hash(card_no, pin) if pin else "", sold_store=store, **fields,
    )
    amount = Decimal(balance)
    if amount:
        card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=amount, store=store, reason="test load")
    if status != Card.Status.ACTIVE:
        Card.objects.filter(pk=card.pk).update(status=status)
        card.status = status
    return card


@pytest.fixture
def card_factory(db):
    return make_card
