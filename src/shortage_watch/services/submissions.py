"""What a web account hands in (a form, an upload, an API call): one ingest transaction each.

The bytes go through `store_payload` like every other source (archived, parsed,
validated, stored, told to the ledger), refusing records of another distributor as
row errors; the arrival is linked to the account, audited, and answered with a receipt
per stored record. An API call with an Idempotency-Key stores its answer in the same
transaction, so a repeat (or a racing twin) gets the first answer and stores nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from shortage_watch.domain.accounts import record_outside_party
from shortage_watch.domain.obligations import case_number
from shortage_watch.services.accounts import WebUser
from shortage_watch.services.alerts import audit
from shortage_watch.services.ingest import IngestDeps, IngestResult, store_payload
from shortage_watch.store.portal_queries import RecordReceipt, receipts_of_arrival
from shortage_watch.store.tables import WebSubmission
from shortage_watch.store.web_submissions import claim_idempotency_key

SOURCES = {"form": "portal", "upload": "portal", "correction": "portal", "api": "api"}


@dataclass
class Submission:
    """The ingest result of one arrival and the receipts of the records it stored."""

    result: IngestResult
    receipts: list[RecordReceipt]

    def as_json(self, tz: ZoneInfo) -> dict[str, Any]:
        """`submit --json`'s answer plus `warnings` and a receipt per stored record (deadline in +08:00)."""
        return {
            **self.result.as_json(),
            "warnings": list(getattr(self.result, "warnings", [])),
            "receipts": [receipt_json(r, tz) for r in self.receipts],
        }


def receipt_json(receipt: RecordReceipt, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "kind": receipt.kind,
        "id": receipt.record_id,
        "version": receipt.version,
        "obligation": case_number("O", receipt.obligation_id) if receipt.obligation_id else None,
        "obligation_state": receipt.obligation_state,
        "due_on": receipt.due_on.isoformat() if receipt.due_on else None,
        "due_at": receipt.due_at.astimezone(tz).isoformat() if receipt.due_at else None,
    }


def _store(session: Session, ingest: IngestDeps, user: WebUser, *, content: bytes, name: str, kind: str, channel: str,
           now: datetime, reason: str | None, format: str | None) -> Submission:
    if user.party_code is None:
        raise ValueError("only an account with a party code hands in records")
    party = user.party_code
    result = store_payload(session, ingest, source=SOURCES[channel], name=name, content=content, kind=kind, now=now,
                           format=format, admit=lambda record, row: record_outside_party(record, party, row))
    assert result.receipt_id is not None
    session.add(WebSubmission(account_id=user.id, receipt_id=result.receipt_id, channel=channel, reason=reason,
                              created_at=now))
    audit(session, at=now, actor=user.actor, entity="receipt", entity_id=result.receipt_id, action="submitted",
          detail={"channel": channel, "status": result.status, "accepted": result.accepted,
                  "rejected": result.rejected, "reason": reason})
    session.flush()
    return Submission(result, receipts_of_arrival(session, result.receipt_id, party))


def submit(ingest: IngestDeps, user: WebUser, *, content: bytes, name: str, kind: str, channel: str, now: datetime,
           reason: str | None = None, format: str | None = None) -> Submission:
    """Store one arrival of `user`'s (channel: form | upload | correction | api) in one transaction."""
    with ingest.sessions.begin() as session:
        return _store(session, ingest, user, content=content, name=name, kind=kind, channel=channel, now=now,
                      reason=reason, format=format)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


IDEMPOTENCY_MISMATCH = ("同一 Idempotency-Key 已用于不同的请求 / "
                        "this Idempotency-Key was used for a different request")


def request_fingerprint(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8", "replace"))
        digest.update(b"\x00")
    return digest.hexdigest()


def submit_once(ingest: IngestDeps, user: WebUser, *, key: str, fingerprint: str, content: bytes, name: str, kind: str,
                now: datetime, format: str | None,
                answer: Callable[[Submission, ZoneInfo], tuple[int, dict[str, Any]]]) -> Answer:
    """Store an API arrival at most once per (account, Idempotency-Key); `answer(submission) -> (status, body)`.

    A repeat with the same request gets the first answer (`replayed`), one with a different
    request 422, and nothing is stored twice.
    """
    with ingest.sessions.begin() as session:
        # The key first: of two requests with one key, exactly one stores (see claim_idempotency_key).
        claimed = claim_idempotency_key(session, user.id, key, fingerprint, now)
        if claimed.status_code != 0:
            if claimed.request_hash != fingerprint:
                return Answer(422, {"error": IDEMPOTENCY_MISMATCH})
            return Answer(claimed.status_code, claimed.response, replayed=True)
        submission = _store(session, ingest, user, content=content, name=name, kind=kind, channel="api", now=now,
                            reason=None, format=format)
        status, body = answer(submission, ingest.timezone)
        claimed.status_code, claimed.response = status, body
        return Answer(status, body)
