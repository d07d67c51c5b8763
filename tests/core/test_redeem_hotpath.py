"""The POS redemptions on their hot path (issue 24): points turned into cash, pickup vouchers and coupons.

On PostgreSQL each reaches the database in as few statements as its rules allow (counted at the service, inside
the request's transaction as PosPostView opens it; the frame's own statements are not counted); on every database
the answers, refusals, ledgers and events stay what they were.
"""

import itertools
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from campaigns.api import CouponUseOutputSerializer
from campaigns.models import Coupon, CouponRedemption
from campaigns.services import coupon_redeem
from cards.api import VoucherRedeemOutputSerializer
from cards.errors import VoucherExpired, VoucherInactive, VoucherInsufficient
from cards.models import Voucher, VoucherLedgerEntry
from cards.services.vouchers import voucher_redeem
from integrations.events import subscriptions_cache_clear, subscriptions_for
from integrations.models import Event, EventType, Subscription
from membership.api import RedeemOutputSerializer
from membership.errors import CashOutLimitExceeded, InsufficientPoints, MemberNotActive, MemberNotFound
from membership.models import EarnRule, Member, MemberIdentity, PointsEntry, PointsPolicy
from membership.services import points_cash_out, purchase_record
from stores.models import Format, Store
from tests.campaigns.conftest import CouponTemplateFactory, coupon_issue
from tests.cards import test_vouchers as voucher_fixtures
from tests.membership.conftest import concurrently, register

# The voucher fixtures, shared with tests/cards/test_vouchers.py.
active_voucher = voucher_fixtures.active_voucher
issued_batch = voucher_fixtures.issued_batch
oil = voucher_fixtures.oil
supplier = voucher_fixtures.supplier

D = Decimal
POSTGRES = pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the joined statements are PostgreSQL's")
_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def subscription(db):
    """An active subscription to every event type."""
    subscriptions_cache_clear()
    found = Subscription.objects.create(name="集团APP", url="http://127.0.0.1:9/none", secret_sealed="x",
                                        event_types=list(EventType.values))
    subscriptions_cache_clear()
    subscriptions_for(EventType.POINTS_REDEEMED)  # the cache's own read, once per process and interval
    yield found
    subscriptions_cache_clear()


@pytest.fixture
def member_with_1000_points(reference_stores):
    """Earned at SUPER001 (1 point per 2 yuan): 2,000 yuan of groceries."""
    EarnRule.objects.create(format=Format.objects.get(code="SUPER"), amount_per_point=D("2.00"))
    member = register(name="李建国", phone="13800138000")
    purchase_record(store=Store.objects.get(code="SUPER001"), member=member, receipt_no="S-1", amount=D("2000.00"),
                    occurred_at=timezone.now())
    return Member.objects.get(pk=member.pk)


@pytest.fixture
def till_store(dept001):
    """DEPT001 with its format and company, as a terminal's authentication loads them."""
    return Store.objects.select_related("format__legal_entity").get(pk=dept001.pk)


def post(api, url: str, body: dict):
    return api.post(url, data=json.dumps(body), content_type="application/json",
                    HTTP_IDEMPOTENCY_KEY=f"hot-{next(_keys)}")


def statements(work) -> list[str]:
    """The statements `work` sends inside a request's transaction, but those of the points-to-cash days' provider
    (campaigns' own read)."""
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        work()
    return [query["sql"] for query in captured.captured_queries if "campaigns_pointspromotion" not in query["sql"]]


def starts(sent: list[str]) -> list[str]:
    return [sql[:60] for sql in sent]


def points(member) -> int:
    return Member.objects.values_list("points", flat=True).get(pk=member.pk)


# --- points turned into cash -----------------------------------------------------------------------------------


@POSTGRES
def test_a_cash_out_finds_locks_and_reads_the_member_in_one_statement(member_with_1000_points, till_store):
    sent = statements(lambda: points_cash_out(member_no=member_with_1000_points.member_no, points=100,
                                              store=till_store, receipt_no="D-1"))

    # The member by number, locked, with the policy; then the points used on the receipt summed, the balance
    # taken and the entry appended in one statement. No savepoint.
    assert len(sent) == 2, starts(sent)
    assert sent[0].startswith("SELECT") and sent[0].endswith("FOR UPDATE OF m"), sent[0]
    assert sent[1].startswith("WITH used AS (SELECT"), sent[1]
    assert points(member_with_1000_points) == 900
    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.CASH_OUT)
    assert (entry.points, entry.balance_after, entry.receipt_no) == (-100, 900, "D-1")
    assert (entry.store_id, entry.legal_entity_id) == (till_store.pk, till_store.format.legal_entity_id)
    assert entry.reason and entry.cause_type_id is None and entry.cause_id == ""


@POSTGRES
def test_a_heard_cash_out_adds_only_its_event(member_with_1000_points, till_store, subscription):
    sent = statements(lambda: points_cash_out(member=member_with_1000_points.pk, points=100, store=till_store,
                                              receipt_no="D-1"))

    assert len(sent) == 3, starts(sent)
    event = Event.objects.get(type=EventType.POINTS_REDEEMED)
    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.CASH_OUT)
    assert event.subject == f"member:{member_with_1000_points.member_no}"
    assert (event.data["entry_id"], event.data["points"], event.data["balance"]) == (entry.pk, -100, 900)
    assert (event.data["store"], event.data["receipt_no"]) == ("DEPT001", "D-1")


def test_a_cash_out_by_number_answers_and_writes_as_before(api, member_with_1000_points, dept001, terminal_with_key,
                                                          ledgers_balanced):
    response = post(api, "/api/v1/points/redeem",
                    {"member_no": member_with_1000_points.member_no, "points": 150, "receipt_no": "D-1"})

    assert response.status_code == 201, response.content
    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.CASH_OUT)
    assert response.json() == {"transaction_id": entry.pk, "points": 150, "cash_value": "1.50", "balance": 850}
    terminal, _key = terminal_with_key
    assert (entry.points, entry.balance_after, entry.store, entry.terminal) == (-150, 850, dept001, terminal)
    assert (entry.receipt_no, entry.legal_entity_id) == ("D-1", dept001.format.legal_entity_id)
    assert entry.reason == "小票 D-1 抵现 1.50 元"
    assert points(member_with_1000_points) == 850
    ledgers_balanced()


def test_a_legacy_number_and_a_merged_record_s_number_cash_out_the_survivor_s_points(
    api, member_with_1000_points, dept001, ledgers_balanced
):
    MemberIdentity.objects.create(member=member_with_1000_points, source="DEPT_CRM", external_no="1000234567")
    merged = register(name="李建国", phone="13800138001")
    Member.objects.filter(pk=merged.pk).update(merged_into=member_with_1000_points, status=Member.Status.MERGED)

    by_legacy = post(api, "/api/v1/points/redeem", {"member_no": "1000234567", "points": 100, "receipt_no": "D-1"})
    by_merged = post(api, "/api/v1/points/redeem",
                     {"member_no": merged.member_no, "points": 100, "receipt_no": "D-2"})

    assert (by_legacy.status_code, by_merged.status_code) == (201, 201)
    assert (by_legacy.json()["balance"], by_merged.json()["balance"]) == (900, 800)
    assert points(member_with_1000_points) == 800 and points(merged) == 0
    ledgers_balanced()


def test_an_unknown_number_is_not_found_before_a_bad_receipt(member_with_1000_points, dept001):
    with pytest.raises(MemberNotFound):
        points_cash_out(member_no="899999999999", points=100, store=dept001, receipt_no=" ")


def test_each_refusal_is_the_one_of_before_and_moves_nothing(member_with_1000_points, dept001):
    member = member_with_1000_points
    PointsPolicy.objects.filter(pk=1).update(cash_max_points=500)
    points_cash_out(member=member, points=300, store=dept001, receipt_no="D-1")

    with pytest.raises(CashOutLimitExceeded) as above_maximum:
        points_cash_out(member_no=member.member_no, points=201, store=dept001, receipt_no="D-1")
    with pytest.raises(CashOutLimitExceeded) as below_minimum:
        points_cash_out(member=member.pk, points=99, store=dept001, receipt_no="D-2")
    PointsPolicy.objects.filter(pk=1).update(cash_max_points=5000)
    with pytest.raises(InsufficientPoints) as insufficient:
        points_cash_out(member=member.pk, points=800, store=Store.objects.get(code="SUPER001"), receipt_no="S-9")
    Member.objects.filter(pk=member.pk).update(status=Member.Status.FROZEN)
    with pytest.raises(MemberNotActive):
        points_cash_out(member=member.pk, points=100, store=dept001, receipt_no="D-3")

    assert "300 already" in str(above_maximum.value) and "minimum" in str(below_minimum.value)
    assert insufficient.value.code == "insufficient_points"
    assert points(member) == 700
    assert PointsEntry.objects.filter(kind=PointsEntry.Kind.CASH_OUT).count() == 1


def test_a_refused_cash_out_leaves_the_till_s_transaction_usable(member_with_1000_points, dept001):
    with transaction.atomic():
        with pytest.raises(InsufficientPoints):
            points_cash_out(member=member_with_1000_points, points=5000, store=dept001, receipt_no="D-1")
        result = points_cash_out(member=member_with_1000_points, points=100, store=dept001, receipt_no="D-1")

    assert result.balance == 900 == points(member_with_1000_points)


@POSTGRES
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twenty_tills_on_one_receipt_never_pass_its_maximum_by_number(reference_stores, ledgers_balanced):
    EarnRule.objects.create(format=Format.objects.get(code="SUPER"), amount_per_point=D("1.00"))
    member = register(name="王芳", phone="13800138002")
    purchase_record(store=Store.objects.get(code="SUPER001"), member=member, receipt_no="S-1", amount=D("5000.00"),
                    occurred_at=timezone.now())
    PointsPolicy.objects.filter(pk=1).update(cash_max_points=1000)
    dept001 = Store.objects.get(code="DEPT001")

    results = concurrently(20, lambda _index: points_cash_out(member_no=member.member_no, points=100, store=dept001,
                                                               receipt_no="D-1"))

    assert sum(not isinstance(result, Exception) for result in results) == 10
    assert all(isinstance(result, CashOutLimitExceeded) for result in results if isinstance(result, Exception))
    assert points(member) == 4000
    ledgers_balanced()


# --- pickup vouchers --------------------------------------------------------------------------------------------


@POSTGRES
def test_a_voucher_redemption_is_one_statement(active_voucher, till_store):
    sent = statements(lambda: voucher_redeem(code=active_voucher.code, quantity=3, receipt_no="R-1", store=till_store))

    assert len(sent) == 1 and sent[0].startswith("WITH moved AS (UPDATE"), starts(sent)
    assert Voucher.objects.values_list("remaining", flat=True).get(pk=active_voucher.pk) == 7


@POSTGRES
def test_a_heard_voucher_redemption_adds_only_its_event(active_voucher, till_store, subscription):
    sent = statements(lambda: voucher_redeem(code=active_voucher.code, quantity=3, receipt_no="R-1", store=till_store))

    assert len(sent) == 2, starts(sent)
    event = Event.objects.get(type=EventType.VOUCHER_REDEEMED)
    assert event.data == {
        "voucher_code": active_voucher.code, "sku": "6948195800019", "quantity": 3, "remaining": 7,
        "store": "DEPT001", "receipt_no": "R-1", "created_at": event.data["created_at"],
    }


def test_redeeming_a_voucher_to_nothing_answers_and_writes_as_before(api, active_voucher, dept001,
                                                                     terminal_with_key):
    response = post(api, f"/api/v1/vouchers/{active_voucher.code}/redeem", {"receipt_no": "R-1", "quantity": 10})

    assert response.status_code == 201, response.content
    assert response.json() == {"voucher_code": active_voucher.code, "sku": "6948195800019", "quantity_redeemed": 10,
                               "remaining": 0}
    voucher = Voucher.objects.get(pk=active_voucher.pk)
    assert (voucher.remaining, voucher.status) == (0, Voucher.Status.USED)
    entry = VoucherLedgerEntry.objects.get(kind=VoucherLedgerEntry.Kind.REDEEM)
    terminal, _key = terminal_with_key
    assert (entry.quantity, entry.remaining_after, entry.receipt_no, entry.reason) == (-10, 0, "R-1", "")
    assert (entry.store, entry.terminal, entry.legal_entity) == (dept001, terminal, dept001.legal_entity)


def test_a_voucher_s_refusals_are_the_ones_of_before(active_voucher, dept001):
    voucher_redeem(code=active_voucher.code, quantity=10, receipt_no="R-1", store=dept001)

    with pytest.raises(VoucherInsufficient) as used:
        voucher_redeem(code=active_voucher.code, quantity=1, receipt_no="R-2", store=dept001)
    Voucher.objects.filter(pk=active_voucher.pk).update(status=Voucher.Status.VOID)
    with pytest.raises(VoucherInactive):
        voucher_redeem(code=active_voucher.code, quantity=1, receipt_no="R-3", store=dept001)
    Voucher.objects.filter(pk=active_voucher.pk).update(status=Voucher.Status.ACTIVE, remaining=0,
                                                        expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(VoucherExpired):
        voucher_redeem(code=active_voucher.code, quantity=1, receipt_no="R-4", store=dept001)

    assert used.value.code == "insufficient_balance"
    assert VoucherLedgerEntry.objects.filter(kind=VoucherLedgerEntry.Kind.REDEEM).count() == 1


def test_a_voucher_past_its_validity_by_time_alone_is_expired(active_voucher, dept001):
    Voucher.objects.filter(pk=active_voucher.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(VoucherExpired):
        voucher_redeem(code=active_voucher.code, quantity=1, receipt_no="R-1", store=dept001)

    assert Voucher.objects.values_list("remaining", "status").get(pk=active_voucher.pk) == (10, Voucher.Status.ACTIVE)


# --- coupons ----------------------------------------------------------------------------------------------------


@POSTGRES
def test_a_coupon_redemption_reads_in_one_statement_and_writes_in_one(till_store):
    member = register(name="李建国", phone="13800138000")
    coupon = coupon_issue(CouponTemplateFactory(), member)

    sent = statements(lambda: coupon_redeem(code=coupon.code, store=till_store, member_no=member.member_no,
                                            receipt_no="R-1", basket_amount="100.00"))

    assert len(sent) == 2 and sent[1].startswith("WITH ok AS"), starts(sent)
    assert Coupon.objects.values_list("status", flat=True).get(pk=coupon.pk) == Coupon.Status.REDEEMED
    assert CouponRedemption.objects.get().discount == D("10.00")


# --- the answers ------------------------------------------------------------------------------------------------


def test_the_answers_built_without_serializers_are_theirs_byte_for_byte(api, member_with_1000_points, active_voucher,
                                                                         dept001):
    coupon = coupon_issue(CouponTemplateFactory(amount=D("12.50")))

    cashed = post(api, "/api/v1/points/redeem",
                  {"member_no": member_with_1000_points.member_no, "points": 333, "receipt_no": "D-1"})
    redeemed = post(api, f"/api/v1/vouchers/{active_voucher.code}/redeem", {"receipt_no": "R-1", "quantity": 2})
    used = post(api, f"/api/v1/coupons/{coupon.code}/redeem",
                {"member_no": None, "receipt_no": "R-1", "basket_amount": "100.00"})

    entry = PointsEntry.objects.get(kind=PointsEntry.Kind.CASH_OUT)
    assert cashed.content == JSONRenderer().render(RedeemOutputSerializer(
        {"transaction_id": entry.pk, "points": 333, "cash_value": D("3.33"), "balance": 667}).data)
    assert redeemed.content == JSONRenderer().render(VoucherRedeemOutputSerializer(
        {"voucher_code": active_voucher.code, "sku": "6948195800019", "quantity_redeemed": 2, "remaining": 8}).data)
    assert used.content == JSONRenderer().render(CouponUseOutputSerializer(
        {"coupon_code": coupon.code, "discount": D("12.50")}).data)
