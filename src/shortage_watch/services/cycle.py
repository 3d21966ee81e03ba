"""One cycle: poll the sources, sweep the ledger, deliver pending alerts, all as of `now`.

Used by `shortage-watch once [--now]` and by the daemon. Each step commits its own work;
a step that fails is logged and reported, and the next steps still run.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from shortage_watch.services.escalate import SweepResult, sweep

log = logging.getLogger(__name__)


@dataclass
class CycleResult:
    now: datetime
    polled: list[Any] | None = None  # PollOutcome per source; None when polling is not available
    sweep: SweepResult | None = None
    delivered: Any = None  # DeliverResult; None when delivery is not available
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not (self.sweep and self.sweep.failed)


def _optional(module: str, name: str) -> Callable[..., Any] | None:
    """A service another part provides, or None (logged) when it is not installed."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        log.warning("cycle: %s.%s is not available; that step is skipped", module, name)
        return None


def run_cycle(app: Any, now: datetime) -> CycleResult:
    """poll_sources → sweep → deliver_due at `now`; returns what each step did."""
    result = CycleResult(now=now)
    poll_sources = _optional("shortage_watch.services.ingest", "poll_sources")
    if poll_sources is not None:
        try:
            result.polled = list(poll_sources(app, now))
        except Exception as exc:  # poll_sources promises not to raise; a cycle survives if it does
            log.exception("cycle: polling failed")
            result.errors.append(f"poll: {type(exc).__name__}: {exc}")
    try:
        result.sweep = sweep(app, now)
    except Exception as exc:
        log.exception("cycle: sweep failed")
        result.errors.append(f"sweep: {type(exc).__name__}: {exc}")
    deliver_due = _optional("shortage_watch.services.deliver", "deliver_due")
    if deliver_due is not None:
        try:
            result.delivered = deliver_due(app, now)
        except Exception as exc:
            log.exception("cycle: delivery failed")
            result.errors.append(f"deliver: {type(exc).__name__}: {exc}")
    return result
