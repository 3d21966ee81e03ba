"""The daily digest and the monthly summary: written into the outbox, sent by deliver_due.

Both are idempotent per recipient, region and period through the outbox's unique dedup key
(`digest:{region}:{role}:{email}:{YYYY-MM-DD}`, `monthly:{region}:{email}:{YYYY-MM}`): two
replicas, or a rerun, write each once, and an address listed for two regions gets each
region's mail. Their context is a snapshot of the ledger taken when written; the
monthly XLSX workbook is built from that context when the mail is sent.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shortage_watch.domain.labels import label, named
from shortage_watch.domain.obligations import OPEN_STATES, case_number, overdue_working_days
from shortage_watch.mail.message import Attachment
from shortage_watch.services.quiet import find_quiet_reporters
from shortage_watch.store.dashboard_queries import compliance_by_distributor
from shortage_watch.store.tables import Alert, Obligation, RawReceipt, ShortageCase, ShortageReport, Silence, StoppageNotice

if TYPE_CHECKING:
    from shortage_watch.app import App
    from shortage_watch.domain.directory import Contact, Directory

log = logging.getLogger(__name__)

# A replica that was down on the first working day still sends the monthly summary this
# many working days later; after that the month is skipped rather than mailed late.
MONTHLY_CATCH_UP_WORKING_DAYS = 3


def _insert_outbox_row(session: Session, values: dict[str, Any]) -> bool:
    """Insert unless the dedup key exists; True when this call wrote it.

    Two replicas may write the same digest at once: the unique dedup_key with ON
    CONFLICT DO NOTHING makes the second a no-op without aborting the transaction.
    """
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(Alert.__table__).values(**values).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(Alert.__table__.c.id)
    return session.execute(stmt).first() is not None


def _party_name(directory: "Directory", code: str | None, fallback: str | None = None) -> str:
    party = directory.distributor(code)
    return (party.name if party else None) or fallback or code or "—"


def _region_name(directory: "Directory", code: str | None) -> str:
    region = directory.region(code)
    return region.name if region else (code or "—")


def _notice_region(directory: "Directory", notice: StoppageNotice) -> str | None:
    if notice.region_code:
        return notice.region_code
    party = directory.distributor(notice.distributor_code)
    return party.region_code if party else None


def _report_region(directory: "Directory", report: ShortageReport) -> str | None:
    if report.region_code:
        return report.region_code
    party = directory.hospital(report.hospital_code)
    return party.region_code if party else None


def _product(name: str | None, spec: str | None) -> str:
    return f"{name or '—'} {spec}" if spec else (name or "—")


def _recipient(contact: "Contact", email: str, directory: "Directory") -> dict[str, Any]:
    return {"role": contact.role, "region_code": contact.region_code, "region_name": _region_name(directory, contact.region_code), "name": contact.name, "email": email}


def _outbox_values(app: "App", *, dedup_key: str, thread_key: str, template: str, contact: "Contact", email: str, context: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "dedup_key": dedup_key,
        "thread_key": thread_key,
        "level": template,
        "template": template,
        "recipient_role": contact.role,
        "recipient_region": contact.region_code,
        "recipient_email": email,
        "language": contact.language or app.settings.mail.language,
        "urgent": False,
        "context": context,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


# --- daily digest -------------------------------------------------------------------------


@dataclass
class DigestSnapshot:
    """The ledger rows every digest of one run draws on, read once (not once per contact)."""

    notices: list[StoppageNotice]
    notice_obligations: dict[int, Obligation]
    overdue: list[Obligation]
    late: list[Obligation]
    cases: list[ShortageCase]
    reports_by_case: dict[int, list[ShortageReport]]
    products: dict[str, str]


def read_digest_snapshot(session: Session, since: datetime, now: datetime) -> DigestSnapshot:
    notices = list(session.scalars(
        select(StoppageNotice).where(StoppageNotice.received_at >= since, StoppageNotice.received_at < now).order_by(StoppageNotice.received_at)
    ))
    notice_obligations = {
        ob.notice_pk: ob for ob in session.scalars(select(Obligation).where(Obligation.notice_pk.in_([n.id for n in notices])))
    } if notices else {}
    overdue = list(session.scalars(select(Obligation).where(Obligation.state.in_(OPEN_STATES), Obligation.due_at < now).order_by(Obligation.due_at)))
    late = list(session.scalars(
        select(Obligation).where(Obligation.state == "fulfilled_late", Obligation.fulfilled_at >= since, Obligation.fulfilled_at < now)
    ))
    cases = list(session.scalars(select(ShortageCase).where(ShortageCase.state != "resolved").order_by(ShortageCase.opened_at)))
    reports_by_case: dict[int, list[ShortageReport]] = {}
    if cases:
        for report in session.scalars(select(ShortageReport).where(ShortageReport.case_id.in_([c.id for c in cases]))):
            reports_by_case.setdefault(report.case_id or 0, []).append(report)
    codes = {ob.product_code for ob in overdue + late if ob.product_code}
    return DigestSnapshot(notices, notice_obligations, overdue, late, cases, reports_by_case, _product_names(session, codes))


def digest_context(app: "App", snapshot: DigestSnapshot, contact: "Contact", email: str, since: datetime, now: datetime) -> dict[str, Any]:
    """What happened in the contact's region and below since `since`, and what is still open."""
    directory = app.directory
    region = contact.region_code
    within = lambda code: directory.is_within(code, region)  # noqa: E731

    new_stoppages = []
    for n in snapshot.notices:
        code = _notice_region(directory, n)
        if not within(code):
            continue
        ob = snapshot.notice_obligations.get(n.id)
        new_stoppages.append({
            "case_number": case_number("O", ob.id) if ob else n.notice_id,
            "product": _product(n.product_name, n.specification),
            "manufacturer": n.manufacturer,
            "distributor": _party_name(directory, n.distributor_code, n.distributor_name),
            "kind": n.kind,
            "notified_on": n.notified_on.isoformat(),
            "due_at": ob.due_at.isoformat() if ob else None,
            "region_name": _region_name(directory, code),
        })

    products = snapshot.products
    overdue = []
    for ob in snapshot.overdue:
        if not within(ob.region_code):
            continue
        overdue.append({
            "case_number": case_number("O", ob.id),
            "product": products.get(ob.product_code or "", ob.product_code or "—"),
            "distributor": _party_name(directory, ob.party_code),
            "due_at": ob.due_at.isoformat(),
            "overdue_working_days": overdue_working_days(app.calendar, ob.due_on, ob.due_at, now) or 0,
            "region_name": _region_name(directory, ob.region_code),
        })

    late = []
    for ob in snapshot.late:
        if not within(ob.region_code):
            continue
        late.append({
            "case_number": case_number("O", ob.id),
            "product": products.get(ob.product_code or "", ob.product_code or "—"),
            "distributor": _party_name(directory, ob.party_code),
            "submitted_at": (ob.fulfilled_at or now).isoformat(),
            "late_working_days": ob.late_working_days or 0,
            "region_name": _region_name(directory, ob.region_code),
        })

    open_shortages = []
    for case in snapshot.cases:
        reports = snapshot.reports_by_case.get(case.id, [])
        if not (within(case.city_code) or any(within(_report_region(directory, r)) for r in reports)):
            continue
        open_shortages.append({
            "case_number": case_number("C", case.id),
            "product": case.product_name,
            "state": case.state,
            "hospitals": len({r.hospital_code for r in reports if r.supply_status != "resolved"}),
            "opened_at": case.opened_at.isoformat(),
            "first_reported_on": min((r.reported_on for r in reports), default=case.opened_at.date()).isoformat(),
            "city_name": _region_name(directory, case.city_code),
        })

    tz = app.calendar.tz
    return {
        "template": "digest",
        "case_number": None,
        "urgent": False,
        "written_at": now.isoformat(),
        "digest_date": app.calendar.local_date(now).isoformat(),
        "since": since.astimezone(tz).isoformat(),
        "recipient": _recipient(contact, email, directory),
        "region": {"code": region, "name": _region_name(directory, region)},
        "new_stoppages": new_stoppages,
        "overdue": overdue,
        "late_reports": late,
        "open_shortages": open_shortages,
        "covered_alerts": 0,
        "held": [],
    }


def held_for_digest(session: Session, email: str) -> list[dict[str, Any]]:
    """The alerts a silence holds for `email`: listed in its digest as "held by silence #N"."""
    rows = session.execute(
        select(Alert, Silence.ends_at, Silence.reason)
        .join(Silence, Silence.id == Alert.silence_id)
        .where(Alert.status == "held", Alert.recipient_email == email)
        .order_by(Alert.id)
    ).all()
    return [
        {
            "case_number": alert.context.get("case_number") or "—",
            "template": alert.template,
            "product": (alert.context.get("product") or {}).get("name") or "—",
            "distributor": (alert.context.get("distributor") or {}).get("name") or "—",
            "silence_id": alert.silence_id,
            "until": ends_at.isoformat(),
            "reason": reason,
        }
        for alert, ends_at, reason in rows
    ]


def _product_names(session: Session, codes: set[str]) -> dict[str, str]:
    """Product names by code, from the notices and cases that mention them."""
    names: dict[str, str] = {}
    if not codes:
        return names
    for code, name in session.execute(select(StoppageNotice.product_code, StoppageNotice.product_name).where(StoppageNotice.product_code.in_(codes))):
        names.setdefault(code, name)
    for code, name in session.execute(select(ShortageCase.product_code, ShortageCase.product_name).where(ShortageCase.product_code.in_(codes))):
        names.setdefault(code, name)
    return names


def digest_due(app: "App", now: datetime) -> bool:
    """A working day, at or after `mail.digest_time` (local)."""
    local = now.astimezone(app.calendar.tz)
    return app.calendar.is_working_day(local.date()) and local.time() >= app.settings.mail.digest_time


def send_daily_digests(app: "App", now: datetime) -> int:
    """Write today's bureau digests and the operations digest; returns how many were new."""
    return send_bureau_digests(app, now) + send_operations_digest(app, now)


def send_operations_digest(app: "App", now: datetime) -> int:
    """On a working day from `mail.digest_time`: one mail to `directory.operations_email` listing the
    reporters that went quiet and, since the previous working day's digest time, the files whose
    accepted rows name a distributor or hospital the directory does not list (neither: no mail);
    at most one per day (dedup key). Returns 0 or 1."""
    email = app.settings.directory.operations_email
    if not email or not digest_due(app, now):
        return 0
    today = app.calendar.local_date(now)
    since = datetime.combine(app.calendar.nth_working_day_before(today, 1), app.settings.mail.digest_time, tzinfo=app.calendar.tz)
    dedup_key = f"ops-digest:{email}:{today.isoformat()}"
    with app.sessions.begin() as session:
        quiet = find_quiet_reporters(session, app.settings, app.calendar, now)
        unlisted = session.scalars(
            select(RawReceipt).where(RawReceipt.received_at >= since, RawReceipt.received_at < now, RawReceipt.warnings.is_not(None))
            .order_by(RawReceipt.received_at, RawReceipt.id)
        ).all()
        if not (quiet or unlisted) or session.scalar(select(Alert.id).where(Alert.dedup_key == dedup_key)) is not None:
            return 0
        tz = app.calendar.tz
        context = {
            "template": "operations_digest",
            "case_number": None,
            "urgent": False,
            "written_at": now.isoformat(),
            "digest_date": today.isoformat(),
            "recipient": {"role": "operations", "region_code": None, "region_name": None, "name": None, "email": email},
            "quiet": [
                {"kind": q.kind, "code": q.code, "name": q.name, "since": q.since.astimezone(tz).isoformat() if q.since else None,
                 "working_days": q.working_days}
                for q in quiet
            ],
            "since": since.isoformat(),
            "unknown_parties": [
                {"source": r.source, "name": r.name, "received_at": r.received_at.astimezone(tz).isoformat(), "warnings": r.warnings}
                for r in unlisted
            ],
        }
        values = {
            "dedup_key": dedup_key, "thread_key": "ops-digest", "level": "operations_digest", "template": "operations_digest",
            "recipient_role": "operations", "recipient_region": None, "recipient_email": email, "language": app.settings.mail.language,
            "urgent": False, "context": context, "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
        }
        return 1 if _insert_outbox_row(session, values) else 0


def send_bureau_digests(app: "App", now: datetime) -> int:
    """Write today's digest for each bureau contact whose delivery is 'digest'; returns how many were new.

    At most one per contact and address per working day (dedup key
    `digest:{region}:{role}:{email}:{date}`), covering
    everything since the previous working day's digest time. A contact with nothing to
    report gets no mail; its waiting 'digest' alerts stay for the next digest.
    """
    if not digest_due(app, now):
        return 0
    today = app.calendar.local_date(now)
    previous = app.calendar.nth_working_day_before(today, 1)
    since = datetime.combine(previous, app.settings.mail.digest_time, tzinfo=app.calendar.tz)
    written = 0
    contacts = [c for c in app.directory.contacts_all() if c.delivery == "digest"]
    if not contacts:
        return 0
    with app.sessions.begin() as session:
        snapshot = read_digest_snapshot(session, since, now)
        for contact in contacts:
            for email in contact.emails:
                dedup_key = f"digest:{contact.region_code}:{contact.role}:{email}:{today.isoformat()}"
                if session.scalar(select(Alert.id).where(Alert.dedup_key == dedup_key)) is not None:
                    continue
                context = digest_context(app, snapshot, contact, email, since, now)
                waiting = list(session.scalars(select(Alert.id).where(Alert.status == "digest", Alert.recipient_email == email)))
                context["covered_alerts"] = len(waiting)
                context["held"] = held_for_digest(session, email)
                if not (waiting or context["held"] or context["new_stoppages"] or context["overdue"] or context["late_reports"] or context["open_shortages"]):
                    continue
                values = _outbox_values(app, dedup_key=dedup_key, thread_key=f"digest:{contact.region_code}:{contact.role}", template="digest", contact=contact, email=email, context=context, now=now)
                if not _insert_outbox_row(session, values):
                    continue  # another replica wrote it first
                if waiting:
                    # The digest covers these single alerts: they are done once it is written.
                    session.execute(
                        update(Alert).where(Alert.id.in_(waiting), Alert.status == "digest")
                        .values(status="digested", last_error=f"covered by {dedup_key}").execution_options(synchronize_session=False)
                    )
                written += 1
    if written:
        log.info("digests: %d written for %s", written, today)
    return written


# --- monthly summary ------------------------------------------------------------------------


def first_working_day(app: "App", year: int, month: int) -> date:
    day = date(year, month, 1)
    while not app.calendar.is_working_day(day):
        day += timedelta(days=1)
    return day


def previous_month(day: date) -> tuple[date, date]:
    """First and last day of the month before `day`'s."""
    last = day.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def monthly_context(session: Session, app: "App", contact: "Contact", email: str, first: date, last: date, now: datetime) -> dict[str, Any]:
    """The month's shortage list with hospital demand, stoppage notices and distributor compliance."""
    directory = app.directory
    within = lambda code: directory.is_within(code, contact.region_code)  # noqa: E731

    cases = {c.id: c for c in session.scalars(select(ShortageCase))}
    shortages = []
    for r in session.scalars(
        select(ShortageReport).where(ShortageReport.reported_on >= first, ShortageReport.reported_on <= last).order_by(ShortageReport.product_code, ShortageReport.reported_on)
    ):
        code = _report_region(directory, r)
        if not within(code):
            continue
        case = cases.get(r.case_id or -1)
        hospital = directory.hospital(r.hospital_code)
        shortages.append({
            "case_number": case_number("C", case.id) if case else "—",
            "product_code": r.product_code,
            "product": r.product_name,
            "hospital": named(r.hospital_name or (hospital.name if hospital else None), r.hospital_code),
            "region_name": _region_name(directory, code),
            "reported_on": r.reported_on.isoformat(),
            "supply_status": r.supply_status,
            "monthly_demand": r.monthly_demand,
            "demand_unit": r.demand_unit,
            "stock_days": r.stock_days,
            "substitute_in_use": r.substitute_in_use,
            "cause": r.cause,
            "case_state": case.state if case else None,
        })

    stoppages = []
    notices = session.scalars(
        select(StoppageNotice).where(StoppageNotice.notified_on >= first, StoppageNotice.notified_on <= last).order_by(StoppageNotice.notified_on)
    ).all()
    obligations_by_notice = {
        ob.notice_pk: ob for ob in session.scalars(select(Obligation).where(Obligation.notice_pk.in_([n.id for n in notices])))
    } if notices else {}
    for n in notices:
        code = _notice_region(directory, n)
        if not within(code):
            continue
        ob = obligations_by_notice.get(n.id)
        stoppages.append({
            "case_number": case_number("O", ob.id) if ob else "—",
            "notice_id": n.notice_id,
            "product_code": n.product_code,
            "product": n.product_name,
            "specification": n.specification,
            "manufacturer": n.manufacturer,
            "distributor": _party_name(directory, n.distributor_code, n.distributor_name),
            "kind": n.kind,
            "notified_on": n.notified_on.isoformat(),
            "expected_resume_on": n.expected_resume_on.isoformat() if n.expected_resume_on else None,
            "priority_class": n.priority_class,
            "region_name": _region_name(directory, code),
        })

    # The dashboard's compliance list counts the same way: one definition (store/dashboard_queries.py).
    compliance = [
        {"distributor_code": r.distributor_code, "distributor": _party_name(directory, r.distributor_code),
         "obligations": r.obligations, "on_time": r.on_time, "late": r.late, "overdue": r.overdue, "open": r.open}
        for r in compliance_by_distributor(session, directory.region_and_below(contact.region_code), due_from=first, due_to=last, now=now)
    ]

    return {
        "template": "monthly_summary",
        "case_number": None,
        "urgent": False,
        "written_at": now.isoformat(),
        "month": f"{first:%Y-%m}",
        "recipient": _recipient(contact, email, directory),
        "region": {"code": contact.region_code, "name": _region_name(directory, contact.region_code)},
        "shortages": shortages,
        "stoppages": stoppages,
        "compliance": compliance,
        "totals": {
            "shortage_cases": len({s["case_number"] for s in shortages}),
            "hospital_reports": len(shortages),
            "stoppages": len(stoppages),
            "obligations": sum(r["obligations"] for r in compliance),
            "on_time": sum(r["on_time"] for r in compliance),
            "late": sum(r["late"] for r in compliance),
            "overdue": sum(r["overdue"] for r in compliance),
        },
    }


def send_monthly_summaries(app: "App", now: datetime) -> int:
    """Write last month's summary for each insurance bureau contact; returns how many were new.

    Due from `mail.monthly_time` on the first working day of the month (and up to
    MONTHLY_CATCH_UP_WORKING_DAYS working days later, so a daemon that was down that day
    catches up); once per region, address and month (dedup key `monthly:{region}:{email}:{YYYY-MM}`).
    """
    local = now.astimezone(app.calendar.tz)
    today = local.date()
    start = first_working_day(app, today.year, today.month)
    if today < start or (today == start and local.time() < app.settings.mail.monthly_time):
        return 0
    if app.calendar.working_days_between(start, today) > MONTHLY_CATCH_UP_WORKING_DAYS:
        return 0  # too late for last month's summary (e.g. a fresh install mid-month)
    first, last = previous_month(today)
    written = 0
    with app.sessions.begin() as session:
        for contact in app.directory.contacts_all():
            if contact.role != "insurance":
                continue
            for email in contact.emails:
                dedup_key = f"monthly:{contact.region_code}:{email}:{first:%Y-%m}"
                if session.scalar(select(Alert.id).where(Alert.dedup_key == dedup_key)) is not None:
                    continue
                context = monthly_context(session, app, contact, email, first, last, now)
                values = _outbox_values(app, dedup_key=dedup_key, thread_key=f"monthly:{contact.region_code}", template="monthly_summary", contact=contact, email=email, context=context, now=now)
                if _insert_outbox_row(session, values):
                    written += 1
    if written:
        log.info("monthly summaries: %d written for %s", written, f"{first:%Y-%m}")
    return written


# --- the XLSX attachment ------------------------------------------------------------------------

def _word(group: str, value: str | None) -> str | None:
    """The workbook shows the same Chinese label as the mail (domain/labels.py); a blank stays blank."""
    return None if value is None else label(group, value)


def _sheets(context: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    shortages = [
        [s["case_number"], s["product_code"], s["product"], s["hospital"], s["region_name"], s["reported_on"], _word("supply", s["supply_status"]),
         s["monthly_demand"], s["demand_unit"], s["stock_days"], s["substitute_in_use"], _word("cause", s["cause"]), _word("case_state", s["case_state"])]
        for s in context["shortages"]
    ]
    stoppages = [
        [s["case_number"], s["notice_id"], s["product_code"], s["product"], s["specification"], s["manufacturer"], s["distributor"], s["region_name"],
         _word("kind", s["kind"]), s["notified_on"], s["expected_resume_on"], _word("priority", s["priority_class"])]
        for s in context["stoppages"]
    ]
    compliance = [[c["distributor_code"], c["distributor"], c["obligations"], c["on_time"], c["late"], c["overdue"], c["open"]] for c in context["compliance"]]
    return [
        ("短缺清单及医疗机构需求", ["案件编号", "药品编码", "药品名称", "医疗机构", "地区", "上报日期", "供应状态", "月需求量", "单位", "库存可用天数", "替代药品", "原因分类", "案件状态"], shortages),
        ("停产断供通知", ["案件编号", "通知编号", "药品编码", "药品名称", "规格", "生产企业", "配送企业", "地区", "类型", "通知日期", "预计恢复日期", "药品类别"], stoppages),
        ("配送企业履约情况", ["配送企业编码", "配送企业", "报告义务", "按时报告", "迟报", "逾期未报", "未到期"], compliance),
    ]


def _display_width(value: Any) -> int:
    """Column width in Excel units: CJK characters are about two Latin ones wide."""
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def monthly_workbook(context: dict[str, Any]) -> bytes:
    """The monthly summary as XLSX: one sheet per table, Chinese headers, frozen header row, fitting widths."""
    return table_workbook(_sheets(context))


def table_workbook(sheets: list[tuple[str, list[str], list[list[Any]]]]) -> bytes:
    """XLSX with one sheet per (title, headers, rows): bold header row, frozen, filterable, fitting widths."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    header_font = Font(bold=True)
    header_fill = PatternFill("solid", fgColor="DDE6F0")
    for title, headers, rows in sheets:
        sheet = book.create_sheet(title)
        sheet.append(headers)
        for row in rows:
            sheet.append(row)
        for line in sheet.iter_rows(min_row=2):
            for cell in line:
                if cell.data_type == "f":
                    # Record text such as "=HYPERLINK(...)" stays text, never a formula.
                    cell.data_type = "s"
        for cell in sheet[1]:
            cell.font, cell.fill = header_font, header_fill
            cell.alignment = Alignment(vertical="center")
        sheet.freeze_panes = "A2"
        if rows:
            sheet.auto_filter.ref = sheet.dimensions
        for index, header in enumerate(headers, start=1):
            widest = max([_display_width(header)] + [_display_width(r[index - 1]) for r in rows])
            sheet.column_dimensions[get_column_letter(index)].width = min(60, widest + 3)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def monthly_attachment(context: dict[str, Any]) -> Attachment:
    region = (context.get("region") or {}).get("name") or ""
    year, month = context["month"].split("-")
    return Attachment(f"{region}{year}年{int(month)}月药品短缺月度汇总.xlsx", monthly_workbook(context))
