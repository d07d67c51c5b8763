"""The POS purchase's hot path: on PostgreSQL a purchase and what it writes with it are one statement.

A member's purchase is its row, the member's points and the `earn` entry (or its PointsHold in a return window)
in one data-modifying WITH; a sale without a member is its row with the format's receipt limit read in the same
INSERT. SQLite keeps the plain statements. Either way the rows, the refusals and the answer are those of before.
"""

import itertools
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from core.pii import pii_encrypt
from integrations import tasks
from integrations.events import subscriptions_cache_clear
from integrations.models import Event, EventType, Subscription
from membership.api import PurchaseOutputSerializer, purchase_answer
from membership.errors import PointsBalanceLimit, PurchaseLimitExceeded, ReceiptAlreadyRecorded
from membership.models import EarnRule, Member, PointsDebtEntry, PointsEntry, PointsHold, Purchase
from membership.services import points_debt_move, points_post, purchase_points_pending, purchase_record
from membership.services.ledger import POINTS_BALANCE_MAX, _entry_data
from stores.models import Format, Store
from tests.membership.conftest import concurrently, kinds, register

D = Decimal
PURCHASES = "/api/v1/purchases"
WRITES = ("INSERT", "UPDATE", "DELETE", "WITH")
_keys = itertools.count(1)


@pytest.fixture
def earn_rules(reference_stores):
    """DEPT 1 point per yuan, receipts up to 5,000 yuan; AUTO holds points 7 days."""
    EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=D("1.00"),
                            max_receipt_amount=D("5000.00"))
    EarnRule.objects.create(format=Format.objects.get(code="AUTO"), amount_per_point=D("1.00"), pending_days=7)


@pytest.fixture
def member(earn_rules, dept001):
    return register(name="李建国", phone="13800138000", store=dept001)


@pytest.fixture
def subscription(db, monkeypatch) -> Subscription:
    """An active subscription to points.earned; nothing is POSTed."""
    monkeypatch.setattr(tasks.deliveries_send, "delay", lambda subscription_id: None)
    subscriptions_cache_clear()
    found = Subscription.objects.create(name="集团APP", url="http://127.0.0.1:9/none",
                                        secret_sealed=pii_encrypt("s" * 32), event_types=[EventType.POINTS_EARNED])
    subscriptions_cache_clear()
    yield found
    subscriptions_cache_clear()


def store(code: str) -> Store:
    return Store.objects.select_related("format").get(code=code)


def buy(member, code="DEPT001", amount="100.00", receipt_no="R-1", **extra) -> Purchase:
    return purchase_record(store=store(code), member=member, receipt_no=receipt_no, amount=D(amount),
                           occurred_at=extra.pop("occurred_at", timezone.now() - timedelta(minutes=1)), **extra)


def balance(member) -> int:
    return Member.objects.values_list("points", flat=True).get(pk=member.pk)


def counts() -> tuple[int, int, int, int]:
    return (Purchase.objects.count(), PointsEntry.objects.count(), PointsHold.objects.count(),
            PointsDebtEntry.objects.count())


def writes(captured) -> list[str]:
    return [query["sql"] for query in captured if query["sql"].lstrip().upper().startswith(WRITES)]


def warmed(member) -> None:
    """A first purchase of each kind, so per-process caches (content types, subscriptions) are filled."""
    buy(member, receipt_no="WARM-DEPT")
    buy(member, code="AUTO001", receipt_no="WARM-AUTO")
    buy(None, receipt_no="WARM-NONE")


# --- one statement on PostgreSQL -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_member_purchase_writes_its_row_points_and_entry_in_one_statement(member, ledgers_balanced):
    warmed(member)
    before = balance(member)

    with CaptureQueriesContext(connection) as captured:
        purchase = buy(member, amount="123.45", receipt_no="R-1")

    assert len(writes(captured)) == 1
    entry = PointsEntry.objects.get(receipt_no="R-1")
    assert (entry.member_id, entry.kind, entry.points, entry.balance_after) == (member.pk, "earn", 123, before + 123)
    assert (entry.cause, entry.store.code, entry.terminal, entry.legal_entity_id, entry.reason) == (
        purchase, "DEPT001", None, purchase.legal_entity_id, "purchase on receipt R-1")
    assert entry.created_at >= purchase.created_at
    assert balance(member) == purchase.member.points == before + 123
    assert Purchase.objects.get(pk=purchase.pk).points_earned == 123
    ledgers_balanced()


@pytest.mark.postgres
def test_a_held_purchase_writes_its_row_and_hold_in_one_statement(member):
    warmed(member)
    occurred_at = timezone.now() - timedelta(minutes=1)

    with CaptureQueriesContext(connection) as captured:
        purchase = buy(member, code="AUTO001", receipt_no="A-1", occurred_at=occurred_at)
        pending = purchase_points_pending(purchase)

    assert len(writes(captured)) == 1
    assert pending == 100
    hold = PointsHold.objects.get(purchase=purchase)
    assert (hold.member_id, hold.points, hold.cancelled_points, hold.status, hold.released_entry_id) == (
        member.pk, 100, 0, "pending", None)
    assert hold.available_at == occurred_at + timedelta(days=7)
    assert not PointsEntry.objects.filter(receipt_no="A-1").exists()


@pytest.mark.postgres
def test_a_sale_without_a_member_is_one_statement_that_reads_the_format_limit(member):
    warmed(member)
    dept001 = store("DEPT001")

    with CaptureQueriesContext(connection) as captured:
        purchase = purchase_record(store=dept001, member=None, receipt_no="N-1", amount=D("4999.99"),
                                   occurred_at=timezone.now())

    assert len(captured) == 1
    assert Purchase.objects.filter(pk=purchase.pk, member=None, points_earned=0, receipt_no="N-1").exists()
    assert purchase_points_pending(purchase) == 0


# --- the same rules on both databases -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["credited", "held", "no member"])
def test_a_receipt_already_recorded_writes_nothing_more(member, kind):
    code, who = {"credited": ("DEPT001", member), "held": ("AUTO001", member), "no member": ("DEPT001", None)}[kind]
    first = buy(who, code=code, receipt_no="R-1")
    before = (counts(), balance(member))

    with pytest.raises(ReceiptAlreadyRecorded) as refused:
        buy(who, code=code, receipt_no="R-1", amount="300.00")

    assert "R-1" in str(refused.value) and str(first.pk) in str(refused.value)
    assert (counts(), balance(member)) == before  # and the caller's transaction is still usable


def test_a_sale_without_a_member_above_the_format_limit_writes_nothing(member):
    buy(None, receipt_no="R-1")
    before = counts()

    for receipt_no in ("R-2", "R-1"):  # the limit is told first, also for a receipt already recorded
        with pytest.raises(PurchaseLimitExceeded) as refused:
            buy(None, amount="5000.01", receipt_no=receipt_no)
        assert refused.value.code == "limit_exceeded"
        assert "5,000.00" in refused.value.fields["amount"][0]

    assert counts() == before


def test_a_format_without_an_earn_rule_has_the_default_receipt_limit(reference_stores):
    with pytest.raises(PurchaseLimitExceeded):
        buy(None, code="SUPER001", amount="10000000.01")
    purchase = buy(None, code="SUPER001", amount="10000000.00")

    assert Purchase.objects.get(pk=purchase.pk).amount == D("10000000.00")


def test_a_member_who_owes_points_pays_them_off_from_the_credit(member, ledgers_balanced):
    points_debt_move(member=member, points=30, kind=PointsDebtEntry.Kind.INCURRED, reason="退货")

    purchase = buy(member, amount="100.00")

    entries = list(PointsEntry.objects.filter(member=member).order_by("pk").values_list("kind", "points",
                                                                                        "balance_after"))
    assert entries == [("earn", 100, 100), ("reversal", -30, 70)]
    repaid = PointsDebtEntry.objects.get(kind=PointsDebtEntry.Kind.REPAID)
    assert (repaid.points, repaid.debt_after, repaid.cause) == (-30, 0, purchase)
    assert Member.objects.values_list("points", "points_debt").get(pk=member.pk) == (70, 0)
    assert (purchase.member.points, purchase.member.points_debt) == (70, 0)
    ledgers_balanced()


def test_a_credit_above_the_balance_limit_is_refused_and_writes_nothing(member):
    points_post(member=member, points=POINTS_BALANCE_MAX - 50, kind=PointsEntry.Kind.MIGRATION)
    before = counts()

    with pytest.raises(PointsBalanceLimit), transaction.atomic():
        buy(member, amount="100.00")

    assert counts() == before
    assert balance(member) == POINTS_BALANCE_MAX - 50


def test_the_earned_event_carries_the_entry_as_written(subscription, member):
    purchase = buy(member, amount="88.00")

    entry = PointsEntry.objects.get(receipt_no="R-1")
    event = Event.objects.get(type=EventType.POINTS_EARNED)
    assert event.subject == f"member:{member.member_no}"
    assert event.data == _entry_data(entry, member_no=member.member_no, store_code="DEPT001")
    assert event.data["points"] == purchase.points_earned == 88


# --- the answer --------------------------------------------------------------------------------------------------


def rendered(purchase) -> tuple[bytes, bytes]:
    serializer = PurchaseOutputSerializer({
        "purchase_id": purchase.pk, "points_earned": purchase.points_earned,
        "points": purchase.member.points if purchase.member_id else None,
        "points_pending": purchase_points_pending(purchase),
        "coupons": getattr(purchase, "issued_coupons", []),
    })
    return JSONRenderer().render(purchase_answer(purchase)), JSONRenderer().render(serializer.data)


@pytest.mark.parametrize("kind", ["credited", "held", "no member", "nothing earned"])
def test_the_answer_is_the_output_serializers_to_the_byte(member, kind):
    code, who, amount = {"credited": ("DEPT001", member, "123.45"), "held": ("AUTO001", member, "50.00"),
                         "no member": ("DEPT001", None, "10.00"), "nothing earned": ("DEPT001", member, "0.50")}[kind]
    purchase = buy(who, code=code, amount=amount)

    fast, serialized = rendered(purchase)

    assert fast == serialized
    assert json.loads(fast)["points_pending"] == (50 if kind == "held" else 0)


def test_the_answer_with_coupons_is_the_output_serializers_to_the_byte(member):
    purchase = buy(member)
    purchase.issued_coupons = [
        {"coupon_code": "C8H2K4", "name": "满100减10", "discount_text": "减10.00元",
         "valid_until": timezone.now() + timedelta(days=30)},
        {"coupon_code": "C9X7Q1", "name": "会员日\"券\"", "discount_text": "9折", "valid_until": None},
    ]

    fast, serialized = rendered(purchase)

    assert fast == serialized
    assert json.loads(fast)["coupons"][0]["valid_until"].endswith("+08:00")


def test_the_api_answers_as_before(api, member):
    response = api.post(PURCHASES, data=json.dumps({
        "member_no": member.member_no, "receipt_no": "R-9", "amount": "100.00",
        "occurred_at": timezone.localtime().isoformat(), "payment_method": "CASH",
    }), content_type="application/json", HTTP_IDEMPOTENCY_KEY=f"hot-{next(_keys)}")

    assert response.status_code == 201, response.content
    purchase = Purchase.objects.get(receipt_no="R-9")
    assert response.content == (b'{"purchase_id":%d,"points_earned":100,"points":100,"points_pending":0,'
                                b'"coupons":[]}' % purchase.pk)


# --- under concurrency (PostgreSQL) ------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_purchases_of_one_member_each_credit_once_in_ledger_order(member, ledgers_balanced):
    results = concurrently(20, lambda index: buy(Member(pk=member.pk, member_no=member.member_no),
                                                 amount=f"{index + 1}.00", receipt_no=f"C-{index}").pk)

    assert kinds(results) == {"int": 20}
    assert balance(member) == sum(range(1, 21))
    entries = list(PointsEntry.objects.filter(member=member).order_by("pk").values_list("points", "balance_after"))
    running = list(itertools.accumulate(points for points, _after in entries))
    assert [after for _points, after in entries] == running
    ledgers_balanced()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_copies_of_one_held_receipt_hold_once(member):
    results = concurrently(10, lambda index: buy(member, code="AUTO001", receipt_no="A-1"))

    assert kinds(results) == {"Purchase": 1, "ReceiptAlreadyRecorded": 9}
    assert PointsHold.objects.filter(member=member).count() == 1
    assert Purchase.objects.filter(receipt_no="A-1").count() == 1
