import pytest

from cards.models import Card, CardProduct, CardRules
from tests.factories import CardFactory, CardProductFactory


@pytest.fixture
def card_rules(db) -> CardRules:
    return CardRules.current()


@pytest.fixture
def stored_product(card_rules) -> CardProduct:
    """STORED of CONTRACT section 2: registered, reloadable, at most 5,000.00."""
    return CardProductFactory(code="STORED", name="储值卡", registered=True,
                              face_values=["100.00", "500.00", "1000.00"])


@pytest.fixture
def bearer_product(card_rules) -> CardProduct:
    """BEARER of CONTRACT section 2: bearer, at most 1,000.00, valid three years."""
    return CardProductFactory(code="BEARER", name="不记名卡", face_values=["100.00", "200.00", "500.00", "1000.00"])


@pytest.fixture
def pin_product(card_rules) -> CardProduct:
    """A bearer product whose cards need a PIN."""
    return CardProductFactory(code="PINCARD", name="密码卡", face_values=["200.00"], pin_required=True)


def make_card(product: CardProduct, *, balance="0.00", status=Card.Status.ACTIVE, pin: str | None = None,
              card_no: str | None = None, store=None, **fields) -> Card:
    """A card with its balance loaded through the ledger (so check_ledgers holds): CardFactory."""
    if card_no:
        fields["card_no"] = card_no
    return CardFactory(product=product, balance=balance, status=status, pin=pin, sold_store=store, **fields)


@pytest.fixture
def card_factory(db):
    return make_card
