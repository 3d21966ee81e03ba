"""What the web app keeps of an arrival beside the ingest: the API's idempotency keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shortage_watch.store.bulk import inserter
from shortage_watch.store.tables import IdempotencyKey


def claim_idempotency_key(session: Session, account_id: int, key: str, fingerprint: str, now: datetime) -> IdempotencyKey:
    """The account's row for `key`: written now (status 0, no answer yet) unless it exists already."""
    # Two requests with one key at once: on PostgreSQL the second insert waits for the first
    # transaction and then does nothing; on SQLite the transactions run one after the other
    # (BEGIN IMMEDIATE). Either way exactly one writes the row, and the other reads the
    # first one's committed row (and answer) here.
    values = {"account_id": account_id, "key": key, "request_hash": fingerprint, "status_code": 0, "response": {},
              "created_at": now}
    inserter(session.connection(), IdempotencyKey.__table__, values, if_absent_on=("account_id", "key")).insert([values])
    return session.scalars(select(IdempotencyKey).where(IdempotencyKey.account_id == account_id,
                                                        IdempotencyKey.key == key)).one()
