"""A partner channel (联名会员渠道) with members to look at on 会员 → 合作方.

- 招商银行重庆分行 (code CMB-CQ, registration code CMB2026), a bank whose card holders register with its code at
  DEPT001's and SUPER001's desks: ten members registered through it over the last five months, six of whom made a
  first purchase afterwards (two of them came back), so the partner's page shows members, converted members,
  their sales and a table per month.
- 中国移动重庆公司 (code CMCC-CQ), a telecom whose campaign ended: inactive, so its code is refused at the desk.

Members register through `member_register` with the partner's code (as the desk does) and buy through
`purchase_record`. Rows are found by their identity (source DEMO_PARTNER), so a second run adds nothing.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from membership.models import Member, MemberIdentity, Partner, Purchase
from membership.services import MemberInput, member_register
from membership.services.purchases import purchase_record
from stores.models import Store

PARTNER_SOURCE = "DEMO_PARTNER"
BANK = {"code": "CMB-CQ", "name": "招商银行重庆分行", "kind": Partner.Kind.BANK, "registration_code": "CMB2026",
        "notes": "信用卡持卡人凭注册码在服务台登记，首单满额送积分。"}
TELECOM = {"code": "CMCC-CQ", "name": "中国移动重庆公司", "kind": Partner.Kind.TELECOM,
           "registration_code": "CMCC2025", "is_active": False, "notes": "2025 年合作已结束。"}

# key, name, phone, store, registered days ago, purchases as (days after registering, amount)
PEOPLE = [
    ("P01", "陈丽华", "13708231001", "DEPT001", 150, [(2, "688.00"), (40, "1299.00")]),
    ("P02", "刘志强", "13708231002", "DEPT001", 140, [(5, "356.00")]),
    ("P03", "杨秀兰", "13708231003", "SUPER001", 120, [(1, "128.50"), (15, "86.30"), (33, "142.00")]),
    ("P04", "黄伟", "13708231004", "DEPT001", 95, []),
    ("P05", "赵敏", "13708231005", "SUPER001", 80, [(10, "215.80")]),
    ("P06", "周建华", "13708231006", "DEPT001", 62, []),
    ("P07", "吴桂英", "13708231007", "DEPT001", 45, [(3, "1580.00")]),
    ("P08", "徐磊", "13708231008", "SUPER001", 30, []),
    ("P09", "孙淑珍", "13708231009", "DEPT001", 18, [(4, "458.00")]),
    ("P10", "马俊", "13708231010", "SUPER001", 6, []),
]


@dataclass
class PartnersResult:
    partners: int = 0
    members: int = 0
    purchases: int = 0


def _partner(values: dict) -> tuple[Partner, bool]:
    values = dict(values)
    code = values.pop("code")
    return Partner.objects.get_or_create(code=code, defaults=values)


@transaction.atomic
def seed_partners() -> PartnersResult:
    """The bank with ten members (six converted) and the inactive telecom; return what was created."""
    result = PartnersResult()
    bank, created = _partner(BANK)
    result.partners += created
    result.partners += _partner(TELECOM)[1]
    stores = {store.code: store for store in Store.objects.select_related("format").filter(
        code__in={person[3] for person in PEOPLE})}
    now = timezone.now()
    for key, name, phone, store_code, registered_days_ago, purchases in PEOPLE:
        store = stores.get(store_code)
        if store is None:
            continue
        identity = MemberIdentity.objects.filter(source=PARTNER_SOURCE, external_no=key).select_related(
            "member").first()
        if identity is not None:
            continue
        member = member_register(
            data=MemberInput(name=name, phone=phone, contact_channel=Member.ContactChannel.SMS,
                             marketing_consent=True, partner_code=bank.registration_code),
            store=store, channel=Member.Channel.DESK,
        )
        # Demo history: the members registered over the last months, not all today.
        registered_at = now - timedelta(days=registered_days_ago, hours=2)
        Member.objects.filter(pk=member.pk).update(registered_at=registered_at)
        MemberIdentity.objects.create(member=member, source=PARTNER_SOURCE, external_no=key)
        result.members += 1
        for number, (days_after, amount) in enumerate(purchases, 1):
            receipt_no = f"DEMO-PARTNER-{key}-{number}"
            if Purchase.objects.filter(store=store, receipt_no=receipt_no).exists():
                continue
            purchase_record(store=store, member=member, receipt_no=receipt_no, amount=Decimal(amount),
                            occurred_at=registered_at + timedelta(days=days_after, hours=3),
                            payment_method="bank_card")
            result.purchases += 1
    return result
