"""Reads and the operator's requeue behind `outbox list|retry`: the outbox as people see it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shortage_watch.store.tables import Alert, AuditEvent


@dataclass(frozen=True)
class OutboxListing:
    alerts: list[Alert]  # in the listed states, the soonest due first
    counts: dict[str, int]  # every state's count, listed or not


def list_outbox(session: Session, statuses: Sequence[str], *, limit: int) -> OutboxListing:
    """Alerts in `statuses`, oldest due first (at most `limit`), and how many alerts each state holds."""
    alerts = list(session.scalars(
        select(Alert).where(Alert.status.in_(list(statuses))).order_by(Alert.next_attempt_at, Alert.id).limit(limit)))
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
