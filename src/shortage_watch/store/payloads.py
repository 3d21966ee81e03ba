"""Raw payloads and their receipts: the bytes that arrived, stored once per sha256, and one receipt
per arrival saying how far its rows were stored and what came of them."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shortage_watch.store.tables import RawPayload, RawReceipt


def insert_ignoring_conflict(session: Session, table: Table, values: dict[str, Any]) -> None:
    """Insert one row unless it would break a unique key (then nothing happens)."""
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(dialect_insert(table).values(**values).on_conflict_do_nothing())


def payload_digest(content: bytes) -> str:
    """The sha256 a payload is stored (and recognised) by."""
    return hashlib.sha256(content).hexdigest()


def archive_payload(session: Session, content: bytes, now: datetime) -> int:
    """The id of the stored payload with these bytes; stores them once per sha256."""
    digest = payload_digest(content)
    # Two arrivals of the same bytes at once: the unique sha256 lets one insert win and
    # the other do nothing; both then read the same row.
    insert_ignoring_conflict(
        session, RawPayload.__table__, {"sha256": digest, "size": len(content), "content": content, "first_seen_at": now}
    )
    payload_id = session.scalar(select(RawPayload.id).where(RawPayload.sha256 == digest))
    assert payload_id is not None
    return payload_id


def new_receipt(session: Session, source: str, name: str, payload_id: int, now: datetime) -> RawReceipt:
    """A receipt for one arrival of the payload, nothing stored from it yet."""
    receipt = RawReceipt(source=source, name=name, payload_id=payload_id, received_at=now, status="received",
                         accepted=0, duplicates=0, rejected=0)
    session.add(receipt)
    session.flush()
    return receipt


def resumable_receipt(session: Session, source: str, name: str, content: bytes, now: datetime) -> RawReceipt:
    """The unfinished receipt of these bytes from this source under this name, or a new one."""
    payload_id = archive_payload(session, content, now)
    unfinished = session.scalars(
        select(RawReceipt).where(RawReceipt.source == source, RawReceipt.name == name,
                                 RawReceipt.payload_id == payload_id, RawReceipt.status == "received")
        .order_by(RawReceipt.id.desc()).limit(1)
    ).first()
    return unfinished or new_receipt(session, source, name, payload_id, now)


def record_progress(session: Session, receipt_id: int, *, rows_done: int | None, accepted: int, duplicates: int, rejected: int,
                    errors: list[dict[str, Any]]) -> None:
    """The receipt's rows stored so far (a resumed file starts after `rows_done`) and their counts."""
    session.execute(update(RawReceipt).where(RawReceipt.id == receipt_id).values(
        rows_done=rows_done, accepted=accepted, duplicates=duplicates, rejected=rejected, errors=errors))
