"""Tier benefits with quotas (权益): what a member may still use this period, and each use recorded.

A member is entitled to the quotas of their earned tier and of their paid tier while its term runs; when both
give a benefit, the larger quota (and its period) applies. Periods are local calendar periods (Asia/Shanghai):
a day, a month, a quarter, a year. Every use is an append-only BenefitUse row that records the period it counts
in and the quota it was measured against; what is left is the quota less the uses of the period.

A use locks the member row first, then sums the period's uses: two desks or tills using the last hour of a
quota queue on that lock, and the second finds it used.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from typing import NamedTuple

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext

from core.dates import months_add, quarter_start
from membership.errors import (
    BenefitExhausted,
    BenefitNotFound,
    BenefitUseInvalid,
    MemberNotActive,
    MemberNotFound,
    NotEntitled,
)
from membership.models import Benefit, BenefitQuota, BenefitUse, Member
from membership.services.ledger import _lock_members

__all__ = [
    "BENEFIT_USE_MAX", "BenefitBalance", "BenefitUseResult", "benefit_give_back", "benefit_period", "benefit_use",
    "member_benefits", "members_benefits",
]

# One use at a desk or a till; a larger figure is a typing mistake.
BENEFIT_USE_MAX = 1000
_RECEIPT_LENGTH = BenefitUse._meta.get_field("receipt_no").max_length
_NOTE_LENGTH = BenefitUse._meta.get_field("note").max_length
# Of two quotas of the same size, the shorter period gives more.
_PERIOD_RANK = {
    BenefitQuota.Period.DAY: 0, BenefitQuota.Period.MONTH: 1, BenefitQuota.Period.QUARTER: 2,
    BenefitQuota.Period.YEAR: 3,
}


class BenefitBalance(NamedTuple):
    """A benefit the member is entitled to: the quota of the period, used so far and what is left."""

    benefit: Benefit
    quota: int
    period: str
    used: int
    remaining: int
    period_start: date


class BenefitUseResult(NamedTuple):
    use: BenefitUse
    used: int
    remaining: int


def benefit_period(period: str, on: date) -> tuple[date, date]:
    """The first day of the quota period `on` is in, and the first day of the next one."""
    if period == BenefitQuota.Period.DAY:
        return on, on + timedelta(days=1)
    if period == BenefitQuota.Period.MONTH:
        start = on.replace(day=1)
        return start, months_add(start, 1)
    if period == BenefitQuota.Period.QUARTER:
        start = quarter_start(on)
        return start, months_add(start, 3)
    return date(on.year, 1, 1), date(on.year + 1, 1, 1)


def _tier_ids(member: Member, on: date) -> list[int]:
    """The earned tier, and the paid tier while its term runs (its last day counts, as in paid_tier_active)."""
    ids = [member.tier_id] if member.tier_id else []
    if member.paid_tier_id and member.paid_tier_until is not None and member.paid_tier_until >= on:
        ids.append(member.paid_tier_id)
    return ids


def _better(quota: BenefitQuota, other: BenefitQuota | None) -> bool:
    if other is None:
        return True
    return (quota.quantity, -_PERIOD_RANK[quota.period]) > (other.quantity, -_PERIOD_RANK[other.period])


def _entitlements(members: list[Member], on: date) -> dict[int, dict[int, BenefitQuota]]:
    """{member pk: {benefit pk: the quota that applies}}, active benefits only, in one query."""
    tiers = {member.pk: _tier_ids(member, on) for member in members}
    wanted = {tier_id for ids in tiers.values() for tier_id in ids}
    by_tier: dict[int, list[BenefitQuota]] = defaultdict(list)
    if wanted:
        for quota in BenefitQuota.objects.filter(tier_id__in=wanted, benefit__is_active=True).select_related("benefit"):
            by_tier[quota.tier_id].append(quota)
    result: dict[int, dict[int, BenefitQuota]] = {}
    for member_pk, ids in tiers.items():
        best: dict[int, BenefitQuota] = {}
        for tier_id in ids:
            for quota in by_tier[tier_id]:
                if _better(quota, best.get(quota.benefit_id)):
                    best[quota.benefit_id] = quota
        result[member_pk] = best
    return result


def members_benefits(members: Iterable[Member], *, on: date | None = None) -> dict[int, list[BenefitBalance]]:
    """What each member may use this period, by member pk, benefits by code: two queries for any number of
    members (the quotas of their tiers, the period's uses)."""
    members = list(members)
    on = on or timezone.localdate()
    entitled = _entitlements(members, on)
    windows = {
        (member_pk, benefit_pk): benefit_period(quota.period, on)
        for member_pk, quotas in entitled.items() for benefit_pk, quota in quotas.items()
    }
    used: dict[tuple[int, int], int] = defaultdict(int)
    if windows:
        starts = [start for start, _end in windows.values()]
        ends = [end for _start, end in windows.values()]
        rows = (
            BenefitUse.objects.filter(
                member_id__in={member_pk for member_pk, _benefit in windows},
                benefit_id__in={benefit_pk for _member, benefit_pk in windows},
                period_start__gte=min(starts), period_start__lt=max(ends),
            )
            .values_list("member_id", "benefit_id", "period_start")
            .annotate(total=Sum("quantity"))
            .order_by()
        )
        for member_pk, benefit_pk, period_start, total in rows:
            window = windows.get((member_pk, benefit_pk))
            if window is not None and window[0] <= period_start < window[1]:
                used[member_pk, benefit_pk] += total
    result = {}
    for member in members:
        balances = []
        for benefit_pk, quota in entitled[member.pk].items():
            taken = max(used[member.pk, benefit_pk], 0)
            balances.append(BenefitBalance(
                benefit=quota.benefit, quota=quota.quantity, period=quota.period, used=taken,
                remaining=max(quota.quantity - taken, 0), period_start=windows[member.pk, benefit_pk][0],
            ))
        result[member.pk] = sorted(balances, key=lambda balance: balance.benefit.code)
    return result


def member_benefits(member: Member, *, on: date | None = None) -> list[BenefitBalance]:
    """The benefits the member is entitled to on that day (today by default), with what is left of each."""
    return members_benefits([member], on=on)[member.pk]


def _quantity_errors(quantity) -> list[str]:
    if not isinstance(quantity, int) or isinstance(quantity, bool):
        return [gettext("The quantity is a whole number.")]
    if not 1 <= quantity <= BENEFIT_USE_MAX:
        return [gettext("Give a quantity from 1 to %(max)s.") % {"max": BENEFIT_USE_MAX}]
    return []


def _text_errors(*, receipt_no: str, note: str) -> dict:
    errors = {}
    if len(receipt_no) > _RECEIPT_LENGTH:
        errors["receipt_no"] = [gettext("A receipt number has at most %(length)s characters.")
                                % {"length": _RECEIPT_LENGTH}]
    if len(note) > _NOTE_LENGTH:
        errors["note"] = [gettext("A note has at most %(length)s characters.") % {"length": _NOTE_LENGTH}]
    return errors


def _locked_member(member: Member | int) -> Member:
    try:
        member = _lock_members(member.pk if isinstance(member, Member) else member)[0]
    except KeyError:
        raise MemberNotFound() from None
    if member.status != Member.Status.ACTIVE:
        raise MemberNotActive(member_no=member.member_no, status=member.get_status_display())
    return member


def _balance_locked(member: Member, benefit: Benefit, on: date) -> BenefitBalance:
    """The member's balance of one benefit, read under the member's lock. Raise NotEntitled."""
    balance = next((item for item in member_benefits(member, on=on) if item.benefit.pk == benefit.pk), None)
    if balance is None:
        raise NotEntitled(member_no=member.member_no, benefit=benefit.name)
    return balance


def _benefit(code: str) -> Benefit:
    benefit = Benefit.objects.filter(code=(code or "").strip()).first()
    if benefit is None:
        raise BenefitNotFound(code=code)
    return benefit


@transaction.atomic
def benefit_use(
    *,
    member: Member | int,
    code: str,
    quantity: int,
    store,
    terminal=None,
    receipt_no: str = "",
    operator=None,
    note: str = "",
    on: date | None = None,
) -> BenefitUseResult:
    """Record a member's use of a benefit at a store (a desk or a till), within what is left of the quota.

    Raise BenefitUseInvalid (naming the field), BenefitNotFound, MemberNotFound, MemberNotActive, NotEntitled
    (no quota from the member's tiers, or the benefit is off) and BenefitExhausted (the message says how many are
    left); each writes nothing.
    """
    receipt_no, note = (receipt_no or "").strip(), (note or "").strip()
    errors = _text_errors(receipt_no=receipt_no, note=note)
    if quantity_errors := _quantity_errors(quantity):
        errors["quantity"] = quantity_errors
    if errors:
        raise BenefitUseInvalid(fields=errors)
    benefit = _benefit(code)
    member = _locked_member(member)
    on = on or timezone.localdate()
    balance = _balance_locked(member, benefit, on)
    if quantity > balance.remaining:
        raise BenefitExhausted(benefit=benefit.name, remaining=balance.remaining, quota=balance.quota)
    use = BenefitUse.objects.create(
        member=member, benefit=benefit, quantity=quantity, period_start=balance.period_start, quota=balance.quota,
        store=store, terminal=terminal, receipt_no=receipt_no, operator=operator, note=note,
    )
    return BenefitUseResult(use=use, used=quantity, remaining=balance.remaining - quantity)


@transaction.atomic
def benefit_give_back(
    *,
    member: Member | int,
    code: str,
    quantity: int,
    store,
    operator,
    note: str,
    on: date | None = None,
) -> BenefitUseResult:
    """Give back uses recorded by mistake in the current period (a negative use), never more than were used.

    Raise BenefitUseInvalid (naming the field: the quantity, or no note saying why), BenefitNotFound,
    MemberNotFound, MemberNotActive, NotEntitled.
    """
    note = (note or "").strip()
    errors = _text_errors(receipt_no="", note=note)
    if not note:
        errors["note"] = [gettext("Say why the use is given back.")]
    if quantity_errors := _quantity_errors(quantity):
        errors["quantity"] = quantity_errors
    if errors:
        raise BenefitUseInvalid(fields=errors)
    benefit = _benefit(code)
    member = _locked_member(member)
    on = on or timezone.localdate()
    balance = _balance_locked(member, benefit, on)
    if quantity > balance.used:
        raise BenefitUseInvalid(fields={"quantity": [
            gettext("Only %(used)s were used in this period; no more can be given back.") % {"used": balance.used}
        ]})
    use = BenefitUse.objects.create(
        member=member, benefit=benefit, quantity=-quantity, period_start=balance.period_start, quota=balance.quota,
        store=store, operator=operator, note=note,
    )
    return BenefitUseResult(use=use, used=-quantity,
                            remaining=max(balance.quota - (balance.used - quantity), 0))
