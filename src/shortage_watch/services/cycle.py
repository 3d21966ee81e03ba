"""One cycle: poll the sources, sweep the ledger, deliver pending alerts, all as of `now`.

Used by `shortage-watch once [--now]`, the demo and the daemon's catch-up. Each step
commits its own work; a step that fails is logged and reported, and the next steps
still run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from shortage_watch.services.deliver import DeliverDeps, DeliverResult, deliver_due
from shortage_watch.services.escalate import SweepDeps, SweepResult, sweep
from shortage_watch.services.poll import PollDeps, PollOutcome, poll_sources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CycleDeps:
    """What a cycle uses, built by `App.cycle_deps()`: what each of its three steps uses."""

    poll: PollDeps
    sweep: SweepDeps
    deliver: DeliverDeps


@dataclass
class CycleResult:
    now: datetime
    polled: list[PollOutcome] = field(default_factory=list)
    sweep: SweepResult | None = None
    delivered: DeliverResult | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def failed_sources(self) -> list[PollOutcome]:
        return [outcome for outcome in self.polled if outcome.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed_sources and not (self.sweep and self.sweep.failed)


def run_cycle(deps: CycleDeps, now: datetime, *, force_poll: bool = False, wait_for_groups: bool = False) -> CycleResult:
    """poll_sources → sweep → deliver_due at `now`; `force_poll` polls sources whose interval has not passed.

    A cycle of its own (`once`, the demo) is one delivery window: groups go now. The daemon's catch-up
    passes `wait_for_groups` so its groups wait out `mail.group_wait` as its deliver timer's do.
    """
    result = CycleResult(now=now)
    try:
        result.polled = list(poll_sources(deps.poll, now, force=force_poll))
    except Exception as exc:  # poll_sources promises not to raise; a cycle survives if it does
        log.exception("cycle: polling failed")
        result.errors.append(f"poll: {type(exc).__name__}: {exc}")
    try:
        result.sweep = sweep(deps.sweep, now)
    except Exception as exc:
        log.exception("cycle: sweep failed")
        result.errors.append(f"sweep: {type(exc).__name__}: {exc}")
    try:
        result.delivered = deliver_due(deps.deliver, now, wait_for_groups=wait_for_groups)
    except Exception as exc:
        log.exception("cycle: delivery failed")
        result.errors.append(f"deliver: {type(exc).__name__}: {exc}")
    return result
