"""Fixtures for the daemon tests: an App on the parametrized database and ledger rows."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy.orm import Session

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.settings import Settings
from shortage_watch.store.tables import Alert, Obligation, ShortageCase

T0 = datetime(2024, 9, 27, 2, 0, tzinfo=timezone.utc)  # Friday before National Day, 10:00 Beijing


def make_settings(db_url: str, tmp_path: Path, **sections: dict[str, Any]) -> Settings:
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "calendar": {"overrides_dir": str(tmp_path / "calendar")},
        "mail": {"transport": "file", "file_dir": str(tmp_path / "mail")},
        "web": {"enabled": False},
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return Settings(**data)


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    application = App(make_settings(db_url, tmp_path), clock=FixedClock(T0), replica_id="replica-a")
    yield application
    application.close()


def add_alert(session: Session, key: str, **fields: Any) -> Alert:
    values: dict[str, Any] = dict(
        dedup_key=key,
        thread_key="O1",
        level="overdue",
        template="overdue_alert",
        recipient_role="insurance",
        recipient_email="ybj@example.org",
        context={},
        status="pending",
        next_attempt_at=T0,
        created_at=T0,
    )
    values.update(fields)
    alert = Alert(**values)
    session.add(alert)
    return alert


def add_obligation(session: Session, subject: str, **fields: Any) -> Obligation:
    values: dict[str, Any] = dict(
        kind="report",
        subject_key=subject,
        party_code="D1",
        received_on=date(2024, 9, 27),
        due_on=date(2024, 10, 11),
        due_at=datetime(2024, 10, 11, 15, 59, 59, tzinfo=timezone.utc),
        calendar_status="official",
        state="open",
        level=0,
        policy={},
        next_action_at=T0,
        opened_at=T0,
        updated_at=T0,
    )
    values.update(fields)
    row = Obligation(**values)
    session.add(row)
    return row


def add_case(session: Session, product: str, **fields: Any) -> ShortageCase:
    values: dict[str, Any] = dict(
        product_code=product, product_name="阿莫西林", city_code="350900", state="open", opened_at=T0, updated_at=T0
    )
    values.update(fields)
    row = ShortageCase(**values)
    session.add(row)
    return row


REPO = Path(__file__).resolve().parents[2]


def daemon_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("SHORTAGE_WATCH_")}


def start_daemon(config: Path, *extra: str, cwd: Path | None = None, log_path: Path | None = None):
    """`shortage-watch --config CONFIG run` as a child process (stderr to `log_path`)."""
    import subprocess
    import sys

    log_file = open(log_path or config.with_suffix(".log"), "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "shortage_watch", "--config", str(config), *extra, "run"],
        stdout=log_file, stderr=subprocess.STDOUT, env=daemon_env(), cwd=cwd or REPO,
    )


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll `predicate` until it returns something truthy (returned) or fail after `timeout` s."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def stop_daemon(proc, sig: int | None = None, timeout: float = 10.0) -> tuple[int, float]:
    """Send `sig` (SIGTERM) and return (exit code, seconds it took); kills it if it overstays."""
    import signal
    import subprocess
    import time

    started = time.monotonic()
    proc.send_signal(sig or signal.SIGTERM)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the daemon did not exit within {timeout}s of the signal") from None
    return code, time.monotonic() - started
