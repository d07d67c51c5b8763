"""The named demo members of the README and the member approvals waiting for the demo HQ approver.

- 张秀英, phone 13800138000, member card 6689000000000018: the member the README's POS lookup finds (and the
  desk's `zxy` search), with two purchases at DEPT001 recorded through `purchase_record`, so she has points.
- 王建国 twice (phone 13900139000): two records whose ID numbers differ in one digit, a merge candidate, and a
  merge request waiting for a second person's approval (records with different ID numbers).
- A points adjustment for 张秀英 asked for by `dept001_manager`, waiting for approval.

Everything goes through the services a desk or the admin uses (`member_register`, `purchase_record`,
`member_merge_request`, `points_adjust_request`), so approving a request in 审批 → 审批申请 does what it says.
Rows are found by their identity (source DEMO_SHOWCASE) and an open request is never asked twice, so a second
run adds nothing.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from approvals.models import ApprovalRequest
from approvals.queries import pending_request
from core.pii import resident_id_check_digit
from membership.models import Member, MemberCard, MemberIdentity, MergeCandidate, Purchase
from membership.services import MemberInput, member_register
from membership.services.adjustments import POINTS_ADJUST, points_adjust_request
from membership.services.members import (
    MEMBER_MERGE_CONFLICTING_IDS,
    _pair,
    member_merge_request,
    merge_candidates_add,
)
from membership.services.purchases import purchase_record
from stores.models import Store

SHOWCASE_SOURCE = "DEMO_SHOWCASE"
STORE_CODE = "DEPT001"
STORE_REQUESTER = "dept001_manager"


def _resident_id(first17: str) -> str:
    return first17 + resident_id_check_digit(first17)


# The README's example member: phone, member card and ID number answer the POS lookup.
README_PHONE = "13800138000"
README_MEMBER_CARD = "6689000000000018"
README_MEMBER = {
    "key": "README-1", "name": "张秀英", "phone": README_PHONE, "id_number": _resident_id("50010319520312086"),
    "birth_date": date(1952, 3, 12), "gender": "F", "card_no": README_MEMBER_CARD,
}
# One person registered twice, at two stores, the second time with one digit of the ID number mistyped.
MERGE_PHONE = "13900139000"
MERGE_PAIR = [
    {"key": "MERGE-1", "name": "王建国", "phone": MERGE_PHONE, "id_number": _resident_id("50010519580721011"),
     "birth_date": date(1958, 7, 21), "gender": "M", "card_no": ""},
    {"key": "MERGE-2", "name": "王建国", "phone": MERGE_PHONE, "id_number": _resident_id("50010519580721013"),
     "birth_date": date(1958, 7, 21), "gender": "M", "card_no": ""},
]
README_PURCHASES = [
    # receipt, amount, days ago, lines
    ("DEMO-README-0001", Decimal("1288.00"), 40, [{"sku": "D1000001", "category": "APPAREL", "amount": "1288.00",
                                                  "quantity": "1"}]),
    ("DEMO-README-0002", Decimal("356.50"), 12, [{"sku": "D1000002", "category": "COSMETICS", "amount": "356.50",
                                                 "quantity": "1"}]),
]
POINTS_ADJUSTMENT = 500
POINTS_REASON = "演示数据：补录 10 月 3 日小票 DEPT001-88213 漏记的积分"
MERGE_REASON = "演示数据：同一手机号、同名，身份证号相差一位（疑似登记时录错），请核对后合并"


@dataclass
class ShowcaseResult:
    members: int = 0
    purchases: int = 0
    approvals: list[str] = field(default_factory=list)


def showcase_member(key: str) -> Member | None:
    identity = (MemberIdentity.objects.filter(source=SHOWCASE_SOURCE, external_no=key)
                .select_related("member").first())
    return identity.member if identity is not None else None


def _member(person: dict, *, store: Store | None) -> tuple[Member, bool]:
    member = showcase_member(person["key"])
    if member is not None:
        return member, False
    card_no = person["card_no"] if not MemberCard.objects.filter(card_no=person["card_no"]).exists() else ""
    member = member_register(
        data=MemberInput(name=person["name"], phone=person["phone"], id_type=Member.IdType.RESIDENT_ID,
                         id_number=person["id_number"], birth_date=person["birth_date"], gender=person["gender"],
                         card_no=card_no),
        store=store, channel=Member.Channel.DESK,
    )
    MemberIdentity.objects.create(member=member, source=SHOWCASE_SOURCE, external_no=person["key"])
    return member, True


@transaction.atomic
def seed_showcase_members() -> ShowcaseResult:
    """张秀英 of the README with two purchases, and the 王建国 pair; return what was created."""
    result = ShowcaseResult()
    store = Store.objects.select_related("format").filter(code=STORE_CODE).first()
    readme, created = _member(README_MEMBER, store=store)
    result.members += created
    for person in MERGE_PAIR:
        result.members += _member(person, store=store)[1]
    if store is not None:
        now = timezone.now()
        for receipt_no, amount, days_ago, lines in README_PURCHASES:
            if Purchase.objects.filter(store=store, receipt_no=receipt_no).exists():
                continue
            purchase_record(store=store, member=readme, receipt_no=receipt_no, amount=amount,
                            occurred_at=now - timedelta(days=days_ago, hours=3), payment_method="wechat",
                            lines=lines)
            result.purchases += 1
    return result


def _user(username: str):
    return get_user_model().objects.filter(username=username, is_active=True).first()


@transaction.atomic
def seed_member_approvals(*, requester) -> list[str]:
    """A points adjustment (asked for by DEPT001's manager) and a merge of two records with different ID
    numbers (asked for by `requester`), both waiting for approval; return the actions asked for now.

    A request is asked for once: one that is pending, or was ever decided, is not asked again.
    """
    asked = []
    readme = showcase_member(README_MEMBER["key"])
    store_requester = _user(STORE_REQUESTER)
    store = Store.objects.filter(code=STORE_CODE).first()
    if readme is not None and store_requester is not None and not _ever_asked(readme, POINTS_ADJUST):
        points_adjust_request(member=readme, points=POINTS_ADJUSTMENT, reason=POINTS_REASON,
                              requested_by=store_requester, store=store)
        asked.append(POINTS_ADJUST)
    survivor, merged = (showcase_member(person["key"]) for person in MERGE_PAIR)
    if (survivor is not None and merged is not None and requester is not None
            and merged.status != Member.Status.MERGED and not _ever_asked(merged, MEMBER_MERGE_CONFLICTING_IDS)):
        merge_candidates_add([(survivor.pk, merged.pk)], reason=MergeCandidate.Reason.SAME_NAME_BIRTH)
        member_a, member_b = _pair(survivor.pk, merged.pk)
        candidate = MergeCandidate.objects.filter(member_a_id=member_a, member_b_id=member_b).first()
        member_merge_request(survivor=survivor, merged=merged, requested_by=requester, reason=MERGE_REASON,
                             candidate=candidate)
        asked.append(MEMBER_MERGE_CONFLICTING_IDS)
    return asked


def _ever_asked(member: Member, action: str) -> bool:
    from django.contrib.contenttypes.models import ContentType

    return pending_request(member, actions=[action]) is not None or ApprovalRequest.objects.filter(
        action=action, content_type=ContentType.objects.get_for_model(Member), object_id=str(member.pk),
    ).exists()
