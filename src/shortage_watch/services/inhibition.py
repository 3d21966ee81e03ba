"""Inhibition in the outbox: alerts recorded, audited, and not sent (domain.inhibition says which).

Used inside the transaction that changes the matter (the sweep step that escalates a case,
the ingest that fulfils an obligation), so the decision commits with its cause.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any, Sequence

from sqlalchemy.orm import Session

from shortage_watch.domain.inhibition import chases, inhibited_by_province
from shortage_watch.domain.policy import Ladder, stored_ladders
from shortage_watch.domain.routing import DirectoryView
from shortage_watch.domain.states import CaseState
from shortage_watch.services.alerts import Hold, audit, audit_values, insert_audits
from shortage_watch.store.tables import Obligation, ShortageCase
from shortage_watch.store.waiting_alerts import set_alert_statuses, waiting_case_alerts_for_update, waiting_obligation_alerts_for_update

WAITING = ("pending", "digest", "held")  # written, not yet claimed by a sender


def escalated_case(session: Session, subject: str, subject_id: int) -> ShortageCase | None:
    """The escalated case an alert subject belongs to: the case itself, or an obligation it opened."""
    case_id = subject_id if subject == "C" else None
    if subject == "O":
        obligation = session.get(Obligation, subject_id)
        case_id = obligation.case_id if obligation is not None else None
    case = session.get(ShortageCase, case_id) if case_id is not None else None
    return case if case is not None and case.state == CaseState.ESCALATED else None


def province_hold(case: ShortageCase) -> Hold:
    """How a county or city bureau alert about an escalated case is written: inhibited, with why."""
    return Hold("inhibited", None, "inhibition", _province_detail(case))


def _province_detail(case: ShortageCase) -> dict[str, Any]:
    return {"case": case.id, "reason": "case escalated to the province; county/city alert would repeat it"}


def inhibit_after_escalation(session: Session, directory: DirectoryView, case: ShortageCase, now: datetime) -> int:
    """Inhibit the waiting county and city bureau alerts about `case` (and its explanation obligations)."""
    waiting = waiting_case_alerts_for_update(session, case.id, WAITING)
    inhibited = 0
    for alert in waiting:
        region = directory.region(alert.recipient_region) if alert.recipient_region else None
        if not inhibited_by_province(alert.recipient_role, getattr(region, "level", None)):
            continue
        alert.status = "inhibited"
        alert.last_error = f"inhibited: case {case.id} escalated to the province"
        audit(session, at=now, actor="inhibition", entity="alert", entity_id=alert.id, action="inhibited", detail=_province_detail(case))
        inhibited += 1
    return inhibited


def drop_chasers_of_closed(session: Session, obligations: Sequence[Obligation | SimpleNamespace], now: datetime) -> int:
    """Obligations (ORM or plain rows) fulfilled or cancelled while their chasing alerts waited: those are
    not sent. One query, one update and one audit insert for the set; how many were dropped."""
    closed = {obligation.id: obligation for obligation in obligations}
    chasing: dict[int, Ladder | None] = {}  # each obligation's stored ladder, read once
    ladder_of = stored_ladders()
    stale, events = [], []
    for alert_id, obligation_id, level in waiting_obligation_alerts_for_update(session, list(closed), WAITING):
        obligation = closed[obligation_id]
        if obligation_id not in chasing:
            chasing[obligation_id] = ladder_of(obligation.policy) if obligation.policy else None
        if not chases(chasing[obligation_id], level):
            continue
        stale.append({"id": alert_id, "status": "stale", "last_error": f"obligation {obligation.state} before this was sent"})
        events.append(audit_values(at=now, actor="inhibition", entity="alert", entity_id=alert_id, action="stale",
                                   detail={"obligation_state": obligation.state}))
    set_alert_statuses(session, stale)
    insert_audits(session, events)
    return len(stale)
