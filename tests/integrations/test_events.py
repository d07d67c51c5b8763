"""Webhook events written by the domain services (CONTRACT section 5): one per change, in the change's transaction.

Each test drives the real service and reads the outbox: the event's type, subject and data, and one delivery per
subscription that wants the type. Nothing is POSTed: the sender's task is replaced by a recorder.
"""

import itertools
import json
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from approvals.services import approval_request_approve
from campaigns.models import Coupon, CouponBatch, CouponTemplate
from campaigns.services import coupon_redeem, coupons_issue
from cards.errors import InsufficientBalance
from cards.models import Card, CardLedgerEntry, CardRules, SalePayment, Supplier, VoucherProduct
from cards.services import operations, payments
from cards.services.ledger import card_pin_failure_record
from cards.services.sales import PartyInput, PaymentInput, SaleInput, SaleLineInput, sale_walk_in
from cards.services.vouchers import voucher_redeem
from core.pii import pii_encrypt
from integrations import tasks
from integrations.events import subscriptions_cache_clear, subscriptions_for
from integrations.models import Delivery, Event, EventType, Subscription
from membership.models import Member, PointsEntry, Purchase, Tier
from membership.services import (
    member_merge_request,
    paid_tier_buy,
    points_adjust_request,
    points_cash_out,
    points_expire,
    points_holds_release,
    points_post,
    purchase_record,
    tiers_evaluate,
)
from tests.factories import CardFactory, CardProductFactory, EarnRuleFactory
from tests.membership.conftest import register

D = Decimal
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+08:00$")
_phones = itertools.count(13600000001)
_keys = itertools.count(1)
HOLDER_ID = "11010519491231002X"


# --- the outbox and its subscribers --------------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch) -> list[int]:
    """The subscriptions handed to the sender; nothing is POSTed."""
    handed: list[int] = []
    monkeypatch.setattr(tasks.deliveries_send, "delay", handed.append)
    return handed


@pytest.fixture
def subscription(db, sent) -> Subscription:
    """An active subscription to every event type."""
    subscriptions_cache_clear()
    found = Subscription.objects.create(
        name="集团APP", url="http://127.0.0.1:9/none", secret_sealed=pii_encrypt("s" * 32),
        event_types=list(EventType.values),
    )
    subscriptions_cache_clear()
    yield found
    # The test's rows are rolled back without signals: no later test may see this subscription in the cache.
    subscriptions_cache_clear()


@pytest.fixture
def no_subscription(db, sent):
    subscriptions_cache_clear()
    yield
    subscriptions_cache_clear()


def events(event_type: str | None = None) -> list[Event]:
    found = Event.objects.order_by("pk")
    return list(found.filter(type=event_type) if event_type else found)


def the_event(event_type: str, subject: str, subscription: Subscription) -> Event:
    """The one event of this type, about this subject, with one pending delivery to the subscription."""
    found = events(event_type)
    assert len(found) == 1, [(event.type, event.subject) for event in events()]
    event = found[0]
    assert event.subject == subject
    assert event.public_id.startswith("evt_")
    assert list(Delivery.objects.filter(event=event).values_list("subscription_id", "status")) == [
        (subscription.pk, Delivery.Status.PENDING)]
    assert ISO_WITH_OFFSET.match(event.data["created_at"]), event.data
    return event


def without_time(data: dict) -> dict:
    return {key: value for key, value in data.items() if key != "created_at"}


# --- cards -------------------------------------------------------------------------------------------------


@pytest.fixture
def stored_product(db):
    return CardProductFactory(code="STORED", name="储值卡", registered=True)


@pytest.fixture
def bearer_product(db):
    return CardProductFactory(code="BEARER", name="不记名卡", face_values=["500.00"])


@pytest.fixture
def card(stored_product, dept001) -> Card:
    return CardFactory(product=stored_product, balance="200.00", sold_store=dept001)


@pytest.fixture
def holder(db) -> Member:
    return register(name="李建国", phone="13800138000", id_type="resident_id", id_number=HOLDER_ID)


@pytest.fixture
def holders_card(stored_product, holder, dept001) -> Card:
    return CardFactory(product=stored_product, balance="300.00", member=holder, holder_name=holder.name,
                       sold_store=dept001)


def blank_card(product, *, store) -> Card:
    return Card.objects.create(card_no=f"62{next(_keys):011d}", product=product, status=Card.Status.INACTIVE,
                               stock_status=Card.Stock.IN_STOCK, location=store, face_value=D("500.00"))


def debit(card: Card, store, amount="50.00", receipt_no="R-1"):
    return payments.card_debit(card_no=card.card_no, amount=amount, receipt_no=receipt_no, store=store)


def test_a_card_sale_writes_card_loaded_with_the_order_number(subscription, bearer_product, dept001, hq_admin):
    card = blank_card(bearer_product, store=dept001)

    order = sale_walk_in(
        data=SaleInput(store=dept001, lines=[SaleLineInput(first=card.card_no, amount=D("500.00"))],
                       buyer=PartyInput()),
        payments=[PaymentInput(method=SalePayment.Method.CASH, amount=D("500.00"))], actor=hq_admin,
    )

    entry = CardLedgerEntry.objects.get(card=card, kind=CardLedgerEntry.Kind.LOAD)
    event = the_event(EventType.CARD_LOADED, f"card:{card.card_no}", subscription)
    assert without_time(event.data) == {
        "card_no": card.card_no, "entry_id": entry.pk, "transaction_id": None, "amount": "500.00",
        "balance": "500.00", "store": "DEPT001", "receipt_no": order.order_no,
    }
    assert event.data["created_at"] == timezone.localtime(entry.created_at).isoformat()


def test_a_debit_writes_card_debited_with_its_transaction(subscription, card, super001):
    record = debit(card, super001, amount="80.00", receipt_no="S-77")

    entry = CardLedgerEntry.objects.get(transaction=record)
    event = the_event(EventType.CARD_DEBITED, f"card:{card.card_no}", subscription)
    assert without_time(event.data) == {
        "card_no": card.card_no, "entry_id": entry.pk, "transaction_id": record.transaction_id,
        "amount": "-80.00", "balance": "120.00", "store": "SUPER001", "receipt_no": "S-77",
    }
    assert event.created_at == entry.created_at


def test_a_refund_writes_card_refunded(subscription, card, dept001):
    paid = debit(card, dept001, amount="80.00")

    refund = payments.card_refund(card_no=card.card_no, amount="30.00", receipt_no="RF-1",
                                  original_transaction_id=paid.transaction_id, store=dept001)

    event = the_event(EventType.CARD_REFUNDED, f"card:{card.card_no}", subscription)
    assert (event.data["transaction_id"], event.data["amount"], event.data["balance"], event.data["receipt_no"]) == (
        refund.transaction_id, "30.00", "150.00", "RF-1")


def test_a_reverse_writes_card_reversed(subscription, card, dept001):
    paid = debit(card, dept001, amount="80.00")

    reversal = payments.card_transaction_reverse(transaction_id=paid.transaction_id, store=dept001)

    event = the_event(EventType.CARD_REVERSED, f"card:{card.card_no}", subscription)
    assert (event.data["transaction_id"], event.data["amount"], event.data["balance"], event.data["store"]) == (
        reversal.transaction_id, "80.00", "200.00", "DEPT001")


def test_an_adjustment_of_a_card_writes_no_event(subscription, card, hq_admin, hq_approver, dept001):
    Event.objects.all().delete()  # what the fixtures wrote
    request = operations.card_adjust_request(card=card, amount="-20.00", reason="盘点差异", requested_by=hq_admin,
                                             store=dept001)

    approval_request_approve(approval_request=request, approver=hq_approver)

    assert Card.objects.get(pk=card.pk).balance == D("180.00")
    assert events() == []


def test_a_card_locked_by_wrong_pins_writes_card_frozen(subscription, card):
    for _attempt in range(CardRules.current().pin_attempts):
        card_pin_failure_record(card_id=card.pk)

    event = the_event(EventType.CARD_FROZEN, f"card:{card.card_no}", subscription)
    assert without_time(event.data) == {"card_no": card.card_no, "status": "frozen", "store": None}


def test_a_loss_report_writes_card_lost_and_no_card_frozen(subscription, holders_card, clerk_at_dept001, dept001):
    Event.objects.all().delete()  # what the fixtures wrote
    operations.card_report_lost(card=holders_card, actor=clerk_at_dept001, store=dept001, holder_name="李建国",
                                id_type="resident_id", id_number=HOLDER_ID)

    event = the_event(EventType.CARD_LOST, f"card:{holders_card.card_no}", subscription)
    assert without_time(event.data) == {"card_no": holders_card.card_no, "status": "frozen", "store": "DEPT001"}
    assert [event.type for event in events()] == [EventType.CARD_LOST]


def test_a_replacement_writes_card_replaced_for_the_old_card(subscription, holders_card, stored_product,
                                                             clerk_at_dept001, dept001):
    Event.objects.all().delete()  # what the fixtures wrote
    operations.card_report_lost(card=holders_card, actor=clerk_at_dept001, store=dept001, holder_name="李建国",
                                id_type="resident_id", id_number=HOLDER_ID)
    new = blank_card(stored_product, store=dept001)

    operations.card_replace(card=holders_card, new_card=new, actor=clerk_at_dept001, store=dept001)

    event = the_event(EventType.CARD_REPLACED, f"card:{holders_card.card_no}", subscription)
    assert without_time(event.data) == {
        "card_no": holders_card.card_no, "status": "closed", "store": "DEPT001", "replacement_card_no": new.card_no,
    }
    # The balance moved over by transfer entries, which are no events.
    assert [event.type for event in events()] == [EventType.CARD_LOST, EventType.CARD_REPLACED]


def test_the_nightly_expiry_writes_card_expired(subscription, bearer_product, dept001):
    card = CardFactory(product=bearer_product, balance="40.00", sold_store=dept001,
                       expires_at=timezone.now() - timedelta(days=1))

    assert operations.cards_expire() == 1

    event = the_event(EventType.CARD_EXPIRED, f"card:{card.card_no}", subscription)
    assert without_time(event.data) == {"card_no": card.card_no, "status": "expired", "store": None}


def test_a_debit_the_balance_cannot_cover_writes_no_event(subscription, card, dept001):
    Event.objects.all().delete()  # what the fixtures wrote
    with pytest.raises(InsufficientBalance):
        debit(card, dept001, amount="200.01")

    assert events() == [] and not Delivery.objects.exists()


def test_the_sender_is_handed_the_subscription_once_the_debit_commits(card, dept001, subscription, sent,
                                                                      django_capture_on_commit_callbacks):
    # The card is loaded before anyone subscribes: the debit's is the transaction's first event.
    with django_capture_on_commit_callbacks(execute=True):
        debit(card, dept001)
        assert sent == []

    assert sent == [subscription.pk]


def test_a_debit_rolled_back_after_its_event_leaves_no_event_and_sends_nothing(
        card, dept001, subscription, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            debit(card, dept001)
            assert len(events(EventType.CARD_DEBITED)) == 1
            raise RuntimeError("the till's request failed after the payment")

    assert events() == [] and not Delivery.objects.exists()
    assert callbacks == [] and sent == []


def test_without_a_subscription_nothing_is_written_nor_read(no_subscription, card, dept001):
    debit(card, dept001, amount="10.00", receipt_no="Q-0")  # the caches of a first payment (rules, subscriptions)
    with CaptureQueriesContext(connection) as quiet:
        debit(card, dept001, amount="10.00", receipt_no="Q-1")
    assert events() == []

    Subscription.objects.create(name="集团APP", url="http://127.0.0.1:9/none", secret_sealed=pii_encrypt("s" * 32),
                                event_types=[EventType.CARD_DEBITED])
    subscriptions_for(EventType.CARD_DEBITED)  # the cache's own read, once per process and interval
    with CaptureQueriesContext(connection) as heard:
        debit(card, dept001, amount="10.00", receipt_no="Q-2")

    assert [event.data["receipt_no"] for event in events()] == ["Q-2"]
    # The event and its deliveries: one statement on PostgreSQL, two on SQLite; building the data reads nothing.
    assert len(heard) - len(quiet) == (1 if connection.vendor == "postgresql" else 2)


def test_a_subscription_gets_only_the_types_it_wants(subscription, card, dept001, sent):
    points_only = Subscription.objects.create(name="积分商城", url="http://127.0.0.1:9/none",
                                              secret_sealed=pii_encrypt("t" * 32),
                                              event_types=[EventType.POINTS_EARNED])

    debit(card, dept001)

    event = the_event(EventType.CARD_DEBITED, f"card:{card.card_no}", subscription)
    assert not Delivery.objects.filter(event=event, subscription=points_only).exists()


def test_two_debits_of_a_card_give_events_in_ledger_order(subscription, card, dept001):
    debit(card, dept001, amount="50.00", receipt_no="R-1")
    debit(card, dept001, amount="30.00", receipt_no="R-2")

    found = events(EventType.CARD_DEBITED)
    entries = list(CardLedgerEntry.objects.filter(card=card, kind=CardLedgerEntry.Kind.DEBIT).order_by("pk"))
    assert [event.data["entry_id"] for event in found] == [entry.pk for entry in entries]
    assert [(event.data["receipt_no"], event.data["balance"]) for event in found] == [
        ("R-1", "150.00"), ("R-2", "120.00")]
    assert {event.subject for event in found} == {f"card:{card.card_no}"}


def test_a_pos_debit_writes_card_debited(subscription, card, api):
    cache.clear()  # the API's rate limits
    body = json.dumps({"amount": "12.50", "receipt_no": "P-1"})
    response = api.post(f"/api/v1/cards/{card.card_no}/debit", data=body, content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="evt-debit-1")

    assert response.status_code == 201, response.content
    event = the_event(EventType.CARD_DEBITED, f"card:{card.card_no}", subscription)
    assert (event.data["transaction_id"], event.data["amount"], event.data["balance"], event.data["store"]) == (
        response.json()["transaction_id"], "-12.50", "187.50", "DEPT001")
    cache.clear()


@pytest.fixture
def clerk_at_dept001(make_staff, dept001):
    from stores.models import StaffProfile

    return make_staff("card_ops", group="卡务运营", scope=StaffProfile.Scope.HQ)


# --- points ------------------------------------------------------------------------------------------------


@pytest.fixture
def member(dept001) -> Member:
    return register(name="王芳", phone=str(next(_phones)), store=dept001)


def test_a_purchase_writes_points_earned(subscription, member, dept001):
    purchase = purchase_record(store=dept001, member=member.member_no, receipt_no="R-100", amount=D("100.00"),
                               occurred_at=timezone.now() - timedelta(minutes=5))

    entry = PointsEntry.objects.get(member=member, kind=PointsEntry.Kind.EARN)
    event = the_event(EventType.POINTS_EARNED, f"member:{member.member_no}", subscription)
    assert without_time(event.data) == {
        "member_no": member.member_no, "entry_id": entry.pk, "kind": "earn", "points": purchase.points_earned,
        "balance": purchase.points_earned, "store": "DEPT001", "receipt_no": "R-100",
    }
    assert purchase.points_earned > 0


def test_pending_points_released_after_the_return_window_write_points_earned(subscription, member, dept001):
    EarnRuleFactory(format=dept001.format, pending_days=7)
    occurred_at = timezone.now() - timedelta(minutes=5)
    purchase = purchase_record(store=dept001, member=member, receipt_no="R-HELD", amount=D("100.00"),
                               occurred_at=occurred_at)
    assert events(EventType.POINTS_EARNED) == []

    assert points_holds_release(now=occurred_at + timedelta(days=8)) == 1

    event = the_event(EventType.POINTS_EARNED, f"member:{member.member_no}", subscription)
    assert (event.data["points"], event.data["balance"], event.data["receipt_no"], event.data["store"]) == (
        purchase.points_earned, purchase.points_earned, "R-HELD", "DEPT001")


def test_a_cash_out_writes_points_redeemed(subscription, member, dept001):
    points_post(member=member, points=5000, kind=PointsEntry.Kind.MIGRATION)

    cash_out = points_cash_out(member=member, points=1000, store=dept001, receipt_no="C-1")

    event = the_event(EventType.POINTS_REDEEMED, f"member:{member.member_no}", subscription)
    assert without_time(event.data) == {
        "member_no": member.member_no, "entry_id": cash_out.entry.pk, "kind": "cash_out", "points": -1000,
        "balance": 4000, "store": "DEPT001", "receipt_no": "C-1",
    }


def test_an_approved_adjustment_writes_points_adjusted(subscription, member, hq_admin, hq_approver):
    request = points_adjust_request(member=member, points=120, reason="补录积分", requested_by=hq_admin)

    approval_request_approve(approval_request=request, approver=hq_approver)

    event = the_event(EventType.POINTS_ADJUSTED, f"member:{member.member_no}", subscription)
    assert (event.data["kind"], event.data["points"], event.data["balance"], event.data["store"]) == (
        "adjust", 120, 120, None)


def test_a_member_handed_in_by_key_alone_is_announced_by_number(subscription, member):
    points_post(member=Member(pk=member.pk), points=30, kind=PointsEntry.Kind.ADJUST, reason="活动赠送")

    event = the_event(EventType.POINTS_ADJUSTED, f"member:{member.member_no}", subscription)
    assert event.data["member_no"] == member.member_no


def test_the_nightly_expiry_writes_points_expired_per_member(subscription, member, dept001):
    other = register(name="赵敏", phone=str(next(_phones)), store=dept001)
    long_ago = timezone.make_aware(datetime(2024, 5, 1, 12))
    points_post(member=member, points=300, kind=PointsEntry.Kind.EARN, created_at=long_ago)
    points_post(member=other, points=70, kind=PointsEntry.Kind.EARN, created_at=long_ago)
    Event.objects.all().delete()

    assert points_expire(today=date(2026, 1, 1)) == 2

    found = events(EventType.POINTS_EXPIRED)
    entries = {entry.member_id: entry for entry in PointsEntry.objects.filter(kind=PointsEntry.Kind.EXPIRE)}
    assert [(event.subject, without_time(event.data)) for event in found] == [
        (f"member:{member.member_no}", {"member_no": member.member_no, "entry_id": entries[member.pk].pk,
                                        "kind": "expire", "points": -300, "balance": 0, "store": None,
                                        "receipt_no": ""}),
        (f"member:{other.member_no}", {"member_no": other.member_no, "entry_id": entries[other.pk].pk,
                                       "kind": "expire", "points": -70, "balance": 0, "store": None,
                                       "receipt_no": ""}),
    ]
    assert Delivery.objects.filter(event__in=found, subscription=subscription).count() == 2
    assert all(ISO_WITH_OFFSET.match(event.data["created_at"]) for event in found)


def test_a_migration_of_points_is_no_event(subscription, member):
    Event.objects.all().delete()  # what the fixtures wrote
    points_post(member=member, points=300, kind=PointsEntry.Kind.MIGRATION)

    assert events() == []


# --- members -----------------------------------------------------------------------------------------------


def test_registering_writes_member_created_without_personal_data(subscription, dept001):
    member = register(name="张秀英", phone="13912345678", store=dept001)

    event = the_event(EventType.MEMBER_CREATED, f"member:{member.member_no}", subscription)
    assert without_time(event.data) == {"member_no": member.member_no, "store": "DEPT001", "channel": "desk",
                                        "tier": Tier.default().code}
    assert "张秀英" not in json.dumps(event.data, ensure_ascii=False) and "13912345678" not in json.dumps(event.data)


def test_a_merge_writes_member_merged_for_the_survivor(subscription, dept001, hq_admin):
    survivor = register(name="王芳", phone=str(next(_phones)), store=dept001)
    merged = register(name="王芳", phone=str(next(_phones)), store=dept001)
    points_post(member=merged, points=50, kind=PointsEntry.Kind.MIGRATION)
    Event.objects.all().delete()

    member_merge_request(survivor=survivor, merged=merged, requested_by=hq_admin, reason="same person")

    event = the_event(EventType.MEMBER_MERGED, f"member:{survivor.member_no}", subscription)
    assert without_time(event.data) == {"member_no": survivor.member_no, "merged_member_no": merged.member_no}
    assert [event.type for event in events()] == [EventType.MEMBER_MERGED], "points moved by a merge are no events"


def test_buying_a_paid_tier_writes_member_tier_changed(subscription, member, dept001, hq_admin):
    Event.objects.all().delete()

    paid_tier_buy(member=member, tier=Tier.objects.get(code="PLUS"), store=dept001, operator=hq_admin,
                  payment_method="cash")

    event = the_event(EventType.MEMBER_TIER_CHANGED, f"member:{member.member_no}", subscription)
    assert without_time(event.data) == {"member_no": member.member_no, "from_tier": None, "to_tier": "PLUS",
                                        "reason": "paid"}


def test_the_nightly_evaluation_writes_member_tier_changed_per_change(subscription, member, dept001):
    today = date(2025, 6, 15)
    silver = Tier.objects.get(code="SILVER")
    Purchase.objects.bulk_create([Purchase(
        member=member, store=dept001, format=dept001.format, legal_entity=dept001.format.legal_entity,
        receipt_no="R-SPEND", amount=silver.threshold,
        occurred_at=timezone.make_aware(datetime.combine(today, time(12))),
    )])
    Event.objects.all().delete()

    result = tiers_evaluate(today=today)

    assert result.upgraded == 1
    event = the_event(EventType.MEMBER_TIER_CHANGED, f"member:{member.member_no}", subscription)
    assert without_time(event.data) == {"member_no": member.member_no, "from_tier": Tier.default().code,
                                        "to_tier": "SILVER", "reason": "upgrade"}


def test_an_evaluation_without_a_subscription_writes_no_event(no_subscription, member, dept001):
    today = date(2025, 6, 15)
    Purchase.objects.bulk_create([Purchase(
        member=member, store=dept001, format=dept001.format, legal_entity=dept001.format.legal_entity,
        receipt_no="R-SPEND", amount=Tier.objects.get(code="SILVER").threshold,
        occurred_at=timezone.make_aware(datetime.combine(today, time(12))),
    )])

    assert tiers_evaluate(today=today).upgraded == 1

    assert events() == []


# --- coupons and vouchers ----------------------------------------------------------------------------------


@pytest.fixture
def template(reference_stores) -> CouponTemplate:
    return CouponTemplate.objects.create(code="EVT10", name="10元券", kind=CouponTemplate.Kind.AMOUNT_OFF,
                                         status=CouponTemplate.Status.ACTIVE, amount=D("10.00"), per_member_limit=3)


def test_issuing_writes_coupon_issued_per_coupon(subscription, template, member):
    Event.objects.all().delete()

    batch = coupons_issue(template=template, member_ids=[member.pk], channel=CouponBatch.Channel.MEMBER_LIST)
    bulk = coupons_issue(template=template, quantity=2, channel=CouponBatch.Channel.BULK)

    coupon = Coupon.objects.get(batch=batch)
    found = events(EventType.COUPON_ISSUED)
    assert len(found) == 3
    assert found[0].subject == f"coupon:{coupon.code}"
    assert without_time(found[0].data) == {"coupon_code": coupon.code, "template": "EVT10",
                                           "member_no": member.member_no, "valid_until": None}
    assert {event.data["coupon_code"] for event in found[1:]} == set(
        Coupon.objects.filter(batch=bulk).values_list("code", flat=True))
    assert {event.data["member_no"] for event in found[1:]} == {None}
    assert Delivery.objects.filter(subscription=subscription).count() == 3


def test_redeeming_writes_coupon_redeemed(subscription, template, member, dept001):
    coupon = Coupon.objects.get(batch=coupons_issue(template=template, member_ids=[member.pk],
                                                    channel=CouponBatch.Channel.MEMBER_LIST))
    Event.objects.all().delete()

    coupon_redeem(code=coupon.code, store=dept001, member_no=member.member_no, receipt_no="R-9",
                  basket_amount="100.00")

    event = the_event(EventType.COUPON_REDEEMED, f"coupon:{coupon.code}", subscription)
    assert without_time(event.data) == {"coupon_code": coupon.code, "template": "EVT10",
                                        "member_no": member.member_no, "store": "DEPT001", "receipt_no": "R-9",
                                        "discount": "10.00"}


@pytest.fixture
def voucher(dept001, hq_admin, hq_approver):
    from tests.cards.test_vouchers import batch_issued, sold

    supplier = Supplier.objects.create(code="SUP01", name="益海嘉里", contact_name="王经理",
                                       bank_account_no="622200001")
    oil = VoucherProduct.objects.create(code="OIL5L", name="金龙鱼食用油 5L", sku="6948195800019", unit="桶",
                                        supplier=supplier, settlement_price=D("58.00"))
    batch = batch_issued(oil, requested_by=hq_admin, approver=hq_approver, quantity=1)
    return sold(batch, store=dept001, user=hq_admin, count=1)[0]


def test_redeeming_a_voucher_writes_voucher_redeemed(subscription, voucher, super001):
    voucher_redeem(code=voucher.code, quantity=3, receipt_no="V-1", store=super001)

    event = the_event(EventType.VOUCHER_REDEEMED, f"voucher:{voucher.code}", subscription)
    assert without_time(event.data) == {"voucher_code": voucher.code, "sku": "6948195800019", "quantity": 3,
                                        "remaining": 7, "store": "SUPER001", "receipt_no": "V-1"}
