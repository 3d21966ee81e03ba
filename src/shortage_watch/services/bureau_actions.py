"""What a bureau officer writes: close a case (or one hospital's part) with a note, record an offline
interview (约谈) or written reminder (书面提醒). One transaction each, audited with the officer's account.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Collection

from sqlalchemy.orm import Session

from shortage_watch.domain.states import CaseState
from shortage_watch.services.alerts import audit
from shortage_watch.services.cases import case_parts, resolve_case
from shortage_watch.store.tables import OfficerAction, ShortageCase

OFFLINE_KINDS = {"interview": "约谈", "written_reminder": "书面提醒"}


class ActionError(ValueError):
    """An action that cannot be done; the message is Chinese / English."""


def close_case_parts(
    session: Session, case: ShortageCase, *, hospitals_in_scope: Collection[str], hospital: str | None, note: str, actor: str, now: datetime
) -> tuple[list[str], int]:
    """Close one hospital's part, or every open part the officer may see; resolve the case once no part is open.

    Returns the hospitals closed and how many parts stay open.
    """
    note = note.strip()
    if not note:
        raise ActionError("请填写处理说明 / a note saying how it was resolved is required")
    if case.state == CaseState.RESOLVED:
        raise ActionError("该案件已解决 / the case is already resolved")
    parts = case_parts(session, case)
    if hospital:
        if hospital not in hospitals_in_scope or hospital not in {p.hospital_code for p in parts}:
            raise ActionError(f"本案件没有您辖区内医疗机构 {hospital} 的上报 / no report of hospital {hospital} in your regions")
        targets = [hospital]
    else:
        targets = [p.hospital_code for p in parts if not p.closed and p.hospital_code in hospitals_in_scope]
    for code in targets:
        audit(session, at=now, actor=actor, entity="case", entity_id=case.id, action="part_closed", detail={"hospital_code": code, "note": note})
    session.flush()
    remaining = sum(1 for p in case_parts(session, case) if not p.closed)
    if not remaining:
        resolve_case(session, case, now, actor=actor, note=note)
    return targets, remaining


def record_offline_action(
    session: Session, *, kind: str, distributor_code: str, region_code: str, obligation_id: int | None, done_on: date | None, note: str,
    actor: str, account_id: int | None, now: datetime, today: date,
) -> OfficerAction:
    """Record that an interview or written reminder was done offline, and audit it."""
    if kind not in OFFLINE_KINDS:
        raise ActionError(f"未知的记录类型 {kind} / unknown kind {kind!r}")
    if done_on is None:
        raise ActionError("请填写日期（YYYY-MM-DD） / the date (YYYY-MM-DD) is required")
    if done_on > today:
        raise ActionError("日期不能晚于今天 / the date is in the future")
    note = note.strip()
    if not note:
        raise ActionError("请填写说明 / a note is required")
    action = OfficerAction(kind=kind, distributor_code=distributor_code, region_code=region_code, obligation_id=obligation_id, done_on=done_on,
                           note=note, actor=actor, account_id=account_id, recorded_at=now)
    session.add(action)
    session.flush()
    audit(session, at=now, actor=actor, entity="officer_action", entity_id=action.id, action=f"offline_{kind}",
          detail={"distributor_code": distributor_code, "obligation_id": obligation_id, "done_on": done_on.isoformat(), "note": note})
    return action
