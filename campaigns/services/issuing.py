"""Issuing coupons: to members (a list or a file of member numbers), as bulk codes, by a public claim code,
and after a purchase that qualifies.

Each issue locks its template row, so the total quantity and the limit per member hold however many issues
run at once. A code is the template's prefix and 12 characters from a secure random source (60 bits: with ten
million coupons out, one guess in about 10^11 finds one); on PostgreSQL a large issue is written with COPY.
Every issue writes a coupon.issued webhook event per coupon in its transaction, when someone subscribes.
"""

import base64
import secrets
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, prefetch_related_objects
from django.utils import timezone
from django.utils.translation import gettext

from campaigns.errors import (
    AlreadyClaimed,
    ClaimCodeNotFound,
    CouponInvalid,
    CouponLimitReached,
    CouponQuantityExhausted,
    CouponTemplateNotActive,
)
from campaigns.models import Coupon, CouponBatch, CouponRule, CouponTemplate, weekday_set, word_set
from core.errors import TableInvalid
from core.sql import JoinedSelect, Part
from core.tabular import Column, TableReader
from integrations.events import events_emit_many, subscriptions_for
from integrations.models import EventType
from membership.errors import MemberNotActive
from membership.models import Member, MemberIdentity
from membership.services.members import survivor_pk
from membership.services.purchases import member_for_pos

__all__ = [
    "coupon_claim",
    "coupon_code_new",
    "coupon_codes_new",
    "coupons_after_payment",
    "coupons_issue",
    "coupons_issue_from_file",
    "members_from_file",
]

CODE_CHARACTERS = 12
# base32 without the letters read as digits: I and O become 8 and 9, which base32 does not use.
_READABLE = str.maketrans("IO", "89")
_COPY_COLUMNS = ("template_id", "batch_id", "code", "member_id", "status", "valid_from", "valid_until",
                 "issued_at", "issued_store_id")
_COPY_FROM = 20_000  # fewer coupons are inserted with bulk_create


def coupon_codes_new(count: int, *, prefix: str = "") -> list[str]:
    """`count` new random codes, each the prefix and 12 characters of A-Z and 2-9."""
    # 10 random bytes are exactly 16 base32 characters (no padding); each code keeps 12 of its own 16.
    raw = base64.b32encode(secrets.token_bytes(count * 10)).decode("ascii").translate(_READABLE)
    return [prefix + raw[index * 16:index * 16 + CODE_CHARACTERS] for index in range(count)]


def coupon_code_new(*, prefix: str = "") -> str:
    return coupon_codes_new(1, prefix=prefix)[0]


def _lock_template(template: CouponTemplate | int) -> CouponTemplate:
    pk = template if isinstance(template, int) else template.pk
    return CouponTemplate.objects.select_for_update().get(pk=pk)


def _validity(template: CouponTemplate, now) -> tuple:
    if template.valid_days:
        start = max(now, template.valid_from) if template.valid_from else now
        until = start + timedelta(days=template.valid_days)
        if template.valid_until is not None:
            until = min(until, template.valid_until)
        return start, until
    return template.valid_from, template.valid_until


def _ensure_active(template: CouponTemplate) -> None:
    if template.status != CouponTemplate.Status.ACTIVE:
        raise CouponTemplateNotActive(status=template.get_status_display())


def _within_limit(template: CouponTemplate, member_ids: list[int]) -> tuple[list[int], int]:
    """The members to issue to, each at most up to the template's limit per member; and how many were skipped."""
    wanted = Counter(member_ids)
    held: dict[int, int] = {}
    if template.issued_count:
        members = sorted(wanted)
        for start in range(0, len(members), 10_000):
            chunk = members[start:start + 10_000]
            held.update(
                Coupon.objects.filter(template=template, member_id__in=chunk).values("member_id")
                .annotate(n=Count("pk")).values_list("member_id", "n")
            )
    issue, skipped = [], 0
    for member_id, count in wanted.items():
        room = max(template.per_member_limit - held.get(member_id, 0), 0)
        take = min(count, room)
        issue.extend([member_id] * take)
        skipped += count - take
    return issue, skipped


def _write(template: CouponTemplate, batch: CouponBatch, holders: list[int | None], *, store_id, now) -> None:
    valid_from, valid_until = _validity(template, now)
    for _attempt in range(3):
        # Sorted, they go into the unique index in its order (a large issue writes it much faster); which member
        # gets which code stays as random as the codes.
        codes = sorted(coupon_codes_new(len(holders), prefix=template.code_prefix))
        try:
            with transaction.atomic():
                if connection.vendor == "postgresql" and len(holders) >= _COPY_FROM:
                    _copy(template, batch, holders, codes, valid_from, valid_until, store_id, now)
                else:
                    Coupon.objects.bulk_create(
                        [Coupon(template=template, batch=batch, code=code, member_id=member_id,
                                valid_from=valid_from, valid_until=valid_until, issued_at=now,
                                issued_store_id=store_id)
                         for code, member_id in zip(codes, holders, strict=True)],
                        batch_size=2000,
                    )
        except IntegrityError:
            # Two codes alike (one chance in billions): draw them all again.
            continue
        _issued_emit(template, codes, holders, valid_until=valid_until, now=now)
        return
    raise RuntimeError("could not draw unique coupon codes")


def _issued_emit(template: CouponTemplate, codes: list[str], holders: list[int | None], *, valid_until, now,
                 chunk: int = 10_000) -> None:
    """One coupon.issued event per coupon just written, in chunks (an issue may be millions); nothing is read
    when nobody subscribes."""
    if not subscriptions_for(EventType.COUPON_ISSUED):
        return
    created_at = timezone.localtime(now).isoformat()
    valid_until_text = timezone.localtime(valid_until).isoformat() if valid_until is not None else None
    for start in range(0, len(codes), chunk):
        part = list(zip(codes[start:start + chunk], holders[start:start + chunk], strict=True))
        wanted = {member_id for _code, member_id in part if member_id is not None}
        numbers = dict(Member.objects.filter(pk__in=wanted).values_list("pk", "member_no")) if wanted else {}
        events_emit_many(EventType.COUPON_ISSUED, (
            (f"coupon:{code}", {
                "coupon_code": code,
                "template": template.code,
                "member_no": numbers.get(member_id),
                "valid_until": valid_until_text,
                "created_at": created_at,
            })
            for code, member_id in part
        ), at=now)


def _copy(template, batch, holders, codes, valid_from, valid_until, store_id, now) -> None:
    # Times as ISO text once; NULL as \N in COPY's text format.
    def text(value):
        return r"\N" if value is None else str(value)

    fixed_head = f"{template.pk}\t{batch.pk}\t"
    fixed_tail = "\t".join(
        ["open", text(valid_from and valid_from.isoformat()), text(valid_until and valid_until.isoformat()),
         now.isoformat(), text(store_id)])
    table = Coupon._meta.db_table
    with connection.cursor() as cursor, cursor.cursor.copy(
        f'COPY "{table}" ({", ".join(_COPY_COLUMNS)}) FROM STDIN'
    ) as copy:
        lines = []
        for code, member_id in zip(codes, holders, strict=True):
            lines.append(f"{fixed_head}{code}\t{text(member_id)}\t{fixed_tail}\n")
            if len(lines) >= 5000:
                copy.write("".join(lines))
                lines = []
        if lines:
            copy.write("".join(lines))


@transaction.atomic
def coupons_issue(
    *, template: CouponTemplate | int, member_ids: Iterable[int] = (), quantity: int = 0, channel: str,
    source_name: str = "", operator=None, store=None,
) -> CouponBatch:
    """Issue coupons of an active template to members, or `quantity` bulk codes without a holder.

    Members at their limit per member are skipped (counted in `batch.skipped`). Raise CouponTemplateNotActive,
    CouponInvalid, CouponQuantityExhausted (nothing written).
    """
    template = _lock_template(template)
    _ensure_active(template)
    member_ids = list(member_ids)
    if member_ids and quantity:
        raise CouponInvalid(fields={"quantity": [gettext("Issue either to members or as bulk codes, not both.")]})
    if not isinstance(quantity, int) or quantity < 0 or quantity > 10_000_000:
        raise CouponInvalid(fields={"quantity": [gettext("Give a number of codes from 1 to 10,000,000.")]})
    skipped = 0
    if member_ids:
        holders, skipped = _within_limit(template, member_ids)
    else:
        holders = [None] * quantity
    if template.total_quantity is not None and template.issued_count + len(holders) > template.total_quantity:
        raise CouponQuantityExhausted(left=template.total_quantity - template.issued_count)
    now = timezone.now()
    batch = CouponBatch.objects.create(
        template=template, channel=channel, quantity=len(holders), source_name=source_name[:200],
        created_by=operator, created_at=now,
    )
    if holders:
        _write(template, batch, holders, store_id=store.pk if store is not None else None, now=now)
        CouponTemplate.objects.filter(pk=template.pk).update(issued_count=F("issued_count") + len(holders))
    batch.skipped = skipped
    return batch


# --- a file of member numbers -------------------------------------------------------------------------------

MEMBER_COLUMNS = [Column("member_no", "会员号", required=True, aliases=("member number", "会员编号"))]


def members_from_file(path) -> tuple[list[int], list[str]]:
    """The members a CSV or Excel file names by number (ours or a legacy one), and a message per bad row."""
    numbers: list[tuple[int, str]] = []
    with TableReader(path, MEMBER_COLUMNS) as reader:
        for row in reader:
            numbers.append((row.number, row.values.get("member_no", "").strip()))
    found: dict[str, tuple[int, str]] = {}
    wanted = sorted({number for _row, number in numbers if number})
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start:start + 5000]
        for pk, member_no, merged_into, status in Member.objects.filter(member_no__in=chunk).values_list(
            "pk", "member_no", "merged_into_id", "status"
        ):
            found[member_no] = (survivor_pk(pk, merged_into), status)
        missing = [number for number in chunk if number not in found]
        for number, member_id in MemberIdentity.objects.filter(external_no__in=missing).values_list(
            "external_no", "member_id"
        ):
            found.setdefault(number, (member_id, Member.Status.ACTIVE))
    statuses = dict(Member.objects.filter(pk__in={pk for pk, _status in found.values()})
                    .values_list("pk", "status")) if found else {}
    members, errors = [], []
    for row, number in numbers:
        if not number:
            errors.append(gettext("Row %(row)s: the member number is empty.") % {"row": row})
        elif number not in found:
            errors.append(gettext("Row %(row)s: no member has the number %(number)s.") % {"row": row, "number": number})
        elif statuses.get(found[number][0]) != Member.Status.ACTIVE:
            errors.append(gettext("Row %(row)s: member %(number)s is not active.") % {"row": row, "number": number})
        else:
            members.append(found[number][0])
    return members, errors


def coupons_issue_from_file(
    *, template: CouponTemplate, file, operator=None, skip_invalid: bool = False, source_name: str = ""
) -> CouponBatch:
    """Issue coupons to the members a CSV or Excel file names (column member_no / 会员号); `file` is its path.

    A file with a bad row writes nothing unless `skip_invalid`; the batch then has `errors`.
    Raise CouponInvalid (naming the rows), CouponTemplateNotActive, CouponQuantityExhausted.
    """
    path = Path(file)
    try:
        members, errors = members_from_file(path)
    except TableInvalid as error:
        raise CouponInvalid(fields={"file": [str(error)]}) from None
    if errors and not skip_invalid:
        shown = errors[:20]
        if len(errors) > 20:
            shown.append(gettext("... and %(count)s more rows.") % {"count": len(errors) - 20})
        raise CouponInvalid(fields={"file": shown})
    if not members:
        raise CouponInvalid(fields={"file": [gettext("The file names no member.")]})
    batch = coupons_issue(template=template, member_ids=members, channel=CouponBatch.Channel.MEMBER_LIST,
                          source_name=source_name or path.name, operator=operator)
    batch.errors = errors
    return batch


# --- a public claim code ---------------------------------------------------------------------------------------


@transaction.atomic
def coupon_claim(*, claim_code: str, member, store=None, operator=None) -> Coupon:
    """Give a member one coupon of the running template with this public claim code (one per member).

    `member` is a Member or a member number. Raise ClaimCodeNotFound, AlreadyClaimed, MemberNotFound,
    MemberNotActive, CouponLimitReached, CouponQuantityExhausted.
    """
    claim_code = (claim_code or "").strip().upper() if isinstance(claim_code, str) else ""
    found = CouponTemplate.objects.filter(claim_code__iexact=claim_code, status=CouponTemplate.Status.ACTIVE) \
        .values_list("pk", flat=True).first() if claim_code and len(claim_code) <= 32 else None
    if found is None:
        raise ClaimCodeNotFound()
    member_id = member_for_pos(member) if isinstance(member, str) else member.pk
    status, member_no = Member.objects.filter(pk=member_id).values_list("status", "member_no").get()
    if status != Member.Status.ACTIVE:
        raise MemberNotActive(member_no=member_no, status=Member.Status(status).label)
    template = _lock_template(found)
    now = timezone.now()
    if template.valid_until is not None and template.valid_until <= now:
        raise ClaimCodeNotFound()
    if Coupon.objects.filter(template=template, member_id=member_id, batch__channel=CouponBatch.Channel.CLAIM).exists():
        raise AlreadyClaimed()
    if Coupon.objects.filter(template=template, member_id=member_id).count() >= template.per_member_limit:
        raise CouponLimitReached()
    if template.total_quantity is not None and template.issued_count >= template.total_quantity:
        raise CouponQuantityExhausted(left=0)
    batch = CouponBatch.objects.create(template=template, channel=CouponBatch.Channel.CLAIM, quantity=1,
                                       source_name=claim_code, created_by=operator, created_at=now)
    _write(template, batch, [member_id], store_id=store.pk if store is not None else None, now=now)
    CouponTemplate.objects.filter(pk=template.pk).update(issued_count=F("issued_count") + 1)
    return Coupon.objects.select_related("template").get(batch=batch)


# --- after payment -------------------------------------------------------------------------------------------


# Read on every purchase of a member: one hand-written statement, written once per process (the ORM's compiling
# of it cost more than running it).
_RULES_RUNNING = JoinedSelect(
    [Part("r", CouponRule)],
    'FROM {r} r JOIN {t} t ON t."id" = r."template_id" WHERE r."is_active" = %s AND r."starts_on" <= %s '
    'AND r."ends_on" >= %s AND r."min_amount" <= %s AND t."status" = %s ORDER BY r."id"',
    tables={"t": CouponTemplate},
)


def coupons_after_payment(*, purchase) -> list[Coupon]:
    """The coupons the after-payment rules give this member's purchase (in the purchase's transaction).

    A rule whose template is used up or not running, or whose member is at the limit, gives nothing:
    the purchase itself never fails because of a coupon.
    """
    if purchase.member_id is None:
        return []
    day = timezone.localdate(purchase.occurred_at)
    with connection.cursor() as cursor:
        cursor.execute(_RULES_RUNNING.sql, [True, day, day, purchase.amount, str(CouponTemplate.Status.ACTIVE)])
        rules = [_RULES_RUNNING.load(row)["r"] for row in cursor.fetchall()]
    if rules:
        prefetch_related_objects(rules, "formats")
    issued = []
    for rule in rules:
        weekdays = weekday_set(rule.weekdays)
        if weekdays and day.isoweekday() not in weekdays:
            continue
        methods = word_set(rule.payment_methods)
        if methods and purchase.payment_method not in methods:
            continue
        formats = {format.pk for format in rule.formats.all()}
        if formats and purchase.format_id not in formats:
            continue
        try:
            with transaction.atomic():
                batch = coupons_issue(
                    template=rule.template_id, member_ids=[purchase.member_id],
                    channel=CouponBatch.Channel.AFTER_PAYMENT, source_name=f"{rule.name} / {purchase.receipt_no}",
                    store=purchase.store,
                )
        except (CouponTemplateNotActive, CouponQuantityExhausted):
            continue
        issued.extend(Coupon.objects.select_related("template").filter(batch=batch))
    return issued
