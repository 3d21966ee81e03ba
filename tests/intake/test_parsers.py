"""Real files as distributors send them: GBK CSV from Excel, XLSX with title rows, JSON shapes."""

from __future__ import annotations

import io
import json
from datetime import datetime

import openpyxl
import pytest

from shortage_watch.intake import encodings

from shortage_watch.intake.encodings import UnusableFile
from shortage_watch.intake.parsers import parse_payload
from tests.intake.conftest import STOPPAGE_HEADER_ZH, notice_row


def excel_gbk_csv(rows: list[list[str]], title: str | None = None) -> bytes:
    """What Excel (zh-CN) writes for "CSV (逗号分隔)": GBK, CRLF, no BOM."""
    lines = ([title + ",,,,,,,,,,,"] if title else []) + [STOPPAGE_HEADER_ZH] + [",".join(r) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode("gbk")


def test_gbk_csv_exported_by_excel_with_a_title_row() -> None:
    content = excel_gbk_csv([notice_row(1), notice_row(2, kind="断供")], title="停产断供通知登记表")
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")  # really GBK, not UTF-8 in disguise
    parsed = parse_payload(content, name="通知.csv", kind="auto")
    assert [(r.row, r.kind) for r in parsed.rows] == [(3, "stoppage_notice"), (4, "stoppage_notice")]
    assert parsed.rows[0].values["manufacturer"] == "某某制药股份有限公司"
    assert parsed.rows[1].values["kind"] == "断供"


def test_utf8_with_bom_and_english_headers_in_any_case() -> None:
    content = "\ufeffNotice_ID,MANUFACTURER,product_code,product_name,kind,distributor_code,notified_on\r\n" \
              "N1,某药,P1,药,stoppage,D1,2024-09-27\r\n"
    parsed = parse_payload(content.encode("utf-8"), name="a.csv", kind="stoppage_notice")
    assert parsed.rows[0].values["notice_id"] == "N1"
    assert parsed.rows[0].values["manufacturer"] == "某药"


def test_bytes_that_are_no_supported_encoding_reject_the_whole_file() -> None:
    content = STOPPAGE_HEADER_ZH.encode("utf-8") + b"\r\nN1,\xff\xfe\x80\x80,P\r\n"
    with pytest.raises(UnusableFile) as caught:
        parse_payload(content, name="a.csv", kind="auto")
    assert "UTF-8" in caught.value.reason and "GB18030" in caught.value.reason


def test_a_table_without_a_header_row_is_unusable() -> None:
    with pytest.raises(UnusableFile) as caught:
        parse_payload("a,b,c\n1,2,3\n".encode(), name="a.csv", kind="auto")
    assert "表头" in caught.value.reason


def test_record_kind_column_mixes_kinds_and_rejects_unknown_ones() -> None:
    content = ("record_kind,notice_id,manufacturer,product_code,product_name,kind,distributor_code,notified_on,"
               "report_id,hospital_code,reported_on,supply_status\n"
               "stoppage_notice,N1,M,P,药,停产,D1,2024-09-27,,,,\n"
               "shortage_report,,,P,药,,,,S1,H1,2024-10-08,短缺\n"
               "paper_letter,,,,,,,,,,,\n")
    parsed = parse_payload(content.encode(), name="mixed.csv", kind="auto")
    assert [(r.row, r.kind) for r in parsed.rows] == [(2, "stoppage_notice"), (3, "shortage_report")]
    assert [(e.row, e.field) for e in parsed.errors] == [(4, "record_kind")]


def xlsx_with_title_rows() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["宁德国药医药配送有限公司 停产断供通知登记表"])
    sheet.merge_cells("A1:L1")
    sheet.append(["填报日期：2024年10月8日"])
    sheet.merge_cells("A2:L2")
    sheet.append(STOPPAGE_HEADER_ZH.split(","))
    row = notice_row(1)
    row[8] = datetime(2024, 9, 27)  # a real Excel date cell
    row[2] = 86900012345  # a product code typed as a number
    sheet.append(row)
    sheet.cell(4, 9).number_format = "yyyy/m/d"
    sheet.append([None] * 12)  # a blank row is not an error
    sheet.append(notice_row(2, notified_on="2024年9月30日"))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_with_merged_title_rows_and_date_cells() -> None:
    parsed = parse_payload(xlsx_with_title_rows(), name="通知.xlsx", kind="auto")
    assert [(r.row, r.kind) for r in parsed.rows] == [(4, "stoppage_notice"), (6, "stoppage_notice")]
    first = parsed.rows[0].values
    assert first["notified_on"] == datetime(2024, 9, 27)
    assert first["product_code"] == 86900012345


@pytest.mark.parametrize("shape", ["object", "list", "records"])
def test_json_in_all_three_shapes(shape: str) -> None:
    record = {"record_kind": "stoppage_notice", "notice_id": "N1", "manufacturer": "M", "product_code": "P",
              "product_name": "药", "kind": "stoppage", "distributor_code": "D1", "notified_on": "2024-09-27"}
    data = {"object": record, "list": [record, record], "records": {"records": [record]}}[shape]
    parsed = parse_payload(json.dumps(data, ensure_ascii=False).encode(), name="x.json", kind="auto")
    assert parsed.rows and all(r.kind == "stoppage_notice" for r in parsed.rows)
    assert [r.row for r in parsed.rows] == list(range(len(parsed.rows)))


def test_json_records_that_are_not_objects_or_mismatch_the_source_kind_are_row_errors() -> None:
    data = {"records": [3, {"record_kind": "shortage_report", "report_id": "S"}], "next_cursor": "c9", "has_more": True}
    parsed = parse_payload(json.dumps(data).encode(), name="feed", kind="stoppage_notice")
    assert [(e.row, e.field) for e in parsed.errors] == [(0, None), (1, "record_kind")]
    assert (parsed.next_cursor, parsed.has_more) == ("c9", True)


def test_field_map_renames_foreign_columns() -> None:
    data = [{"noticeNo": "N1", "maker": "M", "drug_code": "P", "drug_name": "药", "type": "stoppage",
             "distributor_code": "D1", "date": "2024-09-27"}]
    field_map = {"noticeNo": "notice_id", "maker": "manufacturer", "drug_code": "product_code",
                 "drug_name": "product_name", "type": "kind", "date": "notified_on"}
    parsed = parse_payload(json.dumps(data).encode(), name="feed.json", kind="stoppage_notice", field_map=field_map)
    assert parsed.rows[0].values == {"notice_id": "N1", "manufacturer": "M", "product_code": "P",
                                     "product_name": "药", "kind": "stoppage", "distributor_code": "D1",
                                     "notified_on": "2024-09-27"}


@pytest.mark.parametrize("text", [
    "a,b\r\nc,d\r\n", "a,b\nc,d", "a\rb\r\nc\n\nd", "\n\r\n\r", "只有一行", "",
    '"多行\r\n单元格",x\r\ny,"z\rw"\n', "a\r\r\nb\n\r",
])
@pytest.mark.parametrize("codec", ["utf-8", "utf-8-sig", "gb18030", "utf-16"])
@pytest.mark.parametrize("piece", [1, 2, 3, 5, 1 << 20])
def test_csv_lines_are_split_as_stringio_splits_them(text: str, codec: str, piece: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Decoded a few bytes at a time: a character, or a \r\n, split between two pieces is read whole.
    monkeypatch.setattr(encodings, "DECODE_PIECE", piece)
    assert list(encodings.decoded_lines(text.encode(codec), codec)) == list(io.StringIO(text, newline=""))


def test_reading_a_large_csv_holds_its_bytes_but_never_their_whole_text(monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    monkeypatch.setattr(encodings, "DECODE_PIECE", 64 * 1024)  # so the pieces are small beside this text
    content = excel_gbk_csv([notice_row(i) for i in range(40_000)])
    text_size = len(content.decode("gbk").encode("utf-16-le"))  # the decoded text: two bytes a character here
    tracemalloc.start()
    try:
        parsed = parse_payload(content, name="通知.csv", kind="auto", lazy=True)
        rows = iter(parsed.rows)
        first, second = next(rows), next(rows)
        for third in rows:  # and on to the last row
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (first.row, second.values["notice_id"], third.values["notice_id"]) == (2, "TZ-00001", "TZ-39999")
    # Decoded a piece at a time, the text costs a few times a piece (the codecs' buffers). Decoded whole, it
    # peaked at 2.15 times its size, 3.0 times with a copy in a StringIO (four bytes a character), and
    # stripping the bytes to see whether the file was empty copied them too.
    assert peak < 0.1 * text_size, (peak, text_size)
