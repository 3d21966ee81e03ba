"""Writing alerts into the outbox (`alerts`), idempotent on `dedup_key`, with their AlertContext.

Used inside the caller's transaction (the ingest that opened an obligation, the sweep
that applied a level): the alert commits or rolls back with the state change that caused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.domain.alert_context import OPTIONAL_CONTEXT_KEYS, AlertContext
from shortage_watch.domain.cases import hospital_parts, operator_closures_of, possible_false_shortages, report_view
from shortage_watch.domain.obligations import case_number, overdue_working_days
from shortage_watch.domain.routing import DirectoryView, Route
from shortage_watch.domain.states import OBLIGATION_IN_FLIGHT, CaseState
from shortage_watch.store.bulk import inserter
from shortage_watch.store.case_queries import case_reports, part_closed_events, product_manufacturer, product_notice_ids
from shortage_watch.store.sweep import NoticeFacts
from shortage_watch.store.tables import Alert, AuditEvent, DistributorReport, Obligation, ShortageCase, ShortageReport, StoppageNotice


def insert_alerts_if_absent(session: Session, rows: list[dict[str, Any]], *, context_as_text: bool = False) -> dict[str, int]:
    """Insert outbox rows unless their dedup_key exists, in multi-row statements; dedup key -> id of those this call wrote.
    `context_as_text`: each row's context is already its JSON text (as the column's type would write it).

    Two workers may write the same alert at once (a replayed sweep, two replicas): the
    unique dedup_key and ON CONFLICT DO NOTHING make the second insert a no-op on both
    PostgreSQL and SQLite, without an error that would abort the transaction.
    """
    if not rows:
        return {}
    alerts = inserter(session.connection(), Alert.__table__, rows[0], if_absent_on=("dedup_key",),
                      as_stored=("context",) if context_as_text else ())
    return dict(alerts.insert_returning(rows, ("dedup_key", "id")))


@dataclass(frozen=True)
class Hold:
    """Why a new alert is written but not sent: held by a silence, or inhibited (status, audit)."""

    status: str  # held | inhibited
    silence_id: int | None
    actor: str  # who caused it: the officer who set the silence, or the rule
    detail: dict[str, Any]


def alert_status(route: Route, urgent: bool) -> str:
    """pending (send singly), digest (the contact's daily digest covers it) or undeliverable."""
    if route.email is None:
        return "undeliverable"
    if not urgent and route.delivery == "digest":
        return "digest"
    return "pending"


def alert_values(
    *,
    now: datetime,
    subject: str,  # "O" or "C"
    subject_id: int,
    level_name: str,
    template: str,
    urgent: bool,
    route: Route,
    context: dict[str, Any],
    default_language: str,
) -> dict[str, Any]:
    """The outbox row of one alert for one recipient (dedup key: matter, level, recipient)."""
    full = dict(context)
    full.update(
        template=template,
        level=level_name,
        urgent=urgent,
        written_at=now.isoformat(),
        recipient={
            "role": route.role,
            "region_code": route.region_code,
            "region_name": route.region_name,
            "name": route.name,
            "email": route.email,
        },
    )
    _check_keys(full)
    return {
        **matter_values(subject, subject_id, level_name, route),
        "level": level_name[:64],
        "template": template,
        "recipient_role": route.role,
        "recipient_region": route.region_code,
        "recipient_email": route.email,
        "language": route.language or default_language,
        "urgent": urgent,
        "context": full,
        "status": alert_status(route, urgent),
        "silence_id": None,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def matter_values(subject: str, subject_id: int, level_name: str, route: Route) -> dict[str, Any]:
    """The columns of an outbox row (`alert_values`) that name its matter: dedup key, matter ids, thread."""
    return {
        "dedup_key": f"{subject}{subject_id}:{level_name}:{route.key}"[:300],
        "obligation_id": subject_id if subject == "O" else None,
        "case_id": subject_id if subject == "C" else None,
        "thread_key": f"{subject}{subject_id}",
    }


def write_alerts(session: Session, alerts: list[tuple[dict[str, Any], Hold | None]], *, context_as_text: bool = False) -> set[str]:
    """Write outbox rows (`alert_values`, each with its hold or None) in bulk; the dedup keys that were new.

    A deliverable alert with a hold is written held or inhibited, and audited with why.
    `context_as_text`: see `insert_alerts_if_absent`.
    """
    held: dict[str, Hold] = {}
    for values, hold in alerts:
        if hold is not None and values["status"] != "undeliverable":
            values.update(status=hold.status, silence_id=hold.silence_id)
            held[values["dedup_key"]] = hold
    written = insert_alerts_if_absent(session, [values for values, _ in alerts], context_as_text=context_as_text)
    insert_audits(session, [
        audit_values(at=values["created_at"], actor=held[key].actor, entity="alert", entity_id=written[key], action=held[key].status,
                     detail=held[key].detail)
        for values, _ in alerts
        if (key := values["dedup_key"]) in held and key in written
    ])
    return set(written)


def audit_values(*, at: datetime, actor: str, entity: str, entity_id: int, action: str, detail: dict | None = None) -> dict[str, Any]:
    """One row of the audit trail."""
    return {"at": at, "actor": actor, "entity": entity, "entity_id": entity_id, "action": action, "detail": detail}


def audit(session: Session, *, at: datetime, actor: str, entity: str, entity_id: int, action: str,
          detail: dict | None = None) -> None:
    """Record one state change in the audit trail (same transaction as the change)."""
    session.add(AuditEvent(**audit_values(at=at, actor=actor, entity=entity, entity_id=entity_id, action=action, detail=detail)))


def insert_audits(session: Session, rows: list[dict[str, Any]]) -> None:
    """Record many state changes (`audit_values` rows) in one executemany, in the caller's transaction."""
    if rows:
        inserter(session.connection(), AuditEvent.__table__, rows[0]).insert(rows)


# What a message may say about earlier steps when it is not written by the ladder (an event), or before
# the ladder decides: nothing was mailed before, nothing goes with it, nothing is being caught up.
def no_history() -> dict[str, Any]:
    return {"prior_steps": {}, "sent_with": [], "catch_up": None}


HISTORY_KEYS = tuple(no_history())  # what a plan says of earlier steps: the last keys of a matter's alert context
ALERT_KEYS = frozenset(("template", "level", "urgent", "written_at", "recipient"))  # what `alert_values` adds to it


def _party(code: str | None, name: str | None) -> dict[str, Any] | None:
    return None if code is None else {"code": code, "name": name}


def _region_name(directory: DirectoryView, code: str | None) -> str | None:
    region = directory.region(code) if code else None
    return getattr(region, "name", None)


def _distributor_name(directory: DirectoryView, code: str, fallback: str | None) -> str | None:
    party = directory.distributor(code)
    return getattr(party, "name", None) or fallback


def obligation_context(session: Session, *, obligation: Obligation, directory: DirectoryView, calendar: WorkingCalendar,
                       now: datetime) -> dict[str, Any]:
    """The AlertContext parts about an obligation (recipient, level and template are added per alert)."""
    notice = session.get(StoppageNotice, obligation.notice_pk) if obligation.notice_pk else None
    report = session.get(DistributorReport, obligation.report_pk) if obligation.report_pk else None
    case = session.get(ShortageCase, obligation.case_id) if obligation.case_id else None
    case_info = None
    if case is not None:
        case_info = case_context(session, case, directory, calendar=calendar, now=now)["case"]
    return obligation_context_of(obligation, notice=notice, report=report, case=case, case_info=case_info,
                                 directory=directory, calendar=calendar, now=now)


def obligation_context_of(
    obligation: Obligation, *, notice: StoppageNotice | NoticeFacts | None, report: DistributorReport | None, case: ShortageCase | None,
    case_info: dict[str, Any] | None, directory: DirectoryView, calendar: WorkingCalendar, now: datetime
) -> dict[str, Any]:
    """The AlertContext parts about an obligation, from its rows already read (no query): its notice,
    report and case (each None when it has none) and the case's context part."""
    overdue = None
    if obligation.state in OBLIGATION_IN_FLIGHT:
        overdue = overdue_working_days(calendar, obligation.due_on, obligation.due_at, now)
    fallback_name = getattr(notice, "distributor_name", None)
    context: dict[str, Any] = {
        "case_number": case_number("O", obligation.id),
        "thread_key": f"O{obligation.id}",
        "region": {"code": obligation.region_code or "", "name": _region_name(directory, obligation.region_code)},
        "distributor": _party(obligation.party_code, _distributor_name(directory, obligation.party_code, fallback_name)),
        **notice_parts(obligation, notice=notice, report=report, case=case),
        "deadline": {
            "received_on": obligation.received_on.isoformat(),
            "working_days": calendar.working_days_between(obligation.received_on, obligation.due_on),
            "due_on": obligation.due_on.isoformat(),
            "due_at": obligation.due_at.astimezone(calendar.tz).isoformat(),
            "calendar": obligation.calendar_status,
        },
        "overdue_working_days": overdue,
        "report": None,
        "case": case_info,
        "entered_at": obligation.opened_at.astimezone(calendar.tz).isoformat(),
        **no_history(),
    }
    if report is not None:
        context["report"] = {
            "report_id": report.report_id,
            "submitted_at": report.submitted_at.isoformat(),
            "late_working_days": obligation.late_working_days,
        }
    return context


# The AlertContext keys `notice_parts` gives, in their order in an obligation's context.
NOTICE_KEYS = ("manufacturer", "product", "notice")


def notice_parts(obligation: Obligation, *, notice: StoppageNotice | NoticeFacts | None, report: DistributorReport | None,
                 case: ShortageCase | None) -> dict[str, Any]:
    """The AlertContext parts of an obligation that its notice words (`NOTICE_KEYS`): manufacturer, product
    and notice, from the notice (its row, or its columns as the sweep reads them), else the report, else the
    obligation and case."""
    source = notice or report
    product = None
    if source is not None and source.product_code:
        product = {
            "code": source.product_code,
            "name": source.product_name or source.product_code,
            "specification": getattr(notice, "specification", None),
        }
    elif obligation.product_code:
        name = case.product_name if case is not None else obligation.product_code
        product = {"code": obligation.product_code, "name": name, "specification": None}
    notice_info = None
    if notice is not None:
        notice_info = {
            "notice_id": notice.notice_id,
            "kind": notice.kind,
            "notified_on": notice.notified_on.isoformat(),
            "reason": notice.reason,
            "expected_resume_on": notice.expected_resume_on.isoformat() if notice.expected_resume_on else None,
            "priority_class": notice.priority_class,
        }
    elif report is not None and report.kind:
        notice_info = {
            "notice_id": report.notice_id or "",
            "kind": report.kind,
            "notified_on": report.notified_on.isoformat() if report.notified_on else obligation.received_on.isoformat(),
            "reason": None,
            "expected_resume_on": None,
            "priority_class": None,
        }
    return {"manufacturer": getattr(source, "manufacturer", None), "product": product, "notice": notice_info}


def case_context(session: Session, case: ShortageCase | None, directory: DirectoryView, *, calendar: WorkingCalendar,
                 now: datetime) -> dict[str, Any]:
    """The AlertContext parts about a shortage case."""
    assert case is not None
    return case_context_of(case, case_reports(session, case.id), operator_closures(session, case.id),
                           notice_ids=product_notice_ids(session, case.product_code),
                           manufacturer=product_manufacturer(session, case.product_code), directory=directory, calendar=calendar, now=now)


def case_context_of(case: ShortageCase | SimpleNamespace, reports: list[ShortageReport], closures: dict[str, datetime], *, notice_ids: list[str], manufacturer: str | None,
                    directory: DirectoryView, calendar: WorkingCalendar, now: datetime) -> dict[str, Any]:
    """The AlertContext parts about a shortage case from what was read already (no query): the case (or a
    namespace of its columns), its hospital reports in the order stored, operator closures, the ids of
    the product's notices and a manufacturer they name."""
    unresolved = None
    overdue = None
    if case.regional_at is not None and case.state != CaseState.RESOLVED:
        # Whole working days gone by: the day in progress is not counted yet.
        unresolved = calendar.working_days_between(calendar.local_date(case.regional_at), calendar.local_date(now) - timedelta(days=1))
        if case.due_at is not None:
            overdue = overdue_working_days(calendar, calendar.local_date(case.due_at), case.due_at, now)
    views = [report_view(r) for r in reports]
    parts = hospital_parts(views, closures)
    latest_pk = {p.latest.report_pk for p in parts}
    lines = [
        {
            "code": r.hospital_code,
            "name": r.hospital_name,
            "region_code": r.region_code,
            "reported_on": r.reported_on.isoformat(),
            "supply_status": r.supply_status,
            "stock_days": r.stock_days,
            "monthly_demand": r.monthly_demand,
            "demand_unit": r.demand_unit,
            "substitute_in_use": r.substitute_in_use,
            "cause": r.cause,
        }
        for r in reports
        if r.id in latest_pk
    ]
    return {
        "case_number": case_number("C", case.id),
        "thread_key": f"C{case.id}",
        "region": {"code": case.city_code, "name": _region_name(directory, case.city_code)},
        "distributor": None,
        "manufacturer": manufacturer,
        "product": {"code": case.product_code, "name": case.product_name, "specification": None},
        "notice": None,
        "deadline": None,
        "overdue_working_days": overdue,
        "report": None,
        "case": {
            "city_code": case.city_code,
            "city_name": _region_name(directory, case.city_code),
            "state": case.state,
            # In local time, as the mail samples and officer commands give them: the database returns UTC.
            "opened_at": case.opened_at.astimezone(calendar.tz).isoformat(),
            "regional_at": case.regional_at.astimezone(calendar.tz).isoformat() if case.regional_at else None,
            "hospitals": lines,
            "possible_false_shortages": possible_false_shortages(parts),
            "linked_notices": sorted(notice_ids),
            "first_reported_on": min(r.reported_on for r in reports).isoformat() if reports else calendar.local_date(case.opened_at).isoformat(),
            "unresolved_working_days": unresolved,
        },
        "entered_at": (case.regional_at or case.opened_at).astimezone(calendar.tz).isoformat(),
        **no_history(),
    }


def operator_closures(session: Session, case_id: int) -> dict[str, datetime]:
    """Hospital parts an operator closed (`cases resolve ID --hospital`): hospital code -> when."""
    return operator_closures_of((event.at, event.detail) for event in part_closed_events(session, case_id))


CONTEXT_KEYS = frozenset(AlertContext.__annotations__) - OPTIONAL_CONTEXT_KEYS


def _check_keys(context: dict[str, Any]) -> None:
    if not CONTEXT_KEYS <= context.keys():
        raise AssertionError(f"alert context lacks {sorted(CONTEXT_KEYS - set(context))}")
