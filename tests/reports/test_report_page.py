"""A report's page (reports:report): the same filter as the dashboard, the report's figures, tables, charts and the
start of its detail, and the button that writes its Excel file."""

import re
from datetime import date
from decimal import Decimal as D

import pytest
from django.urls import reverse

from reports.frame import Column, ReportParams, Table, report_build
from reports.models import ReportRun
from reports.views import DETAIL_ROWS_SHOWN, table_display, value_display
from tests.factories import StaffFactory
from tests.reports.test_dashboard import OCTOBER, hq_viewer, october  # noqa: F401  (fixtures shared)

REPORT_FIGURE = re.compile(r'<tr id="figure-(?P<key>[a-z0-9_]+)" data-figure="[a-z0-9_]+"><th>[^<]*</th>'
                           r'<td class="num unit-[a-z]+">(?P<value>[^<]*)</td>')


def report_url(kind: str) -> str:
    return reverse("reports:report", args=[kind])


def shown_figures(content: str) -> dict[str, str]:
    return {match["key"]: match["value"] for match in REPORT_FIGURE.finditer(content)}


@pytest.mark.parametrize("kind", ["cards", "members", "tiers", "cross_format", "points", "staff", "programmes"])
def test_each_report_page_shows_the_reports_figures(client, hq_viewer, october, kind):
    client.force_login(hq_viewer)

    response = client.get(report_url(kind), OCTOBER)

    assert response.status_code == 200
    report = report_build(kind, ReportParams(start=date(2026, 10, 1), end=date(2026, 10, 31)))
    assert shown_figures(response.content.decode()) == {
        figure.key: value_display(figure.value, figure.unit) for figure in report.figures}
    assert [table["key"] for table in response.context["tables"]] == [table.key for table in report.tables]


def test_a_store_managers_report_page_counts_only_their_store(client, dept001_manager, dept001, october):
    client.force_login(dept001_manager)

    content = client.get(report_url("cards"), OCTOBER).content.decode()

    figures = shown_figures(content)
    assert figures["card_sales"] == "2,000.00"
    report = report_build("cards", ReportParams(start=date(2026, 10, 1), end=date(2026, 10, 31),
                                                store_ids=(dept001.pk,)))
    assert figures == {figure.key: value_display(figure.value, figure.unit) for figure in report.figures}


def test_another_stores_report_is_a_form_error_and_shows_nothing_of_it(client, dept001_manager, super001, october):
    client.force_login(dept001_manager)

    response = client.get(report_url("cards"), {**OCTOBER, "store": super001.code})

    assert response.status_code == 200
    assert response.context["form"].errors["store"]
    assert shown_figures(response.content.decode()) == {}
    assert response.context["report"] is None


def test_a_download_asked_for_another_store_writes_no_run(client, dept001_manager, super001, october):
    client.force_login(dept001_manager)

    response = client.post(report_url("cards") + f"?start=2026-10-01&end=2026-10-31&store={super001.code}")

    assert response.status_code == 200
    assert response.context["form"].errors["store"]
    assert not ReportRun.objects.exists()


def test_the_download_button_writes_the_stores_workbook_and_leads_to_its_download(
        client, dept001_manager, dept001, october):
    client.force_login(dept001_manager)

    response = client.post(report_url("cards") + "?start=2026-10-01&end=2026-10-31&format=&store=")

    run = ReportRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("reports:download", args=[run.pk])
    assert run.status == ReportRun.Status.DONE
    assert run.params["store_ids"] == [dept001.pk]
    assert dict((key, value) for key, _label, value, _unit in run.figures)["card_sales"] == "2000.00"


def test_a_download_whose_workbook_fails_says_so_on_the_page_and_keeps_the_failed_run(
        client, hq_viewer, october, monkeypatch):
    def broken(report, target):
        raise OSError("disk full")

    monkeypatch.setattr("reports.excel.report_workbook_write", broken)
    client.force_login(hq_viewer)

    response = client.post(report_url("cards") + "?start=2026-10-01&end=2026-10-31&format=&store=")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    run = ReportRun.objects.get()
    assert (run.status, run.kind, run.params["start"]) == (ReportRun.Status.FAILED, "cards", "2026-10-01")


def test_the_page_offers_the_download_as_a_post_to_itself_with_the_same_filters(client, hq_viewer, october):
    client.force_login(hq_viewer)

    content = client.get(report_url("cards"), {**OCTOBER, "format": "DEPT"}).content.decode()

    form = re.search(r'<form method="post" action="([^"]*)"[^>]*id="reports-download">', content)
    assert form.group(1) == "?start=2026-10-01&amp;end=2026-10-31&amp;format=DEPT&amp;store="
    assert "csrfmiddlewaretoken" in content


def test_an_unknown_report_is_not_found(client, hq_viewer):
    client.force_login(hq_viewer)

    assert client.get(report_url("nothing")).status_code == 404
    assert client.get("/reports/view/%3Cscript%3E/").status_code == 404


def test_anonymous_visitors_are_sent_to_the_login_and_staff_without_permission_refused(client, dept001):
    response = client.get(report_url("cards"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))

    client.force_login(StaffFactory(group="服务台", stores=[dept001]))
    assert client.get(report_url("cards")).status_code == 403
    assert client.post(report_url("cards")).status_code == 403


def test_a_long_detail_shows_its_first_rows_and_reads_no_further():
    read = []

    def rows():
        for number in range(DETAIL_ROWS_SHOWN + 50):
            read.append(number)
            yield (date(2026, 10, 1), f"S{number}", D("1.50"), number)

    generator = rows()
    detail = Table("detail", "detail", [Column("day", "day", "date"), Column("store", "store"),
                                        Column("sales", "sales", "money"), Column("orders", "orders", "count")],
                   generator)

    shown = table_display(detail, limit=DETAIL_ROWS_SHOWN)

    assert shown["count"] == DETAIL_ROWS_SHOWN and shown["more"] is True
    assert len(read) == DETAIL_ROWS_SHOWN + 1
    assert [cell["text"] for cell in shown["rows"][0]] == ["2026-10-01", "S0", "1.50", "0"]
    assert generator.gi_frame is None  # closed: a server-side cursor behind it is released


def test_the_detail_note_says_how_many_rows_are_shown(client, hq_viewer, october):
    client.force_login(hq_viewer)

    response = client.get(report_url("cards"), OCTOBER)

    detail = response.context["detail"]
    assert detail is not None and not detail["more"]
    note = re.search(r'id="reports-detail-shown">([^<]*)<', response.content.decode()).group(1)
    assert str(detail["count"]) in note


@pytest.mark.parametrize("value, unit, text", [
    (D("68551.5"), "money", "68,551.50"),
    (D("0.1234"), "percent", "12.34%"),
    (D("-0.0500"), "percent", "-5.00%"),
    (None, "percent", "—"),
    (1234567, "count", "1,234,567"),
    (25000, "points", "25,000"),
    (date(2026, 10, 1), "date", "2026-10-01"),
])
def test_values_are_shown_in_their_unit(value, unit, text):
    assert value_display(value, unit) == text
