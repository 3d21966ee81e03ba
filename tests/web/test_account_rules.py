"""The pure rules behind web accounts (domain/accounts.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from shortage_watch.domain.accounts import login_paused_until, password_problem, rate_window, record_outside_party
from shortage_watch.domain.records import validate_record

T = datetime(2024, 10, 8, 2, 0, 30, tzinfo=timezone.utc)


def test_password_needs_ten_characters_and_not_the_name():
    assert "10" in password_problem("short", "D350901")
    assert password_problem("D350901", "d350901") is not None
    assert password_problem("aaaaaaaaaaaa", "x") is not None
    assert password_problem("correct horse battery", "D350901") is None


def test_five_failures_within_the_pause_pause_until_the_last_plus_the_pause():
    pause = timedelta(minutes=15)
    failures = [T - timedelta(minutes=m) for m in (20, 10, 8, 6, 4)]  # one is older than the pause
    assert login_paused_until(failures, 5, pause, T) is None
    failures.append(T - timedelta(minutes=1))
    assert login_paused_until(failures, 5, pause, T) == T - timedelta(minutes=1) + pause


def test_rate_window_is_the_minute_and_says_how_long_until_the_next():
    window = rate_window(T)
    assert window.start == T.replace(second=0) and window.retry_after_seconds == 30


def _notice(**fields):
    values = {"notice_id": "N1", "manufacturer": "厂", "product_code": "P1", "product_name": "药", "kind": "停产",
              "distributor_code": "D1", "notified_on": "2024-10-08"}
    values.update(fields)
    record, problems = validate_record("stoppage_notice", values, row=2, now=T, tz=ZoneInfo("Asia/Shanghai"))
    assert not problems
    return record


def test_a_distributor_hands_in_only_its_own_notices_and_reports():
    assert record_outside_party(_notice(), "D1", 2) is None
    refusal = record_outside_party(_notice(distributor_code="D2"), "D1", 3)
    assert (refusal.row, refusal.field) == (3, "distributor_code") and "D1" in refusal.reason
    hospital, _ = validate_record("shortage_report", {"report_id": "S1", "hospital_code": "H1", "product_code": "P",
                                                      "product_name": "药", "reported_on": "2024-10-08",
                                                      "supply_status": "short", "distributor_code": "D1"},
                                  row=4, now=T, tz=ZoneInfo("Asia/Shanghai"))
    assert record_outside_party(hospital, "D1", 4).field == "record_kind"
