"""China's working-day calendar: statutory holidays, weekend make-up days (调休), overrides.

Years whose arrangement the `holidays` library carries (2001-2026 in release 0.109,
pinned in pyproject.toml) are *official*. An operator can add or correct a year with a TOML file in
`calendar.overrides_dir` the day the State Council publishes it (*override*). Any
other year is *estimated*, logged as a warning, and errs late, never early: the
statutory holidays of the current regulation and every bridging day an arrangement
usually adds are rest days, and no weekend is assumed to be a make-up working day.
An early deadline would accuse a distributor who is not late; a late one only delays
a reminder until the notice is known and the deadline is re-dated.
"""

from __future__ import annotations

import importlib.util
import logging
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import holidays

log = logging.getLogger(__name__)

# The first year whose arrangement the holidays library carries (pinned by tests).
FIRST_OFFICIAL_YEAR = 2001
# A next year's notice may fix these last days of December (a bridging rest day before
# New Year's Day, a make-up weekend): until it is known, they are not certain either.
DECEMBER_DAYS_THE_NEXT_NOTICE_FIXES = 3
MAX_REMEMBERED = 100_000  # date questions the calendar keeps answers to


class CalendarError(ValueError):
    """An override file that cannot be used; the message names the file and why."""


class CalendarStatus(StrEnum):
    OFFICIAL = "official"
    OVERRIDE = "override"
    ESTIMATED = "estimated"


_STATUS_RANK = {CalendarStatus.OFFICIAL: 0, CalendarStatus.OVERRIDE: 1, CalendarStatus.ESTIMATED: 2}


def weakest(statuses: list[CalendarStatus]) -> CalendarStatus:
    """The least certain of several statuses (estimated > override > official)."""
    return max(statuses, key=_STATUS_RANK.__getitem__)


@dataclass(frozen=True)
class YearArrangement:
    """One year's deviations from the plain Monday-to-Friday week."""

    year: int
    status: CalendarStatus
    rest_weekdays: frozenset[date]
    makeup_workdays: frozenset[date]
    source: str


@cache
def _china() -> type[holidays.HolidayBase]:
    """The holidays library's calendar of China, read from its own module.

    `holidays.China` imports `holidays.countries` first, and with it every country of the world: 80 ms
    of the 0.3 s a `deadline` may take to answer. china.py needs only the library's core, so it is
    loaded alone; should a release move it, `holidays.China` (the same class) is the way in.
    """
    path = Path(holidays.__file__).parent / "countries" / "china.py"
    spec = importlib.util.spec_from_file_location("holidays.countries.china", path)
    if not path.is_file() or spec is None or spec.loader is None:
        return holidays.China
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.China


def official_arrangement(year: int) -> YearArrangement | None:
    """The State Council arrangement for `year` as the holidays library carries it, if known."""
    if year < FIRST_OFFICIAL_YEAR:
        return None
    cn = _china()(years=year)
    makeup = frozenset(d for d in cn.weekend_workdays if d.year == year)
    # The library computes statutory holidays for any year, but only a published
    # notice brings make-up days; no make-up day means no notice is known yet.
    if not makeup:
        return None
    rest = frozenset(d for d in cn if d.year == year and d.weekday() < 5)
    return YearArrangement(year, CalendarStatus.OFFICIAL, rest, makeup, f"holidays {holidays.__version__}")


def estimated_arrangement(year: int) -> YearArrangement:
    """A year without a known notice, estimated so that its deadlines are never early.

    Rest days: the statutory holidays of the current regulation (国务院令第795号: New
    Year 1 day, Spring Festival eve and days 1-3, Qingming, Labour Day 1-2 May, Dragon
    Boat, Mid-Autumn, National Day 1-3 October; the lunar ones computed) and the
    bridging days arrangements have made of them: Spring Festival from the day before
    its eve to day 8, Labour Day to 5 May, National Day to 7 October (8 October, and
    back to Mid-Autumn, when the two meet), a Monday or Friday between a one-day
    holiday and the weekend. Make-up weekend days are never assumed. A bridging day
    before New Year's Day may lie on 31 December of the year before.
    """
    official = _china()(years=year, observed=False)
    statutory = {day: name for day, name in official.items() if day.year == year}
    rest: set[date] = set()

    def span(first: date, last: date) -> None:
        rest.update(first + timedelta(days=i) for i in range((last - first).days + 1))

    def one_day_holiday(day: date) -> None:
        rest.add(day)
        bridges = {1: [-1], 3: [1], 5: [-1, 2], 6: [1]}  # Tue→Mon, Thu→Fri, Sat→Fri+Mon, Sun→Mon
        rest.update(day + timedelta(days=offset) for offset in bridges.get(day.weekday(), []))

    one_day_holiday(date(year, 1, 1))
    # The library names the eve only from 2025 on; day 1 is known for every year it computes (to 2100).
    spring_festival = min((day for day, name in statutory.items() if "Spring Festival" in name), default=None)
    if spring_festival is not None:
        span(spring_festival - timedelta(days=2), spring_festival + timedelta(days=7))
    labour = date(year, 5, 1)
    span(labour, labour + timedelta(days=4))
    if labour.weekday() == 1:
        rest.add(labour - timedelta(days=1))
    national_first, national_last = date(year, 10, 1), date(year, 10, 7)
    for day, name in statutory.items():
        if "Tomb" in name or "Dragon Boat" in name:
            one_day_holiday(day)
        elif "Mid-Autumn" in name:
            if date(year, 9, 28) <= day <= date(year, 10, 8):
                national_first, national_last = min(day, national_first), date(year, 10, 8)
            else:
                one_day_holiday(day)
    span(national_first, national_last)
    rest_weekdays = frozenset(d for d in rest if d.weekday() < 5)
    return YearArrangement(year, CalendarStatus.ESTIMATED, rest_weekdays, frozenset(), "statutory holidays and usual bridging days, estimated")


def _parse_date_list(values: object, path: Path, key: str, year: int) -> list[date]:
    if not isinstance(values, list):
        raise CalendarError(f"{path}: '{key}' must be a list of YYYY-MM-DD dates")
    out = []
    for v in values:
        try:
            d = v if isinstance(v, date) else date.fromisoformat(str(v))
        except ValueError:
            raise CalendarError(f"{path}: '{key}' has {v!r}, not a YYYY-MM-DD date") from None
        if d.year != year:
            raise CalendarError(f"{path}: '{key}' has {d}, outside year {year}")
        out.append(d)
    return out


def read_override(path: Path) -> YearArrangement:
    """Parse one override file; raises CalendarError naming the file and the problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CalendarError(f"{path}: cannot read: {exc}") from None
    year = data.get("year")
    if not isinstance(year, int) or not 1949 < year < 2200:
        raise CalendarError(f"{path}: 'year' must be an integer year")
    rest = _parse_date_list(data.get("holidays", []), path, "holidays", year)
    makeup = _parse_date_list(data.get("makeup_workdays", []), path, "makeup_workdays", year)
    weekday_makeup = [d for d in makeup if d.weekday() < 5]
    if weekday_makeup:
        raise CalendarError(f"{path}: makeup_workdays must fall on Saturday or Sunday, not {weekday_makeup[0]}")
    clash = set(rest) & set(makeup)
    if clash:
        raise CalendarError(f"{path}: {min(clash)} is both a holiday and a make-up working day")
    return YearArrangement(
        year,
        CalendarStatus.OVERRIDE,
        frozenset(d for d in rest if d.weekday() < 5),
        frozenset(makeup),
        str(data.get("source") or path.name),
    )


def read_overrides(directory: Path | None) -> dict[int, YearArrangement]:
    """All `*.toml` overrides in `directory` (missing directory: none), one per year."""
    if directory is None or not directory.is_dir():
        return {}
    found: dict[int, YearArrangement] = {}
    for path in sorted(directory.glob("*.toml")):
        arrangement = read_override(path)
        if arrangement.year in found:
            raise CalendarError(f"{path}: a second override for {arrangement.year}")
        found[arrangement.year] = arrangement
    return found


class WorkingCalendar:
    """Working days in one time zone; `date` arithmetic only, no I/O after construction."""

    def __init__(self, overrides: dict[int, YearArrangement] | None = None, tz: str = "Asia/Shanghai") -> None:
        self.tz = ZoneInfo(tz)
        self._overrides = dict(overrides or {})
        self._years: dict[int, YearArrangement] = {}
        # Answers by question: a set of records asks the same few dates thousands of times.
        self._answers: dict[tuple[Any, ...], Any] = {}

    def _remembered(self, question: tuple[Any, ...], answer: Callable[[], Any]) -> Any:
        """The answer to a date question, worked out once (the calendar never changes after construction)."""
        if question not in self._answers:
            if len(self._answers) >= MAX_REMEMBERED:
                self._answers.clear()  # a long-running daemon asks about ever newer dates: stay bounded
            self._answers[question] = answer()
        return self._answers[question]

    @classmethod
    def from_overrides_dir(cls, directory: Path | None, tz: str = "Asia/Shanghai") -> "WorkingCalendar":
        return cls(read_overrides(directory), tz)

    def arrangement(self, year: int) -> YearArrangement:
        """The arrangement in force for `year`; an estimated year is logged once."""
        cached = self._years.get(year)
        if cached is not None:
            return cached
        arrangement = self._overrides.get(year) or official_arrangement(year)
        if arrangement is None:
            arrangement = estimated_arrangement(year)
            log.warning(
                "calendar year %s has no official arrangement; working days are estimated (statutory "
                "holidays and usual bridging days rest, no make-up days; add a config override when the "
                "State Council publishes it)",
                year,
            )
        self._years[year] = arrangement
        return arrangement

    def override_years(self) -> list[int]:
        """The years an operator's override file gives, in order."""
        return sorted(self._overrides)

    def status(self, year: int) -> CalendarStatus:
        return self.arrangement(year).status

    def is_working_day(self, day: date) -> bool:
        arrangement = self.arrangement(day.year)
        if day in arrangement.makeup_workdays:
            return True
        if day in arrangement.rest_weekdays:
            return False
        if self._fixed_by_next_notice(day) and day in self.arrangement(day.year + 1).rest_weekdays:
            return False  # an estimated bridging day before next New Year's Day
        return day.weekday() < 5

    def day_status(self, day: date) -> CalendarStatus:
        """How sure the calendar is about `day`: its year's status, and in late December also the next year's."""
        status = self.status(day.year)
        if self._fixed_by_next_notice(day):
            return weakest([status, self.status(day.year + 1)])
        return status

    @staticmethod
    def _fixed_by_next_notice(day: date) -> bool:
        return day.month == 12 and day.day > 31 - DECEMBER_DAYS_THE_NEXT_NOTICE_FIXES

    def nth_working_day_after(self, day: date, n: int) -> tuple[date, CalendarStatus]:
        """The n-th working day strictly after `day` (n >= 1), and how sure the answer is.

        Only the days counted (after `day`, up to the answer) decide how sure: a receipt
        on 2018-12-28 counts days the 2019 notice fixed and is official.
        """
        return self._remembered(("after", day, n), lambda: self._nth_working_day_after(day, n))

    def _nth_working_day_after(self, day: date, n: int) -> tuple[date, CalendarStatus]:
        if n < 1:
            raise ValueError("n must be at least 1")
        statuses = []
        current, counted = day, 0
        while counted < n:
            current += timedelta(days=1)
            statuses.append(self.day_status(current))
            if self.is_working_day(current):
                counted += 1
        return current, weakest(statuses)

    def nth_working_day_before(self, day: date, n: int) -> date:
        """The n-th working day strictly before `day` (n >= 1)."""
        return self._remembered(("before", day, n), lambda: self._nth_working_day_before(day, n))

    def _nth_working_day_before(self, day: date, n: int) -> date:
        if n < 1:
            raise ValueError("n must be at least 1")
        current, counted = day, 0
        while counted < n:
            current -= timedelta(days=1)
            if self.is_working_day(current):
                counted += 1
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; 0 when end <= start."""
        return self._remembered(("between", start, end), lambda: self._working_days_between(start, end))

    def _working_days_between(self, start: date, end: date) -> int:
        count, current = 0, start
        while current < end:
            current += timedelta(days=1)
            if self.is_working_day(current):
                count += 1
        return count

    def local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.tz).date()

    def start_of_day(self, day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=self.tz)

    def end_of_day(self, day: date, cutoff: time | None = None) -> datetime:
        """The last instant of `day` (or its cut-off time) in this calendar's zone."""
        if cutoff is not None:
            return datetime.combine(day, cutoff, tzinfo=self.tz)
        return datetime.combine(day, time(23, 59, 59), tzinfo=self.tz)

    def year_summary(self, year: int) -> dict:
        arrangement = self.arrangement(year)
        return {
            "year": year,
            "calendar": arrangement.status.value,
            "weekday_rest_days": sorted(d.isoformat() for d in arrangement.rest_weekdays),
            "makeup_workdays": sorted(d.isoformat() for d in arrangement.makeup_workdays),
        }

    def known_years(self, around: int) -> dict[int, CalendarStatus]:
        """Status of every year from the first official one to `around` + 1: what `shortage-watch calendar` lists."""
        last = max(around + 1, max(self._overrides, default=around))
        return {y: self.status(y) for y in range(FIRST_OFFICIAL_YEAR, last + 1)}
