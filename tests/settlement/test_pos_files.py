"""POS daily files: layouts, reading (CSV in UTF-8 or GBK, Excel), every kind of bad input refused as a whole,
the same file twice, COPY on PostgreSQL and two uploads of the same file at once."""

import io
import threading
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from settlement.errors import PeriodLocked, ReconFileDuplicate, ReconFileInvalid, SettlementInvalid
from settlement.models import PosFile, PosFileLayout, PosLine, ReconDay, SettlementPeriod
from settlement.services.reconciliation import pos_file_import, pos_layout_clean
from stores.models import Format, Store
from tests.settlement.conftest import card_pay, card_sold

COLUMNS = {"store_code": "门店", "occurred_at": "交易时间", "receipt_no": "小票号", "card_no": "卡号",
           "member_no": "会员号", "amount": "金额"}
HEADER = ["门店", "交易时间", "小票号", "卡号", "会员号", "金额"]


@pytest.fixture(autouse=True)
def media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def day():
    return timezone.localdate() - timedelta(days=2)


@pytest.fixture
def dept_layout(reference_stores):
    return PosFileLayout.objects.create(code="DEPT_POS", name="百货POS日结", pos_system_code="POS-DEPT",
                                        columns=dict(COLUMNS))


@pytest.fixture
def dept_format(reference_stores):
    return Format.objects.get(code="DEPT")


def csv_upload(rows, *, header=HEADER, name="pos.csv", encoding="utf-8", delimiter=","):
    text = "\n".join(delimiter.join(str(cell) for cell in row) for row in [header, *rows]) + "\n"
    return SimpleUploadedFile(name, text.encode(encoding), content_type="text/csv")


def line(day, *, store="DEPT001", hour=12, receipt="R1", card="", member="", amount="100.00", minute=0):
    return [store, f"{day:%Y-%m-%d} {hour:02d}:{minute:02d}:00", receipt, card, member, amount]


def media_files(root) -> list:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


# --- layouts -------------------------------------------------------------------------------------------------------


def test_layout_clean_gives_the_columns_in_field_order():
    cleaned = pos_layout_clean(columns={"amount": " 金额 ", "receipt_no": "小票号", "store_code": "门店",
                                        "occurred_at": "交易时间", "card_no": ""},
                               file_type="csv", encoding="auto", datetime_format="%Y/%m/%d %H:%M")

    assert cleaned == {"store_code": "门店", "occurred_at": "交易时间", "receipt_no": "小票号", "amount": "金额"}


def test_layout_without_a_required_field_is_refused_naming_it():
    with pytest.raises(SettlementInvalid) as error:
        pos_layout_clean(columns={"store_code": "门店", "occurred_at": "交易时间", "receipt_no": "小票号"},
                         file_type="csv", encoding="auto", datetime_format="%Y-%m-%d %H:%M:%S")

    assert "amount" in " ".join(error.value.fields["columns"])


def test_layout_with_a_header_used_twice_is_refused():
    with pytest.raises(SettlementInvalid) as error:
        pos_layout_clean(columns={**COLUMNS, "member_no": "卡号"}, file_type="csv", encoding="auto",
                         datetime_format="%Y-%m-%d %H:%M:%S")

    assert "卡号" in " ".join(error.value.fields["columns"])


def test_layout_with_an_unknown_field_or_bad_choices_is_refused():
    with pytest.raises(SettlementInvalid) as error:
        pos_layout_clean(columns={**COLUMNS, "cashier": "收银员"}, file_type="pdf", encoding="latin-1",
                         datetime_format="%Y-%m-%d %H:%M:%S")

    assert "cashier" in " ".join(error.value.fields["columns"])
    assert set(error.value.fields) == {"columns", "file_type", "encoding"}


@pytest.mark.parametrize("datetime_format", ["", "%Y-%m-%d", "%H:%M:%S", "日期"])
def test_layout_with_a_time_format_that_loses_the_date_or_time_is_refused(datetime_format):
    with pytest.raises(SettlementInvalid) as error:
        pos_layout_clean(columns=COLUMNS, file_type="csv", encoding="auto", datetime_format=datetime_format)

    assert "datetime_format" in error.value.fields


# --- good files ----------------------------------------------------------------------------------------------------


def test_a_good_file_is_kept_with_its_lines_and_the_day_matched(dept_layout, dept001, card_product, hq_admin, day,
                                                                 media_in_tmp):
    card = card_sold(store=dept001, day=day, product=card_product)
    card_pay(card, store=dept001, amount="120.50", day=day, receipt_no="R100")

    pos_file = pos_file_import(layout=dept_layout, uploaded=csv_upload([
        line(day, receipt="R100", card=card.card_no, amount="120.50"),
    ]), business_date=day, user=hq_admin, store=dept001)

    pos_file.refresh_from_db()
    assert pos_file.status == PosFile.Status.MATCHED
    assert pos_file.lines == 1 and pos_file.format_id == dept001.format_id
    assert pos_file.file.name and pos_file.file.read().decode().startswith("门店")
    saved = PosLine.objects.get(pos_file=pos_file)
    assert (saved.line_no, saved.store_id, saved.receipt_no, saved.card_no, saved.amount) == (
        2, dept001.pk, "R100", card.card_no, Decimal("120.50"))
    assert timezone.localtime(saved.occurred_at).replace(tzinfo=None) == datetime(day.year, day.month, day.day, 12)
    recon_day = ReconDay.objects.get(store=dept001, business_date=day)
    assert recon_day.status == ReconDay.Status.RECONCILED and recon_day.matched == 1


def test_a_gbk_file_is_read(dept_layout, dept001, hq_admin, day):
    upload = csv_upload([line(day, receipt="小票001", amount="88.00")], encoding="gbk")

    pos_file = pos_file_import(layout=dept_layout, uploaded=upload, business_date=day, user=hq_admin, store=dept001)

    assert PosLine.objects.get(pos_file=pos_file).receipt_no == "小票001"


def test_a_layout_saying_gbk_reads_gbk(dept_layout, dept001, hq_admin, day):
    dept_layout.encoding = PosFileLayout.Encoding.GBK
    dept_layout.save()

    pos_file = pos_file_import(layout=dept_layout, uploaded=csv_upload([line(day, receipt="退货单1")],
                                                                        encoding="gbk"),
                               business_date=day, user=hq_admin, store=dept001)

    assert PosLine.objects.get(pos_file=pos_file).receipt_no == "退货单1"


def test_delimiter_and_time_format_of_the_layout_are_used(dept_layout, dept001, hq_admin, day):
    dept_layout.delimiter = ";"
    dept_layout.datetime_format = "%Y/%m/%d %H:%M"
    dept_layout.save()
    upload = csv_upload([["DEPT001", f"{day:%Y/%m/%d} 09:30", "R7", "", "", "1,234.50"]], delimiter=";")

    pos_file = pos_file_import(layout=dept_layout, uploaded=upload, business_date=day, user=hq_admin, store=dept001)

    saved = PosLine.objects.get(pos_file=pos_file)
    assert saved.amount == Decimal("1234.50")
    assert timezone.localtime(saved.occurred_at).hour == 9 and timezone.localtime(saved.occurred_at).minute == 30


def test_a_refund_line_with_a_negative_amount_is_not_a_formula(dept_layout, dept001, hq_admin, day):
    pos_file = pos_file_import(layout=dept_layout, uploaded=csv_upload([line(day, amount="-50.00")]),
                               business_date=day, user=hq_admin, store=dept001)

    assert PosLine.objects.get(pos_file=pos_file).amount == Decimal("-50.00")


def test_spaces_around_cells_and_refund_lines_are_read_alike(dept_layout, dept001, hq_admin, day):
    rows = [[" DEPT001 ", f"{day:%Y-%m-%d} 10:00:00", "\u3000R1\t", " ", "", " -12.50"],
            ["dept001", f"{day:%Y-%m-%d} 11:00:00", "R2", "", "M1 ", "+8.00"]]

    pos_file = pos_file_import(layout=dept_layout, uploaded=csv_upload(rows), business_date=day, user=hq_admin,
                               store=dept001)

    saved = {line.line_no: line for line in PosLine.objects.filter(pos_file=pos_file)}
    assert (saved[2].store_id, saved[2].receipt_no, saved[2].card_no, saved[2].amount) == (
        dept001.pk, "R1", "", Decimal("-12.50"))
    assert (saved[3].receipt_no, saved[3].member_no, saved[3].amount) == ("R2", "M1", Decimal("8.00"))


def test_a_file_with_ragged_lines_is_read(dept_layout, dept001, hq_admin, day):
    rows = [line(day, receipt="R1"), [*line(day, receipt="R2"), "extra"]]

    pos_file = pos_file_import(layout=dept_layout, uploaded=csv_upload(rows), business_date=day, user=hq_admin,
                               store=dept001)

    assert sorted(PosLine.objects.filter(pos_file=pos_file).values_list("receipt_no", flat=True)) == ["R1", "R2"]


@pytest.mark.parametrize("text", ["{day:%Y-%m-%d} 12:00+08", "{day:%Y-%m}-31 12:00:00x", "{day:%Y}-02-30 12:00:00"])
def test_times_the_format_does_not_give_are_refused(dept_layout, dept001, hq_admin, day, text):
    row = line(day)
    row[1] = text.format(day=day)

    with pytest.raises(ReconFileInvalid) as error:
        pos_file_import(layout=dept_layout, uploaded=csv_upload([row]), business_date=day, user=hq_admin,
                        store=dept001)

    assert "line 2" in str(error.value)


def test_an_excel_file_is_read(dept_layout, dept001, hq_admin, day):
    from openpyxl import Workbook

    dept_layout.file_type = PosFileLayout.FileType.XLSX
    dept_layout.save()
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER)
    sheet.append(["DEPT001", datetime(day.year, day.month, day.day, 15, 45), "X1", "", "M001", 66.5])
    buffer = io.BytesIO()
    workbook.save(buffer)

    pos_file = pos_file_import(layout=dept_layout, uploaded=SimpleUploadedFile("pos.xlsx", buffer.getvalue()),
                               business_date=day, user=hq_admin, store=dept001)

    saved = PosLine.objects.get(pos_file=pos_file)
    assert (saved.receipt_no, saved.member_no, saved.amount) == ("X1", "M001", Decimal("66.50"))
    assert timezone.localtime(saved.occurred_at).hour == 15


def test_a_format_file_covers_the_stores_of_the_format(dept_layout, dept_format, dept001, dept002, hq_admin, day):
    pos_file = pos_file_import(layout=dept_layout, uploaded=csv_upload([
        line(day, store="DEPT001", receipt="A1"), line(day, store="DEPT002", receipt="B1"),
    ]), business_date=day, user=hq_admin, format=dept_format)

    assert pos_file.store is None
    assert set(ReconDay.objects.filter(business_date=day).values_list("store__code", flat=True)) == {
        "DEPT001", "DEPT002"}


# --- bad files: nothing is kept ------------------------------------------------------------------------------------


def assert_nothing_kept(media_root):
    assert not PosFile.objects.exists()
    assert not PosLine.objects.exists()
    assert not ReconDay.objects.exists()
    assert media_files(media_root) == []


def test_a_file_of_another_layout_names_the_missing_headers_and_the_ones_found(dept_layout, dept001, hq_admin, day,
                                                                               media_in_tmp):
    upload = csv_upload([["DEPT001", "2026-01-01 10:00:00", "R1", "12.00"]], header=["店号", "时间", "单号", "金额"])

    with pytest.raises(ReconFileInvalid) as error:
        pos_file_import(layout=dept_layout, uploaded=upload, business_date=day, user=hq_admin, store=dept001)

    message = str(error.value)
    assert "交易时间" in message and "小票号" in message  # missing
    assert "店号" in message and "单号" in message  # found
    assert_nothing_kept(media_in_tmp)


def test_repeated_lines_are_refused_naming_both(dept_layout, dept001, hq_admin, day, media_in_tmp):
    upload = csv_upload([line(day, receipt="R1"), line(day, receipt="R2"), line(day, receipt="R1")])

    with pytest.raises(ReconFileInvalid) as error:
        pos_file_import(layout=dept_layout, uploaded=upload, business_date=day, user=hq_admin, store=dept001)

    assert "line 4: the line repeats line 2" in str(error.value)
    assert_nothing_kept(media_in_tmp)


def test_an_unknown_store_is_refused_naming_the_line(dept_layout, dept001, hq_admin, day, media_in_tmp):
    upload = csv_upload([line(day, receipt="R1"), line(day, store="NOPE999", receipt="R2")])

    with pytest.raises(ReconFileInvalid) as error:
        pos_file_import(layout=dept_layout, uploaded=upload, business_date=day, user=hq_admin, store=dept001)

    assert "line 3: store NOPE999 is unknown" in str(error.value)
    assert error.value.fields["file"][1].startswith("line 3")
    assert_nothing_kept(media_in_tmp)


def test_a_store_other_than_the_uploads_is_refused(dept_layout, dept_format, dept001, hq_admin, day, media_in_tmp):
    other_format = csv_upload([line(day, store="SUPER001")], name="a.csv")
    other_store = csv_upload([line(day, store="DEPT002")], name="b.csv")

    with pytest.raises(ReconFileInvalid) as by_format:
        pos_file_import(layout=dept_layout, uploaded=other_format, business_date=day, user=hq_admin,
                        format=dept_format)
    with pytest.raises(ReconFileInvalid) as by_store:
        pos_file_import(layout=dept_layout, uploaded=other_store, business_date=day, user=hq_admin, store=dept001)

    assert "SUPER001 is not a store of format" in str(by_format.value)
    assert "DEPT002 is not the store of this upload (DEPT001)" in str(by_store.value)
    assert_nothing_kept(media_in_tmp)


def test_a_formula_cell_is_refused(dept_layout, dept001, hq_admin, day, media_in_tmp):
    upload = csv_upload([line(day, receipt="=HYPERLINK(\"http://x\")")])

    with pytest.raises(ReconFileInvalid) as error:
        pos_file_import(layout=dept_layout, uploaded=upload, business_date=day, user=hq_admin, store=dept001)

    assert "line 2" in str(error.value) and "formula" in str(error.value)
    assert_nothing_kept(media_in_tmp)


@pytest.mark.parametrize(("cells", "expected"), [
    ({"amount": "12.345"}, "not an amount"),
    ({"amount": "abc"}, "not an amount"),
    ({"amount": "0.00"}, "zero"),
    ({"hour": 25}, "not in the format"),
    ({"receipt": ""}, "receipt number is empty"),
    ({"card": "12AB"}, "not 6 to 32 digits"),
])
def test_bad_values_are_refused_naming_the_line(dept_layout, dept001, hq_admin, day, cells, expected):
    row = line(day, **{key: value for key, value in cells.items() if key != "hour"})
    if "hour" in cells:
        row[1] = f"{day:%Y-%m-%d} {cells['hour']}:00:00"

    with pytest.raises(ReconFileInvalid) as error:
        pos_file_import(layout=dept_layout, uploaded=csv_upload([row]), business_date=day, user=hq_admin,
                        store=dept001)

    assert "line 2" in str(error.value) and expected in str(error.value)


def test_a_time_outside_the_day_and_its_window_is_refused(dept_layout, dept001, hq_admin, day):
    dept_layout.time_window_minutes = 30
    dept_layout.save()
    inside = [*line(day)[:1], f"{day - timedelta(days=1):%Y-%m-%d} 23:45:00", "R1", "", "", "5.00"]
    outside = [*line(day)[:1], f"{day - timedelta(days=1):%Y-%m-%d} 23:15:00", "R2", "", "", "5.00"]

    with pytest.raises(ReconFileInvalid) as error:
        pos_file_import(layout=dept_layout, uploaded=csv_upload([inside, outside]), business_date=day,
                        user=hq_admin, store=dept001)

    assert "line 3" in str(error.value) and "not on the business date" in str(error.value)
    assert "line 2" not in str(error.value)


def test_only_twenty_bad_lines_are_named(dept_layout, dept001, hq_admin, day):
    rows = [line(day, receipt=f"R{n}", amount="x") for n in range(25)]

    with pytest.raises(ReconFileInvalid) as error:
        pos_file_import(layout=dept_layout, uploaded=csv_upload(rows), business_date=day, user=hq_admin,
                        store=dept001)

    assert "25 lines have problems" in str(error.value)
    assert "line 21:" in str(error.value) and "line 22:" not in str(error.value)
    assert error.value.fields["file"][-1] == "and 5 more lines"


@pytest.mark.parametrize("content", [b"", "\ufeff门店,交易时间,小票号,卡号,会员号,金额\n".encode()])
def test_an_empty_file_is_refused(dept_layout, dept001, hq_admin, day, media_in_tmp, content):
    with pytest.raises(ReconFileInvalid) as error:
        pos_file_import(layout=dept_layout, uploaded=SimpleUploadedFile("empty.csv", content), business_date=day,
                        user=hq_admin, store=dept001)

    assert "empty.csv" in str(error.value)
    assert_nothing_kept(media_in_tmp)


def test_an_excel_file_for_a_csv_layout_is_refused(dept_layout, dept001, hq_admin, day):
    with pytest.raises(ReconFileInvalid) as error:
        pos_file_import(layout=dept_layout, uploaded=SimpleUploadedFile("pos.xlsx", b"PK\x03\x04rest"),
                        business_date=day, user=hq_admin, store=dept001)

    assert "Excel" in str(error.value)


def test_the_same_file_twice_is_recognised_and_imports_nothing(dept_layout, dept001, hq_admin, day):
    rows = [line(day, receipt="R1"), line(day, receipt="R2")]
    first = pos_file_import(layout=dept_layout, uploaded=csv_upload(rows), business_date=day, user=hq_admin,
                            store=dept001)

    with pytest.raises(ReconFileDuplicate) as error:
        pos_file_import(layout=dept_layout, uploaded=csv_upload(rows, name="again.csv"), business_date=day,
                        user=hq_admin, store=dept001)

    assert f"#{first.pk}" in str(error.value)
    assert PosFile.objects.count() == 1 and PosLine.objects.count() == 2


def test_store_or_format_is_required_and_must_agree(dept_layout, dept001, hq_admin, day):
    with pytest.raises(SettlementInvalid) as neither:
        pos_file_import(layout=dept_layout, uploaded=csv_upload([line(day)]), business_date=day, user=hq_admin)
    with pytest.raises(SettlementInvalid) as both:
        pos_file_import(layout=dept_layout, uploaded=csv_upload([line(day)]), business_date=day, user=hq_admin,
                        store=dept001, format=Format.objects.get(code="SUPER"))

    assert "store" in neither.value.fields and "format" in both.value.fields


def test_a_layout_of_another_pos_system_is_refused(dept_layout, super001, hq_admin, day):
    with pytest.raises(SettlementInvalid) as error:
        pos_file_import(layout=dept_layout, uploaded=csv_upload([line(day, store="SUPER001")]), business_date=day,
                        user=hq_admin, store=super001)

    assert "POS-DEPT" in str(error.value.fields["layout"])


def test_a_day_of_a_locked_period_takes_no_file(dept_layout, dept001, hq_admin, day):
    SettlementPeriod.objects.create(code=f"{day:%Y-%m}", starts_on=day.replace(day=1), ends_on=day,
                                    status=SettlementPeriod.Status.LOCKED, locked_at=timezone.now())

    with pytest.raises(PeriodLocked) as error:
        pos_file_import(layout=dept_layout, uploaded=csv_upload([line(day)]), business_date=day, user=hq_admin,
                        store=dept001)

    assert f"{day:%Y-%m}" in str(error.value)
    assert not PosFile.objects.exists()


# --- PostgreSQL ----------------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_lines_are_copied_in_on_postgresql(dept_layout, dept001, hq_admin, day):
    rows = [line(day, receipt=f"R{n}", card=f"{900000000 + n}", amount=f"{n + 1}.25") for n in range(3000)]

    pos_file = pos_file_import(layout=dept_layout, uploaded=csv_upload(rows), business_date=day, user=hq_admin,
                               store=dept001)

    assert connection.vendor == "postgresql"
    assert PosLine.objects.filter(pos_file=pos_file).count() == 3000
    assert PosLine.objects.get(pos_file=pos_file, line_no=3001).amount == Decimal("3000.25")
    recon_day = ReconDay.objects.get(store=dept001, business_date=day)
    assert recon_day.pos_lines == 3000 and recon_day.exceptions == 3000  # no card payments recorded


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_uploads_of_the_same_file_at_once_import_it_once(reference_stores, day):
    from django.db import connections

    layout = PosFileLayout.objects.create(code="DEPT_POS", name="百货POS日结", pos_system_code="POS-DEPT",
                                          columns=dict(COLUMNS))
    store = Store.objects.get(code="DEPT001")
    content = csv_upload([line(day, receipt=f"R{n}") for n in range(2000)]).read()
    barrier = threading.Barrier(2)
    outcomes = []

    def upload():
        try:
            barrier.wait()
            pos_file_import(layout=layout, uploaded=SimpleUploadedFile("pos.csv", content), business_date=day,
                            user=None, store=store)
            outcomes.append("imported")
        except ReconFileDuplicate:
            outcomes.append("duplicate")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["duplicate", "imported"]
    assert PosFile.objects.count() == 1 and PosLine.objects.count() == 2000
