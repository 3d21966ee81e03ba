"""Hospital reports in sets: a chunk of hospital reports, new or revised, joins its cases (opening them, making
them regional, resolving them, opening explanations and writing alerts and audit) in a handful of statements,
however many reports the chunk has. What they write is test_reports_in_sets.py's."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta

from sqlalchemy import event, func, select

from shortage_watch.services.ingest import ingest_payload
from shortage_watch.services.ledger import LedgerListener
from shortage_watch.store.tables import Alert, AuditEvent, Obligation, ShortageCase, ShortageReport
from tests.ledger.conftest import at
from tests.ledger.test_ledger_in_sets import ingest, notice, wipe
from tests.ledger.test_reports_in_sets import hospital_report, hospital_revision

NOW = at("2024-10-21T10:00")
PRODUCTS = 50


def stored_reports(session, first: int, count: int) -> list[ShortageReport]:
    """Hospital reports first..first+count-1, stored as ingest stores them: five hospitals of 宁德 and one of 重庆
    short of G0..G49 (so cases turn regional), some naming their distributor (owed an explanation), some
    blaming procurement (a false shortage), some saying the supply is back; and a case opened and resolved."""
    rows = []
    for i in range(first, first + count):
        hospital = ("H1", "H2", "H3", "H4", "H5", "H9")[(i // PRODUCTS) % 6]
        rows.append(ShortageReport(
            report_id=f"S{i}", hospital_code=hospital, region_code="500101" if hospital == "H9" else ("350902", "350981")[i % 2],
            product_code=f"G{i % PRODUCTS}", product_name=f"药品G{i % PRODUCTS}", reported_on=date(2024, 10, 21) - timedelta(days=i % 5),
            supply_status="resolved" if i % 17 == 0 else ("short", "severe")[i % 2], cause="procurement" if i % 7 == 0 else "supply",
            distributor_code="D1" if i % 3 == 0 else None, source="test", received_at=NOW, updated_at=NOW, version=1,
        ))
    for status in ("short", "resolved"):  # one hospital short of a product, then supplied: opened and resolved
        rows.append(ShortageReport(
            report_id=f"R{first}-{status}", hospital_code="H1", region_code="350902", product_code=f"R{first}", product_name="药品R",
            reported_on=date(2024, 10, 21), supply_status=status, source="test", received_at=NOW, updated_at=NOW, version=1,
        ))
    session.add_all(rows)
    session.flush()
    return rows


def statements_joining(app, reports: int) -> int:
    """Statements the ledger runs for one chunk of `reports` hospital reports about cases already open."""
    wipe(app)
    listener = LedgerListener(app.ledger_deps())
    with app.sessions.begin() as session:
        listener.records_stored(session, "shortage_report", stored_reports(session, 0, PRODUCTS), NOW)  # the cases open
    statements: list[str] = []

    def count(conn, cursor, sql, *rest) -> None:
        statements.append(sql)

    with app.sessions.begin() as session:
        rows = stored_reports(session, PRODUCTS, reports)
        event.listen(app.engine, "before_cursor_execute", count)
        try:
            listener.records_stored(session, "shortage_report", rows, NOW)
        finally:
            event.remove(app.engine, "before_cursor_execute", count)
    with app.sessions() as session:
        joined = session.scalar(select(func.count()).select_from(ShortageReport).where(ShortageReport.case_id.is_not(None)))
        assert joined > reports * 0.9
        assert session.scalar(select(func.count()).select_from(ShortageCase).where(ShortageCase.state == "regional"))
        assert session.scalar(select(func.count()).select_from(Obligation).where(Obligation.kind == "explanation"))
        assert session.scalar(select(func.count()).select_from(Alert).where(Alert.template == "false_shortage"))
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "resolved"))
    return len(statements)


def test_a_chunk_of_hospital_reports_costs_a_handful_of_statements_whatever_its_size(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    few, many = statements_joining(app, 100), statements_joining(app, 400)
    # Reads of the chunk's cases, reports, closures, notices and explanations owed; the new cases, the
    # links, the explanations with their alerts, the chunk's alerts, audit and the cases' new state.
    # Row by row it was several statements per report: 1,033 for 100 here, 3,221 for 400; now 18 (19 on PostgreSQL) for either.
    assert many - few < 10 and many < 40, (few, many)


def statements_revising(app, reports: int) -> list[tuple[int, int]]:
    """(revised reports, statements) of each set the ledger is told of when a file revises `reports` hospital
    reports, each one of six ways (resolved, another cause, city, product or distributor, the status turned)."""
    wipe(app)
    ingest(app, "before.json", [notice(j) for j in range(16)] + [hospital_report(i) for i in range(reports)])
    statements: list[str] = []
    sets: list[tuple[int, int]] = []

    class CountingLedger(LedgerListener):
        def records_revised(self, session, kind, revised, now) -> None:
            start = len(statements)
            event.listen(app.engine, "before_cursor_execute", count)
            try:
                super().records_revised(session, kind, revised, now)
            finally:
                event.remove(app.engine, "before_cursor_execute", count)
            sets.append((len(revised), len(statements) - start))

    def count(conn, cursor, sql, *rest) -> None:
        statements.append(sql)

    deps = dataclasses.replace(app.ingest_deps(), listener=CountingLedger(app.ledger_deps()))
    revised = [hospital_revision(n % 6, n, hospital_report(n)) for n in range(reports)]
    result = ingest_payload(deps, source="test", name="revised.json", content=json.dumps({"records": revised}).encode(), kind="auto", now=NOW)
    assert result.status == "accepted" and result.revisions > 0.9 * reports, result.errors[:3]  # the others change nothing
    assert sum(n for n, _ in sets) == result.revisions
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "resolved"))
        assert session.scalar(select(func.count()).select_from(Alert).where(Alert.template == "false_shortage"))
    return sets


def test_revised_hospital_reports_cost_a_handful_of_statements_a_chunk_whatever_its_size(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    few, many = statements_revising(app, 100), statements_revising(app, 400)
    # Per set, as for new reports: the chunk's cases, their reports, closures, notices and explanations owed;
    # the new cases, links, explanations, alerts, audit and the cases' new state: 11 to 18 statements (12 to 19
    # on PostgreSQL) for sets of 18 to 151. One revised report at a time it was about 8 per report: 770 for
    # the 100 here, 2,990 for the 400.
    most_of_few, most_of_many = (max(statements for _, statements in sets) for sets in (few, many))
    assert most_of_many < 30 and most_of_many - most_of_few < 10, (few, many)
