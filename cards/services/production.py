"""Card production (制卡), card numbers, the printer's file, receipt into stock and transfers to stores.

A batch is created as a draft, submitted for approval ("cards.batch_produce"), and its cards are numbered in
the approval's transaction: a consecutive range of serials reserved under a row lock on CardNumberCounter, each
number with a Luhn check digit, inserted in bulk (PostgreSQL COPY). Producing, receiving and moving cards in
bulk writes no CardEvent per card (a hundred thousand event rows would cost more than the cards themselves):
the batch's and the transfer's audit history record each step with who and when, and every card names its
batch; transfers keep one CardTransferItem per card.

PINs exist in plain text only in the printer's file, handed out once: a random key drawn when the file is
requested derives every PIN (HMAC, six digits), the card rows get the PIN hashes in the service's transaction,
and the file streams from the key, which is never stored. Memory stays flat however large the batch.
"""

import csv
import hashlib
import hmac
import io
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, transaction
from django.db.models import Max, Q, QuerySet
from django.db.models.functions import Length
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from stdnum import luhn

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.queries import pending_request
from approvals.services import approval_request_cancel, approval_request_submit
from cards.errors import (
    BatchInvalid,
    CardOperationRefused,
    PrinterFileAlreadyHandedOut,
    StockForbidden,
    TransferInvalid,
)
from cards.models import Card, CardNumberCounter, CardProduct, CardTransfer, CardTransferItem, ProductionBatch
from cards.services.ledger import CARD_NO_PATTERN, money_clean, pin_hash
from core.errors import ValidationFailed
from core.files import escape_cell
from core.sql import insert_returning_pk, keyset_chunks
from stores.models import Store
from stores.queries import user_can_see_store, user_is_hq

__all__ = [
    "BATCH_PRODUCE",
    "PRINTER_FILE_REISSUE",
    "CARD_NO_LENGTH",
    "BatchInvalid",
    "PrinterFile",
    "PrinterFileAlreadyHandedOut",
    "StockForbidden",
    "TransferInvalid",
    "batch_cancel",
    "batch_create",
    "batch_printer_file_issue",
    "batch_printer_file_reissue_request",
    "batch_receive",
    "batch_submit",
    "batch_values_clean",
    "card_no_make",
    "card_no_prefix",
    "card_numbers_parse",
    "transfer_cancel",
    "transfer_create",
    "transfer_receive",
    "transfer_send",
]

BATCH_PRODUCE = "cards.batch_produce"
PERMISSION_PRINTER_FILE = "cards.download_printer_file"
PERMISSION_STOCK = "cards.receive_card_stock"
# Every generated number has this many digits: prefix, serial, Luhn check digit.
CARD_NO_LENGTH = 16
# Prefixes by product code or kind; settings.CARD_NO_PREFIXES (same shape) overrides them. One prefix must not
# start another (86 and 8610), or their counters could hand out the same number (the unique index refuses it).
DEFAULT_PREFIXES = {CardProduct.Kind.REGISTERED.value: "8610", CardProduct.Kind.BEARER.value: "8620"}
MAX_BATCH_QUANTITY = 1_000_000
MAX_TRANSFER_CARDS = 200_000
_COPY_CHUNK = 10_000
_PIN_CHUNK = 10_000
_EXAMPLES = 5
_RANGE = re.compile(r"^([0-9]+)\s*(?:-|~|–|\.\.)\s*([0-9]+)$")
_VENDOR_LENGTH = ProductionBatch._meta.get_field("vendor").max_length
_NOTE_LENGTH = ProductionBatch._meta.get_field("note").max_length


# --- card numbers ---------------------------------------------------------------------------------


def card_no_prefix(product: CardProduct) -> str:
    """The prefix of the product's card numbers: by product code, else by kind (settings.CARD_NO_PREFIXES)."""
    prefixes = {**DEFAULT_PREFIXES, **getattr(settings, "CARD_NO_PREFIXES", {})}
    prefix = str(prefixes.get(product.code) or prefixes[product.kind])
    if not re.fullmatch(r"[0-9]{1,6}", prefix):
        raise ImproperlyConfigured(f"card number prefix {prefix!r} of {product.code} is not one to six digits")
    return prefix


def card_no_make(prefix: str, serial: int) -> str:
    """The card number of a serial: prefix, serial padded to the fixed length, Luhn check digit."""
    body = f"{prefix}{serial:0{CARD_NO_LENGTH - 1 - len(prefix)}d}"
    return body + luhn.calc_check_digit(body)


def _serials_reserve(*, prefix: str, quantity: int) -> int:
    """Reserve `quantity` consecutive serials of a prefix under the counter's row lock; return the first.

    Two batches of one prefix wait for each other here, so their ranges never overlap. Numbers already taken
    by other means (a legacy import) are stepped over: the range starts after the last one found in it.
    """
    insert_returning_pk(CardNumberCounter(prefix=prefix), skip_on_conflict=["prefix"])
    counter = CardNumberCounter.objects.select_for_update().get(prefix=prefix)
    limit = 10 ** (CARD_NO_LENGTH - 1 - len(prefix))
    start = max(counter.next_serial, 1)
    while True:
        end = start + quantity - 1
        if end >= limit:
            raise CardOperationRefused(reason=gettext(
                "the card numbers with prefix %(prefix)s are used up; configure another prefix."
            ) % {"prefix": prefix})
        taken = (
            Card.objects.filter(card_no__range=(card_no_make(prefix, start), card_no_make(prefix, end)))
            .annotate(length=Length("card_no")).filter(length=CARD_NO_LENGTH)
            .aggregate(last=Max("card_no"))["last"]
        )
        if taken is None:
            break
        start = int(taken[len(prefix):-1]) + 1
    CardNumberCounter.objects.filter(pk=counter.pk).update(next_serial=end + 1)
    return start


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _cards_insert(*, batch: ProductionBatch, prefix: str, first_serial: int, now) -> tuple[str, str]:
    """Insert the batch's cards (inactive, produced, at headquarters); return the first and last number."""
    template = Card(
        product_id=batch.product_id, batch_id=batch.pk, face_value=batch.face_value, status=Card.Status.INACTIVE,
        stock_status=Card.Stock.PRODUCED, location=None, created_at=now, updated_at=now,
    )
    serials = range(first_serial, first_serial + batch.quantity)
    if connection.vendor != "postgresql":
        values = {f.attname: getattr(template, f.attname) for f in Card._meta.concrete_fields
                  if not f.primary_key and f.name != "card_no"}
        Card.objects.bulk_create((Card(card_no=card_no_make(prefix, serial), **values) for serial in serials),
                                 batch_size=500)
    else:
        fields = [f for f in Card._meta.concrete_fields if not f.primary_key and f.name != "card_no"]
        # Every column but the number is the same on every card: written out once, in COPY's text format.
        tail = "\t" + "\t".join(_copy_text(getattr(template, f.attname)) for f in fields) + "\n"
        columns = ", ".join(connection.ops.quote_name(f.column) for f in [Card._meta.get_field("card_no"), *fields])
        with connection.cursor() as cursor, cursor.copy(f"COPY cards_card ({columns}) FROM STDIN") as copy:
            for chunk_start in range(serials.start, serials.stop, _COPY_CHUNK):
                chunk = range(chunk_start, min(chunk_start + _COPY_CHUNK, serials.stop))
                copy.write("".join(card_no_make(prefix, serial) + tail for serial in chunk))
    return card_no_make(prefix, serials[0]), card_no_make(prefix, serials[-1])


# --- batches --------------------------------------------------------------------------------------


def batch_values_clean(*, product: CardProduct | None, quantity, face_value, vendor: str,
                       note: str = "") -> dict:
    """Check a batch's details; return them cleaned. Raise BatchInvalid naming each field."""
    errors: dict[str, list[str]] = {}
    if product is None:
        errors["product"] = [gettext("Choose the card product.")]
    elif not product.is_active:
        errors["product"] = [gettext("Product %(product)s is not active.") % {"product": product.code}]
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= MAX_BATCH_QUANTITY:
        errors["quantity"] = [gettext("A batch has between 1 and %(max)s cards.") % {"max": f"{MAX_BATCH_QUANTITY:,}"}]
    value = None
    if face_value not in (None, ""):
        try:
            value = money_clean(face_value, field="face_value")
        except ValidationFailed as error:
            errors.update(error.fields or {})
    if product is not None and "face_value" not in errors:
        allowed = product.face_value_list()
        if allowed and value is None:
            errors["face_value"] = [gettext("Choose one of the product's face values: %(values)s.")
                                    % {"values": ", ".join(str(v) for v in allowed)}]
        elif allowed and value not in allowed:
            errors["face_value"] = [gettext("%(value)s is not a face value of %(product)s; choose one of: "
                                            "%(values)s.") % {"value": value, "product": product.code,
                                                               "values": ", ".join(str(v) for v in allowed)}]
        elif not allowed and value is not None:
            errors["face_value"] = [gettext("Product %(product)s has no face values; leave the face value empty.")
                                    % {"product": product.code}]
    vendor = (vendor or "").strip()
    if not vendor:
        errors["vendor"] = [gettext("Name the card maker.")]
    elif len(vendor) > _VENDOR_LENGTH:
        errors["vendor"] = [gettext("At most %(n)s characters.") % {"n": _VENDOR_LENGTH}]
    note = (note or "").strip()
    if len(note) > _NOTE_LENGTH:
        errors["note"] = [gettext("At most %(n)s characters.") % {"n": _NOTE_LENGTH}]
    if errors:
        raise BatchInvalid(fields=errors)
    return {"product": product, "quantity": quantity, "face_value": value, "vendor": vendor, "note": note}


def _number_new(model, field: str, letters: str) -> str:
    """The next number of the day: letters, date, five digits (PB202611240001 ...)."""
    prefix = f"{letters}{timezone.localdate():%Y%m%d}"
    last = (model.objects.filter(**{f"{field}__startswith": prefix}).order_by(f"-{field}")
            .values_list(field, flat=True).first())
    serial = int(last[len(prefix):]) + 1 if last else 1
    return f"{prefix}{serial:05d}"


def _create_numbered(instance, *, field: str, letters: str, actor):
    """Save a new batch or transfer under the day's next number; a number taken meanwhile is drawn again."""
    instance._history_user = actor
    for attempt in range(5):
        setattr(instance, field, _number_new(type(instance), field, letters))
        try:
            with transaction.atomic():
                instance.save()
            return instance
        except IntegrityError:
            instance.pk = None
            if attempt == 4:
                raise
    return instance


@transaction.atomic
def batch_create(*, product: CardProduct, quantity: int, face_value, vendor: str, requested_by,
                 note: str = "") -> ProductionBatch:
    """Create a draft production batch. Raise BatchInvalid naming the field."""
    values = batch_values_clean(product=product, quantity=quantity, face_value=face_value, vendor=vendor, note=note)
    batch = ProductionBatch(**values, requested_by=requested_by, status=ProductionBatch.Status.DRAFT)
    return _create_numbered(batch, field="batch_no", letters="PB", actor=requested_by)


def _batch_lock(batch: ProductionBatch) -> ProductionBatch:
    return ProductionBatch.objects.select_for_update(of=("self",)).select_related("product").get(pk=batch.pk)


def _batch_refused(batch: ProductionBatch, reason: str) -> CardOperationRefused:
    return CardOperationRefused(reason=gettext("batch %(batch_no)s is %(status)s; %(reason)s") % {
        "batch_no": batch.batch_no, "status": batch.get_status_display(), "reason": reason})


def _batch_save(batch: ProductionBatch, *, actor, reason: str, fields: list[str]) -> None:
    batch._history_user = actor
    batch._change_reason = reason[:100]
    batch.save(update_fields=fields)


@transaction.atomic
def batch_submit(*, batch: ProductionBatch, requested_by, reason: str = "") -> ApprovalRequest:
    """Ask for a draft batch to be produced; its numbers are generated when another person approves.

    Raise CardOperationRefused (not a draft), ApprovalAlreadyPending.
    """
    batch = _batch_lock(batch)
    if batch.status != ProductionBatch.Status.DRAFT:
        raise _batch_refused(batch, gettext("only a draft can be submitted for approval."))
    batch.status = ProductionBatch.Status.PENDING
    _batch_save(batch, actor=requested_by, reason=gettext("submitted for approval"), fields=["status"])
    amount = batch.face_value * batch.quantity if batch.face_value is not None else None
    reason = (reason or "").strip() or gettext("Produce %(quantity)s cards of %(product)s (batch %(batch_no)s).") % {
        "quantity": batch.quantity, "product": batch.product.code, "batch_no": batch.batch_no}
    return approval_request_submit(
        action=BATCH_PRODUCE, subject=batch, requested_by=requested_by, reason=reason, amount=amount,
        payload={"batch_id": batch.pk, "batch_no": batch.batch_no, "product": batch.product.code,
                 "quantity": batch.quantity, "face_value": batch.face_value, "vendor": batch.vendor},
    )


def _batch_produce_execute(request: ApprovalRequest) -> None:
    """Generate the approved batch's card numbers and insert its cards, in the approval's transaction."""
    batch = _batch_lock(ProductionBatch(pk=int(request.payload["batch_id"])))
    if batch.status != ProductionBatch.Status.PENDING:
        raise _batch_refused(batch, gettext("only a batch waiting for approval can be produced."))
    actor = request.decided_by or request.requested_by
    prefix = card_no_prefix(batch.product)
    now = timezone.now()
    first_serial = _serials_reserve(prefix=prefix, quantity=batch.quantity)
    batch.first_card_no, batch.last_card_no = _cards_insert(batch=batch, prefix=prefix, first_serial=first_serial,
                                                            now=now)
    batch.status = ProductionBatch.Status.APPROVED
    batch.generated_at = now
    _batch_save(batch, actor=actor, reason=gettext("approved (#%(request)s): %(quantity)s cards %(first)s-%(last)s") % {
                    "request": request.pk, "quantity": batch.quantity, "first": batch.first_card_no,
                    "last": batch.last_card_no},
                fields=["status", "generated_at", "first_card_no", "last_card_no"])


def _batch_produce_reject(request: ApprovalRequest) -> None:
    batch = _batch_lock(ProductionBatch(pk=int(request.payload["batch_id"])))
    if batch.status != ProductionBatch.Status.PENDING:
        return
    batch.status = ProductionBatch.Status.REJECTED
    _batch_save(batch, actor=request.decided_by,
                reason=gettext("not approved (#%(request)s)") % {"request": request.pk}, fields=["status"])


registry.register(BATCH_PRODUCE, label=_("Produce a batch of cards"), execute=_batch_produce_execute,
                  on_reject=_batch_produce_reject)


@transaction.atomic
def batch_cancel(*, batch: ProductionBatch, user) -> ProductionBatch:
    """Cancel a draft, or withdraw one's own batch waiting for approval.

    Raise CardOperationRefused (numbers already generated, or decided), ApproverNotPermitted (another person's
    request).
    """
    batch = _batch_lock(batch)
    if batch.status not in (ProductionBatch.Status.DRAFT, ProductionBatch.Status.PENDING):
        raise _batch_refused(batch, gettext("only a draft or a batch waiting for approval can be cancelled."))
    was_pending = batch.status == ProductionBatch.Status.PENDING
    batch.status = ProductionBatch.Status.CANCELLED
    _batch_save(batch, actor=user, reason=gettext("cancelled"), fields=["status"])
    if was_pending:
        request = pending_request(batch, actions=[BATCH_PRODUCE])
        if request is not None:
            approval_request_cancel(approval_request=request, user=user)
    return batch


def _ensure_perm(user, permission: str, message) -> None:
    if user is None or not user.has_perm(permission):
        raise StockForbidden(message)


@transaction.atomic
def batch_receive(*, batch: ProductionBatch, user) -> ProductionBatch:
    """Receive a printed batch into headquarters' stock (cards in stock, held at HQ).

    Raise StockForbidden (no cards.receive_card_stock or not headquarters), CardOperationRefused (not
    generated, or its printer file not yet handed out: the cards cannot have been printed).
    """
    _ensure_perm(user, PERMISSION_STOCK, _("Receiving cards needs the permission to receive card stock."))
    if not user_is_hq(user):
        raise StockForbidden(_("Only headquarters receives production batches."))
    batch = _batch_lock(batch)
    if batch.status != ProductionBatch.Status.APPROVED:
        raise _batch_refused(batch, gettext("only an approved batch with its numbers can be received."))
    if batch.printer_file_at is None:
        raise _batch_refused(batch, gettext("its printer file has not been handed out, so its cards cannot have "
                                            "been printed yet."))
    moved = Card.objects.filter(batch=batch, stock_status=Card.Stock.PRODUCED).update(
        stock_status=Card.Stock.IN_STOCK, location=None, updated_at=timezone.now())
    batch.status = ProductionBatch.Status.RECEIVED
    batch.received_at = timezone.now()
    batch.received_by = user
    _batch_save(batch, actor=user,
                reason=gettext("received into headquarters' stock: %(count)s cards") % {"count": moved},
                fields=["status", "received_at", "received_by"])
    return batch


# --- the printer's file ---------------------------------------------------------------------------


def _pin_derive(key: bytes, card_no: str) -> str:
    digest = hmac.new(key, card_no.encode(), hashlib.sha256).digest()
    # 64 random bits reduced to six digits: the bias is below one in ten million million.
    return f"{int.from_bytes(digest[:8], 'big') % 1_000_000:06d}"


def _pins_store(*, batch: ProductionBatch, key: bytes) -> None:
    """Write the hash of every card's PIN, a chunk of cards at a time (keyset on the primary key)."""
    for chunk in keyset_chunks(Card.objects.filter(batch=batch), ("pk", "card_no"), size=_PIN_CHUNK):
        hashes = [(pk, pin_hash(card_no, _pin_derive(key, card_no))) for pk, card_no in chunk]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE cards_card AS c SET pin_hash = v.h, pin_failures = 0 "
                    "FROM unnest(%s::bigint[], %s::text[]) AS v(id, h) WHERE c.id = v.id",
                    [[pk for pk, _h in hashes], [h for _pk, h in hashes]],
                )
        else:
            Card.objects.bulk_update([Card(pk=pk, pin_hash=h, pin_failures=0) for pk, h in hashes],
                                     ["pin_hash", "pin_failures"], batch_size=500)


@dataclass
class PrinterFile:
    """The printer's CSV of a batch, streamed; holds the only copy of the PINs' key (never stored)."""

    batch: ProductionBatch
    with_pin: bool
    _key: bytes

    @property
    def filename(self) -> str:
        return f"printer-{self.batch.batch_no}.csv"

    def header(self) -> list[str]:
        return ["card_no", *(["pin"] if self.with_pin else []), "face_value", "product", "batch"]

    def rows(self) -> Iterator[list[str]]:
        face_value = "" if self.batch.face_value is None else str(self.batch.face_value)
        product, batch_no = self.batch.product.code, self.batch.batch_no
        numbers = (Card.objects.filter(batch=self.batch).order_by("card_no")
                   .values_list("card_no", flat=True).iterator(chunk_size=5000))
        for card_no in numbers:
            pin = [_pin_derive(self._key, card_no)] if self.with_pin else []
            yield [card_no, *pin, face_value, product, batch_no]

    def chunks(self, rows_per_chunk: int = 2000) -> Iterator[str]:
        """The file as text chunks, UTF-8 with a BOM (Chinese Excel), every cell safe from formulas."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([escape_cell(cell) for cell in self.header()])
        yield "\ufeff" + buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        count = 0
        for row in self.rows():
            writer.writerow([escape_cell(cell) for cell in row])
            count += 1
            if count % rows_per_chunk == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()


@transaction.atomic
def batch_printer_file_issue(*, batch: ProductionBatch, user) -> PrinterFile:
    """Hand out a batch's printer file, once: PINs are drawn now and only their hashes are kept.

    The caller streams the returned file after this transaction commits. Raise StockForbidden (no
    cards.download_printer_file), PrinterFileAlreadyHandedOut, CardOperationRefused (no numbers yet).
    """
    _ensure_perm(user, PERMISSION_PRINTER_FILE, _("Downloading a printer file needs its own permission."))
    batch = _batch_lock(batch)
    if batch.printer_file_at is not None:
        handed_to = ProductionBatch.objects.filter(pk=batch.pk).values_list("printer_file_by__username",
                                                                             flat=True).get()
        raise PrinterFileAlreadyHandedOut(
            batch_no=batch.batch_no, at=f"{timezone.localtime(batch.printer_file_at):%Y-%m-%d %H:%M}",
            user=handed_to or "?",
        )
    if batch.status != ProductionBatch.Status.APPROVED:
        raise _batch_refused(batch, gettext("the printer file exists once the batch is approved and numbered."))
    key = secrets.token_bytes(32)
    with_pin = batch.product.pin_required
    if with_pin:
        _pins_store(batch=batch, key=key)
    batch.printer_file_at = timezone.now()
    batch.printer_file_by = user
    _batch_save(batch, actor=user,
                reason=gettext("printer file handed out with PINs") if with_pin else gettext("printer file handed out"),
                fields=["printer_file_at", "printer_file_by"])
    return PrinterFile(batch=batch, with_pin=with_pin, _key=key)


PRINTER_FILE_REISSUE = "cards.printer_file_reissue"


@transaction.atomic
def batch_printer_file_reissue_request(*, batch: ProductionBatch, requested_by, reason: str) -> ApprovalRequest:
    """Ask for a batch's printer file to be handed out again (a download that broke, a file lost at the printer).

    Only before the batch is received: its cards are not in stock, so no card has been sold with a PIN of the
    first file. Once another person approves, the file can be downloaded once more; that download draws new
    PINs, and every PIN of the first file stops working. Raise StockForbidden (no cards.download_printer_file),
    CardOperationRefused (no file handed out yet, or the batch already received), ReasonRequired,
    ApprovalAlreadyPending.
    """
    _ensure_perm(requested_by, PERMISSION_PRINTER_FILE,
                 _("Asking for a printer file again needs the permission to download printer files."))
    batch = _batch_lock(batch)
    if batch.status != ProductionBatch.Status.APPROVED:
        raise _batch_refused(batch, gettext(
            "a printer file can be issued again only before the batch is received into stock."))
    if batch.printer_file_at is None:
        raise _batch_refused(batch, gettext("its printer file has not been handed out yet; download it instead."))
    return approval_request_submit(
        action=PRINTER_FILE_REISSUE, subject=batch, requested_by=requested_by, reason=reason,
        payload={"batch_id": batch.pk, "batch_no": batch.batch_no, "first_file_at": batch.printer_file_at,
                 "first_file_by": batch.printer_file_by_id},
    )


def _printer_file_reissue_execute(request: ApprovalRequest) -> None:
    """Allow one more download; the PINs of the first file stay valid until it draws new ones."""
    batch = _batch_lock(ProductionBatch(pk=int(request.payload["batch_id"])))
    if batch.status != ProductionBatch.Status.APPROVED or batch.printer_file_at is None:
        raise _batch_refused(batch, gettext(
            "a printer file can be issued again only before the batch is received into stock."))
    batch.printer_file_at = None
    batch.printer_file_by = None
    _batch_save(batch, actor=request.decided_by or request.requested_by,
                reason=gettext("printer file to be issued again (#%(request)s)") % {"request": request.pk},
                fields=["printer_file_at", "printer_file_by"])


registry.register(PRINTER_FILE_REISSUE, label=_("Issue a batch's printer file again (new PINs)"),
                  execute=_printer_file_reissue_execute)


# --- transfers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardSelection:
    """Cards named by number ranges (first, last) and single numbers."""

    ranges: tuple[tuple[str, str], ...] = ()
    numbers: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.ranges or self.numbers)


def card_numbers_parse(text: str, *, field: str = "cards") -> CardSelection:
    """Read ranges ("first-last") and single numbers, one per line or separated by commas or spaces.

    Raise TransferInvalid naming the field and the first bad entries.
    """
    ranges, numbers, bad = [], [], []
    for line in re.split(r"[\n\r,;，；]+", text or ""):
        line = line.strip()
        if not line:
            continue
        found = _RANGE.match(line)
        if found:
            first, last = found.groups()
            if len(first) != len(last) or first > last or not CARD_NO_PATTERN.match(first):
                bad.append(line)
            else:
                ranges.append((first, last))
            continue
        for word in line.split():
            (numbers if CARD_NO_PATTERN.match(word) else bad).append(word)
    if bad:
        raise TransferInvalid(fields={field: [gettext(
            "Not a card number or range (first-last, same length, first not after last): %(entries)s"
        ) % {"entries": ", ".join(bad[:_EXAMPLES])}]})
    if not ranges and not numbers:
        raise TransferInvalid(fields={field: [gettext("Give the cards by number range (first-last) or list.")]})
    return CardSelection(ranges=tuple(ranges), numbers=tuple(dict.fromkeys(numbers)))


def _selected(selection: CardSelection) -> QuerySet:
    condition = Q(pk__in=[])
    for first, last in selection.ranges:
        condition |= Q(card_no__range=(first, last), length=len(first))
    if selection.numbers:
        condition |= Q(card_no__in=selection.numbers)
    return Card.objects.annotate(length=Length("card_no")).filter(condition)


def _place(store: Store | None) -> str:
    return store.code if store is not None else gettext("headquarters")


def _ensure_side(user, store: Store | None, message) -> None:
    allowed = user_is_hq(user) if store is None else user_can_see_store(user, store)
    if not allowed:
        raise StockForbidden(message)


def _open_transfer_items() -> QuerySet:
    return CardTransferItem.objects.filter(
        transfer__status__in=[CardTransfer.Status.DRAFT, CardTransfer.Status.SENT])


def _unavailable_reason(card: Card, source: Store | None, in_transfer: set[int]) -> str:
    if card.status != Card.Status.INACTIVE:
        return gettext("%(card_no)s is %(status)s") % {"card_no": card.card_no, "status": card.get_status_display()}
    if card.stock_status != Card.Stock.IN_STOCK:
        return gettext("%(card_no)s is %(stock)s") % {"card_no": card.card_no, "stock": card.get_stock_status_display()}
    if card.location_id != (source.pk if source else None):
        return gettext("%(card_no)s is held at %(place)s") % {"card_no": card.card_no, "place": _place(card.location)}
    if card.pk in in_transfer:
        return gettext("%(card_no)s is already in an open transfer") % {"card_no": card.card_no}
    return ""


@transaction.atomic
def transfer_create(*, from_store: Store | None, to_store: Store, selection: CardSelection, user,
                    note: str = "") -> CardTransfer:
    """Put cards held at the source (headquarters when from_store is None) in a draft transfer to a store.

    Only inactive cards in stock at the source and in no open transfer can go. Raise StockForbidden (the
    source is not the user's), TransferInvalid naming the field and the first cards that cannot go.
    """
    _ensure_side(user, from_store, _("You can only send cards from your own stores."))
    errors: dict[str, list[str]] = {}
    if to_store is None:
        errors["to_store"] = [gettext("Choose the store receiving the cards.")]
    elif from_store is not None and to_store.pk == from_store.pk:
        errors["to_store"] = [gettext("A transfer goes to another store.")]
    elif to_store.status == Store.Status.CLOSED:
        errors["to_store"] = [gettext("Store %(store)s is closed.") % {"store": to_store.code}]
    note = (note or "").strip()
    if len(note) > _NOTE_LENGTH:
        errors["note"] = [gettext("At most %(n)s characters.") % {"n": _NOTE_LENGTH}]
    if not selection:
        errors["cards"] = [gettext("Give the cards by number range (first-last) or list.")]
    if errors:
        raise TransferInvalid(fields=errors)
    selected = _selected(selection)
    # Locked first, so a transfer created meanwhile with some of these cards is seen by the checks below.
    ids = list(selected.select_for_update(of=("self",)).order_by("pk").values_list("pk", flat=True))
    if len(ids) > MAX_TRANSFER_CARDS:
        raise TransferInvalid(fields={"cards": [gettext("A transfer holds at most %(max)s cards; this selects "
                                                         "%(count)s.") % {"max": f"{MAX_TRANSFER_CARDS:,}",
                                                                           "count": f"{len(ids):,}"}]})
    _selection_complete(selection)
    in_transfer = _open_transfer_items().filter(card__in=selected.values("pk"))
    available = Q(status=Card.Status.INACTIVE, stock_status=Card.Stock.IN_STOCK, location=from_store)
    unavailable = selected.filter(~available | Q(pk__in=in_transfer.values("card_id"))).order_by("card_no")
    count = unavailable.count()
    if count:
        examples = list(unavailable.select_related("location")[:_EXAMPLES])
        busy = set(in_transfer.filter(card__in=examples).values_list("card_id", flat=True))
        raise TransferInvalid(fields={"cards": [gettext(
            "%(count)s of the selected cards cannot be sent from %(place)s: %(reasons)s"
        ) % {"count": count, "place": _place(from_store),
             "reasons": "; ".join(_unavailable_reason(card, from_store, busy) for card in examples)}]})
    transfer = CardTransfer(from_store=from_store, to_store=to_store, created_by=user, note=note, card_count=len(ids))
    _create_numbered(transfer, field="transfer_no", letters="TR", actor=user)
    CardTransferItem.objects.bulk_create((CardTransferItem(transfer=transfer, card_id=pk) for pk in ids),
                                         batch_size=5000)
    return transfer


def _selection_complete(selection: CardSelection) -> None:
    """Refuse listed numbers that are no card and ranges holding none, naming them."""
    errors = []
    if selection.numbers:
        found = set(Card.objects.filter(card_no__in=selection.numbers).values_list("card_no", flat=True))
        missing = [number for number in selection.numbers if number not in found]
        if missing:
            errors.append(gettext("no card with number %(numbers)s") % {"numbers": ", ".join(missing[:_EXAMPLES])})
    for first, last in selection.ranges:
        if not _selected(CardSelection(ranges=((first, last),))).exists():
            errors.append(gettext("no card in %(first)s-%(last)s") % {"first": first, "last": last})
    if errors:
        raise TransferInvalid(fields={"cards": ["; ".join(errors)]})


def _transfer_lock(transfer: CardTransfer) -> CardTransfer:
    return (CardTransfer.objects.select_for_update(of=("self",)).select_related("from_store", "to_store")
            .get(pk=transfer.pk))


def _transfer_refused(transfer: CardTransfer, reason: str) -> CardOperationRefused:
    return CardOperationRefused(reason=gettext("transfer %(transfer_no)s is %(status)s; %(reason)s") % {
        "transfer_no": transfer.transfer_no, "status": transfer.get_status_display(), "reason": reason})


def _transfer_save(transfer: CardTransfer, *, actor, reason: str, fields: list[str]) -> None:
    transfer._history_user = actor
    transfer._change_reason = reason[:100]
    transfer.save(update_fields=fields)


def _transfer_cards(transfer: CardTransfer) -> QuerySet:
    return Card.objects.filter(pk__in=CardTransferItem.objects.filter(transfer=transfer).values("card_id"))


@transaction.atomic
def transfer_send(*, transfer: CardTransfer, user) -> CardTransfer:
    """Send a draft transfer: its cards are in transit to the receiving store.

    Raise StockForbidden (permission, or not the user's source), CardOperationRefused (not a draft, or some
    cards were sold or moved since: named).
    """
    _ensure_perm(user, PERMISSION_STOCK, _("Sending cards needs the permission to receive and send card stock."))
    transfer = _transfer_lock(transfer)
    _ensure_side(user, transfer.from_store, _("You can only send cards from your own stores."))
    if transfer.status != CardTransfer.Status.DRAFT:
        raise _transfer_refused(transfer, gettext("only a draft can be sent."))
    cards = _transfer_cards(transfer)
    moved = cards.filter(status=Card.Status.INACTIVE, stock_status=Card.Stock.IN_STOCK,
                         location=transfer.from_store).update(
        stock_status=Card.Stock.IN_TRANSIT, location=transfer.to_store, updated_at=timezone.now())
    if moved != transfer.card_count:
        gone = (cards.exclude(stock_status=Card.Stock.IN_TRANSIT, location=transfer.to_store)
                .order_by("card_no").values_list("card_no", flat=True)[:_EXAMPLES])
        missing = transfer.card_count - moved
        raise _transfer_refused(transfer, ngettext(
            "%(count)s card is no longer in stock at %(place)s (%(numbers)s); cancel it and create it again.",
            "%(count)s cards are no longer in stock at %(place)s (%(numbers)s); cancel it and create it again.",
            missing,
        ) % {"count": missing, "place": _place(transfer.from_store), "numbers": ", ".join(gone)})
    transfer.status = CardTransfer.Status.SENT
    transfer.sent_at = timezone.now()
    transfer.sent_by = user
    _transfer_save(transfer, actor=user, reason=gettext("sent: %(count)s cards") % {"count": moved},
                   fields=["status", "sent_at", "sent_by"])
    return transfer


@transaction.atomic
def transfer_receive(*, transfer: CardTransfer, user) -> CardTransfer:
    """Receive a sent transfer at its store: its cards are in stock there.

    Raise StockForbidden (permission, or not the user's store), CardOperationRefused (not sent).
    """
    _ensure_perm(user, PERMISSION_STOCK, _("Receiving cards needs the permission to receive card stock."))
    transfer = _transfer_lock(transfer)
    _ensure_side(user, transfer.to_store, _("You can only receive cards at your own stores."))
    if transfer.status != CardTransfer.Status.SENT:
        raise _transfer_refused(transfer, gettext("only a sent transfer can be received."))
    moved = _transfer_cards(transfer).filter(stock_status=Card.Stock.IN_TRANSIT, location=transfer.to_store).update(
        stock_status=Card.Stock.IN_STOCK, updated_at=timezone.now())
    transfer.status = CardTransfer.Status.RECEIVED
    transfer.received_at = timezone.now()
    transfer.received_by = user
    _transfer_save(transfer, actor=user, reason=gettext("received: %(count)s cards") % {"count": moved},
                   fields=["status", "received_at", "received_by"])
    return transfer


@transaction.atomic
def transfer_cancel(*, transfer: CardTransfer, user) -> CardTransfer:
    """Cancel a transfer not yet sent; its cards are free for another. Raise StockForbidden, CardOperationRefused."""
    transfer = _transfer_lock(transfer)
    _ensure_side(user, transfer.from_store, _("You can only cancel transfers from your own stores."))
    if transfer.status != CardTransfer.Status.DRAFT:
        raise _transfer_refused(transfer, gettext("only a transfer not yet sent can be cancelled."))
    transfer.status = CardTransfer.Status.CANCELLED
    _transfer_save(transfer, actor=user, reason=gettext("cancelled"), fields=["status"])
    return transfer
