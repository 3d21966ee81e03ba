"""Shortage cases: hospital reports join the case of (product, city); an unexplained one makes the
named distributor owe an explanation; K hospitals within W days make it regional, with its ladder
and deadline; every hospital reporting supply resolved (or an operator) resolves it."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from shortage_watch.domain.cases import ReportView, all_closed, hospital_parts, is_regional
from shortage_watch.domain.catch_up import Plan
from shortage_watch.domain.obligations import advance, explanation_subject_key, next_action_after_revision
from shortage_watch.domain.policy import Firing, Ladder
from shortage_watch.domain.states import CaseState, case_regional, case_resolved
from shortage_watch.services.alert_routing import write_event_alerts, write_ladder_alerts
from shortage_watch.services.alerts import audit, case_context, operator_closures
from shortage_watch.services.ledger_deps import ACTOR, LedgerDeps
from shortage_watch.services.obligations import open_obligation
from shortage_watch.store.ledger_rows import (
    hospital_reports_of_case,
    lock_case_key,
    obligation_by_subject,
    product_has_notice,
    unresolved_case,
)
from shortage_watch.store.tables import ShortageCase, ShortageReport


def _case_ladder(deps: LedgerDeps) -> dict[str, Any]:
    return {
        "ladder": deps.policy.ladder_for("regional").as_json(),
        "escalate_working_days": deps.escalation.regional_escalate_working_days,
    }


def case_deadline(deps: LedgerDeps, case: ShortageCase) -> tuple[date, datetime, str]:
    """A regional case is due for the province N working days after it became regional (end of day),
    with how sure the calendar is of that date."""
    assert case.regional_at is not None and case.policy is not None
    calendar = deps.calendar
    start = calendar.local_date(case.regional_at)
    due_on, status = calendar.nth_working_day_after(start, int(case.policy["escalate_working_days"]))
    return due_on, calendar.end_of_day(due_on, None), str(status)


def case_due(deps: LedgerDeps, case: ShortageCase) -> tuple[date, datetime]:
    """The case's due date and instant under the current calendar (see `case_deadline`)."""
    due_on, due_at, _ = case_deadline(deps, case)
    return due_on, due_at


def redate_case(session: Session, deps: LedgerDeps, case: ShortageCase, now: datetime) -> None:
    """Re-date a regional case whose due date was estimated: new due instant, calendar status and
    next_action_at for the levels not yet applied (those applied stay applied, their alerts sent)."""
    assert case.policy is not None and case.regional_at is not None
    old_due, old_calendar = case.due_at, case.calendar_status
    due_on, due_at, status = case_deadline(deps, case)
    ladder = Ladder.from_json(case.policy["ladder"])
    case.due_at = due_at
    case.calendar_status = status
    case.next_action_at = next_action_after_revision(deps.calendar, ladder, due_on=due_on, due_at=due_at, opened_at=case.regional_at, step=case.level)
    case.updated_at = now
    audit(session, at=now, actor=ACTOR, entity="case", entity_id=case.id, action="deadline_recomputed", detail={
        "due_at_from": old_due.astimezone(deps.calendar.tz).isoformat() if old_due else None,
        "due_at_to": due_at.astimezone(deps.calendar.tz).isoformat(),
        "calendar_from": old_calendar,
        "calendar_to": status,
        "state": case.state,
    })


def case_parts(session: Session, case: ShortageCase) -> list:
    rows = hospital_reports_of_case(session, case.id)
    views = [ReportView(r.hospital_code, r.reported_on, r.supply_status, r.cause, r.received_at, r.id) for r in rows]
    return hospital_parts(views, operator_closures(session, case.id))


def write_case_alerts(
    session: Session, deps: LedgerDeps, case: ShortageCase, firings: list[Firing] | tuple[Firing, ...], now: datetime, *, stale: tuple[Firing, ...] = ()
) -> tuple[int, Plan]:
    """The alerts of the case's firings due now, to the case's city (see `write_ladder_alerts`)."""
    if not firings and not stale:
        return 0, Plan((), ())
    context = case_context(session, case, deps.directory, calendar=deps.calendar, now=now)
    return write_ladder_alerts(
        session, deps, subject="C", subject_id=case.id, firings=firings, stale=stale, region_code=case.city_code,
        distributor_code=None, context=context, now=now, ladder=Ladder.from_json(case.policy["ladder"]),
    )


def shortage_report_stored(session: Session, deps: LedgerDeps, report: ShortageReport, previous: dict | None, now: datetime) -> None:
    """Join the report to the open case for (product, city); open explanation, regional and resolution steps."""
    directory = deps.directory
    region_code = report.region_code or getattr(directory.hospital(report.hospital_code), "region_code", None)
    city = directory.city_of(region_code) if region_code else None
    city_code = getattr(city, "code", None) or region_code or "unknown"
    lock_case_key(session, report.product_code, city_code)
    case = session.get(ShortageCase, report.case_id) if report.case_id else None
    if case is None or case.state == CaseState.RESOLVED:
        case = unresolved_case(session, report.product_code, city_code)
    if case is None:
        if report.supply_status == "resolved":
            return  # nothing open to close
        case = ShortageCase(
            product_code=report.product_code,
            product_name=report.product_name,
            city_code=city_code,
            state=CaseState.OPEN,
            opened_at=now,
            level=0,
            updated_at=now,
        )
        session.add(case)
        session.flush()
        audit(session, at=now, actor=ACTOR, entity="case", entity_id=case.id, action="opened", detail={"product_code": case.product_code, "city_code": city_code})
    report.case_id = case.id
    case.updated_at = now
    session.flush()

    active = report.supply_status != "resolved"
    if active and report.cause == "procurement":
        write_event_alerts(
            session,
            deps,
            subject="C",
            subject_id=case.id,
            rule=deps.policy.events["false_shortage"],
            level_name=f"false_shortage-{report.id}",
            region_code=city_code,
            context=case_context(session, case, directory, calendar=deps.calendar, now=now),
            distributor_code=None,
            now=now,
        )
    elif active and report.distributor_code:
        key = explanation_subject_key(case.id, report.distributor_code)
        if not product_has_notice(session, report.product_code) and obligation_by_subject(session, "explanation", key) is None:
            open_obligation(
                session,
                deps,
                kind="explanation",
                subject_key=key,
                party_code=report.distributor_code,
                region_code=region_code,
                received_on=report.reported_on,
                priority=False,
                now=now,
                case_id=case.id,
                product_code=report.product_code,
            )

    parts = case_parts(session, case)
    settings = deps.escalation
    if case.state == CaseState.OPEN and is_regional(parts, settings.regional_hospitals, settings.regional_window_days):
        make_regional(session, deps, case, now)
    if all_closed(parts):
        resolve_case(session, case, now, actor=ACTOR, note="every hospital reported the supply resolved")


def make_regional(session: Session, deps: LedgerDeps, case: ShortageCase, now: datetime) -> None:
    """K hospitals within W days: the case is a regional shortage and starts its ladder."""
    moved = case_regional(case.state, deps.escalation.regional_hospitals)
    case.state = moved.state
    case.regional_at = now
    case.policy = _case_ladder(deps)
    case.level = 0
    session.flush()
    audit(session, at=now, actor=ACTOR, entity="case", entity_id=case.id, action=moved.action, detail=moved.detail)
    ladder = Ladder.from_json(case.policy["ladder"])
    due_on, due_at, case.calendar_status = case_deadline(deps, case)
    case.due_at = due_at
    step = advance(deps.calendar, ladder, due_on=due_on, due_at=due_at, opened_at=case.regional_at, step=0, now=now)
    opening = [f for f in step.firings if f.level.offset is None]
    write_case_alerts(session, deps, case, opening, now)
    case.level = len(opening)
    case.next_action_at = next_action_after_revision(deps.calendar, ladder, due_on=due_on, due_at=due_at, opened_at=case.regional_at, step=case.level)


def resolve_case(session: Session, case: ShortageCase, now: datetime, *, actor: str, note: str | None) -> None:
    """Close the case: no further escalation."""
    moved = case_resolved(case.state, note)
    case.state = moved.state
    case.resolved_at = now
    case.resolution_note = note
    case.next_action_at = None
    case.claimed_by = None
    case.claimed_until = None
    case.updated_at = now
    audit(session, at=now, actor=actor, entity="case", entity_id=case.id, action=moved.action, detail=moved.detail)
