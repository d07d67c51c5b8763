"""purchase_return, points held in a return window, and points owed after a return."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals.errors import SelfApprovalForbidden
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from membership import tasks
from membership.errors import (
    InsufficientPoints,
    PointsAdjustmentInvalid,
    PurchaseInvalid,
    PurchaseNotFound,
    ReceiptAlreadyRecorded,
    ReturnExceedsPurchase,
)
from membership.models import (
    EarnRule,
    Member,
    PointsDebtEntry,
    PointsEntry,
    PointsHold,
    Purchase,
    PurchaseReturn,
)
from membership.services import (
    POINTS_DEBT_WAIVE,
    points_cash_out,
    points_debt_waive_request,
    points_holds_release,
    points_to_take_back,
    purchase_record,
    purchase_return,
)
from stores.models import Format, Store
from tests.membership.conftest import register

D = Decimal
EARN, REVERSAL = PointsEntry.Kind.EARN, PointsEntry.Kind.REVERSAL


@pytest.fixture
def earn_rules(reference_stores):
    """DEPT 1 point per yuan; AUTO 1 point per yuan, held 7 days (the dealer's return window)."""
    EarnRule.objects.create(format=Format.objects.get(code="DEPT"), amount_per_point=D("1.00"))
    EarnRule.objects.create(format=Format.objects.get(code="AUTO"), amount_per_point=D("1.00"), pending_days=7)


@pytest.fixture
def member(earn_rules):
    return register(name="李建国", phone="13800138000")


def store(code: str) -> Store:
    return Store.objects.select_related("format").get(code=code)


def buy(member, code="DEPT001", amount="100.00", receipt_no="R-1", occurred_at=None) -> Purchase:
    return purchase_record(store=store(code), member=member, receipt_no=receipt_no, amount=D(amount),
                           occurred_at=occurred_at or timezone.now())


def give_back(code="DEPT001", original="R-1", amount="100.00", receipt_no="RET-1", **extra) -> PurchaseReturn:
    return purchase_return(store=store(code), original_receipt_no=original, receipt_no=receipt_no,
                           amount=D(amount), **extra)


def member_row(member) -> Member:
    return Member.objects.get(pk=member.pk)


def snapshot():
    return (
        list(Member.objects.order_by("pk").values_list("points", "points_debt")),
        list(Purchase.objects.order_by("pk").values_list("returned_amount", flat=True)),
        PointsEntry.objects.count(), PurchaseReturn.objects.count(), PointsDebtEntry.objects.count(),
        list(PointsHold.objects.order_by("pk").values_list("status", "cancelled_points")),
    )


# --- taking back what the returned part earned -----------------------------------------------------------


def test_a_full_return_takes_back_exactly_what_was_earned(member, ledgers_balanced):
    purchase = buy(member, amount="99.99")

    record = give_back(amount="99.99")

    assert (record.points_reversed, record.points_debt) == (99, 0)
    assert member_row(member).points == 0
    entry = PointsEntry.objects.get(kind=REVERSAL)
    assert (entry.points, entry.cause, entry.receipt_no) == (-99, record, "RET-1")
    assert entry.legal_entity == purchase.legal_entity
    assert Purchase.objects.get(pk=purchase.pk).returned_amount == D("99.99")
    ledgers_balanced()


def test_returns_in_parts_add_up_to_what_was_earned(member):
    buy(member, amount="100.00")  # 100 points

    parts = [give_back(amount=amount, receipt_no=f"RET-{n}").points_reversed
             for n, amount in enumerate(["33.33", "33.33", "33.34"])]

    assert parts == [33, 33, 34]
    assert member_row(member).points == 0


@pytest.mark.parametrize(("earned", "amount", "before", "after", "taken"), [
    (100, "100.00", "0.00", "50.00", 50),
    (7, "10.00", "0.00", "1.00", 0),
    (7, "10.00", "1.00", "2.00", 1),
    (7, "10.00", "2.00", "10.00", 6),
    (0, "10.00", "0.00", "10.00", 0),
])
def test_points_to_take_back_round_down_per_return(earned, amount, before, after, taken):
    assert points_to_take_back(points_earned=earned, amount=D(amount), returned_before=D(before),
                               returned_after=D(after)) == taken


# --- points already spent: a debt ---------------------------------------------------------------------------


def test_a_return_after_spending_records_the_points_owed(member, dept001, ledgers_balanced):
    # given: 500 points earned, 400 turned into cash
    buy(member, amount="500.00")
    points_cash_out(member=member, points=400, store=dept001, receipt_no="R-2")
    # when: everything goes back
    record = give_back(amount="500.00")
    # then: the 100 left are taken back, 400 are owed
    assert (record.points_reversed, record.points_debt) == (100, 400)
    assert (member_row(member).points, member_row(member).points_debt) == (0, 400)
    debt = PointsDebtEntry.objects.get()
    assert (debt.kind, debt.points, debt.debt_after, debt.cause) == (PointsDebtEntry.Kind.INCURRED, 400, 400, record)
    ledgers_balanced()


def test_later_earnings_pay_off_the_points_owed_first(member, dept001, ledgers_balanced):
    # given: 400 points owed
    buy(member, amount="500.00")
    points_cash_out(member=member, points=500, store=dept001, receipt_no="R-2")
    give_back(amount="500.00")
    assert member_row(member).points_debt == 500
    # when: two more purchases
    buy(member, amount="300.00", receipt_no="R-3")
    after_first = member_row(member)
    later = buy(member, amount="300.00", receipt_no="R-4")
    # then
    assert (after_first.points, after_first.points_debt) == (0, 200)
    assert (member_row(member).points, member_row(member).points_debt) == (100, 0)
    entries = list(PointsEntry.objects.filter(receipt_no="R-4").order_by("pk").values_list("kind", "points",
                                                                                           "balance_after"))
    assert entries == [(EARN, 300, 300), (REVERSAL, -200, 100)]
    repaid = PointsDebtEntry.objects.filter(kind=PointsDebtEntry.Kind.REPAID).order_by("pk")
    assert list(repaid.values_list("points", "debt_after")) == [(-300, 200), (-200, 0)]
    assert repaid.last().cause == later
    assert PointsEntry.objects.filter(kind=REVERSAL, receipt_no="R-4").get().reason == "paid off points owed"
    ledgers_balanced()


# --- pending points in a return window ----------------------------------------------------------------------


def test_points_in_a_return_window_are_pending_and_cannot_be_spent(member, dept001):
    purchase = buy(member, "AUTO001", amount="1500.00", receipt_no="A-1")

    hold = PointsHold.objects.get(purchase=purchase)
    assert (purchase.points_earned, hold.points, hold.status) == (1500, 1500, PointsHold.Status.PENDING)
    assert timedelta(days=7) - timedelta(seconds=5) < hold.available_at - purchase.occurred_at <= timedelta(days=7)
    assert member_row(member).points == 0
    assert not PointsEntry.objects.exists()
    with pytest.raises(InsufficientPoints):
        points_cash_out(member=member, points=100, store=dept001, receipt_no="D-1")


def test_pending_points_become_usable_when_the_window_has_passed(member, dept001, ledgers_balanced):
    purchase = buy(member, "AUTO001", amount="1500.00", receipt_no="A-1")
    hold = PointsHold.objects.get(purchase=purchase)

    assert points_holds_release(now=hold.available_at - timedelta(seconds=1)) == 0
    assert member_row(member).points == 0
    assert points_holds_release(now=hold.available_at) == 1

    hold.refresh_from_db()
    assert hold.status == PointsHold.Status.RELEASED
    entry = hold.released_entry
    assert (entry.kind, entry.points, entry.receipt_no, entry.cause) == (EARN, 1500, "A-1", purchase)
    assert entry.store == store("AUTO001")
    assert entry.legal_entity == purchase.legal_entity
    assert member_row(member).points == 1500
    points_cash_out(member=member, points=100, store=dept001, receipt_no="D-1")
    ledgers_balanced()


def test_releasing_twice_credits_once(member):
    buy(member, "AUTO001", amount="100.00", receipt_no="A-1")
    later = timezone.now() + timedelta(days=8)

    assert points_holds_release(now=later) == 1
    assert points_holds_release(now=later) == 0

    assert member_row(member).points == 100
    assert PointsEntry.objects.count() == 1


def test_release_works_in_batches(member):
    for n in range(5):
        buy(member, "AUTO001", amount="10.00", receipt_no=f"A-{n}")

    assert points_holds_release(now=timezone.now() + timedelta(days=8), batch=2) == 5

    assert member_row(member).points == 50
    assert not PointsHold.objects.filter(status=PointsHold.Status.PENDING).exists()


def test_a_return_inside_the_window_cancels_the_pending_points(member, ledgers_balanced):
    buy(member, "AUTO001", amount="1000.00", receipt_no="A-1")

    record = give_back("AUTO001", original="A-1", amount="400.00")

    assert (record.points_reversed, record.points_debt) == (400, 0)
    hold = PointsHold.objects.get()
    assert (hold.status, hold.cancelled_points, hold.remaining) == (PointsHold.Status.PENDING, 400, 600)
    assert not PointsEntry.objects.exists()
    points_holds_release(now=timezone.now() + timedelta(days=8))
    assert member_row(member).points == 600
    ledgers_balanced()


def test_a_full_return_inside_the_window_cancels_the_hold_without_an_entry(member):
    buy(member, "AUTO001", amount="1000.00", receipt_no="A-1")

    give_back("AUTO001", original="A-1", amount="1000.00")

    assert PointsHold.objects.get().status == PointsHold.Status.CANCELLED
    assert points_holds_release(now=timezone.now() + timedelta(days=8)) == 0
    assert member_row(member).points == 0
    assert not PointsEntry.objects.exists()


def test_a_return_after_the_window_takes_points_from_the_balance(member):
    buy(member, "AUTO001", amount="1000.00", receipt_no="A-1")
    points_holds_release(now=timezone.now() + timedelta(days=8))

    record = give_back("AUTO001", original="A-1", amount="1000.00")

    assert (record.points_reversed, record.points_debt) == (1000, 0)
    assert member_row(member).points == 0


def test_a_backdated_sale_whose_window_is_over_earns_at_once(member):
    purchase = buy(member, "AUTO001", amount="100.00", receipt_no="A-1",
                   occurred_at=timezone.now() - timedelta(days=10))

    assert not PointsHold.objects.filter(purchase=purchase).exists()
    assert member_row(member).points == 100


def test_the_nightly_task_releases_due_holds(member):
    buy(member, "AUTO001", amount="100.00", receipt_no="A-1",
        occurred_at=timezone.now() - timedelta(days=6, hours=23, minutes=59, seconds=59))
    PointsHold.objects.update(available_at=timezone.now() - timedelta(seconds=1))

    assert tasks.points_holds_release.apply().get() == 1
    assert member_row(member).points == 100


# --- refusals: nothing changes --------------------------------------------------------------------------------


def test_a_return_larger_than_what_is_left_changes_nothing(member):
    buy(member, amount="100.00")
    give_back(amount="60.00", receipt_no="RET-1")
    before = snapshot()

    with pytest.raises(ReturnExceedsPurchase) as error:
        give_back(amount="40.01", receipt_no="RET-2")

    assert (error.value.code, error.value.status) == ("validation_error", 422)
    assert "amount" in error.value.fields
    assert "40.00" in str(error.value)
    assert snapshot() == before


def test_the_same_return_receipt_twice_is_refused(member):
    buy(member, amount="100.00")
    first = give_back(amount="10.00", receipt_no="RET-1")
    before = snapshot()

    with pytest.raises(ReceiptAlreadyRecorded) as error:
        give_back(amount="10.00", receipt_no="RET-1")

    assert error.value.status == 409
    assert "receipt_no" in error.value.fields
    assert str(first.pk) in str(error.value)
    assert snapshot() == before


def test_a_return_of_an_unknown_receipt_is_not_found(member):
    with pytest.raises(PurchaseNotFound):
        give_back(original="NOPE")


def test_a_return_is_made_at_the_store_of_the_sale(member):
    buy(member, "DEPT001", amount="100.00", receipt_no="R-1")

    with pytest.raises(PurchaseNotFound):
        give_back("SUPER001", original="R-1")


@pytest.mark.parametrize(("changes", "field"), [
    ({"amount": D("0.00")}, "amount"),
    ({"amount": D("-1.00")}, "amount"),
    ({"amount": D("1.005")}, "amount"),
    ({"receipt_no": ""}, "receipt_no"),
    ({"original_receipt_no": ""}, "original_receipt_no"),
    ({"occurred_at": timezone.now() + timedelta(hours=1)}, "occurred_at"),
])
def test_bad_return_details_are_refused_naming_the_field(member, changes, field):
    buy(member, amount="100.00")
    before = snapshot()
    details = {"store": store("DEPT001"), "original_receipt_no": "R-1", "receipt_no": "RET-1",
               "amount": D("10.00")}
    details.update(changes)

    with pytest.raises(PurchaseInvalid) as error:
        purchase_return(**details)

    assert field in error.value.fields
    assert snapshot() == before


def test_a_return_cannot_come_before_the_sale(member):
    buy(member, amount="100.00", occurred_at=timezone.now() - timedelta(hours=1))

    with pytest.raises(PurchaseInvalid) as error:
        give_back(occurred_at=timezone.now() - timedelta(hours=2))

    assert "occurred_at" in error.value.fields


# --- waiving points owed: only with a second person's approval ---------------------------------------------


@pytest.fixture
def owing_400(member, dept001):
    buy(member, amount="500.00")
    points_cash_out(member=member, points=400, store=dept001, receipt_no="R-2")
    give_back(amount="500.00")
    return member


def test_a_waiver_moves_nothing_until_another_person_approves(owing_400, hq_admin, hq_approver, ledgers_balanced):
    # given: a request to forgive 300 of the 400 owed
    request = points_debt_waive_request(member=owing_400, points=300, reason="goodwill, complaint #12",
                                        requested_by=hq_admin)
    assert request.status == ApprovalRequest.Status.PENDING
    assert member_row(owing_400).points_debt == 400
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=request, approver=hq_admin)
    # when
    approval_request_approve(approval_request=request, approver=hq_approver)
    # then
    assert member_row(owing_400).points_debt == 100
    waived = PointsDebtEntry.objects.get(kind=PointsDebtEntry.Kind.WAIVED)
    assert (waived.points, waived.debt_after, waived.cause) == (-300, 100, request)
    ledgers_balanced()


def test_a_waiver_of_more_than_is_owed_is_refused(owing_400, hq_admin):
    with pytest.raises(PointsAdjustmentInvalid) as refused:
        points_debt_waive_request(member=owing_400, points=401, reason="goodwill", requested_by=hq_admin)

    assert "points" in refused.value.fields
    assert not ApprovalRequest.objects.exists()


def test_a_waiver_approved_after_earnings_paid_part_off_forgives_only_the_rest(
    owing_400, hq_admin, hq_approver, ledgers_balanced
):
    request = points_debt_waive_request(member=owing_400, points=400, reason="goodwill", requested_by=hq_admin)
    buy(owing_400, amount="300.00", receipt_no="R-3")  # pays 300 of the 400 off

    approval_request_approve(approval_request=request, approver=hq_approver)

    assert member_row(owing_400).points_debt == 0
    assert PointsDebtEntry.objects.get(kind=PointsDebtEntry.Kind.WAIVED).points == -100
    ledgers_balanced()


def test_the_admin_asks_for_a_waiver_when_the_member_owes_points(client, owing_400, hq_admin):
    client.force_login(hq_admin)
    url = reverse("admin:membership_member_points_adjust", args=[owing_400.pk])

    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    response = client.post(url, {"what": "waive", "points": "250", "reason": "goodwill"}, HTTP_ACCEPT_LANGUAGE="en")

    assert "waive points owed" in page.content.decode()
    assert response.status_code == 302
    request = ApprovalRequest.objects.get()
    assert (request.action, request.payload["points"]) == (POINTS_DEBT_WAIVE, 250)
    assert member_row(owing_400).points_debt == 400
