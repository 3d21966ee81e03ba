"""Obligations: opened by notices, reports and unexplained shortages, each due N working days after
receipt with its ladder stored; fulfilled by reports (on time or late); re-dated when a notice is
revised or the calendar learns the year; cancelled when a notice explains a shortage."""

from __future__ import annotations

import logging
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, Callable, Protocol

from sqlalchemy.orm import Session

from shortage_watch.domain.deadline import Deadline, report_deadline
from shortage_watch.domain.obligations import advance, fulfilment, redating, report_subject_key
from shortage_watch.domain.policy import Ladder, is_priority, stored_ladders
from shortage_watch.domain.records import record_key
from shortage_watch.domain.states import (
    OBLIGATION_IN_FLIGHT,
    ObligationState,
    obligation_cancelled,
    obligation_fulfilled,
    obligation_state_at,
    Transition,
)
from shortage_watch.services.alert_routing import (
    AlertHolds,
    DueFirings,
    LadderAlerts,
    LadderPlan,
    Routes,
    plan_ladder,
    remembered_routes,
    write_planned_alerts,
)
from shortage_watch.services.alerts import alert_values, audit, audit_values, insert_audits, obligation_context, obligation_context_of
from shortage_watch.services.inhibition import drop_chasers_of_closed
from shortage_watch.services.ledger_deps import ACTOR, LedgerDeps
from shortage_watch.store.bulk import inserter
from shortage_watch.store.ledger_rows import open_explanations_about, report_obligation_notices
from shortage_watch.store.record_rows import every_version_data
from shortage_watch.store.report_rows import report_obligations_by_subject, write_changed_obligations
from shortage_watch.store.sweep import reports_by_id
from shortage_watch.store.tables import DistributorReport, Obligation, StoppageNotice

log = logging.getLogger(__name__)


class Received(Protocol):
    """Anything with the day its notice was received (an Obligation, or a swept row)."""

    @property
    def received_on(self) -> date: ...


def region_of_distributor(deps: LedgerDeps, code: str) -> str | None:
    """The region the directory gives the distributor, if it knows it."""
    party = deps.directory.distributor(code)
    return getattr(party, "region_code", None)


def open_obligation(
    session: Session,
    deps: LedgerDeps,
    *,
    kind: str,
    subject_key: str,
    party_code: str,
    region_code: str | None,
    received_on: date,
    priority: bool,
    now: datetime,
    notice_pk: int | None = None,
    case_id: int | None = None,
    product_code: str | None = None,
    fire_open: bool = True,
) -> Obligation:
    """Open one obligation (see `open_obligations`) and return it."""
    opening = dict(kind=kind, subject_key=subject_key, party_code=party_code, region_code=region_code, notice_pk=notice_pk,
                   case_id=case_id, product_code=product_code, priority=priority, received_on=received_on)
    [obligation_id] = open_obligations(session, deps, [opening], now, fire_open=fire_open)
    obligation = session.get(Obligation, obligation_id)
    assert obligation is not None
    return obligation


class OpeningPlans:
    """The ladder plans of obligations opened at one instant, by what they depend on besides the matter
    (`open_obligations`), for one `LedgerDeps`: kept across the chunks of a file, forgotten at another
    instant or past `MAX_SHAPES` (a plan holds a few KB: a file of many parties and days stays bounded)."""

    MAX_SHAPES = 5_000

    def __init__(self) -> None:
        self.now: datetime | None = None
        self.by_shape: dict[tuple[Any, ...], LadderPlan] = {}

    def at(self, now: datetime) -> dict[tuple[Any, ...], LadderPlan]:
        """The plans by shape made at `now` so far."""
        if now != self.now or len(self.by_shape) > self.MAX_SHAPES:
            # A new dict, not cleared: a caller still planning at the previous instant keeps its own.
            self.now, self.by_shape = now, {}
        return self.by_shape


def open_obligations(
    session: Session, deps: LedgerDeps, openings: list[dict[str, Any]], now: datetime, *, notices: dict[int, Any] | None = None,
    cases: dict[str, tuple[Any, dict[str, Any]]] | None = None, fire_open: bool = True, plans: OpeningPlans | None = None
) -> list[int]:
    """Open obligations, each due N working days after its `received_on`, with its ladder stored, in bulk;
    their ids in the order given.

    `openings`: kind, subject_key, party_code, region_code, notice_pk, case_id, product_code, priority,
    received_on. Each is audited `opened` and, unless `fire_open` is False (the caller fires them itself),
    mails the levels due at opening: those at opening and, for a matter that reaches the ledger after some
    of its moments, the one level each recipient is owed now (the rest are audited as skipped); the sweep
    takes it from there via next_action_at. `notices`: the notice rows by id when the caller has them;
    `cases`: by subject key, the case of an opening and its context part (`case_context`'s "case") as the
    caller saw it when the opening arose, when the caller has them. `plans`: the ladder plans of the
    caller's earlier openings at `now`, used and added to (the caller's chunks of one file share them).
    """
    if not openings:
        return []
    calendar, directory = deps.calendar, deps.directory
    settings = deps.deadlines
    # A set of records shares few receipt dates, priorities and recipients: each is worked out once.
    deadlines: dict[date, Any] = {}
    steps: dict[tuple[str, bool, date], Any] = {}
    snapshots: dict[Ladder, dict[str, Any]] = {}
    routes = remembered_routes(deps)
    rows = []
    for opening in openings:
        received_on = opening["received_on"]
        if received_on not in deadlines:
            deadlines[received_on] = report_deadline(calendar, received_on, settings.working_days, settings.cutoff)
        deadline = deadlines[received_on]
        ladder = deps.policy.ladder_for(opening["kind"], opening["priority"])
        if ladder not in snapshots:
            # One snapshot object per ladder: the bulk insert serialises it once for the whole set.
            snapshots[ladder] = ladder.as_json()
        memo = (opening["kind"], opening["priority"], received_on)
        if memo not in steps:
            steps[memo] = advance(calendar, ladder, due_on=deadline.due, due_at=deadline.due_at, opened_at=now, step=0, now=now)
        step = steps[memo]
        rows.append(dict(
            opening, due_on=deadline.due, due_at=deadline.due_at, calendar_status=deadline.calendar,
            state=obligation_state_at(ObligationState.OPEN, deadline.due_at, now), level=step.next_step if fire_open else 0, policy=snapshots[ladder],
            next_action_at=step.next_action_at if fire_open else None, opened_at=now, updated_at=now,
        ))
    returned = inserter(session.connection(), Obligation.__table__, rows[0]).insert_returning(rows, ("id", "subject_key"))
    id_of = {(subject_key): obligation_id for obligation_id, subject_key in returned}
    ids = [id_of[row["subject_key"]] for row in rows]
    events = []
    plan_of = (plans or OpeningPlans()).at(now)
    planned: list[tuple[int, LadderAlerts]] = []
    for obligation_id, values in zip(ids, rows):
        events.append(audit_values(
            at=now, actor=ACTOR, entity="obligation", entity_id=obligation_id, action="opened",
            detail={"kind": values["kind"], "subject": values["subject_key"], "due_at": values["due_at"].isoformat(),
                    "calendar": values["calendar_status"]},
        ))
        memo = (values["kind"], values["priority"], values["received_on"])
        step = steps[memo]
        if not fire_open or not (step.firings or step.skipped):
            continue
        obligation = SimpleNamespace(id=obligation_id, late_working_days=None, report_pk=None, **values)
        notice = (notices or {}).get(values["notice_pk"])
        case_seen = (cases or {}).get(values["subject_key"])
        if notice is not None and values["case_id"] is None:
            context = obligation_context_of(obligation, notice=notice, report=None, case=None, case_info=None, directory=directory,
                                            calendar=calendar, now=now)
        elif case_seen is not None and values["notice_pk"] is None:
            case, case_info = case_seen
            context = obligation_context_of(obligation, notice=None, report=None, case=case, case_info=case_info, directory=directory,
                                            calendar=calendar, now=now)
        else:
            context = obligation_context(session, obligation=obligation, directory=directory, calendar=calendar, now=now)
        # The plan depends on the step (its memo holds the ladder and dates) and where the matter is, not on the
        # matter: a distributor's notices of one day and priority share one, planned once per file.
        shape = (memo, values["region_code"], values["party_code"])
        plan = plan_of.get(shape)
        if plan is None:
            due = DueFirings(deps.policy.ladder_for(values["kind"], values["priority"]), step.firings, values["region_code"],
                             values["party_code"], stale=step.skipped, entered_after_due=now > values["due_at"])
            plan = plan_of[shape] = plan_ladder(deps, due, prior={}, now=now, routes=routes)  # opened just now: nothing mailed
        planned.append((obligation_id, plan.stored_for_matter("O", obligation_id, context, now, deps.mail_language)))
    holds = AlertHolds(session, directory, now)
    for obligation_id, values in zip(ids, rows):
        holds.matter(obligation_id, values["case_id"])
    written = write_planned_alerts(session, holds, [alert for _, alerts in planned for alert in alerts.alerts],
                                   [alerts.context for _, alerts in planned for _ in alerts.alerts])
    for obligation_id, alerts in planned:
        events.extend(alerts.skips)
        if alerts.plan.skips:
            new = sum(1 for alert in alerts.alerts if alert["dedup_key"] in written)
            events.append(audit_values(at=now, actor=ACTOR, entity="obligation", entity_id=obligation_id, action="levels",
                                       detail={"fired": alerts.plan.mailed_names(), "skipped": alerts.plan.skipped_names(), "alerts": new}))
    insert_audits(session, events)
    return ids


def fulfilled_by(deps: LedgerDeps, obligation: Obligation | SimpleNamespace, report: DistributorReport, now: datetime) -> Transition[ObligationState]:
    """Set on `obligation` (an ORM row or a plain one) its fulfilment by `report`, on time or late (with the
    working days late): the report, no next action, no claim; the transition, for the audit trail."""
    result = fulfilment(deps.calendar, obligation.due_on, obligation.due_at, report.submitted_at)
    moved = obligation_fulfilled(
        obligation.state, result.state,
        {"report_id": report.report_id, "submitted_at": report.submitted_at.isoformat(), "late_working_days": result.late_working_days},
    )
    obligation.state = moved.state
    obligation.late_working_days = result.late_working_days
    obligation.fulfilled_at = report.submitted_at
    obligation.report_pk = report.id
    obligation.next_action_at = None
    obligation.claimed_by = None
    obligation.claimed_until = None
    obligation.updated_at = now
    return moved


def _previous_date(previous: dict | None, key: str) -> date | None:
    value = (previous or {}).get(key)
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def notice_stored(session: Session, deps: LedgerDeps, notice: StoppageNotice, previous: dict | None, now: datetime) -> None:
    """A new notice opens its distributor's report obligation (`notices_stored`); a revision moving
    notified_on moves the deadline."""
    if previous is None:
        notices_stored(session, deps, [notice], now)
    else:
        notices_revised(session, deps, [(notice, previous)], now)


def notices_stored(session: Session, deps: LedgerDeps, notices: list[StoppageNotice], now: datetime, *,
                   plans: OpeningPlans | None = None) -> None:
    """New notices (in file order) open their distributors' report obligations, fire the levels due at
    opening and explain the shortages of their products, in a handful of statements for the whole set.

    A notice whose obligation already exists (a report came first, naming or describing it) is
    linked to it (`notices_revised`): the rare case. `plans`: see `open_obligations`.
    """
    if not notices:
        return
    own_key = {notice.id: report_subject_key(notice.notice_id, notice.distributor_code, None, None) for notice in notices}
    described_key = {
        notice.id: report_subject_key(None, notice.distributor_code, notice.product_code, notice.notified_on) for notice in notices
    }
    # Obligations a report opened before its notice arrived: the notice joins them.
    own_values = set(own_key.values())
    known = {
        subject_key
        for subject_key, notice_pk in report_obligation_notices(session, own_values | set(described_key.values()))
        if subject_key in own_values or notice_pk is None
    }
    fresh = []
    matched: list[tuple[StoppageNotice, dict | None]] = []
    for notice in notices:
        if own_key[notice.id] in known or described_key[notice.id] in known:
            matched.append((notice, None))
        else:
            fresh.append(notice)
    notices_revised(session, deps, matched, now)
    _open_notice_obligations(session, deps, fresh, own_key, now, plans)
    explain_cases_by_notices(session, deps, notices, now)


def _open_notice_obligations(session: Session, deps: LedgerDeps, notices: list[StoppageNotice], key_of: dict[int, str], now: datetime,
                             plans: OpeningPlans | None = None) -> None:
    """Open the report obligation of each notice (`open_obligations`)."""
    openings = [
        dict(kind="report", subject_key=key_of[notice.id], party_code=notice.distributor_code,
             region_code=notice.region_code or region_of_distributor(deps, notice.distributor_code), notice_pk=notice.id,
             case_id=None, product_code=notice.product_code, priority=is_priority(notice.priority_class), received_on=notice.notified_on)
        for notice in notices
    ]
    open_obligations(session, deps, openings, now, notices={notice.id: notice for notice in notices}, plans=plans)


# What a revised notice writes of an obligation, each shape holding the one before: linked; re-dated;
# re-routed; its state moved; judged again. A row is written in the smallest shape holding what it
# changed, so a chunk costs at most five updates. Each shape adds columns of more of the table's
# six indexes (an index is rewritten when a column of it is set, even unchanged): a re-dated row leaves
# the three without due_on, due_at or next_action_at alone, half the cost of setting them all.
_LINKED = ("notice_pk", "updated_at")
_DATED = (*_LINKED, "received_on", "due_on", "due_at", "next_action_at")
_ROUTED = (*_DATED, "region_code")
_MOVED = (*_ROUTED, "state", "calendar_status")
REVISED_SHAPES = (_LINKED, _DATED, _ROUTED, _MOVED, (*_MOVED, "late_working_days", "fulfilled_at", "report_pk", "claimed_by", "claimed_until"))


def notices_revised(session: Session, deps: LedgerDeps, notices: list[tuple[StoppageNotice, dict | None]], now: datetime) -> None:
    """Notices (each with its previous data, None when new), in file order, meet their report obligations as
    they would one by one: one opened by a report that came first is linked to its notice; a moved
    notified_on moves the deadline (`redate`; a closed obligation with its report is judged again on the
    new deadline, a late one alerting the bureaus); a corrected region re-routes the later levels. A
    notice whose obligation is missing opens one.

    The set's obligations are read in one query and changed in memory in file order (what an earlier
    notice changed, a later one sees); then the changes, the audit events and the alerts are written in
    a few bulk statements, whatever the set's size.
    """
    if not notices:
        return
    own_key = {notice.id: report_subject_key(notice.notice_id, notice.distributor_code, None, None) for notice, _ in notices}
    described_key = {notice.id: report_subject_key(None, notice.distributor_code, notice.product_code, notice.notified_on)
                     for notice, _ in notices}
    session.flush()  # an obligation changed through the ORM earlier in the transaction is read as it is now
    found = report_obligations_by_subject(session, [*own_key.values(), *described_key.values()])
    # A revised notice with no obligation of its own may have joined one a report opened describing an
    # earlier version of it (the rare case: only then are its versions read).
    joined = obligations_joined(session, [
        notice for notice, previous in notices
        if previous is not None and own_key[notice.id] not in found and getattr(found.get(described_key[notice.id]), "notice_pk", None) != notice.id],
        found)
    as_read = {obligation.id: dict(vars(obligation)) for obligation in found.values()}
    # The reports of closed obligations, which a moved deadline judges again.
    reports = reports_by_id(session, {obligation.report_pk for obligation in found.values()
                                      if obligation.report_pk is not None and obligation.state not in OBLIGATION_IN_FLIGHT})
    deadlines = _Deadlines(deps)
    ladder_of = stored_ladders()
    routes = remembered_routes(deps)
    events: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    closed: dict[int, SimpleNamespace] = {}  # re-fulfilled obligations as their first re-fulfilment left them
    missing: list[StoppageNotice] = []
    for notice, previous in notices:
        obligation = found.get(own_key[notice.id])
        if obligation is None:
            # Joined earlier to the obligation a report describing it (as it is, or a version before) opened: that one stays its own.
            described = found.get(described_key[notice.id])
            obligation = described if described is not None and described.notice_pk == notice.id else joined.get(notice.id)
        if obligation is None:
            # The distributor may have reported before the notice reached us, describing it.
            described = found.get(described_key[notice.id])
            if described is not None and described.notice_pk is None:
                obligation = described
        if obligation is None:
            missing.append(notice)
            continue
        if obligation.notice_pk is None:
            obligation.notice_pk = notice.id
            obligation.updated_at = now
            events.append(audit_values(at=now, actor=ACTOR, entity="obligation", entity_id=obligation.id, action="notice_linked",
                                       detail={"notice_id": notice.notice_id}))
        if obligation.received_on != notice.notified_on:
            events.append(redate(deps, obligation, deadlines(notice.notified_on), now, was=_previous_date(previous, "notified_on"),
                                 ladder_of=ladder_of))
            if obligation.report_pk is not None and obligation.state not in OBLIGATION_IN_FLIGHT:
                report = reports[obligation.report_pk]  # read above: closed, with its report
                moved = fulfilled_by(deps, obligation, report, now)
                events.append(audit_values(at=now, actor=ACTOR, entity="obligation", entity_id=obligation.id, action=moved.action,
                                           detail=moved.detail))
                closed.setdefault(obligation.id, SimpleNamespace(id=obligation.id, policy=obligation.policy, state=obligation.state))
                if moved.state is ObligationState.FULFILLED_LATE:
                    # Worded and routed now (its notice is this one): a region the same notice corrects below
                    # reaches only later levels.
                    context = obligation_context_of(obligation, notice=notice, report=report, case=None, case_info=None,
                                                    directory=deps.directory, calendar=deps.calendar, now=now)
                    alerts.extend(event_alerts(deps, "late_report", obligation, context, routes, now))
        if notice.region_code and notice.region_code != obligation.region_code:
            # Later levels go to the bureaus of the corrected region.
            events.append(audit_values(at=now, actor=ACTOR, entity="obligation", entity_id=obligation.id, action="region_changed",
                                       detail={"from": obligation.region_code, "to": notice.region_code}))
            obligation.region_code = notice.region_code
            obligation.updated_at = now

    write_changed_obligations(session, [(obligation, as_read[obligation.id]) for obligation in found.values()], REVISED_SHAPES)
    insert_audits(session, events)
    drop_chasers_of_closed(session, list(closed.values()), now)
    if alerts:
        holds = AlertHolds(session, deps.directory, now)
        for obligation_id in {alert["obligation_id"] for alert in alerts}:
            holds.matter(obligation_id, None)  # report obligations belong to no case
        # One alert per dedup key, the first: a later late report of the same obligation would find it written.
        first = {}
        for alert in alerts:
            first.setdefault(alert["dedup_key"], alert)
        write_planned_alerts(session, holds, list(first.values()))
    # A notice's own obligation is keyed by its id and a set holds each notice once, so no later notice
    # of the set looks for one opened here.
    _open_notice_obligations(session, deps, missing, own_key, now)


def obligations_joined(session: Session, notices: list[StoppageNotice], found: dict[str, Any]) -> dict[int, SimpleNamespace]:
    """Per notice (by id), the report obligation it joined on arriving after a report that described it: opened
    under the description (`report_subject_key` of its distributor, product and date) of one of its stored
    versions, its notice_pk the notice. `found`: the report obligations read so far, by subject key; those read
    here are added, so the caller holds one object per obligation."""
    by_record = {record_key(notice.notice_id, notice.distributor_code): notice for notice in notices}
    described: dict[int, list[str]] = {}
    for key, versions in every_version_data(session, "stoppage_notice", list(by_record)).items():
        notice = by_record[key]
        described[notice.id] = [
            report_subject_key(None, notice.distributor_code, data.get("product_code"),
                               date.fromisoformat(data["notified_on"]) if data.get("notified_on") else None)
            for data in versions.values() if data is not None]
    found.update(report_obligations_by_subject(session, [key for keys in described.values() for key in keys if key not in found]))
    joined = {}
    for notice_id, keys in described.items():
        obligation = next((found[key] for key in keys if key in found and found[key].notice_pk == notice_id), None)
        if obligation is not None:
            joined[notice_id] = obligation
    return joined


class _Deadlines:
    """`receipt_deadline` per receipt date, each worked out once: a set shares few dates."""

    def __init__(self, deps: LedgerDeps) -> None:
        self.deps = deps
        self.known: dict[date, Deadline] = {}

    def __call__(self, received_on: date) -> Deadline:
        if received_on not in self.known:
            self.known[received_on] = receipt_deadline(self.deps, received_on)
        return self.known[received_on]


def redate(deps: LedgerDeps, obligation: Obligation | SimpleNamespace, deadline: Deadline, now: datetime, was: date | None, *,
           action: str = "deadline_moved", note: str | None = None,
           ladder_of: Callable[[dict[str, Any]], Ladder] = Ladder.from_json) -> dict[str, Any]:
    """Set on `obligation` (an ORM row or a plain one) its dates from `deadline` (`redating`); its audit row."""
    moved = redating(deps.calendar, obligation, deadline, was=was, now=now, note=note, ladder_of=ladder_of)
    obligation.received_on = moved.received_on
    obligation.due_on = moved.due_on
    obligation.due_at = moved.due_at
    obligation.calendar_status = moved.calendar_status
    obligation.state = moved.state
    obligation.next_action_at = moved.next_action_at
    obligation.updated_at = now
    return audit_values(at=now, actor=ACTOR, entity="obligation", entity_id=obligation.id, action=action, detail=moved.detail)


def event_alerts(deps: LedgerDeps, event: str, obligation: Obligation | SimpleNamespace, context: dict[str, Any], routes: Routes,
                 now: datetime, *, level_name: str | None = None) -> list[dict[str, Any]]:
    """The outbox rows of an obligation's one-off `event` (the policy's rule): one per address of each of
    the rule's recipients, under `level_name` (default: the event's name) in their dedup keys."""
    rule = deps.policy.events[event]
    return [
        alert_values(now=now, subject="O", subject_id=obligation.id, level_name=level_name or event, template=rule.template,
                     urgent=rule.urgent, route=target, context=context, default_language=deps.mail_language)
        for spec in rule.recipients
        for target in routes(spec, obligation.region_code, obligation.party_code)
    ]


ESTIMATED = "estimated"


def receipt_deadline(deps: LedgerDeps, received_on: date) -> Deadline:
    """The deadline the current calendar gives a notice received on `received_on`."""
    return report_deadline(deps.calendar, received_on, deps.deadlines.working_days, deps.deadlines.cutoff)


def recomputed_deadline(deps: LedgerDeps, obligation: Received) -> tuple[datetime, str]:
    """The due instant and calendar status the current calendar gives an obligation (anything with `received_on`)."""
    deadline = receipt_deadline(deps, obligation.received_on)
    return deadline.due_at, deadline.calendar


def redate_obligation(session: Session, deps: LedgerDeps, obligation: Obligation, now: datetime) -> None:
    """Re-date an in-flight obligation with the current calendar (which may know, or amend, its year).

    The levels already applied are not applied again, and their alerts stay sent; an obligation
    marked overdue on the estimated date but not overdue on the real one is open again. A distributor
    already mailed a deadline is told the new one (the `deadline_changed` event), once per new date.
    """
    was_overdue = obligation.state == ObligationState.OVERDUE
    previous = {"due_on": obligation.due_on.isoformat(), "due_at": obligation.due_at.astimezone(deps.calendar.tz).isoformat(),
                "calendar": obligation.calendar_status}
    was_due_at = obligation.due_at
    note = None
    if was_overdue and obligation.level:
        note = "alerts already sent on the estimated deadline stay sent; later levels follow the new deadline"
    audit(session, **redate(deps, obligation, receipt_deadline(deps, obligation.received_on), now, obligation.received_on, action="deadline_recomputed", note=note))
    if obligation.level and obligation.due_at != was_due_at:
        context = {**obligation_context(session, obligation=obligation, directory=deps.directory, calendar=deps.calendar, now=now),
                   "previous_deadline": previous}
        alerts = event_alerts(deps, "deadline_changed", obligation, context, remembered_routes(deps), now,
                              level_name=f"deadline_changed:{obligation.due_on}")
        holds = AlertHolds(session, deps.directory, now)
        holds.matter(obligation.id, obligation.case_id)
        write_planned_alerts(session, holds, alerts)
    if was_overdue and obligation.state == ObligationState.OPEN:
        log.warning(
            "ledger: obligation %s was overdue on an estimated deadline; open again until %s (calendar %s)",
            obligation.id, obligation.due_at.isoformat(), obligation.calendar_status,
        )


def explain_cases_by_notices(session: Session, deps: LedgerDeps, notices: list[StoppageNotice], now: datetime) -> None:
    """New stoppage notices for a product explain its shortage: the explanation obligations owed about it
    are cancelled, each credited to the first notice (in file order) of its product; one query for the set."""
    first_of: dict[str, StoppageNotice] = {}
    for notice in notices:
        first_of.setdefault(notice.product_code, notice)
    if not first_of:
        return
    cancelled = open_explanations_about(session, list(first_of))
    for obligation in cancelled:
        moved = obligation_cancelled(
            obligation.state, {"reason": "explained by stoppage notice", "notice_id": first_of[obligation.product_code].notice_id}
        )
        obligation.state = moved.state
        obligation.next_action_at = None
        obligation.updated_at = now
        audit(session, at=now, actor=ACTOR, entity="obligation", entity_id=obligation.id, action=moved.action, detail=moved.detail)
    drop_chasers_of_closed(session, cancelled, now)
