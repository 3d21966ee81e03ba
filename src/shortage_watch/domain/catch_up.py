"""Catching up without replaying the ladder: which due firings are mailed, to whom, and which are skipped.

A matter that reaches the ledger late (a backlog, a notice received long ago) or a sweep
after the daemon was down finds several levels due at once. Mailing each of them would
replay the ladder in one second, every mail claiming an earlier step had happened. Instead
each recipient gets one message: the latest level addressed to them; the earlier levels
are skipped for that recipient (and audited). A reminder whose moment passed after the
deadline is never mailed. Which earlier steps a message may say happened is decided from
what was actually sent (`steps_sent_before`), never from the ladder alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Callable, Iterable, Sequence

from shortage_watch.domain.policy import Firing


@dataclass(frozen=True)
class Delivery:
    """One message to write: `firing` to `recipient`, standing for the `skipped` firings to that recipient."""

    firing: Firing
    recipient: str
    skipped: tuple[Firing, ...]
    late: bool  # the firing's moment fell on an earlier day than now: it is being caught up


@dataclass(frozen=True)
class Skip:
    """A firing not mailed to `recipients` (all of its recipients when it is never sent)."""

    firing: Firing
    recipients: tuple[str, ...]
    reason: str  # "superseded": a later level reaches the same recipient now; "after_deadline": a reminder too late


@dataclass(frozen=True)
class Plan:
    deliveries: tuple[Delivery, ...]
    skips: tuple[Skip, ...]

    def mailed_names(self) -> list[str]:
        """The levels mailed to at least one recipient."""
        return list(dict.fromkeys(delivery.firing.name for delivery in self.deliveries))

    def skipped_names(self) -> list[str]:
        """The levels not mailed to every recipient they name (some may be mailed to others)."""
        return list(dict.fromkeys(skip.firing.name for skip in self.skips))


def plan_deliveries(
    due: Sequence[tuple[Firing, Sequence[str]]],
    *,
    stale: Iterable[int] = (),
    today_starts: datetime,
) -> Plan:
    """Decide, for firings due at once (in ladder order, each with its routed recipient keys), what is mailed.

    Each recipient gets only the last firing of the batch addressed to it; a firing whose step
    is in `stale` (a reminder whose moment passed after the deadline) is never mailed. A delivery
    is `late` when its firing's moment lies before `today_starts` (the start of the local day).
    """
    stale_steps = set(stale)
    last_for: dict[str, int] = {}
    for index, (firing, recipients) in enumerate(due):
        if firing.step in stale_steps:
            continue
        for key in recipients:
            last_for[key] = index
    deliveries: list[Delivery] = []
    skips: list[Skip] = []
    for index, (firing, recipients) in enumerate(due):
        if firing.step in stale_steps:
            skips.append(Skip(firing, tuple(recipients), "after_deadline"))
            continue
        superseded = tuple(key for key in recipients if last_for[key] != index)
        if superseded:
            skips.append(Skip(firing, superseded, "superseded"))
        for key in recipients:
            if last_for[key] == index:
                earlier = tuple(f for f, keys in due[:index] if key in keys)
                deliveries.append(Delivery(firing, key, earlier, firing.at < today_starts))
    return Plan(tuple(deliveries), tuple(skips))


def steps_sent_before(
    sent: Iterable[tuple[str, datetime]],
    today: date,
    local_date: Callable[[datetime], date],
    working_days_between: Callable[[date, date], int],
) -> dict[str, str]:
    """Template name -> local date (ISO) it was first mailed, for steps mailed at least one working day before `today`.

    Only these may be stated as having happened ("书面提醒后仍未报告"): a step written in the
    same moment, skipped, or still waiting in the outbox has not reached anyone yet.
    """
    first: dict[str, date] = {}
    for template, sent_at in sent:
        day = local_date(sent_at)
        if working_days_between(day, today) >= 1 and (template not in first or day < first[template]):
            first[template] = day
    return {template: day.isoformat() for template, day in sorted(first.items())}


def first_uncounted_day(today: date, is_working_day: Callable[[date], bool], working_day_before: Callable[[date], date]) -> date:
    """The first day whose mail `steps_sent_before` does not count on `today`: the last working day up to
    `today`. Mail of any earlier day has had that working day to arrive; of this day or later, none."""
    return today if is_working_day(today) else working_day_before(today)
