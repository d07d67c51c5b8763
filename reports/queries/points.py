"""The points report (积分报表): points earned, redeemed (cashed out at a till or exchanged for gifts), expired and
adjusted in the period, the points outstanding at its end with their cash value, the months' earning and redeeming,
and the forecast of what the coming expiry runs will take. Definitions: docs/metrics.md, section points.

Movements are the points ledger's rows of the period at the stores asked, summed by kind in one statement. The
balance at the period's end is the members' balances now less the ledger written since (as the card liability
does), so only the ledger's tail is read. The expiry forecast applies membership.services.expiry's rule (points of
year N expire at the end of year N + expiry_years, spent oldest first) to that balance, per member in the database.
"""

from collections.abc import Iterator
from datetime import date

from django.db.models import Case, F, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from core.dates import moment_months_add
from membership.models import Member, PointsEntry, PointsPolicy, Purchase
from membership.queries import MEMBER_SCOPE_MONTHS
from membership.services.expiry import points_expiry_cutoff
from membership.services.points import cash_value_of
from reports.frame import NO_DATA, Chart, Column, Figure, Report, ReportParams, Series, Table, register
from reports.queries.cards import (
    CHUNK,
    NO_FORMAT,
    day_value,
    format_label,
    formats_in_scope,
    month_filters,
    months_up_to,
    union_grouped,
)

# Kinds that spend points on a reward: at a till for cash, at the desk for a gift, or an older generic redemption.
REDEEM_KINDS = (PointsEntry.Kind.REDEEM, PointsEntry.Kind.CASH_OUT, PointsEntry.Kind.GIFT)
# At most this many coming expiry runs are forecast (expiry_years + 1 runs take every point held at the end).
FORECAST_RUNS_MAX = 10


def _points_sum(expression, **extra) -> Sum:
    return Sum(expression, output_field=IntegerField(), **extra)


def _points(value) -> int:
    return int(value or 0)


def member_scope_q(params: ReportParams, member_path: str = "") -> Q:
    """The members a store report counts (membership.queries.members_in_scope's rule at the period's end):
    registered at one of the stores, or with a purchase at one of them in the MEMBER_SCOPE_MONTHS months before
    the end. `member_path` is the lookup from a row to its member ("" for members). Empty for headquarters.

    One set of member ids, the stores' registered members UNION their recent buyers, and an IN over it (not an OR
    with an EXISTS per member): the database estimates it as the few members it is, takes it first and reads only
    their ledger rows, by the index on member and time, not every member's."""
    if params.store_ids is None:
        return Q()
    _low, high = params.moments()
    since = moment_months_add(high, -MEMBER_SCOPE_MONTHS)
    registered_here = Member.objects.order_by().filter(registered_store_id__in=params.store_ids).values("pk")
    bought_here = Purchase.objects.order_by().filter(
        store_id__in=params.store_ids, occurred_at__gte=since, occurred_at__lt=high, member__isnull=False,
    ).values("member_id")
    return Q(**{f"{member_path}__in" if member_path else "pk__in": registered_here.union(bought_here)})


def period_entries(params: ReportParams) -> QuerySet:
    """Points ledger rows written in the period's local days at the stores asked (every row for headquarters)."""
    low, high = params.moments()
    return PointsEntry.objects.order_by().filter(params.store_q("store"), created_at__gte=low, created_at__lt=high)


def movement_sums() -> dict:
    """Signed sums per kind, turned so that each figure is positive for what it names."""
    return {
        "earned": _points_sum("points", filter=Q(kind=PointsEntry.Kind.EARN)),
        "redeemed": _points_sum(-F("points"), filter=Q(kind__in=REDEEM_KINDS)),
        "cashed_out": _points_sum(-F("points"), filter=Q(kind=PointsEntry.Kind.CASH_OUT)),
        "gifts": _points_sum(-F("points"), filter=Q(kind=PointsEntry.Kind.GIFT)),
        "expired": _points_sum(-F("points"), filter=Q(kind=PointsEntry.Kind.EXPIRE)),
        "adjusted": _points_sum("points", filter=Q(kind=PointsEntry.Kind.ADJUST)),
        "reversed": _points_sum(-F("points"), filter=Q(kind=PointsEntry.Kind.REVERSAL)),
        "migrated": _points_sum("points", filter=Q(kind=PointsEntry.Kind.MIGRATION)),
    }


def points_outstanding(params: ReportParams) -> int:
    """Points held at the end of the period by the members counted: their balances now less the ledger since."""
    _low, high = params.moments()
    now = Member.objects.order_by().filter(member_scope_q(params)).aggregate(total=_points_sum("points"))["total"]
    since = (PointsEntry.objects.order_by().filter(member_scope_q(params, "member"), created_at__gte=high)
             .aggregate(total=_points_sum("points"))["total"])
    return _points(now) - _points(since)


def expiry_runs(params: ReportParams, policy: PointsPolicy) -> list[tuple[date, object]]:
    """The coming expiry runs after the period's end, (run day, cutoff): one each 1 January, until the run that
    takes every point held at the end."""
    count = min(policy.expiry_years + 1, FORECAST_RUNS_MAX)
    runs = []
    for offset in range(1, count + 1):
        run_on = date(params.end.year + offset, 1, 1)
        runs.append((run_on, points_expiry_cutoff(run_on=run_on, expiry_years=policy.expiry_years)))
    return runs


def expiry_forecast(params: ReportParams, policy: PointsPolicy) -> list[tuple[date, int]]:
    """Points each coming expiry run would take if the members held at the period's end earned and spent nothing
    more: per member, with b the balance at the end and c_i the credits (positive entries) from run i's cutoff to
    the end, run i takes max(0, min(b, c_(i-1)) - c_i) (c_0 = b), as points_expire computes it run after run.

    One statement: the balances now and the ledger since the first cutoff, per member, by UNION ALL."""
    runs = expiry_runs(params, policy)
    if not runs:
        return []
    _low, high = params.moments()
    credits = [f"c{index}" for index in range(1, len(runs) + 1)]
    integer = IntegerField()
    now = (Member.objects.order_by().filter(member_scope_q(params), points__gt=0)
           .values(mid=F("pk"), bal=F("points"), **{name: Value(0, output_field=integer) for name in credits}))
    first_cutoff = min(cutoff for _run, cutoff in runs)
    tail = (
        PointsEntry.objects.order_by().filter(member_scope_q(params, "member"), created_at__gte=min(first_cutoff, high))
        .values(
            mid=F("member_id"),
            bal=Case(When(created_at__gte=high, then=-F("points")), default=Value(0), output_field=integer),
            **{name: Case(When(points__gt=0, created_at__gte=cutoff, created_at__lt=high, then=F("points")),
                          default=Value(0), output_field=integer)
               for name, (_run, cutoff) in zip(credits, runs, strict=True)},
        )
    )
    taken = []
    previous = "m.bal"
    for name in credits:
        kept = f"(CASE WHEN m.bal < {previous} THEN m.bal ELSE {previous} END)"
        taken.append(f"SUM(CASE WHEN {kept} > m.{name} THEN {kept} - m.{name} ELSE 0 END)")
        previous = f"m.{name}"
    sums = ", ".join(f"SUM(u.{name}) AS {name}" for name in credits)
    outer = (
        f"SELECT {', '.join(taken)} FROM (SELECT u.mid, SUM(u.bal) AS bal, {sums} "  # noqa: S608 - no user text
        "FROM ({union}) u GROUP BY u.mid) m"
    )
    row = next(union_grouped([now, tail], outer, ()), None) or [0] * len(runs)
    return [(run_on, _points(points)) for (run_on, _cutoff), points in zip(runs, row, strict=True)]


@register("points", _("Points"),
          _("Points earned, redeemed, cashed out, expired and adjusted, points outstanding and their cash value, "
            "and the expiry forecast."))
def build(params: ReportParams) -> Report:
    report = Report(kind="points", title=str(_("Points")), params=params)
    policy = PointsPolicy.current()
    moved = period_entries(params).aggregate(**movement_sums())
    outstanding = points_outstanding(params)
    report.figures += [
        Figure("points_earned", gettext("Points earned"), _points(moved["earned"]), "points"),
        Figure("points_redeemed", gettext("Points redeemed"), _points(moved["redeemed"]), "points"),
        Figure("points_cashed_out", gettext("Points cashed out at tills"), _points(moved["cashed_out"]), "points"),
        Figure("points_gifts", gettext("Points exchanged for gifts"), _points(moved["gifts"]), "points"),
        Figure("points_expired", gettext("Points expired"), _points(moved["expired"]), "points"),
        Figure("points_adjusted", gettext("Points adjusted (net)"), _points(moved["adjusted"]), "points"),
        Figure("points_reversed", gettext("Points taken back by returns (net)"), _points(moved["reversed"]),
               "points"),
        Figure("points_outstanding", gettext("Points outstanding"), outstanding, "points"),
        Figure("points_outstanding_value", gettext("Cash value of points outstanding"),
               cash_value_of(max(outstanding, 0), policy), "money",
               note=gettext("{points} points = {value} yuan").format(points=policy.cash_points,
                                                                      value=policy.cash_value)),
    ]
    if params.store_ids is not None:
        report.notes.append(gettext(
            "Movements are those booked at the stores asked (expiry is booked at no store); the points outstanding "
            "and the forecast are those of the stores' members."))
    report.tables.append(_by_format(params))
    report.charts.append(_by_month_chart(params))
    _forecast(report, params, policy)
    if not (any(moved.values()) or outstanding):
        report.notes.append(str(NO_DATA))
    report.detail = Table(
        "detail", gettext("Points movements per store and day"),
        [Column("date", gettext("Date"), "date"), Column("store", gettext("Store"), "text"),
         Column("format", gettext("Format"), "text"), Column("earned", gettext("Points earned"), "points"),
         Column("redeemed", gettext("Points redeemed"), "points"),
         Column("cashed_out", gettext("Points cashed out at tills"), "points"),
         Column("gifts", gettext("Points exchanged for gifts"), "points"),
         Column("expired", gettext("Points expired"), "points"),
         Column("adjusted", gettext("Points adjusted (net)"), "points")],
        detail_rows(params),
    )
    return report


def detail_rows(params: ReportParams) -> Iterator[tuple]:
    """Per local day and store (rows at no store last in their day): the period's movements, streamed."""
    rows = (
        period_entries(params).annotate(day=TruncDate("created_at"))
        .values("day", "store__code", "store__format__name").annotate(**movement_sums())
        .order_by("day", F("store__code").asc(nulls_last=True))
        .values_list("day", "store__code", "store__format__name", "earned", "redeemed", "cashed_out", "gifts",
                     "expired", "adjusted")
    )
    for day, code, format_name, *points in rows.iterator(chunk_size=CHUNK):
        yield (day_value(day), code or "", format_name or str(NO_FORMAT), *(_points(value) for value in points))


def _by_format(params: ReportParams) -> Table:
    grouped = {row["store__format_id"]: row
               for row in period_entries(params).values("store__format_id").annotate(**movement_sums())}
    formats = {item.pk: item for item in formats_in_scope(params, *grouped)}
    order = [*formats, *([None] if None in grouped else [])]
    rows = []
    for format_id in order:
        row = grouped.get(format_id, {})
        rows.append((format_label(format_id, formats), _points(row.get("earned")), _points(row.get("redeemed")),
                     _points(row.get("cashed_out")), _points(row.get("gifts")), _points(row.get("expired")),
                     _points(row.get("adjusted"))))
    return Table(
        "by_format", gettext("By format"),
        [Column("format", gettext("Format"), "text"), Column("earned", gettext("Points earned"), "points"),
         Column("redeemed", gettext("Points redeemed"), "points"),
         Column("cashed_out", gettext("Points cashed out at tills"), "points"),
         Column("gifts", gettext("Points exchanged for gifts"), "points"),
         Column("expired", gettext("Points expired"), "points"),
         Column("adjusted", gettext("Points adjusted (net)"), "points")],
        rows,
    )


def _by_month_chart(params: ReportParams) -> Chart:
    months = months_up_to(params.end)
    whole = ReportParams(start=months[0][1], end=params.end, store_ids=params.store_ids)
    filters = month_filters(months, "created_at")
    sums = period_entries(whole).aggregate(
        **{f"e{index}": _points_sum("points", filter=month & Q(kind=PointsEntry.Kind.EARN))
           for index, month in enumerate(filters)},
        **{f"r{index}": _points_sum(-F("points"), filter=month & Q(kind__in=REDEEM_KINDS))
           for index, month in enumerate(filters)},
    )
    return Chart(
        "points_by_month", gettext("Points earned and redeemed by month"), "column",
        [label for label, _first, _last in months],
        [Series(gettext("Points earned"), [_points(sums[f"e{index}"]) for index in range(len(months))]),
         Series(gettext("Points redeemed"), [_points(sums[f"r{index}"]) for index in range(len(months))])],
        "points",
    )


def _forecast(report: Report, params: ReportParams, policy: PointsPolicy) -> None:
    forecast = expiry_forecast(params, policy) if policy.expiry_enabled else []
    if not policy.expiry_enabled:
        report.notes.append(gettext("Points do not expire (points policy): nothing to forecast."))
    rows = [(f"{run_on.year}-{run_on.month:02d}", run_on, points, cash_value_of(points, policy))
            for run_on, points in forecast]
    report.figures.append(Figure(
        "points_expiring_next", gettext("Points expiring at the next run"), rows[0][2] if rows else 0, "points",
        note=gettext("on {day}").format(day=rows[0][1].isoformat()) if rows else "",
    ))
    report.tables.append(Table(
        "expiry_forecast", gettext("Expiry forecast"),
        [Column("month", gettext("Month"), "text"), Column("run_on", gettext("Expiry run"), "date"),
         Column("points", gettext("Points expiring"), "points"), Column("value", gettext("Cash value"), "money")],
        rows,
    ))
    report.charts.append(Chart(
        "expiry_forecast", gettext("Points expiring by month"), "column", [row[0] for row in rows],
        [Series(gettext("Points expiring"), [row[2] for row in rows])], "points",
    ))
