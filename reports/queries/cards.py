"""The prepaid card report (储值卡报表): card sales by store, format and channel with the walk-in and group shares and
the growth on the same days a year earlier, card spending by format, orders paid by card, the outstanding balance
with its ageing, and the escrow due. Definitions: docs/metrics.md, section cards.

Every number is one aggregate in the database: sales from the completed sale orders, spending from the card ledger
(payments, refunds and reversals), orders from the POS card transactions, the outstanding balance from the card
balances taken back by the ledger written since the period's end (cards.queries.liability's method).

The helpers at the top (months, formats, money sums, a union of GROUP BYs streamed from a cursor) are shared by the
points and cross-format reports.
"""

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, DecimalField, F, IntegerField, Q, QuerySet, Sum, Value
from django.db.models.functions import TruncDate
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from cards.models import Card, CardLedgerEntry, CardTransaction, SaleOrder
from cards.queries.liability import liability_report
from core.dates import months_add
from core.numbers import money_total
from reports.frame import NO_DATA, Chart, Column, Figure, Report, ReportParams, Series, Table, register, share
from settlement.queries.liability import AGEING_BUCKETS, card_ageing
from stores.models import Format, Store

ZERO = Decimal("0.00")
MONTHS_SHOWN = 13
CHUNK = 5000
# Card ledger kinds that are spending at a till: payments, refunds of them and reversals of either (signed).
SPEND_KINDS = (CardLedgerEntry.Kind.DEBIT, CardLedgerEntry.Kind.REFUND, CardLedgerEntry.Kind.REVERSE)
NO_FORMAT = _("no store")


# --- shared helpers ------------------------------------------------------------------------------------------------


def money_sum(expression, **extra) -> Sum:
    return Sum(expression, output_field=DecimalField(max_digits=18, decimal_places=2), **extra)


def money_zero() -> Value:
    return Value(ZERO, output_field=DecimalField(max_digits=18, decimal_places=2))


def count_zero() -> Value:
    return Value(0, output_field=IntegerField())


def months_up_to(end: date, count: int = MONTHS_SHOWN) -> list[tuple[str, date, date]]:
    """The `count` calendar months up to `end`'s month, oldest first: (label "2026-11", first day, last day), the
    last one ending on `end` (never past it, so a report does not depend on when it runs)."""
    first_of_last = end.replace(day=1)
    months = []
    for back in range(count - 1, -1, -1):
        first = months_add(first_of_last, -back)
        last = min(months_add(first, 1) - timedelta(days=1), end)
        months.append((f"{first.year}-{first.month:02d}", first, last))
    return months


def month_filters(months: Sequence[tuple[str, date, date]], path: str, *, dates: bool = False) -> list[Q]:
    """One Q per month on `path`: a datetime field in the month's local days, or a date field (dates=True)."""
    filters = []
    for _label, first, last in months:
        if dates:
            filters.append(Q(**{f"{path}__gte": first, f"{path}__lte": last}))
        else:
            low, high = ReportParams(start=first, end=last).moments()
            filters.append(Q(**{f"{path}__gte": low, f"{path}__lt": high}))
    return filters


def formats_in_scope(params: ReportParams, *extra_ids) -> list[Format]:
    """The formats a report lists: those of the stores asked (every format for headquarters), and any other
    format that has numbers (`extra_ids`), by code."""
    if params.store_ids is None:
        wanted = Q(is_active=True)
    else:
        wanted = Q(pk__in=Store.objects.filter(pk__in=params.store_ids).values("format_id"))
    ids = [pk for pk in extra_ids if pk is not None]
    return list(Format.objects.filter(wanted | Q(pk__in=ids)).order_by("code"))


def stores_named(store_ids) -> dict[int, Store]:
    return Store.objects.select_related("format").in_bulk([pk for pk in store_ids if pk is not None])


def union_grouped(parts: Sequence[QuerySet], outer: str, names: Sequence[str], after: Sequence = ()) -> Iterator[tuple]:
    """Stream the rows of `outer` (SQL with `{union}` for the UNION ALL of `parts`, each a values() queryset with
    the same columns) from a server-side cursor where the database has one, CHUNK rows at a time.

    `names` are the tables outer joins, given as {0}, {1} ... (quoted here); `after` the parameters of outer's own
    placeholders (%s), which all come after `{union}`."""
    sqls, params = [], []
    for part in parts:
        sql, part_params = part.order_by().query.sql_with_params()
        sqls.append(f"SELECT * FROM ({sql}) part_{len(sqls)}")  # noqa: S608 - SQL compiled by the ORM
        params.extend(part_params)
    quote = connection.ops.quote_name
    statement = outer.format(*(quote(name) for name in names), union=" UNION ALL ".join(sqls))
    with connection.chunked_cursor() as cursor:
        cursor.execute(statement, [*params, *after])
        while rows := cursor.fetchmany(CHUNK):
            yield from rows


def day_value(value) -> date:
    """A day from a raw SQL row: a date (PostgreSQL) or its ISO text (SQLite)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    return value


def format_label(format_id, formats: dict) -> str:
    if format_id is None:
        return str(NO_FORMAT)
    found = formats.get(format_id)
    return found.name if found else str(format_id)


# --- card queries --------------------------------------------------------------------------------------------------


def completed_sales(params: ReportParams) -> QuerySet:
    """Sale orders (sales and top-ups) completed in the period's local days at the stores asked."""
    low, high = params.moments()
    return SaleOrder.objects.order_by().filter(
        params.store_q("store"), status=SaleOrder.Status.COMPLETED, completed_at__gte=low, completed_at__lt=high,
    )


def sales_sums() -> dict:
    walk_in = Q(channel=SaleOrder.Channel.WALK_IN)
    group = Q(channel=SaleOrder.Channel.GROUP)
    return {
        "sales": money_sum("face_total"),
        "walk_in": money_sum("face_total", filter=walk_in),
        "group": money_sum("face_total", filter=group),
        "received": money_sum("amount_due"),
        "order_count": Count("pk"),
    }


def spend_entries(params: ReportParams) -> QuerySet:
    """Card ledger rows of till payments, refunds and reversals written in the period at the stores asked."""
    low, high = params.moments()
    return CardLedgerEntry.objects.order_by().filter(
        params.store_q("store"), kind__in=SPEND_KINDS, created_at__gte=low, created_at__lt=high,
    )


def card_payments(params: ReportParams) -> QuerySet:
    """Card payments (debits) of the period's business days at the stores asked, not reversed by its end."""
    _low, high = params.moments()
    return CardTransaction.objects.order_by().filter(
        params.store_q("store"), kind=CardTransaction.Kind.DEBIT,
        business_date__gte=params.start, business_date__lte=params.end,
    ).filter(Q(reversed_at__isnull=True) | Q(reversed_at__gte=high))


def card_outstanding(params: ReportParams) -> Decimal:
    """Card balances at the end of the period (cards sold at the stores asked): the balances now less the ledger
    written since then, in one statement."""
    _low, high = params.moments()
    balances = (Card.objects.order_by().filter(params.store_q("sold_store"))
                .aggregate(total=money_sum("balance"))["total"])
    since = (CardLedgerEntry.objects.order_by().filter(params.store_q("card__sold_store"), created_at__gte=high)
             .aggregate(total=money_sum("amount"))["total"])
    return money_total(balances) - money_total(since)


def _by_format(rows, key: str) -> dict:
    return {row[key]: row for row in rows}


@register("cards", _("Prepaid cards"),
          _("Card sales by store, format and channel, walk-in and group shares, growth, card spending, outstanding "
            "balance, ageing and escrow."))
def build(params: ReportParams) -> Report:
    report = Report(kind="cards", title=str(_("Prepaid cards")), params=params)
    sales = completed_sales(params).aggregate(**sales_sums())
    last_year = completed_sales(params.previous_year()).aggregate(total=money_sum("face_total"))["total"]
    spend = spend_entries(params).aggregate(total=money_sum("amount"))["total"]
    orders = card_payments(params).count()
    card_sales = money_total(sales["sales"])
    walk_in, group = money_total(sales["walk_in"]), money_total(sales["group"])
    last = money_total(last_year)
    card_spend = -money_total(spend)
    outstanding = card_outstanding(params)
    report.figures += [
        Figure("card_sales", gettext("Card sales"), card_sales, "money"),
        Figure("card_sales_received", gettext("Card sales received (after discounts)"), money_total(sales["received"]),
               "money"),
        Figure("sale_orders", gettext("Completed sale orders"), sales["order_count"] or 0, "count"),
        Figure("walk_in_sales", gettext("Walk-in sales"), walk_in, "money"),
        Figure("group_sales", gettext("Group sales"), group, "money"),
        Figure("walk_in_share", gettext("Walk-in share"), share(walk_in, card_sales), "percent"),
        Figure("group_share", gettext("Group share"), share(group, card_sales), "percent"),
        Figure("card_sales_last_year", gettext("Card sales a year earlier"), last, "money"),
        Figure("card_sales_growth", gettext("Card sales growth"), share(card_sales - last, last), "percent"),
        Figure("card_spend", gettext("Card spending"), card_spend, "money"),
        Figure("card_orders", gettext("Orders paid by card"), orders, "count"),
        Figure("card_outstanding", gettext("Outstanding card balance"), outstanding, "money"),
    ]
    _escrow_and_ageing(report, params)
    _tables_and_charts(report, params)
    if not (card_sales or last or card_spend or orders or outstanding):
        report.notes.append(str(NO_DATA))
    report.detail = Table(
        "detail", gettext("Card sales and spending per store and day"),
        [Column("date", gettext("Date"), "date"), Column("store", gettext("Store"), "text"),
         Column("format", gettext("Format"), "text"), Column("sales", gettext("Card sales"), "money"),
         Column("walk_in", gettext("Walk-in sales"), "money"), Column("group", gettext("Group sales"), "money"),
         Column("spend", gettext("Card spending"), "money"), Column("orders", gettext("Orders paid by card"), "count")],
        detail_rows(params),
    )
    return report


def _escrow_and_ageing(report: Report, params: ReportParams) -> None:
    buckets = [f"ageing_{bucket}" for bucket in AGEING_BUCKETS]
    if params.store_ids is not None:
        report.figures.append(Figure("escrow_required", gettext("Escrow required"), None, "money"))
        report.figures += [Figure(key, str(label), None, "money")
                           for key, label in zip(buckets, AGEING_BUCKETS.values(), strict=True)]
        report.notes.append(gettext("Escrow and ageing are the group's figures: shown for headquarters only."))
        return
    liability = liability_report(today=params.end)
    report.figures.append(Figure(
        "escrow_required", gettext("Escrow required"), liability.escrow, "money",
        note=gettext("For the quarter of {day}: the rate times the outstanding balance of {base_day}.").format(
            day=params.end.isoformat(), base_day=liability.quarter_ends[-1].isoformat()),
    ))
    ageing = card_ageing(at=params.end)
    report.figures += [
        Figure(key, gettext("Outstanding {age}").format(age=label), getattr(ageing.totals, bucket), "money")
        for key, (bucket, label) in zip(buckets, AGEING_BUCKETS.items(), strict=True)
    ]
    report.tables.append(Table(
        "ageing", gettext("Outstanding balance by age and issuer"),
        [Column("issuer", gettext("Issuer"), "text")]
        + [Column(bucket, str(label), "money") for bucket, label in AGEING_BUCKETS.items()]
        + [Column("total", gettext("Total"), "money"), Column("cards", gettext("Cards"), "count")],
        [(row.label, *(getattr(row, bucket) for bucket in AGEING_BUCKETS), row.total, row.cards)
         for row in ageing.rows],
    ))


def _tables_and_charts(report: Report, params: ReportParams) -> None:
    format_path = "store__format_id"
    sales = _by_format(completed_sales(params).values(format_path).annotate(**sales_sums()), format_path)
    last = _by_format(completed_sales(params.previous_year()).values(format_path)
                      .annotate(sales=money_sum("face_total")), format_path)
    spend = _by_format(spend_entries(params).values(format_path).annotate(spend=money_sum("amount")), format_path)
    orders = _by_format(card_payments(params).values(format_path).annotate(orders=Count("pk")), format_path)
    formats = formats_in_scope(params, *sales, *last, *spend, *orders)
    rows = []
    for item in formats:
        row = sales.get(item.pk, {})
        rows.append((
            item.name, money_total(row.get("sales")), money_total(row.get("walk_in")), money_total(row.get("group")),
            -money_total(spend.get(item.pk, {}).get("spend")), orders.get(item.pk, {}).get("orders", 0),
            money_total(last.get(item.pk, {}).get("sales")),
        ))
    money_columns = [Column("sales", gettext("Card sales"), "money"),
                     Column("walk_in", gettext("Walk-in sales"), "money"),
                     Column("group", gettext("Group sales"), "money"),
                     Column("spend", gettext("Card spending"), "money"),
                     Column("orders", gettext("Orders paid by card"), "count")]
    report.tables.append(Table(
        "by_format", gettext("By format"),
        [Column("format", gettext("Format"), "text"), *money_columns,
         Column("last_year", gettext("Card sales a year earlier"), "money")],
        rows,
    ))
    report.tables.append(_by_store(params, money_columns))
    report.tables.append(_by_channel(params))
    categories = [row[0] for row in rows]
    report.charts += [
        Chart("card_sales_by_format", gettext("Card sales by format"), "column", categories,
              [Series(gettext("This year"), [row[1] for row in rows]),
               Series(gettext("A year earlier"), [row[6] for row in rows])], "money"),
        Chart("card_spend_by_format", gettext("Card spending by format"), "column", categories,
              [Series(gettext("Card spending"), [row[4] for row in rows])], "money"),
        _by_month_chart(params),
        Chart("walk_in_vs_group", gettext("Walk-in and group sales"), "pie",
              [gettext("Walk-in"), gettext("Group")],
              [Series(gettext("Card sales"), [report.figure("walk_in_sales").value,
                                              report.figure("group_sales").value])], "money"),
    ]


def _by_store(params: ReportParams, money_columns: list[Column]) -> Table:
    sales = _by_format(completed_sales(params).values("store_id").annotate(**sales_sums()), "store_id")
    spend = _by_format(spend_entries(params).values("store_id").annotate(spend=money_sum("amount")), "store_id")
    orders = _by_format(card_payments(params).values("store_id").annotate(orders=Count("pk")), "store_id")
    stores = stores_named({*sales, *spend, *orders})
    rows = []
    for store in sorted(stores.values(), key=lambda store: store.code):
        row = sales.get(store.pk, {})
        rows.append((
            store.code, store.name, store.format.name, money_total(row.get("sales")), money_total(row.get("walk_in")),
            money_total(row.get("group")), -money_total(spend.get(store.pk, {}).get("spend")),
            orders.get(store.pk, {}).get("orders", 0),
        ))
    return Table(
        "by_store", gettext("By store"),
        [Column("code", gettext("Store code"), "text"), Column("store", gettext("Store"), "text"),
         Column("format", gettext("Format"), "text"), *money_columns],
        rows,
    )


def _by_channel(params: ReportParams) -> Table:
    grouped = {
        (row["channel"], row["kind"]): row
        for row in completed_sales(params).values("channel", "kind")
        .annotate(sales=money_sum("face_total"), orders=Count("pk"))
    }
    rows = []
    for channel, channel_label in SaleOrder.Channel.choices:
        sale = grouped.get((channel, SaleOrder.Kind.SALE), {})
        top_up = grouped.get((channel, SaleOrder.Kind.TOP_UP), {})
        rows.append((
            str(channel_label), money_total(sale.get("sales")), money_total(top_up.get("sales")),
            money_total(sale.get("sales")) + money_total(top_up.get("sales")),
            sale.get("orders", 0) + top_up.get("orders", 0),
        ))
    return Table(
        "by_channel", gettext("By channel"),
        [Column("channel", gettext("Channel"), "text"), Column("sales", gettext("Card sales (new cards)"), "money"),
         Column("top_ups", gettext("Top-ups"), "money"), Column("total", gettext("Total"), "money"),
         Column("orders", gettext("Completed sale orders"), "count")],
        rows,
    )


def _by_month_chart(params: ReportParams) -> Chart:
    months = months_up_to(params.end)
    whole = ReportParams(start=months[0][1], end=params.end, store_ids=params.store_ids)
    sales = completed_sales(whole).aggregate(**{
        f"m{index}": money_sum("face_total", filter=month)
        for index, month in enumerate(month_filters(months, "completed_at"))
    })
    spend = spend_entries(whole).aggregate(**{
        f"m{index}": money_sum("amount", filter=month)
        for index, month in enumerate(month_filters(months, "created_at"))
    })
    return Chart(
        "card_sales_by_month", gettext("Card sales and spending by month"), "line",
        [label for label, _first, _last in months],
        [Series(gettext("Card sales"), [money_total(sales[f"m{index}"]) for index in range(len(months))]),
         Series(gettext("Card spending"), [-money_total(spend[f"m{index}"]) for index in range(len(months))])],
        "money",
    )


def detail_rows(params: ReportParams) -> Iterator[tuple]:
    """Per store and local day: date, store code, format, sales, walk-in, group, spending, orders paid by card.

    One statement: the three sources grouped per store and day, put together by UNION ALL and summed per store and
    day, streamed."""
    walk_in = Q(channel=SaleOrder.Channel.WALK_IN)
    group = Q(channel=SaleOrder.Channel.GROUP)
    sales = (completed_sales(params).annotate(day=TruncDate("completed_at")).values("store_id", "day")
             .annotate(sales=money_sum("face_total"), walk_in=money_sum("face_total", filter=walk_in),
                       group_sales=money_sum("face_total", filter=group), spend=money_zero(), orders=count_zero()))
    spend = (spend_entries(params).filter(store__isnull=False).annotate(day=TruncDate("created_at"))
             .values("store_id", "day")
             .annotate(sales=money_zero(), walk_in=money_zero(), group_sales=money_zero(),
                       spend=money_sum(-F("amount")), orders=count_zero()))
    orders = (card_payments(params).annotate(day=F("business_date")).values("store_id", "day")
              .annotate(sales=money_zero(), walk_in=money_zero(), group_sales=money_zero(), spend=money_zero(),
                        orders=Count("pk")))
    outer = (
        "SELECT u.day, s.code, f.name, SUM(u.sales), SUM(u.walk_in), SUM(u.group_sales), SUM(u.spend), "  # noqa: S608
        "SUM(u.orders) FROM ({union}) u JOIN {0} s ON s.id = u.store_id JOIN {1} f ON f.id = s.format_id "
        "GROUP BY u.day, s.code, f.name ORDER BY u.day, s.code"
    )
    names = (Store._meta.db_table, Format._meta.db_table)
    for day, code, format_name, day_sales, day_walk_in, day_group, day_spend, day_orders in union_grouped(
            [sales, spend, orders], outer, names):
        yield (day_value(day), code, format_name, money_total(day_sales), money_total(day_walk_in),
               money_total(day_group), money_total(day_spend), int(day_orders or 0))
