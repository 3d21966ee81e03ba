"""Pure rules, no database: policy loading, firing instants, fulfilment, routing, case thresholds."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.domain.cases import ReportView, all_closed, hospital_parts, is_regional, possible_false_shortages
from shortage_watch.domain.deadline import report_deadline
from shortage_watch.domain.obligations import advance, fulfilment, overdue_working_days
from shortage_watch.domain.policy import (
    Ladder,
    Level,
    PolicyError,
    is_priority,
    level_instant,
    policy_from_data,
    schedule,
)
from shortage_watch.domain.directory import Directory
from shortage_watch.domain.routing import route
from shortage_watch.domain.states import obligation_state_at
from shortage_watch.settings import load_policy
from tests.ledger.conftest import POLICY, at, sample_directory

CAL = WorkingCalendar()
DEADLINE = report_deadline(CAL, date(2024, 9, 27), 5)
OPENED = at("2024-09-27T10:00")


def test_default_policy_loads_with_every_ladder_and_event():
    policy = load_policy(POLICY)
    assert set(policy.ladders) == {"report", "report_priority", "explanation", "regional"}
    assert [lv.name for lv in policy.ladders["report"].levels] == [
        "receipt", "notice_opened", "reminder", "written_reminder", "overdue", "interview", "province",
    ]
    assert policy.events["late_report"].recipients == ("insurance@county",)


def test_report_due_skips_national_day_and_counts_makeup_sunday():
    assert DEADLINE.due == date(2024, 10, 10)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (None, "2024-09-27T10:00:00"),
        (-1, "2024-10-09T00:00:00"),
        (0, "2024-10-11T00:00:00"),  # the first second after 10-10 23:59:59
        (2, "2024-10-12T00:00:00"),  # make-up Saturday counts
        (3, "2024-10-14T00:00:00"),
        (10, "2024-10-23T00:00:00"),
    ],
)
def test_level_fires_at_start_of_working_day_relative_to_due_date(offset, expected):
    level = Level("x", offset, ("distributor",), "t")
    instant = level_instant(CAL, level, DEADLINE.due, DEADLINE.due_at, OPENED)
    assert instant == at(expected[:16])


def test_level_before_due_skips_the_holiday_backwards():
    # 10-08 is the first working day after the holiday; 3 working days before it is 09-29 (make-up Sunday).
    level = Level("x", -3, ("distributor",), "t")
    assert level_instant(CAL, level, date(2024, 10, 9), DEADLINE.due_at, OPENED) == at("2024-09-29T00:00")


def test_advance_fires_everything_missed_and_points_at_the_next():
    ladder = load_policy(POLICY).ladders["report"]
    step = advance(CAL, ladder, due_on=DEADLINE.due, due_at=DEADLINE.due_at, opened_at=OPENED, step=2, now=at("2024-10-12T12:00"))
    # The reminder's moment (10-09) passed unseen and the deadline is gone: it is skipped, not sent late.
    assert [f.name for f in step.firings] == ["written_reminder", "overdue"]
    assert [f.name for f in step.skipped] == ["reminder"]
    assert step.next_step == 5 and step.next_action_at == at("2024-10-14T00:00")
    before_due = advance(CAL, ladder, due_on=DEADLINE.due, due_at=DEADLINE.due_at, opened_at=OPENED, step=2, now=at("2024-10-10T12:00"))
    assert [f.name for f in before_due.firings] == ["reminder"] and before_due.skipped == ()
    done = advance(CAL, ladder, due_on=DEADLINE.due, due_at=DEADLINE.due_at, opened_at=OPENED, step=7, now=at("2025-01-01T00:00"))
    assert done.firings == () and done.next_action_at is None


def test_repeating_level_fires_until_the_next_level_then_forever_on_the_last():
    ladder = Ladder("report", (
        Level("warn", 0, ("distributor",), "t", repeat_every=2),
        Level("city", 5, ("insurance@city",), "t", repeat_every=5),
    ))
    firings = []
    for firing in schedule(CAL, ladder, DEADLINE.due, DEADLINE.due_at, OPENED):
        firings.append((firing.name, firing.at))
        if len(firings) == 6:
            break
    # warn#3 would fall on 10-16, when "city" fires: the repeat stops there.
    assert [name for name, _ in firings] == ["warn", "warn#2", "city", "city#2", "city#3", "city#4"]
    assert firings[1][1] == at("2024-10-14T00:00")  # 2 working days after 10-11 (10-12 make-up Saturday, 10-14)
    assert firings[3][1] == at("2024-10-23T00:00")


def test_on_time_and_late_fulfilment():
    assert fulfilment(CAL, DEADLINE.due, DEADLINE.due_at, at("2024-10-10T23:59")).state == "fulfilled"
    late = fulfilment(CAL, DEADLINE.due, DEADLINE.due_at, at("2024-10-12T10:00"))
    assert late.state == "fulfilled_late" and late.late_working_days == 2
    # After the deadline on the due day's night, or on a rest day right after it: one working day late.
    assert fulfilment(CAL, date(2024, 10, 11), at("2024-10-11T23:59:59"), at("2024-10-13T09:00")).late_working_days == 1


def test_overdue_strictly_after_due_instant():
    assert obligation_state_at("open", DEADLINE.due_at, DEADLINE.due_at) == "open"
    assert obligation_state_at("open", DEADLINE.due_at, DEADLINE.due_at + timedelta(seconds=1)) == "overdue"
    assert overdue_working_days(CAL, DEADLINE.due, DEADLINE.due_at, at("2024-10-14T09:00")) == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, r"a \[ladders\] table is required"),
        ({"ladders": {"report": {"levels": [{"name": "a", "offset": "soon", "recipients": ["distributor"], "template": "t"}]}}}, "offset"),
        ({"ladders": {"report": {"levels": [{"name": "a", "offset": 1, "recipients": ["insurance"], "template": "t"}]}}}, "say the region level"),
        ({"ladders": {"report": {"levels": [{"name": "a", "offset": 1, "recipients": ["mayor@city"], "template": "t"}]}}}, "role must be one of"),
        ({"ladders": {"report": {"levels": [
            {"name": "a", "offset": 3, "recipients": ["distributor"], "template": "t"},
            {"name": "b", "offset": 1, "recipients": ["distributor"], "template": "t"}]}}}, "firing order"),
    ],
)
def test_bad_policy_names_the_key(data, message):
    with pytest.raises(PolicyError, match=message):
        policy_from_data(data, "escalation.toml")


def test_unreadable_policy_file_is_one_clear_error(tmp_path: Path):
    bad = tmp_path / "escalation.toml"
    bad.write_text("[ladders\n", encoding="utf-8")
    with pytest.raises(PolicyError, match="escalation.toml: not valid TOML"):
        load_policy(bad)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.toml")


def test_priority_classes():
    assert is_priority("negotiated") and is_priority("winning_bid") and is_priority("shortage_list")
    assert not is_priority("other") and not is_priority(None)


def test_routing_walks_parents_and_resolves_chongqing_city_to_municipality():
    directory = sample_directory()
    county = route(directory, "insurance@county", region_code="350981")  # 福安市 has no bureau: 宁德市's
    assert [(r.email, r.fallback) for r in county] == [("ybj@ningde.example", "parent:350900")]
    city = route(directory, "insurance@city", region_code="500101")
    assert [r.email for r in city] == ["ybj@cq.example"] and city[0].region_code == "500000" and city[0].fallback is None
    health = route(directory, "health@city", region_code="350902")
    assert health[0].delivery == "digest"


def test_routing_falls_back_to_operations_then_undeliverable():
    directory = sample_directory()
    assert route(directory, "distributor", region_code=None, distributor_code="D3", operations_email="ops@sw.example")[0].email == "ops@sw.example"
    lost = route(directory, "distributor", region_code=None, distributor_code="D3")
    assert lost[0].email is None and lost[0].key == "distributor@-"
    unknown = route(Directory(), "insurance@county", region_code="999999")
    assert unknown[0].email is None and unknown[0].key == "insurance@999999"


def _report(hospital: str, day: int, status: str = "short", cause: str | None = "supply") -> ReportView:
    return ReportView(hospital, date(2024, 10, day), status, cause, datetime(2024, 10, day, tzinfo=timezone.utc))


def test_regional_needs_k_distinct_hospitals_within_w_days():
    three = hospital_parts([_report("H1", 1), _report("H2", 4), _report("H3", 7)])
    assert is_regional(three, 3, 7)
    spread = hospital_parts([_report("H1", 1), _report("H2", 4), _report("H3", 8)])
    assert not is_regional(spread, 3, 7)
    same_hospital = hospital_parts([_report("H1", 1), _report("H1", 2), _report("H2", 3)])
    assert not is_regional(same_hospital, 3, 7)


def test_a_hospital_still_short_counts_on_each_day_it_reported_not_only_its_latest():
    follow_up = hospital_parts([_report("H1", 1), _report("H1", 20, status="severe"), _report("H2", 2), _report("H3", 3)])
    assert is_regional(follow_up, 3, 7)
    resolved_between = hospital_parts([_report("H1", 1), _report("H1", 20, status="resolved"), _report("H2", 2), _report("H3", 3)])
    assert not is_regional(resolved_between, 3, 7)  # H1's part is closed: it no longer counts


def test_procurement_cause_counts_apart_and_resolved_parts_close():
    parts = hospital_parts([_report("H1", 1), _report("H2", 2, cause="procurement"), _report("H3", 3)])
    assert not is_regional(parts, 3, 7) and possible_false_shortages(parts) == 1
    closing = hospital_parts([_report("H1", 1), _report("H1", 5, status="resolved")])
    assert all_closed(closing)
    operator = hospital_parts([_report("H1", 1)], {"H1": datetime(2024, 10, 2, tzinfo=timezone.utc)})
    assert all_closed(operator)
