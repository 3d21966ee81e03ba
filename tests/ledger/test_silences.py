"""Silences on SQLite and PostgreSQL: mail is held, audited and listed, while the ledger runs on;
at the end each held item goes out once, at its current level."""

from __future__ import annotations

import email
import email.policy
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from shortage_watch.commands.ledger import compliance_rows
from shortage_watch.domain.directory import Contact, Directory
from shortage_watch.domain.obligations import overdue_working_days
from shortage_watch.services.deliver import deliver_due
from shortage_watch.services.digests import send_daily_digests
from shortage_watch.services.escalate import sweep
from shortage_watch.services.silences import add_silence, end_silence
from shortage_watch.store.tables import Alert, AuditEvent, Obligation, StoppageNotice
from tests.ledger.conftest import NOTICE, alerts, at, sample_directory, store_notice, store_report


def county_insurance_takes_digest() -> Directory:
    """The sample directory, with 蕉城区医保局 reading a daily digest."""
    base = sample_directory()
    contacts = [
        Contact(c.region_code, c.role, c.emails, c.name, delivery="digest") if (c.region_code, c.role) == ("350902", "insurance") else c
        for c in base.contacts_all()
    ]
    return Directory.build(base.regions.values(), contacts, base.distributors.values(), base.hospitals.values())


def silence(app, now, until="2024-10-20T00:00", by="officer-wang", reason="国庆期间集中处理", **matchers):
    fields = {"region": None, "distributor": None, "product": None, "template": None, **matchers}
    silence_id, _, _ = add_silence(app.sessions, app.usable_directory(), **fields, until=at(until), reason=reason, by=by, now=now)
    return silence_id


def mailed(tmp_path: Path) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in sorted((tmp_path / "mail").glob("*.eml"))]


def test_held_alert_is_audited_with_who_and_why_and_listed_in_the_digest(db_url, make_app):
    app = make_app(db_url, directory=county_insurance_takes_digest())
    silence_id = silence(app, at("2024-09-27T09:00"), region="350900")  # the city covers 蕉城区
    store_notice(app, at("2024-09-27T10:00"))
    rows = alerts(app)
    assert {a.template for a in rows} == {"receipt", "notice_opened"}
    assert all(a.status == "held" and a.silence_id == silence_id for a in rows)
    with app.sessions() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.entity == "alert", AuditEvent.action == "held")).all()
    assert len(events) == len(rows)
    assert {(e.actor, e.detail["reason"], e.detail["silence"]) for e in events} == {("officer-wang", "国庆期间集中处理", silence_id)}

    assert send_daily_digests(app.digest_deps(), at("2024-09-30T08:30")) >= 1
    digest = next(a for a in alerts(app) if a.template == "digest" and a.recipient_email == "ybj@jiaocheng.example")
    assert [(h["template"], h["silence_id"]) for h in digest.context["held"]] == [("notice_opened", silence_id)]
    text = app.renderer.render("digest", digest.context, "zh-CN").text
    assert f"静默 #{silence_id} 暂缓至" in text and "国庆期间集中处理" in text


def test_obligation_goes_overdue_and_counts_late_in_compliance_during_the_silence(db_url, make_app):
    app = make_app(db_url)
    silence(app, at("2024-09-27T09:00"), distributor="D1")
    store_notice(app, at("2024-09-27T10:00"))
    sweep(app.sweep_deps(), at("2024-10-11T09:00"))
    with app.sessions() as session:
        obligation = session.scalars(select(Obligation)).one()
    assert obligation.state == "overdue"
    assert {a.template for a in alerts(app)} >= {"written_reminder", "overdue_alert"}
    assert {a.status for a in alerts(app)} == {"held"}
    assert deliver_due(app.deliver_deps(), at("2024-10-11T09:00")).sent == 0

    store_report(app, at("2024-10-14T10:00"))
    compliance = compliance_rows(app, None, at("2024-10-14T11:00"))
    assert [(r["distributor"], r["late"], r["on_time"]) for r in compliance] == [("D1", 1, 0)]
    with app.sessions() as session:
        obligation = session.scalars(select(Obligation)).one()
    assert obligation.state == "fulfilled_late" and obligation.late_working_days == 3  # 10-11, make-up Saturday 10-12, 10-14


def test_at_the_end_each_recipient_gets_one_message_at_the_current_level(db_url, make_app, tmp_path):
    app = make_app(db_url)
    silence_id = silence(app, at("2024-09-27T09:00"), distributor="D1", until="2024-10-31T00:00")
    store_notice(app, at("2024-09-27T10:00"))
    for day in ("2024-10-09T09:00", "2024-10-11T09:00", "2024-10-15T09:00"):
        sweep(app.sweep_deps(), at(day))
    held = alerts(app)
    assert {a.status for a in held} == {"held"} and len(held) == 7  # receipt, notice_opened ×2, reminder, written reminder, overdue, interview

    assert end_silence(app.sessions, silence_id, by="officer-li", now=at("2024-10-16T10:00")) is None
    sweep(app.sweep_deps(), at("2024-10-16T10:00"))  # releases what the ended silence held
    released = {a.recipient_email: a for a in alerts(app) if a.status == "pending"}
    assert {e: a.template for e, a in released.items()} == {
        "d1@dist.example": "written_reminder",  # not the receipt and reminder again
        "ybj@jiaocheng.example": "overdue_alert",
        "wjj@jiaocheng.example": "notice_opened",
        "ybj@ningde.example": "interview_recommendation",
    }
    assert {a.status for a in alerts(app)} == {"pending", "superseded"}
    with app.sessions() as session:
        ob = session.scalars(select(Obligation)).one()
    days_now = overdue_working_days(app.calendar, ob.due_on, ob.due_at, at("2024-10-16T10:00"))
    assert released["ybj@jiaocheng.example"].context["overdue_working_days"] == days_now == 5  # current, not the 1 it was written with

    assert deliver_due(app.deliver_deps(), at("2024-10-16T10:00")).sent == 4
    assert sorted(m["To"] for m in mailed(tmp_path)) == sorted(released)
    assert deliver_due(app.deliver_deps(), at("2024-10-17T10:00")).sent == 0 and sweep(app.sweep_deps(), at("2024-10-17T10:00")).alerts == 0


def test_an_obligation_fulfilled_during_the_silence_is_not_chased_when_it_ends(db_url, make_app):
    app = make_app(db_url)
    silence_id = silence(app, at("2024-09-27T09:00"), region="350902")
    store_notice(app, at("2024-09-27T10:00"))
    sweep(app.sweep_deps(), at("2024-10-11T09:00"))
    store_report(app, at("2024-10-14T10:00"))  # late: the county hears of it, once the silence ends
    end_silence(app.sessions, silence_id, by="officer-li", now=at("2024-10-15T10:00"))
    sweep(app.sweep_deps(), at("2024-10-15T10:00"))
    sent = {(a.template, a.recipient_email) for a in alerts(app) if a.status == "pending"}
    assert ("late_report", "ybj@jiaocheng.example") in sent
    assert not {t for t, _ in sent} & {"reminder", "written_reminder", "overdue_alert"}
    stale = {a.template for a in alerts(app) if a.status == "stale"}
    assert {"written_reminder", "overdue_alert"} <= stale


def test_a_silence_on_another_region_holds_nothing(db_url, make_app):
    app = make_app(db_url)
    silence(app, at("2024-09-27T09:00"), region="500000")
    store_notice(app, at("2024-09-27T10:00"))
    assert "held" not in {a.status for a in alerts(app)}


def test_waiting_alerts_are_held_when_the_silence_is_set(db_url, make_app):
    app = make_app(db_url)
    store_notice(app, at("2024-09-27T10:00"))
    silence(app, at("2024-09-27T11:00"), template="notice_opened")
    by_template = {a.template: a.status for a in alerts(app)}
    assert by_template == {"receipt": "pending", "notice_opened": "held"}


def test_a_digest_waiting_for_working_hours_is_not_held_and_reaches_the_officer(db_url, make_app, tmp_path):
    # The digest is the mail that lists what silences hold: a silence set before office hours
    # must not hold it, nor let the next digest swallow it as one of the alerts it covers.
    app = make_app(db_url, directory=county_insurance_takes_digest())
    store_notice(app, at("2024-09-27T10:00"))
    assert send_daily_digests(app.digest_deps(), at("2024-09-30T08:05")) >= 1
    assert deliver_due(app.deliver_deps(), at("2024-09-30T08:05")).deferred >= 1  # waits for 08:30
    silence_id = silence(app, at("2024-09-30T08:15"), region="350902")
    end_silence(app.sessions, silence_id, by="officer-li", now=at("2024-09-30T09:00"))
    sweep(app.sweep_deps(), at("2024-09-30T09:00"))
    deliver_due(app.deliver_deps(), at("2024-09-30T09:00"))
    send_daily_digests(app.digest_deps(), at("2024-10-08T08:05"))  # the next working day's digest

    [monday] = [a for a in alerts(app) if a.dedup_key == "digest:350902:insurance:ybj@jiaocheng.example:2024-09-30"]
    assert monday.status == "sent"
    assert "ybj@jiaocheng.example" in {m["To"] for m in mailed(tmp_path)}


@pytest.mark.postgres
def test_an_alert_held_while_the_silence_is_being_ended_is_released_with_it(pg_url, make_app):
    # SQLite runs one writer at a time; on PostgreSQL a notice stored by one replica (or the portal)
    # may read the silence as active while an officer's `silences expire` ends and releases it.
    app = make_app(pg_url)
    silence_id = silence(app, at("2024-09-27T09:00"), region="350902")
    written, go_on = threading.Event(), threading.Event()

    def store_notice_held_open() -> None:
        now = at("2024-09-27T10:00")
        with app.sessions.begin() as session:
            row = StoppageNotice(**NOTICE, version=1, source="test", received_at=now, updated_at=now)
            session.add(row)
            session.flush()
            app.record_listener.record_stored(session, "stoppage_notice", row, None, now)
            session.flush()  # its alerts are written, held by the silence, not yet committed
            written.set()
            assert go_on.wait(timeout=60), "never let go"

    def expire() -> None:
        end_silence(app.sessions, silence_id, by="officer-li", now=at("2024-09-27T10:05"))
        sweep(app.sweep_deps(), at("2024-09-27T10:05"))

    ingest, expirer = threading.Thread(target=store_notice_held_open), threading.Thread(target=expire)
    ingest.start()
    try:
        assert written.wait(timeout=60)
        expirer.start()
        expirer.join(timeout=60)
        assert not expirer.is_alive(), "the expiry waited for the notice's open transaction"
    finally:
        go_on.set()
        ingest.join(timeout=60)
        expirer.join(timeout=60)
    sweep(app.sweep_deps(), at("2024-09-27T10:10"))

    rows = alerts(app)
    assert [a.template for a in rows if a.status == "held"] == []  # none held by a silence that already ended
    assert {(a.template, a.recipient_email) for a in rows if a.status == "pending"} >= {("notice_opened", "ybj@jiaocheng.example")}


def test_a_held_reminder_is_not_released_after_the_written_reminder_went_out(db_url, make_app):
    # Only reminders are silenced: the written reminder (overdue) reaches the distributor meanwhile,
    # so the reminder saying the report is due tomorrow must not follow it when the silence ends.
    app = make_app(db_url)
    silence_id = silence(app, at("2024-09-27T09:00"), template="reminder")
    store_notice(app, at("2024-09-27T10:00"))
    sweep(app.sweep_deps(), at("2024-10-09T09:00"))
    [reminder] = [a for a in alerts(app) if a.template == "reminder"]
    assert reminder.status == "held"
    sweep(app.sweep_deps(), at("2024-10-11T09:00"))
    assert deliver_due(app.deliver_deps(), at("2024-10-11T09:00")).sent >= 1
    assert {a.status for a in alerts(app) if a.template == "written_reminder"} == {"sent"}

    end_silence(app.sessions, silence_id, by="officer-li", now=at("2024-10-15T10:00"))
    sweep(app.sweep_deps(), at("2024-10-15T10:00"))
    [reminder] = [a for a in alerts(app) if a.template == "reminder"]
    assert reminder.status == "superseded"
    deliver_due(app.deliver_deps(), at("2024-10-15T10:00"))  # the levels due today (the city's interview) go
    assert [a.template for a in alerts(app) if a.recipient_email == "d1@dist.example" and a.status == "sent"] == ["receipt", "written_reminder"]


def test_a_held_regional_shortage_is_released_though_a_false_shortage_of_its_case_went_out(db_url, make_app):
    # A one-off event of the case (疑似假短缺) is no later level of its ladder: it supersedes nothing.
    from datetime import date

    from tests.ledger.conftest import store_shortage

    app = make_app(db_url)
    silence_id = silence(app, at("2024-10-08T09:00"), template="regional_shortage")
    for n, day in ((1, 8), (2, 9), (3, 10)):
        store_shortage(app, at(f"2024-10-{day:02d}T10:00"), report_id=f"S{n}", hospital_code=f"H{n}",
                       region_code="350902" if n % 2 else "350981", reported_on=date(2024, 10, day))
    store_shortage(app, at("2024-10-11T10:00"), report_id="S4", hospital_code="H4", region_code="350902",
                   reported_on=date(2024, 10, 11), cause="procurement")
    assert {(a.template, a.status) for a in alerts(app) if a.recipient_email == "wjw@ningde.example"} == {
        ("regional_shortage", "held"), ("false_shortage", "digest")}

    end_silence(app.sessions, silence_id, by="officer-li", now=at("2024-10-14T10:00"))
    sweep(app.sweep_deps(), at("2024-10-14T10:00"))
    assert {a.recipient_email for a in alerts(app) if a.template == "regional_shortage" and a.status == "pending"} == {
        "ybj@ningde.example", "wjw@ningde.example"}
