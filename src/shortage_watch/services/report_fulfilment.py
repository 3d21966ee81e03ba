"""Distributor reports in sets: a chunk of reports fulfils the obligations it answers, opens and fulfils
those of notices never seen, and fulfils the explanations its distributors owed, in a handful of
statements for the whole chunk, with the rules and audit trail a report has on its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from shortage_watch.domain.obligations import reopening, report_subject_key
from shortage_watch.domain.policy import Firing, Ladder, is_priority, schedule
from shortage_watch.domain.states import OBLIGATION_IN_FLIGHT, ObligationState, Transition, obligation_reopened
from shortage_watch.services.alert_routing import AlertHolds, DueFirings, ladder_alerts, remembered_routes, write_planned_alerts
from shortage_watch.services.alerts import audit_values, insert_audits, obligation_context, obligation_context_of
from shortage_watch.services.inhibition import drop_chasers_of_closed
from shortage_watch.services.ledger_deps import ACTOR, LedgerDeps
from shortage_watch.services.obligations import (event_alerts, fulfilled_by, obligations_joined, open_obligations,
                                                 region_of_distributor)
from shortage_watch.store.report_rows import (
    explanations_owed,
    notices_by_id,
    notices_described,
    notices_named,
    obligations_by_id,
    obligations_fulfilled_by,
    report_obligations_by_subject,
    write_fulfilments,
)
from shortage_watch.store.tables import DistributorReport, StoppageNotice


@dataclass
class _Fulfilled:
    obligation: SimpleNamespace
    report: DistributorReport
    moved: Transition[ObligationState]
    opened: bool = False  # opened by this report, for a notice the ledger had not seen


def distributor_reports_stored(session: Session, deps: LedgerDeps, reports: list[DistributorReport], now: datetime, *,
                               revised: bool = False) -> None:
    """New or revised reports (in file order): each fulfils the report obligation it answers while it is
    owed (or again, when it is the report that fulfilled it: a revision), opens and fulfils at once the
    obligation of a notice the ledger has not seen, and fulfils the explanations its distributor owed
    about the product. A late fulfilment alerts the bureaus; an obligation opened by a report mails them
    the levels due at opening (the distributor is not asked for the report it has just made).

    As the reports would one by one: within the set the first report of a matter fulfils it, and a
    later one of the same matter, finding it fulfilled, changes nothing.

    `revised`: the reports are revisions. An obligation one of them fulfilled and no longer answers (corrected
    to another notice or product) is owed again first (`_no_longer_answered`), so a report of the set may fulfil it.
    """
    if not reports:
        return
    notice_of = _notices_answered(session, reports)
    key_of = {}
    for report in reports:
        notice = notice_of[report.id]
        if notice is not None:
            key_of[report.id] = report_subject_key(notice.notice_id, notice.distributor_code, None, None)
        else:
            key_of[report.id] = report_subject_key(report.notice_id, report.distributor_code, report.product_code, report.notified_on)
    obligation_of: dict[str, SimpleNamespace | None] = dict(report_obligations_by_subject(session, key_of.values()))
    _answer_joined_obligations(session, reports, notice_of, key_of, obligation_of)
    product_of = {report.id: report.product_code or (notice_of[report.id].product_code if notice_of[report.id] else None)
                  for report in reports}
    reopened = _no_longer_answered(deps, obligations_fulfilled_by(session, [report.id for report in reports]) if revised else [],
                                   reports, key_of, product_of, obligation_of, now)
    owed = explanations_owed(session, {(report.distributor_code, product) for report in reports if (product := product_of[report.id])})

    fulfilled: list[_Fulfilled] = []
    openings: list[tuple[dict[str, Any], DistributorReport]] = []
    for report in reports:
        key = key_of[report.id]
        if key not in obligation_of:
            openings.append((_opening(deps, report, notice_of[report.id], key), report))
            obligation_of[key] = None  # opened and fulfilled by this report: nothing left for a later one
        elif (obligation := obligation_of[key]) is not None and (
            obligation.state in OBLIGATION_IN_FLIGHT or obligation.report_pk == report.id
        ):
            # Changed in memory first, so a later report of the set finds it fulfilled.
            fulfilled.append(_Fulfilled(obligation, report, fulfilled_by(deps, obligation, report, now)))
        if (product := product_of[report.id]) is not None:
            # Popped: fulfilled now, so no longer owed to a later report of the set.
            for explanation in owed.pop((report.distributor_code, product), []):
                fulfilled.append(_Fulfilled(explanation, report, fulfilled_by(deps, explanation, report, now)))
    # Chasers wait only on obligations that existed before the set.
    closed_before = [done.obligation for done in fulfilled]

    events: list[dict[str, Any]] = [audit_values(at=now, actor=ACTOR, entity="obligation", entity_id=obligation.id, action=moved.action,
                                                 detail=moved.detail) for obligation, moved in reopened]
    ids = open_obligations(session, deps, [opening for opening, _ in openings], now, fire_open=False)
    opened = obligations_by_id(session, ids)
    for obligation_id, (_, report) in zip(ids, openings):
        obligation = opened[obligation_id]
        events.append(audit_values(at=now, actor=ACTOR, entity="obligation", entity_id=obligation_id, action="opened_by_report",
                                   detail={"report_id": report.report_id}))
        fulfilled.append(_Fulfilled(obligation, report, fulfilled_by(deps, obligation, report, now), opened=True))
    for done in fulfilled:
        events.append(audit_values(at=now, actor=ACTOR, entity="obligation", entity_id=done.obligation.id, action=done.moved.action,
                                   detail=done.moved.detail))

    notices = notices_by_id(session, {done.obligation.notice_pk for done in fulfilled if done.obligation.notice_pk is not None}
                            - {notice.id for notice in notice_of.values() if notice is not None})
    notices.update({notice.id: notice for notice in notice_of.values() if notice is not None})
    routes = remembered_routes(deps)
    alerts: list[dict[str, Any]] = []
    for done in fulfilled:
        obligation = done.obligation
        late = obligation.state is ObligationState.FULFILLED_LATE
        if not (late or done.opened):
            continue
        context = _context(session, deps, obligation, done.report, notices, now)
        if late:
            alerts.extend(event_alerts(deps, "late_report", obligation, context, routes, now))
        if done.opened:
            # The bureaus still learn of the stoppage, now described by the report; the distributor
            # gets no receipt asking for the report it has just made.
            ladder = deps.policy.ladder_for("report", obligation.priority)
            opening = _opening_firings(deps, obligation, ladder)
            obligation.level = len(opening)
            if opening:
                due = DueFirings(ladder, tuple(opening), obligation.region_code, obligation.party_code,
                                 skip_recipients=frozenset({"distributor"}), entered_after_due=obligation.opened_at > obligation.due_at)
                planned = ladder_alerts(deps, due, subject="O", subject_id=obligation.id, context=context,
                                        prior={}, now=now, routes=routes)  # opened just now: nothing mailed yet
                alerts.extend(planned.alerts)
                events.extend(planned.skips)

    # A reopened obligation a later report of the set fulfilled is written once, as it ended.
    write_fulfilments(session, list({obligation.id: obligation for obligation in
                                     [*(obligation for obligation, _ in reopened), *(done.obligation for done in fulfilled)]}.values()))
    drop_chasers_of_closed(session, closed_before, now)
    if alerts:
        holds = AlertHolds(session, deps.directory, now)
        for done in fulfilled:
            holds.matter(done.obligation.id, done.obligation.case_id)
        write_planned_alerts(session, holds, alerts)
    insert_audits(session, events)


def _no_longer_answered(deps: LedgerDeps, fulfilled_before: list[SimpleNamespace], reports: list[DistributorReport], key_of: dict[int, str],
                        product_of: dict[int, str | None], obligation_of: dict[str, SimpleNamespace | None],
                        now: datetime) -> list[tuple[SimpleNamespace, Transition[ObligationState]]]:
    """Reopen (in memory) the obligations in `fulfilled_before` (fulfilled by one of the revised `reports`) that
    their report no longer answers: a report obligation of another notice than the one it names or describes
    now, an explanation about another product. Each is owed again (`reopening`), as the object in
    `obligation_of` when there is one, so a later report of the set finds it owed. An obligation a report opened
    for a notice never seen stays as it is: nothing but that report asked for it."""
    by_id = {report.id: report for report in reports}
    read = {obligation.id: obligation for obligation in obligation_of.values() if obligation is not None}
    reopened = []
    for stored in fulfilled_before:
        report = by_id[stored.report_pk]
        if stored.kind == "explanation":
            answered = (stored.party_code, stored.product_code) == (report.distributor_code, product_of[report.id])
        else:
            answered = stored.subject_key == key_of[report.id] or stored.notice_pk is None
        if answered:
            continue
        obligation = read.get(stored.id, stored)
        again = reopening(deps.calendar, Ladder.from_json(obligation.policy), due_on=obligation.due_on, due_at=obligation.due_at,
                          opened_at=obligation.opened_at, step=obligation.level, now=now)
        moved = obligation_reopened(obligation.state, again.state, {"report_id": report.report_id})
        obligation.state = moved.state
        obligation.next_action_at = again.next_action_at
        obligation.fulfilled_at = obligation.report_pk = obligation.late_working_days = None
        obligation.claimed_by = obligation.claimed_until = None
        obligation.updated_at = now
        reopened.append((obligation, moved))
    return reopened


def _answer_joined_obligations(session: Session, reports: list[DistributorReport], notice_of: dict[int, StoppageNotice | None],
                               key_of: dict[int, str], obligation_of: dict[str, SimpleNamespace | None]) -> None:
    """Point each report naming a stored notice that has no obligation of its own at the obligation the
    notice joined (`obligations_joined`): `key_of` and `obligation_of` gain it."""
    unowned = {notice.id: notice for report in reports
               if (notice := notice_of[report.id]) is not None and key_of[report.id] not in obligation_of}
    if not unowned:
        return
    joined = obligations_joined(session, list(unowned.values()), obligation_of)
    for report in reports:
        notice = notice_of[report.id]
        if notice is not None and notice.id in unowned and notice.id in joined:
            key_of[report.id] = joined[notice.id].subject_key


def _context(session: Session, deps: LedgerDeps, obligation: SimpleNamespace, report: DistributorReport,
             notices: dict[int, StoppageNotice], now: datetime) -> dict[str, Any]:
    """The alert context of a fulfilled obligation: from the rows in hand, or read for one with a case (an explanation)."""
    if obligation.case_id is not None:
        return obligation_context(session, obligation=obligation, directory=deps.directory, calendar=deps.calendar, now=now)
    return obligation_context_of(obligation, notice=notices.get(obligation.notice_pk), report=report, case=None, case_info=None,
                                 directory=deps.directory, calendar=deps.calendar, now=now)


def _notices_answered(session: Session, reports: list[DistributorReport]) -> dict[int, StoppageNotice | None]:
    """Per report id: the notice it names (by id, to its distributor) or else describes (the distributor's
    first notice of the product that day), or None; one query each way."""
    named = notices_named(session, [(report.notice_id, report.distributor_code) for report in reports if report.notice_id])
    answered: dict[int, StoppageNotice | None] = {}
    describing = []
    for report in reports:
        answered[report.id] = named.get((report.notice_id, report.distributor_code)) if report.notice_id else None
        if answered[report.id] is None and report.product_code and report.notified_on:
            describing.append(report)
    described = notices_described(session, [(r.distributor_code, r.product_code, r.notified_on) for r in describing])
    for report in describing:
        answered[report.id] = described.get((report.distributor_code, report.product_code, report.notified_on))
    return answered


def _opening(deps: LedgerDeps, report: DistributorReport, notice: StoppageNotice | None, key: str) -> dict[str, Any]:
    """The report obligation a report opens when the ledger has none for what it answers (`open_obligations`)."""
    return dict(
        kind="report", subject_key=key, party_code=report.distributor_code,
        region_code=(notice.region_code if notice else None) or region_of_distributor(deps, report.distributor_code),
        notice_pk=notice.id if notice else None, case_id=None,
        product_code=report.product_code or (notice.product_code if notice else None),
        priority=is_priority(notice.priority_class if notice else None),
        received_on=(notice.notified_on if notice else report.notified_on) or deps.calendar.local_date(report.submitted_at),
    )


def _opening_firings(deps: LedgerDeps, obligation: SimpleNamespace, ladder: Ladder) -> list[Firing]:
    """The ladder's levels due at opening (those before the first with an offset), at their instants."""
    firings = []
    for firing in schedule(deps.calendar, ladder, obligation.due_on, obligation.due_at, obligation.opened_at):
        if firing.level.offset is not None:
            break
        firings.append(firing)
    return firings
