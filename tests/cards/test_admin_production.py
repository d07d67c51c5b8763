"""The admin of production batches, transfers and the stock overview, through the Django test client."""

import csv
import io

import pytest
from django.contrib.messages import ERROR, SUCCESS
from openpyxl import load_workbook

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from cards.models import Card, CardTransfer, ProductionBatch
from cards.services.production import (
    batch_create,
    batch_printer_file_issue,
    batch_receive,
    batch_submit,
    card_numbers_parse,
    transfer_create,
    transfer_send,
)

BATCHES = "/admin/cards/productionbatch/"
TRANSFERS = "/admin/cards/cardtransfer/"
STOCK = f"{BATCHES}stock/"


def messages_of(response) -> list[tuple[int, str]]:
    return [(message.level, str(message.message)) for message in response.context["messages"]]


def produced(product, quantity, *, requester, approver) -> ProductionBatch:
    batch = batch_create(product=product, quantity=quantity, face_value="100.00", vendor="东方卡业",
                         requested_by=requester)
    approval_request_approve(approval_request=batch_submit(batch=batch, requested_by=requester), approver=approver)
    batch.refresh_from_db()
    return batch


def in_stock(product, quantity, *, requester, approver) -> ProductionBatch:
    batch = produced(product, quantity, requester=requester, approver=approver)
    batch_printer_file_issue(batch=batch, user=approver)
    return batch_receive(batch=batch, user=approver)


@pytest.fixture(autouse=True)
def english_pages(client):
    """Pages and messages in English, whatever the translations say."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


@pytest.fixture
def dept_clerk(make_staff, dept001):
    return make_staff("dept_cards", group="卡务运营", stores=[dept001])


@pytest.fixture
def super_clerk(make_staff, super001):
    return make_staff("super_cards", group="卡务运营", stores=[super001])


# --- batches ----------------------------------------------------------------------------------------------


def test_batch_form_names_a_wrong_face_value_and_creates_a_valid_draft(client, hq_admin, stored_product):
    client.force_login(hq_admin)
    data = {"product": stored_product.pk, "quantity": "50", "face_value": "300.00", "vendor": "东方卡业", "note": ""}
    response = client.post(f"{BATCHES}add/", data)
    assert response.status_code == 200
    assert "300.00 is not a face value of STORED" in str(response.context["adminform"].form.errors["face_value"])
    assert not ProductionBatch.objects.exists()
    response = client.post(f"{BATCHES}add/", {**data, "face_value": "500.00"}, follow=True)
    batch = ProductionBatch.objects.get()
    assert (batch.status, batch.quantity, batch.requested_by) == (ProductionBatch.Status.DRAFT, 50, hq_admin)
    assert response.redirect_chain[-1][0] == f"{BATCHES}{batch.pk}/change/"


def test_store_staff_cannot_create_batches(client, dept001_manager, dept_clerk, stored_product):
    for user in (dept001_manager, dept_clerk):
        client.force_login(user)
        assert client.get(f"{BATCHES}add/").status_code == 403
        assert client.get(BATCHES).status_code == 200


def test_submit_button_asks_for_approval(client, hq_admin, stored_product):
    batch = batch_create(product=stored_product, quantity=5, face_value="100.00", vendor="V", requested_by=hq_admin)
    client.force_login(hq_admin)
    page = client.get(f"{BATCHES}{batch.pk}/change/")
    assert "Submit for approval" in page.content.decode()
    response = client.post(f"{BATCHES}{batch.pk}/submit/", follow=True)
    assert messages_of(response)[0][0] == SUCCESS
    batch.refresh_from_db()
    assert batch.status == ProductionBatch.Status.PENDING
    assert ApprovalRequest.objects.get().status == ApprovalRequest.Status.PENDING
    response = client.post(f"{BATCHES}{batch.pk}/submit/", follow=True)
    assert messages_of(response) == [(ERROR, f"This cannot be done: batch {batch.batch_no} is waiting for approval; "
                                             "only a draft can be submitted for approval.")]


def test_printer_file_downloads_once_for_the_permitted(client, hq_admin, hq_approver, hq_finance, stored_product):
    batch = produced(stored_product, 30, requester=hq_admin, approver=hq_approver)
    client.force_login(hq_finance)
    assert client.post(f"{BATCHES}{batch.pk}/printer-file/").status_code == 403
    client.force_login(hq_approver)
    assert client.get(f"{BATCHES}{batch.pk}/printer-file/").status_code == 405
    response = client.post(f"{BATCHES}{batch.pk}/printer-file/")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    assert f"printer-{batch.batch_no}.csv" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["card_no"] for row in rows] == list(
        Card.objects.filter(batch=batch).order_by("card_no").values_list("card_no", flat=True))
    again = client.post(f"{BATCHES}{batch.pk}/printer-file/", follow=True)
    assert again.redirect_chain[-1][0] == f"{BATCHES}{batch.pk}/change/"
    [(level, message)] = messages_of(again)
    assert level == ERROR and "already handed out" in message and "only once" in message
    batch.refresh_from_db()
    assert batch.printer_file_by == hq_approver


def test_receive_button_after_the_printer_file(client, hq_admin, hq_approver, stored_product):
    batch = produced(stored_product, 6, requester=hq_admin, approver=hq_approver)
    client.force_login(hq_admin)
    response = client.post(f"{BATCHES}{batch.pk}/receive/", follow=True)
    assert "printer file has not been handed out" in messages_of(response)[0][1]
    batch_printer_file_issue(batch=batch, user=hq_approver)
    assert "Receive into headquarters" in client.get(f"{BATCHES}{batch.pk}/change/").content.decode()
    response = client.post(f"{BATCHES}{batch.pk}/receive/", follow=True)
    assert messages_of(response)[0][0] == SUCCESS
    assert set(Card.objects.filter(batch=batch).values_list("stock_status", flat=True)) == {Card.Stock.IN_STOCK}


def test_cancel_action_on_the_list(client, hq_admin, stored_product):
    batches = [batch_create(product=stored_product, quantity=2, face_value="100.00", vendor="V",
                            requested_by=hq_admin) for _ in range(2)]
    client.force_login(hq_admin)
    response = client.post(BATCHES, {"action": "cancel_selected", "_selected_action": [b.pk for b in batches]},
                           follow=True)
    assert messages_of(response) == [(SUCCESS, "2 batches done.")]
    assert set(ProductionBatch.objects.values_list("status", flat=True)) == {ProductionBatch.Status.CANCELLED}


# --- transfers --------------------------------------------------------------------------------------------


def test_transfer_created_from_ranges_and_lists(client, hq_admin, hq_approver, stored_product, dept001):
    batch = in_stock(stored_product, 8, requester=hq_admin, approver=hq_approver)
    numbers = list(Card.objects.filter(batch=batch).order_by("card_no").values_list("card_no", flat=True))
    client.force_login(hq_admin)
    data = {"from_store": "", "to_store": dept001.pk, "cards": f"{numbers[0]}-{numbers[3]}\n86109999", "note": ""}
    response = client.post(f"{TRANSFERS}add/", data)
    assert response.status_code == 200
    assert "no card with number 86109999" in str(response.context["form"].errors["cards"])
    assert not CardTransfer.objects.exists()
    response = client.post(f"{TRANSFERS}add/", {**data, "cards": f"{numbers[0]}-{numbers[3]}\n{numbers[6]}"},
                           follow=True)
    transfer = CardTransfer.objects.get()
    assert transfer.card_count == 5 and transfer.from_store is None
    page = response.content.decode()
    assert f"{numbers[0]} - {numbers[3]} (4)" in page and "Send" in page
    response = client.post(f"{TRANSFERS}{transfer.pk}/send/", follow=True)
    assert messages_of(response)[0][0] == SUCCESS
    assert Card.objects.filter(location=dept001, stock_status=Card.Stock.IN_TRANSIT).count() == 5


def test_store_staff_see_and_receive_only_their_stores_transfers(client, hq_admin, hq_approver, stored_product,
                                                                 dept001, dept_clerk, super_clerk):
    batch = in_stock(stored_product, 3, requester=hq_admin, approver=hq_approver)
    transfer = transfer_create(from_store=None, to_store=dept001, user=hq_admin,
                               selection=card_numbers_parse(f"{batch.first_card_no}-{batch.last_card_no}"))
    transfer_send(transfer=transfer, user=hq_admin)
    client.force_login(super_clerk)
    assert transfer.transfer_no not in client.get(TRANSFERS).content.decode()
    assert client.get(f"{TRANSFERS}{transfer.pk}/change/").status_code == 404
    assert client.post(f"{TRANSFERS}{transfer.pk}/receive/").status_code == 404
    client.force_login(dept_clerk)
    assert transfer.transfer_no in client.get(TRANSFERS).content.decode()
    response = client.post(f"{TRANSFERS}{transfer.pk}/receive/", follow=True)
    assert messages_of(response)[0][0] == SUCCESS
    transfer.refresh_from_db()
    assert transfer.status == CardTransfer.Status.RECEIVED and transfer.received_by == dept_clerk
    assert Card.objects.filter(location=dept001, stock_status=Card.Stock.IN_STOCK).count() == 3


def test_store_staff_send_only_from_their_own_store(client, dept_clerk, dept001, super001):
    client.force_login(dept_clerk)
    form = client.get(f"{TRANSFERS}add/").context["form"]
    assert list(form.fields["from_store"].queryset) == [dept001]
    response = client.post(f"{TRANSFERS}add/", {"from_store": "", "to_store": super001.pk,
                                               "cards": "8610000000000005"})
    assert "from_store" in response.context["form"].errors
    assert not CardTransfer.objects.exists()


# --- stock overview ---------------------------------------------------------------------------------------


def test_stock_overview_and_its_excel_export_are_scoped(client, hq_admin, hq_approver, stored_product, dept001,
                                                        dept_clerk):
    batch = in_stock(stored_product, 4, requester=hq_admin, approver=hq_approver)
    transfer = transfer_create(from_store=None, to_store=dept001, user=hq_admin,
                               selection=card_numbers_parse(batch.first_card_no))
    transfer_send(transfer=transfer, user=hq_admin)
    client.force_login(hq_admin)
    page = client.get(STOCK)
    assert [(row.location, row.stock_status, row.count) for row in page.context["rows"]] == [
        (None, "in_stock", 3), (dept001, "in_transit", 1)]
    workbook = load_workbook(io.BytesIO(client.get(STOCK, {"export": "xlsx"}).content), read_only=True)
    values = list(workbook.active.values)
    assert values[1][1] == "STORED" and values[1][5] == 3 and len(values) == 3
    client.force_login(dept_clerk)
    page = client.get(STOCK)
    assert [(row.location, row.count) for row in page.context["rows"]] == [(dept001, 1)]
    assert client.get(STOCK, {"location": "hq"}).context["form"].errors


def test_stock_overview_needs_the_card_view_permission(client, make_staff, dept001):
    clerk = make_staff("marketing", group="市场营销", stores=[dept001])
    client.force_login(clerk)
    assert client.get(STOCK).status_code == 403
