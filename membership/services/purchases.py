"""Purchases from every format's POS, returns of them, and points held in a format's return window."""

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache

from django.db import IntegrityError, connection, transaction
from django.db.models import Field
from django.utils import timezone
from django.utils.translation import gettext

from core.numbers import LINES_MAX, QUANTITY_MAX, decimal_parse
from core.sql import JoinedSelect, Part, insert_returning_pk
from membership.errors import (
    MemberNotActive,
    MemberNotFound,
    PurchaseInvalid,
    PurchaseLimitExceeded,
    PurchaseNotFound,
    ReceiptAlreadyRecorded,
    ReturnExceedsPurchase,
)
from membership.models import (
    EarnRule,
    Member,
    MemberIdentity,
    PointsDebtEntry,
    PointsEntry,
    PointsHold,
    Purchase,
    PurchaseReturn,
    Tier,
)
from membership.services.ledger import (
    _lock_members,
    points_debt_move,
    points_earn,
    points_earn_joined,
    points_post,
)
from membership.services.members import merge_mover, survivor_pk
from membership.services.points import (
    EarnBonus,
    _cents,
    earn_rule_default,
    earn_rule_for,
    points_for_purchase_detail,
    promotions_text,
)

__all__ = [
    "LINES_MAX",
    "PURCHASE_RECORDED",
    "PURCHASE_RETURNED",
    "member_for_pos",
    "on_purchase_recorded",
    "on_purchase_returned",
    "points_holds_release",
    "points_to_take_back",
    "purchase_points_pending",
    "purchase_record",
    "purchase_return",
    "purchases_move_on_merge",
]

# A till's clock may run a little ahead of ours; a sale further in the future is a mistake.
CLOCK_SKEW = timedelta(minutes=5)
MONEY_MAX = Decimal("999999999999.99")
RECEIPT_MAX = 64
CENT = Decimal("0.01")


# --- hooks other apps fill in at start-up (membership knows no campaign) ---------------------------------------

# Called as listener(purchase=, bonuses=) in the purchase's transaction right after it is written (with or without
# a member; bonuses as EarnResult.bonuses, empty without a member). A listener may set `purchase.issued_coupons`
# to the coupons the sale gave: dicts {"coupon_code", "name", "discount_text", "valid_until"} (a datetime or
# None), which the POS answer lists. An exception rolls the purchase back.
PURCHASE_RECORDED: list[Callable[..., None]] = []
# Called as listener(purchase=, purchase_return=) in the return's transaction, after the return is recorded and
# purchase.returned_amount updated.
PURCHASE_RETURNED: list[Callable[..., None]] = []


def on_purchase_recorded(function: Callable[..., None]) -> Callable[..., None]:
    """Register a listener of recorded purchases (see PURCHASE_RECORDED)."""
    PURCHASE_RECORDED.append(function)
    return function


def on_purchase_returned(function: Callable[..., None]) -> Callable[..., None]:
    """Register a listener of purchase returns (see PURCHASE_RETURNED)."""
    PURCHASE_RETURNED.append(function)
    return function


# --- finding the member at a till -------------------------------------------------------------


def member_for_pos(member_no: str) -> int:
    """The primary key of the member a till names: our member number or a legacy one.

    A merged record's number leads to the member it went into. Raise MemberNotFound, and
    PurchaseInvalid when a legacy number belongs to several members (the till must use ours).
    """
    member_no = (member_no or "").strip()
    if not member_no:
        raise MemberNotFound()
    row = Member.objects.filter(member_no=member_no).values_list("pk", "merged_into_id").first()
    if row is not None:
        return survivor_pk(*row)
    rows = MemberIdentity.objects.filter(external_no=member_no).values_list("member_id", "member__merged_into_id")
    found = {survivor_pk(pk, merged_into) for pk, merged_into in rows}
    if not found:
        raise MemberNotFound()
    if len(found) > 1:
        raise PurchaseInvalid(fields={"member_no": [
            gettext("This legacy number belongs to several members; give the member number instead.")
        ]})
    return found.pop()


_TIER_FIELDS = ("code", "name", "kind", "rank", "points_multiplier")
_EARNING_FIELDS = (
    "member_no", "name", "status", "merged_into", "tier", "paid_tier", "paid_tier_until", "points", "points_debt",
)


def _earning_select(where: str) -> JoinedSelect:
    # On every POS purchase: the member with both tiers and the format's earn rule, in one statement written
    # once per process (params: the format's id, then the member's key).
    return JoinedSelect(
        [
            Part("m", Member, _EARNING_FIELDS),
            Part("t", Tier, _TIER_FIELDS, via="m.tier"),
            Part("p", Tier, _TIER_FIELDS, via="m.paid_tier"),
            Part("r", EarnRule),
        ],
        'FROM {m} m LEFT JOIN {t} t ON t."id" = m."tier_id" LEFT JOIN {p} p ON p."id" = m."paid_tier_id" '
        'LEFT JOIN {r} r ON r."format_id" = %s WHERE ' + where,
    )


_EARNING_BY_NUMBER = _earning_select('m."member_no" = %s')
_EARNING_BY_ID = _earning_select('m."id" = %s')


def _earning_member(member: Member | int | str, *, format) -> tuple[Member, EarnRule]:
    """The member a purchase names, with its tiers, following a merge, and the format's earn rule.

    Only an active member earns. Not locked: the credit's UPDATE locks the row, and reads what the
    member owes in the same statement.
    """
    if isinstance(member, str):
        found = _EARNING_BY_NUMBER.fetch([format.pk, member.strip()])
        if found is None:
            found = _EARNING_BY_ID.fetch([format.pk, member_for_pos(member)])
    else:
        found = _EARNING_BY_ID.fetch([format.pk, member if isinstance(member, int) else member.pk])
    if found is None:
        raise MemberNotFound()
    earning = found["m"]
    if earning.status == Member.Status.MERGED:
        return _earning_member(survivor_pk(earning.pk, earning.merged_into_id), format=format)
    if earning.status != Member.Status.ACTIVE:
        raise MemberNotActive(member_no=earning.member_no, status=earning.get_status_display())
    return earning, found["r"] or earn_rule_default(format)


# --- validation ---------------------------------------------------------------------------------------


def _decimal(value) -> Decimal | None:
    # A Decimal is taken as it is (the API's fields read the text once); text and numbers from other callers
    # (the admin, imports, tests) are read here.
    return decimal_parse(value)


def _money(value, *, positive: bool) -> tuple[Decimal | None, str | None]:
    number = _decimal(value)
    if number is None:
        return None, gettext("Give an amount in yuan, e.g. 12.50.")
    if abs(number) > MONEY_MAX:
        return None, gettext("The amount is too large.")
    if number != number.quantize(CENT):
        return None, gettext("An amount has at most two decimals.")
    if positive and number <= 0:
        return None, gettext("The amount must be greater than 0.")
    if number < 0:
        return None, gettext("The amount cannot be negative.")
    return number.quantize(CENT), None


def _receipt_error(receipt_no) -> str | None:
    if not isinstance(receipt_no, str) or not receipt_no.strip() or len(receipt_no.strip()) > RECEIPT_MAX:
        return gettext("Give the receipt number (1 to 64 characters).")
    return None


def _time_error(moment, *, now: datetime) -> str | None:
    if not isinstance(moment, datetime) or timezone.is_naive(moment):
        return gettext("Give a time with its UTC offset, e.g. 2026-05-01T10:30:00+08:00.")
    if moment > now + CLOCK_SKEW:
        return gettext("The time cannot be in the future.")
    return None


def _lines_clean(lines) -> tuple[list[dict], list[str]]:
    """The lines as stored (strings), and a message per bad line naming it.

    A POS purchase's lines come from core.fields.LinesField with amount and quantity already Decimal: what is
    checked here is what a line must be (an SKU, a category, money of 0 or more, a quantity above 0).
    """
    if isinstance(lines, (str, bytes, Mapping)) or not isinstance(lines, Iterable):
        return [], [gettext("Give the lines as a list.")]
    cleaned, errors = [], []
    for number, line in enumerate(lines, start=1):
        if number > LINES_MAX:
            errors.append(gettext("A receipt has at most %(max)s lines.") % {"max": LINES_MAX})
            break
        if not isinstance(line, Mapping):
            errors.append(gettext("Line %(n)s: give sku, category, amount and quantity.") % {"n": number})
            continue
        sku, category = line.get("sku"), line.get("category", "")
        if not isinstance(sku, str) or not sku.strip() or len(sku) > 64:
            errors.append(gettext("Line %(n)s: give the SKU (1 to 64 characters).") % {"n": number})
        if not isinstance(category, str) or len(category) > 64:
            errors.append(gettext("Line %(n)s: the category is text of at most 64 characters.") % {"n": number})
        amount, problem = _money(line.get("amount"), positive=False)
        if problem:
            errors.append(gettext("Line %(n)s: %(problem)s") % {"n": number, "problem": problem})
        quantity = _decimal(line.get("quantity"))
        if quantity is None or quantity <= 0 or quantity > QUANTITY_MAX or quantity != quantity.quantize(
            Decimal("0.001")
        ):
            errors.append(gettext("Line %(n)s: the quantity must be greater than 0, with at most three decimals.")
                          % {"n": number})
        if not errors:
            cleaned.append({"sku": sku.strip(), "category": category.strip(), "amount": str(amount),
                            "quantity": format(quantity.normalize(), "f")})
    return cleaned, errors


# --- purchases --------------------------------------------------------------------------------------------


def purchase_record(
    *,
    store,
    member: Member | int | str | None,
    receipt_no: str,
    amount: Decimal,
    occurred_at: datetime,
    terminal=None,
    payment_method: str = "",
    lines: Iterable[Mapping] = (),
    operator=None,
) -> Purchase:
    """Record a receipt and credit the points it earns to the member it names, in one transaction.

    `member` is a Member, its primary key, or the number a till sends (ours or a legacy one); None for a
    customer who showed no membership: the sale is recorded (it counts in total sales) and earns nothing.
    The format's receipt limits apply either way.
    The same receipt of the same store is counted once, also when two tills send it at the same time:
    the unique constraint decides, the loser gets ReceiptAlreadyRecorded naming the purchase recorded.
    In a format with a return window the points are held (PointsHold) until the window has passed;
    otherwise they are credited at once and pay off any points the member owes first. The listeners of
    PURCHASE_RECORDED are called in the same transaction once it is written.
    Raise PurchaseInvalid, PurchaseLimitExceeded, MemberNotFound, MemberNotActive, ReceiptAlreadyRecorded.
    """
    now = timezone.now()
    errors: dict[str, list[str]] = {}
    amount, problem = _money(amount, positive=True)
    if problem:
        errors["amount"] = [problem]
    if problem := _receipt_error(receipt_no):
        errors["receipt_no"] = [problem]
    if problem := _time_error(occurred_at, now=now):
        errors["occurred_at"] = [problem]
    if not isinstance(payment_method, str) or len(payment_method) > 20:
        errors["payment_method"] = [gettext("The payment method is text of at most 20 characters.")]
    lines, line_errors = _lines_clean(lines)
    if line_errors:
        errors["lines"] = line_errors
    if errors:
        raise PurchaseInvalid(fields=errors)
    receipt_no = receipt_no.strip()
    # On PostgreSQL a sale without a member reads its format's receipt limit in its own INSERT (rule None here).
    rule = None
    if member is not None:
        member, rule = _earning_member(member, format=store.format)
    elif connection.vendor != "postgresql":
        rule = earn_rule_for(store.format)
    if rule is not None and amount > rule.max_receipt_amount:
        raise _receipt_limit_exceeded(rule.max_receipt_amount)
    over_limit = None
    # No savepoint (a POS request already runs in the idempotency record's transaction): nothing is written
    # before the purchase, and a second copy of the receipt is not inserted (ON CONFLICT DO NOTHING) rather
    # than failing on the unique constraint, so every refusal leaves the caller's transaction usable.
    # A receipt sent by two tills at once: the second insert waits for the first to commit, then skips.
    with transaction.atomic(savepoint=False):
        if rule is None:
            written, over_limit = _purchase_write_without_member(
                store=store, receipt_no=receipt_no, amount=amount, occurred_at=occurred_at, terminal=terminal,
                payment_method=payment_method.strip(), lines=lines, now=now,
            )
        else:
            written = _purchase_write(
                store=store, member=member, rule=rule, receipt_no=receipt_no, amount=amount,
                occurred_at=occurred_at, terminal=terminal, payment_method=payment_method.strip(), lines=lines,
                operator=operator, now=now,
            )
        if written is not None:
            purchase, bonuses = written
            purchase.issued_coupons = []
            for listener in PURCHASE_RECORDED:
                listener(purchase=purchase, bonuses=bonuses)
    if over_limit is not None:
        raise _receipt_limit_exceeded(over_limit)
    if written is None:
        existing = _recorded(Purchase, store=store, receipt_no=receipt_no)
        raise _receipt_taken(receipt_no, gettext("purchase"), existing)
    return purchase


def _receipt_limit_exceeded(max_receipt_amount: Decimal) -> PurchaseLimitExceeded:
    limit = gettext("a receipt of this format is at most %(amount)s yuan") % {"amount": f"{max_receipt_amount:,.2f}"}
    return PurchaseLimitExceeded(limit=limit, fields={"amount": [limit]})


def _purchase_write(*, store, member, rule, receipt_no, amount, occurred_at, terminal, payment_method, lines,
                    operator, now) -> tuple[Purchase, list[tuple[EarnBonus, int]]] | None:
    """The purchase written with its points (credited or held) and the promotions behind them; None when the
    store already has this receipt."""
    purchase = Purchase(
        member=member, store=store, format_id=store.format_id, legal_entity_id=store.format.legal_entity_id,
        terminal=terminal, receipt_no=receipt_no, amount=amount, occurred_at=occurred_at,
        payment_method=payment_method, lines=lines, created_at=now,
    )
    bonuses: list[tuple[EarnBonus, int]] = []
    points = 0
    if member is not None:
        earned = points_for_purchase_detail(
            member=member, store=store, amount=amount, occurred_at=occurred_at, lines=lines,
            payment_method=payment_method, purchase=purchase, rule=rule,
        )
        points, bonuses = earned.points, earned.bonuses
    purchase.points_earned = points
    purchase.promotions_text = promotions_text(bonuses) if points else ""
    if points > rule.max_points_per_receipt:
        limit = gettext("a receipt of this format earns at most %(points)s points") % {
            "points": f"{rule.max_points_per_receipt:,}"}
        raise PurchaseLimitExceeded(limit=limit, fields={"amount": [limit]})
    available_at = occurred_at + timedelta(days=rule.pending_days)
    held = bool(points and rule.pending_days and available_at > now)
    if points and connection.vendor == "postgresql":
        if held:
            written = _purchase_insert_held(purchase, available_at=available_at)
        else:
            written = _purchase_insert_credited(purchase, store=store, operator=operator)
        return (purchase, bonuses) if written else None
    if insert_returning_pk(purchase, skip_on_conflict=("store_id", "receipt_no")) is None:
        return None
    if held:
        PointsHold.objects.create(member=member, purchase=purchase, points=points, available_at=available_at)
        return purchase, bonuses
    # Known to have no hold: purchase_points_pending then answers without a query.
    Purchase.points_hold.related.set_cached_value(purchase, None)
    if points:
        points_earn(
            member=member, points=points, store=store, terminal=terminal, receipt_no=receipt_no, cause=purchase,
            legal_entity_id=purchase.legal_entity_id, operator=operator, reason=_earn_reason(purchase),
        )
    return purchase, bonuses


def _earn_reason(purchase: Purchase) -> str:
    if purchase.promotions_text:
        return gettext("purchase on receipt %(receipt_no)s, %(promotions)s") % {
            "receipt_no": purchase.receipt_no, "promotions": purchase.promotions_text}
    return gettext("purchase on receipt %(receipt_no)s") % {"receipt_no": purchase.receipt_no}


# --- PostgreSQL: the purchase and its points in one statement ------------------------------------------------

_DEFAULT_MAX_RECEIPT_AMOUNT = EarnRule._meta.get_field("max_receipt_amount").default
_PURCHASE_FIELDS = ("member", "store", "format", "legal_entity", "terminal", "receipt_no", "amount", "returned_amount",
                    "occurred_at", "payment_method", "lines", "points_earned", "promotions_text", "created_at")


@cache
def _purchase_insert_statement() -> tuple[str, list[Field]]:
    """The purchase's INSERT ... ON CONFLICT (store, receipt) DO NOTHING RETURNING "id", to be joined with what the
    purchase writes next (a data-modifying WITH), and the fields of its values."""
    fields = [Purchase._meta.get_field(name) for name in _PURCHASE_FIELDS]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(Purchase._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))}) ON CONFLICT ({quote('store_id')}, {quote('receipt_no')}) "
        f'DO NOTHING RETURNING {quote("id")}'
    )
    return sql, fields


def _purchase_values(purchase: Purchase) -> list:
    return [f.get_db_prep_save(getattr(purchase, f.attname), connection) for f in _purchase_insert_statement()[1]]


@cache
def _hold_joined_statement() -> str:
    quote = connection.ops.quote_name
    return (
        f"WITH purchase AS ({_purchase_insert_statement()[0]}), "  # noqa: S608 (table names from _meta)
        f"hold AS (INSERT INTO {quote(PointsHold._meta.db_table)} (member_id, purchase_id, points, "
        "cancelled_points, available_at, status, released_entry_id) "
        "SELECT %s, purchase.id, %s, 0, %s, %s, NULL FROM purchase RETURNING id) "
        "SELECT purchase.id, hold.id FROM purchase, hold"
    )


@cache
def _without_member_statement() -> str:
    insert_sql, fields = _purchase_insert_statement()
    columns = insert_sql[:insert_sql.index(" VALUES ")]
    quote = connection.ops.quote_name
    # A format without an earn rule has the default limit (earn_rule_default), given as the last parameter.
    return (
        f"WITH rule AS (SELECT {quote('max_receipt_amount')} FROM {quote(EarnRule._meta.db_table)} "  # noqa: S608
        f"WHERE {quote('format_id')} = %s), "
        f"purchase AS ({columns} SELECT {', '.join(['%s'] * len(fields))} "
        "WHERE %s <= COALESCE((SELECT max_receipt_amount FROM rule), %s) "
        f"ON CONFLICT ({quote('store_id')}, {quote('receipt_no')}) DO NOTHING RETURNING {quote('id')}) "
        "SELECT (SELECT id FROM purchase), (SELECT max_receipt_amount FROM rule)"
    )


def _purchase_write_without_member(*, store, receipt_no, amount, occurred_at, terminal, payment_method, lines,
                                   now) -> tuple[tuple[Purchase, list] | None, Decimal | None]:
    """PostgreSQL: a sale without a member in one statement, which also reads the format's receipt limit and
    writes nothing above it. Return (the purchase and its bonuses, None); (None, the limit) when the amount is above
    it; (None, None) when the store already has this receipt."""
    purchase = Purchase(
        member=None, store=store, format_id=store.format_id, legal_entity_id=store.format.legal_entity_id,
        terminal=terminal, receipt_no=receipt_no, amount=amount, occurred_at=occurred_at,
        payment_method=payment_method, lines=lines, created_at=now, points_earned=0, promotions_text="",
    )
    with connection.cursor() as cursor:
        cursor.execute(_without_member_statement(), [
            store.format_id, *_purchase_values(purchase), amount, _DEFAULT_MAX_RECEIPT_AMOUNT])
        purchase_id, limit = cursor.fetchone()
    if purchase_id is None:
        limit = _DEFAULT_MAX_RECEIPT_AMOUNT if limit is None else limit
        return None, (limit if amount > limit else None)
    _purchase_saved(purchase, purchase_id)
    Purchase.points_hold.related.set_cached_value(purchase, None)
    return (purchase, []), None


def _purchase_saved(purchase: Purchase, pk: int) -> None:
    purchase.pk = pk
    purchase._state.adding = False
    purchase._state.db = connection.alias


def _purchase_insert_credited(purchase: Purchase, *, store, operator) -> bool:
    """The purchase, the member's points and its `earn` entry in one statement (points_earn_joined); False when
    the store already has this receipt, and then nothing is written."""
    pk = points_earn_joined(
        insert_sql=_purchase_insert_statement()[0], insert_params=_purchase_values(purchase), cause_model=Purchase,
        member=purchase.member, points=purchase.points_earned, store=store, terminal=purchase.terminal,
        receipt_no=purchase.receipt_no, reason=_earn_reason(purchase), legal_entity_id=purchase.legal_entity_id,
        operator=operator,
    )
    if pk is None:
        return False
    _purchase_saved(purchase, pk)
    # Known to have no hold: purchase_points_pending then answers without a query.
    Purchase.points_hold.related.set_cached_value(purchase, None)
    return True


def _purchase_insert_held(purchase: Purchase, *, available_at: datetime) -> bool:
    """The purchase and its PointsHold in one statement; False when the store already has this receipt, and then
    nothing is written (the hold's row is made from the purchase's RETURNING)."""
    with connection.cursor() as cursor:
        cursor.execute(_hold_joined_statement(), [
            *_purchase_values(purchase), purchase.member_id, purchase.points_earned,
            connection.ops.adapt_datetimefield_value(available_at), PointsHold.Status.PENDING.value,
        ])
        row = cursor.fetchone()
    if row is None:
        return False
    _purchase_saved(purchase, row[0])
    # Setting the hold's purchase also caches the hold on the purchase (one-to-one): purchase_points_pending
    # answers without a query.
    hold = PointsHold(pk=row[1], member=purchase.member, purchase=purchase, points=purchase.points_earned,
                      available_at=available_at)
    hold._state.adding = False
    hold._state.db = connection.alias
    return True


def purchase_points_pending(purchase: Purchase) -> int:
    """Points of a purchase still held in its format's return window."""
    try:
        hold = purchase.points_hold
    except PointsHold.DoesNotExist:
        return 0
    return hold.remaining if hold.status == PointsHold.Status.PENDING else 0


def _recorded(model, *, store, receipt_no: str) -> int | None:
    """The id of the purchase or return a store already recorded under this receipt number, if any."""
    return model.objects.filter(store=store, receipt_no=receipt_no).values_list("pk", flat=True).first()


def _receipt_taken(receipt_no: str, record: str, record_id: int) -> ReceiptAlreadyRecorded:
    return ReceiptAlreadyRecorded(
        receipt_no=receipt_no, record=record, record_id=record_id,
        fields={"receipt_no": [gettext("Receipt %(receipt_no)s of this store is already recorded (%(record)s "
                                       "%(record_id)s).") % {"receipt_no": receipt_no, "record": record,
                                                             "record_id": record_id}]},
    )


# --- returns ---------------------------------------------------------------------------------------------------


def points_to_take_back(
    *, points_earned: int, amount: Decimal, returned_before: Decimal, returned_after: Decimal
) -> int:
    """The points a return takes back: what the purchase earned in proportion to the part returned.

    Computed as the difference of the rounded-down shares before and after, so returns in several parts
    take back exactly what the purchase earned once everything is back.
    """
    whole = _cents(amount)
    return points_earned * _cents(returned_after) // whole - points_earned * _cents(returned_before) // whole


@transaction.atomic
def purchase_return(
    *,
    store,
    original_receipt_no: str,
    receipt_no: str,
    amount: Decimal,
    occurred_at: datetime | None = None,
    terminal=None,
    operator=None,
) -> PurchaseReturn:
    """Record goods brought back to the store of the sale and take back the points their part earned.

    Points still held in the return window are cancelled; points already credited are taken back with a
    `reversal` entry as far as the balance allows, and the rest is recorded as points owed (paid off by
    later earnings), so the balance never goes below zero. The returns of a purchase never add up to more
    than its amount: the purchase row is locked for the check. A sale without a member has no points to take
    back. The listeners of PURCHASE_RETURNED are called in the same transaction once the return is recorded.
    Raise PurchaseInvalid, PurchaseNotFound, ReturnExceedsPurchase, ReceiptAlreadyRecorded.
    """
    now = timezone.now()
    occurred_at = now if occurred_at is None else occurred_at
    errors: dict[str, list[str]] = {}
    amount, problem = _money(amount, positive=True)
    if problem:
        errors["amount"] = [problem]
    for field, value in (("original_receipt_no", original_receipt_no), ("receipt_no", receipt_no)):
        if problem := _receipt_error(value):
            errors[field] = [problem]
    if problem := _time_error(occurred_at, now=now):
        errors["occurred_at"] = [problem]
    if errors:
        raise PurchaseInvalid(fields=errors)
    receipt_no, original_receipt_no = receipt_no.strip(), original_receipt_no.strip()

    purchase = Purchase.objects.select_for_update().filter(store=store, receipt_no=original_receipt_no).first()
    if purchase is None:
        raise PurchaseNotFound(receipt_no=original_receipt_no)
    existing = _recorded(PurchaseReturn, store=store, receipt_no=receipt_no)
    if existing is not None:
        raise _receipt_taken(receipt_no, gettext("return"), existing)
    if occurred_at < purchase.occurred_at:
        raise PurchaseInvalid(fields={"occurred_at": [gettext("A return cannot come before the sale.")]})
    left = purchase.amount - purchase.returned_amount
    if amount > left:
        raise ReturnExceedsPurchase(left=left, fields={"amount": [
            gettext("Only %(left)s of %(amount)s yuan is left to return.")
            % {"left": left, "amount": purchase.amount}
        ]})
    returned_after = purchase.returned_amount + amount
    take = points_to_take_back(points_earned=purchase.points_earned, amount=purchase.amount,
                               returned_before=purchase.returned_amount, returned_after=returned_after)

    hold = None
    if take:
        hold = PointsHold.objects.select_for_update().filter(purchase=purchase).first()
    member = None
    taken = owed = 0
    if hold is not None and hold.status == PointsHold.Status.PENDING:
        taken = min(take, hold.remaining)
        hold.cancelled_points += taken
        if hold.remaining == 0:
            hold.status = PointsHold.Status.CANCELLED
        hold.save(update_fields=["cancelled_points", "status"])
    elif take:
        member = _lock_members(purchase.member_id)[0]
        taken = min(take, member.points)
        owed = take - taken

    record = PurchaseReturn(
        purchase=purchase, store=store, terminal=terminal, receipt_no=receipt_no, amount=amount,
        points_reversed=taken, points_debt=owed, occurred_at=occurred_at, created_at=now,
    )
    try:
        with transaction.atomic():
            record.save(force_insert=True)
    except IntegrityError:
        existing = _recorded(PurchaseReturn, store=store, receipt_no=receipt_no)
        if existing is None:
            raise
        raise _receipt_taken(receipt_no, gettext("return"), existing) from None

    # The sum is computed here, exactly: SQLite would add binary floats (0.10 + 0.20 stored as 0.30000000000000004),
    # and the next return's conditional update would then match no row.
    updated = Purchase.objects.filter(pk=purchase.pk, returned_amount=purchase.returned_amount).update(
        returned_amount=returned_after
    )
    if not updated:
        raise RuntimeError(f"purchase {purchase.pk} changed under its lock")
    purchase.returned_amount = returned_after
    if member is not None:
        note = gettext("return %(receipt_no)s of receipt %(original)s") % {
            "receipt_no": receipt_no, "original": original_receipt_no}
        if taken:
            points_post(
                member=member, points=-taken, kind=PointsEntry.Kind.REVERSAL, store=store, terminal=terminal,
                receipt_no=receipt_no, operator=operator, reason=note, cause=record,
                legal_entity=purchase.legal_entity,
            )
        if owed:
            points_debt_move(member=member, points=owed, kind=PointsDebtEntry.Kind.INCURRED, reason=note,
                             cause=record)
    for listener in PURCHASE_RETURNED:
        listener(purchase=purchase, purchase_return=record)
    return record


# --- points held in the return window ----------------------------------------------------------------------


def points_holds_release(*, now: datetime | None = None, batch: int = 2000) -> int:
    """Credit the points of holds whose return window has passed; return how many holds were settled.

    Each batch is its own transaction: the members concerned are locked in primary-key order (the order a
    merge locks them in), then their due holds. A hold a return cancelled in full is closed without an entry.
    Running twice, or beside purchases and returns, credits every hold once.
    """
    now = now or timezone.now()
    settled = 0
    while True:
        due = list(
            PointsHold.objects.filter(status=PointsHold.Status.PENDING, available_at__lte=now)
            .order_by("available_at", "pk").values_list("pk", "member_id")[:batch]
        )
        if not due:
            return settled
        done = _holds_release_batch(hold_ids=[pk for pk, _member in due],
                                    member_ids=sorted({member for _pk, member in due}))
        settled += done
        if not done:
            # Every hold read was moved by a merge meanwhile: the next run finds them under their new member.
            return settled


@transaction.atomic
def _holds_release_batch(*, hold_ids: list[int], member_ids: list[int]) -> int:
    members = {member.pk: member for member in _lock_members(*member_ids)}
    holds = (
        PointsHold.objects.select_for_update(of=("self",))
        .select_related("purchase__store", "purchase__terminal")
        .filter(pk__in=hold_ids, status=PointsHold.Status.PENDING, member_id__in=member_ids)
        .order_by("member_id", "pk")
    )
    settled = 0
    for hold in holds:
        purchase = hold.purchase
        if hold.remaining > 0:
            if purchase.promotions_text:
                reason = gettext("pending points of receipt %(receipt_no)s released, %(promotions)s") % {
                    "receipt_no": purchase.receipt_no, "promotions": purchase.promotions_text}
            else:
                reason = gettext("pending points of receipt %(receipt_no)s released") % {
                    "receipt_no": purchase.receipt_no}
            hold.released_entry = points_earn(
                member=members[hold.member_id], points=hold.remaining, store=purchase.store,
                terminal=purchase.terminal, receipt_no=purchase.receipt_no, cause=purchase,
                legal_entity_id=purchase.legal_entity_id, reason=reason,
            )
            hold.status = PointsHold.Status.RELEASED
        else:
            hold.status = PointsHold.Status.CANCELLED
        hold.save(update_fields=["status", "released_entry"])
        settled += 1
    return settled


# --- merges -------------------------------------------------------------------------------------------------


@merge_mover
def purchases_move_on_merge(*, merged: Member, survivor: Member, request) -> None:
    """Give the survivor of a merge the merged member's purchases, held points and points owed.

    Both members are locked by the merge. What is owed moves through the debt ledger of both sides,
    so the check of that ledger holds.
    """
    Purchase.objects.filter(member=merged).update(member=survivor)
    PointsHold.objects.filter(member=merged).update(member=survivor)
    debt = Member.objects.filter(pk=merged.pk).values_list("points_debt", flat=True).get()
    if debt:
        merged.points_debt = debt
        survivor.points_debt = Member.objects.filter(pk=survivor.pk).values_list("points_debt", flat=True).get()
        points_debt_move(
            member=merged, points=-debt, kind=PointsDebtEntry.Kind.REPAID, cause=request,
            reason=gettext("moved to member %(member_no)s by a merge") % {"member_no": survivor.member_no},
        )
        points_debt_move(
            member=survivor, points=debt, kind=PointsDebtEntry.Kind.INCURRED, cause=request,
            reason=gettext("taken over from member %(member_no)s by a merge") % {"member_no": merged.member_no},
        )
