"""Demo prepaid cards for `seed_demo`: the STORED and BEARER products of CONTRACT section 2, and cards in every
state with a year of activity at stores of every format.

Demo card i has the number `demo_card_no(i)` (prefix 8699, which no production batch uses), so a second run
skips the cards already there and a larger `--cards` only adds the missing ones. Every balance moves through
`card_post` and every status through `card_status_change`, as at a desk or a POS, so check_ledgers holds and
each card's page shows a believable history. The plan of each card comes from a seeded random stream: the
same on every machine.
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from stdnum import luhn

from cards.models import Card, CardEvent, CardLedgerEntry, CardProduct, CardRules
from cards.services.ledger import card_cap, card_event, card_post, card_status_change
from membership.models import Member
from stores.models import Store

DEMO_PREFIX = "8699"
DEMO_SEED = 20261124
PRODUCTS = {
    "STORED": {
        "name": "嘉禾储值卡", "kind": CardProduct.Kind.REGISTERED, "reloadable": True,
        "max_balance": Decimal("5000.00"), "face_values": ["100.00", "500.00", "1000.00"], "validity_months": None,
    },
    "BEARER": {
        "name": "嘉禾不记名卡", "kind": CardProduct.Kind.BEARER, "reloadable": False,
        "max_balance": Decimal("1000.00"), "face_values": ["100.00", "200.00", "500.00", "1000.00"],
        "validity_months": 36,
    },
}
# One card in ten of each plan, in this order: which state demo card i ends in.
PLANS = ("hq_stock", "store_stock", "stored", "stored", "stored", "bearer", "lost", "expired", "closed", "stored")


@dataclass
class CardSeedResult:
    products: int = 0
    created: int = 0
    existing: int = 0
    entries: int = 0
    by_plan: dict | None = None


def seed_card_products() -> tuple[int, dict[str, CardProduct]]:
    """STORED and BEARER, created when missing; a product HQ has since edited is left as it is."""
    CardRules.current()
    created = 0
    products = {}
    for code, values in PRODUCTS.items():
        products[code], made = CardProduct.objects.get_or_create(code=code, defaults=values)
        created += made
    return created, products


def demo_card_no(index: int) -> str:
    body = f"{DEMO_PREFIX}{index:011d}"
    return body + luhn.calc_check_digit(body)


def seed_cards(*, count: int, today=None, seed: int = DEMO_SEED) -> CardSeedResult:
    """Make sure demo cards 1..count exist with their history; return what was created."""
    result = CardSeedResult(by_plan={})
    result.products, products = seed_card_products()
    if count <= 0:
        return result
    now = timezone.now() if today is None else timezone.make_aware(datetime.combine(today, datetime.min.time()))
    stores = list(Store.objects.select_related("format__legal_entity").order_by("code"))
    if not stores:
        return result
    by_format: dict[str, list[Store]] = {}
    for store in stores:
        by_format.setdefault(store.format.code, []).append(store)
    wanted = {demo_card_no(index): index for index in range(1, count + 1)}
    existing = set(Card.objects.filter(card_no__in=list(wanted)).values_list("card_no", flat=True))
    result.existing = len(existing)
    live = Member.objects.exclude(status=Member.Status.MERGED).order_by("pk")
    members = list(live.values_list("pk", flat=True)[:500])
    for card_no, index in wanted.items():
        if card_no in existing:
            continue
        # Each card has its own stream, so card i is the same whatever count is asked for.
        rng = random.Random(seed * 1_000_003 + index)
        plan = PLANS[(index - 1) % len(PLANS)]
        result.entries += _card_create(card_no=card_no, plan=plan, rng=rng, products=products, stores=stores,
                                       by_format=by_format, members=members, now=now)
        result.created += 1
        result.by_plan[plan] = result.by_plan.get(plan, 0) + 1
    return result


@transaction.atomic
def _card_create(*, card_no: str, plan: str, rng: random.Random, products: dict, stores: list[Store],
                 by_format: dict[str, list[Store]], members: list[int], now: datetime) -> int:
    """One demo card and its year: sold and loaded, paid with at stores of several formats, then its end state."""
    bearer = plan in ("bearer", "expired")
    product = products["BEARER" if bearer else "STORED"]
    home = rng.choice(by_format.get("DEPT") or stores)
    if plan == "store_stock":
        # The desks of the first store of each format can sell demo cards at once (DEPT001, SUPER001 ...).
        home = rng.choice([store for store in stores if store.code.endswith("001")] or stores)
    if plan in ("hq_stock", "store_stock"):
        card = Card.objects.create(card_no=card_no, product=product, status=Card.Status.INACTIVE,
                                   stock_status=Card.Stock.IN_STOCK, location=home if plan == "store_stock" else None,
                                   face_value=Decimal(rng.choice(product.face_values)), created_at=now)
        card_event(card=card, kind=CardEvent.Kind.RECEIVED, store=card.location, note="演示数据：入库")
        return 0

    # Sold about a year ago (an expired bearer card: more than three years ago), loaded at the desk.
    days_ago = rng.randint(1200, 1300) if plan == "expired" else rng.randint(330, 365)
    sold_at = now - timedelta(days=days_ago, hours=rng.randint(0, 8))
    member_id = rng.choice(members) if members and not bearer and rng.random() < 0.7 else None
    card = Card.objects.create(
        card_no=card_no, product=product, status=Card.Status.INACTIVE, stock_status=Card.Stock.SOLD,
        sold_store=home, issuer=home.format.legal_entity, member_id=member_id, created_at=sold_at,
    )
    card_event(card=card, kind=CardEvent.Kind.SOLD, store=home, note="演示数据：售卡")
    expires_at = sold_at + timedelta(days=3 * 365 + 1) if bearer else None
    card_status_change(card=card, status=Card.Status.ACTIVE, event=CardEvent.Kind.ACTIVATED, store=home,
                       activated_at=sold_at, expires_at=expires_at)
    cap = card_cap(card)
    load = min(Decimal(rng.choice(product.face_values)), cap)
    entries = [card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=load, store=home, cap=cap,
                         receipt_no=f"DEMO-S-{card_no[-6:]}", reason="演示数据：售卡", created_at=sold_at)]

    # Payments over the months after the sale, at stores of every format; now and then a top-up of a STORED card.
    # A card that ends lost or expired keeps part of its load: the balance the holder comes back for.
    reserve = (load * Decimal("0.3")).quantize(Decimal("1")) if plan in ("lost", "expired") else Decimal("0")
    moment = sold_at
    formats = list(by_format)
    for step in range(rng.randint(3, 9)):
        moment += timedelta(days=rng.randint(5, 35), hours=rng.randint(0, 6))
        if moment >= now:
            break
        store = rng.choice(by_format[formats[step % len(formats)]])
        if product.reloadable and card.balance < Decimal("100.00") and rng.random() < 0.5:
            amount = min(Decimal(rng.choice(["200.00", "500.00"])), cap - card.balance)
            if amount > 0:
                entries.append(card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=amount, store=home,
                                         cap=cap, receipt_no=f"DEMO-T-{card_no[-6:]}-{step}", reason="演示数据：充值",
                                         created_at=moment))
            continue
        # Amounts in half yuan: SQLite adds decimals up as binary floats, which hold halves exactly, so a card
        # spent down to 0.00 sums to exactly 0.00 there too (check_ledgers compares the two).
        amount = min(card.balance - reserve, Decimal(rng.randint(30, 960)) / 2).quantize(Decimal("0.01"))
        if amount <= 0:
            break
        entries.append(card_post(card=card, kind=CardLedgerEntry.Kind.DEBIT, amount=-amount, store=store,
                                 receipt_no=f"DEMO-P-{card_no[-6:]}-{step}", reason="演示数据：消费",
                                 created_at=moment))

    if plan == "lost":
        card_status_change(card=card, status=Card.Status.FROZEN, event=CardEvent.Kind.LOST, store=home,
                           freeze_reason=Card.FreezeReason.LOST, note="演示数据：服务台挂失")
    elif plan == "expired":
        card_status_change(card=card, status=Card.Status.EXPIRED, event=CardEvent.Kind.EXPIRED,
                           expires_at=min(expires_at, now), note="演示数据：有效期已到，卡内仍有余额")
    elif plan == "closed":
        if card.balance:
            entries.append(card_post(card=card, kind=CardLedgerEntry.Kind.CLOSE, amount=-card.balance, store=home,
                                     reason="演示数据：退卡退款", created_at=now - timedelta(days=2)))
        card_status_change(card=card, status=Card.Status.CLOSED, event=CardEvent.Kind.RETURNED, store=home,
                           note="演示数据：已退卡并注销")
    return len(entries)


# --- brand cards and pickup vouchers ----------------------------------------------------------------------

VOUCHER_BUYER = {"name": "重庆嘉禾餐饮管理有限公司", "credit_code": "91500103MA5U8XQ47Y", "phone": "02363001288",
                 "address": "重庆市渝中区民族路188号"}
# A company's real-name order records the person who buys for it (经办人) with their ID (a made-up, valid number).
VOUCHER_AGENT = {"name": "王经办", "id_type": "resident_id", "id_number": "500103198506120026", "phone": "13983001288"}
VOUCHERS_SOLD = 20


@dataclass
class BrandVoucherSeedResult:
    brand: dict
    vouchers: int
    vouchers_sold: int


def seed_brand_cards_and_vouchers() -> BrandVoucherSeedResult:
    """The BRANDDEMO brand card with its 5% programme (CONTRACT section 2), and a pickup voucher batch of which
    the first vouchers are sold to a company through a group sale order (approved, paid by bank transfer).

    Safe to run twice: the programme, the batch and the sale are made once.
    """
    from django.contrib.auth import get_user_model

    from cards.demo.brands import _seed_user, seed_brand_demo
    from cards.demo.vouchers import seed_voucher_demo
    from cards.models import SaleOrder, Voucher
    from cards.services.sales import (
        PartyInput,
        PaymentInput,
        SaleInput,
        VoucherLineInput,
        sale_order_create,
        sale_order_pay,
    )

    brand = seed_brand_demo()
    seeder = _seed_user(None)
    vouchers = seed_voucher_demo(user=seeder)
    batch = vouchers["batch"]
    sold = 0
    seller = get_user_model().objects.filter(username="dept001_manager", is_active=True).first()
    unsold = batch.vouchers.filter(status=Voucher.Status.UNSOLD)
    if (seller is not None and batch.status == batch.Status.ISSUED
            and not batch.vouchers.exclude(status=Voucher.Status.UNSOLD).exists()
            and unsold.count() >= VOUCHERS_SOLD):
        store = Store.objects.get(code="DEPT001")
        total = batch.price * VOUCHERS_SOLD
        with transaction.atomic():
            order = sale_order_create(
                data=SaleInput(
                    store=store, channel=SaleOrder.Channel.GROUP, buyer_type=SaleOrder.BuyerType.COMPANY,
                    buyer=PartyInput(**VOUCHER_BUYER), agent=PartyInput(**VOUCHER_AGENT),
                    voucher_lines=[VoucherLineInput(batch.batch_no, 1, VOUCHERS_SOLD)],
                    invoice_title=VOUCHER_BUYER["name"], invoice_tax_no=VOUCHER_BUYER["credit_code"],
                    note="演示数据：员工节日福利提货券",
                ),
                created_by=seller,
            )
            sale_order_pay(order=order, actor=seller, payments=[PaymentInput(
                method="bank_transfer", amount=total, reference="DEMO-VOUCHER-1",
                payer_account_name=VOUCHER_BUYER["name"], payer_account_no="3100020109200012345",
                payee_account_name=store.format.legal_entity.name, payee_account_no="3100020109200067890",
            )])
        sold = VOUCHERS_SOLD
    return BrandVoucherSeedResult(brand=brand, vouchers=vouchers["vouchers"], vouchers_sold=sold)
