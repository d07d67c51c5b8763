"""Demo members for `seed_demo`: realistic people, families sharing a phone, legacy numbers, points,
and a year of their purchases across the formats, with the tiers and points that follow from them.

The members come from a seeded random stream, household by household, so the
first N members are the same on every machine and for every count. Each demo
member carries the identity (DEMO, i): a second run skips the numbers already
there, and a larger `--members` only adds the missing ones.

Values pass through `member_input_clean`, the same validation and sealing of
ID numbers as a registration at the desk; rows are then written in bulk, each
member with at most one opening points entry whose balance_after is the
member's points, so the points ledger holds.
"""

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext

from core.pii import pii_digest, resident_id_check_digit
from membership.models import (
    EarnRule,
    Gift,
    GiftStock,
    Member,
    MemberCard,
    MemberEvent,
    MemberIdentity,
    MemberTag,
    PointsEntry,
    PointsHold,
    Purchase,
    Tag,
    Tier,
    TierChange,
)
from membership.services import (
    MemberInput,
    gift_stock_receive,
    luhn_check_digit,
    member_input_clean,
    member_no_new,
    paid_tier_buy,
    points_for_purchase,
    points_history_append,
    points_opening_entries_write,
    tiers_evaluate,
)
from stores.models import Format, Store

DEMO_SOURCE = "DEMO"
DEMO_SEED = 20261124
BATCH = 1000

TIERS = [
    # code, name, kind, rank: the same as migration membership/0002.
    ("NORMAL", "普卡", Tier.Kind.EARNED, 0),
    ("SILVER", "银卡", Tier.Kind.EARNED, 1),
    ("GOLD", "金卡", Tier.Kind.EARNED, 2),
    ("PLATINUM", "铂金卡", Tier.Kind.EARNED, 3),
    ("PLUS", "Plus会员", Tier.Kind.PAID, 10),
]
TAG_SILVER = "银发族"
TAG_FAMILY = "家庭客户"
TAG_BIG_POINTS = "积分大户"
TAGS = {
    TAG_SILVER: "60岁以上的会员",
    TAG_FAMILY: "与家人共用一个手机号的会员",
    TAG_BIG_POINTS: "积分超过一万的会员",
}

# The most common surnames, roughly by frequency (the first ones drawn more often).
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
    "姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
# Given names by generation: people born before 1965 mostly carry the names of their time.
GIVEN_NAMES = {
    ("old", "F"): (
        "秀英 桂兰 秀兰 玉兰 桂英 凤英 淑珍 玉珍 翠花 素芬 "
        "秀珍 桂芳 淑华 金凤 玉梅 慧 英 兰 珍 芳"
    ).split(),
    ("old", "M"): (
        "建国 德福 国强 建华 志明 国华 德明 福林 永福 文华 "
        "建军 卫东 国庆 德胜 长生 有才 树林 明 华 军"
    ).split(),
    ("mid", "F"): (
        "芳 娜 敏 静 丽 艳 霞 燕 娟 红梅 "
        "丽华 晓燕 春梅 海燕 雪梅 玲 倩 婷 琳 小红"
    ).split(),
    ("mid", "M"): (
        "伟 强 磊 军 洋 勇 杰 涛 超 明 "
        "刚 平 辉 鹏 波 斌 宇 浩 晓东 志刚"
    ).split(),
    ("young", "F"): (
        "欣怡 梓涵 诗涵 雨欣 思琪 佳怡 子涵 一诺 可馨 雨涵 "
        "婧 悦 紫萱 梦瑶 嘉怡 雅婷 若曦 语桐 心怡 晨曦"
    ).split(),
    ("young", "M"): (
        "浩然 子轩 梓轩 宇航 俊杰 博文 天佑 皓轩 子豪 一鸣 "
        "泽宇 明轩 思远 家豪 睿 宇 昊天 嘉乐 锦程 铭"
    ).split(),
}
# Resident ID region codes (GB/T 2260) by the province of the registering store.
ID_REGIONS = {
    "CQ": ("500103", "500105", "500106", "500107", "500108", "500112"),
    "SC": ("510104", "510105", "510106", "510107", "510108", "510722"),
    "GZ": ("520102", "520103", "520111", "520115", "520302"),
    "HB": ("420102", "420103", "420106", "420111", "420502"),
}
ALL_ID_REGIONS = tuple(code for codes in ID_REGIONS.values() for code in codes)
MOBILE_PREFIXES = ("133", "135", "136", "137", "138", "139", "150", "151", "158", "159", "177", "180", "186",
                   "187", "189", "199")
# Legacy member systems by the format of the registering store.
LEGACY_SOURCES = {"DEPT": "DEPT_CRM", "SUPER": "SUPER_CRM"}


@dataclass
class DemoPerson:
    index: int
    name: str
    gender: str
    birth_date: date
    phone: str
    family_phone: str
    id_number: str
    household_size: int
    store: Store | None
    channel: str
    registered_at: datetime
    status: str
    points: int
    marketing_consent: bool
    card_no: str
    legacy: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class SeedResult:
    created: int = 0
    existing: int = 0
    points_entries: int = 0


def seed_tiers() -> dict[str, Tier]:
    """The reference tiers of CONTRACT section 2, matched by code."""
    tiers = {}
    for code, name, kind, rank in TIERS:
        tiers[code], _ = Tier.objects.update_or_create(code=code, defaults={"name": name, "kind": kind, "rank": rank})
    return tiers


def seed_tags() -> dict[str, Tag]:
    tags = {}
    for name, description in TAGS.items():
        tags[name], _ = Tag.objects.get_or_create(name=name, defaults={"description": description})
    return tags


def demo_resident_id(rng: random.Random, *, region: str, birth_date: date, gender: str) -> str:
    """A valid resident ID number: region, birth date, order (odd for men), GB 11643 check digit."""
    order = rng.randrange(0, 500) * 2 + (1 if gender == "M" else 0)
    first17 = f"{region}{birth_date:%Y%m%d}{order:03d}"
    return first17 + resident_id_check_digit(first17)


def demo_mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def demo_name(rng: random.Random, *, gender: str, birth_date: date, surname: str | None = None) -> str:
    generation = "old" if birth_date.year < 1965 else "mid" if birth_date.year < 1990 else "young"
    # Earlier surnames are far more common: draw from a skewed index.
    surname = surname or SURNAMES[int(len(SURNAMES) * rng.random() ** 2.2)]
    return surname + rng.choice(GIVEN_NAMES[(generation, gender)])


def _birth_date(rng: random.Random, *, today: date, elderly: bool) -> date:
    age = rng.randint(61, 92) if elderly else rng.randint(18, 59)
    return date(today.year - age - 1, 1, 1) + timedelta(days=rng.randrange(365))


def demo_number(index: int) -> str:
    """The demo identity of a member: not a plausible legacy number, so no till lookup hits it by chance."""
    return f"DEMO-{index:07d}"


def demo_people(*, stores: list[Store], today: date, seed: int = DEMO_SEED):
    """Yield demo people for ever, household by household; the same seed gives the same stream."""
    rng = random.Random(seed)
    used_ids: set[str] = set()
    index = 0
    now = timezone.make_aware(datetime.combine(today, time(20, 0)))
    while True:
        size = rng.choices((1, 2, 3, 4), weights=(70, 18, 8, 4))[0]
        household_phone = demo_mobile(rng)
        surname = SURNAMES[int(len(SURNAMES) * rng.random() ** 2.2)]
        store = rng.choice(stores) if stores else None
        province = store.region.parent.code if store and store.region and store.region.parent else ""
        for position in range(size):
            index += 1
            # A third over 60; most of those, and a few younger people, have no phone of their own.
            elderly = rng.random() < 0.34
            phoneless = rng.random() < (0.5 if elderly else 0.045)
            gender = rng.choice("MF")
            birth_date = _birth_date(rng, today=today, elderly=elderly)
            # The first of a household keeps its surname; a spouse often has another one.
            own_surname = surname if position == 0 or rng.random() < 0.6 else None
            name = demo_name(rng, gender=gender, birth_date=birth_date, surname=own_surname)
            if phoneless:
                # A single person without a phone leaves a child's number that is no member's.
                phone, family_phone = "", household_phone if size > 1 else demo_mobile(rng)
            else:
                phone, family_phone = household_phone, ""
            id_number = ""
            if rng.random() < (0.9 if elderly else 0.65):
                region = rng.choice(ID_REGIONS.get(province, ALL_ID_REGIONS))
                for _attempt in range(20):
                    id_number = demo_resident_id(rng, region=region, birth_date=birth_date, gender=gender)
                    if id_number not in used_ids:
                        used_ids.add(id_number)
                        break
                else:
                    id_number = ""
            channel = rng.choices(
                (Member.Channel.DESK, Member.Channel.POS, Member.Channel.IMPORT),
                weights=(50 if elderly else 35, 15 if elderly else 40, 25),
            )[0]
            days_ago = rng.randrange(3650, 7300) if channel == Member.Channel.IMPORT else rng.randrange(1, 2200)
            registered_at = now - timedelta(days=days_ago, minutes=rng.randrange(600))
            legacy = []
            format_code = store.format.code if store else ""
            if channel == Member.Channel.IMPORT or rng.random() < 0.08:
                source = LEGACY_SOURCES.get(format_code) or rng.choice(tuple(LEGACY_SOURCES.values()))
                legacy.append((source, _legacy_no(source, index)))
                if rng.random() < 0.15:
                    other = "SUPER_CRM" if source == "DEPT_CRM" else "DEPT_CRM"
                    legacy.append((other, _legacy_no(other, index)))
            points = 0
            if rng.random() < 0.7:
                points = int(rng.paretovariate(1.3) * 300)
                points = min(points, 80000)
            status = rng.choices(
                (Member.Status.ACTIVE, Member.Status.FROZEN, Member.Status.CLOSED), weights=(97, 2, 1)
            )[0]
            yield DemoPerson(
                index=index, name=name, gender=gender, birth_date=birth_date, phone=phone,
                family_phone=family_phone, id_number=id_number, household_size=size, store=store,
                channel=channel, registered_at=registered_at, status=status,
                points=points, marketing_consent=(not phoneless) and rng.random() < 0.45,
                card_no=f"6688{index:012d}" if rng.random() < 0.3 else "", legacy=legacy,
            )


def _legacy_no(source: str, index: int) -> str:
    # Department-store cards were 10 digits from 1000000000, supermarket ones "V" and 9 digits.
    return f"{1_000_000_000 + index * 7}" if source == "DEPT_CRM" else f"V{300_000_000 + index * 3:09d}"


def seed_members(*, count: int, seed: int = DEMO_SEED, today: date | None = None) -> SeedResult:
    """Make sure demo members 1..count exist; return how many were created and how many were there."""
    today = today or timezone.localdate()
    result = SeedResult()
    tiers = seed_tiers()
    tags = seed_tags()
    if count <= 0:
        return result
    stores = list(Store.objects.select_related("format", "region__parent").order_by("code"))
    existing = set(
        MemberIdentity.objects.filter(source=DEMO_SOURCE).values_list("external_no", flat=True)
    )
    people = demo_people(stores=stores, today=today, seed=seed)
    batch: list[DemoPerson] = []
    for person in people:
        if person.index > count:
            break
        if demo_number(person.index) in existing:
            result.existing += 1
            continue
        batch.append(person)
        if len(batch) == BATCH:
            result.points_entries += _create(batch, tiers=tiers, tags=tags, today=today)
            result.created += len(batch)
            batch = []
    if batch:
        result.points_entries += _create(batch, tiers=tiers, tags=tags, today=today)
        result.created += len(batch)
    return result


@transaction.atomic
def _create(people: list[DemoPerson], *, tiers: dict, tags: dict, today: date) -> int:
    taken_ids = _taken(
        Member.objects.exclude(status=Member.Status.MERGED), "id_number_digest",
        [pii_digest(person.id_number) for person in people if person.id_number],
    )
    taken_cards = _taken(MemberCard.objects, "card_no", [p.card_no for p in people if p.card_no])
    members = []
    for person in people:
        values = member_input_clean(
            MemberInput(
                name=person.name, phone=person.phone, family_phone=person.family_phone,
                id_type="resident_id" if person.id_number else "none", id_number=person.id_number,
                birth_date=person.birth_date, gender=person.gender, marketing_consent=person.marketing_consent,
                contact_channel=Member.ContactChannel.SMS if person.phone else Member.ContactChannel.CALL,
            ),
            today=today,
        )
        if values["id_number_digest"] in taken_ids:
            # Someone registered at a desk already holds this number: the demo person goes without one.
            values.update(id_type=Member.IdType.NONE, id_number_digest=None, id_number_sealed="",
                          id_number_masked="")
        members.append(Member(
            **values,
            member_no=_demo_member_no(person.index),
            marketing_consent_at=person.registered_at if values["marketing_consent"] else None,
            # Everyone starts at the lowest tier: seed_loyalty's evaluation gives the tier their spend reaches.
            tier=tiers["NORMAL"],
            points=person.points,
            registered_store=person.store,
            registered_channel=person.channel,
            registered_at=person.registered_at,
            status=person.status,
        ))
    _free_member_numbers(members)
    Member.objects.bulk_create(members, batch_size=500)
    _fill_pks(members)

    identities, cards, entries, events, member_tags = [], [], [], [], []
    for person, member in zip(people, members, strict=True):
        identities.append(MemberIdentity(member=member, source=DEMO_SOURCE, external_no=demo_number(person.index)))
        identities.extend(MemberIdentity(member=member, source=source, external_no=number)
                          for source, number in person.legacy)
        if person.card_no and person.card_no not in taken_cards:
            cards.append(MemberCard(card_no=person.card_no, member=member, issued_at=person.registered_at,
                                    issued_store=person.store))
        if person.points:
            entries.append((member.pk, person.points, person.points, person.store.pk if person.store else None,
                            "演示数据期初积分", person.registered_at))
        imported = person.channel == Member.Channel.IMPORT
        events.append(MemberEvent(
            member=member, kind=MemberEvent.Kind.IMPORTED if imported else MemberEvent.Kind.REGISTERED,
            store=person.store, data={"channel": person.channel, "source": DEMO_SOURCE},
            created_at=person.registered_at,
        ))
        if today.year - person.birth_date.year - ((today.month, today.day) < (person.birth_date.month,
                                                                               person.birth_date.day)) > 60:
            member_tags.append(MemberTag(member=member, tag=tags[TAG_SILVER]))
        if person.household_size > 1:
            member_tags.append(MemberTag(member=member, tag=tags[TAG_FAMILY]))
        if person.points > 10000:
            member_tags.append(MemberTag(member=member, tag=tags[TAG_BIG_POINTS]))
    # A legacy number already imported for someone else stays theirs; the demo identity is new by construction.
    MemberIdentity.objects.bulk_create(identities, batch_size=1000, ignore_conflicts=True)
    MemberCard.objects.bulk_create(cards, batch_size=1000)
    points_opening_entries_write(entries, operator_id=None)
    MemberEvent.objects.bulk_create(events, batch_size=1000)
    MemberTag.objects.bulk_create(member_tags, batch_size=1000)
    return len(entries)


def _taken(queryset, field_name: str, values: list) -> set:
    taken = set()
    for start in range(0, len(values), 500):
        chunk = values[start:start + 500]
        taken.update(queryset.filter(**{f"{field_name}__in": chunk}).values_list(field_name, flat=True))
    return taken


def _demo_member_no(index: int) -> str:
    # Demo numbers are 8 90 and the index: recognisable in screenshots, valid like every member number.
    body = f"890{index:08d}"
    return body + luhn_check_digit(body)


def _free_member_numbers(members: list[Member]) -> None:
    taken = _taken(Member.objects, "member_no", [member.member_no for member in members])
    for member in members:
        while member.member_no in taken:
            member.member_no = member_no_new()
        taken.add(member.member_no)


def _fill_pks(members: list[Member]) -> None:
    """Backends that do not return ids from a bulk insert: find them by member number."""
    missing = [member for member in members if member.pk is None]
    if not missing:
        return
    ids = dict(Member.objects.filter(member_no__in=[m.member_no for m in missing]).values_list("member_no", "pk"))
    for member in missing:
        member.pk = ids[member.member_no]


# --- loyalty: earn rules, gifts, a year of purchases, tiers and Plus --------------------------------------

# format -> yuan per point, excluded categories, return window (days)
EARN_RULES = {
    "DEPT": (Decimal("1.00"), "", 0),
    "SUPER": (Decimal("2.00"), "TOBACCO", 0),
    "ELEC": (Decimal("1.00"), "GIFTCARD", 0),
    "AUTO": (Decimal("10.00"), "", 7),
}
# code, name, points, description, stock per store
GIFTS = [
    ("BAG", "环保购物袋", 200, "可折叠无纺布购物袋", 200),
    ("FLASK", "保温杯", 1500, "500毫升不锈钢保温杯", 40),
    ("OIL5L", "食用油5L", 3000, "5升压榨花生油", 30),
    ("COOKER", "电饭煲", 12000, "4升智能电饭煲", 5),
]
GIFT_STORES = ("DEPT001", "SUPER001", "ELEC001", "DEPT002", "SUPER002", "SUPER003")
PAYMENT_METHODS = ("cash", "wechat", "alipay", "bank_card", "prepaid_card")
# Categories a POS sends per format, with the share of lines and a typical line price (median yuan).
CATEGORIES = {
    "SUPER": (("FRESH", 35, 16), ("GROCERY", 30, 14), ("DAIRY", 15, 12), ("HOUSEHOLD", 12, 20),
              ("TOBACCO", 4, 40), ("ALCOHOL", 4, 45)),
    "DEPT": (("APPAREL", 40, 320), ("COSMETICS", 25, 220), ("SHOES", 15, 420), ("HOME", 15, 150),
             ("GOLD", 5, 2200)),
    "ELEC": (("APPLIANCE", 45, 2200), ("PHONE", 30, 3200), ("ACCESSORY", 20, 150), ("GIFTCARD", 5, 500)),
    "AUTO": (("SERVICE", 100, 900),),
}
PURCHASE_BATCH = 250
DEMO_PLUS_EVERY = 40
# Sales to customers who showed no membership, per open store, over the last WALK_IN_DAYS days: what the member
# share of sales is measured against (and what a member may claim later).
WALK_IN_SALES_PER_STORE = 12
WALK_IN_DAYS = 30


@dataclass
class LoyaltyResult:
    earn_rules: int = 0
    gifts: int = 0
    purchases: int = 0
    points_entries: int = 0
    points_held: int = 0
    tiers: dict = field(default_factory=dict)
    plus: int = 0


def seed_earn_rules() -> int:
    """The demo points rules per format; a rule staff changed is left as it is. Return how many were created."""
    created = 0
    for format_ in Format.objects.filter(code__in=EARN_RULES):
        per_point, excluded, pending_days = EARN_RULES[format_.code]
        _rule, was_created = EarnRule.objects.get_or_create(
            format=format_,
            defaults={"amount_per_point": per_point, "excluded_categories": excluded, "pending_days": pending_days},
        )
        created += was_created
    return created


def seed_gifts() -> int:
    """The gift catalogue, with a first delivery at a few desks through the stock service (so its ledger holds)."""
    stores = list(Store.objects.filter(code__in=GIFT_STORES).order_by("code"))
    created = 0
    for code, name, points, description, quantity in GIFTS:
        gift, was_created = Gift.objects.get_or_create(
            code=code, defaults={"name": name, "points": points, "description": description}
        )
        created += was_created
        stocked = set(GiftStock.objects.filter(gift=gift).values_list("store_id", flat=True))
        for store in stores:
            if store.pk not in stocked:
                gift_stock_receive(gift=gift, store=store, quantity=quantity, operator=None, reason="演示数据首批到货")
    return created


def seed_loyalty(*, today: date | None = None, seed: int = DEMO_SEED) -> LoyaltyResult:
    """Earn rules, gifts, a year of purchases of the demo members, their tiers, and Plus for a few.

    Purchases are built in Python and written in bulk, each with the earn entry
    (or the points hold, inside a return window) that purchase_record would
    write, so balances equal the ledger. The history is earned at each format's
    base rate: it starts before anyone had earned a tier. The nightly tier
    evaluation then gives members the tier their spend reaches. Members who
    already have purchases are left alone, so a second run adds nothing.
    """
    today = today or timezone.localdate()
    result = LoyaltyResult(earn_rules=seed_earn_rules(), gifts=seed_gifts())
    stores = _stores_by_city_and_format()
    rules = {rule.format_id: rule for rule in EarnRule.objects.all()}
    demo_ids = list(
        MemberIdentity.objects.filter(source=DEMO_SOURCE, member__status=Member.Status.ACTIVE)
        .order_by("member_id").values_list("member_id", flat=True)
    )
    for start in range(0, len(demo_ids), PURCHASE_BATCH):
        purchases, entries, holds = _purchases_create(demo_ids[start:start + PURCHASE_BATCH], stores=stores,
                                                      rules=rules, today=today, seed=seed)
        result.purchases += purchases
        result.points_entries += entries
        result.points_held += holds
    result.tiers = tiers_evaluate(today=today).as_dict()
    result.plus = _plus_for_a_few(today=today)
    return result


def seed_walk_in_sales(*, seed: int = DEMO_SEED) -> int:
    """Sales without a member at every open store (WALK_IN_SALES_PER_STORE each, receipts WALKIN-0001 ...); a
    receipt a store already has is left alone, so a second run adds nothing. Return how many were created.

    They earn nothing, so no ledger moves: written in bulk like the members' purchases.
    """
    now = timezone.now()
    stores = list(Store.objects.exclude(status=Store.Status.CLOSED).select_related("format").order_by("code"))
    receipts = [f"WALKIN-{number:04d}" for number in range(1, WALK_IN_SALES_PER_STORE + 1)]
    existing = set(Purchase.objects.filter(store__in=stores, receipt_no__in=receipts)
                   .values_list("store_id", "receipt_no"))
    sales = []
    for store in stores:
        rng = random.Random(seed * 7_919 + store.pk)
        format_code = store.format.code if store.format.code in CATEGORIES else "SUPER"
        for receipt_no in receipts:
            lines = _basket(rng, format_code)
            moment = timezone.localtime(now - timedelta(days=rng.randrange(WALK_IN_DAYS)))
            moment = min(moment.replace(hour=rng.randint(9, 20), minute=rng.randrange(60)), now)
            payment_method = rng.choice(PAYMENT_METHODS)
            if (store.pk, receipt_no) in existing:
                continue
            sales.append(Purchase(
                member=None, store=store, format_id=store.format_id, legal_entity_id=store.format.legal_entity_id,
                receipt_no=receipt_no, amount=sum((Decimal(line["amount"]) for line in lines), Decimal("0.00")),
                occurred_at=moment, payment_method=payment_method, lines=lines, created_at=moment, points_earned=0,
            ))
    Purchase.objects.bulk_create(sales, batch_size=1000, ignore_conflicts=True)
    return len(sales)


def _stores_by_city_and_format() -> dict:
    stores: dict = {}
    for store in Store.objects.exclude(status=Store.Status.CLOSED).select_related("format").order_by("code"):
        stores.setdefault((store.region_id, store.format.code), []).append(store)
        stores.setdefault((None, store.format.code), []).append(store)
    return stores


def _demo_index(member: Member) -> int:
    return int(member.member_no[3:11]) if member.member_no.startswith("890") else member.pk


def _shopping_plan(rng: random.Random, *, elderly: bool) -> dict[str, int]:
    """Visits per format in a year: supermarket small and frequent, department store medium, electronics
    occasional, cars rare; the elderly mostly shop at the supermarket. A few big spenders make the upper tiers."""
    if rng.random() < 0.12:
        return {}
    level = rng.choices(("light", "regular", "big", "vip"), weights=(38, 44, 14, 4))[0]
    low, high = {"light": (0, 2), "regular": (1, 6), "big": (12, 28), "vip": (35, 70)}[level]
    if elderly:
        low, high = low // 2, high // 2
    plan = {
        "SUPER": rng.randint(12, 50) if elderly else rng.randint(2, 30),
        "DEPT": rng.randint(low, high),
        "ELEC": int(rng.random() < (0.15 if elderly else 0.35)) + int(level in ("big", "vip")),
        "AUTO": 0 if elderly else (rng.randint(1, 3) if rng.random() < 0.05 else 0),
    }
    if not elderly and rng.random() < 0.012:
        plan["CAR"] = 1
    return plan


def _basket(rng: random.Random, format_code: str) -> list[dict]:
    if format_code == "CAR":
        price = Decimal(rng.randrange(79_800, 339_800, 1000))
        return [{"sku": f"VEH{rng.randrange(10**6):06d}", "category": "VEHICLE", "amount": f"{price:.2f}",
                 "quantity": "1"}]
    choices = CATEGORIES[format_code]
    size = {"SUPER": rng.randint(1, 5), "DEPT": rng.randint(1, 2), "ELEC": 1, "AUTO": 1}[format_code]
    lines = []
    for _line in range(size):
        category, _weight, median = rng.choices(choices, weights=[c[1] for c in choices])[0]
        amount = Decimal(str(round(median * rng.lognormvariate(0, 0.5), 1))).quantize(Decimal("0.01"))
        amount = max(amount, Decimal("1.50"))
        lines.append({"sku": f"{format_code[0]}{rng.randrange(10**7):07d}", "category": category,
                      "amount": f"{amount:.2f}", "quantity": str(rng.randint(1, 3) if format_code == "SUPER" else 1)})
    return lines


@transaction.atomic
def _purchases_create(member_ids: list[int], *, stores: dict, rules: dict, today: date, seed: int):
    shopped = set(Purchase.objects.filter(member_id__in=member_ids).values_list("member_id", flat=True).distinct())
    members = list(
        Member.objects.select_for_update(of=("self",)).select_related("tier", "paid_tier", "registered_store")
        .filter(pk__in=[pk for pk in member_ids if pk not in shopped]).order_by("pk")
    )
    now = timezone.now()
    year_ago = now - timedelta(days=365)
    plans = []
    for member in members:
        index = _demo_index(member)
        rng = random.Random(seed * 1_000_003 + index)
        elderly = (member.age or 0) > 60
        home = member.registered_store
        start = max(year_ago, member.registered_at)
        seconds = int((now - start).total_seconds())
        if seconds < 3600:
            continue
        visits = []
        for format_code, count in _shopping_plan(rng, elderly=elderly).items():
            for _visit in range(count):
                store_format = "AUTO" if format_code == "CAR" else format_code
                nearby = (stores.get((home.region_id if home else None, store_format))
                          or stores.get((None, store_format)))
                if not nearby:
                    continue
                # Mostly the home city; one visit in ten anywhere (travel, another district).
                if rng.random() < 0.1:
                    nearby = stores[(None, store_format)]
                moment = start + timedelta(seconds=rng.randrange(seconds))
                local = timezone.localtime(moment)
                moment = local.replace(hour=rng.randint(9, 20), minute=rng.randrange(60))
                if moment >= now or moment <= start:
                    continue
                visits.append((moment, rng.choice(nearby), _basket(rng, format_code), rng.choice(PAYMENT_METHODS)))
        visits.sort(key=lambda visit: visit[0])
        plans.append((member, index, visits))

    purchases = []
    for member, index, visits in plans:
        for number, (moment, store, lines, payment_method) in enumerate(visits, start=1):
            amount = sum((Decimal(line["amount"]) for line in lines), Decimal("0.00"))
            rule = rules.get(store.format_id) or EarnRule(format=store.format)
            purchases.append(Purchase(
                member=member, store=store, format_id=store.format_id, legal_entity_id=store.format.legal_entity_id,
                receipt_no=f"DEMO{index:07d}-{number:04d}", amount=amount, occurred_at=moment,
                payment_method=payment_method, lines=lines, created_at=moment,
                points_earned=points_for_purchase(member=member, store=store, amount=amount, occurred_at=moment,
                                                  lines=lines, payment_method=payment_method, rule=rule),
            ))
    Purchase.objects.bulk_create(purchases, batch_size=1000)
    _fill_purchase_pks(purchases)

    purchase_type = ContentType.objects.get_for_model(Purchase)
    entries, held, releases = [], [], []
    for purchase in purchases:
        if not purchase.points_earned:
            continue
        rule = rules.get(purchase.format_id)
        window = timedelta(days=rule.pending_days) if rule is not None else timedelta(0)
        available_at = purchase.occurred_at + window
        if window and available_at > now:
            held.append(PointsHold(member=purchase.member, purchase=purchase, points=purchase.points_earned,
                                   available_at=available_at))
            continue
        # The reasons purchase_record and points_holds_release write, in the language of the run.
        if window:
            reason = gettext("pending points of receipt %(receipt_no)s released") % {"receipt_no": purchase.receipt_no}
        else:
            reason = gettext("purchase on receipt %(receipt_no)s") % {"receipt_no": purchase.receipt_no}
        entries.append({
            "member": purchase.member, "kind": PointsEntry.Kind.EARN, "points": purchase.points_earned,
            "store": purchase.store, "receipt_no": purchase.receipt_no, "legal_entity_id": purchase.legal_entity_id,
            "reason": reason, "cause_type": purchase_type, "cause_id": str(purchase.pk), "created_at": available_at,
        })
        if window:
            releases.append((purchase, len(entries) - 1, available_at))
    entries = points_history_append(entries=entries, balances={member.pk: member.points for member in members})
    _fill_entry_pks(entries)
    PointsHold.objects.bulk_create(held, batch_size=1000)
    PointsHold.objects.bulk_create([
        PointsHold(member=purchase.member, purchase=purchase, points=purchase.points_earned, available_at=moment,
                   status=PointsHold.Status.RELEASED, released_entry=entries[index])
        for purchase, index, moment in releases
    ], batch_size=1000)
    return len(purchases), len(entries), len(held)


def _fill_purchase_pks(purchases: list[Purchase]) -> None:
    missing = [purchase for purchase in purchases if purchase.pk is None]
    if not missing:
        return
    ids = dict(Purchase.objects.filter(receipt_no__in=[p.receipt_no for p in missing])
               .values_list("receipt_no", "pk"))
    for purchase in missing:
        purchase.pk = ids[purchase.receipt_no]


def _fill_entry_pks(entries: list[PointsEntry]) -> None:
    missing = [entry for entry in entries if entry.pk is None]
    if not missing:
        return
    ids = dict(PointsEntry.objects.filter(kind=PointsEntry.Kind.EARN, receipt_no__in=[e.receipt_no for e in missing])
               .values_list("receipt_no", "pk"))
    for entry in missing:
        entry.pk = ids[entry.receipt_no]


def _plus_for_a_few(*, today: date) -> int:
    """Plus for one demo member in DEMO_PLUS_EVERY, bought at their store's desk (a member who has it keeps it)."""
    plus = Tier.objects.filter(kind=Tier.Kind.PAID, code="PLUS", is_active=True).first()
    if plus is None:
        return 0
    members = (
        Member.objects.filter(
            Exists(MemberIdentity.objects.filter(member=OuterRef("pk"), source=DEMO_SOURCE)),
            Exists(Purchase.objects.filter(member=OuterRef("pk"))),
            status=Member.Status.ACTIVE, paid_tier__isnull=True,
        )
        .exclude(Exists(TierChange.objects.filter(
            member=OuterRef("pk"), reason__in=[TierChange.Reason.PAID, TierChange.Reason.PAID_EXPIRY]
        )))
        .select_related("registered_store").order_by("pk")
    )
    sold = 0
    for member in members.iterator(chunk_size=500):
        index = _demo_index(member)
        if index % DEMO_PLUS_EVERY != 7:
            continue
        rng = random.Random(DEMO_SEED + index)
        paid_tier_buy(member=member, tier=plus, store=member.registered_store, today=today,
                      payment_method=rng.choice(PAYMENT_METHODS[:4]))
        sold += 1
    return sold
