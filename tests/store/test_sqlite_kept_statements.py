"""A SQLite connection keeps a bounded number of prepared statements: the multi-row inserts of a large
file's chunks (a statement per row count) are not all kept for the life of the connection."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.orm import sessionmaker

from shortage_watch.store.bulk import inserter
from shortage_watch.store.db import SQLITE_KEPT_STATEMENTS, make_engine
from shortage_watch.store.tables import AuditEvent

NOW = datetime(2024, 10, 21, 2, 0, tzinfo=timezone.utc)


def test_a_connection_keeps_a_bounded_number_of_prepared_statements(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with sessionmaker(engine).begin() as session:
            connection = session.connection()
            audits = inserter(connection, AuditEvent.__table__, ("at", "actor", "entity", "entity_id", "action", "detail"))
            for rows in range(1, 200, 3):  # the counts a chunk's last rows come in: a statement each
                returned = audits.insert_returning([{"entity_id": i, "detail": {"n": i}} for i in range(rows)], ("id",),
                                                   at=NOW, actor="test", entity="obligation", action="opened")
                assert len(returned) == rows
            # sqlite_stmt: the statements this connection holds prepared.
            kept = connection.exec_driver_sql("SELECT count(*) FROM sqlite_stmt").scalar()
    finally:
        engine.dispose()
    # Python's default kept 76 of them here (up to 128), 5 MB; 1,000-row ones take several times more each.
    assert kept <= SQLITE_KEPT_STATEMENTS + 2, kept
