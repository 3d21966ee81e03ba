"""Benchmark: the outbox sender vs a plain smtplib loop, into a local aiosmtpd sink.

    python bench/bench_deliver.py [--alerts 2000] [--db URL]

Sender: `deliver_due` on a fresh SQLite file (or --db, e.g. a PostgreSQL database it may
fill), claiming in batches under a lease, rendering each template (subject, text, HTML),
building the message, sending over one reused SMTP connection and recording the outcome.
Baseline: the same messages, pre-built, sent by a bare smtplib loop over one connection.
Prints messages per second for both and the ratio (aim: at least 0.5).
"""

from __future__ import annotations

import argparse
import multiprocessing
import datetime as dt
import smtplib
import socket
import sys
import tempfile
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from sqlalchemy import func, select, text, update

from shortage_watch.app import App
from shortage_watch.clock import FixedClock, utc_now
from shortage_watch.mail.samples import sample_alert_context
from shortage_watch.services.deliver import ClaimedAlert, build_envelope, deliver_due
from shortage_watch.settings import Settings
from shortage_watch.store.db import make_engine, upgrade_schema
from shortage_watch.store.tables import Alert, Base

NOW = dt.datetime(2024, 10, 10, 2, 0, tzinfo=dt.timezone.utc)  # a working day, 10:00 in Shanghai
TEMPLATES = ("receipt", "reminder", "written_reminder", "overdue_alert", "regional_shortage")


class CountingSink:
    """Accepts everything and counts; does no parsing, so both sides pay the same server cost."""

    def __init__(self, counter) -> None:  # type: ignore[no-untyped-def]
        self.counter = counter

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self.counter.get_lock():
            self.counter.value += 1
        return "250 OK"


def serve_sink(port: int, counter, stop) -> None:  # type: ignore[no-untyped-def]
    """The sink runs in its own process: its CPU work must not share the sender's GIL."""
    controller = Controller(CountingSink(counter), hostname="127.0.0.1", port=port)
    controller.start()
    stop.wait()
    controller.stop()


class SinkProcess:
    def __init__(self) -> None:
        self.port = free_port()
        self.counter = multiprocessing.Value("i", 0)
        self.stop = multiprocessing.Event()
        self.process = multiprocessing.Process(target=serve_sink, args=(self.port, self.counter, self.stop), daemon=True)

    def start(self) -> None:
        self.process.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the SMTP sink did not start")

    @property
    def count(self) -> int:
        return self.counter.value

    def reset(self) -> None:
        self.counter.value = 0

    def close(self) -> None:
        self.stop.set()
        self.process.join(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fill_outbox(app: App, n: int) -> None:
    rows = []
    for i in range(n):
        template = TEMPLATES[i % len(TEMPLATES)]
        context = dict(sample_alert_context(template))
        context["case_number"] = f"SW-O-{i:06d}"
        rows.append(Alert(
            dedup_key=f"O{i}:{template}:d{i}@example.com", thread_key=f"O{i // 3}", level=template, template=template,
            recipient_role="distributor", recipient_region="350902", recipient_email=f"d{i}@example.com", language="zh-CN",
            urgent=False, context=context, status="pending", attempts=0, next_attempt_at=NOW, created_at=utc_now(),
        ))
    with app.sessions.begin() as session:
        session.add_all(rows)


def reset_outbox(app: App) -> None:
    with app.sessions.begin() as session:
        session.execute(update(Alert).values(status="pending", attempts=0, next_attempt_at=NOW, sent_at=None, message_id=None, lease_owner=None, lease_until=None))


def run(n: int, db_url: str | None, rounds: int) -> float:
    sink = SinkProcess()
    sink.start()
    port = sink.port
    work = Path(tempfile.mkdtemp(prefix="bench_deliver_"))
    url = db_url or f"sqlite:///{work / 'ledger.db'}"
    engine = make_engine(url)
    if db_url:
        Base.metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade_schema(engine)
    engine.dispose()
    settings = Settings(
        database={"url": url},
        calendar={"overrides_dir": str(work / "calendar")},
        mail={"transport": "smtp", "from": "医保短缺监测 <alerts@sw.example.gov.cn>", "batch_size": 50},
        smtp={"host": "127.0.0.1", "port": port, "security": "none", "rate_per_minute": 10**9},
    )
    app = App(settings, clock=FixedClock(NOW))
    sender_times, baseline_times = [], []
    try:
        fill_outbox(app, n)
        app.renderer, app.calendar  # noqa: B018  (warm caches outside the timing: settings load, not sending)
        with app.sessions() as session:
            rows = session.scalars(select(Alert).order_by(Alert.id)).all()
        # The baseline's messages: the same alerts, built beforehand.
        deps = app.deliver_deps()
        envelopes = [
            build_envelope(deps, ClaimedAlert(r.id, r.dedup_key, r.thread_key, r.template, r.recipient_role, r.recipient_email,
                              r.language, r.urgent, dict(r.context), r.attempts))
            for r in rows
        ]
        # Rounds alternate sender and baseline; the best of each is reported, because on a
        # shared machine other processes only ever make a round slower.
        for _ in range(rounds):
            reset_outbox(app)
            sink.reset()
            started = time.perf_counter()
            result = deliver_due(app.deliver_deps(), NOW)
            sender_times.append(time.perf_counter() - started)
            with app.sessions() as session:
                sent_rows = session.scalar(select(func.count()).select_from(Alert).where(Alert.status == "sent"))
            assert result.sent == n == sent_rows == sink.count, (result, sent_rows, sink.count)

            sink.reset()
            started = time.perf_counter()
            client = smtplib.SMTP("127.0.0.1", port, timeout=30)
            for envelope in envelopes:
                client.send_message(envelope.message, to_addrs=[envelope.recipient])
            client.quit()
            baseline_times.append(time.perf_counter() - started)
            assert sink.count == n
    finally:
        app.close()
        sink.close()

    sender_rate = n / min(sender_times)
    baseline_rate = n / min(baseline_times)
    ratio = sender_rate / baseline_rate
    backend = "postgresql" if db_url and db_url.startswith("postgresql") else "sqlite"
    print(f"deliver_due ({backend}, batch 50; claim, render, build, send, record): {n} messages, best of {rounds}: "
          f"{min(sender_times):.2f}s = {sender_rate:,.0f} msgs/s (rounds: {', '.join(f'{t:.2f}s' for t in sender_times)})")
    print(f"baseline (pre-built messages, plain smtplib loop, one connection): {n} messages, best of {rounds}: "
          f"{min(baseline_times):.2f}s = {baseline_rate:,.0f} msgs/s (rounds: {', '.join(f'{t:.2f}s' for t in baseline_times)})")
    print(f"ratio sender/baseline = {ratio:.2f} (aim >= 0.5)")
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--db", help="database URL it may wipe and fill (default: a fresh SQLite file)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    ratio = run(args.alerts, args.db, args.rounds)
    return 0 if ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
