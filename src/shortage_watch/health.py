"""Is this deployment healthy? The checks behind `shortage-watch health` and `/healthz`.

Healthy means: the database answers with a current schema, the replica's heartbeat is
fresh, no source has failed more than `daemon.max_source_failures` times in a row, and
no alert is dead (a dead letter waits for an operator).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shortage_watch.calendar import CalendarError, WorkingCalendar
from shortage_watch.clock import utc_now
from shortage_watch.services.quiet import find_quiet_reporters
from shortage_watch.settings import Settings
from shortage_watch.store.db import current_revision, head_revision, make_engine, make_read_sessionmaker
from shortage_watch.store import figures


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class HealthReport:
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # worth a look, not unhealthy (quiet reporters)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "healthy" if self.ok else "unhealthy",
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "warnings": list(self.warnings),
        }

    def lines(self) -> list[str]:
        """One line per check and warning, as `shortage-watch health` prints them (the tag Chinese first)."""
        return ([f"{'正常 ok  ' if c.ok else '失败 FAIL'} {c.name}: {c.detail}" for c in self.checks]
                + [f"提示 warn {w}" for w in self.warnings])


def probe_engine(url: str) -> Engine | str:
    """An engine that will not create anything, or why the database cannot be reached.

    `make_engine` creates a missing SQLite file; a health check must not, so a missing
    file is reported as such.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not Path(parsed.database).is_file():
            return f"database file {parsed.database} does not exist"
        return make_engine(url, reads_only=True)  # never waits for a long ingest's write lock
    return create_engine(url, connect_args={"connect_timeout": 5}, pool_pre_ping=True)


def check_health(
    settings: Settings,
    engine: Engine | None = None,
    *,
    replica: str | None = None,
    host: str | None = None,
    now: datetime | None = None,
) -> HealthReport:
    """Run every check. `replica` names one replica id; `host` (a host name) narrows the
    heartbeat check to replicas on that host; neither: any replica fresh enough will do."""
    report = HealthReport()
    owned = engine is None
    if engine is None:
        probed = probe_engine(settings.database.url)
        if isinstance(probed, str):
            report.checks.append(Check("database", False, probed))
            return report
        engine = probed
    try:
        try:
            current = current_revision(engine)
        except SQLAlchemyError as exc:
            report.checks.append(Check("database", False, f"unreachable: {_first_line(exc)}"))
            return report
        head = head_revision()
        if current != head:
            detail = f"schema at {current or 'empty'}, code needs {head}: run `shortage-watch db upgrade`"
            report.checks.append(Check("database", False, detail))
            return report
        report.checks.append(Check("database", True, f"reachable, schema {head}"))
        try:
            with make_read_sessionmaker(engine)() as session:  # a health check never waits for the write lock
                report.checks += _ledger_checks(session, settings, replica, host, now or utc_now())
                report.warnings += _quiet_warnings(session, settings, now or utc_now())
        except SQLAlchemyError as exc:
            report.checks.append(Check("database", False, f"query failed: {_first_line(exc)}"))
    finally:
        if owned:
            engine.dispose()
    return report


def _ledger_checks(
    session: Session, settings: Settings, replica: str | None, host: str | None, now: datetime
) -> list[Check]:
    checks = []
    max_age = timedelta(seconds=2 * settings.daemon.heartbeat_interval)
    if replica is not None:
        who = f"replica {replica}"
    elif host is not None:
        who = f"replicas on host {host}"
    else:
        who = "any replica"
    beats = [(b.replica_id, b.beat_at) for b in figures.heartbeats(session, replica=replica, host=host)]
    fresh = [r for r, at in beats if now - at <= max_age]
    if fresh:
        checks.append(Check("heartbeat", True, f"{len(fresh)} fresh ({', '.join(sorted(fresh))})"))
    elif beats:
        newest = max(at for _, at in beats)
        age = int((now - newest).total_seconds())
        checks.append(Check("heartbeat", False, f"{who}: last beat {age}s ago (limit {int(max_age.total_seconds())}s)"))
    else:
        checks.append(Check("heartbeat", False, f"{who}: no heartbeat (is `shortage-watch run` running?)"))

    limit = settings.daemon.max_source_failures
    failing = figures.source_figures(session, failed_more_than=limit)
    # A file stored but left in its inbox (it could not be moved) needs an operator at once,
    # however well the source polls otherwise.
    stuck = figures.stuck_receipts(session)
    problems = [f"{f.name} failed {f.consecutive_failures} times in a row ({_first_line(f.last_error or '')})" for f in failing]
    problems += [f"{r.source}: {r.name} cannot be moved out of the inbox ({_first_line(r.move_error)})" for r in stuck]
    if problems:
        checks.append(Check("sources", False, "; ".join(problems)))
    else:
        checks.append(Check("sources", True, f"none failed more than {limit} times in a row"))

    dead = figures.dead_alert_count(session)
    if dead:
        checks.append(Check("outbox", False, f"{dead} dead alert(s): inspect and requeue them"))
    else:
        checks.append(Check("outbox", True, "no dead alerts"))
    return checks


def _quiet_warnings(session: Session, settings: Settings, now: datetime) -> list[str]:
    """One warning per reporter that went quiet (services.quiet)."""
    try:
        calendar = WorkingCalendar.from_overrides_dir(settings.calendar.overrides_dir, settings.timezone)
    except CalendarError as exc:
        return [f"quiet reporters not checked: calendar.overrides_dir: {_first_line(exc)}"]
    return [f"quiet {q.line()}" for q in find_quiet_reporters(session, settings.sources, settings.quiet, calendar, now)]


def this_host() -> str:
    return socket.gethostname()


def _first_line(exc: object) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
