"""Card service operations: loss and replacement, unfreezing, returns, bearer expiry, e-cards, adjustments."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from approvals.errors import ApprovalAlreadyPending, SelfApprovalForbidden
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject, approval_request_submit
from cards.errors import (
    CardInvalid,
    CardLimitExceeded,
    CardNotFound,
    CardOperationRefused,
    CardRuleBroken,
    InsufficientBalance,
)
from cards.models import Card, CardEvent, CardLedgerEntry, CardProduct, CardReturn, SaleOrder
from cards.services import operations
from cards.services.ledger import card_pin_failure_record, card_post
from cards.tasks import cards_expire as cards_expire_task
from core.pii import pii_digest
from membership.models import Member
from stores.models import StaffProfile
from tests.membership.conftest import concurrently, register

HOLDER_ID = "11010519491231002X"
OTHER_ID = "310104198001011239"
THIRD_ID = "440306199002154562"
_serial = iter(range(1, 10**6))


@pytest.fixture
def clerk(make_staff):
    return make_staff("card_ops", group="卡务运营", scope=StaffProfile.Scope.HQ)


@pytest.fixture
def holder(db) -> Member:
    return register(name="李建国", phone="13800138000", id_type="resident_id", id_number=HOLDER_ID)


@pytest.fixture
def other_member(db) -> Member:
    return register(name="王芳", phone="13900139000", id_type="resident_id", id_number=OTHER_ID)


@pytest.fixture
def registered_card(card_factory, stored_product, holder, dept001) -> Card:
    return card_factory(stored_product, balance="300.00", member=holder, holder_name=holder.name, store=dept001)


@pytest.fixture
def ecard_product(card_rules) -> CardProduct:
    return CardProduct.objects.create(code="ECARD", name="电子卡", kind=CardProduct.Kind.REGISTERED,
                                      medium=CardProduct.Medium.ELECTRONIC, reloadable=True,
                                      max_balance=Decimal("5000.00"))


def blank_card(product: CardProduct, *, location=None) -> Card:
    """An unused card in stock, as production and a transfer leave it."""
    return Card.objects.create(card_no=f"8{next(_serial):014d}", product=product, status=Card.Status.INACTIVE,
                               stock_status=Card.Stock.IN_STOCK, location=location)


def balance(card: Card) -> Decimal:
    return Card.objects.values_list("balance", flat=True).get(pk=card.pk)


def identity(name="李建国", number=HOLDER_ID):
    return {"holder_name": name, "id_type": "resident_id", "id_number": number}


def report_lost(card, clerk, store=None):
    return operations.card_report_lost(card=card, actor=clerk, store=store, **identity())


# --- enquiry --------------------------------------------------------------------------------------------


def test_enquiry_shows_balance_status_expiry_and_last_entries(registered_card, dept001):
    card_post(card=registered_card, kind=CardLedgerEntry.Kind.DEBIT, amount=Decimal("-20.00"), store=dept001)

    enquiry = operations.card_balance_enquiry(card_no=registered_card.card_no)

    assert enquiry.balance == Decimal("280.00")
    assert enquiry.status == Card.Status.ACTIVE
    assert enquiry.expires_at is None
    assert enquiry.cap == Decimal("5000.00")
    assert [entry.amount for entry in enquiry.entries] == [Decimal("-20.00"), Decimal("300.00")]


def test_enquiry_of_an_unknown_or_malformed_number_is_refused(db):
    with pytest.raises(CardNotFound):
        operations.card_balance_enquiry(card_no="123456789")
    with pytest.raises(CardInvalid) as malformed:
        operations.card_balance_enquiry(card_no="12ab")
    assert "card_no" in malformed.value.fields


# --- loss report (挂失) -----------------------------------------------------------------------------------


def test_loss_report_freezes_a_registered_card_with_an_event(registered_card, clerk, dept001):
    report_lost(registered_card, clerk, store=dept001)

    registered_card.refresh_from_db()
    assert registered_card.status == Card.Status.FROZEN
    assert registered_card.freeze_reason == Card.FreezeReason.LOST
    assert registered_card.balance == Decimal("300.00")
    event = registered_card.events.get(kind=CardEvent.Kind.LOST)
    assert (event.status_from, event.status_to, event.actor, event.store) == ("active", "frozen", clerk, dept001)


def test_loss_report_of_a_bearer_card_is_refused_naming_the_rule(card_factory, bearer_product, clerk):
    card = card_factory(bearer_product, balance="100.00")

    with pytest.raises(CardRuleBroken) as refused:
        report_lost(card, clerk)

    assert "only registered cards" in str(refused.value)
    assert "prepaid card rules" in str(refused.value)
    assert Card.objects.get(pk=card.pk).status == Card.Status.ACTIVE
    assert not card.events.exists()


@pytest.mark.parametrize(("name", "number"), [("李建国", OTHER_ID), ("王芳", HOLDER_ID)])
def test_loss_report_with_someone_elses_name_or_id_is_refused(registered_card, clerk, name, number):
    with pytest.raises(operations.HolderMismatch) as refused:
        operations.card_report_lost(card=registered_card, actor=clerk, **identity(name, number))

    assert refused.value.code == "forbidden"
    assert Card.objects.get(pk=registered_card.pk).status == Card.Status.ACTIVE


def test_loss_report_with_an_impossible_id_number_names_the_field(registered_card, clerk):
    with pytest.raises(CardInvalid) as refused:
        operations.card_report_lost(card=registered_card, actor=clerk, **identity(number="110105194912310021"))

    assert "check digit" in refused.value.fields["id_number"][0]


def test_the_buyer_on_the_sale_order_may_act_as_the_holder(card_factory, stored_product, clerk, dept001):
    order = SaleOrder.objects.create(
        order_no="S0001", channel=SaleOrder.Channel.WALK_IN, store=dept001, buyer_name="张秀英",
        buyer_id_type="resident_id", buyer_id_digest=pii_digest(THIRD_ID), created_by=clerk,
    )
    card = card_factory(stored_product, balance="50.00", sale_order=order)

    operations.card_report_lost(card=card, actor=clerk, **identity("张秀英", THIRD_ID))

    assert Card.objects.get(pk=card.pk).status == Card.Status.FROZEN


# --- replacement (补卡) ----------------------------------------------------------------------------------


def test_replacement_carries_the_balance_exactly_and_closes_the_old_card(
    registered_card, stored_product, clerk, dept001, ledgers_balanced
):
    report_lost(registered_card, clerk, store=dept001)
    new = blank_card(stored_product, location=dept001)

    operations.card_replace(card=registered_card, new_card=new, actor=clerk, store=dept001)

    old, new = Card.objects.get(pk=registered_card.pk), Card.objects.get(pk=new.pk)
    assert (old.status, old.balance, old.replaced_by_id) == (Card.Status.CLOSED, Decimal("0.00"), new.pk)
    assert (new.status, new.balance, new.member_id) == (Card.Status.ACTIVE, Decimal("300.00"), old.member_id)
    assert (new.stock_status, new.location, new.holder_name) == (Card.Stock.SOLD, None, "李建国")
    out = old.ledger_entries.get(kind=CardLedgerEntry.Kind.TRANSFER_OUT)
    into = new.ledger_entries.get(kind=CardLedgerEntry.Kind.TRANSFER_IN)
    assert (out.amount, out.balance_after, into.amount, into.balance_after) == (
        Decimal("-300.00"), Decimal("0.00"), Decimal("300.00"), Decimal("300.00"))
    assert old.events.filter(kind=CardEvent.Kind.REPLACED, status_to="closed").exists()
    assert new.events.filter(kind=CardEvent.Kind.ACTIVATED, status_to="active").exists()
    ledgers_balanced()


def test_a_card_not_reported_lost_is_not_replaced(registered_card, stored_product, clerk, dept001):
    new = blank_card(stored_product, location=dept001)

    with pytest.raises(CardOperationRefused):
        operations.card_replace(card=registered_card, new_card=new, actor=clerk, store=dept001)

    assert balance(registered_card) == Decimal("300.00")
    assert Card.objects.get(pk=new.pk).status == Card.Status.INACTIVE


def test_the_new_card_must_be_unused_and_at_the_store(registered_card, stored_product, card_factory, clerk, dept001,
                                                      super001):
    report_lost(registered_card, clerk)
    sold = card_factory(stored_product)
    elsewhere = blank_card(stored_product, location=super001)

    for new in (sold, elsewhere, registered_card):
        with pytest.raises(CardInvalid) as refused:
            operations.card_replace(card=registered_card, new_card=new, actor=clerk, store=dept001)
        assert "new_card_no" in refused.value.fields
    assert Card.objects.get(pk=registered_card.pk).status == Card.Status.FROZEN


def test_a_registered_card_is_not_replaced_by_a_bearer_card(registered_card, bearer_product, clerk):
    report_lost(registered_card, clerk)

    with pytest.raises(CardInvalid):
        operations.card_replace(card=registered_card, new_card=blank_card(bearer_product), actor=clerk)


def test_replacement_by_an_e_card(registered_card, ecard_product, clerk, dept001):
    report_lost(registered_card, clerk)
    ecard = blank_card(ecard_product)

    new = operations.card_replace(card=registered_card, new_card=ecard, actor=clerk, store=dept001)

    assert (new.pk, balance(new)) == (ecard.pk, Decimal("300.00"))
    assert Card.objects.get(pk=ecard.pk).member_id == registered_card.member_id


def test_a_new_card_whose_limit_is_below_the_balance_moves_nothing(registered_card, clerk, card_rules):
    small = CardProduct.objects.create(code="SMALL", name="小额卡", kind=CardProduct.Kind.REGISTERED,
                                       max_balance=Decimal("100.00"))
    report_lost(registered_card, clerk)
    new = blank_card(small)

    with pytest.raises(CardLimitExceeded):
        operations.card_replace(card=registered_card, new_card=new, actor=clerk)

    assert balance(registered_card) == Decimal("300.00")
    assert Card.objects.get(pk=registered_card.pk).status == Card.Status.FROZEN
    assert Card.objects.get(pk=new.pk).status == Card.Status.INACTIVE
    assert not CardLedgerEntry.objects.filter(kind__startswith="transfer").exists()


def test_a_card_pays_is_refunded_reported_lost_and_replaced_with_its_balance(
    registered_card, stored_product, clerk, super001, dept001, ledgers_balanced
):
    # given: payments made as the POS service does (card_post), at SUPER001
    card_post(card=registered_card, kind=CardLedgerEntry.Kind.DEBIT, amount=Decimal("-120.50"), store=super001,
              receipt_no="R-1")
    card_post(card=registered_card, kind=CardLedgerEntry.Kind.REFUND, amount=Decimal("20.50"), store=super001,
              receipt_no="R-2", cap=Decimal("5000.00"))
    # when
    report_lost(registered_card, clerk, store=dept001)
    new = operations.card_replace(card=registered_card, new_card=blank_card(stored_product, location=dept001),
                                  actor=clerk, store=dept001)
    # then
    assert balance(new) == Decimal("200.00")
    assert balance(registered_card) == Decimal("0.00")
    card_post(card=new, kind=CardLedgerEntry.Kind.DEBIT, amount=Decimal("-200.00"), store=super001)
    assert balance(new) == Decimal("0.00")
    ledgers_balanced()


# --- unfreezing ----------------------------------------------------------------------------------------


def test_a_lost_card_found_again_is_unfrozen_after_an_id_check(registered_card, clerk):
    report_lost(registered_card, clerk)

    with pytest.raises(operations.HolderMismatch):
        operations.card_unfreeze(card=registered_card, actor=clerk, **identity(number=OTHER_ID))
    operations.card_unfreeze(card=registered_card, actor=clerk, **identity())

    card = Card.objects.get(pk=registered_card.pk)
    assert (card.status, card.freeze_reason) == (Card.Status.ACTIVE, "")
    assert card.events.filter(status_from="frozen", status_to="active", actor=clerk).exists()


def test_a_pin_locked_card_is_unfrozen_after_an_id_check_and_its_count_starts_again(
    card_factory, stored_product, holder, clerk
):
    card = card_factory(stored_product, balance="10.00", member=holder, pin="123456")
    for _attempt in range(5):
        card_pin_failure_record(card_id=card.pk)
    assert Card.objects.get(pk=card.pk).freeze_reason == Card.FreezeReason.PIN

    operations.card_unfreeze(card=card, actor=clerk, **identity())

    card.refresh_from_db()
    assert (card.status, card.pin_failures) == (Card.Status.ACTIVE, 0)


def test_a_bearer_card_is_unfrozen_only_with_a_note(card_factory, bearer_product, clerk):
    card = card_factory(bearer_product, balance="10.00", pin="123456")
    for _attempt in range(5):
        card_pin_failure_record(card_id=card.pk)

    with pytest.raises(CardInvalid) as refused:
        operations.card_unfreeze(card=card, actor=clerk)
    assert "note" in refused.value.fields
    operations.card_unfreeze(card=card, actor=clerk, note="card and receipt shown")

    assert Card.objects.get(pk=card.pk).status == Card.Status.ACTIVE


def test_an_active_card_is_not_unfrozen(registered_card, clerk):
    with pytest.raises(CardOperationRefused):
        operations.card_unfreeze(card=registered_card, actor=clerk, **identity())


# --- returns (退卡) --------------------------------------------------------------------------------------


def return_request(card, clerk, store, **changes):
    fields = {**identity(), "bank_account_name": "李建国", "bank_account_no": "6222 0210 0101 2345 678",
              "bank_name": "工商银行", "reason": "moving away", **changes}
    return operations.card_return_request(card=card, requested_by=clerk, store=store, **fields)


def approval_of(card_return) -> ApprovalRequest:
    return ApprovalRequest.objects.get(action=operations.CARD_RETURN, object_id=str(card_return.pk))


def test_a_return_waits_for_approval_and_moves_nothing(registered_card, clerk, dept001):
    card_return = return_request(registered_card, clerk, dept001)

    assert card_return.status == CardReturn.Status.PENDING
    assert (card_return.amount, card_return.holder_id_masked) == (Decimal("300.00"), "110***********002X")
    assert card_return.bank_account_no == "6222021001012345678"
    assert approval_of(card_return).status == ApprovalRequest.Status.PENDING
    assert balance(registered_card) == Decimal("300.00")
    assert Card.objects.get(pk=registered_card.pk).status == Card.Status.ACTIVE


def test_the_requester_cannot_approve_their_own_return(registered_card, clerk, dept001):
    card_return = return_request(registered_card, clerk, dept001)

    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=approval_of(card_return), approver=clerk)

    assert balance(registered_card) == Decimal("300.00")


def test_an_approved_return_pays_out_the_balance_and_closes_the_card(registered_card, clerk, hq_approver, dept001,
                                                                      ledgers_balanced):
    card_return = return_request(registered_card, clerk, dept001)

    approval_request_approve(approval_request=approval_of(card_return), approver=hq_approver)

    card = Card.objects.get(pk=registered_card.pk)
    assert (card.status, card.balance) == (Card.Status.CLOSED, Decimal("0.00"))
    entry = card.ledger_entries.get(kind=CardLedgerEntry.Kind.CLOSE)
    assert (entry.amount, entry.operator, entry.cause) == (Decimal("-300.00"), hq_approver, card_return)
    card_return.refresh_from_db()
    assert card_return.status == CardReturn.Status.PAID and card_return.paid_at is not None
    assert card.events.filter(kind=CardEvent.Kind.RETURNED, status_to="closed").exists()
    ledgers_balanced()


def test_a_rejected_return_leaves_the_card_as_it_was(registered_card, clerk, hq_approver, dept001):
    card_return = return_request(registered_card, clerk, dept001)

    approval_request_reject(approval_request=approval_of(card_return), approver=hq_approver, comment="no receipt")

    card = Card.objects.get(pk=registered_card.pk)
    assert (card.status, card.balance) == (Card.Status.ACTIVE, Decimal("300.00"))
    assert CardReturn.objects.get(pk=card_return.pk).status == CardReturn.Status.REJECTED


def test_a_return_to_an_account_in_another_name_is_refused_naming_the_rule(registered_card, clerk, dept001):
    with pytest.raises(CardRuleBroken) as refused:
        return_request(registered_card, clerk, dept001, bank_account_name="王芳")

    assert "in the holder's name" in str(refused.value)
    assert not CardReturn.objects.exists()
    assert not ApprovalRequest.objects.filter(action=operations.CARD_RETURN).exists()


def test_a_return_needs_the_holders_id(registered_card, clerk, dept001):
    with pytest.raises(operations.HolderMismatch):
        return_request(registered_card, clerk, dept001, id_number=OTHER_ID)
    with pytest.raises(CardInvalid) as missing:
        return_request(registered_card, clerk, dept001, id_number="")

    assert "id_number" in missing.value.fields
    assert not CardReturn.objects.exists()


def test_a_bearer_card_is_not_returned(card_factory, bearer_product, clerk, dept001):
    with pytest.raises(CardRuleBroken):
        return_request(card_factory(bearer_product, balance="10.00"), clerk, dept001)


def test_a_second_return_of_the_same_card_is_refused_while_one_waits(registered_card, clerk, dept001):
    return_request(registered_card, clerk, dept001)

    with pytest.raises(CardOperationRefused):
        return_request(registered_card, clerk, dept001)


def test_a_return_is_not_paid_when_the_balance_changed_since_the_request(registered_card, clerk, hq_approver,
                                                                         dept001):
    card_return = return_request(registered_card, clerk, dept001)
    card_post(card=registered_card, kind=CardLedgerEntry.Kind.DEBIT, amount=Decimal("-50.00"), store=dept001)

    with pytest.raises(CardOperationRefused):
        approval_request_approve(approval_request=approval_of(card_return), approver=hq_approver)

    assert balance(registered_card) == Decimal("250.00")
    assert CardReturn.objects.get(pk=card_return.pk).status == CardReturn.Status.PENDING


# --- bearer-card expiry, reactivation, exchange ---------------------------------------------------------


def test_expiry_marks_past_bearer_cards_expired_and_never_touches_the_balance(
    card_factory, bearer_product, stored_product, ledgers_balanced
):
    now = timezone.now()
    past = card_factory(bearer_product, balance="80.00", expires_at=now - timedelta(days=1))
    future = card_factory(bearer_product, balance="80.00", expires_at=now + timedelta(days=1))
    registered = card_factory(stored_product, balance="80.00", expires_at=now - timedelta(days=1))
    frozen = card_factory(bearer_product, balance="80.00", expires_at=now - timedelta(days=1),
                          status=Card.Status.FROZEN)

    assert cards_expire_task.delay().get() == 1

    assert Card.objects.get(pk=past.pk).status == Card.Status.EXPIRED
    assert [Card.objects.get(pk=card.pk).status for card in (future, registered, frozen)] == [
        Card.Status.ACTIVE, Card.Status.ACTIVE, Card.Status.FROZEN]
    assert all(balance(card) == Decimal("80.00") for card in (past, future, registered, frozen))
    assert past.ledger_entries.count() == 1
    assert past.events.filter(kind=CardEvent.Kind.EXPIRED, status_to="expired").exists()
    assert operations.cards_expire() == 0
    ledgers_balanced()


def expired_bearer(card_factory, bearer_product, amount="80.00"):
    return card_factory(bearer_product, balance=amount, status=Card.Status.EXPIRED,
                        expires_at=timezone.now() - timedelta(days=3))


def test_reactivation_makes_the_card_valid_for_at_least_the_minimum(card_factory, bearer_product, clerk,
                                                                    card_rules):
    card = expired_bearer(card_factory, bearer_product)

    operations.card_reactivate(card=card, actor=clerk)

    card.refresh_from_db()
    assert (card.status, card.balance) == (Card.Status.ACTIVE, Decimal("80.00"))
    assert card.expires_at >= timezone.now() + timedelta(days=card_rules.bearer_min_validity_months * 30)
    assert card.events.filter(kind=CardEvent.Kind.REACTIVATED, status_from="expired").exists()


def test_an_empty_or_active_card_is_not_reactivated(card_factory, bearer_product, clerk):
    for card in (expired_bearer(card_factory, bearer_product, amount="0.00"), card_factory(bearer_product)):
        with pytest.raises(CardOperationRefused):
            operations.card_reactivate(card=card, actor=clerk)


def test_an_expired_card_is_exchanged_with_its_balance(card_factory, bearer_product, clerk, dept001,
                                                       ledgers_balanced):
    card = expired_bearer(card_factory, bearer_product)
    new = blank_card(bearer_product, location=dept001)

    operations.card_exchange(card=card, new_card=new, actor=clerk, store=dept001)

    old, new = Card.objects.get(pk=card.pk), Card.objects.get(pk=new.pk)
    assert (old.status, old.balance, old.replaced_by_id) == (Card.Status.CLOSED, Decimal("0.00"), new.pk)
    assert (new.status, new.balance) == (Card.Status.ACTIVE, Decimal("80.00"))
    assert new.expires_at > timezone.now() + timedelta(days=3 * 365 - 2)
    assert old.events.filter(kind=CardEvent.Kind.EXCHANGED).exists()
    ledgers_balanced()


# --- e-cards ---------------------------------------------------------------------------------------------


def test_an_e_card_is_bound_and_given_to_another_member(card_factory, ecard_product, holder, other_member, clerk):
    card = card_factory(ecard_product, balance="60.00")

    operations.ecard_bind(card=card, member=holder, actor=clerk)
    operations.ecard_transfer(card=card, to_member=other_member, actor=clerk)

    card.refresh_from_db()
    assert (card.member_id, card.holder_name, card.balance) == (other_member.pk, "王芳", Decimal("60.00"))
    event = card.events.get(kind=CardEvent.Kind.TRANSFERRED)
    assert event.data == {"from_member_no": holder.member_no, "to_member_no": other_member.member_no}
    assert card.events.filter(kind=CardEvent.Kind.BOUND).exists()


def test_only_e_cards_are_transferred(registered_card, other_member, clerk):
    with pytest.raises(CardOperationRefused) as refused:
        operations.ecard_transfer(card=registered_card, to_member=other_member, actor=clerk)

    assert "only e-cards" in str(refused.value)
    assert Card.objects.get(pk=registered_card.pk).member_id != other_member.pk


@pytest.mark.parametrize("status", [Card.Status.FROZEN, Card.Status.CLOSED])
def test_a_frozen_or_closed_e_card_is_not_transferred(card_factory, ecard_product, holder, other_member, clerk,
                                                      status):
    card = card_factory(ecard_product, member=holder, status=status)

    with pytest.raises(CardOperationRefused):
        operations.ecard_transfer(card=card, to_member=other_member, actor=clerk)

    assert Card.objects.get(pk=card.pk).member_id == holder.pk


def test_an_e_card_already_bound_is_not_bound_again(card_factory, ecard_product, holder, other_member, clerk):
    card = card_factory(ecard_product, member=holder)

    with pytest.raises(CardOperationRefused):
        operations.ecard_bind(card=card, member=other_member, actor=clerk)


def test_after_a_transfer_the_buyer_is_no_longer_the_holder(card_factory, ecard_product, other_member, clerk,
                                                            dept001):
    order = SaleOrder.objects.create(
        order_no="S0002", channel=SaleOrder.Channel.WALK_IN, store=dept001, buyer_name="张秀英",
        buyer_id_type="resident_id", buyer_id_digest=pii_digest(THIRD_ID), created_by=clerk,
    )
    card = card_factory(ecard_product, balance="10.00", sale_order=order)
    operations.ecard_bind(card=card, member=other_member, actor=clerk)
    new_holder = register(name="赵敏", phone="13700137000", id_type="resident_id", id_number="320102198511110519")
    operations.ecard_transfer(card=card, to_member=new_holder, actor=clerk)

    with pytest.raises(operations.HolderMismatch):
        operations.card_report_lost(card=card, actor=clerk, **identity("张秀英", THIRD_ID))
    operations.card_report_lost(card=card, actor=clerk, **identity("赵敏", "320102198511110519"))
    assert Card.objects.get(pk=card.pk).status == Card.Status.FROZEN


# --- adjustments and write-offs -------------------------------------------------------------------------


def test_an_adjustment_moves_only_when_another_person_approves(registered_card, clerk, hq_approver,
                                                               ledgers_balanced):
    approval = operations.card_adjust_request(card=registered_card, amount="-12.50", reason="double charge",
                                              requested_by=clerk)

    assert approval.status == ApprovalRequest.Status.PENDING
    assert balance(registered_card) == Decimal("300.00")
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=approval, approver=clerk)
    approval_request_approve(approval_request=approval, approver=hq_approver)

    assert balance(registered_card) == Decimal("287.50")
    entry = registered_card.ledger_entries.get(kind=CardLedgerEntry.Kind.ADJUST)
    assert (entry.amount, entry.operator, entry.reason, entry.cause) == (
        Decimal("-12.50"), hq_approver, "double charge", approval)
    ledgers_balanced()


def test_an_adjustment_never_takes_a_card_below_zero_or_above_its_cap(registered_card, clerk):
    with pytest.raises(InsufficientBalance):
        operations.card_adjust_request(card=registered_card, amount="-300.01", reason="x", requested_by=clerk)
    with pytest.raises(CardLimitExceeded):
        operations.card_adjust_request(card=registered_card, amount="4700.01", reason="x", requested_by=clerk)

    assert not ApprovalRequest.objects.filter(action=operations.CARD_ADJUST).exists()


@pytest.mark.parametrize(("amount", "reason", "field"), [
    ("12.345", "ok", "amount"), ("abc", "ok", "amount"), ("0", "ok", "amount"), ("5.00", "  ", "reason"),
])
def test_an_adjustment_needs_an_amount_and_a_reason(registered_card, clerk, amount, reason, field):
    with pytest.raises(CardInvalid) as refused:
        operations.card_adjust_request(card=registered_card, amount=amount, reason=reason, requested_by=clerk)

    assert field in refused.value.fields


def test_an_adjustment_beyond_the_balance_at_approval_time_moves_nothing(registered_card, clerk, hq_approver,
                                                                         dept001):
    approval = operations.card_adjust_request(card=registered_card, amount="-300.00", reason="wrong load",
                                              requested_by=clerk)
    card_post(card=registered_card, kind=CardLedgerEntry.Kind.DEBIT, amount=Decimal("-1.00"), store=dept001)

    with pytest.raises(InsufficientBalance):
        approval_request_approve(approval_request=approval, approver=hq_approver)

    assert balance(registered_card) == Decimal("299.00")
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalRequest.Status.PENDING


def test_one_adjustment_waits_at_a_time(registered_card, clerk):
    operations.card_adjust_request(card=registered_card, amount="1.00", reason="a", requested_by=clerk)

    with pytest.raises(ApprovalAlreadyPending):
        operations.card_adjust_request(card=registered_card, amount="2.00", reason="b", requested_by=clerk)


def test_a_write_off_of_an_expired_balance_needs_approval(card_factory, bearer_product, clerk, hq_approver,
                                                          ledgers_balanced):
    card = expired_bearer(card_factory, bearer_product)

    approval = operations.card_write_off_request(card=card, reason="holder unreachable for years",
                                                 requested_by=clerk)
    assert balance(card) == Decimal("80.00")
    approval_request_approve(approval_request=approval, approver=hq_approver)

    assert balance(card) == Decimal("0.00")
    assert card.ledger_entries.get(kind=CardLedgerEntry.Kind.EXPIRE).amount == Decimal("-80.00")
    ledgers_balanced()


def test_an_active_card_is_not_written_off(card_factory, bearer_product, clerk):
    with pytest.raises(CardOperationRefused):
        operations.card_write_off_request(card=card_factory(bearer_product, balance="80.00"), reason="x",
                                          requested_by=clerk)


def test_a_registered_card_marked_expired_is_never_written_off(registered_card, clerk):
    # given: a registered card marked expired, as a legacy import once let in
    Card.objects.filter(pk=registered_card.pk).update(status=Card.Status.EXPIRED)

    # when / then: refused naming the rule, and nothing is asked for
    with pytest.raises(CardRuleBroken, match="registered cards never expire"):
        operations.card_write_off_request(card=registered_card, reason="unclaimed", requested_by=clerk)
    assert balance(registered_card) == Decimal("300.00")
    assert not ApprovalRequest.objects.filter(action=operations.CARD_WRITE_OFF).exists()


def test_a_write_off_of_a_registered_card_asked_before_the_rule_moves_nothing_when_approved(
        registered_card, clerk, hq_approver, ledgers_balanced):
    # given: a request filed for a registered card marked expired (before the service refused it)
    Card.objects.filter(pk=registered_card.pk).update(status=Card.Status.EXPIRED)
    approval = approval_request_submit(
        action=operations.CARD_WRITE_OFF, subject=registered_card, requested_by=clerk, reason="unclaimed",
        amount=Decimal("300.00"), payload={"card_id": registered_card.pk, "card_no": registered_card.card_no,
                                           "amount": "300.00"})

    # when: another person approves it
    with pytest.raises(CardRuleBroken):
        approval_request_approve(approval_request=approval, approver=hq_approver)

    # then: the balance stays the holder's
    assert balance(registered_card) == Decimal("300.00")
    assert not registered_card.ledger_entries.filter(kind=CardLedgerEntry.Kind.EXPIRE).exists()
    ledgers_balanced()


def test_a_bearer_card_marked_expired_within_its_validity_is_not_written_off(card_factory, bearer_product, clerk):
    card = card_factory(bearer_product, balance="80.00", status=Card.Status.EXPIRED,
                        expires_at=timezone.now() + timedelta(days=30))

    with pytest.raises(CardOperationRefused, match="valid until"):
        operations.card_write_off_request(card=card, reason="x", requested_by=clerk)


def test_a_registered_card_marked_expired_is_reactivated_without_an_expiry(registered_card, clerk):
    Card.objects.filter(pk=registered_card.pk).update(status=Card.Status.EXPIRED,
                                                      expires_at=timezone.now() - timedelta(days=1))

    operations.card_reactivate(card=registered_card, actor=clerk)

    card = Card.objects.get(pk=registered_card.pk)
    assert (card.status, card.expires_at, card.balance) == (Card.Status.ACTIVE, None, Decimal("300.00"))


def test_the_nightly_schedules_expire_bearer_cards():
    from core.schedules import NIGHTLY

    assert NIGHTLY["cards: expire bearer cards"][0] == "cards.cards_expire"


# --- under concurrency (PostgreSQL) ---------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_payments_racing_a_replacement_lose_no_money(card_factory, stored_product, holder, dept001, clerk,
                                                     ledgers_balanced):
    card = card_factory(stored_product, balance="100.00", member=holder, holder_name=holder.name, store=dept001)
    report_lost(card, clerk)
    new = blank_card(stored_product, location=dept001)

    def work(index: int):
        if index == 0:
            return operations.card_replace(card=card, new_card=new, actor=clerk, store=dept001)
        with transaction.atomic():
            return card_post(card=Card.objects.get(pk=card.pk), kind=CardLedgerEntry.Kind.DEBIT,
                             amount=Decimal("-10.00"), store=dept001)

    results = concurrently(12, work)

    assert isinstance(results[0], Card), results[0]
    debits = [result for result in results[1:] if isinstance(result, CardLedgerEntry)]
    assert all(isinstance(result, (CardLedgerEntry, InsufficientBalance)) for result in results[1:]), results
    assert balance(card) == Decimal("0.00")
    assert balance(new) + Decimal("10.00") * len(debits) == Decimal("100.00")
    assert Card.objects.get(pk=card.pk).replaced_by_id == new.pk
    ledgers_balanced()
