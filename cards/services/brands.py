"""Brand partners and brand card programmes: start through approval, eligible SKU lists from Excel.

A programme is created as a draft, gets a confirmed SKU list, and is submitted for approval
("cards.programme_start"); another person with cards.approve_brand_programme starts it, in the approval's
transaction. Its terms (rate, share, caps, dates) are frozen once it waits for approval: a programme with other
terms is a new programme, so every discount ever given is explained by the terms it was given under.

SKU lists are versions dated from when they apply. An upload is checked whole (a file with one bad row writes
nothing), stored as a staged list for the preview, and applies only once a person confirms it. A list never
applies before the day it is confirmed, so what applied on a past day never changes afterwards.
"""

import os
import re
import tempfile
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.services import approval_request_submit
from cards.errors import CardOperationRefused, ProgrammeForbidden, ProgrammeInvalid, SkuListInvalid
from cards.models import Brand, BrandProgramme, BrandSku, BrandSkuList, CardProduct
from cards.services.brand_discounts import sku_list_in_force
from cards.services.ledger import money_clean
from core.errors import TableInvalid, ValidationFailed
from core.tabular import Column, TableReader
from stores.queries import user_is_hq

__all__ = [
    "CODE_PATTERN",
    "EDITABLE_STATUSES",
    "PROGRAMME_START",
    "SKU_LIST_STATUSES",
    "TERMS",
    "SKU_COLUMNS",
    "ProgrammeForbidden",
    "ProgrammeInvalid",
    "SkuListDiff",
    "SkuListInvalid",
    "percent",
    "programme_create",
    "programme_editable_fields",
    "programme_end",
    "programme_submit",
    "programme_update",
    "programme_values_clean",
    "sku_list_confirm",
    "sku_list_diff",
    "sku_list_discard",
    "sku_list_in_force",
    "sku_list_stage",
]

PROGRAMME_START = "cards.programme_start"
PERMISSION_ADD = "cards.add_brandprogramme"
PERMISSION_CHANGE = "cards.change_brandprogramme"

# The terms of a programme, in the order forms show them.
TERMS = ("code", "name", "brand", "product", "discount_rate", "brand_share", "cap_per_receipt", "cap_per_card",
         "starts_on", "ends_on", "note")
# What may still change once a programme runs: its terms were approved as they are.
ACTIVE_EDITABLE = ("name", "note")
EDITABLE_STATUSES = (BrandProgramme.Status.DRAFT, BrandProgramme.Status.REJECTED)
SKU_LIST_STATUSES = (BrandProgramme.Status.DRAFT, BrandProgramme.Status.REJECTED, BrandProgramme.Status.ACTIVE)

SKU_COLUMNS = (
    Column("sku", "商品编码", required=True, aliases=("条码", "商品条码", "条形码", "barcode")),
    Column("name", "商品名称", aliases=("品名", "product name")),
)
SKU_FILE_TYPES = (".xlsx", ".csv")
MAX_SKU_FILE_BYTES = 20 * 1024 * 1024
MAX_SKUS = 200_000
PREVIEW_ROWS = 50
_SKU_LENGTH = BrandSku._meta.get_field("sku").max_length
_SKU_NAME_LENGTH = BrandSku._meta.get_field("name").max_length
_FILE_NAME_LENGTH = BrandSkuList._meta.get_field("file_name").max_length
CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_-]*$")
_CODE_LENGTH = BrandProgramme._meta.get_field("code").max_length
_NAME_LENGTH = BrandProgramme._meta.get_field("name").max_length
_NOTE_LENGTH = BrandProgramme._meta.get_field("note").max_length
# A barcode Excel turned into a number and shortened (6.9E+12) is lost: it cannot be read back.
_SHORTENED_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?[eE]\+?[0-9]+$")
_RATE_PLACES = Decimal("0.0001")
_PROBLEMS_SHOWN = 20
_COPY_CHUNK = 1024 * 1024
_INSERT_BATCH = 2000


# --- who may ----------------------------------------------------------------------------------------


def _ensure_may(user, permission: str) -> None:
    if user is None or not user_is_hq(user) or not user.has_perm(permission):
        raise ProgrammeForbidden()


# --- programmes -------------------------------------------------------------------------------------


def _rate_clean(value, *, field: str, low: Decimal, high: Decimal, open_range: bool, errors: dict) -> Decimal | None:
    try:
        rate = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        rate = None
    if rate is None or not rate.is_finite():
        errors[field] = [gettext("Write a decimal such as 0.05 for 5%.")]
        return None
    if rate != rate.quantize(_RATE_PLACES):
        errors[field] = [gettext("At most four decimals (0.0525 is 5.25%).")]
        return None
    if open_range and not low < rate < high:
        errors[field] = [gettext("Between %(low)s and %(high)s, both excluded (0.05 is 5%%).")
                         % {"low": low, "high": high}]
        return None
    if not open_range and not low <= rate <= high:
        errors[field] = [gettext("Between %(low)s and %(high)s (1 means the brand pays all of it).")
                         % {"low": low, "high": high}]
        return None
    return rate.quantize(_RATE_PLACES)


def _cap_clean(value, *, field: str, errors: dict) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return money_clean(value, field=field)
    except ValidationFailed as error:
        errors.update(error.fields or {field: [str(error)]})
        return None


def _text_clean(value, *, field: str, limit: int, required: bool, errors: dict, missing=None) -> str:
    text = (value or "").strip()
    if required and not text:
        errors[field] = [missing or gettext("This field is required.")]
    elif len(text) > limit:
        errors[field] = [gettext("At most %(n)s characters.") % {"n": limit}]
    return text


def programme_values_clean(*, code: str, name: str, brand: Brand | None, product: CardProduct | None, discount_rate,
                           starts_on: date | None, brand_share=Decimal("1"), cap_per_receipt=None, cap_per_card=None,
                           ends_on: date | None = None, note: str = "",
                           programme: BrandProgramme | None = None) -> dict:
    """Check a programme's terms; return them cleaned. Raise ProgrammeInvalid naming each field."""
    errors: dict[str, list[str]] = {}
    code = _text_clean(code, field="code", limit=_CODE_LENGTH, required=True, errors=errors,
                       missing=gettext("Give the programme a code, e.g. HT2026."))
    if code and "code" not in errors:
        code = code.upper()
        if not CODE_PATTERN.match(code):
            errors["code"] = [gettext("Letters A-Z, digits, - and _ only, e.g. HT2026.")]
        elif BrandProgramme.objects.filter(code=code).exclude(pk=programme.pk if programme else None).exists():
            errors["code"] = [gettext("Programme %(code)s already exists.") % {"code": code}]
    name = _text_clean(name, field="name", limit=_NAME_LENGTH, required=True, errors=errors)
    note = _text_clean(note, field="note", limit=_NOTE_LENGTH, required=False, errors=errors)
    if brand is None:
        errors["brand"] = [gettext("Choose the brand partner.")]
    if product is None:
        errors["product"] = [gettext("Choose the card product whose cards get the discount.")]
    elif brand is not None and product.brand_id != brand.pk:
        errors["product"] = [gettext(
            "Card product %(product)s is not a %(brand)s card; set its brand to %(brand)s first (card products)."
        ) % {"product": product.code, "brand": brand.code}]
    rate = _rate_clean(discount_rate, field="discount_rate", low=Decimal("0"), high=Decimal("1"), open_range=True,
                       errors=errors)
    share = _rate_clean(Decimal("1") if brand_share in (None, "") else brand_share, field="brand_share",
                        low=Decimal("0"), high=Decimal("1"), open_range=False, errors=errors)
    cap_per_receipt = _cap_clean(cap_per_receipt, field="cap_per_receipt", errors=errors)
    cap_per_card = _cap_clean(cap_per_card, field="cap_per_card", errors=errors)
    if cap_per_receipt is not None and cap_per_card is not None and cap_per_card < cap_per_receipt:
        errors["cap_per_card"] = [gettext("The cap per card cannot be below the cap per receipt (%(cap)s).")
                                  % {"cap": cap_per_receipt}]
    if starts_on is None:
        errors["starts_on"] = [gettext("Give the first day of the programme.")]
    elif ends_on is not None and ends_on < starts_on:
        errors["ends_on"] = [gettext("The programme cannot end before it starts (%(day)s).") % {"day": starts_on}]
    if brand is not None and starts_on is not None and "ends_on" not in errors:
        errors.update(_contract_errors(brand, starts_on, ends_on))
    if errors:
        raise ProgrammeInvalid(fields=errors)
    return {"code": code, "name": name, "brand": brand, "product": product, "discount_rate": rate,
            "brand_share": share, "cap_per_receipt": cap_per_receipt, "cap_per_card": cap_per_card,
            "starts_on": starts_on, "ends_on": ends_on, "note": note}


def _contract_errors(brand: Brand, starts_on: date, ends_on: date | None) -> dict[str, list[str]]:
    """The brand funds discounts only under its contract: the programme lies within the contract period."""
    errors = {}
    if brand.contract_starts_on and starts_on < brand.contract_starts_on:
        errors["starts_on"] = [gettext("%(brand)s's contract starts on %(day)s; the programme cannot start earlier.")
                               % {"brand": brand.code, "day": brand.contract_starts_on}]
    if brand.contract_ends_on and (ends_on is None or ends_on > brand.contract_ends_on):
        errors["ends_on"] = [gettext("%(brand)s's contract ends on %(day)s; the programme must end by then.")
                             % {"brand": brand.code, "day": brand.contract_ends_on}]
    return errors


def programme_editable_fields(programme: BrandProgramme | None) -> tuple[str, ...]:
    """The terms a person may still change: all of them before approval, name and note while it runs."""
    if programme is None or programme.status in EDITABLE_STATUSES:
        return TERMS
    if programme.status == BrandProgramme.Status.ACTIVE:
        return ACTIVE_EDITABLE
    return ()


def _save(programme: BrandProgramme, *, actor, reason: str, fields: list[str] | None = None) -> None:
    programme._history_user = actor
    programme._change_reason = reason[:100]
    programme.save(update_fields=fields)


def _lock(programme: BrandProgramme) -> BrandProgramme:
    return BrandProgramme.objects.select_for_update(of=("self",)).select_related("brand", "product").get(
        pk=programme.pk)


def _refused(programme: BrandProgramme, reason: str) -> CardOperationRefused:
    return CardOperationRefused(reason=gettext("programme %(code)s is %(status)s; %(reason)s") % {
        "code": programme.code, "status": programme.get_status_display(), "reason": reason})


@transaction.atomic
def programme_create(*, code: str, name: str, brand: Brand, product: CardProduct, discount_rate, starts_on: date,
                     created_by, brand_share=Decimal("1"), cap_per_receipt=None, cap_per_card=None,
                     ends_on: date | None = None, note: str = "") -> BrandProgramme:
    """Create a draft programme. Raise ProgrammeForbidden, ProgrammeInvalid naming the field."""
    _ensure_may(created_by, PERMISSION_ADD)
    values = programme_values_clean(
        code=code, name=name, brand=brand, product=product, discount_rate=discount_rate, brand_share=brand_share,
        cap_per_receipt=cap_per_receipt, cap_per_card=cap_per_card, starts_on=starts_on, ends_on=ends_on, note=note,
    )
    programme = BrandProgramme(**values, created_by=created_by, status=BrandProgramme.Status.DRAFT)
    _save(programme, actor=created_by, reason=gettext("created as a draft"))
    return programme


@transaction.atomic
def programme_update(*, programme: BrandProgramme, data: dict, user) -> BrandProgramme:
    """Change a programme's terms (any before approval; name and note while it runs).

    Raise ProgrammeForbidden, CardOperationRefused (a term that can no longer change), ProgrammeInvalid.
    """
    _ensure_may(user, PERMISSION_CHANGE)
    unknown = set(data) - set(TERMS)
    if unknown:
        raise ProgrammeInvalid(fields={name: [gettext("Not a term of a programme.")] for name in sorted(unknown)})
    programme = _lock(programme)
    editable = programme_editable_fields(programme)
    if editable == TERMS:
        values = programme_values_clean(**{name: data.get(name, getattr(programme, name)) for name in TERMS},
                                        programme=programme)
    else:
        values = {**{name: getattr(programme, name) for name in TERMS}, **data}
        errors: dict[str, list[str]] = {}
        for name in ACTIVE_EDITABLE:
            limit = BrandProgramme._meta.get_field(name).max_length
            values[name] = _text_clean(values[name], field=name, limit=limit, required=name == "name", errors=errors)
        if errors:
            raise ProgrammeInvalid(fields=errors)
    changed = [name for name in TERMS if values[name] != getattr(programme, name)]
    frozen = [name for name in changed if name not in editable]
    if frozen:
        raise _refused(programme, gettext("these terms can no longer change: %(fields)s. End it and start a new "
                                          "programme with other terms.") % {
            "fields": ", ".join(str(BrandProgramme._meta.get_field(name).verbose_name) for name in frozen)})
    if not changed:
        return programme
    for name in changed:
        setattr(programme, name, values[name])
    _save(programme, actor=user, reason=gettext("changed: %(fields)s") % {"fields": ", ".join(changed)}, fields=changed)
    return programme


def _overlapping(programme: BrandProgramme, statuses) -> BrandProgramme | None:
    others = BrandProgramme.objects.filter(product_id=programme.product_id, status__in=statuses).exclude(
        pk=programme.pk).filter(Q(ends_on__isnull=True) | Q(ends_on__gte=programme.starts_on))
    if programme.ends_on is not None:
        others = others.filter(starts_on__lte=programme.ends_on)
    return others.order_by("starts_on", "pk").first()


def _start_problems(programme: BrandProgramme, *, against) -> list[str]:
    """Why the programme cannot start now (empty when it can): checked on submitting and again on approval."""
    problems = []
    brand, product = programme.brand, programme.product
    if not brand.is_active:
        problems.append(gettext("brand partner %(brand)s is not active") % {"brand": brand.code})
    if product.brand_id != brand.pk:
        problems.append(gettext("card product %(product)s is not a %(brand)s card")
                        % {"product": product.code, "brand": brand.code})
    if not product.is_active:
        problems.append(gettext("card product %(product)s is not active") % {"product": product.code})
    today = timezone.localdate()
    if programme.ends_on is not None and programme.ends_on < today:
        problems.append(gettext("it ended on %(day)s") % {"day": programme.ends_on})
    problems.extend(" ".join(messages).rstrip(".") for messages in
                    _contract_errors(brand, programme.starts_on, programme.ends_on).values())
    if not programme.sku_lists.filter(confirmed_at__isnull=False).exists():
        problems.append(gettext("it has no confirmed SKU list: upload the brand's SKUs and confirm them first"))
    other = _overlapping(programme, against)
    if other is not None:
        problems.append(gettext(
            "programme %(other)s (%(status)s, from %(starts_on)s to %(ends_on)s) already covers these dates for "
            "card product %(product)s"
        ) % {"other": other.code, "status": other.get_status_display(), "starts_on": other.starts_on,
             "ends_on": other.ends_on or gettext("no end"), "product": product.code})
    return problems


def _cannot_start(programme: BrandProgramme, problems: list[str]) -> CardOperationRefused:
    return CardOperationRefused(reason=gettext("programme %(code)s cannot start: %(problems)s.") % {
        "code": programme.code, "problems": "; ".join(problems)})


@transaction.atomic
def programme_submit(*, programme: BrandProgramme, requested_by, reason: str = "") -> ApprovalRequest:
    """Ask for a draft (or rejected) programme to start; it starts when another person approves.

    Raise ProgrammeForbidden, CardOperationRefused (status, or why it cannot start: brand, product, no
    confirmed SKU list, dates covered by another programme), ApprovalAlreadyPending.
    """
    _ensure_may(requested_by, PERMISSION_CHANGE)
    programme = _lock(programme)
    if programme.status not in EDITABLE_STATUSES:
        raise _refused(programme, gettext("only a draft or a rejected programme can be submitted for approval."))
    problems = _start_problems(programme, against=(BrandProgramme.Status.ACTIVE, BrandProgramme.Status.PENDING))
    if problems:
        raise _cannot_start(programme, problems)
    programme.status = BrandProgramme.Status.PENDING
    _save(programme, actor=requested_by, reason=gettext("submitted for approval"), fields=["status"])
    sku_list = sku_list_in_force(programme, max(programme.starts_on, timezone.localdate()))
    reason = (reason or "").strip() or gettext(
        "Start programme %(code)s: %(rate)s%% off %(brand)s SKUs paid with %(product)s cards, from %(starts_on)s."
    ) % {"code": programme.code, "rate": percent(programme.discount_rate), "brand": programme.brand.code,
         "product": programme.product.code, "starts_on": programme.starts_on}
    return approval_request_submit(
        action=PROGRAMME_START, subject=programme, requested_by=requested_by, reason=reason,
        payload={"programme_id": programme.pk, "code": programme.code, "brand": programme.brand.code,
                 "product": programme.product.code, "discount_rate": programme.discount_rate,
                 "brand_share": programme.brand_share, "cap_per_receipt": programme.cap_per_receipt,
                 "cap_per_card": programme.cap_per_card, "starts_on": programme.starts_on,
                 "ends_on": programme.ends_on, "sku_count": sku_list.sku_count if sku_list else None},
    )


def percent(rate: Decimal) -> str:
    """A rate as a percentage without trailing zeros: 0.0500 -> "5"."""
    return format((rate * 100).normalize(), "f")


def _programme_start_execute(request: ApprovalRequest) -> None:
    """Start the approved programme, in the approval's transaction; its checks are made again under lock."""
    programme_id = int(request.payload["programme_id"])
    product_id = BrandProgramme.objects.filter(pk=programme_id).values_list("product_id", flat=True).get()
    # The product's row serialises approvals of its programmes, so two overlapping ones never both start.
    list(CardProduct.objects.select_for_update().filter(pk=product_id).values_list("pk", flat=True))
    programme = _lock(BrandProgramme(pk=programme_id))
    if programme.status != BrandProgramme.Status.PENDING:
        raise _refused(programme, gettext("only a programme waiting for approval can start."))
    problems = _start_problems(programme, against=(BrandProgramme.Status.ACTIVE,))
    if problems:
        raise _cannot_start(programme, problems)
    programme.status = BrandProgramme.Status.ACTIVE
    programme.approved_at = timezone.now()
    _save(programme, actor=request.decided_by or request.requested_by,
          reason=gettext("approved (#%(request)s)") % {"request": request.pk}, fields=["status", "approved_at"])


def _programme_start_reject(request: ApprovalRequest) -> None:
    programme = _lock(BrandProgramme(pk=int(request.payload["programme_id"])))
    if programme.status != BrandProgramme.Status.PENDING:
        return
    programme.status = BrandProgramme.Status.REJECTED
    _save(programme, actor=request.decided_by or request.requested_by,
          reason=gettext("not approved (#%(request)s)") % {"request": request.pk}, fields=["status"])


registry.register(PROGRAMME_START, label=_("Start a brand card programme"), execute=_programme_start_execute,
                  on_reject=_programme_start_reject)


@transaction.atomic
def programme_end(*, programme: BrandProgramme, user, reason: str = "") -> BrandProgramme:
    """End a running programme now: no discount from this moment. Raise ProgrammeForbidden, CardOperationRefused."""
    _ensure_may(user, PERMISSION_CHANGE)
    programme = _lock(programme)
    if programme.status != BrandProgramme.Status.ACTIVE:
        raise _refused(programme, gettext("only an active programme can be ended."))
    programme.status = BrandProgramme.Status.ENDED
    programme.ended_at = timezone.now()
    ended = (gettext("ended: %(reason)s") % {"reason": reason.strip()} if reason and reason.strip()
             else gettext("ended"))
    _save(programme, actor=user, reason=ended,
          fields=["status", "ended_at"])
    return programme


# --- SKU lists --------------------------------------------------------------------------------------


def _valid_from_problem(programme: BrandProgramme, valid_from: date | None) -> str:
    if valid_from is None:
        return gettext("Give the day the list applies from.")
    today = timezone.localdate()
    if valid_from < today:
        return gettext("A list applies from today (%(today)s) or a later day, never from a past day.") % {
            "today": today}
    if valid_from < programme.starts_on:
        return gettext("The programme starts on %(day)s; its list cannot apply earlier.") % {
            "day": programme.starts_on}
    if programme.ends_on is not None and valid_from > programme.ends_on:
        return gettext("The programme ends on %(day)s; its list cannot apply later.") % {"day": programme.ends_on}
    return ""


def _lock_for_list(programme: BrandProgramme, *, user) -> BrandProgramme:
    _ensure_may(user, PERMISSION_CHANGE)
    programme = _lock(programme)
    if programme.status not in SKU_LIST_STATUSES:
        raise _refused(programme, gettext(
            "its SKU lists change only before it is submitted, once rejected, or while it runs."))
    return programme


def _file_copy(file, path: str) -> int:
    """Write the upload to `path`; return its size. Raise SkuListInvalid when it is too large."""
    size = 0
    if isinstance(file, bytes | bytearray):
        chunks = [bytes(file)]
    elif hasattr(file, "chunks"):
        chunks = file.chunks()
    else:
        chunks = iter(lambda: file.read(_COPY_CHUNK), b"")
    with open(path, "wb") as handle:
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_SKU_FILE_BYTES:
                raise SkuListInvalid(fields={"file": [gettext("The file is larger than %(mb)s MB.")
                                                      % {"mb": MAX_SKU_FILE_BYTES // (1024 * 1024)}]})
            handle.write(chunk)
    return size


def _expected_columns() -> str:
    return gettext("sku (or SKU, 商品编码, 条码) and, optionally, name (商品名称)")


def _sku_rows(path: str, file_name: str) -> list[tuple[str, str]]:
    """The SKUs and names of a file, all or nothing. Raise SkuListInvalid naming every bad row."""
    problems: list[str] = []
    first_row: dict[str, int] = {}
    rows: list[tuple[str, str]] = []
    try:
        with TableReader(path, SKU_COLUMNS) as reader:
            for row in reader:
                sku, name = row.values.get("sku", ""), row.values.get("name", "")
                problem = _sku_problem(sku, name)
                if not problem and sku in first_row:
                    problem = gettext("SKU %(sku)s repeats row %(first)s") % {"sku": sku, "first": first_row[sku]}
                if problem:
                    problems.append(gettext("row %(row)s: %(problem)s") % {"row": row.number, "problem": problem})
                    continue
                first_row[sku] = row.number
                rows.append((sku, name))
                if len(rows) > MAX_SKUS:
                    raise SkuListInvalid(fields={"file": [gettext(
                        "A list holds at most %(max)s SKUs; this file has more.") % {"max": f"{MAX_SKUS:,}"}]})
    except TableInvalid as error:
        raise SkuListInvalid(fields={"file": [gettext("%(problem)s The file needs the columns %(columns)s.") % {
            "problem": error, "columns": _expected_columns()}]})
    if problems:
        shown = problems[:_PROBLEMS_SHOWN]
        if len(problems) > len(shown):
            shown.append(ngettext("… and %(count)s more row with a problem.", "… and %(count)s more rows with "
                                  "problems.", len(problems) - len(shown)) % {"count": len(problems) - len(shown)})
        raise SkuListInvalid(
            ngettext("%(name)s was not imported: %(count)s row has a problem; nothing was saved.",
                     "%(name)s was not imported: %(count)s rows have problems; nothing was saved.", len(problems)),
            fields={"file": shown}, name=file_name, count=len(problems),
        )
    if not rows:
        raise SkuListInvalid(fields={"file": [gettext(
            "%(name)s has no SKUs under its header row.") % {"name": file_name}]})
    return rows


def _sku_problem(sku: str, name: str) -> str:
    if not sku:
        return gettext("the SKU is empty")
    if len(sku) > _SKU_LENGTH:
        return gettext("the SKU is longer than %(n)s characters") % {"n": _SKU_LENGTH}
    if not sku.isprintable():
        return gettext("the SKU %(sku)r holds characters that are not printable (tab, line break, control "
                       "characters)") % {"sku": sku}
    if _SHORTENED_NUMBER.match(sku):
        return gettext("%(sku)s is a number Excel shortened; format the column as text, type the SKUs again "
                       "and save") % {"sku": sku}
    if len(name) > _SKU_NAME_LENGTH:
        return gettext("the product name is longer than %(n)s characters") % {"n": _SKU_NAME_LENGTH}
    return ""


@transaction.atomic
def sku_list_stage(*, programme: BrandProgramme, file, file_name: str, valid_from: date, user) -> BrandSkuList:
    """Read an SKU file (xlsx or CSV) and store it as a staged list for the preview; it applies once confirmed.

    Raise ProgrammeForbidden, CardOperationRefused (status), SkuListInvalid naming the field (file, valid_from)
    and every bad row; nothing is written then.
    """
    programme = _lock_for_list(programme, user=user)
    file_name = os.path.basename(str(file_name or "").replace("\\", "/")).strip()
    extension = os.path.splitext(file_name)[1].lower()
    if extension not in SKU_FILE_TYPES:
        raise SkuListInvalid(fields={"file": [gettext(
            "%(name)s is not an .xlsx or .csv file; save it from Excel as one of them.") % {
            "name": file_name or gettext("The file")}]})
    problem = _valid_from_problem(programme, valid_from)
    if problem:
        raise SkuListInvalid(fields={"valid_from": [problem]})
    with tempfile.TemporaryDirectory(prefix="sku-list-") as folder:
        # The staff's own file name, so the reader's messages name the file they chose.
        path = os.path.join(folder, file_name)
        _file_copy(file, path)
        rows = _sku_rows(path, file_name)
    sku_list = BrandSkuList.objects.create(
        programme=programme, valid_from=valid_from, file_name=file_name[:_FILE_NAME_LENGTH], sku_count=len(rows),
        created_by=user,
    )
    _skus_insert(sku_list, rows)
    return sku_list


def _skus_insert(sku_list: BrandSkuList, rows: list[tuple[str, str]]) -> None:
    """Insert a list's SKUs in bulk: COPY on PostgreSQL, one prepared INSERT otherwise (no model per row)."""
    table = connection.ops.quote_name(BrandSku._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(BrandSku._meta.get_field(name).column)
                        for name in ("sku_list", "sku", "name"))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for sku, name in rows:
                    copy.write_row((sku_list.pk, sku, name))
        else:
            for start in range(0, len(rows), _INSERT_BATCH):
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s)",  # noqa: S608
                                   [(sku_list.pk, sku, name) for sku, name in rows[start:start + _INSERT_BATCH]])


def _lock_staged(sku_list: BrandSkuList, *, user) -> tuple[BrandSkuList, BrandProgramme]:
    programme = _lock_for_list(BrandProgramme(pk=sku_list.programme_id), user=user)
    sku_list = BrandSkuList.objects.select_for_update().get(pk=sku_list.pk)
    if sku_list.confirmed_at is not None:
        raise CardOperationRefused(reason=gettext("the SKU list applying from %(day)s was already confirmed.") % {
            "day": sku_list.valid_from})
    return sku_list, programme


@transaction.atomic
def sku_list_confirm(*, sku_list: BrandSkuList, user) -> BrandSkuList:
    """Confirm a staged list: it applies from its day on. Raise ProgrammeForbidden, CardOperationRefused."""
    sku_list, programme = _lock_staged(sku_list, user=user)
    problem = _valid_from_problem(programme, sku_list.valid_from)
    if problem:
        raise CardOperationRefused(reason=gettext("%(problem)s Upload the file again with another day.") % {
            "problem": problem})
    sku_list.confirmed_at = timezone.now()
    sku_list.confirmed_by = user
    sku_list.save(update_fields=["confirmed_at", "confirmed_by"])
    return sku_list


@transaction.atomic
def sku_list_discard(*, sku_list: BrandSkuList, user) -> None:
    """Throw a staged list away. Raise ProgrammeForbidden, CardOperationRefused (already confirmed)."""
    sku_list, _programme = _lock_staged(sku_list, user=user)
    BrandSku.objects.filter(sku_list=sku_list).delete()
    sku_list.delete()


@dataclass(frozen=True)
class SkuListDiff:
    """How a list differs from the one it replaces: counts and a few examples of each side."""

    base: BrandSkuList | None
    added_count: int
    removed_count: int
    added: list[tuple[str, str]]
    removed: list[tuple[str, str]]


def sku_list_diff(sku_list: BrandSkuList, *, sample: int = 20) -> SkuListDiff:
    """Compare a list with the confirmed list in force on its first day (other than itself), in the database."""
    base = (BrandSkuList.objects.filter(programme_id=sku_list.programme_id, confirmed_at__isnull=False,
                                        valid_from__lte=sku_list.valid_from)
            .exclude(pk=sku_list.pk).order_by("-valid_from", "-confirmed_at", "-pk").first())
    skus = BrandSku.objects.filter(sku_list=sku_list)
    if base is None:
        added = skus
        removed = BrandSku.objects.none()
    else:
        base_skus = BrandSku.objects.filter(sku_list=base)
        added = skus.exclude(sku__in=base_skus.values("sku"))
        removed = base_skus.exclude(sku__in=skus.values("sku"))
    return SkuListDiff(
        base=base, added_count=added.count(), removed_count=removed.count(),
        added=list(added.order_by("sku").values_list("sku", "name")[:sample]),
        removed=list(removed.order_by("sku").values_list("sku", "name")[:sample]),
    )
