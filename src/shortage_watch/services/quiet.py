"""Find the reporters that went quiet (read only): for the operations digest, health warnings and metrics.

- a configured source (feed or inbox) that accepted no record for its `quiet_working_days`
  (one that was never polled is left to the heartbeat check);
- a distributor whose mail has been dead-lettered, with nothing sent to it since, for
  `quiet.dead_letter_working_days`: nobody is receiving its reminders;
- a hospital on `quiet.sentinel_hospitals` that has not reported for `quiet.sentinel_working_days`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shortage_watch.domain.quiet import QuietReporter, quiet_working_days
from shortage_watch.store.tables import Alert, AuditEvent, RawReceipt, ShortageReport, SourceState


def find_quiet_reporters(session: Session, settings: Any, calendar: Any, now: datetime) -> list[QuietReporter]:
    """Every quiet reporter at `now`, sources first, then distributors, then sentinel hospitals."""
    return _sources(session, settings, calendar, now) + _distributors(session, settings, calendar, now) + _sentinels(session, settings, calendar, now)


def _sources(session: Session, settings: Any, calendar: Any, now: datetime) -> list[QuietReporter]:
    polled = set(session.scalars(select(SourceState.name)))
    last = dict(session.execute(
        select(RawReceipt.source, func.max(RawReceipt.received_at)).where(RawReceipt.accepted > 0).group_by(RawReceipt.source)
    ).all())
    found = []
    for source in settings.sources:
        if source.name not in polled and source.name not in last:
            continue
        quiet, days = quiet_working_days(calendar, last.get(source.name), now, source.quiet_working_days)
        if quiet:
            found.append(QuietReporter("source", source.name, None, last.get(source.name), days))
    return found


def _distributors(session: Session, settings: Any, calendar: Any, now: datetime) -> list[QuietReporter]:
    last_sent = dict(session.execute(
        select(Alert.recipient_email, func.max(Alert.sent_at))
        .where(Alert.recipient_role == "distributor", Alert.status == "sent")
        .group_by(Alert.recipient_email)
    ).all())
    dead = session.execute(
        select(Alert.recipient_email, Alert.context, AuditEvent.at)
        .join(AuditEvent, (AuditEvent.entity == "alert") & (AuditEvent.entity_id == Alert.id) & (AuditEvent.action == "dead"))
        .where(Alert.recipient_role == "distributor", Alert.status == "dead")
    ).all()
    first_dead: dict[str, tuple[datetime, dict]] = {}
    for email, context, at in dead:
        sent = last_sent.get(email)
        if sent is not None and sent >= at:
            continue  # mail got through after this one died: the address works
        if email not in first_dead or at < first_dead[email][0]:
            first_dead[email] = (at, context)
    found = []
    for email, (since, context) in sorted(first_dead.items(), key=lambda item: item[1][0]):
        quiet, days = quiet_working_days(calendar, since, now, settings.quiet.dead_letter_working_days)
        if quiet:
            party = context.get("distributor") or {}
            found.append(QuietReporter("distributor", party.get("code") or email, party.get("name"), since, days))
    return found


def _sentinels(session: Session, settings: Any, calendar: Any, now: datetime) -> list[QuietReporter]:
    codes = list(settings.quiet.sentinel_hospitals)
    if not codes:
        return []
    rows = session.execute(
        select(ShortageReport.hospital_code, func.max(ShortageReport.received_at), func.max(ShortageReport.hospital_name))
        .where(ShortageReport.hospital_code.in_(codes))
        .group_by(ShortageReport.hospital_code)
    ).all()
    last = {code: (at, name) for code, at, name in rows}
    found = []
    for code in codes:
        at, name = last.get(code, (None, None))
        quiet, days = quiet_working_days(calendar, at, now, settings.quiet.sentinel_working_days)
        if quiet:
            found.append(QuietReporter("sentinel", code, name, at, days))
    return found
