"""The five-working-day rule (003_c323ed203481ac0b.txt, section 六)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Protocol


class Calendar(Protocol):
    def nth_working_day_after(self, day: date, n: int) -> tuple[date, object]: ...
    def end_of_day(self, day: date, cutoff: time | None = None) -> datetime: ...


@dataclass(frozen=True)
class Deadline:
    received: date
    working_days: int
    due: date
    due_at: datetime
    calendar: str

    def as_json(self) -> dict:
        return {
            "received": self.received.isoformat(),
            "working_days": self.working_days,
            "due": self.due.isoformat(),
            "due_at": self.due_at.isoformat(),
            "calendar": str(self.calendar),
        }


def report_deadline(calendar: Calendar, received: date, working_days: int = 5, cutoff: time | None = None) -> Deadline:
    """Due = the N-th working day strictly after receipt; the receipt day never counts."""
    if working_days < 1:
        raise ValueError("working_days must be at least 1")
    due, status = calendar.nth_working_day_after(received, working_days)
    return Deadline(received, working_days, due, calendar.end_of_day(due, cutoff), str(status))

