"""The receipts of inbox files as the inbox poll needs them: which files are stored but not yet
moved out of the folder, where each stored file went, and why a move failed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shortage_watch.store.tables import RawPayload, RawReceipt


@dataclass(frozen=True)
class StuckFile:
    """A file stored already whose move out of the inbox failed."""

    receipt_id: int
    sha256: str


@dataclass(frozen=True)
class MovedFile:
    receipt_id: int
    moved_to: str  # "archive/<name>" or "rejected/<name>"
    size: int  # bytes read and stored


@dataclass(frozen=True)
class ReceiptOutcome:
    rejected: bool
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]


def stuck_files(session: Session, source: str) -> dict[str, StuckFile]:
    """Files of this source stored but not moved out of the inbox, by name."""
    rows = session.execute(
        select(RawReceipt.id, RawReceipt.name, RawPayload.sha256)
        .join(RawPayload, RawPayload.id == RawReceipt.payload_id)
        .where(RawReceipt.source == source, RawReceipt.move_error.is_not(None))
    ).all()
    return {name: StuckFile(receipt_id, digest) for receipt_id, name, digest in rows}


def move_errors(session: Session, source: str) -> list[tuple[str, str]]:
    """(file name, why it cannot be moved) of each stuck file of this source, oldest first."""
    return [(name, error) for name, error in session.execute(
        select(RawReceipt.name, RawReceipt.move_error)
        .where(RawReceipt.source == source, RawReceipt.move_error.is_not(None)).order_by(RawReceipt.id))]


def recently_moved(session: Session, source: str, limit: int) -> list[MovedFile]:
    """The `limit` files of this source moved out of the inbox last, newest first."""
    return [MovedFile(receipt_id, moved_to, size) for receipt_id, moved_to, size in session.execute(
        select(RawReceipt.id, RawReceipt.moved_to, RawPayload.size)
        .join(RawPayload, RawPayload.id == RawReceipt.payload_id)
        .where(RawReceipt.source == source, RawReceipt.moved_to.is_not(None))
        .order_by(RawReceipt.id.desc()).limit(limit))]


def note_move(session: Session, receipt_id: int, moved_to: str | None, move_error: str | None) -> None:
    """Where the receipt's file went (None: still in the inbox or gone), or why it could not be moved."""
    session.execute(update(RawReceipt).where(RawReceipt.id == receipt_id).values(moved_to=moved_to, move_error=move_error))


def receipt_outcome(session: Session, receipt_id: int) -> ReceiptOutcome:
    """Whether the receipt's file goes to rejected/, with its errors and warnings."""
    receipt = session.get_one(RawReceipt, receipt_id)
    return ReceiptOutcome(receipt.status in ("rejected", "partial"), list(receipt.errors or []), list(receipt.warnings or []))
