"""Counts behind the Prometheus metrics and the health checks: typed rows, read at scrape or check time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence, TypeVar

from sqlalchemy import ColumnElement, Integer, cast, func, select
from sqlalchemy.orm import Session

from shortage_watch.store.tables import Alert, Heartbeat, Obligation, RawReceipt, RecordVersion, SourceState

Row = TypeVar("Row")


def _per_group(session: Session, row: type[Row], by: Sequence[Any], figures: Sequence[ColumnElement[Any]],
               where: Sequence[ColumnElement[bool]] = ()) -> list[Row]:
    """One `row` per group of the `by` columns: its fields are the group's values, then the `figures`."""
    query = select(*by, *figures).where(*where).group_by(*by)
    return [row(*values) for values in session.execute(query)]


def _total(column: Any) -> ColumnElement[int]:
    return cast(func.coalesce(func.sum(column), 0), Integer)


@dataclass(frozen=True)
class IngestedCount:
    source: str
    kind: str
    versions: int  # record versions stored (new or revised)


def ingested_counts(session: Session) -> list[IngestedCount]:
    return _per_group(session, IngestedCount, (RecordVersion.source, RecordVersion.kind), (func.count(),))


@dataclass(frozen=True)
class ReceiptCount:
    source: str
    status: str
    files: int
    accepted: int  # rows, summed over the files
    duplicates: int
    rejected: int


def receipt_counts(session: Session) -> list[ReceiptCount]:
    """Files and pages received per source and outcome, with the rows they held."""
    return _per_group(session, ReceiptCount, (RawReceipt.source, RawReceipt.status), (
        func.count(), _total(RawReceipt.accepted), _total(RawReceipt.duplicates), _total(RawReceipt.rejected)))


@dataclass(frozen=True)
class SourceFigures:
    name: str
    last_success_at: datetime | None
    consecutive_failures: int
    last_error: str | None


def source_figures(session: Session, *, failed_more_than: int | None = None) -> list[SourceFigures]:
    """Every source's poll record by name; only those that failed more than `failed_more_than` times in a row, if given."""
    query = select(SourceState.name, SourceState.last_success_at, SourceState.consecutive_failures,
                   SourceState.last_error).order_by(SourceState.name)
    if failed_more_than is not None:
        query = query.where(SourceState.consecutive_failures > failed_more_than)
    return [SourceFigures(name, success_at, failures or 0, error) for name, success_at, failures, error in session.execute(query)]


@dataclass(frozen=True)
class StuckReceipt:
    source: str
    name: str
    move_error: str


def stuck_receipts(session: Session) -> list[StuckReceipt]:
    """Files stored but left in their inbox because they could not be moved, oldest first."""
    rows = session.execute(select(RawReceipt.source, RawReceipt.name, RawReceipt.move_error)
                           .where(RawReceipt.move_error.is_not(None)).order_by(RawReceipt.id))
    return [StuckReceipt(source, name, error) for source, name, error in rows]


@dataclass(frozen=True)
class ObligationCount:
    state: str
    level: int
    obligations: int


def obligation_counts(session: Session, *, excluding_states: Sequence[str]) -> list[ObligationCount]:
    """Obligations per state and ladder level, leaving out `excluding_states`."""
    return _per_group(session, ObligationCount, (Obligation.state, Obligation.level), (func.count(),),
                      where=(Obligation.state.not_in(list(excluding_states)),))


@dataclass(frozen=True)
class OutboxCount:
    status: str
    alerts: int
    with_error: int  # whose last send attempt failed


def outbox_counts(session: Session) -> list[OutboxCount]:
    return _per_group(session, OutboxCount, (Alert.status,), (func.count(), func.count(Alert.last_error)))


def dead_alert_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Alert).where(Alert.status == "dead")) or 0


@dataclass(frozen=True)
class Beat:
    replica_id: str
    beat_at: datetime


def heartbeats(session: Session, *, replica: str | None = None, host: str | None = None) -> list[Beat]:
    """The replicas' last heartbeats: of one replica id, or of the replicas on one host, or all."""
    query = select(Heartbeat.replica_id, Heartbeat.beat_at)
    if replica is not None:
        query = query.where(Heartbeat.replica_id == replica)
    elif host is not None:
        query = query.where(Heartbeat.host == host)
    return [Beat(replica_id, at) for replica_id, at in session.execute(query)]
