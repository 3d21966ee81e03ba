"""What officers did offline (约谈, written reminders) and the interview materials they printed,
as the dashboard lists and checks them."""

from __future__ import annotations

from typing import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from shortage_watch.store.tables import AuditEvent, OfficerAction, WebAccount


def actions_on_obligation(session: Session, obligation_id: int, regions: Collection[str]) -> list[OfficerAction]:
    """The offline actions recorded against the obligation in `regions`, in the order recorded."""
    # An action belongs to the region of the officer who recorded it: a county's obligation may carry the city's.
    return list(session.scalars(select(OfficerAction).where(
        OfficerAction.obligation_id == obligation_id, OfficerAction.region_code.in_(list(regions)))
        .order_by(OfficerAction.recorded_at)))


def actions_on_distributor(session: Session, distributor_code: str, regions: Collection[str]) -> list[OfficerAction]:
    """The offline actions about the distributor recorded in `regions`, by the day they were done."""
    return list(session.scalars(select(OfficerAction).where(
        OfficerAction.distributor_code == distributor_code, OfficerAction.region_code.in_(list(regions)))
        .order_by(OfficerAction.done_on, OfficerAction.id)))


def printed_material(session: Session, checksum: str, regions: Collection[str]) -> AuditEvent | None:
    """The first interview material printed with `checksum` by an officer of `regions` (its audit
    event keeps the content), if any."""
    # A material shows what its printer's regions see (a city's: every county's obligations and the
    # city's own actions), so only an officer overseeing the printer's region may read it back.
    printed = session.scalars(select(AuditEvent).join(WebAccount, WebAccount.id == AuditEvent.entity_id).where(
        AuditEvent.entity == "web_account", AuditEvent.action == "interview_material",
        WebAccount.region_code.in_(list(regions))).order_by(AuditEvent.id))
    for event in printed:
        detail = event.detail or {}
        if detail.get("checksum") == checksum and "content" in detail:
            return event
    return None
