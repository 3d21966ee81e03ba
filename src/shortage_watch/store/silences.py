"""Silence rows and the alerts they hold: every statement the silence service and `silences list` need.

Claims follow the project's rule: an UPDATE whose WHERE still names the old state, and the
caller acts only when it changed exactly one row (another worker won otherwise).
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from shortage_watch.store.tables import Alert, Silence


def active_silences(session: Session, now: datetime) -> list[Silence]:
    """The silences in force at `now` (a handful of rows)."""
    return list(session.scalars(
        select(Silence).where(Silence.released_at.is_(None), Silence.starts_at <= now, Silence.ends_at > now)))


def list_silences(session: Session, *, include_ended: bool) -> list[Silence]:
    """Silences by id: those not yet released, or every one with `include_ended`."""
    query = select(Silence).order_by(Silence.id)
    if not include_ended:
        query = query.where(Silence.released_at.is_(None))
    return list(session.scalars(query))


def held_counts(session: Session) -> dict[int, int]:
    """How many alerts each silence holds now, by silence id."""
    return {silence_id: n for silence_id, n in session.execute(
        select(Alert.silence_id, func.count()).where(Alert.status == "held").group_by(Alert.silence_id))}


def alerts_in_states(session: Session, states: Sequence[str]) -> list[Alert]:
    """The outbox rows in `states`, by id."""
    return list(session.scalars(select(Alert).where(Alert.status.in_(list(states))).order_by(Alert.id)))


def hold_alert(session: Session, alert_id: int, silence_id: int, *, waiting: Sequence[str]) -> bool:
    """Hold the alert for the silence if it is still in a `waiting` state; True when this call held it."""
    changed = session.execute(
        update(Alert).where(Alert.id == alert_id, Alert.status.in_(list(waiting)))
        .values(status="held", silence_id=silence_id).execution_options(synchronize_session=False)
    ).rowcount
    return changed == 1


def ended_silence_ids(session: Session, now: datetime) -> list[int]:
    """Silences that ended by `now` and were not released yet, by id."""
    return list(session.scalars(
        select(Silence.id).where(Silence.released_at.is_(None), Silence.ends_at <= now).order_by(Silence.id)))


def released_with_held_alerts(session: Session) -> list[int]:
    """Silences already released that still hold alerts, by id (through the outbox's status index)."""
    return list(session.scalars(
        select(Alert.silence_id).join(Silence, Silence.id == Alert.silence_id)
        .where(Alert.status == "held", Silence.released_at.is_not(None)).distinct().order_by(Alert.silence_id)))


# An alert in one of these states reached its recipient, is on its way, or will be (held by a silence).
REACHING = ("pending", "sending", "sent", "digest", "digested", "held")


def reaching_alerts_of_matters(session: Session, alerts: Sequence[Alert]) -> list[tuple[str, str, int, str]]:
    """(thread_key, recipient_email, id, level) of every other alert of `alerts`' matters in a `REACHING` state
    (through the outbox's matter indexes)."""
    obligations = {a.obligation_id for a in alerts if a.obligation_id is not None}
    cases = {a.case_id for a in alerts if a.case_id is not None}
    if not (obligations or cases):
        return []
    rows = session.execute(
        select(Alert.thread_key, Alert.recipient_email, Alert.id, Alert.level)
        .where(or_(Alert.obligation_id.in_(obligations), Alert.case_id.in_(cases)), Alert.status.in_(REACHING),
               Alert.id.not_in([a.id for a in alerts]), Alert.recipient_email.is_not(None)))
    return [(thread, email, alert_id, level) for thread, email, alert_id, level in rows]


def claim_release(session: Session, silence_id: int, now: datetime) -> bool:
    """Mark the silence released at `now` unless it already was; True when this call did."""
    claimed = session.execute(
        update(Silence).where(Silence.id == silence_id, Silence.released_at.is_(None))
        .values(released_at=now).execution_options(synchronize_session=False)
    ).rowcount
    return claimed == 1


def held_alerts_for_update(session: Session, silence_id: int) -> list[Alert]:
    """The alerts the silence holds, locked (PostgreSQL) until the transaction ends."""
    return list(session.scalars(
        select(Alert).where(Alert.silence_id == silence_id, Alert.status == "held").order_by(Alert.id).with_for_update()))
