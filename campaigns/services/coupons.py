"""Coupons at the till: what one is worth on a receipt, using it, giving it back, voiding and expiring.

A refusal is CouponNotApplicable with one of CONTRACT's reasons and changes nothing. Using a coupon is all or
nothing: the coupon goes from open to redeemed only together with the template's counters moving within its
budget, so of twenty tills using one coupon at once exactly one succeeds, and the discounts given never pass the
budget however many tills redeem at once. On PostgreSQL that is one statement (the coupon and its template locked,
checked and written), after one statement that reads the coupon, its template, the member and where the template
applies. Locks are taken coupon first, then template, in every write here. A redemption writes its
coupon.redeemed webhook event in the same transaction, when someone subscribes.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext

from campaigns.errors import CouponInvalid, CouponNotApplicable, CouponNotFound, CouponNotVoidable
from campaigns.models import Coupon, CouponRedemption, CouponSku, CouponTemplate, word_set
from core.numbers import LINES_MAX, QUANTITY_MAX, decimal_parse
from core.sql import JoinedSelect, Part, insert_returning_pk, quote
from integrations.events import event_emit, subscriptions_for
from integrations.models import EventType
from membership.models import Member
from membership.services.members import survivor_pk
from membership.services.purchases import member_for_pos

__all__ = [
    "CouponQuote",
    "coupon_quote",
    "coupon_redeem",
    "coupon_redemptions_release",
    "coupon_void",
    "coupons_expire",
    "eligible_amount",
]

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
MONEY_MAX = Decimal("999999999999.99")
CODE_MAX = 40


@dataclass(frozen=True)
class CouponQuote:
    coupon: Coupon
    template: CouponTemplate
    discount: Decimal
    member_id: int | None
    basket_amount: Decimal
    member_no: str | None = None  # our number of member_id, when the till named that member by it


# --- reading the request ------------------------------------------------------------------------------------


def _money(value, field: str) -> Decimal:
    number = decimal_parse(value)
    if number is None or not number.is_finite():
        raise CouponInvalid(fields={field: [gettext("Give an amount in yuan, e.g. 12.50.")]})
    if number <= 0 or number > MONEY_MAX or number != number.quantize(CENT):
        raise CouponInvalid(fields={field: [gettext("Give an amount above 0 with at most two decimals.")]})
    return number.quantize(CENT)


def _lines(lines) -> list[dict] | None:
    """The receipt's lines as {sku, category, amount, quantity} with Decimal amounts, or None when none were given."""
    if lines is None:
        return None
    if isinstance(lines, (str, bytes, Mapping)) or not isinstance(lines, Iterable):
        raise CouponInvalid(fields={"lines": [gettext("Give the lines as a list.")]})
    cleaned = []
    for number, line in enumerate(lines, start=1):
        if number > LINES_MAX:
            message = gettext("A receipt has at most %(max)s lines.") % {"max": LINES_MAX}
            raise CouponInvalid(fields={"lines": [message]})
        if not isinstance(line, Mapping):
            raise CouponInvalid(fields={"lines": [
                gettext("Line %(n)s: give sku, category, amount and quantity.") % {"n": number}]})
        sku, category = line.get("sku"), line.get("category") or ""
        amount, quantity = decimal_parse(line.get("amount")), decimal_parse(line.get("quantity", 1))
        if (not isinstance(sku, str) or not sku.strip() or len(sku) > 64 or not isinstance(category, str)
                or len(category) > 64 or amount is None or not amount.is_finite() or amount < 0
                or amount > MONEY_MAX or quantity is None or not quantity.is_finite() or quantity <= 0
                or quantity > QUANTITY_MAX):
            raise CouponInvalid(fields={"lines": [
                gettext("Line %(n)s: give sku, category, amount and quantity.") % {"n": number}]})
        cleaned.append({"sku": sku.strip(), "category": category.strip(), "amount": amount, "quantity": quantity})
    return cleaned


# One statement per till request reads the coupon, its template, the member the till names (by our number) and
# whether the template applies at the store (core/sql.py: compiled once per process). Params: the store, its
# format, the member number, the code.
_COUPON_READ = JoinedSelect(
    [
        Part("c", Coupon, ("template", "code", "member", "status", "valid_from", "valid_until")),
        Part("t", CouponTemplate, via="c.template"),
        Part("m", Member, ("member_no", "merged_into", "status")),
    ],
    'FROM {c} c JOIN {t} t ON t."id" = c."template_id" LEFT JOIN {m} m ON m."member_no" = %s '
    'WHERE c."code" = %s',
    extras=[
        'EXISTS (SELECT 1 FROM {stores} s WHERE s."coupontemplate_id" = t."id" AND s."store_id" = %s)',
        'EXISTS (SELECT 1 FROM {stores} s WHERE s."coupontemplate_id" = t."id")',
        'EXISTS (SELECT 1 FROM {formats} f WHERE f."coupontemplate_id" = t."id" AND f."format_id" = %s)',
        'EXISTS (SELECT 1 FROM {formats} f WHERE f."coupontemplate_id" = t."id")',
    ],
    tables={"stores": CouponTemplate.stores.through, "formats": CouponTemplate.formats.through},
)


def _code(code) -> str:
    code = code.strip().upper() if isinstance(code, str) else ""
    if not code or len(code) > CODE_MAX:
        raise CouponNotFound()
    return code


def _read(code, *, store, member_no: str) -> tuple[Coupon, Member | None, bool]:
    """The coupon with its template, the member with this number (None if it is not one of ours), and whether
    the template applies at the store (a store list wins over the format list; neither: everywhere)."""
    found = _COUPON_READ.fetch([store.pk, store.format_id, member_no, _code(code)])
    if found is None:
        raise CouponNotFound()
    store_listed, any_store, format_listed, any_format = (bool(value) for value in found["extras"])
    fits = store_listed if any_store else (format_listed or not any_format)
    return found["c"], found["m"], fits


# --- what a coupon is worth ----------------------------------------------------------------------------------


def eligible_amount(template: CouponTemplate, *, basket_amount: Decimal, lines: list[dict] | None) -> Decimal | None:
    """The part of the receipt the coupon counts: the lines its SKUs and categories allow.

    Without lines, the whole basket counts for a coupon that limits nothing, and nothing can be told (None)
    for one that names SKUs or categories to include.
    """
    included, excluded = word_set(template.categories_included), word_set(template.categories_excluded)
    if lines is None:
        if template.sku_scope == CouponTemplate.SkuScope.INCLUDE or included or template.kind in (
            CouponTemplate.Kind.GIFT,
        ):
            return None
        return basket_amount
    skus = set(CouponSku.objects.filter(template=template).values_list("sku", flat=True)) \
        if template.sku_scope != CouponTemplate.SkuScope.ALL else set()
    total = ZERO
    for line in lines:
        if template.sku_scope == CouponTemplate.SkuScope.INCLUDE and line["sku"] not in skus:
            continue
        if template.sku_scope == CouponTemplate.SkuScope.EXCLUDE and line["sku"] in skus:
            continue
        if included and line["category"] not in included:
            continue
        if excluded and line["category"] in excluded:
            continue
        total += line["amount"]
    return min(total, basket_amount)


def _gift_value(template: CouponTemplate, lines: list[dict] | None) -> Decimal:
    """The price of one gift item on the receipt (the coupon pays for one), capped by the template's value."""
    for line in lines or ():
        if line["sku"] == template.gift_sku:
            unit = (line["amount"] / line["quantity"]).quantize(CENT, rounding=ROUND_FLOOR)
            return min(unit, template.amount) if template.amount > 0 else unit
    return ZERO


def _discount(template: CouponTemplate, *, eligible: Decimal, lines: list[dict] | None) -> Decimal:
    kind = template.kind
    if kind == CouponTemplate.Kind.PERCENT_OFF:
        discount = (eligible * template.percent / 100).quantize(CENT, rounding=ROUND_FLOOR)
        if template.max_discount is not None:
            discount = min(discount, template.max_discount)
    elif kind == CouponTemplate.Kind.THRESHOLD:
        if template.threshold <= 0 or eligible < template.threshold:
            raise CouponNotApplicable("below_threshold")
        times = int(eligible // template.threshold) if template.repeat else 1
        discount = template.amount * times
    elif kind == CouponTemplate.Kind.GIFT:
        discount = _gift_value(template, lines)
        if discount <= 0:
            raise CouponNotApplicable("no_eligible_items")
    else:  # amount off, item coupons
        discount = template.amount
    return min(discount, eligible).quantize(CENT)


def _holder_matches(coupon: Coupon, member_id: int | None) -> bool:
    if coupon.member_id is None:
        return True
    if member_id is None:
        return False
    if coupon.member_id == member_id:
        return True
    merged_into = Member.objects.filter(pk=coupon.member_id).values_list("merged_into_id", flat=True).first()
    return survivor_pk(coupon.member_id, merged_into) == member_id


def _usable(coupon: Coupon, *, now: datetime) -> None:
    """Refuse a coupon that cannot be used now, whatever the receipt (CONTRACT's reasons; the message says why)."""
    template = coupon.template
    if coupon.status == Coupon.Status.REDEEMED:
        raise CouponNotApplicable("already_redeemed")
    if coupon.status == Coupon.Status.VOIDED:
        raise CouponNotApplicable("expired", gettext("This coupon was voided."))
    if coupon.status == Coupon.Status.EXPIRED:
        raise CouponNotApplicable("expired")
    if template.status == CouponTemplate.Status.ENDED:
        raise CouponNotApplicable("expired", gettext("This coupon's campaign has ended."))
    if template.status != CouponTemplate.Status.ACTIVE:
        raise CouponNotApplicable("not_started", gettext("This coupon's campaign is not running."))
    valid_from = coupon.valid_from or template.valid_from
    valid_until = coupon.valid_until or template.valid_until
    if valid_from is not None and now < valid_from:
        raise CouponNotApplicable("not_started")
    if valid_until is not None and now >= valid_until:
        raise CouponNotApplicable("expired")


def coupon_quote(
    *, code: str, store, member_no: str | None, basket_amount, lines=None, now: datetime | None = None
) -> CouponQuote:
    """What a coupon takes off this receipt at this store, without using it.

    Raise CouponInvalid, CouponNotFound, CouponNotApplicable (with its reason), MemberNotFound.
    """
    basket_amount = _money(basket_amount, "basket_amount")
    lines = _lines(lines)
    member_no = member_no.strip() if isinstance(member_no, str) else None
    coupon, member, store_fits = _read(code, store=store, member_no=member_no or "")
    now = now or timezone.now()
    _usable(coupon, now=now)
    member_id = None
    if member_no:
        # Ours (a merged record leads to the survivor), else a legacy number: MemberNotFound when neither.
        member_id = survivor_pk(member.pk, member.merged_into_id) if member is not None else member_for_pos(member_no)
    if not _holder_matches(coupon, member_id):
        raise CouponNotApplicable("not_owner")
    template = coupon.template
    if not store_fits:
        raise CouponNotApplicable("wrong_store")
    if basket_amount < template.min_basket:
        raise CouponNotApplicable("below_threshold")
    eligible = eligible_amount(template, basket_amount=basket_amount, lines=lines)
    if eligible is None or eligible <= 0:
        raise CouponNotApplicable("no_eligible_items")
    discount = _discount(template, eligible=eligible, lines=lines)
    if discount <= 0:
        raise CouponNotApplicable("no_eligible_items")
    if template.total_budget is not None and template.discount_spent + discount > template.total_budget:
        raise CouponNotApplicable("budget_exhausted")
    return CouponQuote(coupon=coupon, template=template, discount=discount, member_id=member_id,
                       basket_amount=basket_amount,
                       member_no=member.member_no if member is not None and member.pk == member_id else None)


# --- using it -------------------------------------------------------------------------------------------------


def _receipt(receipt_no) -> str:
    if not isinstance(receipt_no, str) or not receipt_no.strip() or len(receipt_no.strip()) > 64:
        raise CouponInvalid(fields={"receipt_no": [gettext("Give the receipt number (1 to 64 characters).")]})
    return receipt_no.strip()


def coupon_redeem(
    *, code: str, store, member_no: str | None, receipt_no: str, basket_amount, lines=None, terminal=None,
    operator=None,
) -> CouponRedemption:
    """Use a coupon on a receipt: the coupon closes, the template's budget pays the discount, all or nothing.

    Raise CouponInvalid, CouponNotFound, CouponNotApplicable, MemberNotFound.
    """
    receipt_no = _receipt(receipt_no)
    now = timezone.now()
    quote = coupon_quote(code=code, store=store, member_no=member_no, basket_amount=basket_amount, lines=lines,
                         now=now)
    redemption = CouponRedemption(
        coupon=quote.coupon, template=quote.template, member_id=quote.member_id or quote.coupon.member_id,
        store=store, terminal=terminal, receipt_no=receipt_no, basket_amount=quote.basket_amount,
        discount=quote.discount, created_at=now,
    )
    write = _redeem_write_postgresql if connection.vendor == "postgresql" else _redeem_write
    # No savepoint: inside a till's request this is its transaction; alone, the write and its event commit as one.
    with transaction.atomic(savepoint=False):
        written = write(redemption, now=now)
        if written and subscriptions_for(EventType.COUPON_REDEEMED):
            _redeemed_emit(redemption, quote)
    if not written:
        # Another till used (or staff voided) it since it was read, or the budget ran out meanwhile.
        coupon = quote.coupon
        coupon.refresh_from_db(fields=["status"])
        _usable(coupon, now=now)
        raise CouponNotApplicable("budget_exhausted")
    return redemption


def _redeemed_emit(redemption: CouponRedemption, quote: CouponQuote) -> None:
    member_no = quote.member_no
    if member_no is None and redemption.member_id is not None:  # named by a legacy number or a merged record
        member_no = Member.objects.filter(pk=redemption.member_id).values_list("member_no", flat=True).first()
    code = quote.coupon.code
    event_emit(EventType.COUPON_REDEEMED, subject=f"coupon:{code}", at=redemption.created_at, data={
        "coupon_code": code,
        "template": quote.template.code,
        "member_no": member_no,
        "store": redemption.store.code,
        "receipt_no": redemption.receipt_no,
        "discount": f"{redemption.discount:.2f}",
        "created_at": timezone.localtime(redemption.created_at).isoformat(),
    })


@transaction.atomic
def _redeem_write(redemption: CouponRedemption, *, now) -> bool:
    """The coupon from open to redeemed, the template's counters within its budget, the redemption row; each only
    if the one before it changed a row (SQLite: one writer at a time, a savepoint takes back a coupon whose
    budget ran out)."""
    discount = redemption.discount
    closed = Coupon.objects.filter(pk=redemption.coupon_id, status=Coupon.Status.OPEN).update(
        status=Coupon.Status.REDEEMED, closed_at=now
    )
    within_budget = Q(total_budget__isnull=True) | Q(discount_spent__lte=F("total_budget") - discount)
    if not closed or not CouponTemplate.objects.filter(within_budget, pk=redemption.template_id).update(
        redeemed_count=F("redeemed_count") + 1, discount_spent=F("discount_spent") + discount
    ):
        transaction.set_rollback(True)
        return False
    insert_returning_pk(redemption)
    return True


_REDEEM_SQL: str | None = None


def _redeem_write_postgresql(redemption: CouponRedemption, *, now) -> bool:
    """The same writes in one statement, all or nothing: `ok` locks the coupon and its template and finds the
    coupon open and the discount within the budget (checked again on the rows as they are once locked), and only
    then are the coupon closed, the counters moved and the redemption inserted."""
    global _REDEEM_SQL
    if _REDEEM_SQL is None:
        coupons, templates = quote(Coupon._meta.db_table), quote(CouponTemplate._meta.db_table)
        redemptions = quote(CouponRedemption._meta.db_table)
        _REDEEM_SQL = (
            f'WITH ok AS (SELECT c."id" FROM {coupons} c JOIN {templates} t ON t."id" = c."template_id" '  # noqa: S608
            f'WHERE c."id" = %s AND c."status" = %s '
            f'AND (t."total_budget" IS NULL OR t."discount_spent" + %s <= t."total_budget") '
            f'FOR NO KEY UPDATE OF c, t), '
            f'c AS (UPDATE {coupons} SET "status" = %s, "closed_at" = %s WHERE "id" IN (SELECT "id" FROM ok)), '
            f't AS (UPDATE {templates} SET "redeemed_count" = "redeemed_count" + 1, '
            f'"discount_spent" = "discount_spent" + %s WHERE "id" = %s AND EXISTS (SELECT 1 FROM ok)), '
            f'r AS (INSERT INTO {redemptions} ("coupon_id", "template_id", "member_id", "store_id", "terminal_id", '
            f'"receipt_no", "basket_amount", "discount", "status", "created_at", "released_at", "release_reason") '
            f'SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, NULL, %s WHERE EXISTS (SELECT 1 FROM ok) '
            f'RETURNING "id") '
            f'SELECT "id" FROM r'
        )
    discount = redemption.discount
    with connection.cursor() as cursor:
        cursor.execute(_REDEEM_SQL, [
            redemption.coupon_id, Coupon.Status.OPEN, discount,
            Coupon.Status.REDEEMED, now,
            discount, redemption.template_id,
            redemption.coupon_id, redemption.template_id, redemption.member_id, redemption.store_id,
            redemption.terminal_id, redemption.receipt_no, redemption.basket_amount, discount,
            CouponRedemption.Status.REDEEMED, now, "",
        ])
        row = cursor.fetchone()
    if row is None:
        return False
    redemption.pk = row[0]
    redemption._state.adding = False
    return True


@transaction.atomic
def coupon_redemptions_release(*, store, receipt_no: str, reason: str) -> int:
    """Give back the coupons used on a receipt whose purchase came back or whose payment was reversed.

    A coupon still valid opens again; one past its validity (or of an ended campaign) closes as expired.
    Each redemption is given back once, however often it is asked. Return how many were given back.
    """
    now = timezone.now()
    redemptions = list(
        CouponRedemption.objects.filter(store=store, receipt_no=(receipt_no or "").strip(),
                                        status=CouponRedemption.Status.REDEEMED)
        .values_list("pk", "coupon_id", "template_id", "discount").order_by("coupon_id")
    )
    released = 0
    for pk, coupon_id, template_id, discount in redemptions:
        coupon = Coupon.objects.select_for_update().select_related("template").get(pk=coupon_id)
        if not CouponRedemption.objects.filter(pk=pk, status=CouponRedemption.Status.REDEEMED).update(
            status=CouponRedemption.Status.RELEASED, released_at=now, release_reason=reason[:200]
        ):
            continue
        valid_until = coupon.valid_until or coupon.template.valid_until
        still_valid = coupon.template.status != CouponTemplate.Status.ENDED and (
            valid_until is None or valid_until > now)
        Coupon.objects.filter(pk=coupon_id, status=Coupon.Status.REDEEMED).update(
            status=Coupon.Status.OPEN if still_valid else Coupon.Status.EXPIRED,
            closed_at=None if still_valid else now,
        )
        CouponTemplate.objects.filter(pk=template_id).update(
            redeemed_count=F("redeemed_count") - 1, discount_spent=F("discount_spent") - discount,
            expired_count=F("expired_count") + (0 if still_valid else 1),
        )
        released += 1
    return released


# --- staff and the nightly job ------------------------------------------------------------------------------


@transaction.atomic
def coupon_void(*, coupon: Coupon, operator, reason: str) -> Coupon:
    """Void an open coupon (it can no longer be used). Raise CouponInvalid, CouponNotVoidable."""
    if not (reason or "").strip():
        raise CouponInvalid(fields={"reason": [gettext("Give the reason.")]})
    locked = Coupon.objects.select_for_update().get(pk=coupon.pk)
    if locked.status != Coupon.Status.OPEN:
        raise CouponNotVoidable(status=locked.get_status_display())
    locked.status, locked.closed_at = Coupon.Status.VOIDED, timezone.now()
    locked.save(update_fields=["status", "closed_at"])
    CouponTemplate.objects.filter(pk=locked.template_id).update(voided_count=F("voided_count") + 1)
    return locked


def coupons_expire(*, now: datetime | None = None, batch: int = 5000) -> int:
    """Close as expired the open coupons past their validity; return how many. Each batch is one transaction."""
    now = now or timezone.now()
    done = 0
    while True:
        with transaction.atomic():
            due = list(
                Coupon.objects.select_for_update(skip_locked=True)
                .filter(status=Coupon.Status.OPEN, valid_until__lte=now)
                .order_by("pk").values_list("pk", "template_id")[:batch]
            )
            if not due:
                return done
            Coupon.objects.filter(pk__in=[pk for pk, _template in due], status=Coupon.Status.OPEN).update(
                status=Coupon.Status.EXPIRED, closed_at=now
            )
            counts: dict[int, int] = {}
            for _pk, template_id in due:
                counts[template_id] = counts.get(template_id, 0) + 1
            for template_id, count in sorted(counts.items()):
                CouponTemplate.objects.filter(pk=template_id).update(expired_count=F("expired_count") + count)
            done += len(due)
