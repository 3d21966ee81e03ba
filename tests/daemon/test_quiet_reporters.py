"""Reporters that go quiet (SQLite and PostgreSQL): a source with nothing accepted for its
quiet_working_days, a distributor whose mail is dead-lettered for 2 working days, a sentinel hospital
silent for N working days. Listed in health --json warnings, metrics and the operations digest."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from shortage_watch.app import App
from shortage_watch.clock import FixedClock
from shortage_watch.health import check_health
from shortage_watch.metrics import DaemonMetrics
from shortage_watch.services.digests import send_daily_digests
from shortage_watch.services.quiet import find_quiet_reporters
from shortage_watch.settings import Settings
from shortage_watch.store.tables import Alert, AuditEvent, RawPayload, RawReceipt, ShortageReport, SourceState

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2024, 10, 14, 10, 0, tzinfo=SHANGHAI)  # Monday; 10-12 was a make-up working Saturday


def bj(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database={"url": db_url},
        calendar={"overrides_dir": str(tmp_path / "calendar")},
        mail={"transport": "file", "file_dir": str(tmp_path / "mail")},
        directory={"operations_email": "ops@sw.example.gov.cn"},
        sources=[
            {"name": "inbox-a", "type": "inbox", "path": str(tmp_path / "inbox"), "quiet_working_days": 3},
            {"name": "feed-b", "type": "http", "url": "http://127.0.0.1:9/feed"},
            {"name": "feed-never-polled", "type": "http", "url": "http://127.0.0.1:9/other"},
        ],
        quiet={"sentinel_hospitals": ["H1", "H2"], "sentinel_working_days": 3},
    )


@pytest.fixture
def app(settings: Settings):
    application = App(settings, clock=FixedClock(NOW))
    seed(application)
    yield application
    application.close()


def seed(app: App) -> None:
    with app.sessions.begin() as s:
        payload = RawPayload(sha256="0" * 64, size=1, content=b"x", first_seen_at=bj("2024-10-09T10:00"))
        s.add(payload)
        s.flush()
        for source in ("inbox-a", "feed-b"):
            s.add(SourceState(name=source, consecutive_failures=0, last_success_at=NOW))
            s.add(RawReceipt(source=source, name="f", payload_id=payload.id, received_at=bj("2024-10-09T10:00"), status="accepted", accepted=4))
        # A later file with nothing accepted is not a delivery.
        s.add(RawReceipt(source="inbox-a", name="g", payload_id=payload.id, received_at=bj("2024-10-11T10:00"), status="rejected", rejected=2))
        s.add(ShortageReport(report_id="S1", hospital_code="H1", hospital_name="宁德市第一医院", product_code="P", product_name="某药",
                             reported_on=bj("2024-10-12T09:00").date(), supply_status="short", source="t",
                             received_at=bj("2024-10-12T09:00"), updated_at=bj("2024-10-12T09:00")))
        for n, (email, died, sent) in enumerate([
            ("d1@dist.example", "2024-10-10T10:00", None),  # dead for 3 working days: quiet
            ("d2@dist.example", "2024-10-10T10:00", "2024-10-11T10:00"),  # got mail through since
            ("d3@dist.example", "2024-10-14T09:00", None),  # died today
        ]):
            code = f"D{n + 1}"
            dead = Alert(dedup_key=f"O{n}:written_reminder:{email}", thread_key=f"O{n}", level="written_reminder", template="written_reminder",
                         recipient_role="distributor", recipient_email=email, context={"distributor": {"code": code, "name": f"配送{code}"}},
                         status="dead", next_attempt_at=bj(died), created_at=bj(died))
            s.add(dead)
            s.flush()
            s.add(AuditEvent(at=bj(died), actor="r", entity="alert", entity_id=dead.id, action="dead", detail={}))
            if sent:
                s.add(Alert(dedup_key=f"O{n}:receipt:{email}", thread_key=f"O{n}", level="receipt", template="receipt",
                            recipient_role="distributor", recipient_email=email, context={}, status="sent", sent_at=bj(sent),
                            next_attempt_at=bj(sent), created_at=bj(sent)))


def test_each_kind_of_quiet_reporter_is_found_by_its_own_threshold(app: App) -> None:
    with app.sessions() as session:
        found = find_quiet_reporters(session, app.settings.sources, app.settings.quiet, app.calendar, NOW)
    assert [(q.kind, q.code, q.working_days) for q in found] == [
        ("source", "inbox-a", 4),  # 3 allowed; feed-b's 4 are within its default 5
        ("distributor", "D1", 3),
        ("sentinel", "H2", None),  # never reported; H1 reported on the make-up Saturday
    ]


def test_health_json_lists_quiet_reporters_as_warnings_without_failing(app: App) -> None:
    report = check_health(app.settings, now=NOW.astimezone(SHANGHAI))
    assert [w.split(":")[0] for w in report.warnings] == ["quiet source inbox-a", "quiet distributor D1 (配送D1)", "quiet sentinel H2"]
    assert report.as_json()["warnings"] == report.warnings
    assert {c.name for c in report.checks if not c.ok} == {"heartbeat", "outbox"}  # the quiet ones add no failure


def test_metrics_count_quiet_reporters_by_kind(app: App) -> None:
    metrics = DaemonMetrics(app.engine, lambda session: find_quiet_reporters(session, app.settings.sources, app.settings.quiet, app.calendar, NOW))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for family in metrics.registry.collect() for s in family.samples}
    assert samples[("shortage_watch_quiet_reporters", (("kind", "source"),))] == 1
    assert samples[("shortage_watch_quiet_reporters", (("kind", "distributor"),))] == 1
    assert samples[("shortage_watch_quiet_reporters", (("kind", "sentinel"),))] == 1
    assert samples[("shortage_watch_quiet_reporter_working_days", (("code", "inbox-a"), ("kind", "source")))] == 4
    assert samples[("shortage_watch_quiet_reporter_working_days", (("code", "H2"), ("kind", "sentinel")))] == -1


def test_operations_digest_lists_them_once_a_day(app: App) -> None:
    assert send_daily_digests(app.digest_deps(), NOW) == 1
    assert send_daily_digests(app.digest_deps(), NOW.replace(hour=15)) == 0
    with app.sessions() as session:
        digest = session.scalars(select(Alert).where(Alert.template == "operations_digest")).one()
    assert digest.recipient_email == "ops@sw.example.gov.cn" and digest.status == "pending"
    assert [q["code"] for q in digest.context["quiet"]] == ["inbox-a", "D1", "H2"]
    text = app.renderer.render("operations_digest", digest.context, "zh-CN").text
    assert "inbox-a" in text and "配送企业（邮件无法投递）" in text and "从未" in text
