"""Where an obligation or a shortage case stands, and the moves between states (pure).

The values are stored in the database and shown in audit records, so they never change.
Each transition takes the current state (and what happened) and returns the new state with
the audit entry that records the move; services write both in their transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar


class ObligationState(StrEnum):
    """open until the due instant, overdue strictly after it; then fulfilled, fulfilled late or cancelled."""

    OPEN = "open"
    OVERDUE = "overdue"
    FULFILLED = "fulfilled"
    FULFILLED_LATE = "fulfilled_late"
    CANCELLED = "cancelled"


class CaseState(StrEnum):
    """open; regional once K hospitals report within W days; escalated to the province; resolved."""

    OPEN = "open"
    REGIONAL = "regional"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


# Still owed: the sweep steps these, reports fulfil them, listings count them as open.
OBLIGATION_IN_FLIGHT: tuple[ObligationState, ...] = (ObligationState.OPEN, ObligationState.OVERDUE)
# Done with: nothing more is owed or sent.
OBLIGATION_FINISHED: tuple[ObligationState, ...] = (
    ObligationState.FULFILLED, ObligationState.FULFILLED_LATE, ObligationState.CANCELLED,
)
# Done by a report: it fulfilled them, on time or late.
OBLIGATION_FULFILLED: tuple[ObligationState, ...] = (ObligationState.FULFILLED, ObligationState.FULFILLED_LATE)
# Not resolved: hospitals' reports still join the case.
CASE_ACTIVE: tuple[CaseState, ...] = (CaseState.OPEN, CaseState.REGIONAL, CaseState.ESCALATED)
# On the regional ladder: the sweep steps these.
CASE_ON_LADDER: tuple[CaseState, ...] = (CaseState.REGIONAL, CaseState.ESCALATED)

S = TypeVar("S", ObligationState, CaseState)


@dataclass(frozen=True)
class Transition(Generic[S]):
    """The state after a move, and the audit entry (action and detail) that records it."""

    state: S
    action: str
    detail: dict[str, Any] = field(default_factory=dict)


def obligation_state_at(state: str, due_at: datetime, now: datetime) -> ObligationState:
    """An open obligation becomes overdue strictly after its due instant; an overdue one whose
    deadline moved later is open again; other states stay."""
    current = ObligationState(state)
    if current is ObligationState.OPEN and now > due_at:
        return ObligationState.OVERDUE
    if current is ObligationState.OVERDUE and now <= due_at:
        return ObligationState.OPEN  # a revision moved the deadline later
    return current


def obligation_due(state: str, due_at: datetime, now: datetime) -> Transition[ObligationState] | None:
    """The move the clock makes at `now` (open -> overdue, or back after a later deadline), None when none."""
    new = obligation_state_at(state, due_at, now)
    if new == state:
        return None
    return Transition(new, new.value, {"due_at": due_at.isoformat()})


def obligation_fulfilled(state: str, fulfilled: ObligationState, detail: dict[str, Any]) -> Transition[ObligationState]:
    """A report fulfils the obligation on time or late (`fulfilled`); the audit detail keeps the state it left."""
    if fulfilled not in (ObligationState.FULFILLED, ObligationState.FULFILLED_LATE):
        raise ValueError(f"not a fulfilment: {fulfilled}")
    return Transition(fulfilled, fulfilled.value, {**detail, "was": str(state)})


def obligation_reopened(state: str, owed: ObligationState, detail: dict[str, Any]) -> Transition[ObligationState]:
    """A fulfilled obligation whose report no longer answers it (corrected to another matter) is owed again:
    `owed` is open or overdue as the clock stands; the audit detail keeps the state it left."""
    if state not in OBLIGATION_FULFILLED:
        raise ValueError(f"cannot reopen an obligation that is {state}")
    if owed not in OBLIGATION_IN_FLIGHT:
        raise ValueError(f"not owed: {owed}")
    return Transition(owed, "reopened", {**detail, "was": str(state), "state": owed.value})


def obligation_cancelled(state: str, detail: dict[str, Any]) -> Transition[ObligationState]:
    """An obligation still owed is no longer owed (e.g. a notice explained the shortage)."""
    if state not in OBLIGATION_IN_FLIGHT:
        raise ValueError(f"cannot cancel an obligation that is {state}")
    return Transition(ObligationState.CANCELLED, ObligationState.CANCELLED.value, detail)


def case_regional(state: str, hospitals: int) -> Transition[CaseState]:
    """An open case becomes a regional shortage when `hospitals` hospitals reported it."""
    if state != CaseState.OPEN:
        raise ValueError(f"cannot make a {state} case regional")
    return Transition(CaseState.REGIONAL, CaseState.REGIONAL.value, {"hospitals": hospitals})


def case_escalated(state: str, fired: list[str]) -> Transition[CaseState] | None:
    """A regional case reaching a level at or after its due date is escalated to the province; None when it already is."""
    if state == CaseState.ESCALATED:
        return None
    if state != CaseState.REGIONAL:
        raise ValueError(f"cannot escalate a {state} case")
    return Transition(CaseState.ESCALATED, CaseState.ESCALATED.value, {"fired": fired})


def case_resolved(state: str, note: str | None) -> Transition[CaseState]:
    """An unresolved case is resolved (every part closed, or an officer closed it)."""
    if state == CaseState.RESOLVED:
        raise ValueError("the case is already resolved")
    return Transition(CaseState.RESOLVED, CaseState.RESOLVED.value, {"note": note})
