"""The files each format's finance system takes: one per dataset, in the layout staff keep for that system.

A finance system (`Format.finance_system_code`) reads its company's card sales with the invoice item 601 (a
not-taxable general invoice at sale or top-up, 税务总局公告2016年第53号), the card spending and refunds at its
stores, the points and coupons given there and the clearing lines it is party to. Each dataset offers named
fields (`DATASET_FIELDS`); a layout (`FinanceExportLayout`) picks some of them in its own order under its own
headers, with its date and amount formats, its encoding and file type.

Files of a million rows stream: the rows are read with `iterator()`, a CSV is written line by line and an Excel
workbook with openpyxl's write-only mode, both into a temporary file that is then saved to the file field, so
memory stays flat however many rows a period has. A period's files only read: they may be made again for a
locked period, and every file made is kept in the period's history.
"""

import codecs
import csv
import hashlib
import io
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from campaigns.models import CouponRedemption
from cards.models import CardLedgerEntry
from core.files import escape_cell
from core.numbers import CENT, MONEY_XLSX_FORMAT, money_round
from membership.models import PointsEntry, PointsPolicy
from settlement.errors import ExportLayoutInvalid
from settlement.models import ClearingLine, FinanceExportFile, FinanceExportLayout, SettlementPeriod
from stores.models import Format, LegalEntity

__all__ = [
    "DATASET_FIELDS",
    "DEFAULT_COLUMNS",
    "INVOICE_ITEM_CODE",
    "INVOICE_ITEM_NAME",
    "INVOICE_TAX",
    "export_layout_clean",
    "finance_export_filename",
    "finance_export_make",
    "finance_export_rows",
    "finance_export_zip",
    "finance_export_zip_file",
    "finance_layouts_ensure",
]

Dataset = FinanceExportLayout.Dataset

# The tax authority's item for prepaid card sales and top-ups and its treatment, printed as the authority names
# them (税务总局公告2016年第53号): the finance systems match on this text, so it is never translated.
INVOICE_ITEM_CODE = "601"
INVOICE_ITEM_NAME = "预付卡销售和充值"
INVOICE_TAX = "不征税"

DATASET_FIELDS: dict[str, list[tuple[str, str]]] = {
    Dataset.CARD_SALES: [
        ("date", _("date")),
        ("time", _("time")),
        ("store_code", _("store code")),
        ("store_name", _("store name")),
        ("receipt_no", _("receipt or order number")),
        ("card_no", _("card number")),
        ("product_code", _("card product code")),
        ("product_name", _("card product")),
        ("issuer_code", _("issuing company code")),
        ("amount", _("amount")),
        ("invoice_item", _("invoice item code")),
        ("invoice_item_name", _("invoice item name")),
        ("tax", _("tax treatment")),
        ("entry_id", _("ledger entry number")),
    ],
    Dataset.CARD_SPENDING: [
        ("date", _("date")),
        ("store_code", _("store code")),
        ("store_name", _("store name")),
        ("count", _("number of card payments")),
        ("amount", _("amount spent on cards")),
        ("count_other_issuers", _("payments with other companies' cards")),
        ("amount_other_issuers", _("of which on other companies' cards")),
        ("amount_own_cards", _("of which on the company's own cards")),
    ],
    Dataset.REFUNDS: [
        ("date", _("date")),
        ("time", _("time")),
        ("store_code", _("store code")),
        ("store_name", _("store name")),
        ("kind", _("kind")),
        ("receipt_no", _("receipt number")),
        ("original_receipt_no", _("original receipt number")),
        ("card_no", _("card number")),
        ("issuer_code", _("issuing company code")),
        ("issuer_name", _("issuing company")),
        ("amount", _("amount put back on the card")),
        ("entry_id", _("ledger entry number")),
    ],
    Dataset.POINTS: [
        ("date", _("date")),
        ("store_code", _("store code")),
        ("store_name", _("store name")),
        ("kind", _("kind")),
        ("count", _("number of movements")),
        ("points", _("points")),
        ("value", _("value in yuan")),
    ],
    Dataset.COUPONS: [
        ("date", _("date")),
        ("store_code", _("store code")),
        ("store_name", _("store name")),
        ("template_code", _("coupon template code")),
        ("template_name", _("coupon template")),
        ("funded_by_code", _("funding company code")),
        ("funded_by_name", _("funding company")),
        ("count", _("coupons used")),
        ("discount", _("discount")),
    ],
    Dataset.CLEARING: [
        ("date", _("date")),
        ("kind", _("kind")),
        ("issuer_code", _("issuing company code")),
        ("issuer_name", _("issuing company")),
        ("honourer_code", _("honouring company code")),
        ("honourer_name", _("honouring company")),
        ("counterparty_code", _("counterparty code")),
        ("counterparty_name", _("counterparty")),
        ("count", _("number of movements")),
        ("points", _("points")),
        ("gross", _("gross amount")),
        ("fee", _("service fee")),
        ("net", _("owed by the issuer")),
        ("net_for_company", _("receivable (+) or payable (-) for the company")),
        ("corrects_text", _("what it corrects")),
        ("reason", _("reason")),
        ("line_id", _("clearing line number")),
    ],
}

# How a field's value is written: amounts by the layout's amount format (numbers in Excel), counts and points as
# whole numbers, dates by the layout's date format; everything else is text, escaped against formulas.
_MONEY_FIELDS = frozenset({"amount", "amount_other_issuers", "amount_own_cards", "value", "discount", "gross", "fee",
                           "net", "net_for_company"})
_INTEGER_FIELDS = frozenset({"count", "count_other_issuers", "points", "entry_id", "line_id"})
_DATE_FIELDS = frozenset({"date"})

DEFAULT_COLUMNS: dict[str, list[dict]] = {
    Dataset.CARD_SALES: [
        {"field": "date", "header": "日期"},
        {"field": "store_code", "header": "门店编码"},
        {"field": "store_name", "header": "门店名称"},
        {"field": "receipt_no", "header": "单据号"},
        {"field": "card_no", "header": "卡号"},
        {"field": "product_name", "header": "卡产品"},
        {"field": "amount", "header": "金额"},
        {"field": "invoice_item", "header": "开票项目编码"},
        {"field": "invoice_item_name", "header": "开票项目名称"},
        {"field": "tax", "header": "税率"},
    ],
    Dataset.CARD_SPENDING: [
        {"field": "date", "header": "日期"},
        {"field": "store_code", "header": "门店编码"},
        {"field": "store_name", "header": "门店名称"},
        {"field": "count", "header": "笔数"},
        {"field": "amount", "header": "消费金额"},
        {"field": "amount_other_issuers", "header": "其中他司卡消费"},
    ],
    Dataset.REFUNDS: [
        {"field": "date", "header": "日期"},
        {"field": "store_code", "header": "门店编码"},
        {"field": "store_name", "header": "门店名称"},
        {"field": "kind", "header": "类型"},
        {"field": "receipt_no", "header": "小票号"},
        {"field": "original_receipt_no", "header": "原小票号"},
        {"field": "card_no", "header": "卡号"},
        {"field": "issuer_name", "header": "发卡公司"},
        {"field": "amount", "header": "退回金额"},
    ],
    Dataset.POINTS: [
        {"field": "date", "header": "日期"},
        {"field": "store_code", "header": "门店编码"},
        {"field": "store_name", "header": "门店名称"},
        {"field": "kind", "header": "类型"},
        {"field": "points", "header": "积分"},
        {"field": "value", "header": "折合金额"},
    ],
    Dataset.COUPONS: [
        {"field": "date", "header": "日期"},
        {"field": "store_code", "header": "门店编码"},
        {"field": "store_name", "header": "门店名称"},
        {"field": "template_name", "header": "券名称"},
        {"field": "count", "header": "用券张数"},
        {"field": "discount", "header": "优惠金额"},
        {"field": "funded_by_name", "header": "承担公司"},
    ],
    Dataset.CLEARING: [
        {"field": "date", "header": "日期"},
        {"field": "kind", "header": "类型"},
        {"field": "issuer_name", "header": "发行公司"},
        {"field": "honourer_name", "header": "受理公司"},
        {"field": "counterparty_name", "header": "对方公司"},
        {"field": "count", "header": "笔数"},
        {"field": "gross", "header": "总额"},
        {"field": "fee", "header": "手续费"},
        {"field": "net", "header": "发行方应付"},
        {"field": "net_for_company", "header": "本公司应收(+)/应付(-)"},
        {"field": "corrects_text", "header": "更正内容"},
    ],
}

_ENCODINGS = frozenset(FinanceExportLayout.Encoding.values)
_FILE_TYPES = frozenset(FinanceExportLayout.FileType.values)
_SAMPLE_DAY = date(2026, 11, 3)
_HEADER_MAX = 100
_CHUNK = 2000
_COPY_BYTES = 1024 * 1024
# Characters XML 1.0 (and so an Excel sheet) cannot hold; openpyxl refuses a cell with one.
_XML_ILLEGAL = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
_SHEET_TITLE_FORBIDDEN = dict.fromkeys(map(ord, "[]:*?/\\"))


def _refuse(message, *, on: str, **params) -> ExportLayoutInvalid:
    """An ExportLayoutInvalid whose message is also shown beside the form field `on`."""
    return ExportLayoutInvalid(message, fields={on: [message % params if params else message]}, **params)


# --- layouts -------------------------------------------------------------------------------------------------------


def _date_format_clean(date_format) -> str:
    text = str(date_format or "").strip()
    bad = _refuse(_("The date format %(format)s does not write a whole date that can be read back (e.g. %%Y-%%m-%%d "
                    "or %%Y%%m%%d)."), on="date_format", format=f"“{text}”")
    if not text or "%" not in text or len(text) > 30:
        raise bad
    try:
        written = _SAMPLE_DAY.strftime(text)
        read = datetime.strptime(written, text).date()
    except ValueError:
        raise bad from None
    if read != _SAMPLE_DAY or _SAMPLE_DAY.replace(day=4).strftime(text) == written:
        raise bad
    return text


def export_layout_clean(*, dataset, columns, date_format, encoding, file_type, delimiter: str = ",") -> list[dict]:
    """A layout's columns checked against what its dataset offers, as [{"field", "header"}] with the headers
    trimmed. Raise ExportLayoutInvalid naming the field: an unknown dataset, file type or encoding; an empty
    list; a column that is not {"field", "header"}; an unknown field; an empty, too long or repeated header; a
    header a GBK file cannot hold; a date format that does not write a whole date; a bad CSV delimiter."""
    if dataset not in DATASET_FIELDS:
        raise _refuse(_("Unknown data %(dataset)s."), on="dataset", dataset=f"“{dataset}”")
    if file_type not in _FILE_TYPES:
        raise _refuse(_("Unknown file type %(file_type)s."), on="file_type", file_type=f"“{file_type}”")
    if encoding not in _ENCODINGS:
        raise _refuse(_("Unknown encoding %(encoding)s: use UTF-8, UTF-8 with BOM or GBK."), on="encoding",
                      encoding=f"“{encoding}”")
    if file_type == FinanceExportLayout.FileType.CSV and (
            not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"'\r\n" or delimiter.isalnum()):
        raise _refuse(_("The CSV delimiter must be one character such as a comma, a semicolon or a tab."),
                      on="delimiter")
    _date_format_clean(date_format)
    if not isinstance(columns, list) or not columns:
        raise _refuse(_("List at least one column."), on="columns")
    offered = dict(DATASET_FIELDS[dataset])
    cleaned = []
    seen: dict[str, int] = {}
    for number, column in enumerate(columns, start=1):
        if not isinstance(column, dict) or set(column) != {"field", "header"}:
            raise _refuse(_('Column %(number)s must name a "field" and a "header".'), on="columns",
                          number=number)
        field, header = column["field"], column["header"]
        if field not in offered:
            raise _refuse(_("Column %(number)s: %(field)s is not a field of this data; it offers: %(offered)s."),
                          on="columns", number=number, field=f"“{field}”", offered=", ".join(offered))
        header = header.strip() if isinstance(header, str) else ""
        if not header:
            raise _refuse(_("Column %(number)s (%(field)s) has no header."), on="columns", number=number,
                          field=field)
        if len(header) > _HEADER_MAX:
            raise _refuse(_("Column %(number)s: the header is longer than %(max)s characters."), on="columns",
                          number=number, max=_HEADER_MAX)
        if header in seen:
            raise _refuse(_("Columns %(first)s and %(number)s have the same header %(header)s."), on="columns",
                          first=seen[header], number=number, header=f"“{header}”")
        if file_type == FinanceExportLayout.FileType.CSV and encoding == FinanceExportLayout.Encoding.GBK:
            try:
                header.encode("gbk")
            except UnicodeEncodeError:
                raise _refuse(_("Column %(number)s: the header %(header)s has a character GBK cannot hold; choose "
                                "UTF-8."), on="columns", number=number, header=f"“{header}”") from None
        seen[header] = number
        cleaned.append({"field": field, "header": header})
    return cleaned


def finance_layouts_ensure(*, finance_system_code: str) -> list[FinanceExportLayout]:
    """The active layouts of a finance system, one per dataset: those missing are created with the default
    Chinese columns (Excel files). Existing ones are left as staff keep them."""
    code = (finance_system_code or "").strip()
    if not code:
        raise _refuse(_("A finance system code is required."), on="finance_system_code")
    with translation.override(settings.LANGUAGE_CODE), transaction.atomic():
        for dataset in Dataset:
            FinanceExportLayout.objects.get_or_create(
                finance_system_code=code, dataset=dataset.value, is_active=True,
                defaults={"name": f"{code} {dataset.label}"[:100], "columns": DEFAULT_COLUMNS[dataset.value],
                          "file_type": FinanceExportLayout.FileType.XLSX},
            )
    return list(FinanceExportLayout.objects.filter(finance_system_code=code, is_active=True).order_by("dataset"))


# --- rows ----------------------------------------------------------------------------------------------------------


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def _day_start(day: date) -> datetime:
    """The instant a local business day starts (days are Asia/Shanghai days)."""
    return datetime.combine(day, time.min, tzinfo=_zone())


def _in_days(start: date, end: date, name: str = "created_at") -> Q:
    return Q(**{f"{name}__gte": _day_start(start), f"{name}__lt": _day_start(end + timedelta(days=1))})


def _cents(value) -> Decimal:
    # SQLite adds decimals up in floating point (3.60000000000000): sums are cut to the fen here.
    return money_round(value or 0)


def _entity_id(legal_entity) -> int:
    return legal_entity.pk if isinstance(legal_entity, LegalEntity) else int(legal_entity)


def _card_sales(start: date, end: date, entity_id: int) -> Iterator[dict]:
    rows = (
        CardLedgerEntry.objects.filter(_in_days(start, end), kind=CardLedgerEntry.Kind.LOAD, legal_entity_id=entity_id)
        .order_by("created_at", "pk")
        .values_list("pk", "created_at", "store__code", "store__name", "receipt_no", "card__card_no",
                     "card__product__code", "card__product__name", "card__issuer__code", "amount")
    )
    zone = _zone()
    for pk, created_at, store_code, store_name, receipt_no, card_no, product_code, product_name, issuer_code, amount \
            in rows.iterator(chunk_size=_CHUNK):
        local = created_at.astimezone(zone)
        yield {
            "date": local.date(), "time": local.strftime("%H:%M:%S"), "store_code": store_code or "",
            "store_name": store_name or "", "receipt_no": receipt_no, "card_no": card_no,
            "product_code": product_code, "product_name": product_name, "issuer_code": issuer_code or "",
            "amount": _cents(amount), "invoice_item": INVOICE_ITEM_CODE, "invoice_item_name": INVOICE_ITEM_NAME,
            "tax": INVOICE_TAX, "entry_id": pk,
        }


def _card_spending(start: date, end: date, entity_id: int) -> Iterator[dict]:
    other = ~Q(card__issuer_id=entity_id)
    rows = (
        CardLedgerEntry.objects.filter(_in_days(start, end), kind=CardLedgerEntry.Kind.DEBIT,
                                       legal_entity_id=entity_id)
        .annotate(day=TruncDate("created_at", tzinfo=_zone()))
        .values("day", "store__code", "store__name")
        .annotate(n=Count("pk"), total=Sum("amount"), n_other=Count("pk", filter=other),
                  total_other=Sum("amount", filter=other))
        .order_by("day", "store__code")
    )
    for row in rows.iterator(chunk_size=_CHUNK):
        amount, other_amount = -_cents(row["total"]), -_cents(row["total_other"])
        yield {
            "date": row["day"], "store_code": row["store__code"] or "", "store_name": row["store__name"] or "",
            "count": row["n"], "amount": amount, "count_other_issuers": row["n_other"],
            "amount_other_issuers": other_amount, "amount_own_cards": amount - other_amount,
        }


def _refunds(start: date, end: date, entity_id: int) -> Iterator[dict]:
    kinds = dict(CardLedgerEntry.Kind.choices)
    rows = (
        CardLedgerEntry.objects.filter(_in_days(start, end), legal_entity_id=entity_id,
                                       kind__in=(CardLedgerEntry.Kind.REFUND, CardLedgerEntry.Kind.REVERSE))
        .order_by("created_at", "pk")
        .values_list("pk", "created_at", "store__code", "store__name", "kind", "receipt_no",
                     "transaction__original__receipt_no", "card__card_no", "card__issuer__code",
                     "card__issuer__name", "amount")
    )
    zone = _zone()
    for pk, created_at, store_code, store_name, kind, receipt_no, original_receipt_no, card_no, issuer_code, \
            issuer_name, amount in rows.iterator(chunk_size=_CHUNK):
        local = created_at.astimezone(zone)
        yield {
            "date": local.date(), "time": local.strftime("%H:%M:%S"), "store_code": store_code or "",
            "store_name": store_name or "", "kind": str(kinds.get(kind, kind)), "receipt_no": receipt_no,
            "original_receipt_no": original_receipt_no or "", "card_no": card_no, "issuer_code": issuer_code or "",
            "issuer_name": issuer_name or "", "amount": _cents(amount), "entry_id": pk,
        }


def _points(start: date, end: date, entity_id: int) -> Iterator[dict]:
    policy = PointsPolicy.current()
    kinds = dict(PointsEntry.Kind.choices)
    rows = (
        PointsEntry.objects.filter(_in_days(start, end), legal_entity_id=entity_id)
        .annotate(day=TruncDate("created_at", tzinfo=_zone()))
        .values("day", "store__code", "store__name", "kind")
        .annotate(n=Count("pk"), total=Sum("points"))
        .order_by("day", "store__code", "kind")
    )
    for row in rows.iterator(chunk_size=_CHUNK):
        points = int(row["total"] or 0)
        value = (Decimal(points) * policy.cash_value / policy.cash_points).quantize(CENT, rounding=ROUND_HALF_UP)
        yield {
            "date": row["day"], "store_code": row["store__code"] or "", "store_name": row["store__name"] or "",
            "kind": str(kinds.get(row["kind"], row["kind"])), "count": row["n"], "points": points, "value": value,
        }


def _coupon_groups(queryset, moment: str, sign: int) -> Iterator[tuple[tuple, dict]]:
    rows = (
        queryset.annotate(day=TruncDate(moment, tzinfo=_zone()))
        .values("day", "store__code", "store__name", "template__code", "template__name", "template__funded_by__code",
                "template__funded_by__name")
        .annotate(n=Count("pk"), total=Sum("discount"))
        .order_by("day", "store__code", "template__code")
    )
    for row in rows.iterator(chunk_size=_CHUNK):
        key = (row["day"], row["store__code"] or "", row["template__code"])
        yield key, {
            "date": row["day"], "store_code": row["store__code"] or "", "store_name": row["store__name"] or "",
            "template_code": row["template__code"], "template_name": row["template__name"],
            "funded_by_code": row["template__funded_by__code"] or "",
            "funded_by_name": row["template__funded_by__name"] or "",
            "count": sign * row["n"], "discount": sign * _cents(row["total"]),
        }


def _coupons(start: date, end: date, entity_id: int) -> Iterator[dict]:
    """Coupons used at the company's stores or funded by it: redemptions counted on the day they were made, those
    given back (a return, a voided payment) taken off on the day they were given back, as clearing counts them."""
    scope = CouponRedemption.objects.filter(Q(store__format__legal_entity_id=entity_id)
                                            | Q(template__funded_by_id=entity_id))
    used = _coupon_groups(scope.filter(_in_days(start, end)), "created_at", 1)
    given_back = _coupon_groups(scope.filter(_in_days(start, end, "released_at"),
                                             status=CouponRedemption.Status.RELEASED), "released_at", -1)
    # Both come sorted by the same key: merged as they stream, a day, store and template is one row.
    try:
        pending_used, pending_back = next(used, None), next(given_back, None)
        while pending_used or pending_back:
            if pending_back is None or (pending_used is not None and pending_used[0] < pending_back[0]):
                yield pending_used[1]
                pending_used = next(used, None)
            elif pending_used is None or pending_back[0] < pending_used[0]:
                yield pending_back[1]
                pending_back = next(given_back, None)
            else:
                row = pending_used[1]
                row["count"] += pending_back[1]["count"]
                row["discount"] += pending_back[1]["discount"]
                yield row
                pending_used, pending_back = next(used, None), next(given_back, None)
    finally:
        used.close()
        given_back.close()


def _clearing(start: date, end: date, entity_id: int, period: SettlementPeriod | None) -> Iterator[dict]:
    """The clearing lines the company is party to: those of the period when given (adjusting lines included,
    whatever day they name), else those of the days."""
    lines = ClearingLine.objects.filter(Q(issuer_id=entity_id) | Q(honourer_id=entity_id))
    lines = lines.filter(period=period) if period is not None else lines.filter(business_date__gte=start,
                                                                                business_date__lte=end)
    kinds = dict(ClearingLine.Kind.choices)
    rows = lines.order_by("business_date", "kind", "pk").values_list(
        "pk", "business_date", "kind", "issuer_id", "issuer__code", "issuer__name", "honourer_id", "honourer__code",
        "honourer__name", "count", "points", "gross", "fee", "net", "corrects_text", "reason",
    )
    for pk, day, kind, issuer_id, issuer_code, issuer_name, honourer_id, honourer_code, honourer_name, count, \
            points, gross, fee, net, corrects_text, reason in rows.iterator(chunk_size=_CHUNK):
        net = _cents(net)
        if issuer_id == honourer_id:
            counterparty, for_company = (issuer_code, issuer_name), Decimal("0.00")
        elif honourer_id == entity_id:
            counterparty, for_company = (issuer_code, issuer_name), net
        else:
            counterparty, for_company = (honourer_code, honourer_name), -net
        yield {
            "date": day, "kind": str(kinds.get(kind, kind)), "issuer_code": issuer_code or "",
            "issuer_name": issuer_name or "", "honourer_code": honourer_code or "",
            "honourer_name": honourer_name or "", "counterparty_code": counterparty[0] or "",
            "counterparty_name": counterparty[1] or "", "count": count,
            "points": points, "gross": _cents(gross), "fee": _cents(fee), "net": net,
            "net_for_company": for_company + 0, "corrects_text": corrects_text, "reason": reason, "line_id": pk,
        }


def finance_export_rows(*, dataset: str, start: date, end: date, legal_entity,
                        period: SettlementPeriod | None = None) -> Iterator[dict]:
    """The rows of one dataset for a company over the local days start..end, as dicts by field name, read as
    they stream (one query per dataset; coupons: one for those used and one for those given back).

    Scoped to the company: card sales it took the money in for, card spending, refunds and points at its stores
    (the ledger's legal entity), coupons used at its stores or funded by it, clearing lines it is party to.
    `period` (clearing only): that period's lines, adjusting lines included. Raise ExportLayoutInvalid for an
    unknown dataset."""
    entity_id = _entity_id(legal_entity)
    if dataset == Dataset.CARD_SALES:
        return _card_sales(start, end, entity_id)
    if dataset == Dataset.CARD_SPENDING:
        return _card_spending(start, end, entity_id)
    if dataset == Dataset.REFUNDS:
        return _refunds(start, end, entity_id)
    if dataset == Dataset.POINTS:
        return _points(start, end, entity_id)
    if dataset == Dataset.COUPONS:
        return _coupons(start, end, entity_id)
    if dataset == Dataset.CLEARING:
        return _clearing(start, end, entity_id, period)
    raise _refuse(_("Unknown data %(dataset)s."), on="dataset", dataset=f"“{dataset}”")


# --- files ---------------------------------------------------------------------------------------------------------


def _amount_text(value: Decimal, amount_format: str) -> str:
    value = value + 0  # no "-0.00"
    if amount_format == FinanceExportLayout.AmountFormat.CENTS:
        return str(int(value * 100))
    if amount_format == FinanceExportLayout.AmountFormat.GROUPED:
        return f"{value:,.2f}"
    return f"{value:.2f}"


def _csv_cell(value, field: str, layout: FinanceExportLayout):
    if value is None:
        return ""
    if field in _MONEY_FIELDS:
        return _amount_text(value, layout.amount_format)
    if field in _DATE_FIELDS:
        return value.strftime(layout.date_format)
    if field in _INTEGER_FIELDS:
        return str(value)
    return escape_cell(str(value))


def _unwritable(cells: list[str], encoding: str) -> tuple[int, str, str] | None:
    """The first cell the encoding cannot hold: its position, its text and the first character it cannot."""
    for index, text in enumerate(cells):
        for char in text:
            try:
                char.encode(encoding)
            except UnicodeEncodeError:
                return index, text, char
    return None


def _csv_write(handle, layout: FinanceExportLayout, columns: list[dict], rows: Iterable[dict], name: str) -> int:
    encoding = layout.encoding
    if encoding == FinanceExportLayout.Encoding.UTF8_BOM:
        handle.write(codecs.BOM_UTF8)
        encoding = "utf-8"
    line = io.StringIO()
    writer = csv.writer(line, delimiter=layout.delimiter or ",", lineterminator="\r\n")

    def write(cells: list[str], row_no: int) -> None:
        writer.writerow(cells)
        text = line.getvalue()
        line.seek(0)
        line.truncate()
        try:
            handle.write(text.encode(encoding))
        except UnicodeEncodeError:
            index, cell, char = _unwritable(cells, encoding) or (0, text, "?")
            raise _refuse(
                _("%(file)s, row %(row)s, column %(column)s: %(text)s has a character the %(encoding)s encoding "
                  "cannot hold (%(char)s). Choose UTF-8 for this layout."),
                on="encoding", file=name, row=row_no, column=f"“{columns[index]['header']}”", text=f"“{cell}”",
                encoding=encoding.upper(), char=char,
            ) from None

    write([escape_cell(column["header"]) for column in columns], 1)
    count = 0
    for count, row in enumerate(rows, start=1):
        write([_csv_cell(row.get(column["field"]), column["field"], layout) for column in columns], count + 1)
    return count


_XLSX_AMOUNT_FORMATS = {
    FinanceExportLayout.AmountFormat.PLAIN: "0.00",
    FinanceExportLayout.AmountFormat.GROUPED: MONEY_XLSX_FORMAT,
    FinanceExportLayout.AmountFormat.CENTS: "0",
}


def _xlsx_write(handle, layout: FinanceExportLayout, columns: list[dict], rows: Iterable[dict]) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    title = str(layout.get_dataset_display()).translate(_SHEET_TITLE_FORBIDDEN)[:31] or layout.dataset
    sheet = workbook.create_sheet(title=title)
    sheet.freeze_panes = "A2"
    for index, column in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = max(10, min(40, 2 * len(column["header"]) + 2))
    bold = Font(bold=True)

    def header_cell(text: str):
        cell = WriteOnlyCell(sheet, value=escape_cell(text.translate(_XML_ILLEGAL)))
        cell.font = bold
        return cell

    amount_format = _XLSX_AMOUNT_FORMATS.get(layout.amount_format, MONEY_XLSX_FORMAT)

    def cell_of(value, field: str):
        if value is None:
            return None
        if field in _MONEY_FIELDS:
            cents = layout.amount_format == FinanceExportLayout.AmountFormat.CENTS
            cell = WriteOnlyCell(sheet, value=int(value * 100) if cents else value + 0)
            cell.number_format = amount_format
            return cell
        if field in _DATE_FIELDS:
            return value.strftime(layout.date_format)
        if field in _INTEGER_FIELDS:
            return value
        return escape_cell(str(value).translate(_XML_ILLEGAL))

    sheet.append([header_cell(column["header"]) for column in columns])
    count = 0
    for row in rows:
        sheet.append([cell_of(row.get(column["field"]), column["field"]) for column in columns])
        count += 1
    workbook.save(handle)
    return count


def finance_export_filename(export_file: FinanceExportFile) -> str:
    """The name a made file is downloaded under: `{finance system}-{dataset}-{period}-{company}.{csv|xlsx}`
    (storage may add a suffix to its stored name when the same file is made again)."""
    layout = export_file.layout
    return _file_name(layout, export_file.period, export_file.legal_entity)


def _file_name(layout: FinanceExportLayout, period: SettlementPeriod, entity: LegalEntity) -> str:
    return f"{layout.finance_system_code}-{layout.dataset}-{period.code}-{entity.code}.{layout.file_type}"


def _sha256(handle) -> str:
    digest = hashlib.sha256()
    handle.seek(0)
    for chunk in iter(lambda: handle.read(_COPY_BYTES), b""):
        digest.update(chunk)
    handle.seek(0)
    return digest.hexdigest()


def _layouts_of(entity: LegalEntity) -> list[FinanceExportLayout]:
    codes = sorted(set(Format.objects.filter(legal_entity=entity).exclude(finance_system_code="")
                       .values_list("finance_system_code", flat=True)))
    layouts = list(FinanceExportLayout.objects.filter(finance_system_code__in=codes, is_active=True)
                   .order_by("finance_system_code", "dataset"))
    if not layouts:
        raise _refuse(_("%(company)s has no active finance export layout (finance systems: %(codes)s)."),
                      on="layouts", company=entity.name, codes=", ".join(codes) or "-")
    return layouts


def finance_export_make(*, period: SettlementPeriod, legal_entity: LegalEntity, user,
                        layouts: Iterable[FinanceExportLayout] | None = None) -> list[FinanceExportFile]:
    """Make a company's finance files for a period: one per active layout of its formats' finance systems (or
    per layout given), written in the layout's columns, formats, encoding and file type, saved and kept in the
    period's history with their rows and SHA-256. Any period status: the files only read.

    All or nothing: every file is written to a temporary file first and saved only when all were written. Raise
    ExportLayoutInvalid for a layout that is not valid, a character a CSV's encoding cannot hold (naming the
    row, the column and the text), or a company without layouts."""
    layouts = list(layouts) if layouts is not None else _layouts_of(legal_entity)
    written = []
    try:
        with translation.override(settings.LANGUAGE_CODE):
            for layout in layouts:
                columns = _layout_columns(layout)
                name = _file_name(layout, period, legal_entity)
                rows = finance_export_rows(dataset=layout.dataset, start=period.starts_on, end=period.ends_on,
                                           legal_entity=legal_entity, period=period)
                handle = tempfile.TemporaryFile()
                try:
                    if layout.file_type == FinanceExportLayout.FileType.CSV:
                        count = _csv_write(handle, layout, columns, rows, name)
                    else:
                        count = _xlsx_write(handle, layout, columns, rows)
                except BaseException:
                    handle.close()
                    raise
                finally:
                    # A file refused halfway leaves its rows unread: their server-side cursor (PostgreSQL) is
                    # closed now, in this transaction, not whenever the error's traceback is let go.
                    rows.close()
                written.append(_Written(layout=layout, name=name, handle=handle, rows=count, sha256=_sha256(handle)))
        return _files_save(period=period, legal_entity=legal_entity, user=user, written=written)
    finally:
        for item in written:
            item.handle.close()


def _layout_columns(layout: FinanceExportLayout) -> list[dict]:
    """A saved layout checked again before a file is written (it may have been saved around the admin's form)."""
    try:
        return export_layout_clean(dataset=layout.dataset, columns=layout.columns, date_format=layout.date_format,
                                   encoding=layout.encoding, file_type=layout.file_type, delimiter=layout.delimiter)
    except ExportLayoutInvalid as error:
        reason = next(iter(error.fields.values()))[0] if error.fields else str(error)
        raise _refuse(_("Layout %(layout)s: %(error)s"), on="layouts", layout=layout.name, error=reason) from None


@dataclass
class _Written:
    layout: FinanceExportLayout
    name: str
    handle: object
    rows: int
    sha256: str


def _files_save(*, period, legal_entity, user, written) -> list[FinanceExportFile]:
    saved: list[FinanceExportFile] = []
    try:
        with transaction.atomic():
            for item in written:
                export_file = FinanceExportFile(period=period, legal_entity=legal_entity, layout=item.layout,
                                                rows=item.rows, sha256=item.sha256, created_by=user,
                                                created_at=timezone.now())
                export_file.file.save(item.name, File(item.handle, name=item.name), save=False)
                saved.append(export_file)
                export_file.save()
    except BaseException:
        for export_file in saved:
            export_file.file.delete(save=False)
        raise
    return saved


def _zip_write(target, files: Iterable[FinanceExportFile]) -> None:
    used: set[str] = set()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for export_file in files:
            name = finance_export_filename(export_file)
            stem, dot, ext = name.rpartition(".")
            number = 1
            while name in used:
                number += 1
                name = f"{stem}-{number}{dot}{ext}"
            used.add(name)
            with export_file.file.open("rb") as source, archive.open(name, "w") as entry:
                for chunk in iter(lambda: source.read(_COPY_BYTES), b""):
                    entry.write(chunk)


def finance_export_zip_file(files: Iterable[FinanceExportFile]):
    """The files in one zip (the "one click" download), written to a temporary file copied chunk by chunk, so
    memory stays flat for large files; the caller streams it (FileResponse) and it is removed when closed."""
    handle = tempfile.TemporaryFile()
    _zip_write(handle, files)
    handle.seek(0)
    return handle


def finance_export_zip(files: Iterable[FinanceExportFile]) -> bytes:
    """The files in one zip, as bytes (small sets; use finance_export_zip_file for large files)."""
    with finance_export_zip_file(files) as handle:
        return handle.read()
