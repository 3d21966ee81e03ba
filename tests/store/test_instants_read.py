"""Instants read back from the ledger: aware UTC, equal to what was stored, and one object for one
stored instant (rows read together share few), whatever number of distinct instants is read."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.store.tables import REMEMBERED_VALUES, AuditEvent

SHANGHAI = timezone(timedelta(hours=8))
OPENED = datetime(2024, 10, 8, 9, 30, 15, 123456, tzinfo=SHANGHAI)


def _audit(at: datetime, entity_id: int) -> AuditEvent:
    return AuditEvent(at=at, actor="test", entity="obligation", entity_id=entity_id, action="opened", detail=None)


def test_one_stored_instant_reads_as_one_aware_utc_object(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all(_audit(OPENED, i) for i in range(50))
        session.add(_audit(OPENED + timedelta(microseconds=1), 50))
    with sessions() as session:
        read = list(session.scalars(select(AuditEvent.at).order_by(AuditEvent.entity_id)))
    assert read[:50] == [OPENED] * 50 and read[50] == OPENED + timedelta(microseconds=1)
    assert all(at.tzinfo == timezone.utc for at in read)
    assert len({id(at) for at in read[:50]}) == 1  # converted once, not once per row
    assert read[50] is not read[0]


def test_more_distinct_instants_than_remembered_all_read_right(sessions: sessionmaker[Session]) -> None:
    count = REMEMBERED_VALUES * 2 + 7  # the reader starts afresh twice on the way
    stored = [OPENED + timedelta(seconds=i) for i in range(count)]
    with sessions.begin() as session:
        session.add_all(_audit(at, i) for i, at in enumerate(stored))
    with sessions() as session:
        for _ in range(2):  # read again: what is still remembered must still be right
            read = list(session.scalars(select(AuditEvent.at).order_by(AuditEvent.entity_id)))
            assert read == stored
            assert all(at.tzinfo == timezone.utc for at in read)
