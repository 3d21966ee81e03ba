"""What the retention period lets go: archived payload bytes and sent alerts older than a cutoff."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, update
from sqlalchemy.orm import Session

from shortage_watch.store.tables import Alert, RawPayload, RawReceipt


def drop_old_payload_bytes(session: Session, cutoff: datetime) -> int:
    """Empty the bytes of payloads first seen before `cutoff`, except those of a receipt still
    waiting to be parsed (rows, receipts and parsed records stay); how many were emptied."""
    unparsed = exists().where(RawReceipt.payload_id == RawPayload.id, RawReceipt.status == "received")
    return session.execute(
        update(RawPayload)
        .where(RawPayload.first_seen_at < cutoff, RawPayload.content.is_not(None), ~unparsed)
        .values(content=None)
        .execution_options(synchronize_session=False)
    ).rowcount


def delete_sent_alerts_before(session: Session, cutoff: datetime) -> int:
    """Delete alerts sent before `cutoff` (pending, dead and undeliverable ones stay); how many."""
    return session.execute(
        delete(Alert).where(Alert.status == "sent", Alert.sent_at < cutoff).execution_options(synchronize_session=False)
    ).rowcount
