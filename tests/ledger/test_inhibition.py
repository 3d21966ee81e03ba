"""Inhibition on SQLite and PostgreSQL: a case escalated to the province silences the county and city
alerts that would repeat it; an obligation fulfilled while its alerts waited is not chased."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from shortage_watch.services.deliver import deliver_due
from shortage_watch.services.escalate import sweep
from shortage_watch.store.tables import AuditEvent, ShortageCase
from tests.ledger.conftest import alerts, at, store_notice, store_report, store_shortage


def _regional_case_naming_d1(app):
    for n, day in ((1, 8), (2, 9), (3, 10)):
        store_shortage(app, at(f"2024-10-{day:02d}T10:00"), report_id=f"S{n}", hospital_code=f"H{n}", distributor_code="D1",
                       region_code="350902" if n % 2 else "350981", reported_on=date(2024, 10, day))


def test_case_escalated_to_the_province_inhibits_waiting_county_and_city_alerts(db_url, make_app):
    app = make_app(db_url)
    _regional_case_naming_d1(app)
    sweep(app.sweep_deps(), at("2024-10-18T09:00"))  # the explanation is overdue: county, then city (interview)
    waiting = {(a.template, a.recipient_email) for a in alerts(app) if a.status == "pending"}
    assert {("regional_shortage", "ybj@ningde.example"), ("overdue_alert", "ybj@jiaocheng.example")} <= waiting

    sweep(app.sweep_deps(), at("2024-10-24T08:00"))  # 10 working days regional: to the province
    with app.sessions() as session:
        assert session.scalars(select(ShortageCase.state)).one() == "escalated"
        inhibited_events = session.scalars(select(AuditEvent).where(AuditEvent.action == "inhibited")).all()
    by_status: dict[str, set] = {}
    for a in alerts(app):
        by_status.setdefault(a.status, set()).add((a.template, a.recipient_email))
    assert {("regional_shortage", "ybj@ningde.example"), ("regional_shortage", "wjw@ningde.example"),
            ("overdue_alert", "ybj@jiaocheng.example")} <= by_status["inhibited"]
    assert ("regional_escalation", "ybj@fujian.example") in by_status["pending"]  # the province hears
    assert ("written_reminder", "d1@dist.example") in by_status["pending"]  # the distributor is still chased
    assert len(inhibited_events) == len(by_status["inhibited"])
    sent = deliver_due(app.deliver_deps(), at("2024-10-24T10:00")).sent
    assert sent == len(by_status["pending"])


def test_county_and_city_alerts_written_after_the_escalation_are_inhibited(db_url, make_app):
    app = make_app(db_url)
    _regional_case_naming_d1(app)
    sweep(app.sweep_deps(), at("2024-10-24T08:00"))
    # A fourth hospital names another distributor: its explanation climbs the ladder after the escalation.
    store_shortage(app, at("2024-10-25T10:00"), report_id="S4", hospital_code="H5", distributor_code="D2",
                   region_code="350902", reported_on=date(2024, 10, 25))
    before = {a.id for a in alerts(app)}
    sweep(app.sweep_deps(), at("2024-11-15T09:00"))
    later = {(a.template, a.recipient_email, a.status) for a in alerts(app) if a.id not in before}
    assert ("overdue_alert", "ybj@jiaocheng.example", "inhibited") in later
    assert ("interview_recommendation", "ybj@ningde.example", "inhibited") in later
    assert ("written_reminder", "d2@dist.example", "pending") in later
    assert not {s for t, e, s in later if e in ("ybj@jiaocheng.example", "ybj@ningde.example")} - {"inhibited"}


def test_obligation_fulfilled_while_its_overdue_alerts_waited_is_not_mailed_as_overdue(db_url, make_app, tmp_path):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    sweep(app.sweep_deps(), at("2024-10-11T09:00"))  # written reminder and overdue alert written, not yet sent
    store_report(app, at("2024-10-11T09:30"))
    deliver_due(app.deliver_deps(), at("2024-10-11T10:00"))
    by_template = {a.template: a.status for a in alerts(app)}
    assert by_template["written_reminder"] == by_template["overdue_alert"] == "stale"
    assert by_template["late_report"] == "sent"
    assert len(list((tmp_path / "mail").glob("*.eml"))) == sum(1 for a in alerts(app) if a.status == "sent")
