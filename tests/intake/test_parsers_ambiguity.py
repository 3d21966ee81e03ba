"""The parsers on ambiguous files: title rows that look like data, ambiguous keys and
columns, quotes that never close, empty lists. Every row is accepted or reported, and
a file that cannot be read says why in one line."""

from __future__ import annotations

import json
from typing import Iterator

import pytest
from sqlalchemy import func, select

from shortage_watch.intake.encodings import UnusableFile
from shortage_watch.intake.parsers import parse_payload
from shortage_watch.services.ingest import ingest_payload
from shortage_watch.store.tables import StoppageNotice
from tests.intake.conftest import NOW, STOPPAGE_HEADER_ZH, app, make_app, notice_row  # noqa: F401 (fixtures)

NOTICE = {"notice_id": "N1", "manufacturer": "某药厂", "product_code": "P1", "product_name": "阿莫西林胶囊",
          "kind": "stoppage", "distributor_code": "D350901", "notified_on": "2024-09-27"}


@pytest.fixture(autouse=True)
def no_traceback(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Unusable input is news for the log in one line, never a traceback."""
    yield
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def rows(*numbers: int) -> list[str]:
    return [",".join(notice_row(i)) for i in numbers]


def test_a_title_row_with_semicolons_does_not_hide_a_comma_header() -> None:
    content = "\r\n".join(["2024年第三季度；宁德市;停产断供通知;汇总", STOPPAGE_HEADER_ZH, *rows(1, 2)]).encode()
    parsed = parse_payload(content, name="t.csv", kind="auto")
    assert [(r.row, r.values["notice_id"]) for r in parsed.rows] == [(3, "TZ-00001"), (4, "TZ-00002")]


def test_a_semicolon_file_under_a_comma_title_is_read_with_semicolons() -> None:
    header = STOPPAGE_HEADER_ZH.replace(",", ";")
    content = "\r\n".join(["宁德市, 2024", header, ";".join(notice_row(1))]).encode()
    parsed = parse_payload(content, name="t.csv", kind="auto")
    assert parsed.rows[0].values["manufacturer"] == "某某制药股份有限公司"


def test_an_unbalanced_quote_in_row_3_loses_none_of_rows_4_to_6(app) -> None:  # type: ignore[no-untyped-def]
    bad = notice_row(3)
    bad[1] = '"某某制药 (the quote never closes'
    content = "\r\n".join([STOPPAGE_HEADER_ZH, *rows(2), ",".join(bad), *rows(4, 5, 6)]).encode() + b"\r\n"
    result = ingest_payload(app.ingest_deps(), source="inbox", name="q.csv", content=content, kind="auto", now=NOW)
    assert (result.accepted, result.rejected, result.status) == (4, 1, "partial")
    [error] = result.errors
    assert error["row"] == 3 and "unbalanced quote" in error["reason"] and "引号不配对" in error["reason"]
    with app.sessions() as session:
        stored = set(session.scalars(select(StoppageNotice.notice_id)))
    assert stored == {"TZ-00002", "TZ-00004", "TZ-00005", "TZ-00006"}


def test_two_unbalanced_quotes_are_two_row_errors() -> None:
    first, second = notice_row(3), notice_row(5)
    first[1], second[3] = '"open', '"open again'
    content = "\n".join([STOPPAGE_HEADER_ZH, *rows(2), ",".join(first), *rows(4), ",".join(second), *rows(6)])
    parsed = parse_payload(content.encode(), name="q.csv", kind="auto")
    assert [r.row for r in parsed.rows] == [2, 4, 6]
    assert [(e.row, "unbalanced" in e.reason) for e in parsed.errors] == [(3, True), (5, True)]


def test_a_quoted_cell_over_several_lines_is_still_one_cell() -> None:
    row = notice_row(2)
    row[10] = '"原料药\r\n供应不足"'
    parsed = parse_payload("\r\n".join([STOPPAGE_HEADER_ZH, ",".join(row), *rows(3)]).encode(), name="m.csv",
                           kind="auto")
    assert [r.row for r in parsed.rows] == [2, 3] and parsed.errors == []
    assert parsed.rows[0].values["reason"] == "原料药\r\n供应不足"


def test_duplicate_json_keys_are_rejected_as_ambiguous(app) -> None:  # type: ignore[no-untyped-def]
    text = json.dumps([NOTICE, {**NOTICE, "notice_id": "N2"}], ensure_ascii=False)
    text = text.replace('"notice_id": "N2"', '"notice_id": "N2", "notice_id": "N3"')
    result = ingest_payload(app.ingest_deps(), source="api", name="d.json", content=text.encode(), kind="stoppage_notice", now=NOW)
    assert (result.accepted, result.rejected) == (1, 1)
    [error] = result.errors
    assert error["row"] == 1 and error["field"] == "notice_id" and "duplicate key" in error["reason"]


def test_json_keys_in_english_and_chinese_for_one_field_are_ambiguous() -> None:
    record = {**NOTICE, "通知编号": "N9"}
    parsed = parse_payload(json.dumps([record, NOTICE]).encode(), name="x.json", kind="auto")
    assert [r.row for r in parsed.rows] == [1]
    [error] = parsed.errors
    assert error.row == 0 and "notice_id" in error.reason and "通知编号" in error.reason and "ambiguous" in error.reason


def test_two_columns_for_one_field_refuse_the_file_naming_both() -> None:
    content = f"{STOPPAGE_HEADER_ZH},notice_id\r\n{','.join(notice_row(1))},OTHER\r\n".encode()
    with pytest.raises(UnusableFile) as refused:
        parse_payload(content, name="c.csv", kind="auto")
    assert "通知编号" in refused.value.reason and "notice_id" in refused.value.reason
    assert "ambiguous" in refused.value.reason


def test_the_same_column_twice_is_ambiguous_too() -> None:
    content = f"{STOPPAGE_HEADER_ZH},药品编码\r\n{','.join(notice_row(1))},XJ1\r\n".encode()
    with pytest.raises(UnusableFile, match="药品编码"):
        parse_payload(content, name="c.csv", kind="stoppage_notice")


@pytest.mark.parametrize("content", [b"[]", b' {"records": []} ', b"\xef\xbb\xbf[\r\n]"])
def test_an_empty_json_file_is_unusable_like_a_header_only_csv(app, content) -> None:  # type: ignore[no-untyped-def]
    result = ingest_payload(app.ingest_deps(), source="inbox", name="e.json", content=content, kind="auto", now=NOW)
    header_only = ingest_payload(app.ingest_deps(), source="inbox", name="h.csv", content=STOPPAGE_HEADER_ZH.encode(), kind="auto",
                                 now=NOW)
    assert result.status == header_only.status == "unusable"
    assert result.errors == header_only.errors and "no data rows" in result.errors[0]["reason"]
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(StoppageNotice)) == 0
