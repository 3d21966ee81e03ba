"""`shortage-watch run`: this process's timers, its signals, and a clean exit.

APScheduler (BackgroundScheduler, in-memory job store) is only this process's timer; the
main thread waits on a stop event that SIGTERM/SIGINT set. The jobs' bodies are services
(poll, escalate, deliver, digests, housekeeping, replica).
Correctness lives in the database: a lease per source, claims on due obligations and
cases, claims on outbox rows, unique dedup keys. So two or three replicas on one
PostgreSQL share the work and each alert is sent once; a replica that dies leaves
leases that expire and are taken over.

Every job takes the ledger's `now` from `app.clock.now()`; leases and heartbeats use
the real clock (`utc_now()`).
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import threading
import time as monotonic
from functools import partial
from pathlib import Path
from datetime import date, datetime, time, timedelta
from typing import Any, Callable

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from shortage_watch import __version__
from shortage_watch.app import App
from shortage_watch.calendar import CalendarError, WorkingCalendar
from shortage_watch.clock import utc_now
from shortage_watch.domain.labels import zh_en
from shortage_watch.domain.working_hours import working_day_from
from shortage_watch.metrics import DaemonMetrics
from shortage_watch.redact import mask_url
from shortage_watch.services.cycle import run_cycle
from shortage_watch.services.deliver import deliver_due
from shortage_watch.services.digests import DigestDeps, send_daily_digests, send_monthly_summaries
from shortage_watch.services.escalate import sweep
from shortage_watch.services.housekeeping import calendar_warnings, prune_old_records
from shortage_watch.services.poll import poll_sources, source_due_now
from shortage_watch.services.quiet import find_quiet_reporters
from shortage_watch.services.replica import claim_named_lease, release_named_lease, release_replica_claims, write_heartbeat
from shortage_watch.store.db import current_revision, head_revision

log = logging.getLogger(__name__)


class DaemonStartError(Exception):
    """The daemon cannot start; the message tells the operator what to do.

    Exit code 2 when only the operator can fix it (schema), 1 when a retry may succeed
    (database unreachable): a service manager restarts on 1 and stops on 2.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def check_schema(app: App) -> None:
    """Refuse to run on an unreachable database or a schema older (or newer) than this code."""
    try:
        current = current_revision(app.engine)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise DaemonStartError(
            zh_en("无法连接数据库", f"database unreachable: {reason[0] if reason else type(exc).__name__}"), exit_code=1
        ) from None
    head = head_revision()
    if current != head:
        raise DaemonStartError(zh_en(
            f"数据库结构版本为{' ' + current if current else '空'}，本版本需要 {head}：请先运行 `shortage-watch db upgrade`",
            f"the database schema is at {current or 'empty'} but this version needs {head}: run `shortage-watch db upgrade` first",
        ))


# --- housekeeping ---------------------------------------------------------------------


def overrides_signature(directory: Path | None) -> tuple[tuple[str, int, int], ...]:
    """What the calendar override folder holds now (names, sizes, mtimes): changes mean reload."""
    if directory is None or not directory.is_dir():
        return ()
    return tuple(
        (path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in sorted(directory.glob("*.toml"))
    )


# --- the daemon ---------------------------------------------------------------------------


class Daemon:
    """Schedules poll, sweep, deliver, digests, housekeeping and heartbeat; stops cleanly on a signal."""

    def __init__(self, app: App, metrics: DaemonMetrics | None = None) -> None:
        self.app = app
        self.settings = app.settings
        self.metrics = metrics or DaemonMetrics(app.engine, lambda session: find_quiet_reporters(session, app.settings.sources, app.settings.quiet, app.calendar, app.clock.now()))
        self.started_at = utc_now()
        self.stopping = threading.Event()
        self._calendar_signature: tuple[tuple[str, int, int], ...] | None = None
        self.reload_calendar_if_changed()  # remember what the folder holds at start
        self._stop_requested_at: float | None = None
        # One lock per kind of work: the catch-up cycle and the timers never run the same
        # step twice at once in this process (max_instances covers one job id only).
        self._locks: dict[str, threading.Lock] = {}
        self._done_on: dict[str, date] = {}  # digests/monthly: the local day this process last completed them
        self._running = 0
        self._idle = threading.Condition()
        daemon = self.settings.daemon
        # Only the timer: it fires jobs on its own thread; `run` waits on `stopping` meanwhile.
        self.scheduler = BackgroundScheduler(
            timezone=self.settings.timezone,
            executors={"default": ThreadPoolExecutor(max_workers=4 + len(self.settings.sources))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": daemon.misfire_grace_seconds},
        )
        self.scheduler.add_listener(self._on_job_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)
        self.http: Any = None
        self.web: Any = None

    # jobs ------------------------------------------------------------------------------

    def poll(self, only: str | None = None) -> None:
        """Poll one source (or all): `services.poll.poll_sources`.

        The timer fires at the source's interval, so a healthy source is polled then; a
        failing one waits out intake's back-off (`source_is_due`) before it is tried again.
        """
        if only is not None and not source_due_now(self.app.read_sessions, self.settings.sources, only):
            log.debug("source in back-off after failures; not polled this tick", extra={"source": only})
            return
        for outcome in poll_sources(self.app.poll_deps(), self.app.clock.now(), only=only):
            level = logging.WARNING if outcome.status == "failed" else logging.INFO if outcome.items else logging.DEBUG
            log.log(level, "poll %s", outcome.line(), extra={"source": outcome.source, "count": outcome.items or None})

    def sweep(self) -> None:
        """Escalate what is due: `services.escalate.sweep`, timed into the sweep histogram."""
        self.reload_calendar_if_changed()
        started = monotonic.perf_counter()
        result = sweep(self.app.sweep_deps(), self.app.clock.now())
        elapsed = monotonic.perf_counter() - started
        self.metrics.sweep_seconds.observe(elapsed)
        log.debug("sweep done: %r", result, extra={"duration": round(elapsed, 3)})

    def deliver(self) -> None:
        """Send due alerts: `services.deliver.deliver_due`."""
        result = deliver_due(self.app.deliver_deps(), self.app.clock.now())
        log.debug("deliver done: %r", result)

    def digests(self) -> None:
        """On a working day from `mail.digest_time` on: the daily digests (idempotent per day)."""
        self._working_day_job("digests", self.settings.mail.digest_time, send_daily_digests)

    def monthly(self) -> None:
        """On a working day from `mail.monthly_time` on: the monthly summaries (idempotent per month,
        so the first working day the daemon runs in a month sends them)."""
        self._working_day_job("monthly", self.settings.mail.monthly_time, send_monthly_summaries)

    def _working_day_job(self, lease: str, at: time, send: Callable[[DigestDeps, datetime], int]) -> None:
        now = self.app.clock.now()
        if not working_day_from(self.app.calendar, now, at):
            log.debug("%s not due at %s", lease, now.isoformat(), extra={"job": lease})
            return
        today = self.app.calendar.local_date(now)
        if self._done_on.get(lease) == today:
            return  # the hourly timer only retries a run that failed today
        # One replica at a time; the dedup keys make a second run harmless. The day is not taken as
        # done here: the holder may die before writing anything, and its lease then runs out; the
        # hourly timer tries again, and a run after the holder's finds its mail written.
        if not claim_named_lease(self.app.replica, lease, self.settings.daemon.lease_seconds):
            log.info("%s: another replica holds the lease", lease, extra={"job": lease})
            return
        try:
            count = send(self.app.digest_deps(), now)
            log.info("%s queued", lease, extra={"job": lease, "count": count})
            self._done_on[lease] = today
        finally:
            release_named_lease(self.app.replica, lease)

    def housekeeping(self) -> None:
        """Prune past retention and warn about an unofficial calendar (one replica at a time)."""
        now = self.app.clock.now()
        for warning in calendar_warnings(self.app.calendar, self.settings.calendar.overrides_dir, now):
            log.warning(warning, extra={"job": "housekeeping"})
        if not claim_named_lease(self.app.replica, "housekeeping", self.settings.daemon.lease_seconds):
            return
        try:
            result = prune_old_records(self.app.sessions, self.settings.daemon.retention_days, now)
        finally:
            release_named_lease(self.app.replica, "housekeeping")
        if result.payloads_pruned or result.alerts_deleted:
            log.info(
                "housekeeping pruned %s raw payload(s) and %s sent alert(s) older than %s days",
                result.payloads_pruned,
                result.alerts_deleted,
                self.settings.daemon.retention_days,
                extra={"job": "housekeeping"},
            )

    def heartbeat(self) -> None:
        write_heartbeat(self.app.replica, self.started_at)

    def reload_calendar_if_changed(self) -> bool:
        """Pick up a calendar override added while running (no restart); a bad file is logged
        and the calendar in force stays. True when a new calendar was loaded."""
        directory = self.settings.calendar.overrides_dir
        signature = overrides_signature(directory)
        if signature == self._calendar_signature:
            return False
        try:
            calendar = WorkingCalendar.from_overrides_dir(directory, self.settings.timezone)
        except CalendarError as exc:
            log.error("calendar override not loaded, keeping the previous calendar: %s", exc, extra={"job": "calendar"})
            self._calendar_signature = signature  # report it once per change of the folder
            return False
        first = self._calendar_signature is None
        self._calendar_signature = signature
        if first:
            return False
        self.app.use_calendar(calendar)
        log.info("calendar overrides reloaded from %s", directory, extra={"job": "calendar"})
        return True

    def catch_up(self) -> None:
        """At start: the cycle `once` runs (poll the sources due, sweep, deliver: `services.cycle.run_cycle`),
        then digests, monthly summaries and housekeeping if due."""
        log.info("catch-up cycle", extra={"job": "catch-up", "replica": self.app.replica_id})
        timer_jobs = (*(f"poll:{source.name}" for source in self.settings.sources), "sweep", "deliver")
        self._step("cycle", self.cycle, holds=timer_jobs)
        for name, step in (("digests", self.digests), ("monthly", self.monthly), ("housekeeping", self.housekeeping)):
            self._step(name, step)

    def cycle(self) -> None:
        """One cycle at the clock's now; the daemon's deliveries wait for their groups as the deliver timer's do."""
        self.reload_calendar_if_changed()
        result = run_cycle(self.app.cycle_deps(), self.app.clock.now(), wait_for_groups=True)
        for outcome in result.polled:
            level = logging.WARNING if outcome.status == "failed" else logging.INFO if outcome.items else logging.DEBUG
            log.log(level, "poll %s", outcome.line(), extra={"source": outcome.source, "count": outcome.items or None})
        log.debug("cycle done: sweep %r, deliver %r", result.sweep, result.delivered, extra={"job": "cycle"})

    def _step(self, name: str, function: Callable[[], None], holds: tuple[str, ...] = ()) -> None:
        """Run one step; a failure is logged with its job name and never stops the daemon.

        The step holds its own lock and those of the timer jobs named in `holds` (the cycle does their work).
        """
        if self.stopping.is_set():
            return
        guards: list[threading.Lock] = []
        for held in (name, *holds):
            guard = self._locks.setdefault(held, threading.Lock())
            if not guard.acquire(blocking=False):
                for taken in guards:
                    taken.release()
                log.info("%s still busy from the previous run; this tick skipped", held, extra={"job": name})
                return
            guards.append(guard)
        with self._idle:
            self._running += 1
        try:
            function()
        except Exception:
            log.exception("%s failed; will retry on its next tick", name, extra={"job": name})
        finally:
            for guard in guards:
                guard.release()
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _job(self, name: str, function: Callable[[], None]) -> Callable[[], None]:
        return lambda: self._step(name, function)

    # wiring ----------------------------------------------------------------------------

    def schedule(self, start: datetime | None = None) -> None:
        """Add every timer; interval jobs first fire one interval after `start` (the catch-up covers now)."""
        start = start or utc_now().astimezone(self.app.calendar.tz)
        daemon, mail = self.settings.daemon, self.settings.mail
        tz = self.settings.timezone
        # Explicit on each job (as well as the scheduler's defaults) so a test can read them.
        add = partial(
            self.scheduler.add_job, coalesce=True, max_instances=1, misfire_grace_time=daemon.misfire_grace_seconds
        )
        for source in self.settings.sources:
            add(
                self._job(f"poll:{source.name}", lambda name=source.name: self.poll(only=name)),
                IntervalTrigger(seconds=source.interval, start_date=start + timedelta(seconds=source.interval)),
                id=f"poll:{source.name}",
            )
        add(self._job("sweep", self.sweep), _every(daemon.sweep_interval, start), id="sweep")
        add(self._job("deliver", self.deliver), _every(daemon.deliver_interval, start), id="deliver")
        add(self._job("heartbeat", self.heartbeat), _every(daemon.heartbeat_interval, start), id="heartbeat")
        add(self._job("digests", self.digests), _hourly_from(mail.digest_time, tz), id="digests")
        add(self._job("monthly", self.monthly), _hourly_from(mail.monthly_time, tz), id="monthly")
        add(self._job("housekeeping", self.housekeeping), _daily(daemon.housekeeping_time, tz), id="housekeeping")

    def _on_job_event(self, event: JobExecutionEvent | JobSubmissionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "timer run missed (later than misfire_grace_seconds): scheduled %s",
                getattr(event, "scheduled_run_time", None),
                extra={"job": event.job_id},
            )
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            log.warning("tick skipped: the previous run is still going", extra={"job": event.job_id})
        elif event.code == EVENT_JOB_ERROR:
            log.error("job raised: %s", getattr(event, "exception", None), extra={"job": event.job_id})

    def request_stop(self, signum: int | None = None, _frame: Any = None) -> None:
        """Signal handler: stop taking new work; `run` then waits for running jobs and cleans up."""
        if self._stop_requested_at is not None:
            return
        self._stop_requested_at = monotonic.monotonic()
        reason = signal.Signals(signum).name if signum else "requested"
        # The handler runs on the main thread, which may be inside `stopping.wait()` holding the
        # event's own lock: setting the event here could deadlock on it. A thread sets it (and
        # logs) as soon as the lock is free; `run` then wakes, shuts the timer down and cleans up.
        threading.Thread(target=self._stop, args=(reason,), name="stop", daemon=True).start()

    def _stop(self, reason: str) -> None:
        log.info("stopping (%s)", reason, extra={"replica": self.app.replica_id})
        self.stopping.set()

    def run(self, install_signals: bool = True) -> int:
        """Check the schema, beat, start the timers (with a catch-up cycle first) and block
        until SIGTERM/SIGINT; then finish running jobs, release this replica's claims, exit 0."""
        # A fatal signal (SIGBUS when a SQLite file changes under its memory-mapped WAL
        # index, SIGSEGV) cannot be caught and survived; this makes it leave a line
        # ("Fatal Python error: Bus error") and every thread's stack on stderr, the log.
        faulthandler.enable(all_threads=True)
        check_schema(self.app)
        self._start_http()  # before the heartbeat: a port it cannot take stops the start cleanly
        self._start_web()
        previous = {}
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self.request_stop)
        self.heartbeat()
        mail = self.settings.mail
        log.info(
            "shortage-watch %s running on %s; %s source(s); mail via %s",
            __version__,
            mask_url(self.settings.database.url),
            len(self.settings.sources),
            f"files in {mail.file_dir}" if mail.transport == "file" else f"smtp {self.settings.smtp.host}",
            extra={"replica": self.app.replica_id},
        )
        try:
            self.schedule()
            self.scheduler.start()
            # The catch-up runs once, on a thread of its own rather than as a one-shot timer: APScheduler
            # 3 removes a fired one-shot job without holding off `shutdown`, which can fail that removal.
            threading.Thread(target=self._step, args=("catch-up", self.catch_up), name="catch-up", daemon=True).start()
            self.stopping.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
        stragglers = self._wait_for_jobs()
        self._stop_web()
        self._stop_http()
        try:
            released = release_replica_claims(self.app.replica)
            log.info("released claims: %s", released, extra={"replica": self.app.replica_id})
        except Exception as exc:  # the exit must stay clean whatever the database does now
            log.warning("could not release claims (they expire on their own): %s", type(exc).__name__, exc_info=True)
        log.info("stopped", extra={"replica": self.app.replica_id})
        if stragglers:
            # A job still inside a slow call (SMTP, HTTP): its open transaction rolls back
            # when the process ends and its claims were released above; do not wait for it.
            logging.shutdown()
            os._exit(0)
        return 0

    def _wait_for_jobs(self) -> int:
        budget = self.settings.daemon.shutdown_seconds
        started = self._stop_requested_at or monotonic.monotonic()
        with self._idle:
            while self._running:
                left = budget - (monotonic.monotonic() - started)
                if left <= 0:
                    log.warning("%s job(s) still running after %.0fs; leaving them", self._running, budget)
                    return self._running
                self._idle.wait(left)
        return 0

    def _start_http(self) -> None:
        daemon = self.settings.daemon
        if not daemon.http_enabled:
            return
        from shortage_watch.health import check_health
        from shortage_watch.httpserver import OperatorServer

        try:
            self.http = OperatorServer(
                daemon.http_host,
                daemon.http_port,
                self.metrics,
                lambda: check_health(self.settings, self.app.engine, replica=self.app.replica_id),
            )
        except OSError as exc:  # in use (maybe by a previous instance still stopping): a retry may succeed
            raise DaemonStartError(zh_en(
                f"daemon.http_port：无法在 {daemon.http_host}:{daemon.http_port} 上监听",
                f"daemon.http_port: cannot listen on {daemon.http_host}:{daemon.http_port}: {exc.strerror or exc}",
            ), exit_code=1) from None
        self.http.start()

    def _stop_http(self) -> None:
        if self.http is not None:
            self.http.stop()

    def _start_web(self) -> None:
        """Serve the portal and API beside the timers when web.enabled. A port already taken (another
        replica on this host serves it) is a warning: the daemon's own work does not depend on it."""
        web = self.settings.web
        if not web.enabled:
            return
        from shortage_watch.web.server import WebServer

        try:
            self.web = WebServer(self.app, web.host, web.port)
        except (OSError, ValueError) as exc:
            log.warning("web: not serving the portal: cannot listen on %s:%s: %s", web.host, web.port,
                        getattr(exc, "strerror", None) or exc)
            return
        self.web.start()
        log.info("portal and API on %s/ (public address %s)", self.web.address, web.public_url)

    def _stop_web(self) -> None:
        if self.web is not None:
            self.web.stop()


def _every(seconds: int, start: datetime) -> IntervalTrigger:
    return IntervalTrigger(seconds=seconds, start_date=start + timedelta(seconds=seconds))


def _hourly_from(at: time, tz: str) -> CronTrigger:
    """At `at`, then each hour until midnight, so a run that failed (database, directory) is tried
    again the same day; `_working_day_job` skips the ticks after a run that completed."""
    return CronTrigger(hour=f"{at.hour}-23", minute=at.minute, second=at.second, timezone=tz)


def _daily(at: time, tz: str) -> CronTrigger:
    return CronTrigger(hour=at.hour, minute=at.minute, second=at.second, timezone=tz)
