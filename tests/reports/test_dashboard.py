"""The dashboard (看板): the headline numbers of the reports for the filter's period, headquarters' or a store's."""

import json
import re
from datetime import date, datetime
from decimal import Decimal as D

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from cards.models import SaleOrder
from membership.models import Purchase
from reports.forms import ReportFilterForm
from reports.frame import ReportParams, report_build
from reports.views import DASHBOARD_KINDS, TILES, reports_build, value_display
from stores.models import StaffProfile
from tests.factories import FormatFactory, MemberFactory, StaffFactory, StoreFactory

DASHBOARD = "reports:dashboard"
OCTOBER = {"start": "2026-10-01", "end": "2026-10-31"}
FIGURE = re.compile(r'data-figure="(?P<key>[a-z0-9_]+)">(?P<value>[^<]*)<')
HOSTILE = "</script><script>alert(1)</script>"


def local(*parts) -> datetime:
    return timezone.make_aware(datetime(*parts))


def sale_order(store, *, face: str, at: datetime, channel=SaleOrder.Channel.WALK_IN) -> SaleOrder:
    clerk = StaffFactory(scope=StaffProfile.Scope.HQ)
    return SaleOrder.objects.create(
        order_no=f"D{SaleOrder.objects.count() + 1:08d}", kind=SaleOrder.Kind.SALE, channel=channel, store=store,
        status=SaleOrder.Status.COMPLETED, face_total=D(face), amount_due=D(face), created_by=clerk, created_at=at,
        completed_at=at,
    )


def purchase(store, *, amount: str, at: datetime, member=None) -> Purchase:
    return Purchase.objects.create(
        member=member, store=store, format=store.format, legal_entity=store.format.legal_entity,
        receipt_no=f"R{Purchase.objects.count() + 1:06d}", amount=D(amount), occurred_at=at,
    )


@pytest.fixture
def october(dept001, super001):
    """Card sales, members and purchases at DEPT001 and SUPER001 in October 2026, different at each store."""
    sale_order(dept001, face="500.00", at=local(2026, 10, 3, 10))
    sale_order(dept001, face="1500.00", at=local(2026, 10, 20, 15), channel=SaleOrder.Channel.GROUP)
    sale_order(super001, face="200.00", at=local(2026, 10, 9, 11))
    both = MemberFactory(store=dept001)
    only_dept = MemberFactory(store=dept001, with_resident_id=True)
    only_super = MemberFactory(store=super001)
    purchase(dept001, amount="300.00", at=local(2026, 10, 5, 10), member=both)
    purchase(super001, amount="80.00", at=local(2026, 10, 6, 10), member=both)
    purchase(dept001, amount="120.00", at=local(2026, 10, 7, 10), member=only_dept)
    purchase(super001, amount="45.50", at=local(2026, 10, 8, 10), member=only_super)
    purchase(dept001, amount="99.00", at=local(2026, 10, 8, 12))
    purchase(super001, amount="20.00", at=local(2026, 10, 8, 13))


@pytest.fixture
def hq_viewer(db):
    return StaffFactory(username="hq_viewer", group="报表查看", scope=StaffProfile.Scope.HQ)


def page_figures(content: str) -> dict[str, str]:
    return {match["key"]: match["value"] for match in FIGURE.finditer(content)}


def page_charts(content: str) -> list[dict]:
    found = re.search(r'<script id="reports-charts" type="application/json">(.*?)</script>', content, re.S)
    return json.loads(found.group(1))


def expected_figures(params: ReportParams) -> dict[str, str]:
    """What the dashboard must show for `params`: each tile's figures as the reports compute them."""
    reports = {}
    expected = {}
    for tile in TILES:
        report = reports.setdefault(tile.kind, report_build(tile.kind, params))
        for key in (tile.key, *tile.details):
            figure = report.figure(key)
            expected[key] = value_display(figure.value, figure.unit)
    return expected


def test_the_hq_dashboard_shows_walk_in_share_member_share_digitisation_and_the_cross_format_flow(
        client, hq_viewer, october):
    client.force_login(hq_viewer)

    response = client.get(reverse(DASHBOARD), OCTOBER)

    assert response.status_code == 200
    content = response.content.decode()
    figures = page_figures(content)
    assert figures["walk_in_share"] == "31.82%"
    assert "member_sales_share" in figures
    assert "digitisation_rate" in figures
    assert 'id="cross-format-flow"' in content
    charts = {chart["id"]: chart for chart in page_charts(content)}
    assert charts["chart-flow_matrix"]["kind"] == "heatmap"
    assert {"chart-card_sales_by_month", "chart-walk_in_vs_group", "chart-tier_mix"} <= set(charts)


def test_every_number_on_the_hq_dashboard_equals_its_report(client, hq_viewer, october):
    client.force_login(hq_viewer)

    content = client.get(reverse(DASHBOARD), OCTOBER).content.decode()

    expected = expected_figures(ReportParams(start=date(2026, 10, 1), end=date(2026, 10, 31)))
    assert page_figures(content) == expected
    assert expected["card_sales"] == "2,200.00"


def test_every_number_links_to_its_report_with_the_same_filters(client, hq_viewer, october):
    client.force_login(hq_viewer)

    content = client.get(reverse(DASHBOARD), {**OCTOBER, "format": "DEPT"}).content.decode()

    link = re.search(r'href="([^"]+)" data-figure="card_sales"', content).group(1)
    assert link.startswith(reverse("reports:report", args=["cards"]) + "?")
    assert "start=2026-10-01&amp;end=2026-10-31&amp;format=DEPT&amp;store=" in link


def test_a_store_manager_sees_the_store_page_with_only_their_stores_numbers(
        client, dept001_manager, dept001, october):
    client.force_login(dept001_manager)

    content = client.get(reverse(DASHBOARD), OCTOBER).content.decode()

    store_params = ReportParams(start=date(2026, 10, 1), end=date(2026, 10, 31), store_ids=(dept001.pk,))
    figures = page_figures(content)
    assert figures == expected_figures(store_params)
    assert figures["card_sales"] == "2,000.00"
    assert f"{dept001.code} {dept001.name}" in re.search(r"<h1>(.*?)</h1>", content, re.S).group(1)


def test_a_store_manager_asking_for_another_store_gets_a_form_error_and_none_of_its_numbers(
        client, dept001_manager, super001, october):
    client.force_login(dept001_manager)

    response = client.get(reverse(DASHBOARD), {**OCTOBER, "store": super001.code})

    assert response.status_code == 200
    content = response.content.decode()
    assert response.context["form"].errors["store"]
    assert page_figures(content) == {}
    assert "200.00" not in content
    assert super001.name not in content


def test_a_store_managers_format_filter_stays_within_their_stores(dept001_manager, dept001, super001):
    form = ReportFilterForm(user=dept001_manager, data={**OCTOBER, "format": "DEPT"})
    assert form.is_valid(), form.errors
    assert form.params().store_ids == (dept001.pk,)

    other_format = ReportFilterForm(user=dept001_manager, data={**OCTOBER, "format": super001.format.code})
    assert not other_format.is_valid()
    assert "format" in other_format.errors


def test_headquarters_choosing_a_format_count_that_formats_stores(hq_viewer, dept001, super001):
    second = StoreFactory(code="DEPT_X1", format=dept001.format)

    params = ReportFilterForm(user=hq_viewer, data={**OCTOBER, "format": "DEPT"}).params()

    assert set(params.store_ids) >= {dept001.pk, second.pk}
    assert super001.pk not in params.store_ids
    assert params.format_codes == ("DEPT",)
    assert ReportFilterForm(user=hq_viewer, data=OCTOBER).params().store_ids is None


def test_a_store_of_another_format_than_the_one_chosen_is_a_form_error(hq_viewer, dept001):
    form = ReportFilterForm(user=hq_viewer, data={**OCTOBER, "format": "SUPER", "store": dept001.code})

    assert not form.is_valid()
    assert "store" in form.errors


@pytest.mark.parametrize("data, field", [
    ({"start": "2026-10-31", "end": "2026-10-01"}, "end"),
    ({"start": "2025-01-01", "end": "2026-02-05"}, "end"),
    ({"start": "0001-01-01", "end": "0001-01-31"}, "__all__"),
    ({"start": "<script>alert(1)</script>"}, "start"),
    ({"end": "2026-13-45"}, "end"),
    ({"store": "\x00"}, "store"),
    ({"format": "DEPT'; DROP TABLE x;--"}, "format"),
])
def test_a_bad_filter_is_a_form_error(hq_viewer, data, field):
    form = ReportFilterForm(user=hq_viewer, data=data)

    assert not form.is_valid()
    assert field in form.errors


def test_the_default_period_is_the_last_full_month(hq_viewer):
    form = ReportFilterForm(user=hq_viewer, data={}, today=date(2026, 12, 1))

    assert form.is_valid()
    assert (form.params().start, form.params().end) == (date(2026, 11, 1), date(2026, 11, 30))


def test_hostile_bytes_in_the_filters_give_a_form_error_never_a_500(client, hq_viewer, reference_stores):
    client.force_login(hq_viewer)

    response = client.get(reverse(DASHBOARD) + "?start=%3Cscript%3Ealert(1)%3C/script%3E&store=%00&format=%FF%FE")

    assert response.status_code == 200
    content = response.content.decode()
    assert "<script>alert(1)" not in content
    assert set(response.context["form"].errors) == {"start", "store", "format"}
    assert page_figures(content) == {}


def test_hostile_names_reach_the_charts_as_data_only(client, hq_viewer, reference_stores):
    hostile_format = FormatFactory(code="EVIL", name=HOSTILE)
    store = StoreFactory(code="EVIL001", name=HOSTILE, format=hostile_format)
    sale_order(store, face="100.00", at=local(2026, 10, 3, 10))
    client.force_login(hq_viewer)

    content = client.get(reverse(DASHBOARD), OCTOBER).content.decode()

    assert HOSTILE not in content
    assert "<script>alert(1)" not in content
    categories = {category for chart in page_charts(content) for category in chart["categories"]}
    assert HOSTILE in categories


def test_anonymous_visitors_are_sent_to_the_login(client):
    response = client.get(reverse(DASHBOARD))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_report_permission_are_refused(client, reference_stores):
    clerk = StaffFactory(group="服务台", stores=[reference_stores.get(code="DEPT001")])
    client.force_login(clerk)

    assert client.get(reverse(DASHBOARD)).status_code == 403


def test_the_page_loads_no_script_or_stylesheet_from_outside(client, hq_viewer, october):
    client.force_login(hq_viewer)

    content = client.get(reverse(DASHBOARD), OCTOBER).content.decode()

    sources = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]*)"', content)
    assert any(source.endswith("reports/vendor/echarts/echarts.min.js") for source in sources)
    assert not [source for source in sources if re.match(r"(?i)(https?:)?//", source)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_reports_built_side_by_side_equal_those_built_one_by_one_in_the_pages_language(october):
    params = ReportParams(start=date(2026, 10, 1), end=date(2026, 10, 31))

    with translation.override("zh-hans"):
        side_by_side = reports_build(DASHBOARD_KINDS, params)
        one_by_one = {kind: report_build(kind, params) for kind in DASHBOARD_KINDS}

    for kind in DASHBOARD_KINDS:
        assert str(side_by_side[kind].title) == str(one_by_one[kind].title)
        assert [(str(f.label), f.value) for f in side_by_side[kind].figures] == \
            [(str(f.label), f.value) for f in one_by_one[kind].figures]
    assert side_by_side["cards"].figure("card_sales").value == D("2200.00")
    assert str(side_by_side["cards"].title) == "预付卡"


def _workbook_figures(response) -> dict[str, object]:
    """The summary sheet's figures of a downloaded workbook: label -> cell value (first occurrence)."""
    import io

    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True)
    figures = {}
    for row in workbook.worksheets[0].iter_rows(values_only=True):
        if row and isinstance(row[0], str) and len(row) > 1 and row[1] is not None:
            figures.setdefault(row[0], row[1])
    return figures


def _cell_display(value, unit: str) -> str:
    if value == "—":
        return value_display(None, unit)
    if unit == "money":
        return value_display(D(str(value)).quantize(D("0.01")), unit)
    if unit == "percent":
        return value_display(D(str(value)).quantize(D("0.0001")), unit)
    return value_display(int(value), unit)


def test_every_number_on_the_dashboard_equals_the_same_number_in_its_excel_report(client, hq_viewer, october):
    client.force_login(hq_viewer)
    content = client.get(reverse(DASHBOARD), OCTOBER).content.decode()
    shown = page_figures(content)
    params = ReportParams(start=date(2026, 10, 1), end=date(2026, 10, 31))
    compared = 0
    with translation.override("zh-hans"):  # the workbook is written in the site's language
        for kind in dict.fromkeys(tile.kind for tile in TILES):
            query = "&".join(f"{name}={value}" for name, value in OCTOBER.items())
            download = client.post(f'{reverse("reports:report", args=[kind])}?{query}', follow=True)
            assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment")
            cells = _workbook_figures(download)
            for figure in report_build(kind, params).figures:
                if figure.key not in shown:
                    continue
                assert _cell_display(cells[str(figure.label)], figure.unit) == shown[figure.key], figure.key
                compared += 1
    assert compared == len(shown) and compared >= 10
