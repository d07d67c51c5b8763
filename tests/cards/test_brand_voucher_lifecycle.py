"""Issue 7 end to end: a brand programme from its SKU file to the brand's bill, and a pickup voucher from its
batch to two partial redemptions at two stores, through the services and the POS API as staff and tills use them.
"""

import io
import json
from datetime import timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.utils import timezone
from openpyxl import Workbook

from approvals.services import approval_request_approve
from cards.models import (
    Brand,
    BrandDiscount,
    CardProduct,
    CardTransaction,
    SaleOrder,
    Supplier,
    Voucher,
    VoucherProduct,
)
from cards.queries.brand_reports import statement_query, statement_rows, statement_totals
from cards.services.brands import programme_create, programme_submit, sku_list_confirm, sku_list_stage
from cards.services.sales import (
    PartyInput,
    PaymentInput,
    SaleInput,
    VoucherLineInput,
    sale_order_create,
    sale_order_pay,
    sale_order_submit,
)
from cards.services.vouchers import voucher_batch_create, voucher_batch_submit
from core.ledgers import ledgers_check
from stores.services import terminal_create
from tests.cards.test_voucher_sales import resident_id

pytestmark = pytest.mark.django_db
D = Decimal
_keys = count(1)


def pos(client, key: str, url: str, body: dict):
    return client.post(url, data=json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_IDEMPOTENCY_KEY=f"life-{next(_keys)}")


def sku_file(skus: list[str]) -> io.BytesIO:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["商品编码", "商品名称"])
    for sku in skus:
        sheet.append([sku, f"海天酱油 {sku[-3:]}"])
    data = io.BytesIO()
    workbook.save(data)
    data.seek(0)
    return data


@pytest.fixture
def brand_product(card_rules) -> CardProduct:
    brand = Brand.objects.create(code="HAITIAN", name="海天味业", billing_name="佛山市海天调味食品股份有限公司",
                                 billing_tax_no="91440600617638542C", contact_name="李经理")
    return CardProduct.objects.create(code="BRANDLIFE", name="海天联名卡", kind=CardProduct.Kind.REGISTERED,
                                      reloadable=True, max_balance=D("5000.00"), face_values=["500.00"], brand=brand)


def test_a_brand_card_pays_with_its_discount_and_the_brand_is_billed_what_the_ledger_says(
        client, reference_stores, hq_admin, hq_approver, brand_product, card_factory):
    today = timezone.localdate()
    # HQ sets up the programme: 5%, 60% funded by the brand, SKUs from an Excel file, approved by another person.
    programme = programme_create(code="HT5", name="海天酱油95折", brand=brand_product.brand, product=brand_product,
                                 discount_rate="0.05", brand_share="0.6", starts_on=today, created_by=hq_admin)
    eligible = [f"69000000{number:05d}" for number in range(1, 301)]
    staged = sku_list_stage(programme=programme, file=sku_file(eligible), file_name="海天商品.xlsx",
                            valid_from=today, user=hq_admin)
    sku_list_confirm(sku_list=staged, user=hq_admin)
    request = programme_submit(programme=programme, requested_by=hq_admin, reason="海天联名卡活动上线")
    approval_request_approve(approval_request=request, approver=hq_approver)
    programme.refresh_from_db()
    assert programme.status == "active"

    card = card_factory(brand_product, balance="500.00")
    _terminal, super_key = terminal_create(store_code="SUPER001", name="POS-1")

    # The till: 100.00 of the brand's goods and 50.00 of others.
    response = pos(client, super_key, f"/api/v1/cards/{card.card_no}/debit", {
        "amount": "150.00", "receipt_no": "S-0001",
        "lines": [{"sku": eligible[0], "amount": "60.00", "quantity": "2"},
                  {"sku": eligible[299], "amount": "40.00", "quantity": "1"},
                  {"sku": "6920000000017", "amount": "50.00", "quantity": "1"}],
    })
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["amount"], body["discount"], body["balance"]) == ("150.00", "5.00", "355.00")
    payment = CardTransaction.objects.get(transaction_id=body["transaction_id"])
    assert payment.charged == D("145.00")
    row = BrandDiscount.objects.get(transaction=payment)
    assert (row.eligible_amount, row.discount, row.brand_amount) == (D("100.00"), D("5.00"), D("3.00"))
    assert [line["sku"] for line in row.lines] == [eligible[0], eligible[299]]

    # A second basket, then half of the first returned: the brand's share of it comes back.
    second = pos(client, super_key, f"/api/v1/cards/{card.card_no}/debit", {
        "amount": "20.01", "receipt_no": "S-0002", "lines": [{"sku": eligible[5], "amount": "20.01", "quantity": "1"}],
    }).json()
    assert second["discount"] == "1.01"  # 5% of 20.01 is 1.0005: rounded up in the customer's favour
    refund = pos(client, super_key, f"/api/v1/cards/{card.card_no}/refund", {
        "amount": "72.50", "receipt_no": "S-0003", "original_transaction_id": body["transaction_id"],
    })
    assert refund.status_code == 201, refund.content
    give_back = BrandDiscount.objects.get(transaction__transaction_id=refund.json()["transaction_id"])
    assert (give_back.discount, give_back.brand_amount) == (D("-2.50"), D("-1.50"))

    # The brand's statement adds up to the discounts in the ledger, and to what the tills were told.
    totals = statement_totals(brand=brand_product.brand, starts_on=today - timedelta(days=1), ends_on=today)
    rows = list(statement_rows(statement_query(brand=brand_product.brand, starts_on=today, ends_on=today)))
    assert len(rows) == totals.count == 3
    assert totals.discount == D("5.00") + D("1.01") - D("2.50")
    assert totals.brand_amount == sum(BrandDiscount.objects.values_list("brand_amount", flat=True), D("0"))
    assert totals.brand_amount == D("3.00") + D("0.61") - D("1.50")
    debits = CardTransaction.objects.filter(card=card, kind="debit")
    assert sum((debit.discount for debit in debits), D("0")) - D("2.50") == totals.discount
    assert ledgers_check().ok


def test_a_voucher_sold_to_a_company_is_redeemed_in_two_parts_at_two_stores(
        client, reference_stores, hq_admin, hq_approver, dept001_manager):
    supplier = Supplier.objects.create(code="YHJL", name="益海嘉里")
    product = VoucherProduct.objects.create(code="OIL5L", name="金龙鱼食用油 5L", sku="6948195800019", unit="桶",
                                            supplier=supplier, settlement_price=D("58.00"))
    batch = voucher_batch_create(product=product, quantity=5, units=3, price="150.00",
                                 expires_on=timezone.localdate() + timedelta(days=90), requested_by=hq_admin)
    approval_request_approve(approval_request=voucher_batch_submit(batch=batch, requested_by=hq_admin),
                             approver=hq_approver)
    batch.refresh_from_db()
    assert batch.status == "issued" and batch.vouchers.count() == 5

    # Sold to a company through a group sale order like cards.
    order = sale_order_create(data=SaleInput(
        store=reference_stores.get(code="DEPT001"), channel=SaleOrder.Channel.GROUP,
        buyer_type=SaleOrder.BuyerType.COMPANY,
        buyer=PartyInput(name="重庆嘉禾餐饮管理有限公司", credit_code="91500103MA5U8XQ47Y", phone="02363001288"),
        # A company's real-name order records the person who buys for it (经办人) with their ID.
        agent=PartyInput(name="李经办", id_type="resident_id", id_number=resident_id("50010319800101001"),
                         phone="13900139000"),
        voucher_lines=[VoucherLineInput(batch.batch_no, 1, 2)],
    ), created_by=dept001_manager)
    order = sale_order_submit(order=order, actor=dept001_manager)
    sale_order_pay(order=order, actor=dept001_manager, payments=[PaymentInput(method="wechat", amount=D("300.00"))])
    voucher = Voucher.objects.get(batch=batch, serial=1)
    assert (voucher.status, voucher.remaining) == ("active", 3)

    _t1, dept_key = terminal_create(store_code="DEPT001", name="POS-D")
    _t2, super_key = terminal_create(store_code="SUPER001", name="POS-S")
    url = f"/api/v1/vouchers/{voucher.code}/redeem"
    first = pos(client, dept_key, url, {"receipt_no": "D-1", "quantity": 2})
    assert first.status_code == 201, first.content
    assert first.json() == {"voucher_code": voucher.code, "sku": "6948195800019", "quantity_redeemed": 2,
                            "remaining": 1}
    too_many = pos(client, super_key, url, {"receipt_no": "S-1", "quantity": 2})
    assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "insufficient_balance"
    second = pos(client, super_key, url, {"receipt_no": "S-2", "quantity": 1})
    assert second.json()["remaining"] == 0
    voucher.refresh_from_db()
    assert voucher.status == "used"
    redeemed_at = set(voucher.ledger_entries.filter(kind="redeem").values_list("store__code", flat=True))
    assert redeemed_at == {"DEPT001", "SUPER001"}
    unsold = Voucher.objects.get(batch=batch, serial=5)
    assert pos(client, dept_key, f"/api/v1/vouchers/{unsold.code}/redeem",
               {"receipt_no": "D-2", "quantity": 1}).json()["error"]["code"] == "card_inactive"
    assert ledgers_check().ok
