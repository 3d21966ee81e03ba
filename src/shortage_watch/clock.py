"""The one place that reads the system clock.

Everything else takes `now` as a parameter; the CLI's `--now` swaps in a FixedClock.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, as an aware UTC datetime."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock stopped at one instant (used by `--now` and by tests)."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._at

    def advance_to(self, at: datetime) -> None:
        self._at = at.astimezone(timezone.utc)


def utc_now() -> datetime:
    """The real current instant, for I/O timing only (leases, back-off, settle times)."""
    return datetime.now(timezone.utc)
