"""Card production (制卡), numbering, the printer's file, receipt into stock and transfers to stores."""

import csv
import io
import threading
from decimal import Decimal

import pytest
from django.db import connection
from stdnum import luhn

from approvals.errors import ApproverNotPermitted, SelfApprovalForbidden
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from cards.errors import (
    BatchInvalid,
    CardOperationRefused,
    InvalidPin,
    PrinterFileAlreadyHandedOut,
    StockForbidden,
    TransferInvalid,
)
from cards.models import Card, CardNumberCounter, CardTransfer, CardTransferItem, ProductionBatch
from cards.queries import card_ranges, stock_overview
from cards.services.ledger import card_pin_check
from cards.services.production import (
    CARD_NO_LENGTH,
    batch_cancel,
    batch_create,
    batch_printer_file_issue,
    batch_receive,
    batch_submit,
    card_no_make,
    card_no_prefix,
    card_numbers_parse,
    transfer_cancel,
    transfer_create,
    transfer_receive,
    transfer_send,
)
from stores.models import Store


def produce(product, quantity, *, requester, approver, face_value="100.00") -> ProductionBatch:
    batch = batch_create(product=product, quantity=quantity, face_value=face_value, vendor="东方卡业",
                         requested_by=requester)
    approval = batch_submit(batch=batch, requested_by=requester)
    approval_request_approve(approval_request=approval, approver=approver)
    batch.refresh_from_db()
    return batch


def printer_rows(printer_file) -> list[dict]:
    text = "".join(printer_file.chunks(rows_per_chunk=7))
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def in_hq_stock(product, quantity, *, requester, approver) -> ProductionBatch:
    batch = produce(product, quantity, requester=requester, approver=approver)
    batch_printer_file_issue(batch=batch, user=approver)
    return batch_receive(batch=batch, user=approver)


def numbers(batch) -> list[str]:
    return list(Card.objects.filter(batch=batch).order_by("card_no").values_list("card_no", flat=True))


@pytest.fixture
def dept_stock_clerk(make_staff, dept001):
    """Store card staff at DEPT001 (card operations role: may receive and send stock)."""
    return make_staff("dept_cards", group="卡务运营", stores=[dept001])


@pytest.fixture
def super_stock_clerk(make_staff, super001):
    return make_staff("super_cards", group="卡务运营", stores=[super001])


# --- batches and approval ---------------------------------------------------------------------------


def test_batch_needs_one_of_the_products_face_values(stored_product, hq_admin):
    with pytest.raises(BatchInvalid) as error:
        batch_create(product=stored_product, quantity=10, face_value="300.00", vendor="东方卡业",
                     requested_by=hq_admin)
    assert "300.00 is not a face value of STORED" in error.value.fields["face_value"][0]
    with pytest.raises(BatchInvalid) as error:
        batch_create(product=stored_product, quantity=10, face_value=None, vendor="东方卡业", requested_by=hq_admin)
    assert "face_value" in error.value.fields
    assert not ProductionBatch.objects.exists()


def test_batch_of_a_product_without_face_values_has_none(stored_product, hq_admin):
    stored_product.face_values = []
    stored_product.save()
    with pytest.raises(BatchInvalid) as error:
        batch_create(product=stored_product, quantity=5, face_value="100.00", vendor="X", requested_by=hq_admin)
    assert "leave the face value empty" in error.value.fields["face_value"][0]
    batch = batch_create(product=stored_product, quantity=5, face_value="", vendor="X", requested_by=hq_admin)
    assert batch.face_value is None and batch.status == ProductionBatch.Status.DRAFT


def test_batch_details_are_checked_field_by_field(stored_product, hq_admin):
    with pytest.raises(BatchInvalid) as error:
        batch_create(product=stored_product, quantity=0, face_value="100.00", vendor=" ", requested_by=hq_admin)
    assert set(error.value.fields) == {"quantity", "vendor"}


def test_submitted_batch_waits_and_its_requester_cannot_approve(stored_product, hq_admin):
    batch = batch_create(product=stored_product, quantity=10, face_value="100.00", vendor="东方卡业",
                         requested_by=hq_admin)
    assert batch.batch_no.startswith("PB")
    approval = batch_submit(batch=batch, requested_by=hq_admin)
    batch.refresh_from_db()
    assert batch.status == ProductionBatch.Status.PENDING
    assert approval.status == ApprovalRequest.Status.PENDING and approval.amount == Decimal("1000.00")
    with pytest.raises(SelfApprovalForbidden):
        approval_request_approve(approval_request=approval, approver=hq_admin)
    assert not Card.objects.exists()


def test_approver_needs_the_production_permission(stored_product, hq_admin, hq_finance):
    batch = batch_create(product=stored_product, quantity=3, face_value="100.00", vendor="V", requested_by=hq_admin)
    approval = batch_submit(batch=batch, requested_by=hq_admin)
    with pytest.raises(ApproverNotPermitted):
        approval_request_approve(approval_request=approval, approver=hq_finance)
    assert not Card.objects.exists()


def test_approval_generates_consecutive_luhn_numbers(stored_product, hq_admin, hq_approver):
    batch = produce(stored_product, 25, requester=hq_admin, approver=hq_approver)
    cards = list(Card.objects.filter(batch=batch).order_by("card_no"))
    assert batch.status == ProductionBatch.Status.APPROVED and batch.generated_at is not None
    assert len(cards) == 25
    assert all(len(card.card_no) == CARD_NO_LENGTH and luhn.is_valid(card.card_no) for card in cards)
    serials = [int(card.card_no[:-1]) for card in cards]
    assert serials == list(range(serials[0], serials[0] + 25))
    assert (batch.first_card_no, batch.last_card_no) == (cards[0].card_no, cards[-1].card_no)
    assert cards[0].card_no.startswith(card_no_prefix(stored_product))
    assert {(c.status, c.stock_status, c.location_id, c.face_value, c.product_id, c.balance) for c in cards} == {
        (Card.Status.INACTIVE, Card.Stock.PRODUCED, None, Decimal("100.00"), stored_product.pk, Decimal("0.00"))}
    assert all(card.pin_hash == "" for card in cards)
    # Production is recorded on the batch's history, not one event per card.
    latest = batch.history.first()
    assert latest.history_user == hq_approver and "25 cards" in latest.history_change_reason


def test_two_batches_never_overlap(stored_product, hq_admin, hq_approver):
    first = produce(stored_product, 30, requester=hq_admin, approver=hq_approver)
    second = produce(stored_product, 20, requester=hq_admin, approver=hq_approver)
    assert not set(numbers(first)) & set(numbers(second))
    assert int(second.first_card_no[:-1]) == int(first.last_card_no[:-1]) + 1
    prefix = card_no_prefix(stored_product)
    assert CardNumberCounter.objects.get(prefix=prefix).next_serial == int(second.last_card_no[len(prefix):-1]) + 1


def test_numbering_steps_over_numbers_already_taken(stored_product, hq_admin, hq_approver, card_factory):
    prefix = card_no_prefix(stored_product)
    legacy = card_factory(stored_product, card_no=card_no_make(prefix, 3))
    batch = produce(stored_product, 5, requester=hq_admin, approver=hq_approver)
    assert legacy.card_no not in numbers(batch)
    assert batch.first_card_no == card_no_make(prefix, 4)


def test_bearer_cards_use_their_own_prefix(stored_product, bearer_product, hq_admin, hq_approver):
    stored = produce(stored_product, 2, requester=hq_admin, approver=hq_approver)
    bearer = produce(bearer_product, 2, requester=hq_admin, approver=hq_approver)
    assert stored.first_card_no[:4] != bearer.first_card_no[:4]


def test_a_setting_gives_a_product_its_own_prefix(stored_product, hq_admin, hq_approver, settings):
    settings.CARD_NO_PREFIXES = {"STORED": "8888"}
    batch = produce(stored_product, 3, requester=hq_admin, approver=hq_approver)
    assert batch.first_card_no.startswith("8888") and luhn.is_valid(batch.last_card_no)
    assert CardNumberCounter.objects.get(prefix="8888").next_serial == 4


def test_rejected_batch_makes_no_cards(stored_product, hq_admin, hq_approver):
    batch = batch_create(product=stored_product, quantity=5, face_value="500.00", vendor="V", requested_by=hq_admin)
    approval = batch_submit(batch=batch, requested_by=hq_admin)
    approval_request_reject(approval_request=approval, approver=hq_approver, comment="not this quarter")
    batch.refresh_from_db()
    assert batch.status == ProductionBatch.Status.REJECTED
    assert not Card.objects.exists()


def test_draft_and_pending_batches_can_be_cancelled(stored_product, hq_admin, hq_approver):
    draft = batch_create(product=stored_product, quantity=5, face_value="100.00", vendor="V", requested_by=hq_admin)
    assert batch_cancel(batch=draft, user=hq_admin).status == ProductionBatch.Status.CANCELLED
    pending = batch_create(product=stored_product, quantity=5, face_value="100.00", vendor="V", requested_by=hq_admin)
    approval = batch_submit(batch=pending, requested_by=hq_admin)
    with pytest.raises(ApproverNotPermitted):
        batch_cancel(batch=pending, user=hq_approver)
    pending.refresh_from_db()
    assert pending.status == ProductionBatch.Status.PENDING
    batch_cancel(batch=pending, user=hq_admin)
    pending.refresh_from_db()
    approval.refresh_from_db()
    assert pending.status == ProductionBatch.Status.CANCELLED
    assert approval.status == ApprovalRequest.Status.CANCELLED


def test_produced_batch_cannot_be_cancelled_or_submitted_again(stored_product, hq_admin, hq_approver):
    batch = produce(stored_product, 2, requester=hq_admin, approver=hq_approver)
    with pytest.raises(CardOperationRefused, match="only a draft or a batch waiting"):
        batch_cancel(batch=batch, user=hq_admin)
    with pytest.raises(CardOperationRefused, match="only a draft can be submitted"):
        batch_submit(batch=batch, requested_by=hq_admin)


# --- the printer's file -------------------------------------------------------------------------------


def test_printer_file_has_pins_that_match_their_hashes(pin_product, hq_admin, hq_approver):
    batch = produce(pin_product, 12, requester=hq_admin, approver=hq_approver, face_value="200.00")
    printer_file = batch_printer_file_issue(batch=batch, user=hq_approver)
    rows = printer_rows(printer_file)
    assert [row["card_no"] for row in rows] == numbers(batch)
    assert {(row["face_value"], row["product"], row["batch"]) for row in rows} == {
        ("200.00", "PINCARD", batch.batch_no)}
    cards = {card.card_no: card for card in Card.objects.filter(batch=batch)}
    for row in rows:
        assert len(row["pin"]) == 6 and row["pin"].isdigit()
        card_pin_check(cards[row["card_no"]], row["pin"])  # raises when the hash does not match
        assert row["pin"] not in cards[row["card_no"]].pin_hash
    wrong = f"{(int(rows[0]['pin']) + 1) % 1_000_000:06d}"
    with pytest.raises(InvalidPin):
        card_pin_check(cards[rows[0]["card_no"]], wrong)
    batch.refresh_from_db()
    assert batch.printer_file_by == hq_approver and batch.printer_file_at is not None
    assert "printer file" in batch.history.first().history_change_reason


def test_printer_file_is_handed_out_only_once(pin_product, hq_admin, hq_approver):
    batch = produce(pin_product, 3, requester=hq_admin, approver=hq_approver, face_value="200.00")
    batch_printer_file_issue(batch=batch, user=hq_approver)
    hashes = dict(Card.objects.filter(batch=batch).values_list("card_no", "pin_hash"))
    with pytest.raises(PrinterFileAlreadyHandedOut) as error:
        batch_printer_file_issue(batch=batch, user=hq_admin)
    assert "already handed out" in str(error.value) and "hq_approver" in str(error.value)
    assert dict(Card.objects.filter(batch=batch).values_list("card_no", "pin_hash")) == hashes


def test_printer_file_without_pins_and_with_escaped_cells(stored_product, hq_admin, hq_approver):
    stored_product.code = "=CMD"
    stored_product.save()
    batch = produce(stored_product, 2, requester=hq_admin, approver=hq_approver)
    rows = printer_rows(batch_printer_file_issue(batch=batch, user=hq_approver))
    assert list(rows[0]) == ["card_no", "face_value", "product", "batch"]
    assert rows[0]["product"] == "'=CMD"
    assert not Card.objects.filter(batch=batch).exclude(pin_hash="").exists()


def test_printer_file_needs_its_permission_and_a_numbered_batch(stored_product, hq_admin, hq_approver, hq_finance):
    batch = produce(stored_product, 2, requester=hq_admin, approver=hq_approver)
    with pytest.raises(StockForbidden):
        batch_printer_file_issue(batch=batch, user=hq_finance)
    draft = batch_create(product=stored_product, quantity=2, face_value="100.00", vendor="V", requested_by=hq_admin)
    with pytest.raises(CardOperationRefused, match="approved and numbered"):
        batch_printer_file_issue(batch=draft, user=hq_approver)
    batch.refresh_from_db()
    assert batch.printer_file_at is None


# --- receipt --------------------------------------------------------------------------------------------


def test_receipt_puts_the_cards_in_headquarters_stock(stored_product, hq_admin, hq_approver):
    batch = produce(stored_product, 4, requester=hq_admin, approver=hq_approver)
    with pytest.raises(CardOperationRefused, match="printer file has not been handed out"):
        batch_receive(batch=batch, user=hq_approver)
    batch_printer_file_issue(batch=batch, user=hq_approver)
    batch = batch_receive(batch=batch, user=hq_admin)
    assert batch.status == ProductionBatch.Status.RECEIVED and batch.received_by == hq_admin
    assert set(Card.objects.filter(batch=batch).values_list("stock_status", "location_id", "status")) == {
        (Card.Stock.IN_STOCK, None, Card.Status.INACTIVE)}
    with pytest.raises(CardOperationRefused, match="only an approved batch"):
        batch_receive(batch=batch, user=hq_admin)


def test_store_staff_and_staff_without_permission_cannot_receive_a_batch(
        stored_product, hq_admin, hq_approver, dept_stock_clerk, hq_finance):
    batch = produce(stored_product, 2, requester=hq_admin, approver=hq_approver)
    batch_printer_file_issue(batch=batch, user=hq_approver)
    with pytest.raises(StockForbidden, match="Only headquarters"):
        batch_receive(batch=batch, user=dept_stock_clerk)
    with pytest.raises(StockForbidden, match="permission"):
        batch_receive(batch=batch, user=hq_finance)
    assert not Card.objects.filter(stock_status=Card.Stock.IN_STOCK).exists()


# --- transfers ------------------------------------------------------------------------------------------


def test_card_numbers_parse_reads_ranges_and_lists():
    selection = card_numbers_parse("8610000000000005-8610000000000021\n8610000000000039, 8610000000000047 ")
    assert selection.ranges == (("8610000000000005", "8610000000000021"),)
    assert selection.numbers == ("8610000000000039", "8610000000000047")
    with pytest.raises(TransferInvalid) as error:
        card_numbers_parse("8610000000000021-8610000000000005\nabc")
    assert "8610000000000021-8610000000000005" in error.value.fields["cards"][0] and "abc" in \
        error.value.fields["cards"][0]
    with pytest.raises(TransferInvalid):
        card_numbers_parse("  ")


def test_transfer_from_headquarters_to_a_store(stored_product, hq_admin, hq_approver, dept001, dept_stock_clerk):
    batch = in_hq_stock(stored_product, 10, requester=hq_admin, approver=hq_approver)
    cards = numbers(batch)
    selection = card_numbers_parse(f"{cards[0]}-{cards[5]}\n{cards[8]}")
    transfer = transfer_create(from_store=None, to_store=dept001, selection=selection, user=hq_admin)
    assert transfer.transfer_no.startswith("TR") and transfer.card_count == 7
    assert CardTransferItem.objects.filter(transfer=transfer).count() == 7
    transfer = transfer_send(transfer=transfer, user=hq_admin)
    moved = Card.objects.filter(card_no__in=cards[:6] + [cards[8]])
    assert set(moved.values_list("stock_status", "location_id")) == {(Card.Stock.IN_TRANSIT, dept001.pk)}
    transfer = transfer_receive(transfer=transfer, user=dept_stock_clerk)
    assert transfer.status == CardTransfer.Status.RECEIVED and transfer.received_by == dept_stock_clerk
    assert set(moved.values_list("stock_status", "location_id")) == {(Card.Stock.IN_STOCK, dept001.pk)}
    assert Card.objects.filter(batch=batch, location__isnull=True, stock_status=Card.Stock.IN_STOCK).count() == 3


def test_transfer_refuses_cards_not_in_stock_at_the_source(stored_product, hq_admin, hq_approver, dept001,
                                                           super001):
    produced = produce(stored_product, 3, requester=hq_admin, approver=hq_approver)
    with pytest.raises(TransferInvalid) as error:
        transfer_create(from_store=None, to_store=dept001, user=hq_admin,
                        selection=card_numbers_parse(f"{produced.first_card_no}-{produced.last_card_no}"))
    assert "3 of the selected cards cannot be sent from headquarters" in error.value.fields["cards"][0]
    assert "produced, not yet received" in error.value.fields["cards"][0]
    batch = in_hq_stock(stored_product, 3, requester=hq_admin, approver=hq_approver)
    with pytest.raises(TransferInvalid) as error:
        transfer_create(from_store=super001, to_store=dept001, user=hq_admin,
                        selection=card_numbers_parse(batch.first_card_no))
    assert "is held at headquarters" in error.value.fields["cards"][0]
    with pytest.raises(TransferInvalid) as error:
        transfer_create(from_store=None, to_store=dept001, user=hq_admin, selection=card_numbers_parse("86109999"))
    assert "no card with number 86109999" in error.value.fields["cards"][0]
    assert not CardTransfer.objects.exists()


def test_card_in_an_open_transfer_cannot_join_another_until_cancelled(stored_product, hq_admin, hq_approver,
                                                                      dept001, super001):
    batch = in_hq_stock(stored_product, 4, requester=hq_admin, approver=hq_approver)
    everything = card_numbers_parse(f"{batch.first_card_no}-{batch.last_card_no}")
    first = transfer_create(from_store=None, to_store=dept001, selection=everything, user=hq_admin)
    with pytest.raises(TransferInvalid) as error:
        transfer_create(from_store=None, to_store=super001, selection=everything, user=hq_admin)
    assert "already in an open transfer" in error.value.fields["cards"][0]
    transfer_cancel(transfer=first, user=hq_admin)
    second = transfer_create(from_store=None, to_store=super001, selection=everything, user=hq_admin)
    assert second.card_count == 4


def test_sent_transfer_cannot_be_cancelled_or_sent_again(stored_product, hq_admin, hq_approver, dept001):
    batch = in_hq_stock(stored_product, 2, requester=hq_admin, approver=hq_approver)
    transfer = transfer_create(from_store=None, to_store=dept001, user=hq_admin,
                               selection=card_numbers_parse(f"{batch.first_card_no}-{batch.last_card_no}"))
    transfer_send(transfer=transfer, user=hq_admin)
    with pytest.raises(CardOperationRefused, match="not yet sent"):
        transfer_cancel(transfer=transfer, user=hq_admin)
    with pytest.raises(CardOperationRefused, match="only a draft can be sent"):
        transfer_send(transfer=transfer, user=hq_admin)


def test_send_refuses_when_a_card_left_the_stock_meanwhile(stored_product, hq_admin, hq_approver, dept001):
    batch = in_hq_stock(stored_product, 3, requester=hq_admin, approver=hq_approver)
    transfer = transfer_create(from_store=None, to_store=dept001, user=hq_admin,
                               selection=card_numbers_parse(f"{batch.first_card_no}-{batch.last_card_no}"))
    Card.objects.filter(card_no=batch.last_card_no).update(stock_status=Card.Stock.VOID)
    gone = f"1 card is no longer in stock at headquarters \\({batch.last_card_no}\\)"
    with pytest.raises(CardOperationRefused, match=gone):
        transfer_send(transfer=transfer, user=hq_admin)
    assert not Card.objects.filter(stock_status=Card.Stock.IN_TRANSIT).exists()
    transfer.refresh_from_db()
    assert transfer.status == CardTransfer.Status.DRAFT


def test_store_staff_work_only_at_their_own_stores(stored_product, hq_admin, hq_approver, dept001, super001,
                                                   dept_stock_clerk, super_stock_clerk):
    batch = in_hq_stock(stored_product, 4, requester=hq_admin, approver=hq_approver)
    cards = numbers(batch)
    with pytest.raises(StockForbidden, match="your own stores"):
        transfer_create(from_store=None, to_store=dept001, selection=card_numbers_parse(cards[0]),
                        user=dept_stock_clerk)
    to_dept = transfer_create(from_store=None, to_store=dept001, user=hq_admin,
                              selection=card_numbers_parse(f"{cards[0]} {cards[1]}"))
    with pytest.raises(StockForbidden):
        transfer_send(transfer=to_dept, user=dept_stock_clerk)
    transfer_send(transfer=to_dept, user=hq_admin)
    with pytest.raises(StockForbidden, match="receive cards at your own stores"):
        transfer_receive(transfer=to_dept, user=super_stock_clerk)
    transfer_receive(transfer=to_dept, user=dept_stock_clerk)
    # DEPT001's staff pass a card on to SUPER001, whose staff receive it.
    onward = transfer_create(from_store=dept001, to_store=super001, selection=card_numbers_parse(cards[0]),
                             user=dept_stock_clerk)
    with pytest.raises(StockForbidden):
        transfer_cancel(transfer=onward, user=super_stock_clerk)
    transfer_send(transfer=onward, user=dept_stock_clerk)
    transfer_receive(transfer=onward, user=super_stock_clerk)
    assert Card.objects.get(card_no=cards[0]).location == super001


def test_transfer_goes_to_another_open_store(stored_product, hq_admin, hq_approver, dept001):
    batch = in_hq_stock(stored_product, 1, requester=hq_admin, approver=hq_approver)
    Store.objects.filter(pk=dept001.pk).update(status=Store.Status.CLOSED)
    dept001.refresh_from_db()
    with pytest.raises(TransferInvalid) as error:
        transfer_create(from_store=None, to_store=dept001, selection=card_numbers_parse(batch.first_card_no),
                        user=hq_admin)
    assert "closed" in error.value.fields["to_store"][0]


# --- stock ----------------------------------------------------------------------------------------------


def test_stock_overview_counts_per_location_product_and_status(stored_product, bearer_product, hq_admin,
                                                               hq_approver, dept001, dept_stock_clerk):
    batch = in_hq_stock(stored_product, 5, requester=hq_admin, approver=hq_approver)
    produce(bearer_product, 2, requester=hq_admin, approver=hq_approver)
    cards = numbers(batch)
    transfer = transfer_create(from_store=None, to_store=dept001, user=hq_admin,
                               selection=card_numbers_parse(f"{cards[0]}-{cards[1]}"))
    transfer_send(transfer=transfer, user=hq_admin)

    def counts(user):
        return {(row.location.code if row.location else "HQ", row.product.code, row.stock_status, row.status):
                row.count for row in stock_overview(user=user)}

    assert counts(hq_admin) == {
        ("HQ", "BEARER", "produced", "inactive"): 2,
        ("HQ", "STORED", "in_stock", "inactive"): 3,
        ("DEPT001", "STORED", "in_transit", "inactive"): 2,
    }
    assert counts(dept_stock_clerk) == {("DEPT001", "STORED", "in_transit", "inactive"): 2}


def test_card_ranges_fold_consecutive_serials():
    runs, more = card_ranges([card_no_make("8610", n) for n in (1, 2, 3, 7, 9, 10)])
    assert runs == [(card_no_make("8610", 1), card_no_make("8610", 3), 3),
                    (card_no_make("8610", 7), card_no_make("8610", 7), 1),
                    (card_no_make("8610", 9), card_no_make("8610", 10), 2)]
    assert more is False
    assert card_ranges([card_no_make("8610", n) for n in (1, 3, 5)], limit=2) == (
        [(card_no_make("8610", 1), card_no_make("8610", 1), 1), (card_no_make("8610", 3), card_no_make("8610", 3), 1)],
        True)


# --- PostgreSQL: bulk COPY and concurrent batches -------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_approvals_reserve_separate_ranges(stored_product, hq_admin, hq_approver):
    approvals = []
    for _ in range(4):
        batch = batch_create(product=stored_product, quantity=500, face_value="100.00", vendor="V",
                             requested_by=hq_admin)
        approvals.append(batch_submit(batch=batch, requested_by=hq_admin))
    barrier = threading.Barrier(len(approvals), timeout=30)
    errors = []

    def approve(approval):
        try:
            barrier.wait()
            approval_request_approve(approval_request=approval, approver=hq_approver)
        except Exception as error:  # noqa: BLE001 - the test asserts none happened
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=approve, args=(approval,)) for approval in approvals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert Card.objects.count() == 2000
    assert Card.objects.values("card_no").distinct().count() == 2000
    for batch in ProductionBatch.objects.all():
        serials = sorted(int(n[:-1]) for n in numbers(batch))
        assert serials == list(range(serials[0], serials[0] + 500))
