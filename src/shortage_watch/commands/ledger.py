"""`once`, `obligations list`, `cases list|show|resolve`, `compliance`: the ledger for people."""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from collections import defaultdict
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from shortage_watch.clock import FixedClock
from shortage_watch.commands import CommandError, Context, aware_instant, iso_date, option_error, positive_int
from shortage_watch.commands.intake import poll_line
from shortage_watch.commands.officer import (
    TEXT, add_lang, case_number_arg, check_region, choice_label, label, local_iso, local_minute, not_found, readable, table,
)
from shortage_watch.domain.labels import zh_en
from shortage_watch.domain.obligations import case_number, overdue_working_days
from shortage_watch.domain.states import OBLIGATION_IN_FLIGHT, CaseState, ObligationState

if TYPE_CHECKING:
    from shortage_watch.store import officer_queries as oq
    from shortage_watch.store.tables import Alert, AuditEvent, Obligation, ShortageCase

STATE_FILTERS = {
    "open": (ObligationState.OPEN,),
    "overdue": (ObligationState.OVERDUE,),
    "late": (ObligationState.FULFILLED_LATE,),
    "fulfilled": (ObligationState.FULFILLED, ObligationState.FULFILLED_LATE),
    "cancelled": (ObligationState.CANCELLED,),
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
    add_lang(ob_list)
    ob_list.set_defaults(handler=obligations_list)
    ob_show = ob_sub.add_parser("show", help="one obligation: its record, deadline, alerts and every audit event")
    ob_show.add_argument("id", type=case_number_arg("O"), help="SW-O-000007 (as in mail) or 7")
    ob_show.add_argument("--json", action="store_true")
    add_lang(ob_show)
    ob_show.set_defaults(handler=obligations_show)

    cases = sub.add_parser("cases", help="hospital shortage cases (one product in one city)")
    cases_sub = cases.add_subparsers(dest="cases_command", metavar="ACTION")
    cases_sub.required = True
    c_list = cases_sub.add_parser("list", help="list cases")
    c_list.add_argument("--state", choices=[*map(str, CaseState), "active"], default="active")
    c_list.add_argument("--region", help="only cases of this region: its cities, or a hospital report from within it")
    c_list.add_argument("--json", action="store_true")
    add_lang(c_list)
    c_list.set_defaults(handler=cases_list)
    c_show = cases_sub.add_parser("show", help="one case: hospitals, notices, alerts, history")
    c_show.add_argument("id", type=case_number_arg("C"), help="SW-C-000001 (as in mail) or 1")
    c_show.add_argument("--json", action="store_true")
    add_lang(c_show)
    c_show.set_defaults(handler=cases_show)
    c_resolve = cases_sub.add_parser("resolve", help="close one hospital's part, or the whole case")
    c_resolve.add_argument("id", type=case_number_arg("C"), help="SW-C-000001 (as in mail) or 1")
    c_resolve.add_argument("--hospital", help="close only this hospital's part (the case closes with its last part)")
    c_resolve.add_argument("--note", required=True, help="why (kept in the audit trail)")
    c_resolve.add_argument("--by", default="operator", help="who resolves it (audit trail)")
    c_resolve.set_defaults(handler=cases_resolve)

    compliance = sub.add_parser("compliance", help="per distributor: report obligations, on time, late, overdue, median days")
    compliance.add_argument("--since", type=iso_date, help="report obligations due on or after this date (2024-09-27, 2024/9/27, 2024年9月27日)")
    compliance.add_argument("--until", type=iso_date, help="report obligations due on or before this date (with --since: the monthly summary's month)")
    compliance.add_argument("--region", help="only obligations in this region and the regions under it")
    compliance.add_argument("--json", action="store_true")
    add_lang(compliance)
    compliance.set_defaults(handler=compliance_command)


def _ready(ctx: Context) -> Any:
    """The App, with a current schema and a readable policy (read now, before any work: a broken
    one is the CLI's one-line `setting escalation.policy` error, exit 2)."""
    app = ctx.ready_app()
    app.policy  # noqa: B018
    return app


def _local(app: Any, instant: datetime | None) -> str:
    return "" if instant is None else instant.astimezone(app.calendar.tz).strftime("%Y-%m-%d %H:%M")


def once_command(args: argparse.Namespace, ctx: Context) -> int:
    """One full cycle as of --now (the ledger's clock only); exit 1 when a step failed."""
    from shortage_watch.services.cycle import run_cycle

    app = _ready(ctx)
    if args.now:
        try:
            now = aware_instant(args.now, ctx.settings.timezone)
        except argparse.ArgumentTypeError as exc:
            raise option_error("--now", exc) from None
        app.clock = FixedClock(now)
    now = app.clock.now()
    # An operator asking for one cycle means every source now, whatever its interval.
    result = run_cycle(app.cycle_deps(), now, force_poll=True)
    sweep = result.sweep
    delivered = result.delivered
    summary = {
        "now": local_iso(now, app.calendar.tz),
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
        print(zh_en(_cycle_line(app, now, result, CYCLE_WORDS["zh"]), _cycle_line(app, now, result, CYCLE_WORDS["en"])))
        for outcome in result.polled:
            print(f"  {poll_line(outcome)}")
        for error in result.errors + (sweep.failed if sweep else []):
            print(f"  错误 error: {error}")
    return 0 if result.ok else 1


# The one-line summary of `once`, in each language (printed Chinese first).
CYCLE_WORDS = {
    "zh": {"line": "{at} 运行一轮：轮询 {polled} 个数据来源；{swept}；{sent}", "sep": "，",
           "sweep": "巡检：{obligations} 项报告义务，{cases} 个短缺案件，{alerts} 条新提醒", "sweep_failures": "，{failed} 项失败",
           "sweep_failed": "巡检失败", "delivery": "投递：", "nothing_due": "没有到期的邮件", "delivery_failed": "投递失败"},
    "en": {"line": "cycle at {at}: polled {polled} source(s); {swept}; {sent}", "sep": ", ",
           "sweep": "sweep: {obligations} obligation(s), {cases} case(s), {alerts} new alert(s)", "sweep_failures": ", {failed} failed",
           "sweep_failed": "sweep failed", "delivery": "delivery: ", "nothing_due": "nothing due", "delivery_failed": "delivery failed"},
}


def _cycle_line(app: Any, now: datetime, result: Any, words: dict[str, str]) -> str:
    """What one cycle did, in one language: sources polled, the sweep's counts, delivery's non-zero counts."""
    sweep = result.sweep
    swept = (words["sweep"].format(obligations=sweep.obligations, cases=sweep.cases, alerts=sweep.alerts)
             + (words["sweep_failures"].format(failed=len(sweep.failed)) if sweep.failed else "")) if sweep else words["sweep_failed"]
    if result.delivered is None:
        sent = words["delivery_failed"]
    else:
        counts = {k: v for k, v in (_plain(result.delivered) or {}).items() if isinstance(v, int) and v}
        sent = words["delivery"] + (words["sep"].join(f"{k} {v}" for k, v in counts.items()) or words["nothing_due"])
    return words["line"].format(at=_local(app, now), polled=len(result.polled), swept=swept, sent=sent)


def _plain(value: Any) -> Any:
    """A step's result as JSON-ready data."""
    if value is None:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    as_json = getattr(value, "as_json", None)
    return as_json() if callable(as_json) else str(value)


def _days_late(app: Any, ob: Obligation, now: datetime) -> int | None:
    """Working days late: as reported late, or overdue at `now` (at least 1 once past due)."""
    if ob.late_working_days is not None:
        return ob.late_working_days
    if ob.state in OBLIGATION_IN_FLIGHT:
        return overdue_working_days(app.calendar, ob.due_on, ob.due_at, now)
    return None


@dataclasses.dataclass(frozen=True)
class _About:
    """What an obligation is about, by name: from its notice or its case, and the directory."""

    distributor_name: str | None
    product_name: str | None
    notice_id: str | None


def _about(directory: Any, view: oq.ObligationView) -> _About:
    ob, notice, case = view.obligation, view.notice, view.case
    party = directory.distributor(ob.party_code)
    return _About(
        distributor_name=getattr(party, "name", None) or (notice.distributor_name if notice else None),
        product_name=(notice.product_name if notice else None) or (case.product_name if case else None),
        notice_id=notice.notice_id if notice else None,
    )


def _obligation_json(app: Any, ob: Obligation, about: _About, now: datetime) -> dict[str, Any]:
    tz = app.calendar.tz
    return {
        "id": ob.id,
        "case_number": case_number("O", ob.id),
        "kind": ob.kind,
        "subject": ob.subject_key,
        "distributor": ob.party_code,
        "distributor_name": about.distributor_name,
        "region": ob.region_code,
        "product": ob.product_code,
        "product_name": about.product_name,
        "notice_id": about.notice_id,
        "priority": ob.priority,
        "received_on": ob.received_on.isoformat(),
        "due_on": ob.due_on.isoformat(),
        "due_at": local_iso(ob.due_at, tz),
        "calendar": ob.calendar_status,
        "state": ob.state,
        "overdue_now": ob.state in OBLIGATION_IN_FLIGHT and now > ob.due_at,
        "working_days_late": _days_late(app, ob, now),
        "level": ob.level,
        "next_action_at": local_iso(ob.next_action_at, tz),
        "fulfilled_at": local_iso(ob.fulfilled_at, tz),
        "late_working_days": ob.late_working_days,
    }


def _party(name: str | None, code: str | None) -> str:
    return f"{name} ({code})" if name else (code or "-")


def obligations_list(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.store import officer_queries as oq

    app = _ready(ctx)
    if args.undeliverable:
        return _undeliverable(app, args)
    now = app.clock.now()
    directory = app.usable_directory()
    check_region(directory, args.region)
    with app.read_sessions() as session:
        views = oq.list_obligations(
            session, states=STATE_FILTERS[args.state] if args.state else None, distributor=args.distributor,
            regions=directory.region_and_below(args.region) if args.region else None, limit=args.limit)
    rows = [v.obligation for v in views]
    items = [_obligation_json(app, v.obligation, _about(directory, v), now) for v in views]
    if args.json:
        print(json.dumps(items, ensure_ascii=False))
        return 0
    lang, t = args.lang, TEXT[args.lang]
    if not items:
        print(t["none_obligations"])
        return 0
    headers = [t["number"], t["kind"], t["distributor"], t["product"], t["notice"], t["region"], t["due"], t["state"], t["late"]]
    lines = table(headers, [
        (item["case_number"], label("obligation_kind", ob.kind, lang), _party(item["distributor_name"], ob.party_code),
         item["product_name"] or ob.product_code, item["notice_id"], ob.region_code, local_minute(ob.due_at, app.calendar.tz),
         label("obligation_state", ObligationState.OVERDUE if item["overdue_now"] and ob.state == ObligationState.OPEN else ob.state, lang),
         item["working_days_late"])
        for ob, item in zip(rows, items)
    ])
    print("\n".join(lines))
    return 0


def _audit_json(event: AuditEvent, tz: Any) -> dict[str, Any]:
    return {"at": local_iso(event.at, tz), "actor": event.actor, "action": event.action, "detail": event.detail}


def _alert_json(alert: Alert, tz: Any) -> dict[str, Any]:
    return {
        "id": alert.id, "level": alert.level, "template": alert.template, "recipient_role": alert.recipient_role,
        "recipient_region": alert.recipient_region, "to": alert.recipient_email, "status": alert.status,
        "written_at": local_iso(alert.created_at, tz), "sent_at": local_iso(alert.sent_at, tz), "last_error": alert.last_error,
    }


def obligations_show(args: argparse.Namespace, ctx: Context) -> int:
    """One obligation: its record, deadline, each alert (recipient, sent time) and every audit event."""
    from shortage_watch.store import officer_queries as oq

    app = _ready(ctx)
    now, tz, directory = app.clock.now(), app.calendar.tz, app.usable_directory()
    with app.read_sessions() as session:
        detail = oq.read_obligation(session, args.id)
    if detail is None:
        raise not_found("O", args.id)
    ob, notice, report, events = detail.view.obligation, detail.view.notice, detail.report, detail.events
    about = _about(directory, detail.view)
    item = _obligation_json(app, ob, about, now)
    item["record"] = None if notice is None else {
        "notice_id": notice.notice_id, "manufacturer": notice.manufacturer, "product_code": notice.product_code,
        "product_name": notice.product_name, "specification": notice.specification, "kind": notice.kind,
        "notified_on": notice.notified_on.isoformat(), "priority_class": notice.priority_class, "reason": notice.reason,
        "received_at": local_iso(notice.received_at, tz), "source": notice.source,
    }
    item["report"] = None if report is None else {
        "report_id": report.report_id, "submitted_at": local_iso(report.submitted_at, tz), "source": report.source,
    }
    item["case"] = case_number("C", ob.case_id) if ob.case_id else None
    item["alerts"] = [_alert_json(a, tz) for a in detail.alerts]
    item["events"] = [_audit_json(e, tz) for e in events]
    if args.json:
        print(json.dumps(item, ensure_ascii=False, default=str))
        return 0
    lang, t = args.lang, TEXT[args.lang]
    print(f"{item['case_number']}  {label('obligation_kind', ob.kind, lang)}  {label('obligation_state', item['state'], lang)}")
    sep = t["sep"]
    print(f"  {t['distributor']}{sep}{_party(about.distributor_name, ob.party_code)}   {t['region']}{sep}{_region_name(directory, ob.region_code)}")
    record = item["record"]
    if record:
        print(f"  {t['product']}{sep}{record['product_name']} ({record['product_code']})   {t['notice']}{sep}{record['notice_id']}   "
              f"{t['manufacturer']}{sep}{record['manufacturer']}   {t['notice_kind']}{sep}{choice_label('kind', record['kind'], lang)}")
    elif item["case"]:
        print(f"  {t['product']}{sep}{about.product_name or ob.product_code}   {item['case']}")
    print(f"  {t['received']}{sep}{ob.received_on.isoformat()}   {t['deadline']}{sep}{local_minute(ob.due_at, tz)}"
          f" ({t['calendar']}{sep}{choice_label('calendar', ob.calendar_status, lang)})")
    if item["working_days_late"]:
        print(f"  {t['late']}{sep}{item['working_days_late']}")
    if item["report"]:
        print(f"  {t['report']}{sep}{item['report']['report_id']} @ {local_minute(report.submitted_at, tz)}")
    print(f"{t['timeline']}{sep.strip()}")
    timeline: list[tuple[datetime, int, str]] = []
    for event in events:
        timeline.append((event.at, 0, f"{label('action', event.action, lang)}{_event_detail(event, t, tz)}  ({event.actor})"))
    for alert in item["alerts"]:
        line = _alert_line(alert, lang, t, tz)
        timeline.append((datetime.fromisoformat(alert["written_at"]), 1, line))
    for at_, _, line in sorted(timeline, key=lambda entry: (entry[0], entry[1])):
        print(f"  {local_minute(at_, tz)}  {line}")
    return 0


def _alert_line(alert: dict[str, Any], lang: str, t: dict[str, str], tz: Any) -> str:
    to = alert["to"] or f"{alert['recipient_role']}@{alert['recipient_region'] or '-'}"
    return f"{label('template', alert['template'], lang)} ({alert['level']}) → {to}{t['sep']}{_alert_outcome(alert, lang, tz)}"


def _alert_outcome(alert: dict[str, Any], lang: str, tz: Any) -> str:
    """'已发送 2024-10-11 09:00' once sent; otherwise the outbox state (and its last error)."""
    if alert["sent_at"]:
        return f"{label('alert_status', 'sent', lang)} {local_minute(datetime.fromisoformat(alert['sent_at']), tz)}"
    error = f" ({alert['last_error']})" if alert["last_error"] else ""
    return label("alert_status", alert["status"], lang) + error


def _event_detail(event: AuditEvent, t: dict[str, str], tz: Any) -> str:
    detail = event.detail or {}
    if event.action == "levels":
        parts = []
        if detail.get("fired"):
            parts.append(f"{t['fired']}{t['sep']}{', '.join(detail['fired'])}")
        if detail.get("skipped"):
            parts.append(f"{t['skipped']}{t['sep']}{', '.join(detail['skipped'])}")
        return (" — " + "; ".join(parts)) if parts else ""
    shown = {k: v for k, v in detail.items() if v not in (None, "", [])}
    return (" — " + ", ".join(f"{k}={readable(v, tz)}" for k, v in shown.items())) if shown else ""


def _region_name(directory: Any, code: str | None) -> str:
    region = directory.region(code)
    return f"{region.name} ({code})" if region else (code or "-")


def _undeliverable(app: Any, args: argparse.Namespace) -> int:
    from shortage_watch.store import officer_queries as oq

    with app.read_sessions() as session:
        found = oq.undeliverable_alerts(session, limit=args.limit)
    items = [
        {
            "alert_id": a.id,
            "distributor": ob.party_code if ob else None,
            "region": ob.region_code if ob else a.recipient_region,
            "matter": a.thread_key,
            "level": a.level,
            "template": a.template,
            "recipient": f"{a.recipient_role}@{a.recipient_region or '-'}",
            "written_at": local_iso(a.created_at, app.calendar.tz),
        }
        for a, ob in ((u.alert, u.obligation) for u in found)
    ]
    if args.json:
        print(json.dumps(items, ensure_ascii=False))
        return 0
    if not items:
        print("没有无法投递的提醒 / no undeliverable alerts")
        return 0
    print("无法投递的提醒（目录中没有地址，也没有 directory.operations_email）/ undeliverable alerts (no address in the directory and no directory.operations_email):")
    for item in items:
        about = f" (配送企业 distributor {item['distributor']}, 区划 region {item['region'] or '-'})" if item["distributor"] else ""
        print(f"  #{item['alert_id']} {item['matter']}{about} {item['level']} ({item['template']}) -> {item['recipient']}"
              f"  {_local(app, datetime.fromisoformat(item['written_at']))}")
    return 0


def _case_json(app: Any, session: Any, case: ShortageCase) -> dict[str, Any]:
    from shortage_watch.services.cases import case_parts

    parts = case_parts(session, case)
    tz = app.calendar.tz
    return {
        "id": case.id,
        "case_number": case_number("C", case.id),
        "product_code": case.product_code,
        "product_name": case.product_name,
        "city_code": case.city_code,
        "city_name": getattr(app.usable_directory().region(case.city_code), "name", None),
        "state": case.state,
        "opened_at": local_iso(case.opened_at, tz),
        "regional_at": local_iso(case.regional_at, tz),
        "resolved_at": local_iso(case.resolved_at, tz),
        "resolution_note": case.resolution_note,
        "hospitals_open": sum(1 for p in parts if not p.closed),
        "hospitals": len(parts),
        "possible_false_shortages": sum(1 for p in parts if not p.closed and p.latest.cause == "procurement"),
        "next_action_at": local_iso(case.next_action_at, tz),
    }


def cases_list(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.store import officer_queries as oq

    app = _ready(ctx)
    directory = app.usable_directory()
    check_region(directory, args.region)
    with app.read_sessions() as session:
        cases = oq.list_cases(session, states=None if args.state == "active" else (args.state,),
                              regions=directory.region_and_below(args.region) if args.region else None)
        items = [_case_json(app, session, c) for c in cases]
    if args.json:
        print(json.dumps(items, ensure_ascii=False))
        return 0
    lang, t = args.lang, TEXT[args.lang]
    if not items:
        print(t["none_cases"])
        return 0
    headers = [t["number"], t["product"], t["city"], t["state"], t["hospitals"], t["false"]]
    print("\n".join(table(headers, [
        (c["case_number"], f"{c['product_name']} ({c['product_code']})", _party(c["city_name"], c["city_code"]),
         choice_label("case_state", c["state"], lang), f"{c['hospitals_open']}/{c['hospitals']}", c["possible_false_shortages"] or "")
        for c in items
    ])))
    return 0


def _load_case(session: Any, case_id: int) -> ShortageCase:
    from shortage_watch.store.tables import ShortageCase

    case = session.get(ShortageCase, case_id)
    if case is None:
        raise not_found("C", case_id)
    return case


def cases_show(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.cases import case_parts
    from shortage_watch.store import officer_queries as oq

    app = _ready(ctx)
    directory = app.usable_directory()
    tz = app.calendar.tz
    with app.read_sessions() as session:
        detail = oq.read_case(session, args.id)
        if detail is None:
            raise not_found("C", args.id)
        case = detail.case
        item = _case_json(app, session, case)
        parts = {p.hospital_code: p for p in case_parts(session, case)}
        item["reports"] = [
            {
                "hospital": r.hospital_code,
                "hospital_name": r.hospital_name or getattr(directory.hospital(r.hospital_code), "name", None),
                "region": r.region_code,
                "report_id": r.report_id,
                "reported_on": r.reported_on.isoformat(),
                "supply_status": r.supply_status,
                "cause": r.cause,
                "distributor": r.distributor_code,
                "part_closed": parts[r.hospital_code].closed,
            }
            for r in detail.reports
        ]
        item["notices"] = [
            {"notice_id": n.notice_id, "distributor": n.distributor_code, "manufacturer": n.manufacturer, "kind": n.kind,
             "notified_on": n.notified_on.isoformat()}
            for n in detail.notices
        ]
        item["obligations"] = [
            {"number": case_number("O", ob.id), "kind": ob.kind, "distributor": ob.party_code, "state": ob.state, "due_on": ob.due_on.isoformat()}
            for ob in detail.obligations
        ]
        item["alerts"] = [_alert_json(a, tz) for a in detail.alerts]
        item["history"] = [_audit_json(e, tz) for e in detail.events]
    if args.json:
        print(json.dumps(item, ensure_ascii=False, default=str))
        return 0
    lang, t = args.lang, TEXT[args.lang]
    sep = t["sep"]
    print(f"{item['case_number']}  {item['product_name']} ({item['product_code']})  {t['city']}{sep}{_party(item['city_name'], item['city_code'])}"
          f"  {t['state']}{sep}{choice_label('case_state', item['state'], lang)}")
    print(f"  {t['opened']} {_local(app, case.opened_at)}" + (f", {t['regional_since']} {_local(app, case.regional_at)}" if case.regional_at else "")
          + (f", {t['resolved']} {_local(app, case.resolved_at)}: {case.resolution_note}" if case.resolved_at else ""))
    print(f"{t['reports']}{sep.strip()}")
    for r in item["reports"]:
        closed = f" ({t['part_closed']})" if r["part_closed"] else ""
        print(f"  {r['reported_on']}  {_party(r['hospital_name'], r['hospital'])}  {choice_label('supply', r['supply_status'], lang)}"
              f"  {t['cause']}{sep}{choice_label('cause', r['cause'], lang) if r['cause'] else '-'}{closed}")
    print(f"{t['notices_title']}{sep.strip()}")
    if not item["notices"]:
        print(f"  {t['no_notice']}")
    for n in item["notices"]:
        print(f"  {t['notice']} {n['notice_id']} ({choice_label('kind', n['kind'], lang)}) {n['manufacturer']} → {n['distributor']}, {n['notified_on']}")
    if item["obligations"]:
        print(f"{t['obligations']}{sep.strip()}")
    for ob in item["obligations"]:
        print(f"  {ob['number']} {label('obligation_kind', ob['kind'], lang)} {ob['distributor']}{sep}{label('obligation_state', ob['state'], lang)}, {t['deadline']} {ob['due_on']}")
    print(f"{t['timeline']}{sep.strip()}")
    timeline = [(datetime.fromisoformat(a["written_at"]), 1, _alert_line(a, lang, t, tz)) for a in item["alerts"]]
    timeline += [(datetime.fromisoformat(h["at"]), 0, f"{label('action', h['action'], lang)}  ({h['actor']})") for h in item["history"]]
    for at_, _, line in sorted(timeline, key=lambda entry: (entry[0], entry[1])):
        print(f"  {local_minute(at_, tz)}  {line}")
    return 0


def cases_resolve(args: argparse.Namespace, ctx: Context) -> int:
    from shortage_watch.services.alerts import audit
    from shortage_watch.services.cases import case_parts, resolve_case

    app = _ready(ctx)
    now = app.clock.now()
    note = args.note.strip()
    number = case_number("C", args.id)
    if not note:
        raise CommandError("--note 须说明解决原因 / --note must say why the case is resolved")
    with app.sessions.begin() as session:
        case = _load_case(session, args.id)
        if case.state == CaseState.RESOLVED:
            raise CommandError(f"{number} 已解决 / case {number} is already resolved", exit_code=1)
        parts = case_parts(session, case)
        targets = [p.hospital_code for p in parts if not p.closed]
        if args.hospital:
            if args.hospital not in {p.hospital_code for p in parts}:
                raise CommandError(f"{number} 没有医疗机构 {args.hospital} 的直报 / case {number} has no report from hospital {args.hospital}")
            targets = [args.hospital]
        for code in targets:
            audit(session, at=now, actor=args.by, entity="case", entity_id=case.id, action="part_closed", detail={"hospital_code": code, "note": note})
        session.flush()
        remaining = [p for p in case_parts(session, case) if not p.closed]
        if not remaining:
            resolve_case(session, case, now, actor=args.by, note=note)
    if remaining:
        print(f"{number}: 已关闭 {', '.join(targets)}，仍有 {len(remaining)} 家医疗机构短缺 / closed {', '.join(targets)}; {len(remaining)} hospital(s) still short")
    else:
        print(f"{number} 已解决 / case {number} resolved")
    return 0


def compliance_rows(app: Any, since: date | None, now: datetime, region: str | None = None,
                    until: date | None = None) -> list[dict[str, Any]]:
    """Per distributor: report obligations due in [since, until], on time, late, overdue now, not yet due
    (store/compliance.py: the monthly summary's and the dashboard's definition), and the median
    working days from receipt to report."""
    from shortage_watch.store.compliance import compliance_by_distributor, report_turnarounds

    calendar = app.calendar
    directory = app.usable_directory()
    regions = directory.region_and_below(region) if region else None
    with app.read_sessions() as session:
        counts = compliance_by_distributor(session, regions, due_from=since, due_to=until, now=now)
        turnarounds = report_turnarounds(session, regions, due_from=since, due_to=until)
    days: dict[str, list[int]] = defaultdict(list)
    for t in turnarounds:
        days[t.distributor_code].append(calendar.working_days_between(t.received_on, calendar.local_date(t.fulfilled_at)))
    return [
        {
            "distributor": r.distributor_code,
            "name": getattr(directory.distributor(r.distributor_code), "name", None),
            "notices": r.obligations,
            "on_time": r.on_time,
            "late": r.late,
            "overdue": r.overdue,
            "open": r.open,
            "median_working_days": statistics.median(days[r.distributor_code]) if days[r.distributor_code] else None,
        }
        for r in counts
    ]


def compliance_command(args: argparse.Namespace, ctx: Context) -> int:

    app = _ready(ctx)
    check_region(app.usable_directory(), args.region)
    if args.since and args.until and args.until < args.since:
        raise CommandError(f"--until {args.until} 早于 --since {args.since} / --until is before --since")
    rows = compliance_rows(app, args.since, app.clock.now(), args.region, args.until)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    t = TEXT[args.lang]
    if not rows:
        window = " ".join(part for part in (f"{t['since']} {args.since}" if args.since else "",
                                            f"{t['until']} {args.until}" if args.until else "") if part)
        print(t["none_compliance"] + (f" ({window})" if window else ""))
        return 0
    headers = [t["distributor"], t["notices"], t["on_time"], t["late_count"], t["overdue"], t["open"], t["median"]]
    print("\n".join(table(headers, [
        (_party(r["name"], r["distributor"]), r["notices"], r["on_time"], r["late"], r["overdue"], r["open"],
         "-" if r["median_working_days"] is None else f"{r['median_working_days']:g}")
        for r in rows
    ])))
    return 0
