"""Reporters that went quiet: a source that delivered nothing, a distributor nobody can mail, a
sentinel hospital that stopped reporting, each for too many working days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol


class Calendar(Protocol):
    def working_days_between(self, start: date, end: date) -> int: ...
    def local_date(self, instant: datetime) -> date: ...


KINDS = ("source", "distributor", "sentinel")


@dataclass(frozen=True)
class QuietReporter:
    kind: str  # source | distributor | sentinel
    code: str
    name: str | None
    since: datetime | None  # last delivery (source, sentinel) or first dead letter (distributor); None: never
    working_days: int | None  # working days quiet; None when it never delivered

    def line(self) -> str:
        """One line for health warnings and logs (English: operators' text)."""
        who = f"{self.kind} {self.code}" + (f" ({self.name})" if self.name else "")
        if self.kind == "distributor":
            return f"{who}: mail dead-lettered for {self.working_days} working day(s) since {self.since:%Y-%m-%d}; nobody receives its reminders"
        if self.since is None:
            return f"{who}: has never delivered anything"
        return f"{who}: nothing for {self.working_days} working day(s), last on {self.since:%Y-%m-%d}"


def quiet_working_days(calendar: Calendar, since: datetime | None, now: datetime, limit: int) -> tuple[bool, int | None]:
    """(quiet?, working days since `since`): quiet when `since` is None or at least `limit` working days ago."""
    if since is None:
        return True, None
    days = calendar.working_days_between(calendar.local_date(since), calendar.local_date(now))
    return days >= limit, days
