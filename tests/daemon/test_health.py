"""`shortage-watch health`: 0 when healthy, 1 with the reason otherwise (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Callable

import pytest

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.cli import main
from shortage_watch.clock import utc_now
from shortage_watch.services.replica import write_heartbeat
from shortage_watch.health import check_health
from shortage_watch.store.tables import SourceState

from tests.store.write_lock import finishes_within, write_lock_held

from .conftest import T0, add_alert, make_settings


def checks(app: App, **kwargs) -> dict[str, tuple[bool, str]]:
    report = check_health(app.settings, **kwargs)
    return {c.name: (c.ok, c.detail) for c in report.checks}


def test_healthy_with_a_fresh_heartbeat(app: App) -> None:
    write_heartbeat(app.replica, utc_now())
    report = check_health(app.settings)
    assert report.ok, report.lines()
    assert [c.name for c in report.checks] == ["database", "heartbeat", "sources", "outbox"]


def test_no_heartbeat_is_unhealthy(app: App) -> None:
    assert checks(app)["heartbeat"] == (False, "any replica: no heartbeat (is `shortage-watch run` running?)")


def test_stale_heartbeat_is_unhealthy(app: App) -> None:
    write_heartbeat(app.replica, utc_now())
    later = utc_now() + timedelta(seconds=2 * app.settings.daemon.heartbeat_interval + 5)
    ok, detail = checks(app, now=later)["heartbeat"]
    assert not ok and "last beat" in detail


def test_replica_option_checks_that_replica_only(app: App) -> None:
    write_heartbeat(app.replica, utc_now())
    assert checks(app, replica="replica-a")["heartbeat"][0]
    assert not checks(app, replica="replica-b")["heartbeat"][0]


def test_host_option_checks_replicas_on_that_host(app: App) -> None:
    from shortage_watch.health import this_host

    write_heartbeat(app.replica, utc_now())
    assert checks(app, host=this_host())["heartbeat"][0]
    assert not checks(app, host="elsewhere.invalid")["heartbeat"][0]


def test_a_source_failing_more_than_the_limit_is_unhealthy(app: App) -> None:
    write_heartbeat(app.replica, utc_now())
    limit = app.settings.daemon.max_source_failures
    with app.sessions.begin() as s:
        s.add(SourceState(name="feed-ok", consecutive_failures=limit))
        s.add(SourceState(name="feed-down", consecutive_failures=limit + 1, last_error="connection refused"))
    ok, detail = checks(app)["sources"]
    assert not ok
    assert "feed-down failed 6 times in a row (connection refused)" in detail and "feed-ok" not in detail


def test_dead_letters_are_unhealthy(app: App) -> None:
    write_heartbeat(app.replica, utc_now())
    with app.sessions.begin() as s:
        add_alert(s, "O1:overdue:a@example.org", status="dead")
        add_alert(s, "O1:overdue:b@example.org", status="sent")
    assert checks(app)["outbox"] == (False, "1 dead alert(s): inspect and requeue them")


def test_missing_sqlite_file_is_database_gone(tmp_path: Path, write_config: Callable[..., Path], capsys) -> None:
    missing = tmp_path / "gone" / "ledger.db"
    config = write_config({"database": {"url": f"sqlite:///{missing}"}})
    assert main(["--config", str(config), "health", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "unhealthy"
    assert data["checks"] == [{"name": "database", "ok": False, "detail": f"database file {missing} does not exist"}]
    assert not missing.exists(), "a health check must not create the database"


@pytest.mark.postgres
def test_unreachable_postgresql_is_database_gone(write_config: Callable[..., Path], capsys) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    config = write_config({"database": {"url": "postgresql+psycopg://postgres@127.0.0.1:1/none"}})
    assert main(["--config", str(config), "health"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("不正常 / unhealthy\n") and "  失败 FAIL database: unreachable:" in out


def test_old_schema_is_unhealthy(tmp_path: Path, write_config: Callable[..., Path], capsys) -> None:
    from sqlalchemy import create_engine

    path = tmp_path / "empty.db"
    create_engine(f"sqlite:///{path}").connect().close()  # a file with no schema
    config = write_config({"database": {"url": f"sqlite:///{path}"}})
    assert main(["--config", str(config), "health"]) == 1
    assert "run `shortage-watch db upgrade`" in capsys.readouterr().out


def test_cli_health_exit_codes_follow_the_checks(
    app: App, db_url: str, write_config: Callable[..., Path], capsys
) -> None:
    config = write_config({"database": {"url": db_url}})
    write_heartbeat(app.replica, utc_now())
    assert main(["--config", str(config), "health"]) == 0
    assert capsys.readouterr().out.startswith("正常 / healthy\n  正常 ok   database: ")
    with app.sessions.begin() as s:
        add_alert(s, "C1:regional:x@example.org", status="dead")
    assert main(["--config", str(config), "health", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "unhealthy"
    assert {c["name"]: c["ok"] for c in data["checks"]} == {
        "database": True, "heartbeat": True, "sources": True, "outbox": False,
    }


def test_health_reads_while_another_replica_holds_the_write_lock(sqlite_url: str, tmp_path: Path) -> None:
    """The daemon's /health passes its own (writing) engine: the checks still read without the lock."""
    app = App(make_settings(sqlite_url, tmp_path), clock=FixedClock(T0), replica_id="replica-a")
    try:
        write_heartbeat(app.replica, utc_now())
        with write_lock_held(sqlite_url):
            report = finishes_within(5, lambda: check_health(app.settings, app.engine, replica=app.replica_id))
        assert report.ok, report.lines()
    finally:
        app.close()
