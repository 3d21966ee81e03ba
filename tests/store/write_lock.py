"""Another writer holding SQLite's write lock, for tests that show a reader does not need it."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from sqlalchemy.engine import make_url

T = TypeVar("T")


@contextmanager
def write_lock_held(sqlite_url: str) -> Iterator[None]:
    """What a replica storing a long file does meanwhile: `BEGIN IMMEDIATE` on its own connection, held."""
    conn = sqlite3.connect(Path(make_url(sqlite_url).database), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def finishes_within(seconds: float, work: Callable[[], T]) -> T:
    """`work()`'s result, failing when it has not finished in `seconds` (a reader waiting for the
    write lock would wait out SQLite's 30 s busy timeout)."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still waiting after {seconds} s: it took the write lock"
    if failure:
        raise failure[0]
    return outcome[0]
