"""China's working-day calendar: statutory holidays, weekend make-up days (调休), overrides.

Years 2019 onward whose arrangement the `holidays` library carries are *official*.
An operator can add or correct a year with a TOML file in `calendar.overrides_dir`
the day the State Council publishes it (*override*). Any other year is computed from
weekends alone, marked *estimated*, and logged as a warning: never silently.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

log = logging.getLogger(__name__)

# The library carries arrangements from 2001; we vouch (by pinned tests) for 2019 on.
FIRST_VOUCHED_YEAR = 2019


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


def official_arrangement(year: int) -> YearArrangement | None:
    """The State Council arrangement for `year` as the holidays library carries it, if known."""
    if year < FIRST_VOUCHED_YEAR:
        return None
    cn = holidays.China(years=year)
    makeup = frozenset(d for d in cn.weekend_workdays if d.year == year)
    # The library computes statutory holidays for any year, but only a published
    # notice brings make-up days; no make-up day means no notice is known yet.
    if not makeup:
        return None
    rest = frozenset(d for d in cn if d.year == year and d.weekday() < 5)
    return YearArrangement(year, CalendarStatus.OFFICIAL, rest, makeup, f"holidays {holidays.__version__}")


def estimated_arrangement(year: int) -> YearArrangement:
    return YearArrangement(year, CalendarStatus.ESTIMATED, frozenset(), frozenset(), "weekends only")


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
                "calendar year %s has no official arrangement; working days are estimated "
                "from weekends only (add config override when the State Council publishes it)",
                year,
            )
        self._years[year] = arrangement
        return arrangement

    def status(self, year: int) -> CalendarStatus:
        return self.arrangement(year).status

    def is_working_day(self, day: date) -> bool:
        arrangement = self.arrangement(day.year)
        if day in arrangement.makeup_workdays:
            return True
        if day in arrangement.rest_weekdays:
            return False
        return day.weekday() < 5

    def nth_working_day_after(self, day: date, n: int) -> tuple[date, CalendarStatus]:
        """The n-th working day strictly after `day` (n >= 1), and how sure the answer is."""
        if n < 1:
            raise ValueError("n must be at least 1")
        statuses = [self.status(day.year)]
        current, counted = day, 0
        while counted < n:
            current += timedelta(days=1)
            statuses.append(self.status(current.year))
            if self.is_working_day(current):
                counted += 1
        return current, weakest(statuses)

    def nth_working_day_before(self, day: date, n: int) -> date:
        """The n-th working day strictly before `day` (n >= 1)."""
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
        """Status of every year from 2019 to `around` + 1: what `shortage-watch calendar` lists."""
        last = max(around + 1, max(self._overrides, default=around))
        return {y: self.status(y) for y in range(FIRST_VOUCHED_YEAR, last + 1)}
