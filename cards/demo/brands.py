"""Demo brand cards for `seed_demo`: the BRANDDEMO product and its 5% programme of CONTRACT section 2.

A brand partner (DEMOBRAND, 海天味业) with its contract and billing details, the registered brand card
BRANDDEMO, the programme BRANDDEMO5 (5%, all of it funded by the brand, started a year ago) with a confirmed
list of SKUs 6900000000001 to 6900000000300, and a few sold BRANDDEMO cards that paid for baskets of the
brand's products at SUPER001 through `card_debit`, so the brand's statement has lines.

The programme is made active directly (demo data needs no approval request). Balances move through
`card_post` and `card_debit` only, so check_ledgers holds. Rows are found by their codes and demo card
numbers (prefix 8698), so a second run creates nothing.
"""

import random
from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from stdnum import luhn

from cards.models import Brand, BrandProgramme, BrandSku, BrandSkuList, Card, CardEvent, CardLedgerEntry, CardProduct
from cards.services.ledger import card_cap, card_event, card_post, card_status_change
from cards.services.payments import card_debit
from stores.models import Store

__all__ = ["BRAND_CODE", "PRODUCT_CODE", "PROGRAMME_CODE", "brand_demo_card_no", "seed_brand_demo"]

BRAND_CODE = "DEMOBRAND"
PRODUCT_CODE = "BRANDDEMO"
PROGRAMME_CODE = "BRANDDEMO5"
STORE_CODE = "SUPER001"
CARD_PREFIX = "8698"
CARD_COUNT = 6
SKU_FIRST, SKU_LAST = 6900000000001, 6900000000300
SEED = 20260707
SEED_USERNAME = "demo_seed"

BRAND = {
    "name": "海天味业",
    "contact_name": "陈立新",
    "contact_phone": "0757-82836888",
    "contact_email": "kam@haitian-demo.example.cn",
    "billing_name": "佛山市海天调味食品股份有限公司",
    "billing_tax_no": "91440600617603316X",
    "billing_address": "广东省佛山市禅城区文沙路16号",
    "billing_bank": "中国工商银行佛山分行",
    "billing_account_no": "2013002119200123456",
}
PRODUCT = {
    "name": "海天联名储值卡", "kind": CardProduct.Kind.REGISTERED, "reloadable": True,
    "max_balance": Decimal("5000.00"), "face_values": ["100.00", "500.00", "1000.00"], "validity_months": None,
}
# Names for the listed SKUs, in turn; a list of 300 real products would only be longer.
SKU_NAMES = (
    "海天金标生抽 500ml", "海天老抽王 500ml", "海天上等蚝油 700g", "海天味极鲜酱油 750ml", "海天古道料酒 450ml",
    "海天黄豆酱 800g", "海天米醋 450ml", "海天鸡精 200g", "海天番茄酱 250g", "海天草菇老抽 1.9L",
)
HOLDERS = ("王秀英", "李建国", "张丽华", "刘志强", "陈桂兰", "杨明")
# Goods of other brands in the same baskets: not discounted.
OTHER_SKUS = ("6920000000017", "6920000000024", "6920000000031")


def brand_demo_card_no(index: int) -> str:
    body = f"{CARD_PREFIX}{index:011d}"
    return body + luhn.calc_check_digit(body)


def _seed_user(user) -> User:
    if user is not None:
        return user
    seeder, created = User.objects.get_or_create(
        username=SEED_USERNAME, defaults={"first_name": "演示数据", "is_active": False},
    )
    if created:
        seeder.set_unusable_password()
        seeder.save(update_fields=["password"])
    return seeder


def _store() -> Store:
    if not Store.objects.filter(code=STORE_CODE).exists():
        from stores.demo import seed_stores

        seed_stores()
    return Store.objects.select_related("format__legal_entity").get(code=STORE_CODE)


@transaction.atomic
def _programme(*, brand: Brand, product: CardProduct, user, today: date) -> tuple[BrandProgramme, bool, int]:
    """The programme and its first SKU list; (programme, created, SKUs listed now)."""
    starts_on = today - timedelta(days=365)
    programme, created = BrandProgramme.objects.get_or_create(code=PROGRAMME_CODE, defaults={
        "name": "海天联名卡 95折", "brand": brand, "product": product, "discount_rate": Decimal("0.0500"),
        "brand_share": Decimal("1.0000"), "starts_on": starts_on, "status": BrandProgramme.Status.ACTIVE,
        "note": "演示数据", "created_by": user, "approved_at": timezone.now(),
    })
    if programme.sku_lists.filter(confirmed_at__isnull=False).exists():
        return programme, created, 0
    now = timezone.now()
    count = SKU_LAST - SKU_FIRST + 1
    sku_list = BrandSkuList.objects.create(
        programme=programme, valid_from=programme.starts_on, file_name="海天联名卡商品清单.xlsx", sku_count=count,
        created_by=user, created_at=now, confirmed_at=now, confirmed_by=user,
    )
    BrandSku.objects.bulk_create([
        BrandSku(sku_list=sku_list, sku=str(sku), name=SKU_NAMES[(sku - SKU_FIRST) % len(SKU_NAMES)])
        for sku in range(SKU_FIRST, SKU_LAST + 1)
    ])
    return programme, created, count


@transaction.atomic
def _card(*, index: int, product: CardProduct, store: Store, rng: random.Random) -> tuple[Card, int]:
    """One sold, loaded BRANDDEMO card that paid for a few baskets at the store; (card, payments)."""
    card_no = brand_demo_card_no(index)
    sold_at = timezone.now() - timedelta(days=rng.randint(20, 200))
    card = Card.objects.create(
        card_no=card_no, product=product, status=Card.Status.INACTIVE, stock_status=Card.Stock.SOLD,
        sold_store=store, issuer=store.format.legal_entity, holder_name=HOLDERS[(index - 1) % len(HOLDERS)],
        face_value=Decimal("1000.00"), created_at=sold_at,
    )
    card_event(card=card, kind=CardEvent.Kind.SOLD, store=store, note="演示数据：售卡")
    card_status_change(card=card, status=Card.Status.ACTIVE, event=CardEvent.Kind.ACTIVATED, store=store,
                       activated_at=sold_at)
    card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=Decimal("1000.00"), store=store, cap=card_cap(card),
              receipt_no=f"DEMO-BS-{card_no[-6:]}", reason="演示数据：售卡", created_at=sold_at)
    payments = rng.randint(1, 3)
    for step in range(payments):
        lines = []
        # At most three baskets of at most 240.00 each: a card loaded with 1,000.00 always covers them.
        for _ in range(rng.randint(1, 3)):
            sku = str(rng.randint(SKU_FIRST, SKU_LAST))
            quantity = rng.randint(1, 2)
            lines.append({"sku": sku, "amount": f"{Decimal(rng.randint(50, 250)) / 10 * quantity:.2f}",
                          "quantity": str(quantity)})
        if rng.random() < 0.6:
            lines.append({"sku": rng.choice(OTHER_SKUS), "amount": f"{Decimal(rng.randint(50, 900)) / 10:.2f}",
                          "quantity": "1"})
        amount = sum((Decimal(line["amount"]) for line in lines), Decimal("0.00"))
        card_debit(card_no=card_no, amount=amount, receipt_no=f"DEMO-BP-{card_no[-6:]}-{step}", store=store,
                   lines=lines)
    return card, payments


def seed_brand_demo(*, user=None) -> dict:
    """Make sure the brand-card demo exists (brand, product, programme, SKUs, cards, payments); return counts.

    `user` is recorded as the programme's creator and the list's uploader (a disabled `demo_seed` user
    otherwise). Safe to run twice: what exists is left as it is.
    """
    today = timezone.localdate()
    user = _seed_user(user)
    store = _store()
    brand, brand_created = Brand.objects.get_or_create(code=BRAND_CODE, defaults={
        **BRAND, "contract_starts_on": today.replace(month=1, day=1) - timedelta(days=366),
        "contract_ends_on": date(today.year + 2, 12, 31),
    })
    product, product_created = CardProduct.objects.get_or_create(code=PRODUCT_CODE, defaults={
        **PRODUCT, "brand": brand,
    })
    programme, programme_created, skus = _programme(brand=brand, product=product, user=user, today=today)
    wanted = [brand_demo_card_no(index) for index in range(1, CARD_COUNT + 1)]
    existing = set(Card.objects.filter(card_no__in=wanted).values_list("card_no", flat=True))
    cards = payments = 0
    for index, card_no in enumerate(wanted, start=1):
        if card_no in existing:
            continue
        _card_made, paid = _card(index=index, product=product, store=store, rng=random.Random(SEED + index))
        cards += 1
        payments += paid
    return {
        "brand": int(brand_created), "product": int(product_created), "programme": int(programme_created),
        "skus": skus, "cards": cards, "payments": payments,
    }
