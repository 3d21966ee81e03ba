"""A file's mail waits for the rest of the file: the sender runs beside a large file being stored a
chunk at a time, and each recipient gets one message listing the file's items, not one per tick."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from shortage_watch.services.deliver import deliver_due
from shortage_watch.services.ingest import ingest_payload
from shortage_watch.store.claims import LeaseLost
from shortage_watch.store.outbox import FILE_HOLD_LIMIT

from .test_mail_digests import write_directory
from .test_mail_ledger_integration import notice

SH = ZoneInfo("Asia/Shanghai")
ARRIVED = dt.datetime(2024, 10, 10, 10, 0, tzinfo=SH)  # a Thursday, within working hours
NOTICES = 60  # three chunks at least: a file's first chunk is 20 rows


@pytest.fixture
def app(make_app, tmp_path):
    return make_app(directory=write_directory(tmp_path))


def backlog() -> bytes:
    return json.dumps([notice(f"N{i}", "D1" if i % 2 else "D2", f"P{i}", f"药品{i}", "2024-10-09") for i in range(NOTICES)]).encode()


def ingest(app, now: dt.datetime, *, stop_after_chunks: int | None = None):
    """Store the backlog file; with `stop_after_chunks`, its process loses the inbox lease after that many chunks."""
    transactions = 0

    def renew_lease(session) -> None:
        nonlocal transactions
        transactions += 1  # the receipt's transaction, then one per chunk
        if stop_after_chunks is not None and transactions > stop_after_chunks + 1:
            raise LeaseLost("another replica took the inbox")

    return ingest_payload(app.ingest_deps(), source="inbox", name="存量通知.json", content=backlog(), kind="auto", now=now,
                          in_each_transaction=renew_lease)


def receipts_mailed(tmp_path: Path) -> Counter[str]:
    """Receipt messages by recipient."""
    mailed: Counter[str] = Counter()
    for path in (tmp_path / "mail").glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"].startswith("d"):
            mailed[message["To"]] += 1
    return mailed


def test_a_file_still_being_stored_mails_nothing_then_one_message_per_recipient(app, tmp_path):
    with pytest.raises(LeaseLost):
        ingest(app, ARRIVED, stop_after_chunks=1)  # the first chunk is stored, the rest not yet
    assert deliver_due(app.deliver_deps(), ARRIVED + dt.timedelta(minutes=1)).sent == 0

    result = ingest(app, ARRIVED + dt.timedelta(minutes=2))  # read again: the rest is stored
    assert (result.receipt_id, result.accepted, result.errors) == (1, NOTICES, [])  # the same receipt, resumed
    delivered = deliver_due(app.deliver_deps(), ARRIVED + dt.timedelta(minutes=3))
    assert delivered.sent > 0 and delivered.dead == 0
    assert receipts_mailed(tmp_path) == {"d1@example.com": 1, "d2@example.com": 1}


def test_a_file_that_stopped_being_stored_holds_its_mail_no_longer_than_the_limit(app, tmp_path):
    with pytest.raises(LeaseLost):
        ingest(app, ARRIVED, stop_after_chunks=1)  # and never read again
    assert deliver_due(app.deliver_deps(), ARRIVED + FILE_HOLD_LIMIT - dt.timedelta(minutes=1)).sent == 0
    assert deliver_due(app.deliver_deps(), ARRIVED + FILE_HOLD_LIMIT + dt.timedelta(minutes=1)).sent > 0
    assert receipts_mailed(tmp_path) == {"d1@example.com": 1, "d2@example.com": 1}
