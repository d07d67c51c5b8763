"""The card desk: a walk-in customer buys a card, a card is topped up, the receipt prints the filing number."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from cards.models import Card, CardLedgerEntry, SaleOrder
from core.pii import resident_id_check_digit
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

ID_NUMBER = "11010519491231002" + resident_id_check_digit("11010519491231002")


def stock_card(product, *, store, card_no, face_value="500.00") -> Card:
    return Card.objects.create(card_no=card_no, product=product, status=Card.Status.INACTIVE,
                               stock_status=Card.Stock.IN_STOCK, location=store, face_value=Decimal(face_value))


def _clerk(username: str, *, stores, card_permissions=("sell_card",)) -> User:
    """A desk user of those stores holding only the desk permission and the card permissions given."""
    return StaffFactory(username=username, stores=stores,
                        permissions=["membership.use_service_desk", *(f"cards.{name}" for name in card_permissions)])


@pytest.fixture
def desk(client, dept001):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(_clerk("dept001_card_desk", stores=[dept001]))
    return client


def sale_form(cards: str, **fields) -> dict:
    data = {"cards": cards, "member_no": "", "buyer_type": "person", "buyer_name": "", "buyer_id_type": "resident_id",
            "buyer_id_number": "", "buyer_credit_code": "", "buyer_phone": "", "agent_name": "",
            "agent_id_type": "resident_id", "agent_id_number": "", "agent_phone": "", "payment_method": "cash",
            "payment_reference": "", "payer_account_name": "", "payer_account_no": "", "payee_account_name": "",
            "payee_account_no": ""}
    data.update(fields)
    return data


def test_a_walk_in_customer_buys_a_card_at_the_desk(desk, dept001, bearer_product):
    # given: a 500 bearer card in stock at DEPT001
    card = stock_card(bearer_product, store=dept001, card_no="6500000000017")
    url = reverse("cards:sale")
    assert desk.get(url).status_code == 200

    # when: the clerk scans it, checks, and confirms once paid by WeChat
    checked = desk.post(url, sale_form("6500000000017", payment_method="wechat"))
    assert checked.status_code == 200 and b"data-amount-due" in checked.content
    card.refresh_from_db()
    assert card.status == Card.Status.INACTIVE
    response = desk.post(url, sale_form("6500000000017", payment_method="wechat", confirm="1"))

    # then: the card is active with its load, and the receipt shows the filing number and invoice item 601
    order = SaleOrder.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("cards:receipt", args=[order.order_no])
    card.refresh_from_db()
    assert card.status == Card.Status.ACTIVE and card.balance == Decimal("500.00") and card.sold_store == dept001
    assert order.channel == SaleOrder.Channel.WALK_IN and order.payments.get().method == "wechat"
    assert CardLedgerEntry.objects.get(card=card).kind == CardLedgerEntry.Kind.LOAD
    slip = desk.get(response["Location"]).content.decode()
    filing_no = dept001.format.legal_entity.prepaid_filing_no
    assert filing_no and filing_no in slip and "item code 601" in slip


def test_the_receipt_is_chinese_by_default(client, dept001, bearer_product):
    client.force_login(_clerk("zh_desk", stores=[dept001]))
    stock_card(bearer_product, store=dept001, card_no="6500000000025")

    response = client.post(reverse("cards:sale"), sale_form("6500000000025 300", confirm="1"), follow=True)

    body = response.content.decode()
    assert response.status_code == 200 and '<html lang="zh-hans">' in body
    assert Card.objects.get(card_no="6500000000025").balance == Decimal("300.00")


def test_a_registered_card_without_the_buyers_id_is_refused_with_the_rule_next_to_the_field(
        desk, dept001, stored_product):
    stock_card(stored_product, store=dept001, card_no="6500000000033")

    response = desk.post(reverse("cards:sale"), sale_form("6500000000033 1000", buyer_name="张秀英",
                                                          buyer_phone="13800138000", confirm="1"))

    assert response.status_code == 422
    assert "Real-name rule" in " ".join(response.context["form"].errors["buyer_id_number"])
    assert not SaleOrder.objects.exists()
    response = desk.post(reverse("cards:sale"), sale_form("6500000000033 1000", buyer_name="张秀英",
                                                          buyer_id_number=ID_NUMBER, buyer_phone="13800138000",
                                                          confirm="1"))
    assert response.status_code == 302
    assert Card.objects.get(card_no="6500000000033").holder_name == "张秀英"


def test_a_card_above_its_cap_or_from_another_store_is_refused(desk, dept001, super001, bearer_product):
    stock_card(bearer_product, store=dept001, card_no="6500000000041")
    stock_card(bearer_product, store=super001, card_no="6500000000058")

    over = desk.post(reverse("cards:sale"), sale_form("6500000000041 1200", confirm="1"))
    elsewhere = desk.post(reverse("cards:sale"), sale_form("6500000000058", confirm="1"))

    assert over.status_code == 422 and "Card cap" in " ".join(over.context["form"].errors["__all__"])
    assert elsewhere.status_code == 409 and "not in stock at" in " ".join(elsewhere.context["form"].errors["__all__"])
    assert not Card.objects.filter(status=Card.Status.ACTIVE).exists()


def test_an_unknown_card_number_is_named(desk, dept001):
    response = desk.post(reverse("cards:sale"), sale_form("6599999999999"))

    assert response.status_code == 400
    assert "6599999999999" in " ".join(response.context["form"].errors["cards"])


def test_a_reloadable_card_is_topped_up_at_the_desk(desk, dept001, stored_product, card_factory):
    card = card_factory(stored_product, balance="4500.00", store=dept001)
    url = reverse("cards:top_up")
    form = {**sale_form(""), "card_no": card.card_no, "amount": "600.00", "buyer_name": "张秀英",
            "buyer_id_number": ID_NUMBER, "buyer_phone": "13800138000", "confirm": "1"}
    del form["cards"]

    too_much = desk.post(url, form)
    assert too_much.status_code == 422 and "Card cap" in too_much.content.decode()
    response = desk.post(url, {**form, "amount": "500.00"})

    card.refresh_from_db()
    assert response.status_code == 302 and card.balance == Decimal("5000.00")
    assert SaleOrder.objects.get().kind == SaleOrder.Kind.TOP_UP


def test_a_clerk_without_the_card_permission_is_turned_away(client, dept001, bearer_product):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(_clerk("no_cards", stores=[dept001], card_permissions=()))
    stock_card(bearer_product, store=dept001, card_no="6500000000066")

    response = client.post(reverse("cards:sale"), sale_form("6500000000066", confirm="1"))

    assert response.status_code == 403 and "may not sell cards" in response.content.decode()
    assert not SaleOrder.objects.exists()


def test_the_receipt_of_another_stores_order_is_not_shown(desk, client, super001, bearer_product, django_user_model):
    other_clerk = _clerk("super001_card_desk", stores=[super001])
    stock_card(bearer_product, store=super001, card_no="6500000000074")
    from django.test import Client

    other = Client(HTTP_ACCEPT_LANGUAGE="en")
    other.force_login(other_clerk)
    other.post(reverse("cards:sale"), sale_form("6500000000074", confirm="1"))
    order = SaleOrder.objects.get()

    assert desk.get(reverse("cards:receipt", args=[order.order_no])).status_code == 404
    assert other.get(reverse("cards:receipt", args=[order.order_no])).status_code == 200
