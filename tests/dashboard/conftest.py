"""Dashboard fixtures: the sample directory of config/examples and a small ledger spread over 宁德 and 重庆."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shortage_watch.domain.directory import Directory
from shortage_watch.intake.directory_files import load_directory
from shortage_watch.settings import DirectorySettings
from shortage_watch.store.tables import Alert, AuditEvent, DistributorReport, Obligation, ShortageCase, ShortageReport, StoppageNotice

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Tuesday 2024-10-15 10:00 in Asia/Shanghai: after National Day; 10-12 (Saturday) was a 调休 working day.
NOW = datetime(2024, 10, 15, 10, 0, tzinfo=SHANGHAI)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.fixture(scope="session")
def sample_directory() -> Directory:
    return load_directory(DirectorySettings(
        regions=EXAMPLES / "regions.csv", contacts=EXAMPLES / "contacts.csv",
        distributors=EXAMPLES / "distributors.csv", hospitals=EXAMPLES / "hospitals.csv",
    ))


@dataclass
class Seeded:
    """Ids of the rows `seed_ledger` wrote, by what they are."""

    ob: dict[str, int]
    case: dict[str, int]


def _notice(session: Session, key: str, distributor: str, region: str, notified: date, *, product: str = "XA01",
            name: str = "注射用头孢曲松钠", manufacturer: str = "某某制药", priority_class: str | None = None) -> StoppageNotice:
    row = StoppageNotice(
        notice_id=f"N-{key}", distributor_code=distributor, manufacturer=manufacturer, product_code=product, product_name=name,
        kind="stoppage", notified_on=notified, region_code=region, priority_class=priority_class, version=1, source="test",
        received_at=NOW, updated_at=NOW,
    )
    session.add(row)
    session.flush()
    return row


def _obligation(session: Session, notice: StoppageNotice, *, due: date, state: str, fulfilled_at: datetime | None = None,
                late: int | None = None, priority: bool = False) -> Obligation:
    due_at = datetime.combine(due, datetime.max.time().replace(microsecond=0), tzinfo=SHANGHAI)
    row = Obligation(
        kind="report", subject_key=f"N:{notice.notice_id}:{notice.distributor_code}", party_code=notice.distributor_code,
        region_code=notice.region_code, notice_pk=notice.id, product_code=notice.product_code, priority=priority,
        received_on=notice.notified_on, due_on=due, due_at=due_at, calendar_status="official", state=state, level=0,
        policy={}, fulfilled_at=fulfilled_at, late_working_days=late, opened_at=at(f"{notice.notified_on}T09:00"), updated_at=NOW,
    )
    session.add(row)
    session.flush()
    return row


def _case(session: Session, product: str, name: str, city: str, opened: datetime, state: str = "open",
          reports: tuple[tuple[str, str, str], ...] = ()) -> ShortageCase:
    case = ShortageCase(product_code=product, product_name=name, city_code=city, state=state, opened_at=opened,
                        regional_at=opened if state in ("regional", "escalated") else None, level=0, updated_at=NOW)
    session.add(case)
    session.flush()
    for number, (hospital, region, cause) in enumerate(reports, start=1):
        session.add(ShortageReport(
            report_id=f"S-{case.id}-{number}", hospital_code=hospital, region_code=region, product_code=product, product_name=name,
            reported_on=opened.astimezone(SHANGHAI).date(), supply_status="short", cause=cause, case_id=case.id, stock_days=3,
            monthly_demand=120, demand_unit="支", version=1, source="test", received_at=opened, updated_at=opened,
        ))
    session.flush()
    return case


def seed_ledger(sessions: sessionmaker[Session]) -> Seeded:
    """宁德: 蕉城区 and 福安市 rows of every kind; 重庆: the same shapes, which no 宁德 officer may ever see."""
    ob: dict[str, int] = {}
    cs: dict[str, int] = {}
    with sessions.begin() as session:
        n = _notice(session, "JC-OVERDUE", "D350901", "350902", date(2024, 9, 27), priority_class="winning_bid")
        ob["jiaocheng_overdue"] = _obligation(session, n, due=date(2024, 10, 10), state="overdue", priority=True).id
        session.add(Alert(
            dedup_key=f"O{ob['jiaocheng_overdue']}:written_reminder:x", obligation_id=ob["jiaocheng_overdue"], thread_key="t", level="written_reminder",
            template="written_reminder", recipient_role="distributor", recipient_region="350902", recipient_email="orders@nd-pharma.example.com",
            context={}, status="sent", next_attempt_at=at("2024-10-11T09:00"), sent_at=at("2024-10-11T09:01"), created_at=at("2024-10-11T09:00"),
        ))
        session.add(AuditEvent(at=at("2024-10-11T00:00"), actor="sweep", entity="obligation", entity_id=ob["jiaocheng_overdue"], action="overdue"))
        n = _notice(session, "FA-SOON", "D350902", "350981", date(2024, 10, 9), product="XB02", name="硝酸甘油片", manufacturer="=HYPERLINK(\"http://x.example\",\"点我\")")
        ob["fuan_due_soon"] = _obligation(session, n, due=date(2024, 10, 16), state="open").id
        n = _notice(session, "JC-LATE", "D350901", "350902", date(2024, 9, 20))
        late = _obligation(session, n, due=date(2024, 10, 8), state="fulfilled_late", fulfilled_at=at("2024-10-11T15:00"), late=3)
        ob["jiaocheng_late"] = late.id
        report = DistributorReport(report_id="R-JC-LATE", distributor_code="D350901", notice_id="N-JC-LATE", submitted_at=at("2024-10-11T15:00"),
                                   version=1, source="test", received_at=at("2024-10-11T15:00"), updated_at=at("2024-10-11T15:00"))
        session.add(report)
        session.flush()
        late.report_pk = report.id
        n = _notice(session, "FA-ONTIME", "D350902", "350981", date(2024, 9, 26))
        ob["fuan_on_time"] = _obligation(session, n, due=date(2024, 10, 9), state="fulfilled", fulfilled_at=at("2024-09-30T11:00")).id
        n = _notice(session, "CQ-OVERDUE", "D500003", "500103", date(2024, 9, 27))
        ob["chongqing_overdue"] = _obligation(session, n, due=date(2024, 10, 10), state="overdue").id
        n = _notice(session, "CQ-SOON", "D500003", "500103", date(2024, 10, 9))
        ob["chongqing_due_soon"] = _obligation(session, n, due=date(2024, 10, 16), state="open").id

        cs["ningde"] = _case(session, "XB02", "硝酸甘油片", "350900", at("2024-10-08T09:00"), "regional", (
            ("H350902001", "350902", "supply"), ("H350981001", "350981", "procurement"))).id
        cs["fuan_only"] = _case(session, "XC03", "阿莫西林胶囊", "350900", at("2024-10-09T09:00"), "open", (("H350981001", "350981", "supply"),)).id
        cs["chongqing"] = _case(session, "XB02", "硝酸甘油片", "500000", at("2024-10-08T09:00"), "regional", (
            ("H500103001", "500103", "supply"), ("H500103002", "500103", "procurement"))).id
    return Seeded(ob, cs)
