"""When non-urgent mail to a bureau may go: working hours on working days (Asia/Shanghai)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Protocol


class WorkingDays(Protocol):
    tz: object

    def is_working_day(self, day: date) -> bool: ...
    def nth_working_day_after(self, day: date, n: int) -> tuple[date, object]: ...


def next_working_hours_start(calendar: WorkingDays, now: datetime, start: time, end: time) -> datetime | None:
    """None when `now` is within working hours of a working day, else when they next begin."""
    local = now.astimezone(calendar.tz)  # type: ignore[arg-type]
    today = local.date()
    if calendar.is_working_day(today):
        if start <= local.time() < end:
            return None
        if local.time() < start:
            return datetime.combine(today, start, tzinfo=calendar.tz)  # type: ignore[arg-type]
    next_day, _ = calendar.nth_working_day_after(today, 1)
    return datetime.combine(next_day, start, tzinfo=calendar.tz)  # type: ignore[arg-type]


def working_day_from(calendar: WorkingDays, now: datetime, at: time) -> bool:
    """True on a working day (the official calendar, make-up days included) from local time `at` on.

    The daily jobs (digests, housekeeping) run then: a cron timer fires at `at`, and a daemon
    started later that day still runs them (each is idempotent per day).
    """
    local = now.astimezone(calendar.tz)  # type: ignore[arg-type]
    return calendar.is_working_day(local.date()) and local.time() >= at


def bureau_mail_waits(role: str, urgent: bool) -> bool:
    """Non-urgent mail to insurance or health bureaus waits for working hours.

    Urgent levels go at once. Distributor (and operations) mail also goes at once: a
    receipt or reminder states a deadline that runs in working days, so it must reach
    the company as early as possible, and companies read mail outside office hours.
    """
    return role in ("insurance", "health") and not urgent
