"""Routing and writing the ledger's alerts: each recipient spec through the directory, one outbox
row per address, held by a silence or inhibited by an escalated case when so; ladder firings
mailed without replaying the ladder, the levels not mailed audited as skipped."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from sqlalchemy.orm import Session

from shortage_watch.domain.catch_up import Plan, Skip, plan_deliveries, steps_sent_before
from shortage_watch.domain.inhibition import inhibited_by_province
from shortage_watch.domain.policy import Firing, Ladder
from shortage_watch.domain.routing import DirectoryView, Route, route, same_bureau_as_city
from shortage_watch.services.alerts import ALERT_KEYS, HISTORY_KEYS, Hold, alert_values, audit, audit_values, write_alerts
from shortage_watch.services.inhibition import escalated_case, province_hold
from shortage_watch.services.ledger_deps import ACTOR, LedgerDeps
from shortage_watch.services.silences import active_rules, hold_for
from shortage_watch.store.ledger_rows import first_mailings

Routes = Callable[[str, str | None, str | None], list[Route]]


class AlertHolds:
    """Why new alerts are not to be sent, for many alerts at once: the active silences are
    read once, and each matter's escalated case once."""

    def __init__(self, session: Session, directory: DirectoryView, now: datetime) -> None:
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


def write_planned_alerts(session: Session, holds: AlertHolds, alerts: list[dict[str, Any]],
                         contexts: list[dict[str, Any]] | None = None) -> set[str]:
    """Write outbox rows (`alert_values`), each held or inhibited when `holds` says so; the dedup keys written.
    `contexts`: each row's matter context, when the rows hold theirs as JSON text (`LadderPlan.stored_for_matter`)."""
    matter_contexts = [values["context"] for values in alerts] if contexts is None else contexts
    return write_alerts(session, [
        (values, holds(subject="O" if values["obligation_id"] is not None else "C",
                       subject_id=values["obligation_id"] if values["obligation_id"] is not None else values["case_id"],
                       template=values["template"], context=context, role=values["recipient_role"],
                       region_code=values["recipient_region"]))
        for values, context in zip(alerts, matter_contexts)
    ], context_as_text=contexts is not None)


def remembered_routes(deps: LedgerDeps) -> Routes:
    """`route` for (spec, region, distributor), each worked out once: for a caller planning many matters at once."""
    routed: dict[tuple[str, str | None, str | None], list[Route]] = {}

    def routes(spec: str, region: str | None, distributor: str | None) -> list[Route]:
        # A distributor is routed by its code alone, a bureau by the region alone.
        memo = (spec, None, distributor) if spec == "distributor" else (spec, region, None)
        if memo not in routed:
            routed[memo] = route(deps.directory, spec, region_code=region, distributor_code=distributor,
                                 operations_email=deps.operations_email)
        return routed[memo]

    return routes


@dataclass
class LadderAlerts:
    """What mailing one matter's due firings writes: outbox rows, `level_skipped` audit rows, and the plan."""

    alerts: list[dict[str, Any]]
    skips: list[dict[str, Any]]
    plan: Plan
    context: dict[str, Any] | None = None  # the matter's, when the rows hold theirs as JSON text (`stored_for_matter`)


@dataclass(frozen=True)
class DueFirings:
    """A matter's ladder firings due now and where they go: what `plan_ladder` plans from, besides what was
    mailed before and the clock. `stale`: firings too late to send (audited as skipped); `skip_recipients`:
    recipient specs not mailed (a distributor that has just reported); `entered_after_due`: the matter reached
    the ledger after its deadline."""

    ladder: Ladder
    firings: tuple[Firing, ...]
    region_code: str | None
    distributor_code: str | None
    stale: tuple[Firing, ...] = ()
    skip_recipients: frozenset[str] = frozenset()
    entered_after_due: bool = False


def write_ladder_alerts(
    session: Session, deps: LedgerDeps, due: DueFirings, *, subject: str, subject_id: int, context: dict[str, Any], now: datetime,
) -> tuple[int, Plan]:
    """Mail the ladder firings due now without replaying the ladder (see `ladder_alerts`).
    Returns how many outbox rows were new, and the plan."""
    calendar = deps.calendar
    prior = steps_sent_before(_mailed_steps(session, subject, subject_id, now), calendar.local_date(now), calendar.local_date,
                              calendar.working_days_between)
    planned = ladder_alerts(deps, due, subject=subject, subject_id=subject_id, context=context, prior=prior, now=now)
    written = len(write_planned_alerts(session, AlertHolds(session, deps.directory, now), planned.alerts))
    for values in planned.skips:
        audit(session, **values)
    return written, planned.plan


def ladder_alerts(
    deps: LedgerDeps, due: DueFirings, *, subject: str, subject_id: int, context: dict[str, Any], prior: dict[str, str], now: datetime,
    routes: Routes | None = None,
) -> LadderAlerts:
    """The outbox rows and audit rows of the ladder firings due now, without replaying the ladder (no I/O).

    Each recipient gets one message: the latest level of the batch addressed to them, written
    for the present (what happened, since when, what was not mailed); the earlier levels and
    the reminders too late to send are audited as skipped (`level_skipped`), never mailed, and
    so is a province level to a municipality whose bureau the ladder already names as the city.
    `prior`: the steps actually mailed before (`steps_sent_before`); `routes`: `remembered_routes`
    shared by a caller planning many matters at once.
    """
    planned = plan_ladder(deps, due, prior=prior, now=now, routes=routes)
    return planned.for_matter(subject, subject_id, context, now, deps.mail_language)


@dataclass(frozen=True)
class PlannedAlert:
    """One message of a `LadderPlan`, before the matter is known: its level, recipient, and what it says
    of the ladder (`history`: prior_steps, sent_with, catch_up)."""

    level_name: str
    template: str
    urgent: bool
    route: Route
    history: dict[str, Any]


@dataclass(frozen=True)
class LadderPlan:
    """The ladder firings due now routed and planned, without the matter: equal for every matter of one
    ladder, firings, region, distributor, prior steps and entry, so a caller stepping many matters
    plans each such shape once and fills in each matter (`for_matter`)."""

    plan: Plan
    alerts: tuple[PlannedAlert, ...]
    skips: tuple[dict[str, Any], ...]  # the `level_skipped` audit detail of each skip in `plan.skips`

    def for_matter(self, subject: str, subject_id: int, context: dict[str, Any], now: datetime, default_language: str) -> LadderAlerts:
        """The outbox rows (`alert_values`) and `level_skipped` audit rows of this plan for one matter."""
        alerts = [
            alert_values(now=now, subject=subject, subject_id=subject_id, level_name=alert.level_name, template=alert.template,
                         urgent=alert.urgent, route=alert.route, context={**context, **alert.history}, default_language=default_language)
            for alert in self.alerts
        ]
        return LadderAlerts(alerts, self.skip_events(subject, subject_id, now), self.plan)

    def stored_for_matter(self, subject: str, subject_id: int, context: dict[str, Any], now: datetime,
                          default_language: str) -> LadderAlerts:
        """`for_matter`, each row's context already the JSON text `json.dumps` writes of it: the matter's part
        serialised once for all its alerts (serialising each alert's whole context was a tenth of storing a file).

        `json.dumps` of a dict writes its items in order, joined by ", ": so the whole context's text is the
        text of its items before the history, ", ", and the text of the rest, as long as the history ends the
        matter's context and what the alert adds is not in it (both checked per matter)."""
        keys = tuple(context)
        if keys[-len(HISTORY_KEYS):] != HISTORY_KEYS or not ALERT_KEYS.isdisjoint(keys):
            raise AssertionError(f"alert context of {subject}{subject_id} cannot be spliced: {keys}")
        head = json.dumps({key: value for key, value in context.items() if key not in HISTORY_KEYS})[1:-1]
        alerts = []
        for planned in self.alerts:
            values, tail = alert_parts(planned, subject, subject_id, context, now, default_language)
            values["context"] = f"{{{head}, {tail}}}"
            alerts.append(values)
        return LadderAlerts(alerts, self.skip_events(subject, subject_id, now), self.plan, context)

    def skip_events(self, subject: str, subject_id: int, now: datetime) -> list[dict[str, Any]]:
        """The `level_skipped` audit rows of this plan for one matter."""
        entity = "obligation" if subject == "O" else "case"
        return [audit_values(at=now, actor=ACTOR, entity=entity, entity_id=subject_id, action="level_skipped", detail=detail)
                for detail in self.skips]


def plan_ladder(deps: LedgerDeps, due: DueFirings, *, prior: dict[str, str], now: datetime, routes: Routes | None = None) -> LadderPlan:
    """The ladder firings due now routed and planned as `ladder_alerts` describes, for any matter of this
    shape (no I/O). The skip details are shared by every matter the plan is filled in for."""
    calendar, directory = deps.calendar, deps.directory
    ladder, stale, region_code, distributor_code = due.ladder, due.stale, due.region_code, due.distributor_code
    if routes is None:
        routes = remembered_routes(deps)
    routed: list[tuple[Firing, dict[str, Route]]] = []
    told_already: list[Skip] = []
    for firing in sorted((*due.firings, *stale), key=lambda f: f.step):
        targets: dict[str, Route] = {}
        earlier = [spec for level in ladder.levels[: ladder.levels.index(firing.level)] for spec in level.recipients]
        for spec in firing.level.recipients:
            if spec in due.skip_recipients:
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
                "entered_after_due": due.entered_after_due,
            }
        history = {"prior_steps": prior, "sent_with": [t for t in reaching if t != template], "catch_up": catch_up}
        alerts.append(PlannedAlert(delivery.firing.name, template, delivery.firing.level.urgent, target, history))
    plan = Plan(plan.deliveries, (*told_already, *plan.skips))
    skips = tuple(
        {
            "level": skip.firing.name,
            "template": skip.firing.level.template,
            "was_due_at": skip.firing.at.astimezone(calendar.tz).isoformat(),
            "recipients": list(skip.recipients),
            "reason": skip.reason,
        }
        for skip in plan.skips
    )
    return LadderPlan(plan, tuple(alerts), skips)


def alert_parts(planned: PlannedAlert, subject: str, subject_id: int, context: dict[str, Any], now: datetime,
                default_language: str) -> tuple[dict[str, Any], str]:
    """The outbox row of `planned` about the matter of `context` (`alert_values`), and the JSON text of the items
    its context ends with: the plan's history, then what `alert_values` adds (alike for every matter of a plan)."""
    values = alert_values(now=now, subject=subject, subject_id=subject_id, level_name=planned.level_name, template=planned.template,
                          urgent=planned.urgent, route=planned.route, context={**context, **planned.history},
                          default_language=default_language)
    full = values["context"]
    keys = list(full)
    return values, json.dumps({key: full[key] for key in keys[keys.index(HISTORY_KEYS[0]):]})[1:-1]


def _mailed_steps(session: Session, subject: str, subject_id: int, now: datetime) -> list[tuple[str, datetime]]:
    """(template, when first mailed) of each step mailed about the matter (see `mailed_steps_of`)."""
    return mailed_steps_of(session, [subject_id], now, subject=subject).get(subject_id, [])


def mailed_steps_of(session: Session, ids: list[int], now: datetime, *, subject: str = "O",
                    before: datetime | None = None) -> dict[int, list[tuple[str, datetime]]]:
    """Per obligation (`subject` "O") or case ("C"): (template, when first mailed) of each step whose alerts actually
    went out, mailed before `before` when given (what `steps_sent_before` could count); one query."""
    mailed: dict[int, list[tuple[str, datetime]]] = {}
    if ids:
        for subject_id, template, first in first_mailings(session, subject, ids, now, before):
            mailed.setdefault(subject_id, []).append((template, first))
    return mailed
