"""Delivery under stress: a slow mail server under three sender replicas, a replica killed mid-batch;
bidirectional controls in what reaches a mail header.

Each replica is a separate process running the real sender (`deliver_due` in a loop)
against one database and a loopback SMTP server whose DATA reply is slow enough that a
batch outlives its lease. Messages are counted per alert (its stable Message-ID) at the
server.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.store.tables import Alert

from shortage_watch.services.deliver import deliver_due

from tests.mail.conftest import WORKING_NOW, add_alerts, free_port, mail_settings
from tests.mail.conftest import make_app, smtp_sink  # noqa: F401  (fixtures)

LEASE_SECONDS = 5  # the smallest lease the settings allow
DATA_SECONDS = 0.3  # the server's pause before answering each DATA
ALERTS = 30  # 30 × 0.3 s = 9 s for one batch: longer than the lease

SENDER = """
import json, sys, time, datetime as dt
from shortage_watch.app import App
from shortage_watch.settings import Settings
from shortage_watch.services.deliver import deliver_due
settings = Settings(**json.loads(sys.argv[1]))
now = dt.datetime.fromisoformat(sys.argv[2])
app = App(settings)
print(app.replica_id, flush=True)
while True:
    if deliver_due(app.deliver_deps(), now).batches == 0:
        time.sleep(0.05)
"""


class SlowSink:
    """Answers each DATA after DATA_SECONDS and counts messages per Message-ID."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: Counter[str] = Counter()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await asyncio.sleep(DATA_SECONDS)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.received[str(message["Message-ID"])] += 1
        return "250 Message accepted"

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(self.received)


@pytest.fixture
def slow_smtp() -> Iterator[tuple[SlowSink, int]]:
    sink = SlowSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    controller.stop()


@pytest.fixture
def replicas(db_url: str, tmp_path: Path, slow_smtp: tuple[SlowSink, int]) -> Iterator[Callable[[], list[subprocess.Popen[str]]]]:
    """Starts three sender processes on the test database; kills what is left at the end."""
    _, port = slow_smtp
    settings = mail_settings(
        db_url, tmp_path, mail={"transport": "smtp", "batch_size": 50}, smtp={"port": port}, daemon={"lease_seconds": LEASE_SECONDS},
    )
    started: list[subprocess.Popen[str]] = []

    def start() -> list[subprocess.Popen[str]]:
        data = json.dumps(settings.model_dump(mode="json", by_alias=True))
        for _ in range(3):
            started.append(subprocess.Popen(
                [sys.executable, "-c", SENDER, data, WORKING_NOW.isoformat()],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ))
        return started

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        stderr = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in stderr, stderr


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[App]:
    app = App(mail_settings(db_url, tmp_path), clock=FixedClock(WORKING_NOW))
    yield app
    app.close()


def _wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


def _statuses(app: App) -> Counter[str]:
    with app.sessions() as s:
        return Counter(s.scalars(select(Alert.status)))


def _all_sent(app: App) -> bool:
    return _statuses(app) == Counter({"sent": ALERTS})


@pytest.mark.slow
def test_three_replicas_under_a_slow_mail_server_send_every_alert_exactly_once(ledger, slow_smtp, replicas):
    sink, _ = slow_smtp
    add_alerts(ledger, ALERTS)
    replicas()

    def resent() -> dict[str, int]:
        return {mid: n for mid, n in sink.counts().items() if n > 1}

    _wait_for(lambda: _all_sent(ledger) or resent(), 60, "every alert recorded as sent")
    time.sleep(LEASE_SECONDS * 0.5)  # a resend would come from a lease running out: give it the chance

    assert resent() == {}, "an alert was mailed more than once"
    assert len(sink.counts()) == ALERTS
    assert _all_sent(ledger)


@pytest.mark.slow
def test_a_replica_killed_mid_batch_under_a_slow_server_costs_at_most_one_resend(ledger, slow_smtp, replicas):
    sink, _ = slow_smtp
    add_alerts(ledger, ALERTS)
    procs = replicas()
    by_replica = {proc.stdout.readline().strip(): proc for proc in procs if proc.stdout}

    def sending_replica() -> str | None:
        """A replica holding claimed rows after a few messages went out: the one to kill."""
        if sum(sink.counts().values()) < 5:
            return None
        with ledger.sessions() as s:
            return s.scalar(select(Alert.lease_owner).where(Alert.status == "sending").limit(1))

    victim = by_replica[_wait_for(sending_replica, 60, "a replica in the middle of a batch")]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)

    # Its rows wait for their lease to expire, then the two others send them.
    _wait_for(lambda: _all_sent(ledger), 60, "the survivors to send the killed replica's rows")
    counts = sink.counts()
    assert len(counts) == ALERTS, "every alert arrived"
    resent = {mid: n for mid, n in counts.items() if n > 1}
    assert all(n == 2 for n in resent.values()), f"an alert was resent more than once: {resent}"
    # Only the message on the wire when the replica died can arrive twice.
    assert len(resent) <= 1, resent


BIDI = "\u202e\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c\ufeff"


@pytest.mark.parametrize("control", list(BIDI), ids=[f"U+{ord(c):04X}" for c in BIDI])
def test_bidi_controls_in_a_product_name_never_reach_the_subject(make_app, smtp_sink, control: str) -> None:
    app = make_app(mail={"transport": "smtp"}, smtp={"port": smtp_sink.port})
    add_alerts(app, 1, product_name=f"注射用{control}头孢曲松钠{control}fdp.exe")

    assert deliver_due(app.deliver_deps(), WORKING_NOW).sent == 1

    [received] = smtp_sink.handler.received
    subject = str(received.message["Subject"])
    assert "注射用头孢曲松钠fdp.exe" in subject
    assert not any(c in subject for c in BIDI)


def test_bidi_controls_in_the_sender_name_never_reach_the_from_header(make_app, smtp_sink) -> None:
    app = make_app(mail={"transport": "smtp", "from": "医保\u202e短缺监测 <alerts@sw.example.gov.cn>"}, smtp={"port": smtp_sink.port})
    add_alerts(app, 1)

    assert deliver_due(app.deliver_deps(), WORKING_NOW).sent == 1

    [received] = smtp_sink.handler.received
    assert str(received.message["From"]) == "医保短缺监测 <alerts@sw.example.gov.cn>"
