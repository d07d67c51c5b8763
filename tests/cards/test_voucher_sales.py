"""Pickup vouchers in sale orders: lines by batch and serial, the prepaid-card rules on the whole total,
approval, payment that activates the vouchers, cancellation, and the admin's order form and pages."""

from datetime import timedelta
from decimal import Decimal
from io import BytesIO

import pytest
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from cards.errors import CardOperationRefused, CardRuleBroken, SaleForbidden, SaleOrderInvalid
from cards.models import (
    Card,
    CardLedgerEntry,
    CardRules,
    SaleOrder,
    SalePayment,
    SaleVoucherLine,
    Supplier,
    Voucher,
    VoucherBatch,
    VoucherLedgerEntry,
    VoucherProduct,
)
from cards.services.sales import (
    PartyInput,
    PaymentInput,
    SaleInput,
    SaleLineInput,
    VoucherLineInput,
    sale_order_cancel,
    sale_order_check,
    sale_order_create,
    sale_order_pay,
    sale_order_submit,
    sale_walk_in,
    voucher_lines_parse,
    voucher_lines_text,
)
from core.ledgers import ledgers_check
from core.pii import resident_id_check_digit

pytestmark = pytest.mark.django_db

USCC = "91110000600037341L"
CHANGELIST = "admin:cards_saleorder_changelist"
ADD = "admin:cards_saleorder_add"
_codes = iter(range(1, 10**9))
_cards = iter(range(1, 10**6))


def resident_id(body: str = "11010519491231002") -> str:
    return body + resident_id_check_digit(body)


def person(**fields) -> PartyInput:
    return PartyInput(**{"name": "张秀英", "id_type": "resident_id", "id_number": resident_id(),
                         "phone": "13800138000", **fields})


def company(**fields) -> PartyInput:
    return PartyInput(**{"name": "重庆某某有限公司", "credit_code": USCC, "phone": "023-68881234", **fields})


def agent() -> PartyInput:
    """The person who buys for a company (经办人): a company's real-name order records them with their ID."""
    return PartyInput(name="李经办", id_type="resident_id", id_number=resident_id("50010319800101001"),
                      phone="13900139000")


def cash(amount) -> PaymentInput:
    return PaymentInput(method=SalePayment.Method.CASH, amount=Decimal(amount))


def transfer(amount) -> PaymentInput:
    return PaymentInput(method=SalePayment.Method.BANK_TRANSFER, amount=Decimal(amount),
                        payer_account_name="重庆某某有限公司", payer_account_no="6222000011112222",
                        payee_account_name="百货公司", payee_account_no="3100000011110000")


def stock_card(product, *, store=None, face_value="500.00") -> Card:
    return Card.objects.create(card_no=f"65{next(_cards):011d}", product=product, status=Card.Status.INACTIVE,
                               stock_status=Card.Stock.IN_STOCK, location=store, face_value=Decimal(face_value))


@pytest.fixture
def voucher_product(db) -> VoucherProduct:
    supplier = Supplier.objects.create(code="SUP01", name="益海嘉里")
    return VoucherProduct.objects.create(code="OIL5L", name="金龙鱼食用油 5L", sku="6900000009999", unit="桶",
                                         supplier=supplier, settlement_price=Decimal("55.00"))


@pytest.fixture
def batch_owner(db) -> User:
    return User.objects.create_user(username="voucher_maker", password="pw-for-tests-123", is_staff=True)


@pytest.fixture
def make_batch(voucher_product, batch_owner):
    """make_batch("VB2026001", quantity=20, ...): a batch (issued unless told) with its vouchers, all unsold."""

    def make(batch_no: str = "VB2026001", *, quantity: int = 20, units: int = 2, price: str = "300.00",
             status: str = VoucherBatch.Status.ISSUED, expires_at=None) -> VoucherBatch:
        expires_at = expires_at or timezone.now() + timedelta(days=365)
        batch = VoucherBatch.objects.create(
            batch_no=batch_no, product=voucher_product, quantity=quantity, units=units, price=Decimal(price),
            expires_on=timezone.localtime(expires_at).date(), status=status, requested_by=batch_owner,
        )
        if status == VoucherBatch.Status.ISSUED:
            Voucher.objects.bulk_create([Voucher(
                code=f"7{next(_codes):015d}", serial=serial, batch=batch, product=voucher_product, units=units,
                expires_at=expires_at) for serial in range(1, quantity + 1)])
        return batch

    return make


@pytest.fixture
def batch(make_batch) -> VoucherBatch:
    return make_batch()


@pytest.fixture
def clerk(make_staff, dept001):
    return make_staff("dept001_cards", group="卡务运营", stores=[dept001])


def vouchers_of(batch: VoucherBatch, first: int, last: int) -> list[Voucher]:
    return list(Voucher.objects.filter(batch=batch, serial__gte=first, serial__lte=last).order_by("serial"))


def voucher_order(store, text: str, *, buyer=None, buyer_type="person", **fields) -> SaleInput:
    return SaleInput(store=store, voucher_lines=voucher_lines_parse(text), buyer=buyer or person(),
                     buyer_type=buyer_type, **fields)


def _pending_request(order) -> ApprovalRequest:
    return ApprovalRequest.objects.get(content_type=ContentType.objects.get_for_model(SaleOrder),
                                       object_id=str(order.pk), status=ApprovalRequest.Status.PENDING)


# --- parsing -----------------------------------------------------------------------------------------------


def test_voucher_lines_are_read_as_ranges_and_single_serials():
    lines = voucher_lines_parse("VB2026001 1-50\n\n  VB2026001 7  \nVB-2026-002 3 ~ 4\nVB2026003，12")

    assert [(line.batch_no, line.first, line.last, line.line) for line in lines] == [
        ("VB2026001", 1, 50, 1), ("VB2026001", 7, None, 3), ("VB-2026-002", 3, 4, 4), ("VB2026003", 12, None, 5),
    ]


@pytest.mark.parametrize(("text", "line"), [
    ("VB2026001 1-50\nVB2026001", 2),
    ("VB2026001 1-50\nVB2026001 abc", 2),
    ("VB2026001 0", 1),
    ("VB2026001 1-5\nVB2026001 9-3", 2),
])
def test_a_bad_voucher_line_is_refused_naming_the_line(text, line):
    with pytest.raises(SaleOrderInvalid) as error:
        voucher_lines_parse(text)

    assert f"Line {line}:" in error.value.fields["vouchers"][0]


def test_an_orders_vouchers_are_written_back_as_ranges(dept001, make_batch, clerk):
    first, second = make_batch("VB2026001"), make_batch("VB2026002", quantity=5)
    data = SaleInput(store=dept001, buyer=person(), voucher_lines=[
        VoucherLineInput(batch_no="VB2026001", first=1, last=3), VoucherLineInput(batch_no="VB2026001", first=5),
        VoucherLineInput(batch_no="VB2026001", first=6), VoucherLineInput(batch_no="VB2026002", first=2, last=5)])

    order = sale_order_create(data=data, created_by=clerk)

    assert voucher_lines_text(order) == "VB2026001 1-3\nVB2026001 5-6\nVB2026002 2-5"
    assert order.voucher_lines.count() == 9 and {first.pk, second.pk} == set(
        order.voucher_lines.values_list("voucher__batch", flat=True))


# --- money and rules ---------------------------------------------------------------------------------------


def test_a_voucher_only_order_is_paid_and_activates_its_vouchers(dept001, batch, clerk):
    # given: a person buying five vouchers of 300.00 at the desk
    data = voucher_order(dept001, "VB2026001 1-5")

    # when
    order = sale_walk_in(data=data, payments=[cash("1500.00")], actor=clerk)

    # then: the order is paid, its lines priced at the batch's price, each voucher active with its units
    assert order.status == SaleOrder.Status.COMPLETED
    assert order.face_total == Decimal("0.00") and order.voucher_total == Decimal("1500.00")
    assert order.amount_due == Decimal("1500.00")
    assert list(SaleVoucherLine.objects.filter(order=order).values_list("amount", flat=True)) == [
        Decimal("300.00")] * 5
    for voucher in vouchers_of(batch, 1, 5):
        assert voucher.status == Voucher.Status.ACTIVE and voucher.remaining == voucher.units == 2
        assert voucher.sale_order == order and voucher.sold_at is not None
        assert voucher.issuer == dept001.format.legal_entity
        entry = VoucherLedgerEntry.objects.get(voucher=voucher)
        assert entry.kind == VoucherLedgerEntry.Kind.ISSUE and entry.quantity == 2 and entry.cause == order
        assert entry.store == dept001 and entry.receipt_no == order.order_no
    assert Voucher.objects.filter(batch=batch, status=Voucher.Status.UNSOLD).count() == 15
    assert ledgers_check().ok


def test_a_corporate_order_with_cards_and_vouchers_goes_through_approval_and_payment(
        dept001, stored_product, make_batch, clerk, hq_approver):
    # given: 40,000.00 of cards and 12,000.00 of vouchers: only together past the group approval limit
    cards = [stock_card(stored_product, face_value="4000.00") for _ in range(10)]
    batch = make_batch(quantity=40, price="300.00")
    data = SaleInput(
        store=dept001, channel=SaleOrder.Channel.GROUP, buyer_type=SaleOrder.BuyerType.COMPANY, buyer=company(),
        agent=agent(), lines=[SaleLineInput(first=card.card_no) for card in cards], voucher_lines=voucher_lines_parse(
            "VB2026001 1-40"), invoice_title="重庆某某有限公司", invoice_tax_no=USCC,
    )

    # when: written and submitted
    order = sale_order_create(data=data, created_by=clerk)
    order = sale_order_submit(order=order, actor=clerk)

    # then: it waits for approval of the whole total
    assert order.face_total == Decimal("40000.00") and order.voucher_total == Decimal("12000.00")
    assert order.amount_due == Decimal("52000.00") and order.status == SaleOrder.Status.PENDING
    request = _pending_request(order)
    assert request.amount == Decimal("52000.00") and "52000.00" in request.reason
    assert request.payload["vouchers"] == 40 and request.payload["voucher_total"] == "12000.00"
    with pytest.raises(CardOperationRefused, match="cannot be paid"):
        sale_order_pay(order=order, actor=clerk, payments=[transfer("52000.00")])
    assert not Voucher.objects.filter(status=Voucher.Status.ACTIVE).exists()

    # when: approved by another person and paid by bank transfer (cash is refused by the non-cash rule)
    approval_request_approve(approval_request=request, approver=hq_approver)
    with pytest.raises(CardRuleBroken, match="Non-cash rule"):
        sale_order_pay(order=order, actor=clerk, payments=[cash("52000.00")])
    order = sale_order_pay(order=order, actor=clerk, payments=[transfer("50000.00"), transfer("2000.00")])

    # then: cards and vouchers are active in the same order, and every ledger holds
    assert order.status == SaleOrder.Status.COMPLETED
    assert Card.objects.filter(sale_order=order, status=Card.Status.ACTIVE, balance=Decimal("4000.00")).count() == 10
    assert Voucher.objects.filter(batch=batch, sale_order=order, status=Voucher.Status.ACTIVE,
                                  remaining=2).count() == 40
    assert VoucherLedgerEntry.objects.filter(kind="issue", receipt_no=order.order_no).count() == 40
    assert CardLedgerEntry.objects.filter(kind="load", receipt_no=order.order_no).count() == 10
    assert ledgers_check().ok


def test_vouchers_count_toward_the_bank_transfer_threshold(dept001, bearer_product, batch, clerk):
    # given: a company buying 3,000.00 of cards (cash allowed alone) and 2,100.00 of vouchers
    cards = [stock_card(bearer_product, store=dept001, face_value="1000.00") for _ in range(3)]
    data = SaleInput(store=dept001, buyer_type=SaleOrder.BuyerType.COMPANY, buyer=company(), agent=agent(),
                     lines=[SaleLineInput(first=card.card_no) for card in cards],
                     voucher_lines=voucher_lines_parse("VB2026001 1-7"))
    cards_only = SaleInput(store=dept001, buyer_type=SaleOrder.BuyerType.COMPANY, buyer=company(),
                           lines=[SaleLineInput(first=card.card_no) for card in cards])
    assert not sale_order_check(data=cards_only).transfer_only

    # when / then: the total of 5,100.00 is paid by bank transfer only, and nothing is written on refusal
    with pytest.raises(CardRuleBroken, match="Non-cash rule.*company buying 5000.00"):
        sale_walk_in(data=data, payments=[cash("5100.00")], actor=clerk)
    assert not SaleOrder.objects.exists()
    assert not Voucher.objects.exclude(status=Voucher.Status.UNSOLD).exists()
    order = sale_walk_in(data=data, payments=[transfer("5100.00")], actor=clerk)
    assert order.status == SaleOrder.Status.COMPLETED and order.amount_due == Decimal("5100.00")


def test_a_voucher_order_records_the_buyers_real_name(dept001, batch):
    with pytest.raises(CardRuleBroken) as error:
        sale_order_check(data=voucher_order(dept001, "VB2026001 1", buyer=PartyInput(name="张秀英",
                                                                                  phone="13800138000")))
    assert "Real-name rule" in str(error.value) and "pickup vouchers" in str(error.value)
    assert "buyer_id_number" in error.value.fields

    with pytest.raises(CardRuleBroken) as error:
        sale_order_check(data=voucher_order(dept001, "VB2026001 1", buyer_type="company",
                                            buyer=company(credit_code="")))
    assert "buyer_credit_code" in error.value.fields

    plan = sale_order_check(data=voucher_order(dept001, "VB2026001 1"))
    assert plan.real_name_required and plan.voucher_total == Decimal("300.00")


def test_a_bearer_card_order_with_vouchers_needs_real_name_below_the_bearer_limit(dept001, bearer_product, batch):
    card = stock_card(bearer_product, store=dept001)
    data = SaleInput(store=dept001, lines=[SaleLineInput(first=card.card_no)])

    assert not sale_order_check(data=data).real_name_required
    data.voucher_lines = voucher_lines_parse("VB2026001 1")
    with pytest.raises(CardRuleBroken, match="Real-name rule"):
        sale_order_check(data=data)


def test_a_discount_may_cover_vouchers_but_not_more_than_the_whole_total(dept001, bearer_product, batch, clerk):
    card = stock_card(bearer_product, store=dept001)
    data = SaleInput(store=dept001, buyer=person(), lines=[SaleLineInput(first=card.card_no)],
                     voucher_lines=voucher_lines_parse("VB2026001 1-2"), discount=Decimal("1100.01"))

    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_check(data=data)
    assert "1100.00" in error.value.fields["discount"][0]

    data.discount = Decimal("600.00")
    order = sale_order_submit(order=sale_order_create(data=data, created_by=clerk), actor=clerk)
    assert order.amount_due == Decimal("500.00") and order.status == SaleOrder.Status.PENDING


def test_split_orders_are_flagged_counting_their_vouchers(dept001, bearer_product, batch, clerk):
    # given: 3,000.00 of cards, then 1,000.00 of cards and 1,800.00 of vouchers: each under 5,000.00, together past
    cards = [stock_card(bearer_product, store=dept001, face_value="1000.00") for _ in range(4)]
    buyer = dict(buyer_type=SaleOrder.BuyerType.COMPANY, buyer=company(), agent=agent())
    first = sale_walk_in(data=SaleInput(store=dept001, lines=[SaleLineInput(first=c.card_no) for c in cards[:3]],
                                        **buyer), payments=[cash("3000.00")], actor=clerk)
    second = SaleInput(store=dept001, lines=[SaleLineInput(first=cards[3].card_no, amount=Decimal("1000.00"))],
                       voucher_lines=voucher_lines_parse("VB2026001 1-6"), **buyer)

    # when / then: the second is refused in cash (the non-cash rule, summed), and by transfer waits for approval
    with pytest.raises(CardRuleBroken, match=f"Non-cash rule.*{first.order_no}"):
        sale_walk_in(data=second, payments=[cash("2800.00")], actor=clerk)
    order = sale_order_submit(order=sale_order_create(data=second, created_by=clerk,
                                                      payments=[transfer("2800.00")]), actor=clerk)

    assert not first.split_suspected
    assert order.split_suspected and order.voucher_total == Decimal("1800.00")
    assert order.status == SaleOrder.Status.PENDING and _pending_request(order).action == "cards.sale_split_approve"


def test_an_order_needs_cards_or_vouchers(dept001):
    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_check(data=SaleInput(store=dept001, buyer=person()))

    assert "at least one card or pickup voucher" in error.value.fields["cards"][0]


def test_a_top_up_order_cannot_hold_vouchers(dept001, stored_product, card_factory, batch):
    card = card_factory(stored_product, balance="100.00", store=dept001)
    data = SaleInput(store=dept001, kind=SaleOrder.Kind.TOP_UP, buyer=person(),
                     lines=[SaleLineInput(first=card.card_no, amount=Decimal("100.00"))],
                     voucher_lines=voucher_lines_parse("VB2026001 1"))

    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_check(data=data)

    assert "top-up" in error.value.fields["vouchers"][0]


# --- which vouchers can be sold ----------------------------------------------------------------------------


def test_an_unknown_batch_is_refused_naming_the_line(dept001, batch):
    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_check(data=voucher_order(dept001, "VB2026001 1\nVB2099999 1-3"))

    assert error.value.fields["vouchers"] == ["Line 2: there is no voucher batch VB2099999."]


def test_a_batch_not_yet_approved_is_refused_naming_the_line(dept001, make_batch):
    make_batch("VB2026009", status=VoucherBatch.Status.PENDING)

    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_check(data=voucher_order(dept001, "VB2026009 1"))

    assert "Line 1: batch VB2026009 is waiting for approval" in error.value.fields["vouchers"][0]


def test_serials_beyond_the_batch_are_refused(dept001, batch):
    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_check(data=voucher_order(dept001, "VB2026001 15-21"))

    assert error.value.fields["vouchers"] == ["Line 1: batch VB2026001 has serial numbers 1 to 20."]


def test_a_voucher_named_twice_is_refused(dept001, batch):
    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_check(data=voucher_order(dept001, "VB2026001 1-5\nVB2026001 4"))

    assert error.value.fields["vouchers"] == ["Line 2: voucher VB2026001 #4 is named twice."]


def test_a_voucher_already_sold_is_refused_naming_the_line(dept001, batch, clerk):
    sale_walk_in(data=voucher_order(dept001, "VB2026001 3"), payments=[cash("300.00")], actor=clerk)

    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_create(data=voucher_order(dept001, "VB2026001 1\nVB2026001 2-4"), created_by=clerk)

    assert error.value.fields["vouchers"] == ["Line 2: voucher VB2026001 #3 is active; only an unsold voucher can "
                                              "be sold."]
    assert SaleOrder.objects.count() == 1


def test_a_voucher_in_another_open_order_is_refused_naming_the_order(dept001, batch, clerk):
    first = sale_order_create(data=voucher_order(dept001, "VB2026001 5-6"), created_by=clerk)

    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_create(data=voucher_order(dept001, "VB2026001 1-2\nVB2026001 6-8"), created_by=clerk)

    assert error.value.fields["vouchers"] == [f"Line 2: voucher VB2026001 #6 is already in open order "
                                              f"{first.order_no}."]
    # the order itself, checked again, does not find its own vouchers busy
    assert sale_order_submit(order=first, actor=clerk).status == SaleOrder.Status.APPROVED


def test_an_expired_voucher_is_refused_naming_the_line(dept001, make_batch):
    make_batch("VB2025001", expires_at=timezone.now() - timedelta(minutes=1))

    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_check(data=voucher_order(dept001, "VB2025001 1"))

    assert error.value.fields["vouchers"][0].startswith("Line 1: voucher VB2025001 #1 expired on ")


def test_a_voucher_expiring_before_payment_stops_the_payment_and_nothing_moves(dept001, bearer_product, batch,
                                                                               clerk):
    card = stock_card(bearer_product, store=dept001)
    data = SaleInput(store=dept001, buyer=person(), lines=[SaleLineInput(first=card.card_no)],
                     voucher_lines=voucher_lines_parse("VB2026001 1-2"))
    order = sale_order_create(data=data, created_by=clerk)
    Voucher.objects.filter(batch=batch, serial=2).update(expires_at=timezone.now() - timedelta(seconds=1))

    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_pay(order=order, actor=clerk, payments=[cash("1100.00")])

    assert "VB2026001 #2 expired" in error.value.fields["vouchers"][0]
    order.refresh_from_db()
    card.refresh_from_db()
    assert order.status == SaleOrder.Status.DRAFT and card.balance == 0 and card.status == Card.Status.INACTIVE
    assert not Voucher.objects.exclude(status=Voucher.Status.UNSOLD).exists()
    assert not VoucherLedgerEntry.objects.exists() and not SalePayment.objects.exists()


def test_a_product_taken_off_sale_stops_its_vouchers(dept001, batch, voucher_product):
    VoucherProduct.objects.filter(pk=voucher_product.pk).update(is_active=False)

    with pytest.raises(SaleOrderInvalid) as error:
        sale_order_check(data=voucher_order(dept001, "VB2026001 1"))

    assert "no longer active" in error.value.fields["vouchers"][0]


def test_a_cancelled_order_leaves_its_vouchers_unsold_for_another_order(dept001, batch, clerk):
    order = sale_order_create(data=voucher_order(dept001, "VB2026001 1-4"), created_by=clerk)

    sale_order_cancel(order=order, actor=clerk)

    assert Voucher.objects.filter(batch=batch, status=Voucher.Status.UNSOLD, sale_order=None).count() == 20
    again = sale_walk_in(data=voucher_order(dept001, "VB2026001 1-4"), payments=[cash("1200.00")], actor=clerk)
    assert Voucher.objects.filter(sale_order=again, status=Voucher.Status.ACTIVE).count() == 4
    assert ledgers_check().ok


def test_a_rejected_order_leaves_its_vouchers_unsold(dept001, batch, clerk, hq_approver):
    order = sale_order_create(data=voucher_order(dept001, "VB2026001 1-4", discount=Decimal("100.00")),
                              created_by=clerk)
    order = sale_order_submit(order=order, actor=clerk)

    approval_request_reject(approval_request=_pending_request(order), approver=hq_approver, comment="no")

    order.refresh_from_db()
    assert order.status == SaleOrder.Status.REJECTED
    assert not Voucher.objects.exclude(status=Voucher.Status.UNSOLD).exists()
    assert sale_order_create(data=voucher_order(dept001, "VB2026001 1-4"), created_by=clerk).voucher_total == \
        Decimal("1200.00")


def test_store_staff_sell_vouchers_only_for_their_own_store(dept001, super001, batch, clerk):
    with pytest.raises(SaleForbidden):
        sale_order_create(data=voucher_order(super001, "VB2026001 1"), created_by=clerk)

    assert sale_order_create(data=voucher_order(dept001, "VB2026001 1"), created_by=clerk).store == dept001


# --- the admin ---------------------------------------------------------------------------------------------


def _payments(*lines) -> dict:
    data = {"payments-TOTAL_FORMS": str(len(lines)), "payments-INITIAL_FORMS": "0",
            "payments-MIN_NUM_FORMS": "0", "payments-MAX_NUM_FORMS": "1000"}
    for index, line in enumerate(lines):
        data.update({f"payments-{index}-{name}": value for name, value in line.items()})
    return data


def order_form(store, **overrides) -> dict:
    data = {
        "kind": "sale", "channel": "group", "store": str(store.pk), "buyer_type": "company",
        "buyer_name": "重庆某某有限公司", "buyer_id_type": "", "buyer_id_number": "", "buyer_credit_code": USCC,
        "buyer_phone": "023-68881234", "buyer_address": "", "member": "", "agent_name": "李经办",
        "agent_id_type": "resident_id", "agent_id_number": resident_id("50010319800101001"),
        "agent_phone": "13900139000", "cards": "", "vouchers": "VB2026001 1-10", "discount": "0.00",
        "rebate": "0.00", "invoice_title": "重庆某某有限公司", "invoice_tax_no": USCC, "note": "",
    }
    data.update(overrides)
    return data


def _action(client, action: str, orders, follow=True):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [str(o.pk) for o in orders]},
                       follow=follow)


def test_a_voucher_order_is_written_in_the_admin_and_paid(ops_client, dept001, batch):
    # given: the add form offers the vouchers box
    assert "Example: VB2026001 1-50" in ops_client.get(reverse(ADD)).content.decode()

    # when: ten vouchers written for a company, then paid by transfer
    response = ops_client.post(reverse(ADD), {**order_form(dept001), **_payments()})

    assert response.status_code == 302, response.context["adminform"].form.errors
    order = SaleOrder.objects.get()
    assert order.voucher_total == Decimal("3000.00") and order.amount_due == Decimal("3000.00")
    assert order.voucher_lines.count() == 10 and not order.lines.exists()
    from cards.services.sales import sale_order_payments_set

    sale_order_payments_set(order=order, payments=[transfer("3000.00")], actor=order.created_by)
    messages = [str(m) for m in _action(ops_client, "confirm_payment", [order]).context["messages"]]
    assert "1 order paid; its cards are active." in messages
    # then: the vouchers are active, the page lists them with masked codes and the voucher total
    assert Voucher.objects.filter(sale_order=order, status=Voucher.Status.ACTIVE).count() == 10
    page = ops_client.get(reverse("admin:cards_saleorder_change", args=[order.pk])).content.decode()
    first = vouchers_of(batch, 1, 1)[0]
    assert "Pickup vouchers in this order" in page and first.code_masked in page and first.code not in page
    assert "3000.00" in page and "金龙鱼食用油 5L" in page
    listing = ops_client.get(reverse(CHANGELIST)).content.decode()
    assert "column-voucher_total" in listing and "3,000.00" in listing


def test_a_draft_shows_its_vouchers_as_typed_and_can_be_changed(ops_client, dept001, batch, card_ops):
    order = sale_order_create(data=voucher_order(dept001, "VB2026001 1-3\nVB2026001 5", buyer_type="company",
                                                 buyer=company(), agent=agent()), created_by=card_ops)
    url = reverse("admin:cards_saleorder_change", args=[order.pk])

    form = ops_client.get(url).context["adminform"].form
    assert form.fields["vouchers"].initial == "VB2026001 1-3\nVB2026001 5"

    data = {**order_form(dept001, vouchers="VB2026001 1-2"), **_payments()}
    for prefix in ("lines", "voucher_lines", "approvals-approvalrequest-content_type-object_id"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = ops_client.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    order.refresh_from_db()
    assert order.voucher_total == Decimal("600.00") and voucher_lines_text(order) == "VB2026001 1-2"


def test_a_bad_voucher_line_in_the_admin_form_is_shown_next_to_the_field(ops_client, dept001, batch):
    Voucher.objects.filter(batch=batch, serial=4).update(status=Voucher.Status.VOID)

    response = ops_client.post(reverse(ADD), {**order_form(dept001, vouchers="VB2026001 1-3\nVB2026001 4"),
                                              **_payments()})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["vouchers"] == ["Line 2: voucher VB2026001 #4 is void; only an unsold voucher can be sold."]
    assert not SaleOrder.objects.exists()


def test_an_empty_order_form_asks_for_cards_or_vouchers(ops_client, dept001):
    response = ops_client.post(reverse(ADD), {**order_form(dept001, vouchers=""), **_payments()})

    assert response.status_code == 200
    assert "at least one card or pickup voucher" in response.context["adminform"].form.errors["cards"][0]


def test_the_excel_export_counts_the_vouchers_of_each_order(ops_client, dept001, bearer_product, batch, card_ops):
    card = stock_card(bearer_product, store=dept001)
    sale_walk_in(data=SaleInput(store=dept001, buyer=person(), lines=[SaleLineInput(first=card.card_no)],
                                voucher_lines=voucher_lines_parse("VB2026001 1-3")),
                 payments=[cash("1400.00")], actor=card_ops)

    response = _action(ops_client, "export_xlsx", SaleOrder.objects.all(), follow=False)

    rows = list(load_workbook(BytesIO(response.content), read_only=True).worksheets[0].iter_rows(values_only=True))
    header, row = rows[0], rows[1]
    assert row[header.index("cards")] == 1 and row[header.index("vouchers")] == 3
    assert Decimal(str(row[header.index("pickup vouchers")])) == Decimal("900.00")
    assert Decimal(str(row[header.index("amount due")])) == Decimal("1400.00")


def test_store_staff_see_only_their_stores_voucher_orders(client, make_staff, dept001, super001, batch, card_ops):
    own = sale_order_create(data=voucher_order(dept001, "VB2026001 1"), created_by=card_ops)
    other = sale_order_create(data=voucher_order(super001, "VB2026001 2"), created_by=card_ops)
    seller = make_staff("dept001_seller", group="卡务运营", stores=[dept001])
    client.force_login(seller)

    body = client.get(reverse(CHANGELIST)).content.decode()

    assert own.order_no in body and other.order_no not in body
    assert client.get(reverse("admin:cards_saleorder_change", args=[other.pk])).status_code in (302, 404)


# --- concurrency (PostgreSQL) ------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_one_voucher_sold_at_six_desks_at_once_is_sold_once(dept001, batch, clerk):
    from tests.membership.conftest import concurrently

    results = concurrently(6, lambda index: sale_walk_in(data=voucher_order(dept001, "VB2026001 1"),
                                                         payments=[cash("300.00")], actor=clerk))

    sold = [result for result in results if isinstance(result, SaleOrder)]
    assert len(sold) == 1, results
    voucher = vouchers_of(batch, 1, 1)[0]
    assert voucher.sale_order == sold[0] and voucher.remaining == 2
    assert VoucherLedgerEntry.objects.filter(voucher=voucher).count() == 1
    assert ledgers_check().ok


def test_rules_tightened_by_headquarters_apply_to_vouchers(dept001, batch, card_rules):
    CardRules.objects.update(person_transfer_from=Decimal("600.00"))

    with pytest.raises(CardRuleBroken, match="Non-cash rule.*person buying 600.00"):
        sale_order_check(data=voucher_order(dept001, "VB2026001 1-2"), payments=[cash("600.00")])
