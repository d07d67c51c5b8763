"""Reads of members shared by the desk, the admin, the API and reports.

Every lookup here is an exact match on an indexed column (member number,
phone, ID digest, card number, identity number, pinyin initials prefix), so it
stays fast with tens of millions of members.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import DateField, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from core.dates import moment_months_add
from core.pii import normalize_id_number, normalize_phone, pii_digest
from membership.models import (
    Gift,
    GiftStock,
    Member,
    MemberCard,
    MemberIdentity,
    PointsHold,
    PointsPolicy,
    Purchase,
)
from membership.services import (
    LIVE_STATUSES,
    member_no_is_valid,
    points_credited_since,
    points_expiry_cutoff,
    survivor_pk,
)
from stores.queries import user_store_ids

_CJK = re.compile(r"[\u3400-\u9fff]")
_INITIALS = re.compile(r"^[a-zA-Z]{2,10}$")
_ID_SHAPE = re.compile(r"^[0-9]{17}[0-9Xx]$")

# A store's customers are those registered there or who bought there within this many months (DESIGN section 5).
MEMBER_SCOPE_MONTHS = 12


def members_in_scope(queryset: QuerySet, user, *, now: datetime | None = None) -> QuerySet:
    """The members of `queryset` a user may see: every member for headquarters; for store staff the members
    registered at one of their stores or with a purchase at one of them in the last MEMBER_SCOPE_MONTHS months.

    One EXISTS per member on the purchases (indexes purchase_member_time and purchase_store_time), never a join
    that repeats members. docs/operations.md section 4 states the rule.
    """
    return member_rows_in_scope(queryset, user, member_path="", now=now)


def member_rows_in_scope(queryset: QuerySet, user, *, member_path: str = "member",
                         now: datetime | None = None) -> QuerySet:
    """The rows of `queryset` that belong to a member the user may see (members_in_scope): a member's cards,
    identities, ledger entries, tier changes; `member_path` is the lookup from a row to its member ("" for
    members themselves).

    The same condition as members_in_scope, on the row: its member's registering store (through the foreign key,
    one row per row) or one EXISTS on the member's purchases, never a list of the store's members.
    """
    store_ids = user_store_ids(user)
    if store_ids is None:
        return queryset
    since = moment_months_add(now or timezone.now(), -MEMBER_SCOPE_MONTHS)
    prefix = f"{member_path}__" if member_path else ""
    bought_here = Purchase.objects.filter(member=OuterRef(member_path or "pk"), store_id__in=store_ids,
                                          occurred_at__gte=since)
    return queryset.filter(Q(**{f"{prefix}registered_store_id__in": store_ids}) | Exists(bought_here))


def members_in_scope_count(store_ids, *, now: datetime | None = None) -> int:
    """How many live members the staff of these stores see (members_in_scope without merged records), counted
    as two index reads: those registered at the stores, and the other members who bought there lately."""
    since = moment_months_add(now or timezone.now(), -MEMBER_SCOPE_MONTHS)
    live = ~Q(status=Member.Status.MERGED)
    registered = Member.objects.filter(live, registered_store_id__in=store_ids).count()
    # Sales without a member are no buyer to count.
    buyers = (Purchase.objects.filter(store_id__in=store_ids, occurred_at__gte=since, member__isnull=False)
              .exclude(member__registered_store_id__in=store_ids).exclude(member__status=Member.Status.MERGED)
              .values("member_id").distinct().count())
    return registered + buyers


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
    if re.fullmatch(r"1[3-9][0-9]{9}", phone) or re.fullmatch(r"0[0-9]{2,3}-?[0-9]{7,8}", phone):
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


# --- points expiry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PointsExpiry:
    """The next year end that takes points: the last day they can be spent, and the credits still valid after."""

    expires_on: date
    cutoff: datetime


def points_expiry_next(*, today: date | None = None) -> PointsExpiry | None:
    """The expiry that comes at the end of this year, or None while points do not expire."""
    policy = PointsPolicy.current()
    if not policy.expiry_enabled:
        return None
    today = today or timezone.localdate()
    expires_on = date(today.year, 12, 31)
    return PointsExpiry(
        expires_on=expires_on,
        cutoff=points_expiry_cutoff(run_on=expires_on + timedelta(days=1), expiry_years=policy.expiry_years),
    )


def _points_expiring_expression(cutoff: datetime):
    """points minus the credits still valid after `cutoff`: the rule of services.points_expire, per member."""
    valid = (
        points_credited_since(cutoff).filter(member=OuterRef("pk")).order_by().values("member")
        .annotate(total=Sum("points")).values("total")
    )
    return F("points") - Coalesce(Subquery(valid, output_field=IntegerField()), Value(0))


def points_expiring(*, today: date | None = None, within_days: int | None = None) -> QuerySet:
    """Live members with points the coming year end takes, the most first: the "points expiring soon" list.

    Each member is annotated with `points_expiring` (what would expire if they
    spent nothing more; spending lowers it, new earnings do not) and
    `points_expire_on` (the last day they can be spent). Empty while the year
    end is more than `within_days` away (default PointsPolicy.expiry_notice_days)
    or points do not expire; pass within_days=366 to list it at any time of year.
    """
    today = today or timezone.localdate()
    expiry = points_expiry_next(today=today)
    if within_days is None:
        within_days = PointsPolicy.current().expiry_notice_days
    if expiry is None or (expiry.expires_on - today).days > within_days:
        return Member.objects.none()
    return (
        live_members().filter(status__in=LIVE_STATUSES, points__gt=0)
        .annotate(
            points_expiring=_points_expiring_expression(expiry.cutoff),
            points_expire_on=Value(expiry.expires_on, output_field=DateField()),
        )
        .filter(points_expiring__gt=0)
        .order_by("-points_expiring", "pk")
    )


@dataclass(frozen=True)
class MemberPointsExpiring:
    points: int
    expires_on: date


def member_points_expiring(*, member: Member, today: date | None = None) -> MemberPointsExpiring | None:
    """How many of a member's points the coming year end takes (for the member page and the desk), or None."""
    expiry = points_expiry_next(today=today)
    if expiry is None or member.points <= 0:
        return None
    points = (
        Member.objects.filter(pk=member.pk).annotate(expiring=_points_expiring_expression(expiry.cutoff))
        .values_list("expiring", flat=True).first()
    )
    if not points or points <= 0:
        return None
    return MemberPointsExpiring(points=points, expires_on=expiry.expires_on)


# --- gifts ------------------------------------------------------------------------------------


def gifts_available(*, store) -> QuerySet:
    """The active gifts a store has in stock, each annotated with `in_stock`, cheapest first."""
    in_stock = GiftStock.objects.filter(gift=OuterRef("pk"), store=store).values("quantity")[:1]
    return (
        Gift.objects.filter(is_active=True, stocks__store=store, stocks__quantity__gt=0)
        .annotate(in_stock=Subquery(in_stock, output_field=IntegerField()))
        .order_by("points", "code")
    )


def member_points_pending(member: Member) -> int:
    """Points earned inside a format's return window, not usable yet."""
    remaining = F("points") - F("cancelled_points")
    pending = member.points_holds.filter(status=PointsHold.Status.PENDING).aggregate(total=Sum(remaining))
    return pending["total"] or 0
