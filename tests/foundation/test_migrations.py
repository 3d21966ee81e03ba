"""`db upgrade` creates the schema on empty SQLite and PostgreSQL; the migration matches the models."""

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, insert, select, text
from sqlalchemy.exc import IntegrityError

from shortage_watch.cli import main
from shortage_watch.store.db import (
    current_revision,
    downgrade_schema,
    head_revision,
    make_engine,
    schema_is_current,
    upgrade_schema,
)
from shortage_watch.store.tables import Base, RawPayload, RawReceipt

LEDGER_TABLES = {
    "source_state", "raw_payloads", "raw_receipts", "record_versions", "stoppage_notices", "distributor_reports",
    "shortage_cases", "shortage_reports", "obligations", "alerts", "audit_events", "leases", "heartbeats",
}


def test_db_upgrade_creates_sqlite_file_in_wal_mode(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_file = tmp_path / "nested" / "ledger.db"
    path = write_config({"database": {"url": f"sqlite:///{db_file}"}})
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    assert "upgraded to" in capsys.readouterr().out
    engine = make_engine(f"sqlite:///{db_file}")
    assert LEDGER_TABLES <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    assert main(["--config", str(path), "db", "upgrade"]) == 0
    assert "already at" in capsys.readouterr().out
    engine.dispose()


def test_a_sqlite_ledger_checkpoints_its_wal_every_100000_pages_and_cuts_the_file_back_to_64_mb(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 100_000
        assert conn.execute(text("PRAGMA journal_size_limit")).scalar() == 64 * 1024 * 1024
    engine.dispose()


@pytest.mark.postgres
def test_db_upgrade_on_empty_postgresql(pg_database_url: str) -> None:
    engine = make_engine(pg_database_url)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    assert current_revision(engine) is None
    upgrade_schema(engine)
    assert schema_is_current(engine)
    assert LEDGER_TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migration_matches_models(engine) -> None:  # type: ignore[no-untyped-def]
    """Runs on SQLite and PostgreSQL: no difference between the migrated schema and tables.py."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    assert current_revision(engine) == head_revision()


def test_timestamps_round_trip_as_aware_utc(sessions) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime, timedelta, timezone

    from shortage_watch.store.tables import Heartbeat

    shanghai = timezone(timedelta(hours=8))
    at = datetime(2024, 10, 10, 23, 59, 59, tzinfo=shanghai)
    with sessions.begin() as session:
        session.add(Heartbeat(replica_id="r1", host="h", pid=1, started_at=at, beat_at=at, version="t"))
    with sessions() as session:
        row = session.get(Heartbeat, "r1")
        assert row is not None
        assert row.beat_at == at and row.beat_at.tzinfo is not None
        assert row.beat_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(sessions) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime

    from sqlalchemy.exc import StatementError

    from shortage_watch.store.tables import Heartbeat

    with pytest.raises(StatementError, match="naive datetime"):
        with sessions.begin() as session:
            session.add(Heartbeat(replica_id="r2", host="h", pid=1, started_at=datetime(2024, 1, 1),
                                  beat_at=datetime(2024, 1, 1), version="t"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def unmigrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no schema yet: a SQLite file, or a PostgreSQL database of the test's own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("unmigrated_pg_url")


def test_moving_payload_content_last_keeps_the_payloads_and_the_receipts_pointing_at_them(unmigrated_url: str) -> None:
    at = datetime(2024, 10, 8, 2, 0, tzinfo=timezone.utc)
    payloads = [{"id": 7, "sha256": "a" * 64, "size": 3, "content": b"\x00\x01\xff", "first_seen_at": at},
                {"id": 12, "sha256": "b" * 64, "size": 9, "content": None, "first_seen_at": at}]  # pruned
    receipts = [{"id": 1, "source": "inbox", "name": "a.csv", "payload_id": 7, "received_at": at, "status": "accepted",
                 "accepted": 1, "duplicates": 0, "rejected": 0},
                {"id": 2, "source": "feed", "name": "b.json", "payload_id": 12, "received_at": at, "status": "received",
                 "accepted": 0, "duplicates": 0, "rejected": 0}]
    columns = [RawPayload.id, RawPayload.sha256, RawPayload.size, RawPayload.content, RawPayload.first_seen_at]
    engine = make_engine(unmigrated_url)
    upgrade_schema(engine, "0010_officer_accounts")
    with engine.begin() as conn:
        conn.execute(insert(RawPayload.__table__), payloads)
        conn.execute(insert(RawReceipt.__table__), receipts)

    def kept() -> tuple[list[tuple[object, ...]], list[tuple[int, int]]]:
        with engine.connect() as conn:
            return ([tuple(row) for row in conn.execute(select(*columns).order_by(RawPayload.id))],
                    [tuple(row) for row in conn.execute(select(RawReceipt.id, RawReceipt.payload_id).order_by(RawReceipt.id))])

    before = kept()
    assert before == ([tuple(p[c.key] for c in columns) for p in payloads], [(1, 7), (2, 12)])
    upgrade_schema(engine)
    assert kept() == before
    if engine.dialect.name == "sqlite":
        assert [c["name"] for c in inspect(engine).get_columns("raw_payloads")][-1] == "content"
    # Still enforced after the table was rebuilt: a receipt needs its payload, a sha256 is stored once.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(RawReceipt.__table__), {**receipts[0], "id": 3, "payload_id": 99})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(RawPayload.__table__), {**payloads[0], "id": 13})
    downgrade_schema(engine, "0010_officer_accounts")
    assert kept() == before
    if engine.dialect.name == "sqlite":
        assert [c["name"] for c in inspect(engine).get_columns("raw_payloads")][-1] == "first_seen_at"
    engine.dispose()


def test_ended_web_sessions_come_with_0013_and_go_with_its_downgrade(unmigrated_url: str) -> None:
    from shortage_watch.store.tables import EndedWebSession, WebAccount

    at = datetime(2024, 10, 8, 2, 0, tzinfo=timezone.utc)
    engine = make_engine(unmigrated_url)
    upgrade_schema(engine, "0012_receipt_status_index")
    assert "ended_web_sessions" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        conn.execute(insert(WebAccount.__table__), {"id": 1, "name": "D350901", "role": "distributor", "password_hash": "x",
                                                    "must_change_password": False, "disabled": False, "session_epoch": 0,
                                                    "created_at": at, "updated_at": at})
    upgrade_schema(engine, "0013_ended_web_sessions")
    assert {i["name"] for i in inspect(engine).get_indexes("ended_web_sessions")} == {"ix_ended_web_sessions_expires_at"}
    with engine.begin() as conn:
        conn.execute(insert(EndedWebSession.__table__), {"session_id": "a" * 64, "account_id": 1, "ended_at": at, "expires_at": at})
    with pytest.raises(IntegrityError), engine.begin() as conn:  # one row per session
        conn.execute(insert(EndedWebSession.__table__), {"session_id": "a" * 64, "account_id": 1, "ended_at": at, "expires_at": at})
    downgrade_schema(engine, "0012_receipt_status_index")
    assert "ended_web_sessions" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(select(WebAccount.__table__.c.name)).scalars().all() == ["D350901"]
    upgrade_schema(engine)
    assert schema_is_current(engine)
    engine.dispose()
