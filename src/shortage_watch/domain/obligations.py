"""Obligations as pure state: fulfilment on time or late, the next ladder levels, next_action_at.

An obligation is `open` until its due instant, `overdue` strictly after it, and ends
`fulfilled` (report submitted by the due instant), `fulfilled_late` (after it, with the
lateness in working days) or `cancelled` (no longer owed, e.g. explained by a notice).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Any, Callable, Protocol

from shortage_watch.domain.deadline import Deadline
from shortage_watch.domain.policy import OVERDUE_GRACE, Firing, Ladder, schedule
from shortage_watch.domain.states import OBLIGATION_IN_FLIGHT, ObligationState, obligation_state_at


class Calendar(Protocol):
    @property
    def tz(self) -> tzinfo: ...
    def nth_working_day_after(self, day: date, n: int) -> tuple[date, object]: ...
    def nth_working_day_before(self, day: date, n: int) -> date: ...
    def start_of_day(self, day: date) -> datetime: ...
    def local_date(self, instant: datetime) -> date: ...
    def working_days_between(self, start: date, end: date) -> int: ...


@dataclass(frozen=True)
class Fulfilment:
    state: ObligationState  # FULFILLED | FULFILLED_LATE
    late_working_days: int | None


def fulfilment(calendar: Calendar, due_on: date, due_at: datetime, submitted_at: datetime) -> Fulfilment:
    """On time when submitted at or before the due instant; otherwise late by at least one working day.

    Lateness counts the working days after the due date up to the submission's local date;
    a report sent after the cut-off on the due date, or on the rest day after it, is one day late.
    """
    if submitted_at <= due_at:
        return Fulfilment(ObligationState.FULFILLED, None)
    late = calendar.working_days_between(due_on, calendar.local_date(submitted_at))
    return Fulfilment(ObligationState.FULFILLED_LATE, max(1, late))


def overdue_working_days(calendar: Calendar, due_on: date, due_at: datetime, now: datetime) -> int | None:
    """Working days past due at `now` (at least 1 once overdue), or None when not overdue."""
    if now <= due_at:
        return None
    return max(1, calendar.working_days_between(due_on, calendar.local_date(now)))


@dataclass(frozen=True)
class Advance:
    """What the sweep does for one matter at `now`: the firings due, then where it stands."""

    firings: tuple[Firing, ...]
    next_step: int
    next_action_at: datetime | None
    skipped: tuple[Firing, ...] = ()  # reminders whose moment passed unseen after the due instant


def advance(
    calendar: Calendar,
    ladder: Ladder,
    *,
    due_on: date,
    due_at: datetime,
    opened_at: datetime,
    step: int,
    now: datetime,
) -> Advance:
    """The ladder firings numbered `step` and on whose instant is at or before `now`.

    Firings that fell due while several were missed (a replay, a stopped daemon, a
    notice that reached us late) all fire now, oldest first, except reminders before
    the due date once it has passed: "due tomorrow" after the deadline would mislead,
    so those are skipped (and reported). `next_action_at` is the instant of the first
    firing still ahead, None when the ladder is exhausted.
    """
    due: list[Firing] = []
    skipped: list[Firing] = []
    for firing in schedule(calendar, ladder, due_on, due_at, opened_at):
        if firing.step < step:
            continue
        if firing.at <= now:
            stale = firing.level.offset is not None and firing.level.offset < 0 and now > due_at
            (skipped if stale else due).append(firing)
            continue
        return Advance(tuple(due), firing.step, firing.at, tuple(skipped))
    return Advance(tuple(due), step + len(due) + len(skipped), None, tuple(skipped))


def next_action_after_revision(
    calendar: Calendar, ladder: Ladder, *, due_on: date, due_at: datetime, opened_at: datetime, step: int
) -> datetime | None:
    """Where an obligation whose dates changed resumes: the instant of firing `step` under the new dates."""
    for firing in schedule(calendar, ladder, due_on, due_at, opened_at):
        if firing.step >= step:
            return firing.at
    return None


def overdue_check_at(state: str, due_at: datetime, next_action_at: datetime | None) -> datetime | None:
    """When the sweep must next look at an obligation whose dates changed: an open one no later than
    just after its due instant, so it turns overdue on time even when the levels at the due date were
    applied already, on an earlier deadline (an estimated calendar, a revised notice)."""
    if state != ObligationState.OPEN:
        return next_action_at
    overdue_at = due_at + OVERDUE_GRACE
    return overdue_at if next_action_at is None else min(next_action_at, overdue_at)


@dataclass(frozen=True)
class Reopening:
    """Where an obligation owed again stands at `now`: open or overdue, and its next action."""

    state: ObligationState
    next_action_at: datetime | None


def reopening(calendar: Calendar, ladder: Ladder, *, due_on: date, due_at: datetime, opened_at: datetime, step: int,
              now: datetime) -> Reopening:
    """An obligation whose report no longer answers it: open until its due instant, overdue after it, and its
    ladder resumes at level `step` (the levels applied before it was fulfilled stay applied; the sweep fires
    those whose moment passed while it was fulfilled, as it would have)."""
    state = obligation_state_at(ObligationState.OPEN, due_at, now)
    resume = next_action_after_revision(calendar, ladder, due_on=due_on, due_at=due_at, opened_at=opened_at, step=step)
    return Reopening(state, overdue_check_at(state, due_at, resume))


class Dated(Protocol):
    """What re-dating reads of an obligation (an ORM row or a plain one)."""

    state: str
    level: int
    policy: dict[str, Any]
    opened_at: datetime
    due_at: datetime
    calendar_status: str
    next_action_at: datetime | None


@dataclass(frozen=True)
class Redating:
    """An obligation re-dated from a receipt date: the columns it sets, and the audit detail from what to what."""

    received_on: date
    due_on: date
    due_at: datetime
    calendar_status: str
    state: str
    next_action_at: datetime | None
    detail: dict[str, Any]


def redating(calendar: Calendar, obligation: Dated, deadline: Deadline, *, was: date | None, now: datetime, note: str | None = None,
             ladder_of: Callable[[dict[str, Any]], Ladder] = Ladder.from_json) -> Redating:
    """`obligation` due on `deadline` (its receipt `deadline.received`, re-dated: a revised notified_on, or a
    calendar that now knows the due year). Levels already applied stay applied: one in flight is open or
    overdue at `now` on the new due instant and resumes its ladder at its next level under the new dates
    (`overdue_check_at`); a finished one keeps its state and next action. `was`: the receipt date before,
    when known. The audit detail gives both due instants in the calendar's time zone. `ladder_of` reads
    the stored ladder (`policy`)."""
    state, next_action_at = obligation.state, obligation.next_action_at
    if state in OBLIGATION_IN_FLIGHT:
        state = obligation_state_at(state, deadline.due_at, now)
        resume = next_action_after_revision(calendar, ladder_of(obligation.policy), due_on=deadline.due, due_at=deadline.due_at,
                                            opened_at=obligation.opened_at, step=obligation.level)
        next_action_at = overdue_check_at(state, deadline.due_at, resume)
    detail: dict[str, Any] = {
        "notified_on_from": (was or None) and was.isoformat(),
        "notified_on_to": deadline.received.isoformat(),
        # Both in local time: the stored one comes back from the database in UTC.
        "due_at_from": obligation.due_at.astimezone(calendar.tz).isoformat(),
        "due_at_to": deadline.due_at.astimezone(calendar.tz).isoformat(),
        "calendar_from": obligation.calendar_status,
        "calendar_to": deadline.calendar,
    }
    if state != obligation.state:
        detail.update(state_from=obligation.state, state_to=state)
    if note:
        detail["note"] = note
    return Redating(deadline.received, deadline.due, deadline.due_at, deadline.calendar, state, next_action_at, detail)


def report_subject_key(notice_id: str | None, distributor_code: str, product_code: str | None, notified_on: date | None) -> str:
    """What a report obligation is about: the notice to this distributor, or the described notice."""
    if notice_id:
        return f"N:{notice_id}:{distributor_code}"
    return f"P:{distributor_code}:{product_code or ''}:{notified_on.isoformat() if notified_on else ''}"


def explanation_subject_key(case_id: int, distributor_code: str) -> str:
    return f"E:{case_id}:{distributor_code}"


def case_number(kind: str, number: int) -> str:
    """Shown to people: 'SW-O-000123' for an obligation, 'SW-C-000045' for a case."""
    return f"SW-{kind}-{number:06d}"
