"""Raw payloads and their receipts: the bytes that arrived, stored once per sha256, and one receipt
per arrival saying how far its rows were stored and what came of them."""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

from sqlalchemy import func, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from shortage_watch.store.tables import RawPayload, RawReceipt

# Bytes of a payload handed to the database at a time (see `archive_payload`).
PAYLOAD_PIECE = 1 << 20
# PostgreSQL's binary COPY: a signature, no flags, no header extension; then per row its number of
# fields and each field's length and bytes; -1 after the last row.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)
PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)  # a binary timestamptz counts microseconds from it


def payload_digest(content: bytes) -> str:
    """The sha256 a payload is stored (and recognised) by."""
    return hashlib.sha256(content).hexdigest()


def archive_payload(session: Session, content: bytes, now: datetime) -> int:
    """The id of the stored payload with these bytes; stores them once per sha256.

    The bytes reach the database a piece at a time, never copied whole: bound as one parameter they
    were (a 150 MB file peaked 287 MB above its parse on SQLite, 143 MB on PostgreSQL).
    """
    digest = payload_digest(content)
    if session.get_bind().dialect.name == "sqlite":
        return _archive_on_sqlite(session, digest, content, now)
    return _archive_on_postgresql(session, digest, content, now)


def _archive_on_sqlite(session: Session, digest: str, content: bytes, now: datetime) -> int:
    # A zeroblob in a row's last column (hence `content` last, migration 0011) is stored as a count
    # of zeros, never built in memory; the bytes then go from `content` into the row's pages through
    # SQLite's incremental blob I/O. Two arrivals of the same bytes: the unique sha256 lets one
    # insert win and the other insert nothing; as SQLite writers hold the write lock from BEGIN,
    # the other finds the row with its bytes written.
    inserted = session.execute(
        sqlite.insert(RawPayload.__table__)
        .values(sha256=digest, size=len(content), first_seen_at=now, content=func.zeroblob(len(content)))
        .on_conflict_do_nothing()
        .returning(RawPayload.id)
    ).scalar()
    if inserted is None:
        return _payload_id(session, digest)
    dbapi_connection = session.connection().connection.dbapi_connection
    with dbapi_connection.blobopen(RawPayload.__tablename__, "content", inserted) as blob:
        for piece in _pieces(content):
            blob.write(piece)
    return inserted


def _archive_on_postgresql(session: Session, digest: str, content: bytes, now: datetime) -> int:
    # COPY takes a row's bytes in pieces, but cannot skip a row whose sha256 is stored already:
    # arrivals of the same bytes take a lock named by the sha256, held to commit, so one stores
    # the row and the other, let in after that commit, finds it.
    session.execute(select(func.pg_advisory_xact_lock(int.from_bytes(bytes.fromhex(digest[:16]), "big", signed=True))))
    stored = session.scalar(select(RawPayload.id).where(RawPayload.sha256 == digest))
    if stored is not None:
        return stored
    sha256, size = digest.encode("ascii"), len(content)
    seen_at = (now - PG_EPOCH) // timedelta(microseconds=1)
    row_start = struct.pack(f"!hi{len(sha256)}siqiqi", 4, len(sha256), sha256, 8, size, 8, seen_at, size)
    cursor = session.connection().connection.dbapi_connection.cursor()
    with cursor.copy("COPY raw_payloads (sha256, size, first_seen_at, content) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(COPY_HEADER + row_start)
        for piece in _pieces(content):
            copy.write(piece)
        copy.write(COPY_TRAILER)
    return _payload_id(session, digest)


def _pieces(content: bytes) -> Iterator[memoryview]:
    whole = memoryview(content)
    return (whole[start:start + PAYLOAD_PIECE] for start in range(0, len(whole), PAYLOAD_PIECE))


def _payload_id(session: Session, digest: str) -> int:
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
