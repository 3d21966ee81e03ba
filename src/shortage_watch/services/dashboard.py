"""What the bureau dashboard shows: working-day windows, chart points, tables and exports.

Pages call these with the officer's regions (`officer_regions`); the SQL lives in
store/dashboard_queries.py. Each function reads in the session it is given.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Sequence

from sqlalchemy.orm import Session

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.domain.directory import Directory
from shortage_watch.domain.labels import LABELS
from shortage_watch.domain.states import ObligationState
from shortage_watch.store import compliance
from shortage_watch.store import dashboard_queries as q

DUE_SOON_WORKING_DAYS = 2
WEEKS = 13  # 13 weekly points cover the last 90 days
MONTHS = 12

# The dashboard is Chinese: its words are the Chinese side of the one label table.
STATE_LABELS = LABELS["obligation_state"]["zh-CN"]
KIND_LABELS = LABELS["obligation_kind"]["zh-CN"]
NOTICE_KIND_LABELS = LABELS["kind"]["zh-CN"]
PRIORITY_LABELS = LABELS["priority"]["zh-CN"]
CASE_STATE_LABELS = LABELS["case_state"]["zh-CN"]


def officer_regions(directory: Directory, officer_region: str, narrow_to: str | None = None) -> frozenset[str]:
    """The officer's region and all below it, narrowed to `narrow_to` and below when that lies inside."""
    regions = directory.region_and_below(officer_region)
    if narrow_to:
        regions = regions & directory.region_and_below(narrow_to)
    return regions


def due_soon_until(calendar: WorkingCalendar, now: datetime) -> datetime:
    """The end of the 2nd working day after today (Asia/Shanghai): "due in the next 2 working days"."""
    day, _ = calendar.nth_working_day_after(calendar.local_date(now), DUE_SOON_WORKING_DAYS)
    return calendar.end_of_day(day)


def month_bounds(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(days=1)


def last_months(today: date, count: int = MONTHS) -> list[tuple[date, date]]:
    """The `count` months up to and including today's, oldest first."""
    months = [month_bounds(today)]
    while len(months) < count:
        months.insert(0, month_bounds(months[0][0] - timedelta(days=1)))
    return months


def week_ends(now: datetime, count: int = WEEKS) -> list[datetime]:
    """Now and each week before it, oldest first."""
    return [now - timedelta(weeks=k) for k in range(count - 1, -1, -1)]


@dataclass(frozen=True)
class OverviewPage:
    cards: q.Overview
    weeks: list[q.WeekPoint]
    months: list[compliance.MonthRate]
    due_soon_until: datetime
    month: tuple[date, date]


def read_overview_page(session: Session, calendar: WorkingCalendar, regions: frozenset[str], now: datetime) -> OverviewPage:
    """The overview's cards and both charts for the regions."""
    today = calendar.local_date(now)
    until = due_soon_until(calendar, now)
    month = month_bounds(today)
    return OverviewPage(
        cards=q.read_overview(session, regions, now=now, due_soon_until=until, month=month),
        weeks=q.weekly_series(session, regions, week_ends(now)),
        months=compliance.on_time_by_month(session, regions, last_months(today), now),
        due_soon_until=until,
        month=month,
    )


@dataclass(frozen=True)
class DistributorSummary:
    history: q.DistributorHistory
    on_time_rate: float | None
    median_working_days: float | None
    reminders: list[Any]  # written reminders (书面提醒) sent
    interview_recommendations: list[Any]  # 约谈 recommendations sent to bureaus


def working_days_to_report(calendar: WorkingCalendar, reported: Iterable[tuple[date, datetime]]) -> list[int]:
    return [calendar.working_days_between(received, calendar.local_date(at)) for received, at in reported]


def read_distributor_summary(session: Session, calendar: WorkingCalendar, regions: frozenset[str], code: str, now: datetime) -> DistributorSummary | None:
    """The distributor's record in the regions: obligations, on-time rate, median working days to report, mail sent."""
    history = q.read_distributor(session, regions, code, now=now)
    if history is None:
        return None
    reports = [r for r in history.obligations if r.kind == "report"]
    rate = compliance.on_time_rate(
        sum(1 for r in reports if r.state == ObligationState.FULFILLED), sum(1 for r in reports if r.state == ObligationState.FULFILLED_LATE), sum(1 for r in reports if r.overdue_now)
    )
    days = working_days_to_report(calendar, history.reported)
    return DistributorSummary(
        history=history,
        on_time_rate=rate,
        median_working_days=statistics.median(days) if days else None,
        reminders=[a for a in history.alerts if a.template == "written_reminder"],
        interview_recommendations=[a for a in history.alerts if a.template == "interview_recommendation"],
    )


# ---------------------------------------------------------------- tables (pages and exports share them)


def _region_name(directory: Directory, code: str | None) -> str:
    region = directory.region(code)
    return region.name if region else (code or "")


def _party_name(directory: Directory, code: str | None, fallback: str | None = None) -> str:
    party = directory.distributor(code)
    return party.name if party else (fallback or code or "")


def _local(calendar: WorkingCalendar, instant: datetime | None) -> datetime | None:
    return instant.astimezone(calendar.tz) if instant else None


OBLIGATION_HEADERS = ["案件编号", "类型", "通知编号", "配送企业编码", "配送企业", "地区", "药品编码", "药品名称", "生产企业", "药品类别",
                      "收到通知日期", "报告截止", "状态", "当前是否逾期", "报告时间", "迟报工作日"]


def obligation_table(directory: Directory, calendar: WorkingCalendar, rows: Iterable[q.ObligationRow]) -> Iterable[list[Any]]:
    for r in rows:
        yield [
            r.number, KIND_LABELS.get(r.kind, r.kind), r.notice_id, r.party_code, _party_name(directory, r.party_code), _region_name(directory, r.region_code),
            r.product_code, r.product_name, r.manufacturer, PRIORITY_LABELS.get(r.priority_class or "", r.priority_class or ("优先" if r.priority else "")),
            r.received_on, _local(calendar, r.due_at), STATE_LABELS.get(r.state, r.state), r.overdue_now, _local(calendar, r.fulfilled_at), r.late_working_days,
        ]


CASE_HEADERS = ["案件编号", "药品编码", "药品名称", "城市", "状态", "立案时间", "区域性短缺时间", "解决时间", "处理说明", "上报医疗机构数", "采购原因（疑似假短缺）上报数"]


def case_table(directory: Directory, calendar: WorkingCalendar, rows: Iterable[q.CaseRow]) -> Iterable[list[Any]]:
    for r in rows:
        yield [
            r.number, r.product_code, r.product_name, _region_name(directory, r.city_code), CASE_STATE_LABELS.get(r.state, r.state),
            _local(calendar, r.opened_at), _local(calendar, r.regional_at), _local(calendar, r.resolved_at), r.resolution_note, r.hospitals, r.false_shortage_reports,
        ]


NOTICE_HEADERS = ["通知编号", "配送企业编码", "配送企业", "生产企业", "药品编码", "药品名称", "规格", "类型", "通知日期", "地区", "预计恢复日期", "药品类别", "原因", "报告义务", "义务状态"]


def notice_table(directory: Directory, rows: Iterable[q.NoticeRow]) -> Iterable[list[Any]]:
    from shortage_watch.domain.obligations import case_number

    for r in rows:
        yield [
            r.notice_id, r.distributor_code, _party_name(directory, r.distributor_code, r.distributor_name), r.manufacturer, r.product_code, r.product_name,
            r.specification, NOTICE_KIND_LABELS.get(r.kind, r.kind), r.notified_on, _region_name(directory, r.region_code), r.expected_resume_on,
            PRIORITY_LABELS.get(r.priority_class or "", r.priority_class), r.reason,
            case_number("O", r.obligation_id) if r.obligation_id else None, STATE_LABELS.get(r.obligation_state or "", r.obligation_state),
        ]


COMPLIANCE_HEADERS = ["配送企业编码", "配送企业", "报告义务", "按时报告", "迟报", "逾期未报", "未到期", "按时率"]


def compliance_table(directory: Directory, rows: Sequence[compliance.ComplianceRow]) -> Iterable[list[Any]]:
    for r in rows:
        rate = r.on_time_rate
        yield [r.distributor_code, _party_name(directory, r.distributor_code), r.obligations, r.on_time, r.late, r.overdue, r.open,
               None if rate is None else f"{rate:.0%}"]
