"""Pickup vouchers (提货券): batches with unique codes, redemption in parts at any store, expiry.

A batch is created as a draft, submitted for approval ("cards.voucher_batch_issue"), and its vouchers are
generated in the approval's transaction: 15 random digits from `secrets` and a Luhn check digit, the first
digit never 0, redrawn on the rare clash with a code that exists (the unique index has the last word).
Generated vouchers are unsold and hold nothing; a sale order activates them (`voucher_activate`), which puts
their units on them with an ISSUE ledger row. From then on `remaining` changes only in `voucher_post`, by a
conditional UPDATE in the same transaction as its ledger row, so concurrent redemptions never hand out more
than a voucher holds.

An expired voucher keeps its remaining units (no ledger row): the liability report shows them apart, for the
group to settle with the buyer as agreed. A redemption writes its voucher.redeemed webhook event with its ledger
row, in the same transaction, when someone subscribes.

A till's redemption on PostgreSQL is one statement (`_redeem_postgresql`): the conditional UPDATE of the voucher
(active, within its validity, enough units; used when it reaches nothing) and its ledger row, joined with
data-modifying CTEs, the row locked by the UPDATE itself. When it matches no row, the path every database takes
(`_redeem_checked`: lock, check, voucher_post) finds out which refusal it is.
"""

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from stdnum import luhn

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.queries import pending_request
from approvals.services import approval_request_cancel, approval_request_submit
from cards.errors import (
    VoucherBatchForbidden,
    VoucherBatchInvalid,
    VoucherBatchRefused,
    VoucherExpired,
    VoucherInactive,
    VoucherInsufficient,
    VoucherInvalid,
    VoucherNotFound,
    VoucherOverfilled,
)
from cards.models import Voucher, VoucherBatch, VoucherLedgerEntry, VoucherProduct
from cards.services.ledger import money_clean
from cards.services.production import _create_numbered
from core.errors import ValidationFailed
from core.ledgers import cause_fields
from core.sql import JoinedSelect, Part, keyset_chunks, quote
from integrations.events import event_emit, subscriptions_for
from integrations.models import EventType

__all__ = [
    "CODE_LENGTH",
    "MAX_BATCH_QUANTITY",
    "PERMISSION_CODE_FILE",
    "VOUCHER_BATCH_ISSUE",
    "SettlementRow",
    "VoucherBatchForbidden",
    "VoucherBatchInvalid",
    "VoucherBatchRefused",
    "VoucherExpired",
    "VoucherInactive",
    "VoucherInsufficient",
    "VoucherInvalid",
    "VoucherLiabilityRow",
    "VoucherNotFound",
    "VoucherOverfilled",
    "voucher_activate",
    "voucher_batch_cancel",
    "voucher_batch_code_rows",
    "voucher_batch_code_file_issue",
    "voucher_batch_create",
    "voucher_batch_generate",
    "voucher_batch_submit",
    "voucher_batch_values_clean",
    "voucher_code_make",
    "voucher_expires_at",
    "voucher_liability",
    "voucher_post",
    "voucher_redeem",
    "voucher_settlement",
    "vouchers_expire",
]

VOUCHER_BATCH_ISSUE = "cards.voucher_batch_issue"
PERMISSION_CODE_FILE = "cards.change_voucherbatch"
CODE_LENGTH = 16
MAX_BATCH_QUANTITY = 1_000_000
MAX_UNITS = 100_000
MAX_REDEEM_QUANTITY = 1_000_000
_INSERT_CHUNK = 5000
_CODE_PATTERN = re.compile(r"^[\x21-\x7e]{1,32}$")
_RECEIPT_PATTERN = re.compile(r"^[\x20-\x7e]{1,64}$")
_NOTE_LENGTH = VoucherBatch._meta.get_field("note").max_length
CENT = Decimal("0.01")


# --- codes --------------------------------------------------------------------------------------------------


def voucher_code_make() -> str:
    """A new random code: 15 digits (the first not 0) and a Luhn check digit, so a mistyped digit is caught."""
    body = str(secrets.randbelow(9) + 1) + "".join(str(secrets.randbelow(10)) for _digit in range(CODE_LENGTH - 2))
    return body + luhn.calc_check_digit(body)


def voucher_expires_at(expires_on: date) -> datetime:
    """The end of the day `expires_on` in the group's time zone (Asia/Shanghai): the first moment it is expired."""
    return timezone.make_aware(datetime.combine(expires_on + timedelta(days=1), time.min),
                               timezone.get_default_timezone())


# --- batches ------------------------------------------------------------------------------------------------


def voucher_batch_values_clean(*, product: VoucherProduct | None, quantity, units, price, expires_on,
                               note: str = "") -> dict:
    """Check a batch's details; return them cleaned. Raise VoucherBatchInvalid naming each field."""
    errors: dict[str, list[str]] = {}
    if product is None:
        errors["product"] = [gettext("Choose the voucher product.")]
    elif not product.is_active:
        errors["product"] = [gettext("Product %(product)s is not active.") % {"product": product.code}]
    elif not product.supplier.is_active:
        errors["product"] = [gettext("The supplier of %(product)s is not active.") % {"product": product.code}]
    if not _whole(quantity) or not 1 <= quantity <= MAX_BATCH_QUANTITY:
        errors["quantity"] = [gettext("A batch has between 1 and %(max)s vouchers.")
                              % {"max": f"{MAX_BATCH_QUANTITY:,}"}]
    if not _whole(units) or not 1 <= units <= MAX_UNITS:
        errors["units"] = [gettext("A voucher is good for between 1 and %(max)s units.") % {"max": f"{MAX_UNITS:,}"}]
    try:
        price = money_clean(price, field="price")
    except ValidationFailed as error:
        errors.update(error.fields or {})
    if not isinstance(expires_on, date) or isinstance(expires_on, datetime):
        errors["expires_on"] = [gettext("Give the last day the vouchers can be redeemed.")]
    elif expires_on <= timezone.localdate():
        errors["expires_on"] = [gettext("The last day of validity must be in the future.")]
    note = (note or "").strip()
    if len(note) > _NOTE_LENGTH:
        errors["note"] = [gettext("At most %(n)s characters.") % {"n": _NOTE_LENGTH}]
    if errors:
        raise VoucherBatchInvalid(fields=errors)
    return {"product": product, "quantity": quantity, "units": units, "price": price, "expires_on": expires_on,
            "note": note}


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@transaction.atomic
def voucher_batch_create(*, product: VoucherProduct, quantity: int, units: int, price, expires_on: date,
                         requested_by, note: str = "") -> VoucherBatch:
    """Create a draft voucher batch. Raise VoucherBatchInvalid naming the field."""
    values = voucher_batch_values_clean(product=product, quantity=quantity, units=units, price=price,
                                        expires_on=expires_on, note=note)
    batch = VoucherBatch(**values, requested_by=requested_by, status=VoucherBatch.Status.DRAFT)
    return _create_numbered(batch, field="batch_no", letters="VB", actor=requested_by)


def _batch_lock(batch: VoucherBatch) -> VoucherBatch:
    return (VoucherBatch.objects.select_for_update(of=("self",)).select_related("product")
            .get(pk=batch.pk))


def _batch_refused(batch: VoucherBatch, reason: str) -> VoucherBatchRefused:
    return VoucherBatchRefused(batch_no=batch.batch_no, status=batch.get_status_display(), reason=reason)


def _batch_save(batch: VoucherBatch, *, actor, reason: str, fields: list[str]) -> None:
    batch._history_user = actor
    batch._change_reason = reason[:100]
    batch.save(update_fields=fields)


@transaction.atomic
def voucher_batch_submit(*, batch: VoucherBatch, requested_by, reason: str = "") -> ApprovalRequest:
    """Ask for a draft batch to be issued; its codes are generated when another person approves.

    Raise VoucherBatchRefused (not a draft), VoucherBatchInvalid (its validity has passed meanwhile),
    ApprovalAlreadyPending.
    """
    batch = _batch_lock(batch)
    if batch.status != VoucherBatch.Status.DRAFT:
        raise _batch_refused(batch, gettext("only a draft can be submitted for approval."))
    if batch.expires_on <= timezone.localdate():
        raise VoucherBatchInvalid(fields={"expires_on": [gettext("The last day of validity must be in the future.")]})
    batch.status = VoucherBatch.Status.PENDING
    _batch_save(batch, actor=requested_by, reason=gettext("submitted for approval"), fields=["status"])
    reason = (reason or "").strip() or gettext(
        "Issue %(quantity)s vouchers of %(units)s %(unit)s %(product)s at %(price)s each (batch %(batch_no)s)."
    ) % {"quantity": batch.quantity, "units": batch.units, "unit": batch.product.unit,
         "product": batch.product.name, "price": batch.price, "batch_no": batch.batch_no}
    return approval_request_submit(
        action=VOUCHER_BATCH_ISSUE, subject=batch, requested_by=requested_by, reason=reason,
        amount=batch.price * batch.quantity,
        payload={"batch_id": batch.pk, "batch_no": batch.batch_no, "product": batch.product.code,
                 "quantity": batch.quantity, "units": batch.units, "price": str(batch.price),
                 "expires_on": batch.expires_on.isoformat()},
    )


def _vouchers_insert(batch: VoucherBatch, *, now: datetime) -> None:
    """Insert the batch's vouchers (serials 1..quantity) with fresh codes, a chunk at a time."""
    expires_at = voucher_expires_at(batch.expires_on)
    for first in range(1, batch.quantity + 1, _INSERT_CHUNK):
        serials = range(first, min(first + _INSERT_CHUNK, batch.quantity + 1))
        for attempt in range(5):
            codes = _codes_draw(len(serials))
            try:
                with transaction.atomic():
                    Voucher.objects.bulk_create(
                        [Voucher(code=code, serial=serial, batch=batch, product_id=batch.product_id, units=batch.units,
                                 remaining=0, status=Voucher.Status.UNSOLD, expires_at=expires_at, created_at=now)
                         for serial, code in zip(serials, codes, strict=True)],
                        batch_size=_INSERT_CHUNK,
                    )
                break
            except IntegrityError:
                # A code drawn by a batch approved at the same moment: this chunk is drawn again.
                if attempt == 4:
                    raise


def _codes_draw(count: int) -> list[str]:
    """`count` distinct new codes none of which exists yet."""
    codes: set[str] = set()
    while len(codes) < count:
        fresh = {voucher_code_make() for _index in range(count - len(codes))} - codes
        taken = set(Voucher.objects.filter(code__in=fresh).values_list("code", flat=True))
        codes |= fresh - taken
    return list(codes)


def _batch_issue_execute(request: ApprovalRequest) -> None:
    """Generate the approved batch's vouchers, in the approval's transaction."""
    batch = _batch_lock(VoucherBatch(pk=int(request.payload["batch_id"])))
    if batch.status != VoucherBatch.Status.PENDING:
        raise _batch_refused(batch, gettext("only a batch waiting for approval can be issued."))
    if batch.expires_on <= timezone.localdate():
        raise _batch_refused(batch, gettext("its last day of validity has come; create a new batch."))
    voucher_batch_generate(batch=batch, actor=request.decided_by or request.requested_by,
                           reason=gettext("approved (#%(request)s): %(quantity)s vouchers generated") % {
                               "request": request.pk, "quantity": batch.quantity})


def voucher_batch_generate(*, batch: VoucherBatch, actor, reason: str) -> VoucherBatch:
    """Generate a locked, approved batch's vouchers and mark it issued, in the caller's transaction.

    Called by the approval; demo data calls it directly. Not for screens: a batch is issued through approval.
    """
    now = timezone.now()
    _vouchers_insert(batch, now=now)
    batch.status = VoucherBatch.Status.ISSUED
    batch.issued_at = now
    _batch_save(batch, actor=actor, reason=reason, fields=["status", "issued_at"])
    return batch


def _batch_issue_reject(request: ApprovalRequest) -> None:
    batch = _batch_lock(VoucherBatch(pk=int(request.payload["batch_id"])))
    if batch.status != VoucherBatch.Status.PENDING:
        return
    batch.status = VoucherBatch.Status.REJECTED
    _batch_save(batch, actor=request.decided_by,
                reason=gettext("not approved (#%(request)s)") % {"request": request.pk}, fields=["status"])


registry.register(VOUCHER_BATCH_ISSUE, label=_("Issue a batch of pickup vouchers"), execute=_batch_issue_execute,
                  on_reject=_batch_issue_reject)


@transaction.atomic
def voucher_batch_cancel(*, batch: VoucherBatch, user) -> VoucherBatch:
    """Cancel a draft, or withdraw one's own batch waiting for approval.

    Raise VoucherBatchRefused (issued or decided), ApproverNotPermitted (another person's request).
    """
    batch = _batch_lock(batch)
    if batch.status not in (VoucherBatch.Status.DRAFT, VoucherBatch.Status.PENDING):
        raise _batch_refused(batch, gettext("only a draft or a batch waiting for approval can be cancelled."))
    was_pending = batch.status == VoucherBatch.Status.PENDING
    batch.status = VoucherBatch.Status.CANCELLED
    _batch_save(batch, actor=user, reason=gettext("cancelled"), fields=["status"])
    if was_pending:
        request = pending_request(batch, actions=[VOUCHER_BATCH_ISSUE])
        if request is not None:
            approval_request_cancel(approval_request=request, user=user)
    return batch


@transaction.atomic
def voucher_batch_code_file_issue(*, batch: VoucherBatch, user) -> VoucherBatch:
    """Record that `user` takes the batch's code file (for printing); the caller streams voucher_batch_code_rows.

    Every download is kept in the batch's history with who and when. Raise VoucherBatchForbidden (no
    cards.change_voucherbatch), VoucherBatchRefused (no codes yet).
    """
    if user is None or not user.has_perm(PERMISSION_CODE_FILE):
        raise VoucherBatchForbidden(_("Downloading voucher codes needs the permission to change voucher batches."))
    batch = _batch_lock(batch)
    if batch.status != VoucherBatch.Status.ISSUED:
        raise _batch_refused(batch, gettext("the code file exists once the batch is approved and its codes "
                                            "generated."))
    _batch_save(batch, actor=user, reason=gettext("code file downloaded by %(user)s") % {"user": user.get_username()},
                fields=["status"])
    return batch


def voucher_batch_code_rows(batch: VoucherBatch) -> Iterator[tuple]:
    """(serial, code, status) of every voucher of a batch, in serial order, read in chunks."""
    return (Voucher.objects.filter(batch=batch).order_by("serial").values_list("serial", "code", "status")
            .iterator(chunk_size=5000))


# --- the ledger ---------------------------------------------------------------------------------------------


def voucher_post(*, voucher: Voucher, kind: str, quantity: int, store=None, terminal=None, receipt_no: str = "",
                 operator=None, legal_entity=None, reason: str = "", cause=None,
                 created_at: datetime | None = None) -> VoucherLedgerEntry:
    """Move a voucher's remaining units by `quantity` (signed) and append its ledger row, in the caller's
    transaction. The only place `remaining` changes.

    A voucher redeemed down to nothing is used; one brought back above nothing is active again. The legal
    entity is the store's format's company unless given; `created_at` backdates the row (opening quantities of a
    migration), now unless given. Raise VoucherInsufficient (below zero) or
    VoucherOverfilled (above its units); nothing moves then.
    """
    if not _whole(quantity) or quantity == 0:
        raise ValueError("quantity must be a non-zero int")
    with transaction.atomic(savepoint=False):
        # Integers are exact on every database: one conditional UPDATE, the row stays locked to the end.
        moved = Voucher.objects.filter(pk=voucher.pk, remaining__gte=-quantity,
                                       remaining__lte=F("units") - quantity).update(
            remaining=F("remaining") + quantity, updated_at=timezone.now())
        remaining, status = Voucher.objects.filter(pk=voucher.pk).values_list("remaining", "status").get()
        voucher.remaining = remaining
        if not moved:
            if quantity < 0:
                raise VoucherInsufficient(code=voucher.code, remaining=remaining, quantity=-quantity,
                                          unit=_unit(voucher))
            raise VoucherOverfilled(code=voucher.code, units=voucher.units)
        new_status = status
        if remaining == 0 and status == Voucher.Status.ACTIVE and kind == VoucherLedgerEntry.Kind.REDEEM:
            new_status = Voucher.Status.USED
        elif remaining > 0 and status == Voucher.Status.USED:
            new_status = Voucher.Status.ACTIVE
        if new_status != status:
            Voucher.objects.filter(pk=voucher.pk).update(status=new_status)
        voucher.status = new_status
        if legal_entity is None and store is not None:
            legal_entity = store.legal_entity
        entry = VoucherLedgerEntry.objects.create(
            voucher=voucher, kind=kind, quantity=quantity, remaining_after=remaining, store=store, terminal=terminal,
            receipt_no=receipt_no[:64], legal_entity=legal_entity, operator=operator, reason=reason[:200],
            **cause_fields(cause), **({"created_at": created_at} if created_at is not None else {}),
        )
        if kind == VoucherLedgerEntry.Kind.REDEEM and subscriptions_for(EventType.VOUCHER_REDEEMED):
            _redeemed_emit(voucher, entry)
    return entry


def _redeemed_emit(voucher: Voucher, entry: VoucherLedgerEntry) -> None:
    event_emit(EventType.VOUCHER_REDEEMED, subject=f"voucher:{voucher.code}", at=entry.created_at, data={
        "voucher_code": voucher.code,
        "sku": voucher.product.sku,
        "quantity": -entry.quantity,
        "remaining": entry.remaining_after,
        "store": entry.store.code if entry.store is not None else None,
        "receipt_no": entry.receipt_no,
        "created_at": timezone.localtime(entry.created_at).isoformat(),
    })


def _unit(voucher: Voucher) -> str:
    return VoucherProduct.objects.filter(pk=voucher.product_id).values_list("unit", flat=True).first() or ""


def voucher_activate(*, voucher: Voucher, order, store, actor) -> VoucherLedgerEntry:
    """Sell an unsold voucher in a paid sale order: active, sold now by the store's company, its units on it.

    Runs in the caller's transaction (the order's payment). Raise VoucherBatchRefused naming the voucher when it
    is not unsold or already past its validity (someone sold it a moment ago, or it expired).
    """
    with transaction.atomic(savepoint=False):
        locked = Voucher.objects.select_for_update(of=("self",)).select_related("batch").get(pk=voucher.pk)
        now = timezone.now()
        if locked.status != Voucher.Status.UNSOLD or locked.expires_at <= now:
            status = (gettext("expired") if locked.expires_at <= now and locked.status == Voucher.Status.UNSOLD
                      else locked.get_status_display())
            raise VoucherBatchRefused(
                _("Voucher %(batch_no)s-%(serial)s is %(status)s; only an unsold voucher within its validity can "
                  "be sold."),
                batch_no=locked.batch.batch_no, serial=locked.serial, status=status,
            )
        issuer = store.legal_entity
        Voucher.objects.filter(pk=locked.pk).update(status=Voucher.Status.ACTIVE, sold_at=now, sale_order=order,
                                                    issuer=issuer, updated_at=now)
        for name, value in {"status": Voucher.Status.ACTIVE, "sold_at": now, "sale_order": order,
                            "issuer": issuer}.items():
            setattr(voucher, name, value)
        return voucher_post(voucher=voucher, kind=VoucherLedgerEntry.Kind.ISSUE, quantity=locked.units, store=store,
                            receipt_no=getattr(order, "order_no", ""), operator=actor, legal_entity=issuer,
                            reason=gettext("sold"), cause=order)


# --- redemption ---------------------------------------------------------------------------------------------


def _redeem_clean(code, quantity, receipt_no) -> tuple[str, int, str]:
    errors: dict[str, list[str]] = {}
    code = str(code or "").strip()
    if not _CODE_PATTERN.match(code):
        errors["code"] = [gettext("A voucher code is 1 to 32 letters or digits.")]
    if not _whole(quantity) or not 1 <= quantity <= MAX_REDEEM_QUANTITY:
        errors["quantity"] = [gettext("Give the quantity as a whole number of units, at least 1.")]
    receipt_no = str(receipt_no or "").strip()
    if not _RECEIPT_PATTERN.match(receipt_no):
        errors["receipt_no"] = [gettext("Use 1 to 64 printable ASCII characters.")]
    if errors:
        raise VoucherInvalid(fields=errors)
    return code, quantity, receipt_no


def voucher_redeem(*, code: str, quantity: int, receipt_no: str, store, terminal=None,
                   operator=None) -> tuple[Voucher, VoucherLedgerEntry]:
    """Hand out `quantity` units of a voucher at a store (any store of the group).

    Raise VoucherInvalid (naming code, quantity or receipt_no), VoucherNotFound, VoucherInactive (not sold, void),
    VoucherExpired, VoucherInsufficient (saying what remains); nothing changes then.
    """
    code, quantity, receipt_no = _redeem_clean(code, quantity, receipt_no)
    if connection.vendor == "postgresql":
        # No savepoint: the statement is all or nothing, and a voucher it did not move raises nothing in here.
        with transaction.atomic(savepoint=False):
            redeemed = _redeem_postgresql(code=code, quantity=quantity, receipt_no=receipt_no, store=store,
                                          terminal=terminal, operator=operator)
        if redeemed is not None:
            return redeemed
    return _redeem_checked(code=code, quantity=quantity, receipt_no=receipt_no, store=store, terminal=terminal,
                           operator=operator)


# The voucher and its product as the redemption's UPDATE returns them, the ledger row's id after them (only `load`
# is used: the statement is _redeem_sql's).
_REDEEMED = JoinedSelect([Part("v", Voucher), Part("p", VoucherProduct, via="v.product")], "",
                         extras=["entry_id"])
_REDEEM_SQL: str | None = None


def _redeem_sql() -> str:
    global _REDEEM_SQL
    if _REDEEM_SQL is None:
        vouchers, products = quote(Voucher._meta.db_table), quote(VoucherProduct._meta.db_table)
        entries = quote(VoucherLedgerEntry._meta.db_table)
        columns = [f"{part.alias}.{quote(column.column)}" for part in _REDEEMED.parts for column in part.columns]
        returning = ", ".join(f"{column} AS c{index}" for index, column in enumerate(columns))
        names = ", ".join(f"c{index}" for index in range(len(columns)))
        voucher_id = f"c{columns.index('v.' + quote('id'))}"
        remaining = f"c{columns.index('v.' + quote('remaining'))}"
        _REDEEM_SQL = (
            f'WITH moved AS (UPDATE {vouchers} v SET "remaining" = v."remaining" - %s, "updated_at" = %s, '  # noqa: S608
            f'"status" = CASE WHEN v."remaining" = %s THEN %s ELSE v."status" END '
            f'FROM {products} p WHERE v."code" = %s AND p."id" = v."product_id" AND v."status" = %s '
            f'AND v."expires_at" > %s AND v."remaining" >= %s AND v."remaining" <= v."units" + %s '
            f'RETURNING {returning}), '
            f'entry AS (INSERT INTO {entries} ("voucher_id", "kind", "quantity", "remaining_after", "store_id", '
            f'"terminal_id", "receipt_no", "legal_entity_id", "operator_id", "reason", "cause_type_id", "cause_id", '
            f'"created_at") SELECT {voucher_id}, %s, %s, {remaining}, %s, %s, %s, %s, %s, %s, NULL, %s, %s '
            f'FROM moved RETURNING "id") '
            f'SELECT {names}, entry."id" FROM moved, entry'
        )
    return _REDEEM_SQL


def _redeem_postgresql(*, code: str, quantity: int, receipt_no: str, store, terminal,
                       operator) -> tuple[Voucher, VoucherLedgerEntry] | None:
    """Redeem an active voucher within its validity that holds enough units, in one statement (with its event,
    when someone subscribes); None, with nothing changed, for any other voucher."""
    now = timezone.now()
    legal_entity_id = store.format.legal_entity_id
    with connection.cursor() as cursor:
        cursor.execute(_redeem_sql(), [
            quantity, now, quantity, Voucher.Status.USED, code, Voucher.Status.ACTIVE, now, quantity, quantity,
            VoucherLedgerEntry.Kind.REDEEM, -quantity, store.pk, getattr(terminal, "pk", None), receipt_no,
            legal_entity_id, getattr(operator, "pk", None), "", "", now,
        ])
        row = cursor.fetchone()
    if row is None:
        return None
    found = _REDEEMED.load(row)
    voucher = found["v"]
    entry = VoucherLedgerEntry(
        pk=found["extras"][0], voucher=voucher, kind=VoucherLedgerEntry.Kind.REDEEM, quantity=-quantity,
        remaining_after=voucher.remaining, store=store, terminal=terminal, receipt_no=receipt_no,
        legal_entity_id=legal_entity_id, operator=operator, reason="", created_at=now,
    )
    entry._state.adding = False
    entry._state.db = connection.alias
    if subscriptions_for(EventType.VOUCHER_REDEEMED):
        _redeemed_emit(voucher, entry)
    return voucher, entry


@transaction.atomic
def _redeem_checked(*, code: str, quantity: int, receipt_no: str, store, terminal,
                    operator) -> tuple[Voucher, VoucherLedgerEntry]:
    """voucher_redeem on every database: the voucher locked, each refusal checked in turn, then voucher_post."""
    voucher = (Voucher.objects.select_for_update(of=("self",)).select_related("product")
               .filter(code=code).first())
    if voucher is None:
        raise VoucherNotFound(code=code)
    if voucher.status in (Voucher.Status.UNSOLD, Voucher.Status.VOID):
        raise VoucherInactive(code=code, status=voucher.get_status_display())
    if voucher.status == Voucher.Status.EXPIRED or voucher.expires_at <= timezone.now():
        expires_on = timezone.localtime(voucher.expires_at - timedelta(microseconds=1)).date()
        raise VoucherExpired(code=code, expires_on=expires_on)
    if quantity > voucher.remaining:
        raise VoucherInsufficient(code=code, remaining=voucher.remaining, quantity=quantity, unit=voucher.product.unit)
    entry = voucher_post(voucher=voucher, kind=VoucherLedgerEntry.Kind.REDEEM, quantity=-quantity, store=store,
                         terminal=terminal, receipt_no=receipt_no, operator=operator,
                         legal_entity=store.legal_entity)
    return voucher, entry


def vouchers_expire(*, now: datetime | None = None, batch_size: int = 5000) -> int:
    """Mark active vouchers past their validity as expired; return how many. Their remaining units stay."""
    now = now or timezone.now()
    due = Voucher.objects.filter(status=Voucher.Status.ACTIVE, expires_at__lte=now)
    expired = 0
    for ids in keyset_chunks(due, size=batch_size):
        # Still active and past validity: a voucher redeemed to nothing a moment ago stays used.
        with transaction.atomic():
            expired += Voucher.objects.filter(pk__in=ids, status=Voucher.Status.ACTIVE, expires_at__lte=now).update(
                status=Voucher.Status.EXPIRED, updated_at=timezone.now())
    return expired


# --- reads for the reports ----------------------------------------------------------------------------------


@dataclass
class VoucherLiabilityRow:
    """Outstanding vouchers of one product: active, and expired but not fully redeemed, apart."""

    product_code: str
    product_name: str
    unit: str
    supplier_code: str
    supplier_name: str
    active_vouchers: int = 0
    active_units: int = 0
    active_value: Decimal = Decimal("0.00")
    expired_vouchers: int = 0
    expired_units: int = 0
    expired_value: Decimal = Decimal("0.00")


def voucher_liability(*, supplier=None, product=None) -> list[VoucherLiabilityRow]:
    """Per product (and its supplier): vouchers sold and not fully redeemed, their remaining units and value.

    The value of a voucher is remaining × its batch's price / its units (what the buyer paid for what is left),
    summed per batch and rounded half-up to the fen once per product.
    """
    vouchers = Voucher.objects.filter(status__in=[Voucher.Status.ACTIVE, Voucher.Status.EXPIRED], remaining__gt=0)
    if supplier is not None:
        vouchers = vouchers.filter(product__supplier=supplier)
    if product is not None:
        vouchers = vouchers.filter(product=product)
    groups = (vouchers.values("product_id", "batch__price", "units", "status")
              .annotate(count=Count("pk"), remaining=Sum("remaining")).order_by())
    products = {}
    for group in groups:
        products.setdefault(group["product_id"], []).append(group)
    details = {p.pk: p for p in VoucherProduct.objects.filter(pk__in=products).select_related("supplier")}
    rows = []
    for product_id, product_groups in products.items():
        item = details[product_id]
        row = VoucherLiabilityRow(product_code=item.code, product_name=item.name, unit=item.unit,
                                  supplier_code=item.supplier.code, supplier_name=item.supplier.name)
        active_value = expired_value = Decimal(0)
        for group in product_groups:
            value = Decimal(group["batch__price"]) * group["remaining"] / group["units"]
            if group["status"] == Voucher.Status.ACTIVE:
                row.active_vouchers += group["count"]
                row.active_units += group["remaining"]
                active_value += value
            else:
                row.expired_vouchers += group["count"]
                row.expired_units += group["remaining"]
                expired_value += value
        row.active_value = active_value.quantize(CENT, ROUND_HALF_UP)
        row.expired_value = expired_value.quantize(CENT, ROUND_HALF_UP)
        rows.append(row)
    return sorted(rows, key=lambda row: (row.supplier_code, row.product_code))


@dataclass
class SettlementRow:
    """Units one legal entity handed out of one supplier's product in a period, and what the supplier is owed."""

    supplier_code: str
    supplier_name: str
    product_code: str
    product_name: str
    unit: str
    legal_entity_code: str
    legal_entity_name: str
    units: int
    settlement_price: Decimal
    amount: Decimal


def voucher_settlement(*, date_from: date, date_to: date, supplier=None) -> list[SettlementRow]:
    """Redemptions from date_from to date_to (inclusive, China time) per supplier, product and redeeming legal
    entity, at the product's settlement price per unit."""
    zone = timezone.get_default_timezone()
    start = timezone.make_aware(datetime.combine(date_from, time.min), zone)
    end = timezone.make_aware(datetime.combine(date_to + timedelta(days=1), time.min), zone)
    entries = VoucherLedgerEntry.objects.filter(kind=VoucherLedgerEntry.Kind.REDEEM, created_at__gte=start,
                                                created_at__lt=end)
    if supplier is not None:
        entries = entries.filter(voucher__product__supplier=supplier)
    groups = (entries.values("voucher__product__supplier__code", "voucher__product__supplier__name",
                             "voucher__product__code", "voucher__product__name", "voucher__product__unit",
                             "voucher__product__settlement_price", "legal_entity__code", "legal_entity__name")
              .annotate(units=Sum("quantity")).order_by("voucher__product__supplier__code", "voucher__product__code",
                                                        "legal_entity__code"))
    rows = []
    for group in groups:
        units = -group["units"]
        price = Decimal(group["voucher__product__settlement_price"]).quantize(CENT)
        rows.append(SettlementRow(
            supplier_code=group["voucher__product__supplier__code"],
            supplier_name=group["voucher__product__supplier__name"],
            product_code=group["voucher__product__code"], product_name=group["voucher__product__name"],
            unit=group["voucher__product__unit"], legal_entity_code=group["legal_entity__code"] or "",
            legal_entity_name=group["legal_entity__name"] or "", units=units, settlement_price=price,
            amount=(price * units).quantize(CENT),
        ))
    return rows
