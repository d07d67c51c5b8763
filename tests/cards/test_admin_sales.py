"""The admin's corporate group sales: the order form, payment lines, actions, masking, scoping and the export."""

from decimal import Decimal
from io import BytesIO

import pytest
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from openpyxl import load_workbook

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from cards.models import Card, CardLedgerEntry, SaleOrder, SalePayment
from cards.services.sales import PartyInput, SaleInput, SaleLineInput, sale_order_create
from core.pii import resident_id_check_digit
from tests.cards.conftest import transfer_line

pytestmark = pytest.mark.django_db

USCC = "91110000600037341L"
CHANGELIST = "admin:cards_saleorder_changelist"
ADD = "admin:cards_saleorder_add"


def resident_id(body: str = "11010519491231002") -> str:
    return body + resident_id_check_digit(body)


def stock(product, *, store=None, count=1, start=1, prefix="6400000") -> list[Card]:
    return [Card.objects.create(card_no=f"{prefix}{n:06d}", product=product, status=Card.Status.INACTIVE,
                                stock_status=Card.Stock.IN_STOCK, location=store, face_value=Decimal("500.00"))
            for n in range(start, start + count)]


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
        "agent_id_type": "resident_id", "agent_id_number": resident_id(), "agent_phone": "13900139000",
        "cards": "6400000000001-6400000000003 500", "discount": "0.00", "rebate": "0.00",
        "invoice_title": "重庆某某有限公司", "invoice_tax_no": USCC, "note": "",
    }
    data.update(overrides)
    return data


def _action(client, action: str, orders, follow=True):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [str(o.pk) for o in orders]},
                       follow=follow)


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_a_group_order_is_written_submitted_approved_and_paid_from_the_admin(
        ops_client, dept001, stored_product, hq_approver):
    cards = stock(stored_product, store=None, count=3)
    assert ops_client.get(reverse(ADD)).status_code == 200

    response = ops_client.post(reverse(ADD), {**order_form(dept001, discount="100.00"),
                                              **_payments(transfer_line("1400.00"))})

    assert response.status_code == 302, response.context["adminform"].form.errors
    order = SaleOrder.objects.get()
    assert order.channel == SaleOrder.Channel.GROUP and order.face_total == Decimal("1500.00")
    assert order.amount_due == Decimal("1400.00") and order.lines.count() == 3
    assert order.payments.get().payer_account_no == "6222000011112222"
    assert order.agent_id_masked.startswith("110") and resident_id() not in order.agent_id_sealed

    response = _action(ops_client, "submit_orders", [order])
    order.refresh_from_db()
    assert order.status == SaleOrder.Status.PENDING
    request = ApprovalRequest.objects.get(content_type=ContentType.objects.get_for_model(SaleOrder),
                                          object_id=str(order.pk))
    approval_request_approve(approval_request=request, approver=hq_approver)

    response = _action(ops_client, "confirm_payment", [order])

    assert "1 order paid; its cards are active." in _messages(response)
    assert Card.objects.filter(pk__in=[c.pk for c in cards], status=Card.Status.ACTIVE).count() == 3
    assert CardLedgerEntry.objects.filter(kind="load", cause_id=str(order.pk)).count() == 3
    page = ops_client.get(reverse("admin:cards_saleorder_change", args=[order.pk]))
    assert page.status_code == 200 and order.agent_id_masked in page.content.decode()
    assert resident_id() not in page.content.decode()


def test_a_bad_order_form_shows_the_rule_next_to_the_field(ops_client, dept001, stored_product):
    stock(stored_product, store=None, count=3)

    response = ops_client.post(reverse(ADD), {**order_form(dept001, buyer_credit_code="", agent_name=""),
                                              **_payments()})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "Real-name rule" in errors["buyer_credit_code"][0]
    assert not SaleOrder.objects.exists()


def test_a_card_range_with_a_card_above_its_cap_is_refused(ops_client, dept001, bearer_product):
    stock(bearer_product, store=None, count=2)

    response = ops_client.post(reverse(ADD), {**order_form(dept001, cards="6400000000001-6400000000002 1500"),
                                              **_payments()})

    assert "Card cap" in str(response.context["adminform"].form.errors)
    assert not SaleOrder.objects.exists()


def test_confirming_cash_for_a_large_company_order_shows_the_non_cash_rule(ops_client, dept001, bearer_product,
                                                                          card_ops):
    stock(bearer_product, store=None, count=10)
    order = sale_order_create(data=SaleInput(
        store=dept001, channel="group", buyer_type="company",
        buyer=PartyInput(name="重庆某某有限公司", credit_code=USCC, phone="023-68881234"),
        lines=[SaleLineInput(first="6400000000001", last="6400000000010", amount=Decimal("500.00"))],
    ), created_by=card_ops)
    SalePayment.objects.create(order=order, method="cash", amount=Decimal("5000.00"))

    response = _action(ops_client, "confirm_payment", [order])

    assert any("Non-cash rule" in text and order.order_no in text for text in _messages(response))
    order.refresh_from_db()
    assert order.status == SaleOrder.Status.DRAFT
    assert not Card.objects.filter(status=Card.Status.ACTIVE).exists()


def test_payment_lines_breaking_a_rule_are_refused_on_saving(ops_client, dept001, stored_product, card_ops):
    stock(stored_product, store=None, count=3)
    ops_client.post(reverse(ADD), {**order_form(dept001), **_payments()})
    order = SaleOrder.objects.get()
    url = reverse("admin:cards_saleorder_change", args=[order.pk])
    page = ops_client.get(url)
    data = {**order_form(dept001, remote="on"), **_payments({"method": "cash", "amount": "1500.00"})}
    for prefix in ("lines", "approvals-approvalrequest-content_type-object_id"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    data["lines-TOTAL_FORMS"] = data["lines-INITIAL_FORMS"] = "3"
    for index, line in enumerate(order.lines.order_by("card__card_no")):
        data[f"lines-{index}-id"] = str(line.pk)
        data[f"lines-{index}-order"] = str(order.pk)
    assert page.status_code == 200

    response = ops_client.post(url, data, follow=True)

    assert any("Non-cash rule" in text and "remotely" in text for text in _messages(response))
    order.refresh_from_db()
    assert not order.payments.exists() and not order.remote
    data.update(_payments(transfer_line("1500.00")))
    ops_client.post(url, data)
    order.refresh_from_db()
    assert order.remote and order.payments.get().method == "bank_transfer"


def test_the_list_shows_ids_masked_and_flags_split_orders(ops_client, dept001, bearer_product, card_ops):
    stock(bearer_product, store=dept001, count=1)
    order = sale_order_create(data=SaleInput(
        store=dept001, buyer=PartyInput(name="张秀英", id_type="resident_id", id_number=resident_id(),
                                        phone="13800138000"),
        lines=[SaleLineInput(first="6400000000001", amount=Decimal("500.00"))],
    ), created_by=card_ops)
    SaleOrder.objects.filter(pk=order.pk).update(split_suspected=True)

    response = ops_client.get(reverse(CHANGELIST))

    body = response.content.decode()
    assert order.order_no in body and order.buyer_id_masked in body and resident_id() not in body
    flagged = ops_client.get(reverse(CHANGELIST), {"split": "yes"})
    assert order.order_no in flagged.content.decode()


def test_the_excel_export_names_the_channel_and_adds_up_the_walk_in_share(ops_client, dept001, bearer_product,
                                                                         card_ops):
    from cards.services.sales import PaymentInput, sale_walk_in

    stock(bearer_product, store=dept001, count=3)
    for number, channel in ((1, "walk_in"), (2, "walk_in"), (3, "group")):
        sale_walk_in(data=SaleInput(store=dept001, channel=channel, lines=[
            SaleLineInput(first=f"6400000{number:06d}", amount=Decimal("500.00"))]),
            payments=[PaymentInput(method="cash", amount=Decimal("500.00"))], actor=card_ops)

    response = _action(ops_client, "export_xlsx", SaleOrder.objects.all(), follow=False)

    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    workbook = load_workbook(BytesIO(response.content), read_only=True)
    orders, share = workbook.worksheets
    rows = list(orders.iter_rows(values_only=True))
    assert rows[0][2] == "channel" and len(rows) == 4
    assert sorted(row[2] for row in rows[1:]) == ["corporate group (团购)", "walk-in (散客)", "walk-in (散客)"]
    share_rows = {row[0]: row for row in share.iter_rows(min_row=2, values_only=True)}
    assert share_rows["walk-in (散客)"][1] == 2 and float(share_rows["walk-in (散客)"][4]) == pytest.approx(0.6667)


def test_store_staff_see_and_sell_only_for_their_store(client, make_staff, dept001, super001, bearer_product,
                                                       card_ops):
    stock(bearer_product, store=dept001, count=1)
    stock(bearer_product, store=super001, count=1, start=2)
    own = sale_order_create(data=SaleInput(store=dept001, lines=[SaleLineInput(first="6400000000001")]),
                            created_by=card_ops)
    other = sale_order_create(data=SaleInput(store=super001, lines=[SaleLineInput(first="6400000000002")]),
                              created_by=card_ops)
    seller = make_staff("dept001_seller", group="卡务运营", stores=[dept001])
    client.force_login(seller)

    body = client.get(reverse(CHANGELIST)).content.decode()

    assert own.order_no in body and other.order_no not in body
    assert client.get(reverse("admin:cards_saleorder_change", args=[other.pk])).status_code in (302, 404)
    _action(client, "cancel_orders", [other])
    other.refresh_from_db()
    assert other.status == SaleOrder.Status.DRAFT
    response = client.post(reverse(ADD), {**order_form(super001, channel="walk_in", cards="6400000000002"),
                                          **_payments()})
    assert response.status_code == 200 and "store" in response.context["adminform"].form.errors


def test_a_store_manager_may_look_but_not_write_orders(client, dept001_manager, dept001, bearer_product, card_ops):
    stock(bearer_product, store=dept001, count=1)
    order = sale_order_create(data=SaleInput(store=dept001, lines=[SaleLineInput(first="6400000000001")]),
                              created_by=card_ops)
    client.force_login(dept001_manager)

    assert client.get(reverse(CHANGELIST)).status_code == 200
    assert client.get(reverse(ADD)).status_code == 403
    _action(client, "confirm_payment", [order])
    order.refresh_from_db()
    assert order.status == SaleOrder.Status.DRAFT
