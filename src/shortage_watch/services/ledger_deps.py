"""What the ledger's services use (obligations, cases, alert routing), built by `App.ledger_deps()`."""

from __future__ import annotations

from dataclasses import dataclass

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.domain.policy import Policy
from shortage_watch.domain.directory import Directory
from shortage_watch.settings import CalendarSettings, EscalationSettings

ACTOR = "ledger"  # who the audit trail says acted


@dataclass(frozen=True)
class LedgerDeps:
    """The working calendar and its deadline rule, the escalation policy and thresholds, the directory
    as it is now (an empty one when none is usable: alerts then go to operations), the operations
    address and the default mail language."""

    calendar: WorkingCalendar
    deadlines: CalendarSettings
    policy: Policy
    escalation: EscalationSettings
    directory: Directory
    operations_email: str | None
    mail_language: str
