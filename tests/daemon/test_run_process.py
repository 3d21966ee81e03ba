"""`shortage-watch run` as a real process: refuses an old schema, beats, stops cleanly on a signal."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Callable

import pytest
from sqlalchemy import select

from shortage_watch.app import App
from shortage_watch.clock import utc_now
from shortage_watch.store.db import head_revision
from shortage_watch.store.tables import Alert, Heartbeat, SourceState

from .conftest import REPO, add_alert, daemon_env, start_daemon, stop_daemon, wait_for

pytestmark = pytest.mark.slow


def test_run_refuses_an_old_schema_with_the_upgrade_command(write_config: Callable[..., Path], tmp_path: Path) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "fresh.db").close()  # a file with no schema (a missing one is refused earlier)
    config = write_config({"database": {"url": f"sqlite:///{tmp_path / 'fresh.db'}"}})
    result = subprocess.run(
        [sys.executable, "-m", "shortage_watch", "--config", str(config), "run"],
        capture_output=True, text=True, timeout=60, env=daemon_env(), cwd=REPO,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"shortage-watch: error: 数据库结构版本为空，本版本需要 {head_revision()}：请先运行 `shortage-watch db upgrade` / "
        f"the database schema is at empty but this version needs {head_revision()}: run `shortage-watch db upgrade` first"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_releases_claims_and_exits_0_within_10_seconds(
    sig: int, app: App, db_url: str, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config({
        "database": {"url": db_url},
        "daemon": {"heartbeat_interval": 1, "sweep_interval": 1, "deliver_interval": 1},
        "logging": {"format": "json"},
    })
    log_path = tmp_path / "daemon.log"
    proc = start_daemon(config, log_path=log_path)
    try:
        def heartbeat() -> str | None:
            with app.sessions() as s:
                return s.scalar(select(Heartbeat.replica_id))

        replica = wait_for(heartbeat, 30, "the daemon's heartbeat row")
        # Claims this replica holds when the signal comes: they must be handed back.
        later = utc_now() + timedelta(minutes=10)
        with app.sessions.begin() as s:
            s.add(SourceState(name="held-feed", lease_owner=replica, lease_until=later))
            add_alert(s, "O9:overdue:x@example.org", status="sending", lease_owner=replica, lease_until=later)
    except BaseException:
        proc.kill()
        raise
    code, seconds = stop_daemon(proc, sig)

    assert (code, seconds < 10) == (0, True), log_path.read_text(encoding="utf-8")[-3000:]
    with app.sessions() as s:
        assert s.scalar(select(Heartbeat.replica_id)) is None
        assert s.get(SourceState, "held-feed").lease_owner is None
        alert = s.scalar(select(Alert))
        assert (alert.status, alert.lease_owner) == ("pending", None)
    lines = log_path.read_text(encoding="utf-8").splitlines()
    bad = [line for line in lines if not line.startswith("{")]
    assert not bad, f"not JSON log lines: {bad}"
    events = [json.loads(line) for line in lines]  # every line is one JSON event
    messages = [e["message"] for e in events]
    assert messages[0].startswith("shortage-watch 0.1.0 running on ") and messages[-1] == "stopped"
    assert any(m.startswith(f"stopping ({signal.Signals(sig).name})") for m in messages)


def test_run_serves_healthz_and_metrics_when_enabled(
    sqlite_url: str, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    import socket

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config({
        "database": {"url": sqlite_url},
        "daemon": {"http_enabled": True, "http_port": port, "heartbeat_interval": 1},
    })
    proc = start_daemon(config, log_path=tmp_path / "daemon.log")
    try:
        def healthz() -> requests.Response | None:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            except requests.ConnectionError:
                return None
            return response if response.status_code == 200 else None

        response = wait_for(healthz, 30, "/healthz to answer 200")
        assert response.json()["status"] == "healthy"
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "shortage_watch_db_up 1.0" in metrics
        assert "shortage_watch_sweep_duration_seconds_count" in metrics
    finally:
        code, seconds = stop_daemon(proc)
    assert code == 0 and seconds < 10


def test_database_trouble_while_running_is_logged_and_the_daemon_keeps_going(
    sqlite_url: str, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    from sqlalchemy import text

    from shortage_watch.store.db import make_engine

    config = write_config({"database": {"url": sqlite_url}, "daemon": {"heartbeat_interval": 1}})
    log_path = tmp_path / "daemon.log"
    proc = start_daemon(config, log_path=log_path)
    engine = make_engine(sqlite_url)
    try:
        def beating() -> bool:
            with engine.connect() as conn:
                return bool(conn.execute(text("SELECT count(*) FROM heartbeats")).scalar())

        wait_for(beating, 30, "the first heartbeat")
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE heartbeats"))  # every heartbeat from now on fails
        wait_for(lambda: log_path.read_text().count("heartbeat failed") >= 2, 30, "two failed heartbeats logged")
        assert proc.poll() is None, "the daemon survived its failing job"
    finally:
        code, seconds = stop_daemon(proc)
        engine.dispose()
    assert code == 0 and seconds < 10
    log = log_path.read_text()
    assert "could not release claims" in log or "released claims" in log


def test_run_with_the_database_unreachable_exits_1_so_a_service_manager_retries(
    write_config: Callable[..., Path],
) -> None:
    config = write_config({"database": {"url": "postgresql+psycopg://postgres@127.0.0.1:1/none"}})
    result = subprocess.run(
        [sys.executable, "-m", "shortage_watch", "--config", str(config), "run"],
        capture_output=True, text=True, timeout=60, env=daemon_env(), cwd=REPO,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("shortage-watch: error: 无法连接数据库 / database unreachable: ")
    assert "Traceback" not in result.stderr
