"""Card sale orders, PIN cards and card approvals of the demo, for `seed_demo` (safe to run twice).

Cards of their own (prefix 8697, `showcase_card_no(i)`), so the README's card numbers exist whatever
`--cards` is asked for; they arrive in stock as the demo cards do, then everything goes through the services:

- a walk-in sale (散客) at DEPT001's desk by `dept001_desk`, paid by WeChat Pay (`sale_walk_in`): cards 1-3,
  500.00 each, bought by 张秀英 of the README; each gets the PIN `DEMO_PIN`, so the POS debit asks for it;
- a corporate order (团购) of cards 11-15 at 1,000.00 for a company, paid by bank transfer (`sale_order_pay`);
- a corporate order of cards 21-30 with a discount, submitted and waiting for a second person's approval;
- a production batch (制卡批次) of STORED cards submitted for approval (the numbers are made once approved).

Requests are asked for by `dept001_manager` (the orders) and by the disabled `demo_seed` user (the batch), so
the demo HQ approver `hq_approver` may approve each of them in 审批 → 审批申请.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from stdnum import luhn

from cards.models import Card, CardEvent, CardProduct, ProductionBatch, SaleOrder
from cards.services.ledger import card_event, pin_hash
from cards.services.production import batch_create, batch_submit
from cards.services.sales import (
    PartyInput,
    PaymentInput,
    SaleInput,
    SaleLineInput,
    sale_order_create,
    sale_order_pay,
    sale_order_submit,
    sale_walk_in,
)
from stores.models import Store

CARD_PREFIX = "8697"
STORE_CODE = "DEPT001"
DESK_USER = "dept001_desk"
MANAGER_USER = "dept001_manager"
DEMO_PIN = "135790"

WALK_IN_CARDS = (1, 3, Decimal("500.00"))
GROUP_PAID_CARDS = (11, 15, Decimal("1000.00"))
GROUP_PENDING_CARDS = (21, 30, Decimal("1000.00"))
GROUP_PENDING_DISCOUNT = Decimal("200.00")

WALK_IN_NOTE = "演示数据：散客购卡（README 示例卡，设有密码）"
GROUP_PAID_NOTE = "演示数据：企业团购储值卡，银行转账已到账"
GROUP_PENDING_NOTE = "演示数据：企业团购储值卡，九八折待审批"
BATCH_NOTE = "演示数据：储值卡 500 元面值 200 张"

# 张秀英 of the README buys the walk-in cards (a registered card is sold in a real name).
WALK_IN_BUYER = {"name": "张秀英", "id_type": "resident_id", "phone": "13800138000"}
COMPANY_PAID = {"name": "重庆渝新科技有限公司", "body": "9150010320284791", "phone": "02363101234",
                "address": "重庆市渝北区金开大道 66 号", "account_no": "3100020109200022222"}
COMPANY_PENDING = {"name": "重庆山城物流有限公司", "body": "9150010520284792", "phone": "02363205678",
                   "address": "重庆市江北区建新北路 9 号", "account_no": "3100020109200033333"}
AGENT_PAID = {"name": "刘志强", "id_type": "resident_id", "first17": "50010319800214031", "phone": "13983002233"}
AGENT_PENDING = {"name": "陈丽华", "id_type": "resident_id", "first17": "50010519860930052", "phone": "13983004455"}


@dataclass
class CardShowcaseResult:
    cards: int = 0
    orders: list[str] = field(default_factory=list)
    pin_cards: list[str] = field(default_factory=list)
    approvals: list[str] = field(default_factory=list)


def showcase_card_no(index: int) -> str:
    body = f"{CARD_PREFIX}{index:011d}"
    return body + luhn.calc_check_digit(body)


def showcase_card_range(cards: tuple) -> list[str]:
    first, last, _amount = cards
    return [showcase_card_no(index) for index in range(first, last + 1)]


def _resident_id(first17: str) -> str:
    from core.pii import resident_id_check_digit

    return first17 + resident_id_check_digit(first17)


def _company(values: dict) -> PartyInput:
    from stores.demo import _credit_code

    return PartyInput(name=values["name"], credit_code=_credit_code(values["body"]), phone=values["phone"],
                      address=values["address"])


def _agent(values: dict) -> PartyInput:
    return PartyInput(name=values["name"], id_type=values["id_type"], id_number=_resident_id(values["first17"]),
                      phone=values["phone"])


def _stock(*, cards: tuple, product: CardProduct, location: Store | None) -> int:
    """The showcase cards of a range, in stock (at `location`, or headquarters'), as the demo cards arrive."""
    made = 0
    existing = set(Card.objects.filter(card_no__in=showcase_card_range(cards)).values_list("card_no", flat=True))
    for card_no in showcase_card_range(cards):
        if card_no in existing:
            continue
        card = Card.objects.create(card_no=card_no, product=product, status=Card.Status.INACTIVE,
                                   stock_status=Card.Stock.IN_STOCK, location=location, face_value=cards[2])
        card_event(card=card, kind=CardEvent.Kind.RECEIVED, store=location, note="演示数据：入库")
        made += 1
    return made


def _line(cards: tuple) -> SaleLineInput:
    first, last = showcase_card_range(cards)[0], showcase_card_range(cards)[-1]
    return SaleLineInput(first=first, last=last, amount=cards[2])


def _total(cards: tuple) -> Decimal:
    return cards[2] * (cards[1] - cards[0] + 1)


def _user(username: str):
    return get_user_model().objects.filter(username=username, is_active=True).first()


@transaction.atomic
def seed_card_showcase(*, requester) -> CardShowcaseResult:
    """The sale orders, PIN cards and batch request above; what exists already is left as it is."""
    from cards.demo import seed_card_products
    from membership.demo.showcase import README_MEMBER

    result = CardShowcaseResult()
    store = Store.objects.select_related("format__legal_entity").filter(code=STORE_CODE).first()
    desk, manager = _user(DESK_USER), _user(MANAGER_USER)
    if store is None or desk is None or manager is None:
        return result
    _created, products = seed_card_products()
    stored = products["STORED"]
    result.cards += _stock(cards=WALK_IN_CARDS, product=stored, location=store)
    result.cards += _stock(cards=GROUP_PAID_CARDS, product=stored, location=None)
    result.cards += _stock(cards=GROUP_PENDING_CARDS, product=stored, location=None)

    if not SaleOrder.objects.filter(note=WALK_IN_NOTE).exists():
        buyer = PartyInput(**WALK_IN_BUYER, id_number=README_MEMBER["id_number"])
        order = sale_walk_in(
            data=SaleInput(store=store, channel=SaleOrder.Channel.WALK_IN, buyer_type=SaleOrder.BuyerType.PERSON,
                           buyer=buyer, lines=[_line(WALK_IN_CARDS)], note=WALK_IN_NOTE),
            payments=[PaymentInput(method="wechat", amount=_total(WALK_IN_CARDS), reference="DEMO-WX-0001")],
            actor=desk,
        )
        result.orders.append(order.order_no)
        for card in Card.objects.filter(card_no__in=showcase_card_range(WALK_IN_CARDS), pin_hash=""):
            Card.objects.filter(pk=card.pk).update(pin_hash=pin_hash(card.card_no, DEMO_PIN))
            card_event(card=card, kind=CardEvent.Kind.PIN_RESET, store=store, actor=desk,
                       note="演示数据：持卡人在服务台设置密码")
            result.pin_cards.append(card.card_no)

    if not SaleOrder.objects.filter(note=GROUP_PAID_NOTE).exists():
        company = _company(COMPANY_PAID)
        order = sale_order_create(
            data=SaleInput(store=store, channel=SaleOrder.Channel.GROUP, buyer_type=SaleOrder.BuyerType.COMPANY,
                           buyer=company, agent=_agent(AGENT_PAID), lines=[_line(GROUP_PAID_CARDS)],
                           invoice_title=company.name, invoice_tax_no=company.credit_code, note=GROUP_PAID_NOTE),
            created_by=manager,
        )
        sale_order_pay(order=order, actor=manager, payments=[PaymentInput(
            method="bank_transfer", amount=_total(GROUP_PAID_CARDS), reference="DEMO-TRANSFER-0001",
            payer_account_name=company.name, payer_account_no=COMPANY_PAID["account_no"],
            payee_account_name=store.format.legal_entity.name, payee_account_no="3100020109200067890",
        )])
        result.orders.append(order.order_no)

    if not SaleOrder.objects.filter(note=GROUP_PENDING_NOTE).exists():
        company = _company(COMPANY_PENDING)
        order = sale_order_create(
            data=SaleInput(store=store, channel=SaleOrder.Channel.GROUP, buyer_type=SaleOrder.BuyerType.COMPANY,
                           buyer=company, agent=_agent(AGENT_PENDING), lines=[_line(GROUP_PENDING_CARDS)],
                           discount=GROUP_PENDING_DISCOUNT, invoice_title=company.name,
                           invoice_tax_no=company.credit_code, note=GROUP_PENDING_NOTE),
            created_by=manager,
        )
        sale_order_submit(order=order, actor=manager,
                          reason="演示数据：企业团购 10 张储值卡，给予 200 元折扣，请审批")
        result.orders.append(order.order_no)
        result.approvals.append("cards.sale_approve")

    if requester is not None and not ProductionBatch.objects.filter(note=BATCH_NOTE).exists():
        batch = batch_create(product=stored, quantity=200, face_value=Decimal("500.00"),
                             vendor="重庆金雅迪彩色印刷有限公司", requested_by=requester, note=BATCH_NOTE)
        batch_submit(batch=batch, requested_by=requester,
                     reason="演示数据：春节备货，储值卡 500 元面值 200 张，请审批制卡")
        result.approvals.append("cards.batch_produce")
    return result
