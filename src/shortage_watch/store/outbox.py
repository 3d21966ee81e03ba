"""The outbox's rows: as the sender sees them (which are due, what a claimed row carries, each
send's outcome written back) and as people see them (`outbox list|retry`: listings, the
operator's requeue). Claiming, renewing and handing rows back is store/claims.py's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence

from sqlalchemy import ColumnElement, Connection, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from shortage_watch.store.tables import Alert, AuditEvent, RawReceipt, UTCDateTime

# Ordering of the sender's claims: oldest due first.
DUE_ORDER = (Alert.next_attempt_at, Alert.id)

# A file still being stored this long after it arrived has stopped (its process died; it resumes when
# read again, under a later `now`): the alerts it wrote go without waiting for the rest of it.
FILE_HOLD_LIMIT = timedelta(hours=1)


def written_by_a_file_being_stored(now: datetime) -> ColumnElement[bool]:
    """The alert was written by a file whose later rows are still being stored (its receipt says 'received';
    the alerts a file writes carry the file's `now`, its receipt's `received_at`), up to FILE_HOLD_LIMIT.

    A large file commits a chunk at a time and the sender runs beside it: without this, each
    recipient got one message per delivery tick while the file was stored (a 100,000-notice
    backlog takes a minute or more; deliver runs every 30 s), instead of one listing the file's items.
    """
    storing = select(RawReceipt.received_at).where(RawReceipt.status == "received", RawReceipt.received_at > now - FILE_HOLD_LIMIT)
    return Alert.created_at.in_(storing)


def pending_and_due(now: datetime) -> ColumnElement[bool]:
    """Pending, due at ledger time `now`, and not waiting for the rest of the file that wrote it."""
    return and_(Alert.status == "pending", Alert.next_attempt_at <= now, ~written_by_a_file_being_stored(now))


def due_alerts(now: datetime, real_now: datetime) -> ColumnElement[bool]:
    """An alert the sender may claim: pending and due at ledger time `now` (`pending_and_due`), or left
    'sending' by a sender whose lease ran out (real clock) — a process that died mid-batch."""
    return or_(
        pending_and_due(now),
        and_(Alert.status == "sending", Alert.lease_until < real_now),
    )


def alerts_by_id(session: Session, ids: Iterable[int]) -> dict[int, Alert]:
    """The alert rows of `ids`, by id."""
    ids = list(ids)
    return {row.id: row for row in session.scalars(select(Alert).where(Alert.id.in_(ids)))} if ids else {}


def write_outcomes(session: Session, owner: str, outcomes: list[dict[str, Any]]) -> None:
    """Write each unsent outcome (`id` and the row's new `status`, `attempts`, `next_attempt_at`,
    `last_error`) to its row, still held by `owner`, and hand the row back; one statement for the batch.
    A `next_attempt_at` of None keeps the row's time (dead rows are never due again)."""
    if not outcomes:
        return
    table = Alert.__table__
    # Only rows this owner still holds change: one another sender re-claimed after our lease
    # ran out is its own now, and its outcome stands.
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.status == "sending", table.c.lease_owner == bindparam("b_owner"))
        .values(
            status=bindparam("v_status"), attempts=bindparam("v_attempts"), sent_at=None, message_id=None,
            next_attempt_at=func.coalesce(bindparam("v_next_attempt_at", type_=UTCDateTime()), table.c.next_attempt_at),
            last_error=bindparam("v_last_error"), lease_owner=None, lease_until=None,
        ),
        [{"b_id": o["id"], "b_owner": owner, **{f"v_{k}": v for k, v in o.items() if k != "id"}} for o in outcomes],
    )


def mark_sent(session: Session | Connection, alert_id: int, message_id: str | None, tries: int, real_now: datetime) -> bool:
    """Record one alert sent, whoever holds its claim now; False when it already was."""
    # Claim, then check: exactly one row changes unless another sender recorded it sent first.
    table = Alert.__table__
    return session.execute(
        update(table)
        .where(table.c.id == alert_id, table.c.status != "sent")
        .values(status="sent", attempts=tries, sent_at=real_now, message_id=message_id,
                last_error=None, lease_owner=None, lease_until=None)
    ).rowcount == 1


def audit_dead(session: Session, alert_id: int, owner: str, error: str, real_now: datetime) -> None:
    """Note in the audit trail that an alert went dead, and why."""
    session.add(AuditEvent(at=real_now, actor=owner, entity="alert", entity_id=alert_id, action="dead", detail={"error": error}))


# ---- as people see it: `outbox list|retry` ---------------------------------------------------


@dataclass(frozen=True)
class OutboxListing:
    alerts: list[Alert]  # in the listed states, the soonest due first
    counts: dict[str, int]  # every state's count, listed or not


def list_outbox(session: Session, statuses: Sequence[str], *, limit: int) -> OutboxListing:
    """Alerts in `statuses`, oldest due first (at most `limit`), and how many alerts each state holds."""
    alerts = list(session.scalars(
        select(Alert).where(Alert.status.in_(list(statuses))).order_by(*DUE_ORDER).limit(limit)))
    counts = {status: n for status, n in session.execute(select(Alert.status, func.count()).group_by(Alert.status))}
    return OutboxListing(alerts, counts)


def dead_alert_ids(session: Session) -> list[int]:
    return list(session.scalars(select(Alert.id).where(Alert.status == "dead")))


def requeue_alerts(session: Session, ids: Sequence[int], *, now: datetime, audit_at: datetime, actor: str) -> None:
    """Make the alerts due at `now` with fresh attempts, and audit each as requeued by `actor`."""
    if not ids:
        return
    # Only rows still dead/pending: a sender may have claimed one meanwhile.
    session.execute(
        update(Alert)
        .where(Alert.id.in_(list(ids)), Alert.status.in_(("dead", "pending")))
        .values(status="pending", attempts=0, next_attempt_at=now, last_error=None, lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    for alert_id in ids:
        session.add(AuditEvent(at=audit_at, actor=actor, entity="alert", entity_id=alert_id, action="requeued", detail=None))
