"""Points under concurrency on PostgreSQL: real threads, each with its own connection, against row locks."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from membership.errors import CashOutLimitExceeded, InsufficientPoints, ReceiptAlreadyRecorded
from membership.models import EarnRule, Member, PointsEntry, PointsHold, PointsPolicy, Purchase
from membership.services import points_cash_out, points_holds_release, purchase_record, purchase_return
from stores.models import Format, Store
from stores.services import terminal_create
from tests.membership.conftest import concurrently, kinds, register

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def store(code: str) -> Store:
    return Store.objects.select_related("format").get(code=code)


@pytest.fixture
def member(reference_stores):
    EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=Decimal("1.00"))
    EarnRule.objects.create(format=Format.objects.get(code="AUTO"), amount_per_point=Decimal("1.00"), pending_days=7)
    return register(name="李建国", phone="13800138000")


def earn(member, points: int, receipt_no: str = "R-0") -> None:
    purchase_record(store=store("DEPT001"), member=member, receipt_no=receipt_no, amount=Decimal(points),
                    occurred_at=timezone.now())


def balance(member) -> int:
    return Member.objects.values_list("points", flat=True).get(pk=member.pk)


def ledger_sum(member) -> int:
    return PointsEntry.objects.filter(member=member).aggregate(total=Sum("points"))["total"] or 0


def test_fifty_concurrent_redeems_never_overdraw(member, dept001, ledgers_balanced):
    # given: 2,000 points, enough for 20 redemptions of 100
    earn(member, 2000)
    # when: 50 tills redeem 100 points each at the same moment
    results = concurrently(50, lambda index: points_cash_out(
        member=member, points=100, store=dept001, receipt_no=f"D-{index}"))
    # then: exactly 20 went through, the rest were refused, nothing below zero
    assert kinds(results) == {"CashOut": 20, "InsufficientPoints": 30}
    assert all(isinstance(result, InsufficientPoints) for result in results if not hasattr(result, "entry"))
    assert balance(member) == 0 == ledger_sum(member)
    assert PointsEntry.objects.filter(kind=PointsEntry.Kind.CASH_OUT).count() == 20
    ledgers_balanced()


def test_the_per_receipt_maximum_holds_under_concurrency(member, dept001, ledgers_balanced):
    # given: plenty of points, at most 1,000 per receipt
    earn(member, 10_000)
    PointsPolicy.objects.filter(pk=1).update(cash_max_points=1000)
    # when: 50 redemptions of 100 on one receipt at once
    results = concurrently(50, lambda index: points_cash_out(
        member=member, points=100, store=dept001, receipt_no="D-1"))
    # then
    assert kinds(results) == {"CashOut": 10, "CashOutLimitExceeded": 40}
    assert all(isinstance(result, CashOutLimitExceeded) for result in results if not hasattr(result, "entry"))
    assert balance(member) == 9000 == ledger_sum(member)
    ledgers_balanced()


def test_concurrent_copies_of_one_receipt_earn_once(member, ledgers_balanced):
    results = concurrently(20, lambda index: purchase_record(
        store=store("DEPT001"), member=member, receipt_no="R-1", amount=Decimal("100.00"),
        occurred_at=timezone.now()))

    assert kinds(results) == {"Purchase": 1, "ReceiptAlreadyRecorded": 19}
    purchase = Purchase.objects.get()
    assert all(str(purchase.pk) in str(result) for result in results if isinstance(result, ReceiptAlreadyRecorded))
    assert balance(member) == 100
    assert PointsEntry.objects.count() == 1
    ledgers_balanced()


def test_concurrent_api_replays_of_one_receipt_with_new_keys_earn_once(member, ledgers_balanced):
    cache.clear()
    _terminal, key = terminal_create(store_code="DEPT001", name="T9")
    body = json.dumps({"member_no": member.member_no, "receipt_no": "R-1", "amount": "100.00",
                       "occurred_at": timezone.localtime().isoformat(), "payment_method": "CASH", "lines": []})

    def send(index: int):
        response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").post(
            "/api/v1/purchases", data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=f"k-{index}")
        return response.status_code

    statuses = concurrently(10, send)

    assert sorted(statuses) == [201] + [409] * 9
    assert balance(member) == 100
    assert Purchase.objects.count() == 1
    ledgers_balanced()


def test_a_return_racing_the_release_of_its_points_takes_them_back_either_way(member, ledgers_balanced):
    # given: a car bought 7 days ago, its points due
    purchase_record(store=store("AUTO001"), member=member, receipt_no="A-1", amount=Decimal("1000.00"),
                    occurred_at=timezone.now() - timedelta(days=6, hours=23))
    PointsHold.objects.update(available_at=timezone.now() - timedelta(seconds=1))
    # when: the nightly release and a full return run at once
    results = concurrently(2, lambda index: points_holds_release() if index == 0 else purchase_return(
        store=store("AUTO001"), original_receipt_no="A-1", receipt_no="A-1R", amount=Decimal("1000.00")))
    # then: whichever came first, the member keeps nothing and owes nothing
    assert not any(isinstance(result, Exception) for result in results), results
    member.refresh_from_db()
    assert (member.points, member.points_debt) == (0, 0)
    ledgers_balanced()
