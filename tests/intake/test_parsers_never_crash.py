"""Bad input is never a crash: random bytes, truncated XLSX and deep JSON give clear rejections only."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shortage_watch.domain.records import RECORD_KINDS, validate_record
from shortage_watch.intake.columns import FIELDS
from shortage_watch.intake.encodings import UnusableFile
from shortage_watch.intake.parsers import parse_payload

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2024, 10, 8, 2, tzinfo=timezone.utc)


def parse_or_reject(content: bytes, name: str) -> str:
    """'parsed' or 'rejected'; any other exception fails the test."""
    try:
        parsed = parse_payload(content, name=name, kind="auto")
    except UnusableFile as exc:
        assert " / " in exc.reason  # Chinese first, then English
        return "rejected"
    for error in parsed.errors:
        assert " / " in error.reason
    return "parsed"


@FUZZ
@given(content=st.binary(max_size=2048), name=st.sampled_from(["a.csv", "a.xlsx", "a.json", "noext"]))
def test_random_bytes_are_parsed_or_rejected_never_raised(content: bytes, name: str) -> None:
    assert parse_or_reject(content, name) in ("parsed", "rejected")


@FUZZ
@given(text=st.text(max_size=400))
def test_random_text_in_any_encoding_is_parsed_or_rejected(text: str) -> None:
    for encoding in ("utf-8", "utf-8-sig", "gb18030"):
        content = ("通知编号,生产企业,药品编码\n" + text).encode(encoding)
        assert parse_or_reject(content, "a.csv") in ("parsed", "rejected")


def _workbook_bytes() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["通知编号", "生产企业", "药品编码", "药品名称", "类型", "配送企业编码", "通知日期"])
    for i in range(30):
        sheet.append([f"N{i}", "M", f"P{i}", "药", "停产", "D1", datetime(2024, 9, 27)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


WORKBOOK = _workbook_bytes()


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(WORKBOOK) - 1))
def test_truncated_xlsx_is_rejected_as_a_whole(cut: int) -> None:
    assert parse_or_reject(WORKBOOK[:cut], "a.xlsx") == "rejected"


@FUZZ
@given(position=st.integers(min_value=0, max_value=len(WORKBOOK) - 1), byte=st.integers(0, 255))
def test_xlsx_with_a_flipped_byte_is_parsed_or_rejected(position: int, byte: int) -> None:
    damaged = WORKBOOK[:position] + bytes([byte]) + WORKBOOK[position + 1:]
    assert parse_or_reject(damaged, "a.xlsx") in ("parsed", "rejected")


@pytest.mark.parametrize("depth", [100, 5_000, 200_000])
def test_deeply_nested_json_is_rejected_clearly(depth: int) -> None:
    content = ("[" * depth + "]" * depth).encode()
    with pytest.raises(UnusableFile) as caught:
        parse_payload(content, name="deep.json", kind="auto")
    assert "JSON" in caught.value.reason


def test_deeply_nested_value_inside_a_record_is_rejected_clearly() -> None:
    nested: object = 1
    for _ in range(100):
        nested = {"x": nested}
    content = json.dumps({"records": [{"notice_id": nested}]}).encode()
    with pytest.raises(UnusableFile):
        parse_payload(content, name="feed.json", kind="stoppage_notice")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@FUZZ
@given(kind=st.sampled_from(RECORD_KINDS), data=st.data())
def test_any_values_validate_or_give_field_errors(kind: str, data: st.DataObject) -> None:
    keys = [key for key, _, _ in FIELDS[kind]]
    values = data.draw(st.dictionaries(st.sampled_from(keys), json_values | st.datetimes(), max_size=len(keys)))
    record, errors = validate_record(kind, values, row=1, now=NOW, tz=ZoneInfo("Asia/Shanghai"))
    assert (record is None) == bool(errors)
    assert all(e.field in keys and " / " in e.reason for e in errors)
