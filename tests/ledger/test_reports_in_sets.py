"""Reports in sets: a file of distributor reports, a file of revisions and a file of hospital shortage
reports each write exactly what their rows write one file at a time (the row-by-row path's semantics
are the specification): the same obligations, cases, alerts (dedup keys, recipients, templates),
audit events and deadlines."""

from __future__ import annotations

import dataclasses
import json
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any, Iterator

import pytest
from sqlalchemy import Engine, event, select

from shortage_watch.services.ingest import ingest_payload
from shortage_watch.services.record_writer import NoopRecordListener
from shortage_watch.services.report_fulfilment import distributor_reports_stored
from shortage_watch.store.tables import DistributorReport, Obligation, ShortageCase, ShortageReport
from tests.ledger.test_ledger_in_sets import DISTRIBUTORS, NOW, ingest, ingest_one_file_per_row, ledger_contents, notice, wipe

TODAY = date(2024, 10, 21)
NOTICES = 400  # before the report files: N0..N99, each to D1, D2, D3 and D7 (see `notice`)


def notice_of(j: int) -> dict[str, Any]:
    """Notice j of the ledger (`notice(j)`): its id, distributor, product and date."""
    return notice(j)


def submitted(notified_on: str, days: int) -> str:
    """`days` after the notice at 09:00 Shanghai, never after the test's now (2024-10-21 10:00)."""
    day = min(date.fromisoformat(notified_on) + timedelta(days=days), TODAY)
    return f"{day.isoformat()}T09:00:00"


def unexplained_shortages() -> list[dict[str, Any]]:
    """Hospitals short of Q0..Q4 (no notice about them): D1 and D2 owe explanations, opened 9 to 1 days ago."""
    return [
        {"record_kind": "shortage_report", "report_id": f"U{n}", "hospital_code": f"H{1 + n % 5}", "product_code": f"Q{n % 5}",
         "product_name": f"药品Q{n % 5}", "reported_on": (TODAY - timedelta(days=1 + n)).isoformat(), "supply_status": "short",
         "distributor_code": ("D1", "D2")[n % 2], "cause": "supply"}
        for n in range(10)
    ]


def ledger_before_reports() -> list[dict[str, Any]]:
    """Notices (some long overdue, so chasers wait in the outbox) and unexplained shortages."""
    return [notice(j) for j in range(NOTICES)] + unexplained_shortages()


def distributor_report(i: int) -> dict[str, Any]:
    """Report i: most name a notice of the ledger and fulfil its obligation (on time or late); some describe
    a notice instead, some answer a notice never seen (opened and fulfilled at once), some repeat an earlier
    report of the same notice, some come from a distributor not in the directory, some explain a shortage."""
    shape = i % 10
    j = (i * 37) % NOTICES
    if shape == 9:
        j = (((i - 9) * 37) % NOTICES)  # the notice report i-9 answered: a second report of it
    if shape == 8:
        j = 4 * ((i * 13) % (NOTICES // 4)) + 3  # a notice to D7, not in the directory
    known = notice_of(j)
    report: dict[str, Any] = {"record_kind": "distributor_report", "report_id": f"R{i}", "distributor_code": known["distributor_code"],
                              "submitted_at": submitted(known["notified_on"], i % 13), "hospitals_notified": i % 4}
    if shape in (0, 1, 2, 3, 8, 9):
        report["notice_id"] = known["notice_id"]
    elif shape == 4:  # describes a notice of the ledger, without its id
        report.update({k: known[k] for k in ("manufacturer", "product_code", "product_name", "kind", "notified_on")})
    else:  # a notice never seen: named (5) or only described (6), or an explanation of a shortage (7)
        product = f"Q{(i // 10) % 5}" if shape == 7 else f"Z{i % 17}"
        distributor = ("D1", "D2")[(i // 10) % 2] if shape == 7 else ("D1", "D2", "D3")[i % 3]
        report.update(distributor_code=distributor, manufacturer="某制药",
                      product_code=product, product_name=f"药品{product}", kind="stoppage",
                      notified_on=(TODAY - timedelta(days=i % 23)).isoformat())
        report["submitted_at"] = submitted(report["notified_on"], i % 11)
        if shape == 5:
            report["notice_id"] = f"X{i}"
    return report


def report_file(rows: int) -> list[dict[str, Any]]:
    records = [distributor_report(i) for i in range(rows)]
    records.append(dict(records[10]))  # the same report again: a duplicate
    return records


def hospital_report(i: int) -> dict[str, Any]:
    """Hospital report i: five hospitals of 宁德 (two counties), one of 重庆 and one not in the directory, short of
    G0..G12 over three weeks, so some cases turn regional (3 hospitals in 7 days); some hospitals report the
    supply resolved (every part closed: the case is resolved, a later report opens a new one), some blame
    procurement (a false shortage), some name their distributor (owed an explanation unless a notice exists)."""
    hospital = ("H1", "H2", "H3", "H4", "H5", "H9", "H77")[i % 7]
    product = f"G{(i // 3) % 13}" if i % 11 else "P3"  # P3 has notices: no explanation owed
    record: dict[str, Any] = {
        "record_kind": "shortage_report", "report_id": f"S{i}", "hospital_code": hospital, "product_code": product,
        "product_name": f"药品{product}", "reported_on": (TODAY - timedelta(days=(i * 5) % 21)).isoformat(),
        "supply_status": ("short", "severe", "short", "resolved", "short")[i % 5] if i % 4 else "short",
        "cause": (None, "supply", "procurement", "other", "supply", "supply")[i % 6],
        "stock_days": i % 9, "monthly_demand": 10 * (i % 7), "demand_unit": "盒",
    }
    if i % 3:
        record["distributor_code"] = DISTRIBUTORS[i % 4]
    if hospital == "H77" and i % 2:
        record["region_code"] = "350902"
    return record


def hospital_file(rows: int) -> list[dict[str, Any]]:
    records = [hospital_report(i) for i in range(rows)]
    records.append(dict(records[7]))  # a duplicate
    return records


def revisions() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(what the ledger holds, the file of revisions): notices whose date moves (the deadline with it, some
    of them already reported, so the fulfilment is judged again), whose region is corrected, or whose text
    alone changes; reports whose submission time or notice is corrected; hospitals reporting a shortage resolved;
    and a record revised twice in the file."""
    notices = [notice(j) for j in range(NOTICES)]
    reports = [distributor_report(i) for i in range(0, 120, 2)]
    shortages = [hospital_report(i) for i in range(60)]
    revised: list[dict[str, Any]] = []
    for j, original in enumerate(notices[:160]):
        if j % 3 == 0:
            moved = date.fromisoformat(original["notified_on"]) + timedelta(days=(-4, -2, 3, 9)[j % 4])
            revised.append({**original, "notified_on": min(moved, TODAY).isoformat()})
        elif j % 3 == 1 and j % 2:
            revised.append({**original, "region_code": ("350902", "350981", "500101")[j % 3]})
        elif j % 5 == 0:
            revised.append({**original, "reason": "设备改造"})
    for n, original in enumerate(reports):
        if n % 2 == 0:
            moved_at = datetime.fromisoformat(original["submitted_at"]) + timedelta(days=(-6, 5, 2)[n % 3])
            revised.append({**original, "submitted_at": min(moved_at, datetime(2024, 10, 21, 9)).isoformat()})
        elif n % 6 == 1 and original.get("notice_id", "").startswith("N") and int(original["notice_id"][1:]) + 1 < NOTICES // 4:
            # Corrected to the distributor's next notice: the one it named is owed again.
            revised.append({**original, "notice_id": f"N{int(original['notice_id'][1:]) + 1}"})
    for n, original in enumerate(shortages):
        if n % 3 == 0:
            revised.append({**original, "supply_status": "resolved"})
        elif n % 7 == 1:
            revised.append({**original, "cause": "procurement"})
    revised.append({**revised[0], "notified_on": (TODAY - timedelta(days=30)).isoformat()})  # revised again
    revised.append({**revised[-2], "stock_days": 99})
    return notices + reports + shortages, revised


def hospital_revision(shape: int, n: int, original: dict[str, Any]) -> dict[str, Any]:
    """Hospital report `original` revised one of six ways (`shape`): the supply resolved, the other cause blamed
    (procurement or supply), placed in another city, about another product, naming a distributor, or the status
    turned (short again when it was resolved)."""
    if shape == 0:
        return {**original, "supply_status": "resolved"}
    if shape == 1:
        return {**original, "cause": "supply" if original["cause"] == "procurement" else "procurement"}
    if shape == 2:  # the hospital's report places it in another city
        return {**original, "region_code": "500101" if original.get("region_code") != "500101" else "350902"}
    if shape == 3:
        product = f"G{(n // 3 + 5) % 13}"
        return {**original, "product_code": product, "product_name": f"药品{product}"}
    if shape == 4:
        return {**original, "distributor_code": DISTRIBUTORS[(n // 8) % 4]}
    return {**original, "supply_status": "severe" if original["supply_status"] == "resolved" else "resolved"}


def hospital_revisions() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(what the ledger holds, a file of revised hospital reports): hospitals reporting the supply resolved
    (parts close, cases resolve) or short again (a resolved case gives way to a new one), changing the cause they
    blame (procurement: a false shortage; supply: counts towards a regional shortage) or the distributor they name
    (owed an explanation), a report placed in another city or corrected to another product (each leaves its
    case for the case of its new key); some reports revised a second time, then new reports of the same cases.
    Three hospitals short of K1 for procurement all blame supply instead (the case turns regional on the third)
    and three short of K2 for supply all blame procurement (each false-shortage alert counts those before it)."""
    notices = [notice(j) for j in range(16)]  # P0..P15 have notices
    shortages = [hospital_report(i) for i in range(150)]
    for n, (hospital, day) in enumerate((("H1", 1), ("H3", 2), ("H5", 3))):
        for product, cause in (("K1", "procurement"), ("K2", "supply")):
            shortages.append({"record_kind": "shortage_report", "report_id": f"{product}-{n}", "hospital_code": hospital,
                              "product_code": product, "product_name": f"药品{product}", "supply_status": "short", "cause": cause,
                              "reported_on": (TODAY - timedelta(days=day)).isoformat()})
    revised = [hospital_revision(n % 8, n, original) for n, original in enumerate(shortages[:150]) if n % 8 < 6]
    revised += [hospital_revision(1, n, original) for n, original in enumerate(shortages[150:])]
    revised += [{**again, "supply_status": "short", "stock_days": 1} for again in revised[:40:4]]  # revised a second time
    # New reports last: the record writer tells a chunk's revisions before its new rows.
    revised += [hospital_report(i) for i in range(150, 180)]
    return notices + shortages, revised


def contents(app: Any) -> dict[str, list[Any]]:
    """`ledger_contents`, with the shortage cases (every column but the id and claims) and which case each
    hospital report joined."""
    result = ledger_contents(app)
    with app.sessions() as session:
        result["cases"] = sorted(
            json.dumps({c.key: getattr(case, c.key) for c in ShortageCase.__table__.c if c.key not in ("claimed_by", "claimed_until")},
                       sort_keys=True, default=str, ensure_ascii=False)
            for case in session.scalars(select(ShortageCase))
        )
        result["joined"] = sorted(f"{r.hospital_code}/{r.report_id} -> {r.case_id}" for r in session.scalars(select(ShortageReport)))
    return result


def in_sets_and_one_by_one(app: Any, before: list[dict[str, Any]], records: list[dict[str, Any]]) -> tuple[dict, dict]:
    """The ledger after `before` and then `records` as one file, and after the same with each record a file of its own."""
    ingest(app, "before.json", before)
    ingest(app, "all.json", records)
    in_sets = contents(app)
    wipe(app)
    ingest(app, "before.json", before)
    ingest_one_file_per_row(app, records)
    return in_sets, contents(app)


def assert_same(in_sets: dict, one_by_one: dict) -> None:
    for table in ("obligations", "cases", "joined", "alerts", "audit"):
        assert in_sets[table] == one_by_one[table], table


def actions(contents: dict) -> str:
    return " ".join(contents["audit"])


def templates(contents: dict) -> set[str]:
    return {json.loads(alert)["template"] for alert in contents["alerts"]}


@pytest.mark.slow  # 600 reports one file each (10-25 s per database)
def test_a_file_of_distributor_reports_writes_exactly_what_its_rows_write_one_file_each(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    in_sets, one_by_one = in_sets_and_one_by_one(app, ledger_before_reports(), report_file(600))

    for action in ('"fulfilled"', '"fulfilled_late"', '"opened_by_report"', '"stale"', '"opened"'):
        assert action in actions(in_sets)  # the file reaches every rule a report has
    assert "late_report" in templates(in_sets)
    explained = [line for line in in_sets["obligations"] if '"kind": "explanation"' in line]
    assert explained and all('"state": "fulfilled' in line for line in explained)
    assert_same(in_sets, one_by_one)


@pytest.mark.slow  # a few hundred revisions one file each
def test_a_file_of_revisions_writes_exactly_what_its_rows_write_one_file_each(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    before, revised = revisions()
    in_sets, one_by_one = in_sets_and_one_by_one(app, before, revised)

    for action in ('"deadline_moved"', '"region_changed"', '"fulfilled_late"', '"resolved"', '"reopened"'):
        assert action in actions(in_sets)
    assert_same(in_sets, one_by_one)


@pytest.mark.slow  # 420 hospital reports one file each
def test_a_file_of_hospital_reports_writes_exactly_what_its_rows_write_one_file_each(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    before = [notice(j) for j in range(16)]  # P0..P15 have notices
    in_sets, one_by_one = in_sets_and_one_by_one(app, before, hospital_file(420))

    for action in ('"regional"', '"resolved"', '"opened"'):
        assert action in actions(in_sets)
    assert {"false_shortage", "regional_shortage", "explanation_request"} <= templates(in_sets)
    assert any('"kind": "explanation"' in line for line in in_sets["obligations"])
    states = [json.loads(case)["state"] for case in in_sets["cases"]]
    assert "regional" in states and "resolved" in states
    assert_same(in_sets, one_by_one)


def test_a_file_of_revised_hospital_reports_writes_exactly_what_its_rows_write_one_file_each(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    before, revised = hospital_revisions()
    in_sets, one_by_one = in_sets_and_one_by_one(app, before, revised)

    for action in ('"regional"', '"resolved"', '"opened"'):
        assert action in actions(in_sets)
    assert {"false_shortage", "regional_shortage", "explanation_request"} <= templates(in_sets)
    assert any('"action": "regional"' in line and line.endswith("about=K1/350900") for line in in_sets["audit"])
    assert_same(in_sets, one_by_one)


@contextmanager
def statements_run(engine: Engine) -> Iterator[list[str]]:
    """The SQL of every statement `engine` runs within the block, in order."""
    statements: list[str] = []
    listen = lambda conn, cursor, sql, *rest: statements.append(sql)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def statements_of_a_set(app: Any, reports: list[dict[str, Any]]) -> list[str]:
    """The statements `distributor_reports_stored` runs for `reports` as one set (stored first without the ledger)."""
    ingest_deps = dataclasses.replace(app.ingest_deps(), listener=NoopRecordListener())
    stored = ingest_payload(ingest_deps, source="test", name="reports.json", content=json.dumps({"records": reports}).encode(),
                            kind="auto", now=NOW)
    assert stored.accepted == len(reports), stored.errors[:3]
    with app.sessions.begin() as session:
        rows = list(session.scalars(select(DistributorReport).where(DistributorReport.report_id.in_([r["report_id"] for r in reports]))
                                    .order_by(DistributorReport.id)))
        with statements_run(app.engine) as statements:
            distributor_reports_stored(session, app.ledger_deps(), rows, NOW)
    return statements


def test_a_set_of_reports_costs_the_same_few_statements_whatever_its_size(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    ingest(app, "before.json", [notice(j) for j in range(NOTICES)])
    # Every shape but the explanations (each reads its case for its late alert: bounded by the ledger, not the set).
    reports = [distributor_report(i) for i in range(500) if i % 10 != 7]

    small = statements_of_a_set(app, reports[:90])
    large = statements_of_a_set(app, reports[90:])

    with app.sessions() as session:
        fulfilled = session.scalars(select(Obligation.state).where(Obligation.report_pk.is_not(None))).all()
        assert len(fulfilled) > 300 and "fulfilled_late" in fulfilled
    # 90 and 360 reports: 15 statements each. One by one it was several per report (788 and 2,750).
    assert len(small) < 30 and len(large) - len(small) < 10, (len(small), len(large), large[:40])


def test_a_file_of_revised_reports_costs_the_same_few_statements_a_chunk_whatever_its_size(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    ingest(app, "before.json", [notice(j) for j in range(NOTICES)])
    reports = [distributor_report(i) for i in range(500) if i % 10 != 7]
    ingest(app, "reports.json", reports)

    def statements_revising(revised: list[dict[str, Any]]) -> tuple[int, int]:
        """Statements and chunks of ingesting `revised`: each report submitted a day later (never after 09:00 today)."""
        with statements_run(app.engine) as statements:
            ingest(app, f"revised-{len(revised)}.json", [
                {**report, "submitted_at": min(datetime.fromisoformat(report["submitted_at"]) + timedelta(days=1),
                                               datetime(2024, 10, 21, 9)).isoformat()}
                for report in revised
            ])
        chunks = sum(1 for sql in statements if sql.startswith("UPDATE raw_receipts SET accepted"))  # the tally, once a chunk
        return len(statements), chunks

    small, small_chunks = statements_revising(reports[:90])
    large, large_chunks = statements_revising(reports[90:])

    with app.sessions() as session:
        assert "fulfilled_late" in session.scalars(select(Obligation.state)).all()
    # Per chunk (about 20): the current rows, their versions, the notices named, the revised rows and their
    # versions, the reports' notices, obligations and owed explanations, the fulfilments, chasers, alerts
    # and audit. One revision at a time: 724 statements for the 90 (3 chunks), 3,097 for the 270.
    assert large / large_chunks < 40 and small / small_chunks < 40, (small, small_chunks, large, large_chunks)


def test_a_new_report_before_a_revision_in_one_file_is_told_in_file_order(db_url, make_app):
    """H1's report is the only part of a case; a file holds H3's new report of the same product, then H1's
    revision to resolved. One file per row: H3 joins the case, H1 resolves its own part, the case stays
    open. Told revisions first, the case resolved and H3 opened a second one."""
    app = make_app(db_url, now="2024-10-21T10:00")
    h1 = {"record_kind": "shortage_report", "report_id": "S1", "hospital_code": "H1", "product_code": "XB02",
          "product_name": "硝酸甘油片", "reported_on": "2024-10-18", "supply_status": "short"}
    h3 = {**h1, "report_id": "S2", "hospital_code": "H3", "reported_on": "2024-10-21"}
    in_sets, one_by_one = in_sets_and_one_by_one(app, [h1], [h3, {**h1, "supply_status": "resolved"}])

    assert [json.loads(case)["state"] for case in in_sets["cases"]] == ["open"]
    assert_same(in_sets, one_by_one)
