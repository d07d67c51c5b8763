"""import_legacy_cards (CONTRACT sections 1 and 4): CSV (UTF-8, BOM, GBK) and XLSX, all or nothing, idempotent,
each balance one `migration` ledger entry. On PostgreSQL the file is checked and written set-based (COPY);
elsewhere row by row in Python: the tests here run on both, and the PostgreSQL ones compare the two."""

import csv
import re
from datetime import date, datetime
from decimal import Decimal
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from openpyxl import Workbook

from cards import legacy
from cards.models import Card, CardLedgerEntry
from core.tabular import TableReader
from membership.models import MemberIdentity
from tests.membership.conftest import register

pytestmark = pytest.mark.django_db

EN = ["card_no", "product_code", "balance", "status", "issued_at", "expires_at", "holder_member_no", "store_code"]
ZH = ["卡号", "卡类型", "余额", "状态", "发卡日期", "有效期", "持卡会员号", "售卡门店"]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def write_csv(path, header, rows, *, encoding="utf-8"):
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(path, *args) -> str:
    out = StringIO()
    call_command("import_legacy_cards", str(path), *args, stdout=out)
    return out.getvalue()


def rejected_rows(path) -> list[dict]:
    with open(path, encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def counts():
    return Card.objects.count(), CardLedgerEntry.objects.count()


@pytest.fixture
def products(stored_product, bearer_product, reference_stores):
    return stored_product, bearer_product


@pytest.fixture
def holder():
    """A member with a number of their own and a legacy one from the old department-store CRM."""
    member = register(name="王建国", phone="13800138001")
    MemberIdentity.objects.create(member=member, source="DEPT_CRM", external_no="A0001")
    return member


@pytest.fixture
def good_rows(holder):
    return [
        ["6222000000000011", "STORED", "1,200.50", "active", "2019-05-01", "", holder.member_no, "DEPT001"],
        ["6222000000000029", "BEARER", "300", "正常", "2024/3/15", "", "", "SUPER001"],
        ["6222000000000037", "STORED", "0.00", "inactive", "", "", "", "DEPT001"],
        ["6222000000000045", "STORED", "88.80", "挂失", "2018-01-01", "", "A0001", "DEPT001"],
        ["6222000000000052", "BEARER", "45.00", "expired", "2020-01-10", "2023-01-10", "", "SUPER001"],
        ["6222000000000060", "STORED", "0", "closed", "2017-07-07", "", "", ""],
        ["6222000000000078", "BEARER", "0.00", "inactive", "", "", "", ""],
    ]


def test_gbk_file_with_chinese_headers_imports_cards_with_opening_balances(products, holder, good_rows, tmp_path):
    # given a GBK file as Chinese Excel saves it
    path = write_csv(tmp_path / "dept_cards.csv", ZH, good_rows, encoding="gbk")

    # when
    output = run(path)

    # then
    assert "created 7 cards" in output and "rejected 0" in output and "1634.30" in output
    active = Card.objects.select_related("sold_store__format__legal_entity").get(card_no="6222000000000011")
    assert (active.status, active.stock_status, active.balance) == ("active", "sold", Decimal("1200.50"))
    assert active.member == holder and active.legacy_source == "DEPT_CARDS" and active.expires_at is None
    assert active.sold_store.code == "DEPT001" and active.issuer == active.sold_store.format.legal_entity
    assert active.location is None and active.activated_at == datetime(2019, 5, 1, tzinfo=SHANGHAI)
    entry = active.ledger_entries.get()
    assert (entry.kind, entry.amount, entry.balance_after) == ("migration", Decimal("1200.50"), Decimal("1200.50"))
    assert entry.store == active.sold_store and entry.legal_entity == active.issuer
    assert "DEPT_CARDS" in entry.reason

    bearer = Card.objects.get(card_no="6222000000000029")
    # A bearer card without an expiry in the file is valid the product's 36 months from its issue.
    assert bearer.expires_at == datetime(2027, 3, 15, tzinfo=SHANGHAI)
    in_store = Card.objects.get(card_no="6222000000000037")
    assert (in_store.status, in_store.stock_status, in_store.location.code) == ("inactive", "in_stock", "DEPT001")
    assert in_store.sold_store is None and in_store.activated_at is None and not in_store.ledger_entries.exists()
    lost = Card.objects.get(card_no="6222000000000045")
    assert (lost.status, lost.freeze_reason, lost.member) == ("frozen", "lost", holder)
    expired = Card.objects.get(card_no="6222000000000052")
    # A printed validity date is valid through that whole day.
    assert expired.status == "expired" and expired.expires_at == datetime(2023, 1, 11, tzinfo=SHANGHAI)
    assert expired.balance == Decimal("45.00")
    closed = Card.objects.get(card_no="6222000000000060")
    assert (closed.status, closed.balance, closed.sold_store) == ("closed", Decimal("0.00"), None)
    hq_stock = Card.objects.get(card_no="6222000000000078")
    assert (hq_stock.stock_status, hq_stock.location) == ("in_stock", None)
    assert CardLedgerEntry.objects.filter(kind="migration").count() == 4
    assert not CardLedgerEntry.objects.exclude(kind="migration").exists()


def test_utf8_bom_csv_with_english_headers_and_a_source_option_imports(products, good_rows, tmp_path):
    path = write_csv(tmp_path / "whatever.csv", EN, good_rows, encoding="utf-8-sig")

    run(path, "--source", "super pos")

    assert set(Card.objects.values_list("legacy_source", flat=True)) == {"SUPER_POS"}
    assert Card.objects.count() == 7


def test_xlsx_first_sheet_imports_with_numbers_and_dates_as_excel_stores_them(products, tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append([" 卡号 ", "卡类型", "余额", "状态", "发卡日期", "有效期"])
    sheet.append([6222000000000011, "bearer", 99.5, "active", date(2024, 2, 29), datetime(2027, 2, 28, 18, 0)])
    workbook.create_sheet("ignored").append(["nothing"])
    path = tmp_path / "elec.xlsx"
    workbook.save(path)

    run(path)

    card = Card.objects.get(card_no="6222000000000011")
    assert (card.product.code, card.balance, card.legacy_source) == ("BEARER", Decimal("99.50"), "ELEC")
    assert card.expires_at == datetime(2027, 2, 28, 18, 0, tzinfo=SHANGHAI)
    assert card.activated_at == datetime(2024, 2, 29, tzinfo=SHANGHAI)


def test_missing_required_columns_are_named_and_nothing_is_written(products, tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["卡号", "金额"], [["6222000000000011", "10"]])

    with pytest.raises(CommandError) as raised:
        run(path)

    message = str(raised.value)
    assert "product_code (卡类型)" in message and "balance (余额)" in message and "status (状态)" in message
    assert "金额" in message and "\n" not in message
    assert counts() == (0, 0)


def test_unknown_columns_are_reported_and_ignored(products, tmp_path):
    path = write_csv(tmp_path / "extra.csv", [*EN[:4], "remark"], [["6222000000000011", "STORED", "5", "active",
                                                                    "vip"]])

    output = run(path)

    assert "remark" in output
    assert Card.objects.get().balance == Decimal("5.00")


BAD_VALUES = [
    ("card_no", "", "empty"),
    ("card_no", "62-22", "not a card number"),
    ("card_no", "12345", "not a card number"),
    ("product_code", "GOLDCARD", "Unknown card type GOLDCARD; use one of BEARER, STORED"),
    ("product_code", "", "card type is empty"),
    ("balance", "", "balance is empty"),
    ("balance", "ten", "not an amount"),
    ("balance", "-5.00", "cannot be negative"),
    ("balance", "12.345", "at most two decimals"),
    ("balance", "5000.01", "may hold: 5000.00"),
    ("status", "lost", "Unknown status lost"),
    ("status", "", "status is empty"),
    ("issued_at", "2019-02-30", "not a date"),
    ("issued_at", "2999-01-01", "in the future"),
    ("expires_at", "someday", "not a date"),
    ("expires_at", "2030-01-01", "has no expiry"),
    ("holder_member_no", "NOBODY", "No member has the number NOBODY"),
    ("store_code", "NOPE01", "No store has the code NOPE01"),
]


@pytest.mark.parametrize(("column", "value", "words"), BAD_VALUES)
def test_each_kind_of_bad_value_is_a_rejected_row_naming_its_column(products, tmp_path, column, value, words):
    row = dict(zip(EN, ["6222000000000011", "STORED", "10.00", "active", "2019-01-01", "", "", ""], strict=True))
    row[column] = value
    path = write_csv(tmp_path / "one.csv", EN, [list(row.values())])
    errors = tmp_path / "errors.csv"

    output = run(path, "--skip-invalid", "--errors", str(errors))

    rejected = rejected_rows(errors)
    assert "rejected 1" in output and len(rejected) == 1
    assert rejected[0]["reason"].startswith(f"row 2, {column}: ") and words in rejected[0]["reason"]
    assert counts() == (0, 0)


@pytest.mark.parametrize(("status", "words"), [("closed", "closed card cannot hold"),
                                               ("inactive", "inactive (unsold) card cannot hold")])
def test_a_closed_or_unsold_card_with_money_is_rejected(products, tmp_path, status, words):
    path = write_csv(tmp_path / "one.csv", EN, [["6222000000000011", "STORED", "10.00", status, "", "", "", ""]])

    with pytest.raises(CommandError, match=re.escape(words)):
        run(path)
    assert counts() == (0, 0)


@pytest.mark.parametrize("status", ["expired", "已过期"])
def test_a_registered_card_marked_expired_is_rejected_naming_the_rule(products, holder, tmp_path, status):
    # given: a legacy row of a registered card (STORED) with money on it, marked expired
    path = write_csv(tmp_path / "one.csv", EN, [
        ["6222000000000011", "STORED", "300.00", status, "2019-05-01", "", holder.member_no, "DEPT001"]])

    # when
    with pytest.raises(CommandError) as raised:
        run(path)

    # then: refused with the rule, and no card could be written off later: nothing is imported
    message = str(raised.value)
    assert "row 2, status:" in message and "registered cards never expire" in message
    assert counts() == (0, 0)


def test_a_bearer_card_above_its_cap_and_an_expiry_before_the_issue_are_rejected(products, tmp_path):
    path = write_csv(tmp_path / "two.csv", EN, [
        ["6222000000000011", "BEARER", "1000.01", "active", "", "", "", ""],
        ["6222000000000029", "BEARER", "10", "active", "2020-05-01", "2020-04-30", "", ""],
    ])
    errors = tmp_path / "errors.csv"

    run(path, "--skip-invalid", "--errors", str(errors))

    reasons = [row["reason"] for row in rejected_rows(errors)]
    assert "row 2, balance: 1000.01 is more than a BEARER card may hold: 1000.00" in reasons[0]
    assert reasons[1].startswith("row 3, expires_at:") and "before it was issued" in reasons[1]


def test_skip_invalid_imports_good_rows_and_writes_bad_rows_with_reasons(products, good_rows, tmp_path):
    rows = [*good_rows, ["6222000000000086", "STORED", "=1+1", "active", "", "", "", ""],
            ["6222000000000094", "GOLD", "10", "frozen", "", "", "", "NOPE"]]
    path = write_csv(tmp_path / "dept.csv", ZH, rows, encoding="gbk")
    errors = tmp_path / "out" / "errors.csv"

    output = run(path, "--skip-invalid", "--errors", str(errors))

    assert "created 7 cards" in output and "rejected 2" in output and str(errors) in output
    assert errors.read_bytes().startswith(b"\xef\xbb\xbf")
    with open(errors, encoding="utf-8-sig") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == [*ZH, "reason"]
    assert lines[1][2] == "'=1+1" and lines[1][-1].startswith("row 9, balance:")
    assert lines[2][-1].startswith("row 10, product_code: Unknown card type GOLD") and "store_code: No store" in \
        lines[2][-1]
    assert counts() == (7, 4)


def test_an_invalid_row_without_skip_invalid_writes_nothing_and_names_the_first(products, good_rows, tmp_path):
    rows = [*good_rows, ["6222000000000086", "STORED", "10", "sold", "", "", "", ""],
            ["6222000000000094", "STORED", "-1", "active", "", "", "", ""]]
    path = write_csv(tmp_path / "dept.csv", EN, rows)

    with pytest.raises(CommandError) as raised:
        run(path)

    message = str(raised.value)
    assert "2 rows are invalid" in message and "row 9, status: Unknown status sold" in message
    assert "--skip-invalid" in message and "\n" not in message
    assert counts() == (0, 0)


def test_dry_run_prints_counts_and_writes_nothing(products, good_rows, tmp_path):
    rows = [*good_rows, ["6222000000000086", "STORED", "10", "sold", "", "", "", ""]]
    path = write_csv(tmp_path / "dept.csv", EN, rows)

    output = run(path, "--dry-run")

    assert "Dry run of 8 rows" in output and "would create 7 cards" in output and "reject 1" in output
    assert "active 2" in output and "inactive 2" in output and "1634.30 in balances in 4 opening" in output
    assert "row 9, status" in output
    assert counts() == (0, 0)


def test_a_second_run_of_the_same_file_creates_nothing_new(products, good_rows, tmp_path, ledgers_balanced):
    path = write_csv(tmp_path / "dept.csv", EN, good_rows)
    run(path)
    before = list(Card.objects.order_by("pk").values_list("card_no", "balance", "status", "updated_at"))

    output = run(path)

    assert "created 0 cards" in output and "unchanged 7" in output
    assert list(Card.objects.order_by("pk").values_list("card_no", "balance", "status", "updated_at")) == before
    assert CardLedgerEntry.objects.count() == 4
    ledgers_balanced()


def test_a_file_with_new_cards_adds_only_those(products, good_rows, tmp_path):
    run(write_csv(tmp_path / "dept.csv", EN, good_rows[:3]))

    output = run(write_csv(tmp_path / "dept.csv", EN, good_rows))

    assert "created 4 cards" in output and "unchanged 3" in output
    assert Card.objects.count() == 7


def test_card_numbers_of_another_source_or_of_this_system_are_rejected(products, card_factory, tmp_path):
    card_factory(products[0], card_no="6222000000000029", balance="10.00")
    run(write_csv(tmp_path / "super_pos.csv", EN, [["6222000000000011", "STORED", "5", "active", "", "", "", ""]]))
    path = write_csv(tmp_path / "dept.csv", EN, [["6222000000000011", "STORED", "7", "active", "", "", "", ""],
                                                 ["6222000000000029", "STORED", "7", "active", "", "", "", ""]])
    errors = tmp_path / "errors.csv"

    output = run(path, "--skip-invalid", "--errors", str(errors))

    assert "created 0 cards" in output and "rejected 2" in output
    reasons = [row["reason"] for row in rejected_rows(errors)]
    assert "already in the system, imported from SUPER_POS" in reasons[0]
    assert "already in the system (not from a migration)" in reasons[1]
    assert Card.objects.get(card_no="6222000000000011").balance == Decimal("5.00")


def test_a_card_number_repeated_in_the_file_is_rejected_after_its_first_row(products, tmp_path):
    rows = [["6222000000000011", "STORED", "5", "active", "", "", "", ""],
            ["6222000000000029", "STORED", "6", "active", "", "", "", ""],
            ["6222000000000011", "BEARER", "7", "active", "", "", "", ""]]
    errors = tmp_path / "errors.csv"

    output = run(write_csv(tmp_path / "dup.csv", EN, rows), "--skip-invalid", "--errors", str(errors))

    assert "created 2 cards" in output and "rejected 1" in output
    assert "row 4, card_no: Card 6222000000000011 already appears in row 2" in rejected_rows(errors)[0]["reason"]
    assert Card.objects.get(card_no="6222000000000011").product.code == "STORED"


def test_a_holder_number_shared_by_two_members_is_ambiguous(products, holder, tmp_path):
    other = register(name="李娜", phone="13900139001")
    MemberIdentity.objects.create(member=other, source="SUPER_CRM", external_no="A0001")
    errors = tmp_path / "errors.csv"
    path = write_csv(tmp_path / "one.csv", EN, [["6222000000000011", "STORED", "5", "active", "", "", "A0001", ""]])

    run(path, "--skip-invalid", "--errors", str(errors))

    assert "belongs to several members" in rejected_rows(errors)[0]["reason"]


def test_check_ledgers_passes_after_an_import(products, good_rows, tmp_path):
    run(write_csv(tmp_path / "dept.csv", EN, good_rows))
    out = StringIO()

    call_command("check_ledgers", "--only", "cards.balance", stdout=out)

    assert "cards.balance: 7 accounts" in out.getvalue() and "every balance equals its ledger" in out.getvalue()


def test_a_bad_source_name_is_a_one_line_error(products, good_rows, tmp_path):
    path = write_csv(tmp_path / "dept.csv", EN, good_rows)

    with pytest.raises(CommandError, match="at most 50 characters"):
        run(path, "--source", "X" * 51)


def test_an_unreadable_file_is_a_one_line_error_and_writes_nothing(products, tmp_path):
    path = write_csv(tmp_path / "broken.csv", EN, [[f"62220000{i:08d}", "STORED", "1", "active", "", "", "", ""]
                                                   for i in range(3000)])
    with open(path, "ab") as handle:
        handle.write(b"6222999999999999,\xff\xfe,1,active,,,,\r\n")  # not UTF-8, past the part read to guess

    with pytest.raises(CommandError, match="broken.csv") as raised:
        run(path)
    assert "\n" not in str(raised.value)
    assert counts() == (0, 0)


def test_rows_with_every_cell_empty_are_skipped_and_numbering_follows_the_file(products, tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text(",".join(EN) + "\r\n6222000000000011,STORED,5,active,,,,\r\n,,,,,,,\r\n"
                    "6222000000000029,STORED,x,active,,,,\r\n", encoding="utf-8")
    errors = tmp_path / "errors.csv"

    output = run(path, "--skip-invalid", "--errors", str(errors))

    assert "Imported 2 rows" in output
    assert rejected_rows(errors)[0]["reason"].startswith("row 4, balance")


# --- PostgreSQL: the set-based path, its fallbacks, and the same answers as the Python path --------------------


def import_file(path, *, copy: bool, monkeypatch, **options):
    """Run the service through the COPY path or the Python path; return its report and rejections."""
    monkeypatch.setattr(legacy, "_copy_available", lambda: copy)
    rejections = []
    with TableReader(path, legacy.CARD_COLUMNS) as reader:
        report = legacy.cards_import(reader=reader, source="TEST", on_reject=lambda row, r: rejections.append(
            (r.row_number, r.reason, row.cells)), **options)
    return report, rejections


MIXED = [
    ["6222000000000011", "STORED", "1,200.50", "active", "2019-05-01", "", "", "DEPT001"],
    ["6222000000000029", "BEARER", "300", "正常", "20240315", "", "", "super001"],
    ["6222000000000037", "STORED", "0.00", "inactive", "", "", "", "DEPT001"],
    ["6222000000000045", "储值卡", "88.8", "挂失", "2018年1月2日 9:30", "", "", ""],
    ["6222000000000052", "BEARER", "45.00", "expired", "2020-01-10 08:00:00", "2023.1.10", "", ""],
    ["6222000000000011", "STORED", "3", "active", "", "", "", ""],
    ["62220000000000x1", "STORED", "3", "active", "2019-13-01", "2019-02-29", "", ""],
    ["6222000000000060", "BEARER", "1000.001", "closed", "2023-02-28 24:00", "", "", ""],
    ["6222000000000078", "NOPE", "-3", "inactive", "2020-01-01", "2020-01-01", "", "X"],
    ["6222000000000086", "", "", "", "", "", "NOBODY", ""],
    ["6222000000000094", "BEARER", "99999999999999999999", "active", "2016-02-29", "", "", ""],
    ["6222000000000102", "STORED", "12", "closed", "", "", "", ""],
]


@pytest.mark.postgres
@pytest.mark.parametrize("dry_run", [True, False])
def test_copy_and_python_paths_give_the_same_answers(products, tmp_path, monkeypatch, dry_run):
    path = write_csv(tmp_path / "mixed.csv", ZH, MIXED, encoding="gbk")
    answers = []
    for copy in (True, False):
        report, rejections = import_file(path, copy=copy, monkeypatch=monkeypatch, skip_invalid=True,
                                         dry_run=dry_run)
        cards = list(Card.objects.order_by("card_no").values_list(
            "card_no", "product__code", "status", "freeze_reason", "balance", "stock_status", "location_id",
            "sold_store_id", "issuer_id", "activated_at", "expires_at", "legacy_source"))
        entries = list(CardLedgerEntry.objects.order_by("card__card_no").values_list(
            "card__card_no", "kind", "amount", "balance_after", "store_id", "legal_entity_id"))
        answers.append(((report.rows, report.created, report.unchanged, report.rejected, report.balances,
                         report.entries, report.by_status), rejections, cards, entries))
        if not dry_run:
            # The ledger is append-only: start the second path on a fresh file of other numbers instead.
            path = write_csv(tmp_path / "mixed2.csv", ZH, [[row[0].replace("62220", "62221"), *row[1:]]
                                                            for row in MIXED], encoding="gbk")
    (summary_copy, rejections_copy, cards_copy, _), (summary_python, rejections_python, cards_python, _) = answers
    assert summary_copy == summary_python
    assert summary_copy[:4] == (12, 5, 0, 7)
    if dry_run:
        assert rejections_copy == rejections_python
        assert cards_copy == cards_python == []
    else:
        assert [(n, reason.replace("62221", "62220")) for n, reason, _ in rejections_python] == \
            [(n, reason) for n, reason, _ in rejections_copy]
        renamed = [(no.replace("62221", "62220"), *rest) for no, *rest in cards_python if no.startswith("62221")]
        assert renamed == [tuple(card) for card in cards_copy]
        assert len(renamed) == 5


@pytest.mark.postgres
def test_a_file_postgres_cannot_parse_is_read_row_by_row(products, tmp_path, monkeypatch):
    # given a ragged file: a row with a cell too many and one with a cell too few
    path = tmp_path / "ragged.csv"
    path.write_text(",".join(EN) + "\n6222000000000011,STORED,5,active,,,,,extra\n6222000000000029,STORED,6,active\n",
                    encoding="utf-8")

    report, rejections = import_file(path, copy=True, monkeypatch=monkeypatch, skip_invalid=True)

    assert (report.created, report.rejected) == (2, 0)
    assert set(Card.objects.values_list("balance", flat=True)) == {Decimal("5.00"), Decimal("6.00")}


@pytest.mark.postgres
def test_a_first_import_rebuilds_every_index_and_restores_the_trigger_setting(products, good_rows, tmp_path):
    before = card_indexes()
    path = write_csv(tmp_path / "dept.csv", EN, good_rows)

    run(path)

    assert card_indexes() == before
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"
    # A card written afterwards by the services still gets its ledger and foreign keys checked.
    assert Card.objects.count() == 7


@pytest.mark.postgres
def test_an_import_next_to_existing_cards_keeps_their_indexes_in_place(products, card_factory, good_rows, tmp_path):
    card_factory(products[0], card_no="6299000000000001", balance="20.00")
    before = card_indexes(with_oid=True)

    run(write_csv(tmp_path / "dept.csv", EN, good_rows))

    assert card_indexes(with_oid=True) == before
    assert Card.objects.count() == 8


def card_indexes(*, with_oid=False):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = ANY('{cards_card,cards_cardledgerentry}'::regclass[]) ORDER BY 2"
        )
        return [(oid, definition) if with_oid else definition for oid, definition in cursor.fetchall()]


@pytest.mark.postgres
def test_a_store_deleted_while_the_file_is_imported_stops_the_import(products, tmp_path, monkeypatch):
    # given a store the file names, deleted by someone else after the rows were checked
    from stores.models import Store

    dept001 = Store.objects.get(code="DEPT001")
    shop = Store.objects.create(code="POPUP01", name="快闪店", format=dept001.format, region=dept001.region)
    count = legacy._CopyImport._count

    def count_then_delete(self, cursor):
        count(self, cursor)
        Store.objects.filter(pk=shop.pk).delete()

    monkeypatch.setattr(legacy._CopyImport, "_count", count_then_delete)
    path = write_csv(tmp_path / "dept.csv", EN, [["6222000000000011", "STORED", "5", "active", "", "", "", "POPUP01"]])

    with pytest.raises(CommandError, match="was deleted while it was imported"):
        run(path)
    assert counts() == (0, 0)


@pytest.mark.postgres
def test_without_the_right_to_skip_triggers_the_foreign_keys_check_every_row(products, good_rows, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(legacy._CopyImport, "_foreign_key_checks_off", lambda self, cursor: None)

    output = run(write_csv(tmp_path / "dept.csv", EN, good_rows))

    assert "created 7 cards" in output
    assert CardLedgerEntry.objects.filter(kind="migration").count() == 4
