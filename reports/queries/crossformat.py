"""The cross-format report (跨业态报表): members who shop in two or more formats, the flow matrix (members who bought
in format A and in format B in the period) and where each format's new members came from. Definitions:
docs/metrics.md, section cross_format.

A purchase counts when it has a member and was not returned in full. A store report counts the members who bought at
its stores in the period, and follows them into every format (that is the point of the report). Everything is
grouped in the database: the distinct (member, format) pairs of the period, joined to themselves for the matrix;
each member's first purchase per format, ranked per member, for the origins.
"""

from django.db import connection
from django.db.models import Count, Exists, Min, OuterRef, QuerySet
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from membership.models import Purchase
from reports.frame import NO_DATA, Chart, Column, Figure, Report, ReportParams, Series, Table, register, share
from reports.queries.cards import formats_in_scope, union_grouped
from reports.queries.members import kept


def kept_purchases() -> QuerySet:
    """Members' purchases not returned in full."""
    return kept(Purchase.objects.order_by().filter(member__isnull=False))


def period_purchases(params: ReportParams) -> QuerySet:
    """The kept purchases of the period (any store) by the members the report counts: for a store report, the
    members with a kept purchase at one of its stores in the period."""
    low, high = params.moments()
    purchases = kept_purchases().filter(occurred_at__gte=low, occurred_at__lt=high)
    if params.store_ids is None:
        return purchases
    here = kept_purchases().filter(member_id=OuterRef("member_id"), store_id__in=params.store_ids,
                                   occurred_at__gte=low, occurred_at__lt=high)
    return purchases.filter(Exists(here))


def member_formats(params: ReportParams) -> QuerySet:
    """The distinct (member, format) pairs of the period's purchases."""
    return period_purchases(params).values("member_id", "format_id").distinct()


def multi_format_counts(params: ReportParams) -> tuple[int, int]:
    """(members who bought in the period, of them those who bought in two formats or more), one statement."""
    per_member = period_purchases(params).values("member_id").annotate(formats=Count("format_id", distinct=True))
    outer = "SELECT COUNT(*), SUM(CASE WHEN u.formats >= 2 THEN 1 ELSE 0 END) FROM ({union}) u"
    consuming, multi = next(union_grouped([per_member], outer, ()))
    return int(consuming or 0), int(multi or 0)


def flow_pairs(params: ReportParams) -> dict[tuple[int, int], int]:
    """(format A, format B) -> members who bought in both in the period; (A, A) those who bought in A."""
    outer = (
        "WITH mf AS ({union}) SELECT a.format_id, b.format_id, COUNT(*) FROM mf a "
        "JOIN mf b ON a.member_id = b.member_id GROUP BY a.format_id, b.format_id"
    )
    return {(first, second): int(members) for first, second, members in
            union_grouped([member_formats(params)], outer, ())}


def new_by_origin(params: ReportParams) -> dict[tuple[int, int | None], int]:
    """(format, origin format or None) -> members whose first kept purchase in the format fell in the period,
    counted by the format of their first kept purchase ever when that came earlier (None: none came earlier)."""
    low, high = params.moments()
    in_period = period_purchases(params).filter(member_id=OuterRef("member_id"))
    firsts = (kept_purchases().filter(occurred_at__lt=high).filter(Exists(in_period))
              .values("member_id", "format_id").annotate(first_at=Min("occurred_at")))
    outer = (
        "WITH f AS ({union}), o AS (SELECT member_id, format_id AS origin, first_at, ROW_NUMBER() OVER "
        "(PARTITION BY member_id ORDER BY first_at, format_id) AS place FROM f) "
        "SELECT f.format_id, CASE WHEN o.first_at < f.first_at THEN o.origin END, COUNT(*) "
        "FROM f JOIN o ON o.member_id = f.member_id AND o.place = 1 "
        "WHERE f.first_at >= %s AND f.first_at < %s "
        "GROUP BY f.format_id, CASE WHEN o.first_at < f.first_at THEN o.origin END"
    )
    return {(format_id, origin): int(members) for format_id, origin, members in
            union_grouped([firsts], outer, (), after=[connection.ops.adapt_datetimefield_value(moment)
                                                     for moment in (low, high)])}


@register("cross_format", _("Cross-format shopping"),
          _("Members shopping in two or more formats, the flow between formats and where each format's new "
            "members came from."))
def build(params: ReportParams) -> Report:
    report = Report(kind="cross_format", title=str(_("Cross-format shopping")), params=params)
    consuming, multi = multi_format_counts(params)
    pairs = flow_pairs(params)
    origins = new_by_origin(params)
    formats = formats_in_scope(params, *(first for first, _second in pairs), *(origin for _f, origin in origins))
    report.figures += [
        Figure("consuming_members", gettext("Members who bought"), consuming, "count"),
        Figure("multi_format_members", gettext("Members buying in two formats or more"), multi, "count"),
        Figure("multi_format_share", gettext("Share of members buying in two formats or more"),
               share(multi, consuming), "percent"),
    ]
    names = [item.name for item in formats]
    matrix = [[pairs.get((row.pk, column.pk), 0) for column in formats] for row in formats]
    report.tables.append(Table(
        "flow_matrix", gettext("Members buying in format A (rows) and in format B (columns)"),
        [Column("format", gettext("Format"), "text")]
        + [Column(f"with_{item.code}", item.name, "count") for item in formats],
        [(name, *counts) for name, counts in zip(names, matrix, strict=True)],
    ))
    report.charts.append(Chart(
        "format_flow", gettext("Members of each format who also bought in another"), "column", names,
        [Series(column.name, [counts[index] for counts in matrix]) for index, column in enumerate(formats)],
        "count",
    ))
    _origins(report, params, formats, origins)
    if not consuming:
        report.notes.append(str(NO_DATA))
    return report


def _origins(report: Report, params: ReportParams, formats: list, origins: dict) -> None:
    if params.store_ids is None:
        shown = formats
    else:
        shown = formats_in_scope(ReportParams(start=params.start, end=params.end, store_ids=params.store_ids))
    rows = []
    for item in shown:
        counts = [origins.get((item.pk, origin.pk), 0) for origin in formats]
        fresh = origins.get((item.pk, None), 0)
        rows.append((item.name, *counts, fresh, sum(counts) + fresh))
    new_total = sum(row[-1] for row in rows)
    from_others = sum(sum(row[1:-2]) for row in rows)
    report.figures += [
        Figure("format_new_members", gettext("Members new to a format"), new_total, "count"),
        Figure("format_new_from_other_formats", gettext("Of them, members who had bought in another format"),
               from_others, "count"),
    ]
    report.tables.append(Table(
        "new_by_origin", gettext("Members new to each format, by where they had bought before"),
        [Column("format", gettext("Format"), "text")]
        + [Column(f"from_{origin.code}", gettext("first bought in {format}").format(format=origin.name), "count")
           for origin in formats]
        + [Column("no_earlier", gettext("registered, no earlier purchase"), "count"),
           Column("total", gettext("Total"), "count")],
        rows,
    ))
