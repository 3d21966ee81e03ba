"""Shared fixtures: fresh SQLite files and a throwaway PostgreSQL database.

PostgreSQL: `SHORTAGE_WATCH_TEST_PG_URL` (set by .ci/run) names a database the tests
may wipe; it must be reachable. Without it, the tests create their own database on
127.0.0.1:5432 for this run and drop it afterwards, or skip the PostgreSQL half when no
server answers.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import uuid
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.cli import main
from shortage_watch.store.db import make_engine, make_sessionmaker, upgrade_schema
from shortage_watch.store.tables import Base

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _create_pg_database() -> tuple[str, Callable[[], None]]:
    name = f"sw_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """URL of a PostgreSQL database, migrated to head, that this test run owns."""
    given = os.environ.get("SHORTAGE_WATCH_TEST_PG_URL")
    drop = None
    if given:
        url = given
    else:
        try:
            url, drop = _create_pg_database()
        except Exception as exc:  # no server here: the SQLite half still runs
            pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432 ({type(exc).__name__})")
    engine = make_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade_schema(engine)
    engine.dispose()
    yield url
    if drop is not None:
        drop()


@pytest.fixture
def unmigrated_pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, with no schema yet; dropped afterwards."""
    try:
        url, drop = _create_pg_database()
    except Exception as exc:  # no server here: the SQLite half still runs
        pytest.skip(f"PostgreSQL not reachable on 127.0.0.1:5432 ({type(exc).__name__})")
    yield url
    drop()


def truncate_all(engine: Engine) -> None:
    """Empty every ledger table (keeps the schema)."""
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head, which each test's ledger copies (migrating each took most of a fast test)."""
    path = tmp_path_factory.mktemp("template") / "ledger.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, migrated_sqlite_template: Path) -> str:
    """A fresh SQLite file migrated to head, with its own installation id (as a migration gives)."""
    path = tmp_path / "ledger.db"
    with closing(sqlite3.connect(migrated_sqlite_template)) as template, closing(sqlite3.connect(path)) as ledger:
        template.backup(ledger)
        with ledger:
            ledger.execute("UPDATE installation SET installation_id = ?", (secrets.token_hex(8),))
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(pg_database_url: str) -> str:
    """The run's PostgreSQL database, emptied."""
    engine = make_engine(pg_database_url)
    truncate_all(engine)
    engine.dispose()
    return pg_database_url


# Fixtures that start a real web server (uvicorn on a loopback port): a test using one is slow.
WEB_SERVER_FIXTURES = {"make_web", "bureau", "bureau_on_sqlite"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tier, besides what is marked `slow` by hand: the PostgreSQL half of every database
    test (`-m "not slow"` runs every ledger rule once, on SQLite, for the edit-test loop) and every
    test served by a real web server. `make test` (CI) runs them all."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("postgres") or "pg_database_url" in fixtures or fixtures & WEB_SERVER_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty, migrated database: each test using it runs on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


@pytest.fixture
def settings_data(tmp_path: Path) -> dict[str, Any]:
    """Minimal settings (as TOML data) pointing every writable path into tmp_path."""
    return {
        "database": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
        "calendar": {"overrides_dir": str(tmp_path / "calendar")},
        "mail": {"transport": "file", "file_dir": str(tmp_path / "mail")},
        # The portal is on by default on 127.0.0.1:8080; daemons under test serve no portal
        # unless a test asks (tests/web starts its own on a free port).
        "web": {"enabled": False, "session_secret_file": str(tmp_path / "web_secret")},
    }


@pytest.fixture
def write_config(tmp_path: Path, settings_data: dict[str, Any]) -> Callable[..., Path]:
    """Write settings_data (deep-merged with overrides) to a TOML file; returns its path."""
    import tomli_w

    def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    def write(overrides: dict[str, Any] | None = None, name: str = "shortage_watch.toml") -> Path:
        path = tmp_path / name
        path.write_text(tomli_w.dumps(merge(settings_data, overrides or {})), encoding="utf-8")
        return path

    return write


@dataclass(frozen=True)
class CliResult:
    """What a run of the CLI left: named as subprocess.run names them."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_main(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """`shortage-watch ARGS` called in this process: main()'s exit code, argparse's usage errors
    (SystemExit) included, and what it printed. A process of its own costs a second a call; the
    few tests of the real entry point (tests/foundation/test_cli_contracts.py) still start one."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
