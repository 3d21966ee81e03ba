"""The outbox rows still waiting to be sent about one matter, locked for the transaction that decides on them."""

from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shortage_watch.store.bulk import updater
from shortage_watch.store.report_rows import expire_loaded
from shortage_watch.store.tables import Alert, Obligation


def waiting_case_alerts_for_update(session: Session, case_id: int, states: Sequence[str]) -> list[Alert]:
    """Alerts in `states` about the case or an obligation it opened, locked (PostgreSQL) until the transaction ends."""
    obligation_ids = select(Obligation.id).where(Obligation.case_id == case_id)
    return list(session.scalars(
        select(Alert)
        .where(Alert.status.in_(list(states)), or_(Alert.case_id == case_id, Alert.obligation_id.in_(obligation_ids)))
        .with_for_update()))


def waiting_obligation_alerts_for_update(session: Session, obligation_ids: Sequence[int], states: Sequence[str]) -> list[tuple[int, int, str]]:
    """(id, obligation_id, level) of the alerts in `states` about any of the obligations, locked (PostgreSQL)
    until the transaction ends; one query."""
    if not obligation_ids:
        return []
    # SQLite keeps no statistics (store/statistics.py) and searched the index on status, reading every waiting
    # alert of the ledger for each chunk (35 ms a chunk of 420 reports at 25,000 waiting); `status || ''` is no
    # indexed column, so each obligation's few alerts are found by ix_alerts_obligation, as PostgreSQL does.
    waiting = (Alert.status + "").in_(list(states))
    return [(alert_id, obligation_id, level) for alert_id, obligation_id, level in session.execute(
        select(Alert.id, Alert.obligation_id, Alert.level)
        .where(Alert.obligation_id.in_(list(obligation_ids)), waiting).with_for_update())]


def set_alert_statuses(session: Session, rows: list[dict[str, Any]]) -> None:
    """Set status and last_error of many alerts (`rows`: id, status, last_error) in one executemany."""
    if not rows:
        return
    updater(session.connection(), Alert.__table__, "id", ("status", "last_error")).update(rows)
    expire_loaded(session, Alert, [row["id"] for row in rows])
