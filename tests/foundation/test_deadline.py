"""The five-working-day rule: receipt day never counts; end of the due day, Asia/Shanghai."""

import logging
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from shortage_watch.calendar import CalendarError, WorkingCalendar, estimated_arrangement
from shortage_watch.domain.deadline import report_deadline


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar()


@pytest.mark.parametrize(
    "received, n, due",
    [
        ("2024-09-27", 5, "2024-10-10"),  # Friday before National Day; make-up Sunday 09-29 counts
        ("2024-09-29", 5, "2024-10-11"),  # receipt on a make-up Sunday: the receipt day still never counts
        ("2024-10-03", 5, "2024-10-12"),  # receipt inside the golden week; make-up Saturday 10-12 is day 5
        ("2024-10-07", 1, "2024-10-08"),
        ("2024-09-30", 1, "2024-10-08"),  # the day before the golden week: next working day after it
        ("2024-12-27", 5, "2025-01-06"),  # across a year end with New Year's Day
        ("2025-12-29", 5, "2026-01-06"),  # across a year end with the 2026 make-up Sunday 01-04
        ("2024-02-08", 5, "2024-02-21"),  # 2024's working Spring Festival eve counts as day 1
        ("2020-01-23", 5, "2020-02-07"),  # 2020's extended Spring Festival
        ("2019-04-26", 5, "2019-05-06"),  # 2019's amended Labour Day with two make-up Sundays
        ("2025-09-30", 5, "2025-10-14"),  # 2025's eight-day National Day, make-up Saturday 10-11
        ("2024-09-27", 10, "2024-10-16"),
        ("2024-06-08", 5, "2024-06-17"),  # received on a Saturday before Dragon Boat (06-10)
    ],
)
def test_due_date(calendar: WorkingCalendar, received: str, n: int, due: str) -> None:
    deadline = report_deadline(calendar, date.fromisoformat(received), n)
    assert deadline.due == date.fromisoformat(due)
    assert deadline.calendar == "official"


def test_due_at_is_end_of_day_in_shanghai(calendar: WorkingCalendar) -> None:
    deadline = report_deadline(calendar, date(2024, 9, 27))
    assert deadline.as_json() == {
        "received": "2024-09-27",
        "working_days": 5,
        "due": "2024-10-10",
        "due_at": "2024-10-10T23:59:59+08:00",
        "calendar": "official",
    }


def test_cutoff_replaces_end_of_day(calendar: WorkingCalendar) -> None:
    deadline = report_deadline(calendar, date(2024, 9, 27), cutoff=time(17, 30))
    assert deadline.due_at.isoformat() == "2024-10-10T17:30:00+08:00"


def test_working_days_below_one_is_refused(calendar: WorkingCalendar) -> None:
    with pytest.raises(ValueError):
        report_deadline(calendar, date(2024, 9, 27), 0)


def test_unknown_year_is_estimated_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    calendar = WorkingCalendar()
    with caplog.at_level(logging.WARNING, logger="shortage_watch.calendar"):
        deadline = report_deadline(calendar, date(2026, 12, 28))
    # New Year's Day 2027 (a Friday) is a rest day before any notice says so: never due before 01-05.
    assert deadline.due == date(2027, 1, 5)
    assert deadline.calendar == "estimated"
    assert any("2027" in r.getMessage() and "estimated" in r.getMessage() for r in caplog.records)


def test_deadline_inside_a_known_year_is_not_estimated_by_later_years() -> None:
    assert report_deadline(WorkingCalendar(), date(2026, 12, 21)).calendar == "official"


def test_receipt_before_a_known_year_counts_only_official_days() -> None:
    # The receipt day (2018-12-28) never counts; every day counted was fixed by the 2019 notice.
    deadline = report_deadline(WorkingCalendar(), date(2018, 12, 28))
    assert (deadline.due, deadline.calendar) == (date(2019, 1, 7), "official")


def test_last_days_of_december_are_estimated_while_the_next_year_is_unknown() -> None:
    # 2026-12-29..31 lie in an official year, but the 2027 notice may still move them.
    deadline = report_deadline(WorkingCalendar(), date(2026, 12, 24), 3)
    assert (deadline.due, deadline.calendar) == (date(2026, 12, 29), "estimated")


@pytest.mark.parametrize(
    "day, why",
    [
        ("2027-01-01", "New Year's Day"),
        ("2027-02-04", "the day before Spring Festival eve"),
        ("2027-02-05", "Spring Festival eve (statutory since 2025)"),
        ("2027-02-12", "the 7th day of Spring Festival"),
        ("2027-04-05", "Qingming (solar term)"),
        ("2027-05-03", "Labour Day bridging"),
        ("2027-05-05", "Labour Day bridging to 5 May"),
        ("2027-06-09", "Dragon Boat (lunar 5-5)"),
        ("2027-09-15", "Mid-Autumn (lunar 8-15)"),
        ("2027-10-07", "National Day week"),
        ("2028-04-03", "Monday bridging a Tuesday Qingming"),
        ("2027-12-31", "Friday bridging a Saturday New Year's Day 2028"),
        ("2028-10-06", "National Day meeting Mid-Autumn (10-03)"),
    ],
)
def test_estimated_year_rests_on_statutory_holidays_and_usual_bridges(day: str, why: str) -> None:
    calendar = WorkingCalendar()
    assert calendar.day_status(date.fromisoformat(day)) == "estimated"
    assert not calendar.is_working_day(date.fromisoformat(day)), why


def test_estimated_year_assumes_no_make_up_weekend_day() -> None:
    calendar = WorkingCalendar()
    days = [date(2027, 1, 1) + timedelta(days=i) for i in range(365)]
    assert not [day for day in days if day.weekday() >= 5 and calendar.is_working_day(day)]


# Since 2014 the arrangements follow the pattern the estimate assumes. 2015 is left out
# for its one-off Victory Day holiday (3-4 September), which no rule could foresee.
@pytest.mark.parametrize("year", [2014, *range(2016, 2027)])
def test_estimate_of_a_known_year_is_never_earlier_than_its_notice(year: int) -> None:
    official = WorkingCalendar()
    # A year not yet published means the next one is not either.
    estimated = WorkingCalendar({year: estimated_arrangement(year), year + 1: estimated_arrangement(year + 1)})
    day = date(year - 1, 12, 20)
    while day <= date(year, 12, 20):  # deadlines up to the end of `year`
        for n in (1, 5):
            assert estimated.nth_working_day_after(day, n)[0] >= official.nth_working_day_after(day, n)[0], (day, n)
        day += timedelta(days=1)


def test_override_file_makes_a_year_known(tmp_path: Path) -> None:
    (tmp_path / "2027.toml").write_text(
        'year = 2027\nsource = "test notice"\nholidays = ["2027-01-01", "2027-01-02", "2027-01-03"]\n'
        'makeup_workdays = ["2027-01-09"]\n',
        encoding="utf-8",
    )
    calendar = WorkingCalendar.from_overrides_dir(tmp_path)
    deadline = report_deadline(calendar, date(2026, 12, 28))
    assert deadline.due == date(2027, 1, 5)
    assert deadline.calendar == "override"
    assert calendar.is_working_day(date(2027, 1, 9))  # a Saturday made a working day


def test_override_can_correct_an_official_year(tmp_path: Path) -> None:
    (tmp_path / "2024.toml").write_text(
        'year = 2024\nholidays = ["2024-10-08"]\nmakeup_workdays = []\n', encoding="utf-8"
    )
    calendar = WorkingCalendar.from_overrides_dir(tmp_path)
    assert calendar.status(2024) == "override"
    assert not calendar.is_working_day(date(2024, 10, 8))
    assert calendar.is_working_day(date(2024, 10, 1))  # the override replaces the whole year


@pytest.mark.parametrize(
    "content, problem",
    [
        ('year = 2027\nmakeup_workdays = ["2027-01-04"]\n', "Saturday or Sunday"),
        ('year = 2027\nholidays = ["2028-01-01"]\n', "outside year 2027"),
        ('year = 2027\nholidays = ["tomorrow"]\n', "not a YYYY-MM-DD date"),
        ("year = \n", "cannot read"),
        ('year = "x"\n', "'year' must be an integer"),
    ],
)
def test_bad_override_names_file_and_reason(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "2027.toml").write_text(content, encoding="utf-8")
    with pytest.raises(CalendarError) as excinfo:
        WorkingCalendar.from_overrides_dir(tmp_path)
    assert "2027.toml" in str(excinfo.value)
    assert problem in str(excinfo.value)


def test_working_days_between_counts_half_open_interval(calendar: WorkingCalendar) -> None:
    assert calendar.working_days_between(date(2024, 10, 10), date(2024, 10, 14)) == 3  # 11, 12 (Sat), 14
    assert calendar.working_days_between(date(2024, 10, 10), date(2024, 10, 10)) == 0


def test_nth_working_day_before_skips_holidays(calendar: WorkingCalendar) -> None:
    assert calendar.nth_working_day_before(date(2024, 10, 8), 1) == date(2024, 9, 30)
    assert calendar.nth_working_day_before(date(2024, 10, 8), 2) == date(2024, 9, 29)
