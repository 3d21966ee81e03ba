"""The bureau dashboard (/bureau): overview, lists with exports, detail pages with timelines, 约谈材料.

Every page asks for a logged-in officer and reads through store/dashboard_queries.py with
the officer's regions (its region and every region below it): a row of another region is
never read, so no page, chart, export or detail can show it; an id outside the regions
answers 404 as if it did not exist. The only writes are the officer actions in
services/bureau_actions.py, each audited with the officer's account.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from markupsafe import Markup

from shortage_watch.domain.cases import hospital_parts, operator_closures_of, report_view
from shortage_watch.domain.labels import LABELS, label as label_of
from shortage_watch.domain.obligations import case_number
from shortage_watch.domain.states import OBLIGATION_FINISHED, ObligationState
from shortage_watch.exports import table_csv, table_xlsx
from shortage_watch.services import dashboard as views
from shortage_watch.services.accounts import WebUser
from shortage_watch.services.alerts import audit
from shortage_watch.services.bureau_actions import OFFLINE_KINDS, ActionError, close_case_parts, record_offline_action
from shortage_watch.store.compliance import compliance_by_distributor
from shortage_watch.store import dashboard_queries as q
from shortage_watch.store import officer_actions
from shortage_watch.store.tables import Alert, AuditEvent, OfficerAction, ShortageCase
from shortage_watch.web import charts
from shortage_watch.web.api import MAX_ID, representable
from shortage_watch.web.portal import _form, _text, render
from shortage_watch.web.security import require_role

if TYPE_CHECKING:
    from shortage_watch.app import App

router = APIRouter(prefix="/bureau", include_in_schema=False)
officer = require_role("officer")
PAGE_SIZE = 50
EXPORT_FORMATS = ("csv", "xlsx")
BUREAU_LABELS = {"insurance": "医疗保障局", "health": "卫生健康委员会"}


def _app(request: Request) -> "App":
    return request.app.state.app


def _regions(request: Request, user: WebUser, narrow_to: str | None = None) -> frozenset[str]:
    return views.officer_regions(_app(request).directory, user.region_code or "", narrow_to)


def _date(value: str | None, label: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise HTTPException(422, f"{label}应为 YYYY-MM-DD 格式的日期 / {label}: a date YYYY-MM-DD is expected, got {value!r}") from None


def _instant(value: str | None, tz: tzinfo) -> datetime | None:
    """An aware instant from a filter, which the list states in `tz`; 422 for anything else."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"时间点格式无效 / not an ISO instant: {value!r}") from None
    if parsed.tzinfo is None:
        raise HTTPException(422, "时间点须带时区 / the instant needs a time zone")
    if not representable(parsed, tz):
        raise HTTPException(422, f"时间点超出可表示的时间范围 / the instant is outside the range of dates: {value!r}")
    return parsed


def _bool(value: str | None) -> bool | None:
    return {"1": True, "yes": True, "0": False, "no": False}.get((value or "").strip().lower())


def _choice(value: str | None, allowed: Iterable[str], label: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise HTTPException(422, f"{label}无效：{value} / invalid {label}: {value!r}")
    return value


def _row_id(value: str, missing: str) -> int:
    """A row id from the path; 404 (`missing`) for anything that cannot name a row."""
    if not value.isdigit() or not 0 < int(value) <= MAX_ID:
        raise HTTPException(404, missing)
    return int(value)


NO_OBLIGATION = "没有这项报告义务，或不在您的辖区 / no such obligation in your regions"
NOT_THEIRS = "报告义务 {number} 不是配送企业 {code} 的，未记录 / obligation {number} is not distributor {code}'s: nothing recorded"
NO_CASE = "没有这个短缺案件，或不在您的辖区 / no such case in your regions"


def _page(request: Request) -> int:
    raw = request.query_params.get("page") or "1"
    return int(raw) if raw.isdigit() and int(raw) > 0 else 1


def _query(request: Request, **changes: Any) -> str:
    """This list's query string with `changes` (None removes a key)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return urlencode({k: v for k, v in params.items() if v != ""})


def _local_text(app: "App", instant: datetime | None) -> str:
    return instant.astimezone(app.calendar.tz).strftime("%Y-%m-%d %H:%M") if instant else ""


# ---------------------------------------------------------------- overview


@router.get("/")
def overview(request: Request, user: WebUser = Depends(officer)) -> HTMLResponse:
    app = _app(request)
    now = app.clock.now()
    regions = _regions(request, user)
    with app.read_sessions() as session:
        page = views.read_overview_page(session, app.calendar, regions, now)
    first, last = page.month
    cards = [
        ("未办结报告义务", "Open obligations", page.cards.open_obligations, "/bureau/obligations?state=open"),
        ("当前逾期", "Overdue now", page.cards.overdue_now, "/bureau/obligations?state=overdue"),
        ("两个工作日内到期", "Due within 2 working days", page.cards.due_soon, "/bureau/obligations?state=due_soon"),
        ("未解决短缺案件", "Open shortage cases", page.cards.open_cases, "/bureau/cases?status=active"),
        ("区域性短缺", "Regional shortages", page.cards.regional_cases, "/bureau/cases?status=active&regional=1"),
        ("本月迟报或逾期的配送企业", "Distributors late this month", page.cards.distributors_late,
         f"/bureau/compliance?due_from={first}&due_to={last}&late_only=1"),
    ]
    tz = app.calendar.tz
    weekly = charts.line_chart(
        "近90天（按周）", [
            ("逾期报告义务", charts.OVERDUE_COLOUR, [
                charts.Point(p.at.astimezone(tz).strftime("%m-%d"), p.overdue_obligations,
                             "/bureau/obligations?" + urlencode({"overdue_at": p.at.isoformat()}),
                             f"{p.at.astimezone(tz):%Y-%m-%d}：逾期 {p.overdue_obligations} 项 / overdue")
                for p in page.weeks]),
            ("未解决短缺", charts.SHORTAGE_COLOUR, [
                charts.Point(p.at.astimezone(tz).strftime("%m-%d"), p.open_shortages,
                             "/bureau/cases?" + urlencode({"open_at": p.at.isoformat()}),
                             f"{p.at.astimezone(tz):%Y-%m-%d}：未解决短缺 {p.open_shortages} 件 / open shortages")
                for p in page.weeks]),
        ], "逾期报告义务与未解决短缺，近90天 / overdue obligations and open shortages, last 90 days")
    monthly = charts.bar_chart("按月按时报告率", [
        charts.Point(f"{m.first:%y-%m}", m.on_time_rate, f"/bureau/compliance?due_from={m.first}&due_to={m.last}",
                     f"{m.first:%Y-%m}：按时 {m.on_time}，迟报 {m.late}，逾期 {m.overdue}" + ("" if m.on_time_rate is not None else "（无到期义务）"))
        for m in page.months], "按月按时报告率 / on-time rate by month")
    return render(request, "bureau/overview.html", cards=cards, weekly=Markup(weekly), monthly=Markup(monthly),
                  region=app.directory.region(user.region_code), bureau=BUREAU_LABELS.get(user.bureau or "", ""),
                  due_soon_until=page.due_soon_until, now=now)


# ---------------------------------------------------------------- lists and exports


@dataclass(frozen=True)
class Filter:
    name: str
    label: str
    kind: str  # text | date | select
    options: tuple[tuple[str, str], ...] = ()


@dataclass
class Listing:
    title: str
    filters: list[Filter]
    sorts: list[tuple[str, str]]
    headers: list[str]
    export_rows: Callable[[], Iterable[list[Any]]]
    page_rows: list[list[Any]]
    links: list[str | None]  # the detail page of each page row
    total: int
    pages: int
    note: str = ""


def _list_response(request: Request, listing: Listing, fmt: str | None) -> Response:
    if fmt == "csv":
        return Response(table_csv(listing.headers, listing.export_rows()), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": _attachment(f"{listing.title}.csv")})
    if fmt == "xlsx":
        return Response(table_xlsx(listing.title, listing.headers, listing.export_rows()),
                        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": _attachment(f"{listing.title}.xlsx")})
    app = _app(request)
    rows = [[_local_text(app, v) if isinstance(v, datetime) else ("是" if v is True else "否" if v is False else ("" if v is None else v)) for v in row]
            for row in listing.page_rows]
    page = _page(request)
    return render(request, "bureau/list.html", listing=listing, rows=zip(rows, listing.links), page=page,
                  values=request.query_params, query=lambda **kw: _query(request, **kw))


def _attachment(filename: str) -> str:
    from urllib.parse import quote

    return f"attachment; filename=\"export.{filename.rsplit('.', 1)[1]}\"; filename*=UTF-8''{quote(filename)}"


def _format(request: Request) -> str | None:
    return _choice(request.query_params.get("format"), EXPORT_FORMATS, "导出格式")


def _read_rows(app: "App", request: Request, fmt: str | None, table: Callable[[Session], Iterable[list[Any]]],
               page: Callable[[Session, int], q.Page]) -> tuple[Callable[[], Iterable[list[Any]]], q.Page]:
    """The export's rows (read while the file is written) and, for the page view, one page of rows."""

    def export_rows() -> Iterable[list[Any]]:
        with app.read_sessions() as session:
            yield from table(session)

    if fmt is not None:
        return export_rows, q.Page([], 0, 1, PAGE_SIZE)
    with app.read_sessions() as session:
        return export_rows, page(session, _page(request))


# Filters, not states: "open" lists every obligation still owed (open or overdue), "overdue" those past due now.
STATE_OPTIONS = (("open", "未办结"), ("overdue", "当前逾期"), ("due_soon", "两个工作日内到期")) + tuple(
    (state, views.STATE_LABELS[state]) for state in OBLIGATION_FINISHED)
PRIORITY_OPTIONS = tuple(views.PRIORITY_LABELS.items()) + (("priority", "任一优先类别"),)
SORT_DIRECTIONS = (("", "升序"), ("1", "降序"))


def _region_options(request: Request, user: WebUser) -> tuple[tuple[str, str], ...]:
    directory = _app(request).directory
    codes = _regions(request, user)
    return tuple((c, directory.region(c).name) for c in sorted(codes))


@router.get("/obligations")
def obligations(request: Request, user: WebUser = Depends(officer)) -> Response:
    app = _app(request)
    now = app.clock.now()
    p = request.query_params
    narrow = _choice(p.get("region"), _regions(request, user), "地区")
    regions = _regions(request, user, narrow)
    flt = q.ObligationFilter(
        state=_choice(p.get("state"), q.OBLIGATION_STATES, "状态"), distributor=p.get("distributor") or None, drug=p.get("drug") or None,
        due_from=_date(p.get("due_from"), "截止日期起"), due_to=_date(p.get("due_to"), "截止日期止"),
        priority_class=_choice(p.get("priority_class"), [k for k, _ in PRIORITY_OPTIONS], "药品类别"),
        due_soon_until=views.due_soon_until(app.calendar, now), overdue_at=_instant(p.get("overdue_at"), app.calendar.tz),
    )
    sort = _choice(p.get("sort"), q.OBLIGATION_SORTS, "排序") or "due"
    descending = p.get("desc") == "1"
    fmt = _format(request)
    directory, calendar = app.directory, app.calendar

    export_rows, found = _read_rows(
        app, request, fmt, lambda session: views.obligation_table(directory, calendar, q.iter_obligations(session, regions, flt, now=now, sort=sort, descending=descending)),
        lambda session, page: q.list_obligations(session, regions, flt, now=now, sort=sort, descending=descending, page=page, page_size=PAGE_SIZE))
    listing = Listing(
        title="报告义务", filters=[
            Filter("state", "状态", "select", STATE_OPTIONS), Filter("distributor", "配送企业编码", "text"), Filter("drug", "药品（编码或名称）", "text"),
            Filter("region", "地区", "select", _region_options(request, user)), Filter("due_from", "截止日期起", "date"),
            Filter("due_to", "截止日期止", "date"), Filter("priority_class", "药品类别", "select", PRIORITY_OPTIONS),
        ],
        sorts=[("due", "截止时间"), ("received", "收到通知日期"), ("distributor", "配送企业"), ("region", "地区"), ("state", "状态"), ("number", "编号")],
        headers=views.OBLIGATION_HEADERS, export_rows=export_rows,
        page_rows=list(views.obligation_table(directory, calendar, found.items)), links=[f"/bureau/obligations/{r.id}" for r in found.items],
        total=found.total, pages=found.pages,
        note=f"截至 {flt.overdue_at.astimezone(calendar.tz):%Y-%m-%d %H:%M} 时逾期的报告义务" if flt.overdue_at else "",
    )
    return _list_response(request, listing, fmt)


CASE_STATUS_OPTIONS = (("active", "未解决"),) + tuple(views.CASE_STATE_LABELS.items())
YES_NO = (("1", "是"), ("0", "否"))


@router.get("/cases")
def cases(request: Request, user: WebUser = Depends(officer)) -> Response:
    app = _app(request)
    p = request.query_params
    regions = _regions(request, user)
    flt = q.CaseFilter(
        status=_choice(p.get("status"), q.CASE_STATUSES, "状态"), drug=p.get("drug") or None, city=p.get("city") or None,
        regional=_bool(p.get("regional")), false_shortage=_bool(p.get("false_shortage")), open_at=_instant(p.get("open_at"), app.calendar.tz),
    )
    sort = _choice(p.get("sort"), q.CASE_SORTS, "排序") or "opened"
    descending = p.get("desc", "1") == "1"
    fmt = _format(request)
    directory, calendar = app.directory, app.calendar

    export_rows, found = _read_rows(
        app, request, fmt, lambda session: views.case_table(directory, calendar, q.iter_cases(session, regions, flt, sort=sort, descending=descending)),
        lambda session, page: q.list_cases(session, regions, flt, sort=sort, descending=descending, page=page, page_size=PAGE_SIZE))
    cities = tuple((c, directory.region(c).name) for c in sorted(regions) if directory.city_of(c) and directory.city_of(c).code == c)
    listing = Listing(
        title="短缺案件", filters=[
            Filter("status", "状态", "select", CASE_STATUS_OPTIONS), Filter("drug", "药品（编码或名称）", "text"), Filter("city", "城市", "select", cities),
            Filter("regional", "区域性短缺", "select", YES_NO), Filter("false_shortage", "疑似假短缺（采购原因）", "select", YES_NO),
        ],
        sorts=[("opened", "立案时间"), ("drug", "药品"), ("city", "城市"), ("status", "状态"), ("number", "编号")],
        headers=views.CASE_HEADERS, export_rows=export_rows,
        page_rows=list(views.case_table(directory, calendar, found.items)), links=[f"/bureau/cases/{r.id}" for r in found.items],
        total=found.total, pages=found.pages,
        note=f"截至 {flt.open_at.astimezone(calendar.tz):%Y-%m-%d %H:%M} 时未解决的短缺案件" if flt.open_at else "",
    )
    return _list_response(request, listing, fmt)


@router.get("/notices")
def notices(request: Request, user: WebUser = Depends(officer)) -> Response:
    app = _app(request)
    p = request.query_params
    regions = _regions(request, user)
    flt = q.NoticeFilter(
        drug=p.get("drug") or None, distributor=p.get("distributor") or None, manufacturer=p.get("manufacturer") or None,
        kind=_choice(p.get("kind"), views.NOTICE_KIND_LABELS, "类型"), priority_class=_choice(p.get("priority_class"), views.PRIORITY_LABELS, "药品类别"),
        notified_from=_date(p.get("notified_from"), "通知日期起"), notified_to=_date(p.get("notified_to"), "通知日期止"),
    )
    sort = _choice(p.get("sort"), q.NOTICE_SORTS, "排序") or "notified"
    descending = p.get("desc", "1") == "1"
    fmt = _format(request)
    directory = app.directory

    export_rows, found = _read_rows(
        app, request, fmt, lambda session: views.notice_table(directory, q.iter_notices(session, regions, flt, sort=sort, descending=descending)),
        lambda session, page: q.list_notices(session, regions, flt, sort=sort, descending=descending, page=page, page_size=PAGE_SIZE))
    listing = Listing(
        title="停产断供通知", filters=[
            Filter("drug", "药品（编码或名称）", "text"), Filter("distributor", "配送企业编码", "text"), Filter("manufacturer", "生产企业", "text"),
            Filter("kind", "类型", "select", tuple(views.NOTICE_KIND_LABELS.items())),
            Filter("priority_class", "药品类别", "select", tuple(views.PRIORITY_LABELS.items())),
            Filter("notified_from", "通知日期起", "date"), Filter("notified_to", "通知日期止", "date"),
        ],
        sorts=[("notified", "通知日期"), ("drug", "药品"), ("distributor", "配送企业"), ("manufacturer", "生产企业")],
        headers=views.NOTICE_HEADERS, export_rows=export_rows,
        page_rows=list(views.notice_table(directory, found.items)),
        links=[f"/bureau/obligations/{r.obligation_id}" if r.obligation_id else None for r in found.items], total=found.total, pages=found.pages,
    )
    return _list_response(request, listing, fmt)


@router.get("/compliance")
def compliance(request: Request, user: WebUser = Depends(officer)) -> Response:
    app = _app(request)
    now = app.clock.now()
    p = request.query_params
    regions = _regions(request, user)
    first, last = views.month_bounds(app.calendar.local_date(now))
    due_from = _date(p.get("due_from"), "截止日期起") if "due_from" in p else first
    due_to = _date(p.get("due_to"), "截止日期止") if "due_to" in p else last
    with app.read_sessions() as session:
        rows = compliance_by_distributor(session, regions, due_from=due_from, due_to=due_to, now=now)
    if p.get("late_only") == "1":
        rows = [r for r in rows if r.late or r.overdue]
    page = _page(request)
    shown = rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    listing = Listing(
        title="配送企业履约情况", filters=[Filter("due_from", "截止日期起", "date"), Filter("due_to", "截止日期止", "date"),
                                   Filter("late_only", "只看迟报或逾期", "select", (("1", "是"),))],
        sorts=[], headers=views.COMPLIANCE_HEADERS, export_rows=lambda: views.compliance_table(app.directory, rows),
        page_rows=list(views.compliance_table(app.directory, shown)), links=[f"/bureau/distributors/{r.distributor_code}" for r in shown],
        total=len(rows), pages=max(1, -(-len(rows) // PAGE_SIZE)),
        note=f"截止日期在 {due_from or '…'} 至 {due_to or '…'} 之间的报告义务（与月度汇总同一口径）",
    )
    return _list_response(request, listing, _format(request))


# ---------------------------------------------------------------- detail pages


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    what: str
    who: str = ""
    css: str = ""


ALERT_STATUS_LABELS = {
    "sent": "已发送", "pending": "待发送", "sending": "发送中", "dead": "发送失败", "undeliverable": "无法投递", "digest": "待并入每日摘要",
    "digested": "已并入每日摘要", "held": "暂缓（静默）", "inhibited": "已抑制（案件已上报省级）", "stale": "已过时，未发送", "superseded": "已被取代，未发送",
}


def _alert_entry(alert: Alert) -> TimelineEntry:
    to = alert.recipient_email or f"{alert.recipient_role}@{alert.recipient_region or '-'}（无地址 / undeliverable）"
    status = ALERT_STATUS_LABELS.get(alert.status, alert.status)
    # The ladder level is named only when the step's mail is another's template.
    level = "" if alert.level == alert.template else f"（{label_of('step', alert.level)}）"
    return TimelineEntry(alert.sent_at or alert.created_at, f"邮件 {label_of('step', alert.template)}{level} → {to}：{status}", "系统", "mail")


EVENT_LABELS = LABELS["event"]["zh-CN"]


SUPPLY_LABELS = LABELS["supply"]["zh-CN"]
CAUSE_LABELS = LABELS["cause"]["zh-CN"]


def _event_entry(event: AuditEvent, hospital_name: Callable[[str], str] = str) -> TimelineEntry:
    detail = event.detail or {}
    if event.action in ("part_closed", "resolved"):
        who = f"{hospital_name(detail['hospital_code'])} 部分已关闭" if event.action == "part_closed" else "案件已解决"
        return TimelineEntry(event.at, f"{who}：{detail.get('note') or ''}", event.actor, "officer" if event.actor.startswith("web:") else "")
    extra = "；".join(f"{k}: {v}" for k, v in detail.items() if v not in (None, "", [], {}))
    what = EVENT_LABELS.get(event.action, event.action) + (f"（{extra}）" if extra else "")
    return TimelineEntry(event.at, what, event.actor, "officer" if event.actor.startswith("web:") else "")


def _action_entry(action: OfficerAction) -> TimelineEntry:
    return TimelineEntry(action.recorded_at, f"线下{OFFLINE_KINDS.get(action.kind, action.kind)}（{action.done_on}）：{action.note}", action.actor, "officer")


def _calendar_months(calendar: Any, received: date, due: date, today: date) -> list[dict[str, Any]]:
    """Month grids from the receipt to the deadline: each day working, rest, 调休 make-up day or statutory holiday."""
    months = []
    cursor = received.replace(day=1)
    counted = 0
    while cursor <= due.replace(day=1):
        arrangement = calendar.arrangement(cursor.year)
        first, last = views.month_bounds(cursor)
        weeks: list[list[dict[str, Any] | None]] = [[None] * first.weekday()]
        day = first
        while day <= last:
            working = calendar.is_working_day(day)
            tags = []
            if day in arrangement.makeup_workdays:
                tags.append("调休上班")
            elif day in arrangement.rest_weekdays:
                tags.append("法定节假日")
            if received < day <= due and working:
                counted += 1
            weeks[-1].append({
                "day": day.day, "working": working, "tags": tags, "received": day == received, "due": day == due, "today": day == today,
                "count": counted if received < day <= due and working else None,
            })
            if len(weeks[-1]) == 7:
                weeks.append([])
            day += timedelta(days=1)
        weeks[-1] += [None] * (7 - len(weeks[-1]))
        months.append({"title": f"{cursor.year}年{cursor.month}月", "weeks": [w for w in weeks if any(w)], "status": arrangement.status.value})
        cursor = last + timedelta(days=1)
    return months


@router.get("/obligations/{obligation_id}")
def obligation_detail(request: Request, obligation_id: str, user: WebUser = Depends(officer)) -> HTMLResponse:
    app = _app(request)
    now = app.clock.now()
    number = _row_id(obligation_id, NO_OBLIGATION)
    regions = _regions(request, user)
    with app.read_sessions() as session:
        detail = q.read_obligation(session, regions, number, now=now)
        if detail is None:
            raise HTTPException(404, NO_OBLIGATION)
        actions = officer_actions.actions_on_obligation(session, number, regions)
    ob = detail.obligation
    timeline = [TimelineEntry(detail.opened_at, f"收到停产断供通知，生成报告义务，截止 {_local_text(app, ob.due_at)}", "系统")]
    timeline += [_alert_entry(a) for a in detail.alerts] + [_event_entry(e) for e in detail.events if e.action != "opened"] + [_action_entry(a) for a in actions]
    if detail.report is not None:
        late = f"，迟报 {ob.late_working_days} 个工作日" if ob.late_working_days else "，按时"
        timeline.append(TimelineEntry(detail.report.submitted_at, f"配送企业书面反馈 {detail.report.report_id}{late}", ob.party_code))
    timeline.sort(key=lambda e: e.at)
    return render(request, "bureau/obligation.html", ob=ob, detail=detail, timeline=timeline,
                  months=_calendar_months(app.calendar, ob.received_on, ob.due_on, app.calendar.local_date(now)),
                  distributor=app.directory.distributor(ob.party_code), region=app.directory.region(ob.region_code),
                  offline_kinds=OFFLINE_KINDS, today=app.calendar.local_date(now))


def _case_page(request: Request, user: WebUser, case_id: int, error: str | None = None, status: int = 200) -> HTMLResponse:
    """The case's page as the officer's regions see it (404 outside them)."""
    app = _app(request)
    now = app.clock.now()
    with app.read_sessions() as session:
        detail = q.read_case(session, _regions(request, user), case_id, now=now)
    if detail is None:
        raise HTTPException(404, NO_CASE)
    timeline = [TimelineEntry(detail.case.opened_at, "医疗机构上报短缺，立案", "系统")]
    directory = app.directory

    def hospital_name(code: str) -> str:
        return getattr(directory.hospital(code), "name", None) or code

    timeline += [
        TimelineEntry(r.received_at, f"{r.hospital_name or hospital_name(r.hospital_code)} 上报：{SUPPLY_LABELS.get(r.supply_status, r.supply_status)}，"
                                     f"原因 {CAUSE_LABELS.get(r.cause or '', r.cause or '未注明')}", r.hospital_code)
        for r in detail.reports
    ]
    timeline += [_alert_entry(a) for a in detail.alerts] + [_event_entry(e, hospital_name) for e in detail.events]
    timeline.sort(key=lambda e: e.at)
    hospitals = {}
    for r in detail.reports:
        hospitals[r.hospital_code] = r  # the latest report of each hospital (ordered by date)
    # Closed as the ledger counts it: a hospital that reported again after an officer closed its part is open again.
    closures = operator_closures_of((e.at, e.detail) for e in detail.events if e.action == "part_closed")
    closed = {part.hospital_code for part in hospital_parts([report_view(r) for r in detail.reports], closures) if part.closed}
    return render(request, "bureau/case.html", status=status, detail=detail, timeline=timeline, hospitals=list(hospitals.values()),
                  closed=closed, city=app.directory.region(detail.case.city_code), directory=app.directory, error=error,
                  number=lambda i: case_number("O", i))


@router.get("/cases/{case_id}")
def case_detail(request: Request, case_id: str, user: WebUser = Depends(officer)) -> HTMLResponse:
    return _case_page(request, user, _row_id(case_id, NO_CASE))


@router.post("/cases/{case_id}/resolve")
async def resolve(request: Request, case_id: str, user: WebUser = Depends(officer)) -> Response:
    form = await _form(request)
    number = _row_id(case_id, NO_CASE)
    app = _app(request)
    now = app.clock.now()
    regions = _regions(request, user)
    with app.sessions.begin() as session:
        detail = q.read_case(session, regions, number, now=now)
        if detail is None:
            raise HTTPException(404, NO_CASE)
        case = session.get(ShortageCase, number)
        try:
            close_case_parts(session, case, hospitals_in_scope={r.hospital_code for r in detail.reports}, hospital=_text(form, "hospital") or None,
                             note=_text(form, "note"), actor=user.actor, now=now)
        except ActionError as exc:
            session.rollback()
            error = str(exc)
        else:
            error = None
    if error:
        return _case_page(request, user, number, error=error, status=422)
    return RedirectResponse(f"/bureau/cases/{number}#timeline", status_code=303)


def _distributor_summary(request: Request, user: WebUser, code: str) -> views.DistributorSummary:
    app = _app(request)
    with app.read_sessions() as session:
        summary = views.read_distributor_summary(session, app.calendar, _regions(request, user), code, app.clock.now())
    if summary is None:
        raise HTTPException(404, "该配送企业在您的辖区没有报告义务 / this distributor owes nothing in your regions")
    return summary


def _offline_actions(request: Request, user: WebUser, code: str) -> list[OfficerAction]:
    with _app(request).read_sessions() as session:
        return officer_actions.actions_on_distributor(session, code, _regions(request, user))


def _action_date(text: str) -> date | None:
    """The day an offline action was done, from the form; None when left empty (the service says it is
    required); ActionError naming what was typed when it is no real day."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ActionError(f"日期无效：{text}（没有这一天，请按 YYYY-MM-DD 填写） / invalid date {text!r}: no such day, give it as YYYY-MM-DD") from None


def _distributor_view(request: Request, user: WebUser, code: str, *, status: int = 200, error: str | None = None,
                      typed: dict[str, str] | None = None) -> HTMLResponse:
    """The distributor's page; a refused offline-action form comes back with `error` and what was `typed`."""
    app = _app(request)
    summary = _distributor_summary(request, user, code)
    return render(request, "bureau/distributor.html", status=status, summary=summary, party=app.directory.distributor(code), code=code,
                  actions=_offline_actions(request, user, code), offline_kinds=OFFLINE_KINDS, error=error, typed=typed,
                  today=app.calendar.local_date(app.clock.now()), region_name=lambda c: getattr(app.directory.region(c), "name", c or ""))


@router.get("/distributors/{code}")
def distributor_page(request: Request, code: str, user: WebUser = Depends(officer)) -> HTMLResponse:
    # No error message from the address: a link must not make the page say what its sender wrote.
    return _distributor_view(request, user, code)


@router.post("/distributors/{code}/actions")
async def record_action(request: Request, code: str, user: WebUser = Depends(officer)) -> Response:
    form = await _form(request)
    app = _app(request)
    now = app.clock.now()
    _distributor_summary(request, user, code)  # 404 outside the officer's regions
    obligation_field = _text(form, "obligation_id")
    obligation_id = _row_id(obligation_field, NO_OBLIGATION) if obligation_field else None
    typed = {key: _text(form, key) for key in ("kind", "done_on", "note", "obligation_id")}
    try:
        done_on = _action_date(typed["done_on"])
        with app.sessions.begin() as session:
            if obligation_id:
                detail = q.read_obligation(session, _regions(request, user), obligation_id, now=now)
                if detail is None:
                    raise ActionError(NO_OBLIGATION)
                if detail.obligation.party_code != code:
                    raise ActionError(NOT_THEIRS.format(number=case_number("O", obligation_id), code=code))
            record_offline_action(session, kind=typed["kind"], distributor_code=code, region_code=user.region_code or "",
                                  obligation_id=obligation_id, done_on=done_on, note=typed["note"],
                                  actor=user.actor, account_id=user.id, now=now, today=app.calendar.local_date(now))
    except ActionError as exc:
        return _distributor_view(request, user, code, status=422, error=str(exc), typed=typed)
    target = f"/bureau/obligations/{obligation_id}" if obligation_id else f"/bureau/distributors/{code}"
    return RedirectResponse(target, status_code=303)


def interview_material(app: "App", user: WebUser, summary: views.DistributorSummary, actions: list[OfficerAction], now: datetime) -> dict[str, Any]:
    """The 约谈材料's content: plain data, from which the page is drawn and the checksum computed."""
    directory = app.directory
    party = directory.distributor(summary.history.distributor_code)
    late = [r for r in summary.history.obligations if r.kind == "report" and (r.state == ObligationState.FULFILLED_LATE or r.overdue_now)]
    return {
        "distributor": {"code": summary.history.distributor_code, "name": party.name if party else None,
                        "region": getattr(directory.region(party.region_code if party else None), "name", None)},
        "prepared_by": {"account": user.name, "region": getattr(directory.region(user.region_code), "name", user.region_code),
                        "bureau": BUREAU_LABELS.get(user.bureau or "", "")},
        "prepared_at": _local_text(app, now),
        "figures": {
            "obligations": sum(1 for r in summary.history.obligations if r.kind == "report"),
            "late_or_overdue": len(late),
            "on_time_rate": None if summary.on_time_rate is None else round(summary.on_time_rate, 4),
            "median_working_days": summary.median_working_days,
        },
        "obligations": [
            {"number": r.number, "notice_id": r.notice_id, "drug": r.product_name or r.product_code, "manufacturer": r.manufacturer,
             "received_on": r.received_on.isoformat(), "due": _local_text(app, r.due_at), "state": views.STATE_LABELS.get(r.state, r.state),
             "overdue_now": r.overdue_now, "reported_at": _local_text(app, r.fulfilled_at), "late_working_days": r.late_working_days}
            for r in sorted(summary.history.obligations, key=lambda r: (r.received_on, r.id))
        ],
        "written_reminders": [{"at": _local_text(app, a.sent_at or a.created_at), "obligation": case_number("O", a.obligation_id), "to": a.recipient_email}
                              for a in summary.reminders],
        "interview_recommendations": [{"at": _local_text(app, a.sent_at or a.created_at), "obligation": case_number("O", a.obligation_id),
                                       "to": a.recipient_email} for a in summary.interview_recommendations],
        "offline_actions": [{"kind": OFFLINE_KINDS.get(a.kind, a.kind), "done_on": a.done_on.isoformat(), "note": a.note, "by": a.actor} for a in actions],
    }


def material_checksum(content: dict[str, Any]) -> str:
    """SHA-256 of the content as canonical JSON (sorted keys, no spaces): the same record gives the same checksum."""
    canonical = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@router.get("/distributors/{code}/interview")
def interview_page(request: Request, code: str, user: WebUser = Depends(officer)) -> HTMLResponse:
    app = _app(request)
    now = app.clock.now()
    summary = _distributor_summary(request, user, code)
    content = interview_material(app, user, summary, _offline_actions(request, user, code), now)
    checksum = material_checksum(content)
    # The printed copy's checksum goes into the audit trail: a paper brought back later is checked against it.
    with app.sessions.begin() as session:
        audit(session, at=now, actor=user.actor, entity="web_account", entity_id=user.id, action="interview_material",
              detail={"distributor_code": code, "checksum": checksum, "content": content})
    return render(request, "bureau/interview.html", m=content, checksum=checksum)


@router.get("/materials")
def verify_material(request: Request, checksum: str = "", user: WebUser = Depends(officer)) -> HTMLResponse:
    """Check a printed 约谈材料: the copy kept when it was printed, if an officer of the officer's regions printed it."""
    app = _app(request)
    wanted = checksum.strip().lower()
    found = None
    if wanted:
        with app.read_sessions() as session:
            found = officer_actions.printed_material(session, wanted, _regions(request, user))
    return render(request, "bureau/verify.html", checksum=wanted, event=found,
                  intact=found is not None and material_checksum(found.detail["content"]) == wanted)
