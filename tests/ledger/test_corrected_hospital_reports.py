"""A hospital report corrected to another product or city counts in the case of what it is about now: it
leaves the open case it joined, which is judged on the reports it keeps (resolved when none is left, or
when every part left is closed), and joins or opens the case of its new key. One file gives what one file
per row gives."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from shortage_watch.services.cases import ALL_SUPPLIED, MOVED_AWAY
from shortage_watch.store.tables import AuditEvent, ShortageCase, ShortageReport
from tests.ledger.test_reports_in_sets import TODAY, assert_same, in_sets_and_one_by_one
from tests.ledger.test_ledger_in_sets import ingest


def shortage(report_id: str, hospital: str, product: str, status: str = "short", **more: Any) -> dict[str, Any]:
    return {"record_kind": "shortage_report", "report_id": report_id, "hospital_code": hospital, "product_code": product,
            "product_name": f"药品{product}", "supply_status": status, "cause": "supply",
            "reported_on": (TODAY - timedelta(days=1)).isoformat(), **more}


# 宁德 (city 350900): H1, H2, H3; 重庆 (500101): what H2 is corrected to.
BEFORE = [shortage("A1", "H1", "G1"), shortage("A2", "H2", "G1"), shortage("A3", "H3", "G1", "resolved"),
          shortage("B1", "H1", "G7"), shortage("B2", "H2", "G7", "resolved")]


def cases_and_reports(app: Any) -> tuple[dict[str, tuple[str, str | None]], dict[str, str | None]]:
    """Each case (product/city: state, resolution note) and each report's case (product/city, or None)."""
    with app.sessions() as session:
        cases = {case.id: case for case in session.scalars(select(ShortageCase))}
        named = {case_id: f"{case.product_code}/{case.city_code}" for case_id, case in cases.items()}
        joined = {report.report_id: named.get(report.case_id) for report in session.scalars(select(ShortageReport))}
        resolved = list(session.scalars(select(AuditEvent.entity_id).where(AuditEvent.entity == "case", AuditEvent.action == "resolved")))
    assert sorted(resolved) == sorted(case_id for case_id, case in cases.items() if case.state == "resolved")  # each audited
    return {named[case_id]: (case.state, case.resolution_note) for case_id, case in cases.items()}, joined


def test_a_corrected_report_leaves_its_case_for_the_case_of_what_it_is_about(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    ingest(app, "before.json", BEFORE)
    assert cases_and_reports(app) == ({"G1/350900": ("open", None), "G7/350900": ("open", None)},
                                      {"A1": "G1/350900", "A2": "G1/350900", "A3": "G1/350900", "B1": "G7/350900", "B2": "G7/350900"})

    ingest(app, "product.json", [shortage("A1", "H1", "G2")])  # H1 meant G2
    cases, joined = cases_and_reports(app)
    assert (cases["G1/350900"], cases["G2/350900"]) == (("open", None), ("open", None))  # H2 is still short of G1
    assert (joined["A1"], joined["A2"]) == ("G2/350900", "G1/350900")

    ingest(app, "city.json", [shortage("A2", "H2", "G1", region_code="500101")])  # H2's report placed in 重庆
    cases, joined = cases_and_reports(app)
    # G1 in 宁德 keeps H3's closed part alone: resolved as every part closed; 重庆 has its own case now.
    assert cases["G1/350900"] == ("resolved", ALL_SUPPLIED) and cases["G1/500000"] == ("open", None)
    assert (joined["A2"], joined["A3"]) == ("G1/500000", "G1/350900")

    # H1's open report of G7 corrected to G8, supplied: no case of G8 to close, and G7 keeps H2's closed part.
    ingest(app, "supplied.json", [shortage("B1", "H1", "G8", "resolved")])
    cases, joined = cases_and_reports(app)
    assert cases["G7/350900"] == ("resolved", ALL_SUPPLIED) and "G8/350900" not in cases
    assert joined["B1"] is None

    ingest(app, "again.json", [shortage("A1", "H1", "G9")])  # G2 loses its only report
    cases, joined = cases_and_reports(app)
    assert cases["G2/350900"] == ("resolved", MOVED_AWAY) and cases["G9/350900"] == ("open", None)
    # What an officer reads on the case page: each note the ledger wrote itself says it in Chinese, then English.
    notes = {note for _, note in cases.values() if note is not None}
    assert len(notes) == 2 and all(re.fullmatch(r"[\u4e00-\u9fff][^/]* / [A-Za-z][^\u4e00-\u9fff]*", note) for note in notes), notes


def test_corrections_in_one_file_write_what_they_write_one_file_each(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    corrections = [shortage("A1", "H1", "G2"), shortage("A2", "H2", "G1", region_code="500101"), shortage("B1", "H1", "G8", "resolved"),
                   shortage("A9", "H3", "G2"), shortage("B2", "H2", "G9")]
    in_sets, one_by_one = in_sets_and_one_by_one(app, BEFORE, corrections)
    assert '"resolved"' in " ".join(in_sets["audit"])
    assert_same(in_sets, one_by_one)
