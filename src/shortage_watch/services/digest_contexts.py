"""The contexts of the daily digest and the monthly summary: what each recipient's mail says, typed.

Pure on what store/digest_queries.py read: a contact sees its region and every region
below it. The contexts are stored with the outbox row as JSON (a snapshot of the ledger
when written), so they hold only JSON values: dates and instants as ISO text.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, cast

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.domain.cases import hospital_parts, report_view
from shortage_watch.domain.directory import Contact, Directory
from shortage_watch.domain.labels import named
from shortage_watch.domain.obligations import case_number, overdue_working_days
from shortage_watch.store.compliance import ComplianceRow
from shortage_watch.store.digest_queries import DigestSnapshot, HeldAlert, MonthSnapshot
from shortage_watch.store.tables import Alert, Obligation, ShortageReport, StoppageNotice


class Recipient(TypedDict):
    role: str
    region_code: str | None
    region_name: str | None
    name: str | None
    email: str


class RegionRef(TypedDict):
    code: str | None
    name: str


class NewStoppage(TypedDict):
    case_number: str
    product: str
    manufacturer: str | None
    distributor: str
    kind: str
    notified_on: str
    due_at: str | None
    region_name: str


class OverdueItem(TypedDict):
    case_number: str
    product: str
    distributor: str
    due_at: str
    overdue_working_days: int
    region_name: str


class LateReport(TypedDict):
    case_number: str
    product: str
    distributor: str
    submitted_at: str
    late_working_days: int
    region_name: str


class OpenShortage(TypedDict):
    case_number: str
    product: str
    state: str
    hospitals: int
    opened_at: str
    first_reported_on: str
    city_name: str


class CoveredItem(TypedDict):
    case_number: str
    template: str
    product: str
    distributor: str


class HeldItem(CoveredItem):
    silence_id: int | None
    until: str
    reason: str


class DigestContext(TypedDict):
    template: str  # "digest"
    case_number: None
    urgent: bool
    written_at: str
    digest_date: str
    since: str
    recipient: Recipient
    region: RegionRef
    new_stoppages: list[NewStoppage]
    overdue: list[OverdueItem]
    late_reports: list[LateReport]
    open_shortages: list[OpenShortage]
    covered_alerts: int  # single alerts this digest covers
    covered: list[CoveredItem]  # those alerts, each named
    held: list[HeldItem]  # alerts a silence holds for the recipient


class MonthlyShortage(TypedDict):
    case_number: str
    product_code: str
    product: str | None
    hospital: str
    region_name: str
    reported_on: str
    supply_status: str
    monthly_demand: float | None
    demand_unit: str | None
    stock_days: float | None
    substitute_in_use: bool | None
    cause: str | None
    case_state: str | None


class MonthlyStoppage(TypedDict):
    case_number: str
    notice_id: str
    product_code: str
    product: str | None
    specification: str | None
    manufacturer: str | None
    distributor: str
    kind: str
    notified_on: str
    expected_resume_on: str | None
    priority_class: str | None
    region_name: str


class MonthlyCompliance(TypedDict):
    distributor_code: str
    distributor: str
    obligations: int
    on_time: int
    late: int
    overdue: int
    open: int


class MonthlyTotals(TypedDict):
    shortage_cases: int
    hospital_reports: int
    stoppages: int
    obligations: int
    on_time: int
    late: int
    overdue: int


class MonthlyContext(TypedDict):
    template: str  # "monthly_summary"
    case_number: None
    urgent: bool
    written_at: str
    month: str  # YYYY-MM
    recipient: Recipient
    region: RegionRef
    shortages: list[MonthlyShortage]
    stoppages: list[MonthlyStoppage]
    compliance: list[MonthlyCompliance]
    totals: MonthlyTotals


def party_name(directory: Directory, code: str | None, fallback: str | None = None) -> str:
    party = directory.distributor(code)
    return (party.name if party else None) or fallback or code or "—"


def region_name(directory: Directory, code: str | None) -> str:
    region = directory.region(code)
    return region.name if region else (code or "—")


def notice_region(directory: Directory, notice: StoppageNotice) -> str | None:
    if notice.region_code:
        return notice.region_code
    party = directory.distributor(notice.distributor_code)
    return party.region_code if party else None


def report_region(directory: Directory, report: ShortageReport) -> str | None:
    if report.region_code:
        return report.region_code
    party = directory.hospital(report.hospital_code)
    return party.region_code if party else None


def _product(name: str | None, spec: str | None) -> str:
    return f"{name or '—'} {spec}" if spec else (name or "—")


def recipient(contact: Contact, email: str, directory: Directory) -> Recipient:
    return {"role": contact.role, "region_code": contact.region_code, "region_name": region_name(directory, contact.region_code),
            "name": contact.name, "email": email}


def digest_context(directory: Directory, calendar: WorkingCalendar, snapshot: DigestSnapshot, contact: Contact, email: str,
                   since: datetime, now: datetime) -> DigestContext:
    """What happened in the contact's region and below since `since`, and what is still open."""
    region = contact.region_code

    def within(code: str | None) -> bool:
        return directory.is_within(code, region)

    new_stoppages: list[NewStoppage] = []
    for n in snapshot.notices:
        code = notice_region(directory, n)
        if n.received_at < since or not within(code):
            continue
        ob = snapshot.notice_obligations.get(n.id)
        new_stoppages.append({
            "case_number": case_number("O", ob.id) if ob else n.notice_id,
            "product": _product(n.product_name, n.specification),
            "manufacturer": n.manufacturer,
            "distributor": party_name(directory, n.distributor_code, n.distributor_name),
            "kind": n.kind,
            "notified_on": n.notified_on.isoformat(),
            "due_at": ob.due_at.isoformat() if ob else None,
            "region_name": region_name(directory, code),
        })

    def obligation_item(ob: Obligation, **facts: str | int) -> dict[str, str | int]:
        """An overdue or late obligation's row: the same columns around the `facts` each table adds."""
        return {"case_number": case_number("O", ob.id),
                "product": snapshot.products.get(ob.product_code or "", ob.product_code or "—"),
                "distributor": party_name(directory, ob.party_code), **facts,
                "region_name": region_name(directory, ob.region_code)}

    overdue = [cast(OverdueItem, obligation_item(
        ob, due_at=ob.due_at.isoformat(), overdue_working_days=overdue_working_days(calendar, ob.due_on, ob.due_at, now) or 0))
        for ob in snapshot.overdue if within(ob.region_code)]
    late = [cast(LateReport, obligation_item(
        ob, submitted_at=(ob.fulfilled_at or now).isoformat(), late_working_days=ob.late_working_days or 0))
        for ob in snapshot.late if ob.updated_at >= since and within(ob.region_code)]

    open_shortages: list[OpenShortage] = []
    for case in snapshot.cases:
        reports = snapshot.reports_by_case.get(case.id, [])
        if not (within(case.city_code) or any(within(report_region(directory, r)) for r in reports)):
            continue
        open_shortages.append({
            "case_number": case_number("C", case.id),
            "product": case.product_name,
            "state": case.state,
            "hospitals": _hospitals_short(reports, snapshot.closures_by_case.get(case.id, {})),
            "opened_at": case.opened_at.isoformat(),
            "first_reported_on": min((r.reported_on for r in reports), default=case.opened_at.date()).isoformat(),
            "city_name": region_name(directory, case.city_code),
        })

    return {
        "template": "digest",
        "case_number": None,
        "urgent": False,
        "written_at": now.isoformat(),
        "digest_date": calendar.local_date(now).isoformat(),
        "since": since.astimezone(calendar.tz).isoformat(),
        "recipient": recipient(contact, email, directory),
        "region": {"code": region, "name": region_name(directory, region)},
        "new_stoppages": new_stoppages,
        "overdue": overdue,
        "late_reports": late,
        "open_shortages": open_shortages,
        "covered_alerts": 0,
        "covered": [],
        "held": [],
    }


def _hospitals_short(reports: list[ShortageReport], closures: dict[str, datetime]) -> int:
    """The case's hospitals whose part is open: their latest report not `resolved`, and no officer closed it since."""
    views = [report_view(r) for r in reports]
    return sum(1 for part in hospital_parts(views, closures) if not part.closed)


def digest_has_news(context: DigestContext) -> bool:
    """Whether the digest lists anything (covered or held alerts, or any table row); one that does not is not sent."""
    return bool(context["covered_alerts"] or context["held"] or context["new_stoppages"] or context["overdue"]
                or context["late_reports"] or context["open_shortages"])


def covered_item(alert: Alert) -> CoveredItem:
    """One alert as a digest names it: case number, mail, drug, distributor."""
    return {
        "case_number": alert.context.get("case_number") or "—",
        "template": alert.template,
        "product": (alert.context.get("product") or {}).get("name") or "—",
        "distributor": (alert.context.get("distributor") or {}).get("name") or "—",
    }


def covered_items(alerts: list[Alert]) -> list[CoveredItem]:
    """The single alerts a digest stands for, as it lists them."""
    return [covered_item(alert) for alert in alerts]


def held_items(held: list[HeldAlert]) -> list[HeldItem]:
    """The alerts a silence holds, as the digest lists them: "held by silence #N"."""
    return [
        {
            **covered_item(h.alert),
            "silence_id": h.alert.silence_id,
            "until": h.until.isoformat(),
            "reason": h.reason,
        }
        for h in held
    ]


def monthly_context(
    directory: Directory, month: MonthSnapshot, compliance: list[ComplianceRow], contact: Contact, email: str, now: datetime,
) -> MonthlyContext:
    """The month's shortage list with hospital demand, stoppage notices and distributor compliance
    (`compliance`: already the contact's regions), for the contact's region and below."""
    def within(code: str | None) -> bool:
        return directory.is_within(code, contact.region_code)

    shortages: list[MonthlyShortage] = []
    case_ids: set[int] = set()  # the cases the listed reports joined (a report may have joined none: "—")
    for r in month.reports:
        code = report_region(directory, r)
        if not within(code):
            continue
        case = month.cases.get(r.case_id or -1)
        if case is not None:
            case_ids.add(case.id)
        hospital = directory.hospital(r.hospital_code)
        shortages.append({
            "case_number": case_number("C", case.id) if case else "—",
            "product_code": r.product_code,
            "product": r.product_name,
            "hospital": named(r.hospital_name or (hospital.name if hospital else None), r.hospital_code),
            "region_name": region_name(directory, code),
            "reported_on": r.reported_on.isoformat(),
            "supply_status": r.supply_status,
            "monthly_demand": r.monthly_demand,
            "demand_unit": r.demand_unit,
            "stock_days": r.stock_days,
            "substitute_in_use": r.substitute_in_use,
            "cause": r.cause,
            "case_state": case.state if case else None,
        })

    stoppages: list[MonthlyStoppage] = []
    for n in month.notices:
        code = notice_region(directory, n)
        if not within(code):
            continue
        ob = month.notice_obligations.get(n.id)
        stoppages.append({
            "case_number": case_number("O", ob.id) if ob else "—",
            "notice_id": n.notice_id,
            "product_code": n.product_code,
            "product": n.product_name,
            "specification": n.specification,
            "manufacturer": n.manufacturer,
            "distributor": party_name(directory, n.distributor_code, n.distributor_name),
            "kind": n.kind,
            "notified_on": n.notified_on.isoformat(),
            "expected_resume_on": n.expected_resume_on.isoformat() if n.expected_resume_on else None,
            "priority_class": n.priority_class,
            "region_name": region_name(directory, code),
        })

    # Counted by store/compliance.py: the compliance command and the dashboard give the same figures.
    table: list[MonthlyCompliance] = [
        {"distributor_code": r.distributor_code, "distributor": party_name(directory, r.distributor_code),
         "obligations": r.obligations, "on_time": r.on_time, "late": r.late, "overdue": r.overdue, "open": r.open}
        for r in compliance
    ]

    return {
        "template": "monthly_summary",
        "case_number": None,
        "urgent": False,
        "written_at": now.isoformat(),
        "month": f"{month.first:%Y-%m}",
        "recipient": recipient(contact, email, directory),
        "region": {"code": contact.region_code, "name": region_name(directory, contact.region_code)},
        "shortages": shortages,
        "stoppages": stoppages,
        "compliance": table,
        "totals": {
            "shortage_cases": len(case_ids),
            "hospital_reports": len(shortages),
            "stoppages": len(stoppages),
            "obligations": sum(r["obligations"] for r in table),
            "on_time": sum(r["on_time"] for r in table),
            "late": sum(r["late"] for r in table),
            "overdue": sum(r["overdue"] for r in table),
        },
    }
