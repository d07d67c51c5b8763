"""Fixtures and helpers for settlement: the group's companies and stores, cards sold by one company and spent at
another, members earning and spending points, all on chosen business days and all through the services (the
suite runs check_ledgers after every test).

The helpers are plain functions, importable by every settlement test module:
`from tests.settlement.conftest import card_sold, card_pay, local_moment`.

- `local_moment(day, hour)`: an aware moment of a local (Asia/Shanghai) business day.
- `frozen_at(moment)`: the services' "now" is `moment` inside the block (card_debit and card_refund stamp their
  transactions with it; nothing else in the process is touched).
- `card_sold(store=, amount=, day=)`: a registered card sold at the store (issuer = the store's company), loaded
  on that day through the ledger.
- `card_pay(card, store=, amount=, day=)`, `card_refund_at(payment, store=, amount=, day=)`,
  `card_reverse_at(transaction, store=, day=)`: POS payments, refunds and reversals through cards.services.
- `card_adjust(card, amount=, store=, day=)`: a manual adjustment through the ledger door.
- `member_earning(store=, points=, day=)`: a member registered at the store who earned points there that day.
- `points_move(member, kind=, points=, store=, day=)`: any other points movement (redeem, cash_out, expire ...).
"""

import itertools
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from cards.models import Card, CardLedgerEntry, CardProduct, CardTransaction
from cards.services.ledger import card_post
from cards.services.payments import card_debit, card_refund, card_transaction_reverse
from membership.models import Member, PointsEntry
from membership.services import points_post
from settlement.models import ClearingRule
from stores.models import LegalEntity, StaffProfile, Store
from tests.factories import CardFactory, CardProductFactory, MemberFactory, StaffFactory

D = Decimal
_receipts = itertools.count(1)


# --- time ----------------------------------------------------------------------------------------------------------


def local_moment(day: date, hour: int = 12, minute: int = 0) -> datetime:
    """An aware moment on a local business day (days are local: Asia/Shanghai)."""
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


@contextmanager
def frozen_at(moment: datetime):
    """The services' `timezone.now()` (and `localdate()`) answer `moment` inside the block."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield moment


def last_month(today: date | None = None) -> tuple[date, date]:
    """The first and last day of the month before today's (a period that is over and can close)."""
    today = today or timezone.localdate()
    end = today.replace(day=1) - timedelta(days=1)
    return end.replace(day=1), end


# --- cards ---------------------------------------------------------------------------------------------------------


def settlement_card_product() -> CardProduct:
    """A registered, reloadable product of 5,000.00 without expiry (get-or-create: one per test database)."""
    return CardProductFactory(code="SETTLE", name="结算测试卡", registered=True, face_values=["500.00", "1000.00"])


def card_sold(*, store: Store, amount="1000.00", day: date | None = None, hour: int = 9,
              product: CardProduct | None = None) -> Card:
    """A card sold at `store` (its issuer is the store's company), loaded with `amount` on `day` (today)."""
    day = day or timezone.localdate()
    card = CardFactory(product=product or settlement_card_product(), sold_store=store,
                       issuer=store.format.legal_entity, balance="0.00")
    card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=D(str(amount)), store=store, reason="test sale",
              created_at=local_moment(day, hour))
    return card


def _receipt() -> str:
    return f"R{next(_receipts):08d}"


def card_pay(card: Card, *, store: Store, amount, day: date | None = None, hour: int = 12, minute: int = 0,
             receipt_no: str | None = None) -> CardTransaction:
    """A POS payment of `amount` with the card at `store` on `day` (today), through card_debit."""
    day = day or timezone.localdate()
    with frozen_at(local_moment(day, hour, minute)):
        return card_debit(card_no=card.card_no, amount=D(str(amount)), receipt_no=receipt_no or _receipt(),
                          store=store)


def card_refund_at(payment: CardTransaction, *, store: Store, amount, day: date | None = None, hour: int = 15,
                   receipt_no: str | None = None) -> CardTransaction:
    """A refund of (part of) a payment onto its card at `store` on `day` (today), through card_refund."""
    day = day or timezone.localdate()
    with frozen_at(local_moment(day, hour)):
        return card_refund(card_no=payment.card.card_no, amount=D(str(amount)), receipt_no=receipt_no or _receipt(),
                           original_transaction_id=payment.transaction_id, store=store)


def card_reverse_at(record: CardTransaction, *, store: Store, day: date | None = None,
                    hour: int = 16) -> CardTransaction:
    """Void a payment or refund of that day at its store, through card_transaction_reverse."""
    day = day or record.business_date
    with frozen_at(local_moment(day, hour)):
        return card_transaction_reverse(transaction_id=record.transaction_id, store=store)


def card_adjust(card: Card, *, amount, store: Store | None = None, legal_entity: LegalEntity | None = None,
                day: date | None = None, hour: int = 17) -> CardLedgerEntry:
    """A manual balance adjustment (signed) through the ledger door."""
    day = day or timezone.localdate()
    return card_post(card=card, kind=CardLedgerEntry.Kind.ADJUST, amount=D(str(amount)), store=store,
                     legal_entity=legal_entity, reason="test adjustment", created_at=local_moment(day, hour))


# --- points --------------------------------------------------------------------------------------------------------


def member_earning(*, store: Store, points: int, day: date | None = None, hour: int = 11) -> Member:
    """A member registered at `store` who earned `points` there on `day` (today)."""
    member = MemberFactory(store=store)
    if points:
        points_move(member, kind=PointsEntry.Kind.EARN, points=points, store=store, day=day, hour=hour)
    return member


def points_move(member: Member, *, kind: str, points: int, store: Store | None, day: date | None = None,
                hour: int = 14, legal_entity: LegalEntity | None = None) -> PointsEntry:
    """One points movement (signed: redeem, cash_out and expire take points away) on `day` (today)."""
    day = day or timezone.localdate()
    return points_post(member=member, points=points, kind=kind, store=store, legal_entity=legal_entity,
                       reason="test", created_at=local_moment(day, hour))


# --- fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture
def companies(reference_stores) -> dict[str, LegalEntity]:
    """The demo companies by format code: DEPT (嘉禾百货), SUPER (嘉禾超市), ELEC (嘉禾电器), AUTO (嘉禾汽贸)."""
    return {format_code: LegalEntity.objects.get(code=f"LE_{format_code}")
            for format_code in ("DEPT", "SUPER", "ELEC", "AUTO")}


@pytest.fixture
def dept_co(companies) -> LegalEntity:
    return companies["DEPT"]


@pytest.fixture
def super_co(companies) -> LegalEntity:
    return companies["SUPER"]


@pytest.fixture
def elec_co(companies) -> LegalEntity:
    return companies["ELEC"]


@pytest.fixture
def elec001(reference_stores) -> Store:
    return Store.objects.get(code="ELEC001")


@pytest.fixture
def dept002(reference_stores) -> Store:
    return Store.objects.get(code="DEPT002")


@pytest.fixture
def fee_rules(companies) -> dict[str, ClearingRule]:
    """DEPT's cards spent at SUPER pay a 0.6% service fee; DEPT's default rule (every other company) 1%;
    SUPER's cards elsewhere pay nothing (no rule)."""
    return {
        "dept_super": ClearingRule.objects.create(issuer=companies["DEPT"], honourer=companies["SUPER"],
                                                  card_fee_rate=D("0.0060")),
        "dept_default": ClearingRule.objects.create(issuer=companies["DEPT"], honourer=None,
                                                    card_fee_rate=D("0.0100")),
    }


@pytest.fixture
def card_product(db) -> CardProduct:
    return settlement_card_product()


@pytest.fixture
def dept_card(dept001, card_product) -> Card:
    """A card sold at DEPT001 (issuer 嘉禾百货) with 1,000.00 loaded today."""
    return card_sold(store=dept001, amount="1000.00", product=card_product)


@pytest.fixture
def finance_hq(db):
    """Headquarters finance (group 财务): closes the month; may approve a period too, but never their own request."""
    return StaffFactory(username="finance_hq", group="财务", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def super_finance(super001):
    """The supermarket company's finance (group 财务), scoped to SUPER001."""
    return StaffFactory(username="super_finance", group="财务", stores=[super001])


@pytest.fixture
def last_month_days() -> tuple[date, date]:
    """The first and last day of last month."""
    return last_month()
