"""The mail and the audit trail of one obligation or case: what every detail view (the officer
commands' `show`, the dashboard's detail pages) lists under the matter."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from shortage_watch.store.tables import Alert, AuditEvent


def obligation_alerts(session: Session, obligation_id: int) -> list[Alert]:
    """The alerts about the obligation, in the order written (ledger time, then id)."""
    return list(session.scalars(select(Alert).where(Alert.obligation_id == obligation_id).order_by(Alert.created_at, Alert.id)))


def case_alerts(session: Session, case_id: int) -> list[Alert]:
    """The alerts about the case, in the order written (ledger time, then id)."""
    return list(session.scalars(select(Alert).where(Alert.case_id == case_id).order_by(Alert.created_at, Alert.id)))


def audit_trail(session: Session, entity: str, entity_id: int) -> list[AuditEvent]:
    """The audit events of one `entity` ("obligation", "case") row, in time order."""
    return list(session.scalars(select(AuditEvent).where(AuditEvent.entity == entity, AuditEvent.entity_id == entity_id)
                                .order_by(AuditEvent.at, AuditEvent.id)))
