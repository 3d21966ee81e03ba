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
from shortage_watch.store.tables import Alert, Heartbeat, SourceState

from .conftest import REPO, add_alert, daemon_env, start_daemon, stop_daemon, wait_for

pytestmark = pytest.mark.slow


def test_run_refuses_an_old_schema_with_the_upgrade_command(write_config: Callable[..., Path], tmp_path: Path) -> None:
    config = write_config({"database": {"url": f"sqlite:///{tmp_path / 'fresh.db'}"}})
    result = subprocess.run(
        [sys.executable, "-m", "shortage_watch", "--config", str(config), "run"],
        capture_output=True, text=True, timeout=60, env=daemon_env(), cwd=REPO,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "shortage-watch: error: the database schema is at empty but this version needs 0001: "
        "run `shortage-watch db upgrade` first"
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

    assert code == 0 and seconds < 10
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
    assert messages[0] == "shortage-watch 0.1.0 running" and messages[-1] == "stopped"
    assert any(m.startswith(f"stopping ({signal.Signals(sig).name})") for m in messages)
