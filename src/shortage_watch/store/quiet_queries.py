"""When each reporter last delivered: the reads behind the quiet-reporter checks (services/quiet.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shortage_watch.store.tables import Alert, AuditEvent, RawReceipt, ShortageReport, SourceState


def polled_source_names(session: Session) -> set[str]:
    """Sources that were polled at least once."""
    return set(session.scalars(select(SourceState.name)))


def last_accepted_by_source(session: Session) -> dict[str, datetime]:
    """Per source, when it last delivered a file with an accepted record."""
    return {source: at for source, at in session.execute(
        select(RawReceipt.source, func.max(RawReceipt.received_at)).where(RawReceipt.accepted > 0).group_by(RawReceipt.source))}


def last_sent_to_distributors(session: Session) -> dict[str, datetime]:
    """Per distributor address, when mail to it was last sent."""
    return {email: at for email, at in session.execute(
        select(Alert.recipient_email, func.max(Alert.sent_at))
        .where(Alert.recipient_role == "distributor", Alert.status == "sent")
        .group_by(Alert.recipient_email))}


@dataclass(frozen=True)
class DeadLetter:
    email: str | None
    context: dict[str, Any]
    died_at: datetime


def dead_distributor_mail(session: Session) -> list[DeadLetter]:
    """Distributor alerts that are dead, with when each died (its `dead` audit event)."""
    rows = session.execute(
        select(Alert.recipient_email, Alert.context, AuditEvent.at)
        .join(AuditEvent, (AuditEvent.entity == "alert") & (AuditEvent.entity_id == Alert.id) & (AuditEvent.action == "dead"))
        .where(Alert.recipient_role == "distributor", Alert.status == "dead"))
    return [DeadLetter(email, context, at) for email, context, at in rows]


def last_hospital_reports(session: Session, codes: Collection[str]) -> dict[str, tuple[datetime, str | None]]:
    """Per hospital code, when its latest report was received and a name it gave."""
    if not codes:
        return {}
    rows = session.execute(
        select(ShortageReport.hospital_code, func.max(ShortageReport.received_at), func.max(ShortageReport.hospital_name))
        .where(ShortageReport.hospital_code.in_(list(codes)))
        .group_by(ShortageReport.hospital_code))
    return {code: (at, name) for code, at, name in rows}
