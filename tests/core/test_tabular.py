"""Reading CSV and XLSX files: what a broken file gets instead of a crash."""

import pytest

from core.errors import TableInvalid
from core.tabular import Column, TableReader

COLUMNS = [Column("sku", "商品编码", required=True)]


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04 truncated zip"])
def test_a_broken_xlsx_is_refused_with_its_name(tmp_path, content):
    path = tmp_path / "skus.xlsx"
    path.write_bytes(content)

    with pytest.raises(TableInvalid) as error, TableReader(path, COLUMNS):
        pass

    assert "skus.xlsx" in str(error.value)


def test_a_gbk_csv_with_chinese_headers_is_read(tmp_path):
    path = tmp_path / "skus.csv"
    path.write_bytes("商品编码\n6900000000001\n".encode("gbk"))

    with TableReader(path, COLUMNS) as reader:
        rows = list(reader)

    assert reader.encoding.lower() in ("gbk", "gb18030")
    assert [row.values["sku"] for row in rows] == ["6900000000001"]
