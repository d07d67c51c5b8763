"""The dashboard (看板) and the report pages: the same reports the Excel workbooks hold, built for the filter's
period and stores and shown in the admin's look.

Headquarters see every store (or a format's, or one store's); store staff see their own stores only: the filter form
(reports/forms.py) narrows the report's parameters to the user's stores and refuses another store's code. Numbers are
never computed here: each comes from a report kind's `build(params)` (reports/queries/), so the dashboard, the report
page and the Excel file show the same figure. Chart data goes into the page as JSON (`json_script`), drawn by
reports/static/reports/dashboard.js with the ECharts copy served from the project's static files.
"""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.db import connection, connections
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from core.admin import period_choices
from core.errors import DomainError
from core.forms import add_service_error
from reports.forms import ReportFilterForm
from reports.frame import Chart, Report, ReportParams, Table, kind_get, report_build, value_display
from reports.kinds import KIND_LABELS
from reports.queries.runs import user_may_view_reports
from reports.services import report_run_create

# A report page shows the start of the detail; the whole of it is in the Excel file.
DETAIL_ROWS_SHOWN = 200
# A page title names at most this many stores of a store user's scope, then says how many more.
TITLE_STORES_MAX = 3
# The dashboard's reports built at once: one database connection each, a core of the database server each.
BUILD_THREADS = 3
NUMERIC_UNITS = ("money", "percent", "count", "points", "decimal")


# --- what the dashboard shows: (kind, figure key) of each tile, the figures under it, and the charts -------------


@dataclass(frozen=True)
class Tile:
    kind: str
    key: str
    details: tuple[str, ...] = ()


TILES = (
    Tile("cards", "card_sales", ("walk_in_share", "group_share", "card_sales_growth")),
    Tile("cards", "card_spend", ("card_orders",)),
    Tile("cards", "card_outstanding", ("escrow_required",)),
    Tile("members", "member_sales_share", ("member_sales", "sales_total")),
    Tile("members", "digitisation_rate"),
    Tile("members", "members_total", ("members_new", "members_consuming")),
    Tile("points", "points_outstanding", ("points_outstanding_value",)),
    Tile("cross_format", "multi_format_share", ("multi_format_members",)),
)
# (kind, chart key); the cross-format flow is drawn from its table as a heat map (FLOW below).
CHARTS = (
    ("cards", "card_sales_by_month"),
    ("cards", "card_spend_by_format"),
    ("cards", "walk_in_vs_group"),
    ("tiers", "tier_mix"),
    ("members", "member_share_by_format"),
    ("points", "points_by_month"),
)
FLOW = ("cross_format", "flow_matrix")
# The slowest first, so that the threads finish together (reports_build).
DASHBOARD_KINDS = ("members", "points", "cards", "cross_format", "tiers")


# --- values as people read them --------------------------------------------------------------------------------------



def _chart_value(value):
    # JSON for the chart: amounts and shares as exact decimal text (dashboard.js reads them as numbers).
    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(value)
    return value


def chart_data(chart: Chart, *, element_id: str, link: str = "") -> dict:
    return {
        "id": element_id, "title": str(chart.title), "kind": chart.kind, "unit": chart.unit, "link": link,
        "categories": [str(category) for category in chart.categories],
        "series": [{"name": str(series.name), "values": [_chart_value(value) for value in series.values]}
                   for series in chart.series],
    }


def flow_chart_data(table: Table, *, element_id: str, link: str = "") -> dict:
    """The flow matrix (rows: format A, columns: format B, cells: members who bought in both) as a heat map."""
    rows = list(table.rows)
    columns = [str(column.label) for column in table.columns[1:]]
    return {
        "id": element_id, "title": str(table.title), "kind": "heatmap", "unit": "count", "link": link,
        "categories": columns, "rows": [str(row[0]) for row in rows],
        "cells": [[x, y, _chart_value(value)] for y, row in enumerate(rows) for x, value in enumerate(row[1:])],
    }


def table_display(table: Table, *, limit: int | None = None) -> dict:
    """A table's headings and its rows as text; with `limit`, only the first rows (a streamed detail is read no
    further, and its cursor closed)."""
    rows = iter(table.rows)
    if limit is not None:
        taken = list(islice(rows, limit + 1))
        more = len(taken) > limit
        taken = taken[:limit]
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    else:
        taken, more = list(rows), False
    units = [column.unit for column in table.columns]
    return {
        "key": table.key, "title": table.title, "more": more, "count": len(taken),
        "columns": [{"label": column.label, "numeric": column.unit in NUMERIC_UNITS} for column in table.columns],
        "rows": [[{"text": value_display(value, unit), "numeric": unit in NUMERIC_UNITS}
                  for value, unit in zip(row, units, strict=False)] for row in taken],
    }


# --- the frame of both pages ---------------------------------------------------------------------------------------


def _check_permission(request: HttpRequest) -> None:
    if not user_may_view_reports(request.user):
        raise PermissionDenied


def _scope_title(form: ReportFilterForm) -> str:
    """Whose numbers: the stores of a store page, a format's stores, or the whole group."""
    stores = form.scope_stores()
    if stores:
        names = "、".join(f"{store.code} {store.name}" for store in stores[:TITLE_STORES_MAX])
        if len(stores) > TITLE_STORES_MAX:
            return _("{names} and {count} more stores").format(names=names, count=len(stores) - TITLE_STORES_MAX)
        return names
    if form.chosen_format is not None:
        return _("Format {name}").format(name=form.chosen_format.name)
    return _("All stores")


def _page(request: HttpRequest, template: str, title: str, **context) -> TemplateResponse:
    return TemplateResponse(request, f"reports/{template}", {
        **admin.site.each_context(request), "title": title,
        "period_choices": period_choices(request, start_name="start", end_name="end"), **context,
    })


def _kind_links(query: str) -> list[dict]:
    return [{"code": code, "label": label, "url": _report_url(code, query)}
            for code, (label, _module) in KIND_LABELS.items()]


def _report_url(kind: str, query: str, anchor: str = "") -> str:
    url = f"{reverse('reports:report', args=[kind])}?{query}"
    return f"{url}#{anchor}" if anchor else url


# --- the dashboard -------------------------------------------------------------------------------------------------


def reports_build(kinds: tuple[str, ...], params: ReportParams) -> dict[str, Report]:
    """The reports of `kinds` for `params`, built side by side on PostgreSQL (each kind's queries in a connection
    of its own: the dashboard's five reports open in about half the time on two cores).

    Inside a transaction they are built one after the other on the caller's connection: another connection would
    not see the transaction's rows (a test's, or a caller's own writes)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return {kind: report_build(kind, params) for kind in kinds}
    language, zone = translation.get_language(), timezone.get_current_timezone()

    def build(kind: str) -> Report:
        try:
            # The language and the time zone are the thread's own: the request's are carried over.
            with translation.override(language), timezone.override(zone):
                return report_build(kind, params)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=BUILD_THREADS) as pool:
        return dict(zip(kinds, pool.map(build, kinds), strict=True))


@require_GET
@staff_member_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The headline numbers and charts for the filter's period: the whole group for headquarters, the store page
    (the same numbers, their stores only) for store staff. Each number links to the report it comes from."""
    _check_permission(request)
    form = ReportFilterForm(user=request.user, data=request.GET)
    context = {"form": form, "tiles": [], "charts": [], "flow": None, "notes": []}
    scope = ""
    if form.is_valid():
        params, query = form.params(), form.query_string()
        scope = _scope_title(form)
        reports = reports_build(DASHBOARD_KINDS, params)
        context.update(_dashboard_content(reports, query))
        context["kinds"] = _kind_links(query)
        context["period"] = params
    if form.is_hq and not form.scope_stores():
        title = _("Headquarters dashboard")
    else:
        title = _("Store dashboard")
    if scope:
        title = f"{title}: {scope}"
    return _page(request, "dashboard.html", title, **context)


def _figure_or_none(report: Report, key: str):
    try:
        return report.figure(key)
    except KeyError:
        return None


def _figure_shown(report: Report, key: str, query: str) -> dict | None:
    figure = _figure_or_none(report, key)
    if figure is None:
        return None
    return {"key": figure.key, "label": figure.label, "value": value_display(figure.value, figure.unit),
            "unit": figure.unit, "note": figure.note,
            "url": _report_url(report.kind, query, f"figure-{figure.key}")}


def _dashboard_content(reports: dict[str, Report], query: str) -> dict:
    tiles = []
    for tile in TILES:
        report = reports[tile.kind]
        main = _figure_shown(report, tile.key, query)
        if main is None:
            continue
        details = [shown for key in tile.details if (shown := _figure_shown(report, key, query)) is not None]
        tiles.append({"main": main, "details": details, "kind": tile.kind})
    charts = []
    for kind, key in CHARTS:
        chart = next((chart for chart in reports[kind].charts if chart.key == key), None)
        if chart is not None:
            charts.append(chart_data(chart, element_id=f"chart-{key}",
                                     link=_report_url(kind, query, f"chart-{key}")))
    flow = None
    flow_kind, flow_key = FLOW
    table = next((table for table in reports[flow_kind].tables if table.key == flow_key), None)
    if table is not None:
        flow = {"table": table_display(table), "url": _report_url(flow_kind, query, f"table-{flow_key}")}
        charts.append(flow_chart_data(table, element_id=f"chart-{flow_key}", link=flow["url"]))
    notes = list(dict.fromkeys(str(note) for report in reports.values() for note in report.notes))
    return {"tiles": tiles, "charts": charts, "flow": flow, "notes": notes}


# --- a report's page -----------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@staff_member_required
def report(request: HttpRequest, kind: str) -> HttpResponse:
    """One report for the filter's period: its figures, tables, charts and the start of its detail. POST (the
    download button) runs the report into an Excel file and leads to its download."""
    _check_permission(request)
    if kind not in KIND_LABELS:
        raise Http404(_("No such report."))
    report_kind = kind_get(kind)
    form = ReportFilterForm(user=request.user, data=request.GET)
    context = {"form": form, "kind": report_kind, "report": None}
    if form.is_valid():
        params, query = form.params(), form.query_string()
        if request.method == "POST":
            try:
                run = report_run_create(kind=report_kind.code, params=params, user=request.user, definition=None)
            except DomainError as error:
                add_service_error(form, error)
            else:
                if run.downloadable:
                    return redirect(reverse("reports:download", args=[run.pk]))
                form.add_error(None, _("The Excel file could not be written. The failed run is in the report "
                                       "archive, where it can be retried."))
        if form.is_valid():
            built = report_build(report_kind.code, params)
            context.update(_report_content(built, query))
            context["kinds"] = _kind_links(query)
            context["query"] = query
            context["period"] = params
            context["scope"] = _scope_title(form)
    title = str(report_kind.label)
    if context.get("scope"):
        title = f"{title}: {context['scope']}"
    return _page(request, "report.html", title, **context)


def _report_content(built: Report, query: str) -> dict:
    figures = [{"key": figure.key, "label": figure.label, "value": value_display(figure.value, figure.unit),
                "unit": figure.unit, "note": figure.note} for figure in built.figures]
    charts = [chart_data(chart, element_id=f"chart-{chart.key}") for chart in built.charts]
    detail = table_display(built.detail, limit=DETAIL_ROWS_SHOWN) if built.detail is not None else None
    return {
        "report": built, "figures": figures, "tables": [table_display(table) for table in built.tables],
        "charts": charts, "detail": detail, "notes": [str(note) for note in built.notes],
        "detail_rows_max": DETAIL_ROWS_SHOWN, "dashboard_url": f"{reverse('reports:dashboard')}?{query}",
    }
