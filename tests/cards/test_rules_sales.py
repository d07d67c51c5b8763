"""The prepaid-card rules at sale and top-up (cards.rules), through the screens where an outside audit found them
broken: real name follows the person, no sale without a filing number, orders split below a limit, and payment
lines against the non-cash rule."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from cards.errors import CardRuleBroken
from cards.models import Card, CardLedgerEntry, SaleOrder, SalePayment
from cards.services.sales import (
    PartyInput,
    PaymentInput,
    SaleInput,
    SaleLineInput,
    sale_order_cancel,
    sale_order_check,
    sale_order_create,
    sale_order_pay,
    sale_order_submit,
    sale_order_update,
    sale_walk_in,
)
from core.ledgers import ledgers_check
from core.pii import pii_digest, resident_id_check_digit
from stores.models import LegalEntity
from tests.cards.conftest import transfer_line
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

USCC = "91110000600037341L"
OTHER_USCC = "91500103MA5U8XQ47Y"
ADD = "admin:cards_saleorder_add"
CHANGELIST = "admin:cards_saleorder_changelist"
_serial = iter(range(1, 10**6))


def resident_id(body: str = "11010519491231002") -> str:
    return body + resident_id_check_digit(body)


FIRST_ID = resident_id()
SECOND_ID = resident_id("11010519800101003")
AGENT_ID = resident_id("50010319800101001")


def stock(product, *, store=None, count=1, face_value="500.00") -> list[Card]:
    """Unsold cards in stock at a store (None: headquarters)."""
    return [Card.objects.create(card_no=f"66{next(_serial):011d}", product=product, status=Card.Status.INACTIVE,
                                stock_status=Card.Stock.IN_STOCK, location=store, face_value=Decimal(face_value))
            for _ in range(count)]


def cards_text(cards, amount) -> str:
    return "\n".join(f"{card.card_no} {amount}" for card in cards)


def transfer(amount) -> PaymentInput:
    return PaymentInput(method=SalePayment.Method.BANK_TRANSFER, amount=Decimal(amount),
                        payer_account_name="重庆某某有限公司", payer_account_no="6222000011112222",
                        payee_account_name="百货公司", payee_account_no="3100000011110000")


def cash(amount) -> PaymentInput:
    return PaymentInput(method=SalePayment.Method.CASH, amount=Decimal(amount))


def company() -> PartyInput:
    return PartyInput(name="重庆某某有限公司", credit_code=USCC, phone="023-68881234")


# --- the admin ---------------------------------------------------------------------------------------------


def order_form(store, cards, *, amount="500.00", **overrides) -> dict:
    """The admin's order form: a person buying `cards` for a group order, with their ID."""
    data = {
        "kind": "sale", "channel": "group", "store": str(store.pk), "remote": "", "buyer_type": "person",
        "buyer_name": "张秀英", "buyer_id_type": "resident_id", "buyer_id_number": FIRST_ID, "buyer_credit_code": "",
        "buyer_phone": "13800138000", "buyer_address": "", "member": "", "agent_name": "", "agent_id_type": "",
        "agent_id_number": "", "agent_phone": "", "cards": cards_text(cards, amount), "vouchers": "",
        "discount": "0.00", "rebate": "0.00", "invoice_title": "", "invoice_tax_no": "", "note": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v != "" or k != "remote"}


def payments_form(*lines) -> dict:
    data = {"payments-TOTAL_FORMS": str(len(lines)), "payments-INITIAL_FORMS": "0",
            "payments-MIN_NUM_FORMS": "0", "payments-MAX_NUM_FORMS": "1000"}
    for index, line in enumerate(lines):
        data.update({f"payments-{index}-{name}": value for name, value in line.items()})
    return data


def change_form(order, form: dict) -> dict:
    """A draft's change form as posted: the read-only card lines and the approval history come back as they are."""
    data = {**form, **payments_form()}
    data.update({"approvals-approvalrequest-content_type-object_id-TOTAL_FORMS": "0",
                 "approvals-approvalrequest-content_type-object_id-INITIAL_FORMS": "0"})
    lines = list(order.lines.order_by("card__card_no"))
    data["lines-TOTAL_FORMS"] = data["lines-INITIAL_FORMS"] = str(len(lines))
    for index, line in enumerate(lines):
        data[f"lines-{index}-id"] = str(line.pk)
        data[f"lines-{index}-order"] = str(order.pk)
    return data


def _action(client, action: str, orders):
    return client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [str(o.pk) for o in orders]},
                       follow=True)


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- the desk ----------------------------------------------------------------------------------------------


@pytest.fixture
def desk(client, dept001):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(StaffFactory(username="dept001_rules_desk", stores=[dept001], permissions=[
        "membership.use_service_desk", "cards.sell_card", "cards.serve_card"]))
    return client


def sale_form(cards: str, **fields) -> dict:
    data = {"cards": cards, "member_no": "", "buyer_type": "person", "buyer_name": "", "buyer_id_type": "resident_id",
            "buyer_id_number": "", "buyer_credit_code": "", "buyer_phone": "", "agent_name": "",
            "agent_id_type": "resident_id", "agent_id_number": "", "agent_phone": "", "payment_method": "cash",
            "payment_reference": "", "payer_account_name": "", "payer_account_no": "", "payee_account_name": "",
            "payee_account_no": "", "confirm": "1"}
    data.update(fields)
    return data


def company_at_desk(**fields) -> dict:
    return {"buyer_type": "company", "buyer_name": "重庆某某有限公司", "buyer_credit_code": USCC,
            "buyer_phone": "023-68881234", **fields}


def desk_errors(response) -> str:
    form = response.context["form"]
    return " ".join(" ".join(errors) for errors in form.errors.values())


# === 1. Real name follows the person =======================================================================


def test_a_draft_renamed_to_another_buyer_with_the_id_box_empty_asks_for_the_id_again(
        ops_client, dept001, stored_product):
    # given: an admin draft for 张秀英 with her ID, registered cards
    cards = stock(stored_product, count=2)
    response = ops_client.post(reverse(ADD), {**order_form(dept001, cards), **payments_form()})
    assert response.status_code == 302, response.context["adminform"].form.errors
    order = SaleOrder.objects.get()
    assert order.buyer_id_digest == pii_digest(FIRST_ID)
    url = reverse("admin:cards_saleorder_change", args=[order.pk])

    # when: renamed to another buyer with the ID box left empty
    response = ops_client.post(url, change_form(order, order_form(dept001, cards, buyer_name="李四",
                                                                  buyer_id_number="")))

    # then: the real-name rule asks for the ID again, and the order still holds the first buyer with her own ID
    assert response.status_code == 200
    assert "Real-name rule" in " ".join(response.context["adminform"].form.errors["buyer_id_number"])
    order.refresh_from_db()
    assert (order.buyer_name, order.buyer_id_name, order.buyer_id_digest) == ("张秀英", "张秀英",
                                                                             pii_digest(FIRST_ID))

    # when: the second buyer's own ID is typed, and the order is paid
    response = ops_client.post(url, change_form(order, order_form(dept001, cards, buyer_name="李四",
                                                                  buyer_id_number=SECOND_ID)))
    assert response.status_code == 302, response.context["adminform"].form.errors
    order.refresh_from_db()
    order = sale_order_pay(order=order, actor=order.created_by, payments=[cash("1000.00")])

    # then: the order and the cards' holder are the second person with the second person's ID
    assert (order.buyer_name, order.buyer_id_name, order.buyer_id_digest) == ("李四", "李四", pii_digest(SECOND_ID))
    assert set(Card.objects.filter(sale_order=order).values_list("holder_name", flat=True)) == {"李四"}


def test_a_saved_id_is_kept_for_the_same_name_and_id_type_only(ops_client, dept001, stored_product):
    cards = stock(stored_product, count=1)
    ops_client.post(reverse(ADD), {**order_form(dept001, cards), **payments_form()})
    order = SaleOrder.objects.get()
    url = reverse("admin:cards_saleorder_change", args=[order.pk])

    same = ops_client.post(url, change_form(order, order_form(dept001, cards, buyer_id_number="",
                                                              buyer_phone="13900001111")))
    assert same.status_code == 302
    order.refresh_from_db()
    assert order.buyer_id_digest == pii_digest(FIRST_ID) and order.buyer_phone == "13900001111"

    other_type = ops_client.post(url, change_form(order, order_form(dept001, cards, buyer_id_number="",
                                                                    buyer_id_type="passport")))
    assert other_type.status_code == 200
    assert "buyer_id_number" in other_type.context["adminform"].form.errors


def test_an_agent_renamed_with_the_id_box_empty_asks_for_the_agents_id_again(ops_client, dept001, stored_product):
    cards = stock(stored_product, count=1)
    agent = {"agent_name": "李经办", "agent_id_type": "resident_id", "agent_id_number": AGENT_ID,
             "agent_phone": "13900139000"}
    ops_client.post(reverse(ADD), {**order_form(dept001, cards, **agent), **payments_form()})
    order = SaleOrder.objects.get()
    assert order.agent_id_digest == pii_digest(AGENT_ID)

    response = ops_client.post(reverse("admin:cards_saleorder_change", args=[order.pk]), change_form(
        order, order_form(dept001, cards, **{**agent, "agent_name": "王五", "agent_id_number": ""})))

    assert response.status_code == 200
    assert "Real-name rule" in " ".join(response.context["adminform"].form.errors["agent_id_number"])
    order.refresh_from_db()
    assert (order.agent_name, order.agent_id_name, order.agent_id_digest) == ("李经办", "李经办", pii_digest(AGENT_ID))


def test_a_renamed_buyer_of_bearer_cards_loses_the_id_on_file(dept001, bearer_product, hq_admin):
    # Below the real-name limits nothing asks for the ID, but the first person's ID must not stay on the second.
    cards = stock(bearer_product, store=dept001)
    line = [SaleLineInput(first=cards[0].card_no, amount=Decimal("500.00"))]
    order = sale_order_create(data=SaleInput(store=dept001, lines=line, buyer=PartyInput(
        name="张秀英", id_type="resident_id", id_number=FIRST_ID)), created_by=hq_admin)

    order = sale_order_update(order=order, actor=hq_admin, data=SaleInput(
        store=dept001, lines=line, buyer=PartyInput(name="李四", id_type="resident_id")))

    assert order.buyer_name == "李四" and not order.buyer_id_digest and not order.buyer_id_masked


def test_a_company_order_records_its_agent_with_the_agents_id(ops_client, dept001, stored_product):
    cards = stock(stored_product, count=1)
    form = order_form(dept001, cards, buyer_type="company", buyer_name="重庆某某有限公司", buyer_id_type="",
                      buyer_id_number="", buyer_credit_code=USCC, buyer_phone="023-68881234")

    response = ops_client.post(reverse(ADD), {**form, **payments_form()})

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "Real-name rule" in " ".join(errors["agent_id_number"]) and "agent_name" in errors
    assert not SaleOrder.objects.exists()
    response = ops_client.post(reverse(ADD), {**form, "agent_name": "李经办", "agent_id_type": "resident_id",
                                              "agent_id_number": AGENT_ID, "agent_phone": "13900139000",
                                              **payments_form()})
    assert response.status_code == 302
    assert SaleOrder.objects.get().agent_id_digest == pii_digest(AGENT_ID)


def test_a_person_invoiced_to_a_company_pays_five_thousand_by_transfer_only(ops_client, dept001, bearer_product):
    cards = stock(bearer_product, count=10)
    form = order_form(dept001, cards, invoice_title="重庆某某有限公司", invoice_tax_no=USCC)

    refused = ops_client.post(reverse(ADD), {**form, **payments_form({"method": "cash", "amount": "5000.00"})},
                              follow=True)

    assert any("Non-cash rule" in text and "invoiced to a company" in text for text in _messages(refused))
    assert not SaleOrder.objects.exists()
    response = ops_client.post(reverse(ADD), {**form, **payments_form(transfer_line("5000.00"))})
    assert response.status_code == 302
    assert SaleOrder.objects.get().payments.get().method == "bank_transfer"


# === 2. No sale without a filing number ====================================================================


@pytest.fixture
def no_filing_number(dept001) -> LegalEntity:
    entity = dept001.format.legal_entity
    LegalEntity.objects.filter(pk=entity.pk).update(prepaid_filing_no="")
    entity.refresh_from_db()
    return entity


def test_a_desk_sale_without_the_issuers_filing_number_is_refused_naming_it(desk, dept001, bearer_product,
                                                                            no_filing_number):
    card = stock(bearer_product, store=dept001)[0]

    response = desk.post(reverse("cards:sale"), sale_form(f"{card.card_no} 500"))

    assert response.status_code == 422
    text = desk_errors(response)
    assert "Filing rule" in text and no_filing_number.name in text and "备案编号" in text
    assert not SaleOrder.objects.exists()
    card.refresh_from_db()
    assert card.status == Card.Status.INACTIVE and not CardLedgerEntry.objects.exists()


def test_a_desk_top_up_without_the_issuers_filing_number_is_refused(desk, dept001, stored_product, card_factory,
                                                                   no_filing_number):
    card = card_factory(stored_product, balance="100.00", store=dept001)
    form = {**sale_form(""), "card_no": card.card_no, "amount": "100.00", "buyer_name": "张秀英",
            "buyer_id_number": FIRST_ID, "buyer_phone": "13800138000"}
    del form["cards"]

    response = desk.post(reverse("cards:top_up"), form)

    assert response.status_code == 422 and "备案编号" in desk_errors(response)
    card.refresh_from_db()
    assert card.balance == Decimal("100.00") and not SaleOrder.objects.exists()


def test_an_admin_order_without_the_issuers_filing_number_is_refused_at_the_store(ops_client, dept001,
                                                                                  bearer_product, no_filing_number):
    cards = stock(bearer_product, count=1)

    response = ops_client.post(reverse(ADD), {**order_form(dept001, cards), **payments_form()})

    assert response.status_code == 200
    assert "备案编号" in " ".join(response.context["adminform"].form.errors["store"])
    assert not SaleOrder.objects.exists()


def test_an_order_written_before_the_filing_number_was_cleared_is_not_paid(ops_client, dept001, bearer_product,
                                                                           card_ops):
    cards = stock(bearer_product, store=dept001, count=1)
    order = sale_order_create(data=SaleInput(store=dept001, lines=[SaleLineInput(first=cards[0].card_no)]),
                              created_by=card_ops, payments=[cash("500.00")])
    LegalEntity.objects.filter(pk=dept001.format.legal_entity_id).update(prepaid_filing_no=" ")

    response = _action(ops_client, "confirm_payment", [order])

    assert any("Filing rule" in text and order.order_no in text for text in _messages(response))
    order.refresh_from_db()
    assert order.status == SaleOrder.Status.DRAFT and not CardLedgerEntry.objects.exists()


# === 3. Orders split below a threshold =====================================================================


def test_a_company_paying_4999_then_2_in_cash_at_the_desk_is_refused_the_second(desk, dept001, bearer_product):
    # given: 4,999.00 of cards paid in cash by a company (cash allowed: under 5,000.00)
    cards = stock(bearer_product, store=dept001, count=6, face_value="1000.00")
    first = desk.post(reverse("cards:sale"), sale_form(f"{cards_text(cards[:4], '1000.00')}\n{cards[4].card_no} 999",
                                                       **company_at_desk()))
    assert first.status_code == 302
    earlier = SaleOrder.objects.get()

    # when: the same company buys 2.00 more in cash
    second = desk.post(reverse("cards:sale"), sale_form(f"{cards[5].card_no} 2", **company_at_desk()))

    # then: refused naming the non-cash rule and the earlier order; nothing is written
    assert second.status_code == 422
    text = desk_errors(second)
    assert "Non-cash rule" in text and earlier.order_no in text and "5001.00" in text
    assert SaleOrder.objects.count() == 1
    assert Card.objects.get(pk=cards[5].pk).status == Card.Status.INACTIVE

    # and: by bank transfer the desk says it needs approval in the back office, without a confirm button
    by_transfer = sale_form(
        f"{cards[5].card_no} 2", payment_method="bank_transfer", payer_account_name="重庆某某有限公司",
        payer_account_no="6222000011112222", payee_account_name="百货公司", payee_account_no="3100000011110000",
        **company_at_desk())
    page = desk.post(reverse("cards:sale"), {**by_transfer, "confirm": ""}).content.decode()
    assert "data-needs-approval" in page and 'name="confirm"' not in page
    refused = desk.post(reverse("cards:sale"), by_transfer)
    assert refused.status_code == 422 and "back office" in desk_errors(refused)
    assert SaleOrder.objects.count() == 1


def test_a_company_leaving_out_its_credit_code_is_refused_not_unlinked(desk, dept001, bearer_product):
    cards = stock(bearer_product, store=dept001, count=1)

    response = desk.post(reverse("cards:sale"), sale_form(f"{cards[0].card_no} 2",
                                                          **company_at_desk(buyer_credit_code="")))

    assert response.status_code == 422
    assert "unified social credit code" in " ".join(response.context["form"].errors["buyer_credit_code"])
    assert not SaleOrder.objects.exists()


def test_bearer_sales_without_an_identity_crossing_ten_thousand_in_a_day_ask_for_the_real_name(
        desk, dept001, bearer_product):
    cards = stock(bearer_product, store=dept001, count=11, face_value="1000.00")
    first = desk.post(reverse("cards:sale"), sale_form(f"{cards_text(cards[:9], '1000.00')}\n{cards[9].card_no} "
                                                       "999.99"))
    assert first.status_code == 302

    second = desk.post(reverse("cards:sale"), sale_form(f"{cards[10].card_no} 0.02"))

    assert second.status_code == 422
    errors = second.context["form"].errors
    assert "Real-name rule" in " ".join(errors["buyer_id_number"]) and "10000.01" in " ".join(errors["buyer_name"])
    assert SaleOrder.objects.count() == 1
    third = desk.post(reverse("cards:sale"), sale_form(f"{cards[10].card_no} 0.02", buyer_name="张秀英",
                                                       buyer_id_number=FIRST_ID, buyer_phone="13800138000"))
    assert third.status_code == 302
    assert SaleOrder.objects.order_by("-pk").first().buyer_id_digest == pii_digest(FIRST_ID)


def test_bearer_sales_without_an_identity_at_another_store_or_yesterday_are_not_added(
        dept001, super001, bearer_product, hq_admin):
    elsewhere = stock(bearer_product, store=super001, count=10, face_value="1000.00")
    here = stock(bearer_product, store=dept001, count=11, face_value="1000.00")
    sale_walk_in(data=SaleInput(store=super001, lines=[SaleLineInput(first=c.card_no) for c in elsewhere[:9]]),
                 payments=[cash("9000.00")], actor=hq_admin)
    yesterday = sale_walk_in(data=SaleInput(store=dept001, lines=[SaleLineInput(first=c.card_no) for c in here[:9]]),
                             payments=[cash("9000.00")], actor=hq_admin)
    SaleOrder.objects.filter(pk=yesterday.pk).update(created_at=timezone.now() - timedelta(days=1))

    plan = sale_order_check(data=SaleInput(store=dept001, lines=[SaleLineInput(first=here[9].card_no)]))

    assert not plan.real_name_required


def test_orders_with_the_same_invoice_taxpayer_number_are_added_up(dept001, bearer_product, hq_admin):
    # given: two people invoicing to the same company: each counts as the company, and they are one buyer
    cards = stock(bearer_product, store=dept001, count=5, face_value="1000.00")
    first = sale_walk_in(data=SaleInput(store=dept001, lines=[SaleLineInput(first=c.card_no) for c in cards[:4]],
                                        invoice_tax_no=USCC), payments=[cash("4000.00")], actor=hq_admin)

    with pytest.raises(CardRuleBroken, match=f"Non-cash rule.*{first.order_no}") as error:
        sale_walk_in(data=SaleInput(store=dept001, lines=[SaleLineInput(first=cards[4].card_no)],
                                    buyer=PartyInput(name="李四", id_type="resident_id", id_number=SECOND_ID),
                                    invoice_tax_no=USCC), payments=[cash("1000.00")], actor=hq_admin)

    assert "payments" in error.value.fields


def test_a_company_and_its_taxpayer_number_on_a_persons_invoice_are_one_buyer(dept001, bearer_product, hq_admin):
    cards = stock(bearer_product, store=dept001, count=5, face_value="1000.00")
    sale_walk_in(data=SaleInput(store=dept001, buyer_type="company", buyer=company(),
                                lines=[SaleLineInput(first=c.card_no) for c in cards[:4]]),
                 payments=[cash("4000.00")], actor=hq_admin)

    plan = sale_order_check(data=SaleInput(store=dept001, lines=[SaleLineInput(first=cards[4].card_no)],
                                           invoice_tax_no=USCC))

    assert plan.split_suspected and plan.transfer_only and plan.approval_required
    other = sale_order_check(data=SaleInput(store=dept001, lines=[SaleLineInput(first=cards[4].card_no)],
                                            invoice_tax_no=OTHER_USCC))
    assert not other.split_suspected and not other.transfer_only


def test_cancelled_orders_do_not_count_and_later_ones_never_count_against_an_earlier_one(
        dept001, bearer_product, hq_admin):
    cards = stock(bearer_product, store=dept001, count=6, face_value="1000.00")
    buyer = dict(buyer_type="company", buyer=company())
    small = sale_order_create(data=SaleInput(store=dept001, lines=[SaleLineInput(first=cards[0].card_no)], **buyer),
                              created_by=hq_admin, payments=[cash("1000.00")])
    large = sale_order_create(data=SaleInput(store=dept001, lines=[SaleLineInput(first=c.card_no)
                                                                   for c in cards[1:5]], **buyer),
                              created_by=hq_admin)

    # the earlier draft counts against the later order; the later order does not count against the earlier one
    assert sale_order_check(data=SaleInput(store=dept001, lines=[SaleLineInput(first=c.card_no)
                                                                 for c in cards[1:5]], **buyer),
                            stored=large, now=large.created_at).transfer_only
    assert sale_order_pay(order=small, actor=hq_admin).status == SaleOrder.Status.COMPLETED
    sale_order_cancel(order=large, actor=hq_admin)
    later = sale_walk_in(data=SaleInput(store=dept001, lines=[SaleLineInput(first=c.card_no) for c in cards[1:4]],
                                        **buyer), payments=[cash("3000.00")], actor=hq_admin)
    assert later.status == SaleOrder.Status.COMPLETED and not later.split_suspected


def test_a_split_order_is_approved_in_the_inbox_then_paid_by_transfer_never_cash(
        ops_client, dept001, bearer_product, card_ops, hq_approver):
    # given: 4,999.00 paid in cash, then a 2.00 order of the same company written with a cash line
    cards = stock(bearer_product, store=dept001, count=6, face_value="1000.00")
    buyer = dict(buyer_type="company", buyer=company())
    first = sale_walk_in(data=SaleInput(store=dept001, lines=[
        *[SaleLineInput(first=c.card_no) for c in cards[:4]], SaleLineInput(first=cards[4].card_no,
                                                                             amount=Decimal("999.00"))], **buyer),
        payments=[cash("4999.00")], actor=card_ops)
    order = sale_order_create(data=SaleInput(store=dept001, lines=[SaleLineInput(
        first=cards[5].card_no, amount=Decimal("2.00"))], **buyer), created_by=card_ops)
    SalePayment.objects.create(order=order, method="cash", amount=Decimal("2.00"))

    # when: submitted and paid from the admin: the cash line is refused naming the rule and the first order
    response = _action(ops_client, "submit_orders", [order])
    assert any("Non-cash rule" in text and first.order_no in text for text in _messages(response))
    order.refresh_from_db()
    assert order.status == SaleOrder.Status.DRAFT
    response = _action(ops_client, "confirm_payment", [order])
    assert not any("order paid" in text for text in _messages(response))

    # when: the line is a bank transfer: submitted, it waits for approval under the split-order policy
    SalePayment.objects.filter(order=order).delete()
    SalePayment.objects.create(order=order, method="bank_transfer", amount=Decimal("2.00"),
                               payer_account_name="重庆某某有限公司", payer_account_no="6222000011112222",
                               payee_account_name="百货公司", payee_account_no="3100000011110000")
    _action(ops_client, "submit_orders", [order])
    order.refresh_from_db()
    assert order.status == SaleOrder.Status.PENDING and order.split_suspected
    request = ApprovalRequest.objects.get(object_id=str(order.pk), status=ApprovalRequest.Status.PENDING)
    assert request.action == "cards.sale_split_approve" and request.policy is not None
    assert request.payload["summed_with"] == [first.order_no]
    assert any("cannot be paid now" in text for text in _messages(_action(ops_client, "confirm_payment", [order])))

    # then: approved by another person, it is paid by transfer; cash is still refused
    approval_request_approve(approval_request=request, approver=hq_approver)
    with pytest.raises(CardRuleBroken, match="Non-cash rule"):
        sale_order_pay(order=order, actor=card_ops, payments=[cash("2.00")])
    response = _action(ops_client, "confirm_payment", [order])
    assert "1 order paid; its cards are active." in _messages(response)
    assert Card.objects.get(pk=cards[5].pk).balance == Decimal("2.00")
    assert ledgers_check().ok


def test_an_order_approved_before_it_added_up_is_not_paid_without_the_split_approval(
        dept001, bearer_product, hq_admin):
    cards = stock(bearer_product, store=dept001, count=6, face_value="1000.00")
    buyer = dict(buyer_type="company", buyer=company())
    draft = sale_order_create(data=SaleInput(store=dept001, lines=[
        SaleLineInput(first=cards[0].card_no, amount=Decimal("500.00"))], **buyer), created_by=hq_admin)
    later = sale_order_submit(order=sale_order_create(data=SaleInput(store=dept001, lines=[
        SaleLineInput(first=c.card_no) for c in cards[1:5]], **buyer), created_by=hq_admin), actor=hq_admin)
    assert later.status == SaleOrder.Status.APPROVED
    # the earlier draft grows from 500.00 to 1,500.00: together 5,500.00
    sale_order_update(order=draft, actor=hq_admin, data=SaleInput(store=dept001, lines=[
        SaleLineInput(first=cards[0].card_no, amount=Decimal("500.00")), SaleLineInput(first=cards[5].card_no)],
        **buyer))

    with pytest.raises(CardRuleBroken, match="needs approval.*cancel it and write it again"):
        sale_order_pay(order=later, actor=hq_admin, payments=[transfer("4000.00")])


# === 4. Mixed payment lines =================================================================================


def test_a_company_order_paid_partly_in_cash_and_partly_by_transfer_is_refused_naming_the_cash_line(
        ops_client, dept001, bearer_product, card_ops):
    cards = stock(bearer_product, count=10)
    form = order_form(dept001, cards, buyer_type="company", buyer_name="重庆某某有限公司", buyer_id_type="",
                      buyer_id_number="", buyer_credit_code=USCC, buyer_phone="023-68881234")

    response = ops_client.post(reverse(ADD), {**form, **payments_form(
        {"method": "cash", "amount": "1000.00"}, transfer_line("4000.00"))}, follow=True)

    assert any("Non-cash rule" in text and "payment 1 (cash 1000.00)" in text for text in _messages(response))
    assert not SaleOrder.objects.exists()
    order = sale_order_create(data=SaleInput(store=dept001, channel="group", buyer_type="company", buyer=company(),
                                             lines=[SaleLineInput(first=c.card_no) for c in cards]),
                              created_by=card_ops)
    SalePayment.objects.create(order=order, method="cash", amount=Decimal("1000.00"))
    SalePayment.objects.create(order=order, method="bank_transfer", amount=Decimal("4000.00"),
                               payer_account_name="重庆某某有限公司", payer_account_no="6222000011112222",
                               payee_account_name="百货公司", payee_account_no="3100000011110000")
    response = _action(ops_client, "confirm_payment", [order])
    assert any("Non-cash rule" in text and order.order_no in text for text in _messages(response))
    assert not Card.objects.filter(status=Card.Status.ACTIVE).exists()


def test_a_split_order_paid_partly_in_cash_is_refused(dept001, bearer_product, hq_admin):
    cards = stock(bearer_product, store=dept001, count=6, face_value="1000.00")
    buyer = dict(buyer_type="company", buyer=company())
    sale_walk_in(data=SaleInput(store=dept001, lines=[SaleLineInput(first=c.card_no) for c in cards[:4]], **buyer),
                 payments=[cash("4000.00")], actor=hq_admin)

    with pytest.raises(CardRuleBroken, match="payment 1 \\(cash 500.00\\)") as error:
        sale_order_create(data=SaleInput(store=dept001, lines=[SaleLineInput(first=c.card_no) for c in cards[4:]],
                                         **buyer), created_by=hq_admin,
                          payments=[cash("500.00"), transfer("1500.00")])

    assert "payments" in error.value.fields and SaleOrder.objects.count() == 1
