"""The mail and the audit trail of one obligation or case: what every detail view (the officer
commands' `show`, the dashboard's detail pages) lists under the matter."""

from __future__ import annotations

from typing import Collection

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import Session

from shortage_watch.store.tables import Alert, AuditEvent


def addressed_within(regions: Collection[str] | None) -> ColumnElement[bool]:
    """Alerts an officer of `regions` may read (every alert when None): mail to the matter's distributor,
    and mail to a bureau (or operations) of those regions. Mail up the ladder to a city or the province
    is that bureau's correspondence, not its counties'."""
    if regions is None:
        return true()
    return or_(Alert.recipient_role == "distributor", Alert.recipient_region.in_(list(regions)))


def obligation_alerts(session: Session, obligation_id: int, regions: Collection[str] | None = None) -> list[Alert]:
    """The alerts about the obligation (those addressed within `regions`), in the order written (ledger time, then id)."""
    return list(session.scalars(select(Alert).where(Alert.obligation_id == obligation_id, addressed_within(regions))
                                .order_by(Alert.created_at, Alert.id)))


def case_alerts(session: Session, case_id: int, regions: Collection[str] | None = None) -> list[Alert]:
    """The alerts about the case (those addressed within `regions`), in the order written (ledger time, then id)."""
    return list(session.scalars(select(Alert).where(Alert.case_id == case_id, addressed_within(regions))
                                .order_by(Alert.created_at, Alert.id)))


def audit_trail(session: Session, entity: str, entity_id: int) -> list[AuditEvent]:
    """The audit events of one `entity` ("obligation", "case") row, in time order."""
    return list(session.scalars(select(AuditEvent).where(AuditEvent.entity == entity, AuditEvent.entity_id == entity_id)
                                .order_by(AuditEvent.at, AuditEvent.id)))
