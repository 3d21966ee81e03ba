"""China's official working-day arrangements 2019-2026, pinned against the State Council notices.

Each list below is typed from the published notice (国务院办公厅关于XXXX年部分节假日安排的通知),
not generated from the holidays library, so a wrong library release fails here.
"""

from datetime import date

import pytest

from shortage_watch.calendar import CalendarStatus, WorkingCalendar


def d(text: str) -> date:
    return date.fromisoformat(text)


# Monday-to-Friday dates that are rest days, per year.
OFFICIAL_REST_WEEKDAYS = {
    2019: "01-01 02-04 02-05 02-06 02-07 02-08 04-05 05-01 05-02 05-03 06-07 09-13 10-01 10-02 10-03 10-04 10-07",
    # Spring Festival extended to 2 February by 国办发明电〔2020〕1号: 01-31 became a rest day.
    2020: "01-01 01-24 01-27 01-28 01-29 01-30 01-31 04-06 05-01 05-04 05-05 06-25 06-26 "
    "10-01 10-02 10-05 10-06 10-07 10-08",
    2021: "01-01 02-11 02-12 02-15 02-16 02-17 04-05 05-03 05-04 05-05 06-14 09-20 09-21 10-01 10-04 10-05 10-06 10-07",
    2022: "01-03 01-31 02-01 02-02 02-03 02-04 04-04 04-05 05-02 05-03 05-04 06-03 09-12 10-03 10-04 10-05 10-06 10-07",
    2023: "01-02 01-23 01-24 01-25 01-26 01-27 04-05 05-01 05-02 05-03 06-22 06-23 09-29 10-02 10-03 10-04 10-05 10-06",
    2024: "01-01 02-12 02-13 02-14 02-15 02-16 04-04 04-05 05-01 05-02 05-03 06-10 09-16 09-17 "
    "10-01 10-02 10-03 10-04 10-07",
    # From 2025 Spring Festival eve and 2 May are statutory holidays (国务院令第795号).
    2025: "01-01 01-28 01-29 01-30 01-31 02-03 02-04 04-04 05-01 05-02 05-05 06-02 10-01 10-02 10-03 10-06 10-07 10-08",
    2026: "01-01 01-02 02-16 02-17 02-18 02-19 02-20 02-23 04-06 05-01 05-04 05-05 06-19 09-25 "
    "10-01 10-02 10-05 10-06 10-07",
}

# Saturdays and Sundays that are working days (调休上班), per year.
OFFICIAL_MAKEUP_WORKDAYS = {
    # Labour Day amended by 国办发明电〔2019〕2号: 04-28 and 05-05 work.
    2019: "02-02 02-03 04-28 05-05 09-29 10-12",
    # The extension cancelled the original 02-01 make-up Saturday.
    2020: "01-19 04-26 05-09 06-28 09-27 10-10",
    2021: "02-07 02-20 04-25 05-08 09-18 09-26 10-09",
    2022: "01-29 01-30 04-02 04-24 05-07 10-08 10-09",
    2023: "01-28 01-29 04-23 05-06 06-25 10-07 10-08",
    2024: "02-04 02-18 04-07 04-28 05-11 09-14 09-29 10-12",
    2025: "01-26 02-08 04-27 09-28 10-11",
    2026: "01-04 02-14 02-28 05-09 09-20 10-10",
}


def _dates(year: int, spec: str) -> list[str]:
    return sorted(f"{year}-{md}" for md in spec.split())


@pytest.fixture(scope="module")
def calendar() -> WorkingCalendar:
    return WorkingCalendar()


@pytest.mark.parametrize("year", sorted(OFFICIAL_REST_WEEKDAYS))
def test_year_matches_state_council_notice(calendar: WorkingCalendar, year: int) -> None:
    summary = calendar.year_summary(year)
    assert summary["calendar"] == "official"
    assert summary["weekday_rest_days"] == _dates(year, OFFICIAL_REST_WEEKDAYS[year])
    assert summary["makeup_workdays"] == _dates(year, OFFICIAL_MAKEUP_WORKDAYS[year])


@pytest.mark.parametrize(
    "day, working",
    [
        ("2019-04-30", True),  # between the amended Labour Day make-up Sunday and the holiday
        ("2019-05-04", False),  # Saturday, inside the amended 1-4 May holiday
        ("2019-05-05", True),  # make-up Sunday of the amendment
        ("2020-01-31", False),  # added by the epidemic extension
        ("2020-02-01", False),  # was a make-up Saturday before the extension
        ("2020-02-03", True),  # first working day after the extension
        ("2024-02-09", True),  # Spring Festival eve 2024 was a working day
        ("2024-02-18", True),  # make-up Sunday
        ("2024-10-12", True),  # make-up Saturday after National Day
        ("2024-10-05", False),
        ("2025-01-28", False),  # Spring Festival eve became a statutory holiday in 2025
        ("2025-05-02", False),  # the second Labour Day holiday added in 2025
        ("2025-02-08", True),
        ("2025-10-08", False),
        ("2026-01-04", True),  # make-up Sunday right after New Year
        ("2026-02-23", False),  # ninth day of the 2026 Spring Festival
        ("2026-02-28", True),
        ("2023-12-30", False),  # an ordinary Saturday
        ("2023-12-29", True),  # an ordinary Friday
    ],
)
def test_working_day_on_notable_dates(calendar: WorkingCalendar, day: str, working: bool) -> None:
    assert calendar.is_working_day(d(day)) is working


def test_every_year_2019_to_2026_is_official(calendar: WorkingCalendar) -> None:
    assert {y: calendar.status(y) for y in range(2019, 2027)} == {y: CalendarStatus.OFFICIAL for y in range(2019, 2027)}
