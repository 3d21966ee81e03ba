"""China's official working-day arrangements 2001-2026: every year the holidays library carries.

The 2019-2026 lists are typed from the published notices (国务院办公厅关于XXXX年部分节假日安排的通知),
not generated from the holidays library, so a wrong library release fails here. The
2001-2018 lists pin what the library carries (holidays 0.109), checked at the notable
dates below against the notices; a release that changes them fails here too.
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

LIBRARY_REST_WEEKDAYS = {
    2001: "01-01 01-24 01-25 01-26 01-29 01-30 05-01 05-02 05-03 05-04 05-07 10-01 10-02 10-03 10-04 10-05",
    2002: "01-01 01-02 01-03 02-12 02-13 02-14 02-15 02-18 05-01 05-02 05-03 05-06 05-07 10-01 10-02 10-03 10-04 10-07",
    2003: "01-01 02-03 02-04 02-05 02-06 02-07 05-01 05-02 05-05 05-06 05-07 10-01 10-02 10-03 10-06 10-07",
    2004: "01-01 01-22 01-23 01-26 01-27 01-28 05-03 05-04 05-05 05-06 05-07 10-01 10-04 10-05 10-06 10-07",
    2005: "01-03 02-09 02-10 02-11 02-14 02-15 05-02 05-03 05-04 05-05 05-06 10-03 10-04 10-05 10-06 10-07",
    2006: "01-02 01-03 01-30 01-31 02-01 02-02 02-03 05-01 05-02 05-03 05-04 05-05 10-02 10-03 10-04 10-05 10-06",
    2007: "01-01 01-02 01-03 02-19 02-20 02-21 02-22 02-23 05-01 05-02 05-03 05-04 05-07 10-01 10-02 10-03 10-04 10-05 12-31",
    2008: "01-01 02-06 02-07 02-08 02-11 02-12 04-04 05-01 05-02 06-09 09-15 09-29 09-30 10-01 10-02 10-03",
    2009: "01-01 01-02 01-26 01-27 01-28 01-29 01-30 04-06 05-01 05-28 05-29 10-01 10-02 10-05 10-06 10-07 10-08",
    2010: "01-01 02-15 02-16 02-17 02-18 02-19 04-05 05-03 06-14 06-15 06-16 09-22 09-23 09-24 10-01 10-04 10-05 10-06 10-07",
    2011: "01-03 02-02 02-03 02-04 02-07 02-08 04-04 04-05 05-02 06-06 09-12 10-03 10-04 10-05 10-06 10-07",
    2012: "01-02 01-03 01-23 01-24 01-25 01-26 01-27 04-02 04-03 04-04 04-30 05-01 06-22 10-01 10-02 10-03 10-04 10-05",
    2013: "01-01 01-02 01-03 02-11 02-12 02-13 02-14 02-15 04-04 04-05 04-29 04-30 05-01 06-10 06-11 06-12 09-19 09-20 "
    "10-01 10-02 10-03 10-04 10-07",
    2014: "01-01 01-31 02-03 02-04 02-05 02-06 04-07 05-01 05-02 06-02 09-08 10-01 10-02 10-03 10-06 10-07",
    2015: "01-01 01-02 02-18 02-19 02-20 02-23 02-24 04-06 05-01 06-22 09-03 09-04 10-01 10-02 10-05 10-06 10-07",
    2016: "01-01 02-08 02-09 02-10 02-11 02-12 04-04 05-02 06-09 06-10 09-15 09-16 10-03 10-04 10-05 10-06 10-07",
    2017: "01-02 01-27 01-30 01-31 02-01 02-02 04-03 04-04 05-01 05-29 05-30 10-02 10-03 10-04 10-05 10-06",
    2018: "01-01 02-15 02-16 02-19 02-20 02-21 04-05 04-06 04-30 05-01 06-18 09-24 10-01 10-02 10-03 10-04 10-05 12-31",
}

LIBRARY_MAKEUP_WORKDAYS = {
    2001: "01-20 01-21 04-28 04-29 09-29 09-30 12-29 12-30",
    2002: "02-09 02-10 04-27 04-28 09-28 09-29",
    2003: "02-08 02-09 04-26 04-27 09-27 09-28",
    2004: "01-17 01-18 05-08 05-09 10-09 10-10",
    2005: "02-05 02-06 04-30 05-08 10-08 10-09 12-31",
    2006: "01-28 02-05 04-29 04-30 09-30 10-08 12-30 12-31",
    2007: "02-17 02-25 04-28 04-29 09-29 09-30 12-29",
    2008: "02-02 02-03 05-04 09-27 09-28",
    2009: "01-04 01-24 02-01 05-31 09-27 10-10",
    2010: "02-20 02-21 06-12 06-13 09-19 09-25 09-26 10-09",
    2011: "01-30 02-12 04-02 10-08 10-09 12-31",
    2012: "01-21 01-29 03-31 04-01 04-28 09-29",
    2013: "01-05 01-06 02-16 02-17 04-07 04-27 04-28 06-08 06-09 09-22 09-29 10-12",
    2014: "01-26 02-08 05-04 09-28 10-11",
    2015: "01-04 02-15 02-28 09-06 10-10",
    2016: "02-06 02-14 06-12 09-18 10-08 10-09",
    2017: "01-22 02-04 04-01 05-27 09-30",
    2018: "02-11 02-24 04-08 04-28 09-29 09-30 12-29",
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


@pytest.mark.parametrize("year", sorted(LIBRARY_REST_WEEKDAYS))
def test_earlier_year_is_official_as_the_library_carries_it(calendar: WorkingCalendar, year: int) -> None:
    summary = calendar.year_summary(year)
    assert summary["calendar"] == "official"
    assert summary["weekday_rest_days"] == _dates(year, LIBRARY_REST_WEEKDAYS[year])
    assert summary["makeup_workdays"] == _dates(year, LIBRARY_MAKEUP_WORKDAYS[year])


@pytest.mark.parametrize(
    "day, working",
    [
        ("2001-10-05", False),  # the first National Day golden week (1-7 October)
        ("2001-09-29", True),  # its make-up Saturday
        ("2008-04-04", False),  # 2008: Qingming, Dragon Boat and Mid-Autumn become holidays
        ("2008-05-05", True),  # ...and Labour Day shrinks to three days (make-up Sunday 05-04)
        ("2015-09-03", False),  # the 70th anniversary of the victory (国发明电〔2015〕2号)
        ("2015-09-06", True),
        ("2018-12-29", True),  # make-up Saturday fixed by the 2019 notice
        ("2018-12-31", False),  # New Year 2019 bridging Monday
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


def test_every_year_the_library_carries_2001_to_2026_is_official_and_no_other(calendar: WorkingCalendar) -> None:
    assert {y: calendar.status(y) for y in range(2001, 2027)} == {y: CalendarStatus.OFFICIAL for y in range(2001, 2027)}
    assert calendar.status(2000) == calendar.status(2027) == CalendarStatus.ESTIMATED


def test_china_loaded_without_every_country_is_the_librarys_own_calendar() -> None:
    # calendar.py reads holidays' China module alone (start-up time); it must be the same calendar.
    import holidays

    from shortage_watch.calendar import _china

    for year in range(2001, 2028):
        for observed in (True, False):
            alone, library = _china()(years=year, observed=observed), holidays.China(years=year, observed=observed)
            assert dict(alone) == dict(library) and alone.weekend_workdays == library.weekend_workdays, year


def test_the_release_these_lists_check_is_the_one_installed_and_pinned() -> None:
    # What is official comes from the holidays release: a newer one may carry a year (or change one) no
    # test here has checked against its notice, an older one lacks 2026. Moving the pin means checking here.
    import tomllib
    from pathlib import Path

    import holidays

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    assert "holidays==0.109" in pyproject["project"]["dependencies"]
    assert holidays.__version__ == "0.109"
