"""The sweep: apply the ladder levels that have fallen due, writing alerts into the outbox.

Reads only rows whose `next_action_at` has passed, through its index, so its cost follows
the due items, not the size of the ledger. Each row is claimed and handled in its own
transaction; several processes may sweep one database at once. Each sweep first re-dates
the in-flight deadlines the calendar had only estimated, once it knows their year.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Text, bindparam, cast, or_, select, tuple_, update
from sqlalchemy.orm import Session

from shortage_watch.clock import utc_now
from shortage_watch.domain.obligations import OPEN_STATES, advance, state_at
from shortage_watch.domain.policy import Ladder
from shortage_watch.domain.catch_up import steps_sent_before
from shortage_watch.services.alerts import audit, audit_values, insert_audits, obligation_context, obligation_context_of
from shortage_watch.services.inhibition import inhibit_after_escalation
from shortage_watch.services.silences import release_ended_silences
from shortage_watch.services.ledger import (
    ESTIMATED,
    AlertHolds,
    LadderAlerts,
    case_deadline,
    case_due,
    directory_of,
    ladder_alerts,
    mailed_steps_of,
    remembered_routes,
    write_planned_alerts,
    recomputed_deadline,
    redate_case,
    redate_obligation,
    write_case_alerts,
)
from shortage_watch.store import claims
from shortage_watch.store.bulk import updater
from shortage_watch.store.tables import DistributorReport, Obligation, ShortageCase, StoppageNotice

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    obligations: int = 0  # rows this sweep claimed and handled
    cases: int = 0
    alerts: int = 0  # new outbox rows written
    skipped: int = 0  # rows another worker had claimed first
    failed: list[str] = field(default_factory=list)  # "O12: error" for rows pushed back
    redated: int = 0  # estimated deadlines re-dated because the calendar now knows better

    def as_json(self) -> dict[str, Any]:
        return {
            "obligations": self.obligations,
            "cases": self.cases,
            "alerts": self.alerts,
            "skipped": self.skipped,
            "failed": self.failed,
            "redated": self.redated,
        }


def due_query(table: Any, now: datetime, real_now: datetime, batch: int, after: tuple[datetime, int] | None = None) -> Any:
    """The next `batch` due, unclaimed rows after `after` (keyset), read through the next_action_at index."""
    query = (
        select(table.id, table.next_action_at)
        .where(table.next_action_at <= now, or_(table.claimed_until.is_(None), table.claimed_until < real_now))
        .order_by(table.next_action_at, table.id)
        .limit(batch)
    )
    if after is not None:
        at, last_id = after
        # Typed binds: on SQLite the instant must be stored-format text to compare correctly.
        after_at = bindparam("after_at", at, type_=table.next_action_at.type)
        after_id = bindparam("after_id", last_id, type_=table.id.type)
        query = query.where(tuple_(table.next_action_at, table.id) > tuple_(after_at, after_id))
    return query


def _due_ids(session: Session, table: Any, now: datetime, real_now: datetime, batch: int, after: tuple[datetime, int] | None) -> list[tuple[int, datetime]]:
    return [(row_id, at) for row_id, at in session.execute(due_query(table, now, real_now, batch, after)).all()]


def _claim(session: Session, table: Any, row_id: int, now: datetime, real_now: datetime, owner: str, lease: timedelta) -> bool:
    """Claim one due row for this transaction.

    Another replica may have read the same due id. The UPDATE re-checks, under the row's
    write lock, that the row is still due and unclaimed: exactly one row changed means
    this worker owns it until commit; zero means another worker handled it (its commit
    moved next_action_at on) or holds it now, and we move on. Leases use the real clock.
    """
    return claims.take(session, claims.kind_of(table), row_id, owner, real_now + lease, real_now,
                       where=[table.next_action_at <= now])


def _claim_due_batch(session: Session, table: Any, now: datetime, real_now: datetime, owner: str, lease: timedelta, batch: int) -> list[int]:
    """Claim up to `batch` due, unclaimed rows for this transaction in one statement; their ids.

    Race: other replicas claim at the same moment. On PostgreSQL the rows are picked with
    FOR UPDATE SKIP LOCKED, so each replica takes rows no one else has locked and they get
    disjoint batches without waiting; the outer UPDATE re-checks under each row's lock that
    it is still due and unclaimed (another worker may have committed it in between). SQLite
    runs one writer at a time (BEGIN IMMEDIATE), so the conditional UPDATE alone decides.
    """
    return claims.take_batch(session, claims.kind_of(table), owner, real_now + lease, real_now,
                             where=[table.next_action_at <= now], order_by=[table.next_action_at, table.id],
                             limit=batch, in_order=False)


def _obligation_steps(session: Session, app: Any, row_ids: list[int], now: datetime, owner: str) -> int:
    """Apply the levels due at `now` to the claimed obligations `row_ids`, in bulk; how many alerts were new.

    Reads the rows, their notices and reports and what was mailed about them in one query each,
    decides each row's step purely, then writes the alerts, audit events and next_action_at of the
    whole set in a few statements; the claims are released with them.
    """
    if not row_ids:
        return 0
    table = Obligation.__table__
    # The ladder snapshot as stored (text): a batch shares a few, each is read once.
    columns = [column for column in table.c if column.key != "policy"] + [cast(table.c.policy, Text).label("policy")]
    rows = [SimpleNamespace(**row._mapping) for row in session.execute(select(*columns).where(table.c.id.in_(row_ids)).order_by(table.c.id))]
    ladders: dict[str, Ladder] = {}
    steps: dict[tuple[Any, ...], Any] = {}
    notices = _by_id(session, StoppageNotice, {row.notice_pk for row in rows if row.notice_pk and row.state in OPEN_STATES})
    reports = _by_id(session, DistributorReport, {row.report_pk for row in rows if row.report_pk and row.state in OPEN_STATES})
    mailed = mailed_steps_of(session, [row.id for row in rows if row.state in OPEN_STATES], now)
    calendar, directory = app.calendar, directory_of(app)
    routes = remembered_routes(app, directory)
    today = calendar.local_date(now)
    planned: list[tuple[Any, LadderAlerts]] = []
    events: list[dict[str, Any]] = []
    for obligation in rows:
        if obligation.state not in OPEN_STATES:
            obligation.next_action_at = None  # closed: nothing left to do
            continue
        if obligation.policy not in ladders:
            ladders[obligation.policy] = Ladder.from_json(json.loads(obligation.policy))
        ladder = ladders[obligation.policy]
        # Rows of one notice day share their ladder, dates and level: each step is worked out once.
        memo = (obligation.policy, obligation.due_on, obligation.due_at, obligation.opened_at, obligation.level)
        if memo not in steps:
            steps[memo] = advance(calendar, ladder, due_on=obligation.due_on, due_at=obligation.due_at,
                                  opened_at=obligation.opened_at, step=obligation.level, now=now)
        step = steps[memo]
        new_state = state_at(obligation.state, obligation.due_at, now)
        if new_state != obligation.state:
            events.append(audit_values(at=now, actor=owner, entity="obligation", entity_id=obligation.id, action=new_state,
                                       detail={"due_at": obligation.due_at.isoformat()}))
            obligation.state = new_state
        if step.firings or step.skipped:
            if obligation.case_id is None:
                context = obligation_context_of(obligation, notice=notices.get(obligation.notice_pk), report=reports.get(obligation.report_pk),
                                                case=None, case_info=None, directory=directory, calendar=calendar, now=now)
            else:
                context = obligation_context(session, obligation=obligation, directory=directory, calendar=calendar, now=now)
            prior = steps_sent_before(mailed.get(obligation.id, ()), today, calendar.local_date, calendar.working_days_between)
            planned.append((obligation, ladder_alerts(
                app, directory, subject="O", subject_id=obligation.id, firings=step.firings, stale=step.skipped,
                region_code=obligation.region_code, distributor_code=obligation.party_code, context=context, prior=prior, now=now, ladder=ladder, routes=routes,
                entered_after_due=obligation.opened_at > obligation.due_at,
            )))
        obligation.level = step.next_step
        obligation.next_action_at = step.next_action_at
    holds = AlertHolds(session, directory, now)
    for obligation in rows:
        holds.matter(obligation.id, obligation.case_id)
    written = write_planned_alerts(session, holds, [alert for _, alerts in planned for alert in alerts.alerts])
    for obligation, alerts in planned:
        events.extend(alerts.skips)
        new = sum(1 for alert in alerts.alerts if alert["dedup_key"] in written)
        events.append(audit_values(at=now, actor=owner, entity="obligation", entity_id=obligation.id, action="levels",
                                   detail={"fired": alerts.plan.mailed_names(), "skipped": alerts.plan.skipped_names(), "alerts": new}))
    insert_audits(session, events)
    steps_taken = updater(session.connection(), table, "id",
                          ("state", "level", "next_action_at", "claimed_by", "claimed_until", "updated_at"))
    steps_taken.update([{"id": o.id, "state": o.state, "level": o.level, "next_action_at": o.next_action_at, "claimed_by": None,
                         "claimed_until": None, "updated_at": now} for o in rows])
    return len(written)


def _by_id(session: Session, model: Any, ids: set[int]) -> dict[int, Any]:
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(model).where(model.id.in_(ids)))}


def _case_step(session: Session, app: Any, row_id: int, now: datetime, owner: str) -> int:
    case = session.get(ShortageCase, row_id, populate_existing=True)
    assert case is not None
    written = 0
    if case.state in ("regional", "escalated") and case.policy is not None and case.regional_at is not None:
        ladder = Ladder.from_json(case.policy["ladder"])
        due_on, due_at = case_due(app, case)
        step = advance(app.calendar, ladder, due_on=due_on, due_at=due_at, opened_at=case.regional_at, step=case.level, now=now)
        written, _ = write_case_alerts(session, app, case, step.firings, now, stale=step.skipped)
        if any(f.level.offset is not None and f.level.offset >= 0 for f in step.firings) and case.state != "escalated":
            case.state = "escalated"
            audit(session, at=now, actor=owner, entity="case", entity_id=case.id, action="escalated", detail={"fired": [f.name for f in step.firings]})
            inhibit_after_escalation(session, directory_of(app), case, now)
        case.level = step.next_step
        case.next_action_at = step.next_action_at
    else:
        case.next_action_at = None
    case.claimed_by = None
    case.claimed_until = None
    case.updated_at = now
    return written


def _push_back(app: Any, table: Any, row_id: int, now: datetime) -> None:
    """After a failure: release the claim and retry a little later (in ledger time)."""
    retry = now + timedelta(minutes=app.settings.escalation.retry_minutes)
    with app.sessions.begin() as session:
        session.execute(
            update(table)
            .where(table.id == row_id)
            .values(claimed_by=None, claimed_until=None, next_action_at=retry)
            .execution_options(synchronize_session=False)
        )


def _sweep_obligations(app: Any, now: datetime, result: SweepResult) -> int:
    """Claim due obligations a batch at a time and step each batch in one transaction.

    A batch that raises is rolled back and retried row by row, so one bad row is pushed back
    (and logged) while the rest of its batch is swept.
    """
    owner = app.replica_id
    lease = timedelta(seconds=app.settings.daemon.lease_seconds)
    batch = app.settings.escalation.sweep_batch
    handled = 0
    seen: set[int] = set()
    while True:
        claimed: list[int] = []
        try:
            with app.sessions.begin() as session:
                claimed = _claim_due_batch(session, Obligation, now, utc_now(), owner, lease, batch)
                if seen.intersection(claimed):
                    # A row this sweep already tried is due again: its push-back failed (the database went away
                    # mid-sweep). Stop here rather than claim it forever; the next sweep tries again.
                    raise _AlreadySwept
                written = _obligation_steps(session, app, claimed, now, owner)
            result.alerts += written
            handled += len(claimed)
        except _AlreadySwept:
            return handled
        except Exception:
            if not claimed:
                raise
            log.warning("sweep: a batch of %d obligation(s) failed; retrying them one by one", len(claimed), exc_info=True)
            handled += _sweep_rows(app, Obligation, _obligation_step, "O", claimed, now, result)
        seen.update(claimed)
        if len(claimed) < batch:
            return handled


class _AlreadySwept(Exception):
    """A claimed batch holds a row this sweep already stepped."""


def _obligation_step(session: Session, app: Any, row_id: int, now: datetime, owner: str) -> int:
    return _obligation_steps(session, app, [row_id], now, owner)


def _sweep_rows(app: Any, table: Any, handle: Any, prefix: str, row_ids: list[int], now: datetime, result: SweepResult) -> int:
    """Claim and handle each row in its own transaction; a row that raises is pushed back and logged."""
    owner = app.replica_id
    lease = timedelta(seconds=app.settings.daemon.lease_seconds)
    handled = 0
    for row_id in row_ids:
        try:
            with app.sessions.begin() as session:
                if not _claim(session, table, row_id, now, utc_now(), owner, lease):
                    result.skipped += 1
                    continue
                result.alerts += handle(session, app, row_id, now, owner)
            handled += 1
        except Exception as exc:  # one bad row must not stop the sweep
            log.exception("sweep: %s%s failed; retrying in %s min", prefix, row_id, app.settings.escalation.retry_minutes)
            result.failed.append(f"{prefix}{row_id}: {type(exc).__name__}: {exc}")
            try:
                _push_back(app, table, row_id, now)
            except Exception:
                log.exception("sweep: could not push back %s%s", prefix, row_id)
    return handled


def _sweep_table(app: Any, table: Any, handle: Any, prefix: str, now: datetime, result: SweepResult) -> int:
    batch = app.settings.escalation.sweep_batch
    handled = 0
    after: tuple[datetime, int] | None = None
    while True:
        with app.sessions() as session:
            due = _due_ids(session, table, now, utc_now(), batch, after)
        if not due:
            return handled
        after = (due[-1][1], due[-1][0])
        handled += _sweep_rows(app, table, handle, prefix, [row_id for row_id, _ in due], now, result)
        if len(due) < batch:
            return handled


CASE_IN_FLIGHT = ("regional", "escalated")


def _estimated_rows(app: Any, table: Any, in_flight: tuple[str, ...], after_id: int, batch: int) -> list[Any]:
    """The next `batch` in-flight rows whose deadline was estimated, by id (the calendar_status index):
    only the columns that date them."""
    dating = (table.received_on,) if table is Obligation else (table.regional_at, table.policy)
    with app.sessions() as session:
        return list(
            session.execute(
                select(table.id, table.due_at, *dating)
                .where(table.calendar_status == ESTIMATED, table.state.in_(in_flight), table.id > after_id)
                .order_by(table.id)
                .limit(batch)
            ).all()
        )


def _claim_estimated(session: Session, table: Any, row: Any, in_flight: tuple[str, ...], real_now: datetime, owner: str, lease: timedelta) -> bool:
    """Claim one row for re-dating if it still carries the estimate we read.

    Another sweeper may be re-dating (or stepping) the same row. The UPDATE re-checks, under
    the row's write lock, that it is still estimated with the due instant we read, in flight and
    unclaimed: exactly one row changed means we own it until commit; zero means another worker
    re-dated, stepped or closed it first, and we leave it (the next sweep looks again).
    """
    return claims.take(session, claims.kind_of(table), row.id, owner, real_now + lease, real_now,
                       where=[table.calendar_status == ESTIMATED, table.due_at == row.due_at, table.state.in_(in_flight)])


def redate_estimated(app: Any, now: datetime, result: SweepResult) -> int:
    """Re-date in-flight obligations and regional cases whose deadline the calendar had estimated,
    when the current calendar gives another due instant or knows the year now (an override or an
    upgraded holidays package). Rows whose answer is still the same estimate cost a read, no write.
    """
    owner = app.replica_id
    lease = timedelta(seconds=app.settings.daemon.lease_seconds)
    batch = app.settings.escalation.sweep_batch
    redated = 0
    for table, in_flight, prefix in ((Obligation, OPEN_STATES, "O"), (ShortageCase, CASE_IN_FLIGHT, "C")):
        after_id = 0
        while True:
            rows = _estimated_rows(app, table, in_flight, after_id, batch)
            for row in rows:
                try:
                    if table is Obligation:
                        due_at, status = recomputed_deadline(app, row)
                    else:
                        _, due_at, status = case_deadline(app, row)
                    if status == ESTIMATED and due_at == row.due_at:
                        continue  # the calendar knows nothing new about this year: nothing to write
                    with app.sessions.begin() as session:
                        if not _claim_estimated(session, table, row, in_flight, utc_now(), owner, lease):
                            result.skipped += 1
                            continue
                        fresh = session.get(table, row.id, populate_existing=True)
                        if table is Obligation:
                            redate_obligation(session, app, fresh, now)
                        else:
                            redate_case(session, app, fresh, now)
                        fresh.claimed_by = None
                        fresh.claimed_until = None
                    redated += 1
                except Exception as exc:  # one bad row must not stop the sweep; the next sweep tries again
                    log.exception("sweep: re-dating %s%s failed", prefix, row.id)
                    result.failed.append(f"{prefix}{row.id}: {type(exc).__name__}: {exc}")
            if len(rows) < batch:
                break
            after_id = rows[-1].id
    result.redated += redated
    if redated:
        log.info("sweep: re-dated %d estimated deadline(s) with the current calendar", redated)
    return redated


def sweep(app: Any, now: datetime) -> SweepResult:
    """Apply every level due at `now` to obligations and regional cases; safe to run concurrently.

    Running it twice at the same instant writes nothing new: handled rows moved their
    next_action_at past `now`, and alerts are unique per (matter, level, recipient).
    """
    result = SweepResult()
    # First: deadlines estimated under a calendar that has since learnt the year, so the levels below fire on the real dates.
    redate_estimated(app, now, result)
    result.obligations = _sweep_obligations(app, now, result)
    result.cases = _sweep_table(app, ShortageCase, _case_step, "C", now, result)
    # Last: silences that ended release their held mail at the level the matters reached just now.
    release_ended_silences(app.sessions, directory_of(app), app.calendar, now)
    if result.obligations or result.cases or result.failed or result.redated:
        log.info("sweep at %s: %s", now.isoformat(), result.as_json())
    return result
