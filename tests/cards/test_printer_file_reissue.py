"""A printer file handed out again through approval, when the first download broke or the file was lost."""

import csv
import io

import pytest

from approvals.errors import SelfApprovalForbidden
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from cards.errors import CardOperationRefused, InvalidPin, StockForbidden
from cards.models import Card, ProductionBatch
from cards.services.ledger import card_pin_check
from cards.services.production import (
    PRINTER_FILE_REISSUE,
    batch_printer_file_issue,
    batch_printer_file_reissue_request,
    batch_receive,
)
from tests.cards.test_production import printer_rows, produce

BATCHES = "/admin/cards/productionbatch/"


def test_reissue_through_approval_draws_new_pins_and_voids_the_first(pin_product, hq_admin, hq_approver):
    batch = produce(pin_product, 5, requester=hq_admin, approver=hq_approver, face_value="200.00")
    first = {row["card_no"]: row["pin"] for row in printer_rows(batch_printer_file_issue(batch=batch, user=hq_admin))}
    request = batch_printer_file_reissue_request(batch=batch, requested_by=hq_admin, reason="下载中断，文件不完整")
    assert request.status == ApprovalRequest.Status.PENDING and request.action == PRINTER_FILE_REISSUE
    batch.refresh_from_db()
    assert batch.printer_file_at is not None  # nothing changes before approval
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=request, approver=hq_admin)
    approval_request_approve(approval_request=request, approver=hq_approver)
    batch.refresh_from_db()
    assert batch.printer_file_at is None and batch.printer_file_by is None
    assert "issued again" in batch.history.first().history_change_reason
    second = {row["card_no"]: row["pin"]
              for row in printer_rows(batch_printer_file_issue(batch=batch, user=hq_approver))}
    assert set(second) == set(first)
    cards = {card.card_no: card for card in Card.objects.filter(batch=batch)}
    for card_no, pin in second.items():
        card_pin_check(cards[card_no], pin)
    changed = [card_no for card_no in first if first[card_no] != second[card_no]]
    assert changed  # five six-digit PINs drawn again: at least one differs
    with pytest.raises(InvalidPin):
        card_pin_check(cards[changed[0]], first[changed[0]])


def test_reissue_is_refused_before_a_first_file_and_after_receipt(pin_product, hq_admin, hq_approver):
    batch = produce(pin_product, 2, requester=hq_admin, approver=hq_approver, face_value="200.00")
    with pytest.raises(CardOperationRefused, match="not been handed out yet"):
        batch_printer_file_reissue_request(batch=batch, requested_by=hq_admin, reason="r")
    batch_printer_file_issue(batch=batch, user=hq_admin)
    batch_receive(batch=batch, user=hq_admin)
    with pytest.raises(CardOperationRefused, match="before the batch is received"):
        batch_printer_file_reissue_request(batch=batch, requested_by=hq_admin, reason="r")
    assert not ApprovalRequest.objects.filter(action=PRINTER_FILE_REISSUE).exists()


def test_reissue_needs_the_printer_file_permission_and_a_reason(pin_product, hq_admin, hq_approver,
                                                                hq_finance):
    batch = produce(pin_product, 2, requester=hq_admin, approver=hq_approver, face_value="200.00")
    batch_printer_file_issue(batch=batch, user=hq_admin)
    with pytest.raises(StockForbidden):
        batch_printer_file_reissue_request(batch=batch, requested_by=hq_finance, reason="lost")
    with pytest.raises(Exception, match="reason"):
        batch_printer_file_reissue_request(batch=batch, requested_by=hq_admin, reason="  ")
    assert not ApprovalRequest.objects.filter(action=PRINTER_FILE_REISSUE).exists()


def test_rejected_or_late_reissue_changes_nothing(pin_product, hq_admin, hq_approver):
    batch = produce(pin_product, 2, requester=hq_admin, approver=hq_approver, face_value="200.00")
    batch_printer_file_issue(batch=batch, user=hq_admin)
    handed_out = ProductionBatch.objects.get(pk=batch.pk).printer_file_at
    request = batch_printer_file_reissue_request(batch=batch, requested_by=hq_admin, reason="lost at the printer")
    approval_request_reject(approval_request=request, approver=hq_approver, comment="文件已找到")
    assert ProductionBatch.objects.get(pk=batch.pk).printer_file_at == handed_out
    # Approved only after the batch was received: refused, the request stays pending.
    request = batch_printer_file_reissue_request(batch=batch, requested_by=hq_admin, reason="lost again")
    batch_receive(batch=batch, user=hq_admin)
    with pytest.raises(CardOperationRefused):
        approval_request_approve(approval_request=request, approver=hq_approver)
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.PENDING
    assert ProductionBatch.objects.get(pk=batch.pk).printer_file_at == handed_out


def test_admin_button_asks_for_the_file_again(client, pin_product, hq_admin, hq_approver):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    batch = produce(pin_product, 3, requester=hq_admin, approver=hq_approver, face_value="200.00")
    client.force_login(hq_admin)
    page = client.get(f"{BATCHES}{batch.pk}/change/").content.decode()
    assert "Ask to issue the printer file again" not in page
    response = client.post(f"{BATCHES}{batch.pk}/printer-file/")
    b"".join(response.streaming_content)
    page = client.get(f"{BATCHES}{batch.pk}/change/").content.decode()
    assert "Ask to issue the printer file again" in page
    response = client.post(f"{BATCHES}{batch.pk}/printer-file/again/", {"reason": "download broke"}, follow=True)
    assert "Another person must approve" in response.content.decode()
    request = ApprovalRequest.objects.get(action=PRINTER_FILE_REISSUE)
    assert request.reason == "download broke"
    approval_request_approve(approval_request=request, approver=hq_approver)
    response = client.post(f"{BATCHES}{batch.pk}/printer-file/")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert len(rows) == 3 and all(len(row["pin"]) == 6 for row in rows)


def test_admin_reissue_needs_the_permission(client, pin_product, hq_admin, hq_approver, hq_finance):
    batch = produce(pin_product, 2, requester=hq_admin, approver=hq_approver, face_value="200.00")
    batch_printer_file_issue(batch=batch, user=hq_admin)
    client.force_login(hq_finance)
    assert client.post(f"{BATCHES}{batch.pk}/printer-file/again/", {"reason": "x"}).status_code == 403
