"""Pages that only show read through read-only sessions: while another replica holds SQLite's write
lock (a long ingest), the dashboard and the portal still answer at once."""

from __future__ import annotations

from typing import Callable

import pytest

from shortage_watch.app import App
from shortage_watch.services.accounts import add_account, change_password
from shortage_watch.web.server import WebServer
from tests.dashboard.conftest import NOW, Seeded, seed_ledger
from tests.store.write_lock import write_lock_held
from tests.web.conftest import PASSWORD, add_distributor
from tests.web.test_bureau_pages import login
from tests.web.test_portal_security import login as portal_login


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """SQLite only: the write lock these tests hold is SQLite's (PostgreSQL readers never wait for writers)."""
    return sqlite_url


@pytest.fixture
def bureau_on_sqlite(make_web: Callable[..., tuple[App, WebServer]]) -> tuple[App, WebServer, Seeded]:
    app, server = make_web()
    seeded = seed_ledger(app.sessions)
    officer, initial = add_account(app.sessions, name="ningde", role="officer", party_code=None, region_code="350900",
                                   bureau="insurance", now=NOW)
    change_password(app.sessions, officer, current=initial, new=PASSWORD, now=NOW)
    add_distributor(app, "D350901")
    return app, server, seeded


def test_dashboard_pages_answer_while_a_writer_holds_the_lock(bureau_on_sqlite, sqlite_url: str) -> None:
    _, server, seeded = bureau_on_sqlite
    browser = login(server, "ningde")  # the login itself is recorded: a write, before the lock is taken
    pages = ["/bureau/", "/bureau/obligations", "/bureau/cases", "/bureau/notices", "/bureau/compliance",
             f"/bureau/obligations/{seeded.ob['jiaocheng_overdue']}", f"/bureau/cases/{seeded.case['ningde']}",
             "/bureau/distributors/D350901", "/bureau/obligations?format=csv"]
    with write_lock_held(sqlite_url):
        for page in pages:
            # A page that took the write lock would wait out SQLite's 30 s busy timeout.
            assert browser.get(server.address + page, timeout=5).status_code == 200, page


def test_portal_pages_answer_while_a_writer_holds_the_lock(bureau_on_sqlite, sqlite_url: str) -> None:
    _, server, seeded = bureau_on_sqlite
    browser = portal_login(server, "D350901")
    pages = ["/", f"/obligations/{seeded.ob['jiaocheng_overdue']}", "/history", "/tokens"]
    with write_lock_held(sqlite_url):
        for page in pages:
            assert browser.get(server.address + page, timeout=5).status_code == 200, page
