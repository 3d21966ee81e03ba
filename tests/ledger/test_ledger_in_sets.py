"""The ledger in sets: a file of notices does in a handful of statements per chunk exactly what its rows
do one file at a time (the row-by-row path's semantics are the specification)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, select

from shortage_watch.services.ingest import CHUNK, ingest_payload, store_payload
from shortage_watch.store.tables import (
    Alert,
    AuditEvent,
    DistributorReport,
    Obligation,
    RawPayload,
    RawReceipt,
    RecordVersion,
    ShortageCase,
    ShortageReport,
    StoppageNotice,
)
from tests.conftest import truncate_all
from tests.ledger.conftest import at

NOW = at("2024-10-21T10:00")
DISTRIBUTORS = ("D1", "D2", "D3", "D7")  # D7 is not in the directory: its mail is undeliverable
PRIORITY = (None, "negotiated", "other", "winning_bid")
REGIONS = (None, None, "350981", "500101")


def notice(i: int) -> dict[str, Any]:
    """Notice i: received between 40 days ago and today, so some arrive after levels already fell due."""
    return {
        "record_kind": "stoppage_notice",
        "notice_id": f"N{i // 4}",
        "distributor_code": DISTRIBUTORS[i % 4],
        "manufacturer": f"制药{i % 7}",
        "product_code": f"P{i % 53}",
        "product_name": f"药品{i % 53}",
        "kind": ("stoppage", "interruption", "reduction")[i % 3],
        "notified_on": (date(2024, 10, 21) - timedelta(days=i % 41)).isoformat(),
        "region_code": REGIONS[(i // 4) % 4],
        "priority_class": PRIORITY[(i // 3) % 4],
        "reason": None if i % 5 else "原料短缺",
    }


def before_the_file() -> list[dict[str, Any]]:
    """What the ledger already holds: hospitals owed an explanation about P1 and P2 (no notice yet), a report
    naming a notice that arrives later, and a report describing one."""
    shortages = [
        {"record_kind": "shortage_report", "report_id": f"S{n}", "hospital_code": "H1", "product_code": product,
         "product_name": "药品", "reported_on": "2024-10-14", "supply_status": "short", "distributor_code": "D1", "cause": "supply"}
        for n, product in enumerate(("P1", "P2"))
    ]
    reports = [
        {"record_kind": "distributor_report", "report_id": "R1", "distributor_code": "D1", "notice_id": "N0",
         "manufacturer": "制药0", "product_code": "P0", "product_name": "药品0", "kind": "stoppage", "notified_on": "2024-10-21",
         "submitted_at": "2024-10-21T09:00:00"},
        {"record_kind": "distributor_report", "report_id": "R2", "distributor_code": "D2", "manufacturer": "制药1",
         "product_code": "P5", "product_name": "药品5", "kind": "stoppage", "notified_on": "2024-10-16",
         "submitted_at": "2024-10-21T09:00:00"},
    ]
    return shortages + reports


def the_file(rows: int) -> list[dict[str, Any]]:
    records = [notice(i) for i in range(rows)]
    records[5]["notified_on"] = "2024-10-16"  # the notice R2 described (D2, P5)
    records[5]["product_code"], records[5]["product_name"] = "P5", "药品5"
    records.append(dict(records[10]))  # the same record again: a duplicate
    records.append({**records[11], "reason": "设备检修"})  # the same notice revised within the file
    return records


def ingest(app: Any, name: str, records: list[dict[str, Any]]) -> None:
    result = ingest_payload(app.ingest_deps(), source="test", name=name, content=json.dumps({"records": records}).encode(), kind="auto", now=NOW)
    assert result.status == "accepted", result.errors[:3]


def ingest_one_file_per_row(app: Any, records: list[dict[str, Any]]) -> None:
    """Each record as a file of its own, in one transaction (committing each is only slower)."""
    with app.sessions.begin() as session:
        for n, record in enumerate(records):
            result = store_payload(session, app.ingest_deps(), source="test", name=f"row-{n}.json", now=NOW, kind="auto",
                                   content=json.dumps({"records": [record]}).encode())
            assert result.status == "accepted", result.errors


def ledger_contents(app: Any) -> dict[str, list[Any]]:
    """Obligations, alerts and audit events, every column but ids and claims; ids are named by what they are about."""
    with app.sessions() as session:
        obligations = session.scalars(select(Obligation)).all()
        notices = {n.id: f"{n.notice_id}/{n.distributor_code}" for n in session.scalars(select(StoppageNotice))}
        reports = {r.id: r.report_id for r in session.scalars(select(DistributorReport))}
        cases = {c.id: f"{c.product_code}/{c.city_code}" for c in session.scalars(select(ShortageCase))}
        name = {o.id: o.subject_key for o in obligations}

        def named(value: Any) -> Any:
            if isinstance(value, str):
                value = re.sub(r"SW-O-(\d+)", lambda m: f"SW-O-{name[int(m.group(1))]}", value)
                return re.sub(r"\bO(\d+)\b", lambda m: f"O<{name[int(m.group(1))]}>", value)
            if isinstance(value, dict):
                return {k: named(v) for k, v in value.items()}
            if isinstance(value, list):
                return [named(v) for v in value]
            return value

        def row(obj: Any, skip: tuple[str, ...]) -> str:
            values = {c.key: getattr(obj, c.key) for c in obj.__table__.c if c.key not in ("id", *skip)}
            return json.dumps(named(values), sort_keys=True, default=str, ensure_ascii=False)

        result = {
            "obligations": sorted(
                row(o, ("claimed_by", "claimed_until")) + f" notice={notices.get(o.notice_pk)} report={reports.get(o.report_pk)}"
                f" case={cases.get(o.case_id)}"
                for o in obligations
            ),
            "alerts": sorted(row(a, ()) for a in session.scalars(select(Alert))),
            "audit": sorted(
                row(e, ("entity_id",)) + f" about={name.get(e.entity_id) if e.entity == 'obligation' else cases.get(e.entity_id)}"
                for e in session.scalars(select(AuditEvent))
            ),
        }
        # Opened obligations stand for notices: no obligation may be left out of the comparison.
        result["obligations"] = result["obligations"] + [f"{len(obligations)} obligations"]
        return result


def wipe(app: Any) -> None:
    """Empty the ledger so the second run numbers its rows from 1 again, as the first did."""
    if app.engine.dialect.name == "postgresql":
        truncate_all(app.engine)  # a DELETE would leave the sequences (case ids appear in subject keys) running on
        return
    with app.sessions.begin() as session:
        for table in (Alert, AuditEvent, Obligation, ShortageReport, ShortageCase, DistributorReport, StoppageNotice, RecordVersion,
                      RawReceipt, RawPayload):
            session.execute(delete(table))


@pytest.mark.slow  # 5,002 rows twice, one file per row the second time: the slowest test of the suite
def test_a_file_of_notices_writes_exactly_what_its_rows_write_one_file_each(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    records = the_file(5000)
    ingest(app, "before.json", before_the_file())
    ingest(app, "all.json", records)
    in_sets = ledger_contents(app)
    if app.engine.dialect.name == "sqlite":  # PostgreSQL keeps JSONB, not the text written
        with app.engine.connect() as conn:
            stored = [text for (text,) in conn.exec_driver_sql("SELECT context FROM alerts")]
        # Alert contexts are written as spliced JSON text: each must be what json.dumps writes of it, key order too.
        assert len(stored) > 10000 and all(text == json.dumps(json.loads(text)) for text in stored)

    wipe(app)
    ingest(app, "before.json", before_the_file())
    ingest_one_file_per_row(app, records)
    one_by_one = ledger_contents(app)

    assert len(in_sets["obligations"]) > 5000 and len(in_sets["alerts"]) > 10000
    actions = " ".join(in_sets["audit"])
    for action in ('"level_skipped"', '"levels"', '"cancelled"', '"notice_linked"', '"opened"'):
        assert action in actions  # the file reaches every rule the opening of a notice has
    for table in ("obligations", "alerts", "audit"):
        assert in_sets[table] == one_by_one[table], table


def test_a_chunk_of_notices_costs_a_handful_of_statements(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    statements: list[str] = []
    event.listen(app.engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: statements.append(sql))
    ingest(app, "all.json", [notice(i) for i in range(4 * CHUNK)])
    with app.sessions() as session:
        assert len(session.scalars(select(Alert.id)).all()) > 4 * CHUNK
    # Per chunk: the rows, their versions, the current rows, the known obligations, the new ones, their
    # alerts, their audit events, the explanations owed: a handful, whatever the chunk's size.
    # Row by row it was several per notice.
    chunks = sum(1 for sql in statements if sql.startswith("INSERT INTO obligations"))
    assert len(statements) <= 20 * chunks and len(statements) < 4 * CHUNK / 2, statements[:40]
