"""Demo points promotions and a member day for `seed_demo` (safe to run twice: promotions and member days are matched
by their codes, purchases by their receipt numbers, new members by their phone).

- 周三微信支付双倍积分 (running): double points paying with WeChat Pay on Wednesdays at the supermarkets, with demo
  members' WeChat purchases at SUPER001 on the last Wednesdays;
- 金秋三倍积分 (past): three times the points (or Plus's 1.5x if larger) at every store for a week some forty days
  ago, with purchases at DEPT001 then;
- 周六积分抵现日 (running): on Saturdays 100 points are worth 1.50 yuan at every store (the policy's is 1.00);
- 会员日 covering the last three days at DEPT001 and SUPER001, with its own double points, two members who joined
  during it, and purchases of members and of customers who showed no membership, so its page shows new members
  and the member share of sales.

Purchases go through `purchase_record`, as the POS's do, so the points ledger names the promotions and each
promotion's results count them.
"""

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

import campaigns.promotion_hooks  # noqa: F401 - the purchases below earn through the promotions' hooks
from campaigns.models import MemberDay, PointsPromotion
from membership.models import Member, Purchase
from membership.services import MemberInput, member_register, tiers_evaluate
from membership.services.purchases import purchase_record
from stores.models import Format, Store

MEMBER_DAY_STORES = ("DEPT001", "SUPER001")
NEW_MEMBERS = (("林晓燕", "13700990001", "DEPT001"), ("周海军", "13700990002", "SUPER001"))
BUYERS = 6


def _at(day: date, hour: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour, 0)))


def _promotion(code: str, *, stores=(), formats=(), **fields) -> tuple[PointsPromotion, bool]:
    promotion, created = PointsPromotion.objects.get_or_create(code=code, defaults=fields)
    if created:
        promotion.stores.set(stores)
        promotion.formats.set(formats)
    return promotion, created


def _member_day(code: str, *, stores, **fields) -> tuple[MemberDay, bool]:
    member_day, created = MemberDay.objects.get_or_create(code=code, defaults=fields)
    if created:
        member_day.stores.set(stores)
    return member_day, created


def _buy(store: Store, member, receipt_no: str, amount: str, occurred_at: datetime, payment_method: str) -> bool:
    if occurred_at > timezone.now() or Purchase.objects.filter(store=store, receipt_no=receipt_no).exists():
        return False
    purchase_record(store=store, member=member, receipt_no=receipt_no, amount=Decimal(amount),
                    occurred_at=occurred_at, payment_method=payment_method,
                    lines=[{"sku": "6920152400012", "category": "FOOD", "amount": amount, "quantity": 1}])
    return True


def _last_weekdays(today: date, isoweekday: int, count: int) -> list[date]:
    last = today - timedelta(days=(today.isoweekday() - isoweekday) % 7 or 7)
    return [last - timedelta(weeks=week) for week in range(count)]


@transaction.atomic
def promotions_seed(*, stdout=None, today: date | None = None) -> dict[str, int]:
    """Create the demo promotions and member day with purchases that give them results; return what was made."""
    today = today or timezone.localdate()
    stores = {store.code: store for store in Store.objects.filter(code__in=("DEPT001", "SUPER001"))}
    supermarkets = Format.objects.filter(code="SUPER")
    made = {"promotions": 0, "member_days": 0, "purchases": 0, "members": 0}

    wechat, created = _promotion(
        "WX_WED_DOUBLE", name="周三微信支付双倍积分", kind=PointsPromotion.Kind.MULTIPLIER,
        multiplier=Decimal("2.00"), stacking=PointsPromotion.Stacking.MULTIPLY, weekdays="3",
        payment_methods="wechat", starts_on=today - timedelta(days=60), ends_on=today + timedelta(days=90),
        formats=supermarkets,
    )
    made["promotions"] += created
    autumn, created = _promotion(
        "AUTUMN_TRIPLE", name="金秋三倍积分", kind=PointsPromotion.Kind.MULTIPLIER, multiplier=Decimal("3.00"),
        stacking=PointsPromotion.Stacking.LARGER, starts_on=today - timedelta(days=45),
        ends_on=today - timedelta(days=38),
    )
    made["promotions"] += created
    _cash_day, created = _promotion(
        "SAT_CASH_DAY", name="周六积分抵现日", kind=PointsPromotion.Kind.CASH_RATE, cash_points=100,
        cash_value=Decimal("1.50"), weekdays="6", starts_on=today - timedelta(days=30),
        ends_on=today + timedelta(days=90),
    )
    made["promotions"] += created
    member_day, created = _member_day(
        "MEMBER_DAY_DEMO", name="会员日", starts_on=today - timedelta(days=2), ends_on=today,
        stores=list(stores.values()), description="会员专享：双倍积分、会员专享券。",
    )
    made["member_days"] += created
    _day_double, created = _promotion(
        "MEMBER_DAY_DOUBLE", name="会员日双倍积分", kind=PointsPromotion.Kind.MULTIPLIER,
        multiplier=Decimal("2.00"), stacking=PointsPromotion.Stacking.LARGER, member_day=member_day,
        starts_on=member_day.starts_on, ends_on=member_day.ends_on, stores=list(stores.values()),
    )
    made["promotions"] += created

    if len(stores) == len(MEMBER_DAY_STORES):
        made["members"] = _new_members(stores)
        made["purchases"] = _purchases(stores, today=today, autumn=autumn, wechat=wechat, member_day=member_day)
        if made["purchases"]:
            # The nightly evaluation, now: the demo's tiers follow these purchases too, and a second run finds
            # nothing left to change.
            tiers_evaluate(today=today)
    if stdout is not None:
        stdout.write(f"Points promotions: {made['promotions']} promotions and {made['member_days']} member days "
                     f"created; {made['purchases']} purchases and {made['members']} new members for their results.")
    return made


def _new_members(stores: dict[str, Store]) -> int:
    created = 0
    for name, phone, store_code in NEW_MEMBERS:
        if not Member.objects.filter(phone=phone).exists():
            member_register(data=MemberInput(name=name, phone=phone), store=stores[store_code])
            created += 1
    return created


def _purchases(stores: dict[str, Store], *, today: date, autumn: PointsPromotion, wechat: PointsPromotion,
               member_day: MemberDay) -> int:
    buyers = list(Member.objects.filter(status=Member.Status.ACTIVE).exclude(
        phone__in=[phone for _name, phone, _store in NEW_MEMBERS]).order_by("pk")[:BUYERS])
    if not buyers:
        return 0
    dept, supermarket = stores["DEPT001"], stores["SUPER001"]
    made = 0
    for week, day in enumerate(_last_weekdays(today, 3, 3)):
        if day < wechat.starts_on:
            continue
        for index, member in enumerate(buyers[:3]):
            made += _buy(supermarket, member, f"DEMO-WX-{day:%Y%m%d}-{index}", f"{88 + 37 * index + week}.50",
                         _at(day, 10 + index), "wechat")
    autumn_day = autumn.starts_on + timedelta(days=2)
    for index, member in enumerate(buyers[2:5]):
        made += _buy(dept, member, f"DEMO-AUTUMN-{index}", f"{268 + 120 * index}.00", _at(autumn_day, 15 + index),
                     "bank_card")
    now = timezone.now()
    for index, member in enumerate(buyers):
        store = dept if index % 2 == 0 else supermarket
        moment = max(now - timedelta(hours=3 + 9 * index), _at(member_day.starts_on, 9))
        made += _buy(store, member, f"DEMO-MD-{member_day.code}-{index}", f"{158 + 45 * index}.00", moment,
                     "wechat" if index % 3 == 0 else "cash")
    for index in range(3):
        store = supermarket if index % 2 == 0 else dept
        moment = max(now - timedelta(hours=2 + 11 * index), _at(member_day.starts_on, 9))
        made += _buy(store, None, f"DEMO-MD-{member_day.code}-GUEST-{index}", f"{96 + 60 * index}.00", moment,
                     "cash")
    return made
