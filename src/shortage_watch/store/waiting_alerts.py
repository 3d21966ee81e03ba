"""The outbox rows still waiting to be sent about one matter, locked for the transaction that decides on them."""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shortage_watch.store.tables import Alert, Obligation


def waiting_case_alerts_for_update(session: Session, case_id: int, states: Sequence[str]) -> list[Alert]:
    """Alerts in `states` about the case or an obligation it opened, locked (PostgreSQL) until the transaction ends."""
    obligation_ids = select(Obligation.id).where(Obligation.case_id == case_id)
    return list(session.scalars(
        select(Alert)
        .where(Alert.status.in_(list(states)), or_(Alert.case_id == case_id, Alert.obligation_id.in_(obligation_ids)))
        .with_for_update()))


def waiting_obligation_alerts_for_update(session: Session, obligation_id: int, states: Sequence[str]) -> list[Alert]:
    """Alerts in `states` about the obligation, locked (PostgreSQL) until the transaction ends."""
    return list(session.scalars(
        select(Alert).where(Alert.obligation_id == obligation_id, Alert.status.in_(list(states))).with_for_update()))
