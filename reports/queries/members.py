"""The members report (会员报表): members at the period's end, new and consuming members, the conversion of new
members to a first purchase, the member share of sales, the first-year repurchase rate and the digitisation rate,
per store, format and registration channel. Definitions: docs/metrics.md, section members.

Every number is an aggregate in the database (COUNT, SUM, GROUP BY, EXISTS); no member or purchase is read into
Python. A report restricted to stores counts the stores' members by the rule of membership.queries.members_in_scope
(registered at one of them, or bought at one of them in the 12 months before the period's end), computed here from
the period's end rather than from today, so the same parameters always give the same numbers.

The helpers at the top (the scope's members, the period's purchases, money sums, months) are shared by the tiers
and staff reports.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, DecimalField, Exists, F, Min, OuterRef, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.dates import moment_months_add
from core.numbers import money_total
from membership.models import Member, Purchase
from membership.queries import MEMBER_SCOPE_MONTHS
from membership.services import LIVE_STATUSES
from reports.frame import NO_DATA, Chart, Column, Figure, Report, ReportParams, Series, Table, register, share
from reports.queries.cards import month_filters, months_up_to
from stores.models import Format, Store

ZERO = Decimal("0.00")


# --- shared helpers ------------------------------------------------------------------------------------------------


def net_sum(prefix: str = "", **extra) -> Sum:
    """The net amount of purchases (amount less what returns took back), summed."""
    return Sum(F(f"{prefix}amount") - F(f"{prefix}returned_amount"),
               output_field=DecimalField(max_digits=18, decimal_places=2), **extra)


def period_end(params: ReportParams) -> datetime:
    """The first moment after the period: local midnight after `params.end`."""
    return params.moments()[1]


def scope_since(params: ReportParams) -> datetime:
    """The start of the 12 months before the period's end that make a buyer one of a store's members."""
    return moment_months_add(timezone.localtime(period_end(params)), -MEMBER_SCOPE_MONTHS)


def live_members() -> QuerySet:
    """Member records that are members: active or frozen (merged records are the same person as their survivor,
    closed ones have left)."""
    return Member.objects.filter(status__in=LIVE_STATUSES)


def scope_members(params: ReportParams) -> QuerySet:
    """The members at the period's end: live, registered before the end, and for a report restricted to stores
    registered at one of them or with a purchase at one of them in the 12 months before the end."""
    members = live_members().filter(registered_at__lt=period_end(params))
    if params.store_ids is None:
        return members
    buyers = Purchase.objects.filter(
        store_id__in=params.store_ids, occurred_at__gte=scope_since(params), occurred_at__lt=period_end(params),
        member__isnull=False,
    ).values("member_id")
    # An IN over the stores' recent buyers, not an EXISTS per member: the database hashes the buyers once.
    return members.filter(Q(registered_store_id__in=params.store_ids) | Q(pk__in=buyers))


def new_members(params: ReportParams) -> QuerySet:
    """Members registered in the period (at the stores asked, for a report restricted to stores)."""
    start, end = params.moments()
    return live_members().filter(registered_at__gte=start, registered_at__lt=end, **_registered_at_stores(params))


def _registered_at_stores(params: ReportParams) -> dict:
    return {} if params.store_ids is None else {"registered_store_id__in": params.store_ids}


def period_purchases(params: ReportParams) -> QuerySet:
    """Every receipt of the period at the stores asked, with or without a member."""
    start, end = params.moments()
    return Purchase.objects.filter(occurred_at__gte=start, occurred_at__lt=end, **_at_stores(params))


def _at_stores(params: ReportParams) -> dict:
    return {} if params.store_ids is None else {"store_id__in": params.store_ids}


def kept(queryset: QuerySet) -> QuerySet:
    """Receipts that are a purchase for counting members: not wholly returned."""
    return queryset.filter(amount__gt=F("returned_amount"))


def converted(until: datetime) -> Exists:
    """Whether the member (the outer row) made a purchase at any store at or after registering and before `until`."""
    return Exists(kept(Purchase.objects.filter(
        member=OuterRef("pk"), occurred_at__gte=OuterRef("registered_at"), occurred_at__lt=until)))



def stores_in_scope(params: ReportParams) -> list[dict]:
    """The stores a report lists, by code: id, code, name, format_id, format name."""
    stores = Store.objects.all() if params.store_ids is None else Store.objects.filter(pk__in=params.store_ids)
    return list(stores.order_by("code").values("id", "code", "name", "format_id", format_name=F("format__name")))


def formats_in_scope(params: ReportParams, *extra_ids) -> list[dict]:
    """The formats a report lists (those of its stores, and any other with numbers), by code: id, code, name."""
    if params.store_ids is None:
        wanted = Q()
    else:
        wanted = Q(pk__in=Store.objects.filter(pk__in=params.store_ids).values("format_id")) | Q(
            pk__in=[pk for pk in extra_ids if pk is not None])
    return list(Format.objects.filter(wanted).order_by("code").values("id", "code", "name"))


def grouped(queryset: QuerySet, key: str, **aggregates) -> dict:
    """{key value: {aggregate name: value}} of one GROUP BY."""
    return {row.pop(key): row for row in queryset.order_by().values(key).annotate(**aggregates)}


def _cell(rows: dict, key, name: str, default=0):
    row = rows.get(key)
    value = row.get(name) if row else None
    return default if value is None else value


# --- the numbers ---------------------------------------------------------------------------------------------------


def members_total(params: ReportParams) -> int:
    """members_total: live members registered before the period's end (in scope)."""
    return scope_members(params).count()


def members_digital(params: ReportParams) -> int:
    """Members reachable digitally: with a phone of their own, registered through the app, or reached on WeChat."""
    return scope_members(params).filter(digital_q()).count()


def digital_q() -> Q:
    return ~Q(phone="") | Q(registered_channel=Member.Channel.APP) | Q(contact_channel=Member.ContactChannel.WECHAT)


def members_new(params: ReportParams) -> dict:
    """members_new and those of them with a purchase at any store by the period's end (new_member_conversion)."""
    rows = new_members(params).annotate(converted_flag=converted(period_end(params))).aggregate(
        new=Count("pk"), converted=Count("pk", filter=Q(converted_flag=True)))
    return {"new": rows["new"] or 0, "converted": rows["converted"] or 0}


def members_consuming(params: ReportParams) -> int:
    """members_consuming: distinct members with a purchase (not wholly returned) in the period at the stores."""
    row = kept(period_purchases(params)).filter(member__isnull=False).aggregate(n=Count("member_id", distinct=True))
    return row["n"] or 0


def sales(params: ReportParams) -> dict:
    """sales_total and member_sales: net amounts of the period's receipts at the stores."""
    row = period_purchases(params).aggregate(total=net_sum(), member=net_sum(filter=Q(member__isnull=False)))
    return {"total": money_total(row["total"]), "member": money_total(row["member"])}


# GROUPING(store, format, channel) of each grouping set of _period_sums_grouped, and the name of its rows.
_GROUPING_SETS = {7: "all", 3: "store", 5: "format", 6: "channel"}


def period_sums(params: ReportParams) -> dict:
    """The period's consuming members ("n"), net sales ("total") and member sales ("member") at the stores, in
    total ("all": one row) and per store, per format and per member's registration channel ({id or channel: row}).
    On PostgreSQL one statement reads the period's receipts once (GROUPING SETS); elsewhere one GROUP BY per set."""
    return _period_sums_grouped(params) if connection.vendor == "postgresql" else _period_sums_each(params)


def _period_sums_each(params: ReportParams) -> dict:
    purchases = period_purchases(params)
    bought = kept(purchases).filter(member__isnull=False)
    sums = {"all": {"n": members_consuming(params),
                    **purchases.aggregate(total=net_sum(), member=net_sum(filter=Q(member__isnull=False)))}}
    for name, key in (("store", "store_id"), ("format", "format_id")):
        sums[name] = _merged(grouped(bought, key, n=Count("member_id", distinct=True)),
                             grouped(purchases, key, total=net_sum(), member=net_sum(filter=Q(member__isnull=False))))
    sums["channel"] = _merged(
        grouped(bought, "member__registered_channel", n=Count("member_id", distinct=True)),
        grouped(purchases.filter(member__isnull=False), "member__registered_channel", member=net_sum()))
    return sums


def _merged(*parts: dict) -> dict:
    rows: dict = {}
    for part in parts:
        for key, row in part.items():
            rows.setdefault(key, {}).update(row)
    return rows


def _period_sums_grouped(params: ReportParams) -> dict:
    result: dict = {name: {} for name in _GROUPING_SETS.values()}
    start, end = params.moments()
    args: list = [start, end]
    at_stores = ""
    if params.store_ids is not None:
        store_ids = list(params.store_ids)
        if not store_ids:  # no store: no receipt (as store_id__in=[] gives)
            result["all"] = {"n": 0, "total": None, "member": None}
            return result
        at_stores = f" AND p.store_id IN ({', '.join(['%s'] * len(store_ids))})"
        args += store_ids
    purchase_table = connection.ops.quote_name(Purchase._meta.db_table)
    member_table = connection.ops.quote_name(Member._meta.db_table)
    sql = f"""
        SELECT GROUPING(p.store_id, p.format_id, m.registered_channel), p.store_id, p.format_id,
               m.registered_channel,
               COUNT(DISTINCT p.member_id) FILTER (WHERE p.amount > p.returned_amount),
               SUM(p.amount - p.returned_amount),
               SUM(p.amount - p.returned_amount) FILTER (WHERE p.member_id IS NOT NULL)
        FROM {purchase_table} p LEFT JOIN {member_table} m ON m.id = p.member_id
        WHERE p.occurred_at >= %s AND p.occurred_at < %s{at_stores}
        GROUP BY GROUPING SETS ((), (p.store_id), (p.format_id), (m.registered_channel))
    """  # noqa: S608 (table names from the models; every value is a parameter)
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        for grouping, store_id, format_id, channel, consuming, total, member in cursor.fetchall():
            name = _GROUPING_SETS.get(grouping)
            row = {"n": consuming or 0, "total": total, "member": member}
            if name == "all":
                result["all"] = row
            elif name == "store":
                result["store"][store_id] = row
            elif name == "format":
                result["format"][format_id] = row
            elif name == "channel" and channel is not None:  # receipts without a member have no channel
                result["channel"][channel] = row
    result["all"].setdefault("n", 0)
    return result


def first_year_repurchase(params: ReportParams) -> dict:
    """The first-year cohort and its repurchasers.

    Cohort: members whose first purchase (at the stores asked; every store for headquarters) fell in the 12 months
    ending one year before the period's end. Repurchased: of those, the members with another purchase there at
    least 24 hours after the first and less than 365 days after it. Receipts wholly returned do not count.
    """
    end = timezone.localtime(period_end(params))
    cohort_end = moment_months_add(end, -12)
    cohort_start = moment_months_add(end, -24)
    receipts = kept(Purchase.objects.filter(member__isnull=False, **_at_stores(params))).order_by()
    firsts = (receipts.filter(occurred_at__lt=cohort_end).values("member_id")
              .annotate(first=Min("occurred_at")).filter(first__gte=cohort_start))
    later = receipts.filter(occurred_at__gte=cohort_start, occurred_at__lt=cohort_end + timedelta(days=365))
    firsts_sql, firsts_params = firsts.query.sql_with_params()
    later_sql, later_params = later.values("member_id", "occurred_at").query.sql_with_params()
    if connection.vendor == "postgresql":
        day_after, year_after = "f.first + INTERVAL '1 day'", "f.first + INTERVAL '365 days'"
    else:  # Django's own SQLite function for datetime + duration (microseconds)
        day_after = "django_format_dtdelta('+', f.first, 86400000000)"
        year_after = "django_format_dtdelta('+', f.first, 31536000000000)"
    # The cohort is one GROUP BY; the repurchasers one semi-join of it with the receipts (hashed by the database),
    # not a lookup per member.
    sql = f"""
        WITH firsts AS ({firsts_sql})
        SELECT (SELECT COUNT(*) FROM firsts),
               (SELECT COUNT(*) FROM firsts f WHERE EXISTS (
                    SELECT 1 FROM ({later_sql}) r
                    WHERE r.member_id = f.member_id AND r.occurred_at >= {day_after} AND r.occurred_at < {year_after}))
    """  # noqa: S608 (the SQL of two querysets; every value is a parameter)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*firsts_params, *later_params])
        cohort, repurchased = cursor.fetchone()
    return {"cohort": cohort or 0, "repurchased": repurchased or 0}


def members_new_by_month(params: ReportParams) -> list[tuple[str, int]]:
    """New members per calendar month, the 13 months up to the period's end (one conditional COUNT each)."""
    months = months_up_to(params.end)
    low, high = ReportParams(start=months[0][1], end=months[-1][2]).moments()
    registered = live_members().filter(registered_at__gte=low, registered_at__lt=high, **_registered_at_stores(params))
    row = registered.aggregate(**{
        f"m{index}": Count("pk", filter=month) for index, month in enumerate(month_filters(months, "registered_at"))
    })
    return [(label, row[f"m{index}"] or 0) for index, (label, _first, _last) in enumerate(months)]


def _scoped_rows(params: ReportParams, key: str, buyer_key: str, same_place: str) -> dict:
    """Members at the end per store (key "registered_store_id") or per format, by the scope rule: those registered
    there, plus the distinct live members who bought there in the 12 months before the end and are registered
    elsewhere (or nowhere). Two GROUP BYs; the stores' sets of members overlap, so rows are not added up."""
    end = period_end(params)
    registered = grouped(live_members().filter(registered_at__lt=end, **_registered_at_stores(params)),
                         key, n=Count("pk"))
    buyers = (Purchase.objects.filter(
        occurred_at__gte=scope_since(params), occurred_at__lt=end, member__isnull=False,
        member__status__in=LIVE_STATUSES, member__registered_at__lt=end, **_at_stores(params))
        .exclude(**{same_place: F(buyer_key)}))
    others = grouped(buyers, buyer_key, n=Count("member_id", distinct=True))
    return {place: _cell(registered, place, "n") + _cell(others, place, "n") for place in {*registered, *others}}


def _place_rows(params: ReportParams, sums: dict, *, member_key: str, place: str) -> dict:
    """new, consuming, member sales and total sales per store or format (`place`: "store" or "format" of
    period_sums)."""
    new = grouped(new_members(params), member_key, n=Count("pk"))
    return {"new": new, "consuming": sums[place], "sales": sums[place]}


def by_store(params: ReportParams, sums: dict | None = None) -> list[tuple]:
    """One row per store: code, name, format, members, new, consuming, member sales, total sales, member share.
    `sums`: period_sums(params), if already computed."""
    members = _scoped_rows(params, "registered_store_id", "store_id", "member__registered_store_id")
    places = _place_rows(params, sums or period_sums(params), member_key="registered_store_id", place="store")
    rows = []
    for store in stores_in_scope(params):
        pk = store["id"]
        member_sales = money_total(_cell(places["sales"], pk, "member", None))
        total_sales = money_total(_cell(places["sales"], pk, "total", None))
        rows.append((
            store["code"], store["name"], store["format_name"], members.get(pk, 0), _cell(places["new"], pk, "n"),
            _cell(places["consuming"], pk, "n"), member_sales, total_sales, share(member_sales, total_sales),
        ))
    return rows


def by_format(params: ReportParams, sums: dict | None = None) -> list[tuple]:
    """One row per format: name, members, new, consuming, member sales, total sales, member share.
    `sums`: period_sums(params), if already computed."""
    members = _scoped_rows(params, "registered_store__format_id", "format_id",
                           "member__registered_store__format_id")
    places = _place_rows(params, sums or period_sums(params), member_key="registered_store__format_id",
                         place="format")
    rows = []
    for item in formats_in_scope(params, *members, *places["sales"]):
        pk = item["id"]
        member_sales = money_total(_cell(places["sales"], pk, "member", None))
        total_sales = money_total(_cell(places["sales"], pk, "total", None))
        rows.append((
            item["name"], members.get(pk, 0), _cell(places["new"], pk, "n"), _cell(places["consuming"], pk, "n"),
            member_sales, total_sales, share(member_sales, total_sales),
        ))
    return rows


def by_channel(params: ReportParams, sums: dict | None = None) -> list[tuple]:
    """One row per registration channel: members at the end, digital among them, new, consuming, member sales.
    `sums`: period_sums(params), if already computed."""
    members = grouped(scope_members(params), "registered_channel", n=Count("pk"),
                      digital=Count("pk", filter=digital_q()))
    new = grouped(new_members(params), "registered_channel", n=Count("pk"))
    bought = (sums or period_sums(params))["channel"]
    rows = []
    for channel, label in Member.Channel.choices:
        total = _cell(members, channel, "n")
        rows.append((
            str(label), total, _cell(members, channel, "digital"), share(_cell(members, channel, "digital"), total),
            _cell(new, channel, "n"), _cell(bought, channel, "n"), money_total(_cell(bought, channel, "member", None)),
        ))
    return rows


# --- the report ----------------------------------------------------------------------------------------------------


@register("members", _("Members"), _(
    "Members at the period's end, new and consuming members, conversion, the member share of sales, repurchase and "
    "digitisation, by store, format and channel."))
def build(params: ReportParams) -> Report:
    total = members_total(params)
    digital = members_digital(params)
    new = members_new(params)
    sums = period_sums(params)  # consuming members and sales: in total, per store, format and channel
    consuming = sums["all"].get("n") or 0
    amounts = {"total": money_total(sums["all"].get("total")), "member": money_total(sums["all"].get("member"))}
    repurchase = first_year_repurchase(params)
    figures = [
        Figure("members_total", gettext("Members"), total, "count"),
        Figure("members_new", gettext("New members"), new["new"], "count"),
        Figure("members_consuming", gettext("Consuming members"), consuming, "count"),
        Figure("new_members_converted", gettext("New members with a first purchase"), new["converted"], "count"),
        Figure("new_member_conversion", gettext("New member conversion"), share(new["converted"], new["new"]),
               "percent"),
        Figure("sales_total", gettext("Total sales"), amounts["total"], "money"),
        Figure("member_sales", gettext("Member sales"), amounts["member"], "money"),
        Figure("non_member_sales", gettext("Non-member sales"), amounts["total"] - amounts["member"], "money"),
        Figure("member_sales_share", gettext("Member share of sales"), share(amounts["member"], amounts["total"]),
               "percent"),
        Figure("first_year_cohort", gettext("Members in the first-year cohort"), repurchase["cohort"], "count"),
        Figure("first_year_repurchased", gettext("First-year repurchasers"), repurchase["repurchased"], "count"),
        Figure("first_year_repurchase", gettext("First-year repurchase rate"),
               share(repurchase["repurchased"], repurchase["cohort"]), "percent"),
        Figure("members_digital", gettext("Digitally reachable members"), digital, "count"),
        Figure("digitisation_rate", gettext("Digitisation rate"), share(digital, total), "percent"),
    ]
    store_rows = by_store(params, sums)
    format_rows = by_format(params, sums)
    channel_rows = by_channel(params, sums)
    place_columns = [
        Column("members", gettext("Members"), "count"),
        Column("new", gettext("New members"), "count"),
        Column("consuming", gettext("Consuming members"), "count"),
        Column("member_sales", gettext("Member sales"), "money"),
        Column("sales_total", gettext("Total sales"), "money"),
        Column("member_sales_share", gettext("Member share of sales"), "percent"),
    ]
    store_columns = [
        Column("store_code", gettext("Store code"), "text"),
        Column("store", gettext("Store"), "text"),
        Column("format", gettext("Format"), "text"),
        *place_columns,
    ]
    tables = [
        Table("by_store", gettext("By store"), store_columns, store_rows),
        Table("by_format", gettext("By format"), [Column("format", gettext("Format"), "text"), *place_columns],
              format_rows),
        Table("by_channel", gettext("By registration channel"), [
            Column("channel", gettext("Registration channel"), "text"),
            Column("members", gettext("Members"), "count"),
            Column("members_digital", gettext("Digitally reachable members"), "count"),
            Column("digitisation_rate", gettext("Digitisation rate"), "percent"),
            Column("new", gettext("New members"), "count"),
            Column("consuming", gettext("Consuming members"), "count"),
            Column("member_sales", gettext("Member sales"), "money"),
        ], channel_rows),
    ]
    by_month = members_new_by_month(params)
    charts = [
        Chart("member_share_by_format", gettext("Member share of sales by format"), "column",
              [row[0] for row in format_rows],
              [Series(gettext("Member share of sales"), [row[6] for row in format_rows])], "percent"),
        Chart("members_new_by_month", gettext("New members by month"), "line", [label for label, _n in by_month],
              [Series(gettext("New members"), [n for _label, n in by_month])], "count"),
    ]
    notes = []
    if not total and not amounts["total"] and not new["new"]:
        notes.append(str(NO_DATA))
    if not repurchase["cohort"]:
        notes.append(gettext("No member made a first purchase in the 12 months ending a year before the period's "
                             "end: the first-year repurchase rate has no cohort yet."))
    return Report(
        kind="members", title=gettext("Members report"), params=params, figures=figures, tables=tables,
        charts=charts, detail=Table("detail", gettext("Members by store"), store_columns, store_rows), notes=notes,
    )
