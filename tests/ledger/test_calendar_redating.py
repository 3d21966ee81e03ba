"""Deadlines the calendar only estimated are re-dated by the sweep once the year's arrangement is known
(SQLite and PostgreSQL). 2027 has no official arrangement yet: it is estimated, erring late."""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from shortage_watch.daemon import Daemon
from shortage_watch.services.escalate import sweep
from shortage_watch.store.sweep import claim_to_redate, rows_to_redate
from shortage_watch.store.tables import Alert, AuditEvent, Obligation, ShortageCase
from tests.ledger.conftest import LedgerApp, at, store_notice, store_shortage

# A plausible 2027 notice: New Year's Day alone; Spring Festival from its eve (02-05) to
# 02-11 with a make-up Saturday. The estimate also rests 02-04 and 02-12, so the notice
# makes a deadline across Spring Festival earlier.
OVERRIDE_2027 = ('year = 2027\nsource = "test"\nholidays = ["2027-01-01", "2027-02-05", "2027-02-08", "2027-02-09", '
                 '"2027-02-10", "2027-02-11"]\nmakeup_workdays = ["2027-02-20"]\n')
# A notice that adds a rest day no estimate foresees (as the 2020 epidemic extension
# did): a deadline across it moves later.
OVERRIDE_2027_EXTRA_DAY = 'year = 2027\nsource = "test"\nholidays = ["2027-01-01", "2027-01-04"]\nmakeup_workdays = []\n'


def publish_2027(app: LedgerApp, daemon: Daemon, content: str = OVERRIDE_2027) -> None:
    """The operator drops 2027.toml into the overrides folder; the daemon reloads the calendar."""
    folder = Path(app.settings.calendar.overrides_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "2027.toml").write_text(content, encoding="utf-8")
    assert daemon.reload_calendar_if_changed()
    assert app.calendar.status(2027).value == "override"


def the_obligation(app: LedgerApp) -> Obligation:
    with app.sessions() as session:
        return session.scalars(select(Obligation)).one()


def events(app: LedgerApp, action: str) -> list[AuditEvent]:
    with app.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)).all())


def templates(app: LedgerApp) -> list[str]:
    """The templates of the alerts written, each once, in the order first written."""
    with app.sessions() as session:
        return list(dict.fromkeys(session.scalars(select(Alert.template).order_by(Alert.id)).all()))


def count(app: LedgerApp, table: type) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(table))


def test_estimated_deadline_is_redated_when_the_2027_override_arrives(db_url, make_app):
    app = make_app(db_url, now="2027-01-29T10:00")
    daemon = Daemon(app)
    store_notice(app, at("2027-01-29T10:00"), notified_on=date(2027, 1, 29))
    ob = the_obligation(app)
    assert (ob.due_on, ob.calendar_status) == (date(2027, 2, 16), "estimated")  # 02-04..02-12 all rest

    publish_2027(app, daemon)
    assert sweep(app.sweep_deps(), at("2027-01-29T11:00")).redated == 1

    ob = the_obligation(app)
    assert (ob.due_on, ob.calendar_status, ob.state) == (date(2027, 2, 12), "override", "open")
    assert ob.due_at == at("2027-02-12T23:59:59")
    assert ob.next_action_at == at("2027-02-04T00:00")  # the reminder, one working day before the real date
    (event,) = events(app, "deadline_recomputed")
    assert event.entity == "obligation" and event.entity_id == ob.id
    assert datetime.fromisoformat(event.detail["due_at_from"]) == at("2027-02-16T23:59:59")
    assert datetime.fromisoformat(event.detail["due_at_to"]) == at("2027-02-12T23:59:59")
    assert (event.detail["calendar_from"], event.detail["calendar_to"]) == ("estimated", "override")

    sweep(app.sweep_deps(), at("2027-02-04T09:00"))  # the reminder
    sweep(app.sweep_deps(), at("2027-02-13T09:00"))  # the real date has passed, the estimated one has not
    with app.sessions() as session:
        templates = set(session.scalars(select(Alert.template)).all())
    assert {"reminder", "written_reminder"} <= templates
    assert the_obligation(app).state == "overdue"


def test_repeat_sweeps_write_nothing_while_estimated_and_nothing_after_redating(db_url, make_app):
    app = make_app(db_url, now="2026-12-28T10:00")
    daemon = Daemon(app)
    store_notice(app, at("2026-12-28T10:00"), notified_on=date(2026, 12, 28))
    before = the_obligation(app)
    for _ in range(2):  # still estimated, same due date: not even updated_at moves
        assert sweep(app.sweep_deps(), at("2026-12-28T11:00")).redated == 0
    assert the_obligation(app).updated_at == before.updated_at
    assert events(app, "deadline_recomputed") == []

    publish_2027(app, daemon)
    assert sweep(app.sweep_deps(), at("2026-12-29T09:00")).redated == 1
    audits, alerts, redated = count(app, AuditEvent), count(app, Alert), the_obligation(app)
    assert sweep(app.sweep_deps(), at("2026-12-29T09:00")).redated == 0
    assert sweep(app.sweep_deps(), at("2026-12-29T10:00")).redated == 0
    assert (count(app, AuditEvent), count(app, Alert)) == (audits, alerts)
    assert the_obligation(app).updated_at == redated.updated_at


def test_obligation_overdue_on_the_estimate_is_open_again_and_its_alerts_stay_sent(db_url, make_app):
    app = make_app(db_url, now="2026-12-28T10:00")
    daemon = Daemon(app)
    store_notice(app, at("2026-12-28T10:00"), notified_on=date(2026, 12, 28))
    assert sweep(app.sweep_deps(), at("2027-01-06T00:00:01")).alerts == 2  # written reminder + county bureau, a day early
    assert the_obligation(app).state == "overdue"
    alerts_before = count(app, Alert)

    publish_2027(app, daemon, OVERRIDE_2027_EXTRA_DAY)
    result = sweep(app.sweep_deps(), at("2027-01-06T08:00"))
    assert (result.redated, result.alerts) == (1, 0)
    ob = the_obligation(app)
    assert (ob.state, ob.due_on, ob.calendar_status) == ("open", date(2027, 1, 6), "override")
    (event,) = events(app, "deadline_recomputed")
    assert (event.detail["state_from"], event.detail["state_to"]) == ("overdue", "open")
    assert "stay sent" in event.detail["note"]
    assert count(app, Alert) == alerts_before + 1  # nothing withdrawn; the distributor is told the new deadline
    assert templates(app)[-1] == "deadline_changed"

    # Overdue for real after the new due instant: the levels already applied do not fire twice.
    sweep(app.sweep_deps(), at("2027-01-07T00:00:01"))
    assert the_obligation(app).state == "overdue"
    with app.sessions() as session:
        written = session.scalars(select(Alert).where(Alert.template == "written_reminder")).all()
    assert len(written) == 1


def test_regional_case_due_date_is_redated(db_url, make_app):
    app = make_app(db_url, now="2026-12-24T10:00", regional_escalate_working_days=5)
    daemon = Daemon(app)
    for n, day in ((1, date(2026, 12, 24)), (2, date(2026, 12, 25)), (3, date(2026, 12, 28))):
        store_shortage(app, at(f"{day.isoformat()}T10:00"), report_id=f"S{n}", hospital_code=f"H{n}", reported_on=day)
    with app.sessions() as session:
        case = session.scalars(select(ShortageCase)).one()
    assert (case.state, case.calendar_status, case.due_at) == ("regional", "estimated", at("2027-01-05T23:59:59"))
    estimated_next = case.next_action_at

    publish_2027(app, daemon, OVERRIDE_2027_EXTRA_DAY)
    assert sweep(app.sweep_deps(), at("2026-12-29T09:00")).redated == 1
    with app.sessions() as session:
        case = session.get(ShortageCase, case.id)
    assert (case.calendar_status, case.due_at) == ("override", at("2027-01-06T23:59:59"))
    assert case.next_action_at > estimated_next
    (event,) = events(app, "deadline_recomputed")
    assert event.entity == "case" and event.detail["calendar_to"] == "override"
    assert sweep(app.sweep_deps(), at("2027-01-06T09:00")).alerts == 0  # not yet to the province
    assert sweep(app.sweep_deps(), at("2026-12-29T09:00")).redated == 0


def test_redating_claim_loses_to_a_sweeper_that_redated_first(db_url, make_app):
    app = make_app(db_url, now="2026-12-28T10:00")
    other = make_app(db_url, now="2026-12-28T10:00")
    store_notice(app, at("2026-12-28T10:00"), notified_on=date(2026, 12, 28))
    with app.sessions() as session:
        (stale,) = rows_to_redate(session, Obligation, "estimated", ("open", "overdue"), 0, 10)

    publish_2027(other, Daemon(other))
    assert sweep(other.sweep_deps(), at("2026-12-29T09:00")).redated == 1
    with app.sessions.begin() as session:
        won = claim_to_redate(session, Obligation, stale, ("open", "overdue"), at("2026-12-29T09:00"), "late",
                              at("2026-12-29T09:00") + timedelta(seconds=60))
    assert not won
    assert len(events(app, "deadline_recomputed")) == 1



def test_open_obligation_is_checked_just_after_its_due_instant_even_past_its_due_levels():
    from shortage_watch.domain.obligations import overdue_check_at

    due_at = at("2027-01-05T23:59:59")
    later = at("2027-01-08T00:00")
    assert overdue_check_at("open", due_at, later) == at("2027-01-06T00:00")
    assert overdue_check_at("open", due_at, None) == at("2027-01-06T00:00")
    assert overdue_check_at("open", due_at, at("2027-01-04T00:00")) == at("2027-01-04T00:00")
    assert overdue_check_at("overdue", due_at, later) == later


def publish(app: LedgerApp, daemon: Daemon, year: int, content: str) -> None:
    """The operator writes (or rewrites) <year>.toml in the overrides folder; the daemon reloads the calendar."""
    folder = Path(app.settings.calendar.overrides_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{year}.toml"
    before = path.stat().st_mtime_ns if path.exists() else None
    path.write_text(content, encoding="utf-8")
    if before is not None and path.stat().st_mtime_ns == before:  # a rewrite within the clock's resolution
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))
    assert daemon.reload_calendar_if_changed()
    assert app.calendar.status(year).value == "override"


# 2026 as its notice has it (the rest weekdays and make-up days of test_calendar_official.py), amended
# as 2020's Spring Festival was: 10-08 becomes a rest day.
AMENDED_2026 = ('year = 2026\nsource = "amended"\nholidays = ["2026-01-01", "2026-01-02", "2026-02-16", "2026-02-17", '
                '"2026-02-18", "2026-02-19", "2026-02-20", "2026-02-23", "2026-04-06", "2026-05-01", "2026-05-04", '
                '"2026-05-05", "2026-06-19", "2026-09-25", "2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", '
                '"2026-10-07", "2026-10-08"]\n'
                'makeup_workdays = ["2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10"]\n')


def test_official_deadline_is_redated_when_an_override_amends_its_year(db_url, make_app):
    app = make_app(db_url, now="2026-09-29T10:00")
    daemon = Daemon(app)
    store_notice(app, at("2026-09-29T10:00"), notified_on=date(2026, 9, 29))
    ob = the_obligation(app)
    # 09-30, 10-08, 10-09, the make-up Saturday 10-10, 10-12.
    assert (ob.due_on, ob.calendar_status) == (date(2026, 10, 12), "official")

    publish(app, daemon, 2026, AMENDED_2026)
    assert sweep(app.sweep_deps(), at("2026-10-08T09:00")).redated == 1
    ob = the_obligation(app)
    assert (ob.due_on, ob.calendar_status, ob.state) == (date(2026, 10, 13), "override", "open")
    (event,) = events(app, "deadline_recomputed")
    assert (event.detail["calendar_from"], event.detail["calendar_to"]) == ("official", "override")

    # Not overdue on the day the notice before the amendment made the last: a reminder, no written reminder, no bureau alert.
    sweep(app.sweep_deps(), at("2026-10-13T00:00:01"))
    assert the_obligation(app).state == "open"
    assert templates(app) == ["receipt", "notice_opened", "deadline_changed", "reminder"]
    assert sweep(app.sweep_deps(), at("2026-10-13T09:00")).redated == 0  # re-dated once, not every sweep


def test_override_deadline_is_redated_when_the_override_is_amended(db_url, make_app):
    app = make_app(db_url, now="2027-01-04T10:00")
    daemon = Daemon(app)
    publish(app, daemon, 2027, 'year = 2027\nholidays = ["2027-01-01"]\n')
    store_notice(app, at("2027-01-04T10:00"), notified_on=date(2027, 1, 4))
    assert (the_obligation(app).due_on, the_obligation(app).calendar_status) == (date(2027, 1, 11), "override")

    publish(app, daemon, 2027, 'year = 2027\nholidays = ["2027-01-01", "2027-01-06"]\n')  # the notice amended
    assert sweep(app.sweep_deps(), at("2027-01-05T09:00")).redated == 1
    ob = the_obligation(app)
    assert (ob.due_on, ob.due_at, ob.calendar_status) == (date(2027, 1, 12), at("2027-01-12T23:59:59"), "override")
    sweep(app.sweep_deps(), at("2027-01-12T00:00:01"))
    assert the_obligation(app).state == "open"
    assert templates(app) == ["receipt", "notice_opened", "deadline_changed", "reminder"]
    assert sweep(app.sweep_deps(), at("2027-01-12T09:00")).redated == 0


def test_the_distributor_is_told_the_new_deadline_once_as_its_receipt_promised(db_url, make_app):
    # The receipt of an estimated deadline says "如节假日安排调整，将另行通知": the re-dating must tell it.
    app = make_app(db_url, now="2027-01-29T10:00")
    daemon = Daemon(app)
    store_notice(app, at("2027-01-29T10:00"), notified_on=date(2027, 1, 29))
    publish_2027(app, daemon)
    assert sweep(app.sweep_deps(), at("2027-01-29T11:00")).redated == 1
    sweep(app.sweep_deps(), at("2027-01-29T12:00"))

    with app.sessions() as session:
        (mail,) = session.scalars(select(Alert).where(Alert.template == "deadline_changed")).all()
    assert (mail.recipient_role, mail.status) == ("distributor", "pending")
    assert mail.context["previous_deadline"]["due_on"] == "2027-02-16"
    assert mail.context["previous_deadline"]["calendar"] == "estimated"
    assert (mail.context["deadline"]["due_on"], mail.context["deadline"]["calendar"]) == ("2027-02-12", "override")
    rendered = app.renderer.render(mail.template, mail.context, "zh-CN")
    assert rendered.subject.startswith("期限调整：")
    assert "原为2027年2月16日（星期二）24:00前" in rendered.text and "期限调整为2027年2月12日（星期五）24:00前" in rendered.text


def test_a_redating_that_keeps_the_due_date_mails_nothing(db_url, make_app):
    app = make_app(db_url, now="2026-12-28T10:00")
    daemon = Daemon(app)
    store_notice(app, at("2026-12-28T10:00"), notified_on=date(2026, 12, 28))
    due_before, alerts_before = the_obligation(app).due_at, count(app, Alert)
    publish(app, daemon, 2027, 'year = 2027\nholidays = ["2027-01-01"]\n')  # what the estimate assumed around New Year
    assert sweep(app.sweep_deps(), at("2026-12-28T11:00")).redated == 1
    assert (the_obligation(app).due_at, the_obligation(app).calendar_status) == (due_before, "override")
    assert count(app, Alert) == alerts_before
