"""The demo benefit catalogue (会员 → 权益) and a few uses to look at.

- PARKING 免费停车: 4 hours a month with Plus, 2 with 铂金卡.
- GIFTWRAP 礼品包装: 2 times a month from 金卡 up, 4 with Plus.
- HOMESVC 上门服务: 1 visit a month with Plus.
- LOUNGE 贵宾室: 2 times a month with 铂金卡, 4 with Plus.

Two Plus members used parking hours and a 金卡 member had a gift wrapped, each at their registering store, through
`benefit_use` as a desk records it. Benefits and quotas are found by their code and tier, and a member with a use
is not given another, so a second run adds nothing.
"""

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from membership.models import Benefit, BenefitQuota, BenefitUse, Member, Tier
from membership.services.benefits import benefit_use

# code, name, unit, description, {tier code: quota per month}
CATALOGUE = [
    ("PARKING", "免费停车", Benefit.Unit.HOUR, "商场停车场免费停车，按小时计", {"PLUS": 4, "PLATINUM": 2}),
    ("GIFTWRAP", "礼品包装", Benefit.Unit.TIME, "服务台免费礼品包装",
     {"GOLD": 2, "PLATINUM": 2, "PLUS": 4}),
    ("HOMESVC", "上门服务", Benefit.Unit.VISIT, "家电安装调试、汽车上门取送等上门服务", {"PLUS": 1}),
    ("LOUNGE", "贵宾室", Benefit.Unit.TIME, "百货贵宾室休息，含茶饮", {"PLATINUM": 2, "PLUS": 4}),
]
# benefit code, tier the member holds (earned or paid), members, quantity
DEMO_USES = [("PARKING", "PLUS", 2, 2), ("GIFTWRAP", "GOLD", 1, 1)]


@dataclass
class BenefitsResult:
    benefits: int = 0
    quotas: int = 0
    uses: int = 0


def _members_holding(tier_code: str, count: int) -> list[Member]:
    today = timezone.localdate()
    members = Member.objects.filter(status=Member.Status.ACTIVE, registered_store__isnull=False)
    if tier_code == "PLUS":
        members = members.filter(paid_tier__code=tier_code, paid_tier_until__gte=today)
    else:
        members = members.filter(tier__code=tier_code)
    return list(members.select_related("registered_store").order_by("pk")[:count])


@transaction.atomic
def benefits_seed() -> BenefitsResult:
    """The catalogue with its quotas and a few uses by demo members; return what was created."""
    result = BenefitsResult()
    tiers = {tier.code: tier for tier in Tier.objects.all()}
    for code, name, unit, description, quotas in CATALOGUE:
        benefit, created = Benefit.objects.get_or_create(
            code=code, defaults={"name": name, "unit": unit, "description": description},
        )
        result.benefits += created
        for tier_code, quantity in quotas.items():
            if tier_code in tiers:
                result.quotas += BenefitQuota.objects.get_or_create(
                    benefit=benefit, tier=tiers[tier_code],
                    defaults={"quantity": quantity, "period": BenefitQuota.Period.MONTH},
                )[1]
    for code, tier_code, count, quantity in DEMO_USES:
        for member in _members_holding(tier_code, count):
            if BenefitUse.objects.filter(member=member).exists():
                continue
            benefit_use(member=member, code=code, quantity=quantity, store=member.registered_store,
                        note="演示数据")
            result.uses += 1
    return result
