"""Message-IDs are unique per installation: a fresh or reset ledger never reuses an older one's ids."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from sqlalchemy import select

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.services.cycle import run_cycle
from shortage_watch.services.deliver import deliver_due
from shortage_watch.store.db import make_engine, make_sessionmaker, upgrade_schema
from shortage_watch.store.installation import installation_id
from shortage_watch.store.tables import Alert, Installation

from .conftest import mail_settings
from .test_mail_digests import write_directory
from .test_mail_ledger_integration import at, ingest, notice


def fresh_sqlite(folder: Path) -> str:
    url = f"sqlite:///{folder / 'ledger.db'}"
    engine = make_engine(url)
    upgrade_schema(engine)
    engine.dispose()
    return url


def mail_of_one_notice(url: str, folder: Path, smtp_port: int) -> tuple[set[str], set[str]]:
    """Ingest the same notice into the ledger at `url` and send its first mail: (dedup keys, Message-IDs)."""
    folder.mkdir(exist_ok=True)
    settings = mail_settings(url, folder, directory=write_directory(folder), mail={"transport": "smtp"}, smtp={"port": smtp_port})
    app = App(settings, clock=FixedClock(at("2024-09-27T10:00")))
    try:
        ingest(app, at("2024-09-27T10:00"), notice("N1", "D1", "XA01", "注射用头孢曲松钠", "2024-09-27"))
        assert not run_cycle(app.cycle_deps(), at("2024-09-27T10:05")).errors
        deliver_due(app.deliver_deps(), at("2024-09-27T10:05"))
        with app.sessions() as session:
            rows = list(session.scalars(select(Alert).where(Alert.status == "sent")))
        return {r.dedup_key for r in rows}, {r.message_id for r in rows}
    finally:
        app.close()


def test_two_fresh_databases_send_disjoint_message_ids_and_thread_roots(tmp_path, smtp_sink):
    keys_a, ids_a = mail_of_one_notice(fresh_sqlite(tmp_path), tmp_path / "a", smtp_sink.port)
    received_a = list(smtp_sink.handler.received)
    second = tmp_path / "b"
    second.mkdir()
    keys_b, ids_b = mail_of_one_notice(fresh_sqlite(second), second, smtp_sink.port)
    received_b = smtp_sink.handler.received[len(received_a):]

    assert keys_a == keys_b and len(keys_a) >= 2  # the same alerts (receipt, bureau notice) in both ledgers...
    assert ids_a.isdisjoint(ids_b)  # ...under other Message-IDs
    assert {r.message["Message-ID"].strip() for r in received_a} == ids_a
    roots_a = {r.message["References"] for r in received_a}
    roots_b = {r.message["References"] for r in received_b}
    assert roots_a and roots_b and roots_a.isdisjoint(roots_b)  # and another thread: no threading into old mail


def test_the_schema_is_created_with_a_random_installation_id(tmp_path):
    made = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        engine = make_engine(fresh_sqlite(tmp_path / name))
        with make_sessionmaker(engine)() as session:
            [row] = session.scalars(select(Installation)).all()
        engine.dispose()
        assert re.fullmatch(r"[0-9a-f]{16}", row.installation_id)
        made.append(row.installation_id)
    assert made[0] != made[1]


def test_a_ledger_whose_installation_row_was_deleted_gets_one_id_again(sessions):
    now = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    with sessions.begin() as session:
        session.execute(Installation.__table__.delete())
    with sessions.begin() as session:
        again = installation_id(session, now)
    with sessions.begin() as session:
        assert installation_id(session, now) == again
