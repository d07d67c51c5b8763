"""Demo settlement for `seed_demo`: rules, layouts, a closed month and the current month's reconciliation.

What it leaves (`settlement_seed`):
- clearing rules: every company settles at face value by default; the supermarket and electronics companies pay
  the department store company a 0.6% service fee less for its cards they honour;
- a POS file layout for each format's POS system (Chinese headers, each its own; the supermarkets' files in GBK)
  and the finance systems' default export layouts (`finance_layouts_ensure`);
- card payments at the tills (`CardTransaction` with their ledger rows, through `card_post`) every day from the
  first day of the last closed month to yesterday, with demo cards of their own (prefix 8696) sold by each
  company, so card money moves between the companies;
- the closed month (the month before the one of three days ago): a clearing run for every day, each format's
  POS file of each day written from that day's card payments as the till would and imported (reconciled), the
  close asked by `finance_hq` and approved by `hq_approver`: LOCKED, with its statements;
- the months after it: clearing runs up to yesterday; three days ago every format's file, reconciled; two days
  ago the same, but DEPT001's line of a payment the ledger never recorded (missing in the ledger) and a line
  whose amount differs from the ledger: that store-day is OPEN with two exceptions to work off.

Days count back from today, so the demo looks the same whenever it is loaded. Safe to run twice: cards, payments
of a day, files of a day, runs and the close are made once.
"""

import csv
import io
import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from stdnum import luhn

from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from cards.models import Card, CardEvent, CardLedgerEntry, CardProduct, CardTransaction
from cards.services.ledger import card_cap, card_event, card_post, card_status_change
from core.dates import months_add
from settlement.models import ClearingRule, ClearingRun, PosFile, PosFileLayout, ReconDay, SettlementPeriod
from settlement.services.clearing import clearing_day_run, period_for_day
from settlement.services.exports import finance_layouts_ensure
from settlement.services.periods import period_close_problems, period_close_request
from settlement.services.reconciliation import pos_file_import, pos_layout_clean
from stores.models import Format, LegalEntity, Store

DEMO_SEED = 20261207
# Its own prefix: 8697 is the showcase's (the README's cards), 8698 the brand cards', 8699 the demo cards'.
CARD_PREFIX = "8696"
CARD_COUNT = 40
CARD_LOAD = Decimal("5000.00")
# The companies' demo cards are sold at their first store; payments are taken at these stores.
HOME_STORES = ("DEPT001", "SUPER001", "ELEC001", "AUTO001")
PAYMENT_STORES = ("DEPT001", "DEPT002", "SUPER001", "SUPER002", "ELEC001", "AUTO001")
OPEN_DAY_STORE = "DEPT001"
# (issuer, honourer, fee rate): a format honouring the department store's cards keeps 0.6% of what it is paid.
FEE_RULES = [("LE_DEPT", "LE_SUPER", Decimal("0.0060")), ("LE_DEPT", "LE_ELEC", Decimal("0.0060"))]
# Each POS system writes its own file: headers, time format, encoding.
POS_LAYOUTS = {
    "DEPT": {"name": "百货POS日结文件", "encoding": PosFileLayout.Encoding.UTF8, "datetime_format": "%Y-%m-%d %H:%M:%S",
             "columns": {"store_code": "门店编码", "occurred_at": "交易时间", "receipt_no": "小票号",
                         "card_no": "卡号", "member_no": "会员号", "amount": "金额"}},
    "SUPER": {"name": "超市POS日结文件（GBK）", "encoding": PosFileLayout.Encoding.GBK,
              "datetime_format": "%Y/%m/%d %H:%M",
              "columns": {"store_code": "门店", "occurred_at": "销售时间", "receipt_no": "流水号",
                          "card_no": "储值卡号", "member_no": "会员卡号", "amount": "实收金额"}},
    "ELEC": {"name": "电器POS日结文件", "encoding": PosFileLayout.Encoding.AUTO, "datetime_format": "%Y%m%d%H%M%S",
             "columns": {"store_code": "店号", "occurred_at": "交易时间", "receipt_no": "单据号", "card_no": "卡号",
                         "member_no": "会员号", "amount": "交易金额"}},
    "AUTO": {"name": "汽贸收银日结文件", "encoding": PosFileLayout.Encoding.UTF8,
             "datetime_format": "%Y-%m-%d %H:%M:%S",
             "columns": {"store_code": "门店代码", "occurred_at": "收款时间", "receipt_no": "单号",
                         "card_no": "预付卡号", "member_no": "会员编号", "amount": "收款金额"}},
}
DEFAULT_POS_LAYOUT = POS_LAYOUTS["DEPT"]
MISSING_RECEIPT = "DEMO-STL-NOLEDGER"
MISSING_AMOUNT = Decimal("66.00")
DIFFERENCE = Decimal("10.00")


def demo_card_no(index: int) -> str:
    body = f"{CARD_PREFIX}{index:011d}"
    return body + luhn.calc_check_digit(body)


def demo_days(today: date) -> dict[str, date]:
    """The demo's days: the closed month is the month before the one of three days ago, so the reconciled day
    (three days ago) and the open day (two days ago) always fall in an open month."""
    reconciled = today - timedelta(days=3)
    closed_start = months_add(reconciled.replace(day=1), -1)
    return {
        "closed_start": closed_start,
        "closed_end": reconciled.replace(day=1) - timedelta(days=1),
        "reconciled": reconciled,
        "open": today - timedelta(days=2),
        "yesterday": today - timedelta(days=1),
    }


def settlement_seed(*, stdout=None, today: date | None = None) -> dict:
    """Make sure the settlement demo exists; return what it holds (see the module's docstring)."""
    today = today or timezone.localdate()
    days = demo_days(today)
    users = _users()
    result = {"rules": _rules(), "pos_layouts": _pos_layouts(), "finance_layouts": _finance_layouts()}
    cards = _cards(start=days["closed_start"])
    result["payments"] = sum(_day_payments(day=day, cards=cards, days=days)
                             for day in _dates(days["closed_start"], days["yesterday"]))
    result["clearing_runs"] = _clearing(days["closed_start"], days["yesterday"])
    file_days = [*_dates(days["closed_start"], days["closed_end"]), days["reconciled"], days["open"]]
    result["pos_files"] = sum(_day_files(day=day, days=days, user=users["finance_hq"]) for day in file_days)
    period = _close(period_for_day(days["closed_start"]), users=users, stdout=stdout)
    result.update(
        closed_period=period.code, closed_status=period.status, statements=period.statements.count(),
        reconciled_day=days["reconciled"], open_day=days["open"],
        open_exceptions=ReconDay.objects.filter(store__code=OPEN_DAY_STORE, business_date=days["open"])
        .values_list("exceptions_open", flat=True).first() or 0,
    )
    if stdout is not None:
        stdout.write(
            f"Settlement: {result['rules']} clearing rules, {result['pos_layouts']} POS layouts and "
            f"{result['finance_layouts']} finance layouts created; {result['payments']} card payments, "
            f"{result['clearing_runs']} clearing runs and {result['pos_files']} POS files made; period "
            f"{period.code} {period.status} with {result['statements']} statements; {OPEN_DAY_STORE} "
            f"{days['open']:%Y-%m-%d} has {result['open_exceptions']} open exceptions."
        )
    return result


def _dates(start: date, end: date) -> list[date]:
    return [start + timedelta(days=offset) for offset in range((end - start).days + 1)]


def _moment(day: date, minutes: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(9)) + timedelta(minutes=minutes))


def _users() -> dict:
    """The demo's finance staff and approver (stores.demo's DEMO_STAFF); made plainly when seed_staff did not."""
    users = {}
    for username in ("finance_hq", "hq_approver"):
        users[username], _created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": True})
    return users


def _rules() -> int:
    entities = {entity.code: entity for entity in LegalEntity.objects.all()}
    created = 0
    for entity in entities.values():
        created += ClearingRule.objects.get_or_create(issuer=entity, honourer=None, defaults={
            "card_fee_rate": Decimal("0"), "note": "演示数据：按面值结算，积分按积分政策兑现比例"})[1]
    for issuer, honourer, rate in FEE_RULES:
        if issuer in entities and honourer in entities:
            created += ClearingRule.objects.get_or_create(
                issuer=entities[issuer], honourer=entities[honourer],
                defaults={"card_fee_rate": rate, "note": "演示数据：受理他方预付卡收取0.6%服务费"})[1]
    return created


def _pos_layouts() -> int:
    created = 0
    for pos_format in Format.objects.exclude(pos_system_code="").order_by("code"):
        if PosFileLayout.objects.filter(pos_system_code=pos_format.pos_system_code).exists():
            continue
        values = POS_LAYOUTS.get(pos_format.code, DEFAULT_POS_LAYOUT)
        columns = pos_layout_clean(columns=values["columns"], file_type=PosFileLayout.FileType.CSV,
                                   encoding=values["encoding"], datetime_format=values["datetime_format"])
        PosFileLayout.objects.create(
            code=pos_format.pos_system_code[:20], name=values["name"], pos_system_code=pos_format.pos_system_code,
            file_type=PosFileLayout.FileType.CSV, encoding=values["encoding"], columns=columns,
            datetime_format=values["datetime_format"], time_window_minutes=30,
        )
        created += 1
    return created


def _finance_layouts() -> int:
    before = _finance_layout_count()
    codes = Format.objects.exclude(finance_system_code="").values_list("finance_system_code", flat=True)
    for code in sorted(set(codes)):
        finance_layouts_ensure(finance_system_code=code)
    return _finance_layout_count() - before


def _finance_layout_count() -> int:
    from settlement.models import FinanceExportLayout

    return FinanceExportLayout.objects.count()


# --- card payments at the tills --------------------------------------------------------------------------


def _cards(*, start: date) -> list[Card]:
    """The demo's cards, each sold and loaded at a company's first store on the morning of `start`."""
    stores = {store.code: store for store in Store.objects.select_related("format__legal_entity")
              .filter(code__in=HOME_STORES)}
    product = CardProduct.objects.filter(code="STORED").first()
    wanted = [demo_card_no(index) for index in range(1, CARD_COUNT + 1)]
    existing = set(Card.objects.filter(card_no__in=wanted).values_list("card_no", flat=True))
    if product is not None and stores:
        homes = [stores[code] for code in HOME_STORES if code in stores]
        for index, card_no in enumerate(wanted, start=1):
            if card_no not in existing:
                _card_sell(card_no=card_no, product=product, home=homes[index % len(homes)],
                           sold_at=_moment(start, -60 + index))
    return list(Card.objects.filter(card_no__in=wanted).order_by("card_no"))


@transaction.atomic
def _card_sell(*, card_no: str, product: CardProduct, home: Store, sold_at: datetime) -> None:
    card = Card.objects.create(
        card_no=card_no, product=product, status=Card.Status.INACTIVE, stock_status=Card.Stock.SOLD,
        sold_store=home, issuer=home.format.legal_entity, holder_name="结算演示", face_value=CARD_LOAD,
        created_at=sold_at,
    )
    card_event(card=card, kind=CardEvent.Kind.SOLD, store=home, note="演示数据：结算演示卡")
    card_status_change(card=card, status=Card.Status.ACTIVE, event=CardEvent.Kind.ACTIVATED, store=home,
                       activated_at=sold_at)
    cap = card_cap(card)
    card_post(card=card, kind=CardLedgerEntry.Kind.LOAD, amount=min(CARD_LOAD, cap), store=home, cap=cap,
              receipt_no=f"DEMO-STL-S-{card_no[-6:]}", reason="演示数据：售卡", created_at=sold_at)


def _receipt_prefix(day: date) -> str:
    return f"DEMO-STL-{day:%Y%m%d}-"


def _day_payments(*, day: date, cards: list[Card], days: dict[str, date]) -> int:
    """The day's card payments at the tills (and now and then a refund), made once; return how many."""
    prefix = _receipt_prefix(day)
    if not cards or CardTransaction.objects.filter(receipt_no__startswith=prefix).exists():
        return 0
    stores = {store.code: store for store in Store.objects.select_related("format__legal_entity")
              .filter(code__in=PAYMENT_STORES)}
    rng = random.Random(DEMO_SEED + day.toordinal())
    codes = [code for code in PAYMENT_STORES if code in stores]
    # The reconciliation days have a payment at every till; the others at a few stores.
    if day not in (days["reconciled"], days["open"]):
        codes = rng.sample(codes, k=min(3, len(codes)))
    made = 0
    with transaction.atomic():
        for code in codes:
            for step in range(rng.randint(1, 3)):
                # Amounts in half yuan: SQLite adds decimals as binary floats, which hold halves exactly.
                amount = Decimal(rng.randint(40, 600)) / 2
                card = _card_with(cards, amount, rng)
                if card is None:
                    return made
                payment = _payment(card=card, store=stores[code], amount=amount, receipt_no=f"{prefix}{code}-{step}",
                                   at=_moment(day, rng.randint(0, 600)))
                made += 1
                if step == 0 and day.day % 9 == 0:
                    _refund(original=payment, amount=(amount / 2).quantize(Decimal("1")),
                            receipt_no=f"{prefix}{code}-R", at=payment.created_at + timedelta(hours=1))
                    made += 1
    return made


def _card_with(cards: list[Card], amount: Decimal, rng: random.Random) -> Card | None:
    start = rng.randrange(len(cards))
    for offset in range(len(cards)):
        card = cards[(start + offset) % len(cards)]
        if card.balance >= amount:
            return card
    return None


def _transaction_id(receipt_no: str) -> str:
    return "STL" + receipt_no.removeprefix("DEMO-STL-").replace("-", "")


def _payment(*, card: Card, store: Store, amount: Decimal, receipt_no: str, at: datetime) -> CardTransaction:
    """A till's card payment of a past day, as card_debit records it (a transaction and its ledger row)."""
    record = CardTransaction.objects.create(
        transaction_id=_transaction_id(receipt_no), kind=CardTransaction.Kind.DEBIT,
        card=card, amount=amount, charged=amount, balance_after=card.balance - amount, store=store,
        receipt_no=receipt_no, business_date=timezone.localdate(at), created_at=at,
    )
    card_post(card=card, kind=CardLedgerEntry.Kind.DEBIT, amount=-amount, store=store, receipt_no=receipt_no,
              transaction_record=record, created_at=at)
    return record


def _refund(*, original: CardTransaction, amount: Decimal, receipt_no: str, at: datetime) -> None:
    card = original.card
    cap = card_cap(card)
    record = CardTransaction.objects.create(
        transaction_id=_transaction_id(receipt_no),
        kind=CardTransaction.Kind.REFUND, card=card, amount=amount, charged=amount,
        balance_after=card.balance + amount, original=original, store=original.store, receipt_no=receipt_no,
        business_date=timezone.localdate(at), created_at=at,
    )
    CardTransaction.objects.filter(pk=original.pk).update(refunded=original.refunded + amount)
    card_post(card=card, kind=CardLedgerEntry.Kind.REFUND, amount=amount, store=original.store, cap=cap,
              receipt_no=receipt_no, transaction_record=record, created_at=at)


# --- clearing, POS files, the close ----------------------------------------------------------------------


def _clearing(start: date, end: date) -> int:
    """A clearing run for each day without a finished one (days of a locked period are left as they are)."""
    done = set(ClearingRun.objects.filter(business_date__range=(start, end), status=ClearingRun.Status.DONE)
               .values_list("business_date", flat=True))
    made = 0
    for day in _dates(start, end):
        if day in done or period_for_day(day).status != SettlementPeriod.Status.OPEN:
            continue
        clearing_day_run(day=day)
        made += 1
    return made


def _layout_for(pos_format: Format) -> PosFileLayout | None:
    return PosFileLayout.objects.filter(pos_system_code=pos_format.pos_system_code, is_active=True,
                                        file_type=PosFileLayout.FileType.CSV).order_by("code").first()


def _day_files(*, day: date, days: dict[str, date], user) -> int:
    """Each format's POS file of the day, written from its card payments as the till would, imported once."""
    if period_for_day(day).status != SettlementPeriod.Status.OPEN:
        return 0
    made = 0
    payments = (CardTransaction.objects.filter(business_date=day).select_related("store__format", "card")
                .order_by("created_at", "pk"))
    by_format: dict[int, list[CardTransaction]] = {}
    for payment in payments:
        by_format.setdefault(payment.store.format_id, []).append(payment)
    for pos_format in Format.objects.filter(pk__in=list(by_format)).order_by("code"):
        layout = _layout_for(pos_format)
        if layout is None or PosFile.objects.filter(format=pos_format, business_date=day).exists():
            continue
        content = _file_content(layout, by_format[pos_format.pk], planted=day == days["open"])
        pos_file_import(layout=layout, uploaded=ContentFile(content, name=f"{layout.code}-{day:%Y%m%d}.csv"),
                        business_date=day, user=user, format=pos_format)
        made += 1
    return made


def _file_content(layout: PosFileLayout, payments: list[CardTransaction], *, planted: bool) -> bytes:
    """The CSV a till writes for the day; on the open day, DEPT001's two planted differences."""
    fields = [field for field in PosFileLayout.FIELDS if field in layout.columns]
    rows = []
    differs_planted = False
    for payment in payments:
        amount = payment.charged if payment.kind == CardTransaction.Kind.DEBIT else -payment.charged
        if (planted and not differs_planted and payment.store.code == OPEN_DAY_STORE
                and payment.kind == CardTransaction.Kind.DEBIT):
            amount += DIFFERENCE
            differs_planted = True
        rows.append({"store_code": payment.store.code, "occurred_at": timezone.localtime(payment.created_at),
                     "receipt_no": payment.receipt_no, "card_no": payment.card.card_no, "member_no": "",
                     "amount": amount})
    if planted and any(payment.store.code == OPEN_DAY_STORE for payment in payments):
        last = next(payment for payment in reversed(payments) if payment.store.code == OPEN_DAY_STORE)
        rows.append({"store_code": OPEN_DAY_STORE, "occurred_at": timezone.localtime(last.created_at),
                     "receipt_no": MISSING_RECEIPT, "card_no": last.card.card_no, "member_no": "",
                     "amount": MISSING_AMOUNT})
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=layout.delimiter or ",")
    writer.writerow([layout.columns[field] for field in fields])
    for row in rows:
        writer.writerow([
            row[field].strftime(layout.datetime_format) if field == "occurred_at" else
            f"{row[field]:.2f}" if field == "amount" else row[field]
            for field in fields
        ])
    encoding = "gbk" if layout.encoding == PosFileLayout.Encoding.GBK else "utf-8"
    return buffer.getvalue().encode(encoding)


def _close(period: SettlementPeriod, *, users: dict, stdout=None) -> SettlementPeriod:
    """Ask to close the period as finance_hq and approve it as hq_approver (each once)."""
    if period.status == SettlementPeriod.Status.OPEN:
        problems = period_close_problems(period)
        if problems:
            if stdout is not None:
                stdout.write(f"Settlement: period {period.code} left open: {' '.join(problems)}")
            return period
        period_close_request(period=period, user=users["finance_hq"], reason="演示数据：月末结账，对账已完成")
        period.refresh_from_db()
    if period.status == SettlementPeriod.Status.CLOSING:
        pending = ApprovalRequest.objects.filter(
            action="settlement.period_lock", object_id=str(period.pk), status=ApprovalRequest.Status.PENDING,
        ).order_by("pk").first()
        if pending is not None:
            approval_request_approve(approval_request=pending, approver=users["hq_approver"],
                                     comment="演示数据：核对无误，同意锁定")
            period.refresh_from_db()
    return period
