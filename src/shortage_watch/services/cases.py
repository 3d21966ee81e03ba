"""Shortage cases: hospital reports join the case of (product, city); an unexplained one makes the
named distributor owe an explanation; K hospitals within W days make it regional, with its ladder
and deadline; every hospital reporting supply resolved (or an operator) resolves it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from shortage_watch.domain.cases import (ReportView, after_joining, all_closed, hospital_parts, operator_closures_of, report_asks,
                                         report_view)
from shortage_watch.domain.catch_up import Plan, steps_sent_before
from shortage_watch.domain.obligations import advance, explanation_subject_key, next_action_after_revision
from shortage_watch.domain.policy import Firing, Ladder
from shortage_watch.domain.records import ShortageReportRecord
from shortage_watch.domain.states import CaseState, case_regional, case_resolved
from shortage_watch.services.alert_routing import (
    AlertHolds,
    DueFirings,
    ladder_alerts,
    mailed_steps_of,
    remembered_routes,
    write_ladder_alerts,
    write_planned_alerts,
)
from shortage_watch.services.alerts import alert_values, audit, audit_values, case_context, case_context_of, insert_audits, operator_closures
from shortage_watch.services.ledger_deps import ACTOR, LedgerDeps
from shortage_watch.services.obligations import open_obligations
from shortage_watch.services.record_writer import stored_values
from shortage_watch.store.case_rows import (
    case_keys_of,
    cases_by_id,
    explanations_opened,
    insert_cases,
    join_reports_to_cases,
    lock_case_keys,
    notices_of_products,
    part_closures_of_cases,
    reports_of_cases,
    stoppages_reported,
    unresolved_cases_of,
)
from shortage_watch.store.ledger_rows import hospital_reports_of_case
from shortage_watch.store.tables import ShortageCase, ShortageReport

log = logging.getLogger(__name__)


def _case_ladder(deps: LedgerDeps) -> dict[str, Any]:
    return {
        "ladder": deps.policy.ladder_for("regional").as_json(),
        "escalate_working_days": deps.escalation.regional_escalate_working_days,
    }


def case_deadline(deps: LedgerDeps, case: ShortageCase) -> tuple[date, datetime, str]:
    """A regional case is due for the province N working days after it became regional (end of day),
    with how sure the calendar is of that date."""
    assert case.regional_at is not None and case.policy is not None
    calendar = deps.calendar
    start = calendar.local_date(case.regional_at)
    due_on, status = calendar.nth_working_day_after(start, int(case.policy["escalate_working_days"]))
    return due_on, calendar.end_of_day(due_on, None), str(status)


def case_due(deps: LedgerDeps, case: ShortageCase) -> tuple[date, datetime]:
    """The case's due date and instant under the current calendar (see `case_deadline`)."""
    due_on, due_at, _ = case_deadline(deps, case)
    return due_on, due_at


def redate_case(session: Session, deps: LedgerDeps, case: ShortageCase, now: datetime) -> None:
    """Re-date a regional case with the current calendar: new due instant, calendar status and
    next_action_at for the levels not yet applied (those applied stay applied, their alerts sent)."""
    assert case.policy is not None and case.regional_at is not None
    old_due, old_calendar = case.due_at, case.calendar_status
    due_on, due_at, status = case_deadline(deps, case)
    ladder = Ladder.from_json(case.policy["ladder"])
    case.due_at = due_at
    case.calendar_status = status
    case.next_action_at = next_action_after_revision(deps.calendar, ladder, due_on=due_on, due_at=due_at, opened_at=case.regional_at, step=case.level)
    case.updated_at = now
    audit(session, at=now, actor=ACTOR, entity="case", entity_id=case.id, action="deadline_recomputed", detail={
        "due_at_from": old_due.astimezone(deps.calendar.tz).isoformat() if old_due else None,
        "due_at_to": due_at.astimezone(deps.calendar.tz).isoformat(),
        "calendar_from": old_calendar,
        "calendar_to": status,
        "state": case.state,
    })


def case_parts(session: Session, case: ShortageCase) -> list:
    rows = hospital_reports_of_case(session, case.id)
    views = [report_view(r) for r in rows]
    return hospital_parts(views, operator_closures(session, case.id))


def write_case_alerts(
    session: Session, deps: LedgerDeps, case: ShortageCase, firings: list[Firing] | tuple[Firing, ...], now: datetime, *, stale: tuple[Firing, ...] = ()
) -> tuple[int, Plan]:
    """The alerts of the case's firings due now, to the case's city (see `write_ladder_alerts`)."""
    if not firings and not stale:
        return 0, Plan((), ())
    context = case_context(session, case, deps.directory, calendar=deps.calendar, now=now)
    due = DueFirings(Ladder.from_json(case.policy["ladder"]), tuple(firings), case.city_code, None, stale=stale)
    return write_ladder_alerts(session, deps, due, subject="C", subject_id=case.id, context=context, now=now)


@dataclass
class _Track:
    """One case as a chunk of reports moves it, before anything is written: its columns (`case`, a plain
    namespace, so the stored row keeps its state until the chunk's alerts are held or not by it), its stored
    row (None for one the chunk opens), its operator closures, and its hospital reports by id (a revised one
    the chunk has not reached yet as it was before) with what the rules read of each."""

    case: SimpleNamespace
    row: ShortageCase | None = None
    closures: dict[str, datetime] = field(default_factory=dict)
    reports: dict[int, ShortageReport | SimpleNamespace] = field(default_factory=dict)
    views: dict[int, ReportView] = field(default_factory=dict)

    def put(self, report: ShortageReport | SimpleNamespace) -> None:
        """The report counts in this case as it is given (in place of any earlier form of it)."""
        self.reports[report.id] = report
        self.views[report.id] = report_view(report)

    def drop(self, report_id: int) -> None:
        """The report no longer counts in this case."""
        del self.reports[report_id]
        del self.views[report_id]


@dataclass(frozen=True)
class _Seen:
    """A case as it stood when one of its reports asked something (its alert context is worked out from it)."""

    track: _Track
    case: SimpleNamespace
    reports: tuple[ShortageReport | SimpleNamespace, ...]


def _seen(track: _Track) -> _Seen:
    # Instants as the database gives them back (UTC), whether the case was read or is only in memory, so
    # its messages say the same whichever chunk of a file moved it.
    columns = {k: v.astimezone(timezone.utc) if isinstance(v, datetime) else v for k, v in vars(track.case).items()}
    return _Seen(track, SimpleNamespace(**columns), tuple(sorted(track.reports.values(), key=lambda r: r.id)))


_CASE_COLUMNS = tuple(c.key for c in ShortageCase.__table__.c if c.key != "id")


def _city_of(deps: LedgerDeps, report: ShortageReport) -> tuple[str | None, str]:
    """The report's region (its own, or its hospital's) and the city whose case it joins."""
    directory = deps.directory
    region_code = report.region_code or getattr(directory.hospital(report.hospital_code), "region_code", None)
    city = directory.city_of(region_code) if region_code else None
    return region_code, getattr(city, "code", None) or region_code or NO_CITY


# The case key of reports whose region nobody gives: their hospitals may be anywhere, so they are one city
# only in name and never make a regional shortage together.
NO_CITY = "unknown"


def shortage_reports_stored(session: Session, deps: LedgerDeps, reports: list[ShortageReport], now: datetime, *,
                            previous: dict[int, dict[str, Any] | None] | None = None) -> None:
    """Hospital reports (new or revised, of distinct identities, in file order) join the unresolved case of their
    (product, city), opening it when there is none; an open part blaming procurement alerts the bureaus of a
    possible false shortage; one naming its distributor makes it owe an explanation unless a notice explains
    the product or that distributor reported its stoppage; K hospitals within W days make the case regional
    (its ladder and deadline start); every part closed resolves it. Exactly what the reports write one file each, in a handful of statements for the set.

    A revised report (`previous`: its data before, by row id) joins again as it is now: it stays in its case
    while that case is unresolved and of its (product, city), else joins (or opens) the open case of its key; an
    open case it leaves is resolved when no report is left in it or every part left is closed. Until the walk
    reaches it, it counts in its case as it was, as it would before its own file.

    The rows are walked in order in memory (a case opens on its first report, turns regional when the
    threshold is crossed, is resolved and a later report opens a new one), then written: new cases in
    the order they opened (their ids, in subject keys and dedup keys, are those one report at a time gives).
    """
    if not reports:
        return
    places = [_city_of(deps, report) for report in reports]
    keys = {(report.product_code, city) for report, (_, city) in zip(reports, places)}
    # A revised report may leave the case it joined for another product or city: that case changes too.
    lock_case_keys(session, keys | case_keys_of(session, sorted({report.case_id for report in reports if report.case_id is not None})))
    tracks = _stored_tracks(session, deps, reports, previous or {}, keys)
    # The cases' products too: a revised report may name another product than the case it stays in.
    notices = notices_of_products(session, sorted({report.product_code for report in reports} | {t.case.product_code for t in tracks.values()}))
    # A distributor that reported the product's stoppage in writing (its notice not seen yet) has explained it.
    reported = stoppages_reported(session, {(report.distributor_code, report.product_code) for report in reports if report.distributor_code})
    open_case: dict[tuple[str, str], _Track] = {}
    for track in sorted(tracks.values(), key=lambda t: t.case.id):
        if track.case.state != CaseState.RESOLVED:
            open_case.setdefault((track.case.product_code, track.case.city_code), track)

    settings = deps.escalation
    opened: list[_Track] = []
    joined: list[tuple[ShortageReport, _Track]] = []
    false_shortages: list[tuple[ShortageReport, _Seen]] = []
    explanations: list[tuple[ShortageReport, str | None, _Seen]] = []
    regional: list[tuple[_Seen, list[Firing]]] = []
    changes: list[tuple[_Track, str, dict[str, Any] | None]] = []  # (case, audit action, detail), audited once ids are known
    left: list[ShortageReport] = []  # revised reports that left their case and joined none
    for report, (region_code, city_code) in zip(reports, places):
        key = (report.product_code, city_code)
        joined_before = tracks.get(report.case_id) if report.case_id is not None else None
        if joined_before is not None:
            joined_before.put(report)  # as it is now, until it joins another case
        track = joined_before
        if track is None or track.case.state == CaseState.RESOLVED or (track.case.product_code, track.case.city_code) != key:
            track = open_case.get(key)
        moved_out = False  # from an open case, corrected to another product or city
        if joined_before is not None and joined_before is not track:
            joined_before.drop(report.id)  # it counts only in the case it joins now, if any
            if joined_before.case.state != CaseState.RESOLVED:
                # The case it leaves is judged on the reports it keeps.
                moved_out = True
                changes.extend(_after_leaving(joined_before, now))
                if joined_before.case.state == CaseState.RESOLVED:
                    open_case.pop((joined_before.case.product_code, joined_before.case.city_code), None)
        if track is None:
            if report.supply_status == "resolved":
                if moved_out:
                    left.append(report)
                continue  # nothing open to close
            track = _Track(SimpleNamespace(
                id=None, product_code=report.product_code, product_name=report.product_name, city_code=city_code, state=CaseState.OPEN,
                opened_at=now, regional_at=None, resolved_at=None, resolution_note=None, level=0, policy=None, next_action_at=None,
                due_at=None, calendar_status=None, claimed_by=None, claimed_until=None, updated_at=now,
            ))
            opened.append(track)
            open_case[key] = track
            changes.append((track, "opened", {"product_code": report.product_code, "city_code": city_code}))
        track.put(report)
        track.case.updated_at = now
        joined.append((report, track))
        asks = report_asks(report.supply_status, report.cause, report.distributor_code)
        if asks == "false_shortage":
            false_shortages.append((report, _seen(track)))
        elif (asks == "explanation" and report.product_code not in notices
              and (report.distributor_code, report.product_code) not in reported):
            explanations.append((report, region_code, _seen(track)))
        after = after_joining(hospital_parts(track.views.values(), track.closures), track.case.state, settings.regional_hospitals,
                              settings.regional_window_days)
        if after.becomes_regional and track.case.city_code != NO_CITY:
            action, detail, opening = _make_regional(deps, track.case, now)
            changes.append((track, action, detail))
            regional.append((_seen(track), opening))
        if after.resolved:
            changes.append((track, *_resolved(track.case, now, note=ALL_SUPPLIED)))
            if open_case.get(key) is track:
                del open_case[key]

    _insert_opened(session, opened)
    join_reports_to_cases(session, [(report.id, track.case.id) for report, track in joined] + [(report.id, None) for report in left])
    for report, track in joined:
        set_committed_value(report, "case_id", track.case.id)
    for report in left:
        set_committed_value(report, "case_id", None)
    _open_explanations(session, deps, explanations, notices, now)
    events = _write_chunk_alerts(session, deps, false_shortages, regional, notices, now)
    events.extend(audit_values(at=now, actor=ACTOR, entity="case", entity_id=track.case.id, action=action, detail=detail)
                  for track, action, detail in changes)
    insert_audits(session, events)
    # Only now do the stored cases take their new state: the alerts above were held (or not) by their
    # state as each report found it, as one report at a time would have.
    for track in tracks.values():
        for column in _CASE_COLUMNS:
            value = getattr(track.case, column)
            if getattr(track.row, column) != value:
                setattr(track.row, column, value)
    session.flush()


# Why a case is resolved by its reports: every part closed, or every report corrected to another matter.
ALL_SUPPLIED = "各医院均已报告供应恢复 / every hospital reported the supply resolved"
MOVED_AWAY = "医院报告均已更正为其他药品或城市 / every hospital report was corrected to another product or city"


def _after_leaving(track: _Track, now: datetime) -> list[tuple[_Track, str, dict[str, Any] | None]]:
    """A report left the unresolved case `track`: the case is resolved when none is left, or when every part left
    is closed; its audit changes."""
    if not track.reports:
        return [(track, *_resolved(track.case, now, note=MOVED_AWAY))]
    track.case.updated_at = now
    if all_closed(hospital_parts(track.views.values(), track.closures)):
        return [(track, *_resolved(track.case, now, note=ALL_SUPPLIED))]
    return []


def _stored_tracks(session: Session, deps: LedgerDeps, reports: list[ShortageReport], previous: dict[int, dict[str, Any] | None],
                   keys: set[tuple[str, str]]) -> dict[int, _Track]:
    """By id, the stored cases the reports may join (the unresolved case of each (product, city) key, and
    those revised reports joined before); the unresolved ones with their hospital reports (the chunk's revised
    ones as they were) and operator closures. No report joins a resolved case: what it held is not read."""
    stored = unresolved_cases_of(session, keys)
    revised = {report.case_id for report in reports if report.case_id is not None} - {case.id for case in stored}
    stored += cases_by_id(session, sorted(revised)) if revised else []
    tracks = {case.id: _Track(SimpleNamespace(id=case.id, **{k: getattr(case, k) for k in _CASE_COLUMNS}), case) for case in stored}
    unresolved = sorted(case_id for case_id, track in tracks.items() if track.case.state != CaseState.RESOLVED)
    for row in reports_of_cases(session, unresolved):
        was = previous.get(row.id)
        tracks[row.case_id].put(_as_it_was(deps, row, was) if was is not None else row)
    closings: dict[int, list[tuple[datetime, dict[str, Any] | None]]] = {}
    for case_id, at, detail in part_closures_of_cases(session, unresolved):
        closings.setdefault(case_id, []).append((at, detail))
    for case_id, found in closings.items():
        tracks[case_id].closures = operator_closures_of(found)
    return tracks


def _as_it_was(deps: LedgerDeps, row: ShortageReport, previous: dict[str, Any]) -> ShortageReport | SimpleNamespace:
    """A revised report's columns as they were stored before the revision (`previous`: that version's data)."""
    try:
        record = ShortageReportRecord.model_validate(previous)
    except ValidationError:
        # A version stored under older rules may not pass today's: it counts as it is now.
        log.warning("ledger: previous version of hospital report %s does not validate; taken as revised", row.id)
        return row
    # When that version was written is not at hand: taken as received, so a part an officer closed since stays
    # closed until the walk reaches the revision (as it did before it).
    return SimpleNamespace(**{**{c.key: getattr(row, c.key) for c in ShortageReport.__table__.c},
                              **stored_values(record, deps.directory), "updated_at": row.received_at})


def _insert_opened(session: Session, opened: list[_Track]) -> None:
    """Store the cases the chunk opened, with the columns they ended the chunk with, numbered in the order
    they opened (as one report at a time numbers them); their rows join the session."""
    if not opened:
        return
    ids = insert_cases(session, [{k: getattr(track.case, k) for k in _CASE_COLUMNS} for track in opened])
    rows = {row.id: row for row in cases_by_id(session, ids)}
    for track, case_id in zip(opened, ids):
        track.row = rows[case_id]
        track.case.id = case_id


def _context_of(deps: LedgerDeps, seen: _Seen, notices: dict[str, tuple[list[str], str | None]], now: datetime) -> dict[str, Any]:
    """`case_context` of the case as it stood then."""
    seen.case.id = seen.track.case.id
    notice_ids, manufacturer = notices.get(seen.case.product_code, ([], None))
    return case_context_of(seen.case, list(seen.reports), seen.track.closures, notice_ids=notice_ids, manufacturer=manufacturer,
                           directory=deps.directory, calendar=deps.calendar, now=now)


def _open_explanations(session: Session, deps: LedgerDeps, asked: list[tuple[ShortageReport, str | None, _Seen]],
                       notices: dict[str, tuple[list[str], str | None]], now: datetime) -> None:
    """Open the explanations the reports ask for, each once per case and distributor, in one `open_obligations`."""
    keys = [explanation_subject_key(seen.track.case.id, report.distributor_code) for report, _, seen in asked]
    owed = explanations_opened(session, sorted(set(keys)))
    # The distributor learns of the shortage from this request, not on the hospital's report date (the health
    # commission's lists reach the ledger weeks later): its working days run from the day it is asked.
    asked_on = deps.calendar.local_date(now)
    openings, cases = [], {}
    for key, (report, region_code, seen) in zip(keys, asked):
        if key in owed:
            continue
        owed.add(key)
        openings.append(dict(kind="explanation", subject_key=key, party_code=report.distributor_code, region_code=region_code, notice_pk=None,
                             case_id=seen.track.case.id, product_code=report.product_code, priority=False, received_on=asked_on))
        cases[key] = (seen.case, _context_of(deps, seen, notices, now)["case"])
    open_obligations(session, deps, openings, now, cases=cases)


def _write_chunk_alerts(
    session: Session, deps: LedgerDeps, false_shortages: list[tuple[ShortageReport, _Seen]], regional: list[tuple[_Seen, list[Firing]]],
    notices: dict[str, tuple[list[str], str | None]], now: datetime,
) -> list[dict[str, Any]]:
    """Write the chunk's false-shortage alerts and the opening levels of the cases it made regional in one
    write (held or inhibited by each case's state as the chunk found it); the audit rows of the levels not
    mailed, to be written with the chunk's."""
    routes = remembered_routes(deps)
    alerts: list[dict[str, Any]] = []
    rule = deps.policy.events["false_shortage"]
    for report, seen in false_shortages:
        context = _context_of(deps, seen, notices, now)
        case_id = seen.case.id
        for spec in rule.recipients:
            for target in routes(spec, seen.case.city_code, None):
                alerts.append(alert_values(now=now, subject="C", subject_id=case_id, level_name=f"false_shortage-{report.id}",
                                           template=rule.template, urgent=rule.urgent, route=target, context=context,
                                           default_language=deps.mail_language))
    skips: list[dict[str, Any]] = []
    regional = [(seen, firings) for seen, firings in regional if firings]
    mailed = mailed_steps_of(session, [seen.track.case.id for seen, _ in regional], now, subject="C")
    calendar = deps.calendar
    for seen, firings in regional:
        context = _context_of(deps, seen, notices, now)
        prior = steps_sent_before(mailed.get(seen.case.id, []), calendar.local_date(now), calendar.local_date, calendar.working_days_between)
        due = DueFirings(Ladder.from_json(seen.case.policy["ladder"]), tuple(firings), seen.case.city_code, None)
        planned = ladder_alerts(deps, due, subject="C", subject_id=seen.case.id, context=context, prior=prior, now=now, routes=routes)
        alerts.extend(planned.alerts)
        skips.extend(planned.skips)
    # One report at a time, a second alert with a dedup key already written is a no-op: the first stays.
    unique: dict[str, dict[str, Any]] = {}
    for values in alerts:
        unique.setdefault(values["dedup_key"], values)
    write_planned_alerts(session, AlertHolds(session, deps.directory, now), list(unique.values()))
    return skips


def _make_regional(deps: LedgerDeps, case: SimpleNamespace, now: datetime) -> tuple[str, dict[str, Any] | None, list[Firing]]:
    """K hospitals within W days: the case (its columns) becomes a regional shortage and starts its ladder,
    due N working days from now; its audit action and detail, and the levels due at once."""
    moved = case_regional(case.state, deps.escalation.regional_hospitals)
    case.state = moved.state
    case.regional_at = now
    case.policy = _case_ladder(deps)
    ladder = Ladder.from_json(case.policy["ladder"])
    due_on, due_at, case.calendar_status = case_deadline(deps, case)
    case.due_at = due_at
    step = advance(deps.calendar, ladder, due_on=due_on, due_at=due_at, opened_at=case.regional_at, step=0, now=now)
    opening = [f for f in step.firings if f.level.offset is None]
    case.level = len(opening)
    case.next_action_at = next_action_after_revision(deps.calendar, ladder, due_on=due_on, due_at=due_at, opened_at=case.regional_at, step=case.level)
    return moved.action, moved.detail, opening


def _resolved(case: ShortageCase | SimpleNamespace, now: datetime, *, note: str | None) -> tuple[str, dict[str, Any] | None]:
    """Close the case (a stored row or its columns): no further escalation; its audit action and detail."""
    moved = case_resolved(case.state, note)
    case.state = moved.state
    case.resolved_at = now
    case.resolution_note = note
    case.next_action_at = None
    case.claimed_by = None
    case.claimed_until = None
    case.updated_at = now
    return moved.action, moved.detail


def resolve_case(session: Session, case: ShortageCase, now: datetime, *, actor: str, note: str | None) -> None:
    """Close the case: no further escalation."""
    action, detail = _resolved(case, now, note=note)
    audit(session, at=now, actor=actor, entity="case", entity_id=case.id, action=action, detail=detail)
