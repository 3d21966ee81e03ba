"""Find the reporters that went quiet (read only): for the operations digest, health warnings and metrics.

- a configured source (feed or inbox) that accepted no record for its `quiet_working_days`
  (one that was never polled is left to the heartbeat check);
- a distributor whose mail has been dead-lettered, with nothing sent to it since, for
  `quiet.dead_letter_working_days`: nobody is receiving its reminders;
- a hospital on `quiet.sentinel_hospitals` that has not reported for `quiet.sentinel_working_days`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy.orm import Session

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.domain.quiet import QuietReporter, quiet_working_days
from shortage_watch.settings import QuietSettings, SourceSettings
from shortage_watch.store import quiet_queries as reads


def find_quiet_reporters(session: Session, sources: Sequence[SourceSettings], quiet: QuietSettings, calendar: WorkingCalendar,
                         now: datetime) -> list[QuietReporter]:
    """Every quiet reporter at `now` among the configured `sources`, distributors and `quiet.sentinel_hospitals`:
    sources first, then distributors, then sentinel hospitals."""
    return _sources(session, sources, calendar, now) + _distributors(session, quiet, calendar, now) + _sentinels(session, quiet, calendar, now)


def _sources(session: Session, sources: Sequence[SourceSettings], calendar: WorkingCalendar, now: datetime) -> list[QuietReporter]:
    polled = reads.polled_source_names(session)
    last = reads.last_accepted_by_source(session)
    found = []
    for source in sources:
        if source.name not in polled and source.name not in last:
            continue
        quiet, days = quiet_working_days(calendar, last.get(source.name), now, source.quiet_working_days)
        if quiet:
            found.append(QuietReporter("source", source.name, None, last.get(source.name), days))
    return found


def _distributors(session: Session, quiet: QuietSettings, calendar: WorkingCalendar, now: datetime) -> list[QuietReporter]:
    last_sent = reads.last_sent_to_distributors(session)
    first_dead: dict[str, tuple[datetime, dict]] = {}
    for dead in reads.dead_distributor_mail(session):
        email, context, at = dead.email, dead.context, dead.died_at
        sent = last_sent.get(email)
        if sent is not None and sent >= at:
            continue  # mail got through after this one died: the address works
        if email not in first_dead or at < first_dead[email][0]:
            first_dead[email] = (at, context)
    found = []
    for email, (since, context) in sorted(first_dead.items(), key=lambda item: item[1][0]):
        is_quiet, days = quiet_working_days(calendar, since, now, quiet.dead_letter_working_days)
        if is_quiet:
            party = context.get("distributor") or {}
            found.append(QuietReporter("distributor", party.get("code") or email, party.get("name"), since, days))
    return found


def _sentinels(session: Session, quiet: QuietSettings, calendar: WorkingCalendar, now: datetime) -> list[QuietReporter]:
    codes = list(quiet.sentinel_hospitals)
    if not codes:
        return []
    last = reads.last_hospital_reports(session, codes)
    found = []
    for code in codes:
        at, name = last.get(code, (None, None))
        is_quiet, days = quiet_working_days(calendar, at, now, quiet.sentinel_working_days)
        if is_quiet:
            found.append(QuietReporter("sentinel", code, name, at, days))
    return found
