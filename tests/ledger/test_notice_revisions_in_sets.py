"""Revised notices in sets: a chunk of revised notices (and of new notices meeting an obligation a report
opened first) re-dates, re-routes and links its obligations in a handful of statements whatever its size,
and writes exactly what its rows write one file at a time (the row-by-row path's semantics are the
specification): the same obligations, alerts and audit events."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from shortage_watch.services.ingest import ingest_payload
from shortage_watch.services.obligations import notices_revised
from shortage_watch.services.record_writer import NoopRecordListener
from shortage_watch.store.tables import Obligation, StoppageNotice
from tests.ledger.test_ledger_in_sets import NOW, ingest, notice
from tests.ledger.test_reports_in_sets import (
    TODAY,
    actions,
    assert_same,
    in_sets_and_one_by_one,
    statements_run,
    submitted,
    templates,
)

REGIONS = ("350902", "350981", "500101")


def fulfilling_report(j: int) -> dict[str, Any]:
    """A report of notice j (`notice(j)`), submitted 4 to 9 days after it: some on time, some late, and
    moving the notice's date judges them again."""
    known = notice(j)
    return {"record_kind": "distributor_report", "report_id": f"F{j}", "distributor_code": known["distributor_code"],
            "notice_id": known["notice_id"], "submitted_at": submitted(known["notified_on"], 4 + j % 6)}


def opening_report(j: int) -> dict[str, Any]:
    """A report about a notice the ledger has not seen (it opens and fulfils the obligation): odd j name the
    notice (`X<j>`), even j only describe it."""
    report = {"record_kind": "distributor_report", "report_id": f"B{j}", "distributor_code": ("D1", "D2", "D3")[j % 3],
              "manufacturer": "某制药", "product_code": f"Z{j}", "product_name": f"药品Z{j}", "kind": "stoppage",
              "notified_on": (TODAY - timedelta(days=3 + j % 20)).isoformat()}
    report["submitted_at"] = submitted(report["notified_on"], 1 + j % 7)
    if j % 2:
        report["notice_id"] = f"X{j}"
    return report


def notice_after_its_report(j: int) -> dict[str, Any]:
    """The notice `opening_report(j)` was about, arriving now: named ones by their id (some dated a day
    earlier than the report said), described ones under an id of their own."""
    report = opening_report(j)
    notified_on = date.fromisoformat(report["notified_on"]) - timedelta(days=j % 3 == 0)
    return {"record_kind": "stoppage_notice", "notice_id": report.get("notice_id", f"Y{j}"), "distributor_code": report["distributor_code"],
            "manufacturer": report["manufacturer"], "product_code": report["product_code"], "product_name": report["product_name"],
            "kind": "stoppage", "notified_on": notified_on.isoformat(), "region_code": None, "priority_class": None, "reason": None}


def revision(j: int) -> dict[str, Any]:
    """Notice j revised: moved to the days before National Day (its deadline then crosses the holiday),
    moved back some days, its region corrected, or both moved and corrected; never the same again."""
    original = notice(j)
    notified_on = date.fromisoformat(original["notified_on"])
    region = next(code for n in range(3) if (code := REGIONS[(j + n) % 3]) != original["region_code"])
    shape = j % 4
    if shape == 0:
        before_holiday = date(2024, 9, 26) + timedelta(days=j % 5)
        return {**original, "notified_on": (before_holiday if before_holiday != notified_on else date(2024, 9, 25)).isoformat()}
    if shape == 1:
        return {**original, "notified_on": (notified_on - timedelta(days=2 + j % 3)).isoformat()}
    if shape == 2:
        return {**original, "region_code": region}
    later = notified_on + timedelta(days=3)
    return {**original, "notified_on": (later if later <= TODAY else notified_on - timedelta(days=1)).isoformat(), "region_code": region}


def the_ledger(notices: int, reports: int) -> list[dict[str, Any]]:
    """`notices` notices, every third of them reported, and `reports` reports about notices not seen yet."""
    return ([notice(j) for j in range(notices)] + [fulfilling_report(j) for j in range(0, notices, 3)]
            + [opening_report(j) for j in range(reports)])


def the_revisions(notices: range, reports: range) -> list[dict[str, Any]]:
    """The revisions of `notices` and the notices of `reports`, interleaved."""
    revised = [revision(j) for j in notices]
    arriving = [notice_after_its_report(j) for j in reports]
    records = []
    for n in range(max(len(revised), len(arriving))):
        records += revised[n:n + 1] + arriving[n:n + 1]
    return records


@pytest.mark.slow  # a few hundred records one file each
def test_a_file_of_revised_notices_writes_exactly_what_its_rows_write_one_file_each(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    records = the_revisions(range(0, 240), range(0, 60))
    records.append({**records[0], "notified_on": "2024-10-08"})  # revised again in the same file
    records.append({**notice(7), "reason": "设备改造"})  # the text alone changes: nothing moves
    in_sets, one_by_one = in_sets_and_one_by_one(app, the_ledger(240, 60), records)

    for action in ('"deadline_moved"', '"region_changed"', '"notice_linked"', '"fulfilled_late"', '"was": "fulfilled'):
        assert action in actions(in_sets)  # the file reaches every rule a revised notice has
    assert "late_report" in templates(in_sets)
    assert_same(in_sets, one_by_one)


def statements_revising(app: Any, records: list[dict[str, Any]]) -> list[str]:
    """The statements `notices_revised` runs for `records` as one set: revisions of stored notices (with
    their previous data) and new notices meeting an obligation a report opened (no previous data), as
    `notices_stored` passes them on. The records are stored first without the ledger."""
    ingest_deps = dataclasses.replace(app.ingest_deps(), listener=NoopRecordListener())
    stored = ingest_payload(ingest_deps, source="test", name=f"revisions-{len(records)}.json",
                            content=json.dumps({"records": records}).encode(), kind="auto", now=NOW)
    assert stored.accepted == len(records), stored.errors[:3]
    originals = {(n["notice_id"], n["distributor_code"]): n for n in (notice(j) for j in range(600))}
    with app.sessions.begin() as session:
        found = {(row.notice_id, row.distributor_code): row for row in session.scalars(select(StoppageNotice))}
        revised = []
        for record in records:
            key = (record["notice_id"], record["distributor_code"])
            previous = {"notified_on": originals[key]["notified_on"]} if key in originals else None
            revised.append((found[key], previous))
        with statements_run(app.engine) as statements:
            notices_revised(session, app.ledger_deps(), revised, NOW)
    return statements


def test_a_set_of_revised_notices_costs_the_same_few_statements_whatever_its_size(db_url, make_app):
    app = make_app(db_url, now="2024-10-21T10:00")
    ingest(app, "before.json", the_ledger(600, 200))

    small = statements_revising(app, the_revisions(range(0, 80), range(0, 20)))
    large = statements_revising(app, the_revisions(range(80, 400), range(20, 100)))

    with app.sessions() as session:
        obligations = session.scalars(select(Obligation).where(Obligation.kind == "report")).all()
    moved = [o for o in obligations if o.received_on >= date(2024, 9, 26) and o.received_on <= date(2024, 9, 30)
             and o.due_on > o.received_on + timedelta(days=9)]
    assert moved, "some deadlines cross National Day"
    assert sum(o.notice_pk is not None and o.report_pk is not None and o.subject_key.startswith("P:") for o in obligations) >= 20
    # 100 and 400 notices: 15 statements each (the obligations, the reports judged again, five updates,
    # the audit, chasers, silences and late alerts; and four opening the obligations of notices a report
    # described on another day). One notice at a time: 300 and 1,238 on SQLite, 215 and 872 on PostgreSQL.
    assert len(small) <= 20 and len(large) <= len(small) + 2, (len(small), len(large), [sql[:90] for sql in large])
