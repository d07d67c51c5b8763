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


# --- the sale orders' admin ----------------------------------------------------------------------------------


def transfer_line(amount: str) -> dict:
    """A bank-transfer payment line of a sale order form (a company paying the department store)."""
    return {"method": "bank_transfer", "amount": amount, "reference": "B1", "payer_account_name": "重庆某某有限公司",
            "payer_account_no": "6222000011112222", "payee_account_name": "百货公司",
            "payee_account_no": "3100000011110000"}


@pytest.fixture
def card_ops(make_staff):
    """A headquarters card operations clerk."""
    from stores.models import StaffProfile

    return make_staff("hq_card_ops", group="卡务运营", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def ops_client(client, card_ops):
    """The test client logged in as the card operations clerk, in English."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(card_ops)
    return client
