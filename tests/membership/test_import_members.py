"""import_legacy_members: CSV (UTF-8, BOM, GBK) and XLSX, all or nothing, idempotent, one member per ID number."""

import csv
from datetime import date

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from openpyxl import Workbook

from core.pii import pii_decrypt
from membership.models import Member, MemberEvent, MemberIdentity, MergeCandidate, PointsEntry
from membership.queries import members_by_id_number, members_by_member_no
from membership.services import member_no_is_valid
from tests.membership.conftest import register, resident_id

EN = ["member_no", "name", "phone", "id_number", "birth_date", "tier_code", "points", "store_code", "registered_at"]
ZH = ["会员号", "姓名", "手机号", "身份证号", "出生日期", "等级", "积分", "注册门店", "注册时间"]

ID_WANG = resident_id(date(1956, 7, 1), region="110101", gender="M", serial=11)
ID_ZHANG = resident_id(date(1948, 3, 12), gender="F", serial=12)
ID_LI = resident_id(date(1990, 1, 5), gender="F", serial=13)


def bad_check_digit(number: str) -> str:
    return number[:17] + ("0" if number[17] != "0" else "1")


def write_csv(path, header, rows, *, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(path, *args):
    """Run the command; return what it printed."""
    from io import StringIO

    out = StringIO()
    call_command("import_legacy_members", str(path), *args, stdout=out)
    return out.getvalue()


def assert_ledgers_hold():
    """Every member's points equal the sum of their ledger, and each entry's balance_after is a running sum."""
    sums = dict(PointsEntry.objects.values_list("member").annotate(total=Sum("points")))
    for pk, points in Member.objects.values_list("pk", "points"):
        assert points == sums.get(pk, 0), f"member {pk}: {points} points, ledger says {sums.get(pk, 0)}"
    running: dict[int, int] = {}
    for member_id, points, balance in PointsEntry.objects.order_by("pk").values_list(
        "member_id", "points", "balance_after"
    ):
        running[member_id] = running.get(member_id, 0) + points
        assert balance == running[member_id]


def counts():
    return (Member.objects.count(), MemberIdentity.objects.count(), PointsEntry.objects.count(),
            MemberEvent.objects.count(), MergeCandidate.objects.count())


@pytest.fixture
def good_rows():
    return [
        ["A001", "王建国", "13800138001", ID_WANG, "1956-07-01", "GOLD", "1200", "DEPT001", "2015-06-01 09:30"],
        ["A002", "张秀英", "", ID_ZHANG, "", "", "300", "DEPT001", "2012-01-01"],
        ["A003", "赵小红", "13800138001", "", "", "silver", "", "SUPER001", ""],
        ["A004", "钱老太", "", "", "", "", "", "", ""],
    ]


def test_gbk_file_with_chinese_headers_imports_members_identities_and_points(reference_stores, tmp_path, good_rows):
    # given a GBK file as Chinese Excel saves it, with one invalid row
    rows = [*good_rows, ["A005", "孙坏号", "", bad_check_digit(ID_LI), "", "", "", "", ""]]
    path = write_csv(tmp_path / "dept_crm.csv", ZH, rows, encoding="gbk")

    # when
    output = run(path, "--skip-invalid")

    # then
    assert "created 4" in output and "rejected 1" in output
    wang = members_by_id_number(ID_WANG).get()
    assert wang.name == "王建国" and wang.tier.code == "GOLD" and wang.points == 1200
    assert wang.registered_channel == Member.Channel.IMPORT and wang.registered_store.code == "DEPT001"
    assert wang.registered_at.isoformat() == "2015-06-01T01:30:00+00:00"
    assert wang.birth_date == date(1956, 7, 1) and wang.gender == "M"
    assert pii_decrypt(wang.id_number_sealed) == ID_WANG and wang.id_number_masked.startswith("110")
    assert list(wang.identities.values_list("source", "external_no")) == [("DEPT_CRM", "A001")]
    assert wang.points_entries.get().kind == PointsEntry.Kind.MIGRATION
    # The member page tells where the member came from: the channel, the identity and the opening entry.
    assert not wang.events.exists()
    assert Member.objects.get(name="赵小红").tier.code == "SILVER"
    elderly = Member.objects.get(name="钱老太")
    assert (elderly.phone, elderly.id_number_digest, elderly.tier.code) == ("", None, "NORMAL")
    assert not Member.objects.filter(name="孙坏号").exists()
    assert_ledgers_hold()


def test_utf8_bom_csv_with_english_headers_imports(reference_stores, tmp_path, good_rows):
    path = write_csv(tmp_path / "pos.csv", EN, good_rows, encoding="utf-8-sig")

    run(path)

    assert Member.objects.count() == 4
    assert set(MemberIdentity.objects.values_list("source", flat=True)) == {"POS"}


def test_xlsx_first_sheet_imports_with_numbers_and_dates_as_excel_stores_them(reference_stores, tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append([" 会员号 ", "姓名", "手机号", "身份证号", "出生日期", "积分", "注册时间"])
    sheet.append([10001, "王建国", 13800138001, ID_WANG, date(1956, 7, 1), 50, date(2015, 6, 1)])
    workbook.create_sheet("ignored").append(["nothing"])
    path = tmp_path / "elec.xlsx"
    workbook.save(path)

    run(path, "--source", "elec crm")

    member = members_by_member_no("10001").get()
    assert (member.phone, member.points, member.birth_date) == ("13800138001", 50, date(1956, 7, 1))
    assert member.identities.get().source == "ELEC_CRM"


def test_missing_required_columns_are_named_and_nothing_is_written(reference_stores, tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["编号", "手机号"], [["1", "13800138000"]])

    with pytest.raises(CommandError) as raised:
        run(path)

    message = str(raised.value)
    assert "member_no (会员号)" in message and "name (姓名)" in message and "编号" in message
    assert counts() == (0, 0, 0, 0, 0)


def test_unknown_columns_are_reported_and_ignored(reference_stores, tmp_path):
    path = write_csv(tmp_path / "extra.csv", ["member_no", "name", "wechat"], [["X1", "王芳", "wx123"]])

    output = run(path)

    assert "wechat" in output
    assert Member.objects.get().name == "王芳"


def test_dry_run_prints_counts_and_writes_nothing(reference_stores, tmp_path, good_rows):
    register(name="王建国", id_type="resident_id", id_number=ID_WANG)
    before = counts()
    rows = [*good_rows, ["A006", "无名", "123", "", "", "", "", "", ""]]
    path = write_csv(tmp_path / "dept.csv", EN, rows)

    output = run(path, "--dry-run")

    assert "would create 3" in output and "update 1" in output and "reject 1" in output
    assert "row 6, phone" in output
    assert counts() == before


def test_an_invalid_row_without_skip_invalid_writes_nothing_and_names_the_first(reference_stores, tmp_path,
                                                                                good_rows):
    rows = [*good_rows, ["A005", "孙坏号", "", bad_check_digit(ID_LI), "", "", "", "", ""],
            ["A006", "周未来", "", "", "2999-01-01", "", "", "", ""]]
    path = write_csv(tmp_path / "dept.csv", EN, rows)

    with pytest.raises(CommandError) as raised:
        run(path)

    message = str(raised.value)
    assert "2 rows are invalid" in message and "row 6, id_number" in message and "check digit" in message
    assert "\n" not in message
    assert counts() == (0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("id_number", "ID_LI_BAD", "check digit"),
        ("birth_date", "2999-01-01", "future"),
        ("birth_date", "1990-13-45", "not a date"),
        ("phone", "12345", "not a possible phone"),
        ("tier_code", "DIAMOND", "Unknown tier DIAMOND"),
        ("store_code", "NOPE01", "No store has the code NOPE01"),
        ("points", "-5", "cannot be negative"),
        ("points", "12.5", "whole numbers"),
        ("points", "lots", "not a number"),
        ("registered_at", "yesterday", "not a date"),
        ("name", "", "name"),
        ("member_no", "", "empty"),
    ],
)
def test_each_kind_of_bad_value_is_a_rejected_row_naming_its_column(reference_stores, tmp_path, column, value,
                                                                    words):
    row = dict(zip(EN, ["B1", "王芳", "", "", "", "", "", "", ""], strict=True))
    row[column] = bad_check_digit(ID_LI) if value == "ID_LI_BAD" else value
    path = write_csv(tmp_path / "one.csv", EN, [list(row.values())])
    errors = tmp_path / "errors.csv"

    run(path, "--skip-invalid", "--errors", str(errors))

    with open(errors, encoding="utf-8-sig") as handle:
        rejected = list(csv.DictReader(handle))
    assert len(rejected) == 1
    assert rejected[0]["reason"].startswith(f"row 2, {column}: ") and words in rejected[0]["reason"]
    assert Member.objects.count() == 0


def test_skip_invalid_imports_good_rows_and_writes_bad_rows_with_reasons(reference_stores, tmp_path, good_rows):
    rows = [*good_rows, ["A005", "孙坏号", "", bad_check_digit(ID_LI), "", "", "", "", ""],
            ["A006", "=HYPERLINK(1)", "12", "", "", "", "", "", ""]]
    path = write_csv(tmp_path / "dept.csv", ZH, rows, encoding="gbk")
    errors = tmp_path / "out" / "errors.csv"

    output = run(path, "--skip-invalid", "--errors", str(errors))

    assert "rejected 2" in output and str(errors) in output
    raw = errors.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with open(errors, encoding="utf-8-sig") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == [*ZH, "reason"]
    assert lines[1][0] == "A005" and lines[1][-1].startswith("row 6, id_number:")
    assert lines[2][1] == "'=HYPERLINK(1)" and "phone" in lines[2][-1]
    assert Member.objects.count() == 4


def test_a_repeated_member_no_in_one_file_is_a_rejected_row(reference_stores, tmp_path):
    rows = [["D1", "王芳", "", "", "", "", "", "", ""], ["D1", "李娜", "", "", "", "", "", "", ""]]
    path = write_csv(tmp_path / "dup.csv", EN, rows)
    errors = tmp_path / "errors.csv"

    output = run(path, "--skip-invalid", "--errors", str(errors))

    assert "created 1" in output and "rejected 1" in output
    assert "already appears in row 2" in errors.read_text(encoding="utf-8-sig")
    assert members_by_member_no("D1").get().name == "王芳"


def test_a_second_run_of_the_same_file_creates_nothing_new(reference_stores, tmp_path, good_rows):
    path = write_csv(tmp_path / "dept.csv", EN, good_rows)
    run(path)
    before = counts()

    output = run(path)

    assert "created 0" in output and "unchanged 4" in output
    assert counts() == before
    assert_ledgers_hold()


def test_the_same_id_number_in_two_sources_is_one_member_with_two_identities(reference_stores, tmp_path):
    dept = write_csv(tmp_path / "dept.csv", EN, [["A1", "王建国", "", ID_WANG, "", "GOLD", "100", "DEPT001", ""]])
    superstore = write_csv(tmp_path / "super.csv", EN,
                           [["S9", "王建國", "13900139000", ID_WANG, "", "NORMAL", "40", "SUPER001", ""]])

    run(dept)
    output = run(superstore)

    assert "created 0" in output and "updated 1" in output
    member = members_by_id_number(ID_WANG).get()
    assert sorted(member.identities.values_list("source", "external_no")) == [("DEPT", "A1"), ("SUPER", "S9")]
    # The first source's details win; the later one only fills what was empty.
    assert (member.name, member.tier.code, member.registered_store.code) == ("王建国", "GOLD", "DEPT001")
    assert member.phone == "13900139000"
    assert member.points == 140
    assert list(member.points_entries.order_by("pk").values_list("points", "balance_after")) == [(100, 100),
                                                                                                (40, 140)]
    assert members_by_member_no("S9").get() == member == members_by_member_no("A1").get()
    assert_ledgers_hold()


def test_the_same_id_number_twice_in_one_file_is_one_member(reference_stores, tmp_path):
    rows = [["A1", "王建国", "", ID_WANG, "", "", "10", "", ""], ["A2", "王建国", "13800138001", ID_WANG, "", "", "5",
                                                                   "", ""]]
    path = write_csv(tmp_path / "dept.csv", EN, rows)

    output = run(path)

    assert "created 1" in output and "updated 1" in output
    member = Member.objects.get()
    assert (member.points, member.phone, member.identities.count()) == (15, "13800138001", 2)
    assert_ledgers_hold()


def test_an_id_number_already_registered_at_the_desk_gets_the_legacy_identity(reference_stores, tmp_path):
    desk = register(name="王建国", id_type="resident_id", id_number=ID_WANG, phone="13700137000")
    path = write_csv(tmp_path / "dept.csv", EN, [["A1", "王建国", "13800138001", ID_WANG, "", "", "70", "", ""]])

    run(path)

    desk.refresh_from_db()
    assert Member.objects.count() == 1
    assert (desk.phone, desk.points) == ("13700137000", 70)
    assert members_by_member_no("A1").get() == desk


def test_a_member_there_before_the_import_gets_an_event_for_each_legacy_record(reference_stores, tmp_path,
                                                                                monkeypatch):
    # given a member registered at the desk, and a file that holds them twice, in two batches, beside a new person
    monkeypatch.setattr("membership.legacy.BATCH_SIZE", 2)
    desk = register(name="王建国", id_type="resident_id", id_number=ID_WANG)
    rows = [["A1", "王建国", "", ID_WANG, "", "", "", "", ""], ["A2", "李丽", "", ID_LI, "", "", "", "", ""],
            ["A3", "王建国", "", ID_WANG, "", "", "", "", ""], ["A4", "李丽", "", ID_LI, "", "", "", "", ""]]
    path = write_csv(tmp_path / "dept.csv", EN, rows)

    # when
    run(path)

    # then the desk member's page lists both records; the member the file created has no event
    imported = desk.events.filter(kind=MemberEvent.Kind.IMPORTED).order_by("pk")
    assert [(event.data["source"], event.data["external_no"], event.data["row"]) for event in imported] == [
        ("DEPT", "A1", 2), ("DEPT", "A3", 4)]
    li = members_by_id_number(ID_LI).get()
    assert not li.events.exists()
    assert sorted(li.identities.values_list("external_no", flat=True)) == ["A2", "A4"]


def test_members_sharing_only_a_phone_are_merge_candidates_not_joined(reference_stores, tmp_path):
    existing = register(name="李建国", phone="13800138000")
    rows = [["F1", "李小明", "13800138000", ID_LI, "", "", "", "", ""],
            ["F2", "李奶奶", "13800138000", "", "", "", "", "", ""]]
    path = write_csv(tmp_path / "family.csv", EN, rows)

    output = run(path)

    assert "3 merge candidates" in output
    assert Member.objects.filter(phone="13800138000").count() == 3
    assert set(MergeCandidate.objects.values_list("reason", flat=True)) == {MergeCandidate.Reason.IMPORT_PHONE}
    imported = set(Member.objects.exclude(pk=existing.pk).values_list("pk", flat=True))
    pairs = set(MergeCandidate.objects.values_list("member_a", "member_b"))
    assert pairs == {tuple(sorted((existing.pk, pk))) for pk in imported} | {tuple(sorted(imported))}


def test_lookup_by_legacy_number_finds_the_member(reference_stores, tmp_path, good_rows):
    path = write_csv(tmp_path / "dept.csv", EN, good_rows)

    run(path)

    member = members_by_member_no("A003").get()
    assert member.name == "赵小红"
    assert members_by_member_no(member.member_no).get() == member


def test_an_unreadable_file_is_a_one_line_error(reference_stores, tmp_path):
    path = tmp_path / "members.pdf"
    path.write_bytes(b"%PDF-1.4")

    with pytest.raises(CommandError, match="neither a CSV nor an XLSX"):
        run(path)
    with pytest.raises(CommandError, match="There is no file"):
        run(tmp_path / "missing.csv")


def test_batches_see_each_other_for_ids_and_duplicates(reference_stores, tmp_path, monkeypatch):
    monkeypatch.setattr("membership.legacy.BATCH_SIZE", 2)
    rows = [["A1", "王建国", "", ID_WANG, "", "", "10", "", ""], ["A2", "张三", "13800138001", "", "", "", "", "", ""],
            ["A3", "王建国", "", ID_WANG, "", "", "5", "", ""], ["A1", "重复", "", "", "", "", "", "", ""],
            ["A4", "李四", "13800138001", "", "", "", "", "", ""]]
    path = write_csv(tmp_path / "dept.csv", EN, rows)

    output = run(path, "--skip-invalid")

    assert "created 3" in output and "updated 1" in output and "rejected 1" in output
    assert members_by_id_number(ID_WANG).get().points == 15
    assert MergeCandidate.objects.count() == 1
    assert_ledgers_hold()


@pytest.mark.postgres
def test_member_numbers_of_the_import_are_valid_and_distinct(reference_stores, tmp_path):
    path = write_csv(tmp_path / "many.csv", EN, [[f"N{i}", "王芳", "", "", "", "", "", "", ""] for i in range(500)])

    run(path)

    numbers = list(Member.objects.values_list("member_no", flat=True))
    assert len(set(numbers)) == 500
    assert all(member_no_is_valid(number) for number in numbers)


@pytest.mark.postgres
def test_an_import_into_an_empty_members_table_rebuilds_every_index(reference_stores, tmp_path, good_rows):
    if connection.vendor != "postgresql":
        pytest.skip("indexes are dropped and rebuilt on PostgreSQL only")
    before = member_indexes(), foreign_keys_to_members()
    path = write_csv(tmp_path / "dept.csv", EN, good_rows)

    run(path)

    assert (member_indexes(), foreign_keys_to_members()) == before
    assert Member.objects.filter(phone="13800138001").count() == 2
    assert_ledgers_hold()


@pytest.mark.postgres
def test_a_dry_run_into_an_empty_members_table_keeps_every_index(reference_stores, tmp_path, good_rows):
    if connection.vendor != "postgresql":
        pytest.skip("indexes are dropped and rebuilt on PostgreSQL only")
    before = member_indexes(), foreign_keys_to_members()
    path = write_csv(tmp_path / "dept.csv", EN, good_rows)

    run(path, "--dry-run")

    assert (member_indexes(), foreign_keys_to_members()) == before
    assert counts() == (0, 0, 0, 0, 0)


@pytest.mark.postgres
def test_an_import_next_to_existing_members_keeps_their_indexes_in_place(reference_stores, tmp_path, good_rows):
    if connection.vendor != "postgresql":
        pytest.skip("indexes are dropped and rebuilt on PostgreSQL only")
    register(name="李建国", phone="13800138000")
    before = member_indexes(with_oid=True)
    path = write_csv(tmp_path / "dept.csv", EN, good_rows)

    run(path)

    # Same index objects: nothing was dropped and built again under the members already there.
    assert member_indexes(with_oid=True) == before
    assert Member.objects.count() == 5


WRITTEN_TABLES = ("membership_member", "membership_memberidentity", "membership_pointsentry",
                  "membership_memberevent", "membership_mergecandidate")


def foreign_keys_to_members():
    """Every foreign key to or from the members and to the tiers, as declared."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), condeferrable, condeferred "
            "FROM pg_constraint WHERE contype = 'f' AND (confrelid = ANY(%s::regclass[]) "
            "OR conrelid = 'membership_member'::regclass) ORDER BY 1, 2",
            ["{membership_member,membership_tier}"],
        )
        return cursor.fetchall()


@pytest.mark.postgres
def test_a_first_import_still_refuses_a_row_naming_no_member(reference_stores, tmp_path, good_rows):
    if connection.vendor != "postgresql":
        pytest.skip("foreign keys are dropped and added again on PostgreSQL only")
    path = write_csv(tmp_path / "dept.csv", EN, good_rows)
    run(path)

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("INSERT INTO membership_memberidentity (member_id, kind, source, external_no, created_at) "
                       "VALUES (-1, 'legacy', 'X', 'Y', now())")
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("UPDATE membership_member SET tier_id = -1")


def member_indexes(*, with_oid=False):
    """The indexes of every table the import writes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = ANY(%s::regclass[]) ORDER BY 2",
            ["{" + ",".join(WRITTEN_TABLES) + "}"],
        )
        return [(oid, definition) if with_oid else definition for oid, definition in cursor.fetchall()]


@pytest.mark.postgres
def test_postgres_import_goes_through_copy_and_keeps_the_sequence(reference_stores, tmp_path, good_rows):
    if connection.vendor != "postgresql":
        pytest.skip("COPY needs PostgreSQL")
    path = write_csv(tmp_path / "dept.csv", EN, good_rows)

    run(path)
    after_import = register(name="新会员", phone="13600136000")

    assert Member.objects.count() == 5
    assert after_import.pk > max(Member.objects.exclude(pk=after_import.pk).values_list("pk", flat=True))
    assert_ledgers_hold()


def test_merge_candidates_do_not_depend_on_the_batch_size(reference_stores, tmp_path, monkeypatch):
    rows = [[f"H{i}", f"家人{i}", "13800138009", "", "", "", "", "", ""] for i in range(25)]
    path = write_csv(tmp_path / "clan.csv", EN, rows)
    found = []
    for size in (10_000, 3):
        monkeypatch.setattr("membership.legacy.BATCH_SIZE", size)
        run(path, "--dry-run")
        output = run(path)
        members = {pk: n for n, pk in enumerate(Member.objects.order_by("pk").values_list("pk", flat=True))}
        found.append({(members[a], members[b]) for a, b in MergeCandidate.objects.values_list("member_a", "member_b")})
        assert f"{len(found[-1])} merge candidates" in output
        MergeCandidate.objects.all().delete()
        MemberIdentity.objects.all().delete()
        PointsEntry.objects.all().delete()
        MemberEvent.objects.all().delete()
        Member.objects.all().delete()
    assert found[0] == found[1]
    # Each of the 25 is paired with the first 20 others that hold the phone.
    assert found[0] == {(a, b) for a in range(25) for b in range(a + 1, 25) if a < 21 and (b < 21 or a < 20)}


def test_a_file_that_breaks_after_some_batches_writes_nothing(reference_stores, tmp_path, monkeypatch):
    monkeypatch.setattr("membership.legacy.BATCH_SIZE", 100)
    path = write_csv(tmp_path / "broken.csv", EN, [[f"B{i:05d}", "王建国" * 10, "", "", "", "", "", "", ""]
                                                   for i in range(3000)])
    with open(path, "ab") as handle:
        handle.write(b"B99999,\xff\xfe,,,,,,,\r\n")  # not UTF-8, beyond the part read to guess the encoding

    with pytest.raises(CommandError, match="broken.csv"):  # the row where decoding failed, in either language
        run(path)
    assert counts() == (0, 0, 0, 0, 0)
