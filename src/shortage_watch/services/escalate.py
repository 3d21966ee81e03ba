"""The sweep: apply the ladder levels that have fallen due, writing alerts into the outbox.

Reads only rows whose `next_action_at` has passed, through its index, so its cost follows
the due items, not the size of the ledger. Due rows are taken a batch at a time and each
batch is stepped in one transaction; several processes may sweep one database at once. Each
sweep first re-dates the in-flight deadlines the calendar had only estimated, once it knows
their year, and those of a year an override amends.
"""

from __future__ import annotations

import json
import logging
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable

from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.clock import utc_now
from shortage_watch.domain.obligations import advance, case_number
from shortage_watch.domain.policy import Ladder
from shortage_watch.domain.catch_up import first_uncounted_day, steps_sent_before
from shortage_watch.domain.states import CASE_ON_LADDER, OBLIGATION_IN_FLIGHT, case_escalated, obligation_due
from shortage_watch.services.alerts import (HISTORY_KEYS, NOTICE_KEYS, Hold, audit, audit_values, insert_audits, matter_values,
                                            notice_parts, obligation_context, obligation_context_of, write_alerts)
from shortage_watch.services.inhibition import inhibit_after_escalation
from shortage_watch.services.silences import release_ended_silences
from shortage_watch.services.alert_routing import AlertHolds, DueFirings, LadderPlan, PlannedAlert, alert_parts, mailed_steps_of, plan_ladder, remembered_routes
from shortage_watch.services.cases import case_deadline, case_due, redate_case, write_case_alerts
from shortage_watch.services.ledger_deps import LedgerDeps
from shortage_watch.services.obligations import ESTIMATED, recomputed_deadline, redate_obligation
from shortage_watch.store import sweep as store
from shortage_watch.store.tables import Obligation, ShortageCase

log = logging.getLogger(__name__)

# The two tables the sweep steps.
SweptTable = type[Obligation] | type[ShortageCase]


@dataclass(frozen=True)
class SweepDeps:
    """What the sweep uses, built by `App.sweep_deps()`: write sessions, the ledger's dependencies (its
    directory as it is now), who sweeps (the replica id, written on row claims), how long a row claim
    lasts, how many rows a batch takes, and how much later a row that failed is tried again."""

    sessions: sessionmaker[Session]
    ledger: LedgerDeps
    owner: str
    lease: timedelta
    batch: int
    retry: timedelta


# Steps rows of one table (a batch as the lock read it, or a row's id in a list) in the caller's
# transaction; how many alerts were new.
Step = Callable[[Session, SweepDeps, list[Any], datetime], int]
# Takes and reads up to a batch of due rows in the caller's transaction: (session, now, real now, batch).
Lock = Callable[[Session, datetime, datetime, int], list[Any]]


@dataclass
class SweepResult:
    obligations: int = 0  # rows this sweep claimed and handled
    cases: int = 0
    alerts: int = 0  # new outbox rows written
    skipped: int = 0  # rows another worker had claimed first
    failed: list[str] = field(default_factory=list)  # "O12: error" for rows pushed back
    redated: int = 0  # in-flight deadlines re-dated because the calendar now knows better (or was amended)

    def as_json(self) -> dict[str, Any]:
        return {
            "obligations": self.obligations,
            "cases": self.cases,
            "alerts": self.alerts,
            "skipped": self.skipped,
            "failed": self.failed,
            "redated": self.redated,
        }


class _ObligationSteps:
    """Steps batches of claimed obligations (called as a `Step`) for one sweep at one instant.

    What rows of one shape share is worked out once per sweep, not per batch, as it depends on no row
    a batch reads in its transaction: a step, what a history of mail says was sent before, a routed plan,
    each planned alert's outbox row, and the alert context of obligations alike but for their number and notice (`_ContextTemplate`). What a batch
    reads (notices, reports, what was mailed, silences) is read per batch.
    """

    def __init__(self, deps: SweepDeps, now: datetime) -> None:
        self.deps, self.now = deps, now
        self.routes = remembered_routes(deps.ledger)
        self.outbox = _OutboxRows(now, deps.ledger.mail_language)
        self.ladders: dict[str, Ladder] = {}
        self.steps: dict[tuple[Any, ...], Any] = {}
        self.plans: dict[tuple[Any, ...], LadderPlan] = {}
        self.contexts: dict[tuple[Any, ...], _ContextTemplate] = {}
        self.priors: dict[frozenset[tuple[str, datetime]], dict[str, str]] = {}  # what was mailed -> steps_sent_before
        # Only what `steps_sent_before` can count is read of what was mailed, a step's first mailing each.
        calendar = deps.ledger.calendar
        self.counted_until = calendar.start_of_day(first_uncounted_day(calendar.local_date(now), calendar.is_working_day,
                                                                       lambda day: calendar.nth_working_day_before(day, 1)))

    def by_id(self, session: Session, deps: SweepDeps, row_ids: list[int], now: datetime) -> int:
        """Step the obligations `row_ids` (already claimed), read by id: a batch retried row by row."""
        return self(session, deps, store.obligations_to_step(session, row_ids), now)

    def __call__(self, session: Session, deps: SweepDeps, rows: list[Any], now: datetime) -> int:
        """Apply the levels due at `now` to the claimed obligations `rows` (`store.sweep` step rows), in bulk;
        how many alerts were new.

        Reads their notices and reports and what was mailed about them in one query each, decides each
        row's step purely, then writes the alerts, audit events and next_action_at of the whole set in a
        few statements; any claims on them are released with them.
        """
        if deps is not self.deps or now != self.now:
            raise ValueError("a sweep's obligation steps serve that sweep's dependencies and instant only")
        if not rows:
            return 0
        open_rows = [row for row in rows if row.state in OBLIGATION_IN_FLIGHT]
        notices = store.notice_facts(session, (row.notice_pk for row in open_rows if row.notice_pk))
        reports = store.reports_by_id(session, (row.report_pk for row in open_rows if row.report_pk))
        owner, ledger = deps.owner, deps.ledger
        calendar, directory = ledger.calendar, ledger.directory
        today = calendar.local_date(now)
        mailed = mailed_steps_of(session, [row.id for row in open_rows], now, before=self.counted_until)
        holds = AlertHolds(session, directory, now)
        outbox, ladders, steps, plans, contexts, priors = self.outbox, self.ladders, self.steps, self.plans, self.contexts, self.priors
        matters: list[tuple[int, LadderPlan, int]] = []  # obligation id, its plan, where its alerts start in `alerts`
        alerts: list[tuple[dict[str, Any], Hold | None]] = []
        events: list[dict[str, Any]] = []
        writes: list[dict[str, Any]] = []
        moves: list[dict[str, Any]] = []  # steps that change the state too
        # Rows of one shape get equal audit details: one object each, so the bulk insert serialises it once.
        details: dict[tuple[Any, ...], dict[str, Any]] = {}

        def shared(key: tuple[Any, ...], make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
            detail = details.get(key)
            if detail is None:
                detail = details[key] = make()
            return detail

        for obligation in rows:
            if obligation.state not in OBLIGATION_IN_FLIGHT:  # closed: nothing left to do
                writes.append({"id": obligation.id, "level": obligation.level, "next_action_at": None, "claimed_by": None, "claimed_until": None,
                               "updated_at": now})
                continue
            ladder = ladders.get(obligation.policy)
            if ladder is None:
                ladder = ladders[obligation.policy] = Ladder.from_json(json.loads(obligation.policy))
            # Rows of one notice day share their ladder, dates and level: each step is worked out once.
            memo = (obligation.policy, obligation.due_on, obligation.due_at, obligation.opened_at, obligation.level)
            step = steps.get(memo)
            if step is None:
                step = steps[memo] = advance(calendar, ladder, due_on=obligation.due_on, due_at=obligation.due_at,
                                             opened_at=obligation.opened_at, step=obligation.level, now=now)
            write = {"id": obligation.id, "level": step.next_step, "next_action_at": step.next_action_at, "claimed_by": None, "claimed_until": None,
                     "updated_at": now}
            moved = obligation_due(obligation.state, obligation.due_at, now)
            if moved is not None:
                write["state"] = moved.state
                detail = shared(("due_at", obligation.due_at), lambda: moved.detail)
                events.append(audit_values(at=now, actor=owner, entity="obligation", entity_id=obligation.id, action=moved.action, detail=detail))
            (writes if moved is None else moves).append(write)
            if not (step.firings or step.skipped):
                continue
            sent = mailed.get(obligation.id)
            prior = {}
            if sent:
                # Matters opened together were mailed together: what they were mailed says the same for each.
                history = frozenset(sent)
                prior = priors.get(history)
                if prior is None:
                    prior = priors[history] = steps_sent_before(sent, today, calendar.local_date, calendar.working_days_between)
            # The plan depends on the step (its memo holds the dates), where the matter is, and what was mailed.
            shape = (memo, obligation.region_code, obligation.party_code, tuple(prior.items()))
            plan = plans.get(shape)
            if plan is None:
                due = DueFirings(ladder, step.firings, obligation.region_code, obligation.party_code, stale=step.skipped,
                                 entered_after_due=obligation.opened_at > obligation.due_at)
                plan = plans[shape] = plan_ladder(ledger, due, prior=prior, now=now, routes=self.routes)
            notice = notices.get(obligation.notice_pk)
            if obligation.case_id is None and obligation.report_pk is None:
                # Obligations of one party, place and dates say the same but for their number and what their notice
                # words (each its own: a notice opens one obligation per distributor), their product included.
                about = (obligation.region_code, obligation.party_code, obligation.received_on, obligation.due_on,
                         obligation.due_at, obligation.calendar_status, obligation.opened_at, obligation.late_working_days,
                         getattr(notice, "distributor_name", None))
                template = contexts.get(about)
                if template is None:
                    template = contexts[about] = _ContextTemplate(obligation_context_of(
                        obligation, notice=notice, report=None, case=None, case_info=None, directory=directory, calendar=calendar, now=now))
                context = template.matter(obligation.id, notice_parts(obligation, notice=notice, report=None, case=None))
            else:
                # A case's or a report's obligation (rare while in flight): its context worded whole, from this batch's reads.
                if obligation.case_id is None:
                    whole = obligation_context_of(obligation, notice=notice, report=reports.get(obligation.report_pk), case=None, case_info=None,
                                                  directory=directory, calendar=calendar, now=now)
                else:
                    whole = obligation_context(session, obligation=obligation, directory=directory, calendar=calendar, now=now)
                context = _ContextTemplate(whole).matter(obligation.id, {key: whole[key] for key in NOTICE_KEYS})
            holds.matter(obligation.id, obligation.case_id)
            matters.append((obligation.id, plan, len(alerts)))
            for planned in plan.alerts:
                values = outbox.row(obligation.id, planned, context)
                alerts.append((values, holds(subject="O", subject_id=obligation.id, template=planned.template, context=context.shared,
                                             role=planned.route.role, region_code=planned.route.region_code)))
        written = write_alerts(session, alerts, context_as_text=True)
        for obligation_id, plan, first in matters:
            events.extend(plan.skip_events("O", obligation_id, now))
            new = sum(1 for values, _ in alerts[first:first + len(plan.alerts)] if values["dedup_key"] in written)
            fired, skipped = plan.plan.mailed_names(), plan.plan.skipped_names()
            detail = shared(("levels", tuple(fired), tuple(skipped), new), lambda: {"fired": fired, "skipped": skipped, "alerts": new})
            events.append(audit_values(at=now, actor=owner, entity="obligation", entity_id=obligation_id, action="levels", detail=detail))
        insert_audits(session, events)
        store.write_steps(session, writes)
        store.write_steps(session, moves, state=True)
        return len(written)


# The keys of an obligation's alert context (`obligation_context_of`, `alert_values`) by where they come from.
_MATTER_KEYS = ("case_number", "thread_key")  # its number: first


@dataclass(frozen=True)
class _MatterContext:
    """An obligation's alert context: as a dict (`shared`, what holds match on), and its parts but the
    matter's number and the plan's history as the JSON text `json.dumps` writes of them (`text`)."""

    shared: dict[str, Any]
    text: str


class _ContextTemplate:
    """The alert context of obligations alike but for their number and their notice's parts (`NOTICE_KEYS`):
    the parts around those serialised once, each obligation's own notice parts once per obligation."""

    def __init__(self, context: dict[str, Any]) -> None:
        keys = list(context)
        middle = keys[len(_MATTER_KEYS):len(keys) - len(HISTORY_KEYS)]
        at = middle.index(NOTICE_KEYS[0]) if NOTICE_KEYS[0] in middle else -1
        if keys != [*_MATTER_KEYS, *middle, *HISTORY_KEYS] or at < 0 or tuple(middle[at:at + len(NOTICE_KEYS)]) != NOTICE_KEYS:
            raise AssertionError(f"unexpected alert context keys: {keys}")
        self.context = context
        self.before = json.dumps({key: context[key] for key in middle[:at]})[1:-1]
        self.after = json.dumps({key: context[key] for key in middle[at + len(NOTICE_KEYS):]})[1:-1]

    def matter(self, obligation_id: int, parts: dict[str, Any]) -> _MatterContext:
        """The context of obligation `obligation_id` whose notice gives `parts` (`notice_parts`)."""
        shared = {**self.context, "case_number": case_number("O", obligation_id), "thread_key": f"O{obligation_id}", **parts}
        text = ", ".join(part for part in (self.before, json.dumps(parts)[1:-1], self.after) if part)
        return _MatterContext(shared, text)


class _OutboxRows:
    """Outbox rows exactly as `alert_values` writes them, for many obligations at once: each planned alert's
    row is built once and each obligation fills in its own columns, its context already as the JSON text
    the column would store (`json.dumps` of the whole, spliced from parts serialised once each)."""

    def __init__(self, now: datetime, language: str) -> None:
        self.now, self.language = now, language
        self.rows: dict[int, tuple[PlannedAlert, dict[str, Any], str]] = {}

    def row(self, obligation_id: int, planned: PlannedAlert, context: _MatterContext) -> dict[str, Any]:
        found = self.rows.get(id(planned))
        if found is None:
            values, tail = alert_parts(planned, "O", obligation_id, context.shared, self.now, self.language)
            if self._text(obligation_id, context, tail) != json.dumps(values["context"]):  # the splice must say what json.dumps says
                raise AssertionError(f"alert context of O{obligation_id} spliced wrongly")
            found = self.rows[id(planned)] = (planned, values, tail)
        _, values, tail = found
        own = matter_values("O", obligation_id, planned.level_name, planned.route)
        own["context"] = self._text(obligation_id, context, tail)
        return {**values, **own}

    @staticmethod
    def _text(obligation_id: int, context: _MatterContext, tail: str) -> str:
        # The matter's number and thread as obligation_context_of words them: plain ASCII, nothing to escape.
        return f'{{"case_number": "{case_number("O", obligation_id)}", "thread_key": "O{obligation_id}", {context.text}, {tail}}}'


def _case_steps(session: Session, deps: SweepDeps, case_ids: list[int], now: datetime) -> int:
    """Apply the levels due at `now` to the locked regional cases `case_ids`; how many alerts were new."""
    return sum(_case_step(session, deps, case_id, now) for case_id in case_ids)


def _case_step(session: Session, deps: SweepDeps, row_id: int, now: datetime) -> int:
    ledger = deps.ledger
    case = store.fresh_case(session, row_id)
    written = 0
    if case.state in CASE_ON_LADDER and case.policy is not None and case.regional_at is not None:
        ladder = Ladder.from_json(case.policy["ladder"])
        due_on, due_at = case_due(ledger, case)
        step = advance(ledger.calendar, ladder, due_on=due_on, due_at=due_at, opened_at=case.regional_at, step=case.level, now=now)
        written, _ = write_case_alerts(session, ledger, case, step.firings, now, stale=step.skipped)
        moved = case_escalated(case.state, [f.name for f in step.firings])
        if any(f.level.offset is not None and f.level.offset >= 0 for f in step.firings) and moved is not None:
            case.state = moved.state
            audit(session, at=now, actor=deps.owner, entity="case", entity_id=case.id, action=moved.action, detail=moved.detail)
            inhibit_after_escalation(session, ledger.directory, case, now)
        case.level = step.next_step
        case.next_action_at = step.next_action_at
    else:
        case.next_action_at = None
    case.claimed_by = None
    case.claimed_until = None
    case.updated_at = now
    return written


def _push_back(deps: SweepDeps, table: SweptTable, row_id: int, now: datetime) -> None:
    """After a failure: release the claim and retry a little later (in ledger time)."""
    with deps.sessions.begin() as session:
        store.push_back(session, table, row_id, now + deps.retry)


def _sweep_in_batches(deps: SweepDeps, table: SweptTable, prefix: str, lock: Lock, step_batch: Step, step_one: Step, now: datetime, result: SweepResult) -> int:
    """Take due rows of `table` a batch at a time (`lock`) and step each batch (`step_batch`) in one transaction.

    A batch is picked, locked and read in one statement and written back before its commit, so
    it needs no lease of its own. A batch that raises is rolled back and retried row by row
    (`step_one`), so one bad row is pushed back (and logged) while the rest of its batch is swept.
    """
    handled = 0
    seen: set[int] = set()
    while True:
        taken: list[int] = []
        try:
            with deps.sessions.begin() as session:
                rows = lock(session, now, utc_now(), deps.batch)
                taken = [row if isinstance(row, int) else row.id for row in rows]
                if seen.intersection(taken):
                    # A row this sweep already tried is due again: its push-back failed (the database went away
                    # mid-sweep). Stop here rather than take it forever; the next sweep tries again.
                    raise _AlreadySwept
                written = step_batch(session, deps, rows, now)
            result.alerts += written
            handled += len(taken)
        except _AlreadySwept:
            return handled
        except Exception:
            if not taken:
                raise
            log.warning("sweep: a batch of %d %s row(s) failed; retrying them one by one", len(taken), prefix, exc_info=True)
            handled += _sweep_rows(deps, table, step_one, prefix, sorted(taken), now, result)
        seen.update(taken)
        # On PostgreSQL a batch may come back short while due rows remain (a row another sweeper
        # committed since our snapshot fails the re-check under its lock): only an empty one ends.
        if not taken:
            return handled


class _AlreadySwept(Exception):
    """A batch holds a row this sweep already stepped."""


def _sweep_rows(deps: SweepDeps, table: SweptTable, handle: Step, prefix: str, row_ids: list[int], now: datetime, result: SweepResult) -> int:
    """Claim and handle each row in its own transaction; a row that raises is pushed back and logged."""
    handled = 0
    for row_id in row_ids:
        try:
            with deps.sessions.begin() as session:
                real_now = utc_now()
                if not store.claim_due(session, table, row_id, now, real_now, deps.owner, real_now + deps.lease):
                    result.skipped += 1
                    continue
                result.alerts += handle(session, deps, [row_id], now)
            handled += 1
        except Exception as exc:  # one bad row must not stop the sweep
            log.exception("sweep: %s%s failed; retrying in %s min", prefix, row_id, int(deps.retry.total_seconds() // 60))
            result.failed.append(f"{prefix}{row_id}: {type(exc).__name__}: {exc}")
            try:
                _push_back(deps, table, row_id, now)
            except Exception:
                log.exception("sweep: could not push back %s%s", prefix, row_id)
    return handled


# Calendars (each as loaded: at start, and each time the daemon reloads its overrides) under which this
# process has re-checked the in-flight deadlines of the years an override gives: once per calendar.
_CHECKED_OVERRIDES: weakref.WeakSet[WorkingCalendar] = weakref.WeakSet()


def redate_in_flight(deps: SweepDeps, now: datetime, result: SweepResult) -> int:
    """Re-date in-flight obligations and regional cases when the current calendar gives another due
    instant or calendar status: those it had estimated, each sweep (an override or an upgraded holidays
    package may know their year now); and, once per calendar loaded, those whose days counted lie in a
    year an override gives, which may amend a year already known (as 2020's extended Spring Festival
    did) or correct an override. Rows whose deadline is unchanged cost a read, no write.
    """
    calendar = deps.ledger.calendar
    tables = ((Obligation, OBLIGATION_IN_FLIGHT, "O"), (ShortageCase, CASE_ON_LADDER, "C"))
    redated = sum(_redate_rows(deps, table, in_flight, prefix, [], now, result) for table, in_flight, prefix in tables)
    if calendar not in _CHECKED_OVERRIDES:
        # From 29 December before each year: a year's notice may fix those days too.
        spans = [(calendar.start_of_day(date(year - 1, 12, 29)), calendar.start_of_day(date(year + 1, 1, 1)))
                 for year in calendar.override_years()]
        failed = len(result.failed)
        if spans:
            redated += sum(_redate_rows(deps, table, in_flight, prefix, spans, now, result) for table, in_flight, prefix in tables)
        if len(result.failed) == failed:  # else the next sweep checks them again
            _CHECKED_OVERRIDES.add(calendar)
    result.redated += redated
    if redated:
        log.info("sweep: re-dated %d deadline(s) with the current calendar", redated)
    return redated


def _redate_rows(deps: SweepDeps, table: SweptTable, in_flight: tuple[str, ...], prefix: str,
                 spans: list[tuple[datetime, datetime]], now: datetime, result: SweepResult) -> int:
    """Re-date the rows of `table` `store.rows_to_redate` gives (estimated ones without `spans`) whose deadline
    moved; how many."""
    ledger = deps.ledger
    redated = 0
    after_id = 0
    while True:
        with deps.sessions() as session:
            rows = store.rows_to_redate(session, table, ESTIMATED, in_flight, after_id, deps.batch, spans)
        for row in rows:
            try:
                if table is Obligation:
                    due_at, status = recomputed_deadline(ledger, row)
                else:
                    _, due_at, status = case_deadline(ledger, row)
                if status == row.calendar_status and due_at == row.due_at:
                    continue  # the calendar says nothing new about this deadline: nothing to write
                with deps.sessions.begin() as session:
                    real_now = utc_now()
                    if not store.claim_to_redate(session, table, row, in_flight, real_now, deps.owner, real_now + deps.lease):
                        result.skipped += 1
                        continue
                    fresh = store.fresh_row(session, table, row.id)
                    if table is Obligation:
                        redate_obligation(session, ledger, fresh, now)
                    else:
                        redate_case(session, ledger, fresh, now)
                    fresh.claimed_by = None
                    fresh.claimed_until = None
                redated += 1
            except Exception as exc:  # one bad row must not stop the sweep; the next sweep tries again
                log.exception("sweep: re-dating %s%s failed", prefix, row.id)
                result.failed.append(f"{prefix}{row.id}: {type(exc).__name__}: {exc}")
        if len(rows) < deps.batch:
            return redated
        after_id = rows[-1].id


def sweep(deps: SweepDeps, now: datetime) -> SweepResult:
    """Apply every level due at `now` to obligations and regional cases; safe to run concurrently.

    Running it twice at the same instant writes nothing new: handled rows moved their
    next_action_at past `now`, and alerts are unique per (matter, level, recipient).
    """
    result = SweepResult()
    # First: deadlines dated under a calendar that has since learnt (or amended) their year, so the levels below fire on the real dates.
    redate_in_flight(deps, now, result)
    steps = _ObligationSteps(deps, now)
    result.obligations = _sweep_in_batches(deps, Obligation, "O", store.lock_due_obligations, steps, steps.by_id, now, result)
    result.cases = _sweep_in_batches(deps, ShortageCase, "C", store.lock_due_cases, _case_steps, _case_steps, now, result)
    # Last: silences that ended release their held mail at the level the matters reached just now.
    release_ended_silences(deps.sessions, deps.ledger.directory, deps.ledger.calendar, now)
    if result.obligations or result.cases or result.failed or result.redated:
        log.info("sweep at %s: %s", now.isoformat(), result.as_json())
    return result
