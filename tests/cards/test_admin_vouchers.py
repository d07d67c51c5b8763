"""The admin of pickup vouchers: batches with their buttons and code file, vouchers, the ledger, the reports."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.messages import ERROR, SUCCESS
from django.utils import timezone
from openpyxl import load_workbook

from approvals.models import ApprovalRequest
from cards.models import Supplier, Voucher, VoucherBatch, VoucherLedgerEntry, VoucherProduct
from cards.services import vouchers
from tests.cards import test_vouchers as voucher_fixtures
from tests.cards.test_vouchers import sold

BATCHES = "/admin/cards/voucherbatch/"
VOUCHERS = "/admin/cards/voucher/"
LEDGER = "/admin/cards/voucherledgerentry/"
LIABILITY = f"{VOUCHERS}liability/"
SETTLEMENT = f"{VOUCHERS}settlement/"
D = Decimal

# The voucher fixtures, shared with tests/cards/test_vouchers.py.
active_voucher = voucher_fixtures.active_voucher
issued_batch = voucher_fixtures.issued_batch
oil = voucher_fixtures.oil
supplier = voucher_fixtures.supplier


@pytest.fixture(autouse=True)
def english_pages(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"


def messages_of(response) -> list[tuple[int, str]]:
    return [(message.level, str(message.message)) for message in response.context["messages"]]


def workbook_rows(response) -> list[list]:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    sheet = load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
    return [list(row) for row in sheet.iter_rows(values_only=True)]


@pytest.fixture
def redeemed(active_voucher, dept001, super001):
    """The 10-unit voucher: 3 units handed out at DEPT001, 2 at SUPER001."""
    vouchers.voucher_redeem(code=active_voucher.code, quantity=3, receipt_no="D-1", store=dept001)
    vouchers.voucher_redeem(code=active_voucher.code, quantity=2, receipt_no="S-1", store=super001)
    return active_voucher


# --- batches ------------------------------------------------------------------------------------------------


def test_hq_creates_a_draft_batch_through_the_form(client, hq_admin, oil):
    client.force_login(hq_admin)
    expires_on = timezone.localdate() + timedelta(days=60)

    response = client.post(f"{BATCHES}add/", {"product": oil.pk, "quantity": "20", "units": "2", "price": "138.00",
                                              "expires_on": expires_on.isoformat(), "note": "团购"}, follow=True)

    batch = VoucherBatch.objects.get()
    assert (batch.status, batch.quantity, batch.units, batch.price) == ("draft", 20, 2, D("138.00"))
    assert batch.requested_by == hq_admin
    assert (SUCCESS, f"Voucher batch {batch.batch_no} is a draft: submit it for approval to have its codes "
                     "generated.") in messages_of(response)


def test_the_form_names_a_bad_field(client, hq_admin, oil):
    client.force_login(hq_admin)

    response = client.post(f"{BATCHES}add/", {"product": oil.pk, "quantity": "20", "units": "2", "price": "138.00",
                                              "expires_on": timezone.localdate().isoformat()})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["expires_on"] == [
        "The last day of validity must be in the future."]
    assert not VoucherBatch.objects.exists()


def test_submit_then_approval_in_the_inbox_generates_the_codes(client, hq_admin, hq_approver, oil):
    batch = vouchers.voucher_batch_create(product=oil, quantity=3, units=1, price=D("50.00"),
                                          expires_on=timezone.localdate() + timedelta(days=9), requested_by=hq_admin)
    client.force_login(hq_admin)

    response = client.post(f"{BATCHES}{batch.pk}/submit/", follow=True)

    assert messages_of(response)[0][0] == SUCCESS
    request = ApprovalRequest.objects.get(action=vouchers.VOUCHER_BATCH_ISSUE)
    client.force_login(hq_approver)
    page = client.get(f"{BATCHES}{batch.pk}/change/")
    assert b"approval history" in page.content.lower() or b"Approval history" in page.content
    from approvals.services import approval_request_approve

    approval_request_approve(approval_request=request, approver=hq_approver)
    batch.refresh_from_db()
    assert batch.status == VoucherBatch.Status.ISSUED and batch.vouchers.count() == 3


def test_store_staff_cannot_create_or_submit_batches(client, dept001_manager, oil, hq_admin):
    batch = vouchers.voucher_batch_create(product=oil, quantity=3, units=1, price=D("50.00"),
                                          expires_on=timezone.localdate() + timedelta(days=9), requested_by=hq_admin)
    client.force_login(dept001_manager)

    assert client.get(f"{BATCHES}add/").status_code == 403
    assert client.post(f"{BATCHES}{batch.pk}/submit/").status_code == 403
    assert client.post(f"{BATCHES}{batch.pk}/codes/").status_code == 403
    batch.refresh_from_db()
    assert batch.status == VoucherBatch.Status.DRAFT


def test_cancel_button_cancels_a_draft(client, hq_admin, oil):
    batch = vouchers.voucher_batch_create(product=oil, quantity=3, units=1, price=D("50.00"),
                                          expires_on=timezone.localdate() + timedelta(days=9), requested_by=hq_admin)
    client.force_login(hq_admin)

    response = client.post(f"{BATCHES}{batch.pk}/cancel/", follow=True)

    batch.refresh_from_db()
    assert batch.status == VoucherBatch.Status.CANCELLED
    assert (SUCCESS, f"Voucher batch {batch.batch_no} is cancelled.") in messages_of(response)
    refused = client.post(f"{BATCHES}{batch.pk}/submit/", follow=True)
    assert messages_of(refused)[0][0] == ERROR


def test_list_actions_submit_and_report_refusals(client, hq_admin, oil, issued_batch):
    draft = vouchers.voucher_batch_create(product=oil, quantity=2, units=1, price=D("50.00"),
                                          expires_on=timezone.localdate() + timedelta(days=9), requested_by=hq_admin)
    client.force_login(hq_admin)

    response = client.post(BATCHES, {"action": "submit_selected", "_selected_action": [draft.pk, issued_batch.pk]},
                           follow=True)

    draft.refresh_from_db()
    assert draft.status == VoucherBatch.Status.PENDING
    levels = [level for level, _text in messages_of(response)]
    assert ERROR in levels and SUCCESS in levels


def test_the_code_file_is_excel_for_hq_and_each_download_is_recorded(client, hq_admin, issued_batch):
    client.force_login(hq_admin)
    page = client.get(f"{BATCHES}{issued_batch.pk}/change/")
    assert b"Download the codes for printing" in page.content

    first = client.post(f"{BATCHES}{issued_batch.pk}/codes/")
    second = client.post(f"{BATCHES}{issued_batch.pk}/codes/")

    assert first.status_code == second.status_code == 200
    assert "no-store" in first["Cache-Control"]
    rows = workbook_rows(first)
    assert rows[0][:3] == ["batch number", "serial in batch", "code"]
    codes = list(issued_batch.vouchers.order_by("serial").values_list("code", flat=True))
    assert [row[2] for row in rows[1:]] == codes
    assert all(isinstance(row[2], str) for row in rows[1:])
    assert rows[1][6:8] == [10, "桶"]
    reasons = list(issued_batch.history.filter(history_change_reason__startswith="code file downloaded")
                   .values_list("history_change_reason", "history_user__username"))
    assert reasons == [("code file downloaded by hq_admin", "hq_admin")] * 2


def test_the_code_file_needs_the_change_permission(client, hq_finance, issued_batch):
    client.force_login(hq_finance)

    assert client.get(f"{BATCHES}{issued_batch.pk}/change/").status_code == 200
    assert client.post(f"{BATCHES}{issued_batch.pk}/codes/").status_code == 403
    assert not issued_batch.history.filter(history_change_reason__startswith="code file").exists()


def test_no_code_file_before_the_codes_exist(client, hq_admin, oil):
    batch = vouchers.voucher_batch_create(product=oil, quantity=3, units=1, price=D("50.00"),
                                          expires_on=timezone.localdate() + timedelta(days=9), requested_by=hq_admin)
    client.force_login(hq_admin)

    response = client.post(f"{BATCHES}{batch.pk}/codes/", follow=True)

    assert messages_of(response)[0][0] == ERROR


# --- suppliers and products ---------------------------------------------------------------------------------


def test_hq_adds_a_supplier_and_a_product(client, hq_admin):
    client.force_login(hq_admin)

    client.post("/admin/cards/supplier/add/", {"code": "SUP9", "name": "伊利", "is_active": "on"})
    supplier = Supplier.objects.get(code="SUP9")
    client.post("/admin/cards/voucherproduct/add/", {"code": "MILK", "name": "纯牛奶 250ml×24", "sku": "6907992",
                                                     "unit": "箱", "supplier": supplier.pk,
                                                     "settlement_price": "45.00", "is_active": "on"})

    assert VoucherProduct.objects.get(code="MILK").supplier == supplier


def test_store_staff_read_suppliers_but_cannot_change_them(client, dept001_manager, supplier):
    client.force_login(dept001_manager)

    assert client.get("/admin/cards/supplier/").status_code == 200
    assert client.get("/admin/cards/supplier/add/").status_code == 403
    client.post(f"/admin/cards/supplier/{supplier.pk}/change/", {"code": "SUP01", "name": "changed"})
    supplier.refresh_from_db()
    assert supplier.name == "益海嘉里"


# --- vouchers and the ledger --------------------------------------------------------------------------------


def test_hq_finds_a_voucher_by_its_exact_code_and_sees_its_ledger(client, hq_admin, redeemed):
    client.force_login(hq_admin)

    listing = client.get(VOUCHERS, {"q": redeemed.code})
    unfiltered = client.get(VOUCHERS)
    page = client.get(f"{VOUCHERS}{redeemed.pk}/change/")

    assert list(listing.context["cl"].result_list) == [redeemed]
    assert redeemed.code.encode() not in unfiltered.content
    assert redeemed.code_masked.encode() in unfiltered.content
    assert redeemed.code.encode() in page.content
    assert b"D-1" in page.content and b"S-1" in page.content
    assert client.get(VOUCHERS, {"q": redeemed.code[:8]}).context["cl"].result_count == 0


def test_store_staff_see_vouchers_of_their_stores_and_find_any_by_its_exact_code(client, super001_manager, redeemed,
                                                                                issued_batch, dept001, hq_admin):
    # given: a voucher sold at DEPT001 and never redeemed at SUPER001
    [other] = sold(issued_batch, store=dept001, user=hq_admin, count=1)
    client.force_login(super001_manager)

    listing = client.get(VOUCHERS)
    found = client.get(VOUCHERS, {"q": other.code})

    assert list(listing.context["cl"].result_list) == [redeemed]
    assert list(found.context["cl"].result_list) == [other]
    # what is left on it, masked, and no link to a page the store may not open
    assert other.code_masked.encode() in found.content
    assert f"{VOUCHERS}{other.pk}/change/".encode() not in found.content
    assert f"{VOUCHERS}{redeemed.pk}/change/".encode() in listing.content


def test_store_staff_cannot_open_another_stores_voucher_even_after_finding_its_code(client, super001_manager,
                                                                                   issued_batch, dept001, hq_admin):
    # The page used to open for any voucher: its ledger named other stores' receipts and cashiers.
    [other] = sold(issued_batch, store=dept001, user=hq_admin, count=1)
    client.force_login(super001_manager)
    client.get(VOUCHERS, {"q": other.code})

    page = client.get(f"{VOUCHERS}{other.pk}/change/")

    assert page.status_code == 404
    assert other.code_masked.encode() not in page.content and other.sale_order.order_no.encode() not in page.content
    assert client.get(f"{VOUCHERS}{other.pk}/history/").status_code == 403
    assert client.post(f"{VOUCHERS}{other.pk}/change/", {"remaining": "0"}).status_code == 404
    assert Voucher.objects.get(pk=other.pk).remaining == 10


def test_a_redeeming_store_sees_only_its_own_ledger_rows_on_the_voucher_page(client, super001_manager, redeemed):
    client.force_login(super001_manager)

    page = client.get(f"{VOUCHERS}{redeemed.pk}/change/")

    content = page.content.decode()
    assert page.status_code == 200
    assert "S-1" in content
    assert "D-1" not in content and redeemed.sale_order.order_no not in content
    assert "sold by another store" in content
    assert redeemed.code not in content and redeemed.code_masked in content


def test_the_selling_store_sees_its_sale_and_its_own_ledger_rows_on_the_voucher_page(client, dept001_manager,
                                                                                     redeemed):
    client.force_login(dept001_manager)

    page = client.get(f"{VOUCHERS}{redeemed.pk}/change/")

    content = page.content.decode()
    assert page.status_code == 200
    assert "D-1" in content and redeemed.sale_order.order_no in content
    assert "S-1" not in content


def test_store_staff_see_only_their_stores_ledger_rows(client, super001_manager, redeemed):
    client.force_login(super001_manager)

    response = client.get(LEDGER)

    rows = list(response.context["cl"].result_list)
    assert [(row.kind, row.receipt_no) for row in rows] == [("redeem", "S-1")]


def test_the_ledger_exports_to_excel_with_masked_codes(client, hq_admin, redeemed):
    client.force_login(hq_admin)

    response = client.get(f"{LEDGER}export/", {"kind__exact": "redeem"})

    rows = workbook_rows(response)
    assert rows[0][:4] == ["time", "voucher", "product", "kind"]
    assert sorted((row[4], row[8]) for row in rows[1:]) == [(-3, "D-1"), (-2, "S-1")]
    assert all(row[1] == redeemed.code_masked for row in rows[1:])


def test_nobody_edits_ledger_rows(client, hq_admin, redeemed):
    client.force_login(hq_admin)
    entry = VoucherLedgerEntry.objects.filter(kind="redeem").first()

    assert client.get(f"{LEDGER}add/").status_code == 403
    assert client.post(f"{LEDGER}{entry.pk}/delete/").status_code == 403


# --- reports ------------------------------------------------------------------------------------------------


def test_liability_page_and_excel(client, hq_finance, redeemed, issued_batch, dept001, hq_admin):
    [expired] = sold(issued_batch, store=dept001, user=hq_admin, count=1)
    Voucher.objects.filter(pk=expired.pk).update(status=Voucher.Status.EXPIRED)
    client.force_login(hq_finance)

    page = client.get(LIABILITY)
    export = client.get(LIABILITY, {"export": "xlsx"})

    assert page.status_code == 200
    [row] = page.context["rows"]
    assert (row.active_units, row.active_value, row.expired_units, row.expired_value) == (5, D("150.00"), 10,
                                                                                          D("300.00"))
    rows = workbook_rows(export)
    header = rows.index(next(r for r in rows if r and r[0] == "supplier"))
    assert rows[header + 1][:2] == ["SUP01", "益海嘉里"]
    assert rows[header + 1][5:] == [1, 5, 150, 1, 10, 300]
    assert rows[header + 2][0] == "Total"


def test_settlement_page_and_excel_for_a_period(client, hq_finance, redeemed, dept001, super001):
    today = timezone.localdate().isoformat()
    client.force_login(hq_finance)

    page = client.get(SETTLEMENT, {"date_from": today, "date_to": today})
    export = client.get(SETTLEMENT, {"date_from": today, "date_to": today, "export": "xlsx"})

    assert {(row.legal_entity_code, row.units, row.amount) for row in page.context["rows"]} == {
        (dept001.legal_entity.code, 3, D("174.00")), (super001.legal_entity.code, 2, D("116.00"))}
    rows = workbook_rows(export)
    assert rows[1] == ["period", f"{today} – {today}"]
    total = rows[-1]
    assert total[0] == "Total" and total[7] == 5 and total[9] == 290


def test_settlement_refuses_a_period_ending_before_it_starts(client, hq_finance, redeemed):
    client.force_login(hq_finance)

    page = client.get(SETTLEMENT, {"date_from": "2026-02-01", "date_to": "2026-01-01"})

    assert page.context["form"].errors["date_to"] == ["The period ends before it starts."]
    assert page.context["rows"] == []


def test_reports_are_for_headquarters_only(client, dept001_manager, redeemed):
    client.force_login(dept001_manager)

    assert client.get(LIABILITY).status_code == 403
    assert client.get(SETTLEMENT).status_code == 403
    assert client.get(f"{LIABILITY}?export=xlsx").status_code == 403


def test_excel_cells_are_safe_from_formulas(client, hq_finance, redeemed):
    Supplier.objects.update(name="=HYPERLINK(\"http://x\")")
    client.force_login(hq_finance)

    rows = workbook_rows(client.get(LIABILITY, {"export": "xlsx"}))

    assert ["SUP01", "'=HYPERLINK(\"http://x\")"] in [row[:2] for row in rows]
