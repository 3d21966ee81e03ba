"""Where each source stands (table `source_state`): its cursor and validators, and how its last polls went.

Who may poll a source (its lease) is store/claims.py's; this module keeps the rest of the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shortage_watch.store import claims
from shortage_watch.store.tables import SourceState

MAX_ERROR = 2000  # the width kept of source_state.last_error


@dataclass(frozen=True)
class FeedPosition:
    """Where the next poll of a feed starts: its cursor, and the validators of the page last read."""

    cursor: str | None = None
    etag: str | None = None
    last_modified: str | None = None


def ensure_source_row(session: Session, name: str) -> None:
    """Create the source's row (no failures yet) unless it exists."""
    claims.ensure_row(session, claims.SOURCES, name, consecutive_failures=0)


def feed_position(session: Session, name: str) -> FeedPosition:
    """The source's stored cursor and validators (all None before its first poll)."""
    state = session.get(SourceState, name)
    if state is None:
        return FeedPosition()
    return FeedPosition(state.cursor, state.etag, state.last_modified)


def source_state_of(session: Session, name: str) -> SourceState | None:
    """The source's row (None before its first poll)."""
    return session.get(SourceState, name)


def source_states(session: Session) -> dict[str, SourceState]:
    """Every source's row, by name."""
    return {state.name: state for state in session.scalars(select(SourceState))}


def record_source_success(session: Session, name: str, real_now: datetime, **values: Any) -> None:
    """The source answered; `values` may add columns (a cursor) or keep a `last_error` note."""
    session.execute(update(SourceState).where(SourceState.name == name).values(
        **{"last_success_at": real_now, "last_error": None, "consecutive_failures": 0, **values}))


def record_source_failure(session: Session, name: str, error: str, real_now: datetime) -> None:
    """The poll failed: keep why, and count it (the next poll backs off)."""
    ensure_source_row(session, name)
    session.execute(update(SourceState).where(SourceState.name == name).values(
        last_error=error[:MAX_ERROR], last_error_at=real_now,
        consecutive_failures=SourceState.consecutive_failures + 1))
