"""The ledger: accepted records open, fulfil and move obligations and join shortage cases.

`LedgerListener.record_stored` runs inside the ingest transaction that stored the row,
so a record and the obligations, cases, audit events and on-open alerts it causes
commit together or not at all. Levels after opening are the sweep's (services/escalate.py):
each matter's `next_action_at` says when it next needs it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, Callable

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from shortage_watch.domain.catch_up import Plan, Skip, plan_deliveries, steps_sent_before
from shortage_watch.domain.cases import ReportView, all_closed, hospital_parts, is_regional
from shortage_watch.domain.deadline import report_deadline
from shortage_watch.domain.obligations import (
    OPEN_STATES,
    advance,
    explanation_subject_key,
    fulfilment,
    next_action_after_revision,
    overdue_check_at,
    report_subject_key,
    state_at,
)
from shortage_watch.domain.policy import EventRule, Firing, Ladder, is_priority, schedule
from shortage_watch.domain.inhibition import inhibited_by_province
from shortage_watch.domain.routing import NoDirectory, Route, route, same_bureau_as_city
from shortage_watch.services.alerts import (
    Hold,
    alert_values,
    audit,
    audit_values,
    case_context,
    insert_audits,
    obligation_context,
    obligation_context_of,
    operator_closures,
    write_alert,
    write_alerts,
)
from shortage_watch.services.inhibition import drop_chasers_of_closed, escalated_case, province_hold
from shortage_watch.services.silences import active_rules, hold_for
from shortage_watch.store.bulk import inserter
from shortage_watch.store.tables import Alert, DistributorReport, Obligation, ShortageCase, ShortageReport, StoppageNotice

log = logging.getLogger(__name__)

ACTOR = "ledger"


def directory_of(app: Any) -> Any:
    """The App's directory; an empty one (everything routes to operations) when none is usable."""
    try:
        directory = app.directory
    except Exception:  # a broken directory file must not stop the ledger; alerts fall back to operations
        log.exception("ledger: directory unavailable; routing to the operations address")
        return NoDirectory()
    return directory if directory is not None else NoDirectory()


class LedgerListener:
    """Called by ingest for each new or revised current row, inside the storing transaction."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def records_stored(self, session: Session, kind: str, rows: list[Any], now: datetime) -> None:
        """New rows of one kind, in file order: notices in sets (`notices_stored`), the other kinds row by row."""
        if kind == "stoppage_notice":
            notices_stored(session, self.app, rows, now)
            return
        for row in rows:
            self.record_stored(session, kind, row, None, now)

    def record_stored(self, session: Session, kind: str, row: Any, previous: dict | None, now: datetime) -> None:
        if kind == "stoppage_notice":
            notice_stored(session, self.app, row, previous, now)
        elif kind == "distributor_report":
            distributor_report_stored(session, self.app, row, previous, now)
        elif kind == "shortage_report":
            shortage_report_stored(session, self.app, row, previous, now)
        else:
            log.warning("ledger: ignoring unknown record kind %r", kind)


# ---------------------------------------------------------------- obligations


def _find_obligation(session: Session, kind: str, subject_key: str) -> Obligation | None:
    return session.scalars(select(Obligation).where(Obligation.kind == kind, Obligation.subject_key == subject_key)).first()


def _region_of_distributor(app: Any, code: str) -> str | None:
    party = directory_of(app).distributor(code)
    return getattr(party, "region_code", None)


def open_obligation(
    session: Session,
    app: Any,
    *,
    kind: str,
    subject_key: str,
    party_code: str,
    region_code: str | None,
    received_on: date,
    priority: bool,
    now: datetime,
    notice_pk: int | None = None,
    case_id: int | None = None,
    product_code: str | None = None,
    fire_open: bool = True,
) -> Obligation:
    """Open one obligation (see `open_obligations`) and return it."""
    opening = dict(kind=kind, subject_key=subject_key, party_code=party_code, region_code=region_code, notice_pk=notice_pk,
                   case_id=case_id, product_code=product_code, priority=priority, received_on=received_on)
    [obligation_id] = open_obligations(session, app, [opening], now, fire_open=fire_open)
    obligation = session.get(Obligation, obligation_id)
    assert obligation is not None
    return obligation


def open_obligations(
    session: Session, app: Any, openings: list[dict[str, Any]], now: datetime, *, notices: dict[int, Any] | None = None, fire_open: bool = True
) -> list[int]:
    """Open obligations, each due N working days after its `received_on`, with its ladder stored, in bulk;
    their ids in the order given.

    `openings`: kind, subject_key, party_code, region_code, notice_pk, case_id, product_code, priority,
    received_on. Each is audited `opened` and, unless `fire_open` is False (the caller fires them itself),
    mails the levels due at opening: those at opening and, for a matter that reaches the ledger after some
    of its moments, the one level each recipient is owed now (the rest are audited as skipped); the sweep
    takes it from there via next_action_at. `notices`: the notice rows by id when the caller has them.
    """
    if not openings:
        return []
    calendar, directory = app.calendar, directory_of(app)
    settings = app.settings.calendar
    # A set of records shares few receipt dates, priorities and recipients: each is worked out once.
    deadlines: dict[date, Any] = {}
    steps: dict[tuple[str, bool, date], Any] = {}
    snapshots: dict[Ladder, dict[str, Any]] = {}
    routes = remembered_routes(app, directory)
    rows = []
    for opening in openings:
        received_on = opening["received_on"]
        if received_on not in deadlines:
            deadlines[received_on] = report_deadline(calendar, received_on, settings.working_days, settings.cutoff)
        deadline = deadlines[received_on]
        ladder = app.policy.ladder_for(opening["kind"], opening["priority"])
        if ladder not in snapshots:
            # One snapshot object per ladder: the bulk insert serialises it once for the whole set.
            snapshots[ladder] = ladder.as_json()
        memo = (opening["kind"], opening["priority"], received_on)
        if memo not in steps:
            steps[memo] = advance(calendar, ladder, due_on=deadline.due, due_at=deadline.due_at, opened_at=now, step=0, now=now)
        step = steps[memo]
        rows.append(dict(
            opening, due_on=deadline.due, due_at=deadline.due_at, calendar_status=deadline.calendar,
            state=state_at("open", deadline.due_at, now), level=step.next_step if fire_open else 0, policy=snapshots[ladder],
            next_action_at=step.next_action_at if fire_open else None, opened_at=now, updated_at=now,
        ))
    returned = inserter(session.connection(), Obligation.__table__, rows[0]).insert_returning(rows, ("id", "subject_key"))
    id_of = {(subject_key): obligation_id for obligation_id, subject_key in returned}
    ids = [id_of[row["subject_key"]] for row in rows]
    events = []
    planned: list[tuple[int, LadderAlerts]] = []
    for obligation_id, values in zip(ids, rows):
        events.append(audit_values(
            at=now, actor=ACTOR, entity="obligation", entity_id=obligation_id, action="opened",
            detail={"kind": values["kind"], "subject": values["subject_key"], "due_at": values["due_at"].isoformat(),
                    "calendar": values["calendar_status"]},
        ))
        step = steps[(values["kind"], values["priority"], values["received_on"])]
        if not fire_open or not (step.firings or step.skipped):
            continue
        obligation = SimpleNamespace(id=obligation_id, late_working_days=None, report_pk=None, **values)
        notice = (notices or {}).get(values["notice_pk"])
        if notice is not None and values["case_id"] is None:
            context = obligation_context_of(obligation, notice=notice, report=None, case=None, case_info=None, directory=directory,
                                            calendar=calendar, now=now)
        else:
            context = obligation_context(session, obligation=obligation, directory=directory, calendar=calendar, now=now)
        planned.append((obligation_id, ladder_alerts(
            app, directory, subject="O", subject_id=obligation_id, firings=step.firings, stale=step.skipped,
            region_code=values["region_code"], distributor_code=values["party_code"], context=context,
            prior={},  # a matter opened just now has had nothing mailed
            now=now, ladder=app.policy.ladder_for(values["kind"], values["priority"]), routes=routes,
            entered_after_due=now > values["due_at"],
        )))
    holds = AlertHolds(session, directory, now)
    for obligation_id, values in zip(ids, rows):
        holds.matter(obligation_id, values["case_id"])
    written = write_planned_alerts(session, holds, [alert for _, alerts in planned for alert in alerts.alerts])
    for obligation_id, alerts in planned:
        events.extend(alerts.skips)
        if alerts.plan.skips:
            new = sum(1 for alert in alerts.alerts if alert["dedup_key"] in written)
            events.append(audit_values(at=now, actor=ACTOR, entity="obligation", entity_id=obligation_id, action="levels",
                                       detail={"fired": alerts.plan.mailed_names(), "skipped": alerts.plan.skipped_names(), "alerts": new}))
    insert_audits(session, events)
    return ids


def _opening_firings(app: Any, obligation: Obligation, ladder: Ladder) -> list[Firing]:
    firings = []
    for firing in schedule(app.calendar, ladder, obligation.due_on, obligation.due_at, obligation.opened_at):
        if firing.level.offset is not None:
            break
        firings.append(firing)
    return firings


def write_obligation_alerts(
    session: Session,
    app: Any,
    obligation: Obligation,
    firings: list[Firing] | tuple[Firing, ...],
    now: datetime,
    *,
    stale: tuple[Firing, ...] = (),
    skip_recipients: frozenset[str] = frozenset(),
) -> tuple[int, Plan]:
    """The alerts of the obligation's firings due now (see `write_ladder_alerts`); how many were new, and the plan."""
    if not firings and not stale:
        return 0, Plan((), ())
    context = obligation_context(session, obligation=obligation, directory=directory_of(app), calendar=app.calendar, now=now)
    return write_ladder_alerts(
        session, app, subject="O", subject_id=obligation.id, firings=firings, stale=stale, region_code=obligation.region_code,
        distributor_code=obligation.party_code, context=context, now=now, ladder=Ladder.from_json(obligation.policy), skip_recipients=skip_recipients,
        entered_after_due=obligation.opened_at > obligation.due_at,
    )


class AlertHolds:
    """Why new alerts are not to be sent (`hold_of`), for many alerts at once: the active silences are
    read once, and each matter's escalated case once."""

    def __init__(self, session: Session, directory: Any, now: datetime) -> None:
        self.session, self.directory, self.now = session, directory, now
        self.rules = active_rules(session, now)
        self.escalated: dict[tuple[str, int], Any] = {}

    def matter(self, obligation_id: int, case_id: int | None) -> None:
        """Tell the case of an obligation read or written without the ORM (no query needed for it)."""
        self.escalated[("O", obligation_id)] = None if case_id is None else escalated_case(self.session, "C", case_id)

    def __call__(self, *, subject: str, subject_id: int, template: str, context: dict[str, Any], role: str, region_code: str | None) -> Hold | None:
        """Inhibited (its case went to the province and this is a county or city bureau), or held by an
        active silence; None when it goes."""
        if (subject, subject_id) not in self.escalated:
            self.escalated[(subject, subject_id)] = escalated_case(self.session, subject, subject_id)
        escalated = self.escalated[(subject, subject_id)]
        region = self.directory.region(region_code) if region_code else None
        if escalated is not None and inhibited_by_province(role, getattr(region, "level", None)):
            return province_hold(escalated)
        return hold_for(self.session, self.directory, template, context, self.now, rules=self.rules)


def hold_of(
    session: Session, directory: Any, *, subject: str, subject_id: int, template: str, context: dict[str, Any], target: Route, now: datetime
) -> Hold | None:
    """Why one new alert is not to be sent (see `AlertHolds`); None when it goes."""
    return AlertHolds(session, directory, now)(subject=subject, subject_id=subject_id, template=template, context=context,
                                                role=target.role, region_code=target.region_code)


def write_planned_alerts(session: Session, holds: AlertHolds, alerts: list[dict[str, Any]]) -> set[str]:
    """Write outbox rows (`alert_values`), each held or inhibited when `holds` says so; the dedup keys written."""
    return write_alerts(session, [
        (values, holds(subject="O" if values["obligation_id"] is not None else "C",
                       subject_id=values["obligation_id"] if values["obligation_id"] is not None else values["case_id"],
                       template=values["template"], context=values["context"], role=values["recipient_role"],
                       region_code=values["recipient_region"]))
        for values in alerts
    ])


def remembered_routes(app: Any, directory: Any) -> Callable[[str, str | None, str | None], list[Route]]:
    """`route` for (spec, region, distributor), each worked out once: for a caller planning many matters at once."""
    routed: dict[tuple[str, str | None, str | None], list[Route]] = {}

    def routes(spec: str, region: str | None, distributor: str | None) -> list[Route]:
        # A distributor is routed by its code alone, a bureau by the region alone.
        memo = (spec, None, distributor) if spec == "distributor" else (spec, region, None)
        if memo not in routed:
            routed[memo] = route(directory, spec, region_code=region, distributor_code=distributor,
                                 operations_email=app.settings.directory.operations_email)
        return routed[memo]

    return routes


@dataclass
class LadderAlerts:
    """What mailing one matter's due firings writes: outbox rows, `level_skipped` audit rows, and the plan."""

    alerts: list[dict[str, Any]]
    skips: list[dict[str, Any]]
    plan: Plan


def write_ladder_alerts(
    session: Session,
    app: Any,
    *,
    subject: str,
    subject_id: int,
    firings: list[Firing] | tuple[Firing, ...],
    stale: tuple[Firing, ...],
    region_code: str | None,
    distributor_code: str | None,
    context: dict[str, Any],
    now: datetime,
    ladder: Ladder,
    skip_recipients: frozenset[str] = frozenset(),
    entered_after_due: bool = False,
) -> tuple[int, Plan]:
    """Mail the ladder firings due now without replaying the ladder (see `ladder_alerts`).
    Returns how many outbox rows were new, and the plan."""
    calendar = app.calendar
    prior = steps_sent_before(_mailed_steps(session, subject, subject_id, now), calendar.local_date(now), calendar.local_date,
                              calendar.working_days_between)
    planned = ladder_alerts(
        app, directory_of(app), subject=subject, subject_id=subject_id, firings=firings, stale=stale, region_code=region_code,
        distributor_code=distributor_code, context=context, prior=prior, now=now, ladder=ladder, skip_recipients=skip_recipients,
        entered_after_due=entered_after_due,
    )
    written = len(write_planned_alerts(session, AlertHolds(session, directory_of(app), now), planned.alerts))
    for values in planned.skips:
        audit(session, **values)
    return written, planned.plan


def ladder_alerts(
    app: Any,
    directory: Any,
    *,
    subject: str,
    subject_id: int,
    firings: list[Firing] | tuple[Firing, ...],
    stale: tuple[Firing, ...],
    region_code: str | None,
    distributor_code: str | None,
    context: dict[str, Any],
    prior: dict[str, str],
    now: datetime,
    ladder: Ladder,
    skip_recipients: frozenset[str] = frozenset(),
    entered_after_due: bool = False,
    routes: Callable[[str, str | None, str | None], list[Route]] | None = None,
) -> LadderAlerts:
    """The outbox rows and audit rows of the ladder firings due now, without replaying the ladder (no I/O).

    Each recipient gets one message: the latest level of the batch addressed to them, written
    for the present (what happened, since when, what was not mailed); the earlier levels and
    the reminders too late to send are audited as skipped (`level_skipped`), never mailed, and
    so is a province level to a municipality whose bureau the ladder already names as the city.
    `prior`: the steps actually mailed before (`steps_sent_before`); `routes`: `remembered_routes`
    shared by a caller planning many matters at once.
    """
    calendar = app.calendar
    if routes is None:
        routes = remembered_routes(app, directory)
    routed: list[tuple[Firing, dict[str, Route]]] = []
    told_already: list[Skip] = []
    for firing in sorted((*firings, *stale), key=lambda f: f.step):
        targets: dict[str, Route] = {}
        earlier = [spec for level in ladder.levels[: ladder.levels.index(firing.level)] for spec in level.recipients]
        for spec in firing.level.recipients:
            if spec in skip_recipients:
                continue
            if same_bureau_as_city(directory, spec, region_code, earlier):
                told_already.append(Skip(firing, (spec,), "same_bureau"))
                continue
            for target in routes(spec, region_code, distributor_code):
                targets.setdefault(target.key, target)
        routed.append((firing, targets))
    today = calendar.local_date(now)
    plan = plan_deliveries(
        [(firing, tuple(targets)) for firing, targets in routed],
        stale=[firing.step for firing in stale],
        today_starts=calendar.start_of_day(today),
    )
    targets_of = {firing.step: targets for firing, targets in routed}
    mailed = [(delivery, targets_of[delivery.firing.step][delivery.recipient]) for delivery in plan.deliveries]
    reaching = list(dict.fromkeys(d.firing.level.template for d, target in mailed if target.email))
    alerts = []
    for delivery, target in mailed:
        template = delivery.firing.level.template
        catch_up = None
        if delivery.late or delivery.skipped:
            catch_up = {
                "level_due_on": calendar.local_date(delivery.firing.at).isoformat(),
                "skipped": list(dict.fromkeys(f.level.template for f in delivery.skipped)),
                "entered_after_due": entered_after_due,
            }
        full = {**context, "prior_steps": prior, "sent_with": [t for t in reaching if t != template], "catch_up": catch_up}
        alerts.append(alert_values(
            now=now, subject=subject, subject_id=subject_id, level_name=delivery.firing.name, template=template,
            urgent=delivery.firing.level.urgent, route=target, context=full, default_language=app.settings.mail.language,
        ))
    plan = Plan(plan.deliveries, (*told_already, *plan.skips))
    skips = [
        audit_values(
            at=now, actor=ACTOR, entity="obligation" if subject == "O" else "case", entity_id=subject_id, action="level_skipped",
            detail={
                "level": skip.firing.name,
                "template": skip.firing.level.template,
                "was_due_at": skip.firing.at.astimezone(calendar.tz).isoformat(),
                "recipients": list(skip.recipients),
                "reason": skip.reason,
            },
        )
        for skip in plan.skips
    ]
    return LadderAlerts(alerts, skips, plan)


def _mailed_steps(session: Session, subject: str, subject_id: int, now: datetime) -> list[tuple[str, datetime]]:
    """(template, when mailed) of every alert about the matter that actually went out (see `mailed_steps_of`)."""
    if subject == "O":
        return list(mailed_steps_of(session, [subject_id], now).get(subject_id, ()))
    rows = session.execute(
        select(Alert.template, Alert.sent_at, Alert.created_at).where(Alert.case_id == subject_id, Alert.status == "sent", Alert.sent_at.is_not(None))
    ).all()
    return [(template, _mailed_at(sent_at, created_at, now)) for template, sent_at, created_at in rows]


def mailed_steps_of(session: Session, obligation_ids: list[int], now: datetime) -> dict[int, list[tuple[str, datetime]]]:
    """Per obligation: (template, when mailed) of every alert about it that actually went out; one query."""
    mailed: dict[int, list[tuple[str, datetime]]] = {}
    if not obligation_ids:
        return mailed
    rows = session.execute(
        select(Alert.obligation_id, Alert.template, Alert.sent_at, Alert.created_at).where(
            Alert.obligation_id.in_(obligation_ids), Alert.status == "sent", Alert.sent_at.is_not(None)
        )
    ).all()
    for obligation_id, template, sent_at, created_at in rows:
        mailed.setdefault(obligation_id, []).append((template, _mailed_at(sent_at, created_at, now)))
    return mailed


def _mailed_at(sent_at: datetime, created_at: datetime, now: datetime) -> datetime:
    """sent_at is read from the real clock; in a replay (`once --now` in the past) it lies after the
    ledger's `now`, and the ledger instant the alert was written stands in for it."""
    return sent_at if sent_at <= now else created_at


def write_event_alerts(
    session: Session, app: Any, *, subject: str, subject_id: int, rule: EventRule, level_name: str, region_code: str | None, context: dict, distributor_code: str | None, now: datetime
) -> int:
    """The alerts of one event rule (late report, false shortage); returns how many were new."""
    return route_and_write_alerts(
        session, app, subject=subject, subject_id=subject_id, level_name=level_name, template=rule.template,
        urgent=rule.urgent, recipients=rule.recipients, region_code=region_code, distributor_code=distributor_code,
        context=context, now=now,
    )


def route_and_write_alerts(
    session: Session,
    app: Any,
    *,
    subject: str,
    subject_id: int,
    level_name: str,
    template: str,
    urgent: bool,
    recipients: list[str] | tuple[str, ...],
    region_code: str | None,
    distributor_code: str | None,
    context: dict,
    now: datetime,
) -> int:
    """Route each recipient spec through the directory and write one outbox row per address; returns how many were new."""
    directory = directory_of(app)
    written = 0
    for spec in recipients:
        for target in route(
            directory, spec, region_code=region_code, distributor_code=distributor_code, operations_email=app.settings.directory.operations_email
        ):
            hold = hold_of(session, directory, subject=subject, subject_id=subject_id, template=template, context=context, target=target, now=now)
            written += write_alert(
                session,
                now=now,
                subject=subject,
                subject_id=subject_id,
                level_name=level_name,
                template=template,
                urgent=urgent,
                route=target,
                context=context,
                default_language=app.settings.mail.language,
                hold=hold,
            )
    return written


def fulfil_obligation(session: Session, app: Any, obligation: Obligation, report: DistributorReport, now: datetime) -> None:
    """Mark fulfilled (on time) or fulfilled_late (with working days late); a late one alerts the county bureau."""
    result = fulfilment(app.calendar, obligation.due_on, obligation.due_at, report.submitted_at)
    before = obligation.state
    obligation.state = result.state
    obligation.late_working_days = result.late_working_days
    obligation.fulfilled_at = report.submitted_at
    obligation.report_pk = report.id
    obligation.next_action_at = None
    obligation.claimed_by = None
    obligation.claimed_until = None
    obligation.updated_at = now
    session.flush()
    audit(
        session,
        at=now,
        actor=ACTOR,
        entity="obligation",
        entity_id=obligation.id,
        action=result.state,
        detail={"report_id": report.report_id, "submitted_at": report.submitted_at.isoformat(), "late_working_days": result.late_working_days, "was": before},
    )
    drop_chasers_of_closed(session, obligation, now)
    if result.state == "fulfilled_late":
        context = obligation_context(session, obligation=obligation, directory=directory_of(app), calendar=app.calendar, now=now)
        write_event_alerts(
            session,
            app,
            subject="O",
            subject_id=obligation.id,
            rule=app.policy.events["late_report"],
            level_name="late_report",
            region_code=obligation.region_code,
            context=context,
            distributor_code=obligation.party_code,
            now=now,
        )


def _previous_date(previous: dict | None, key: str) -> date | None:
    value = (previous or {}).get(key)
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def notice_stored(session: Session, app: Any, notice: StoppageNotice, previous: dict | None, now: datetime) -> None:
    """A new notice opens its distributor's report obligation (`notices_stored`); a revision moving
    notified_on moves the deadline."""
    if previous is None:
        notices_stored(session, app, [notice], now)
    else:
        _notice_matched(session, app, notice, previous, now)


def notices_stored(session: Session, app: Any, notices: list[StoppageNotice], now: datetime) -> None:
    """New notices (in file order) open their distributors' report obligations, fire the levels due at
    opening and explain the shortages of their products, in a handful of statements for the whole set.

    A notice whose obligation already exists (a report came first, naming or describing it) is
    linked to it row by row (`_notice_matched`): the rare case.
    """
    if not notices:
        return
    own_key = {notice.id: report_subject_key(notice.notice_id, notice.distributor_code, None, None) for notice in notices}
    described_key = {
        notice.id: report_subject_key(None, notice.distributor_code, notice.product_code, notice.notified_on) for notice in notices
    }
    # Obligations a report opened before its notice arrived: the notice joins them.
    own_values = set(own_key.values())
    # One IN list on the unique (kind, subject_key) index: an OR of two conditions lets SQLite scan
    # every report obligation, a cost that grows with the ledger.
    wanted = own_values | set(described_key.values())
    known = {
        subject_key
        for subject_key, notice_pk in session.execute(
            select(Obligation.subject_key, Obligation.notice_pk).where(Obligation.kind == "report", Obligation.subject_key.in_(wanted))
        )
        if subject_key in own_values or notice_pk is None
    }
    fresh = []
    for notice in notices:
        if own_key[notice.id] in known or described_key[notice.id] in known:
            _notice_matched(session, app, notice, None, now)
        else:
            fresh.append(notice)
    _open_notice_obligations(session, app, fresh, own_key, now)
    explain_cases_by_notices(session, app, notices, now)


def _open_notice_obligations(session: Session, app: Any, notices: list[StoppageNotice], key_of: dict[int, str], now: datetime) -> None:
    """Open the report obligation of each notice (`open_obligations`)."""
    openings = [
        dict(kind="report", subject_key=key_of[notice.id], party_code=notice.distributor_code,
             region_code=notice.region_code or _region_of_distributor(app, notice.distributor_code), notice_pk=notice.id,
             case_id=None, product_code=notice.product_code, priority=is_priority(notice.priority_class), received_on=notice.notified_on)
        for notice in notices
    ]
    open_obligations(session, app, openings, now, notices={notice.id: notice for notice in notices})


def _notice_matched(session: Session, app: Any, notice: StoppageNotice, previous: dict | None, now: datetime) -> None:
    """A notice meets its obligation: opened by a report that came first (linked now), or its own (a revision:
    a moved notified_on moves the deadline, a corrected region re-routes later levels)."""
    obligation = _find_obligation(session, "report", report_subject_key(notice.notice_id, notice.distributor_code, None, None))
    if obligation is None:
        # The distributor may have reported before the notice reached us, describing it.
        described = _find_obligation(
            session, "report", report_subject_key(None, notice.distributor_code, notice.product_code, notice.notified_on)
        )
        if described is not None and described.notice_pk is None:
            obligation = described
    if obligation is None:
        _open_notice_obligations(
            session, app, [notice], {notice.id: report_subject_key(notice.notice_id, notice.distributor_code, None, None)}, now
        )
        return
    if obligation.notice_pk is None:
        obligation.notice_pk = notice.id
        obligation.updated_at = now
        audit(session, at=now, actor=ACTOR, entity="obligation", entity_id=obligation.id, action="notice_linked", detail={"notice_id": notice.notice_id})
    if obligation.received_on != notice.notified_on:
        move_deadline(session, app, obligation, notice.notified_on, now, was=_previous_date(previous, "notified_on"))
    if notice.region_code and notice.region_code != obligation.region_code:
        # Later levels go to the bureaus of the corrected region.
        audit(session, at=now, actor=ACTOR, entity="obligation", entity_id=obligation.id, action="region_changed",
              detail={"from": obligation.region_code, "to": notice.region_code})
        obligation.region_code = notice.region_code
        obligation.updated_at = now


def move_deadline(
    session: Session,
    app: Any,
    obligation: Obligation,
    received_on: date,
    now: datetime,
    was: date | None,
    *,
    action: str = "deadline_moved",
    note: str | None = None,
) -> None:
    """Re-date the obligation from `received_on` with the current calendar (a revised notified_on, or a
    calendar that now knows the due year); levels already applied stay applied; the audit trail says from what to what."""
    calendar = app.calendar
    old_due, old_state, old_calendar = obligation.due_at, obligation.state, obligation.calendar_status
    deadline = report_deadline(calendar, received_on, app.settings.calendar.working_days, app.settings.calendar.cutoff)
    obligation.received_on = received_on
    obligation.due_on = deadline.due
    obligation.due_at = deadline.due_at
    obligation.calendar_status = deadline.calendar
    obligation.updated_at = now
    if obligation.state in OPEN_STATES:
        obligation.state = state_at(obligation.state, deadline.due_at, now)
        ladder = Ladder.from_json(obligation.policy)
        obligation.next_action_at = overdue_check_at(
            obligation.state,
            deadline.due_at,
            next_action_after_revision(
                calendar, ladder, due_on=deadline.due, due_at=deadline.due_at, opened_at=obligation.opened_at, step=obligation.level
            ),
        )
    detail: dict[str, Any] = {
        "notified_on_from": (was or None) and was.isoformat(),
        "notified_on_to": received_on.isoformat(),
        # Both in local time: the stored one comes back from the database in UTC.
        "due_at_from": old_due.astimezone(calendar.tz).isoformat(),
        "due_at_to": deadline.due_at.astimezone(calendar.tz).isoformat(),
        "calendar_from": old_calendar,
        "calendar_to": deadline.calendar,
    }
    if obligation.state != old_state:
        detail.update(state_from=old_state, state_to=obligation.state)
    if note:
        detail["note"] = note
    audit(session, at=now, actor=ACTOR, entity="obligation", entity_id=obligation.id, action=action, detail=detail)
    if obligation.report_pk is not None and obligation.state not in OPEN_STATES:
        report = session.get(DistributorReport, obligation.report_pk)
        if report is not None:
            fulfil_obligation(session, app, obligation, report, now)


ESTIMATED = "estimated"


def recomputed_deadline(app: Any, obligation: Any) -> tuple[datetime, str]:
    """The due instant and calendar status the current calendar gives an obligation (anything with `received_on`)."""
    deadline = report_deadline(app.calendar, obligation.received_on, app.settings.calendar.working_days, app.settings.calendar.cutoff)
    return deadline.due_at, deadline.calendar


def redate_obligation(session: Session, app: Any, obligation: Obligation, now: datetime) -> None:
    """Re-date an in-flight obligation whose deadline was estimated, now that the calendar may know its year.

    The levels already applied are not applied again, and their alerts stay sent; an obligation
    marked overdue on the estimated date but not overdue on the real one is open again.
    """
    was_overdue = obligation.state == "overdue"
    note = None
    if was_overdue and obligation.level:
        note = "alerts already sent on the estimated deadline stay sent; later levels follow the new deadline"
    move_deadline(session, app, obligation, obligation.received_on, now, obligation.received_on, action="deadline_recomputed", note=note)
    if was_overdue and obligation.state == "open":
        log.warning(
            "ledger: obligation %s was overdue on an estimated deadline; open again until %s (calendar %s)",
            obligation.id, obligation.due_at.isoformat(), obligation.calendar_status,
        )


def distributor_report_stored(session: Session, app: Any, report: DistributorReport, previous: dict | None, now: datetime) -> None:
    """A report fulfils the obligation it answers; one for a notice never seen opens and fulfils in one step."""
    notice = None
    if report.notice_id:
        notice = session.scalars(
            select(StoppageNotice).where(StoppageNotice.notice_id == report.notice_id, StoppageNotice.distributor_code == report.distributor_code)
        ).first()
    if notice is None and report.product_code and report.notified_on:
        notice = session.scalars(
            select(StoppageNotice)
            .where(
                StoppageNotice.distributor_code == report.distributor_code,
                StoppageNotice.product_code == report.product_code,
                StoppageNotice.notified_on == report.notified_on,
            )
            .order_by(StoppageNotice.id)
        ).first()
    if notice is not None:
        key = report_subject_key(notice.notice_id, notice.distributor_code, None, None)
    else:
        key = report_subject_key(report.notice_id, report.distributor_code, report.product_code, report.notified_on)
    obligation = _find_obligation(session, "report", key)
    if obligation is None:
        received_on = (notice.notified_on if notice else report.notified_on) or app.calendar.local_date(report.submitted_at)
        obligation = open_obligation(
            session,
            app,
            kind="report",
            subject_key=key,
            party_code=report.distributor_code,
            region_code=(notice.region_code if notice else None) or _region_of_distributor(app, report.distributor_code),
            received_on=received_on,
            priority=is_priority(notice.priority_class if notice else None),
            now=now,
            notice_pk=notice.id if notice else None,
            product_code=report.product_code or (notice.product_code if notice else None),
            fire_open=False,
        )
        audit(session, at=now, actor=ACTOR, entity="obligation", entity_id=obligation.id, action="opened_by_report", detail={"report_id": report.report_id})
        fulfil_obligation(session, app, obligation, report, now)
        # The bureaus still learn of the stoppage, now described by the report; the distributor
        # gets no receipt asking for the report it has just made.
        opening = _opening_firings(app, obligation, app.policy.ladder_for("report", obligation.priority))
        write_obligation_alerts(session, app, obligation, opening, now, skip_recipients=frozenset({"distributor"}))
        obligation.level = len(opening)
    elif obligation.state in OPEN_STATES or obligation.report_pk == report.id:
        fulfil_obligation(session, app, obligation, report, now)
    product = report.product_code or (notice.product_code if notice else None)
    if product:
        _fulfil_explanations(session, app, report, product, now)


def _fulfil_explanations(session: Session, app: Any, report: DistributorReport, product_code: str, now: datetime) -> None:
    """A report about the product is the explanation the distributor owed for an unexplained shortage."""
    owed = session.scalars(
        select(Obligation).where(
            Obligation.kind == "explanation",
            Obligation.party_code == report.distributor_code,
            Obligation.product_code == product_code,
            Obligation.state.in_(OPEN_STATES),
        )
    ).all()
    for obligation in owed:
        fulfil_obligation(session, app, obligation, report, now)


# ---------------------------------------------------------------- shortage cases


def _case_ladder(app: Any) -> dict[str, Any]:
    return {
        "ladder": app.policy.ladder_for("regional").as_json(),
        "escalate_working_days": app.settings.escalation.regional_escalate_working_days,
    }


def case_deadline(app: Any, case: ShortageCase) -> tuple[date, datetime, str]:
    """A regional case is due for the province N working days after it became regional (end of day),
    with how sure the calendar is of that date."""
    assert case.regional_at is not None and case.policy is not None
    calendar = app.calendar
    start = calendar.local_date(case.regional_at)
    due_on, status = calendar.nth_working_day_after(start, int(case.policy["escalate_working_days"]))
    return due_on, calendar.end_of_day(due_on, None), str(status)


def case_due(app: Any, case: ShortageCase) -> tuple[date, datetime]:
    """The case's due date and instant under the current calendar (see `case_deadline`)."""
    due_on, due_at, _ = case_deadline(app, case)
    return due_on, due_at


def redate_case(session: Session, app: Any, case: ShortageCase, now: datetime) -> None:
    """Re-date a regional case whose due date was estimated: new due instant, calendar status and
    next_action_at for the levels not yet applied (those applied stay applied, their alerts sent)."""
    assert case.policy is not None and case.regional_at is not None
    old_due, old_calendar = case.due_at, case.calendar_status
    due_on, due_at, status = case_deadline(app, case)
    ladder = Ladder.from_json(case.policy["ladder"])
    case.due_at = due_at
    case.calendar_status = status
    case.next_action_at = next_action_after_revision(app.calendar, ladder, due_on=due_on, due_at=due_at, opened_at=case.regional_at, step=case.level)
    case.updated_at = now
    audit(
        session,
        at=now,
        actor=ACTOR,
        entity="case",
        entity_id=case.id,
        action="deadline_recomputed",
        detail={
            "due_at_from": old_due.astimezone(app.calendar.tz).isoformat() if old_due else None,
            "due_at_to": due_at.astimezone(app.calendar.tz).isoformat(),
            "calendar_from": old_calendar,
            "calendar_to": status,
            "state": case.state,
        },
    )


def case_parts(session: Session, case: ShortageCase) -> list:
    rows = session.scalars(select(ShortageReport).where(ShortageReport.case_id == case.id)).all()
    views = [ReportView(r.hospital_code, r.reported_on, r.supply_status, r.cause, r.received_at, r.id) for r in rows]
    return hospital_parts(views, operator_closures(session, case.id))


def write_case_alerts(
    session: Session, app: Any, case: ShortageCase, firings: list[Firing] | tuple[Firing, ...], now: datetime, *, stale: tuple[Firing, ...] = ()
) -> tuple[int, Plan]:
    """The alerts of the case's firings due now, to the case's city (see `write_ladder_alerts`)."""
    if not firings and not stale:
        return 0, Plan((), ())
    context = case_context(session, case, directory_of(app), calendar=app.calendar, now=now)
    return write_ladder_alerts(
        session, app, subject="C", subject_id=case.id, firings=firings, stale=stale, region_code=case.city_code,
        distributor_code=None, context=context, now=now, ladder=Ladder.from_json(case.policy["ladder"]),
    )


def _lock_case_key(session: Session, product_code: str, city_code: str) -> None:
    """Serialise the transactions that touch the case of (product, city) until they commit.

    Race: two replicas ingesting reports of one product and city at once (two sources) each
    saw no open case and opened one, or each counted the other's hospital out, so K hospitals
    never made a regional shortage. There is no row to lock before the case exists, so on
    PostgreSQL a transaction-scoped advisory lock on the key stands in for it; SQLite's
    BEGIN IMMEDIATE already serialises writers.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(f"case:{product_code}:{city_code}".encode("utf-8"), digest_size=8).digest()
    session.execute(select(func.pg_advisory_xact_lock(int.from_bytes(digest, "big", signed=True))))


def shortage_report_stored(session: Session, app: Any, report: ShortageReport, previous: dict | None, now: datetime) -> None:
    """Join the report to the open case for (product, city); open explanation, regional and resolution steps."""
    directory = directory_of(app)
    region_code = report.region_code or getattr(directory.hospital(report.hospital_code), "region_code", None)
    city = directory.city_of(region_code) if region_code else None
    city_code = getattr(city, "code", None) or region_code or "unknown"
    _lock_case_key(session, report.product_code, city_code)
    case = session.get(ShortageCase, report.case_id) if report.case_id else None
    if case is None or case.state == "resolved":
        case = session.scalars(
            select(ShortageCase)
            .where(ShortageCase.product_code == report.product_code, ShortageCase.city_code == city_code, ShortageCase.state != "resolved")
            .order_by(ShortageCase.id)
        ).first()
    if case is None:
        if report.supply_status == "resolved":
            return  # nothing open to close
        case = ShortageCase(
            product_code=report.product_code,
            product_name=report.product_name,
            city_code=city_code,
            state="open",
            opened_at=now,
            level=0,
            updated_at=now,
        )
        session.add(case)
        session.flush()
        audit(session, at=now, actor=ACTOR, entity="case", entity_id=case.id, action="opened", detail={"product_code": case.product_code, "city_code": city_code})
    report.case_id = case.id
    case.updated_at = now
    session.flush()

    active = report.supply_status != "resolved"
    if active and report.cause == "procurement":
        write_event_alerts(
            session,
            app,
            subject="C",
            subject_id=case.id,
            rule=app.policy.events["false_shortage"],
            level_name=f"false_shortage-{report.id}",
            region_code=city_code,
            context=case_context(session, case, directory, calendar=app.calendar, now=now),
            distributor_code=None,
            now=now,
        )
    elif active and report.distributor_code:
        has_notice = session.scalar(select(exists().where(StoppageNotice.product_code == report.product_code)))
        key = explanation_subject_key(case.id, report.distributor_code)
        if not has_notice and _find_obligation(session, "explanation", key) is None:
            open_obligation(
                session,
                app,
                kind="explanation",
                subject_key=key,
                party_code=report.distributor_code,
                region_code=region_code,
                received_on=report.reported_on,
                priority=False,
                now=now,
                case_id=case.id,
                product_code=report.product_code,
            )

    parts = case_parts(session, case)
    settings = app.settings.escalation
    if case.state == "open" and is_regional(parts, settings.regional_hospitals, settings.regional_window_days):
        make_regional(session, app, case, now)
    if all_closed(parts):
        resolve_case(session, case, now, actor=ACTOR, note="every hospital reported the supply resolved")


def make_regional(session: Session, app: Any, case: ShortageCase, now: datetime) -> None:
    """K hospitals within W days: the case is a regional shortage and starts its ladder."""
    case.state = "regional"
    case.regional_at = now
    case.policy = _case_ladder(app)
    case.level = 0
    session.flush()
    audit(session, at=now, actor=ACTOR, entity="case", entity_id=case.id, action="regional", detail={"hospitals": app.settings.escalation.regional_hospitals})
    ladder = Ladder.from_json(case.policy["ladder"])
    due_on, due_at, case.calendar_status = case_deadline(app, case)
    case.due_at = due_at
    step = advance(app.calendar, ladder, due_on=due_on, due_at=due_at, opened_at=case.regional_at, step=0, now=now)
    opening = [f for f in step.firings if f.level.offset is None]
    write_case_alerts(session, app, case, opening, now)
    case.level = len(opening)
    case.next_action_at = next_action_after_revision(app.calendar, ladder, due_on=due_on, due_at=due_at, opened_at=case.regional_at, step=case.level)


def resolve_case(session: Session, case: ShortageCase, now: datetime, *, actor: str, note: str | None) -> None:
    """Close the case: no further escalation."""
    case.state = "resolved"
    case.resolved_at = now
    case.resolution_note = note
    case.next_action_at = None
    case.claimed_by = None
    case.claimed_until = None
    case.updated_at = now
    audit(session, at=now, actor=actor, entity="case", entity_id=case.id, action="resolved", detail={"note": note})


def explain_cases_by_notices(session: Session, app: Any, notices: list[StoppageNotice], now: datetime) -> None:
    """New stoppage notices for a product explain its shortage: the explanation obligations owed about it
    are cancelled, each credited to the first notice (in file order) of its product; one query for the set."""
    first_of: dict[str, StoppageNotice] = {}
    for notice in notices:
        first_of.setdefault(notice.product_code, notice)
    if not first_of:
        return
    owed = session.scalars(
        select(Obligation).where(
            Obligation.kind == "explanation", Obligation.product_code.in_(list(first_of)), Obligation.state.in_(OPEN_STATES)
        ).order_by(Obligation.id)
    ).all()
    for obligation in owed:
        obligation.state = "cancelled"
        obligation.next_action_at = None
        obligation.updated_at = now
        audit(
            session,
            at=now,
            actor=ACTOR,
            entity="obligation",
            entity_id=obligation.id,
            action="cancelled",
            detail={"reason": "explained by stoppage notice", "notice_id": first_of[obligation.product_code].notice_id},
        )
        drop_chasers_of_closed(session, obligation, now)
