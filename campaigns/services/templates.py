"""Coupon templates: the rules their terms keep, their lifecycle and their SKU lists.

A template is created as a draft. Starting it goes through the approvals engine ("campaigns.coupon_template_start",
amount = its total budget): without a policy for that amount it starts at once, otherwise it waits for another
person's approval and starts in the approval's transaction. Its terms are frozen from then on (the admin shows
them read-only): a paused template resumes without a new approval because nothing it was approved with changed.
An SKU list is read whole from Excel or CSV and replaces the template's list; a file with a bad row writes nothing.
"""

import os
import re
import tempfile
from collections.abc import Mapping
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from approvals import registry
from approvals.models import ApprovalRequest
from approvals.services import approval_request_submit
from campaigns.errors import CouponInvalid
from campaigns.models import CouponSku, CouponTemplate
from core.errors import TableInvalid
from core.tabular import Column, TableReader

__all__ = [
    "COUPON_TEMPLATE_START",
    "EDITABLE_WHILE_RUNNING",
    "SKU_COLUMNS",
    "coupon_skus_import",
    "coupon_template_end",
    "coupon_template_pause",
    "coupon_template_start",
    "coupon_template_validate",
]

COUPON_TEMPLATE_START = "campaigns.coupon_template_start"
# What may still change once a template left the draft: its terms were approved (or started) as they are.
EDITABLE_WHILE_RUNNING = ("name", "description")
SKU_COLUMNS = (Column("sku", "商品编码", required=True, aliases=("条码", "商品条码", "barcode")),)
SKU_FILE_TYPES = (".xlsx", ".csv")
MAX_SKU_FILE_BYTES = 20 * 1024 * 1024
MAX_SKUS = 200_000
_SKU_LENGTH = CouponSku._meta.get_field("sku").max_length
_CODE_WORD = re.compile(r"^[A-Z0-9]*$")
# A barcode Excel turned into a number and shortened (6.9E+12) is lost: it cannot be read back.
_SHORTENED_NUMBER = re.compile(r"^[0-9]+(\.[0-9]+)?[eE]\+?[0-9]+$")
_PROBLEMS_SHOWN = 20
_INSERT_BATCH = 2000
_COPY_CHUNK = 1024 * 1024
ZERO = Decimal("0")
HUNDRED = Decimal("100")


# --- the terms --------------------------------------------------------------------------------------------------


def _number(values: Mapping, name: str) -> Decimal:
    value = values.get(name)
    return ZERO if value in (None, "") else Decimal(value)


def coupon_template_validate(*, values: Mapping) -> None:
    """Check a template's terms together (what each kind needs, the validity). Raise CouponInvalid naming each
    field."""
    errors: dict[str, list[str]] = {}
    kind = values.get("kind")
    amount = _number(values, "amount")
    if kind in (CouponTemplate.Kind.AMOUNT_OFF, CouponTemplate.Kind.ITEM) and amount <= 0:
        errors["amount"] = [gettext("Give the amount the coupon takes off (more than 0).")]
    if kind == CouponTemplate.Kind.PERCENT_OFF:
        percent = _number(values, "percent")
        if not ZERO < percent < HUNDRED:
            errors["percent"] = [gettext("A percent off coupon takes more than 0 and less than 100 percent off "
                                         "(10 is 10 percent off).")]
    if kind == CouponTemplate.Kind.THRESHOLD:
        threshold = _number(values, "threshold")
        if amount <= 0:
            errors["amount"] = [gettext("Give the Y of spend X save Y (more than 0).")]
        elif threshold <= amount:
            errors["threshold"] = [gettext("The spend threshold must be more than the amount off (满200减30: "
                                           "200 and 30).")]
    if kind == CouponTemplate.Kind.ITEM and values.get("sku_scope") not in (
            CouponTemplate.SkuScope.INCLUDE, CouponTemplate.SkuScope.EXCLUDE):
        errors["sku_scope"] = [gettext("An item coupon applies to listed SKUs: choose only the listed SKUs (or "
                                       "every item except them), then upload the list on the template's page.")]
    if kind == CouponTemplate.Kind.GIFT and not (values.get("gift_sku") or "").strip():
        errors["gift_sku"] = [gettext("Give the SKU of the gift.")]
    valid_from, valid_until, valid_days = values.get("valid_from"), values.get("valid_until"), values.get("valid_days")
    if valid_days and (valid_from or valid_until):
        errors["valid_days"] = [gettext("Give fixed dates or a number of days from issue, not both.")]
    elif not valid_days and not valid_until:
        errors["valid_until"] = [gettext("Give the last moment the coupons are valid, or a number of days from "
                                         "issue.")]
    elif valid_from and valid_until and valid_until <= valid_from:
        errors["valid_until"] = [gettext("The coupons must stay valid past their first moment (%(start)s).")
                                 % {"start": timezone.localtime(valid_from).strftime("%Y-%m-%d %H:%M")}]
    for name in ("code_prefix", "claim_code"):
        if not _CODE_WORD.match((values.get(name) or "").upper()):
            errors[name] = [gettext("Capital letters A-Z and digits only.")]
    if errors:
        raise CouponInvalid(fields=errors)


# --- lifecycle ------------------------------------------------------------------------------------------------


def _lock(template: CouponTemplate) -> CouponTemplate:
    return CouponTemplate.objects.select_for_update().get(pk=template.pk)


def _save(template: CouponTemplate, *, actor, reason: str, fields: list[str]) -> None:
    template._history_user = actor
    template._change_reason = reason[:100]
    template.save(update_fields=fields)


def _refused(template: CouponTemplate, reason: str) -> CouponInvalid:
    return CouponInvalid(gettext("Coupon template %(code)s is %(status)s: %(reason)s") % {
        "code": template.code, "status": template.get_status_display(), "reason": reason})


def _start_problems(template: CouponTemplate) -> list[str]:
    """Why the template cannot start now (empty when it can): checked on submitting and again on approval."""
    problems = []
    try:
        coupon_template_validate(values={field.name: getattr(template, field.name)
                                         for field in CouponTemplate._meta.concrete_fields})
    except CouponInvalid as error:
        problems += [text for texts in (error.fields or {}).values() for text in texts]
    if template.sku_scope != CouponTemplate.SkuScope.ALL and not template.skus.exists():
        problems.append(gettext("its SKU list is empty; upload it first"))
    if template.valid_until is not None and template.valid_until <= timezone.now():
        problems.append(gettext("its validity ended on %(day)s") % {
            "day": timezone.localtime(template.valid_until).strftime("%Y-%m-%d %H:%M")})
    return problems


@transaction.atomic
def coupon_template_start(*, template: CouponTemplate, operator, reason: str = "") -> ApprovalRequest | None:
    """Start a draft template (through approval when a policy covers its budget) or resume a paused one.

    Return the approval request (pending, or carried out at once); None for a resumed template. Raise CouponInvalid
    (status, or why it cannot start), ApprovalAlreadyPending.
    """
    template = _lock(template)
    if template.status == CouponTemplate.Status.PAUSED:
        template.status = CouponTemplate.Status.ACTIVE
        _save(template, actor=operator, reason=gettext("resumed"), fields=["status"])
        return None
    if template.status != CouponTemplate.Status.DRAFT:
        raise _refused(template, gettext("only a draft template can be started, or a paused one resumed."))
    problems = _start_problems(template)
    if problems:
        raise _refused(template, gettext("it cannot start: %(problems)s.") % {"problems": "; ".join(problems)})
    template.status = CouponTemplate.Status.PENDING
    _save(template, actor=operator, reason=gettext("submitted to start"), fields=["status"])
    reason = (reason or "").strip() or gettext("Start coupon template %(code)s %(name)s.") % {
        "code": template.code, "name": template.name}
    return approval_request_submit(
        action=COUPON_TEMPLATE_START, subject=template, requested_by=operator, reason=reason,
        amount=template.total_budget,
        payload={"template_id": template.pk, "code": template.code, "amount": template.total_budget,
                 "quantity": template.total_quantity},
    )


def _start_execute(request: ApprovalRequest) -> None:
    """Start the approved template, in the approval's transaction; its checks are made again under lock."""
    template = _lock(CouponTemplate(pk=int(request.payload["template_id"])))
    if template.status != CouponTemplate.Status.PENDING:
        raise _refused(template, gettext("only a template waiting to start can be started."))
    problems = _start_problems(template)
    if problems:
        raise _refused(template, gettext("it cannot start: %(problems)s.") % {"problems": "; ".join(problems)})
    template.status = CouponTemplate.Status.ACTIVE
    _save(template, actor=request.decided_by or request.requested_by,
          reason=gettext("started (#%(request)s)") % {"request": request.pk}, fields=["status"])


def _start_reject(request: ApprovalRequest) -> None:
    """Rejected or withdrawn: the template is a draft again, to change and submit anew."""
    template = _lock(CouponTemplate(pk=int(request.payload["template_id"])))
    if template.status != CouponTemplate.Status.PENDING:
        return
    template.status = CouponTemplate.Status.DRAFT
    _save(template, actor=request.decided_by or request.requested_by,
          reason=gettext("not started (#%(request)s)") % {"request": request.pk}, fields=["status"])


registry.register(COUPON_TEMPLATE_START, label=_("Start a coupon template"), execute=_start_execute,
                  on_reject=_start_reject)


@transaction.atomic
def coupon_template_pause(*, template: CouponTemplate, operator, reason: str = "") -> CouponTemplate:
    """Pause a running template: no coupon is issued or redeemed until it resumes. Raise CouponInvalid."""
    template = _lock(template)
    if template.status != CouponTemplate.Status.ACTIVE:
        raise _refused(template, gettext("only an active template can be paused."))
    template.status = CouponTemplate.Status.PAUSED
    _save(template, actor=operator, reason=_with_reason(gettext("paused"), reason), fields=["status"])
    return template


@transaction.atomic
def coupon_template_end(*, template: CouponTemplate, operator, reason: str = "") -> CouponTemplate:
    """End a template for good (draft, active or paused): its coupons can no longer be issued or redeemed.
    Raise CouponInvalid."""
    template = _lock(template)
    if template.status not in (CouponTemplate.Status.DRAFT, CouponTemplate.Status.ACTIVE,
                               CouponTemplate.Status.PAUSED):
        raise _refused(template, gettext("only a draft, active or paused template can be ended."))
    template.status = CouponTemplate.Status.ENDED
    _save(template, actor=operator, reason=_with_reason(gettext("ended"), reason), fields=["status"])
    return template


def _with_reason(text: str, reason: str) -> str:
    return f"{text}: {reason.strip()}" if reason and reason.strip() else text


# --- SKU lists ----------------------------------------------------------------------------------------------------


def _file_copy(file, path: str) -> None:
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
                raise CouponInvalid(fields={"file": [gettext("The file is larger than %(mb)s MB.")
                                                     % {"mb": MAX_SKU_FILE_BYTES // (1024 * 1024)}]})
            handle.write(chunk)


def _sku_problem(sku: str) -> str:
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
    return ""


def _sku_rows(path: str, file_name: str) -> list[str]:
    """The SKUs of a file, all or nothing. Raise CouponInvalid naming every bad row."""
    problems: list[str] = []
    first_row: dict[str, int] = {}
    try:
        with TableReader(path, SKU_COLUMNS) as reader:
            for row in reader:
                sku = row.values.get("sku", "")
                problem = _sku_problem(sku)
                if not problem and sku in first_row:
                    problem = gettext("SKU %(sku)s repeats row %(first)s") % {"sku": sku, "first": first_row[sku]}
                if problem:
                    problems.append(gettext("row %(row)s: %(problem)s") % {"row": row.number, "problem": problem})
                    continue
                first_row[sku] = row.number
                if len(first_row) > MAX_SKUS:
                    raise CouponInvalid(fields={"file": [gettext(
                        "A list holds at most %(max)s SKUs; this file has more.") % {"max": f"{MAX_SKUS:,}"}]})
    except TableInvalid as error:
        raise CouponInvalid(fields={"file": [gettext("%(problem)s The file needs a column sku (SKU or 商品编码).")
                                             % {"problem": error}]}) from None
    if problems:
        shown = problems[:_PROBLEMS_SHOWN]
        if len(problems) > len(shown):
            shown.append(ngettext("… and %(count)s more row with a problem.", "… and %(count)s more rows with "
                                  "problems.", len(problems) - len(shown)) % {"count": len(problems) - len(shown)})
        raise CouponInvalid(
            ngettext("%(name)s was not imported: %(count)s row has a problem; nothing was saved.",
                     "%(name)s was not imported: %(count)s rows have problems; nothing was saved.", len(problems))
            % {"name": file_name, "count": len(problems)},
            fields={"file": shown},
        )
    if not first_row:
        raise CouponInvalid(fields={"file": [gettext("%(name)s has no SKUs under its header row.")
                                             % {"name": file_name}]})
    return list(first_row)


@transaction.atomic
def coupon_skus_import(*, template: CouponTemplate, file, file_name: str = "", operator=None) -> int:
    """Replace a template's SKU list with the SKUs of an Excel or CSV file (column sku, SKU or 商品编码); return how
    many. Raise CouponInvalid naming the file's bad rows, or the template's status; nothing is written then."""
    template = _lock(template)
    if template.status in (CouponTemplate.Status.PENDING, CouponTemplate.Status.ENDED):
        raise _refused(template, gettext("its SKU list can no longer change."))
    file_name = os.path.basename(str(file_name or getattr(file, "name", "") or "").replace("\\", "/")).strip()
    if os.path.splitext(file_name)[1].lower() not in SKU_FILE_TYPES:
        raise CouponInvalid(fields={"file": [gettext(
            "%(name)s is not an .xlsx or .csv file; save it from Excel as one of them.") % {
            "name": file_name or gettext("The file")}]})
    with tempfile.TemporaryDirectory(prefix="coupon-skus-") as folder:
        # The staff's own file name, so the reader's messages name the file they chose.
        path = os.path.join(folder, file_name)
        _file_copy(file, path)
        skus = _sku_rows(path, file_name)
    CouponSku.objects.filter(template=template).delete()
    for start in range(0, len(skus), _INSERT_BATCH):
        CouponSku.objects.bulk_create([CouponSku(template=template, sku=sku)
                                       for sku in skus[start:start + _INSERT_BATCH]])
    # A row of the template's history says who replaced the list and from which file (its name is saved unchanged:
    # an empty update_fields would write nothing).
    _save(template, actor=operator, reason=gettext("SKU list replaced (%(count)s SKUs from %(file)s)") % {
        "count": len(skus), "file": file_name}, fields=["name"])
    return len(skus)
