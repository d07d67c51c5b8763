"""Stores in and out of the admin with django-import-export: preview first, then write; bad files write nothing."""

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.messages import ERROR
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook, load_workbook

from core.files import escape_cell
from stores.models import Region, Store
from stores.resources import StoreResource

IMPORT_URL = "/admin/stores/store/import/"
CONFIRM_URL = "/admin/stores/store/process_import/"
EXPORT_URL = "/admin/stores/store/export/"
HEADER = ["code", "name", "format", "region", "address", "phone", "status", "opened_on"]
GOOD_ROWS = [
    ["DEPT901", "嘉禾百货测试一店", "DEPT", "CQ_ZC", "重庆市渝中区民族路1号", "023-63000001", "open", "2024-05-01"],
    ["SUPER901", "嘉禾超市测试一店", "SUPER", "SC_CD", "四川省成都市春熙路2号", "028-86000002", "planned",
     "2025-01-15"],
]


def _format_index(title: str) -> str:
    formats = admin.site._registry[Store].get_import_formats()
    return str(next(index for index, file_format in enumerate(formats) if file_format().get_title() == title))


def _csv_file(rows, *, header=HEADER, encoding="utf-8") -> SimpleUploadedFile:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return SimpleUploadedFile("stores.csv", buffer.getvalue().encode(encoding), content_type="text/csv")


def _xlsx_file(rows, *, header=HEADER) -> SimpleUploadedFile:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return SimpleUploadedFile(
        "stores.xlsx", buffer.getvalue(),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


def _xlsx_rows(rows):
    """The same rows as Excel holds them: opening dates as real date cells."""
    return [[*row[:7], datetime.fromisoformat(row[7])] for row in rows]


def _preview(client, upload, title):
    return client.post(IMPORT_URL, {"format": _format_index(title), "resource": "0", "import_file": upload})


def _confirm(client, preview):
    return client.post(CONFIRM_URL, dict(preview.context["confirm_form"].initial))


def _invalid_rows(preview):
    """{row number: {column: [messages]}} of the rows the preview refused."""
    return {row.number: row.field_specific_errors for row in preview.context["result"].invalid_rows}


def _snapshot():
    return list(Store.objects.order_by("code").values_list("code", "name", "status", "updated_at"))


@pytest.fixture
def en_client(client):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def hq_import_client(en_client, hq_admin, reference_stores):
    en_client.force_login(hq_admin)
    return en_client


# --- a good file -------------------------------------------------------------------------------


@pytest.mark.parametrize(("title", "make_file"), [("csv", lambda: _csv_file(GOOD_ROWS)),
                                                  ("xlsx", lambda: _xlsx_file(_xlsx_rows(GOOD_ROWS)))])
def test_good_file_is_previewed_without_writing_then_written_on_confirm(hq_import_client, title, make_file):
    # given
    before = Store.objects.count()
    # when
    preview = _preview(hq_import_client, make_file(), title)
    # then: a dry run that offers to confirm, and nothing written yet
    assert preview.status_code == 200
    result = preview.context["result"]
    assert not result.has_errors()
    assert not result.has_validation_errors()
    assert [row.import_type for row in result.valid_rows()] == ["new", "new"]
    assert preview.context["confirm_form"] is not None
    assert Store.objects.count() == before
    assert not Store.objects.filter(code__in=["DEPT901", "SUPER901"]).exists()
    # when
    confirmed = _confirm(hq_import_client, preview)
    # then
    assert confirmed.status_code == 302
    assert Store.objects.count() == before + 2
    dept = Store.objects.get(code="DEPT901")
    assert (dept.name, dept.format.code, dept.region.code) == ("嘉禾百货测试一店", "DEPT", "CQ_ZC")
    assert (dept.address, dept.phone, dept.status) == ("重庆市渝中区民族路1号", "023-63000001", Store.Status.OPEN)
    assert dept.opened_on == date(2024, 5, 1)
    supermarket = Store.objects.get(code="SUPER901")
    assert (supermarket.status, supermarket.opened_on) == (Store.Status.PLANNED, date(2025, 1, 15))


def test_imported_stores_get_a_history_entry_naming_the_importer(hq_import_client, hq_admin):
    _confirm(hq_import_client, _preview(hq_import_client, _csv_file(GOOD_ROWS), "csv"))

    first = Store.objects.get(code="DEPT901").history.get()
    assert first.history_type == "+"
    assert first.history_user == hq_admin


def test_csv_saved_by_chinese_excel_in_gbk_is_read(hq_import_client):
    # given
    upload = _csv_file(GOOD_ROWS, encoding="gbk")
    # when
    preview = _preview(hq_import_client, upload, "csv")
    _confirm(hq_import_client, preview)
    # then
    assert Store.objects.get(code="DEPT901").name == "嘉禾百货测试一店"
    assert Store.objects.get(code="SUPER901").address == "四川省成都市春熙路2号"


def test_csv_with_a_byte_order_mark_is_read(hq_import_client):
    upload = _csv_file(GOOD_ROWS, encoding="utf-8-sig")

    preview = _preview(hq_import_client, upload, "csv")
    _confirm(hq_import_client, preview)

    assert Store.objects.filter(code__in=["DEPT901", "SUPER901"]).count() == 2


def test_import_updates_an_existing_store_matched_by_code(hq_import_client, dept001):
    # given
    row = [dept001.code, "嘉禾百货解放碑旗舰店", "DEPT", dept001.region.code, dept001.address, dept001.phone, "open",
           dept001.opened_on.isoformat()]
    # when
    preview = _preview(hq_import_client, _csv_file([row]), "csv")
    _confirm(hq_import_client, preview)
    # then
    assert [row.import_type for row in preview.context["result"].valid_rows()] == ["update"]
    dept001.refresh_from_db()
    assert dept001.name == "嘉禾百货解放碑旗舰店"
    assert Store.objects.filter(code=dept001.code).count() == 1


def test_reimporting_the_same_file_changes_nothing(hq_import_client):
    # given
    _confirm(hq_import_client, _preview(hq_import_client, _csv_file(GOOD_ROWS), "csv"))
    before = _snapshot()
    history_before = Store.history.count()
    # when
    preview = _preview(hq_import_client, _csv_file(GOOD_ROWS), "csv")
    confirmed = _confirm(hq_import_client, preview)
    # then
    assert [row.import_type for row in preview.context["result"].valid_rows()] == ["skip", "skip"]
    assert confirmed.status_code == 302
    assert _snapshot() == before
    assert Store.history.count() == history_before


def test_reimporting_the_same_xlsx_changes_nothing(hq_import_client):
    _confirm(hq_import_client, _preview(hq_import_client, _xlsx_file(_xlsx_rows(GOOD_ROWS)), "xlsx"))
    before = _snapshot()

    preview = _preview(hq_import_client, _xlsx_file(_xlsx_rows(GOOD_ROWS)), "xlsx")
    _confirm(hq_import_client, preview)

    assert [row.import_type for row in preview.context["result"].valid_rows()] == ["skip", "skip"]
    assert _snapshot() == before


# --- a file with a bad row ----------------------------------------------------------------------------

BAD_ROWS = [
    pytest.param(["DEPT902", "坏店", "NOPE", "CQ_ZC", "", "", "open", "2024-05-01"], "format", "NOPE",
                 id="unknown format code"),
    pytest.param(["DEPT902", "坏店", "DEPT", "ZZ_NOWHERE", "", "", "open", "2024-05-01"], "region", "ZZ_NOWHERE",
                 id="unknown region code"),
    pytest.param(["dept-902", "坏店", "DEPT", "CQ_ZC", "", "", "open", "2024-05-01"], "code", "capital letters",
                 id="bad code pattern"),
    pytest.param(["DEPT902", "坏店", "DEPT", "CQ_ZC", "", "", "closed", "2024-05-01"], "status", "approval",
                 id="status closed"),
    pytest.param(["DEPT902", "坏店", "DEPT", "CQ_ZC", "", "", "open", "2024-13-45"], "opened_on", "",
                 id="unreadable date"),
    pytest.param(["DEPT902", "坏店", "DEPT", "CQ", "", "", "open", "2024-05-01"], "region", "",
                 id="province instead of a city"),
    pytest.param(["DEPT902", "", "DEPT", "CQ_ZC", "", "", "open", "2024-05-01"], "name", "",
                 id="missing name"),
]


@pytest.mark.parametrize(("bad_row", "column", "words"), BAD_ROWS)
@pytest.mark.parametrize("title", ["csv", "xlsx"])
def test_a_bad_row_is_named_by_row_and_column_and_nothing_is_written(
    hq_import_client, title, bad_row, column, words
):
    # given: a good row, the bad row (data row 2), another good row
    rows = [GOOD_ROWS[0], bad_row, GOOD_ROWS[1]]
    upload = _csv_file(rows) if title == "csv" else _xlsx_file(rows)
    before = _snapshot()
    # when
    preview = _preview(hq_import_client, upload, title)
    # then
    assert preview.status_code == 200
    assert preview.context["result"].has_validation_errors()
    invalid = _invalid_rows(preview)
    assert list(invalid) == [2]
    assert column in invalid[2]
    assert words in " ".join(invalid[2][column])
    assert preview.context.get("confirm_form") is None
    content = preview.content.decode()
    assert 'name="import_file_name"' not in content
    assert f'<span class="validation-error-field-label">{column}</span>' in content
    assert _snapshot() == before
    assert not Store.objects.filter(code__in=["DEPT901", "SUPER901", "DEPT902"]).exists()


def test_every_bad_row_is_listed_at_once(hq_import_client):
    rows = [
        ["DEPT902", "坏店", "NOPE", "CQ_ZC", "", "", "open", "2024-05-01"],
        GOOD_ROWS[0],
        ["bad code", "坏店", "DEPT", "XX", "", "", "closed", "2024-05-01"],
    ]

    preview = _preview(hq_import_client, _csv_file(rows), "csv")

    invalid = _invalid_rows(preview)
    assert list(invalid) == [1, 3]
    assert set(invalid[3]) == {"code", "region", "status"}
    assert not Store.objects.filter(code="DEPT901").exists()


def test_a_file_without_the_expected_columns_is_refused_with_a_message(hq_import_client):
    before = _snapshot()

    preview = _preview(hq_import_client, _csv_file([["x", "y"]], header=["门店", "名字"]), "csv")

    assert preview.status_code == 200
    assert preview.context["result"].has_errors() or preview.context["form"].errors
    assert _snapshot() == before


def test_a_file_that_is_not_what_its_format_says_is_refused(hq_import_client):
    upload = SimpleUploadedFile("stores.xlsx", b"this is not a workbook", content_type="application/octet-stream")

    preview = _preview(hq_import_client, upload, "xlsx")

    assert preview.status_code == 200
    assert "import_file" in preview.context["form"].errors
    assert "confirm_form" not in preview.context


def test_a_closed_store_cannot_be_changed_by_import(hq_import_client, dept001):
    # given
    Store.objects.filter(pk=dept001.pk).update(status=Store.Status.CLOSED, closed_on=dept001.opened_on)
    row = [dept001.code, "重开", "DEPT", dept001.region.code, "", "", "open", dept001.opened_on.isoformat()]
    # when
    preview = _preview(hq_import_client, _csv_file([row]), "csv")
    # then
    assert preview.context["result"].has_validation_errors()
    dept001.refresh_from_db()
    assert (dept001.status, dept001.name) == (Store.Status.CLOSED, "嘉禾百货解放碑店")


def test_confirming_a_file_that_went_bad_since_the_preview_writes_nothing(hq_import_client, hq_admin):
    # given: a preview that passed, then the region of one row is removed before confirming
    town = Region.objects.create(code="CQ_TEST", name="测试镇", level=Region.Level.CITY,
                                 parent=Region.objects.get(code="CQ"))
    rows = [GOOD_ROWS[0], ["DEPT903", "新区店", "DEPT", town.code, "", "", "open", "2024-06-01"]]
    preview = _preview(hq_import_client, _csv_file(rows), "csv")
    assert preview.context["confirm_form"] is not None
    town.delete()
    # when
    response = _confirm(hq_import_client, preview)
    # then: the good row is not written either, and the user is told
    assert response.status_code == 302
    assert response["Location"] == IMPORT_URL
    assert not Store.objects.filter(code__in=["DEPT901", "DEPT903"]).exists()
    shown = [(message.level, message.message) for message in hq_import_client.get(IMPORT_URL).context["messages"]]
    assert [level for level, _ in shown] == [ERROR]


# --- who may import ----------------------------------------------------------------------------------


def test_store_manager_cannot_open_the_import_page(client, dept001_manager):
    # given: the store manager role holds no stores.add_store
    assert not dept001_manager.has_perm("stores.add_store")
    client.force_login(dept001_manager)
    # when
    response = client.get(IMPORT_URL)
    # then
    assert response.status_code == 403


def test_store_manager_cannot_upload_a_file(client, dept001_manager):
    client.force_login(dept001_manager)
    before = _snapshot()

    response = _preview(client, _csv_file(GOOD_ROWS), "csv")

    assert response.status_code == 403
    assert _snapshot() == before


def test_store_manager_cannot_confirm_an_import(client, dept001_manager, hq_admin, reference_stores):
    # given: a file previewed by headquarters
    client.force_login(hq_admin)
    preview = _preview(client, _csv_file(GOOD_ROWS), "csv")
    confirm_data = dict(preview.context["confirm_form"].initial)
    # when
    client.force_login(dept001_manager)
    response = client.post(CONFIRM_URL, confirm_data)
    # then
    assert response.status_code == 403
    assert not Store.objects.filter(code__in=["DEPT901", "SUPER901"]).exists()


def test_store_list_offers_no_import_button_to_a_store_manager(client, dept001_manager):
    client.force_login(dept001_manager)

    response = client.get("/admin/stores/store/")

    assert response.context["has_import_permission"] is False
    assert IMPORT_URL not in response.content.decode()


def test_store_list_offers_the_import_button_to_hq(hq_import_client):
    response = hq_import_client.get("/admin/stores/store/")

    assert response.context["has_import_permission"] is True
    assert IMPORT_URL in response.content.decode()


# --- formula injection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("嘉禾百货", "嘉禾百货"),
        ("023-63000001", "023-63000001"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_escape_cell_quotes_text_that_could_start_a_formula(value, expected):
    assert escape_cell(value) == expected


@pytest.mark.parametrize("value", ["-12.50", "+3", "-7", "12.5"])
def test_escape_cell_leaves_signed_plain_numbers_alone(value):
    assert escape_cell(value) == value


@pytest.mark.parametrize("value", [None, 12, Decimal("-1.00"), date(2024, 5, 1), True])
def test_escape_cell_leaves_values_that_are_not_text_alone(value):
    assert escape_cell(value) is value


def test_store_resource_escapes_an_address_starting_with_equals(dept001):
    Store.objects.filter(pk=dept001.pk).update(address="=HYPERLINK(\"http://evil\",\"点我\")", name="@店")

    dataset = StoreResource().export(queryset=Store.objects.filter(pk=dept001.pk))

    row = dict(zip(dataset.headers, dataset[0], strict=True))
    assert row["address"] == "'=HYPERLINK(\"http://evil\",\"点我\")"
    assert row["name"] == "'@店"
    assert row["code"] == "DEPT001"


def _export_data(title):
    store_admin = admin.site._registry[Store]
    formats = store_admin.get_export_formats()
    index = next(i for i, file_format in enumerate(formats) if file_format().get_title() == title)
    data = {"format": str(index), "resource": "0"}
    for field_name in StoreResource().get_export_order():
        data[f"storeresource_{field_name}"] = "on"
    return data


def test_csv_export_escapes_an_address_starting_with_equals(client, hq_admin, dept001):
    # given
    Store.objects.filter(pk=dept001.pk).update(address="=1+2")
    client.force_login(hq_admin)
    # when
    response = client.post(EXPORT_URL, _export_data("csv"))
    # then
    assert response.status_code == 200
    rows = {row["code"]: row for row in csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")))}
    assert rows["DEPT001"]["address"] == "'=1+2"
    assert not any(row["address"].startswith(("=", "+", "-", "@")) for row in rows.values())


def test_xlsx_export_escapes_an_address_starting_with_equals(client, hq_admin, dept001):
    Store.objects.filter(pk=dept001.pk).update(address="=1+2")
    client.force_login(hq_admin)

    response = client.post(EXPORT_URL, _export_data("xlsx"))

    sheet = load_workbook(io.BytesIO(response.content)).active
    header = [cell.value for cell in sheet[1]]
    rows = {row[header.index("code")]: row for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert rows["DEPT001"][header.index("address")] == "'=1+2"
    assert all(cell.data_type != "f" for row in sheet.iter_rows(min_row=2) for cell in row)
