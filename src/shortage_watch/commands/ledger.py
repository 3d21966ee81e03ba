"""`once`, `obligations list`, `cases list|show|resolve`, `compliance`: the ledger for people."""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from shortage_watch.clock import FixedClock
from shortage_watch.commands import CommandError, Context, aware_instant, iso_date, positive_int
from shortage_watch.domain.obligations import case_number
from shortage_watch.domain.policy import PolicyError
from shortage_watch.services.alerts import audit
from shortage_watch.services.cycle import run_cycle
from shortage_watch.services.ledger import case_parts, directory_of, resolve_case
from shortage_watch.store.tables import Alert, AuditEvent, Obligation, ShortageCase, ShortageReport, StoppageNotice

STATE_FILTERS = {
    "open": ("open",),
    "overdue": ("overdue",),
    "late": ("fulfilled_late",),
    "fulfilled": ("fulfilled", "fulfilled_late"),
    "cancelled": ("cancelled",),
}


def register(sub: argparse._SubParsersAction) -> None:
    once = sub.add_parser("once", help="run one cycle: poll sources, sweep the ledger, deliver pending alerts")
    once.add_argument("--now", help="act as if at this instant (ISO date-time, Asia/Shanghai unless a zone is given)")
    once.add_argument("--json", action="store_true")
    once.set_defaults(handler=once_command)

    obligations = sub.add_parser("obligations", help="who owes a report by when")
    ob_sub = obligations.add_subparsers(dest="obligations_command", metavar="ACTION")
    ob_sub.required = True
    ob_list = ob_sub.add_parser("list", help="list obligations (or undeliverable alerts)")
    ob_list.add_argument("--state", choices=sorted(STATE_FILTERS), help="late = fulfilled late; fulfilled = on time or late")
    ob_list.add_argument("--region", help="only this region and the regions under it")
    ob_list.add_argument("--distributor", help="only this distributor code")
    ob_list.add_argument("--undeliverable", action="store_true", help="list alerts that had no address at all")
    ob_list.add_argument("--limit", type=positive_int, default=500)
    ob_list.add_argument("--json", action="store_true")
    ob_list.set_defaults(handler=obligations_list)

    cases = sub.add_parser("cases", help="hospital shortage cases (one product in one city)")
    cases_sub = cases.add_subparsers(dest="cases_command", metavar="ACTION")
    cases_sub.required = True
    c_list = cases_sub.add_parser("list", help="list cases")
    c_list.add_argument("--state", choices=["open", "regional", "escalated", "resolved", "active"], default="active")
    c_list.add_argument("--json", action="store_true")
    c_list.set_defaults(handler=cases_list)
    c_show = cases_sub.add_parser("show", help="one case: hospitals, notices, alerts, history")
    c_show.add_argument("id", type=positive_int)
    c_show.add_argument("--json", action="store_true")
    c_show.set_defaults(handler=cases_show)
    c_resolve = cases_sub.add_parser("resolve", help="close one hospital's part, or the whole case")
    c_resolve.add_argument("id", type=positive_int)
    c_resolve.add_argument("--hospital", help="close only this hospital's part (the case closes with its last part)")
    c_resolve.add_argument("--note", required=True, help="why (kept in the audit trail)")
    c_resolve.add_argument("--by", default="operator", help="who resolves it (audit trail)")
    c_resolve.set_defaults(handler=cases_resolve)

    compliance = sub.add_parser("compliance", help="per distributor: notices, on time, late, overdue, median days")
    compliance.add_argument("--since", type=iso_date, help="notices received on or after YYYY-MM-DD")
    compliance.add_argument("--json", action="store_true")
    compliance.set_defaults(handler=compliance_command)


def _ready(ctx: Context) -> Any:
    """The App, with a current schema and a readable policy; a CommandError otherwise."""
    app = ctx.ready_app()
    try:
        app.policy
    except PolicyError as exc:
        raise CommandError(f"setting escalation.policy: {exc}") from None
    return app


def _local(app: Any, instant: datetime | None) -> str:
    return "" if instant is None else instant.astimezone(app.calendar.tz).strftime("%Y-%m-%d %H:%M")


def once_command(args: argparse.Namespace, ctx: Context) -> int:
    """One full cycle as of --now (the ledger's clock only); exit 1 when a step failed."""
    app = _ready(ctx)
    if args.now:
        try:
            now = aware_instant(args.now, ctx.settings.timezone)
        except argparse.ArgumentTypeError as exc:
            raise CommandError(f"--now: {exc}") from None
        app.clock = FixedClock(now)
    now = app.clock.now()
    # An operator asking for one cycle means every source now, whatever its interval.
    result = run_cycle(app, now, force_poll=True)
    sweep = result.sweep
    delivered = result.delivered
    summary = {
        "now": now.isoformat(),
        "polled": len(result.polled),
        "sources": [{"source": o.source, "status": o.status, "accepted": o.accepted, "duplicates": o.duplicates,
                     "rejected": o.rejected, "error": o.error} for o in result.polled],
        "sweep": sweep.as_json() if sweep else None,
        "delivered": _plain(delivered),
        "errors": result.errors + [f"source {o.source}: {o.error}" for o in result.failed_sources],
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, default=str))
    else:
        polled = f"polled {len(result.polled)} source(s)"
        swept = (
            f"sweep: {sweep.obligations} obligation(s), {sweep.cases} case(s), {sweep.alerts} new alert(s)"
            + (f", {len(sweep.failed)} failed" if sweep.failed else "")
            if sweep
            else "sweep failed"
        )
        if delivered is None:
            sent = "delivery failed"
        else:
            counts = {k: v for k, v in (_plain(delivered) or {}).items() if isinstance(v, int) and v}
            sent = "delivery: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing due")
        print(f"cycle at {_local(app, now)}: {polled}; {swept}; {sent}")
        for outcome in result.polled:
            print(f"  {outcome.line()}")
        for error in result.errors + (sweep.failed if sweep else []):
            print(f"  error: {error}")
    return 0 if result.ok else 1


def _plain(value: Any) -> Any:
    """A step's result as JSON-ready data."""
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    as_json = getattr(value, "as_json", None)
    return as_json() if callable(as_json) else str(value)


def _obligation_json(app: Any, ob: Obligation, now: datetime) -> dict[str, Any]:
    return {
        "id": ob.id,
        "case_number": case_number("O", ob.id),
        "kind": ob.kind,
        "subject": ob.subject_key,
        "distributor": ob.party_code,
        "region": ob.region_code,
        "product": ob.product_code,
        "priority": ob.priority,
        "received_on": ob.received_on.isoformat(),
        "due_on": ob.due_on.isoformat(),
        "due_at": ob.due_at.isoformat(),
        "calendar": ob.calendar_status,
        "state": ob.state,
        "overdue_now": ob.state in ("open", "overdue") and now > ob.due_at,
        "level": ob.level,
        "next_action_at": ob.next_action_at.isoformat() if ob.next_action_at else None,
        "fulfilled_at": ob.fulfilled_at.isoformat() if ob.fulfilled_at else None,
        "late_working_days": ob.late_working_days,
    }


def obligations_list(args: argparse.Namespace, ctx: Context) -> int:
    app = _ready(ctx)
    if args.undeliverable:
        return _undeliverable(app, args)
    now = app.clock.now()
    directory = directory_of(app)
    with app.sessions() as session:
        query = select(Obligation).order_by(Obligation.due_at, Obligation.id)
        if args.state:
            query = query.where(Obligation.state.in_(STATE_FILTERS[args.state]))
        if args.distributor:
            query = query.where(Obligation.party_code == args.distributor)
        rows = session.scalars(query).all()
    if args.region:
        rows = [r for r in rows if r.region_code == args.region or directory.is_within(r.region_code, args.region)] if hasattr(directory, "is_within") else [r for r in rows if r.region_code == args.region]
    rows = rows[: args.limit]
    items = [_obligation_json(app, r, now) for r in rows]
    if args.json:
        print(json.dumps(items, ensure_ascii=False))
        return 0
    if not items:
        print("no obligations match")
        return 0
    print(f"{'number':<12} {'kind':<11} {'distributor':<12} {'region':<8} {'due (Asia/Shanghai)':<17} {'state':<15} late")
    for ob, item in zip(rows, items):
        late = "" if ob.late_working_days is None else f"{ob.late_working_days} wd"
        state = ob.state + (" (overdue)" if item["overdue_now"] and ob.state == "open" else "")
        print(f"{item['case_number']:<12} {ob.kind:<11} {ob.party_code:<12} {ob.region_code or '-':<8} {_local(app, ob.due_at):<17} {state:<15} {late}")
    return 0


def _undeliverable(app: Any, args: argparse.Namespace) -> int:
    with app.sessions() as session:
        rows = session.scalars(select(Alert).where(Alert.status == "undeliverable").order_by(Alert.id).limit(args.limit)).all()
        ids = {a.obligation_id for a in rows if a.obligation_id}
        owed = {ob.id: ob for ob in session.scalars(select(Obligation).where(Obligation.id.in_(ids))).all()} if ids else {}
    items = [
        {
            "alert_id": a.id,
            "distributor": owed[a.obligation_id].party_code if a.obligation_id in owed else None,
            "region": owed[a.obligation_id].region_code if a.obligation_id in owed else a.recipient_region,
            "matter": a.thread_key,
            "level": a.level,
            "template": a.template,
            "recipient": f"{a.recipient_role}@{a.recipient_region or '-'}",
            "written_at": a.created_at.isoformat(),
        }
        for a in rows
    ]
    if args.json:
        print(json.dumps(items, ensure_ascii=False))
        return 0
    if not items:
        print("no undeliverable alerts")
        return 0
    print("undeliverable alerts (no address in the directory and no directory.operations_email):")
    for item in items:
        about = f" (distributor {item['distributor']}, region {item['region'] or '-'})" if item["distributor"] else ""
        print(f"  #{item['alert_id']} {item['matter']}{about} {item['level']} ({item['template']}) -> {item['recipient']} at {_local(app, datetime.fromisoformat(item['written_at']))}")
    return 0


def _case_json(app: Any, session: Any, case: ShortageCase) -> dict[str, Any]:
    parts = case_parts(session, case)
    return {
        "id": case.id,
        "case_number": case_number("C", case.id),
        "product_code": case.product_code,
        "product_name": case.product_name,
        "city_code": case.city_code,
        "state": case.state,
        "opened_at": case.opened_at.isoformat(),
        "regional_at": case.regional_at.isoformat() if case.regional_at else None,
        "resolved_at": case.resolved_at.isoformat() if case.resolved_at else None,
        "resolution_note": case.resolution_note,
        "hospitals_open": sum(1 for p in parts if not p.closed),
        "hospitals": len(parts),
        "possible_false_shortages": sum(1 for p in parts if not p.closed and p.latest.cause == "procurement"),
        "next_action_at": case.next_action_at.isoformat() if case.next_action_at else None,
    }


def cases_list(args: argparse.Namespace, ctx: Context) -> int:
    app = _ready(ctx)
    with app.sessions() as session:
        query = select(ShortageCase).order_by(ShortageCase.id)
        if args.state == "active":
            query = query.where(ShortageCase.state != "resolved")
        else:
            query = query.where(ShortageCase.state == args.state)
        items = [_case_json(app, session, c) for c in session.scalars(query).all()]
    if args.json:
        print(json.dumps(items, ensure_ascii=False))
        return 0
    if not items:
        print("no cases match")
        return 0
    for c in items:
        print(
            f"{c['case_number']}  {c['product_code']} {c['product_name']}  city {c['city_code']}  {c['state']}  "
            f"hospitals {c['hospitals_open']}/{c['hospitals']} open"
            + (f"  possible false shortages {c['possible_false_shortages']}" if c["possible_false_shortages"] else "")
        )
    return 0


def _load_case(session: Any, case_id: int) -> ShortageCase:
    case = session.get(ShortageCase, case_id)
    if case is None:
        raise CommandError(f"no case {case_id}")
    return case


def cases_show(args: argparse.Namespace, ctx: Context) -> int:
    app = _ready(ctx)
    directory = directory_of(app)
    with app.sessions() as session:
        case = _load_case(session, args.id)
        item = _case_json(app, session, case)
        parts = {p.hospital_code: p for p in case_parts(session, case)}
        reports = session.scalars(select(ShortageReport).where(ShortageReport.case_id == case.id).order_by(ShortageReport.reported_on, ShortageReport.id)).all()
        item["reports"] = [
            {
                "hospital": r.hospital_code,
                "hospital_name": r.hospital_name or getattr(directory.hospital(r.hospital_code), "name", None),
                "report_id": r.report_id,
                "reported_on": r.reported_on.isoformat(),
                "supply_status": r.supply_status,
                "cause": r.cause,
                "distributor": r.distributor_code,
                "part_closed": parts[r.hospital_code].closed,
            }
            for r in reports
        ]
        item["notices"] = [
            {"notice_id": n.notice_id, "distributor": n.distributor_code, "manufacturer": n.manufacturer, "kind": n.kind,
             "notified_on": n.notified_on.isoformat()}
            for n in session.scalars(
                select(StoppageNotice).where(StoppageNotice.product_code == case.product_code).order_by(StoppageNotice.notified_on)
            ).all()
        ]
        item["obligations"] = [
            {"number": case_number("O", ob.id), "kind": ob.kind, "distributor": ob.party_code, "state": ob.state, "due_on": ob.due_on.isoformat()}
            for ob in session.scalars(select(Obligation).where(Obligation.case_id == case.id).order_by(Obligation.id)).all()
        ]
        item["alerts"] = [
            {"level": a.level, "template": a.template, "to": a.recipient_email or f"{a.recipient_role}@{a.recipient_region}", "status": a.status}
            for a in session.scalars(select(Alert).where(Alert.case_id == case.id).order_by(Alert.id)).all()
        ]
        item["history"] = [
            {"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "detail": e.detail}
            for e in session.scalars(select(AuditEvent).where(AuditEvent.entity == "case", AuditEvent.entity_id == case.id).order_by(AuditEvent.id)).all()
        ]
    if args.json:
        print(json.dumps(item, ensure_ascii=False, default=str))
        return 0
    print(f"{item['case_number']}  {item['product_code']} {item['product_name']}  city {item['city_code']}  state {item['state']}")
    print(f"  opened {_local(app, case.opened_at)}" + (f", regional since {_local(app, case.regional_at)}" if case.regional_at else "")
          + (f", resolved {_local(app, case.resolved_at)}: {case.resolution_note}" if case.resolved_at else ""))
    for r in item["reports"]:
        closed = " (closed)" if r["part_closed"] else ""
        print(f"  {r['reported_on']}  {r['hospital']} {r['hospital_name'] or ''}  {r['supply_status']}  cause {r['cause'] or '-'}{closed}")
    if not item["notices"]:
        print("  no stoppage notice on record for this product (unexplained shortage)")
    for n in item["notices"]:
        print(f"  notice {n['notice_id']} ({n['kind']}) from {n['manufacturer']} to {n['distributor']}, {n['notified_on']}")
    for ob in item["obligations"]:
        print(f"  {ob['number']} {ob['kind']} owed by {ob['distributor']}: {ob['state']}, due {ob['due_on']}")
    for a in item["alerts"]:
        print(f"  alert {a['level']} ({a['template']}) -> {a['to']} [{a['status']}]")
    for h in item["history"]:
        print(f"  {_local(app, datetime.fromisoformat(h['at']))}  {h['action']} by {h['actor']}")
    return 0


def cases_resolve(args: argparse.Namespace, ctx: Context) -> int:
    app = _ready(ctx)
    now = app.clock.now()
    note = args.note.strip()
    if not note:
        raise CommandError("--note must say why the case is resolved")
    with app.sessions.begin() as session:
        case = _load_case(session, args.id)
        if case.state == "resolved":
            raise CommandError(f"case {args.id} is already resolved", exit_code=1)
        parts = case_parts(session, case)
        targets = [p.hospital_code for p in parts if not p.closed]
        if args.hospital:
            if args.hospital not in {p.hospital_code for p in parts}:
                raise CommandError(f"case {args.id} has no report from hospital {args.hospital}")
            targets = [args.hospital]
        for code in targets:
            audit(session, at=now, actor=args.by, entity="case", entity_id=case.id, action="part_closed", detail={"hospital_code": code, "note": note})
        session.flush()
        remaining = [p for p in case_parts(session, case) if not p.closed]
        if not remaining:
            resolve_case(session, case, now, actor=args.by, note=note)
    if remaining:
        print(f"case {args.id}: closed {', '.join(targets)}; {len(remaining)} hospital(s) still short")
    else:
        print(f"case {args.id} resolved")
    return 0


def compliance_rows(app: Any, since: date | None, now: datetime) -> list[dict[str, Any]]:
    """Per distributor: report obligations, on time, late, still overdue, median working days to report."""
    calendar = app.calendar
    with app.sessions() as session:
        query = select(Obligation).where(Obligation.kind == "report", Obligation.state != "cancelled")
        if since:
            query = query.where(Obligation.received_on >= since)
        rows = session.scalars(query).all()
    per: dict[str, list[Obligation]] = defaultdict(list)
    for ob in rows:
        per[ob.party_code].append(ob)
    directory = directory_of(app)
    out = []
    for code in sorted(per):
        items = per[code]
        days = [calendar.working_days_between(ob.received_on, calendar.local_date(ob.fulfilled_at)) for ob in items if ob.fulfilled_at]
        out.append(
            {
                "distributor": code,
                "name": getattr(directory.distributor(code), "name", None),
                "notices": len(items),
                "on_time": sum(1 for ob in items if ob.state == "fulfilled"),
                "late": sum(1 for ob in items if ob.state == "fulfilled_late"),
                "overdue": sum(1 for ob in items if ob.state in ("open", "overdue") and now > ob.due_at),
                "open": sum(1 for ob in items if ob.state in ("open", "overdue") and now <= ob.due_at),
                "median_working_days": statistics.median(days) if days else None,
            }
        )
    return out


def compliance_command(args: argparse.Namespace, ctx: Context) -> int:
    app = _ready(ctx)
    rows = compliance_rows(app, args.since, app.clock.now())
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("no report obligations" + (f" since {args.since}" if args.since else ""))
        return 0
    print(f"{'distributor':<14} {'notices':>7} {'on time':>7} {'late':>5} {'overdue':>7} {'open':>5} {'median wd':>9}  name")
    for r in rows:
        median = "-" if r["median_working_days"] is None else f"{r['median_working_days']:g}"
        print(f"{r['distributor']:<14} {r['notices']:>7} {r['on_time']:>7} {r['late']:>5} {r['overdue']:>7} {r['open']:>5} {median:>9}  {r['name'] or ''}")
    return 0
