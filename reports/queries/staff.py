"""The staff report (员工拉新报表): the members each clerk registered in the period and how many of them made a first
purchase by the period's end. Definitions: docs/metrics.md, section staff.

A member registered by staff is one whose `registered_by` is a user (the desk, the admin, a staff import); a
report restricted to stores counts the members registered at those stores. A first purchase is a receipt at any
store at or after the registration and before the period's end, not wholly returned (members.converted).
"""

from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from membership.models import Purchase
from reports.frame import NO_DATA, Chart, Column, Figure, Report, ReportParams, Series, Table, register, share
from reports.queries.members import converted, kept, new_members, period_end

CHUNK = 5000
CHART_CLERKS = 20


def staff_registered(params: ReportParams) -> QuerySet:
    """The members registered in the period by a staff user (at the stores asked), each with `converted`."""
    return (new_members(params).filter(registered_by__isnull=False)
            .annotate(converted=converted(period_end(params))))


def staff_totals(params: ReportParams) -> dict:
    row = staff_registered(params).aggregate(registered=Count("pk"), first=Count("pk", filter=Q(converted=True)))
    new = new_members(params).count()
    return {"registered": row["registered"] or 0, "first": row["first"] or 0, "new": new}


def by_clerk(params: ReportParams) -> list[tuple]:
    """One row per clerk and store: user, name, employee number, store code and name, registered, first
    purchases, conversion; the most registrations first."""
    rows = (staff_registered(params).order_by()
            .values("registered_by_id", "registered_by__username", "registered_by__last_name",
                    "registered_by__first_name", "registered_by__staff_profile__employee_no", "registered_store_id",
                    "registered_store__code", "registered_store__name")
            .annotate(registered=Count("pk"), first=Count("pk", filter=Q(converted=True)))
            .order_by("-registered", "registered_by__username", "registered_store__code"))
    return [
        (row["registered_by__username"],
         f"{row['registered_by__last_name'] or ''}{row['registered_by__first_name'] or ''}",
         row["registered_by__staff_profile__employee_no"] or "", row["registered_store__code"] or "",
         row["registered_store__name"] or "", row["registered"], row["first"], share(row["first"], row["registered"]))
        for row in rows
    ]


def registered_rows(params: ReportParams):
    """The members registered by staff in the period, streamed: date, member number, store, clerk, first purchase
    (the local date of the first receipt at or after registering and before the period's end)."""
    first = (kept(Purchase.objects.filter(member=OuterRef("pk"), occurred_at__gte=OuterRef("registered_at"),
                                          occurred_at__lt=period_end(params)))
             .order_by().values("member").annotate(first=Min("occurred_at")).values("first"))
    rows = (staff_registered(params).annotate(first_purchase=Subquery(first)).order_by("registered_at", "pk")
            .values_list("registered_at", "member_no", "registered_store__code", "registered_by__username",
                         "first_purchase")
            .iterator(chunk_size=CHUNK))
    for registered_at, member_no, store_code, username, first_purchase in rows:
        yield (timezone.localtime(registered_at).date(), member_no, store_code or "", username,
               timezone.localtime(first_purchase).date() if first_purchase else None)


@register("staff", _("Staff registrations"), _(
    "Members registered by each clerk in the period and how many of them made a first purchase."))
def build(params: ReportParams) -> Report:
    totals = staff_totals(params)
    clerks = by_clerk(params)
    figures = [
        Figure("registered_by_staff", gettext("Members registered by staff"), totals["registered"], "count"),
        Figure("staff_first_purchases", gettext("Of them with a first purchase"), totals["first"], "count"),
        Figure("staff_conversion", gettext("Conversion of staff registrations"),
               share(totals["first"], totals["registered"]), "percent"),
        Figure("staff_registration_share", gettext("Staff share of new members"),
               share(totals["registered"], totals["new"]), "percent"),
    ]
    table = Table("by_clerk", gettext("By clerk"), [
        Column("user", gettext("User"), "text"),
        Column("name", gettext("Name"), "text"),
        Column("employee_no", gettext("Employee number"), "text"),
        Column("store_code", gettext("Store code"), "text"),
        Column("store", gettext("Store"), "text"),
        Column("registered", gettext("Registered"), "count"),
        Column("first_purchases", gettext("First purchases"), "count"),
        Column("conversion", gettext("Conversion"), "percent"),
    ], clerks)
    top = clerks[:CHART_CLERKS]
    charts = [Chart("registered_by_clerk", gettext("Registrations by clerk"), "bar",
                    [f"{row[0]} {row[3]}".strip() for row in top],
                    [Series(gettext("Registered"), [row[5] for row in top]),
                     Series(gettext("First purchases"), [row[6] for row in top])], "count")]
    notes = [str(NO_DATA)] if not totals["registered"] else []
    detail = Table("detail", gettext("Members registered by staff"), [
        Column("date", gettext("Registered on"), "date"),
        Column("member_no", gettext("Member number"), "text"),
        Column("store_code", gettext("Store code"), "text"),
        Column("user", gettext("User"), "text"),
        Column("first_purchase", gettext("First purchase"), "date"),
    ], registered_rows(params))
    return Report(kind="staff", title=gettext("Staff registrations report"), params=params, figures=figures,
                  tables=[table], charts=charts, detail=detail, notes=notes)
