"""Pickup vouchers (提货券): batches through approval, codes, activation, redemption, expiry, check_ledgers."""

import itertools
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone
from stdnum import luhn

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from cards.models import SaleOrder, Supplier, Voucher, VoucherBatch, VoucherLedgerEntry, VoucherProduct
from cards.services import vouchers
from cards.tasks import vouchers_expire as vouchers_expire_task
from core.errors import DomainError

D = Decimal
_orders = itertools.count(1)


# --- fixtures and helpers (imported by the other voucher test modules) --------------------------------------


@pytest.fixture
def supplier(db) -> Supplier:
    return Supplier.objects.create(code="SUP01", name="益海嘉里", contact_name="王经理", bank_account_no="622200001")


@pytest.fixture
def oil(supplier) -> VoucherProduct:
    return VoucherProduct.objects.create(code="OIL5L", name="金龙鱼食用油 5L", sku="6948195800019", unit="桶",
                                         supplier=supplier, settlement_price=D("58.00"))


def batch_issued(product, *, requested_by, approver, quantity=5, units=10, price="300.00", days=30) -> VoucherBatch:
    """A batch created, submitted and approved through the services: its vouchers are generated, unsold."""
    batch = vouchers.voucher_batch_create(product=product, quantity=quantity, units=units, price=D(price),
                                          expires_on=timezone.localdate() + timedelta(days=days),
                                          requested_by=requested_by)
    request = vouchers.voucher_batch_submit(batch=batch, requested_by=requested_by)
    approval_request_approve(approval_request=request, approver=approver)
    batch.refresh_from_db()
    return batch


def sale_order(store, user) -> SaleOrder:
    return SaleOrder.objects.create(
        order_no=f"SOT{next(_orders):06d}", channel=SaleOrder.Channel.GROUP, store=store,
        status=SaleOrder.Status.COMPLETED, buyer_type=SaleOrder.BuyerType.COMPANY, buyer_name="重庆某某有限公司",
        created_by=user,
    )


def sold(batch, *, store, user, count=None) -> list[Voucher]:
    """Activate the batch's first `count` unsold vouchers in one paid order at `store`."""
    order = sale_order(store, user)
    result = []
    for voucher in batch.vouchers.filter(status=Voucher.Status.UNSOLD).order_by("serial")[:count]:
        vouchers.voucher_activate(voucher=voucher, order=order, store=store, actor=user)
        voucher.refresh_from_db()
        result.append(voucher)
    return result


@pytest.fixture
def issued_batch(oil, hq_admin, hq_approver) -> VoucherBatch:
    return batch_issued(oil, requested_by=hq_admin, approver=hq_approver)


@pytest.fixture
def active_voucher(issued_batch, dept001, hq_admin) -> Voucher:
    """A voucher of 10 units, sold at DEPT001."""
    return sold(issued_batch, store=dept001, user=hq_admin, count=1)[0]


def ledger(voucher) -> list[tuple]:
    return list(VoucherLedgerEntry.objects.filter(voucher=voucher).order_by("pk")
                .values_list("kind", "quantity", "remaining_after"))


# --- batches ------------------------------------------------------------------------------------------------


def test_a_new_batch_is_a_draft_with_a_number(oil, hq_admin):
    batch = vouchers.voucher_batch_create(product=oil, quantity=3, units=2, price=D("120.00"),
                                          expires_on=timezone.localdate() + timedelta(days=10), requested_by=hq_admin)

    assert batch.status == VoucherBatch.Status.DRAFT
    assert batch.batch_no.startswith(f"VB{timezone.localdate():%Y%m%d}")
    assert not batch.vouchers.exists()


@pytest.mark.parametrize(("changes", "field"), [
    ({"quantity": 0}, "quantity"),
    ({"quantity": 1_000_001}, "quantity"),
    ({"quantity": "5"}, "quantity"),
    ({"units": 0}, "units"),
    ({"price": D("0")}, "price"),
    ({"price": "12.345"}, "price"),
    ({"expires_on": "today"}, "expires_on"),
    ({"note": "x" * 201}, "note"),
])
def test_bad_batch_details_are_refused_naming_the_field(oil, hq_admin, changes, field):
    values = {"product": oil, "quantity": 3, "units": 2, "price": D("10.00"),
              "expires_on": timezone.localdate() + timedelta(days=10), **changes}

    with pytest.raises(vouchers.VoucherBatchInvalid) as error:
        vouchers.voucher_batch_create(requested_by=hq_admin, **values)

    assert field in error.value.fields
    assert not VoucherBatch.objects.exists()


def test_a_batch_expiring_today_or_for_an_inactive_product_is_refused(oil, hq_admin):
    with pytest.raises(vouchers.VoucherBatchInvalid) as error:
        vouchers.voucher_batch_create(product=oil, quantity=1, units=1, price=D("1.00"),
                                      expires_on=timezone.localdate(), requested_by=hq_admin)
    assert error.value.fields["expires_on"] == ["The last day of validity must be in the future."]
    oil.is_active = False
    oil.save()
    with pytest.raises(vouchers.VoucherBatchInvalid) as error:
        vouchers.voucher_batch_create(product=oil, quantity=1, units=1, price=D("1.00"),
                                      expires_on=timezone.localdate() + timedelta(days=1), requested_by=hq_admin)
    assert "product" in error.value.fields


def test_submitting_waits_for_approval_and_approval_generates_unique_luhn_codes(oil, hq_admin, hq_approver):
    # given
    batch = vouchers.voucher_batch_create(product=oil, quantity=40, units=2, price=D("99.00"),
                                          expires_on=timezone.localdate() + timedelta(days=5), requested_by=hq_admin)
    # when
    request = vouchers.voucher_batch_submit(batch=batch, requested_by=hq_admin)
    # then: pending, nothing generated
    batch.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING and request.amount == D("3960.00")
    assert batch.status == VoucherBatch.Status.PENDING and not batch.vouchers.exists()
    # when: another person approves
    approval_request_approve(approval_request=request, approver=hq_approver)
    # then
    batch.refresh_from_db()
    assert batch.status == VoucherBatch.Status.ISSUED and batch.issued_at is not None
    generated = list(batch.vouchers.order_by("serial"))
    assert [v.serial for v in generated] == list(range(1, 41))
    assert len({v.code for v in generated}) == 40
    for voucher in generated:
        assert len(voucher.code) == 16 and voucher.code.isdigit() and voucher.code[0] != "0"
        assert luhn.is_valid(voucher.code)
        assert (voucher.status, voucher.units, voucher.remaining) == (Voucher.Status.UNSOLD, 2, 0)
    end_of_day = timezone.localtime(generated[0].expires_at)
    assert end_of_day.date() == batch.expires_on + timedelta(days=1)
    assert (end_of_day.hour, end_of_day.minute, str(end_of_day.tzinfo)) == (0, 0, "Asia/Shanghai")
    assert not VoucherLedgerEntry.objects.exists()


def test_a_drawn_code_that_exists_is_drawn_again(oil, hq_admin, hq_approver, monkeypatch):
    # given: an existing voucher, and a code generator that first offers its code
    first = batch_issued(oil, requested_by=hq_admin, approver=hq_approver, quantity=1)
    taken = first.vouchers.get().code
    fresh = iter([taken, taken, "4000000000000002", "4000000000000010"])
    monkeypatch.setattr(vouchers, "voucher_code_make", lambda: next(fresh))
    # when
    second = batch_issued(oil, requested_by=hq_admin, approver=hq_approver, quantity=2)
    # then
    assert sorted(second.vouchers.values_list("code", flat=True)) == ["4000000000000002", "4000000000000010"]


def test_a_rejected_batch_generates_nothing(oil, hq_admin, hq_approver):
    batch = vouchers.voucher_batch_create(product=oil, quantity=3, units=1, price=D("10.00"),
                                          expires_on=timezone.localdate() + timedelta(days=5), requested_by=hq_admin)
    request = vouchers.voucher_batch_submit(batch=batch, requested_by=hq_admin)

    approval_request_reject(approval_request=request, approver=hq_approver, comment="too many")

    batch.refresh_from_db()
    assert batch.status == VoucherBatch.Status.REJECTED and not batch.vouchers.exists()


def test_cancelling_a_pending_batch_withdraws_its_request(oil, hq_admin):
    batch = vouchers.voucher_batch_create(product=oil, quantity=3, units=1, price=D("10.00"),
                                          expires_on=timezone.localdate() + timedelta(days=5), requested_by=hq_admin)
    request = vouchers.voucher_batch_submit(batch=batch, requested_by=hq_admin)

    vouchers.voucher_batch_cancel(batch=batch, user=hq_admin)

    batch.refresh_from_db()
    request.refresh_from_db()
    assert batch.status == VoucherBatch.Status.CANCELLED
    assert request.status == ApprovalRequest.Status.CANCELLED


def test_an_issued_batch_cannot_be_cancelled_or_submitted_again(issued_batch, hq_admin):
    with pytest.raises(vouchers.VoucherBatchRefused):
        vouchers.voucher_batch_cancel(batch=issued_batch, user=hq_admin)
    with pytest.raises(vouchers.VoucherBatchRefused):
        vouchers.voucher_batch_submit(batch=issued_batch, requested_by=hq_admin)
    issued_batch.refresh_from_db()
    assert issued_batch.status == VoucherBatch.Status.ISSUED


def test_the_requester_cannot_approve_their_own_batch(oil, hq_admin):
    from approvals.errors import SelfApprovalForbidden

    batch = vouchers.voucher_batch_create(product=oil, quantity=1, units=1, price=D("10.00"),
                                          expires_on=timezone.localdate() + timedelta(days=5), requested_by=hq_admin)
    request = vouchers.voucher_batch_submit(batch=batch, requested_by=hq_admin)

    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=request, approver=hq_admin)
    assert not batch.vouchers.exists()


# --- activation (called by the sale of an order) ------------------------------------------------------------


def test_activation_puts_the_units_on_with_an_issue_entry(issued_batch, dept001, hq_admin):
    order = sale_order(dept001, hq_admin)
    voucher = issued_batch.vouchers.get(serial=1)

    entry = vouchers.voucher_activate(voucher=voucher, order=order, store=dept001, actor=hq_admin)

    voucher.refresh_from_db()
    assert voucher.status == Voucher.Status.ACTIVE and voucher.remaining == 10
    assert voucher.sale_order == order and voucher.sold_at is not None
    assert voucher.issuer == dept001.legal_entity
    assert (entry.kind, entry.quantity, entry.remaining_after) == ("issue", 10, 10)
    assert entry.store == dept001 and entry.operator == hq_admin and entry.cause == order
    assert entry.receipt_no == order.order_no and entry.legal_entity == dept001.legal_entity


def test_a_voucher_is_sold_only_once(active_voucher, dept001, hq_admin):
    # voucher_activate runs in its caller's transaction (the order's payment), which its refusal aborts
    with pytest.raises(vouchers.VoucherBatchRefused), transaction.atomic():
        vouchers.voucher_activate(voucher=active_voucher, order=sale_order(dept001, hq_admin), store=dept001,
                                  actor=hq_admin)
    assert ledger(active_voucher) == [("issue", 10, 10)]


def test_an_expired_unsold_voucher_cannot_be_sold(issued_batch, dept001, hq_admin):
    voucher = issued_batch.vouchers.get(serial=2)
    Voucher.objects.filter(pk=voucher.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(vouchers.VoucherBatchRefused, match="expired"), transaction.atomic():
        vouchers.voucher_activate(voucher=voucher, order=sale_order(dept001, hq_admin), store=dept001,
                                  actor=hq_admin)
    voucher.refresh_from_db()
    assert voucher.status == Voucher.Status.UNSOLD and voucher.remaining == 0


# --- redemption ---------------------------------------------------------------------------------------------


def test_redeeming_in_two_parts_at_two_stores(active_voucher, dept001, super001):
    first_voucher, first = vouchers.voucher_redeem(code=active_voucher.code, quantity=3, receipt_no="R-1",
                                                   store=dept001)
    _voucher, second = vouchers.voucher_redeem(code=active_voucher.code, quantity=7, receipt_no="S-1",
                                               store=super001)

    active_voucher.refresh_from_db()
    assert active_voucher.remaining == 0 and active_voucher.status == Voucher.Status.USED
    assert first_voucher.product.sku == "6948195800019"
    assert (first.store, first.legal_entity, first.receipt_no) == (dept001, dept001.legal_entity, "R-1")
    assert (second.store, second.legal_entity) == (super001, super001.legal_entity)
    assert ledger(active_voucher) == [("issue", 10, 10), ("redeem", -3, 7), ("redeem", -7, 0)]


def test_more_than_remains_is_refused_saying_what_remains(active_voucher, dept001):
    vouchers.voucher_redeem(code=active_voucher.code, quantity=8, receipt_no="R-1", store=dept001)

    with pytest.raises(vouchers.VoucherInsufficient) as error:
        vouchers.voucher_redeem(code=active_voucher.code, quantity=3, receipt_no="R-2", store=dept001)

    assert error.value.code == "insufficient_balance" and error.value.status == 422
    assert "2 桶 left" in str(error.value)
    active_voucher.refresh_from_db()
    assert active_voucher.remaining == 2
    assert len(ledger(active_voucher)) == 2


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "2", True, None])
def test_a_quantity_that_is_not_a_whole_number_of_units_is_refused(active_voucher, dept001, quantity):
    with pytest.raises(vouchers.VoucherInvalid) as error:
        vouchers.voucher_redeem(code=active_voucher.code, quantity=quantity, receipt_no="R-1", store=dept001)

    assert list(error.value.fields) == ["quantity"]
    assert len(ledger(active_voucher)) == 1


def test_an_unknown_code_is_not_found(active_voucher, dept001):
    with pytest.raises(vouchers.VoucherNotFound) as error:
        vouchers.voucher_redeem(code="1234567812345670", quantity=1, receipt_no="R-1", store=dept001)
    assert (error.value.code, error.value.status) == ("not_found", 404)


@pytest.mark.parametrize("status", [Voucher.Status.UNSOLD, Voucher.Status.VOID])
def test_an_unsold_or_void_voucher_is_inactive(issued_batch, dept001, status):
    voucher = issued_batch.vouchers.get(serial=3)
    Voucher.objects.filter(pk=voucher.pk).update(status=status)

    with pytest.raises(vouchers.VoucherInactive) as error:
        vouchers.voucher_redeem(code=voucher.code, quantity=1, receipt_no="R-1", store=dept001)

    assert (error.value.code, error.value.status) == ("card_inactive", 409)
    assert not VoucherLedgerEntry.objects.filter(voucher=voucher).exists()


def test_a_voucher_past_its_validity_is_expired_even_before_the_nightly_run(active_voucher, dept001):
    Voucher.objects.filter(pk=active_voucher.pk).update(expires_at=timezone.now())

    with pytest.raises(vouchers.VoucherExpired) as error:
        vouchers.voucher_redeem(code=active_voucher.code, quantity=1, receipt_no="R-1", store=dept001)

    assert (error.value.code, error.value.status) == ("card_expired", 409)
    active_voucher.refresh_from_db()
    assert active_voucher.remaining == 10 and active_voucher.status == Voucher.Status.ACTIVE


def test_voucher_post_never_goes_below_zero_or_above_its_units(active_voucher):
    with pytest.raises(vouchers.VoucherInsufficient), transaction.atomic():
        vouchers.voucher_post(voucher=active_voucher, kind=VoucherLedgerEntry.Kind.ADJUST, quantity=-11)
    with pytest.raises(vouchers.VoucherOverfilled), transaction.atomic():
        vouchers.voucher_post(voucher=active_voucher, kind=VoucherLedgerEntry.Kind.ADJUST, quantity=1)
    with pytest.raises(ValueError):
        vouchers.voucher_post(voucher=active_voucher, kind=VoucherLedgerEntry.Kind.ADJUST, quantity=0)
    active_voucher.refresh_from_db()
    assert active_voucher.remaining == 10
    assert len(ledger(active_voucher)) == 1


def test_a_used_voucher_given_units_back_is_active_again(active_voucher, dept001, hq_admin):
    vouchers.voucher_redeem(code=active_voucher.code, quantity=10, receipt_no="R-1", store=dept001)

    vouchers.voucher_post(voucher=active_voucher, kind=VoucherLedgerEntry.Kind.ADJUST, quantity=2, operator=hq_admin,
                          reason="goods not handed out")

    active_voucher.refresh_from_db()
    assert (active_voucher.status, active_voucher.remaining) == (Voucher.Status.ACTIVE, 2)


# --- expiry -------------------------------------------------------------------------------------------------


def test_the_nightly_task_expires_active_vouchers_past_validity_and_keeps_their_units(issued_batch, dept001,
                                                                                    hq_admin):
    # given: three sold vouchers, two past their validity (one of them fully used), two unsold past validity
    first, second, third = sold(issued_batch, store=dept001, user=hq_admin, count=3)
    vouchers.voucher_redeem(code=second.code, quantity=10, receipt_no="R-1", store=dept001)
    past = timezone.now() - timedelta(minutes=1)
    Voucher.objects.filter(pk__in=[first.pk, second.pk]).update(expires_at=past)
    Voucher.objects.filter(status=Voucher.Status.UNSOLD).update(expires_at=past)
    entries = VoucherLedgerEntry.objects.count()
    # when
    count = vouchers_expire_task()
    # then
    statuses = dict(Voucher.objects.values_list("pk", "status"))
    assert count == 1
    assert statuses[first.pk] == Voucher.Status.EXPIRED
    assert statuses[second.pk] == Voucher.Status.USED
    assert statuses[third.pk] == Voucher.Status.ACTIVE
    assert Voucher.objects.filter(status=Voucher.Status.UNSOLD).count() == 2
    assert Voucher.objects.get(pk=first.pk).remaining == 10
    assert VoucherLedgerEntry.objects.count() == entries
    assert vouchers.vouchers_expire() == 0


def test_the_expiry_task_is_scheduled_nightly():
    from core.schedules import NIGHTLY

    assert ("cards.vouchers_expire", 0, 55) == NIGHTLY["cards: expire pickup vouchers"][:3]


# --- reports ------------------------------------------------------------------------------------------------


def test_liability_counts_active_and_expired_remaining_apart(issued_batch, dept001, super001, hq_admin):
    # given: three vouchers of 10 units at 300.00 sold; one partly redeemed, one expired with 10 left
    first, second, third = sold(issued_batch, store=dept001, user=hq_admin, count=3)
    vouchers.voucher_redeem(code=first.code, quantity=3, receipt_no="R-1", store=super001)
    Voucher.objects.filter(pk=third.pk).update(status=Voucher.Status.EXPIRED)
    # when
    [row] = vouchers.voucher_liability()
    # then: 7 + 10 units active, worth 210.00 + 300.00; 10 expired, worth 300.00
    assert (row.product_code, row.supplier_code, row.unit) == ("OIL5L", "SUP01", "桶")
    assert (row.active_vouchers, row.active_units, row.active_value) == (2, 17, D("510.00"))
    assert (row.expired_vouchers, row.expired_units, row.expired_value) == (1, 10, D("300.00"))


def test_liability_value_is_rounded_once_per_product(oil, hq_admin, hq_approver, dept001):
    batch = batch_issued(oil, requested_by=hq_admin, approver=hq_approver, quantity=2, units=3, price="100.00")
    first, second = sold(batch, store=dept001, user=hq_admin)
    vouchers.voucher_redeem(code=first.code, quantity=1, receipt_no="R-1", store=dept001)
    vouchers.voucher_redeem(code=second.code, quantity=1, receipt_no="R-2", store=dept001)

    [row] = vouchers.voucher_liability()

    assert row.active_units == 4 and row.active_value == D("133.33")


def test_settlement_counts_redeemed_units_per_redeeming_company_in_the_period(issued_batch, dept001, super001,
                                                                             hq_admin):
    # given: redemptions at two stores today, one yesterday (outside the period)
    first, second = sold(issued_batch, store=dept001, user=hq_admin, count=2)
    vouchers.voucher_redeem(code=first.code, quantity=3, receipt_no="R-1", store=dept001)
    vouchers.voucher_redeem(code=first.code, quantity=2, receipt_no="R-2", store=dept001)
    vouchers.voucher_redeem(code=second.code, quantity=4, receipt_no="S-1", store=super001)
    today = timezone.localdate()
    start_of_today = timezone.make_aware(timezone.datetime.combine(today, timezone.datetime.min.time()))
    vouchers.voucher_post(voucher=second, kind=VoucherLedgerEntry.Kind.REDEEM, quantity=-1, store=super001,
                          receipt_no="S-0", created_at=start_of_today - timedelta(microseconds=1))
    # when
    rows = vouchers.voucher_settlement(date_from=today, date_to=today)
    # then
    by_company = {row.legal_entity_code: row for row in rows}
    assert set(by_company) == {dept001.legal_entity.code, super001.legal_entity.code}
    assert by_company[dept001.legal_entity.code].units == 5
    assert by_company[dept001.legal_entity.code].amount == D("290.00")
    assert by_company[super001.legal_entity.code].units == 4
    assert by_company[super001.legal_entity.code].amount == D("232.00")
    yesterday = vouchers.voucher_settlement(date_from=today - timedelta(days=1), date_to=today - timedelta(days=1))
    assert [(row.units, row.amount) for row in yesterday] == [(1, D("58.00"))]


# --- check_ledgers ------------------------------------------------------------------------------------------


def test_check_ledgers_counts_the_vouchers(active_voucher, dept001):
    vouchers.voucher_redeem(code=active_voucher.code, quantity=4, receipt_no="R-1", store=dept001)
    out = StringIO()

    call_command("check_ledgers", stdout=out)

    from core.ledgers import ledgers_check

    assert ledgers_check(only=["cards.voucher_remaining"]).per_check == {"cards.voucher_remaining": 5}


@pytest.mark.ledgers_broken
def test_check_ledgers_catches_a_remaining_its_ledger_does_not_explain(active_voucher):
    Voucher.objects.filter(pk=active_voucher.pk).update(remaining=4)
    out = StringIO()

    with pytest.raises(CommandError):
        call_command("check_ledgers", stdout=out)

    assert f"voucher {active_voucher.code} (id {active_voucher.pk}): balance 4, ledger 10" in out.getvalue()


# --- demo data ----------------------------------------------------------------------------------------------


def test_the_voucher_demo_issues_a_batch_once(reference_stores, hq_admin, hq_approver, django_user_model):
    from cards.demo.vouchers import seed_voucher_demo

    first = seed_voucher_demo(user=hq_admin, approver=hq_approver)
    second = seed_voucher_demo(user=hq_admin, approver=hq_approver)

    assert first["created"] and not second["created"]
    assert first["batch"].pk == second["batch"].pk
    batch = first["batch"]
    assert (batch.status, batch.quantity, batch.units) == (VoucherBatch.Status.ISSUED, 50, 2)
    assert batch.vouchers.count() == 50 and second["vouchers"] == 50
    assert first["product"].unit == "桶" and "金龙鱼" in first["product"].name
    assert ApprovalRequest.objects.get(action=vouchers.VOUCHER_BATCH_ISSUE).status == ApprovalRequest.Status.APPROVED
    assert VoucherBatch.objects.count() == 1 and Supplier.objects.count() == 1


def test_the_voucher_demo_without_an_approver_generates_directly(reference_stores, hq_admin):
    from cards.demo.vouchers import seed_voucher_demo

    result = seed_voucher_demo(user=hq_admin)

    assert result["batch"].status == VoucherBatch.Status.ISSUED and result["vouchers"] == 50
    assert not ApprovalRequest.objects.exists()


def test_domain_errors_carry_the_contract_codes():
    assert issubclass(vouchers.VoucherInvalid, DomainError)
    assert vouchers.VoucherInvalid.code == "validation_error"
    assert (vouchers.VoucherOverfilled.code, vouchers.VoucherOverfilled.status) == ("limit_exceeded", 422)
