"""store/payloads.py: a payload's bytes are stored whole, once per sha256, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.store.payloads import PAYLOAD_PIECE, archive_payload
from shortage_watch.store.tables import RawPayload

NOW = datetime(2024, 10, 21, 10, 0, 59, 123456, tzinfo=timezone(timedelta(hours=8)))  # Shanghai, to the microsecond


def some_bytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def stored(sessions: sessionmaker[Session]) -> list[tuple[int, int, bytes | None]]:
    with sessions() as session:
        return [tuple(row) for row in session.execute(select(RawPayload.id, RawPayload.size, RawPayload.content)
                                                      .order_by(RawPayload.id))]


@pytest.mark.parametrize("size", [0, 1, PAYLOAD_PIECE - 1, PAYLOAD_PIECE, PAYLOAD_PIECE + 1, 3 * PAYLOAD_PIECE + 17])
def test_archived_bytes_read_back_exactly_around_the_piece_size(sessions: sessionmaker[Session], size: int) -> None:
    content = some_bytes(size)
    with sessions.begin() as session:
        payload_id = archive_payload(session, content, NOW)
    assert stored(sessions) == [(payload_id, size, content)]
    with sessions() as session:
        assert session.get_one(RawPayload, payload_id).first_seen_at == NOW


def test_the_same_bytes_twice_are_stored_once(sessions: sessionmaker[Session]) -> None:
    content, other = some_bytes(PAYLOAD_PIECE + 1), some_bytes(5)
    with sessions.begin() as session:
        first = archive_payload(session, content, NOW)
    with sessions.begin() as session:
        again, different = archive_payload(session, content, NOW), archive_payload(session, other, NOW)
    assert again == first != different
    assert stored(sessions) == [(first, len(content), content), (different, 5, other)]


def test_two_arrivals_of_the_same_bytes_at_once_store_one_row(sessions: sessionmaker[Session]) -> None:
    content = some_bytes(2 * PAYLOAD_PIECE + 3)
    ids: dict[str, int] = {}

    def second() -> None:
        with sessions.begin() as session:
            ids["second"] = archive_payload(session, content, NOW)

    with sessions.begin() as session:
        ids["first"] = archive_payload(session, content, NOW)
        # Not committed yet: the second arrival waits (SQLite: for the write lock; PostgreSQL: for
        # the lock named by the sha256), then finds the first one's row, bytes written.
        thread = threading.Thread(target=second)
        thread.start()
    thread.join(timeout=30)
    assert ids["first"] == ids["second"]
    assert stored(sessions) == [(ids["first"], len(content), content)]


PEAK_OF_ARCHIVING = """
import sys
from datetime import datetime, timezone

from shortage_watch.store.db import make_engine, make_sessionmaker
from shortage_watch.store.payloads import archive_payload


def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


now = datetime(2024, 10, 21, 2, 0, tzinfo=timezone.utc)
sessions = make_sessionmaker(make_engine(sys.argv[1]))
content = bytes(range(256)) * (int(sys.argv[2]) // 256)
with sessions.begin() as session:  # connected, statements prepared
    archive_payload(session, b"warm", now)
before = peak_kb()
with sessions.begin() as session:
    archive_payload(session, content, now)
print((peak_kb() - before) * 1024)
"""


@pytest.mark.slow  # a process of its own, for a peak RSS of its own
def test_archiving_a_large_payload_never_copies_its_bytes(db_url: str) -> None:
    size = 40 * 1024 * 1024
    # VmHWM: the copies were made in C (sqlite3, SQLite, libpq), where tracemalloc does not look.
    child = subprocess.run([sys.executable, "-c", PEAK_OF_ARCHIVING, db_url, str(size)],
                           capture_output=True, text=True, check=True)
    growth = int(child.stdout)
    # Bound as one parameter, the bytes were copied: the peak grew by 2.0 times their size on SQLite,
    # 1.0 times on PostgreSQL. Handed over a piece at a time, it grows by a few pieces at most.
    assert growth < 0.1 * size, (growth, size)
