"""Three `run` replicas on one PostgreSQL database and a real SMTP server on loopback.

300 stoppage notices arrive in a shared inbox folder over several cycles; every message
the ledger sends arrives exactly once. Then one replica is SIGKILLed mid-run: its leases
expire and the two others finish its work.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from shortage_watch.app import App
from shortage_watch.settings import Settings
from shortage_watch.store.tables import Alert, Heartbeat, StoppageNotice

from .conftest import REPO, start_daemon, stop_daemon, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EXAMPLES = REPO / "config" / "examples"
# Distributors of the sample directory that have an address, with how many addresses.
DISTRIBUTORS = {"D350901": 1, "D350902": 1, "D350903": 2, "D500001": 1}
NOTICES, BATCHES = 300, 6


class RecordingHandler:
    """Accepts every message and records its Message-ID and recipients (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hold = threading.Event()  # while set, each message waits before it is accepted
        self.received: list[tuple[str, tuple[str, ...], str]] = []  # (message id, recipients, subject)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        while self.hold.is_set():
            await asyncio.sleep(0.02)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received.append((str(message["Message-ID"]), tuple(envelope.rcpt_tos), str(message["Subject"])))
        return "250 Message accepted"

    def ids(self) -> Counter[str]:
        with self.lock:
            return Counter(mid for mid, _, _ in self.received)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp() -> Any:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def notices_file(batch: int, per_batch: int, notified_on: str) -> bytes:
    records = []
    codes = sorted(DISTRIBUTORS)
    for i in range(per_batch):
        n = batch * per_batch + i
        records.append({
            "record_kind": "stoppage_notice",
            "notice_id": f"E2E-{n:04d}",
            "manufacturer": "某某制药有限公司",
            "product_code": f"XP{n:05d}",
            "product_name": f"测试药品{n}",
            "kind": "stoppage",
            "distributor_code": codes[n % len(codes)],
            "notified_on": notified_on,
        })
    return json.dumps({"records": records}, ensure_ascii=False).encode("utf-8")


def drop(inbox: Path, staging: Path, name: str, content: bytes) -> None:
    # Written beside the inbox, then renamed in: a replica never reads half a file.
    temp = staging / name
    temp.write_bytes(content)
    os.replace(temp, inbox / name)


def test_three_replicas_send_each_alert_once_and_survive_a_sigkill(
    pg_url: str, smtp: Any, tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    handler, port = smtp
    tz = ZoneInfo("Asia/Shanghai")
    today = datetime.now(tz).date()
    # Mail to bureaus waits for working hours on working days; make today one, all day,
    # so the run does not depend on when the suite runs. (An override replaces the year.)
    calendar_dir = tmp_path / "calendar"
    calendar_dir.mkdir()
    makeup = [today.isoformat()] if today.weekday() >= 5 else []
    (calendar_dir / f"{today.year}.toml").write_text(
        f"year = {today.year}\nholidays = []\nmakeup_workdays = {json.dumps(makeup)}\n", encoding="utf-8"
    )
    inbox, staging = tmp_path / "inbox", tmp_path / "staging"
    inbox.mkdir()
    staging.mkdir()
    config = write_config({
        "database": {"url": pg_url},
        "calendar": {"overrides_dir": str(calendar_dir)},
        "directory": {name: str(EXAMPLES / f"{name}.csv") for name in ("regions", "contacts", "distributors", "hospitals")},
        "escalation": {"policy": str(REPO / "config" / "escalation.toml")},
        "sources": [{"name": "shared-inbox", "type": "inbox", "path": str(inbox), "interval": 1, "settle_seconds": 0}],
        "mail": {
            "transport": "smtp", "working_hours_start": "00:00:00", "working_hours_end": "23:59:59", "batch_size": 20,
            "group_wait": 1,  # bureau groups wait a second for more items (60 s by default)
        },
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 10},
        "daemon": {"sweep_interval": 1, "deliver_interval": 1, "heartbeat_interval": 1, "lease_seconds": 5},
    })
    settings = Settings(database={"url": pg_url})
    app = App(settings)
    per_batch = NOTICES // BATCHES
    expected_receipts = sum(DISTRIBUTORS[c] for c in (sorted(DISTRIBUTORS)[n % 4] for n in range(NOTICES)))

    def alerts_by_status() -> dict[str, int]:
        with app.sessions() as s:
            return dict(s.execute(select(Alert.status, func.count()).group_by(Alert.status)).all())

    def settled(notices: int) -> bool:
        """All `notices` stored, nothing left to send now, and SMTP got every message the ledger marked sent
        (a grouped message carries several alerts: messages are counted by Message-ID)."""
        with app.sessions() as s:
            stored = s.scalar(select(func.count()).select_from(StoppageNotice))
            busy = s.scalar(select(func.count()).select_from(Alert).where(Alert.status.in_(("pending", "sending"))))
            sent = s.scalar(select(func.count(func.distinct(Alert.message_id))).where(Alert.status == "sent"))
        return stored == notices and busy == 0 and sent == sum(handler.ids().values()) - duplicates()

    def duplicates() -> int:
        return sum(n - 1 for n in handler.ids().values() if n > 1)

    logs = [tmp_path / f"replica-{i}.log" for i in range(3)]
    procs = [start_daemon(config, log_path=logs[i]) for i in range(3)]
    try:
        wait_for(lambda: len(alive_heartbeats(app)) == 3, 30, "three heartbeats")
        # Phase 1: three batches, one per cycle or so, all three replicas up.
        for batch in range(3):
            drop(inbox, staging, f"batch-{batch}.json", notices_file(batch, per_batch, today.isoformat()))
            time.sleep(1.0)  # let a poll cycle pass between drops: several cycles, not one
        wait_for(lambda: settled(3 * per_batch), 45, "phase 1 notices mailed", interval=0.25)
        assert duplicates() == 0, "with every replica alive each message arrives exactly once"

        # Phase 2: more work, and replica 0 is killed in the middle of sending its batch.
        # The SMTP server holds every message for a moment, so the replicas' batches stay
        # claimed ('sending') long enough to kill replica 0 while it holds one.
        with app.sessions() as s:
            victim = s.scalar(select(Heartbeat.replica_id).where(Heartbeat.pid == procs[0].pid))
        assert victim is not None
        handler.hold.set()
        drop(inbox, staging, "batch-3.json", notices_file(3, per_batch, today.isoformat()))

        def victims_batch() -> list[int]:
            with app.sessions() as s:
                return list(s.scalars(select(Alert.id).where(Alert.status == "sending", Alert.lease_owner == victim)))

        orphaned = wait_for(victims_batch, 30, "replica 0 to claim a batch", interval=0.05)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        handler.hold.clear()
        for batch in range(4, BATCHES):
            drop(inbox, staging, f"batch-{batch}.json", notices_file(batch, per_batch, today.isoformat()))
            time.sleep(0.5)
        wait_for(lambda: settled(NOTICES), 45, "the survivors to finish the work", interval=0.25)
        with app.sessions() as s:
            taken_over = s.execute(select(Alert.status, Alert.lease_owner).where(Alert.id.in_(orphaned))).all()
        # The killed replica's claimed batch was taken over after its lease expired and sent.
        assert taken_over and all(status == "sent" and owner != victim for status, owner in taken_over)
    finally:
        codes = []
        for proc in procs[1:]:
            if proc.poll() is None:
                codes.append(stop_daemon(proc, signal.SIGTERM))
            else:
                codes.append((proc.returncode, 0.0))
        if procs[0].poll() is None:
            procs[0].kill()
            procs[0].wait()

    texts = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in logs)
    assert all(code == 0 and seconds < 10 for code, seconds in codes), codes
    assert procs[0].returncode == -signal.SIGKILL
    statuses = alerts_by_status()
    assert statuses.get("dead", 0) == 0 and statuses.get("pending", 0) == 0 and statuses.get("sending", 0) == 0
    with app.sessions() as s:
        sent_ids = set(s.scalars(select(Alert.message_id).where(Alert.status == "sent")))
        receipts = s.scalar(select(func.count()).select_from(Alert).where(Alert.template == "receipt", Alert.status == "sent"))
    received = handler.ids()
    assert set(received) == sent_ids, "every alert marked sent arrived, and nothing else did"
    assert receipts == expected_receipts
    # At least once: only the batch the killed replica had on the wire may arrive twice.
    assert duplicates() <= 20, f"{duplicates()} duplicates"
    # The killed replica's heartbeat is left behind (it could not clean up); the others removed theirs.
    assert len(alive_heartbeats(app)) <= 1
    assert "Traceback" not in texts
    app.close()


def alive_heartbeats(app: App) -> list[str]:
    with app.sessions() as s:
        return list(s.scalars(select(Heartbeat.replica_id)))
