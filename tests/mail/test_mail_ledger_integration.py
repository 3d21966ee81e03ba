"""The ledger's real alerts, mailed: ingest (INTAKE) → run_cycle's sweep (LEDGER) → deliver_due,
walked through National Day 2024 until every level of both ladders has fired. Every alert the
escalation writes must render in its language and arrive; none may go dead."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from shortage_watch.services.cycle import run_cycle
from shortage_watch.services.deliver import deliver_due
from shortage_watch.services.digests import send_daily_digests, send_monthly_summaries
from shortage_watch.services.ingest import ingest_payload
from shortage_watch.store.tables import Alert

from .test_mail_digests import write_directory

SH = ZoneInfo("Asia/Shanghai")
POLICY = Path(__file__).resolve().parents[2] / "config" / "escalation.toml"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=SH)


def ingest(app, now: dt.datetime, *records: dict) -> None:
    result = ingest_payload(app.ingest_deps(), source="test", name=f"batch-{now:%m%d%H%M}.json", content=json.dumps(list(records)).encode(),
                            kind="auto", now=now)
    assert not result.errors, result.errors


def notice(notice_id: str, distributor: str, product: str, name: str, notified_on: str, **extra) -> dict:
    return {"record_kind": "stoppage_notice", "notice_id": notice_id, "manufacturer": "华北制药股份有限公司", "product_code": product,
            "product_name": name, "specification": "1.0g/支", "kind": "stoppage", "distributor_code": distributor,
            "notified_on": notified_on, **extra}


def shortage(report_id: str, hospital: str, region: str, reported_on: str, cause: str = "supply") -> dict:
    return {"record_kind": "shortage_report", "report_id": report_id, "hospital_code": hospital, "region_code": region,
            "product_code": "XB02", "product_name": "硝酸甘油片", "reported_on": reported_on, "supply_status": "short",
            "stock_days": 3, "monthly_demand": 500, "demand_unit": "片", "distributor_code": "D1", "cause": cause}


def test_every_alert_the_ledger_writes_is_rendered_and_delivered(make_app, tmp_path):
    app = make_app(directory=write_directory(tmp_path), escalation={"policy": str(POLICY)})
    ingest(app, at("2024-09-27T10:00"),
           notice("N1", "D1", "XA01", "注射用头孢曲松钠", "2024-09-27", priority_class="winning_bid"),
           notice("N2", "D2", "XA02", "阿莫西林胶囊", "2024-09-27"))
    ingest(app, at("2024-10-08T09:30"),
           {"record_kind": "distributor_report", "report_id": "R-2", "distributor_code": "D2", "notice_id": "N2",
            "submitted_at": "2024-10-08T09:30:00"},
           {"record_kind": "distributor_report", "report_id": "R-X", "distributor_code": "D1", "manufacturer": "某某制药",
            "product_code": "XC03", "product_name": "葡萄糖酸钙注射液", "kind": "interruption", "notified_on": "2024-09-20",
            "submitted_at": "2024-10-08T09:30:00"},
           shortage("S1", "H1", "350902", "2024-10-08"), shortage("S2", "H2", "350921", "2024-10-08", cause="procurement"))
    ingest(app, at("2024-10-09T10:00"), shortage("S3", "H3", "350902", "2024-10-09"), shortage("S4", "H4", "350921", "2024-10-09"))
    day = at("2024-09-27T10:05")
    while day < at("2024-11-30T10:00"):
        result = run_cycle(app.cycle_deps(), day)
        assert not result.errors, result.errors
        send_daily_digests(app.digest_deps(), day)
        send_monthly_summaries(app.digest_deps(), day)
        day += dt.timedelta(days=1)
    deliver_due(app.deliver_deps(), at("2024-11-29T16:00"))  # what the last day's digest wrote

    with app.sessions() as session:
        rows = list(session.scalars(select(Alert)))
    by_status: dict[str, list[Alert]] = {}
    for row in rows:
        by_status.setdefault(row.status, []).append(row)
    assert "dead" not in by_status, [(r.template, r.last_error) for r in by_status["dead"]]
    assert "pending" not in by_status and "sending" not in by_status and "digest" not in by_status
    templates = {r.template for r in by_status["sent"]}
    print(f"\n{len(rows)} alerts: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(by_status.items())) + f"; templates sent: {sorted(templates)}")
    assert {"receipt", "notice_opened", "reminder", "written_reminder", "overdue_alert", "interview_recommendation", "province_escalation",
            "late_report", "explanation_request", "regional_shortage", "regional_escalation", "false_shortage", "digest", "monthly_summary"} <= templates

    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == len(by_status["sent"])
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert msg["Subject"] and msg.get_body(("plain",)).get_content() and msg.get_body(("html",)).get_content()
