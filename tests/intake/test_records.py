"""The record contract of records.md, as pure validation rules."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from shortage_watch.domain.records import validate_record
from shortage_watch.intake.columns import infer_kind

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 10, 8, 2, 0, tzinfo=timezone.utc)
NOTICE = {
    "notice_id": "TZ-1", "manufacturer": "某某制药", "product_code": "XJ1", "product_name": "阿莫西林胶囊",
    "kind": "stoppage", "distributor_code": "D1", "notified_on": "2024-09-27",
}


def notice(**changes: object) -> tuple[object, list]:
    return validate_record("stoppage_notice", {**NOTICE, **changes}, row=7, now=NOW, tz=TZ)


@pytest.mark.parametrize("text", ["2024-09-27", "2024/09/27", "2024/9/27", "2024年9月27日", "2024-09-27 00:00:00",
                                  "\u30002024-09-27\u3000", 45562, datetime(2024, 9, 27), date(2024, 9, 27)])
def test_every_date_form_of_records_md_is_the_same_day(text: object) -> None:
    record, errors = notice(notified_on=text)
    assert errors == []
    assert record.notified_on == date(2024, 9, 27)


def test_notified_on_in_the_future_is_rejected_chinese_first() -> None:
    record, errors = notice(notified_on="2024-10-09")
    assert record is None
    assert [(e.row, e.field, e.reason) for e in errors] == [
        (7, "notified_on", "通知日期不能晚于今天 / notified_on is in the future")]


def test_today_in_beijing_is_not_the_future_even_before_utc_midnight() -> None:
    # 2024-10-08 01:00 Beijing is still 2024-10-07 in UTC.
    record, errors = validate_record("stoppage_notice", {**NOTICE, "notified_on": "2024-10-08"}, row=1,
                                     now=datetime(2024, 10, 7, 17, 0, tzinfo=timezone.utc), tz=TZ)
    assert errors == [] and record is not None


def test_full_width_spaces_and_chinese_choices_are_normalized() -> None:
    record, errors = notice(manufacturer="\u3000某某制药 ", kind="断供", priority_class="国谈药品")
    assert errors == []
    assert (record.manufacturer, record.kind, record.priority_class) == ("某某制药", "interruption", "negotiated")


def test_excel_numeric_codes_lose_their_decimal_point() -> None:
    record, _ = notice(product_code=86900012345.0)
    assert record.product_code == "86900012345"


def test_every_bad_field_of_a_row_is_reported() -> None:
    record, errors = notice(kind="停止", product_code="X" * 65, notice_id=None)
    assert record is None
    assert {e.field for e in errors} == {"kind", "product_code", "notice_id"}
    assert all(" / " in e.reason for e in errors)


def test_expected_resume_before_notified_is_rejected() -> None:
    _, errors = notice(expected_resume_on="2024-09-01")
    assert [e.field for e in errors] == ["expected_resume_on"]


@pytest.mark.parametrize("bad", ["2024-02-30", "27/09/2024", "yesterday", "2024-09-27 10:00"])
def test_a_malformed_or_impossible_date_is_rejected(bad: str) -> None:
    _, errors = notice(notified_on=bad)
    assert [e.field for e in errors] == ["notified_on"]


def test_a_nested_value_is_rejected_not_stringified() -> None:
    _, errors = notice(product_name={"a": 1})
    assert [e.field for e in errors] == ["product_name"]


def test_submitted_at_without_zone_is_beijing_time() -> None:
    record, errors = validate_record("distributor_report", {
        "report_id": "R1", "distributor_code": "D1", "notice_id": "TZ-1", "submitted_at": "2024-10-07 16:30"},
        row=2, now=NOW, tz=TZ)
    assert errors == []
    assert record.submitted_at == datetime(2024, 10, 7, 8, 30, tzinfo=timezone.utc)


def test_submitted_at_in_the_future_is_rejected() -> None:
    _, errors = validate_record("distributor_report", {
        "report_id": "R1", "distributor_code": "D1", "notice_id": "TZ-1", "submitted_at": "2024-10-08T12:00+08:00"},
        row=2, now=NOW, tz=TZ)
    assert [(e.field, e.reason) for e in errors] == [("submitted_at", "提交时间不能晚于现在 / submitted_at is in the future")]


def test_a_report_without_notice_id_must_describe_the_notice() -> None:
    base = {"report_id": "R1", "distributor_code": "D1", "submitted_at": "2024-10-07 16:30"}
    _, errors = validate_record("distributor_report", base, row=2, now=NOW, tz=TZ)
    assert [e.field for e in errors] == ["manufacturer"]
    described = {**base, "manufacturer": "M", "product_code": "P", "product_name": "N", "kind": "减产",
                 "notified_on": "2024-09-30"}
    record, errors = validate_record("distributor_report", described, row=2, now=NOW, tz=TZ)
    assert errors == [] and record.kind == "reduction"


def test_shortage_report_numbers_must_not_be_negative() -> None:
    values = {"report_id": "S1", "hospital_code": "H1", "product_code": "P", "product_name": "N",
              "reported_on": "2024-10-08", "supply_status": "严重短缺", "stock_days": "-1", "monthly_demand": "1,200"}
    _, errors = validate_record("shortage_report", values, row=3, now=NOW, tz=TZ)
    assert [(e.field, e.reason) for e in errors] == [("stock_days", "不能为负数 / must not be negative")]
    values["stock_days"] = "2.5"
    record, errors = validate_record("shortage_report", values, row=3, now=NOW, tz=TZ)
    assert errors == [] and (record.stock_days, record.monthly_demand, record.supply_status) == (2.5, 1200.0, "severe")


def test_the_same_content_hashes_the_same_whatever_its_spelling() -> None:
    a, _ = notice(notified_on="2024年9月27日", kind="停产")
    b, _ = notice(notified_on="2024-09-27", kind="STOPPAGE")
    c, _ = notice(notified_on="2024-09-27", kind="interruption")
    assert a.content_hash() == b.content_hash() != c.content_hash()


def test_identity_follows_records_md() -> None:
    record, _ = notice()
    assert record.identity() == "TZ-1\x1fD1"


def test_kind_is_inferred_from_chinese_headers() -> None:
    assert infer_kind(["通知编号", "生产企业", "药品编码", "药品名称", "类型", "配送企业编码", "通知日期"]) == "stoppage_notice"
    assert infer_kind(["直报编号", "医疗机构编码", "药品编码", "药品名称", "上报日期", "供应状态"]) == "shortage_report"
    assert infer_kind(["反馈编号", "配送企业编码", "通知编号", "提交时间"]) == "distributor_report"
    assert infer_kind(["名称", "备注"]) is None


@pytest.mark.parametrize("slip", ["1024-09-27", "0001-01-01", datetime(1900, 1, 1), "2300-01-01"])
def test_a_year_typed_wrong_is_rejected_not_overdue_for_centuries(slip: object) -> None:
    _, errors = notice(notified_on=slip, expected_resume_on=None)
    assert [e.field for e in errors] == ["notified_on"]
    assert "check the year" in errors[0].reason and errors[0].reason.startswith("日期")


@pytest.mark.parametrize("instant", ["0001-01-01 00:00", "9999-12-31 23:59-12:00", "1899-05-01T10:00:00"])
def test_a_date_time_at_the_edge_of_the_calendar_is_a_row_error_not_a_crash(instant: str) -> None:
    record, errors = validate_record(
        "distributor_report", {"report_id": "R1", "distributor_code": "D1", "notice_id": "TZ-1", "submitted_at": instant},
        row=3, now=NOW, tz=TZ,
    )
    assert record is None and [e.field for e in errors] == ["submitted_at"]
