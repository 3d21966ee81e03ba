"""Read sessions (store/db.py): a reader never takes the write lock, and cannot write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.engine import make_url

from shortage_watch.store.db import make_engine, make_read_sessionmaker, make_sessionmaker
from shortage_watch.store.tables import Lease


def write_from_another_process(url: str) -> None:
    """What another writer (a replica, `submit`) does: BEGIN IMMEDIATE, insert, commit; waits at most 0.2 s."""
    conn = sqlite3.connect(Path(make_url(url).database), timeout=0.2, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO leases (name) VALUES ('written')")
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_a_reader_on_sqlite_does_not_block_a_writer(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with make_read_sessionmaker(engine).begin() as reader:
        assert reader.scalars(select(Lease.name)).all() == []
        write_from_another_process(sqlite_url)  # would raise "database is locked"
        assert reader.scalars(select(Lease.name)).all() == [], "the reader keeps its snapshot"
    with make_read_sessionmaker(engine)() as reader:
        assert reader.scalars(select(Lease.name)).all() == ["written"]
    engine.dispose()


def test_a_writer_session_on_sqlite_does_hold_the_write_lock(sqlite_url: str) -> None:
    """The control for the test above: a write session takes the lock at BEGIN."""
    engine = make_engine(sqlite_url)
    with make_sessionmaker(engine).begin() as writer:
        writer.scalars(select(Lease.name)).all()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            write_from_another_process(sqlite_url)
    engine.dispose()


def test_a_write_in_a_read_session_fails_and_writers_still_write(db_url: str) -> None:
    engine = make_engine(db_url)
    with pytest.raises(DBAPIError):
        with make_read_sessionmaker(engine).begin() as reader:
            reader.execute(insert(Lease).values(name="sneaky"))
    # The pool hands the same connections to writers: they are writable again.
    with make_sessionmaker(engine).begin() as writer:
        writer.execute(insert(Lease).values(name="honest"))
    with make_read_sessionmaker(engine)() as reader:
        assert reader.scalars(select(Lease.name)).all() == ["honest"]
    engine.dispose()
