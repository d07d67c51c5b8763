"""The admin's member import (preview, all or nothing) and export (masked unless asked otherwise)."""

from datetime import date

import tablib

from membership.models import Member, MemberIdentity
from membership.resources import MemberExportResource, MemberImportResource
from tests.membership.conftest import register, resident_id

ID_WANG = resident_id(date(1956, 7, 1), region="110101", gender="M", serial=21)


def dataset(*rows, headers=("会员号", "姓名", "手机号", "身份证号", "积分")):
    return tablib.Dataset(*rows, headers=list(headers))


def test_preview_shows_new_rows_and_writes_nothing(reference_stores):
    data = dataset(("A1", "王建国", "13800138001", ID_WANG, 100), ("A2", "李娜", "", "", ""))

    result = MemberImportResource().import_data(data, dry_run=True, file_name="dept_crm.xlsx")

    assert not result.has_errors() and not result.has_validation_errors()
    assert [row.import_type for row in result.rows] == ["new", "new"]
    assert result.totals["new"] == 2
    assert Member.objects.count() == 0


def test_confirmed_import_writes_members_under_the_file_name_source(reference_stores, hq_admin):
    data = dataset(("A1", "王建国", "13800138001", ID_WANG, 100))

    result = MemberImportResource().import_data(data, dry_run=False, file_name="dept_crm.xlsx", user=hq_admin)

    member = Member.objects.get()
    assert member.points == 100 and member.registered_by == hq_admin
    assert MemberIdentity.objects.get().source == "DEPT_CRM"
    assert result.rows[0].instance == member


def test_a_bad_row_is_a_row_error_naming_the_column_and_nothing_is_written(reference_stores):
    data = dataset(("A1", "王建国", "13800138001", ID_WANG, 100), ("A2", "李娜", "12345", "", "-3"))

    result = MemberImportResource().import_data(data, dry_run=False, file_name="dept.csv")

    assert result.has_validation_errors()
    invalid = result.invalid_rows[0]
    assert invalid.number == 3
    assert set(invalid.field_specific_errors) == {"phone", "points"}
    assert Member.objects.count() == 0


def test_missing_columns_are_a_base_error(reference_stores):
    result = MemberImportResource().import_data(dataset(("x",), headers=("编号",)), dry_run=True)

    assert result.has_errors()
    assert "member_no (会员号)" in str(result.base_errors[0].error)


def test_an_already_imported_row_is_skipped(reference_stores):
    data = dataset(("A1", "王建国", "13800138001", ID_WANG, 100))
    MemberImportResource(source="DEPT").import_data(data, dry_run=False)

    result = MemberImportResource(source="DEPT").import_data(data, dry_run=True)

    assert [row.import_type for row in result.rows] == ["skip"]


def test_export_masks_phone_and_id_number_by_default(reference_stores, dept001):
    register(name="王建国", phone="13800138001", id_type="resident_id", id_number=ID_WANG, store=dept001)

    exported = MemberExportResource().export()

    assert exported.headers == ["member_no", "name", "phone", "id_number", "gender", "birth_date", "tier_code",
                                "points", "store_code", "registered_at", "status"]
    row = dict(zip(exported.headers, exported[0], strict=True))
    assert row["phone"] == "138****8001"
    assert row["id_number"] == ID_WANG[:3] + "*" * 11 + ID_WANG[-4:]
    assert (row["tier_code"], row["store_code"], row["points"]) == ("NORMAL", "DEPT001", "0")


def test_export_with_full_personal_data_shows_the_numbers(reference_stores):
    register(name="王建国", phone="13800138001", id_type="resident_id", id_number=ID_WANG)

    row = MemberExportResource(full_personal_data=True).export()[0]

    assert "13800138001" in row and ID_WANG in row


def test_exported_cells_cannot_start_a_formula(reference_stores):
    register(name="=cmd|' /C calc'!A0", phone="13800138001")

    row = MemberExportResource().export()[0]

    assert "'=cmd|' /C calc'!A0" in row
