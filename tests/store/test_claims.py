"""store/claims.py: one replica holds a row at a time, until its time runs out; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.store import claims
from shortage_watch.store.tables import Lease

NOW = datetime(2024, 10, 8, 2, 0, tzinfo=timezone.utc)
LATER = NOW + timedelta(minutes=5)


def add_jobs(sessions: sessionmaker[Session], *names: str, owner: str | None = None, until: datetime | None = None) -> None:
    with sessions.begin() as s:
        for name in names:
            claims.ensure_row(s, claims.JOBS, name)
            if owner is not None:
                s.get_one(Lease, name).owner, s.get_one(Lease, name).until = owner, until


def holders(sessions: sessionmaker[Session]) -> dict[str, str | None]:
    with sessions() as s:
        return dict(s.execute(select(Lease.name, Lease.owner)).all())


def test_a_held_row_is_refused_until_its_time_runs_out(sessions: sessionmaker[Session]) -> None:
    add_jobs(sessions, "digests", owner="replica-a", until=LATER)
    with sessions.begin() as s:
        assert not claims.take(s, claims.JOBS, "digests", "replica-b", LATER, NOW)
        assert claims.take(s, claims.JOBS, "digests", "replica-a", LATER, NOW, renew_own=True)
        assert not claims.take(s, claims.JOBS, "digests", "replica-a", LATER, NOW), "without renew_own a held row is held"
    with sessions.begin() as s:
        assert claims.take(s, claims.JOBS, "digests", "replica-b", LATER + timedelta(minutes=5), LATER + timedelta(seconds=1))
    assert holders(sessions) == {"digests": "replica-b"}


def test_ensure_row_twice_keeps_one_row_and_its_holder(sessions: sessionmaker[Session]) -> None:
    add_jobs(sessions, "monthly", owner="replica-a", until=LATER)
    add_jobs(sessions, "monthly")
    assert holders(sessions) == {"monthly": "replica-a"}


def test_take_batch_skips_held_rows_and_honours_the_limit_and_order(sessions: sessionmaker[Session]) -> None:
    add_jobs(sessions, "e", "d", "c", "b", "a")
    add_jobs(sessions, "b", owner="replica-x", until=LATER)
    with sessions.begin() as s:
        first = claims.take_batch(s, claims.JOBS, "replica-a", LATER, NOW, where=[], order_by=[Lease.name], limit=2)
    with sessions.begin() as s:
        second = claims.take_batch(s, claims.JOBS, "replica-b", LATER, NOW, where=[Lease.name != "e"],
                                   order_by=[Lease.name.desc()], limit=5)
    assert first == ["a", "c"]
    assert second == ["d"]
    assert holders(sessions) == {"a": "replica-a", "b": "replica-x", "c": "replica-a", "d": "replica-b", "e": None}


@pytest.mark.postgres
def test_concurrent_batches_on_postgresql_are_disjoint_without_waiting(pg_url: str) -> None:
    from shortage_watch.store.db import make_engine, make_sessionmaker

    engine = make_engine(pg_url)
    sessions = make_sessionmaker(engine)
    add_jobs(sessions, "a", "b", "c", "d")
    taken: dict[str, list[str]] = {}
    with sessions.begin() as first:
        taken["first"] = claims.take_batch(first, claims.JOBS, "replica-a", LATER, NOW, where=[], order_by=[Lease.name], limit=2)

        # The first claim is not committed: its rows are locked. SKIP LOCKED lets the second
        # claimer pass them by at once (a thread, so a wait would show as a timeout).
        def second() -> None:
            with sessions.begin() as s:
                taken["second"] = claims.take_batch(s, claims.JOBS, "replica-b", LATER, NOW, where=[], order_by=[Lease.name], limit=2)

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the second claimer waited for the first one's locks"
    engine.dispose()
    assert taken == {"first": ["a", "b"], "second": ["c", "d"]}


def test_renew_and_release_touch_only_the_owners_rows(sessions: sessionmaker[Session]) -> None:
    add_jobs(sessions, "a", "b", owner="replica-a", until=LATER)
    add_jobs(sessions, "c", owner="replica-b", until=LATER)
    later = LATER + timedelta(minutes=5)
    with sessions.begin() as s:
        assert claims.renew(s, claims.JOBS, ["a", "b", "c"], "replica-a", later) == {"a", "b"}
        assert claims.lock_held(s, claims.JOBS, ["a", "c"], "replica-a") == {"a"}
        assert claims.release(s, claims.JOBS, ["a", "c"], "replica-a") == 1
    with sessions() as s:
        rows = {row.name: (row.owner, row.until) for row in s.scalars(select(Lease))}
    assert rows == {"a": (None, None), "b": ("replica-a", later), "c": ("replica-b", LATER)}


def test_take_batch_takes_no_more_than_its_limit_from_many_rows(sessions: sessionmaker[Session]) -> None:
    names = [f"job-{i:03}" for i in range(300)]
    add_jobs(sessions, *names)
    with sessions.begin() as s:
        taken = claims.take_batch(s, claims.JOBS, "replica-a", LATER, NOW, where=[], order_by=[Lease.name], limit=20)
    assert taken == names[:20]
    assert sum(owner == "replica-a" for owner in holders(sessions).values()) == 20


def test_take_listed_takes_only_the_free_rows_named(sessions: sessionmaker[Session]) -> None:
    add_jobs(sessions, "a", "b", "c")
    add_jobs(sessions, "b", owner="replica-x", until=LATER)
    with sessions.begin() as s:
        assert claims.take_listed(s, claims.JOBS, ["a", "b"], "replica-a", LATER, NOW) == {"a"}
    assert holders(sessions) == {"a": "replica-a", "b": "replica-x", "c": None}
