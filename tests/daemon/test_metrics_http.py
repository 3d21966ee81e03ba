"""Metrics read from the ledger at scrape time, served with /healthz on a loopback listener."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import requests
from prometheus_client import generate_latest
from sqlalchemy import delete
from prometheus_client.parser import text_string_to_metric_families

from shortage_watch.app import App
from shortage_watch.clock import FixedClock, utc_now
from shortage_watch.services.replica import write_heartbeat
from shortage_watch.health import check_health
from shortage_watch.httpserver import OperatorServer
from shortage_watch.metrics import DaemonMetrics
from shortage_watch.store.tables import Alert, RawPayload, RawReceipt, RecordVersion, SourceState

from tests.store.write_lock import finishes_within, write_lock_held

from .conftest import T0, add_alert, add_obligation, make_settings


def samples(metrics: DaemonMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def seed_ledger(app: App) -> None:
    with app.sessions.begin() as s:
        payload = RawPayload(sha256="f" * 64, size=10, content=b"x", first_seen_at=T0)
        s.add(payload)
        s.flush()
        receipt = RawReceipt(
            source="inbox", name="n.csv", payload_id=payload.id, received_at=T0, status="partial",
            accepted=2, duplicates=1, rejected=3,
        )
        s.add(receipt)
        s.flush()
        for i, kind in enumerate(("stoppage_notice", "stoppage_notice", "shortage_report")):
            s.add(RecordVersion(
                kind=kind, record_key=f"k{i}", version=1, content_hash="h", data={}, source="inbox",
                receipt_id=receipt.id, received_at=T0,
            ))
        s.add(SourceState(name="inbox", last_success_at=T0, consecutive_failures=0))
        s.add(SourceState(name="feed", consecutive_failures=4, last_error="timeout"))
        add_obligation(s, "N1/D1", state="open", level=0)
        add_obligation(s, "N1/D2", state="overdue", level=2)
        add_obligation(s, "N1/D3", state="overdue", level=2)
        add_obligation(s, "N1/D4", state="fulfilled", level=1)
        add_alert(s, "a1", status="pending")
        add_alert(s, "a2", status="dead", last_error="550 mailbox unavailable", attempts=8)
        add_alert(s, "a3", status="sent", sent_at=T0)


def test_collector_reads_the_ledger_at_scrape_time(app: App) -> None:
    metrics = DaemonMetrics(app.engine)
    before = samples(metrics)
    assert before[("shortage_watch_db_up", ())] == 1
    assert before[("shortage_watch_outbox", (("status", "pending"),))] == 0
    assert before[("shortage_watch_outbox", (("status", "dead"),))] == 0

    seed_ledger(app)
    metrics.sweep_seconds.observe(0.2)
    after = samples(metrics)

    assert after[("shortage_watch_records_ingested_total", (("kind", "stoppage_notice"), ("source", "inbox")))] == 2
    assert after[("shortage_watch_records_ingested_total", (("kind", "shortage_report"), ("source", "inbox")))] == 1
    assert after[("shortage_watch_rows_total", (("outcome", "rejected"), ("source", "inbox")))] == 3
    assert after[("shortage_watch_rows_total", (("outcome", "accepted"), ("source", "inbox")))] == 2
    assert after[("shortage_watch_receipts_total", (("source", "inbox"), ("status", "partial")))] == 1
    assert after[("shortage_watch_source_last_success_timestamp_seconds", (("source", "inbox"),))] == T0.timestamp()
    assert after[("shortage_watch_source_consecutive_failures", (("source", "feed"),))] == 4
    assert after[("shortage_watch_obligations", (("level", "0"), ("state", "open")))] == 1
    assert after[("shortage_watch_obligations", (("level", "2"), ("state", "overdue")))] == 2
    assert not any(k[0] == "shortage_watch_obligations" and ("state", "fulfilled") in k[1] for k in after)
    assert after[("shortage_watch_outbox", (("status", "dead"),))] == 1
    assert after[("shortage_watch_outbox_send_failures", (("status", "dead"),))] == 1
    assert after[("shortage_watch_sweep_duration_seconds_count", ())] == 1


def test_unreachable_database_reports_db_down_instead_of_failing_the_scrape(tmp_path) -> None:
    from sqlalchemy import create_engine

    metrics = DaemonMetrics(create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none"))
    got = samples(metrics)
    assert got[("shortage_watch_db_up", ())] == 0
    assert ("shortage_watch_sweep_duration_seconds_count", ()) in got


def test_listener_serves_metrics_and_healthz_on_loopback(app: App) -> None:
    metrics = DaemonMetrics(app.engine)
    server = OperatorServer("127.0.0.1", 0, metrics, lambda: check_health(app.settings, app.engine, replica=app.replica_id))
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        seed_ledger(app)
        response = requests.get(f"{base}/metrics", timeout=10)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
        assert 'shortage_watch_outbox{status="dead"} 1.0' in response.text

        unhealthy = requests.get(f"{base}/healthz", timeout=10)
        assert unhealthy.status_code == 503
        failed = {c["name"] for c in unhealthy.json()["checks"] if not c["ok"]}
        assert failed == {"heartbeat", "outbox"}

        with app.sessions.begin() as s:
            s.execute(delete(Alert).where(Alert.status == "dead"))
        write_heartbeat(app.replica, utc_now() - timedelta(seconds=1))
        healthy = requests.get(f"{base}/healthz", timeout=10)
        assert healthy.status_code == 200 and healthy.json()["status"] == "healthy"

        assert requests.get(f"{base}/nope", timeout=10).status_code == 404
    finally:
        server.stop()


def test_a_scrape_reads_while_another_replica_holds_the_write_lock(sqlite_url: str, tmp_path: Path) -> None:
    app = App(make_settings(sqlite_url, tmp_path), clock=FixedClock(T0), replica_id="replica-a")
    try:
        seed_ledger(app)
        metrics = DaemonMetrics(app.engine)
        with write_lock_held(sqlite_url):
            scraped = finishes_within(5, lambda: samples(metrics))
        assert scraped[("shortage_watch_db_up", ())] == 1
        assert scraped[("shortage_watch_outbox", (("status", "dead"),))] == 1
    finally:
        app.close()
