"""The statements of grouped delivery: the due mates of the groups a claim touched, read and taken.

Every function runs in the caller's transaction (commit is the caller's).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from shortage_watch.store import claims
from shortage_watch.store.outbox import written_by_a_file_being_stored
from shortage_watch.store.tables import Alert


def _claimable(now: datetime, real_now: datetime, waiting: str) -> ColumnElement[bool]:
    """A mate may join the claim: due, waiting for its group (its last error is `waiting`, so a group
    that fills up over its wait leaves as one), or left 'sending' by a sender that died (its lease ran out);
    never one waiting for the rest of its file (`written_by_a_file_being_stored`)."""
    return or_(
        and_(Alert.status == "pending", or_(Alert.next_attempt_at <= now, Alert.last_error == waiting),
             ~written_by_a_file_being_stored(now)),
        and_(Alert.status == "sending", Alert.lease_until < real_now),
    )


def lease_until(session: Session, alert_id: int) -> datetime | None:
    """Until when the alert `alert_id` is held."""
    return session.scalar(select(Alert.lease_until).where(Alert.id == alert_id))


def claimable_of(session: Session, emails: Iterable[str | None], taken: set[int], now: datetime, real_now: datetime, waiting: str) -> list[Any]:
    """(id, recipient_email, template, urgent, language) of every claimable alert to `emails` not in `taken`, by id.

    PostgreSQL: SKIP LOCKED leaves rows another sender is claiming right now to it.
    """
    return list(session.execute(
        select(Alert.id, Alert.recipient_email, Alert.template, Alert.urgent, Alert.language)
        .where(_claimable(now, real_now, waiting), Alert.recipient_email.in_(set(emails)), Alert.id.not_in(taken))
        .order_by(Alert.id)
        .with_for_update(skip_locked=True)
    ).all())


def take_mates(session: Session, ids: list[int], owner: str, until: datetime, now: datetime, real_now: datetime, waiting: str) -> list[Alert]:
    """Hold those of `ids` still claimable for `owner` until `until`; the rows taken, by id."""
    taken = claims.take_listed(session, claims.ALERTS, ids, owner, until, real_now, where=[_claimable(now, real_now, waiting)])
    return list(session.scalars(select(Alert).where(Alert.id.in_(taken)).order_by(Alert.id))) if taken else []


def created_at_of(session: Session, ids: Iterable[int]) -> dict[int, datetime]:
    """When each alert of `ids` was written."""
    rows = session.execute(select(Alert.id, Alert.created_at).where(Alert.id.in_(list(ids))))
    return {alert_id: created_at for alert_id, created_at in rows}
