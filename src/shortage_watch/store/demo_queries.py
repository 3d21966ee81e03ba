"""What `shortage-watch demo` prints of its throwaway ledger: the mail that went out, and the outcome."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from shortage_watch.store.tables import Alert, Obligation, ShortageCase


@dataclass(frozen=True)
class MailedAlert:
    id: int
    template: str
    recipient_email: str | None
    recipient_role: str
    status: str  # sent | undeliverable
    message_id: str | None


def mailed_alerts(session: Session) -> list[MailedAlert]:
    """Alerts sent or kept undeliverable, oldest first."""
    rows = session.execute(
        select(Alert.id, Alert.template, Alert.recipient_email, Alert.recipient_role, Alert.status, Alert.message_id)
        .where(Alert.status.in_(("sent", "undeliverable")))
        .order_by(Alert.id))
    return [MailedAlert(*row) for row in rows]


@dataclass(frozen=True)
class DemoOutcome:
    obligations: list[tuple[str, str, int | None]]  # party code, state, late working days; by party
    cases: list[tuple[str | None, str]]  # city code, state


def demo_outcome(session: Session) -> DemoOutcome:
    obligations = session.execute(
        select(Obligation.party_code, Obligation.state, Obligation.late_working_days).order_by(Obligation.party_code))
    cases = session.execute(select(ShortageCase.city_code, ShortageCase.state))
    return DemoOutcome([tuple(row) for row in obligations], [tuple(row) for row in cases])  # type: ignore[misc]
