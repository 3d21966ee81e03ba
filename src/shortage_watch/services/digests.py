"""The daily digest and the monthly summary: written into the outbox, sent by deliver_due.

Both are idempotent per recipient, region and period through the outbox's unique dedup key
(`digest:{region}:{role}:{email}:{YYYY-MM-DD}`, `monthly:{region}:{email}:{YYYY-MM}`): two
replicas, or a rerun, write each once, and an address listed for two regions gets each
region's mail. Their context (services/digest_contexts.py) is a snapshot of the ledger
(store/digest_queries.py) taken when written; the monthly XLSX workbook (mail/workbook.py)
is built from that context when the mail is sent.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.domain.directory import Contact, Directory
from shortage_watch.domain.working_hours import working_day_from
from shortage_watch.services.alerts import insert_alerts_if_absent
from shortage_watch.services.digest_contexts import (
    DigestContext,
    MonthlyContext,
    covered_items,
    digest_context,
    digest_has_news,
    held_items,
    monthly_context,
)
from shortage_watch.services.quiet import find_quiet_reporters
from shortage_watch.settings import MailSettings, QuietSettings, SourceSettings
from shortage_watch.store import digest_queries as reads
from shortage_watch.store.compliance import compliance_by_distributor
from shortage_watch.store.tables import Alert

log = logging.getLogger(__name__)

# A replica that was down on the first working day still sends the monthly summary this
# many working days later; after that the month is skipped rather than mailed late.
MONTHLY_CATCH_UP_WORKING_DAYS = 3

# A digest lists what arrived since the same address's previous digest, however late that one was
# written: a digest written late (a replica restarted at 11:00) would otherwise list 08:00-11:00 again
# the next day, and a day none was written (every replica down) would drop that day's notices. The
# previous digest is looked for this many working days back; without one, the digest lists what
# arrived since the previous working day's digest time.
DIGEST_LOOK_BACK_WORKING_DAYS = 5


@dataclass(frozen=True)
class DigestDeps:
    """What writing digests uses, built by `App.digest_deps()`: the session factory, the working
    calendar, the directory as it is now, mail settings, the operations address, and what finds
    quiet reporters (the configured sources, `quiet` settings)."""

    sessions: sessionmaker[Session]
    calendar: WorkingCalendar
    directory: Directory
    mail: MailSettings
    operations_email: str | None
    sources: Sequence[SourceSettings]
    quiet: QuietSettings


def _insert_outbox_row(session: Session, values: dict[str, Any]) -> bool:
    """Insert unless the dedup key exists; True when this call wrote it.

    Two replicas may write the same digest at once: the unique dedup_key makes the second
    a no-op (insert-if-absent) without aborting the transaction.
    """
    return bool(insert_alerts_if_absent(session, [values]))


def _outbox_values(mail: MailSettings, *, dedup_key: str, thread_key: str, template: str, contact: Contact, email: str,
                   context: DigestContext | MonthlyContext, now: datetime) -> dict[str, Any]:
    return {
        "dedup_key": dedup_key,
        "thread_key": thread_key,
        "level": template,
        "template": template,
        "recipient_role": contact.role,
        "recipient_region": contact.region_code,
        "recipient_email": email,
        "language": contact.language or mail.language,
        "urgent": False,
        "context": context,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


# --- daily digest -------------------------------------------------------------------------


def digest_window_start(session: Session, calendar: WorkingCalendar, mail: MailSettings, key_prefix: str, today: date) -> datetime:
    """Where today's digest under `key_prefix` (its dedup key but the date) starts listing: when the
    previous one was written (up to DIGEST_LOOK_BACK_WORKING_DAYS back), else the previous working
    day's digest time."""
    first = calendar.nth_working_day_before(today, DIGEST_LOOK_BACK_WORKING_DAYS)
    keys = [f"{key_prefix}{first + timedelta(days=n)}" for n in range((today - first).days)]
    previous = datetime.combine(calendar.nth_working_day_before(today, 1), mail.digest_time, tzinfo=calendar.tz)
    return reads.latest_written(session, keys) or previous


def send_daily_digests(deps: DigestDeps, now: datetime) -> int:
    """Write today's bureau digests and the operations digest; returns how many were new."""
    return send_bureau_digests(deps, now) + send_operations_digest(deps, now)


def send_operations_digest(deps: DigestDeps, now: datetime) -> int:
    """On a working day from `mail.digest_time`: one mail to `directory.operations_email` listing the
    reporters that went quiet and, since the previous working day's digest time, the files whose
    accepted rows name a distributor or hospital the directory does not list (neither: no mail);
    at most one per day (dedup key). Returns 0 or 1."""
    calendar, mail = deps.calendar, deps.mail
    email = deps.operations_email
    if not email or not working_day_from(calendar, now, mail.digest_time):
        return 0
    today = calendar.local_date(now)
    dedup_key = f"ops-digest:{email}:{today.isoformat()}"
    with deps.sessions.begin() as session:
        since = digest_window_start(session, calendar, mail, f"ops-digest:{email}:", today)
        quiet = find_quiet_reporters(session, deps.sources, deps.quiet, calendar, now)
        unlisted = reads.receipts_with_warnings(session, since, now)
        if not (quiet or unlisted) or reads.outbox_has(session, dedup_key):
            return 0
        tz = calendar.tz
        context = {
            "template": "operations_digest",
            "case_number": None,
            "urgent": False,
            "written_at": now.isoformat(),
            "digest_date": today.isoformat(),
            "recipient": {"role": "operations", "region_code": None, "region_name": None, "name": None, "email": email},
            "quiet": [
                {"kind": q.kind, "code": q.code, "name": q.name, "since": q.since.astimezone(tz).isoformat() if q.since else None,
                 "working_days": q.working_days}
                for q in quiet
            ],
            "since": since.isoformat(),
            "unknown_parties": [
                {"source": r.source, "name": r.name, "received_at": r.received_at.astimezone(tz).isoformat(), "warnings": r.warnings}
                for r in unlisted
            ],
        }
        values = {
            "dedup_key": dedup_key, "thread_key": "ops-digest", "level": "operations_digest", "template": "operations_digest",
            "recipient_role": "operations", "recipient_region": None, "recipient_email": email, "language": mail.language,
            "urgent": False, "context": context, "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
        }
        return 1 if _insert_outbox_row(session, values) else 0


def addressed_to(contact: Contact, digests_of_address: set[tuple[str, str]]) -> Callable[[Alert], bool]:
    """Whether an alert to the contact's address belongs in the contact's digest: it was routed to this
    bureau, or to none of the bureaus whose digests the address takes (then any of them lists it).

    One mailbox may take two bureaus' digests (a city officer also reading the province's): each
    lists its own bureau's alerts, not whichever digest is written first.
    """
    def ours(alert: Alert) -> bool:
        bureau = (alert.recipient_region, alert.recipient_role)
        return bureau == (contact.region_code, contact.role) or bureau not in digests_of_address
    return ours


def send_bureau_digests(deps: DigestDeps, now: datetime) -> int:
    """Write today's digest for each bureau contact whose delivery is 'digest'; returns how many were new.

    At most one per contact and address per working day (dedup key
    `digest:{region}:{role}:{email}:{date}`), covering everything since that address's
    previous digest (`digest_window_start`). A contact with nothing to report gets no mail;
    its waiting 'digest' alerts stay for the next digest.
    """
    calendar, mail = deps.calendar, deps.mail
    if not working_day_from(calendar, now, mail.digest_time):
        return 0
    today = calendar.local_date(now)
    written = 0
    directory = deps.directory
    with deps.sessions.begin() as session:
        prefixes = {f"digest:{contact.region_code}:{contact.role}:{email}:": (contact, email)
                    for contact in directory.contacts_all() if contact.delivery == "digest" for email in contact.emails}
        windows = {prefix: digest_window_start(session, calendar, mail, prefix, today)
                   for prefix in prefixes if not reads.outbox_has(session, f"{prefix}{today}")}
        if not windows:
            return 0
        snapshot = reads.read_digest_snapshot(session, min(windows.values()), now)
        bureaus_of: dict[str, set[tuple[str, str]]] = {}
        for contact, email in prefixes.values():
            bureaus_of.setdefault(email, set()).add((contact.region_code, contact.role))
        for prefix, since in windows.items():
            contact, email = prefixes[prefix]
            dedup_key = f"{prefix}{today}"
            context = digest_context(directory, calendar, snapshot, contact, email, since, now)
            ours = addressed_to(contact, bureaus_of[email])
            waiting = [alert for alert in reads.waiting_digest_alerts(session, email) if ours(alert)]
            context["covered_alerts"] = len(waiting)
            # They are never mailed on their own: the digest names each (a possible 假短缺 is in no table).
            context["covered"] = covered_items(waiting)
            context["held"] = held_items([held for held in reads.held_alerts_for(session, email) if ours(held.alert)])
            if not digest_has_news(context):
                continue
            values = _outbox_values(mail, dedup_key=dedup_key, thread_key=f"digest:{contact.region_code}:{contact.role}",
                                    template="digest", contact=contact, email=email, context=context, now=now)
            if not _insert_outbox_row(session, values):
                continue  # another replica wrote it first
            # The digest covers these single alerts: they are done once it is written.
            reads.mark_digested(session, [alert.id for alert in waiting], dedup_key)
            written += 1
    if written:
        log.info("digests: %d written for %s", written, today)
    return written


# --- monthly summary ------------------------------------------------------------------------


def first_working_day(calendar: WorkingCalendar, year: int, month: int) -> date:
    day = date(year, month, 1)
    while not calendar.is_working_day(day):
        day += timedelta(days=1)
    return day


def previous_month(day: date) -> tuple[date, date]:
    """First and last day of the month before `day`'s."""
    last = day.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def read_monthly_context(session: Session, directory: Directory, contact: Contact, email: str, first: date, last: date,
                         now: datetime, *, month: reads.MonthSnapshot | None = None) -> MonthlyContext:
    """The contact's monthly summary for [first, last] (`month`: the month's rows, when read once for many contacts)."""
    month = month or reads.read_month_snapshot(session, first, last)
    compliance = compliance_by_distributor(session, directory.region_and_below(contact.region_code), due_from=first, due_to=last, now=now)
    return monthly_context(directory, month, compliance, contact, email, now)


def send_monthly_summaries(deps: DigestDeps, now: datetime) -> int:
    """Write last month's summary for each insurance bureau contact; returns how many were new.

    Due from `mail.monthly_time` on the first working day of the month (and up to
    MONTHLY_CATCH_UP_WORKING_DAYS working days later, so a daemon that was down that day
    catches up); once per region, address and month (dedup key `monthly:{region}:{email}:{YYYY-MM}`).
    """
    calendar, mail, directory = deps.calendar, deps.mail, deps.directory
    local = now.astimezone(calendar.tz)
    today = local.date()
    start = first_working_day(calendar, today.year, today.month)
    if today < start or (today == start and local.time() < mail.monthly_time):
        return 0
    if calendar.working_days_between(start, today) > MONTHLY_CATCH_UP_WORKING_DAYS:
        return 0  # too late for last month's summary (e.g. a fresh install mid-month)
    first, last = previous_month(today)
    written = 0
    with deps.sessions.begin() as session:
        month: reads.MonthSnapshot | None = None
        for contact in directory.contacts_all():
            if contact.role != "insurance":
                continue
            for email in contact.emails:
                dedup_key = f"monthly:{contact.region_code}:{email}:{first:%Y-%m}"
                if reads.outbox_has(session, dedup_key):
                    continue
                month = month or reads.read_month_snapshot(session, first, last)
                context = read_monthly_context(session, directory, contact, email, first, last, now, month=month)
                values = _outbox_values(mail, dedup_key=dedup_key, thread_key=f"monthly:{contact.region_code}", template="monthly_summary", contact=contact, email=email, context=context, now=now)
                if _insert_outbox_row(session, values):
                    written += 1
    if written:
        log.info("monthly summaries: %d written for %s", written, f"{first:%Y-%m}")
    return written
