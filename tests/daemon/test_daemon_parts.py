"""The daemon's own work on the ledger: leases, releasing claims, housekeeping, timers."""

from __future__ import annotations

import logging
import os
import threading
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from freezegun import freeze_time
from sqlalchemy import select

from shortage_watch.app import App
from shortage_watch.calendar import WorkingCalendar
from shortage_watch.clock import FixedClock, utc_now
from shortage_watch.daemon import Daemon
from shortage_watch.mail.samples import sample_alert_context
from shortage_watch.domain.working_hours import working_day_from
from shortage_watch.services.housekeeping import calendar_warnings, prune_old_records
from shortage_watch.services.replica import claim_named_lease, release_named_lease, release_replica_claims, write_heartbeat
from shortage_watch.store.tables import Alert, Heartbeat, Lease, Obligation, RawPayload, RawReceipt, ShortageCase, SourceState

from .conftest import T0, add_alert, add_case, add_obligation, make_settings

SHANGHAI = WorkingCalendar().tz


def at_local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=SHANGHAI).astimezone(timezone.utc)


def other_replica(app: App, name: str) -> App:
    return App(app.settings, clock=app.clock, replica_id=name)


def test_named_lease_is_held_by_one_replica_until_released(app: App) -> None:
    b = other_replica(app, "replica-b")
    assert claim_named_lease(app.replica, "digests", 60)
    assert claim_named_lease(app.replica, "digests", 60), "the holder may renew its own lease"
    assert not claim_named_lease(b.replica, "digests", 60)
    release_named_lease(app.replica, "digests")
    assert claim_named_lease(b.replica, "digests", 60)
    b.close()


def test_expired_named_lease_is_taken_over(app: App) -> None:
    b = other_replica(app, "replica-b")
    with app.sessions.begin() as s:
        s.add(Lease(name="housekeeping", owner="replica-dead", until=utc_now() - timedelta(seconds=1)))
    assert claim_named_lease(b.replica, "housekeeping", 60)
    with app.sessions() as s:
        assert s.get(Lease, "housekeeping").owner == "replica-b"
    b.close()


def test_release_hands_back_only_this_replicas_claims(app: App) -> None:
    later = utc_now() + timedelta(minutes=5)
    with app.sessions.begin() as s:
        s.add(SourceState(name="inbox", lease_owner="replica-a", lease_until=later))
        s.add(SourceState(name="feed", lease_owner="replica-b", lease_until=later))
        s.add(Lease(name="digests", owner="replica-a", until=later))
        add_alert(s, "O1:a", status="sending", lease_owner="replica-a", lease_until=later)
        add_alert(s, "O1:b", status="sending", lease_owner="replica-b", lease_until=later)
        add_alert(s, "O1:c", status="sent", lease_owner="replica-a", lease_until=later)
        add_obligation(s, "N1/D1", claimed_by="replica-a", claimed_until=later)
        add_obligation(s, "N1/D2", claimed_by="replica-b", claimed_until=later)
        add_case(s, "P1", claimed_by="replica-a", claimed_until=later)
    write_heartbeat(app.replica, utc_now())

    counts = release_replica_claims(app.replica)

    assert counts == {"sources": 1, "leases": 1, "alerts": 1, "obligations": 1, "cases": 1}
    with app.sessions() as s:
        assert s.get(SourceState, "inbox").lease_owner is None
        assert s.get(SourceState, "feed").lease_owner == "replica-b"
        alerts = {a.dedup_key: (a.status, a.lease_owner) for a in s.scalars(select(Alert))}
        assert alerts == {"O1:a": ("pending", None), "O1:b": ("sending", "replica-b"), "O1:c": ("sent", "replica-a")}
        owners = {o.subject_key: o.claimed_by for o in s.scalars(select(Obligation))}
        assert owners == {"N1/D1": None, "N1/D2": "replica-b"}
        assert s.scalars(select(ShortageCase.claimed_by)).all() == [None]
        assert s.get(Heartbeat, "replica-a") is None


def test_heartbeat_row_is_inserted_then_refreshed(app: App) -> None:
    started = utc_now()
    write_heartbeat(app.replica, started)
    with app.sessions() as s:
        first = s.get(Heartbeat, "replica-a").beat_at
    write_heartbeat(app.replica, started)
    with app.sessions() as s:
        row = s.get(Heartbeat, "replica-a")
        assert row.beat_at >= first and row.started_at == started and row.version


def test_housekeeping_prunes_past_retention_only(app: App) -> None:
    now = T0
    old = now - timedelta(days=app.settings.daemon.retention_days + 1)
    recent = now - timedelta(days=1)
    with app.sessions.begin() as s:
        payloads = [
            RawPayload(sha256="a" * 64, size=3, content=b"old", first_seen_at=old),
            RawPayload(sha256="b" * 64, size=3, content=b"new", first_seen_at=recent),
            RawPayload(sha256="c" * 64, size=3, content=b"unparsed", first_seen_at=old),
        ]
        s.add_all(payloads)
        s.flush()
        for p, status in zip(payloads, ("accepted", "accepted", "received")):
            s.add(RawReceipt(source="inbox", name="f.csv", payload_id=p.id, received_at=p.first_seen_at, status=status))
        add_alert(s, "old-sent", status="sent", sent_at=old)
        add_alert(s, "new-sent", status="sent", sent_at=recent)
        add_alert(s, "old-dead", status="dead", created_at=old)

    result = prune_old_records(app.sessions, app.settings.daemon.retention_days, now)

    assert (result.payloads_pruned, result.alerts_deleted) == (1, 1)
    with app.sessions() as s:
        contents = {p.sha256[0]: p.content for p in s.scalars(select(RawPayload))}
        assert contents == {"a": None, "b": b"new", "c": b"unparsed"}
        assert sorted(s.scalars(select(Alert.dedup_key))) == ["new-sent", "old-dead"]


def test_calendar_warning_from_first_of_november_when_next_year_is_estimated(tmp_path: Path) -> None:
    settings = make_settings("sqlite://", tmp_path)
    app = App(settings, clock=FixedClock(T0))
    # 2025's arrangement was published in November 2024 and the library carries it.
    assert calendar_warnings(app.calendar, app.settings.calendar.overrides_dir, at_local(date(2024, 11, 1), 9)) == []
    # No year after the pinned ones is official: from 1 November it is called out.
    last_official = max(y for y, st in app.calendar.known_years(2035).items() if st.value == "official")
    assert calendar_warnings(app.calendar, app.settings.calendar.overrides_dir, at_local(date(last_official, 10, 31), 9)) == []
    warnings = calendar_warnings(app.calendar, app.settings.calendar.overrides_dir, at_local(date(last_official, 11, 1), 9))
    assert len(warnings) == 1 and f"the {last_official + 1} working-day calendar is not official" in warnings[0]


def test_calendar_override_silences_the_warning(tmp_path: Path) -> None:
    (tmp_path / "calendar").mkdir()
    app = App(make_settings("sqlite://", tmp_path), clock=FixedClock(T0))
    last_official = max(y for y, st in app.calendar.known_years(2035).items() if st.value == "official")
    year = last_official + 1
    (tmp_path / "calendar" / f"{year}.toml").write_text(f"year = {year}\nholidays = []\nmakeup_workdays = []\n")
    app = App(make_settings("sqlite://", tmp_path), clock=FixedClock(T0))
    assert calendar_warnings(app.calendar, app.settings.calendar.overrides_dir, at_local(date(last_official, 11, 2), 9)) == []


def test_digest_is_due_on_working_days_from_its_time() -> None:
    cal = WorkingCalendar()
    eight = time(8, 0)
    assert working_day_from(cal, at_local(date(2024, 9, 27), 8, 0), eight)  # Friday
    assert not working_day_from(cal, at_local(date(2024, 9, 27), 7, 59), eight)
    assert not working_day_from(cal, at_local(date(2024, 10, 1), 9), eight)  # National Day
    assert not working_day_from(cal, at_local(date(2024, 10, 7), 9), eight)  # holiday Monday
    assert working_day_from(cal, at_local(date(2024, 9, 29), 9), eight)  # make-up Sunday
    assert working_day_from(cal, at_local(date(2024, 10, 12), 9), eight)  # make-up Saturday
    assert not working_day_from(cal, at_local(date(2024, 10, 13), 9), eight)  # plain Sunday


def test_schedule_has_one_timer_per_source_and_job(tmp_path: Path) -> None:
    settings = make_settings(
        "sqlite://",
        tmp_path,
        daemon={"sweep_interval": 7, "deliver_interval": 3, "heartbeat_interval": 11},
    )
    settings = settings.model_copy(
        update={
            "sources": [
                _source("inbox", 5, tmp_path),
                _source("feed", 600, tmp_path),
            ]
        }
    )
    daemon = Daemon(App(settings, clock=FixedClock(T0)))
    start = datetime(2024, 9, 27, 10, 0, tzinfo=SHANGHAI)
    daemon.schedule(start)
    jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
    assert set(jobs) == {"poll:inbox", "poll:feed", "sweep", "deliver", "heartbeat", "digests", "monthly", "housekeeping"}
    assert jobs["poll:inbox"].trigger.start_date == start + timedelta(seconds=5), "the catch-up covers `start` itself"
    assert jobs["poll:inbox"].trigger.interval == timedelta(seconds=5)
    assert jobs["poll:feed"].trigger.interval == timedelta(seconds=600)
    assert jobs["sweep"].trigger.interval == timedelta(seconds=7)
    assert jobs["deliver"].trigger.interval == timedelta(seconds=3)
    assert str(jobs["digests"].trigger) == "cron[hour='8-23', minute='0', second='0']"
    assert str(jobs["housekeeping"].trigger) == "cron[hour='3', minute='30', second='0']"
    for job in jobs.values():
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 3600)


def test_timers_without_a_start_count_from_the_wall_clock_not_the_ledger_clock(tmp_path: Path) -> None:
    # `run` schedules from the real instant it starts; a replayed ledger clock (--now) must not move the timers.
    settings = make_settings("sqlite://", tmp_path, daemon={"sweep_interval": 7, "deliver_interval": 3})
    wall = datetime(2024, 10, 8, 1, 30, tzinfo=timezone.utc)
    with freeze_time(wall):
        daemon = Daemon(App(settings, clock=FixedClock(T0)))
        daemon.schedule()
    jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
    assert daemon.started_at == wall
    assert jobs["sweep"].trigger.start_date == wall + timedelta(seconds=7)
    assert jobs["deliver"].trigger.start_date == wall + timedelta(seconds=3)
    heartbeat = jobs["heartbeat"].trigger
    assert heartbeat.start_date == wall + timedelta(seconds=settings.daemon.heartbeat_interval)


def test_stop_leaves_a_job_still_running_once_the_shutdown_budget_is_spent(tmp_path: Path, caplog) -> None:
    settings = make_settings("sqlite://", tmp_path, daemon={"shutdown_seconds": 8})
    daemon = Daemon(App(settings, clock=FixedClock(T0)))
    entered, release = threading.Event(), threading.Event()

    def slow_send() -> None:  # an SMTP server that stopped answering
        entered.set()
        release.wait(30)

    worker = threading.Thread(target=daemon._step, args=("deliver", slow_send))
    with freeze_time(T0) as wall:
        worker.start()
        try:
            assert entered.wait(10)
            daemon.request_stop()
            wall.tick(timedelta(seconds=9))  # past the 8 s budget: no real waiting for it
            assert daemon._wait_for_jobs() == 1
        finally:
            release.set()
            worker.join(10)
    assert "1 job(s) still running after 8s; leaving them" in caplog.text


def test_a_failing_step_is_logged_and_the_next_step_still_runs(app: App, caplog) -> None:
    daemon = Daemon(app)
    ran = []

    def broken() -> None:
        raise RuntimeError("feed exploded")

    daemon._step("sweep", broken)
    daemon._step("deliver", lambda: ran.append("deliver"))
    assert ran == ["deliver"]
    failure = [r for r in caplog.records if r.levelname == "ERROR"]
    assert failure and failure[0].job == "sweep" and "feed exploded" in caplog.text


def test_a_step_still_running_is_not_started_twice(app: App, caplog) -> None:
    caplog.set_level(logging.INFO, logger="shortage_watch.daemon")
    daemon = Daemon(app)
    ran = []

    def nested() -> None:
        ran.append("outer")
        daemon._step("sweep", lambda: ran.append("inner"))

    daemon._step("sweep", nested)
    assert ran == ["outer"]
    assert "sweep still busy" in caplog.text


def _source(name: str, interval: int, tmp_path: Path):
    from shortage_watch.settings import SourceSettings

    return SourceSettings(name=name, type="inbox", path=tmp_path / name, interval=interval)


def test_calendar_override_added_while_running_is_picked_up(tmp_path: Path, caplog) -> None:
    folder = tmp_path / "calendar"
    folder.mkdir()
    app = App(make_settings("sqlite://", tmp_path), clock=FixedClock(T0))
    daemon = Daemon(app)
    assert app.calendar.status(2031).value == "estimated"
    assert not daemon.reload_calendar_if_changed()

    (folder / "2031.toml").write_text('year = 2031\nholidays = ["2031-10-01"]\nmakeup_workdays = []\n')
    assert daemon.reload_calendar_if_changed()
    assert app.calendar.status(2031).value == "override"
    assert not app.calendar.is_working_day(date(2031, 10, 1))

    (folder / "2032.toml").write_text("year = 'soon'\n")
    assert not daemon.reload_calendar_if_changed()
    assert app.calendar.status(2031).value == "override", "a bad file keeps the calendar in force"
    assert "2032.toml" in caplog.text


def test_missed_and_failed_timer_runs_are_logged(app: App, caplog) -> None:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobExecutionEvent
    from apscheduler.events import JobSubmissionEvent

    daemon = Daemon(app)
    late = datetime(2024, 9, 27, 9, 0, tzinfo=SHANGHAI)
    daemon._on_job_event(JobExecutionEvent(EVENT_JOB_MISSED, "sweep", "default", late))
    daemon._on_job_event(JobExecutionEvent(EVENT_JOB_ERROR, "deliver", "default", late, exception=OSError("disk")))
    daemon._on_job_event(JobSubmissionEvent(EVENT_JOB_MAX_INSTANCES, "poll:inbox", "default", [late]))
    records = {(r.levelname, r.job) for r in caplog.records}
    assert records == {("WARNING", "sweep"), ("ERROR", "deliver"), ("WARNING", "poll:inbox")}
    assert "timer run missed" in caplog.text and "disk" in caplog.text


def test_poll_outcomes_are_logged_with_their_source(tmp_path: Path, sqlite_url: str, caplog) -> None:
    caplog.set_level(logging.INFO, logger="shortage_watch.daemon")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "notices.json").write_text(
        '{"records": [{"record_kind": "stoppage_notice", "notice_id": "N1", "manufacturer": "某某制药",'
        ' "product_code": "P1", "product_name": "阿莫西林", "kind": "stoppage", "distributor_code": "D1",'
        ' "notified_on": "2024-09-27"}]}',
        encoding="utf-8",
    )
    os.utime(inbox / "notices.json", (0, 0))  # long settled
    settings = make_settings(sqlite_url, tmp_path).model_copy(update={"sources": [_source("inbox", 60, tmp_path)]})
    app = App(settings, clock=FixedClock(T0))
    Daemon(app).poll(only="inbox")
    app.close()
    polled = [r for r in caplog.records if r.getMessage().startswith("poll inbox: ok")]
    assert polled and polled[0].source == "inbox" and polled[0].count == 1


def test_request_stop_ends_the_run_loop_and_cleans_up(sqlite_url: str, tmp_path: Path) -> None:
    import threading

    app = App(make_settings(sqlite_url, tmp_path, daemon={"heartbeat_interval": 1}), replica_id="replica-stop")
    daemon = Daemon(app)
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["code"] = daemon.run(install_signals=False)
        except BaseException as exc:  # recorded for the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        for _ in range(300):
            with app.sessions() as s:
                if s.get(Heartbeat, "replica-stop") is not None:
                    break
            thread.join(0.05)
        daemon.request_stop()
        thread.join(10)
    finally:
        daemon.stopping.set()
    assert not thread.is_alive() and outcome == {"code": 0}
    assert not daemon.scheduler.running
    with app.sessions() as s:
        assert s.get(Heartbeat, "replica-stop") is None
    app.close()


def test_run_starts_with_one_catch_up_cycle(sqlite_url: str, tmp_path: Path, monkeypatch) -> None:
    app = App(make_settings(sqlite_url, tmp_path), replica_id="replica-catch-up")
    daemon = Daemon(app)
    cycles: list[str] = []

    def catch_up() -> None:
        cycles.append(threading.current_thread().name)
        daemon.request_stop()

    monkeypatch.setattr(daemon, "catch_up", catch_up)
    assert daemon.run(install_signals=False) == 0
    assert cycles == ["catch-up"], "once, off the main thread (which waits for a stop signal)"
    app.close()


def test_digest_and_monthly_timers_fire_again_later_the_same_day(tmp_path: Path) -> None:
    # A database or directory failure at 08:00 must not cost the bureaus that day's digest:
    # the runs are idempotent per day/month, so the timers try again each hour until midnight.
    daemon = Daemon(App(make_settings("sqlite://", tmp_path), clock=FixedClock(T0)))
    daemon.schedule(datetime(2024, 9, 27, 7, 0, tzinfo=SHANGHAI))
    jobs = {job.id: job for job in daemon.scheduler.get_jobs()}
    for job_id, first in (("digests", time(8, 0)), ("monthly", time(9, 0))):
        trigger = jobs[job_id].trigger
        fired = datetime.combine(date(2024, 9, 27), first, tzinfo=SHANGHAI)
        assert trigger.get_next_fire_time(None, fired - timedelta(minutes=1)) == fired
        retry = trigger.get_next_fire_time(fired, fired + timedelta(seconds=1))
        assert retry == fired + timedelta(hours=1)
        assert trigger.get_next_fire_time(None, fired.replace(hour=23, minute=59)).date() == date(2024, 9, 28)


def test_the_hourly_digest_timer_retries_a_failed_run_and_skips_once_done(app: App, monkeypatch) -> None:
    import shortage_watch.daemon as daemon_module

    calls: list[datetime] = []

    def send(deps: object, now: datetime) -> int:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return 1

    monkeypatch.setattr(daemon_module, "send_daily_digests", send)
    daemon = Daemon(app)
    day = date(2024, 9, 27)  # a Friday
    for hour in (8, 9, 10):
        app.clock.advance_to(at_local(day, hour))
        daemon._step("digests", daemon.digests)
    assert calls == [at_local(day, 8), at_local(day, 9)]  # failed at 8, done at 9, nothing at 10
    app.clock.advance_to(at_local(date(2024, 9, 29), 8))  # make-up Sunday: a new day
    daemon._step("digests", daemon.digests)
    assert calls[-1] == at_local(date(2024, 9, 29), 8)


def test_metrics_port_in_use_refuses_to_start_in_one_line_and_leaves_no_heartbeat(sqlite_url: str, tmp_path: Path) -> None:
    import socket

    import pytest

    from shortage_watch.daemon import DaemonStartError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = App(make_settings(sqlite_url, tmp_path, daemon={"http_enabled": True, "http_port": port}), replica_id="replica-port")
        with pytest.raises(DaemonStartError) as excinfo:
            Daemon(app).run(install_signals=False)
    assert excinfo.value.exit_code == 1 and f"127.0.0.1:{port}" in str(excinfo.value)
    with app.sessions() as s:
        assert s.get(Heartbeat, "replica-port") is None
    app.close()


def test_a_replica_that_found_the_digest_lease_held_runs_the_digests_when_its_holder_died(app: App, monkeypatch) -> None:
    # Replica A took the lease at 08:00 and died before writing the digests; its lease ran out. B, which
    # found the lease held at 08:00, must try again at 09:00 rather than take the day as done.
    import shortage_watch.daemon as daemon_module

    calls: list[datetime] = []
    monkeypatch.setattr(daemon_module, "send_daily_digests", lambda deps, now: calls.append(now) or 1)
    a = other_replica(app, "replica-dying")
    day = date(2024, 9, 27)  # a Friday
    app.clock.advance_to(at_local(day, 8))
    assert claim_named_lease(a.replica, "digests", 600)
    b = Daemon(app)
    b._step("digests", b.digests)
    assert calls == []
    with app.sessions.begin() as s:  # the real clock moved past A's lease
        s.get(Lease, "digests").until = utc_now() - timedelta(seconds=1)
    for hour in (9, 10):
        app.clock.advance_to(at_local(day, hour))
        b._step("digests", b.digests)
    assert calls == [at_local(day, 9)]  # run once the lease was free, then done for the day
    a.close()


def test_mail_written_after_a_calendar_override_is_picked_up_marks_its_make_up_days(tmp_path: Path) -> None:
    # The renderer says "调休上班日" after a weekend date that is a working day: it must ask the calendar
    # in force, not the one the daemon started with.
    folder = tmp_path / "calendar"
    folder.mkdir()
    app = App(make_settings("sqlite://", tmp_path), clock=FixedClock(T0))
    daemon = Daemon(app)
    assert not daemon.reload_calendar_if_changed()
    context = dict(sample_alert_context("receipt"), overdue_working_days=None)
    context["deadline"] = {**context["deadline"], "due_on": "2031-10-11", "due_at": "2031-10-11T17:30:00+08:00"}  # a Saturday
    assert "调休上班日" not in app.renderer.render("receipt", context, "zh-CN").subject

    (folder / "2031.toml").write_text('year = 2031\nholidays = ["2031-10-01"]\nmakeup_workdays = ["2031-10-11"]\n')
    assert daemon.reload_calendar_if_changed()
    assert "请于2031年10月11日（星期六，调休上班日）17:30前书面报告" in app.renderer.render("receipt", context, "zh-CN").subject
    assert "a make-up working day" in app.renderer.render("receipt", context, "en").subject
