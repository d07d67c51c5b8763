"""Reads of members shared by the desk, the admin, the API and reports.

Every lookup here is an exact match on an indexed column (member number,
phone, ID digest, card number, identity number, pinyin initials prefix), so it
stays fast with tens of millions of members.
"""

import re
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from core.pii import normalize_id_number, normalize_phone, pii_digest
from membership.models import Member, MemberCard, MemberIdentity
from membership.services import member_no_is_valid, survivor_pk

_CJK = re.compile(r"[\u3400-\u9fff]")
_INITIALS = re.compile(r"^[a-zA-Z]{2,10}$")
_ID_SHAPE = re.compile(r"^\d{17}[\dXx]$")


def live_members() -> QuerySet:
    return Member.objects.exclude(status=Member.Status.MERGED).select_related("tier")


def _resolve_merged(member_ids) -> QuerySet:
    """The members behind some ids, a merged record replaced by the member it went into."""
    rows = Member.objects.filter(pk__in=list(member_ids)).values_list("pk", "merged_into_id")
    return live_members().filter(pk__in={survivor_pk(pk, merged_into) for pk, merged_into in rows})


def members_by_phone(phone: str) -> QuerySet:
    phone = normalize_phone(phone)
    if not phone:
        return Member.objects.none()
    return live_members().filter(Q(phone=phone) | Q(family_phone=phone))


def members_by_member_no(member_no: str) -> QuerySet:
    """By our own number or by a legacy one (several legacy systems may share a number)."""
    member_no = member_no.strip()
    if not member_no:
        return Member.objects.none()
    ids = set(Member.objects.filter(member_no=member_no).values_list("pk", flat=True))
    ids |= set(MemberIdentity.objects.filter(external_no=member_no).values_list("member_id", flat=True))
    return _resolve_merged(ids)


def members_by_card_no(card_no: str) -> QuerySet:
    ids = MemberCard.objects.filter(card_no=card_no.strip()).values_list("member_id", flat=True)
    return _resolve_merged(ids)


def members_by_id_number(id_number: str) -> QuerySet:
    number = normalize_id_number(id_number)
    if not number:
        return Member.objects.none()
    return live_members().filter(id_number_digest=pii_digest(number))


def members_by_name(text: str) -> QuerySet:
    """Exact name, or the start of the pinyin initials (zxy finds 张秀英)."""
    text = text.strip()
    if _INITIALS.match(text):
        return live_members().filter(name_initials__startswith=text.lower())
    return live_members().filter(name=text)


@dataclass(frozen=True)
class SearchKind:
    kind: str
    value: str


def classify_search(text: str) -> SearchKind:
    """What a clerk typed or a reader sent: an ID, a phone, a member number, a card, a name."""
    text = (text or "").strip()
    compact = re.sub(r"[\s-]", "", text)
    if _ID_SHAPE.match(compact):
        return SearchKind("id_number", compact.upper())
    if member_no_is_valid(compact):
        return SearchKind("member_no", compact)
    phone = normalize_phone(text)
    if re.fullmatch(r"1[3-9]\d{9}", phone) or re.fullmatch(r"0\d{2,3}-?\d{7,8}", phone):
        return SearchKind("phone", phone)
    if compact.isdigit():
        return SearchKind("number", compact)
    return SearchKind("name", text)


def members_matching(search: SearchKind) -> QuerySet:
    """The live members one classified search names (see classify_search)."""
    if search.kind == "id_number":
        return members_by_id_number(search.value)
    if search.kind == "phone":
        return members_by_phone(search.value)
    if search.kind == "member_no":
        return members_by_member_no(search.value)
    if search.kind == "number":
        return members_by_card_no(search.value) | members_by_member_no(search.value)
    return members_by_name(search.value)


def members_search(text: str, *, limit: int = 50) -> list[Member]:
    """One search box: ID number, phone, member or card number, legacy number, name or initials."""
    search = classify_search(text)
    if not search.value:
        return []
    return list(members_matching(search).order_by("name", "pk")[:limit])


def likely_duplicates(*, name: str, phone: str = "", family_phone: str = "", id_number: str = "",
                      birth_date=None, limit: int = 10) -> list[Member]:
    """Members a new registration may duplicate: same ID, or same name with the same phone or birth date."""
    condition = Q()
    number = normalize_id_number(id_number)
    if number:
        condition |= Q(id_number_digest=pii_digest(number))
    name = " ".join((name or "").split())
    for value in (phone, family_phone):
        value = normalize_phone(value or "")
        if value:
            condition |= Q(phone=value, name=name) | Q(family_phone=value, name=name)
    if name and birth_date:
        condition |= Q(name=name, birth_date=birth_date)
    if not condition:
        return []
    return list(live_members().filter(condition).order_by("pk")[:limit])
