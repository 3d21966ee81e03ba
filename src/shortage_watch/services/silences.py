"""Silences: create, expire and release them; hold the alerts they match.

A silence holds mail, never the ledger: obligations still go overdue, levels still fire and
compliance still counts. Held alerts keep their row (status 'held', `silence_id`), are
audited with who set the silence and why, and are listed in the recipient's digest. When
the silence ends, each held item still relevant is released once at its current level.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.domain.inhibition import chases
from shortage_watch.domain.policy import Ladder
from shortage_watch.domain.states import OBLIGATION_IN_FLIGHT, CaseState
from shortage_watch.domain.routing import DirectoryView
from shortage_watch.domain.silences import SEND, AlertFacts, HeldItem, SilenceRule, holding_silence, release_plan
from shortage_watch.services.alerts import Hold, audit, case_context, obligation_context
from shortage_watch.store import silences as store
from shortage_watch.store.tables import Alert, Obligation, ShortageCase, Silence

log = logging.getLogger(__name__)

WAITING = ("pending", "digest")  # outbox states a silence may still hold
HISTORY_KEYS = ("prior_steps", "sent_with", "catch_up", "entered_at")  # what a message says about earlier steps


def rule_of(row: Silence) -> SilenceRule:
    return SilenceRule(row.id, row.region_code, row.distributor_code, row.product_code, row.template, row.starts_at, row.ends_at)


def active_rules(session: Session, now: datetime) -> list[SilenceRule]:
    """The silences in force at `now` (a handful of rows)."""
    return [rule_of(r) for r in store.active_silences(session, now)]


def alert_facts(directory: DirectoryView, template: str, context: dict[str, Any]) -> AlertFacts:
    """What a silence can match in an alert: its template, region (with parents), distributor, product."""
    region = (context.get("region") or {}).get("code") or None
    chain = tuple(r.code for r in directory.ancestors(region)) if region else ()
    if region and region not in chain:
        chain = (region, *chain)
    return AlertFacts(
        template=template,
        region_chain=chain,
        distributor_code=(context.get("distributor") or {}).get("code"),
        product_code=(context.get("product") or {}).get("code"),
    )


def hold_for(session: Session, directory: DirectoryView, template: str, context: dict[str, Any], now: datetime, *, rules: list[SilenceRule] | None = None) -> Hold | None:
    """The Hold for a new alert when an active silence matches it, else None; `rules`: `active_rules` at `now`,
    when the caller read them once for many alerts."""
    if rules is None:
        rules = active_rules(session, now)
    if not rules:
        return None
    silence = holding_silence(rules, alert_facts(directory, template, context), now)
    if silence is None:
        return None
    row = session.get(Silence, silence.id)
    assert row is not None
    return Hold("held", row.id, row.created_by, _held_detail(row))


def _held_detail(row: Silence) -> dict[str, Any]:
    return {"silence": row.id, "by": row.created_by, "reason": row.reason, "until": row.ends_at.isoformat(), "matches": rule_of(row).describe()}


def hold_waiting_alerts(session: Session, directory: DirectoryView, silence: Silence, now: datetime) -> int:
    """Hold the pending and digest-bound alerts the new `silence` matches; returns how many."""
    rule = rule_of(silence)
    held = 0
    for alert in store.alerts_in_states(session, WAITING):
        if not rule.matches(alert_facts(directory, alert.template, alert.context)):
            continue
        # Claim, then check: only a row still waiting is held; one a sender claimed meanwhile goes out.
        if store.hold_alert(session, alert.id, silence.id, waiting=WAITING):
            audit(session, at=now, actor=silence.created_by, entity="alert", entity_id=alert.id, action="held", detail=_held_detail(silence))
            held += 1
    return held


def add_silence(
    sessions: sessionmaker[Session], directory: DirectoryView, *, region: str | None, distributor: str | None, product: str | None, template: str | None,
    until: datetime, reason: str, by: str, now: datetime,
) -> tuple[int, int, str]:
    """Store a silence (already validated), audit it, and hold the waiting alerts it matches.

    Returns its id, how many alerts it held at once, and its matchers as text.
    """
    with sessions.begin() as session:
        row = Silence(
            region_code=region, distributor_code=distributor, product_code=product, template=template,
            starts_at=now, ends_at=until, reason=reason, created_by=by, created_at=now,
        )
        session.add(row)
        session.flush()
        described = rule_of(row).describe()
        audit(session, at=now, actor=by, entity="silence", entity_id=row.id, action="created",
              detail={"matches": described, "until": until.isoformat(), "reason": reason})
        held = hold_waiting_alerts(session, directory, row, now)
        return row.id, held, described


def end_silence(sessions: sessionmaker[Session], silence_id: int, *, by: str, now: datetime) -> str | None:
    """End a silence at `now` (its held mail is released by `release_ended_silences`); why not, or None."""
    with sessions.begin() as session:
        row = session.get(Silence, silence_id)
        if row is None:
            return f"没有静默 #{silence_id} / no silence #{silence_id}"
        if row.released_at is not None:
            return f"静默 #{silence_id} 已结束 / silence #{silence_id} has already ended"
        row.ends_at = min(row.ends_at, now)
        row.expired_by = by
        audit(session, at=now, actor=by, entity="silence", entity_id=row.id, action="expired", detail=None)
    return None


@dataclass
class ReleaseResult:
    silences: int = 0
    sent: int = 0  # released to the outbox, at their current level
    superseded: int = 0
    stale: int = 0
    held_again: int = 0  # another silence still holds them


def release_ended_silences(
    sessions: sessionmaker[Session], directory: DirectoryView, calendar: WorkingCalendar, now: datetime
) -> ReleaseResult:
    """Release the held alerts of every silence that has ended by `now`; one transaction per silence."""
    result = ReleaseResult()
    with sessions() as session:
        ended = store.ended_silence_ids(session, now)
    for silence_id in ended:
        with sessions.begin() as session:
            # Claim, then check: two replicas may see the same ended silence; the one whose
            # UPDATE changes the row releases it, the other moves on.
            if not store.claim_release(session, silence_id, now):
                continue
            _release(session, directory, calendar, silence_id, now, result)
            result.silences += 1
    # A transaction that read a silence as still active (a notice stored by another replica or the
    # portal, on PostgreSQL) may commit the alerts it held just after that silence was released: the
    # release above never saw them. They are released here, at the next sweep, as the release would
    # have; the row locks of `_release` let one replica do it.
    with sessions() as session:
        late = store.released_with_held_alerts(session)
    for silence_id in late:
        with sessions.begin() as session:
            _release(session, directory, calendar, silence_id, now, result)
    if result.silences or late:
        log.info(
            "silences: %d ended; %d held alerts released, %d superseded, %d stale, %d held by another silence",
            result.silences, result.sent, result.superseded, result.stale, result.held_again,
        )
    return result


def _release(session: Session, directory: DirectoryView, calendar: WorkingCalendar, silence_id: int, now: datetime,
             result: ReleaseResult) -> None:
    alerts = store.held_alerts_for_update(session, silence_id)
    others = [r for r in active_rules(session, now) if r.id != silence_id]
    free: list[Alert] = []
    for alert in alerts:
        other = holding_silence(others, alert_facts(directory, alert.template, alert.context), now)
        if other is None:
            free.append(alert)
            continue
        row = session.get(Silence, other.id)
        assert row is not None
        alert.silence_id = other.id
        audit(session, at=now, actor=row.created_by, entity="alert", entity_id=alert.id, action="held", detail=_held_detail(row))
        result.held_again += 1
    matters = _matters(session, free)
    ladders = {thread: _stored_ladder(matter) for thread, matter in matters.items()}  # each read once
    levels = {thread: frozenset(level.name for level in ladder.levels) for thread, ladder in ladders.items() if ladder is not None}

    def on_ladder(thread_key: str, level: str) -> bool:
        return level.split("#", 1)[0] in levels.get(thread_key, ())

    items = [
        HeldItem(
            a.id, a.thread_key, a.recipient_email or a.dedup_key,
            matter_open=_is_open(matters.get(a.thread_key)),
            chases=_chases(matters.get(a.thread_key), ladders.get(a.thread_key), a.level),
            on_ladder=on_ladder(a.thread_key, a.level),
        )
        for a in free
    ]
    # The later ladder levels of the same matters that reached (or will reach) their recipient outside this release.
    later: dict[tuple[str, str], int] = {}
    for thread, email, alert_id, level in store.reaching_alerts_of_matters(session, free):
        if on_ladder(thread, level):
            later[(thread, email)] = max(later.get((thread, email), 0), alert_id)
    plan = release_plan(items, later)
    for alert in free:
        outcome = plan[alert.id]
        if outcome == SEND:
            alert.context = {**alert.context, **_fresh_context(session, directory, calendar, matters.get(alert.thread_key), now)}
            alert.status = _released_status(directory, alert)
            alert.next_attempt_at = now
            result.sent += 1
        else:
            alert.status = outcome
            alert.last_error = f"silence #{silence_id} ended: {outcome}"
            if outcome == "stale":
                result.stale += 1
            else:
                result.superseded += 1
        audit(session, at=now, actor="silence", entity="alert", entity_id=alert.id, action=f"released:{outcome}", detail={"silence": silence_id})


def _matters(session: Session, alerts: Iterable[Alert]) -> dict[str, Obligation | ShortageCase]:
    found: dict[str, Obligation | ShortageCase] = {}
    for alert in alerts:
        if alert.thread_key in found:
            continue
        matter: Obligation | ShortageCase | None = None
        if alert.obligation_id is not None:
            matter = session.get(Obligation, alert.obligation_id)
        elif alert.case_id is not None:
            matter = session.get(ShortageCase, alert.case_id)
        if matter is not None:
            found[alert.thread_key] = matter
    return found


def _is_open(matter: Obligation | ShortageCase | None) -> bool:
    if isinstance(matter, Obligation):
        return matter.state in OBLIGATION_IN_FLIGHT
    if isinstance(matter, ShortageCase):
        return matter.state != CaseState.RESOLVED
    return True


def _stored_ladder(matter: Obligation | ShortageCase | None) -> Ladder | None:
    """The ladder stored with the matter, if any (its one-off events are none of its levels)."""
    policy = matter.policy if isinstance(matter, Obligation) else (matter.policy or {}).get("ladder") if isinstance(matter, ShortageCase) else None
    return Ladder.from_json(policy) if policy else None


def _chases(matter: Obligation | ShortageCase | None, ladder: Ladder | None, level_name: str) -> bool:
    """Whether the held level chases the matter: a level after opening of an obligation's `ladder`, any case level."""
    if isinstance(matter, Obligation):
        return chases(ladder, level_name)
    if isinstance(matter, ShortageCase):
        return True  # every level of a case is about the shortage still being there
    return False


def _fresh_context(session: Session, directory: DirectoryView, calendar: WorkingCalendar, matter: Obligation | ShortageCase | None, now: datetime) -> dict[str, Any]:
    """The matter's facts as of `now` (working days overdue, hospitals short), so the released mail is
    current; what the held message says about earlier steps stays as written."""
    fresh: dict[str, Any] = {}
    if isinstance(matter, Obligation):
        fresh = obligation_context(session, obligation=matter, directory=directory, calendar=calendar, now=now)
    elif isinstance(matter, ShortageCase):
        fresh = case_context(session, matter, directory, calendar=calendar, now=now)
    return {key: value for key, value in fresh.items() if key not in HISTORY_KEYS}


def _released_status(directory: DirectoryView, alert: Alert) -> str:
    """pending, or digest when the recipient's bureau takes a daily digest and the alert is not urgent."""
    contact = directory.contact(alert.recipient_region, alert.recipient_role) if alert.recipient_region else None
    if contact is not None and contact.delivery == "digest" and alert.recipient_email in contact.emails and not alert.urgent:
        return "digest"
    return "pending"
