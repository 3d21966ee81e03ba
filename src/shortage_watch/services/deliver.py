"""The outbox sender: claim due alerts in batches under a lease, send them, record each outcome.

Delivery is at least once. A batch is claimed in one transaction (rows move to
'sending' with `lease_owner`/`lease_until`) and sent over one transport connection.
Each message the server acknowledged is recorded as sent (one short transaction,
committed while the next message goes out), and the lease on the rest of the batch is
renewed whenever a third of it has passed, so a slow mail server never lets a lease run
out under rows still waiting. A process killed mid-batch leaves 'sending' rows whose
lease expires; the next run claims and sends them again, so at most the message whose
record was still in flight when it died arrives twice, and the stable Message-ID lets
mail clients fold that duplicate.

Leases and back-off use the real clock (`clock.utc_now()`); which mail is due uses the
ledger `now` passed in.
"""

from __future__ import annotations

import logging
import random
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.calendar import WorkingCalendar

from shortage_watch.clock import utc_now
from shortage_watch.domain.working_hours import bureau_mail_waits, next_working_hours_start
from shortage_watch.mail.message import AddressError, Attachment, Envelope, build_message
from shortage_watch.mail.render import Renderer, RenderError
from shortage_watch.mail.transports import Batch, Outcome, Transport
from shortage_watch.services.grouping import complete_groups, messages_of, outcomes_for, prepare_message
from shortage_watch.settings import MailSettings
from shortage_watch.store import claims, outbox

log = logging.getLogger(__name__)

BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=6)


@dataclass
class DeliverResult:
    sent: int = 0
    retried: int = 0  # transient failures, tried again later
    dead: int = 0
    deferred: int = 0  # waiting for working hours
    batches: int = 0
    lost_claims: int = 0  # outcomes another worker had already taken over (lease expired)
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ClaimedAlert:
    """What the sender needs of one claimed row (plain data, no session)."""

    id: int
    dedup_key: str
    thread_key: str
    template: str
    recipient_role: str
    recipient_email: str | None
    language: str
    urgent: bool
    context: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class AlertOutcome:
    alert_id: int
    status: str  # sent | transient | permanent | deferred
    error: str | None = None
    message_id: str | None = None
    defer_until: datetime | None = None


def backoff_delay(attempts: int, rng: random.Random | None = None) -> timedelta:
    """Exponential back-off with 'equal jitter': half fixed, half random, capped at BACKOFF_MAX."""
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * (2 ** max(0, attempts - 1)))
    fraction = (rng or random).random()
    return ceiling / 2 + (ceiling / 2) * fraction


@dataclass(frozen=True)
class DeliverDeps:
    """What the sender uses, built by `App.deliver_deps()`: sessions (and the engine, for the short
    sent-records), mail settings, the calendar for working hours, renderer, transport, this replica's
    name and lease, the installation id in every Message-ID, and the measured send pace."""

    sessions: sessionmaker[Session]
    engine: Engine
    mail: MailSettings
    timezone: str
    calendar: WorkingCalendar
    renderer: Renderer
    transport: Transport
    owner: str  # this replica: the claims' lease owner
    lease: timedelta
    installation_id: str
    pace: "SendPace"


def claim_due_alerts(session: Session, now: datetime, owner: str, limit: int, lease: timedelta) -> list[ClaimedAlert]:
    """Claim up to `limit` due alerts for `owner` (commit is the caller's); oldest first."""
    real_now = utc_now()
    ids = claims.take_batch(session, claims.ALERTS, owner, real_now + lease, real_now,
                            where=[outbox.due_alerts(now, real_now)], order_by=outbox.DUE_ORDER, limit=limit)
    by_id = outbox.alerts_by_id(session, ids)
    rows = [by_id[i] for i in ids]
    return [
        ClaimedAlert(
            id=r.id,
            dedup_key=r.dedup_key,
            thread_key=r.thread_key,
            template=r.template,
            recipient_role=r.recipient_role,
            recipient_email=r.recipient_email,
            language=r.language,
            urgent=r.urgent,
            context=dict(r.context),
            attempts=r.attempts,
        )
        for r in rows
    ]


def build_envelope(deps: "DeliverDeps", alert: ClaimedAlert) -> Envelope:
    """Render and build the message of one alert; RenderError/AddressError are permanent."""
    if not alert.recipient_email:
        raise AddressError("no recipient address")
    rendered = deps.renderer.render(alert.template, alert.context, alert.language)
    attachments: tuple[Attachment, ...] = ()
    if alert.template == "monthly_summary":
        from shortage_watch.mail.workbook import monthly_attachment

        attachments = (monthly_attachment(alert.context),)
    mail = deps.mail
    return build_message(
        rendered,
        sender=mail.from_,
        to=alert.recipient_email,
        dedup_key=alert.dedup_key,
        installation=deps.installation_id,
        thread_key=alert.thread_key,
        sent_at=utc_now(),
        reply_to=mail.reply_to,
        case_number=alert.context.get("case_number"),
        tz=deps.timezone,
        attachments=attachments,
    )


def working_hours_wait(deps: "DeliverDeps", alert: ClaimedAlert, now: datetime) -> datetime | None:
    """When the alert's mail may go out, if it must wait for a bureau's working hours; None: now."""
    if not bureau_mail_waits(alert.recipient_role, alert.urgent):
        return None
    return next_working_hours_start(deps.calendar, now, deps.mail.working_hours_start, deps.mail.working_hours_end)


def prepare(deps: "DeliverDeps", alert: ClaimedAlert, now: datetime) -> Envelope | AlertOutcome:
    """The alert's message, or its outcome when it must not be sent now (deferred, permanent)."""
    start = working_hours_wait(deps, alert, now)
    if start is not None:
        return AlertOutcome(alert.id, "deferred", defer_until=start)
    try:
        return build_envelope(deps, alert)
    except (RenderError, AddressError) as exc:
        return AlertOutcome(alert.id, "permanent", error=str(exc))
    except Exception as exc:  # a bad row must not stop the batch (nor the daemon)
        log.exception("alert %s: cannot build its message", alert.id)
        return AlertOutcome(alert.id, "permanent", error=f"cannot build message: {type(exc).__name__}: {exc}")


class SendPace:
    """How long this process has been taking per message (a moving average), to size claims."""

    def __init__(self) -> None:
        self.seconds_per_message: float | None = None

    def observe(self, seconds: float) -> None:
        if self.seconds_per_message is None:
            self.seconds_per_message = seconds
        else:
            self.seconds_per_message = 0.7 * self.seconds_per_message + 0.3 * seconds

    def batch_limit(self, configured: int, lease: timedelta) -> int:
        """At most `configured`, and no more than half the lease can send at the measured pace.

        The lease is renewed after every message anyway; this keeps one replica from
        holding rows it cannot reach soon while the others stand idle.
        """
        if not self.seconds_per_message:
            return configured
        return max(1, min(configured, int(lease.total_seconds() / 2 / self.seconds_per_message)))


def _values_for(outcome: AlertOutcome, tries: int, max_attempts: int, real_now: datetime) -> dict[str, Any]:
    """The row's new values after a deferred, transient or permanent outcome."""
    values: dict[str, Any] = {"status": "pending", "attempts": tries, "next_attempt_at": None, "last_error": None}
    if outcome.status == "deferred":
        values.update(next_attempt_at=outcome.defer_until, last_error="waiting for working hours")
    elif outcome.status == "transient" and tries < max_attempts:
        values.update(next_attempt_at=real_now + backoff_delay(tries), last_error=outcome.error)
    else:
        error = outcome.error if outcome.status == "permanent" else f"gave up after {tries} attempts: {outcome.error}"
        values.update(status="dead", last_error=error)
    return values


def record_outcomes(session: Session, outcomes: list[AlertOutcome], owner: str, max_attempts: int, attempts: dict[int, int]) -> DeliverResult:
    """Write each outcome to its row (commit is the caller's).

    A message the server acknowledged is recorded as sent whoever holds its claim now
    (see `record_sent`); any other outcome only while this owner still holds the claim.
    """
    result = DeliverResult()
    real_now = utc_now()
    # Lock the rows we still hold; a row whose lease expired and that another sender
    # re-claimed is left alone, and its outcome stands.
    held = claims.lock_held(session, claims.ALERTS, [o.alert_id for o in outcomes if o.status != "sent"], owner)
    rows: list[dict[str, Any]] = []
    for outcome in outcomes:
        tries = attempts[outcome.alert_id] + (0 if outcome.status == "deferred" else 1)
        if outcome.status == "sent":
            if record_sent(session, outcome.alert_id, outcome.message_id, tries):
                result.sent += 1
            else:
                result.lost_claims += 1
            continue
        if outcome.alert_id not in held:
            result.lost_claims += 1
            log.warning("alert %s: claim lost before recording %s (lease expired?)", outcome.alert_id, outcome.status)
            continue
        values = _values_for(outcome, tries, max_attempts, real_now)
        rows.append({"id": outcome.alert_id, **values})
        if values["status"] == "dead":
            result.dead += 1
            result.errors.append(f"alert {outcome.alert_id}: {values['last_error']}")
            outbox.audit_dead(session, outcome.alert_id, owner, values["last_error"], real_now)
        elif outcome.status == "deferred":
            result.deferred += 1
        else:
            result.retried += 1
    # One executemany for the batch instead of one round trip per row.
    outbox.write_outcomes(session, owner, rows)
    return result


def record_sent(session: Session | Connection, alert_id: int, message_id: str | None, tries: int) -> bool:
    """Mark one alert sent, whoever holds its claim now; False when it already was (commit is the caller's).

    The server acknowledged the message, so it is recorded even if this owner's lease
    ran out meanwhile: a sender that re-claimed the row must find it sent and not send
    it again.
    """
    if not outbox.mark_sent(session, alert_id, message_id, tries, utc_now()):
        log.warning("alert %s: another sender had already recorded it sent (its claim was lost)", alert_id)
        return False
    return True


def renew_claims(session: Session, ids: list[int], owner: str, until: datetime) -> set[int]:
    """Extend this owner's lease on `ids` to `until`; returns the ids it still holds (commit is the caller's)."""
    return claims.renew(session, claims.ALERTS, ids, owner, until)


def send_batch(deps: "DeliverDeps", batch: Batch, claimed: list[ClaimedAlert], now: datetime, builder: Executor, recorder: Executor, pace: SendPace) -> DeliverResult:
    """Send (or defer) the claimed alerts, one message per group (services/grouping.py); each
    acknowledged message is recorded sent at once, for every alert it lists.

    The record of message i is committed (on `recorder`) while message i+1 goes out,
    and waited for before the record of i+1 starts. A slow server must never let the
    lease run out under rows still waiting here (another replica would re-claim and
    resend them): whenever a third of the lease has gone by, one transaction records the
    other outcomes so far, renews the lease on every row not yet recorded, and learns
    which of them this sender still holds. Message i+1 is rendered and built (on `builder`) while
    message i waits for the server's reply.
    """
    lease, owner, mail = deps.lease, deps.owner, deps.mail
    attempts = {a.id: a.attempts for a in claimed}
    messages = messages_of(deps, claimed)
    # One message ahead only: a builder racing through the whole batch would hold the GIL
    # each time this thread comes back from the server or the database.
    upcoming = builder.submit(prepare_message, deps, messages[0], now)
    total = DeliverResult()
    held = {a.id for a in claimed}
    renew_every = lease / 3  # renewed well before it runs out, even if this process stalls a while
    renew_at = utc_now() + renew_every  # the claim was taken just before this
    unrecorded: list[AlertOutcome] = []
    recording: Future[tuple[int, int]] | None = None
    recording_ids: list[int] = []

    def settle(record: Future[tuple[int, int]]) -> None:
        sent, lost = record.result()
        total.sent += sent
        total.lost_claims += lost

    def record_and_renew(open_ids: list[int]) -> set[int]:
        with deps.sessions.begin() as session:
            _add(total, record_outcomes(session, unrecorded, owner, mail.max_attempts, attempts))
            return renew_claims(session, open_ids, owner, utc_now() + lease)

    for position, members in enumerate(messages):
        future = upcoming
        if position + 1 < len(messages):
            upcoming = builder.submit(prepare_message, deps, messages[position + 1], now)
        if utc_now() >= renew_at:
            # The rows whose sent-record is still in flight are renewed too: that record may
            # wait on the database lock, and its rows must not be re-claimed meanwhile.
            in_flight = recording_ids if recording is not None and not recording.done() else []
            held = record_and_renew(in_flight + [o.alert_id for o in unrecorded] + [a.id for m in messages[position:] for a in m])
            unrecorded, renew_at = [], utc_now() + renew_every
        item = future.result()
        still = [a for a in members if a.id in held]
        if len(still) < len(members):
            # Our lease on them ran out and another sender took them over: theirs to send now.
            total.lost_claims += len(members) - len(still)
            log.warning("alerts %s: claim lost before sending (lease expired?); left to their new owner", [a.id for a in members if a.id not in held])
            if not still:
                continue
            members, item = still, prepare_message(deps, still, now)
        if isinstance(item, AlertOutcome):
            unrecorded.extend(outcomes_for(members, item))  # deferred or permanent: nothing went out, recorded at the next renewal
            continue
        started = utc_now()
        result: Outcome = batch.send(item)
        pace.observe((utc_now() - started).total_seconds())
        if result.sent:
            # Recorded while the next message goes out; at most one record is in flight.
            if recording is not None:
                settle(recording)
            recording = recorder.submit(_record_message_sent, deps.engine, [(a.id, a.attempts + 1) for a in members], item.message_id)
            recording_ids = [a.id for a in members]
        else:
            unrecorded.extend(outcomes_for(members, AlertOutcome(members[0].id, result.status, error=result.error)))
    if recording is not None:
        settle(recording)
    if unrecorded:
        record_and_renew([])
    return total


def _record_message_sent(engine: Engine, items: list[tuple[int, int]], message_id: str | None) -> tuple[int, int]:
    """Record every alert a message listed as sent, in one transaction: (recorded, already sent)."""
    # A bare connection, not a Session: this runs once per message, and cheaply.
    with engine.begin() as connection:
        # In id order, the order every listed write of the outbox locks its rows (store/claims.py):
        # this runs beside `send_batch`'s renewal of the same rows, in another transaction.
        recorded = sum(record_sent(connection, alert_id, message_id, tries) for alert_id, tries in sorted(items))
    return recorded, len(items) - recorded


def deliver_due(deps: "DeliverDeps", now: datetime, max_batches: int | None = None, *, wait_for_groups: bool = True) -> DeliverResult:
    """Send every pending alert due at ledger `now`, batch by batch, until none is left.

    Each batch: one claim transaction (sized to what half the lease covers at the pace
    this process measured, then completed with the due mates of every group it touched,
    see services/grouping.py) and one transport connection; see `send_batch` for how
    outcomes are recorded and the lease renewed. `wait_for_groups=False` sends groups still
    inside `mail.group_wait` now (`once`: one cycle is one group). Returns the counts.
    """
    mail, lease, owner, pace = deps.mail, deps.lease, deps.owner, deps.pace
    total = DeliverResult()
    with (
        deps.transport.batch() as batch,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail-build") as builder,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail-record") as recorder,
    ):
        while max_batches is None or total.batches < max_batches:
            limit = pace.batch_limit(mail.batch_size, lease)
            with deps.sessions.begin() as session:
                first = claim_due_alerts(session, now, owner, limit, lease)
                claimed = complete_groups(session, deps, first, now, owner, lease, wait=wait_for_groups)
            if not first:
                break
            total.batches += 1
            if claimed:
                _add(total, send_batch(deps, batch, claimed, now, builder, recorder, pace))
            if getattr(batch, "connect_error", None) is not None:
                break  # the server is unreachable: leave the other rows for the next run
            if len(first) < limit:
                break
    if total.batches:
        log.info(
            "deliver: %d sent, %d retried later, %d dead, %d deferred to working hours (%d batches)",
            total.sent, total.retried, total.dead, total.deferred, total.batches,
        )
    return total


def _add(total: DeliverResult, part: DeliverResult) -> None:
    total.sent += part.sent
    total.retried += part.retried
    total.dead += part.dead
    total.deferred += part.deferred
    total.lost_claims += part.lost_claims
    total.errors.extend(part.errors)
