"""On PostgreSQL a large file's ingest and the sweep run side by side: a chunk being stored locks only
its own rows, so the sweep steps every due obligation while that chunk's transaction is still open."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
from sqlalchemy import func, select

from shortage_watch.services.escalate import sweep
from shortage_watch.services.ingest import ingest_payload
from shortage_watch.store.tables import Alert, Obligation
from tests.ledger.conftest import at
from tests.ledger.test_ledger_in_sets import notice
from tests.ledger.test_sweep import _due_obligations


class HeldOpen:
    """The ledger's listener, holding the first chunk's transaction open (its rows written) until released."""

    def __init__(self, listener) -> None:
        self.listener = listener
        self.written = threading.Event()
        self.release = threading.Event()

    def records_stored(self, session, kind, rows, now) -> None:
        self.listener.records_stored(session, kind, rows, now)
        if not self.written.is_set():
            session.flush()
            self.written.set()
            assert self.release.wait(timeout=120), "never released"

    def record_stored(self, session, kind, row, previous, now) -> None:
        self.listener.record_stored(session, kind, row, previous, now)


@pytest.mark.postgres
def test_the_sweep_steps_every_due_obligation_while_a_chunk_of_a_large_file_is_being_stored(pg_url, make_app):
    app = make_app(pg_url, now="2024-10-21T10:00")
    _due_obligations(app, 2_000)
    now = at("2024-10-21T10:00")  # the file's notices were received in the 40 days before
    deps = app.ingest_deps()
    held = HeldOpen(deps.listener)
    content = json.dumps({"records": [notice(i) for i in range(1_000)]}).encode()
    ingested = []
    ingest = threading.Thread(target=lambda: ingested.append(ingest_payload(
        dataclasses.replace(deps, listener=held), source="test", name="backlog.json", content=content, kind="auto", now=now)))
    ingest.start()
    try:
        assert held.written.wait(timeout=120)
        swept = []
        sweeper = threading.Thread(target=lambda: swept.append(sweep(app.sweep_deps(), now)))
        sweeper.start()
        sweeper.join(timeout=120)
        assert not sweeper.is_alive(), "the sweep waited for the ingest's open transaction"
        assert swept[0].failed == [] and swept[0].obligations == 2_000
    finally:
        held.release.set()
        ingest.join(timeout=300)
    assert ingested and ingested[0].accepted == 1_000, ingested and ingested[0].errors[:3]
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Obligation)) == 3_000
        keys = session.scalars(select(Alert.dedup_key)).all()
    assert len(keys) == len(set(keys)) and len(keys) > 2_000 + 1_000
