"""A card's whole life across the card services: made, stocked, sold, spent, refunded, lost and replaced."""

from datetime import date
from decimal import Decimal

import pytest

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from cards.models import Card, CardLedgerEntry, CardTransfer, ProductionBatch, SaleOrder
from cards.services.operations import card_replace, card_report_lost
from cards.services.payments import card_debit, card_refund
from cards.services.production import (
    batch_create,
    batch_printer_file_issue,
    batch_receive,
    batch_submit,
    card_numbers_parse,
    transfer_create,
    transfer_receive,
    transfer_send,
)
from cards.services.sales import PartyInput, PaymentInput, SaleInput, SaleLineInput, sale_walk_in
from core.ledgers import ledgers_check
from tests.membership.conftest import resident_id

pytestmark = pytest.mark.django_db


def test_a_registered_card_from_production_to_replacement(
    stored_product, super001, hq_admin, hq_approver, super001_manager
):
    # Production: a second person approves, the numbers are made, the printer gets its file, HQ receives.
    batch = batch_create(product=stored_product, quantity=5, face_value=Decimal("500.00"), vendor="某某制卡厂",
                         requested_by=hq_admin)
    batch_submit(batch=batch, requested_by=hq_admin, reason="门店备货")
    request = ApprovalRequest.objects.get(action="cards.batch_produce", object_id=str(batch.pk))
    approval_request_approve(approval_request=request, approver=hq_approver)
    batch.refresh_from_db()
    assert batch.status == ProductionBatch.Status.APPROVED
    numbers = list(Card.objects.filter(batch=batch).order_by("card_no").values_list("card_no", flat=True))
    assert len(numbers) == 5 and (numbers[0], numbers[-1]) == (batch.first_card_no, batch.last_card_no)

    printer_file = batch_printer_file_issue(batch=batch, user=hq_admin)
    assert all(number in "".join(printer_file.chunks()) for number in numbers)
    batch_receive(batch=batch, user=hq_admin)

    # Stock: three cards go to SUPER001 and are received there.
    transfer = transfer_create(from_store=None, to_store=super001,
                               selection=card_numbers_parse(f"{numbers[0]}-{numbers[2]}"), user=hq_admin)
    transfer_send(transfer=transfer, user=hq_admin)
    transfer_receive(transfer=transfer, user=super001_manager)
    assert CardTransfer.objects.get(pk=transfer.pk).status == CardTransfer.Status.RECEIVED
    assert set(Card.objects.filter(location=super001, stock_status=Card.Stock.IN_STOCK)
               .values_list("card_no", flat=True)) == set(numbers[:3])

    # A walk-in customer buys the first card at the desk: a registered card, so the buyer is recorded.
    buyer = PartyInput(name="张秀英", id_type=SaleOrder.IdType.RESIDENT_ID, id_number=resident_id(date(1950, 3, 12)),
                       phone="13800138000")
    order = sale_walk_in(
        data=SaleInput(store=super001, buyer=buyer, lines=[SaleLineInput(first=numbers[0])]),
        payments=[PaymentInput(method="cash", amount=Decimal("500.00"))], actor=super001_manager,
    )
    assert order.status == SaleOrder.Status.COMPLETED and order.channel == SaleOrder.Channel.WALK_IN
    card = Card.objects.get(card_no=numbers[0])
    assert (card.status, card.balance, card.sold_store, card.issuer) == (
        Card.Status.ACTIVE, Decimal("500.00"), super001, super001.format.legal_entity)

    # It pays at SUPER001's till and part of the basket comes back.
    payment = card_debit(card_no=card.card_no, amount="120.00", receipt_no="S-0001", store=super001)
    refund = card_refund(card_no=card.card_no, amount="20.00", receipt_no="S-0002",
                         original_transaction_id=payment.transaction_id, store=super001)
    assert refund.balance_after == Decimal("400.00")

    # Lost, then replaced by another card of the store's stock: the balance moves over whole.
    card_report_lost(card=card, holder_name="张秀英", id_type=SaleOrder.IdType.RESIDENT_ID,
                     id_number=buyer.id_number, actor=super001_manager, store=super001)
    new = card_replace(card=card, new_card=Card.objects.get(card_no=numbers[1]), actor=super001_manager,
                       store=super001)
    card.refresh_from_db()
    new.refresh_from_db()
    assert (card.status, card.balance, card.replaced_by_id) == (Card.Status.CLOSED, Decimal("0.00"), new.pk)
    assert (new.status, new.balance) == (Card.Status.ACTIVE, Decimal("400.00"))
    kinds = list(CardLedgerEntry.objects.filter(card=card).order_by("pk").values_list("kind", "amount"))
    assert kinds == [("load", Decimal("500.00")), ("debit", Decimal("-120.00")), ("refund", Decimal("20.00")),
                     ("transfer_out", Decimal("-400.00"))]
    assert ledgers_check(only=["cards.balance"]).ok
