"""Report history for `seed_demo` (`reports_seed`): enough past for every report and chart to show something.

The other seeds leave about a year of member purchases, walk-in sales of the last month and cards loaded without
sale orders. The reports compare a month with the same month a year earlier and draw the 13 months up to a day, so
this adds, in the demo's established way (rows written directly where the services would stamp the clock, every
balance moved through its ledger door with the time it happened):

- card sale orders over the last 14 full months and this month at each format's first store (DEPT001, SUPER001 ...):
  every month a few walk-in orders (散客, registered cards in the buyer's real name or bearer cards) and one or two
  corporate orders (团购, paid by bank transfer, with the company's agent), checked by the sale rules
  (`sale_order_check`, at the order's own time) and completed with their payment lines; each order's new cards
  (prefix 8695) are loaded through `card_post` when it is paid; many are spent later at stores of other formats
  (a POS card transaction with its ledger row, as `card_debit` writes them) and a few registered ones topped up.
  The months are seasonal (Spring Festival, Mid-Autumn, year end) and each month sells about 18% more than the same
  month a year earlier;
- purchases in the months 13 and 14 before this one, up to where the members' year of purchases starts, at every
  open store: members' (earning points through `points_post` at the time they became usable) and walk-in sales;
- the three report definitions of the demo with their beat schedules, each run once so the archive has files.

Settlement is respected: nothing is written on a day of a settlement period that is closing or locked, no card
payment on a day whose POS files were reconciled, and a day that already has a clearing run is cleared again.
Safe to run twice: orders are found by their numbers (prefix RD, top-ups RT), purchases by their receipts (RPTH-),
definitions by name; everything is planned from seeded random streams, so a second run on the same day adds nothing.
"""

import bisect
import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext
from stdnum import luhn

from cards.demo import seed_card_products
from cards.demo.brands import _seed_user
from cards.errors import CardOperationRefused, CardRuleBroken, SaleOrderInvalid
from cards.models import (
    Card,
    CardEvent,
    CardLedgerEntry,
    CardProduct,
    CardTransaction,
    SaleLine,
    SaleOrder,
    SalePayment,
)
from cards.services.ledger import card_cap, card_event, card_post, card_status_change
from cards.services.sales import PartyInput, PaymentInput, SaleInput, SaleLineInput, sale_order_check
from core.dates import moment_months_add, months_add
from membership.demo import CATEGORIES, _basket, demo_mobile, demo_name, demo_resident_id
from membership.models import EarnRule, Member, PointsEntry, PointsHold, Purchase
from membership.services import points_for_purchase
from membership.services.ledger import points_post
from reports.models import ReportDefinition, ReportRun
from settlement.models import ClearingRun, PosFile, SettlementPeriod
from stores.demo import _credit_code
from stores.models import Store

__all__ = ["reports_definitions_seed", "reports_history_seed", "reports_seed"]

DEMO_SEED = 20261208
CARD_PREFIX = "8695"
SALE_PREFIX = "RD"
TOP_UP_PREFIX = "RT"
PURCHASE_PREFIX = "RPTH-"
TRANSACTION_PREFIX = "RPT"
# The last 14 full months and this one.
MONTHS_BACK = 14
# Card sales of a month (cards loaded, yuan) at each format's first store, before season and growth.
MONTHLY_SALES = {"DEPT": 30_000, "SUPER": 16_000, "ELEC": 12_000, "AUTO": 10_000}
MONTHLY_SALES_OTHER = 10_000
# Gift cards sell before the Spring Festival, Mid-Autumn and the year end.
SEASON = {1: 1.8, 2: 1.4, 9: 1.5, 10: 1.1, 12: 1.3}
# Each month about this much above the same month a year earlier.
YEARLY_GROWTH = 1.18
WALK_IN_FACES = {"STORED": ("500.00", "1000.00"), "BEARER": ("100.00", "200.00", "500.00", "1000.00")}
GROUP_FACES = (("BEARER", "1000.00"), ("BEARER", "500.00"), ("STORED", "1000.00"))
# A corporate order is paid by bank transfer: at least the company transfer limit, at most this many cards.
GROUP_MIN = Decimal("5000.00")
GROUP_MAX_CARDS = 20
WALK_IN_METHODS = ("cash", "wechat", "alipay", "unionpay")
TOP_UP_AMOUNT = Decimal("500.00")
COMPANIES = (
    ("重庆渝佳电子科技有限公司", "9150010320284801"), ("成都锦程物流有限公司", "9151010520284802"),
    ("贵阳山水建设工程有限公司", "9152010220284803"), ("武汉江城医药有限公司", "9142010220284804"),
    ("重庆两江机电设备有限公司", "9150011220284805"), ("四川蜀味食品有限公司", "9151010720284806"),
    ("湖北楚天教育科技有限公司", "9142010620284807"), ("重庆嘉陵汽车配件有限公司", "9150010620284808"),
    ("成都天府软件园服务有限公司", "9151010020284809"), ("贵州黔南茶业有限公司", "9152270120284810"),
)
SALE_USERS = {"DEPT001": ("dept001_desk", "dept001_manager"), "SUPER001": ("super001_manager", "super001_manager")}
# Purchases in the window: one at every open store, and this many each month at the first store of each format.
PURCHASES_FIRST_STORE = 6
MEMBER_SHARE = 0.65
PURCHASE_METHODS = ("cash", "wechat", "alipay", "bank_card")
DEFINITIONS = (
    {"name": "每日储值卡报表", "kind": "cards", "period": ReportDefinition.Period.YESTERDAY,
     "scope": ReportDefinition.Scope.HQ, "frequency": ReportDefinition.Frequency.DAILY, "hour": 6,
     "recipients": ("finance_hq",)},
    {"name": "每周会员报表", "kind": "members", "period": ReportDefinition.Period.LAST_WEEK,
     "scope": ReportDefinition.Scope.HQ, "frequency": ReportDefinition.Frequency.WEEKLY, "hour": 7,
     "weekday": ReportDefinition.Weekday.MONDAY, "recipients": ()},
    {"name": "DEPT001 月度报表", "kind": "members", "period": ReportDefinition.Period.LAST_MONTH,
     "scope": ReportDefinition.Scope.STORE, "store": "DEPT001", "frequency": ReportDefinition.Frequency.MONTHLY,
     "hour": 8, "day_of_month": 1, "recipients": ("dept001_manager",)},
)


@dataclass
class CardPlan:
    card_no: str
    product: str
    face: Decimal


@dataclass
class OrderPlan:
    order_no: str
    kind: str
    channel: str
    store: Store
    moment: datetime
    cards: list[CardPlan]
    buyer: dict
    agent: dict = field(default_factory=dict)
    method: str = "cash"
    parent: "OrderPlan | None" = None
    follow_ups: list = field(default_factory=list)


@dataclass
class SpendPlan:
    card_no: str
    store: Store
    moment: datetime
    wish: Decimal
    transaction_id: str
    receipt_no: str


@dataclass
class _Settlement:
    """The days the demo must leave alone: periods closing or locked, days whose POS files were reconciled."""

    closed: list[tuple[date, date]]
    reconciled: set[date]

    @classmethod
    def read(cls) -> "_Settlement":
        closed = list(SettlementPeriod.objects.exclude(status=SettlementPeriod.Status.OPEN)
                      .values_list("starts_on", "ends_on"))
        reconciled = set(PosFile.objects.values_list("business_date", flat=True).distinct())
        return cls(closed=closed, reconciled=reconciled)

    def is_closed(self, day: date) -> bool:
        return any(first <= day <= last for first, last in self.closed)


@dataclass
class _Outcome:
    sale_orders: int = 0
    top_ups: int = 0
    cards: int = 0
    card_payments: int = 0
    refused: int = 0
    left_for_settlement: int = 0
    touched_days: set = field(default_factory=set)


def reports_seed(*, stdout=None, today: date | None = None, card_stores: tuple[str, ...] | None = None) -> dict:
    """Add the report history and the demo's report definitions (see the module's docstring); return what was made.

    Call it after every other seed: it reads their stores, staff, members and settlement. The history alone
    (`reports_history_seed`) may come before the settlement demo, which then clears and closes it with the rest.
    `card_stores` are the codes of the stores selling the cards (default: each format's first store)."""
    result = {**reports_history_seed(today=today, card_stores=card_stores), **reports_definitions_seed(today=today)}
    if stdout is not None:
        stdout.write(
            f"Reports: {result['sale_orders']} card sale orders and {result['top_ups']} top-ups over "
            f"{MONTHS_BACK + 1} months ({result['cards']} cards, {result['card_payments']} card payments), "
            f"{result['purchases']} earlier purchases ({result['points_entries']} points entries), "
            f"{result['definitions']} report definitions and {result['runs']} runs created"
            + (f"; {result['refused']} orders refused by the sale rules" if result["refused"] else "")
            + (f"; {result['left_for_settlement']} left out of closed settlement days"
               if result["left_for_settlement"] else "")
            + (f"; not run yet: {', '.join(result['runs_skipped'])}" if result["runs_skipped"] else "")
            + "."
        )
    return result


def _now_and_today(today: date | None) -> tuple[datetime, date]:
    now = timezone.now()
    if today is None or today == timezone.localdate(now):
        return now, timezone.localdate(now)
    return timezone.make_aware(datetime.combine(today, time(0, 0))), today


def reports_history_seed(*, today: date | None = None, card_stores: tuple[str, ...] | None = None) -> dict:
    """The card sale orders, card spending and earlier purchases of the module's docstring; return the counts."""
    now, today = _now_and_today(today)
    result = {"sale_orders": 0, "top_ups": 0, "cards": 0, "card_payments": 0, "refused": 0,
              "left_for_settlement": 0, "clearing_days": 0, "purchases": 0, "points_entries": 0}
    if not Store.objects.exists():
        return result
    cards = _card_history(today=today, now=now, settlement=_Settlement.read(), codes=card_stores)
    result.update(sale_orders=cards.sale_orders, top_ups=cards.top_ups, cards=cards.cards,
                  card_payments=cards.card_payments, refused=cards.refused,
                  left_for_settlement=cards.left_for_settlement, clearing_days=_clear_again(cards.touched_days))
    result["purchases"], result["points_entries"] = _purchase_history(today=today, now=now)
    return result


def reports_definitions_seed(*, today: date | None = None) -> dict:
    """The demo's report definitions with their beat schedules, each run once by hand (when its kind can be built);
    return {"definitions": created, "runs": runs, "runs_skipped": names of definitions not run}."""
    _now, today = _now_and_today(today)
    created, runs, skipped = _definitions(today=today)
    return {"definitions": created, "runs": runs, "runs_skipped": skipped}


# --- card sale orders and card spending ------------------------------------------------------------------------


def demo_card_no(index: int) -> str:
    body = f"{CARD_PREFIX}{index:011d}"
    return body + luhn.calc_check_digit(body)


def _card_index(month: date, store: Store, order: int, card: int) -> int:
    """Card `card` of order `order` of `store` in `month`: the same number whichever stores a run covers."""
    return ((((month.year - 2000) * 12 + month.month) * 100_000 + store.pk % 100_000) * 10 + order) \
        * GROUP_MAX_CARDS + card


def _sale_stores(codes: tuple[str, ...] | None) -> list[Store]:
    """The stores of `codes`, or else the first store of each format (DEPT001, SUPER001 ...); open, by code."""
    stores = Store.objects.filter(code__in=codes) if codes is not None else Store.objects.filter(code__endswith="001")
    return list(stores.exclude(status=Store.Status.CLOSED).select_related("format__legal_entity")
                .order_by("format__code", "code"))


def _moment_in(rng: random.Random, first: date, last: date, *, hours=(9, 20)) -> datetime:
    day = first + timedelta(days=rng.randrange((last - first).days + 1))
    return timezone.make_aware(datetime.combine(day, time(rng.randint(*hours), rng.randrange(60))))


def _person(rng: random.Random, *, today: date) -> dict:
    gender = rng.choice("MF")
    birth = date(today.year - rng.randint(22, 70), 1, 1) + timedelta(days=rng.randrange(365))
    return {"name": demo_name(rng, gender=gender, birth_date=birth), "id_type": "resident_id",
            "id_number": demo_resident_id(rng, region=rng.choice(("500103", "510104", "520102", "420102")),
                                          birth_date=birth, gender=gender),
            "phone": demo_mobile(rng)}


def _company(rng: random.Random) -> dict:
    name, body = rng.choice(COMPANIES)
    code = _credit_code(body)
    return {"name": name, "credit_code": code, "phone": f"023-6{rng.randrange(10**7):07d}",
            "address": "重庆市渝中区解放碑" + f"{rng.randint(1, 300)}号", "account_no": f"31000201092{code[-8:]}"}


def _plans(*, today: date, now: datetime, stores: list[Store], spend_stores: list[Store]) -> list[OrderPlan]:
    """Every order of the history (sales with their spending and top-ups), whether it exists yet or not."""
    first_this = today.replace(day=1)
    plans = []
    for back in range(MONTHS_BACK, -1, -1):
        month = months_add(first_this, -back)
        # This month's orders fall over the whole month; those still ahead are left for later runs.
        last = months_add(month, 1) - timedelta(days=1)
        age = MONTHS_BACK - back
        for store in stores:
            rng = random.Random(f"{DEMO_SEED}-{month:%Y%m}-{store.code}")
            target = (MONTHLY_SALES.get(store.format.code, MONTHLY_SALES_OTHER) * SEASON.get(month.month, 1.0)
                      * YEARLY_GROWTH ** (age / 12) * rng.uniform(0.96, 1.04))
            walk_in_orders = rng.randint(2, 4) + (1 if month.month in SEASON else 0)
            number = 0
            walk_in_total = Decimal("0.00")
            for _order in range(walk_in_orders):
                plan = _walk_in_plan(rng, store=store, month=month, last=last, number=number, today=today)
                walk_in_total += sum((card.face for card in plan.cards), Decimal("0.00"))
                plans.append(plan)
                number += 1
            # Corporate orders make up the month's target: one or two, more when one would pass the card limit.
            group_orders = 2 if SEASON.get(month.month, 1.0) >= 1.4 or rng.random() < 0.3 else 1
            remaining = max(Decimal(str(round(target))) - walk_in_total, GROUP_MIN * group_orders)
            made = 0
            while remaining >= GROUP_MIN / 2 and number < 10:
                plan = _group_plan(rng, store=store, month=month, last=last, number=number,
                                   amount=remaining / max(group_orders - made, 1))
                remaining -= sum((card.face for card in plan.cards), Decimal("0.00"))
                plans.append(plan)
                made += 1
                number += 1
    for plan in plans:
        _follow_ups_plan(plan, now=now, stores=spend_stores)
    # An order is paid within the hour: one still being paid now is left for a later run.
    return [plan for plan in plans if plan.moment + timedelta(hours=1) < now]


def _walk_in_plan(rng, *, store, month, last, number, today) -> OrderPlan:
    product = "STORED" if rng.random() < 0.6 else "BEARER"
    cards = [CardPlan(demo_card_no(_card_index(month, store, number, index)), product,
                      Decimal(rng.choice(WALK_IN_FACES[product])))
             for index in range(rng.choice((1, 1, 1, 2, 2, 3)))]
    buyer = _person(rng, today=today) if product == "STORED" or rng.random() < 0.3 else {}
    if buyer and product == "BEARER":
        buyer = {"name": buyer["name"], "phone": buyer["phone"]}
    return OrderPlan(
        order_no=f"{SALE_PREFIX}{month:%y%m}{store.code}{number:02d}", kind=SaleOrder.Kind.SALE,
        channel=SaleOrder.Channel.WALK_IN, store=store, moment=_moment_in(rng, month, last), cards=cards,
        buyer=buyer, method=rng.choice(WALK_IN_METHODS),
    )


def _group_plan(rng, *, store, month, last, number, amount: Decimal) -> OrderPlan:
    product, face = rng.choice(GROUP_FACES)
    face = Decimal(face)
    count = max(math.ceil(GROUP_MIN / face), min(GROUP_MAX_CARDS, round(amount / face)))
    cards = [CardPlan(demo_card_no(_card_index(month, store, number, index)), product, face)
             for index in range(count)]
    return OrderPlan(
        order_no=f"{SALE_PREFIX}{month:%y%m}{store.code}{number:02d}", kind=SaleOrder.Kind.SALE,
        channel=SaleOrder.Channel.GROUP, store=store, moment=_moment_in(rng, month, last, hours=(9, 16)),
        cards=cards, buyer=_company(rng), agent=_person(rng, today=month), method="bank_transfer",
    )


def _follow_ups_plan(plan: OrderPlan, *, now: datetime, stores: list[Store]) -> None:
    """The later life of an order's cards: payments at stores (mostly of other formats), a top-up now and then."""
    rng = random.Random(f"{DEMO_SEED}-{plan.order_no}-later")
    others = [store for store in stores if store.format_id != plan.store.format_id] or stores
    for card in plan.cards:
        moment = plan.moment
        if plan.channel == SaleOrder.Channel.WALK_IN and card.product == "STORED" and rng.random() < 0.2:
            at = plan.moment + timedelta(days=rng.randint(25, 120), hours=rng.randint(0, 3))
            if at + timedelta(hours=1) < now:
                plan.follow_ups.append(OrderPlan(
                    order_no=f"{TOP_UP_PREFIX}{plan.order_no[len(SALE_PREFIX):]}{plan.cards.index(card):02d}",
                    kind=SaleOrder.Kind.TOP_UP, channel=SaleOrder.Channel.WALK_IN, store=plan.store, moment=at,
                    cards=[CardPlan(card.card_no, card.product, TOP_UP_AMOUNT)], buyer=plan.buyer,
                    method=rng.choice(WALK_IN_METHODS), parent=plan,
                ))
        if rng.random() < 0.2:
            continue
        for step in range(rng.randint(1, 4)):
            moment += timedelta(days=rng.randint(6, 45), hours=rng.randint(0, 4), minutes=rng.randrange(60))
            local = timezone.localtime(moment)
            if not 9 <= local.hour <= 21:
                moment = local.replace(hour=rng.randint(10, 20))
            if moment >= now:
                break
            store = rng.choice(others if rng.random() < 0.7 else stores)
            # Halves of a yuan: SQLite sums decimals as binary floats, which hold halves exactly.
            plan.follow_ups.append(SpendPlan(
                card_no=card.card_no, store=store, moment=moment, wish=Decimal(rng.randint(60, 1600)) / 2,
                transaction_id=f"{TRANSACTION_PREFIX}{card.card_no[len(CARD_PREFIX):-1]}{step}",
                receipt_no=f"DEMO-RPT-{timezone.localtime(moment):%y%m%d}-{card.card_no[-7:-1]}{step}",
            ))


def _users() -> dict:
    names = {name for pair in SALE_USERS.values() for name in pair}
    users = {user.username: user for user in get_user_model().objects.filter(username__in=names, is_active=True)}
    return users


def _card_history(*, today: date, now: datetime, settlement: _Settlement, codes: tuple[str, ...] | None) -> _Outcome:
    outcome = _Outcome()
    stores = _sale_stores(codes)
    if not stores:
        return outcome
    _created, products = seed_card_products()
    spend_stores = list(Store.objects.exclude(status=Store.Status.CLOSED).select_related("format__legal_entity")
                        .order_by("code"))
    plans = _plans(today=today, now=now, stores=stores, spend_stores=spend_stores)
    existing = set(SaleOrder.objects.filter(order_no__in=[plan.order_no for plan in plans])
                   .values_list("order_no", flat=True))
    events = []
    for plan in plans:
        if plan.order_no in existing:
            continue
        if settlement.is_closed(timezone.localdate(plan.moment)):
            outcome.left_for_settlement += 1
            continue
        events.append((plan.moment, 0, plan))
        events.extend((follow_up.moment, 1, follow_up) for follow_up in plan.follow_ups)
    if not events:
        return outcome
    events.sort(key=lambda event: (event[0], event[1]))
    users = _users()
    seeder = _seed_user(None)
    sold: dict[str, Card] = {}
    refused: set[str] = set()
    with transaction.atomic():
        for moment, _order, item in events:
            day = timezone.localdate(moment)
            if isinstance(item, SpendPlan):
                card = sold.get(item.card_no)
                if card is None or settlement.is_closed(day) or day in settlement.reconciled:
                    continue
                if _spend(card=card, plan=item):
                    outcome.card_payments += 1
                    outcome.touched_days.add(day)
                continue
            if item.parent is not None and (item.parent.order_no in refused or item.cards[0].card_no not in sold):
                continue
            if settlement.is_closed(day):
                outcome.left_for_settlement += 1
                continue
            pair = SALE_USERS.get(item.store.code)
            username = (pair[0] if item.channel == SaleOrder.Channel.WALK_IN else pair[1]) if pair else ""
            actor = users.get(username) or seeder
            try:
                with transaction.atomic():
                    made = _order_write(item, products=products, actor=actor, sold=sold)
            except (CardRuleBroken, CardOperationRefused, SaleOrderInvalid):
                # Rules made stricter than the law's defaults may refuse a demo order: it is left out.
                refused.add(item.order_no)
                outcome.refused += 1
                continue
            outcome.touched_days.add(day)
            if item.kind == SaleOrder.Kind.TOP_UP:
                outcome.top_ups += 1
            else:
                outcome.sale_orders += 1
                outcome.cards += made
    return outcome


def _order_write(plan: OrderPlan, *, products: dict[str, CardProduct], actor, sold: dict[str, Card]) -> int:
    """One completed order as the desk or the back office leaves it; return the cards it created."""
    store = plan.store
    top_up = plan.kind == SaleOrder.Kind.TOP_UP
    paid_at = plan.moment + timedelta(minutes=3 if plan.channel == SaleOrder.Channel.WALK_IN else 50)
    made = 0
    if not top_up:
        for card in plan.cards:
            walk_in = plan.channel == SaleOrder.Channel.WALK_IN
            created = Card.objects.create(
                card_no=card.card_no, product=products[card.product], status=Card.Status.INACTIVE,
                stock_status=Card.Stock.IN_STOCK, location=store if walk_in else None, face_value=card.face,
                created_at=plan.moment - timedelta(days=20),
            )
            card_event(card=created, kind=CardEvent.Kind.RECEIVED, store=created.location, note="演示数据：入库")
            made += 1
    company = plan.channel == SaleOrder.Channel.GROUP
    payment = PaymentInput(method=plan.method, amount=sum((card.face for card in plan.cards), Decimal("0.00")),
                           reference=f"DEMO-{plan.order_no}")
    if company:
        payment.payer_account_name = plan.buyer["name"]
        payment.payer_account_no = plan.buyer["account_no"]
        payment.payee_account_name = store.format.legal_entity.name
        payment.payee_account_no = "3100020109200067890"
    buyer = PartyInput(**{key: value for key, value in plan.buyer.items() if key != "account_no"})
    data = SaleInput(
        store=store, kind=plan.kind, channel=plan.channel,
        buyer_type=SaleOrder.BuyerType.COMPANY if company else SaleOrder.BuyerType.PERSON, buyer=buyer,
        agent=PartyInput(**plan.agent) if plan.agent else PartyInput(),
        lines=[SaleLineInput(first=card.card_no, amount=card.face) for card in plan.cards],
        invoice_title=plan.buyer["name"] if company else "", invoice_tax_no=plan.buyer.get("credit_code", ""),
        note="演示数据：" + ("企业团购" if company else "散客充值" if top_up else "散客购卡"),
    )
    checked = sale_order_check(data=data, payments=[payment], now=plan.moment)
    if checked.approval_required:
        raise CardOperationRefused(reason="the demo order would need approval")
    order = SaleOrder.objects.create(order_no=plan.order_no, created_by=actor, created_at=plan.moment,
                                     status=SaleOrder.Status.COMPLETED, completed_at=paid_at, **checked.values)
    SaleLine.objects.bulk_create([SaleLine(order=order, card=card, amount=amount) for card, amount in checked.cards])
    SalePayment.objects.create(
        order=order, method=payment.method, amount=payment.amount, reference=payment.reference,
        payer_account_name=payment.payer_account_name, payer_account_no=payment.payer_account_no,
        payee_account_name=payment.payee_account_name, payee_account_no=payment.payee_account_no, created_at=paid_at,
    )
    issuer = store.format.legal_entity
    for card, amount in checked.cards:
        card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=amount, store=store, operator=actor,
                  legal_entity=issuer, receipt_no=order.order_no, cause=order, cap=card_cap(card),
                  reason="演示数据：充值" if top_up else "演示数据：售卡", created_at=paid_at)
        if top_up:
            sold[card.card_no].balance = card.balance
            continue
        registered = card.product.is_registered
        expires_at = None
        if not registered and card.product.validity_months:
            expires_at = moment_months_add(timezone.localtime(paid_at), card.product.validity_months)
        card_status_change(
            card=card, status=Card.Status.ACTIVE, event=CardEvent.Kind.ACTIVATED, store=store, actor=actor,
            note=order.order_no, data={"order_no": order.order_no, "amount": str(amount)},
            activated_at=paid_at, expires_at=expires_at, stock_status=Card.Stock.SOLD, sold_store=store,
            issuer=issuer, sale_order=order, holder_name=order.buyer_name[:100] if registered else "",
        )
        sold[card.card_no] = card
    return made


def _spend(*, card: Card, plan: SpendPlan) -> bool:
    """A till's card payment of a past day, as card_debit records it (a transaction and its ledger row)."""
    amount = min(card.balance, plan.wish)
    if amount <= 0 or card.status != Card.Status.ACTIVE:
        return False
    if card.expires_at is not None and card.expires_at <= plan.moment:
        return False
    record = CardTransaction.objects.create(
        transaction_id=plan.transaction_id, kind=CardTransaction.Kind.DEBIT, card=card, amount=amount, charged=amount,
        balance_after=card.balance - amount, store=plan.store, receipt_no=plan.receipt_no,
        business_date=timezone.localdate(plan.moment), created_at=plan.moment,
    )
    card_post(card=card, kind=CardLedgerEntry.Kind.DEBIT, amount=-amount, store=plan.store,
              receipt_no=plan.receipt_no, transaction_record=record, reason="演示数据：消费", created_at=plan.moment)
    return True


def _clear_again(days: set[date]) -> int:
    """Clear again the open days the history wrote into that had been cleared already."""
    from settlement.services.clearing import clearing_day_run

    cleared = sorted(ClearingRun.objects.filter(business_date__in=days).values_list("business_date", flat=True))
    again = 0
    for day in cleared:
        period = SettlementPeriod.objects.filter(starts_on__lte=day, ends_on__gte=day).first()
        if period is None or period.status == SettlementPeriod.Status.OPEN:
            clearing_day_run(day=day)
            again += 1
    return again


# --- purchases before the members' year ------------------------------------------------------------------------


def _purchase_history(*, today: date, now: datetime) -> tuple[int, int]:
    """Purchases of members and walk-in customers from the first day of the month 14 months back up to where the
    members' year of purchases starts (a year before now); return (purchases, points entries) created."""
    start = timezone.make_aware(datetime.combine(months_add(today.replace(day=1), -MONTHS_BACK), time(0, 0)))
    end = now - timedelta(days=365)
    if end <= start:
        return 0, 0
    stores = list(Store.objects.exclude(status=Store.Status.CLOSED).select_related("format__legal_entity")
                  .order_by("code"))
    existing = set(Purchase.objects.filter(receipt_no__startswith=PURCHASE_PREFIX)
                   .values_list("store_id", "receipt_no"))
    members = list(Member.objects.filter(status=Member.Status.ACTIVE, registered_at__lt=end)
                   .order_by("registered_at", "pk").values_list("registered_at", "pk", "registered_store_id"))
    joined = [row[0] for row in members]
    by_store: dict[int, list[tuple]] = {}
    for row in members:
        by_store.setdefault(row[2], []).append(row)
    rules = {rule.format_id: rule for rule in EarnRule.objects.all()}
    months = []
    month = start.date()
    while timezone.make_aware(datetime.combine(month, time(0, 0))) < end:
        months.append(month)
        month = months_add(month, 1)
    made = entries = 0
    with transaction.atomic():
        for store in stores:
            rng = random.Random(f"{DEMO_SEED}-purchases-{store.code}")
            first_store = store.code.endswith("001")
            only = rng.randrange(len(months))
            for position, month in enumerate(months):
                per_month = PURCHASES_FIRST_STORE if first_store else int(position == only)
                last_moment = min(end, timezone.make_aware(datetime.combine(months_add(month, 1), time(0, 0))))
                first_moment = timezone.make_aware(datetime.combine(month, time(0, 0)))
                for number in range(1, per_month + 1):
                    receipt_no = f"{PURCHASE_PREFIX}{month:%Y%m}-{number:02d}"
                    seconds = int((last_moment - first_moment).total_seconds())
                    local = timezone.localtime(first_moment + timedelta(seconds=rng.randrange(max(seconds, 1))))
                    moment = local.replace(hour=rng.randint(9, 20), minute=rng.randrange(60))
                    format_code = store.format.code if store.format.code in CATEGORIES else "SUPER"
                    lines = _basket(rng, format_code)
                    method = rng.choice(PURCHASE_METHODS)
                    member_id = _member_for(rng, moment=moment, store=store, joined=joined, members=members,
                                            by_store=by_store) if rng.random() < MEMBER_SHARE else None
                    if (store.pk, receipt_no) in existing or moment >= end or moment < first_moment:
                        continue
                    made += 1
                    entries += _purchase_write(store=store, receipt_no=receipt_no, moment=moment, lines=lines,
                                               method=method, member_id=member_id, rule=rules.get(store.format_id),
                                               now=now)
    return made, entries


def _member_for(rng, *, moment, store, joined, members, by_store) -> int | None:
    """A member registered before the purchase: most often one registered at the store, else anyone."""
    local = [row for row in by_store.get(store.pk, []) if row[0] < moment]
    if local and rng.random() < 0.7:
        return rng.choice(local)[1]
    known = bisect.bisect_left(joined, moment)
    return members[rng.randrange(known)][1] if known else None


def _purchase_write(*, store, receipt_no, moment, lines, method, member_id, rule, now) -> int:
    amount = sum((Decimal(line["amount"]) for line in lines), Decimal("0.00"))
    member = Member.objects.select_related("tier", "paid_tier").get(pk=member_id) if member_id else None
    points = 0
    if member is not None:
        points = points_for_purchase(member=member, store=store, amount=amount, occurred_at=moment, lines=lines,
                                     payment_method=method, rule=rule or EarnRule(format=store.format))
    purchase = Purchase.objects.create(
        member=member, store=store, format_id=store.format_id, legal_entity_id=store.format.legal_entity_id,
        receipt_no=receipt_no, amount=amount, occurred_at=moment, payment_method=method, lines=lines,
        created_at=moment, points_earned=points,
    )
    if not points:
        return 0
    window = timedelta(days=rule.pending_days) if rule is not None else timedelta(0)
    available_at = min(moment + window, now)
    # The reasons purchase_record and points_holds_release write, as the members' demo history has them.
    if window:
        reason = gettext("pending points of receipt %(receipt_no)s released") % {"receipt_no": receipt_no}
    else:
        reason = gettext("purchase on receipt %(receipt_no)s") % {"receipt_no": receipt_no}
    entry = points_post(member=member, points=points, kind=PointsEntry.Kind.EARN, store=store, receipt_no=receipt_no,
                        reason=reason, cause=purchase, legal_entity=store.format.legal_entity, created_at=available_at)
    if window:
        PointsHold.objects.create(member=member, purchase=purchase, points=points, available_at=available_at,
                                  status=PointsHold.Status.RELEASED, released_entry=entry)
    return 1


# --- report definitions ----------------------------------------------------------------------------------------


def _definitions(*, today: date) -> tuple[int, int, list[str]]:
    """The demo's definitions with their beat schedules, each run once by hand; return (created, runs, not run)."""
    from reports.frame import kind_get
    from reports.services import definition_run, definition_schedule_sync

    users = {user.username: user for user in get_user_model().objects.filter(
        username__in={name for values in DEFINITIONS for name in values["recipients"]}, is_active=True)}
    seeder = _seed_user(None)
    created = runs = 0
    skipped = []
    for values in DEFINITIONS:
        store = None
        if values.get("store"):
            store = Store.objects.filter(code=values["store"]).first()
            if store is None:
                continue
        definition = ReportDefinition.objects.filter(name=values["name"]).first()
        if definition is None:
            definition = ReportDefinition.objects.create(
                name=values["name"], kind=values["kind"], period=values["period"], scope=values["scope"],
                store=store, frequency=values["frequency"], hour=values["hour"], minute=0,
                weekday=values.get("weekday", ReportDefinition.Weekday.MONDAY),
                day_of_month=values.get("day_of_month", 1), created_by=seeder,
            )
            definition.recipients.set([users[name] for name in values["recipients"] if name in users])
            created += 1
        if definition.periodic_task_id is None:
            definition_schedule_sync(definition)
        if ReportRun.objects.filter(definition=definition).exists():
            continue
        try:
            kind_get(definition.kind)
        except (KeyError, ImportError):
            skipped.append(definition.name)
            continue
        definition_run(definition=definition, today=today, trigger=ReportRun.Trigger.MANUAL)
        runs += 1
    return created, runs, skipped
